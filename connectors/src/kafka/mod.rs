//! Apache Kafka as a source and a sink, through librdkafka (`rdkafka`).
//!
//! * [`source`] — [`KafkaSource`]: partitions dealt to subtasks, a poll thread per
//!   subtask handing records over through a bounded ring (pause/resume when full),
//!   start positions, read_committed, per-partition watermarks, positions;
//! * [`position`] — [`KafkaSourcePosition`] and the deal of partitions;
//! * [`decode`] — values parsed in a [`Format`](crate::files::Format), bad records;
//! * [`sink`] — [`KafkaSink`]: delivery `none`, `at-least-once`, `exactly-once` (two-phase
//!   commit with crash recovery that neither loses nor duplicates);
//! * [`config`] — the broker's address and timeouts;
//! * [`error`] — [`KafkaError`].
//!
//! See docs/ARCHITECTURE.md, "Connectors: Kafka".

pub mod config;
pub mod decode;
pub mod error;
pub mod position;
pub mod sink;
pub mod source;

pub use config::{KafkaClientSettings, BOOTSTRAP_ENV, DEFAULT_BOOTSTRAP};
pub use decode::{FromKafka, KafkaDeadLetter, KafkaMeta, KafkaRecord};
pub use error::KafkaError;
pub use position::{KafkaSourcePosition, TopicPartition};
pub use sink::{Delivery, KafkaSink, KafkaSinkSettings, KafkaSinkState};
pub use source::{
    KafkaSource, KafkaSourceMetrics, KafkaSourceSettings, KafkaWatermarks, StartPosition, Topics,
};
