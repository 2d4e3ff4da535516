//! Settling a call: one store batch with the outcome of every record, then
//! metrics, retries, fences, pauses and the re-route log.

use allot_crm::limiter::{PauseReason, Pressure};
use allot_store::OutboxKey;

use super::batcher::Candidate;
use super::lane::{blocking, CallReport};
use super::retry::{settle, Verdict};
use super::{Writer, WriterError};

/// What each store operation of the settle batch was for, in batch order.
enum Mark {
    Skipped,
    Done,
    Fail {
        label: &'static str,
        reason: String,
        reroute: bool,
    },
}

impl Writer {
    /// Applies the outcome of one call.
    pub(super) async fn settle(&mut self, report: CallReport) -> Result<(), WriterError> {
        let now = self.now();
        let crm = report.crm;
        let label = crm.as_str();
        self.book.release(&report.items);
        let Some(li) = self.lane_index(crm) else {
            return Ok(());
        };
        self.lanes[li].in_calls = self.lanes[li].in_calls.saturating_sub(1);
        if let Some(e) = report.store_error {
            return self.store_failed(e, report.items, now);
        }
        let pressure = self.lanes[li].budget.observe(report.limit_info);
        if !report.probed.is_empty() {
            let lifted = report
                .probed
                .iter()
                .filter(|(key, owner)| self.book.probed(key, owner.as_deref()))
                .count();
            tracing::debug!(%crm, object = %report.object, probed = report.probed.len(), lifted, "fenced records read");
            self.metrics
                .fences_lifted
                .with_label_values(&[label])
                .inc_by(lifted as u64);
            return Ok(());
        }
        if let Some(h) = self.lanes[li].budget.headroom() {
            self.metrics
                .rate_headroom
                .with_label_values(&[label])
                .set(h);
        }
        if let Some(Pressure::DailyQuota { used, max }) = pressure {
            self.quota_stop(li, &format!("daily api usage {used} of {max}"));
        }
        let mut ops: Vec<(Candidate, Mark)> = report
            .skipped
            .into_iter()
            .map(|c| (c, Mark::Skipped))
            .collect();
        let mut retries = Vec::new();
        if let Some(result) = report.result {
            let ids: Vec<&str> = report
                .sent
                .iter()
                .map(|c| c.entry.change.record_id.as_str())
                .collect();
            let errors: Vec<u32> = report.sent.iter().map(|c| c.errors).collect();
            let s = settle(&self.policy, &ids, &errors, &result, &mut self.jitter);
            self.metrics
                .calls
                .with_label_values(&[label, s.outcome])
                .inc();
            self.metrics
                .call_seconds
                .with_label_values(&[label])
                .observe(report.elapsed.as_secs_f64());
            match (&result, s.pause) {
                (Err(e), Some((ms, PauseReason::QuotaExhausted))) => {
                    self.lanes[li]
                        .budget
                        .pause_for(ms, PauseReason::QuotaExhausted);
                    self.quota_stop(li, &e.to_string());
                }
                (Err(e), pause) => {
                    if let Some((ms, reason)) = pause {
                        let ms = self.rate_limit_pause(li, ms, reason);
                        self.lanes[li].budget.pause_for(ms, reason);
                    }
                    tracing::warn!(%crm, object = %report.object, records = ids.len(), outcome = s.outcome, error = %e, "crm call failed");
                }
                (Ok(_), _) => {
                    self.lanes[li].strikes = 0;
                    if pressure.is_none() {
                        self.quota_clear(li);
                    }
                }
            }
            tracing::debug!(%crm, object = %report.object, records = ids.len(), outcome = s.outcome, elapsed_ms = report.elapsed.as_millis() as u64, "crm call settled");
            let until = now + self.config.in_flight_timeout_ms;
            for (c, v) in report.sent.into_iter().zip(s.verdicts) {
                if s.fence {
                    let ch = &c.entry.change;
                    self.book.fence(c.key(), ch.decided_at, &ch.owner, until);
                }
                match v {
                    Verdict::Done => ops.push((c, Mark::Done)),
                    Verdict::Retry {
                        after_ms,
                        counts,
                        reason,
                    } => retries.push((c, after_ms, counts, reason)),
                    Verdict::Fail {
                        reason,
                        label,
                        reroute,
                    } => ops.push((
                        c,
                        Mark::Fail {
                            label,
                            reason,
                            reroute,
                        },
                    )),
                }
            }
        }
        for (mut c, after_ms, counts, reason) in retries {
            tracing::debug!(%crm, record_id = %c.entry.change.record_id, attempt = c.entry.attempts, after_ms, reason = %reason, "owner change will be retried");
            self.metrics.retries.with_label_values(&[label]).inc();
            c.errors = c.errors.saturating_add(u32::from(counts));
            self.book.retry(c, now + after_ms);
        }
        self.commit_marks(crm, ops, now).await
    }

    /// Commits done / failed marks and the echo ledger in one store batch.
    async fn commit_marks(
        &mut self,
        crm: allot_core::Crm,
        ops: Vec<(Candidate, Mark)>,
        now: u64,
    ) -> Result<(), WriterError> {
        if ops.is_empty() {
            return Ok(());
        }
        let wall = crate::now_ms();
        let mut batch = self.store.batch();
        for (c, mark) in &ops {
            let ch = &c.entry.change;
            let key = OutboxKey::of(ch);
            match mark {
                Mark::Skipped => batch.outbox_mark_done(&key, ch.decided_at),
                Mark::Done => batch.outbox_mark_done(&key, ch.decided_at).record_write(
                    ch.object,
                    &ch.record_id,
                    &ch.owner,
                    wall,
                ),
                Mark::Fail {
                    label,
                    reason,
                    reroute,
                } => {
                    batch.outbox_fail(&key, ch.decided_at, label, reason, wall);
                    if let Some(log) = self.config.reroute_log.as_deref().filter(|_| *reroute) {
                        let event = allot_core::ChangeEvent::owner_refused(ch, reason, wall);
                        // A struct of strings: serialising it cannot fail.
                        if let Ok(bytes) = serde_json::to_vec(&event) {
                            batch.log_append(log, &bytes);
                        }
                    }
                    &mut batch
                }
            };
        }
        let store = self.store.clone();
        let applied = match blocking("settle", move || store.commit(batch)).await {
            Ok(receipt) => receipt.outbox_updates,
            Err(e) => {
                let items = ops.into_iter().map(|(c, _)| c).collect();
                return self.store_failed(e, items, now);
            }
        };
        let label = crm.as_str();
        for ((c, mark), applied) in ops.into_iter().zip(applied) {
            let ch = c.entry.change;
            match mark {
                Mark::Skipped => self.metrics.skipped.with_label_values(&[label]).inc(),
                Mark::Done => self
                    .metrics
                    .changes_written
                    .with_label_values(&[label])
                    .inc(),
                Mark::Fail {
                    label: reason_label,
                    reason,
                    reroute,
                } => {
                    self.metrics
                        .failed
                        .with_label_values(&[label, reason_label])
                        .inc();
                    tracing::warn!(%crm, record_id = %ch.record_id, owner = %ch.owner, event_id = %ch.event_id, reason = %reason, applied, "owner change failed");
                    if reroute && self.config.reroute_log.is_some() {
                        tracing::info!(%crm, record_id = %ch.record_id, owner = %ch.owner, "inactive owner: the record goes back to the engine");
                    }
                }
            }
        }
        Ok(())
    }

    /// A store failure around a call: retry the items later if the store
    /// says it may pass, stop otherwise. Writes already made are repeated
    /// (same owner, no harm).
    fn store_failed(
        &mut self,
        e: WriterError,
        items: Vec<Candidate>,
        now: u64,
    ) -> Result<(), WriterError> {
        if !e.retryable() {
            return Err(e);
        }
        tracing::warn!(error = %e, records = items.len(), "store failed around a crm call, retrying");
        for c in items {
            self.book.retry(c, now + self.config.backoff_base_ms);
        }
        Ok(())
    }

    /// How long a 429 pauses lane `li`: what the CRM asked, and longer with
    /// every 429 in a row (exponential backoff with jitter).
    fn rate_limit_pause(&mut self, li: usize, asked_ms: u64, reason: PauseReason) -> u64 {
        if reason != PauseReason::RateLimited {
            return asked_ms;
        }
        let lane = &mut self.lanes[li];
        let strikes = lane.strikes;
        lane.strikes = strikes.saturating_add(1);
        let backoff = self.policy.backoff.delay(strikes, self.jitter.next());
        asked_ms.max(u64::try_from(backoff.as_millis()).unwrap_or(u64::MAX))
    }

    /// Stops writing to lane `li` for its quota: alert once, gauge up.
    fn quota_stop(&mut self, li: usize, why: &str) {
        let pause = self.config.quota_pause_ms;
        let lane = &mut self.lanes[li];
        lane.budget.pause_for(pause, PauseReason::QuotaExhausted);
        self.metrics
            .quota_exhausted
            .with_label_values(&[lane.crm.as_str()])
            .set(1);
        if !lane.quota_alert {
            lane.quota_alert = true;
            tracing::error!(crm = %lane.crm, pause_secs = pause / 1000, reason = %why, "crm daily quota exhausted, writing stopped");
        }
    }

    fn quota_clear(&mut self, li: usize) {
        let lane = &mut self.lanes[li];
        if lane.quota_alert {
            lane.quota_alert = false;
            self.metrics
                .quota_exhausted
                .with_label_values(&[lane.crm.as_str()])
                .set(0);
            tracing::info!(crm = %lane.crm, "crm quota available again, writing resumed");
        }
    }
}
