//! Sync runs in the pipeline's owner (`POST /api/sync`, and the resyncs
//! GAP_OVERFLOW and wildcard record ids request): the fetch tasks read
//! ahead under the request budget; the owner applies one page per step
//! between chunks, so events keep flowing while the book comes in. The run
//! is a job document ([`SYNC_RUN`]); with the per-object cursors it resumes
//! after a restart.

use allot_core::{Crm, Millis, ObjectKind};
use allot_store::JOB;
use serde_json::{json, Value};
use tokio::sync::mpsc::{self, error::TryRecvError};
use tracing::{info, warn};

use super::{Controller, Reply};
use crate::backfill::{
    self, Fetched, ResyncRequest, SyncCtx, SyncCursor, SyncPlan, SyncRun, RESYNC, SYNC_RUN,
};
use crate::pipeline::{BookRecord, Pipeline, Staged};
use crate::ServiceError;

/// How often pending resync requests are looked for.
const RESYNC_CHECK_MS: Millis = 5_000;
/// Pages applied per step at most (each is committed on its own).
const PAGES_PER_STEP: usize = 2;

/// The run in progress.
pub(super) struct Active {
    run: SyncRun,
    rx: mpsc::Receiver<Fetched>,
    /// A page whose decisions wait for the pacer: records left, its cursor.
    held: Option<(Crm, ObjectKind, Vec<BookRecord>, SyncCursor)>,
}

impl Controller {
    /// Lets this owner run syncs with `ctx`'s clients.
    pub fn with_sync(mut self, ctx: SyncCtx) -> Self {
        self.sync_ctx = Some(ctx);
        self
    }

    /// The sync run in progress, if any.
    pub fn sync_run(&self) -> Option<&SyncRun> {
        self.syncing.as_ref().map(|a| &a.run)
    }

    /// Picks up a run a previous process did not finish.
    pub(super) fn resume_sync(&mut self, p: &mut Pipeline) -> Result<(), ServiceError> {
        let run: Option<SyncRun> = p.store().admin_get(JOB, SYNC_RUN)?;
        let Some(run) = run.filter(|r| r.finished_at.is_none()) else {
            return Ok(());
        };
        if self.sync_ctx.is_none() {
            return Ok(());
        }
        info!(by = %run.by, targets = run.plan.targets.len(), "sync run resumes");
        self.spawn_run(p, run)?;
        Ok(())
    }

    fn spawn_run(&mut self, p: &Pipeline, run: SyncRun) -> Result<Value, ServiceError> {
        let Some(ctx) = &self.sync_ctx else {
            return Ok(Value::Null);
        };
        let starts = backfill::begin(p.store(), &run.plan, crate::now_ms())?;
        let objects: Vec<Value> = starts
            .iter()
            .map(|(crm, object, c, resumed)| {
                json!({"crm": crm, "object": object, "since": c.since, "resumed": resumed,
                       "records_so_far": c.records})
            })
            .collect();
        let rx = backfill::fetch(
            &ctx.clients,
            &ctx.budgets,
            ctx.policy,
            ctx.bulk_threshold,
            starts,
        );
        self.syncing = Some(Active {
            run,
            rx,
            held: None,
        });
        Ok(json!(objects))
    }

    /// `ControlCommand::Sync`: starts a run unless one is under way.
    pub(super) fn start_sync(
        &mut self,
        p: &mut Pipeline,
        out: &mut Staged,
        plan: &SyncPlan,
        by: &str,
        now: Millis,
    ) -> Result<Reply, ServiceError> {
        if let Some(a) = &self.syncing {
            return Ok(Err(format!(
                "a sync is already running (started by {} at {}); see GET /api/sync",
                a.run.by, a.run.started_at
            )));
        }
        if self.sync_ctx.is_none() {
            return Ok(Err(
                "no CRM clients in this process: nothing to sync from".into()
            ));
        }
        let run = SyncRun {
            plan: plan.clone(),
            by: by.to_string(),
            started_at: now,
            finished_at: None,
            error: None,
        };
        out.batch.admin_put(JOB, SYNC_RUN, json!(run));
        let objects = self.spawn_run(p, run.clone())?;
        info!(by = %by, targets = plan.targets.len(), decide = plan.decide, "sync run started");
        Ok(Ok(
            json!({"status": "started", "run": run, "objects": objects}),
        ))
    }

    /// Applies what the fetch tasks brought (a page or two), and starts the
    /// resync pending requests ask for when no run is under way. Each
    /// staged batch is to be committed in order.
    pub fn sync_step(
        &mut self,
        p: &mut Pipeline,
        now: Millis,
    ) -> Result<Vec<Staged>, ServiceError> {
        let mut out = Vec::new();
        if self.syncing.is_none() {
            if now >= self.next_resync_check && self.sync_ctx.is_some() {
                self.next_resync_check = now + RESYNC_CHECK_MS;
                self.start_resync(p, &mut out, now)?;
            }
            return Ok(out);
        }
        for _ in 0..PAGES_PER_STEP {
            if let Some(staged) = self.paced(p, now)? {
                out.push(staged);
                if self.syncing.as_ref().is_some_and(|a| a.held.is_some()) {
                    break;
                }
                continue;
            }
            let Some(active) = self.syncing.as_mut() else {
                break;
            };
            if active.held.is_some() {
                // The held page goes first, at the pacer's rate.
                break;
            }
            match active.rx.try_recv() {
                Ok(Fetched::Page {
                    crm,
                    object,
                    records,
                    cursor,
                    ..
                }) => {
                    if cursor.decide {
                        active.held = Some((crm, object, records, cursor));
                        continue;
                    }
                    out.push(backfill::stage_page(
                        p,
                        crm,
                        object,
                        records,
                        Some(&cursor),
                        now,
                    )?);
                }
                Ok(Fetched::Users { crm, users }) => {
                    out.push(backfill::stage_users(p.store(), crm, &users));
                }
                Ok(Fetched::Failed { crm, error }) => {
                    warn!(%crm, error = %error, "sync run stopped; the next run resumes from its checkpoint");
                    out.push(self.finish(p, now, Some(format!("{crm} {error}"))));
                    break;
                }
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    info!("sync run finished");
                    out.push(self.finish(p, now, None));
                    break;
                }
            }
        }
        Ok(out)
    }

    /// The next piece of a held page, as the pacer allows; `None` when
    /// nothing is held or nothing is granted yet.
    fn paced(&mut self, p: &mut Pipeline, now: Millis) -> Result<Option<Staged>, ServiceError> {
        let Some(active) = self.syncing.as_mut() else {
            return Ok(None);
        };
        let Some((crm, object, records, _)) = active.held.as_mut() else {
            return Ok(None);
        };
        let (crm, object) = (*crm, *object);
        let n = self.sync_pacer.grant(now);
        if n == 0 {
            return Ok(None);
        }
        if n < records.len() {
            let rest = records.split_off(n);
            let piece = std::mem::replace(records, rest);
            // A piece to decide; the cursor comes with the last one.
            return Ok(Some(p.stage_book(piece, true, now)?));
        }
        let Some((_, _, records, cursor)) = active.held.take() else {
            return Ok(None);
        };
        Ok(Some(backfill::stage_page(
            p,
            crm,
            object,
            records,
            Some(&cursor),
            now,
        )?))
    }

    fn finish(&mut self, p: &Pipeline, now: Millis, error: Option<String>) -> Staged {
        let mut staged = Staged {
            batch: p.store().batch(),
            ..Staged::default()
        };
        if let Some(mut a) = self.syncing.take() {
            a.run.finished_at = Some(now);
            a.run.error = error;
            staged.batch.admin_put(JOB, SYNC_RUN, json!(a.run));
        }
        staged
    }

    /// Starts an incremental run of the objects pending requests name.
    fn start_resync(
        &mut self,
        p: &mut Pipeline,
        out: &mut Vec<Staged>,
        now: Millis,
    ) -> Result<(), ServiceError> {
        let pending: Vec<(String, ResyncRequest)> = p.store().admin_all(RESYNC)?;
        if pending.is_empty() {
            return Ok(());
        }
        let mut targets: Vec<(Crm, ObjectKind)> =
            pending.iter().map(|(_, r)| (r.crm, r.object)).collect();
        targets.sort_by_key(|(c, o)| (c.as_str(), o.as_str()));
        targets.dedup();
        let reasons: Vec<&str> = pending.iter().map(|(_, r)| r.reason.as_str()).collect();
        info!(objects = targets.len(), reasons = ?reasons, "resync requested by the CRM's change events");
        let plan = SyncPlan {
            targets,
            since: None,
            full: false,
            // Changes no event described: decided as events would have been.
            decide: true,
        };
        let mut staged = Staged {
            batch: p.store().batch(),
            ..Staged::default()
        };
        let reply = self.start_sync(p, &mut staged, &plan, "resync", now)?;
        if let Err(why) = reply {
            warn!(why = %why, "resync not started");
        }
        out.push(staged);
        Ok(())
    }
}
