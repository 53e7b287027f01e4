//! The Kafka source and sink against a real broker (Apache Kafka 4.1, KRaft, single
//! node: `scripts/kafka start`, or run the tests with `scripts/test`). A test that
//! finds no broker fails and says how to start one.
//!
//! Exactly-once claims are tested here, on the real broker, never on librdkafka's mock
//! cluster (which does not fence, commit offsets sent in transactions, or honour
//! read_committed).
#![allow(clippy::disallowed_methods)] // tests wait with deadlines on the OS clock

mod support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use eddy_connectors::files::{BadRecordPolicy, DeadLetterFile, Format, Record};
use eddy_connectors::kafka::{
    Delivery, KafkaClientSettings, KafkaSink, KafkaSinkSettings, KafkaSinkState, KafkaSource,
    KafkaSourcePosition, KafkaSourceSettings, StartPosition, Topics,
};
use eddy_engine::prelude::*;
use support::*;

const PARTITIONS: i32 = 4;

fn values(prefix: &str, count: usize) -> Vec<String> {
    (0..count).map(|i| format!("{prefix}-{i:06}")).collect()
}

fn source_settings(bootstrap: &str, topic: &str) -> KafkaSourceSettings {
    let mut settings = KafkaSourceSettings::new(
        KafkaClientSettings::new(bootstrap),
        Topics::Names(vec![topic.to_string()]),
        Format::Lines,
    );
    settings.ring_capacity = 128; // small: the tests also exercise pause/resume
    settings.pause_after = Duration::ZERO;
    settings
}

fn topic_with(bootstrap: &str, prefix: &str, records: &[String]) -> String {
    let topic = unique_topic(prefix);
    create_topic(bootstrap, &topic, PARTITIONS);
    produce(bootstrap, &topic, PARTITIONS, records);
    topic
}

#[test]
fn the_source_reads_exactly_the_records_of_a_four_partition_topic() {
    let bootstrap = broker();
    let expected = values("r", 2000);
    let topic = topic_with(&bootstrap, "src-exact", &expected);
    for parallelism in [1, 3] {
        let mut settings = source_settings(&bootstrap, &topic);
        settings.bounded = true;
        let template = KafkaSource::<Record>::new(settings);
        let mut all = Vec::new();
        for index in 0..parallelism {
            let mut source = template.clone();
            source.open(&subtask(index, parallelism)).unwrap();
            all.extend(drain(&mut source, usize::MAX, Duration::from_secs(60)).unwrap());
            source.close().unwrap();
        }
        assert_eq!(sorted(all), expected, "parallelism {parallelism}");
        assert!(
            template.metrics().pauses() > 0,
            "the small ring never filled"
        );
    }
}

#[test]
fn an_unbounded_source_emits_n_records_and_then_has_nothing_more() {
    let bootstrap = broker();
    let expected = values("u", 500);
    let topic = topic_with(&bootstrap, "src-unbounded", &expected);
    let mut source = KafkaSource::<Record>::new(source_settings(&bootstrap, &topic));
    source.open(&subtask(0, 1)).unwrap();
    let got = drain(&mut source, expected.len(), Duration::from_secs(60)).unwrap();
    assert_eq!(sorted(got), expected);
    // Its position is the end of every partition: nothing more is there to read.
    let position = source.position();
    assert_eq!(position.len(), PARTITIONS as usize);
    let total: i64 = position.iter().map(|(_, offset)| offset).sum();
    assert_eq!(total, expected.len() as i64);
    // Records produced now arrive too.
    let later = values("later", 10);
    produce(&bootstrap, &topic, PARTITIONS, &later);
    let got = drain(&mut source, later.len(), Duration::from_secs(60)).unwrap();
    assert_eq!(sorted(got), later);
    source.close().unwrap();
}

#[test]
fn a_source_resumed_from_a_mid_position_reads_the_rest_exactly_once_at_any_parallelism() {
    let bootstrap = broker();
    let expected = values("m", 1200);
    let topic = topic_with(&bootstrap, "src-resume", &expected);
    let mut settings = source_settings(&bootstrap, &topic);
    settings.bounded = true;
    let template = KafkaSource::<Record>::new(settings);

    // Two subtasks read part of their share, then "crash" after a checkpoint.
    let mut seen = Vec::new();
    let mut positions = Vec::new();
    for (index, stop_after) in [(0, 250), (1, 420)] {
        let mut source = template.clone();
        source.open(&subtask(index, 2)).unwrap();
        seen.extend(drain(&mut source, stop_after, Duration::from_secs(60)).unwrap());
        positions.push(source.position());
        source.close().unwrap();
    }
    assert_eq!(seen.len(), 670);
    let merged = merge(positions);
    assert_eq!(merged.len(), PARTITIONS as usize);

    // Resumed with three subtasks: each takes the offsets of the partitions it owns.
    for index in 0..3 {
        let mut source = template.clone().resume_from(merged.clone());
        source.open(&subtask(index, 3)).unwrap();
        seen.extend(drain(&mut source, usize::MAX, Duration::from_secs(60)).unwrap());
        source.close().unwrap();
    }
    assert_eq!(sorted(seen), expected);
}

#[test]
fn start_positions_latest_timestamp_and_committed() {
    let bootstrap = broker();
    let old = values("old", 100);
    let topic = topic_with(&bootstrap, "src-start", &old);

    // latest: only what is produced after the start.
    let mut settings = source_settings(&bootstrap, &topic);
    settings.start = StartPosition::Latest;
    let mut latest = KafkaSource::<Record>::new(settings);
    latest.open(&subtask(0, 1)).unwrap();
    wait_until(Duration::from_secs(30), "assignment", || {
        assert!(poll_once(&mut latest).is_empty());
        latest.position().len() == PARTITIONS as usize
    });
    let new = values("new", 40);
    produce(&bootstrap, &topic, PARTITIONS, &new);
    assert_eq!(
        sorted(drain(&mut latest, 40, Duration::from_secs(60)).unwrap()),
        new
    );
    let position = latest.position();
    latest.close().unwrap();

    // committed: a group's offsets, committed from a position.
    let group = unique_topic("group");
    let mut settings = source_settings(&bootstrap, &topic);
    settings.group = Some(group.clone());
    settings.start = StartPosition::Committed;
    settings.bounded = true;
    let committer = KafkaSource::<Record>::new(settings.clone());
    committer.commit_offsets(&position).unwrap();
    let mut committed = KafkaSource::<Record>::new(settings);
    committed.open(&subtask(0, 1)).unwrap();
    assert!(drain(&mut committed, usize::MAX, Duration::from_secs(60))
        .unwrap()
        .is_empty());
    committed.close().unwrap();

    // timestamp: far in the future reads nothing; 0 reads everything.
    for (ms, count) in [(i64::MAX / 2, 0), (0, 140)] {
        let mut settings = source_settings(&bootstrap, &topic);
        settings.start = StartPosition::Timestamp(ms);
        settings.bounded = true;
        let mut source = KafkaSource::<Record>::new(settings);
        source.open(&subtask(0, 1)).unwrap();
        assert_eq!(
            drain(&mut source, usize::MAX, Duration::from_secs(60))
                .unwrap()
                .len(),
            count
        );
        source.close().unwrap();
    }
}

/// The offsets of `position` by partition (`-1` where it names none).
fn offsets_by_partition(position: &KafkaSourcePosition) -> Vec<i64> {
    let mut offsets = vec![-1; PARTITIONS as usize];
    for (tp, offset) in position.iter() {
        offsets[tp.partition as usize] = offset;
    }
    offsets
}

#[test]
fn a_completed_checkpoint_commits_the_group_offsets_it_holds_and_committed_resumes_there() {
    let bootstrap = broker();
    let expected = values("g", 800);
    let topic = topic_with(&bootstrap, "src-commit", &expected);
    let group = unique_topic("group-commit");
    let mut settings = source_settings(&bootstrap, &topic);
    settings.group = Some(group.clone());
    let mut source = KafkaSource::<Record>::new(settings.clone());
    source.open(&subtask(0, 1)).unwrap();
    let mut seen = drain(&mut source, 300, Duration::from_secs(60)).unwrap();
    // Checkpoint 1 holds the position after 300 records; when it completes the poll
    // thread commits exactly those offsets.
    let first = source.snapshot_position().unwrap().unwrap();
    seen.extend(drain(&mut source, 100, Duration::from_secs(60)).unwrap());
    source.checkpoint_complete(1, &first).unwrap();
    let first: KafkaSourcePosition = eddy_engine::checkpoint::decode(&first).unwrap();
    assert_eq!(
        first.iter().map(|(_, offset)| offset).sum::<i64>(),
        300,
        "{first:?}"
    );
    let want = offsets_by_partition(&first);
    wait_until(
        Duration::from_secs(30),
        "the commit of checkpoint 1",
        || committed_offsets(&bootstrap, &group, &topic, PARTITIONS) == want,
    );
    // Checkpoint 2 completes right before the source closes (stop with savepoint):
    // its offsets are committed on the way out.
    let second = source.snapshot_position().unwrap().unwrap();
    source.checkpoint_complete(2, &second).unwrap();
    source.close().unwrap();
    let second: KafkaSourcePosition = eddy_engine::checkpoint::decode(&second).unwrap();
    assert_eq!(
        committed_offsets(&bootstrap, &group, &topic, PARTITIONS),
        offsets_by_partition(&second)
    );
    // start=committed continues there: the other 400 records, none twice.
    settings.start = StartPosition::Committed;
    settings.bounded = true;
    let mut resumed = KafkaSource::<Record>::new(settings);
    resumed.open(&subtask(0, 1)).unwrap();
    seen.extend(drain(&mut resumed, usize::MAX, Duration::from_secs(60)).unwrap());
    resumed.close().unwrap();
    assert_eq!(sorted(seen), expected);
}

#[test]
fn a_job_commits_its_checkpoints_offsets_to_the_group() {
    let bootstrap = broker();
    let expected = values("j", 2_000);
    let topic = topic_with(&bootstrap, "job-commit", &expected);
    let group = unique_topic("group-job");
    let dir = tempfile::tempdir().unwrap();
    let job = |start: StartPosition, emitted: Arc<Mutex<Vec<String>>>| {
        let mut settings = source_settings(&bootstrap, &topic);
        settings.group = Some(group.clone());
        settings.start = start;
        let env = Env::new(JobConfig {
            name: "commit".into(),
            parallelism: Some(2),
            checkpoint: CheckpointConfig {
                mode: CheckpointingMode::ExactlyOnce,
                interval: Duration::from_millis(50),
                dir: Some(dir.path().to_path_buf()),
                ..CheckpointConfig::default()
            },
            ..JobConfig::default()
        });
        env.add_source(
            "read",
            KafkaSource::<Record>::new(settings),
            Boundedness::Unbounded,
        )
        .sink_fn(move |record: Record| {
            if let Record::Line(bytes) = record {
                emitted
                    .lock()
                    .unwrap()
                    .push(String::from_utf8(bytes).unwrap());
            }
        });
        env.execute_async().unwrap()
    };
    // Every record read: the checkpoints after that hold the end offsets (500 per
    // partition), and their completion commits them.
    let emitted = Arc::new(Mutex::new(Vec::new()));
    let handle = job(StartPosition::Earliest, Arc::clone(&emitted));
    wait_until(Duration::from_secs(60), "every record", || {
        emitted.lock().unwrap().len() == expected.len()
    });
    let ends = vec![expected.len() as i64 / PARTITIONS as i64; PARTITIONS as usize];
    wait_until(Duration::from_secs(60), "the end offsets committed", || {
        committed_offsets(&bootstrap, &group, &topic, PARTITIONS) == ends
    });
    handle.cancel();
    handle.join().unwrap();
    // A new job (no restore) with start=committed reads only what came after.
    let later = values("later", 120);
    produce(&bootstrap, &topic, PARTITIONS, &later);
    let resumed = Arc::new(Mutex::new(Vec::new()));
    let handle = job(StartPosition::Committed, Arc::clone(&resumed));
    wait_until(Duration::from_secs(60), "the later records", || {
        resumed.lock().unwrap().len() >= later.len()
    });
    handle.cancel();
    handle.join().unwrap();
    assert_eq!(sorted(resumed.lock().unwrap().clone()), later);
    assert_eq!(sorted(emitted.lock().unwrap().clone()), expected);
}

#[test]
fn bad_values_follow_the_policy_and_dead_letters_name_partition_and_offset() {
    let bootstrap = broker();
    let topic = unique_topic("src-bad");
    create_topic(&bootstrap, &topic, 1);
    produce(
        &bootstrap,
        &topic,
        1,
        &["{\"a\":1}".into(), "{broken".into(), "{\"a\":2}".into()],
    );
    let dir = tempfile::tempdir().unwrap();
    let dead = DeadLetterFile::create(dir.path().join("dead.jsonl")).unwrap();
    for (policy, good, fails) in [
        (BadRecordPolicy::SkipAndCount, 2, false),
        (BadRecordPolicy::DeadLetter(dead), 2, false),
        (BadRecordPolicy::Fail, 1, true),
    ] {
        let mut settings = source_settings(&bootstrap, &topic);
        settings.format = Format::JsonLines;
        settings.bounded = true;
        settings.on_bad_record = policy;
        let mut source = KafkaSource::<Record>::new(settings);
        source.open(&subtask(0, 1)).unwrap();
        let mut records = 0;
        let mut batch = Batch::new();
        let until = Instant::now() + Duration::from_secs(60);
        let error = loop {
            assert!(
                Instant::now() < until,
                "the bounded source did not end within 60 s"
            );
            let mut out = SourceOutput::new(&mut batch, 16);
            match source.poll_next(&mut out) {
                Ok(SourceStatus::Finished) => break None,
                Ok(_) => {}
                Err(error) => break Some(error.to_string()),
            }
            records += batch.drain_values().count();
            std::thread::park_timeout(Duration::from_millis(2));
        };
        records += batch.drain_values().count();
        assert_eq!(records, good);
        assert_eq!(error.is_some(), fails, "{error:?}");
        if let Some(error) = error {
            assert!(
                error.contains("offset 1") && error.contains("not JSON"),
                "{error}"
            );
        }
        assert_eq!(source.metrics().bad_records(), 1);
        source.close().unwrap();
    }
    let letters = std::fs::read_to_string(dir.path().join("dead.jsonl")).unwrap();
    let letter: serde_json::Value = serde_json::from_str(letters.trim()).unwrap();
    assert_eq!(letter["offset"], 1);
    assert_eq!(letter["partition"], 0);
    assert_eq!(letter["topic"], topic.as_str());
}

fn sink_settings(bootstrap: &str, topic: &str, delivery: Delivery) -> KafkaSinkSettings {
    KafkaSinkSettings::new(
        KafkaClientSettings::new(bootstrap),
        topic,
        delivery,
        Format::Lines,
    )
}

fn write(sink: &mut KafkaSink, values: &[String]) {
    let mut batch = Batch::new();
    for value in values {
        batch.push(Record::Line(value.clone().into_bytes()));
    }
    sink.write_batch(&mut batch).unwrap();
}

#[test]
fn the_at_least_once_sink_delivers_everything() {
    let bootstrap = broker();
    let topic = unique_topic("sink-alo");
    create_topic(&bootstrap, &topic, PARTITIONS);
    let expected = values("a", 3000);
    let mut sink = KafkaSink::new(sink_settings(&bootstrap, &topic, Delivery::AtLeastOnce));
    sink.open(&subtask(0, 1)).unwrap();
    write(&mut sink, &expected[..1000]);
    sink.pre_commit(1).unwrap(); // the barrier: everything so far is acknowledged
    assert!(sink.metrics().delivered() >= 1000);
    write(&mut sink, &expected[1000..]);
    Sink::finish(&mut sink).unwrap();
    assert_eq!(sorted(read_committed(&bootstrap, &topic)), expected);
}

/// An exactly-once sink whose transactional id is shared by the "runs" of one test.
fn exactly_once(bootstrap: &str, topic: &str, id: &str) -> KafkaSink {
    let mut settings = sink_settings(bootstrap, topic, Delivery::ExactlyOnce);
    settings.transactional_id_prefix = Some(id.to_string());
    settings.checkpoint_interval = Some(Duration::from_secs(1));
    let mut sink = KafkaSink::new(settings);
    sink.connect(&subtask(0, 1)).unwrap();
    sink
}

#[test]
fn exactly_once_commits_epochs_in_order_including_empty_checkpoints() {
    let bootstrap = broker();
    let topic = unique_topic("eo-plain");
    create_topic(&bootstrap, &topic, PARTITIONS);
    let id = unique_topic("txn");
    let all = values("e", 600);
    let mut sink = exactly_once(&bootstrap, &topic, &id);
    write(&mut sink, &all[..200]);
    sink.pre_commit(1).unwrap();
    // Not visible before the checkpoint completes.
    assert!(read_committed(&bootstrap, &topic).is_empty());
    write(&mut sink, &all[200..300]); // waits for commit(1)
    sink.commit(1).unwrap();
    assert_eq!(
        sorted(read_committed(&bootstrap, &topic)),
        all[..200].to_vec()
    );
    sink.pre_commit(2).unwrap();
    // Two checkpoints pending at once: 3 before 2 completes.
    write(&mut sink, &all[300..400]);
    sink.pre_commit(3).unwrap();
    sink.commit(3).unwrap();
    // Empty checkpoints commit cleanly.
    sink.pre_commit(4).unwrap();
    sink.commit(4).unwrap();
    sink.commit(4).unwrap(); // idempotent
    write(&mut sink, &all[400..]);
    Sink::finish(&mut sink).unwrap();
    assert_eq!(sorted(read_committed(&bootstrap, &topic)), all);
}

#[test]
fn exactly_once_recovers_from_a_crash_at_each_point_without_loss_or_duplicate() {
    let bootstrap = broker();
    // Crash points: after the epoch's records were sent but before the barrier; after
    // pre_commit (checkpoint incomplete); after the checkpoint completed but before the
    // commit; after the commit.
    for crash in [
        "before-barrier",
        "after-pre-commit",
        "after-complete",
        "after-commit",
    ] {
        let topic = unique_topic("eo-crash");
        create_topic(&bootstrap, &topic, PARTITIONS);
        let id = unique_topic("txn");
        let epoch1 = values("one", 100);
        let epoch2 = values("two", 100);
        let epoch3 = values("three", 50);

        let mut first = exactly_once(&bootstrap, &topic, &id);
        write(&mut first, &epoch1);
        let state1 = first.pre_commit(1).unwrap();
        first.commit(1).unwrap();
        write(&mut first, &epoch2);
        // The last completed checkpoint, as the engine would restore it.
        let restored: KafkaSinkState = match crash {
            "before-barrier" => state1.clone(),
            "after-pre-commit" => {
                first.pre_commit(2).unwrap();
                state1.clone()
            }
            "after-complete" => first.pre_commit(2).unwrap(),
            "after-commit" => {
                let state2 = first.pre_commit(2).unwrap();
                first.commit(2).unwrap();
                state2
            }
            _ => unreachable!(),
        };
        drop(first); // the crash: the producer goes away, its transaction stays open

        let mut second = exactly_once(&bootstrap, &topic, &id);
        second.recover(std::slice::from_ref(&restored)).unwrap();
        // The source replays what followed the restored checkpoint.
        if restored.checkpoint_id == 1 {
            write(&mut second, &epoch2);
            second.pre_commit(2).unwrap();
            second.commit(2).unwrap();
        }
        write(&mut second, &epoch3);
        Sink::finish(&mut second).unwrap();

        let mut expected = [epoch1, epoch2, epoch3].concat();
        expected.sort();
        assert_eq!(
            sorted(read_committed(&bootstrap, &topic)),
            expected,
            "crash {crash}"
        );
        let redone = second.metrics().redone();
        assert_eq!(
            redone,
            if crash == "after-complete" { 100 } else { 0 },
            "crash {crash}"
        );
    }
}

/// The child side of the abort test: writes epochs, pre-commits, saves the state
/// (the "checkpoint"), and aborts inside `commit` just before the transaction commits.
#[test]
fn child_aborts_between_checkpoint_completion_and_commit() {
    let Ok(spec) = std::env::var("EDDY_KAFKA_CHILD") else {
        return; // only meaningful when started by the parent test below
    };
    let [bootstrap, topic, id, state_path]: [&str; 4] =
        spec.split('|').collect::<Vec<_>>().try_into().unwrap();
    let mut settings = sink_settings(bootstrap, topic, Delivery::ExactlyOnce);
    settings.transactional_id_prefix = Some(id.to_string());
    settings.abort_before_commit = Some(2);
    let mut sink = KafkaSink::new(settings);
    sink.connect(&subtask(0, 1)).unwrap();
    for checkpoint in 1..=2u64 {
        write(&mut sink, &values(&format!("c{checkpoint}"), 300));
        let state = sink.pre_commit(checkpoint).unwrap();
        let temporary = format!("{state_path}.tmp");
        std::fs::write(&temporary, serde_json::to_vec(&state).unwrap()).unwrap();
        std::fs::rename(&temporary, state_path).unwrap(); // checkpoint complete
        sink.commit(checkpoint).unwrap(); // aborts the process at checkpoint 2
    }
    unreachable!("the test hook should have aborted the process");
}

#[test]
fn exactly_once_survives_a_process_abort_between_checkpoint_completion_and_commit() {
    let bootstrap = broker();
    let topic = unique_topic("eo-abort");
    create_topic(&bootstrap, &topic, PARTITIONS);
    let id = unique_topic("txn");
    let dir = tempfile::tempdir().unwrap();
    let state_path = dir.path().join("state.json");
    let status = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_aborts_between_checkpoint_completion_and_commit",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(
            "EDDY_KAFKA_CHILD",
            format!("{bootstrap}|{topic}|{id}|{}", state_path.display()),
        )
        .status()
        .unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(
        status.signal(),
        Some(6),
        "the child did not abort: {status:?}"
    );
    // Checkpoint 1 committed; checkpoint 2 completed but its transaction did not.
    assert_eq!(read_committed(&bootstrap, &topic).len(), 300);
    let state: KafkaSinkState =
        serde_json::from_slice(&std::fs::read(&state_path).unwrap()).unwrap();
    assert_eq!(state.checkpoint_id, 2);
    let mut sink = exactly_once(&bootstrap, &topic, &id);
    sink.recover(std::slice::from_ref(&state)).unwrap();
    assert_eq!(sink.metrics().redone(), 300);
    // Recovering again (a crash during recovery) changes nothing.
    let mut again = exactly_once(&bootstrap, &topic, &id);
    again.recover(&[state]).unwrap();
    assert_eq!(again.metrics().redone(), 0);
    let expected = sorted([values("c1", 300), values("c2", 300)].concat());
    assert_eq!(sorted(read_committed(&bootstrap, &topic)), expected);
}

#[test]
fn exactly_once_recovery_after_a_parallelism_change_redoes_the_old_subtasks_epochs() {
    let bootstrap = broker();
    let topic = unique_topic("eo-rescale");
    create_topic(&bootstrap, &topic, PARTITIONS);
    let prefix = unique_topic("txn");
    let mut states = Vec::new();
    let mut expected = Vec::new();
    for index in 0..3 {
        let mut settings = sink_settings(&bootstrap, &topic, Delivery::ExactlyOnce);
        settings.transactional_id_prefix = Some(prefix.clone());
        let mut sink = KafkaSink::new(settings);
        sink.connect(&subtask(index, 3)).unwrap();
        let records = values(&format!("s{index}"), 40);
        write(&mut sink, &records);
        expected.extend(records);
        states.push(sink.pre_commit(7).unwrap());
        if index == 0 {
            sink.commit(7).unwrap(); // one subtask committed before the crash
        }
    }
    // Restored with one subtask: it inherits all three states.
    let mut settings = sink_settings(&bootstrap, &topic, Delivery::ExactlyOnce);
    settings.transactional_id_prefix = Some(prefix.clone());
    let mut sink = KafkaSink::new(settings);
    sink.connect(&subtask(0, 1)).unwrap();
    sink.recover(&states).unwrap();
    assert_eq!(sink.metrics().redone(), 80);
    assert_eq!(sorted(read_committed(&bootstrap, &topic)), sorted(expected));
}

#[test]
fn a_transaction_timeout_beyond_the_brokers_limit_or_the_interval_is_refused() {
    let bootstrap = broker();
    let topic = unique_topic("eo-timeout");
    create_topic(&bootstrap, &topic, 1);
    let mut settings = sink_settings(&bootstrap, &topic, Delivery::ExactlyOnce);
    settings.transaction_timeout = Duration::from_secs(3600);
    let error = KafkaSink::new(settings)
        .check_transaction_timeout()
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("transaction.max.timeout.ms (900000 ms)"),
        "{error}"
    );
    let mut settings = sink_settings(&bootstrap, &topic, Delivery::ExactlyOnce);
    settings.checkpoint_interval = Some(Duration::from_secs(60));
    let error = KafkaSink::new(settings)
        .check_transaction_timeout()
        .unwrap_err()
        .to_string();
    assert!(error.contains("twice the checkpoint interval"), "{error}");
}

#[test]
fn a_missing_topic_and_an_unreachable_broker_are_clear_errors() {
    let bootstrap = broker();
    let missing = unique_topic("missing");
    let mut sink = KafkaSink::new(sink_settings(&bootstrap, &missing, Delivery::None));
    let error = sink.open(&subtask(0, 1)).unwrap_err().to_string();
    assert!(
        error.contains(&format!("'{missing}' does not exist")),
        "{error}"
    );

    let mut client = KafkaClientSettings::new("127.0.0.1:1");
    client.broker_timeout = Duration::from_secs(2);
    let mut source = KafkaSource::<Record>::new(KafkaSourceSettings::new(
        client,
        Topics::Names(vec!["t".into()]),
        Format::Lines,
    ));
    source.open(&subtask(0, 1)).unwrap();
    let error = drain(&mut source, 1, Duration::from_secs(30))
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("unreachable") && error.contains("127.0.0.1:1"),
        "{error}"
    );
    source.close().unwrap();
}

/// The child side of the SIGKILL test: checkpoints 1..=EPOCHS, each with its own
/// records; the state of a checkpoint is saved (tmp + rename) before it commits.
const EPOCHS: u64 = 12;

fn epoch_values(checkpoint: u64) -> Vec<String> {
    values(&format!("k{checkpoint:02}"), 40)
}

#[test]
fn child_runs_checkpoints_until_killed() {
    let Ok(spec) = std::env::var("EDDY_KAFKA_KILL_CHILD") else {
        return; // only meaningful when started by the parent test below
    };
    let [bootstrap, topic, id, dir]: [&str; 4] =
        spec.split('|').collect::<Vec<_>>().try_into().unwrap();
    let mut sink = exactly_once(bootstrap, topic, id);
    for checkpoint in 1..=EPOCHS {
        write(&mut sink, &epoch_values(checkpoint));
        println!("written {checkpoint}");
        let state = sink.pre_commit(checkpoint).unwrap();
        println!("pre-committed {checkpoint}");
        let temporary = format!("{dir}/state.tmp");
        std::fs::write(&temporary, serde_json::to_vec(&state).unwrap()).unwrap();
        std::fs::rename(&temporary, format!("{dir}/state.json")).unwrap();
        println!("complete {checkpoint}");
        sink.commit(checkpoint).unwrap();
        println!("committed {checkpoint}");
    }
}

#[test]
fn exactly_once_survives_sigkill_at_random_moments() {
    use std::io::BufRead;
    let bootstrap = broker();
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let mut random = seed | 1;
    let mut next = move |bound: u64| {
        random ^= random << 13;
        random ^= random >> 7;
        random ^= random << 17;
        random % bound
    };
    let phases = ["written", "pre-committed", "complete", "committed"];
    for round in 0..4 {
        let topic = unique_topic("eo-kill");
        create_topic(&bootstrap, &topic, PARTITIONS);
        let id = unique_topic("txn");
        let dir = tempfile::tempdir().unwrap();
        let kill_at = format!(
            "{} {}",
            phases[next(phases.len() as u64) as usize],
            1 + next(EPOCHS - 1)
        );
        let delay_us = next(3000);
        let mut child = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "child_runs_checkpoints_until_killed",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(
                "EDDY_KAFKA_KILL_CHILD",
                format!("{bootstrap}|{topic}|{id}|{}", dir.path().display()),
            )
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = std::io::BufReader::new(child.stdout.take().unwrap());
        for line in stdout.lines() {
            if line.unwrap() == kill_at {
                std::thread::park_timeout(Duration::from_micros(delay_us)); // a random moment after
                break;
            }
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();

        // Restore the last completed checkpoint (if any) and replay what followed it.
        let state_path = dir.path().join("state.json");
        let restored: Option<KafkaSinkState> = std::fs::read(&state_path)
            .ok()
            .map(|bytes| serde_json::from_slice(&bytes).unwrap());
        let mut sink = exactly_once(&bootstrap, &topic, &id);
        if let Some(state) = &restored {
            sink.recover(std::slice::from_ref(state)).unwrap();
        }
        let from = restored.as_ref().map_or(1, |s| s.checkpoint_id + 1);
        for checkpoint in from..=EPOCHS {
            write(&mut sink, &epoch_values(checkpoint));
            sink.pre_commit(checkpoint).unwrap();
            sink.commit(checkpoint).unwrap();
        }
        drop(sink);
        let expected = sorted((1..=EPOCHS).flat_map(epoch_values).collect());
        assert_eq!(
            sorted(read_committed(&bootstrap, &topic)),
            expected,
            "round {round}: killed {delay_us} µs after '{kill_at}' (seed {seed})"
        );
    }
}

/// A broker of the test's own on another port (so stopping it disturbs no other
/// test), stopped when dropped.
struct OwnBroker {
    port: u16,
    run_dir: tempfile::TempDir,
}

impl OwnBroker {
    fn script(&self, args: &[&str], keep_data: bool) {
        let status =
            std::process::Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/kafka"))
                .args(args)
                .env("EDDY_KAFKA_PORT", self.port.to_string())
                .env("EDDY_KAFKA_RUN_DIR", self.run_dir.path())
                .env("EDDY_KAFKA_KEEP_DATA", if keep_data { "1" } else { "0" })
                .status()
                .unwrap();
        assert!(status.success(), "scripts/kafka {args:?} failed");
    }

    fn start() -> Self {
        let broker = OwnBroker {
            port: 19392,
            run_dir: tempfile::tempdir().unwrap(),
        };
        broker.script(&["start"], false);
        broker
    }

    fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for OwnBroker {
    fn drop(&mut self) {
        self.script(&["stop"], true);
    }
}

/// Polls `source` for `span` (an outage the test imposes), expecting no error.
fn poll_through(source: &mut KafkaSource, span: Duration) -> Vec<String> {
    let until = std::time::Instant::now() + span;
    let mut got = Vec::new();
    while std::time::Instant::now() < until {
        got.extend(poll_once(source));
        std::thread::park_timeout(Duration::from_millis(20));
    }
    got
}

#[test]
fn a_broker_away_for_ten_seconds_loses_nothing_and_past_the_timeout_fails_clearly() {
    broker(); // the shared broker is not used, but its absence means no Java/Kafka
    let own = OwnBroker::start();
    let bootstrap = own.bootstrap();
    let input = values("o", 1000);
    let topic = topic_with(&bootstrap, "outage-in", &input);
    let output = unique_topic("outage-out");
    create_topic(&bootstrap, &output, PARTITIONS);

    let mut source = KafkaSource::<Record>::new(source_settings(&bootstrap, &topic));
    source.open(&subtask(0, 1)).unwrap();
    let mut read = drain(&mut source, 600, Duration::from_secs(60)).unwrap();
    let mut short_client = KafkaClientSettings::new(&bootstrap);
    short_client.broker_timeout = Duration::from_secs(3);
    let mut short_source = KafkaSource::<Record>::new({
        let mut settings = source_settings(&bootstrap, &topic);
        settings.client = short_client.clone();
        settings
    });
    short_source.open(&subtask(0, 1)).unwrap();
    assert_eq!(
        drain(&mut short_source, 1000, Duration::from_secs(60))
            .unwrap()
            .len(),
        1000
    );
    let mut sink = KafkaSink::new(sink_settings(&bootstrap, &output, Delivery::AtLeastOnce));
    sink.open(&subtask(0, 1)).unwrap();
    let written = values("w", 400);
    write(&mut sink, &written[..200]);
    sink.pre_commit(1).unwrap();

    own.script(&["stop"], true);
    // The broker is away: the sink queues, the source waits and retries.
    write(&mut sink, &written[200..]);
    read.extend(poll_through(&mut source, Duration::from_secs(10)));
    // Past its 3 s timeout the short source has failed, naming the broker.
    let until = Instant::now() + Duration::from_secs(60);
    let error = loop {
        match short_source.poll_next(&mut SourceOutput::new(&mut Batch::new(), 16)) {
            Err(error) => break error.to_string(),
            Ok(_) => {
                assert!(
                    Instant::now() < until,
                    "the source with a 3 s broker timeout did not fail within 60 s"
                );
                std::thread::park_timeout(Duration::from_millis(20))
            }
        }
    };
    assert!(
        error.contains("unreachable") && error.contains(&bootstrap),
        "{error}"
    );
    short_source.close().unwrap();
    let mut short_sink = KafkaSink::new({
        let mut settings = sink_settings(&bootstrap, &output, Delivery::AtLeastOnce);
        settings.client = short_client;
        settings
    });
    let open_error = short_sink.open(&subtask(0, 1)).unwrap_err().to_string();
    assert!(open_error.contains("unreachable"), "{open_error}");

    own.script(&["start"], true);
    read.extend(drain(&mut source, 1000 - read.len(), Duration::from_secs(120)).unwrap());
    assert_eq!(sorted(read), input);
    source.close().unwrap();
    sink.pre_commit(2).unwrap();
    Sink::finish(&mut sink).unwrap();
    assert_eq!(sorted(read_committed(&bootstrap, &output)), written);
}
