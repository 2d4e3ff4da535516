//! The producer side: an idempotent producer, and dead letters that keep the
//! original record and say why and where it came from.

use std::time::Duration;

use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::util::Timeout;

use crate::config::KafkaConfig;
use crate::context::TracingContext;
use crate::error::BusError;
use crate::source::Delivery;
use crate::telemetry::{DeadLettered, ProduceFailed};

/// Header names a dead letter carries besides the original headers.
pub mod dlq_headers {
    /// The error's message.
    pub const ERROR: &str = "allot-error";
    /// The error's kind (a stable, short name a tool can group by).
    pub const ERROR_KIND: &str = "allot-error-kind";
    /// The topic the record was read from.
    pub const SOURCE_TOPIC: &str = "allot-source-topic";
    /// Its partition, in decimal.
    pub const SOURCE_PARTITION: &str = "allot-source-partition";
    /// Its offset, in decimal.
    pub const SOURCE_OFFSET: &str = "allot-source-offset";
}

/// An idempotent producer (`enable.idempotence=true`, `acks=all`): librdkafka
/// retries a failed send without duplicating or reordering it within its
/// partition. Cheap to clone; clones share one producer.
#[derive(Clone)]
pub struct KafkaSink {
    producer: FutureProducer<TracingContext>,
}

impl KafkaSink {
    /// A producer for `config`'s brokers. The consumer-group fields are unused.
    pub fn new(config: &KafkaConfig) -> Result<KafkaSink, BusError> {
        config.validate()?;
        let producer = config
            .producer()
            .create_with_context(TracingContext)
            .map_err(|e| BusError::Client {
                client: "producer",
                message: e.to_string(),
            })?;
        Ok(KafkaSink { producer })
    }

    /// Sends one record and waits until the brokers acknowledged it; returns
    /// its `(partition, offset)`. The partition is chosen from the key. While
    /// librdkafka's queue is full the call waits; a record that cannot be
    /// delivered within `message.timeout.ms` fails with a retryable error.
    pub async fn send(
        &self,
        topic: &str,
        key: &[u8],
        payload: &[u8],
        headers: &[(&str, &[u8])],
    ) -> Result<(i32, i64), BusError> {
        self.send_record(topic, Some(key), Some(payload), headers)
            .await
    }

    /// Like [`KafkaSink::send`], to the given partition: for keys allot
    /// partitions itself (distribution pools, changelog partitions).
    pub async fn send_to(
        &self,
        topic: &str,
        partition: i32,
        key: &[u8],
        payload: &[u8],
        headers: &[(&str, &[u8])],
    ) -> Result<(i32, i64), BusError> {
        self.send_inner(topic, Some(partition), Some(key), Some(payload), headers)
            .await
    }

    /// The number of partitions of `topic`, from the brokers' metadata.
    pub async fn partitions(&self, topic: &str) -> Result<i32, BusError> {
        let producer = self.producer.clone();
        let name = topic.to_string();
        let md = tokio::task::spawn_blocking(move || {
            producer
                .client()
                .fetch_metadata(Some(&name), Duration::from_secs(10))
        })
        .await
        .map_err(|e| BusError::task("metadata", &e))?
        .map_err(|e| BusError::produce(topic, &e))?;
        let n = md
            .topics()
            .iter()
            .find(|t| t.name() == topic)
            .map_or(0, |t| t.partitions().len());
        match i32::try_from(n) {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(BusError::Client {
                client: "producer",
                message: format!("topic {topic} has no partitions (does it exist?)"),
            }),
        }
    }

    /// Sends a delivery that cannot be processed to `dlq_topic`, with its key,
    /// payload and headers unchanged, plus the [`dlq_headers`]: the error, its
    /// kind and the record's source topic, partition and offset. Ack the
    /// delivery only after this returned `Ok`.
    pub async fn dead_letter(
        &self,
        dlq_topic: &str,
        delivery: &Delivery,
        error_kind: &str,
        error: &str,
    ) -> Result<(i32, i64), BusError> {
        let partition = delivery.partition.to_string();
        let offset = delivery.offset.to_string();
        let mut headers: Vec<(&str, &[u8])> = delivery
            .headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_slice()))
            .collect();
        headers.extend([
            (dlq_headers::ERROR, error.as_bytes()),
            (dlq_headers::ERROR_KIND, error_kind.as_bytes()),
            (dlq_headers::SOURCE_TOPIC, delivery.topic.as_bytes()),
            (dlq_headers::SOURCE_PARTITION, partition.as_bytes()),
            (dlq_headers::SOURCE_OFFSET, offset.as_bytes()),
        ]);
        let sent = self
            .send_record(
                dlq_topic,
                delivery.key.as_deref(),
                delivery.payload.as_deref(),
                &headers,
            )
            .await?;
        DeadLettered {
            dlq: dlq_topic,
            topic: &delivery.topic,
            partition: delivery.partition,
            offset: delivery.offset,
            error_kind,
        }
        .emit();
        Ok(sent)
    }

    /// Waits until every record sent so far is acknowledged or failed, for at
    /// most `timeout`.
    pub async fn flush(&self, timeout: Duration) -> Result<(), BusError> {
        let producer = self.producer.clone();
        tokio::task::spawn_blocking(move || producer.flush(timeout))
            .await
            .map_err(|e| BusError::task("flush", &e))?
            .map_err(|e| BusError::produce("(flush)", &e))
    }

    async fn send_record(
        &self,
        topic: &str,
        key: Option<&[u8]>,
        payload: Option<&[u8]>,
        headers: &[(&str, &[u8])],
    ) -> Result<(i32, i64), BusError> {
        self.send_inner(topic, None, key, payload, headers).await
    }

    async fn send_inner(
        &self,
        topic: &str,
        partition: Option<i32>,
        key: Option<&[u8]>,
        payload: Option<&[u8]>,
        headers: &[(&str, &[u8])],
    ) -> Result<(i32, i64), BusError> {
        let mut owned = OwnedHeaders::new_with_capacity(headers.len());
        for (name, value) in headers {
            owned = owned.insert(Header {
                key: name,
                value: Some(*value),
            });
        }
        let mut record: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(topic).headers(owned);
        if let Some(p) = partition {
            record = record.partition(p);
        }
        if let Some(key) = key {
            record = record.key(key);
        }
        if let Some(payload) = payload {
            record = record.payload(payload);
        }
        match self.producer.send(record, Timeout::Never).await {
            Ok(delivered) => Ok((delivered.partition, delivered.offset)),
            Err((err, _)) => {
                let err = BusError::produce(topic, &err);
                ProduceFailed {
                    topic,
                    error: &err,
                    retryable: err.retryable(),
                }
                .emit();
                Err(err)
            }
        }
    }
}
