//! End-to-end latency by `buffer.timeout`: p50 / p99 / p99.9 at a fixed input rate.
//!
//! Pipeline: `push_source → map → key_by(seq mod 64) → process (per-key count) →
//! collect_handle`, run on `--job-cores` (default core 0, parallelism 1: the source
//! chain and the keyed chain are two tasks on one executor linked by a ring). A driver
//! thread pinned to `--driver-core` (default 1) pushes records at `--rate` records/s;
//! each record carries its *scheduled* send time, so a late send counts as latency
//! (no coordinated omission). The same thread takes the results from the result
//! handle (`try_recv`, never parking) and records `now − scheduled` in an hdrhistogram.
//! The first `--warmup` of every run is left out.
//!
//! ```text
//! cargo run --release -p eddy-bench --bin latency -- \
//!     [--rate 100000] [--seconds 5] [--warmup 1s] [--timeouts 0,100us,10ms] \
//!     [--buffer-size 1024] [--job-cores 0] [--driver-core 1] [--repeat 1] [--reactor-poll 100ms] [--idle-spin 200us]
//! ```
//!
//! Prints a table and writes `target/eddy-bench/latency.csv` and `latency.json`
//! (one row per run), which `--bin chart` turns into `docs/latency.svg`.

use std::fmt::Write as _;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use eddy_bench::{job_config, pinned, results_dir};
use eddy_engine::clock::{Clock, SystemClock};
use eddy_engine::config::{parse_cores, parse_duration};
use eddy_engine::prelude::*;
use hdrhistogram::Histogram;

/// A record: sequence number and scheduled send time (ns since the run's origin).
type Request = (u64, u64);

/// Settings of the runner.
#[derive(Debug, Clone)]
struct Settings {
    rate: u64,
    seconds: u64,
    warmup: Duration,
    timeouts: Vec<Duration>,
    buffer_size: usize,
    job_cores: Vec<usize>,
    driver_core: usize,
    repeat: usize,
    reactor_poll: Duration,
    idle_spin: Option<Duration>,
}

impl Settings {
    fn parse(mut args: impl Iterator<Item = String>) -> Result<Settings> {
        let mut settings = Settings {
            rate: 100_000,
            seconds: 5,
            warmup: Duration::from_secs(1),
            timeouts: vec![
                Duration::ZERO,
                Duration::from_micros(100),
                Duration::from_millis(10),
            ],
            buffer_size: 1024,
            job_cores: vec![0],
            driver_core: 1,
            repeat: 1,
            reactor_poll: eddy_engine::config::IdleConfig::default().reactor_poll,
            idle_spin: None,
        };
        while let Some(flag) = args.next() {
            let value = args
                .next()
                .with_context(|| format!("{flag} needs a value"))?;
            match flag.as_str() {
                "--rate" => settings.rate = value.parse()?,
                "--seconds" => settings.seconds = value.parse()?,
                "--warmup" => settings.warmup = parse_duration(&value)?,
                "--timeouts" => {
                    settings.timeouts = value
                        .split(',')
                        .map(parse_duration)
                        .collect::<Result<_, _>>()?
                }
                "--buffer-size" => settings.buffer_size = value.parse()?,
                "--job-cores" => settings.job_cores = parse_cores(&value)?,
                "--driver-core" => settings.driver_core = value.parse()?,
                "--repeat" => settings.repeat = value.parse()?,
                "--reactor-poll" => settings.reactor_poll = parse_duration(&value)?,
                "--idle-spin" => settings.idle_spin = Some(parse_duration(&value)?),
                _ => bail!("unknown flag {flag}"),
            }
        }
        if settings.rate == 0 || settings.seconds == 0 {
            bail!("--rate and --seconds must be positive");
        }
        Ok(settings)
    }
}

/// What one run measured.
#[derive(Debug, Clone)]
struct Row {
    timeout: Duration,
    buffer_size: usize,
    rate: u64,
    records: u64,
    p50_us: f64,
    p99_us: f64,
    p999_us: f64,
    max_us: f64,
}

/// Counts results and records their latency (after the warm-up).
struct Recorder {
    histogram: Histogram<u64>,
    received: u64,
    warmup_records: u64,
}

impl Recorder {
    fn record(&mut self, (seq, scheduled): Request, now_nanos: u64) {
        self.received += 1;
        if seq >= self.warmup_records {
            self.histogram
                .saturating_record(now_nanos.saturating_sub(scheduled).max(1));
        }
    }
}

fn run(settings: &Settings, timeout: Duration) -> Result<Row> {
    let buffer = BufferConfig {
        size: settings.buffer_size,
        timeout,
        ..BufferConfig::default()
    };
    let mut config = job_config("bench-latency", &settings.job_cores, buffer);
    config.idle.reactor_poll = settings.reactor_poll;
    if let Some(spin) = settings.idle_spin {
        config.idle.spin = spin;
    }
    let env = Env::new(config);
    let (mut input, requests) = env.push_source::<Request>(4096);
    let mut output = requests
        .map(|(seq, sent): Request| (seq, sent))
        .key_by(|(seq, _): &Request| seq % 64)
        .process(
            |request: Request,
             context: &mut KeyedContext<'_, u64, u64>,
             out: &mut Collector<'_, Request>| {
                *context.state() += 1;
                out.collect(request);
            },
        )
        .collect_handle(1 << 16);
    let job = env.execute_async()?;

    let total = settings.rate * settings.seconds;
    let warmup_records = (settings.warmup.as_secs_f64() * settings.rate as f64) as u64;
    let interval_nanos = 1e9 / settings.rate as f64;
    let driver = pinned(settings.driver_core, "latency-driver", move || {
        let clock = SystemClock;
        let mut recorder = Recorder {
            histogram: Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3)
                .expect("valid histogram bounds"),
            received: 0,
            warmup_records,
        };
        let origin = clock.now();
        let nanos = |clock: &SystemClock| clock.now().duration_since(origin).as_nanos() as u64;
        for seq in 0..total {
            let scheduled = (seq as f64 * interval_nanos) as u64;
            // Until it is time to send, take results.
            loop {
                let now = nanos(&clock);
                while let Ok(result) = output.try_recv() {
                    recorder.record(result, nanos(&clock));
                }
                if now >= scheduled {
                    break;
                }
                std::hint::spin_loop();
            }
            if input.push((seq, scheduled)).is_err() {
                break;
            }
        }
        // The rest, with a deadline (a stuck pipeline must not hang the runner).
        let deadline = nanos(&clock) + 30_000_000_000;
        let mut done = 0u64;
        while done + recorder.received < total && nanos(&clock) < deadline {
            match output.try_recv() {
                Ok(result) => recorder.record(result, nanos(&clock)),
                Err(RecvError::Empty) => std::hint::spin_loop(),
                Err(RecvError::Ended) => done = total,
            }
        }
        drop(input);
        (recorder.histogram, recorder.received)
    });
    let (histogram, received) = driver.join();
    job.cancel();
    job.join()?;
    if received != total {
        bail!("received {received} of {total} records");
    }
    let us = |q: f64| histogram.value_at_quantile(q) as f64 / 1000.0;
    Ok(Row {
        timeout,
        buffer_size: settings.buffer_size,
        rate: settings.rate,
        records: histogram.len(),
        p50_us: us(0.5),
        p99_us: us(0.99),
        p999_us: us(0.999),
        max_us: histogram.max() as f64 / 1000.0,
    })
}

fn main() -> Result<()> {
    let settings = Settings::parse(std::env::args().skip(1))?;
    println!(
        "latency at {} records/s, buffer.size {}, job cores {:?}, driver core {}, {} s per run",
        settings.rate,
        settings.buffer_size,
        settings.job_cores,
        settings.driver_core,
        settings.seconds
    );
    println!(
        "{:>14} {:>4} {:>10} {:>10} {:>10} {:>10}",
        "buffer.timeout", "run", "p50 µs", "p99 µs", "p99.9 µs", "max µs"
    );
    let mut rows = Vec::new();
    for repeat in 0..settings.repeat {
        for &timeout in &settings.timeouts {
            let row = run(&settings, timeout)?;
            println!(
                "{:>14} {:>4} {:>10.1} {:>10.1} {:>10.1} {:>10.1}",
                format!("{timeout:?}"),
                repeat + 1,
                row.p50_us,
                row.p99_us,
                row.p999_us,
                row.max_us
            );
            rows.push(row);
        }
    }

    let dir = results_dir()?;
    let mut csv = String::from(
        "buffer_timeout_us,buffer_size,rate_per_s,records,p50_us,p99_us,p999_us,max_us\n",
    );
    let mut json = String::from("[\n");
    for (index, row) in rows.iter().enumerate() {
        let timeout_us = row.timeout.as_secs_f64() * 1e6;
        writeln!(
            csv,
            "{timeout_us},{},{},{},{:.2},{:.2},{:.2},{:.2}",
            row.buffer_size, row.rate, row.records, row.p50_us, row.p99_us, row.p999_us, row.max_us
        )?;
        writeln!(
            json,
            "  {{\"buffer_timeout_us\": {timeout_us}, \"buffer_size\": {}, \"rate_per_s\": {}, \
             \"records\": {}, \"p50_us\": {:.2}, \"p99_us\": {:.2}, \"p999_us\": {:.2}, \
             \"max_us\": {:.2}}}{}",
            row.buffer_size,
            row.rate,
            row.records,
            row.p50_us,
            row.p99_us,
            row.p999_us,
            row.max_us,
            if index + 1 < rows.len() { "," } else { "" }
        )?;
    }
    json.push_str("]\n");
    std::fs::write(dir.join("latency.csv"), csv)?;
    std::fs::write(dir.join("latency.json"), json)?;
    println!("wrote {}", dir.join("latency.csv").display());
    Ok(())
}
