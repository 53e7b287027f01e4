//! Checkpoints (Flink's asynchronous barrier snapshots): the settings, the barrier, the
//! state codec and what a task hands over at a barrier.
//!
//! How a checkpoint runs:
//! 1. The coordinator (a thread of the job, off the data cores) asks for checkpoint `n`
//!    by publishing `n` in the job's control block.
//! 2. Each source task sees it between two polls, records its source's position and
//!    sends [`Barrier`] `n` down its chain (exchanges flush their buffers and put the
//!    barrier into every ring, behind the records before it).
//! 3. A task with several input links *aligns* in exactly-once mode: a link that
//!    delivered barrier `n` is not read again until every live link has delivered it (its
//!    records simply wait in the ring), so the snapshot holds exactly the records before
//!    the barrier. In at-least-once mode it does not align: it snapshots when the last
//!    barrier `n` arrives, and records that overtook it may be replayed after a restore.
//! 4. At the barrier each operator serialises its state ([`TaskSnapshot`]; the copy is
//!    the only pause of the pipeline), the task sends the bytes to the coordinator, which
//!    writes them to disk (eddy-storage, temp name + fsync + rename), and passes the
//!    barrier on. Sinks pre-commit here.
//! 5. When every task acknowledged `n`, the coordinator writes `_metadata` (the
//!    checkpoint now exists), applies retention and publishes `n` as complete; each task
//!    then calls [`Output::checkpoint_complete`](crate::output::Output::checkpoint_complete)
//!    down its chain, which is where sinks commit.
//!
//! State is encoded with serde into postcard (compact, no schema) inside rkyv-framed
//! files: the envelope of a state file (its key groups and the operator's own part) is an
//! rkyv archive read in place from a memory map after validation; see
//! docs/ARCHITECTURE.md for why user types need serde rather than rkyv derives.

pub mod coordinator;
mod restore;

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{ConfigError, ConnectorError};

pub(crate) use restore::GroupRef;
pub use restore::RestoredState;

/// Which guarantee checkpoints give (Flink's `CheckpointingMode`, plus off).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CheckpointingMode {
    /// No checkpoints: a failure loses the job's state; a restart starts from scratch.
    #[default]
    None,
    /// Barriers are not aligned: after a restore, records may be processed twice.
    AtLeastOnce,
    /// Barriers are aligned: state reflects every record exactly once; with
    /// transactional sinks, so does the output.
    ExactlyOnce,
}

impl CheckpointingMode {
    /// Whether checkpoints are taken at all.
    pub fn enabled(self) -> bool {
        self != CheckpointingMode::None
    }
}

impl FromStr for CheckpointingMode {
    type Err = ConfigError;
    fn from_str(text: &str) -> Result<Self, ConfigError> {
        match text {
            "none" => Ok(CheckpointingMode::None),
            "at-least-once" => Ok(CheckpointingMode::AtLeastOnce),
            "exactly-once" => Ok(CheckpointingMode::ExactlyOnce),
            _ => Err(ConfigError::Invalid {
                setting: "checkpointing",
                value: text.to_owned(),
                expected: "none, at-least-once or exactly-once",
            }),
        }
    }
}

impl fmt::Display for CheckpointingMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CheckpointingMode::None => "none",
            CheckpointingMode::AtLeastOnce => "at-least-once",
            CheckpointingMode::ExactlyOnce => "exactly-once",
        })
    }
}

/// Where a job's state comes from when it starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RestoreFrom {
    /// The newest complete checkpoint of the job under the checkpoint folder (a fresh
    /// start when there is none); damaged newer ones are reported and skipped.
    Latest,
    /// A given checkpoint (`.../chk-<n>`) or savepoint folder.
    Path(PathBuf),
}

impl FromStr for RestoreFrom {
    type Err = ConfigError;
    fn from_str(text: &str) -> Result<Self, ConfigError> {
        match text {
            "" => Err(ConfigError::Invalid {
                setting: "restore",
                value: String::new(),
                expected: "'latest' or the path of a checkpoint or savepoint",
            }),
            "latest" => Ok(RestoreFrom::Latest),
            path => Ok(RestoreFrom::Path(PathBuf::from(path))),
        }
    }
}

/// What a job does when a task fails (Flink's restart strategies).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RestartStrategy {
    /// Fail the job.
    #[default]
    None,
    /// Restart up to `attempts` times, waiting `delay` before each.
    Fixed {
        /// Restarts allowed.
        attempts: u32,
        /// Wait before a restart.
        delay: Duration,
    },
    /// Restart up to `attempts` times, waiting `initial`, then twice as long each time,
    /// at most `max`.
    Backoff {
        /// First wait.
        initial: Duration,
        /// Longest wait.
        max: Duration,
        /// Restarts allowed.
        attempts: u32,
    },
}

impl RestartStrategy {
    /// The wait before restart number `attempt` (1-based), or `None` when no restart is
    /// left.
    pub fn delay(&self, attempt: u32) -> Option<Duration> {
        match *self {
            RestartStrategy::None => None,
            RestartStrategy::Fixed { attempts, delay } => (attempt <= attempts).then_some(delay),
            RestartStrategy::Backoff {
                initial,
                max,
                attempts,
            } => (attempt <= attempts).then(|| {
                let factor = 1u32 << (attempt - 1).min(20);
                initial.saturating_mul(factor).min(max)
            }),
        }
    }
}

/// Parses `250ms`, `1s`, `2m` or a bare number of milliseconds.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    let (digits, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(at) => text.split_at(at),
        None => (text, "ms"),
    };
    let value: u64 = digits.parse().ok()?;
    match unit {
        "ms" => Some(Duration::from_millis(value)),
        "s" => Some(Duration::from_secs(value)),
        "m" | "min" => Some(Duration::from_secs(value.checked_mul(60)?)),
        "us" => Some(Duration::from_micros(value)),
        _ => None,
    }
}

impl FromStr for RestartStrategy {
    type Err = ConfigError;
    /// `none`, `fixed:<attempts>:<delay>` or `backoff:<initial>:<max>:<attempts>`.
    fn from_str(text: &str) -> Result<Self, ConfigError> {
        let invalid = || ConfigError::Invalid {
            setting: "restart",
            value: text.to_owned(),
            expected: "none, fixed:<attempts>:<delay> (e.g. fixed:3:1s) or \
                       backoff:<initial>:<max>:<attempts> (e.g. backoff:100ms:10s:5)",
        };
        let parts: Vec<&str> = text.split(':').collect();
        match parts.as_slice() {
            ["none"] => Ok(RestartStrategy::None),
            ["fixed", attempts, delay] => Ok(RestartStrategy::Fixed {
                attempts: attempts.parse().map_err(|_| invalid())?,
                delay: parse_duration(delay).ok_or_else(invalid)?,
            }),
            ["backoff", initial, max, attempts] => Ok(RestartStrategy::Backoff {
                initial: parse_duration(initial).ok_or_else(invalid)?,
                max: parse_duration(max).ok_or_else(invalid)?,
                attempts: attempts.parse().map_err(|_| invalid())?,
            }),
            _ => Err(invalid()),
        }
    }
}

/// Checkpoint settings of a job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointConfig {
    /// `none`, `at-least-once` or `exactly-once`.
    pub mode: CheckpointingMode,
    /// Time between the start of two checkpoints.
    pub interval: Duration,
    /// The checkpoint root: checkpoints go to `<dir>/<job>/chk-<n>/`.
    pub dir: Option<PathBuf>,
    /// How many complete checkpoints to keep (at least 1).
    pub retained: usize,
    /// Where the job's state comes from at start.
    pub restore: Option<RestoreFrom>,
    /// Whether restoring may ignore state of operators the job no longer has.
    pub allow_non_restored_state: bool,
    /// What happens when a task fails.
    pub restart: RestartStrategy,
    /// Delete the job's checkpoints when it is cancelled (Flink's
    /// `DELETE_ON_CANCELLATION`). Off by default: a cancelled job keeps them, and the
    /// next run resumes from them with `--restore latest`.
    pub delete_on_cancel: bool,
}

impl Default for CheckpointConfig {
    fn default() -> Self {
        CheckpointConfig {
            mode: CheckpointingMode::None,
            interval: Duration::from_secs(10),
            dir: None,
            retained: 3,
            restore: None,
            allow_non_restored_state: false,
            restart: RestartStrategy::None,
            delete_on_cancel: false,
        }
    }
}

impl CheckpointConfig {
    /// Checks the settings together.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.mode.enabled() && self.dir.is_none() {
            return Err(ConfigError::Invalid {
                setting: "checkpoint-dir",
                value: String::new(),
                expected: "a folder when checkpointing is on",
            });
        }
        if self.restore == Some(RestoreFrom::Latest) && self.dir.is_none() {
            return Err(ConfigError::Invalid {
                setting: "checkpoint-dir",
                value: String::new(),
                expected: "a folder to restore the latest checkpoint from",
            });
        }
        if self.mode.enabled() && self.interval.is_zero() {
            return Err(ConfigError::Invalid {
                setting: "checkpoint-interval",
                value: "0".into(),
                expected: "a positive duration, e.g. 1s or 200ms",
            });
        }
        if self.retained == 0 {
            return Err(ConfigError::Invalid {
                setting: "checkpoints-retained",
                value: "0".into(),
                expected: "at least 1",
            });
        }
        Ok(())
    }
}

/// A checkpoint barrier: everything before it on a link belongs to checkpoint `id`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Barrier {
    /// The checkpoint id (increasing within a job, across restores).
    pub id: u64,
}

/// Types that can be kept in checkpointed state: anything serde can serialise and
/// deserialise (derive `serde::Serialize` and `serde::Deserialize` on your types).
pub trait StateData: Serialize + DeserializeOwned + 'static {}

impl<T: Serialize + DeserializeOwned + 'static> StateData for T {}

/// Encodes `value` for a snapshot.
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, ConnectorError> {
    postcard::to_stdvec(value).map_err(|e| ConnectorError::with_source("cannot encode state", e))
}

/// Appends the encoding of `value` to `out`.
pub(crate) fn encode_into<T: Serialize + ?Sized>(
    value: &T,
    out: Vec<u8>,
) -> Result<Vec<u8>, ConnectorError> {
    postcard::to_extend(value, out)
        .map_err(|e| ConnectorError::with_source("cannot encode state", e))
}

/// Decodes the value at the start of `bytes`; returns it and the bytes after it.
pub(crate) fn decode_prefix<T: DeserializeOwned>(
    bytes: &[u8],
) -> Result<(T, &[u8]), ConnectorError> {
    postcard::take_from_bytes(bytes)
        .map_err(|e| ConnectorError::with_source("cannot decode checkpointed state", e))
}

/// Decodes what [`encode`] wrote.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ConnectorError> {
    postcard::from_bytes(bytes)
        .map_err(|e| ConnectorError::with_source("cannot decode checkpointed state", e))
}

/// A sequence serialised from an iterator without collecting it first.
pub(crate) struct SeqOf<I>(pub(crate) std::cell::Cell<Option<I>>);

impl<I> SeqOf<I> {
    pub(crate) fn new(iter: I) -> Self {
        SeqOf(std::cell::Cell::new(Some(iter)))
    }
}

impl<I, T> Serialize for SeqOf<I>
where
    I: ExactSizeIterator<Item = T>,
    T: Serialize,
{
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let iter = self
            .0
            .take()
            .ok_or_else(|| serde::ser::Error::custom("sequence serialised twice"))?;
        serializer.collect_seq(iter)
    }
}

/// The rkyv envelope of one (operator, subtask) state file.
#[derive(rkyv::Archive, rkyv::Serialize, Debug, Default)]
pub(crate) struct Envelope {
    /// Keyed state, one entry per non-empty key group.
    pub(crate) key_groups: Vec<KeyGroupBytes>,
    /// The operator's own (non-keyed) state, e.g. a sink's pending files.
    pub(crate) operator: Vec<u8>,
}

/// The state of one key group.
#[derive(rkyv::Archive, rkyv::Serialize, Debug)]
pub(crate) struct KeyGroupBytes {
    pub(crate) group: u32,
    pub(crate) bytes: Vec<u8>,
}

/// What the operators of one task snapshot at a barrier.
#[derive(Debug, Default)]
pub struct TaskSnapshot {
    pub(crate) states: Vec<(String, Envelope)>,
}

impl TaskSnapshot {
    /// Adds the state of operator `operator_id`: per key group bytes (empty groups may
    /// be left out) and its own part.
    pub(crate) fn add(
        &mut self,
        operator_id: &str,
        key_groups: Vec<(u32, Vec<u8>)>,
        operator: Vec<u8>,
    ) {
        self.states.push((
            operator_id.to_owned(),
            Envelope {
                key_groups: key_groups
                    .into_iter()
                    .map(|(group, bytes)| KeyGroupBytes { group, bytes })
                    .collect(),
                operator,
            },
        ));
    }
}

/// Serialises an envelope into the bytes of a state file (into a buffer sized for it up
/// front: one copy of the state, no regrowth).
pub(crate) fn envelope_bytes(
    envelope: &Envelope,
) -> Result<rkyv::util::AlignedVec, ConnectorError> {
    let payload: usize = envelope
        .key_groups
        .iter()
        .map(|group| group.bytes.len() + 32)
        .sum::<usize>()
        + envelope.operator.len()
        + 256;
    rkyv::api::high::to_bytes_in::<_, rkyv::rancor::Error>(
        envelope,
        rkyv::util::AlignedVec::<16>::with_capacity(payload),
    )
    .map_err(|e| ConnectorError::with_source("cannot archive state", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_parse_and_bad_values_are_named() {
        assert_eq!(
            "exactly-once".parse::<CheckpointingMode>().unwrap(),
            CheckpointingMode::ExactlyOnce
        );
        assert!("exactly_once".parse::<CheckpointingMode>().is_err());
        assert_eq!(
            "fixed:3:1s".parse::<RestartStrategy>().unwrap(),
            RestartStrategy::Fixed {
                attempts: 3,
                delay: Duration::from_secs(1)
            }
        );
        let backoff: RestartStrategy = "backoff:100ms:1s:5".parse().unwrap();
        assert_eq!(backoff.delay(1), Some(Duration::from_millis(100)));
        assert_eq!(backoff.delay(3), Some(Duration::from_millis(400)));
        assert_eq!(backoff.delay(5), Some(Duration::from_secs(1)));
        assert_eq!(backoff.delay(6), None);
        assert!("fixed:x:1s".parse::<RestartStrategy>().is_err());
        assert!("sometimes".parse::<RestartStrategy>().is_err());
        assert_eq!(parse_duration("200ms"), Some(Duration::from_millis(200)));
        assert_eq!(parse_duration("2m"), Some(Duration::from_secs(120)));
        assert_eq!(parse_duration("2h"), None);
    }

    #[test]
    fn the_codec_round_trips() {
        let value = vec![("a".to_string(), 1u64), ("b".to_string(), u64::MAX)];
        let bytes = encode(&value).unwrap();
        assert_eq!(decode::<Vec<(String, u64)>>(&bytes).unwrap(), value);
        assert!(decode::<Vec<(String, u64)>>(&bytes[..bytes.len() - 1]).is_err());
        let seq = SeqOf::new(value.iter().map(|(k, v)| (k, v)));
        assert_eq!(encode(&seq).unwrap(), bytes);
    }
}
