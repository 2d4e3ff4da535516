//! HubSpot webhook events (one object of a webhook batch).
//!
//! The event type is in `subscriptionType` (real deliveries) or `eventType` (some
//! docs): `<object>.<action>` with object `contact`, `company`, or the generic
//! `object` plus `objectTypeId` (`0-1` contacts, `0-2` companies).

use std::collections::BTreeMap;

use allot_core::{ChangeEvent, ChangeKind, Crm, ObjectKind, Value, EVENT_VERSION};
use serde_json::Value as J;

use crate::error::{DecodeError, EventRef};
use crate::json::{id_text, Obj, Reader};

/// True when `o` looks like a HubSpot webhook event (for format detection).
pub(crate) fn looks_like(o: &Obj) -> bool {
    o.contains_key("subscriptionType")
        || (o.contains_key("eventType")
            && ["objectId", "eventId", "portalId", "subscriptionId"]
                .iter()
                .any(|k| o.contains_key(*k)))
}

/// Decodes one webhook event.
///
/// * `creation` → Create (no fields), `propertyChange` → Update with the one property,
///   `deletion` and `privacyDeletion` → Delete, `restore` → Undelete, `merge` → Gap
///   (the surviving record must be re-read).
/// * An empty `propertyValue` (or a null / absent one) is how HubSpot clears a
///   property: it decodes as [`Value::Null`]. Other values stay strings, as sent.
/// * `origin` is `changeSource`, plus `:` and `sourceId` when present.
pub(crate) fn decode(v: &J, index: Option<usize>) -> Result<ChangeEvent, DecodeError> {
    let mut r = Reader {
        at: EventRef::new(Crm::Hubspot, index),
    };
    let o = r.object(v)?;
    if let Some(id) = o.get("eventId").and_then(id_text) {
        r.at.id = Some(format!("eventId {id}"));
    }
    let event_id = r.req_id(o, "eventId", "eventId")?;
    let (type_key, type_name) = match r.opt_str(o, "subscriptionType", "subscriptionType")? {
        Some(t) => ("subscriptionType", t),
        None => match r.opt_str(o, "eventType", "eventType")? {
            Some(t) => ("eventType", t),
            None => return Err(r.missing("subscriptionType")),
        },
    };
    let unknown = || DecodeError::UnknownChange {
        at: r.at.clone(),
        field: type_key,
        value: type_name.to_string(),
    };
    let (object_name, action) = type_name.split_once('.').ok_or_else(unknown)?;
    let change = change_kind(action).ok_or_else(unknown)?;
    let object = match object_name.to_ascii_lowercase().as_str() {
        "contact" => ObjectKind::Contact,
        "company" => ObjectKind::Account,
        "object" => {
            let type_id = r.req_id(o, "objectTypeId", "objectTypeId")?;
            match type_id.as_str() {
                "0-1" => ObjectKind::Contact,
                "0-2" => ObjectKind::Account,
                _ => {
                    return Err(DecodeError::UnsupportedObject {
                        at: r.at.clone(),
                        name: format!("objectTypeId {type_id}"),
                    })
                }
            }
        }
        other => {
            return Err(DecodeError::UnsupportedObject {
                at: r.at.clone(),
                name: other.to_string(),
            })
        }
    };
    let record_id = r.req_id(o, "objectId", "objectId")?;

    let mut fields = BTreeMap::new();
    let mut changed_fields = Vec::new();
    if change == ChangeKind::Update {
        let name = r.req_str(o, "propertyName", "propertyName")?;
        if name.trim().is_empty() {
            return Err(r.invalid("propertyName", "is empty"));
        }
        fields.insert(name.to_string(), property_value(o.get("propertyValue")));
        changed_fields.push(name.to_string());
    }

    let source = r.opt_str(o, "changeSource", "changeSource")?;
    let source_id = r.opt_id(o, "sourceId", "sourceId")?;
    let origin = match (source, source_id) {
        (Some(s), Some(id)) => Some(format!("{s}:{id}")),
        (Some(s), None) => Some(s.to_string()),
        (None, id) => id,
    };
    Ok(ChangeEvent {
        v: EVENT_VERSION,
        source: Crm::Hubspot,
        event_id,
        object,
        record_id: Some(record_id),
        change,
        changed_fields,
        fields,
        commit_time: r.opt_int(o, "occurredAt", "occurredAt")?,
        sequence: None,
        commit_user: None,
        origin,
        transaction: r.opt_id(o, "subscriptionId", "subscriptionId")?,
        scope: match (
            r.opt_id(o, "portalId", "portalId")?,
            r.opt_id(o, "appId", "appId")?,
        ) {
            (None, None) => None,
            (portal, app) => Some(format!(
                "{}/{}",
                portal.unwrap_or_default(),
                app.unwrap_or_default()
            )),
        },
    })
}

fn change_kind(action: &str) -> Option<ChangeKind> {
    match action {
        "creation" => Some(ChangeKind::Create),
        "propertyChange" => Some(ChangeKind::Update),
        "deletion" | "privacyDeletion" => Some(ChangeKind::Delete),
        "restore" => Some(ChangeKind::Undelete),
        "merge" => Some(ChangeKind::Gap),
        _ => None,
    }
}

/// HubSpot property values are strings; "" means cleared.
fn property_value(v: Option<&J>) -> Value {
    match v {
        None | Some(J::Null) => Value::Null,
        Some(J::String(s)) if s.is_empty() => Value::Null,
        Some(J::String(s)) => Value::Str(s.clone()),
        Some(other) => Value::Str(other.to_string()),
    }
}
