//! Checkpoint costs, measured on real jobs:
//!
//! 1. **Snapshot write** of `--state-mb` MB of keyed state (a `process` operator holding
//!    one string of `--value-bytes` per key, parallelism 2): the time from
//!    `trigger_savepoint` to its `_metadata`, which includes the copy at the barrier,
//!    the framing and the fsynced writes. Compared with the disk's own sequential write
//!    speed, measured here too (a file of the same size written in 1 MiB blocks and
//!    fsynced).
//! 2. **Restore** of that savepoint: a job with the same operators and an empty source,
//!    started from the savepoint (maps and validates every file, rebuilds the hash
//!    maps), minus the same job started without one.
//! 3. **Running cost** of checkpointing every second: a keyed rolling sum over
//!    `--records` records and `--keys` keys, with `--checkpointing none` and
//!    `exactly-once` at a 1 s interval, alternated `--repeat` times; medians.
//!
//! `cargo run --release -p eddy-bench --bin checkpoint -- [--state-mb 100]
//!  [--value-bytes 1000] [--records 50000000] [--keys 1000000] [--repeat 3] [--dir D]`

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use eddy_engine::clock::{Clock, SystemClock};
use eddy_engine::prelude::*;

struct Args {
    state_mb: u64,
    value_bytes: usize,
    records: u64,
    keys: u64,
    repeat: usize,
    dir: PathBuf,
}

fn parse_args() -> Result<Args> {
    let mut args = Args {
        state_mb: 100,
        value_bytes: 1000,
        records: 50_000_000,
        keys: 1_000_000,
        repeat: 3,
        dir: std::env::temp_dir().join("eddy-bench-checkpoint"),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--state-mb" => args.state_mb = value.parse()?,
            "--value-bytes" => args.value_bytes = value.parse()?,
            "--records" => args.records = value.parse()?,
            "--keys" => args.keys = value.parse()?,
            "--repeat" => args.repeat = value.parse()?,
            "--dir" => args.dir = PathBuf::from(value),
            _ => bail!("unknown flag {flag}"),
        }
    }
    Ok(args)
}

fn config(name: &str) -> JobConfig {
    JobConfig {
        name: name.into(),
        parallelism: Some(2),
        ..JobConfig::default()
    }
}

/// A source emitting `0..count` and then, if `linger`, nothing until cancelled.
#[derive(Clone)]
struct Numbers {
    next: u64,
    count: u64,
    linger: bool,
}

impl Source<u64> for Numbers {
    fn poll_next(
        &mut self,
        out: &mut SourceOutput<'_, u64>,
    ) -> Result<SourceStatus, ConnectorError> {
        while out.remaining() > 0 && self.next < self.count {
            out.emit(self.next);
            self.next += 1;
        }
        Ok(if self.next < self.count {
            SourceStatus::Ready
        } else if self.linger {
            SourceStatus::Idle
        } else {
            SourceStatus::Finished
        })
    }

    fn snapshot_position(&mut self) -> Result<Option<Vec<u8>>, ConnectorError> {
        Ok(Some(self.next.to_le_bytes().to_vec()))
    }

    fn restore_position(
        &mut self,
        _subtask: &SubtaskInfo,
        _positions: &[(u32, &[u8])],
        _old_parallelism: u32,
    ) -> Result<(), ConnectorError> {
        Ok(())
    }
}

/// keys → a string of `value_bytes` per key, filled from `count` records. (A string,
/// not a `Vec<u8>`: serde writes a `Vec<u8>` element by element, a string at once.)
fn state_job(env: &Env, count: u64, value_bytes: usize, linger: bool) {
    env.add_source(
        "numbers",
        Numbers {
            next: 0,
            count,
            linger,
        },
        Boundedness::Unbounded,
    )
    .set_parallelism(1)
    .uid("numbers")
    .key_by(|n: &u64| *n)
    .process(
        move |n: u64, ctx: &mut KeyedContext<'_, u64, String>, _out: &mut Collector<'_, u64>| {
            let state = ctx.state();
            let letter = char::from(b'a' + (n % 26) as u8);
            state.extend(std::iter::repeat_n(letter, value_bytes));
        },
    )
    .uid("state")
    .sink_fn(|_| {});
}

fn folder_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok()?.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

fn disk_write_gbps(dir: &Path, bytes: u64) -> Result<f64> {
    use std::io::Write;
    let path = dir.join("disk-speed.bin");
    let block = vec![7u8; 1 << 20];
    let started = SystemClock.now();
    let mut file = std::fs::File::create(&path)?;
    let mut written = 0;
    while written < bytes {
        file.write_all(&block)?;
        written += block.len() as u64;
    }
    file.sync_all()?;
    let secs = SystemClock.now().duration_since(started).as_secs_f64();
    std::fs::remove_file(&path)?;
    Ok(written as f64 / secs / 1e9)
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn main() -> Result<()> {
    let args = parse_args()?;
    let _ = std::fs::remove_dir_all(&args.dir);
    std::fs::create_dir_all(&args.dir)?;
    let keys = args.state_mb * 1_000_000 / args.value_bytes as u64;

    // 1. Snapshot write.
    let savepoint = args.dir.join("savepoint");
    let env = Env::new(config("state"));
    state_job(&env, keys, args.value_bytes, true);
    let handle = env.execute_async()?;
    // Wait until every key holds its value: the source lingers once done.
    let settle = SystemClock.now();
    while handle
        .metrics()
        .links
        .iter()
        .filter(|l| l.name.starts_with("numbers"))
        .map(|l| l.records)
        .sum::<u64>()
        < keys
    {
        if SystemClock.now().duration_since(settle) > Duration::from_secs(600) {
            bail!("the state did not fill up");
        }
        std::thread::yield_now();
    }
    let started = SystemClock.now();
    handle.trigger_savepoint(&savepoint)?;
    let write_s = SystemClock.now().duration_since(started).as_secs_f64();
    handle.cancel();
    handle.join()?;
    let bytes = folder_bytes(&savepoint);
    let disk = disk_write_gbps(&args.dir, bytes)?;
    println!(
        "snapshot: {keys} keys, {:.1} MB written in {write_s:.3} s = {:.2} GB/s (disk sequential write with fsync: {disk:.2} GB/s)",
        bytes as f64 / 1e6,
        bytes as f64 / write_s / 1e9
    );

    // 2. Restore.
    let run = |restore: Option<PathBuf>| -> Result<f64> {
        let mut config = config("state");
        config.checkpoint.restore = restore.map(RestoreFrom::Path);
        let env = Env::new(config);
        state_job(&env, 0, args.value_bytes, false);
        let started: Instant = SystemClock.now();
        env.execute()?;
        Ok(SystemClock.now().duration_since(started).as_secs_f64())
    };
    let mut restores = Vec::new();
    for _ in 0..args.repeat {
        let base = run(None)?;
        let restored = run(Some(savepoint.clone()))?;
        restores.push(restored - base);
    }
    println!(
        "restore: {:.1} MB in {:.3} s (median of {}; job start-up subtracted)",
        bytes as f64 / 1e6,
        median(restores),
        args.repeat
    );

    // 3. Running cost of checkpoints every second.
    let sums = |checkpoints: bool| -> Result<f64> {
        let mut config = config("sums");
        if checkpoints {
            config.checkpoint.mode = CheckpointingMode::ExactlyOnce;
            config.checkpoint.interval = Duration::from_secs(1);
            config.checkpoint.dir = Some(args.dir.join("checkpoints"));
        }
        let env = Env::new(config);
        let keys = args.keys;
        env.add_source(
            "numbers",
            Numbers {
                next: 0,
                count: args.records,
                linger: false,
            },
            Boundedness::Bounded,
        )
        .set_parallelism(1)
        .uid("numbers")
        .key_by(move |n: &u64| n % keys)
        .reduce(|a, b| a.wrapping_add(b))
        .uid("sums")
        .sink_fn(|_| {});
        let started = SystemClock.now();
        env.execute()?;
        Ok(SystemClock.now().duration_since(started).as_secs_f64())
    };
    let (mut without, mut with) = (Vec::new(), Vec::new());
    for _ in 0..args.repeat {
        without.push(sums(false)?);
        with.push(sums(true)?);
    }
    let (without, with) = (median(without), median(with));
    println!(
        "running cost: {} records, {} keys: {without:.2} s without, {with:.2} s with checkpoints every 1 s: {:+.1} % (medians of {})",
        args.records,
        args.keys,
        (with / without - 1.0) * 100.0,
        args.repeat
    );
    let _ = std::fs::remove_dir_all(&args.dir);
    Ok(())
}
