//! One CRM's lane: its client, pacing and calls in flight, and the task that
//! makes one call: mark the batch in flight (one store batch), read owners
//! when worth it, send the update, report back.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use allot_core::{Crm, Millis, ObjectKind};
use allot_crm::{CrmClient, CrmError, LimitInfo, RecordRead, RecordResult};
use allot_store::{OutboxKey, OutboxState, Store, StoreError};
use serde_json::Value;

use super::batcher::{Candidate, Planned};
use super::error::WriterError;

/// A CRM the writer writes to.
pub struct Lane {
    pub crm: Crm,
    pub client: CrmClient,
    /// The CRM connection's request budget (shared with reads).
    pub budget: Arc<allot_crm::Budget>,
    /// Records per call: the CRM's limit or the configured override.
    pub max_batch: usize,
    pub max_concurrent: usize,
    /// Calls out now.
    pub in_calls: usize,
    /// 429s in a row: each one pauses longer (exponential, with jitter).
    pub strikes: u32,
    /// Whether the quota alert is raised (logged once per stop).
    pub quota_alert: bool,
}

/// What one call task found.
pub struct CallReport {
    pub crm: Crm,
    pub object: ObjectKind,
    /// Every item handed to the task (to release them).
    pub items: Vec<Candidate>,
    /// Items sent to the CRM, in call order (attempt counted).
    pub sent: Vec<Candidate>,
    /// Items the CRM already showed with the wanted owner.
    pub skipped: Vec<Candidate>,
    /// The answer, when a call was made.
    pub result: Option<Result<Vec<RecordResult>, CrmError>>,
    pub elapsed: Duration,
    /// The limit headers after the call.
    pub limit_info: Option<LimitInfo>,
    /// The store refused to mark the batch in flight: nothing was sent.
    pub store_error: Option<WriterError>,
    /// For a probe (no items, no call): each fenced record read and the
    /// owner the CRM shows (`None`: missing or not read).
    pub probed: Vec<(OutboxKey, Option<String>)>,
}

impl CallReport {
    fn new(crm: Crm, object: ObjectKind, items: Vec<Candidate>) -> CallReport {
        CallReport {
            crm,
            object,
            items,
            sent: Vec::new(),
            skipped: Vec::new(),
            result: None,
            elapsed: Duration::ZERO,
            limit_info: None,
            store_error: None,
            probed: Vec::new(),
        }
    }
}

/// The field holding a record's owner in `crm`.
fn owner_field(crm: Crm) -> &'static str {
    match crm {
        Crm::Hubspot => "hubspot_owner_id",
        _ => "OwnerId",
    }
}

/// Runs a blocking store operation off the async threads.
pub async fn blocking<T, F>(what: &'static str, f: F) -> Result<T, WriterError>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, StoreError> + Send + 'static,
{
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r.map_err(WriterError::from),
        Err(e) => Err(WriterError::Task {
            what,
            detail: e.to_string(),
        }),
    }
}

/// Makes one call for `batch` (see the module doc), after batched owner
/// reads of the items worth reading when `read` (see [`Planned::reads`]).
pub async fn call(
    store: Arc<Store>,
    client: CrmClient,
    batch: Planned,
    read: bool,
    now_ms: Millis,
) -> CallReport {
    let Planned { crm, object, items } = batch;
    let mut report = CallReport::new(crm, object, items.clone());
    // Decided before the items are marked in flight below.
    let worth: HashSet<String> = items
        .iter()
        .filter(|c| read && c.worth_reading())
        .map(|c| c.entry.change.record_id.clone())
        .collect();
    let marks: Vec<(OutboxKey, Millis)> = items
        .iter()
        .map(|c| (c.key(), c.entry.change.decided_at))
        .collect();
    let applied = blocking("mark in flight", move || {
        let mut b = store.batch();
        for (key, decided_at) in &marks {
            b.outbox_mark_in_flight(key, *decided_at, now_ms);
        }
        store.commit(b).map(|r| r.outbox_updates)
    })
    .await;
    let applied = match applied {
        Ok(a) => a,
        Err(e) => {
            report.store_error = Some(e);
            return report;
        }
    };
    // Items not marked were replaced by a newer decision or settled: drop them.
    let mut sent: Vec<Candidate> = items
        .into_iter()
        .zip(applied)
        .filter(|(_, ok)| *ok)
        .map(|(mut c, _)| {
            c.entry.attempts = c.entry.attempts.saturating_add(1);
            c.entry.state = OutboxState::InFlight {
                attempt: c.entry.attempts,
                since: now_ms,
            };
            c
        })
        .collect();
    if !worth.is_empty() {
        let (skip, write) = read_owners(&client, object, sent, &worth).await;
        report.skipped = skip;
        sent = write;
    }
    if sent.is_empty() {
        report.limit_info = client.limit_info();
        return report;
    }
    let pairs: Vec<(&str, &str)> = sent
        .iter()
        .map(|c| {
            (
                c.entry.change.record_id.as_str(),
                c.entry.change.owner.as_str(),
            )
        })
        .collect();
    let started = Instant::now();
    let result = client.update_owners(object, &pairs).await;
    report.elapsed = started.elapsed();
    report.limit_info = client.limit_info();
    report.result = Some(result);
    report.sent = sent;
    report
}

/// Splits `items` into those the CRM already shows with the wanted owner
/// and those to write. Only the records in `worth` are read, in batched
/// reads (`max_read` ids per call); a failed or missing read means "write it".
async fn read_owners(
    client: &CrmClient,
    object: ObjectKind,
    items: Vec<Candidate>,
    worth: &HashSet<String>,
) -> (Vec<Candidate>, Vec<Candidate>) {
    let ids: Vec<&str> = items
        .iter()
        .map(|c| c.entry.change.record_id.as_str())
        .filter(|id| worth.contains(*id))
        .collect();
    let current = current_owners(client, object, &ids).await;
    let (mut skip, mut write) = (Vec::new(), Vec::new());
    for c in items {
        let change = &c.entry.change;
        match current.get(change.record_id.as_str()) {
            Some(Some(owner)) if *owner == change.owner => skip.push(c),
            _ => write.push(c),
        }
    }
    (skip, write)
}

/// Reads fenced records' owners (see [`super::book::Fence`]): one report
/// with no items and no call, only what was read.
pub async fn probe(client: CrmClient, object: ObjectKind, keys: Vec<OutboxKey>) -> CallReport {
    let ids: Vec<&str> = keys.iter().map(|k| k.record_id.as_str()).collect();
    let mut current = current_owners(&client, object, &ids).await;
    drop(ids);
    let mut report = CallReport::new(client.crm(), object, Vec::new());
    report.limit_info = client.limit_info();
    report.probed = keys
        .into_iter()
        .map(|k| {
            let owner = current.remove(k.record_id.as_str()).flatten();
            (k, owner)
        })
        .collect();
    report
}

/// Read calls needed for `n` records.
pub fn read_calls(client: &CrmClient, n: usize) -> usize {
    n.div_ceil(client.max_read().max(1))
}

/// The owner the CRM shows for each of `ids` that could be read (`None`:
/// the record is missing or has no owner); ids whose read failed are absent.
async fn current_owners(
    client: &CrmClient,
    object: ObjectKind,
    ids: &[&str],
) -> HashMap<String, Option<String>> {
    let field = owner_field(client.crm());
    let mut out = HashMap::with_capacity(ids.len());
    for chunk in ids.chunks(client.max_read().max(1)) {
        match client.read_records(object, chunk, &[field]).await {
            Ok(reads) => {
                let mut reads: HashMap<String, RecordRead> = reads.into_iter().collect();
                for id in chunk {
                    match reads.remove(*id) {
                        Some(RecordRead::Found(fields)) => {
                            let owner = fields.get(field).and_then(Value::as_str);
                            out.insert(id.to_string(), owner.map(str::to_string));
                        }
                        Some(RecordRead::Missing) => {
                            out.insert(id.to_string(), None);
                        }
                        Some(RecordRead::NotRead(_)) | None => {}
                    }
                }
            }
            Err(e) => {
                tracing::debug!(crm = %client.crm(), %object, records = chunk.len(), error = %e, "owner read failed, writing instead");
            }
        }
    }
    out
}
