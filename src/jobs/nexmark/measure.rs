//! What `eddy nexmark run` measures: events read, rows written and per-record latency.
//!
//! A [`RunStats`] is shared by a run's sources and sinks:
//!
//! * every source subtask adds the records it emitted to [`RunStats::records_read`],
//!   once per poll ([`SourceProbe`]), and stamps the bids it emits with the instant,
//!   by the job's clock, they entered the source ([`IngestTime`]: the generator once per
//!   poll, the CSV source once per row);
//! * every sink subtask ([`MeasuredSink`]) reads the clock once per buffer of records it
//!   receives and records, for each row that carries its bid's stamp
//!   ([`CsvRow::ingest`]), the time since into its own hdrhistogram; it adds the rows
//!   it wrote to [`RunStats::rows_out`] and merges its histogram into the run's when
//!   its input ends (the only lock, once per subtask).
//!
//! Only the stateless queries' rows carry a stamp (q0, q1, q2, q10, q13, q14, q21, q22: one
//! row per bid, so "the event a result depends on" is that bid); the other queries'
//! results come from windows that fire on watermarks or from state updated by many
//! events, and report no latency (see `docs/nexmark.md`).
//!
//! [`IngestTime`]: crate::connectors::nexmark::IngestTime

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use crate::connectors::files::BadRecordPolicy;
use crate::connectors::nexmark::{CsvRow, SourceProbe};
use crate::engine::clock::Clock;
use crate::prelude::*;

use super::changelog::ResultMode;
use super::Input;

/// The largest latency the histograms hold (longer ones count as this): one hour.
const MAX_LATENCY_NS: u64 = 3_600_000_000_000;

/// What a query reads, where and how it writes, and what the run measures.
#[derive(Debug, Clone)]
pub struct Io {
    /// The input: CSV files or the generator.
    pub input: Input,
    /// The result file; `None`: a blackhole sink.
    pub output: Option<PathBuf>,
    /// The final result or the changelog (updating queries).
    pub mode: ResultMode,
    /// Counters and latency of the run.
    pub stats: Arc<RunStats>,
    /// What the CSV sources of `--input-dir` do with a row that does not parse
    /// (`--on-bad-record`; default fail). Rows skipped or dead-lettered are counted in
    /// [`RunStats::bad_records`].
    pub on_bad_record: BadRecordPolicy,
}

impl Io {
    /// Reads `input`, writes `output` as `mode` says, with fresh statistics measured
    /// by `clock` (the job's, [`JobConfig::clock`]).
    pub fn new(
        input: Input,
        output: Option<PathBuf>,
        mode: ResultMode,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Io {
            input,
            output,
            mode,
            stats: Arc::new(RunStats::new(clock)),
            on_bad_record: BadRecordPolicy::Fail,
        }
    }

    /// Handles rows of the input files that do not parse by `policy`.
    pub fn with_bad_records(mut self, policy: BadRecordPolicy) -> Self {
        self.on_bad_record = policy;
        self
    }
}

/// Counters and latency histogram of one run, shared by its sources and sinks.
#[derive(Debug)]
pub struct RunStats {
    clock: Arc<dyn Clock>,
    records_read: Arc<AtomicU64>,
    bad_records: Arc<AtomicU64>,
    rows_out: AtomicU64,
    latency_ns: Mutex<Histogram<u64>>,
}

/// Latency percentiles in microseconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LatencySummary {
    /// Median.
    pub p50_us: f64,
    /// 99th percentile.
    pub p99_us: f64,
    /// 99.9th percentile.
    pub p999_us: f64,
    /// Largest.
    pub max_us: f64,
    /// Number of records measured.
    pub samples: u64,
}

fn new_histogram() -> Histogram<u64> {
    // Bounds are valid constants (1 ≤ low, high ≥ 2·low, 3 significant digits).
    Histogram::new_with_bounds(1, MAX_LATENCY_NS, 3).expect("valid histogram bounds")
}

impl RunStats {
    /// Zero counters, an empty histogram; time read from `clock`.
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        RunStats {
            clock,
            records_read: Arc::new(AtomicU64::new(0)),
            bad_records: Arc::new(AtomicU64::new(0)),
            rows_out: AtomicU64::new(0),
            latency_ns: Mutex::new(new_histogram()),
        }
    }

    /// The clock the run is measured with.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// The probe a source of this run reports through.
    pub fn probe(&self) -> SourceProbe {
        SourceProbe {
            clock: Arc::clone(&self.clock),
            emitted: Arc::clone(&self.records_read),
        }
    }

    /// The counter the run's CSV sources add the rows they skipped or dead-lettered to.
    pub fn bad_records_counter(&self) -> Arc<AtomicU64> {
        Arc::clone(&self.bad_records)
    }

    /// Input rows skipped or dead-lettered so far (`--on-bad-record skip-and-count` or
    /// `dead-letter`).
    pub fn bad_records(&self) -> u64 {
        self.bad_records.load(Ordering::Relaxed)
    }

    /// Records emitted by the run's sources so far.
    pub fn records_read(&self) -> u64 {
        self.records_read.load(Ordering::Relaxed)
    }

    /// Rows the sinks wrote (blackhole: received) so far; for a final result file, the
    /// rows in it once the run ended.
    pub fn rows_out(&self) -> u64 {
        self.rows_out.load(Ordering::Relaxed)
    }

    /// Adds `rows` to [`RunStats::rows_out`].
    pub fn add_rows_out(&self, rows: u64) {
        self.rows_out.fetch_add(rows, Ordering::Relaxed);
    }

    /// The latency percentiles, `None` if no record was measured.
    pub fn latency(&self) -> Option<LatencySummary> {
        let histogram = self.latency_ns.lock().unwrap_or_else(|e| e.into_inner());
        if histogram.is_empty() {
            return None;
        }
        let us = |ns: u64| ns as f64 / 1000.0;
        Some(LatencySummary {
            p50_us: us(histogram.value_at_quantile(0.5)),
            p99_us: us(histogram.value_at_quantile(0.99)),
            p999_us: us(histogram.value_at_quantile(0.999)),
            max_us: us(histogram.max()),
            samples: histogram.len(),
        })
    }

    fn merge(&self, histogram: &Histogram<u64>) {
        let mut total = self.latency_ns.lock().unwrap_or_else(|e| e.into_inner());
        // Same bounds on both sides, so adding cannot fail; saturate if it ever did.
        let _ = total.add(histogram);
    }
}

/// Drops every record (the benchmark's sink when there is no output file).
#[derive(Debug, Clone, Copy, Default)]
pub struct Blackhole;

impl<T: Send + 'static> Sink<T> for Blackhole {
    fn write(&mut self, record: T) -> Result<(), ConnectorError> {
        drop(record);
        Ok(())
    }

    fn write_batch(&mut self, batch: &mut Batch<T>) -> Result<(), ConnectorError> {
        batch.clear();
        Ok(())
    }
}

/// A sink that measures what passes into `inner`: the latency of every stamped row
/// (one clock read per buffer) and, if counting, the rows (see the module docs).
pub struct MeasuredSink<S> {
    inner: S,
    stats: Arc<RunStats>,
    clock: Arc<dyn Clock>,
    count_rows: bool,
    histogram: Option<Histogram<u64>>,
    /// When this subtask's histogram was last merged into the run's (once a second,
    /// so that a running job's percentiles can be read: the daemon, the progress).
    merged_at: Option<Instant>,
}

/// How often a sink merges its latency histogram into the run's.
const MERGE_EVERY: Duration = Duration::from_secs(1);

impl<S: Clone> Clone for MeasuredSink<S> {
    /// Another subtask's sink: same run, its own (not yet created) histogram.
    fn clone(&self) -> Self {
        MeasuredSink {
            inner: self.inner.clone(),
            stats: Arc::clone(&self.stats),
            clock: Arc::clone(&self.clock),
            count_rows: self.count_rows,
            histogram: None,
            merged_at: None,
        }
    }
}

impl<S> MeasuredSink<S> {
    /// Measures what `inner` receives for `stats` (with its clock); counts the rows
    /// into [`RunStats::rows_out`] if `count_rows` (a sink that materializes a
    /// changelog counts its final rows itself).
    pub fn new(inner: S, stats: Arc<RunStats>, count_rows: bool) -> Self {
        MeasuredSink {
            clock: Arc::clone(&stats.clock),
            inner,
            stats,
            count_rows,
            histogram: None,
            merged_at: None,
        }
    }

    fn record<R: CsvRow>(&mut self, rows: &[R]) {
        if self.count_rows {
            self.stats.add_rows_out(rows.len() as u64);
        }
        let Some(histogram) = self.histogram.as_mut() else {
            return;
        };
        let mut now = None;
        // Rows stamped alike (a generator stamps a whole poll with one instant) are
        // recorded together: one subtraction and one histogram update per run of equal
        // stamps instead of per row; the histogram is the same.
        let mut run: Option<(Instant, u64)> = None;
        let clock = &self.clock;
        let mut flush = |(ingest, rows): (Instant, u64)| {
            let now = *now.get_or_insert_with(|| clock.now());
            let waited: Duration = now.saturating_duration_since(ingest);
            histogram.saturating_record_n((waited.as_nanos() as u64).max(1), rows);
        };
        for row in rows {
            if let Some(ingest) = row.ingest() {
                match &mut run {
                    Some((stamp, rows)) if *stamp == ingest => *rows += 1,
                    _ => {
                        if let Some(done) = run.replace((ingest, 1)) {
                            flush(done);
                        }
                    }
                }
            }
        }
        if let Some(done) = run {
            flush(done);
        }
        // Once a second (only when this buffer read the clock anyway): the run's
        // histogram gets this subtask's samples so far, and this one starts empty.
        if let Some(now) = now {
            match self.merged_at {
                Some(at) if now.saturating_duration_since(at) < MERGE_EVERY => {}
                Some(_) => {
                    self.stats.merge(histogram);
                    histogram.reset();
                    self.merged_at = Some(now);
                }
                None => self.merged_at = Some(now),
            }
        }
    }
}

impl<R, S> Sink<R> for MeasuredSink<S>
where
    R: CsvRow + Send + 'static,
    S: Sink<R>,
{
    fn open(&mut self, subtask: &SubtaskInfo) -> Result<(), ConnectorError> {
        self.histogram = Some(new_histogram());
        self.inner.open(subtask)
    }

    fn write(&mut self, record: R) -> Result<(), ConnectorError> {
        self.record(std::slice::from_ref(&record));
        self.inner.write(record)
    }

    fn write_batch(&mut self, batch: &mut Batch<R>) -> Result<(), ConnectorError> {
        self.record(batch.values());
        self.inner.write_batch(batch)
    }

    fn on_watermark(&mut self, watermark: i64) -> Result<(), ConnectorError> {
        self.inner.on_watermark(watermark)
    }

    fn pre_commit(&mut self, checkpoint_id: u64) -> Result<Option<Vec<u8>>, ConnectorError> {
        self.inner.pre_commit(checkpoint_id)
    }

    fn commit(&mut self, checkpoint_id: u64) -> Result<(), ConnectorError> {
        self.inner.commit(checkpoint_id)
    }

    fn restore(
        &mut self,
        checkpoint_id: u64,
        states: &[(u32, &[u8])],
    ) -> Result<(), ConnectorError> {
        self.inner.restore(checkpoint_id, states)
    }

    fn finish(&mut self) -> Result<(), ConnectorError> {
        if let Some(histogram) = self.histogram.take() {
            self.stats.merge(&histogram);
        }
        self.inner.finish()
    }
}
