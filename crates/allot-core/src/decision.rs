//! Decisions: who owns a record, and why. Returned as data by the engine.

use serde::{Deserialize, Serialize};

use crate::{Millis, ObjectKind};

/// Version of the [`Decision`] and [`OwnerChange`] JSON schemas (`v` field).
pub const DECISION_VERSION: u8 = 1;

/// What settled the owner.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    NamedAccount,
    LeadToAccount,
    ExistingOwner,
    MostSpecific,
    Priority,
    TieBreak,
    /// Exactly one territory matched: nothing to resolve.
    OnlyCandidate,
    /// No territory matched, or nobody in the winner was eligible and its
    /// fallback was used; see `fallback_reason`.
    Fallback,
    /// Nobody could be chosen and no fallback is configured.
    Unassigned,
}

impl Strategy {
    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::NamedAccount => "named_account",
            Strategy::LeadToAccount => "lead_to_account",
            Strategy::ExistingOwner => "existing_owner",
            Strategy::MostSpecific => "most_specific",
            Strategy::Priority => "priority",
            Strategy::TieBreak => "tie_break",
            Strategy::OnlyCandidate => "only_candidate",
            Strategy::Fallback => "fallback",
            Strategy::Unassigned => "unassigned",
        }
    }
}

/// How a candidate territory fared.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum CandidateOutcome {
    Won,
    Lost { strategy: Strategy, reason: String },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CandidateNote {
    pub territory: String,
    pub depth: u32,
    pub priority: i64,
    #[serde(flatten)]
    pub outcome: CandidateOutcome,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkippedRep {
    pub rep: String,
    pub reason: String,
}

/// How the rep was picked inside the winning territory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DistributionNote {
    /// The team, or `None` when the territory is owned by one rep.
    pub team: Option<String>,
    pub method: String,
    pub rep: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skipped: Vec<SkippedRep>,
}

/// The engine's answer for one record at one moment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    pub v: u8,
    pub record_id: String,
    pub object: ObjectKind,
    pub decided_at: Millis,
    pub rules_version: String,
    pub previous_owner: Option<String>,
    /// The owner after this decision (`None` only when unassigned).
    pub owner: Option<String>,
    /// The winning territory, if any territory matched.
    pub territory: Option<String>,
    pub strategy: Strategy,
    /// Whether `owner` differs from `previous_owner`.
    pub changed: bool,
    pub candidates: Vec<CandidateNote>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub distribution: Option<DistributionNote>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback_reason: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// Human-readable steps, in order.
    pub explanation: Vec<String>,
}

impl Decision {
    /// The owner change this decision asks for, if the owner changes.
    pub fn owner_change(&self, event_id: &str) -> Option<OwnerChange> {
        let owner = self.owner.clone()?;
        self.changed.then(|| OwnerChange {
            v: DECISION_VERSION,
            crm: None,
            record_id: self.record_id.clone(),
            object: self.object,
            owner,
            previous_owner: self.previous_owner.clone(),
            decided_at: self.decided_at,
            event_id: event_id.to_string(),
            territory: self.territory.clone(),
            strategy: self.strategy,
        })
    }
}

/// A command to the writer: set this record's owner in the CRM.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OwnerChange {
    pub v: u8,
    /// The CRM that holds the record; the writer routes by it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crm: Option<crate::Crm>,
    pub record_id: String,
    pub object: ObjectKind,
    pub owner: String,
    pub previous_owner: Option<String>,
    /// Newer decisions win when the writer coalesces per record.
    pub decided_at: Millis,
    /// The event that caused the decision (for tracing and idempotency).
    pub event_id: String,
    pub territory: Option<String>,
    pub strategy: Strategy,
}
