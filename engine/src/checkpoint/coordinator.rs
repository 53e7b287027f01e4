//! The checkpoint coordinator: a thread of the job (never on a data core) that triggers
//! checkpoints, writes the state the tasks hand over, completes checkpoints by writing
//! `_metadata`, applies retention and tells the tasks which checkpoint is complete.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use eddy_storage::snapshot::{self, CommitInfo, SnapshotWriter, SourcePosition, StateFileEntry};

use super::{envelope_bytes, CheckpointConfig, Envelope};
use crate::clock::Clock;

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
    pub(crate) last: Mutex<Option<CompletedCheckpoint>>,
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
}

/// Published ids, shared with the tasks (read with one relaxed load per iteration).
#[derive(Debug, Default)]
pub(crate) struct CheckpointIds {
    /// The newest checkpoint asked for.
    pub(crate) requested: AtomicU64,
    /// The newest complete checkpoint.
    pub(crate) completed: AtomicU64,
}

struct Pending {
    id: u64,
    started: Instant,
    writer: SnapshotWriter,
    acks: usize,
    files: Vec<StateFileEntry>,
    positions: Vec<SourcePosition>,
    bytes: u64,
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
}

impl Coordinator {
    pub(crate) fn run(mut self) {
        let root = self
            .config
            .dir
            .clone()
            .expect("validated: checkpointing has a dir");
        let mut pending: Option<Pending> = None;
        let mut any_finished = false;
        let mut next_trigger = self.clock.now() + self.config.interval;
        loop {
            let now = self.clock.now();
            let wait = next_trigger.saturating_duration_since(now);
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
                            discard(failed);
                        }
                        continue;
                    }
                    if current.acks == self.tasks {
                        let done = pending.take().expect("checked above");
                        self.complete(done, &root);
                    }
                }
                Ok(ToCoordinator::Decline { id, task, reason }) => {
                    if let Some(declined) = pending.take_if(|p| p.id == id) {
                        tracing::warn!(checkpoint = id, %task, %reason, "checkpoint declined");
                        self.counters.failed.fetch_add(1, Ordering::Relaxed);
                        discard(declined);
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
                            discard(aborted);
                        }
                        tracing::debug!("a task finished: no further checkpoints");
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return,
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
                discard(stale);
            }
            // One checkpoint at a time (Flink's default): a checkpoint that takes longer
            // than the interval delays the next one.
            if now >= next_trigger && !any_finished && pending.is_none() {
                next_trigger = now + self.config.interval;
                let id = self.next_id;
                self.next_id += 1;
                match SnapshotWriter::begin_checkpoint(&root, &self.job, id) {
                    Ok(writer) => {
                        pending = Some(Pending {
                            id,
                            started: now,
                            writer,
                            acks: 0,
                            files: Vec::new(),
                            positions: Vec::new(),
                            bytes: 0,
                        });
                        self.ids.requested.store(id, Ordering::Release);
                    }
                    Err(error) => {
                        tracing::warn!(checkpoint = id, %error, "cannot start checkpoint");
                        self.counters.failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }
    }

    fn complete(&self, done: Pending, root: &std::path::Path) {
        let Pending {
            id,
            started,
            writer,
            files,
            positions,
            bytes,
            ..
        } = done;
        let info = CommitInfo {
            timestamp_ms: self.clock.wall_millis().max(0) as u64,
            state_files: files,
            source_positions: positions,
        };
        match writer.commit(info) {
            Ok(committed) => {
                let duration = self.clock.now().saturating_duration_since(started);
                tracing::debug!(checkpoint = id, ?duration, bytes, "checkpoint complete");
                *self.counters.last.lock().unwrap_or_else(|e| e.into_inner()) =
                    Some(CompletedCheckpoint {
                        id,
                        path: committed.path,
                        duration,
                        bytes,
                    });
                self.counters.completed.fetch_add(1, Ordering::Relaxed);
                self.ids.completed.store(id, Ordering::Release);
                match snapshot::job_dir(root, &self.job)
                    .and_then(|dir| snapshot::retain(&dir, self.config.retained))
                {
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

/// Writes one task's state files (here, off the data cores) and notes its positions.
fn record_ack(
    pending: &mut Pending,
    subtask: u32,
    states: Vec<(String, Envelope)>,
    positions: Vec<(String, Vec<u8>)>,
) -> Result<(), String> {
    for (operator, envelope) in states {
        let bytes = envelope_bytes(&envelope).map_err(|e| e.to_string())?;
        let entry = pending
            .writer
            .write_state(&operator, subtask, &bytes)
            .map_err(|e| e.to_string())?;
        pending.bytes += bytes.len() as u64;
        pending.files.push(entry);
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
