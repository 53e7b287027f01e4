//! Keyed state and timers through the public API, compared with a sequential reference:
//! value/list/map/reducing/aggregating state scoped to the key, event-time timers that
//! fire in timestamp order before the watermark passes on (deduplicated per key and
//! time), processing-time timers and state TTL driven by a manual clock.

// The OS clock is read only for test deadlines (a hung job fails the test).
#![allow(clippy::disallowed_methods)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use eddy_engine::clock::ManualClock;
use eddy_engine::prelude::*;
use proptest::prelude::*;

/// Emits, per record, the key's running count, list length, map size, reduced max and
/// average; on each event-time timer (one per record at `ts + 5`, deduplicated) the
/// count of records of that key with a timestamp at or below the timer.
#[derive(Clone)]
struct Everything {
    count: ValueStateDescriptor<u64>,
    seen: ListStateDescriptor<i64>,
    distinct: MapStateDescriptor<i64, u32>,
    max: ReducingStateDescriptor<i64>,
    average: AggregatingStateDescriptor<Average>,
}

struct Average;

impl AggregateFunction for Average {
    type Input = i64;
    type Accumulator = (i64, i64);
    type Output = i64;
    fn create_accumulator(&self) -> (i64, i64) {
        (0, 0)
    }
    fn add(&self, value: i64, accumulator: &mut (i64, i64)) {
        accumulator.0 += value;
        accumulator.1 += 1;
    }
    fn get_result(&self, accumulator: &(i64, i64)) -> i64 {
        accumulator.0 / accumulator.1
    }
    fn merge(&self, accumulator: &mut (i64, i64), other: (i64, i64)) {
        accumulator.0 += other.0;
        accumulator.1 += other.1;
    }
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Out {
    Update {
        key: u8,
        count: u64,
        list: usize,
        map: usize,
        max: i64,
        average: i64,
    },
    Timer {
        key: u8,
        time: i64,
        at_or_below: usize,
    },
}

impl KeyedProcessFunction<u8, (u8, i64), Out> for Everything {
    fn process_element(
        &mut self,
        (key, value): (u8, i64),
        ctx: &mut KeyedContext<'_, u8>,
        out: &mut Collector<'_, Out>,
    ) {
        let count = {
            let mut state = ctx.value(&self.count);
            *state.get_or_default() += 1;
            *state.get().unwrap()
        };
        ctx.list(&self.seen).add(value);
        let list = ctx.list(&self.seen).get().len();
        *ctx.map(&self.distinct).get(&value).unwrap_or(&mut 0) += 0;
        let previous = ctx.map(&self.distinct).get(&value).copied().unwrap_or(0);
        ctx.map(&self.distinct).put(value, previous + 1);
        let map = ctx.map(&self.distinct).entries().count();
        ctx.reducing(&self.max).add(value);
        let max = *ctx.reducing(&self.max).get().unwrap();
        ctx.aggregating(&self.average).add(value);
        let average = ctx.aggregating(&self.average).get().unwrap();
        out.collect(Out::Update {
            key,
            count,
            list,
            map,
            max,
            average,
        });
        ctx.register_event_time_timer(value + 5);
    }

    fn on_timer(
        &mut self,
        time: Timestamp,
        domain: TimeDomain,
        ctx: &mut KeyedContext<'_, u8>,
        out: &mut Collector<'_, Out>,
    ) {
        assert_eq!(domain, TimeDomain::EventTime);
        assert!(
            ctx.current_watermark() < time,
            "fires before the watermark passes on"
        );
        let key = *ctx.key();
        let at_or_below = ctx
            .list(&self.seen)
            .get()
            .iter()
            .filter(|&&v| v <= time)
            .count();
        out.collect(Out::Timer {
            key,
            time,
            at_or_below,
        });
    }
}

fn reference(input: &[(u8, i64)]) -> Vec<Out> {
    let mut out = Vec::new();
    let mut per_key: BTreeMap<u8, Vec<i64>> = BTreeMap::new();
    for &(key, value) in input {
        let values = per_key.entry(key).or_default();
        values.push(value);
        let mut distinct = values.clone();
        distinct.sort();
        distinct.dedup();
        out.push(Out::Update {
            key,
            count: values.len() as u64,
            list: values.len(),
            map: distinct.len(),
            max: *values.iter().max().unwrap(),
            average: values.iter().sum::<i64>() / values.len() as i64,
        });
    }
    // Monotonous timestamps: when timer t fires (watermark >= t), every record <= t has
    // arrived; at end of input all timers fire. Timers are deduplicated per (key, time).
    for (key, values) in &per_key {
        let mut times: Vec<i64> = values.iter().map(|v| v + 5).collect();
        times.sort();
        times.dedup();
        for time in times {
            let at_or_below = values.iter().filter(|&&v| v <= time).count();
            out.push(Out::Timer {
                key: *key,
                time,
                at_or_below,
            });
        }
    }
    out.sort();
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(16))]

    #[test]
    fn keyed_state_and_event_timers_match_a_sequential_reference(
        steps in proptest::collection::vec((0u8..6, 0i64..4), 0..200),
        parallelism in 1usize..=3,
        buffer_size in 1usize..32,
        batch in any::<bool>(),
    ) {
        // Non-decreasing event times with repeats (so timers are registered twice).
        let mut time = 0;
        let input: Vec<(u8, i64)> = steps.iter().map(|&(key, step)| { time += step; (key, time) }).collect();
        let env = Env::new(JobConfig {
            parallelism: Some(parallelism),
            mode: if batch { Mode::Batch } else { Mode::Streaming },
            buffer: BufferConfig { size: buffer_size, timeout: Duration::from_micros(100), count: 4 },
            ..JobConfig::default()
        });
        let function = Everything {
            count: ValueStateDescriptor::new("count"),
            seen: ListStateDescriptor::new("seen"),
            distinct: MapStateDescriptor::new("distinct"),
            max: ReducingStateDescriptor::new("max", |a: i64, b: i64| a.max(b)),
            average: AggregatingStateDescriptor::new("average", Average),
        };
        let collected = env
            .from_iter(input.clone())
            .assign_timestamps_and_watermarks(
                WatermarkStrategy::for_monotonous_timestamps().with_timestamp_assigner(|(_, t): &(u8, i64)| *t),
            )
            // Chained to the non-parallel source: a rebalance here would reorder the
            // records of a key (and break the monotonous timestamps).
            .set_parallelism(1)
            .key_by(|(key, _): &(u8, i64)| *key)
            .process_function(function)
            .collect_vec();
        env.execute().unwrap();
        let mut actual = collected.take();
        actual.sort();
        prop_assert_eq!(actual, reference(&input));
    }
}

/// A processing-time timer and a TTL, with the job's clock driven by the test.
#[derive(Clone)]
struct Expiring {
    last: ValueStateDescriptor<i64>,
}

impl KeyedProcessFunction<u8, (u8, i64), String> for Expiring {
    fn process_element(
        &mut self,
        (key, value): (u8, i64),
        ctx: &mut KeyedContext<'_, u8>,
        out: &mut Collector<'_, String>,
    ) {
        let previous = ctx.value(&self.last).get().copied();
        ctx.value(&self.last).set(value);
        out.collect(format!("{key}:{value} after {previous:?}"));
        let now = ctx.current_processing_time();
        ctx.register_processing_time_timer(now + 50);
    }

    fn on_timer(
        &mut self,
        time: Timestamp,
        domain: TimeDomain,
        ctx: &mut KeyedContext<'_, u8>,
        out: &mut Collector<'_, String>,
    ) {
        assert_eq!(domain, TimeDomain::ProcessingTime);
        out.collect(format!(
            "timer {} at {time} (now {})",
            ctx.key(),
            ctx.current_processing_time()
        ));
    }
}

#[test]
fn processing_time_timers_and_ttl_follow_the_job_clock() {
    let clock = ManualClock::new();
    let env = Env::new(JobConfig {
        parallelism: Some(1),
        buffer: BufferConfig {
            size: 1,
            timeout: Duration::ZERO,
            count: 4,
        },
        clock: Arc::new(clock.clone()),
        ..JobConfig::default()
    });
    let (mut input, stream) = env.push_source::<(u8, i64)>(16);
    let mut output = stream
        .key_by(|(key, _): &(u8, i64)| *key)
        .process_function(Expiring {
            last: ValueStateDescriptor::new("last")
                .with_ttl(StateTtl::new(Duration::from_millis(100))),
        })
        .collect_handle(16);
    let job = env.execute_async().unwrap();
    let recv = |output: &mut ResultHandle<String>| {
        output
            .recv_timeout(Duration::from_secs(20))
            .expect("an output")
    };

    input.push((1, 10)).unwrap();
    assert_eq!(recv(&mut output), "1:10 after None");
    input.push((1, 11)).unwrap();
    assert_eq!(recv(&mut output), "1:11 after Some(10)");
    // The timers (at 50 ms) fire once the clock reaches them, deduplicated per time.
    clock.advance(Duration::from_millis(60));
    assert_eq!(recv(&mut output), "timer 1 at 50 (now 60)");
    // 60 ms after the write the value is still there; 100 ms after it, it is gone.
    input.push((1, 12)).unwrap();
    assert_eq!(recv(&mut output), "1:12 after Some(11)");
    clock.advance(Duration::from_millis(100));
    assert_eq!(recv(&mut output), "timer 1 at 110 (now 160)");
    input.push((1, 13)).unwrap();
    assert_eq!(recv(&mut output), "1:13 after None");
    drop(input);
    job.cancel();
    job.join().unwrap();
}
