//! Who the reps are (name, team, cap), from the rule version in force. The
//! stored versions are looked at no more than every [`RECHECK`], and parsed
//! again only when the version in force changed.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use allot_core::Millis;
use allot_rules::RuleSet;
use allot_store::Store;
use serde::Serialize;

/// How long a looked-up rule version is trusted.
const RECHECK: Duration = Duration::from_secs(30);

/// A rep as the dashboard shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RepInfo {
    pub id: String,
    pub name: Option<String>,
    /// The first team the rep is a member of.
    pub team: Option<String>,
    /// Most open records the rules give the rep.
    pub max_open: Option<u32>,
    pub active: bool,
}

/// The reps of the rule version in force, cached.
#[derive(Default)]
pub struct Roster {
    cached: Mutex<Cached>,
}

#[derive(Default)]
struct Cached {
    checked: Option<Instant>,
    version: Option<String>,
    reps: Arc<Vec<RepInfo>>,
}

impl Roster {
    /// The reps of the version in force at `now` (blocking: reads the store).
    /// Empty when no version is stored or it does not parse.
    pub fn reps(&self, store: &Store, now: Millis) -> Arc<Vec<RepInfo>> {
        let mut c = match self.cached.lock() {
            Ok(c) => c,
            Err(poisoned) => poisoned.into_inner(),
        };
        if c.checked.is_some_and(|t| t.elapsed() < RECHECK) {
            return c.reps.clone();
        }
        c.checked = Some(Instant::now());
        let Ok(Some(version)) = store.active_rule_version(now) else {
            return c.reps.clone();
        };
        if c.version.as_deref() != Some(version.version_id.as_str()) {
            c.reps = Arc::new(
                RuleSet::from_toml(&version.toml, &version.version_id)
                    .map(|rules| reps_of(&rules))
                    .unwrap_or_default(),
            );
            c.version = Some(version.version_id);
        }
        c.reps.clone()
    }
}

/// Every rep of `rules`, in file order, with the first team it belongs to.
pub fn reps_of(rules: &RuleSet) -> Vec<RepInfo> {
    rules
        .reps
        .iter()
        .enumerate()
        .map(|(i, r)| RepInfo {
            id: r.id.clone(),
            name: r.name.clone(),
            team: rules
                .teams
                .iter()
                .find(|t| t.members.contains(&i))
                .map(|t| t.id.clone()),
            max_open: r.max_open,
            active: r.active,
        })
        .collect()
}
