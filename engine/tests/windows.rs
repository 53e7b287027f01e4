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

use eddy_engine::clock::ManualClock;
use eddy_engine::config::IdleConfig;
use eddy_engine::prelude::*;
use eddy_engine::window::{GlobalWindow, TriggerContext, WindowAssigner};
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
    K: eddy_engine::api::Key + StateData,
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

/// In BATCH mode the windows read their input sorted by key through blocking exchanges
/// (one key's windows at a time), under the smallest memory budget; spilling at scale is
/// tested in `blocking.rs`.
fn config(parallelism: usize, buffer_size: usize, batch: bool) -> JobConfig {
    JobConfig {
        parallelism: Some(parallelism),
        mode: if batch { Mode::Batch } else { Mode::Streaming },
        memory_budget_bytes: 1 << 20,
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

/// One step of a scripted source: a record (with its timestamp) or a watermark.
#[derive(Debug, Clone, Copy)]
enum Step {
    Record(Event),
    Watermark(Timestamp),
}

/// A non-parallel source emitting records and watermarks exactly where the script
/// puts them (a watermark ends the poll, so it follows exactly the records before it).
#[derive(Clone)]
struct Script {
    steps: Arc<Vec<Step>>,
    next: usize,
}

impl Source<Event> for Script {
    fn poll_next(
        &mut self,
        out: &mut SourceOutput<'_, Event>,
    ) -> Result<SourceStatus, ConnectorError> {
        while out.remaining() > 0 {
            let Some(&step) = self.steps.get(self.next) else {
                return Ok(SourceStatus::Finished);
            };
            self.next += 1;
            match step {
                Step::Record(event) => out.emit_at(event, event.1),
                Step::Watermark(watermark) => {
                    out.emit_watermark(watermark);
                    return Ok(SourceStatus::Ready);
                }
            }
        }
        Ok(SourceStatus::Ready)
    }
}

/// Records around 0, 3, 6, … moved back by up to 60 ms, watermarks that lag the
/// largest timestamp by 0–30 ms: many records are late, some beyond the lateness.
fn script(raw: &[(bool, u8, i64, i64)]) -> Vec<Step> {
    let mut watermark = Timestamp::MIN;
    let mut max = 0;
    raw.iter()
        .enumerate()
        .map(|(i, &(is_watermark, key, back, value))| {
            if is_watermark {
                watermark = watermark.max(max - back % 31);
                Step::Watermark(watermark)
            } else {
                let t = (i as i64 * 3 - back).max(0);
                max = max.max(t);
                Step::Record((key, t, value, 1))
            }
        })
        .collect()
}

struct RefWindow {
    start: i64,
    end: i64,
    records: Vec<i64>,
}

impl RefWindow {
    fn row(&self, key: u8) -> Row {
        let sum = self.records.iter().sum();
        (
            key,
            self.end - 1,
            Some(self.start),
            self.records.len() as u64,
            sum,
        )
    }
}

/// Flink's event-time windows with allowed lateness, evaluated step by step: a window
/// fires when the watermark passes its max timestamp, again for every record added
/// after that, and is dropped once the watermark passes max timestamp + lateness; a
/// record no window takes and that is later than the lateness is late data. BATCH
/// ignores watermarks until the end.
fn reference_lateness(
    kind: Kind,
    lateness: i64,
    steps: &[Step],
    batch: bool,
) -> (Vec<Row>, Vec<Event>) {
    let mut watermark = Timestamp::MIN;
    let mut windows: BTreeMap<u8, Vec<RefWindow>> = BTreeMap::new();
    let (mut fired, mut late) = (Vec::new(), Vec::new());
    for &step in steps {
        match step {
            Step::Record(event @ (key, t, value, _)) => {
                let open = windows.entry(key).or_default();
                let mut taken = false;
                if let Kind::Session { gap } = kind {
                    let (mut start, mut end) = (t, t + gap);
                    for w in open.iter() {
                        if w.start <= t + gap && w.end >= t {
                            start = start.min(w.start);
                            end = end.max(w.end);
                        }
                    }
                    if end - 1 + lateness > watermark {
                        taken = true;
                        let mut records = vec![value];
                        open.retain_mut(|w| {
                            let merged = w.start <= t + gap && w.end >= t;
                            if merged {
                                records.append(&mut w.records);
                            }
                            !merged
                        });
                        let window = RefWindow {
                            start,
                            end,
                            records,
                        };
                        if end - 1 <= watermark {
                            fired.push(window.row(key));
                        }
                        open.push(window);
                    }
                } else {
                    for (start, end) in reference_windows(kind, t) {
                        if end - 1 + lateness <= watermark {
                            continue;
                        }
                        taken = true;
                        let index = match open.iter().position(|w| w.start == start && w.end == end)
                        {
                            Some(index) => index,
                            None => {
                                open.push(RefWindow {
                                    start,
                                    end,
                                    records: Vec::new(),
                                });
                                open.len() - 1
                            }
                        };
                        open[index].records.push(value);
                        if end - 1 <= watermark {
                            fired.push(open[index].row(key));
                        }
                    }
                }
                if !taken && t + lateness <= watermark {
                    late.push(event);
                }
            }
            Step::Watermark(next) => {
                if batch || next <= watermark {
                    continue;
                }
                for (&key, open) in windows.iter_mut() {
                    for w in open.iter() {
                        if w.end - 1 > watermark && w.end - 1 <= next {
                            fired.push(w.row(key));
                        }
                    }
                    open.retain(|w| w.end - 1 + lateness > next);
                }
                watermark = next;
            }
        }
    }
    for (&key, open) in &windows {
        for w in open.iter().filter(|w| w.end - 1 > watermark) {
            fired.push(w.row(key));
        }
    }
    fired.sort();
    late.sort();
    (fired, late)
}

const LATE: OutputTag<Event> = OutputTag::new("late");

fn late_windows<A>(input: &DataStream<Event>, assigner: A, lateness: i64) -> DataStream<Emitted>
where
    A: WindowAssigner<Event, Window = TimeWindow>,
{
    input
        .key_by(event_key as fn(&Event) -> u8)
        .window(assigner)
        .allowed_lateness(Duration::from_millis(lateness as u64))
        .side_output_late_data(LATE)
        .process(
            |key: &u8,
             ctx: &WindowContext<'_, TimeWindow>,
             records: &[Event],
             out: &mut Collector<'_, Emitted>| {
                let sum = records.iter().map(|r| r.2).sum();
                out.collect((*key, Some(ctx.window().start), records.len() as u64, sum));
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Allowed lateness and the late-data side output, with watermarks exactly where a
    /// script puts them (so that lateness is deterministic at any parallelism).
    #[test]
    fn late_records_refire_windows_or_reach_the_late_side_output(
        kind in kind(),
        lateness in prop_oneof![Just(0i64), 1i64..40],
        raw in proptest::collection::vec((proptest::bool::weighted(0.2), 0u8..4, 0i64..60, -20i64..100), 0..150),
        parallelism in 1usize..=3,
        buffer_size in 1usize..48,
        batch in any::<bool>(),
    ) {
        let steps = script(&raw);
        let env = Env::new(config(parallelism, buffer_size, batch));
        let input = env
            .add_source("script", Script { steps: Arc::new(steps.clone()), next: 0 }, Boundedness::Bounded)
            .set_parallelism(1);
        let ms = |v: i64| Duration::from_millis(v as u64);
        let results = match kind {
            Kind::Tumbling { size, offset } => late_windows(&input, TumblingEventTimeWindows::of(ms(size)).with_offset_ms(offset), lateness),
            Kind::Sliding { size, slide, offset } => late_windows(&input, SlidingEventTimeWindows::of(ms(size), ms(slide)).with_offset_ms(offset), lateness),
            Kind::Session { gap } => late_windows(&input, EventTimeSessionWindows::with_gap(ms(gap)), lateness),
        };
        let fired = Recorder::<Emitted>::new();
        let late = Recorder::<Event>::new();
        results.sink(fired.clone()).set_parallelism(1);
        results.side_output(&LATE).sink(late.clone()).set_parallelism(2);
        env.execute().unwrap();

        let mut actual: Vec<Row> = fired
            .take()
            .into_iter()
            .map(|((key, start, count, sum), timestamp)| (key, timestamp, start, count, sum))
            .collect();
        actual.sort();
        let mut actual_late = Vec::new();
        for (event, timestamp) in late.take() {
            prop_assert_eq!(event.1, timestamp, "late records keep their timestamp");
            actual_late.push(event);
        }
        actual_late.sort();
        let (expected, expected_late) = reference_lateness(kind, lateness, &steps, batch);
        prop_assert_eq!(actual, expected);
        prop_assert_eq!(actual_late, expected_late);
    }
}

/// A user trigger for global windows: fires every third record, fires and purges on a
/// value divisible by 7, and fires and purges what is left at the end of input (an
/// event-time timer at +∞).
#[derive(Clone)]
struct ThirdsAndSevens;

impl Trigger<Event, GlobalWindow> for ThirdsAndSevens {
    type State = u32;

    fn on_element(
        &self,
        element: &Event,
        _timestamp: Timestamp,
        _window: &GlobalWindow,
        count: &mut u32,
        ctx: &mut TriggerContext<'_>,
    ) -> TriggerResult {
        ctx.register_event_time_timer(Timestamp::MAX);
        *count += 1;
        if element.2 % 7 == 0 {
            *count = 0;
            TriggerResult::FireAndPurge
        } else if *count % 3 == 0 {
            TriggerResult::Fire
        } else {
            TriggerResult::Continue
        }
    }

    fn on_event_time(
        &self,
        _time: Timestamp,
        _window: &GlobalWindow,
        _count: &mut u32,
        _ctx: &mut TriggerContext<'_>,
    ) -> TriggerResult {
        TriggerResult::FireAndPurge
    }

    fn on_processing_time(
        &self,
        _time: i64,
        _window: &GlobalWindow,
        _count: &mut u32,
        _ctx: &mut TriggerContext<'_>,
    ) -> TriggerResult {
        TriggerResult::Continue
    }
}

#[derive(Debug, Clone, Copy)]
enum Counting {
    Tumbling(u64),
    Sliding(u64, u64),
    Custom,
}

/// What a count/global window emits: key, count, sum, first and last value (the order
/// and the eviction matter).
type Counted = (u8, u64, i64, i64, i64);

fn counted<W>(
    key: &u8,
    _ctx: &WindowContext<'_, W>,
    records: &[Event],
    out: &mut Collector<'_, Counted>,
) {
    let sum = records.iter().map(|r| r.2).sum();
    out.collect((
        *key,
        records.len() as u64,
        sum,
        records[0].2,
        records[records.len() - 1].2,
    ));
}

/// Count and custom-trigger global windows, record by record per key.
fn reference_counting(counting: Counting, events: &[Event]) -> Vec<Counted> {
    let mut out = Vec::new();
    let mut state: BTreeMap<u8, (Vec<i64>, u64)> = BTreeMap::new();
    let row = |key: u8, values: &[i64]| {
        (
            key,
            values.len() as u64,
            values.iter().sum(),
            values[0],
            values[values.len() - 1],
        )
    };
    for &(key, _, value, _) in events {
        let (values, count) = state.entry(key).or_default();
        values.push(value);
        *count += 1;
        match counting {
            Counting::Tumbling(size) => {
                if *count == size {
                    out.push(row(key, values));
                    values.clear();
                    *count = 0;
                }
            }
            Counting::Sliding(size, slide) => {
                if *count == slide {
                    *count = 0;
                    let keep = values.len().saturating_sub(size as usize);
                    values.drain(..keep);
                    out.push(row(key, values));
                }
            }
            Counting::Custom => {
                if value % 7 == 0 {
                    out.push(row(key, values));
                    values.clear();
                    *count = 0;
                } else if *count % 3 == 0 {
                    out.push(row(key, values));
                }
            }
        }
    }
    if let Counting::Custom = counting {
        for (&key, (values, _)) in &state {
            if !values.is_empty() {
                out.push(row(key, values));
            }
        }
    }
    out.sort();
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Count windows (tumbling and sliding, as Flink's `countWindow`) and global windows
    /// with a user trigger, keyed; records of a key keep their order (non-parallel
    /// source), so order-sensitive results (first/last record, eviction) must match.
    #[test]
    fn count_and_global_windows_match_a_sequential_reference(
        counting in prop_oneof![
            (1u64..6).prop_map(Counting::Tumbling),
            (1u64..6, 1u64..4).prop_map(|(size, slide)| Counting::Sliding(size, slide)),
            Just(Counting::Custom),
        ],
        values in proptest::collection::vec((0u8..4, -30i64..100), 0..150),
        parallelism in 1usize..=3,
        buffer_size in 1usize..48,
        batch in any::<bool>(),
    ) {
        let events: Vec<Event> = values.iter().enumerate().map(|(i, &(key, value))| (key, i as i64, value, 1)).collect();
        let env = Env::new(config(parallelism, buffer_size, batch));
        let keyed = env.from_iter(events.clone()).key_by(event_key as fn(&Event) -> u8);
        let results = match counting {
            Counting::Tumbling(size) => keyed.count_window(size).process(counted),
            Counting::Sliding(size, slide) => keyed.count_window_slide(size, slide).process(counted),
            Counting::Custom => keyed.window(GlobalWindows::create()).trigger(ThirdsAndSevens).process(counted),
        };
        let recorder = Recorder::<Counted>::new();
        results.sink(recorder.clone()).set_parallelism(2);
        env.execute().unwrap();
        let mut actual = Vec::new();
        for (row, timestamp) in recorder.take() {
            prop_assert_eq!(timestamp, Timestamp::MAX, "a global window's max timestamp");
            actual.push(row);
        }
        actual.sort();
        prop_assert_eq!(actual, reference_counting(counting, &events));
    }
}

/// Fires on every record too (on top of `Tr`), so that the test knows when a record
/// was processed before it moves the clock.
#[derive(Clone)]
struct AckEveryRecord<Tr>(Tr);

impl<Tr: Trigger<Event, TimeWindow>> Trigger<Event, TimeWindow> for AckEveryRecord<Tr> {
    type State = Tr::State;

    fn on_element(
        &self,
        element: &Event,
        timestamp: Timestamp,
        window: &TimeWindow,
        state: &mut Tr::State,
        ctx: &mut TriggerContext<'_>,
    ) -> TriggerResult {
        match self.0.on_element(element, timestamp, window, state, ctx) {
            TriggerResult::Continue => TriggerResult::Fire,
            other => other,
        }
    }

    fn on_event_time(
        &self,
        time: Timestamp,
        window: &TimeWindow,
        state: &mut Tr::State,
        ctx: &mut TriggerContext<'_>,
    ) -> TriggerResult {
        self.0.on_event_time(time, window, state, ctx)
    }

    fn on_processing_time(
        &self,
        time: i64,
        window: &TimeWindow,
        state: &mut Tr::State,
        ctx: &mut TriggerContext<'_>,
    ) -> TriggerResult {
        self.0.on_processing_time(time, window, state, ctx)
    }

    fn can_merge(&self) -> bool {
        self.0.can_merge()
    }

    fn on_merge(
        &self,
        window: &TimeWindow,
        state: &mut Tr::State,
        merged: &Tr::State,
        ctx: &mut TriggerContext<'_>,
    ) {
        self.0.on_merge(window, state, merged, ctx)
    }

    fn clear(&self, window: &TimeWindow, state: &mut Tr::State, ctx: &mut TriggerContext<'_>) {
        self.0.clear(window, state, ctx)
    }
}

/// (key, start, end, count, sum) of a fired processing-time window.
type Fired = (u8, i64, i64, u64, i64);

fn processing_windows<A>(input: &DataStream<Event>, assigner: A) -> DataStream<Fired>
where
    A: WindowAssigner<Event, Window = TimeWindow>,
    A::Trigger: Trigger<Event, TimeWindow>,
{
    let trigger = AckEveryRecord(assigner.default_trigger());
    input
        .key_by(event_key as fn(&Event) -> u8)
        .window(assigner)
        .trigger(trigger)
        .process(
            |key: &u8,
             ctx: &WindowContext<'_, TimeWindow>,
             records: &[Event],
             out: &mut Collector<'_, Fired>| {
                let window = ctx.window();
                let sum = records.iter().map(|r| r.2).sum();
                out.collect((*key, window.start, window.end, records.len() as u64, sum));
            },
        )
}

/// The processing-time reference: what each step emits (records are assigned by the
/// clock when processed; a window fires on every record (ack) and when the clock
/// reaches its max timestamp, and is then dropped).
struct ProcessingReference {
    kind: Kind,
    now: i64,
    windows: BTreeMap<u8, Vec<RefWindow>>,
}

impl ProcessingReference {
    fn fired(key: u8, w: &RefWindow) -> Fired {
        (
            key,
            w.start,
            w.end,
            w.records.len() as u64,
            w.records.iter().sum(),
        )
    }

    fn due(&mut self, out: &mut Vec<Fired>) {
        let now = self.now;
        for (&key, open) in self.windows.iter_mut() {
            open.retain(|w| {
                let due = w.end - 1 <= now;
                if due {
                    out.push(Self::fired(key, w));
                }
                !due
            });
        }
    }

    fn push(&mut self, key: u8, value: i64) -> Vec<Fired> {
        let mut out = Vec::new();
        let now = self.now;
        let open = self.windows.entry(key).or_default();
        if let Kind::Session { gap } = self.kind {
            let (mut start, mut end) = (now, now + gap);
            let mut records = vec![value];
            open.retain_mut(|w| {
                let merged = w.start <= now + gap && w.end >= now;
                if merged {
                    start = start.min(w.start);
                    end = end.max(w.end);
                    records.append(&mut w.records);
                }
                !merged
            });
            let window = RefWindow {
                start,
                end,
                records,
            };
            out.push(Self::fired(key, &window));
            open.push(window);
        } else {
            for (start, end) in reference_windows(self.kind, now) {
                let index = match open.iter().position(|w| w.start == start) {
                    Some(index) => index,
                    None => {
                        open.push(RefWindow {
                            start,
                            end,
                            records: Vec::new(),
                        });
                        open.len() - 1
                    }
                };
                open[index].records.push(value);
                out.push(Self::fired(key, &open[index]));
            }
        }
        self.due(&mut out);
        out
    }

    fn advance(&mut self, by: i64) -> Vec<Fired> {
        self.now += by;
        let mut out = Vec::new();
        self.due(&mut out);
        out
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(10))]

    /// Processing-time tumbling, sliding and session windows with the job clock driven
    /// by hand: each step's outputs are awaited before the next step.
    #[test]
    fn processing_time_windows_follow_the_job_clock(
        kind in kind(),
        steps in proptest::collection::vec((proptest::bool::weighted(0.3), 0u8..3, -20i64..100, 1i64..15), 1..30),
        parallelism in 1usize..=3,
        buffer_size in 1usize..8,
    ) {
        // Every record must land in a window (its ack is how the test knows it was
        // processed before the clock moves): no gaps between sliding windows.
        let kind = match kind {
            Kind::Sliding { size, slide, offset } => Kind::Sliding { size, slide: slide.min(size), offset },
            other => other,
        };
        let clock = ManualClock::new();
        let env = Env::new(JobConfig {
            parallelism: Some(parallelism),
            buffer: BufferConfig { size: buffer_size, timeout: Duration::ZERO, count: 4 },
            idle: IdleConfig { park_max: Duration::from_millis(1), ..IdleConfig::default() },
            clock: Arc::new(clock.clone()),
            ..JobConfig::default()
        });
        let (mut input, stream) = env.push_source::<Event>(64);
        let ms = |v: i64| Duration::from_millis(v as u64);
        let results = match kind {
            Kind::Tumbling { size, offset } => processing_windows(&stream, TumblingProcessingTimeWindows::of(ms(size)).with_offset_ms(offset)),
            Kind::Sliding { size, slide, offset } => processing_windows(&stream, SlidingProcessingTimeWindows::of(ms(size), ms(slide)).with_offset_ms(offset)),
            Kind::Session { gap } => processing_windows(&stream, ProcessingTimeSessionWindows::with_gap(ms(gap))),
        };
        let mut output = results.collect_handle(1024);
        let job = env.execute_async().unwrap();
        let mut reference = ProcessingReference { kind, now: 0, windows: BTreeMap::new() };
        let mut outcome = Ok(());
        for &(advance, key, value, by) in &steps {
            let mut expected = if advance {
                clock.advance(Duration::from_millis(by as u64));
                reference.advance(by)
            } else {
                input.push((key, 0, value, 1)).unwrap();
                reference.push(key, value)
            };
            let mut actual: Vec<Fired> = (0..expected.len())
                .map(|_| output.recv_timeout(Duration::from_secs(20)).expect("a window result"))
                .collect();
            actual.sort();
            expected.sort();
            if actual != expected {
                outcome = Err(TestCaseError::fail(format!("at {:?}: {:?} != {:?}", (advance, key, value, by), actual, expected)));
                break;
            }
        }
        drop(input);
        job.cancel();
        job.join().unwrap();
        outcome?;
    }
}
