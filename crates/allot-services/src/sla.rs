//! SLA re-routing: a lead still untouched (its status still one of the
//! "untouched" values, its owner unchanged) some minutes after allot assigned
//! it goes to the next eligible rep, at most a few times, with the reason in
//! the audit trail.

use allot_core::{Decision, Millis, ObjectKind, StateOp};
use serde::{Deserialize, Serialize};
use tracing::info;

use crate::pipeline::{Pipeline, Staged};
use crate::ServiceError;

/// Marks the explanation line of an SLA re-route (and counts them).
pub const SLA_MARK: &str = "sla:";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SlaConfig {
    pub enabled: bool,
    /// A lead untouched this long after its assignment is re-routed.
    pub untouched_minutes: u64,
    /// Re-routes per lead at most.
    pub max_reroutes: u32,
    /// Fields holding the lead status (CRM names), the first present wins.
    pub status_fields: Vec<String>,
    /// Status values that mean nobody has worked the lead yet (case-insensitive).
    pub untouched_values: Vec<String>,
    /// How often assignments are checked.
    pub scan_interval_secs: u64,
}

impl Default for SlaConfig {
    fn default() -> Self {
        SlaConfig {
            enabled: false,
            untouched_minutes: 60,
            max_reroutes: 2,
            status_fields: vec!["Status".into(), "hs_lead_status".into()],
            untouched_values: vec!["Open - Not Contacted".into(), "NEW".into()],
            scan_interval_secs: 60,
        }
    }
}

impl Pipeline {
    /// Re-decides leads assigned in `[from, now - untouched)` that nobody
    /// touched, without their current owner; stages every effect.
    pub fn sla_stage(
        &mut self,
        cfg: &SlaConfig,
        from: Millis,
        now: Millis,
    ) -> Result<Staged, ServiceError> {
        let window_end = now - i64::try_from(cfg.untouched_minutes).unwrap_or(60) * 60_000;
        let mut out = Staged {
            batch: self.store().batch(),
            ..Staged::default()
        };
        for d in self.store().audit_between(from, window_end, 10_000)? {
            if d.object != ObjectKind::Lead || !d.changed {
                continue;
            }
            self.sla_one(cfg, &d, now, &mut out)?;
        }
        Ok(out)
    }

    fn sla_one(
        &mut self,
        cfg: &SlaConfig,
        assigned: &Decision,
        now: Millis,
        out: &mut Staged,
    ) -> Result<(), ServiceError> {
        let Some((mut record, applied)) =
            self.store().record(ObjectKind::Lead, &assigned.record_id)?
        else {
            return Ok(());
        };
        if record.deleted || record.owner.is_none() || record.owner != assigned.owner {
            return Ok(()); // reassigned (or gone) since: touched
        }
        let status = cfg
            .status_fields
            .iter()
            .find_map(|f| record.fields.get(f).and_then(|v| v.as_text()));
        let untouched = status.is_some_and(|s| {
            cfg.untouched_values
                .iter()
                .any(|u| u.eq_ignore_ascii_case(s.trim()))
        });
        if !untouched {
            return Ok(());
        }
        let history = self.store().audit_for(&record.id, 0, Millis::MAX)?;
        let done = history
            .iter()
            .filter(|h| h.explanation.iter().any(|l| l.starts_with(SLA_MARK)))
            .count();
        if done >= cfg.max_reroutes as usize {
            return Ok(());
        }
        let old = record.owner.clone();
        let mut probe = record.clone();
        probe.owner = None;
        let outcome = allot_rules::decide(self.rules(), self.state(), &probe, now);
        let mut d = outcome.decision;
        if d.owner.is_none() || d.owner == old {
            return Ok(()); // nobody else eligible: stays
        }
        let mut ops = outcome.ops;
        if let Some(o) = &old {
            ops.push(StateOp::OpenDelta {
                rep: o.clone(),
                delta: -1,
            });
        }
        d.previous_owner = old.clone();
        d.changed = true;
        d.explanation.insert(
            0,
            format!(
                "{SLA_MARK} untouched {} min after assignment to {}; re-routed ({} of {})",
                cfg.untouched_minutes,
                old.as_deref().unwrap_or("-"),
                done + 1,
                cfg.max_reroutes
            ),
        );
        self.apply_ops(&ops);
        out.batch.apply_state_ops(&ops);
        info!(record_id = %record.id, from = ?old, to = ?d.owner, "sla re-route");
        let event_id = format!("sla:{}:{}", record.id, now);
        let crm = crate::pipeline::crm_of(&record);
        self.stage_decision(out, &mut record, d, crm, &event_id, now);
        out.batch.put_record(&record, applied);
        Ok(())
    }
}
