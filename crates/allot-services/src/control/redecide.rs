//! Deciding a known record again, outside the event path, through the
//! same effects as a decision made on an event.

use allot_core::{Crm, Decision, Millis, OwnerChange, Record};

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
    p.metrics()
        .decisions
        .with_label_values(&[d.strategy.as_str(), "true"])
        .inc();
    out.batch.append_audit(&d);
    let crm = record
        .fields
        .get("crm")
        .and_then(|v| v.as_text())
        .and_then(|c| match c.as_str() {
            "salesforce" => Some(Crm::Salesforce),
            "hubspot" => Some(Crm::Hubspot),
            _ => None,
        });
    if let Some(change) = d.owner_change(event_id) {
        let change = OwnerChange { crm, ..change };
        out.batch.outbox_put(&change);
        out.batch
            .record_write(record.object, &record.id, &change.owner, now);
        record.owner = Some(change.owner.clone());
        record.owner_since = Some(now);
        out.changes.push(change);
    }
    out.batch.put_record(&record, applied);
    out.decisions.push(d.clone());
    Ok(Some(d))
}
