//! `eddy nexmark run --changelog`: the update stream of an updating query, replayed
//! (+I/+U add a row, -U/-D remove one), gives exactly the final result the same command
//! writes without `--changelog`; the flag needs an output file (exit 2, one line).

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
