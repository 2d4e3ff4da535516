//! Pacing of one CRM's calls: a token bucket for smoothness, a log of send
//! times as a hard cap per rolling 10 s, pauses (rate limit, quota, auth),
//! and adaptation to the limit headers the CRM answers with.
//!
//! Pure: time is a monotonic millisecond count passed by the caller.
//!
//! Why both: a bucket of capacity `b` refilled at `r` lets `b + r·10 s`
//! calls into one 10 s window, nearly twice the limit for a bucket sized to
//! the limit. The log never lets more than `per_10s` sends into any window;
//! the bucket spreads them (at most `burst` back to back) so the CRM sees a
//! steady rate instead of a burst followed by silence.

use std::collections::VecDeque;

use allot_core::Crm;
use serde::{Deserialize, Serialize};

use crate::{LimitInfo, TokenBucket};

/// The rolling window both HubSpot and the limiter count calls in.
pub const WINDOW_MS: u64 = 10_000;
/// Sends are kept this much longer than the window in the log: a call's
/// arrival may lag its send by more than a later call's does, and the CRM
/// counts arrivals.
const GUARD_MS: u64 = 100;
/// HubSpot: below this many calls left in the window, slow down.
const RESERVE: u64 = 2;

/// Pacing of one CRM's calls.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateConfig {
    /// Calls allowed per rolling 10 s (HubSpot: 100 Free/Starter, 190
    /// Professional/Enterprise; Salesforce has no such limit: a ceiling).
    pub calls_per_10s: u32,
    /// Fraction of `calls_per_10s` actually used: headroom for other
    /// clients of the same account and for clock skew.
    pub utilisation: f64,
    /// Calls that may go back to back; `calls_per_10s / 10` when absent.
    pub burst: Option<u32>,
    /// Calls to this CRM in flight at once.
    pub max_concurrent_calls: usize,
    /// Stop (as if the quota were spent) once this fraction of the daily
    /// quota the CRM reports is used, leaving the rest to people and other
    /// integrations.
    pub daily_stop_fraction: f64,
}

impl RateConfig {
    /// Defaults for `crm`: Salesforce 200 calls per 10 s, 2 at once;
    /// HubSpot the Free/Starter tier (100), one at a time.
    pub fn for_crm(crm: Crm) -> RateConfig {
        let (calls_per_10s, max_concurrent_calls) = match crm {
            Crm::Hubspot => (100, 1),
            _ => (200, 2),
        };
        RateConfig {
            calls_per_10s,
            utilisation: 0.9,
            burst: None,
            max_concurrent_calls,
            daily_stop_fraction: 0.98,
        }
    }

    /// Calls per 10 s actually used (at least one).
    pub fn effective_per_10s(&self) -> u32 {
        ((f64::from(self.calls_per_10s) * self.utilisation).floor() as u32).max(1)
    }

    /// Adds every problem with this configuration to `out`, each prefixed
    /// with `name`.
    pub fn problems(&self, name: &str, out: &mut Vec<String>) {
        if self.calls_per_10s == 0 {
            out.push(format!("{name}.calls_per_10s must be at least 1"));
        }
        if !(self.utilisation > 0.0 && self.utilisation <= 1.0) {
            out.push(format!("{name}.utilisation must be in (0, 1]"));
        }
        if self.burst == Some(0) {
            out.push(format!("{name}.burst must be at least 1"));
        }
        if self.max_concurrent_calls == 0 {
            out.push(format!("{name}.max_concurrent_calls must be at least 1"));
        }
        if !(self.daily_stop_fraction > 0.0 && self.daily_stop_fraction <= 1.0) {
            out.push(format!("{name}.daily_stop_fraction must be in (0, 1]"));
        }
    }
}

impl Default for RateConfig {
    fn default() -> Self {
        RateConfig::for_crm(Crm::Salesforce)
    }
}

/// Why a CRM is not being written to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PauseReason {
    /// 429 with (or without) `Retry-After`, or the headers said the window is full.
    RateLimited,
    /// The daily quota is spent (or nearly, see `daily_stop_fraction`).
    QuotaExhausted,
    /// The CRM refused the credentials.
    Auth,
}

/// Something the headers said that the caller must act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pressure {
    /// The daily quota is used up to the stop fraction.
    DailyQuota { used: u64, max: u64 },
}

/// The pacing state of one CRM.
#[derive(Debug, Clone)]
pub struct Limiter {
    crm: Crm,
    utilisation: f64,
    burst: Option<u32>,
    daily_stop_fraction: f64,
    /// Calls allowed per window: configured × utilisation, lowered when the
    /// CRM reports a smaller limit than configured.
    per_10s: u32,
    bucket: TokenBucket,
    /// Send times within the last window, oldest first.
    sent: VecDeque<u64>,
    paused: Option<(u64, PauseReason)>,
    /// Calls (HubSpot, this window) or requests (Salesforce, today) left.
    headroom: Option<i64>,
}

impl Limiter {
    pub fn new(crm: Crm, config: &RateConfig, now: u64) -> Limiter {
        let per_10s = config.effective_per_10s();
        Limiter {
            crm,
            utilisation: config.utilisation,
            burst: config.burst,
            daily_stop_fraction: config.daily_stop_fraction,
            per_10s,
            bucket: bucket(per_10s, config.burst, now),
            sent: VecDeque::new(),
            paused: None,
            headroom: None,
        }
    }

    /// Calls allowed per rolling 10 s now.
    pub fn per_10s(&self) -> u32 {
        self.per_10s
    }

    /// The last headroom the CRM reported, for the gauge.
    pub fn headroom(&self) -> Option<i64> {
        self.headroom
    }

    /// Why calls are paused at `now`, if they are.
    pub fn paused(&mut self, now: u64) -> Option<(PauseReason, u64)> {
        match self.paused {
            Some((until, reason)) if until > now => Some((reason, until - now)),
            Some(_) => {
                self.paused = None;
                None
            }
            None => None,
        }
    }

    /// Stops calls until `until` (a later pause wins over an earlier one).
    pub fn pause(&mut self, until: u64, reason: PauseReason) {
        if self.paused.is_none_or(|(u, _)| u < until) {
            self.paused = Some((until, reason));
        }
    }

    /// Takes `n` call slots at `now` (one call plus any reads before it), or
    /// says how many milliseconds to wait. `n` is capped at the window.
    pub fn try_acquire(&mut self, n: u32, now: u64) -> Result<(), u64> {
        if let Some((_, wait)) = self.paused(now) {
            return Err(wait);
        }
        let n = n.clamp(1, self.per_10s);
        while self
            .sent
            .front()
            .is_some_and(|t| now.saturating_sub(*t) >= WINDOW_MS + GUARD_MS)
        {
            self.sent.pop_front();
        }
        let over = (self.sent.len() + n as usize).saturating_sub(self.per_10s as usize);
        if over > 0 {
            // The `over`-th oldest send must leave the window first.
            let t = self.sent.get(over - 1).copied().unwrap_or(now);
            return Err((t + WINDOW_MS + GUARD_MS).saturating_sub(now).max(1));
        }
        let tokens = n.min(self.bucket_capacity());
        self.bucket.try_take_n(tokens, now)?;
        self.sent.extend(std::iter::repeat_n(now, n as usize));
        Ok(())
    }

    /// Adapts to the limit headers of the latest answer.
    pub fn observe(&mut self, info: Option<LimitInfo>, now: u64) -> Option<Pressure> {
        match info? {
            LimitInfo::Hubspot(rl) => {
                self.headroom = Some(i64::try_from(rl.remaining).unwrap_or(i64::MAX));
                self.adapt_window(rl.max, rl.interval_ms, now);
                if rl.remaining < RESERVE && rl.max > 0 {
                    let slot = rl.interval_ms.max(1) / rl.max;
                    self.pause(
                        now + slot * (RESERVE - rl.remaining),
                        PauseReason::RateLimited,
                    );
                }
                match (rl.daily, rl.daily_remaining) {
                    (Some(max), Some(left)) => self.daily(max.saturating_sub(left), max),
                    _ => None,
                }
            }
            LimitInfo::Salesforce { used, max } => {
                self.headroom = Some(max.saturating_sub(used).try_into().unwrap_or(i64::MAX));
                self.daily(used, max)
            }
        }
    }

    fn daily(&self, used: u64, max: u64) -> Option<Pressure> {
        let stop = (max as f64 * self.daily_stop_fraction).floor() as u64;
        (max > 0 && used >= stop).then_some(Pressure::DailyQuota { used, max })
    }

    /// Lowers the window when the CRM allows fewer calls than configured
    /// (never raises it above the configuration).
    fn adapt_window(&mut self, max: u64, interval_ms: u64, now: u64) {
        if max == 0 || interval_ms == 0 {
            return;
        }
        let per_10s = max as f64 * WINDOW_MS as f64 / interval_ms as f64;
        let allowed = ((per_10s * self.utilisation).floor() as u32).max(1);
        if allowed < self.per_10s {
            tracing::warn!(crm = %self.crm, configured = self.per_10s, allowed, "crm allows fewer calls than configured, slowing down");
            self.per_10s = allowed;
            self.bucket = bucket(allowed, self.burst, now);
        }
    }

    fn bucket_capacity(&self) -> u32 {
        burst_of(self.per_10s, self.burst)
    }
}

fn burst_of(per_10s: u32, burst: Option<u32>) -> u32 {
    burst
        .unwrap_or(per_10s.div_ceil(10))
        .clamp(1, per_10s.max(1))
}

/// Refilled at `(per_10s − burst) / 10 s` when the burst is small: a full
/// bucket spent at once plus ten seconds of refill is then exactly the
/// window's allowance, so a steady flow never runs into the window cap
/// (which would stall it for a second or more, until the oldest sends age
/// out). A burst of half the window or more asks for bursts on purpose: the
/// bucket refills at the full rate and the window log caps it.
fn bucket(per_10s: u32, burst: Option<u32>, now: u64) -> TokenBucket {
    let capacity = burst_of(per_10s, burst);
    let (refill, period) = if capacity.saturating_mul(2) >= per_10s {
        (per_10s, WINDOW_MS)
    } else {
        // Over the window plus the guard the log keeps sends for.
        (per_10s - capacity, WINDOW_MS + GUARD_MS)
    };
    TokenBucket::new(capacity, f64::from(refill) * 1000.0 / period as f64, now)
}

#[cfg(test)]
mod tests {
    use crate::HubSpotRateLimit;

    use super::*;

    fn rate(calls: u32, utilisation: f64, burst: Option<u32>) -> RateConfig {
        RateConfig {
            calls_per_10s: calls,
            utilisation,
            burst,
            ..RateConfig::for_crm(Crm::Hubspot)
        }
    }

    /// Greedy caller: at every millisecond, take a slot when one is there.
    fn sends(l: &mut Limiter, until: u64) -> Vec<u64> {
        (0..until)
            .filter(|t| l.try_acquire(1, *t).is_ok())
            .collect()
    }

    fn peak(times: &[u64]) -> usize {
        times
            .iter()
            .map(|t| {
                times
                    .iter()
                    .filter(|u| **u >= *t && **u < t + WINDOW_MS)
                    .count()
            })
            .max()
            .unwrap_or(0)
    }

    #[test]
    fn no_window_ever_holds_more_than_the_limit() {
        // (calls, utilisation, burst, window cap, total over 60 s at least)
        let cases = [
            (100, 0.9, None, 90, 5 * 90),
            (100, 1.0, Some(100), 100, 5 * 100),
            (10, 1.0, Some(5), 10, 5 * 10),
            (190, 0.9, None, 171, 5 * 171),
        ];
        for (calls, util, burst, cap, total) in cases {
            let mut l = Limiter::new(Crm::Hubspot, &rate(calls, util, burst), 0);
            let times = sends(&mut l, 60_000);
            assert!(
                peak(&times) <= cap,
                "{calls}/{util}/{burst:?}: {}",
                peak(&times)
            );
            assert!(times.len() >= total, "{calls}: only {}", times.len());
        }
    }

    #[test]
    fn a_greedy_flow_is_spread_and_never_stalls_on_the_window() {
        // Default burst (a tenth of the window): after the first burst the
        // sends come at the bucket's rate; no gap approaches the window's
        // "wait until the oldest send ages out" stall.
        for (calls, util) in [(200, 0.9), (100, 0.9), (190, 1.0)] {
            let mut l = Limiter::new(Crm::Salesforce, &rate(calls, util, None), 0);
            let times = sends(&mut l, 60_000);
            let per_10s = l.per_10s();
            let burst = u64::from(per_10s.div_ceil(10));
            let interval = (WINDOW_MS + GUARD_MS) / (u64::from(per_10s) - burst);
            let gap = times.windows(2).map(|w| w[1] - w[0]).max().unwrap_or(0);
            assert!(
                gap <= interval + 1,
                "{calls}/{util}: gap {gap} ms, interval {interval} ms"
            );
            assert!(peak(&times) <= per_10s as usize);
        }
    }

    #[test]
    fn acquire_says_how_long_to_wait() {
        let mut l = Limiter::new(Crm::Hubspot, &rate(4, 1.0, Some(4)), 0);
        let steps = [
            (0, 3, Ok(())),
            (0, 2, Err(10_100)),
            (1_000, 1, Ok(())),
            (2_000, 1, Err(8_100)),
            (10_000, 1, Err(100)),
            (10_100, 1, Ok(())),
        ];
        for (now, n, want) in steps {
            assert_eq!(l.try_acquire(n, now), want, "at {now} take {n}");
        }
    }

    #[test]
    fn pauses_block_until_they_end() {
        let mut l = Limiter::new(Crm::Salesforce, &RateConfig::default(), 0);
        l.pause(5_000, PauseReason::QuotaExhausted);
        l.pause(3_000, PauseReason::RateLimited);
        assert_eq!(l.try_acquire(1, 1_000), Err(4_000));
        assert_eq!(l.paused(1_000), Some((PauseReason::QuotaExhausted, 4_000)));
        assert_eq!(l.try_acquire(1, 5_000), Ok(()));
        assert_eq!(l.paused(5_000), None);
    }

    #[test]
    fn headers_lower_the_rate_pause_when_nearly_out_and_report_quota() {
        let hs = |max, remaining, daily_remaining| {
            Some(LimitInfo::Hubspot(HubSpotRateLimit {
                max,
                remaining,
                interval_ms: 10_000,
                daily: Some(1_000),
                daily_remaining: Some(daily_remaining),
            }))
        };
        let mut l = Limiter::new(Crm::Hubspot, &rate(190, 0.9, None), 0);
        assert_eq!(l.observe(hs(190, 150, 900), 0), None);
        assert_eq!((l.per_10s(), l.headroom()), (171, Some(150)));
        assert_eq!(l.observe(hs(100, 50, 900), 0), None);
        assert_eq!(l.per_10s(), 90);
        assert_eq!(l.observe(hs(100, 0, 900), 0), None);
        assert_eq!(l.paused(0), Some((PauseReason::RateLimited, 200)));
        assert_eq!(
            l.observe(hs(100, 50, 10), 0),
            Some(Pressure::DailyQuota {
                used: 990,
                max: 1_000
            })
        );
        let sf = |used, max| Some(LimitInfo::Salesforce { used, max });
        let mut l = Limiter::new(Crm::Salesforce, &RateConfig::default(), 0);
        assert_eq!(l.observe(sf(500, 1_000), 0), None);
        assert_eq!(l.headroom(), Some(500));
        assert_eq!(
            l.observe(sf(980, 1_000), 0),
            Some(Pressure::DailyQuota {
                used: 980,
                max: 1_000
            })
        );
        assert_eq!(l.observe(None, 0), None);
    }
}
