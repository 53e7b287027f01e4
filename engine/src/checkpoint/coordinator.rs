//! The checkpoint coordinator: a thread of the job (never on a data core) that triggers
//! checkpoints, writes the state the tasks hand over, completes checkpoints by writing
//! `_metadata`, applies retention and tells the tasks which checkpoint is complete.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use eddy_storage::snapshot::{self, CommitInfo, SnapshotWriter, SourcePosition, StateFileEntry};

use super::{envelope_bytes, CheckpointConfig, Envelope};
use crate::clock::Clock;
use crate::runtime::doorbell::Doorbell;

/// What a task tells the coordinator.
pub(crate) enum ToCoordinator {
    /// The task passed barrier `id`; here is its state.
    Ack {
        id: u64,
        subtask: u32,
        /// Per operator of the task's chain: its id and state.
        states: Vec<(String, Envelope)>,
        /// Per source of the chain: its id and position.
        positions: Vec<(String, Vec<u8>)>,
    },
    /// The task could not snapshot for checkpoint `id`: the checkpoint fails.
    Decline {
        id: u64,
        task: String,
        reason: String,
    },
    /// The task ended: no checkpoint after this one can be complete (eddy, like Flink
    /// before 1.14, takes no checkpoint once a task has finished).
    Finished,
}

/// Counters of a job's checkpoints, shared with its handle.
#[derive(Debug, Default)]
pub(crate) struct CheckpointCounters {
    pub(crate) completed: AtomicU64,
    pub(crate) failed: AtomicU64,
    /// The newest completed checkpoints, oldest first (the last one is the newest).
    pub(crate) history: Mutex<std::collections::VecDeque<CompletedCheckpoint>>,
}

/// What a completed checkpoint was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompletedCheckpoint {
    /// Its id.
    pub id: u64,
    /// Its folder.
    pub path: PathBuf,
    /// From trigger to `_metadata` written.
    pub duration: Duration,
    /// Bytes of state written.
    pub bytes: u64,
    /// The timestamp in its metadata: when the last task acknowledged it
    /// (milliseconds since the Unix epoch, from the job's clock).
    pub timestamp_ms: i64,
}

/// Published ids, shared with the tasks (read with one relaxed load per iteration).
#[derive(Debug, Default)]
pub(crate) struct CheckpointIds {
    /// The newest checkpoint asked for.
    pub(crate) requested: AtomicU64,
    /// The newest complete checkpoint.
    pub(crate) completed: AtomicU64,
    /// A stop-with-savepoint's id: sources emit nothing after its barrier.
    pub(crate) stop_at: AtomicU64,
}

/// A savepoint asked for through the job's handle.
pub(crate) struct SavepointRequest {
    /// The savepoint's folder (must not exist or be empty).
    pub(crate) path: PathBuf,
    /// Stop the job after it (sources emit nothing after its barrier).
    pub(crate) stop: bool,
    /// Where the outcome goes.
    pub(crate) reply: Sender<Result<PathBuf, String>>,
}

/// A task's state files being framed and written on a writer thread.
type Writing = std::thread::JoinHandle<Result<(Vec<StateFileEntry>, u64), String>>;

struct Pending {
    id: u64,
    started: Instant,
    writer: Arc<SnapshotWriter>,
    acks: usize,
    /// One writer thread per acknowledged task with state (they write in parallel;
    /// each fsyncs its own files).
    writing: Vec<Writing>,
    positions: Vec<SourcePosition>,
    /// `Some` for a savepoint: who asked.
    savepoint: Option<Sender<Result<PathBuf, String>>>,
}

impl Pending {
    fn new(id: u64, started: Instant, writer: SnapshotWriter) -> Self {
        Pending {
            id,
            started,
            writer: Arc::new(writer),
            acks: 0,
            writing: Vec::new(),
            positions: Vec::new(),
            savepoint: None,
        }
    }

    /// Waits for every writer thread: the state files and their total size.
    fn finish_writes(&mut self) -> Result<(Vec<StateFileEntry>, u64), String> {
        let mut files = Vec::new();
        let mut bytes = 0;
        let mut failure = None;
        for writing in self.writing.drain(..) {
            match writing.join() {
                Ok(Ok((entries, written))) => {
                    files.extend(entries);
                    bytes += written;
                }
                Ok(Err(reason)) => {
                    failure.get_or_insert(reason);
                }
                Err(_) => {
                    failure.get_or_insert_with(|| "a state writer thread panicked".to_owned());
                }
            }
        }
        match failure {
            Some(reason) => Err(reason),
            None => Ok((files, bytes)),
        }
    }

    /// Gives up on this checkpoint (its folder is removed once its writers are done; a
    /// savepoint's caller learns why).
    fn fail(mut self, reason: &str) {
        let _ = self.finish_writes();
        if let Some(reply) = &self.savepoint {
            let _ = reply.send(Err(reason.to_owned()));
        }
        discard(self);
    }
}

/// Runs on its own thread until every task has ended (all senders dropped).
pub(crate) struct Coordinator {
    pub(crate) config: CheckpointConfig,
    pub(crate) job: String,
    pub(crate) tasks: usize,
    pub(crate) next_id: u64,
    pub(crate) ids: Arc<CheckpointIds>,
    pub(crate) counters: Arc<CheckpointCounters>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) inbox: Receiver<ToCoordinator>,
    pub(crate) requests: Receiver<SavepointRequest>,
    /// Every task's doorbell: rung after a checkpoint is asked for (a parked source
    /// injects its barrier at once) and after one completes (a parked sink commits at
    /// once).
    pub(crate) doorbells: Vec<Arc<Doorbell>>,
}

/// How often the coordinator looks for savepoint requests when nothing else wakes it.
const REQUEST_POLL: Duration = Duration::from_millis(10);

impl Coordinator {
    pub(crate) fn run(mut self) {
        let periodic = self.config.mode.enabled();
        let root = self.config.dir.clone();
        let mut pending: Option<Pending> = None;
        let mut any_finished = false;
        let mut next_trigger = self.clock.now() + self.config.interval;
        loop {
            let now = self.clock.now();
            let wait = if periodic {
                next_trigger
                    .saturating_duration_since(now)
                    .min(REQUEST_POLL)
            } else {
                REQUEST_POLL
            };
            match self.inbox.recv_timeout(wait.max(Duration::from_millis(1))) {
                Ok(ToCoordinator::Ack {
                    id,
                    subtask,
                    states,
                    positions,
                }) => {
                    let Some(current) = pending.as_mut().filter(|p| p.id == id) else {
                        continue;
                    };
                    if let Err(reason) = record_ack(current, subtask, states, positions) {
                        tracing::warn!(checkpoint = id, %reason, "checkpoint failed");
                        self.counters.failed.fetch_add(1, Ordering::Relaxed);
                        if let Some(failed) = pending.take() {
                            let id = failed.id;
                            failed.fail(&reason);
                            self.release_stop(id);
                        }
                        continue;
                    }
                    if current.acks == self.tasks {
                        let done = pending.take().expect("checked above");
                        self.complete(done, root.as_deref());
                    }
                }
                Ok(ToCoordinator::Decline { id, task, reason }) => {
                    if let Some(declined) = pending.take_if(|p| p.id == id) {
                        tracing::warn!(checkpoint = id, %task, %reason, "checkpoint declined");
                        self.counters.failed.fetch_add(1, Ordering::Relaxed);
                        declined.fail(&format!("task {task} declined: {reason}"));
                        self.release_stop(id);
                    }
                }
                Ok(ToCoordinator::Finished) => {
                    if !any_finished {
                        any_finished = true;
                        if let Some(aborted) = pending.take() {
                            tracing::info!(
                                checkpoint = aborted.id,
                                "checkpoint abandoned: a task finished"
                            );
                            let id = aborted.id;
                            aborted
                                .fail("a task of the job finished before the snapshot completed");
                            self.release_stop(id);
                        }
                        tracing::debug!("a task finished: no further checkpoints");
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    if let Some(pending) = pending.take() {
                        pending.fail("the job ended before the snapshot completed");
                    }
                    while let Ok(request) = self.requests.try_recv() {
                        let _ = request.reply.send(Err("the job has ended".into()));
                    }
                    return;
                }
            }
            let now = self.clock.now();
            if let Some(stale) =
                pending.take_if(|p| now.saturating_duration_since(p.started) >= CHECKPOINT_TIMEOUT)
            {
                tracing::warn!(
                    checkpoint = stale.id,
                    timeout = ?CHECKPOINT_TIMEOUT,
                    "checkpoint did not complete in time: abandoned"
                );
                self.counters.failed.fetch_add(1, Ordering::Relaxed);
                let id = stale.id;
                stale.fail("the snapshot did not complete in time");
                self.release_stop(id);
            }
            if pending.is_some() {
                continue;
            }
            // A savepoint asked for goes first; one snapshot at a time (Flink's
            // default): a checkpoint that takes longer than the interval delays the
            // next one.
            if let Ok(request) = self.requests.try_recv() {
                pending = self.start_savepoint(request, any_finished, now);
                continue;
            }
            if periodic && now >= next_trigger && !any_finished {
                next_trigger = now + self.config.interval;
                let id = self.next_id;
                self.next_id += 1;
                let root = root.as_deref().expect("validated: checkpointing has a dir");
                match SnapshotWriter::begin_checkpoint(root, &self.job, id) {
                    Ok(writer) => {
                        pending = Some(Pending::new(id, now, writer));
                        self.ids.requested.store(id, Ordering::Release);
                        self.ring_all();
                    }
                    Err(error) => {
                        tracing::warn!(checkpoint = id, %error, "cannot start checkpoint");
                        self.counters.failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }
    }

    /// A stop-with-savepoint that failed lets the sources go on: they stopped emitting
    /// after its barrier, and nothing else would wake them.
    fn release_stop(&self, id: u64) {
        if self
            .ids
            .stop_at
            .compare_exchange(id, 0, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            tracing::info!(
                savepoint = id,
                "stop with savepoint failed: the job goes on"
            );
            self.ring_all();
        }
    }

    fn ring_all(&self) {
        self.doorbells.iter().for_each(|bell| bell.ring());
    }

    fn start_savepoint(
        &mut self,
        request: SavepointRequest,
        any_finished: bool,
        now: Instant,
    ) -> Option<Pending> {
        if any_finished {
            let _ = request.reply.send(Err(
                "tasks of the job have finished: no snapshot can be taken".into(),
            ));
            return None;
        }
        let id = self.next_id;
        self.next_id += 1;
        match SnapshotWriter::begin_savepoint(&request.path, &self.job, id) {
            Ok(writer) => {
                let mut pending = Pending::new(id, now, writer);
                pending.savepoint = Some(request.reply);
                if request.stop {
                    self.ids.stop_at.store(id, Ordering::Release);
                }
                self.ids.requested.store(id, Ordering::Release);
                self.ring_all();
                tracing::info!(savepoint = id, folder = %request.path.display(), "savepoint started");
                Some(pending)
            }
            Err(error) => {
                let _ = request.reply.send(Err(error.to_string()));
                None
            }
        }
    }

    fn complete(&self, mut done: Pending, root: Option<&std::path::Path>) {
        let (files, bytes) = match done.finish_writes() {
            Ok(written) => written,
            Err(reason) => {
                tracing::warn!(checkpoint = done.id, %reason, "checkpoint failed");
                self.counters.failed.fetch_add(1, Ordering::Relaxed);
                let id = done.id;
                done.fail(&reason);
                self.release_stop(id);
                return;
            }
        };
        let Pending {
            id,
            started,
            writer,
            positions,
            savepoint,
            ..
        } = done;
        let writer = Arc::try_unwrap(writer).expect("every writer thread has been joined");
        let info_timestamp = self.clock.wall_millis();
        let info = CommitInfo {
            timestamp_ms: info_timestamp.max(0) as u64,
            state_files: files,
            source_positions: positions,
        };
        match writer.commit(info) {
            Ok(committed) => {
                let duration = self.clock.now().saturating_duration_since(started);
                tracing::debug!(checkpoint = id, ?duration, bytes, "snapshot complete");
                // Sinks commit what they pre-committed for it (savepoints too).
                self.ids.completed.store(id, Ordering::Release);
                self.ring_all();
                if let Some(reply) = savepoint {
                    tracing::info!(savepoint = id, folder = %committed.path.display(), "savepoint complete");
                    let _ = reply.send(Ok(committed.path));
                    return;
                }
                crate::runtime::monitor::remember(
                    &self.counters.history,
                    CompletedCheckpoint {
                        id,
                        path: committed.path,
                        duration,
                        bytes,
                        timestamp_ms: info_timestamp,
                    },
                );
                self.counters.completed.fetch_add(1, Ordering::Relaxed);
                let retained = root
                    .ok_or_else(|| "no checkpoint folder".to_string())
                    .and_then(|root| {
                        snapshot::job_dir(root, &self.job)
                            .and_then(|dir| snapshot::retain(&dir, self.config.retained))
                            .map_err(|e| e.to_string())
                    });
                match retained {
                    Ok(report) => {
                        for removed in report.removed {
                            tracing::debug!(folder = %removed.display(), "old checkpoint removed");
                        }
                    }
                    Err(error) => tracing::warn!(%error, "cannot remove old checkpoints"),
                }
            }
            Err(error) => {
                tracing::warn!(checkpoint = id, %error, "cannot complete checkpoint");
                self.counters.failed.fetch_add(1, Ordering::Relaxed);
                if let Some(reply) = savepoint {
                    let _ = reply.send(Err(error.to_string()));
                }
            }
        }
    }
}

/// How long a checkpoint may take before it is abandoned (Flink's default).
const CHECKPOINT_TIMEOUT: Duration = Duration::from_secs(600);

/// Removes the folder of a checkpoint that will not complete (it has no `_metadata`,
/// so it never counted; this only saves the space).
fn discard(pending: Pending) {
    let dir = pending.writer.dir().to_path_buf();
    drop(pending);
    if let Err(error) = std::fs::remove_dir_all(&dir) {
        tracing::debug!(folder = %dir.display(), %error, "cannot remove an abandoned checkpoint");
    }
}

/// Starts writing one task's state files on a writer thread (off the data cores; tasks
/// write in parallel) and notes its positions.
fn record_ack(
    pending: &mut Pending,
    subtask: u32,
    states: Vec<(String, Envelope)>,
    positions: Vec<(String, Vec<u8>)>,
) -> Result<(), String> {
    if !states.is_empty() {
        let writer = Arc::clone(&pending.writer);
        let writing = std::thread::Builder::new()
            .name("eddy-state-writer".into())
            .spawn(move || {
                let mut entries = Vec::with_capacity(states.len());
                let mut written = 0;
                for (operator, envelope) in states {
                    let bytes = envelope_bytes(&envelope).map_err(|e| e.to_string())?;
                    drop(envelope);
                    let entry = writer
                        .write_state(&operator, subtask, &bytes)
                        .map_err(|e| e.to_string())?;
                    written += bytes.len() as u64;
                    entries.push(entry);
                }
                Ok((entries, written))
            })
            .map_err(|e| format!("cannot start a state writer thread: {e}"))?;
        pending.writing.push(writing);
    }
    for (source, position) in positions {
        pending.positions.push(SourcePosition {
            source_id: source,
            subtask_index: subtask,
            position,
        });
    }
    pending.acks += 1;
    Ok(())
}

/// The id the next checkpoint of job `job` gets: after every checkpoint already in its
/// folder (complete or not) and after the restored one.
pub(crate) fn first_id(config: &CheckpointConfig, job: &str, restored: Option<u64>) -> u64 {
    let on_disk = config
        .dir
        .as_deref()
        .and_then(|root| snapshot::job_dir(root, job).ok())
        .and_then(|dir| snapshot::list_complete(&dir).ok())
        .and_then(|list| list.first().map(|newest| newest.checkpoint_id))
        .unwrap_or(0);
    on_disk.max(restored.unwrap_or(0)) + 1
}
