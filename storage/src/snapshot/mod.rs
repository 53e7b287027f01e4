//! Checkpoint and savepoint store on the local file system.
//!
//! A snapshot is a folder holding one state file per (operator id, subtask index) and a
//! `_metadata` rkyv archive that lists them (with sizes and crc32c checksums), the job
//! name, the checkpoint id, the caller's timestamp and the sources' positions. Checkpoints
//! live under `<checkpoint-root>/<job>/chk-<n>/`; savepoints use the same format in a
//! folder the user names, with [`SnapshotKind::Savepoint`] in the metadata.
//!
//! * **Writing** ([`SnapshotWriter`]): every file goes to a temporary name, is fsynced and
//!   renamed; `_metadata` is written last, after the folder is fsynced. A folder without
//!   `_metadata` is not a snapshot.
//! * **Reading** ([`open`] / [`Snapshot::open`]): files are memory-mapped and validated (header,
//!   length, crc32c, rkyv bytecheck for `_metadata`; `access_unchecked` is never used);
//!   state bytes are then borrowed in place. Every failure is a [`StorageError`] naming
//!   the file.
//! * **Recovery** ([`latest_valid`]): the newest checkpoint that validates, plus the newer
//!   ones skipped and why.
//! * **Retention** ([`retain`]): keep the newest N complete checkpoints.
//!
//! ```
//! use eddy_storage::snapshot::{latest_valid, retain, job_dir, CommitInfo, SnapshotWriter};
//! # fn main() -> Result<(), eddy_storage::StorageError> {
//! # let root = tempfile::tempdir().unwrap();
//! let writer = SnapshotWriter::begin_checkpoint(root.path(), "wordcount", 7)?;
//! let entry = writer.write_state("counter", 0, b"state bytes")?;
//! writer.commit(CommitInfo { timestamp_ms: 1_700_000_000_000, state_files: vec![entry], ..CommitInfo::default() })?;
//!
//! let job = job_dir(root.path(), "wordcount")?;
//! let recovery = latest_valid(&job)?;
//! let snapshot = recovery.snapshot.expect("checkpoint 7 is valid");
//! assert_eq!(snapshot.checkpoint_id(), 7);
//! assert_eq!(snapshot.state("counter", 0), Some(&b"state bytes"[..]));
//! retain(&job, 3)?;
//! # Ok(()) }
//! ```
//!
//! [`StorageError`]: crate::StorageError

mod format;
mod read;
mod store;
mod write;

pub use format::{
    SnapshotKind, SnapshotMetadata, SourcePosition, StateFileEntry, FORMAT_VERSION,
    HEADER_LEN_BYTES, METADATA_FILE_NAME,
};
pub use read::{open, read_metadata, Snapshot};
pub use store::{
    checkpoint_dir, job_dir, latest_valid, list_complete, retain, Recovery, RetainReport,
    SkippedSnapshot, SnapshotRef,
};
pub use write::{CommitInfo, SnapshotWriter};

#[cfg(test)]
mod tests;
