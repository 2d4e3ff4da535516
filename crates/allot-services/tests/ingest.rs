//! The embedded ingest loop end to end over a real store: raw CRM payloads
//! in the log → records, decisions, outbox, dead letters, dedupe, echoes.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use allot_events::Format;
use allot_rules::RuleSet;
use allot_services::embedded::EmbeddedIngest;
use allot_services::hydrate::Hydrator;
use allot_services::metrics::Metrics;
use allot_services::pipeline::{EchoConfig, FieldMaps, Pipeline};
use allot_services::raw::{DeadLetter, RawEntry, DLQ_LOG, INGEST_GROUP, RAW_LOG, REROUTE_LOG};
use allot_store::Store;
use tokio::sync::Notify;

const RULES: &str = include_str!("../../../config/rules.example.toml");

fn sf_lead(replay: u64, id: &str, change: &str, fields: &str, origin: &str) -> String {
    format!(
        r#"{{"schema":"x","payload":{{"ChangeEventHeader":{{"entityName":"Lead","recordIds":["{id}"],"changeType":"{change}","changeOrigin":"{origin}","transactionKey":"t{replay}","sequenceNumber":1,"commitTimestamp":{ts},"commitNumber":{replay},"commitUser":"005x","changedFields":[{changed}]}}{fields}}},"event":{{"replayId":{replay}}},"channel":"/data/LeadChangeEvent"}}"#,
        ts = 1_714_153_779_000u64 + replay,
        changed = if change == "UPDATE" {
            r#""Address.Country","LastModifiedDate""#
        } else {
            ""
        },
    )
}

struct Rig {
    ingest: EmbeddedIngest,
    metrics: Metrics,
}

fn rig(store: Arc<Store>) -> Rig {
    rig_with(store, RULES)
}

fn rig_with(store: Arc<Store>, rules: &str) -> Rig {
    let rules = Arc::new(RuleSet::from_toml(rules, "rules").unwrap());
    let echo = EchoConfig::new("allot", Some("1160452"));
    let metrics = Metrics::new();
    let pipeline = Pipeline::new(
        store.clone(),
        rules,
        FieldMaps::default(),
        echo,
        Hydrator::Off,
        metrics.clone(),
    )
    .unwrap();
    let ingest = EmbeddedIngest {
        store: store.clone(),
        pipeline,
        outbox_ready: Arc::new(Notify::new()),
        max_chunk: 64,
        sla: Some(allot_services::sla::SlaConfig {
            enabled: true,
            untouched_minutes: 60,
            max_reroutes: 2,
            ..Default::default()
        }),
        control: None,
    };
    Rig { ingest, metrics }
}

fn append(store: &Store, format: &str, body: &str) {
    let e = RawEntry {
        v: 1,
        format: format.into(),
        source: "test".into(),
        received_at: 0,
        body: body.into(),
    };
    store
        .log(RAW_LOG)
        .append(&serde_json::to_vec(&e).unwrap())
        .unwrap();
}

async fn drain(r: &mut Rig) -> (usize, usize) {
    let (mut decisions, mut changes) = (0, 0);
    loop {
        let rep = r.ingest.step().await.unwrap();
        if rep.entries == 0 {
            return (decisions, changes);
        }
        decisions += rep.decisions;
        changes += rep.changes;
    }
}

#[tokio::test]
async fn payloads_become_decisions_outbox_and_dead_letters() {
    let store = Arc::new(Store::temporary().unwrap());
    let mut r = rig(store.clone());
    let create = sf_lead(
        1,
        "00Q000000000001AAA",
        "CREATE",
        r#","Address":{"Country":"United States","State":"California","PostalCode":"94105"},"Email":"a@cardinal.example""#,
        "com/salesforce/api/rest/62.0;client=web",
    );
    append(&store, "auto", &create);
    append(&store, "auto", "{not json");
    append(&store, "auto", &create); // redelivery
    let hubspot = include_str!("../../allot-events/tests/data/hubspot-webhook-batch.json");
    append(&store, "hubspot", hubspot);
    let (decisions, changes) = drain(&mut r).await;
    // The lead; the HubSpot contact's creation (no fields and no CRM to read
    // them from: the fallback) and its country change (EMEA). The company's
    // owner change was made by hand and decides nothing.
    assert_eq!(
        decisions, 3,
        "lead create, contact create, contact country change"
    );
    assert_eq!(changes, 3);
    assert_eq!(r.metrics.deduped.get(), 1);
    let (lead, _) = store
        .record(allot_core::ObjectKind::Lead, "00Q000000000001AAA")
        .unwrap()
        .unwrap();
    assert_eq!(lead.owner.as_deref(), Some("005-ana"));
    assert_eq!(
        lead.fields.get("country"),
        Some(&allot_core::Value::from("United States"))
    );
    let pending = store.outbox_pending(10).unwrap();
    assert_eq!(
        pending.len(),
        2,
        "the contact's second decision supersedes its first"
    );
    assert!(pending.iter().all(|p| p.change.crm.is_some()));
    let dlq = store.log(DLQ_LOG).read(0, 10).unwrap();
    assert_eq!(dlq.len(), 1);
    let dead: DeadLetter = serde_json::from_slice(&dlq[0].1).unwrap();
    assert_eq!(dead.kind, "json");
    assert!(dead.source.starts_with("allot.raw@1"), "{}", dead.source);
    let audit = store.audit_for("00Q000000000001AAA", 0, i64::MAX).unwrap();
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0].territory.as_deref(), Some("na-bay-area"));
    assert_eq!(store.log(RAW_LOG).committed(INGEST_GROUP).unwrap(), 4);
}

#[tokio::test]
async fn partial_updates_merge_and_redecide_only_on_fields_rules_read() {
    let store = Arc::new(Store::temporary().unwrap());
    let mut r = rig(store.clone());
    let id = "00Q000000000002AAA";
    append(
        &store,
        "salesforce",
        &sf_lead(
            10,
            id,
            "CREATE",
            r#","Address":{"Country":"US","State":"TX"}"#,
            "x",
        ),
    );
    append(
        &store,
        "salesforce",
        &sf_lead(
            11,
            id,
            "UPDATE",
            r#","Address":{"Country":"Germany"},"LastModifiedDate":"2024-04-26T17:49:39.000Z""#,
            "x",
        ),
    );
    let (decisions, _) = drain(&mut r).await;
    assert_eq!(decisions, 2);
    let audit = store.audit_for(id, 0, i64::MAX).unwrap();
    assert_eq!(
        audit.last().and_then(|d| d.territory.clone()).as_deref(),
        Some("emea")
    );
    let (rec, _) = store
        .record(allot_core::ObjectKind::Lead, id)
        .unwrap()
        .unwrap();
    assert_eq!(
        rec.fields.get("state"),
        Some(&allot_core::Value::from("TX")),
        "unchanged fields are kept"
    );
    // An update of a field no rule reads decides nothing.
    let other = sf_lead(12, id, "UPDATE", r#","Description":"call back""#, "x").replace(
        r#""Address.Country","LastModifiedDate""#,
        r#""Description""#,
    );
    append(&store, "salesforce", &other);
    assert_eq!(drain(&mut r).await.0, 0);
}

#[tokio::test]
async fn own_writes_coming_back_trigger_nothing() {
    let store = Arc::new(Store::temporary().unwrap());
    let mut r = rig(store.clone());
    let id = "00Q000000000003AAA";
    append(
        &store,
        "salesforce",
        &sf_lead(20, id, "CREATE", r#","Address":{"Country":"CA"}"#, "x"),
    );
    assert_eq!(drain(&mut r).await.0, 1);
    // The owner write comes back from allot's client id, also changing country.
    let echo = sf_lead(
        21,
        id,
        "UPDATE",
        r#","Address":{"Country":"Germany"},"OwnerId":"005-ana""#,
        "com/salesforce/api/rest/62.0;client=allot",
    );
    append(&store, "salesforce", &echo);
    assert_eq!(drain(&mut r).await.0, 0);
    assert_eq!(r.metrics.echoes.get(), 1);
}

#[tokio::test]
async fn a_restarted_loop_resumes_and_dedupes() {
    let dir = tempfile::tempdir().unwrap();
    let body = sf_lead(
        30,
        "00Q000000000004AAA",
        "CREATE",
        r#","Address":{"Country":"US"}"#,
        "x",
    );
    {
        let store = Arc::new(Store::open(dir.path()).unwrap());
        let mut r = rig(store.clone());
        append(&store, "auto", &body);
        assert_eq!(drain(&mut r).await.0, 1);
    }
    let store = Arc::new(Store::open(dir.path()).unwrap());
    let mut r = rig(store.clone());
    assert_eq!(
        drain(&mut r).await.0,
        0,
        "nothing left to process after restart"
    );
    append(&store, "auto", &body);
    assert_eq!(drain(&mut r).await.0, 0, "a replayed event is deduped");
    assert_eq!(r.metrics.deduped.get(), 1);
    // State survived: the next Canadian lead continues the rotation.
    assert_eq!(
        r.ingest
            .pipeline
            .state()
            .cursors
            .get("na-ae")
            .and_then(|c| c.last.clone())
            .as_deref(),
        Some("005-ana")
    );
    let _ = Format::Auto;
}

#[tokio::test]
async fn untouched_leads_are_rerouted_at_most_twice_with_the_reason_audited() {
    let store = Arc::new(Store::temporary().unwrap());
    let mut r = rig(store.clone());
    let id = "00Q000000000009AAA";
    let touched = "00Q000000000010AAA";
    append(
        &store,
        "salesforce",
        &sf_lead(
            40,
            id,
            "CREATE",
            r#","Address":{"Country":"CA"},"Status":"Open - Not Contacted""#,
            "x",
        ),
    );
    append(
        &store,
        "salesforce",
        &sf_lead(
            41,
            touched,
            "CREATE",
            r#","Address":{"Country":"CA"},"Status":"Working - Contacted""#,
            "x",
        ),
    );
    assert_eq!(drain(&mut r).await.0, 2);
    let first = store.audit_for(id, 0, i64::MAX).unwrap()[0].clone();
    let t0 = first.decided_at;
    let hour = 3_600_000;
    // Not yet due.
    assert_eq!(
        r.ingest.sla_step(t0 - 1, t0 + 30 * 60_000).await.unwrap(),
        0
    );
    // Due: re-routed to another rep of the team, the reason first in the explanation.
    assert_eq!(r.ingest.sla_step(t0 - 1, t0 + hour + 1).await.unwrap(), 1);
    let h = store.audit_for(id, 0, i64::MAX).unwrap();
    assert_eq!(h.len(), 2);
    assert_ne!(h[1].owner, first.owner);
    assert_eq!(h[1].previous_owner, first.owner);
    assert!(
        h[1].explanation[0].starts_with("sla: untouched 60 min after assignment"),
        "{:?}",
        h[1].explanation
    );
    assert!(h[1].explanation[0].ends_with("(1 of 2)"));
    // Once more an hour later, then never again.
    assert_eq!(
        r.ingest
            .sla_step(t0 + hour, t0 + 2 * hour + 2)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        r.ingest
            .sla_step(t0 + 2 * hour, t0 + 3 * hour + 3)
            .await
            .unwrap(),
        0
    );
    assert_eq!(store.audit_for(id, 0, i64::MAX).unwrap().len(), 3);
    // The worked lead was never touched by the SLA.
    assert_eq!(store.audit_for(touched, 0, i64::MAX).unwrap().len(), 1);
    let pending = store.outbox_pending(10).unwrap();
    let mine = pending.iter().find(|p| p.change.record_id == id).unwrap();
    assert_eq!(
        Some(mine.change.owner.clone()),
        store.audit_for(id, 0, i64::MAX).unwrap()[2].owner
    );
}

/// A Salesforce Account CDC event (its own channel) with replay id `replay`.
fn sf_account(replay: u64, id: &str) -> String {
    format!(
        r#"{{"schema":"x","payload":{{"ChangeEventHeader":{{"entityName":"Account","recordIds":["{id}"],"changeType":"CREATE","changeOrigin":"com/salesforce/api/rest/62.0;client=web","transactionKey":"a{replay}","sequenceNumber":1,"commitTimestamp":1714153779000,"commitNumber":{replay},"commitUser":"005x","changedFields":[]}},"Name":"Acme {id}","BillingAddress":{{"Country":"United States"}}}},"event":{{"replayId":{replay}}},"channel":"/data/AccountChangeEvent"}}"#
    )
}

/// A HubSpot contact creation with `eventId` `event_id` in portal `portal`.
fn hs_contact(event_id: u64, portal: u64, id: &str) -> String {
    format!(
        r#"[{{"eventId":{event_id},"subscriptionId":7,"portalId":{portal},"appId":1160452,"occurredAt":1714153779000,"subscriptionType":"contact.creation","attemptNumber":0,"objectId":{id},"changeSource":"CRM_UI"}}]"#
    )
}

#[tokio::test]
async fn colliding_event_ids_are_each_decided_once_and_redeliveries_dropped() {
    let store = Arc::new(Store::temporary().unwrap());
    let mut r = rig(store.clone());
    let lead = sf_lead(
        42,
        "00Q000000000042AAA",
        "CREATE",
        r#","Address":{"Country":"United States"},"Email":"x@lead42.example""#,
        "com/salesforce/api/rest/62.0;client=web",
    );
    // Replay id 42 on the Lead and the Account channels, eventId 42 in two
    // HubSpot portals: four different events.
    let events = [
        ("auto", lead.clone()),
        ("auto", sf_account(42, "001000000000042AAA")),
        ("hubspot", hs_contact(42, 62515, "4201")),
        ("hubspot", hs_contact(42, 99999, "4202")),
    ];
    for (format, body) in &events {
        append(&store, format, body);
    }
    let (decisions, _) = drain(&mut r).await;
    assert_eq!(decisions, 4, "every colliding event decided once");
    assert_eq!(r.metrics.deduped.get(), 0);
    // True redeliveries (same CRM, scope and id) are dropped, in a later chunk too.
    for (format, body) in &events {
        append(&store, format, body);
    }
    let (decisions, _) = drain(&mut r).await;
    assert_eq!(decisions, 0, "redeliveries decide nothing");
    assert_eq!(r.metrics.deduped.get(), 4);
    for id in ["00Q000000000042AAA", "001000000000042AAA", "4201", "4202"] {
        assert_eq!(
            store.audit_for(id, i64::MIN, i64::MAX).unwrap().len(),
            1,
            "{id}"
        );
    }
}

/// What the writer commits with a failed write refused for an inactive owner.
fn refuse(store: &Store, change: &allot_core::OwnerChange) {
    let event = allot_core::ChangeEvent::owner_refused(change, "INACTIVE_OWNER_OR_USER: gone", 9);
    store
        .log(REROUTE_LOG)
        .append(&serde_json::to_vec(&event).unwrap())
        .unwrap();
}

#[tokio::test]
async fn an_owner_refusal_left_by_a_crashed_writer_is_decided_again_without_that_owner() {
    const TEAM: &str = r#"
version = "t"
fallback = { rep = "q" }
[[reps]]
id = "k"
[[reps]]
id = "m"
[[reps]]
id = "q"
[[teams]]
id = "apac"
members = ["k", "m"]
[[territories]]
id = "apac"
owner = { team = "apac" }
criteria = { field = "country", equals = "JP" }
"#;
    let store = Arc::new(Store::temporary().unwrap());
    let mut r = rig_with(store.clone(), TEAM);
    append(
        &store,
        "native",
        r#"{"v":1,"source":"native","event_id":"e1","object":"lead","record_id":"L1","change":"create","fields":{"country":"JP"},"commit_time":1}"#,
    );
    assert_eq!(drain(&mut r).await, (1, 1));
    let first = store.audit_for("L1", 0, i64::MAX).unwrap();
    assert_eq!(first[0].owner.as_deref(), Some("k"));
    let change = first[0].owner_change("e1").unwrap();
    // The writer committed the refusal, and the process died before the
    // decider saw it: a new one on the same store takes it up.
    refuse(&store, &change);
    drop(r);
    let mut r = rig_with(store.clone(), TEAM);
    assert_eq!(drain(&mut r).await, (1, 1));
    let history = store.audit_for("L1", 0, i64::MAX).unwrap();
    assert_eq!(history.len(), 2);
    let d = &history[1];
    assert_eq!(d.owner.as_deref(), Some("m"), "{d:#?}");
    assert!(
        d.explanation[0].starts_with(
            "re-routed: native refused owner k as inactive (INACTIVE_OWNER_OR_USER: gone)"
        ),
        "{:?}",
        d.explanation
    );
    assert_eq!(d.previous_owner, None, "the CRM never showed k");
    let state = store.engine_state().unwrap();
    assert_eq!(
        (
            state.open.get("k").copied().unwrap_or(0),
            state.open.get("m").copied()
        ),
        (0, Some(1)),
        "the loads follow"
    );
    // The same refusal again (a repeat), and one about an owner the record
    // no longer has: neither decides anything.
    refuse(&store, &change);
    refuse(
        &store,
        &allot_core::OwnerChange {
            decided_at: change.decided_at + 1,
            ..change
        },
    );
    assert_eq!(drain(&mut r).await, (0, 0));
    assert_eq!(store.audit_for("L1", 0, i64::MAX).unwrap().len(), 2);
}
