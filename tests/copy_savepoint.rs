//! Savepoints of a copy job reading the Nexmark generator: `nexmark://` → a folder of
//! exactly-once part files, with exactly-once checkpoints, stopped with a savepoint
//! (through the embedding API) twice and resumed — once with another parallelism —
//! must commit exactly the rows of an uninterrupted run; so must the `eddy` binary
//! killed with SIGKILL several times and restarted with `--restore latest`. The
//! reference is independent of the copy job: the CSV files `eddy nexmark generate`
//! writes for the same events, seed and rate.

// Tests use the OS clock for deadlines only.
#![allow(clippy::disallowed_methods)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use eddy::jobs::copy::{self, CopySpec, OnBadRecord};
use eddy::prelude::*;

const EDDY: &str = env!("CARGO_BIN_EXE_eddy");
const DEADLINE: Duration = Duration::from_secs(120);
const EVENTS: u64 = 30_000;
/// Events per second: a run takes 3 s, so the stops fall in the middle.
const RATE: u64 = 10_000;

/// Lines of every committed part file of a folder (in-progress files are hidden).
fn part_lines(dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut lines = Vec::new();
    for entry in entries {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.starts_with("part-") {
            let text = std::fs::read_to_string(&path).unwrap();
            lines.extend(text.lines().map(str::to_owned));
        }
    }
    lines
}

/// The rows `eddy nexmark generate` writes for the same events (no headers), sorted.
fn reference_rows(dir: &Path) -> Vec<String> {
    let out = dir.join("generated");
    let status = Command::new(EDDY)
        .args(["nexmark", "generate", "--events", &EVENTS.to_string()])
        .args(["--seed", "42", "--rate", &RATE.to_string(), "--out"])
        .arg(&out)
        .env_remove("EDDY_LOG")
        .output()
        .expect("run eddy nexmark generate");
    assert!(status.status.success(), "{status:?}");
    let mut rows = Vec::new();
    for table in ["person.csv", "auction.csv", "bid.csv"] {
        let text = std::fs::read_to_string(out.join(table)).unwrap();
        rows.extend(text.lines().skip(1).map(str::to_owned));
    }
    rows.sort();
    rows
}

/// Runs `body` on a thread and fails the test if it does not return in time.
fn within_deadline<R: Send + 'static>(body: impl FnOnce() -> R + Send + 'static) -> R {
    let (done, outcome) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = done.send(body());
    });
    outcome
        .recv_timeout(DEADLINE)
        .expect("the job did not return before the deadline (hang)")
}

/// The copy job, with exactly-once checkpoints under `checkpoints`, restored from
/// `restore` if given.
fn copy_job(out: &Path, checkpoints: &Path, parallelism: usize, restore: Option<PathBuf>) -> Env {
    let env = Env::new(JobConfig {
        name: "copy-nexmark".into(),
        parallelism: Some(parallelism),
        checkpoint: CheckpointConfig {
            mode: CheckpointingMode::ExactlyOnce,
            interval: Duration::from_millis(100),
            dir: Some(checkpoints.to_path_buf()),
            restore: restore.map(RestoreFrom::Path),
            ..CheckpointConfig::default()
        },
        ..JobConfig::default()
    });
    let spec = CopySpec {
        source: copy::parse_source(&format!("nexmark://?events={EVENTS}&rate={RATE}&seed=42"))
            .unwrap(),
        sink: copy::parse_sink(&format!("file://{}/?format=lines", out.display())).unwrap(),
        format: None,
        on_bad_record: OnBadRecord::Fail,
        dead_letters: None,
        preview: None,
    };
    copy::build(&env, &spec).unwrap();
    env
}

/// Starts the job, waits until more than `at_least` rows are committed, then stops it
/// with a savepoint in `savepoint`; returns the rows committed then.
fn run_and_stop(env: Env, out: &Path, at_least: usize, savepoint: &Path) -> usize {
    let handle = env.execute_async().unwrap();
    let until = Instant::now() + DEADLINE;
    while part_lines(out).len() <= at_least {
        assert!(
            Instant::now() < until,
            "no rows past {at_least} committed in time"
        );
        assert!(!handle.is_finished(), "the job ended before the stop");
        std::thread::park_timeout(Duration::from_millis(5));
    }
    let savepoint = savepoint.to_path_buf();
    let (saved, _) = handle
        .stop_with_savepoint(&savepoint)
        .expect("stop with savepoint");
    assert!(saved.join("_metadata").is_file());
    let rows = part_lines(out).len();
    assert!(
        rows < EVENTS as usize,
        "the job finished before it was stopped ({rows} rows)"
    );
    rows
}

#[test]
fn a_nexmark_copy_stopped_with_savepoints_and_resumed_commits_every_event_once() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_env("EDDY_LOG"))
        .try_init();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    let expected = reference_rows(&root);
    assert_eq!(expected.len(), EVENTS as usize);
    let out = root.join("out");
    let checkpoints = root.join("checkpoints");
    let (first, second) = (root.join("savepoint-1"), root.join("savepoint-2"));
    // Run 1 (parallelism 2) and run 2 (from its savepoint, parallelism 3) are stopped
    // with savepoints part-way; run 3 (parallelism 3) finishes.
    let (o, c, s) = (out.clone(), checkpoints.clone(), first.clone());
    let stopped = within_deadline(move || run_and_stop(copy_job(&o, &c, 2, None), &o, 0, &s));
    let (o, c, s, from) = (out.clone(), checkpoints.clone(), second.clone(), first);
    let stopped_again = within_deadline(move || {
        run_and_stop(copy_job(&o, &c, 3, Some(from)), &o, stopped + 1_000, &s)
    });
    assert!(stopped_again > stopped);
    let (o, c) = (out.clone(), checkpoints);
    within_deadline(move || copy_job(&o, &c, 3, Some(second)).execute().unwrap());
    let mut rows = part_lines(&out);
    rows.sort();
    let mut deduplicated = rows.clone();
    deduplicated.dedup();
    assert_eq!(
        rows.len(),
        deduplicated.len(),
        "{} duplicated rows",
        rows.len() - deduplicated.len()
    );
    assert_eq!(rows.len(), expected.len(), "rows lost or added");
    assert!(rows == expected, "the rows differ from the generator's");
}

#[test]
fn a_nexmark_copy_killed_and_restored_from_its_latest_checkpoint_commits_every_event_once() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    let expected = reference_rows(&root);
    let out = root.join("out");
    let checkpoints = root.join("checkpoints");
    let run = || {
        Command::new(EDDY)
            .args(["run", "copy", "--source"])
            .arg(format!("nexmark://?events={EVENTS}&rate={RATE}&seed=42"))
            .arg("--sink")
            .arg(format!("file://{}/?format=lines", out.display()))
            .args(["--parallelism", "2", "--checkpointing", "exactly-once"])
            .args(["--checkpoint-interval", "100ms", "--restore", "latest"])
            .arg("--checkpoint-dir")
            .arg(&checkpoints)
            .env_remove("EDDY_LOG")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("run eddy")
    };
    // Three runs killed once more rows were committed than before, then one to the end.
    let mut committed = 0;
    for _ in 0..3 {
        let mut child = run();
        let until = Instant::now() + DEADLINE;
        while part_lines(&out).len() <= committed + 1_000 {
            assert!(Instant::now() < until, "no progress before the deadline");
            if let Some(status) = child.try_wait().unwrap() {
                panic!("the job ended before it was killed: {status}");
            }
            std::thread::park_timeout(Duration::from_millis(5));
        }
        child.kill().unwrap();
        child.wait().unwrap();
        committed = part_lines(&out).len();
        assert!(
            committed < EVENTS as usize,
            "the job finished before the kill"
        );
    }
    let mut child = run();
    let until = Instant::now() + DEADLINE;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() >= until {
            child.kill().unwrap();
            panic!("the last run did not end before the deadline");
        }
        std::thread::park_timeout(Duration::from_millis(5));
    };
    assert!(status.success(), "{status}");
    let mut rows = part_lines(&out);
    rows.sort();
    let mut deduplicated = rows.clone();
    deduplicated.dedup();
    assert_eq!(rows.len(), deduplicated.len(), "duplicated rows");
    assert_eq!(rows.len(), expected.len(), "rows lost or added");
    assert!(rows == expected, "the rows differ from the generator's");
}
