//! Atomic write batches.
//!
//! A [`Batch`] is a list of operations collected without touching the store;
//! [`Store::commit`] applies them all in one sled transaction over every
//! table and then flushes, so after `commit` returns either everything in the
//! batch is on disk or (on error) nothing is. Operations that read before they
//! write (outbox supersede, state counters, log offsets) see the writes of
//! earlier operations in the same batch.

use std::collections::BTreeSet;

use allot_core::{Decision, Millis, ObjectKind, OwnerChange, Record, StateOp};

use crate::error::Result;
use crate::failed::FailedWriteId;
use crate::outbox::{OutboxKey, OutboxPut};
use crate::records::{OrderKey, Position};
use crate::store::Store;
use crate::tx::{Tx, TxResult};
use crate::{admin, audit, dedupe, failed, log, outbox, records, rules, state};

/// Operations to commit together. Build with [`Store::batch`], apply with
/// [`Store::commit`]. Building never fails; problems surface from `commit`.
#[derive(Debug, Default, Clone)]
pub struct Batch {
    ops: Vec<Op>,
}

/// One queued operation; each maps to a `tx_*` function of its table module.
#[derive(Debug, Clone)]
pub(crate) enum Op {
    PutRecord {
        record: Box<Record>,
        applied: Option<OrderKey>,
    },
    MarkSeen {
        event_id: String,
        at_ms: Millis,
    },
    SetPosition {
        source: String,
        position: Position,
    },
    RecordWrite {
        object: ObjectKind,
        record_id: String,
        owner: String,
        at_ms: Millis,
    },
    StateOps(Vec<StateOp>),
    Audit(Box<Decision>),
    OutboxPut(Box<OwnerChange>),
    OutboxInFlight {
        key: OutboxKey,
        decided_at: Millis,
        now_ms: Millis,
    },
    OutboxDone {
        key: OutboxKey,
        decided_at: Millis,
    },
    OutboxFail {
        key: OutboxKey,
        decided_at: Millis,
        code: String,
        reason: String,
        at_ms: Millis,
    },
    FailedDiscard(FailedWriteId),
    PutRule {
        version_id: String,
        toml: String,
        effective_at: Millis,
        activated_by: Option<String>,
    },
    LogAppend {
        log: String,
        payload: Vec<u8>,
    },
    LogCommit {
        log: String,
        group: String,
        next: u64,
    },
    AdminPut {
        kind: String,
        name: String,
        value: serde_json::Value,
    },
}

/// What a commit did, for the operations whose effect depends on stored state.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Receipt {
    /// The offset given to each `log_append`, in call order.
    pub log_offsets: Vec<u64>,
    /// The outcome of each `outbox_put`, in call order.
    pub outbox_puts: Vec<OutboxPut>,
    /// For each `outbox_mark_in_flight` / `outbox_mark_done` / `outbox_fail`,
    /// in call order: whether it applied (false when a newer change replaced
    /// the one named, or it was already settled).
    pub outbox_updates: Vec<bool>,
}

impl Batch {
    /// Number of queued operations.
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// Whether nothing is queued (committing it is a no-op).
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// Stores `record` (replacing any previous version) with the order key
    /// `(commit time, sequence)` of the last event applied to it.
    pub fn put_record(&mut self, record: &Record, applied: Option<OrderKey>) -> &mut Self {
        self.push(Op::PutRecord {
            record: Box::new(record.clone()),
            applied,
        })
    }

    /// Adds `event_id` to the dedupe window, seen at `at_ms`.
    pub fn mark_seen(&mut self, event_id: &str, at_ms: Millis) -> &mut Self {
        self.push(Op::MarkSeen {
            event_id: event_id.to_string(),
            at_ms,
        })
    }

    /// Records how far `source` (e.g. `kafka:allot.events:3`) has been consumed.
    pub fn set_position(&mut self, source: &str, position: impl Into<Position>) -> &mut Self {
        self.push(Op::SetPosition {
            source: source.to_string(),
            position: position.into(),
        })
    }

    /// Notes that allot set `owner` on a record at `at_ms`, so the echo of
    /// that write coming back from the CRM can be recognised and dropped.
    pub fn record_write(
        &mut self,
        object: ObjectKind,
        record_id: &str,
        owner: &str,
        at_ms: Millis,
    ) -> &mut Self {
        self.push(Op::RecordWrite {
            object,
            record_id: record_id.to_string(),
            owner: owner.to_string(),
            at_ms,
        })
    }

    /// Applies engine state changes, in order, with `EngineState::apply` semantics.
    pub fn apply_state_ops(&mut self, ops: &[StateOp]) -> &mut Self {
        if ops.is_empty() {
            return self;
        }
        self.push(Op::StateOps(ops.to_vec()))
    }

    /// Appends a decision to the audit trail.
    pub fn append_audit(&mut self, decision: &Decision) -> &mut Self {
        self.push(Op::Audit(Box::new(decision.clone())))
    }

    /// Queues an owner change for the writer (see [`Store::outbox_put`]).
    pub fn outbox_put(&mut self, change: &OwnerChange) -> &mut Self {
        self.push(Op::OutboxPut(Box::new(change.clone())))
    }

    /// See [`Store::outbox_mark_in_flight`].
    pub fn outbox_mark_in_flight(
        &mut self,
        key: &OutboxKey,
        decided_at: Millis,
        now_ms: Millis,
    ) -> &mut Self {
        self.push(Op::OutboxInFlight {
            key: key.clone(),
            decided_at,
            now_ms,
        })
    }

    /// See [`Store::outbox_mark_done`].
    pub fn outbox_mark_done(&mut self, key: &OutboxKey, decided_at: Millis) -> &mut Self {
        self.push(Op::OutboxDone {
            key: key.clone(),
            decided_at,
        })
    }

    /// See [`Store::outbox_fail`].
    pub fn outbox_fail(
        &mut self,
        key: &OutboxKey,
        decided_at: Millis,
        code: &str,
        reason: &str,
        at_ms: Millis,
    ) -> &mut Self {
        self.push(Op::OutboxFail {
            key: key.clone(),
            decided_at,
            code: code.to_string(),
            reason: reason.to_string(),
            at_ms,
        })
    }

    /// Removes failed write `id` if it is there (see [`Store::failed_write_discard`]).
    pub fn failed_write_discard(&mut self, id: &FailedWriteId) -> &mut Self {
        self.push(Op::FailedDiscard(id.clone()))
    }

    /// See [`Store::put_rule_version`].
    pub fn put_rule_version(
        &mut self,
        version_id: &str,
        toml: &str,
        effective_at: Millis,
        activated_by: Option<&str>,
    ) -> &mut Self {
        self.push(Op::PutRule {
            version_id: version_id.to_string(),
            toml: toml.to_string(),
            effective_at,
            activated_by: activated_by.map(str::to_string),
        })
    }

    /// Appends a message to embedded log `log`; its offset is in the
    /// [`Receipt`]. Lets a stage consume, produce and commit atomically.
    pub fn log_append(&mut self, log: &str, payload: &[u8]) -> &mut Self {
        self.push(Op::LogAppend {
            log: log.to_string(),
            payload: payload.to_vec(),
        })
    }

    /// Sets consumer `group`'s committed position in `log` to `next`.
    pub fn log_commit(&mut self, log: &str, group: &str, next: u64) -> &mut Self {
        self.push(Op::LogCommit {
            log: log.to_string(),
            group: group.to_string(),
            next,
        })
    }

    /// Stores an operator document (`kind` is `override`, `dry_run` or
    /// `job`; see [`Store::admin_put`]); `Value::Null` removes it.
    pub fn admin_put(&mut self, kind: &str, name: &str, value: serde_json::Value) -> &mut Self {
        self.push(Op::AdminPut {
            kind: kind.to_string(),
            name: name.to_string(),
            value,
        })
    }

    fn push(&mut self, op: Op) -> &mut Self {
        self.ops.push(op);
        self
    }
}

impl Store {
    /// An empty batch. It does not borrow the store.
    pub fn batch(&self) -> Batch {
        Batch::default()
    }

    /// Applies `batch` atomically and flushes it to disk before returning.
    /// On error nothing of the batch is stored.
    pub fn commit(&self, batch: Batch) -> Result<Receipt> {
        if batch.is_empty() {
            return Ok(Receipt::default());
        }
        let receipt = self.inner.transact(|tx| {
            let mut receipt = Receipt::default();
            for op in &batch.ops {
                apply(tx, op, &mut receipt)?;
            }
            Ok(receipt)
        })?;
        let appended: BTreeSet<&str> = batch
            .ops
            .iter()
            .filter_map(|op| match op {
                Op::LogAppend { log, .. } => Some(log.as_str()),
                _ => None,
            })
            .collect();
        for name in appended {
            self.signal(name).bump();
        }
        Ok(receipt)
    }
}

fn apply(tx: &Tx<'_>, op: &Op, receipt: &mut Receipt) -> TxResult<()> {
    match op {
        Op::PutRecord { record, applied } => records::tx_put_record(tx, record, *applied),
        Op::MarkSeen { event_id, at_ms } => dedupe::tx_mark_seen(tx, event_id, *at_ms),
        Op::SetPosition { source, position } => records::tx_set_position(tx, source, position),
        Op::RecordWrite {
            object,
            record_id,
            owner,
            at_ms,
        } => records::tx_record_write(tx, *object, record_id, owner, *at_ms),
        Op::StateOps(ops) => ops.iter().try_for_each(|op| state::tx_apply(tx, op)),
        Op::Audit(decision) => audit::tx_append(tx, decision),
        Op::OutboxPut(change) => {
            receipt.outbox_puts.push(outbox::tx_put(tx, change)?);
            Ok(())
        }
        Op::OutboxInFlight {
            key,
            decided_at,
            now_ms,
        } => {
            receipt
                .outbox_updates
                .push(outbox::tx_in_flight(tx, key, *decided_at, *now_ms)?);
            Ok(())
        }
        Op::OutboxDone { key, decided_at } => {
            receipt
                .outbox_updates
                .push(outbox::tx_done(tx, key, *decided_at)?);
            Ok(())
        }
        Op::OutboxFail {
            key,
            decided_at,
            code,
            reason,
            at_ms,
        } => {
            receipt.outbox_updates.push(outbox::tx_fail(
                tx,
                key,
                *decided_at,
                code,
                reason,
                *at_ms,
            )?);
            Ok(())
        }
        Op::FailedDiscard(id) => failed::tx_discard(tx, id).map(drop),
        Op::PutRule {
            version_id,
            toml,
            effective_at,
            activated_by,
        } => rules::tx_put(tx, version_id, toml, *effective_at, activated_by.as_deref()),
        Op::LogAppend { log, payload } => {
            receipt.log_offsets.push(log::tx_append(tx, log, payload)?);
            Ok(())
        }
        Op::LogCommit { log, group, next } => log::tx_commit_group(tx, log, group, *next),
        Op::AdminPut { kind, name, value } => admin::tx_put(tx, kind, name, value),
    }
}
