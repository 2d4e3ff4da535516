//! The audit trail: every decision, queryable per record and by recency.
//!
//! `audit` is keyed `(record id, decided at, seq)` so one record's history in
//! a time range is one range scan; `audit_by_time` maps `(decided at, seq)` to
//! the record id so the newest decisions overall are a reverse scan. `seq`
//! comes from sled's persistent id generator: unique, so two decisions in the
//! same millisecond never overwrite each other.

use allot_core::{Decision, Millis};

use crate::error::Result;
use crate::key::{Key, Reader};
use crate::store::{Store, Table};
use crate::tx::{Tx, TxResult};

/// Entries removed per transaction while pruning.
const PRUNE_CHUNK: usize = 512;

fn audit_key(record_id: &str, decided_at: Millis, seq: u64) -> Key {
    Key::new().str(record_id).i64(decided_at).u64(seq)
}

fn time_key(decided_at: Millis, seq: u64) -> Key {
    Key::new().i64(decided_at).u64(seq)
}

pub(crate) fn tx_append(tx: &Tx<'_>, decision: &Decision) -> TxResult<()> {
    let seq = tx.generate_id()?;
    tx.put(
        Table::Audit,
        &audit_key(&decision.record_id, decision.decided_at, seq),
        decision,
    )?;
    tx.put(
        Table::AuditByTime,
        &time_key(decision.decided_at, seq),
        &decision.record_id,
    )?;
    Ok(())
}

impl Store {
    /// Appends one decision (one-op batch; see [`crate::Batch::append_audit`]).
    pub fn append_audit(&self, decision: &Decision) -> Result<()> {
        let mut b = self.batch();
        b.append_audit(decision);
        self.commit(b).map(|_| ())
    }

    /// Decisions for `record_id` with `from_ms <= decided_at < to_ms`, oldest
    /// first. Ids are not namespaced by object kind: check `Decision::object`
    /// when ids of different kinds can collide (HubSpot).
    pub fn audit_for(
        &self,
        record_id: &str,
        from_ms: Millis,
        to_ms: Millis,
    ) -> Result<Vec<Decision>> {
        if from_ms >= to_ms {
            return Ok(Vec::new());
        }
        let lo = audit_key(record_id, from_ms, 0).into_bytes();
        let hi = audit_key(record_id, to_ms, 0).into_bytes();
        self.inner
            .range::<Decision, _>(Table::Audit, lo..hi)
            .map(|r| r.map(|(_, d)| d))
            .collect()
    }

    /// The `limit` most recent decisions overall, newest first.
    pub fn recent_audit(&self, limit: usize) -> Result<Vec<Decision>> {
        let inner = &self.inner;
        let mut out = Vec::with_capacity(limit.min(1024));
        for entry in inner.range::<String, _>(Table::AuditByTime, ..).rev() {
            if out.len() >= limit {
                break;
            }
            let (k, record_id) = entry?;
            let (at, seq) = read_time_key(self, &k)?;
            // A missing decision means a concurrent prune removed it: skip.
            if let Some(d) = inner.get::<Decision>(Table::Audit, &audit_key(&record_id, at, seq))? {
                out.push(d);
            }
        }
        Ok(out)
    }

    /// Decisions with `from_ms <= decided_at < to_ms` over all records,
    /// oldest first, at most `limit`.
    pub fn audit_between(
        &self,
        from_ms: Millis,
        to_ms: Millis,
        limit: usize,
    ) -> Result<Vec<Decision>> {
        if from_ms >= to_ms {
            return Ok(Vec::new());
        }
        let inner = &self.inner;
        let lo = time_key(from_ms, 0).into_bytes();
        let hi = time_key(to_ms, 0).into_bytes();
        let mut out = Vec::new();
        for entry in inner.range::<String, _>(Table::AuditByTime, lo..hi) {
            if out.len() >= limit {
                break;
            }
            let (k, record_id) = entry?;
            let (at, seq) = read_time_key(self, &k)?;
            if let Some(d) = inner.get::<Decision>(Table::Audit, &audit_key(&record_id, at, seq))? {
                out.push(d);
            }
        }
        Ok(out)
    }

    /// Drops decisions made before `before_ms`; returns how many.
    pub fn prune_audit(&self, before_ms: Millis) -> Result<u64> {
        let mut removed = 0;
        loop {
            let mut chunk = Vec::new();
            for entry in self.inner.range::<String, _>(Table::AuditByTime, ..) {
                let (k, record_id) = entry?;
                let (at, seq) = read_time_key(self, &k)?;
                if at >= before_ms || chunk.len() >= PRUNE_CHUNK {
                    break;
                }
                chunk.push((at, seq, record_id));
            }
            if chunk.is_empty() {
                return Ok(removed);
            }
            removed += self.inner.transact(|tx| {
                let mut n = 0;
                for (at, seq, record_id) in &chunk {
                    tx.remove(Table::AuditByTime, &time_key(*at, *seq))?;
                    n += u64::from(tx.remove(Table::Audit, &audit_key(record_id, *at, *seq))?);
                }
                Ok(n)
            })?;
        }
    }
}

fn read_time_key(store: &Store, k: &[u8]) -> Result<(Millis, u64)> {
    let mut r = Reader::new(k).ok_or_else(|| store.inner.bad_key(Table::AuditByTime, k))?;
    match (r.i64(), r.u64()) {
        (Some(at), Some(seq)) => Ok((at, seq)),
        _ => Err(store.inner.bad_key(Table::AuditByTime, k)),
    }
}

#[cfg(test)]
pub(crate) fn decision(record_id: &str, decided_at: Millis, owner: &str) -> Decision {
    Decision {
        v: allot_core::DECISION_VERSION,
        record_id: record_id.to_string(),
        object: allot_core::ObjectKind::Lead,
        decided_at,
        rules_version: "v1".into(),
        previous_owner: None,
        owner: Some(owner.to_string()),
        territory: Some("emea".into()),
        strategy: allot_core::Strategy::OnlyCandidate,
        changed: true,
        candidates: vec![],
        distribution: None,
        fallback_reason: None,
        warnings: vec![],
        explanation: vec!["matched emea".into()],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owners(ds: &[Decision]) -> Vec<&str> {
        ds.iter()
            .map(|d| d.owner.as_deref().unwrap_or("-"))
            .collect()
    }

    fn store() -> Store {
        let store = Store::temporary().unwrap();
        let mut b = store.batch();
        for (rid, at, owner) in [
            ("r1", 100, "a"),
            ("r2", 150, "b"),
            ("r1", 200, "c"),
            ("r1", 200, "d"),
            ("r1", 300, "e"),
            ("r10", 250, "f"),
        ] {
            b.append_audit(&decision(rid, at, owner));
        }
        store.commit(b).unwrap();
        store
    }

    #[test]
    fn audit_for_is_a_half_open_time_range() {
        let store = store();
        let cases: [(&str, Millis, Millis, &[&str]); 7] = [
            ("r1", 0, 1_000, &["a", "c", "d", "e"]),
            ("r1", 100, 300, &["a", "c", "d"]),
            ("r1", 101, 301, &["c", "d", "e"]),
            ("r1", 200, 201, &["c", "d"]),
            ("r1", 300, 100, &[]),
            ("r10", i64::MIN, i64::MAX, &["f"]),
            ("r", i64::MIN, i64::MAX, &[]),
        ];
        for (rid, from, to, want) in cases {
            assert_eq!(
                owners(&store.audit_for(rid, from, to).unwrap()),
                want,
                "{rid} {from}..{to}"
            );
        }
    }

    #[test]
    fn recent_audit_is_newest_first() {
        let store = store();
        let cases: [(usize, &[&str]); 3] = [
            (0, &[]),
            (3, &["e", "f", "d"]),
            (10, &["e", "f", "d", "c", "b", "a"]),
        ];
        for (limit, want) in cases {
            assert_eq!(
                owners(&store.recent_audit(limit).unwrap()),
                want,
                "limit {limit}"
            );
        }
    }

    #[test]
    fn prune_drops_old_decisions_from_both_indexes() {
        let store = store();
        assert_eq!(store.prune_audit(200).unwrap(), 2);
        assert_eq!(
            owners(&store.audit_for("r1", 0, 1_000).unwrap()),
            ["c", "d", "e"]
        );
        assert_eq!(
            owners(&store.recent_audit(10).unwrap()),
            ["e", "f", "d", "c"]
        );
        assert_eq!(store.inner.tree(Table::AuditByTime).len(), 4);
    }
}
