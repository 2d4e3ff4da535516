//! The errors of this crate. Decoding never panics and never stops at the first
//! bad event: every problem becomes one [`DecodeError`] value, handed back next to
//! the events that did decode.

use std::fmt;

use allot_core::Crm;

/// Which event an error is about, for the error's `Display`.
///
/// Reads like `hubspot event [2] (eventId 1893402011)`: the format being decoded,
/// the position in the JSON array (only when the payload was an array) and the
/// event's own id when it could be read before the error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventRef {
    /// The format the event was decoded as.
    pub crm: Crm,
    /// Index of the event in a JSON array payload; `None` for a single object.
    pub index: Option<usize>,
    /// The event's id with its name, e.g. `replayId 2142249`, when readable.
    pub id: Option<String>,
}

impl EventRef {
    pub(crate) fn new(crm: Crm, index: Option<usize>) -> Self {
        EventRef {
            crm,
            index,
            id: None,
        }
    }
}

impl fmt::Display for EventRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} event", self.crm)?;
        if let Some(i) = self.index {
            write!(f, " [{i}]")?;
        }
        if let Some(id) = &self.id {
            write!(f, " ({id})")?;
        }
        Ok(())
    }
}

/// Why one payload, or one event in it, could not be decoded.
///
/// None of these is worth a retry: the same bytes fail the same way. Callers
/// count them by [`DecodeError::kind`] and dead-letter the input. In every variant
/// `at` names the event and `field` is a dotted JSON path inside it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DecodeError {
    /// The bytes are not JSON (or not UTF-8).
    #[error("not JSON at line {line} column {column}: {message}")]
    Json {
        /// 1-based line of the problem.
        line: usize,
        /// 1-based column (in bytes) of the problem.
        column: usize,
        /// The parser's message, without the position.
        message: String,
    },
    /// `Format::Auto` found nothing it recognises.
    #[error("cannot detect format: {reason}")]
    Detect {
        /// What was found instead.
        reason: String,
    },
    /// The event is not shaped like the format at all (e.g. not an object).
    #[error("{at}: {message}")]
    Shape {
        /// The event.
        at: EventRef,
        /// What is wrong with it.
        message: String,
    },
    /// A required field is absent or null.
    #[error("{at}: missing field \"{field}\"")]
    MissingField {
        /// The event.
        at: EventRef,
        /// Path of the missing field.
        field: String,
    },
    /// A field is present but has the wrong type or an impossible value.
    #[error("{at}: field \"{field}\" {problem}")]
    InvalidField {
        /// The event.
        at: EventRef,
        /// Path of the field.
        field: String,
        /// What is wrong with its value.
        problem: String,
    },
    /// The change type (`changeType`, `subscriptionType`, ...) is not one allot knows.
    #[error("{at}: unknown {field} \"{value}\"")]
    UnknownChange {
        /// The event.
        at: EventRef,
        /// The field that names the change type.
        field: &'static str,
        /// Its value.
        value: String,
    },
    /// The event is about an object allot does not route (an Opportunity, a deal).
    /// Expected when a CRM sends more than allot subscribed to; count, don't alarm.
    #[error("{at}: unsupported object \"{name}\" (allot routes leads, accounts and contacts)")]
    UnsupportedObject {
        /// The event.
        at: EventRef,
        /// The CRM's name of the object type.
        name: String,
    },
    /// A native envelope of a version this build cannot read.
    #[error("{at}: unsupported version {found} (this build reads v{supported})")]
    Version {
        /// The event.
        at: EventRef,
        /// The `v` found, as JSON.
        found: String,
        /// The version this build reads ([`allot_core::EVENT_VERSION`]).
        supported: u8,
    },
}

impl DecodeError {
    /// A short, stable label for metrics and logs: `json`, `detect`, `shape`,
    /// `field`, `change`, `object` or `version`.
    pub fn kind(&self) -> &'static str {
        match self {
            DecodeError::Json { .. } => "json",
            DecodeError::Detect { .. } => "detect",
            DecodeError::Shape { .. } => "shape",
            DecodeError::MissingField { .. } | DecodeError::InvalidField { .. } => "field",
            DecodeError::UnknownChange { .. } => "change",
            DecodeError::UnsupportedObject { .. } => "object",
            DecodeError::Version { .. } => "version",
        }
    }

    /// The event the error is about, when it is about one event.
    pub fn event(&self) -> Option<&EventRef> {
        match self {
            DecodeError::Json { .. } | DecodeError::Detect { .. } => None,
            DecodeError::Shape { at, .. }
            | DecodeError::MissingField { at, .. }
            | DecodeError::InvalidField { at, .. }
            | DecodeError::UnknownChange { at, .. }
            | DecodeError::UnsupportedObject { at, .. }
            | DecodeError::Version { at, .. } => Some(at),
        }
    }
}

/// A field map file that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FieldMapError {
    /// Not TOML, or keys/types the field map does not allow. `location` reads
    /// ` at line L column C` when the TOML parser knew where.
    #[error("field map: invalid TOML{location}: {message}")]
    Toml {
        /// ` at line L column C`, or empty when unknown.
        location: String,
        /// The TOML parser's message.
        message: String,
    },
    /// Well-formed TOML that does not make a usable map; every problem at once.
    #[error("field map: {}", problems.join("; "))]
    Invalid {
        /// One line per problem, naming the table and key.
        problems: Vec<String>,
    },
}

/// A `--format` value that is none of `auto`, `salesforce`, `hubspot`, `native`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown format \"{0}\" (expected auto, salesforce, hubspot or native)")]
pub struct ParseFormatError(
    /// The value given.
    pub String,
);
