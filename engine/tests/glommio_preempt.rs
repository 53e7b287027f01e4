//! An executor never parks while it has runnable tasks, however soon its preempt timer
//! fires: the fix of glommio/glommio#53 in the vendored glommio (`vendor/README.md`).
//!
//! glommio 0.9.0 parked in `io_uring_enter` when the preempt timer had fired before the
//! executor looked at its task queues: nothing had run, which it took for nothing to
//! run. The preempt timer is armed on the way out of the reactor, a few microseconds
//! before that look, so a timer of tens of microseconds fires first now and then (an
//! interrupt, a VM exit, another thread on the CPU). These executors have nothing else
//! to wake them (no timers, no I/O), so one such park is a hang. Each test runs its
//! executors on a thread of its own and fails at a deadline instead of hanging.
//!
//! Measured on the 2-CPU development VM (debug and release builds): glommio 0.9.0 hangs
//! in both tests in almost every run; patched, they take about a second in debug. The
//! timers are not shorter because a timer that has *always* fired by then (1 ns) stops
//! every executor, patched or not: the patch keeps it from parking, and it then
//! returns to the reactor, re-arms the timer and is preempted again before it looks at
//! its queues, forever (glommio's scheduler, unchanged here).

use std::sync::mpsc;
use std::time::Duration;

use glommio::{LocalExecutor, LocalExecutorBuilder, Placement};

/// Far above what the work takes (about a second in a debug build), so only a hang
/// reaches it.
const DEADLINE: Duration = Duration::from_secs(60);

/// An unbound executor (so it does not spin before it parks) with the given preempt
/// timer and eddy's small io_uring buffer registration (`ulimit -l` is small).
fn executor(preempt_timer: Duration) -> LocalExecutor {
    LocalExecutorBuilder::new(Placement::Unbound)
        .preempt_timer(preempt_timer)
        .io_memory(64 << 10)
        .make()
        .expect("the executor starts")
}

/// Runs `body` on a thread of its own and returns its result, or fails the test with
/// `what` if it has not returned within [`DEADLINE`] (the thread is left behind).
fn within_deadline<R: Send + 'static>(what: &str, body: impl FnOnce() -> R + Send + 'static) -> R {
    let (done, outcome) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = done.send(body());
    });
    match outcome.recv_timeout(DEADLINE) {
        Ok(result) => result,
        Err(_) => panic!(
            "{what} did not finish within {DEADLINE:?}: an executor parked with runnable \
             tasks (glommio/glommio#53)"
        ),
    }
}

#[test]
fn short_runs_finish_with_a_short_preempt_timer() {
    let runs = within_deadline("10000 runs of an empty future, thrice", || {
        let mut runs = 0_u32;
        for preempt_timer_us in [20, 50, 100] {
            let executor = executor(Duration::from_micros(preempt_timer_us));
            for _ in 0..10_000 {
                executor.run(async {});
                runs += 1;
            }
        }
        runs
    });
    assert_eq!(runs, 30_000);
}

#[test]
fn a_yielding_task_finishes_with_a_short_preempt_timer() {
    let yields = within_deadline("a task that yields 200000 times, twice", || {
        let mut yields = 0_u32;
        for preempt_timer_us in [10, 20] {
            let executor = executor(Duration::from_micros(preempt_timer_us));
            yields += executor.run(async {
                let task = glommio::spawn_local(async {
                    let mut yields = 0_u32;
                    for _ in 0..200_000 {
                        futures_lite::future::yield_now().await;
                        yields += 1;
                    }
                    yields
                });
                task.await
            });
        }
        yields
    });
    assert_eq!(yields, 400_000);
}
