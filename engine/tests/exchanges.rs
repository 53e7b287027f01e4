//! Topology and routing through the public API: per-key order through hash exchanges
//! (parallel and non-parallel sources, parallelism 2..=4 on both sides), union,
//! broadcast, rebalance, forward, `disable_chaining`, fan-out (one stream read by two
//! operators), `set_parallelism`, a parallel user `Source` that takes its slice from
//! `SubtaskInfo`, and a user `Sink` (open / write / finish once per subtask).
//!
//! Every expectation is computed in the test from the input, never from the engine.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use eddy_engine::prelude::*;

fn config(parallelism: usize, size: usize, timeout: Duration, count: usize) -> JobConfig {
    JobConfig {
        parallelism: Some(parallelism),
        buffer: BufferConfig {
            size,
            timeout,
            count,
        },
        ..JobConfig::default()
    }
}

/// What a [`RecordingSink`] saw, shared by all of its subtasks.
#[derive(Debug, Default)]
struct Recorded<T> {
    /// `(subtask index, record)` in the order each subtask wrote them.
    records: Vec<(usize, T)>,
    /// The `SubtaskInfo` of every `open`.
    opened: Vec<SubtaskInfo>,
    /// Subtask indices whose `finish` ran.
    finished: Vec<usize>,
}

/// A user sink that records what each of its subtasks receives.
struct RecordingSink<T> {
    shared: Arc<Mutex<Recorded<T>>>,
    index: Option<usize>,
}

impl<T> Clone for RecordingSink<T> {
    fn clone(&self) -> Self {
        RecordingSink {
            shared: Arc::clone(&self.shared),
            index: self.index,
        }
    }
}

impl<T> RecordingSink<T> {
    fn new() -> (Self, Arc<Mutex<Recorded<T>>>) {
        let shared = Arc::new(Mutex::new(Recorded {
            records: Vec::new(),
            opened: Vec::new(),
            finished: Vec::new(),
        }));
        (
            RecordingSink {
                shared: Arc::clone(&shared),
                index: None,
            },
            shared,
        )
    }
}

impl<T: Send + 'static> Sink<T> for RecordingSink<T> {
    fn open(&mut self, subtask: &SubtaskInfo) -> Result<(), ConnectorError> {
        assert!(self.index.is_none(), "open runs once per sink instance");
        self.index = Some(subtask.index);
        self.shared.lock().unwrap().opened.push(subtask.clone());
        Ok(())
    }

    fn write(&mut self, record: T) -> Result<(), ConnectorError> {
        let index = self.index.expect("open runs before write");
        self.shared.lock().unwrap().records.push((index, record));
        Ok(())
    }

    fn finish(&mut self) -> Result<(), ConnectorError> {
        let index = self.index.expect("open runs before finish");
        self.shared.lock().unwrap().finished.push(index);
        Ok(())
    }
}

/// Records per subtask, in arrival order.
fn by_subtask<T: Clone>(recorded: &Recorded<T>) -> BTreeMap<usize, Vec<T>> {
    let mut out: BTreeMap<usize, Vec<T>> = BTreeMap::new();
    for (index, record) in &recorded.records {
        out.entry(*index).or_default().push(record.clone());
    }
    out
}

/// A deterministic pseudo-random sequence (xorshift64*), so inputs are reproducible.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, bound: u64) -> u64 {
        self.next() % bound
    }
}

/// `(key, seq)` records: for each key, seqs 0..per_key in order, keys interleaved
/// pseudo-randomly. Only keys for which `owns(key)` holds are produced.
fn interleaved(keys: u64, per_key: u64, seed: u64, owns: impl Fn(u64) -> bool) -> Vec<(u64, u64)> {
    let mut rng = Rng(seed | 1);
    let mut next: Vec<(u64, u64)> = (0..keys).filter(|&k| owns(k)).map(|k| (k, 0)).collect();
    let mut out = Vec::new();
    while !next.is_empty() {
        let pick = rng.below(next.len() as u64) as usize;
        let (key, seq) = next[pick];
        out.push((key, seq));
        if seq + 1 == per_key {
            next.swap_remove(pick);
        } else {
            next[pick].1 += 1;
        }
    }
    out
}

/// A parallel source of `(key, seq)` records: subtask `i` of `p` owns the keys with
/// `key % p == i` and emits them interleaved, each key's seqs in order.
#[derive(Clone)]
struct KeyedSequenceSource {
    keys: u64,
    per_key: u64,
    pending: Vec<(u64, u64)>,
    position: usize,
}

impl KeyedSequenceSource {
    fn new(keys: u64, per_key: u64) -> Self {
        KeyedSequenceSource {
            keys,
            per_key,
            pending: Vec::new(),
            position: 0,
        }
    }
}

impl Source<(u64, u64)> for KeyedSequenceSource {
    fn open(&mut self, subtask: &SubtaskInfo) -> Result<(), ConnectorError> {
        let (index, parallelism) = (subtask.index as u64, subtask.parallelism as u64);
        self.pending = interleaved(self.keys, self.per_key, 7 + index, |key| {
            key % parallelism == index
        });
        Ok(())
    }

    fn poll_next(
        &mut self,
        out: &mut SourceOutput<'_, (u64, u64)>,
    ) -> Result<SourceStatus, ConnectorError> {
        // Emit in small, varying slices so buffers fill at different points.
        let slice = out.remaining().min(1 + self.position % 5);
        for _ in 0..slice {
            match self.pending.get(self.position) {
                Some(&record) => {
                    out.emit(record);
                    self.position += 1;
                }
                None => return Ok(SourceStatus::Finished),
            }
        }
        Ok(SourceStatus::Ready)
    }
}

/// Checks that each key's seqs arrived as 0, 1, 2, ... per_key - 1, within one subtask.
fn assert_per_key_order(recorded: &Recorded<(u64, u64)>, keys: u64, per_key: u64) {
    let mut seen: BTreeMap<u64, (usize, Vec<u64>)> = BTreeMap::new();
    for &(subtask, (key, seq)) in &recorded.records {
        let entry = seen.entry(key).or_insert((subtask, Vec::new()));
        assert_eq!(entry.0, subtask, "key {key} reached two subtasks");
        entry.1.push(seq);
    }
    assert_eq!(seen.len() as u64, keys, "every key arrives");
    for (key, (_, seqs)) in seen {
        assert_eq!(
            seqs,
            (0..per_key).collect::<Vec<_>>(),
            "seqs of key {key} out of order or incomplete"
        );
    }
}

/// The keyed operator itself checks the order too: its state is the next expected seq.
fn check_order_in_state(
    (key, seq): (u64, u64),
    context: &mut KeyedContext<'_, u64, u64>,
    out: &mut Collector<'_, (u64, u64)>,
) {
    assert_eq!(*context.key(), key);
    let expected = context.state();
    assert_eq!(seq, *expected, "key {key}: seq {seq} arrived out of order");
    *expected += 1;
    out.collect((key, seq));
}

#[test]
fn per_key_order_through_hash_exchange_from_a_parallel_source() {
    let (keys, per_key) = (23, 60);
    for source_parallelism in 2..=4 {
        for keyed_parallelism in 2..=4 {
            let timeout = [Duration::ZERO, Duration::from_micros(50)][keyed_parallelism % 2];
            let env = Env::new(config(keyed_parallelism, 3, timeout, 2));
            let (sink, recorded) = RecordingSink::new();
            env.add_source(
                "keyed_sequences",
                KeyedSequenceSource::new(keys, per_key),
                Boundedness::Bounded,
            )
            .set_parallelism(source_parallelism)
            .key_by(|record: &(u64, u64)| record.0)
            .process(check_order_in_state)
            .set_parallelism(keyed_parallelism)
            .sink(sink)
            .set_parallelism(keyed_parallelism);
            env.execute().unwrap_or_else(|error| {
                panic!("{source_parallelism} -> {keyed_parallelism}: {error}")
            });
            let recorded = recorded.lock().unwrap();
            assert_per_key_order(&recorded, keys, per_key);
            assert_eq!(recorded.opened.len(), keyed_parallelism);
        }
    }
}

#[test]
fn per_key_order_through_hash_exchange_from_a_non_parallel_source() {
    let (keys, per_key) = (31, 80);
    for keyed_parallelism in 2..=4 {
        let env = Env::new(config(keyed_parallelism, 5, Duration::from_millis(1), 1));
        let (sink, recorded) = RecordingSink::new();
        env.from_iter(interleaved(keys, per_key, 99, |_| true))
            .key_by(|record: &(u64, u64)| record.0)
            .process(check_order_in_state)
            // A sink of parallelism 1 behind a rebalance keeps each key's order too.
            .sink(sink)
            .set_parallelism(1);
        env.execute().unwrap();
        assert_per_key_order(&recorded.lock().unwrap(), keys, per_key);
    }
}

#[test]
fn rolling_reduce_emits_each_keys_running_totals_in_order() {
    let (keys, per_key) = (13, 50);
    let input = interleaved(keys, per_key, 5, |_| true);
    let env = Env::new(config(3, 4, Duration::ZERO, 2));
    let (sink, recorded) = RecordingSink::new();
    // The tuples are made before the source: a parallel map between a non-parallel
    // source and the key_by would (rightly) reorder records of a key.
    env.from_iter(
        input
            .iter()
            .map(|&(key, seq)| (key, seq, 1u64))
            .collect::<Vec<_>>(),
    )
    .key_by(|record: &(u64, u64, u64)| record.0)
    .reduce(|(key, sum, count), (_, seq, one)| (key, sum + seq, count + one))
    .sink(sink)
    .set_parallelism(3);
    env.execute().unwrap();
    let mut expected: BTreeMap<u64, Vec<(u64, u64)>> = BTreeMap::new();
    let mut totals: BTreeMap<u64, (u64, u64)> = BTreeMap::new();
    for (key, seq) in input {
        let total = totals.entry(key).or_insert((0, 0));
        total.0 += seq;
        total.1 += 1;
        expected.entry(key).or_default().push(*total);
    }
    let mut actual: BTreeMap<u64, Vec<(u64, u64)>> = BTreeMap::new();
    for (_, (key, sum, count)) in &recorded.lock().unwrap().records {
        actual.entry(*key).or_default().push((*sum, *count));
    }
    assert_same_per_key(&actual, &expected);
}

/// Compares per-key sequences, reporting the first differing key only.
fn assert_same_per_key<V: PartialEq + std::fmt::Debug>(
    actual: &BTreeMap<u64, Vec<V>>,
    expected: &BTreeMap<u64, Vec<V>>,
) {
    assert_eq!(
        actual.keys().collect::<Vec<_>>(),
        expected.keys().collect::<Vec<_>>()
    );
    for (key, values) in expected {
        assert_eq!(&actual[key], values, "key {key}");
    }
}

#[test]
fn union_merges_inputs_keeping_each_inputs_order() {
    let env = Env::new(config(1, 7, Duration::from_micros(50), 2));
    let (sink, recorded) = RecordingSink::new();
    let evens = env.from_iter((0..2_000u64).map(|x| 2 * x));
    let odds = env.from_iter((0..1_500u64).map(|x| 2 * x + 1));
    let tens = env.from_iter((0..100u64).map(|x| 10_000 + x));
    evens.union(&odds).union(&tens).sink(sink);
    env.execute().unwrap();
    let records: Vec<u64> = recorded
        .lock()
        .unwrap()
        .records
        .iter()
        .map(|r| r.1)
        .collect();
    let evens: Vec<u64> = records
        .iter()
        .copied()
        .filter(|x| *x < 10_000 && x % 2 == 0)
        .collect();
    let odds: Vec<u64> = records
        .iter()
        .copied()
        .filter(|x| *x < 10_000 && x % 2 == 1)
        .collect();
    let tens: Vec<u64> = records.iter().copied().filter(|x| *x >= 10_000).collect();
    assert_eq!(evens, (0..2_000u64).map(|x| 2 * x).collect::<Vec<_>>());
    assert_eq!(odds, (0..1_500u64).map(|x| 2 * x + 1).collect::<Vec<_>>());
    assert_eq!(tens, (0..100u64).map(|x| 10_000 + x).collect::<Vec<_>>());
    assert_eq!(records.len(), 3_600);
}

#[test]
fn union_of_a_stream_with_itself_doubles_it() {
    let env = Env::new(config(2, 16, Duration::ZERO, 4));
    let numbers = env.from_iter(0..500u64).map(|x| x + 1);
    let doubled = numbers.union(&numbers).collect_vec();
    env.execute().unwrap();
    let mut actual = doubled.take();
    actual.sort_unstable();
    let mut expected: Vec<u64> = (1..=500).chain(1..=500).collect();
    expected.sort_unstable();
    assert_eq!(actual, expected);
}

#[test]
fn broadcast_sends_every_record_to_every_subtask_in_order() {
    let env = Env::new(config(2, 8, Duration::from_micros(50), 2));
    let (sink, recorded) = RecordingSink::new();
    env.from_iter(0..1_000u64)
        .broadcast()
        .map(|x| x * 3)
        .set_parallelism(3)
        .sink(sink)
        .set_parallelism(3);
    env.execute().unwrap();
    let per_subtask = by_subtask(&recorded.lock().unwrap());
    assert_eq!(per_subtask.len(), 3);
    for (subtask, records) in per_subtask {
        assert_eq!(
            records,
            (0..1_000u64).map(|x| x * 3).collect::<Vec<_>>(),
            "subtask {subtask}"
        );
    }
}

#[test]
fn rebalance_spreads_round_robin() {
    let n = 3_000u64;
    let env = Env::new(config(3, 10, Duration::ZERO, 2));
    let (sink, recorded) = RecordingSink::new();
    env.from_iter(0..n)
        .rebalance()
        .sink(sink)
        .set_parallelism(3);
    env.execute().unwrap();
    let per_subtask = by_subtask(&recorded.lock().unwrap());
    assert_eq!(per_subtask.len(), 3, "every subtask gets records");
    let mut residues = BTreeSet::new();
    let mut all = Vec::new();
    for (subtask, records) in per_subtask {
        // One producer sending round-robin: subtask j sees every third record, in order.
        assert_eq!(records.len() as u64, n / 3, "subtask {subtask}");
        let residue = records[0] % 3;
        assert!(
            records.iter().all(|x| x % 3 == residue),
            "subtask {subtask}"
        );
        assert!(records.windows(2).all(|w| w[0] < w[1]), "subtask {subtask}");
        residues.insert(residue);
        all.extend(records);
    }
    assert_eq!(residues.len(), 3);
    all.sort_unstable();
    assert_eq!(all, (0..n).collect::<Vec<_>>());
}

/// A parallel source: subtask `i` of `p` emits `(i, x)` for the `x < n` with
/// `x % p == i` (its slice of the input), ascending.
#[derive(Clone)]
struct SlicedRange {
    n: u64,
    subtask: Option<(u64, u64)>,
    next: u64,
}

impl SlicedRange {
    fn new(n: u64) -> Self {
        SlicedRange {
            n,
            subtask: None,
            next: 0,
        }
    }
}

impl Source<(u64, u64)> for SlicedRange {
    fn open(&mut self, subtask: &SubtaskInfo) -> Result<(), ConnectorError> {
        assert!(subtask.index < subtask.parallelism);
        self.subtask = Some((subtask.index as u64, subtask.parallelism as u64));
        self.next = subtask.index as u64;
        Ok(())
    }

    fn poll_next(
        &mut self,
        out: &mut SourceOutput<'_, (u64, u64)>,
    ) -> Result<SourceStatus, ConnectorError> {
        let (index, parallelism) = self.subtask.expect("opened before polled");
        while out.remaining() > 0 {
            if self.next >= self.n {
                return Ok(SourceStatus::Finished);
            }
            out.emit((index, self.next));
            self.next += parallelism;
        }
        Ok(SourceStatus::Ready)
    }
}

#[test]
fn parallel_user_source_takes_its_slice_and_user_sink_sees_every_subtask() {
    let n = 10_001u64;
    for parallelism in [1, 3, 4] {
        let env = Env::new(config(2, 64, Duration::from_millis(1), 4));
        let (sink, recorded) = RecordingSink::new();
        env.add_source("sliced", SlicedRange::new(n), Boundedness::Bounded)
            .set_parallelism(parallelism)
            .map(|(_, x)| x)
            .set_parallelism(parallelism)
            .sink(sink)
            .name("recording")
            .set_parallelism(2);
        env.execute().unwrap();
        let recorded = recorded.lock().unwrap();
        let mut values: Vec<u64> = recorded.records.iter().map(|r| r.1).collect();
        values.sort_unstable();
        assert_eq!(values, (0..n).collect::<Vec<_>>(), "p={parallelism}");
        let mut opened: Vec<(usize, usize, String)> = recorded
            .opened
            .iter()
            .map(|info| (info.index, info.parallelism, info.operator.clone()))
            .collect();
        opened.sort();
        assert_eq!(
            opened,
            vec![
                (0, 2, "recording".to_string()),
                (1, 2, "recording".to_string())
            ]
        );
        let mut finished = recorded.finished.clone();
        finished.sort_unstable();
        assert_eq!(finished, vec![0, 1], "finish runs once per sink subtask");
    }
}

#[test]
fn forward_keeps_subtask_i_to_subtask_i() {
    let env = Env::new(config(1, 16, Duration::from_micros(50), 2));
    let (sink, recorded) = RecordingSink::new();
    env.add_source("sliced", SlicedRange::new(5_000), Boundedness::Bounded)
        .set_parallelism(3)
        .forward()
        .map(|record| record)
        .set_parallelism(3)
        .disable_chaining()
        .forward()
        .sink(sink)
        .set_parallelism(3);
    env.execute().unwrap();
    let per_subtask = by_subtask(&recorded.lock().unwrap());
    assert_eq!(per_subtask.len(), 3);
    for (subtask, records) in per_subtask {
        let expected: Vec<(u64, u64)> = (0..5_000u64)
            .filter(|x| x % 3 == subtask as u64)
            .map(|x| (subtask as u64, x))
            .collect();
        assert_eq!(records, expected, "sink subtask {subtask}");
    }
}

#[test]
fn chaining_fuses_and_disable_chaining_adds_a_link() {
    let n = 4_321u64;
    let expected: Vec<u64> = (0..n).map(|x| x * 2).filter(|x| x % 3 != 0).collect();

    let env = Env::new(config(1, 100, Duration::from_millis(1), 2));
    let fused = env
        .from_iter(0..n)
        .map(|x| x * 2)
        .filter(|x| x % 3 != 0)
        .collect_vec();
    let metrics = env.execute().unwrap();
    assert_eq!(fused.take(), expected);
    assert!(
        metrics.links.is_empty(),
        "a forward pipeline of parallelism 1 is one chain, got links {:?}",
        metrics.links
    );

    let env = Env::new(config(1, 100, Duration::from_millis(1), 2));
    let split = env
        .from_iter(0..n)
        .map(|x| x * 2)
        .name("doubler")
        .filter(|x| x % 3 != 0)
        .name("own_task")
        .disable_chaining()
        .collect_vec();
    let metrics = env.execute().unwrap();
    assert_eq!(split.take(), expected);
    assert_eq!(metrics.links.len(), 1, "links {:?}", metrics.links);
    let link = &metrics.links[0];
    assert!(
        link.name.contains("doubler") && link.name.contains("own_task"),
        "link name {:?}",
        link.name
    );
    assert_eq!(link.records, n, "every record crosses the link");
    assert!(link.buffers >= n.div_ceil(100), "buffers {}", link.buffers);
}

#[test]
fn fan_out_feeds_every_consumer_the_whole_stream() {
    let n = 3_000u64;
    let env = Env::new(config(2, 32, Duration::from_micros(50), 2));
    // `numbers` has parallelism 1 so that the sink behind it sees the input order.
    let numbers = env.from_iter(0..n).map(|x| x + 1).set_parallelism(1);
    let doubled = numbers.map(|x| x * 2).collect_vec();
    let odd = numbers.filter(|x| x % 2 == 1).collect_vec();
    let (sink, recorded) = RecordingSink::new();
    numbers.rebalance().sink(sink).set_parallelism(1);
    env.execute().unwrap();
    let mut doubled = doubled.take();
    doubled.sort_unstable();
    assert_eq!(doubled, (1..=n).map(|x| x * 2).collect::<Vec<_>>());
    let mut odd = odd.take();
    odd.sort_unstable();
    assert_eq!(odd, (1..=n).filter(|x| x % 2 == 1).collect::<Vec<_>>());
    let recorded: Vec<u64> = recorded
        .lock()
        .unwrap()
        .records
        .iter()
        .map(|r| r.1)
        .collect();
    assert_eq!(recorded, (1..=n).collect::<Vec<_>>());
}

#[test]
fn set_parallelism_sets_the_number_of_subtasks() {
    #[derive(Clone)]
    struct CountSubtasks(Arc<Mutex<BTreeSet<(usize, usize)>>>);
    impl Sink<u64> for CountSubtasks {
        fn open(&mut self, subtask: &SubtaskInfo) -> Result<(), ConnectorError> {
            self.0
                .lock()
                .unwrap()
                .insert((subtask.index, subtask.parallelism));
            Ok(())
        }
        fn write(&mut self, _record: u64) -> Result<(), ConnectorError> {
            Ok(())
        }
    }
    for parallelism in 1..=5 {
        let seen = Arc::new(Mutex::new(BTreeSet::new()));
        let env = Env::new(config(2, 8, Duration::ZERO, 2));
        env.from_iter(0..100u64)
            .sink(CountSubtasks(Arc::clone(&seen)))
            .set_parallelism(parallelism);
        env.execute().unwrap();
        let expected: BTreeSet<(usize, usize)> =
            (0..parallelism).map(|index| (index, parallelism)).collect();
        assert_eq!(*seen.lock().unwrap(), expected);
    }
}
