//! Blocking exchanges: in BATCH mode keyed exchanges sort and spill their records under
//! the memory budget, and the results equal a sequential evaluation and STREAMING
//! mode's final values; no spill file is left behind; `.blocking()` does the same in
//! STREAMING mode. Windows and window joins behind spilled blocking exchanges (read
//! sorted, one key at a time) give STREAMING's windows.

// Tests use the OS clock only for deadlines.
#![allow(clippy::disallowed_methods)]

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

use eddy_engine::prelude::*;
use eddy_engine::window::{EventTimeSessionWindows, TumblingEventTimeWindows, WindowContext};
use proptest::prelude::*;

fn within_deadline<R: Send + 'static>(body: impl FnOnce() -> R + Send + 'static) -> R {
    let (done, outcome) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = done.send(body());
    });
    outcome
        .recv_timeout(Duration::from_secs(120))
        .expect("the job did not return before the deadline (hang)")
}

fn config(mode: Mode, parallelism: usize, spill_dir: &Path) -> JobConfig {
    JobConfig {
        name: "blocking".into(),
        mode,
        parallelism: Some(parallelism),
        // The smallest budget: every sorter spills many runs.
        memory_budget_bytes: 1 << 20,
        spill_dir: Some(spill_dir.to_path_buf()),
        ..JobConfig::default()
    }
}

/// Word counts of `words`, computed here.
fn reference(words: &[String]) -> BTreeMap<String, u64> {
    let mut counts = BTreeMap::new();
    for word in words {
        *counts.entry(word.clone()).or_insert(0) += 1;
    }
    counts
}

/// Runs a word count; returns every (word, count) row it emitted.
fn count(
    words: Vec<String>,
    mode: Mode,
    parallelism: usize,
    blocking: bool,
    spill_dir: &Path,
) -> Vec<(String, u64)> {
    let config = config(mode, parallelism, spill_dir);
    within_deadline(move || {
        let env = Env::new(config);
        let mut keyed = env
            .from_iter(words)
            .map(|word: String| (word, 1u64))
            .key_by(|(word, _): &(String, u64)| word.clone());
        if blocking {
            keyed = keyed.blocking();
        }
        let rows = keyed
            .reduce(|(word, a), (_, b)| (word, a + b))
            .collect_vec();
        env.execute().unwrap();
        rows.take()
    })
}

/// The last count per word (STREAMING emits every update, BATCH only the last).
fn finals(rows: &[(String, u64)]) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for (word, count) in rows {
        let entry = out.entry(word.clone()).or_insert(0);
        *entry = (*entry).max(*count);
    }
    out
}

fn words(n: usize, distinct: usize, seed: u64) -> Vec<String> {
    let mut state = seed | 1;
    (0..n)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            format!("word-{}", state % distinct as u64)
        })
        .collect()
}

fn spill_files(dir: &Path) -> usize {
    std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0)
}

#[test]
fn batch_word_count_spills_under_the_budget_and_leaves_no_file() {
    let dir = tempfile::tempdir().unwrap();
    // ~50 MB of records through a 1 MiB budget: many spilled runs per sorter.
    let words = words(1_500_000, 200_000, 7);
    let expected = reference(&words);
    let rows = count(words, Mode::Batch, 2, false, dir.path());
    // BATCH: one row per word, its final count.
    assert_eq!(rows.len(), expected.len(), "one row per word");
    assert_eq!(finals(&rows), expected);
    assert_eq!(spill_files(dir.path()), 0, "spill files are removed");
}

#[test]
fn a_blocking_exchange_in_streaming_mode_gives_the_same_counts() {
    let dir = tempfile::tempdir().unwrap();
    let words = words(200_000, 5_000, 11);
    let expected = reference(&words);
    let rows = count(words, Mode::Streaming, 2, true, dir.path());
    assert_eq!(finals(&rows), expected);
    assert_eq!(spill_files(dir.path()), 0);
}

#[test]
fn stale_spill_files_of_the_job_are_swept_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let stale = dir.path().join("eddy-spill-blocking-count-0-7.run");
    std::fs::write(&stale, b"left by a killed run").unwrap();
    let other = dir.path().join("eddy-spill-otherjob-count-0-7.run");
    std::fs::write(&other, b"another job's").unwrap();
    let words = words(10_000, 100, 3);
    let expected = reference(&words);
    let rows = count(words, Mode::Batch, 1, false, dir.path());
    assert_eq!(finals(&rows), expected);
    assert!(!stale.exists(), "the job's stale spill file is swept");
    assert!(other.exists(), "another job's file is left alone");
}

/// How a fault test damages the spill files.
#[derive(Debug, Clone, Copy)]
enum Damage {
    /// Cut every spill file to half its length.
    Truncate,
    /// Flip one byte near the end of every spill file's records.
    FlipByte,
}

/// Runs a BATCH word count whose spill files are damaged after the producers finished
/// them (and they were validated) but before the consumer read them through: a `map`
/// behind the blocking exchange damages every file in the spill folder when the first
/// merged record reaches it. Returns the job's error.
fn count_with_damaged_spill_files(damage: Damage) -> String {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    let dir = tempfile::tempdir().unwrap();
    // ~18 MB of records through a 1 MiB budget: runs of ~1 MiB, several read buffers
    // each, so most of every run is read after the damage.
    let words = words(600_000, 100_000, 5);
    let config = config(Mode::Batch, 1, dir.path());
    let spill_dir = dir.path().to_path_buf();
    let damaged = Arc::new(AtomicBool::new(false));
    let outcome = within_deadline(move || {
        let env = Env::new(config);
        let _rows = env
            .from_iter(words)
            .map(|word: String| (word, 1u64))
            .key_by(|(word, _): &(String, u64)| word.clone())
            .reduce(|(word, a), (_, b)| (word, a + b))
            .map(move |row: (String, u64)| {
                if !damaged.swap(true, Ordering::Relaxed) {
                    damage_spill_files(&spill_dir, damage);
                }
                row
            })
            .collect_vec();
        env.execute().map_err(|error| error.to_string())
    });
    let error = outcome.expect_err("a job whose spill files were damaged must fail");
    assert_eq!(
        spill_files(dir.path()),
        0,
        "the failed job removes its spill files"
    );
    error
}

fn damage_spill_files(dir: &Path, damage: Damage) {
    let mut damaged = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let len = std::fs::metadata(&path).unwrap().len();
        match damage {
            Damage::Truncate => {
                let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
                file.set_len(len / 2).unwrap();
            }
            Damage::FlipByte => {
                use std::os::unix::fs::FileExt;
                let file = std::fs::OpenOptions::new()
                    .read(true)
                    .write(true)
                    .open(&path)
                    .unwrap();
                // Inside the last record bytes, before the 32-byte trailer.
                let at = len - 40;
                let mut byte = [0u8];
                file.read_exact_at(&mut byte, at).unwrap();
                file.write_all_at(&[byte[0] ^ 0x20], at).unwrap();
            }
        }
        damaged += 1;
    }
    assert!(damaged > 1, "the job spilled (found {damaged} spill files)");
}

#[test]
fn a_spill_file_truncated_while_the_job_runs_fails_it_naming_the_file() {
    let error = count_with_damaged_spill_files(Damage::Truncate);
    assert!(
        error.contains("eddy-spill-blocking-") && error.contains(".run is truncated"),
        "{error}"
    );
}

#[test]
fn a_spill_file_damaged_while_the_job_runs_fails_it_naming_the_file() {
    let error = count_with_damaged_spill_files(Damage::FlipByte);
    assert!(
        error.contains("eddy-spill-blocking-") && error.contains(".run is corrupt"),
        "{error}"
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, .. ProptestConfig::default() })]

    /// Random bounded jobs: BATCH (sorted, spilled) and STREAMING give the same final
    /// counts, equal to a sequential count.
    #[test]
    fn batch_and_streaming_agree(
        n in 1usize..60_000,
        distinct in 1usize..3_000,
        seed in any::<u64>(),
        parallelism in 1usize..=2,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let words = words(n, distinct, seed);
        let expected = reference(&words);
        let batch = finals(&count(words.clone(), Mode::Batch, parallelism, false, dir.path()));
        let streaming = finals(&count(words, Mode::Streaming, parallelism, false, dir.path()));
        prop_assert_eq!(&batch, &expected);
        prop_assert_eq!(&streaming, &expected);
        prop_assert_eq!(spill_files(dir.path()), 0);
    }
}

/// A keyed reading: (key, value, event time).
type Reading = (u32, i64, i64);

/// `n` readings of `keys` keys, event times in `0..10_000` in random order.
fn readings(n: usize, keys: u32, seed: u64) -> Vec<Reading> {
    let mut state = seed | 1;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    (0..n)
        .map(|_| {
            let key = (next() % u64::from(keys)) as u32;
            let value = (next() % 100) as i64;
            (key, value, (next() % 10_000) as i64)
        })
        .collect()
}

/// The readings with event time; the watermark lags by the whole time range, so no
/// reading is late in STREAMING mode either.
fn timed(env: &Env, readings: Vec<Reading>) -> DataStream<Reading> {
    env.from_iter(readings).assign_timestamps_and_watermarks(
        WatermarkStrategy::for_bounded_out_of_orderness(Duration::from_secs(20))
            .with_timestamp_assigner(|r: &Reading| r.2),
    )
}

/// Per (key, window): (key, window start, window end, readings, sum), sorted; tumbling
/// windows of `size_ms` or sessions with gap `gap_ms`.
fn window_sums(
    readings: Vec<Reading>,
    mode: Mode,
    parallelism: usize,
    session: bool,
    spill_dir: &Path,
) -> Vec<(u32, i64, i64, usize, i64)> {
    let config = config(mode, parallelism, spill_dir);
    within_deadline(move || {
        let env = Env::new(config);
        let keyed = timed(&env, readings).key_by(|r: &Reading| r.0);
        let sum = |key: &u32,
                   ctx: &WindowContext<'_, eddy_engine::window::TimeWindow>,
                   readings: &[Reading],
                   out: &mut Collector<'_, (u32, i64, i64, usize, i64)>| {
            let window = ctx.window();
            let sum = readings.iter().map(|r| r.1).sum();
            out.collect((*key, window.start, window.end, readings.len(), sum));
        };
        let rows = if session {
            keyed
                .window(EventTimeSessionWindows::with_gap(Duration::from_millis(40)))
                .process(sum)
        } else {
            keyed
                .window(TumblingEventTimeWindows::of(Duration::from_millis(1_000)))
                .process(sum)
        }
        .collect_vec();
        env.execute().unwrap();
        let mut rows = rows.take();
        rows.sort();
        rows
    })
}

/// Tumbling windows of 1 s, computed here.
fn reference_window_sums(readings: &[Reading]) -> Vec<(u32, i64, i64, usize, i64)> {
    let mut cells: BTreeMap<(u32, i64), (usize, i64)> = BTreeMap::new();
    for &(key, value, time) in readings {
        let cell = cells.entry((key, time - time % 1_000)).or_default();
        cell.0 += 1;
        cell.1 += value;
    }
    cells
        .into_iter()
        .map(|((key, start), (count, sum))| (key, start, start + 1_000, count, sum))
        .collect()
}

/// Window join of two reading streams in tumbling windows of 1 s: every (left value,
/// right value, key) pair, sorted.
fn window_join(
    left: Vec<Reading>,
    right: Vec<Reading>,
    mode: Mode,
    parallelism: usize,
    spill_dir: &Path,
) -> Vec<(u32, i64, i64)> {
    let config = config(mode, parallelism, spill_dir);
    within_deadline(move || {
        let env = Env::new(config);
        let (left, right) = (timed(&env, left), timed(&env, right));
        let pairs = left
            .join(&right)
            .where_key(|r: &Reading| r.0)
            .equal_to(|r: &Reading| r.0)
            .window(TumblingEventTimeWindows::of(Duration::from_millis(1_000)))
            .apply(|a: &Reading, b: &Reading| (a.0, a.1 * 10_000 + a.2, b.1 * 10_000 + b.2))
            .collect_vec();
        env.execute().unwrap();
        let mut pairs = pairs.take();
        pairs.sort();
        pairs
    })
}

/// Interval join of two reading streams (right within [-50, 50] ms of left): every
/// (left, right, key) pair, sorted.
fn interval_join(
    left: Vec<Reading>,
    right: Vec<Reading>,
    mode: Mode,
    parallelism: usize,
    spill_dir: &Path,
) -> Vec<(u32, i64, i64)> {
    let config = config(mode, parallelism, spill_dir);
    within_deadline(move || {
        let env = Env::new(config);
        let left = timed(&env, left).key_by(|r: &Reading| r.0);
        let right = timed(&env, right).key_by(|r: &Reading| r.0);
        let pairs = left
            .interval_join(&right)
            .between(-50, 50)
            .process(|a: &Reading, b: &Reading| (a.0, a.1 * 10_000 + a.2, b.1 * 10_000 + b.2))
            .collect_vec();
        env.execute().unwrap();
        let mut pairs = pairs.take();
        pairs.sort();
        pairs
    })
}

#[test]
fn batch_windows_behind_a_spilling_exchange_match_a_reference() {
    let dir = tempfile::tempdir().unwrap();
    // ~3 MB of records through a 1 MiB budget shared by 4 sorters: many runs each.
    let readings = readings(120_000, 5_000, 5);
    let expected = reference_window_sums(&readings);
    let batch = window_sums(readings, Mode::Batch, 2, false, dir.path());
    assert_eq!(batch, expected);
    assert_eq!(spill_files(dir.path()), 0);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 6, .. ProptestConfig::default() })]

    /// Tumbling and session windows: BATCH (blocking exchange spilled under the budget,
    /// read sorted, one key at a time) and STREAMING give the same windows.
    #[test]
    fn batch_and_streaming_windows_agree(
        n in 1usize..60_000,
        keys in 1u32..3_000,
        seed in any::<u64>(),
        parallelism in 1usize..=2,
        session in any::<bool>(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let readings = readings(n, keys, seed);
        let batch = window_sums(readings.clone(), Mode::Batch, parallelism, session, dir.path());
        if !session {
            prop_assert_eq!(&batch, &reference_window_sums(&readings));
        }
        let streaming = window_sums(readings, Mode::Streaming, parallelism, session, dir.path());
        prop_assert_eq!(batch, streaming);
        prop_assert_eq!(spill_files(dir.path()), 0);
    }

    /// The window join in BATCH: both tagged inputs through blocking exchanges into one
    /// sorted merge; the same pairs as STREAMING.
    #[test]
    fn batch_and_streaming_window_joins_agree(
        n in 1usize..30_000,
        keys in 500u32..3_000,
        seed in any::<u64>(),
        parallelism in 1usize..=2,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let left = readings(n, keys, seed);
        let right = readings(n / 2 + 1, keys, seed.wrapping_add(1));
        let batch = window_join(left.clone(), right.clone(), Mode::Batch, parallelism, dir.path());
        let streaming = window_join(left, right, Mode::Streaming, parallelism, dir.path());
        prop_assert_eq!(batch, streaming);
        prop_assert_eq!(spill_files(dir.path()), 0);
    }

    /// The interval join in BATCH: sorted and spilled like the window join; the same
    /// pairs as STREAMING (where nothing is late either).
    #[test]
    fn batch_and_streaming_interval_joins_agree(
        n in 1usize..30_000,
        keys in 300u32..3_000,
        seed in any::<u64>(),
        parallelism in 1usize..=2,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let left = readings(n, keys, seed);
        let right = readings(n, keys, seed.wrapping_add(7));
        let batch = interval_join(left.clone(), right.clone(), Mode::Batch, parallelism, dir.path());
        let streaming = interval_join(left, right, Mode::Streaming, parallelism, dir.path());
        prop_assert_eq!(batch, streaming);
        prop_assert_eq!(spill_files(dir.path()), 0);
    }
}
