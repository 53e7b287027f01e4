//! Two-input operators and the interval join, against sequential references:
//! `connect().key_by().process()` sees both inputs of a key in one place with shared
//! state; the interval join emits exactly the pairs a nested-loop join over the same
//! data finds (bounds inclusive or exclusive, negative bounds), stamped with the larger
//! timestamp, in streaming and batch mode; late records go to the side outputs.

use std::collections::BTreeMap;
use std::time::Duration;

use eddy_engine::prelude::*;
use proptest::prelude::*;

type Event = (u8, u32, i64); // key, id, event time

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

/// Event times moving forward by 0..=9 ms, each pulled back by up to `disorder` ms.
fn events(spec: &[(u8, i64, i64)], disorder: i64) -> Vec<Event> {
    let mut time = 100;
    spec.iter()
        .enumerate()
        .map(|(id, &(key, step, back))| {
            time += step;
            (key, id as u32, time - back.min(disorder))
        })
        .collect()
}

fn timed(env: &Env, input: Vec<Event>, disorder: i64) -> DataStream<Event> {
    env.from_iter(input)
        .assign_timestamps_and_watermarks(
            WatermarkStrategy::for_bounded_out_of_orderness(Duration::from_millis(disorder as u64))
                .with_timestamp_assigner(|(_, _, t): &Event| *t),
        )
        .set_parallelism(1)
}

#[derive(Clone)]
struct CountBoth {
    lefts: ValueStateDescriptor<u32>,
    rights: ValueStateDescriptor<u32>,
}

impl KeyedCoProcessFunction<u8, Event, String, (u8, u32, u32)> for CountBoth {
    fn process_element1(
        &mut self,
        _a: Event,
        ctx: &mut KeyedContext<'_, u8>,
        out: &mut Collector<'_, (u8, u32, u32)>,
    ) {
        *ctx.value(&self.lefts).get_or_default() += 1;
        let rights = ctx.value(&self.rights).get().copied().unwrap_or(0);
        let lefts = *ctx.value(&self.lefts).get().unwrap();
        out.collect((*ctx.key(), lefts, rights));
    }

    fn process_element2(
        &mut self,
        _b: String,
        ctx: &mut KeyedContext<'_, u8>,
        out: &mut Collector<'_, (u8, u32, u32)>,
    ) {
        *ctx.value(&self.rights).get_or_default() += 1;
        let lefts = ctx.value(&self.lefts).get().copied().unwrap_or(0);
        let rights = *ctx.value(&self.rights).get().unwrap();
        out.collect((*ctx.key(), lefts, rights));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(16))]

    #[test]
    fn connected_keyed_streams_share_state_per_key(
        lefts in proptest::collection::vec(0u8..5, 0..100),
        rights in proptest::collection::vec(0u8..5, 0..100),
        parallelism in 1usize..=3,
        buffer_size in 1usize..32,
    ) {
        let env = Env::new(config(parallelism, buffer_size, false));
        let left = env.from_iter(lefts.iter().map(|&k| (k, 0u32, 0i64)).collect::<Vec<_>>());
        let right = env.from_iter(rights.iter().map(|k| format!("{k}")).collect::<Vec<_>>());
        let updates = left
            .connect(&right)
            .key_by(|(k, _, _): &Event| *k, |s: &String| s.parse::<u8>().unwrap())
            .process(CountBoth { lefts: ValueStateDescriptor::new("l"), rights: ValueStateDescriptor::new("r") })
            .collect_vec();
        env.execute().unwrap();
        // Per key, the last update holds both totals (each update raises one count by 1).
        let mut last: BTreeMap<u8, (u32, u32)> = BTreeMap::new();
        let updates = updates.take();
        prop_assert_eq!(updates.len(), lefts.len() + rights.len());
        for (key, l, r) in updates {
            let entry = last.entry(key).or_default();
            entry.0 = entry.0.max(l);
            entry.1 = entry.1.max(r);
        }
        let mut expected: BTreeMap<u8, (u32, u32)> = BTreeMap::new();
        for &k in &lefts { expected.entry(k).or_default().0 += 1; }
        for k in &rights { expected.entry(*k).or_default().1 += 1; }
        prop_assert_eq!(last, expected);
    }

    #[test]
    fn interval_join_matches_a_nested_loop_join(
        left_spec in proptest::collection::vec((0u8..4, 0i64..10, 0i64..20), 0..80),
        right_spec in proptest::collection::vec((0u8..4, 0i64..10, 0i64..20), 0..80),
        lower in -20i64..10,
        width in 0i64..25,
        lower_exclusive in any::<bool>(),
        upper_exclusive in any::<bool>(),
        parallelism in 1usize..=3,
        buffer_size in 1usize..32,
        batch in any::<bool>(),
    ) {
        let disorder = 15;
        let upper = lower + width;
        let (left_events, right_events) = (events(&left_spec, disorder), events(&right_spec, disorder));
        let env = Env::new(config(parallelism, buffer_size, batch));
        let left = timed(&env, left_events.clone(), disorder).key_by(|(k, _, _): &Event| *k);
        let right = timed(&env, right_events.clone(), disorder).key_by(|(k, _, _): &Event| *k);
        let mut join = left.interval_join(&right).between(lower, upper);
        if lower_exclusive { join = join.lower_bound_exclusive(); }
        if upper_exclusive { join = join.upper_bound_exclusive(); }
        let pairs = join
            .process(|a: &Event, b: &Event| (a.1, b.1, a.2.max(b.2)))
            .collect_vec();
        env.execute().unwrap();

        let mut expected = Vec::new();
        for a in &left_events {
            for b in &right_events {
                let low_ok = if lower_exclusive { b.2 > a.2 + lower } else { b.2 >= a.2 + lower };
                let high_ok = if upper_exclusive { b.2 < a.2 + upper } else { b.2 <= a.2 + upper };
                if a.0 == b.0 && low_ok && high_ok {
                    expected.push((a.1, b.1, a.2.max(b.2)));
                }
            }
        }
        expected.sort();
        let mut actual = pairs.take();
        actual.sort();
        prop_assert_eq!(actual, expected);
    }
}

const LATE_RIGHT: OutputTag<Event> = OutputTag::new("late-right");

#[test]
fn late_records_go_to_the_side_output_and_are_not_joined() {
    let env = Env::new(config(1, 1, false));
    // Monotonous left side runs ahead; the right side's second record is far behind.
    let left = timed(&env, vec![(1, 0, 100), (1, 1, 200), (1, 2, 300)], 0).key_by(|e: &Event| e.0);
    let right_input = vec![(1, 10, 105), (1, 11, 50)];
    let right = env
        .from_iter(right_input)
        .assign_timestamps_and_watermarks(
            WatermarkStrategy::for_monotonous_timestamps().with_timestamp_assigner(|e: &Event| e.2),
        )
        .set_parallelism(1)
        .key_by(|e: &Event| e.0);
    let joined = left
        .interval_join(&right)
        .between(-10, 10)
        .side_output_right_late_data(&LATE_RIGHT)
        .process(|a: &Event, b: &Event| (a.1, b.1));
    let late = joined.side_output(&LATE_RIGHT).collect_vec();
    let pairs = joined.collect_vec();
    env.execute().unwrap();
    // (0 at 100, 10 at 105) joins. Whether 11 at 50 is late depends on how far the
    // combined watermark got when it arrived: it is either joined with nothing (no left
    // record lies in [40, 60]) or reported late; it is never lost and never joined.
    assert_eq!(pairs.take(), vec![(0, 10)]);
    let late = late.take();
    assert!(late.is_empty() || late == vec![(1, 11, 50)], "{late:?}");
}
