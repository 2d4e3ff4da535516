//! CRM reads under the connection's request budget, retried the way the
//! writer retries: exponential backoff with jitter, `Retry-After` honoured,
//! a rate limit pausing every caller of the budget rather than just this one.

use std::future::Future;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use allot_crm::{Backoff, CrmClient, CrmError};

use allot_crm::{Budget, PauseReason};
use allot_writer::WriterConfig;

/// How reads are retried.
#[derive(Debug, Clone, Copy)]
pub struct ReadPolicy {
    pub backoff: Backoff,
    /// Calls made before the error is returned to the caller (rate limits
    /// count too: a read has a caller waiting, a write does not).
    pub max_attempts: u32,
    /// How long a spent daily quota pauses the budget.
    pub quota_pause_ms: u64,
}

impl ReadPolicy {
    /// The writer's backoff and attempts.
    pub fn from_writer(config: &WriterConfig) -> ReadPolicy {
        ReadPolicy {
            backoff: Backoff::new(
                Duration::from_millis(config.backoff_base_ms),
                Duration::from_millis(config.backoff_max_ms),
            ),
            max_attempts: config.max_attempts.max(1),
            quota_pause_ms: config.quota_pause_ms,
        }
    }
}

impl Default for ReadPolicy {
    fn default() -> Self {
        ReadPolicy::from_writer(&WriterConfig::default())
    }
}

/// Runs `call` (one CRM call of `client`) under `budget`: a slot before each
/// try, the answer's limit headers after it, retries while the error is
/// transient. `what` names the call in logs.
pub async fn retrying<T, F, Fut>(
    budget: &Budget,
    client: &CrmClient,
    policy: &ReadPolicy,
    what: &str,
    mut call: F,
) -> Result<T, CrmError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, CrmError>>,
{
    let mut attempt = 0u32;
    loop {
        budget.acquire(1).await;
        let result = call().await;
        budget.observe(client.limit_info());
        let e = match result {
            Ok(v) => return Ok(v),
            Err(e) => e,
        };
        if matches!(e, CrmError::QuotaExhausted { .. }) {
            budget.pause_for(policy.quota_pause_ms, PauseReason::QuotaExhausted);
        }
        attempt += 1;
        if !e.retryable() || attempt >= policy.max_attempts {
            return Err(e);
        }
        let rate_limited = matches!(e, CrmError::RateLimited { .. })
            || matches!(e, CrmError::Api { status: 429, .. });
        let wait = policy
            .backoff
            .delay_at_least(attempt - 1, jitter(), e.retry_after());
        let ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX);
        if rate_limited {
            // The CRM counts every caller of this connection: all wait.
            budget.pause_for(ms, PauseReason::RateLimited);
        }
        tracing::debug!(crm = %budget.crm(), call = what, attempt, wait_ms = ms, error = %e, "crm read failed, retrying");
        tokio::time::sleep(wait).await;
    }
}

/// A cheap, non-repeating jitter source (the retry spacing need not be
/// reproducible; the writer's seeded jitter is for its tests).
fn jitter() -> u64 {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    u64::from(nanos).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 11
}
