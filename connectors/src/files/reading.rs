//! The part both file sources share: a queue of files read one after another in a
//! format, bad records handled by policy, counters, and the position (which files are
//! done, how far the current one was read) as a small serialisable value.

use std::collections::VecDeque;
use std::path::PathBuf;

use eddy_engine::prelude::SourceOutput;
use serde::{Deserialize, Serialize};

use super::bad_records::{BadRecordPolicy, FileSourceMetrics, Position};
use super::error::FileError;
use super::format::Format;
use super::reader::{FileReader, Next};
use super::record::Record;

/// How far a file source subtask has read: what a checkpoint will store, and what
/// [`FileSource::resume_from`](super::FileSource::resume_from) takes back. Its size
/// grows with the number of files done (one path each).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct FileSourcePosition {
    /// Files read to their end, in the order they were done.
    pub done: Vec<PathBuf>,
    /// The file being read and where its next record starts.
    pub current: Option<(PathBuf, Position)>,
}

impl FileSourcePosition {
    /// The position as it goes into a checkpoint.
    pub(crate) fn encode(&self) -> Result<Vec<u8>, eddy_engine::error::ConnectorError> {
        eddy_engine::checkpoint::encode(self)
    }

    /// The position subtask `subtask` resumes from, out of those a checkpoint holds:
    /// its own old subtask's (files are dealt to subtasks by their order or name, so
    /// the parallelism must not change).
    pub(crate) fn restored(
        subtask: &eddy_engine::operators::source::SubtaskInfo,
        positions: &[(u32, &[u8])],
        old_parallelism: u32,
    ) -> Result<Option<Self>, eddy_engine::error::ConnectorError> {
        eddy_engine::operators::source::same_subtask_position(
            positions,
            subtask.index,
            old_parallelism,
            subtask.parallelism,
        )?
        .map(eddy_engine::checkpoint::decode)
        .transpose()
    }
}

/// How files are read (shared settings of both sources).
#[derive(Debug, Clone)]
pub struct ReadSettings {
    /// The format of every file.
    pub format: Format,
    /// What to do with records that do not parse.
    pub on_bad_record: BadRecordPolicy,
}

/// A queue of files being read by one subtask.
#[derive(Debug)]
pub(crate) struct Reading {
    settings: ReadSettings,
    metrics: FileSourceMetrics,
    pending: VecDeque<PathBuf>,
    current: Option<FileReader>,
    /// Where to resume the first file taken from `pending` (restore).
    resume: Option<(PathBuf, Position)>,
    done: Vec<PathBuf>,
    /// Bad records seen by this subtask (for the log line at the end).
    bad_records: u64,
}

impl Reading {
    pub(crate) fn new(settings: ReadSettings, metrics: FileSourceMetrics) -> Self {
        Reading {
            settings,
            metrics,
            pending: VecDeque::new(),
            current: None,
            resume: None,
            done: Vec::new(),
            bad_records: 0,
        }
    }

    /// Queues a file.
    pub(crate) fn push(&mut self, path: PathBuf) {
        self.pending.push_back(path);
    }

    /// Continues from `position`: its current file first, from where it stopped.
    pub(crate) fn resume(&mut self, position: FileSourcePosition) {
        self.done = position.done;
        if let Some((path, at)) = position.current {
            self.pending.push_front(path.clone());
            self.resume = Some((path, at));
        }
    }

    /// Whether nothing is being read or waiting to be.
    pub(crate) fn is_empty(&self) -> bool {
        self.current.is_none() && self.pending.is_empty()
    }

    /// The files done and the read position of the current file.
    ///
    /// A restored position whose file is not open yet (no poll since the restore) is
    /// still the current one: without it, a checkpoint taken right after a restore
    /// recorded the file as neither done nor started, and the next restore read it
    /// again from its first line (duplicates; found by the SIGKILL tests).
    pub(crate) fn position(&self) -> FileSourcePosition {
        let current = match (&self.current, &self.resume) {
            (Some(reader), _) => Some((reader.path().to_path_buf(), reader.position())),
            (None, Some((path, at))) => Some((path.clone(), *at)),
            (None, None) => None,
        };
        FileSourcePosition {
            done: self.done.clone(),
            current,
        }
    }

    /// Emits up to `out.remaining()` records; returns when the output is full or the
    /// queue is empty.
    pub(crate) fn poll(&mut self, out: &mut SourceOutput<'_, Record>) -> Result<(), FileError> {
        let mut emitted = 0u64;
        let result = self.fill(out, &mut emitted);
        self.metrics.add_records(emitted);
        result
    }

    fn fill(
        &mut self,
        out: &mut SourceOutput<'_, Record>,
        emitted: &mut u64,
    ) -> Result<(), FileError> {
        while out.remaining() > 0 {
            let reader = match &mut self.current {
                Some(reader) => reader,
                None => {
                    let Some(path) = self.pending.pop_front() else {
                        return Ok(());
                    };
                    let resume = match self.resume.take() {
                        Some((resume_path, at)) if resume_path == path => Some(at),
                        _ => None,
                    };
                    tracing::debug!(file = %path.display(), "reading");
                    self.current
                        .insert(FileReader::open(&path, self.settings.format, resume)?)
                }
            };
            match reader.next()? {
                Next::Record(record) => {
                    out.emit(record);
                    *emitted += 1;
                }
                Next::Bad(letter) => {
                    self.bad_records += 1;
                    self.metrics.add_bad_record();
                    match &self.settings.on_bad_record {
                        BadRecordPolicy::Fail => {
                            return Err(FileError::BadRecord {
                                path: letter.file,
                                position: Position {
                                    line: letter.line,
                                    byte: letter.byte,
                                },
                                reason: letter.reason,
                            })
                        }
                        BadRecordPolicy::SkipAndCount => {}
                        BadRecordPolicy::DeadLetter(file) => file.write(&letter)?,
                    }
                }
                Next::End => {
                    let path = reader.path().to_path_buf();
                    self.current = None;
                    self.done.push(path);
                    self.metrics.add_file_done();
                }
            }
        }
        Ok(())
    }

    /// Logs this subtask's count of bad records (called when the subtask ends).
    pub(crate) fn log_summary(&self, subtask: &str) {
        if self.bad_records > 0 {
            tracing::warn!(
                subtask,
                bad_records = self.bad_records,
                policy = self.settings.on_bad_record.name(),
                "records that did not parse"
            );
        } else {
            tracing::info!(subtask, files = self.done.len(), "file source done");
        }
    }
}
