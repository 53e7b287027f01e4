//! Draws eddy against Apache Flink on Nexmark into `docs/nexmark-vs-flink.svg`: wall
//! time per query (log scale), BATCH and STREAMING side by side, from the JSON lines of
//! `bench/nexmark-vs-flink` (eddy) and of the Flink peer harness's `bench.py` (Flink),
//! both run on the same CSV files. Where a query has several runs, the fastest is drawn
//! (on a shared machine the slower ones measure the other load); a run with an error
//! (Flink's q11 in BATCH) is left out.
//!
//! ```text
//! cargo run --release -p eddy-bench --bin nexmark_chart -- --eddy EDDY.jsonl --flink FLINK.jsonl [--out SVG]
//! ```

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context, Result};
use eddy_bench::docs_dir;
use plotters::prelude::*;

/// The queries drawn, in order.
const QUERIES: [&str; 9] = ["q0", "q1", "q2", "q3", "q4", "q5", "q7", "q8", "q11"];

/// The fastest wall seconds per (mode, query) of the runs in a JSON lines file.
fn wall_times(path: &PathBuf) -> Result<BTreeMap<(String, String), f64>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut runs: BTreeMap<(String, String), Vec<f64>> = BTreeMap::new();
    for line in text.lines().filter(|line| !line.trim().is_empty()) {
        let run: serde_json::Value =
            serde_json::from_str(line).with_context(|| format!("not JSON: {line}"))?;
        let (Some(query), Some(mode), Some(wall)) = (
            run["query"].as_str(),
            run["mode"].as_str(),
            run["wall_s"].as_f64(),
        ) else {
            continue; // a failed run
        };
        if run.get("error").is_some_and(|error| !error.is_null()) {
            continue;
        }
        runs.entry((mode.to_string(), query.to_string()))
            .or_default()
            .push(wall);
    }
    Ok(runs
        .into_iter()
        .map(|(key, mut walls)| {
            walls.sort_by(f64::total_cmp);
            (key, walls[0])
        })
        .collect())
}

fn main() -> Result<()> {
    let mut eddy = None;
    let mut flink = None;
    let mut out = docs_dir().join("nexmark-vs-flink.svg");
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = PathBuf::from(args.next().context("a flag needs a value")?);
        match flag.as_str() {
            "--eddy" => eddy = Some(value),
            "--flink" => flink = Some(value),
            "--out" => out = value,
            _ => anyhow::bail!("unknown flag {flag} (--eddy JSONL, --flink JSONL, --out SVG)"),
        }
    }
    let eddy = wall_times(&eddy.context("--eddy JSONL is needed")?)?;
    let flink = wall_times(&flink.context("--flink JSONL is needed")?)?;
    let max = eddy
        .values()
        .chain(flink.values())
        .copied()
        .fold(1.0f64, f64::max);

    let root = SVGBackend::new(&out, (1100, 450)).into_drawing_area();
    root.fill(&WHITE)?;
    let (left, right) = root.split_horizontally(550);
    for (area, mode) in [(left, "batch"), (right, "streaming")] {
        let mut chart = ChartBuilder::on(&area)
            .caption(
                format!("Nexmark, 10M events, {mode}: wall s (log)"),
                ("sans-serif", 20),
            )
            .margin(15)
            .x_label_area_size(40)
            .y_label_area_size(50)
            .build_cartesian_2d(0f64..QUERIES.len() as f64, (0.1f64..max * 2.0).log_scale())?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(QUERIES.len() * 2)
            .x_label_formatter(&|x| {
                let index = (x - 0.5).round();
                if (x - 0.5 - index).abs() < 0.01 && index >= 0.0 {
                    QUERIES
                        .get(index as usize)
                        .map_or(String::new(), |q| q.to_string())
                } else {
                    String::new()
                }
            })
            .y_desc("wall s (whole process)")
            .draw()?;
        let engines = [("eddy", &eddy, BLUE, 0.12), ("Flink 2.3", &flink, RED, 0.5)];
        for (label, times, color, offset) in engines {
            let bars: Vec<_> = QUERIES
                .iter()
                .enumerate()
                .filter_map(|(index, query)| {
                    let wall = *times.get(&(mode.to_string(), query.to_string()))?;
                    let x = index as f64 + offset;
                    Some(Rectangle::new([(x, 0.1), (x + 0.38, wall)], color.filled()))
                })
                .collect();
            chart.draw_series(bars)?.label(label).legend(move |(x, y)| {
                Rectangle::new([(x, y - 5), (x + 15, y + 5)], color.filled())
            });
        }
        chart
            .configure_series_labels()
            .border_style(BLACK)
            .background_style(WHITE.mix(0.8))
            .position(SeriesLabelPosition::UpperLeft)
            .draw()?;
    }
    root.present()?;
    for mode in ["batch", "streaming"] {
        for query in QUERIES {
            let key = (mode.to_string(), query.to_string());
            let (e, f) = (eddy.get(&key), flink.get(&key));
            let ratio = match (e, f) {
                (Some(e), Some(f)) => format!("{:.1}x", f / e),
                _ => "—".into(),
            };
            println!("{mode} {query}: eddy {e:?} s, Flink {f:?} s, {ratio}");
        }
    }
    println!("wrote {}", out.display());
    Ok(())
}
