//! Latency tracking with markers, as Apache Flink does it (`metrics.latency.interval`).
//!
//! With [`JobConfig::latency_tracking_interval`](crate::config::JobConfig) set, every
//! source subtask emits a [`LatencyMarker`] stamped with the job clock's time once per
//! interval. Markers travel in-band, behind the records emitted before them: in an
//! exchange a marker waits in the link until the buffer being filled is sent (so it
//! measures the buffer timeout too), then follows it through the ring; operators pass it
//! on at once, without holding it for the records they buffer (a window's contents).
//! Every task that takes a marker from an input link records `now − marked` into the
//! histogram of its vertex for the marker's source vertex (Flink's `latency` metric at
//! operator granularity). The operators fused in a chain are function calls of one
//! task: they see the marker at the same instant, so they share their chain's figure.
//!
//! Markers cost nothing per record: a source looks at the clock once per poll, a link
//! holds at most one marker, and recording takes one short, uncontended lock per marker
//! (at most one per source subtask and interval) that only the monitor also takes.
//! BATCH mode's blocking exchanges drop markers: a materialised exchange has no
//! latency to speak of.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

/// A latency marker: when a source subtask emitted it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LatencyMarker {
    /// The job clock's time at the source.
    pub marked: Instant,
    /// The vertex of the source that emitted it (see
    /// [`JobMonitor::graph`](crate::runtime::monitor::JobMonitor::graph)).
    pub source_vertex: u32,
    /// The source subtask that emitted it.
    pub subtask: u32,
}

/// How long the samples behind a reported percentile are kept: figures describe the
/// last 10 to 20 seconds (two windows of [`WINDOW`]), not the whole run.
pub const WINDOW: Duration = Duration::from_secs(10);

/// Percentiles of the latency from one source vertex to one vertex, in microseconds,
/// over the markers of the last 10 to 20 seconds.
#[derive(Debug, Clone, PartialEq)]
pub struct VertexLatency {
    /// The vertex that took the markers from its input.
    pub vertex: usize,
    /// The source vertex that emitted them.
    pub source_vertex: usize,
    /// Markers received since the job started.
    pub markers: u64,
    /// Markers behind the percentiles (the last 10 to 20 s).
    pub recent: u64,
    /// Median.
    pub p50_us: u64,
    /// 95th percentile.
    pub p95_us: u64,
    /// 99th percentile.
    pub p99_us: u64,
    /// 99.9th percentile.
    pub p999_us: u64,
    /// Largest.
    pub max_us: u64,
    /// Mean.
    pub mean_us: f64,
}

/// The samples of one (source vertex, vertex) pair.
struct Pair {
    source_vertex: usize,
    markers: u64,
    /// Samples since `since`, and those of the window before.
    current: Histogram<u64>,
    previous: Histogram<u64>,
    since: Instant,
}

/// Microseconds a histogram can hold (one hour); longer latencies are clamped.
const HIGHEST_US: u64 = 3_600_000_000;

impl Pair {
    fn new(source_vertex: usize, now: Instant) -> Self {
        let histogram = || {
            Histogram::new_with_bounds(1, HIGHEST_US, 2)
                .expect("constant bounds are valid for hdrhistogram")
        };
        Pair {
            source_vertex,
            markers: 0,
            current: histogram(),
            previous: histogram(),
            since: now,
        }
    }

    fn record(&mut self, micros: u64, now: Instant) {
        if now.saturating_duration_since(self.since) >= WINDOW {
            std::mem::swap(&mut self.current, &mut self.previous);
            self.current.reset();
            self.since = now;
        }
        self.markers += 1;
        // Within bounds by the clamp: `saturating_record` cannot fail.
        self.current.saturating_record(micros.clamp(1, HIGHEST_US));
    }

    /// The samples to report at `now` (copied, so the lock is short).
    fn recent(&self, now: Instant) -> (Histogram<u64>, Option<Histogram<u64>>) {
        let age = now.saturating_duration_since(self.since);
        if age >= 2 * WINDOW {
            let mut empty = self.current.clone();
            empty.reset();
            (empty, None)
        } else if age >= WINDOW {
            (self.current.clone(), None)
        } else {
            (self.previous.clone(), Some(self.current.clone()))
        }
    }
}

/// Summarises the samples [`Pair::recent`] copied out (outside the lock).
fn summary(
    vertex: usize,
    source_vertex: usize,
    markers: u64,
    (mut merged, newer): (Histogram<u64>, Option<Histogram<u64>>),
) -> VertexLatency {
    if let Some(newer) = newer {
        // Same bounds: adding cannot fail.
        let _ = merged.add(&newer);
    }
    let q = |quantile: f64| merged.value_at_quantile(quantile);
    VertexLatency {
        vertex,
        source_vertex,
        markers,
        recent: merged.len(),
        p50_us: q(0.5),
        p95_us: q(0.95),
        p99_us: q(0.99),
        p999_us: q(0.999),
        max_us: merged.max(),
        mean_us: if merged.is_empty() {
            0.0
        } else {
            merged.mean()
        },
    }
}

/// The latency histograms of a job: per vertex, one per source vertex whose markers
/// reached it. Shared by the job's tasks (which record) and its monitors (which read).
pub(crate) struct LatencyBook {
    vertices: Vec<Mutex<Vec<Pair>>>,
}

impl std::fmt::Debug for LatencyBook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LatencyBook")
            .field("vertices", &self.vertices.len())
            .finish()
    }
}

impl LatencyBook {
    /// A book for `vertices` vertices.
    pub(crate) fn new(vertices: usize) -> Self {
        LatencyBook {
            vertices: (0..vertices).map(|_| Mutex::new(Vec::new())).collect(),
        }
    }

    /// Vertex `vertex` took `marker` from an input at `now`.
    pub(crate) fn record(&self, vertex: usize, marker: &LatencyMarker, now: Instant) {
        let Some(pairs) = self.vertices.get(vertex) else {
            return;
        };
        let micros = now.saturating_duration_since(marker.marked).as_micros() as u64;
        let source = marker.source_vertex as usize;
        let mut pairs = pairs.lock().unwrap_or_else(|e| e.into_inner());
        let index = match pairs.iter().position(|p| p.source_vertex == source) {
            Some(index) => index,
            None => {
                pairs.push(Pair::new(source, now));
                pairs.len() - 1
            }
        };
        pairs[index].record(micros, now);
    }

    /// Every (source vertex, vertex) pair that received markers, by vertex then source.
    pub(crate) fn snapshot(&self, now: Instant) -> Vec<VertexLatency> {
        let mut out = Vec::new();
        for (vertex, pairs) in self.vertices.iter().enumerate() {
            // Copies under the lock (a few KiB per pair), percentiles outside it.
            let copies: Vec<_> = {
                let pairs = pairs.lock().unwrap_or_else(|e| e.into_inner());
                pairs
                    .iter()
                    .map(|p| (p.source_vertex, p.markers, p.recent(now)))
                    .collect()
            };
            let mut summaries: Vec<VertexLatency> = copies
                .into_iter()
                .map(|(source, markers, recent)| summary(vertex, source, markers, recent))
                .collect();
            summaries.sort_by_key(|s| s.source_vertex);
            out.extend(summaries);
        }
        out
    }
}

/// A task's part in latency tracking.
#[derive(Debug, Clone)]
pub(crate) struct TaskLatency {
    pub(crate) book: std::sync::Arc<LatencyBook>,
    /// The task's vertex (its chain).
    pub(crate) vertex: usize,
    pub(crate) subtask: u32,
    /// How often a source task emits a marker (`None`: it does not).
    pub(crate) interval: Option<Duration>,
}

impl TaskLatency {
    /// A marker of this (source) task's vertex stamped `now`.
    pub(crate) fn marker(&self, now: Instant) -> LatencyMarker {
        LatencyMarker {
            marked: now,
            source_vertex: self.vertex as u32,
            subtask: self.subtask,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::Clock;

    fn marker(marked: Instant, source_vertex: u32) -> LatencyMarker {
        LatencyMarker {
            marked,
            source_vertex,
            subtask: 0,
        }
    }

    #[test]
    fn percentiles_follow_the_recorded_latencies_per_source() {
        let book = LatencyBook::new(3);
        let t0 = crate::clock::ManualClock::new().now();
        // vertex 2 gets markers of source 0 with 1..=100 ms latency, of source 1 with 5 ms
        for ms in 1..=100u64 {
            let now = t0 + Duration::from_secs(1);
            let marked = now - Duration::from_millis(ms);
            book.record(2, &marker(marked, 0), now);
        }
        book.record(2, &marker(t0, 1), t0 + Duration::from_millis(5));
        let snapshot = book.snapshot(t0 + Duration::from_secs(1));
        assert_eq!(snapshot.len(), 2);
        let from_0 = &snapshot[0];
        assert_eq!((from_0.vertex, from_0.source_vertex), (2, 0));
        assert_eq!(from_0.markers, 100);
        // hdrhistogram with 2 significant digits: within 1 %
        let near = |value: u64, expected: u64| value.abs_diff(expected) * 100 <= expected;
        assert!(near(from_0.p50_us, 50_000), "{}", from_0.p50_us);
        assert!(near(from_0.p99_us, 99_000), "{}", from_0.p99_us);
        assert!(near(from_0.max_us, 100_000), "{}", from_0.max_us);
        let from_1 = &snapshot[1];
        assert_eq!((from_1.source_vertex, from_1.markers), (1, 1));
        assert!(near(from_1.p50_us, 5_000));
    }

    #[test]
    fn old_samples_leave_the_percentiles_after_two_windows() {
        let book = LatencyBook::new(1);
        let t0 = crate::clock::ManualClock::new().now();
        book.record(0, &marker(t0, 0), t0 + Duration::from_secs(1));
        let later = t0 + WINDOW + Duration::from_secs(2);
        book.record(0, &marker(later, 0), later + Duration::from_millis(2));
        let snapshot = book.snapshot(later + Duration::from_millis(2));
        // one window on: the old sample still counts
        assert_eq!(snapshot[0].recent, 2);
        assert!(snapshot[0].max_us >= 999_000);
        let much_later = later + WINDOW + Duration::from_secs(1);
        book.record(
            0,
            &marker(much_later, 0),
            much_later + Duration::from_millis(3),
        );
        let read_at = much_later + Duration::from_millis(3);
        let snapshot = book.snapshot(read_at);
        assert_eq!(snapshot[0].markers, 3);
        assert_eq!(snapshot[0].recent, 2, "the 1 s sample aged out");
        assert!(snapshot[0].max_us < 4_000, "{}", snapshot[0].max_us);
        // no marker for a window: only the newest window's sample is left; for two: none
        let snapshot = book.snapshot(read_at + WINDOW);
        assert_eq!((snapshot[0].recent, snapshot[0].markers), (1, 3));
        let snapshot = book.snapshot(read_at + 2 * WINDOW);
        assert_eq!(snapshot[0].recent, 0);
        assert_eq!(snapshot[0].max_us, 0);
    }

    #[test]
    fn a_vertex_out_of_range_is_ignored() {
        let book = LatencyBook::new(1);
        let t0 = crate::clock::ManualClock::new().now();
        book.record(5, &marker(t0, 0), t0);
        assert!(book.snapshot(t0).is_empty());
    }
}
