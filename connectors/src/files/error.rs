//! Typed errors of the file connectors. Each says who is at fault: the user (a bad
//! setting or path), the outside world (a file that cannot be read, a bad record under
//! the `fail` policy), or a broken watcher thread.

use std::path::PathBuf;

use eddy_engine::prelude::ConnectorError;
use thiserror::Error;

use super::bad_records::Position;

/// Why a file source or sink could not go on.
#[derive(Debug, Error)]
pub enum FileError {
    /// A setting the user gave cannot work (user's fault; fix and retry).
    #[error("{0}")]
    Config(String),
    /// A file or folder could not be read or written (outside world; a retry may help
    /// once the cause is fixed).
    #[error("{what} '{}': {source}", path.display())]
    Io {
        /// What was being done (`cannot open`, `cannot read`, ...).
        what: &'static str,
        /// The file or folder.
        path: PathBuf,
        /// What the OS reported.
        #[source]
        source: std::io::Error,
    },
    /// A record does not parse and the policy is `fail` (the input's fault).
    #[error("bad record in '{}' at {position}: {reason}", path.display())]
    BadRecord {
        /// The file it was read from.
        path: PathBuf,
        /// Where in the file.
        position: Position,
        /// Why it does not parse.
        reason: String,
    },
    /// A record cannot be written in the sink's format (e.g. bytes that are not UTF-8
    /// into JSON lines).
    #[error("cannot write a record as {format}: {reason}")]
    Encode {
        /// The output format.
        format: &'static str,
        /// Why not.
        reason: String,
    },
    /// The folder watcher stopped (its folder went away, or inotify failed).
    #[error("watching '{}' failed: {reason}", folder.display())]
    Watch {
        /// The watched folder.
        folder: PathBuf,
        /// What happened.
        reason: String,
    },
}

impl FileError {
    /// An I/O error on `path`.
    pub fn io(what: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        FileError::Io {
            what,
            path: path.into(),
            source,
        }
    }
}

impl From<FileError> for ConnectorError {
    fn from(error: FileError) -> Self {
        ConnectorError::new(error.to_string())
    }
}
