//! The window join (tumbling, sliding, session) against a sequential reference: every
//! pair of one key whose records fall into one common window, once per common window,
//! in streaming and batch mode, with random disorder, parallelism and buffers.

use std::collections::BTreeMap;
use std::time::Duration;

use eddy_engine::prelude::*;
use eddy_engine::window::{
    EventTimeSessionWindows, SlidingEventTimeWindows, TumblingEventTimeWindows,
};
use proptest::prelude::*;

type Event = (u8, u32, i64); // key, id, event time

fn events(spec: &[(u8, i64, i64)], disorder: i64) -> Vec<Event> {
    let mut time = 1_000;
    spec.iter()
        .enumerate()
        .map(|(id, &(key, step, back))| {
            time += step;
            (key, id as u32, time - back.min(disorder))
        })
        .collect()
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    Tumbling(i64),
    Sliding(i64, i64),
    Session(i64),
}

/// The windows (start, end) a record at `t` belongs to, for the non-merging kinds.
fn windows_of(kind: Kind, t: i64) -> Vec<(i64, i64)> {
    match kind {
        Kind::Tumbling(size) => {
            let start = t - t.rem_euclid(size);
            vec![(start, start + size)]
        }
        Kind::Sliding(size, slide) => {
            let last = t - t.rem_euclid(slide);
            let mut out = Vec::new();
            let mut start = last;
            while start > t - size {
                out.push((start, start + size));
                start -= slide;
            }
            out
        }
        Kind::Session(_) => unreachable!("sessions merge"),
    }
}

fn reference(kind: Kind, left: &[Event], right: &[Event]) -> Vec<(u32, u32)> {
    let mut pairs = Vec::new();
    match kind {
        Kind::Session(gap) => {
            // Per key: sessions over the union of both sides' timestamps.
            let mut by_key: BTreeMap<u8, Vec<i64>> = BTreeMap::new();
            for e in left.iter().chain(right) {
                by_key.entry(e.0).or_default().push(e.2);
            }
            for (key, mut times) in by_key {
                times.sort();
                let mut sessions: Vec<(i64, i64)> = Vec::new();
                for t in times {
                    match sessions.last_mut() {
                        // Flink merges sessions that overlap or touch (TimeWindow::intersects).
                        Some(last) if t <= last.1 => last.1 = last.1.max(t + gap),
                        _ => sessions.push((t, t + gap)),
                    }
                }
                for (start, end) in sessions {
                    let inside = |e: &&Event| e.0 == key && e.2 >= start && e.2 < end;
                    for a in left.iter().filter(inside) {
                        for b in right.iter().filter(inside) {
                            pairs.push((a.1, b.1));
                        }
                    }
                }
            }
        }
        _ => {
            for a in left {
                for b in right {
                    if a.0 != b.0 {
                        continue;
                    }
                    let common = windows_of(kind, a.2)
                        .into_iter()
                        .filter(|w| windows_of(kind, b.2).contains(w))
                        .count();
                    pairs.extend(std::iter::repeat_n((a.1, b.1), common));
                }
            }
        }
    }
    pairs.sort();
    pairs
}

fn kind_strategy() -> impl Strategy<Value = Kind> {
    prop_oneof![
        (5i64..40).prop_map(Kind::Tumbling),
        (1i64..4, 3i64..15).prop_map(|(n, slide)| Kind::Sliding(slide * n, slide)),
        (2i64..25).prop_map(Kind::Session),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn window_join_matches_a_reference(
        kind in kind_strategy(),
        left_spec in proptest::collection::vec((0u8..3, 0i64..8, 0i64..10), 0..60),
        right_spec in proptest::collection::vec((0u8..3, 0i64..8, 0i64..10), 0..60),
        parallelism in 1usize..=3,
        buffer_size in 1usize..32,
        batch in any::<bool>(),
    ) {
        let disorder = 10;
        let (left_events, right_events) = (events(&left_spec, disorder), events(&right_spec, disorder));
        let env = Env::new(JobConfig {
            parallelism: Some(parallelism),
            mode: if batch { Mode::Batch } else { Mode::Streaming },
            buffer: BufferConfig { size: buffer_size, timeout: Duration::from_micros(100), count: 4 },
            ..JobConfig::default()
        });
        let timed = |input: Vec<Event>| {
            env.from_iter(input)
                .assign_timestamps_and_watermarks(
                    WatermarkStrategy::for_bounded_out_of_orderness(Duration::from_millis(disorder as u64))
                        .with_timestamp_assigner(|e: &Event| e.2),
                )
                .set_parallelism(1)
        };
        let (left, right) = (timed(left_events.clone()), timed(right_events.clone()));
        let keyed = left.join(&right).where_key(|e: &Event| e.0).equal_to(|e: &Event| e.0);
        let join = |a: &Event, b: &Event| (a.1, b.1);
        let ms = |v: i64| Duration::from_millis(v as u64);
        let pairs = match kind {
            Kind::Tumbling(size) => keyed.window(TumblingEventTimeWindows::of(ms(size))).apply(join),
            Kind::Sliding(size, slide) => {
                keyed.window(SlidingEventTimeWindows::of(ms(size), ms(slide))).apply(join)
            }
            Kind::Session(gap) => keyed.window(EventTimeSessionWindows::with_gap(ms(gap))).apply(join),
        }
        .collect_vec();
        env.execute().unwrap();
        let mut actual = pairs.take();
        actual.sort();
        prop_assert_eq!(actual, reference(kind, &left_events, &right_events));
    }
}
