//! Latency tracking with markers (Flink's `metrics.latency.interval`): sources emit
//! markers, every vertex records their travel time per source, and a stall shows.
//!
//! The reference is the test's own clock: it holds one operator for a measured time
//! and checks that the markers queued behind the held record report at least that
//! long, and no more than the whole run; the records themselves arrive unchanged
//! (markers never turn into records, never overtake them).

// Tests use the OS clock for deadlines and for the stall they measure.
#![allow(clippy::disallowed_methods)]

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use eddy_engine::prelude::*;

const DEADLINE: Duration = Duration::from_secs(60);
/// How long the gate holds the record it stops at.
const HOLD: Duration = Duration::from_millis(300);
const STOP_AT: u64 = 500;
const RECORDS: u64 = 2_000;

fn wait_for(what: &str, mut ready: impl FnMut() -> bool) {
    let until = Instant::now() + DEADLINE;
    while !ready() {
        assert!(Instant::now() < until, "timed out waiting for {what}");
        std::thread::yield_now();
    }
}

/// source -> (rebalance) -> gate -> (rebalance) -> collect: three vertices; with two
/// cores the source and the gate run on different executors, so the source goes on
/// emitting markers while the gate holds a record.
struct Run {
    received: Vec<u64>,
    latency: Vec<VertexLatency>,
    graph: JobGraphInfo,
    /// Wall time of the whole run, measured by the test.
    total: Duration,
    /// How long the gate held the record, measured by the test.
    held: Duration,
}

fn run(interval: Option<Duration>) -> Run {
    let env = Env::new(JobConfig {
        parallelism: Some(1),
        cores: vec![0, 1],
        buffer: BufferConfig {
            size: 64,
            timeout: Duration::from_micros(200),
            count: 64,
        },
        latency_tracking_interval: interval,
        ..JobConfig::default()
    });
    let (mut input, stream) = env.push_source::<u64>(256);
    let entered = Arc::new(AtomicBool::new(false));
    let open = Arc::new(AtomicBool::new(false));
    let mut output = {
        let (entered, open) = (Arc::clone(&entered), Arc::clone(&open));
        stream
            .rebalance()
            .map(move |x| {
                if x == STOP_AT {
                    entered.store(true, Ordering::SeqCst);
                    // Holds this executor: the record and everything behind it wait.
                    while !open.load(Ordering::SeqCst) {
                        std::hint::spin_loop();
                    }
                }
                x
            })
            .name("gate")
            .rebalance()
            .collect_handle(4096)
    };
    let started = Instant::now();
    let job = env.execute_async().expect("job starts");
    let monitor = job.monitor();
    let pushed = Arc::new(AtomicU64::new(0));
    let pusher = {
        let pushed = Arc::clone(&pushed);
        std::thread::spawn(move || {
            for x in 0..RECORDS {
                let mut value = x;
                loop {
                    match input.try_push(value) {
                        Ok(()) => break,
                        Err(PushError::Full(back)) => {
                            value = back;
                            std::thread::yield_now();
                        }
                        Err(PushError::Closed(_)) => panic!("the job closed its input"),
                    }
                }
                pushed.store(x + 1, Ordering::SeqCst);
            }
            input
        })
    };
    let mut received = Vec::new();
    let mut drain = |received: &mut Vec<u64>| loop {
        match output.try_recv() {
            Ok(value) => received.push(value),
            Err(RecvError::Empty) => return false,
            Err(RecvError::Ended) => return true,
        }
    };
    wait_for("the gate to hold its record", || {
        drain(&mut received);
        entered.load(Ordering::SeqCst)
    });
    let held_from = Instant::now();
    // The stall itself: the test's clock decides when it ends.
    wait_for("the hold to last", || held_from.elapsed() >= HOLD);
    let markers_at = |vertex: usize| {
        monitor
            .latency()
            .iter()
            .find(|l| l.vertex == vertex)
            .map_or(0, |l| l.markers)
    };
    // Markers queued behind the held record (the ring holds at most `count` messages).
    let queued = markers_at(1);
    open.store(true, Ordering::SeqCst);
    let held = held_from.elapsed();
    let input = pusher.join().expect("pusher");
    // With tracking on, markers go on flowing after the stall: wait for many more
    // than could have queued behind it.
    if interval.is_some() {
        wait_for("markers after the stall", || {
            drain(&mut received);
            markers_at(1) >= queued + 300 && markers_at(2) >= 300
        });
    }
    drop(input);
    wait_for("the output to end", || drain(&mut received));
    job.join().expect("the job ends cleanly");
    let total = started.elapsed();
    Run {
        received,
        latency: monitor.latency(),
        graph: monitor.graph().clone(),
        total,
        held,
    }
}

#[test]
fn markers_measure_a_stall_from_each_source_to_each_vertex() {
    let run = run(Some(Duration::from_millis(1)));
    assert_eq!(
        run.received,
        (0..RECORDS).collect::<Vec<_>>(),
        "markers must not change the records"
    );
    assert_eq!(run.graph.vertices.len(), 3, "{:?}", run.graph);
    let at = |vertex: usize| {
        run.latency
            .iter()
            .find(|l| l.vertex == vertex)
            .unwrap_or_else(|| panic!("no latency at vertex {vertex}: {:?}", run.latency))
    };
    assert!(
        run.latency
            .iter()
            .all(|l| l.source_vertex == 0 && l.vertex != 0),
        "only the source emits, only vertices with inputs record: {:?}",
        run.latency
    );
    let (gate, sink) = (at(1), at(2));
    // Markers queued behind the held record waited about as long as it was held (less
    // the marker interval and the buffer timeout before the first of them was sent).
    let slack = Duration::from_millis(50);
    let lower = (run.held - slack).as_micros() as u64;
    assert!(
        gate.max_us >= lower,
        "the gate's slowest marker {} us < hold {:?} - {slack:?}",
        gate.max_us,
        run.held
    );
    // The same markers reach the sink later still.
    assert!(
        sink.max_us >= lower,
        "the sink's slowest marker {} us < hold {:?} - {slack:?}",
        sink.max_us,
        run.held
    );
    // No marker can have travelled longer than the whole run (+1 % histogram error).
    let upper = run.total.as_micros() as u64 * 101 / 100;
    assert!(gate.max_us <= upper && sink.max_us <= upper);
    // Most markers came after the stall and did not wait: the median is far below it.
    assert!(gate.p50_us < lower / 10, "median {} us", gate.p50_us);
    assert!(gate.markers >= 300 && sink.markers >= 300);
    assert!(gate.recent <= gate.markers && gate.p50_us <= gate.p99_us);
}

#[test]
fn without_tracking_no_marker_is_sent_or_recorded() {
    let run = run(None);
    assert_eq!(run.received, (0..RECORDS).collect::<Vec<_>>());
    assert!(run.latency.is_empty(), "{:?}", run.latency);
}
