//! End-to-end tests of the `eddy` binary: `eddy run wordcount` on generated text (with
//! punctuation, quotes and commas inside words, so CSV quoting matters) in STREAMING and
//! BATCH mode with various `--parallelism` / `--buffer-*` / `--cores` flags, checked
//! against counts computed here; usage errors (bad flag, missing input, unwritable
//! output, bad `--buffer-timeout`, bad `--cores`, ...) exit with status 2 and print
//! exactly one line starting with `eddy:`; a failing job exits with 1; SIGTERM cancels
//! a running job (status 130).

// Tests use the OS clock only for deadlines (a stuck process must fail the test).
#![allow(clippy::disallowed_methods)]

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

const EDDY: &str = env!("CARGO_BIN_EXE_eddy");

/// Words with the characters CSV must quote or escape.
const VOCABULARY: &[&str] = &[
    "the",
    "quick",
    "fox",
    "a,b",
    "\"quoted\"",
    "say,",
    "\"hi,",
    "there\"",
    "it's",
    "x\"y",
    "naïve",
    "café",
    "--",
    "1,000",
    ",",
    "\"",
    "end.",
    "The",
    "日本",
    "tab\u{a0}less",
];

/// A deterministic pseudo-random sequence (xorshift64*).
struct Rng(u64);

impl Rng {
    fn below(&mut self, bound: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % bound as u64) as usize
    }
}

/// Text of `lines` lines of words separated by varied whitespace (spaces, tabs, blank
/// lines, `\r\n`), Zipf-ish so some words are frequent.
fn generate_text(lines: usize, seed: u64) -> String {
    let mut rng = Rng(seed | 1);
    let mut text = String::new();
    for line in 0..lines {
        let words = rng.below(12);
        for index in 0..words {
            if index > 0 {
                text.push_str([" ", "  ", "\t", " \t "][rng.below(4)]);
            }
            let pick = rng.below(VOCABULARY.len()).min(rng.below(VOCABULARY.len()));
            text.push_str(VOCABULARY[pick]);
            if rng.below(7) == 0 {
                text.push_str(&format!("w{}", rng.below(50)));
            }
        }
        text.push_str(if line % 5 == 4 { "\r\n" } else { "\n" });
    }
    text
}

/// The reference: whitespace-separated words and their counts.
fn count_words(text: &str) -> BTreeMap<String, u64> {
    let mut counts = BTreeMap::new();
    for word in text.split_whitespace() {
        *counts.entry(word.to_string()).or_insert(0) += 1;
    }
    counts
}

fn read_rows(path: &Path) -> Vec<(String, u64)> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .from_path(path)
        .expect("output exists");
    let headers = reader.headers().expect("header row").clone();
    assert_eq!(headers.iter().collect::<Vec<_>>(), vec!["word", "count"]);
    reader
        .records()
        .map(|row| {
            let row = row.expect("valid CSV row");
            assert_eq!(row.len(), 2, "row {row:?}");
            (row[0].to_string(), row[1].parse().expect("a count"))
        })
        .collect()
}

/// Runs `eddy` with `args`, failing the test if it has not exited within `deadline`.
fn run_eddy(args: &[&str], deadline: Duration) -> Output {
    let child = Command::new(EDDY)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start eddy");
    wait_with_deadline(child, deadline)
}

fn wait_with_deadline(mut child: Child, deadline: Duration) -> Output {
    let until = Instant::now() + deadline;
    loop {
        if child.try_wait().expect("wait for eddy").is_some() {
            return child.wait_with_output().expect("collect eddy's output");
        }
        if Instant::now() >= until {
            let _ = child.kill();
            let _ = child.wait();
            panic!("eddy did not exit within {deadline:?}");
        }
        std::thread::park_timeout(Duration::from_millis(5));
    }
}

fn write_input(dir: &Path, text: &str) -> std::path::PathBuf {
    let path = dir.join("input.txt");
    std::fs::File::create(&path)
        .and_then(|mut file| file.write_all(text.as_bytes()))
        .expect("write input");
    path
}

fn assert_success(output: &Output) {
    assert!(
        output.status.success(),
        "eddy failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn batch_wordcount_writes_one_row_per_word_with_its_count() {
    let dir = tempfile::tempdir().unwrap();
    let text = generate_text(3_000, 11);
    let input = write_input(dir.path(), &text);
    let expected = count_words(&text);
    let flag_sets: &[&[&str]] = &[
        &["--parallelism", "1"],
        &[
            "--parallelism",
            "2",
            "--buffer-size",
            "7",
            "--buffer-timeout",
            "0",
        ],
        &[
            "--parallelism",
            "3",
            "--buffer-count",
            "1",
            "--buffer-timeout",
            "100us",
        ],
        &["--cores", "0", "--parallelism", "2", "--buffer-size", "1"],
    ];
    for flags in flag_sets {
        let output_path = dir.path().join("counts.csv");
        let mut args = vec![
            "run",
            "wordcount",
            "--mode",
            "batch",
            "--input",
            input.to_str().unwrap(),
            "--output",
            output_path.to_str().unwrap(),
        ];
        args.extend_from_slice(flags);
        let output = run_eddy(&args, Duration::from_secs(60));
        assert_success(&output);
        let rows = read_rows(&output_path);
        let mut actual = BTreeMap::new();
        for (word, count) in rows {
            assert!(
                actual.insert(word.clone(), count).is_none(),
                "{flags:?}: word {word:?} has two rows in BATCH mode"
            );
        }
        assert_eq!(actual, expected, "flags {flags:?}");
    }
}

#[test]
fn streaming_wordcount_emits_every_update_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let text = generate_text(2_000, 23);
    let input = write_input(dir.path(), &text);
    let expected = count_words(&text);
    let flag_sets: &[&[&str]] = &[
        &[],
        &["--parallelism", "1", "--buffer-timeout", "5ms"],
        &[
            "--parallelism",
            "4",
            "--buffer-size",
            "3",
            "--buffer-count",
            "2",
            "--buffer-timeout",
            "0",
        ],
        &[
            "--cores",
            "0-1",
            "--buffer-size",
            "2048",
            "--buffer-timeout",
            "10ms",
        ],
    ];
    for flags in flag_sets {
        let output_path = dir.path().join("counts.csv");
        let mut args = vec![
            "run",
            "wordcount",
            "--mode",
            "streaming",
            "--input",
            input.to_str().unwrap(),
            "--output",
            output_path.to_str().unwrap(),
        ];
        args.extend_from_slice(flags);
        let output = run_eddy(&args, Duration::from_secs(60));
        assert_success(&output);
        let mut updates: BTreeMap<String, Vec<u64>> = BTreeMap::new();
        for (word, count) in read_rows(&output_path) {
            updates.entry(word).or_default().push(count);
        }
        assert_eq!(
            updates.keys().collect::<Vec<_>>(),
            expected.keys().collect::<Vec<_>>(),
            "flags {flags:?}"
        );
        for (word, total) in &expected {
            // Every update, in order: 1, 2, 3, ..., the last one being the final count.
            assert_eq!(
                updates[word],
                (1..=*total).collect::<Vec<_>>(),
                "flags {flags:?}: updates of {word:?}"
            );
        }
    }
}

/// Runs a command expected to be a usage error: status 2, one stderr line `eddy: ...`.
fn assert_usage_error(args: &[&str], mention: &str) {
    let output = run_eddy(args, Duration::from_secs(30));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{args:?}: stderr {stderr:?}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{args:?}: exactly one line, got {stderr:?}");
    assert!(lines[0].starts_with("eddy:"), "{args:?}: {stderr:?}");
    assert!(
        lines[0].contains(mention),
        "{args:?}: the message should mention {mention:?}: {stderr:?}"
    );
}

#[test]
fn usage_errors_exit_with_status_2_and_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let input = write_input(dir.path(), "a b c\n");
    let input = input.to_str().unwrap();
    let output = dir.path().join("out.csv");
    let output = output.to_str().unwrap();
    let run = |extra: &[&str]| -> Vec<String> {
        let mut args = vec!["run", "wordcount", "--input", input, "--output", output];
        args.extend_from_slice(extra);
        args.into_iter().map(String::from).collect()
    };
    let cases: Vec<(Vec<String>, &str)> = vec![
        (run(&["--bogus"]), "--bogus"),
        (run(&["--buffer-timeout", "5"]), "5"),
        (run(&["--buffer-timeout", "fast"]), "fast"),
        (run(&["--buffer-size", "0"]), "0"),
        (run(&["--buffer-count", "many"]), "many"),
        (run(&["--parallelism", "0"]), "0"),
        (run(&["--mode", "bach"]), "bach"),
        (run(&["--cores", "abc"]), "abc"),
        (run(&["--cores", "3-1"]), "3-1"),
        (run(&["--cores", "0,0"]), "cores"),
        (run(&["--cores", "100000"]), "100000"),
        (
            vec![
                "run".into(),
                "wordcount".into(),
                "--input".into(),
                dir.path().join("missing.txt").to_str().unwrap().into(),
                "--output".into(),
                output.into(),
            ],
            "missing.txt",
        ),
        (
            vec![
                "run".into(),
                "wordcount".into(),
                "--input".into(),
                input.into(),
                "--output".into(),
                dir.path()
                    .join("no/such/dir/out.csv")
                    .to_str()
                    .unwrap()
                    .into(),
            ],
            "out.csv",
        ),
        (
            vec![
                "run".into(),
                "wordcount".into(),
                "--input".into(),
                input.into(),
            ],
            "--output",
        ),
        (vec!["run".into(), "nosuchjob".into()], "nosuchjob"),
    ];
    for (args, mention) in &cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        assert_usage_error(&args, mention);
    }
    // A folder is not an input file.
    assert_usage_error(
        &[
            "run",
            "wordcount",
            "--input",
            dir.path().to_str().unwrap(),
            "--output",
            output,
        ],
        "not a file",
    );
}

#[test]
fn a_failing_job_exits_with_status_1() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("bad.txt");
    std::fs::write(&input, b"fine line\nbad \xff byte\n").unwrap();
    let output_path = dir.path().join("out.csv");
    let output = run_eddy(
        &[
            "run",
            "wordcount",
            "--input",
            input.to_str().unwrap(),
            "--output",
            output_path.to_str().unwrap(),
        ],
        Duration::from_secs(30),
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "stderr {stderr:?}");
    let last = stderr.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("eddy:") && last.contains("UTF-8"),
        "stderr {stderr:?}"
    );
}

fn exit_status_with_deadline(child: &mut Child, deadline: Duration) -> Option<ExitStatus> {
    let until = Instant::now() + deadline;
    loop {
        if let Some(status) = child.try_wait().expect("wait for eddy") {
            return Some(status);
        }
        if Instant::now() >= until {
            return None;
        }
        std::thread::park_timeout(Duration::from_millis(5));
    }
}

#[test]
fn sigterm_cancels_a_running_job() {
    let dir = tempfile::tempdir().unwrap();
    // Large enough that the job is still running when the signal comes (a few seconds
    // in a debug build); the test checks that it was.
    let text = generate_text(400_000, 5);
    let input = write_input(dir.path(), &text);
    let output_path = dir.path().join("out.csv");
    let mut child = Command::new(EDDY)
        .args([
            "run",
            "wordcount",
            "--input",
            input.to_str().unwrap(),
            "--output",
            output_path.to_str().unwrap(),
            "--buffer-timeout",
            "0",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start eddy");
    // Wait until the job has written output (it is running), then signal it.
    let until = Instant::now() + Duration::from_secs(30);
    while std::fs::metadata(&output_path).map_or(0, |m| m.len()) < 1024 {
        assert!(Instant::now() < until, "the job wrote no output");
        assert!(child.try_wait().unwrap().is_none(), "eddy exited too early");
        std::thread::park_timeout(Duration::from_millis(5));
    }
    assert!(
        child.try_wait().unwrap().is_none(),
        "eddy finished before it could be signalled: make the input larger"
    );
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("run kill");
    assert!(killed.success());
    let status = exit_status_with_deadline(&mut child, Duration::from_secs(20));
    let Some(status) = status else {
        let _ = child.kill();
        let _ = child.wait();
        panic!("eddy did not exit within 20 s of SIGTERM");
    };
    let stderr = std::io::read_to_string(child.stderr.take().unwrap()).unwrap();
    assert_eq!(status.code(), Some(130), "stderr {stderr:?}");
    assert!(
        stderr.lines().any(|line| line.starts_with("eddy:")),
        "stderr {stderr:?}"
    );
}

/// Files in `dir` whose name marks them as spill files.
fn spill_files_in(dir: &Path) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .map(|entry| entry.unwrap().path())
                .filter(|path| {
                    path.file_name()
                        .and_then(|name| name.to_str())
                        .is_some_and(|name| name.starts_with("eddy-spill-"))
                })
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn spill_files_of_a_killed_batch_run_are_swept_by_the_next_run() {
    let dir = tempfile::tempdir().unwrap();
    let text = generate_text(400_000, 7);
    let input = write_input(dir.path(), &text);
    let spill_dir = dir.path().join("spill");
    std::fs::create_dir(&spill_dir).unwrap();
    let output_path = dir.path().join("counts.csv");
    let args = [
        "run",
        "wordcount",
        "--mode",
        "batch",
        "--memory-budget",
        "1MiB",
        "--spill-dir",
        spill_dir.to_str().unwrap(),
        "--input",
        input.to_str().unwrap(),
        "--output",
        output_path.to_str().unwrap(),
    ];
    let mut child = Command::new(EDDY)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start eddy");
    // Wait until the job has spilled a few runs, then SIGKILL it: nothing gets to clean up.
    let until = Instant::now() + Duration::from_secs(60);
    while spill_files_in(&spill_dir).len() < 3 {
        assert!(Instant::now() < until, "the job spilled nothing");
        assert!(
            child.try_wait().unwrap().is_none(),
            "eddy exited before it could be killed: make the input larger"
        );
        std::thread::park_timeout(Duration::from_millis(2));
    }
    child.kill().expect("SIGKILL eddy");
    child.wait().unwrap();
    let left = spill_files_in(&spill_dir);
    assert!(!left.is_empty(), "a killed run leaves its spill files");

    // The next run of the job with the same spill folder sweeps them, and is correct.
    let output = run_eddy(&args, Duration::from_secs(600));
    assert_success(&output);
    assert!(
        left.iter().all(|path| !path.exists()),
        "stale spill files were swept"
    );
    assert_eq!(spill_files_in(&spill_dir), Vec::<std::path::PathBuf>::new());
    let rows: BTreeMap<String, u64> = read_rows(&output_path).into_iter().collect();
    assert_eq!(rows, count_words(&text));
}

/// Peak resident set (VmHWM) of a running process, in KiB; `None` once it is gone.
fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
}

/// The acceptance check of BATCH spilling at CI scale: a word count of many distinct
/// words through a 32 MiB budget stays below budget + 150 MiB of peak RSS, is correct,
/// and leaves no spill file. `EDDY_SPILL_TEST_MB` sets the input size (default 12; the
/// issue's 300 is for a release build: `EDDY_SPILL_TEST_MB=300 cargo test --release
/// --test wordcount batch_wordcount_peak_rss`).
#[test]
fn batch_wordcount_peak_rss_stays_within_budget_plus_150_mib() {
    let input_mb: u64 = std::env::var("EDDY_SPILL_TEST_MB")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(12);
    if !Path::new("/proc/self/status").exists() {
        return; // VmHWM is Linux-only
    }
    let dir = tempfile::tempdir().unwrap();
    // Words `w<7 hex digits>` drawn from 4 M values: ~0.3 M distinct per 12 MB, ~4 M
    // in 300 MB.
    let input = dir.path().join("words.txt");
    let mut expected: BTreeMap<String, u64> = BTreeMap::new();
    {
        let mut out = std::io::BufWriter::new(std::fs::File::create(&input).unwrap());
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let mut written = 0u64;
        while written < input_mb * 1_000_000 {
            let word = format!("w{:07x}", rng.below(4_000_000));
            let separator = if rng.below(10) == 0 { "\n" } else { " " };
            write!(out, "{word}{separator}").unwrap();
            written += word.len() as u64 + 1;
            *expected.entry(word).or_insert(0) += 1;
        }
        out.flush().unwrap();
    }
    let spill_dir = dir.path().join("spill");
    std::fs::create_dir(&spill_dir).unwrap();
    let output_path = dir.path().join("counts.csv");
    let mut child = Command::new(EDDY)
        .args([
            "run",
            "wordcount",
            "--mode",
            "batch",
            "--memory-budget",
            "32MiB",
            "--spill-dir",
            spill_dir.to_str().unwrap(),
            "--input",
            input.to_str().unwrap(),
            "--output",
            output_path.to_str().unwrap(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start eddy");
    let pid = child.id();
    let until = Instant::now() + Duration::from_secs(600);
    let mut peak_kib = 0;
    let mut spilled = false;
    let status = loop {
        if let Some(kib) = peak_rss_kib(pid) {
            peak_kib = peak_kib.max(kib);
        }
        spilled = spilled || !spill_files_in(&spill_dir).is_empty();
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() >= until {
            let _ = child.kill();
            panic!("eddy did not finish within 10 minutes");
        }
        std::thread::park_timeout(Duration::from_millis(2));
    };
    let stderr = std::io::read_to_string(child.stderr.take().unwrap()).unwrap();
    assert!(status.success(), "eddy failed ({status}): {stderr}");
    assert!(
        spilled,
        "the job spilled (the budget must be too small for the input)"
    );
    let limit_kib = (32 + 150) * 1024;
    assert!(
        peak_kib < limit_kib,
        "peak RSS {peak_kib} KiB, limit {limit_kib} KiB (budget + 150 MiB)"
    );
    eprintln!("{input_mb} MB through a 32 MiB budget: peak RSS {peak_kib} KiB");
    assert_eq!(spill_files_in(&spill_dir), Vec::<std::path::PathBuf>::new());
    let rows: BTreeMap<String, u64> = read_rows(&output_path).into_iter().collect();
    assert_eq!(rows, expected);
}
