//! Re-routing through the engine: the CRM refused an owner allot wrote
//! because that user is inactive there. The writer turns the refusal into
//! a [`ChangeKind::OwnerRefused`](allot_core::ChangeKind) event, durably and
//! in the same store commit that records the failed write; here it is
//! decided like any other event: the record goes back to the owner the CRM
//! still shows, the loads follow, and the engine decides again without the
//! refused rep, with the reason first in the explanation. In split mode
//! the refused rep travels with the route to the pool that picks the rep.
//!
//! Offboarding in microservice mode takes the same path: an
//! [`owner_withdrawn`](allot_core::ChangeEvent::owner_withdrawn) event per
//! open record, decided again without the rep by the replica that owns it.

use allot_core::{ChangeEvent, Millis, StateOp};
use tracing::{info, warn};

use super::{Chunk, Pipeline, Staged};
use crate::ServiceError;

/// The first explanation line of a re-routed decision.
pub const REROUTE_MARK: &str = "re-routed:";

impl Pipeline {
    pub(super) fn refused(
        &mut self,
        out: &mut Staged,
        chunk: &mut Chunk,
        event: &ChangeEvent,
        now: Millis,
    ) -> Result<(), ServiceError> {
        let Some((refused, previous)) = event.refusal() else {
            warn!(event_id = %event.event_id, "owner_refused event without fields.owner: ignored");
            return Ok(());
        };
        let Some(id) = event.record_id.clone() else {
            return Ok(());
        };
        let key = (event.object, id.clone());
        let (record, applied) = self.known(chunk, &key)?;
        let Some(mut record) = record.filter(|r| !r.deleted) else {
            info!(record_id = %id, %refused, "owner refused for a record that is gone: nothing to re-route");
            return Ok(());
        };
        if record.owner.as_deref() != Some(refused.as_str()) {
            info!(record_id = %id, %refused, owner = ?record.owner, "owner refused, but the record has moved on since: nothing to re-route");
            return Ok(());
        }
        if let Some(note) = event.withdrawal() {
            // Offboarding: the CRM shows the rep, the record is decided
            // again as it is, without them (the decision moves the load).
            info!(record_id = %id, rep = %refused, "owner withdrawn: decided again without them");
            self.decide_without(
                out,
                &mut record,
                event,
                now,
                Some(note),
                std::slice::from_ref(&refused),
            );
            out.batch.put_record(&record, applied);
            chunk.cache.insert(key, (Some(record), applied));
            return Ok(());
        }
        // The CRM still shows the previous owner: the record and the loads
        // go back to it before the engine decides again.
        let mut ops = vec![StateOp::OpenDelta {
            rep: refused.clone(),
            delta: -1,
        }];
        if let Some(p) = &previous {
            ops.push(StateOp::OpenDelta {
                rep: p.clone(),
                delta: 1,
            });
        }
        self.effects(out, ops);
        record.owner.clone_from(&previous);
        let reason = event
            .fields
            .get("reason")
            .and_then(allot_core::Value::as_text)
            .unwrap_or_else(|| "inactive owner".into());
        let note = format!(
            "{REROUTE_MARK} {} refused owner {refused} as inactive ({reason}); decided again without them",
            event.source
        );
        info!(record_id = %id, %refused, "owner refused by the crm: re-routed through the engine");
        self.decide_without(
            out,
            &mut record,
            event,
            now,
            Some(note),
            std::slice::from_ref(&refused),
        );
        out.batch.put_record(&record, applied);
        chunk.cache.insert(key, (Some(record), applied));
        Ok(())
    }
}
