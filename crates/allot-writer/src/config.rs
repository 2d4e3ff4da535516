//! The writer's configuration: serde with defaults, checked by `validate`.

use allot_core::Crm;
use allot_crm::budget::Rates;
use allot_crm::limiter::RateConfig;
use serde::{Deserialize, Serialize};

use super::error::WriterError;

/// How the writer batches, paces and retries. Every field has a default.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WriterConfig {
    /// How long a partial batch waits for more changes before it is sent.
    pub linger_ms: u64,
    /// Fewer records per call than the CRM allows (200 Salesforce, 100 HubSpot).
    pub max_batch: Option<usize>,
    /// Pending entries read from the outbox per pass (grows while the oldest
    /// entries are all held, e.g. behind a paused CRM).
    pub read_limit: usize,
    /// Failed attempts (rate limits and quota pauses excluded) before a
    /// change goes to the failed-writes table.
    pub max_attempts: u32,
    /// First retry waits up to this long; each further one doubles it.
    pub backoff_base_ms: u64,
    /// No backoff exceeds this (a longer `Retry-After` is still honoured).
    pub backoff_max_ms: u64,
    /// How long a sent call may still land in the CRM after its answer was
    /// lost (crash, timeout). A newer decision for the same record waits at
    /// most this long so it is never overtaken by the older write; less when
    /// a read of the record shows that the older write has landed. Keep it
    /// above the CRM clients' request timeout.
    pub in_flight_timeout_ms: u64,
    /// How long writing to a CRM stops after its daily quota ran out
    /// (Salesforce 403 `REQUEST_LIMIT_EXCEEDED`, HubSpot `DAILY` 429).
    pub quota_pause_ms: u64,
    /// How long writing to a CRM stops after it refused the credentials.
    pub auth_pause_ms: u64,
    /// On shutdown, wait this long for calls already sent to be answered.
    pub shutdown_grace_ms: u64,
    /// Seed of the backoff jitter (from the clock when absent).
    pub jitter_seed: Option<u64>,
    /// Pacing of Salesforce calls.
    pub salesforce: RateConfig,
    /// Pacing of HubSpot calls.
    pub hubspot: RateConfig,
    /// The store log a change refused for an inactive owner goes to, as a
    /// [`ChangeEvent::owner_refused`](allot_core::ChangeEvent::owner_refused)
    /// event, in the same commit as its failed write: the decider reads it
    /// from there (or a forwarder takes it to the events topic) and decides
    /// the record again without that owner. `None`: failed write only.
    #[serde(skip)]
    pub reroute_log: Option<String>,
}

impl Default for WriterConfig {
    fn default() -> Self {
        WriterConfig {
            linger_ms: 200,
            max_batch: None,
            read_limit: 2_000,
            max_attempts: 8,
            backoff_base_ms: 200,
            backoff_max_ms: 30_000,
            in_flight_timeout_ms: 60_000,
            quota_pause_ms: 15 * 60_000,
            auth_pause_ms: 60_000,
            shutdown_grace_ms: 30_000,
            jitter_seed: None,
            salesforce: RateConfig::for_crm(Crm::Salesforce),
            hubspot: RateConfig::for_crm(Crm::Hubspot),
            reroute_log: None,
        }
    }
}

impl WriterConfig {
    /// Every problem with the configuration at once.
    pub fn validate(&self) -> Result<(), WriterError> {
        let mut problems = Vec::new();
        if self.max_batch == Some(0) {
            problems.push("max_batch must be at least 1".to_string());
        }
        if self.read_limit == 0 {
            problems.push("read_limit must be at least 1".to_string());
        }
        if self.max_attempts == 0 {
            problems.push("max_attempts must be at least 1".to_string());
        }
        if self.backoff_base_ms > self.backoff_max_ms {
            problems.push("backoff_base_ms must not exceed backoff_max_ms".to_string());
        }
        self.salesforce.problems("salesforce", &mut problems);
        self.hubspot.problems("hubspot", &mut problems);
        if problems.is_empty() {
            Ok(())
        } else {
            Err(WriterError::Config { problems })
        }
    }

    /// The pacing configured for `crm`.
    pub fn rate(&self, crm: Crm) -> &RateConfig {
        match crm {
            Crm::Hubspot => &self.hubspot,
            _ => &self.salesforce,
        }
    }
}

/// The writer's pacing is every CRM connection's budget.
impl Rates for WriterConfig {
    fn rate(&self, crm: Crm) -> &RateConfig {
        WriterConfig::rate(self, crm)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_files_may_override_parts() {
        assert!(WriterConfig::default().validate().is_ok());
        let c: WriterConfig =
            serde_json::from_str(r#"{"linger_ms": 50, "hubspot": {"calls_per_10s": 190}}"#)
                .unwrap_or_default();
        assert_eq!(c.linger_ms, 50);
        assert_eq!(c.hubspot.calls_per_10s, 190);
        assert_eq!(c.hubspot.effective_per_10s(), 171);
        assert_eq!(c.salesforce.calls_per_10s, 200);
        assert!(serde_json::from_str::<WriterConfig>(r#"{"lingr_ms": 5}"#).is_err());
    }

    #[test]
    fn every_problem_is_reported() {
        let mut c = WriterConfig {
            max_batch: Some(0),
            max_attempts: 0,
            backoff_base_ms: 10,
            backoff_max_ms: 5,
            ..WriterConfig::default()
        };
        c.hubspot.utilisation = 1.5;
        c.salesforce.max_concurrent_calls = 0;
        let Err(WriterError::Config { problems }) = c.validate() else {
            panic!("config should be refused");
        };
        assert_eq!(
            problems,
            vec![
                "max_batch must be at least 1",
                "max_attempts must be at least 1",
                "backoff_base_ms must not exceed backoff_max_ms",
                "salesforce.max_concurrent_calls must be at least 1",
                "hubspot.utilisation must be in (0, 1]",
            ]
        );
    }
}
