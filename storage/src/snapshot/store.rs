//! The checkpoint folder of a job: listing, recovery and retention.
//!
//! ```text
//! <checkpoint-root>/<job>/            job_dir()
//!     chk-41/  _metadata  op-*.state  complete
//!     chk-42/  op-*.state             incomplete (crashed or in progress): ignored
//! ```

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::error::{Result, StorageError};
use crate::fsutil::{remove_dir_all_if_exists, sync_dir, validate_name};
use crate::snapshot::format::METADATA_FILE_NAME;
use crate::snapshot::read::{read_metadata, Snapshot};

const CHECKPOINT_DIR_PREFIX: &str = "chk-";

/// A snapshot folder found on disk (not yet validated).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotRef {
    /// The checkpoint id (`n` of `chk-<n>`).
    pub checkpoint_id: u64,
    /// The folder.
    pub path: PathBuf,
}

/// A complete checkpoint that [`latest_valid`] skipped because it does not validate.
#[derive(Debug)]
pub struct SkippedSnapshot {
    /// Which checkpoint.
    pub checkpoint: SnapshotRef,
    /// Why it was skipped (names the damaged file).
    pub error: StorageError,
}

/// The outcome of [`latest_valid`].
#[derive(Debug)]
pub struct Recovery {
    /// The newest complete checkpoint that validates, or `None` when there is none.
    pub snapshot: Option<Snapshot>,
    /// Newer complete checkpoints that were skipped, newest first, with their errors, for
    /// the caller to log. When `snapshot` is `None`, every complete checkpoint is here.
    pub skipped: Vec<SkippedSnapshot>,
}

/// What [`retain`] removed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RetainReport {
    /// Removed checkpoint folders, in the order they were removed.
    pub removed: Vec<PathBuf>,
}

/// The folder of job `job_name` under `checkpoint_root`; the name is validated (see
/// [`StorageError::InvalidName`]).
pub fn job_dir(checkpoint_root: &Path, job_name: &str) -> Result<PathBuf> {
    validate_name("job name", job_name)?;
    Ok(checkpoint_root.join(job_name))
}

/// The folder of checkpoint `checkpoint_id` in `job_dir`: `job_dir/chk-<id>`.
pub fn checkpoint_dir(job_dir: &Path, checkpoint_id: u64) -> PathBuf {
    job_dir.join(format!("{CHECKPOINT_DIR_PREFIX}{checkpoint_id}"))
}

/// Parses `chk-<n>` (decimal digits only).
fn parse_checkpoint_id(name: &str) -> Option<u64> {
    let digits = name.strip_prefix(CHECKPOINT_DIR_PREFIX)?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Every `chk-<n>` folder in `job_dir` with whether it has `_metadata`, newest first.
fn list_all(job_dir: &Path) -> Result<Vec<(SnapshotRef, bool)>> {
    let parent = job_dir.parent().unwrap_or(job_dir);
    let entries = match fs::read_dir(job_dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(StorageError::io("list", job_dir, parent, e)),
    };
    let mut found = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| StorageError::io("list", job_dir, parent, e))?;
        let Some(checkpoint_id) = entry.file_name().to_str().and_then(parse_checkpoint_id) else {
            continue;
        };
        let path = entry.path();
        if !path.is_dir() {
            continue;
        }
        let complete = path.join(METADATA_FILE_NAME).is_file();
        found.push((
            SnapshotRef {
                checkpoint_id,
                path,
            },
            complete,
        ));
    }
    found.sort_by_key(|(checkpoint, _)| std::cmp::Reverse(checkpoint.checkpoint_id));
    Ok(found)
}

/// The complete checkpoints of a job (folders `chk-<n>` holding `_metadata`), newest
/// first. Not validated: see [`latest_valid`]. A missing `job_dir` has none.
pub fn list_complete(job_dir: &Path) -> Result<Vec<SnapshotRef>> {
    Ok(list_all(job_dir)?
        .into_iter()
        .filter_map(|(checkpoint, complete)| complete.then_some(checkpoint))
        .collect())
}

/// The newest complete checkpoint that fully validates ([`Snapshot::open`]), plus the newer
/// ones that did not, with their errors. Only listing the folder can fail as a whole.
pub fn latest_valid(job_dir: &Path) -> Result<Recovery> {
    let mut skipped = Vec::new();
    for checkpoint in list_complete(job_dir)? {
        match Snapshot::open(&checkpoint.path) {
            Ok(snapshot) => {
                return Ok(Recovery {
                    snapshot: Some(snapshot),
                    skipped,
                })
            }
            Err(error) => skipped.push(SkippedSnapshot { checkpoint, error }),
        }
    }
    Ok(Recovery {
        snapshot: None,
        skipped,
    })
}

/// Keeps the newest `keep` (at least 1) complete checkpoints of a job and removes older
/// ones.
///
/// Here "complete" means `_metadata` exists *and validates* (cheap: state files are not
/// read), so a damaged newest checkpoint never causes a good older one to be removed.
/// Nothing is removed unless a complete checkpoint exists. Removed: complete checkpoints
/// beyond the newest `keep`, and every other `chk-<n>` folder (incomplete or damaged)
/// older than the newest complete one. Folders newer than it are left alone: they may be
/// in progress. A folder is removed by deleting `_metadata` first, so a crash halfway
/// leaves an incomplete folder, never a complete-looking one with files missing.
pub fn retain(job_dir: &Path, keep: usize) -> Result<RetainReport> {
    let keep = keep.max(1);
    let all = list_all(job_dir)?;
    let mut kept = Vec::new();
    let mut newest_complete = None;
    for (checkpoint, complete) in &all {
        if kept.len() < keep && *complete && read_metadata(&checkpoint.path).is_ok() {
            newest_complete.get_or_insert(checkpoint.checkpoint_id);
            kept.push(checkpoint.checkpoint_id);
        }
    }
    let mut report = RetainReport::default();
    let Some(newest_complete) = newest_complete else {
        return Ok(report);
    };
    for (checkpoint, complete) in all {
        if checkpoint.checkpoint_id >= newest_complete || kept.contains(&checkpoint.checkpoint_id) {
            continue;
        }
        if complete {
            let metadata = checkpoint.path.join(METADATA_FILE_NAME);
            match fs::remove_file(&metadata) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(StorageError::io("remove", &metadata, &checkpoint.path, e)),
            }
            sync_dir(&checkpoint.path)?;
        }
        remove_dir_all_if_exists(&checkpoint.path, job_dir)?;
        report.removed.push(checkpoint.path);
    }
    if !report.removed.is_empty() {
        sync_dir(job_dir)?;
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoint_names_parse_strictly() {
        assert_eq!(parse_checkpoint_id("chk-0"), Some(0));
        assert_eq!(parse_checkpoint_id("chk-42"), Some(42));
        for bad in [
            "chk-",
            "chk-+1",
            "chk--1",
            "chk-1a",
            "chk-99999999999999999999",
            "sav-1",
            ".chk-1",
        ] {
            assert_eq!(parse_checkpoint_id(bad), None, "{bad}");
        }
    }
}
