//! Operator state in [`Table::Admin`]: rep overrides, the admin audit trail
//! (who changed what through the admin API, and the result), dry-run results
//! that activation requires, and background job progress (the realignment
//! cursor). Documents are the caller's JSON: the store keeps them enveloped
//! and checksummed like every other value, the services own their schema.

use allot_core::{Millis, ObjectKind, Record};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::key::{Key, Reader};
use crate::records::{record_key, StoredRecord};
use crate::store::{Store, Table};
use crate::tx::{Tx, TxResult};

/// Kind of a rep override document.
pub const OVERRIDE: &str = "override";
/// Kind of a dry-run result document.
pub const DRY_RUN: &str = "dry_run";
/// Kind of a background job document.
pub const JOB: &str = "job";
const AUDIT: &str = "audit";

/// One call to a mutating admin endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdminAuditEntry {
    /// Schema version.
    pub v: u8,
    /// When the call was answered (ms).
    pub at: Millis,
    /// The token name of the caller (`anonymous` when auth is off).
    pub who: String,
    /// The caller's role.
    pub role: String,
    /// `METHOD /path?query`.
    pub action: String,
    /// HTTP status of the answer.
    pub status: u16,
    /// The error message, or a short summary of what was done.
    pub detail: String,
    /// What the change touched as it was before (a rep's override, the
    /// version in force, a record's owner), when the call changes state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<serde_json::Value>,
    /// The same, after the call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<serde_json::Value>,
}

fn doc_key(kind: &str, name: &str) -> Key {
    Key::new().str(kind).str(name)
}

pub(crate) fn tx_put(
    tx: &Tx<'_>,
    kind: &str,
    name: &str,
    value: &serde_json::Value,
) -> TxResult<()> {
    let key = doc_key(kind, name);
    if value.is_null() {
        tx.remove(Table::Admin, &key)?;
    } else {
        tx.put(Table::Admin, &key, value)?;
    }
    Ok(())
}

impl Store {
    /// Stores (or with `Value::Null` removes) the document `kind`/`name`.
    pub fn admin_put(&self, kind: &str, name: &str, value: serde_json::Value) -> Result<()> {
        let mut b = self.batch();
        b.admin_put(kind, name, value);
        self.commit(b).map(|_| ())
    }

    /// The document `kind`/`name`, decoded as `T`.
    pub fn admin_get<T: DeserializeOwned>(&self, kind: &str, name: &str) -> Result<Option<T>> {
        self.inner.get(Table::Admin, &doc_key(kind, name))
    }

    /// Every document of `kind`, by name.
    pub fn admin_all<T: DeserializeOwned>(&self, kind: &str) -> Result<Vec<(String, T)>> {
        self.inner
            .prefix::<T>(Table::Admin, Key::new().str(kind))
            .map(|r| {
                let (k, v) = r?;
                let mut rd = Reader::new(&k).ok_or_else(|| self.inner.bad_key(Table::Admin, &k))?;
                match (rd.str(), rd.str()) {
                    (Some(_), Some(name)) => Ok((name, v)),
                    _ => Err(self.inner.bad_key(Table::Admin, &k)),
                }
            })
            .collect()
    }

    /// Appends one entry to the admin audit trail.
    pub fn append_admin_audit(&self, entry: &AdminAuditEntry) -> Result<()> {
        self.inner.transact(|tx| {
            let seq = tx.generate_id()?;
            let key = Key::new().str(AUDIT).i64(entry.at).u64(seq);
            tx.put(Table::Admin, &key, entry).map(|_| ())
        })
    }

    /// Drops admin audit entries made before `before_ms`; returns how many.
    pub fn prune_admin_audit(&self, before_ms: Millis) -> Result<u64> {
        let prefix = Key::new().str(AUDIT).into_bytes();
        let mut old = Vec::new();
        for entry in self.inner.range_raw(Table::Admin, prefix.clone()..) {
            let (k, _) = entry?;
            if !k.starts_with(&prefix) {
                break;
            }
            let mut rd = Reader::new(&k).ok_or_else(|| self.inner.bad_key(Table::Admin, &k))?;
            let (_, at) = (rd.str(), rd.i64());
            match at {
                Some(at) if at < before_ms => old.push(k),
                _ => break,
            }
        }
        let mut batch = sled::Batch::default();
        for k in &old {
            batch.remove(k);
        }
        self.inner
            .tree(Table::Admin)
            .apply_batch(batch)
            .map_err(|e| self.inner.sled_err("prune admin audit", e))?;
        if !old.is_empty() {
            self.inner.flush()?;
        }
        Ok(old.len() as u64)
    }

    /// The `limit` newest admin audit entries, newest first.
    pub fn admin_audit(&self, limit: usize) -> Result<Vec<AdminAuditEntry>> {
        self.inner
            .prefix::<AdminAuditEntry>(Table::Admin, Key::new().str(AUDIT))
            .rev()
            .take(limit)
            .map(|r| r.map(|(_, e)| e))
            .collect()
    }

    /// Up to `limit` records after `after` (exclusive) in `(object kind, id)`
    /// order, from the start when `after` is `None`: a resumable scan.
    pub fn records_after(
        &self,
        after: Option<(ObjectKind, &str)>,
        limit: usize,
    ) -> Result<Vec<Record>> {
        use std::ops::Bound;
        let lo = match after {
            Some((o, id)) => Bound::Excluded(record_key(o, id).into_bytes()),
            None => Bound::Unbounded,
        };
        self.inner
            .range::<StoredRecord, _>(Table::Records, (lo, Bound::Unbounded))
            .take(limit)
            .map(|r| r.map(|(_, s)| s.record))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn documents_put_get_list_remove() {
        let store = Store::temporary().unwrap();
        store
            .admin_put(OVERRIDE, "ana", json!({"active": false}))
            .unwrap();
        store
            .admin_put(OVERRIDE, "ben", json!({"max_open": 3}))
            .unwrap();
        store.admin_put(JOB, "realign", json!({"done": 1})).unwrap();
        let all: Vec<(String, serde_json::Value)> = store.admin_all(OVERRIDE).unwrap();
        assert_eq!(
            all,
            [
                ("ana".to_string(), json!({"active": false})),
                ("ben".to_string(), json!({"max_open": 3}))
            ]
        );
        store
            .admin_put(OVERRIDE, "ana", serde_json::Value::Null)
            .unwrap();
        assert_eq!(
            store
                .admin_get::<serde_json::Value>(OVERRIDE, "ana")
                .unwrap(),
            None
        );
        assert_eq!(
            store
                .admin_get::<serde_json::Value>(JOB, "realign")
                .unwrap(),
            Some(json!({"done": 1}))
        );
        assert!(store.check().unwrap().is_clean());
    }

    #[test]
    fn admin_audit_is_newest_first() {
        let store = Store::temporary().unwrap();
        for (at, who) in [(100, "a"), (300, "c"), (200, "b")] {
            let e = AdminAuditEntry {
                v: 1,
                at,
                who: who.into(),
                role: "admin".into(),
                action: "POST /api/rules/rollback".into(),
                status: 200,
                detail: String::new(),
                before: None,
                after: None,
            };
            store.append_admin_audit(&e).unwrap();
        }
        let who: Vec<String> = store
            .admin_audit(2)
            .unwrap()
            .into_iter()
            .map(|e| e.who)
            .collect();
        assert_eq!(who, ["c", "b"]);
    }

    #[test]
    fn records_after_resumes_a_scan() {
        let store = Store::temporary().unwrap();
        let mut b = store.batch();
        for id in ["a", "b", "c"] {
            b.put_record(&Record::new(ObjectKind::Lead, id), None);
        }
        b.put_record(&Record::new(ObjectKind::Account, "z"), None);
        store.commit(b).unwrap();
        let ids = |v: Vec<Record>| v.into_iter().map(|r| r.id).collect::<Vec<_>>();
        let all = ids(store.records_after(None, 10).unwrap());
        assert_eq!(all.len(), 4);
        let first = store.records_after(None, 2).unwrap();
        let last = first.last().unwrap();
        let rest = ids(store
            .records_after(Some((last.object, &last.id)), 10)
            .unwrap());
        let mut joined = ids(first);
        joined.extend(rest);
        assert_eq!(joined, all);
    }
}
