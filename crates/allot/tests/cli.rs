//! The `allot` binary as a user runs it.

use std::io::Write;
use std::process::{Command, Output, Stdio};

const EXAMPLE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../config/rules.example.toml"
);
const NOW: &str = "2026-11-25T17:00:00Z";

fn allot(args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_allot"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("allot runs");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("write stdin");
    child.wait_with_output().expect("allot exits")
}

fn lines(out: &Output) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect()
}

#[test]
fn validate_exit_codes() {
    let ok = allot(&["validate", EXAMPLE], "");
    assert_eq!(
        ok.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let bad = allot(
        &["validate", "-"],
        "[[reps]]\nid = \"a\"\n[[territories]]\nid = \"t\"\nowner = { rep = \"b\" }\n",
    );
    assert_eq!(bad.status.code(), Some(1));
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(
        err.contains("-:3:1: error: territory \"t\": undefined rep \"b\""),
        "{err}"
    );
}

#[test]
fn simulate_reports_bad_lines_and_goes_on() {
    let input = concat!(
        r#"{"object":"lead","id":"L1","fields":{"country":"United States","state":"California","postal_code":"94105"}}"#,
        "\n",
        "{not json}\n",
        r#"{"object":"lead","id":"L2","owner":"005-cho","fields":{"country":"US","state":"TX"}}"#,
        "\n",
    );
    let out = allot(&["simulate", "--rules", EXAMPLE, "--now", NOW], input);
    assert_eq!(out.status.code(), Some(2));
    let rows = lines(&out);
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[0]["id"], "L1");
    assert_eq!(rows[0]["owner"], "005-ana");
    assert_eq!(rows[0]["territory"], "na-bay-area");
    assert_eq!(rows[0]["strategy"], "most_specific");
    assert_eq!(rows[0]["changed"], true);
    assert!(rows[0]["explanation"]
        .as_str()
        .is_some_and(|e| e.contains("matched 3 territories")));
    assert_eq!(rows[1]["line"], 2);
    assert!(rows[1]["error"]
        .as_str()
        .is_some_and(|e| e.starts_with("-:2:")));
    assert_eq!(rows[2]["strategy"], "existing_owner");
    assert_eq!(rows[2]["changed"], false);
}

#[test]
fn simulate_state_flows_between_records_and_runs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("state.json");
    let state = state.to_str().expect("utf-8 path");
    let rec = |id: &str| {
        format!("{{\"object\":\"lead\",\"id\":\"{id}\",\"fields\":{{\"country\":\"CA\"}}}}\n")
    };
    let first = allot(
        &[
            "simulate",
            "--rules",
            EXAMPLE,
            "--now",
            NOW,
            "--state-out",
            state,
        ],
        &(rec("a") + &rec("b")),
    );
    let owners: Vec<String> = lines(&first)
        .iter()
        .map(|r| r["owner"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(owners, ["005-ana", "005-ben"]);
    let second = allot(
        &[
            "simulate", "--rules", EXAMPLE, "--now", NOW, "--state", state,
        ],
        &rec("c"),
    );
    assert_eq!(lines(&second)[0]["owner"], "005-cho");
}

#[test]
fn gen_is_deterministic_and_realign_reports_moves() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = |n: &str| dir.path().join(n).to_str().expect("utf-8 path").to_string();
    for (seed, name) in [("1", "old.toml"), ("2", "new.toml")] {
        let out = allot(&["gen", "rules", "--territories", "60", "--seed", seed], "");
        std::fs::write(p(name), &out.stdout).expect("write rules");
        assert_eq!(allot(&["validate", &p(name)], "").status.code(), Some(0));
    }
    let a = allot(&["gen", "records", "--count", "300", "--seed", "5"], "");
    let b = allot(&["gen", "records", "--count", "300", "--seed", "5"], "");
    assert_eq!(a.stdout, b.stdout);
    std::fs::write(p("records.jsonl"), &a.stdout).expect("write records");
    let out = allot(
        &[
            "realign",
            "--rules",
            &p("old.toml"),
            "--to",
            &p("new.toml"),
            "--records",
            &p("records.jsonl"),
            "--now",
            NOW,
            "--json",
            "--moves",
            &p("moves.jsonl"),
        ],
        "",
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json report");
    assert_eq!(report["records"], 300);
    let moved = report["moved"].as_u64().expect("moved");
    let moves = std::fs::read_to_string(p("moves.jsonl")).expect("moves");
    assert_eq!(moves.lines().count() as u64, moved);
    let reps = report["reps"].as_object().expect("reps");
    let before: u64 = reps
        .values()
        .map(|t| t["before"].as_u64().unwrap_or(0))
        .sum();
    let moved_in: u64 = reps
        .values()
        .map(|t| t["moved_in"].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(before, 300);
    assert_eq!(moved_in, moved);
}

#[test]
fn decode_prints_events_and_names_bad_lines() {
    let input = concat!(
        r#"[{"eventId":1,"subscriptionId":2,"portalId":3,"occurredAt":1714153779512,"subscriptionType":"contact.propertyChange","objectId":42,"propertyName":"country","propertyValue":"Germany","changeSource":"CRM_UI"}]"#,
        "\n",
        "{oops\n",
    );
    let out = allot(&["decode"], input);
    assert_eq!(out.status.code(), Some(2));
    let rows = lines(&out);
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["record_id"], "42");
    assert_eq!(rows[0]["fields"]["country"], "Germany");
    assert!(String::from_utf8_lossy(&out.stderr).contains("-:2:"));
}

fn allot_env(args: &[&str], envs: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_allot"))
        .args(args)
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
        .envs(envs.iter().copied())
        .output()
        .expect("allot runs")
}

#[test]
fn replay_then_state_export_import_check() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = dir.path().join("a");
    let store = store.to_str().expect("utf-8");
    let events = dir.path().join("events.jsonl");
    let lead =
        include_str!("../../allot-events/tests/data/sf-cdc-lead-create.json").replace('\n', "");
    let batch =
        include_str!("../../allot-events/tests/data/hubspot-webhook-batch.json").replace('\n', "");
    std::fs::write(&events, format!("{lead}\n{{broken\n{batch}\n")).expect("write events");
    let env = [
        ("ALLOT__STORE__PATH", store),
        ("ALLOT__TELEMETRY__LEVEL", "warn"),
    ];
    let out = allot_env(&["replay", events.to_str().expect("utf-8")], &env);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("events.jsonl:2:2: not JSON: key must be a string (read as JSON lines)"),
        "{err}"
    );
    assert!(err.contains("4 event(s), 3 decision(s)"), "{err}");
    assert!(err.contains("1 dead-lettered"), "{err}");

    let export = dir.path().join("export.jsonl");
    let out = allot_env(
        &[
            "state",
            "export",
            "--store",
            store,
            "--out",
            export.to_str().expect("utf-8"),
        ],
        &[],
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&export).expect("export");
    let kinds: Vec<String> = text
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).expect("json")["kind"]
                .as_str()
                .unwrap_or("")
                .to_string()
        })
        .collect();
    for k in ["record", "engine_state", "outbox", "decision"] {
        assert!(kinds.iter().any(|x| x == k), "{k} missing from {kinds:?}");
    }
    let copy = dir.path().join("b");
    let copy = copy.to_str().expect("utf-8");
    let out = allot_env(
        &[
            "state",
            "import",
            "--store",
            copy,
            export.to_str().expect("utf-8"),
        ],
        &[],
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let again = dir.path().join("again.jsonl");
    allot_env(
        &[
            "state",
            "export",
            "--store",
            copy,
            "--out",
            again.to_str().expect("utf-8"),
        ],
        &[],
    );
    assert_eq!(
        std::fs::read_to_string(&again).expect("export"),
        text,
        "export → import → export is stable"
    );
    let out = allot_env(&["state", "check", "--store", copy], &[]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn loadgen_prints_its_figures() {
    let out = allot(&["loadgen", "--events", "300", "--territories", "100"], "");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    for want in [
        "events      300",
        "decisions   300",
        "records     300",
        "events/s",
        "RSS MB",
    ] {
        assert!(text.contains(want), "{want:?} not in:\n{text}");
    }
}

#[test]
fn state_export_carries_rep_overrides_and_the_admin_audit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("admin.jsonl");
    let lines = [
        r#"{"kind":"admin_doc","doc":"override","name":"0055f000001ADDDAA4","value":{"active":false}}"#,
        r#"{"kind":"admin_audit","entry":{"v":1,"at":1764061200000,"who":"ana","role":"admin","action":"PUT /api/reps/0055f000001ADDDAA4/active","status":200,"detail":"inactive"}}"#,
    ];
    std::fs::write(&file, lines.join("\n") + "\n").expect("write");
    let store = dir.path().join("s");
    let store = store.to_str().expect("utf-8");
    let out = allot_env(
        &[
            "state",
            "import",
            "--store",
            store,
            file.to_str().expect("utf-8"),
        ],
        &[],
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = allot_env(&["state", "export", "--store", store], &[]);
    let text = String::from_utf8_lossy(&out.stdout);
    for line in lines {
        let want: serde_json::Value = serde_json::from_str(line).expect("json");
        assert!(
            text.lines()
                .any(|l| serde_json::from_str::<serde_json::Value>(l).ok() == Some(want.clone())),
            "{line} missing from the export:\n{text}"
        );
    }
}

const LEAD: &str = include_str!("../../allot-events/tests/data/sf-cdc-lead-create.json");
const BATCH: &str = include_str!("../../allot-events/tests/data/hubspot-webhook-batch.json");

/// `allot decode FILE` on `text` written to a temp file named `name`:
/// exit code, stdout, stderr.
fn decode_file(name: &str, text: &str) -> (Option<i32>, String, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join(name);
    std::fs::write(&path, text).expect("write input");
    let out = Command::new(env!("CARGO_BIN_EXE_allot"))
        .arg("decode")
        .arg(&path)
        .current_dir(dir.path())
        .output()
        .expect("allot runs");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn decode_reads_pretty_objects_arrays_and_json_lines_alike() {
    let lead: serde_json::Value = serde_json::from_str(LEAD).expect("lead");
    let batch: serde_json::Value = serde_json::from_str(BATCH).expect("batch");
    let mut elements = vec![lead.clone()];
    elements.extend(batch.as_array().expect("array").iter().cloned());
    let pretty_array = serde_json::to_string_pretty(&elements).expect("json");
    let jsonl: String = elements.iter().map(|e| format!("{e}\n")).collect();

    // The same events, however the file is laid out.
    let (code, lines_out, err) = decode_file("events.jsonl", &jsonl);
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains("read as JSON lines"), "{err}");
    let (code, array_out, err) = decode_file("events.json", &pretty_array);
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains("events.json read as a JSON array"), "{err}");
    assert_eq!(array_out, lines_out);
    assert_eq!(
        lines_out.lines().count(),
        1 + batch.as_array().expect("array").len()
    );

    // A pretty-printed object (the fixture spans many lines), CRLF and all.
    assert!(LEAD.trim().lines().count() > 1);
    let (code, object_out, err) = decode_file("lead.json", &LEAD.replace('\n', "\r\n"));
    assert_eq!(code, Some(0), "{err}");
    assert!(
        err.contains("lead.json read as one JSON object over several lines"),
        "{err}"
    );
    assert_eq!(
        object_out,
        lines_out.lines().next().expect("lead").to_string() + "\n"
    );
    let (_, one_line_out, _) = decode_file("lead.jsonl", &one_line(LEAD));
    assert_eq!(object_out, one_line_out);

    // Integers stay integers.
    assert!(
        object_out.contains("\"NumberOfEmployees\":120,"),
        "{object_out}"
    );
    assert!(!object_out.contains("120.0"), "{object_out}");
}

#[test]
fn decode_refusals_name_the_shape_and_where_it_broke() {
    // A pretty-printed object missing a comma: refused at its position.
    let pretty = "{\n  \"eventId\": 1,\n  \"subscriptionType\": \"contact.creation\"\n  \"objectId\": 9\n}\n";
    let (code, out, err) = decode_file("one.json", pretty);
    assert_eq!(code, Some(2));
    assert!(out.is_empty(), "{out}");
    assert!(
        err.contains(
            "one.json:4:3: not JSON: expected `,` or `}` (read as one JSON object over several lines)"
        ),
        "{err}"
    );
    assert!(err.contains("0 event(s) decoded, 1 error(s)"), "{err}");

    // An array: a bad element by index and position, the others decoded.
    let array = format!(
        "[\n  {},\n  {{\"eventId\": 2, \"subscriptionType\": \"contact.creation\"}},\n  {{\"eventId\": }}\n]\n",
        LEAD.trim()
    );
    let lead_lines = LEAD.trim().lines().count();
    let (code, out, err) = decode_file("many.json", &array);
    assert_eq!(code, Some(2), "{err}");
    assert_eq!(out.lines().count(), 1, "{out}");
    let missing = format!(
        "many.json:{}:3: element [1]: hubspot event (eventId 2): missing field \"objectId\" (read as a JSON array)",
        lead_lines + 2
    );
    assert!(err.contains(&missing), "{err}");
    let broken = format!(
        "many.json:{}:15: element [2]: not JSON: expected value (read as a JSON array)",
        lead_lines + 3
    );
    assert!(err.contains(&broken), "{err}");

    // An unterminated array says so, where the text ends.
    let (code, _, err) = decode_file("cut.json", &format!("[\n  {}", one_line(LEAD)));
    assert_eq!(code, Some(2));
    assert!(err.contains("cut.json:2:"), "{err}");
    assert!(err.contains("missing `]`) (read as a JSON array)"), "{err}");

    // JSON lines: one bad line, the rest still decoded.
    let good = format!("{}\n{}\n", one_line(LEAD), one_line(BATCH));
    let (code, good_out, err) = decode_file("good.jsonl", &good);
    assert_eq!(code, Some(0), "{err}");
    let jsonl = format!(
        "{}\n{{\"eventId\": oops}}\n{}\n",
        one_line(LEAD),
        one_line(BATCH)
    );
    let (code, out, err) = decode_file("mixed.jsonl", &jsonl);
    assert_eq!(code, Some(2));
    assert_eq!(out, good_out);
    assert!(
        err.contains("mixed.jsonl:2:13: not JSON: expected value (read as JSON lines)"),
        "{err}"
    );
}

fn one_line(s: &str) -> String {
    s.replace('\n', "")
}

#[test]
fn replay_takes_a_pretty_printed_array() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = dir.path().join("store");
    let store = store.to_str().expect("utf-8");
    let lead: serde_json::Value = serde_json::from_str(LEAD).expect("lead");
    let batch: serde_json::Value = serde_json::from_str(BATCH).expect("batch");
    let mut elements = vec![lead];
    elements.extend(batch.as_array().expect("array").iter().cloned());
    let events = dir.path().join("events.json");
    std::fs::write(
        &events,
        serde_json::to_string_pretty(&elements).expect("json"),
    )
    .expect("write events");
    let env = [
        ("ALLOT__STORE__PATH", store),
        ("ALLOT__TELEMETRY__LEVEL", "warn"),
    ];
    let out = allot_env(&["replay", events.to_str().expect("utf-8")], &env);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    let entries = format!("replayed {} entries", elements.len());
    assert!(err.contains(&entries), "{err}");
    assert!(err.contains("read as a JSON array"), "{err}");
    assert!(err.contains("0 dead-lettered"), "{err}");
}
