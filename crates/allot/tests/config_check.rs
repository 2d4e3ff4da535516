//! `allot config check` over the overlays the deployment files use: the
//! loader itself decides that `config/docker.toml` (compose) and
//! `config/kubernetes.toml` (the ConfigMap in deploy/k8s) hold only keys it
//! knows, with values it accepts, and that the secrets stay out of the output.

use std::path::Path;
use std::process::{Command, Output};

const CONFIG: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../config");

fn check(dir: &Path, env: &str, vars: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_allot"))
        .args(["config", "check", "--config-dir"])
        .arg(dir)
        .args(["--env", env])
        .env_clear()
        .envs(vars.iter().copied())
        .output()
        .expect("allot runs")
}

/// An overlay, the environment its deployment sets, what must be in force.
type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a [&'a str]);

#[test]
fn the_deployment_overlays_load() {
    let cases: [Case; 2] = [
        (
            "docker",
            &[
                // deploy/Dockerfile
                ("ALLOT__STORE__PATH", "/var/lib/allot/store"),
                // deploy/docker-compose.yml
                ("ALLOT_SALESFORCE_CLIENT_SECRET", "allot-emulator-secret"),
                ("ALLOT_HUBSPOT_TOKEN", "pat-na1-emulator"),
                (
                    "ALLOT_HUBSPOT_CLIENT_SECRET",
                    "allot-emulator-hubspot-secret",
                ),
            ],
            &[
                "listen: 0.0.0.0:7700",
                "bootstrap_servers: \"kafka:9092\"",
                "login_url: \"http://emulator:7701\"",
                "mode: Both",
                "salesforce_client_secret: \"set\"",
                "hubspot_token: \"set\"",
            ],
        ),
        (
            "kubernetes",
            &[
                // deploy/k8s/secret.yaml, filled in
                ("ALLOT_SALESFORCE_CLIENT_SECRET", "s3cr3t-value"),
                ("ALLOT_HUBSPOT_TOKEN", ""),
            ],
            &[
                "listen: 0.0.0.0:7700",
                "path: \"/var/lib/allot/store\"",
                "enabled: true",
                "log_format: Json",
                "salesforce_client_secret: \"set\"",
                "hubspot_token: \"unset\"",
            ],
        ),
    ];
    for (env, vars, want) in cases {
        let out = check(Path::new(CONFIG), env, vars);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{env}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(stdout.contains(&format!("env {env}): valid")), "{stdout}");
        for w in want {
            assert!(stdout.contains(w), "{env}: {w:?} not in force:\n{stdout}");
        }
        let secrets = vars
            .iter()
            .filter(|(k, v)| !k.starts_with("ALLOT__") && !v.is_empty());
        for (name, secret) in secrets {
            assert!(!stdout.contains(secret), "{env}: {name} printed");
        }
    }
}

#[test]
fn a_bad_overlay_is_refused_with_its_key_named() {
    let cases = [
        (
            "[api]\nlisten = \"0.0.0.0:7700\"\nbogus = 1\n",
            "unknown field `bogus`",
        ),
        ("[telemetry]\nlevel = \"loud\"\n", "telemetry.level"),
        ("[kafka]\nenabled = true\nsources = []\n", "kafka.sources"),
        ("[crm]\nmode = \"salesforce\"\n", "crm.salesforce.client_id"),
    ];
    for (overlay, want) in cases {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::copy(
            Path::new(CONFIG).join("default.toml"),
            dir.path().join("default.toml"),
        )
        .expect("copy default.toml");
        std::fs::write(dir.path().join("site.toml"), overlay).expect("write overlay");
        let out = check(dir.path(), "site", &[]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{overlay}");
        assert!(stderr.contains(want), "{overlay}: {stderr}");
    }
    let out = check(Path::new(CONFIG), "nowhere", &[]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("nowhere.toml: not found"));
}

const JWT_KEY: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../allot-crm/tests/fixtures/jwt-test-key.pem"
);

/// `allot config check --env site` over default.toml plus `overlay`.
fn check_overlay(overlay: &str, vars: &[(&str, &str)]) -> (Option<i32>, String, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::copy(
        Path::new(CONFIG).join("default.toml"),
        dir.path().join("default.toml"),
    )
    .expect("copy default.toml");
    std::fs::write(dir.path().join("site.toml"), overlay).expect("write overlay");
    let out = check(dir.path(), "site", vars);
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn salesforce_jwt(extra: &str) -> String {
    format!(
        "[crm]\nmode = \"salesforce\"\n[crm.salesforce]\nclient_id = \"3MVG9-key\"\n\
         auth = \"jwt\"\nusername = \"ops@acme.example\"\n{extra}"
    )
}

#[test]
fn salesforce_jwt_needs_its_private_key() {
    // No key anywhere: the variable is named, and the file alternative.
    let (code, _, stderr) = check_overlay(&salesforce_jwt(""), &[]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("secrets.salesforce_jwt_key_env: $ALLOT_SALESFORCE_JWT_KEY is not set"),
        "{stderr}"
    );
    assert!(stderr.contains("crm.salesforce.jwt_key_file"), "{stderr}");
    // The client-credentials secret is not asked for under jwt.
    assert!(
        !stderr.contains("ALLOT_SALESFORCE_CLIENT_SECRET"),
        "{stderr}"
    );

    // An empty variable counts as unset.
    let (code, _, stderr) = check_overlay(&salesforce_jwt(""), &[("ALLOT_SALESFORCE_JWT_KEY", "")]);
    assert_eq!(code, Some(1));
    assert!(stderr.contains("$ALLOT_SALESFORCE_JWT_KEY"), "{stderr}");

    // A key file that is there: valid, and the key is not printed.
    let key = std::fs::read_to_string(JWT_KEY).expect("fixture key");
    let overlay = salesforce_jwt(&format!("jwt_key_file = {JWT_KEY:?}\n"));
    let (code, stdout, stderr) = check_overlay(&overlay, &[]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.contains("auth: Jwt"), "{stdout}");
    assert!(
        stdout.contains("username: \"ops@acme.example\""),
        "{stdout}"
    );
    let body_line = key.lines().nth(1).expect("key body");
    assert!(!stdout.contains(body_line), "the key was printed");

    // The same key from the variable.
    let (code, stdout, stderr) =
        check_overlay(&salesforce_jwt(""), &[("ALLOT_SALESFORCE_JWT_KEY", &key)]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.contains("salesforce_jwt_key: \"set\""), "{stdout}");
    assert!(!stdout.contains(body_line), "the key was printed");
}

#[test]
fn a_salesforce_jwt_key_file_must_be_readable_and_a_private_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let public = Path::new(JWT_KEY).with_file_name("jwt-test-key.pub.pem");
    let garbled = dir.path().join("garbled.pem");
    std::fs::write(
        &garbled,
        "-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5IGF0IGFsbCwganVzdCB0ZXh0\n-----END PRIVATE KEY-----\n",
    )
    .expect("write");
    let missing = dir.path().join("missing.pem");
    let cases = [
        (missing.display().to_string(), "cannot read"),
        (public.display().to_string(), "not a PEM private key"),
        (garbled.display().to_string(), "not an RSA PEM"),
    ];
    for (file, want) in cases {
        let overlay = salesforce_jwt(&format!("jwt_key_file = {file:?}\n"));
        let (code, _, stderr) = check_overlay(&overlay, &[]);
        assert_eq!(code, Some(1), "{file}: {stderr}");
        let named = [
            format!("crm.salesforce.jwt_key_file: {file}: "),
            format!("crm.salesforce.jwt_key_file: cannot read {file}: "),
        ];
        assert!(
            named.iter().any(|n| stderr.contains(n.as_str())),
            "{file}: {stderr}"
        );
        assert!(stderr.contains(want), "{file}: {stderr}");
    }
}

#[test]
fn hubspot_oauth_needs_client_secret_and_refresh_token() {
    let overlay =
        "[crm]\nmode = \"hubspot\"\n[crm.hubspot]\nauth = \"oauth\"\nclient_id = \"5f2e-app\"\n";
    let (code, _, stderr) =
        check_overlay(overlay, &[("ALLOT_HUBSPOT_CLIENT_SECRET", "app-secret")]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr
            .contains("secrets.hubspot_refresh_token_env: $ALLOT_HUBSPOT_REFRESH_TOKEN is not set"),
        "{stderr}"
    );
    assert!(!stderr.contains("ALLOT_HUBSPOT_CLIENT_SECRET"), "{stderr}");
    // The private-app token is not asked for under oauth.
    assert!(!stderr.contains("ALLOT_HUBSPOT_TOKEN"), "{stderr}");

    let (code, _, stderr) = check_overlay(overlay, &[]);
    assert_eq!(code, Some(1));
    assert!(stderr.contains("$ALLOT_HUBSPOT_CLIENT_SECRET"), "{stderr}");
    assert!(stderr.contains("$ALLOT_HUBSPOT_REFRESH_TOKEN"), "{stderr}");

    let vars = [
        ("ALLOT_HUBSPOT_CLIENT_SECRET", "app-secret"),
        ("ALLOT_HUBSPOT_REFRESH_TOKEN", "refresh-me"),
    ];
    let (code, stdout, stderr) = check_overlay(overlay, &vars);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stdout.contains("hubspot_refresh_token: \"set\""),
        "{stdout}"
    );
    assert!(!stdout.contains("refresh-me") && !stdout.contains("app-secret"));

    // Without a client id the login cannot work either.
    let (code, _, stderr) = check_overlay(
        "[crm]\nmode = \"hubspot\"\n[crm.hubspot]\nauth = \"oauth\"\n",
        &vars,
    );
    assert_eq!(code, Some(1));
    assert!(
        stderr.contains("crm.hubspot.client_id: required"),
        "{stderr}"
    );
}

#[test]
fn only_the_crms_the_mode_uses_are_asked_for_secrets() {
    // The default private-app login of mode hubspot needs its token.
    let (code, _, stderr) = check_overlay("[crm]\nmode = \"hubspot\"\n", &[]);
    assert_eq!(code, Some(1));
    assert!(
        stderr.contains("secrets.hubspot_token_env: $ALLOT_HUBSPOT_TOKEN"),
        "{stderr}"
    );
    assert!(!stderr.contains("SALESFORCE"), "{stderr}");
    // Salesforce jwt without a key, but mode hubspot: nothing asked of Salesforce.
    let overlay = "[crm]\nmode = \"hubspot\"\n[crm.salesforce]\nauth = \"jwt\"\n";
    let (code, _, stderr) = check_overlay(overlay, &[("ALLOT_HUBSPOT_TOKEN", "pat-na1-x")]);
    assert_eq!(code, Some(0), "{stderr}");
    // The emulator needs no secrets at all.
    let overlay = "[crm.salesforce]\nauth = \"jwt\"\n[crm.hubspot]\nauth = \"oauth\"\n";
    let (code, _, stderr) = check_overlay(overlay, &[]);
    assert_eq!(code, Some(0), "{stderr}");
}

#[test]
fn an_unknown_auth_names_the_key_and_the_choices() {
    let cases = [
        (
            "[crm.salesforce]\nauth = \"password\"\n",
            "\"password\" is not one of client_credentials, jwt for key `crm.salesforce.auth`",
        ),
        (
            "[crm.hubspot]\nauth = \"apikey\"\n",
            "\"apikey\" is not one of private_app, oauth for key `crm.hubspot.auth`",
        ),
    ];
    for (overlay, want) in cases {
        let (code, _, stderr) = check_overlay(overlay, &[]);
        assert_eq!(code, Some(1), "{overlay}");
        assert!(stderr.contains(want), "{overlay}: {stderr}");
    }
}
