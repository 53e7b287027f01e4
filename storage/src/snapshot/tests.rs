//! Tests of the snapshot store: round trips, damaged files, recovery and retention.

use std::fs::{self, OpenOptions};
use std::path::{Path, PathBuf};

use proptest::prelude::*;

use super::*;
use crate::error::{Fault, StorageError};

const JOB: &str = "nexmark-q5";

/// Writes a complete checkpoint `id` with two operators × two subtasks; returns its folder.
fn write_checkpoint(root: &Path, id: u64) -> PathBuf {
    let writer = SnapshotWriter::begin_checkpoint(root, JOB, id).unwrap();
    let mut state_files = Vec::new();
    for operator in ["source", "window-agg"] {
        for subtask in 0..2u32 {
            let state = format!("{operator}/{subtask}/chk {id}").repeat(subtask as usize + 1);
            state_files.push(
                writer
                    .write_state(operator, subtask, state.as_bytes())
                    .unwrap(),
            );
        }
    }
    let source_positions = vec![SourcePosition {
        source_id: "source".into(),
        subtask_index: 1,
        position: id.to_le_bytes().to_vec(),
    }];
    writer
        .commit(CommitInfo {
            timestamp_ms: 1_000 + id,
            state_files,
            source_positions,
        })
        .unwrap()
        .path
}

/// Starts checkpoint `id` and writes one state file, without committing.
fn write_incomplete(root: &Path, id: u64) -> PathBuf {
    let writer = SnapshotWriter::begin_checkpoint(root, JOB, id).unwrap();
    writer.write_state("source", 0, b"never committed").unwrap();
    writer.dir().to_path_buf()
}

fn ids(refs: &[SnapshotRef]) -> Vec<u64> {
    refs.iter().map(|r| r.checkpoint_id).collect()
}

fn remaining_ids(job: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(job)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

#[test]
fn checkpoint_round_trip() {
    let root = tempfile::tempdir().unwrap();
    let dir = write_checkpoint(root.path(), 3);
    assert_eq!(dir, root.path().join(JOB).join("chk-3"));

    let snapshot = Snapshot::open(&dir).unwrap();
    let metadata = snapshot.metadata();
    assert_eq!(metadata.format_version, FORMAT_VERSION);
    assert_eq!(metadata.kind, SnapshotKind::Checkpoint);
    assert_eq!(metadata.job_name, JOB);
    assert_eq!(metadata.checkpoint_id, 3);
    assert_eq!(metadata.timestamp_ms, 1_003);
    assert_eq!(metadata.state_files.len(), 4);
    assert_eq!(metadata.source_positions[0].position, 3u64.to_le_bytes());
    assert_eq!(
        snapshot.state("window-agg", 1).unwrap(),
        "window-agg/1/chk 3window-agg/1/chk 3".as_bytes()
    );
    assert_eq!(snapshot.state("window-agg", 2), None);
    for (entry, bytes) in snapshot.states() {
        assert_eq!(bytes.len() as u64, entry.state_len_bytes);
        assert_eq!(
            bytes.as_ptr() as usize % 16,
            0,
            "state bytes must be 16-byte aligned"
        );
    }
    assert_eq!(read_metadata(&dir).unwrap(), *metadata);
    // No temporary files are left behind.
    assert!(fs::read_dir(&dir).unwrap().all(|e| !e
        .unwrap()
        .file_name()
        .to_string_lossy()
        .ends_with(".tmp")));
}

#[test]
fn state_can_be_an_rkyv_archive_read_in_place() {
    let root = tempfile::tempdir().unwrap();
    let writer = SnapshotWriter::begin_checkpoint(root.path(), JOB, 1).unwrap();
    let counts: Vec<u64> = (0..100).collect();
    let archive = rkyv::to_bytes::<rkyv::rancor::Error>(&counts).unwrap();
    let entry = writer.write_state("counts", 0, &archive).unwrap();
    let dir = writer
        .commit(CommitInfo {
            state_files: vec![entry],
            ..CommitInfo::default()
        })
        .unwrap()
        .path;
    let snapshot = Snapshot::open(&dir).unwrap();
    let bytes = snapshot.state("counts", 0).unwrap();
    let archived = rkyv::access::<rkyv::Archived<Vec<u64>>, rkyv::rancor::Error>(bytes).unwrap();
    assert_eq!(archived.len(), 100);
    assert_eq!(archived[99], 99);
}

#[test]
fn empty_state_and_no_state_files_round_trip() {
    let root = tempfile::tempdir().unwrap();
    let writer = SnapshotWriter::begin_checkpoint(root.path(), JOB, 1).unwrap();
    let entry = writer.write_state("stateless", 0, b"").unwrap();
    let dir = writer
        .commit(CommitInfo {
            state_files: vec![entry],
            ..CommitInfo::default()
        })
        .unwrap()
        .path;
    assert_eq!(
        Snapshot::open(&dir).unwrap().state("stateless", 0),
        Some(&b""[..])
    );

    let writer = SnapshotWriter::begin_checkpoint(root.path(), JOB, 2).unwrap();
    let dir = writer.commit(CommitInfo::default()).unwrap().path;
    assert_eq!(Snapshot::open(&dir).unwrap().states().count(), 0);
}

#[test]
fn savepoint_round_trip_and_target_rules() {
    let root = tempfile::tempdir().unwrap();
    let target = root.path().join("savepoints").join("before-upgrade");
    let writer = SnapshotWriter::begin_savepoint(&target, JOB, 12).unwrap();
    assert_eq!(writer.kind(), SnapshotKind::Savepoint);
    let entry = writer.write_state("source", 0, b"offsets").unwrap();
    writer
        .commit(CommitInfo {
            timestamp_ms: 5,
            state_files: vec![entry],
            source_positions: Vec::new(),
        })
        .unwrap();
    let snapshot = Snapshot::open(&target).unwrap();
    assert_eq!(snapshot.kind(), SnapshotKind::Savepoint);
    assert_eq!(snapshot.checkpoint_id(), 12);

    let error = SnapshotWriter::begin_savepoint(&target, JOB, 13).unwrap_err();
    assert!(
        matches!(error, StorageError::AlreadyExists { .. }),
        "{error}"
    );
    assert_eq!(error.fault(), Fault::User);

    let occupied = root.path().join("home");
    fs::create_dir(&occupied).unwrap();
    fs::write(occupied.join("precious.txt"), b"keep me").unwrap();
    let error = SnapshotWriter::begin_savepoint(&occupied, JOB, 13).unwrap_err();
    assert!(matches!(error, StorageError::NotEmpty { .. }), "{error}");
    assert!(occupied.join("precious.txt").exists());
}

#[test]
fn begin_checkpoint_refuses_complete_and_clears_incomplete() {
    let root = tempfile::tempdir().unwrap();
    write_checkpoint(root.path(), 1);
    let error = SnapshotWriter::begin_checkpoint(root.path(), JOB, 1).unwrap_err();
    assert!(matches!(error, StorageError::AlreadyExists { .. }));

    let stale = write_incomplete(root.path(), 2);
    assert!(stale.join("op-source-0.state").exists());
    let writer = SnapshotWriter::begin_checkpoint(root.path(), JOB, 2).unwrap();
    assert_eq!(fs::read_dir(writer.dir()).unwrap().count(), 0);
}

#[test]
fn bad_names_are_user_errors() {
    let root = tempfile::tempdir().unwrap();
    for job in ["", "../escape", "a/b", ".hidden"] {
        let error = SnapshotWriter::begin_checkpoint(root.path(), job, 1).unwrap_err();
        assert!(matches!(error, StorageError::InvalidName { .. }), "{job}");
        assert_eq!(error.fault(), Fault::User);
    }
    let writer = SnapshotWriter::begin_checkpoint(root.path(), JOB, 1).unwrap();
    let error = writer.write_state("../../etc", 0, b"x").unwrap_err();
    assert!(matches!(error, StorageError::InvalidName { .. }));
}

#[test]
fn commit_rejects_duplicate_and_foreign_entries() {
    let root = tempfile::tempdir().unwrap();
    let writer = SnapshotWriter::begin_checkpoint(root.path(), JOB, 1).unwrap();
    let entry = writer.write_state("op", 0, b"x").unwrap();
    let error = writer
        .commit(CommitInfo {
            state_files: vec![entry.clone(), entry],
            ..CommitInfo::default()
        })
        .unwrap_err();
    assert!(matches!(error, StorageError::Misuse { .. }));
    assert_eq!(error.fault(), Fault::Eddy);

    // An entry whose file was written in another snapshot folder.
    let other = SnapshotWriter::begin_checkpoint(root.path(), JOB, 2).unwrap();
    let foreign = other.write_state("elsewhere", 0, b"x").unwrap();
    let writer = SnapshotWriter::begin_checkpoint(root.path(), JOB, 3).unwrap();
    let error = writer
        .commit(CommitInfo {
            state_files: vec![foreign],
            ..CommitInfo::default()
        })
        .unwrap_err();
    assert!(matches!(error, StorageError::Missing { .. }), "{error}");
    assert!(list_complete(&root.path().join(JOB)).unwrap().is_empty());
}

#[test]
fn list_complete_is_newest_first_and_ignores_the_rest() {
    let root = tempfile::tempdir().unwrap();
    let job = job_dir(root.path(), JOB).unwrap();
    assert!(
        list_complete(&job).unwrap().is_empty(),
        "missing job folder has none"
    );
    for id in [1, 10, 2] {
        write_checkpoint(root.path(), id);
    }
    write_incomplete(root.path(), 11);
    fs::create_dir(job.join("chk-x")).unwrap();
    fs::create_dir(job.join("savepoint-1")).unwrap();
    fs::write(job.join("chk-12"), b"a file, not a folder").unwrap();
    assert_eq!(ids(&list_complete(&job).unwrap()), vec![10, 2, 1]);
}

#[test]
fn missing_metadata_means_no_snapshot() {
    let root = tempfile::tempdir().unwrap();
    let dir = write_incomplete(root.path(), 1);
    let error = Snapshot::open(&dir).unwrap_err();
    assert!(
        matches!(&error, StorageError::Missing { path } if *path == dir.join(METADATA_FILE_NAME)),
        "{error}"
    );
}

#[test]
fn latest_valid_skips_damaged_newer_checkpoints() {
    let root = tempfile::tempdir().unwrap();
    let job = job_dir(root.path(), JOB).unwrap();
    for id in 1..=4 {
        write_checkpoint(root.path(), id);
    }
    write_incomplete(root.path(), 5);
    // chk-4: a state file is truncated. chk-3: a state file is gone.
    let truncated = checkpoint_dir(&job, 4).join("op-window-agg-1.state");
    let file = OpenOptions::new().write(true).open(&truncated).unwrap();
    file.set_len(40).unwrap();
    let removed = checkpoint_dir(&job, 3).join("op-source-0.state");
    fs::remove_file(&removed).unwrap();

    let recovery = latest_valid(&job).unwrap();
    assert_eq!(recovery.snapshot.as_ref().unwrap().checkpoint_id(), 2);
    assert_eq!(recovery.skipped.len(), 2);
    let first = &recovery.skipped[0];
    assert_eq!(first.checkpoint.checkpoint_id, 4);
    assert!(matches!(&first.error, StorageError::Truncated { path, .. } if *path == truncated));
    assert!(first.error.to_string().contains("op-window-agg-1.state"));
    let second = &recovery.skipped[1];
    assert_eq!(second.checkpoint.checkpoint_id, 3);
    assert!(matches!(&second.error, StorageError::Missing { path } if *path == removed));
}

#[test]
fn latest_valid_with_nothing_valid() {
    let root = tempfile::tempdir().unwrap();
    let job = job_dir(root.path(), JOB).unwrap();
    let recovery = latest_valid(&job).unwrap();
    assert!(recovery.snapshot.is_none() && recovery.skipped.is_empty());

    let dir = write_checkpoint(root.path(), 1);
    fs::write(dir.join(METADATA_FILE_NAME), b"garbage").unwrap();
    let recovery = latest_valid(&job).unwrap();
    assert!(recovery.snapshot.is_none());
    assert_eq!(recovery.skipped.len(), 1);
}

#[test]
fn unknown_format_version_is_a_clear_error() {
    let root = tempfile::tempdir().unwrap();
    let dir = write_checkpoint(root.path(), 1);
    let path = dir.join(METADATA_FILE_NAME);
    let mut bytes = fs::read(&path).unwrap();
    bytes[8..12].copy_from_slice(&2u32.to_le_bytes());
    fs::write(&path, &bytes).unwrap();
    let error = Snapshot::open(&dir).unwrap_err();
    assert!(
        matches!(&error, StorageError::UnsupportedVersion { path: p, found: 2, supported: 1 } if *p == path),
        "{error}"
    );
    assert_eq!(error.fault(), Fault::User);
    assert!(error.to_string().contains("format version 2"));
}

#[test]
fn retain_keeps_the_newest_and_removes_stale_incomplete_folders() {
    let root = tempfile::tempdir().unwrap();
    let job = job_dir(root.path(), JOB).unwrap();
    for id in 1..=5 {
        write_checkpoint(root.path(), id);
    }
    write_incomplete(root.path(), 0);
    write_incomplete(root.path(), 6);
    let report = retain(&job, 2).unwrap();
    assert_eq!(report.removed.len(), 4); // chk-3, chk-2, chk-1, chk-0
    assert_eq!(remaining_ids(&job), vec!["chk-4", "chk-5", "chk-6"]);
    assert_eq!(ids(&list_complete(&job).unwrap()), vec![5, 4]);
    // Idempotent.
    assert!(retain(&job, 2).unwrap().removed.is_empty());
    // keep = 0 still keeps the newest.
    retain(&job, 0).unwrap();
    assert_eq!(ids(&list_complete(&job).unwrap()), vec![5]);
}

#[test]
fn retain_removes_nothing_without_a_complete_checkpoint() {
    let root = tempfile::tempdir().unwrap();
    let job = job_dir(root.path(), JOB).unwrap();
    assert!(
        retain(&job, 1).unwrap().removed.is_empty(),
        "missing folder"
    );
    write_incomplete(root.path(), 1);
    write_incomplete(root.path(), 2);
    assert!(retain(&job, 1).unwrap().removed.is_empty());
    assert_eq!(remaining_ids(&job), vec!["chk-1", "chk-2"]);
}

#[test]
fn retain_does_not_count_a_damaged_newest_checkpoint() {
    let root = tempfile::tempdir().unwrap();
    let job = job_dir(root.path(), JOB).unwrap();
    for id in 1..=3 {
        write_checkpoint(root.path(), id);
    }
    fs::write(checkpoint_dir(&job, 3).join(METADATA_FILE_NAME), b"damaged").unwrap();
    retain(&job, 1).unwrap();
    // chk-2 is the newest that validates: it stays, and so does the damaged, newer chk-3.
    assert_eq!(remaining_ids(&job), vec!["chk-2", "chk-3"]);
    assert_eq!(
        latest_valid(&job)
            .unwrap()
            .snapshot
            .unwrap()
            .checkpoint_id(),
        2
    );
}

/// Which file of the test checkpoint a damage test hits.
fn victim(dir: &Path, pick: usize) -> PathBuf {
    let names = [
        METADATA_FILE_NAME,
        "op-source-0.state",
        "op-source-1.state",
        "op-window-agg-0.state",
        "op-window-agg-1.state",
    ];
    dir.join(names[pick % names.len()])
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Truncating any file at any point gives an error that names that file.
    #[test]
    fn truncation_is_detected_and_named(pick in 0usize..5, cut in any::<prop::sample::Index>()) {
        let root = tempfile::tempdir().unwrap();
        let dir = write_checkpoint(root.path(), 1);
        let path = victim(&dir, pick);
        let len = fs::metadata(&path).unwrap().len() as usize;
        let new_len = cut.index(len); // 0 ..= len - 1
        OpenOptions::new().write(true).open(&path).unwrap().set_len(new_len as u64).unwrap();
        let error = Snapshot::open(&dir).unwrap_err();
        prop_assert_eq!(error.path(), Some(path.as_path()), "{}", error);
        prop_assert!(error.to_string().contains(&*path.to_string_lossy()));
        prop_assert!(matches!(error, StorageError::Truncated { .. } | StorageError::Corrupt { .. }), "{}", error);
    }

    /// Changing any byte of any file gives an error that names that file.
    #[test]
    fn byte_flips_are_detected_and_named(pick in 0usize..5, at in any::<prop::sample::Index>(), flip in 1u8..=255) {
        let root = tempfile::tempdir().unwrap();
        let dir = write_checkpoint(root.path(), 1);
        let path = victim(&dir, pick);
        let mut bytes = fs::read(&path).unwrap();
        let at = at.index(bytes.len());
        bytes[at] ^= flip;
        fs::write(&path, &bytes).unwrap();
        let error = Snapshot::open(&dir).unwrap_err();
        prop_assert_eq!(error.path(), Some(path.as_path()), "{}", error);
    }

    /// Arbitrary bytes as `_metadata` never panic and never validate.
    #[test]
    fn garbage_metadata_is_rejected(garbage in prop::collection::vec(any::<u8>(), 0..256)) {
        let root = tempfile::tempdir().unwrap();
        let dir = write_checkpoint(root.path(), 1);
        let path = dir.join(METADATA_FILE_NAME);
        fs::write(&path, &garbage).unwrap();
        let error = Snapshot::open(&dir).unwrap_err();
        prop_assert_eq!(error.path(), Some(path.as_path()));
    }
}

#[test]
fn subtasks_write_state_concurrently() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<SnapshotWriter>();
    assert_send_sync::<Snapshot>();

    let root = tempfile::tempdir().unwrap();
    let writer = SnapshotWriter::begin_checkpoint(root.path(), JOB, 9).unwrap();
    let state_files: Vec<StateFileEntry> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..8u32)
            .map(|subtask| {
                let writer = &writer;
                scope.spawn(move || {
                    writer
                        .write_state("keyed", subtask, &subtask.to_le_bytes().repeat(1000))
                        .unwrap()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let dir = writer
        .commit(CommitInfo {
            state_files,
            ..CommitInfo::default()
        })
        .unwrap()
        .path;
    let snapshot = open(&dir).unwrap();
    for subtask in 0..8u32 {
        assert_eq!(
            snapshot.state("keyed", subtask).unwrap(),
            subtask.to_le_bytes().repeat(1000).as_slice()
        );
    }
}

#[test]
fn leftover_temporary_files_are_ignored() {
    let root = tempfile::tempdir().unwrap();
    let dir = write_checkpoint(root.path(), 1);
    // A crash between write and rename of an unrelated rewrite leaves a temporary file.
    fs::write(dir.join(".op-source-0.state.tmp"), b"half written").unwrap();
    let snapshot = open(&dir).unwrap();
    assert!(snapshot
        .state("source", 0)
        .unwrap()
        .starts_with(b"source/0"));
}
