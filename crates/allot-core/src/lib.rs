//! Domain types shared by every allot crate.
//!
//! This crate does no I/O and reads no clock: time is always an argument
//! ([`Millis`], epoch milliseconds). Everything here is plain serde data so the
//! same types cross Kafka, the embedded log, the store and the admin API.

mod decision;
mod event;
mod record;
mod state;

pub use decision::{
    CandidateNote, CandidateOutcome, Decision, DistributionNote, OwnerChange, SkippedRep, Strategy,
    DECISION_VERSION,
};
pub use event::{ChangeEvent, ChangeKind, Crm, EVENT_VERSION, WRITER_SCOPE};
pub use record::{ObjectKind, Record, Value};
pub use state::{AccountRef, Cursor, DailyCount, EngineState, StateOp};

/// Epoch milliseconds (UTC). The only notion of time in the domain.
pub type Millis = i64;

/// Milliseconds in one day.
pub const DAY_MS: Millis = 86_400_000;
