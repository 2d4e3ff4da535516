//! The decider's side of the re-route log ([`REROUTE_LOG`]): owner
//! refusals the writer of this store left, read as native events. The log
//! position is committed in the same batch as their effects, so a refusal
//! is decided once, and a crash between the failed write and the decision
//! leaves it in the log for the next start.

use allot_events::Format;
use allot_store::Store;

use crate::pipeline::Payload;
use crate::raw::{INGEST_GROUP, REROUTE_LOG};
use crate::ServiceError;

/// The refusals waiting (at most `max`), and the position to commit with
/// their effects (`None`: nothing waits).
pub fn waiting(store: &Store, max: usize) -> Result<(Vec<Payload>, Option<u64>), ServiceError> {
    let log = store.log(REROUTE_LOG);
    let entries = log.read(log.committed(INGEST_GROUP)?, max)?;
    let next = entries.last().map(|&(last, _)| last + 1);
    let payloads = entries
        .into_iter()
        .map(|(offset, body)| Payload {
            format: Format::Native,
            source: format!("{REROUTE_LOG}@{offset}"),
            body,
        })
        .collect();
    Ok((payloads, next))
}

/// Adds the commit of the re-route log position `next` to `batch`.
pub fn commit(batch: &mut allot_store::Batch, next: Option<u64>) {
    if let Some(next) = next {
        batch.log_commit(REROUTE_LOG, INGEST_GROUP, next);
    }
}
