//! `eddy run copy` between Kafka topics on a real broker (`scripts/kafka start`, or
//! `scripts/test`): exactly-once and at-least-once, formats converted on the way, a
//! process aborted just before its transaction commits, and bad Kafka URIs.
#![allow(clippy::disallowed_methods)] // tests wait with deadlines on the OS clock

#[path = "../connectors/tests/support/mod.rs"]
mod support;

use std::process::{Command, Output};

use support::*;

const EDDY: &str = env!("CARGO_BIN_EXE_eddy");

fn eddy(args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(EDDY)
        .args(["run", "copy"])
        .args(args)
        .envs(env.iter().copied())
        .env_remove("EDDY_LOG")
        .output()
        .expect("run eddy")
}

fn topics(bootstrap: &str, records: &[String]) -> (String, String) {
    let input = unique_topic("copy-in");
    let output = unique_topic("copy-out");
    create_topic(bootstrap, &input, 4);
    create_topic(bootstrap, &output, 4);
    produce(bootstrap, &input, 4, records);
    (input, output)
}

#[test]
fn copy_moves_a_topic_to_another_exactly_once() {
    let bootstrap = broker();
    let records: Vec<String> = (0..3000).map(|i| format!("{{\"i\":{i}}}")).collect();
    let (input, output) = topics(&bootstrap, &records);
    let result = eddy(
        &[
            "--source",
            &format!("kafka://{bootstrap}/{input}?bounded=true&format=jsonl"),
            "--sink",
            &format!("kafka://{bootstrap}/{output}?delivery=exactly-once"),
            "--parallelism",
            "2",
        ],
        &[],
    );
    assert!(result.status.success(), "{result:?}");
    assert_eq!(sorted(read_committed(&bootstrap, &output)), sorted(records));
}

#[test]
fn copy_at_least_once_converts_csv_values_to_json_lines() {
    let bootstrap = broker();
    let records: Vec<String> = (0..500).map(|i| format!("{i},\"x,{i}\"")).collect();
    let (input, output) = topics(&bootstrap, &records);
    let result = eddy(
        &[
            "--source",
            &format!("kafka://{bootstrap}/{input}?bounded=true&format=csv"),
            "--sink",
            &format!("kafka://{bootstrap}/{output}?delivery=at-least-once&format=jsonl"),
        ],
        &[],
    );
    assert!(result.status.success(), "{result:?}");
    let expected: Vec<String> = (0..500).map(|i| format!("[\"{i}\",\"x,{i}\"]")).collect();
    assert_eq!(
        sorted(read_committed(&bootstrap, &output)),
        sorted(expected)
    );
}

#[test]
fn a_copy_aborted_before_its_commit_and_run_again_writes_each_record_once() {
    let bootstrap = broker();
    let records: Vec<String> = (0..1000).map(|i| format!("line {i}")).collect();
    let (input, output) = topics(&bootstrap, &records);
    let args = [
        "--source".to_string(),
        format!("kafka://{bootstrap}/{input}?bounded=true"),
        "--sink".to_string(),
        format!("kafka://{bootstrap}/{output}?delivery=exactly-once"),
        "--parallelism".to_string(),
        "2".to_string(),
    ];
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let aborted = eddy(&args, &[("EDDY_TEST_ABORT_BEFORE_COMMIT", "1")]);
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(aborted.status.signal(), Some(6), "{aborted:?}");
    assert!(read_committed(&bootstrap, &output).is_empty());
    let again = eddy(&args, &[]);
    assert!(again.status.success(), "{again:?}");
    assert_eq!(sorted(read_committed(&bootstrap, &output)), sorted(records));
}

#[test]
fn bad_kafka_uris_exit_2_with_one_line() {
    for (source, sink, expected) in [
        ("kafka://localhost/t", "print:", "has no port"),
        (
            "kafka://localhost:9092/t?start=soon",
            "print:",
            "start 'soon'",
        ),
        (
            "kafka://localhost:9092/t?colour=red",
            "print:",
            "unknown option 'colour'",
        ),
        (
            "nexmark://?events=1",
            "kafka://localhost:9092/t?delivery=twice",
            "unknown delivery",
        ),
    ] {
        let result = eddy(&["--source", source, "--sink", sink], &[]);
        assert_eq!(result.status.code(), Some(2), "{result:?}");
        let stderr = String::from_utf8(result.stderr).unwrap();
        assert!(stderr.contains(expected), "{stderr}");
        assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    }
}

/// Runs `eddy run copy` Kafka → Kafka with checkpoints, SIGKILLed at `kills` moments
/// (each in the first 10–610 ms of an attempt) and restarted with `--restore latest`
/// until an attempt finishes. `first_env` is passed to the first attempt only.
fn copy_with_kills(
    bootstrap: &str,
    input: &str,
    output: &str,
    delivery: &str,
    kills: usize,
    seed: u64,
    first_env: &[(&str, &str)],
) -> (usize, Vec<std::process::ExitStatus>) {
    use std::time::{Duration, Instant};
    let checkpoints = tempfile::tempdir().unwrap();
    let mode = if delivery == "exactly-once" {
        "exactly-once"
    } else {
        "at-least-once"
    };
    let mut random = seed | 1;
    let mut hits = 0;
    let mut statuses = Vec::new();
    let started = Instant::now();
    loop {
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "the copy never finished"
        );
        let mut child = Command::new(EDDY)
            .args(["run", "copy", "--source"])
            .arg(format!("kafka://{bootstrap}/{input}?bounded=true"))
            .arg("--sink")
            .arg(format!("kafka://{bootstrap}/{output}?delivery={delivery}"))
            .args(["--checkpointing", mode, "--checkpoint-interval", "100ms"])
            .arg("--checkpoint-dir")
            .arg(checkpoints.path())
            .args(["--restore", "latest", "--parallelism", "2"])
            .envs(
                first_env
                    .iter()
                    .copied()
                    .filter(|_| statuses.is_empty() && hits == 0),
            )
            .env_remove("EDDY_LOG")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        random ^= random << 13;
        random ^= random >> 7;
        random ^= random << 17;
        let deadline = if hits < kills {
            Some(Instant::now() + Duration::from_millis(10 + random % 600))
        } else {
            None
        };
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break Some(status);
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                child.kill().unwrap(); // SIGKILL
                child.wait().unwrap();
                hits += 1;
                break None;
            }
            assert!(
                started.elapsed() < Duration::from_secs(300),
                "an attempt hangs"
            );
            std::thread::park_timeout(Duration::from_millis(2));
        };
        if let Some(status) = status {
            let mut stderr = String::new();
            std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
            statuses.push(status);
            if status.success() {
                return (hits, statuses);
            }
            use std::os::unix::process::ExitStatusExt;
            assert_eq!(
                status.signal(),
                Some(6),
                "an attempt failed: {status:?}\n{stderr}"
            );
        }
    }
}

#[test]
fn exactly_once_copy_with_checkpoints_survives_sigkills_and_restores() {
    let bootstrap = broker();
    let records: Vec<String> = (0..200_000).map(|i| format!("record {i:07}")).collect();
    let (input, output) = topics(&bootstrap, &records);
    let seed = 0x5eed_0006;
    let (hits, _) = copy_with_kills(&bootstrap, &input, &output, "exactly-once", 6, seed, &[]);
    assert!(hits > 0, "no kill hit a running copy");
    assert_eq!(
        sorted(read_committed(&bootstrap, &output)),
        sorted(records),
        "{hits} kills (seed {seed:#x})"
    );
}

#[test]
fn at_least_once_copy_with_checkpoints_loses_nothing_across_sigkills() {
    let bootstrap = broker();
    let records: Vec<String> = (0..200_000).map(|i| format!("record {i:07}")).collect();
    let (input, output) = topics(&bootstrap, &records);
    let (hits, _) = copy_with_kills(
        &bootstrap,
        &input,
        &output,
        "at-least-once",
        4,
        0x5eed_0007,
        &[],
    );
    assert!(hits > 0, "no kill hit a running copy");
    let mut got = read_committed(&bootstrap, &output);
    got.sort();
    got.dedup();
    assert_eq!(got, sorted(records));
}

#[test]
fn a_copy_aborted_between_checkpoint_completion_and_commit_restores_exactly_once() {
    let bootstrap = broker();
    let records: Vec<String> = (0..200_000).map(|i| format!("record {i:07}")).collect();
    let (input, output) = topics(&bootstrap, &records);
    // The first attempt aborts in its first commit of checkpoint 2 or later (after the
    // checkpoint completed, before the transaction commits); the next one restores it.
    let (_, statuses) = copy_with_kills(
        &bootstrap,
        &input,
        &output,
        "exactly-once",
        0,
        1,
        &[("EDDY_TEST_ABORT_BEFORE_COMMIT", "2")],
    );
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(statuses.len(), 2, "{statuses:?}");
    assert_eq!(statuses[0].signal(), Some(6), "{statuses:?}");
    assert_eq!(sorted(read_committed(&bootstrap, &output)), sorted(records));
}
