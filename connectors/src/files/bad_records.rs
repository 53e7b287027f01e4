//! What happens to a record that does not parse: by [`BadRecordPolicy`] it fails the
//! job, is skipped and counted, or goes to a [`DeadLetterFile`] (one JSON line per bad
//! record: the reason, the source file, its line and byte position, and the raw text).
//! Every bad record is counted in [`FileSourceMetrics`]; nothing disappears silently.
//!
//! Dead letters are written by the source itself: the engine has no side outputs for
//! sources yet (see docs/ARCHITECTURE.md, "Connectors: files"). One file is shared by
//! all subtasks behind a mutex, and flushed after every bad record (bad records are
//! rare; a flushed line survives a crash of the process).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde::Serialize;

use super::error::FileError;

/// Where a record starts in its file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, serde::Deserialize)]
pub struct Position {
    /// Line number, 1-based.
    pub line: u64,
    /// Byte offset from the start of the file.
    pub byte: u64,
}

impl std::fmt::Display for Position {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {} (byte {})", self.line, self.byte)
    }
}

/// A record that did not parse.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeadLetter {
    /// Why it did not parse.
    pub reason: String,
    /// The file it came from.
    pub file: PathBuf,
    /// Line number, 1-based.
    pub line: u64,
    /// Byte offset of its start.
    pub byte: u64,
    /// Its text (invalid UTF-8 replaced by U+FFFD), when the reader still has it.
    pub raw: Option<String>,
}

/// A JSON-lines file of [`DeadLetter`]s shared by the subtasks of a job.
#[derive(Debug, Clone)]
pub struct DeadLetterFile {
    path: Arc<PathBuf>,
    writer: Arc<Mutex<BufWriter<File>>>,
}

impl DeadLetterFile {
    /// Creates (or truncates) the file at `path` now, so a path that cannot be written
    /// is reported before the job starts.
    pub fn create(path: impl AsRef<Path>) -> Result<Self, FileError> {
        let path = path.as_ref().to_path_buf();
        let file = File::create(&path)
            .map_err(|e| FileError::io("cannot create dead-letter file", &path, e))?;
        Ok(DeadLetterFile {
            path: Arc::new(path),
            writer: Arc::new(Mutex::new(BufWriter::new(file))),
        })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one dead letter and flushes it.
    pub fn write(&self, letter: &DeadLetter) -> Result<(), FileError> {
        self.write_json(letter)
    }

    /// Appends any serialisable dead letter (e.g. a Kafka record's, which names a
    /// topic, partition and offset instead of a file) as one JSON line, and flushes it.
    pub fn write_json(&self, letter: &impl Serialize) -> Result<(), FileError> {
        let mut line = serde_json::to_vec(letter).map_err(|e| FileError::Encode {
            format: "jsonl",
            reason: e.to_string(),
        })?;
        line.push(b'\n');
        let mut writer = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        writer
            .write_all(&line)
            .and_then(|()| writer.flush())
            .map_err(|e| FileError::io("cannot write dead-letter file", &*self.path, e))
    }
}

/// What a source does with a record that does not parse (`--on-bad-record`).
#[derive(Debug, Clone)]
pub enum BadRecordPolicy {
    /// Fail the job, naming the file, the position and the reason.
    Fail,
    /// Skip it; it is counted, and the count is logged when the subtask ends.
    SkipAndCount,
    /// Write it to the dead-letter file (and count it).
    DeadLetter(DeadLetterFile),
}

impl BadRecordPolicy {
    /// The policy's name as users write it.
    pub fn name(&self) -> &'static str {
        match self {
            BadRecordPolicy::Fail => "fail",
            BadRecordPolicy::SkipAndCount => "skip-and-count",
            BadRecordPolicy::DeadLetter(_) => "dead-letter",
        }
    }
}

/// Counters of a file source, shared by all its subtasks (clones share them).
/// Updated once per file or per bad record, and once per poll for records.
#[derive(Debug, Clone, Default)]
pub struct FileSourceMetrics {
    inner: Arc<Counters>,
}

#[derive(Debug, Default)]
struct Counters {
    records_out: AtomicU64,
    bad_records: AtomicU64,
    files_done: AtomicU64,
}

impl FileSourceMetrics {
    /// Records emitted so far.
    pub fn records_out(&self) -> u64 {
        self.inner.records_out.load(Ordering::Relaxed)
    }

    /// Records that did not parse (dead-lettered, skipped, or the one that failed the
    /// job).
    pub fn bad_records(&self) -> u64 {
        self.inner.bad_records.load(Ordering::Relaxed)
    }

    /// Files read to their end.
    pub fn files_done(&self) -> u64 {
        self.inner.files_done.load(Ordering::Relaxed)
    }

    pub(crate) fn add_records(&self, count: u64) {
        self.inner.records_out.fetch_add(count, Ordering::Relaxed);
    }

    pub(crate) fn add_bad_record(&self) {
        self.inner.bad_records.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn add_file_done(&self) {
        self.inner.files_done.fetch_add(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dead_letters_are_json_lines_with_file_and_position() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dead.jsonl");
        let file = DeadLetterFile::create(&path).unwrap();
        let copy = file.clone();
        for (line, dead) in [(3, &file), (9, &copy)] {
            dead.write(&DeadLetter {
                reason: "expected 3 fields, found 2".into(),
                file: "/in/a.csv".into(),
                line,
                byte: line * 10,
                raw: Some("x,\"y".into()),
            })
            .unwrap();
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[1]["line"], 9);
        assert_eq!(lines[1]["file"], "/in/a.csv");
        assert_eq!(lines[0]["raw"], "x,\"y");
    }

    #[test]
    fn an_unwritable_dead_letter_file_is_named() {
        let error = DeadLetterFile::create("/nonexistent/dir/dead.jsonl")
            .unwrap_err()
            .to_string();
        assert!(error.contains("/nonexistent/dir/dead.jsonl"), "{error}");
    }
}
