//! [`KafkaSource`]: topics (or a pattern) read by a parallel source, partitions dealt to
//! the subtasks ([`owned_partitions`]), offsets in its position (replayable).
//!
//! Each subtask runs one poll thread (off the data cores' executors) that owns a
//! librdkafka `BaseConsumer` with the subtask's partitions *assigned* (no group
//! membership, no rebalances: the deal is eddy's, so it is deterministic and a restore
//! knows who owns what). The thread hands records over through a bounded SPSC ring
//! ([`KafkaSourceSettings::ring_capacity`]) and rings the task's doorbell. When the ring
//! is full it pauses its partitions (librdkafka stops fetching; its own queue is
//! bounded by `queued.max.messages.kbytes`) and parks until the task has drained half
//! the ring, then resumes them: nothing is buffered without bound.
//!
//! The task parses each value in the source's [`Format`], handles bad records by the
//! [`BadRecordPolicy`], and keeps the next offset of each partition *as emitted* — the
//! position a checkpoint stores. An end-of-partition marker from the thread carries the
//! consumer's position, so transaction markers and aborted records (skipped by
//! `read_committed`) advance the position too.
//!
//! Group offsets: with a consumer group (`group=`), when a checkpoint completes the
//! task hands the subtask's offsets in it ([`Source::checkpoint_complete`]) to the poll
//! thread, which commits them to the group asynchronously (Flink's
//! `commit.offsets.on.checkpoint`): for monitoring (lag) and for
//! [`StartPosition::Committed`]; eddy itself restores from its checkpoints. Only the
//! newest request waits (a newer one replaces it); a failed commit is logged, and the
//! next checkpoint commits again. A request still waiting when the source closes
//! (stop with savepoint) is committed before the consumer goes, waiting at most
//! [`FINAL_COMMIT_WAIT`].
//!
//! A broker that goes away: the thread keeps polling (librdkafka reconnects with
//! backoff), probes the broker with a metadata request at a growing interval (200 ms
//! to 5 s), logs each retry, and after [`KafkaClientSettings::broker_timeout`] without
//! contact fails the source with [`KafkaError::Unreachable`].

use std::marker::PhantomData;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use eddy_engine::clock::{Clock, SystemClock};
use eddy_engine::prelude::*;
use eddy_engine::runtime::doorbell::Doorbell;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message as _;
use rdkafka::{Offset, TopicPartitionList};

use super::config::KafkaClientSettings;
use super::decode::{parse_value, FromKafka, KafkaDeadLetter, KafkaMeta};
use super::error::KafkaError;
use super::position::{owned_partitions, KafkaSourcePosition, TopicPartition};
use crate::files::{BadRecordPolicy, Format, Record};

/// Which topics a source reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Topics {
    /// These topics.
    Names(Vec<String>),
    /// Every topic whose name matches a glob (`*` any run of characters, `?` one),
    /// listed when the source opens (topics created later are not picked up).
    Pattern(String),
}

/// Where a source starts in partitions its position does not name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartPosition {
    /// The oldest record kept.
    Earliest,
    /// After the last record at start-up.
    Latest,
    /// The consumer group's committed offsets (earliest where the group has none).
    Committed,
    /// The first record whose timestamp is at or after these ms since the epoch (the
    /// end of the partition if there is none).
    Timestamp(i64),
}

/// Per-partition event-time watermarks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KafkaWatermarks {
    /// How far a record may trail the largest timestamp of its partition.
    pub max_out_of_orderness: Duration,
    /// A partition without records for this long (processing time) no longer holds
    /// the watermark back; it does again with its next record.
    pub idleness: Option<Duration>,
}

/// How a Kafka source reads.
#[derive(Debug, Clone)]
pub struct KafkaSourceSettings {
    /// The broker.
    pub client: KafkaClientSettings,
    /// The topics.
    pub topics: Topics,
    /// The consumer group: for [`StartPosition::Committed`], and the group the
    /// offsets of each completed checkpoint are committed to (for monitoring; see the
    /// module docs). Partitions are assigned by eddy, never by the group.
    pub group: Option<String>,
    /// Where to start in partitions the position does not name.
    pub start: StartPosition,
    /// `isolation.level=read_committed` (default): records of open or aborted
    /// transactions are not read.
    pub read_committed: bool,
    /// Read up to the end offsets found at start-up, then finish (bounded).
    pub bounded: bool,
    /// The format of the values.
    pub format: Format,
    /// What to do with values that do not parse.
    pub on_bad_record: BadRecordPolicy,
    /// Records in flight from the poll thread to the task (the ring's capacity).
    pub ring_capacity: usize,
    /// How long the ring may stay full before the thread pauses its partitions
    /// (default 50 ms). Shorter stalls only park the thread: librdkafka's prefetch
    /// queue is bounded too, and pausing drops what it prefetched (it is fetched again
    /// on resume), which would cost throughput on every brief hiccup.
    pub pause_after: Duration,
    /// Per-partition watermarks from the records' timestamps, if wanted.
    pub watermarks: Option<KafkaWatermarks>,
    /// The clock (idleness, retry backoff).
    pub clock: Arc<dyn Clock>,
}

impl KafkaSourceSettings {
    /// Settings reading `topics` from the broker in `client`, values in `format`, from
    /// the earliest offsets, read_committed, unbounded, failing on bad records.
    pub fn new(client: KafkaClientSettings, topics: Topics, format: Format) -> Self {
        KafkaSourceSettings {
            client,
            topics,
            group: None,
            start: StartPosition::Earliest,
            read_committed: true,
            bounded: false,
            format,
            on_bad_record: BadRecordPolicy::Fail,
            ring_capacity: 8192,
            pause_after: Duration::from_millis(50),
            watermarks: None,
            clock: Arc::new(SystemClock),
        }
    }
}

/// Counters of a Kafka source, shared by its subtasks (clones share them).
#[derive(Debug, Clone, Default)]
pub struct KafkaSourceMetrics {
    inner: Arc<SourceCounters>,
}

#[derive(Debug, Default)]
struct SourceCounters {
    records_out: AtomicU64,
    bad_records: AtomicU64,
    pauses: AtomicU64,
}

impl KafkaSourceMetrics {
    /// Records emitted.
    pub fn records_out(&self) -> u64 {
        self.inner.records_out.load(Ordering::Relaxed)
    }
    /// Values that did not parse.
    pub fn bad_records(&self) -> u64 {
        self.inner.bad_records.load(Ordering::Relaxed)
    }
    /// Times a poll thread paused its partitions because its ring was full.
    pub fn pauses(&self) -> u64 {
        self.inner.pauses.load(Ordering::Relaxed)
    }
}

/// The consumer's callbacks: client errors go to the log (librdkafka retries them),
/// end-of-partition notices are not errors; answers to offset commits are logged and
/// counted.
struct SourceContext {
    client_id: String,
    shared: Arc<Shared>,
}

impl rdkafka::client::ClientContext for SourceContext {
    fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
        if !matches!(error, rdkafka::error::KafkaError::PartitionEOF(_))
            && error.rdkafka_error_code() != Some(rdkafka::types::RDKafkaErrorCode::PartitionEOF)
        {
            tracing::warn!(client = %self.client_id, %error, reason, "Kafka source: client error (librdkafka retries)");
        }
    }
}

impl rdkafka::consumer::ConsumerContext for SourceContext {
    fn commit_callback(
        &self,
        result: rdkafka::error::KafkaResult<()>,
        offsets: &TopicPartitionList,
    ) {
        match result {
            Ok(()) => {
                self.shared.commits.fetch_add(1, Ordering::Release);
                tracing::debug!(client = %self.client_id, partitions = offsets.count(), "Kafka source: group offsets committed");
            }
            Err(error) => {
                self.shared.commit_failures.fetch_add(1, Ordering::Release);
                tracing::warn!(client = %self.client_id, %error, "Kafka source: cannot commit the group's offsets (monitoring only; the next checkpoint commits again)");
            }
        }
    }
}

type SourceConsumer = BaseConsumer<SourceContext>;

/// What the poll thread hands the task.
enum Item {
    /// The partitions were assigned, with the offsets they start at and (bounded)
    /// end at.
    Assigned(Vec<(TopicPartition, i64, Option<i64>)>),
    /// A record of partition `partition` (an index into the assignment).
    Record {
        partition: u32,
        offset: i64,
        timestamp: Option<i64>,
        key: Option<Vec<u8>>,
        value: Option<Vec<u8>>,
    },
    /// The consumer reached the end of what the broker has; `next` offsets by
    /// partition index (every record before them was handed over already).
    Caught(Vec<(u32, i64)>),
}

/// State the task and its poll thread share.
#[derive(Debug, Default)]
struct Shared {
    stop: AtomicBool,
    paused: AtomicBool,
    error: Mutex<Option<KafkaError>>,
    /// Offsets of a completed checkpoint for the poll thread to commit to the group
    /// (the newest request replaces an older one); `commit_requested` says there is one
    /// without taking the lock (the thread looks once per poll).
    commit: Mutex<Option<KafkaSourcePosition>>,
    commit_requested: AtomicBool,
    /// Commits the broker acknowledged, and refused.
    commits: AtomicU64,
    commit_failures: AtomicU64,
}

impl Shared {
    fn fail(&self, error: KafkaError) {
        let mut slot = self.error.lock().unwrap_or_else(|e| e.into_inner());
        slot.get_or_insert(error);
    }

    /// Asks the poll thread to commit `position` to the group.
    fn request_commit(&self, position: KafkaSourcePosition) {
        *self.commit.lock().unwrap_or_else(|e| e.into_inner()) = Some(position);
        self.commit_requested.store(true, Ordering::Release);
    }

    /// The commit request waiting, if any.
    fn take_commit(&self) -> Option<KafkaSourcePosition> {
        if !self.commit_requested.swap(false, Ordering::AcqRel) {
            return None;
        }
        self.commit.lock().unwrap_or_else(|e| e.into_inner()).take()
    }
}

/// How long a closing source waits for the broker to answer its last offset commit.
pub const FINAL_COMMIT_WAIT: Duration = Duration::from_secs(2);

/// One assigned partition, as the task sees it.
struct Partition {
    tp: TopicPartition,
    topic: Arc<str>,
    next: i64,
    end: Option<i64>,
    max_timestamp: Timestamp,
    last_record: Instant,
}

struct Running {
    /// In a mutex only to make the source `Sync` (the engine's bound); reached with
    /// `get_mut`, never locked.
    ring: Mutex<rtrb::Consumer<Item>>,
    capacity: usize,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
    /// Empty until the thread has assigned the partitions.
    partitions: Vec<Partition>,
    assigned: bool,
    watermark: Timestamp,
}

/// Reads Kafka topics (unbounded, or bounded by the end offsets at start-up); emits
/// `T` (the parsed value [`Record`], or a [`KafkaRecord`](super::KafkaRecord) with its
/// metadata), timestamped with the Kafka timestamp.
pub struct KafkaSource<T = Record> {
    settings: KafkaSourceSettings,
    metrics: KafkaSourceMetrics,
    resume: Option<KafkaSourcePosition>,
    doorbell: Option<Arc<Doorbell>>,
    running: Option<Running>,
    subtask: String,
    client_id: String,
    _emits: PhantomData<fn() -> T>,
}

impl<T> std::fmt::Debug for KafkaSource<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaSource")
            .field("topics", &self.settings.topics)
            .field("subtask", &self.subtask)
            .finish_non_exhaustive()
    }
}

/// A clone is an unopened source with the same settings and shared counters.
impl<T> Clone for KafkaSource<T> {
    fn clone(&self) -> Self {
        KafkaSource {
            settings: self.settings.clone(),
            metrics: self.metrics.clone(),
            resume: self.resume.clone(),
            doorbell: None,
            running: None,
            subtask: String::new(),
            client_id: String::new(),
            _emits: PhantomData,
        }
    }
}

impl<T: FromKafka> KafkaSource<T> {
    /// A source with `settings`.
    pub fn new(settings: KafkaSourceSettings) -> Self {
        KafkaSource {
            settings,
            metrics: KafkaSourceMetrics::default(),
            resume: None,
            doorbell: None,
            running: None,
            subtask: String::new(),
            client_id: String::new(),
            _emits: PhantomData,
        }
    }

    /// Starts from `position` — the merged positions of all subtasks of the source
    /// being restored, whatever its parallelism was: each subtask takes the offsets of
    /// the partitions it now owns; partitions it does not name start at
    /// [`KafkaSourceSettings::start`].
    pub fn resume_from(mut self, position: KafkaSourcePosition) -> Self {
        self.resume = Some(position);
        self
    }

    /// The counters of all subtasks.
    pub fn metrics(&self) -> KafkaSourceMetrics {
        self.metrics.clone()
    }

    /// The next offset of each partition this subtask owns, as far as it has emitted
    /// records (what a checkpoint stores). Before the partitions are assigned it is the
    /// position it resumes from.
    pub fn position(&self) -> KafkaSourcePosition {
        match &self.running {
            Some(running) if running.assigned => {
                let mut position = KafkaSourcePosition::default();
                for partition in &running.partitions {
                    position.set(partition.tp.clone(), partition.next);
                }
                position
            }
            _ => self.resume.clone().unwrap_or_default(),
        }
    }

    /// Commits `position` as the consumer group's offsets (for monitoring, e.g. lag;
    /// eddy itself restores from its checkpoints). Call it when the checkpoint holding
    /// `position` is complete. Blocks until the broker answers (a short request).
    pub fn commit_offsets(&self, position: &KafkaSourcePosition) -> Result<(), KafkaError> {
        let group = self.settings.group.as_deref().ok_or_else(|| {
            KafkaError::Config("committing offsets needs a consumer group (group=...)".into())
        })?;
        if position.is_empty() {
            return Ok(());
        }
        let consumer: BaseConsumer = self
            .settings
            .client
            .client_config(&format!("{}-commit", self.client_id))
            .set("group.id", group)
            .set("enable.auto.commit", "false")
            .create()
            .map_err(|e| KafkaError::client("cannot create a consumer", e))?;
        let mut list = TopicPartitionList::new();
        for (tp, offset) in position.iter() {
            list.add_partition_offset(&tp.topic, tp.partition, Offset::Offset(offset))
                .map_err(|e| KafkaError::client("bad offset", e))?;
        }
        let result = consumer
            .commit(&list, rdkafka::consumer::CommitMode::Sync)
            .map_err(|e| {
                KafkaError::client(format!("cannot commit offsets of group '{group}'"), e)
            });
        drop(list);
        drop(consumer);
        result
    }

    fn start(&mut self, subtask: &SubtaskInfo) -> Result<(), KafkaError> {
        if self.settings.ring_capacity == 0 {
            return Err(KafkaError::Config(
                "ring_capacity must be at least 1".into(),
            ));
        }
        self.subtask = subtask.to_string();
        self.client_id = format!(
            "eddy-{}-{}-{}",
            subtask.job, subtask.operator, subtask.index
        );
        let (producer, ring) = rtrb::RingBuffer::new(self.settings.ring_capacity);
        let shared = Arc::new(Shared::default());
        let poller = Poller {
            settings: self.settings.clone(),
            client_id: self.client_id.clone(),
            index: subtask.index,
            parallelism: subtask.parallelism.max(1),
            resume: self.resume.clone().unwrap_or_default(),
            ring: producer,
            shared: Arc::clone(&shared),
            doorbell: self.doorbell.clone(),
            metrics: self.metrics.clone(),
        };
        let thread = std::thread::Builder::new()
            .name(format!("eddy-kafka-src-{}", subtask.index))
            .spawn(move || poller.run())
            .map_err(|e| KafkaError::Thread(e.to_string()))?;
        self.running = Some(Running {
            ring: Mutex::new(ring),
            capacity: self.settings.ring_capacity,
            shared,
            thread: Some(thread),
            partitions: Vec::new(),
            assigned: false,
            watermark: Timestamp::MIN,
        });
        Ok(())
    }

    fn poll(&mut self, out: &mut SourceOutput<'_, T>) -> Result<SourceStatus, KafkaError> {
        let now = self.settings.clock.now();
        let Some(running) = self.running.as_mut() else {
            return Err(KafkaError::Thread(
                "the Kafka source was polled before it was opened".into(),
            ));
        };
        if let Some(error) = running
            .shared
            .error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            return Err(error);
        }
        let mut emitted = 0u64;
        let mut result = Ok(());
        let ring = running.ring.get_mut().unwrap_or_else(|e| e.into_inner());
        while out.remaining() > 0 {
            let Ok(item) = ring.pop() else { break };
            match item {
                Item::Assigned(partitions) => {
                    running.partitions = partitions
                        .into_iter()
                        .map(|(tp, next, end)| Partition {
                            topic: Arc::from(tp.topic.as_str()),
                            tp,
                            next,
                            end,
                            max_timestamp: NO_TIMESTAMP,
                            last_record: now,
                        })
                        .collect();
                    running.assigned = true;
                    tracing::info!(
                        subtask = %self.subtask,
                        partitions = running.partitions.len(),
                        "Kafka source assigned"
                    );
                }
                Item::Caught(nexts) => {
                    for (index, next) in nexts {
                        if let Some(partition) = running.partitions.get_mut(index as usize) {
                            partition.next = partition.next.max(next);
                        }
                    }
                }
                Item::Record {
                    partition,
                    offset,
                    timestamp,
                    key,
                    value,
                } => {
                    let Some(state) = running.partitions.get_mut(partition as usize) else {
                        continue;
                    };
                    state.next = offset + 1;
                    state.last_record = now;
                    if let Some(ts) = timestamp {
                        state.max_timestamp = state.max_timestamp.max(ts);
                    }
                    match parse_value(self.settings.format, value) {
                        Ok(record) => {
                            let meta = KafkaMeta {
                                key,
                                topic: &state.topic,
                                partition: state.tp.partition,
                                offset,
                                timestamp,
                            };
                            let record = T::from_kafka(record, meta);
                            match timestamp {
                                Some(ts) => out.emit_at(record, ts),
                                None => out.emit(record),
                            }
                            emitted += 1;
                        }
                        Err(reason) => {
                            self.metrics
                                .inner
                                .bad_records
                                .fetch_add(1, Ordering::Relaxed);
                            if let Err(error) = bad_record(
                                &self.settings.on_bad_record,
                                &state.tp,
                                offset,
                                reason,
                                None,
                            ) {
                                result = Err(error);
                                break;
                            }
                        }
                    }
                }
            }
        }
        self.metrics
            .inner
            .records_out
            .fetch_add(emitted, Ordering::Relaxed);
        result?;
        // Wake the thread if it paused and the ring is at most half full again.
        if running.shared.paused.load(Ordering::Acquire) && ring.slots() * 2 >= running.capacity {
            if let Some(thread) = &running.thread {
                thread.thread().unpark();
            }
        }
        if let Some(watermarks) = self.settings.watermarks {
            let watermark = watermark_of(&running.partitions, watermarks, now);
            if let Some(watermark) = watermark.filter(|w| *w > running.watermark) {
                running.watermark = watermark;
                out.emit_watermark(watermark);
            }
        }
        if running.assigned
            && self.settings.bounded
            && ring.is_empty()
            && running
                .partitions
                .iter()
                .all(|p| p.end.is_some_and(|end| p.next >= end))
        {
            return Ok(SourceStatus::Finished);
        }
        Ok(if ring.is_empty() {
            // The doorbell rings when the thread hands something over; the timeout
            // re-checks idleness of watermarks.
            SourceStatus::Idle
        } else {
            SourceStatus::Ready
        })
    }

    fn stop(&mut self) {
        if let Some(mut running) = self.running.take() {
            running.shared.stop.store(true, Ordering::Release);
            if let Some(thread) = running.thread.take() {
                thread.thread().unpark();
                if thread.join().is_err() {
                    tracing::error!(subtask = %self.subtask, "the Kafka poll thread panicked");
                }
            }
            // Keep the position readable after close.
            let mut position = KafkaSourcePosition::default();
            for partition in &running.partitions {
                position.set(partition.tp.clone(), partition.next);
            }
            if running.assigned {
                self.resume = Some(position);
            }
        }
    }
}

/// The smallest per-partition watermark over partitions that are not idle, if any.
fn watermark_of(
    partitions: &[Partition],
    settings: KafkaWatermarks,
    now: Instant,
) -> Option<Timestamp> {
    let bound = settings
        .max_out_of_orderness
        .as_millis()
        .min(i64::MAX as u128) as i64;
    partitions
        .iter()
        .filter(|p| {
            settings
                .idleness
                .is_none_or(|idle| now.saturating_duration_since(p.last_record) < idle)
        })
        .map(|p| {
            if p.max_timestamp == NO_TIMESTAMP {
                Timestamp::MIN
            } else {
                p.max_timestamp.saturating_sub(bound).saturating_sub(1)
            }
        })
        .min()
}

/// Applies the bad-record policy to one value.
fn bad_record(
    policy: &BadRecordPolicy,
    tp: &TopicPartition,
    offset: i64,
    reason: String,
    raw: Option<String>,
) -> Result<(), KafkaError> {
    match policy {
        BadRecordPolicy::Fail => Err(KafkaError::BadRecord {
            topic: tp.topic.clone(),
            partition: tp.partition,
            offset,
            reason,
        }),
        BadRecordPolicy::SkipAndCount => Ok(()),
        BadRecordPolicy::DeadLetter(file) => file
            .write_json(&KafkaDeadLetter {
                reason,
                topic: tp.topic.clone(),
                partition: tp.partition,
                offset,
                raw,
            })
            .map_err(|e| KafkaError::Config(e.to_string())),
    }
}

impl<T: FromKafka> Source<T> for KafkaSource<T> {
    fn set_doorbell(&mut self, doorbell: Arc<Doorbell>) {
        self.doorbell = Some(doorbell);
    }

    fn open(&mut self, subtask: &SubtaskInfo) -> Result<(), ConnectorError> {
        Ok(self.start(subtask)?)
    }

    fn poll_next(&mut self, out: &mut SourceOutput<'_, T>) -> Result<SourceStatus, ConnectorError> {
        Ok(self.poll(out)?)
    }

    /// The next offset of each partition this subtask owns (postcard-encoded
    /// [`KafkaSourcePosition`]).
    fn snapshot_position(&mut self) -> Result<Option<Vec<u8>>, ConnectorError> {
        Ok(Some(eddy_engine::checkpoint::encode(&self.position())?))
    }

    /// Commits the subtask's offsets in checkpoint `checkpoint_id` to the consumer
    /// group, if the source has one: hands them to the poll thread (never blocks).
    fn checkpoint_complete(
        &mut self,
        checkpoint_id: u64,
        position: &[u8],
    ) -> Result<(), ConnectorError> {
        if self.settings.group.is_none() {
            return Ok(());
        }
        let Some(running) = &self.running else {
            return Ok(());
        };
        let position: KafkaSourcePosition = eddy_engine::checkpoint::decode(position)?;
        tracing::debug!(subtask = %self.subtask, checkpoint_id, partitions = position.len(), "Kafka source: committing the group's offsets");
        running.shared.request_commit(position);
        if let Some(thread) = &running.thread {
            thread.thread().unpark();
        }
        Ok(())
    }

    /// Merges the positions of all old subtasks, whatever the old parallelism: the
    /// partitions are dealt again when the source opens, and each subtask takes the
    /// offsets of its own.
    fn restore_position(
        &mut self,
        _subtask: &SubtaskInfo,
        positions: &[(u32, &[u8])],
        _old_parallelism: u32,
    ) -> Result<(), ConnectorError> {
        let mut decoded = Vec::with_capacity(positions.len());
        for (_, bytes) in positions {
            decoded.push(eddy_engine::checkpoint::decode::<KafkaSourcePosition>(
                bytes,
            )?);
        }
        self.resume = Some(KafkaSourcePosition::merge(decoded));
        Ok(())
    }

    fn close(&mut self) -> Result<(), ConnectorError> {
        self.stop();
        tracing::info!(
            subtask = %self.subtask,
            records_all_subtasks = self.metrics.records_out(),
            bad_records_all_subtasks = self.metrics.bad_records(),
            "Kafka source closed"
        );
        Ok(())
    }
}

impl<T> Drop for KafkaSource<T> {
    fn drop(&mut self) {
        if let Some(running) = &mut self.running {
            running.shared.stop.store(true, Ordering::Release);
            if let Some(thread) = running.thread.take() {
                thread.thread().unpark();
                let _ = thread.join();
            }
        }
    }
}

/// Does `name` match the glob `pattern` (`*`, `?`)?
pub fn glob_matches(pattern: &str, name: &str) -> bool {
    let (p, n): (Vec<char>, Vec<char>) = (pattern.chars().collect(), name.chars().collect());
    let (mut pi, mut ni, mut star, mut mark) = (0, 0, None, 0);
    while ni < n.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == n[ni]) {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ni;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ni = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// Assigned partitions by topic and partition number → their index in the
/// assignment (looked up per record without allocating).
struct PartitionIndex {
    by_partition: std::collections::HashMap<i32, Vec<(String, u32)>>,
}

impl PartitionIndex {
    fn new(assignment: &TopicPartitionList) -> Self {
        let mut by_partition: std::collections::HashMap<i32, Vec<(String, u32)>> =
            std::collections::HashMap::new();
        for (index, element) in assignment.elements().iter().enumerate() {
            by_partition
                .entry(element.partition())
                .or_default()
                .push((element.topic().to_string(), index as u32));
        }
        PartitionIndex { by_partition }
    }

    fn get(&self, topic: &str, partition: i32) -> Option<u32> {
        self.by_partition
            .get(&partition)?
            .iter()
            .find(|(t, _)| t == topic)
            .map(|(_, index)| *index)
    }
}

/// The poll thread: owns the consumer.
struct Poller {
    settings: KafkaSourceSettings,
    client_id: String,
    index: usize,
    parallelism: usize,
    resume: KafkaSourcePosition,
    ring: rtrb::Producer<Item>,
    shared: Arc<Shared>,
    doorbell: Option<Arc<Doorbell>>,
    metrics: KafkaSourceMetrics,
}

/// Metadata and offset requests at setup wait this long at most per try.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one `poll` of the consumer waits.
const POLL_TIMEOUT: Duration = Duration::from_millis(100);

impl Poller {
    fn ring_doorbell(&self) {
        if let Some(doorbell) = &self.doorbell {
            doorbell.ring();
        }
    }

    fn run(mut self) {
        let consumer = match self.setup_with_retries() {
            Ok(consumer) => consumer,
            Err(error) => {
                self.shared.fail(error);
                self.ring_doorbell();
                return;
            }
        };
        self.poll_loop(&consumer.0, &consumer.1);
        self.final_commit(&consumer.0, &consumer.1);
        // The assignment list is dropped before the consumer (a consumer dropped while
        // a list it returned is alive hangs).
        let (consumer, assignment) = consumer;
        drop(assignment);
        drop(consumer);
    }

    fn consumer(&self) -> Result<SourceConsumer, KafkaError> {
        let mut config = self.settings.client.client_config(&self.client_id);
        config
            .set(
                "group.id",
                self.settings
                    .group
                    .clone()
                    .unwrap_or_else(|| format!("{}-unused", self.client_id)),
            )
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("enable.partition.eof", "true")
            .set("auto.offset.reset", "earliest")
            .set("queued.max.messages.kbytes", "16384")
            // librdkafka waits this long (default 1 s) before fetching again once its
            // queue passed a threshold: with a fast reader the queue empties long
            // before, and the consumer idles (measured: ~2x throughput at 5 ms).
            .set("fetch.queue.backoff.ms", "5")
            .set(
                "isolation.level",
                if self.settings.read_committed {
                    "read_committed"
                } else {
                    "read_uncommitted"
                },
            );
        for (key, value) in &self.settings.client.properties {
            config.set(key, value);
        }
        config
            .create_with_context(SourceContext {
                client_id: self.client_id.clone(),
                shared: Arc::clone(&self.shared),
            })
            .map_err(|e| KafkaError::client("cannot create a consumer", e))
    }

    /// Setup, retried with backoff while the broker cannot be reached, up to the
    /// broker timeout.
    fn setup_with_retries(&mut self) -> Result<(SourceConsumer, TopicPartitionList), KafkaError> {
        let started = self.settings.clock.now();
        let mut backoff = Duration::from_millis(200);
        loop {
            match self.setup() {
                Ok(done) => return Ok(done),
                Err(KafkaError::Client { what, source })
                    if !matches!(
                        source.rdkafka_error_code(),
                        Some(rdkafka::types::RDKafkaErrorCode::UnknownTopicOrPartition)
                    ) =>
                {
                    let waited = self.settings.clock.now().saturating_duration_since(started);
                    let waited_ms = waited.as_millis() as u64;
                    if waited_ms >= self.settings.client.broker_timeout_ms()
                        || self.shared.stop.load(Ordering::Acquire)
                    {
                        return Err(KafkaError::Unreachable {
                            bootstrap: self.settings.client.bootstrap.clone(),
                            waited_ms,
                            timeout_ms: self.settings.client.broker_timeout_ms(),
                            last_error: format!("{what}: {source}"),
                        });
                    }
                    tracing::warn!(
                        client = %self.client_id,
                        error = %format!("{what}: {source}"),
                        retry_in_ms = backoff.as_millis() as u64,
                        waited_ms,
                        "Kafka source: setup failed, retrying"
                    );
                    std::thread::park_timeout(backoff);
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
                Err(other) => return Err(other),
            }
        }
    }

    fn setup(&mut self) -> Result<(SourceConsumer, TopicPartitionList), KafkaError> {
        let consumer = self.consumer()?;
        let metadata = consumer
            .fetch_metadata(None, REQUEST_TIMEOUT)
            .map_err(|e| KafkaError::client("cannot fetch the topics' metadata", e))?;
        let mut all = Vec::new();
        let wanted = |name: &str| match &self.settings.topics {
            Topics::Names(names) => names.iter().any(|n| n == name),
            Topics::Pattern(pattern) => glob_matches(pattern, name),
        };
        for topic in metadata.topics() {
            if !wanted(topic.name()) || topic.error().is_some() {
                continue;
            }
            for partition in topic.partitions() {
                all.push(TopicPartition {
                    topic: topic.name().to_string(),
                    partition: partition.id(),
                });
            }
        }
        drop(metadata);
        if let Topics::Names(names) = &self.settings.topics {
            for name in names {
                if !all.iter().any(|tp| &tp.topic == name) {
                    return Err(KafkaError::Config(format!(
                        "Kafka topic '{name}' does not exist at {}",
                        self.settings.client.bootstrap
                    )));
                }
            }
        }
        let owned = owned_partitions(all, self.index, self.parallelism);
        let mut starts = Vec::with_capacity(owned.len());
        let committed = if self.settings.start == StartPosition::Committed {
            let mut list = TopicPartitionList::new();
            for tp in &owned {
                list.add_partition(&tp.topic, tp.partition);
            }
            let found = consumer
                .committed_offsets(list, REQUEST_TIMEOUT)
                .map_err(|e| KafkaError::client("cannot read the group's committed offsets", e))?;
            let offsets: Vec<(TopicPartition, Offset)> = found
                .elements()
                .iter()
                .map(|e| {
                    (
                        TopicPartition {
                            topic: e.topic().to_string(),
                            partition: e.partition(),
                        },
                        e.offset(),
                    )
                })
                .collect();
            drop(found);
            offsets
        } else {
            Vec::new()
        };
        for tp in owned {
            let (low, high) = consumer
                .fetch_watermarks(&tp.topic, tp.partition, REQUEST_TIMEOUT)
                .map_err(|e| KafkaError::client(format!("cannot read the offsets of {tp}"), e))?;
            let start = match self.resume.get(&tp) {
                Some(offset) => offset,
                None => match self.settings.start {
                    StartPosition::Earliest => low,
                    StartPosition::Latest => high,
                    StartPosition::Committed => committed
                        .iter()
                        .find(|(c, _)| *c == tp)
                        .and_then(|(_, offset)| match offset {
                            Offset::Offset(o) => Some(*o),
                            _ => None,
                        })
                        .unwrap_or(low),
                    StartPosition::Timestamp(ms) => {
                        let mut list = TopicPartitionList::new();
                        list.add_partition_offset(&tp.topic, tp.partition, Offset::Offset(ms))
                            .map_err(|e| KafkaError::client("bad timestamp", e))?;
                        let found = consumer
                            .offsets_for_times(list, REQUEST_TIMEOUT)
                            .map_err(|e| KafkaError::client("cannot look offsets up by time", e))?;
                        let offset = found
                            .elements()
                            .first()
                            .and_then(|e| match e.offset() {
                                Offset::Offset(o) => Some(o),
                                _ => None,
                            })
                            .unwrap_or(high);
                        drop(found);
                        offset
                    }
                },
            };
            let end = self.settings.bounded.then_some(high);
            starts.push((tp, start.max(low), end));
        }
        let mut assignment = TopicPartitionList::new();
        for (tp, start, _) in &starts {
            assignment
                .add_partition_offset(&tp.topic, tp.partition, Offset::Offset(*start))
                .map_err(|e| KafkaError::client("bad start offset", e))?;
        }
        consumer
            .assign(&assignment)
            .map_err(|e| KafkaError::client("cannot assign the partitions", e))?;
        tracing::debug!(client = %self.client_id, partitions = ?starts, "Kafka source starts");
        self.push_blocking(Item::Assigned(starts));
        Ok((consumer, assignment))
    }

    /// Pushes one item, waiting (parked) while the ring is full; false when stopping.
    fn push_blocking(&mut self, mut item: Item) -> bool {
        loop {
            match self.ring.push(item) {
                Ok(()) => {
                    self.ring_doorbell();
                    return true;
                }
                Err(rtrb::PushError::Full(back)) => {
                    if self.shared.stop.load(Ordering::Acquire) {
                        return false;
                    }
                    item = back;
                    self.ring_doorbell();
                    std::thread::park_timeout(Duration::from_millis(5));
                }
            }
        }
    }

    /// Hands over the consumer's positions (every record before them was handed over
    /// already): they move past transaction markers and aborted records.
    fn send_positions(
        &mut self,
        consumer: &SourceConsumer,
        index_of: &PartitionIndex,
        last: &mut [i64],
    ) -> bool {
        let Ok(list) = consumer.position() else {
            return true;
        };
        let mut nexts = Vec::new();
        for element in list.elements() {
            if let (Offset::Offset(offset), Some(index)) = (
                element.offset(),
                index_of.get(element.topic(), element.partition()),
            ) {
                if last.get(index as usize).is_some_and(|l| *l < offset) {
                    last[index as usize] = offset;
                    nexts.push((index, offset));
                }
            }
        }
        drop(list);
        nexts.is_empty() || self.push_blocking(Item::Caught(nexts))
    }

    fn poll_loop(&mut self, consumer: &SourceConsumer, assignment: &TopicPartitionList) {
        let index_of = PartitionIndex::new(assignment);
        let mut last_positions = vec![-1i64; assignment.count()];
        let mut next_position_check = self.settings.clock.now();
        let mut unhealthy: Option<(Instant, String)> = None;
        let mut next_probe = self.settings.clock.now();
        let mut backoff = Duration::from_millis(200);
        // While idle and healthy, the broker is probed now and then: librdkafka does not
        // always report a broker that went away to a consumer with nothing to fetch, and
        // the source must still fail after `broker_timeout` rather than wait forever.
        let idle_probe_every = Duration::from_millis(self.settings.client.broker_timeout_ms() / 3)
            .clamp(Duration::from_millis(200), Duration::from_secs(5));
        let mut next_idle_probe = self.settings.clock.now() + idle_probe_every;
        let mut batch_since_bell = 0usize;
        while !self.shared.stop.load(Ordering::Acquire) {
            self.commit_if_requested(consumer, &index_of);
            if self.ring.is_full() {
                // Backpressure: park until the task drained half; pause fetching if
                // the ring stays full longer than `pause_after`.
                let full_since = self.settings.clock.now();
                while self.ring.is_full()
                    && !self.shared.stop.load(Ordering::Acquire)
                    && self
                        .settings
                        .clock
                        .now()
                        .saturating_duration_since(full_since)
                        < self.settings.pause_after
                {
                    self.ring_doorbell();
                    std::thread::park_timeout(Duration::from_micros(200));
                }
                if !self.ring.is_full() {
                    continue;
                }
                if !self.shared.paused.swap(true, Ordering::AcqRel) {
                    self.metrics.inner.pauses.fetch_add(1, Ordering::Relaxed);
                    if let Err(e) = consumer.pause(assignment) {
                        tracing::warn!(error = %e, "Kafka source: cannot pause partitions");
                    }
                }
                self.ring_doorbell();
                while self.ring.slots() * 2 < self.settings.ring_capacity
                    && !self.shared.stop.load(Ordering::Acquire)
                {
                    std::thread::park_timeout(Duration::from_millis(10));
                    self.commit_if_requested(consumer, &index_of);
                }
                if let Err(e) = consumer.resume(assignment) {
                    tracing::warn!(error = %e, "Kafka source: cannot resume partitions");
                }
                self.shared.paused.store(false, Ordering::Release);
                continue;
            }
            let timeout = if batch_since_bell > 0 {
                Duration::ZERO
            } else {
                POLL_TIMEOUT
            };
            match consumer.poll(timeout) {
                None => {
                    if batch_since_bell > 0 {
                        self.ring_doorbell();
                        batch_since_bell = 0;
                    }
                    let now = self.settings.clock.now();
                    if unhealthy.is_none() && now >= next_position_check {
                        next_position_check = now + POLL_TIMEOUT;
                        if !self.send_positions(consumer, &index_of, &mut last_positions) {
                            return;
                        }
                    }
                    if unhealthy.is_none() && now >= next_idle_probe {
                        next_idle_probe = now + idle_probe_every;
                        if let Err(e) = consumer.fetch_metadata(None, Duration::from_secs(1)) {
                            tracing::warn!(client = %self.client_id, error = %e, "Kafka source: broker not answering");
                            unhealthy = Some((now, e.to_string()));
                            next_probe = now + backoff;
                        }
                    }
                    if let Some((since, last_error)) = &unhealthy {
                        let now = self.settings.clock.now();
                        if now >= next_probe {
                            match consumer.fetch_metadata(None, Duration::from_secs(1)) {
                                Ok(_) => {
                                    tracing::info!(client = %self.client_id, "Kafka source: broker reachable again");
                                    unhealthy = None;
                                    backoff = Duration::from_millis(200);
                                    continue;
                                }
                                Err(e) => {
                                    let waited_ms =
                                        now.saturating_duration_since(*since).as_millis() as u64;
                                    if waited_ms >= self.settings.client.broker_timeout_ms() {
                                        self.shared.fail(KafkaError::Unreachable {
                                            bootstrap: self.settings.client.bootstrap.clone(),
                                            waited_ms,
                                            timeout_ms: self.settings.client.broker_timeout_ms(),
                                            last_error: format!("{last_error}; {e}"),
                                        });
                                        self.ring_doorbell();
                                        return;
                                    }
                                    tracing::warn!(
                                        client = %self.client_id,
                                        error = %e,
                                        waited_ms,
                                        retry_in_ms = backoff.as_millis() as u64,
                                        "Kafka source: broker unreachable, retrying"
                                    );
                                    next_probe = now + backoff;
                                    backoff = (backoff * 2).min(Duration::from_secs(5));
                                }
                            }
                        }
                    }
                }
                Some(Ok(message)) => {
                    unhealthy = None;
                    let Some(partition) = index_of.get(message.topic(), message.partition()) else {
                        continue;
                    };
                    let item = Item::Record {
                        partition,
                        offset: message.offset(),
                        timestamp: message.timestamp().to_millis(),
                        key: message.key().map(<[u8]>::to_vec),
                        value: message.payload().map(<[u8]>::to_vec),
                    };
                    drop(message);
                    if !self.push_blocking_quiet(item) {
                        return;
                    }
                    batch_since_bell += 1;
                    if batch_since_bell >= 256 {
                        self.ring_doorbell();
                        batch_since_bell = 0;
                    }
                }
                Some(Err(rdkafka::error::KafkaError::PartitionEOF(_))) => {
                    unhealthy = None;
                    if batch_since_bell > 0 {
                        self.ring_doorbell();
                        batch_since_bell = 0;
                    }
                    if !self.send_positions(consumer, &index_of, &mut last_positions) {
                        return;
                    }
                }
                Some(Err(error)) => {
                    let now = self.settings.clock.now();
                    if unhealthy.is_none() {
                        tracing::warn!(client = %self.client_id, %error, "Kafka source: client error");
                        unhealthy = Some((now, error.to_string()));
                        next_probe = now + backoff;
                    }
                }
            }
        }
    }

    /// Commits the offsets of a completed checkpoint to the group, if one is waiting
    /// (asynchronously: the answer comes through [`SourceContext`]); only partitions of
    /// this subtask's assignment. Returns whether a commit was sent.
    fn commit_if_requested(&self, consumer: &SourceConsumer, index_of: &PartitionIndex) -> bool {
        let Some(position) = self.shared.take_commit() else {
            return false;
        };
        let mut list = TopicPartitionList::new();
        for (tp, offset) in position.iter() {
            if index_of.get(&tp.topic, tp.partition).is_some() {
                if let Err(error) =
                    list.add_partition_offset(&tp.topic, tp.partition, Offset::Offset(offset))
                {
                    tracing::warn!(client = %self.client_id, %error, "Kafka source: bad offset to commit");
                }
            }
        }
        let sent = list.count() > 0;
        if sent {
            if let Err(error) = consumer.commit(&list, rdkafka::consumer::CommitMode::Async) {
                tracing::warn!(client = %self.client_id, %error, "Kafka source: cannot commit the group's offsets (monitoring only; the next checkpoint commits again)");
            }
        }
        drop(list);
        sent
    }

    /// On the way out: commits a request still waiting and serves the consumer's
    /// callbacks until the broker answered, at most [`FINAL_COMMIT_WAIT`].
    fn final_commit(&self, consumer: &SourceConsumer, assignment: &TopicPartitionList) {
        let index_of = PartitionIndex::new(assignment);
        let answered = |shared: &Shared| {
            shared.commits.load(Ordering::Acquire) + shared.commit_failures.load(Ordering::Acquire)
        };
        let before = answered(&self.shared);
        if !self.commit_if_requested(consumer, &index_of) {
            return;
        }
        let until = self.settings.clock.now() + FINAL_COMMIT_WAIT;
        while answered(&self.shared) == before && self.settings.clock.now() < until {
            // Only callbacks arrive now: the partitions were read for the last time.
            if let Some(Ok(message)) = consumer.poll(Duration::from_millis(50)) {
                drop(message);
            }
        }
    }

    /// Like [`Poller::push_blocking`] without ringing on success (batched rings).
    fn push_blocking_quiet(&mut self, mut item: Item) -> bool {
        loop {
            match self.ring.push(item) {
                Ok(()) => return true,
                Err(rtrb::PushError::Full(back)) => {
                    if self.shared.stop.load(Ordering::Acquire) {
                        return false;
                    }
                    item = back;
                    self.ring_doorbell();
                    std::thread::park_timeout(Duration::from_millis(1));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn partition(max_timestamp: Timestamp, last_record: Instant) -> Partition {
        Partition {
            tp: TopicPartition {
                topic: "t".into(),
                partition: 0,
            },
            topic: Arc::from("t"),
            next: 0,
            end: None,
            max_timestamp,
            last_record,
        }
    }

    #[test]
    fn the_watermark_is_the_slowest_active_partition_minus_the_bound() {
        let start = SystemClock.now();
        let settings = KafkaWatermarks {
            max_out_of_orderness: Duration::from_millis(10),
            idleness: Some(Duration::from_secs(5)),
        };
        let partitions = [
            partition(1_000, start),
            partition(500, start),
            partition(NO_TIMESTAMP, start),
        ];
        // A partition without records holds the watermark back until it is idle.
        assert_eq!(
            watermark_of(&partitions, settings, start),
            Some(Timestamp::MIN)
        );
        let later = start + Duration::from_secs(6);
        let partitions = [
            partition(1_000, later),
            partition(500, later),
            partition(NO_TIMESTAMP, start),
        ];
        assert_eq!(watermark_of(&partitions, settings, later), Some(489));
        // All idle: no watermark (it holds).
        assert_eq!(
            watermark_of(&partitions, settings, later + Duration::from_secs(6)),
            None
        );
    }

    #[test]
    fn globs_match() {
        assert!(glob_matches("orders-*", "orders-eu"));
        assert!(glob_matches("*", ""));
        assert!(glob_matches("a?c*", "abcdef"));
        assert!(!glob_matches("orders-*", "order"));
        assert!(!glob_matches("a?c", "ac"));
    }
}
