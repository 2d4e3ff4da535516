//! `decide`: candidates → rules of engagement → distribution → fallback.
//! Pure: everything it needs is an argument, everything it changes is returned.

use allot_core::{
    CandidateNote, CandidateOutcome, Decision, DistributionNote, EngineState, Millis, ObjectKind,
    Record, StateOp, Strategy, DECISION_VERSION,
};

use crate::criteria::{record_domain, PreparedRecord};
use crate::distribute::distribute;
use crate::model::{Owner, RuleSet, Step, Territory};
use crate::reps::iso;

/// Adds an explanation line when the decision is explained in full.
macro_rules! say {
    ($d:expr, $($arg:tt)*) => {
        if $d.full {
            $d.explanation.push(format!($($arg)*));
        }
    };
}

/// How much a decision says about itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Detail {
    /// Explanation lines and every candidate's reason (the default).
    Full,
    /// Owner, territory, strategy and state changes only: for bulk
    /// realignment, where only the outcome is counted.
    Lean,
}

/// A decision and the state changes it implies (apply them before the next decision).
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub decision: Decision,
    pub ops: Vec<StateOp>,
}

/// How candidates are found: through the index, or by checking every territory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Matcher {
    Indexed,
    Naive,
}

/// Territories whose criteria (with inherited ones) hold for `record` and that
/// apply to its object kind, in rule-file order.
pub fn candidates(rules: &RuleSet, record: &Record, matcher: Matcher) -> Vec<usize> {
    let prepared = PreparedRecord::new(record, &rules.fields);
    find(rules, &prepared, record.object, matcher)
}

fn find(rules: &RuleSet, r: &PreparedRecord, kind: ObjectKind, matcher: Matcher) -> Vec<usize> {
    let ok = |t: &Territory| t.applies_to(kind) && t.criteria.eval(r);
    match matcher {
        Matcher::Naive => (0..rules.territories.len())
            .filter(|&i| ok(&rules.territories[i]))
            .collect(),
        Matcher::Indexed => {
            let mut probe = Vec::new();
            rules.index.probe(r, &mut probe);
            probe
                .into_iter()
                .map(|i| i as usize)
                .filter(|&i| ok(&rules.territories[i]))
                .collect()
        }
    }
}

/// Decides who owns `record` at `now` under `rules`, given `state`.
pub fn decide(rules: &RuleSet, state: &EngineState, record: &Record, now: Millis) -> Outcome {
    decide_with(rules, state, record, now, Matcher::Indexed, Detail::Full)
}

pub fn decide_with(
    rules: &RuleSet,
    state: &EngineState,
    record: &Record,
    now: Millis,
    matcher: Matcher,
    detail: Detail,
) -> Outcome {
    let prepared = PreparedRecord::new(record, &rules.fields);
    let found = find(rules, &prepared, record.object, matcher);
    let mut d = Draft::new(rules, state, record, now, &found, detail == Detail::Full);
    d.engage();
    d.finish()
}

/// Which distribution pools a decision about `record` reads, found without
/// reading any pool's state (`accounts` is only consulted for
/// lead-to-account). The match step keys the record to these.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// The pool of a named account's owner, tried first, when it may refuse
    /// the record (caps, nobody eligible) and differs from `pool`.
    pub named: Option<String>,
    /// The pool that resolves the decision (the winning territory's, the
    /// settled owner's, or the global fallback's); `None` when the decision
    /// reads and changes no rep's state.
    pub pool: Option<String>,
}

/// The [`Route`] of `record`: engagement run with every state-dependent
/// check left open.
pub fn route(rules: &RuleSet, accounts: &EngineState, record: &Record, now: Millis) -> Route {
    let prepared = PreparedRecord::new(record, &rules.fields);
    let found = find(rules, &prepared, record.object, Matcher::Indexed);
    let mut d = Draft::new(rules, accounts, record, now, &found, false);
    d.named_mode = NamedMode::Probe;
    d.engage();
    let pools = &rules.pools;
    let global = || rules.fallback.as_ref().map(|o| pools.of_owner(rules, o));
    let pool = match &d.settled {
        Settled::Owner(owner, _) => Some(pools.of_rep(rules, owner)),
        Settled::Territory(ti, _) => {
            let t = d.t(*ti);
            let mut chain = t.owner.iter().chain(t.fallback.iter()).collect::<Vec<_>>();
            let mut cur = t.parent;
            while let Some(c) = cur {
                chain.extend(d.t(c).fallback.as_ref());
                cur = d.t(c).parent;
            }
            chain
                .first()
                .map(|o| pools.of_owner(rules, o))
                .or_else(global)
        }
        Settled::Nothing => global(),
    };
    let named = d.probed_named.take().filter(|n| Some(n) != pool.as_ref());
    Route { named, pool }
}

/// A named account's owner trying to take a record in its own pool.
#[derive(Debug, Clone, PartialEq)]
pub enum NamedTry {
    /// The named account took it: this is the decision.
    Took(Box<Outcome>),
    /// It could not; the explanation line saying why (none in a lean
    /// decision) goes to [`decide_after_named`] in the next pool.
    Refused(Option<String>),
}

/// Decides `record` with `state` holding only the named account owner's
/// pool: the outcome counts only when the named account took the record.
pub fn try_named(rules: &RuleSet, state: &EngineState, record: &Record, now: Millis) -> NamedTry {
    let prepared = PreparedRecord::new(record, &rules.fields);
    let found = find(rules, &prepared, record.object, Matcher::Indexed);
    let mut d = Draft::new(rules, state, record, now, &found, true);
    d.engage();
    match d.named_refusal.take() {
        Some(line) => NamedTry::Refused(line),
        None => NamedTry::Took(Box::new(d.finish())),
    }
}

/// Decides `record` as [`decide`] does, the named account having refused it
/// in its own pool with `refusal`: exactly the decision one process holding
/// every pool would make.
pub fn decide_after_named(
    rules: &RuleSet,
    state: &EngineState,
    record: &Record,
    now: Millis,
    refusal: Option<String>,
) -> Outcome {
    let prepared = PreparedRecord::new(record, &rules.fields);
    let found = find(rules, &prepared, record.object, Matcher::Indexed);
    let mut d = Draft::new(rules, state, record, now, &found, true);
    d.named_mode = NamedMode::Refused(refusal);
    d.engage();
    d.finish()
}

/// How the named-account step is taken.
enum NamedMode {
    /// Checked against the state given (one process, or the owner's pool).
    Evaluate,
    /// Already refused in the owner's pool, with this explanation line.
    Refused(Option<String>),
    /// Routing: note the owner's pool and carry on as if refused.
    Probe,
}

/// Where a settled owner came from.
enum Settled {
    Owner(String, Strategy),
    Territory(usize, Strategy),
    Nothing,
}

struct Draft<'a> {
    rules: &'a RuleSet,
    state: &'a EngineState,
    record: &'a Record,
    now: Millis,
    /// Whether to write explanation lines and candidate reasons.
    full: bool,
    /// The record's company domain, worked out once.
    domain: Option<String>,
    live: Vec<usize>,
    notes: Vec<CandidateNote>,
    explanation: Vec<String>,
    warnings: Vec<String>,
    settled: Settled,
    owner: Option<String>,
    strategy: Strategy,
    territory: Option<usize>,
    distribution: Option<DistributionNote>,
    fallback_reason: Option<String>,
    ops: Vec<StateOp>,
    named_mode: NamedMode,
    /// Set when the named-account step handed the record on (with its line).
    named_refusal: Option<Option<String>>,
    /// Probe mode: the pool of the named account's owner, when it may decide.
    probed_named: Option<String>,
}

impl<'a> Draft<'a> {
    fn new(
        rules: &'a RuleSet,
        state: &'a EngineState,
        record: &'a Record,
        now: Millis,
        found: &[usize],
        full: bool,
    ) -> Self {
        let notes = found
            .iter()
            .map(|&i| {
                let t = &rules.territories[i];
                CandidateNote {
                    territory: t.id.clone(),
                    depth: t.depth,
                    priority: t.priority,
                    outcome: CandidateOutcome::Won,
                }
            })
            .collect();
        let mut explanation = Vec::new();
        if full && found.is_empty() {
            explanation.push("no territory matched".to_string());
        } else if full {
            let ids: Vec<String> = found
                .iter()
                .map(|&i| rules.territories[i].id.clone())
                .collect();
            explanation.push(format!(
                "matched {} territor{}: {}",
                found.len(),
                if found.len() == 1 { "y" } else { "ies" },
                ids.join(", ")
            ));
        }
        Draft {
            rules,
            state,
            record,
            now,
            full,
            domain: record_domain(record),
            live: found.to_vec(),
            notes,
            explanation,
            warnings: Vec::new(),
            settled: Settled::Nothing,
            owner: None,
            strategy: Strategy::Unassigned,
            territory: None,
            distribution: None,
            fallback_reason: None,
            ops: Vec::new(),
            named_mode: NamedMode::Evaluate,
            named_refusal: None,
            probed_named: None,
        }
    }

    fn t(&self, i: usize) -> &'a Territory {
        &self.rules.territories[i]
    }

    /// Marks every live candidate except `keep` as lost to `strategy`.
    fn drop_others(
        &mut self,
        keep: &[usize],
        strategy: Strategy,
        reason: impl Fn(&Territory) -> String,
    ) {
        for &i in &self.live {
            if !keep.contains(&i) {
                let id = &self.rules.territories[i].id;
                if let Some(n) = self.notes.iter_mut().find(|n| &n.territory == id) {
                    let reason = if self.full {
                        reason(&self.rules.territories[i])
                    } else {
                        String::new()
                    };
                    n.outcome = CandidateOutcome::Lost { strategy, reason };
                }
            }
        }
        self.live.retain(|i| keep.contains(i));
    }

    fn engage(&mut self) {
        let single = self.live.len() == 1;
        for &step in &self.rules.order {
            if !matches!(self.settled, Settled::Nothing) {
                break;
            }
            if self.live.len() <= 1
                && matches!(step, Step::MostSpecific | Step::Priority | Step::TieBreak)
            {
                continue;
            }
            match step {
                Step::NamedAccount => self.named_account(),
                Step::LeadToAccount => self.lead_to_account(),
                Step::ExistingOwner => self.existing_owner(),
                Step::MostSpecific => self.narrow(
                    Strategy::MostSpecific,
                    |t| i64::from(t.depth),
                    "less specific",
                ),
                Step::Priority => self.narrow(Strategy::Priority, |t| t.priority, "lower priority"),
                Step::TieBreak => {
                    let Some(&min) = self
                        .live
                        .iter()
                        .min_by_key(|&&i| &self.rules.territories[i].id)
                    else {
                        continue;
                    };
                    let winner = self.t(min).id.clone();
                    self.warnings.push(format!(
                        "only the tie-break separated {} (smallest id wins)",
                        self.live_ids()
                    ));
                    self.drop_others(&[min], Strategy::TieBreak, |_| {
                        format!("tie-break: \"{winner}\" has the smaller id")
                    });
                    say!(self, "tie_break: \"{winner}\" has the smallest id");
                    self.settled = Settled::Territory(min, Strategy::TieBreak);
                }
            }
        }
        if let Settled::Nothing = self.settled {
            match self.live.as_slice() {
                [] => {}
                [only] => {
                    let strategy = if single {
                        Strategy::OnlyCandidate
                    } else {
                        self.last_narrowing()
                    };
                    self.settled = Settled::Territory(*only, strategy);
                }
                _ => {
                    // No tie-break configured but several remain: stay deterministic.
                    let Some(&min) = self
                        .live
                        .iter()
                        .min_by_key(|&&i| &self.rules.territories[i].id)
                    else {
                        return;
                    };
                    self.warnings.push(format!(
                        "engagement left {} tied and has no tie_break step; smallest id chosen",
                        self.live_ids()
                    ));
                    self.drop_others(&[min], Strategy::TieBreak, |_| {
                        "tied; smallest id chosen".into()
                    });
                    self.settled = Settled::Territory(min, Strategy::TieBreak);
                }
            }
        }
    }

    fn live_ids(&self) -> String {
        let ids: Vec<&str> = self
            .live
            .iter()
            .map(|&i| self.rules.territories[i].id.as_str())
            .collect();
        ids.join(", ")
    }

    fn last_narrowing(&self) -> Strategy {
        self.notes
            .iter()
            .rev()
            .find_map(|n| match &n.outcome {
                CandidateOutcome::Lost { strategy, .. } => Some(*strategy),
                CandidateOutcome::Won => None,
            })
            .unwrap_or(Strategy::OnlyCandidate)
    }

    /// Keeps the live candidates with the highest `key`.
    fn narrow(&mut self, strategy: Strategy, key: impl Fn(&Territory) -> i64, worse: &str) {
        let Some(best) = self.live.iter().map(|&i| key(self.t(i))).max() else {
            return;
        };
        let keep: Vec<usize> = self
            .live
            .iter()
            .copied()
            .filter(|&i| key(self.t(i)) == best)
            .collect();
        if keep.len() < self.live.len() {
            if self.full {
                let kept: Vec<&str> = keep.iter().map(|&i| self.t(i).id.as_str()).collect();
                say!(
                    self,
                    "{}: kept {} ({best})",
                    strategy.as_str(),
                    kept.join(", ")
                );
            }
            self.drop_others(&keep, strategy, |t| {
                format!("{worse} ({} < {best})", key(t))
            });
        }
    }

    fn settle_owner(&mut self, owner: String, strategy: Strategy, why: String) {
        self.explanation.push(why.clone());
        let live = self.live.clone();
        self.drop_others(&[], strategy, |_| why.clone());
        self.live = live;
        self.settled = Settled::Owner(owner, strategy);
    }

    fn named_account(&mut self) {
        let r = self.record;
        let domain = self.domain.clone();
        let company = r
            .field("company")
            .and_then(|v| v.as_text())
            .map(|c| c.trim().to_lowercase());
        let hit = self.rules.named_accounts.iter().find(|n| {
            (r.object == ObjectKind::Account && n.account_ids.contains(&r.id))
                || domain.as_ref().is_some_and(|d| {
                    n.domains
                        .iter()
                        .any(|x| crate::normalize::domain_matches(d, x))
                })
                || company.as_ref().is_some_and(|c| n.names.contains(c))
        });
        let Some(named) = hit else { return };
        match std::mem::replace(&mut self.named_mode, NamedMode::Evaluate) {
            NamedMode::Refused(line) => {
                self.explanation.extend(line.clone());
                self.named_mode = NamedMode::Refused(line);
                return;
            }
            NamedMode::Probe => {
                self.named_mode = NamedMode::Probe;
                // Refusals that read no state are the same everywhere.
                let stateless = match &named.owner {
                    Owner::Rep(rep) => self.rules.rep(rep).is_some_and(|x| {
                        x.ineligible(None, &EngineState::default(), self.now)
                            .is_some()
                    }),
                    Owner::Team { .. } => false,
                };
                if !stateless {
                    self.probed_named = Some(self.rules.pools.of_owner(self.rules, &named.owner));
                }
                return;
            }
            NamedMode::Evaluate => {}
        }
        match &named.owner {
            Owner::Rep(rep) => {
                if let Some(why) = self
                    .rules
                    .rep(rep)
                    .and_then(|x| x.ineligible(None, self.state, self.now))
                {
                    let line = self.full.then(|| {
                        format!(
                            "named_account: \"{}\" owner {rep} is {why}; handing on",
                            named.id
                        )
                    });
                    self.explanation.extend(line.clone());
                    self.named_refusal = Some(line);
                    return;
                }
                let why = format!("named_account: \"{}\" is owned by {rep}", named.id);
                self.settle_owner(rep.clone(), Strategy::NamedAccount, why);
            }
            Owner::Team { team, method } => {
                let pick = distribute(self.rules, *team, *method, None, self.state, self.now);
                match pick.rep {
                    Some(m) => {
                        let rep = self.rules.reps[m].id.clone();
                        self.ops.extend(pick.cursor);
                        self.distribution = Some(pick.note);
                        let why = format!(
                            "named_account: \"{}\" goes to team {}, {rep} picked",
                            named.id, self.rules.teams[*team].id
                        );
                        self.settle_owner(rep, Strategy::NamedAccount, why);
                    }
                    None => {
                        let line = format!(
                            "named_account: \"{}\" team has nobody eligible; handing on",
                            named.id
                        );
                        self.explanation.push(line.clone());
                        self.named_refusal = Some(Some(line));
                    }
                }
            }
        }
    }

    fn lead_to_account(&mut self) {
        if self.record.object == ObjectKind::Account {
            return;
        }
        let Some(domain) = self.domain.clone() else {
            return;
        };
        if self.rules.free_mail.contains(&domain) {
            say!(
                self,
                "lead_to_account: {domain} is a free-mail domain; not matched"
            );
            return;
        }
        let Some(accounts) = self.state.accounts_by_domain.get(&domain) else {
            return;
        };
        let named = |id: &str| {
            self.rules
                .named_accounts
                .iter()
                .any(|n| n.account_ids.contains(id))
        };
        let best = accounts
            .iter()
            .filter(|a| a.owner.is_some())
            .max_by(|a, b| {
                (
                    named(&a.account_id),
                    a.updated_at,
                    std::cmp::Reverse(&a.account_id),
                )
                    .cmp(&(
                        named(&b.account_id),
                        b.updated_at,
                        std::cmp::Reverse(&b.account_id),
                    ))
            });
        let Some(acc) = best else { return };
        let Some(owner) = acc.owner.clone() else {
            return;
        };
        if let Some(rep) = self.rules.rep(&owner) {
            if !rep.active {
                say!(
                    self,
                    "lead_to_account: account {} owner {owner} is inactive; handing on",
                    acc.account_id
                );
                return;
            }
        }
        let why = format!(
            "lead_to_account: {domain} matches account {} owned by {owner}",
            acc.account_id
        );
        self.settle_owner(owner, Strategy::LeadToAccount, why);
    }

    fn existing_owner(&mut self) {
        let Some(owner) = self.record.owner.clone() else {
            return;
        };
        let Some(rep) = self.rules.rep(&owner) else {
            return;
        };
        if let (Some(window), Some(since)) =
            (self.rules.existing_owner_window, self.record.owner_since)
        {
            if self.now - since > window {
                say!(
                    self,
                    "existing_owner: {owner}'s protection ended (owner since {})",
                    iso(since)
                );
                return;
            }
        }
        // The record is already theirs: caps and working hours do not apply
        // to keeping it, only being active and present.
        if !rep.active || rep.away_until(self.now).is_some() {
            let why = if rep.active {
                "out of office"
            } else {
                "inactive"
            };
            say!(self, "existing_owner: {owner} is {why}; not kept");
            return;
        }
        let Some(rep_ix) = self.rules.rep_ix.get(&owner).copied() else {
            return;
        };
        let holds = |t: &Territory| match &t.owner {
            Some(Owner::Rep(r)) => r == &owner,
            Some(Owner::Team { team, .. }) => self.rules.teams[*team].members.contains(&rep_ix),
            None => false,
        };
        let mut theirs: Vec<usize> = self
            .live
            .iter()
            .copied()
            .filter(|&i| holds(self.t(i)))
            .collect();
        theirs.sort_by(|&a, &b| {
            let (x, y) = (self.t(a), self.t(b));
            (y.depth, y.priority, &x.id).cmp(&(x.depth, x.priority, &y.id))
        });
        let Some(&keep) = theirs.first() else { return };
        let why = format!(
            "existing_owner: {owner} is eligible in \"{}\" and keeps the record",
            self.t(keep).id
        );
        self.explanation.push(why.clone());
        self.drop_others(&[keep], Strategy::ExistingOwner, |_| why.clone());
        self.settled = Settled::Owner(owner, Strategy::ExistingOwner);
        self.territory = Some(keep);
    }

    /// Resolves the settled territory's owner, with the fallback chain.
    fn resolve_territory(&mut self, ti: usize, strategy: Strategy) {
        let t = self.t(ti);
        self.territory = Some(ti);
        self.strategy = strategy;
        say!(self, "winner: \"{}\" ({})", t.id, strategy.as_str());
        let reason = match &t.owner {
            Some(owner) => match self.assign(owner, Some(t)) {
                Ok(()) => return,
                Err(why) => why,
            },
            None => "territory has no owner".to_string(),
        };
        let mut chain: Vec<&Owner> = Vec::new();
        let mut cur = Some(ti);
        while let Some(c) = cur {
            chain.extend(self.t(c).fallback.as_ref());
            cur = self.t(c).parent;
        }
        self.fall_back(chain, reason, Some(t));
    }

    /// Assigns `owner`, distributing inside a team; `Err` says why nobody could be picked.
    fn assign(&mut self, owner: &Owner, t: Option<&Territory>) -> Result<(), String> {
        match owner {
            Owner::Rep(rep) => {
                if let Some(why) = self
                    .rules
                    .rep(rep)
                    .and_then(|r| r.ineligible(t, self.state, self.now))
                {
                    return Err(format!("owner {rep} is {why}"));
                }
                self.distribution = Some(DistributionNote {
                    team: None,
                    method: "rep".into(),
                    rep: Some(rep.clone()),
                    skipped: vec![],
                });
                self.owner = Some(rep.clone());
                say!(self, "owner: {rep}");
                Ok(())
            }
            Owner::Team { team, method } => {
                let pick = distribute(self.rules, *team, *method, t, self.state, self.now);
                let team_id = &self.rules.teams[*team].id;
                let skipped: Vec<String> = pick
                    .note
                    .skipped
                    .iter()
                    .map(|s| format!("{} {}", s.rep, s.reason))
                    .collect();
                let result = match pick.rep {
                    Some(m) => {
                        let rep = self.rules.reps[m].id.clone();
                        let skip = if skipped.is_empty() {
                            String::new()
                        } else {
                            format!(" (skipped: {})", skipped.join("; "))
                        };
                        say!(
                            self,
                            "{} in team {team_id} picked {rep}{skip}",
                            method.as_str()
                        );
                        self.owner = Some(rep);
                        self.ops.extend(pick.cursor);
                        Ok(())
                    }
                    None => Err(format!(
                        "nobody eligible in team {team_id}: {}",
                        skipped.join("; ")
                    )),
                };
                self.distribution = Some(pick.note);
                result
            }
        }
    }

    fn fall_back(&mut self, chain: Vec<&Owner>, first_reason: String, t: Option<&Territory>) {
        say!(self, "fallback: {first_reason}");
        self.strategy = Strategy::Fallback;
        self.fallback_reason = Some(first_reason);
        let global = self.rules.fallback.as_ref();
        for owner in chain.into_iter().chain(global) {
            // Fallback owners take records regardless of caps and hours; they must be active.
            let result = match owner {
                Owner::Rep(rep) if self.rules.rep(rep).is_some_and(|r| !r.active) => {
                    Err(format!("fallback {rep} is inactive"))
                }
                Owner::Rep(rep) => {
                    self.owner = Some(rep.clone());
                    say!(self, "fallback owner: {rep}");
                    Ok(())
                }
                team => self.assign(team, t),
            };
            match result {
                Ok(()) => return,
                Err(why) => self.explanation.push(format!("fallback: {why}")),
            }
        }
        self.strategy = Strategy::Unassigned;
        self.owner = self.record.owner.clone();
        self.explanation
            .push("unassigned: no fallback owner could take the record; owner left as is".into());
    }

    fn finish(mut self) -> Outcome {
        match std::mem::replace(&mut self.settled, Settled::Nothing) {
            Settled::Owner(owner, strategy) => {
                self.owner = Some(owner);
                self.strategy = strategy;
            }
            Settled::Territory(ti, strategy) => self.resolve_territory(ti, strategy),
            Settled::Nothing => self.fall_back(Vec::new(), "no territory matched".into(), None),
        }
        let record = self.record;
        let changed = self.owner.is_some() && self.owner != record.owner;
        if changed {
            if let Some(new) = &self.owner {
                self.ops.push(StateOp::OpenDelta {
                    rep: new.clone(),
                    delta: 1,
                });
                let day = self
                    .rules
                    .rep(new)
                    .map_or(self.now.div_euclid(allot_core::DAY_MS), |r| r.day(self.now));
                self.ops.push(StateOp::DailyInc {
                    rep: new.clone(),
                    day,
                });
            }
            if let Some(old) = &record.owner {
                self.ops.push(StateOp::OpenDelta {
                    rep: old.clone(),
                    delta: -1,
                });
            }
        }
        if record.object == ObjectKind::Account {
            if let Some(domain) = self.domain.take() {
                let account = allot_core::AccountRef {
                    account_id: record.id.clone(),
                    owner: self.owner.clone(),
                    updated_at: record.updated_at.unwrap_or(self.now),
                };
                self.ops.push(StateOp::UpsertAccount { domain, account });
            }
        }
        let decision = Decision {
            v: DECISION_VERSION,
            record_id: record.id.clone(),
            object: record.object,
            decided_at: self.now,
            rules_version: self.rules.version.clone(),
            previous_owner: record.owner.clone(),
            owner: self.owner,
            territory: self.territory.map(|i| self.rules.territories[i].id.clone()),
            strategy: self.strategy,
            changed,
            candidates: self.notes,
            distribution: self.distribution,
            fallback_reason: self.fallback_reason,
            warnings: self.warnings,
            explanation: self.explanation,
        };
        Outcome {
            decision,
            ops: self.ops,
        }
    }
}

/// State changes when a record leaves its owner's workload (deleted, closed,
/// converted): the open count drops and a deleted account stops matching leads.
/// The lead-to-account index entry of an account as it stands (its domain
/// and owner), for accounts stored without a decision: read from the book,
/// or reassigned by a person. Empty for other records or without a domain.
pub fn index_account(record: &Record, now: Millis) -> Vec<StateOp> {
    if record.object != ObjectKind::Account || record.deleted {
        return Vec::new();
    }
    let Some(domain) = record_domain(record) else {
        return Vec::new();
    };
    let account = allot_core::AccountRef {
        account_id: record.id.clone(),
        owner: record.owner.clone(),
        updated_at: record.updated_at.unwrap_or(now),
    };
    vec![StateOp::UpsertAccount { domain, account }]
}

pub fn release(record: &Record) -> Vec<StateOp> {
    let mut ops = Vec::new();
    if let Some(owner) = &record.owner {
        ops.push(StateOp::OpenDelta {
            rep: owner.clone(),
            delta: -1,
        });
    }
    if record.object == ObjectKind::Account {
        if let Some(domain) = record_domain(record) {
            ops.push(StateOp::RemoveAccount {
                domain,
                account_id: record.id.clone(),
            });
        }
    }
    ops
}
