//! Settings shared by the Kafka source and sink: where the broker is, how long to wait
//! for it, and extra librdkafka properties; and the one place that turns them into a
//! librdkafka `ClientConfig`.

use std::time::Duration;

use rdkafka::ClientConfig;

/// The environment variable the tests read the broker's address from.
pub const BOOTSTRAP_ENV: &str = "EDDY_KAFKA_BOOTSTRAP";
/// The broker the tests and `scripts/kafka` use when [`BOOTSTRAP_ENV`] is not set.
pub const DEFAULT_BOOTSTRAP: &str = "127.0.0.1:9092";

/// How to reach the broker.
#[derive(Debug, Clone)]
pub struct KafkaClientSettings {
    /// `bootstrap.servers`: `host:port[,host:port...]`.
    pub bootstrap: String,
    /// How long the connector keeps retrying (with backoff, logged) while the broker
    /// is unreachable before it fails with [`KafkaError::Unreachable`](super::KafkaError)
    /// or, for the sink, a delivery timeout. Default 60 s.
    pub broker_timeout: Duration,
    /// Extra librdkafka properties (`key`, `value`), applied last (they override).
    pub properties: Vec<(String, String)>,
}

impl KafkaClientSettings {
    /// Settings for the broker at `bootstrap` with the defaults.
    pub fn new(bootstrap: impl Into<String>) -> Self {
        KafkaClientSettings {
            bootstrap: bootstrap.into(),
            broker_timeout: Duration::from_secs(60),
            properties: Vec::new(),
        }
    }

    /// A librdkafka config with the bootstrap servers, the reconnect backoff and the
    /// extra properties. `client.id` names the eddy operator in broker logs.
    pub(crate) fn client_config(&self, client_id: &str) -> ClientConfig {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &self.bootstrap)
            .set("client.id", client_id)
            .set("reconnect.backoff.ms", "100")
            .set("reconnect.backoff.max.ms", "2000")
            .set("socket.connection.setup.timeout.ms", "10000");
        for (key, value) in &self.properties {
            config.set(key, value);
        }
        config
    }

    pub(crate) fn broker_timeout_ms(&self) -> u64 {
        self.broker_timeout.as_millis().min(u128::from(u32::MAX)) as u64
    }
}

/// The broker tests use: [`BOOTSTRAP_ENV`] or [`DEFAULT_BOOTSTRAP`].
pub fn test_bootstrap() -> String {
    std::env::var(BOOTSTRAP_ENV).unwrap_or_else(|_| DEFAULT_BOOTSTRAP.to_string())
}
