//! Spill files: [`SpillWriter`] appends records, [`SpillFile`] is a finished file that is
//! deleted when dropped, [`SpillReader`] maps one and iterates its records zero-copy.
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
//! checksums, and a walk over every record length), so iterating afterwards cannot fail.
//!
//! Spill files are not fsynced: they only matter while the process that wrote them runs
//! (after a crash they are swept, see [`sweep_stale`](crate::spill::sweep_stale)), and
//! the page cache keeps them coherent between writer and reader.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use memmap2::Mmap;

use crate::error::{Result, StorageError};
use crate::fsutil::{map_read_only, missing_dir_or, release_pages};
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

    /// Maps and validates the file. The reader takes over the duty to delete it.
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

/// A validated, memory-mapped spill file.
///
/// Invariant: the header, trailer, both checksums and every record length were checked
/// when the file was opened, so [`records`](Self::records) yields exactly the records
/// that were written. Records are borrowed from the map and have no particular alignment.
#[derive(Debug)]
pub struct SpillReader {
    // Declared before `delete_on_drop`, so the map is dropped before the file is deleted.
    map: Mmap,
    path: PathBuf,
    record_count: u64,
    delete_on_drop: Option<DeleteOnDrop>,
}

impl SpillReader {
    /// Maps and validates the spill file at `path`. The file is not deleted when the
    /// reader is dropped (see [`SpillFile::open`] for a reader that deletes its file).
    ///
    /// Errors: [`StorageError::Truncated`] for a short file or one whose writer did not
    /// finish, [`StorageError::Corrupt`] for damaged content,
    /// [`StorageError::UnsupportedVersion`] for another format version; all name the file.
    pub fn open(path: &Path) -> Result<SpillReader> {
        let dir = path.parent().unwrap_or(path);
        let map = map_read_only(path, dir)?;
        let record_count = validate(path, &map)?;
        // Validation read every page; they are read again, in order, when iterated.
        release_pages(&map, 0, map.len());
        Ok(SpillReader {
            map,
            path: path.to_path_buf(),
            record_count,
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

    /// The records, in the order they were appended, borrowed from the map.
    pub fn records(&self) -> SpillRecords<'_> {
        let end = self.map.len() - TRAILER_LEN_BYTES;
        SpillRecords {
            rest: &self.map[HEADER_LEN_BYTES..end],
            remaining: self.record_count,
            map: &self.map,
            released: 0,
        }
    }
}

/// Pages behind the iterator are released in steps of this many bytes.
const RELEASE_STEP_BYTES: usize = 64 << 10;

/// Iterator over the records of a [`SpillReader`].
#[derive(Debug, Clone)]
pub struct SpillRecords<'a> {
    rest: &'a [u8],
    remaining: u64,
    /// The whole map, to release the pages already read (resident memory stays small
    /// while a large file is read through).
    map: &'a Mmap,
    /// Offset in the map below which pages were released.
    released: usize,
}

impl<'a> Iterator for SpillRecords<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        // The reader validated every length at open; the checks below cannot fail for a
        // validated file and only keep this code free of panics.
        let (record, rest) = split_record(self.rest)?;
        self.rest = rest;
        self.remaining = self.remaining.saturating_sub(1);
        let position = record.as_ptr() as usize - self.map.as_ptr() as usize;
        if position - self.released >= RELEASE_STEP_BYTES {
            release_pages(self.map, self.released, position - self.released);
            self.released = position;
        }
        Some(record)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let remaining = usize::try_from(self.remaining).unwrap_or(usize::MAX);
        (remaining, Some(remaining))
    }
}

impl ExactSizeIterator for SpillRecords<'_> {}

/// Splits the first length-prefixed record off `bytes`; `None` when `bytes` is empty or
/// the record does not fit.
fn split_record(bytes: &[u8]) -> Option<(&[u8], &[u8])> {
    let prefix: [u8; LEN_PREFIX_BYTES] = bytes.get(..LEN_PREFIX_BYTES)?.try_into().ok()?;
    let len = u32::from_le_bytes(prefix) as usize;
    let rest = &bytes[LEN_PREFIX_BYTES..];
    if rest.len() < len {
        return None;
    }
    Some(rest.split_at(len))
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

/// Validates a whole spill file; returns its record count.
fn validate(path: &Path, bytes: &[u8]) -> Result<u64> {
    let len = bytes.len();
    if len < HEADER_LEN_BYTES {
        return Err(StorageError::truncated(
            path,
            format!("the file is {len} bytes, shorter than the {HEADER_LEN_BYTES}-byte header"),
        ));
    }
    if bytes[0..8] != HEADER_MAGIC {
        return Err(StorageError::corrupt(
            path,
            "bad magic bytes: not an eddy spill file",
        ));
    }
    let version = read_u32(bytes, 8);
    if version != SPILL_FORMAT_VERSION {
        return Err(StorageError::UnsupportedVersion {
            path: path.to_path_buf(),
            found: version,
            supported: SPILL_FORMAT_VERSION,
        });
    }
    if read_u32(bytes, 12) != 0 {
        return Err(StorageError::corrupt(
            path,
            "reserved header bytes are not zero",
        ));
    }
    if len < HEADER_LEN_BYTES + TRAILER_LEN_BYTES {
        return Err(StorageError::truncated(
            path,
            format!("the file is {len} bytes, too short to hold header and trailer"),
        ));
    }
    let trailer = &bytes[len - TRAILER_LEN_BYTES..];
    if trailer[0..8] != TRAILER_MAGIC {
        return Err(StorageError::truncated(
            path,
            "no trailer at the end: the file was cut short or its writer did not finish",
        ));
    }
    if crc32c::crc32c(&trailer[0..28]) != read_u32(trailer, 28) {
        return Err(StorageError::corrupt(path, "trailer checksum mismatch"));
    }
    let record_count = read_u64(trailer, 8);
    let records_len = read_u64(trailer, 16);
    let records_crc = read_u32(trailer, 24);
    let held = (len - HEADER_LEN_BYTES - TRAILER_LEN_BYTES) as u64;
    if held != records_len {
        let detail =
            format!("the trailer announces {records_len} bytes of records, the file holds {held}");
        return Err(if held < records_len {
            StorageError::truncated(path, detail)
        } else {
            StorageError::corrupt(path, detail)
        });
    }
    let records = &bytes[HEADER_LEN_BYTES..len - TRAILER_LEN_BYTES];
    let actual_crc = crc32c::crc32c(records);
    if actual_crc != records_crc {
        return Err(StorageError::corrupt(
            path,
            format!("records checksum mismatch (trailer says {records_crc:#010x}, content gives {actual_crc:#010x})"),
        ));
    }
    let mut rest = records;
    let mut walked = 0u64;
    while !rest.is_empty() {
        let (_, after) = split_record(rest).ok_or_else(|| {
            StorageError::corrupt(
                path,
                format!("record {walked} overruns the end of the records"),
            )
        })?;
        rest = after;
        walked += 1;
    }
    if walked != record_count {
        return Err(StorageError::corrupt(
            path,
            format!("the trailer announces {record_count} records, the file holds {walked}"),
        ));
    }
    Ok(record_count)
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

    #[test]
    fn round_trip_zero_copy() {
        let dir = tempfile::tempdir().unwrap();
        let records = vec![
            b"alpha".to_vec(),
            Vec::new(),
            vec![0u8; 100_000],
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
        let read: Vec<&[u8]> = reader.records().collect();
        assert_eq!(read, records.iter().map(Vec::as_slice).collect::<Vec<_>>());
        assert_eq!(reader.records().len(), 4);
        // Zero-copy: the records point into the map.
        let map_range = reader.map.as_ptr_range();
        assert!(read
            .iter()
            .all(|r| map_range.contains(&r.as_ptr()) || r.is_empty()));
    }

    #[test]
    fn append_parts_is_one_record() {
        let dir = tempfile::tempdir().unwrap();
        let mut writer = SpillWriter::create(dir.path(), &owner()).unwrap();
        writer.append_parts(&[b"ab", b"", b"cd"]).unwrap();
        let reader = writer.finish().unwrap().open().unwrap();
        assert_eq!(reader.records().collect::<Vec<_>>(), vec![b"abcd"]);
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
            let read: Vec<Vec<u8>> = reader.records().map(<[u8]>::to_vec).collect();
            prop_assert_eq!(read, records);
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
