//! Fault injection on the `eddy` binary: `eddy run wordcount --output DIR/
//! --checkpointing exactly-once` is killed with SIGKILL at many moments and restarted
//! with `--restore latest` until it finishes; the committed part files must then hold,
//! for every word w, each count 1..n(w) exactly once (n(w) counted here, independently).
//! The same with at-least-once: nothing lost. A damaged newest checkpoint is reported
//! naming the file and recovery falls back to the previous one, withdrawing what was
//! committed after it; with every checkpoint damaged, the run fails instead of starting
//! from scratch.
//!
//! Kill moments come from a fixed pseudo-random sequence (so a failure can be replayed)
//! and are spread over a run; `EDDY_KILL_POINTS` raises their number for a longer soak.

// Tests use the OS clock for deadlines and kill moments only.
#![allow(clippy::disallowed_methods)]

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const EDDY: &str = env!("CARGO_BIN_EXE_eddy");
const DEADLINE: Duration = Duration::from_secs(120);

/// The tests of this file run one at a time: each starts jobs pinned to every core,
/// and kill moments only mean something when a job is not starved by another one.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// xorshift64*: deterministic kill moments and text.
struct Rng(u64);

impl Rng {
    fn below(&mut self, bound: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % bound
    }
}

/// `lines` lines of 8 words from a vocabulary of 3000 (some with commas and quotes).
fn write_text(path: &Path, lines: usize, seed: u64) -> BTreeMap<String, u64> {
    let mut rng = Rng(seed | 1);
    let mut counts = BTreeMap::new();
    let mut text = String::new();
    for _ in 0..lines {
        for position in 0..8 {
            let word = match rng.below(50) {
                0 => "a,b".to_string(),
                1 => "\"q\"".to_string(),
                _ => format!("w{}", rng.below(3_000)),
            };
            if position > 0 {
                text.push(' ');
            }
            text.push_str(&word);
            *counts.entry(word).or_insert(0) += 1;
        }
        text.push('\n');
    }
    std::fs::write(path, text).unwrap();
    counts
}

fn start(input: &Path, out: &Path, checkpoints: &Path, mode: &str, log: &Path) -> Child {
    let log = std::fs::File::options()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    Command::new(EDDY)
        .args(["run", "wordcount", "--input"])
        .arg(input)
        .arg("--output")
        .arg(format!("{}/", out.display()))
        .args(["--checkpointing", mode, "--checkpoint-interval", "50ms"])
        .arg("--checkpoint-dir")
        .arg(checkpoints)
        .args(["--restore", "latest", "--parallelism", "2"])
        .env("EDDY_LOG", "info")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap()
}

/// Waits for the child up to `for_at_most`; `Some(success)` when it exited.
fn wait_for(child: &mut Child, for_at_most: Duration) -> Option<bool> {
    let until = Instant::now() + for_at_most;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status.success());
        }
        if Instant::now() >= until {
            return None;
        }
        std::thread::park_timeout(Duration::from_millis(2));
    }
}

/// Waits until `done` holds, checking every few milliseconds; fails the test naming
/// `what` (and whatever `check` asserts on the way) when [`DEADLINE`] passes first.
fn wait_until(what: &str, mut check: impl FnMut(), mut done: impl FnMut() -> bool) {
    let until = Instant::now() + DEADLINE;
    while !done() {
        check();
        assert!(Instant::now() < until, "timed out waiting: {what}");
        std::thread::park_timeout(Duration::from_millis(2));
    }
}

/// Kills the job if the test fails while it runs (no orphan left behind).
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Every `(word, count)` row of the visible part files, by word.
fn committed(out: &Path) -> HashMap<String, Vec<u64>> {
    let mut rows: HashMap<String, Vec<u64>> = HashMap::new();
    let mut names: Vec<PathBuf> = std::fs::read_dir(out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            name.starts_with("part-") && p.is_file()
        })
        .collect();
    names.sort();
    for path in names {
        let mut reader = csv::Reader::from_path(&path).unwrap();
        assert_eq!(reader.headers().unwrap(), vec!["word", "count"], "{path:?}");
        for row in reader.records() {
            let row = row.unwrap();
            rows.entry(row[0].to_string())
                .or_default()
                .push(row[1].parse().unwrap());
        }
    }
    rows
}

/// Exactly once: every word has each count 1..=n exactly once, no other word.
fn assert_exactly_once(expected: &BTreeMap<String, u64>, rows: &HashMap<String, Vec<u64>>) {
    assert_eq!(rows.len(), expected.len(), "the same words");
    for (word, &n) in expected {
        let mut counts = rows.get(word).cloned().unwrap_or_default();
        counts.sort_unstable();
        assert_eq!(
            counts,
            (1..=n).collect::<Vec<_>>(),
            "word {word:?}: every count 1..={n} exactly once"
        );
    }
}

/// At least once: nothing lost. Records replayed after a restore may be counted twice
/// (barriers are not aligned, so a snapshot can hold the effect of records after it):
/// every word's counts run without a gap from 1 to at least n.
fn assert_at_least_once(expected: &BTreeMap<String, u64>, rows: &HashMap<String, Vec<u64>>) {
    assert_eq!(rows.len(), expected.len(), "the same words");
    for (word, &n) in expected {
        let mut counts = rows.get(word).cloned().unwrap_or_default();
        counts.sort_unstable();
        counts.dedup();
        let top = counts.last().copied().unwrap_or(0);
        assert!(
            top >= n,
            "word {word:?}: counted {top} times, expected at least {n}"
        );
        assert!(
            counts.iter().copied().eq(1..=top),
            "word {word:?}: a count between 1 and {top} is missing"
        );
    }
}

/// Runs the job, killing it at `kills` moments, then lets it finish. Returns the
/// number of kills that hit a running process.
fn run_with_kills(dir: &Path, input: &Path, mode: &str, kills: usize, seed: u64) -> usize {
    let (out, checkpoints, log) = (dir.join("out"), dir.join("ck"), dir.join("log"));
    kill_repeatedly(&log, kills, seed, 250, || {
        start(input, &out, &checkpoints, mode, &log)
    })
}

/// Starts the job with `start` again and again, killing it at `kills` moments, then
/// lets it finish. Returns the number of kills that hit a running process.
/// Kill moments fall in the first `window_ms` (plus 10 ms) of an attempt.
fn kill_repeatedly(
    log: &Path,
    kills: usize,
    seed: u64,
    window_ms: u64,
    mut start: impl FnMut() -> Child,
) -> usize {
    let mut rng = Rng(seed);
    let mut hits = 0;
    let started = Instant::now();
    loop {
        assert!(started.elapsed() < DEADLINE, "the job never finished");
        let mut guard = KillOnDrop(start());
        let child = &mut guard.0;
        if hits < kills {
            // A moment early in this attempt (start-up included).
            let after = Duration::from_millis(10 + rng.below(window_ms));
            if wait_for(child, after).is_none() {
                child.kill().unwrap(); // SIGKILL
                child.wait().unwrap();
                hits += 1;
                continue;
            }
        }
        let finished = wait_for(child, DEADLINE).expect("the last attempt finishes");
        let log = std::fs::read_to_string(log).unwrap_or_default();
        assert!(finished, "the job failed:\n{log}");
        return hits;
    }
}

fn kill_points() -> usize {
    std::env::var("EDDY_KILL_POINTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(12)
}

#[test]
fn exactly_once_holds_across_sigkills_at_random_moments() {
    let _serial = serial();
    // Two chains of kills (two inputs) so that CI covers >= 20 kill points.
    let mut total = 0;
    for (seed, lines) in [(7u64, 120_000usize), (11, 100_000)] {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("in.txt");
        let expected = write_text(&input, lines, seed);
        total += run_with_kills(dir.path(), &input, "exactly-once", kill_points(), seed);
        assert_exactly_once(&expected, &committed(&dir.path().join("out")));
    }
    assert!(total >= 20, "only {total} kills hit a running job");
}

#[test]
fn at_least_once_loses_nothing_across_sigkills() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.txt");
    let expected = write_text(&input, 40_000, 3);
    run_with_kills(dir.path(), &input, "at-least-once", 6, 3);
    assert_at_least_once(&expected, &committed(&dir.path().join("out")));
}

/// The complete checkpoints of the job, newest first.
fn complete_checkpoints(checkpoints: &Path) -> Vec<PathBuf> {
    complete_checkpoints_of(checkpoints, "wordcount")
}

/// The complete checkpoints of job `name`, newest first.
fn complete_checkpoints_of(checkpoints: &Path, name: &str) -> Vec<PathBuf> {
    let job = checkpoints.join(name);
    let mut found: Vec<(u64, PathBuf)> = std::fs::read_dir(&job)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter(|e| e.path().join("_metadata").is_file())
                .filter_map(|e| {
                    let name = e.file_name().to_string_lossy().into_owned();
                    Some((name.strip_prefix("chk-")?.parse().ok()?, e.path()))
                })
                .collect()
        })
        .unwrap_or_default();
    found.sort_by_key(|entry| std::cmp::Reverse(entry.0));
    found.into_iter().map(|(_, path)| path).collect()
}

/// Runs until at least two checkpoints are complete, then SIGKILLs.
fn run_until_two_checkpoints(input: &Path, dir: &Path) {
    let (out, checkpoints, log) = (dir.join("out"), dir.join("ck"), dir.join("log"));
    let mut guard = KillOnDrop(start(input, &out, &checkpoints, "exactly-once", &log));
    wait_until(
        "two complete checkpoints",
        || {
            assert!(
                guard.0.try_wait().unwrap().is_none(),
                "finished too early: use more input"
            )
        },
        || complete_checkpoints(&checkpoints).len() >= 2,
    );
    drop(guard); // SIGKILL
}

#[test]
fn a_damaged_newest_checkpoint_falls_back_and_withdraws_later_output() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.txt");
    let expected = write_text(&input, 150_000, 5);
    run_until_two_checkpoints(&input, dir.path());
    let checkpoints = complete_checkpoints(&dir.path().join("ck"));
    let newest = &checkpoints[0];
    // Truncate the state file of the counting operator in the newest checkpoint.
    let damaged = std::fs::read_dir(newest)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("op-count-")
        })
        .expect("the count operator has state");
    let bytes = std::fs::read(&damaged).unwrap();
    std::fs::write(&damaged, &bytes[..bytes.len() / 2]).unwrap();

    let log = dir.path().join("log");
    std::fs::write(&log, "").unwrap();
    let mut guard = KillOnDrop(start(
        &input,
        &dir.path().join("out"),
        &dir.path().join("ck"),
        "exactly-once",
        &log,
    ));
    assert_eq!(
        wait_for(&mut guard.0, DEADLINE),
        Some(true),
        "recovery finishes"
    );
    let text = std::fs::read_to_string(&log).unwrap();
    let damaged_name = damaged.file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        text.contains("skipping a damaged checkpoint") && text.contains(&damaged_name),
        "the damaged file is named:\n{text}"
    );
    assert_exactly_once(&expected, &committed(&dir.path().join("out")));
}

#[test]
fn with_every_checkpoint_damaged_the_run_fails_instead_of_starting_over() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.txt");
    write_text(&input, 150_000, 9);
    run_until_two_checkpoints(&input, dir.path());
    for checkpoint in complete_checkpoints(&dir.path().join("ck")) {
        let metadata = checkpoint.join("_metadata");
        let bytes = std::fs::read(&metadata).unwrap();
        let mut flipped = bytes.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 0xff;
        std::fs::write(&metadata, flipped).unwrap();
    }
    let output = Command::new(EDDY)
        .args(["run", "wordcount", "--input"])
        .arg(&input)
        .arg("--output")
        .arg(format!("{}/", dir.path().join("out").display()))
        .args(["--checkpointing", "exactly-once", "--restore", "latest"])
        .arg("--checkpoint-dir")
        .arg(dir.path().join("ck"))
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("no readable checkpoint") && stderr.contains("_metadata"),
        "{stderr}"
    );
}

#[test]
fn a_folder_copy_is_exactly_once_across_sigkills() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let (input, out, checkpoints, log) = (
        dir.path().join("in"),
        dir.path().join("out"),
        dir.path().join("ck"),
        dir.path().join("log"),
    );
    std::fs::create_dir_all(&input).unwrap();
    let mut expected = Vec::new();
    for file in 0..500 {
        let mut text = String::new();
        for line in 0..2_000 {
            let row = format!("file {file} line {line}");
            text.push_str(&row);
            text.push('\n');
            expected.push(row);
        }
        std::fs::write(input.join(format!("f{file:03}.txt")), text).unwrap();
    }
    let source = format!("file://{}?format=lines", input.display());
    let sink = format!("file://{}/?format=lines", out.display());
    let hits = kill_repeatedly(&log, 8, 21, 80, || {
        let log = std::fs::File::options()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap();
        Command::new(EDDY)
            .args(["run", "copy", "--source", &source, "--sink", &sink])
            .args([
                "--checkpointing",
                "exactly-once",
                "--checkpoint-interval",
                "20ms",
            ])
            .arg("--checkpoint-dir")
            .arg(&checkpoints)
            .args(["--restore", "latest", "--parallelism", "2"])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap()
    });
    assert!(hits >= 3, "only {hits} kills hit the running job");
    let mut lines: Vec<String> = Vec::new();
    for entry in std::fs::read_dir(&out).unwrap() {
        let path = entry.unwrap().path();
        if path
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("part-")
        {
            let text = std::fs::read_to_string(&path).unwrap();
            lines.extend(text.lines().map(str::to_owned));
        }
    }
    lines.sort();
    expected.sort();
    assert_eq!(
        lines.len(),
        expected.len(),
        "every line once: none lost or repeated"
    );
    assert_eq!(lines, expected);
}

/// Every line of the committed part files (`part-*`) in `out`.
fn committed_lines(out: &Path) -> Vec<String> {
    let mut lines = Vec::new();
    let Ok(entries) = std::fs::read_dir(out) else {
        return lines;
    };
    for entry in entries {
        let path = entry.unwrap().path();
        if path
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("part-")
        {
            let text = std::fs::read_to_string(&path).unwrap();
            lines.extend(text.lines().map(str::to_owned));
        }
    }
    lines
}

#[test]
fn a_watched_folder_is_copied_exactly_once_across_sigkills() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let (watched, staging, out, checkpoints, log) = (
        dir.path().join("in"),
        dir.path().join("staging"),
        dir.path().join("out"),
        dir.path().join("ck"),
        dir.path().join("log"),
    );
    std::fs::create_dir_all(&watched).unwrap();
    std::fs::create_dir_all(&staging).unwrap();
    let source = format!("file://{}/?format=lines&watch=true", watched.display());
    let sink = format!("file://{}/?format=lines", out.display());
    let start = || {
        let log = std::fs::File::options()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap();
        KillOnDrop(
            Command::new(EDDY)
                .args(["run", "copy", "--source", &source, "--sink", &sink])
                .args([
                    "--checkpointing",
                    "exactly-once",
                    "--checkpoint-interval",
                    "30ms",
                ])
                .arg("--checkpoint-dir")
                .arg(&checkpoints)
                .args(["--restore", "latest", "--parallelism", "2"])
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .unwrap(),
        )
    };
    // 1 000 small files in bursts of 100, half written in place, half written beside
    // the folder and moved in; the job is killed after every other burst and restarted.
    // Files written in place are written only once the job is running (a checkpoint
    // newer than the restart exists): a file still being written when a job starts
    // and lists the folder is taken as complete, which is why writers that may race a
    // restart should write elsewhere and move files in (docs/ARCHITECTURE.md).
    let newest = |checkpoints: &Path| {
        complete_checkpoints_of(checkpoints, "copy")
            .first()
            .map(|path| {
                path.file_name().unwrap().to_string_lossy()[4..]
                    .parse::<u64>()
                    .unwrap()
            })
            .unwrap_or(0)
    };
    let running_since = |checkpoints: &Path, before: u64| {
        wait_until(
            "a checkpoint of the restarted job",
            || {},
            || newest(checkpoints) > before,
        );
    };
    let mut expected = Vec::new();
    let mut rng = Rng(17);
    let mut job = start();
    running_since(&checkpoints, 0);
    for burst in 0..10 {
        for file in 0..100 {
            let name = format!("b{burst:02}-f{file:03}.txt");
            let mut text = String::new();
            for line in 0..20 {
                let row = format!("{name} line {line}");
                text.push_str(&row);
                text.push('\n');
                expected.push(row);
            }
            if file % 2 == 0 {
                std::fs::write(watched.join(&name), text).unwrap();
            } else {
                std::fs::write(staging.join(&name), text).unwrap();
                std::fs::rename(staging.join(&name), watched.join(&name)).unwrap();
            }
        }
        if burst % 2 == 1 {
            // Let it run a moment (maybe a checkpoint or two), then SIGKILL.
            let moment = Duration::from_millis(10 + rng.below(150));
            assert_eq!(wait_for(&mut job.0, moment), None, "the watching job ended");
            drop(job);
            let before = newest(&checkpoints);
            job = start();
            running_since(&checkpoints, before);
        }
    }
    // The last attempt commits everything: wait for it, with a deadline.
    let mut running = job;
    wait_until(
        "every line committed",
        || {
            assert!(
                running.0.try_wait().unwrap().is_none(),
                "the job ended: {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            )
        },
        || committed_lines(&out).len() >= expected.len(),
    );
    drop(running);
    let mut lines = committed_lines(&out);
    lines.sort();
    expected.sort();
    assert_eq!(lines.len(), expected.len(), "no line lost or repeated");
    assert_eq!(lines, expected);
}
