//! Control commands: how the admin API changes what the engine decides with.
//!
//! The process that owns the [`Pipeline`] is the single writer of engine
//! state, so the API does not touch it: it sends a [`ControlCommand`] and the
//! owner applies it between chunks ([`Controller`]). The owner also switches
//! rules when a scheduled version becomes effective and re-decides the known
//! records under the new version at a bounded rate (the realignment job),
//! with its cursor in the store so a restart resumes it.

use std::collections::BTreeMap;
use std::sync::Arc;

use allot_core::{ChangeEvent, Millis, ObjectKind};
use allot_rules::overrides::{with_overrides, RepOverride};
use allot_rules::RuleSet;
use allot_store::{JOB, OVERRIDE};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tracing::{info, warn};

use crate::pipeline::{Pipeline, Staged};

mod handle;
mod pace;
mod redecide;
mod retry;
mod sync;
mod topic;

pub use crate::backfill::SyncCtx;
use crate::ServiceError;
pub use handle::{
    ControlCommand, ControlError, ControlHandle, ControlInbox, ControlMessage, Envelope,
    RedecideTarget, Reply,
};
pub use pace::Pacer;
pub use redecide::{owned_by, redecide};
pub use retry::redecide_records;
pub use topic::{record, Control, ControlFeed, ControlTopic, CONTROL_SCHEMA};

/// Version of the [`ControlMessage`] schema.
pub const CONTROL_VERSION: u8 = 1;
/// Job document holding the realignment's progress.
pub const REALIGN_JOB: &str = "realign";
/// Job document naming the rule version the owner last switched to.
const APPLIED: &str = "rules_applied";

/// Progress of re-deciding the known records after a rule version change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RealignJob {
    pub v: u8,
    pub from_version: String,
    pub to_version: String,
    pub activated_by: String,
    pub started_at: Millis,
    /// The last record re-decided; the scan resumes after it.
    pub cursor: Option<(ObjectKind, String)>,
    pub scanned: u64,
    pub moved: u64,
    pub finished_at: Option<Millis>,
}

/// The owner's side: base rules, overrides, the realignment job.
pub struct Controller {
    inbox: Option<ControlInbox>,
    /// The active version as written, before overrides.
    base: Arc<RuleSet>,
    overrides: BTreeMap<String, RepOverride>,
    pacer: Pacer,
    job: Option<RealignJob>,
    next_sync: Millis,
    /// CRM clients for sync runs (none: `POST /api/sync` is refused).
    sync_ctx: Option<SyncCtx>,
    /// The sync run in progress.
    syncing: Option<sync::Active>,
    sync_pacer: Pacer,
    next_resync_check: Millis,
    /// A replica following the control topic: a rule switch does not start
    /// the realignment job here.
    follower: bool,
}

impl Controller {
    /// `base` is the rule set the pipeline was built with.
    pub fn new(inbox: Option<ControlInbox>, base: Arc<RuleSet>, realign_rate_per_sec: u32) -> Self {
        Controller {
            inbox,
            base,
            overrides: BTreeMap::new(),
            pacer: Pacer::new(realign_rate_per_sec),
            job: None,
            next_sync: Millis::MIN,
            sync_ctx: None,
            syncing: None,
            sync_pacer: Pacer::new(realign_rate_per_sec),
            next_resync_check: Millis::MIN,
            follower: false,
        }
    }

    /// The controller of a replica that follows the control topic
    /// ([`Self::follow`]) instead of taking commands.
    pub fn follower(base: Arc<RuleSet>) -> Self {
        Controller {
            follower: true,
            ..Controller::new(None, base, 1)
        }
    }

    /// Applies a message read from the control topic: records it in the
    /// store, switches the rules or the overrides, and for an offboarding
    /// answers the events that take the rep off the open records this
    /// store shows on them (`id` names the message, for stable event ids).
    pub fn follow(
        &mut self,
        p: &mut Pipeline,
        message: &ControlMessage,
        id: &str,
        now: Millis,
    ) -> Result<Vec<ChangeEvent>, ServiceError> {
        let store = p.store().clone();
        let mut b = store.batch();
        record(&store, &mut b, message)?;
        store.commit(b)?;
        self.overrides = store
            .admin_all::<RepOverride>(OVERRIDE)?
            .into_iter()
            .collect();
        self.apply(p);
        self.sync(p, now)?;
        let ControlCommand::Offboard { rep, by, .. } = &message.command else {
            return Ok(Vec::new());
        };
        let note = format!("offboard: {rep} offboarded by {by}; open records re-decided");
        let events: Vec<ChangeEvent> = owned_by(&store, rep)?
            .iter()
            .map(|r| {
                let event_id = format!("offboard:{rep}:{}:{id}", r.id);
                let crm = crate::pipeline::crm_of(r).unwrap_or(allot_core::Crm::Native);
                ChangeEvent::owner_withdrawn(r.object, &r.id, crm, rep, &note, &event_id, now)
            })
            .collect();
        info!(rep = %rep, by = %by, records = events.len(), "offboarded: open records held here sent to be decided again");
        Ok(events)
    }

    /// Loads overrides, an unfinished realignment job and the active version.
    pub fn start(&mut self, p: &mut Pipeline, now: Millis) -> Result<(), ServiceError> {
        self.overrides = p
            .store()
            .admin_all::<RepOverride>(OVERRIDE)?
            .into_iter()
            .collect();
        self.job = p
            .store()
            .admin_get::<RealignJob>(JOB, REALIGN_JOB)?
            .filter(|j| j.finished_at.is_none());
        if let Some(j) = &self.job {
            info!(to = %j.to_version, scanned = j.scanned, "realignment resumes");
        }
        self.apply(p);
        self.sync(p, now)?;
        self.resume_sync(p)?;
        Ok(())
    }

    /// Hands the command inbox over (to a controller that replaces this one).
    pub fn take_inbox(&mut self) -> Option<ControlInbox> {
        self.inbox.take()
    }

    /// Whether a realignment is under way (the owner should come back soon).
    pub fn busy(&self) -> bool {
        self.job.is_some() || self.syncing.is_some()
    }

    /// The realignment in progress, if any.
    pub fn job(&self) -> Option<&RealignJob> {
        self.job.as_ref()
    }

    /// Waits for the next command (never resolves without an inbox).
    pub async fn next(&mut self) -> Option<Envelope> {
        match &mut self.inbox {
            Some(i) => i.0.recv().await,
            None => std::future::pending().await,
        }
    }

    /// A command already waiting, if any.
    pub fn try_next(&mut self) -> Option<Envelope> {
        self.inbox.as_mut().and_then(|i| i.0.try_recv().ok())
    }

    fn apply(&self, p: &mut Pipeline) {
        p.set_rules(Arc::new(with_overrides(&self.base, &self.overrides)));
    }

    /// Switches to the version in force at `now` when it changed, and starts
    /// the realignment; at most once a second unless `force`d.
    pub fn sync(&mut self, p: &mut Pipeline, now: Millis) -> Result<bool, ServiceError> {
        self.next_sync = now + 1000;
        let store = p.store().clone();
        let Some(active) = store.active_rule_version(now)? else {
            return Ok(false);
        };
        let applied: Option<String> = store.admin_get(JOB, APPLIED)?;
        if active.version_id == self.base.version && applied.as_deref() == Some(&active.version_id)
        {
            return Ok(false);
        }
        if active.version_id != self.base.version {
            let rules = RuleSet::from_toml(&active.toml, &active.version_id).map_err(|e| {
                ServiceError::Invalid {
                    what: format!("rule version {}", active.version_id),
                    detail: e.to_string(),
                }
            })?;
            self.base = Arc::new(rules);
            self.apply(p);
        }
        let mut b = store.batch();
        b.admin_put(JOB, APPLIED, json!(active.version_id));
        if self.follower {
            info!(to = %active.version_id, "rules switched (control topic)");
        } else if let Some(from) = applied.filter(|a| *a != active.version_id) {
            let job = RealignJob {
                v: 1,
                from_version: from,
                to_version: active.version_id.clone(),
                activated_by: active.activated_by.clone().unwrap_or_default(),
                started_at: now,
                cursor: None,
                scanned: 0,
                moved: 0,
                finished_at: None,
            };
            info!(from = %job.from_version, to = %job.to_version, "rules switched; realignment starts");
            b.admin_put(JOB, REALIGN_JOB, json!(job));
            self.job = Some(job);
        }
        store.commit(b)?;
        Ok(true)
    }

    /// Syncs when a second has passed since the last check.
    pub fn maybe_sync(&mut self, p: &mut Pipeline, now: Millis) -> Result<bool, ServiceError> {
        if now < self.next_sync {
            return Ok(false);
        }
        self.sync(p, now)
    }

    /// Re-decides the records the pacer allows at `now` (see [`Self::realign_chunk`]).
    pub fn realign_paced(&mut self, p: &mut Pipeline, now: Millis) -> Result<Staged, ServiceError> {
        if self.job.is_none() {
            return Ok(Staged::default());
        }
        let n = self.pacer.grant(now);
        self.realign_chunk(p, n, now)
    }

    /// Re-decides up to `max` known records under the active rules; the
    /// batch also moves the job's cursor. Empty when there is no job.
    pub fn realign_chunk(
        &mut self,
        p: &mut Pipeline,
        max: usize,
        now: Millis,
    ) -> Result<Staged, ServiceError> {
        let mut out = Staged {
            batch: p.store().batch(),
            ..Staged::default()
        };
        let Some(mut job) = self.job.clone() else {
            return Ok(out);
        };
        if max == 0 {
            return Ok(out);
        }
        let after = job.cursor.as_ref().map(|(o, id)| (*o, id.as_str()));
        let records = p.store().records_after(after, max)?;
        let reason = format!(
            "rules: version {} → {} activated by {}; known records re-evaluated",
            job.from_version, job.to_version, job.activated_by
        );
        for record in &records {
            job.scanned += 1;
            job.cursor = Some((record.object, record.id.clone()));
            if record.deleted {
                continue;
            }
            let event = format!("realign:{}:{}", job.to_version, record.id);
            if redecide(p, &mut out, record.clone(), &reason, &event, now)?.is_some() {
                job.moved += 1;
            }
        }
        if records.len() < max {
            job.finished_at = Some(now);
            info!(to = %job.to_version, scanned = job.scanned, moved = job.moved, "realignment finished");
        }
        out.batch.admin_put(JOB, REALIGN_JOB, json!(job));
        self.job = job.finished_at.is_none().then_some(job);
        Ok(out)
    }

    /// Applies one command; the batch to commit (with the moves it made) and
    /// the answer.
    pub fn handle(
        &mut self,
        p: &mut Pipeline,
        message: &ControlMessage,
        now: Millis,
    ) -> Result<(Staged, Reply), ServiceError> {
        let mut out = Staged {
            batch: p.store().batch(),
            ..Staged::default()
        };
        if message.v != CONTROL_VERSION {
            let why = format!(
                "control message version {} (this build reads {CONTROL_VERSION})",
                message.v
            );
            return Ok((out, Err(why)));
        }
        let reply = match &message.command {
            ControlCommand::ActivateRules {
                version_id,
                effective_at,
                by,
                ..
            } => {
                let store = p.store().clone();
                let Some(v) = store.rule_version(version_id)? else {
                    return Ok((out, Err(format!("no rule version {version_id:?}"))));
                };
                store.put_rule_version(version_id, &v.toml, *effective_at, Some(by))?;
                self.sync(p, now)?;
                Ok(json!({
                    "version_id": version_id,
                    "effective_at": effective_at,
                    "active_version": self.base.version,
                    "realignment": self.job,
                }))
            }
            ControlCommand::SetRepOverride { rep, over, by } => {
                if self.base.rep(rep).is_none() {
                    return Ok((out, Err(format!("no rep {rep:?} in the active rules"))));
                }
                self.set_override(&mut out, rep, over.clone());
                self.apply(p);
                info!(rep = %rep, by = %by, "rep override set");
                Ok(json!({ "rep": rep, "override": over }))
            }
            ControlCommand::Offboard { rep, by, .. } => {
                if self.base.rep(rep).is_none() {
                    return Ok((out, Err(format!("no rep {rep:?} in the active rules"))));
                }
                let mut over = self.overrides.get(rep).cloned().unwrap_or_default();
                over.active = Some(false);
                self.set_override(&mut out, rep, over);
                self.apply(p);
                let reason = format!("offboard: {rep} offboarded by {by}; open records re-decided");
                let mut moves = Vec::new();
                for record in owned_by(p.store(), rep)? {
                    let event = format!("offboard:{rep}:{}:{now}", record.id);
                    match redecide(p, &mut out, record.clone(), &reason, &event, now)? {
                        Some(d) => moves.push(json!({"id": d.record_id, "object": d.object,
                            "to_owner": d.owner, "territory": d.territory})),
                        None => {
                            warn!(record_id = %record.id, rep = %rep, "offboard: record stays (nobody else can take it)")
                        }
                    }
                }
                Ok(json!({ "rep": rep, "moved": moves }))
            }
            ControlCommand::Redecide { records, by } => {
                redecide_records(p, &mut out, records, by, now)?
            }
            ControlCommand::Sync { plan, by } => self.start_sync(p, &mut out, plan, by, now)?,
        };
        Ok((out, reply))
    }

    fn set_override(&mut self, out: &mut Staged, rep: &str, over: RepOverride) {
        if over.is_empty() {
            self.overrides.remove(rep);
            out.batch.admin_put(OVERRIDE, rep, Value::Null);
        } else {
            out.batch.admin_put(OVERRIDE, rep, json!(over));
            self.overrides.insert(rep.to_string(), over);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_are_versioned_json() {
        let m = ControlMessage {
            v: CONTROL_VERSION,
            command: ControlCommand::Offboard {
                rep: "ana".into(),
                by: "ops".into(),
                over: None,
            },
        };
        let text = serde_json::to_string(&m).unwrap();
        assert_eq!(
            text,
            r#"{"v":1,"command":"offboard","rep":"ana","by":"ops"}"#
        );
        assert_eq!(serde_json::from_str::<ControlMessage>(&text).unwrap(), m);
    }
}
