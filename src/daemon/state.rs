//! The daemon's state folder: the leader lock, and one record per job (written
//! atomically: a temporary file, fsync, rename, fsync of the folder), so that a daemon
//! started after a crash, or a standby taking over, resumes the jobs that were running.
//!
//! ```text
//! DIR/lock                      flock: held by the leader for as long as it lives
//! DIR/leader                    pid and address of the leader (informational)
//! DIR/jobs/<id>/job.json        the job: name, arguments, state, latest checkpoint
//! DIR/jobs/<id>/checkpoints/    its checkpoints (unless it names --checkpoint-dir)
//! DIR/savepoints/<name>/        savepoints taken through the REST API
//! ```

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// A job as the state folder keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobRecord {
    /// The job id.
    pub id: String,
    /// The job's name in the registry (`wordcount`, `copy`, `nexmark`, or a registered
    /// one).
    pub job: String,
    /// Its arguments, as submitted.
    pub args: Vec<String>,
    /// The savepoint it was first started from, if any.
    pub from_savepoint: Option<PathBuf>,
    /// Its checkpoint folder (the `--checkpoint-dir` it runs with), if it checkpoints.
    pub checkpoint_dir: Option<PathBuf>,
    /// When it was submitted (milliseconds since the Unix epoch).
    pub submitted_ms: i64,
    /// Its state, Flink's name (`RUNNING`, `FINISHED`, ...).
    pub state: String,
    /// The newest checkpoint it completed, as far as the daemon saw.
    pub latest_checkpoint: Option<PathBuf>,
    /// Why it failed, if it did.
    pub failure: Option<String>,
    /// How often a daemon resumed it after the previous one ended.
    #[serde(default)]
    pub resumed: u32,
}

impl JobRecord {
    /// Whether a daemon starting up should run the job again.
    pub fn should_resume(&self) -> bool {
        matches!(self.state.as_str(), "CREATED" | "RUNNING" | "RESTARTING")
    }
}

/// Why the state folder cannot be used.
#[derive(Debug)]
pub struct StateError(pub String);

impl std::fmt::Display for StateError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for StateError {}

fn io_error(what: &str, path: &Path, error: std::io::Error) -> StateError {
    StateError(format!("{what} '{}': {error}", path.display()))
}

/// The state folder.
#[derive(Debug, Clone)]
pub struct StateDir {
    root: PathBuf,
}

/// The leader's lock on the state folder; dropping it (or the process dying) lets a
/// standby take over.
#[derive(Debug)]
pub struct LeaderLock {
    _file: File,
}

impl StateDir {
    /// Opens (creates) the state folder.
    pub fn open(root: &Path) -> Result<Self, StateError> {
        for dir in [
            root.to_path_buf(),
            root.join("jobs"),
            root.join("savepoints"),
        ] {
            std::fs::create_dir_all(&dir)
                .map_err(|e| io_error("cannot create the state folder", &dir, e))?;
        }
        let root = root
            .canonicalize()
            .map_err(|e| io_error("cannot open the state folder", root, e))?;
        Ok(StateDir { root })
    }

    /// The folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where savepoints taken through the API go.
    pub fn savepoints(&self) -> PathBuf {
        self.root.join("savepoints")
    }

    /// A job's folder.
    pub fn job_dir(&self, id: &str) -> PathBuf {
        self.root.join("jobs").join(id)
    }

    /// Takes the leader lock if it is free: `Ok(None)` when another daemon holds it.
    pub fn try_lock(&self) -> Result<Option<LeaderLock>, StateError> {
        let path = self.root.join("lock");
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| io_error("cannot open the lock file", &path, e))?;
        match file.try_lock() {
            Ok(()) => Ok(Some(LeaderLock { _file: file })),
            Err(std::fs::TryLockError::WouldBlock) => Ok(None),
            Err(std::fs::TryLockError::Error(e)) => {
                Err(io_error("cannot lock the state folder", &path, e))
            }
        }
    }

    /// Waits until the leader lock is free and takes it (a standby).
    pub fn lock(&self) -> Result<LeaderLock, StateError> {
        let path = self.root.join("lock");
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| io_error("cannot open the lock file", &path, e))?;
        file.lock()
            .map_err(|e| io_error("cannot lock the state folder", &path, e))?;
        Ok(LeaderLock { _file: file })
    }

    /// Who leads (written by the leader once it holds the lock).
    pub fn write_leader(&self, text: &str) -> Result<(), StateError> {
        write_atomically(&self.root.join("leader"), text.as_bytes())
    }

    /// Who leads, as the leader wrote it.
    pub fn read_leader(&self) -> Option<String> {
        std::fs::read_to_string(self.root.join("leader")).ok()
    }

    /// Writes a job's record (atomically).
    pub fn save(&self, record: &JobRecord) -> Result<(), StateError> {
        let dir = self.job_dir(&record.id);
        std::fs::create_dir_all(&dir).map_err(|e| io_error("cannot create", &dir, e))?;
        let json = serde_json::to_vec_pretty(record)
            .map_err(|e| StateError(format!("cannot encode job {}: {e}", record.id)))?;
        write_atomically(&dir.join("job.json"), &json)
    }

    /// Every job's record; a record that cannot be read is reported and skipped.
    pub fn load_all(&self) -> Vec<JobRecord> {
        let jobs = self.root.join("jobs");
        let Ok(entries) = std::fs::read_dir(&jobs) else {
            return Vec::new();
        };
        let mut records = Vec::new();
        for entry in entries.flatten() {
            let path = entry.path().join("job.json");
            match std::fs::read(&path) {
                Ok(bytes) => match serde_json::from_slice::<JobRecord>(&bytes) {
                    Ok(record) => records.push(record),
                    Err(error) => {
                        tracing::error!(file = %path.display(), %error, "unreadable job record skipped")
                    }
                },
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(error) => {
                    tracing::error!(file = %path.display(), %error, "unreadable job record skipped")
                }
            }
        }
        records.sort_by_key(|record| record.submitted_ms);
        records
    }
}

/// Writes `bytes` to `path` so that a reader (or a crash) sees the old or the new
/// content, never a mix.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), StateError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let temp = dir.join(format!(
        ".{}.tmp",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("state")
    ));
    let mut file = File::create(&temp).map_err(|e| io_error("cannot write", &temp, e))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|e| io_error("cannot write", &temp, e))?;
    std::fs::rename(&temp, path).map_err(|e| io_error("cannot write", path, e))?;
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io_error("cannot sync", dir, e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &str, state: &str, submitted_ms: i64) -> JobRecord {
        JobRecord {
            id: id.into(),
            job: "copy".into(),
            args: vec!["--source".into(), "x".into()],
            from_savepoint: None,
            checkpoint_dir: None,
            submitted_ms,
            state: state.into(),
            latest_checkpoint: None,
            failure: None,
            resumed: 0,
        }
    }

    #[test]
    fn records_round_trip_and_bad_ones_are_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::open(dir.path()).unwrap();
        state.save(&record("b", "FINISHED", 2)).unwrap();
        state.save(&record("a", "RUNNING", 1)).unwrap();
        let mut updated = record("a", "RUNNING", 1);
        updated.latest_checkpoint = Some("/x/chk-3".into());
        state.save(&updated).unwrap();
        std::fs::create_dir_all(state.job_dir("c")).unwrap();
        std::fs::write(state.job_dir("c").join("job.json"), b"{not json").unwrap();
        let loaded = state.load_all();
        assert_eq!(loaded, vec![updated, record("b", "FINISHED", 2)]);
        assert!(loaded[0].should_resume());
        assert!(!loaded[1].should_resume());
    }

    #[test]
    fn one_leader_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::open(dir.path()).unwrap();
        let leader = state.try_lock().unwrap().expect("free lock");
        assert!(state.try_lock().unwrap().is_none(), "a second leader");
        drop(leader);
        assert!(state.try_lock().unwrap().is_some(), "lock released");
    }
}
