//! Integration tests of allot-events, one binary (tables of `check` cases).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod echo;
mod errors;
mod examples;
mod fieldmap;
mod hubspot;
mod lines;
mod merge;
mod native;
mod props;
mod purity;
mod salesforce;

use std::collections::BTreeMap;

use allot_core::{ChangeEvent, ChangeKind, Crm, ObjectKind, Value, EVENT_VERSION};
use allot_events::{decode, Format};

/// A field table from pairs.
pub fn fields(pairs: &[(&str, Value)]) -> BTreeMap<String, Value> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect()
}

pub fn strs(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| s.to_string()).collect()
}

pub fn s(text: &str) -> Value {
    Value::Str(text.to_string())
}

/// An event with the given identity and everything else empty.
pub fn event(
    source: Crm,
    event_id: &str,
    object: ObjectKind,
    record_id: Option<&str>,
    change: ChangeKind,
) -> ChangeEvent {
    ChangeEvent {
        v: EVENT_VERSION,
        source,
        event_id: event_id.to_string(),
        object,
        record_id: record_id.map(str::to_string),
        change,
        changed_fields: Vec::new(),
        fields: BTreeMap::new(),
        commit_time: None,
        sequence: None,
        commit_user: None,
        origin: None,
        transaction: None,
        // Salesforce replay ids are scoped by object (channel).
        scope: (source == Crm::Salesforce).then(|| object.to_string()),
    }
}

/// Decodes `input` and expects exactly `expected`, without errors.
#[track_caller]
pub fn check(input: &str, format: Format, expected: &[ChangeEvent]) {
    let got = decode(input.as_bytes(), format);
    assert_eq!(got.errors, vec![], "unexpected errors for {input}");
    assert_eq!(got.events, expected, "events for {input}");
}
