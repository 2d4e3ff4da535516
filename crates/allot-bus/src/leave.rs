//! Leaving the group: the blocking part of closing a consumer, on a thread
//! of its own and bounded in time.
//!
//! Dropping an rdkafka consumer blocks until librdkafka has revoked the
//! assignment, committed and left the group. Two things make that unsafe to
//! do on a runtime thread or to wait for without a bound: it needs the
//! broker, and librdkafka can wait forever for a reply from a consumer
//! group that already terminated (librdkafka #4041/#4884, rust-rdkafka #509;
//! seen here as a hung test binary). So the drop runs on a detached thread:
//! a runtime never waits for it on shutdown, and `close` waits only so long.

use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use tokio::sync::oneshot;

use crate::context::{offsets_list, Shared, SourceContext};
use crate::error::BusError;
use crate::telemetry::{CommitFailed, OffsetsCommitted};

/// How long to wait for other holders (a lag query, an ack in progress) to
/// let go, so that the group is left here and not wherever they finish.
const SOLE_OWNER_WAIT: Duration = Duration::from_secs(5);

/// Starts leaving the group on a detached thread: commits the acked prefix
/// synchronously when `commit` is set, then drops the consumer. The
/// receiver gets the commit's result once the consumer has left.
pub(crate) fn leave(
    consumer: Arc<StreamConsumer<SourceContext>>,
    shared: Arc<Shared>,
    commit: bool,
) -> oneshot::Receiver<Result<(), BusError>> {
    let (tx, rx) = oneshot::channel();
    let group = shared.group.clone();
    let spawned = thread::Builder::new()
        .name("allot-bus-leave".to_string())
        .spawn(move || {
            let result = if commit {
                commit_prefix(&consumer, &shared)
            } else {
                Ok(())
            };
            let deadline = Instant::now() + SOLE_OWNER_WAIT;
            while Arc::strong_count(&consumer) > 1 && Instant::now() < deadline {
                thread::sleep(Duration::from_millis(20));
            }
            // The revoke hook runs once more in here and commits the acked
            // prefix again (or for the first time, after a plain drop).
            drop(consumer);
            let _ = tx.send(result);
        });
    // Without a thread the closure, and so the consumer, is dropped here.
    if let Err(err) = spawned {
        tracing::warn!(group = %group, error = %err, "kafka leave thread did not start");
    }
    rx
}

fn commit_prefix(
    consumer: &StreamConsumer<SourceContext>,
    shared: &Shared,
) -> Result<(), BusError> {
    let commits = shared.tracker().commits();
    if commits.is_empty() {
        return Ok(());
    }
    match offsets_list(&commits).and_then(|list| consumer.commit(&list, CommitMode::Sync)) {
        Ok(()) => {
            OffsetsCommitted {
                group: &shared.group,
                reason: "close",
                offsets: &commits,
            }
            .emit();
            Ok(())
        }
        Err(err) => {
            CommitFailed {
                group: &shared.group,
                reason: "close",
                error: &err,
            }
            .emit();
            Err(BusError::commit("close", &err))
        }
    }
}
