//! librdkafka callbacks: logs into tracing, and the consumer's rebalance hooks
//! that commit the acked prefix before partitions move.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{Offset, TopicPartitionList};
use tracing::{debug, error, info, warn};

use crate::lag::PartitionLag;
use crate::telemetry::{CommitFailed, OffsetsCommitted, PartitionsAssigned, PartitionsRevoked};
use crate::tracker::OffsetTracker;

/// librdkafka's own log lines and errors, as tracing events.
#[derive(Debug, Clone, Default)]
pub struct TracingContext;

impl ClientContext for TracingContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        log_librdkafka(level, fac, log_message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        warn!(error = %error, reason, "librdkafka error");
    }
}

/// Readers outside any group (no rebalances) use the default hooks.
impl ConsumerContext for TracingContext {}

fn log_librdkafka(level: RDKafkaLogLevel, fac: &str, message: &str) {
    match level {
        RDKafkaLogLevel::Emerg
        | RDKafkaLogLevel::Alert
        | RDKafkaLogLevel::Critical
        | RDKafkaLogLevel::Error => error!(facility = fac, message, "librdkafka log"),
        RDKafkaLogLevel::Warning => warn!(facility = fac, message, "librdkafka log"),
        RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => {
            info!(facility = fac, message, "librdkafka log")
        }
        RDKafkaLogLevel::Debug => debug!(facility = fac, message, "librdkafka log"),
    }
}

/// State shared by the source, its ackers, its lag task and the rebalance hooks.
#[derive(Debug)]
pub(crate) struct Shared {
    pub group: String,
    pub tracker: Mutex<OffsetTracker>,
    pub lag: Mutex<Vec<PartitionLag>>,
    /// Counts assignments and revocations: state kept per partition is
    /// stale once this moved.
    pub generation: std::sync::atomic::AtomicU64,
}

impl Shared {
    pub fn new(group: &str, max_in_flight: usize) -> Shared {
        Shared {
            group: group.to_string(),
            tracker: Mutex::new(OffsetTracker::new(max_in_flight)),
            lag: Mutex::new(Vec::new()),
            generation: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// The tracker; a panic elsewhere while holding it leaves it consistent
    /// (every method finishes its update before returning), so poison is ignored.
    pub fn tracker(&self) -> MutexGuard<'_, OffsetTracker> {
        self.tracker.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn lag(&self) -> MutexGuard<'_, Vec<PartitionLag>> {
        self.lag.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The consumer's context: commits the acked prefix of revoked partitions
/// before they move, and starts assigned partitions afresh.
pub(crate) struct SourceContext {
    pub shared: Arc<Shared>,
    /// Whether the group uses the cooperative protocol (incremental assign),
    /// known from the configured `partition.assignment.strategy`.
    pub cooperative: bool,
}

impl ClientContext for SourceContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        log_librdkafka(level, fac, log_message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        warn!(group = %self.shared.group, error = %error, reason, "librdkafka error");
    }
}

impl ConsumerContext for SourceContext {
    /// rdkafka's default asks librdkafka for the rebalance protocol here,
    /// and that call blocks forever when the consumer group already
    /// terminated, as it can while closing (librdkafka #4041; seen here as a
    /// hung `drop`). The protocol is known from the configuration, so this
    /// does the same without asking, and skips assign calls that would hang
    /// the same way.
    fn rebalance(
        &self,
        base_consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        let tpl: &TopicPartitionList = tpl;
        let rebalance = match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => Rebalance::Assign(tpl),
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => Rebalance::Revoke(tpl),
            other => Rebalance::Error(KafkaError::Rebalance(other.into())),
        };
        self.pre_rebalance(base_consumer, &rebalance);
        // Once the group terminated (a stale event served while closing),
        // librdkafka drops assign requests without answering: skip them.
        if base_consumer.closed() {
            debug!(group = %self.shared.group, "kafka rebalance after close skipped");
            return;
        }
        let result = match (&rebalance, self.cooperative) {
            (Rebalance::Assign(tpl), false) => base_consumer.assign(tpl),
            (Rebalance::Assign(tpl), true) => base_consumer.incremental_assign(tpl),
            (Rebalance::Revoke(tpl), true) => base_consumer.incremental_unassign(tpl),
            // A revoke, or an error: give everything up, as librdkafka's
            // own default handler does.
            (_, _) => base_consumer.unassign(),
        };
        if let Err(err) = result {
            warn!(group = %self.shared.group, error = %err, "kafka rebalance assignment failed");
        }
        self.post_rebalance(base_consumer, &rebalance);
    }

    fn pre_rebalance(&self, base_consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let Rebalance::Revoke(tpl) = rebalance else {
            return;
        };
        let partitions = partitions_of(tpl);
        let commits = self.shared.tracker().revoke(&partitions);
        // A lost assignment (session expired) belongs to a newer generation:
        // the coordinator would refuse the commit, and the new owner already
        // started from the last commit that went through.
        let lost = base_consumer.assignment_lost();
        if !lost && !commits.is_empty() {
            match offsets_list(&commits)
                .and_then(|list| base_consumer.commit(&list, CommitMode::Sync))
            {
                Ok(()) => OffsetsCommitted {
                    group: &self.shared.group,
                    reason: "revoke",
                    offsets: &commits,
                }
                .emit(),
                Err(err) => CommitFailed {
                    group: &self.shared.group,
                    reason: "revoke",
                    error: &err,
                }
                .emit(),
            }
        }
        PartitionsRevoked {
            group: &self.shared.group,
            partitions: &partitions,
            committed: &commits,
            lost,
        }
        .emit();
    }

    fn post_rebalance(&self, base_consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        self.shared
            .generation
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        match rebalance {
            Rebalance::Assign(tpl) => {
                let partitions = partitions_of(tpl);
                self.shared.tracker().assign(&partitions);
                // A partition paused under an older assignment must not stay
                // paused: its new window is empty.
                if let Err(err) = base_consumer.resume(tpl) {
                    debug!(group = %self.shared.group, error = %err, "kafka resume after assign failed");
                }
                PartitionsAssigned {
                    group: &self.shared.group,
                    partitions: &partitions,
                }
                .emit();
            }
            Rebalance::Revoke(_) => {}
            Rebalance::Error(err) => {
                warn!(group = %self.shared.group, error = %err, "kafka rebalance failed");
            }
        }
    }

    fn commit_callback(&self, result: Result<(), KafkaError>, offsets: &TopicPartitionList) {
        match result {
            Ok(()) => {
                debug!(group = %self.shared.group, offsets = ?offsets_of(offsets), "kafka offsets committed")
            }
            // Nothing stored since the last commit: not a failure.
            Err(KafkaError::ConsumerCommit(rdkafka::types::RDKafkaErrorCode::NoOffset)) => {}
            Err(err) => CommitFailed {
                group: &self.shared.group,
                reason: "interval",
                error: &err,
            }
            .emit(),
        }
    }
}

/// `(topic, partition)` of every element of a list.
pub(crate) fn partitions_of(tpl: &TopicPartitionList) -> Vec<(String, i32)> {
    tpl.elements()
        .iter()
        .map(|e| (e.topic().to_string(), e.partition()))
        .collect()
}

fn offsets_of(tpl: &TopicPartitionList) -> Vec<(String, i32, Option<i64>)> {
    tpl.elements()
        .iter()
        .map(|e| (e.topic().to_string(), e.partition(), e.offset().to_raw()))
        .collect()
}

/// A list of `(topic, partition, next offset)` to store or commit.
pub(crate) fn offsets_list(
    offsets: &[(String, i32, i64)],
) -> Result<TopicPartitionList, KafkaError> {
    let mut tpl = TopicPartitionList::with_capacity(offsets.len());
    for (topic, partition, offset) in offsets {
        tpl.add_partition_offset(topic, *partition, Offset::Offset(*offset))?;
    }
    Ok(tpl)
}
