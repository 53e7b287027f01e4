//! Failure and cancellation: a panic in a user function or an error from a user source
//! or sink fails the job with `EngineError::TaskFailed` naming the operator (and never
//! hangs); `execute_async` + `cancel` ends an unbounded job promptly and without error;
//! invalid graphs (BATCH with an unbounded source, forward between different
//! parallelisms, a non-parallel source made parallel) are `EngineError::Graph` before
//! anything runs.

// Tests use the OS clock only for deadlines (a hung job must fail the test, not hang it).
#![allow(clippy::disallowed_methods)]

use std::sync::mpsc;
use std::time::{Duration, Instant};

use eddy_engine::prelude::*;

/// How long any job of this file may take before the test calls it hung.
const DEADLINE: Duration = Duration::from_secs(20);

fn config(parallelism: usize) -> JobConfig {
    JobConfig {
        parallelism: Some(parallelism),
        ..JobConfig::default()
    }
}

/// Builds and runs a job on its own thread (an `Env` is not `Send`); fails the test if
/// the job has not returned within [`DEADLINE`].
fn execute_within_deadline<R: Send + 'static>(
    build_and_run: impl FnOnce() -> R + Send + 'static,
) -> R {
    let (done, outcome) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = done.send(build_and_run());
    });
    outcome
        .recv_timeout(DEADLINE)
        .expect("the job did not return before the deadline (hang)")
}

fn expect_task_failed(result: Result<MetricsSnapshot, EngineError>) -> (String, String) {
    match result {
        Err(EngineError::TaskFailed { task, reason }) => (task, reason),
        other => panic!("expected EngineError::TaskFailed, got {other:?}"),
    }
}

#[test]
fn panic_in_an_unchained_map_fails_the_job_naming_the_operator() {
    let result = execute_within_deadline(|| {
        let env = Env::new(config(2));
        let _ = env
            .from_iter(0..10_000u64)
            .map(|x| {
                assert!(x != 4_321, "boom at record {x}");
                x
            })
            .name("exploding_map")
            .disable_chaining()
            .collect_vec();
        env.execute()
    });
    let (task, reason) = expect_task_failed(result);
    assert!(task.contains("exploding_map"), "task was {task:?}");
    assert!(
        reason.contains("boom at record 4321"),
        "reason was {reason:?}"
    );
}

#[test]
fn panic_in_a_parallel_map_behind_a_keyed_exchange_fails_the_job() {
    // The map runs in parallel behind a hash exchange while upstream keeps producing:
    // the failure must stop producers that may be blocked on full rings.
    let result = execute_within_deadline(|| {
        let env = Env::new(JobConfig {
            parallelism: Some(3),
            buffer: BufferConfig {
                size: 4,
                timeout: Duration::ZERO,
                count: 1,
            },
            ..JobConfig::default()
        });
        let _ = env
            .from_iter(0..200_000u64)
            .key_by(|x: &u64| x % 17)
            .process(|x: u64, _ctx: &mut KeyedContext<'_, u64, ()>, out| {
                assert!(x != 50_000, "keyed boom");
                out.collect(x)
            })
            .name("keyed_bomb")
            .collect_vec();
        env.execute()
    });
    let (task, reason) = expect_task_failed(result);
    assert!(task.contains("keyed_bomb"), "task was {task:?}");
    assert!(reason.contains("keyed boom"), "reason was {reason:?}");
}

#[test]
fn failing_source_fails_the_job_with_its_message() {
    #[derive(Clone)]
    struct FailingSource {
        emitted: u64,
    }
    impl Source<u64> for FailingSource {
        fn poll_next(
            &mut self,
            out: &mut SourceOutput<'_, u64>,
        ) -> Result<SourceStatus, ConnectorError> {
            if self.emitted == 100 {
                return Err(ConnectorError::new("disk on fire at offset 100"));
            }
            out.emit(self.emitted);
            self.emitted += 1;
            Ok(SourceStatus::Ready)
        }
    }
    let result = execute_within_deadline(|| {
        let env = Env::new(config(2));
        let _ = env
            .add_source(
                "flaky_source",
                FailingSource { emitted: 0 },
                Boundedness::Bounded,
            )
            .map(|x| x + 1)
            .collect_vec();
        env.execute()
    });
    let (task, reason) = expect_task_failed(result);
    assert!(task.contains("flaky_source"), "task was {task:?}");
    assert!(
        reason.contains("disk on fire at offset 100"),
        "reason was {reason:?}"
    );
}

#[test]
fn failing_source_open_fails_the_job() {
    #[derive(Clone)]
    struct UnopenableSource;
    impl Source<u64> for UnopenableSource {
        fn open(&mut self, subtask: &SubtaskInfo) -> Result<(), ConnectorError> {
            Err(ConnectorError::new(format!(
                "no such partition {}",
                subtask.index
            )))
        }
        fn poll_next(
            &mut self,
            _out: &mut SourceOutput<'_, u64>,
        ) -> Result<SourceStatus, ConnectorError> {
            Ok(SourceStatus::Finished)
        }
    }
    let result = execute_within_deadline(|| {
        let env = Env::new(config(1));
        let _ = env
            .add_source("closed_source", UnopenableSource, Boundedness::Bounded)
            .collect_vec();
        env.execute()
    });
    let (task, reason) = expect_task_failed(result);
    assert!(task.contains("closed_source"), "task was {task:?}");
    assert!(
        reason.contains("no such partition 0"),
        "reason was {reason:?}"
    );
}

#[test]
fn failing_sink_fails_the_job_with_its_message() {
    #[derive(Clone)]
    struct FailingSink {
        written: u64,
    }
    impl Sink<u64> for FailingSink {
        fn write(&mut self, _record: u64) -> Result<(), ConnectorError> {
            self.written += 1;
            if self.written == 500 {
                return Err(ConnectorError::new("quota exceeded"));
            }
            Ok(())
        }
    }
    let result = execute_within_deadline(|| {
        let env = Env::new(config(1));
        env.from_iter(0..100_000u64)
            .rebalance()
            .sink(FailingSink { written: 0 })
            .name("quota_sink");
        env.execute()
    });
    let (task, reason) = expect_task_failed(result);
    assert!(task.contains("quota_sink"), "task was {task:?}");
    assert!(reason.contains("quota exceeded"), "reason was {reason:?}");
}

#[test]
fn cancel_ends_an_unbounded_job_promptly_and_without_error() {
    let (pushed_ok, closed_after) = execute_within_deadline(|| {
        let env = Env::new(config(2));
        let (mut input, stream) = env.push_source::<u64>(64);
        let mut results = stream.map(|x| x * 10).rebalance().collect_handle(64);
        let job = env.execute_async().expect("job starts");
        // The job is live: a record goes through.
        input.push(7).expect("job accepts input");
        let first = results.recv_timeout(DEADLINE);
        job.cancel();
        let joined = job.join();
        // After the job ended the handles see it: input is refused, output has ended.
        let mut closed = false;
        for _ in 0..1_000 {
            match input.try_push(8) {
                Err(PushError::Closed(8)) => {
                    closed = true;
                    break;
                }
                Err(PushError::Full(_)) => std::thread::yield_now(),
                Ok(()) => {}
                Err(other) => panic!("unexpected push error {other:?}"),
            }
        }
        assert_eq!(first, Ok(70));
        (joined.map(|_| ()), closed && results.recv().is_none())
    });
    pushed_ok.expect("a cancelled job ends without error");
    assert!(
        closed_after,
        "handles must report the end of a cancelled job"
    );
}

#[test]
fn cancel_from_another_thread_through_a_canceller() {
    let elapsed = execute_within_deadline(|| {
        let env = Env::new(config(2));
        let (_input, stream) = env.push_source::<u64>(16);
        let _results = stream.rebalance().collect_handle(16);
        let job = env.execute_async().expect("job starts");
        let canceller = job.canceller();
        assert!(!job.is_finished());
        let started = Instant::now();
        std::thread::spawn(move || canceller.cancel())
            .join()
            .unwrap();
        job.join().expect("a cancelled job ends without error");
        started.elapsed()
    });
    assert!(elapsed < Duration::from_secs(5), "cancel took {elapsed:?}");
}

#[test]
fn batch_mode_rejects_an_unbounded_source() {
    let env = Env::new(JobConfig {
        mode: Mode::Batch,
        ..config(1)
    });
    let (_input, stream) = env.push_source::<u64>(16);
    let _ = stream.map(|x| x + 1).collect_vec();
    match env.execute_async() {
        Err(EngineError::Graph(message)) => {
            assert!(message.contains("unbounded"), "message was {message:?}")
        }
        Err(other) => panic!("expected EngineError::Graph, got {other:?}"),
        Ok(_) => panic!("expected EngineError::Graph, the job started"),
    }
}

#[test]
fn batch_mode_rejects_an_unbounded_user_source() {
    #[derive(Clone)]
    struct Forever;
    impl Source<u64> for Forever {
        fn poll_next(
            &mut self,
            _out: &mut SourceOutput<'_, u64>,
        ) -> Result<SourceStatus, ConnectorError> {
            Ok(SourceStatus::Idle)
        }
    }
    let env = Env::new(JobConfig {
        mode: Mode::Batch,
        ..config(2)
    });
    let _ = env
        .add_source("forever", Forever, Boundedness::Unbounded)
        .collect_vec();
    assert!(matches!(env.execute(), Err(EngineError::Graph(_))));
}

#[test]
fn forward_between_different_parallelisms_is_a_graph_error() {
    let env = Env::new(config(2));
    let _ = env
        .from_iter(0..10u64)
        .forward()
        .map(|x| x + 1)
        .set_parallelism(3)
        .collect_vec();
    match env.execute() {
        Err(EngineError::Graph(message)) => {
            assert!(message.contains("forward"), "message was {message:?}")
        }
        other => panic!("expected EngineError::Graph, got {other:?}"),
    }
}

#[test]
fn a_non_parallel_source_cannot_be_made_parallel() {
    let env = Env::new(config(2));
    let _ = env.from_iter(0..10u64).set_parallelism(2).collect_vec();
    assert!(matches!(env.execute(), Err(EngineError::Graph(_))));
}

#[test]
fn invalid_settings_are_config_errors() {
    let env = Env::new(JobConfig {
        buffer: BufferConfig {
            size: 0,
            ..BufferConfig::default()
        },
        ..config(1)
    });
    let _ = env.from_iter(0..10u64).collect_vec();
    match env.execute() {
        Err(EngineError::Config(error)) => {
            assert!(error.to_string().contains("buffer.size"), "{error}")
        }
        other => panic!("expected EngineError::Config, got {other:?}"),
    }
}

#[test]
fn panic_in_a_chained_operator_names_it() {
    let result = execute_within_deadline(|| {
        let env = Env::new(config(1));
        let _ = env
            .from_iter(0..100u64)
            .map(|x| {
                assert!(x != 42, "chained boom");
                x
            })
            .name("chained_bomb")
            .collect_vec();
        env.execute()
    });
    let (task, reason) = expect_task_failed(result);
    assert!(task.contains("chained_bomb"), "task was {task:?}");
    assert!(
        task.contains("from_iter"),
        "the task names its whole chain: {task:?}"
    );
    assert!(reason.contains("chained boom"), "reason was {reason:?}");
}

#[test]
fn keyed_parallelism_above_max_parallelism_is_a_graph_error_and_odd_key_group_counts_work() {
    let env = Env::new(JobConfig {
        parallelism: Some(3),
        max_parallelism: 2,
        ..JobConfig::default()
    });
    let _ = env
        .from_iter(0..10u64)
        .key_by(|x: &u64| *x)
        .reduce(|a, b| a + b)
        .collect_vec();
    match env.execute() {
        Err(EngineError::Graph(reason)) => assert!(reason.contains("max_parallelism"), "{reason}"),
        other => panic!("expected a graph error, got {other:?}"),
    }

    // 7 key groups over 3 subtasks: every key still lands in exactly one subtask.
    let env = Env::new(JobConfig {
        parallelism: Some(3),
        max_parallelism: 7,
        ..JobConfig::default()
    });
    let totals = env
        .from_iter((0..300u64).map(|x| (x % 11, x)).collect::<Vec<_>>())
        .key_by(|(k, _): &(u64, u64)| *k)
        .reduce(|(k, a), (_, b)| (k, a + b))
        .collect_vec();
    env.execute().unwrap();
    let mut finals = std::collections::BTreeMap::new();
    for (k, total) in totals.take() {
        let entry = finals.entry(k).or_insert(0);
        *entry = (*entry).max(total);
    }
    let expected: std::collections::BTreeMap<u64, u64> = (0..11)
        .map(|k| (k, (0..300u64).filter(|x| x % 11 == k).sum()))
        .collect();
    assert_eq!(finals, expected);
}
