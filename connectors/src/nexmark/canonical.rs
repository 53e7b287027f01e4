//! [`CanonicalCsvSink`]: result rows in the canonical CSV form of the Flink peer
//! harness's reference files (`run_flink.py --out`), so eddy's and Flink's outputs can
//! be compared byte for byte:
//!
//! * a header line with the query's column names;
//! * then the rows, sorted as text (byte order of UTF-8 = code point order, as Python's
//!   `sorted`);
//! * fields quoted only where needed (a `,`, `"`, `\r` or `\n` inside; quotes doubled),
//!   as Python's `csv.writer` with `QUOTE_MINIMAL`;
//! * timestamps as `YYYY-MM-DD HH:MM:SS.mmm` (UTC), every line ending with `\n`.
//!
//! The rows are kept in memory until the input ends (sorting needs them all), so this
//! sink is for result sets that fit in memory — reference runs and tests, not the
//! benchmark's blackhole runs. It runs with parallelism 1 (one file).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::marker::PhantomData;
use std::path::{Path, PathBuf};

use eddy_engine::prelude::*;

use super::time::write_timestamp_ms;

/// A record that can be written as one canonical CSV row.
pub trait CsvRow {
    /// Appends the row's fields, in column order, to `line`.
    fn write_fields(&self, line: &mut CsvLine);

    /// When the input event this row derives from entered its source, for rows that
    /// carry it (the stateless Nexmark queries' rows copy their bid's
    /// [`IngestTime`](super::IngestTime)); `None` (the default): not tracked.
    fn ingest(&self) -> Option<std::time::Instant> {
        None
    }
}

/// One CSV line being built: fields are appended with a `,` between them.
#[derive(Debug, Default)]
pub struct CsvLine {
    text: String,
    fields: usize,
}

impl CsvLine {
    /// An empty line.
    pub fn new() -> Self {
        CsvLine::default()
    }

    fn separator(&mut self) {
        if self.fields > 0 {
            self.text.push(',');
        }
        self.fields += 1;
    }

    /// Appends an integer field.
    pub fn integer(&mut self, value: i64) -> &mut Self {
        self.separator();
        // Writing into a String cannot fail.
        let _ = std::fmt::Write::write_fmt(&mut self.text, format_args!("{value}"));
        self
    }

    /// Appends a text field, quoted if it holds `,`, `"`, `\r` or `\n`.
    pub fn text(&mut self, value: &str) -> &mut Self {
        self.separator();
        if value.contains([',', '"', '\r', '\n']) {
            self.text.push('"');
            for part in value.split_inclusive('"') {
                self.text.push_str(part);
                if part.ends_with('"') {
                    self.text.push('"');
                }
            }
            self.text.push('"');
        } else {
            self.text.push_str(value);
        }
        self
    }

    /// Appends a timestamp field (`epoch_ms` as `YYYY-MM-DD HH:MM:SS.mmm`, UTC).
    pub fn timestamp(&mut self, epoch_ms: i64) -> &mut Self {
        self.separator();
        write_timestamp_ms(&mut self.text, epoch_ms);
        self
    }

    /// The line (without a line end).
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The line (without a line end).
    pub fn into_string(self) -> String {
        self.text
    }
}

/// The canonical CSV text of one row.
pub fn csv_line<T: CsvRow + ?Sized>(row: &T) -> String {
    let mut line = CsvLine::new();
    row.write_fields(&mut line);
    line.into_string()
}

/// Writes rows of `T` into one CSV file in canonical form (see the module docs).
pub struct CanonicalCsvSink<T> {
    path: PathBuf,
    header: Vec<String>,
    file: Option<File>,
    lines: Vec<String>,
    _rows: PhantomData<fn(T)>,
}

impl<T> Clone for CanonicalCsvSink<T> {
    /// An unopened sink of the same file.
    fn clone(&self) -> Self {
        CanonicalCsvSink {
            path: self.path.clone(),
            header: self.header.clone(),
            file: None,
            lines: Vec::new(),
            _rows: PhantomData,
        }
    }
}

impl<T> CanonicalCsvSink<T> {
    /// A sink writing to `path` (created or truncated when the job starts) with these
    /// column names.
    pub fn new(path: impl AsRef<Path>, header: &[&str]) -> Self {
        CanonicalCsvSink {
            path: path.as_ref().to_path_buf(),
            header: header.iter().map(|column| column.to_string()).collect(),
            file: None,
            lines: Vec::new(),
            _rows: PhantomData,
        }
    }

    fn error(&self, what: &str, error: std::io::Error) -> ConnectorError {
        ConnectorError::with_source(format!("{what} '{}'", self.path.display()), error)
    }
}

impl<T: CsvRow + Send + 'static> Sink<T> for CanonicalCsvSink<T> {
    fn open(&mut self, subtask: &SubtaskInfo) -> Result<(), ConnectorError> {
        if subtask.parallelism != 1 {
            return Err(ConnectorError::new(format!(
                "the canonical CSV sink writes one sorted file and needs parallelism 1, got {}",
                subtask.parallelism
            )));
        }
        let file =
            File::create(&self.path).map_err(|e| self.error("cannot create output file", e))?;
        self.file = Some(file);
        Ok(())
    }

    fn write(&mut self, record: T) -> Result<(), ConnectorError> {
        self.lines.push(csv_line(&record));
        Ok(())
    }

    fn finish(&mut self) -> Result<(), ConnectorError> {
        let Some(file) = self.file.take() else {
            return Ok(());
        };
        self.lines.sort_unstable();
        let mut header = CsvLine::new();
        for column in &self.header {
            header.text(column);
        }
        let mut writer = BufWriter::with_capacity(256 << 10, file);
        let written = (|| {
            writeln!(writer, "{}", header.as_str())?;
            for line in &self.lines {
                writeln!(writer, "{line}")?;
            }
            writer.into_inner().map_err(|e| e.into_error())?.sync_all()
        })();
        self.lines = Vec::new();
        written.map_err(|e| self.error("cannot write", e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Row(i64, &'static str, i64);

    impl CsvRow for Row {
        fn write_fields(&self, line: &mut CsvLine) {
            line.integer(self.0).text(self.1).timestamp(self.2);
        }
    }

    #[test]
    fn fields_are_quoted_only_where_needed() {
        assert_eq!(
            csv_line(&Row(-3, "plain text", 0)),
            "-3,plain text,1970-01-01 00:00:00.000"
        );
        assert_eq!(
            csv_line(&Row(1, "a,b", 1)),
            "1,\"a,b\",1970-01-01 00:00:00.001"
        );
        assert_eq!(
            csv_line(&Row(1, "say \"hi\"", 1)),
            "1,\"say \"\"hi\"\"\",1970-01-01 00:00:00.001"
        );
        assert_eq!(
            csv_line(&Row(1, "\"", 1)),
            "1,\"\"\"\",1970-01-01 00:00:00.001"
        );
        assert_eq!(csv_line(&Row(1, "", 1)), "1,,1970-01-01 00:00:00.001");
        assert_eq!(
            csv_line(&Row(1, "x\ny", 1)),
            "1,\"x\ny\",1970-01-01 00:00:00.001"
        );
    }

    #[test]
    fn rows_are_sorted_as_text_after_the_header() {
        let file = tempfile::NamedTempFile::new().unwrap();
        let mut sink = CanonicalCsvSink::<Row>::new(file.path(), &["n", "s", "t"]);
        let info = SubtaskInfo {
            job: "t".into(),
            operator: "sink".into(),
            index: 0,
            parallelism: 1,
        };
        sink.open(&info).unwrap();
        for row in [Row(20, "b", 0), Row(3, "a", 0), Row(100, "c", 0)] {
            sink.write(row).unwrap();
        }
        sink.finish().unwrap();
        let text = std::fs::read_to_string(file.path()).unwrap();
        assert_eq!(
            text,
            "n,s,t\n100,c,1970-01-01 00:00:00.000\n20,b,1970-01-01 00:00:00.000\n3,a,1970-01-01 00:00:00.000\n"
        );
    }
}
