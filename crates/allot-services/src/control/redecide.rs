//! Deciding a known record again, outside the event path, through the
//! same effects as a decision made on an event.

use allot_core::{Decision, Millis, Record};

use crate::pipeline::{Pipeline, Staged};
use crate::ServiceError;

/// The live records `rep` owns, in store order.
pub fn owned_by(store: &allot_store::Store, rep: &str) -> Result<Vec<Record>, ServiceError> {
    let mut out = Vec::new();
    for r in store.records() {
        let (record, _) = r?;
        if !record.deleted && record.owner.as_deref() == Some(rep) {
            out.push(record);
        }
    }
    Ok(out)
}

/// Decides `record` again under the pipeline's rules and state; when its
/// owner changes, stages the state changes, the audited decision (with
/// `reason` as its first explanation line) and the owner change. `None`
/// when the owner stays.
pub fn redecide(
    p: &mut Pipeline,
    out: &mut Staged,
    mut record: Record,
    reason: &str,
    event_id: &str,
    now: Millis,
) -> Result<Option<Decision>, ServiceError> {
    let outcome = allot_rules::decide(p.rules(), p.state(), &record, now);
    let mut d = outcome.decision;
    if !d.changed {
        return Ok(None);
    }
    let applied = p
        .store()
        .record(record.object, &record.id)?
        .and_then(|(_, k)| k);
    p.apply_ops(&outcome.ops);
    out.batch.apply_state_ops(&outcome.ops);
    d.explanation.insert(0, reason.to_string());
    let crm = crate::pipeline::crm_of(&record);
    p.stage_decision(out, &mut record, d.clone(), crm, event_id, now);
    out.batch.put_record(&record, applied);
    Ok(Some(d))
}
