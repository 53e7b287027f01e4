//! A bounded source reading a text file line by line.
//!
//! The file is split into `parallelism` byte ranges; subtask `i` reads the lines that
//! *start* in range `i` (a line crossing a boundary belongs to the range it starts in),
//! so every line is read exactly once whatever the parallelism. Lines are emitted
//! without their `\n` (and without a `\r` before it). A line that is not valid UTF-8
//! fails the job with the file name and the line's byte offset: nothing is silently
//! changed or dropped.
//!
//! Reads go through `std::fs` with a 256 KiB buffer (page-cache reads of bounded size);
//! io_uring reads through glommio come with the connectors issue (see DESIGN.md).

use std::fs::File;
use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use eddy_engine::prelude::*;

const READ_BUFFER_BYTES: usize = 256 << 10;

/// Reads the lines of one text file (bounded, parallel).
#[derive(Debug)]
pub struct TextFileSource {
    path: PathBuf,
    reader: Option<SplitReader>,
    /// The restored byte offset to start at (a checkpoint's position).
    resume: Option<u64>,
}

#[derive(Debug)]
struct SplitReader {
    reader: BufReader<File>,
    /// Byte offset of the next line.
    position: u64,
    /// The split ends before this offset: a line starting at or after it is not ours.
    end: u64,
    line: Vec<u8>,
}

/// A clone is an unopened source of the same file (each subtask opens its own).
impl Clone for TextFileSource {
    fn clone(&self) -> Self {
        TextFileSource::new(&self.path)
    }
}

impl TextFileSource {
    /// A source for the file at `path` (opened when the job starts).
    pub fn new(path: impl AsRef<Path>) -> Self {
        TextFileSource {
            path: path.as_ref().to_path_buf(),
            reader: None,
            resume: None,
        }
    }

    fn error(&self, what: &str, error: std::io::Error) -> ConnectorError {
        ConnectorError::with_source(format!("{what} '{}'", self.path.display()), error)
    }
}

impl Source<String> for TextFileSource {
    fn open(&mut self, subtask: &SubtaskInfo) -> Result<(), ConnectorError> {
        let mut file =
            File::open(&self.path).map_err(|e| self.error("cannot open input file", e))?;
        let length = file
            .metadata()
            .map_err(|e| self.error("cannot read metadata of", e))?
            .len();
        let parallelism = subtask.parallelism as u64;
        let index = subtask.index as u64;
        let start = length * index / parallelism;
        let end = length * (index + 1) / parallelism;
        // Start one byte early: if that byte is a newline, a line starts exactly at
        // `start`; otherwise the partial line belongs to the previous split.
        let seek_to = start.saturating_sub(1);
        file.seek(SeekFrom::Start(seek_to))
            .map_err(|e| self.error("cannot seek in", e))?;
        let mut reader = BufReader::with_capacity(READ_BUFFER_BYTES, file);
        let mut position = seek_to;
        if start > 0 {
            let mut skipped = Vec::new();
            position += reader
                .read_until(b'\n', &mut skipped)
                .map_err(|e| self.error("cannot read", e))? as u64;
        }
        if let Some(resume) = self.resume {
            // Restored: continue where the checkpoint was taken (a line start).
            reader
                .seek(SeekFrom::Start(resume))
                .map_err(|e| self.error("cannot seek in", e))?;
            position = resume;
        }
        self.reader = Some(SplitReader {
            reader,
            position,
            end,
            line: Vec::new(),
        });
        Ok(())
    }

    fn poll_next(
        &mut self,
        out: &mut SourceOutput<'_, String>,
    ) -> Result<SourceStatus, ConnectorError> {
        let path = self.path.clone();
        let split = self.reader.as_mut().expect("opened before polled");
        while out.remaining() > 0 {
            if split.position >= split.end {
                return Ok(SourceStatus::Finished);
            }
            split.line.clear();
            let read = split
                .reader
                .read_until(b'\n', &mut split.line)
                .map_err(|e| {
                    ConnectorError::with_source(format!("cannot read '{}'", path.display()), e)
                })?;
            if read == 0 {
                return Ok(SourceStatus::Finished);
            }
            let line_start = split.position;
            split.position += read as u64;
            let mut line = &split.line[..];
            if line.last() == Some(&b'\n') {
                line = &line[..line.len() - 1];
                if line.last() == Some(&b'\r') {
                    line = &line[..line.len() - 1];
                }
            }
            match std::str::from_utf8(line) {
                Ok(text) => out.emit(text.to_owned()),
                Err(error) => {
                    return Err(ConnectorError::new(format!(
                        "'{}': the line at byte {} is not valid UTF-8 ({error})",
                        path.display(),
                        line_start
                    )))
                }
            }
        }
        Ok(SourceStatus::Ready)
    }

    /// The byte offset where the next line starts.
    fn snapshot_position(&mut self) -> Result<Option<Vec<u8>>, ConnectorError> {
        let split = self.reader.as_ref().expect("opened before checkpointed");
        Ok(Some(split.position.to_le_bytes().to_vec()))
    }

    fn restore_position(
        &mut self,
        subtask: &SubtaskInfo,
        positions: &[(u32, &[u8])],
        old_parallelism: u32,
    ) -> Result<(), ConnectorError> {
        let Some(bytes) = same_subtask_position(
            positions,
            subtask.index,
            old_parallelism,
            subtask.parallelism,
        )?
        else {
            return Ok(());
        };
        let position = <[u8; 8]>::try_from(bytes)
            .map(u64::from_le_bytes)
            .map_err(|_| ConnectorError::new("a text file position is 8 bytes"))?;
        self.resume = Some(position);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::io::Write;

    fn read_all(path: &Path, parallelism: usize) -> Vec<String> {
        let mut lines = Vec::new();
        for index in 0..parallelism {
            let mut source = TextFileSource::new(path);
            source
                .open(&SubtaskInfo {
                    job: "t".into(),
                    operator: "src".into(),
                    index,
                    parallelism,
                })
                .unwrap();
            let mut batch = Batch::new();
            loop {
                let mut out = SourceOutput::new(&mut batch, 7);
                let status = source.poll_next(&mut out).unwrap();
                lines.extend(batch.drain_values());
                if status == SourceStatus::Finished {
                    break;
                }
            }
        }
        lines
    }

    proptest! {
        #[test]
        fn every_line_is_read_once_whatever_the_parallelism(
            lines in proptest::collection::vec("[a-z ]{0,12}", 0..60),
            trailing_newline in any::<bool>(),
            parallelism in 1usize..8,
        ) {
            let mut file = tempfile::NamedTempFile::new().unwrap();
            let mut text = lines.join("\n");
            if trailing_newline && !lines.is_empty() {
                text.push('\n');
            }
            file.write_all(text.as_bytes()).unwrap();
            let expected: Vec<String> = if text.is_empty() {
                Vec::new()
            } else {
                text.strip_suffix('\n').unwrap_or(&text).split('\n').map(str::to_owned).collect()
            };
            prop_assert_eq!(read_all(file.path(), parallelism), expected);
        }
    }

    #[test]
    fn invalid_utf8_fails_with_the_position() {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        file.write_all(b"ok\nbad \xff line\n").unwrap();
        let mut source = TextFileSource::new(file.path());
        source
            .open(&SubtaskInfo {
                job: "t".into(),
                operator: "src".into(),
                index: 0,
                parallelism: 1,
            })
            .unwrap();
        let mut batch = Batch::new();
        let mut out = SourceOutput::new(&mut batch, 10);
        let error = source.poll_next(&mut out).unwrap_err().to_string();
        assert!(error.contains("byte 3"), "{error}");
        assert!(error.contains("UTF-8"), "{error}");
    }

    #[test]
    fn a_missing_file_is_named() {
        let mut source = TextFileSource::new("/nonexistent/eddy-input.txt");
        let error = source
            .open(&SubtaskInfo {
                job: "t".into(),
                operator: "src".into(),
                index: 0,
                parallelism: 1,
            })
            .unwrap_err()
            .to_string();
        assert!(error.contains("/nonexistent/eddy-input.txt"), "{error}");
    }
}
