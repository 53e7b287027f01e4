//! Spill files: [`SpillWriter`] appends records, [`SpillFile`] is a finished file that is
//! deleted when dropped, [`SpillReader`] validates one and reads its records back
//! through a bounded buffer ([`SpillRecords`]).
//!
//! ```text
//! header  (16 bytes)  magic "EDDYSPIL" | format version u32 | reserved u32 (0)
//! records             (length u32 | bytes)*                 little endian
//! trailer (32 bytes)  magic "EDDYSEND" | record count u64 | records length u64
//!                     | crc32c of the records u32 | crc32c of trailer bytes 0..28 u32
//! ```
//!
//! A writer that dies leaves a file without a valid trailer, which the reader rejects as
//! truncated. The reader validates the whole file when it opens it (lengths, both
//! checksums, and a walk over every record length); reading the records afterwards
//! checks lengths and the checksum again, so a file damaged after it was opened is an
//! error too (never other records).
//!
//! Why positioned reads into a bounded buffer and not a memory map: the pages of a
//! mapping count towards the process's resident set until they are unmapped or
//! `madvise`d away, which a merge over tens of runs did not do precisely enough (a
//! 2 GB batch word count peaked at 463–714 MB with maps, see docs/benchmarks.md), and a
//! mapped file that is truncated raises SIGBUS instead of an error. A read costs one
//! copy from the page cache, which the merge's comparisons dwarf.
//!
//! Spill files are not fsynced: they only matter while the process that wrote them runs
//! (after a crash they are swept, see [`sweep_stale`](crate::spill::sweep_stale)), and
//! the page cache keeps them coherent between writer and reader.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{Result, StorageError};
use crate::fsutil::missing_dir_or;
use crate::spill::naming::{spill_file_name, SpillOwner};

/// The spill file format version this build writes and reads.
pub const SPILL_FORMAT_VERSION: u32 = 1;

/// Largest record a spill file holds (the length prefix is a u32).
pub const RECORD_LEN_MAX_BYTES: u64 = u32::MAX as u64;

const HEADER_MAGIC: [u8; 8] = *b"EDDYSPIL";
const TRAILER_MAGIC: [u8; 8] = *b"EDDYSEND";
const HEADER_LEN_BYTES: usize = 16;
const TRAILER_LEN_BYTES: usize = 32;
const LEN_PREFIX_BYTES: usize = 4;
/// Size of the write buffer in front of the file.
const WRITE_BUFFER_BYTES: usize = 256 * 1024;

/// Sequence numbers that make spill file names unique within the process; across
/// processes, `create_new` and a retry with the next number keep them unique.
static NEXT_SEQUENCE: AtomicU64 = AtomicU64::new(0);

/// Deletes a spill file when dropped, unless disarmed.
#[derive(Debug)]
struct DeleteOnDrop {
    path: PathBuf,
    armed: bool,
}

impl Drop for DeleteOnDrop {
    fn drop(&mut self) {
        if self.armed {
            // Nothing useful can be done about a failure here: the file is at worst left
            // for `sweep_stale`.
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// Appends records to a new spill file.
///
/// Dropping a writer without [`finish`](Self::finish) deletes its file. Write errors
/// name the folder when the disk is full ([`StorageError::DiskFull`]).
#[derive(Debug)]
pub struct SpillWriter {
    out: BufWriter<File>,
    file: DeleteOnDrop,
    dir: PathBuf,
    records_crc32c: u32,
    records_len_bytes: u64,
    record_count: u64,
}

impl SpillWriter {
    /// Creates a new spill file in `spill_dir` (which must exist), named after `owner`:
    /// `eddy-spill-<job>-<operator>-<subtask>-<sequence>.run`.
    pub fn create(spill_dir: &Path, owner: &SpillOwner) -> Result<SpillWriter> {
        const ATTEMPTS_MAX: u32 = 1_000;
        let mut last_error = None;
        for _ in 0..ATTEMPTS_MAX {
            let sequence = NEXT_SEQUENCE.fetch_add(1, Ordering::Relaxed);
            let path = spill_dir.join(spill_file_name(owner, sequence));
            match OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(file) => return SpillWriter::from_file(file, path, spill_dir),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => last_error = Some((path, e)),
                Err(e) => return Err(missing_dir_or(spill_dir, "create", &path, e)),
            }
        }
        let (path, error) = last_error.unwrap_or_else(|| {
            (
                spill_dir.to_path_buf(),
                io::Error::from(io::ErrorKind::AlreadyExists),
            )
        });
        Err(StorageError::io(
            "create a free spill file name like",
            &path,
            spill_dir,
            error,
        ))
    }

    /// Wraps an open file (the test hook for write failures such as `/dev/full`).
    fn from_file(file: File, path: PathBuf, dir: &Path) -> Result<SpillWriter> {
        let mut writer = SpillWriter {
            out: BufWriter::with_capacity(WRITE_BUFFER_BYTES, file),
            file: DeleteOnDrop { path, armed: true },
            dir: dir.to_path_buf(),
            records_crc32c: 0,
            records_len_bytes: 0,
            record_count: 0,
        };
        let mut header = [0u8; HEADER_LEN_BYTES];
        header[0..8].copy_from_slice(&HEADER_MAGIC);
        header[8..12].copy_from_slice(&SPILL_FORMAT_VERSION.to_le_bytes());
        writer.write_raw(&header)?;
        Ok(writer)
    }

    /// The file being written.
    pub fn path(&self) -> &Path {
        &self.file.path
    }

    /// Records appended so far.
    pub fn record_count(&self) -> u64 {
        self.record_count
    }

    /// Appends one record.
    pub fn append(&mut self, record: &[u8]) -> Result<()> {
        self.append_parts(&[record])
    }

    /// Appends one record made of the concatenation of `parts` (saves the caller a copy
    /// when a record is built from pieces, such as a length, a key and a value).
    pub fn append_parts(&mut self, parts: &[&[u8]]) -> Result<()> {
        let len_bytes: u64 = parts.iter().map(|part| part.len() as u64).sum();
        let prefix = u32::try_from(len_bytes)
            .map_err(|_| StorageError::RecordTooLarge {
                len_bytes,
                limit_bytes: RECORD_LEN_MAX_BYTES,
            })?
            .to_le_bytes();
        self.write_record_bytes(&prefix)?;
        for part in parts {
            self.write_record_bytes(part)?;
        }
        self.record_count += 1;
        Ok(())
    }

    /// Writes the trailer and flushes. The returned [`SpillFile`] deletes the file when
    /// dropped.
    pub fn finish(mut self) -> Result<SpillFile> {
        let mut trailer = [0u8; TRAILER_LEN_BYTES];
        trailer[0..8].copy_from_slice(&TRAILER_MAGIC);
        trailer[8..16].copy_from_slice(&self.record_count.to_le_bytes());
        trailer[16..24].copy_from_slice(&self.records_len_bytes.to_le_bytes());
        trailer[24..28].copy_from_slice(&self.records_crc32c.to_le_bytes());
        let trailer_crc = crc32c::crc32c(&trailer[0..28]);
        trailer[28..32].copy_from_slice(&trailer_crc.to_le_bytes());
        self.write_raw(&trailer)?;
        let path = self.file.path.clone();
        self.out
            .flush()
            .map_err(|e| StorageError::io("write", &path, &self.dir, e))?;
        let len_bytes = (HEADER_LEN_BYTES + TRAILER_LEN_BYTES) as u64 + self.records_len_bytes;
        let record_count = self.record_count;
        // Hand the deletion duty over to the finished file.
        self.file.armed = false;
        Ok(SpillFile {
            file: DeleteOnDrop { path, armed: true },
            record_count,
            len_bytes,
        })
    }

    fn write_record_bytes(&mut self, bytes: &[u8]) -> Result<()> {
        self.write_raw(bytes)?;
        self.records_crc32c = crc32c::crc32c_append(self.records_crc32c, bytes);
        self.records_len_bytes += bytes.len() as u64;
        Ok(())
    }

    fn write_raw(&mut self, bytes: &[u8]) -> Result<()> {
        self.out
            .write_all(bytes)
            .map_err(|e| StorageError::io("write", &self.file.path, &self.dir, e))
    }
}

/// A finished spill file. Deleted when dropped (or when the [`SpillReader`] made from it
/// is dropped), unless [`keep`](Self::keep) is called.
#[derive(Debug)]
pub struct SpillFile {
    file: DeleteOnDrop,
    record_count: u64,
    len_bytes: u64,
}

impl SpillFile {
    /// The file.
    pub fn path(&self) -> &Path {
        &self.file.path
    }

    /// Number of records in the file.
    pub fn record_count(&self) -> u64 {
        self.record_count
    }

    /// Size of the file in bytes.
    pub fn len_bytes(&self) -> u64 {
        self.len_bytes
    }

    /// Opens and validates the file. The reader takes over the duty to delete it.
    pub fn open(mut self) -> Result<SpillReader> {
        let mut reader = SpillReader::open(&self.file.path)?;
        self.file.armed = false;
        reader.delete_on_drop = Some(DeleteOnDrop {
            path: self.file.path.clone(),
            armed: true,
        });
        Ok(reader)
    }

    /// Keeps the file on disk past this value's life; returns its path. The caller becomes
    /// responsible for deleting it.
    pub fn keep(mut self) -> PathBuf {
        self.file.armed = false;
        self.file.path.clone()
    }
}

/// A validated spill file, read through bounded buffers.
///
/// Invariant: the header, trailer, both checksums and every record length were checked
/// when the file was opened. [`records`](Self::records) reads the file again through a
/// buffer of [`READ_BUFFER_BYTES`] (more only for a larger record) with positioned reads
/// (`pread`), checking each length and the records checksum once more as it goes, so a
/// file damaged or cut short *after* it was opened is still an error naming it, never
/// other records and never a signal (a memory map would raise SIGBUS on truncation).
#[derive(Debug)]
pub struct SpillReader {
    file: File,
    path: PathBuf,
    record_count: u64,
    records_len_bytes: u64,
    records_crc32c: u32,
    delete_on_drop: Option<DeleteOnDrop>,
}

/// Size of the buffer through which [`SpillRecords`] reads a spill file (and through
/// which [`SpillReader::open`] validates it).
pub const READ_BUFFER_BYTES: usize = 256 * 1024;

impl SpillReader {
    /// Opens and validates the spill file at `path` (one sequential read through a
    /// [`READ_BUFFER_BYTES`] buffer). The file is not deleted when the reader is dropped
    /// (see [`SpillFile::open`] for a reader that deletes its file).
    ///
    /// Errors: [`StorageError::Truncated`] for a short file or one whose writer did not
    /// finish, [`StorageError::Corrupt`] for damaged content,
    /// [`StorageError::UnsupportedVersion`] for another format version; all name the file.
    pub fn open(path: &Path) -> Result<SpillReader> {
        let dir = path.parent().unwrap_or(path);
        let file = OpenOptions::new()
            .read(true)
            .open(path)
            .map_err(|e| missing_file_or(path, dir, "open", e))?;
        let len = file
            .metadata()
            .map_err(|e| StorageError::io("stat", path, dir, e))?
            .len();
        let trailer = validate_frame(path, &file, len)?;
        validate_records(path, &file, &trailer)?;
        Ok(SpillReader {
            file,
            path: path.to_path_buf(),
            record_count: trailer.record_count,
            records_len_bytes: trailer.records_len_bytes,
            records_crc32c: trailer.records_crc32c,
            delete_on_drop: None,
        })
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Number of records in the file.
    pub fn record_count(&self) -> u64 {
        self.record_count
    }

    /// A cursor over the records, in the order they were appended. Each cursor has its
    /// own [`READ_BUFFER_BYTES`] buffer; several may read the same file at once.
    pub fn records(&self) -> SpillRecords<'_> {
        SpillRecords {
            reader: self,
            buffer: Vec::new(),
            start: 0,
            end: 0,
            current: 0..0,
            read_offset: 0,
            remaining: self.record_count,
            crc32c: 0,
        }
    }

    /// Reads exactly `buffer.len()` bytes at `offset` of the file; a file that ends
    /// before is [`StorageError::Truncated`].
    fn read_exact_at(&self, buffer: &mut [u8], offset: u64) -> Result<()> {
        read_exact_at(&self.path, &self.file, buffer, offset)
    }
}

/// A cursor over the records of a [`SpillReader`]: [`next_record`](Self::next_record)
/// lends each record until the next call (the bytes live in the cursor's buffer).
///
/// Errors name the file: [`StorageError::Truncated`] when it got shorter since it was
/// opened, [`StorageError::Corrupt`] when a length no longer fits or the records
/// checksum no longer matches at the end (the records before the damage have been
/// returned by then; the caller must fail rather than use a partial result).
#[derive(Debug)]
pub struct SpillRecords<'a> {
    reader: &'a SpillReader,
    /// Read bytes; `start..end` of them are not consumed yet. Allocated at the first read.
    buffer: Vec<u8>,
    start: usize,
    end: usize,
    /// The record returned last, in `buffer`.
    current: std::ops::Range<usize>,
    /// Offset in the records (after the header) of `buffer[end]`.
    read_offset: u64,
    remaining: u64,
    /// Checksum of the record bytes read so far.
    crc32c: u32,
}

impl SpillRecords<'_> {
    /// Moves to the next record and returns it; `Ok(None)` after the last one.
    pub fn next_record(&mut self) -> Result<Option<&[u8]>> {
        if !self.advance()? {
            return Ok(None);
        }
        Ok(Some(self.current()))
    }

    /// Moves to the next record; `Ok(false)` after the last one. The record is then
    /// [`current`](Self::current).
    pub fn advance(&mut self) -> Result<bool> {
        self.start = self.current.end;
        self.current = self.start..self.start;
        if self.remaining == 0 {
            self.check_end()?;
            return Ok(false);
        }
        self.fill(LEN_PREFIX_BYTES)?;
        let mut prefix = [0u8; LEN_PREFIX_BYTES];
        prefix.copy_from_slice(&self.buffer[self.start..self.start + LEN_PREFIX_BYTES]);
        let len = u32::from_le_bytes(prefix) as usize;
        self.fill(LEN_PREFIX_BYTES + len)?;
        let body = self.start + LEN_PREFIX_BYTES;
        self.current = body..body + len;
        self.remaining -= 1;
        Ok(true)
    }

    /// The record of the last successful [`advance`](Self::advance) (empty before).
    pub fn current(&self) -> &[u8] {
        &self.buffer[self.current.clone()]
    }

    /// The file being read.
    pub fn path(&self) -> &Path {
        &self.reader.path
    }

    /// Records not read yet.
    pub fn remaining(&self) -> u64 {
        self.remaining
    }

    /// Makes at least `needed` unconsumed bytes available at `buffer[start..]`.
    fn fill(&mut self, needed: usize) -> Result<()> {
        if self.end - self.start >= needed {
            return Ok(());
        }
        let reader = self.reader;
        let left_in_file = reader.records_len_bytes - self.read_offset;
        let held = self.end - self.start;
        if ((needed - held) as u64) > left_in_file {
            return Err(StorageError::corrupt(
                &reader.path,
                format!(
                    "a record at byte {} of the records overruns their end (the file \
                     changed after it was validated)",
                    self.read_offset - held as u64
                ),
            ));
        }
        // Keep the unconsumed bytes, move them to the front, read behind them.
        self.buffer.copy_within(self.start..self.end, 0);
        self.start = 0;
        self.end = held;
        let capacity = needed.max(READ_BUFFER_BYTES);
        if self.buffer.len() < capacity {
            self.buffer.resize(capacity, 0);
        }
        let want =
            (self.buffer.len() - held).min(usize::try_from(left_in_file).unwrap_or(usize::MAX));
        let slice = &mut self.buffer[held..held + want];
        reader.read_exact_at(slice, (HEADER_LEN_BYTES as u64) + self.read_offset)?;
        self.crc32c = crc32c::crc32c_append(self.crc32c, slice);
        self.end = held + want;
        self.read_offset += want as u64;
        Ok(())
    }

    /// After the last record: every byte was read and the checksum still matches.
    fn check_end(&mut self) -> Result<()> {
        let reader = self.reader;
        if self.read_offset == reader.records_len_bytes && self.start == self.end {
            if self.crc32c != reader.records_crc32c {
                return Err(StorageError::corrupt(
                    &reader.path,
                    "records checksum mismatch: the file changed after it was validated",
                ));
            }
            // Checked once: a later call finds nothing left to compare.
            self.read_offset = u64::MAX;
            return Ok(());
        }
        if self.read_offset == u64::MAX {
            return Ok(());
        }
        Err(StorageError::corrupt(
            &reader.path,
            "bytes follow the last record (the file changed after it was validated)",
        ))
    }
}

/// The error for a file that cannot be opened: [`StorageError::Missing`] when it does
/// not exist.
fn missing_file_or(
    path: &Path,
    dir: &Path,
    action: &'static str,
    error: io::Error,
) -> StorageError {
    if error.kind() == io::ErrorKind::NotFound {
        StorageError::Missing {
            path: path.to_path_buf(),
        }
    } else {
        StorageError::io(action, path, dir, error)
    }
}

fn read_exact_at(path: &Path, file: &File, buffer: &mut [u8], offset: u64) -> Result<()> {
    use std::os::unix::fs::FileExt;
    file.read_exact_at(buffer, offset).map_err(|e| {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            StorageError::truncated(
                path,
                format!(
                    "it ends before byte {} (it got shorter after it was validated)",
                    offset + buffer.len() as u64
                ),
            )
        } else {
            StorageError::io("read", path, path.parent().unwrap_or(path), e)
        }
    })
}

fn read_u32(bytes: &[u8], at: usize) -> u32 {
    let mut word = [0u8; 4];
    word.copy_from_slice(&bytes[at..at + 4]);
    u32::from_le_bytes(word)
}

fn read_u64(bytes: &[u8], at: usize) -> u64 {
    let mut word = [0u8; 8];
    word.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(word)
}

/// What a validated trailer says.
struct Trailer {
    record_count: u64,
    records_len_bytes: u64,
    records_crc32c: u32,
}

/// Validates the header and trailer of a spill file of `len` bytes.
fn validate_frame(path: &Path, file: &File, len: u64) -> Result<Trailer> {
    if len < HEADER_LEN_BYTES as u64 {
        return Err(StorageError::truncated(
            path,
            format!("the file is {len} bytes, shorter than the {HEADER_LEN_BYTES}-byte header"),
        ));
    }
    let mut header = [0u8; HEADER_LEN_BYTES];
    read_exact_at(path, file, &mut header, 0)?;
    if header[0..8] != HEADER_MAGIC {
        return Err(StorageError::corrupt(
            path,
            "bad magic bytes: not an eddy spill file",
        ));
    }
    let version = read_u32(&header, 8);
    if version != SPILL_FORMAT_VERSION {
        return Err(StorageError::UnsupportedVersion {
            path: path.to_path_buf(),
            found: version,
            supported: SPILL_FORMAT_VERSION,
        });
    }
    if read_u32(&header, 12) != 0 {
        return Err(StorageError::corrupt(
            path,
            "reserved header bytes are not zero",
        ));
    }
    if len < (HEADER_LEN_BYTES + TRAILER_LEN_BYTES) as u64 {
        return Err(StorageError::truncated(
            path,
            format!("the file is {len} bytes, too short to hold header and trailer"),
        ));
    }
    let mut trailer = [0u8; TRAILER_LEN_BYTES];
    read_exact_at(path, file, &mut trailer, len - TRAILER_LEN_BYTES as u64)?;
    if trailer[0..8] != TRAILER_MAGIC {
        return Err(StorageError::truncated(
            path,
            "no trailer at the end: the file was cut short or its writer did not finish",
        ));
    }
    if crc32c::crc32c(&trailer[0..28]) != read_u32(&trailer, 28) {
        return Err(StorageError::corrupt(path, "trailer checksum mismatch"));
    }
    let record_count = read_u64(&trailer, 8);
    let records_len = read_u64(&trailer, 16);
    let records_crc = read_u32(&trailer, 24);
    let held = len - (HEADER_LEN_BYTES + TRAILER_LEN_BYTES) as u64;
    if held != records_len {
        let detail =
            format!("the trailer announces {records_len} bytes of records, the file holds {held}");
        return Err(if held < records_len {
            StorageError::truncated(path, detail)
        } else {
            StorageError::corrupt(path, detail)
        });
    }
    Ok(Trailer {
        record_count,
        records_len_bytes: records_len,
        records_crc32c: records_crc,
    })
}

/// Reads the records of a spill file whose frame is valid once, through a bounded
/// buffer: checks their checksum and walks every record length.
fn validate_records(path: &Path, file: &File, trailer: &Trailer) -> Result<()> {
    let records_len = trailer.records_len_bytes;
    let mut buffer =
        vec![0u8; READ_BUFFER_BYTES.min(usize::try_from(records_len).unwrap_or(usize::MAX))];
    let mut crc = 0u32;
    let mut offset = 0u64;
    // The walk over record lengths: the offset of the next length byte to read, the
    // bytes of a length prefix split across two reads.
    let mut next = 0u64;
    let mut prefix = [0u8; LEN_PREFIX_BYTES];
    let mut prefix_held = 0usize;
    let mut walked = 0u64;
    while offset < records_len {
        let take = buffer
            .len()
            .min(usize::try_from(records_len - offset).unwrap_or(usize::MAX));
        let chunk = &mut buffer[..take];
        read_exact_at(path, file, chunk, HEADER_LEN_BYTES as u64 + offset)?;
        crc = crc32c::crc32c_append(crc, chunk);
        let chunk_end = offset + take as u64;
        while next < chunk_end {
            let at = (next - offset) as usize;
            let copy = (LEN_PREFIX_BYTES - prefix_held).min(take - at);
            prefix[prefix_held..prefix_held + copy].copy_from_slice(&chunk[at..at + copy]);
            prefix_held += copy;
            next += copy as u64;
            if prefix_held == LEN_PREFIX_BYTES {
                next += u64::from(u32::from_le_bytes(prefix));
                prefix_held = 0;
                walked += 1;
            }
        }
        offset = chunk_end;
    }
    if crc != trailer.records_crc32c {
        return Err(StorageError::corrupt(
            path,
            format!(
                "records checksum mismatch (trailer says {:#010x}, content gives {crc:#010x})",
                trailer.records_crc32c
            ),
        ));
    }
    if prefix_held != 0 || next != records_len {
        // The record whose length (or length prefix) overruns: the last one walked, or
        // the one whose prefix was cut.
        let record = if prefix_held != 0 {
            walked
        } else {
            walked.saturating_sub(1)
        };
        return Err(StorageError::corrupt(
            path,
            format!("record {record} overruns the end of the records"),
        ));
    }
    if walked != trailer.record_count {
        return Err(StorageError::corrupt(
            path,
            format!(
                "the trailer announces {} records, the file holds {walked}",
                trailer.record_count
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn owner() -> SpillOwner {
        SpillOwner::new("job-1", "sort", 2)
    }

    fn write(dir: &Path, records: &[Vec<u8>]) -> SpillFile {
        let mut writer = SpillWriter::create(dir, &owner()).unwrap();
        for record in records {
            writer.append(record).unwrap();
        }
        assert_eq!(writer.record_count(), records.len() as u64);
        writer.finish().unwrap()
    }

    fn read_all(reader: &SpillReader) -> Result<Vec<Vec<u8>>> {
        let mut records = reader.records();
        let mut read = Vec::new();
        while let Some(record) = records.next_record()? {
            read.push(record.to_vec());
        }
        Ok(read)
    }

    #[test]
    fn round_trip_examples() {
        let dir = tempfile::tempdir().unwrap();
        let records = vec![
            b"alpha".to_vec(),
            Vec::new(),
            // Larger than the read buffer: the buffer grows for it.
            vec![3u8; READ_BUFFER_BYTES * 2 + 5],
            b"z".to_vec(),
        ];
        let file = write(dir.path(), &records);
        assert_eq!(file.record_count(), 4);
        let name = file
            .path()
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .to_owned();
        assert!(
            name.starts_with("eddy-spill-job%2D1-sort-2-") && name.ends_with(".run"),
            "{name}"
        );
        assert_eq!(fs::metadata(file.path()).unwrap().len(), file.len_bytes());
        let reader = file.open().unwrap();
        assert_eq!(read_all(&reader).unwrap(), records);
        assert_eq!(reader.records().remaining(), 4);
        // Two cursors over one file read independently.
        let mut first = reader.records();
        let mut second = reader.records();
        assert_eq!(first.next_record().unwrap(), Some(&b"alpha"[..]));
        assert_eq!(second.next_record().unwrap(), Some(&b"alpha"[..]));
        assert_eq!(first.next_record().unwrap(), Some(&b""[..]));
        // After the end, the cursor stays at the end.
        let mut records = reader.records();
        while records.next_record().unwrap().is_some() {}
        assert_eq!(records.next_record().unwrap(), None);
    }

    /// Many small records cross read-buffer boundaries, length prefixes included.
    #[test]
    fn records_straddling_buffer_boundaries() {
        let dir = tempfile::tempdir().unwrap();
        let records: Vec<Vec<u8>> = (0..100_000u32)
            .map(|i| vec![i as u8; (i % 13) as usize])
            .collect();
        let reader = write(dir.path(), &records).open().unwrap();
        assert_eq!(read_all(&reader).unwrap(), records);
    }

    /// Damage after the file was opened (validated) is still an error naming it.
    #[test]
    fn damage_after_open_is_detected_while_reading() {
        let dir = tempfile::tempdir().unwrap();
        let records: Vec<Vec<u8>> = (0..50_000u32).map(|i| i.to_le_bytes().to_vec()).collect();
        let path = write(dir.path(), &records).keep();
        let len = fs::metadata(&path).unwrap().len();

        let reader = SpillReader::open(&path).unwrap();
        let file = OpenOptions::new().write(true).open(&path).unwrap();
        file.set_len(len / 2).unwrap();
        let error = read_all(&reader).unwrap_err();
        assert!(
            matches!(&error, StorageError::Truncated { path: p, .. } if *p == path),
            "{error}"
        );

        let path = write(dir.path(), &records).keep();
        let reader = SpillReader::open(&path).unwrap();
        let mut bytes = fs::read(&path).unwrap();
        bytes[HEADER_LEN_BYTES + 100_001] ^= 0x40;
        fs::write(&path, &bytes).unwrap();
        let error = read_all(&reader).unwrap_err();
        assert!(
            matches!(&error, StorageError::Corrupt { path: p, .. } if *p == path),
            "{error}"
        );
    }

    #[test]
    fn append_parts_is_one_record() {
        let dir = tempfile::tempdir().unwrap();
        let mut writer = SpillWriter::create(dir.path(), &owner()).unwrap();
        writer.append_parts(&[b"ab", b"", b"cd"]).unwrap();
        let reader = writer.finish().unwrap().open().unwrap();
        assert_eq!(read_all(&reader).unwrap(), vec![b"abcd".to_vec()]);
    }

    #[test]
    fn files_are_deleted_when_dropped_unless_kept() {
        let dir = tempfile::tempdir().unwrap();
        let writer = SpillWriter::create(dir.path(), &owner()).unwrap();
        let unfinished = writer.path().to_path_buf();
        assert!(unfinished.exists());
        drop(writer);
        assert!(!unfinished.exists(), "an abandoned writer deletes its file");

        let file = write(dir.path(), &[b"x".to_vec()]);
        let path = file.path().to_path_buf();
        drop(file);
        assert!(!path.exists());

        let reader = write(dir.path(), &[b"x".to_vec()]).open().unwrap();
        let path = reader.path().to_path_buf();
        assert!(path.exists());
        drop(reader);
        assert!(!path.exists());

        let kept = write(dir.path(), &[b"x".to_vec()]).keep();
        let reader = SpillReader::open(&kept).unwrap();
        drop(reader);
        assert!(kept.exists(), "a reader opened by path does not delete");
    }

    #[test]
    fn unfinished_file_is_truncated_error() {
        let dir = tempfile::tempdir().unwrap();
        let mut writer = SpillWriter::create(dir.path(), &owner()).unwrap();
        writer.append(&[7u8; 1000]).unwrap();
        writer.out.flush().unwrap();
        let error = SpillReader::open(writer.path()).unwrap_err();
        assert!(
            matches!(&error, StorageError::Truncated { path, .. } if path == writer.path()),
            "{error}"
        );
    }

    #[test]
    fn disk_full_names_the_folder() {
        let dev_full = Path::new("/dev/full");
        if !dev_full.exists() {
            return;
        }
        let file = OpenOptions::new().write(true).open(dev_full).unwrap();
        let spill_dir = Path::new("/spill/folder");
        let mut writer =
            SpillWriter::from_file(file, PathBuf::from("/spill/folder/x.run"), spill_dir).unwrap();
        writer.file.armed = false; // /dev/full is not ours to delete
        let mut outcome = Ok(());
        for _ in 0..100 {
            outcome = writer.append(&[0u8; 64 * 1024]);
            if outcome.is_err() {
                break;
            }
        }
        let error = outcome
            .err()
            .or_else(|| writer.finish().err())
            .expect("/dev/full must fail");
        assert!(
            matches!(&error, StorageError::DiskFull { dir, .. } if dir == spill_dir),
            "{error}"
        );
        assert!(error.to_string().contains("/spill/folder"));
    }

    #[test]
    fn missing_folder_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("gone");
        let error = SpillWriter::create(&missing, &owner()).unwrap_err();
        assert!(
            matches!(&error, StorageError::Missing { path } if *path == missing),
            "{error}"
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

        #[test]
        fn round_trip(records in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..64), 0..40)) {
            let dir = tempfile::tempdir().unwrap();
            let reader = write(dir.path(), &records).open().unwrap();
            prop_assert_eq!(read_all(&reader).unwrap(), records);
        }

        /// Cutting the file anywhere gives an error naming it, never fewer records.
        #[test]
        fn truncation_is_detected(records in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..32), 0..20), cut in any::<prop::sample::Index>()) {
            let dir = tempfile::tempdir().unwrap();
            let path = write(dir.path(), &records).keep();
            let len = fs::metadata(&path).unwrap().len() as usize;
            OpenOptions::new().write(true).open(&path).unwrap().set_len(cut.index(len) as u64).unwrap();
            let error = SpillReader::open(&path).unwrap_err();
            prop_assert_eq!(error.path(), Some(path.as_path()));
            prop_assert!(
                matches!(error, StorageError::Truncated { .. } | StorageError::Corrupt { .. }),
                "{}",
                error
            );
        }

        /// Changing any byte gives an error naming the file, never other records.
        #[test]
        fn byte_flips_are_detected(records in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..32), 0..20), at in any::<prop::sample::Index>(), flip in 1u8..=255) {
            let dir = tempfile::tempdir().unwrap();
            let path = write(dir.path(), &records).keep();
            let mut bytes = fs::read(&path).unwrap();
            let at = at.index(bytes.len());
            bytes[at] ^= flip;
            fs::write(&path, &bytes).unwrap();
            let error = SpillReader::open(&path).unwrap_err();
            prop_assert_eq!(error.path(), Some(path.as_path()));
        }
    }
}
