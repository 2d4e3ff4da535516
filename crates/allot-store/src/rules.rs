//! Rule versions: the rule file text of every version, when it takes effect
//! and who activated it. Decisions cite a version id, so a version's text is
//! immutable once stored; its schedule and activation may change.

use allot_core::Millis;
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::key::Key;
use crate::store::{Store, Table};
use crate::tx::{Tx, TxResult};

/// One stored version of the rule file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleVersion {
    /// The id decisions cite in `rules_version`.
    pub version_id: String,
    /// The rule file as the user wrote it (validated by the caller).
    pub toml: String,
    /// From when the version applies (it can be scheduled ahead).
    pub effective_at: Millis,
    /// Who activated it; `None` for a draft, which never becomes active.
    pub activated_by: Option<String>,
    /// Store-wide increasing number of the last put: among versions effective
    /// at the same instant, the one activated last wins.
    pub seq: u64,
}

fn rule_key(version_id: &str) -> Key {
    Key::new().str(version_id)
}

pub(crate) fn tx_put(
    tx: &Tx<'_>,
    version_id: &str,
    toml: &str,
    effective_at: Millis,
    activated_by: Option<&str>,
) -> TxResult<()> {
    if version_id.is_empty() {
        return tx.abort(tx.inner.invalid("a rule version id cannot be empty"));
    }
    let key = rule_key(version_id);
    if let Some(old) = tx.get::<RuleVersion>(Table::Rules, &key)? {
        if old.toml != toml {
            return tx.abort(tx.inner.invalid(format!(
                "rule version {version_id:?} already exists with different text; versions are \
                 immutable: store the new text under a new version id"
            )));
        }
    }
    let version = RuleVersion {
        version_id: version_id.to_string(),
        toml: toml.to_string(),
        effective_at,
        activated_by: activated_by.map(str::to_string),
        seq: tx.generate_id()?,
    };
    tx.put(Table::Rules, &key, &version).map(|_| ())
}

impl Store {
    /// Stores a rule version, or updates the schedule and activation of an
    /// existing one with the same text. Fails with `StoreError::Invalid` when
    /// the id exists with different text.
    pub fn put_rule_version(
        &self,
        version_id: &str,
        toml: &str,
        effective_at: Millis,
        activated_by: Option<&str>,
    ) -> Result<()> {
        let mut b = self.batch();
        b.put_rule_version(version_id, toml, effective_at, activated_by);
        self.commit(b).map(|_| ())
    }

    /// One version by id.
    pub fn rule_version(&self, version_id: &str) -> Result<Option<RuleVersion>> {
        self.inner.get(Table::Rules, &rule_key(version_id))
    }

    /// Every version, drafts included, by effective time then put order.
    pub fn rule_versions(&self) -> Result<Vec<RuleVersion>> {
        let mut all = self
            .inner
            .range::<RuleVersion, _>(Table::Rules, ..)
            .map(|r| r.map(|(_, v)| v))
            .collect::<Result<Vec<_>>>()?;
        all.sort_by_key(|v| (v.effective_at, v.seq));
        Ok(all)
    }

    /// The version in force at `now_ms`: the activated version with the
    /// latest `effective_at <= now_ms` (ties: the one put last).
    pub fn active_rule_version(&self, now_ms: Millis) -> Result<Option<RuleVersion>> {
        Ok(self
            .rule_versions()?
            .into_iter()
            .filter(|v| v.activated_by.is_some() && v.effective_at <= now_ms)
            .max_by_key(|v| (v.effective_at, v.seq)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::StoreError;

    #[test]
    fn active_version_by_time() {
        let store = Store::temporary().unwrap();
        let puts: [(&str, Millis, Option<&str>); 5] = [
            ("v1", 100, Some("ana")),
            ("v2", 200, Some("ben")),
            ("draft", 150, None),
            ("v3", 300, Some("ana")),
            ("v3b", 300, Some("ben")),
        ];
        for (id, at, by) in puts {
            store
                .put_rule_version(id, &format!("# {id}"), at, by)
                .unwrap();
        }
        let cases = [
            (50, None),
            (100, Some("v1")),
            (199, Some("v1")),
            (200, Some("v2")),
            (299, Some("v2")),
            (i64::MAX, Some("v3b")),
        ];
        for (now, want) in cases {
            let got = store
                .active_rule_version(now)
                .unwrap()
                .map(|v| v.version_id);
            assert_eq!(got.as_deref(), want, "now={now}");
        }
        let order: Vec<String> = store
            .rule_versions()
            .unwrap()
            .into_iter()
            .map(|v| v.version_id)
            .collect();
        assert_eq!(order, ["v1", "draft", "v2", "v3", "v3b"]);
    }

    #[test]
    fn drafts_activate_and_text_is_immutable() {
        let store = Store::temporary().unwrap();
        store.put_rule_version("v1", "a = 1", 100, None).unwrap();
        assert_eq!(store.active_rule_version(1_000).unwrap(), None);
        store
            .put_rule_version("v1", "a = 1", 100, Some("ana"))
            .unwrap();
        assert_eq!(
            store
                .active_rule_version(1_000)
                .unwrap()
                .unwrap()
                .activated_by
                .as_deref(),
            Some("ana")
        );
        let err = store
            .put_rule_version("v1", "a = 2", 100, Some("ana"))
            .unwrap_err();
        assert!(matches!(err, StoreError::Invalid { .. }), "{err}");
        assert!(err.to_string().contains("immutable"), "{err}");
        assert_eq!(store.rule_version("v1").unwrap().unwrap().toml, "a = 1");
    }
}
