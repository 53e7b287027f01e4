//! Windows through the public API, compared with a plain sequential evaluation of
//! Flink's window semantics written independently here: tumbling, sliding and session
//! windows in event time (keyed and `window_all`, every window function), global
//! windows with a custom trigger, count windows, allowed lateness with late records in
//! a side output, and processing-time windows driven by a manual clock. Each runs over
//! random events with bounded disorder, random parallelism and buffer settings, in
//! STREAMING and BATCH mode (end of input = watermark +∞).

// The OS clock is read only for test deadlines (a hung job fails the test).
#![allow(clippy::disallowed_methods)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use eddy_engine::prelude::*;
use eddy_engine::window::WindowAssigner;
use proptest::prelude::*;

/// An event: (key, event time, value, count = 1; reduce sums the counts).
type Event = (u8, i64, i64, u64);

/// What a window emitted, normalised over the window functions: key, the record's
/// timestamp (the window's max timestamp), the window start (if the function can see
/// it), number of records, sum of values.
type Row = (u8, Timestamp, Option<i64>, u64, i64);

/// Records what reaches the sink, with timestamps.
#[derive(Clone)]
struct Recorder<T>(Arc<Mutex<Vec<(T, Timestamp)>>>);

impl<T> Recorder<T> {
    fn new() -> Self {
        Recorder(Arc::new(Mutex::new(Vec::new())))
    }
    fn take(&self) -> Vec<(T, Timestamp)> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

impl<T: Send + 'static> Sink<T> for Recorder<T> {
    fn write(&mut self, record: T) -> Result<(), ConnectorError> {
        self.0.lock().unwrap().push((record, NO_TIMESTAMP));
        Ok(())
    }
    fn write_batch(&mut self, batch: &mut Batch<T>) -> Result<(), ConnectorError> {
        self.0.lock().unwrap().extend(batch.drain());
        Ok(())
    }
}

/// (count, sum) of values, as an incremental aggregate.
#[derive(Clone)]
struct CountSum;

impl AggregateFunction for CountSum {
    type Input = Event;
    type Accumulator = (u8, u64, i64);
    type Output = (u8, u64, i64);
    fn create_accumulator(&self) -> Self::Accumulator {
        (0, 0, 0)
    }
    fn add(&self, (key, _, value, _): Self::Input, accumulator: &mut Self::Accumulator) {
        *accumulator = (key, accumulator.1 + 1, accumulator.2 + value);
    }
    fn get_result(&self, accumulator: &Self::Accumulator) -> Self::Output {
        *accumulator
    }
    fn merge(&self, accumulator: &mut Self::Accumulator, other: Self::Accumulator) {
        accumulator.0 = other.0;
        accumulator.1 += other.1;
        accumulator.2 += other.2;
    }
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    Tumbling { size: i64, offset: i64 },
    Sliding { size: i64, slide: i64, offset: i64 },
    Session { gap: i64 },
}

fn kind() -> impl Strategy<Value = Kind> {
    prop_oneof![
        (1i64..40, -50i64..50).prop_map(|(size, offset)| Kind::Tumbling { size, offset }),
        (1i64..40, 1i64..25, -50i64..50).prop_map(|(size, slide, offset)| Kind::Sliding {
            size,
            slide,
            offset
        }),
        (1i64..30).prop_map(|gap| Kind::Session { gap }),
    ]
}

/// The windows `[start, end)` holding `t`, straight from the definitions.
fn reference_windows(kind: Kind, t: i64) -> Vec<(i64, i64)> {
    match kind {
        Kind::Tumbling { size, offset } => {
            let start = t - (t - offset % size).rem_euclid(size);
            vec![(start, start + size)]
        }
        Kind::Sliding {
            size,
            slide,
            offset,
        } => {
            let latest = t - (t - offset % slide).rem_euclid(slide);
            (0..)
                .map(|k| latest - k * slide)
                .take_while(|start| start + size > t)
                .map(|start| (start, start + size))
                .collect()
        }
        Kind::Session { gap } => vec![(t, t + gap)],
    }
}

/// Every window of every key when all records are on time: (key, start, end) →
/// (count, sum).
fn reference_all_windows(kind: Kind, events: &[Event]) -> BTreeMap<(u8, i64, i64), (u64, i64)> {
    let mut windows = BTreeMap::new();
    let mut per_key: BTreeMap<u8, Vec<(i64, i64)>> = BTreeMap::new();
    for &(key, t, value, _) in events {
        per_key.entry(key).or_default().push((t, value));
    }
    for (key, mut records) in per_key {
        if let Kind::Session { gap } = kind {
            records.sort();
            let mut current: Option<(i64, i64, u64, i64)> = None;
            for (t, value) in records {
                current = match current {
                    Some((start, end, count, sum)) if t <= end => {
                        Some((start, end.max(t + gap), count + 1, sum + value))
                    }
                    other => {
                        if let Some((start, end, count, sum)) = other {
                            windows.insert((key, start, end), (count, sum));
                        }
                        Some((t, t + gap, 1, value))
                    }
                };
            }
            if let Some((start, end, count, sum)) = current {
                windows.insert((key, start, end), (count, sum));
            }
        } else {
            for (t, value) in records {
                for (start, end) in reference_windows(kind, t) {
                    let entry = windows.entry((key, start, end)).or_insert((0, 0));
                    entry.0 += 1;
                    entry.1 += value;
                }
            }
        }
    }
    windows
}

#[derive(Debug, Clone, Copy)]
enum Function {
    Reduce,
    Aggregate,
    Process,
    AggregateWith,
}

fn function() -> impl Strategy<Value = Function> {
    prop_oneof![
        Just(Function::Reduce),
        Just(Function::Aggregate),
        Just(Function::Process),
        Just(Function::AggregateWith),
    ]
}

/// What the window functions emit: key, window start (if the function sees it), count,
/// sum.
type Emitted = (u8, Option<i64>, u64, i64);

/// Applies `function`; every variant emits [`Emitted`] rows.
fn apply<K, KS, A>(
    windowed: WindowedStream<Event, K, KS, A, A::Trigger>,
    function: Function,
) -> DataStream<Emitted>
where
    K: eddy_engine::api::Key,
    KS: Fn(&Event) -> K + Clone + Send + Sync + 'static,
    A: WindowAssigner<Event, Window = TimeWindow>,
{
    match function {
        Function::Reduce => windowed
            .reduce(|a, b| (a.0, a.1.max(b.1), a.2 + b.2, a.3 + b.3))
            .map(|(key, _, sum, count): Event| (key, None, count, sum)),
        Function::Aggregate => windowed
            .aggregate(CountSum)
            .map(|(key, count, sum): (u8, u64, i64)| (key, None, count, sum)),
        Function::Process => windowed.process(
            |_key: &K,
             ctx: &WindowContext<'_, TimeWindow>,
             records: &[Event],
             out: &mut Collector<'_, Emitted>| {
                let window = ctx.window();
                assert!(records
                    .iter()
                    .all(|r| window.start <= r.1 && r.1 < window.end));
                let sum = records.iter().map(|r| r.2).sum();
                out.collect((records[0].0, Some(window.start), records.len() as u64, sum));
            },
        ),
        Function::AggregateWith => windowed.aggregate_with(
            CountSum,
            |_key: &K,
             ctx: &WindowContext<'_, TimeWindow>,
             results: &[(u8, u64, i64)],
             out: &mut Collector<'_, Emitted>| {
                assert_eq!(results.len(), 1);
                let (key, count, sum) = results[0];
                out.collect((key, Some(ctx.window().start), count, sum));
            },
        ),
    }
}

fn event_key(event: &Event) -> u8 {
    event.0
}

fn windowed<A>(
    input: &DataStream<Event>,
    assigner: A,
    non_keyed: bool,
    function: Function,
) -> DataStream<Emitted>
where
    A: WindowAssigner<Event, Window = TimeWindow>,
{
    if non_keyed {
        apply(input.window_all(assigner), function)
    } else {
        apply(
            input.key_by(event_key as fn(&Event) -> u8).window(assigner),
            function,
        )
    }
}

fn time_windows(
    input: &DataStream<Event>,
    kind: Kind,
    non_keyed: bool,
    function: Function,
) -> DataStream<Emitted> {
    let ms = |v: i64| Duration::from_millis(v as u64);
    match kind {
        Kind::Tumbling { size, offset } => windowed(
            input,
            TumblingEventTimeWindows::of(ms(size)).with_offset_ms(offset),
            non_keyed,
            function,
        ),
        Kind::Sliding {
            size,
            slide,
            offset,
        } => windowed(
            input,
            SlidingEventTimeWindows::of(ms(size), ms(slide)).with_offset_ms(offset),
            non_keyed,
            function,
        ),
        Kind::Session { gap } => windowed(
            input,
            EventTimeSessionWindows::with_gap(ms(gap)),
            non_keyed,
            function,
        ),
    }
}

/// Each source subtask emits every `parallelism`-th event.
#[derive(Clone)]
struct Slices {
    events: Arc<Vec<Event>>,
    next: usize,
    step: usize,
}

impl Source<Event> for Slices {
    fn open(&mut self, subtask: &SubtaskInfo) -> Result<(), ConnectorError> {
        self.next = subtask.index;
        self.step = subtask.parallelism;
        Ok(())
    }

    fn poll_next(
        &mut self,
        out: &mut SourceOutput<'_, Event>,
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

/// Events at 0, 3, 6, … each moved back by up to `disorder`: any event is at most
/// `disorder` behind any earlier one, so none is late for a watermark lagging by it.
fn disordered(steps: &[(u8, i64, i64)], disorder: i64) -> Vec<Event> {
    steps
        .iter()
        .enumerate()
        .map(|(i, &(key, back, value))| {
            (key, (i as i64 * 3 - back % (disorder + 1)).max(0), value, 1)
        })
        .collect()
}

fn config(parallelism: usize, buffer_size: usize, batch: bool) -> JobConfig {
    JobConfig {
        parallelism: Some(parallelism),
        mode: if batch { Mode::Batch } else { Mode::Streaming },
        buffer: BufferConfig {
            size: buffer_size,
            timeout: Duration::from_micros(100),
            count: 4,
        },
        ..JobConfig::default()
    }
}

/// The events with timestamps and watermarks (bounded out-of-orderness `disorder`),
/// from a non-parallel source (`source_parallelism == 0`) or a parallel one.
fn timestamped(
    env: &Env,
    events: &[Event],
    disorder: i64,
    source_parallelism: usize,
) -> DataStream<Event> {
    let strategy =
        WatermarkStrategy::for_bounded_out_of_orderness(Duration::from_millis(disorder as u64))
            .with_timestamp_assigner(|e: &Event| e.1);
    if source_parallelism == 0 {
        env.from_iter(events.to_vec())
            .assign_timestamps_and_watermarks(strategy)
            .set_parallelism(1)
    } else {
        env.add_source(
            "slices",
            Slices {
                events: Arc::new(events.to_vec()),
                next: 0,
                step: 1,
            },
            Boundedness::Bounded,
        )
        .set_parallelism(source_parallelism)
        .assign_timestamps_and_watermarks(strategy)
        .set_parallelism(source_parallelism)
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Tumbling, sliding and session windows in event time, keyed or `window_all`, with
    /// every window function; no record is late (disorder within the watermark's
    /// bound), so every window fires exactly once with all its records.
    #[test]
    fn time_windows_match_a_sequential_reference(
        kind in kind(),
        function in function(),
        non_keyed in any::<bool>(),
        steps in proptest::collection::vec((0u8..4, 0i64..100, -20i64..100), 0..150),
        source_parallelism in 0usize..=3,
        parallelism in 1usize..=3,
        buffer_size in 1usize..48,
        batch in any::<bool>(),
    ) {
        let disorder = 20;
        let events = disordered(&steps, disorder);
        let env = Env::new(config(parallelism, buffer_size, batch));
        let input = timestamped(&env, &events, disorder, source_parallelism);
        let recorder = Recorder::<Emitted>::new();
        time_windows(&input, kind, non_keyed, function).sink(recorder.clone()).set_parallelism(2);
        env.execute().unwrap();

        let with_start = matches!(function, Function::Process | Function::AggregateWith);
        // window_all's reduce and aggregate report some record's key: compare without it.
        let keep_key = !non_keyed;
        let mut actual: Vec<Row> = recorder
            .take()
            .into_iter()
            .map(|((key, start, count, sum), timestamp)| (if keep_key { key } else { 0 }, timestamp, start, count, sum))
            .collect();
        actual.sort();
        let normalised: Vec<Event> = events
            .iter()
            .map(|&(key, t, value, count)| (if keep_key { key } else { 0 }, t, value, count))
            .collect();
        let mut expected: Vec<Row> = reference_all_windows(kind, &normalised)
            .into_iter()
            .map(|((key, start, end), (count, sum))| (key, end - 1, with_start.then_some(start), count, sum))
            .collect();
        expected.sort();
        prop_assert_eq!(actual, expected);
    }
}
