//! Deciding listed records again on request, such as a failed write retried:
//! the owner may have changed since the write failed (a rep deactivated, new
//! rules), so the engine decides again instead of the old owner being sent.

use allot_core::{Millis, Record, StateOp};
use allot_store::{FailedWrite, FailedWriteId, OrderKey, OutboxKey, OutboxState, Store};
use serde_json::{json, Value};
use tracing::info;

use super::{redecide, RedecideTarget, Reply};
use crate::pipeline::{Pipeline, Staged};
use crate::ServiceError;

/// One target, checked: the stored record and the failed write it retries.
struct Checked {
    record: Record,
    applied: Option<OrderKey>,
    failed: Option<(FailedWriteId, FailedWrite)>,
}

/// Re-decides `targets` under the pipeline's rules and state, staging the
/// owner change when the engine's owner differs from the one the CRM holds.
///
/// Each record is decided as its CRM holds it, as far as the outbox knows
/// (see [`crm_owner`]): when a write failed, the CRM never received that
/// owner, so the record counts as the previous owner's again first; the same
/// owner chosen again is then written again, and a different one replaces
/// it. A retried failed write is removed in the same batch. Every target is
/// checked before anything is staged: a refusal (unknown record or failed
/// write) changes nothing.
pub fn redecide_records(
    p: &mut Pipeline,
    out: &mut Staged,
    targets: &[RedecideTarget],
    by: &str,
    now: Millis,
) -> Result<Reply, ServiceError> {
    if targets.is_empty() {
        return Ok(Err("no records to re-decide".into()));
    }
    let mut work = Vec::new();
    for t in targets {
        match check(p.store(), t)? {
            Ok(c) => work.push((t, c)),
            Err(why) => return Ok(Err(why)),
        }
    }
    let mut items = Vec::new();
    let mut lines = Vec::new();
    for (t, c) in work {
        let (item, line) = one(p, out, t, c, by, now)?;
        items.push(item);
        lines.push(line);
    }
    Ok(Ok(json!({ "records": items, "message": lines.join("; ") })))
}

fn check(store: &Store, t: &RedecideTarget) -> Result<Result<Checked, String>, ServiceError> {
    let what = format!("{} {}", t.object, t.record_id);
    let failed = match &t.failed_write {
        None => None,
        Some(text) => {
            let id = match FailedWriteId::parse(text) {
                Ok(id) => id,
                Err(e) => return Ok(Err(e)),
            };
            if id.key != OutboxKey::new(t.object, &t.record_id) {
                return Ok(Err(format!("failed write {text} is not about {what}")));
            }
            match store.failed_write(&id)? {
                Some(f) => Some((id, f)),
                None => return Ok(Err(format!("no failed write {text}"))),
            }
        }
    };
    Ok(match store.record(t.object, &t.record_id)? {
        Some((r, _)) if r.deleted => Err(format!(
            "{what} is deleted: nothing to decide (discard its failed write instead)"
        )),
        Some((record, applied)) => Ok(Checked {
            record,
            applied,
            failed,
        }),
        None => Err(format!("{what} is not a known record")),
    })
}

/// The owner the CRM holds (or is about to) as far as the outbox knows: the
/// newest change's owner once written or while queued, the owner before it
/// when it failed; `None` when the outbox has nothing for the record.
fn crm_owner(store: &Store, record: &Record) -> Result<Option<Option<String>>, ServiceError> {
    let Some(e) = store.outbox_get(&OutboxKey::new(record.object, &record.id))? else {
        return Ok(None);
    };
    Ok(Some(match e.state {
        OutboxState::Failed => e.change.previous_owner,
        _ => Some(e.change.owner),
    }))
}

fn one(
    p: &mut Pipeline,
    out: &mut Staged,
    t: &RedecideTarget,
    c: Checked,
    by: &str,
    now: Millis,
) -> Result<(Value, String), ServiceError> {
    let Checked {
        mut record,
        applied,
        failed,
    } = c;
    let reason = match &failed {
        Some((id, f)) => format!("retry: failed write {id} ({}) retried by {by}", f.code),
        None => format!("redecide: requested by {by}"),
    };
    if let Some((id, _)) = &failed {
        out.batch.failed_write_discard(id);
    }
    let mut reset = false;
    match crm_owner(p.store(), &record)? {
        Some(held) if held != record.owner => {
            // The CRM holds another owner than the record says (a write that
            // failed, a re-route): count the record as theirs first.
            let delta = |rep: &Option<String>, delta| {
                rep.clone().map(|rep| StateOp::OpenDelta { rep, delta })
            };
            let ops: Vec<StateOp> = [delta(&record.owner, -1), delta(&held, 1)]
                .into_iter()
                .flatten()
                .collect();
            p.apply_ops(&ops);
            out.batch.apply_state_ops(&ops);
            record.owner = held;
            reset = true;
        }
        _ => {}
    }
    let held = record.owner.clone();
    let event = format!("redecide:{}:{}:{now}", t.object, t.record_id);
    let decided = redecide(p, out, record.clone(), &reason, &event, now)?;
    if decided.is_none() && reset {
        out.batch.put_record(&record, applied);
    }
    let what = format!("{} {}", t.object, t.record_id);
    let (owner, line) = match &decided {
        Some(d) => (
            d.owner.clone(),
            format!("{what} re-decided: owner {}, write queued", show(&d.owner)),
        ),
        None => (
            held.clone(),
            format!(
                "{what} re-decided: owner stays {}, nothing to write",
                show(&held)
            ),
        ),
    };
    info!(object = %t.object, record_id = %t.record_id, owner = %show(&owner), write = decided.is_some(), by = %by, "record re-decided on request");
    let item = json!({
        "object": t.object,
        "record_id": t.record_id,
        "failed_write": failed.as_ref().map(|(id, _)| id.to_string()),
        "tried_owner": failed.as_ref().map(|(_, f)| f.change.owner.clone()),
        "previous_owner": held,
        "owner": owner,
        "write": decided.is_some(),
        "territory": decided.as_ref().and_then(|d| d.territory.clone()),
        "strategy": decided.as_ref().map(|d| d.strategy.as_str()),
    });
    Ok((item, line))
}

fn show(owner: &Option<String>) -> String {
    owner.clone().unwrap_or_else(|| "(none)".into())
}
