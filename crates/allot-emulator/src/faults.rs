//! Fault injection: random errors from a seeded RNG, 429 storms, latency.
//! Set in the options at start or through `POST /_emulator/faults`.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use allot_core::Crm;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

/// Which CRM side a fault applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    #[default]
    Both,
    Salesforce,
    Hubspot,
}

impl Side {
    /// Whether the fault applies to calls to `crm`.
    pub fn covers(self, crm: Crm) -> bool {
        match self {
            Side::Both => true,
            Side::Salesforce => crm == Crm::Salesforce,
            Side::Hubspot => crm == Crm::Hubspot,
        }
    }
}

/// A burst of 429 answers, for a number of requests and/or a duration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Storm {
    #[serde(default = "hubspot_side")]
    pub side: Side,
    /// Answer this many requests with 429 (unbounded when absent).
    #[serde(default)]
    pub requests: Option<u32>,
    /// Answer with 429 for this long (unbounded when absent).
    #[serde(default)]
    pub duration_ms: Option<u64>,
    /// `Retry-After` seconds sent with each 429.
    #[serde(default = "one")]
    pub retry_after_secs: u64,
    /// HubSpot `policyName` in the body.
    #[serde(default = "ten_secondly")]
    pub policy: String,
}

fn hubspot_side() -> Side {
    Side::Hubspot
}
fn one() -> u64 {
    1
}
fn ten_secondly() -> String {
    "TEN_SECONDLY_ROLLING".into()
}

/// A change to the faults. Absent fields leave the current setting alone.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FaultPatch {
    /// Clear every fault (and stop a storm) before applying the rest.
    pub reset: bool,
    /// Fraction of API calls answered with an error, per kind: an HTTP status
    /// (`"500"`, `"502"`, `"503"`, `"429"`) or `"UNABLE_TO_LOCK_ROW"`
    /// (Salesforce writes, drawn per record in composite calls), or `"GAP"`:
    /// Salesforce change events sent as `GAP_*` with no fields, as an org
    /// under load sends them (readers must re-read those records), or
    /// `"OVERFLOW"`: Salesforce change events sent as `GAP_OVERFLOW`, with
    /// no record ids (readers must resync the entity), or
    /// `"OMIT_FROM_207"` / `"DROP_FROM_207"`: a HubSpot batch-update input
    /// left out of both `results` and `errors` of a 207 answer (drawn per
    /// input), its update applied (OMIT) or not (DROP), or `"LOST_EVENT"`:
    /// a change made but its change event (CDC event, webhook) never sent.
    pub error_rates: Option<BTreeMap<String, f64>>,
    /// Which side the error rates apply to (both by default).
    pub error_side: Option<Side>,
    /// Added to every API call, in milliseconds.
    pub latency_ms: Option<u64>,
    /// Start a 429 storm now.
    pub storm: Option<Storm>,
    /// Invalidate every Salesforce session and HubSpot OAuth access token now.
    pub expire_tokens: bool,
    /// Mark these Salesforce users inactive / HubSpot owners archived.
    pub inactive_users: Vec<String>,
    /// Mark these users active / owners not archived again.
    pub active_users: Vec<String>,
    /// Re-seed the fault RNG (same seed, same sequence of faults).
    pub rng_seed: Option<u64>,
}

/// The faults in force (what `GET /_emulator/faults` shows).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FaultView {
    pub error_rates: BTreeMap<String, f64>,
    pub error_side: Side,
    pub latency_ms: u64,
    pub storm: Option<Storm>,
    /// Storm requests still to be refused, when the storm counts requests.
    pub storm_requests_left: Option<u32>,
}

/// An error to answer instead of handling the call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Injected {
    /// Answer with this HTTP status (5xx, or 429 from an error rate).
    Status(u16),
    /// A 429 from a storm.
    Storm {
        retry_after_secs: u64,
        policy: String,
    },
}

/// Fault state, with its own RNG so the sequence depends only on the seed
/// and the order of calls.
pub(crate) struct Faults {
    view: FaultView,
    storm_until: Option<Instant>,
    rng: StdRng,
}

impl Faults {
    pub fn new(seed: u64) -> Faults {
        Faults {
            view: FaultView::default(),
            storm_until: None,
            rng: StdRng::seed_from_u64(seed),
        }
    }

    pub fn view(&self) -> FaultView {
        self.view.clone()
    }

    pub fn latency(&self) -> Duration {
        Duration::from_millis(self.view.latency_ms)
    }

    /// Applies the error-rate, latency, storm and seed parts of a patch (the
    /// caller handles tokens and users).
    pub fn apply(&mut self, patch: &FaultPatch, now: Instant) {
        if patch.reset {
            self.view = FaultView::default();
            self.storm_until = None;
        }
        if let Some(seed) = patch.rng_seed {
            self.rng = StdRng::seed_from_u64(seed);
        }
        if let Some(rates) = &patch.error_rates {
            self.view.error_rates = rates
                .iter()
                .map(|(k, v)| (k.clone(), v.clamp(0.0, 1.0)))
                .collect();
        }
        if let Some(side) = patch.error_side {
            self.view.error_side = side;
        }
        if let Some(ms) = patch.latency_ms {
            self.view.latency_ms = ms;
        }
        if let Some(storm) = &patch.storm {
            self.storm_until = storm.duration_ms.map(|ms| now + Duration::from_millis(ms));
            self.view.storm_requests_left = storm.requests;
            self.view.storm = Some(storm.clone());
        }
    }

    /// The fault for one API call to `crm` at `now`, if any: a storm first,
    /// then each configured status rate in key order.
    pub fn draw(&mut self, crm: Crm, now: Instant) -> Option<Injected> {
        if let Some(injected) = self.storm_hit(crm, now) {
            return Some(injected);
        }
        if !self.view.error_side.covers(crm) {
            return None;
        }
        let rates: Vec<(u16, f64)> = self
            .view
            .error_rates
            .iter()
            .filter_map(|(k, rate)| k.parse::<u16>().ok().map(|s| (s, *rate)))
            .collect();
        rates
            .into_iter()
            .find(|(_, rate)| self.rng.gen::<f64>() < *rate)
            .map(|(status, _)| Injected::Status(status))
    }

    /// Whether one Salesforce change event goes out as a gap event.
    pub fn draw_gap(&mut self) -> bool {
        self.draw_event("GAP")
    }

    /// Whether one Salesforce change event goes out as GAP_OVERFLOW (no
    /// record ids, no fields: the whole entity must be read again).
    pub fn draw_overflow(&mut self) -> bool {
        self.draw_event("OVERFLOW")
    }

    fn draw_event(&mut self, key: &str) -> bool {
        let rate = self.view.error_rates.get(key).copied().unwrap_or(0.0);
        rate > 0.0 && self.rng.gen::<f64>() < rate
    }

    /// What a HubSpot batch update does with one valid input: `None` to
    /// answer it normally, `Some(applied)` to leave it out of the 207 with
    /// its update applied (`OMIT_FROM_207`) or not (`DROP_FROM_207`).
    pub fn draw_omission(&mut self) -> Option<bool> {
        if !self.view.error_side.covers(Crm::Hubspot) {
            return None;
        }
        for (key, applied) in [("DROP_FROM_207", false), ("OMIT_FROM_207", true)] {
            let rate = self.view.error_rates.get(key).copied().unwrap_or(0.0);
            if rate > 0.0 && self.rng.gen::<f64>() < rate {
                return Some(applied);
            }
        }
        None
    }

    /// Whether one change event of `crm` is lost (`LOST_EVENT`): the change
    /// is made, nobody hears of it.
    pub fn draw_lost_event(&mut self, crm: Crm) -> bool {
        if !self.view.error_side.covers(crm) {
            return false;
        }
        let rate = self
            .view
            .error_rates
            .get("LOST_EVENT")
            .copied()
            .unwrap_or(0.0);
        rate > 0.0 && self.rng.gen::<f64>() < rate
    }

    /// Whether one Salesforce record write hits `UNABLE_TO_LOCK_ROW`.
    pub fn draw_lock(&mut self) -> bool {
        if !self.view.error_side.covers(Crm::Salesforce) {
            return false;
        }
        let rate = self
            .view
            .error_rates
            .get("UNABLE_TO_LOCK_ROW")
            .copied()
            .unwrap_or(0.0);
        rate > 0.0 && self.rng.gen::<f64>() < rate
    }

    fn storm_hit(&mut self, crm: Crm, now: Instant) -> Option<Injected> {
        let storm = self.view.storm.as_ref()?;
        if !storm.side.covers(crm) {
            return None;
        }
        let expired_by_time = self.storm_until.is_some_and(|until| now >= until);
        let expired_by_count = self.view.storm_requests_left == Some(0);
        if expired_by_time || expired_by_count {
            self.view.storm = None;
            self.view.storm_requests_left = None;
            self.storm_until = None;
            return None;
        }
        let injected = Injected::Storm {
            retry_after_secs: storm.retry_after_secs,
            policy: storm.policy.clone(),
        };
        if let Some(left) = self.view.storm_requests_left.as_mut() {
            *left -= 1;
        }
        Some(injected)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn patch(json: &str) -> FaultPatch {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn error_rates_are_deterministic_for_a_seed() {
        let now = Instant::now();
        let run = |seed: u64| {
            let mut f = Faults::new(seed);
            f.apply(&patch(r#"{"error_rates": {"500": 0.3, "503": 0.2}}"#), now);
            (0..200)
                .map(|_| f.draw(Crm::Hubspot, now))
                .collect::<Vec<_>>()
        };
        let a = run(7);
        assert_eq!(a, run(7));
        let count = |s: u16| {
            a.iter()
                .filter(|x| **x == Some(Injected::Status(s)))
                .count()
        };
        assert!((40..=80).contains(&count(500)), "500s: {}", count(500));
        assert!((15..=45).contains(&count(503)), "503s: {}", count(503));
    }

    #[test]
    fn error_side_limits_where_errors_land() {
        let now = Instant::now();
        let mut f = Faults::new(1);
        f.apply(&patch(r#"{"error_rates": {"500": 1.0, "UNABLE_TO_LOCK_ROW": 1.0}, "error_side": "hubspot"}"#), now);
        assert_eq!(f.draw(Crm::Salesforce, now), None);
        assert!(!f.draw_lock());
        assert_eq!(f.draw(Crm::Hubspot, now), Some(Injected::Status(500)));
        f.apply(&patch(r#"{"error_side": "both"}"#), now);
        assert!(f.draw_lock());
    }

    #[test]
    fn omissions_are_drawn_per_input_on_the_hubspot_side() {
        let now = Instant::now();
        let mut f = Faults::new(3);
        assert_eq!(f.draw_omission(), None);
        f.apply(&patch(r#"{"error_rates": {"OMIT_FROM_207": 1.0}}"#), now);
        assert_eq!(f.draw_omission(), Some(true));
        assert_eq!(f.draw(Crm::Hubspot, now), None, "not an HTTP status");
        f.apply(&patch(r#"{"error_rates": {"DROP_FROM_207": 1.0}}"#), now);
        assert_eq!(f.draw_omission(), Some(false));
        f.apply(&patch(r#"{"error_side": "salesforce"}"#), now);
        assert_eq!(f.draw_omission(), None);
    }

    #[test]
    fn lost_events_follow_their_side() {
        let now = Instant::now();
        let mut f = Faults::new(5);
        assert!(!f.draw_lost_event(Crm::Salesforce));
        f.apply(
            &patch(r#"{"error_rates": {"LOST_EVENT": 1.0}, "error_side": "salesforce"}"#),
            now,
        );
        assert!(f.draw_lost_event(Crm::Salesforce));
        assert!(!f.draw_lost_event(Crm::Hubspot));
        assert_eq!(f.draw(Crm::Salesforce, now), None, "not an HTTP status");
    }

    #[test]
    fn storms_end_after_their_requests_or_duration() {
        let now = Instant::now();
        let mut f = Faults::new(1);
        f.apply(
            &patch(r#"{"storm": {"requests": 2, "retry_after_secs": 3}}"#),
            now,
        );
        let storm = Some(Injected::Storm {
            retry_after_secs: 3,
            policy: "TEN_SECONDLY_ROLLING".into(),
        });
        assert_eq!(
            f.draw(Crm::Salesforce, now),
            None,
            "storms default to hubspot"
        );
        assert_eq!(f.draw(Crm::Hubspot, now), storm);
        assert_eq!(f.draw(Crm::Hubspot, now), storm);
        assert_eq!(f.draw(Crm::Hubspot, now), None);

        f.apply(
            &patch(r#"{"storm": {"side": "both", "duration_ms": 1000}}"#),
            now,
        );
        assert!(f
            .draw(Crm::Salesforce, now + Duration::from_millis(999))
            .is_some());
        assert_eq!(
            f.draw(Crm::Salesforce, now + Duration::from_millis(1000)),
            None
        );
        assert_eq!(f.view().storm, None);
    }

    #[test]
    fn reset_clears_everything() {
        let now = Instant::now();
        let mut f = Faults::new(1);
        f.apply(
            &patch(r#"{"error_rates": {"503": 1.0}, "latency_ms": 40, "storm": {}}"#),
            now,
        );
        assert_eq!(f.latency(), Duration::from_millis(40));
        f.apply(&patch(r#"{"reset": true}"#), now);
        assert_eq!(f.view(), FaultView::default());
        assert_eq!(f.draw(Crm::Hubspot, now), None);
    }
}
