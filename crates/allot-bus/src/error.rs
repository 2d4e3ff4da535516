//! The one error type of this crate, with retry hints.

use rdkafka::error::{KafkaError, RDKafkaErrorCode};

/// Everything a bus call can fail with.
///
/// Each variant says whether calling again later can help
/// ([`BusError::retryable`]): a stage loop retries those and dead-letters or
/// stops on the others, without matching on messages.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    /// The configuration cannot work; every problem found is listed.
    #[error("kafka configuration: {}", problems.join("; "))]
    Config { problems: Vec<String> },

    /// librdkafka refused to create a client from the configuration.
    #[error("kafka {client} could not be created: {message}")]
    Client {
        client: &'static str,
        message: String,
    },

    /// Subscribing the consumer group to its topics failed.
    #[error("kafka subscribe to {topics:?} failed: {message}")]
    Subscribe {
        topics: Vec<String>,
        message: String,
    },

    /// Reading from the consumer failed (broker down, partition error).
    #[error("kafka consume failed: {message}")]
    Consume { message: String, retryable: bool },

    /// Storing or committing offsets failed.
    #[error("kafka offset commit for {what} failed: {message}")]
    Commit {
        what: String,
        message: String,
        retryable: bool,
    },

    /// Pausing or resuming a partition failed.
    #[error("kafka {action} of {topic}/{partition} failed: {message}")]
    Flow {
        action: &'static str,
        topic: String,
        partition: i32,
        message: String,
    },

    /// A record could not be delivered to its topic.
    #[error("kafka produce to {topic} failed: {message}")]
    Produce {
        topic: String,
        message: String,
        retryable: bool,
    },

    /// Creating or describing topics failed.
    #[error("kafka admin operation on {topic} failed: {message}")]
    Admin {
        topic: String,
        message: String,
        retryable: bool,
    },

    /// A broker query (metadata, watermarks, committed offsets) failed.
    #[error("kafka query for {what} failed: {message}")]
    Query {
        what: String,
        message: String,
        retryable: bool,
    },

    /// The source was closed or dropped; acks through an old handle land here.
    #[error("kafka source {group} is closed")]
    Closed { group: String },

    /// A blocking librdkafka call, run off the async threads, did not finish.
    #[error("kafka background task for {what} failed: {message}")]
    Task { what: String, message: String },
}

impl BusError {
    /// Whether the same call may succeed if made again later.
    pub fn retryable(&self) -> bool {
        match self {
            BusError::Consume { retryable, .. }
            | BusError::Commit { retryable, .. }
            | BusError::Produce { retryable, .. }
            | BusError::Admin { retryable, .. }
            | BusError::Query { retryable, .. } => *retryable,
            BusError::Flow { .. } | BusError::Task { .. } => true,
            BusError::Config { .. }
            | BusError::Client { .. }
            | BusError::Subscribe { .. }
            | BusError::Closed { .. } => false,
        }
    }

    pub(crate) fn consume(err: &KafkaError) -> BusError {
        BusError::Consume {
            message: err.to_string(),
            retryable: kafka_error_retryable(err),
        }
    }

    pub(crate) fn commit(what: impl Into<String>, err: &KafkaError) -> BusError {
        BusError::Commit {
            what: what.into(),
            message: err.to_string(),
            retryable: kafka_error_retryable(err),
        }
    }

    pub(crate) fn produce(topic: &str, err: &KafkaError) -> BusError {
        BusError::Produce {
            topic: topic.to_string(),
            message: err.to_string(),
            retryable: kafka_error_retryable(err),
        }
    }

    pub(crate) fn query(what: impl Into<String>, err: &KafkaError) -> BusError {
        BusError::Query {
            what: what.into(),
            message: err.to_string(),
            retryable: kafka_error_retryable(err),
        }
    }

    pub(crate) fn task(what: &str, err: &tokio::task::JoinError) -> BusError {
        BusError::Task {
            what: what.to_string(),
            message: err.to_string(),
        }
    }
}

/// Whether an rdkafka error describes a momentary condition (network, leader
/// election, coordinator moving, full queue) rather than a wrong request.
pub(crate) fn kafka_error_retryable(err: &KafkaError) -> bool {
    match err {
        KafkaError::Canceled
        | KafkaError::ClientConfig(..)
        | KafkaError::ClientCreation(_)
        | KafkaError::AdminOpCreation(_)
        | KafkaError::Nul(_)
        | KafkaError::Subscription(_)
        | KafkaError::MessageConsumptionFatal(_) => false,
        KafkaError::NoMessageReceived | KafkaError::PartitionEOF(_) => true,
        KafkaError::PauseResume(_) | KafkaError::Seek(_) => true,
        other => other.rdkafka_error_code().is_some_and(code_retryable),
    }
}

/// The error codes that clear up by themselves; everything else needs a change
/// of request, configuration or topic before a retry can succeed.
pub(crate) fn code_retryable(code: RDKafkaErrorCode) -> bool {
    use RDKafkaErrorCode as C;
    matches!(
        code,
        C::BrokerTransportFailure
            | C::Resolve
            | C::MessageTimedOut
            | C::AllBrokersDown
            | C::OperationTimedOut
            | C::QueueFull
            | C::TimedOutQueue
            | C::Retry
            | C::LeaderNotAvailable
            | C::NotLeaderForPartition
            | C::RequestTimedOut
            | C::NetworkException
            | C::CoordinatorLoadInProgress
            | C::CoordinatorNotAvailable
            | C::NotCoordinator
            | C::NotEnoughReplicas
            | C::NotEnoughReplicasAfterAppend
            | C::RebalanceInProgress
            | C::KafkaStorageError
            | C::FencedLeaderEpoch
            | C::UnknownLeaderEpoch
            | C::OffsetNotAvailable
            | C::PreferredLeaderNotAvailable
            | C::ThrottlingQuotaExceeded
            | C::UnstableOffsetCommit
            | C::NotController
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_say_whether_to_retry() {
        use RDKafkaErrorCode as C;
        let cases = [
            (C::BrokerTransportFailure, true),
            (C::AllBrokersDown, true),
            (C::QueueFull, true),
            (C::MessageTimedOut, true),
            (C::NotLeaderForPartition, true),
            (C::NotCoordinator, true),
            (C::RebalanceInProgress, true),
            (C::UnknownTopicOrPartition, false),
            (C::MessageSizeTooLarge, false),
            (C::TopicAuthorizationFailed, false),
            (C::InvalidArgument, false),
            (C::IllegalGeneration, false),
            (C::Fatal, false),
        ];
        for (code, want) in cases {
            assert_eq!(code_retryable(code), want, "{code:?}");
        }
    }

    #[test]
    fn errors_say_whether_to_retry() {
        let cases = [
            (
                BusError::produce(
                    "t",
                    &KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull),
                ),
                true,
            ),
            (
                BusError::produce(
                    "t",
                    &KafkaError::MessageProduction(RDKafkaErrorCode::MessageSizeTooLarge),
                ),
                false,
            ),
            (
                BusError::consume(&KafkaError::MessageConsumptionFatal(
                    RDKafkaErrorCode::Fatal,
                )),
                false,
            ),
            (
                BusError::commit(
                    "t/0",
                    &KafkaError::ConsumerCommit(RDKafkaErrorCode::CoordinatorNotAvailable),
                ),
                true,
            ),
            (BusError::Closed { group: "g".into() }, false),
            (
                BusError::Config {
                    problems: vec!["a".into(), "b".into()],
                },
                false,
            ),
        ];
        for (err, want) in cases {
            assert_eq!(err.retryable(), want, "{err}");
        }
    }

    #[test]
    fn config_error_lists_every_problem() {
        let err = BusError::Config {
            problems: vec!["group_id is empty".into(), "max_in_flight is 0".into()],
        };
        assert_eq!(
            err.to_string(),
            "kafka configuration: group_id is empty; max_in_flight is 0"
        );
    }
}
