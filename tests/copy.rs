//! End-to-end tests of `eddy run copy`: CSV and JSON-lines files with malformed rows
//! among good ones (good rows out, bad rows in the dead letters with file and line,
//! counts add up; `skip-and-count`; `fail` names the file and line), folders to part
//! files, the Nexmark generator, and bad URIs or flags (status 2, one line).

use std::path::Path;
use std::process::{Command, Output};

use eddy::connectors::files::serde_json;

const EDDY: &str = env!("CARGO_BIN_EXE_eddy");

fn eddy(args: &[&str]) -> Output {
    Command::new(EDDY)
        .args(["run", "copy"])
        .args(args)
        .env_remove("EDDY_LOG")
        .output()
        .expect("run eddy")
}

fn uri(path: &Path) -> String {
    format!("file://{}", path.display())
}

/// Lines of every part file of a folder, sorted.
fn part_lines(dir: &Path) -> Vec<String> {
    let mut lines = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        assert!(name.starts_with("part-"), "unexpected file {name}");
        lines.extend(
            std::fs::read_to_string(&path)
                .unwrap()
                .lines()
                .map(str::to_owned),
        );
    }
    lines.sort();
    lines
}

#[test]
fn malformed_csv_and_json_rows_go_to_the_dead_letters_with_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    std::fs::create_dir(&input).unwrap();
    // 3 files × (good, bad) rows: CSV rows with a wrong field count.
    let mut good = 0;
    let mut bad = Vec::new();
    for file in 0..3 {
        let mut text = String::from("id,name\n");
        for row in 0..50 {
            if row % 7 == 3 {
                text.push_str(&format!("{file}-{row}\n"));
                bad.push((format!("{file}.csv"), row + 2));
            } else {
                text.push_str(&format!("{file}-{row},\"n,{row}\"\n"));
                good += 1;
            }
        }
        std::fs::write(input.join(format!("{file}.csv")), text).unwrap();
    }
    let out = dir.path().join("out");
    let dead = dir.path().join("dead.jsonl");
    let output = eddy(&[
        "--source",
        &format!("{}?format=csv", uri(&input)),
        "--sink",
        &format!("{}/?format=jsonl", uri(&out)),
        "--on-bad-record",
        "dead-letter",
        "--dead-letters",
        dead.to_str().unwrap(),
        "--parallelism",
        "2",
    ]);
    assert!(output.status.success(), "{output:?}");
    let lines = part_lines(&out);
    assert_eq!(lines.len(), good);
    for line in &lines {
        let value: serde_json::Value = serde_json::from_str(line).unwrap();
        assert!(value["name"].as_str().unwrap().starts_with("n,"), "{line}");
    }
    let letters: Vec<serde_json::Value> = std::fs::read_to_string(&dead)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let mut found: Vec<(String, u64)> = letters
        .iter()
        .map(|l| {
            let file = Path::new(l["file"].as_str().unwrap());
            assert!(l["reason"].as_str().unwrap().contains("fields"), "{l}");
            (
                file.file_name().unwrap().to_string_lossy().into_owned(),
                l["line"].as_u64().unwrap(),
            )
        })
        .collect();
    found.sort();
    let mut expected: Vec<(String, u64)> =
        bad.iter().map(|(f, l)| (f.clone(), *l as u64)).collect();
    expected.sort();
    assert_eq!(found, expected);
    assert_eq!(lines.len() + letters.len(), 150);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!("bad_records={}", bad.len())),
        "{stderr}"
    );
}

#[test]
fn malformed_json_lines_are_skipped_and_counted_or_fail_the_job() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("events.jsonl");
    std::fs::write(&input, "{\"a\":1}\n{\"a\":\n\n[1,2]\nnot json\n{\"a\":3}\n").unwrap();
    let out = dir.path().join("out.csv");
    let output = eddy(&[
        "--source",
        &uri(&input),
        "--sink",
        &format!("{}?header=false", uri(&out)),
        "--on-bad-record",
        "skip-and-count",
    ]);
    assert!(output.status.success(), "{output:?}");
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "1\n1,2\n3\n");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("bad_records=2"), "{stderr}");

    let output = eddy(&["--source", &uri(&input), "--sink", "blackhole:"]);
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    let last = stderr.lines().last().unwrap();
    assert!(
        last.contains("events.jsonl") && last.contains("line 2") && last.contains("invalid JSON"),
        "{stderr}"
    );
}

#[test]
fn nexmark_events_are_copied_to_csv_with_every_event_once() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let output = eddy(&[
        "--source",
        "nexmark://?events=1000",
        "--sink",
        &format!("{}/?format=lines", uri(&out)),
        "--parallelism",
        "2",
    ]);
    assert!(output.status.success(), "{output:?}");
    let lines = part_lines(&out);
    // 1:3:46 persons, auctions, bids.
    assert_eq!(lines.len(), 1000);
    let mut deduplicated = lines.clone();
    deduplicated.dedup();
    assert_eq!(deduplicated.len(), 1000);
}

#[test]
fn bad_uris_and_flags_exit_2_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.txt");
    std::fs::write(&input, "x\n").unwrap();
    let good_source = uri(&input);
    for (source, sink, extra, expected) in [
        ("kafka://h/t", "print:", &[][..], "has no port"),
        ("file://relative.txt", "print:", &[], "ABSOLUTE"),
        (good_source.as_str(), "smtp:x", &[], "unknown scheme"),
        (
            good_source.as_str(),
            "print:",
            &["--on-bad-record", "dead-letter"],
            "--dead-letters",
        ),
        (
            "file:///nonexistent/eddy/in.csv",
            "print:",
            &[],
            "/nonexistent/eddy/in.csv",
        ),
        (
            &format!("{good_source}?format=xml"),
            "print:",
            &[],
            "unknown format",
        ),
        (
            &format!("{}?watch=true", good_source),
            "print:",
            &[],
            "needs an existing folder",
        ),
        (
            good_source.as_str(),
            "print:",
            &["--on-bad-record", "ignore"],
            "unknown policy",
        ),
        ("file:///data/x.bin", "print:", &[], ""),
    ] {
        let mut args = vec!["--source", source, "--sink", sink];
        args.extend_from_slice(extra);
        let output = eddy(&args);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
        assert!(stderr.starts_with("eddy: "), "{stderr}");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }
}
