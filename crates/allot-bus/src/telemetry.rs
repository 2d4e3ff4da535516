//! Named telemetry events: one struct per thing that happens, each logging
//! with a lowercase message and its values in fields. Counters, when a stage
//! wants them, hang off the same structs.

use tracing::{debug, info, warn};

/// The group was given partitions.
pub(crate) struct PartitionsAssigned<'a> {
    pub group: &'a str,
    pub partitions: &'a [(String, i32)],
}

impl PartitionsAssigned<'_> {
    pub fn emit(&self) {
        info!(group = %self.group, partitions = ?self.partitions, "kafka partitions assigned");
    }
}

/// Partitions were taken away; their acked prefix was committed first.
pub(crate) struct PartitionsRevoked<'a> {
    pub group: &'a str,
    pub partitions: &'a [(String, i32)],
    pub committed: &'a [(String, i32, i64)],
    pub lost: bool,
}

impl PartitionsRevoked<'_> {
    pub fn emit(&self) {
        info!(
            group = %self.group,
            partitions = ?self.partitions,
            committed = ?self.committed,
            lost = self.lost,
            "kafka partitions revoked"
        );
    }
}

/// Offsets were committed synchronously (revoke, close).
pub(crate) struct OffsetsCommitted<'a> {
    pub group: &'a str,
    pub reason: &'static str,
    pub offsets: &'a [(String, i32, i64)],
}

impl OffsetsCommitted<'_> {
    pub fn emit(&self) {
        debug!(group = %self.group, reason = self.reason, offsets = ?self.offsets, "kafka offsets committed");
    }
}

/// A commit failed; the records after the last good commit will be delivered again.
pub(crate) struct CommitFailed<'a> {
    pub group: &'a str,
    pub reason: &'static str,
    pub error: &'a dyn std::fmt::Display,
}

impl CommitFailed<'_> {
    pub fn emit(&self) {
        warn!(group = %self.group, reason = self.reason, error = %self.error, "kafka offset commit failed");
    }
}

/// A partition was paused or resumed for backpressure.
pub(crate) struct PartitionFlow<'a> {
    pub topic: &'a str,
    pub partition: i32,
    pub paused: bool,
    pub in_flight: usize,
}

impl PartitionFlow<'_> {
    pub fn emit(&self) {
        let message = if self.paused {
            "kafka partition paused"
        } else {
            "kafka partition resumed"
        };
        debug!(topic = %self.topic, partition = self.partition, in_flight = self.in_flight, "{message}");
    }
}

/// The consumer reported an error instead of a record.
pub(crate) struct ConsumeFailed<'a> {
    pub group: &'a str,
    pub error: &'a dyn std::fmt::Display,
    pub retryable: bool,
}

impl ConsumeFailed<'_> {
    pub fn emit(&self) {
        warn!(group = %self.group, error = %self.error, retryable = self.retryable, "kafka consume failed");
    }
}

/// A record could not be produced.
pub(crate) struct ProduceFailed<'a> {
    pub topic: &'a str,
    pub error: &'a dyn std::fmt::Display,
    pub retryable: bool,
}

impl ProduceFailed<'_> {
    pub fn emit(&self) {
        warn!(topic = %self.topic, error = %self.error, retryable = self.retryable, "kafka produce failed");
    }
}

/// A delivery was sent to a dead-letter topic.
pub(crate) struct DeadLettered<'a> {
    pub dlq: &'a str,
    pub topic: &'a str,
    pub partition: i32,
    pub offset: i64,
    pub error_kind: &'a str,
}

impl DeadLettered<'_> {
    pub fn emit(&self) {
        warn!(
            dlq = %self.dlq,
            topic = %self.topic,
            partition = self.partition,
            offset = self.offset,
            error_kind = %self.error_kind,
            "kafka delivery dead-lettered"
        );
    }
}

/// Refreshing the lag failed; the previous values stay.
pub(crate) struct LagRefreshFailed<'a> {
    pub group: &'a str,
    pub error: &'a dyn std::fmt::Display,
}

impl LagRefreshFailed<'_> {
    pub fn emit(&self) {
        debug!(group = %self.group, error = %self.error, "kafka lag refresh failed");
    }
}
