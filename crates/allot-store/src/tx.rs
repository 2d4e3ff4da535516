//! Typed access to the tables inside one sled transaction.

use serde::de::DeserializeOwned;
use serde::Serialize;
use sled::transaction::{ConflictableTransactionError, TransactionalTree};

use crate::codec;
use crate::error::StoreError;
use crate::key::Key;
use crate::store::{counter_key, Inner, Table};

/// Result type inside a sled transaction closure.
pub(crate) type TxResult<T> = std::result::Result<T, ConflictableTransactionError<StoreError>>;

/// Typed access to the trees inside one transaction.
pub(crate) struct Tx<'a> {
    pub(crate) trees: &'a [TransactionalTree],
    pub(crate) inner: &'a Inner,
}

impl Tx<'_> {
    fn tree(&self, table: Table) -> &TransactionalTree {
        &self.trees[table.index()]
    }

    /// Aborts the transaction with a store error.
    pub(crate) fn abort<T>(&self, err: StoreError) -> TxResult<T> {
        Err(ConflictableTransactionError::Abort(err))
    }

    pub(crate) fn get<T: DeserializeOwned>(&self, table: Table, key: &Key) -> TxResult<Option<T>> {
        match self.tree(table).get(key)? {
            None => Ok(None),
            Some(raw) => match self.inner.decode(table, key.as_ref(), &raw) {
                Ok(v) => Ok(Some(v)),
                Err(e) => self.abort(e),
            },
        }
    }

    /// Writes a value; returns whether the key existed before.
    pub(crate) fn put<T: Serialize + ?Sized>(
        &self,
        table: Table,
        key: &Key,
        value: &T,
    ) -> TxResult<bool> {
        let bytes = match codec::encode(value) {
            Ok(b) => b,
            Err(e) => return self.abort(self.inner.decode_err(table, key.as_ref(), e)),
        };
        self.put_sealed(table, key, bytes)
    }

    /// Writes already-enveloped bytes; returns whether the key existed before.
    pub(crate) fn put_sealed(&self, table: Table, key: &Key, bytes: Vec<u8>) -> TxResult<bool> {
        Ok(self.tree(table).insert(key.as_ref(), bytes)?.is_some())
    }

    /// Removes a key; returns whether it existed.
    pub(crate) fn remove(&self, table: Table, key: &Key) -> TxResult<bool> {
        Ok(self.tree(table).remove(key.as_ref())?.is_some())
    }

    /// A unique, increasing id (sled's persistent id generator).
    pub(crate) fn generate_id(&self) -> TxResult<u64> {
        Ok(self.tree(Table::Meta).generate_id()?)
    }

    /// Adds `delta` to a table's entry counter.
    pub(crate) fn add_count(&self, table: Table, delta: i64) -> TxResult<()> {
        if delta == 0 {
            return Ok(());
        }
        let key = counter_key(table);
        let n: u64 = self.get(Table::Meta, &key)?.unwrap_or(0);
        let n = n.saturating_add_signed(delta);
        self.put(Table::Meta, &key, &n).map(|_| ())
    }
}
