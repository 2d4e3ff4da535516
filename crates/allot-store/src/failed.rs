//! The failed-writes table: owner changes the writer gave up on, for an
//! operator to list, retry or discard.
//!
//! Each entry has a stable string id, `object:record id:decided at ms`
//! ([`FailedWriteId`]), which is also its key order, so a listing pages with
//! an `after` id. Entries counted per error code live in [`Table::Meta`]
//! under `("failed_code", code)`, kept in the same transactions as the
//! table, so the counts cost one prefix scan of a handful of keys.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Bound;

use allot_core::{Crm, Millis, ObjectKind};

use crate::error::Result;
use crate::key::Key;
use crate::outbox::{FailedWrite, OutboxKey};
use crate::store::{Store, Table};
use crate::tx::{Tx, TxResult};

/// Prefix of the per-code counters in [`Table::Meta`].
const CODE_COUNTER: &str = "failed_code";

/// The stable id of a failed write: the record and the decision that failed.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FailedWriteId {
    /// The record.
    pub key: OutboxKey,
    /// `decided_at` of the change that failed.
    pub decided_at: Millis,
}

impl FailedWriteId {
    /// The id of `failed`.
    pub fn of(failed: &FailedWrite) -> FailedWriteId {
        FailedWriteId {
            key: OutboxKey::of(&failed.change),
            decided_at: failed.change.decided_at,
        }
    }

    /// Parses `object:record id:decided at ms` (the record id may itself
    /// hold colons); the error says which part is wrong.
    pub fn parse(s: &str) -> std::result::Result<FailedWriteId, String> {
        let shape = || format!("failed write id {s:?} is not object:record id:decided at ms");
        let (object, rest) = s.split_once(':').ok_or_else(shape)?;
        let (record_id, at) = rest.rsplit_once(':').ok_or_else(shape)?;
        let object = ObjectKind::parse(object).ok_or_else(|| {
            format!("failed write id {s:?}: {object:?} is not lead, account or contact")
        })?;
        if record_id.is_empty() {
            return Err(format!("failed write id {s:?}: the record id is empty"));
        }
        let decided_at = at
            .parse::<Millis>()
            .map_err(|_| format!("failed write id {s:?}: {at:?} is not epoch milliseconds"))?;
        Ok(FailedWriteId {
            key: OutboxKey::new(object, record_id),
            decided_at,
        })
    }

    fn store_key(&self) -> Key {
        failed_key(&self.key, self.decided_at)
    }
}

impl fmt::Display for FailedWriteId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}",
            self.key.object.as_str(),
            self.key.record_id,
            self.decided_at
        )
    }
}

/// Which failed writes a listing returns; `None` matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FailedFilter {
    /// The CRM the change was routed to.
    pub crm: Option<Crm>,
    /// The record's kind.
    pub object: Option<ObjectKind>,
    /// The writer's error code ([`FailedWrite::code`]).
    pub code: Option<String>,
}

impl FailedFilter {
    fn matches(&self, f: &FailedWrite) -> bool {
        self.crm.is_none_or(|c| f.change.crm == Some(c))
            && self.object.is_none_or(|o| f.change.object == o)
            && self.code.as_deref().is_none_or(|c| f.code == c)
    }
}

/// One page of a listing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FailedPage {
    /// The matching entries, in id order.
    pub items: Vec<FailedWrite>,
    /// The id to pass as `after` for the next page; `None` on the last page.
    pub next: Option<FailedWriteId>,
}

pub(crate) fn failed_key(key: &OutboxKey, decided_at: Millis) -> Key {
    Key::new()
        .str(key.object.as_str())
        .str(&key.record_id)
        .i64(decided_at)
}

fn code_key(code: &str) -> Key {
    Key::new().str(CODE_COUNTER).str(code)
}

fn add_code(tx: &Tx<'_>, code: &str, delta: i64) -> TxResult<()> {
    let key = code_key(code);
    let n: u64 = tx.get(Table::Meta, &key)?.unwrap_or(0);
    match n.saturating_add_signed(delta) {
        0 => tx.remove(Table::Meta, &key).map(drop),
        n => tx.put(Table::Meta, &key, &n).map(drop),
    }
}

/// Stores `failed` and counts it under its code (once, however often it is put).
pub(crate) fn tx_insert(tx: &Tx<'_>, failed: &FailedWrite) -> TxResult<()> {
    let id = FailedWriteId::of(failed);
    let old = tx.get::<FailedWrite>(Table::FailedWrites, &id.store_key())?;
    if let Some(old) = &old {
        add_code(tx, &old.code, -1)?;
    }
    tx.put(Table::FailedWrites, &id.store_key(), failed)?;
    add_code(tx, &failed.code, 1)
}

/// Removes the entry `id` and uncounts it; the entry, when there was one.
pub(crate) fn tx_discard(tx: &Tx<'_>, id: &FailedWriteId) -> TxResult<Option<FailedWrite>> {
    let Some(old) = tx.get::<FailedWrite>(Table::FailedWrites, &id.store_key())? else {
        return Ok(None);
    };
    tx.remove(Table::FailedWrites, &id.store_key())?;
    add_code(tx, &old.code, -1)?;
    Ok(Some(old))
}

impl Store {
    /// Up to `limit` failed writes matching `filter`, in id order, starting
    /// after `after` (exclusive), and the cursor of the next page.
    pub fn failed_writes_page(
        &self,
        filter: &FailedFilter,
        after: Option<&FailedWriteId>,
        limit: usize,
    ) -> Result<FailedPage> {
        let start = match (after, filter.object) {
            (Some(a), _) => Bound::Excluded(a.store_key().into_bytes()),
            (None, Some(o)) => Bound::Included(Key::new().str(o.as_str()).into_bytes()),
            (None, None) => Bound::Unbounded,
        };
        let mut page = FailedPage::default();
        for entry in self
            .inner
            .range::<FailedWrite, _>(Table::FailedWrites, (start, Bound::Unbounded))
        {
            let (_, f) = entry?;
            // Keys group by object kind: past the kind asked for, nothing else matches.
            if filter
                .object
                .is_some_and(|o| f.change.object.as_str() > o.as_str())
            {
                break;
            }
            if !filter.matches(&f) {
                continue;
            }
            if page.items.len() == limit {
                page.next = page.items.last().map(FailedWriteId::of);
                break;
            }
            page.items.push(f);
        }
        Ok(page)
    }

    /// The failed write `id`, if it is still there.
    pub fn failed_write(&self, id: &FailedWriteId) -> Result<Option<FailedWrite>> {
        self.inner.get(Table::FailedWrites, &id.store_key())
    }

    /// Removes the failed write `id` (the operator gave up on it too); the
    /// entry removed, `None` when there was none.
    pub fn failed_write_discard(&self, id: &FailedWriteId) -> Result<Option<FailedWrite>> {
        self.inner.transact(|tx| tx_discard(tx, id))
    }

    /// Failed writes per error code (codes without entries are absent).
    pub fn failed_write_counts(&self) -> Result<BTreeMap<String, u64>> {
        let mut out = BTreeMap::new();
        for entry in self
            .inner
            .prefix::<u64>(Table::Meta, Key::new().str(CODE_COUNTER))
        {
            let (k, n) = entry?;
            let mut r =
                crate::key::Reader::new(&k).ok_or_else(|| self.inner.bad_key(Table::Meta, &k))?;
            match (r.str(), r.str()) {
                (Some(_), Some(code)) => out.insert(code, n),
                _ => return Err(self.inner.bad_key(Table::Meta, &k)),
            };
        }
        Ok(out)
    }
}

#[cfg(test)]
#[path = "failed_tests.rs"]
mod tests;
