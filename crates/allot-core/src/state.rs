//! Engine state: explicit, serialisable data handed to `decide` and changed
//! only by applying the [`StateOp`]s a decision returns.

use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;

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
    /// Known accounts by lower-case domain. A hash map: it holds one entry
    /// per account domain (millions), and is written out sorted.
    #[serde(default, serialize_with = "sorted")]
    pub accounts_by_domain: HashMap<String, Vec<AccountRef>>,
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

    /// Like [`EngineState::apply`], moving the ops' values instead of cloning them.
    pub fn apply_owned(&mut self, ops: Vec<StateOp>) {
        for op in ops {
            match op {
                StateOp::SetCursor { team, cursor } => {
                    self.cursors.insert(team, cursor);
                }
                other => self.apply_one(&other),
            }
        }
    }

    pub fn apply_one(&mut self, op: &StateOp) {
        match op {
            StateOp::SetCursor { team, cursor } => match self.cursors.get_mut(team) {
                Some(c) => c.clone_from(cursor),
                None => {
                    self.cursors.insert(team.clone(), cursor.clone());
                }
            },
            StateOp::OpenDelta { rep, delta } => {
                let n = entry(&mut self.open, rep);
                *n = (*n + delta).max(0);
            }
            StateOp::DailyInc { rep, day } => {
                let d = entry(&mut self.daily, rep);
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
                let list = entry(&mut self.accounts_by_domain, domain);
                match list.iter_mut().find(|a| a.account_id == account.account_id) {
                    Some(a) => a.clone_from(account),
                    None => list.push(account.clone()),
                }
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

/// Serialises a hash map in key order, so state files are stable.
fn sorted<S: serde::Serializer, K: Ord + Serialize + Hash, V: Serialize>(
    m: &HashMap<K, V>,
    s: S,
) -> Result<S::Ok, S::Error> {
    let ordered: BTreeMap<&K, &V> = m.iter().collect();
    ordered.serialize(s)
}

/// Maps with `String` keys.
trait StrMap<V> {
    fn has(&self, key: &str) -> bool;
    fn put(&mut self, key: String, v: V);
    fn get_mut_str(&mut self, key: &str) -> Option<&mut V>;
}

impl<V> StrMap<V> for BTreeMap<String, V> {
    fn has(&self, key: &str) -> bool {
        self.contains_key(key)
    }
    fn put(&mut self, key: String, v: V) {
        self.insert(key, v);
    }
    fn get_mut_str(&mut self, key: &str) -> Option<&mut V> {
        self.get_mut(key)
    }
}

impl<V> StrMap<V> for HashMap<String, V> {
    fn has(&self, key: &str) -> bool {
        self.contains_key(key)
    }
    fn put(&mut self, key: String, v: V) {
        self.insert(key, v);
    }
    fn get_mut_str(&mut self, key: &str) -> Option<&mut V> {
        self.get_mut(key)
    }
}

/// The value under `key`, inserted as default first; allocates the key only
/// when it is new.
fn entry<'m, V: Default>(map: &'m mut impl StrMap<V>, key: &str) -> &'m mut V {
    if !map.has(key) {
        map.put(key.to_string(), V::default());
    }
    map.get_mut_str(key).expect("inserted above")
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
