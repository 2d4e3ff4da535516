//! Distribution pools: the unit that owns distribution state when the
//! decision is split in two keyed steps (match by record, distribute by
//! pool).
//!
//! A decision reads state only while picking or checking a rep: a team's
//! rotation cursor, and its members' open and daily counts. A pool is a
//! set of teams and reps such that every state one distribution can read
//! lies inside it:
//! - a team and its members are one pool, so two teams sharing a rep are one pool;
//! - a territory's owner and the teams in its fallback chain are one pool
//!   (resolving a territory may fall back to them);
//! - a global fallback that is a team joins every territory's pool.
//!
//! A rep owned through no team is its own pool. Fallback reps read no
//! state (they take records regardless of caps), so they join nothing.
//! A pool is named after its smallest team id, or `rep:<id>` for a lone rep.

use std::collections::BTreeMap;

use allot_core::StateOp;

use crate::model::{Owner, RuleSet};

/// The pool of every team and rep of a rule set.
#[derive(Debug, Clone, Default)]
pub struct Pools {
    /// Pool name by team index.
    team: Vec<String>,
    /// Pool name by rep index.
    rep: Vec<String>,
}

impl Pools {
    pub(crate) fn build(rules: &RuleSet) -> Pools {
        let (nt, nr) = (rules.teams.len(), rules.reps.len());
        // Nodes: teams 0..nt, reps nt..nt+nr.
        let mut uf = UnionFind::new(nt + nr);
        for (t, team) in rules.teams.iter().enumerate() {
            for &m in &team.members {
                uf.union(t, nt + m);
            }
        }
        let node = |o: &Owner| match o {
            Owner::Team { team, .. } => Some(*team),
            Owner::Rep(r) => rules.rep_ix.get(r).map(|&i| nt + i),
        };
        let global_team = match &rules.fallback {
            Some(Owner::Team { team, .. }) => Some(*team),
            _ => None,
        };
        for (ti, t) in rules.territories.iter().enumerate() {
            let Some(own) = t.owner.as_ref().and_then(node) else {
                continue;
            };
            let mut cur = Some(ti);
            while let Some(c) = cur {
                if let Some(Owner::Team { team, .. }) = &rules.territories[c].fallback {
                    uf.union(own, *team);
                }
                cur = rules.territories[c].parent;
            }
            if let Some(g) = global_team {
                uf.union(own, g);
            }
        }
        // Name each component after its smallest team id, else its rep.
        let mut names: BTreeMap<usize, String> = BTreeMap::new();
        for (t, team) in rules.teams.iter().enumerate() {
            let root = uf.find(t);
            let name = names.entry(root).or_insert_with(|| team.id.clone());
            if team.id < *name {
                name.clone_from(&team.id);
            }
        }
        let team = (0..nt).map(|t| names[&uf.find(t)].clone()).collect();
        let rep = (0..nr)
            .map(|r| {
                names
                    .get(&uf.find(nt + r))
                    .cloned()
                    .unwrap_or_else(|| format!("rep:{}", rules.reps[r].id))
            })
            .collect();
        Pools { team, rep }
    }

    /// The pool of a rep known to the rules, or `rep:<id>` for one that is not.
    pub fn of_rep(&self, rules: &RuleSet, rep: &str) -> String {
        match rules.rep_ix.get(rep) {
            Some(&i) => self.rep[i].clone(),
            None => format!("rep:{rep}"),
        }
    }

    /// The pool whose state `op` changes; `None` for the account table,
    /// which every match step reads in full.
    pub fn of_op(&self, rules: &RuleSet, op: &StateOp) -> Option<String> {
        match op {
            StateOp::SetCursor { team, .. } => Some(match rules.team_ix.get(team) {
                Some(&t) => self.team[t].clone(),
                None => format!("team:{team}"),
            }),
            StateOp::OpenDelta { rep, .. } | StateOp::DailyInc { rep, .. } => {
                Some(self.of_rep(rules, rep))
            }
            StateOp::UpsertAccount { .. } | StateOp::RemoveAccount { .. } => None,
        }
    }

    pub(crate) fn of_owner(&self, rules: &RuleSet, owner: &Owner) -> String {
        match owner {
            Owner::Team { team, .. } => self.team[*team].clone(),
            Owner::Rep(r) => self.of_rep(rules, r),
        }
    }

    /// Every pool name, sorted and without repeats.
    pub fn names(&self) -> Vec<String> {
        let mut all: Vec<String> = self.team.iter().chain(&self.rep).cloned().collect();
        all.sort();
        all.dedup();
        all
    }
}

struct UnionFind {
    parent: Vec<usize>,
}

impl UnionFind {
    fn new(n: usize) -> UnionFind {
        UnionFind {
            parent: (0..n).collect(),
        }
    }

    fn find(&mut self, mut x: usize) -> usize {
        while self.parent[x] != x {
            self.parent[x] = self.parent[self.parent[x]];
            x = self.parent[x];
        }
        x
    }

    fn union(&mut self, a: usize, b: usize) {
        let (ra, rb) = (self.find(a), self.find(b));
        if ra != rb {
            self.parent[ra.max(rb)] = ra.min(rb);
        }
    }
}
