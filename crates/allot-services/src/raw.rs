//! The envelope of a raw payload in the embedded log: what arrived, from
//! where, when, and in which format, so that it can be decoded (again) later.

use allot_core::Millis;
use serde::{Deserialize, Serialize};

/// The embedded log raw CRM payloads are appended to.
pub const RAW_LOG: &str = "allot.raw";
/// The embedded dead-letter log.
pub const DLQ_LOG: &str = "allot.dlq";
/// The store log the writer leaves owner refusals in (events of kind
/// `owner_refused`, native JSON), for the decider to take up: the same
/// process reads it ([`crate::embedded`], [`crate::kafka`]), or the write
/// stage forwards it to the events topic ([`crate::stages::write`]).
pub const REROUTE_LOG: &str = "allot.reroute";
/// The consumer group of the embedded ingest loop.
pub const INGEST_GROUP: &str = "ingest";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RawEntry {
    pub v: u8,
    /// `auto`, `salesforce`, `hubspot` or `native`.
    pub format: String,
    /// Where it came from: `webhook:hubspot`, `webhook:salesforce`, `replay:FILE:LINE`.
    pub source: String,
    pub received_at: Millis,
    /// The payload as received (UTF-8 JSON).
    pub body: String,
}

/// A payload that could not be decoded or processed, with why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeadLetter {
    pub v: u8,
    /// Short stable label: `json`, `shape`, `field`, `overflow`, ...
    pub kind: String,
    pub reason: String,
    /// Where the payload was: `allot.raw@17`, `kafka:crm.cdc:2@9911`.
    pub source: String,
    pub at: Millis,
    pub body: String,
}
