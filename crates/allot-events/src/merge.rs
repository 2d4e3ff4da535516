//! Applying a decoded event to the last known state of its record.

use allot_core::{ChangeEvent, ChangeKind, Crm, Millis, Record, Value};

use crate::fieldmap::{derive_domain, FieldMap, DOMAIN, OWNER};

/// What [`merge`] did, as data for the caller to act on.
#[derive(Debug, Clone, PartialEq)]
pub struct MergeOutcome {
    /// The record after the event; the record passed in when nothing was applied.
    /// `None` only when no record was known and the event did not make one
    /// (a stale event, a resync request).
    pub record: Option<Record>,
    /// The event changed the record's state (fields, owner, deleted flag or time).
    pub applied: bool,
    /// The event is older than the last one applied to the record and was skipped.
    pub stale: bool,
    /// Canonical fields whose value changed (added, replaced or removed), sorted.
    /// `owner` is reported by `owner_changed` instead.
    pub changed_canonical: Vec<String>,
    /// `record.owner` changed.
    pub owner_changed: bool,
    /// The record must be re-read from the CRM before it is trusted: a gap, a
    /// partial event about a record not known yet, a create without fields, or a
    /// whole-object resync (GAP_OVERFLOW: re-read every record of `event.object`).
    pub needs_hydration: bool,
}

/// Applies `event` to `record`, the last known state of the event's record.
///
/// * Ordering: `last_applied` is the [`ChangeEvent::order_key`] of the last event
///   applied to this record (the caller stores it). An event whose key is strictly
///   smaller is stale and skipped. An equal key is applied again (HubSpot sends
///   several property changes with the same `occurredAt`; re-applying a duplicate
///   changes nothing). An event without `commit_time` cannot be ordered and is applied.
/// * Fields are mapped to canonical names with `map`; a null removes the field;
///   `owner` sets `record.owner` (and `owner_since` = commit time when it changes).
///   A derived `domain` is recomputed when email or website change, unless the CRM
///   has its own domain field.
/// * Delete sets `deleted`, undelete (and create) clear it; `updated_at` becomes the
///   commit time when that is newer.
/// * Overflow is not about one record: nothing is applied, `needs_hydration` is set.
///   An event for another record than `record` is not applied either.
pub fn merge(
    record: Option<Record>,
    last_applied: Option<(Millis, i64)>,
    event: &ChangeEvent,
    map: &FieldMap,
) -> MergeOutcome {
    let unapplied = |record: Option<Record>, stale: bool, needs_hydration: bool| MergeOutcome {
        record,
        applied: false,
        stale,
        changed_canonical: Vec::new(),
        owner_changed: false,
        needs_hydration,
    };
    let Some(record_id) = event.record_id.as_deref() else {
        return unapplied(record, false, event.change == ChangeKind::Overflow);
    };
    if event.change == ChangeKind::Overflow {
        return unapplied(record, false, true);
    }
    if event.change == ChangeKind::OwnerRefused {
        // Not a change in the CRM: the record stays as it is.
        return unapplied(record, false, false);
    }
    if let Some(r) = &record {
        if r.id != record_id || r.object != event.object {
            return unapplied(record, false, false);
        }
    }
    if let (Some(last), Some(_)) = (last_applied, event.commit_time) {
        if event.order_key() < last {
            return unapplied(record, true, false);
        }
    }

    let known = record.is_some();
    let mut rec = record.unwrap_or_else(|| Record::new(event.object, record_id));
    let mut changed = Vec::new();
    let mut owner_changed = false;
    match event.change {
        ChangeKind::Create | ChangeKind::Update | ChangeKind::Undelete => {
            if event.change != ChangeKind::Update {
                rec.deleted = false;
            }
            let mut canon = map.apply_mapped(event.object, &event.fields);
            if let Some(owner) = canon.remove(OWNER) {
                let owner = owner.as_text().filter(|o| !o.trim().is_empty());
                if owner != rec.owner {
                    rec.owner = owner;
                    rec.owner_since = event.commit_time;
                    owner_changed = true;
                }
            }
            let contact_touched = canon.contains_key("email") || canon.contains_key("website");
            let domain_sent = canon.get(DOMAIN).is_some_and(|v| !v.is_null());
            for (name, value) in canon {
                if set_field(&mut rec, &name, value) {
                    changed.push(name);
                }
            }
            if contact_touched && !domain_sent {
                let crm_has_domain = !map.crm_fields_for(event.object, DOMAIN).is_empty();
                let derived = derive_domain(&rec.fields);
                let value = match derived {
                    Some(d) if !crm_has_domain || rec.field(DOMAIN).is_none() => {
                        Some(Value::Str(d))
                    }
                    None if !crm_has_domain => Some(Value::Null),
                    _ => None,
                };
                if let Some(value) = value {
                    if set_field(&mut rec, DOMAIN, value) && !changed.iter().any(|c| c == DOMAIN) {
                        changed.push(DOMAIN.to_string());
                    }
                }
            }
        }
        ChangeKind::Delete => rec.deleted = true,
        ChangeKind::Gap
        | ChangeKind::GapDelete
        | ChangeKind::Overflow
        | ChangeKind::OwnerRefused => {}
    }
    if let Some(t) = event.commit_time {
        if rec.updated_at.is_none_or(|u| u < t) {
            rec.updated_at = Some(t);
        }
    }
    changed.sort();

    let partial = matches!(event.change, ChangeKind::Update | ChangeKind::Undelete)
        || (event.change == ChangeKind::Create && event.source == Crm::Hubspot);
    let needs_hydration = matches!(event.change, ChangeKind::Gap | ChangeKind::GapDelete)
        || (event.change == ChangeKind::Create && event.fields.is_empty())
        || (!known && partial);
    MergeOutcome {
        record: Some(rec),
        applied: true,
        stale: false,
        changed_canonical: changed,
        owner_changed,
        needs_hydration,
    }
}

/// Sets (or, for null, removes) one field; true when the record changed.
fn set_field(rec: &mut Record, name: &str, value: Value) -> bool {
    if value.is_null() {
        rec.fields.remove(name).is_some_and(|old| !old.is_null())
    } else if rec.fields.get(name) == Some(&value) {
        false
    } else {
        rec.fields.insert(name.to_string(), value);
        true
    }
}
