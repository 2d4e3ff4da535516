//! Test harness for end-to-end tests: a Kafka broker on loopback (or the one
//! named by `ALLOT_TEST_KAFKA_BOOTSTRAP`), unique names so tests can share
//! a broker, and the client timings that make consumer groups form quickly.

pub mod broker;
pub mod names;

pub use broker::{find_tansu, Broker, BOOTSTRAP_ENV};
pub use names::unique;

/// `session.timeout.ms` for test consumers: a dead member's partitions move
/// after this long (librdkafka's 45 s default makes group joins slow).
pub const SESSION_TIMEOUT_MS: u32 = 6_000;

/// `heartbeat.interval.ms` for test consumers.
pub const HEARTBEAT_INTERVAL_MS: u32 = 1_000;
