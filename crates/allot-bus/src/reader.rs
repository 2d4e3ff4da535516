//! Reading topics outside any consumer group: a compacted topic read in
//! full by every replica (a global table, such as accounts by domain), and
//! the last record of one partition (a changelog restore). Nothing is ever
//! committed: a reader starts where it is told.

use std::collections::HashMap;
use std::time::Duration;

use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::{Offset, TopicPartitionList};

use crate::config::KafkaConfig;
use crate::context::TracingContext;
use crate::error::BusError;
use crate::source::Delivery;

const METADATA_TIMEOUT: Duration = Duration::from_secs(10);

/// A consumer of assigned partitions, read from a chosen offset.
pub struct TopicReader {
    consumer: StreamConsumer<TracingContext>,
    topic: String,
    /// Next offset to read, per partition.
    next: HashMap<i32, i64>,
}

impl TopicReader {
    fn open(config: &KafkaConfig, topic: &str) -> Result<TopicReader, BusError> {
        let mut c = config.base();
        // Its own group id per reader: nothing is committed, and readers
        // of one process (a table, a changelog restore) stay apart.
        static READERS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = READERS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        c.set(
            "group.id",
            format!("{}-reader-{}-{n}", config.group_id, std::process::id()),
        )
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("enable.partition.eof", "false");
        let consumer: StreamConsumer<TracingContext> = c
            .create_with_context(TracingContext)
            .map_err(|e| BusError::Client {
                client: "reader",
                message: e.to_string(),
            })?;
        Ok(TopicReader {
            consumer,
            topic: topic.to_string(),
            next: HashMap::new(),
        })
    }

    /// Every partition of `topic`, from its earliest record.
    pub async fn table(config: &KafkaConfig, topic: &str) -> Result<TopicReader, BusError> {
        let mut r = TopicReader::open(config, topic)?;
        let n = r.partition_count().await?;
        let mut tpl = TopicPartitionList::new();
        for p in 0..n {
            tpl.add_partition_offset(topic, p, Offset::Beginning)
                .map_err(|e| r.fail(&e))?;
            r.next.insert(p, 0);
        }
        r.consumer.assign(&tpl).map_err(|e| r.fail(&e))?;
        Ok(r)
    }

    /// The last record of `partition`, or `None` when it holds none.
    pub async fn last(
        config: &KafkaConfig,
        topic: &str,
        partition: i32,
        wait: Duration,
    ) -> Result<Option<Delivery>, BusError> {
        let r = TopicReader::open(config, topic)?;
        let (_, high) = r.watermarks(partition).await?;
        if high <= 0 {
            return Ok(None);
        }
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(topic, partition, Offset::Offset(high - 1))
            .map_err(|e| r.fail(&e))?;
        r.consumer.assign(&tpl).map_err(|e| r.fail(&e))?;
        match tokio::time::timeout(wait, r.consumer.recv()).await {
            Ok(Ok(m)) => Ok(Some(Delivery::from_message(&m))),
            Ok(Err(e)) => Err(r.fail(&e)),
            Err(_) => Err(BusError::Client {
                client: "reader",
                message: format!(
                    "{topic}[{partition}] holds records up to offset {} but none came within {wait:?}",
                    high - 1
                ),
            }),
        }
    }

    /// The next record within `wait`, or `None`.
    pub async fn poll(&mut self, wait: Duration) -> Result<Option<Delivery>, BusError> {
        match tokio::time::timeout(wait, self.consumer.recv()).await {
            Ok(Ok(m)) => {
                let d = Delivery::from_message(&m);
                self.next.insert(d.partition, d.offset + 1);
                Ok(Some(d))
            }
            Ok(Err(e)) => Err(self.fail(&e)),
            Err(_) => Ok(None),
        }
    }

    /// Whether every partition was read up to its current high watermark.
    pub async fn caught_up(&self) -> Result<bool, BusError> {
        for (&p, &next) in &self.next {
            let (_, high) = self.watermarks(p).await?;
            if next < high {
                return Ok(false);
            }
        }
        Ok(true)
    }

    async fn partition_count(&self) -> Result<i32, BusError> {
        let md = self
            .consumer
            .fetch_metadata(Some(&self.topic), METADATA_TIMEOUT)
            .map_err(|e| self.fail(&e))?;
        let n = md
            .topics()
            .iter()
            .find(|t| t.name() == self.topic)
            .map_or(0, |t| t.partitions().len());
        i32::try_from(n)
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| BusError::Client {
                client: "reader",
                message: format!("topic {} has no partitions (does it exist?)", self.topic),
            })
    }

    async fn watermarks(&self, partition: i32) -> Result<(i64, i64), BusError> {
        self.consumer
            .fetch_watermarks(&self.topic, partition, METADATA_TIMEOUT)
            .map_err(|e| self.fail(&e))
    }

    fn fail(&self, e: &rdkafka::error::KafkaError) -> BusError {
        BusError::Client {
            client: "reader",
            message: format!("{}: {e}", self.topic),
        }
    }
}
