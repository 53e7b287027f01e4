//! The `eddy` command line: `eddy run <job> [flags]`, `eddy nexmark generate|run`.
//!
//! Bad flags, a missing input or an unwritable output print one clear line and exit
//! with status 2; a job that fails exits with status 1; a job cancelled by SIGINT or
//! SIGTERM exits with status 130.

use std::fs::File;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{ArgGroup, Args, Parser, Subcommand};
use eddy::connectors::nexmark::{write_files, GeneratorConfig, NexmarkModel, DEFAULT_EVENT_RATE};
use eddy::engine::config::{parse_cores, parse_duration};
use eddy::jobs::nexmark::{Input, Io, Query, ResultMode, RunStats};
use eddy::prelude::*;

/// eddy: a thread-per-core stream processing engine.
#[derive(Debug, Parser)]
#[command(name = "eddy", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a built-in job until it ends (bounded input) or is cancelled (Ctrl-C).
    Run {
        #[command(subcommand)]
        job: Job,
    },
    /// The Nexmark benchmark: generate its input files, or run one of its queries.
    Nexmark {
        #[command(subcommand)]
        command: NexmarkCommand,
    },
}

// Parsed once per process: the size of the variants does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
enum NexmarkCommand {
    /// Write person.csv, auction.csv, bid.csv (and manifest.json) into a folder; the
    /// same files as gen_nexmark.py for the same --events/--seed/--rate.
    Generate(GenerateArgs),
    /// Run one Nexmark query on generated events or on the CSV files of a folder.
    Run(NexmarkRunArgs),
}

#[derive(Debug, Args)]
struct GenerateArgs {
    /// Number of events (persons + auctions + bids, 1:3:46).
    #[arg(long)]
    events: u64,
    /// Seed of the random numbers.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Events per second of event time (date_time advances by 1/rate s per event).
    #[arg(long, default_value_t = DEFAULT_EVENT_RATE, value_parser = parse_rate)]
    rate: f64,
    /// Folder to write the files into (created if missing).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
}

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("input").required(true).args(["input_dir", "events"])))]
struct NexmarkRunArgs {
    /// The query: q0–q22 (see docs/nexmark.md).
    #[arg(long, value_parser = parse_query)]
    query: Query,
    /// Read person.csv, auction.csv, bid.csv from this folder.
    #[arg(long, value_name = "DIR")]
    input_dir: Option<PathBuf>,
    /// Generate this many events instead (one parallel generator per table read).
    #[arg(long)]
    events: Option<u64>,
    /// Emit (and advance event time) at this many events per second [default:
    /// unlimited, event time at 10,000,000 events/s].
    #[arg(long, requires = "events", value_parser = parse_rate)]
    rate: Option<f64>,
    /// Seed of the generated events.
    #[arg(long, requires = "events", default_value_t = 42)]
    seed: u64,
    /// CSV file to write the result to (header, rows sorted); none: drop the rows.
    #[arg(long, value_name = "FILE.csv")]
    output: Option<PathBuf>,
    /// Write the update stream (an `op` column: +I, -U, +U, -D, as Flink's changelog)
    /// instead of the final result of an updating query.
    #[arg(long, requires = "output")]
    changelog: bool,
    #[command(flatten)]
    engine: EngineArgs,
}

#[derive(Debug, Subcommand)]
enum Job {
    /// Count the whitespace-separated words of a text file into a CSV file (word,count).
    Wordcount(WordcountArgs),
    /// Copy records from a source URI to a sink URI (file:, kafka:, nexmark:, print:,
    /// blackhole:).
    Copy(CopyArgs),
}

#[derive(Debug, Args)]
struct CopyArgs {
    /// file:///PATH?format=csv|jsonl|lines&header=BOOL&watch=BOOL,
    /// kafka://HOST:PORT/TOPIC?group=G&start=earliest|latest|committed|MILLIS&bounded=BOOL,
    /// or nexmark://?events=N&rate=R&seed=S.
    #[arg(long, value_name = "URI")]
    source: String,
    /// file:///FILE, file:///DIR/ (part files), print:, blackhole:,
    /// kafka://HOST:PORT/TOPIC?delivery=none|at-least-once|exactly-once (file:, kafka:
    /// and print: take ?format=).
    #[arg(long, value_name = "URI")]
    sink: String,
    /// Format of a side whose URI names none: csv, jsonl, lines.
    #[arg(long, value_parser = parse_format)]
    format: Option<eddy::connectors::files::Format>,
    /// What to do with a record that does not parse: dead-letter, fail, skip-and-count.
    #[arg(long, default_value = "fail", value_parser = parse_on_bad_record)]
    on_bad_record: eddy::jobs::copy::OnBadRecord,
    /// Dead-letter file (JSON lines) for --on-bad-record dead-letter.
    #[arg(long, value_name = "FILE")]
    dead_letters: Option<PathBuf>,
    #[command(flatten)]
    engine: EngineArgs,
}

fn parse_format(text: &str) -> Result<eddy::connectors::files::Format, String> {
    text.parse()
        .map_err(|e: eddy::connectors::files::FileError| e.to_string())
}

fn parse_on_bad_record(text: &str) -> Result<eddy::jobs::copy::OnBadRecord, String> {
    text.parse()
}

#[derive(Debug, Args)]
struct WordcountArgs {
    /// Text file to read.
    #[arg(long, value_name = "PATH")]
    input: PathBuf,
    /// CSV file to write (header `word,count`), or a folder (a path ending in `/`) of
    /// CSV part files, exactly once with --checkpointing exactly-once.
    #[arg(long, value_name = "PATH")]
    output: PathBuf,
    #[command(flatten)]
    engine: EngineArgs,
}

/// Flags every `eddy run` job shares.
#[derive(Debug, Args)]
struct EngineArgs {
    /// Execution mode: streaming (every update) or batch (final results).
    #[arg(long, default_value = "streaming", value_parser = parse_mode)]
    mode: Mode,
    /// Default operator parallelism [default: number of cores].
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..))]
    parallelism: Option<u16>,
    /// CPUs to run one pinned executor on each, e.g. 0,1 or 0-3 [default: all].
    #[arg(long, value_parser = parse_core_list)]
    cores: Option<CoreList>,
    /// buffer.size: records per network buffer (larger = more throughput).
    #[arg(long, default_value_t = 1024, value_parser = clap::value_parser!(u32).range(1..=16_777_216))]
    buffer_size: u32,
    /// buffer.timeout: longest wait of a partly filled buffer, e.g. 0, 100us, 5ms
    /// (smaller = lower latency; 0 = send every record at once).
    #[arg(long, default_value = "1ms", value_parser = parse_timeout)]
    buffer_timeout: Duration,
    /// buffer.count: ring capacity in buffers, per link.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=65_536))]
    buffer_count: u32,
    /// Checkpointing mode: none, at-least-once or exactly-once.
    #[arg(long, default_value = "none", value_parser = parse_checkpointing)]
    checkpointing: CheckpointingMode,
    /// Time between checkpoints, e.g. 200ms, 1s.
    #[arg(long, default_value = "10s", value_parser = parse_interval)]
    checkpoint_interval: Duration,
    /// Checkpoint folder: checkpoints go to DIR/<job>/chk-<n>/.
    #[arg(long, value_name = "DIR")]
    checkpoint_dir: Option<PathBuf>,
    /// Complete checkpoints to keep.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    checkpoints_retained: u32,
    /// Start from `latest` (the newest complete checkpoint of the job in
    /// --checkpoint-dir) or from the checkpoint or savepoint folder PATH.
    #[arg(long, value_name = "latest|PATH", value_parser = parse_restore)]
    restore: Option<RestoreFrom>,
    /// Let a restore ignore state of operators the job no longer has.
    #[arg(long)]
    allow_non_restored_state: bool,
    /// Delete the job's checkpoints when it is cancelled (Ctrl-C, SIGTERM); by default
    /// they are kept and the next run resumes from them with --restore latest.
    #[arg(long)]
    delete_checkpoints_on_cancel: bool,
    /// What to do when a task fails: none, fixed:<attempts>:<delay>,
    /// backoff:<initial>:<max>:<attempts>.
    #[arg(long, default_value = "none", value_parser = parse_restart)]
    restart: RestartStrategy,
    /// Memory for the sorted runs of blocking exchanges (BATCH mode), e.g. 64MiB, 1GiB;
    /// beyond it they spill to --spill-dir.
    #[arg(long, default_value = "256MiB", value_parser = parse_size)]
    memory_budget: usize,
    /// Folder for spill files [default: eddy-spill in the system's temp folder].
    #[arg(long, value_name = "DIR")]
    spill_dir: Option<PathBuf>,
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
    eddy::engine::checkpoint::parse_duration(text)
        .filter(|d| !d.is_zero())
        .ok_or_else(|| format!("'{text}' is not a positive duration (e.g. 200ms, 1s, 2m)"))
}

#[derive(Debug, Clone)]
struct CoreList(Vec<usize>);

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
            ..JobConfig::default()
        };
        config.validate()?;
        Ok(config)
    }
}

/// A failure and the exit status it calls for.
struct Failure {
    status: u8,
    message: String,
}

impl Failure {
    fn usage(message: impl Into<String>) -> Self {
        Failure {
            status: 2,
            message: message.into(),
        }
    }
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("EDDY_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => return clap_exit(error),
    };
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("eddy: {}", failure.message);
            ExitCode::from(failure.status)
        }
    }
}

/// Help and version go to stdout (status 0); usage errors are one line (status 2).
fn clap_exit(error: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    match error.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
            let _ = error.print();
            ExitCode::SUCCESS
        }
        _ => {
            // The first paragraph of clap's message, on one line.
            let rendered = error.render().to_string();
            let paragraph: Vec<&str> = rendered
                .lines()
                .map(str::trim)
                .skip_while(|line| line.is_empty())
                .take_while(|line| !line.is_empty())
                .collect();
            let message = paragraph.join(" ");
            let message = message.strip_prefix("error: ").unwrap_or(&message);
            eprintln!("eddy: {message} (see 'eddy --help')");
            ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> Result<(), Failure> {
    match cli.command {
        Command::Run {
            job: Job::Wordcount(args),
        } => {
            let config = args
                .engine
                .job_config("wordcount")
                .map_err(|e| Failure::usage(e.to_string()))?;
            check_input(&args.input)?;
            let output = eddy::jobs::wordcount::Output::from_arg(&args.output);
            match &output {
                eddy::jobs::wordcount::Output::File(path) => check_output(path)?,
                eddy::jobs::wordcount::Output::Folder(dir) => check_output_dir(dir)?,
            }
            let env = Env::new(config);
            eddy::jobs::wordcount::build(&env, &args.input, &output);
            execute(&env).map(drop)
        }
        Command::Run {
            job: Job::Copy(args),
        } => run_copy(args),
        Command::Nexmark {
            command: NexmarkCommand::Generate(args),
        } => generate(args),
        Command::Nexmark {
            command: NexmarkCommand::Run(args),
        } => run_nexmark(args),
    }
}

fn run_copy(args: CopyArgs) -> Result<(), Failure> {
    use eddy::jobs::copy;
    let config = args
        .engine
        .job_config("copy")
        .map_err(|e| Failure::usage(e.to_string()))?;
    let spec = copy::CopySpec {
        source: copy::parse_source(&args.source).map_err(|e| Failure::usage(e.to_string()))?,
        sink: copy::parse_sink(&args.sink).map_err(|e| Failure::usage(e.to_string()))?,
        format: args.format,
        on_bad_record: args.on_bad_record,
        dead_letters: args.dead_letters,
    };
    let env = Env::new(config);
    let report = copy::build(&env, &spec).map_err(|e| Failure::usage(e.to_string()))?;
    let result = execute(&env);
    report.log_summary();
    result.map(drop)
}

fn generate(args: GenerateArgs) -> Result<(), Failure> {
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

fn run_nexmark(args: NexmarkRunArgs) -> Result<(), Failure> {
    let config = args
        .engine
        .job_config(&format!("nexmark-{}", args.query.name()))
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
    let mode_name = config.mode.to_string();
    let env = Env::new(config);
    let result_mode = if args.changelog {
        ResultMode::Changelog
    } else {
        ResultMode::FinalResult
    };
    let generated = args.input_dir.is_none().then_some(args.events).flatten();
    let io = Io::new(
        input,
        args.output.clone(),
        result_mode,
        Arc::clone(&env.config().clock),
    );
    args.query.build_io(&env, &io);
    let progress = std::io::stderr()
        .is_terminal()
        .then(|| Progress::start(args.query, Arc::clone(&io.stats)));
    let result = execute(&env);
    if let Some(progress) = progress {
        progress.stop();
    }
    let metrics = result?;
    let summary = RunSummary {
        query: args.query,
        mode: &mode_name,
        events: generated.unwrap_or_else(|| io.stats.records_read()),
        wall: metrics.elapsed,
        cores,
        stats: &io.stats,
    };
    println!("{}", summary.json());
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
            "{{\"query\":\"{}\",\"mode\":\"{}\",\"events\":{},\"wall_s\":{:.3},\"events_per_s\":{:.0},\"events_per_s_per_core\":{:.0},\"rows_out\":{},\"latency_us\":{}}}",
            self.query.name(),
            self.mode,
            self.events,
            wall_s,
            rate,
            rate / self.cores as f64,
            self.stats.rows_out(),
            latency
        )
    }
}

/// The progress line on a terminal's stderr (records read, rate, elapsed), redrawn
/// about once a second by a thread that ends with the run.
struct Progress {
    stop: std::sync::mpsc::Sender<()>,
    thread: std::thread::JoinHandle<()>,
}

impl Progress {
    fn start(query: Query, stats: Arc<RunStats>) -> Self {
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::spawn(move || {
            let clock = stats.clock().clone();
            let started = clock.now();
            let mut last = (started, 0u64);
            while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
                stopped.recv_timeout(Duration::from_secs(1))
            {
                let now = clock.now();
                let read = stats.records_read();
                let interval = now.saturating_duration_since(last.0).as_secs_f64();
                let rate = if interval > 0.0 {
                    (read - last.1) as f64 / interval
                } else {
                    0.0
                };
                last = (now, read);
                let elapsed = now.saturating_duration_since(started).as_secs_f64();
                let mut stderr = std::io::stderr().lock();
                let _ = write!(
                    stderr,
                    "\r\x1b[K{}: {read} records read, {:.2} M/s, {elapsed:.0} s",
                    query.name(),
                    rate / 1e6
                );
                let _ = stderr.flush();
            }
            let _ = write!(std::io::stderr(), "\r\x1b[K");
        });
        Progress { stop, thread }
    }

    fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.thread.join();
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

fn execute(env: &Env) -> Result<MetricsSnapshot, Failure> {
    let handle = env.execute_async().map_err(|e| Failure {
        status: if matches!(e, EngineError::Config(_) | EngineError::Graph(_)) {
            2
        } else {
            1
        },
        message: e.to_string(),
    })?;
    let canceller = handle.canceller();
    let interrupted = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = std::sync::Arc::clone(&interrupted);
    // A second handler cannot be installed in one process; the binary runs one job.
    let _ = ctrlc::set_handler(move || {
        flag.store(true, std::sync::atomic::Ordering::SeqCst);
        canceller.cancel();
    });
    let metrics = handle.join().map_err(|e| Failure {
        status: 1,
        message: e.to_string(),
    })?;
    if interrupted.load(std::sync::atomic::Ordering::SeqCst) {
        return Err(Failure {
            status: 130,
            message: "job cancelled by signal".into(),
        });
    }
    tracing::info!(
        elapsed_ms = metrics.elapsed.as_millis() as u64,
        "job finished"
    );
    Ok(metrics)
}
