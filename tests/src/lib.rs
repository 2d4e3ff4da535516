//! Test harness for end-to-end tests: a Kafka broker on loopback (or the one
//! named by `ALLOT_TEST_KAFKA_BOOTSTRAP`), unique names so tests can share
//! a broker, and the client timings that make consumer groups form quickly.
//!
//! ```no_run
//! let broker = allot_tests::Broker::start(); // tansu on 127.0.0.1, or $ALLOT_TEST_KAFKA_BOOTSTRAP
//! let topic = allot_tests::unique("events");
//! broker.create_topic(&topic, 3);
//! // ... point clients at broker.bootstrap(); the broker is killed on drop.
//! ```
//!
//! A local broker needs `tansu` 0.6.0 (`scripts/ensure-tansu.sh` installs
//! it). It runs with SQLite storage in a temporary directory, logs to
//! `tansu.log` there ([`Broker::log_path`]), and [`Broker::restart`] kills
//! and restarts it on the same database for crash tests.

pub mod broker;
pub mod names;

pub use broker::{find_tansu, Broker, Storage, BOOTSTRAP_ENV};
pub use names::unique;

/// `session.timeout.ms` for test consumers: a dead member's partitions move
/// after this long (librdkafka's 45 s default makes group joins slow).
pub const SESSION_TIMEOUT_MS: u32 = 6_000;

/// `heartbeat.interval.ms` for test consumers.
pub const HEARTBEAT_INTERVAL_MS: u32 = 1_000;
