//! allot's own envelope: a [`ChangeEvent`] serialised as JSON (`"v":1`).

use allot_core::{ChangeEvent, ChangeKind, Crm, EVENT_VERSION};
use serde::Deserialize;
use serde_json::Value as J;

use crate::error::{DecodeError, EventRef};
use crate::json::{Obj, Reader};

/// True when `o` looks like a native envelope (for format detection).
pub(crate) fn looks_like(o: &Obj) -> bool {
    o.contains_key("v") && o.contains_key("event_id")
}

/// Decodes one native envelope; checks the version before anything else.
pub(crate) fn decode(v: &J, index: Option<usize>) -> Result<ChangeEvent, DecodeError> {
    let mut r = Reader {
        at: EventRef::new(Crm::Native, index),
    };
    let o = r.object(v)?;
    if let Some(id) = o.get("event_id").and_then(J::as_str) {
        r.at.id = Some(format!("event_id {id}"));
    }
    let version = o
        .get("v")
        .filter(|v| !v.is_null())
        .ok_or_else(|| r.missing("v"))?;
    if version.as_u64() != Some(u64::from(EVENT_VERSION)) {
        return Err(DecodeError::Version {
            at: r.at.clone(),
            found: version.to_string(),
            supported: EVENT_VERSION,
        });
    }
    let event = ChangeEvent::deserialize(v).map_err(|e| DecodeError::Shape {
        at: r.at.clone(),
        message: format!("not a valid native event: {e}"),
    })?;
    if event.event_id.trim().is_empty() {
        return Err(r.invalid("event_id", "is empty"));
    }
    if event.record_id.is_none() && event.change != ChangeKind::Overflow {
        return Err(r.missing("record_id"));
    }
    Ok(event)
}
