//! The messages between stages: versioned JSON (`v`), keyed by record id,
//! with the event id and the W3C trace context in headers. Documented in
//! docs/topics.md; a consumer rejects (dead-letters) a version it does not know.

use allot_bus::Delivery;
use allot_core::{
    AccountRef, ChangeEvent, Crm, Decision, EngineState, Millis, ObjectKind, OwnerChange, Record,
    StateOp,
};
use serde::{Deserialize, Serialize};

/// Schema version of both messages.
pub const VERSION: u8 = 1;

/// Header names every allot message carries.
pub mod headers {
    /// The change event's id (dedupe key; also on decisions it caused).
    pub const EVENT_ID: &str = "allot-event-id";
    /// `event.v1` or `decision.v1`.
    pub const SCHEMA: &str = "allot-schema";
    /// W3C trace context of the event's trace.
    pub const TRACEPARENT: &str = "traceparent";
}

/// On `allot.events`: one decoded change event about one record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventMessage {
    pub v: u8,
    pub event: ChangeEvent,
    /// The raw message it was decoded from (`kafka:topic:partition@offset`).
    pub source: String,
    /// When ingest received it, epoch ms.
    pub received_at: Millis,
}

/// On `allot.decisions`: one decision, with the owner change it asks for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DecisionMessage {
    pub v: u8,
    pub decision: Decision,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub change: Option<OwnerChange>,
    /// When the event that caused it reached ingest (end-to-end latency).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub received_at: Option<Millis>,
}

/// On `allot.distribute`, partitioned by distribution pool: a record to
/// distribute, or load changes for the pool's reps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PoolMessage {
    pub v: u8,
    #[serde(flatten)]
    pub body: PoolBody,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum PoolBody {
    Route(Box<RouteMessage>),
    Load(LoadMessage),
}

/// A record matched (merged, hydrated, engaged) and waiting for its rep.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RouteMessage {
    /// Stable across redeliveries (`event id/record id`): repeats are dropped.
    pub id: String,
    /// The pool this hop is addressed to.
    pub at: String,
    pub record: Record,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crm: Option<Crm>,
    pub event_id: String,
    /// The decision's time, fixed by match so a redo decides the same way.
    pub now: Millis,
    /// What the decision could not know, said first in its explanation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// The account table's entries for the record's domain (lead-to-account).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub accounts: Vec<(String, Vec<AccountRef>)>,
    /// The named account owner's pool, tried first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub named: Option<String>,
    /// The pool that resolves the decision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool: Option<String>,
    /// Set once the named account refused the record in its pool: its line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refusal: Option<Option<String>>,
    /// Reps this decision must not go to (an owner the CRM refused).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude: Vec<String>,
    pub rules_version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub received_at: Option<Millis>,
}

/// Load changes caused outside the pool (a record closed, deleted,
/// reassigned by a person, or moved away from one of its reps).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoadMessage {
    /// Stable across redeliveries: repeats are dropped.
    pub id: String,
    pub at: String,
    pub ops: Vec<StateOp>,
    /// What caused it, for logs.
    pub cause: String,
}

/// On `allot.events` (schema `settled.v1`), from distribute back to match:
/// the record's decision is made; its new owner when it changed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SettledMessage {
    pub v: u8,
    pub route_id: String,
    pub object: ObjectKind,
    pub record_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    pub decided_at: Millis,
}

/// On `allot.accounts` (compacted, keyed by account id): the account
/// table every match replica reads in full.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccountMessage {
    pub v: u8,
    pub op: StateOp,
}

/// On `allot.distribute-state` (compacted, one record per partition of
/// `allot.distribute`, in the same partition): the pool state of that
/// partition as of input offset `through`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChangelogMessage {
    pub v: u8,
    pub partition: i32,
    pub through: i64,
    pub state: EngineState,
}

/// Why a message cannot be read: (dead-letter kind, reason).
pub type Rejection = (&'static str, String);

/// Reads a message of type `T` from a delivery, checking its version.
pub fn read<T: serde::de::DeserializeOwned + Versioned>(d: &Delivery) -> Result<T, Rejection> {
    let Some(body) = d.payload.as_deref() else {
        return Err(("empty", "message has no payload".into()));
    };
    let probe: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| ("envelope", format!("not JSON: {e}")))?;
    match probe.get("v").and_then(serde_json::Value::as_u64) {
        Some(v) if v == u64::from(VERSION) => {}
        Some(v) => {
            return Err((
                "version",
                format!(
                    "{} version {v} is not supported (this build reads {VERSION})",
                    T::SCHEMA
                ),
            ))
        }
        None => return Err(("envelope", format!("{}: missing field `v`", T::SCHEMA))),
    }
    serde_json::from_value(probe).map_err(|e| ("envelope", format!("{}: {e}", T::SCHEMA)))
}

pub trait Versioned {
    const SCHEMA: &'static str;
}

impl Versioned for EventMessage {
    const SCHEMA: &'static str = "event.v1";
}

impl Versioned for DecisionMessage {
    const SCHEMA: &'static str = "decision.v1";
}

impl Versioned for PoolMessage {
    const SCHEMA: &'static str = "pool.v1";
}

impl Versioned for SettledMessage {
    const SCHEMA: &'static str = "settled.v1";
}

impl Versioned for AccountMessage {
    const SCHEMA: &'static str = "account.v1";
}

impl Versioned for ChangelogMessage {
    const SCHEMA: &'static str = "changelog.v1";
}

/// The partition of `pool` in a topic of `partitions` partitions. allot
/// partitions pool-keyed topics itself, so the changelog of a partition
/// is found without knowing any client's partitioner.
pub fn pool_partition(pool: &str, partitions: i32) -> i32 {
    let n = u64::try_from(partitions.max(1)).unwrap_or(1);
    i32::try_from(fnv(pool.as_bytes(), 3) % n).unwrap_or(0)
}

/// The trace context to pass on: the delivery's, or a fresh one derived
/// from `seed` (the event id) so every hop of an event shares one trace.
pub fn traceparent(d: Option<&Delivery>, seed: &str) -> String {
    if let Some(tp) = d
        .and_then(|d| d.header(headers::TRACEPARENT))
        .and_then(|v| std::str::from_utf8(v).ok())
        .filter(|v| valid_traceparent(v))
    {
        return tp.to_string();
    }
    let (a, b) = (fnv(seed.as_bytes(), 0), fnv(seed.as_bytes(), 1));
    format!(
        "00-{a:016x}{b:016x}-{:016x}-01",
        fnv(seed.as_bytes(), 2) | 1
    )
}

fn valid_traceparent(v: &str) -> bool {
    let parts: Vec<&str> = v.split('-').collect();
    parts.len() == 4
        && parts[0].len() == 2
        && parts[1].len() == 32
        && parts[2].len() == 16
        && parts[3].len() == 2
        && parts
            .iter()
            .all(|p| p.bytes().all(|c| c.is_ascii_hexdigit()))
        && parts[1] != "00000000000000000000000000000000"
}

fn fnv(bytes: &[u8], salt: u64) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64 ^ salt.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delivery(payload: &str) -> Delivery {
        Delivery {
            topic: "allot.events".into(),
            partition: 0,
            offset: 7,
            key: Some(b"00Q1".to_vec()),
            payload: Some(payload.as_bytes().to_vec()),
            headers: vec![],
            timestamp_ms: None,
        }
    }

    #[test]
    fn rejects_unknown_versions_and_bad_shapes_with_a_reason() {
        let (kind, why) = read::<EventMessage>(&delivery(r#"{"v":2}"#)).unwrap_err();
        assert_eq!(kind, "version");
        assert!(why.contains("event.v1 version 2"), "{why}");
        let (kind, why) = read::<EventMessage>(&delivery(r#"{"v":1,"source":"x"}"#)).unwrap_err();
        assert_eq!(kind, "envelope");
        assert!(why.contains("missing field `event`"), "{why}");
        let (kind, _) = read::<DecisionMessage>(&delivery("not json")).unwrap_err();
        assert_eq!(kind, "envelope");
    }

    #[test]
    fn trace_context_is_passed_on_or_derived_from_the_event() {
        let a = traceparent(None, "evt-1");
        assert!(valid_traceparent(&a), "{a}");
        assert_eq!(a, traceparent(None, "evt-1"));
        assert_ne!(a, traceparent(None, "evt-2"));
        let mut d = delivery("{}");
        d.headers
            .push((headers::TRACEPARENT.into(), a.clone().into_bytes()));
        assert_eq!(traceparent(Some(&d), "other"), a);
        d.headers[0].1 = b"garbage".to_vec();
        assert_eq!(traceparent(Some(&d), "evt-1"), a);
    }
}
