//! Engine state stored piece by piece so each [`StateOp`] touches one key.
//!
//! Keys: `("cursor", team)` → `Cursor`, `("open", rep)` → `i64`,
//! `("daily", rep)` → `DailyCount`, `("domain", domain)` → `Vec<AccountRef>`.
//!
//! Each op is applied by loading just the piece it touches into an otherwise
//! empty `EngineState`, running `EngineState::apply_one` on it and writing the
//! piece back. The semantics (open counts floor at zero, daily counts reset on
//! a newer day, accounts upsert by id) therefore live only in `allot-core`,
//! and the stored state always equals `EngineState::apply` of the same ops.

use allot_core::{AccountRef, Cursor, DailyCount, EngineState, StateOp};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::Result;
use crate::key::{Key, Reader};
use crate::store::{Store, Table};
use crate::tx::{Tx, TxResult};

const CURSOR: &str = "cursor";
const OPEN: &str = "open";
const DAILY: &str = "daily";
const DOMAIN: &str = "domain";

fn state_key(kind: &str, name: &str) -> Key {
    Key::new().str(kind).str(name)
}

/// Loads one piece into `slot`, applies `op`, writes back what `take` yields
/// (removing the key when the piece is gone).
fn update<T, F>(
    tx: &Tx<'_>,
    kind: &str,
    name: &str,
    op: &StateOp,
    mut load: impl FnMut(&mut EngineState, T),
    take: F,
) -> TxResult<()>
where
    T: Serialize + DeserializeOwned,
    F: FnOnce(&mut EngineState) -> Option<T>,
{
    let key = state_key(kind, name);
    let mut mini = EngineState::default();
    if let Some(current) = tx.get::<T>(Table::State, &key)? {
        load(&mut mini, current);
    }
    mini.apply_one(op);
    match take(&mut mini) {
        Some(next) => tx.put(Table::State, &key, &next).map(|_| ()),
        None => tx.remove(Table::State, &key).map(|_| ()),
    }
}

pub(crate) fn tx_apply(tx: &Tx<'_>, op: &StateOp) -> TxResult<()> {
    match op {
        StateOp::SetCursor { team, cursor } => tx
            .put(Table::State, &state_key(CURSOR, team), cursor)
            .map(|_| ()),
        StateOp::OpenDelta { rep, .. } => update(
            tx,
            OPEN,
            rep,
            op,
            |s, n: i64| {
                s.open.insert(rep.clone(), n);
            },
            |s| s.open.remove(rep),
        ),
        StateOp::DailyInc { rep, .. } => update(
            tx,
            DAILY,
            rep,
            op,
            |s, d: DailyCount| {
                s.daily.insert(rep.clone(), d);
            },
            |s| s.daily.remove(rep),
        ),
        StateOp::UpsertAccount { domain, .. } | StateOp::RemoveAccount { domain, .. } => update(
            tx,
            DOMAIN,
            domain,
            op,
            |s, list: Vec<AccountRef>| {
                s.accounts_by_domain.insert(domain.clone(), list);
            },
            |s| s.accounts_by_domain.remove(domain),
        ),
    }
}

impl Store {
    /// The whole engine state, assembled from its pieces.
    pub fn engine_state(&self) -> Result<EngineState> {
        let inner = &self.inner;
        let mut state = EngineState::default();
        for entry in inner.range_raw(Table::State, ..) {
            let (k, v) = entry?;
            let mut r = Reader::new(&k).ok_or_else(|| inner.bad_key(Table::State, &k))?;
            let (Some(kind), Some(name)) = (r.str(), r.str()) else {
                return Err(inner.bad_key(Table::State, &k));
            };
            match kind.as_str() {
                CURSOR => {
                    state
                        .cursors
                        .insert(name, inner.decode::<Cursor>(Table::State, &k, &v)?);
                }
                OPEN => {
                    state
                        .open
                        .insert(name, inner.decode::<i64>(Table::State, &k, &v)?);
                }
                DAILY => {
                    state
                        .daily
                        .insert(name, inner.decode::<DailyCount>(Table::State, &k, &v)?);
                }
                DOMAIN => {
                    state
                        .accounts_by_domain
                        .insert(name, inner.decode::<Vec<AccountRef>>(Table::State, &k, &v)?);
                }
                _ => return Err(inner.bad_key(Table::State, &k)),
            }
        }
        Ok(state)
    }

    /// Open records per rep: only the `open` pieces, read by prefix (cheap
    /// enough to poll; `engine_state` also reads every account domain).
    pub fn open_loads(&self) -> Result<Vec<(String, i64)>> {
        let inner = &self.inner;
        inner
            .prefix::<i64>(Table::State, Key::new().str(OPEN))
            .map(|r| {
                let (k, n) = r?;
                let mut rd = Reader::new(&k).ok_or_else(|| inner.bad_key(Table::State, &k))?;
                let (_, rep) = (rd.str(), rd.str());
                Ok((rep.ok_or_else(|| inner.bad_key(Table::State, &k))?, n))
            })
            .collect()
    }
}

/// Decodes a `state` value by its key kind; used by `check`.
pub(crate) fn check_value(store: &Store, key: &[u8], value: &[u8]) -> Result<()> {
    let inner = &store.inner;
    let kind = Reader::new(key)
        .and_then(|mut r| r.str())
        .ok_or_else(|| inner.bad_key(Table::State, key))?;
    match kind.as_str() {
        CURSOR => inner.decode::<Cursor>(Table::State, key, value).map(|_| ()),
        OPEN => inner.decode::<i64>(Table::State, key, value).map(|_| ()),
        DAILY => inner
            .decode::<DailyCount>(Table::State, key, value)
            .map(|_| ()),
        DOMAIN => inner
            .decode::<Vec<AccountRef>>(Table::State, key, value)
            .map(|_| ()),
        _ => Err(inner.bad_key(Table::State, key)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn name() -> impl Strategy<Value = String> {
        prop::sample::select(vec!["a", "b", "c"]).prop_map(str::to_string)
    }

    fn op() -> impl Strategy<Value = StateOp> {
        let cursor = (
            prop::option::of(name()),
            prop::collection::btree_map(name(), -5i64..5, 0..3),
        )
            .prop_map(|(last, weights)| Cursor { last, weights });
        let account = (name(), prop::option::of(name()), 0i64..5).prop_map(
            |(account_id, owner, updated_at)| AccountRef {
                account_id,
                owner,
                updated_at,
            },
        );
        prop_oneof![
            (name(), cursor).prop_map(|(team, cursor)| StateOp::SetCursor { team, cursor }),
            (name(), -3i64..4).prop_map(|(rep, delta)| StateOp::OpenDelta { rep, delta }),
            (name(), -1i64..3).prop_map(|(rep, day)| StateOp::DailyInc { rep, day }),
            (name(), account)
                .prop_map(|(domain, account)| StateOp::UpsertAccount { domain, account }),
            (name(), name())
                .prop_map(|(domain, account_id)| StateOp::RemoveAccount { domain, account_id }),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        /// Ops committed in arbitrary batch splits reload equal to `EngineState::apply`.
        #[test]
        fn stored_state_equals_applied_state(
            ops in prop::collection::vec(op(), 0..40),
            splits in prop::collection::vec(1usize..6, 1..10),
        ) {
            let store = Store::temporary().unwrap();
            let mut rest = ops.as_slice();
            for n in splits.iter().cycle() {
                if rest.is_empty() {
                    break;
                }
                let (now, later) = rest.split_at((*n).min(rest.len()));
                let mut b = store.batch();
                b.apply_state_ops(now);
                store.commit(b).unwrap();
                rest = later;
            }
            let mut want = EngineState::default();
            want.apply(&ops);
            let open: Vec<(String, i64)> = want.open.iter().map(|(r, n)| (r.clone(), *n)).collect();
            prop_assert_eq!(store.open_loads().unwrap(), open);
            prop_assert_eq!(store.engine_state().unwrap(), want);
        }
    }

    #[test]
    fn ops_on_the_same_key_in_one_batch_compound() {
        let store = Store::temporary().unwrap();
        let ops = [
            StateOp::OpenDelta {
                rep: "r".into(),
                delta: 2,
            },
            StateOp::OpenDelta {
                rep: "r".into(),
                delta: 3,
            },
            StateOp::DailyInc {
                rep: "r".into(),
                day: 7,
            },
            StateOp::DailyInc {
                rep: "r".into(),
                day: 7,
            },
        ];
        let mut b = store.batch();
        b.apply_state_ops(&ops);
        store.commit(b).unwrap();
        let state = store.engine_state().unwrap();
        assert_eq!((state.open_count("r"), state.daily_count("r", 7)), (5, 2));
    }
}
