//! [`KafkaError`]: why a Kafka source or sink could not go on. Each variant says who is
//! at fault (the user's settings, the broker or network, the input, or eddy) and
//! whether a retry (a restart from the last checkpoint) can help.

use eddy_engine::prelude::ConnectorError;
use thiserror::Error;

/// Why a Kafka connector could not go on.
#[derive(Debug, Error)]
pub enum KafkaError {
    /// A setting cannot work (the user's fault: fix it; a retry does not help).
    #[error("{0}")]
    Config(String),
    /// The broker did not answer for longer than the configured timeout (the outside
    /// world: a restart from the last checkpoint helps once the broker is back).
    #[error("Kafka broker at {bootstrap} unreachable for {waited_ms} ms (timeout {timeout_ms} ms): {last_error}")]
    Unreachable {
        /// The bootstrap servers.
        bootstrap: String,
        /// How long the connector waited.
        waited_ms: u64,
        /// The configured timeout.
        timeout_ms: u64,
        /// The last error librdkafka reported.
        last_error: String,
    },
    /// librdkafka reported an error in an operation (the broker's or the network's
    /// fault, unless it names a setting; a restart may help).
    #[error("Kafka: {what}: {source}")]
    Client {
        /// What was being done.
        what: String,
        /// librdkafka's error.
        #[source]
        source: rdkafka::error::KafkaError,
    },
    /// A record was not delivered (after librdkafka's retries up to the timeout).
    #[error("Kafka: a record for '{topic}' was not delivered: {reason}")]
    Delivery {
        /// The topic.
        topic: String,
        /// Why.
        reason: String,
    },
    /// A record does not parse and the policy is `fail` (the input's fault).
    #[error(
        "bad record in Kafka topic '{topic}' partition {partition} at offset {offset}: {reason}"
    )]
    BadRecord {
        /// The topic.
        topic: String,
        /// The partition.
        partition: i32,
        /// The record's offset.
        offset: i64,
        /// Why it does not parse.
        reason: String,
    },
    /// A record cannot be written in the sink's format.
    #[error("cannot write a record to Kafka as {format}: {reason}")]
    Encode {
        /// The format.
        format: &'static str,
        /// Why not.
        reason: String,
    },
    /// An exactly-once epoch holds more bytes than allowed before its checkpoint
    /// completes (the user's settings: shorten the checkpoint interval or raise the
    /// limit).
    #[error("exactly-once Kafka sink: the records since the last checkpoint exceed {limit_bytes} bytes; checkpoint more often or raise max_epoch_bytes")]
    EpochTooLarge {
        /// The limit.
        limit_bytes: usize,
    },
    /// The connector's own thread went away (eddy's fault).
    #[error("Kafka connector thread failed: {0}")]
    Thread(String),
}

impl KafkaError {
    /// A librdkafka error while doing `what`.
    pub fn client(what: impl Into<String>, source: rdkafka::error::KafkaError) -> Self {
        KafkaError::Client {
            what: what.into(),
            source,
        }
    }
}

impl From<KafkaError> for ConnectorError {
    fn from(error: KafkaError) -> Self {
        ConnectorError::new(error.to_string())
    }
}
