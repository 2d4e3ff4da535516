//! Pure settlement of one call: what to do with each record after the CRM
//! answered (or did not), and what the answer means for the CRM's lane.

use std::time::Duration;

use allot_crm::limiter::PauseReason;
use allot_crm::{Backoff, CrmError, RecordErrorKind, RecordResult};

/// What happens to one record of a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Written.
    Done,
    /// Send again after `after_ms`. `counts` says whether it is a failed
    /// attempt (towards `max_attempts`) or only waiting (rate limit, quota).
    Retry {
        after_ms: u64,
        counts: bool,
        reason: String,
    },
    /// Give up: to the failed-writes table with `reason`; `label` is the
    /// metric label; `reroute` asks the assign stage to decide again.
    Fail {
        reason: String,
        label: &'static str,
        reroute: bool,
    },
}

/// Everything one answer (or its absence) implies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settlement {
    /// One per record sent, in order.
    pub verdicts: Vec<Verdict>,
    /// Stop calling this CRM for a while.
    pub pause: Option<(u64, PauseReason)>,
    /// No answer came: the call may still land, so newer decisions for
    /// these records must wait (see `in_flight_timeout_ms`).
    pub fence: bool,
    /// The `outcome` label of `allot_writer_calls_total`.
    pub outcome: &'static str,
}

/// The knobs settlement needs.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    pub backoff: Backoff,
    pub max_attempts: u32,
    pub quota_pause_ms: u64,
    pub auth_pause_ms: u64,
}

/// Seeded jitter for backoff (SplitMix64): no global RNG, same seed, same delays.
#[derive(Debug, Clone)]
pub struct Jitter(u64);

impl Jitter {
    pub fn new(seed: u64) -> Jitter {
        Jitter(seed)
    }

    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Settles a call of `ids` (with each record's failed attempts so far in
/// `errors`) given its `result`.
pub fn settle(
    policy: &Policy,
    ids: &[&str],
    errors: &[u32],
    result: &Result<Vec<RecordResult>, CrmError>,
    jitter: &mut Jitter,
) -> Settlement {
    let mut retry = |i: usize, counts: bool, at_least: Option<Duration>, reason: String| {
        let attempt = errors.get(i).copied().unwrap_or(0);
        if counts && attempt.saturating_add(1) >= policy.max_attempts {
            return Verdict::Fail {
                reason: format!("gave up after {} attempts: {reason}", attempt + 1),
                label: "gave_up",
                reroute: false,
            };
        }
        let after = if counts {
            policy
                .backoff
                .delay_at_least(attempt, jitter.next(), at_least)
        } else {
            at_least.unwrap_or_default()
        };
        Verdict::Retry {
            after_ms: ms(after),
            counts,
            reason,
        }
    };
    let all = |f: &mut dyn FnMut(usize) -> Verdict| (0..ids.len()).map(f).collect::<Vec<_>>();
    let results = match result {
        Ok(results) => results,
        Err(e) => {
            let reason = e.to_string();
            let (pause, counts, wait, fence, outcome) = match e {
                CrmError::QuotaExhausted { .. } => {
                    let p = policy.quota_pause_ms;
                    (
                        Some((p, PauseReason::QuotaExhausted)),
                        false,
                        Some(p),
                        false,
                        "quota_exhausted",
                    )
                }
                CrmError::RateLimited { .. } if !e.retryable() => {
                    let p = policy.quota_pause_ms;
                    (
                        Some((p, PauseReason::QuotaExhausted)),
                        false,
                        Some(p),
                        false,
                        "quota_exhausted",
                    )
                }
                CrmError::RateLimited { .. } => {
                    let d = e
                        .retry_after()
                        .unwrap_or(policy.backoff.base)
                        .max(Duration::from_millis(1));
                    (
                        Some((ms(d), PauseReason::RateLimited)),
                        false,
                        Some(ms(d)),
                        false,
                        "rate_limited",
                    )
                }
                CrmError::Auth { .. } | CrmError::Config { .. } => {
                    let p = policy.auth_pause_ms;
                    (Some((p, PauseReason::Auth)), false, Some(p), false, "auth")
                }
                CrmError::Transport { .. } => (None, true, None, true, "transport"),
                CrmError::Decode { .. } => (None, true, None, false, "error"),
                _ if e.retryable() => {
                    let pause = e.retry_after().map(|d| (ms(d), PauseReason::RateLimited));
                    (pause, true, e.retry_after().map(ms), false, "error")
                }
                _ => {
                    let verdicts = all(&mut |_| Verdict::Fail {
                        reason: reason.clone(),
                        label: "rejected",
                        reroute: false,
                    });
                    return Settlement {
                        verdicts,
                        pause: None,
                        fence: false,
                        outcome: "rejected",
                    };
                }
            };
            let at_least = wait.map(Duration::from_millis);
            let verdicts = all(&mut |i| retry(i, counts, at_least, reason.clone()));
            return Settlement {
                verdicts,
                pause,
                fence,
                outcome,
            };
        }
    };
    let mut partial = false;
    let verdicts = all(&mut |i| {
        let Some(r) = results.get(i).filter(|r| r.id == ids[i]) else {
            partial = true;
            return retry(
                i,
                true,
                None,
                "the crm answered no result for the record".into(),
            );
        };
        let Some(err) = r.error.as_ref().filter(|_| !r.ok) else {
            return Verdict::Done;
        };
        partial = true;
        let reason = format!("{}: {}", err.code, err.message);
        if err.retryable {
            return retry(i, true, None, reason);
        }
        let label = match err.kind {
            RecordErrorKind::InactiveOwner => "inactive_owner",
            RecordErrorKind::InvalidReference => "invalid_reference",
            RecordErrorKind::NotFound => "not_found",
            _ => "rejected",
        };
        Verdict::Fail {
            reason,
            label,
            reroute: err.is_inactive_owner(),
        }
    });
    let outcome = if partial { "partial" } else { "ok" };
    Settlement {
        verdicts,
        pause: None,
        fence: false,
        outcome,
    }
}

#[cfg(test)]
#[path = "retry_tests.rs"]
mod tests;
