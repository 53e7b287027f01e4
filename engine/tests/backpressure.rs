//! Backpressure and handles: a reader that does not keep up stalls the pipeline back to
//! the push source (`try_push` reports `Full`), the records accepted meanwhile stay
//! bounded by the buffers and rings, nothing is lost or reordered, and the link metrics
//! show the time the producer was blocked. Also: a lone record is flushed by
//! `buffer.timeout` without more input.

// Tests use the OS clock only for deadlines (never to wait a fixed time).
#![allow(clippy::disallowed_methods)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use eddy_engine::prelude::*;

/// Spins (yielding the thread) until `ready` holds; panics with `what` at the deadline.
fn wait_for(what: &str, deadline: Duration, mut ready: impl FnMut() -> bool) {
    let until = Instant::now() + deadline;
    while !ready() {
        assert!(Instant::now() < until, "timed out waiting for {what}");
        std::thread::yield_now();
    }
}

#[test]
fn slow_reader_stalls_the_source_without_losing_or_reordering() {
    const RECORDS: u64 = 20_000;
    const PUSH_CAPACITY: usize = 64;
    const RESULT_CAPACITY: usize = 32;
    let buffer = BufferConfig {
        size: 16,
        timeout: Duration::from_micros(50),
        count: 2,
    };
    let env = Env::new(JobConfig {
        parallelism: Some(1),
        buffer,
        ..JobConfig::default()
    });
    let (mut input, stream) = env.push_source::<u64>(PUSH_CAPACITY);
    // The rebalance makes a real link (source chain -> result sink task).
    let mut output = stream
        .map(|x| x * 2)
        .rebalance()
        .collect_handle(RESULT_CAPACITY);
    let job = env.execute_async().expect("job starts");

    let accepted = Arc::new(AtomicU64::new(0));
    let full_seen = Arc::new(AtomicU64::new(0));
    let pusher = {
        let (accepted, full_seen) = (Arc::clone(&accepted), Arc::clone(&full_seen));
        std::thread::spawn(move || {
            let mut next = 0;
            while next < RECORDS {
                match input.try_push(next) {
                    Ok(()) => {
                        next += 1;
                        accepted.store(next, Ordering::SeqCst);
                    }
                    Err(PushError::Full(_)) => {
                        full_seen.fetch_add(1, Ordering::SeqCst);
                        std::thread::yield_now();
                    }
                    Err(PushError::Closed(_)) => panic!("job closed its input early"),
                }
            }
            // Dropping the handle ends the input.
        })
    };

    // Nobody reads yet: the pipeline fills up and the stall reaches the pusher.
    wait_for(
        "try_push to report Full many times",
        Duration::from_secs(20),
        || full_seen.load(Ordering::SeqCst) >= 20_000,
    );
    // Memory stays bounded: what was accepted fits in the push ring, the link (buffers
    // in the ring, being filled, held back), the sink's pending batch and the result ring.
    let bound = PUSH_CAPACITY as u64
        + RESULT_CAPACITY as u64
        + ((buffer.count + 4) * buffer.size) as u64
        + 2 * buffer.size as u64;
    let stalled_at = accepted.load(Ordering::SeqCst);
    assert!(
        stalled_at <= bound,
        "{stalled_at} records accepted while nobody reads (bound {bound})"
    );
    assert!(stalled_at < RECORDS);

    // Now read everything (slowly: yield after each record); all arrive, in order.
    let mut received = Vec::with_capacity(RECORDS as usize);
    let until = Instant::now() + Duration::from_secs(30);
    while (received.len() as u64) < RECORDS {
        match output.try_recv() {
            Ok(value) => received.push(value),
            Err(RecvError::Empty) => {}
            Err(RecvError::Ended) => panic!("output ended after {} records", received.len()),
        }
        assert!(
            Instant::now() < until,
            "timed out after {} records",
            received.len()
        );
        std::thread::yield_now();
    }
    pusher.join().unwrap();
    assert_eq!(received, (0..RECORDS).map(|x| x * 2).collect::<Vec<_>>());
    assert_eq!(
        output.recv_timeout(Duration::from_secs(20)),
        Err(RecvError::Ended),
        "the output ends after the input ended"
    );

    let metrics = job.join().expect("job ends cleanly");
    let link = metrics
        .links
        .iter()
        .max_by_key(|link| link.blocked)
        .expect("the job has a link");
    assert!(
        link.blocked > Duration::ZERO && link.backpressure_ratio > 0.0,
        "some link must show backpressure: {:?}",
        metrics.links
    );
    assert!(link.backpressure_ratio <= 1.0, "{link:?}");
    assert_eq!(
        metrics.links.iter().map(|l| l.records).sum::<u64>(),
        RECORDS
    );
}

#[test]
fn slow_user_sink_backpressures_a_bounded_job_and_gets_everything() {
    #[derive(Clone)]
    struct SlowSink {
        last: Option<u64>,
        written: Arc<AtomicU64>,
        sum: Arc<AtomicU64>,
    }
    impl Sink<u64> for SlowSink {
        fn write(&mut self, record: u64) -> Result<(), ConnectorError> {
            assert!(self.last < Some(record), "records arrive in order");
            self.last = Some(record);
            // Busy work per record, so the sink is slower than the source.
            let mut spin = record;
            for _ in 0..2_000 {
                spin = std::hint::black_box(spin.wrapping_mul(31).wrapping_add(7));
            }
            self.written.fetch_add(1, Ordering::SeqCst);
            self.sum.fetch_add(record, Ordering::SeqCst);
            Ok(())
        }
    }
    const RECORDS: u64 = 30_000;
    let (written, sum) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let env = Env::new(JobConfig {
        parallelism: Some(1),
        buffer: BufferConfig {
            size: 8,
            timeout: Duration::from_millis(1),
            count: 2,
        },
        ..JobConfig::default()
    });
    // Two sink subtasks: subtask 1 runs on the second core, so the source (first core)
    // really waits for it instead of taking turns with it on one core.
    env.from_iter(0..RECORDS)
        .rebalance()
        .sink(SlowSink {
            last: None,
            written: Arc::clone(&written),
            sum: Arc::clone(&sum),
        })
        .set_parallelism(2);
    let metrics = env.execute().expect("job ends");
    assert_eq!(written.load(Ordering::SeqCst), RECORDS);
    assert_eq!(sum.load(Ordering::SeqCst), RECORDS * (RECORDS - 1) / 2);
    assert_eq!(metrics.links.len(), 2);
    assert_eq!(
        metrics.links.iter().map(|l| l.records).sum::<u64>(),
        RECORDS
    );
    assert!(
        metrics
            .links
            .iter()
            .any(|link| link.blocked > Duration::ZERO),
        "a slow sink must block its producer: {:?}",
        metrics.links
    );
}

#[test]
fn buffer_timeout_flushes_a_lone_record() {
    for timeout in [
        Duration::ZERO,
        Duration::from_millis(1),
        Duration::from_millis(10),
    ] {
        let env = Env::new(JobConfig {
            parallelism: Some(2),
            buffer: BufferConfig {
                size: 1024,
                timeout,
                count: 4,
            },
            ..JobConfig::default()
        });
        let (mut input, stream) = env.push_source::<u64>(16);
        let mut output = stream
            .rebalance()
            .map(|x| x + 1)
            .rebalance()
            .collect_handle(16);
        let job = env.execute_async().expect("job starts");
        for value in [10, 20, 30] {
            input.push(value).unwrap();
            // The buffer is far from full and the input stays open: only the timeout
            // can send the record on.
            assert_eq!(
                output.recv_timeout(Duration::from_secs(10)),
                Ok(value + 1),
                "timeout {timeout:?}"
            );
        }
        job.cancel();
        job.join().unwrap();
    }
}
