//! The daemon: `eddy serve` runs a job manager on a box.
//!
//! * The data plane is each job's executors, pinned to the cores (`--cores`, or the
//!   job's own `--cores`); the control plane — the HTTP server's threads, one
//!   supervisor thread per job that joins it, a sampler thread that turns counters
//!   into rates, savepoint requests — runs on threads of its own that never touch a
//!   record.
//! * Jobs are the built-in ones (`wordcount`, `copy`, `nexmark run ...`), with exactly
//!   the arguments `eddy run <job>` takes, or ones an embedding application registers
//!   ([`Registry::register`], then [`serve`] — like Flink's application mode).
//! * The state folder holds the leader lock and a record of every job (written
//!   atomically); a daemon started on it after a crash resumes every job that was
//!   running from its newest checkpoint, and a second daemon on the same folder waits
//!   as a standby and takes over when the leader dies ([`state`]).
//! * The REST API follows Apache Flink's paths and shapes (docs/rest-api.md); the web
//!   UI is built into the binary; `/metrics` is Prometheus' text format.

pub mod api;
pub mod client;
pub mod manager;
pub mod state;
mod ui;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use clap::Args;

use crate::cli::{parse_job, prepare, Failure, JobArgs, PrepareOptions, Prepared};
use crate::jobs::preview::Preview;
use crate::prelude::*;

use manager::Manager;
use state::StateDir;

/// `eddy serve`'s flags.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// The state folder: the leader lock, the jobs' records and checkpoints, savepoints.
    #[arg(long, value_name = "DIR")]
    pub state_dir: PathBuf,
    /// Address of the REST API and web UI (loopback by default; anything else exposes
    /// the API to the network: set --auth-token-file).
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:8081")]
    pub http: SocketAddr,
    /// CPUs the jobs' executors run on by default, e.g. 0,1 or 0-3 [default: all].
    #[arg(long, value_parser = parse_cores)]
    pub cores: Option<CoreSet>,
    /// A file whose first line is the bearer token every POST, PATCH and DELETE must
    /// carry (`Authorization: Bearer <token>`).
    #[arg(long, value_name = "FILE")]
    pub auth_token_file: Option<PathBuf>,
    /// Threads answering HTTP requests.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub http_threads: u16,
}

/// A list of CPUs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CoreSet(pub Vec<usize>);

fn parse_cores(text: &str) -> Result<CoreSet, String> {
    eddy_engine::config::parse_cores(text)
        .map(CoreSet)
        .map_err(|e| e.to_string())
}

/// How the daemon runs.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// The state folder.
    pub state_dir: PathBuf,
    /// The HTTP address (port 0: any free port, see [`Daemon::addr`]).
    pub http: SocketAddr,
    /// Default CPUs of the jobs.
    pub cores: Option<Vec<usize>>,
    /// The bearer token of mutating requests.
    pub auth_token: Option<String>,
    /// HTTP threads.
    pub http_threads: usize,
}

impl ServeArgs {
    /// The configuration these flags name (reads the token file).
    pub fn config(&self) -> Result<ServeConfig, Failure> {
        let auth_token = match &self.auth_token_file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    Failure::usage(format!("cannot read token file '{}': {e}", path.display()))
                })?;
                let token = text.lines().next().unwrap_or("").trim().to_string();
                if token.is_empty() {
                    return Err(Failure::usage(format!(
                        "token file '{}' is empty",
                        path.display()
                    )));
                }
                Some(token)
            }
            None => None,
        };
        Ok(ServeConfig {
            state_dir: self.state_dir.clone(),
            http: self.http,
            cores: self.cores.as_ref().map(|c| c.0.clone()),
            auth_token,
            http_threads: usize::from(self.http_threads),
        })
    }
}

/// What a job is built with when the daemon starts it (set it on the job's
/// [`JobConfig`] with [`JobContext::configure`]).
#[derive(Debug, Clone)]
pub struct JobContext {
    /// The job id.
    pub id: String,
    /// Where the job's checkpoints go unless its arguments name a folder.
    pub checkpoint_dir: PathBuf,
    /// Where it starts from: a savepoint, or `latest` when the daemon resumes it.
    pub restore: Option<RestoreFrom>,
    /// Where a `print:`-like sink shows its records (`GET /jobs/{id}/preview`).
    pub preview: Arc<Preview>,
    /// The daemon's default CPUs.
    pub cores: Option<Vec<usize>>,
}

impl JobContext {
    /// Applies the daemon's settings to a job's configuration: the checkpoint folder
    /// (when it has none), the restore point, the default CPUs.
    pub fn configure(&self, config: &mut JobConfig) {
        if config.checkpoint.dir.is_none() {
            config.checkpoint.dir = Some(self.checkpoint_dir.clone());
        }
        if let Some(restore) = &self.restore {
            config.checkpoint.restore = Some(restore.clone());
        }
        if config.cores.is_empty() {
            if let Some(cores) = &self.cores {
                config.cores = cores.clone();
            }
        }
    }

    fn apply(&self, job: &mut JobArgs) {
        let engine = job.engine_mut();
        if engine.checkpointing() && engine.checkpoint_dir().is_none() {
            engine.set_checkpoint_dir(self.checkpoint_dir.clone());
        }
        if let Some(restore) = &self.restore {
            engine.set_restore(Some(restore.clone()));
        }
        if let Some(cores) = &self.cores {
            engine.set_default_cores(cores);
        }
    }
}

/// Builds a job from its arguments.
pub type JobFactory =
    Arc<dyn Fn(&[String], &JobContext) -> Result<Prepared, Failure> + Send + Sync>;

/// The jobs a daemon can run, by name.
#[derive(Clone, Default)]
pub struct Registry {
    jobs: BTreeMap<String, JobFactory>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("jobs", &self.jobs.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Registry {
    /// No jobs.
    pub fn empty() -> Self {
        Registry::default()
    }

    /// The built-in jobs: `wordcount`, `copy` and `nexmark` (arguments `run --query
    /// ...`), with the arguments of `eddy run <job>` / `eddy nexmark run`.
    pub fn builtin() -> Self {
        let mut registry = Registry::empty();
        for name in ["wordcount", "copy", "nexmark"] {
            registry.register(name, move |args: &[String], context: &JobContext| {
                let mut job = parse_job(name, args).map_err(Failure::usage)?;
                context.apply(&mut job);
                prepare(
                    job,
                    &PrepareOptions {
                        preview: Some(Arc::clone(&context.preview)),
                    },
                )
            });
        }
        registry
    }

    /// Adds (or replaces) a job: `factory` builds it from the submitted arguments
    /// (return [`Failure::usage`] for bad ones: the submission gets a 400 with the
    /// message) and should call [`JobContext::configure`] on its configuration.
    pub fn register(
        &mut self,
        name: impl Into<String>,
        factory: impl Fn(&[String], &JobContext) -> Result<Prepared, Failure> + Send + Sync + 'static,
    ) -> &mut Self {
        self.jobs.insert(name.into(), Arc::new(factory));
        self
    }

    /// The jobs' names.
    pub fn names(&self) -> Vec<String> {
        self.jobs.keys().cloned().collect()
    }

    pub(crate) fn build(
        &self,
        name: &str,
        args: &[String],
        context: &JobContext,
    ) -> Result<Prepared, Failure> {
        let factory = self.jobs.get(name).ok_or_else(|| {
            Failure::usage(format!(
                "unknown job '{name}' (jobs: {})",
                self.names().join(", ")
            ))
        })?;
        factory(args, context)
    }
}

/// Why the daemon cannot run.
#[derive(Debug)]
pub struct DaemonError(pub String);

impl std::fmt::Display for DaemonError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for DaemonError {}

/// A running daemon (the leader).
pub struct Daemon {
    manager: Arc<Manager>,
    http: api::HttpServer,
    stop: Option<std::sync::mpsc::Sender<()>>,
    sampler: Option<std::thread::JoinHandle<()>>,
    _lock: state::LeaderLock,
}

impl Daemon {
    /// Takes the state folder's lock (waiting as a standby while another daemon holds
    /// it), serves HTTP, resumes the jobs that were running.
    pub fn start(config: ServeConfig, registry: Registry) -> Result<Daemon, DaemonError> {
        let state = StateDir::open(&config.state_dir).map_err(|e| DaemonError(e.to_string()))?;
        let lock = match state.try_lock().map_err(|e| DaemonError(e.to_string()))? {
            Some(lock) => lock,
            None => {
                let leader = state.read_leader().unwrap_or_default();
                tracing::warn!(
                    folder = %state.root().display(),
                    leader = %leader.trim(),
                    "standby: another daemon leads on this state folder; taking over when it ends"
                );
                eprintln!(
                    "eddy: standby: another daemon leads on '{}' ({}); waiting to take over",
                    state.root().display(),
                    leader.trim()
                );
                let lock = state.lock().map_err(|e| DaemonError(e.to_string()))?;
                tracing::warn!("standby: the leader is gone; taking over");
                lock
            }
        };
        if !config.http.ip().is_loopback() && config.auth_token.is_none() {
            tracing::warn!(
                addr = %config.http,
                "the REST API listens beyond loopback without --auth-token-file: anyone who reaches it can submit and stop jobs"
            );
        }
        let manager = Arc::new(Manager::new(state.clone(), registry, config.cores.clone()));
        let ready = Arc::new(AtomicBool::new(false));
        let http = api::HttpServer::start(
            config.http,
            config.http_threads,
            Arc::clone(&manager),
            config.auth_token.clone(),
            Arc::clone(&ready),
        )
        .map_err(DaemonError)?;
        state
            .write_leader(&format!(
                "pid {} http {}\n",
                std::process::id(),
                http.addr()
            ))
            .map_err(|e| DaemonError(e.to_string()))?;
        manager.resume_all();
        ready.store(true, Ordering::Release);
        // Dropping `stop` (shutdown) ends the sampler at once.
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let sampler = {
            let manager = Arc::clone(&manager);
            std::thread::Builder::new()
                .name("eddy-sampler".into())
                .spawn(move || {
                    while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
                        stopped.recv_timeout(Duration::from_secs(1))
                    {
                        manager.sample_all();
                    }
                })
                .map_err(|e| DaemonError(format!("cannot start the sampler: {e}")))?
        };
        tracing::info!(addr = %http.addr(), folder = %state.root().display(), "daemon serving");
        Ok(Daemon {
            manager,
            http,
            stop: Some(stop),
            sampler: Some(sampler),
            _lock: lock,
        })
    }

    /// The address the HTTP server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.http.addr()
    }

    /// Stops serving and cancels the jobs without recording it, so that the next
    /// daemon on the state folder resumes them (as after a crash, but cleanly).
    pub fn shutdown(mut self) {
        self.manager.begin_shutdown();
        self.http.stop();
        self.stop = None;
        if let Some(sampler) = self.sampler.take() {
            let _ = sampler.join();
        }
        self.manager.wait_for_jobs(Duration::from_secs(30));
    }
}

/// The CPUs of this machine that `data` leaves free: where the control plane runs.
pub fn control_cpus(data: &[usize]) -> Vec<usize> {
    let all = std::thread::available_parallelism().map_or(1, |n| n.get());
    (0..all).filter(|cpu| !data.contains(cpu)).collect()
}

/// Pins the calling thread — and the threads it starts from now on, which inherit it —
/// to `cpus`.
pub fn pin_current_thread(cpus: &[usize]) -> std::io::Result<()> {
    // SAFETY: `cpu_set_t` is a plain bit array for which all zeroes is a valid (empty)
    // value.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    for &cpu in cpus {
        if cpu >= libc::CPU_SETSIZE as usize {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("CPU {cpu} is beyond the CPU set's size"),
            ));
        }
        // SAFETY: `cpu` is below CPU_SETSIZE (checked above), so the bit is inside
        // `set`, which is a valid, exclusively borrowed cpu_set_t.
        unsafe { libc::CPU_SET(cpu, &mut set) };
    }
    // SAFETY: pid 0 is the calling thread; the pointer and size describe `set`, a
    // valid cpu_set_t that lives across the call.
    let result =
        unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) };
    if result == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// `eddy serve`: runs the daemon until SIGINT or SIGTERM.
///
/// With `--cores`, the control plane (this thread and every thread it starts: HTTP,
/// supervisors, the sampler, checkpoint coordinators) is pinned to the other CPUs, so
/// that REST clients never take time from the jobs' pinned executors.
pub fn serve_command(args: ServeArgs, registry: Registry) -> Result<(), Failure> {
    let config = args.config()?;
    if let Some(cores) = &config.cores {
        let control = control_cpus(cores);
        if control.is_empty() {
            tracing::warn!("--cores takes every CPU: the control plane shares them with the jobs");
        } else {
            match pin_current_thread(&control) {
                Ok(()) => tracing::info!(cpus = ?control, "control plane pinned"),
                Err(error) => tracing::warn!(%error, "cannot pin the control plane"),
            }
        }
    }
    let (signal, signalled) = std::sync::mpsc::channel();
    ctrlc::set_handler(move || {
        let _ = signal.send(());
    })
    .map_err(|e| Failure {
        status: 1,
        message: format!("cannot handle signals: {e}"),
    })?;
    let daemon = Daemon::start(config, registry).map_err(|e| Failure {
        status: 1,
        message: e.to_string(),
    })?;
    eprintln!("eddy: serving on http://{}", daemon.addr());
    let _ = signalled.recv();
    tracing::info!("signal: shutting down; running jobs resume with the next daemon");
    daemon.shutdown();
    Ok(())
}

/// Runs the daemon with `registry`'s jobs, configured from the process's command line
/// (`--state-dir DIR [--http ADDR] [--cores ...] [--auth-token-file F]`, as `eddy
/// serve` takes): the `main` of an application that embeds eddy and registers its own
/// jobs.
pub fn serve(registry: Registry) -> Result<(), Failure> {
    use clap::Parser;
    /// The embedding application's command line.
    #[derive(Debug, Parser)]
    struct Line {
        #[command(flatten)]
        serve: ServeArgs,
    }
    let line = Line::try_parse().map_err(|e| Failure::usage(crate::cli::one_line(&e)))?;
    serve_command(line.serve, registry)
}
