//! An event-time interval join of two keyed streams: input records/s by number of
//! distinct keys.
//!
//! `left events → assign_timestamps_and_watermarks → key_by` and the same for a right
//! stream (other keys for the same sequence numbers), `left.interval_join(right)
//! .between(-5 ms, +5 ms).process(..) → count sink`, on core 0 with parallelism 1 (two
//! source chains and the join task on one core). Event time advances 1 ms per 1 000
//! records on each side, so a left record meets on average 11 000 / keys right records
//! (≈ 1.1 with 10 000 keys, ≈ 0.01 with 1 000 000) and each side keeps ~11 ms of records
//! per key in state until the watermark drops them. Records/s counts both inputs.
//!
//! `cargo bench -p eddy-bench --bench joins`

use std::sync::atomic::Ordering;
use std::time::Duration;

use criterion::{
    criterion_group, criterion_main, BenchmarkId, Criterion, SamplingMode, Throughput,
};
use eddy_bench::{event_time_ms, job_config, key_of, measuring, CountingSink, EventSource};
use eddy_engine::clock::{Clock, SystemClock};
use eddy_engine::prelude::*;

/// The distinct keys the benchmark is run with.
const KEYS: [u64; 2] = [10_000, 1_000_000];

/// Records per side and job: 3 s of event time (50 ms when not [`measuring`]).
fn records_per_side() -> u64 {
    if measuring() {
        3_000_000
    } else {
        50_000
    }
}

/// Right records use the keys of these later sequence numbers, so a left and a right
/// record with the same sequence number (and time) rarely share a key.
const RIGHT_KEY_SHIFT: u64 = 1 << 40;

/// Runs the join over `records_per_side` records per side with `keys` keys; returns
/// its wall time and the number of joined pairs.
fn run_join(keys: u64, records_per_side: u64) -> (Duration, u64) {
    let env = Env::new(job_config("bench-join", &[0], BufferConfig::default()));
    let strategy =
        || WatermarkStrategy::for_monotonous_timestamps().with_timestamp_assigner(event_time_ms);
    let left = env
        .add_source(
            "left",
            EventSource::new(records_per_side),
            Boundedness::Bounded,
        )
        .assign_timestamps_and_watermarks(strategy())
        .key_by(move |seq: &u64| key_of(*seq, keys));
    let right = env
        .add_source(
            "right",
            EventSource::new(records_per_side),
            Boundedness::Bounded,
        )
        .assign_timestamps_and_watermarks(strategy())
        .key_by(move |seq: &u64| key_of(*seq + RIGHT_KEY_SHIFT, keys));
    let (sink, totals) = CountingSink::new();
    left.interval_join(&right)
        .between(-5, 5)
        .process(|a: &u64, b: &u64| a ^ b)
        .sink(sink);
    let started = SystemClock.now();
    env.execute().expect("the join job failed");
    let elapsed = SystemClock.now().saturating_duration_since(started);
    (elapsed, totals.count.load(Ordering::Relaxed))
}

fn joins(c: &mut Criterion) {
    let mut group = c.benchmark_group("interval_join_5ms");
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5));
    let records_per_side = records_per_side();
    group.throughput(Throughput::Elements(2 * records_per_side));
    for keys in KEYS {
        group.bench_with_input(BenchmarkId::new("keys", keys), &keys, |b, &keys| {
            b.iter_custom(|iterations| {
                (0..iterations)
                    .map(|_| {
                        let (elapsed, pairs) = run_join(keys, records_per_side);
                        // ≈ 1.1 pairs per left record at 10 000 keys, ≈ 0.01 at 1 M.
                        let expected = records_per_side * 11_000 / keys;
                        assert!(
                            pairs > expected / 2 && pairs < expected * 2,
                            "{pairs} joined pairs, expected about {expected}"
                        );
                        elapsed
                    })
                    .sum()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, joins);
criterion_main!(benches);
