//! The writer: owner changes from the outbox to the CRM.
//!
//! One loop reads the oldest pending outbox entries, routes each to its CRM,
//! coalesces per record, groups by (CRM, object kind) into batches of the
//! CRM's size (200 Salesforce, 100 HubSpot), lets a partial batch linger for
//! `linger_ms`, takes a pacing slot, and hands the batch to a call task. The
//! task marks the batch in flight (one store batch), sends it, and reports
//! back; the loop settles the answer in one store batch: done (plus the echo
//! ledger), failed (with the CRM's message), or retried.
//!
//! **Pacing** ([`allot_crm::limiter`], through the CRM connection's
//! [`Budget`]): per CRM, a token bucket (at most `burst` calls
//! back to back, refilled at the configured rate) under a log of send times
//! that never lets more than `calls_per_10s × utilisation` calls into any
//! rolling 10 s window. The CRM's headers adapt it: a smaller HubSpot limit
//! than configured lowers the rate, a nearly empty window pauses briefly, a
//! daily quota used up to `daily_stop_fraction` stops the lane like a 403.
//!
//! **Retries** ([`retry`]): per record, lock contention and transient errors
//! back off exponentially with jitter; a whole call failing with 5xx or no
//! answer retries the batch the same way, honouring `Retry-After`. A 429
//! pauses the CRM's lane for `Retry-After` and is not counted as an attempt.
//! Salesforce `REQUEST_LIMIT_EXCEEDED` (and HubSpot's `DAILY` limit) stops
//! the lane for `quota_pause_ms`, raises `allot_writer_quota_exhausted`, logs
//! one error; one probe call follows each pause. Permanent per-record errors
//! go to the failed-writes table; an inactive owner also goes to the
//! `reroute` hook so the assign stage can decide again.
//!
//! **Exactly once in effect.** Setting an owner is idempotent, so the writer
//! delivers at least once and makes sure the newest decision lands last:
//! - a change is sent only after it is durably in flight; a crash leaves it
//!   in flight and the next start requeues it, so nothing is lost;
//! - done/failed marks name the decision (`decided_at`): a late answer for an
//!   older decision cannot settle a newer one, which is then still written;
//! - one record is never in two calls at once: a newer decision waits while
//!   the record is in a call of this process;
//! - a call whose answer was lost (crash, timeout) may still land: newer
//!   decisions for those records wait `in_flight_timeout_ms` (the requeued
//!   decision itself may go at once: it writes the same owner).
//!
//!   A fence ends early when a read of the record (a probe, batched, at most
//!   every 2 s) shows the owner of the write that was feared to land: it
//!   has landed and cannot land again.
//!
//! **Reading before writing**: current owners are read in batched reads
//! (`composite/sobjects`, `batch/read`: 2,000 or 100 ids per call) when a
//! read can replace the write (every record of the batch was thought to
//! have the owner already, or was sent before a restart) or when some
//! records of the batch were sent before a restart: those that landed are
//! not written twice. A matching owner is marked done without a write
//! (`allot_writer_skipped_total`).
//!
//! One writer runs per store.

mod apply;
mod batcher;
mod book;
mod config;
mod error;
mod lane;
mod metrics;
mod retry;

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use allot_core::{Crm, Millis};
use allot_crm::{Backoff, Budget, Budgets, CrmClient};
use allot_store::Store;
use tokio::sync::Notify;
use tokio::task::{Id, JoinSet};
use tokio::time::Instant;

pub use allot_crm::limiter::{Limiter, PauseReason, Pressure, RateConfig};
pub use config::WriterConfig;
pub use error::WriterError;
pub use metrics::WriterMetrics;

use batcher::Candidate as Item;
use book::Book;
use lane::{blocking, CallReport, Lane};
use retry::{Jitter, Policy};

/// Longest sleep between passes when nothing is due (a missed wake-up costs
/// at most this).
const POLL_MS: u64 = 1_000;
/// The read window grows up to this many times `read_limit` while all the
/// entries it holds are held back.
const READ_GROWTH: usize = 64;

/// Writes owner changes from the store's outbox to the CRMs.
pub struct Writer {
    store: Arc<Store>,
    lanes: Vec<Lane>,
    config: WriterConfig,
    metrics: WriterMetrics,
    policy: Policy,
    book: Book,
    jitter: Jitter,
    epoch: Instant,
    calls: JoinSet<CallReport>,
    /// Per call task: its CRM and items, to release them if it panics.
    tasks: HashMap<Id, (Crm, Vec<Item>)>,
    read_limit: usize,
    /// When changes nobody can write were last reported (once a minute).
    unrouted_warned_at: Option<u64>,
}

impl Writer {
    /// A writer for `clients` (one per CRM). Checks the configuration.
    pub fn new(
        store: Arc<Store>,
        clients: Vec<CrmClient>,
        config: WriterConfig,
        metrics: WriterMetrics,
    ) -> Result<Writer, WriterError> {
        config.validate()?;
        let mut problems = Vec::new();
        if clients.is_empty() {
            problems.push("no crm client given".to_string());
        }
        let epoch = Instant::now();
        let mut lanes: Vec<Lane> = Vec::new();
        for client in clients {
            let crm = client.crm();
            if lanes.iter().any(|l| l.crm == crm) {
                problems.push(format!("two clients for {crm}"));
                continue;
            }
            let rate = config.rate(crm);
            metrics
                .quota_exhausted
                .with_label_values(&[crm.as_str()])
                .set(0);
            lanes.push(Lane {
                crm,
                budget: Budget::new(crm, rate),
                max_batch: config
                    .max_batch
                    .map_or(client.max_batch(), |m| m.min(client.max_batch())),
                max_concurrent: rate.max_concurrent_calls,
                in_calls: 0,
                strikes: 0,
                quota_alert: false,
                client,
            });
        }
        if !problems.is_empty() {
            return Err(WriterError::Config { problems });
        }
        let seed = config.jitter_seed.unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64)
        });
        let policy = Policy {
            backoff: Backoff::new(
                Duration::from_millis(config.backoff_base_ms),
                Duration::from_millis(config.backoff_max_ms),
            ),
            max_attempts: config.max_attempts,
            quota_pause_ms: config.quota_pause_ms,
            auth_pause_ms: config.auth_pause_ms,
        };
        Ok(Writer {
            store,
            lanes,
            read_limit: config.read_limit,
            config,
            metrics,
            policy,
            book: Book::default(),
            jitter: Jitter::new(seed),
            epoch,
            calls: JoinSet::new(),
            tasks: HashMap::new(),
            unrouted_warned_at: None,
        })
    }

    /// Draws on `budgets` instead of budgets of its own, so reads made
    /// elsewhere (hydration, backfill) and these writes share each CRM's limit.
    pub fn share_budgets(mut self, budgets: &Budgets) -> Writer {
        for lane in &mut self.lanes {
            if let Some(b) = budgets.get(lane.crm) {
                lane.budget = b;
            }
        }
        self
    }

    /// Writes until `shutdown` completes, then waits up to
    /// `shutdown_grace_ms` for calls already sent and settles them. `wake`
    /// is notified when new changes are in the outbox (the writer also polls).
    pub async fn run(
        mut self,
        wake: Arc<Notify>,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), WriterError> {
        self.start().await?;
        tokio::pin!(shutdown);
        let mut stop_by: Option<u64> = None;
        loop {
            let now = self.now();
            let next = match stop_by {
                None => match self.pass().await {
                    Ok(wake) => wake.map_or(now + POLL_MS, |t| t.min(now + POLL_MS)),
                    Err(e) if e.retryable() => {
                        tracing::warn!(error = %e, "writer pass failed, trying again");
                        now + POLL_MS
                    }
                    Err(e) => return Err(e),
                },
                Some(_) if self.calls.is_empty() => break,
                Some(t) if t <= now => {
                    tracing::warn!(
                        calls = self.calls.len(),
                        "writer abandons calls at shutdown; they are requeued at the next start"
                    );
                    self.calls.abort_all();
                    break;
                }
                Some(t) => t,
            };
            let sleep = tokio::time::sleep_until(self.epoch + Duration::from_millis(next));
            tokio::select! {
                joined = self.calls.join_next_with_id(), if !self.calls.is_empty() => {
                    self.joined(joined).await?;
                }
                () = &mut shutdown, if stop_by.is_none() => {
                    tracing::info!(calls = self.calls.len(), "writer stopping");
                    stop_by = Some(self.now() + self.config.shutdown_grace_ms);
                }
                () = wake.notified(), if stop_by.is_none() => {}
                () = sleep => {}
            }
        }
        tracing::info!(
            retrying = self.book.retrying(),
            abandoned = self.book.calling(),
            "writer stopped"
        );
        Ok(())
    }

    /// Requeues what a previous run left in flight and fences it.
    async fn start(&mut self) -> Result<(), WriterError> {
        let store = self.store.clone();
        let requeued = blocking("requeue", move || store.outbox_requeue(i64::MAX)).await?;
        let store = self.store.clone();
        let open = blocking("read open", move || store.outbox_pending(usize::MAX)).await?;
        let until = self.now() + self.config.in_flight_timeout_ms;
        let fenced = self.book.fence_restart(&open, until);
        tracing::info!(requeued, open = open.len(), fenced, "writer started");
        for lane in &self.lanes {
            tracing::info!(crm = %lane.crm, calls_per_10s = lane.budget.per_10s(), max_batch = lane.max_batch, max_concurrent = lane.max_concurrent, "writer lane ready");
        }
        Ok(())
    }

    /// Reads pending changes and launches every batch that is ready and
    /// allowed. Returns when something becomes due, if it knows.
    async fn pass(&mut self) -> Result<Option<u64>, WriterError> {
        let now = self.now();
        let (limit, store) = (self.read_limit, self.store.clone());
        let pending = blocking("read pending", move || store.outbox_pending(limit)).await?;
        let full = pending.len() >= limit;
        let mut sel = self.book.select(pending, now);
        let mut wake = sel.wake;
        let crms: Vec<Crm> = self.lanes.iter().map(|l| l.crm).collect();
        let lanes = &mut self.lanes;
        sel.cands.retain(|c| {
            let Some(lane) = batcher::route(&c.entry.change, &crms)
                .and_then(|crm| lanes.iter_mut().find(|l| l.crm == crm))
            else {
                return true;
            };
            match lane.budget.paused() {
                Some((_, wait)) => {
                    wake = Some(wake.map_or(now + wait, |w| w.min(now + wait)));
                    false
                }
                None => true,
            }
        });
        let plan = batcher::plan(
            sel.cands,
            |crm| {
                self.lanes
                    .iter()
                    .find(|l| l.crm == crm)
                    .map(|l| l.max_batch)
            },
            self.config.linger_ms,
            now,
            false,
        );
        if plan.unrouted > 0 && self.unrouted_warned_at.is_none_or(|t| now >= t + 60_000) {
            self.unrouted_warned_at = Some(now);
            tracing::warn!(
                changes = plan.unrouted,
                "owner changes for a crm without a client are held"
            );
        }
        wake = [wake, plan.next_due].into_iter().flatten().min();
        let mut launched = 0;
        for batch in plan.ready {
            let Some(li) = self.lane_index(batch.crm) else {
                continue;
            };
            let reads = batch.reads();
            let lane = &mut self.lanes[li];
            if lane.in_calls >= lane.max_concurrent {
                continue;
            }
            let calls = 1 + lane::read_calls(&lane.client, reads);
            if let Err(wait) = lane
                .budget
                .try_acquire(u32::try_from(calls).unwrap_or(u32::MAX))
            {
                let at = now.saturating_add(wait);
                wake = Some(wake.map_or(at, |w| w.min(at)));
                continue;
            }
            lane.in_calls += 1;
            self.book.launch(&batch.items);
            let items = batch.items.clone();
            let task = lane::call(
                self.store.clone(),
                lane.client.clone(),
                batch,
                reads > 0,
                now_ms(),
            );
            let handle = self.calls.spawn(task);
            self.tasks.insert(handle.id(), (lane.crm, items));
            launched += 1;
        }
        self.launch_probes(sel.probe, &crms);
        let idle = self.lanes.iter().all(|l| l.in_calls == 0);
        self.read_limit = if full && launched == 0 && idle {
            (limit.saturating_mul(2)).min(self.config.read_limit.saturating_mul(READ_GROWTH))
        } else {
            self.config.read_limit
        };
        Ok(wake)
    }

    /// Settles a finished call task; releases the items of one that panicked.
    async fn joined(
        &mut self,
        joined: Option<Result<(Id, CallReport), tokio::task::JoinError>>,
    ) -> Result<(), WriterError> {
        match joined {
            Some(Ok((id, report))) => {
                self.tasks.remove(&id);
                self.settle(report).await
            }
            Some(Err(e)) => {
                if let Some((crm, items)) = self.tasks.remove(&e.id()) {
                    tracing::error!(%crm, records = items.len(), error = %e, "writer call task failed; its changes are retried");
                    self.book.release(&items);
                    let now = self.now();
                    if let Some(li) = self.lane_index(crm) {
                        self.lanes[li].in_calls = self.lanes[li].in_calls.saturating_sub(1);
                    }
                    for c in items {
                        self.book.retry(c, now + self.config.backoff_max_ms);
                    }
                }
                Ok(())
            }
            None => Ok(()),
        }
    }

    /// Reads the owners of fenced records, batched per CRM and object kind,
    /// when the lane has a free call and budget; a probe that cannot go now
    /// is offered again later (see [`book::PROBE_EVERY_MS`]).
    fn launch_probes(&mut self, probe: Vec<allot_store::OutboxEntry>, crms: &[Crm]) {
        let mut groups: std::collections::BTreeMap<(usize, allot_core::ObjectKind), Vec<_>> =
            std::collections::BTreeMap::new();
        for e in probe {
            let Some(li) = batcher::route(&e.change, crms).and_then(|c| self.lane_index(c)) else {
                continue;
            };
            groups
                .entry((li, e.change.object))
                .or_default()
                .push(allot_store::OutboxKey::of(&e.change));
        }
        for ((li, object), keys) in groups {
            let lane = &mut self.lanes[li];
            let calls = lane::read_calls(&lane.client, keys.len());
            if lane.in_calls >= lane.max_concurrent
                || lane
                    .budget
                    .try_acquire(u32::try_from(calls).unwrap_or(u32::MAX))
                    .is_err()
            {
                continue;
            }
            lane.in_calls += 1;
            let handle = self
                .calls
                .spawn(lane::probe(lane.client.clone(), object, keys));
            self.tasks.insert(handle.id(), (lane.crm, Vec::new()));
        }
    }

    fn lane_index(&self, crm: Crm) -> Option<usize> {
        self.lanes.iter().position(|l| l.crm == crm)
    }

    /// Monotonic milliseconds since the writer was built.
    fn now(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }
}

/// The wall clock, epoch milliseconds (the store's in-flight and done marks).
fn now_ms() -> Millis {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| {
        Millis::try_from(d.as_millis()).unwrap_or(Millis::MAX)
    })
}
