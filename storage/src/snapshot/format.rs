//! On-disk format of a snapshot: the 32-byte file header shared by state files and
//! `_metadata`, and the rkyv-archived [`SnapshotMetadata`].
//!
//! ```text
//! state file  op-<operator id>-<subtask>.state   = header(magic "EDDYSTAT") ++ state bytes
//! _metadata                                       = header(magic "EDDYMETA") ++ rkyv archive
//!
//! header (little endian, 32 bytes, so the payload starts 16-byte aligned in a map):
//!   0..8   magic
//!   8..12  format version            (these 12 bytes keep their place in every version)
//!   12..16 aux: subtask index for state files, 0 for _metadata
//!   16..24 payload length in bytes
//!   24..28 crc32c of the payload
//!   28..32 crc32c of bytes 0..28
//! ```

use std::path::Path;

use rkyv::{Archive, Deserialize, Serialize};

use crate::error::{Result, StorageError};

/// The snapshot format version this build writes and reads.
pub const FORMAT_VERSION: u32 = 1;

/// Name of the file whose presence makes a snapshot folder complete.
pub const METADATA_FILE_NAME: &str = "_metadata";

/// Length of the header in front of every snapshot file. A multiple of 16, so a payload in
/// a page-aligned memory map is aligned for any rkyv archive.
pub const HEADER_LEN_BYTES: usize = 32;

pub(crate) const STATE_MAGIC: [u8; 8] = *b"EDDYSTAT";
pub(crate) const METADATA_MAGIC: [u8; 8] = *b"EDDYMETA";

/// Whether a snapshot is a periodic checkpoint or a savepoint taken on request.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[rkyv(derive(Debug))]
pub enum SnapshotKind {
    /// Taken periodically by the checkpoint coordinator, under
    /// `<checkpoint-dir>/<job>/chk-<n>/`, and deleted by retention.
    Checkpoint,
    /// Taken on request under a caller-given path, kept until the user deletes it.
    Savepoint,
}

/// One state file of a snapshot, as listed in `_metadata`.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[rkyv(derive(Debug))]
pub struct StateFileEntry {
    /// The operator whose state this is (a stable id, unique within the job).
    pub operator_id: String,
    /// The parallel instance of the operator.
    pub subtask_index: u32,
    /// File name inside the snapshot folder (`op-<operator id>-<subtask>.state`).
    pub file_name: String,
    /// Length of the state bytes (the file is [`HEADER_LEN_BYTES`] longer).
    pub state_len_bytes: u64,
    /// crc32c of the state bytes.
    pub state_crc32c: u32,
}

/// A source's position at the checkpoint barrier (Kafka offsets, file offsets, ...),
/// opaque to the storage layer.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[rkyv(derive(Debug))]
pub struct SourcePosition {
    /// The source operator's id.
    pub source_id: String,
    /// The source subtask.
    pub subtask_index: u32,
    /// The position, encoded by the source (for example offsets per partition).
    pub position: Vec<u8>,
}

/// The content of `_metadata`: what a snapshot holds.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[rkyv(derive(Debug))]
pub struct SnapshotMetadata {
    /// Format version (equal to the one in the file header).
    pub format_version: u32,
    /// Checkpoint or savepoint.
    pub kind: SnapshotKind,
    /// The job's name.
    pub job_name: String,
    /// The checkpoint id (barrier number); savepoints carry the id of their barrier too.
    pub checkpoint_id: u64,
    /// When the snapshot was taken, in milliseconds since the Unix epoch, as given by the
    /// caller's clock.
    pub timestamp_ms: u64,
    /// Every state file of the snapshot, in the order the caller gave them.
    pub state_files: Vec<StateFileEntry>,
    /// Source positions, in the order the caller gave them.
    pub source_positions: Vec<SourcePosition>,
}

/// The decoded fixed header of a snapshot file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FileHeader {
    pub(crate) magic: [u8; 8],
    pub(crate) aux: u32,
    pub(crate) payload_len_bytes: u64,
    pub(crate) payload_crc32c: u32,
}

impl FileHeader {
    /// Encodes the header (with [`FORMAT_VERSION`]) and its own checksum.
    pub(crate) fn encode(&self) -> [u8; HEADER_LEN_BYTES] {
        let mut bytes = [0u8; HEADER_LEN_BYTES];
        bytes[0..8].copy_from_slice(&self.magic);
        bytes[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
        bytes[12..16].copy_from_slice(&self.aux.to_le_bytes());
        bytes[16..24].copy_from_slice(&self.payload_len_bytes.to_le_bytes());
        bytes[24..28].copy_from_slice(&self.payload_crc32c.to_le_bytes());
        let header_crc = crc32c::crc32c(&bytes[0..28]);
        bytes[28..32].copy_from_slice(&header_crc.to_le_bytes());
        bytes
    }

    /// Checks a whole mapped file (`bytes`) against the header at its start and returns
    /// the header and the payload. `what` names the kind of file in error messages.
    ///
    /// Checks, in order: length, magic, format version, header checksum, payload length,
    /// payload checksum. Never panics.
    pub(crate) fn validate<'a>(
        path: &Path,
        bytes: &'a [u8],
        magic: [u8; 8],
        what: &str,
    ) -> Result<(FileHeader, &'a [u8])> {
        let header = bytes.get(..HEADER_LEN_BYTES).ok_or_else(|| {
            StorageError::truncated(
                path,
                format!(
                    "the file is {} bytes, shorter than the {HEADER_LEN_BYTES}-byte header of {what}",
                    bytes.len()
                ),
            )
        })?;
        if header[0..8] != magic {
            return Err(StorageError::corrupt(
                path,
                format!("bad magic bytes: not {what}"),
            ));
        }
        let version = read_u32(header, 8);
        if version != FORMAT_VERSION {
            return Err(StorageError::UnsupportedVersion {
                path: path.to_path_buf(),
                found: version,
                supported: FORMAT_VERSION,
            });
        }
        let header_crc = read_u32(header, 28);
        if crc32c::crc32c(&header[0..28]) != header_crc {
            return Err(StorageError::corrupt(path, "header checksum mismatch"));
        }
        let decoded = FileHeader {
            magic,
            aux: read_u32(header, 12),
            payload_len_bytes: read_u64(header, 16),
            payload_crc32c: read_u32(header, 24),
        };
        let payload = &bytes[HEADER_LEN_BYTES..];
        let held = payload.len() as u64;
        if held < decoded.payload_len_bytes {
            return Err(StorageError::truncated(
                path,
                format!(
                    "the header announces {} payload bytes, the file holds {held}",
                    decoded.payload_len_bytes
                ),
            ));
        }
        if held > decoded.payload_len_bytes {
            return Err(StorageError::corrupt(
                path,
                format!(
                    "{} unexpected bytes after the {}-byte payload",
                    held - decoded.payload_len_bytes,
                    decoded.payload_len_bytes
                ),
            ));
        }
        let actual_crc = crc32c::crc32c(payload);
        if actual_crc != decoded.payload_crc32c {
            return Err(StorageError::corrupt(
                path,
                format!(
                    "payload checksum mismatch (header says {:#010x}, content gives {actual_crc:#010x})",
                    decoded.payload_crc32c
                ),
            ));
        }
        Ok((decoded, payload))
    }
}

/// Reads a little-endian u32 at `at`; the caller guarantees `bytes.len() >= at + 4`.
fn read_u32(bytes: &[u8], at: usize) -> u32 {
    let mut word = [0u8; 4];
    word.copy_from_slice(&bytes[at..at + 4]);
    u32::from_le_bytes(word)
}

/// Reads a little-endian u64 at `at`; the caller guarantees `bytes.len() >= at + 8`.
fn read_u64(bytes: &[u8], at: usize) -> u64 {
    let mut word = [0u8; 8];
    word.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(word)
}

/// File name of the state file of (`operator_id`, `subtask_index`). The operator id must
/// already be validated.
pub(crate) fn state_file_name(operator_id: &str, subtask_index: u32) -> String {
    format!("op-{operator_id}-{subtask_index}.state")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(payload: &[u8]) -> Vec<u8> {
        let header = FileHeader {
            magic: STATE_MAGIC,
            aux: 3,
            payload_len_bytes: payload.len() as u64,
            payload_crc32c: crc32c::crc32c(payload),
        };
        let mut bytes = header.encode().to_vec();
        bytes.extend_from_slice(payload);
        bytes
    }

    #[test]
    fn header_round_trip() {
        let bytes = file(b"hello");
        let (header, payload) =
            FileHeader::validate(Path::new("f"), &bytes, STATE_MAGIC, "a state file").unwrap();
        assert_eq!(header.aux, 3);
        assert_eq!(payload, b"hello");
    }

    #[test]
    fn every_single_byte_flip_and_truncation_is_detected() {
        let bytes = file(b"some state bytes");
        for at in 0..bytes.len() {
            let mut damaged = bytes.clone();
            damaged[at] ^= 0x40;
            assert!(
                FileHeader::validate(Path::new("f"), &damaged, STATE_MAGIC, "x").is_err(),
                "flip at {at}"
            );
            assert!(
                FileHeader::validate(Path::new("f"), &bytes[..at], STATE_MAGIC, "x").is_err(),
                "truncation at {at}"
            );
        }
    }

    #[test]
    fn newer_version_is_reported_as_such() {
        let mut bytes = file(b"x");
        bytes[8..12].copy_from_slice(&7u32.to_le_bytes());
        let error = FileHeader::validate(Path::new("f"), &bytes, STATE_MAGIC, "x").unwrap_err();
        assert!(matches!(
            error,
            StorageError::UnsupportedVersion {
                found: 7,
                supported: FORMAT_VERSION,
                ..
            }
        ));
    }
}
