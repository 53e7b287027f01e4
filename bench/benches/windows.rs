//! Event-time window aggregation per key: records/s by number of distinct keys.
//!
//! `events (u64 sequence numbers) → assign_timestamps_and_watermarks (1 ms of event
//! time per 1 000 records, monotonous) → key_by(scrambled seq mod keys) → window →
//! aggregate(count) → sum sink`, on core 0 with parallelism 1: the source and the
//! timestamp assigner are one chain (one task), the window operator another task behind
//! a hash link on the same core. So the figures are per core and include the
//! exchange. Windows fire while records flow (the watermark follows the records), the
//! last ones at end of input; each iteration is a whole job, so its wall time includes
//! firing every window and dropping its state.
//!
//! | group | windows | records in |
//! | --- | --- | --- |
//! | `tumbling_1s_count` | tumbling 1 s (1 M records per window) | 1 window |
//! | `sliding_10s_2s_count` | sliding 10 s every 2 s, as Nexmark q5 | 5 windows |
//! | `session_20ms_count` | sessions per key, gap 20 ms | 1 session |
//! | `tumbling_1s_count_2cores` | tumbling 1 s, parallelism 2 on cores 0 and 1 | 1 window |
//!
//! With 10 000 keys a key has a record every 10 ms of event time on average (~100 per
//! tumbling window; sessions of ~7 records), with 1 000 000 keys every second (about
//! one per tumbling window; almost every session a single record). The sink checks
//! that the counts add up to records × windows per record.
//!
//! `cargo bench -p eddy-bench --bench windows`

use std::sync::atomic::Ordering;
use std::time::Duration;

use criterion::{
    criterion_group, criterion_main, BenchmarkId, Criterion, SamplingMode, Throughput,
};
use eddy_bench::{
    event_time_ms, job_config, key_of, measuring, CountPerWindow, CountingSink, EventSource,
};
use eddy_engine::clock::{Clock, SystemClock};
use eddy_engine::prelude::*;

/// The distinct keys each benchmark is run with.
const KEYS: [u64; 2] = [10_000, 1_000_000];

/// The windows of a benchmark.
#[derive(Debug, Clone, Copy)]
enum Windows {
    /// Tumbling, 1 s.
    Tumbling,
    /// Sliding, 10 s every 2 s.
    Sliding,
    /// Sessions, gap 20 ms.
    Session,
}

impl Windows {
    /// How many windows each record is counted in.
    fn per_record(self) -> u64 {
        match self {
            Windows::Tumbling | Windows::Session => 1,
            Windows::Sliding => 5,
        }
    }
}

/// Records per job: enough event time (≥ 3 s, past the first sliding window's end at
/// 2 s) for windows to fire during the run, few enough that a job of 1 M keys takes a
/// few seconds (50 000 when not [`measuring`]).
fn records_for(keys: u64) -> u64 {
    if !measuring() {
        50_000
    } else if keys >= 1_000_000 {
        3_000_000
    } else {
        6_000_000
    }
}

/// Runs the window job over `records` records with `keys` keys on `cores`; returns its
/// wall time from `execute` to its return.
fn run_windows(windows: Windows, keys: u64, records: u64, cores: &[usize]) -> Duration {
    let env = Env::new(job_config("bench-windows", cores, BufferConfig::default()));
    let (sink, totals) = CountingSink::new();
    let keyed = env
        .add_source("events", EventSource::new(records), Boundedness::Bounded)
        .assign_timestamps_and_watermarks(
            WatermarkStrategy::for_monotonous_timestamps().with_timestamp_assigner(event_time_ms),
        )
        .key_by(move |seq: &u64| key_of(*seq, keys));
    let counts = match windows {
        Windows::Tumbling => keyed
            .window(TumblingEventTimeWindows::of(Duration::from_secs(1)))
            .aggregate(CountPerWindow),
        Windows::Sliding => keyed
            .window(SlidingEventTimeWindows::of(
                Duration::from_secs(10),
                Duration::from_secs(2),
            ))
            .aggregate(CountPerWindow),
        Windows::Session => keyed
            .window(EventTimeSessionWindows::with_gap(Duration::from_millis(20)))
            .aggregate(CountPerWindow),
    };
    counts.sink(sink);
    let started = SystemClock.now();
    env.execute().expect("the window job failed");
    let elapsed = SystemClock.now().saturating_duration_since(started);
    assert_eq!(
        totals.sum.load(Ordering::Relaxed),
        records * windows.per_record(),
        "the window counts do not add up to the records"
    );
    elapsed
}

/// One criterion group: `windows` by number of keys on `cores`.
fn bench_windows(c: &mut Criterion, group_name: &str, windows: Windows, cores: &[usize]) {
    let mut group = c.benchmark_group(group_name);
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5));
    for keys in KEYS {
        let records = records_for(keys);
        group.throughput(Throughput::Elements(records));
        group.bench_with_input(BenchmarkId::new("keys", keys), &keys, |b, &keys| {
            b.iter_custom(|iterations| {
                (0..iterations)
                    .map(|_| run_windows(windows, keys, records, cores))
                    .sum()
            })
        });
    }
    group.finish();
}

fn windows(c: &mut Criterion) {
    bench_windows(c, "tumbling_1s_count", Windows::Tumbling, &[0]);
    bench_windows(c, "sliding_10s_2s_count", Windows::Sliding, &[0]);
    bench_windows(c, "session_20ms_count", Windows::Session, &[0]);
    bench_windows(c, "tumbling_1s_count_2cores", Windows::Tumbling, &[0, 1]);
}

criterion_group!(benches, windows);
criterion_main!(benches);
