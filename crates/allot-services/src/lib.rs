//! allot's stages and their HTTP endpoints.
//!
//! The stage logic is transport-agnostic: [`pipeline::Pipeline`] turns raw
//! CRM payloads into merged records, decisions and owner changes, staged in
//! one store batch that the caller commits together with its source position
//! before acknowledging upstream. The embedded loop ([`embedded`]) feeds it
//! from the store's durable log; the Kafka source feeds it from topics.

pub mod admin;
pub mod api;
pub mod backfill;
pub mod control;
pub mod dashboard;
pub mod embedded;
pub mod error;
pub mod http;
pub mod hydrate;
pub mod kafka;
pub mod metrics;
mod owner;
pub mod pipeline;
pub mod raw;
pub mod reader;
pub mod reconcile;
pub mod reroute;
pub mod retention;
pub mod secret;
pub mod sla;
pub mod stages;
pub mod trace;
pub mod webhooks;

pub use error::ServiceError;

/// The wall clock, read only by services (never by the engine or decoders).
pub fn now_ms() -> allot_core::Millis {
    chrono::Utc::now().timestamp_millis()
}
