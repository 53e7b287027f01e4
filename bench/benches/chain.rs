//! A chained map→filter on one core through the DataStream API: records/s.
//!
//! `count (u64 0..n) → map(x·3) → filter(even) → sum sink`, parallelism 1 on core 0:
//! the planner fuses all four into one chain (one task, plain calls per buffer, no
//! ring). Each iteration runs a whole job over [`RECORDS`] records, so job start-up is
//! amortised; `chain/startup` measures the start-up (plan, executor, teardown) of the
//! same job with no records on its own.
//!
//! `cargo bench -p eddy-bench --bench chain`

use std::time::Duration;

use criterion::{
    criterion_group, criterion_main, BenchmarkId, Criterion, SamplingMode, Throughput,
};
use eddy_bench::{job_config, CountingSink, CountingSource};
use eddy_engine::clock::{Clock, SystemClock};
use eddy_engine::prelude::*;

/// Records per job (and per criterion iteration).
const RECORDS: u64 = 20_000_000;

/// Runs the job over `records` records with `buffer.size` = `buffer_size`; returns
/// its wall time from `execute` to its return.
fn run_chain(records: u64, buffer_size: usize) -> Duration {
    let buffer = BufferConfig {
        size: buffer_size,
        ..BufferConfig::default()
    };
    let env = Env::new(job_config("bench-chain", &[0], buffer));
    let (sink, totals) = CountingSink::new();
    env.add_source("count", CountingSource::new(records), Boundedness::Bounded)
        .map(|x: u64| x.wrapping_mul(3))
        .filter(|x: &u64| x & 1 == 0)
        .sink(sink);
    let started = SystemClock.now();
    env.execute().expect("the chain job failed");
    let elapsed = SystemClock.now().saturating_duration_since(started);
    let even = records.div_ceil(2);
    assert_eq!(
        totals.count.load(std::sync::atomic::Ordering::Relaxed),
        even,
        "the chain lost records"
    );
    elapsed
}

fn chain(c: &mut Criterion) {
    let mut group = c.benchmark_group("chain");
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    group.throughput(Throughput::Elements(RECORDS));
    for buffer_size in [1024usize, 4096] {
        group.bench_with_input(
            BenchmarkId::new("map_filter/buffer.size", buffer_size),
            &buffer_size,
            |b, &buffer_size| {
                b.iter_custom(|iterations| {
                    (0..iterations)
                        .map(|_| run_chain(RECORDS, buffer_size))
                        .sum()
                })
            },
        );
    }
    group.throughput(Throughput::Elements(1));
    group.bench_function("startup", |b| {
        b.iter_custom(|iterations| (0..iterations).map(|_| run_chain(0, 1024)).sum())
    });
    group.finish();
}

criterion_group!(benches, chain);
criterion_main!(benches);
