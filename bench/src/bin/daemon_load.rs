//! Load test of the daemon's REST API: N concurrent clients hammer `GET /jobs/{id}` and
//! `GET /metrics` while a job runs; reports the clients' response-time percentiles and
//! errors, and the job's throughput in the loaded window against the mean of an
//! unloaded window before and after it.
//!
//! ```sh
//! cargo build --release --bin eddy -p eddy && cargo build --release -p eddy-bench --bin daemon_load
//! taskset -c 0 target/release/daemon_load --clients 50 --seconds 30
//! taskset -c 0 target/release/daemon_load --clients 50 --seconds 10 --rounds 10   # paired windows
//! taskset -c 0 target/release/daemon_load --clients 50 --seconds 30 --load spin   # control
//! ```
//!
//! The daemon runs its job on CPU 1 (`--cores 1`), which pins its control plane to CPU
//! 0; `taskset -c 0` puts the clients there too, so the measurement shows what the
//! control plane takes from the data plane, not what 50 client threads take from a
//! 2-core machine.

// A benchmark measures wall time.
#![allow(clippy::disallowed_methods)]

use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use hdrhistogram::Histogram;
use serde_json::Value;

struct Args {
    eddy: String,
    clients: usize,
    seconds: u64,
    job_cores: String,
    /// Paths the clients ask for in turn (`{job}` is the job's path).
    paths: Vec<String>,
    /// Run the daemon under `nice -n N` (negative: ahead of the machine's other
    /// processes, as a box dedicated to eddy would run it).
    nice: Option<i32>,
    /// The control experiment: in the loaded window, busy-loop threads instead of REST
    /// clients (the same CPU taken, no request to the daemon): what a neighbour on the
    /// other CPU costs the job by itself (shared caches, memory, the host's SMT).
    spin: bool,
    /// Loaded windows, each between two unloaded ones (U L U L ... U): the job's rate
    /// drifts on a shared machine, so each loaded window is compared with its own
    /// neighbours and the median drop is reported.
    rounds: usize,
}

fn parse_args() -> Result<Args> {
    let mut args = Args {
        eddy: "target/release/eddy".into(),
        clients: 50,
        seconds: 30,
        job_cores: "1".into(),
        paths: vec!["{job}".into(), "/metrics".into()],
        nice: None,
        spin: false,
        rounds: 1,
    };
    let mut words = std::env::args().skip(1);
    while let Some(flag) = words.next() {
        let value = words
            .next()
            .with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--eddy" => args.eddy = value,
            "--clients" => args.clients = value.parse()?,
            "--seconds" => args.seconds = value.parse()?,
            "--job-cores" => args.job_cores = value,
            "--paths" => args.paths = value.split(',').map(str::to_string).collect(),
            "--nice" => args.nice = Some(value.parse()?),
            "--rounds" => args.rounds = value.parse::<usize>()?.max(1),
            "--load" => {
                args.spin = match value.as_str() {
                    "http" => false,
                    "spin" => true,
                    other => bail!("--load is http or spin, not {other}"),
                }
            }
            other => bail!("unknown flag {other}"),
        }
    }
    Ok(args)
}

struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn new_agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .new_agent()
}

fn get_json(agent: &ureq::Agent, url: &str) -> Result<Value> {
    let text = agent.get(url).call()?.body_mut().read_to_string()?;
    Ok(serde_json::from_str(&text)?)
}

/// Records out of the job so far (every vertex's write-records).
fn records_out(agent: &ureq::Agent, job_url: &str) -> Result<u64> {
    let job = get_json(agent, job_url)?;
    Ok(job["vertices"]
        .as_array()
        .context("no vertices")?
        .iter()
        .filter_map(|v| v["metrics"]["write-records"].as_u64())
        .sum())
}

/// CPU time (clock ticks) of the daemon's executor threads (`eddy-core-*`) so far.
fn executor_ticks(pid: u32) -> u64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    tasks
        .filter_map(Result::ok)
        .filter(|task| {
            std::fs::read_to_string(task.path().join("comm"))
                .is_ok_and(|comm| comm.starts_with("eddy-core"))
        })
        .filter_map(|task| std::fs::read_to_string(task.path().join("stat")).ok())
        .map(|stat| {
            // Fields after the parenthesised name: utime and stime are the 12th and
            // 13th of them.
            let rest = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
            let fields: Vec<&str> = rest.split_whitespace().collect();
            let field = |i: usize| {
                fields
                    .get(i)
                    .and_then(|v| v.parse::<u64>().ok())
                    .unwrap_or(0)
            };
            field(11) + field(12)
        })
        .sum()
}

/// Busy clock ticks of CPU `cpu` so far (user, nice, system, irq, softirq, steal from
/// `/proc/stat`): whoever ran there.
fn cpu_busy_ticks(cpu: usize) -> u64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let name = format!("cpu{cpu}");
    stat.lines()
        .find(|line| line.split_whitespace().next() == Some(name.as_str()))
        .map(|line| {
            let fields: Vec<u64> = line
                .split_whitespace()
                .skip(1)
                .filter_map(|v| v.parse().ok())
                .collect();
            // user nice system idle iowait irq softirq steal
            [0, 1, 2, 5, 6, 7]
                .iter()
                .filter_map(|&i| fields.get(i))
                .sum()
        })
        .unwrap_or(0)
}

/// One measured window: the job's records per second, the share of a CPU its
/// executors got, and the share of the job's CPU that anything else took (kernel
/// threads, other processes).
struct Window {
    rate: f64,
    cpu_share: f64,
    others_share: f64,
}

/// Clock ticks per second (`getconf CLK_TCK`, 100 when unknown).
fn ticks_per_second() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .and_then(|text| text.trim().parse().ok())
        .unwrap_or(100.0)
}

/// The job's records per second over `window`, from two reads.
fn throughput(
    agent: &ureq::Agent,
    job_url: &str,
    window: Duration,
    pid: u32,
    job_cpu: usize,
) -> Result<Window> {
    let (start, before, ticks, busy) = (
        Instant::now(),
        records_out(agent, job_url)?,
        executor_ticks(pid),
        cpu_busy_ticks(job_cpu),
    );
    let (_keep, never) = std::sync::mpsc::channel::<()>();
    let _ = never.recv_timeout(window);
    let after = records_out(agent, job_url)?;
    let seconds = start.elapsed().as_secs_f64();
    let executor = executor_ticks(pid) - ticks;
    let others = (cpu_busy_ticks(job_cpu) - busy).saturating_sub(executor);
    Ok(Window {
        rate: (after - before) as f64 / seconds,
        cpu_share: executor as f64 / ticks_per_second() / seconds,
        others_share: others as f64 / ticks_per_second() / seconds,
    })
}

fn main() -> Result<()> {
    let args = parse_args()?;
    let state = tempfile::tempdir()?;
    let log = state.path().join("daemon.log");
    let mut command = match args.nice {
        Some(nice) => {
            let mut command = Command::new("nice");
            command.args(["-n", &nice.to_string(), &args.eddy]);
            command
        }
        None => Command::new(&args.eddy),
    };
    let daemon = KillOnDrop(
        command
            .args(["serve", "--http", "127.0.0.1:0", "--cores", &args.job_cores])
            .arg("--state-dir")
            .arg(state.path().join("state"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log)?)
            .spawn()
            .with_context(|| format!("cannot start {}", args.eddy))?,
    );
    let pid = daemon.0.id();
    let deadline = Instant::now() + Duration::from_secs(30);
    let base = loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if let Some(url) = text.lines().find_map(|l| l.split("serving on ").nth(1)) {
            break url.trim().to_string();
        }
        if Instant::now() > deadline {
            bail!("the daemon did not start: {text}");
        }
        std::thread::park_timeout(Duration::from_millis(10));
    };
    let agent = new_agent();
    let body = serde_json::json!({"job": "copy", "args": [
        "--source", "nexmark://?events=100000000000", "--sink", "blackhole:", "--parallelism", "1"]});
    let answer: Value = serde_json::from_str(
        &agent
            .post(&format!("{base}/jobs"))
            .send(body.to_string())?
            .body_mut()
            .read_to_string()?,
    )?;
    let id = answer["id"].as_str().context("no job id")?.to_string();
    let job_url = format!("{base}/jobs/{id}");
    // The CPU whose other users the windows count (the first of the job's cores).
    let job_cpu: usize = args
        .job_cores
        .split([',', '-'])
        .next()
        .and_then(|c| c.trim().parse().ok())
        .context("--job-cores must start with a CPU number")?;
    let window = Duration::from_secs(args.seconds);
    // Warm-up, then unloaded and loaded windows in turn.
    throughput(&agent, &job_url, Duration::from_secs(3), pid, job_cpu)?;
    let stop = Arc::new(AtomicBool::new(false));
    let active = Arc::new(AtomicBool::new(false));
    let errors = Arc::new(AtomicU64::new(0));
    let spin = args.spin;
    let clients: Vec<_> = (0..args.clients)
        .map(|n| {
            let (stop, active, errors) =
                (Arc::clone(&stop), Arc::clone(&active), Arc::clone(&errors));
            let urls: Vec<String> = args
                .paths
                .iter()
                .map(|path| match path.as_str() {
                    "{job}" => job_url.clone(),
                    other => format!("{base}{other}"),
                })
                .collect();
            std::thread::spawn(move || {
                let mut histogram = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
                let agent = new_agent();
                let (mut i, mut x) = (n, n as u64 | 1);
                while !stop.load(Ordering::Relaxed) {
                    if !active.load(Ordering::Relaxed) {
                        std::thread::park_timeout(Duration::from_millis(5));
                        continue;
                    }
                    if spin {
                        for _ in 0..10_000 {
                            x = std::hint::black_box(
                                x.wrapping_mul(6364136223846793005).wrapping_add(1),
                            );
                        }
                        continue;
                    }
                    let url = &urls[i % urls.len()];
                    i += 1;
                    let started = Instant::now();
                    let ok = match agent.get(url).call() {
                        Ok(mut response) => {
                            response.status().as_u16() == 200
                                && response.body_mut().read_to_string().is_ok()
                        }
                        Err(_) => false,
                    };
                    if ok {
                        histogram.saturating_record(started.elapsed().as_micros() as u64);
                    } else {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
                histogram
            })
        })
        .collect();
    let mut unloaded = vec![throughput(&agent, &job_url, window, pid, job_cpu)?];
    let mut loaded = Vec::new();
    for _ in 0..args.rounds {
        active.store(true, Ordering::Relaxed);
        loaded.push(throughput(&agent, &job_url, window, pid, job_cpu)?);
        active.store(false, Ordering::Relaxed);
        unloaded.push(throughput(&agent, &job_url, window, pid, job_cpu)?);
    }
    stop.store(true, Ordering::Relaxed);
    // A job that ended under load is a finding, not a figure: say why and keep the log.
    let state = get_json(&agent, &job_url)?["state"]
        .as_str()
        .unwrap_or("?")
        .to_string();
    if state != "RUNNING" {
        let exceptions = get_json(&agent, &format!("{job_url}/exceptions"))?;
        let kept = std::env::temp_dir().join(format!("daemon_load-{}.log", std::process::id()));
        let _ = std::fs::copy(&log, &kept);
        bail!(
            "the job is {state}, not RUNNING: {exceptions}; daemon log kept in {}",
            kept.display()
        );
    }
    let mut latency = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    for client in clients {
        latency.add(client.join().expect("a client thread"))?;
    }
    // Each loaded window against the mean of its two unloaded neighbours. Records per
    // second of executor CPU show what the job does with the CPU it gets: a drop there
    // is work the control plane takes from the data path; a drop of the rate alone is
    // CPU time others took from the job's core.
    let per_cpu = |w: &Window| {
        if w.cpu_share > 0.0 {
            w.rate / w.cpu_share
        } else {
            0.0
        }
    };
    let mut drops = Vec::new();
    let mut per_cpu_drops = Vec::new();
    for (k, l) in loaded.iter().enumerate() {
        let (a, b) = (&unloaded[k], &unloaded[k + 1]);
        drops.push((1.0 - l.rate / ((a.rate + b.rate) / 2.0)) * 100.0);
        per_cpu_drops.push((1.0 - per_cpu(l) / ((per_cpu(a) + per_cpu(b)) / 2.0)) * 100.0);
    }
    let median = |values: &[f64]| {
        let mut sorted = values.to_vec();
        sorted.sort_by(f64::total_cmp);
        sorted[sorted.len() / 2]
    };
    let list = |values: Vec<f64>, digits: usize| {
        values
            .iter()
            .map(|v| format!("{v:.digits$}"))
            .collect::<Vec<_>>()
            .join(",")
    };
    println!(
        "{{\"clients\":{},\"load\":\"{}\",\"seconds\":{},\"rounds\":{},\"requests\":{},\"errors\":{},\"rps\":{:.0},\"latency_ms\":{{\"p50\":{:.2},\"p99\":{:.2},\"p999\":{:.2},\"max\":{:.2}}},\"throughput_drop_pct_median\":{:.2},\"per_cpu_drop_pct_median\":{:.2},\"throughput_drop_pct\":[{}],\"job_rate_unloaded\":[{}],\"job_rate_loaded\":[{}],\"executor_cpu_unloaded\":[{}],\"executor_cpu_loaded\":[{}],\"others_on_job_cpu_loaded\":[{}]}}",
        args.clients,
        if spin { "spin" } else { "http" },
        args.seconds,
        args.rounds,
        latency.len(),
        errors.load(Ordering::Relaxed),
        latency.len() as f64 / (window.as_secs_f64() * args.rounds as f64),
        latency.value_at_quantile(0.5) as f64 / 1000.0,
        latency.value_at_quantile(0.99) as f64 / 1000.0,
        latency.value_at_quantile(0.999) as f64 / 1000.0,
        latency.max() as f64 / 1000.0,
        median(&drops),
        median(&per_cpu_drops),
        list(drops, 1),
        list(unloaded.iter().map(|w| w.rate).collect(), 0),
        list(loaded.iter().map(|w| w.rate).collect(), 0),
        list(unloaded.iter().map(|w| w.cpu_share).collect(), 3),
        list(loaded.iter().map(|w| w.cpu_share).collect(), 3),
        list(loaded.iter().map(|w| w.others_share).collect(), 3),
    );
    Ok(())
}
