//! The compiled, validated rule set the engine runs on.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::fmt;

use allot_core::{Millis, ObjectKind};
use chrono_tz::Tz;

use crate::criteria::Criterion;
use crate::index::TerritoryIndex;

/// How a team hands out records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method {
    RoundRobin,
    Weighted,
    LeastLoaded,
}

impl Method {
    pub fn parse(s: &str) -> Option<Method> {
        match s {
            "round_robin" => Some(Method::RoundRobin),
            "weighted" | "weighted_round_robin" => Some(Method::Weighted),
            "least_loaded" => Some(Method::LeastLoaded),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Method::RoundRobin => "round_robin",
            Method::Weighted => "weighted",
            Method::LeastLoaded => "least_loaded",
        }
    }
}

/// One step of the rules of engagement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Step {
    NamedAccount,
    LeadToAccount,
    ExistingOwner,
    MostSpecific,
    Priority,
    TieBreak,
}

impl Step {
    pub const DEFAULT_ORDER: [Step; 6] = [
        Step::NamedAccount,
        Step::LeadToAccount,
        Step::ExistingOwner,
        Step::MostSpecific,
        Step::Priority,
        Step::TieBreak,
    ];

    pub fn parse(s: &str) -> Option<Step> {
        Step::DEFAULT_ORDER
            .into_iter()
            .find(|st| st.strategy().as_str() == s)
    }

    pub fn strategy(self) -> allot_core::Strategy {
        use allot_core::Strategy as S;
        match self {
            Step::NamedAccount => S::NamedAccount,
            Step::LeadToAccount => S::LeadToAccount,
            Step::ExistingOwner => S::ExistingOwner,
            Step::MostSpecific => S::MostSpecific,
            Step::Priority => S::Priority,
            Step::TieBreak => S::TieBreak,
        }
    }
}

/// Who owns what a territory (or a fallback) receives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Owner {
    Rep(String),
    Team { team: usize, method: Method },
}

/// Daily working hours in the rep's time zone.
#[derive(Debug, Clone)]
pub struct WorkingHours {
    /// Monday = 0.
    pub days: [bool; 7],
    /// Minutes after local midnight; `end < start` spans midnight.
    pub start_min: u32,
    pub end_min: u32,
}

#[derive(Debug, Clone)]
pub struct Rep {
    pub id: String,
    pub name: Option<String>,
    pub email: Option<String>,
    pub active: bool,
    pub weight: u32,
    pub max_open: Option<u32>,
    pub max_per_day: Option<u32>,
    pub tz: Tz,
    pub hours: Option<WorkingHours>,
    /// Half-open `[from, until)` windows.
    pub out_of_office: Vec<(Millis, Millis)>,
    pub skills: BTreeSet<String>,
}

#[derive(Debug, Clone)]
pub struct Team {
    pub id: String,
    pub name: Option<String>,
    /// Indexes into [`RuleSet::reps`], in rotation order.
    pub members: Vec<usize>,
    pub method: Method,
}

#[derive(Debug, Clone)]
pub struct Territory {
    pub id: String,
    pub name: Option<String>,
    pub parent: Option<usize>,
    /// Number of ancestors.
    pub depth: u32,
    pub priority: i64,
    pub objects: [bool; 3],
    /// Own owner, or the nearest ancestor's.
    pub owner: Option<Owner>,
    pub fallback: Option<Owner>,
    pub require_working_hours: bool,
    pub required_skills: BTreeSet<String>,
    /// Own criteria and every ancestor's, all of which must hold.
    pub criteria: Criterion,
}

impl Territory {
    pub fn applies_to(&self, kind: ObjectKind) -> bool {
        self.objects[kind as usize]
    }
}

#[derive(Debug, Clone)]
pub struct NamedAccount {
    pub id: String,
    pub account_ids: HashSet<String>,
    pub domains: Vec<String>,
    /// Lower case.
    pub names: HashSet<String>,
    pub owner: Owner,
}

/// A problem found in a rules file, with where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub warning: bool,
    /// 1-based line and column, when known.
    pub at: Option<(usize, usize)>,
    pub message: String,
}

impl Diagnostic {
    /// `origin:line:col: error: message`.
    pub fn render(&self, origin: &str) -> String {
        let kind = if self.warning { "warning" } else { "error" };
        match self.at {
            Some((l, c)) => format!("{origin}:{l}:{c}: {kind}: {}", self.message),
            None => format!("{origin}: {kind}: {}", self.message),
        }
    }
}

/// Every error found in a rules file (reported at once).
#[derive(Debug, Clone, thiserror::Error)]
pub struct RulesError {
    pub origin: String,
    pub diagnostics: Vec<Diagnostic>,
}

impl fmt::Display for RulesError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let lines: Vec<String> = self
            .diagnostics
            .iter()
            .map(|d| d.render(&self.origin))
            .collect();
        f.write_str(&lines.join("\n"))
    }
}

/// A validated rule set, compiled for matching.
#[derive(Debug, Clone)]
pub struct RuleSet {
    pub version: String,
    pub reps: Vec<Rep>,
    pub teams: Vec<Team>,
    pub territories: Vec<Territory>,
    pub named_accounts: Vec<NamedAccount>,
    pub order: Vec<Step>,
    /// Existing owners keep records only this long after getting them.
    pub existing_owner_window: Option<Millis>,
    pub free_mail: HashSet<String>,
    pub fallback: Option<Owner>,
    /// Field names the criteria read, by [`FieldId`].
    pub fields: Vec<String>,
    pub warnings: Vec<Diagnostic>,
    pub(crate) rep_ix: HashMap<String, usize>,
    pub(crate) team_ix: HashMap<String, usize>,
    pub(crate) territory_ix: HashMap<String, usize>,
    pub(crate) index: TerritoryIndex,
    pub(crate) pools: crate::pools::Pools,
}

impl RuleSet {
    pub fn rep(&self, id: &str) -> Option<&Rep> {
        self.rep_ix.get(id).map(|&i| &self.reps[i])
    }

    pub fn team(&self, id: &str) -> Option<&Team> {
        self.team_ix.get(id).map(|&i| &self.teams[i])
    }

    pub fn territory(&self, id: &str) -> Option<&Territory> {
        self.territory_ix.get(id).map(|&i| &self.territories[i])
    }

    /// Canonical fields the rules read: a change to any other field never
    /// needs a new decision. Includes the fields engagement reads.
    pub fn fields_read(&self) -> BTreeSet<String> {
        let mut out: BTreeSet<String> = self.fields.iter().cloned().collect();
        out.extend(["domain", "email", "website", "company"].map(String::from));
        out
    }

    /// The distribution pools of this rule set's teams and reps.
    pub fn pools(&self) -> &crate::pools::Pools {
        &self.pools
    }

    /// Every territory is indexed (`false` when some must be scanned).
    pub fn index_stats(&self) -> crate::index::IndexStats {
        self.index.stats()
    }
}
