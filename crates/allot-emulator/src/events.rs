//! Change events in the vendors' wire shapes (pure builders), plus the small
//! formatting helpers they need: ISO date-times and Salesforce 18-char ids.

use allot_core::ObjectKind;
use serde_json::{json, Map, Value};

/// The CDC channel and event name of a Salesforce object.
pub fn cdc_entity(object: ObjectKind) -> &'static str {
    match object {
        ObjectKind::Lead => "Lead",
        ObjectKind::Account => "Account",
        ObjectKind::Contact => "Contact",
    }
}

/// The header of one Salesforce change event.
#[derive(Debug, Clone, PartialEq)]
pub struct CdcHeader {
    pub object: ObjectKind,
    pub record_ids: Vec<String>,
    /// `CREATE`, `UPDATE`, ...
    pub change_type: &'static str,
    pub change_origin: String,
    pub transaction_key: String,
    pub sequence_number: u64,
    pub commit_timestamp: i64,
    pub commit_number: u64,
    pub commit_user: String,
}

/// A change event in the Streaming/CometD shape. `fields` are the REST (flat)
/// names and values the event carries; compound fields are nested as CDC does,
/// and `changedFields` (UPDATE only) names compound components
/// (`BillingAddress.State`).
pub fn sf_cdc_event(header: &CdcHeader, fields: &Map<String, Value>, replay_id: u64) -> Value {
    let mut payload = nest_compound(header.object, fields);
    let changed: Vec<String> = if header.change_type == "UPDATE" {
        let mut names: Vec<String> = fields
            .keys()
            .map(|k| cdc_field_name(header.object, k))
            .collect();
        if !names.iter().any(|n| n == "LastModifiedDate") {
            names.push("LastModifiedDate".into());
        }
        names.sort();
        names
    } else {
        Vec::new()
    };
    let nulled: Vec<String> = if header.change_type == "UPDATE" {
        fields
            .iter()
            .filter(|(_, v)| v.is_null())
            .map(|(k, _)| cdc_field_name(header.object, k))
            .collect()
    } else {
        Vec::new()
    };
    payload.insert(
        "ChangeEventHeader".into(),
        json!({
            "entityName": cdc_entity(header.object),
            "recordIds": header.record_ids,
            "changeType": header.change_type,
            "changeOrigin": header.change_origin,
            "transactionKey": header.transaction_key,
            "sequenceNumber": header.sequence_number,
            "commitTimestamp": header.commit_timestamp,
            "commitNumber": header.commit_number,
            "commitUser": header.commit_user,
            "changedFields": changed,
            "nulledFields": nulled,
            "diffFields": [],
        }),
    );
    json!({
        "schema": format!("emu-{}-schema", cdc_entity(header.object)),
        "payload": Value::Object(payload),
        "event": {"replayId": replay_id},
        "channel": format!("/data/{}ChangeEvent", cdc_entity(header.object)),
    })
}

/// Compound fields of an object: (compound name, flat-name prefix, components).
fn compounds(
    object: ObjectKind,
) -> &'static [(&'static str, &'static str, &'static [&'static str])] {
    const NAME: &[&str] = &[
        "Salutation",
        "FirstName",
        "LastName",
        "MiddleName",
        "Suffix",
    ];
    const ADDRESS: &[&str] = &[
        "Street",
        "City",
        "State",
        "PostalCode",
        "Country",
        "StateCode",
        "CountryCode",
        "Latitude",
        "Longitude",
        "GeocodeAccuracy",
    ];
    match object {
        ObjectKind::Lead => &[("Name", "", NAME), ("Address", "", ADDRESS)],
        ObjectKind::Account => &[
            ("BillingAddress", "Billing", ADDRESS),
            ("ShippingAddress", "Shipping", ADDRESS),
        ],
        ObjectKind::Contact => &[
            ("Name", "", NAME),
            ("MailingAddress", "Mailing", ADDRESS),
            ("OtherAddress", "Other", ADDRESS),
        ],
    }
}

/// The compound a flat field belongs to: `BillingState` → (`BillingAddress`, `State`).
fn compound_of(object: ObjectKind, flat: &str) -> Option<(&'static str, &'static str)> {
    compounds(object)
        .iter()
        .find_map(|(compound, prefix, parts)| {
            let component = flat.strip_prefix(prefix)?;
            parts
                .iter()
                .find(|p| **p == component)
                .map(|p| (*compound, *p))
        })
}

/// The `changedFields` name of a flat field.
fn cdc_field_name(object: ObjectKind, flat: &str) -> String {
    match compound_of(object, flat) {
        Some((compound, component)) => format!("{compound}.{component}"),
        None => flat.to_string(),
    }
}

/// Flat REST fields → CDC body: compound components nested under their
/// compound (the other components present as null), other fields as they are.
fn nest_compound(object: ObjectKind, fields: &Map<String, Value>) -> Map<String, Value> {
    let mut out = Map::new();
    for (name, value) in fields {
        if name == "attributes" {
            continue;
        }
        match compound_of(object, name) {
            Some((compound, component)) => {
                let entry = out.entry(compound.to_string()).or_insert_with(|| {
                    let parts = compounds(object)
                        .iter()
                        .find(|(c, _, _)| *c == compound)
                        .map_or(&[][..], |(_, _, parts)| *parts);
                    Value::Object(parts.iter().map(|p| (p.to_string(), Value::Null)).collect())
                });
                if let Value::Object(m) = entry {
                    m.insert(component.to_string(), value.clone());
                }
            }
            None => {
                out.insert(name.clone(), value.clone());
            }
        }
    }
    out
}

/// Who made a HubSpot change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HsSource {
    /// An API call of the app with this id.
    Integration { app_id: u64 },
    /// A person in the HubSpot UI.
    CrmUi { user_id: u64 },
}

/// Fields common to every event of one HubSpot delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HsEventBase {
    pub portal_id: u64,
    pub app_id: u64,
    pub occurred_at: i64,
    pub source: HsSource,
}

/// The singular subscription prefix of an object kind (`contact`, `company`).
pub fn hs_subscription_object(object: ObjectKind) -> &'static str {
    match object {
        ObjectKind::Account => "company",
        _ => "contact",
    }
}

/// One webhook event. `property` is `Some((name, value))` for a property
/// change, `None` for a creation.
pub fn hs_webhook_event(
    base: &HsEventBase,
    event_id: u64,
    object: ObjectKind,
    object_id: &str,
    property: Option<(&str, &Value)>,
) -> Value {
    let kind = hs_subscription_object(object);
    let object_id_json = object_id
        .parse::<u64>()
        .map_or_else(|_| json!(object_id), |n| json!(n));
    let (change_source, source_id) = match &base.source {
        HsSource::Integration { app_id } => ("INTEGRATION", app_id.to_string()),
        HsSource::CrmUi { user_id } => ("CRM_UI", format!("userId:{user_id}")),
    };
    // Subscription ids are fixed per subscription type, as a real app's are.
    let (subscription_type, subscription_offset) = match property {
        Some(_) => (format!("{kind}.propertyChange"), 1),
        None => (format!("{kind}.creation"), 0),
    };
    let subscription_id = 2_451_977 + subscription_offset + if kind == "company" { 10 } else { 0 };
    let mut event = json!({
        "eventId": event_id,
        "subscriptionId": subscription_id,
        "portalId": base.portal_id,
        "appId": base.app_id,
        "occurredAt": base.occurred_at,
        "subscriptionType": subscription_type,
        "attemptNumber": 0,
        "objectId": object_id_json,
        "changeSource": change_source,
        "sourceId": source_id,
    });
    if let Value::Object(m) = &mut event {
        match property {
            Some((name, value)) => {
                m.insert("propertyName".into(), json!(name));
                let text = match value {
                    Value::String(s) => s.clone(),
                    Value::Null => String::new(),
                    other => other.to_string(),
                };
                m.insert("propertyValue".into(), json!(text));
            }
            None => {
                m.insert("changeFlag".into(), json!("CREATED"));
            }
        }
    }
    event
}

/// Epoch milliseconds as `2024-04-26T17:49:39.000Z`.
pub fn iso_millis(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let millis = ms.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 → (year, month, day), proleptic Gregorian (H. Hinnant).
/// Days since 1970-01-01 of a proleptic Gregorian date.
pub(crate) fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// Completes a 15-character Salesforce id with its 3-character case checksum.
pub fn sf_id18(id15: &str) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ012345";
    let bytes = id15.as_bytes();
    let mut out = id15.to_string();
    for chunk in bytes.chunks(5).take(3) {
        let mut bits = 0usize;
        for (i, c) in chunk.iter().enumerate() {
            if c.is_ascii_uppercase() {
                bits |= 1 << i;
            }
        }
        out.push(char::from(ALPHABET[bits]));
    }
    out
}

/// A new Salesforce id: key prefix of the object, pod `5f`, a counter.
pub fn sf_new_id(prefix: &str, n: u64) -> String {
    sf_id18(&format!("{prefix}5f{:010}", n % 10_000_000_000))
}

#[cfg(test)]
#[path = "events_tests.rs"]
mod tests;
