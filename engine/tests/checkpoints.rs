//! Checkpoints in process: a job that fails restarts under its restart strategy from
//! its newest complete checkpoint, and a two-phase-commit sink then holds every record
//! exactly once; keyed state restores into another parallelism; a job without
//! checkpoints restarts from scratch; with `--restart none` a failure fails the job.
//!
//! Every expected result is computed sequentially in the test, not by the engine.

// Tests use the OS clock for deadlines and for pacing their sources only.
#![allow(clippy::disallowed_methods)]

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use eddy_engine::checkpoint::{decode, encode};
use eddy_engine::prelude::*;

const DEADLINE: Duration = Duration::from_secs(60);

/// Runs `body` on its own thread; fails the test when it has not returned in time.
fn within_deadline<R: Send + 'static>(body: impl FnOnce() -> R + Send + 'static) -> R {
    let (done, outcome) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = done.send(body());
    });
    outcome
        .recv_timeout(DEADLINE)
        .expect("the job did not return before the deadline (hang)")
}

/// Emits `first..end` (every `step`-th number), `per_poll` at a time, then waits
/// `pause`: slow enough for checkpoints to happen while it runs. Replayable: its
/// position is the next number.
#[derive(Clone)]
struct PacedSource {
    next: u64,
    end: u64,
    per_poll: u64,
    pause: Duration,
    resume: Option<Instant>,
    /// Idle instead of finished at `end` (the job keeps running).
    linger: bool,
    /// Where to record the `(checkpoint id, position)` of each completed checkpoint it
    /// is told about, and the position it was restored to.
    reports: Option<Reports>,
}

/// What a [`PacedSource`] was told: completed checkpoints with their positions, and
/// the position it was restored to.
#[derive(Clone, Default)]
struct Reports {
    completed: Arc<Mutex<Vec<(u64, u64)>>>,
    restored: Arc<Mutex<Option<u64>>>,
}

impl PacedSource {
    fn new(first: u64, end: u64, per_poll: u64, pause: Duration) -> Self {
        PacedSource {
            next: first,
            end,
            per_poll,
            pause,
            resume: None,
            linger: false,
            reports: None,
        }
    }

    fn lingering(mut self) -> Self {
        self.linger = true;
        self
    }

    fn reporting(mut self, reports: Reports) -> Self {
        self.reports = Some(reports);
        self
    }
}

impl Source<u64> for PacedSource {
    fn poll_next(
        &mut self,
        out: &mut SourceOutput<'_, u64>,
    ) -> Result<SourceStatus, ConnectorError> {
        let now = Instant::now();
        if let Some(resume) = self.resume {
            if now < resume {
                return Ok(SourceStatus::IdleUntil(resume));
            }
        }
        self.resume = Some(now + self.pause);
        for _ in 0..self.per_poll {
            if self.next >= self.end {
                return Ok(if self.linger {
                    SourceStatus::Idle
                } else {
                    SourceStatus::Finished
                });
            }
            out.emit(self.next);
            self.next += 1;
        }
        Ok(SourceStatus::Ready)
    }

    fn snapshot_position(&mut self) -> Result<Option<Vec<u8>>, ConnectorError> {
        Ok(Some(encode(&self.next)?))
    }

    fn restore_position(
        &mut self,
        _subtask: &SubtaskInfo,
        positions: &[(u32, &[u8])],
        old_parallelism: u32,
    ) -> Result<(), ConnectorError> {
        if let Some(bytes) = same_subtask_position(positions, 0, old_parallelism, 1)? {
            self.next = decode(bytes)?;
            if let Some(reports) = &self.reports {
                *reports.restored.lock().unwrap() = Some(self.next);
            }
        }
        Ok(())
    }

    fn checkpoint_complete(
        &mut self,
        checkpoint_id: u64,
        position: &[u8],
    ) -> Result<(), ConnectorError> {
        if let Some(reports) = &self.reports {
            let next: u64 = decode(position)?;
            reports
                .completed
                .lock()
                .unwrap()
                .push((checkpoint_id, next));
        }
        Ok(())
    }
}

/// What a [`TxnSink`] committed, shared with the test.
type Committed = Arc<Mutex<Vec<(u64, u64)>>>;

/// A transactional sink (sink parallelism 1): records become visible in `committed`
/// only when the checkpoint after them completes; its checkpointed state holds the
/// pending records and how many were visible before them, so a restore can withdraw
/// later commits and redo its own.
#[derive(Clone)]
struct TxnSink {
    committed: Committed,
    open: Vec<(u64, u64)>,
    pending: Vec<(u64, Vec<(u64, u64)>)>,
}

impl TxnSink {
    fn new(committed: Committed) -> Self {
        TxnSink {
            committed,
            open: Vec::new(),
            pending: Vec::new(),
        }
    }
}

impl Sink<(u64, u64)> for TxnSink {
    fn write(&mut self, record: (u64, u64)) -> Result<(), ConnectorError> {
        self.open.push(record);
        Ok(())
    }

    fn pre_commit(&mut self, checkpoint_id: u64) -> Result<Option<Vec<u8>>, ConnectorError> {
        self.pending
            .push((checkpoint_id, std::mem::take(&mut self.open)));
        let visible = self.committed.lock().unwrap().len() as u64;
        let waiting: Vec<(u64, u64)> = self.pending.iter().flat_map(|(_, r)| r.clone()).collect();
        Ok(Some(encode(&(visible, waiting))?))
    }

    fn commit(&mut self, checkpoint_id: u64) -> Result<(), ConnectorError> {
        let mut committed = self.committed.lock().unwrap();
        self.pending.retain(|(id, records)| {
            if *id <= checkpoint_id {
                committed.extend_from_slice(records);
                false
            } else {
                true
            }
        });
        Ok(())
    }

    fn restore(
        &mut self,
        _checkpoint_id: u64,
        states: &[(u32, &[u8])],
    ) -> Result<(), ConnectorError> {
        for (_, bytes) in states {
            let (visible, waiting): (u64, Vec<(u64, u64)>) = decode(bytes)?;
            let mut committed = self.committed.lock().unwrap();
            // Withdraw what was committed after the checkpoint, then commit what it
            // pre-committed.
            committed.truncate(visible as usize);
            committed.extend(waiting);
        }
        Ok(())
    }

    fn finish(&mut self) -> Result<(), ConnectorError> {
        let mut committed = self.committed.lock().unwrap();
        for (_, records) in self.pending.drain(..) {
            committed.extend(records);
        }
        committed.append(&mut self.open);
        Ok(())
    }
}

/// The rolling sums per key `n % keys` of 0..n, each update once: the reference.
fn rolling_sums(n: u64, keys: u64) -> BTreeMap<u64, Vec<u64>> {
    rolling_sums_of(0..n, keys)
}

fn rolling_sums_of(values: std::ops::Range<u64>, keys: u64) -> BTreeMap<u64, Vec<u64>> {
    let mut sums: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
    for value in values {
        let updates = sums.entry(value % keys).or_default();
        let last = updates.last().copied().unwrap_or(0);
        updates.push(last + value);
    }
    sums
}

fn by_key(records: &[(u64, u64)]) -> BTreeMap<u64, Vec<u64>> {
    let mut out: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
    for &(key, sum) in records {
        out.entry(key).or_default().push(sum);
    }
    for sums in out.values_mut() {
        sums.sort_unstable();
    }
    out
}

fn checkpointed(dir: &std::path::Path, name: &str, parallelism: usize) -> JobConfig {
    JobConfig {
        name: name.to_string(),
        parallelism: Some(parallelism),
        checkpoint: CheckpointConfig {
            mode: CheckpointingMode::ExactlyOnce,
            interval: Duration::from_millis(20),
            dir: Some(dir.to_path_buf()),
            restart: RestartStrategy::Fixed {
                attempts: 3,
                delay: Duration::from_millis(10),
            },
            ..CheckpointConfig::default()
        },
        ..JobConfig::default()
    }
}

#[test]
fn a_failure_restarts_from_the_checkpoint_and_the_sink_holds_every_update_once() {
    const N: u64 = 20_000;
    const KEYS: u64 = 7;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    let committed: Committed = Arc::default();
    let sink_target = Arc::clone(&committed);
    let completed_at_failure = Arc::new(AtomicU64::new(0));
    let seen = Arc::clone(&completed_at_failure);
    let stats = within_deadline(move || {
        let env = Env::new(checkpointed(&root, "restart", 2));
        let exploded = Arc::new(AtomicBool::new(false));
        // Two paced sources (one per half) joined by a union: the keyed operator
        // aligns their barriers.
        let evens = env.add_source(
            "evens",
            // From 1: every record raises its key's sum, so sums never repeat.
            PacedSource::new(1, N / 2, 50, Duration::from_millis(1)),
            Boundedness::Bounded,
        );
        let odds = env.add_source(
            "odds",
            PacedSource::new(N / 2, N, 50, Duration::from_millis(1)),
            Boundedness::Bounded,
        );
        let probe = {
            let root = root.clone();
            move |value: u64| {
                // Fail once, in the middle, after at least one checkpoint completed.
                if value == N / 2 + N / 4 && !exploded.swap(true, Ordering::SeqCst) {
                    let chk = std::fs::read_dir(root.join("restart"))
                        .map(|entries| {
                            entries
                                .filter_map(Result::ok)
                                .filter(|e| e.path().join("_metadata").is_file())
                                .count()
                        })
                        .unwrap_or(0);
                    seen.store(chk as u64, Ordering::SeqCst);
                    panic!("injected failure at {value}");
                }
                value
            }
        };
        evens
            .set_parallelism(1)
            .union(&odds.set_parallelism(1))
            .map(probe)
            .key_by(|value: &u64| value % KEYS)
            .process(|value: u64, ctx: &mut KeyedContext<'_, u64, u64>, out| {
                *ctx.state() += value;
                let sum = *ctx.state();
                out.collect((*ctx.key(), sum));
            })
            .uid("sums")
            .sink(TxnSink::new(sink_target))
            .set_parallelism(1);
        env.execute().map(|_| ())
    });
    stats.expect("the job recovers from the injected failure");
    // Records with the same key may arrive in any order across the two sources, so
    // compare the sets of sums per key with a sequential evaluation of each order
    // independent fact: every key's updates are `count` distinct values ending at the
    // key's total, and there are exactly as many as the key's records.
    let committed = committed.lock().unwrap().clone();
    let reference = rolling_sums_of(1..N, KEYS);
    let actual = by_key(&committed);
    assert_eq!(actual.len(), reference.len());
    for (key, sums) in &reference {
        let got = &actual[key];
        assert_eq!(got.len(), sums.len(), "key {key}: one update per record");
        assert_eq!(got.last(), sums.last(), "key {key}: final sum");
        let mut distinct = got.clone();
        distinct.dedup();
        assert_eq!(distinct.len(), got.len(), "key {key}: no duplicate update");
    }
    assert!(
        completed_at_failure.load(Ordering::SeqCst) > 0,
        "the failure happened after a checkpoint existed"
    );
}

#[test]
fn without_checkpoints_a_restart_starts_from_scratch_and_none_fails() {
    let committed = within_deadline(|| {
        let env = Env::new(JobConfig {
            parallelism: Some(2),
            checkpoint: CheckpointConfig {
                restart: RestartStrategy::Fixed {
                    attempts: 1,
                    delay: Duration::from_millis(1),
                },
                ..CheckpointConfig::default()
            },
            ..JobConfig::default()
        });
        let exploded = Arc::new(AtomicBool::new(false));
        let collected = env
            .from_iter(0..5_000u64)
            .map(move |value| {
                assert!(
                    value != 2_500 || exploded.swap(true, Ordering::SeqCst),
                    "injected failure"
                );
                (value % 3, value)
            })
            .set_parallelism(1)
            .key_by(|pair: &(u64, u64)| pair.0)
            .reduce(|(key, a), (_, b)| (key, a + b))
            .collect_vec();
        let handle = env.execute_async().unwrap();
        handle.join().expect("one restart is allowed");
        collected.take()
    });
    // Only the attempt that finished hands its records over: it started from scratch,
    // so its output is the whole rolling reduce, each update once.
    assert_eq!(by_key(&committed), rolling_sums(5_000, 3));

    let failed = within_deadline(|| {
        let env = Env::new(JobConfig {
            parallelism: Some(1),
            ..JobConfig::default()
        });
        let _ = env
            .from_iter(0..100u64)
            .map(|value| {
                assert!(value != 50, "always fails");
                value
            })
            .collect_vec();
        env.execute()
    });
    match failed {
        Err(EngineError::TaskFailed { reason, .. }) => assert!(reason.contains("always fails")),
        other => panic!("expected the job to fail, got {other:?}"),
    }
}

#[test]
fn keyed_state_restores_into_another_parallelism() {
    const N: u64 = 30_000;
    const KEYS: u64 = 101;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    // First run, parallelism 2: cancelled once a checkpoint completed and the source
    // is past it.
    let first = root.clone();
    let checkpoint = within_deadline(move || {
        let env = Env::new(checkpointed(&first, "rescale", 2));
        env.add_source(
            "numbers",
            PacedSource::new(0, N, 20, Duration::from_millis(1)),
            Boundedness::Bounded,
        )
        .set_parallelism(1)
        .uid("numbers")
        .key_by(|value: &u64| value % KEYS)
        .process(|value: u64, ctx: &mut KeyedContext<'_, u64, u64>, out| {
            *ctx.state() += value;
            out.collect((*ctx.key(), *ctx.state()));
        })
        .uid("sums")
        .sink_fn(|_| {});
        let handle = env.execute_async().unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        while handle.checkpoints().completed < 2 {
            assert!(Instant::now() < deadline, "no checkpoint completed");
            std::thread::yield_now();
        }
        let last = handle.checkpoints().last.expect("a checkpoint completed");
        handle.cancel();
        handle.join().unwrap();
        last
    });
    assert!(checkpoint.path.join("_metadata").is_file());
    // Second run, parallelism 1, from that checkpoint: every key's final sum is right.
    let committed: Committed = Arc::default();
    let target = Arc::clone(&committed);
    let restore_from = checkpoint.path.clone();
    within_deadline(move || {
        let mut config = checkpointed(&root, "rescale", 1);
        config.checkpoint.restore = Some(RestoreFrom::Path(restore_from));
        let env = Env::new(config);
        env.add_source(
            "numbers",
            PacedSource::new(0, N, 1_000, Duration::ZERO),
            Boundedness::Bounded,
        )
        .set_parallelism(1)
        .uid("numbers")
        .key_by(|value: &u64| value % KEYS)
        .process(|value: u64, ctx: &mut KeyedContext<'_, u64, u64>, out| {
            *ctx.state() += value;
            out.collect((*ctx.key(), *ctx.state()));
        })
        .uid("sums")
        .sink(TxnSink::new(target));
        let handle = env.execute_async().unwrap();
        assert_eq!(handle.checkpoints().restored_from, Some(checkpoint.id));
        handle.join().unwrap();
    });
    let reference = rolling_sums(N, KEYS);
    let committed = committed.lock().unwrap().clone();
    let actual = by_key(&committed);
    for (key, sums) in &reference {
        assert_eq!(
            actual.get(key).and_then(|s| s.last()),
            sums.last(),
            "key {key}: the final sum continues from the restored state"
        );
    }
}

#[test]
fn a_checkpoint_of_an_unknown_operator_is_refused_unless_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    let first = root.clone();
    let checkpoint = within_deadline(move || {
        let env = Env::new(checkpointed(&first, "changed", 1));
        env.add_source(
            "numbers",
            PacedSource::new(0, u64::MAX, 10, Duration::from_millis(1)),
            Boundedness::Unbounded,
        )
        .uid("numbers")
        .key_by(|value: &u64| value % 3)
        .reduce(|a, b| a + b)
        .uid("old_sums")
        .sink_fn(|_| {});
        let handle = env.execute_async().unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        while handle.checkpoints().completed < 1 {
            assert!(Instant::now() < deadline, "no checkpoint completed");
            std::thread::yield_now();
        }
        let last = handle.checkpoints().last.unwrap();
        handle.cancel();
        handle.join().unwrap();
        last
    });
    let build = |allow: bool, path: std::path::PathBuf, root: std::path::PathBuf| {
        let mut config = checkpointed(&root, "changed", 1);
        config.checkpoint.restore = Some(RestoreFrom::Path(path));
        config.checkpoint.allow_non_restored_state = allow;
        let env = Env::new(config);
        env.add_source(
            "numbers",
            PacedSource::new(0, 10, 10, Duration::ZERO),
            Boundedness::Bounded,
        )
        .uid("numbers")
        .key_by(|value: &u64| value % 3)
        .reduce(|a, b| a + b)
        .uid("new_sums")
        .sink_fn(|_| {});
        env.execute()
    };
    let (path, dir2) = (checkpoint.path.clone(), root.clone());
    match within_deadline(move || build(false, path, dir2)) {
        Err(EngineError::Restore { reason }) => {
            assert!(reason.contains("old_sums"), "{reason}");
            assert!(reason.contains("--allow-non-restored-state"), "{reason}");
        }
        other => panic!("expected a restore error, got {other:?}"),
    }
    let path = checkpoint.path.clone();
    within_deadline(move || build(true, path, root)).expect("allowed to drop old state");
}

#[test]
fn savepoints_without_checkpointing_stop_cleanly_and_resume_with_another_parallelism() {
    const N: u64 = 40_000;
    const KEYS: u64 = 13;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    let committed: Committed = Arc::default();
    let job =
        |parallelism: usize, end: u64, restore: Option<std::path::PathBuf>, sink: Committed| {
            let env = Env::new(JobConfig {
                name: "savepoints".into(),
                parallelism: Some(parallelism),
                checkpoint: CheckpointConfig {
                    restore: restore.map(RestoreFrom::Path),
                    ..CheckpointConfig::default()
                },
                ..JobConfig::default()
            });
            env.add_source(
                "numbers",
                PacedSource::new(0, end, 25, Duration::from_millis(1)),
                Boundedness::Unbounded,
            )
            .set_parallelism(1)
            .uid("numbers")
            .key_by(|value: &u64| value % KEYS)
            .process(|value: u64, ctx: &mut KeyedContext<'_, u64, u64>, out| {
                *ctx.state() += value;
                out.collect((*ctx.key(), *ctx.state()));
            })
            .uid("sums")
            .sink(TxnSink::new(sink))
            .set_parallelism(1)
            .uid("sink");
            env
        };
    // Run 1: parallelism 2, no checkpointing; a savepoint, then stop with a savepoint.
    let (first, second) = (root.join("sp-1"), root.join("sp-2"));
    let full = root.join("full");
    std::fs::create_dir_all(&full).unwrap();
    std::fs::write(full.join("keep.txt"), "not mine").unwrap();
    let target = Arc::clone(&committed);
    let (first_path, stopped_path) = within_deadline(move || {
        let env = job(2, u64::MAX, None, target);
        let handle = env.execute_async().unwrap();
        match handle.trigger_savepoint(&full) {
            Err(EngineError::Savepoint { reason, .. }) => {
                assert!(reason.contains("not empty"), "{reason}")
            }
            other => panic!("a non-empty folder must be refused, got {other:?}"),
        }
        assert!(
            full.join("keep.txt").is_file(),
            "a user's folder is never cleared"
        );
        let saved = handle.trigger_savepoint(&first).expect("savepoint");
        let (stopped, _) = handle
            .stop_with_savepoint(&second)
            .expect("stop with savepoint");
        (saved, stopped)
    });
    assert!(first_path.join("_metadata").is_file());
    assert!(stopped_path.join("_metadata").is_file());
    // The output stops at the second savepoint's barrier: a whole prefix of the input.
    let so_far = committed.lock().unwrap().len() as u64;
    assert!(so_far > 0 && so_far < N, "{so_far} records before the stop");
    assert_eq!(
        by_key(&committed.lock().unwrap()),
        rolling_sums(so_far, KEYS)
    );
    // Run 2: parallelism 1, from the stop savepoint, bounded at N: the output
    // continues exactly once.
    let target = Arc::clone(&committed);
    within_deadline(move || {
        let env = job(1, N, Some(stopped_path), target);
        env.execute().unwrap();
    });
    assert_eq!(by_key(&committed.lock().unwrap()), rolling_sums(N, KEYS));
    // Restoring the first savepoint also works: it is self-contained.
    let target: Committed = Arc::default();
    within_deadline(move || {
        let env = job(3, N, Some(first_path), target);
        env.execute().unwrap();
    });
}

#[test]
fn a_source_learns_each_completed_checkpoint_with_the_position_it_gave_it() {
    fn job(
        root: &std::path::Path,
        restore: Option<std::path::PathBuf>,
        end: u64,
        reports: Reports,
    ) -> Env {
        let mut config = checkpointed(root, "complete", 1);
        config.checkpoint.restore = restore.map(RestoreFrom::Path);
        let env = Env::new(config);
        env.add_source(
            "numbers",
            PacedSource::new(0, end, 10, Duration::from_millis(1)).reporting(reports),
            Boundedness::Unbounded,
        )
        .uid("numbers")
        .sink_fn(|_: u64| {});
        env
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    let reports = Reports::default();
    // Run until a few checkpoints completed, then stop with a savepoint: the source is
    // told about that one too, on its way out.
    let (completed, target, savepoint) = (
        Arc::clone(&reports.completed),
        reports.clone(),
        root.join("savepoint"),
    );
    let path = root.clone();
    let (saved, before_stop) = within_deadline(move || {
        let handle = job(&path, None, u64::MAX, target).execute_async().unwrap();
        let until = Instant::now() + DEADLINE;
        while completed.lock().unwrap().len() < 3 {
            assert!(Instant::now() < until, "no checkpoint completed in time");
            std::thread::park_timeout(Duration::from_millis(2));
        }
        let before_stop = completed.lock().unwrap().len();
        let (saved, _) = handle.stop_with_savepoint(&savepoint).unwrap();
        (saved, before_stop)
    });
    let told = reports.completed.lock().unwrap().clone();
    assert!(
        told.len() > before_stop,
        "the savepoint was not reported: {told:?}"
    );
    assert!(
        told.windows(2).all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1),
        "ids and positions only grow: {told:?}"
    );
    // The position reported with the savepoint is the one stored in it: a job
    // restored from it starts there.
    let (_, at_stop) = *told.last().unwrap();
    let restored = Reports::default();
    let target = restored.clone();
    within_deadline(move || job(&root, Some(saved), 0, target).execute().unwrap());
    assert_eq!(*restored.restored.lock().unwrap(), Some(at_stop));
}

#[test]
fn checkpoints_asked_for_while_tasks_start_neither_stall_nor_fail_the_job() {
    // A 1 ms interval: checkpoints are asked for as soon as the job starts, possibly
    // while executors still build their tasks, and back to back after that. Every task
    // must take part (a task that ignored one would leave links blocked in alignment and
    // the job stalled; the SIGKILL tests of the binary found that race, which this test
    // does not reproduce deterministically).
    for round in 0..5u64 {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        let committed: Committed = Arc::default();
        let target = Arc::clone(&committed);
        within_deadline(move || {
            let mut config = checkpointed(&root, "early", 2);
            config.checkpoint.interval = Duration::from_millis(1);
            let env = Env::new(config);
            let a = env.add_source(
                "a",
                PacedSource::new(0, 2_000, 100, Duration::from_micros(200)),
                Boundedness::Bounded,
            );
            let b = env.add_source(
                "b",
                PacedSource::new(2_000, 4_000, 100, Duration::from_micros(200)),
                Boundedness::Bounded,
            );
            a.set_parallelism(1)
                .union(&b.set_parallelism(1))
                .key_by(|value: &u64| value % 5)
                .process(|value: u64, ctx: &mut KeyedContext<'_, u64, u64>, out| {
                    *ctx.state() += value;
                    out.collect((*ctx.key(), *ctx.state()));
                })
                .sink(TxnSink::new(target))
                .set_parallelism(1);
            env.execute().unwrap();
        });
        let committed = committed.lock().unwrap().clone();
        let finals: BTreeMap<u64, u64> = by_key(&committed)
            .into_iter()
            .map(|(key, sums)| (key, *sums.last().unwrap()))
            .collect();
        let expected: BTreeMap<u64, u64> = rolling_sums(4_000, 5)
            .into_iter()
            .map(|(key, sums)| (key, *sums.last().unwrap()))
            .collect();
        assert_eq!(finals, expected, "round {round}");
        assert_eq!(committed.len(), 4_000, "round {round}: every update once");
    }
}

/// Per (key, window start): the number of records and their sum, computed here.
fn window_reference(n: u64, keys: u64, size: u64) -> BTreeMap<(u64, i64), (u64, u64)> {
    let mut out: BTreeMap<(u64, i64), (u64, u64)> = BTreeMap::new();
    for value in 0..n {
        let start = (value - value % size) as i64;
        let entry = out.entry((value % keys, start)).or_default();
        entry.0 += 1;
        entry.1 += value;
    }
    out
}

#[test]
fn windows_restart_from_a_checkpoint_with_their_contents_and_timers() {
    const N: u64 = 30_000;
    const KEYS: u64 = 5;
    const SIZE: u64 = 1_000;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    let committed: Committed = Arc::default();
    let target = Arc::clone(&committed);
    within_deadline(move || {
        let env = Env::new(checkpointed(&root, "windows", 2));
        let exploded = Arc::new(AtomicBool::new(false));
        // Event time = the value; windows of 1000 ms; the failure comes after some
        // windows fired and while others are open (their contents and timers must come
        // back from the checkpoint).
        env.add_source(
            "numbers",
            PacedSource::new(0, N, 40, Duration::from_millis(1)),
            Boundedness::Bounded,
        )
        .set_parallelism(1)
        .uid("numbers")
        .assign_timestamps_and_watermarks(
            WatermarkStrategy::for_monotonous_timestamps()
                .with_timestamp_assigner(|value: &u64| *value as i64),
        )
        .set_parallelism(1)
        .map(move |value: u64| {
            if value == N / 2 + 333 && !exploded.swap(true, Ordering::SeqCst) {
                panic!("injected failure at {value}");
            }
            value
        })
        .set_parallelism(1)
        .key_by(|value: &u64| value % KEYS)
        .window(TumblingEventTimeWindows::of(Duration::from_millis(SIZE)))
        .process(
            |key: &u64, window: &WindowContext<'_, TimeWindow>, values: &[u64], out| {
                out.collect((
                    key * 1_000_000_000 + window.window().start as u64,
                    values.len() as u64 * 1_000_000_000_000 + values.iter().sum::<u64>(),
                ));
            },
        )
        .uid("windows")
        .sink(TxnSink::new(target))
        .set_parallelism(1);
        env.execute().unwrap();
    });
    let mut actual: BTreeMap<(u64, i64), (u64, u64)> = BTreeMap::new();
    for &(id, packed) in committed.lock().unwrap().iter() {
        let key = (id / 1_000_000_000, (id % 1_000_000_000) as i64);
        let value = (packed / 1_000_000_000_000, packed % 1_000_000_000_000);
        assert!(
            actual.insert(key, value).is_none(),
            "window {key:?} fired twice"
        );
    }
    assert_eq!(actual, window_reference(N, KEYS, SIZE));
}

#[test]
fn state_restored_but_not_touched_yet_survives_the_next_snapshot() {
    // Keyed state is decoded per key group when a key of the group is first used; a
    // snapshot taken before then must carry the group's restored bytes on unchanged.
    const KEYS: u64 = 10;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    let committed: Committed = Arc::default();
    let run = |first: u64,
               end: u64,
               only_key_0: bool,
               restore: Option<std::path::PathBuf>,
               stop_at: Option<std::path::PathBuf>,
               sink: Committed| {
        let env = Env::new(JobConfig {
            name: "lazy".into(),
            parallelism: Some(2),
            checkpoint: CheckpointConfig {
                restore: restore.map(RestoreFrom::Path),
                ..CheckpointConfig::default()
            },
            ..JobConfig::default()
        });
        let mut source = PacedSource::new(first, end, 500, Duration::ZERO);
        if stop_at.is_some() {
            source = source.lingering();
        }
        env.add_source("numbers", source, Boundedness::Unbounded)
            .set_parallelism(1)
            .uid("numbers")
            .filter(move |value: &u64| !only_key_0 || value % KEYS == 0)
            .key_by(|value: &u64| value % KEYS)
            .process(|value: u64, ctx: &mut KeyedContext<'_, u64, u64>, out| {
                *ctx.state() += value;
                out.collect((*ctx.key(), *ctx.state()));
            })
            .uid("sums")
            .sink(TxnSink::new(sink))
            .set_parallelism(1)
            .uid("sink");
        let handle = env.execute_async().unwrap();
        match stop_at {
            Some(path) => {
                // Everything emitted is before the savepoint's barrier.
                let deadline = Instant::now() + Duration::from_secs(30);
                while handle
                    .metrics()
                    .links
                    .iter()
                    .filter(|l| l.name.starts_with("numbers"))
                    .map(|l| l.records)
                    .sum::<u64>()
                    < if only_key_0 {
                        (end - first) / KEYS
                    } else {
                        end - first
                    }
                {
                    assert!(Instant::now() < deadline, "the source did not finish");
                    std::thread::yield_now();
                }
                handle.stop_with_savepoint(&path).unwrap().0
            }
            None => {
                handle.join().unwrap();
                std::path::PathBuf::new()
            }
        }
    };
    let (a, b) = (root.join("a"), root.join("b"));
    let target = Arc::clone(&committed);
    let a = within_deadline(move || run(0, 10_000, false, None, Some(a), target));
    // Only key 0 is touched after the restore: the other keys' groups stay encoded.
    let target = Arc::clone(&committed);
    let b = within_deadline(move || run(10_000, 20_000, true, Some(a), Some(b), target));
    let target = Arc::clone(&committed);
    within_deadline(move || run(20_000, 30_000, false, Some(b), None, target));
    let mut expected: BTreeMap<u64, u64> = BTreeMap::new();
    for value in (0..10_000)
        .chain((10_000..20_000).filter(|v| v % KEYS == 0))
        .chain(20_000..30_000)
    {
        *expected.entry(value % KEYS).or_default() += value;
    }
    let finals: BTreeMap<u64, u64> = by_key(&committed.lock().unwrap())
        .into_iter()
        .map(|(key, sums)| (key, *sums.last().unwrap()))
        .collect();
    assert_eq!(finals, expected);
}

/// A [`PacedSource`] that cannot be replayed: it declines every snapshot.
#[derive(Clone)]
struct DecliningSource(PacedSource);

impl Source<u64> for DecliningSource {
    fn poll_next(
        &mut self,
        out: &mut SourceOutput<'_, u64>,
    ) -> Result<SourceStatus, ConnectorError> {
        self.0.poll_next(out)
    }
}

#[test]
fn a_declined_stop_with_savepoint_lets_the_job_go_on() {
    const N: u64 = 20_000;
    let dir = tempfile::tempdir().unwrap();
    let savepoint = dir.path().join("sp");
    let values = within_deadline(move || {
        let env = Env::new(JobConfig {
            parallelism: Some(1),
            ..JobConfig::default()
        });
        let replayable = env.add_source(
            "replayable",
            PacedSource::new(0, N, 10, Duration::from_millis(1)),
            Boundedness::Bounded,
        );
        let declining = env.add_source(
            "declining",
            DecliningSource(PacedSource::new(N, 2 * N, 10, Duration::from_millis(1))),
            Boundedness::Bounded,
        );
        let collected = replayable
            .union(&declining)
            .map(|x| x)
            .disable_chaining()
            .collect_vec();
        let handle = env.execute_async().unwrap();
        let monitor = handle.monitor();
        match monitor.stop_with_savepoint(&savepoint) {
            Err(EngineError::Savepoint { reason, .. }) => {
                assert!(reason.contains("declined"), "{reason}")
            }
            other => panic!("the stop must fail: a source declines, got {other:?}"),
        }
        // Both sources stopped at the barrier; the failure lets them go on to the end.
        handle.join().expect("the job ends normally");
        assert_eq!(monitor.status(), JobStatus::Finished);
        collected.take()
    });
    let mut values = values;
    values.sort_unstable();
    assert_eq!(values, (0..2 * N).collect::<Vec<_>>(), "every record, once");
}
