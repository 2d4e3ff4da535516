//! How long the store keeps what only grows (`[store.retention]`), pruned in
//! the background once a minute, and the size the store may reach
//! (`store.max_bytes`) before webhooks are answered 503.
//!
//! Log entries are removed only once every consumer group has read them,
//! whatever their age: nothing accepted is dropped before it was processed.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use allot_core::Millis;
use allot_store::Store;
use serde::{Deserialize, Serialize};

use crate::raw::{DeadLetter, RawEntry, DLQ_LOG, RAW_LOG};
use crate::ServiceError;

const DAY_MS: i64 = 86_400_000;

/// Days kept per table (0: kept forever).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Retention {
    /// Raw payloads in the embedded log (webhooks, replays), once processed.
    pub raw_log_days: u32,
    /// The dead-letter log.
    pub dead_letter_days: u32,
    /// Decisions with their explanations (`allot explain`, the audit view).
    pub decisions_days: u32,
    /// The admin audit (who changed what).
    pub admin_audit_days: u32,
    /// The write ledger that recognises allot's own writes coming back.
    pub write_ledger_days: u32,
}

impl Default for Retention {
    fn default() -> Self {
        Retention {
            raw_log_days: 7,
            dead_letter_days: 30,
            decisions_days: 90,
            admin_audit_days: 30,
            write_ledger_days: 7,
        }
    }
}

/// What one pass removed, per table.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Pruned {
    pub raw_log: u64,
    pub dead_letters: u64,
    pub decisions: u64,
    pub admin_audit: u64,
    pub write_ledger: u64,
}

impl Pruned {
    pub fn total(&self) -> u64 {
        self.raw_log + self.dead_letters + self.decisions + self.admin_audit + self.write_ledger
    }
}

fn cutoff(now: Millis, days: u32) -> Option<Millis> {
    (days > 0).then(|| now - i64::from(days) * DAY_MS)
}

/// Removes what is older than `r` keeps, as of `now`.
pub fn prune(store: &Store, r: &Retention, now: Millis) -> Result<Pruned, ServiceError> {
    let mut out = Pruned::default();
    if let Some(before) = cutoff(now, r.raw_log_days) {
        out.raw_log = prune_log(store, RAW_LOG, before, |b| {
            serde_json::from_slice::<RawEntry>(b)
                .ok()
                .map(|e| e.received_at)
        })?;
    }
    if let Some(before) = cutoff(now, r.dead_letter_days) {
        out.dead_letters = prune_log(store, DLQ_LOG, before, |b| {
            serde_json::from_slice::<DeadLetter>(b).ok().map(|e| e.at)
        })?;
    }
    if let Some(before) = cutoff(now, r.decisions_days) {
        out.decisions = store.prune_audit(before)?;
    }
    if let Some(before) = cutoff(now, r.admin_audit_days) {
        out.admin_audit = store.prune_admin_audit(before)?;
    }
    if let Some(before) = cutoff(now, r.write_ledger_days) {
        out.write_ledger = store.prune_writes(before)?;
    }
    Ok(out)
}

/// Removes the log's entries older than `before`, from its start, up to the
/// first newer one (or one whose time cannot be read) and never past what
/// every group has consumed.
fn prune_log(
    store: &Store,
    name: &str,
    before: Millis,
    time_of: impl Fn(&[u8]) -> Option<Millis>,
) -> Result<u64, ServiceError> {
    let log = store.log(name);
    let mut from = log.start_offset()?;
    let mut end = from;
    'scan: loop {
        let entries = log.read(from, 1_000)?;
        if entries.is_empty() {
            break;
        }
        for (offset, body) in &entries {
            match time_of(body) {
                Some(t) if t < before => end = offset + 1,
                _ => break 'scan,
            }
        }
        from = entries.last().map_or(from, |(o, _)| o + 1);
    }
    if end == log.start_offset()? {
        return Ok(0);
    }
    Ok(log.truncate_before(end)?)
}

/// The store's size on disk, refreshed in the background, and the limit
/// past which webhooks are refused (0: none).
#[derive(Clone, Default)]
pub struct StoreSize {
    bytes: Arc<AtomicU64>,
    max: u64,
}

impl StoreSize {
    pub fn new(max_bytes: u64) -> StoreSize {
        StoreSize {
            bytes: Arc::default(),
            max: max_bytes,
        }
    }

    pub fn set(&self, bytes: u64) {
        self.bytes.store(bytes, Ordering::Relaxed);
    }

    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    /// Whether the store is within 5% of `store.max_bytes`: new input is
    /// refused until retention or an operator makes room.
    pub fn nearly_full(&self) -> bool {
        self.max > 0 && self.bytes() >= self.max - self.max / 20
    }

    pub fn max(&self) -> u64 {
        self.max
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prunes_each_table_by_age_and_keeps_what_is_unread() {
        let store = Store::temporary().unwrap();
        let day = DAY_MS;
        let now = 100 * day;
        let raw = |at: Millis| {
            serde_json::to_vec(&RawEntry {
                v: 1,
                format: "native".into(),
                source: "test".into(),
                received_at: at,
                body: "{}".into(),
            })
            .unwrap()
        };
        let log = store.log(RAW_LOG);
        for at in [now - 10 * day, now - 9 * day, now - 8 * day, now - day] {
            log.append(&raw(at)).unwrap();
        }
        // The ingest group read the first two only.
        log.commit(crate::raw::INGEST_GROUP, 2).unwrap();
        let dlq = store.log(DLQ_LOG);
        for at in [now - 40 * day, now - day] {
            let d = DeadLetter {
                v: 1,
                kind: "json".into(),
                reason: "bad".into(),
                source: "test".into(),
                at,
                body: String::new(),
            };
            dlq.append(&serde_json::to_vec(&d).unwrap()).unwrap();
        }
        for (at, who) in [(now - 31 * day, "old"), (now - day, "new")] {
            store
                .append_admin_audit(&allot_store::AdminAuditEntry {
                    v: 1,
                    at,
                    who: who.into(),
                    role: "admin".into(),
                    action: "POST /x".into(),
                    status: 200,
                    detail: String::new(),
                    before: None,
                    after: None,
                })
                .unwrap();
        }
        let p = prune(&store, &Retention::default(), now).unwrap();
        // Three raw entries are old enough, but the third was not read yet.
        assert_eq!(p.raw_log, 2);
        assert_eq!(log.start_offset().unwrap(), 2);
        assert_eq!(p.dead_letters, 1);
        assert_eq!(p.admin_audit, 1);
        let left = store.admin_audit(10).unwrap();
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].who, "new");
        // Once read, the old one goes too; the recent one stays.
        log.commit(crate::raw::INGEST_GROUP, 4).unwrap();
        assert_eq!(
            prune(&store, &Retention::default(), now).unwrap().raw_log,
            1
        );
        assert_eq!(log.start_offset().unwrap(), 3);
        // Nothing is pruned with retention off.
        let off = Retention {
            raw_log_days: 0,
            dead_letter_days: 0,
            decisions_days: 0,
            admin_audit_days: 0,
            write_ledger_days: 0,
        };
        assert_eq!(prune(&store, &off, now + 1000 * day).unwrap().total(), 0);
    }

    #[test]
    fn nearly_full_within_five_percent_of_the_limit() {
        let s = StoreSize::new(1000);
        s.set(900);
        assert!(!s.nearly_full());
        s.set(950);
        assert!(s.nearly_full());
        assert!(!StoreSize::new(0).nearly_full());
    }
}
