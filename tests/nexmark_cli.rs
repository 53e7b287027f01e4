//! `eddy nexmark run --changelog`: the update stream of an updating query, replayed
//! (+I/+U add a row, -U/-D remove one), gives exactly the final result the same command
//! writes without `--changelog`; the flag needs an output file (exit 2, one line). The
//! final JSON line; `--on-bad-record fail|skip-and-count|dead-letter` on input files
//! with bad rows (counted as `bad_records`).

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

fn eddy(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_eddy"))
        .args(args)
        .output()
        .expect("the eddy binary runs")
}

fn rows(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .skip(1)
        .map(str::to_owned)
        .collect()
}

#[test]
fn a_replayed_changelog_equals_the_final_result() {
    let input = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/nexmark/gen");
    let dir = tempfile::tempdir().unwrap();
    for query in ["q4", "q9", "q17"] {
        let final_path = dir.path().join(format!("{query}.csv"));
        let changelog_path = dir.path().join(format!("{query}-changelog.csv"));
        for (path, extra) in [(&final_path, None), (&changelog_path, Some("--changelog"))] {
            let mut args = vec!["nexmark", "run", "--query", query, "--input-dir", input];
            args.extend(["--output", path.to_str().unwrap(), "--parallelism", "2"]);
            args.extend(extra);
            let out = eddy(&args);
            assert!(
                out.status.success(),
                "{query}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let header = std::fs::read_to_string(&changelog_path).unwrap();
        assert!(
            header.starts_with("op,"),
            "{query}: {}",
            header.lines().next().unwrap_or("")
        );
        let mut live: BTreeMap<String, i64> = BTreeMap::new();
        for line in rows(&changelog_path) {
            let (op, row) = line.split_once(',').expect("op,row");
            let delta = match op {
                "+I" | "+U" => 1,
                "-U" | "-D" => -1,
                other => panic!("{query}: unknown op {other}"),
            };
            let count = live.entry(row.to_owned()).or_default();
            *count += delta;
            assert!(
                *count >= 0,
                "{query}: removes a row that is not there: {row}"
            );
        }
        let mut replayed: Vec<String> = live
            .into_iter()
            .flat_map(|(row, count)| std::iter::repeat_n(row, count as usize))
            .collect();
        replayed.sort();
        let mut expected = rows(&final_path);
        expected.sort();
        assert_eq!(replayed, expected, "{query}");
        assert!(!expected.is_empty(), "{query} has rows on this input");
    }
}

#[test]
fn changelog_needs_an_output_file() {
    let out = eddy(&[
        "nexmark",
        "run",
        "--query",
        "q4",
        "--events",
        "100",
        "--changelog",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with("eddy:"), "{stderr}");
}

/// The last line of stdout, parsed as the run's JSON statistics.
fn stats_line(out: &std::process::Output) -> serde_json::Value {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let last = stdout.lines().last().expect("a statistics line");
    serde_json::from_str(last).unwrap_or_else(|e| panic!("not JSON ({e}): {last}"))
}

fn number(stats: &serde_json::Value, field: &str) -> f64 {
    stats[field]
        .as_f64()
        .unwrap_or_else(|| panic!("{field} is not a number: {stats}"))
}

fn data_rows(path: &Path) -> u64 {
    std::fs::read_to_string(path).unwrap().lines().count() as u64 - 1
}

#[test]
fn the_run_ends_with_a_json_statistics_line() {
    let dir = tempfile::tempdir().unwrap();
    let input = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/nexmark/gen");
    // q1 on 2,000 generated events into a file: 1,840 bids, one row each, with latency
    let output = dir.path().join("q1.csv");
    let out = eddy(&[
        "nexmark",
        "run",
        "--query",
        "q1",
        "--events",
        "2000",
        "--parallelism",
        "2",
        "--output",
        output.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 1);
    assert!(out.stderr.is_empty(), "no progress when not on a terminal");
    let stats = stats_line(&out);
    assert_eq!(stats["query"], "q1");
    assert_eq!(stats["mode"], "streaming");
    assert_eq!(stats["events"], 2000);
    assert_eq!(stats["rows_out"].as_u64(), Some(data_rows(&output)));
    assert_eq!(data_rows(&output), 1840);
    let wall_s = number(&stats, "wall_s");
    let rate = number(&stats, "events_per_s");
    assert!(wall_s > 0.0 && rate > 0.0, "{stats}");
    // wall_s is printed in milliseconds: rate × wall_s is off by at most rate × 0.5 ms
    assert!(
        (rate * wall_s - 2000.0).abs() <= 1.0 + rate * 0.0005,
        "{stats}"
    );
    assert!(number(&stats, "events_per_s_per_core") <= rate, "{stats}");
    let latency = &stats["latency_us"];
    let percentiles: Vec<f64> = ["p50", "p99", "p999", "max"]
        .iter()
        .map(|p| {
            latency[p]
                .as_f64()
                .unwrap_or_else(|| panic!("{p}: {stats}"))
        })
        .collect();
    assert!(percentiles[0] > 0.0, "{stats}");
    assert!(
        percentiles.windows(2).all(|pair| pair[0] <= pair[1]),
        "percentiles are monotone: {stats}"
    );

    // q4 (updating) on files, BATCH: the final rows; events = rows of the files read;
    // no per-record latency for an aggregate
    let output = dir.path().join("q4.csv");
    let out = eddy(&[
        "nexmark",
        "run",
        "--query",
        "q4",
        "--input-dir",
        input,
        "--mode",
        "batch",
        "--output",
        output.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stats = stats_line(&out);
    assert_eq!(stats["mode"], "batch");
    let read = data_rows(&Path::new(input).join("auction.csv"))
        + data_rows(&Path::new(input).join("bid.csv"));
    assert_eq!(stats["events"].as_u64(), Some(read));
    assert_eq!(stats["rows_out"].as_u64(), Some(data_rows(&output)));
    assert!(stats["latency_us"].is_null(), "{stats}");

    // the blackhole counts what reaches it
    let out = eddy(&["nexmark", "run", "--query", "q0", "--events", "1000"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stats = stats_line(&out);
    assert_eq!(stats["rows_out"], 920);
}

/// The generated test files, with three bad rows put into `bid.csv` after its 10th
/// row (lines 12, 13 and 14: a missing column, a non-number, a bad timestamp); returns
/// the folder and the number of good bids.
fn input_with_bad_bids(dir: &Path) -> (std::path::PathBuf, u64) {
    let source = Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/nexmark/gen"
    ));
    let input = dir.join("input");
    std::fs::create_dir(&input).unwrap();
    for table in ["person.csv", "auction.csv"] {
        std::fs::copy(source.join(table), input.join(table)).unwrap();
    }
    let bids = std::fs::read_to_string(source.join("bid.csv")).unwrap();
    let mut lines: Vec<&str> = bids.lines().collect();
    let good = lines.len() as u64 - 1;
    lines.splice(
        11..11,
        [
            "1000,1001,77,Google,https://x,2015-07-15 00:00:00.100",
            "1000,1001,cheap,Google,https://x,2015-07-15 00:00:00.100,extra",
            "1000,1001,77,Google,https://x,2015-07-15 24:00:00.100,extra",
        ],
    );
    std::fs::write(input.join("bid.csv"), lines.join("\n") + "\n").unwrap();
    (input, good)
}

#[test]
fn bad_rows_of_the_input_files_fail_the_run_or_are_skipped_or_dead_lettered_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let (input, good) = input_with_bad_bids(dir.path());
    let input = input.to_str().unwrap();
    let run = |extra: &[&str]| {
        let mut args = vec!["nexmark", "run", "--query", "q0", "--input-dir", input];
        args.extend_from_slice(extra);
        eddy(&args)
    };
    // fail (the default): the file and the line of the first bad row, no panic
    let out = run(&[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("bid.csv' line 12: expected 7 fields"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    let explicit = run(&["--on-bad-record", "fail"]);
    assert_eq!(explicit.status.code(), out.status.code());

    // skip-and-count: the good rows out, the bad ones counted
    let output = dir.path().join("q0.csv");
    let out = run(&[
        "--on-bad-record",
        "skip-and-count",
        "--output",
        output.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stats = stats_line(&out);
    assert_eq!(stats["bad_records"], 3, "{stats}");
    assert_eq!(stats["events"].as_u64(), Some(good), "{stats}");
    assert_eq!(data_rows(&output), good);

    // dead-letter: the same, and each bad row in the file with its line and reason
    let letters = dir.path().join("dead.jsonl");
    let out = run(&[
        "--on-bad-record",
        "dead-letter",
        "--dead-letters",
        letters.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stats_line(&out)["bad_records"], 3);
    let letters: Vec<serde_json::Value> = std::fs::read_to_string(&letters)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let lines: Vec<u64> = letters
        .iter()
        .map(|l| l["line"].as_u64().unwrap())
        .collect();
    assert_eq!(lines, vec![12, 13, 14]);
    assert!(letters
        .iter()
        .all(|l| l["file"].as_str().unwrap().ends_with("bid.csv")));
    let reasons: Vec<&str> = letters
        .iter()
        .map(|l| l["reason"].as_str().unwrap())
        .collect();
    assert!(reasons[1].contains("column price"), "{reasons:?}");
    assert!(reasons[2].contains("column date_time"), "{reasons:?}");

    // a generated run has no bad rows
    let out = eddy(&["nexmark", "run", "--query", "q0", "--events", "500"]);
    assert_eq!(stats_line(&out)["bad_records"], 0);

    // dead-letter needs its file, and the file needs dead-letter: usage errors
    for extra in [
        &["--on-bad-record", "dead-letter"][..],
        &["--dead-letters", "/tmp/x.jsonl"][..],
        &["--on-bad-record", "drop"][..],
    ] {
        let out = run(extra);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{extra:?}: {stderr}");
    }
}
