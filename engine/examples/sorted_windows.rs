//! Peak memory of keyed windows that hold every key until the end of input versus
//! windows reading sorted input one key at a time (BATCH mode behind a blocking
//! exchange).
//!
//! ```text
//! cargo run --release -p eddy-engine --example sorted_windows -- batch 4000000 200000
//! cargo run --release -p eddy-engine --example sorted_windows -- held 4000000 200000
//! ```
//!
//! `batch`: BATCH mode, 16 MiB budget; the window operator finishes each key when the
//! next starts. `held`: STREAMING with a watermark that never passes a window before the
//! end, so every key's windows stay open until end of input — what BATCH windows did
//! before they read sorted input. Both run tumbling 1 s windows over `records` readings
//! of `keys` keys (event times over 100 s), with a process function that keeps every
//! element of a window, and print the windows fired and the peak RSS (`VmHWM`).

// The example measures the wall clock and reads /proc, outside the engine.
#![allow(clippy::disallowed_methods)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use eddy_engine::operators::sink::Sink;
use eddy_engine::operators::source::{Source, SourceOutput, SourceStatus};
use eddy_engine::prelude::*;
use eddy_engine::window::{TimeWindow, TumblingEventTimeWindows, WindowContext};

/// (key, value).
type Reading = (u64, u64);

/// `end` readings generated on the fly (no input held in memory).
#[derive(Clone)]
struct Readings {
    next: u64,
    end: u64,
    keys: u64,
}

impl Source<Reading> for Readings {
    fn poll_next(
        &mut self,
        out: &mut SourceOutput<'_, Reading>,
    ) -> Result<SourceStatus, ConnectorError> {
        while out.remaining() > 0 {
            if self.next == self.end {
                return Ok(SourceStatus::Finished);
            }
            let i = self.next;
            self.next += 1;
            let mixed = i.wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(29);
            let timestamp = (i * 100_000 / self.end) as i64;
            out.emit_at((mixed % self.keys, i), timestamp);
        }
        Ok(SourceStatus::Ready)
    }
}

/// Counts what reaches it.
#[derive(Clone)]
struct Count(Arc<AtomicU64>);

impl Sink<u64> for Count {
    fn write(&mut self, _record: u64) -> Result<(), ConnectorError> {
        self.0.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

fn peak_rss_mib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|value| {
            value
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<u64>()
                .ok()
        })
        .map_or(0, |kb| kb / 1024)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let mode = args.get(1).map_or("batch", String::as_str);
    let records: u64 = args
        .get(2)
        .and_then(|a| a.parse().ok())
        .unwrap_or(4_000_000);
    let keys: u64 = args.get(3).and_then(|a| a.parse().ok()).unwrap_or(200_000);
    let env = Env::new(JobConfig {
        name: "sorted-windows".into(),
        mode: if mode == "batch" {
            Mode::Batch
        } else {
            Mode::Streaming
        },
        parallelism: Some(1),
        memory_budget_bytes: 16 << 20,
        ..JobConfig::default()
    });
    let fired = Arc::new(AtomicU64::new(0));
    env.add_source(
        "readings",
        Readings {
            next: 0,
            end: records,
            keys,
        },
        Boundedness::Bounded,
    )
    .assign_timestamps_and_watermarks(
        // Never passes a window before the end: every window waits for end of input.
        WatermarkStrategy::for_bounded_out_of_orderness(Duration::from_secs(1_000)),
    )
    .key_by(|r: &Reading| r.0)
    .window(TumblingEventTimeWindows::of(Duration::from_secs(1)))
    .process(
        |_key: &u64,
         _ctx: &WindowContext<'_, TimeWindow>,
         readings: &[Reading],
         out: &mut Collector<'_, u64>| {
            out.collect(readings.iter().map(|r| r.1).sum());
        },
    )
    .sink(Count(Arc::clone(&fired)));
    let started = Instant::now();
    env.execute().expect("the job runs");
    println!(
        "{mode}: {records} records, {keys} keys, {} windows fired in {:.1} s, peak RSS {} MiB",
        fired.load(Ordering::Relaxed),
        started.elapsed().as_secs_f64(),
        peak_rss_mib()
    );
}
