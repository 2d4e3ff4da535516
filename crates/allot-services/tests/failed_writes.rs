//! Failed writes through the admin API, on an in-process router over a real
//! store with the pipeline owner driven by hand: listing with filters and
//! paging, counts per code, retry (the record is decided again), discard,
//! roles, audit, and 503 without a pipeline owner.
#![allow(clippy::unwrap_used)]

use allot_core::{Crm, Millis, ObjectKind, OwnerChange, Strategy, DECISION_VERSION};
use allot_store::OutboxKey;
use axum::http::StatusCode;
use serde_json::Value;

#[path = "admin_common/mod.rs"]
mod common;
use common::*;

/// Fails a change to `owner` (from `previous`) as the writer does: queued,
/// sent once, given up on with `code`.
#[allow(clippy::too_many_arguments)]
fn fail(
    rig: &Rig,
    crm: Crm,
    object: ObjectKind,
    id: &str,
    owner: &str,
    previous: Option<&str>,
    at: Millis,
    code: &str,
) {
    let c = OwnerChange {
        v: DECISION_VERSION,
        crm: Some(crm),
        record_id: id.into(),
        object,
        owner: owner.into(),
        previous_owner: previous.map(str::to_string),
        decided_at: at,
        event_id: format!("e-{id}-{at}"),
        territory: Some("us".into()),
        strategy: Strategy::OnlyCandidate,
    };
    let s = &rig.store;
    s.outbox_put(&c).unwrap();
    let key = OutboxKey::of(&c);
    assert!(s.outbox_mark_in_flight(&key, at, at).unwrap());
    let reason = format!("{code}: the crm said no to {owner}");
    assert!(s.outbox_fail(&key, at, code, &reason, at + 5).unwrap());
}

fn ids(v: &Value) -> Vec<String> {
    v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_string())
        .collect()
}

fn owner(rig: &Rig, id: &str) -> Option<String> {
    rig.store
        .record(ObjectKind::Lead, id)
        .unwrap()
        .unwrap()
        .0
        .owner
}

/// Five failed writes over two CRMs, three kinds and four codes.
fn five(rig: &Rig) {
    use ObjectKind::{Account, Contact, Lead};
    fail(
        rig,
        Crm::Salesforce,
        Lead,
        "L0",
        "ana",
        None,
        100,
        "inactive_owner",
    );
    fail(
        rig,
        Crm::Salesforce,
        Lead,
        "L1",
        "ben",
        Some("ben"),
        101,
        "rejected",
    );
    fail(
        rig,
        Crm::Hubspot,
        Contact,
        "C1",
        "ana",
        None,
        102,
        "inactive_owner",
    );
    fail(
        rig,
        Crm::Hubspot,
        Contact,
        "C2",
        "ben",
        None,
        103,
        "not_found",
    );
    fail(
        rig,
        Crm::Salesforce,
        Account,
        "A1",
        "ben",
        None,
        104,
        "gave_up",
    );
}

#[tokio::test]
async fn list_filters_pages_and_counts_by_code() {
    let rig = rig(2, 200);
    five(&rig);
    let (s, v) = call(&rig.app, "GET", "/api/writes/failed", Some(VIEWER), None).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["total"], 5);
    assert_eq!(
        v["counts"],
        serde_json::json!({"gave_up": 1, "inactive_owner": 2, "not_found": 1, "rejected": 1})
    );
    assert!(v["next"].is_null());
    let first = &v["items"][3];
    for (field, want) in [
        ("id", "lead:L0:100"),
        ("crm", "salesforce"),
        ("object", "lead"),
        ("record_id", "L0"),
        ("owner", "ana"),
        ("code", "inactive_owner"),
        ("message", "inactive_owner: the crm said no to ana"),
    ] {
        assert_eq!(first[field], want, "{field}: {first}");
    }
    assert_eq!(
        (first["attempts"].as_u64(), first["failed_at"].as_i64()),
        (Some(1), Some(105))
    );

    let cases: [(&str, &[&str]); 6] = [
        (
            "",
            &[
                "account:A1:104",
                "contact:C1:102",
                "contact:C2:103",
                "lead:L0:100",
                "lead:L1:101",
            ],
        ),
        ("crm=hubspot", &["contact:C1:102", "contact:C2:103"]),
        ("object=lead", &["lead:L0:100", "lead:L1:101"]),
        ("code=inactive_owner", &["contact:C1:102", "lead:L0:100"]),
        ("crm=salesforce&object=contact", &[]),
        ("crm=salesforce&code=gave_up", &["account:A1:104"]),
    ];
    for (query, want) in cases {
        // Pages of two, following `next`, list the same.
        let mut got = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let path = match &after {
                Some(a) => format!("/api/writes/failed?{query}&limit=2&after={a}"),
                None => format!("/api/writes/failed?{query}&limit=2"),
            };
            let (s, v) = call(&rig.app, "GET", &path, Some(VIEWER), None).await;
            assert_eq!(s, StatusCode::OK, "{path}: {v}");
            assert!(v["items"].as_array().unwrap().len() <= 2, "{path}: {v}");
            assert_eq!(v["total"], 5, "counts are over every failed write");
            got.extend(ids(&v));
            match v["next"].as_str() {
                Some(n) => after = Some(n.to_string()),
                None => break,
            }
        }
        assert_eq!(got, want, "{query}");
    }

    let bad = [
        (
            "crm=zoho",
            "crm: \"zoho\" is not salesforce, hubspot or native",
        ),
        (
            "object=planet",
            "object: \"planet\" is not lead, account or contact",
        ),
        ("after=nonsense", "failed write id \"nonsense\" is not"),
    ];
    for (query, msg) in bad {
        let path = format!("/api/writes/failed?{query}");
        let (s, v) = call(&rig.app, "GET", &path, Some(VIEWER), None).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{query}: {v}");
        assert!(v["message"].as_str().unwrap().contains(msg), "{query}: {v}");
    }
}

#[tokio::test]
async fn retry_decides_again_and_removes_the_failed_write() {
    let mut rig = rig(4, 200);
    // L0 (ana's in the store) never reached the CRM; since then ana left.
    fail(
        &rig,
        Crm::Salesforce,
        ObjectKind::Lead,
        "L0",
        "ana",
        None,
        100,
        "inactive_owner",
    );
    // L2 (ana's) failed too, but the CRM still has ben, who keeps it.
    fail(
        &rig,
        Crm::Salesforce,
        ObjectKind::Lead,
        "L2",
        "ana",
        Some("ben"),
        101,
        "rejected",
    );
    // L1 failed, and a newer change for it was written since.
    fail(
        &rig,
        Crm::Salesforce,
        ObjectKind::Lead,
        "L1",
        "cara",
        None,
        102,
        "rejected",
    );
    let mut newer = rig
        .store
        .outbox_get(&OutboxKey::new(ObjectKind::Lead, "L1"))
        .unwrap()
        .unwrap()
        .change;
    newer.owner = "ben".into();
    newer.decided_at = 150;
    rig.store.outbox_put(&newer).unwrap();
    assert!(rig.store.outbox_mark_done(&newer_key(), 150).unwrap());

    let (s, v) = call_owned(
        &mut rig,
        "PUT",
        "/api/reps/ana/active",
        Some(OPERATOR),
        Some(r#"{"active": false}"#),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let state = |rig: &Rig, rep: &str| rig.ingest.pipeline.state().open_count(rep);
    assert_eq!((state(&rig, "ana"), state(&rig, "ben")), (2, 2));

    // (failed write, owner after, whether a write is queued, message)
    let cases = [
        (
            "lead:L0:100",
            "ben",
            true,
            "lead L0 re-decided: owner ben, write queued",
        ),
        (
            "lead:L2:101",
            "ben",
            false,
            "lead L2 re-decided: owner stays ben, nothing to write",
        ),
        (
            "lead:L1:102",
            "ben",
            false,
            "lead L1 re-decided: owner stays ben, nothing to write",
        ),
    ];
    for (id, want_owner, write, message) in cases {
        let path = format!("/api/writes/failed/{id}/retry");
        let (s, v) = call_owned(&mut rig, "POST", &path, Some(OPERATOR), None).await;
        assert_eq!(s, StatusCode::OK, "{id}: {v}");
        assert_eq!(v["message"], message, "{id}: {v}");
        let r = &v["records"][0];
        assert_eq!(r["failed_write"], id);
        assert_eq!(
            (r["owner"].as_str(), r["write"].as_bool()),
            (Some(want_owner), Some(write)),
            "{id}: {v}"
        );
        let record = id.split(':').nth(1).unwrap();
        assert_eq!(owner(&rig, record).as_deref(), Some(want_owner), "{id}");
        let (s, _) = call(&rig.app, "POST", &path, Some(OPERATOR), None).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{id} is gone once retried");
    }
    // The loads follow: L0 and L2 moved from ana to ben.
    assert_eq!((state(&rig, "ana"), state(&rig, "ben")), (0, 4));
    let stored = rig.store.engine_state().unwrap();
    assert_eq!((stored.open_count("ana"), stored.open_count("ben")), (0, 4));
    // Only L0 goes to the writer again, to ben, with the retry in its audit.
    let pending: Vec<(String, String)> = rig
        .store
        .outbox_pending(10)
        .unwrap()
        .into_iter()
        .map(|e| (e.change.record_id, e.change.owner))
        .collect();
    assert_eq!(pending, [("L0".to_string(), "ben".to_string())]);
    let audit = rig.store.audit_for("L0", 0, i64::MAX).unwrap();
    assert!(
        audit[0].explanation[0]
            .starts_with("retry: failed write lead:L0:100 (inactive_owner) retried by ops"),
        "{:?}",
        audit[0].explanation
    );
    let (_, v) = call(&rig.app, "GET", "/api/writes/failed", Some(VIEWER), None).await;
    assert_eq!((v["total"].as_u64(), ids(&v).len()), (Some(0), 0), "{v}");
}

fn newer_key() -> OutboxKey {
    OutboxKey::new(ObjectKind::Lead, "L1")
}

#[tokio::test]
async fn discard_removes_and_is_audited_and_roles_apply() {
    let mut rig = rig(2, 200);
    five(&rig);
    let path = "/api/writes/failed/lead:L0:100/discard";
    let role_cases = [
        (
            "GET",
            "/api/writes/failed",
            None,
            StatusCode::UNAUTHORIZED,
            "missing bearer token",
        ),
        (
            "GET",
            "/api/writes/failed",
            Some("wrong"),
            StatusCode::UNAUTHORIZED,
            "invalid bearer token",
        ),
        (
            "POST",
            path,
            Some(VIEWER),
            StatusCode::FORBIDDEN,
            "needs role operator",
        ),
        (
            "POST",
            "/api/writes/failed/lead:L0:100/retry",
            Some(VIEWER),
            StatusCode::FORBIDDEN,
            "token eve has role viewer",
        ),
    ];
    for (method, p, token, want, msg) in role_cases {
        let (s, v) = call(&rig.app, method, p, token, None).await;
        assert_eq!(s, want, "{method} {p}: {v}");
        assert!(
            v["message"].as_str().unwrap().contains(msg),
            "{method} {p}: {v}"
        );
    }

    let (s, v) = call(&rig.app, "POST", path, Some(OPERATOR), None).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["discarded"]["id"], "lead:L0:100");
    assert_eq!(
        v["message"],
        "failed write lead:L0:100 discarded (owner ana was not written)"
    );
    let (s, v) = call(&rig.app, "POST", path, Some(OPERATOR), None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(v["status"], "error");
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .starts_with("no failed write lead:L0:100"),
        "{v}"
    );
    let (s, v) = call(
        &rig.app,
        "POST",
        "/api/writes/failed/lead:NOPE:1/retry",
        Some(OPERATOR),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{v}");
    let (s, v) = call(
        &rig.app,
        "POST",
        "/api/writes/failed/bogus/retry",
        Some(OPERATOR),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    let (_, v) = call(
        &rig.app,
        "GET",
        "/api/writes/failed?object=lead",
        Some(VIEWER),
        None,
    )
    .await;
    assert_eq!(ids(&v), ["lead:L1:101"]);
    assert_eq!(
        (v["total"].as_u64(), v["counts"]["inactive_owner"].as_u64()),
        (Some(4), Some(1))
    );

    // A record the store does not know is refused by the owner; nothing changes.
    let (s, v) = call_owned(
        &mut rig,
        "POST",
        "/api/writes/failed/contact:C1:102/retry",
        Some(OPERATOR),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(v["message"], "contact C1 is not a known record");

    // Without a pipeline owner (microservice mode) a retry answers 503, as other changes do.
    rig.ingest.control = None;
    let (s, v) = call(
        &rig.app,
        "POST",
        "/api/writes/failed/lead:L1:101/retry",
        Some(OPERATOR),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{v}");
    assert!(v["message"].as_str().unwrap().contains("allot run"), "{v}");
    let (_, v) = call(&rig.app, "GET", "/api/writes/failed", Some(VIEWER), None).await;
    assert_eq!(v["total"], 4, "nothing retried: {v}");

    let (_, v) = call(
        &rig.app,
        "GET",
        "/api/admin/audit?limit=20",
        Some(VIEWER),
        None,
    )
    .await;
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
    let by = |who: &str, action: &str, status: u64| (who.to_string(), action.to_string(), status);
    let ops = |action: &str, status: u64| by("ops", action, status);
    assert_eq!(
        got,
        [
            ops("POST /api/writes/failed/lead:L1:101/retry", 503),
            ops("POST /api/writes/failed/contact:C1:102/retry", 422),
            ops("POST /api/writes/failed/bogus/retry", 400),
            ops("POST /api/writes/failed/lead:NOPE:1/retry", 404),
            ops(&format!("POST {path}"), 404),
            ops(&format!("POST {path}"), 200),
            // The refused calls are audited too.
            by("eve", "POST /api/writes/failed/lead:L0:100/retry", 403),
            by("eve", "POST /api/writes/failed/lead:L0:100/discard", 403),
            by("(unknown token)", "GET /api/writes/failed", 401),
            by("(no token)", "GET /api/writes/failed", 401),
        ]
    );
    assert_eq!(
        v["entries"][5]["detail"],
        "failed write lead:L0:100 discarded (owner ana was not written)"
    );
}
