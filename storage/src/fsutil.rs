//! File-system helpers shared by the snapshot store and spill files: atomic writes,
//! folder fsync, read-only memory maps (snapshots), and the rules for names that become
//! paths.
//!
//! This is the only module of the crate with `unsafe` code (the memory map).

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::Path;

use memmap2::Mmap;

use crate::error::{Result, StorageError};

/// Longest name (in bytes) accepted by [`validate_name`].
pub(crate) const NAME_LEN_MAX_BYTES: usize = 128;

/// Checks a job name or operator id that becomes part of a path: 1 to
/// [`NAME_LEN_MAX_BYTES`] bytes of `[A-Za-z0-9_.-]`, not starting with `.`.
pub(crate) fn validate_name(what: &'static str, name: &str) -> Result<()> {
    let reason = if name.is_empty() {
        Some("is empty")
    } else if name.len() > NAME_LEN_MAX_BYTES {
        Some("is longer than 128 bytes")
    } else if name.starts_with('.') {
        Some("starts with '.'")
    } else if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
    {
        Some("may only hold ASCII letters, digits, '_', '.' and '-'")
    } else {
        None
    };
    match reason {
        None => Ok(()),
        Some(reason) => Err(StorageError::InvalidName {
            what,
            name: name.to_owned(),
            reason,
        }),
    }
}

/// Writes `parts` (concatenated) to `dir/file_name` atomically: the bytes go to a
/// temporary name in the same folder, are fsynced, and the file is renamed into place.
///
/// The folder itself is *not* fsynced here: callers that write several files fsync the
/// folder once with [`sync_dir`] before anything depends on the renames being durable.
/// Returns the number of bytes written.
pub(crate) fn write_atomically(dir: &Path, file_name: &str, parts: &[&[u8]]) -> Result<u64> {
    let final_path = dir.join(file_name);
    let temp_path = dir.join(format!(".{file_name}.tmp"));
    let result = (|| {
        let mut file =
            File::create(&temp_path).map_err(|e| missing_dir_or(dir, "create", &temp_path, e))?;
        let mut len_bytes = 0u64;
        for part in parts {
            file.write_all(part)
                .map_err(|e| StorageError::io("write", &temp_path, dir, e))?;
            len_bytes += part.len() as u64;
        }
        file.sync_all()
            .map_err(|e| StorageError::io("fsync", &temp_path, dir, e))?;
        fs::rename(&temp_path, &final_path)
            .map_err(|e| StorageError::io("rename into place", &final_path, dir, e))?;
        Ok(len_bytes)
    })();
    if result.is_err() {
        // Best effort: a leftover temporary file is harmless (it is never read), but it
        // takes space, which matters when the error was a full disk.
        let _ = fs::remove_file(&temp_path);
    }
    result
}

/// The error for a failed file creation in `dir`: [`StorageError::Missing`] naming the
/// folder when it is the folder that does not exist, [`StorageError::io`] otherwise.
pub(crate) fn missing_dir_or(
    dir: &Path,
    action: &'static str,
    path: &Path,
    error: std::io::Error,
) -> StorageError {
    if error.kind() == std::io::ErrorKind::NotFound && !dir.is_dir() {
        StorageError::Missing {
            path: dir.to_path_buf(),
        }
    } else {
        StorageError::io(action, path, dir, error)
    }
}

/// Fsyncs a folder, making the creations, renames and removals inside it durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    let handle = File::open(dir).map_err(|e| StorageError::io("open folder", dir, dir, e))?;
    handle
        .sync_all()
        .map_err(|e| StorageError::io("fsync folder", dir, dir, e))
}

/// Opens `path` read-only and maps it into memory.
///
/// Contract (why this is sound, see the `SAFETY` comment inside): `path` is a file that
/// eddy wrote and that nobody modifies while it is mapped. Snapshot files are never
/// written in place (new content goes to a new inode via temp-file + rename, so an
/// existing map keeps the old bytes). The folders that hold them are private to eddy.
/// (Spill files are read with positioned reads, not mapped: see `spill::file`.)
pub(crate) fn map_read_only(path: &Path, dir: &Path) -> Result<Mmap> {
    let file = OpenOptions::new()
        .read(true)
        .open(path)
        .map_err(|e| StorageError::io("open", path, dir, e))?;
    // SAFETY: `Mmap::map` is unsafe because the mapped bytes change (or the process gets
    // SIGBUS) if the underlying file is modified or truncated while mapped. By this
    // function's contract the file is private to eddy and immutable once written:
    // snapshot files are replaced only by rename (a new inode, the old mapping is
    // unaffected) and only deleted (unlinking keeps the inode alive while mapped); spill
    // files are never mapped. Every reader validates the
    // mapped bytes (lengths, checksums, rkyv bytecheck) before interpreting them, so even a
    // file damaged *before* mapping yields an error, not undefined behaviour.
    let map = unsafe { Mmap::map(&file) }.map_err(|e| StorageError::io("map", path, dir, e))?;
    Ok(map)
}

/// Removes a folder and everything in it; a folder that is already gone is not an error.
pub(crate) fn remove_dir_all_if_exists(dir: &Path, parent: &Path) -> Result<()> {
    match fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(StorageError::io("remove", dir, parent, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_validated() {
        for good in ["job", "nexmark-q5", "op_1.v2", "A"] {
            assert!(validate_name("job name", good).is_ok(), "{good}");
        }
        let long = "x".repeat(NAME_LEN_MAX_BYTES + 1);
        for bad in ["", ".", "..", ".hidden", "a/b", "a b", "é", long.as_str()] {
            let error = validate_name("job name", bad).unwrap_err();
            assert!(matches!(error, StorageError::InvalidName { .. }), "{bad}");
        }
    }

    #[test]
    fn atomic_write_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let len = write_atomically(dir.path(), "f", &[b"ab", b"cd"]).unwrap();
        assert_eq!(len, 4);
        sync_dir(dir.path()).unwrap();
        assert_eq!(fs::read(dir.path().join("f")).unwrap(), b"abcd");
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec!["f"]);
    }

    #[test]
    fn map_of_missing_file_names_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nope");
        let error = map_read_only(&path, dir.path()).unwrap_err();
        assert!(matches!(&error, StorageError::Missing { path: p } if *p == path));
    }
}
