//! eddy's benchmarks: what the criterion benches (`benches/`) and the runners
//! (`src/bin/`) share.
//!
//! * [`pinned`] — runs a closure on a thread pinned to one core (the way the engine
//!   pins its executors), so producer and consumer of a link sit on known cores.
//! * [`CountingSource`] / [`CountingSink`] — a parallel source of `u64`s counting up
//!   and a sink that sums and counts what reaches it (checked after each run, so a
//!   benchmark that loses records fails instead of looking fast).
//! * [`EventSource`] — a parallel source of sequence numbers whose event time advances
//!   1 ms every [`RECORDS_PER_MS`] records, with [`event_time_ms`] (its timestamp
//!   assigner) and [`key_of`] (a scrambled key out of a given number of keys), for the
//!   window and join benchmarks; [`CountPerWindow`] counts a window's records.
//! * [`cpu_time`] — CPU time used by this process so far (all threads), for the idle
//!   cost runner.
//! * [`results_dir`] — where runners write their CSV/JSON and where the chart generator
//!   reads them (and criterion's estimates).
//!
//! The benchmarks themselves:
//!
//! | what | where | command |
//! | --- | --- | --- |
//! | one SPSC link, records/s by `buffer.size` | `benches/spsc_link.rs` | `cargo bench -p eddy-bench --bench spsc_link` |
//! | chained map→filter on one core | `benches/chain.rs` | `cargo bench -p eddy-bench --bench chain` |
//! | 2×2 hash exchange | `benches/exchange.rs` | `cargo bench -p eddy-bench --bench exchange` |
//! | tumbling / sliding / session windows, by number of keys | `benches/windows.rs` | `cargo bench -p eddy-bench --bench windows` |
//! | interval join of two keyed streams, by number of keys | `benches/joins.rs` | `cargo bench -p eddy-bench --bench joins` |
//! | end-to-end latency by `buffer.timeout` | `src/bin/latency.rs` | `cargo run --release -p eddy-bench --bin latency` |
//! | CPU of an idle job | `src/bin/idle.rs` | `cargo run --release -p eddy-bench --bin idle` |
//! | checkpoint write, restore and running cost | `src/bin/checkpoint.rs` | `cargo run --release -p eddy-bench --bin checkpoint` |
//! | charts for `docs/` | `src/bin/chart.rs` | `cargo run --release -p eddy-bench --bin chart` |

#![warn(missing_docs)]

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use eddy_engine::prelude::*;
use glommio::{LocalExecutorBuilder, Placement};

/// A closure running on a pinned thread; [`Pinned::join`] returns its result.
pub struct Pinned<R: Send + 'static>(glommio::ExecutorJoinHandle<R>);

impl<R: Send + 'static> Pinned<R> {
    /// Waits for the closure and returns what it returned (panics if it panicked).
    pub fn join(self) -> R {
        self.0.join().expect("pinned benchmark thread failed")
    }
}

/// Runs `work` on a new thread pinned to CPU `core` (a glommio executor with
/// `Placement::Fixed`, which is how the engine pins its own executors). `work` may
/// busy-loop: nothing else runs on that executor.
pub fn pinned<R, F>(core: usize, name: &str, work: F) -> Pinned<R>
where
    R: Send + 'static,
    F: FnOnce() -> R + Send + 'static,
{
    let handle = LocalExecutorBuilder::new(Placement::Fixed(core))
        .name(name)
        // Registered io_uring buffers count against `ulimit -l`; we do no I/O.
        .io_memory(64 << 10)
        .spawn(move || async move { work() })
        .expect("cannot start a pinned thread (is that CPU online?)");
    Pinned(handle)
}

/// The settings every benchmark job starts from: `name`, pinned to `cores`, parallelism
/// = number of cores, `buffer`, and the engine's default idle settings.
pub fn job_config(name: &str, cores: &[usize], buffer: BufferConfig) -> JobConfig {
    JobConfig {
        name: name.to_string(),
        cores: cores.to_vec(),
        parallelism: Some(cores.len()),
        buffer,
        ..JobConfig::default()
    }
}

/// A parallel, bounded source of `0..records`: subtask `i` of `p` emits its own
/// contiguous slice, so the records of all subtasks together are `0..records`.
#[derive(Debug, Clone)]
pub struct CountingSource {
    records: u64,
    next: u64,
    end: u64,
}

impl CountingSource {
    /// A source of `0..records` (split over its subtasks).
    pub fn new(records: u64) -> Self {
        CountingSource {
            records,
            next: 0,
            end: records,
        }
    }
}

impl Source<u64> for CountingSource {
    fn open(&mut self, subtask: &SubtaskInfo) -> Result<(), ConnectorError> {
        let (index, parallelism) = (subtask.index as u64, subtask.parallelism as u64);
        self.next = self.records * index / parallelism;
        self.end = self.records * (index + 1) / parallelism;
        Ok(())
    }

    #[inline]
    fn poll_next(
        &mut self,
        out: &mut SourceOutput<'_, u64>,
    ) -> Result<SourceStatus, ConnectorError> {
        let stop = self.end.min(self.next + out.remaining() as u64);
        for value in self.next..stop {
            out.emit(value);
        }
        self.next = stop;
        Ok(if self.next == self.end {
            SourceStatus::Finished
        } else {
            SourceStatus::Ready
        })
    }
}

/// Whether this bench binary measures (`cargo bench` passes `--bench`). Run otherwise
/// (`cargo test --benches`, `--all-targets`), criterion runs each benchmark once as a
/// smoke test, and the window and join benches shrink their inputs so that the test is
/// quick even unoptimised.
pub fn measuring() -> bool {
    std::env::args().any(|arg| arg == "--bench")
}

/// Records per millisecond of event time of an [`EventSource`] (all subtasks together):
/// event time runs at 1 M records per second.
pub const RECORDS_PER_MS: u64 = 1_000;

/// The event time of record `seq` of an [`EventSource`]: 1 ms per [`RECORDS_PER_MS`]
/// records (the timestamp assigner of the window and join benchmarks).
#[inline]
pub fn event_time_ms(seq: &u64) -> Timestamp {
    (*seq / RECORDS_PER_MS) as Timestamp
}

/// The key of record `seq` out of `keys` keys: a bijective scramble of the sequence
/// number (splitmix64's finaliser) taken modulo `keys`, so keys arrive in random
/// order, each about equally often.
#[inline]
pub fn key_of(seq: u64, keys: u64) -> u64 {
    let mut x = seq.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    (x ^ (x >> 31)) % keys
}

/// A parallel, bounded source of the sequence numbers `0..records` for event-time
/// jobs: subtask `i` of `p` emits `i, i + p, i + 2p, …`, so every subtask's event time
/// ([`event_time_ms`]) advances at the same pace and the combined watermark downstream
/// moves during the run (windows fire while records flow, not only at the end).
/// Records carry no timestamp: the job assigns them with
/// `assign_timestamps_and_watermarks`, chained to the source.
#[derive(Debug, Clone)]
pub struct EventSource {
    records: u64,
    next: u64,
    stride: u64,
}

impl EventSource {
    /// A source of `0..records` (interleaved over its subtasks).
    pub fn new(records: u64) -> Self {
        EventSource {
            records,
            next: 0,
            stride: 1,
        }
    }
}

impl Source<u64> for EventSource {
    fn open(&mut self, subtask: &SubtaskInfo) -> Result<(), ConnectorError> {
        self.next = subtask.index as u64;
        self.stride = subtask.parallelism as u64;
        Ok(())
    }

    #[inline]
    fn poll_next(
        &mut self,
        out: &mut SourceOutput<'_, u64>,
    ) -> Result<SourceStatus, ConnectorError> {
        let mut left = out.remaining();
        while left > 0 && self.next < self.records {
            out.emit(self.next);
            self.next += self.stride;
            left -= 1;
        }
        Ok(if self.next >= self.records {
            SourceStatus::Finished
        } else {
            SourceStatus::Ready
        })
    }
}

/// Counts the records of a window (Flink's `count()` as an `AggregateFunction`).
#[derive(Debug, Clone, Copy, Default)]
pub struct CountPerWindow;

impl AggregateFunction for CountPerWindow {
    type Input = u64;
    type Accumulator = u64;
    type Output = u64;

    fn create_accumulator(&self) -> u64 {
        0
    }

    #[inline]
    fn add(&self, _value: u64, accumulator: &mut u64) {
        *accumulator += 1;
    }

    fn get_result(&self, accumulator: &u64) -> u64 {
        *accumulator
    }

    fn merge(&self, accumulator: &mut u64, other: u64) {
        *accumulator += other;
    }
}

/// Totals of a [`CountingSink`], shared by all its subtasks.
#[derive(Debug, Default)]
pub struct Totals {
    /// Sum of the records (wrapping).
    pub sum: AtomicU64,
    /// Number of records.
    pub count: AtomicU64,
}

/// A sink that sums and counts its `u64` records per subtask and adds its totals to
/// the shared [`Totals`] when the input ends (no shared write per record).
#[derive(Debug, Clone, Default)]
pub struct CountingSink {
    totals: Arc<Totals>,
    sum: u64,
    count: u64,
}

impl CountingSink {
    /// A sink and the totals it will report.
    pub fn new() -> (Self, Arc<Totals>) {
        let sink = CountingSink::default();
        let totals = Arc::clone(&sink.totals);
        (sink, totals)
    }
}

impl Sink<u64> for CountingSink {
    fn write(&mut self, record: u64) -> Result<(), ConnectorError> {
        self.sum = self.sum.wrapping_add(record);
        self.count += 1;
        Ok(())
    }

    #[inline]
    fn write_batch(&mut self, batch: &mut Batch<u64>) -> Result<(), ConnectorError> {
        self.sum = batch
            .values()
            .iter()
            .fold(self.sum, |sum, &x| sum.wrapping_add(x));
        self.count += batch.len() as u64;
        batch.clear();
        Ok(())
    }

    fn finish(&mut self) -> Result<(), ConnectorError> {
        self.totals.sum.fetch_add(self.sum, Ordering::Relaxed);
        self.totals.count.fetch_add(self.count, Ordering::Relaxed);
        Ok(())
    }
}

/// CPU time (user + system) used so far by all live threads of this process, from
/// `/proc/self/task/*/schedstat` (nanosecond resolution, unlike `/proc/self/stat`).
pub fn cpu_time() -> std::io::Result<Duration> {
    let mut nanos = 0u64;
    for task in std::fs::read_dir("/proc/self/task")? {
        let path = task?.path().join("schedstat");
        // A thread may end between listing and reading: it simply does not count.
        let Ok(text) = std::fs::read_to_string(path) else {
            continue;
        };
        nanos += text
            .split_whitespace()
            .next()
            .and_then(|field| field.parse::<u64>().ok())
            .unwrap_or(0);
    }
    Ok(Duration::from_nanos(nanos))
}

/// The workspace's `target/` folder (or `CARGO_TARGET_DIR`).
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../target")))
}

/// Where the runners write their results (`target/eddy-bench/`), created if missing.
pub fn results_dir() -> std::io::Result<PathBuf> {
    let dir = target_dir().join("eddy-bench");
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// The `docs/` folder of the repository.
pub fn docs_dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counting_source_splits_without_gaps_or_overlap() {
        let mut all = Vec::new();
        for index in 0..3 {
            let mut source = CountingSource::new(10);
            let info = SubtaskInfo {
                job: "t".into(),
                operator: "count".into(),
                index,
                parallelism: 3,
            };
            source.open(&info).unwrap();
            let mut batch = Batch::new();
            loop {
                let mut out = SourceOutput::new(&mut batch, 2);
                let status = source.poll_next(&mut out).unwrap();
                all.extend(batch.drain_values());
                if status == SourceStatus::Finished {
                    break;
                }
            }
        }
        assert_eq!(all, (0..10).collect::<Vec<_>>());
    }

    #[test]
    fn event_source_interleaves_subtasks_without_gaps_or_overlap() {
        let mut all = Vec::new();
        for index in 0..3 {
            let mut source = EventSource::new(10);
            let info = SubtaskInfo {
                job: "t".into(),
                operator: "events".into(),
                index,
                parallelism: 3,
            };
            source.open(&info).unwrap();
            let mut batch = Batch::new();
            let mut mine = Vec::new();
            loop {
                let mut out = SourceOutput::new(&mut batch, 2);
                let status = source.poll_next(&mut out).unwrap();
                mine.extend(batch.drain_values());
                if status == SourceStatus::Finished {
                    break;
                }
            }
            assert!(
                mine.windows(2).all(|pair| pair[1] == pair[0] + 3),
                "{mine:?}"
            );
            all.extend(mine);
        }
        all.sort_unstable();
        assert_eq!(all, (0..10).collect::<Vec<_>>());
    }

    #[test]
    fn keys_are_spread_over_all_keys() {
        let keys = 1_000;
        let mut seen = vec![0u32; keys as usize];
        for seq in 0..100 * keys {
            seen[key_of(seq, keys) as usize] += 1;
        }
        assert!(seen.iter().all(|&n| (50..=150).contains(&n)), "{seen:?}");
        assert_eq!(event_time_ms(&(RECORDS_PER_MS * 7 + 3)), 7);
    }

    #[test]
    fn cpu_time_grows() {
        let before = cpu_time().unwrap();
        let mut x = 0u64;
        for i in 0..5_000_000u64 {
            x = std::hint::black_box(x.wrapping_add(i));
        }
        assert!(cpu_time().unwrap() > before, "{x}");
    }
}
