//! A low-latency service embedding eddy: requests go in through a push handle, a
//! keyed pipeline keeps a running balance per account, answers come back through a
//! result handle. The service measures its own request→answer latency.
//!
//! ```text
//! cargo run --release --example low_latency_service
//! ```
//!
//! The job runs on core 0 with `buffer.timeout` 0 (every record is sent at once: the
//! lowest latency, at some cost in throughput); the service thread (this one) sends a
//! bounded number of requests, one at a time, and waits for each answer.

use std::time::Duration;

use eddy::engine::clock::{Clock, SystemClock};
use eddy::prelude::*;
use hdrhistogram::Histogram;

/// A payment request: (request id, account, amount in cents).
type Request = (u64, u32, i64);
/// An answer: (request id, account, balance after the payment).
type Answer = (u64, u32, i64);

const REQUESTS: u64 = 20_000;
const ACCOUNTS: u32 = 100;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let env = Env::new(JobConfig {
        name: "payments".into(),
        cores: vec![0],
        parallelism: Some(1),
        buffer: BufferConfig {
            timeout: Duration::ZERO,
            ..BufferConfig::default()
        },
        ..JobConfig::default()
    });

    // request in → validate → by account → running balance → answer out
    let (mut requests, stream) = env.push_source::<Request>(1024);
    let mut answers = stream
        .map(|(id, account, cents): Request| (id, account, cents.clamp(-100_000, 100_000)))
        .key_by(|&(_, account, _): &Request| account)
        .process(
            |(id, account, cents): Request,
             balance: &mut KeyedContext<'_, u32, i64>,
             out: &mut Collector<'_, Answer>| {
                *balance.state() += cents;
                out.collect((id, account, *balance.state()));
            },
        )
        .collect_handle(1024);
    let job = env.execute_async()?;

    let clock = SystemClock;
    let mut latency = Histogram::<u64>::new_with_bounds(1, 10_000_000_000, 3)?;
    let mut balances = vec![0i64; ACCOUNTS as usize];
    for id in 0..REQUESTS {
        let account = (id % ACCOUNTS as u64) as u32;
        let cents = (id % 7) as i64 * 100 - 250;
        let sent = clock.now();
        requests
            .push((id, account, cents))
            .map_err(|_| "job ended")?;
        // A latency-critical caller polls; `answers.recv()` would park between polls.
        let answer = loop {
            match answers.try_recv() {
                Ok(answer) => break answer,
                Err(RecvError::Empty) => std::hint::spin_loop(),
                Err(RecvError::Ended) => return Err("job ended".into()),
            }
        };
        latency.record(clock.now().duration_since(sent).as_nanos().max(1) as u64)?;
        balances[account as usize] += cents;
        assert_eq!(answer, (id, account, balances[account as usize]));
    }
    drop(requests); // end of input: the job finishes by itself
    job.join()?;

    let us = |q: f64| latency.value_at_quantile(q) as f64 / 1000.0;
    println!(
        "{REQUESTS} requests, request→answer latency: p50 {:.1} µs, p99 {:.1} µs, p99.9 {:.1} µs, max {:.1} µs",
        us(0.5),
        us(0.99),
        us(0.999),
        latency.max() as f64 / 1000.0
    );
    Ok(())
}
