//! allot's territory rule engine.
//!
//! Pure: no I/O, no clock, no global state. A rules file is compiled once
//! ([`RuleSet::from_toml`]); [`decide`] then takes the rule set, the engine
//! state, a record and the time, and returns the decision with its
//! explanation plus the state changes to apply.

mod compile;
pub mod criteria;
mod distribute;
mod engine;
mod file;
pub mod gen;
pub mod index;
mod model;
pub mod normalize;
mod overlap;
pub mod overrides;
pub mod pools;
pub mod realign;
mod reps;

pub use engine::{
    candidates, decide, decide_after_named, decide_with, index_account, release, route, try_named,
    Detail, Matcher, NamedTry, Outcome, Route,
};
pub use model::{
    Diagnostic, Method, NamedAccount, Owner, Rep, RuleSet, RulesError, Step, Team, Territory,
    WorkingHours,
};
pub use reps::{iso, rfc3339};

/// Candidates by checking every territory: the reference the index is tested against.
pub fn match_naive(rules: &RuleSet, record: &allot_core::Record) -> Vec<usize> {
    candidates(rules, record, Matcher::Naive)
}
