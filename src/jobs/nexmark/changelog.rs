//! Updating results: a query whose result changes as input arrives (an aggregate or a
//! top-N without a window: q4, q9, q15–q19) emits a *changelog*, as Flink SQL does —
//! each record a [`Change`]: a row and its [`RowKind`] (`+I` insert, `-U` the row an
//! update replaces, `+U` the row that replaces it, `-D` delete).
//!
//! The changelog is written either as it is ([`ResultMode::Changelog`]: one line per
//! change, in the order the sink receives them, with an `op` column first), or
//! materialized into the final result ([`ResultMode::FinalResult`]: every `+I`/`+U`
//! adds its row, every `-U`/`-D` removes one copy; at the end of a bounded run the rows
//! still there are written sorted, in the same canonical form as an append-only query's
//! output). This is what the Flink peer harness does with Flink's changelog of q4, so
//! the two files compare byte for byte.
//!
//! A query builds its changelog with [`emit_update`], which emits what Flink's group
//! aggregate emits when a key's result goes from one value to another: nothing if it is
//! unchanged, `+I` for a first value, `-U old` + `+U new` for a change, `-D` when the key
//! has no result any more.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::marker::PhantomData;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::connectors::nexmark::canonical::csv_line as csv_line_of;
use crate::connectors::nexmark::{CanonicalCsvSink, CsvLine, CsvRow};
use crate::prelude::*;

use super::measure::{Blackhole, Io, MeasuredSink, RunStats};

/// What a changelog record does (Flink's `RowKind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RowKind {
    /// `+I`: a new row.
    Insert,
    /// `-U`: the old row of an update (retracted).
    UpdateBefore,
    /// `+U`: the new row of an update.
    UpdateAfter,
    /// `-D`: a row removed.
    Delete,
}

impl RowKind {
    /// `+I`, `-U`, `+U` or `-D`, as Flink prints it.
    pub fn short_string(self) -> &'static str {
        match self {
            RowKind::Insert => "+I",
            RowKind::UpdateBefore => "-U",
            RowKind::UpdateAfter => "+U",
            RowKind::Delete => "-D",
        }
    }

    /// Whether the row is added to the result (`+I`, `+U`) rather than removed.
    pub fn is_addition(self) -> bool {
        matches!(self, RowKind::Insert | RowKind::UpdateAfter)
    }
}

/// One record of a changelog: a row and what happens to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change<R> {
    /// Insert, update (before / after) or delete.
    pub kind: RowKind,
    /// The row.
    pub row: R,
}

impl<R> Change<R> {
    /// `+I row`.
    pub fn insert(row: R) -> Self {
        Change {
            kind: RowKind::Insert,
            row,
        }
    }
}

/// A change is written as its `op` (`+I`, ...) followed by the row's fields.
impl<R: CsvRow> CsvRow for Change<R> {
    fn write_fields(&self, line: &mut CsvLine) {
        line.text(self.kind.short_string());
        self.row.write_fields(line);
    }

    fn ingest(&self) -> Option<std::time::Instant> {
        self.row.ingest()
    }
}

/// Emits the changes that take one key's result from `old` to `new` (Flink's group
/// aggregate): nothing if they are equal, `+I new` if there was no result, `-D old` if
/// there is none any more, otherwise `-U old` then `+U new`.
pub fn emit_update<R: PartialEq>(
    old: Option<R>,
    new: Option<R>,
    out: &mut Collector<'_, Change<R>>,
) {
    match (old, new) {
        (None, None) => {}
        (None, Some(new)) => out.collect(Change::insert(new)),
        (Some(old), None) => out.collect(Change {
            kind: RowKind::Delete,
            row: old,
        }),
        (Some(old), Some(new)) => {
            if old != new {
                out.collect(Change {
                    kind: RowKind::UpdateBefore,
                    row: old,
                });
                out.collect(Change {
                    kind: RowKind::UpdateAfter,
                    row: new,
                });
            }
        }
    }
}

/// What a query's output file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ResultMode {
    /// The result's rows, sorted (canonical CSV): for an updating query, its changelog
    /// materialized at the end of a bounded run — the final result, as Flink's batch
    /// mode writes it. The default.
    #[default]
    FinalResult,
    /// The changelog itself (the `--changelog` of `eddy nexmark run`): an `op` column
    /// (`+I`, `-U`, `+U`, `-D`) before the result's columns, one line per change in
    /// the order the sink received them. An append-only query's changelog is its rows,
    /// each `+I`.
    Changelog,
}

/// Writes the changelog `changes` to `io.output` as `io.mode` says (one sink subtask),
/// or drops it (a blackhole sink) when there is no output file; `header` names the
/// result's columns (without `op`). The sink is measured for `io.stats`
/// ([`MeasuredSink`]).
pub fn write_changes<R: CsvRow + Data>(changes: &DataStream<Change<R>>, io: &Io, header: &[&str]) {
    let stats = Arc::clone(&io.stats);
    let Some(path) = io.output.as_deref() else {
        changes
            .sink(MeasuredSink::new(Blackhole, stats, true))
            .name("blackhole");
        return;
    };
    match io.mode {
        ResultMode::FinalResult => {
            let sink = MaterializedCsvSink::new(path, header).counting_into(Arc::clone(&stats));
            changes
                .sink(MeasuredSink::new(sink, stats, false))
                .name("write_final_csv")
                .set_parallelism(1);
        }
        ResultMode::Changelog => {
            changes
                .sink(MeasuredSink::new(
                    ChangelogCsvSink::new(path, header),
                    stats,
                    true,
                ))
                .name("write_changelog_csv")
                .set_parallelism(1);
        }
    }
}

/// Writes the rows of an append-only query to `io.output` as `io.mode` says: canonical
/// CSV, or a changelog of `+I` rows; dropped when there is no output file. The sink is
/// measured for `io.stats` ([`MeasuredSink`]).
pub fn write_rows<R: CsvRow + Data>(rows: &DataStream<R>, io: &Io, header: &[&str]) {
    let stats = Arc::clone(&io.stats);
    match (io.output.as_deref(), io.mode) {
        (Some(path), ResultMode::FinalResult) => {
            rows.sink(MeasuredSink::new(
                CanonicalCsvSink::new(path, header),
                stats,
                true,
            ))
            .name("write_csv")
            .set_parallelism(1);
        }
        (Some(_), ResultMode::Changelog) => {
            let changes = rows.map(Change::insert).name("as_inserts");
            write_changes(&changes, io, header);
        }
        (None, _) => {
            rows.sink(MeasuredSink::new(Blackhole, stats, true))
                .name("blackhole");
        }
    }
}

fn file_error(what: &str, path: &Path, error: std::io::Error) -> ConnectorError {
    ConnectorError::with_source(format!("{what} '{}'", path.display()), error)
}

fn needs_one_subtask(subtask: &SubtaskInfo) -> Result<(), ConnectorError> {
    if subtask.parallelism != 1 {
        return Err(ConnectorError::new(format!(
            "a Nexmark result file is written by one sink subtask, got parallelism {}",
            subtask.parallelism
        )));
    }
    Ok(())
}

fn header_line(header: &[String], with_op: bool) -> String {
    let mut line = CsvLine::new();
    if with_op {
        line.text("op");
    }
    for column in header {
        line.text(column);
    }
    line.into_string()
}

/// Materializes a changelog into its final rows and writes them in canonical form
/// (header, rows sorted as text) when the input ends. Keeps one count per distinct row
/// text in memory.
pub struct MaterializedCsvSink<R> {
    path: PathBuf,
    header: Vec<String>,
    file: Option<File>,
    live: HashMap<String, i64>,
    stats: Option<Arc<RunStats>>,
    _rows: PhantomData<fn(R)>,
}

impl<R> MaterializedCsvSink<R> {
    /// A sink writing to `path` (created when the job starts) with these column names.
    pub fn new(path: impl AsRef<Path>, header: &[&str]) -> Self {
        MaterializedCsvSink {
            path: path.as_ref().to_path_buf(),
            header: header.iter().map(|column| column.to_string()).collect(),
            file: None,
            live: HashMap::new(),
            stats: None,
            _rows: PhantomData,
        }
    }

    /// Adds the number of rows of the final result to `stats`' rows out when written.
    pub fn counting_into(mut self, stats: Arc<RunStats>) -> Self {
        self.stats = Some(stats);
        self
    }
}

impl<R> Clone for MaterializedCsvSink<R> {
    /// An unopened sink of the same file.
    fn clone(&self) -> Self {
        MaterializedCsvSink {
            path: self.path.clone(),
            header: self.header.clone(),
            file: None,
            live: HashMap::new(),
            stats: self.stats.clone(),
            _rows: PhantomData,
        }
    }
}

impl<R: CsvRow + Send + 'static> Sink<Change<R>> for MaterializedCsvSink<R> {
    fn open(&mut self, subtask: &SubtaskInfo) -> Result<(), ConnectorError> {
        needs_one_subtask(subtask)?;
        let file = File::create(&self.path)
            .map_err(|e| file_error("cannot create output file", &self.path, e))?;
        self.file = Some(file);
        Ok(())
    }

    fn write(&mut self, change: Change<R>) -> Result<(), ConnectorError> {
        let line = csv_line_of(&change.row);
        let delta = if change.kind.is_addition() { 1 } else { -1 };
        let count = self.live.entry(line).or_default();
        *count += delta;
        Ok(())
    }

    fn finish(&mut self) -> Result<(), ConnectorError> {
        let Some(file) = self.file.take() else {
            return Ok(());
        };
        let live = std::mem::take(&mut self.live);
        if let Some((line, count)) = live.iter().find(|(_, count)| **count < 0) {
            return Err(ConnectorError::new(format!(
                "the changelog retracted the row '{line}' {} more time(s) than it added it",
                -count
            )));
        }
        let mut lines: Vec<String> = Vec::new();
        for (line, count) in live {
            for _ in 0..count {
                lines.push(line.clone());
            }
        }
        lines.sort_unstable();
        if let Some(stats) = &self.stats {
            stats.add_rows_out(lines.len() as u64);
        }
        let mut writer = BufWriter::with_capacity(256 << 10, file);
        let written = (|| {
            writeln!(writer, "{}", header_line(&self.header, false))?;
            for line in &lines {
                writeln!(writer, "{line}")?;
            }
            writer.into_inner().map_err(|e| e.into_error())?.sync_all()
        })();
        written.map_err(|e| file_error("cannot write", &self.path, e))
    }
}

/// Writes a changelog as it arrives: a header `op,<columns>`, then one line per change.
pub struct ChangelogCsvSink<R> {
    path: PathBuf,
    header: Vec<String>,
    writer: Option<BufWriter<File>>,
    _rows: PhantomData<fn(R)>,
}

impl<R> ChangelogCsvSink<R> {
    /// A sink writing to `path` (created when the job starts) with these column names
    /// (`op` is added in front).
    pub fn new(path: impl AsRef<Path>, header: &[&str]) -> Self {
        ChangelogCsvSink {
            path: path.as_ref().to_path_buf(),
            header: header.iter().map(|column| column.to_string()).collect(),
            writer: None,
            _rows: PhantomData,
        }
    }
}

impl<R> Clone for ChangelogCsvSink<R> {
    /// An unopened sink of the same file.
    fn clone(&self) -> Self {
        ChangelogCsvSink {
            path: self.path.clone(),
            header: self.header.clone(),
            writer: None,
            _rows: PhantomData,
        }
    }
}

impl<R: CsvRow + Send + 'static> Sink<Change<R>> for ChangelogCsvSink<R> {
    fn open(&mut self, subtask: &SubtaskInfo) -> Result<(), ConnectorError> {
        needs_one_subtask(subtask)?;
        let file = File::create(&self.path)
            .map_err(|e| file_error("cannot create output file", &self.path, e))?;
        let mut writer = BufWriter::with_capacity(256 << 10, file);
        writeln!(writer, "{}", header_line(&self.header, true))
            .map_err(|e| file_error("cannot write", &self.path, e))?;
        self.writer = Some(writer);
        Ok(())
    }

    fn write(&mut self, change: Change<R>) -> Result<(), ConnectorError> {
        let Some(writer) = self.writer.as_mut() else {
            return Err(ConnectorError::new("the changelog sink was not opened"));
        };
        writeln!(writer, "{}", csv_line_of(&change))
            .map_err(|e| file_error("cannot write", &self.path, e))
    }

    fn finish(&mut self) -> Result<(), ConnectorError> {
        let Some(writer) = self.writer.take() else {
            return Ok(());
        };
        writer
            .into_inner()
            .map_err(|e| e.into_error())
            .and_then(|file| file.sync_all())
            .map_err(|e| file_error("cannot write", &self.path, e))
    }
}
