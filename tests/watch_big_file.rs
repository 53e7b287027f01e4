//! A 1 GB file moved into a watched folder is copied exactly once into exactly-once part
//! files although the job is killed (SIGKILL) three times while it reads the file and
//! restarted with `--restore latest` each time. Every line carries its number; the test
//! checks that each number from 0 to N-1 is committed exactly once (a bitmap here, not
//! the engine's view).
//!
//! `EDDY_BIG_FILE_MB` changes the size (default 1000).

// Tests use the OS clock for deadlines only.
#![allow(clippy::disallowed_methods)]

use std::io::{BufRead, BufWriter, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const EDDY: &str = env!("CARGO_BIN_EXE_eddy");
const DEADLINE: Duration = Duration::from_secs(600);
/// Bytes per line, the newline included.
const LINE: usize = 100;

/// Kills the job if the test fails while it runs.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let until = Instant::now() + DEADLINE;
    while !done() {
        assert!(Instant::now() < until, "timed out waiting: {what}");
        std::thread::park_timeout(Duration::from_millis(5));
    }
}

/// Bytes in the committed part files (`part-*`; in-progress and pending files are
/// hidden).
fn committed_bytes(out: &Path) -> u64 {
    std::fs::read_dir(out)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter(|e| e.file_name().to_string_lossy().starts_with("part-"))
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

/// The newest complete checkpoint's number (0: none).
fn newest_checkpoint(checkpoints: &Path) -> u64 {
    std::fs::read_dir(checkpoints.join("copy"))
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter(|e| e.path().join("_metadata").is_file())
                .filter_map(|e| {
                    e.file_name()
                        .to_string_lossy()
                        .strip_prefix("chk-")?
                        .parse::<u64>()
                        .ok()
                })
                .max()
                .unwrap_or(0)
        })
        .unwrap_or(0)
}

#[test]
fn a_one_gigabyte_file_in_a_watched_folder_is_copied_exactly_once_across_sigkills() {
    let megabytes: usize = std::env::var("EDDY_BIG_FILE_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let lines = megabytes * 1_000_000 / LINE;
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
    // Written beside the folder, then moved in (IN_MOVED_TO): complete when it appears.
    {
        let mut file = BufWriter::with_capacity(
            1 << 20,
            std::fs::File::create(staging.join("big.txt")).unwrap(),
        );
        let padding = "x".repeat(LINE - 11);
        for n in 0..lines {
            writeln!(file, "{n:09} {padding}").unwrap();
        }
        file.flush().unwrap();
    }
    let total = (lines * LINE) as u64;
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
                    "100ms",
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
    let mut job = start();
    wait_until("the first checkpoint", || {
        newest_checkpoint(&checkpoints) > 0
    });
    std::fs::rename(staging.join("big.txt"), watched.join("big.txt")).unwrap();
    // Three kills, each once more of the file is committed than before (and a newer
    // checkpoint than the restart exists, so the restarted job got going).
    for kill in 1..=3u64 {
        let goal = total * kill / 5;
        wait_until(
            &format!("{goal} bytes committed before kill {kill}"),
            || {
                assert!(
                    job.0.try_wait().unwrap().is_none(),
                    "the job ended: {}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
                committed_bytes(&out) >= goal
            },
        );
        drop(job);
        let before = newest_checkpoint(&checkpoints);
        job = start();
        wait_until("a checkpoint of the restarted job", || {
            newest_checkpoint(&checkpoints) > before
        });
    }
    wait_until("the whole file committed", || {
        assert!(
            job.0.try_wait().unwrap().is_none(),
            "the job ended: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        committed_bytes(&out) >= total
    });
    drop(job);

    // Each line number exactly once, and nothing else.
    let mut seen = vec![0u64; lines.div_ceil(64)];
    let mut count = 0usize;
    for entry in std::fs::read_dir(&out).unwrap() {
        let entry = entry.unwrap();
        if !entry.file_name().to_string_lossy().starts_with("part-") {
            continue;
        }
        let file = std::io::BufReader::new(std::fs::File::open(entry.path()).unwrap());
        for line in file.split(b'\n') {
            let line = line.unwrap();
            assert_eq!(line.len(), LINE - 1, "a whole line");
            let n: usize = std::str::from_utf8(&line[..9]).unwrap().parse().unwrap();
            assert!(n < lines, "line {n} was never written");
            let (word, bit) = (n / 64, 1u64 << (n % 64));
            assert_eq!(seen[word] & bit, 0, "line {n} committed twice");
            seen[word] |= bit;
            count += 1;
        }
    }
    assert_eq!(count, lines, "every line committed once");
    assert_eq!(committed_bytes(&out), total);
}
