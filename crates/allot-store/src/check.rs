//! `Store::check`: scan every table, decode every entry, report what is wrong.

use std::fmt;
use std::path::PathBuf;

use allot_core::Decision;

use crate::codec;
use crate::error::{Result, StoreError};
use crate::key;
use crate::outbox::{FailedWrite, OutboxEntry};
use crate::records::{Position, StoredRecord, WriteMark};
use crate::rules::RuleVersion;
use crate::state;
use crate::store::{Store, Table};

/// Entries found in one table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableCount {
    /// The table name ([`Table::name`]).
    pub table: &'static str,
    /// Entries found by the scan, good or bad.
    pub entries: u64,
}

/// One entry that failed its check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorruptEntry {
    /// The table name ([`Table::name`]).
    pub table: &'static str,
    /// Decoded for humans (`lead/00Q1`), or hex when undecodable.
    pub key: String,
    /// What is wrong: bad key layout, envelope damage, or a payload that does not decode.
    pub detail: String,
}

/// What [`Store::check`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckReport {
    /// The store directory that was checked.
    pub path: PathBuf,
    /// Every table, in [`Table::ALL`] order.
    pub tables: Vec<TableCount>,
    /// Entries whose key, envelope or payload is bad.
    pub corrupt: Vec<CorruptEntry>,
    /// Inconsistencies between tables (counters, indexes) that a rebuild fixes.
    pub problems: Vec<String>,
}

impl CheckReport {
    /// Whether nothing is wrong.
    pub fn is_clean(&self) -> bool {
        self.corrupt.is_empty() && self.problems.is_empty()
    }

    /// Entries counted in `table`.
    pub fn count(&self, table: Table) -> u64 {
        self.tables
            .iter()
            .find(|t| t.table == table.name())
            .map_or(0, |t| t.entries)
    }
}

impl fmt::Display for CheckReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let total: u64 = self.tables.iter().map(|t| t.entries).sum();
        writeln!(
            f,
            "store at {}: {total} entries in {} tables, {} corrupt, {} other problems",
            self.path.display(),
            self.tables.len(),
            self.corrupt.len(),
            self.problems.len()
        )?;
        for t in &self.tables {
            writeln!(f, "  {:<14} {}", t.table, t.entries)?;
        }
        for c in &self.corrupt {
            writeln!(f, "corrupt: table {}, key {}: {}", c.table, c.key, c.detail)?;
        }
        for p in &self.problems {
            writeln!(f, "problem: {p}")?;
        }
        if !self.is_clean() {
            writeln!(
                f,
                "rebuild the state from the log / CRM with `allot state import`"
            )?;
        }
        Ok(())
    }
}

impl Store {
    /// Scans every table and decodes every entry. Fails only when sled
    /// cannot be read; damaged entries are listed in the report.
    pub fn check(&self) -> Result<CheckReport> {
        let inner = &self.inner;
        let mut report = CheckReport {
            path: inner.path.clone(),
            tables: Vec::new(),
            corrupt: Vec::new(),
            problems: Vec::new(),
        };
        for table in Table::ALL {
            let mut entries = 0;
            for entry in inner.range_raw(table, ..) {
                let (k, v) = entry?;
                entries += 1;
                match check_entry(self, table, &k, &v) {
                    Ok(()) => {}
                    Err(StoreError::Corrupt {
                        table, key, detail, ..
                    }) => report.corrupt.push(CorruptEntry { table, key, detail }),
                    Err(StoreError::Codec {
                        table, key, detail, ..
                    }) => report.corrupt.push(CorruptEntry {
                        table,
                        key,
                        detail: format!("payload does not decode: {detail}"),
                    }),
                    Err(other) => return Err(other),
                }
            }
            report.tables.push(TableCount {
                table: table.name(),
                entries,
            });
        }
        for (table, index) in [
            (Table::Records, None),
            (Table::Seen, Some(Table::SeenByTime)),
        ] {
            let counted = report.count(table);
            match inner.counter(table) {
                Ok(kept) if kept != counted => report.problems.push(format!(
                    "table {}: counter says {kept} entries, scan found {counted}",
                    table.name()
                )),
                Ok(_) => {}
                Err(_) => {} // the counter entry itself is listed as corrupt
            }
            if let Some(index) = index {
                if report.count(index) != counted {
                    report.problems.push(format!(
                        "table {} has {} entries but its index {} has {}",
                        table.name(),
                        counted,
                        index.name(),
                        report.count(index)
                    ));
                }
            }
        }
        Ok(report)
    }
}

fn check_entry(store: &Store, table: Table, k: &[u8], v: &[u8]) -> Result<()> {
    let inner = &store.inner;
    if key::segments(k).is_none() {
        return Err(inner.bad_key(table, k));
    }
    match table {
        Table::Records => inner.decode::<StoredRecord>(table, k, v).map(drop),
        Table::Seen => inner.decode::<i64>(table, k, v).map(drop),
        Table::SeenByTime | Table::OutboxQueue => inner.decode::<()>(table, k, v),
        Table::Positions => inner.decode::<Position>(table, k, v).map(drop),
        Table::Writes => inner.decode::<WriteMark>(table, k, v).map(drop),
        Table::State => state::check_value(store, k, v),
        Table::Audit => inner.decode::<Decision>(table, k, v).map(drop),
        Table::AuditByTime => inner.decode::<String>(table, k, v).map(drop),
        Table::Outbox => inner.decode::<OutboxEntry>(table, k, v).map(drop),
        Table::FailedWrites => inner.decode::<FailedWrite>(table, k, v).map(drop),
        Table::Rules => inner.decode::<RuleVersion>(table, k, v).map(drop),
        Table::Log => codec::unseal(v)
            .map(drop)
            .map_err(|e| inner.decode_err(table, k, e)),
        Table::LogMeta | Table::Meta => inner.decode::<u64>(table, k, v).map(drop),
        Table::Admin => inner.decode::<serde_json::Value>(table, k, v).map(drop),
    }
}

#[cfg(test)]
#[path = "check_tests.rs"]
mod tests;
