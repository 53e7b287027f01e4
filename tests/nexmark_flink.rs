//! eddy's Nexmark queries against Apache Flink's output on the same input, row by row.
//!
//! `tests/data/nexmark/<set>/` holds an input set (`person.csv`, `auction.csv`,
//! `bid.csv`) and, in `expected/`, what Flink 2.3 (PyFlink, the public Nexmark SQL,
//! `../shared/peers/flink/run_flink.py --out`) wrote for each query, in canonical form
//! (header, rows sorted as text). The sets: `gen` — 12,000 generated events over 59 s of
//! event time (many windows); `edge` — a few hand-written rows on the corner cases (bids
//! on window boundaries, ties, sessions exactly 10 s apart, out-of-order rows within
//! the 4 s watermark delay, quoted fields, no final newline); `gen1k` — only Flink's
//! outputs of q0 and q1 (large per input event) on the first 1,000 events of `gen`, whose
//! input eddy generates itself (its generator writes `gen_nexmark.py`'s files byte for
//! byte, checked by `eddy-connectors`). `scripts/nexmark-reference` regenerates them (it
//! needs Flink; these tests do not).
//!
//! Queries on `gen` also run on generated input (the generator instead of the files,
//! with the job's parallelism) and must give Flink's rows all the same.
//!
//! Every query runs in STREAMING and BATCH mode with parallelism 1 and 2, and its output
//! file must equal Flink's byte for byte.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use eddy::connectors::nexmark::{GeneratorConfig, NexmarkModel};
use eddy::jobs::nexmark::{Input, Query};
use eddy::prelude::*;

fn data_dir(set: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/nexmark")
        .join(set)
}

/// The events of the `gen` set (`gen_nexmark.py --seed 42 --rate 203`), generated.
fn generated(events: u64) -> Input {
    Input::Generator(
        NexmarkModel::new(GeneratorConfig {
            events,
            seed: 42,
            event_rate: 203.0,
            throttle: false,
        })
        .unwrap(),
    )
}

fn run(
    query: Query,
    input: &Input,
    output: &Path,
    mode: Mode,
    parallelism: usize,
) -> Result<(), EngineError> {
    let env = Env::new(JobConfig {
        name: format!("nexmark-{}", query.name()),
        mode,
        parallelism: Some(parallelism),
        // small buffers with several records in flight, so exchanges interleave
        buffer: BufferConfig {
            size: 64,
            timeout: Duration::from_micros(200),
            count: 4,
        },
        ..JobConfig::default()
    });
    query.build(&env, input, Some(output));
    env.execute().map(|_| ())
}

/// Lines of `text` that are not in `other` (as multisets), in order.
fn missing_from(text: &[&str], other: &[&str]) -> Vec<String> {
    let mut counts: BTreeMap<&str, i64> = BTreeMap::new();
    for line in other {
        *counts.entry(line).or_default() += 1;
    }
    let mut missing = Vec::new();
    for line in text {
        let count = counts.entry(line).or_default();
        if *count > 0 {
            *count -= 1;
        } else {
            missing.push(line.to_string());
        }
    }
    missing
}

/// Fails with the first differing rows unless `actual` equals `expected`.
fn assert_same_rows(what: &str, expected: &str, actual: &str) {
    if expected == actual {
        return;
    }
    let expected_lines: Vec<&str> = expected.lines().collect();
    let actual_lines: Vec<&str> = actual.lines().collect();
    let first_difference = expected_lines
        .iter()
        .zip(&actual_lines)
        .position(|(e, a)| e != a)
        .unwrap_or(expected_lines.len().min(actual_lines.len()));
    let show = |lines: Vec<String>| {
        lines
            .into_iter()
            .take(10)
            .collect::<Vec<_>>()
            .join("\n    ")
    };
    panic!(
        "{what}: eddy's output differs from Flink's\n  \
         rows (incl. header): Flink {}, eddy {}\n  \
         first difference at line {}: Flink {:?} / eddy {:?}\n  \
         only in Flink (first 10):\n    {}\n  only in eddy (first 10):\n    {}",
        expected_lines.len(),
        actual_lines.len(),
        first_difference + 1,
        expected_lines.get(first_difference),
        actual_lines.get(first_difference),
        show(missing_from(&expected_lines, &actual_lines)),
        show(missing_from(&actual_lines, &expected_lines)),
    );
}

fn matches_flink(set: &str, query: Query) {
    let input = match set {
        "gen1k" => generated(1_000),
        _ => Input::Files(data_dir(set)),
    };
    matches_flink_on(set, &input, query);
    if set == "gen" {
        matches_flink_on(set, &generated(12_000), query);
    }
}

fn matches_flink_on(set: &str, input: &Input, query: Query) {
    let source = match input {
        Input::Files(_) => "files",
        Input::Generator(_) => "generator",
    };
    let expected_path = data_dir(set)
        .join("expected")
        .join(format!("{}.csv", query.name()));
    let expected = std::fs::read_to_string(&expected_path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", expected_path.display()));
    let out_dir = tempfile::tempdir().unwrap();
    for mode in [Mode::Streaming, Mode::Batch] {
        for parallelism in [1, 2] {
            let what = format!(
                "{set}/{} ({source}) {mode:?} parallelism {parallelism}",
                query.name()
            );
            let output = out_dir
                .path()
                .join(format!("{}-{mode:?}-{parallelism}.csv", query.name()));
            run(query, input, &output, mode, parallelism)
                .unwrap_or_else(|e| panic!("{what}: the job failed: {e}"));
            let actual = std::fs::read_to_string(&output).unwrap();
            assert_same_rows(&what, &expected, &actual);
        }
    }
}

#[test]
fn q0_pass_through_matches_flink() {
    matches_flink("gen1k", Query::Q0);
    matches_flink("edge", Query::Q0);
}

#[test]
fn q1_currency_conversion_matches_flink() {
    matches_flink("gen1k", Query::Q1);
    matches_flink("edge", Query::Q1);
}

#[test]
fn q2_selection_matches_flink() {
    matches_flink("gen", Query::Q2);
    matches_flink("edge", Query::Q2);
}

#[test]
fn q3_local_item_suggestion_matches_flink() {
    matches_flink("gen", Query::Q3);
    matches_flink("edge", Query::Q3);
}

#[test]
fn q5_hot_items_matches_flink() {
    matches_flink("gen", Query::Q5);
    matches_flink("edge", Query::Q5);
}

#[test]
fn q7_highest_bid_matches_flink() {
    matches_flink("gen", Query::Q7);
    matches_flink("edge", Query::Q7);
}

#[test]
fn q8_new_users_matches_flink() {
    matches_flink("gen", Query::Q8);
    matches_flink("edge", Query::Q8);
}

#[test]
fn q11_user_sessions_matches_flink() {
    matches_flink("gen", Query::Q11);
    matches_flink("edge", Query::Q11);
}

#[test]
fn the_reference_sets_are_not_trivial() {
    // Guards against a regenerated reference that would make the comparison vacuous.
    for (set, query, at_least) in [
        ("gen", Query::Q5, 20),
        ("gen", Query::Q7, 5),
        ("gen", Query::Q8, 20),
        ("gen", Query::Q11, 100),
        ("edge", Query::Q7, 10),
        ("gen1k", Query::Q0, 900),
        ("gen1k", Query::Q1, 900),
        ("gen", Query::Q2, 5),
        ("gen", Query::Q3, 20),
        ("edge", Query::Q3, 1),
    ] {
        let path = data_dir(set)
            .join("expected")
            .join(format!("{}.csv", query.name()));
        let text = std::fs::read_to_string(&path).unwrap();
        let mut lines = text.lines();
        assert_eq!(
            lines.next(),
            Some(query.header().join(",").as_str()),
            "{}",
            path.display()
        );
        let rows = lines.count();
        assert!(rows >= at_least, "{}: {rows} rows", path.display());
    }
}

#[test]
fn a_bad_row_fails_the_job_with_file_line_and_reason() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("bid.csv"),
        "auction,bidder,price,channel,url,date_time,extra\n\
         1,2,3,c,u,2015-07-15 00:00:01.000,x\n\
         1,2,3,c,u,2015-07-15 00:00:61.000,x\n",
    )
    .unwrap();
    for mode in [Mode::Streaming, Mode::Batch] {
        let error = run(
            Query::Q11,
            &Input::Files(dir.path().to_path_buf()),
            &dir.path().join("out.csv"),
            mode,
            2,
        )
        .expect_err("a bad timestamp must fail the job")
        .to_string();
        assert!(error.contains("bid.csv' line 3"), "{error}");
        assert!(error.contains("column date_time"), "{error}");
    }
}

#[test]
fn a_missing_input_file_fails_the_job_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let error = run(
        Query::Q8,
        &Input::Files(dir.path().to_path_buf()),
        &dir.path().join("out.csv"),
        Mode::Batch,
        1,
    )
    .expect_err("no input")
    .to_string();
    assert!(
        error.contains("person.csv") || error.contains("auction.csv"),
        "{error}"
    );
}

#[test]
fn the_cli_generates_gen_nexmark_py_files_and_runs_a_query_on_them() {
    let eddy = env!("CARGO_BIN_EXE_eddy");
    let dir = tempfile::tempdir().unwrap();
    let files = dir.path().join("gen");
    let status = std::process::Command::new(eddy)
        .args(["nexmark", "generate", "--events", "12000", "--seed", "42"])
        .args(["--rate", "203", "--out"])
        .arg(&files)
        .output()
        .unwrap();
    assert!(status.status.success(), "{status:?}");
    for file in ["person.csv", "auction.csv", "bid.csv"] {
        let written = std::fs::read(files.join(file)).unwrap();
        let reference = std::fs::read(data_dir("gen").join(file)).unwrap();
        assert!(written == reference, "{file} differs from gen_nexmark.py's");
    }
    let output = dir.path().join("q2.csv");
    let status = std::process::Command::new(eddy)
        .args([
            "nexmark",
            "run",
            "--query",
            "q2",
            "--parallelism",
            "2",
            "--input-dir",
        ])
        .arg(&files)
        .arg("--output")
        .arg(&output)
        .output()
        .unwrap();
    assert!(status.status.success(), "{status:?}");
    let expected = std::fs::read_to_string(data_dir("gen").join("expected/q2.csv")).unwrap();
    assert_same_rows(
        "eddy nexmark run q2",
        &expected,
        &std::fs::read_to_string(&output).unwrap(),
    );
}

#[test]
fn the_cli_reports_bad_usage_in_one_line_with_status_2() {
    let eddy = env!("CARGO_BIN_EXE_eddy");
    for args in [
        &["nexmark", "run", "--query", "q23", "--events", "10"][..],
        &["nexmark", "run", "--query", "q5"],
        &[
            "nexmark",
            "run",
            "--query",
            "q5",
            "--input-dir",
            "/nonexistent/eddy",
        ],
        &[
            "nexmark", "run", "--query", "q5", "--events", "10", "--rate", "-1",
        ],
        &[
            "nexmark", "run", "--query", "q5", "--events", "10", "--mode", "fast",
        ],
        &["nexmark", "generate", "--events", "x", "--out", "/tmp"],
    ] {
        let output = std::process::Command::new(eddy)
            .args(args)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert_eq!(stderr.trim_end().lines().count(), 1, "{args:?}: {stderr}");
        assert!(stderr.starts_with("eddy: "), "{args:?}: {stderr}");
    }
}
