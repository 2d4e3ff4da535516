//! Picking a rep inside a team: round robin, smooth weighted round robin,
//! least loaded. Pure: the cursor comes in with the state and goes out as a
//! [`StateOp::SetCursor`].

use allot_core::{Cursor, DistributionNote, EngineState, Millis, SkippedRep, StateOp};

use crate::model::{Method, RuleSet, Territory};

/// The outcome of distributing one record inside a team.
pub(crate) struct Pick {
    /// Index into [`RuleSet::reps`].
    pub rep: Option<usize>,
    pub note: DistributionNote,
    pub cursor: Option<StateOp>,
}

pub(crate) fn distribute(
    rules: &RuleSet,
    team: usize,
    method: Method,
    territory: Option<&Territory>,
    state: &EngineState,
    now: Millis,
) -> Pick {
    let team = &rules.teams[team];
    let cursor = state.cursors.get(&team.id).cloned().unwrap_or_default();
    // Rotation order: members after the last assigned rep first, so ties and
    // skips continue the rotation instead of restarting it.
    let start = cursor
        .last
        .as_ref()
        .and_then(|last| team.members.iter().position(|&m| &rules.reps[m].id == last))
        .map_or(0, |p| p + 1);
    let n = team.members.len();
    let rotation = (0..n).map(|k| team.members[(start + k) % n]);
    let mut skipped = Vec::new();
    let mut check = |m: usize| match rules.reps[m].ineligible(territory, state, now) {
        None => true,
        Some(reason) => {
            skipped.push(SkippedRep {
                rep: rules.reps[m].id.clone(),
                reason,
            });
            false
        }
    };
    let mut weights = cursor.weights.clone();
    let pick = match method {
        Method::RoundRobin => rotation.clone().find(|&m| check(m)),
        Method::LeastLoaded => rotation
            .clone()
            .filter(|&m| check(m))
            .enumerate()
            .min_by_key(|(order, m)| (state.open_count(&rules.reps[*m].id), *order))
            .map(|(_, m)| m),
        Method::Weighted => {
            // Smooth weighted round robin (as in nginx). A rep who is not
            // eligible has its credit reset: no burst when it returns.
            let eligible: Vec<usize> = rotation.clone().filter(|&m| check(m)).collect();
            let total: i64 = eligible
                .iter()
                .map(|&m| i64::from(rules.reps[m].weight))
                .sum();
            for &m in &team.members {
                let id = &rules.reps[m].id;
                if eligible.contains(&m) {
                    *weights.entry(id.clone()).or_insert(0) += i64::from(rules.reps[m].weight);
                } else {
                    weights.remove(id);
                }
            }
            let best = eligible
                .iter()
                .enumerate()
                .max_by_key(|(order, m)| {
                    (
                        weights.get(&rules.reps[**m].id).copied().unwrap_or(0),
                        std::cmp::Reverse(*order),
                    )
                })
                .map(|(_, m)| *m);
            if let Some(b) = best {
                *weights.entry(rules.reps[b].id.clone()).or_insert(0) -= total;
            }
            best
        }
    };
    let cursor_op = pick.map(|m| StateOp::SetCursor {
        team: team.id.clone(),
        cursor: Cursor {
            last: Some(rules.reps[m].id.clone()),
            weights: if method == Method::Weighted {
                weights
            } else {
                cursor.weights
            },
        },
    });
    Pick {
        rep: pick,
        note: DistributionNote {
            team: Some(team.id.clone()),
            method: method.as_str().to_string(),
            rep: pick.map(|m| rules.reps[m].id.clone()),
            skipped,
        },
        cursor: cursor_op,
    }
}
