//! The job manager: the daemon's registry of jobs, each run by a supervisor thread
//! that joins it, a sampler thread that turns counters into rates and records each
//! job's newest checkpoint in the state folder, and the savepoint requests.

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use crate::cli::{Failure, JobReport, Prepared};
use crate::jobs::nexmark::RunStats;
use crate::jobs::preview::Preview;
use crate::prelude::*;

use super::state::{JobRecord, StateDir};
use super::{JobContext, Registry};

/// Rows a job's result preview keeps.
const PREVIEW_ROWS: usize = 1000;
/// Samples the rates are computed over (one a second).
const RATE_WINDOW: usize = 5;

/// Why a request cannot be carried out: the status code and the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// The HTTP status.
    pub status: u16,
    /// One line.
    pub message: String,
}

impl ApiError {
    pub(crate) fn new(status: u16, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
        }
    }

    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        ApiError::new(400, message)
    }

    pub(crate) fn not_found(message: impl Into<String>) -> Self {
        ApiError::new(404, message)
    }
}

/// Per-vertex rates over the last few seconds.
#[derive(Debug, Clone, Default)]
pub(crate) struct VertexRates {
    pub(crate) records_in: u64,
    pub(crate) records_out: u64,
    pub(crate) in_per_second: f64,
    pub(crate) out_per_second: f64,
    pub(crate) backpressure: f64,
}

/// One sample of a job's per-vertex totals.
#[derive(Debug, Clone)]
struct Sample {
    /// Time since the job started.
    at: Duration,
    records_in: Vec<u64>,
    records_out: Vec<u64>,
    blocked: Vec<Duration>,
}

/// A savepoint asked for through the API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SavepointState {
    InProgress,
    Completed(PathBuf),
    Failed(String),
}

/// A job the daemon runs (or ran).
pub(crate) struct ManagedJob {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) monitor: JobMonitor,
    pub(crate) preview: Option<Arc<Preview>>,
    pub(crate) stats: Option<Arc<RunStats>>,
    pub(crate) parallelism: usize,
    record: Mutex<JobRecord>,
    /// When the supervisor saw the job end (ms since the epoch), 0 while it runs.
    end_ms: AtomicU64,
    samples: Mutex<VecDeque<Sample>>,
    rates: Mutex<Vec<VertexRates>>,
    /// Latency-marker percentiles, as of the newest sample.
    latency: Mutex<Vec<VertexLatency>>,
    savepoints: Mutex<HashMap<String, SavepointState>>,
    next_request: AtomicU64,
}

impl ManagedJob {
    /// Its record (a copy).
    pub(crate) fn record(&self) -> JobRecord {
        self.record
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Flink's state name: the monitor's, except that a job whose end the
    /// supervisor has not recorded yet still shows the state it reached.
    pub(crate) fn state(&self) -> JobStatus {
        self.monitor.status()
    }

    pub(crate) fn end_ms(&self) -> Option<i64> {
        match self.end_ms.load(Ordering::Acquire) {
            0 => None,
            ms => Some(ms as i64),
        }
    }

    /// Per vertex: the counters right now and the rates of the last few seconds.
    pub(crate) fn rates(&self) -> Vec<VertexRates> {
        let now = self.totals();
        let mut rates = self.rates.lock().unwrap_or_else(|e| e.into_inner()).clone();
        rates.resize(now.records_in.len(), VertexRates::default());
        for (v, rate) in rates.iter_mut().enumerate() {
            rate.records_in = now.records_in[v];
            rate.records_out = now.records_out[v];
        }
        rates
    }

    pub(crate) fn savepoint_state(&self, request: &str) -> Option<SavepointState> {
        self.savepoints
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(request)
            .cloned()
    }

    fn new_request(&self, state: SavepointState) -> String {
        let n = self.next_request.fetch_add(1, Ordering::Relaxed) + 1;
        let id = format!("{}-sp-{n}", self.id);
        self.savepoints
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id.clone(), state);
        id
    }

    fn finish_request(&self, request: &str, state: SavepointState) {
        self.savepoints
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(request.to_string(), state);
    }

    /// Latency percentiles per vertex and source vertex from latency markers, as of
    /// the newest sample (empty unless the job tracks latency).
    pub(crate) fn latency(&self) -> Vec<VertexLatency> {
        self.latency
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The end-to-end latency from markers: of the (source, sink vertex) pairs, the one
    /// with the largest recent p99.
    pub(crate) fn marker_latency(&self) -> Option<VertexLatency> {
        let graph = self.monitor.graph();
        self.latency()
            .into_iter()
            .filter(|l| l.recent > 0 && !graph.edges.iter().any(|e| e.source == l.vertex))
            .max_by_key(|l| l.p99_us)
    }

    /// Takes one sample of the counters and recomputes the rates.
    fn sample(&self) {
        let sample = self.totals();
        let vertices = sample.records_in.len();
        self.add_sample(sample, vertices);
        // Histograms are copied once a second here, never per request.
        let latency = self.monitor.latency();
        *self.latency.lock().unwrap_or_else(|e| e.into_inner()) = latency;
    }

    /// The per-vertex totals right now.
    fn totals(&self) -> Sample {
        let metrics = self.monitor.metrics();
        let vertices = self.monitor.graph().vertices.len();
        let mut sample = Sample {
            at: metrics.elapsed,
            records_in: vec![0; vertices],
            records_out: vec![0; vertices],
            blocked: vec![Duration::ZERO; vertices],
        };
        // Records a vertex's sources emit enter it; records its sinks receive leave it.
        for (v, records) in metrics.vertex_source_records.iter().enumerate() {
            if let Some(total) = sample.records_in.get_mut(v) {
                *total += records;
            }
        }
        for (v, records) in metrics.vertex_sink_records.iter().enumerate() {
            if let Some(total) = sample.records_out.get_mut(v) {
                *total += records;
            }
        }
        for link in &metrics.links {
            if let Some(total) = sample.records_out.get_mut(link.from_vertex) {
                *total += link.records;
            }
            if let Some(total) = sample.records_in.get_mut(link.to_vertex) {
                *total += link.records;
            }
            if let Some(total) = sample.blocked.get_mut(link.from_vertex) {
                *total += link.blocked;
            }
        }
        sample
    }

    fn add_sample(&self, sample: Sample, vertices: usize) {
        let mut samples = self.samples.lock().unwrap_or_else(|e| e.into_inner());
        // A restart starts the links' counters from zero: start the window again.
        if let Some(last) = samples.back() {
            let went_back = last
                .records_out
                .iter()
                .zip(&sample.records_out)
                .any(|(before, now)| now < before);
            if went_back {
                samples.clear();
            }
        }
        samples.push_back(sample);
        if samples.len() > RATE_WINDOW + 1 {
            samples.pop_front();
        }
        let (first, last) = (&samples[0], &samples[samples.len() - 1]);
        let seconds = last.at.saturating_sub(first.at).as_secs_f64();
        let graph = self.monitor.graph();
        let rates = (0..vertices)
            .map(|v| {
                let rate = |a: u64, b: u64| {
                    if seconds > 0.0 {
                        b.saturating_sub(a) as f64 / seconds
                    } else {
                        0.0
                    }
                };
                let parallelism = graph.vertices[v].parallelism.max(1) as f64;
                let blocked = last.blocked[v]
                    .saturating_sub(first.blocked[v])
                    .as_secs_f64();
                VertexRates {
                    records_in: last.records_in[v],
                    records_out: last.records_out[v],
                    in_per_second: rate(first.records_in[v], last.records_in[v]),
                    out_per_second: rate(first.records_out[v], last.records_out[v]),
                    backpressure: if seconds > 0.0 {
                        (blocked / seconds / parallelism).clamp(0.0, 1.0)
                    } else {
                        0.0
                    },
                }
            })
            .collect();
        *self.rates.lock().unwrap_or_else(|e| e.into_inner()) = rates;
    }
}

/// The daemon's jobs.
pub(crate) struct Manager {
    pub(crate) state: StateDir,
    registry: Registry,
    cores: Option<Vec<usize>>,
    jobs: RwLock<Vec<Arc<ManagedJob>>>,
    /// Jobs that had ended under an earlier daemon on this state folder (listed, not
    /// run), oldest first.
    past: RwLock<Vec<JobRecord>>,
    pub(crate) started_ms: i64,
    clock: Arc<dyn eddy_engine::clock::Clock>,
    id_seed: AtomicU64,
    /// Set on SIGTERM: jobs are cancelled but their records keep them running, so the
    /// next daemon resumes them.
    shutting_down: std::sync::atomic::AtomicBool,
    /// Supervisors still joining their job.
    supervising: (Mutex<usize>, std::sync::Condvar),
}

impl Manager {
    pub(crate) fn new(state: StateDir, registry: Registry, cores: Option<Vec<usize>>) -> Self {
        let clock: Arc<dyn eddy_engine::clock::Clock> = Arc::new(eddy_engine::clock::SystemClock);
        Manager {
            state,
            registry,
            cores,
            jobs: RwLock::new(Vec::new()),
            past: RwLock::new(Vec::new()),
            started_ms: clock.wall_millis(),
            clock,
            id_seed: AtomicU64::new(0),
            shutting_down: std::sync::atomic::AtomicBool::new(false),
            supervising: (Mutex::new(0), std::sync::Condvar::new()),
        }
    }

    pub(crate) fn now_ms(&self) -> i64 {
        self.clock.wall_millis()
    }

    /// Every job, newest first.
    pub(crate) fn jobs(&self) -> Vec<Arc<ManagedJob>> {
        let jobs = self.jobs.read().unwrap_or_else(|e| e.into_inner());
        jobs.iter().rev().cloned().collect()
    }

    pub(crate) fn job(&self, id: &str) -> Result<Arc<ManagedJob>, ApiError> {
        let jobs = self.jobs.read().unwrap_or_else(|e| e.into_inner());
        jobs.iter()
            .find(|job| job.id == id)
            .cloned()
            .ok_or_else(|| ApiError::not_found(format!("unknown job '{id}'")))
    }

    /// Jobs that ended under an earlier daemon, newest first.
    pub(crate) fn past_jobs(&self) -> Vec<JobRecord> {
        let past = self.past.read().unwrap_or_else(|e| e.into_inner());
        past.iter().rev().cloned().collect()
    }

    /// A job that ended under an earlier daemon.
    pub(crate) fn past_job(&self, id: &str) -> Option<JobRecord> {
        let past = self.past.read().unwrap_or_else(|e| e.into_inner());
        past.iter().find(|record| record.id == id).cloned()
    }

    /// The names of the jobs one can submit.
    pub(crate) fn job_names(&self) -> Vec<String> {
        self.registry.names()
    }

    /// A new job id: 16 hex digits, unique in this state folder.
    fn new_id(&self) -> String {
        use std::hash::{BuildHasher, Hasher};
        loop {
            let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
            hasher.write_i64(self.now_ms());
            hasher.write_u64(self.id_seed.fetch_add(1, Ordering::Relaxed));
            hasher.write_u32(std::process::id());
            let id = format!("{:016x}", hasher.finish());
            if !self.state.job_dir(&id).exists() {
                return id;
            }
        }
    }

    /// Submits a job: builds it from its arguments, starts it, records it.
    pub(crate) fn submit(
        self: &Arc<Self>,
        job: &str,
        args: Vec<String>,
        from_savepoint: Option<PathBuf>,
    ) -> Result<String, ApiError> {
        if let Some(path) = &from_savepoint {
            if !path.join("_metadata").is_file() {
                return Err(ApiError::bad_request(format!(
                    "'{}' is not a savepoint or checkpoint folder (no _metadata)",
                    path.display()
                )));
            }
        }
        let id = self.new_id();
        let record = JobRecord {
            id: id.clone(),
            job: job.to_string(),
            args,
            from_savepoint: from_savepoint.clone(),
            checkpoint_dir: None,
            submitted_ms: self.now_ms(),
            state: "CREATED".into(),
            latest_checkpoint: None,
            failure: None,
            resumed: 0,
        };
        let restore = from_savepoint.map(RestoreFrom::Path);
        self.start(record, restore)
            .map_err(|failure| ApiError::new(failure_status(&failure), failure.message))
    }

    /// Resumes the jobs the state folder says were running (a restarted daemon, or a
    /// standby taking over): each from its newest checkpoint, else from the savepoint
    /// it started from, else from scratch.
    pub(crate) fn resume_all(self: &Arc<Self>) {
        for mut record in self.state.load_all() {
            // Jobs that ended under an earlier daemon are listed, not run.
            if !record.should_resume() {
                self.past
                    .write()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(record);
                continue;
            }
            let has_checkpoints = record.checkpoint_dir.as_deref().is_some_and(has_checkpoint);
            let restore = if has_checkpoints {
                Some(RestoreFrom::Latest)
            } else {
                record.from_savepoint.clone().map(RestoreFrom::Path)
            };
            record.resumed += 1;
            tracing::info!(job = %record.id, name = %record.job, ?restore, "resuming job");
            let id = record.id.clone();
            if let Err(failure) = self.start(record.clone(), restore) {
                tracing::error!(job = %id, error = %failure.message, "cannot resume job");
                record.state = "FAILED".into();
                record.failure = Some(format!("cannot resume: {}", failure.message));
                if let Err(error) = self.state.save(&record) {
                    tracing::error!(%error, "cannot record the job's state");
                }
            }
        }
    }

    fn context(&self, record: &JobRecord, restore: Option<RestoreFrom>) -> JobContext {
        JobContext {
            id: record.id.clone(),
            checkpoint_dir: record
                .checkpoint_dir
                .clone()
                .unwrap_or_else(|| self.state.job_dir(&record.id).join("checkpoints")),
            restore,
            preview: Arc::new(Preview::new(PREVIEW_ROWS)),
            cores: self.cores.clone(),
        }
    }

    fn start(
        self: &Arc<Self>,
        mut record: JobRecord,
        restore: Option<RestoreFrom>,
    ) -> Result<String, Failure> {
        let context = self.context(&record, restore);
        let prepared: Prepared = self.registry.build(&record.job, &record.args, &context)?;
        let (name, preview, stats) = (
            prepared.name.clone(),
            prepared.preview.clone(),
            prepared.stats.clone(),
        );
        let (env, report) = prepared.split();
        let config = env.config();
        record.checkpoint_dir = config
            .checkpoint
            .mode
            .enabled()
            .then(|| config.checkpoint.dir.clone())
            .flatten();
        let parallelism = config.effective_parallelism();
        let handle = env.execute_async().map_err(|e| Failure {
            status: if matches!(e, EngineError::Config(_) | EngineError::Graph(_)) {
                2
            } else {
                1
            },
            message: e.to_string(),
        })?;
        let monitor = handle.monitor();
        record.state = "RUNNING".into();
        if let Err(error) = self.state.save(&record) {
            handle.cancel();
            return Err(Failure {
                status: 1,
                message: error.to_string(),
            });
        }
        let job = Arc::new(ManagedJob {
            id: record.id.clone(),
            name,
            monitor,
            preview,
            stats,
            parallelism,
            record: Mutex::new(record),
            end_ms: AtomicU64::new(0),
            samples: Mutex::new(VecDeque::new()),
            rates: Mutex::new(Vec::new()),
            latency: Mutex::new(Vec::new()),
            savepoints: Mutex::new(HashMap::new()),
            next_request: AtomicU64::new(0),
        });
        job.sample();
        self.jobs
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .push(Arc::clone(&job));
        let manager = Arc::clone(self);
        let supervised = Arc::clone(&job);
        *self.supervising.0.lock().unwrap_or_else(|e| e.into_inner()) += 1;
        std::thread::Builder::new()
            .name(format!("eddy-job-{}", job.id))
            .spawn(move || {
                manager.supervise(&supervised, handle, report);
                let (count, changed) = &manager.supervising;
                *count.lock().unwrap_or_else(|e| e.into_inner()) -= 1;
                changed.notify_all();
            })
            .map_err(|e| Failure {
                status: 1,
                message: format!("cannot start the job's supervisor: {e}"),
            })?;
        tracing::info!(job = %job.id, name = %job.name, "job running");
        Ok(job.id.clone())
    }

    /// Joins a job and records how it ended.
    fn supervise(&self, job: &ManagedJob, handle: JobHandle, report: JobReport) {
        let outcome = handle.join();
        job.sample();
        self.note_checkpoint(job);
        let status = job.monitor.status();
        let mut record = job.record();
        record.state = status.name().to_string();
        match &outcome {
            Ok(metrics) => {
                if let Some(line) = report.report(metrics) {
                    tracing::info!(job = %job.id, report = %line, "job report");
                }
            }
            Err(error) => record.failure = Some(error.to_string()),
        }
        job.end_ms
            .store(self.now_ms().max(1) as u64, Ordering::Release);
        if self.shutting_down.load(Ordering::Acquire) {
            // Its record still says it runs: the next daemon resumes it.
            tracing::info!(job = %job.id, "job stopped for the daemon's shutdown");
            return;
        }
        tracing::info!(job = %job.id, state = %record.state, "job ended");
        if let Err(error) = self.state.save(&record) {
            tracing::error!(job = %job.id, %error, "cannot record the job's end");
        }
        *job.record.lock().unwrap_or_else(|e| e.into_inner()) = record;
    }

    /// Records a job's newest checkpoint in its record when it changed.
    fn note_checkpoint(&self, job: &ManagedJob) {
        let Some(last) = job.monitor.checkpoints().last else {
            return;
        };
        let mut record = job.record.lock().unwrap_or_else(|e| e.into_inner());
        if record.latest_checkpoint.as_ref() != Some(&last.path) {
            record.latest_checkpoint = Some(last.path);
            if let Err(error) = self.state.save(&record) {
                tracing::warn!(job = %job.id, %error, "cannot record the newest checkpoint");
            }
        }
    }

    /// Samples every running job (called about once a second).
    pub(crate) fn sample_all(&self) {
        for job in self.jobs() {
            if job.end_ms().is_none() {
                job.sample();
                self.note_checkpoint(&job);
            }
        }
    }

    /// Starts a savepoint (or a stop with one) in a thread of its own; returns the
    /// request id.
    pub(crate) fn savepoint(
        &self,
        job: &Arc<ManagedJob>,
        target: Option<&str>,
        stop: bool,
    ) -> Result<String, ApiError> {
        if job.state() != JobStatus::Running {
            return Err(ApiError::new(
                409,
                format!("job '{}' is {}, not RUNNING", job.id, job.state()),
            ));
        }
        let folder = match target {
            Some(name) => {
                validate_target(name)?;
                self.state.savepoints().join(name)
            }
            None => {
                let n = job.next_request.load(Ordering::Relaxed) + 1;
                self.state.savepoints().join(format!("{}-{n}", job.id))
            }
        };
        if folder.exists()
            && std::fs::read_dir(&folder).is_ok_and(|mut entries| entries.next().is_some())
        {
            return Err(ApiError::bad_request(format!(
                "savepoint folder '{}' exists and is not empty",
                folder.display()
            )));
        }
        let request = job.new_request(SavepointState::InProgress);
        let (monitor, worker_job, worker_request) =
            (job.monitor.clone(), Arc::clone(job), request.clone());
        std::thread::Builder::new()
            .name("eddy-savepoint".into())
            .spawn(move || {
                let outcome = if stop {
                    monitor.stop_with_savepoint(&folder)
                } else {
                    monitor.trigger_savepoint(&folder)
                };
                let state = match outcome {
                    Ok(path) => SavepointState::Completed(path),
                    Err(error) => SavepointState::Failed(error.to_string()),
                };
                worker_job.finish_request(&worker_request, state);
            })
            .map_err(|e| ApiError::new(500, format!("cannot start the savepoint: {e}")))?;
        Ok(request)
    }

    /// Cancels every job without recording it: they resume when a daemon starts on
    /// this state folder again (used on SIGTERM).
    pub(crate) fn begin_shutdown(&self) {
        self.shutting_down.store(true, Ordering::Release);
        for job in self.jobs() {
            job.monitor.cancel();
        }
    }

    /// Waits (at most `limit`) until every supervisor has seen its job end.
    pub(crate) fn wait_for_jobs(&self, limit: Duration) {
        let (count, changed) = &self.supervising;
        let guard = count.lock().unwrap_or_else(|e| e.into_inner());
        let _ = changed.wait_timeout_while(guard, limit, |running| *running > 0);
    }
}

/// A savepoint folder name: one plain path component.
fn validate_target(name: &str) -> Result<(), ApiError> {
    let path = Path::new(name);
    let plain = !name.is_empty()
        && !name.starts_with('.')
        && path.components().count() == 1
        && matches!(
            path.components().next(),
            Some(std::path::Component::Normal(_))
        );
    if plain {
        Ok(())
    } else {
        Err(ApiError::bad_request(format!(
            "target-directory '{name}' must be a plain folder name inside the state folder's savepoints/ (no '/', '..' or leading '.')"
        )))
    }
}

/// Whether a job's checkpoint folder holds a checkpoint (`<dir>/<job name>/chk-<n>`).
fn has_checkpoint(dir: &Path) -> bool {
    let Ok(jobs) = std::fs::read_dir(dir) else {
        return false;
    };
    jobs.flatten().any(|job| {
        std::fs::read_dir(job.path()).is_ok_and(|entries| {
            entries.flatten().any(|entry| {
                entry
                    .file_name()
                    .to_str()
                    .is_some_and(|name| name.starts_with("chk-"))
            })
        })
    })
}

fn failure_status(failure: &Failure) -> u16 {
    if failure.status == 2 {
        400
    } else {
        500
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn savepoint_targets_stay_inside() {
        assert!(validate_target("before-upgrade").is_ok());
        for bad in ["", "..", "../x", "/etc", "a/b", ".hidden", "./a"] {
            let error = validate_target(bad).unwrap_err();
            assert_eq!(error.status, 400, "{bad}");
        }
    }
}
