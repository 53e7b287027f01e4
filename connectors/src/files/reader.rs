//! Reads the records of one file in a [`Format`], with the position of each record
//! (line and byte), and where to resume after the last one read.
//!
//! Reads go through `std::fs` with a 256 KiB buffer: bounded page-cache copies, like the
//! text source (io_uring reads through glommio are still to come, see ARCHITECTURE.md).

use std::fs::File;
use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::bad_records::{DeadLetter, Position};
use super::error::FileError;
use super::format::Format;
use super::record::Record;

const READ_BUFFER_BYTES: usize = 256 << 10;

/// What [`FileReader::next`] found.
#[derive(Debug)]
pub(crate) enum Next {
    /// A record.
    Record(Record),
    /// A record that does not parse.
    Bad(DeadLetter),
    /// The end of the file.
    End,
}

/// The reader of one file.
#[derive(Debug)]
pub(crate) struct FileReader {
    path: PathBuf,
    kind: Kind,
}

#[derive(Debug)]
enum Kind {
    Csv {
        /// Reads the file directly through its own `READ_BUFFER_BYTES` buffer (no
        /// `BufReader` in between: that would copy every byte once more).
        reader: csv::Reader<File>,
        header: Option<Arc<csv::StringRecord>>,
        /// Scratch row, reused: each row is read into it (its buffers keep their
        /// capacity) and copied out with exactly the capacity it needs. Reading into a
        /// fresh record instead grew its two buffers from empty on every row: about
        /// ten reallocations, 40% of the parse time (callgrind).
        record: csv::ByteRecord,
    },
    Lines {
        reader: BufReader<File>,
        json: bool,
        /// Where the next line starts.
        next: Position,
        line: Vec<u8>,
    },
}

impl FileReader {
    /// Opens `path`; with `resume`, continues at that position (which a previous reader
    /// of the same file returned from [`FileReader::position`]).
    pub(crate) fn open(
        path: &Path,
        format: Format,
        resume: Option<Position>,
    ) -> Result<Self, FileError> {
        let file = File::open(path).map_err(|e| FileError::io("cannot open", path, e))?;
        let kind = match format {
            Format::Csv { header } => {
                let mut reader = csv::ReaderBuilder::new()
                    .has_headers(false)
                    .flexible(false)
                    .buffer_capacity(READ_BUFFER_BYTES)
                    .from_reader(file);
                let mut record = csv::ByteRecord::new();
                let header =
                    if header {
                        let found = reader
                            .read_byte_record(&mut record)
                            .map_err(|e| csv_io(path, e))?;
                        if found {
                            let names = csv::StringRecord::from_byte_record(record.clone())
                                .map_err(|e| FileError::BadRecord {
                                    path: path.to_path_buf(),
                                    position: Position { line: 1, byte: 0 },
                                    reason: format!(
                                        "the header is not valid UTF-8 ({})",
                                        e.utf8_error()
                                    ),
                                })?;
                            Some(Arc::new(names))
                        } else {
                            None
                        }
                    } else {
                        None
                    };
                if let Some(resume) = resume.filter(|r| r.byte > 0) {
                    let mut position = csv::Position::new();
                    position.set_byte(resume.byte).set_line(resume.line);
                    reader.seek(position).map_err(|e| csv_io(path, e))?;
                }
                Kind::Csv {
                    reader,
                    header,
                    record,
                }
            }
            Format::JsonLines | Format::Lines => {
                let mut buffered = BufReader::with_capacity(READ_BUFFER_BYTES, file);
                let next = match resume {
                    Some(resume) => {
                        buffered
                            .seek(SeekFrom::Start(resume.byte))
                            .map_err(|e| FileError::io("cannot seek in", path, e))?;
                        resume
                    }
                    None => Position { line: 1, byte: 0 },
                };
                Kind::Lines {
                    reader: buffered,
                    json: format == Format::JsonLines,
                    next,
                    line: Vec::new(),
                }
            }
        };
        Ok(FileReader {
            path: path.to_path_buf(),
            kind,
        })
    }

    /// The file's path.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Where the record after the last one read starts (to resume there).
    pub(crate) fn position(&self) -> Position {
        match &self.kind {
            Kind::Csv { reader, .. } => {
                let position = reader.position();
                Position {
                    line: position.line(),
                    byte: position.byte(),
                }
            }
            Kind::Lines { next, .. } => *next,
        }
    }

    /// The next record, bad record or end of file. `Err` only for I/O errors.
    pub(crate) fn next(&mut self) -> Result<Next, FileError> {
        let path = &self.path;
        match &mut self.kind {
            Kind::Csv {
                reader,
                header,
                record,
            } => match reader.read_byte_record(record) {
                Ok(false) => Ok(Next::End),
                Ok(true) => {
                    let position = record.position().cloned();
                    match csv::StringRecord::from_byte_record(record.clone()) {
                        Ok(fields) => Ok(Next::Record(Record::Row {
                            fields,
                            header: header.clone(),
                        })),
                        Err(error) => {
                            let bytes = error.into_byte_record();
                            let position = position.map_or(Position::default(), |p| Position {
                                line: p.line(),
                                byte: p.byte(),
                            });
                            Ok(Next::Bad(dead_letter(
                                path,
                                position,
                                "a field is not valid UTF-8".into(),
                                &bytes,
                            )))
                        }
                    }
                }
                Err(error) => match error.kind() {
                    csv::ErrorKind::UnequalLengths {
                        pos,
                        expected_len,
                        len,
                    } => {
                        let position = pos.as_ref().map_or(Position::default(), |p| Position {
                            line: p.line(),
                            byte: p.byte(),
                        });
                        let reason = format!("expected {expected_len} fields, found {len}");
                        Ok(Next::Bad(dead_letter(path, position, reason, record)))
                    }
                    _ => Err(csv_io(path, error)),
                },
            },
            Kind::Lines {
                reader,
                json,
                next,
                line,
            } => loop {
                line.clear();
                let read = reader
                    .read_until(b'\n', line)
                    .map_err(|e| FileError::io("cannot read", path.as_path(), e))?;
                if read == 0 {
                    return Ok(Next::End);
                }
                let position = *next;
                next.byte += read as u64;
                next.line += 1;
                if line.last() == Some(&b'\n') {
                    line.pop();
                }
                if !*json {
                    return Ok(Next::Record(Record::Line(line.clone())));
                }
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                return Ok(match serde_json::from_slice(line) {
                    Ok(value) => Next::Record(Record::Json(value)),
                    Err(error) => Next::Bad(DeadLetter {
                        reason: format!("invalid JSON: {error}"),
                        file: path.clone(),
                        line: position.line,
                        byte: position.byte,
                        raw: Some(String::from_utf8_lossy(line).into_owned()),
                    }),
                });
            },
        }
    }
}

fn dead_letter(
    path: &Path,
    position: Position,
    reason: String,
    fields: &csv::ByteRecord,
) -> DeadLetter {
    let raw = fields
        .iter()
        .map(String::from_utf8_lossy)
        .collect::<Vec<_>>()
        .join(",");
    DeadLetter {
        reason,
        file: path.to_path_buf(),
        line: position.line,
        byte: position.byte,
        raw: Some(raw),
    }
}

fn csv_io(path: &Path, error: csv::Error) -> FileError {
    match error.into_kind() {
        csv::ErrorKind::Io(error) => FileError::io("cannot read", path, error),
        other => FileError::io(
            "cannot read",
            path,
            std::io::Error::other(format!("{other:?}")),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(path: &Path, format: Format, resume: Option<Position>) -> Vec<Next> {
        let mut reader = FileReader::open(path, format, resume).unwrap();
        let mut all = Vec::new();
        loop {
            match reader.next().unwrap() {
                Next::End => return all,
                next => all.push(next),
            }
        }
    }

    fn write(text: &[u8]) -> tempfile::NamedTempFile {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), text).unwrap();
        file
    }

    #[test]
    fn csv_rows_and_bad_rows_with_their_lines() {
        let file = write(b"id,name\n1,\"a,b\"\n2\n3,\"multi\nline\"\n4,\xff\n5,e\n");
        let all = read_all(file.path(), Format::Csv { header: true }, None);
        let summary: Vec<String> = all
            .iter()
            .map(|next| match next {
                Next::Record(Record::Row { fields, header }) => {
                    assert_eq!(header.as_ref().unwrap().get(1), Some("name"));
                    format!("ok {}", fields.get(1).unwrap())
                }
                Next::Bad(bad) => {
                    format!("bad line {} byte {}: {}", bad.line, bad.byte, bad.reason)
                }
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(
            summary,
            [
                "ok a,b",
                "bad line 3 byte 16: expected 2 fields, found 1",
                "ok multi\nline",
                "bad line 6 byte 33: a field is not valid UTF-8",
                "ok e"
            ]
        );
    }

    #[test]
    fn json_lines_skip_blank_lines_and_report_bad_ones() {
        let file = write(b"{\"a\":1}\n\n{oops\n[1,2]\n");
        let all = read_all(file.path(), Format::JsonLines, None);
        assert_eq!(all.len(), 3);
        match &all[1] {
            Next::Bad(bad) => {
                assert_eq!((bad.line, bad.byte), (3, 9));
                assert!(bad.reason.contains("invalid JSON"), "{}", bad.reason);
                assert_eq!(bad.raw.as_deref(), Some("{oops"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn lines_keep_their_bytes() {
        let file = write(b"a\r\n\xffb\nlast");
        let all = read_all(file.path(), Format::Lines, None);
        let lines: Vec<Vec<u8>> = all
            .into_iter()
            .map(|next| match next {
                Next::Record(Record::Line(bytes)) => bytes,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(
            lines,
            [b"a\r".to_vec(), b"\xffb".to_vec(), b"last".to_vec()]
        );
    }

    #[test]
    fn reading_resumes_at_a_position_without_repeating() {
        for (format, text) in [
            (Format::Csv { header: true }, &b"h1,h2\n1,a\n2,b\n3,c\n"[..]),
            (Format::Csv { header: false }, &b"1,a\n2,b\n3,c\n"[..]),
            (Format::JsonLines, &b"1\n2\n3\n"[..]),
            (Format::Lines, &b"1\n2\n3\n"[..]),
        ] {
            let file = write(text);
            let all = read_all(file.path(), format, None);
            let mut reader = FileReader::open(file.path(), format, None).unwrap();
            let first = reader.next().unwrap();
            let position = reader.position();
            let rest = read_all(file.path(), format, Some(position));
            assert_eq!(format!("{:?}", all[0]), format!("{first:?}"));
            assert_eq!(
                format!("{:?}", &all[1..]),
                format!("{rest:?}"),
                "{format:?} at {position}"
            );
        }
    }
}
