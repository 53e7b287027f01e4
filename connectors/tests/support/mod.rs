//! Helpers of the Kafka tests: the broker (which must be running: `scripts/kafka
//! start`, or `scripts/test`), unique topics, producing, reading back with a fresh
//! read_committed consumer, and waiting on conditions with deadlines.
#![allow(dead_code, clippy::disallowed_methods)] // tests wait with deadlines on the OS clock

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use eddy_connectors::files::Record;
use eddy_connectors::kafka::config::test_bootstrap;
use eddy_connectors::kafka::{KafkaSource, KafkaSourcePosition};
use eddy_engine::prelude::*;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

/// The broker's address; panics with a clear message when none answers.
pub fn broker() -> String {
    let bootstrap = test_bootstrap();
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .create()
        .expect("a consumer");
    if let Err(error) = consumer.fetch_metadata(None, Duration::from_secs(15)) {
        panic!(
            "no Kafka broker reachable at {bootstrap} ({error}): the Kafka tests need one — \
             run `scripts/kafka start` (or run the tests with `scripts/test`), or set \
             EDDY_KAFKA_BOOTSTRAP"
        );
    }
    bootstrap
}

/// A topic name no other test (or earlier run) uses.
pub fn unique_topic(prefix: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "{prefix}-{}-{nanos}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// Creates `topic` with `partitions` and waits until its metadata shows them.
pub fn create_topic(bootstrap: &str, topic: &str, partitions: i32) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .unwrap();
    let new = NewTopic::new(topic, partitions, TopicReplication::Fixed(1));
    let results = futures_lite::future::block_on(admin.create_topics(
        [&new],
        &AdminOptions::new().operation_timeout(Some(Duration::from_secs(30))),
    ))
    .unwrap();
    for result in results {
        result.unwrap();
    }
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .unwrap();
    wait_until(Duration::from_secs(30), "topic metadata", || {
        consumer
            .fetch_metadata(Some(topic), Duration::from_secs(5))
            .is_ok_and(|m| {
                m.topics().first().is_some_and(|t| {
                    t.error().is_none()
                        && t.partitions().len() == partitions as usize
                        && t.partitions().iter().all(|p| p.leader() >= 0)
                })
            })
    });
}

/// Produces `values` (value `i` to partition `i % partitions`), acknowledged by all.
pub fn produce(bootstrap: &str, topic: &str, partitions: i32, values: &[String]) {
    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("enable.idempotence", "true")
        .create()
        .unwrap();
    for (index, value) in values.iter().enumerate() {
        let mut record = BaseRecord::<(), str>::to(topic)
            .payload(value.as_str())
            .partition(index as i32 % partitions);
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((_, back)) => {
                    record = back;
                    std::thread::park_timeout(Duration::from_millis(1));
                }
            }
        }
    }
    producer.flush(Duration::from_secs(30)).unwrap();
}

/// Every value committed to `topic`, read from the start by a fresh read_committed
/// consumer up to the end of each partition.
pub fn read_committed(bootstrap: &str, topic: &str) -> Vec<String> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", unique_topic("reader"))
        .set("enable.partition.eof", "true")
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .create()
        .unwrap();
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .unwrap();
    let partitions: Vec<i32> = metadata.topics()[0]
        .partitions()
        .iter()
        .map(|p| p.id())
        .collect();
    drop(metadata);
    let mut list = TopicPartitionList::new();
    for partition in &partitions {
        list.add_partition_offset(topic, *partition, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&list).unwrap();
    drop(list);
    let mut values = Vec::new();
    let mut at_end: HashMap<i32, bool> = partitions.iter().map(|p| (*p, false)).collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    while at_end.values().any(|done| !done) {
        assert!(Instant::now() < deadline, "reading {topic} timed out");
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(message)) => {
                at_end.insert(message.partition(), false);
                values.push(
                    String::from_utf8(message.payload().unwrap_or_default().to_vec()).unwrap(),
                );
            }
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(partition))) => {
                at_end.insert(partition, true);
            }
            Some(Err(error)) => panic!("reading {topic}: {error}"),
            None => {}
        }
    }
    values
}

/// The offsets group `group` has committed for each of `partitions` partitions of
/// `topic` (`-1` where it has none).
pub fn committed_offsets(bootstrap: &str, group: &str, topic: &str, partitions: i32) -> Vec<i64> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut list = TopicPartitionList::new();
    for partition in 0..partitions {
        list.add_partition(topic, partition);
    }
    let found = consumer
        .committed_offsets(list, Duration::from_secs(10))
        .expect("the group's committed offsets");
    let mut offsets = vec![-1; partitions as usize];
    for element in found.elements() {
        if let Offset::Offset(offset) = element.offset() {
            offsets[element.partition() as usize] = offset;
        }
    }
    // The list goes before the consumer (dropping a consumer while a list it returned
    // is alive hangs).
    drop(found);
    drop(consumer);
    offsets
}

/// Waits until `condition` holds, failing after `limit`.
pub fn wait_until(limit: Duration, what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::park_timeout(Duration::from_millis(20));
    }
}

/// A subtask's identity.
pub fn subtask(index: usize, parallelism: usize) -> SubtaskInfo {
    SubtaskInfo {
        job: "test".into(),
        operator: "kafka".into(),
        index,
        parallelism,
    }
}

/// Polls `source` until it has emitted `limit` records or finished; returns the lines.
pub fn drain(
    source: &mut KafkaSource,
    limit: usize,
    within: Duration,
) -> Result<Vec<String>, ConnectorError> {
    let deadline = Instant::now() + within;
    let mut lines = Vec::new();
    let mut batch = Batch::new();
    loop {
        if lines.len() >= limit {
            return Ok(lines);
        }
        assert!(
            Instant::now() < deadline,
            "the source emitted {} of {limit} records in time",
            lines.len()
        );
        let mut out = SourceOutput::new(&mut batch, 64.min(limit - lines.len()));
        let status = source.poll_next(&mut out)?;
        for record in batch.drain_values() {
            match record {
                Record::Line(bytes) => lines.push(String::from_utf8(bytes).unwrap()),
                other => panic!("unexpected {other:?}"),
            }
        }
        match status {
            SourceStatus::Finished => return Ok(lines),
            SourceStatus::Idle | SourceStatus::IdleUntil(_) => {
                std::thread::park_timeout(Duration::from_millis(2))
            }
            SourceStatus::Ready => {}
        }
    }
}

/// Sorted copy.
pub fn sorted(mut values: Vec<String>) -> Vec<String> {
    values.sort();
    values
}

/// Merges positions.
pub fn merge(positions: Vec<KafkaSourcePosition>) -> KafkaSourcePosition {
    KafkaSourcePosition::merge(positions)
}

/// Polls `source` once with room for 64 records; returns the lines.
pub fn poll_once(source: &mut KafkaSource) -> Vec<String> {
    let mut batch = Batch::new();
    let mut out = SourceOutput::new(&mut batch, 64);
    source.poll_next(&mut out).unwrap();
    batch
        .drain_values()
        .map(|record| match record {
            Record::Line(bytes) => String::from_utf8(bytes).unwrap(),
            other => panic!("unexpected {other:?}"),
        })
        .collect()
}
