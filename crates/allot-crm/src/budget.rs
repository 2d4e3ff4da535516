//! One request budget per CRM connection, shared by everything that calls
//! that CRM: the writer's owner updates, hydration reads, backfill and
//! reconcile. A CRM counts every call against one limit (HubSpot's rolling
//! 10 s window and daily cap, Salesforce's daily API requests), so the
//! callers must draw from one pacer, or together they overrun it.
//!
//! A [`Budget`] wraps the pure [`Limiter`] (token bucket under a
//! rolling-window log, pauses, adaptation to limit headers) with a lock and
//! its own monotonic clock, so callers on different tasks agree on time.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use allot_core::Crm;
use tokio::time::Instant;

use crate::limiter::{Limiter, PauseReason, Pressure, RateConfig};
use crate::{CrmClient, LimitInfo};

/// Longest single sleep of [`Budget::acquire`]: a pause lifted early (or a
/// slot freed by a lowered limit) is noticed within this.
const MAX_NAP_MS: u64 = 250;

/// The pacing of one CRM connection.
#[derive(Debug)]
pub struct Budget {
    crm: Crm,
    epoch: Instant,
    limiter: Mutex<Limiter>,
}

impl Budget {
    /// A budget paced by `rate`.
    pub fn new(crm: Crm, rate: &RateConfig) -> Arc<Budget> {
        Arc::new(Budget {
            crm,
            epoch: Instant::now(),
            limiter: Mutex::new(Limiter::new(crm, rate, 0)),
        })
    }

    pub fn crm(&self) -> Crm {
        self.crm
    }

    /// Milliseconds on this budget's clock.
    pub fn now(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn lock(&self) -> MutexGuard<'_, Limiter> {
        self.limiter.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes `n` call slots now, or says how many milliseconds to wait.
    pub fn try_acquire(&self, n: u32) -> Result<(), u64> {
        let now = self.now();
        self.lock().try_acquire(n, now)
    }

    /// Waits until `n` call slots are free and takes them.
    pub async fn acquire(&self, n: u32) {
        loop {
            match self.try_acquire(n) {
                Ok(()) => return,
                Err(wait) => {
                    tokio::time::sleep(Duration::from_millis(wait.clamp(1, MAX_NAP_MS))).await
                }
            }
        }
    }

    /// Adapts to the limit headers of an answer (pass the client's
    /// `limit_info()` after every call). Says when the daily quota is spent
    /// up to the configured stop fraction.
    pub fn observe(&self, info: Option<LimitInfo>) -> Option<Pressure> {
        let now = self.now();
        self.lock().observe(info, now)
    }

    /// Stops every caller for `ms` (a later pause wins over an earlier one).
    pub fn pause_for(&self, ms: u64, reason: PauseReason) {
        let now = self.now();
        self.lock().pause(now.saturating_add(ms), reason);
    }

    /// Why calls are paused now and for how many more milliseconds.
    pub fn paused(&self) -> Option<(PauseReason, u64)> {
        let now = self.now();
        self.lock().paused(now)
    }

    /// Calls allowed per rolling 10 s now.
    pub fn per_10s(&self) -> u32 {
        self.lock().per_10s()
    }

    /// The last headroom the CRM reported.
    pub fn headroom(&self) -> Option<i64> {
        self.lock().headroom()
    }
}

/// Where the pacing of each CRM connection is configured (the writer's
/// configuration).
pub trait Rates {
    /// The pacing configured for `crm`.
    fn rate(&self, crm: Crm) -> &RateConfig;
}

/// The budgets of every configured CRM connection.
#[derive(Debug, Clone, Default)]
pub struct Budgets {
    by_crm: HashMap<Crm, Arc<Budget>>,
}

impl Budgets {
    /// One budget per client, paced as `config` says.
    pub fn new(clients: &[CrmClient], config: &impl Rates) -> Budgets {
        Budgets {
            by_crm: clients
                .iter()
                .map(|c| (c.crm(), Budget::new(c.crm(), config.rate(c.crm()))))
                .collect(),
        }
    }

    pub fn get(&self, crm: Crm) -> Option<Arc<Budget>> {
        self.by_crm.get(&crm).cloned()
    }
}
