//! The built-in jobs' command-line arguments and how a job is built from them, shared
//! by `eddy run` and the daemon's `POST /jobs` (which takes exactly the arguments
//! `eddy run <job>` takes).

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use clap::{ArgGroup, Args, Parser, Subcommand};
use eddy_connectors::nexmark::{write_files, GeneratorConfig, NexmarkModel, DEFAULT_EVENT_RATE};
use eddy_engine::config::{parse_cores, parse_duration};

use crate::jobs::nexmark::{Input, Io, Query, ResultMode, RunStats};
use crate::jobs::preview::Preview;
use crate::prelude::*;

/// `eddy nexmark generate`'s arguments.
#[derive(Debug, Clone, Args)]
pub struct GenerateArgs {
    /// Number of events (persons + auctions + bids, 1:3:46).
    #[arg(long)]
    pub(crate) events: u64,
    /// Seed of the random numbers.
    #[arg(long, default_value_t = 42)]
    pub(crate) seed: u64,
    /// Events per second of event time (date_time advances by 1/rate s per event).
    #[arg(long, default_value_t = DEFAULT_EVENT_RATE, value_parser = parse_rate)]
    pub(crate) rate: f64,
    /// Folder to write the files into (created if missing).
    #[arg(long, value_name = "DIR")]
    pub(crate) out: PathBuf,
}

/// `eddy nexmark run`'s arguments.
#[derive(Debug, Clone, Args)]
#[command(group(ArgGroup::new("input").required(true).args(["input_dir", "events"])))]
pub struct NexmarkRunArgs {
    /// The query: q0–q22 (see docs/nexmark.md).
    #[arg(long, value_parser = parse_query)]
    pub(crate) query: Query,
    /// Read person.csv, auction.csv, bid.csv from this folder.
    #[arg(long, value_name = "DIR")]
    pub(crate) input_dir: Option<PathBuf>,
    /// Generate this many events instead (one parallel generator per table read).
    #[arg(long)]
    pub(crate) events: Option<u64>,
    /// Emit (and advance event time) at this many events per second [default:
    /// unlimited, event time at 10,000,000 events/s].
    #[arg(long, requires = "events", value_parser = parse_rate)]
    pub(crate) rate: Option<f64>,
    /// Seed of the generated events.
    #[arg(long, requires = "events", default_value_t = 42)]
    pub(crate) seed: u64,
    /// CSV file to write the result to (header, rows sorted); none: drop the rows.
    #[arg(long, value_name = "FILE.csv")]
    pub(crate) output: Option<PathBuf>,
    /// Write the update stream (an `op` column: +I, -U, +U, -D, as Flink's changelog)
    /// instead of the final result of an updating query.
    #[arg(long, requires = "output")]
    pub(crate) changelog: bool,
    /// What to do with a row of the --input-dir files that does not parse: fail (name
    /// the file and line), skip-and-count, dead-letter (to --dead-letters); skipped
    /// rows are counted in the final line's "bad_records".
    #[arg(long, default_value = "fail", value_parser = parse_on_bad_record)]
    pub(crate) on_bad_record: crate::jobs::copy::OnBadRecord,
    /// Dead-letter file (JSON lines: reason, file, line, byte, raw) for
    /// --on-bad-record dead-letter.
    #[arg(long, value_name = "FILE", requires = "input_dir")]
    pub(crate) dead_letters: Option<PathBuf>,
    #[command(flatten)]
    pub(crate) engine: EngineArgs,
}

/// A built-in job and its arguments: what `eddy run <job> ...` and the daemon's
/// `POST /jobs` take.
// Parsed once per job: the size of the variants does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, Subcommand)]
pub enum JobArgs {
    /// Count the whitespace-separated words of a text file into a CSV file (word,count).
    Wordcount(WordcountArgs),
    /// Copy records from a source URI to a sink URI (file:, kafka:, nexmark:, print:,
    /// blackhole:).
    Copy(CopyArgs),
    /// A Nexmark query (`nexmark run --query qN ...`), as `eddy nexmark run` takes it;
    /// for the daemon's `POST /jobs` (`eddy nexmark run` is the command line's way).
    #[command(hide = true)]
    Nexmark {
        /// `run`.
        #[command(subcommand)]
        command: NexmarkJob,
    },
}

/// The Nexmark job of [`JobArgs::Nexmark`].
#[derive(Debug, Clone, Subcommand)]
pub enum NexmarkJob {
    /// Run one Nexmark query.
    Run(NexmarkRunArgs),
}

/// `eddy run copy`'s arguments.
#[derive(Debug, Clone, Args)]
pub struct CopyArgs {
    /// file:///PATH?format=csv|jsonl|lines&header=BOOL&watch=BOOL,
    /// kafka://HOST:PORT/TOPIC?group=G&start=earliest|latest|committed|MILLIS&bounded=BOOL,
    /// or nexmark://?events=N&rate=R&seed=S.
    #[arg(long, value_name = "URI")]
    pub(crate) source: String,
    /// file:///FILE, file:///DIR/ (part files), print:, blackhole:,
    /// kafka://HOST:PORT/TOPIC?delivery=none|at-least-once|exactly-once (file:, kafka:
    /// and print: take ?format=).
    #[arg(long, value_name = "URI")]
    pub(crate) sink: String,
    /// Format of a side whose URI names none: csv, jsonl, lines.
    #[arg(long, value_parser = parse_format)]
    pub(crate) format: Option<eddy_connectors::files::Format>,
    /// What to do with a record that does not parse: dead-letter, fail, skip-and-count.
    #[arg(long, default_value = "fail", value_parser = parse_on_bad_record)]
    pub(crate) on_bad_record: crate::jobs::copy::OnBadRecord,
    /// Dead-letter file (JSON lines) for --on-bad-record dead-letter.
    #[arg(long, value_name = "FILE")]
    pub(crate) dead_letters: Option<PathBuf>,
    #[command(flatten)]
    pub(crate) engine: EngineArgs,
}

fn parse_format(text: &str) -> Result<eddy_connectors::files::Format, String> {
    text.parse()
        .map_err(|e: eddy_connectors::files::FileError| e.to_string())
}

fn parse_on_bad_record(text: &str) -> Result<crate::jobs::copy::OnBadRecord, String> {
    text.parse()
}

/// `eddy run wordcount`'s arguments.
#[derive(Debug, Clone, Args)]
pub struct WordcountArgs {
    /// Text file to read.
    #[arg(long, value_name = "PATH")]
    pub(crate) input: PathBuf,
    /// CSV file to write (header `word,count`), or a folder (a path ending in `/`) of
    /// CSV part files, exactly once with --checkpointing exactly-once.
    #[arg(long, value_name = "PATH")]
    pub(crate) output: PathBuf,
    #[command(flatten)]
    pub(crate) engine: EngineArgs,
}

/// Flags every `eddy run` job shares.
#[derive(Debug, Clone, Args)]
pub struct EngineArgs {
    /// Execution mode: streaming (every update) or batch (final results).
    #[arg(long, default_value = "streaming", value_parser = parse_mode)]
    pub(crate) mode: Mode,
    /// Default operator parallelism [default: number of cores].
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..))]
    pub(crate) parallelism: Option<u16>,
    /// CPUs to run one pinned executor on each, e.g. 0,1 or 0-3 [default: all].
    #[arg(long, value_parser = parse_core_list)]
    pub(crate) cores: Option<CoreList>,
    /// buffer.size: records per network buffer (larger = more throughput).
    #[arg(long, default_value_t = 1024, value_parser = clap::value_parser!(u32).range(1..=16_777_216))]
    pub(crate) buffer_size: u32,
    /// buffer.timeout: longest wait of a partly filled buffer, e.g. 0, 100us, 5ms
    /// (smaller = lower latency; 0 = send every record at once).
    #[arg(long, default_value = "1ms", value_parser = parse_timeout)]
    pub(crate) buffer_timeout: Duration,
    /// buffer.count: ring capacity in buffers, per link.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=65_536))]
    pub(crate) buffer_count: u32,
    /// Checkpointing mode: none, at-least-once or exactly-once.
    #[arg(long, default_value = "none", value_parser = parse_checkpointing)]
    pub(crate) checkpointing: CheckpointingMode,
    /// Time between checkpoints, e.g. 200ms, 1s.
    #[arg(long, default_value = "10s", value_parser = parse_interval)]
    pub(crate) checkpoint_interval: Duration,
    /// Checkpoint folder: checkpoints go to DIR/<job>/chk-<n>/.
    #[arg(long, value_name = "DIR")]
    pub(crate) checkpoint_dir: Option<PathBuf>,
    /// Complete checkpoints to keep.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    pub(crate) checkpoints_retained: u32,
    /// Start from `latest` (the newest complete checkpoint of the job in
    /// --checkpoint-dir) or from the checkpoint or savepoint folder PATH.
    #[arg(long, value_name = "latest|PATH", value_parser = parse_restore)]
    pub(crate) restore: Option<RestoreFrom>,
    /// Let a restore ignore state of operators the job no longer has.
    #[arg(long)]
    pub(crate) allow_non_restored_state: bool,
    /// Delete the job's checkpoints when it is cancelled (Ctrl-C, SIGTERM); by default
    /// they are kept and the next run resumes from them with --restore latest.
    #[arg(long)]
    pub(crate) delete_checkpoints_on_cancel: bool,
    /// What to do when a task fails: none, fixed:<attempts>:<delay>,
    /// backoff:<initial>:<max>:<attempts>.
    #[arg(long, default_value = "none", value_parser = parse_restart)]
    pub(crate) restart: RestartStrategy,
    /// Memory for the sorted runs of blocking exchanges (BATCH mode), e.g. 64MiB, 1GiB;
    /// beyond it they spill to --spill-dir.
    #[arg(long, default_value = "256MiB", value_parser = parse_size)]
    pub(crate) memory_budget: usize,
    /// Folder for spill files [default: eddy-spill in the system's temp folder].
    #[arg(long, value_name = "DIR")]
    pub(crate) spill_dir: Option<PathBuf>,
    /// Latency tracking (Flink's metrics.latency.interval): sources emit a latency
    /// marker this often, e.g. 200ms, 1s, and every operator reports the markers'
    /// travel time from each source [default: off].
    #[arg(long, value_name = "INTERVAL", value_parser = parse_interval)]
    pub(crate) latency_tracking_interval: Option<Duration>,
}

/// Parses a size: a number of bytes with an optional unit (KiB, MiB, GiB, KB, MB, GB).
fn parse_size(text: &str) -> Result<usize, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let value: usize = digits
        .parse()
        .map_err(|_| format!("'{text}' is not a size (e.g. 64MiB, 1GiB, 1000000)"))?;
    let factor: usize = match unit.trim() {
        "" | "B" => 1,
        "KiB" | "K" => 1 << 10,
        "MiB" | "M" => 1 << 20,
        "GiB" | "G" => 1 << 30,
        "KB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        _ => {
            return Err(format!(
                "'{text}': unknown unit (KiB, MiB, GiB, KB, MB, GB)"
            ))
        }
    };
    value
        .checked_mul(factor)
        .ok_or_else(|| format!("'{text}' is too large"))
}

fn parse_checkpointing(text: &str) -> Result<CheckpointingMode, String> {
    text.parse().map_err(|e: ConfigError| e.to_string())
}

fn parse_restart(text: &str) -> Result<RestartStrategy, String> {
    text.parse().map_err(|e: ConfigError| e.to_string())
}

fn parse_restore(text: &str) -> Result<RestoreFrom, String> {
    text.parse().map_err(|e: ConfigError| e.to_string())
}

fn parse_interval(text: &str) -> Result<Duration, String> {
    eddy_engine::checkpoint::parse_duration(text)
        .filter(|d| !d.is_zero())
        .ok_or_else(|| format!("'{text}' is not a positive duration (e.g. 200ms, 1s, 2m)"))
}

#[derive(Debug, Clone)]
pub(crate) struct CoreList(Vec<usize>);

fn parse_rate(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(rate) if rate.is_finite() && rate > 0.0 => Ok(rate),
        _ => Err(format!(
            "'{text}' is not a positive number of events per second"
        )),
    }
}

fn parse_query(text: &str) -> Result<Query, String> {
    text.parse()
}

fn parse_mode(text: &str) -> Result<Mode, String> {
    text.parse().map_err(|e: ConfigError| e.to_string())
}

fn parse_core_list(text: &str) -> Result<CoreList, String> {
    parse_cores(text).map(CoreList).map_err(|e| e.to_string())
}

fn parse_timeout(text: &str) -> Result<Duration, String> {
    parse_duration(text).map_err(|e| e.to_string())
}

impl EngineArgs {
    fn job_config(&self, name: &str) -> Result<JobConfig, ConfigError> {
        let config = JobConfig {
            name: name.to_string(),
            mode: self.mode,
            parallelism: self.parallelism.map(usize::from),
            cores: self.cores.as_ref().map(|c| c.0.clone()).unwrap_or_default(),
            buffer: BufferConfig {
                size: self.buffer_size as usize,
                timeout: self.buffer_timeout,
                count: self.buffer_count as usize,
            },
            checkpoint: CheckpointConfig {
                mode: self.checkpointing,
                interval: self.checkpoint_interval,
                dir: self.checkpoint_dir.clone(),
                retained: self.checkpoints_retained as usize,
                restore: self.restore.clone(),
                allow_non_restored_state: self.allow_non_restored_state,
                restart: self.restart,
                delete_on_cancel: self.delete_checkpoints_on_cancel,
            },
            memory_budget_bytes: self.memory_budget,
            spill_dir: self.spill_dir.clone(),
            latency_tracking_interval: self.latency_tracking_interval,
            ..JobConfig::default()
        };
        config.validate()?;
        Ok(config)
    }
}

/// A failure and the exit status it calls for.
#[derive(Debug)]
pub struct Failure {
    /// The exit status: 2 for a usage error, 1 for a failed job, 130 when cancelled.
    pub status: u8,
    /// One line, without the `eddy: ` prefix.
    pub message: String,
}

impl Failure {
    /// A usage error (status 2).
    pub fn usage(message: impl Into<String>) -> Self {
        Failure {
            status: 2,
            message: message.into(),
        }
    }
}

/// Parses a built-in job's name and arguments (what `eddy run <job>` takes) into
/// [`JobArgs`]; the error is one line.
pub fn parse_job(job: &str, args: &[String]) -> Result<JobArgs, String> {
    /// The job part of the command line, on its own.
    #[derive(Debug, Parser)]
    #[command(
        name = "eddy run",
        no_binary_name = true,
        disable_help_subcommand = true
    )]
    struct JobLine {
        #[command(subcommand)]
        job: JobArgs,
    }
    let words = std::iter::once(job.to_string()).chain(args.iter().cloned());
    match JobLine::try_parse_from(words) {
        Ok(line) => Ok(line.job),
        Err(error) => Err(one_line(&error)),
    }
}

/// The first paragraph of clap's message, on one line, without `error: `.
pub fn one_line(error: &clap::Error) -> String {
    let rendered = error.render().to_string();
    let paragraph: Vec<&str> = rendered
        .lines()
        .map(str::trim)
        .skip_while(|line| line.is_empty())
        .take_while(|line| !line.is_empty())
        .collect();
    let message = paragraph.join(" ");
    message
        .strip_prefix("error: ")
        .unwrap_or(&message)
        .to_string()
}

impl JobArgs {
    /// The job's name (`wordcount`, `copy`, `nexmark-q5`).
    pub fn name(&self) -> String {
        match self {
            JobArgs::Wordcount(_) => "wordcount".into(),
            JobArgs::Copy(_) => "copy".into(),
            JobArgs::Nexmark {
                command: NexmarkJob::Run(args),
            } => format!("nexmark-{}", args.query.name()),
        }
    }

    /// The engine flags.
    pub fn engine(&self) -> &EngineArgs {
        match self {
            JobArgs::Wordcount(args) => &args.engine,
            JobArgs::Copy(args) => &args.engine,
            JobArgs::Nexmark {
                command: NexmarkJob::Run(args),
            } => &args.engine,
        }
    }

    /// The engine flags, to change (the daemon sets the checkpoint folder and the
    /// restore point).
    pub fn engine_mut(&mut self) -> &mut EngineArgs {
        match self {
            JobArgs::Wordcount(args) => &mut args.engine,
            JobArgs::Copy(args) => &mut args.engine,
            JobArgs::Nexmark {
                command: NexmarkJob::Run(args),
            } => &mut args.engine,
        }
    }
}

impl EngineArgs {
    /// Whether checkpointing is on.
    pub fn checkpointing(&self) -> bool {
        self.checkpointing.enabled()
    }

    /// The checkpoint folder, if one was given.
    pub fn checkpoint_dir(&self) -> Option<&Path> {
        self.checkpoint_dir.as_deref()
    }

    /// Sets the checkpoint folder.
    pub fn set_checkpoint_dir(&mut self, dir: PathBuf) {
        self.checkpoint_dir = Some(dir);
    }

    /// Where the job starts from, if not from scratch.
    pub fn restore(&self) -> Option<&RestoreFrom> {
        self.restore.as_ref()
    }

    /// Sets the CPUs when the job names none.
    pub fn set_default_cores(&mut self, cores: &[usize]) {
        if self.cores.is_none() {
            self.cores = Some(CoreList(cores.to_vec()));
        }
    }

    /// Sets where the job starts from.
    pub fn set_restore(&mut self, restore: Option<RestoreFrom>) {
        self.restore = restore;
    }
}

/// How a job is built.
#[derive(Debug, Clone, Default)]
pub struct PrepareOptions {
    /// Records of a `print:` sink go to this preview instead of standard output (the
    /// daemon).
    pub preview: Option<Arc<Preview>>,
}

/// A built job, ready to execute, and what it reports.
pub struct Prepared {
    /// The job.
    pub env: Env,
    /// The job's name.
    pub name: String,
    /// The preview its `print:` sink writes to, if any.
    pub preview: Option<Arc<Preview>>,
    /// End-to-end latency and counters (Nexmark queries).
    pub stats: Option<Arc<RunStats>>,
    report: Report,
}

/// What a job reports when it ends, apart from the job itself (can go to the thread
/// that joins it).
pub struct JobReport {
    stats: Option<Arc<RunStats>>,
    report: Report,
}

/// What a job reports when it ends.
enum Report {
    None,
    Copy(crate::jobs::copy::CopyReport),
    Nexmark {
        query: Query,
        mode: String,
        generated: Option<u64>,
        cores: usize,
    },
}

impl Prepared {
    /// A job built by an embedding application (see `eddy::daemon::Registry::register`).
    pub fn new(env: Env, name: impl Into<String>) -> Self {
        Prepared {
            env,
            name: name.into(),
            preview: None,
            stats: None,
            report: Report::None,
        }
    }

    /// What the job reports once it ended with `metrics`: logs the copy job's counts;
    /// returns the Nexmark statistics line (see docs/nexmark.md).
    pub fn report(&self, metrics: &MetricsSnapshot) -> Option<String> {
        report(&self.report, self.stats.as_ref(), metrics)
    }

    /// The job and its report, apart.
    pub fn split(self) -> (Env, JobReport) {
        (
            self.env,
            JobReport {
                stats: self.stats,
                report: self.report,
            },
        )
    }
}

impl JobReport {
    /// See [`Prepared::report`].
    pub fn report(&self, metrics: &MetricsSnapshot) -> Option<String> {
        report(&self.report, self.stats.as_ref(), metrics)
    }
}

fn report(
    report: &Report,
    stats: Option<&Arc<RunStats>>,
    metrics: &MetricsSnapshot,
) -> Option<String> {
    {
        match report {
            Report::None => None,
            Report::Copy(report) => {
                report.log_summary();
                None
            }
            Report::Nexmark {
                query,
                mode,
                generated,
                cores,
            } => {
                let stats = stats?;
                let summary = RunSummary {
                    query: *query,
                    mode,
                    events: generated.unwrap_or_else(|| stats.records_read()),
                    wall: metrics.elapsed,
                    cores: *cores,
                    stats,
                };
                Some(summary.json())
            }
        }
    }
}

/// Builds `job` (checks its files first: a missing input or an unwritable output is a
/// usage error, status 2).
pub fn prepare(job: JobArgs, options: &PrepareOptions) -> Result<Prepared, Failure> {
    match job {
        JobArgs::Wordcount(args) => prepare_wordcount(args),
        JobArgs::Copy(args) => prepare_copy(args, options),
        JobArgs::Nexmark {
            command: NexmarkJob::Run(args),
        } => prepare_nexmark(args),
    }
}

fn prepare_wordcount(args: WordcountArgs) -> Result<Prepared, Failure> {
    let config = args
        .engine
        .job_config("wordcount")
        .map_err(|e| Failure::usage(e.to_string()))?;
    check_input(&args.input)?;
    let output = crate::jobs::wordcount::Output::from_arg(&args.output);
    match &output {
        crate::jobs::wordcount::Output::File(path) => check_output(path)?,
        crate::jobs::wordcount::Output::Folder(dir) => check_output_dir(dir)?,
    }
    let env = Env::new(config);
    crate::jobs::wordcount::build(&env, &args.input, &output);
    Ok(Prepared {
        env,
        name: "wordcount".into(),
        preview: None,
        stats: None,
        report: Report::None,
    })
}

fn prepare_copy(args: CopyArgs, options: &PrepareOptions) -> Result<Prepared, Failure> {
    use crate::jobs::copy;
    let config = args
        .engine
        .job_config("copy")
        .map_err(|e| Failure::usage(e.to_string()))?;
    let sink = copy::parse_sink(&args.sink).map_err(|e| Failure::usage(e.to_string()))?;
    let preview = match (&sink, &options.preview) {
        (copy::SinkUri::Print { .. }, Some(preview)) => Some(Arc::clone(preview)),
        _ => None,
    };
    let spec = copy::CopySpec {
        source: copy::parse_source(&args.source).map_err(|e| Failure::usage(e.to_string()))?,
        sink,
        format: args.format,
        on_bad_record: args.on_bad_record,
        dead_letters: args.dead_letters,
        preview: preview.clone(),
    };
    let env = Env::new(config);
    let report = copy::build(&env, &spec).map_err(|e| Failure::usage(e.to_string()))?;
    Ok(Prepared {
        env,
        name: "copy".into(),
        preview,
        stats: None,
        report: Report::Copy(report),
    })
}

fn prepare_nexmark(args: NexmarkRunArgs) -> Result<Prepared, Failure> {
    let name = format!("nexmark-{}", args.query.name());
    let config = args
        .engine
        .job_config(&name)
        .map_err(|e| Failure::usage(e.to_string()))?;
    let input = match (&args.input_dir, args.events) {
        (Some(dir), _) => {
            if !dir.is_dir() {
                return Err(Failure::usage(format!(
                    "input folder '{}' does not exist or is not a folder",
                    dir.display()
                )));
            }
            for file in args.query.files() {
                check_input(&dir.join(file))?;
            }
            Input::Files(dir.clone())
        }
        (None, Some(events)) => Input::Generator(
            NexmarkModel::new(GeneratorConfig {
                events,
                seed: args.seed,
                event_rate: args.rate.unwrap_or(DEFAULT_EVENT_RATE),
                throttle: args.rate.is_some(),
            })
            .map_err(Failure::usage)?,
        ),
        (None, None) => return Err(Failure::usage("give --input-dir or --events")),
    };
    if let Some(output) = &args.output {
        check_output(output)?;
    }
    let cores = config.effective_cores().len().max(1);
    let mode = config.mode.to_string();
    let env = Env::new(config);
    let result_mode = if args.changelog {
        ResultMode::Changelog
    } else {
        ResultMode::FinalResult
    };
    let generated = args.input_dir.is_none().then_some(args.events).flatten();
    let on_bad_record =
        crate::jobs::copy::bad_record_policy(args.on_bad_record, args.dead_letters.as_deref())
            .map_err(|e| Failure::usage(e.to_string()))?;
    let io = Io::new(
        input,
        args.output.clone(),
        result_mode,
        Arc::clone(&env.config().clock),
    )
    .with_bad_records(on_bad_record);
    args.query.build_io(&env, &io);
    Ok(Prepared {
        env,
        name,
        preview: None,
        stats: Some(Arc::clone(&io.stats)),
        report: Report::Nexmark {
            query: args.query,
            mode,
            generated,
            cores,
        },
    })
}

/// `eddy nexmark generate`: writes the three CSV files and prints one JSON line.
pub fn generate(args: GenerateArgs) -> Result<(), Failure> {
    let model = NexmarkModel::new(GeneratorConfig {
        events: args.events,
        seed: args.seed,
        event_rate: args.rate,
        throttle: false,
    })
    .map_err(Failure::usage)?;
    check_output_dir(&args.out)?;
    let counts = write_files(&model, &args.out).map_err(|e| Failure {
        status: 1,
        message: e.to_string(),
    })?;
    println!(
        "{{\"events\":{},\"seed\":{},\"rate_events_per_s\":{:?},\"persons\":{},\"auctions\":{},\"bids\":{}}}",
        args.events, args.seed, args.rate, counts.persons, counts.auctions, counts.bids
    );
    Ok(())
}

/// The final statistics line of `eddy nexmark run` (see docs/nexmark.md).
struct RunSummary<'a> {
    query: Query,
    mode: &'a str,
    /// Generated events (every event of the model, whichever tables the query reads),
    /// or rows read from the input files.
    events: u64,
    wall: Duration,
    cores: usize,
    stats: &'a RunStats,
}

impl RunSummary<'_> {
    /// One line of JSON (numbers only, no NaN or infinity).
    fn json(&self) -> String {
        let wall_s = self.wall.as_secs_f64();
        let rate = if wall_s > 0.0 {
            self.events as f64 / wall_s
        } else {
            0.0
        };
        let latency = match self.stats.latency() {
            Some(latency) => format!(
                "{{\"p50\":{:.3},\"p99\":{:.3},\"p999\":{:.3},\"max\":{:.3}}}",
                latency.p50_us, latency.p99_us, latency.p999_us, latency.max_us
            ),
            None => "null".to_string(),
        };
        format!(
            "{{\"query\":\"{}\",\"mode\":\"{}\",\"events\":{},\"wall_s\":{:.3},\"events_per_s\":{:.0},\"events_per_s_per_core\":{:.0},\"rows_out\":{},\"bad_records\":{},\"latency_us\":{}}}",
            self.query.name(),
            self.mode,
            self.events,
            wall_s,
            rate,
            rate / self.cores as f64,
            self.stats.rows_out(),
            self.stats.bad_records(),
            latency
        )
    }
}

fn check_output_dir(dir: &Path) -> Result<(), Failure> {
    std::fs::create_dir_all(dir).map_err(|e| {
        Failure::usage(format!(
            "cannot create output folder '{}': {e}",
            dir.display()
        ))
    })?;
    if dir.is_dir() {
        Ok(())
    } else {
        Err(Failure::usage(format!(
            "output '{}' is not a folder",
            dir.display()
        )))
    }
}

fn check_input(path: &Path) -> Result<(), Failure> {
    match std::fs::metadata(path) {
        Ok(metadata) if metadata.is_file() => File::open(path).map(drop).map_err(|e| {
            Failure::usage(format!("cannot read input file '{}': {e}", path.display()))
        }),
        Ok(_) => Err(Failure::usage(format!(
            "input '{}' is not a file",
            path.display()
        ))),
        Err(e) => Err(Failure::usage(format!(
            "cannot read input file '{}': {e}",
            path.display()
        ))),
    }
}

fn check_output(path: &Path) -> Result<(), Failure> {
    File::create(path).map(drop).map_err(|e| {
        Failure::usage(format!(
            "cannot write output file '{}': {e}",
            path.display()
        ))
    })
}

impl NexmarkRunArgs {
    /// The query.
    pub fn query(&self) -> Query {
        self.query
    }
}
