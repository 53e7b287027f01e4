//! Typed errors of the engine. Each says who is at fault: the user (configuration,
//! job graph), the outside world (a source or sink failing), or user code in a task.

use thiserror::Error;

/// A setting has a value the engine cannot use (the user's fault; fix and retry).
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum ConfigError {
    /// A setting holds an invalid value.
    #[error("invalid {setting} '{value}': expected {expected}")]
    Invalid {
        /// The setting's name, as users write it.
        setting: &'static str,
        /// The rejected value.
        value: String,
        /// What would be accepted.
        expected: &'static str,
    },
}

/// Why a job could not be planned or did not complete.
#[derive(Debug, Error)]
pub enum EngineError {
    /// The configuration is invalid (user's fault).
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The job graph cannot run as built (user's fault), e.g. a forward edge between
    /// operators of different parallelism or an unbounded source in BATCH mode.
    #[error("invalid job graph: {0}")]
    Graph(String),
    /// An executor could not be started (environment's fault: cores, io_uring, memlock).
    #[error("cannot start the executor on core {core}: {reason}")]
    Executor {
        /// The CPU the executor was to be pinned to.
        core: usize,
        /// What glommio reported.
        reason: String,
    },
    /// The state to start from cannot be read (the message names the folder or file).
    #[error("cannot restore: {reason}")]
    Restore {
        /// What is wrong, naming the file.
        reason: String,
    },
    /// A savepoint could not be taken.
    #[error("savepoint {path} failed: {reason}")]
    Savepoint {
        /// The savepoint's folder.
        path: std::path::PathBuf,
        /// Why.
        reason: String,
    },
    /// A task failed: user code panicked or a source/sink reported an error.
    #[error("task '{task}' failed: {reason}")]
    TaskFailed {
        /// `operator-name (subtask/parallelism)`.
        task: String,
        /// The panic message or the source/sink error.
        reason: String,
    },
}

/// An error reported by a source or sink (usually the outside world's fault: a file,
/// a broker); it fails the task and, with it, the job.
#[derive(Debug, Error)]
#[error("{message}")]
pub struct ConnectorError {
    message: String,
    #[source]
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl ConnectorError {
    /// An error with a message only.
    pub fn new(message: impl Into<String>) -> Self {
        ConnectorError {
            message: message.into(),
            source: None,
        }
    }

    /// An error with a message and the underlying cause.
    pub fn with_source(
        message: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        ConnectorError {
            message: format!("{}: {}", message.into(), source),
            source: Some(Box::new(source)),
        }
    }
}

/// Result of pushing data through a chain: a connector error fails the task.
pub type ChainResult = Result<(), ConnectorError>;

/// Result of [`Output::poll_time`](crate::output::Output::poll_time): the next instant
/// the operator wants to be called at.
pub type PollResult = Result<Option<std::time::Instant>, ConnectorError>;
