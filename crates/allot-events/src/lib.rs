//! Pure decoders of CRM change events into [`allot_core::ChangeEvent`].
//!
//! Bytes in, events and errors out: no I/O, no clock, no global state, so every
//! function here is a plain function of its arguments. Decoding never panics and
//! never stops at the first bad event ([`Decoded`] holds both halves).
//!
//! * [`decode`] / [`decode_value`]: one payload (Salesforce CDC in either Kafka shape,
//!   a HubSpot webhook batch, or allot's native envelope), with [`Format::Auto`]
//!   detection.
//! * [`decode_file`] / [`decode_lines`]: a replay file (JSON lines, one JSON
//!   array, or one pretty-printed object), by line, column and element.
//! * [`FieldMap`]: CRM field names → allot canonical names, [`domain_of`].
//! * [`merge`]: applies an event to the last known record; [`EchoFilter`]: tells
//!   allot's own writes coming back.
//! * [`hubspot_signature`]: HubSpot webhook signatures (v3), signing and
//!   checking, with the current time as an argument.

#![warn(missing_docs)]

mod domain;
mod echo;
mod error;
mod fieldmap;
mod hubspot;
pub mod hubspot_signature;
mod json;
mod lines;
mod merge;
mod native;
mod salesforce;

use std::fmt;
use std::str::FromStr;

use allot_core::ChangeEvent;
use serde_json::Value as J;

pub use domain::domain_of;
pub use echo::EchoFilter;
pub use error::{DecodeError, EventRef, FieldMapError, ParseFormatError};
pub use fieldmap::{FieldMap, CANONICAL, DOMAIN, OWNER};
pub use hubspot_signature::{hubspot_signature_v3, verify_hubspot_signature_v3, SignatureError};
pub use lines::{
    decode_file, decode_lines, layout, Broken, DecodedFile, Entry, Layout, LineResult, Piece, Shape,
};
pub use merge::{merge, MergeOutcome};

/// Which wire format a payload is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Format {
    /// Detect per payload (see [`decode_value`]).
    #[default]
    Auto,
    /// Salesforce Change Data Capture, CometD or flattened Kafka Connect shape.
    SalesforceCdc,
    /// A HubSpot webhook batch (array) or a single webhook event.
    Hubspot,
    /// allot's own [`ChangeEvent`] JSON.
    Native,
}

impl Format {
    /// The name `FromStr` accepts.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Auto => "auto",
            Format::SalesforceCdc => "salesforce",
            Format::Hubspot => "hubspot",
            Format::Native => "native",
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Format {
    type Err = ParseFormatError;

    /// `auto`, `salesforce` (or `salesforce-cdc`), `hubspot`, `native`; any case.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(Format::Auto),
            "salesforce" | "salesforce-cdc" | "salesforce_cdc" => Ok(Format::SalesforceCdc),
            "hubspot" => Ok(Format::Hubspot),
            "native" => Ok(Format::Native),
            _ => Err(ParseFormatError(s.to_string())),
        }
    }
}

/// What one payload decoded to: the events, in input order (a Salesforce event
/// fanned out to several records gives several), and one error per bad event.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Decoded {
    /// The decoded events, in input order.
    pub events: Vec<ChangeEvent>,
    /// One error per event (or payload) that could not be decoded.
    pub errors: Vec<DecodeError>,
}

impl Decoded {
    fn failed(error: DecodeError) -> Self {
        Decoded {
            events: Vec::new(),
            errors: vec![error],
        }
    }
}

/// Decodes one payload. See [`decode_value`]; this first parses the bytes as JSON.
pub fn decode(bytes: &[u8], format: Format) -> Decoded {
    match json::parse(bytes) {
        Ok(value) => decode_value(&value, format),
        Err(e) => Decoded::failed(e),
    }
}

/// Decodes one parsed payload.
///
/// An object is one event; an array is a batch whose elements are decoded
/// independently (a bad element gives an error naming its index; the others still
/// decode). An empty array gives nothing. With [`Format::Auto`], an object is
/// detected by its keys: `ChangeEventHeader` (at top level or under `payload`) →
/// Salesforce; `subscriptionType`, or `eventType` with one of `objectId`, `eventId`,
/// `portalId`, `subscriptionId` → HubSpot;
/// `v` and `event_id` → native. An array takes the format of its first element
/// that is detectable, and every element is decoded as that format.
pub fn decode_value(value: &J, format: Format) -> Decoded {
    let concrete = match format {
        Format::Auto => match detect(value) {
            Ok(Some(f)) => f,
            Ok(None) => return Decoded::default(),
            Err(e) => return Decoded::failed(e),
        },
        Format::SalesforceCdc => Concrete::Salesforce,
        Format::Hubspot => Concrete::Hubspot,
        Format::Native => Concrete::Native,
    };
    let mut out = Decoded::default();
    let mut push = |result: Result<Vec<ChangeEvent>, DecodeError>| match result {
        Ok(events) => out.events.extend(events),
        Err(e) => out.errors.push(e),
    };
    match value {
        J::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                push(concrete.decode(item, Some(i)));
            }
        }
        single => push(concrete.decode(single, None)),
    }
    out
}

/// A format that is not `Auto`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Concrete {
    Salesforce,
    Hubspot,
    Native,
}

impl Concrete {
    fn decode(self, v: &J, index: Option<usize>) -> Result<Vec<ChangeEvent>, DecodeError> {
        match self {
            Concrete::Salesforce => salesforce::decode(v, index),
            Concrete::Hubspot => hubspot::decode(v, index).map(|e| vec![e]),
            Concrete::Native => native::decode(v, index).map(|e| vec![e]),
        }
    }

    fn of_object(o: &json::Obj) -> Option<Concrete> {
        if salesforce::looks_like(o) {
            Some(Concrete::Salesforce)
        } else if hubspot::looks_like(o) {
            Some(Concrete::Hubspot)
        } else if native::looks_like(o) {
            Some(Concrete::Native)
        } else {
            None
        }
    }
}

/// `Ok(None)` for an empty array (nothing to decode).
fn detect(value: &J) -> Result<Option<Concrete>, DecodeError> {
    const KNOWN: &str = "expected ChangeEventHeader (salesforce), subscriptionType or \
                         eventType (hubspot), or v and event_id (native)";
    match value {
        J::Object(o) => Concrete::of_object(o)
            .map(Some)
            .ok_or_else(|| DecodeError::Detect {
                reason: format!("object with keys [{}]; {KNOWN}", key_list(o)),
            }),
        J::Array(items) if items.is_empty() => Ok(None),
        J::Array(items) => items
            .iter()
            .find_map(|item| item.as_object().and_then(Concrete::of_object))
            .map(Some)
            .ok_or_else(|| DecodeError::Detect {
                reason: format!(
                    "no element of the array of {} is a known event; {KNOWN}",
                    items.len()
                ),
            }),
        other => Err(DecodeError::Detect {
            reason: format!(
                "expected a JSON object or array, found {}",
                json::describe(other)
            ),
        }),
    }
}

/// The first few keys of an object, for error messages.
fn key_list(o: &json::Obj) -> String {
    let mut keys: Vec<&str> = o.keys().take(6).map(String::as_str).collect();
    if o.len() > keys.len() {
        keys.push("...");
    }
    keys.join(", ")
}
