//! The dedupe window: event ids seen recently, bounded by age and count.
//!
//! `seen` answers "was this event applied?" by id; `seen_by_time` orders the
//! same entries by time so pruning reads only what it removes, and an entry
//! counter in `meta` (updated in the same transactions) makes the count bound
//! O(1) to check.

use allot_core::Millis;

use crate::error::Result;
use crate::key::{Key, Reader};
use crate::store::{Store, Table};
use crate::tx::{Tx, TxResult};

/// Entries removed per transaction while pruning: bounds the time the global
/// transaction lock is held.
const PRUNE_CHUNK: usize = 1024;

fn seen_key(event_id: &str) -> Key {
    Key::new().str(event_id)
}

fn time_key(at_ms: Millis, event_id: &str) -> Key {
    Key::new().i64(at_ms).str(event_id)
}

pub(crate) fn tx_mark_seen(tx: &Tx<'_>, event_id: &str, at_ms: Millis) -> TxResult<()> {
    let key = seen_key(event_id);
    let at_ms = match tx.get::<Millis>(Table::Seen, &key)? {
        // Marking again keeps the later time: the window never shrinks.
        Some(old) if old >= at_ms => return Ok(()),
        Some(old) => {
            tx.remove(Table::SeenByTime, &time_key(old, event_id))?;
            at_ms
        }
        None => {
            tx.add_count(Table::Seen, 1)?;
            at_ms
        }
    };
    tx.put(Table::Seen, &key, &at_ms)?;
    tx.put(Table::SeenByTime, &time_key(at_ms, event_id), &())
        .map(|_| ())
}

/// Removes the given `(seen at, event id)` entries; returns how many went.
fn tx_forget(tx: &Tx<'_>, entries: &[(Millis, String)]) -> TxResult<u64> {
    let mut removed = 0;
    for (at_ms, id) in entries {
        if !tx.remove(Table::SeenByTime, &time_key(*at_ms, id))? {
            continue;
        }
        let key = seen_key(id);
        if tx.get::<Millis>(Table::Seen, &key)? == Some(*at_ms) {
            tx.remove(Table::Seen, &key)?;
            tx.add_count(Table::Seen, -1)?;
            removed += 1;
        }
    }
    Ok(removed)
}

impl Store {
    /// Whether `event_id` is in the dedupe window.
    pub fn seen(&self, event_id: &str) -> Result<bool> {
        self.inner
            .tree(Table::Seen)
            .contains_key(seen_key(event_id))
            .map_err(|e| self.inner.sled_err("read seen", e))
    }

    /// Number of event ids in the window (O(1)).
    pub fn seen_count(&self) -> Result<u64> {
        self.inner.counter(Table::Seen)
    }

    /// Bounds the dedupe window: drops entries seen before `now_ms -
    /// max_age_ms`, then the oldest entries beyond `max_entries`. Returns how
    /// many were dropped. Reads only the entries it removes (time index).
    pub fn prune_seen(&self, now_ms: Millis, max_age_ms: Millis, max_entries: u64) -> Result<u64> {
        let cutoff = now_ms.saturating_sub(max_age_ms);
        let mut removed = 0;
        loop {
            let chunk = self.oldest_seen(PRUNE_CHUNK, Some(cutoff))?;
            if chunk.is_empty() {
                break;
            }
            removed += self.inner.transact(|tx| tx_forget(tx, &chunk))?;
            if chunk.len() < PRUNE_CHUNK {
                break;
            }
        }
        loop {
            let count = self.seen_count()?;
            if count <= max_entries {
                break;
            }
            let excess = usize::try_from(count - max_entries).unwrap_or(usize::MAX);
            let chunk = self.oldest_seen(excess.min(PRUNE_CHUNK), None)?;
            if chunk.is_empty() {
                break;
            }
            removed += self.inner.transact(|tx| tx_forget(tx, &chunk))?;
        }
        Ok(removed)
    }

    /// Up to `limit` oldest `(seen at, event id)` entries, only those before
    /// `before` when given.
    fn oldest_seen(&self, limit: usize, before: Option<Millis>) -> Result<Vec<(Millis, String)>> {
        let mut out = Vec::new();
        for entry in self.inner.range_raw(Table::SeenByTime, ..) {
            if out.len() >= limit {
                break;
            }
            let (k, _) = entry?;
            let mut r = Reader::new(&k).ok_or_else(|| self.inner.bad_key(Table::SeenByTime, &k))?;
            let (Some(at), Some(id)) = (r.i64(), r.str()) else {
                return Err(self.inner.bad_key(Table::SeenByTime, &k));
            };
            if before.is_some_and(|b| at >= b) {
                break;
            }
            out.push((at, id));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store_with(entries: &[(&str, Millis)]) -> Store {
        let store = Store::temporary().unwrap();
        let mut b = store.batch();
        for (id, at) in entries {
            b.mark_seen(id, *at);
        }
        store.commit(b).unwrap();
        store
    }

    #[test]
    fn prune_by_age_and_count() {
        let entries = [
            ("e1", 100),
            ("e2", 200),
            ("e3", 300),
            ("e4", 400),
            ("e5", 500),
        ];
        // (now, max_age, max_entries, removed, kept ids)
        let cases: [(Millis, Millis, u64, u64, &[&str]); 6] = [
            (500, 1_000, 10, 0, &["e1", "e2", "e3", "e4", "e5"]),
            (500, 250, 10, 2, &["e3", "e4", "e5"]),
            (500, 1_000, 2, 3, &["e4", "e5"]),
            (500, 250, 1, 4, &["e5"]),
            (10_000, 1, 10, 5, &[]),
            (500, 1_000, 0, 5, &[]),
        ];
        for (now, age, max, want_removed, kept) in cases {
            let store = store_with(&entries);
            let removed = store.prune_seen(now, age, max).unwrap();
            assert_eq!(removed, want_removed, "now={now} age={age} max={max}");
            for (id, _) in entries {
                assert_eq!(
                    store.seen(id).unwrap(),
                    kept.contains(&id),
                    "{id} now={now} age={age} max={max}"
                );
            }
            assert_eq!(store.seen_count().unwrap(), kept.len() as u64);
            assert_eq!(store.inner.tree(Table::SeenByTime).len(), kept.len());
        }
    }

    #[test]
    fn marking_again_moves_the_entry_forward_only() {
        let store = store_with(&[("e1", 100), ("e1", 300), ("e1", 200), ("e2", 150)]);
        assert_eq!(store.seen_count().unwrap(), 2);
        assert_eq!(store.inner.tree(Table::SeenByTime).len(), 2);
        assert_eq!(
            store.prune_seen(400, 200, 10).unwrap(),
            1,
            "e2 (150) goes, e1 (300) stays"
        );
        assert!(store.seen("e1").unwrap());
        assert!(!store.seen("e2").unwrap());
    }

    #[test]
    fn prune_handles_more_than_one_chunk() {
        let store = Store::temporary().unwrap();
        let mut b = store.batch();
        for i in 0..(PRUNE_CHUNK as i64 * 2 + 10) {
            b.mark_seen(&format!("e{i}"), i);
        }
        store.commit(b).unwrap();
        let removed = store.prune_seen(PRUNE_CHUNK as i64 * 2, 0, 5).unwrap();
        assert_eq!(removed, PRUNE_CHUNK as u64 * 2 + 5);
        assert_eq!(store.seen_count().unwrap(), 5);
    }
}
