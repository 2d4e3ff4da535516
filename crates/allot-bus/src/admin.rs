//! Topic setup through the admin API: create what is missing, accept what
//! exists, and wait until the brokers serve it.

use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::types::RDKafkaErrorCode;

use crate::config::KafkaConfig;
use crate::context::TracingContext;
use crate::error::{code_retryable, BusError};

/// How long to wait for created topics to show up in metadata.
const VISIBLE_TIMEOUT: Duration = Duration::from_secs(15);

/// Replication factor that lets the brokers choose (`default.replication.factor`).
pub const BROKER_DEFAULT_REPLICATION: i32 = -1;

/// Creates each `(name, partitions)` topic that does not exist yet, with the
/// brokers' default replication factor, and waits until all are served. A
/// topic that already exists is left as it is, whatever its partition count.
pub async fn ensure_topics(bootstrap: &str, topics: &[(&str, i32)]) -> Result<(), BusError> {
    ensure_topics_with(
        &KafkaConfig::new(bootstrap, "allot-admin"),
        topics,
        BROKER_DEFAULT_REPLICATION,
    )
    .await
}

/// [`ensure_topics`] with the connection settings (security, client id) of
/// `config` and an explicit replication factor.
pub async fn ensure_topics_with(
    config: &KafkaConfig,
    topics: &[(&str, i32)],
    replication: i32,
) -> Result<(), BusError> {
    let topics: Vec<Topic<'_>> = topics
        .iter()
        .map(|&(name, partitions)| Topic {
            name,
            partitions,
            compacted: false,
        })
        .collect();
    ensure(config, &topics, replication).await
}

/// A topic to create when missing.
#[derive(Debug, Clone, Copy)]
pub struct Topic<'a> {
    pub name: &'a str,
    pub partitions: i32,
    /// Created with `cleanup.policy=compact` (a table: the last record per key).
    pub compacted: bool,
}

/// [`ensure_topics_with`], each topic compacted or not.
pub async fn ensure(
    config: &KafkaConfig,
    topics: &[Topic<'_>],
    replication: i32,
) -> Result<(), BusError> {
    let admin: AdminClient<TracingContext> = config
        .base()
        .create_with_context(TracingContext)
        .map_err(|e| BusError::Client {
            client: "admin client",
            message: e.to_string(),
        })?;
    let new_topics: Vec<NewTopic<'_>> = topics
        .iter()
        .map(|t| {
            let n = NewTopic::new(t.name, t.partitions, TopicReplication::Fixed(replication));
            match t.compacted {
                true => n.set("cleanup.policy", "compact"),
                false => n,
            }
        })
        .collect();
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    let results = admin
        .create_topics(&new_topics, &options)
        .await
        .map_err(|e| BusError::Admin {
            topic: names(topics),
            message: e.to_string(),
            retryable: crate::error::kafka_error_retryable(&e),
        })?;
    for result in results {
        match result {
            Ok(name) => tracing::info!(topic = %name, "kafka topic created"),
            Err((name, RDKafkaErrorCode::TopicAlreadyExists)) => {
                tracing::debug!(topic = %name, "kafka topic exists")
            }
            Err((name, code)) => {
                return Err(BusError::Admin {
                    topic: name,
                    message: code.to_string(),
                    retryable: code_retryable(code),
                })
            }
        }
    }
    let wanted: Vec<String> = topics.iter().map(|t| t.name.to_string()).collect();
    tokio::task::spawn_blocking(move || wait_visible(&admin, &wanted))
        .await
        .map_err(|e| BusError::task("topic metadata", &e))?
}

/// Polls metadata until every topic is listed with partitions and no error.
fn wait_visible(admin: &AdminClient<TracingContext>, topics: &[String]) -> Result<(), BusError> {
    let deadline = Instant::now() + VISIBLE_TIMEOUT;
    for topic in topics {
        loop {
            let served = admin
                .inner()
                .fetch_metadata(Some(topic), Duration::from_secs(2))
                .map(|m| {
                    m.topics().iter().any(|t| {
                        t.name() == topic && t.error().is_none() && !t.partitions().is_empty()
                    })
                });
            match served {
                Ok(true) => break,
                Ok(false) if Instant::now() < deadline => {}
                Err(_) if Instant::now() < deadline => {}
                Ok(false) => {
                    return Err(BusError::Admin {
                        topic: topic.clone(),
                        message: "created but not listed in metadata".to_string(),
                        retryable: true,
                    })
                }
                Err(err) => return Err(BusError::query(format!("metadata of {topic}"), &err)),
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    Ok(())
}

fn names(topics: &[Topic<'_>]) -> String {
    topics.iter().map(|t| t.name).collect::<Vec<_>>().join(",")
}
