//! Load test of the daemon's REST API: N concurrent clients hammer `GET /jobs/{id}` and
//! `GET /metrics` while a job runs; reports the clients' response-time percentiles and
//! errors, and the job's throughput in the loaded window against the mean of an
//! unloaded window before and after it.
//!
//! ```sh
//! cargo build --release --bin eddy -p eddy && cargo build --release -p eddy-bench --bin daemon_load
//! taskset -c 0 target/release/daemon_load --clients 50 --seconds 30
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
}

fn parse_args() -> Result<Args> {
    let mut args = Args {
        eddy: "target/release/eddy".into(),
        clients: 50,
        seconds: 30,
        job_cores: "1".into(),
        paths: vec!["{job}".into(), "/metrics".into()],
        nice: None,
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

/// One measured window: the job's records per second, and the share of a CPU its
/// executors got.
struct Window {
    rate: f64,
    cpu_share: f64,
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
fn throughput(agent: &ureq::Agent, job_url: &str, window: Duration, pid: u32) -> Result<Window> {
    let (start, before, ticks) = (
        Instant::now(),
        records_out(agent, job_url)?,
        executor_ticks(pid),
    );
    let (_keep, never) = std::sync::mpsc::channel::<()>();
    let _ = never.recv_timeout(window);
    let after = records_out(agent, job_url)?;
    let seconds = start.elapsed().as_secs_f64();
    Ok(Window {
        rate: (after - before) as f64 / seconds,
        cpu_share: (executor_ticks(pid) - ticks) as f64 / ticks_per_second() / seconds,
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
    let window = Duration::from_secs(args.seconds);
    // Warm-up, then an unloaded window.
    throughput(&agent, &job_url, Duration::from_secs(3), pid)?;
    let before = throughput(&agent, &job_url, window, pid)?;

    let stop = Arc::new(AtomicBool::new(false));
    let errors = Arc::new(AtomicU64::new(0));
    let clients: Vec<_> = (0..args.clients)
        .map(|n| {
            let (stop, errors) = (Arc::clone(&stop), Arc::clone(&errors));
            let urls: Vec<String> = args
                .paths
                .iter()
                .map(|path| match path.as_str() {
                    "{job}" => job_url.clone(),
                    other => format!("{base}{other}"),
                })
                .collect();
            std::thread::spawn(move || {
                let agent = new_agent();
                let mut histogram = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
                let mut i = n;
                while !stop.load(Ordering::Relaxed) {
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
    let loaded = throughput(&agent, &job_url, window, pid)?;
    stop.store(true, Ordering::Relaxed);
    let mut latency = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    for client in clients {
        latency.add(client.join().expect("a client thread"))?;
    }
    let after = throughput(&agent, &job_url, window, pid)?;
    let unloaded = (before.rate + after.rate) / 2.0;
    let drop_pct = (1.0 - loaded.rate / unloaded) * 100.0;
    // Records per second of executor CPU: what the job does with the CPU it gets. A
    // drop here is work the control plane takes from the data path; a drop of the rate
    // alone is CPU time other processes took from the job's core.
    let per_cpu = |w: &Window| {
        if w.cpu_share > 0.0 {
            w.rate / w.cpu_share
        } else {
            0.0
        }
    };
    let unloaded_per_cpu = (per_cpu(&before) + per_cpu(&after)) / 2.0;
    let per_cpu_drop_pct = (1.0 - per_cpu(&loaded) / unloaded_per_cpu) * 100.0;
    println!(
        "{{\"clients\":{},\"seconds\":{},\"requests\":{},\"errors\":{},\"rps\":{:.0},\"latency_ms\":{{\"p50\":{:.2},\"p99\":{:.2},\"p999\":{:.2},\"max\":{:.2}}},\"job_rate_before\":{:.0},\"job_rate_loaded\":{:.0},\"job_rate_after\":{:.0},\"throughput_drop_pct\":{:.2},\"executor_cpu_before\":{:.3},\"executor_cpu_loaded\":{:.3},\"executor_cpu_after\":{:.3},\"per_cpu_drop_pct\":{:.2}}}",
        args.clients,
        args.seconds,
        latency.len(),
        errors.load(Ordering::Relaxed),
        latency.len() as f64 / window.as_secs_f64(),
        latency.value_at_quantile(0.5) as f64 / 1000.0,
        latency.value_at_quantile(0.99) as f64 / 1000.0,
        latency.value_at_quantile(0.999) as f64 / 1000.0,
        latency.max() as f64 / 1000.0,
        before.rate,
        loaded.rate,
        after.rate,
        drop_pct,
        before.cpu_share,
        loaded.cpu_share,
        after.cpu_share,
        per_cpu_drop_pct
    );
    Ok(())
}
