//! Kafka client configuration: one serde struct for consumers, producers and
//! the admin client, validated before any client is built.

use std::collections::BTreeMap;

use rdkafka::ClientConfig;
use serde::{Deserialize, Serialize};

use crate::error::BusError;

/// Where a consumer group starts on a partition that has no committed offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OffsetReset {
    /// From the oldest record kept: nothing produced before the group existed is skipped.
    #[default]
    Earliest,
    /// From the next record produced.
    Latest,
}

impl OffsetReset {
    fn as_str(self) -> &'static str {
        match self {
            OffsetReset::Earliest => "earliest",
            OffsetReset::Latest => "latest",
        }
    }
}

/// librdkafka properties this crate sets itself because the at-least-once
/// contract depends on them; `properties` may not override them.
const RESERVED: &[&str] = &[
    "bootstrap.servers",
    "group.id",
    "client.id",
    "enable.auto.commit",
    "enable.auto.offset.store",
    "enable.idempotence",
    "acks",
    "transactional.id",
];

/// Connection and consumer-group settings shared by [`crate::KafkaSource`],
/// [`crate::KafkaSink`] and [`crate::ensure_topics_with`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KafkaConfig {
    /// Comma-separated `host:port` list of brokers to bootstrap from.
    pub bootstrap_servers: String,
    /// Consumer group: the members of one stage share it and split its partitions.
    pub group_id: String,
    /// Names this process in broker logs and quotas.
    pub client_id: String,
    /// A member not heard from for this long is dropped from the group and its
    /// partitions move (`session.timeout.ms`; 6000 in tests).
    pub session_timeout_ms: u32,
    /// How often a member tells the coordinator it is alive (`heartbeat.interval.ms`;
    /// must be well below the session timeout).
    pub heartbeat_interval_ms: u32,
    /// A member that does not ask for records for this long leaves the group
    /// (`max.poll.interval.ms`): the bound on one delivery's processing time.
    pub max_poll_interval_ms: u32,
    /// Where to start on a partition without a committed offset.
    pub auto_offset_reset: OffsetReset,
    /// Backpressure: a partition with this many deliveries handed out but not
    /// yet committable is paused until half of them are acked.
    pub max_in_flight_per_partition: usize,
    /// How often acked offsets are committed to the group (`auto.commit.interval.ms`).
    /// Revokes and [`crate::KafkaSource::close`] commit at once regardless.
    pub commit_interval_ms: u32,
    /// How often the source refreshes its per-partition lag.
    pub lag_interval_ms: u32,
    /// Any other librdkafka property (security, fetch sizes, `message.timeout.ms`),
    /// applied as given. Keys this crate owns are rejected by [`KafkaConfig::validate`].
    pub properties: BTreeMap<String, String>,
}

impl Default for KafkaConfig {
    fn default() -> KafkaConfig {
        KafkaConfig {
            bootstrap_servers: "127.0.0.1:9092".to_string(),
            group_id: "allot".to_string(),
            client_id: "allot".to_string(),
            session_timeout_ms: 45_000,
            heartbeat_interval_ms: 3_000,
            max_poll_interval_ms: 300_000,
            auto_offset_reset: OffsetReset::Earliest,
            max_in_flight_per_partition: 1_000,
            commit_interval_ms: 1_000,
            lag_interval_ms: 5_000,
            properties: BTreeMap::new(),
        }
    }
}

impl KafkaConfig {
    /// A default configuration for the given brokers.
    pub fn new(bootstrap_servers: &str, group_id: &str) -> KafkaConfig {
        KafkaConfig {
            bootstrap_servers: bootstrap_servers.to_string(),
            group_id: group_id.to_string(),
            ..KafkaConfig::default()
        }
    }

    /// Checks the settings that would only fail later, at the broker or in the
    /// middle of a rebalance; reports every problem at once.
    pub fn validate(&self) -> Result<(), BusError> {
        let mut problems = Vec::new();
        if self.bootstrap_servers.trim().is_empty() {
            problems.push("bootstrap_servers is empty".to_string());
        }
        if self.group_id.trim().is_empty() {
            problems.push("group_id is empty".to_string());
        }
        if self.heartbeat_interval_ms == 0 || self.heartbeat_interval_ms >= self.session_timeout_ms
        {
            problems.push(format!(
                "heartbeat_interval_ms ({}) must be above 0 and below session_timeout_ms ({})",
                self.heartbeat_interval_ms, self.session_timeout_ms
            ));
        }
        if self.max_poll_interval_ms < self.session_timeout_ms {
            problems.push(format!(
                "max_poll_interval_ms ({}) must be at least session_timeout_ms ({})",
                self.max_poll_interval_ms, self.session_timeout_ms
            ));
        }
        if self.max_in_flight_per_partition == 0 {
            problems.push("max_in_flight_per_partition must be at least 1".to_string());
        }
        if self.commit_interval_ms == 0 {
            problems.push("commit_interval_ms must be at least 1".to_string());
        }
        if self.lag_interval_ms == 0 {
            problems.push("lag_interval_ms must be at least 1".to_string());
        }
        for key in self.properties.keys() {
            if RESERVED.contains(&key.as_str()) {
                problems.push(format!(
                    "properties.{key} is set by allot-bus and cannot be overridden"
                ));
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(BusError::Config { problems })
        }
    }

    /// Settings common to every client: brokers, client id, extra properties.
    pub(crate) fn base(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        for (key, value) in &self.properties {
            config.set(key, value);
        }
        config
            .set("bootstrap.servers", &self.bootstrap_servers)
            .set("client.id", &self.client_id);
        config
    }

    /// Consumer settings. Offsets are stored by the source only for the acked
    /// prefix (`enable.auto.offset.store=false`) and librdkafka commits what was
    /// stored every `commit_interval_ms` (`enable.auto.commit=true`).
    pub(crate) fn consumer(&self) -> ClientConfig {
        let mut config = self.base();
        config
            .set("group.id", &self.group_id)
            .set("session.timeout.ms", self.session_timeout_ms.to_string())
            .set(
                "heartbeat.interval.ms",
                self.heartbeat_interval_ms.to_string(),
            )
            .set(
                "max.poll.interval.ms",
                self.max_poll_interval_ms.to_string(),
            )
            .set("auto.offset.reset", self.auto_offset_reset.as_str())
            .set("enable.auto.commit", "true")
            .set(
                "auto.commit.interval.ms",
                self.commit_interval_ms.to_string(),
            )
            .set("enable.auto.offset.store", "false")
            .set("enable.partition.eof", "false");
        config
    }

    /// Producer settings: idempotent, acknowledged by all in-sync replicas, so a
    /// retried send never duplicates or reorders within a partition.
    pub(crate) fn producer(&self) -> ClientConfig {
        let mut config = self.base();
        config.set("enable.idempotence", "true").set("acks", "all");
        config
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_reports_every_problem() {
        let with = |f: fn(&mut KafkaConfig)| {
            let mut c = KafkaConfig::default();
            f(&mut c);
            c
        };
        let cases: Vec<(KafkaConfig, Vec<&str>)> = vec![
            (KafkaConfig::default(), vec![]),
            (
                with(|c| {
                    c.group_id = " ".into();
                    c.max_in_flight_per_partition = 0;
                }),
                vec!["group_id", "max_in_flight_per_partition"],
            ),
            (
                with(|c| c.heartbeat_interval_ms = c.session_timeout_ms),
                vec!["heartbeat_interval_ms"],
            ),
            (
                with(|c| c.max_poll_interval_ms = 1_000),
                vec!["max_poll_interval_ms"],
            ),
            (
                with(|c| {
                    c.properties
                        .insert("enable.auto.offset.store".into(), "true".into());
                    c.properties.insert("fetch.min.bytes".into(), "1".into());
                }),
                vec!["properties.enable.auto.offset.store"],
            ),
        ];
        for (config, want) in cases {
            let got = match config.validate() {
                Ok(()) => vec![],
                Err(BusError::Config { problems }) => problems,
                Err(other) => panic!("unexpected error {other}"),
            };
            assert_eq!(got.len(), want.len(), "{got:?}");
            for (problem, prefix) in got.iter().zip(&want) {
                assert!(problem.starts_with(prefix), "{problem} vs {prefix}");
            }
        }
    }

    #[test]
    fn reads_partial_json_with_defaults() {
        let config: KafkaConfig = serde_json::from_str(
            r#"{"bootstrap_servers":"b:1","session_timeout_ms":6000,"heartbeat_interval_ms":1000,
                "auto_offset_reset":"latest","properties":{"fetch.wait.max.ms":"50"}}"#,
        )
        .unwrap_or_default();
        assert_eq!(config.bootstrap_servers, "b:1");
        assert_eq!(config.auto_offset_reset, OffsetReset::Latest);
        assert_eq!(config.group_id, "allot");
        assert_eq!(config.consumer().get("fetch.wait.max.ms"), Some("50"));
        assert_eq!(
            config.consumer().get("enable.auto.offset.store"),
            Some("false")
        );
        assert_eq!(config.producer().get("enable.idempotence"), Some("true"));
        assert!(serde_json::from_str::<KafkaConfig>(r#"{"bootstrap":"x"}"#).is_err());
    }
}
