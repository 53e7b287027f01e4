//! [`FileSource`]: a file, a folder or a glob read once (bounded). The files are listed
//! when the job starts, sorted, and dealt round-robin to the source subtasks (file `i`
//! to subtask `i % parallelism`); each subtask reads its files whole, one after another.
//! A single big file is therefore read by one subtask (split by byte ranges like
//! [`TextFileSource`](crate::TextFileSource) is a later improvement).

use std::path::{Path, PathBuf};

use eddy_engine::prelude::*;

use super::bad_records::FileSourceMetrics;
use super::error::FileError;
use super::listing::expand;
use super::reading::{FileSourcePosition, ReadSettings, Reading};
use super::record::Record;

/// Reads the records of a file, a folder or a glob once (bounded, parallel).
#[derive(Debug)]
pub struct FileSource {
    path: PathBuf,
    settings: ReadSettings,
    metrics: FileSourceMetrics,
    resume: Option<FileSourcePosition>,
    reading: Option<Reading>,
    subtask: String,
}

/// A clone is an unopened source of the same files sharing the same counters.
impl Clone for FileSource {
    fn clone(&self) -> Self {
        FileSource {
            path: self.path.clone(),
            settings: self.settings.clone(),
            metrics: self.metrics.clone(),
            resume: self.resume.clone(),
            reading: None,
            subtask: String::new(),
        }
    }
}

impl FileSource {
    /// A source of the files `path` names (a file, a folder, or a glob such as
    /// `/data/*.csv`), read with `settings`.
    pub fn new(path: impl AsRef<Path>, settings: ReadSettings) -> Self {
        FileSource {
            path: path.as_ref().to_path_buf(),
            settings,
            metrics: FileSourceMetrics::default(),
            resume: None,
            reading: None,
            subtask: String::new(),
        }
    }

    /// Starts from a position taken from [`FileSource::position`] (of a source with
    /// parallelism 1, until checkpoints keep a position per subtask): files done are
    /// skipped, the current one continues where it stopped.
    pub fn resume_from(mut self, position: FileSourcePosition) -> Self {
        self.resume = Some(position);
        self
    }

    /// The counters of all subtasks (records, bad records, files).
    pub fn metrics(&self) -> FileSourceMetrics {
        self.metrics.clone()
    }

    /// How far this subtask has read (what a checkpoint will store).
    pub fn position(&self) -> FileSourcePosition {
        self.reading
            .as_ref()
            .map(Reading::position)
            .unwrap_or_default()
    }

    fn open_files(&mut self, subtask: &SubtaskInfo) -> Result<(), FileError> {
        let files = expand(&self.path)?;
        let mut reading = Reading::new(self.settings.clone(), self.metrics.clone());
        let resume = self.resume.take().unwrap_or_default();
        let skip: std::collections::HashSet<&PathBuf> = resume.done.iter().collect();
        let current = resume.current.as_ref().map(|(path, _)| path);
        for (index, file) in files.into_iter().enumerate() {
            let own = index % subtask.parallelism.max(1) == subtask.index;
            if own && !skip.contains(&file) && current != Some(&file) {
                reading.push(file);
            }
        }
        reading.resume(resume);
        self.reading = Some(reading);
        self.subtask = subtask.to_string();
        Ok(())
    }
}

impl Source<Record> for FileSource {
    fn open(&mut self, subtask: &SubtaskInfo) -> Result<(), ConnectorError> {
        Ok(self.open_files(subtask)?)
    }

    /// Files done and where the current one continues.
    fn snapshot_position(&mut self) -> Result<Option<Vec<u8>>, ConnectorError> {
        Ok(Some(self.position().encode()?))
    }

    fn restore_position(
        &mut self,
        subtask: &SubtaskInfo,
        positions: &[(u32, &[u8])],
        old_parallelism: u32,
    ) -> Result<(), ConnectorError> {
        if let Some(position) = FileSourcePosition::restored(subtask, positions, old_parallelism)? {
            self.resume = Some(position);
        }
        Ok(())
    }

    fn poll_next(
        &mut self,
        out: &mut SourceOutput<'_, Record>,
    ) -> Result<SourceStatus, ConnectorError> {
        let Some(reading) = self.reading.as_mut() else {
            return Err(ConnectorError::new(
                "the file source was polled before it was opened",
            ));
        };
        reading.poll(out)?;
        Ok(if reading.is_empty() {
            SourceStatus::Finished
        } else {
            SourceStatus::Ready
        })
    }

    fn close(&mut self) -> Result<(), ConnectorError> {
        if let Some(reading) = &self.reading {
            reading.log_summary(&self.subtask);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::files::{BadRecordPolicy, DeadLetterFile, Format};

    fn subtask(index: usize, parallelism: usize) -> SubtaskInfo {
        SubtaskInfo {
            job: "t".into(),
            operator: "src".into(),
            index,
            parallelism,
        }
    }

    /// Polls until finished (or `limit` records), returns the records as text.
    fn drain(source: &mut FileSource, limit: usize) -> Result<Vec<String>, ConnectorError> {
        let mut lines = Vec::new();
        let mut batch = Batch::new();
        loop {
            let mut out = SourceOutput::new(&mut batch, 3.min(limit - lines.len()));
            let status = source.poll_next(&mut out)?;
            for record in batch.drain_values() {
                lines.push(match record {
                    Record::Line(bytes) => String::from_utf8(bytes).unwrap(),
                    Record::Json(value) => value.to_string(),
                    Record::Row { fields, .. } => fields.iter().collect::<Vec<_>>().join("|"),
                });
            }
            if status == SourceStatus::Finished || lines.len() == limit {
                return Ok(lines);
            }
        }
    }

    fn settings(format: Format, on_bad_record: BadRecordPolicy) -> ReadSettings {
        ReadSettings {
            format,
            on_bad_record,
        }
    }

    #[test]
    fn a_folder_is_spread_over_subtasks_and_read_once() {
        let dir = tempfile::tempdir().unwrap();
        let mut expected = Vec::new();
        for file in 0..7 {
            let lines: Vec<String> = (0..5).map(|l| format!("f{file}-l{l}")).collect();
            std::fs::write(dir.path().join(format!("{file}.txt")), lines.join("\n")).unwrap();
            expected.extend(lines);
        }
        for parallelism in 1..=3 {
            let template =
                FileSource::new(dir.path(), settings(Format::Lines, BadRecordPolicy::Fail));
            let mut all = Vec::new();
            for index in 0..parallelism {
                let mut source = template.clone();
                source.open(&subtask(index, parallelism)).unwrap();
                all.extend(drain(&mut source, usize::MAX).unwrap());
                source.close().unwrap();
            }
            all.sort();
            let mut sorted = expected.clone();
            sorted.sort();
            assert_eq!(all, sorted);
            assert_eq!(template.metrics().records_out(), 35);
            assert_eq!(template.metrics().files_done(), 7);
        }
    }

    #[test]
    fn bad_records_follow_the_policy_and_are_counted() {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("in.csv");
        std::fs::write(&input, "a,b\n1,2\n3\n4,5\n6,7,8\n9,10\n").unwrap();
        let csv = Format::Csv { header: true };

        let mut skip = FileSource::new(&input, settings(csv, BadRecordPolicy::SkipAndCount));
        skip.open(&subtask(0, 1)).unwrap();
        assert_eq!(
            drain(&mut skip, usize::MAX).unwrap(),
            ["1|2", "4|5", "9|10"]
        );
        assert_eq!(skip.metrics().bad_records(), 2);

        let dead = DeadLetterFile::create(dir.path().join("dead.jsonl")).unwrap();
        let mut letters = FileSource::new(&input, settings(csv, BadRecordPolicy::DeadLetter(dead)));
        letters.open(&subtask(0, 1)).unwrap();
        assert_eq!(drain(&mut letters, usize::MAX).unwrap().len(), 3);
        let dead_text = std::fs::read_to_string(dir.path().join("dead.jsonl")).unwrap();
        let lines: Vec<serde_json::Value> = dead_text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["line"], 3);
        assert_eq!(lines[1]["line"], 5);
        assert_eq!(lines[1]["file"], input.to_str().unwrap());

        let mut fail = FileSource::new(&input, settings(csv, BadRecordPolicy::Fail));
        fail.open(&subtask(0, 1)).unwrap();
        let error = drain(&mut fail, usize::MAX).unwrap_err().to_string();
        assert!(
            error.contains("in.csv") && error.contains("line 3"),
            "{error}"
        );
    }

    #[test]
    fn a_source_resumes_from_its_position_without_loss_or_repeat() {
        let dir = tempfile::tempdir().unwrap();
        let mut expected = Vec::new();
        for file in 0..3 {
            let lines: Vec<String> = (0..4)
                .map(|l| format!("{{\"f\":{file},\"l\":{l}}}"))
                .collect();
            std::fs::write(dir.path().join(format!("{file}.jsonl")), lines.join("\n")).unwrap();
            expected.extend(lines);
        }
        for stop_after in 0..12 {
            let template = FileSource::new(
                dir.path().join("*.jsonl"),
                settings(Format::JsonLines, BadRecordPolicy::Fail),
            );
            let mut first = template.clone();
            first.open(&subtask(0, 1)).unwrap();
            let mut all = if stop_after == 0 {
                Vec::new()
            } else {
                drain(&mut first, stop_after).unwrap()
            };
            let position = first.position();
            // Restored, then checkpointed again before its first poll (a checkpoint
            // right after a restore): the position must not go back.
            let mut restored = template.clone().resume_from(position.clone());
            restored.open(&subtask(0, 1)).unwrap();
            assert_eq!(restored.position(), position, "stopped after {stop_after}");
            let mut second = template.clone().resume_from(restored.position());
            second.open(&subtask(0, 1)).unwrap();
            all.extend(drain(&mut second, usize::MAX).unwrap());
            assert_eq!(all, expected, "stopped after {stop_after}");
        }
    }

    #[test]
    fn a_missing_path_is_named() {
        let mut source = FileSource::new(
            "/nonexistent/eddy/in.csv",
            settings(Format::Lines, BadRecordPolicy::Fail),
        );
        let error = source.open(&subtask(0, 1)).unwrap_err().to_string();
        assert!(error.contains("/nonexistent/eddy/in.csv"), "{error}");
    }
}
