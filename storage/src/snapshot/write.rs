//! Writing a snapshot: [`SnapshotWriter`].
//!
//! Durability argument. Every file is written to a temporary name, fsynced and renamed;
//! [`SnapshotWriter::commit`] then fsyncs the snapshot folder (so every state file's
//! rename is durable) *before* it writes `_metadata` the same way, and fsyncs the folder
//! and its parent again. So after a crash at any point, either `_metadata` is absent (the
//! snapshot does not exist) or it and every state file it lists are on disk. State
//! files are fsynced once each, but the folder only twice per snapshot, not once per file.

use std::fs;
use std::path::{Path, PathBuf};

use crate::error::{Result, StorageError};
use crate::fsutil::{remove_dir_all_if_exists, sync_dir, validate_name, write_atomically};
use crate::snapshot::format::{
    state_file_name, FileHeader, SnapshotKind, SnapshotMetadata, SourcePosition, StateFileEntry,
    FORMAT_VERSION, HEADER_LEN_BYTES, METADATA_FILE_NAME, METADATA_MAGIC, STATE_MAGIC,
};
use crate::snapshot::store::{checkpoint_dir, job_dir, SnapshotRef};

/// Writes one snapshot (checkpoint or savepoint) into its folder.
///
/// Lifecycle: `begin_checkpoint` / `begin_savepoint` creates the folder;
/// [`write_state`](Self::write_state) writes one state file per (operator, subtask) and
/// may be called from several threads at once (it takes `&self`); the caller collects the
/// returned [`StateFileEntry`]s (in the engine, they travel with the subtasks'
/// acknowledgements) and hands them to [`commit`](Self::commit), which writes `_metadata`.
/// A writer dropped without `commit` leaves an incomplete folder, which readers ignore
/// and [`retain`](crate::snapshot::retain) removes later.
#[derive(Debug)]
pub struct SnapshotWriter {
    dir: PathBuf,
    kind: SnapshotKind,
    job_name: String,
    checkpoint_id: u64,
}

/// What [`SnapshotWriter::commit`] records besides the state files.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CommitInfo {
    /// When the snapshot was taken (ms since the Unix epoch), from the caller's clock.
    pub timestamp_ms: u64,
    /// The entries returned by [`SnapshotWriter::write_state`], one per (operator, subtask).
    pub state_files: Vec<StateFileEntry>,
    /// Source positions at the barrier.
    pub source_positions: Vec<SourcePosition>,
}

impl SnapshotWriter {
    /// Starts checkpoint `checkpoint_id` of job `job_name` in
    /// `<checkpoint_root>/<job_name>/chk-<checkpoint_id>/`.
    ///
    /// An *incomplete* folder of the same id (left by a crashed attempt) is removed and
    /// started afresh; a complete one is an [`StorageError::AlreadyExists`] error.
    pub fn begin_checkpoint(
        checkpoint_root: &Path,
        job_name: &str,
        checkpoint_id: u64,
    ) -> Result<SnapshotWriter> {
        let job_dir = job_dir(checkpoint_root, job_name)?;
        if !job_dir.is_dir() {
            fs::create_dir_all(&job_dir)
                .map_err(|e| StorageError::io("create folder", &job_dir, checkpoint_root, e))?;
            // The job folder's own entry must be durable too; commit fsyncs the rest.
            sync_dir(checkpoint_root)?;
        }
        let dir = checkpoint_dir(&job_dir, checkpoint_id);
        if dir.join(METADATA_FILE_NAME).exists() {
            return Err(StorageError::AlreadyExists { path: dir });
        }
        remove_dir_all_if_exists(&dir, &job_dir)?;
        fs::create_dir(&dir).map_err(|e| StorageError::io("create folder", &dir, &job_dir, e))?;
        Ok(SnapshotWriter {
            dir,
            kind: SnapshotKind::Checkpoint,
            job_name: job_name.to_owned(),
            checkpoint_id,
        })
    }

    /// Starts a savepoint of job `job_name` at `savepoint_dir`, which must not exist or be
    /// an empty folder (a user-given path is never cleared: [`StorageError::NotEmpty`]).
    pub fn begin_savepoint(
        savepoint_dir: &Path,
        job_name: &str,
        checkpoint_id: u64,
    ) -> Result<SnapshotWriter> {
        validate_name("job name", job_name)?;
        let parent = savepoint_dir.parent().unwrap_or(savepoint_dir);
        if savepoint_dir.join(METADATA_FILE_NAME).exists() {
            return Err(StorageError::AlreadyExists {
                path: savepoint_dir.to_path_buf(),
            });
        }
        fs::create_dir_all(savepoint_dir)
            .map_err(|e| StorageError::io("create folder", savepoint_dir, parent, e))?;
        let mut entries = fs::read_dir(savepoint_dir)
            .map_err(|e| StorageError::io("list", savepoint_dir, parent, e))?;
        if entries.next().is_some() {
            return Err(StorageError::NotEmpty {
                path: savepoint_dir.to_path_buf(),
            });
        }
        Ok(SnapshotWriter {
            dir: savepoint_dir.to_path_buf(),
            kind: SnapshotKind::Savepoint,
            job_name: job_name.to_owned(),
            checkpoint_id,
        })
    }

    /// The snapshot's folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Checkpoint or savepoint.
    pub fn kind(&self) -> SnapshotKind {
        self.kind
    }

    /// The checkpoint id this writer was started with.
    pub fn checkpoint_id(&self) -> u64 {
        self.checkpoint_id
    }

    /// Writes the state of (`operator_id`, `subtask_index`) durably (temp file, fsync,
    /// rename) and returns the entry to pass to [`commit`](Self::commit).
    ///
    /// `state` is opaque; when it is read back it starts 16-byte aligned in memory, so it
    /// may be an rkyv archive accessed in place. Writing the same (operator, subtask)
    /// twice replaces the earlier file.
    pub fn write_state(
        &self,
        operator_id: &str,
        subtask_index: u32,
        state: &[u8],
    ) -> Result<StateFileEntry> {
        validate_name("operator id", operator_id)?;
        let file_name = state_file_name(operator_id, subtask_index);
        let state_crc32c = crc32c::crc32c(state);
        let header = FileHeader {
            magic: STATE_MAGIC,
            aux: subtask_index,
            payload_len_bytes: state.len() as u64,
            payload_crc32c: state_crc32c,
        }
        .encode();
        write_atomically(&self.dir, &file_name, &[&header, state])?;
        Ok(StateFileEntry {
            operator_id: operator_id.to_owned(),
            subtask_index,
            file_name,
            state_len_bytes: state.len() as u64,
            state_crc32c,
        })
    }

    /// Completes the snapshot: checks that every listed state file is in the folder with
    /// the listed size, makes them durable, then writes `_metadata` (atomically, last).
    ///
    /// Errors with [`StorageError::Misuse`] when an entry is listed twice or does not
    /// belong to this folder, and [`StorageError::Missing`] when a listed file is absent.
    pub fn commit(self, info: CommitInfo) -> Result<SnapshotRef> {
        let CommitInfo {
            timestamp_ms,
            state_files,
            source_positions,
        } = info;
        let mut seen = std::collections::HashSet::new();
        for entry in &state_files {
            if !seen.insert((entry.operator_id.as_str(), entry.subtask_index)) {
                return Err(StorageError::Misuse {
                    detail: format!(
                        "state of operator {:?} subtask {} listed twice in the commit of {}",
                        entry.operator_id,
                        entry.subtask_index,
                        self.dir.display()
                    ),
                });
            }
            if entry.file_name != state_file_name(&entry.operator_id, entry.subtask_index) {
                return Err(StorageError::Misuse {
                    detail: format!(
                        "state file entry {:?} does not match its operator and subtask",
                        entry.file_name
                    ),
                });
            }
            let path = self.dir.join(&entry.file_name);
            let on_disk = fs::metadata(&path)
                .map_err(|e| StorageError::io("inspect", &path, &self.dir, e))?;
            let expected = HEADER_LEN_BYTES as u64 + entry.state_len_bytes;
            if on_disk.len() != expected {
                return Err(StorageError::Misuse {
                    detail: format!(
                        "{} is {} bytes but its entry says {expected}: was it written by \
                         another snapshot?",
                        path.display(),
                        on_disk.len()
                    ),
                });
            }
        }
        // Every state file's rename must be durable before `_metadata` can be.
        sync_dir(&self.dir)?;
        let metadata = SnapshotMetadata {
            format_version: FORMAT_VERSION,
            kind: self.kind,
            job_name: self.job_name,
            checkpoint_id: self.checkpoint_id,
            timestamp_ms,
            state_files,
            source_positions,
        };
        let archive =
            rkyv::to_bytes::<rkyv::rancor::Error>(&metadata).map_err(|e| StorageError::Misuse {
                detail: format!("cannot archive the metadata of {}: {e}", self.dir.display()),
            })?;
        let header = FileHeader {
            magic: METADATA_MAGIC,
            aux: 0,
            payload_len_bytes: archive.len() as u64,
            payload_crc32c: crc32c::crc32c(&archive),
        }
        .encode();
        write_atomically(&self.dir, METADATA_FILE_NAME, &[&header, &archive])?;
        sync_dir(&self.dir)?;
        if let Some(parent) = self.dir.parent().filter(|p| !p.as_os_str().is_empty()) {
            sync_dir(parent)?;
        }
        Ok(SnapshotRef {
            checkpoint_id: self.checkpoint_id,
            path: self.dir,
        })
    }
}
