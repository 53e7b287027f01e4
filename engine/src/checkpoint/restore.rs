//! Reading a checkpoint back: which snapshot to restore, and the state of each operator
//! subtask in it (read in place from the memory-mapped files).

use std::collections::{BTreeMap, HashSet};
use std::ops::Range;
use std::path::Path;

use eddy_storage::snapshot::{self, Snapshot};

use super::{ArchivedEnvelope, CheckpointConfig, RestoreFrom};
use crate::error::{ConnectorError, EngineError};

/// Where a key group's bytes are in a restored snapshot: (state file, offset, length).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct GroupRef {
    file: usize,
    start: usize,
    len: usize,
}

impl GroupRef {
    /// The same bytes without their first `skip`.
    pub(crate) fn skip(self, skip: usize) -> GroupRef {
        GroupRef {
            file: self.file,
            start: self.start + skip.min(self.len),
            len: self.len - skip.min(self.len),
        }
    }
}

/// A validated snapshot a job starts from.
#[derive(Debug)]
pub struct RestoredState {
    snapshot: Snapshot,
    /// Per operator id, how many subtasks wrote state (the old parallelism).
    operators: BTreeMap<String, u32>,
}

impl RestoredState {
    /// Resolves `config.restore` for job `job`: `None` when there is nothing to restore
    /// (no restore asked, or `latest` with no checkpoint yet).
    ///
    /// Damaged newer checkpoints are logged (which file, why) and skipped; when complete
    /// checkpoints exist but none is readable, that is an error, never a silent fresh
    /// start.
    pub(crate) fn open(config: &CheckpointConfig, job: &str) -> Result<Option<Self>, EngineError> {
        let failed = |reason: String| EngineError::Restore { reason };
        let snapshot = match &config.restore {
            None => return Ok(None),
            Some(RestoreFrom::Path(path)) => Snapshot::open(path)
                .map_err(|e| failed(format!("cannot restore {}: {e}", path.display())))?,
            Some(RestoreFrom::Latest) => {
                let root = config
                    .dir
                    .as_deref()
                    .expect("validated: restore latest has a dir");
                let job_dir = snapshot::job_dir(root, job).map_err(|e| failed(e.to_string()))?;
                let recovery = snapshot::latest_valid(&job_dir).map_err(|e| {
                    failed(format!(
                        "cannot list checkpoints in {}: {e}",
                        job_dir.display()
                    ))
                })?;
                for skipped in &recovery.skipped {
                    tracing::warn!(
                        checkpoint = %skipped.checkpoint.path.display(),
                        error = %skipped.error,
                        "skipping a damaged checkpoint; falling back to an older one"
                    );
                }
                match recovery.snapshot {
                    Some(snapshot) => snapshot,
                    None if recovery.skipped.is_empty() => {
                        tracing::info!(folder = %job_dir.display(), "no checkpoint to restore: starting from scratch");
                        return Ok(None);
                    }
                    None => {
                        let first = &recovery.skipped[0];
                        return Err(failed(format!(
                            "no readable checkpoint in {}: all {} are damaged (newest: {}: {})",
                            job_dir.display(),
                            recovery.skipped.len(),
                            first.checkpoint.path.display(),
                            first.error
                        )));
                    }
                }
            }
        };
        let mut operators = BTreeMap::new();
        for (entry, bytes) in snapshot.states() {
            rkyv::access::<ArchivedEnvelope, rkyv::rancor::Error>(bytes).map_err(|e| {
                failed(format!(
                    "state file {} of {} is not a valid state archive: {e}",
                    entry.file_name,
                    snapshot.dir().display()
                ))
            })?;
            let count = operators.entry(entry.operator_id.clone()).or_insert(0);
            *count = (*count).max(entry.subtask_index + 1);
        }
        for position in &snapshot.metadata().source_positions {
            let count = operators.entry(position.source_id.clone()).or_insert(0);
            *count = (*count).max(position.subtask_index + 1);
        }
        tracing::info!(
            checkpoint = snapshot.checkpoint_id(),
            folder = %snapshot.dir().display(),
            "restoring"
        );
        Ok(Some(RestoredState {
            snapshot,
            operators,
        }))
    }

    /// The id of the restored checkpoint.
    pub fn checkpoint_id(&self) -> u64 {
        self.snapshot.checkpoint_id()
    }

    /// The restored snapshot's folder.
    pub fn dir(&self) -> &Path {
        self.snapshot.dir()
    }

    /// Fails when the snapshot holds state of operators the job does not have, unless
    /// that is allowed.
    pub(crate) fn check_all_matched(
        &self,
        job_operators: &HashSet<String>,
        allow_non_restored: bool,
    ) -> Result<(), EngineError> {
        let unmatched: Vec<&str> = self
            .operators
            .keys()
            .filter(|id| !job_operators.contains(*id))
            .map(String::as_str)
            .collect();
        if unmatched.is_empty() {
            return Ok(());
        }
        if allow_non_restored {
            tracing::warn!(operators = ?unmatched, "ignoring state of operators the job no longer has");
            return Ok(());
        }
        Err(EngineError::Restore {
            reason: format!(
                "{} holds state of operators the job does not have: {} (set stable ids \
                 with .uid(..), or pass --allow-non-restored-state to drop it)",
                self.snapshot.dir().display(),
                unmatched.join(", ")
            ),
        })
    }

    /// The keyed state of operator `operator_id` in key groups `groups`, gathered from
    /// every old subtask's file (so a job may restore with another parallelism).
    pub(crate) fn key_groups(
        &self,
        operator_id: &str,
        groups: Range<usize>,
    ) -> Result<Vec<(usize, &[u8])>, ConnectorError> {
        let mut found = Vec::new();
        for (entry, bytes) in self.snapshot.states() {
            if entry.operator_id != operator_id {
                continue;
            }
            for group in envelope(bytes)?.key_groups.iter() {
                let index = group.group.to_native() as usize;
                if groups.contains(&index) {
                    found.push((index, group.bytes.as_slice()));
                }
            }
        }
        Ok(found)
    }

    /// Like [`Self::key_groups`], as references to read later with [`Self::group`]
    /// (the snapshot stays mapped while someone holds it).
    pub(crate) fn key_group_refs(
        &self,
        operator_id: &str,
        groups: Range<usize>,
    ) -> Result<Vec<(usize, GroupRef)>, ConnectorError> {
        let mut found = Vec::new();
        for (file, (entry, bytes)) in self.snapshot.states().enumerate() {
            if entry.operator_id != operator_id {
                continue;
            }
            for group in envelope(bytes)?.key_groups.iter() {
                let index = group.group.to_native() as usize;
                if groups.contains(&index) {
                    let slice = group.bytes.as_slice();
                    let start = slice.as_ptr() as usize - bytes.as_ptr() as usize;
                    found.push((
                        index,
                        GroupRef {
                            file,
                            start,
                            len: slice.len(),
                        },
                    ));
                }
            }
        }
        Ok(found)
    }

    /// The bytes a [`GroupRef`] of this snapshot points at.
    pub(crate) fn group(&self, at: GroupRef) -> &[u8] {
        let (_, bytes) = self
            .snapshot
            .states()
            .nth(at.file)
            .expect("a group reference of this snapshot");
        &bytes[at.start..at.start + at.len]
    }

    /// The non-keyed part of operator `operator_id`'s state, per old subtask.
    pub(crate) fn operator_parts(
        &self,
        operator_id: &str,
    ) -> Result<Vec<(u32, &[u8])>, ConnectorError> {
        let mut parts = Vec::new();
        for (entry, bytes) in self.snapshot.states() {
            if entry.operator_id == operator_id {
                let envelope = envelope(bytes)?;
                parts.push((entry.subtask_index, envelope.operator.as_slice()));
            }
        }
        parts.sort_by_key(|(subtask, _)| *subtask);
        Ok(parts)
    }

    /// The positions source `operator_id` recorded, per old subtask.
    pub(crate) fn source_positions(&self, operator_id: &str) -> Vec<(u32, &[u8])> {
        let mut positions: Vec<(u32, &[u8])> = self
            .snapshot
            .metadata()
            .source_positions
            .iter()
            .filter(|p| p.source_id == operator_id)
            .map(|p| (p.subtask_index, p.position.as_slice()))
            .collect();
        positions.sort_by_key(|(subtask, _)| *subtask);
        positions
    }

    /// How many subtasks operator `operator_id` had when the snapshot was taken (0 when
    /// it has no state in it).
    pub(crate) fn old_parallelism(&self, operator_id: &str) -> u32 {
        self.operators.get(operator_id).copied().unwrap_or(0)
    }
}

fn envelope(bytes: &[u8]) -> Result<&ArchivedEnvelope, ConnectorError> {
    rkyv::access::<ArchivedEnvelope, rkyv::rancor::Error>(bytes)
        .map_err(|e| ConnectorError::with_source("invalid state archive", e))
}
