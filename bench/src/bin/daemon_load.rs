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
}

fn parse_args() -> Result<Args> {
    let mut args = Args {
        eddy: "target/release/eddy".into(),
        clients: 50,
        seconds: 30,
        job_cores: "1".into(),
        paths: vec!["{job}".into(), "/metrics".into()],
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

/// The job's records per second over `window`, from two reads.
fn throughput(agent: &ureq::Agent, job_url: &str, window: Duration) -> Result<f64> {
    let (start, before) = (Instant::now(), records_out(agent, job_url)?);
    let (_keep, never) = std::sync::mpsc::channel::<()>();
    let _ = never.recv_timeout(window);
    let after = records_out(agent, job_url)?;
    Ok((after - before) as f64 / start.elapsed().as_secs_f64())
}

fn main() -> Result<()> {
    let args = parse_args()?;
    let state = tempfile::tempdir()?;
    let log = state.path().join("daemon.log");
    let _daemon = KillOnDrop(
        Command::new(&args.eddy)
            .args(["serve", "--http", "127.0.0.1:0", "--cores", &args.job_cores])
            .arg("--state-dir")
            .arg(state.path().join("state"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log)?)
            .spawn()
            .with_context(|| format!("cannot start {}", args.eddy))?,
    );
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
    throughput(&agent, &job_url, Duration::from_secs(3))?;
    let before = throughput(&agent, &job_url, window)?;

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
    let loaded = throughput(&agent, &job_url, window)?;
    stop.store(true, Ordering::Relaxed);
    let mut latency = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    for client in clients {
        latency.add(client.join().expect("a client thread"))?;
    }
    let after = throughput(&agent, &job_url, window)?;
    let unloaded = (before + after) / 2.0;
    let drop_pct = (1.0 - loaded / unloaded) * 100.0;
    println!(
        "{{\"clients\":{},\"seconds\":{},\"requests\":{},\"errors\":{},\"rps\":{:.0},\"latency_ms\":{{\"p50\":{:.2},\"p99\":{:.2},\"p999\":{:.2},\"max\":{:.2}}},\"job_rate_before\":{:.0},\"job_rate_loaded\":{:.0},\"job_rate_after\":{:.0},\"throughput_drop_pct\":{:.2}}}",
        args.clients,
        args.seconds,
        latency.len(),
        errors.load(Ordering::Relaxed),
        latency.len() as f64 / window.as_secs_f64(),
        latency.value_at_quantile(0.5) as f64 / 1000.0,
        latency.value_at_quantile(0.99) as f64 / 1000.0,
        latency.value_at_quantile(0.999) as f64 / 1000.0,
        latency.max() as f64 / 1000.0,
        before,
        loaded,
        after,
        drop_pct
    );
    Ok(())
}
