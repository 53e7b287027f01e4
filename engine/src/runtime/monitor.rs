//! A running job seen from another thread: what a job manager (the daemon's control
//! plane) reads and asks for while [`JobHandle::join`](super::JobHandle::join) waits on
//! the job in a thread of its own.
//!
//! Everything here is control-plane work: it takes short locks that the data path
//! never takes (the tasks only bump the links' atomic counters).

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::channel::LinkMetrics;
use crate::checkpoint::coordinator::{CheckpointCounters, CompletedCheckpoint, SavepointRequest};
use crate::clock::Clock;
use crate::error::EngineError;

use super::{CheckpointStats, JobControl, LinkSnapshot, MetricsSnapshot};

/// Where a job is, in Apache Flink's terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JobStatus {
    /// Its tasks run.
    Running,
    /// A task failed; the job waits to start again under its restart strategy.
    Restarting,
    /// It ended: its input ended, or it was stopped with a savepoint.
    Finished,
    /// It was cancelled.
    Canceled,
    /// It failed for good.
    Failed,
}

impl JobStatus {
    /// Flink's name: `RUNNING`, `RESTARTING`, `FINISHED`, `CANCELED`, `FAILED`.
    pub fn name(self) -> &'static str {
        match self {
            JobStatus::Running => "RUNNING",
            JobStatus::Restarting => "RESTARTING",
            JobStatus::Finished => "FINISHED",
            JobStatus::Canceled => "CANCELED",
            JobStatus::Failed => "FAILED",
        }
    }

    /// Whether the job has ended.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            JobStatus::Finished | JobStatus::Canceled | JobStatus::Failed
        )
    }

    fn from_u8(value: u8) -> Self {
        match value {
            0 => JobStatus::Running,
            1 => JobStatus::Restarting,
            2 => JobStatus::Finished,
            3 => JobStatus::Canceled,
            _ => JobStatus::Failed,
        }
    }

    fn to_u8(self) -> u8 {
        match self {
            JobStatus::Running => 0,
            JobStatus::Restarting => 1,
            JobStatus::Finished => 2,
            JobStatus::Canceled => 3,
            JobStatus::Failed => 4,
        }
    }
}

impl std::fmt::Display for JobStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A failure of the job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobException {
    /// When it happened (milliseconds since the Unix epoch, from the job's clock).
    pub timestamp_ms: i64,
    /// What failed.
    pub message: String,
    /// Whether the job restarted after it.
    pub restarted: bool,
}

/// A job vertex: a chain of fused operators, run as `parallelism` subtasks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VertexInfo {
    /// Its index, in topological order.
    pub id: usize,
    /// Its operators' names joined with ` -> `.
    pub name: String,
    /// Its operators' names, head first.
    pub operators: Vec<String>,
    /// Its parallelism.
    pub parallelism: usize,
}

/// An exchange between two vertices.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EdgeInfo {
    /// The producing vertex.
    pub source: usize,
    /// The consuming vertex.
    pub target: usize,
    /// `FORWARD`, `HASH`, `REBALANCE` or `BROADCAST`, with ` (BLOCKING)` when the
    /// exchange is materialised.
    pub ship_strategy: String,
}

/// The job's DAG of vertices.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobGraphInfo {
    /// The vertices, in topological order.
    pub vertices: Vec<VertexInfo>,
    /// The exchanges.
    pub edges: Vec<EdgeInfo>,
}

/// Completed checkpoints kept for [`JobMonitor::checkpoint_history`].
pub(crate) const HISTORY: usize = 50;

/// A link's counters and the vertices at its ends.
#[derive(Debug, Clone)]
pub(crate) struct MonitoredLink {
    pub(crate) metrics: Arc<LinkMetrics>,
    pub(crate) from_vertex: usize,
    pub(crate) to_vertex: usize,
}

/// What changes with each attempt (a restart builds new links and a new coordinator).
#[derive(Debug)]
pub(crate) struct AttemptView {
    pub(crate) links: Vec<MonitoredLink>,
    pub(crate) savepoints: Sender<SavepointRequest>,
    pub(crate) restarts: u32,
    pub(crate) restored_from: Option<u64>,
}

/// Shared by a [`JobHandle`](super::JobHandle) and its monitors.
#[derive(Debug)]
pub(crate) struct MonitorShared {
    pub(crate) view: Mutex<AttemptView>,
    status: AtomicU8,
    /// Set by a stop with a savepoint: the job then ends `FINISHED`, not `CANCELED`.
    pub(crate) stopping: AtomicBool,
    exceptions: Mutex<Vec<JobException>>,
    pub(crate) graph: JobGraphInfo,
    /// Per node: records its source emitted or its sink received.
    node_records: Arc<Vec<std::sync::atomic::AtomicU64>>,
    /// Per vertex, its source nodes and its other nodes (whose counters are sinks').
    vertex_nodes: Vec<(Vec<usize>, Vec<usize>)>,
    /// Latency markers' travel times.
    latency: Arc<crate::latency::LatencyBook>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) started: Instant,
    pub(crate) started_wall_ms: i64,
    pub(crate) control: Arc<JobControl>,
    pub(crate) counters: Arc<CheckpointCounters>,
}

impl MonitorShared {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        view: AttemptView,
        graph: JobGraphInfo,
        node_records: Arc<Vec<std::sync::atomic::AtomicU64>>,
        latency: Arc<crate::latency::LatencyBook>,
        vertex_nodes: Vec<(Vec<usize>, Vec<usize>)>,
        clock: Arc<dyn Clock>,
        started: Instant,
        control: Arc<JobControl>,
        counters: Arc<CheckpointCounters>,
    ) -> Self {
        MonitorShared {
            view: Mutex::new(view),
            status: AtomicU8::new(JobStatus::Running.to_u8()),
            stopping: AtomicBool::new(false),
            exceptions: Mutex::new(Vec::new()),
            graph,
            node_records,
            vertex_nodes,
            latency,
            started_wall_ms: clock.wall_millis(),
            clock,
            started,
            control,
            counters,
        }
    }

    pub(crate) fn view(&self) -> std::sync::MutexGuard<'_, AttemptView> {
        self.view.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn set_status(&self, status: JobStatus) {
        self.status.store(status.to_u8(), Ordering::Release);
    }

    pub(crate) fn status(&self) -> JobStatus {
        JobStatus::from_u8(self.status.load(Ordering::Acquire))
    }

    pub(crate) fn record_exception(&self, error: &EngineError, restarted: bool) {
        let exception = JobException {
            timestamp_ms: self.clock.wall_millis(),
            message: error.to_string(),
            restarted,
        };
        let mut exceptions = self.exceptions.lock().unwrap_or_else(|e| e.into_inner());
        // A job that keeps failing keeps its first and its newest failures.
        if exceptions.len() == 2 * HISTORY {
            exceptions.remove(1);
        }
        exceptions.push(exception);
    }

    pub(crate) fn metrics(&self) -> MetricsSnapshot {
        let now = self.clock.now();
        let elapsed = now.saturating_duration_since(self.started);
        let view = self.view();
        let links = view
            .links
            .iter()
            .map(|link| {
                let blocked = link.metrics.blocked(now);
                LinkSnapshot {
                    name: link.metrics.name.clone(),
                    records: link.metrics.records.load(Ordering::Relaxed),
                    buffers: link.metrics.buffers.load(Ordering::Relaxed),
                    blocked,
                    backpressure_ratio: if elapsed.is_zero() {
                        0.0
                    } else {
                        blocked.as_secs_f64() / elapsed.as_secs_f64()
                    },
                    from_vertex: link.from_vertex,
                    to_vertex: link.to_vertex,
                }
            })
            .collect();
        let sum = |nodes: &[usize]| -> u64 {
            nodes
                .iter()
                .map(|&node| self.node_records[node].load(Ordering::Relaxed))
                .sum()
        };
        MetricsSnapshot {
            elapsed,
            links,
            vertex_source_records: self.vertex_nodes.iter().map(|(s, _)| sum(s)).collect(),
            vertex_sink_records: self.vertex_nodes.iter().map(|(_, o)| sum(o)).collect(),
        }
    }

    pub(crate) fn latency(&self) -> Vec<crate::latency::VertexLatency> {
        self.latency.snapshot(self.clock.now())
    }

    pub(crate) fn checkpoints(&self) -> CheckpointStats {
        let view = self.view();
        CheckpointStats {
            completed: self.counters.completed.load(Ordering::Relaxed),
            failed: self.counters.failed.load(Ordering::Relaxed),
            last: self
                .counters
                .history
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .back()
                .cloned(),
            restarts: view.restarts,
            restored_from: view.restored_from,
        }
    }

    pub(crate) fn savepoint(&self, path: &Path, stop: bool) -> Result<PathBuf, EngineError> {
        let (reply, outcome) = std::sync::mpsc::channel();
        let request = SavepointRequest {
            path: path.to_path_buf(),
            stop,
            reply,
        };
        let failed = |reason: String| EngineError::Savepoint {
            path: path.to_path_buf(),
            reason,
        };
        // The sender of the current attempt; the lock is not held while waiting.
        let sender = self.view().savepoints.clone();
        sender
            .send(request)
            .map_err(|_| failed("the job has ended".into()))?;
        outcome
            .recv()
            .map_err(|_| failed("the job has ended".into()))?
            .map_err(failed)
    }
}

impl MonitorShared {
    /// Takes a savepoint, then stops the job: it ends `FINISHED`. The savepoint is
    /// published as complete before the cancellation; a task that sees the
    /// cancellation tells its sinks about it first (they commit).
    pub(crate) fn stop_with_savepoint(&self, path: &Path) -> Result<PathBuf, EngineError> {
        let saved = self.savepoint(path, true)?;
        self.stopping.store(true, Ordering::Release);
        self.control.cancel();
        Ok(saved)
    }
}

/// A running job seen from another thread (cheap to clone).
///
/// Get one with [`JobHandle::monitor`](super::JobHandle::monitor) before handing the
/// handle to the thread that joins it.
#[derive(Debug, Clone)]
pub struct JobMonitor {
    pub(crate) shared: Arc<MonitorShared>,
}

impl JobMonitor {
    /// Where the job is.
    pub fn status(&self) -> JobStatus {
        self.shared.status()
    }

    /// When the job started (milliseconds since the Unix epoch).
    pub fn start_time_ms(&self) -> i64 {
        self.shared.started_wall_ms
    }

    /// The job's vertices and exchanges.
    pub fn graph(&self) -> &JobGraphInfo {
        &self.shared.graph
    }

    /// The links' counters right now (of the current attempt).
    pub fn metrics(&self) -> MetricsSnapshot {
        self.shared.metrics()
    }

    /// Latency percentiles per vertex and source vertex, from latency markers (the
    /// last 10 to 20 s of them; empty unless
    /// [`JobConfig::latency_tracking_interval`](crate::config::JobConfig) is set). Not
    /// part of [`JobMonitor::metrics`]: it copies histograms, so read it about once a
    /// second, not per request.
    pub fn latency(&self) -> Vec<crate::latency::VertexLatency> {
        self.shared.latency()
    }

    /// The checkpoint counters right now.
    pub fn checkpoints(&self) -> CheckpointStats {
        self.shared.checkpoints()
    }

    /// The newest completed checkpoints (at most 50), oldest first.
    pub fn checkpoint_history(&self) -> Vec<CompletedCheckpoint> {
        self.shared
            .counters
            .history
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .cloned()
            .collect()
    }

    /// The job's failures, oldest first (the first and the newest when there were
    /// many).
    pub fn exceptions(&self) -> Vec<JobException> {
        self.shared
            .exceptions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Takes a savepoint into folder `path`; see
    /// [`JobHandle::trigger_savepoint`](super::JobHandle::trigger_savepoint).
    pub fn trigger_savepoint(&self, path: impl AsRef<Path>) -> Result<PathBuf, EngineError> {
        self.shared.savepoint(path.as_ref(), false)
    }

    /// Takes a savepoint, then stops the job cleanly (it ends `FINISHED`; whoever joins
    /// the handle sees it end); see
    /// [`JobHandle::stop_with_savepoint`](super::JobHandle::stop_with_savepoint).
    pub fn stop_with_savepoint(&self, path: impl AsRef<Path>) -> Result<PathBuf, EngineError> {
        self.shared.stop_with_savepoint(path.as_ref())
    }

    /// Asks the job to stop (it ends `CANCELED`).
    pub fn cancel(&self) {
        self.shared.control.cancel();
    }
}

/// Keeps the newest [`HISTORY`] completed checkpoints.
pub(crate) fn remember(history: &Mutex<VecDeque<CompletedCheckpoint>>, done: CompletedCheckpoint) {
    let mut history = history.lock().unwrap_or_else(|e| e.into_inner());
    if history.len() == HISTORY {
        history.pop_front();
    }
    history.push_back(done);
}
