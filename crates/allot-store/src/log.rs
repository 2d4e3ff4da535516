//! The embedded durable log: the in-process twin of a Kafka topic.
//!
//! Messages of log `name` live in the `log` table under `(name, offset)`;
//! `log_meta` holds `(name, "next")`, the next offset to give out, and
//! `(name, "group", group)`, each consumer group's committed position (the
//! next offset it will read). Keeping `next` apart from the messages is what
//! keeps offsets contiguous across restarts even after retention removed
//! every message.
//!
//! # Waiting for data
//! A reader that caught up waits on the log's generation counter, bumped
//! after every durable append made through this store:
//! ```no_run
//! # async fn f(log: allot_store::Log) -> allot_store::Result<()> {
//! let mut next = log.committed("assign")?;
//! loop {
//!     let seen = log.generation(); // read the counter *before* reading data
//!     let batch = log.read(next, 100)?;
//!     if batch.is_empty() {
//!         log.changed(seen).await; // resolves at once if an append raced us
//!         continue;
//!     }
//!     // ... handle, then:
//!     next = batch[batch.len() - 1].0 + 1;
//!     log.commit("assign", next)?;
//! }
//! # }
//! ```
//! Sync callers use [`Log::wait_blocking`] with a timeout. (Not
//! `sled::Subscriber`: an undrained subscriber blocks writers, see `signal.rs`.)

use std::sync::{Arc, PoisonError};
use std::time::Duration;

use crate::codec;
use crate::error::Result;
use crate::key::{Key, Reader};
use crate::signal::{LogChanged, Signal};
use crate::store::{Store, Table};
use crate::tx::{Tx, TxResult};

/// Messages removed per sled batch while truncating.
const TRUNCATE_CHUNK: usize = 1024;

fn entry_key(name: &str, offset: u64) -> Key {
    Key::new().str(name).u64(offset)
}

fn next_key(name: &str) -> Key {
    Key::new().str(name).str("next")
}

fn group_key(name: &str, group: &str) -> Key {
    Key::new().str(name).str("group").str(group)
}

pub(crate) fn tx_append(tx: &Tx<'_>, name: &str, payload: &[u8]) -> TxResult<u64> {
    if name.is_empty() {
        return tx.abort(tx.inner.invalid("a log name cannot be empty"));
    }
    let next: u64 = tx.get(Table::LogMeta, &next_key(name))?.unwrap_or(0);
    tx.put_sealed(Table::Log, &entry_key(name, next), codec::seal(payload))?;
    tx.put(Table::LogMeta, &next_key(name), &(next + 1))?;
    Ok(next)
}

pub(crate) fn tx_commit_group(tx: &Tx<'_>, name: &str, group: &str, next: u64) -> TxResult<()> {
    let end: u64 = tx.get(Table::LogMeta, &next_key(name))?.unwrap_or(0);
    if next > end {
        return tx.abort(tx.inner.invalid(format!(
            "cannot commit group {group:?} at offset {next} in log {name:?}: the log ends at {end}"
        )));
    }
    tx.put(Table::LogMeta, &group_key(name, group), &next)
        .map(|_| ())
}

/// A handle on one embedded log. Cheap to clone; handles on the same name
/// share data and wake-ups.
#[derive(Clone)]
pub struct Log {
    store: Store,
    name: String,
    /// Shared with every handle on this log so any append wakes every reader.
    signal: Arc<Signal>,
}

impl std::fmt::Debug for Log {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Log").field("name", &self.name).finish()
    }
}

impl Store {
    /// The embedded log `name` (created on first append).
    pub fn log(&self, name: &str) -> Log {
        Log {
            store: self.clone(),
            name: name.to_string(),
            signal: self.signal(name),
        }
    }

    pub(crate) fn signal(&self, name: &str) -> Arc<Signal> {
        let mut map = self
            .inner
            .signals
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        map.entry(name.to_string()).or_default().clone()
    }
}

impl Log {
    /// The log's name, e.g. `allot.events`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Appends one message; it is on disk when this returns.
    pub fn append(&self, payload: &[u8]) -> Result<u64> {
        let mut b = self.store.batch();
        b.log_append(&self.name, payload);
        let offsets = self.store.commit(b)?.log_offsets;
        offsets
            .first()
            .copied()
            .ok_or_else(|| self.store.inner.invalid("append returned no offset"))
    }

    /// Appends messages atomically with one flush; returns their offsets.
    pub fn append_batch(&self, payloads: &[Vec<u8>]) -> Result<Vec<u64>> {
        let mut b = self.store.batch();
        for p in payloads {
            b.log_append(&self.name, p);
        }
        Ok(self.store.commit(b)?.log_offsets)
    }

    /// Up to `max` messages from `from` on, in offset order. Reading below
    /// the start (retention removed it) starts at the first kept message.
    pub fn read(&self, from: u64, max: usize) -> Result<Vec<(u64, Vec<u8>)>> {
        let inner = &self.store.inner;
        let lo = entry_key(&self.name, from).into_bytes();
        let hi = entry_key(&self.name, u64::MAX).into_bytes();
        let mut out = Vec::new();
        for entry in inner.range_raw(Table::Log, lo..=hi).take(max) {
            let (k, v) = entry?;
            let offset = self.offset_of(&k)?;
            let payload = codec::unseal(&v).map_err(|e| inner.decode_err(Table::Log, &k, e))?;
            out.push((offset, payload.to_vec()));
        }
        Ok(out)
    }

    /// The offset the next append will get.
    pub fn end_offset(&self) -> Result<u64> {
        Ok(self
            .store
            .inner
            .get(Table::LogMeta, &next_key(&self.name))?
            .unwrap_or(0))
    }

    /// The first offset still stored (`end_offset` when empty).
    pub fn start_offset(&self) -> Result<u64> {
        let lo = entry_key(&self.name, 0).into_bytes();
        let hi = entry_key(&self.name, u64::MAX).into_bytes();
        match self.store.inner.range_raw(Table::Log, lo..=hi).next() {
            Some(entry) => self.offset_of(&entry?.0),
            None => self.end_offset(),
        }
    }

    /// Durably records that `group` will continue at `next_offset`. Fails
    /// with `StoreError::Invalid` past the end of the log.
    pub fn commit(&self, group: &str, next_offset: u64) -> Result<()> {
        let mut b = self.store.batch();
        b.log_commit(&self.name, group, next_offset);
        self.store.commit(b).map(|_| ())
    }

    /// Where `group` continues: its committed offset, 0 if it never committed.
    pub fn committed(&self, group: &str) -> Result<u64> {
        Ok(self
            .store
            .inner
            .get(Table::LogMeta, &group_key(&self.name, group))?
            .unwrap_or(0))
    }

    /// Every consumer group of this log with its committed offset.
    pub fn groups(&self) -> Result<Vec<(String, u64)>> {
        let inner = &self.store.inner;
        let prefix = Key::new().str(&self.name).str("group");
        inner
            .prefix::<u64>(Table::LogMeta, prefix)
            .map(|r| {
                let (k, offset) = r?;
                let mut rd = Reader::new(&k).ok_or_else(|| inner.bad_key(Table::LogMeta, &k))?;
                let (_, _, group) = (rd.str(), rd.str(), rd.str());
                Ok((
                    group.ok_or_else(|| inner.bad_key(Table::LogMeta, &k))?,
                    offset,
                ))
            })
            .collect()
    }

    /// The lowest committed offset over all groups: nothing at or above it
    /// may be removed. `None` when no group ever committed.
    pub fn retention_floor(&self) -> Result<Option<u64>> {
        Ok(self.groups()?.into_iter().map(|(_, o)| o).min())
    }

    /// Removes messages below `offset`, but never at or above the retention
    /// floor (a group still needs them) nor the end. Returns how many went.
    pub fn truncate_before(&self, offset: u64) -> Result<u64> {
        let inner = &self.store.inner;
        let limit = offset
            .min(self.end_offset()?)
            .min(self.retention_floor()?.unwrap_or(u64::MAX));
        let lo = entry_key(&self.name, 0).into_bytes();
        let hi = entry_key(&self.name, limit).into_bytes();
        let mut removed = 0;
        loop {
            let keys: Vec<sled::IVec> = inner
                .range_raw(Table::Log, lo.clone()..hi.clone())
                .take(TRUNCATE_CHUNK)
                .map(|r| r.map(|(k, _)| k))
                .collect::<Result<_>>()?;
            if keys.is_empty() {
                break;
            }
            let mut batch = sled::Batch::default();
            for k in &keys {
                batch.remove(k);
            }
            inner
                .tree(Table::Log)
                .apply_batch(batch)
                .map_err(|e| inner.sled_err("truncate log", e))?;
            removed += keys.len() as u64;
        }
        if removed > 0 {
            inner.flush()?;
        }
        Ok(removed)
    }

    /// Applies retention: removes everything every group has consumed.
    pub fn retain(&self) -> Result<u64> {
        match self.retention_floor()? {
            Some(floor) => self.truncate_before(floor),
            None => Ok(0),
        }
    }

    /// Counter bumped after each durable append through this store (0 at
    /// open). Read it before `read` and pass it to [`Log::changed`].
    pub fn generation(&self) -> u64 {
        self.signal.generation()
    }

    /// Resolves once an append happened after generation `seen`.
    pub fn changed(&self, seen: u64) -> LogChanged {
        LogChanged {
            signal: self.signal.clone(),
            seen,
            waiter: None,
        }
    }

    /// Blocks until an append happened after generation `seen`, or `timeout`;
    /// returns the generation then.
    pub fn wait_blocking(&self, seen: u64, timeout: Duration) -> u64 {
        self.signal.wait_blocking(seen, timeout)
    }

    fn offset_of(&self, key: &[u8]) -> Result<u64> {
        let mut r = Reader::new(key).ok_or_else(|| self.store.inner.bad_key(Table::Log, key))?;
        match (r.str(), r.u64()) {
            (Some(_), Some(offset)) => Ok(offset),
            _ => Err(self.store.inner.bad_key(Table::Log, key)),
        }
    }
}

#[cfg(test)]
#[path = "log_tests.rs"]
mod tests;
