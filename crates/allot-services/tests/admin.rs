//! The admin API on an in-process router over a real store, with the
//! pipeline owner driven by hand: auth, rules lifecycle with realignment at a
//! bounded rate, reps, offboarding, simulate, replay, audit, OpenAPI.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;

use allot_core::ObjectKind;
use allot_services::admin::openapi;
use allot_services::control::Controller;
use allot_services::raw::{RawEntry, RAW_LOG};
use axum::http::StatusCode;
use serde_json::{json, Value};

#[path = "admin_common/mod.rs"]
mod common;
use common::*;

fn owner(rig: &Rig, id: &str) -> Option<String> {
    rig.store
        .record(ObjectKind::Lead, id)
        .unwrap()
        .unwrap()
        .0
        .owner
}

#[tokio::test]
async fn auth_answers_401_and_403_with_clear_bodies() {
    let rig = rig(2, 200);
    let app = &rig.app;
    let (s, www, v) = call_full(app, "GET", "/api/reps", None, None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert!(www.unwrap().starts_with("Bearer"));
    assert_eq!(v["status"], "error");
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .contains("missing bearer token"),
        "{v}"
    );
    let (s, www, v) = call_full(
        app,
        "GET",
        "/api/decisions/recent",
        Some("wrong-token"),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert!(www.is_some());
    assert_eq!(v["message"], "invalid bearer token");
    let cases: [(&str, &str, &str, StatusCode, Option<&str>); 7] = [
        ("GET", "/api/reps", VIEWER, StatusCode::OK, None),
        ("GET", "/api/rules", VIEWER, StatusCode::OK, None),
        (
            "POST",
            "/api/simulate",
            VIEWER,
            StatusCode::FORBIDDEN,
            Some("needs role operator"),
        ),
        (
            "POST",
            "/api/rules/versions",
            OPERATOR,
            StatusCode::FORBIDDEN,
            Some("needs role admin"),
        ),
        (
            "POST",
            "/api/rules/rollback",
            OPERATOR,
            StatusCode::FORBIDDEN,
            Some("token ops has role operator"),
        ),
        (
            "POST",
            "/api/rules/validate",
            OPERATOR,
            StatusCode::OK,
            None,
        ),
        ("GET", "/api/admin/audit", VIEWER, StatusCode::OK, None),
    ];
    for (method, path, token, want, msg) in cases {
        let body = (method == "POST").then_some(V1);
        let (s, v) = call(app, method, path, Some(token), body).await;
        assert_eq!(s, want, "{method} {path}: {v}");
        if let Some(m) = msg {
            assert!(
                v["message"].as_str().unwrap().contains(m),
                "{method} {path}: {v}"
            );
        }
    }
    // The dashboard's data is under /api/ too; its page is not.
    let (s, _) = call(app, "GET", "/api/overview", None, None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    for path in [
        "/healthz",
        "/readyz",
        "/metrics",
        "/api/openapi.json",
        "/dashboard",
    ] {
        let (s, _) = call(app, "GET", path, None, None).await;
        assert_eq!(s, StatusCode::OK, "{path} is public");
    }
}

#[tokio::test]
async fn refused_calls_are_audited_with_who_the_route_and_why() {
    let rig = rig(2, 200);
    let app = &rig.app;
    let (s, _) = call(app, "GET", "/api/reps", None, None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, _) = call(
        app,
        "PUT",
        "/api/reps/ana/active",
        Some("guessed-secret"),
        Some("{}"),
    )
    .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, _) = call(
        app,
        "POST",
        "/api/reps/ana/offboard?preview=false",
        Some(VIEWER),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, v) = call(app, "GET", "/api/admin/audit?limit=10", Some(VIEWER), None).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let got: Vec<(&str, &str, &str, u64)> = v["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["who"].as_str().unwrap(),
                e["role"].as_str().unwrap(),
                e["action"].as_str().unwrap(),
                e["status"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (
                "eve",
                "viewer",
                "POST /api/reps/ana/offboard?preview=false",
                403
            ),
            ("(unknown token)", "none", "PUT /api/reps/ana/active", 401),
            ("(no token)", "none", "GET /api/reps", 401),
        ],
        "{v}"
    );
    let why = v["entries"][0]["detail"].as_str().unwrap();
    assert!(why.contains("needs role operator"), "{why}");
    // The secret tried is never recorded.
    assert!(!v.to_string().contains("guessed-secret"), "{v}");
}

#[tokio::test]
async fn rules_lifecycle_dry_run_activate_realign_at_a_bounded_rate_and_roll_back() {
    let mut rig = rig(10, 200);
    let bad = "version = \"v9\"\n[[reps]]\nid = \"ana\"\nweight = 0\n";
    let (s, v) = call(
        &rig.app,
        "POST",
        "/api/rules/validate?name=new.toml",
        Some(OPERATOR),
        Some(bad),
    )
    .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    let d = &v["diagnostics"][0];
    assert_eq!(
        (d["line"].as_u64(), d["severity"].as_str()),
        (Some(2), Some("error")),
        "{v}"
    );
    assert!(
        d["text"].as_str().unwrap().starts_with("new.toml:2:"),
        "{v}"
    );
    let (s, _) = call(
        &rig.app,
        "POST",
        "/api/rules/versions",
        Some(ADMIN),
        Some(bad),
    )
    .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(rig.store.rule_version("v9").unwrap().is_none());

    let (s, v) = call(
        &rig.app,
        "POST",
        "/api/rules/versions",
        Some(ADMIN),
        Some(V2),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(v["state"], "draft");
    let other = V2.replace("owner = { rep = \"cara\" }", "owner = { rep = \"ben\" }");
    let (s, v) = call(
        &rig.app,
        "POST",
        "/api/rules/versions",
        Some(ADMIN),
        Some(&other),
    )
    .await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    assert!(v["message"].as_str().unwrap().contains("immutable"));
    let (_, v) = call(&rig.app, "GET", "/api/rules/versions", Some(VIEWER), None).await;
    let states: Vec<(&str, &str)> = v["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| {
            (
                x["version_id"].as_str().unwrap(),
                x["state"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(states, [("v1", "active"), ("v2", "draft")]);

    // Activation needs a dry run against the active version.
    let (s, v) = call(
        &rig.app,
        "POST",
        "/api/rules/versions/v2/activate",
        Some(ADMIN),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .contains("no dry run against the active version v1"),
        "{v}"
    );
    let (s, _) = call(
        &rig.app,
        "POST",
        "/api/rules/versions/nope/dry-run",
        Some(OPERATOR),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, report) = call(
        &rig.app,
        "POST",
        "/api/rules/versions/v2/dry-run",
        Some(OPERATOR),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{report}");
    assert_eq!(
        (
            report["old_version"].as_str(),
            report["new_version"].as_str()
        ),
        (Some("v1"), Some("v2"))
    );
    assert_eq!(
        (report["records"].as_u64(), report["moved"].as_u64()),
        (Some(10), Some(10))
    );
    assert_eq!(report["reps"]["cara"]["after"], 10);
    assert_eq!(
        owner(&rig, "L0").as_deref(),
        Some("ana"),
        "a dry run changes nothing"
    );

    let (s, v) = call_owned(
        &mut rig,
        "POST",
        "/api/rules/versions/v2/activate",
        Some(ADMIN),
        Some("{}"),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["active_version"], "v2");
    assert_eq!(v["realignment"]["from_version"], "v1");
    assert_eq!(rig.ingest.pipeline.rules().version, "v2");

    // 200 records per second: none at the start, 2 after 10 ms, 3 more after 15 more.
    let t = rig.t0 + 1;
    let steps = [(t, 0), (t + 10, 2), (t + 25, 3)];
    for (now, want) in steps {
        assert_eq!(
            rig.ingest.control_step(now).await.unwrap(),
            want,
            "at +{}",
            now - t
        );
    }
    let moved = rig.store.audit_between(0, i64::MAX, 100).unwrap();
    assert_eq!(moved.len(), 5);
    assert!(moved
        .iter()
        .all(|d| d.owner.as_deref() == Some("cara") && d.rules_version == "v2"));
    assert!(
        moved[0].explanation[0].starts_with("rules: version v1 → v2 activated by root"),
        "{:?}",
        moved[0].explanation
    );
    assert_eq!(rig.store.outbox_pending(100).unwrap().len(), 5);

    // A restart resumes after the cursor.
    let rules = rig.ingest.pipeline.rules().clone();
    let inbox = rig.ingest.control.as_mut().unwrap().take_inbox();
    let mut again = Controller::new(inbox, rules, 200);
    again.start(&mut rig.ingest.pipeline, t + 30).unwrap();
    assert_eq!(again.job().unwrap().scanned, 5);
    rig.ingest.control = Some(again);
    assert_eq!(rig.ingest.control_step(t + 40).await.unwrap(), 0);
    assert_eq!(rig.ingest.control_step(t + 2_000).await.unwrap(), 5);
    assert!(rig.ingest.control.as_ref().unwrap().job().is_none());
    let (_, v) = call(
        &rig.app,
        "GET",
        "/api/rules/realignment",
        Some(VIEWER),
        None,
    )
    .await;
    assert_eq!(
        (
            v["realignment"]["scanned"].as_u64(),
            v["realignment"]["moved"].as_u64()
        ),
        (Some(10), Some(10))
    );
    assert!(v["realignment"]["finished_at"].is_i64());
    assert_eq!(rig.ingest.pipeline.state().open_count("cara"), 10);
    assert_eq!(owner(&rig, "L9").as_deref(), Some("cara"));

    // Roll back: v1 again, and the records go back to the team.
    let (s, v) = call_owned(&mut rig, "POST", "/api/rules/rollback", Some(ADMIN), None).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["active_version"], "v1");
    assert_eq!(rig.ingest.control_step(t + 3_000).await.unwrap(), 10);
    let (_, v) = call(&rig.app, "GET", "/api/rules", Some(VIEWER), None).await;
    assert_eq!(v["version_id"], "v1");
    assert_ne!(owner(&rig, "L0").as_deref(), Some("cara"));
}

#[tokio::test]
async fn activation_can_be_scheduled() {
    let mut rig = rig(2, 200);
    call(
        &rig.app,
        "POST",
        "/api/rules/versions",
        Some(ADMIN),
        Some(V2),
    )
    .await;
    call(
        &rig.app,
        "POST",
        "/api/rules/versions/v2/dry-run",
        Some(ADMIN),
        None,
    )
    .await;
    let (s, v) = call_owned(
        &mut rig,
        "POST",
        "/api/rules/versions/v2/activate",
        Some(ADMIN),
        Some(r#"{"effective_at": "yesterday"}"#),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(
        v["message"].as_str().unwrap().starts_with("effective_at: "),
        "{v}"
    );
    let (s, v) = call_owned(
        &mut rig,
        "POST",
        "/api/rules/versions/v2/activate",
        Some(ADMIN),
        Some(r#"{"effective_at": -5}"#),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .contains("would never take effect"),
        "{v}"
    );
    let at = rig.t0 + 3_600_000;
    let body = json!({ "effective_at": at }).to_string();
    let (s, v) = call_owned(
        &mut rig,
        "POST",
        "/api/rules/versions/v2/activate",
        Some(ADMIN),
        Some(&body),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["active_version"], "v1", "not yet");
    rig.ingest.control_step(at - 1).await.unwrap();
    assert_eq!(rig.ingest.pipeline.rules().version, "v1");
    rig.ingest.control_step(at + 1_000).await.unwrap();
    assert_eq!(rig.ingest.pipeline.rules().version, "v2");
    assert_eq!(rig.ingest.control_step(at + 2_000).await.unwrap(), 2);
}

#[tokio::test]
async fn reps_availability_out_of_office_capacity_and_active() {
    let mut rig = rig(4, 200);
    let rep = |v: &Value, id: &str| {
        v["reps"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["id"] == id)
            .unwrap()
            .clone()
    };
    let (s, v) = call(&rig.app, "GET", "/api/reps", Some(VIEWER), None).await;
    assert_eq!(s, StatusCode::OK);
    let ana = rep(&v, "ana");
    assert_eq!(
        (
            ana["open"].as_i64(),
            ana["eligible_now"].as_bool(),
            ana["teams"].clone()
        ),
        (Some(2), Some(true), json!(["t"]))
    );

    let (s, v) = call_owned(
        &mut rig,
        "PUT",
        "/api/reps/ana/ooo",
        Some(OPERATOR),
        Some(r#"{"until": "2099-01-01T00:00:00Z"}"#),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    // The audit records the override before and after the change.
    let (_, a) = call(
        &rig.app,
        "GET",
        "/api/admin/audit?limit=1",
        Some(VIEWER),
        None,
    )
    .await;
    let entry = &a["entries"][0];
    assert_eq!(entry["action"], "PUT /api/reps/ana/ooo", "{a}");
    assert_eq!(
        entry["before"],
        json!({"rep": "ana", "override": null}),
        "{a}"
    );
    assert_eq!(entry["after"]["rep"], "ana", "{a}");
    assert_eq!(
        entry["after"]["override"]["out_of_office"][0][1], 4_070_908_800_000i64,
        "{a}"
    );
    let (_, v) = call(&rig.app, "GET", "/api/reps", Some(VIEWER), None).await;
    let ana = rep(&v, "ana");
    assert_eq!(ana["out_of_office_until"], "2099-01-01T00:00:00Z");
    assert!(
        ana["reason"]
            .as_str()
            .unwrap()
            .starts_with("out of office until"),
        "{ana}"
    );
    // The pipeline decides with it, and so does simulate.
    let lead = r#"{"object":"lead","id":"N1","fields":{"country":"US"}}"#;
    let (s, d) = call(
        &rig.app,
        "POST",
        "/api/simulate",
        Some(OPERATOR),
        Some(lead),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{d}");
    assert_eq!(d["owner"], "ben");
    assert!(rig
        .ingest
        .pipeline
        .rules()
        .rep("ana")
        .unwrap()
        .away_until(rig.t0)
        .is_some());

    let bad: [(&str, &str, &str, StatusCode, &str); 5] = [
        (
            "PUT",
            "/api/reps/ana/ooo",
            r#"{"until": "soon"}"#,
            StatusCode::BAD_REQUEST,
            "until: ",
        ),
        (
            "PUT",
            "/api/reps/ana/ooo",
            r#"{"from": "2099-01-02T00:00:00Z", "until": "2099-01-01T00:00:00Z"}"#,
            StatusCode::BAD_REQUEST,
            "must be after",
        ),
        (
            "PUT",
            "/api/reps/ana/capacity",
            r#"{"max_open": -1}"#,
            StatusCode::BAD_REQUEST,
            "max_open: ",
        ),
        (
            "PUT",
            "/api/reps/ana/capacity",
            r#"{"max_opn": 1}"#,
            StatusCode::BAD_REQUEST,
            "unknown field \"max_opn\"",
        ),
        (
            "PUT",
            "/api/reps/zed/active",
            r#"{"active": false}"#,
            StatusCode::NOT_FOUND,
            "no rep \"zed\"",
        ),
    ];
    for (m, path, body, want, msg) in bad {
        let (s, v) = call(&rig.app, m, path, Some(OPERATOR), Some(body)).await;
        assert_eq!(s, want, "{path} {body}: {v}");
        assert!(
            v["message"].as_str().unwrap().contains(msg),
            "{path} {body}: {v}"
        );
    }

    let (s, _) = call_owned(
        &mut rig,
        "DELETE",
        "/api/reps/ana/ooo",
        Some(OPERATOR),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = call_owned(
        &mut rig,
        "PUT",
        "/api/reps/ben/capacity",
        Some(OPERATOR),
        Some(r#"{"max_open": 2}"#),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = call_owned(
        &mut rig,
        "PUT",
        "/api/reps/cara/active",
        Some(OPERATOR),
        Some(r#"{"active": false}"#),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let (_, v) = call(&rig.app, "GET", "/api/reps", Some(VIEWER), None).await;
    assert_eq!(rep(&v, "ana")["eligible_now"], true);
    assert_eq!(rep(&v, "ben")["reason"], "at capacity (2 open, max 2)");
    assert_eq!(rep(&v, "ben")["max_open"], 2);
    assert_eq!(rep(&v, "cara")["reason"], "inactive");
    let (_, d) = call(
        &rig.app,
        "POST",
        "/api/simulate",
        Some(OPERATOR),
        Some(lead),
    )
    .await;
    assert_eq!(d["owner"], "ana", "ben is full: {d}");
    // Overrides survive a restart of the owner.
    let v1 = std::sync::Arc::new(allot_rules::RuleSet::from_toml(V1, "v1").unwrap());
    rig.ingest.control = Some(Controller::new(None, v1, 200));
    let c = rig.ingest.control.as_mut().unwrap();
    c.start(&mut rig.ingest.pipeline, rig.t0).unwrap();
    assert_eq!(
        rig.ingest.pipeline.rules().rep("ben").unwrap().max_open,
        Some(2)
    );
    assert!(!rig.ingest.pipeline.rules().rep("cara").unwrap().active);
}

#[tokio::test]
async fn offboarding_previews_then_applies() {
    let mut rig = rig(4, 200);
    let (s, v) = call(
        &rig.app,
        "POST",
        "/api/reps/ana/offboard",
        Some(OPERATOR),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["preview"], true);
    assert_eq!(v["open_records"], 2);
    let to: Vec<&str> = v["moves"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["to_owner"].as_str().unwrap())
        .collect();
    assert_eq!(to, ["ben", "ben"]);
    assert_eq!(
        owner(&rig, "L0").as_deref(),
        Some("ana"),
        "a preview changes nothing"
    );
    let (s, _) = call(
        &rig.app,
        "POST",
        "/api/reps/zed/offboard?preview=false",
        Some(OPERATOR),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, v) = call_owned(
        &mut rig,
        "POST",
        "/api/reps/ana/offboard?preview=false",
        Some(OPERATOR),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["moved"].as_array().unwrap().len(), 2);
    assert_eq!(owner(&rig, "L0").as_deref(), Some("ben"));
    assert_eq!(owner(&rig, "L2").as_deref(), Some("ben"));
    let h = rig.store.audit_for("L0", 0, i64::MAX).unwrap();
    assert!(
        h[0].explanation[0].starts_with("offboard: ana offboarded by ops"),
        "{:?}",
        h[0].explanation
    );
    assert_eq!(rig.ingest.pipeline.state().open_count("ana"), 0);
    assert_eq!(rig.store.outbox_pending(10).unwrap().len(), 2);
    let (_, v) = call(&rig.app, "GET", "/api/reps", Some(VIEWER), None).await;
    let ana = v["reps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == "ana")
        .unwrap()
        .clone();
    assert_eq!(ana["active"], false);
}

#[tokio::test]
async fn simulate_changes_nothing_and_names_bad_input() {
    let rig = rig(2, 200);
    let lead = r#"{"object":"lead","id":"N1","fields":{"country":"US"}}"#;
    let (s, d) = call(
        &rig.app,
        "POST",
        "/api/simulate?now=2026-11-25T10:00:00Z",
        Some(OPERATOR),
        Some(lead),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{d}");
    assert_eq!(d["territory"], "us");
    assert!(!d["explanation"].as_array().unwrap().is_empty());
    assert_eq!(rig.store.record_count().unwrap(), 2);
    assert!(rig.store.audit_between(0, i64::MAX, 10).unwrap().is_empty());
    let (s, v) = call(
        &rig.app,
        "POST",
        "/api/simulate",
        Some(OPERATOR),
        Some(r#"{"object":"planet"}"#),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .starts_with("body: not a record"),
        "{v}"
    );
}

fn native(id: &str, n: u32) -> String {
    json!({"v": 1, "source": "native", "event_id": format!("e-{id}-{n}"), "object": "lead",
        "record_id": id, "change": "create", "fields": {"country": "US"}})
    .to_string()
}

#[tokio::test]
async fn replay_decides_a_time_range_again_without_changing_anything() {
    let mut rig = rig(0, 200);
    let now = allot_services::now_ms();
    for (i, at) in [(0, now - 50_000), (1, now - 40_000), (2, now - 5_000)] {
        let e = RawEntry {
            v: 1,
            format: "native".into(),
            source: "test".into(),
            received_at: at,
            body: native(&format!("R{i}"), 1),
        };
        rig.store
            .log(RAW_LOG)
            .append(&serde_json::to_vec(&e).unwrap())
            .unwrap();
    }
    rig.ingest.drain().await.unwrap();
    let before = rig.store.audit_between(0, i64::MAX, 10).unwrap().len();
    assert_eq!(before, 3);
    call(
        &rig.app,
        "POST",
        "/api/rules/versions",
        Some(ADMIN),
        Some(V2),
    )
    .await;
    let body = json!({"from": now - 60_000, "to": now - 10_000, "rules": "v2"}).to_string();
    let (s, v) = call(&rig.app, "POST", "/api/replay", Some(OPERATOR), Some(&body)).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        (
            v["entries"].as_u64(),
            v["decisions"].as_u64(),
            v["changed"].as_u64()
        ),
        (Some(2), Some(2), Some(2)),
        "{v}"
    );
    let diff = &v["differences"][0];
    assert_eq!(diff["id"], "R0");
    assert_eq!(diff["replay_owner"], "cara");
    assert!(["ana", "ben"].contains(&diff["then_owner"].as_str().unwrap()));
    // Under the active rules nothing differs.
    let body = json!({"from": now - 60_000, "to": now}).to_string();
    let (_, v) = call(&rig.app, "POST", "/api/replay", Some(OPERATOR), Some(&body)).await;
    assert_eq!(
        (v["decisions"].as_u64(), v["changed"].as_u64()),
        (Some(3), Some(0)),
        "{v}"
    );
    assert_eq!(
        rig.store.audit_between(0, i64::MAX, 10).unwrap().len(),
        before
    );
    let bad = [
        (json!({"from": now, "to": now - 1}), "to must be after from"),
        (json!({"from": "then", "to": now}), "from: "),
        (
            json!({"from": 0, "to": now, "rules": "v7"}),
            "no rule version \"v7\"",
        ),
    ];
    for (body, msg) in bad {
        let (s, v) = call(
            &rig.app,
            "POST",
            "/api/replay",
            Some(OPERATOR),
            Some(&body.to_string()),
        )
        .await;
        assert!(s.is_client_error(), "{body}: {s}");
        assert!(v["message"].as_str().unwrap().contains(msg), "{body}: {v}");
    }
}

#[tokio::test]
async fn mutating_calls_are_audited_with_who_and_result() {
    let mut rig = rig(2, 200);
    call(
        &rig.app,
        "POST",
        "/api/rules/versions",
        Some(ADMIN),
        Some(V2),
    )
    .await;
    call(
        &rig.app,
        "POST",
        "/api/rules/versions/v2/activate",
        Some(ADMIN),
        None,
    )
    .await;
    call_owned(
        &mut rig,
        "PUT",
        "/api/reps/ana/active",
        Some(OPERATOR),
        Some(r#"{"active": false}"#),
    )
    .await;
    call(
        &rig.app,
        "POST",
        "/api/simulate",
        Some(OPERATOR),
        Some("{}"),
    )
    .await;
    let (s, v) = call(
        &rig.app,
        "GET",
        "/api/admin/audit?limit=10",
        Some(VIEWER),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let got: Vec<(String, String, u64)> = v["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["who"].as_str().unwrap().into(),
                e["action"].as_str().unwrap().into(),
                e["status"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("ops".into(), "PUT /api/reps/ana/active".into(), 200),
            (
                "root".into(),
                "POST /api/rules/versions/v2/activate".into(),
                409
            ),
            ("root".into(), "POST /api/rules/versions".into(), 201),
        ]
    );
    assert!(v["entries"][1]["detail"]
        .as_str()
        .unwrap()
        .contains("no dry run"));
}

#[tokio::test]
async fn openapi_describes_every_route_the_router_serves() {
    let mut rig = rig(1, 200);
    rig.ingest.control = None; // commands answer 503 at once
    let (s, doc) = call(&rig.app, "GET", "/api/openapi.json", None, None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(doc["openapi"], "3.1.0");
    let documented: BTreeSet<(String, String)> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(p, ops)| {
            ops.as_object()
                .unwrap()
                .keys()
                .map(move |m| (m.to_uppercase(), p.clone()))
        })
        .collect();
    // Every documented route is served (not 404 or 405).
    for (method, path) in &documented {
        let concrete = path
            .replace("{id}", "ana")
            .replace("{file}", "dashboard.js");
        let body = (method != "GET" && method != "DELETE").then_some("{}");
        let (s, v) = call(&rig.app, method, &concrete, Some(ADMIN), body).await;
        assert!(
            s != StatusCode::NOT_FOUND || v["status"] == "error",
            "{method} {path}: 404 without an error body"
        );
        assert_ne!(s, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
    }
    // Every route the routers register is documented.
    let sources = [
        include_str!("../src/api.rs"),
        include_str!("../src/admin/mod.rs"),
        include_str!("../src/dashboard.rs"),
    ];
    let mut registered = BTreeSet::new();
    for src in sources {
        for chunk in src.split(".route(").skip(1) {
            let path = chunk.split('"').nth(1).unwrap().to_string();
            let methods = ["get(", "post(", "put(", "delete("];
            let call = chunk.split(".route(").next().unwrap();
            let call = call.split("\n        .").next().unwrap_or(call);
            for m in methods {
                if call.contains(m) {
                    registered.insert((m.trim_end_matches('(').to_uppercase(), path.clone()));
                }
            }
        }
    }
    assert!(registered.len() > 20, "{registered:?}");
    assert_eq!(registered, documented);
    assert_eq!(openapi::ROUTES.len(), documented.len());
}
