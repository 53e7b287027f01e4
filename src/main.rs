//! The `eddy` command line: `eddy run <job> [flags]`.
//!
//! Bad flags, a missing input or an unwritable output print one clear line and exit
//! with status 2; a job that fails exits with status 1; a job cancelled by SIGINT or
//! SIGTERM exits with status 130.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use eddy::engine::config::{parse_cores, parse_duration};
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
}

#[derive(Debug, Subcommand)]
enum Job {
    /// Count the whitespace-separated words of a text file into a CSV file (word,count).
    Wordcount(WordcountArgs),
}

#[derive(Debug, Args)]
struct WordcountArgs {
    /// Text file to read.
    #[arg(long, value_name = "PATH")]
    input: PathBuf,
    /// CSV file to write (header `word,count`).
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
}

#[derive(Debug, Clone)]
struct CoreList(Vec<usize>);

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
            check_output(&args.output)?;
            let env = Env::new(config);
            eddy::jobs::wordcount::build(&env, &args.input, &args.output);
            execute(&env)
        }
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

fn execute(env: &Env) -> Result<(), Failure> {
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
    Ok(())
}
