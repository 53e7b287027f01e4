//! The `eddy` command line: `eddy run <job> [flags]`, `eddy nexmark generate|run`,
//! `eddy serve` (the daemon) and its client commands (`submit`, `list`, `status`,
//! `savepoint`, `stop`, `cancel`).
//!
//! Bad flags, a missing input or an unwritable output print one clear line and exit
//! with status 2; a job that fails exits with status 1; a job cancelled by SIGINT or
//! SIGTERM exits with status 130.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand};
use eddy::cli::{Failure, GenerateArgs, JobArgs, NexmarkRunArgs, PrepareOptions};
use eddy::daemon::client::ClientCommand;
use eddy::daemon::ServeArgs;
use eddy::jobs::nexmark::{Query, RunStats};
use eddy::prelude::*;

/// mimalloc: every thread allocates from its own heap. With glibc's malloc the
/// executors shared arenas with the daemon's HTTP threads once threads outnumbered
/// arenas, and a data core then slept on the arena lock (measured: the executor of a
/// job lost 15–25 % of its CPU to `__lll_lock_wait_private` under 50 REST clients).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// eddy: a thread-per-core stream processing engine.
#[derive(Debug, Parser)]
#[command(name = "eddy", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

// Parsed once per process: the size of the variants does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
enum Command {
    /// Run a built-in job until it ends (bounded input) or is cancelled (Ctrl-C).
    Run {
        #[command(subcommand)]
        job: JobArgs,
    },
    /// The Nexmark benchmark: generate its input files, or run one of its queries.
    Nexmark {
        #[command(subcommand)]
        command: NexmarkCommand,
    },
    /// Run the daemon: a job manager with a REST API, a web UI and Prometheus metrics
    /// (see docs/daemon.md).
    Serve(ServeArgs),
    /// Talk to a running daemon (`--server`).
    #[command(flatten)]
    Client(ClientCommand),
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
            eprintln!("eddy: {} (see 'eddy --help')", eddy::cli::one_line(&error));
            ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> Result<(), Failure> {
    match cli.command {
        Command::Run { job } => run_job(job),
        Command::Nexmark {
            command: NexmarkCommand::Generate(args),
        } => eddy::cli::generate(args),
        Command::Nexmark {
            command: NexmarkCommand::Run(args),
        } => run_job(JobArgs::Nexmark {
            command: eddy::cli::NexmarkJob::Run(args),
        }),
        Command::Serve(args) => {
            eddy::daemon::serve_command(args, eddy::daemon::Registry::builtin())
        }
        Command::Client(command) => eddy::daemon::client::run(command),
    }
}

fn run_job(job: JobArgs) -> Result<(), Failure> {
    let query = match &job {
        JobArgs::Nexmark {
            command: eddy::cli::NexmarkJob::Run(args),
        } => Some(args.query()),
        _ => None,
    };
    let prepared = eddy::cli::prepare(job, &PrepareOptions::default())?;
    let progress = match (&prepared.stats, query) {
        (Some(stats), Some(query)) if std::io::stderr().is_terminal() => {
            Some(Progress::start(query, Arc::clone(stats)))
        }
        _ => None,
    };
    let result = execute(&prepared.env);
    if let Some(progress) = progress {
        progress.stop();
    }
    let metrics = result?;
    if let Some(line) = prepared.report(&metrics) {
        println!("{line}");
    }
    Ok(())
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
    let monitor = handle.monitor();
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
    // With --latency-tracking-interval: the markers' travel times, per vertex.
    let graph = monitor.graph();
    for latency in monitor.latency() {
        let name = |vertex: usize| graph.vertices.get(vertex).map_or("?", |v| v.name.as_str());
        tracing::info!(
            source = name(latency.source_vertex),
            vertex = name(latency.vertex),
            markers = latency.markers,
            p50_us = latency.p50_us,
            p99_us = latency.p99_us,
            max_us = latency.max_us,
            "latency markers (last 10-20 s)"
        );
    }
    Ok(metrics)
}
