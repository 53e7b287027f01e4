//! [`NexmarkCsvSource`]: one Nexmark CSV file (`person.csv`, `auction.csv` or
//! `bid.csv`) as a bounded source of [`Person`](super::Person) /
//! [`Auction`](super::Auction) / [`Bid`](super::Bid) records.
//!
//! The file must start with the table's header line (the column names of
//! [`NexmarkTable::COLUMNS`], in that order); fields may be quoted (`"a, ""b"""`), lines
//! end with `\n` or `\r\n`, the last one may lack it, and blank lines are skipped. A row
//! that does not parse (wrong number of fields, a non-number, a bad timestamp, invalid
//! UTF-8) is handled by the source's [`BadRecordPolicy`] (`--on-bad-record`): by default
//! it fails the job with the file, the line number and the reason; `skip-and-count`
//! skips and counts it; `dead-letter` writes it (reason, file, line, byte, text) to a
//! [`DeadLetterFile`] and counts it. Nothing is dropped silently and nothing panics. A
//! missing or wrong header and a file that cannot be read fail the job whatever the
//! policy (they are not rows). Line numbers of bad rows are found by reading the file
//! again from the previous bad row on, so all bad rows of a file cost one extra read of
//! it at most.
//!
//! A CSV file is not split: subtask 0 reads the whole file and any other subtask ends at
//! once (as Flink's CSV format, which cannot split a file either). Run the source with
//! parallelism 1. Rows are read into one reused [`ByteRecord`]; the only allocations per
//! row are the record's own strings.
//!
//! **Position.** Between two polls every row read was emitted or handled as bad, so the
//! position of a checkpoint is where the next row starts (byte, line, row) and the
//! file's length then; a restore checks the header again, refuses a file now shorter
//! than the position (naming it), and seeks there. Only subtask 0 reads, so a restore
//! into any parallelism gives old subtask 0's position to new subtask 0.

use std::fs::File;
use std::marker::PhantomData;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use csv::ByteRecord;
use eddy_engine::clock::Clock;
use eddy_engine::prelude::*;
use serde::{Deserialize, Serialize};

use super::model::NexmarkTable;
use crate::files::{BadRecordPolicy, DeadLetter, DeadLetterFile};

const READ_BUFFER_BYTES: usize = 256 << 10;

/// What a Nexmark source reports in a measured run (`eddy nexmark run`): how many
/// records it emitted, and when each entered the source (stamped into the record's
/// [`IngestTime`](super::IngestTime), where the table has one), by the job's clock.
/// The counter is shared by every subtask of every source and added to once per poll,
/// not per record.
#[derive(Debug, Clone)]
pub struct SourceProbe {
    /// The job's clock ([`JobConfig::clock`]).
    pub clock: Arc<dyn Clock>,
    /// Records emitted so far by the sources holding this probe.
    pub emitted: Arc<AtomicU64>,
}

impl SourceProbe {
    /// Adds `records` to the emitted count.
    pub fn count(&self, records: usize) {
        if records > 0 {
            self.emitted.fetch_add(records as u64, Ordering::Relaxed);
        }
    }
}

/// Reads one Nexmark CSV file (bounded; see the module docs).
pub struct NexmarkCsvSource<T> {
    path: PathBuf,
    reader: Option<csv::Reader<File>>,
    row: ByteRecord,
    probe: Option<SourceProbe>,
    on_bad_record: BadRecordPolicy,
    /// Rows skipped or dead-lettered (shared with whoever reports them).
    bad_records: Arc<AtomicU64>,
    /// Where the last line-number search stopped: a byte and its line (searches for
    /// later rows start there). Atomics only to keep the source `Sync`; one thread
    /// uses them.
    line_cursor: (AtomicU64, AtomicU64),
    /// Where a restored subtask 0 starts (taken when it opens the file).
    resume: Option<CsvPosition>,
    /// Whether subtask 0 read the file to its end.
    finished: bool,
    _records: PhantomData<fn() -> T>,
}

/// How far subtask 0 read its file (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct CsvPosition {
    /// Where the next row starts: byte offset, 1-based line, 0-based row (header
    /// included).
    byte: u64,
    line: u64,
    row: u64,
    /// The file's length when the position was taken.
    file_len: u64,
    /// The whole file was read.
    finished: bool,
}

/// A clone is an unopened source of the same file (each subtask opens its own).
impl<T> Clone for NexmarkCsvSource<T> {
    fn clone(&self) -> Self {
        NexmarkCsvSource {
            path: self.path.clone(),
            reader: None,
            row: ByteRecord::new(),
            probe: self.probe.clone(),
            on_bad_record: self.on_bad_record.clone(),
            bad_records: Arc::clone(&self.bad_records),
            line_cursor: (AtomicU64::new(0), AtomicU64::new(1)),
            resume: self.resume,
            finished: false,
            _records: PhantomData,
        }
    }
}

impl<T> std::fmt::Debug for NexmarkCsvSource<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NexmarkCsvSource")
            .field("path", &self.path)
            .field("open", &self.reader.is_some())
            .finish()
    }
}

impl<T: NexmarkTable> NexmarkCsvSource<T> {
    /// A source for the file at `path` (opened when the job starts).
    pub fn new(path: impl AsRef<Path>) -> Self {
        NexmarkCsvSource {
            path: path.as_ref().to_path_buf(),
            reader: None,
            row: ByteRecord::new(),
            probe: None,
            on_bad_record: BadRecordPolicy::Fail,
            bad_records: Arc::new(AtomicU64::new(0)),
            line_cursor: (AtomicU64::new(0), AtomicU64::new(1)),
            resume: None,
            finished: false,
            _records: PhantomData,
        }
    }

    /// Handles rows that do not parse by `policy` (default [`BadRecordPolicy::Fail`]),
    /// counting the rows skipped or dead-lettered in `counter` (once per bad row).
    pub fn on_bad_record(mut self, policy: BadRecordPolicy, counter: Arc<AtomicU64>) -> Self {
        self.on_bad_record = policy;
        self.bad_records = counter;
        self
    }

    /// Rows skipped or dead-lettered so far (by every source sharing the counter).
    pub fn bad_records(&self) -> u64 {
        self.bad_records.load(Ordering::Relaxed)
    }

    /// Counts the records read into `probe` and stamps each with the instant it was
    /// parsed (one clock read per row: parsing a row costs far more).
    pub fn with_probe(mut self, probe: SourceProbe) -> Self {
        self.probe = Some(probe);
        self
    }

    /// A source for `T`'s file (`bid.csv`, ...) in the folder `dir`.
    pub fn in_dir(dir: impl AsRef<Path>) -> Self {
        NexmarkCsvSource::new(dir.as_ref().join(T::FILE_NAME))
    }

    /// `'<path>' line <n>: <reason>`, `n` being the line of the row that starts at or
    /// after byte `start_byte` (see [`NexmarkCsvSource::line_of`]).
    fn row_error(&self, start_byte: u64, reason: impl std::fmt::Display) -> ConnectorError {
        ConnectorError::new(format!(
            "'{}' line {}: {reason}",
            self.path.display(),
            self.line_of(start_byte)
        ))
    }

    /// The 1-based line number of the row whose reading began at `start_byte`. Only
    /// errors need it, so it is found by reading the file again: the csv crate's own line
    /// count points at the skipped line ends before a row (the `\n` of a `\r\n`, blank
    /// lines), so count the `\n` before `start_byte`, then skip line ends.
    ///
    /// The search starts where the previous one stopped when that is before
    /// `start_byte` (rows come in file order), so the bad rows of a file cost one read.
    fn line_of(&self, start_byte: u64) -> u64 {
        let Ok(mut file) = File::open(&self.path) else {
            return 0;
        };
        let cursor = (
            self.line_cursor.0.load(Ordering::Relaxed),
            self.line_cursor.1.load(Ordering::Relaxed),
        );
        let (mut position, mut line) = match cursor {
            (byte, line) if byte <= start_byte => (byte, line),
            _ => (0, 1),
        };
        if std::io::Seek::seek(&mut file, std::io::SeekFrom::Start(position)).is_err() {
            (position, line) = (0, 1);
        }
        let mut reader = std::io::BufReader::new(file);
        loop {
            let Ok(buffer) = std::io::BufRead::fill_buf(&mut reader) else {
                return line;
            };
            if buffer.is_empty() {
                return line;
            }
            let mut used = 0;
            for &byte in buffer {
                if position >= start_byte && byte != b'\n' && byte != b'\r' {
                    self.line_cursor.0.store(position, Ordering::Relaxed);
                    self.line_cursor.1.store(line, Ordering::Relaxed);
                    return line;
                }
                if byte == b'\n' {
                    line += 1;
                }
                position += 1;
                used += 1;
            }
            std::io::BufRead::consume(&mut reader, used);
        }
    }

    /// Reads the next row into `self.row`; `false` at the end of the file.
    fn read_row(&mut self) -> Result<bool, ConnectorError> {
        let Some(reader) = self.reader.as_mut() else {
            return Ok(false);
        };
        let start_byte = reader.position().byte();
        match reader.read_byte_record(&mut self.row) {
            Ok(more) => Ok(more),
            Err(error) => {
                let start_byte = error.position().map_or(start_byte, |p| p.byte());
                Err(self.row_error(start_byte, format!("cannot read: {error}")))
            }
        }
    }

    /// Where reading of the current row began.
    fn row_start(&self) -> u64 {
        self.row.position().map_or(0, |position| position.byte())
    }

    fn check_header(&mut self) -> Result<(), ConnectorError> {
        if !self.read_row()? {
            return Err(self.row_error(
                0,
                format!("empty file, expected the header '{}'", T::COLUMNS.join(",")),
            ));
        }
        let matches = self.row.len() == T::COLUMNS.len()
            && self
                .row
                .iter()
                .zip(T::COLUMNS)
                .enumerate()
                .all(|(index, (field, column))| {
                    let field = if index == 0 {
                        field.strip_prefix("\u{feff}".as_bytes()).unwrap_or(field)
                    } else {
                        field
                    };
                    field.trim_ascii() == column.as_bytes()
                });
        if matches {
            Ok(())
        } else {
            let found = String::from_utf8_lossy(self.row.as_slice()).into_owned();
            Err(self.row_error(
                self.row_start(),
                format!(
                    "expected the {} header '{}', found {} fields '{found}'",
                    T::TABLE,
                    T::COLUMNS.join(","),
                    self.row.len()
                ),
            ))
        }
    }
}

impl<T: NexmarkTable> Source<T> for NexmarkCsvSource<T> {
    fn open(&mut self, subtask: &SubtaskInfo) -> Result<(), ConnectorError> {
        if subtask.index != 0 {
            return Ok(());
        }
        let file = File::open(&self.path).map_err(|error| {
            ConnectorError::with_source(
                format!("cannot open input file '{}'", self.path.display()),
                error,
            )
        })?;
        let file_len = file.metadata().map(|m| m.len()).map_err(|error| {
            ConnectorError::with_source(
                format!("cannot read input file '{}'", self.path.display()),
                error,
            )
        })?;
        self.reader = Some(
            csv::ReaderBuilder::new()
                .has_headers(false)
                .flexible(true)
                .buffer_capacity(READ_BUFFER_BYTES)
                .from_reader(file),
        );
        self.check_header()?;
        let Some(resume) = self.resume.take() else {
            return Ok(());
        };
        if file_len < resume.file_len || file_len < resume.byte {
            return Err(ConnectorError::new(format!(
                "cannot restore: input file '{}' has {file_len} bytes, the checkpoint read \
                 {} of its {} (the file changed)",
                self.path.display(),
                resume.byte,
                resume.file_len
            )));
        }
        if resume.finished {
            self.reader = None;
            self.finished = true;
            return Ok(());
        }
        let mut at = csv::Position::new();
        at.set_byte(resume.byte)
            .set_line(resume.line)
            .set_record(resume.row);
        if let Some(reader) = self.reader.as_mut() {
            reader.seek(at).map_err(|error| {
                ConnectorError::with_source(
                    format!(
                        "cannot restore: cannot seek input file '{}' to byte {}",
                        self.path.display(),
                        resume.byte
                    ),
                    error,
                )
            })?;
        }
        Ok(())
    }

    fn poll_next(&mut self, out: &mut SourceOutput<'_, T>) -> Result<SourceStatus, ConnectorError> {
        let mut emitted = 0;
        let status = self.read_rows(out, &mut emitted);
        if let Some(probe) = &self.probe {
            probe.count(emitted);
        }
        status
    }

    fn close(&mut self) -> Result<(), ConnectorError> {
        self.reader = None;
        Ok(())
    }

    fn snapshot_position(&mut self) -> Result<Option<Vec<u8>>, ConnectorError> {
        let file_len = || {
            std::fs::metadata(&self.path)
                .map(|m| m.len())
                .map_err(|error| {
                    ConnectorError::with_source(
                        format!("cannot read input file '{}'", self.path.display()),
                        error,
                    )
                })
        };
        let position = match &self.reader {
            Some(reader) => {
                let at = reader.position();
                Some(CsvPosition {
                    byte: at.byte(),
                    line: at.line(),
                    row: at.record(),
                    file_len: file_len()?,
                    finished: false,
                })
            }
            None if self.finished => Some(CsvPosition {
                byte: 0,
                line: 1,
                row: 0,
                file_len: file_len()?,
                finished: true,
            }),
            // Not subtask 0, or not opened yet: a restored position still to be taken
            // up, else nothing read.
            None => self.resume,
        };
        match position {
            Some(position) => eddy_engine::checkpoint::encode(&position).map(Some),
            None => Ok(Some(Vec::new())),
        }
    }

    fn restore_position(
        &mut self,
        subtask: &SubtaskInfo,
        positions: &[(u32, &[u8])],
        _old_parallelism: u32,
    ) -> Result<(), ConnectorError> {
        if subtask.index != 0 {
            return Ok(());
        }
        // Old subtask 0 read the file; the others hold empty positions.
        self.resume = match positions.iter().find(|(old, _)| *old == 0) {
            Some((_, bytes)) if !bytes.is_empty() => {
                Some(eddy_engine::checkpoint::decode(bytes).map_err(|error| {
                    ConnectorError::new(format!(
                        "cannot restore the position of input file '{}': {error}",
                        self.path.display()
                    ))
                })?)
            }
            _ => None,
        };
        Ok(())
    }
}

impl<T: NexmarkTable> NexmarkCsvSource<T> {
    /// Emits up to `out.remaining()` rows, counting them in `emitted`.
    fn read_rows(
        &mut self,
        out: &mut SourceOutput<'_, T>,
        emitted: &mut usize,
    ) -> Result<SourceStatus, ConnectorError> {
        while out.remaining() > 0 {
            if !self.read_row()? {
                self.reader = None;
                self.finished = true;
                return Ok(SourceStatus::Finished);
            }
            if self.row.len() != T::COLUMNS.len() {
                let reason = format!(
                    "expected {} fields ({}), found {}",
                    T::COLUMNS.len(),
                    T::COLUMNS.join(","),
                    self.row.len()
                );
                self.bad_row(reason)?;
                continue;
            }
            match T::from_row(&self.row) {
                Ok(mut record) => {
                    if let Some(probe) = &self.probe {
                        record.set_ingest(probe.clock.now());
                    }
                    out.emit(record);
                    *emitted += 1;
                }
                Err(reason) => self.bad_row(reason)?,
            }
        }
        Ok(SourceStatus::Ready)
    }

    /// Handles the current row, which did not parse for `reason`, by the policy: an
    /// error (fail), or counted and skipped or dead-lettered.
    fn bad_row(&mut self, reason: impl std::fmt::Display) -> Result<(), ConnectorError> {
        let start = self.row_start();
        match &self.on_bad_record {
            BadRecordPolicy::Fail => return Err(self.row_error(start, reason)),
            BadRecordPolicy::SkipAndCount => {}
            BadRecordPolicy::DeadLetter(file) => {
                let letter = self.dead_letter(start, reason.to_string());
                write_dead_letter(file, &letter)?;
            }
        }
        self.bad_records.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// The dead letter of the current row: its fields joined by commas (unquoted;
    /// invalid UTF-8 replaced).
    fn dead_letter(&self, start_byte: u64, reason: String) -> DeadLetter {
        let fields: Vec<std::borrow::Cow<'_, str>> =
            self.row.iter().map(String::from_utf8_lossy).collect();
        DeadLetter {
            reason,
            file: self.path.clone(),
            line: self.line_of(start_byte),
            byte: start_byte,
            raw: Some(fields.join(",")),
        }
    }
}

fn write_dead_letter(file: &DeadLetterFile, letter: &DeadLetter) -> Result<(), ConnectorError> {
    file.write(letter)
        .map_err(|e| ConnectorError::with_source("cannot write a dead letter", e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nexmark::{Auction, Bid, Person};
    use std::io::Write;

    const BID_HEADER: &str = "auction,bidder,price,channel,url,date_time,extra";

    fn read<T: NexmarkTable>(text: &[u8], subtask: usize) -> Result<Vec<T>, String> {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        file.write_all(text).unwrap();
        let mut source = NexmarkCsvSource::<T>::new(file.path());
        let info = SubtaskInfo {
            job: "t".into(),
            operator: "src".into(),
            index: subtask,
            parallelism: 2,
        };
        source.open(&info).map_err(|e| e.to_string())?;
        let mut records = Vec::new();
        let mut batch = Batch::new();
        loop {
            let mut out = SourceOutput::new(&mut batch, 3);
            let status = source.poll_next(&mut out).map_err(|e| e.to_string())?;
            records.extend(batch.drain_values());
            if status == SourceStatus::Finished {
                return Ok(records);
            }
        }
    }

    #[test]
    fn quoted_fields_crlf_and_no_final_newline() {
        let text = format!(
            "{BID_HEADER}\r\n1,2,3,\"a, \"\"b\"\"\",u,2015-07-15 00:00:01.002,x\r\n\n\
             4,5,6,c,\"u\nv\",2015-07-15 00:00:01.003,"
        );
        let bids = read::<Bid>(text.as_bytes(), 0).unwrap();
        assert_eq!(bids.len(), 2);
        assert_eq!(bids[0].channel, "a, \"b\"");
        assert_eq!(bids[0].date_time, 1_436_918_401_002);
        assert_eq!(bids[1].url, "u\nv");
        assert_eq!(bids[1].extra, "");
        assert_eq!(read::<Bid>(text.as_bytes(), 1).unwrap(), Vec::new());
    }

    #[test]
    fn persons_and_auctions() {
        let person = "id,name,email_address,credit_card,city,state,date_time,extra\n\
                      1000,Peter Jones,p@x,1234,Boise,ID,2015-07-15 00:00:00.000,e\n";
        let persons = read::<Person>(person.as_bytes(), 0).unwrap();
        assert_eq!(persons[0].id, 1000);
        assert_eq!(persons[0].state, "ID");
        let auction = "id,item_name,description,initial_bid,reserve,date_time,expires,seller,category,extra\n\
                       1000,i,d,10,20,2015-07-15 00:00:00.000,2015-07-15 00:00:05.500,1001,10,e\n";
        let auctions = read::<Auction>(auction.as_bytes(), 0).unwrap();
        assert_eq!(auctions[0].expires - auctions[0].date_time, 5_500);
        assert_eq!(auctions[0].seller, 1001);
    }

    #[test]
    fn bad_rows_name_the_line_and_the_reason() {
        let cases: &[(&str, &str)] = &[
            (
                "1,2,3,c,u,2015-07-15 00:00:01.000,x\n1,2,3,c,u,x\n",
                "line 3: expected 7 fields",
            ),
            (
                "1,2,3,c,u,2015-07-15 00:00:01.000,x\n\n1,2,z,c,u,2015-07-15 00:00:01.000,x\n",
                "line 4: column price: 'z' is not an integer",
            ),
            (
                "1,2,3,c,u,2015-07-15 25:00:01.000,x\n",
                "line 2: column date_time: '2015-07-15 25:00:01.000' is not a timestamp",
            ),
            (
                "\r\n1,2,3,c,u,2015-07-15 00:00:01.000,x\r\n1,2,3,c\r\n",
                "line 4: expected 7 fields",
            ),
            (
                "1,2,3,c,\"u\n\nv\",2015-07-15 00:00:01.000,x\n1,2,3,c,u,2015-07-15 00:00:01.000\n",
                "line 5: expected 7 fields",
            ),
        ];
        for (rows, expected) in cases {
            let text = format!("{BID_HEADER}\n{rows}");
            let error = read::<Bid>(text.as_bytes(), 0).unwrap_err();
            assert!(error.contains(expected), "{rows:?}: {error}");
            assert!(error.contains("'/"), "names the file: {error}");
        }
        let error = read::<Bid>(b"\xff\xfe,2,3,c,u,2015-07-15 00:00:01.000,x\n", 0).unwrap_err();
        assert!(error.contains("line 1: expected the bid header"), "{error}");
        let mut bytes = format!("{BID_HEADER}\n").into_bytes();
        bytes.extend_from_slice(b"1,2,3,c,\xff,2015-07-15 00:00:01.000,x\n");
        let error = read::<Bid>(&bytes, 0).unwrap_err();
        assert!(
            error.contains("line 2: column url: not valid UTF-8"),
            "{error}"
        );
        let error = read::<Bid>(b"", 0).unwrap_err();
        assert!(error.contains("line 1: empty file"), "{error}");
    }

    #[test]
    fn bad_rows_are_skipped_and_counted_or_dead_lettered_with_their_line() {
        let text = format!(
            "{BID_HEADER}\n\
             1,2,3,c,u,2015-07-15 00:00:01.000,x\n\
             1,2,3,c,u,x\n\
             \n\
             1,2,z,c,u,2015-07-15 00:00:01.000,x\n\
             4,5,6,c,u,2015-07-15 00:00:01.001,y\n\
             1,2,3,c,u,2015-07-15 25:00:01.000,x\n\
             7,8,9,c,\"u\n\nv\",2015-07-15 00:00:01.002,z\n\
             1,2,3,c\n\
             10,11,12,c,u,2015-07-15 00:00:01.003,w"
        );
        let mut file = tempfile::NamedTempFile::new().unwrap();
        file.write_all(text.as_bytes()).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let letters_path = dir.path().join("dead.jsonl");
        let letters = DeadLetterFile::create(&letters_path).unwrap();
        for policy in [
            BadRecordPolicy::SkipAndCount,
            BadRecordPolicy::DeadLetter(letters),
        ] {
            let counter = Arc::new(AtomicU64::new(0));
            let mut source = NexmarkCsvSource::<Bid>::new(file.path())
                .on_bad_record(policy, Arc::clone(&counter));
            let info = SubtaskInfo {
                job: "t".into(),
                operator: "src".into(),
                index: 0,
                parallelism: 1,
            };
            source.open(&info).unwrap();
            let mut bids = Vec::new();
            let mut batch = Batch::new();
            loop {
                let mut out = SourceOutput::new(&mut batch, 2);
                let status = source.poll_next(&mut out).unwrap();
                bids.extend(batch.drain_values());
                if status == SourceStatus::Finished {
                    break;
                }
            }
            let prices: Vec<i64> = bids.iter().map(|bid| bid.price).collect();
            assert_eq!(prices, vec![3, 6, 9, 12]);
            assert_eq!(counter.load(Ordering::Relaxed), 4);
            assert_eq!(source.bad_records(), 4);
        }
        let written = std::fs::read_to_string(&letters_path).unwrap();
        let letters: Vec<serde_json::Value> = written
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect();
        let lines: Vec<u64> = letters
            .iter()
            .map(|l| l["line"].as_u64().unwrap())
            .collect();
        assert_eq!(lines, vec![3, 5, 7, 11]);
        assert!(letters[1]["reason"]
            .as_str()
            .unwrap()
            .contains("column price: 'z' is not an integer"));
        assert_eq!(letters[3]["raw"], "1,2,3,c");
        assert_eq!(letters[0]["file"], file.path().to_str().unwrap());
    }

    fn info(index: usize, parallelism: usize) -> SubtaskInfo {
        SubtaskInfo {
            job: "t".into(),
            operator: "src".into(),
            index,
            parallelism,
        }
    }

    /// Polls `source` (already opened) `polls` times at most; returns the bids.
    fn poll_bids(source: &mut NexmarkCsvSource<Bid>, polls: usize) -> (Vec<i64>, bool) {
        let mut prices = Vec::new();
        let mut batch = Batch::new();
        for _ in 0..polls {
            let mut out = SourceOutput::new(&mut batch, 2);
            let status = source.poll_next(&mut out).unwrap();
            prices.extend(batch.drain_values().map(|bid| bid.price));
            if status == SourceStatus::Finished {
                return (prices, true);
            }
        }
        (prices, false)
    }

    #[test]
    fn a_restored_source_emits_exactly_the_rows_after_its_position() {
        // quoted newlines, CRLF, blank lines and bad rows (skipped) on the way
        let text = format!(
            "{BID_HEADER}\r\n\
             1,2,1,c,u,2015-07-15 00:00:01.000,x\r\n\
             1,2,2,c,\"u\n\nv\",2015-07-15 00:00:01.000,x\r\n\
             \r\n\
             1,2,z,c,u,2015-07-15 00:00:01.000,x\n\
             1,2,3,c,u,2015-07-15 00:00:01.000,x\n\
             1,2,4,c,u,2015-07-15 00:00:01.000,x\n\
             1,2,5,c,u,2015-07-15 00:00:01.000,x\n\
             1,2,6,c,u,2015-07-15 00:00:01.000,x"
        );
        let mut file = tempfile::NamedTempFile::new().unwrap();
        file.write_all(text.as_bytes()).unwrap();
        let fresh = || {
            NexmarkCsvSource::<Bid>::new(file.path())
                .on_bad_record(BadRecordPolicy::SkipAndCount, Arc::new(AtomicU64::new(0)))
        };
        // The reference: one uninterrupted read.
        let mut whole = fresh();
        whole.open(&info(0, 1)).unwrap();
        let (all, done) = poll_bids(&mut whole, 100);
        assert!(done);
        assert_eq!(all, vec![1, 2, 3, 4, 5, 6]);
        // Stop after every number of polls; restore (also into parallelism 3, and
        // twice in a row before the file is opened); the two parts make the whole.
        for polls in 0..=4 {
            let mut first = fresh();
            first.open(&info(0, 1)).unwrap();
            let (head, _) = poll_bids(&mut first, polls);
            let position = first.snapshot_position().unwrap().unwrap();
            let mut again = fresh();
            again
                .restore_position(&info(0, 3), &[(0, &position)], 1)
                .unwrap();
            // A checkpoint right after the restore, before the file is open, keeps it.
            let kept = again.snapshot_position().unwrap().unwrap();
            assert_eq!(kept, position);
            again.open(&info(0, 3)).unwrap();
            let (tail, done) = poll_bids(&mut again, 100);
            assert!(done);
            let mut joined = head.clone();
            joined.extend(&tail);
            assert_eq!(
                joined, all,
                "stopped after {polls} polls: {head:?} + {tail:?}"
            );
            // The other subtasks read nothing, restored or not.
            let mut other = fresh();
            other
                .restore_position(&info(1, 3), &[(0, &position)], 1)
                .unwrap();
            other.open(&info(1, 3)).unwrap();
            assert_eq!(poll_bids(&mut other, 10), (Vec::new(), true));
        }
        // Restored after the end: nothing more.
        let position = whole.snapshot_position().unwrap().unwrap();
        let mut after = fresh();
        after
            .restore_position(&info(0, 1), &[(0, &position)], 1)
            .unwrap();
        after.open(&info(0, 1)).unwrap();
        assert_eq!(poll_bids(&mut after, 10), (Vec::new(), true));
    }

    #[test]
    fn a_restore_into_a_shorter_file_is_refused_naming_it() {
        let text = format!(
            "{BID_HEADER}\n1,2,1,c,u,2015-07-15 00:00:01.000,x\n1,2,2,c,u,2015-07-15 00:00:01.000,x\n"
        );
        let mut file = tempfile::NamedTempFile::new().unwrap();
        file.write_all(text.as_bytes()).unwrap();
        let mut first = NexmarkCsvSource::<Bid>::new(file.path());
        first.open(&info(0, 1)).unwrap();
        poll_bids(&mut first, 1);
        let position = first.snapshot_position().unwrap().unwrap();
        file.as_file().set_len(text.len() as u64 - 10).unwrap();
        let mut again = NexmarkCsvSource::<Bid>::new(file.path());
        again
            .restore_position(&info(0, 1), &[(0, &position)], 1)
            .unwrap();
        let error = again.open(&info(0, 1)).unwrap_err().to_string();
        assert!(error.contains(file.path().to_str().unwrap()), "{error}");
        assert!(error.contains("the file changed"), "{error}");
    }

    #[test]
    fn a_missing_file_is_named() {
        let mut source = NexmarkCsvSource::<Bid>::in_dir("/nonexistent/nexmark");
        let info = SubtaskInfo {
            job: "t".into(),
            operator: "src".into(),
            index: 0,
            parallelism: 1,
        };
        let error = source.open(&info).unwrap_err().to_string();
        assert!(error.contains("/nonexistent/nexmark/bid.csv"), "{error}");
    }
}
