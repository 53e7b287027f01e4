//! [`KafkaSink`]: records written to a topic with delivery `none`, `at-least-once` or
//! `exactly-once`, and the two-phase-commit hooks checkpoints call
//! ([`KafkaSink::pre_commit`], [`KafkaSink::commit`], [`KafkaSink::recover`]).
//!
//! Exactly-once, in short (docs/ARCHITECTURE.md, "Connectors: Kafka", has the why):
//! each sink subtask has one transactional id, `<job>-<operator>-<topic>-<subtask>`. The records
//! of an epoch (between two checkpoints) go into one transaction *and* are kept by the
//! sink. On the barrier of checkpoint `n`, `pre_commit(n)` flushes, marks the
//! transaction with `n` — `send_offsets_to_transaction` commits offset `n` of partition
//! 0 of the output topic for the sink's own group `<transactional id>-commits` — and
//! returns a [`KafkaSinkState`] holding the epoch's records. `commit(n)`, once the
//! checkpoint is complete, commits the transaction: the records and the mark become
//! visible atomically. Records that arrive between `pre_commit(n)` and `commit(n)` wait
//! in the sink (one producer has one open transaction) and are sent after it.
//!
//! After a crash, `recover(states)` runs with the states of the restored checkpoint:
//! `init_transactions` fences the old producer and aborts whatever it left open; then
//! the group's committed offset says which checkpoint committed last. Epochs of the
//! state after it are written again, in one transaction marked with the state's
//! checkpoint id, and committed. So a crash at any point — before the barrier, after
//! `pre_commit`, after the checkpoint completed but before the commit, during the
//! commit, during recovery itself — ends with each record committed exactly once.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use eddy_engine::clock::{Clock, SystemClock};
use eddy_engine::prelude::*;
use rdkafka::admin::{AdminClient, AdminOptions, ResourceSpecifier};
use rdkafka::client::{ClientContext, DefaultClientContext};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};

use super::config::KafkaClientSettings;
use super::error::KafkaError;
use crate::files::{Format, Record, RecordEncoder};

/// What a sink promises across failures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// No promise: records in flight at a crash may be lost (acks from the leader only;
    /// delivery errors are logged and counted, not fatal).
    None,
    /// Nothing lost, duplicates possible after a restore: the idempotent producer,
    /// flushed on every checkpoint barrier.
    AtLeastOnce,
    /// Each record committed once: transactions committed when checkpoints complete.
    /// Consumers must read with `isolation.level=read_committed`.
    ExactlyOnce,
}

impl std::str::FromStr for Delivery {
    type Err = KafkaError;

    fn from_str(text: &str) -> Result<Self, KafkaError> {
        match text {
            "none" => Ok(Delivery::None),
            "at-least-once" => Ok(Delivery::AtLeastOnce),
            "exactly-once" => Ok(Delivery::ExactlyOnce),
            other => Err(KafkaError::Config(format!(
                "unknown delivery '{other}': expected none, at-least-once or exactly-once"
            ))),
        }
    }
}

/// How a Kafka sink writes.
#[derive(Debug, Clone)]
pub struct KafkaSinkSettings {
    /// The broker.
    pub client: KafkaClientSettings,
    /// The topic written to (it must exist).
    pub topic: String,
    /// The delivery guarantee.
    pub delivery: Delivery,
    /// The format of the values.
    pub format: Format,
    /// `transaction.timeout.ms` (exactly-once): must not exceed the broker's
    /// `transaction.max.timeout.ms`, and must be at least twice the checkpoint
    /// interval (a transaction stays open for an interval plus the checkpoint's
    /// duration). Default 60 s.
    pub transaction_timeout: Duration,
    /// The job's checkpoint interval, checked against the transaction timeout.
    pub checkpoint_interval: Option<Duration>,
    /// The transactional id is `<prefix>-<subtask>`; default prefix
    /// `<job>-<operator>-<topic>`. Two running jobs must not share a prefix: the
    /// newer one fences the older one's producers.
    pub transactional_id_prefix: Option<String>,
    /// Most bytes of records kept for epochs not yet committed (exactly-once); more
    /// fails the sink with [`KafkaError::EpochTooLarge`]. Default 256 MiB.
    pub max_epoch_bytes: usize,
    /// Test hook: `commit(n)` with `n` at least this aborts the process just before it
    /// commits the transaction (after the checkpoint completed).
    pub abort_before_commit: Option<u64>,
    /// The clock (retry deadlines).
    pub clock: Arc<dyn Clock>,
}

impl KafkaSinkSettings {
    /// Settings writing `format` values to `topic` with `delivery`.
    pub fn new(
        client: KafkaClientSettings,
        topic: impl Into<String>,
        delivery: Delivery,
        format: Format,
    ) -> Self {
        KafkaSinkSettings {
            client,
            topic: topic.into(),
            delivery,
            format,
            transaction_timeout: Duration::from_secs(60),
            checkpoint_interval: None,
            transactional_id_prefix: None,
            max_epoch_bytes: 256 << 20,
            abort_before_commit: None,
            clock: Arc::new(SystemClock),
        }
    }
}

/// The records of one epoch: those written after checkpoint `n-1`'s barrier and
/// before checkpoint `n`'s.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Epoch {
    /// The checkpoint that closes it.
    pub checkpoint_id: u64,
    /// The values, in the order written.
    pub records: Vec<Vec<u8>>,
}

/// What a sink subtask's snapshot holds: for exactly-once, the epochs not known to be
/// committed when the checkpoint was taken, so that [`KafkaSink::recover`] can redo
/// them if their transaction did not commit. Empty for the other deliveries.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct KafkaSinkState {
    /// The transactional id of the subtask that took it.
    pub transactional_id: String,
    /// The checkpoint.
    pub checkpoint_id: u64,
    /// Epochs pre-committed but not yet committed, oldest first (the last one closes
    /// at `checkpoint_id`).
    pub epochs: Vec<Epoch>,
}

/// Counters of a sink, shared by its subtasks (clones share them).
#[derive(Debug, Clone, Default)]
pub struct KafkaSinkMetrics {
    inner: Arc<SinkCounters>,
}

#[derive(Debug, Default)]
struct SinkCounters {
    delivered: AtomicU64,
    failed: AtomicU64,
    redone: AtomicU64,
}

impl KafkaSinkMetrics {
    /// Records acknowledged by the broker (in exactly-once: sent in a transaction).
    pub fn delivered(&self) -> u64 {
        self.inner.delivered.load(Ordering::Relaxed)
    }
    /// Records whose delivery failed.
    pub fn failed(&self) -> u64 {
        self.inner.failed.load(Ordering::Relaxed)
    }
    /// Records written again by [`KafkaSink::recover`].
    pub fn redone(&self) -> u64 {
        self.inner.redone.load(Ordering::Relaxed)
    }
}

/// The producer's callbacks: delivery reports and client errors.
struct SinkContext {
    metrics: KafkaSinkMetrics,
    first_error: Arc<Mutex<Option<String>>>,
    fatal_on_failure: bool,
    client_id: String,
}

impl ClientContext for SinkContext {
    fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
        tracing::warn!(client = %self.client_id, %error, reason, "Kafka sink: client error (librdkafka retries)");
    }
}

impl ProducerContext for SinkContext {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(_) => {
                self.metrics.inner.delivered.fetch_add(1, Ordering::Relaxed);
            }
            Err((error, _)) => {
                self.metrics.inner.failed.fetch_add(1, Ordering::Relaxed);
                if self.fatal_on_failure {
                    let mut slot = self.first_error.lock().unwrap_or_else(|e| e.into_inner());
                    slot.get_or_insert_with(|| error.to_string());
                } else {
                    tracing::warn!(client = %self.client_id, %error, "Kafka sink: a record was not delivered (delivery none)");
                }
            }
        }
    }
}

type SinkProducer = ThreadedProducer<SinkContext>;

/// Writes records to a Kafka topic. One per sink subtask.
pub struct KafkaSink {
    settings: KafkaSinkSettings,
    metrics: KafkaSinkMetrics,
    encoder: RecordEncoder,
    scratch: Vec<u8>,
    transactional_id: String,
    producer: Option<SinkProducer>,
    first_error: Arc<Mutex<Option<String>>>,
    /// Exactly-once: the consumer whose group metadata marks transactions and whose
    /// committed offsets say which checkpoint committed last.
    marker: Option<BaseConsumer>,
    /// Whether a transaction is open.
    in_transaction: bool,
    /// Pre-committed epochs waiting for their checkpoint to complete; only the first is
    /// in the open transaction.
    pending: VecDeque<Epoch>,
    /// Whether the first pending epoch was sent (it is in the open transaction).
    front_sent: bool,
    /// Records since the last barrier: sent in the open transaction when nothing is
    /// pending, else held until the pending epochs are committed.
    current: Vec<Vec<u8>>,
    kept_bytes: usize,
    last_checkpoint: u64,
}

impl std::fmt::Debug for KafkaSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaSink")
            .field("topic", &self.settings.topic)
            .field("delivery", &self.settings.delivery)
            .field("transactional_id", &self.transactional_id)
            .finish_non_exhaustive()
    }
}

/// A clone is an unopened sink with the same settings and shared counters.
impl Clone for KafkaSink {
    fn clone(&self) -> Self {
        let mut sink = KafkaSink::new(self.settings.clone());
        sink.metrics = self.metrics.clone();
        sink
    }
}

/// Each request to the broker in the transaction protocol waits this long at most.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

impl KafkaSink {
    /// A sink with `settings` (connects when opened).
    pub fn new(settings: KafkaSinkSettings) -> Self {
        KafkaSink {
            encoder: RecordEncoder::new(settings.format),
            settings,
            metrics: KafkaSinkMetrics::default(),
            scratch: Vec::new(),
            transactional_id: String::new(),
            producer: None,
            first_error: Arc::new(Mutex::new(None)),
            marker: None,
            in_transaction: false,
            pending: VecDeque::new(),
            front_sent: false,
            current: Vec::new(),
            kept_bytes: 0,
            last_checkpoint: 0,
        }
    }

    /// The counters of all subtasks.
    pub fn metrics(&self) -> KafkaSinkMetrics {
        self.metrics.clone()
    }

    /// This subtask's transactional id (exactly-once; set when opened).
    pub fn transactional_id(&self) -> &str {
        &self.transactional_id
    }

    /// Connects: checks the topic, and for exactly-once the transaction timeout, and
    /// initialises transactions (which fences an earlier producer of the same id and
    /// aborts what it left open). Called by [`Sink::open`]; tests driving the sink by
    /// hand call it directly.
    pub fn connect(&mut self, subtask: &SubtaskInfo) -> Result<(), KafkaError> {
        let prefix = self
            .settings
            .transactional_id_prefix
            .clone()
            .unwrap_or_else(|| {
                format!(
                    "{}-{}-{}",
                    subtask.job, subtask.operator, self.settings.topic
                )
            });
        self.transactional_id = format!("{prefix}-{}", subtask.index);
        if self.settings.delivery == Delivery::ExactlyOnce {
            self.check_transaction_timeout()?;
            if self.settings.checkpoint_interval.is_none() {
                tracing::warn!(
                    transactional_id = %self.transactional_id,
                    "exactly-once Kafka sink without checkpoints: records are committed only at the end of input"
                );
            }
        }
        let producer = self.producer_for(&self.transactional_id.clone())?;
        self.check_topic(&producer)?;
        if self.settings.delivery == Delivery::ExactlyOnce {
            self.marker = Some(self.marker_consumer(&self.transactional_id.clone())?);
        }
        self.producer = Some(producer);
        Ok(())
    }

    fn producer_for(&self, transactional_id: &str) -> Result<SinkProducer, KafkaError> {
        let mut config = self
            .settings
            .client
            .client_config(&format!("eddy-{transactional_id}"));
        config
            .set(
                "message.timeout.ms",
                self.settings
                    .client
                    .broker_timeout_ms()
                    .max(1000)
                    .to_string(),
            )
            .set("queue.buffering.max.kbytes", "65536");
        match self.settings.delivery {
            Delivery::None => {
                config.set("acks", "1").set("enable.idempotence", "false");
            }
            Delivery::AtLeastOnce => {
                config.set("enable.idempotence", "true");
            }
            Delivery::ExactlyOnce => {
                config.set("transactional.id", transactional_id).set(
                    "transaction.timeout.ms",
                    self.settings.transaction_timeout.as_millis().to_string(),
                );
            }
        }
        for (key, value) in &self.settings.client.properties {
            config.set(key, value);
        }
        let context = SinkContext {
            metrics: self.metrics.clone(),
            first_error: Arc::clone(&self.first_error),
            fatal_on_failure: self.settings.delivery != Delivery::None,
            client_id: format!("eddy-{transactional_id}"),
        };
        let producer: SinkProducer = config
            .create_with_context(context)
            .map_err(|e| KafkaError::client("cannot create a producer", e))?;
        if self.settings.delivery == Delivery::ExactlyOnce {
            self.retry("initialise transactions", || {
                producer.init_transactions(REQUEST_TIMEOUT)
            })?;
        }
        Ok(producer)
    }

    fn marker_consumer(&self, transactional_id: &str) -> Result<BaseConsumer, KafkaError> {
        let mut config = self
            .settings
            .client
            .client_config(&format!("eddy-{transactional_id}-marker"));
        config
            .set("group.id", format!("{transactional_id}-commits"))
            .set("enable.auto.commit", "false")
            .set("isolation.level", "read_committed");
        config
            .create()
            .map_err(|e| KafkaError::client("cannot create the commit-marker consumer", e))
    }

    fn check_topic(&self, producer: &SinkProducer) -> Result<(), KafkaError> {
        let metadata = self.retry("read the topic's metadata", || {
            producer
                .client()
                .fetch_metadata(Some(&self.settings.topic), REQUEST_TIMEOUT)
        })?;
        let exists = metadata.topics().iter().any(|t| {
            t.name() == self.settings.topic && t.error().is_none() && !t.partitions().is_empty()
        });
        if !exists {
            return Err(KafkaError::Config(format!(
                "Kafka topic '{}' does not exist at {} (create it first, e.g. scripts/kafka create-topic {} PARTITIONS)",
                self.settings.topic, self.settings.client.bootstrap, self.settings.topic
            )));
        }
        Ok(())
    }

    /// Checks `transaction.timeout.ms` against the broker's `transaction.max.timeout.ms`
    /// (read with the admin API) and against the checkpoint interval.
    pub fn check_transaction_timeout(&self) -> Result<(), KafkaError> {
        let timeout_ms = self.settings.transaction_timeout.as_millis() as u64;
        if let Some(interval) = self.settings.checkpoint_interval {
            let interval_ms = interval.as_millis() as u64;
            if timeout_ms < 2 * interval_ms {
                return Err(KafkaError::Config(format!(
                    "exactly-once Kafka sink: transaction.timeout.ms ({timeout_ms} ms) must be at least twice the checkpoint interval ({interval_ms} ms): a transaction stays open for an interval plus the checkpoint's duration; raise the transaction timeout or checkpoint more often"
                )));
            }
        }
        let admin: AdminClient<DefaultClientContext> = self
            .settings
            .client
            .client_config("eddy-admin")
            .create()
            .map_err(|e| KafkaError::client("cannot create an admin client", e))?;
        let broker = self.retry("read the cluster's metadata", || {
            admin
                .inner()
                .fetch_metadata(None, REQUEST_TIMEOUT)
                .map(|m| m.brokers().first().map(|b| b.id()))
        })?;
        let Some(broker) = broker else {
            return Err(KafkaError::Config(
                "the Kafka cluster lists no broker".into(),
            ));
        };
        let options = AdminOptions::new().request_timeout(Some(REQUEST_TIMEOUT));
        let results = futures_lite::future::block_on(
            admin.describe_configs(&[ResourceSpecifier::Broker(broker)], &options),
        )
        .map_err(|e| KafkaError::client("cannot describe the broker's configuration", e))?;
        let max_ms = results
            .iter()
            .filter_map(|r| r.as_ref().ok())
            .filter_map(|r| r.get("transaction.max.timeout.ms"))
            .filter_map(|e| e.value.as_deref())
            .find_map(|v| v.parse::<u64>().ok());
        match max_ms {
            Some(max_ms) if timeout_ms > max_ms => Err(KafkaError::Config(format!(
                "exactly-once Kafka sink: transaction.timeout.ms ({timeout_ms} ms) exceeds the broker's transaction.max.timeout.ms ({max_ms} ms); lower the transaction timeout or raise the broker's limit"
            ))),
            Some(_) => Ok(()),
            None => {
                tracing::warn!("cannot read the broker's transaction.max.timeout.ms; not checked");
                Ok(())
            }
        }
    }

    /// Runs a broker request, retrying retriable errors with backoff (logged) until
    /// the broker timeout.
    fn retry<R>(
        &self,
        what: &str,
        mut request: impl FnMut() -> Result<R, rdkafka::error::KafkaError>,
    ) -> Result<R, KafkaError> {
        let started = self.settings.clock.now();
        let mut backoff = Duration::from_millis(100);
        loop {
            match request() {
                Ok(result) => return Ok(result),
                Err(error) if retriable(&error) => {
                    let waited = self.settings.clock.now().saturating_duration_since(started);
                    if waited >= self.settings.client.broker_timeout {
                        return Err(KafkaError::Unreachable {
                            bootstrap: self.settings.client.bootstrap.clone(),
                            waited_ms: waited.as_millis() as u64,
                            timeout_ms: self.settings.client.broker_timeout_ms(),
                            last_error: format!("{what}: {error}"),
                        });
                    }
                    tracing::warn!(
                        transactional_id = %self.transactional_id,
                        %error,
                        retry_in_ms = backoff.as_millis() as u64,
                        waited_ms = waited.as_millis() as u64,
                        "Kafka sink: cannot {what}, retrying"
                    );
                    std::thread::park_timeout(backoff);
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                }
                Err(error) => return Err(KafkaError::client(format!("cannot {what}"), error)),
            }
        }
    }

    fn producer(&self) -> Result<&SinkProducer, KafkaError> {
        self.producer.as_ref().ok_or_else(|| {
            KafkaError::Thread("the Kafka sink was used before it was opened".into())
        })
    }

    fn check_delivery(&self) -> Result<(), KafkaError> {
        if let Some(reason) = self
            .first_error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            return Err(KafkaError::Delivery {
                topic: self.settings.topic.clone(),
                reason,
            });
        }
        Ok(())
    }

    /// Sends one value, waiting while librdkafka's queue is full.
    fn send(&self, value: &[u8]) -> Result<(), KafkaError> {
        let producer = self.producer()?;
        let mut record = BaseRecord::<(), [u8]>::to(&self.settings.topic).payload(value);
        loop {
            match producer.send(record) {
                Ok(()) => return Ok(()),
                Err((
                    rdkafka::error::KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull),
                    back,
                )) => {
                    record = back;
                    self.check_delivery()?;
                    std::thread::park_timeout(Duration::from_micros(500));
                }
                Err((error, _)) => return Err(KafkaError::client("cannot send a record", error)),
            }
        }
    }

    fn begin(&mut self) -> Result<(), KafkaError> {
        if !self.in_transaction {
            self.producer()?
                .begin_transaction()
                .map_err(|e| KafkaError::client("cannot begin a transaction", e))?;
            self.in_transaction = true;
        }
        Ok(())
    }

    /// Writes one encoded value (the delivery's way).
    fn write_value(&mut self, value: Vec<u8>) -> Result<(), KafkaError> {
        if self.settings.delivery != Delivery::ExactlyOnce {
            return self.send(&value);
        }
        self.kept_bytes += value.len();
        if self.kept_bytes > self.settings.max_epoch_bytes {
            return Err(KafkaError::EpochTooLarge {
                limit_bytes: self.settings.max_epoch_bytes,
            });
        }
        if self.pending.is_empty() {
            self.begin()?;
            self.send(&value)?;
        }
        self.current.push(value);
        Ok(())
    }

    /// Waits until every record sent so far is acknowledged (or failed).
    fn flush(&self) -> Result<(), KafkaError> {
        let producer = self.producer()?;
        self.retry("flush", || producer.flush(REQUEST_TIMEOUT))?;
        self.check_delivery()
    }

    /// Marks the open transaction as closing checkpoint `checkpoint_id`.
    fn mark(
        &self,
        producer: &SinkProducer,
        marker: &BaseConsumer,
        checkpoint_id: u64,
    ) -> Result<(), KafkaError> {
        let metadata = marker.group_metadata().ok_or_else(|| {
            KafkaError::Thread("the marker consumer has no group metadata".into())
        })?;
        let mut offsets = TopicPartitionList::new();
        offsets
            .add_partition_offset(
                &self.settings.topic,
                0,
                Offset::Offset(checkpoint_id as i64),
            )
            .map_err(|e| KafkaError::client("bad checkpoint id", e))?;
        let result = self.retry("mark the transaction with its checkpoint", || {
            producer.send_offsets_to_transaction(&offsets, &metadata, REQUEST_TIMEOUT)
        });
        drop(offsets);
        result
    }

    /// The barrier of checkpoint `checkpoint_id` passed: flushes; for exactly-once
    /// marks the open transaction with the checkpoint and returns the state needed to
    /// commit or redo it after a crash. The engine stores the state in the checkpoint
    /// and calls [`KafkaSink::commit`] once the checkpoint is complete.
    pub fn pre_commit(&mut self, checkpoint_id: u64) -> Result<KafkaSinkState, KafkaError> {
        self.check_delivery()?;
        self.last_checkpoint = self.last_checkpoint.max(checkpoint_id);
        if self.settings.delivery != Delivery::ExactlyOnce {
            self.flush()?;
            return Ok(KafkaSinkState {
                transactional_id: self.transactional_id.clone(),
                checkpoint_id,
                epochs: Vec::new(),
            });
        }
        let records = std::mem::take(&mut self.current);
        if self.pending.is_empty() {
            // The epoch's records are in the open transaction (or there are none: an
            // empty transaction still carries the mark, so the checkpoint commits).
            self.begin()?;
            self.flush()?;
            let producer = self.producer()?;
            let marker = self.marker.as_ref().ok_or_else(|| {
                KafkaError::Thread("the exactly-once sink has no marker consumer".into())
            })?;
            self.mark(producer, marker, checkpoint_id)?;
            self.front_sent = true;
        }
        self.pending.push_back(Epoch {
            checkpoint_id,
            records,
        });
        Ok(self.state(checkpoint_id))
    }

    fn state(&self, checkpoint_id: u64) -> KafkaSinkState {
        KafkaSinkState {
            transactional_id: self.transactional_id.clone(),
            checkpoint_id,
            epochs: self.pending.iter().cloned().collect(),
        }
    }

    /// Checkpoint `checkpoint_id` is complete: commits the transactions of the epochs
    /// up to it, then sends the records that waited. Idempotent (a second call, or one
    /// for an older checkpoint, does nothing).
    pub fn commit(&mut self, checkpoint_id: u64) -> Result<(), KafkaError> {
        if self.settings.delivery != Delivery::ExactlyOnce {
            return Ok(());
        }
        while self
            .pending
            .front()
            .is_some_and(|epoch| epoch.checkpoint_id <= checkpoint_id)
        {
            if !self.front_sent {
                self.send_front()?;
            }
            if self
                .settings
                .abort_before_commit
                .is_some_and(|at| checkpoint_id >= at)
            {
                tracing::error!(
                    checkpoint_id,
                    "test hook: aborting before the transaction commits"
                );
                std::process::abort();
            }
            let producer = self.producer()?;
            self.retry("commit the transaction", || {
                producer.commit_transaction(REQUEST_TIMEOUT)
            })?;
            self.in_transaction = false;
            self.front_sent = false;
            if let Some(epoch) = self.pending.pop_front() {
                self.kept_bytes -= epoch.records.iter().map(Vec::len).sum::<usize>();
                tracing::debug!(
                    checkpoint_id = epoch.checkpoint_id,
                    records = epoch.records.len(),
                    "Kafka transaction committed"
                );
            }
        }
        if !self.pending.is_empty() {
            if !self.front_sent {
                self.send_front()?;
            }
        } else if !self.current.is_empty() && !self.in_transaction {
            // Records that waited for the commit now go into a new transaction.
            self.begin()?;
            for index in 0..self.current.len() {
                self.send(&self.current[index])?;
            }
        }
        Ok(())
    }

    /// Sends the first pending epoch in a new transaction and marks it.
    fn send_front(&mut self) -> Result<(), KafkaError> {
        self.begin()?;
        let Some(epoch) = self.pending.front() else {
            return Ok(());
        };
        for value in &epoch.records {
            self.send(value)?;
        }
        let checkpoint_id = epoch.checkpoint_id;
        self.flush()?;
        let producer = self.producer()?;
        let marker = self.marker.as_ref().ok_or_else(|| {
            KafkaError::Thread("the exactly-once sink has no marker consumer".into())
        })?;
        self.mark(producer, marker, checkpoint_id)?;
        self.front_sent = true;
        Ok(())
    }

    /// The last checkpoint whose transaction committed for `transactional_id`, read
    /// from its commit group (None: none did).
    fn committed_checkpoint(&self, marker: &BaseConsumer) -> Result<Option<u64>, KafkaError> {
        let mut list = TopicPartitionList::new();
        list.add_partition(&self.settings.topic, 0);
        let found = self.retry("read the last committed checkpoint", || {
            marker.committed_offsets(list.clone(), REQUEST_TIMEOUT)
        })?;
        let committed = found.elements().first().and_then(|e| match e.offset() {
            Offset::Offset(o) if o >= 0 => Some(o as u64),
            _ => None,
        });
        drop(found);
        drop(list);
        Ok(committed)
    }

    /// Restores from the sink states of a checkpoint (this subtask's, and after a
    /// change of parallelism those of old subtasks it inherits): for each, fences the
    /// old producer, reads which checkpoint its transactions committed last, and
    /// writes again, in one committed transaction, the epochs that did not commit.
    /// Call after opening and before the first record. Safe to repeat after a crash
    /// during recovery.
    pub fn recover(&mut self, states: &[KafkaSinkState]) -> Result<(), KafkaError> {
        if self.settings.delivery != Delivery::ExactlyOnce {
            return Ok(());
        }
        for state in states {
            self.last_checkpoint = self.last_checkpoint.max(state.checkpoint_id);
            if state.transactional_id == self.transactional_id {
                let producer = self.producer.take().ok_or_else(|| {
                    KafkaError::Thread("recover was called before the sink was opened".into())
                })?;
                let marker = self.marker.take().ok_or_else(|| {
                    KafkaError::Thread("the exactly-once sink has no marker consumer".into())
                })?;
                let result = self.redo(&producer, &marker, state);
                self.producer = Some(producer);
                self.marker = Some(marker);
                result?;
            } else {
                // Another subtask's id (the parallelism changed): fence it, redo, close.
                let producer = self.producer_for(&state.transactional_id)?;
                let marker = self.marker_consumer(&state.transactional_id)?;
                let result = self.redo(&producer, &marker, state);
                drop(marker);
                drop(producer);
                result?;
            }
        }
        Ok(())
    }

    fn redo(
        &self,
        producer: &SinkProducer,
        marker: &BaseConsumer,
        state: &KafkaSinkState,
    ) -> Result<(), KafkaError> {
        let committed = self.committed_checkpoint(marker)?;
        if let Some(committed) = committed.filter(|c| *c > state.checkpoint_id) {
            tracing::warn!(
                transactional_id = %state.transactional_id,
                restored = state.checkpoint_id,
                committed,
                "Kafka sink: transactions of checkpoints after the restored one were committed; records of checkpoints {}..={} may appear twice downstream",
                state.checkpoint_id + 1,
                committed
            );
        }
        let redo: Vec<&Epoch> = state
            .epochs
            .iter()
            .filter(|e| committed.is_none_or(|c| e.checkpoint_id > c))
            .collect();
        if redo.is_empty() {
            tracing::info!(
                transactional_id = %state.transactional_id,
                checkpoint_id = state.checkpoint_id,
                "Kafka sink: the restored checkpoint's transaction had committed; nothing to redo"
            );
            return Ok(());
        }
        let records: usize = redo.iter().map(|e| e.records.len()).sum();
        tracing::warn!(
            transactional_id = %state.transactional_id,
            checkpoint_id = state.checkpoint_id,
            last_committed = ?committed,
            records,
            "Kafka sink: the restored checkpoint's transaction did not commit; writing its records again"
        );
        producer
            .begin_transaction()
            .map_err(|e| KafkaError::client("cannot begin a transaction", e))?;
        for epoch in redo {
            for value in &epoch.records {
                let mut record =
                    BaseRecord::<(), [u8]>::to(&self.settings.topic).payload(value.as_slice());
                loop {
                    match producer.send(record) {
                        Ok(()) => break,
                        Err((
                            rdkafka::error::KafkaError::MessageProduction(
                                RDKafkaErrorCode::QueueFull,
                            ),
                            back,
                        )) => {
                            record = back;
                            std::thread::park_timeout(Duration::from_micros(500));
                        }
                        Err((error, _)) => {
                            return Err(KafkaError::client("cannot send a record", error))
                        }
                    }
                }
            }
        }
        self.retry("flush", || producer.flush(REQUEST_TIMEOUT))?;
        self.check_delivery()?;
        self.mark(producer, marker, state.checkpoint_id)?;
        self.retry("commit the transaction", || {
            producer.commit_transaction(REQUEST_TIMEOUT)
        })?;
        self.metrics
            .inner
            .redone
            .fetch_add(records as u64, Ordering::Relaxed);
        Ok(())
    }

    /// End of input: for exactly-once a last checkpoint (pre-commit and commit);
    /// otherwise a flush.
    pub fn finish_input(&mut self) -> Result<(), KafkaError> {
        if self.settings.delivery == Delivery::ExactlyOnce {
            let last = self.last_checkpoint + 1;
            self.pre_commit(last)?;
            self.commit(last)
        } else {
            self.flush()
        }
    }
}

fn retriable(error: &rdkafka::error::KafkaError) -> bool {
    use rdkafka::error::KafkaError as E;
    match error {
        E::Transaction(e) => e.is_retriable(),
        E::Flush(code) | E::MetadataFetch(code) | E::OffsetFetch(code) => matches!(
            code,
            RDKafkaErrorCode::OperationTimedOut
                | RDKafkaErrorCode::AllBrokersDown
                | RDKafkaErrorCode::BrokerTransportFailure
                | RDKafkaErrorCode::RequestTimedOut
                | RDKafkaErrorCode::NetworkException
                | RDKafkaErrorCode::CoordinatorLoadInProgress
                | RDKafkaErrorCode::CoordinatorNotAvailable
                | RDKafkaErrorCode::NotCoordinator
                | RDKafkaErrorCode::Retry
        ),
        _ => false,
    }
}

impl Sink<Record> for KafkaSink {
    fn open(&mut self, subtask: &SubtaskInfo) -> Result<(), ConnectorError> {
        Ok(self.connect(subtask)?)
    }

    fn write(&mut self, record: Record) -> Result<(), ConnectorError> {
        self.scratch.clear();
        self.encoder.encode(&record, &mut self.scratch)?;
        let mut value = std::mem::take(&mut self.scratch);
        if value.last() == Some(&b'\n') {
            value.pop();
        }
        let result = if self.settings.delivery == Delivery::ExactlyOnce {
            self.write_value(value)
        } else {
            let result = self.send(&value);
            self.scratch = value;
            result
        };
        Ok(result?)
    }

    fn write_batch(&mut self, batch: &mut Batch<Record>) -> Result<(), ConnectorError> {
        self.check_delivery()?;
        for record in batch.drain_values() {
            self.write(record)?;
        }
        Ok(())
    }

    /// End of input: exactly-once commits everything as a last checkpoint (no
    /// checkpoint is taken once a task finished); the others flush.
    fn finish(&mut self) -> Result<(), ConnectorError> {
        Ok(self.finish_input()?)
    }

    /// Flushes; for exactly-once returns the postcard-encoded [`KafkaSinkState`].
    fn pre_commit(&mut self, checkpoint_id: u64) -> Result<Option<Vec<u8>>, ConnectorError> {
        let state = KafkaSink::pre_commit(self, checkpoint_id)?;
        if self.settings.delivery == Delivery::ExactlyOnce {
            Ok(Some(eddy_engine::checkpoint::encode(&state)?))
        } else {
            Ok(None)
        }
    }

    fn commit(&mut self, checkpoint_id: u64) -> Result<(), ConnectorError> {
        Ok(KafkaSink::commit(self, checkpoint_id)?)
    }

    /// Recovers the states of the old subtasks this one takes over
    /// ([`KafkaSink::recover`]). Transactions committed after the restored checkpoint
    /// cannot be withdrawn: they are logged as a possible duplicate window.
    fn restore(
        &mut self,
        checkpoint_id: u64,
        states: &[(u32, &[u8])],
    ) -> Result<(), ConnectorError> {
        let mut decoded = Vec::with_capacity(states.len());
        for (_, bytes) in states {
            decoded.push(eddy_engine::checkpoint::decode::<KafkaSinkState>(bytes)?);
        }
        tracing::info!(
            checkpoint_id,
            states = decoded.len(),
            "Kafka sink: restoring from a checkpoint"
        );
        Ok(self.recover(&decoded)?)
    }
}
