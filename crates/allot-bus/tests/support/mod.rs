//! Helpers of the Kafka integration tests: configs with test timings,
//! producing numbered records, and bounded consumption.

#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::time::Duration;

use allot_bus::{Delivery, KafkaConfig, KafkaSink, KafkaSource};
use allot_tests::{Broker, HEARTBEAT_INTERVAL_MS, SESSION_TIMEOUT_MS};

/// The bound on one test's body.
pub const TEST_TIMEOUT: Duration = Duration::from_secs(60);

/// `(partition, offset)` of produced or received records.
pub type Position = (i32, i64);

/// Runs a test body within [`TEST_TIMEOUT`].
pub async fn bounded<F: Future<Output = ()>>(name: &str, body: F) {
    if tokio::time::timeout(TEST_TIMEOUT, body).await.is_err() {
        panic!("{name} did not finish within {TEST_TIMEOUT:?}");
    }
}

/// A consumer config for `group` with the short timings tests need.
pub fn config(broker: &Broker, group: &str) -> KafkaConfig {
    config_for(broker.bootstrap(), group)
}

/// [`config`] for a bootstrap address (a child process has no `Broker`).
pub fn config_for(bootstrap: &str, group: &str) -> KafkaConfig {
    KafkaConfig {
        session_timeout_ms: SESSION_TIMEOUT_MS,
        heartbeat_interval_ms: HEARTBEAT_INTERVAL_MS,
        max_poll_interval_ms: 10_000,
        commit_interval_ms: 200,
        lag_interval_ms: 500,
        client_id: group.to_string(),
        ..KafkaConfig::new(bootstrap, group)
    }
}

/// Produces `count` records `key-i` / `value-i` and returns where each landed.
pub async fn produce(broker: &Broker, topic: &str, count: usize) -> Vec<Position> {
    let sink = KafkaSink::new(&KafkaConfig::new(broker.bootstrap(), "producer")).unwrap();
    let sends = (0..count).map(|i| {
        let sink = sink.clone();
        let topic = topic.to_string();
        async move {
            let key = format!("key-{i}");
            let value = format!("value-{i}");
            sink.send(
                &topic,
                key.as_bytes(),
                value.as_bytes(),
                &[("n", i.to_string().as_bytes())],
            )
            .await
            .unwrap()
        }
    });
    let positions = futures::future::join_all(sends).await;
    sink.flush(Duration::from_secs(10)).await.unwrap();
    positions
}

/// The next delivery, or `None` when none came within `wait`.
pub async fn next_within(source: &mut KafkaSource, wait: Duration) -> Option<Delivery> {
    match tokio::time::timeout(wait, source.next()).await {
        Ok(delivery) => Some(delivery.unwrap()),
        Err(_) => None,
    }
}

/// Receives until `count` deliveries arrived, failing after `wait`.
pub async fn receive(source: &mut KafkaSource, count: usize, wait: Duration) -> Vec<Delivery> {
    let deadline = tokio::time::Instant::now() + wait;
    let mut out = Vec::with_capacity(count);
    while out.len() < count {
        match tokio::time::timeout_at(deadline, source.next()).await {
            Ok(delivery) => out.push(delivery.unwrap()),
            Err(_) => panic!("received {} of {count} deliveries in {wait:?}", out.len()),
        }
    }
    out
}

/// Waits until the source was assigned `partitions` partitions and has read
/// everything it is going to (lag 0 on each), polling it meanwhile; every
/// delivery that arrives is returned.
pub async fn settle(source: &mut KafkaSource, partitions: usize, wait: Duration) -> Vec<Delivery> {
    let deadline = tokio::time::Instant::now() + wait;
    let mut seen = Vec::new();
    loop {
        if let Some(d) = next_within(source, Duration::from_millis(500)).await {
            seen.push(d);
            continue;
        }
        let lag = source.refresh_lag().await.unwrap();
        if lag.len() == partitions && lag.iter().all(|l| l.lag == 0) {
            return seen;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "source did not settle on {partitions} partitions: {lag:?}"
        );
    }
}

/// Offsets by partition.
pub fn by_partition(positions: impl IntoIterator<Item = Position>) -> BTreeMap<i32, BTreeSet<i64>> {
    let mut out: BTreeMap<i32, BTreeSet<i64>> = BTreeMap::new();
    for (partition, offset) in positions {
        out.entry(partition).or_default().insert(offset);
    }
    out
}

/// Where each delivery came from.
pub fn positions(deliveries: &[Delivery]) -> Vec<Position> {
    deliveries.iter().map(|d| (d.partition, d.offset)).collect()
}
