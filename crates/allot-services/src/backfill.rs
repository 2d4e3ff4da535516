//! Backfill and resync: the CRM's whole book into the store, so offboarding,
//! lead-to-account and dry runs see every record, not only those that had
//! an event since allot started.
//!
//! Each object is read a page at a time (keyset SOQL on Salesforce, the list
//! endpoint on HubSpot) under the CRM connection's request budget, retried
//! like every read. A page's records and the cursor after it are committed
//! in one store batch, so a crash or `kill -9` resumes at the first page not
//! committed. Records go through [`Pipeline::stage_book`]: owners and loads
//! are kept right; nothing is decided unless asked.

use std::sync::Arc;

use allot_core::{Crm, Millis, ObjectKind};
use allot_crm::CrmClient;
use serde::{Deserialize, Serialize};

use crate::budget::Budgets;
use crate::pipeline::{commit, BookRecord, FieldMaps, Pipeline};
use crate::reader::{retrying, ReadPolicy};
use crate::ServiceError;

/// Admin-table kind of sync cursors; the name is `crm/object`.
pub const SYNC: &str = "sync";

/// Where one object's sync stands, as stored.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SyncCursor {
    /// The next page starts after this id (`None`: from the start).
    pub after: Option<String>,
    /// Every page was read.
    pub done: bool,
    /// Records read by this run of the object so far.
    pub records: u64,
    pub pages: u64,
    pub started_at: Millis,
    #[serde(default)]
    pub finished_at: Option<Millis>,
}

/// What to sync.
#[derive(Debug, Clone)]
pub struct SyncPlan {
    pub targets: Vec<(Crm, ObjectKind)>,
    /// Decide records whose routed fields changed (default: only store them).
    pub decide: bool,
}

/// One object's progress, reported after each committed page.
#[derive(Debug, Clone, Serialize)]
pub struct SyncProgress {
    pub crm: Crm,
    pub object: ObjectKind,
    pub cursor: SyncCursor,
    /// Pages skipped because a previous run had committed them.
    pub resumed: bool,
}

/// The objects each CRM has (HubSpot has no leads).
pub fn objects_of(crm: Crm) -> &'static [ObjectKind] {
    match crm {
        Crm::Hubspot => &[ObjectKind::Account, ObjectKind::Contact],
        _ => &[ObjectKind::Account, ObjectKind::Lead, ObjectKind::Contact],
    }
}

fn name(crm: Crm, object: ObjectKind) -> String {
    format!("{crm}/{object}")
}

/// The stored cursor of one object.
pub fn cursor(
    pipeline: &Pipeline,
    crm: Crm,
    object: ObjectKind,
) -> Result<Option<SyncCursor>, ServiceError> {
    Ok(pipeline
        .store()
        .admin_get::<SyncCursor>(SYNC, &name(crm, object))?)
}

/// Reads every target's book into the store through `pipeline`; resumes an
/// object whose last run did not finish, starts a finished one over.
pub async fn sync(
    pipeline: &mut Pipeline,
    clients: &[CrmClient],
    budgets: &Budgets,
    policy: &ReadPolicy,
    plan: &SyncPlan,
    mut progress: impl FnMut(&SyncProgress),
) -> Result<Vec<SyncProgress>, ServiceError> {
    let maps = FieldMaps::default();
    let mut out = Vec::new();
    for &(crm, object) in &plan.targets {
        let Some(client) = clients.iter().find(|c| c.crm() == crm) else {
            return Err(ServiceError::Stopped {
                stage: "sync",
                detail: format!("no {crm} client configured"),
            });
        };
        let budget = budgets.get(crm).ok_or_else(|| ServiceError::Stopped {
            stage: "sync",
            detail: format!("no request budget for {crm}"),
        })?;
        let fields: Vec<&str> = maps.get(crm).mapped_crm_fields(object);
        let now = crate::now_ms();
        let stored = cursor(pipeline, crm, object)?;
        let resumed = stored.as_ref().is_some_and(|c| !c.done);
        let mut c = match stored {
            Some(c) if !c.done => c,
            _ => SyncCursor {
                started_at: now,
                ..SyncCursor::default()
            },
        };
        if resumed {
            tracing::info!(%crm, %object, after = ?c.after, records = c.records, "sync resumes from its checkpoint");
        }
        loop {
            let after = c.after.clone();
            let page = retrying(&budget, client, policy, "sync", || {
                client.list_page(object, after.as_deref(), &fields)
            })
            .await?;
            if page.next.is_some() && page.next == after {
                return Err(ServiceError::Stopped {
                    stage: "sync",
                    detail: format!("{crm} {object}: the crm answered the cursor {after:?} again"),
                });
            }
            let records: Vec<BookRecord> = page
                .records
                .into_iter()
                .map(|(id, map)| BookRecord {
                    crm,
                    object,
                    id,
                    fields: map
                        .into_iter()
                        .filter_map(|(k, v)| crate::hydrate::scalar(v).map(|v| (k, v)))
                        .collect(),
                })
                .collect();
            c.records += records.len() as u64;
            c.pages += 1;
            c.after = page.next.clone().or(c.after.take());
            c.done = page.next.is_none();
            if c.done {
                c.finished_at = Some(crate::now_ms());
            }
            let mut staged = pipeline.stage_book(records, plan.decide, crate::now_ms())?;
            if let Ok(v) = serde_json::to_value(&c) {
                staged.batch.admin_put(SYNC, &name(crm, object), v);
            }
            commit(pipeline.store(), staged.batch, "sync").await?;
            let p = SyncProgress {
                crm,
                object,
                cursor: c.clone(),
                resumed,
            };
            progress(&p);
            if c.done {
                out.push(p);
                break;
            }
        }
    }
    let mut crms: Vec<Crm> = plan.targets.iter().map(|(c, _)| *c).collect();
    crms.dedup();
    for crm in crms {
        sync_users(pipeline.store(), clients, budgets, policy, crm).await?;
    }
    Ok(out)
}

/// The CRM's users (owners), kept in the admin table as `crm_users/<crm>`.
async fn sync_users(
    store: &Arc<allot_store::Store>,
    clients: &[CrmClient],
    budgets: &Budgets,
    policy: &ReadPolicy,
    crm: Crm,
) -> Result<(), ServiceError> {
    let (Some(client), Some(budget)) = (clients.iter().find(|c| c.crm() == crm), budgets.get(crm))
    else {
        return Ok(());
    };
    let users = retrying(&budget, client, policy, "sync users", || client.users()).await?;
    let mut batch = store.batch();
    if let Ok(v) = serde_json::to_value(&users) {
        batch.admin_put("crm_users", crm.as_str(), v);
    }
    commit(store, batch, "sync").await
}
