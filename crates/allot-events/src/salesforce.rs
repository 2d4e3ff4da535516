//! Salesforce Change Data Capture events, in the two shapes that reach Kafka.
//!
//! * Streaming/CometD: `{"schema":"..","payload":{"ChangeEventHeader":{..},<fields>},
//!   "event":{"replayId":N},"channel":"/data/LeadChangeEvent"}`, also inside a Bayeux
//!   `{"data":{..}}` message.
//! * Flattened (Kafka Connect): header and fields at top level with `Id`, `ReplayId`,
//!   `_ObjectType`, `_EventType`, every field the event did not carry present as
//!   null; optionally wrapped in `{"schema":{..},"payload":{..}}`.
//!
//! Both mean the same thing field by field, so one path decodes them: a CREATE or
//! UNDELETE carries its non-null fields, an UPDATE carries exactly the fields named in
//! `changedFields` (null there means cleared) plus `nulledFields`, everything else
//! carries none. The shape only matters for an UPDATE without `changedFields`.

use std::collections::BTreeMap;

use allot_core::{ChangeEvent, ChangeKind, Crm, ObjectKind, Value, EVENT_VERSION};
use serde_json::Value as J;

use crate::error::{DecodeError, EventRef};
use crate::json::{describe, scalar, Obj, Reader};

const HEADER: &str = "ChangeEventHeader";

/// Keys of the flattened shape that are envelope, not record fields.
const META: [&str; 5] = [HEADER, "Id", "ReplayId", "_ObjectType", "_EventType"];

/// Which of the two wire shapes an event came in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    /// CometD: absent fields were not sent, present nulls were sent.
    Streaming,
    /// Kafka Connect: absent fields are sent as null too.
    Flat,
}

/// True when `o` looks like a Salesforce change event (for format detection).
pub(crate) fn looks_like(o: &Obj) -> bool {
    let o = unwrap_data(o);
    o.contains_key(HEADER)
        || matches!(o.get("payload"), Some(J::Object(p)) if p.contains_key(HEADER))
}

/// A Bayeux message puts the event under `data`.
fn unwrap_data(o: &Obj) -> &Obj {
    match o.get("data") {
        Some(J::Object(d)) if !o.contains_key(HEADER) && d.contains_key("payload") => d,
        _ => o,
    }
}

/// Decodes one Salesforce change event; fans out to one event per record id.
pub(crate) fn decode(v: &J, index: Option<usize>) -> Result<Vec<ChangeEvent>, DecodeError> {
    let mut r = Reader {
        at: EventRef::new(Crm::Salesforce, index),
    };
    let outer = unwrap_data(r.object(v)?);
    let (body, shape) = locate(outer, &r)?;
    let replay = replay_id(outer, body, &r)?;
    if let Some(id) = &replay {
        r.at.id = Some(format!("replayId {id}"));
    }
    let header = match body.get(HEADER) {
        Some(J::Object(h)) => h,
        Some(other) => {
            return Err(r.invalid(
                HEADER,
                format!("expected an object, found {}", describe(other)),
            ))
        }
        None => return Err(r.missing(HEADER)),
    };
    let h = Header::read(header, &r)?;
    let base_id = match (&replay, h.transaction, h.sequence) {
        (Some(id), _, _) => id.clone(),
        (None, Some(tx), Some(seq)) => format!("{tx}:{seq}"),
        _ => {
            return Err(
                r.missing("replayId (or ChangeEventHeader.transactionKey and sequenceNumber)")
            )
        }
    };
    let (changed_fields, fields) = carried_fields(body, &h, shape);
    let event = |record_id: Option<String>, event_id: String| ChangeEvent {
        v: EVENT_VERSION,
        source: Crm::Salesforce,
        event_id,
        object: h.object,
        record_id,
        change: h.change,
        changed_fields: changed_fields.clone(),
        fields: fields.clone(),
        commit_time: h.commit_time,
        sequence: h.sequence,
        commit_user: h.commit_user.map(str::to_string),
        origin: h.origin.map(str::to_string),
        transaction: h.transaction.map(str::to_string),
        scope: Some(h.object.to_string()),
    };
    // A wildcard (`001*`: every record of the type changed, after a field
    // type conversion) is about the whole entity, like an overflow: resync
    // it; it is never a record.
    if h.change == ChangeKind::Overflow || h.record_ids.iter().any(|id| id.ends_with('*')) {
        return Ok(vec![ChangeEvent {
            change: ChangeKind::Overflow,
            ..event(None, base_id)
        }]);
    }
    let fan_out = h.record_ids.len() > 1;
    Ok(h.record_ids
        .iter()
        .map(|id| {
            let event_id = if fan_out {
                format!("{base_id}:{id}")
            } else {
                base_id.clone()
            };
            event(Some((*id).to_string()), event_id)
        })
        .collect())
}

/// Finds the object that holds `ChangeEventHeader` and tells the shape.
fn locate<'a>(outer: &'a Obj, r: &Reader) -> Result<(&'a Obj, Shape), DecodeError> {
    if outer.contains_key(HEADER) {
        return Ok((outer, Shape::Flat));
    }
    match outer.get("payload") {
        Some(J::Object(p)) if p.contains_key(HEADER) => {
            let shape = if p.contains_key("_ObjectType") || p.contains_key("ReplayId") {
                Shape::Flat
            } else if outer.contains_key("event") || outer.contains_key("channel") {
                Shape::Streaming
            } else if matches!(outer.get("schema"), Some(J::Object(_))) {
                Shape::Flat
            } else {
                Shape::Streaming
            };
            Ok((p, shape))
        }
        Some(J::Object(_)) => Err(r.missing("payload.ChangeEventHeader")),
        Some(other) => Err(r.invalid(
            "payload",
            format!("expected an object, found {}", describe(other)),
        )),
        None => Err(r.missing(HEADER)),
    }
}

/// `event.replayId` (CometD) or `ReplayId` (flattened), as text.
fn replay_id(outer: &Obj, body: &Obj, r: &Reader) -> Result<Option<String>, DecodeError> {
    if let Some(event) = r.opt_object(outer, "event", "event")? {
        if let Some(id) = r.opt_id(event, "replayId", "event.replayId")? {
            return Ok(Some(id));
        }
    }
    match r.opt_id(body, "ReplayId", "ReplayId")? {
        Some(id) => Ok(Some(id)),
        None => r.opt_id(outer, "ReplayId", "ReplayId"),
    }
}

/// The parts of `ChangeEventHeader` allot uses.
struct Header<'a> {
    object: ObjectKind,
    change: ChangeKind,
    record_ids: Vec<&'a str>,
    origin: Option<&'a str>,
    transaction: Option<&'a str>,
    sequence: Option<i64>,
    commit_time: Option<i64>,
    commit_user: Option<&'a str>,
    changed: Vec<&'a str>,
    nulled: Vec<&'a str>,
}

impl<'a> Header<'a> {
    fn read(h: &'a Obj, r: &Reader) -> Result<Self, DecodeError> {
        let p = |k: &str| format!("{HEADER}.{k}");
        let entity = r.req_str(h, "entityName", &p("entityName"))?;
        let object = object_kind(entity).ok_or_else(|| DecodeError::UnsupportedObject {
            at: r.at.clone(),
            name: entity.to_string(),
        })?;
        let change_type = r.req_str(h, "changeType", &p("changeType"))?;
        let change = change_kind(change_type).ok_or_else(|| DecodeError::UnknownChange {
            at: r.at.clone(),
            field: "changeType",
            value: change_type.to_string(),
        })?;
        let record_ids = r.opt_strings(h, "recordIds", &p("recordIds"))?;
        let record_ids = match (change, record_ids) {
            (ChangeKind::Overflow, ids) => ids.unwrap_or_default(),
            (_, None) => return Err(r.missing(&p("recordIds"))),
            (_, Some(ids)) if ids.is_empty() => {
                return Err(r.invalid(
                    &p("recordIds"),
                    "is empty (expected at least one record id)",
                ))
            }
            (_, Some(ids)) => {
                if let Some(i) = ids.iter().position(|id| id.trim().is_empty()) {
                    return Err(r.invalid(&format!("{}[{i}]", p("recordIds")), "is an empty id"));
                }
                ids
            }
        };
        Ok(Header {
            object,
            change,
            record_ids,
            origin: r.opt_str(h, "changeOrigin", &p("changeOrigin"))?,
            transaction: r.opt_str(h, "transactionKey", &p("transactionKey"))?,
            sequence: r.opt_int(h, "sequenceNumber", &p("sequenceNumber"))?,
            commit_time: r.opt_int(h, "commitTimestamp", &p("commitTimestamp"))?,
            commit_user: r.opt_str(h, "commitUser", &p("commitUser"))?,
            changed: r
                .opt_strings(h, "changedFields", &p("changedFields"))?
                .unwrap_or_default(),
            nulled: r
                .opt_strings(h, "nulledFields", &p("nulledFields"))?
                .unwrap_or_default(),
        })
    }
}

fn object_kind(entity: &str) -> Option<ObjectKind> {
    match entity.trim().to_ascii_lowercase().as_str() {
        "lead" => Some(ObjectKind::Lead),
        "account" => Some(ObjectKind::Account),
        "contact" => Some(ObjectKind::Contact),
        _ => None,
    }
}

fn change_kind(change_type: &str) -> Option<ChangeKind> {
    match change_type.trim().to_ascii_uppercase().as_str() {
        "CREATE" => Some(ChangeKind::Create),
        "UPDATE" => Some(ChangeKind::Update),
        "DELETE" => Some(ChangeKind::Delete),
        "UNDELETE" => Some(ChangeKind::Undelete),
        "GAP_CREATE" | "GAP_UPDATE" | "GAP_UNDELETE" => Some(ChangeKind::Gap),
        "GAP_DELETE" => Some(ChangeKind::GapDelete),
        "GAP_OVERFLOW" => Some(ChangeKind::Overflow),
        _ => None,
    }
}

/// `changed_fields` (flat names, header order, no duplicates) and the carried `fields`.
fn carried_fields(
    body: &Obj,
    h: &Header<'_>,
    shape: Shape,
) -> (Vec<String>, BTreeMap<String, Value>) {
    let all = flatten_body(body);
    let mut changed: Vec<String> = Vec::new();
    for name in h.changed.iter().flat_map(|e| flat_names(e, body)) {
        if !changed.contains(&name) {
            changed.push(name);
        }
    }
    let nulled: Vec<String> = h.nulled.iter().flat_map(|e| flat_names(e, body)).collect();
    let mut fields = BTreeMap::new();
    match h.change {
        ChangeKind::Create | ChangeKind::Undelete => {
            fields.extend(all.into_iter().filter(|(_, v)| !v.is_null()));
        }
        ChangeKind::Update => {
            if changed.is_empty() {
                // No changedFields (old API versions): trust what the shape can tell.
                let keep_nulls = shape == Shape::Streaming;
                fields.extend(all.into_iter().filter(|(_, v)| keep_nulls || !v.is_null()));
            } else {
                for name in &changed {
                    if let Some(v) = all.get(name) {
                        fields.insert(name.clone(), v.clone());
                    }
                }
            }
            for name in &nulled {
                fields.insert(name.clone(), Value::Null);
            }
        }
        ChangeKind::Delete
        | ChangeKind::Gap
        | ChangeKind::GapDelete
        | ChangeKind::Overflow
        | ChangeKind::OwnerRefused => {}
    }
    for name in nulled {
        if !changed.contains(&name) {
            changed.push(name);
        }
    }
    (changed, fields)
}

/// Every record field of the body under its REST flat name, nulls included.
/// Nested values that have no flat name are left out.
fn flatten_body(body: &Obj) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    for (key, value) in body {
        if META.contains(&key.as_str()) {
            continue;
        }
        match value {
            J::Object(inner) => {
                for (component, v) in inner {
                    if let (Some(name), Some(v)) = (flat_name(key, component), scalar(v)) {
                        out.insert(name, v);
                    }
                }
            }
            other => {
                if let Some(v) = scalar(other) {
                    out.insert(key.clone(), v);
                }
            }
        }
    }
    out
}

/// The REST flat name of a compound field's component: `Name.FirstName` → `FirstName`,
/// Lead `Address.City` → `City`, `BillingAddress.State` → `BillingState`, a geolocation
/// `Loc__c.Latitude` → `Loc__Latitude__s`.
fn flat_name(compound: &str, component: &str) -> Option<String> {
    if component.is_empty() {
        return None;
    }
    if compound == "Name" || compound == "Address" {
        return Some(component.to_string());
    }
    if let Some(prefix) = compound.strip_suffix("Address") {
        return Some(format!("{prefix}{component}"));
    }
    if let Some(base) = compound.strip_suffix("__c") {
        return Some(format!("{base}__{component}__s"));
    }
    None
}

/// Flat names of one `changedFields` entry: `BillingAddress.State` → `BillingState`;
/// a whole compound (`BillingAddress`) → each component the body carries; an entry
/// with no flat name is kept as it is.
fn flat_names(entry: &str, body: &Obj) -> Vec<String> {
    if let Some((compound, component)) = entry.split_once('.') {
        return vec![flat_name(compound, component).unwrap_or_else(|| entry.to_string())];
    }
    match body.get(entry) {
        Some(J::Object(inner)) => {
            let names: Vec<String> = inner.keys().filter_map(|c| flat_name(entry, c)).collect();
            if names.is_empty() {
                vec![entry.to_string()]
            } else {
                names
            }
        }
        _ => vec![entry.to_string()],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compound_components_get_rest_names() {
        let cases = [
            ("Name", "FirstName", Some("FirstName")),
            ("Address", "PostalCode", Some("PostalCode")),
            ("BillingAddress", "State", Some("BillingState")),
            (
                "ShippingAddress",
                "CountryCode",
                Some("ShippingCountryCode"),
            ),
            ("MailingAddress", "City", Some("MailingCity")),
            ("Loc__c", "Latitude", Some("Loc__Latitude__s")),
            ("Attributes", "type", None),
            ("Name", "", None),
        ];
        for (compound, component, want) in cases {
            assert_eq!(
                flat_name(compound, component).as_deref(),
                want,
                "{compound}.{component}"
            );
        }
    }

    #[test]
    fn change_types_map() {
        let cases = [
            ("CREATE", Some(ChangeKind::Create)),
            ("UPDATE", Some(ChangeKind::Update)),
            ("DELETE", Some(ChangeKind::Delete)),
            ("UNDELETE", Some(ChangeKind::Undelete)),
            ("GAP_CREATE", Some(ChangeKind::Gap)),
            ("GAP_UPDATE", Some(ChangeKind::Gap)),
            ("GAP_DELETE", Some(ChangeKind::GapDelete)),
            ("GAP_UNDELETE", Some(ChangeKind::Gap)),
            ("GAP_OVERFLOW", Some(ChangeKind::Overflow)),
            ("FOO", None),
        ];
        for (s, want) in cases {
            assert_eq!(change_kind(s), want, "{s}");
        }
    }
}
