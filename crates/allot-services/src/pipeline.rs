//! Ingest and assign as one step over a chunk of raw payloads: decode,
//! dedupe, merge into the last known record, hydrate, drop own echoes,
//! decide, and stage every effect in one store batch.
//!
//! The caller adds its source position to the returned batch, commits it
//! (one transaction, one flush) and only then acknowledges upstream, so a
//! crash at any point either loses nothing or redoes work the dedupe window
//! recognises.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use allot_core::{
    ChangeEvent, ChangeKind, Crm, Decision, EngineState, Millis, ObjectKind, OwnerChange, Record,
};
use allot_events::{decode, merge, EchoFilter, FieldMap, Format};
use allot_rules::RuleSet;
use allot_store::{Batch, OrderKey, Store};
use tracing::{debug, warn};

mod refused;
mod split;

pub use split::Input;

use crate::hydrate::{parked_name, Hydrator, Landed, Landing, Parked, PARKED};
use crate::metrics::Metrics;
use crate::raw::DeadLetter;
use crate::ServiceError;

/// One raw payload as it arrived.
#[derive(Debug, Clone)]
pub struct Payload {
    pub format: Format,
    /// Where it is, for dead letters and logs: `allot.raw@17`, `kafka:topic:2@991`.
    pub source: String,
    pub body: Vec<u8>,
}

/// Field maps per CRM.
#[derive(Debug, Clone)]
pub struct FieldMaps {
    pub salesforce: FieldMap,
    pub hubspot: FieldMap,
    pub native: FieldMap,
}

impl Default for FieldMaps {
    fn default() -> Self {
        FieldMaps {
            salesforce: FieldMap::salesforce_default(),
            hubspot: FieldMap::hubspot_default(),
            native: FieldMap::identity(),
        }
    }
}

impl FieldMaps {
    pub fn get(&self, crm: Crm) -> &FieldMap {
        match crm {
            Crm::Salesforce => &self.salesforce,
            Crm::Hubspot => &self.hubspot,
            Crm::Native => &self.native,
        }
    }
}

/// How the pipeline recognises allot's own writes coming back.
#[derive(Debug, Clone)]
pub struct EchoConfig {
    pub filter: EchoFilter,
    /// An owner change matching a write allot made this recently is an echo.
    pub ledger_window_ms: Millis,
}

impl Default for EchoConfig {
    fn default() -> Self {
        EchoConfig {
            filter: EchoFilter {
                salesforce_client_id: None,
                hubspot_source_ids: Vec::new(),
                hubspot_app_id: None,
            },
            ledger_window_ms: 15 * 60_000,
        }
    }
}

impl EchoConfig {
    /// allot's writes carry `Sforce-Call-Options: client=<salesforce_client_id>`
    /// and come from HubSpot app `hubspot_app_id`; ledger window 15 minutes.
    pub fn new(salesforce_client_id: &str, hubspot_app_id: Option<&str>) -> EchoConfig {
        EchoConfig {
            filter: EchoFilter {
                salesforce_client_id: Some(salesforce_client_id.to_string()),
                hubspot_source_ids: Vec::new(),
                hubspot_app_id: hubspot_app_id.map(str::to_string),
            },
            ..EchoConfig::default()
        }
    }
}

/// One record as the CRM's book holds it (backfill and resync).
#[derive(Debug, Clone)]
pub struct BookRecord {
    pub crm: Crm,
    pub object: ObjectKind,
    pub id: String,
    /// CRM field names, scalars; the owner field and modification time included.
    pub fields: BTreeMap<String, allot_core::Value>,
}

/// What one chunk produced, not yet committed.
#[derive(Default)]
pub struct Staged {
    pub batch: Batch,
    pub decisions: Vec<Decision>,
    pub changes: Vec<OwnerChange>,
    pub dead: Vec<DeadLetter>,
    pub events: usize,
    /// For each decision, the index of its owner change in `changes`.
    pub change_of: Vec<Option<usize>>,
    /// Split mode: records matched and waiting for their pool to pick a rep.
    pub routes: Vec<crate::stages::messages::RouteMessage>,
    /// Split mode: load changes for reps' pools, with what caused them.
    pub loads: Vec<(String, allot_core::StateOp)>,
    /// Split mode: changes to the account table, for every match replica.
    pub accounts: Vec<allot_core::StateOp>,
}

pub struct Pipeline {
    store: Arc<Store>,
    rules: Arc<RuleSet>,
    fields_read: BTreeSet<String>,
    /// The engine state, kept in memory; every change also goes to the batch.
    state: EngineState,
    maps: FieldMaps,
    echo: EchoConfig,
    hydrator: Hydrator,
    metrics: Metrics,
    local_outbox: bool,
    /// Set in split mode (match apart from distribute).
    split: Option<split::Split>,
    /// What is being processed (event dedupe key, route, record): names
    /// the load messages it causes in split mode, stably across redos.
    cause: String,
}

type Cached = (Option<Record>, Option<OrderKey>);

/// What one chunk remembers while it is staged: records touched so far
/// (not yet in the store) and event ids seen.
#[derive(Default)]
struct Chunk {
    cache: HashMap<(ObjectKind, String), Cached>,
    seen: HashSet<String>,
    /// Parked entries read or staged so far (`None`: not parked).
    parked: HashMap<(ObjectKind, String), Option<Parked>>,
}

impl Pipeline {
    /// A record and the order key last applied to it: as this chunk left
    /// it, else as the store holds it.
    fn known(&self, chunk: &Chunk, key: &(ObjectKind, String)) -> Result<Cached, ServiceError> {
        if let Some(c) = chunk.cache.get(key) {
            return Ok(c.clone());
        }
        Ok(match self.store.record(key.0, &key.1)? {
            Some((r, k)) => (Some(r), k),
            None => (None, None),
        })
    }
}

/// The note of a decision made on what events carried, with no CRM to ask.
fn not_read() -> String {
    "record not re-read from the crm (hydration is off): decided on the fields events carried"
        .to_string()
}

impl Pipeline {
    /// Loads the engine state from the store.
    pub fn new(
        store: Arc<Store>,
        rules: Arc<RuleSet>,
        maps: FieldMaps,
        echo: EchoConfig,
        hydrator: Hydrator,
        metrics: Metrics,
    ) -> Result<Pipeline, ServiceError> {
        let state = store.engine_state()?;
        let fields_read = rules.fields_read();
        Ok(Pipeline {
            store,
            rules,
            fields_read,
            state,
            maps,
            echo,
            hydrator,
            metrics,
            local_outbox: true,
            split: None,
            cause: String::new(),
        })
    }

    pub fn rules(&self) -> &Arc<RuleSet> {
        &self.rules
    }

    /// Decisions from now on use `rules`.
    pub fn set_rules(&mut self, rules: Arc<RuleSet>) {
        self.fields_read = rules.fields_read();
        self.rules = rules;
    }

    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// Applies state changes made outside [`Pipeline::stage`] (SLA re-routes).
    pub fn apply_ops(&mut self, ops: &[allot_core::StateOp]) {
        self.state.apply(ops);
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    pub fn state(&self) -> &EngineState {
        &self.state
    }

    /// Processes `payloads` in order and stages every effect.
    pub async fn stage(
        &mut self,
        payloads: &[Payload],
        now: Millis,
    ) -> Result<Staged, ServiceError> {
        let mut out = Staged {
            batch: self.store.batch(),
            ..Staged::default()
        };
        let mut chunk = Chunk::default();
        for p in payloads {
            let decoded = decode(&p.body, p.format);
            for e in decoded.errors {
                warn!(event = "allot.dead_letter", source = %p.source, kind = e.kind(), error = %e, "undecodable event");
                self.dead(&mut out, e.kind(), e.to_string(), p, now);
            }
            for event in decoded.events {
                self.accept(&mut out, &mut chunk, event, p, now).await?;
            }
        }
        Ok(out)
    }

    /// Like [`Pipeline::stage`] for events decoded elsewhere (the assign
    /// stage of microservice mode reads them from `allot.events`); each comes
    /// with the payload it travelled in, for dead letters.
    pub async fn stage_events(
        &mut self,
        events: Vec<(ChangeEvent, Payload)>,
        now: Millis,
    ) -> Result<Staged, ServiceError> {
        let mut out = Staged {
            batch: self.store.batch(),
            ..Staged::default()
        };
        let mut chunk = Chunk::default();
        for (event, p) in events {
            self.accept(&mut out, &mut chunk, event, &p, now).await?;
        }
        Ok(out)
    }

    /// Whether decisions put their owner changes in this store's outbox (and
    /// write ledger). The assign stage of microservice mode sends them on the
    /// decisions topic instead; the ledger stays, for echo detection.
    pub fn set_local_outbox(&mut self, on: bool) {
        self.local_outbox = on;
    }

    pub fn local_outbox(&self) -> bool {
        self.local_outbox
    }

    /// Dedupes one decoded event and stages its effects.
    async fn accept(
        &mut self,
        out: &mut Staged,
        chunk: &mut Chunk,
        event: ChangeEvent,
        p: &Payload,
        now: Millis,
    ) -> Result<(), ServiceError> {
        self.metrics
            .decoded
            .with_label_values(&[event.source.as_str()])
            .inc();
        out.events += 1;
        let key = event.dedupe_key();
        self.cause.clone_from(&key);
        if !chunk.seen.insert(key.clone()) || self.store.seen(&key)? {
            self.metrics.deduped.inc();
            debug!(event_id = %event.event_id, "duplicate event dropped");
            return Ok(());
        }
        out.batch.mark_seen(&key, now);
        if event.change == ChangeKind::Overflow {
            // Too many changes to describe, or a change to every record of
            // the type: read the object again from the gap's commit time.
            let what = match event.record_id.as_deref() {
                Some(wildcard) => format!("record ids {wildcard} (every {} changed)", event.object),
                None => format!(
                    "GAP_OVERFLOW (too many {} changes to describe)",
                    event.object
                ),
            };
            let since = event.commit_time.unwrap_or(now) - 1_000;
            let request = crate::backfill::resync_request(
                &self.store,
                crate::backfill::ResyncRequest {
                    crm: event.source,
                    object: event.object,
                    since,
                    event_id: event.event_id.clone(),
                    reason: format!("{what} in event {} from {}", event.event_id, p.source),
                    requested_at: now,
                },
            )?;
            warn!(crm = %event.source, object = %event.object, event_id = %event.event_id, since, "{what}: resync of the object requested");
            self.metrics
                .resync_requests
                .with_label_values(&[event.source.as_str(), event.object.as_str()])
                .inc();
            let key = crate::backfill::name(event.source, event.object);
            out.batch
                .admin_put(crate::backfill::RESYNC, &key, serde_json::json!(request));
            return Ok(());
        }
        self.event(out, chunk, event, now).await
    }

    fn dead(&self, out: &mut Staged, kind: &str, reason: String, p: &Payload, now: Millis) {
        self.metrics.dead_lettered.with_label_values(&[kind]).inc();
        out.dead.push(DeadLetter {
            v: 1,
            kind: kind.to_string(),
            reason,
            source: p.source.clone(),
            at: now,
            body: String::from_utf8_lossy(&p.body).into_owned(),
        });
    }

    async fn event(
        &mut self,
        out: &mut Staged,
        chunk: &mut Chunk,
        event: ChangeEvent,
        now: Millis,
    ) -> Result<(), ServiceError> {
        let Some(id) = event.record_id.clone() else {
            return Ok(());
        };
        let key = (event.object, id.clone());
        if self.defer(out, &event)? {
            return Ok(());
        }
        if event.change == ChangeKind::OwnerRefused {
            return self.refused(out, chunk, &event, now);
        }
        let (before, applied) = self.known(chunk, &key)?;
        let map = self.maps.get(event.source);
        let m = merge(before.clone(), applied, &event, map);
        if m.stale {
            self.metrics.stale.inc();
            debug!(event_id = %event.event_id, record_id = %id, "stale event skipped");
            return Ok(());
        }
        let Some(mut record) = m.record else {
            return Ok(());
        };
        if event.source != Crm::Native {
            // Rules can tell records of different CRMs apart (one tree per CRM).
            record
                .fields
                .insert("crm".into(), allot_core::Value::from(event.source.as_str()));
        }
        let applied_key = Some(applied.map_or(event.order_key(), |k| k.max(event.order_key())));
        let echo = self.is_echo(&event, &record, now)?;
        if echo {
            self.metrics.echoes.inc();
            debug!(event = "allot.echo_dropped", event_id = %event.event_id, record_id = %id, "own write came back");
        }
        let serves = self.hydrator.serves(event.source);
        let parked = match serves {
            true => self.parked(&mut chunk.parked, event.object, &id)?,
            false => None,
        };
        // allot's own write coming back as a gap needs no read: allot knows what it wrote.
        let unknown = m.needs_hydration && !echo;
        if serves && event.change != ChangeKind::Delete && (unknown || parked.is_some()) {
            // Never decided on fields it does not have: wait for the read.
            let relevant = m
                .changed_canonical
                .iter()
                .any(|f| self.fields_read.contains(f));
            let owed = !echo
                && (relevant
                    || matches!(
                        event.change,
                        ChangeKind::Create | ChangeKind::Undelete | ChangeKind::Gap
                    ));
            let mut p = parked.unwrap_or_else(|| Parked {
                crm: event.source,
                object: event.object,
                id: id.clone(),
                since: now,
                event_id: event.event_id.clone(),
                decide: false,
                fields: BTreeMap::new(),
            });
            p.decide |= owed;
            for f in event.fields.keys() {
                p.fields.insert(f.clone(), now);
            }
            self.park(out, &mut chunk.parked, p);
            out.batch.put_record(&record, applied_key);
            chunk.cache.insert(key, (Some(record), applied_key));
            return Ok(());
        }
        if parked.is_some() {
            // Deleted while parked: nothing left to read.
            self.unpark(out, &mut chunk.parked, event.object, &id);
        }
        let unread = m.needs_hydration && !serves;
        match event.change {
            ChangeKind::GapDelete => {
                // Only a read can say the record is gone; without one it stays.
                warn!(record_id = %id, event_id = %event.event_id, "GAP_DELETE not confirmed: no CRM read path for {}; the record is kept", event.source);
            }
            ChangeKind::Delete => {
                if let Some(prev) = before.filter(|b| !b.deleted) {
                    let ops = allot_rules::release(&prev);
                    self.effects(out, ops);
                }
            }
            _ if record.deleted => {}
            ChangeKind::Create | ChangeKind::Undelete if !echo => {
                self.decide(out, &mut record, &event, now, unread.then(not_read))
            }
            _ => {
                let relevant = m
                    .changed_canonical
                    .iter()
                    .any(|f| self.fields_read.contains(f));
                if relevant && !echo {
                    self.decide(out, &mut record, &event, now, unread.then(not_read));
                } else if m.owner_changed && !echo {
                    // Someone reassigned it by hand: respect it, keep the loads right.
                    let mut ops = Vec::new();
                    if let Some(new) = &record.owner {
                        ops.push(allot_core::StateOp::OpenDelta {
                            rep: new.clone(),
                            delta: 1,
                        });
                    }
                    if let Some(old) = before.as_ref().and_then(|b| b.owner.clone()) {
                        ops.push(allot_core::StateOp::OpenDelta {
                            rep: old,
                            delta: -1,
                        });
                    }
                    ops.extend(reindex_account(before.as_ref(), &record, now));
                    self.effects(out, ops);
                }
            }
        }
        out.batch.put_record(&record, applied_key);
        chunk.cache.insert(key, (Some(record), applied_key));
        Ok(())
    }

    /// The parked entry of a record, from this chunk or the store.
    fn parked(
        &self,
        staged: &mut HashMap<(ObjectKind, String), Option<Parked>>,
        object: ObjectKind,
        id: &str,
    ) -> Result<Option<Parked>, ServiceError> {
        let key = (object, id.to_string());
        if let Some(p) = staged.get(&key) {
            return Ok(p.clone());
        }
        let p = self
            .store
            .admin_get::<Parked>(PARKED, &parked_name(object, id))?;
        staged.insert(key, p.clone());
        Ok(p)
    }

    fn park(
        &self,
        out: &mut Staged,
        staged: &mut HashMap<(ObjectKind, String), Option<Parked>>,
        p: Parked,
    ) {
        if let Ok(value) = serde_json::to_value(&p) {
            out.batch
                .admin_put(PARKED, &parked_name(p.object, &p.id), value);
        }
        debug!(event = "allot.hydration.parked", event_id = %p.event_id, record_id = %p.id, "record parked until read");
        staged.insert((p.object, p.id.clone()), Some(p));
        self.hydrator.poke();
    }

    fn unpark(
        &self,
        out: &mut Staged,
        staged: &mut HashMap<(ObjectKind, String), Option<Parked>>,
        object: ObjectKind,
        id: &str,
    ) {
        out.batch
            .admin_put(PARKED, &parked_name(object, id), serde_json::Value::Null);
        staged.insert((object, id.to_string()), None);
    }

    /// Where parked records are read; the owner loop waits on
    /// [`Hydrator::landed_ready`] and then calls [`Pipeline::stage_hydrated`].
    pub fn hydrator(&self) -> &Hydrator {
        &self.hydrator
    }

    /// Merges the reads that landed into their parked records and decides
    /// those a decision is owed (in the order they were parked); a read that
    /// failed until the deadline decides on what is known, and says so.
    pub fn stage_hydrated(&mut self, now: Millis) -> Result<Staged, ServiceError> {
        let mut out = Staged {
            batch: self.store.batch(),
            ..Staged::default()
        };
        let mut landed = self.hydrator.take_landed();
        landed.sort_by_key(|l| l.since);
        let mut chunk = Chunk::default();
        for l in landed {
            self.land(&mut out, &mut chunk, l, now)?;
        }
        Ok(out)
    }

    fn land(
        &mut self,
        out: &mut Staged,
        chunk: &mut Chunk,
        l: Landed,
        now: Millis,
    ) -> Result<(), ServiceError> {
        let Some(p) = self.parked(&mut chunk.parked, l.object, &l.id)? else {
            return Ok(());
        };
        self.cause = format!("land:{}/{}", l.object, l.id);
        self.unpark(out, &mut chunk.parked, l.object, &l.id);
        let key = (l.object, l.id.clone());
        let (before, applied) = self.known(chunk, &key)?;
        let event = ChangeEvent {
            v: allot_core::EVENT_VERSION,
            source: p.crm,
            event_id: p.event_id.clone(),
            object: l.object,
            record_id: Some(l.id.clone()),
            change: if before.is_some() {
                ChangeKind::Update
            } else {
                ChangeKind::Create
            },
            changed_fields: Vec::new(),
            fields: BTreeMap::new(),
            commit_time: None,
            sequence: None,
            commit_user: None,
            origin: None,
            transaction: None,
            scope: None,
        };
        let (mut record, note) = match l.landing {
            Landing::Found(values) => {
                debug!(event = "allot.hydration.landed", event_id = %p.event_id, record_id = %l.id, "read landed");
                // Fields events set after the read was sent are newer than it.
                let fields: BTreeMap<String, allot_core::Value> = values
                    .into_iter()
                    .filter(|(k, _)| p.fields.get(k).is_none_or(|at| *at <= l.read_at))
                    .collect();
                let event = ChangeEvent {
                    changed_fields: fields.keys().cloned().collect(),
                    fields,
                    ..event.clone()
                };
                let m = merge(before.clone(), applied, &event, self.maps.get(p.crm));
                let Some(record) = m.record else {
                    return Ok(());
                };
                let relevant = m
                    .changed_canonical
                    .iter()
                    .any(|f| self.fields_read.contains(f));
                if !(p.decide || relevant) || record.deleted {
                    self.store_landed(out, chunk, record, applied, p.crm);
                    return Ok(());
                }
                (record, None)
            }
            Landing::Missing => {
                // The CRM has no such record: a delete, now confirmed.
                if let Some(mut prev) = before.filter(|b| !b.deleted) {
                    let ops = allot_rules::release(&prev);
                    self.effects(out, ops);
                    prev.deleted = true;
                    self.store_landed(out, chunk, prev, applied, p.crm);
                }
                debug!(event = "allot.hydration.landed", record_id = %l.id, "parked record is gone from the crm");
                return Ok(());
            }
            Landing::Failed(reason) => {
                self.metrics.hydrated.with_label_values(&["deadline"]).inc();
                let Some(record) = before else {
                    return Ok(());
                };
                let note = format!(
                    "hydration failed after {}: {reason}; decided on the fields events carried",
                    minutes(now - p.since)
                );
                warn!(event = "allot.hydration.failed", record_id = %l.id, event_id = %p.event_id, reason = %reason, "hydration deadline passed, deciding on what is known");
                if !p.decide || record.deleted {
                    self.store_landed(out, chunk, record, applied, p.crm);
                    return Ok(());
                }
                (record, Some(note))
            }
        };
        self.decide(out, &mut record, &event, now, note);
        self.store_landed(out, chunk, record, applied, p.crm);
        Ok(())
    }

    /// Merges records read from the book (backfill, resync) into the
    /// store: fields, owners and the loads they carry. A parked record is
    /// landed as if its own read came back. With `decide`, a record whose
    /// fields the rules read changed (or that allot never decided) is
    /// decided; without, nothing is.
    pub fn stage_book(
        &mut self,
        records: Vec<BookRecord>,
        decide: bool,
        now: Millis,
    ) -> Result<Staged, ServiceError> {
        let mut out = Staged {
            batch: self.store.batch(),
            ..Staged::default()
        };
        let mut chunk = Chunk::default();
        for b in records {
            if self.parked(&mut chunk.parked, b.object, &b.id)?.is_some() {
                let l = Landed {
                    object: b.object,
                    id: b.id,
                    since: now,
                    read_at: now,
                    landing: Landing::Found(b.fields),
                };
                self.land(&mut out, &mut chunk, l, now)?;
                continue;
            }
            let key = (b.object, b.id.clone());
            self.cause = format!("book:{}/{}", b.object, b.id);
            let (before, applied) = self.known(&chunk, &key)?;
            let event = ChangeEvent {
                v: allot_core::EVENT_VERSION,
                source: b.crm,
                event_id: format!("sync:{}:{}", b.object, b.id),
                object: b.object,
                record_id: Some(b.id.clone()),
                change: if before.is_some() {
                    ChangeKind::Update
                } else {
                    ChangeKind::Create
                },
                changed_fields: b.fields.keys().cloned().collect(),
                fields: b.fields,
                commit_time: None,
                sequence: None,
                commit_user: None,
                origin: None,
                transaction: None,
                scope: None,
            };
            let m = merge(before.clone(), applied, &event, self.maps.get(b.crm));
            let Some(mut record) = m.record else {
                continue;
            };
            if b.crm != Crm::Native {
                // Rules can tell records of different CRMs apart (one tree per CRM).
                record
                    .fields
                    .insert("crm".into(), allot_core::Value::from(b.crm.as_str()));
            }
            let relevant = m
                .changed_canonical
                .iter()
                .any(|f| self.fields_read.contains(f));
            if decide && !record.deleted && relevant {
                self.decide(&mut out, &mut record, &event, now, None);
            } else {
                let mut ops = Vec::new();
                if m.owner_changed || before.is_none() {
                    // The book says who owns it: keep the loads right.
                    if let Some(new) = &record.owner {
                        ops.push(allot_core::StateOp::OpenDelta {
                            rep: new.clone(),
                            delta: 1,
                        });
                    }
                    if let Some(old) = before.as_ref().and_then(|b| b.owner.clone()) {
                        ops.push(allot_core::StateOp::OpenDelta {
                            rep: old,
                            delta: -1,
                        });
                    }
                }
                // Lead-to-account finds accounts that never had an event.
                ops.extend(reindex_account(before.as_ref(), &record, now));
                if !ops.is_empty() {
                    self.effects(&mut out, ops);
                }
            }
            out.events += 1;
            self.store_landed(&mut out, &mut chunk, record, applied, b.crm);
        }
        Ok(out)
    }

    fn store_landed(
        &self,
        out: &mut Staged,
        chunk: &mut Chunk,
        mut record: Record,
        applied: Option<OrderKey>,
        crm: Crm,
    ) {
        if crm != Crm::Native {
            record
                .fields
                .insert("crm".into(), allot_core::Value::from(crm.as_str()));
        }
        out.batch.put_record(&record, applied);
        chunk
            .cache
            .insert((record.object, record.id.clone()), (Some(record), applied));
    }

    /// allot's own write coming back: by origin, or by the write ledger.
    fn is_echo(
        &self,
        event: &ChangeEvent,
        record: &Record,
        now: Millis,
    ) -> Result<bool, ServiceError> {
        if self.echo.filter.is_own_echo(event) {
            return Ok(true);
        }
        let map = self.maps.get(event.source);
        let carries_owner = event
            .fields
            .keys()
            .any(|k| map.canonical(event.object, k) == Some(allot_events::OWNER));
        if !carries_owner {
            return Ok(false);
        }
        let other_fields = event
            .fields
            .keys()
            .filter(|k| {
                map.canonical(event.object, k)
                    .is_some_and(|c| self.fields_read.contains(c))
            })
            .count();
        Ok(other_fields == 0
            && match self.store.recent_write(event.object, &record.id)? {
                Some((owner, at)) => {
                    record.owner.as_deref() == Some(owner.as_str())
                        && now - at <= self.echo.ledger_window_ms
                }
                None => false,
            })
    }

    /// Decides `record`; `note`, when given, says first in the explanation
    /// what the decision could not know.
    fn decide(
        &mut self,
        out: &mut Staged,
        record: &mut Record,
        event: &ChangeEvent,
        now: Millis,
        note: Option<String>,
    ) {
        self.decide_without(out, record, event, now, note, &[]);
    }

    /// [`Self::decide`] with `exclude`d reps out of every rotation.
    fn decide_without(
        &mut self,
        out: &mut Staged,
        record: &mut Record,
        event: &ChangeEvent,
        now: Millis,
        note: Option<String>,
        exclude: &[String],
    ) {
        if self.split.is_some() {
            let crm = Some(event.source);
            self.route(out, record, crm, &event.event_id, now, (note, exclude));
            return;
        }
        let rules = match exclude.is_empty() {
            true => self.rules.clone(),
            false => Arc::new(allot_rules::overrides::without_reps(&self.rules, exclude)),
        };
        let outcome = allot_rules::decide(&rules, &self.state, record, now);
        self.state.apply(&outcome.ops);
        out.batch.apply_state_ops(&outcome.ops);
        let mut d = outcome.decision;
        if let Some(note) = note {
            d.explanation.insert(0, note.clone());
            d.warnings.push(note);
        }
        debug!(event = "allot.decision", event_id = %event.event_id, record_id = %record.id, owner = ?d.owner, strategy = d.strategy.as_str(), "decided");
        self.stage_decision(out, record, d, Some(event.source), &event.event_id, now);
    }

    /// Stages the effects of decision `d` about `record` (its state ops
    /// already applied): counted, audited, and when the owner changes, the
    /// owner change (in the outbox when it is local; always in the write
    /// ledger, for echo detection) with `record` updated to the new owner.
    /// Events, SLA re-routes, realignment and offboarding all end here.
    pub fn stage_decision(
        &mut self,
        out: &mut Staged,
        record: &mut Record,
        d: Decision,
        crm: Option<Crm>,
        event_id: &str,
        now: Millis,
    ) {
        self.metrics
            .decisions
            .with_label_values(&[
                d.strategy.as_str(),
                if d.changed { "true" } else { "false" },
            ])
            .inc();
        self.metrics
            .decisions_by_territory
            .with_label_values(&[d.territory.as_deref().unwrap_or("(none)")])
            .inc();
        out.batch.append_audit(&d);
        let mut change_of = None;
        if let Some(change) = d.owner_change(event_id) {
            let change = OwnerChange { crm, ..change };
            if self.local_outbox {
                out.batch.outbox_put(&change);
            }
            out.batch
                .record_write(record.object, &record.id, &change.owner, now);
            // The record is theirs from now on; the CRM's echo will agree.
            record.owner = Some(change.owner.clone());
            record.owner_since = Some(now);
            change_of = Some(out.changes.len());
            out.changes.push(change);
        }
        out.change_of.push(change_of);
        out.decisions.push(d);
    }
}

/// `600000` → `10 min`; under a minute in seconds.
fn minutes(ms: Millis) -> String {
    if ms >= 60_000 {
        format!("{} min", ms / 60_000)
    } else {
        format!("{} s", ms.max(0) / 1000)
    }
}

/// The CRM a stored record came from (the `crm` field allot sets).
pub fn crm_of(record: &Record) -> Option<Crm> {
    match record.fields.get("crm")?.as_text()?.as_str() {
        "salesforce" => Some(Crm::Salesforce),
        "hubspot" => Some(Crm::Hubspot),
        _ => None,
    }
}

/// The account index ops for `record` stored without a decision: its
/// entry under its domain, and out from under a domain it no longer has.
fn reindex_account(
    before: Option<&Record>,
    record: &Record,
    now: Millis,
) -> Vec<allot_core::StateOp> {
    let mut ops = Vec::new();
    if let Some(b) = before.filter(|b| b.object == ObjectKind::Account) {
        let old = allot_rules::criteria::record_domain(b);
        if old.is_some() && old != allot_rules::criteria::record_domain(record) {
            ops.extend(allot_rules::release(&Record {
                owner: None,
                ..b.clone()
            }));
        }
    }
    ops.extend(allot_rules::index_account(record, now));
    ops
}

/// Commits `batch` (one transaction, one flush) off the async threads.
pub async fn commit(
    store: &Arc<Store>,
    batch: Batch,
    stage: &'static str,
) -> Result<(), ServiceError> {
    let store = store.clone();
    match tokio::task::spawn_blocking(move || store.commit(batch)).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => {
            tracing::error!(stage, error = %e, "commit failed");
            Err(e.into())
        }
        Err(e) => Err(ServiceError::Stopped {
            stage,
            detail: e.to_string(),
        }),
    }
}
