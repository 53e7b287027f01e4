//! Reading a snapshot: [`Snapshot::open`] maps and validates every file, then hands out
//! the state bytes in place.

use std::path::{Path, PathBuf};

use memmap2::Mmap;

use crate::error::{Result, StorageError};
use crate::fsutil::{map_read_only, validate_name};
use crate::snapshot::format::{
    state_file_name, ArchivedSnapshotMetadata, FileHeader, SnapshotKind, SnapshotMetadata,
    StateFileEntry, FORMAT_VERSION, HEADER_LEN_BYTES, METADATA_FILE_NAME, METADATA_MAGIC,
    STATE_MAGIC,
};

/// A complete, validated snapshot whose state files are memory-mapped.
///
/// Invariant: every state file listed in [`metadata`](Self::metadata) is mapped, has a
/// valid header, the listed length and the listed crc32c. State bytes are borrowed from
/// the maps (zero-copy) and start 16-byte aligned.
///
/// Cost: opening reads every byte once (checksums); afterwards access is free.
#[derive(Debug)]
pub struct Snapshot {
    dir: PathBuf,
    metadata: SnapshotMetadata,
    /// One map per entry of `metadata.state_files`, same order.
    state_maps: Vec<Mmap>,
}

impl Snapshot {
    /// Opens the snapshot in `dir` (a `chk-<n>` folder or a savepoint folder): validates
    /// `_metadata` (header, checksum, rkyv bytecheck, format version), then maps and
    /// validates every state file it lists.
    ///
    /// A folder without `_metadata` is [`StorageError::Missing`] (an incomplete snapshot);
    /// a damaged file is [`StorageError::Truncated`] or [`StorageError::Corrupt`] naming it.
    pub fn open(dir: &Path) -> Result<Snapshot> {
        let metadata = read_metadata(dir)?;
        let mut state_maps = Vec::with_capacity(metadata.state_files.len());
        for entry in &metadata.state_files {
            state_maps.push(map_state_file(dir, entry)?);
        }
        Ok(Snapshot {
            dir: dir.to_path_buf(),
            metadata,
            state_maps,
        })
    }

    /// The snapshot's folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The snapshot's metadata.
    pub fn metadata(&self) -> &SnapshotMetadata {
        &self.metadata
    }

    /// The checkpoint id.
    pub fn checkpoint_id(&self) -> u64 {
        self.metadata.checkpoint_id
    }

    /// Checkpoint or savepoint.
    pub fn kind(&self) -> SnapshotKind {
        self.metadata.kind
    }

    /// The state bytes of (`operator_id`, `subtask_index`), or `None` when the snapshot
    /// holds no state for it. The slice is 16-byte aligned.
    pub fn state(&self, operator_id: &str, subtask_index: u32) -> Option<&[u8]> {
        self.states()
            .find(|(entry, _)| {
                entry.operator_id == operator_id && entry.subtask_index == subtask_index
            })
            .map(|(_, bytes)| bytes)
    }

    /// Every state file's entry and bytes, in metadata order.
    pub fn states(&self) -> impl Iterator<Item = (&StateFileEntry, &[u8])> + '_ {
        self.metadata
            .state_files
            .iter()
            .zip(&self.state_maps)
            .map(|(entry, map)| (entry, &map[HEADER_LEN_BYTES..]))
    }
}

/// Opens and validates the snapshot in `dir`; the same as [`Snapshot::open`].
pub fn open(dir: &Path) -> Result<Snapshot> {
    Snapshot::open(dir)
}

/// Reads and validates only the `_metadata` of the snapshot in `dir` (cheap: state files
/// are not opened). Useful to list snapshots; use [`Snapshot::open`] to restore.
pub fn read_metadata(dir: &Path) -> Result<SnapshotMetadata> {
    let path = dir.join(METADATA_FILE_NAME);
    let map = map_read_only(&path, dir)?;
    let (_, payload) = FileHeader::validate(
        &path,
        &map,
        METADATA_MAGIC,
        "an eddy snapshot _metadata file",
    )?;
    let archived =
        rkyv::access::<ArchivedSnapshotMetadata, rkyv::rancor::Error>(payload).map_err(|e| {
            StorageError::corrupt(
                &path,
                format!("the metadata archive does not validate: {e}"),
            )
        })?;
    let metadata =
        rkyv::deserialize::<SnapshotMetadata, rkyv::rancor::Error>(archived).map_err(|e| {
            StorageError::corrupt(&path, format!("the metadata archive cannot be read: {e}"))
        })?;
    if metadata.format_version != FORMAT_VERSION {
        return Err(StorageError::UnsupportedVersion {
            path,
            found: metadata.format_version,
            supported: FORMAT_VERSION,
        });
    }
    for entry in &metadata.state_files {
        // The names come from disk: check them before they become paths, so a damaged or
        // forged `_metadata` cannot point outside the snapshot folder.
        validate_name("operator id", &entry.operator_id)
            .map_err(|e| StorageError::corrupt(&path, format!("lists a bad state file: {e}")))?;
        if entry.file_name != state_file_name(&entry.operator_id, entry.subtask_index) {
            return Err(StorageError::corrupt(
                &path,
                format!(
                    "lists state file {:?}, which does not match its operator and subtask",
                    entry.file_name
                ),
            ));
        }
    }
    Ok(metadata)
}

/// Maps the state file of `entry` and checks it against its header and the metadata.
fn map_state_file(dir: &Path, entry: &StateFileEntry) -> Result<Mmap> {
    let path = dir.join(&entry.file_name);
    let map = map_read_only(&path, dir)?;
    let (header, payload) = FileHeader::validate(&path, &map, STATE_MAGIC, "an eddy state file")?;
    if payload.len() as u64 != entry.state_len_bytes {
        let detail = format!(
            "holds {} state bytes, _metadata lists {}",
            payload.len(),
            entry.state_len_bytes
        );
        return Err(if (payload.len() as u64) < entry.state_len_bytes {
            StorageError::truncated(&path, detail)
        } else {
            StorageError::corrupt(&path, detail)
        });
    }
    if header.payload_crc32c != entry.state_crc32c {
        return Err(StorageError::corrupt(
            &path,
            "checksum differs from the one in _metadata (a state file of another snapshot?)",
        ));
    }
    if header.aux != entry.subtask_index {
        return Err(StorageError::corrupt(
            &path,
            format!(
                "holds subtask {}, _metadata lists subtask {}",
                header.aux, entry.subtask_index
            ),
        ));
    }
    Ok(map)
}
