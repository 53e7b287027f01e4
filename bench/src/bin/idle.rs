//! Idle cost: the CPU an unbounded job with no input uses.
//!
//! Starts `push_source → map → key_by → process → collect_handle` on `--cores`
//! (default 0,1; parallelism = number of cores), pushes nothing, lets the tasks reach
//! their longest park period (`--settle`, default 1 s), then measures the process's CPU
//! time (all threads, `/proc/self/task/*/schedstat`) over `--seconds` (default 3) while
//! this thread waits parked. Prints the CPU share in percent of one core, `--repeat`
//! times, and writes `target/eddy-bench/idle.csv`.
//!
//! `cargo run --release -p eddy-bench --bin idle -- [--cores 0,1] [--seconds 3] [--repeat 3]`

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use eddy_bench::{cpu_time, job_config, results_dir};
use eddy_engine::clock::{Clock, SystemClock};
use eddy_engine::config::{parse_cores, parse_duration};
use eddy_engine::prelude::*;

/// Parks this thread until `deadline` (a park may wake early: loop on the condition).
fn park_until(deadline: Instant) {
    loop {
        let now = SystemClock.now();
        if now >= deadline {
            return;
        }
        std::thread::park_timeout(deadline - now);
    }
}

/// CPU share of one core used by an idle job over `measure`, after `settle`.
fn measure_once(cores: &[usize], settle: Duration, measure: Duration) -> Result<f64> {
    let env = Env::new(job_config("bench-idle", cores, BufferConfig::default()));
    let (input, stream) = env.push_source::<u64>(1024);
    let output = stream
        .map(|x: u64| x + 1)
        .key_by(|x: &u64| *x)
        .process(
            |x: u64, _: &mut KeyedContext<'_, u64, ()>, out: &mut Collector<'_, u64>| {
                out.collect(x)
            },
        )
        .collect_handle(1024);
    let job = env.execute_async()?;
    park_until(SystemClock.now() + settle);
    let (cpu_before, wall_before) = (cpu_time()?, SystemClock.now());
    park_until(wall_before + measure);
    let (cpu_after, wall_after) = (cpu_time()?, SystemClock.now());
    drop(input);
    drop(output);
    job.cancel();
    job.join()?;
    let cpu = cpu_after.saturating_sub(cpu_before).as_secs_f64();
    let wall = wall_after
        .saturating_duration_since(wall_before)
        .as_secs_f64();
    Ok(100.0 * cpu / wall)
}

fn main() -> Result<()> {
    let mut cores = vec![0, 1];
    let mut seconds = 3u64;
    let mut settle = Duration::from_secs(1);
    let mut repeat = 3usize;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args
            .next()
            .with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--cores" => cores = parse_cores(&value)?,
            "--seconds" => seconds = value.parse()?,
            "--settle" => settle = parse_duration(&value)?,
            "--repeat" => repeat = value.parse()?,
            _ => bail!("unknown flag {flag}"),
        }
    }
    println!(
        "idle job on cores {cores:?}: CPU share of one core over {seconds} s (after {settle:?})"
    );
    let mut csv = String::from("run,cores,seconds,cpu_percent_of_one_core\n");
    let mut shares = Vec::new();
    for run in 1..=repeat {
        let share = measure_once(&cores, settle, Duration::from_secs(seconds))?;
        println!("run {run}: {share:.3} %");
        writeln!(csv, "{run},{},{seconds},{share:.4}", cores.len())?;
        shares.push(share);
    }
    shares.sort_by(f64::total_cmp);
    println!("median: {:.3} %", shares[shares.len() / 2]);
    let path = results_dir()?.join("idle.csv");
    std::fs::write(&path, csv)?;
    println!("wrote {}", path.display());
    Ok(())
}
