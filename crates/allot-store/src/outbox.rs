//! The writer's outbox: the newest owner change per record and its delivery
//! state.
//!
//! One entry per `(object, record id)`. A newer decision replaces an older
//! one not yet written (coalescing), so the CRM only ever receives the latest
//! owner. Done and failed entries are kept (one per record, bounded by the
//! record count) because they remember the newest `decided_at` seen: a stale
//! decision redelivered after its successor was written is ignored instead of
//! being written over it. `outbox_queue` indexes the entries still to do by
//! `decided_at`, oldest first, so the writer never scans settled entries.

use allot_core::{Millis, ObjectKind, OwnerChange};
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::key::{Key, Reader};
use crate::store::{Store, Table};
use crate::tx::{Tx, TxResult};

/// Identifies an outbox entry: one per record.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct OutboxKey {
    /// Ids are unique per object kind only (HubSpot), so the kind is part of the key.
    pub object: ObjectKind,
    /// The CRM record id.
    pub record_id: String,
}

impl OutboxKey {
    /// The key of record `record_id` of kind `object`.
    pub fn new(object: ObjectKind, record_id: &str) -> OutboxKey {
        OutboxKey {
            object,
            record_id: record_id.to_string(),
        }
    }

    /// The key `change` is stored under.
    pub fn of(change: &OwnerChange) -> OutboxKey {
        OutboxKey::new(change.object, &change.record_id)
    }
}

/// Where an owner change is in its delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum OutboxState {
    /// Waiting for the writer.
    Pending,
    /// Handed to the writer.
    InFlight {
        /// Which attempt this is, counting from 1.
        attempt: u32,
        /// When it was handed out, to requeue it after a crash or a lost lease.
        since: Millis,
    },
    /// Written to the CRM.
    Done,
    /// The writer gave up; details are in the failed-writes table.
    Failed,
}

impl OutboxState {
    /// Whether the change still has to be written.
    pub fn is_open(self) -> bool {
        matches!(self, OutboxState::Pending | OutboxState::InFlight { .. })
    }
}

/// What an entry replaced before it was written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Superseded {
    /// `decided_at` of the newest change replaced.
    pub decided_at: Millis,
    /// Whether a replaced change was in flight: its write may still land in
    /// the CRM, so the writer should write this entry after that attempt
    /// settles (or times out), never concurrently with it.
    pub was_in_flight: bool,
    /// The owner that write sets, when known: once the CRM shows it, the
    /// write has landed and cannot land again later.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_flight_owner: Option<String>,
}

/// One record's newest owner change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxEntry {
    /// The newest owner change decided for the record.
    pub change: OwnerChange,
    /// Where `change` is in its delivery.
    pub state: OutboxState,
    /// Attempts made for this change (kept when a lost lease sends it back to pending).
    #[serde(default)]
    pub attempts: u32,
    /// The older change this one replaced, while this one is not yet written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub superseded: Option<Superseded>,
}

/// What `outbox_put` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutboxPut {
    /// Queued: no entry for the record, or only settled (done/failed) older ones.
    Inserted,
    /// Queued, replacing this older change that was not yet written.
    Superseded(Box<OwnerChange>),
    /// Ignored: the stored change is as new or newer (a redelivery or a stale decision).
    Stale,
}

/// A change the writer gave up on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailedWrite {
    /// The change that could not be written.
    pub change: OwnerChange,
    /// The writer's error code: `inactive_owner`, `invalid_reference`,
    /// `not_found`, `rejected` or `gave_up` (`unknown` for entries stored
    /// before codes were kept).
    #[serde(default = "unknown_code")]
    pub code: String,
    /// Why the writer gave up (the CRM's answer, for the operator).
    pub reason: String,
    /// Attempts made before giving up.
    pub attempts: u32,
    /// When the writer gave up.
    pub failed_at: Millis,
}

fn unknown_code() -> String {
    "unknown".into()
}

fn entry_key(key: &OutboxKey) -> Key {
    Key::new().str(key.object.as_str()).str(&key.record_id)
}

fn queue_key(decided_at: Millis, key: &OutboxKey) -> Key {
    Key::new()
        .i64(decided_at)
        .str(key.object.as_str())
        .str(&key.record_id)
}

pub(crate) fn tx_put(tx: &Tx<'_>, change: &OwnerChange) -> TxResult<OutboxPut> {
    let key = OutboxKey::of(change);
    let old = tx.get::<OutboxEntry>(Table::Outbox, &entry_key(&key))?;
    let (superseded, outcome) = match old {
        Some(old) if old.change.decided_at >= change.decided_at => return Ok(OutboxPut::Stale),
        Some(old) if old.state.is_open() => {
            tx.remove(Table::OutboxQueue, &queue_key(old.change.decided_at, &key))?;
            // A change requeued at a restart (pending, attempts made) may
            // still land like one in flight.
            let sent = matches!(old.state, OutboxState::InFlight { .. }) || old.attempts > 0;
            let inherited = old.superseded.as_ref().filter(|s| s.was_in_flight);
            let s = Superseded {
                decided_at: old.change.decided_at,
                was_in_flight: sent || inherited.is_some(),
                in_flight_owner: if sent {
                    Some(old.change.owner.clone())
                } else {
                    inherited.and_then(|s| s.in_flight_owner.clone())
                },
            };
            (Some(s), OutboxPut::Superseded(Box::new(old.change)))
        }
        _ => (None, OutboxPut::Inserted),
    };
    let entry = OutboxEntry {
        change: change.clone(),
        state: OutboxState::Pending,
        attempts: 0,
        superseded,
    };
    tx.put(Table::Outbox, &entry_key(&key), &entry)?;
    tx.put(Table::OutboxQueue, &queue_key(change.decided_at, &key), &())?;
    Ok(outcome)
}

/// The open entry for `key` if it is the change decided at `decided_at`.
fn open_entry(tx: &Tx<'_>, key: &OutboxKey, decided_at: Millis) -> TxResult<Option<OutboxEntry>> {
    Ok(tx
        .get::<OutboxEntry>(Table::Outbox, &entry_key(key))?
        .filter(|e| e.change.decided_at == decided_at && e.state.is_open()))
}

pub(crate) fn tx_in_flight(
    tx: &Tx<'_>,
    key: &OutboxKey,
    decided_at: Millis,
    now_ms: Millis,
) -> TxResult<bool> {
    let Some(mut entry) = open_entry(tx, key, decided_at)? else {
        return Ok(false);
    };
    entry.attempts = entry.attempts.saturating_add(1);
    entry.state = OutboxState::InFlight {
        attempt: entry.attempts,
        since: now_ms,
    };
    tx.put(Table::Outbox, &entry_key(key), &entry).map(|_| true)
}

pub(crate) fn tx_done(tx: &Tx<'_>, key: &OutboxKey, decided_at: Millis) -> TxResult<bool> {
    let Some(mut entry) = open_entry(tx, key, decided_at)? else {
        return Ok(false);
    };
    entry.state = OutboxState::Done;
    entry.superseded = None;
    tx.remove(Table::OutboxQueue, &queue_key(decided_at, key))?;
    tx.put(Table::Outbox, &entry_key(key), &entry).map(|_| true)
}

pub(crate) fn tx_fail(
    tx: &Tx<'_>,
    key: &OutboxKey,
    decided_at: Millis,
    code: &str,
    reason: &str,
    at_ms: Millis,
) -> TxResult<bool> {
    let Some(mut entry) = open_entry(tx, key, decided_at)? else {
        return Ok(false);
    };
    let failed = FailedWrite {
        change: entry.change.clone(),
        code: code.to_string(),
        reason: reason.to_string(),
        attempts: entry.attempts,
        failed_at: at_ms,
    };
    entry.state = OutboxState::Failed;
    entry.superseded = None;
    tx.remove(Table::OutboxQueue, &queue_key(decided_at, key))?;
    crate::failed::tx_insert(tx, &failed)?;
    tx.put(Table::Outbox, &entry_key(key), &entry).map(|_| true)
}

impl Store {
    /// Queues `change` unless the stored change for the record is as new or
    /// newer; replaces (supersedes) an older one not yet written.
    pub fn outbox_put(&self, change: &OwnerChange) -> Result<OutboxPut> {
        let mut b = self.batch();
        b.outbox_put(change);
        Ok(self
            .commit(b)?
            .outbox_puts
            .pop()
            .unwrap_or(OutboxPut::Stale))
    }

    /// The entry for one record.
    pub fn outbox_get(&self, key: &OutboxKey) -> Result<Option<OutboxEntry>> {
        self.inner.get(Table::Outbox, &entry_key(key))
    }

    /// Up to `limit` pending entries, oldest decision first.
    pub fn outbox_pending(&self, limit: usize) -> Result<Vec<OutboxEntry>> {
        let mut out = Vec::new();
        for key in self.queue_keys() {
            if out.len() >= limit {
                break;
            }
            let key = key?;
            if let Some(e) = self
                .outbox_get(&key)?
                .filter(|e| e.state == OutboxState::Pending)
            {
                out.push(e);
            }
        }
        Ok(out)
    }

    /// Marks the change decided at `decided_at` as handed to the writer.
    /// Returns false when a newer change replaced it or it is settled.
    pub fn outbox_mark_in_flight(
        &self,
        key: &OutboxKey,
        decided_at: Millis,
        now_ms: Millis,
    ) -> Result<bool> {
        let mut b = self.batch();
        b.outbox_mark_in_flight(key, decided_at, now_ms);
        self.single_update(b)
    }

    /// Marks the change decided at `decided_at` as written. Ignored (false)
    /// when a newer change replaced it: that one still has to be written.
    pub fn outbox_mark_done(&self, key: &OutboxKey, decided_at: Millis) -> Result<bool> {
        let mut b = self.batch();
        b.outbox_mark_done(key, decided_at);
        self.single_update(b)
    }

    /// Gives up on the change decided at `decided_at`: records it with
    /// error `code` and `reason` in the failed-writes table. Ignored (false)
    /// when a newer change replaced it. `decided_at` and `at_ms` go beyond a
    /// bare `(key, reason)` so a stale failure cannot fail the newer change.
    pub fn outbox_fail(
        &self,
        key: &OutboxKey,
        decided_at: Millis,
        code: &str,
        reason: &str,
        at_ms: Millis,
    ) -> Result<bool> {
        let mut b = self.batch();
        b.outbox_fail(key, decided_at, code, reason, at_ms);
        self.single_update(b)
    }

    /// Sends in-flight entries handed out before `since_before_ms` back to
    /// pending (the writer died or lost them). Run it when the writer starts
    /// with `i64::MAX`, and periodically with `now - lease`. Returns how many.
    pub fn outbox_requeue(&self, since_before_ms: Millis) -> Result<u64> {
        let mut stale = Vec::new();
        for key in self.queue_keys() {
            let key = key?;
            if let Some(e) = self.outbox_get(&key)? {
                if matches!(e.state, OutboxState::InFlight { since, .. } if since < since_before_ms)
                {
                    stale.push((key, e.change.decided_at));
                }
            }
        }
        self.inner.transact(|tx| {
            let mut n = 0;
            for (key, decided_at) in &stale {
                if let Some(mut e) = open_entry(tx, key, *decided_at)? {
                    e.state = OutboxState::Pending;
                    tx.put(Table::Outbox, &entry_key(key), &e)?;
                    n += 1;
                }
            }
            Ok(n)
        })
    }

    /// Changes the writer gave up on, oldest record key first, up to `limit`.
    pub fn failed_writes(&self, limit: usize) -> Result<Vec<FailedWrite>> {
        self.inner
            .range::<FailedWrite, _>(Table::FailedWrites, ..)
            .take(limit)
            .map(|r| r.map(|(_, f)| f))
            .collect()
    }

    fn single_update(&self, b: crate::Batch) -> Result<bool> {
        Ok(self
            .commit(b)?
            .outbox_updates
            .first()
            .copied()
            .unwrap_or(false))
    }

    /// Keys of open entries, oldest decision first.
    fn queue_keys(&self) -> impl Iterator<Item = Result<OutboxKey>> + '_ {
        self.inner
            .range_raw(Table::OutboxQueue, ..)
            .map(move |entry| {
                let (k, _) = entry?;
                let bad = || self.inner.bad_key(Table::OutboxQueue, &k);
                let mut r = Reader::new(&k).ok_or_else(bad)?;
                match (
                    r.i64(),
                    r.str().as_deref().and_then(ObjectKind::parse),
                    r.str(),
                ) {
                    (Some(_), Some(object), Some(record_id)) => Ok(OutboxKey { object, record_id }),
                    _ => Err(bad()),
                }
            })
    }
}

#[cfg(test)]
#[path = "outbox_tests.rs"]
mod tests;
