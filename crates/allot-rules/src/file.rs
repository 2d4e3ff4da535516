//! The rules file as written (TOML). Private serde shapes with
//! `deny_unknown_fields`; `compile` turns them into a typed [`crate::RuleSet`].

use serde::Deserialize;
use toml::Spanned;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RulesFile {
    /// Label of this rule set version; a content hash when absent.
    pub version: Option<String>,
    #[serde(default)]
    pub engagement: Engagement,
    pub fallback: Option<Spanned<OwnerSpec>>,
    #[serde(default)]
    pub reps: Vec<Spanned<RepSpec>>,
    #[serde(default)]
    pub teams: Vec<Spanned<TeamSpec>>,
    #[serde(default)]
    pub territories: Vec<Spanned<TerritorySpec>>,
    #[serde(default)]
    pub named_accounts: Vec<Spanned<NamedAccountSpec>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Engagement {
    pub order: Option<Spanned<Vec<String>>>,
    /// Existing owners keep a record only this many days after they got it.
    pub existing_owner_days: Option<u32>,
    /// Extra free-mail domains, added to the built-in list.
    #[serde(default)]
    pub free_mail_domains: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct OwnerSpec {
    pub rep: Option<String>,
    pub team: Option<String>,
    /// Distribution method for a team; the team's own method when absent.
    pub method: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RepSpec {
    pub id: String,
    pub name: Option<String>,
    pub email: Option<String>,
    #[serde(default = "yes")]
    pub active: bool,
    #[serde(default = "one")]
    pub weight: u32,
    pub max_open: Option<u32>,
    pub max_per_day: Option<u32>,
    /// IANA time zone, e.g. `Europe/Berlin`. UTC when absent.
    pub timezone: Option<String>,
    pub working_hours: Option<WorkingHoursSpec>,
    #[serde(default)]
    pub out_of_office: Vec<OooSpec>,
    #[serde(default)]
    pub skills: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct WorkingHoursSpec {
    #[serde(default = "weekdays")]
    pub days: Vec<String>,
    pub start: String,
    pub end: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct OooSpec {
    pub from: String,
    pub until: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TeamSpec {
    pub id: String,
    pub name: Option<String>,
    pub members: Vec<String>,
    #[serde(default = "round_robin")]
    pub method: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TerritorySpec {
    pub id: String,
    pub name: Option<String>,
    pub parent: Option<String>,
    #[serde(default)]
    pub priority: i64,
    /// Object kinds it applies to; all when absent.
    pub objects: Option<Vec<String>>,
    /// Inherited from the nearest ancestor that has one when absent.
    pub owner: Option<OwnerSpec>,
    pub fallback: Option<OwnerSpec>,
    /// Reps must be inside their working hours to receive records here.
    #[serde(default)]
    pub require_working_hours: bool,
    /// Reps must have every one of these skills.
    #[serde(default)]
    pub required_skills: Vec<String>,
    pub criteria: Option<Spanned<CriterionSpec>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NamedAccountSpec {
    pub id: Option<String>,
    pub name: Option<String>,
    #[serde(default)]
    pub account_ids: Vec<String>,
    #[serde(default)]
    pub domains: Vec<String>,
    /// Company names, matched case-insensitively against `company`.
    #[serde(default)]
    pub names: Vec<String>,
    pub owner: OwnerSpec,
}

/// One criterion table: either a field test (`field` plus exactly one
/// operator) or exactly one combinator.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CriterionSpec {
    pub field: Option<String>,
    pub equals: Option<Scalar>,
    #[serde(rename = "in")]
    pub in_: Option<Vec<Scalar>>,
    pub not_in: Option<Vec<Scalar>>,
    pub prefix: Option<OneOrMany>,
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub exists: Option<bool>,
    pub missing: Option<bool>,
    pub regex: Option<String>,
    pub domain_in: Option<Vec<String>>,
    pub all: Option<Vec<Spanned<CriterionSpec>>>,
    pub any: Option<Vec<Spanned<CriterionSpec>>>,
    pub not: Option<Box<Spanned<CriterionSpec>>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub(crate) enum Scalar {
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
}

impl Scalar {
    pub fn text(&self) -> String {
        match self {
            Scalar::Str(s) => s.clone(),
            Scalar::Int(i) => i.to_string(),
            Scalar::Float(f) => f.to_string(),
            Scalar::Bool(b) => b.to_string(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub(crate) enum OneOrMany {
    One(Scalar),
    Many(Vec<Scalar>),
}

impl OneOrMany {
    pub fn texts(&self) -> Vec<String> {
        match self {
            OneOrMany::One(s) => vec![s.text()],
            OneOrMany::Many(v) => v.iter().map(Scalar::text).collect(),
        }
    }
}

fn yes() -> bool {
    true
}

fn one() -> u32 {
    1
}

fn round_robin() -> String {
    "round_robin".to_string()
}

fn weekdays() -> Vec<String> {
    ["mon", "tue", "wed", "thu", "fri"]
        .map(String::from)
        .to_vec()
}
