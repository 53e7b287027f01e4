//! End-to-end tests of a watched folder with real files and real inotify:
//! `eddy run copy --source file:///DIR/?watch=true --sink print:` while files are
//! dropped in — written in place and closed, written elsewhere and moved in, a burst of
//! 1,000 small files. Every line must arrive exactly once; the unbounded job is then
//! cancelled with SIGTERM (status 130). Waits are on conditions with deadlines.

// Tests use the OS clock only for deadlines (a stuck process must fail the test).
#![allow(clippy::disallowed_methods)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

const EDDY: &str = env!("CARGO_BIN_EXE_eddy");
const DEADLINE: Duration = Duration::from_secs(60);

/// A running `eddy run copy` watching `folder`, and its stdout lines.
struct Job {
    child: Child,
    lines: Receiver<String>,
    seen: BTreeMap<String, usize>,
}

impl Job {
    fn start(folder: &Path) -> Job {
        let mut child = Command::new(EDDY)
            .args([
                "run",
                "copy",
                "--source",
                &format!("file://{}/?watch=true&format=lines", folder.display()),
                "--sink",
                "print:",
                "--parallelism",
                "2",
            ])
            .env_remove("EDDY_LOG")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start eddy");
        let stdout = child.stdout.take().unwrap();
        let (sender, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                if sender.send(line).is_err() {
                    return;
                }
            }
        });
        Job {
            child,
            lines,
            seen: BTreeMap::new(),
        }
    }

    /// Waits until every line of `expected` was seen (failing at the deadline).
    fn wait_for(&mut self, expected: &[String]) {
        let deadline = Instant::now() + DEADLINE;
        while !expected.iter().all(|line| self.seen.contains_key(line)) {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => *self.seen.entry(line).or_default() += 1,
                Err(RecvTimeoutError::Timeout) => {
                    let missing = expected
                        .iter()
                        .filter(|l| !self.seen.contains_key(*l))
                        .count();
                    let _ = self.child.kill();
                    panic!("timed out: {missing} of {} lines missing", expected.len());
                }
                Err(RecvTimeoutError::Disconnected) => {
                    let output = self.child.wait_with_output_stderr();
                    panic!("eddy ended early: {output}");
                }
            }
        }
    }

    /// Cancels the job with SIGTERM, reads the rest of its output, and checks that every
    /// line of `expected` arrived exactly once and nothing else did.
    fn stop_and_check(mut self, expected: &[String]) {
        let killed = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(killed.success());
        let deadline = Instant::now() + DEADLINE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => *self.seen.entry(line).or_default() += 1,
                Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Timeout) => {
                    let _ = self.child.kill();
                    panic!("eddy did not stop after SIGTERM");
                }
            }
        }
        let status = self.child.wait().unwrap();
        assert_eq!(status.code(), Some(130), "{status:?}");
        let twice: Vec<_> = self.seen.iter().filter(|(_, n)| **n > 1).collect();
        assert!(twice.is_empty(), "read more than once: {twice:?}");
        let mut expected_sorted = expected.to_vec();
        expected_sorted.sort();
        let seen: Vec<String> = self.seen.keys().cloned().collect();
        assert_eq!(seen, expected_sorted);
    }
}

trait StderrOf {
    fn wait_with_output_stderr(&mut self) -> String;
}

impl StderrOf for Child {
    fn wait_with_output_stderr(&mut self) -> String {
        let mut stderr = String::new();
        if let Some(mut pipe) = self.stderr.take() {
            let _ = std::io::Read::read_to_string(&mut pipe, &mut stderr);
        }
        let _ = self.wait();
        stderr
    }
}

#[test]
fn files_written_in_place_or_moved_in_arrive_exactly_once() {
    let folder = tempfile::tempdir().unwrap();
    // Beside the watched folder, on the same file system (rename is a move).
    let elsewhere = tempfile::tempdir_in(folder.path().parent().unwrap()).unwrap();
    std::fs::write(folder.path().join("present.txt"), "present-0\npresent-1\n").unwrap();
    let mut expected = vec!["present-0".to_string(), "present-1".to_string()];
    let mut job = Job::start(folder.path());
    job.wait_for(&expected);

    for file in 0..20 {
        let lines: Vec<String> = (0..3).map(|l| format!("in-place-{file}-{l}")).collect();
        std::fs::write(
            folder.path().join(format!("p{file}.txt")),
            lines.join("\n") + "\n",
        )
        .unwrap();
        expected.extend(lines);
        let lines: Vec<String> = (0..3).map(|l| format!("moved-{file}-{l}")).collect();
        let outside = elsewhere.path().join(format!("m{file}.txt"));
        std::fs::write(&outside, lines.join("\n") + "\n").unwrap();
        std::fs::rename(&outside, folder.path().join(format!("m{file}.txt"))).unwrap();
        expected.extend(lines);
        // Written under a hidden name in the folder, then renamed into place.
        let hidden = folder.path().join(format!(".h{file}.txt"));
        std::fs::write(&hidden, format!("renamed-{file}\n")).unwrap();
        std::fs::rename(&hidden, folder.path().join(format!("h{file}.txt"))).unwrap();
        expected.push(format!("renamed-{file}"));
    }
    job.wait_for(&expected);
    job.stop_and_check(&expected);
}

#[test]
fn a_burst_of_1000_small_files_arrives_exactly_once() {
    let folder = tempfile::tempdir().unwrap();
    std::fs::write(folder.path().join("first.txt"), "first\n").unwrap();
    let mut expected = vec!["first".to_string()];
    let mut job = Job::start(folder.path());
    job.wait_for(&expected);
    for file in 0..1000 {
        let line = format!("burst-{file}");
        std::fs::write(
            folder.path().join(format!("b{file:04}.txt")),
            format!("{line}\n"),
        )
        .unwrap();
        expected.push(line);
    }
    job.wait_for(&expected);
    job.stop_and_check(&expected);
}
