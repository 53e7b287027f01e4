//! [`FileSink`]: records written in a [`Format`] to one file, or to a folder of part
//! files (one series per sink subtask).
//!
//! Exactly-once part files need checkpoints (in-progress → pending → committed on
//! checkpoint, DESIGN.md), which eddy does not have yet. Until then a part file is
//! written under a hidden temporary name (`.part-<subtask>-<n>.inprogress`), and when
//! it is complete — it reached [`FileSinkSettings::part_bytes`], or the input ended —
//! it is flushed, fsynced and renamed to `part-<subtask>-<n>` (then the folder is
//! fsynced): a visible part file is always whole. A job that is cancelled or fails
//! leaves its in-progress files behind under their hidden names. The single-file target
//! works alike (`.NAME.inprogress`, renamed to `NAME` at end of input) and needs a sink
//! parallelism of 1.
//!
//! Writes go through `std::fs` with a 256 KiB buffer, like the other file connectors.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use eddy_engine::prelude::*;

use super::error::FileError;
use super::format::Format;
use super::record::{Record, RecordEncoder};

const WRITE_BUFFER_BYTES: usize = 256 << 10;

/// Where a [`FileSink`] writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SinkTarget {
    /// One file (sink parallelism 1).
    File(PathBuf),
    /// A folder of part files `part-<subtask>-<n>` (created if missing).
    Folder(PathBuf),
}

/// Settings of a [`FileSink`].
#[derive(Debug, Clone)]
pub struct FileSinkSettings {
    /// Where to write.
    pub target: SinkTarget,
    /// The output format.
    pub format: Format,
    /// A part file is completed once it holds this many bytes (folders only).
    pub part_bytes: u64,
}

/// Writes records to a file or to a folder of part files.
#[derive(Debug)]
pub struct FileSink {
    settings: FileSinkSettings,
    encoder: RecordEncoder,
    subtask: usize,
    next_part: u64,
    part: Option<Part>,
    scratch: Vec<u8>,
}

#[derive(Debug)]
struct Part {
    temporary: PathBuf,
    target: PathBuf,
    writer: BufWriter<File>,
    bytes: u64,
}

/// A clone is an unopened sink with the same settings.
impl Clone for FileSink {
    fn clone(&self) -> Self {
        FileSink::new(self.settings.clone())
    }
}

impl FileSink {
    /// A sink with `settings`.
    pub fn new(settings: FileSinkSettings) -> Self {
        FileSink {
            encoder: RecordEncoder::new(settings.format),
            settings,
            subtask: 0,
            next_part: 0,
            part: None,
            scratch: Vec::new(),
        }
    }

    /// Names of the part being started: (temporary, final).
    fn next_names(&mut self) -> (PathBuf, PathBuf) {
        match &self.settings.target {
            SinkTarget::File(path) => {
                let name = path.file_name().unwrap_or_default().to_string_lossy();
                (
                    path.with_file_name(format!(".{name}.inprogress")),
                    path.clone(),
                )
            }
            SinkTarget::Folder(dir) => {
                let name = format!("part-{}-{}", self.subtask, self.next_part);
                self.next_part += 1;
                (dir.join(format!(".{name}.inprogress")), dir.join(name))
            }
        }
    }

    fn start_part(&mut self) -> Result<(), FileError> {
        let (temporary, target) = self.next_names();
        let file =
            File::create(&temporary).map_err(|e| FileError::io("cannot create", &temporary, e))?;
        self.encoder.reset();
        self.part = Some(Part {
            temporary,
            target,
            writer: BufWriter::with_capacity(WRITE_BUFFER_BYTES, file),
            bytes: 0,
        });
        Ok(())
    }

    /// Flushes, fsyncs and renames the current part into place.
    fn complete_part(&mut self) -> Result<(), FileError> {
        let Some(part) = self.part.take() else {
            return Ok(());
        };
        let file = part
            .writer
            .into_inner()
            .map_err(|e| FileError::io("cannot write", &part.temporary, e.into_error()))?;
        file.sync_all()
            .map_err(|e| FileError::io("cannot sync", &part.temporary, e))?;
        std::fs::rename(&part.temporary, &part.target)
            .map_err(|e| FileError::io("cannot rename into place", &part.target, e))?;
        let folder = part.target.parent().unwrap_or(Path::new("."));
        File::open(folder)
            .and_then(|dir| dir.sync_all())
            .map_err(|e| FileError::io("cannot sync folder", folder, e))
    }

    fn write_records(&mut self, batch: &mut Batch<Record>) -> Result<(), FileError> {
        for record in batch.drain_values() {
            if self.part.is_none() {
                self.start_part()?;
            }
            self.scratch.clear();
            self.encoder.encode(&record, &mut self.scratch)?;
            let part = self.part.as_mut().expect("started above");
            part.writer
                .write_all(&self.scratch)
                .map_err(|e| FileError::io("cannot write", &part.temporary, e))?;
            part.bytes += self.scratch.len() as u64;
            let full = part.bytes >= self.settings.part_bytes;
            if full && matches!(self.settings.target, SinkTarget::Folder(_)) {
                self.complete_part()?;
            }
        }
        Ok(())
    }
}

impl Sink<Record> for FileSink {
    fn open(&mut self, subtask: &SubtaskInfo) -> Result<(), ConnectorError> {
        self.subtask = subtask.index;
        match &self.settings.target {
            SinkTarget::File(_) if subtask.parallelism != 1 => Err(FileError::Config(format!(
                "a sink writing one file needs parallelism 1, got {}",
                subtask.parallelism
            ))
            .into()),
            SinkTarget::File(_) => Ok(()),
            SinkTarget::Folder(dir) => std::fs::create_dir_all(dir)
                .map_err(|e| FileError::io("cannot create folder", dir, e).into()),
        }
    }

    fn write(&mut self, record: Record) -> Result<(), ConnectorError> {
        let mut batch = Batch::new();
        batch.push(record);
        Ok(self.write_records(&mut batch)?)
    }

    fn write_batch(&mut self, batch: &mut Batch<Record>) -> Result<(), ConnectorError> {
        Ok(self.write_records(batch)?)
    }

    fn finish(&mut self) -> Result<(), ConnectorError> {
        // A single file exists even when no record came.
        if self.part.is_none() && matches!(self.settings.target, SinkTarget::File(_)) {
            self.start_part()?;
        }
        Ok(self.complete_part()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subtask(index: usize, parallelism: usize) -> SubtaskInfo {
        SubtaskInfo {
            job: "t".into(),
            operator: "sink".into(),
            index,
            parallelism,
        }
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn part_files_roll_and_appear_only_when_complete() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let mut sink = FileSink::new(FileSinkSettings {
            target: SinkTarget::Folder(out.clone()),
            format: Format::Lines,
            part_bytes: 10,
        });
        sink.open(&subtask(1, 2)).unwrap();
        let mut batch = Batch::new();
        for line in ["aaaa", "bbbb", "cccc"] {
            batch.push(Record::Line(line.as_bytes().to_vec()));
        }
        sink.write_batch(&mut batch).unwrap();
        // 15 bytes: the first part completed at 10, the second is in progress.
        assert_eq!(names(&out), [".part-1-1.inprogress", "part-1-0"]);
        sink.finish().unwrap();
        assert_eq!(names(&out), ["part-1-0", "part-1-1"]);
        assert_eq!(
            std::fs::read_to_string(out.join("part-1-0")).unwrap(),
            "aaaa\nbbbb\n"
        );
        assert_eq!(
            std::fs::read_to_string(out.join("part-1-1")).unwrap(),
            "cccc\n"
        );
    }

    #[test]
    fn a_single_file_needs_parallelism_one_and_exists_even_if_empty() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.jsonl");
        let settings = FileSinkSettings {
            target: SinkTarget::File(path.clone()),
            format: Format::JsonLines,
            part_bytes: 1,
        };
        let error = FileSink::new(settings.clone())
            .open(&subtask(0, 2))
            .unwrap_err();
        assert!(error.to_string().contains("parallelism 1"), "{error}");
        let mut sink = FileSink::new(settings);
        sink.open(&subtask(0, 1)).unwrap();
        sink.finish().unwrap();
        assert_eq!(names(dir.path()), ["out.jsonl"]);
    }
}
