//! The one error type of this crate.

use std::io::ErrorKind;
use std::path::PathBuf;

/// Everything that can go wrong in the store.
///
/// Each variant names the store directory, and where it applies the table and
/// the key, so a message reaching an operator says what is wrong and where.
/// [`StoreError::retryable`] tells the caller whether trying again can help,
/// so a stage chooses retry or stop without matching strings.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database could not be opened (missing permissions, another process
    /// holding the lock, a damaged sled file).
    #[error("cannot open store at {}: {cause}{}", path.display(), open_hint(cause))]
    Open {
        /// The store directory.
        path: PathBuf,
        /// What sled reported (printed in the message, so not a `source`).
        cause: sled::Error,
    },

    /// sled failed while the store was in use (I/O error, sled's own checks).
    #[error("store at {}: {op} failed: {cause}", path.display())]
    Sled {
        /// The store directory.
        path: PathBuf,
        /// What the store was doing, e.g. `commit`, `flush`, `scan records`.
        op: &'static str,
        /// What sled reported (printed in the message, so not a `source`).
        cause: sled::Error,
    },

    /// A stored value failed its envelope check (unknown format version, CRC
    /// mismatch, truncated bytes) or its key is not one this crate writes.
    #[error(
        "corrupt entry in store at {}: table {table}, key {key}: {detail}; \
         the value cannot be trusted: rebuild the state from the log / CRM with \
         `allot state import`, or run `allot state check` to list every damaged entry",
        path.display()
    )]
    Corrupt {
        /// The store directory.
        path: PathBuf,
        /// The table ([`crate::Table::name`]).
        table: &'static str,
        /// The key, decoded for humans (`lead/00Q1`), or hex when undecodable.
        key: String,
        /// What is wrong with the bytes.
        detail: String,
    },

    /// The envelope is intact but the JSON payload does not match the type
    /// this build expects (written by another allot version), or a value
    /// could not be serialised.
    #[error(
        "cannot decode entry in store at {}: table {table}, key {key}: {detail} \
         (was it written by another allot version? rebuild it with `allot state import`)",
        path.display()
    )]
    Codec {
        /// The store directory.
        path: PathBuf,
        /// The table ([`crate::Table::name`]).
        table: &'static str,
        /// The key, decoded for humans.
        key: String,
        /// The serde error.
        detail: String,
    },

    /// The caller asked for something the store refuses: committing a log
    /// position past its end, reusing a rule version id for other text, ...
    #[error("store at {}: {detail}", path.display())]
    Invalid {
        /// The store directory.
        path: PathBuf,
        /// What was refused and why.
        detail: String,
    },
}

impl StoreError {
    /// Whether retrying the same call later may succeed. I/O trouble and a
    /// lock held by another process may pass; corruption, decoding errors and
    /// invalid requests will not.
    pub fn retryable(&self) -> bool {
        match self {
            StoreError::Open { cause, .. } | StoreError::Sled { cause, .. } => match cause {
                sled::Error::Io(e) => !matches!(
                    e.kind(),
                    ErrorKind::PermissionDenied
                        | ErrorKind::NotFound
                        | ErrorKind::InvalidInput
                        | ErrorKind::InvalidData
                        | ErrorKind::Unsupported
                ),
                _ => false,
            },
            StoreError::Corrupt { .. } | StoreError::Codec { .. } | StoreError::Invalid { .. } => {
                false
            }
        }
    }

    /// Whether the error means stored data is damaged or unreadable, so the
    /// fix is a rebuild rather than a retry.
    pub fn is_corruption(&self) -> bool {
        matches!(
            self,
            StoreError::Corrupt { .. }
                | StoreError::Codec { .. }
                | StoreError::Sled {
                    cause: sled::Error::Corruption { .. },
                    ..
                }
                | StoreError::Open {
                    cause: sled::Error::Corruption { .. },
                    ..
                }
        )
    }
}

fn open_hint(cause: &sled::Error) -> &'static str {
    match cause {
        sled::Error::Io(e) if e.to_string().contains("could not acquire lock") => {
            " (is another allot process using this store?)"
        }
        sled::Error::Corruption { .. } => {
            " (the sled files are damaged: move the directory away and rebuild with `allot state import`)"
        }
        _ => "",
    }
}

/// Shorthand used throughout the crate.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_say_what_and_where() {
        let path = PathBuf::from("/var/lib/allot/store");
        let cases: Vec<(StoreError, bool, &[&str])> = vec![
            (
                StoreError::Corrupt {
                    path: path.clone(),
                    table: "records",
                    key: "lead/00Q1".into(),
                    detail: "crc mismatch".into(),
                },
                false,
                &[
                    "/var/lib/allot/store",
                    "table records",
                    "key lead/00Q1",
                    "crc mismatch",
                    "allot state import",
                ],
            ),
            (
                StoreError::Codec {
                    path: path.clone(),
                    table: "outbox",
                    key: "lead/1".into(),
                    detail: "missing field `owner`".into(),
                },
                false,
                &["table outbox", "key lead/1", "missing field"],
            ),
            (
                StoreError::Open {
                    path: path.clone(),
                    cause: sled::Error::Io(std::io::Error::other("could not acquire lock on x")),
                },
                true,
                &["cannot open store", "another allot process"],
            ),
            (
                StoreError::Sled {
                    path: path.clone(),
                    op: "flush",
                    cause: sled::Error::Io(std::io::Error::from(ErrorKind::PermissionDenied)),
                },
                false,
                &["flush failed"],
            ),
        ];
        for (err, retryable, needles) in cases {
            let msg = err.to_string();
            for needle in needles {
                assert!(msg.contains(needle), "{msg:?} lacks {needle:?}");
            }
            assert_eq!(err.retryable(), retryable, "{msg}");
        }
    }
}
