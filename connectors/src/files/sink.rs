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
    /// Two-phase commit with checkpoints (folders only): completed part files stay
    /// hidden (`.part-<subtask>-<n>.<ext>.pending`) until the checkpoint after them
    /// completes; only then are they renamed to `part-<subtask>-<n>.<ext>`. Turn on
    /// when the job checkpoints (exactly-once output).
    pub exactly_once: bool,
}

/// What the exactly-once sink keeps in a checkpoint.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
struct FileSinkState {
    /// The subtask that wrote it.
    subtask: u32,
    /// The number the next part file gets: parts from here on were written after the
    /// checkpoint.
    next_part: u64,
    /// Parts pre-committed (pending) at or before the checkpoint, by name.
    pending: Vec<String>,
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
    /// Exactly-once: completed parts not yet committed, as (checkpoint id that
    /// pre-committed them or `None` when not yet, final name).
    pending: Vec<(Option<u64>, PathBuf)>,
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
            pending: Vec::new(),
        }
    }

    fn extension(&self) -> &'static str {
        match self.settings.format {
            Format::Csv { .. } => "csv",
            Format::JsonLines => "jsonl",
            Format::Lines => "txt",
        }
    }

    fn folder(&self) -> Option<&Path> {
        match &self.settings.target {
            SinkTarget::Folder(dir) if self.settings.exactly_once => Some(dir),
            _ => None,
        }
    }

    /// The hidden name a committed part has while pending.
    fn pending_name(target: &Path) -> PathBuf {
        let name = target.file_name().unwrap_or_default().to_string_lossy();
        target.with_file_name(format!(".{name}.pending"))
    }

    /// Makes pending parts pre-committed by checkpoints up to `checkpoint_id` visible.
    fn commit_pending(&mut self, up_to: Option<u64>) -> Result<(), FileError> {
        let mut kept = Vec::new();
        let mut renamed = false;
        for (checkpoint, target) in std::mem::take(&mut self.pending) {
            let due = match (checkpoint, up_to) {
                (_, None) => true,
                (Some(checkpoint), Some(up_to)) => checkpoint <= up_to,
                (None, Some(_)) => false,
            };
            if !due {
                kept.push((checkpoint, target));
                continue;
            }
            let hidden = Self::pending_name(&target);
            match std::fs::rename(&hidden, &target) {
                Ok(()) => {
                    tracing::debug!(part = %target.display(), ?checkpoint, ?up_to, "part committed");
                    renamed = true
                }
                // Already committed (a commit repeated after a restore).
                Err(e) if e.kind() == std::io::ErrorKind::NotFound && target.exists() => {}
                Err(e) => return Err(FileError::io("cannot commit", &hidden, e)),
            }
        }
        self.pending = kept;
        if renamed {
            if let Some(folder) = self.folder() {
                sync_folder(folder)?;
            }
        }
        Ok(())
    }

    /// The numbers of the parts of `subtask` in the folder, by kind.
    fn scan(&self, dir: &Path, subtask: u32) -> Result<Vec<(u64, PathBuf, bool)>, FileError> {
        let mut found = Vec::new();
        let prefix = format!("part-{subtask}-");
        let entries = std::fs::read_dir(dir).map_err(|e| FileError::io("cannot list", dir, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| FileError::io("cannot list", dir, e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let (visible, rest) = match name.strip_prefix('.') {
                Some(hidden) => (false, hidden),
                None => (true, name.as_str()),
            };
            let Some(rest) = rest.strip_prefix(&prefix) else {
                continue;
            };
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            if let Ok(number) = digits.parse::<u64>() {
                found.push((number, entry.path(), visible));
            }
        }
        Ok(found)
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
                let mut name = format!("part-{}-{}", self.subtask, self.next_part);
                if self.settings.exactly_once {
                    name = format!("{name}.{}", self.extension());
                }
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
        let folder = part.target.parent().unwrap_or(Path::new(".")).to_path_buf();
        if self.folder().is_some() {
            // Exactly-once: complete but hidden until a checkpoint commits it.
            let hidden = Self::pending_name(&part.target);
            std::fs::rename(&part.temporary, &hidden)
                .map_err(|e| FileError::io("cannot rename", &hidden, e))?;
            self.pending.push((None, part.target));
            return sync_folder(&folder);
        }
        std::fs::rename(&part.temporary, &part.target)
            .map_err(|e| FileError::io("cannot rename into place", &part.target, e))?;
        sync_folder(&folder)
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
            SinkTarget::Folder(dir) => {
                std::fs::create_dir_all(dir)
                    .map_err(|e| FileError::io("cannot create folder", dir, e))?;
                if self.settings.exactly_once {
                    // Never reuse a number already in the folder (hidden parts of an
                    // earlier attempt are discarded by `restore`, or left alone on a
                    // fresh start: they are dot-files, never part of the output).
                    for (number, _, _) in self.scan(dir, subtask.index as u32)? {
                        self.next_part = self.next_part.max(number + 1);
                    }
                    tracing::debug!(
                        subtask = subtask.index,
                        next_part = self.next_part,
                        "part file sink opened"
                    );
                }
                Ok(())
            }
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
        self.complete_part()?;
        // All input arrived: everything written is final.
        Ok(self.commit_pending(None)?)
    }

    fn pre_commit(&mut self, checkpoint_id: u64) -> Result<Option<Vec<u8>>, ConnectorError> {
        if self.folder().is_none() {
            return Ok(None);
        }
        self.complete_part()?;
        for (checkpoint, _) in &mut self.pending {
            checkpoint.get_or_insert(checkpoint_id);
        }
        tracing::debug!(
            subtask = self.subtask,
            checkpoint = checkpoint_id,
            next_part = self.next_part,
            pending = ?self.pending,
            "part file sink pre-committed"
        );
        let state = FileSinkState {
            subtask: self.subtask as u32,
            next_part: self.next_part,
            pending: self
                .pending
                .iter()
                .filter_map(|(_, target)| target.file_name())
                .map(|name| name.to_string_lossy().into_owned())
                .collect(),
        };
        Ok(Some(eddy_engine::checkpoint::encode(&state)?))
    }

    fn commit(&mut self, checkpoint_id: u64) -> Result<(), ConnectorError> {
        Ok(self.commit_pending(Some(checkpoint_id))?)
    }

    fn restore(
        &mut self,
        checkpoint_id: u64,
        states: &[(u32, &[u8])],
    ) -> Result<(), ConnectorError> {
        let Some(dir) = self.folder().map(Path::to_path_buf) else {
            return Ok(());
        };
        for (_, bytes) in states {
            let state: FileSinkState = eddy_engine::checkpoint::decode(bytes)?;
            tracing::debug!(
                subtask = self.subtask,
                checkpoint = checkpoint_id,
                state_subtask = state.subtask,
                next_part = state.next_part,
                pending = ?state.pending,
                "part file sink restoring"
            );
            // Parts pre-committed by the restored checkpoint are committed (again).
            for name in &state.pending {
                self.pending.push((Some(checkpoint_id), dir.join(name)));
            }
            self.commit_pending(None)?;
            // Parts written after it: withdrawn if committed, discarded if not.
            let withdrawn = dir.join(format!(".withdrawn-chk-{checkpoint_id}"));
            for (number, path, visible) in self.scan(&dir, state.subtask)? {
                if number < state.next_part {
                    continue;
                }
                if visible {
                    std::fs::create_dir_all(&withdrawn)
                        .map_err(|e| FileError::io("cannot create folder", &withdrawn, e))?;
                    let to = withdrawn.join(path.file_name().unwrap_or_default());
                    std::fs::rename(&path, &to)
                        .map_err(|e| FileError::io("cannot withdraw", &path, e))?;
                    tracing::warn!(
                        file = %path.display(),
                        moved_to = %to.display(),
                        checkpoint = checkpoint_id,
                        "withdrew a part file committed after the restored checkpoint"
                    );
                } else {
                    std::fs::remove_file(&path)
                        .map_err(|e| FileError::io("cannot discard", &path, e))?;
                }
            }
            if state.subtask as usize == self.subtask {
                self.next_part = self.next_part.max(state.next_part);
            }
        }
        sync_folder(&dir)?;
        Ok(())
    }
}

fn sync_folder(folder: &Path) -> Result<(), FileError> {
    File::open(folder)
        .and_then(|dir| dir.sync_all())
        .map_err(|e| FileError::io("cannot sync folder", folder, e))
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
            exactly_once: false,
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
            exactly_once: false,
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
