//! The pipeline as the match step of split mode (`allot serve match`):
//! everything up to the winning territory or a settled owner happens here,
//! keyed by record; picking the rep happens in the record's distribution
//! pool (`allot serve distribute`), which owns the pool's cursors, loads
//! and daily counts.
//!
//! - A decision owed becomes a [`RouteMessage`] to the pool
//!   [`allot_rules::route`] names, and the record waits (its later events
//!   are kept, in order) until the pool's [`SettledMessage`] comes back
//!   with the new owner. Then the kept events are taken as if they had
//!   just arrived: exactly the order one process would decide them in.
//! - Load changes seen here (a record deleted, reassigned by a person,
//!   read from the book) go to the reps' pools as load messages.
//! - The account table (lead-to-account) is the compacted accounts topic,
//!   read in full by every match replica; changes made here are published
//!   to it and applied locally at once.

use std::collections::HashMap;

use allot_core::{ChangeEvent, Crm, Millis, ObjectKind, Record, StateOp};
use serde::{Deserialize, Serialize};
use tracing::debug;

use super::{Chunk, Payload, Pipeline, Staged};
use crate::stages::messages::{RouteMessage, SettledMessage};
use crate::ServiceError;

/// Admin table of records waiting for their pool's decision.
pub const ROUTING: &str = "routing";

/// A record whose decision is with its pool.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pending {
    pub route_id: String,
    pub since: Millis,
    /// Events that arrived meanwhile, in order.
    #[serde(default)]
    pub deferred: Vec<ChangeEvent>,
}

/// Split-mode state of the pipeline.
#[derive(Debug, Default)]
pub(crate) struct Split {
    /// Pending entries read or staged so far (`None`: not pending).
    pending: HashMap<(ObjectKind, String), Option<Pending>>,
}

/// What the match stage reads from `allot.events`.
#[derive(Debug, Clone)]
pub enum Input {
    Event(ChangeEvent, Payload),
    Settled(SettledMessage),
}

fn name(object: ObjectKind, id: &str) -> String {
    format!("{object}/{id}")
}

impl Pipeline {
    /// Makes this pipeline the match step: decisions go to pools as
    /// routes; engine state holds only the account table (filled from the
    /// accounts topic with [`Pipeline::apply_accounts`]).
    pub fn set_split(&mut self) {
        self.split = Some(Split::default());
        self.local_outbox = false;
        self.state = allot_core::EngineState::default();
    }

    pub fn is_split(&self) -> bool {
        self.split.is_some()
    }

    /// Account table changes read from the accounts topic.
    pub fn apply_accounts(&mut self, ops: &[StateOp]) {
        self.state.apply(ops);
    }

    /// Applies state changes: in one process to the engine state and the
    /// batch; in split mode, rep loads go to their pools and account
    /// changes to the account table.
    pub(super) fn effects(&mut self, out: &mut Staged, ops: Vec<StateOp>) {
        if self.split.is_none() {
            self.state.apply(&ops);
            out.batch.apply_state_ops(&ops);
            return;
        }
        for op in ops {
            match op {
                StateOp::UpsertAccount { .. } | StateOp::RemoveAccount { .. } => {
                    self.state.apply_one(&op);
                    out.accounts.push(op);
                }
                other => out.loads.push((self.cause.clone(), other)),
            }
        }
    }

    fn pending(&mut self, object: ObjectKind, id: &str) -> Result<Option<Pending>, ServiceError> {
        let key = (object, id.to_string());
        let Some(split) = self.split.as_mut() else {
            return Ok(None);
        };
        if let Some(p) = split.pending.get(&key) {
            return Ok(p.clone());
        }
        let p = self
            .store
            .admin_get::<Pending>(ROUTING, &name(object, id))?;
        if let Some(split) = self.split.as_mut() {
            split.pending.insert(key, p.clone());
        }
        Ok(p)
    }

    fn set_pending(&mut self, out: &mut Staged, object: ObjectKind, id: &str, p: Option<Pending>) {
        let value = p
            .as_ref()
            .and_then(|p| serde_json::to_value(p).ok())
            .unwrap_or(serde_json::Value::Null);
        out.batch.admin_put(ROUTING, &name(object, id), value);
        if let Some(split) = self.split.as_mut() {
            split.pending.insert((object, id.to_string()), p);
        }
    }

    /// Keeps `event` for later when its record waits for its pool.
    pub(super) fn defer(
        &mut self,
        out: &mut Staged,
        event: &ChangeEvent,
    ) -> Result<bool, ServiceError> {
        let Some(id) = event.record_id.as_deref() else {
            return Ok(false);
        };
        let Some(mut p) = self.pending(event.object, id)? else {
            return Ok(false);
        };
        debug!(event_id = %event.event_id, record_id = %id, "record is with its pool; event kept until it is decided");
        p.deferred.push(event.clone());
        self.set_pending(out, event.object, id, Some(p));
        Ok(true)
    }

    /// Sends `record` to its pool to be decided, and holds its events.
    pub(super) fn route(
        &mut self,
        out: &mut Staged,
        record: &Record,
        crm: Option<Crm>,
        event_id: &str,
        now: Millis,
        (note, exclude): (Option<String>, &[String]),
    ) {
        let r = allot_rules::route(&self.rules, &self.state, record, now);
        let accounts = allot_rules::criteria::record_domain(record)
            .and_then(|d| {
                let refs = self.state.accounts_by_domain.get(&d)?.clone();
                Some(vec![(d, refs)])
            })
            .unwrap_or_default();
        let id = format!("{event_id}/{}", record.id);
        let at = r
            .named
            .clone()
            .or_else(|| r.pool.clone())
            .unwrap_or_else(|| format!("record:{}", record.id));
        self.set_pending(
            out,
            record.object,
            &record.id,
            Some(Pending {
                route_id: id.clone(),
                since: now,
                deferred: Vec::new(),
            }),
        );
        out.routes.push(RouteMessage {
            id,
            at,
            record: record.clone(),
            crm,
            event_id: event_id.to_string(),
            now,
            note,
            accounts,
            named: r.named,
            pool: r.pool,
            refusal: None,
            exclude: exclude.to_vec(),
            rules_version: self.rules.version.clone(),
            received_at: None,
        });
    }

    /// The pool decided: the record takes its new owner (and allot's write
    /// is remembered, so its echo is known), and its kept events go on.
    async fn settle(
        &mut self,
        out: &mut Staged,
        chunk: &mut Chunk,
        s: SettledMessage,
        now: Millis,
    ) -> Result<(), ServiceError> {
        let Some(p) = self.pending(s.object, &s.record_id)? else {
            debug!(record_id = %s.record_id, "settled again (a repeat); nothing waits");
            return Ok(());
        };
        if p.route_id != s.route_id {
            debug!(record_id = %s.record_id, route = %s.route_id, "settled for an older route; ignored");
            return Ok(());
        }
        self.set_pending(out, s.object, &s.record_id, None);
        self.cause.clone_from(&s.route_id);
        if let Some(owner) = &s.owner {
            let key = (s.object, s.record_id.clone());
            let (record, applied) = self.known(chunk, &key)?;
            if let Some(mut record) = record {
                record.owner = Some(owner.clone());
                record.owner_since = Some(s.decided_at);
                out.batch
                    .record_write(s.object, &s.record_id, owner, s.decided_at);
                out.batch.put_record(&record, applied);
                chunk.cache.insert(key, (Some(record), applied));
            }
        }
        for event in p.deferred {
            self.event(out, chunk, event, now).await?;
        }
        Ok(())
    }

    /// Like [`Pipeline::stage_events`], with the pools' settled messages
    /// among the events, in the order they came.
    pub async fn stage_inputs(
        &mut self,
        inputs: Vec<Input>,
        now: Millis,
    ) -> Result<Staged, ServiceError> {
        let mut out = Staged {
            batch: self.store.batch(),
            ..Staged::default()
        };
        let mut chunk = Chunk::default();
        for input in inputs {
            match input {
                Input::Event(event, p) => {
                    self.accept(&mut out, &mut chunk, event, &p, now).await?;
                }
                Input::Settled(s) => self.settle(&mut out, &mut chunk, s, now).await?,
            }
        }
        Ok(out)
    }
}
