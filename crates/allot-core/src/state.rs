//! Engine state: explicit, serialisable data handed to `decide` and changed
//! only by applying the [`StateOp`]s a decision returns.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::Millis;

/// A team's rotation position.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    /// The rep assigned last (round robin and least-loaded ties continue after them).
    pub last: Option<String>,
    /// Smooth weighted round robin: each rep's current weight.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub weights: BTreeMap<String, i64>,
}

/// An account known by its domain (for lead-to-account matching).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountRef {
    pub account_id: String,
    pub owner: Option<String>,
    pub updated_at: Millis,
}

/// Records assigned to a rep on one day (the day number is in the rep's time zone).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DailyCount {
    pub day: i64,
    pub count: u32,
}

/// One change to [`EngineState`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum StateOp {
    SetCursor {
        team: String,
        cursor: Cursor,
    },
    /// Open-record count of a rep changes by `delta`.
    OpenDelta {
        rep: String,
        delta: i64,
    },
    /// One more record assigned to `rep` on `day`.
    DailyInc {
        rep: String,
        day: i64,
    },
    UpsertAccount {
        domain: String,
        account: AccountRef,
    },
    RemoveAccount {
        domain: String,
        account_id: String,
    },
}

/// Everything the engine remembers between decisions.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EngineState {
    #[serde(default)]
    pub cursors: BTreeMap<String, Cursor>,
    /// Open records per rep.
    #[serde(default)]
    pub open: BTreeMap<String, i64>,
    #[serde(default)]
    pub daily: BTreeMap<String, DailyCount>,
    /// Known accounts by lower-case domain.
    #[serde(default)]
    pub accounts_by_domain: BTreeMap<String, Vec<AccountRef>>,
}

impl EngineState {
    pub fn open_count(&self, rep: &str) -> i64 {
        self.open.get(rep).copied().unwrap_or(0)
    }

    pub fn daily_count(&self, rep: &str, day: i64) -> u32 {
        match self.daily.get(rep) {
            Some(d) if d.day == day => d.count,
            _ => 0,
        }
    }

    pub fn apply(&mut self, ops: &[StateOp]) {
        for op in ops {
            self.apply_one(op);
        }
    }

    pub fn apply_one(&mut self, op: &StateOp) {
        match op {
            StateOp::SetCursor { team, cursor } => {
                self.cursors.insert(team.clone(), cursor.clone());
            }
            StateOp::OpenDelta { rep, delta } => {
                let n = self.open.entry(rep.clone()).or_insert(0);
                *n = (*n + delta).max(0);
            }
            StateOp::DailyInc { rep, day } => {
                let d = self.daily.entry(rep.clone()).or_default();
                if d.day == *day {
                    d.count += 1;
                } else if d.day < *day || d.count == 0 {
                    *d = DailyCount {
                        day: *day,
                        count: 1,
                    };
                }
            }
            StateOp::UpsertAccount { domain, account } => {
                let list = self.accounts_by_domain.entry(domain.clone()).or_default();
                list.retain(|a| a.account_id != account.account_id);
                list.push(account.clone());
            }
            StateOp::RemoveAccount { domain, account_id } => {
                if let Some(list) = self.accounts_by_domain.get_mut(domain) {
                    list.retain(|a| &a.account_id != account_id);
                    if list.is_empty() {
                        self.accounts_by_domain.remove(domain);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn daily_counts_reset_on_a_new_day() {
        let mut s = EngineState::default();
        let inc = |day| StateOp::DailyInc {
            rep: "r".into(),
            day,
        };
        s.apply(&[inc(10), inc(10), inc(11)]);
        assert_eq!(s.daily_count("r", 11), 1);
        assert_eq!(s.daily_count("r", 10), 0);
    }

    #[test]
    fn open_counts_never_go_negative() {
        let mut s = EngineState::default();
        s.apply(&[StateOp::OpenDelta {
            rep: "r".into(),
            delta: -3,
        }]);
        assert_eq!(s.open_count("r"), 0);
    }

    #[test]
    fn accounts_upsert_replaces_by_id() {
        let mut s = EngineState::default();
        let acc = |owner: &str, t| StateOp::UpsertAccount {
            domain: "acme.com".into(),
            account: AccountRef {
                account_id: "a1".into(),
                owner: Some(owner.into()),
                updated_at: t,
            },
        };
        s.apply(&[acc("x", 1), acc("y", 2)]);
        let list = &s.accounts_by_domain["acme.com"];
        assert_eq!(list.len(), 1);
        assert_eq!(list[0].owner.as_deref(), Some("y"));
    }
}
