//! allot's Kafka transport, with one at-least-once contract.
//!
//! - [`KafkaSource`] hands out [`Delivery`]s of a consumer group's partitions;
//!   the caller acks each one after its effects are durable, and only the
//!   contiguous acked prefix of a partition is ever committed
//!   ([`OffsetTracker`]). A crash or a rebalance therefore redelivers, and
//!   never skips. Partitions with too many deliveries in flight are paused.
//! - [`KafkaSink`] is an idempotent producer, with [`KafkaSink::dead_letter`]
//!   for records that cannot be processed.
//! - [`ensure_topics`] creates the topics a deployment needs.
//!
//! Kafka transactions are not used: allot's effects land in a CRM outside
//! Kafka, so they are made idempotent instead, and redelivery is normal.

mod admin;
mod config;
mod context;
mod error;
mod lag;
mod leave;
mod reader;
mod sink;
mod source;
mod telemetry;
pub mod tracker;

pub use admin::{ensure, ensure_topics, ensure_topics_with, Topic, BROKER_DEFAULT_REPLICATION};
pub use config::{KafkaConfig, OffsetReset};
pub use context::TracingContext;
pub use error::BusError;
pub use lag::PartitionLag;
pub use reader::TopicReader;
pub use sink::{dlq_headers, KafkaSink};
pub use source::{Acker, Delivery, KafkaSource};
pub use tracker::{Acked, Flow, OffsetTracker};
