//! Record changes shared by the API handlers and the admin endpoint: apply
//! the change, stamp the record, emit the vendor's change event.

use allot_core::{Crm, ObjectKind};
use serde_json::{Map, Value};

use crate::admin::{record_view, RecordView, UpsertRecord};
use crate::events::{hs_webhook_event, iso_millis, sf_cdc_event, CdcHeader, HsEventBase, HsSource};
use crate::state::{now_ms, State};
use crate::{EmulatorError, Shared};

/// Who makes a Salesforce change and within which transaction.
#[derive(Debug, Clone)]
pub(crate) struct SfMeta {
    /// `changeOrigin` of the events (`com/salesforce/api/rest/62.0;client=allot`).
    pub origin: String,
    pub commit_user: String,
    pub transaction_key: String,
}

/// `changeOrigin` of a REST call, with `;client=` when the caller sent
/// `Sforce-Call-Options: client=...`.
pub(crate) fn rest_origin(version: &str, client: Option<&str>) -> String {
    match client {
        Some(c) => format!("com/salesforce/api/rest/{version};client={c}"),
        None => format!("com/salesforce/api/rest/{version}"),
    }
}

/// The fields of `changes` whose value differs from the record's
/// (a missing field counts as null). `Id` and `attributes` are never changes.
fn diff(record: &Map<String, Value>, changes: &Map<String, Value>) -> Map<String, Value> {
    changes
        .iter()
        .filter(|(k, _)| k.as_str() != "Id" && k.as_str() != "attributes")
        .filter(|(k, v)| record.get(k.as_str()).unwrap_or(&Value::Null) != *v)
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// Updates a Salesforce record; emits an UPDATE event when some value
/// changed (a write that changes nothing emits nothing). `None` when the
/// record does not exist.
pub(crate) fn sf_update(
    st: &mut State,
    object: ObjectKind,
    id: &str,
    changes: &Map<String, Value>,
    meta: &SfMeta,
    sequence: u64,
) -> Option<()> {
    let now = now_ms();
    let record = st.sf_records.get_mut(&(object, id.to_string()))?;
    let mut changed = diff(record, changes);
    if changed.is_empty() {
        *st.rec.stats.records_unchanged.get_mut(Crm::Salesforce) += 1;
        return Some(());
    }
    changed.insert("LastModifiedDate".into(), Value::String(iso_millis(now)));
    changed.insert(
        "LastModifiedById".into(),
        Value::String(meta.commit_user.clone()),
    );
    for (k, v) in &changed {
        record.insert(k.clone(), v.clone());
    }
    emit_sf(
        st,
        meta.header(object, id, "UPDATE", sequence, now),
        &changed,
    );
    Some(())
}

/// Creates a Salesforce record and emits its CREATE event; returns the id.
pub(crate) fn sf_create(
    st: &mut State,
    object: ObjectKind,
    id: Option<String>,
    mut fields: Map<String, Value>,
    meta: &SfMeta,
) -> String {
    let now = now_ms();
    let id = id.unwrap_or_else(|| st.new_sf_id(object));
    let stamp = Value::String(iso_millis(now));
    fields.insert("Id".into(), Value::String(id.clone()));
    for k in ["CreatedDate", "LastModifiedDate"] {
        fields.insert(k.into(), stamp.clone());
    }
    for k in ["CreatedById", "LastModifiedById"] {
        fields.insert(k.into(), Value::String(meta.commit_user.clone()));
    }
    fields.remove("attributes");
    let carried: Map<String, Value> = fields
        .iter()
        .filter(|(_, v)| !v.is_null())
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    st.sf_records.insert((object, id.clone()), fields);
    emit_sf(st, meta.header(object, &id, "CREATE", 1, now), &carried);
    id
}

impl SfMeta {
    /// The CDC header of one record's change in this transaction (the commit
    /// number is filled in when the event is emitted).
    fn header(
        &self,
        object: ObjectKind,
        id: &str,
        change_type: &'static str,
        sequence: u64,
        now: i64,
    ) -> CdcHeader {
        CdcHeader {
            object,
            record_ids: vec![id.to_string()],
            change_type,
            change_origin: self.origin.clone(),
            transaction_key: self.transaction_key.clone(),
            sequence_number: sequence,
            commit_timestamp: now,
            commit_number: 0,
            commit_user: self.commit_user.clone(),
        }
    }
}

/// Emits one CDC event with the next replay id and commit number.
/// A gap fault sends it as `GAP_<type>` with no fields.
fn emit_sf(st: &mut State, mut header: CdcHeader, fields: &Map<String, Value>) {
    let (replay_id, commit_number) = st.next_commit();
    header.commit_number = commit_number;
    let overflow = st.faults.draw_overflow();
    let gap = overflow || st.faults.draw_gap();
    if overflow {
        header.change_type = "GAP_OVERFLOW";
        header.record_ids.clear();
    } else if gap {
        header.change_type = gap_type(header.change_type);
    }
    let empty = Map::new();
    let event = sf_cdc_event(&header, if gap { &empty } else { fields }, replay_id);
    let key = header.record_ids.first().cloned().unwrap_or_default();
    if st.faults.draw_lost_event(Crm::Salesforce) {
        // The replay id and commit number are spent: a hole, as a lost event leaves.
        return;
    }
    st.deliver_sf(&key, &event);
}

/// `CREATE` → `GAP_CREATE`.
fn gap_type(change_type: &'static str) -> &'static str {
    match change_type {
        "CREATE" => "GAP_CREATE",
        "UPDATE" => "GAP_UPDATE",
        "DELETE" => "GAP_DELETE",
        "UNDELETE" => "GAP_UNDELETE",
        other => other,
    }
}

/// The event base of a HubSpot change made now by `source`.
pub(crate) fn hs_base(shared: &Shared, source: HsSource) -> HsEventBase {
    HsEventBase {
        portal_id: shared.opts.hubspot_portal_id,
        app_id: shared.opts.hubspot_app_id,
        occurred_at: now_ms(),
        source,
    }
}

/// Updates a HubSpot record's properties; returns one property-change event
/// per changed property (for the caller to deliver as one batch). `None` when
/// the record does not exist.
pub(crate) fn hs_update(
    st: &mut State,
    object: ObjectKind,
    id: &str,
    props: &Map<String, Value>,
    base: &HsEventBase,
) -> Option<Vec<Value>> {
    let record = st.hs_records.get_mut(&(object, id.to_string()))?;
    let changed = diff(record, props);
    if changed.is_empty() {
        *st.rec.stats.records_unchanged.get_mut(Crm::Hubspot) += 1;
        return Some(Vec::new());
    }
    let stamp = Value::String(iso_millis(base.occurred_at));
    for (k, v) in &changed {
        record.insert(k.clone(), v.clone());
    }
    record.insert("lastmodifieddate".into(), stamp.clone());
    record.insert("hs_lastmodifieddate".into(), stamp);
    let mut events = Vec::with_capacity(changed.len());
    for (name, value) in &changed {
        let event_id = st.next_event_id();
        events.push(hs_webhook_event(
            base,
            event_id,
            object,
            id,
            Some((name, value)),
        ));
    }
    Some(events)
}

/// Creates a HubSpot record; returns its id and its creation event.
pub(crate) fn hs_create(
    st: &mut State,
    object: ObjectKind,
    id: Option<String>,
    mut props: Map<String, Value>,
    base: &HsEventBase,
) -> (String, Value) {
    let id = id.unwrap_or_else(|| st.new_hs_id());
    let stamp = Value::String(iso_millis(base.occurred_at));
    props.insert("hs_object_id".into(), Value::String(id.clone()));
    for k in ["createdate", "lastmodifieddate", "hs_lastmodifieddate"] {
        props.insert(k.into(), stamp.clone());
    }
    st.hs_records.insert((object, id.clone()), props);
    let event_id = st.next_event_id();
    let event = hs_webhook_event(base, event_id, object, &id, None);
    (id, event)
}

/// Admin create-or-update, as a person in the UI would (no owner checks).
pub(crate) fn upsert(shared: &Shared, req: UpsertRecord) -> Result<RecordView, EmulatorError> {
    let object = req.object;
    let mut st = shared.lock();
    match req.crm {
        Crm::Salesforce => {
            let commit_user = st.default_sf_user(shared.opts.salesforce_run_as_user.as_deref());
            let meta = SfMeta {
                origin: String::new(),
                commit_user,
                transaction_key: st.uuid(),
            };
            let exists = req
                .id
                .as_ref()
                .is_some_and(|id| st.sf_records.contains_key(&(object, id.clone())));
            let id = match req.id {
                Some(id) if exists => {
                    sf_update(&mut st, object, &id, &req.fields, &meta, 1);
                    id
                }
                id => sf_create(&mut st, object, id, req.fields, &meta),
            };
            record_view(&st, Crm::Salesforce, object, &id)
        }
        Crm::Hubspot => {
            if object == ObjectKind::Lead {
                return Err(EmulatorError::BadRequest(
                    "hubspot records are contacts or companies".into(),
                ));
            }
            let user_id = ui_user_id(&st);
            let base = hs_base(shared, HsSource::CrmUi { user_id });
            let exists = req
                .id
                .as_ref()
                .is_some_and(|id| st.hs_records.contains_key(&(object, id.clone())));
            let id = match req.id {
                Some(id) if exists => {
                    let events =
                        hs_update(&mut st, object, &id, &req.fields, &base).unwrap_or_default();
                    deliver_hs(&mut st, events);
                    id
                }
                id => {
                    let (id, event) = hs_create(&mut st, object, id, req.fields, &base);
                    deliver_hs(&mut st, vec![event]);
                    id
                }
            };
            record_view(&st, Crm::Hubspot, object, &id)
        }
        Crm::Native => {
            return Err(EmulatorError::BadRequest(
                "crm must be salesforce or hubspot".into(),
            ))
        }
    }
    .ok_or_else(|| EmulatorError::BadRequest("record vanished".into()))
}

/// CREATE events for every seeded record (Salesforce one each, HubSpot in
/// batches of up to 100).
pub(crate) fn emit_seed_events(shared: &Shared) {
    let mut st = shared.lock();
    let commit_user = st.default_sf_user(shared.opts.salesforce_run_as_user.as_deref());
    let now = now_ms();
    let sf: Vec<_> = st
        .sf_records
        .iter()
        .map(|((o, id), f)| (*o, id.clone(), f.clone()))
        .collect();
    for (object, id, fields) in sf {
        let meta = SfMeta {
            origin: String::new(),
            commit_user: commit_user.clone(),
            transaction_key: st.uuid(),
        };
        let carried: Map<String, Value> =
            fields.into_iter().filter(|(_, v)| !v.is_null()).collect();
        emit_sf(
            &mut st,
            meta.header(object, &id, "CREATE", 1, now),
            &carried,
        );
    }
    let user_id = ui_user_id(&st);
    let base = hs_base(shared, HsSource::CrmUi { user_id });
    let hs: Vec<_> = st.hs_records.keys().cloned().collect();
    let mut batch = Vec::with_capacity(hs.len());
    for (object, id) in hs {
        let event_id = st.next_event_id();
        batch.push(hs_webhook_event(&base, event_id, object, &id, None));
    }
    deliver_hs(&mut st, batch);
}

/// The HubSpot user a "person in the UI" change is made by: the first owner's
/// `userId` (1 when it has none, or a negative one an event cannot carry).
fn ui_user_id(st: &State) -> u64 {
    st.hs_owners
        .first()
        .and_then(|o| o.user_id)
        .and_then(|u| u64::try_from(u).ok())
        .unwrap_or(1)
}

/// Delivers HubSpot webhook events, less those a `LOST_EVENT` fault loses.
pub(crate) fn deliver_hs(st: &mut State, events: Vec<Value>) {
    let kept: Vec<Value> = events
        .into_iter()
        .filter(|_| !st.faults.draw_lost_event(Crm::Hubspot))
        .collect();
    if !kept.is_empty() {
        st.deliver_hs(kept);
    }
}
