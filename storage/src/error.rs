//! The crate's one error type, [`StorageError`], and [`Fault`], which says who is to blame.
//!
//! Every variant that concerns a file or folder carries its path, so a log line is enough
//! to find the culprit. [`StorageError::fault`] tells the caller whether the user, the
//! environment (disk, file system, another process) or eddy itself is at fault, and
//! [`StorageError::is_retryable`] whether trying again later can help.

use std::io;
use std::path::{Path, PathBuf};

/// Result type of this crate.
pub type Result<T, E = StorageError> = std::result::Result<T, E>;

/// Who is at fault for a [`StorageError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Fault {
    /// The user asked for something that cannot work: a bad name, a savepoint path that is
    /// already taken, a record larger than the format allows, a snapshot written by an
    /// incompatible eddy version.
    User,
    /// The outside world failed: the disk is full, a file was removed, truncated or
    /// damaged, the operating system refused an operation.
    Environment,
    /// eddy broke one of its own rules (an API used in a way it documents as invalid).
    Eddy,
}

/// An error from the storage layer.
///
/// Errors about files name the file (or, for a full disk, the folder being written).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    /// The device holding `dir` is full (ENOSPC) or the user's disk quota is exhausted.
    #[error(
        "no space left while writing in {dir}: free disk space or configure a folder on a \
         larger device ({source})"
    )]
    DiskFull {
        /// The folder that was being written to.
        dir: PathBuf,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// Any other operating-system error.
    #[error("could not {action} {path}: {source}")]
    Io {
        /// What was being done, as a verb phrase ("create", "read", "fsync", ...).
        action: &'static str,
        /// The file or folder concerned.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// A file that must exist does not (for example a state file listed in `_metadata`).
    #[error("{path} is missing")]
    Missing {
        /// The missing file.
        path: PathBuf,
    },
    /// A file is shorter than its own header, trailer or metadata says.
    #[error("{path} is truncated: {detail}")]
    Truncated {
        /// The truncated file.
        path: PathBuf,
        /// What was expected and what was found.
        detail: String,
    },
    /// A file's content is damaged: wrong magic bytes, checksum mismatch, an archive that
    /// does not validate, an impossible record length.
    #[error("{path} is corrupt: {detail}")]
    Corrupt {
        /// The damaged file.
        path: PathBuf,
        /// Why the file was rejected.
        detail: String,
    },
    /// A file was written in a format version this build of eddy does not read.
    #[error(
        "{path} has format version {found}, but this eddy reads only version {supported}: \
         restore it with the eddy version that wrote it"
    )]
    UnsupportedVersion {
        /// The file.
        path: PathBuf,
        /// The version found in the file.
        found: u32,
        /// The version this build reads.
        supported: u32,
    },
    /// A job name, operator id or similar does not fit the rules for names used in paths.
    #[error("invalid {what} {name:?}: {reason}")]
    InvalidName {
        /// What the name names ("job name", "operator id").
        what: &'static str,
        /// The rejected name.
        name: String,
        /// Which rule it breaks.
        reason: &'static str,
    },
    /// A snapshot target already holds a complete snapshot, which is never overwritten.
    #[error("{path} already holds a complete snapshot; choose another path or delete it first")]
    AlreadyExists {
        /// The folder.
        path: PathBuf,
    },
    /// A savepoint target folder exists and holds files, which eddy never clears.
    #[error("{path} is not empty; choose a new or empty folder for the savepoint")]
    NotEmpty {
        /// The folder.
        path: PathBuf,
    },
    /// A record (or key) is larger than the on-disk format can hold.
    #[error("record of {len_bytes} bytes exceeds the limit of {limit_bytes} bytes")]
    RecordTooLarge {
        /// Size of the offending record.
        len_bytes: u64,
        /// The limit.
        limit_bytes: u64,
    },
    /// The storage API was used in a way it documents as invalid (a bug in the caller).
    #[error("storage API misuse: {detail}")]
    Misuse {
        /// What went wrong.
        detail: String,
    },
}

impl StorageError {
    /// Who is at fault; see [`Fault`].
    pub fn fault(&self) -> Fault {
        match self {
            StorageError::DiskFull { .. }
            | StorageError::Io { .. }
            | StorageError::Missing { .. }
            | StorageError::Truncated { .. }
            | StorageError::Corrupt { .. } => Fault::Environment,
            StorageError::UnsupportedVersion { .. }
            | StorageError::InvalidName { .. }
            | StorageError::AlreadyExists { .. }
            | StorageError::NotEmpty { .. }
            | StorageError::RecordTooLarge { .. } => Fault::User,
            StorageError::Misuse { .. } => Fault::Eddy,
        }
    }

    /// Whether the same operation may succeed if tried again later without changing the
    /// request: true for a full disk (space may be freed) and transient OS errors; false for
    /// damaged files, bad names and misuse.
    pub fn is_retryable(&self) -> bool {
        match self {
            StorageError::DiskFull { .. } => true,
            StorageError::Io { source, .. } => matches!(
                source.kind(),
                io::ErrorKind::Interrupted
                    | io::ErrorKind::WouldBlock
                    | io::ErrorKind::TimedOut
                    | io::ErrorKind::ResourceBusy
                    | io::ErrorKind::OutOfMemory
            ),
            _ => false,
        }
    }

    /// The file or folder the error is about, when there is one.
    pub fn path(&self) -> Option<&Path> {
        match self {
            StorageError::DiskFull { dir: path, .. }
            | StorageError::Io { path, .. }
            | StorageError::Missing { path }
            | StorageError::Truncated { path, .. }
            | StorageError::Corrupt { path, .. }
            | StorageError::UnsupportedVersion { path, .. }
            | StorageError::AlreadyExists { path }
            | StorageError::NotEmpty { path } => Some(path),
            StorageError::InvalidName { .. }
            | StorageError::RecordTooLarge { .. }
            | StorageError::Misuse { .. } => None,
        }
    }

    /// Builds the error for a failed operation on `path`: [`StorageError::DiskFull`] (naming
    /// the folder `dir`) when the device or quota is full, [`StorageError::Missing`] when
    /// the file does not exist, [`StorageError::Io`] otherwise.
    pub(crate) fn io(action: &'static str, path: &Path, dir: &Path, source: io::Error) -> Self {
        if is_disk_full(&source) {
            StorageError::DiskFull {
                dir: dir.to_path_buf(),
                source,
            }
        } else if source.kind() == io::ErrorKind::NotFound {
            StorageError::Missing {
                path: path.to_path_buf(),
            }
        } else {
            StorageError::Io {
                action,
                path: path.to_path_buf(),
                source,
            }
        }
    }

    pub(crate) fn corrupt(path: &Path, detail: impl Into<String>) -> Self {
        StorageError::Corrupt {
            path: path.to_path_buf(),
            detail: detail.into(),
        }
    }

    pub(crate) fn truncated(path: &Path, detail: impl Into<String>) -> Self {
        StorageError::Truncated {
            path: path.to_path_buf(),
            detail: detail.into(),
        }
    }
}

/// ENOSPC or EDQUOT, whichever way the standard library reports them.
fn is_disk_full(error: &io::Error) -> bool {
    const ENOSPC: i32 = 28;
    const EDQUOT: i32 = 122;
    matches!(
        error.kind(),
        io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded
    ) || (cfg!(target_os = "linux") && matches!(error.raw_os_error(), Some(ENOSPC | EDQUOT)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enospc_is_disk_full_naming_the_folder() {
        let error = StorageError::io(
            "write",
            Path::new("/spill/f.run"),
            Path::new("/spill"),
            io::Error::from_raw_os_error(28),
        );
        assert!(matches!(&error, StorageError::DiskFull { dir, .. } if dir == Path::new("/spill")));
        assert_eq!(error.fault(), Fault::Environment);
        assert!(error.is_retryable());
        assert!(error.to_string().contains("/spill"));
    }

    #[test]
    fn not_found_is_missing_and_names_the_file() {
        let error = StorageError::io(
            "open",
            Path::new("/chk/x"),
            Path::new("/chk"),
            io::Error::from(io::ErrorKind::NotFound),
        );
        assert!(matches!(&error, StorageError::Missing { .. }));
        assert_eq!(error.path(), Some(Path::new("/chk/x")));
        assert!(!error.is_retryable());
    }

    #[test]
    fn faults_are_classified() {
        let user = StorageError::InvalidName {
            what: "job name",
            name: "a/b".into(),
            reason: "contains '/'",
        };
        assert_eq!(user.fault(), Fault::User);
        let eddy = StorageError::Misuse { detail: "x".into() };
        assert_eq!(eddy.fault(), Fault::Eddy);
        let damaged = StorageError::corrupt(Path::new("/f"), "bad magic");
        assert_eq!(damaged.fault(), Fault::Environment);
        assert!(damaged.to_string().contains("/f"));
    }
}
