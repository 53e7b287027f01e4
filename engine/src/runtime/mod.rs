//! The thread-per-core runtime: one glommio `LocalExecutor` pinned to each core of
//! the job, running the tasks (chain subtasks) assigned to it.
//!
//! [`launch`] plans the graph, creates every link (one SPSC ring pair per producer
//! subtask × consumer subtask of each exchange), and starts the executors; each executor
//! builds its tasks on its own thread (operators never cross threads) and runs them
//! until they end. Subtask `i` of a chain runs on core `cores[(offset + i) % n]`, where
//! `offset` moves on by the parallelism of each chain placed before it, so that
//! non-parallel chains spread over the cores instead of piling up on the first one.

pub mod doorbell;
pub mod monitor;
pub(crate) mod task;

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use glommio::{LocalExecutorBuilder, Placement};

use crate::blocking::{BlockingShared, SpillSettings};
use crate::checkpoint::coordinator::{
    first_id, CheckpointCounters, CheckpointIds, CompletedCheckpoint, Coordinator,
    SavepointRequest, ToCoordinator,
};
use crate::checkpoint::{CheckpointingMode, RestoreFrom, RestoredState};
use crate::clock::Clock;
use crate::config::JobConfig;
use crate::error::EngineError;
use crate::graph::{
    operator_id, AnyBox, AnySend, BuildContext, EdgeId, Graph, NodeId, NodeKind, TaskFuture,
};
use crate::operators::source::SubtaskInfo;
use crate::partition::Partitioning;
use crate::plan::Plan;
use crate::side::{SharedSideOutputs, SideOutputs};
use doorbell::Doorbell;
use monitor::{
    AttemptView, EdgeInfo, JobGraphInfo, JobMonitor, JobStatus, MonitorShared, MonitoredLink,
    VertexInfo,
};
use task::{TaskCheckpoints, TaskEnv};

/// Shared between a job's tasks and its handle: cancellation and the first failure.
#[derive(Debug, Default)]
pub(crate) struct JobControl {
    /// Tasks stop (the job was cancelled, or an attempt failed).
    cancelled: AtomicBool,
    /// The user cancelled the job: no restart.
    user_cancelled: AtomicBool,
    running_executors: AtomicUsize,
    failure: Mutex<Option<EngineError>>,
}

impl JobControl {
    pub(crate) fn is_cancelled(&self) -> bool {
        // Acquire: a task that sees the cancellation also sees what was published
        // before it (a completed savepoint, which its sinks then commit).
        self.cancelled.load(Ordering::Acquire)
    }

    /// Cancels the job (no restart follows).
    pub(crate) fn cancel(&self) {
        self.user_cancelled.store(true, Ordering::Relaxed);
        self.cancelled.store(true, Ordering::Release);
    }

    /// Stops the tasks of the current attempt.
    fn stop(&self) {
        self.cancelled.store(true, Ordering::Relaxed);
    }

    fn is_user_cancelled(&self) -> bool {
        self.user_cancelled.load(Ordering::Relaxed)
    }

    /// Records the first failure and stops every task.
    pub(crate) fn fail(&self, error: EngineError) {
        let mut failure = self.failure.lock().unwrap_or_else(|e| e.into_inner());
        if failure.is_none() {
            tracing::debug!(%error, "job failed");
            *failure = Some(error);
        }
        self.stop();
    }

    fn take_failure(&self) -> Option<EngineError> {
        self.failure
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
    }
}

/// Counts an executor as running until it ends, even by a panic.
struct RunningGuard(Arc<JobControl>);

impl Drop for RunningGuard {
    fn drop(&mut self) {
        self.0.running_executors.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A cloneable, thread-safe way to cancel a running job (e.g. from a signal handler).
#[derive(Debug, Clone)]
pub struct Canceller(Arc<JobControl>);

impl Canceller {
    /// Asks every task to stop. A cancelled job ends without error.
    pub fn cancel(&self) {
        self.0.cancel();
    }
}

/// Counters of a running or finished job.
#[derive(Debug, Clone)]
pub struct MetricsSnapshot {
    /// Time since the job started.
    pub elapsed: Duration,
    /// One entry per link.
    pub links: Vec<LinkSnapshot>,
    /// Per vertex (see [`JobMonitor::graph`]): records its sources emitted.
    pub vertex_source_records: Vec<u64>,
    /// Per vertex: records its sinks received.
    pub vertex_sink_records: Vec<u64>,
}

/// Counters of one link.
#[derive(Debug, Clone)]
pub struct LinkSnapshot {
    /// `producer (i/p) -> consumer (j/q)`.
    pub name: String,
    /// Records sent so far.
    pub records: u64,
    /// Buffers sent so far.
    pub buffers: u64,
    /// Time the producer was blocked on the full ring.
    pub blocked: Duration,
    /// `blocked / elapsed`: the share of time this link backpressured its producer.
    pub backpressure_ratio: f64,
    /// The producing vertex (see [`JobMonitor::graph`]).
    pub from_vertex: usize,
    /// The consuming vertex.
    pub to_vertex: usize,
}

/// A running job.
pub struct JobHandle {
    shared: Arc<Shared>,
    control: Arc<JobControl>,
    executors: Vec<glommio::ExecutorJoinHandle<()>>,
    coordinator: Option<std::thread::JoinHandle<()>>,
    clock: Arc<dyn Clock>,
    ids: Arc<CheckpointIds>,
    counters: Arc<CheckpointCounters>,
    /// What monitors see: the current attempt's links and savepoint channel, status,
    /// failures.
    monitor: Arc<MonitorShared>,
}

/// Checkpoint counters of a job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointStats {
    /// Checkpoints completed by this run.
    pub completed: u64,
    /// Checkpoints that failed or were abandoned.
    pub failed: u64,
    /// The newest completed checkpoint.
    pub last: Option<CompletedCheckpoint>,
    /// How often the job restarted after a failure.
    pub restarts: u32,
    /// The checkpoint the current attempt started from, if any.
    pub restored_from: Option<u64>,
}

impl JobHandle {
    /// Asks the job to stop; [`JobHandle::join`] then returns.
    pub fn cancel(&self) {
        self.control.cancel();
    }

    /// A handle that can cancel the job from another thread.
    pub fn canceller(&self) -> Canceller {
        Canceller(Arc::clone(&self.control))
    }

    /// The job's checkpoint counters right now.
    pub fn checkpoints(&self) -> CheckpointStats {
        self.monitor.checkpoints()
    }

    /// A view of the job for other threads (status, counters, checkpoints, failures,
    /// savepoints, cancellation) that stays valid while this handle is joined.
    pub fn monitor(&self) -> JobMonitor {
        JobMonitor {
            shared: Arc::clone(&self.monitor),
        }
    }

    /// Takes a savepoint into folder `path` (which must not exist or be empty) and
    /// returns its path once it is complete. A savepoint is self-contained and kept
    /// until deleted; restore from it with `RestoreFrom::Path` (`--restore PATH`), also
    /// with another parallelism.
    pub fn trigger_savepoint(&self, path: impl AsRef<Path>) -> Result<PathBuf, EngineError> {
        self.monitor.savepoint(path.as_ref(), false)
    }

    /// Takes a savepoint, then stops the job cleanly: sources emit nothing after the
    /// savepoint's barrier, sinks commit what the savepoint covers, and the job ends.
    /// Returns the savepoint's path and the job's final counters.
    pub fn stop_with_savepoint(
        self,
        path: impl AsRef<Path>,
    ) -> Result<(PathBuf, MetricsSnapshot), EngineError> {
        let saved = self.monitor.stop_with_savepoint(path.as_ref())?;
        let metrics = self.join()?;
        Ok((saved, metrics))
    }

    /// Whether every task has ended.
    pub fn is_finished(&self) -> bool {
        self.control.running_executors.load(Ordering::Acquire) == 0
    }

    /// The job's counters right now.
    pub fn metrics(&self) -> MetricsSnapshot {
        self.monitor.metrics()
    }

    /// Latency percentiles per vertex and source vertex; see [`JobMonitor::latency`].
    pub fn latency(&self) -> Vec<crate::latency::VertexLatency> {
        self.monitor.latency()
    }

    /// Waits until every task has ended: `Ok` when the job finished or was cancelled,
    /// the first failure otherwise.
    ///
    /// A failure restarts the job under the restart strategy (from its newest complete
    /// checkpoint when checkpointing is on); each restart is logged and counted.
    pub fn join(mut self) -> Result<MetricsSnapshot, EngineError> {
        loop {
            let outcome = self.join_attempt();
            let failure = match outcome {
                Ok(metrics) => {
                    let status = if self.control.is_user_cancelled()
                        && !self.monitor.stopping.load(Ordering::Acquire)
                    {
                        JobStatus::Canceled
                    } else {
                        JobStatus::Finished
                    };
                    self.after_cancel();
                    self.monitor.set_status(status);
                    return Ok(metrics);
                }
                Err(failure) => failure,
            };
            let attempt = self.monitor.view().restarts + 1;
            let strategy = self.shared.config.checkpoint.restart;
            let delay = match strategy.delay(attempt) {
                Some(delay) if !self.control.is_user_cancelled() => delay,
                _ => {
                    self.monitor.record_exception(&failure, false);
                    self.monitor.set_status(JobStatus::Failed);
                    return Err(failure);
                }
            };
            self.monitor.record_exception(&failure, true);
            self.monitor.set_status(JobStatus::Restarting);
            tracing::warn!(
                error = %failure,
                restart = attempt,
                ?delay,
                "job failed; restarting"
            );
            if !crate::clock::wait_until(Some(self.clock.now() + delay), || {
                self.control.is_user_cancelled()
            }) && self.control.is_user_cancelled()
            {
                self.monitor.set_status(JobStatus::Canceled);
                return Ok(self.metrics());
            }
            self.monitor.view().restarts = attempt;
            let restore = if self.shared.config.checkpoint.mode.enabled() {
                let mut config = self.shared.config.checkpoint.clone();
                config.restore = Some(RestoreFrom::Latest);
                RestoredState::open(&config, &self.shared.config.name)?
            } else {
                None
            };
            self.control.cancelled.store(false, Ordering::Relaxed);
            let attempt = match start_attempt(
                &self.shared,
                &self.control,
                &self.ids,
                &self.counters,
                restore.map(Arc::new),
            ) {
                Ok(attempt) => attempt,
                Err(error) => {
                    self.monitor.record_exception(&error, false);
                    self.monitor.set_status(JobStatus::Failed);
                    return Err(error);
                }
            };
            self.install(attempt);
            self.monitor.set_status(JobStatus::Running);
        }
    }

    /// Deletes the job's checkpoints after a cancellation, when asked to.
    fn after_cancel(&self) {
        let checkpoint = &self.shared.config.checkpoint;
        if !(self.control.is_user_cancelled() && checkpoint.delete_on_cancel) {
            return;
        }
        let Some(root) = &checkpoint.dir else {
            return;
        };
        if let Ok(dir) = eddy_storage::snapshot::job_dir(root, &self.shared.config.name) {
            match std::fs::remove_dir_all(&dir) {
                Ok(()) => tracing::info!(folder = %dir.display(), "cancelled: checkpoints deleted"),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(error) => {
                    tracing::warn!(folder = %dir.display(), %error, "cannot delete the checkpoints")
                }
            }
        }
    }

    fn install(&mut self, attempt: Attempt) {
        self.executors = attempt.executors;
        self.coordinator = attempt.coordinator;
        let mut view = self.monitor.view();
        view.links = attempt.links;
        view.savepoints = attempt.savepoints;
        view.restored_from = attempt.restored_from;
    }

    fn join_attempt(&mut self) -> Result<MetricsSnapshot, EngineError> {
        let mut panic = None;
        for executor in self.executors.drain(..) {
            if let Err(error) = executor.join() {
                panic.get_or_insert_with(|| error.to_string());
            }
        }
        if let Some(coordinator) = self.coordinator.take() {
            let _ = coordinator.join();
        }
        let metrics = self.metrics();
        if let Some(failure) = self.control.take_failure() {
            return Err(failure);
        }
        if let Some(reason) = panic {
            return Err(EngineError::TaskFailed {
                task: "executor".into(),
                reason,
            });
        }
        Ok(metrics)
    }
}

impl Drop for JobHandle {
    fn drop(&mut self) {
        if !self.executors.is_empty() {
            self.control.cancel();
            for executor in self.executors.drain(..) {
                let _ = executor.join();
            }
        }
        if let Some(coordinator) = self.coordinator.take() {
            let _ = coordinator.join();
        }
    }
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(text) = payload.downcast_ref::<&str>() {
        (*text).to_string()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        "panic".to_string()
    }
}

/// One subtask of one chain, with the ends of its links.
struct TaskSpec {
    chain: usize,
    subtask: usize,
    /// Per exchange edge leaving the chain: the senders, by consumer subtask.
    senders: HashMap<EdgeId, Vec<AnySend>>,
    /// The receivers of the head's input links.
    receivers: Vec<AnySend>,
    /// Rung by whoever gives this task work.
    doorbell: Arc<Doorbell>,
}

/// Plans `graph` and starts it (from the snapshot the settings name, if any).
pub(crate) fn launch(mut graph: Graph, config: JobConfig) -> Result<JobHandle, EngineError> {
    config.validate()?;
    let plan = Plan::new(&mut graph, &config)?;
    let operator_ids: Vec<String> = graph
        .nodes
        .iter()
        .enumerate()
        .map(|(index, node)| operator_id(node, index))
        .collect();
    let mut seen = HashSet::new();
    for id in &operator_ids {
        if !seen.insert(id.clone()) {
            return Err(EngineError::Graph(format!(
                "two operators have the id '{id}': uids must be unique within a job"
            )));
        }
    }
    if plan.blocking.iter().any(|&blocking| blocking) {
        prepare_spill_dir(&config)?;
    }
    let restored = RestoredState::open(&config.checkpoint, &config.name)?;
    if let Some(restored) = &restored {
        restored.check_all_matched(&seen, config.checkpoint.allow_non_restored_state)?;
    }
    let clock: Arc<dyn Clock> = Arc::clone(&config.clock);
    let started = clock.now();
    let node_records = Arc::new((0..graph.nodes.len()).map(|_| AtomicU64::new(0)).collect());
    let latency = Arc::new(crate::latency::LatencyBook::new(plan.chains.len()));
    let shared = Arc::new(Shared {
        graph,
        plan,
        config,
        operator_ids,
        node_records,
        latency,
    });
    let control = Arc::new(JobControl::default());
    let ids = Arc::new(CheckpointIds::default());
    let counters = Arc::new(CheckpointCounters::default());
    let attempt = start_attempt(&shared, &control, &ids, &counters, restored.map(Arc::new))?;
    let monitor = Arc::new(MonitorShared::new(
        AttemptView {
            links: attempt.links,
            savepoints: attempt.savepoints,
            restarts: 0,
            restored_from: attempt.restored_from,
        },
        graph_info(&shared),
        Arc::clone(&shared.node_records),
        Arc::clone(&shared.latency),
        shared
            .plan
            .chains
            .iter()
            .map(|chain| {
                chain.nodes.iter().partition(|&&node| {
                    matches!(shared.graph.nodes[node].kind, NodeKind::Source { .. })
                })
            })
            .collect(),
        Arc::clone(&clock),
        started,
        Arc::clone(&control),
        Arc::clone(&counters),
    ));
    Ok(JobHandle {
        shared,
        control,
        executors: attempt.executors,
        coordinator: attempt.coordinator,
        clock,
        ids,
        counters,
        monitor,
    })
}

/// The job's vertices (chains) and the exchanges between them.
fn graph_info(shared: &Shared) -> JobGraphInfo {
    let (graph, plan) = (&shared.graph, &shared.plan);
    let mut chain_of_node = vec![0; graph.nodes.len()];
    let vertices = plan
        .chains
        .iter()
        .enumerate()
        .map(|(id, chain)| {
            for &node in &chain.nodes {
                chain_of_node[node] = id;
            }
            let operators: Vec<String> = chain
                .nodes
                .iter()
                .map(|&node| graph.nodes[node].name.clone())
                .collect();
            VertexInfo {
                id,
                name: operators.join(" -> "),
                operators,
                parallelism: chain.parallelism,
            }
        })
        .collect();
    let edges = graph
        .edges
        .iter()
        .enumerate()
        .filter(|(id, _)| plan.is_exchange(*id))
        .map(|(id, edge)| {
            let strategy = match edge.partitioning {
                Partitioning::Forward => "FORWARD",
                Partitioning::Rebalance => "REBALANCE",
                Partitioning::Hash => "HASH",
                Partitioning::Broadcast => "BROADCAST",
            };
            EdgeInfo {
                source: chain_of_node[edge.from],
                target: chain_of_node[edge.to],
                ship_strategy: if plan.is_blocking(id) {
                    format!("{strategy} (BLOCKING)")
                } else {
                    strategy.to_string()
                },
            }
        })
        .collect();
    JobGraphInfo { vertices, edges }
}

/// One run of a job's tasks (a job restarts with a new attempt).
struct Attempt {
    executors: Vec<glommio::ExecutorJoinHandle<()>>,
    coordinator: Option<std::thread::JoinHandle<()>>,
    savepoints: Sender<SavepointRequest>,
    links: Vec<MonitoredLink>,
    restored_from: Option<u64>,
}

/// Creates the links and executors of one attempt, and its checkpoint coordinator.
fn start_attempt(
    shared: &Arc<Shared>,
    control: &Arc<JobControl>,
    ids: &Arc<CheckpointIds>,
    counters: &Arc<CheckpointCounters>,
    restored: Option<Arc<RestoredState>>,
) -> Result<Attempt, EngineError> {
    let graph = &shared.graph;
    let plan = &shared.plan;
    let config = &shared.config;
    let cores = config.effective_cores();
    let buffer = config.buffer;
    let restored_from = restored.as_ref().map(|r| r.checkpoint_id());
    if let Some(id) = restored_from {
        // Sinks learn the restored checkpoint at build; ids only grow.
        ids.completed.fetch_max(id, Ordering::AcqRel);
        ids.requested.fetch_max(id, Ordering::AcqRel);
    }
    // Taken before this attempt's coordinator starts: tasks built later must still
    // take part in a checkpoint it asks for meanwhile.
    let baseline = (
        ids.requested.load(Ordering::Acquire),
        ids.completed.load(Ordering::Acquire),
    );

    // One doorbell per task, shared with the links at both of its ends.
    let mut chain_of_node = vec![0; graph.nodes.len()];
    for (index, chain) in plan.chains.iter().enumerate() {
        for &node in &chain.nodes {
            chain_of_node[node] = index;
        }
    }
    let doorbells: Vec<Vec<Arc<Doorbell>>> = plan
        .chains
        .iter()
        .map(|chain| (0..chain.parallelism).map(|_| Arc::default()).collect())
        .collect();

    // Links of every exchange edge.
    let mut senders: HashMap<(EdgeId, usize), Vec<(usize, AnySend)>> = HashMap::new();
    let mut receivers: HashMap<(NodeId, usize), Vec<AnySend>> = HashMap::new();
    let mut links = Vec::new();
    let mut blocking: HashMap<EdgeId, Arc<BlockingShared>> = HashMap::new();
    for (id, edge) in graph.edges.iter().enumerate() {
        if !plan.is_exchange(id) {
            continue;
        }
        if plan.is_blocking(id) {
            let consumers = (0..plan.parallelism[edge.to])
                .map(|consumer| Arc::clone(&doorbells[chain_of_node[edge.to]][consumer]))
                .collect();
            blocking.insert(
                id,
                BlockingShared::new(plan.parallelism[edge.from], consumers),
            );
            continue;
        }
        let (from_parallelism, to_parallelism) =
            (plan.parallelism[edge.from], plan.parallelism[edge.to]);
        let from_name = &graph.nodes[edge.from].name;
        let to_name = &graph.nodes[edge.to].name;
        for producer in 0..from_parallelism {
            let consumers: Vec<usize> = if edge.partitioning == Partitioning::Forward {
                vec![producer]
            } else {
                (0..to_parallelism).collect()
            };
            for consumer in consumers {
                let name = format!(
                    "{from_name} ({}/{from_parallelism}) -> {to_name} ({}/{to_parallelism})",
                    producer + 1,
                    consumer + 1
                );
                let (sender, receiver, metrics) = graph.nodes[edge.from].output.link(
                    buffer,
                    name,
                    Arc::clone(&doorbells[chain_of_node[edge.from]][producer]),
                    Arc::clone(&doorbells[chain_of_node[edge.to]][consumer]),
                );
                senders
                    .entry((id, producer))
                    .or_default()
                    .push((consumer, sender));
                receivers
                    .entry((edge.to, consumer))
                    .or_default()
                    .push(receiver);
                links.push(MonitoredLink {
                    metrics,
                    from_vertex: chain_of_node[edge.from],
                    to_vertex: chain_of_node[edge.to],
                });
            }
        }
    }

    // Task specs, per executor.
    let mut per_executor: Vec<Vec<TaskSpec>> = (0..cores.len()).map(|_| Vec::new()).collect();
    let mut next_core = 0;
    for (chain_index, chain) in plan.chains.iter().enumerate() {
        for subtask in 0..chain.parallelism {
            let mut task_senders = HashMap::new();
            for &node in &chain.nodes {
                for &edge in &graph.nodes[node].outputs {
                    if let Some(mut ends) = senders.remove(&(edge, subtask)) {
                        ends.sort_by_key(|(consumer, _)| *consumer);
                        task_senders.insert(edge, ends.into_iter().map(|(_, end)| end).collect());
                    }
                }
            }
            let task_receivers = receivers.remove(&(chain.head, subtask)).unwrap_or_default();
            // Spread the subtasks of chains over the cores: subtask i of a chain goes
            // to the core after the last one the previous chain used, so non-parallel
            // chains do not all pile up on the first core.
            per_executor[(next_core + subtask) % cores.len()].push(TaskSpec {
                chain: chain_index,
                subtask,
                senders: task_senders,
                receivers: task_receivers,
                doorbell: Arc::clone(&doorbells[chain_index][subtask]),
            });
        }
        next_core = (next_core + chain.parallelism) % cores.len();
    }

    let (requests_sender, requests) = std::sync::mpsc::channel();
    let (coordinator, to_coordinator) = {
        let (sender, inbox) = std::sync::mpsc::channel();
        let tasks = plan.chains.iter().map(|chain| chain.parallelism).sum();
        let next_id = first_id(&config.checkpoint, &config.name, restored_from)
            .max(ids.requested.load(Ordering::Acquire) + 1);
        let worker = Coordinator {
            config: config.checkpoint.clone(),
            job: config.name.clone(),
            tasks,
            next_id,
            ids: Arc::clone(ids),
            counters: Arc::clone(counters),
            clock: Arc::clone(&config.clock),
            inbox,
            requests,
            doorbells: doorbells.iter().flatten().cloned().collect(),
        };
        let thread = std::thread::Builder::new()
            .name("eddy-checkpoints".into())
            .spawn(move || worker.run())
            .map_err(|e| EngineError::Executor {
                core: usize::MAX,
                reason: format!("cannot start the checkpoint coordinator: {e}"),
            })?;
        (Some(thread), Some(sender))
    };
    let clock: Arc<dyn Clock> = Arc::clone(&config.clock);
    let mut executors = Vec::new();
    for (index, specs) in per_executor.into_iter().enumerate() {
        if specs.is_empty() {
            continue;
        }
        let core = cores[index];
        let shared = Arc::clone(shared);
        let control_for_executor = Arc::clone(control);
        let clock = Arc::clone(&clock);
        let checkpoints = to_coordinator
            .clone()
            .map(|sender| (sender, Arc::clone(ids), baseline));
        let restored = restored.clone();
        let blocking = blocking.clone();
        control.running_executors.fetch_add(1, Ordering::AcqRel);
        let spawned = LocalExecutorBuilder::new(Placement::Fixed(core))
            .name(&format!("eddy-core-{core}"))
            .io_memory(shared.config.io_memory_bytes)
            .preempt_timer(shared.config.idle.reactor_poll)
            .spin_before_park(shared.config.idle.spin)
            .spawn(move || async move {
                let _running = RunningGuard(Arc::clone(&control_for_executor));
                run_executor(
                    shared,
                    specs,
                    control_for_executor,
                    clock,
                    checkpoints,
                    restored,
                    blocking,
                )
                .await;
            });
        match spawned {
            Ok(handle) => executors.push(handle),
            Err(error) => {
                control.running_executors.fetch_sub(1, Ordering::AcqRel);
                control.cancel();
                for executor in executors {
                    let _ = executor.join();
                }
                drop(to_coordinator);
                if let Some(coordinator) = coordinator {
                    let _ = coordinator.join();
                }
                return Err(EngineError::Executor {
                    core,
                    reason: error.to_string(),
                });
            }
        }
    }
    Ok(Attempt {
        executors,
        coordinator,
        savepoints: requests_sender,
        links,
        restored_from,
    })
}

/// What every executor reads: the graph (with its kits), the plan and the settings.
struct Shared {
    graph: Graph,
    plan: Plan,
    config: JobConfig,
    /// Per node, its id in checkpoints.
    operator_ids: Vec<String>,
    /// Per node: records a source emitted or a sink received (one relaxed add per
    /// buffer), for the per-vertex counters of fused chains.
    node_records: Arc<Vec<AtomicU64>>,
    /// Latency markers' travel times per vertex (kept across restarts).
    latency: Arc<crate::latency::LatencyBook>,
}

/// What building a subtask's operators needs from its attempt.
struct Wiring<'a> {
    restored: Option<&'a Arc<RestoredState>>,
    blocking: &'a HashMap<EdgeId, Arc<BlockingShared>>,
    spill: &'a SpillSettings,
}

/// Whether `node` reads its input sorted by key (through blocking exchanges).
fn graph_input_blocking(shared: &Shared, node: NodeId) -> bool {
    let inputs = &shared.graph.nodes[node].inputs;
    !inputs.is_empty() && inputs.iter().all(|&edge| shared.plan.is_blocking(edge))
}

/// The spill folder of the job and each sorter's share of the memory budget.
fn spill_settings(shared: &Shared) -> SpillSettings {
    let config = &shared.config;
    let sorters: usize = shared
        .graph
        .edges
        .iter()
        .enumerate()
        .filter(|(id, _)| shared.plan.is_blocking(*id))
        .map(|(_, edge)| shared.plan.parallelism[edge.from] * shared.plan.parallelism[edge.to])
        .sum();
    SpillSettings {
        dir: spill_dir(config),
        job: config.name.clone(),
        sorter_budget_bytes: config.memory_budget_bytes / sorters.max(1),
    }
}

/// The folder blocking exchanges spill into.
pub(crate) fn spill_dir(config: &JobConfig) -> PathBuf {
    config
        .spill_dir
        .clone()
        .unwrap_or_else(|| std::env::temp_dir().join("eddy-spill"))
}

/// Makes the spill folder of a job with blocking exchanges and removes what a crashed
/// run of the same job left there (spill files are named after their job).
fn prepare_spill_dir(config: &JobConfig) -> Result<(), EngineError> {
    let dir = spill_dir(config);
    std::fs::create_dir_all(&dir).map_err(|e| EngineError::Spill {
        reason: format!("cannot create the spill folder {}: {e}", dir.display()),
    })?;
    match eddy_storage::spill::sweep_stale(&dir, &config.name) {
        Ok(report) if !report.removed.is_empty() => tracing::info!(
            folder = %dir.display(),
            files = report.removed.len(),
            "removed spill files a previous run of this job left behind"
        ),
        Ok(_) => {}
        Err(error) => {
            return Err(EngineError::Spill {
                reason: error.to_string(),
            })
        }
    }
    Ok(())
}

/// A task's way to the checkpoint coordinator, and the attempt's baseline ids.
type CheckpointLink = (Sender<ToCoordinator>, Arc<CheckpointIds>, (u64, u64));

async fn run_executor(
    shared: Arc<Shared>,
    specs: Vec<TaskSpec>,
    control: Arc<JobControl>,
    clock: Arc<dyn Clock>,
    checkpoints: Option<CheckpointLink>,
    restored: Option<Arc<RestoredState>>,
    blocking: HashMap<EdgeId, Arc<BlockingShared>>,
) {
    let spill = spill_settings(&shared);
    let wiring = Wiring {
        restored: restored.as_ref(),
        blocking: &blocking,
        spill: &spill,
    };
    let mut tasks = Vec::new();
    for spec in specs {
        let chain = &shared.plan.chains[spec.chain];
        let head = &shared.graph.nodes[chain.head];
        let info = subtask_info(&shared, chain.head, spec.subtask);
        // A task is named after its whole chain (as Flink names a task), so a failure in
        // any fused operator names that operator.
        let chain_name = chain
            .nodes
            .iter()
            .map(|&node| shared.graph.nodes[node].name.as_str())
            .collect::<Vec<_>>()
            .join(" -> ");
        let env = TaskEnv {
            name: format!("{chain_name} ({}/{})", spec.subtask + 1, chain.parallelism),
            clock: Arc::clone(&clock),
            control: Arc::clone(&control),
            buffer: shared.config.buffer,
            idle: shared.config.idle,
            doorbell: spec.doorbell,
            sides: None,
            checkpoints: None,
            restore_position: None,
            records: (Arc::clone(&shared.node_records), chain.head),
            latency: shared.config.latency_tracking_interval.map(|interval| {
                crate::latency::TaskLatency {
                    book: Arc::clone(&shared.latency),
                    vertex: spec.chain,
                    subtask: spec.subtask as u32,
                    interval: matches!(head.kind, NodeKind::Source { .. }).then_some(interval),
                }
            }),
        };
        let is_source = matches!(head.kind, NodeKind::Source { .. });
        let head_id = &shared.operator_ids[chain.head];
        let env = TaskEnv {
            checkpoints: checkpoints.as_ref().map(|(sender, ids, baseline)| {
                TaskCheckpoints::new(
                    // Savepoints of a job without checkpoints align like exactly-once.
                    match shared.config.checkpoint.mode {
                        CheckpointingMode::None => CheckpointingMode::ExactlyOnce,
                        mode => mode,
                    },
                    Arc::clone(ids),
                    sender.clone(),
                    spec.subtask as u32,
                    is_source.then(|| head_id.clone()),
                    *baseline,
                )
            }),
            restore_position: restored.as_deref().filter(|_| is_source).and_then(|r| {
                let old_parallelism = r.old_parallelism(head_id);
                (old_parallelism > 0).then(|| {
                    let positions = r
                        .source_positions(head_id)
                        .into_iter()
                        .map(|(subtask, bytes)| (subtask, bytes.to_vec()))
                        .collect();
                    (positions, old_parallelism)
                })
            }),
            ..env
        };
        let name = env.name.clone();
        let mut senders = spec.senders;
        let built: Result<TaskFuture, EngineError> =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| match &head.kind {
                NodeKind::Source { kit, .. } => {
                    let (downstream, sides) =
                        build_output(&shared, &wiring, chain.head, spec.subtask, &mut senders)?;
                    let env = TaskEnv { sides, ..env };
                    kit.build_task(&info, downstream, env)
                        .map_err(|e| EngineError::TaskFailed {
                            task: info.to_string(),
                            reason: e.to_string(),
                        })
                }
                NodeKind::Operator { .. } => {
                    let input_edge = head.inputs[0];
                    let operator =
                        build_operator(&shared, &wiring, chain.head, spec.subtask, &mut senders)?;
                    if shared.plan.is_blocking(input_edge) {
                        // Blocking inputs: sorted runs instead of rings.
                        let inputs = head
                            .inputs
                            .iter()
                            .map(|edge| Arc::clone(&blocking[edge]))
                            .collect();
                        let spill_kit = shared.graph.edges[input_edge]
                            .spill
                            .as_ref()
                            .expect("a blocking edge has a spill kit");
                        return Ok(spill_kit.input_task(inputs, spec.subtask, operator, env));
                    }
                    let input_kit =
                        Arc::clone(&shared.graph.nodes[shared.graph.edges[input_edge].from].output);
                    Ok(input_kit.input_task(spec.receivers, operator, env))
                }
            }))
            .unwrap_or_else(|payload| {
                Err(EngineError::TaskFailed {
                    task: name.clone(),
                    reason: panic_message(&*payload),
                })
            });
        match built {
            Ok(future) => {
                let control = Arc::clone(&control);
                tasks.push(glommio::spawn_local(async move {
                    let outcome =
                        futures_lite::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(future))
                            .await;
                    match outcome {
                        Ok(Ok(())) => {}
                        Ok(Err(error)) => control.fail(error),
                        Err(payload) => control.fail(EngineError::TaskFailed {
                            task: name,
                            reason: panic_message(&*payload),
                        }),
                    }
                }));
            }
            Err(error) => control.fail(error),
        }
    }
    // glommio 0.9 can park an executor that still has runnable tasks when its preempt
    // timer fired just before it looked at them (glommio/glommio#53, not released).
    // `reactor_poll` is kept long to make that unlikely; the heartbeat keeps a timer
    // pending on every executor as a second line of defence.
    let finished = Rc::new(Cell::new(false));
    let heartbeat = {
        let finished = Rc::clone(&finished);
        let period = shared.config.idle.park_max;
        glommio::spawn_local(async move {
            while !finished.get() {
                glommio::timer::sleep(period).await;
            }
        })
    };
    for task in tasks {
        task.await;
    }
    finished.set(true);
    heartbeat.cancel().await;
}

fn subtask_info(shared: &Shared, node: NodeId, subtask: usize) -> SubtaskInfo {
    SubtaskInfo {
        job: shared.config.name.clone(),
        operator: shared.graph.nodes[node].name.clone(),
        index: subtask,
        parallelism: shared.plan.parallelism[node],
    }
}

/// Builds `Box<dyn Output<Out>>` of `node`'s output for one subtask: chained operators
/// are built recursively, exchanges get their link senders, side streams are gathered
/// per tag (the main output is then wrapped so they follow its control events).
fn build_output(
    shared: &Shared,
    wiring: &Wiring<'_>,
    node: NodeId,
    subtask: usize,
    senders: &mut HashMap<EdgeId, Vec<AnySend>>,
) -> Result<(AnyBox, Option<SharedSideOutputs>), EngineError> {
    let kit = &shared.graph.nodes[node].output;
    let mut outputs = Vec::new();
    let mut sides: Vec<(&'static str, Vec<AnyBox>, NodeId)> = Vec::new();
    for &edge_id in &shared.graph.nodes[node].outputs {
        let edge = &shared.graph.edges[edge_id];
        if let Some(tag) = edge.side {
            let target = build_operator(shared, wiring, edge.to, subtask, senders)?;
            match sides.iter_mut().find(|(t, _, _)| *t == tag) {
                Some((_, targets, _)) => targets.push(target),
                None => sides.push((tag, vec![target], edge.to)),
            }
        } else if shared.plan.is_blocking(edge_id) {
            let spill_kit = edge
                .spill
                .as_ref()
                .expect("a blocking edge has a spill kit");
            outputs.push(spill_kit.sorting_output(
                Arc::clone(&wiring.blocking[&edge_id]),
                subtask,
                &shared.operator_ids[edge.to],
                shared.config.max_parallelism,
                wiring.spill,
            ));
        } else if shared.plan.is_exchange(edge_id) {
            let links = senders
                .remove(&edge_id)
                .expect("every exchange edge has its senders");
            outputs.push(kit.exchange(
                links,
                edge,
                shared.config.buffer,
                shared.config.max_parallelism,
            ));
        } else {
            outputs.push(build_operator(shared, wiring, edge.to, subtask, senders)?);
        }
    }
    let main = match outputs.len() {
        0 => kit.discard(),
        1 => outputs.pop().expect("one output"),
        _ => kit.tee(outputs),
    };
    if sides.is_empty() {
        return Ok((main, None));
    }
    let channels = sides
        .into_iter()
        .map(|(tag, targets, side_node)| {
            shared.graph.nodes[side_node]
                .output
                .side_channel(tag, targets)
        })
        .collect();
    let sides: SharedSideOutputs = Rc::new(RefCell::new(SideOutputs::new(channels)));
    Ok((kit.with_sides(main, Rc::clone(&sides)), Some(sides)))
}

/// Builds `Box<dyn Output<In>>` of `node` (its operator with everything after it).
fn build_operator(
    shared: &Shared,
    wiring: &Wiring<'_>,
    node: NodeId,
    subtask: usize,
    senders: &mut HashMap<EdgeId, Vec<AnySend>>,
) -> Result<AnyBox, EngineError> {
    let (downstream, sides) = build_output(shared, wiring, node, subtask, senders)?;
    let NodeKind::Operator { kit, .. } = &shared.graph.nodes[node].kind else {
        unreachable!("only operators have inputs");
    };
    let info = subtask_info(shared, node, subtask);
    let context = BuildContext {
        subtask: &info,
        clock: &shared.config.clock,
        sides,
        max_parallelism: shared.config.max_parallelism,
        operator_id: &shared.operator_ids[node],
        restored: wiring.restored,
        sorted_input: graph_input_blocking(shared, node),
        records: (&shared.node_records, node),
    };
    kit.build(&context, downstream)
        .map_err(|e| EngineError::TaskFailed {
            task: info.to_string(),
            reason: e.to_string(),
        })
}
