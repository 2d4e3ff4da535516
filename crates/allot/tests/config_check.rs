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
