//! Durable allot state on sled behind a narrow, synchronous API.
//!
//! One [`Store`] holds every table the stages need: records with the order
//! key of the last applied event, the dedupe window, source positions, the
//! write ledger, engine state, the audit trail, the writer's outbox, rule
//! versions and the embedded durable log ([`Log`]). Callers in async code wrap
//! calls in `spawn_blocking`; nothing here needs a runtime.
//!
//! # Writes: one batch, one transaction, one flush
//! Every change goes through a [`Batch`] committed by [`Store::commit`]: the
//! batch runs as one sled transaction and then `flush`es (fsync), so when
//! `commit` returns the caller may acknowledge its upstream offset. The
//! convenience methods (`Store::outbox_put`, `Log::append`, ...) are one-op
//! batches.
//!
//! # Layout: one sled tree per table
//! Each table is its own sled tree (see [`Table`]) and a batch is a sled
//! transaction over all of them. Why trees rather than one tree with key
//! prefixes:
//! - sled makes multi-tree transactions atomic across a crash (the writes are
//!   sealed as one log batch) and serialises every transaction behind one
//!   global lock either way, so prefixes would buy neither atomicity nor
//!   concurrency;
//! - per-table trees make `check`, counting and scans plain full-tree
//!   iterations, and the tree name is the table name printed in errors.
//!
//! Keys are order-preserving tuples (`key.rs`) so range scans are sled
//! ranges; values are enveloped (`codec.rs`): format version, CRC32, payload.
//! Key layout per table is documented on [`Table`].

#![warn(missing_docs)]

mod admin;
mod audit;
mod batch;
mod check;
mod codec;
mod dedupe;
mod error;
mod failed;
mod key;
mod log;
mod outbox;
mod records;
mod rules;
mod signal;
mod state;
mod store;
mod tx;

pub use admin::{AdminAuditEntry, DRY_RUN, JOB, OVERRIDE};
pub use batch::{Batch, Receipt};
pub use check::{CheckReport, CorruptEntry, TableCount};
pub use error::{Result, StoreError};
pub use failed::{FailedFilter, FailedPage, FailedWriteId};
pub use log::Log;
pub use outbox::{FailedWrite, OutboxEntry, OutboxKey, OutboxPut, OutboxState, Superseded};
pub use records::{OrderKey, Position};
pub use rules::RuleVersion;
pub use signal::LogChanged;
pub use store::{Store, Table, DEFAULT_CACHE_BYTES};
