//! Per-partition consumer lag: the high watermark minus the consumer's
//! position, refreshed in the background and read without I/O.

use std::sync::{Arc, Weak};
use std::time::Duration;

use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::Offset;
use serde::{Deserialize, Serialize};

use crate::config::OffsetReset;
use crate::context::{Shared, SourceContext};
use crate::error::BusError;
use crate::telemetry::LagRefreshFailed;

/// How far one assigned partition is behind its log end.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionLag {
    pub topic: String,
    pub partition: i32,
    /// Offset of the next record to be produced.
    pub high_watermark: i64,
    /// Offset of the next record this consumer will receive: its position,
    /// else the committed offset, else where `auto_offset_reset` starts.
    pub position: i64,
    /// `high_watermark - position`, never negative.
    pub lag: i64,
}

/// How long one broker query for the lag may take.
const QUERY_TIMEOUT: Duration = Duration::from_secs(2);

/// Queries the lag of every assigned partition. Blocking: run it off the
/// async threads.
pub(crate) fn query_lag(
    consumer: &StreamConsumer<SourceContext>,
    reset: OffsetReset,
) -> Result<Vec<PartitionLag>, BusError> {
    let assignment = consumer
        .assignment()
        .map_err(|e| BusError::query("assignment", &e))?;
    if assignment.count() == 0 {
        return Ok(Vec::new());
    }
    let positions = consumer
        .position()
        .map_err(|e| BusError::query("positions", &e))?;
    let mut committed = None;
    let mut out = Vec::with_capacity(assignment.count());
    for element in assignment.elements() {
        let (topic, partition) = (element.topic(), element.partition());
        let (low, high) = consumer
            .fetch_watermarks(topic, partition, QUERY_TIMEOUT)
            .map_err(|e| BusError::query(format!("watermarks of {topic}/{partition}"), &e))?;
        let mut position = positions
            .find_partition(topic, partition)
            .and_then(|e| valid(e.offset()));
        if position.is_none() {
            if committed.is_none() {
                committed = Some(
                    consumer
                        .committed_offsets(assignment.clone(), QUERY_TIMEOUT)
                        .map_err(|e| BusError::query("committed offsets", &e))?,
                );
            }
            position = committed
                .as_ref()
                .and_then(|c| c.find_partition(topic, partition))
                .and_then(|e| valid(e.offset()));
        }
        let position = position.unwrap_or(match reset {
            OffsetReset::Earliest => low,
            OffsetReset::Latest => high,
        });
        out.push(PartitionLag {
            topic: topic.to_string(),
            partition,
            high_watermark: high,
            position,
            lag: (high - position).max(0),
        });
    }
    Ok(out)
}

fn valid(offset: Offset) -> Option<i64> {
    match offset {
        Offset::Offset(o) if o >= 0 => Some(o),
        _ => None,
    }
}

/// Refreshes the shared lag every `interval` until the consumer is gone.
/// Holds the consumer only weakly, so it never keeps a dropped source alive
/// for longer than one query.
pub(crate) async fn refresh_loop(
    consumer: Weak<StreamConsumer<SourceContext>>,
    shared: Arc<Shared>,
    reset: OffsetReset,
    interval: Duration,
) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let Some(strong) = consumer.upgrade() else {
            return;
        };
        let result = tokio::task::spawn_blocking(move || query_lag(&strong, reset))
            .await
            .map_err(|e| BusError::task("lag", &e))
            .and_then(|r| r);
        match result {
            Ok(lag) => *shared.lag() = lag,
            Err(err) => LagRefreshFailed {
                group: &shared.group,
                error: &err,
            }
            .emit(),
        }
    }
}
