//! Tests of the external sorter: order, stability, memory accounting, cleanup.

use std::fs;
use std::path::{Path, PathBuf};

use proptest::prelude::*;

use super::*;

fn config(dir: &Path, memory_budget_bytes: usize) -> SorterConfig {
    SorterConfig {
        spill_dir: dir.to_path_buf(),
        owner: SpillOwner::new("batch-job", "sort", 0),
        memory_budget_bytes,
    }
}

fn files_in(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files
}

fn collect<O: KeyOrder>(runs: &SortedRuns<O>) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut merge = runs.iter();
    let mut records = Vec::new();
    while let Some(record) = merge.next_record() {
        let (key, value) = record.unwrap();
        records.push((key.to_vec(), value.to_vec()));
    }
    records
}

/// The reference: a stable in-memory sort.
fn sorted_in_memory(
    mut records: Vec<(Vec<u8>, Vec<u8>)>,
    order: impl KeyOrder,
) -> Vec<(Vec<u8>, Vec<u8>)> {
    records.sort_by(|a, b| order.compare(&a.0, &b.0));
    records
}

#[test]
fn sorts_in_memory_without_spilling() {
    let dir = tempfile::tempdir().unwrap();
    let mut sorter = ExternalSorter::new(config(dir.path(), 1 << 20));
    for (key, value) in [("c", "3"), ("a", "1"), ("b", "2"), ("a", "1bis")] {
        sorter.push(key.as_bytes(), value.as_bytes()).unwrap();
    }
    assert_eq!(sorter.spilled_run_count(), 0);
    assert!(files_in(dir.path()).is_empty());
    let runs = sorter.finish().unwrap();
    let keys: Vec<_> = collect(&runs)
        .into_iter()
        .map(|(k, v)| {
            format!(
                "{}={}",
                String::from_utf8(k).unwrap(),
                String::from_utf8(v).unwrap()
            )
        })
        .collect();
    assert_eq!(keys, ["a=1", "a=1bis", "b=2", "c=3"]);
    assert_eq!(runs.record_count(), 4);
    // The merge can run twice.
    assert_eq!(collect(&runs).len(), 4);
}

#[test]
fn spills_merges_and_cleans_up() {
    let dir = tempfile::tempdir().unwrap();
    let mut sorter = ExternalSorter::new(config(dir.path(), 2048));
    let mut input = Vec::new();
    for i in 0..2_000u32 {
        let key = (i.wrapping_mul(2_654_435_761) % 500).to_be_bytes().to_vec();
        let value = i.to_le_bytes().to_vec();
        sorter.push(&key, &value).unwrap();
        assert!(sorter.bytes_held() <= 2048, "held {}", sorter.bytes_held());
        input.push((key, value));
    }
    assert!(
        sorter.spilled_run_count() > 5,
        "runs {}",
        sorter.spilled_run_count()
    );
    let spilled = files_in(dir.path());
    assert_eq!(spilled.len(), sorter.spilled_run_count());
    assert!(spilled.iter().all(|p| p
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .starts_with("eddy-spill-batch%2Djob-sort-0-")));
    let runs = sorter.finish().unwrap();
    assert_eq!(collect(&runs), sorted_in_memory(input, Lexicographic));
    drop(runs);
    assert!(
        files_in(dir.path()).is_empty(),
        "spill files are deleted with the runs"
    );
}

#[test]
fn dropping_an_unfinished_sorter_deletes_its_spill_files() {
    let dir = tempfile::tempdir().unwrap();
    let mut sorter = ExternalSorter::new(config(dir.path(), 0));
    for i in 0..10u8 {
        sorter.push(&[i], b"v").unwrap();
    }
    assert!(!files_in(dir.path()).is_empty());
    drop(sorter);
    assert!(files_in(dir.path()).is_empty());
}

#[test]
fn caller_order_is_used() {
    let dir = tempfile::tempdir().unwrap();
    let descending = |a: &[u8], b: &[u8]| b.cmp(a);
    let mut sorter = ExternalSorter::with_order(config(dir.path(), 64), descending);
    let mut input = Vec::new();
    for i in 0..100u8 {
        sorter.push(&[i % 10], &[i]).unwrap();
        input.push((vec![i % 10], vec![i]));
    }
    let runs = sorter.finish().unwrap();
    assert!(runs.spilled_run_count() > 0);
    assert_eq!(collect(&runs), sorted_in_memory(input, descending));
}

#[test]
fn oversized_record_is_held_alone() {
    let dir = tempfile::tempdir().unwrap();
    let mut sorter = ExternalSorter::new(config(dir.path(), 100));
    sorter.push(b"k", &[1u8; 10]).unwrap();
    sorter.push(b"big", &[2u8; 1000]).unwrap();
    assert_eq!(sorter.spilled_run_count(), 1);
    assert!(
        sorter.bytes_held() <= 1003 + ENTRY_BYTES,
        "{}",
        sorter.bytes_held()
    );
    sorter.push(b"a", b"small").unwrap();
    assert_eq!(sorter.spilled_run_count(), 2);
    assert!(
        sorter.bytes_held() <= 100,
        "buffers shrink back: {}",
        sorter.bytes_held()
    );
    let runs = sorter.finish().unwrap();
    let keys: Vec<Vec<u8>> = collect(&runs).into_iter().map(|(k, _)| k).collect();
    assert_eq!(keys, vec![b"a".to_vec(), b"big".to_vec(), b"k".to_vec()]);
}

#[test]
fn release_memory_spills_and_frees() {
    let dir = tempfile::tempdir().unwrap();
    let mut sorter = ExternalSorter::new(config(dir.path(), 1 << 20));
    sorter.push(b"b", b"2").unwrap();
    sorter.push(b"a", b"1").unwrap();
    let held = sorter.bytes_held();
    assert!(held > 0);
    assert_eq!(sorter.release_memory().unwrap(), held);
    assert_eq!(sorter.bytes_held(), 0);
    assert_eq!(sorter.spilled_run_count(), 1);
    sorter.set_memory_budget_bytes(0);
    assert_eq!(sorter.memory_budget_bytes(), 0);
    sorter.push(b"c", b"3").unwrap();
    let runs = sorter.finish().unwrap();
    let keys: Vec<Vec<u8>> = collect(&runs).into_iter().map(|(k, _)| k).collect();
    assert_eq!(keys, vec![b"a".to_vec(), b"b".to_vec(), b"c".to_vec()]);
}

#[test]
fn damaged_run_fails_finish_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let mut sorter = ExternalSorter::new(config(dir.path(), 0));
    for i in 0..5u8 {
        sorter.push(&[i], b"value").unwrap();
    }
    let victim = files_in(dir.path()).remove(2);
    let mut bytes = fs::read(&victim).unwrap();
    bytes[20] ^= 1;
    fs::write(&victim, &bytes).unwrap();
    let error = sorter.finish().unwrap_err();
    assert_eq!(error.path(), Some(victim.as_path()), "{error}");
    assert!(
        files_in(dir.path()).is_empty(),
        "the other runs are deleted too"
    );
}

#[test]
fn missing_spill_folder_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing");
    let mut sorter = ExternalSorter::new(config(&missing, 0));
    sorter.push(b"a", b"1").unwrap();
    let error = sorter.push(b"b", b"2").unwrap_err();
    assert!(error.path().unwrap().starts_with(&missing), "{error}");
    // The buffered record is still there.
    assert_eq!(sorter.records_pushed(), 1);
}

fn records() -> impl Strategy<Value = Vec<(Vec<u8>, Vec<u8>)>> {
    // Short keys from a small alphabet give many equal keys, which tests stability.
    let key = prop::collection::vec(0u8..4, 0..3);
    let value = prop::collection::vec(any::<u8>(), 0..24);
    prop::collection::vec((key, value), 0..300)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    /// With a tiny budget (many spills) the output equals a stable in-memory sort, and the
    /// buffers never exceed the budget (records here are smaller than any budget used).
    #[test]
    fn external_sort_equals_stable_in_memory_sort(input in records(), budget in 64usize..2048) {
        let dir = tempfile::tempdir().unwrap();
        let mut sorter = ExternalSorter::new(config(dir.path(), budget));
        for (key, value) in &input {
            sorter.push(key, value).unwrap();
            prop_assert!(sorter.bytes_held() <= budget);
        }
        let runs = sorter.finish().unwrap();
        prop_assert_eq!(runs.record_count(), input.len() as u64);
        prop_assert_eq!(collect(&runs), sorted_in_memory(input, Lexicographic));
        drop(runs);
        prop_assert!(files_in(dir.path()).is_empty());
    }

    /// The same with a caller-supplied order that makes many keys equal (by length only).
    #[test]
    fn external_sort_with_caller_order(input in records(), budget in 0usize..512) {
        let dir = tempfile::tempdir().unwrap();
        let by_len = |a: &[u8], b: &[u8]| a.len().cmp(&b.len());
        let mut sorter = ExternalSorter::with_order(config(dir.path(), budget), by_len);
        for (key, value) in &input {
            sorter.push(key, value).unwrap();
        }
        let runs = sorter.finish().unwrap();
        prop_assert_eq!(collect(&runs), sorted_in_memory(input, by_len));
    }
}

#[test]
fn more_runs_than_the_fan_in_are_merged_in_passes_stably_and_cleaned_up() {
    let dir = tempfile::tempdir().unwrap();
    // A budget of a few records: hundreds of runs, so finish merges in two passes.
    let mut sorter = ExternalSorter::new(config(dir.path(), 4096));
    let mut records = Vec::new();
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    for index in 0..60_000u32 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        // Few distinct keys: stability (push order among equal keys) is visible.
        let key = vec![(state % 50) as u8];
        let value = index.to_be_bytes().to_vec();
        sorter.push(&key, &value).unwrap();
        records.push((key, value));
    }
    assert!(
        sorter.spilled_run_count() > MERGE_FAN_IN * MERGE_FAN_IN,
        "{} runs: the test needs more than two passes' worth",
        sorter.spilled_run_count()
    );
    let runs = sorter.finish().unwrap();
    assert!(
        files_in(dir.path()).len() <= MERGE_FAN_IN,
        "merged down to the fan-in"
    );
    assert_eq!(collect(&runs), sorted_in_memory(records, Lexicographic));
    drop(runs);
    assert!(
        files_in(dir.path()).is_empty(),
        "every spill file is deleted"
    );
}

#[test]
fn keys_that_tie_on_their_first_eight_bytes_are_ordered_by_the_whole_key() {
    let dir = tempfile::tempdir().unwrap();
    let keys: Vec<&[u8]> = vec![
        b"a\0\0\0\0\0\0\0\x01",
        b"a",
        b"",
        b"a\0",
        b"\0",
        b"abcdefgh-z",
        b"abcdefgh-a",
        b"abcdefgh",
        b"abcdefg",
        b"\xff\xff\xff\xff\xff\xff\xff\xff\xff",
        b"a",
    ];
    // A budget of two records: in-memory runs and spilled ones both hold ties.
    for budget in [1 << 20, 64] {
        let mut sorter = ExternalSorter::new(config(dir.path(), budget));
        let mut records = Vec::new();
        for (index, key) in keys.iter().enumerate() {
            let value = vec![index as u8];
            sorter.push(key, &value).unwrap();
            records.push((key.to_vec(), value));
        }
        let runs = sorter.finish().unwrap();
        assert_eq!(collect(&runs), sorted_in_memory(records, Lexicographic));
    }
}

/// `merge_all` over several sorters: key order, equal keys in the order of the sorters,
/// then in push order; spilled and in-memory runs alike.
#[test]
fn merge_all_orders_ties_by_sorter_then_push_order() {
    let dir = tempfile::tempdir().unwrap();
    let mut all = Vec::new();
    let mut finished = Vec::new();
    for (sorter_index, budget) in [(0u8, 64usize), (1, 1 << 20), (2, 0)].into_iter() {
        let mut sorter = ExternalSorter::new(config(dir.path(), budget));
        for index in 0..200u32 {
            let key = vec![(index % 7) as u8];
            let value = vec![sorter_index, (index >> 8) as u8, index as u8];
            sorter.push(&key, &value).unwrap();
            all.push((key, value));
        }
        finished.push(sorter.finish().unwrap());
    }
    let mut merge = SortedRuns::merge_all(&finished, &Lexicographic);
    let mut merged = Vec::new();
    while let Some(record) = merge.next_record() {
        let (key, value) = record.unwrap();
        merged.push((key.to_vec(), value.to_vec()));
    }
    assert_eq!(
        merge.next_record().map(|r| r.is_ok()),
        None,
        "the merge stays ended"
    );
    assert_eq!(merged, sorted_in_memory(all, Lexicographic));
}
