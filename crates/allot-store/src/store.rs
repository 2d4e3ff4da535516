//! The [`Store`] handle, its tables and the shared read/transaction helpers.

use std::collections::HashMap;
use std::ops::RangeBounds;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::de::DeserializeOwned;
use sled::transaction::{TransactionError, Transactional};
use sled::IVec;

use crate::codec::{self, DecodeError};
use crate::error::{Result, StoreError};
use crate::key::{self, Key};
use crate::signal::Signal;
use crate::tx::{Tx, TxResult};

/// The tables of the store, one sled tree each. Keys are tuples (see
/// `key.rs`), shown here as `(segment, ...)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Table {
    /// `(object kind, record id)` → record + order key of the last applied event.
    Records,
    /// `(event id)` → when it was seen (ms). The dedupe window.
    Seen,
    /// `(seen at ms, event id)` → unit. Time index so pruning reads oldest first.
    SeenByTime,
    /// `(source)` → position (offset or opaque token), e.g. `kafka:topic:3`.
    Positions,
    /// `(object kind, record id)` → owner allot last wrote and when (loop prevention).
    Writes,
    /// `("cursor"|"open"|"daily"|"domain", name)` → one piece of engine state.
    State,
    /// `(record id, decided at ms, seq)` → decision.
    Audit,
    /// `(decided at ms, seq)` → record id. Time index for newest-first listing.
    AuditByTime,
    /// `(object kind, record id)` → newest owner change and its delivery state.
    Outbox,
    /// `(decided at ms, object kind, record id)` → unit, for entries not yet
    /// done or failed, so the writer finds work without scanning done entries.
    OutboxQueue,
    /// `(object kind, record id, decided at ms)` → a change the writer gave up on.
    FailedWrites,
    /// `(version id)` → rule file text, effective time, activation.
    Rules,
    /// `(log name, offset)` → message bytes (enveloped, not JSON).
    Log,
    /// `(log name, "next")` → next offset; `(log name, "group", group)` → committed offset.
    LogMeta,
    /// `("count", table)` → entry count kept in the same transactions as the table.
    Meta,
    /// Operator state: `("override", rep)` → rep override, `("audit", at ms,
    /// seq)` → admin audit entry, `("dry_run", version id)` → dry-run result,
    /// `("job", name)` → background job progress. Values are the caller's
    /// JSON documents (see `admin.rs`).
    Admin,
}

impl Table {
    /// Every table, in tree order (the index into the store's tree list).
    pub const ALL: [Table; 16] = [
        Table::Records,
        Table::Seen,
        Table::SeenByTime,
        Table::Positions,
        Table::Writes,
        Table::State,
        Table::Audit,
        Table::AuditByTime,
        Table::Outbox,
        Table::OutboxQueue,
        Table::FailedWrites,
        Table::Rules,
        Table::Log,
        Table::LogMeta,
        Table::Meta,
        Table::Admin,
    ];

    /// The sled tree name, also used in errors and reports.
    pub fn name(self) -> &'static str {
        match self {
            Table::Records => "records",
            Table::Seen => "seen",
            Table::SeenByTime => "seen_by_time",
            Table::Positions => "positions",
            Table::Writes => "writes",
            Table::State => "state",
            Table::Audit => "audit",
            Table::AuditByTime => "audit_by_time",
            Table::Outbox => "outbox",
            Table::OutboxQueue => "outbox_queue",
            Table::FailedWrites => "failed_writes",
            Table::Rules => "rules",
            Table::Log => "log",
            Table::LogMeta => "log_meta",
            Table::Meta => "meta",
            Table::Admin => "admin",
        }
    }

    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

/// Durable allot state. Cheap to clone: clones share one sled database.
#[derive(Clone)]
pub struct Store {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.inner.path)
            .finish()
    }
}

/// State shared by every clone of a [`Store`] and by its [`crate::Log`]s.
pub(crate) struct Inner {
    /// Kept to flush and to generate ids.
    pub(crate) db: sled::Db,
    /// Where the database lives, for error messages.
    pub(crate) path: PathBuf,
    /// One tree per [`Table`], indexed by [`Table::index`].
    pub(crate) trees: Vec<sled::Tree>,
    /// Wake-up signals per log name, so readers can wait for appends.
    pub(crate) signals: Mutex<HashMap<String, Arc<Signal>>>,
}

/// Page cache of a store opened with [`Store::open`].
pub const DEFAULT_CACHE_BYTES: u64 = 24 * 1024 * 1024;

impl Store {
    /// Opens (or creates) the store in directory `path`, with a page cache
    /// of [`DEFAULT_CACHE_BYTES`].
    pub fn open(path: impl AsRef<Path>) -> Result<Store> {
        Store::open_with_cache(path, DEFAULT_CACHE_BYTES)
    }

    /// Opens (or creates) the store with a page cache of about `cache_bytes`:
    /// sled's default (1 GiB) would let memory grow with the record count.
    pub fn open_with_cache(path: impl AsRef<Path>, cache_bytes: u64) -> Result<Store> {
        let path = path.as_ref().to_path_buf();
        let db = sled::Config::new()
            .path(&path)
            .cache_capacity(cache_bytes)
            .open()
            .map_err(|cause| StoreError::Open {
                path: path.clone(),
                cause,
            })?;
        Store::from_db(db, path)
    }

    /// A store in a temporary directory, deleted when the last clone drops.
    /// For tests and `simulate`-style dry runs.
    pub fn temporary() -> Result<Store> {
        let path = PathBuf::from("<temporary>");
        let db = sled::Config::new()
            .temporary(true)
            .open()
            .map_err(|cause| StoreError::Open {
                path: path.clone(),
                cause,
            })?;
        Store::from_db(db, path)
    }

    fn from_db(db: sled::Db, path: PathBuf) -> Result<Store> {
        let trees = Table::ALL
            .iter()
            .map(|t| db.open_tree(t.name()))
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|cause| StoreError::Open {
                path: path.clone(),
                cause,
            })?;
        let inner = Inner {
            db,
            path,
            trees,
            signals: Mutex::new(HashMap::new()),
        };
        Ok(Store {
            inner: Arc::new(inner),
        })
    }

    /// The directory the store lives in (`<temporary>` for temporary stores).
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Bytes the database takes on disk.
    pub fn size_on_disk(&self) -> Result<u64> {
        self.inner
            .db
            .size_on_disk()
            .map_err(|e| self.inner.sled_err("size on disk", e))
    }

    /// Forces everything written so far to disk. `commit` already does this;
    /// exposed for shutdown paths.
    pub fn flush(&self) -> Result<()> {
        self.inner.flush()
    }
}

impl Inner {
    pub(crate) fn tree(&self, table: Table) -> &sled::Tree {
        &self.trees[table.index()]
    }

    pub(crate) fn flush(&self) -> Result<()> {
        self.db
            .flush()
            .map(|_| ())
            .map_err(|e| self.sled_err("flush", e))
    }

    pub(crate) fn sled_err(&self, op: &'static str, cause: sled::Error) -> StoreError {
        StoreError::Sled {
            path: self.path.clone(),
            op,
            cause,
        }
    }

    pub(crate) fn invalid(&self, detail: impl Into<String>) -> StoreError {
        StoreError::Invalid {
            path: self.path.clone(),
            detail: detail.into(),
        }
    }

    pub(crate) fn decode_err(&self, table: Table, key: &[u8], err: DecodeError) -> StoreError {
        let (path, table, key) = (self.path.clone(), table.name(), key::display(key));
        match err {
            DecodeError::Corrupt(detail) => StoreError::Corrupt {
                path,
                table,
                key,
                detail,
            },
            DecodeError::Codec(detail) => StoreError::Codec {
                path,
                table,
                key,
                detail,
            },
        }
    }

    /// A key this crate could not have written, found where a typed key was expected.
    pub(crate) fn bad_key(&self, table: Table, key: &[u8]) -> StoreError {
        self.decode_err(
            table,
            key,
            DecodeError::Corrupt("unexpected key layout".into()),
        )
    }

    pub(crate) fn decode<T: DeserializeOwned>(
        &self,
        table: Table,
        key: &[u8],
        value: &[u8],
    ) -> Result<T> {
        codec::decode(value).map_err(|e| self.decode_err(table, key, e))
    }

    /// Reads and decodes one value.
    pub(crate) fn get<T: DeserializeOwned>(&self, table: Table, key: &Key) -> Result<Option<T>> {
        let raw = self
            .tree(table)
            .get(key)
            .map_err(|e| self.sled_err("read", e))?;
        raw.map(|v| self.decode(table, key.as_ref(), &v))
            .transpose()
    }

    /// Iterates raw entries of a range, turning sled errors into store errors.
    pub(crate) fn range_raw<R>(
        &self,
        table: Table,
        range: R,
    ) -> impl DoubleEndedIterator<Item = Result<(IVec, IVec)>> + '_
    where
        R: RangeBounds<Vec<u8>>,
    {
        self.tree(table)
            .range(range)
            .map(move |r| r.map_err(|e| self.sled_err("scan", e)))
    }

    /// Iterates decoded entries of a range.
    pub(crate) fn range<T, R>(
        &self,
        table: Table,
        range: R,
    ) -> impl DoubleEndedIterator<Item = Result<(IVec, T)>> + '_
    where
        T: DeserializeOwned,
        R: RangeBounds<Vec<u8>>,
    {
        self.range_raw(table, range).map(move |r| {
            let (k, v) = r?;
            let value = self.decode(table, &k, &v)?;
            Ok((k, value))
        })
    }

    /// Iterates decoded entries under a key prefix.
    pub(crate) fn prefix<T: DeserializeOwned>(
        &self,
        table: Table,
        prefix: Key,
    ) -> impl DoubleEndedIterator<Item = Result<(IVec, T)>> + '_ {
        self.tree(table).scan_prefix(prefix).map(move |r| {
            let (k, v) = r.map_err(|e| self.sled_err("scan", e))?;
            let value = self.decode(table, &k, &v)?;
            Ok((k, value))
        })
    }

    /// Runs `f` as one transaction over every table, then flushes. For
    /// maintenance work (pruning, requeueing) that is not a caller's batch.
    pub(crate) fn transact<T>(&self, f: impl Fn(&Tx<'_>) -> TxResult<T>) -> Result<T> {
        let outcome = self
            .trees
            .as_slice()
            .transaction(|trees| f(&Tx { trees, inner: self }));
        let value = match outcome {
            Ok(v) => v,
            Err(TransactionError::Abort(e)) => return Err(e),
            Err(TransactionError::Storage(e)) => return Err(self.sled_err("commit", e)),
        };
        self.flush()?;
        Ok(value)
    }

    /// An entry counter kept in [`Table::Meta`] (0 when never written).
    pub(crate) fn counter(&self, table: Table) -> Result<u64> {
        Ok(self.get(Table::Meta, &counter_key(table))?.unwrap_or(0))
    }
}

pub(crate) fn counter_key(table: Table) -> Key {
    Key::new().str("count").str(table.name())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_index_matches_all_order() {
        for (i, t) in Table::ALL.iter().enumerate() {
            assert_eq!(t.index(), i, "{}", t.name());
        }
    }
}
