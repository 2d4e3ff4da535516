//! Drift between the CRM and allot: each record's owner in the CRM against
//! allot's last decision for it, read from the store.
//!
//! The CRM's whole book is read a page at a time (`CrmClient::list_page`,
//! only the owner field) under the connection's request budget, retried
//! like every read ([`retrying`]). Each record falls under one [`Reason`]:
//!
//! - [`Reason::Agree`]: the CRM shows the owner allot decided;
//! - [`Reason::ChangedByPerson`]: someone else owns it and allot heard of
//!   the change after its decision (the stored record's owner moved on):
//!   kept, as existing-owner protection keeps it;
//! - [`Reason::Owed`]: allot wrote (or meant to write) owner X, its write is
//!   settled as done, yet the CRM shows someone else and no later change
//!   reached allot: the write went missing or was lost. These are the
//!   writes allot owes, and [`requeue`] puts them back in the outbox;
//! - [`Reason::Pending`] / [`Reason::Failed`]: the write is still queued, or
//!   the writer gave up on it (`allot writes` lists those);
//! - [`Reason::ChangedUnseen`]: allot kept the owner it found and wrote
//!   nothing, and the CRM changed since without an event reaching allot:
//!   left alone (no write of allot's is missing);
//! - [`Reason::Undecided`]: allot never decided the record.
//!
//! The store is one process's: reconcile runs while allot is stopped.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use allot_core::{Crm, Millis, ObjectKind, OwnerChange};
use allot_crm::{Budgets, CrmClient};
use allot_store::{OutboxKey, OutboxPut, OutboxState, Store};
use serde::Serialize;

use crate::pipeline::FieldMaps;
use crate::reader::{retrying, ReadPolicy};
use crate::ServiceError;

/// Owed writes re-queued per store commit.
const REQUEUE_CHUNK: usize = 500;

/// Why a record's owner in the CRM is what it is, as allot sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    Agree,
    ChangedByPerson,
    Owed,
    Pending,
    Failed,
    ChangedUnseen,
    Undecided,
}

impl Reason {
    pub const ALL: [Reason; 7] = [
        Reason::Agree,
        Reason::ChangedByPerson,
        Reason::Owed,
        Reason::Pending,
        Reason::Failed,
        Reason::ChangedUnseen,
        Reason::Undecided,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Agree => "agree",
            Reason::ChangedByPerson => "changed_by_person",
            Reason::Owed => "owed",
            Reason::Pending => "pending",
            Reason::Failed => "failed",
            Reason::ChangedUnseen => "changed_unseen",
            Reason::Undecided => "undecided",
        }
    }

    /// One line for people.
    pub fn meaning(self) -> &'static str {
        match self {
            Reason::Agree => "the CRM shows allot's owner",
            Reason::ChangedByPerson => "changed after allot's decision, allot saw it: kept",
            Reason::Owed => "allot's write missing or lost: owed",
            Reason::Pending => "allot's write still queued",
            Reason::Failed => "allot gave up on the write (allot writes)",
            Reason::ChangedUnseen => "allot kept the owner, the CRM changed unseen: left alone",
            Reason::Undecided => "never decided by allot",
        }
    }
}

/// One record's finding.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finding {
    pub crm: Crm,
    pub object: ObjectKind,
    pub id: String,
    pub reason: Reason,
    /// The owner the CRM shows now.
    pub crm_owner: Option<String>,
    /// The owner allot last decided (its last write's, when it wrote).
    pub allot_owner: Option<String>,
    /// The owner in allot's store (what the events it saw left).
    pub store_owner: Option<String>,
    /// When allot last decided the record.
    pub decided_at: Option<Millis>,
    /// The change to write again, for owed records.
    #[serde(skip)]
    pub change: Option<OwnerChange>,
}

/// What one object's book showed.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ObjectReport {
    pub crm: Option<Crm>,
    pub object: Option<ObjectKind>,
    pub records: u64,
    pub pages: u64,
    pub counts: BTreeMap<Reason, u64>,
    /// The first few findings of each reason other than agreement.
    pub examples: BTreeMap<Reason, Vec<Finding>>,
}

/// Everything a run found.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Report {
    pub objects: Vec<ObjectReport>,
    pub totals: BTreeMap<Reason, u64>,
    /// Every owed write (not only examples), for [`requeue`].
    #[serde(skip)]
    pub owed: Vec<Finding>,
}

/// What to reconcile.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub targets: Vec<(Crm, ObjectKind)>,
    /// Examples kept per reason and object.
    pub examples: usize,
}

/// Classifies one CRM record whose owner is `crm_owner` against the store.
pub fn classify(
    store: &Store,
    crm: Crm,
    object: ObjectKind,
    id: &str,
    crm_owner: Option<&str>,
) -> Result<Finding, ServiceError> {
    let entry = store
        .outbox_get(&OutboxKey::new(object, id))?
        .filter(|e| e.change.crm.is_none_or(|c| c == crm));
    let stored = store.record(object, id)?.map(|(r, _)| r);
    let store_owner = stored.as_ref().and_then(|r| r.owner.clone());
    let mut finding = Finding {
        crm,
        object,
        id: id.to_string(),
        reason: Reason::Undecided,
        crm_owner: crm_owner.map(str::to_string),
        allot_owner: None,
        store_owner: store_owner.clone(),
        decided_at: None,
        change: None,
    };
    // allot's last write (the outbox keeps the newest change per record),
    // else its last decision in the audit trail.
    let (owner, wrote, change) = match &entry {
        Some(e) => (Some(e.change.owner.clone()), true, Some(e.change.clone())),
        None => {
            let last = store
                .audit_for(id, Millis::MIN, Millis::MAX)?
                .into_iter()
                .rfind(|d| d.object == object);
            let Some(d) = last else {
                return Ok(finding);
            };
            finding.decided_at = Some(d.decided_at);
            let change = d.owner_change(&format!("reconcile:{crm}:{object}:{id}"));
            (d.owner.clone(), d.changed, change)
        }
    };
    if let Some(e) = &entry {
        finding.decided_at = Some(e.change.decided_at);
    }
    let Some(owner) = owner else {
        // Decided, but no owner came of it: nothing of allot's to compare.
        return Ok(finding);
    };
    finding.allot_owner = Some(owner.clone());
    finding.reason = if crm_owner == Some(owner.as_str()) {
        Reason::Agree
    } else if entry.as_ref().is_some_and(|e| e.state.is_open()) {
        Reason::Pending
    } else if entry
        .as_ref()
        .is_some_and(|e| e.state == OutboxState::Failed)
    {
        Reason::Failed
    } else if store_owner.as_deref() != Some(owner.as_str()) {
        // allot set the stored owner when it decided; an event moved it on.
        Reason::ChangedByPerson
    } else if wrote {
        finding.change = change;
        Reason::Owed
    } else {
        Reason::ChangedUnseen
    };
    Ok(finding)
}

/// The CRM field that holds a record's owner (`OwnerId`, `hubspot_owner_id`).
pub fn owner_field(crm: Crm, object: ObjectKind) -> Result<String, ServiceError> {
    FieldMaps::default()
        .get(crm)
        .crm_fields_for(object, allot_events::OWNER)
        .first()
        .map(|f| f.to_string())
        .ok_or_else(|| ServiceError::Invalid {
            what: format!("{crm} {object}"),
            detail: "the field map names no owner field".into(),
        })
}

/// Reads every target's whole book and classifies each record;
/// `progress(crm, object, records so far)` after each page.
pub async fn reconcile(
    store: &Arc<Store>,
    clients: &[CrmClient],
    budgets: &Budgets,
    policy: &ReadPolicy,
    plan: &Plan,
    mut progress: impl FnMut(Crm, ObjectKind, u64),
) -> Result<Report, ServiceError> {
    let mut report = Report::default();
    for &(crm, object) in &plan.targets {
        let (Some(client), Some(budget)) =
            (clients.iter().find(|c| c.crm() == crm), budgets.get(crm))
        else {
            return Err(ServiceError::Invalid {
                what: format!("reconcile {crm}"),
                detail: format!("no {crm} client configured (crm.mode)"),
            });
        };
        let field = owner_field(crm, object)?;
        let fields = [field.as_str()];
        let mut out = ObjectReport {
            crm: Some(crm),
            object: Some(object),
            ..ObjectReport::default()
        };
        let mut after: Option<String> = None;
        let mut seen: HashSet<String> = HashSet::new();
        loop {
            let cursor = after.clone();
            let page = retrying(&budget, client, policy, "reconcile", || {
                client.list_page(object, cursor.as_deref(), None, &fields)
            })
            .await
            .map_err(|e| ServiceError::Stopped {
                stage: "reconcile",
                detail: format!("{crm} {object} after {cursor:?}: {e}"),
            })?;
            if let Some(n) = &page.next {
                if !seen.insert(n.clone()) {
                    return Err(ServiceError::Stopped {
                        stage: "reconcile",
                        detail: format!(
                            "{crm} {object}: the crm answered the cursor {n:?} again after page {}",
                            out.pages + 1
                        ),
                    });
                }
            }
            let rows: Vec<(String, Option<String>)> = page
                .records
                .into_iter()
                .map(|(id, map)| {
                    let owner = map
                        .get(&field)
                        .and_then(|v| v.as_str())
                        .filter(|s| !s.is_empty())
                        .map(str::to_string);
                    (id, owner)
                })
                .collect();
            let s = store.clone();
            let findings = tokio::task::spawn_blocking(move || {
                rows.iter()
                    .map(|(id, owner)| classify(&s, crm, object, id, owner.as_deref()))
                    .collect::<Result<Vec<_>, _>>()
            })
            .await
            .map_err(|e| ServiceError::Stopped {
                stage: "reconcile",
                detail: e.to_string(),
            })??;
            out.pages += 1;
            out.records += findings.len() as u64;
            for f in findings {
                *out.counts.entry(f.reason).or_default() += 1;
                let examples = out.examples.entry(f.reason).or_default();
                if f.reason != Reason::Agree && examples.len() < plan.examples {
                    examples.push(f.clone());
                }
                if f.reason == Reason::Owed {
                    report.owed.push(f);
                }
            }
            out.examples.retain(|_, v| !v.is_empty());
            progress(crm, object, out.records);
            match page.next {
                Some(n) => after = Some(n),
                None => break,
            }
        }
        for (reason, n) in &out.counts {
            *report.totals.entry(*reason).or_default() += n;
        }
        report.objects.push(out);
    }
    Ok(report)
}

/// Puts the owed writes back in the outbox the writer drains, as a
/// decision does (with the write ledger noted, so the echo is known):
/// the same owner, decided now. Returns how many were queued.
pub fn requeue(store: &Store, owed: &[Finding], now: Millis) -> Result<u64, ServiceError> {
    let mut queued = 0;
    for chunk in owed.chunks(REQUEUE_CHUNK) {
        let mut batch = store.batch();
        for f in chunk {
            let Some(change) = &f.change else { continue };
            let change = OwnerChange {
                crm: Some(f.crm),
                previous_owner: f.crm_owner.clone(),
                decided_at: now.max(change.decided_at + 1),
                event_id: format!("reconcile:{}:{}:{}", f.crm, f.object, f.id),
                ..change.clone()
            };
            batch
                .outbox_put(&change)
                .record_write(f.object, &f.id, &change.owner, now);
        }
        let receipt = store.commit(batch)?;
        queued += receipt
            .outbox_puts
            .iter()
            .filter(|p| !matches!(p, OutboxPut::Stale))
            .count() as u64;
    }
    Ok(queued)
}

#[cfg(test)]
mod tests {
    use super::*;
    use allot_core::{Record, Strategy};

    fn change(id: &str, owner: &str, decided_at: Millis) -> OwnerChange {
        OwnerChange {
            v: 1,
            crm: Some(Crm::Salesforce),
            record_id: id.into(),
            object: ObjectKind::Lead,
            owner: owner.into(),
            previous_owner: Some("QUEUE".into()),
            decided_at,
            event_id: format!("e-{id}"),
            territory: None,
            strategy: Strategy::OnlyCandidate,
        }
    }

    /// A record allot decided for `owner` (written when `done`), whose
    /// stored owner is `stored`.
    fn decided(store: &Store, id: &str, owner: &str, stored: &str, done: bool) {
        let c = change(id, owner, 100);
        let mut b = store.batch();
        b.outbox_put(&c)
            .put_record(&Record::new(ObjectKind::Lead, id).with_owner(stored), None);
        store.commit(b).unwrap();
        if done {
            store.outbox_mark_done(&OutboxKey::of(&c), 100).unwrap();
        }
    }

    #[test]
    fn each_record_falls_under_one_reason() {
        let store = Store::temporary().unwrap();
        decided(&store, "A", "X", "X", true);
        decided(&store, "B", "X", "Y", true);
        decided(&store, "C", "X", "X", true);
        decided(&store, "D", "X", "X", false);
        decided(&store, "E", "X", "X", false);
        store
            .outbox_fail(
                &OutboxKey::new(ObjectKind::Lead, "E"),
                100,
                "rejected",
                "no",
                1,
            )
            .unwrap();
        let cases = [
            ("A", Some("X"), Reason::Agree),
            ("B", Some("Y"), Reason::ChangedByPerson),
            ("C", Some("QUEUE"), Reason::Owed),
            ("C", None, Reason::Owed),
            ("D", Some("QUEUE"), Reason::Pending),
            ("E", Some("QUEUE"), Reason::Failed),
            ("Z", Some("QUEUE"), Reason::Undecided),
        ];
        for (id, crm_owner, want) in cases {
            let f = classify(&store, Crm::Salesforce, ObjectKind::Lead, id, crm_owner).unwrap();
            assert_eq!(f.reason, want, "{id} {crm_owner:?}");
            assert_eq!(f.change.is_some(), want == Reason::Owed, "{id}");
        }
        // Another CRM's change under the same id is not this one's.
        let f = classify(&store, Crm::Hubspot, ObjectKind::Lead, "A", Some("X")).unwrap();
        assert_eq!(f.reason, Reason::Undecided);
    }

    #[test]
    fn owed_writes_are_queued_again_newer_than_the_last() {
        let store = Store::temporary().unwrap();
        decided(&store, "C", "X", "X", true);
        let f = classify(
            &store,
            Crm::Salesforce,
            ObjectKind::Lead,
            "C",
            Some("QUEUE"),
        )
        .unwrap();
        assert_eq!(requeue(&store, std::slice::from_ref(&f), 50).unwrap(), 1);
        let e = store
            .outbox_get(&OutboxKey::new(ObjectKind::Lead, "C"))
            .unwrap()
            .unwrap();
        assert_eq!(e.state, OutboxState::Pending);
        assert_eq!(
            (e.change.owner.as_str(), e.change.decided_at),
            ("X", 101),
            "newer than the write it repeats, though the clock says 50"
        );
        assert_eq!(e.change.previous_owner.as_deref(), Some("QUEUE"));
        assert_eq!(
            store.recent_write(ObjectKind::Lead, "C").unwrap(),
            Some(("X".to_string(), 50))
        );
        // Now pending: a second run finds it queued, not owed.
        let again = classify(
            &store,
            Crm::Salesforce,
            ObjectKind::Lead,
            "C",
            Some("QUEUE"),
        )
        .unwrap();
        assert_eq!(again.reason, Reason::Pending);
    }
}
