//! Counters that tests read to check that callers respected the CRMs' limits,
//! and the record of the headers callers sent.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use allot_core::Crm;
use serde::{Deserialize, Serialize};

/// The rolling window HubSpot limits by, and the one peaks are measured over.
pub const WINDOW: Duration = Duration::from_secs(10);
/// How many received requests are kept for inspection.
const RECEIVED_KEPT: usize = 10_000;

/// A counter per CRM side.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PerSide {
    pub salesforce: u64,
    pub hubspot: u64,
}

impl PerSide {
    pub fn get_mut(&mut self, crm: Crm) -> &mut u64 {
        match crm {
            Crm::Hubspot => &mut self.hubspot,
            _ => &mut self.salesforce,
        }
    }

    pub fn get(&self, crm: Crm) -> u64 {
        match crm {
            Crm::Hubspot => self.hubspot,
            _ => self.salesforce,
        }
    }
}

/// What `GET /_emulator/stats` answers.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    /// Calls per endpoint (`sf.composite`, `hs.batch_update`, `sf.token`, ...),
    /// counted on arrival, whatever the answer.
    pub calls: BTreeMap<String, u64>,
    /// Records whose update succeeded (API writes only).
    pub records_updated: PerSide,
    /// Records an update left as they were: every field sent already had
    /// that value (for owner writes, the same owner written twice).
    #[serde(default)]
    pub records_unchanged: PerSide,
    /// Records an API write refused (inactive or unknown owner, lock, missing).
    pub records_rejected: PerSide,
    /// 429 answers (rolling-window limit, storms, injected).
    pub rate_limited: PerSide,
    /// Answers replaced by an injected fault (storms included).
    pub faults_injected: PerSide,
    /// The most API calls that arrived within any 10-second window, refused ones included.
    pub peak_requests_10s: PerSide,
    /// The most records sent in one write call.
    pub max_records_per_call: PerSide,
    /// Records asked for by batched reads (`composite/sobjects/{Type}`,
    /// `batch/read`) that answered, and those calls.
    #[serde(default)]
    pub records_read: PerSide,
    #[serde(default)]
    pub read_calls: PerSide,
    /// Change events emitted (Salesforce CDC events; HubSpot webhook events).
    pub events_emitted: PerSide,
    /// HubSpot webhook batches POSTed to the configured URL, and failures.
    pub webhook_deliveries: u64,
    pub webhook_failures: u64,
    /// Salesforce daily API usage so far.
    pub salesforce_api_usage: u64,
}

/// One request as received, for header assertions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReceivedRequest {
    pub crm: Crm,
    pub endpoint: String,
    pub method: String,
    pub path: String,
    /// `Sforce-Auto-Assign` as sent.
    pub auto_assign: Option<String>,
    /// `Sforce-Call-Options` as sent.
    pub call_options: Option<String>,
}

/// Arrival times within the last window, and the largest count seen.
#[derive(Debug, Default)]
pub(crate) struct PeakWindow {
    arrivals: VecDeque<Instant>,
    peak: u64,
}

impl PeakWindow {
    /// Records an arrival at `now`; returns the peak so far.
    pub fn hit(&mut self, now: Instant) -> u64 {
        prune(&mut self.arrivals, now);
        self.arrivals.push_back(now);
        self.peak = self.peak.max(self.arrivals.len() as u64);
        self.peak
    }
}

/// Drops arrivals older than one window before `now`.
pub(crate) fn prune(arrivals: &mut VecDeque<Instant>, now: Instant) {
    while arrivals
        .front()
        .is_some_and(|t| now.duration_since(*t) >= WINDOW)
    {
        arrivals.pop_front();
    }
}

/// Everything counted, kept in the emulator state.
#[derive(Debug, Default)]
pub(crate) struct Recorder {
    pub stats: Stats,
    peaks: [PeakWindow; 2],
    pub received: VecDeque<ReceivedRequest>,
}

impl Recorder {
    /// Counts an arriving API call and keeps its headers.
    pub fn arrive(&mut self, request: ReceivedRequest, now: Instant) {
        *self
            .stats
            .calls
            .entry(request.endpoint.clone())
            .or_default() += 1;
        let idx = usize::from(request.crm == Crm::Hubspot);
        let peak = self.peaks[idx].hit(now);
        *self.stats.peak_requests_10s.get_mut(request.crm) = peak;
        if self.received.len() >= RECEIVED_KEPT {
            self.received.pop_front();
        }
        self.received.push_back(request);
    }

    /// Counts a call that is not rate-limited API traffic (token, admin).
    pub fn count(&mut self, endpoint: &str) {
        *self.stats.calls.entry(endpoint.to_string()).or_default() += 1;
    }

    /// Notes a batched read of `records` ids that was answered.
    pub fn read(&mut self, crm: Crm, records: usize) {
        *self.stats.records_read.get_mut(crm) += records as u64;
        *self.stats.read_calls.get_mut(crm) += 1;
    }

    /// Notes the size of a write call.
    pub fn batch_size(&mut self, crm: Crm, records: usize) {
        let max = self.stats.max_records_per_call.get_mut(crm);
        *max = (*max).max(records as u64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peak_counts_arrivals_within_any_ten_seconds() {
        let t0 = Instant::now();
        let mut w = PeakWindow::default();
        let ms = Duration::from_millis;
        // 3 at once, 2 more 5 s later (5 in window), then 9.999 s after those (2 + 1).
        let steps = [
            (0, 1),
            (0, 2),
            (0, 3),
            (5_000, 4),
            (5_000, 5),
            (14_999, 5),
            (20_000, 5),
        ];
        for (at, want) in steps {
            assert_eq!(w.hit(t0 + ms(at)), want, "at {at}");
        }
        assert_eq!(w.arrivals.len(), 2);
    }
}
