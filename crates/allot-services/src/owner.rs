//! What the process that owns the pipeline does between chunks, whichever
//! transport feeds it (the embedded log in [`crate::embedded`], Kafka in
//! [`crate::kafka`]): admin commands, rule switches, the paced realignment
//! and sync, hydrated records, SLA re-routes. Each is committed before the
//! next, and the writer is woken when owner changes were queued.

use allot_core::Millis;
use allot_store::Store;
use tokio::sync::Notify;

use crate::control::{Controller, Envelope};
use crate::pipeline::{Pipeline, Staged};
use crate::sla::SlaConfig;
use crate::ServiceError;

/// The pipeline and what its owner commits into.
pub(crate) struct Owner<'a> {
    pub pipeline: &'a mut Pipeline,
    pub store: &'a std::sync::Arc<Store>,
    pub outbox_ready: &'a Notify,
}

impl Owner<'_> {
    /// Commits `staged` (when it holds anything) and wakes the writer when
    /// it queued owner changes.
    async fn commit(&self, staged: Staged, what: &'static str) -> Result<(), ServiceError> {
        if staged.batch.is_empty() {
            return Ok(());
        }
        let changed = !staged.changes.is_empty();
        crate::pipeline::commit(self.store, staged.batch, what).await?;
        if changed {
            self.outbox_ready.notify_one();
        }
        Ok(())
    }

    /// Merges and decides the parked records whose reads landed; the number
    /// of decisions.
    pub async fn hydration_step(self, now: Millis) -> Result<usize, ServiceError> {
        let staged = self.pipeline.stage_hydrated(now)?;
        crate::trace::decision_spans(&staged);
        let n = staged.decisions.len();
        self.commit(staged, "hydrate").await?;
        Ok(n)
    }

    /// One SLA pass over assignments made since `from`; the re-routes.
    pub async fn sla_step(
        self,
        cfg: &SlaConfig,
        from: Millis,
        now: Millis,
    ) -> Result<usize, ServiceError> {
        let staged = self.pipeline.sla_stage(cfg, from, now)?;
        let n = staged.decisions.len();
        self.commit(staged, "sla").await?;
        Ok(n)
    }

    /// Applies waiting commands, switches rules when a scheduled version
    /// became effective, and re-decides what the realignment's and the
    /// sync's pace allow at `now`; the records moved.
    pub async fn control_step(
        self,
        c: &mut Controller,
        now: Millis,
    ) -> Result<usize, ServiceError> {
        let mut waiting = Vec::new();
        while let Some(e) = c.try_next() {
            waiting.push(e);
        }
        c.maybe_sync(self.pipeline, now)?;
        for e in waiting {
            let (staged, reply) = c.handle(self.pipeline, &e.message, now)?;
            self.commit(staged, "control").await?;
            if let Some(tx) = e.reply {
                let _ = tx.send(reply);
            }
        }
        let staged = c.realign_paced(self.pipeline, now)?;
        let moved = staged.changes.len();
        self.commit(staged, "control").await?;
        for staged in c.sync_step(self.pipeline, now)? {
            self.commit(staged, "control").await?;
        }
        Ok(moved)
    }

    /// Applies one command, commits its effects, then answers.
    pub async fn command(
        self,
        c: &mut Controller,
        envelope: Envelope,
        now: Millis,
    ) -> Result<(), ServiceError> {
        let (staged, reply) = c.handle(self.pipeline, &envelope.message, now)?;
        self.commit(staged, "control").await?;
        if let Some(tx) = envelope.reply {
            let _ = tx.send(reply);
        }
        Ok(())
    }
}

/// When the SLA scan runs next and from where: assignments older than the
/// last window's end are final.
pub(crate) struct SlaClock {
    pub from: Millis,
    pub next: tokio::time::Instant,
}

impl SlaClock {
    pub fn new(now: Millis) -> SlaClock {
        SlaClock {
            from: now - 24 * 3_600_000,
            next: tokio::time::Instant::now(),
        }
    }

    /// Whether a scan is due; when it is, the window it covers is taken.
    pub fn due(&mut self, cfg: &SlaConfig, now: Millis) -> Option<Millis> {
        if !cfg.enabled || tokio::time::Instant::now() < self.next {
            return None;
        }
        let from = self.from;
        self.from = now - i64::try_from(cfg.untouched_minutes).unwrap_or(60) * 60_000;
        self.next = tokio::time::Instant::now()
            + std::time::Duration::from_secs(cfg.scan_interval_secs.max(1));
        Some(from)
    }
}
