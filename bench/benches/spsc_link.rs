//! One SPSC link between two pinned cores: records/s of 8-byte records by
//! `buffer.size`.
//!
//! The producer (core 0) pushes `u64`s through `LinkSender::push`, which sends a buffer
//! when it holds `buffer.size` records; when the ring is full it spins on
//! `try_drain` (the engine's task would yield instead). The consumer (core 1) pops
//! buffers, sums their records and recycles the buffers to the producer's pool. The
//! time runs from both threads being ready to the consumer seeing end of input.
//!
//! `cargo bench -p eddy-bench --bench spsc_link`

use std::hint::spin_loop;
use std::sync::{Arc, Barrier};
use std::time::Duration;

use criterion::{
    criterion_group, criterion_main, BenchmarkId, Criterion, SamplingMode, Throughput,
};
use eddy_bench::pinned;
use eddy_engine::channel::link;
use eddy_engine::clock::{Clock, SystemClock};
use eddy_engine::config::BufferConfig;
use eddy_engine::message::Message;

/// Records per criterion iteration.
const RECORDS: u64 = 10_000_000;
/// Fewer for `buffer.size` 1, which moves one record per ring slot.
const RECORDS_SMALL: u64 = 1_000_000;

/// Pushes `records` records through a fresh link; returns the time they took.
fn run_link(buffer_size: usize, records: u64) -> Duration {
    let buffer = BufferConfig {
        size: buffer_size,
        ..BufferConfig::default()
    };
    let (mut tx, mut rx) = link::<u64>(buffer, "bench producer -> bench consumer".into());
    let ready = Arc::new(Barrier::new(2));
    let consumer_ready = Arc::clone(&ready);
    let consumer = pinned(1, "spsc-consumer", move || {
        consumer_ready.wait();
        let (mut sum, mut count) = (0u64, 0u64);
        loop {
            match rx.pop() {
                Some(Message::Data(buffer)) => {
                    sum = buffer
                        .values()
                        .iter()
                        .fold(sum, |sum, &x| sum.wrapping_add(x));
                    count += buffer.len() as u64;
                    rx.recycle(buffer);
                }
                Some(Message::EndOfInput) => break,
                // Watermarks and other control messages carry no records.
                Some(_) => {}
                None => spin_loop(),
            }
        }
        (SystemClock.now(), sum, count)
    });
    let producer = pinned(0, "spsc-producer", move || {
        ready.wait();
        let started = SystemClock.now();
        for value in 0..records {
            tx.push(value);
            if tx.is_blocked() {
                while !tx.try_drain(SystemClock.now()) {
                    spin_loop();
                }
            }
        }
        tx.send_end_of_input();
        while !tx.try_drain(SystemClock.now()) {
            spin_loop();
        }
        started
    });
    let started = producer.join();
    let (ended, sum, count) = consumer.join();
    assert_eq!(count, records, "the link lost records");
    assert_eq!(sum, records * (records - 1) / 2, "the link changed records");
    ended.saturating_duration_since(started)
}

fn spsc_link(c: &mut Criterion) {
    let mut group = c.benchmark_group("spsc_link");
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
                        .map(|_| run_link(buffer_size, records))
                        .sum()
                })
            },
        );
    }
    group.finish();
}

criterion_group!(benches, spsc_link);
criterion_main!(benches);
