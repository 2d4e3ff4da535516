//! Records (with the order key of the last applied event), source positions
//! and the write ledger: the per-record and per-source facts ingest needs.

use allot_core::{Millis, ObjectKind, Record};
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::key::{Key, Reader};
use crate::store::{Store, Table};
use crate::tx::{Tx, TxResult};

/// `(commit time ms, sequence)` of an event: later keys win, so an event whose
/// key is not greater than the stored one is old news
/// (see `allot_core::ChangeEvent::order_key`).
pub type OrderKey = (Millis, i64);

/// How far a source has been consumed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Position {
    /// A numeric offset (Kafka, the embedded log).
    Offset(i64),
    /// An opaque resume token (Salesforce replay id, a file name and line).
    Token(String),
}

impl Position {
    /// The offset, when this is one.
    pub fn offset(&self) -> Option<i64> {
        match self {
            Position::Offset(n) => Some(*n),
            Position::Token(_) => None,
        }
    }

    /// The token, when this is one.
    pub fn token(&self) -> Option<&str> {
        match self {
            Position::Offset(_) => None,
            Position::Token(t) => Some(t),
        }
    }
}

impl From<i64> for Position {
    fn from(n: i64) -> Self {
        Position::Offset(n)
    }
}

impl From<String> for Position {
    fn from(s: String) -> Self {
        Position::Token(s)
    }
}

impl From<&str> for Position {
    fn from(s: &str) -> Self {
        Position::Token(s.to_string())
    }
}

/// A record as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct StoredRecord {
    pub(crate) record: Record,
    /// Order key of the last event merged into `record`; `None` for records
    /// loaded from a CRM snapshot rather than from events.
    #[serde(default)]
    pub(crate) applied: Option<OrderKey>,
}

/// The last owner allot wrote to a record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct WriteMark {
    pub(crate) owner: String,
    pub(crate) at_ms: Millis,
}

pub(crate) fn record_key(object: ObjectKind, id: &str) -> Key {
    Key::new().str(object.as_str()).str(id)
}

fn position_key(source: &str) -> Key {
    Key::new().str(source)
}

pub(crate) fn tx_put_record(
    tx: &Tx<'_>,
    record: &Record,
    applied: Option<OrderKey>,
) -> TxResult<()> {
    let stored = StoredRecord {
        record: record.clone(),
        applied,
    };
    let existed = tx.put(
        Table::Records,
        &record_key(record.object, &record.id),
        &stored,
    )?;
    if !existed {
        tx.add_count(Table::Records, 1)?;
    }
    Ok(())
}

pub(crate) fn tx_set_position(tx: &Tx<'_>, source: &str, position: &Position) -> TxResult<()> {
    tx.put(Table::Positions, &position_key(source), position)
        .map(|_| ())
}

pub(crate) fn tx_record_write(
    tx: &Tx<'_>,
    object: ObjectKind,
    id: &str,
    owner: &str,
    at_ms: Millis,
) -> TxResult<()> {
    let mark = WriteMark {
        owner: owner.to_string(),
        at_ms,
    };
    tx.put(Table::Writes, &record_key(object, id), &mark)
        .map(|_| ())
}

impl Store {
    /// A record and the order key of the last event applied to it.
    pub fn record(
        &self,
        object: ObjectKind,
        id: &str,
    ) -> Result<Option<(Record, Option<OrderKey>)>> {
        let stored: Option<StoredRecord> =
            self.inner.get(Table::Records, &record_key(object, id))?;
        Ok(stored.map(|s| (s.record, s.applied)))
    }

    /// Every record, ordered by object kind then id (for realignment).
    pub fn records(&self) -> impl Iterator<Item = Result<(Record, Option<OrderKey>)>> + '_ {
        self.inner
            .range::<StoredRecord, _>(Table::Records, ..)
            .map(|r| r.map(|(_, s)| (s.record, s.applied)))
    }

    /// Every record of one object kind, ordered by id.
    pub fn records_of(
        &self,
        object: ObjectKind,
    ) -> impl Iterator<Item = Result<(Record, Option<OrderKey>)>> + '_ {
        self.inner
            .prefix::<StoredRecord>(Table::Records, Key::new().str(object.as_str()))
            .map(|r| r.map(|(_, s)| (s.record, s.applied)))
    }

    /// Number of stored records (a counter kept with the writes: O(1)).
    pub fn record_count(&self) -> Result<u64> {
        self.inner.counter(Table::Records)
    }

    /// How far `source` has been consumed, if it ever was.
    pub fn position(&self, source: &str) -> Result<Option<Position>> {
        self.inner.get(Table::Positions, &position_key(source))
    }

    /// Every stored source position, ordered by source.
    pub fn positions(&self) -> Result<Vec<(String, Position)>> {
        self.inner
            .range::<Position, _>(Table::Positions, ..)
            .map(|r| {
                let (k, p) = r?;
                let source = Reader::new(&k)
                    .and_then(|mut r| r.str())
                    .ok_or_else(|| self.inner.bad_key(Table::Positions, &k))?;
                Ok((source, p))
            })
            .collect()
    }

    /// Notes a write allot made (one-op batch; see [`crate::Batch::record_write`]).
    pub fn record_write(
        &self,
        object: ObjectKind,
        id: &str,
        owner: &str,
        at_ms: Millis,
    ) -> Result<()> {
        let mut b = self.batch();
        b.record_write(object, id, owner, at_ms);
        self.commit(b).map(|_| ())
    }

    /// The owner allot last wrote to a record and when, for dropping the
    /// echo of its own write. The caller decides what "recent" means.
    pub fn recent_write(&self, object: ObjectKind, id: &str) -> Result<Option<(String, Millis)>> {
        let mark: Option<WriteMark> = self.inner.get(Table::Writes, &record_key(object, id))?;
        Ok(mark.map(|m| (m.owner, m.at_ms)))
    }

    /// Forgets writes older than `before_ms`; returns how many. Each removal
    /// is a compare-and-swap, so a write recorded meanwhile is kept.
    pub fn prune_writes(&self, before_ms: Millis) -> Result<u64> {
        let tree = self.inner.tree(Table::Writes);
        let mut removed = 0;
        for entry in self.inner.range_raw(Table::Writes, ..) {
            let (k, v) = entry?;
            let mark: WriteMark = self.inner.decode(Table::Writes, &k, &v)?;
            if mark.at_ms >= before_ms {
                continue;
            }
            let swapped = tree
                .compare_and_swap(&k, Some(&v), None as Option<&[u8]>)
                .map_err(|e| self.inner.sled_err("prune writes", e))?;
            removed += u64::from(swapped.is_ok());
        }
        self.inner.flush()?;
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_with_order_key() {
        let store = Store::temporary().unwrap();
        let lead = Record::new(ObjectKind::Lead, "00Q1")
            .with("country", "US")
            .with_owner("005A");
        let account = Record::new(ObjectKind::Account, "001X").with("employees", 120i64);
        let mut b = store.batch();
        b.put_record(&lead, Some((1_700_000_000_000, 3)))
            .put_record(&account, None);
        b.put_record(&lead, Some((1_700_000_000_001, -1)));
        store.commit(b).unwrap();

        let cases = [
            (
                ObjectKind::Lead,
                "00Q1",
                Some((lead.clone(), Some((1_700_000_000_001, -1)))),
            ),
            (ObjectKind::Account, "001X", Some((account.clone(), None))),
            (ObjectKind::Contact, "00Q1", None),
            (ObjectKind::Lead, "nope", None),
        ];
        for (kind, id, want) in cases {
            assert_eq!(store.record(kind, id).unwrap(), want, "{kind}/{id}");
        }
        assert_eq!(store.record_count().unwrap(), 2);
        let all: Vec<String> = store.records().map(|r| r.unwrap().0.id).collect();
        assert_eq!(
            all,
            ["001X", "00Q1"],
            "ordered by kind name: account < lead"
        );
        let accounts: Vec<String> = store
            .records_of(ObjectKind::Account)
            .map(|r| r.unwrap().0.id)
            .collect();
        assert_eq!(accounts, ["001X"]);
    }

    #[test]
    fn positions_take_offsets_and_tokens() {
        let store = Store::temporary().unwrap();
        let mut b = store.batch();
        b.set_position("kafka:allot.events:0", 41)
            .set_position("kafka:allot.events:0", 42);
        b.set_position("salesforce:/data/LeadChangeEvent", "AAAAAAA=");
        store.commit(b).unwrap();
        let cases = [
            ("kafka:allot.events:0", Some(Position::Offset(42))),
            (
                "salesforce:/data/LeadChangeEvent",
                Some(Position::Token("AAAAAAA=".into())),
            ),
            ("kafka:allot.events:1", None),
        ];
        for (source, want) in cases {
            assert_eq!(store.position(source).unwrap(), want, "{source}");
        }
        assert_eq!(
            store
                .position("kafka:allot.events:0")
                .unwrap()
                .and_then(|p| p.offset()),
            Some(42)
        );
        assert_eq!(store.positions().unwrap().len(), 2);
    }

    #[test]
    fn write_ledger_keeps_latest_and_prunes_old() {
        let store = Store::temporary().unwrap();
        store
            .record_write(ObjectKind::Lead, "1", "005A", 100)
            .unwrap();
        store
            .record_write(ObjectKind::Lead, "1", "005B", 200)
            .unwrap();
        store
            .record_write(ObjectKind::Account, "2", "005C", 50)
            .unwrap();
        assert_eq!(
            store.recent_write(ObjectKind::Lead, "1").unwrap(),
            Some(("005B".into(), 200))
        );
        assert_eq!(store.prune_writes(150).unwrap(), 1);
        let cases = [
            (ObjectKind::Lead, "1", Some(("005B".to_string(), 200))),
            (ObjectKind::Account, "2", None),
        ];
        for (kind, id, want) in cases {
            assert_eq!(store.recent_write(kind, id).unwrap(), want, "{kind}/{id}");
        }
    }
}
