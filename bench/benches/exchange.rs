//! A 2×2 hash exchange: total records/s by `buffer.size`.
//!
//! `count (parallel, 2 subtasks) → key_by(x mod 4096) → process (per-key count) →
//! count sink`, parallelism 2 on cores 0 and 1. Each source subtask routes every record
//! by key group into one of its two links (a 2×2 mesh of SPSC rings); each process
//! subtask runs on the same core as one source subtask, so both cores do both halves.
//! Each iteration is a whole job over its record count (start-up is measured by the
//! `chain` bench).
//!
//! `cargo bench -p eddy-bench --bench exchange`

use std::sync::atomic::Ordering;
use std::time::Duration;

use criterion::{
    criterion_group, criterion_main, BenchmarkId, Criterion, SamplingMode, Throughput,
};
use eddy_bench::{job_config, CountingSink, CountingSource};
use eddy_engine::clock::{Clock, SystemClock};
use eddy_engine::prelude::*;

/// Records per job for `buffer.size` ≥ 64.
const RECORDS: u64 = 20_000_000;
/// Records per job for `buffer.size` 1 (one record per ring slot is slow).
const RECORDS_SMALL: u64 = 1_000_000;

/// Runs the job; returns its wall time.
fn run_exchange(records: u64, buffer_size: usize) -> Duration {
    let buffer = BufferConfig {
        size: buffer_size,
        ..BufferConfig::default()
    };
    let env = Env::new(job_config("bench-exchange", &[0, 1], buffer));
    let (sink, totals) = CountingSink::new();
    env.add_source("count", CountingSource::new(records), Boundedness::Bounded)
        .key_by(|x: &u64| x & 4095)
        .process(
            |x: u64, context: &mut KeyedContext<'_, u64, u64>, out: &mut Collector<'_, u64>| {
                *context.state() += 1;
                out.collect(x);
            },
        )
        .sink(sink);
    let started = SystemClock.now();
    env.execute().expect("the exchange job failed");
    let elapsed = SystemClock.now().saturating_duration_since(started);
    assert_eq!(
        totals.count.load(Ordering::Relaxed),
        records,
        "the exchange lost records"
    );
    assert_eq!(
        totals.sum.load(Ordering::Relaxed),
        records * (records - 1) / 2,
        "the exchange changed records"
    );
    elapsed
}

fn exchange(c: &mut Criterion) {
    let mut group = c.benchmark_group("exchange_2x2");
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    for buffer_size in [1usize, 64, 1024, 4096] {
        let records = if buffer_size == 1 {
            RECORDS_SMALL
        } else {
            RECORDS
        };
        group.throughput(Throughput::Elements(records));
        group.bench_with_input(
            BenchmarkId::new("buffer.size", buffer_size),
            &buffer_size,
            |b, &buffer_size| {
                b.iter_custom(|iterations| {
                    (0..iterations)
                        .map(|_| run_exchange(records, buffer_size))
                        .sum()
                })
            },
        );
    }
    group.finish();
}

criterion_group!(benches, exchange);
criterion_main!(benches);
