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
