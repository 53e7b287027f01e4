//! Job settings: execution mode, parallelism, cores and the buffer-pool thresholds.
//!
//! The seed's two buffer-pool knobs are [`BufferConfig::size`] (records per buffer:
//! larger = more throughput) and [`BufferConfig::timeout`] (how long a partly filled
//! buffer may wait: smaller = lower latency; zero = send every record at once).
//! [`BufferConfig::count`] is the capacity of each ring in buffers, so the memory a
//! link can hold is bounded by `count × size` records.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use crate::clock::{Clock, SystemClock};
use crate::error::ConfigError;

/// How a job executes (Flink's `RuntimeExecutionMode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// Pipelined, for bounded or unbounded sources; keyed aggregations emit every update.
    #[default]
    Streaming,
    /// Bounded sources only; keyed aggregations emit one final result per key.
    Batch,
}

impl FromStr for Mode {
    type Err = ConfigError;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.to_ascii_lowercase().as_str() {
            "streaming" => Ok(Mode::Streaming),
            "batch" => Ok(Mode::Batch),
            _ => Err(ConfigError::Invalid {
                setting: "mode",
                value: text.to_string(),
                expected: "streaming or batch",
            }),
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Mode::Streaming => "streaming",
            Mode::Batch => "batch",
        })
    }
}

/// The buffer-pool thresholds of a link (`buffer.size`, `buffer.timeout`, `buffer.count`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BufferConfig {
    /// `buffer.size`: a buffer is sent once it holds this many records.
    pub size: usize,
    /// `buffer.timeout`: a partly filled buffer is sent at the latest this long after
    /// its first record was added; zero sends every record at once.
    pub timeout: Duration,
    /// `buffer.count`: capacity of each ring, in buffers.
    pub count: usize,
}

impl Default for BufferConfig {
    fn default() -> Self {
        BufferConfig {
            size: 1024,
            timeout: Duration::from_millis(1),
            count: 16,
        }
    }
}

impl BufferConfig {
    /// Checks the invariants (`size ≥ 1`, `count ≥ 1`, bounded memory).
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.size == 0 || self.size > 1 << 24 {
            return Err(ConfigError::Invalid {
                setting: "buffer.size",
                value: self.size.to_string(),
                expected: "a record count between 1 and 16777216",
            });
        }
        if self.count == 0 || self.count > 1 << 16 {
            return Err(ConfigError::Invalid {
                setting: "buffer.count",
                value: self.count.to_string(),
                expected: "a buffer count between 1 and 65536",
            });
        }
        Ok(())
    }
}

/// How idle tasks and executors wait.
///
/// A task with nothing to do sleeps until whoever gives it work rings its doorbell
/// (see [`crate::runtime::doorbell`]), or at the latest after a timer that doubles from
/// `park_min` to `park_max` (the fallback for inputs nobody rings for). An executor
/// whose tasks all sleep keeps polling for wake-ups for `spin` before it sleeps in the
/// kernel, so a wake-up from another core costs microseconds while data flows and
/// nothing when the pipeline is idle.
///
/// `reactor_poll` bounds how long an executor runs ready tasks before it looks at its
/// timers, I/O and wake-ups from other cores (glommio's preempt timer). Keep it at
/// milliseconds: glommio 0.9 can park an executor for good when this timer fires just
/// before it looks at its runnable tasks, and with 100–500 µs that happened in about one
/// test run in ten on a loaded machine (0 in 60 runs with 10 ms; see ARCHITECTURE.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdleConfig {
    /// Longest run of ready tasks between two polls of timers and I/O.
    pub reactor_poll: Duration,
    /// How long an executor with nothing to run keeps polling before it sleeps.
    pub spin: Duration,
    /// How long a task that just ran out of input keeps yielding to its core's other
    /// tasks before it parks on its doorbell: records that follow within this time are
    /// taken without a wake-up (latency), an idle task still parks soon (CPU).
    pub task_spin: Duration,
    /// First fallback timer of a sleeping task.
    pub park_min: Duration,
    /// Longest fallback timer of a sleeping task (and the executor's heartbeat). Work
    /// handed over through links and push handles rings the task's doorbell; the timer
    /// only matters for a user [`Source`](crate::operators::source::Source) that is fed
    /// by another thread without ringing (see `Source::set_doorbell`).
    pub park_max: Duration,
}

impl Default for IdleConfig {
    fn default() -> Self {
        IdleConfig {
            reactor_poll: Duration::from_millis(10),
            spin: Duration::from_micros(100),
            task_spin: Duration::from_micros(50),
            park_min: Duration::from_micros(100),
            park_max: Duration::from_millis(100),
        }
    }
}

/// Everything a job needs to know about how to run.
#[derive(Debug, Clone)]
pub struct JobConfig {
    /// Job name (used in logs, metrics and file names).
    pub name: String,
    /// STREAMING or BATCH.
    pub mode: Mode,
    /// Default parallelism of operators; `None` = number of cores.
    pub parallelism: Option<usize>,
    /// Number of key groups (Flink's max parallelism): the most subtasks a keyed
    /// operator can have, and the unit in which keyed state is redistributed when a
    /// snapshot is restored with another parallelism. Fixed for the life of a job.
    pub max_parallelism: usize,
    /// CPU ids to run one pinned executor on each; empty = all CPUs of this process.
    pub cores: Vec<usize>,
    /// Buffer-pool thresholds of every link.
    pub buffer: BufferConfig,
    /// Idle waiting strategy of tasks.
    pub idle: IdleConfig,
    /// Bytes of io_uring registered buffers per executor (kept small: `ulimit -l`).
    pub io_memory_bytes: usize,
    /// The clock of processing time and of buffer timeouts (tests drive a
    /// [`ManualClock`](crate::clock::ManualClock)).
    pub clock: Arc<dyn Clock>,
    /// Checkpoints, restore and restarts.
    pub checkpoint: crate::checkpoint::CheckpointConfig,
    /// Memory for the sorted runs of blocking exchanges (BATCH mode), shared equally by
    /// their sorters; beyond it runs spill to `spill_dir`.
    pub memory_budget_bytes: usize,
    /// Where blocking exchanges spill; `None`: a folder per job under the system's temp
    /// folder, removed when the job ends.
    pub spill_dir: Option<std::path::PathBuf>,
    /// Latency tracking (Flink's `metrics.latency.interval`): every source subtask
    /// emits a latency marker this often and every vertex records the markers' travel
    /// time per source vertex (see [`crate::latency`]). `None` (the default): off.
    pub latency_tracking_interval: Option<std::time::Duration>,
}

impl Default for JobConfig {
    fn default() -> Self {
        JobConfig {
            name: "job".to_string(),
            mode: Mode::Streaming,
            parallelism: None,
            max_parallelism: crate::partition::DEFAULT_MAX_PARALLELISM,
            cores: Vec::new(),
            buffer: BufferConfig::default(),
            idle: IdleConfig::default(),
            io_memory_bytes: 64 << 10,
            clock: Arc::new(SystemClock),
            checkpoint: crate::checkpoint::CheckpointConfig::default(),
            memory_budget_bytes: 256 << 20,
            spill_dir: None,
            latency_tracking_interval: None,
        }
    }
}

impl JobConfig {
    /// The cores the job runs on: the configured ones, or every CPU this process may use.
    pub fn effective_cores(&self) -> Vec<usize> {
        if !self.cores.is_empty() {
            return self.cores.clone();
        }
        let n = std::thread::available_parallelism().map_or(1, |n| n.get());
        (0..n).collect()
    }

    /// The default operator parallelism: configured, or the number of cores.
    pub fn effective_parallelism(&self) -> usize {
        self.parallelism
            .unwrap_or_else(|| self.effective_cores().len())
    }

    /// Checks every setting; the error names the setting and what it expects.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.buffer.validate()?;
        self.checkpoint.validate()?;
        if self
            .latency_tracking_interval
            .is_some_and(|interval| interval.is_zero())
        {
            return Err(ConfigError::Invalid {
                setting: "latency-tracking-interval",
                value: "0".into(),
                expected: "a positive duration (leave it unset to turn tracking off)",
            });
        }
        if self.memory_budget_bytes < 1 << 20 {
            return Err(ConfigError::Invalid {
                setting: "memory-budget",
                value: self.memory_budget_bytes.to_string(),
                expected: "at least 1 MiB",
            });
        }
        if self.max_parallelism == 0 || self.max_parallelism > 1 << 15 {
            return Err(ConfigError::Invalid {
                setting: "max_parallelism",
                value: self.max_parallelism.to_string(),
                expected: "a number of key groups between 1 and 32768",
            });
        }
        if self.parallelism == Some(0) {
            return Err(ConfigError::Invalid {
                setting: "parallelism",
                value: "0".into(),
                expected: "at least 1",
            });
        }
        let online = std::thread::available_parallelism().map_or(1, |n| n.get());
        let mut seen = std::collections::BTreeSet::new();
        for &core in &self.cores {
            if core >= online.max(num_configured_cpus()) {
                return Err(ConfigError::Invalid {
                    setting: "cores",
                    value: core.to_string(),
                    expected: "ids of CPUs of this machine",
                });
            }
            if !seen.insert(core) {
                return Err(ConfigError::Invalid {
                    setting: "cores",
                    value: core.to_string(),
                    expected: "each CPU id at most once",
                });
            }
        }
        Ok(())
    }
}

fn num_configured_cpus() -> usize {
    std::fs::read_dir("/sys/devices/system/cpu")
        .map(|dir| {
            dir.filter_map(Result::ok)
                .filter(|entry| {
                    let name = entry.file_name();
                    let name = name.to_string_lossy();
                    name.strip_prefix("cpu").is_some_and(|rest| {
                        !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_digit())
                    })
                })
                .count()
        })
        .unwrap_or(1)
}

/// Parses a duration such as `0`, `250ns`, `100us`, `100µs`, `5ms`, `2s`.
pub fn parse_duration(text: &str) -> Result<Duration, ConfigError> {
    let bad = || ConfigError::Invalid {
        setting: "duration",
        value: text.to_string(),
        expected: "a number with a unit: ns, us, ms or s (e.g. 0, 100us, 5ms)",
    };
    let text = text.trim();
    let digits_end = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(digits_end);
    let value: u64 = number.parse().map_err(|_| bad())?;
    let nanos_per_unit: u64 = match unit {
        "" if value == 0 => 0,
        "ns" => 1,
        "us" | "µs" => 1_000,
        "ms" => 1_000_000,
        "s" => 1_000_000_000,
        _ => return Err(bad()),
    };
    value
        .checked_mul(nanos_per_unit)
        .map(Duration::from_nanos)
        .ok_or_else(bad)
}

/// Parses a core list such as `0`, `0,2,3` or `0-3`.
pub fn parse_cores(text: &str) -> Result<Vec<usize>, ConfigError> {
    let bad = || ConfigError::Invalid {
        setting: "cores",
        value: text.to_string(),
        expected: "CPU ids like 0,1 or a range like 0-3",
    };
    let mut cores = Vec::new();
    for part in text.split(',') {
        let part = part.trim();
        if let Some((low, high)) = part.split_once('-') {
            let low: usize = low.trim().parse().map_err(|_| bad())?;
            let high: usize = high.trim().parse().map_err(|_| bad())?;
            if low > high {
                return Err(bad());
            }
            cores.extend(low..=high);
        } else {
            cores.push(part.parse().map_err(|_| bad())?);
        }
    }
    if cores.is_empty() {
        return Err(bad());
    }
    Ok(cores)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("0").unwrap(), Duration::ZERO);
        assert_eq!(parse_duration("100us").unwrap(), Duration::from_micros(100));
        assert_eq!(parse_duration("100µs").unwrap(), Duration::from_micros(100));
        assert_eq!(parse_duration("5ms").unwrap(), Duration::from_millis(5));
        assert_eq!(parse_duration("2s").unwrap(), Duration::from_secs(2));
        assert_eq!(parse_duration("7ns").unwrap(), Duration::from_nanos(7));
        for bad in [
            "",
            "5",
            "ms",
            "5 m",
            "-1ms",
            "1.5ms",
            "99999999999999999999s",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn cores_parse_lists_and_ranges() {
        assert_eq!(parse_cores("0").unwrap(), vec![0]);
        assert_eq!(parse_cores("0,2").unwrap(), vec![0, 2]);
        assert_eq!(parse_cores("1-3").unwrap(), vec![1, 2, 3]);
        assert!(parse_cores("3-1").is_err());
        assert!(parse_cores("a").is_err());
        assert!(parse_cores("").is_err());
    }

    #[test]
    fn validation_names_the_setting() {
        let mut config = JobConfig::default();
        config.buffer.size = 0;
        assert!(config
            .validate()
            .unwrap_err()
            .to_string()
            .contains("buffer.size"));
        let config = JobConfig {
            cores: vec![0, 0],
            ..JobConfig::default()
        };
        assert!(config.validate().unwrap_err().to_string().contains("cores"));
        let config = JobConfig {
            cores: vec![100_000],
            ..JobConfig::default()
        };
        assert!(config.validate().is_err());
        assert!("batch".parse::<Mode>().is_ok());
        assert!("bach".parse::<Mode>().is_err());
    }
}
