//! Idle cost: an unbounded job with no input (push source kept open, result handle
//! empty) must not spin its cores. The process CPU time (utime + stime from
//! `/proc/self/stat`) over a window of wall time must stay below 20% of one core.
//! This file holds a single test so that nothing else runs in the process meanwhile;
//! the benchmark measures the 2% target precisely.

// Tests use the OS clock only for deadlines (the measuring window).
#![allow(clippy::disallowed_methods)]

use std::time::{Duration, Instant};

use eddy_engine::prelude::*;

/// Clock ticks per second of `/proc/<pid>/stat` times (USER_HZ, 100 on Linux).
const TICKS_PER_SECOND: f64 = 100.0;

/// CPU time of this process so far (user + system), from `/proc/self/stat`.
fn process_cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("read /proc/self/stat");
    // The command name (field 2) is in parentheses and may hold spaces: parse after it.
    let after_name = &stat[stat.rfind(')').expect("stat has the command name") + 2..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // Fields 14 (utime) and 15 (stime) of the full line are 12 and 13 here.
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    Duration::from_secs_f64(ticks as f64 / TICKS_PER_SECOND)
}

/// Waits `window` of wall time without spinning (parks with a deadline).
fn park_for(window: Duration) {
    let until = Instant::now() + window;
    loop {
        let now = Instant::now();
        if now >= until {
            return;
        }
        std::thread::park_timeout(until - now);
    }
}

#[test]
fn an_idle_unbounded_job_does_not_spin() {
    let env = Env::new(JobConfig {
        parallelism: Some(2),
        ..JobConfig::default()
    });
    let (mut input, stream) = env.push_source::<u64>(64);
    let mut output = stream
        .rebalance()
        .map(|x| x + 1)
        .key_by(|x: &u64| x % 7)
        .reduce(|a, b| a + b)
        .rebalance()
        .collect_handle(64);
    let job = env.execute_async().expect("job starts");

    // The job is live end to end.
    input.push(41).unwrap();
    assert_eq!(output.recv_timeout(Duration::from_secs(20)), Ok(42));
    // Let every task pass its spin phase and settle into parking.
    park_for(Duration::from_millis(200));

    let window = Duration::from_millis(1_500);
    let cpu_before = process_cpu_time();
    let wall_before = Instant::now();
    park_for(window);
    let cpu = process_cpu_time().saturating_sub(cpu_before);
    let wall = wall_before.elapsed();
    let share_of_one_core = cpu.as_secs_f64() / wall.as_secs_f64();
    assert!(
        share_of_one_core < 0.20,
        "idle job used {cpu:?} of CPU in {wall:?} ({:.0}% of one core)",
        share_of_one_core * 100.0
    );

    // Still live after idling.
    input.push(1).unwrap();
    assert_eq!(output.recv_timeout(Duration::from_secs(20)), Ok(2));
    job.cancel();
    job.join().expect("a cancelled job ends without error");
}
