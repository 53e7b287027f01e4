//! File connector costs (issue #6):
//!
//! 1. **Parsing, one core**: a file of Nexmark-bid-shaped rows (`auction,bidder,price,
//!    channel,url,date_time,extra`, ~`--extra-bytes` of padding) in CSV (with header)
//!    and in JSON lines, read by one `FileSource` subtask polled in a loop (no engine
//!    around it): MB/s of file per core, median of `--repeat`.
//!    The CSV file is also read by the Nexmark reader (`NexmarkCsvSource<Bid>`, typed
//!    bids instead of generic rows: what `eddy nexmark run --input-dir` reads with).
//! 2. **inotify pick-up latency**: a job `WatchedFolderSource → sink` on the engine;
//!    `--files` one-line files are each written beside the folder and renamed into it;
//!    the latency is from just before the rename to the sink receiving the file's record
//!    (p50/p99/max over the files, hdrhistogram).
//!
//! `cargo run --release -p eddy-bench --bin formats -- [--rows 1000000] [--extra-bytes 60]
//!  [--files 1000] [--repeat 3]`

use std::io::Write;
use std::path::Path;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use eddy_connectors::files::{
    BadRecordPolicy, FileSource, Format, ReadSettings, Record, WatchSettings, WatchedFolderSource,
};
use eddy_connectors::nexmark::{Bid, NexmarkCsvSource};
use eddy_engine::clock::{Clock, SystemClock};
use eddy_engine::prelude::*;
use hdrhistogram::Histogram;

fn write_bids(path: &Path, rows: usize, extra: usize, json: bool) -> Result<u64> {
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    if !json {
        writeln!(out, "auction,bidder,price,channel,url,date_time,extra")?;
    }
    let padding: String = "abcdefghijklmnopqrstuvwxyz"
        .chars()
        .cycle()
        .take(extra)
        .collect();
    for row in 0..rows as u64 {
        let (auction, bidder, price) = (1000 + row % 977, 2000 + row % 1999, 100 + row % 9973);
        let url = format!(
            "https://www.nexmark.com/item.htm?query=1&channel_id={}",
            row % 1000
        );
        let time = format!(
            "2015-07-15 00:{:02}:{:02}.{:03}",
            (row / 60_000) % 60,
            (row / 1000) % 60,
            row % 1000
        );
        if json {
            writeln!(
                out,
                "{{\"auction\":{auction},\"bidder\":{bidder},\"price\":{price},\"channel\":\"Google\",\"url\":\"{url}\",\"date_time\":\"{time}\",\"extra\":\"{padding}\"}}"
            )?;
        } else {
            writeln!(
                out,
                "{auction},{bidder},{price},Google,{url},{time},{padding}"
            )?;
        }
    }
    out.flush()?;
    Ok(std::fs::metadata(path)?.len())
}

/// Reads `path` as Nexmark bids with one `NexmarkCsvSource` subtask; returns (records,
/// seconds).
fn read_bids(path: &Path) -> Result<(u64, f64)> {
    let mut source = NexmarkCsvSource::<Bid>::new(path);
    let subtask = SubtaskInfo {
        job: "bench".into(),
        operator: "read".into(),
        index: 0,
        parallelism: 1,
    };
    let started = SystemClock.now();
    source.open(&subtask)?;
    let mut batch: Batch<Bid> = Batch::with_capacity(1024);
    let mut records = 0u64;
    loop {
        let mut out = SourceOutput::new(&mut batch, 1024);
        let status = source.poll_next(&mut out)?;
        records += batch.len() as u64;
        batch.clear();
        if status == SourceStatus::Finished {
            break;
        }
    }
    Ok((
        records,
        SystemClock.now().duration_since(started).as_secs_f64(),
    ))
}

/// Reads `path` with one subtask; returns (records, seconds).
fn read_all(path: &Path, format: Format) -> Result<(u64, f64)> {
    let mut source = FileSource::new(
        path,
        ReadSettings {
            format,
            on_bad_record: BadRecordPolicy::Fail,
        },
    );
    let subtask = SubtaskInfo {
        job: "bench".into(),
        operator: "read".into(),
        index: 0,
        parallelism: 1,
    };
    let started = SystemClock.now();
    source.open(&subtask)?;
    let mut batch: Batch<Record> = Batch::with_capacity(1024);
    let mut records = 0u64;
    loop {
        let mut out = SourceOutput::new(&mut batch, 1024);
        let status = source.poll_next(&mut out)?;
        records += batch.len() as u64;
        batch.clear();
        if status == SourceStatus::Finished {
            break;
        }
    }
    Ok((
        records,
        SystemClock.now().duration_since(started).as_secs_f64(),
    ))
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn main() -> Result<()> {
    let (mut rows, mut extra, mut files, mut repeat) = (1_000_000usize, 60usize, 1000usize, 3usize);
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args
            .next()
            .with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--rows" => rows = value.parse()?,
            "--extra-bytes" => extra = value.parse()?,
            "--files" => files = value.parse()?,
            "--repeat" => repeat = value.parse()?,
            _ => bail!("unknown flag {flag}"),
        }
    }
    let dir = tempfile::tempdir()?;

    // 1. Parsing.
    for (name, format, json) in [
        ("csv", Format::Csv { header: true }, false),
        ("jsonl", Format::JsonLines, true),
    ] {
        let path = dir.path().join(format!("bids.{name}"));
        let bytes = write_bids(&path, rows, extra, json)?;
        let mut rates = Vec::new();
        for _ in 0..repeat {
            let (records, secs) = read_all(&path, format)?;
            if records != rows as u64 {
                bail!("{name}: read {records} of {rows} rows");
            }
            rates.push(bytes as f64 / secs / 1e6);
        }
        println!(
            "parse {name}: {rows} rows, {:.0} MB: {:.0} MB/s per core (median of {repeat})",
            bytes as f64 / 1e6,
            median(rates)
        );
        if !json {
            let mut rates = Vec::new();
            for _ in 0..repeat {
                let (records, secs) = read_bids(&path)?;
                if records != rows as u64 {
                    bail!("nexmark csv: read {records} of {rows} rows");
                }
                rates.push(bytes as f64 / secs / 1e6);
            }
            println!(
                "parse {name} as Nexmark bids (NexmarkCsvSource): {:.0} MB/s per core (median of {repeat})",
                median(rates)
            );
        }
    }

    // 2. inotify pick-up latency through the engine.
    let watched = dir.path().join("watched");
    let staging = dir.path().join("staging");
    std::fs::create_dir_all(&watched)?;
    std::fs::create_dir_all(&staging)?;
    let (arrived, arrivals) = mpsc::channel::<(u64, Instant)>();
    let env = Env::new(JobConfig {
        parallelism: Some(1),
        buffer: BufferConfig {
            timeout: Duration::ZERO,
            ..BufferConfig::default()
        },
        ..JobConfig::default()
    });
    let source = WatchedFolderSource::new(
        &watched,
        WatchSettings {
            read: ReadSettings {
                format: Format::Lines,
                on_bad_record: BadRecordPolicy::Fail,
            },
            queue_capacity: 1024,
        },
    );
    let arrived = std::sync::Arc::new(std::sync::Mutex::new(arrived));
    env.add_source("watch", source, Boundedness::Unbounded)
        .sink_fn(move |record: Record| {
            let now = SystemClock.now();
            if let Record::Line(bytes) = record {
                if let Some(index) = std::str::from_utf8(&bytes)
                    .ok()
                    .and_then(|t| t.parse().ok())
                {
                    let _ = arrived.lock().unwrap().send((index, now));
                }
            }
        });
    let handle = env.execute_async()?;
    let mut histogram = Histogram::<u64>::new(3)?;
    for index in 0..files as u64 {
        let name = format!("f{index}.txt");
        std::fs::write(staging.join(&name), format!("{index}\n"))?;
        let before = SystemClock.now();
        std::fs::rename(staging.join(&name), watched.join(&name))?;
        let (got, at) = arrivals
            .recv_timeout(Duration::from_secs(10))
            .context("a file was not picked up within 10 s")?;
        if got != index {
            bail!("file {index} arrived as {got}");
        }
        histogram.record(at.duration_since(before).as_micros() as u64)?;
    }
    handle.cancel();
    handle.join()?;
    println!(
        "inotify pick-up (rename -> record at the sink), {files} files: p50 {} µs, p99 {} µs, max {} µs",
        histogram.value_at_quantile(0.5),
        histogram.value_at_quantile(0.99),
        histogram.max()
    );
    Ok(())
}
