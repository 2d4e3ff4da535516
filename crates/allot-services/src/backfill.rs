//! Backfill and resync: the CRM's whole book into the store, so offboarding,
//! lead-to-account and dry runs see every record, not only those that had
//! an event since allot started.
//!
//! Each object is read a page at a time (keyset SOQL on Salesforce, the list
//! endpoint on HubSpot; for an incremental run only the records modified
//! since: `SystemModstamp` on Salesforce, search on `lastmodifieddate` on
//! HubSpot) under the CRM connection's request budget, retried like every
//! read. Fetching runs in its own tasks, one per CRM, a few pages ahead of
//! the store ([`fetch`]); the pipeline's owner applies each page
//! ([`stage_page`]) and commits its records and the cursor after it in one
//! batch, so a crash or `kill -9` resumes at the first page not committed.
//! Records go through [`Pipeline::stage_book`]: owners and loads are kept
//! right; nothing is decided unless asked, and then at the realignment rate.
//!
//! A run is incremental when it can be: each object remembers the start of
//! its last complete run (everything modified before it is in the store),
//! and the next run reads only what changed since (minus [`SKEW_MS`]).
//! GAP_OVERFLOW and wildcard record ids leave a durable [`ResyncRequest`];
//! the next run of that object reads from the gap's commit time.

use std::sync::Arc;

use allot_core::{Crm, Millis, ObjectKind};
use allot_crm::{Budgets, CrmClient, CrmUser};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::sync::mpsc;

use crate::pipeline::{BookRecord, FieldMaps, Pipeline, Staged};
use crate::reader::{retrying, ReadPolicy};
use crate::ServiceError;

/// Admin-table kind of sync cursors; the name is `crm/object`.
pub const SYNC: &str = "sync";
/// Admin-table kind of resync requests (GAP_OVERFLOW, wildcard ids); the
/// name is `crm/object`.
pub const RESYNC: &str = "resync";
/// Job document of the sync run the pipeline's owner is doing (or did last).
pub const SYNC_RUN: &str = "sync_run";
/// Admin-table kind of the CRM's users, by CRM.
pub const CRM_USERS: &str = "crm_users";
/// An incremental run starts this long before the last complete one did:
/// room for clock skew and for changes committed while it ran.
pub const SKEW_MS: Millis = 5 * 60_000;
/// Pages fetched ahead of the store.
const AHEAD: usize = 4;
/// Salesforce objects with at least this many records to read go through a
/// Bulk API 2.0 query job (`crm.salesforce.bulk_threshold`).
pub const BULK_THRESHOLD: u64 = 50_000;
/// Rows per Bulk API results page.
const BULK_PAGE: usize = 10_000;

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
    /// This run reads only records modified after this instant.
    #[serde(default)]
    pub since: Option<Millis>,
    /// This run decides the records whose routed fields changed.
    #[serde(default)]
    pub decide: bool,
    /// Every record modified before this instant is in the store: the
    /// start of the last complete run that covered everything before it.
    #[serde(default)]
    pub complete_as_of: Option<Millis>,
    /// A Salesforce Bulk API 2.0 query job reads this run: its id and the
    /// locator of the next results page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bulk: Option<BulkCursor>,
}

/// Where a run reading through a Bulk API query job stands.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BulkCursor {
    pub job: String,
    /// `None`: the first results page.
    pub locator: Option<String>,
}

/// A request to read an object again from `since`, left by an event that
/// could not describe its changes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResyncRequest {
    pub crm: Crm,
    pub object: ObjectKind,
    /// The gap's commit time (records modified after it are read).
    pub since: Millis,
    pub event_id: String,
    pub reason: String,
    pub requested_at: Millis,
}

/// What to sync.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SyncPlan {
    pub targets: Vec<(Crm, ObjectKind)>,
    /// Only records modified after this instant (default: since each
    /// object's last complete run, or everything the first time).
    #[serde(default)]
    pub since: Option<Millis>,
    /// Read everything, even where an incremental run would do.
    #[serde(default)]
    pub full: bool,
    /// Decide records whose routed fields changed (default: only store them).
    #[serde(default)]
    pub decide: bool,
}

/// The run the pipeline's owner does, as stored under [`SYNC_RUN`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SyncRun {
    pub plan: SyncPlan,
    pub by: String,
    pub started_at: Millis,
    #[serde(default)]
    pub finished_at: Option<Millis>,
    /// Why it stopped before the end, when it did.
    #[serde(default)]
    pub error: Option<String>,
}

/// One object's progress, reported after each committed page.
#[derive(Debug, Clone, Serialize)]
pub struct SyncProgress {
    pub crm: Crm,
    pub object: ObjectKind,
    pub cursor: SyncCursor,
    /// The run continues one a previous process did not finish.
    pub resumed: bool,
}

/// The objects each CRM has (HubSpot has no leads).
pub fn objects_of(crm: Crm) -> &'static [ObjectKind] {
    match crm {
        Crm::Hubspot => &[ObjectKind::Account, ObjectKind::Contact],
        _ => &[ObjectKind::Account, ObjectKind::Lead, ObjectKind::Contact],
    }
}

/// The (crm, object) pairs `crm` (salesforce, hubspot, both when absent)
/// and `objects` (every object the CRM has when empty) name, or what is
/// wrong with them.
pub fn targets(crm: Option<&str>, objects: &[String]) -> Result<Vec<(Crm, ObjectKind)>, String> {
    let crms = match crm {
        None => vec![Crm::Salesforce, Crm::Hubspot],
        Some("salesforce") => vec![Crm::Salesforce],
        Some("hubspot") => vec![Crm::Hubspot],
        Some(other) => return Err(format!("crm {other:?}: expected salesforce or hubspot")),
    };
    let wanted: Vec<ObjectKind> = objects
        .iter()
        .map(|o| {
            ObjectKind::parse(o.trim())
                .ok_or_else(|| format!("object {o:?}: expected account, lead or contact"))
        })
        .collect::<Result<_, _>>()?;
    let mut out = Vec::new();
    for crm in crms {
        for &object in objects_of(crm) {
            if wanted.is_empty() || wanted.contains(&object) {
                out.push((crm, object));
            }
        }
    }
    if out.is_empty() {
        let on = crm.unwrap_or("salesforce or hubspot");
        return Err(format!(
            "nothing to sync: no {} on {on} (HubSpot has no leads: its leads are contacts)",
            objects.join(", ")
        ));
    }
    Ok(out)
}

/// The admin-table name of one object: `crm/object`.
pub fn name(crm: Crm, object: ObjectKind) -> String {
    format!("{crm}/{object}")
}

/// The stored cursor of one object.
pub fn cursor(
    store: &allot_store::Store,
    crm: Crm,
    object: ObjectKind,
) -> Result<Option<SyncCursor>, ServiceError> {
    Ok(store.admin_get::<SyncCursor>(SYNC, &name(crm, object))?)
}

/// Every stored cursor and pending resync request, for progress views.
pub fn status(store: &allot_store::Store) -> Result<serde_json::Value, ServiceError> {
    let objects: Vec<serde_json::Value> = store
        .admin_all::<SyncCursor>(SYNC)?
        .into_iter()
        .map(|(name, c)| json!({"object": name, "cursor": c}))
        .collect();
    let resync: Vec<ResyncRequest> = store
        .admin_all::<ResyncRequest>(RESYNC)?
        .into_iter()
        .map(|(_, r)| r)
        .collect();
    let run: Option<SyncRun> = store.admin_get(allot_store::JOB, SYNC_RUN)?;
    Ok(json!({
        "running": run.as_ref().is_some_and(|r| r.finished_at.is_none()),
        "run": run,
        "objects": objects,
        "resync_requests": resync,
    }))
}

/// Where each target starts: an unfinished run resumes; otherwise a new run
/// begins at `now`, incremental from the earliest of the plan's `since`,
/// the last complete run (less [`SKEW_MS`]) and a pending resync request,
/// unless the plan says `full`. Returns `(crm, object, cursor, resumed)`.
pub fn begin(
    store: &allot_store::Store,
    plan: &SyncPlan,
    now: Millis,
) -> Result<Vec<(Crm, ObjectKind, SyncCursor, bool)>, ServiceError> {
    let mut out = Vec::new();
    for &(crm, object) in &plan.targets {
        let stored = cursor(store, crm, object)?;
        if let Some(c) = stored.clone().filter(|c| !c.done) {
            tracing::info!(%crm, %object, after = ?c.after, records = c.records, "sync resumes from its checkpoint");
            out.push((crm, object, c, true));
            continue;
        }
        let complete_as_of = stored.and_then(|c| c.complete_as_of);
        let requested: Option<ResyncRequest> = store.admin_get(RESYNC, &name(crm, object))?;
        let requested = requested.map(|r| r.since);
        let since = match (plan.full, plan.since, complete_as_of) {
            (true, _, _) => None,
            (false, Some(t), _) => Some(requested.map_or(t, |r| r.min(t))),
            (false, None, Some(t)) => Some(requested.map_or(t - SKEW_MS, |r| r.min(t - SKEW_MS))),
            // Nothing complete yet: from the gap if one asks, else everything.
            (false, None, None) => requested,
        };
        let c = SyncCursor {
            started_at: now,
            since,
            decide: plan.decide,
            complete_as_of,
            ..SyncCursor::default()
        };
        out.push((crm, object, c, false));
    }
    Ok(out)
}

/// What a sync run needs from the process: its CRM clients and budgets.
#[derive(Clone)]
pub struct SyncCtx {
    pub clients: Vec<CrmClient>,
    pub budgets: Budgets,
    pub policy: ReadPolicy,
    /// `crm.salesforce.bulk_threshold`.
    pub bulk_threshold: u64,
}

/// What the fetch tasks hand to the pipeline's owner.
#[derive(Debug)]
pub enum Fetched {
    /// One page and the object's cursor after it.
    Page {
        crm: Crm,
        object: ObjectKind,
        records: Vec<BookRecord>,
        cursor: SyncCursor,
        resumed: bool,
    },
    /// The CRM's users, read after its last object.
    Users { crm: Crm, users: Vec<CrmUser> },
    /// A CRM's fetch stopped on an error (after its retries).
    Failed { crm: Crm, error: String },
}

/// Starts one fetch task per CRM of `starts`, a few pages ahead of the
/// consumer; the channel closes when every task is done. Dropping the
/// receiver stops them at their next page.
pub fn fetch(
    clients: &[CrmClient],
    budgets: &Budgets,
    policy: ReadPolicy,
    bulk_threshold: u64,
    starts: Vec<(Crm, ObjectKind, SyncCursor, bool)>,
) -> mpsc::Receiver<Fetched> {
    let (tx, rx) = mpsc::channel(AHEAD);
    let mut crms: Vec<Crm> = starts.iter().map(|s| s.0).collect();
    crms.dedup();
    for crm in crms {
        let mine: Vec<_> = starts.iter().filter(|s| s.0 == crm).cloned().collect();
        let tx = tx.clone();
        let (Some(client), Some(budget)) = (
            clients.iter().find(|c| c.crm() == crm).cloned(),
            budgets.get(crm),
        ) else {
            let error = format!("no {crm} client configured");
            tokio::spawn(async move { tx.send(Fetched::Failed { crm, error }).await });
            continue;
        };
        tokio::spawn(async move {
            let maps = FieldMaps::default();
            let mut last_search: Option<tokio::time::Instant> = None;
            for (_, object, mut c, resumed) in mine {
                let mut bulk_restarted = false;
                let fields: Vec<&str> = maps.get(crm).mapped_crm_fields(object);
                loop {
                    if crm == Crm::Hubspot && c.since.is_some() {
                        // Search has its own, lower, per-second limit.
                        let gap = std::time::Duration::from_millis(
                            allot_crm::hubspot::SEARCH_INTERVAL_MS,
                        );
                        if let Some(t) = last_search {
                            tokio::time::sleep_until(t + gap).await;
                        }
                        last_search = Some(tokio::time::Instant::now());
                    }
                    let after = c.after.clone();
                    let since = c.since;
                    let page = match &client {
                        CrmClient::Salesforce(sf)
                            if c.pages == 0 && c.bulk.is_none() && bulk_threshold > 0 =>
                        {
                            // Large books go through a Bulk API query job.
                            match retrying(&budget, &client, &policy, "sync count", || {
                                sf.count(object, since)
                            })
                            .await
                            {
                                Ok(n) if n >= bulk_threshold => {
                                    match start_bulk(
                                        &budget, &client, &policy, sf, object, &fields, since,
                                    )
                                    .await
                                    {
                                        Ok(job) => {
                                            tracing::info!(%object, records = n, job = %job, "sync reads through a bulk query job");
                                            c.bulk = Some(BulkCursor { job, locator: None });
                                            continue;
                                        }
                                        Err(e) => Err(e),
                                    }
                                }
                                Ok(_) => {
                                    retrying(&budget, &client, &policy, "sync", || {
                                        client.list_page(object, after.as_deref(), since, &fields)
                                    })
                                    .await
                                }
                                Err(e) => Err(e),
                            }
                        }
                        CrmClient::Salesforce(sf) if c.bulk.is_some() => {
                            let b = c.bulk.clone().unwrap_or_default();
                            bulk_page(&budget, &client, &policy, sf, &b).await
                        }
                        _ => {
                            retrying(&budget, &client, &policy, "sync", || {
                                client.list_page(object, after.as_deref(), since, &fields)
                            })
                            .await
                        }
                    };
                    let page = match page {
                        Ok(p) if c.bulk.is_none() && p.next.is_some() && p.next == after => {
                            let error =
                                format!("{object}: the crm answered the cursor {after:?} again");
                            let _ = tx.send(Fetched::Failed { crm, error }).await;
                            return;
                        }
                        Ok(p) => p,
                        Err(e) if resumed && c.bulk.is_some() && !bulk_restarted => {
                            // The job of a run cut short may be gone: read the object again.
                            tracing::warn!(%object, error = %e, "the bulk query job of the interrupted run cannot be read; the object is read again");
                            bulk_restarted = true;
                            c.bulk = None;
                            c.pages = 0;
                            c.records = 0;
                            continue;
                        }
                        Err(e) => {
                            let error = format!("{object}: {e}");
                            let _ = tx.send(Fetched::Failed { crm, error }).await;
                            return;
                        }
                    };
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
                    match c.bulk.as_mut() {
                        Some(b) => b.locator = page.next.clone(),
                        None => c.after = page.next.clone().or(c.after.take()),
                    }
                    c.done = page.next.is_none();
                    if c.done {
                        c.finished_at = Some(crate::now_ms());
                        // Complete up to this run's start if it covered
                        // everything since the last complete point.
                        if c.since
                            .is_none_or(|s| c.complete_as_of.is_some_and(|p| s <= p))
                        {
                            c.complete_as_of = Some(c.started_at);
                        }
                    }
                    let done = c.done;
                    let sent = tx
                        .send(Fetched::Page {
                            crm,
                            object,
                            records,
                            cursor: c.clone(),
                            resumed,
                        })
                        .await;
                    if sent.is_err() {
                        return;
                    }
                    if done {
                        break;
                    }
                }
            }
            let users = retrying(&budget, &client, &policy, "sync users", || client.users()).await;
            let _ = match users {
                Ok(users) => tx.send(Fetched::Users { crm, users }).await,
                Err(e) => {
                    let error = format!("users: {e}");
                    tx.send(Fetched::Failed { crm, error }).await
                }
            };
        });
    }
    rx
}

/// Starts the Bulk API query job that reads `object` (modified after `since`).
async fn start_bulk(
    budget: &allot_crm::Budget,
    client: &CrmClient,
    policy: &ReadPolicy,
    sf: &allot_crm::salesforce::SalesforceClient,
    object: ObjectKind,
    fields: &[&str],
    since: Option<Millis>,
) -> Result<String, allot_crm::CrmError> {
    let since = since.map(allot_crm::salesforce::soql_datetime);
    let soql = allot_crm::salesforce::bulk_soql(object, fields, since.as_deref())?;
    retrying(budget, client, policy, "sync bulk job", || {
        sf.bulk_query_start(&soql)
    })
    .await
}

/// The next results page of a bulk query job, once the job is complete
/// (polled once a second, each poll under the budget).
async fn bulk_page(
    budget: &allot_crm::Budget,
    client: &CrmClient,
    policy: &ReadPolicy,
    sf: &allot_crm::salesforce::SalesforceClient,
    b: &BulkCursor,
) -> Result<allot_crm::BookPage, allot_crm::CrmError> {
    use allot_crm::salesforce::BulkState;
    if b.locator.is_none() {
        loop {
            let state = retrying(budget, client, policy, "sync bulk job", || {
                sf.bulk_query_state(&b.job)
            })
            .await?;
            match state {
                BulkState::Complete { .. } => break,
                BulkState::Failed(message) => {
                    return Err(allot_crm::CrmError::Config {
                        crm: Crm::Salesforce,
                        message: format!("bulk query job {}: {message}", b.job),
                    })
                }
                BulkState::Running(_) => {
                    tokio::time::sleep(std::time::Duration::from_secs(1)).await
                }
            }
        }
    }
    retrying(budget, client, policy, "sync bulk page", || {
        sf.bulk_query_page(&b.job, b.locator.as_deref(), BULK_PAGE)
    })
    .await
}

/// Stages `records` of one page with the cursor after it (and, on the last
/// page, the resync request it answers cleared); not committed. Records
/// are decided only when the cursor says so.
pub fn stage_page(
    pipeline: &mut Pipeline,
    crm: Crm,
    object: ObjectKind,
    records: Vec<BookRecord>,
    cursor: Option<&SyncCursor>,
    now: Millis,
) -> Result<Staged, ServiceError> {
    let decide = cursor.is_some_and(|c| c.decide);
    let mut staged = pipeline.stage_book(records, decide, now)?;
    if let Some(c) = cursor {
        let key = name(crm, object);
        staged.batch.admin_put(SYNC, &key, json!(c));
        if c.done {
            let requested: Option<ResyncRequest> = pipeline.store().admin_get(RESYNC, &key)?;
            // Only requests this run answers: made before it started, for
            // changes it read. A later one waits for the next run.
            let answered = |r: &ResyncRequest| {
                r.requested_at <= c.started_at && c.since.is_none_or(|s| s <= r.since)
            };
            if requested.is_some_and(|r| answered(&r)) {
                staged
                    .batch
                    .admin_put(RESYNC, &key, serde_json::Value::Null);
            }
        }
    }
    Ok(staged)
}

/// Stages the CRM's users (kept under [`CRM_USERS`]); not committed.
pub fn stage_users(store: &Arc<allot_store::Store>, crm: Crm, users: &[CrmUser]) -> Staged {
    let mut staged = Staged {
        batch: store.batch(),
        ..Staged::default()
    };
    staged
        .batch
        .admin_put(CRM_USERS, crm.as_str(), json!(users));
    staged
}

/// A request to resync `object` of `crm` from `since`, merged with one
/// already pending (the earlier `since` wins).
pub fn resync_request(
    store: &allot_store::Store,
    request: ResyncRequest,
) -> Result<ResyncRequest, ServiceError> {
    let pending: Option<ResyncRequest> =
        store.admin_get(RESYNC, &name(request.crm, request.object))?;
    Ok(match pending {
        Some(p) if p.since <= request.since => p,
        _ => request,
    })
}

/// Runs `plan` to the end in this task: fetches ahead, applies and commits
/// page by page (with `decide_rate`, decisions at that many records per
/// second), then the users; `progress` after each committed page. An
/// error leaves every committed page in place: the next run resumes.
pub async fn sync(
    pipeline: &mut Pipeline,
    ctx: &SyncCtx,
    plan: &SyncPlan,
    decide_rate: u32,
    mut progress: impl FnMut(&SyncProgress),
) -> Result<Vec<SyncProgress>, ServiceError> {
    let store = pipeline.store().clone();
    let starts = begin(&store, plan, crate::now_ms())?;
    let mut rx = fetch(
        &ctx.clients,
        &ctx.budgets,
        ctx.policy,
        ctx.bulk_threshold,
        starts,
    );
    let mut pacer = crate::control::Pacer::new(decide_rate);
    let mut out = Vec::new();
    while let Some(f) = rx.recv().await {
        match f {
            Fetched::Page {
                crm,
                object,
                mut records,
                cursor,
                resumed,
            } => {
                if cursor.decide {
                    // Decisions at the realignment rate: the page in pieces,
                    // the cursor with the last (a crash re-reads the page;
                    // records already decided are not decided again).
                    while records.len() > 1 {
                        let n = pacer.grant(crate::now_ms()).min(records.len() - 1);
                        if n == 0 {
                            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                            continue;
                        }
                        let rest = records.split_off(n);
                        // A piece of a page to decide: the cursor comes with the last.
                        let staged = pipeline.stage_book(records, true, crate::now_ms())?;
                        crate::pipeline::commit(&store, staged.batch, "sync").await?;
                        records = rest;
                    }
                }
                let staged = stage_page(
                    pipeline,
                    crm,
                    object,
                    records,
                    Some(&cursor),
                    crate::now_ms(),
                )?;
                crate::pipeline::commit(&store, staged.batch, "sync").await?;
                let p = SyncProgress {
                    crm,
                    object,
                    cursor,
                    resumed,
                };
                progress(&p);
                if p.cursor.done {
                    out.push(p);
                }
            }
            Fetched::Users { crm, users } => {
                let staged = stage_users(&store, crm, &users);
                crate::pipeline::commit(&store, staged.batch, "sync").await?;
            }
            Fetched::Failed { crm, error } => {
                return Err(ServiceError::Stopped {
                    stage: "sync",
                    detail: format!("{crm} {error}"),
                });
            }
        }
    }
    Ok(out)
}
