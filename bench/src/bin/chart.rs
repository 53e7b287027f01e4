//! Draws the throughput/latency trade-off of the buffer-pool thresholds into
//! `docs/tradeoff.svg`:
//!
//! * left: records/s against `buffer.size`, from criterion's results of the
//!   `spsc_link` and `exchange_2x2` groups (`target/criterion/<group>/buffer.size/<n>/new/`,
//!   median time per iteration and the elements per iteration criterion stored);
//! * right: p50 / p99 / p99.9 end-to-end latency against `buffer.timeout`, from
//!   `target/eddy-bench/latency.csv` written by `--bin latency` (median over repeated
//!   runs).
//!
//! Run the benches and the latency runner first:
//!
//! ```text
//! cargo bench -p eddy-bench --bench spsc_link --bench exchange
//! cargo run --release -p eddy-bench --bin latency -- --repeat 3
//! cargo run --release -p eddy-bench --bin chart [-- --criterion DIR ... --latency CSV]
//! ```
//!
//! With several `--criterion` folders (copies of `target/criterion` from repeated
//! runs), each point is the median over them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use eddy_bench::{docs_dir, results_dir, target_dir};
use plotters::prelude::*;

/// Buffer sizes the benches run.
const BUFFER_SIZES: [u64; 4] = [1, 64, 1024, 4096];

/// Millions of records/s of one criterion benchmark (median) in the criterion output
/// folder `criterion`, if it was run there.
fn criterion_throughput(criterion: &Path, group: &str, buffer_size: u64) -> Result<Option<f64>> {
    let dir = criterion
        .join(group)
        .join("buffer.size")
        .join(buffer_size.to_string())
        .join("new");
    if !dir.exists() {
        return Ok(None);
    }
    let read = |name: &str| -> Result<serde_json::Value> {
        let path = dir.join(name);
        let text = std::fs::read_to_string(&path).with_context(|| format!("{}", path.display()))?;
        Ok(serde_json::from_str(&text)?)
    };
    let median_nanos = read("estimates.json")?["median"]["point_estimate"]
        .as_f64()
        .context("estimates.json without median")?;
    let elements = read("benchmark.json")?["throughput"]["Elements"]
        .as_f64()
        .context("benchmark.json without Elements throughput")?;
    Ok(Some(elements / median_nanos * 1e3))
}

/// Median of each latency column per `buffer.timeout` (µs): `timeout → [p50, p99, p99.9]`.
fn latency_rows(path: &Path) -> Result<BTreeMap<u64, [f64; 3]>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("{} (run --bin latency first)", path.display()))?;
    let mut runs: BTreeMap<u64, Vec<[f64; 3]>> = BTreeMap::new();
    for line in text.lines().skip(1) {
        let fields: Vec<&str> = line.split(',').collect();
        let number = |i: usize| -> Result<f64> {
            Ok(fields.get(i).context("short row")?.trim().parse::<f64>()?)
        };
        runs.entry(number(0)? as u64)
            .or_default()
            .push([number(4)?, number(5)?, number(6)?]);
    }
    Ok(runs
        .into_iter()
        .map(|(timeout, rows)| {
            let median = |column: usize| {
                let mut values: Vec<f64> = rows.iter().map(|row| row[column]).collect();
                values.sort_by(f64::total_cmp);
                values[values.len() / 2]
            };
            (timeout, [median(0), median(1), median(2)])
        })
        .collect())
}

fn timeout_label(timeout_us: u64) -> String {
    match timeout_us {
        0 => "0".into(),
        us if us % 1000 == 0 => format!("{}ms", us / 1000),
        us => format!("{us}us"),
    }
}

/// Median of the values (none: `None`).
fn median(mut values: Vec<f64>) -> Option<f64> {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied()
}

fn main() -> Result<()> {
    // `--criterion DIR` (repeatable: the median over the folders is drawn) and
    // `--latency CSV`; by default this workspace's `target/criterion` and the CSV the
    // latency runner wrote last.
    let mut criterion_dirs = Vec::new();
    let mut latency_csv = results_dir()?.join("latency.csv");
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().context("a flag needs a value")?;
        match flag.as_str() {
            "--criterion" => criterion_dirs.push(PathBuf::from(value)),
            "--latency" => latency_csv = PathBuf::from(value),
            _ => anyhow::bail!("unknown flag {flag} (--criterion DIR, --latency CSV)"),
        }
    }
    if criterion_dirs.is_empty() {
        criterion_dirs.push(target_dir().join("criterion"));
    }
    let groups = [
        ("spsc_link", "one SPSC link", BLUE),
        ("exchange_2x2", "2×2 hash exchange", RED),
    ];
    let mut throughput = Vec::new();
    for (group, label, color) in groups {
        let mut points = Vec::new();
        for (index, &size) in BUFFER_SIZES.iter().enumerate() {
            let mut runs = Vec::new();
            for dir in &criterion_dirs {
                runs.extend(criterion_throughput(dir, group, size)?);
            }
            if let Some(mrps) = median(runs) {
                println!("{group} buffer.size {size}: {mrps:.1} M records/s");
                points.push((index as f64, mrps));
            }
        }
        throughput.push((label, color, points));
    }
    let latency = latency_rows(&latency_csv)?;
    for (timeout, [p50, p99, p999]) in &latency {
        println!(
            "buffer.timeout {}: p50 {p50:.1} µs, p99 {p99:.1} µs, p99.9 {p999:.1} µs",
            timeout_label(*timeout)
        );
    }

    let path = docs_dir().join("tradeoff.svg");
    let root = SVGBackend::new(&path, (1100, 450)).into_drawing_area();
    root.fill(&WHITE)?;
    let (left, right) = root.split_horizontally(550);

    let max_mrps = throughput
        .iter()
        .flat_map(|(_, _, points)| points.iter().map(|p| p.1))
        .fold(1.0f64, f64::max);
    let mut chart = ChartBuilder::on(&left)
        .caption("throughput by buffer.size", ("sans-serif", 20))
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(-0.3f64..3.3f64, (0.5f64..max_mrps * 2.0).log_scale())?;
    chart
        .configure_mesh()
        .x_labels(BUFFER_SIZES.len())
        .x_label_formatter(&|x| {
            let index = x.round();
            if (x - index).abs() < 0.01 && (0.0..4.0).contains(&index) {
                BUFFER_SIZES[index as usize].to_string()
            } else {
                String::new()
            }
        })
        .x_desc("buffer.size (records)")
        .y_desc("M records/s (median)")
        .draw()?;
    for (label, color, points) in throughput {
        chart
            .draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))?
            .label(label)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
        chart.draw_series(
            points
                .into_iter()
                .map(|p| Circle::new(p, 4, color.filled())),
        )?;
    }
    chart
        .configure_series_labels()
        .border_style(BLACK)
        .background_style(WHITE.mix(0.8))
        .position(SeriesLabelPosition::LowerRight)
        .draw()?;

    let timeouts: Vec<u64> = latency.keys().copied().collect();
    let max_us = latency
        .values()
        .flat_map(|row| row.iter().copied())
        .fold(10.0f64, f64::max);
    let mut chart = ChartBuilder::on(&right)
        .caption(
            "end-to-end latency by buffer.timeout (100k records/s)",
            ("sans-serif", 20),
        )
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(
            -0.3f64..(timeouts.len() as f64 - 0.7),
            (1.0f64..max_us * 2.0).log_scale(),
        )?;
    let labels = timeouts.clone();
    chart
        .configure_mesh()
        .x_labels(timeouts.len())
        .x_label_formatter(&|x| {
            let index = x.round();
            match labels.get(index as usize) {
                Some(&timeout) if (x - index).abs() < 0.01 && index >= 0.0 => {
                    timeout_label(timeout)
                }
                _ => String::new(),
            }
        })
        .x_desc("buffer.timeout")
        .y_desc("latency µs (median of runs)")
        .draw()?;
    let columns = [("p50", GREEN), ("p99", BLUE), ("p99.9", RED)];
    for (column, (label, color)) in columns.into_iter().enumerate() {
        let points: Vec<(f64, f64)> = latency
            .values()
            .enumerate()
            .map(|(index, row)| (index as f64, row[column].max(1.0)))
            .collect();
        chart
            .draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))?
            .label(label)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
        chart.draw_series(
            points
                .into_iter()
                .map(|p| Circle::new(p, 4, color.filled())),
        )?;
    }
    chart
        .configure_series_labels()
        .border_style(BLACK)
        .background_style(WHITE.mix(0.8))
        .position(SeriesLabelPosition::UpperLeft)
        .draw()?;
    root.present()?;
    println!("wrote {}", path.display());
    Ok(())
}
