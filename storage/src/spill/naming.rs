//! Spill file names, which say who made a file, and [`sweep_stale`], which removes the
//! files a crashed run left behind.
//!
//! A name is `eddy-spill-<job>-<operator>-<subtask>-<sequence>.run`. Job and operator are
//! percent-encoded: every byte outside `[A-Za-z0-9_.]` becomes `%XX`, so `-` in a name
//! cannot be mistaken for a separator (job `a-b` never matches job `a`). An encoded part
//! longer than [`ENCODED_PART_MAX_BYTES`] is cut and suffixed with `~` and a checksum of
//! the full name, so names stay within file-system limits and still distinct.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::error::{Result, StorageError};

const PREFIX: &str = "eddy-spill-";
const SUFFIX: &str = ".run";
/// Longest encoded job or operator part of a spill file name.
const ENCODED_PART_MAX_BYTES: usize = 64;

/// Who writes a spill file: the job, the operator and its subtask. Any strings are
/// accepted; they are encoded into the file name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SpillOwner {
    /// The job's name.
    pub job: String,
    /// The operator's id.
    pub operator: String,
    /// The operator's subtask index.
    pub subtask_index: u32,
}

impl SpillOwner {
    /// Describes the owner of spill files.
    pub fn new(job: impl Into<String>, operator: impl Into<String>, subtask_index: u32) -> Self {
        SpillOwner {
            job: job.into(),
            operator: operator.into(),
            subtask_index,
        }
    }
}

/// Percent-encodes `name` for a file name, bounded in length (see the module docs).
fn encode_part(name: &str) -> String {
    let mut encoded = String::with_capacity(name.len());
    for byte in name.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'_' | b'.') {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    if encoded.len() <= ENCODED_PART_MAX_BYTES {
        return encoded;
    }
    // Leave room for `~` and 8 hex digits, and never cut inside a `%XX` escape.
    let mut cut = ENCODED_PART_MAX_BYTES - 9;
    let bytes = encoded.as_bytes();
    if bytes[cut - 1] == b'%' {
        cut -= 1;
    } else if bytes[cut - 2] == b'%' {
        cut -= 2;
    }
    format!(
        "{}~{:08x}",
        &encoded[..cut],
        crc32c::crc32c(name.as_bytes())
    )
}

/// The prefix shared by all spill files of `job`.
fn job_prefix(job: &str) -> String {
    format!("{PREFIX}{}-", encode_part(job))
}

/// The file name of spill file number `sequence` of `owner`.
pub(crate) fn spill_file_name(owner: &SpillOwner, sequence: u64) -> String {
    format!(
        "{}{}-{}-{sequence}{SUFFIX}",
        job_prefix(&owner.job),
        encode_part(&owner.operator),
        owner.subtask_index
    )
}

/// What [`sweep_stale`] removed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SweepReport {
    /// The removed files.
    pub removed: Vec<PathBuf>,
}

/// Removes every spill file of `job` in `spill_dir` (finished or not): the leftovers of a
/// run that crashed before its spill files were dropped. Call it when a job starts,
/// before it spills: it would also remove the files of a run of the same job that is
/// still going. A missing `spill_dir` holds nothing.
pub fn sweep_stale(spill_dir: &Path, job: &str) -> Result<SweepReport> {
    let prefix = job_prefix(job);
    let entries = match fs::read_dir(spill_dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(SweepReport::default()),
        Err(e) => return Err(StorageError::io("list", spill_dir, spill_dir, e)),
    };
    let mut report = SweepReport::default();
    for entry in entries {
        let entry = entry.map_err(|e| StorageError::io("list", spill_dir, spill_dir, e))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if !(name.starts_with(&prefix) && name.ends_with(SUFFIX)) {
            continue;
        }
        let path = entry.path();
        let is_file = entry.file_type().map(|t| t.is_file()).unwrap_or(false);
        if !is_file {
            continue;
        }
        match fs::remove_file(&path) {
            Ok(()) => report.removed.push(path),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(StorageError::io("remove", &path, spill_dir, e)),
        }
    }
    report.removed.sort();
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spill::SpillWriter;

    #[test]
    fn names_say_who_made_the_file() {
        let owner = SpillOwner::new("wordcount", "window_agg", 3);
        assert_eq!(
            spill_file_name(&owner, 17),
            "eddy-spill-wordcount-window_agg-3-17.run"
        );
        let owner = SpillOwner::new("q-5", "a/b c", 0);
        assert_eq!(
            spill_file_name(&owner, 1),
            "eddy-spill-q%2D5-a%2Fb%20c-0-1.run"
        );
    }

    #[test]
    fn long_names_are_bounded_and_distinct() {
        let a = encode_part(&"-".repeat(500));
        let b = encode_part(&"-".repeat(501));
        assert!(a.len() <= ENCODED_PART_MAX_BYTES, "{a}");
        assert_ne!(a, b);
        assert!(!a.contains('-'));
        let c = encode_part(&"x".repeat(500));
        assert!(c.len() <= ENCODED_PART_MAX_BYTES && c.contains('~'), "{c}");
        // Cut never splits an escape.
        for len in 50..80 {
            let name = format!("{}{}", "y".repeat(len % 7), "é-".repeat(len));
            let encoded = encode_part(&name);
            let (kept, _) = encoded.split_once('~').unwrap();
            assert!(
                !kept.ends_with('%') && !kept[..kept.len().saturating_sub(1)].ends_with('%'),
                "{kept}"
            );
        }
    }

    #[test]
    fn sweep_removes_only_the_jobs_files() {
        let dir = tempfile::tempdir().unwrap();
        let mine = SpillWriter::create(dir.path(), &SpillOwner::new("a", "op", 0))
            .unwrap()
            .finish()
            .unwrap()
            .keep();
        // An unfinished file of a crashed writer also goes.
        let mut crashed = SpillWriter::create(dir.path(), &SpillOwner::new("a", "op", 1)).unwrap();
        crashed.append(b"partial").unwrap();
        let crashed_path = crashed.path().to_path_buf();
        std::mem::forget(crashed); // as if the process died: the file stays
        let other = SpillWriter::create(dir.path(), &SpillOwner::new("a-b", "op", 0))
            .unwrap()
            .finish()
            .unwrap()
            .keep();
        fs::write(dir.path().join("unrelated.run"), b"x").unwrap();

        let report = sweep_stale(dir.path(), "a").unwrap();
        let mut expected = vec![mine.clone(), crashed_path.clone()];
        expected.sort();
        assert_eq!(report.removed, expected);
        assert!(!mine.exists() && !crashed_path.exists());
        assert!(other.exists());
        assert!(dir.path().join("unrelated.run").exists());
        assert!(sweep_stale(&dir.path().join("missing"), "a")
            .unwrap()
            .removed
            .is_empty());
    }
}
