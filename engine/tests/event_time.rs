//! Event time end to end: timestamps assigned after a parallel source travel with their
//! records through a hash exchange; watermarks travel in-band, each operator with
//! several inputs forwards the minimum, so a sink never sees a record at or below a
//! watermark it already received when the input's disorder is within the strategy's
//! bound; watermarks only grow, and the end of input brings `Timestamp::MAX`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use eddy_engine::prelude::*;
use proptest::prelude::*;

#[derive(Debug, Clone, PartialEq)]
enum Seen {
    Record(u64, Timestamp),
    Watermark(Timestamp),
}

/// Records what the sink subtask receives, records and watermarks in arrival order.
#[derive(Clone)]
struct Recorder(Arc<Mutex<Vec<Seen>>>);

impl Sink<(u64, i64)> for Recorder {
    fn write(&mut self, _record: (u64, i64)) -> Result<(), ConnectorError> {
        unreachable!("write_batch is overridden")
    }

    fn write_batch(&mut self, batch: &mut Batch<(u64, i64)>) -> Result<(), ConnectorError> {
        let mut seen = self.0.lock().unwrap();
        for ((key, event_time), timestamp) in batch.drain() {
            assert_eq!(
                event_time, timestamp,
                "the record's timestamp travels with it"
            );
            seen.push(Seen::Record(key, timestamp));
        }
        Ok(())
    }

    fn on_watermark(&mut self, watermark: Timestamp) -> Result<(), ConnectorError> {
        self.0.lock().unwrap().push(Seen::Watermark(watermark));
        Ok(())
    }
}

/// Each subtask emits its share of event times, shuffled within `disorder_ms`.
#[derive(Clone)]
struct DisorderedSource {
    events: Arc<Vec<(u64, i64)>>,
    next: usize,
    step: usize,
}

impl Source<(u64, i64)> for DisorderedSource {
    fn open(&mut self, subtask: &SubtaskInfo) -> Result<(), ConnectorError> {
        self.next = subtask.index;
        self.step = subtask.parallelism;
        Ok(())
    }

    fn poll_next(
        &mut self,
        out: &mut SourceOutput<'_, (u64, i64)>,
    ) -> Result<SourceStatus, ConnectorError> {
        while out.remaining() > 0 {
            let Some(&event) = self.events.get(self.next) else {
                return Ok(SourceStatus::Finished);
            };
            out.emit(event);
            self.next += self.step;
        }
        Ok(SourceStatus::Ready)
    }
}

/// Event times 0, 10, 20, … each moved back by up to `disorder_ms` (a permutation that
/// stays within the bound).
fn disordered(count: usize, disorder_ms: i64, seed: u64) -> Vec<(u64, i64)> {
    let mut state = seed | 1;
    (0..count)
        .map(|i| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let back = (state % (disorder_ms as u64 + 1)) as i64;
            ((state >> 8) % 5, (i as i64 * 10 - back).max(0))
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]

    #[test]
    fn no_record_is_behind_a_watermark_it_follows(
        count in 0usize..400,
        source_parallelism in 1usize..=3,
        keyed_parallelism in 1usize..=3,
        buffer_size in 1usize..64,
        seed in any::<u64>(),
    ) {
        let disorder_ms = 35;
        let events = disordered(count, disorder_ms, seed);
        let env = Env::new(JobConfig {
            parallelism: Some(keyed_parallelism),
            buffer: BufferConfig { size: buffer_size, timeout: Duration::from_micros(200), count: 4 },
            ..JobConfig::default()
        });
        let seen = Arc::new(Mutex::new(Vec::new()));
        // Each source subtask's slice stays within the disorder bound; the assigner runs
        // chained to it (same parallelism), and the keyed operator takes the minimum.
        env.add_source(
            "disordered",
            DisorderedSource { events: Arc::new(events.clone()), next: 0, step: 1 },
            Boundedness::Bounded,
        )
        .set_parallelism(source_parallelism)
        .assign_timestamps_and_watermarks(
            WatermarkStrategy::for_bounded_out_of_orderness(Duration::from_millis(disorder_ms as u64))
                .with_timestamp_assigner(|(_, event_time): &(u64, i64)| *event_time),
        )
        .set_parallelism(source_parallelism)
        .key_by(|(key, _): &(u64, i64)| *key)
        .process(|record: (u64, i64), _ctx: &mut KeyedContext<'_, u64, ()>, out| out.collect(record))
        .sink(Recorder(Arc::clone(&seen)))
        .set_parallelism(1);
        env.execute().unwrap();

        let seen = seen.lock().unwrap();
        let mut watermark = Timestamp::MIN;
        let mut records = Vec::new();
        for event in seen.iter() {
            match *event {
                Seen::Watermark(w) => {
                    prop_assert!(w > watermark, "watermarks grow: {} after {}", w, watermark);
                    watermark = w;
                }
                Seen::Record(key, t) => {
                    prop_assert!(t > watermark, "record at {} after watermark {}", t, watermark);
                    records.push((key, t));
                }
            }
        }
        prop_assert_eq!(watermark, Timestamp::MAX);
        let mut expected = events.clone();
        expected.sort();
        records.sort();
        prop_assert_eq!(records, expected);
    }
}

const DEAD: OutputTag<BadRecord<String>> = OutputTag::new("dead-letters");

#[allow(clippy::ptr_arg)] // the assigner gets `&T` with `T = String`
fn parse_time(line: &String) -> Result<i64, std::num::ParseIntError> {
    line.split(',').nth(1).unwrap_or("").trim().parse()
}

#[test]
fn bad_timestamps_go_to_the_dead_letters_with_reason_and_position() {
    let lines: Vec<String> = vec![
        "a,10".into(),
        "b,oops".into(),
        "c,20".into(),
        "d".into(),
        format!("e,{}", i64::MAX / 2),
        "f,30".into(),
    ];
    let env = Env::new(JobConfig {
        parallelism: Some(2),
        ..JobConfig::default()
    });
    let timed = env
        .from_iter(lines)
        .assign_timestamps_and_watermarks(
            WatermarkStrategy::for_monotonous_timestamps()
                .with_fallible_timestamp_assigner(parse_time)
                .with_dead_letters(DEAD),
        )
        .set_parallelism(1);
    let good = timed.collect_vec();
    let dead = timed.side_output(&DEAD).collect_vec();
    env.execute().unwrap();
    let mut good = good.take();
    good.sort();
    assert_eq!(good, vec!["a,10", "c,20", "f,30"]);
    let mut dead = dead.take();
    dead.sort_by_key(|bad| bad.offset);
    let summary: Vec<(String, u64, bool)> = dead
        .iter()
        .map(|bad| {
            (
                bad.record.clone(),
                bad.offset,
                bad.operator.contains("timestamps_watermarks"),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            ("b,oops".into(), 1, true),
            ("d".into(), 3, true),
            (format!("e,{}", i64::MAX / 2), 4, true)
        ]
    );
    assert!(
        dead[0].reason.contains("cannot extract the timestamp"),
        "{}",
        dead[0].reason
    );
    assert!(
        dead[2].reason.contains("out of range"),
        "{}",
        dead[2].reason
    );
}

#[test]
fn without_dead_letters_a_bad_timestamp_fails_the_job_with_its_position() {
    let env = Env::new(JobConfig {
        parallelism: Some(1),
        ..JobConfig::default()
    });
    let _ = env
        .from_iter(vec!["a,1".to_string(), "b,x".to_string()])
        .assign_timestamps_and_watermarks(
            WatermarkStrategy::for_monotonous_timestamps()
                .with_fallible_timestamp_assigner(parse_time),
        )
        .collect_vec();
    match env.execute() {
        Err(EngineError::TaskFailed { reason, .. }) => {
            assert!(reason.contains("offset 1"), "{reason}");
            assert!(reason.contains("cannot extract the timestamp"), "{reason}");
        }
        other => panic!("expected the job to fail, got {other:?}"),
    }
}
