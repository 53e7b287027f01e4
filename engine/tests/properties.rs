//! Property tests: random pipelines (map, filter, flat_map, union with fan-out,
//! rebalance, disable_chaining, key_by + reduce / process) with random parallelism
//! 1..=4, random `buffer.size` 1..=2048, `buffer.timeout` 0 / 50us / 1ms / 10ms,
//! `buffer.count` 1..=8, in STREAMING and BATCH mode, give the same result as a plain
//! sequential evaluation written here:
//!
//! * stateless pipelines: the same multiset of records;
//! * rolling reduce (STREAMING): per key, the updates carry counts 1, 2, 3, ... and the
//!   differences between consecutive sums are the key's inputs; when nothing upstream
//!   can reorder (non-parallel source, parallelism-1 stages, no union) they are the
//!   key's inputs in input order;
//! * reduce (BATCH): exactly one final value per key;
//! * keyed process: per key, a running index 0, 1, 2, ... with the same checks.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use eddy_engine::prelude::*;
use proptest::prelude::*;

#[derive(Debug, Clone, Copy)]
enum Op {
    Map(u64),
    Filter(u64),
    FlatMap(u64),
    /// `s.union(&s.map(+a))`, or `s.union(&s)` for `None`.
    Union(Option<u64>),
}

#[derive(Debug, Clone, Copy)]
struct Stage {
    op: Op,
    parallelism: Option<usize>,
    rebalance: bool,
    no_chaining: bool,
}

#[derive(Debug, Clone, Copy)]
enum Terminal {
    Collect {
        parallelism: usize,
    },
    Reduce {
        keys: u64,
        parallelism: usize,
        sink_same: bool,
    },
    Process {
        keys: u64,
        parallelism: usize,
        sink_same: bool,
    },
}

#[derive(Debug, Clone)]
struct Case {
    input: Vec<u64>,
    parallel_source: Option<usize>,
    stages: Vec<Stage>,
    terminal: Terminal,
    default_parallelism: usize,
    buffer: BufferConfig,
    mode: Mode,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0u64..100).prop_map(Op::Map),
        (2u64..5).prop_map(Op::Filter),
        (1u64..4).prop_map(Op::FlatMap),
        proptest::option::of(1u64..50).prop_map(Op::Union),
    ]
}

fn stage() -> impl Strategy<Value = Stage> {
    (
        op(),
        proptest::option::of(1usize..=4),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(op, parallelism, rebalance, no_chaining)| Stage {
            op,
            parallelism,
            rebalance,
            no_chaining,
        })
}

fn terminal() -> impl Strategy<Value = Terminal> {
    prop_oneof![
        (1usize..=4).prop_map(|parallelism| Terminal::Collect { parallelism }),
        (1u64..8, 1usize..=4, any::<bool>()).prop_map(|(keys, parallelism, sink_same)| {
            Terminal::Reduce {
                keys,
                parallelism,
                sink_same,
            }
        }),
        (1u64..8, 1usize..=4, any::<bool>()).prop_map(|(keys, parallelism, sink_same)| {
            Terminal::Process {
                keys,
                parallelism,
                sink_same,
            }
        }),
    ]
}

fn case() -> impl Strategy<Value = Case> {
    (
        proptest::collection::vec(0u64..1_000, 0..200),
        proptest::option::of(1usize..=4),
        proptest::collection::vec(stage(), 0..4),
        terminal(),
        1usize..=4,
        1usize..=2048,
        prop_oneof![
            Just(Duration::ZERO),
            Just(Duration::from_micros(50)),
            Just(Duration::from_millis(1)),
            Just(Duration::from_millis(10)),
        ],
        1usize..=8,
        prop_oneof![Just(Mode::Streaming), Just(Mode::Batch)],
    )
        .prop_map(
            |(
                input,
                parallel_source,
                stages,
                terminal,
                default_parallelism,
                size,
                timeout,
                count,
                mode,
            )| Case {
                input,
                parallel_source,
                stages,
                terminal,
                default_parallelism,
                buffer: BufferConfig {
                    size,
                    timeout,
                    count,
                },
                mode,
            },
        )
}

// ---------------------------------------------------------------------------------
// The reference: a sequential evaluation of the same pipeline on a Vec.

fn apply_op(op: Op, input: Vec<u64>) -> Vec<u64> {
    match op {
        Op::Map(a) => input.into_iter().map(|x| x * 3 + a).collect(),
        Op::Filter(m) => input.into_iter().filter(|x| x % m != 0).collect(),
        Op::FlatMap(n) => input
            .into_iter()
            .flat_map(|x| (0..x % n).map(move |i| x + i))
            .collect(),
        Op::Union(a) => {
            let other: Vec<u64> = input.iter().map(|x| x + a.unwrap_or(0)).collect();
            input.into_iter().chain(other).collect()
        }
    }
}

/// Whether the records reach the terminal in input order.
fn order_preserved(case: &Case) -> bool {
    case.parallel_source.is_none_or(|p| p == 1)
        && case.stages.iter().all(|stage| {
            !matches!(stage.op, Op::Union(_))
                && stage.parallelism.unwrap_or(case.default_parallelism) == 1
        })
}

/// The parallelism of the last operator before the terminal.
fn upstream_parallelism(case: &Case) -> usize {
    match case.stages.last() {
        Some(stage) => stage.parallelism.unwrap_or(case.default_parallelism),
        None => case.parallel_source.unwrap_or(1),
    }
}

// ---------------------------------------------------------------------------------
// The pipeline under test.

/// A parallel source: subtask `i` of `p` emits the input items at positions `i, i+p, ...`.
#[derive(Clone)]
struct SlicedVec {
    items: Arc<Vec<u64>>,
    next: usize,
    step: usize,
}

impl Source<u64> for SlicedVec {
    fn open(&mut self, subtask: &SubtaskInfo) -> Result<(), ConnectorError> {
        self.next = subtask.index;
        self.step = subtask.parallelism;
        Ok(())
    }

    fn poll_next(
        &mut self,
        out: &mut SourceOutput<'_, u64>,
    ) -> Result<SourceStatus, ConnectorError> {
        while out.remaining() > 0 {
            match self.items.get(self.next) {
                Some(&item) => out.emit(item),
                None => return Ok(SourceStatus::Finished),
            }
            self.next += self.step;
        }
        Ok(SourceStatus::Ready)
    }
}

/// `(subtask, record)` in arrival order, shared by the sink's subtasks.
type Recorded<T> = Arc<Mutex<Vec<(usize, T)>>>;

/// A sink recording `(subtask, record)` in arrival order.
struct Recording<T> {
    shared: Recorded<T>,
    index: usize,
}

impl<T> Clone for Recording<T> {
    fn clone(&self) -> Self {
        Recording {
            shared: Arc::clone(&self.shared),
            index: self.index,
        }
    }
}

impl<T: Send + 'static> Sink<T> for Recording<T> {
    fn open(&mut self, subtask: &SubtaskInfo) -> Result<(), ConnectorError> {
        self.index = subtask.index;
        Ok(())
    }

    fn write(&mut self, record: T) -> Result<(), ConnectorError> {
        self.shared.lock().unwrap().push((self.index, record));
        Ok(())
    }
}

fn recording<T>() -> (Recording<T>, Recorded<T>) {
    let shared = Arc::new(Mutex::new(Vec::new()));
    (
        Recording {
            shared: Arc::clone(&shared),
            index: 0,
        },
        shared,
    )
}

fn build_stages(env: &Env, case: &Case) -> DataStream<u64> {
    let mut stream = match case.parallel_source {
        None => env.from_iter(case.input.clone()),
        Some(parallelism) => env
            .add_source(
                "sliced",
                SlicedVec {
                    items: Arc::new(case.input.clone()),
                    next: 0,
                    step: 1,
                },
                Boundedness::Bounded,
            )
            .set_parallelism(parallelism),
    };
    for stage in &case.stages {
        let input = if stage.rebalance {
            stream.rebalance()
        } else {
            stream.clone()
        };
        let mut next = match stage.op {
            Op::Map(a) => input.map(move |x| x * 3 + a),
            Op::Filter(m) => input.filter(move |x| x % m != 0),
            Op::FlatMap(n) => input.flat_map(move |x| (0..x % n).map(move |i| x + i)),
            Op::Union(Some(a)) => input.union(&stream.map(move |x| x + a)),
            Op::Union(None) => input.union(&stream),
        };
        if let Some(parallelism) = stage.parallelism {
            next = next.set_parallelism(parallelism);
        }
        if stage.no_chaining {
            next = next.disable_chaining();
        }
        stream = next;
    }
    stream
}

fn config(case: &Case) -> JobConfig {
    JobConfig {
        mode: case.mode,
        parallelism: Some(case.default_parallelism),
        buffer: case.buffer,
        ..JobConfig::default()
    }
}

/// Per key: the values in arrival order (all within one sink subtask).
fn per_key<V: Clone>(records: &[(usize, (u64, V))]) -> Result<BTreeMap<u64, Vec<V>>, String> {
    let mut subtask_of: BTreeMap<u64, usize> = BTreeMap::new();
    let mut out: BTreeMap<u64, Vec<V>> = BTreeMap::new();
    for (subtask, (key, value)) in records {
        if *subtask_of.entry(*key).or_insert(*subtask) != *subtask {
            return Err(format!("key {key} reached two sink subtasks"));
        }
        out.entry(*key).or_default().push(value.clone());
    }
    Ok(out)
}

fn sorted(mut values: Vec<u64>) -> Vec<u64> {
    values.sort_unstable();
    values
}

fn check(case: &Case) -> Result<(), TestCaseError> {
    let reference = case
        .stages
        .iter()
        .fold(case.input.clone(), |records, stage| {
            apply_op(stage.op, records)
        });
    let in_order = order_preserved(case);
    let env = Env::new(config(case));
    let stream = build_stages(&env, case);
    match case.terminal {
        Terminal::Collect { parallelism } => {
            let (sink, recorded) = recording::<u64>();
            stream.sink(sink).set_parallelism(parallelism);
            env.execute()
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            let actual: Vec<u64> = recorded.lock().unwrap().iter().map(|r| r.1).collect();
            if in_order && parallelism == 1 {
                prop_assert_eq!(actual, reference);
            } else {
                prop_assert_eq!(sorted(actual), sorted(reference));
            }
        }
        Terminal::Reduce {
            keys,
            parallelism,
            sink_same,
        } => {
            let (sink, recorded) = recording::<(u64, (u64, u64))>();
            // The map keeps the upstream parallelism, so it is chained and reorders nothing.
            stream
                .map(move |x| (x % keys, (x, 1u64)))
                .set_parallelism(upstream_parallelism(case))
                .key_by(|record: &(u64, (u64, u64))| record.0)
                .reduce(|(key, (sum, count)), (_, (x, one))| (key, (sum + x, count + one)))
                .set_parallelism(parallelism)
                .sink(sink)
                .set_parallelism(if sink_same { parallelism } else { 1 });
            env.execute()
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            let actual = per_key(&recorded.lock().unwrap()).map_err(TestCaseError::fail)?;
            let mut expected: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
            for &x in &reference {
                expected.entry(x % keys).or_default().push(x);
            }
            prop_assert_eq!(
                actual.keys().collect::<Vec<_>>(),
                expected.keys().collect::<Vec<_>>()
            );
            for (key, inputs) in &expected {
                let updates = &actual[key];
                let total: u64 = inputs.iter().sum();
                match case.mode {
                    Mode::Batch => {
                        prop_assert_eq!(
                            updates,
                            &vec![(total, inputs.len() as u64)],
                            "key {}",
                            key
                        );
                    }
                    Mode::Streaming => {
                        let counts: Vec<u64> = updates.iter().map(|u| u.1).collect();
                        prop_assert_eq!(
                            counts,
                            (1..=inputs.len() as u64).collect::<Vec<_>>(),
                            "key {}",
                            key
                        );
                        // The inputs, as the reduce saw them, from consecutive sums.
                        let mut seen = Vec::new();
                        let mut previous = 0;
                        for &(sum, _) in updates {
                            seen.push(sum - previous);
                            previous = sum;
                        }
                        if in_order {
                            prop_assert_eq!(&seen, inputs, "key {}", key);
                        } else {
                            prop_assert_eq!(sorted(seen), sorted(inputs.clone()), "key {}", key);
                        }
                    }
                }
            }
        }
        Terminal::Process {
            keys,
            parallelism,
            sink_same,
        } => {
            let (sink, recorded) = recording::<(u64, (u64, u64))>();
            stream
                .key_by(move |x: &u64| x % keys)
                .process(
                    |x: u64,
                     context: &mut KeyedContext<'_, u64, u64>,
                     out: &mut Collector<'_, (u64, (u64, u64))>| {
                        let key = *context.key();
                        let index = context.state();
                        out.collect((key, (*index, x)));
                        *index += 1;
                    },
                )
                .set_parallelism(parallelism)
                .sink(sink)
                .set_parallelism(if sink_same { parallelism } else { 1 });
            env.execute()
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            let actual = per_key(&recorded.lock().unwrap()).map_err(TestCaseError::fail)?;
            let mut expected: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
            for &x in &reference {
                expected.entry(x % keys).or_default().push(x);
            }
            prop_assert_eq!(
                actual.keys().collect::<Vec<_>>(),
                expected.keys().collect::<Vec<_>>()
            );
            for (key, inputs) in &expected {
                let outputs = &actual[key];
                let indices: Vec<u64> = outputs.iter().map(|o| o.0).collect();
                prop_assert_eq!(
                    indices,
                    (0..inputs.len() as u64).collect::<Vec<_>>(),
                    "key {}",
                    key
                );
                let values: Vec<u64> = outputs.iter().map(|o| o.1).collect();
                if in_order {
                    prop_assert_eq!(&values, inputs, "key {}", key);
                } else {
                    prop_assert_eq!(sorted(values), sorted(inputs.clone()), "key {}", key);
                }
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn random_pipelines_match_a_sequential_evaluation(case in case()) {
        check(&case)?;
    }
}
