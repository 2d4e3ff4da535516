//! The consumer side of the at-least-once contract.
//!
//! # Commit strategy
//!
//! Every delivery handed out is recorded in an [`OffsetTracker`]; the caller
//! acks it once its effects are durable. When an ack moves a partition's
//! contiguous acked prefix, the source *stores* `prefix + 1` in librdkafka
//! (`enable.auto.offset.store=false`, so nothing else is ever stored), and
//! librdkafka's auto-commit (`enable.auto.commit=true`) commits what was
//! stored every `commit_interval_ms` from its own thread. So:
//!
//! - commits never run ahead of acks: a crash redelivers, it never skips;
//! - commits keep going while the caller is busy or blocked, since they do
//!   not depend on the caller polling, and cost one request per interval,
//!   not one per ack;
//! - when partitions are revoked, the rebalance hook commits their acked
//!   prefix synchronously before they move, and [`KafkaSource::close`] does
//!   the same for all partitions, so a clean hand-over redelivers nothing
//!   that was acked.
//!
//! Explicit async commits on a timer would do the same but would need the
//! caller to keep polling for the timer to fire, and a second path for
//! revokes; storing and letting librdkafka commit is the same mechanism the
//! Java client uses for "commit what was processed".
//!
//! # Backpressure
//!
//! A partition with `max_in_flight_per_partition` deliveries not yet
//! committable is paused (librdkafka stops fetching it and drops what it
//! had prefetched) and resumed when acks bring it down to half. The other
//! partitions keep flowing.

use std::sync::{Arc, Weak};
use std::time::Duration;

use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::{BorrowedMessage, Headers, Message};
use rdkafka::TopicPartitionList;
use serde::{Deserialize, Serialize};
use tokio::task::JoinHandle;

use crate::config::KafkaConfig;
use crate::context::{offsets_list, Shared, SourceContext};
use crate::error::BusError;
use crate::lag::{query_lag, refresh_loop, PartitionLag};
use crate::leave::leave;
use crate::telemetry::{ConsumeFailed, PartitionFlow};
use crate::tracker::{Flow, OffsetTracker};

type Inner = StreamConsumer<SourceContext>;

/// One record handed out by a [`KafkaSource`], owned, to be acked when done.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivery {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    /// `None` for a record produced without a key.
    pub key: Option<Vec<u8>>,
    /// `None` for a tombstone.
    pub payload: Option<Vec<u8>>,
    /// Headers in record order; a null header value is an empty one.
    pub headers: Vec<(String, Vec<u8>)>,
    /// Create or log-append time, when the broker sent one.
    pub timestamp_ms: Option<i64>,
}

impl Delivery {
    /// The value of the first header with this name.
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_slice())
    }

    pub(crate) fn from_message(message: &BorrowedMessage<'_>) -> Delivery {
        let headers = message
            .headers()
            .map(|hs| {
                hs.iter()
                    .map(|h| (h.key.to_string(), h.value.unwrap_or_default().to_vec()))
                    .collect()
            })
            .unwrap_or_default();
        Delivery {
            topic: message.topic().to_string(),
            partition: message.partition(),
            offset: message.offset(),
            key: message.key().map(<[u8]>::to_vec),
            payload: message.payload().map(<[u8]>::to_vec),
            headers,
            timestamp_ms: message.timestamp().to_millis(),
        }
    }
}

/// A consumer-group member reading a set of topics, at least once.
///
/// Every delivery must be acked ([`KafkaSource::ack`] or an [`Acker`]) after
/// its effects — processed or dead-lettered — are durable. An unacked
/// delivery holds back the commit of its partition and, past the in-flight
/// limit, the partition itself.
///
/// Keep a `next()` call pending (or call it at least every
/// `max_poll_interval_ms`) even while partitions are paused: group
/// membership and rebalances are served from inside it.
pub struct KafkaSource {
    /// The only lasting strong reference; `None` only after `close` took it.
    consumer: Option<Arc<Inner>>,
    /// Tracker and lag, shared with the ackers, the lag task and the
    /// rebalance hooks.
    shared: Arc<Shared>,
    /// Kept for the offset reset (lag) and the session timeout (close).
    config: KafkaConfig,
    /// Refreshes the lag every `lag_interval_ms`; stopped on close and drop.
    lag_task: JoinHandle<()>,
}

impl KafkaSource {
    /// Joins `config.group_id` and subscribes to `topics`. Must be called
    /// inside a tokio runtime: the consumer's wake-ups run on it.
    pub fn subscribe(config: &KafkaConfig, topics: &[&str]) -> Result<KafkaSource, BusError> {
        config.validate()?;
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(BusError::Client {
                client: "consumer",
                message: "must be created inside a tokio runtime".to_string(),
            });
        }
        let shared = Arc::new(Shared::new(
            &config.group_id,
            config.max_in_flight_per_partition,
        ));
        let cooperative = config
            .properties
            .get("partition.assignment.strategy")
            .is_some_and(|s| s.contains("cooperative"));
        let context = SourceContext {
            shared: shared.clone(),
            cooperative,
        };
        let consumer: Inner = config
            .consumer()
            .create_with_context(context)
            .map_err(|e| BusError::Client {
                client: "consumer",
                message: e.to_string(),
            })?;
        consumer
            .subscribe(topics)
            .map_err(|e| BusError::Subscribe {
                topics: topics.iter().map(|t| t.to_string()).collect(),
                message: e.to_string(),
            })?;
        let consumer = Arc::new(consumer);
        let lag_task = tokio::spawn(refresh_loop(
            Arc::downgrade(&consumer),
            shared.clone(),
            config.auto_offset_reset,
            Duration::from_millis(u64::from(config.lag_interval_ms)),
        ));
        Ok(KafkaSource {
            consumer: Some(consumer),
            shared,
            config: config.clone(),
            lag_task,
        })
    }

    /// The next record of any assigned partition. Cancellation safe: a
    /// dropped call loses nothing. Errors are the consumer's reports
    /// (broker unreachable, partition error); after a retryable one, call
    /// again.
    pub async fn next(&mut self) -> Result<Delivery, BusError> {
        let consumer = self.consumer()?;
        let delivery = match consumer.recv().await {
            Ok(message) => Delivery::from_message(&message),
            Err(err) => {
                let err = BusError::consume(&err);
                ConsumeFailed {
                    group: &self.shared.group,
                    error: &err,
                    retryable: err.retryable(),
                }
                .emit();
                return Err(err);
            }
        };
        let mut tracker = self.shared.tracker();
        let flow = tracker.delivered(&delivery.topic, delivery.partition, delivery.offset);
        // Never fail after a record was taken: the caller must see it, or its
        // partition would wait for an ack that never comes.
        apply_flow(consumer, &tracker, &delivery, flow);
        Ok(delivery)
    }

    /// Moves on every rebalance of this member (partitions assigned or
    /// revoked): a stage keeping state per partition reloads it when this
    /// changed since it last looked.
    pub fn generation(&self) -> u64 {
        self.shared
            .generation
            .load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Marks a delivery's effects as durable; its offset becomes committable
    /// once every earlier delivery of its partition is acked too.
    pub fn ack(&self, delivery: &Delivery) -> Result<(), BusError> {
        ack_on(self.consumer()?, &self.shared, delivery)
    }

    /// A handle that acks from another task (the writer that made the
    /// effects durable). It does not keep the source alive.
    pub fn acker(&self) -> Acker {
        Acker {
            consumer: self
                .consumer
                .as_ref()
                .map_or_else(Weak::new, Arc::downgrade),
            shared: self.shared.clone(),
        }
    }

    /// Deliveries of a partition handed out and not yet committable.
    pub fn in_flight(&self, topic: &str, partition: i32) -> usize {
        self.shared.tracker().in_flight(topic, partition)
    }

    /// The lag of every assigned partition as of the last background refresh
    /// (every `lag_interval_ms`); empty before the first.
    pub fn lag(&self) -> Vec<PartitionLag> {
        self.shared.lag().clone()
    }

    /// Queries the lag now, and keeps it as the latest value.
    pub async fn refresh_lag(&self) -> Result<Vec<PartitionLag>, BusError> {
        let consumer = self.consumer()?.clone();
        let reset = self.config.auto_offset_reset;
        let lag = tokio::task::spawn_blocking(move || query_lag(&consumer, reset))
            .await
            .map_err(|e| BusError::task("lag", &e))??;
        *self.shared.lag() = lag.clone();
        Ok(lag)
    }

    /// The group's committed offsets (next offset to consume) for the
    /// assigned partitions, as the broker has them.
    pub async fn committed(&self) -> Result<Vec<(String, i32, i64)>, BusError> {
        let consumer = self.consumer()?.clone();
        tokio::task::spawn_blocking(move || {
            let list = consumer
                .committed(Duration::from_secs(5))
                .map_err(|e| BusError::query("committed offsets", &e))?;
            Ok(list
                .elements()
                .iter()
                .filter_map(|e| {
                    let offset = e.offset().to_raw().filter(|o| *o >= 0)?;
                    Some((e.topic().to_string(), e.partition(), offset))
                })
                .collect())
        })
        .await
        .map_err(|e| BusError::task("committed", &e))?
    }

    /// Commits the acked prefix of every partition, then leaves the group,
    /// waiting at most `session_timeout_ms` plus 10 s for the broker.
    /// Deliveries not acked by now are delivered again to the next member.
    pub async fn close(mut self) -> Result<(), BusError> {
        self.lag_task.abort();
        let Some(consumer) = self.consumer.take() else {
            return Ok(());
        };
        let done = leave(consumer, self.shared.clone(), true);
        let limit = Duration::from_millis(u64::from(self.config.session_timeout_ms))
            + Duration::from_secs(10);
        match tokio::time::timeout(limit, done).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(BusError::Task {
                what: "close".to_string(),
                message: "the leave thread ended without a result".to_string(),
            }),
            Err(_) => Err(BusError::Task {
                what: "close".to_string(),
                message: format!("leaving group {} took over {limit:?}", self.shared.group),
            }),
        }
    }

    fn consumer(&self) -> Result<&Arc<Inner>, BusError> {
        self.consumer.as_ref().ok_or_else(|| BusError::Closed {
            group: self.shared.group.clone(),
        })
    }
}

impl Drop for KafkaSource {
    /// Leaves the group in the background. Nothing is committed beyond the
    /// acked prefix: the revoke hook commits that while leaving.
    fn drop(&mut self) {
        self.lag_task.abort();
        if let Some(consumer) = self.consumer.take() {
            drop(leave(consumer, self.shared.clone(), false));
        }
    }
}

/// Acks deliveries of a [`KafkaSource`] from any task. Once the source is
/// closed or dropped, acks fail with [`BusError::Closed`]: those deliveries
/// are delivered again to the next member.
#[derive(Clone)]
pub struct Acker {
    consumer: Weak<Inner>,
    shared: Arc<Shared>,
}

impl Acker {
    /// Same as [`KafkaSource::ack`].
    pub fn ack(&self, delivery: &Delivery) -> Result<(), BusError> {
        let consumer = self.consumer.upgrade().ok_or_else(|| BusError::Closed {
            group: self.shared.group.clone(),
        })?;
        ack_on(&consumer, &self.shared, delivery)
    }
}

fn ack_on(consumer: &Inner, shared: &Shared, delivery: &Delivery) -> Result<(), BusError> {
    // Store and resume while holding the tracker, so a concurrent delivery
    // cannot pause after this resume and leave the partition paused.
    let mut tracker = shared.tracker();
    let acked = tracker.ack(&delivery.topic, delivery.partition, delivery.offset);
    if let Some(next) = acked.commit {
        offsets_list(&[(delivery.topic.clone(), delivery.partition, next)])
            .and_then(|list| consumer.store_offsets(&list))
            .map_err(|e| {
                BusError::commit(format!("{}/{}", delivery.topic, delivery.partition), &e)
            })?;
    }
    apply_flow(consumer, &tracker, delivery, acked.flow);
    Ok(())
}

/// Pauses or resumes the delivery's partition as the tracker decided. A
/// failure is logged, not returned: the limit is soft, and the next
/// decision for the partition tries again.
fn apply_flow(consumer: &Inner, tracker: &OffsetTracker, delivery: &Delivery, flow: Flow) {
    let paused = match flow {
        Flow::Continue => return,
        Flow::Pause => true,
        Flow::Resume => false,
    };
    let mut list = TopicPartitionList::with_capacity(1);
    list.add_partition(&delivery.topic, delivery.partition);
    let result = if paused {
        consumer.pause(&list)
    } else {
        consumer.resume(&list)
    };
    let in_flight = tracker.in_flight(&delivery.topic, delivery.partition);
    match result {
        Ok(()) => PartitionFlow {
            topic: &delivery.topic,
            partition: delivery.partition,
            paused,
            in_flight,
        }
        .emit(),
        Err(err) => {
            let err = BusError::Flow {
                action: if paused { "pause" } else { "resume" },
                topic: delivery.topic.clone(),
                partition: delivery.partition,
                message: err.to_string(),
            };
            tracing::warn!(error = %err, in_flight, "kafka partition flow change failed");
        }
    }
}
