//! The DataStream API: [`Env`] builds a job graph from sources, transformations and
//! sinks, then executes it.
//!
//! ```
//! use eddy_engine::prelude::*;
//!
//! let env = Env::new(JobConfig::default());
//! let counts = env
//!     .from_iter(vec!["a b", "b c", "b"])
//!     .flat_map(|line: &str| line.split_whitespace().map(|w| (w.to_string(), 1u64)).collect::<Vec<_>>())
//!     .key_by(|(word, _): &(String, u64)| word.clone())
//!     .reduce(|(word, a), (_, b)| (word, a + b))
//!     .collect_vec();
//! env.execute().unwrap();
//! let mut finals: Vec<_> = counts.take();
//! finals.sort();
//! // STREAMING mode emits every update: the last one per word is its count.
//! assert!(finals.contains(&("b".to_string(), 3)));
//! ```
//!
//! User functions are cloned once per subtask (as Flink copies functions to each
//! parallel instance), so they must be `Clone + Send + Sync`; each clone then runs on
//! one core only.

use std::cell::RefCell;
use std::hash::Hash;
use std::marker::PhantomData;
use std::rc::Rc;
use std::sync::{Arc, Mutex};

use crate::checkpoint::StateData;
use crate::config::{JobConfig, Mode};
use crate::error::{ConnectorError, EngineError};
use crate::exchange::HashFn;
use crate::graph::{
    downcast, AnyBox, BuildContext, EdgeRequest, FactorySource, FnOperator, Graph, Node, NodeId,
    NodeKind, OperatorKit, TypedStream,
};
use crate::handles::{push_channel, result_channel, PushHandle, ResultHandle};
use crate::join::interval::{IntervalBounds, IntervalJoin};
use crate::operators::co::{CoProcess, Either, KeyedCoProcessFunction};
use crate::operators::keyed::{
    KeyedContext, KeyedProcessFunction, ProcessFn, ProcessOperator, ReduceOperator,
};
use crate::operators::map::{FilterOperator, FlatMapOperator, IdentityOperator, MapOperator};
use crate::operators::sink::{CollectSink, Collected, FnSink, Sink, SinkOperator};
use crate::operators::source::{Boundedness, IterSource, Source};
use crate::output::{Collector, Output};
use crate::partition::{key_hash, Partitioning};
use crate::runtime::{launch, JobHandle, MetricsSnapshot};
use crate::side::OutputTag;
use crate::watermark::{TimestampsAndWatermarks, WatermarkStrategy};

/// What a record type needs: records are moved between cores and copied for fan-out.
pub trait Data: Clone + Send + 'static {}
impl<T: Clone + Send + 'static> Data for T {}

/// What a key type needs: hashed into key groups, compared, kept in state.
pub trait Key: Hash + Eq + Clone + Send + 'static {}
impl<K: Hash + Eq + Clone + Send + 'static> Key for K {}

struct EnvInner {
    graph: RefCell<Graph>,
    config: JobConfig,
}

/// The execution environment (Flink's `StreamExecutionEnvironment`): the job's
/// settings and the graph being built.
pub struct Env {
    inner: Rc<EnvInner>,
}

impl Env {
    /// A new environment with these settings.
    pub fn new(config: JobConfig) -> Self {
        Env {
            inner: Rc::new(EnvInner {
                graph: RefCell::new(Graph::default()),
                config,
            }),
        }
    }

    /// The job's settings.
    pub fn config(&self) -> &JobConfig {
        &self.inner.config
    }

    /// A bounded, non-parallel source emitting the items of an iterator. The iterator
    /// is cloned for every start of the job (a restart replays it from its checkpointed
    /// position).
    pub fn from_iter<T, I>(&self, items: I) -> DataStream<T>
    where
        T: Data,
        I: IntoIterator<Item = T>,
        I::IntoIter: Clone + Send + Sync + 'static,
    {
        let items = items.into_iter();
        let kit = FactorySource::<T>::new(move |_| Box::new(IterSource::new(items.clone())));
        self.add_source_node("from_iter", Arc::new(kit), Boundedness::Bounded, Some(1))
    }

    /// A parallel source: every subtask gets a clone of `source` and is told in
    /// [`Source::open`] which slice is its own.
    pub fn add_source<T, S>(&self, name: &str, source: S, boundedness: Boundedness) -> DataStream<T>
    where
        T: Data,
        S: Source<T> + Clone + Sync,
    {
        let kit = FactorySource::<T>::new(move |_| Box::new(source.clone()));
        self.add_source_node(name, Arc::new(kit), boundedness, None)
    }

    /// A non-parallel, unbounded source fed by a service thread through the returned
    /// [`PushHandle`] (at most `capacity` records in flight before `push` waits).
    /// Dropping the handle ends the source.
    pub fn push_source<T: Data>(&self, capacity: usize) -> (PushHandle<T>, DataStream<T>) {
        let (handle, source) = push_channel::<T>(capacity);
        let slot = Mutex::new(Some(source));
        let kit = FactorySource::<T>::new(move |_| match take_once(&slot) {
            Some(source) => Box::new(source),
            None => Box::new(IterSource::new(std::iter::empty())),
        });
        let stream = self.add_source_node(
            "push_source",
            Arc::new(kit),
            Boundedness::Unbounded,
            Some(1),
        );
        (handle, stream)
    }

    fn add_source_node<T: Data>(
        &self,
        name: &str,
        kit: Arc<dyn crate::graph::SourceKit>,
        boundedness: Boundedness,
        max_parallelism: Option<usize>,
    ) -> DataStream<T> {
        let node = self.inner.graph.borrow_mut().add_node(Node {
            name: name.to_string(),
            uid: None,
            kind: NodeKind::Source {
                kit,
                boundedness,
                max_parallelism,
            },
            output: TypedStream::<T>::kit(),
            parallelism: None,
            follows_input: false,
            chainable: true,
            inputs: Vec::new(),
            outputs: Vec::new(),
        });
        DataStream::new(Rc::clone(&self.inner), node)
    }

    /// Runs the job and waits until every source has ended and all records are through
    /// (bounded jobs), the job was cancelled, or it failed.
    pub fn execute(&self) -> Result<MetricsSnapshot, EngineError> {
        self.execute_async()?.join()
    }

    /// Starts the job and returns at once; the handle can cancel it and wait for it.
    pub fn execute_async(&self) -> Result<JobHandle, EngineError> {
        let graph = std::mem::take(&mut *self.inner.graph.borrow_mut());
        launch(graph, self.inner.config.clone())
    }
}

fn take_once<T>(slot: &Mutex<Option<T>>) -> Option<T> {
    slot.lock().unwrap_or_else(|e| e.into_inner()).take()
}

/// A stream of records of type `T` (Flink's `DataStream<T>`).
pub struct DataStream<T> {
    env: Rc<EnvInner>,
    node: NodeId,
    next_edge: EdgeRequest,
    _records: PhantomData<fn() -> T>,
}

impl<T> Clone for DataStream<T> {
    fn clone(&self) -> Self {
        DataStream {
            env: Rc::clone(&self.env),
            node: self.node,
            next_edge: self.next_edge,
            _records: PhantomData,
        }
    }
}

impl<T: Data> DataStream<T> {
    fn new(env: Rc<EnvInner>, node: NodeId) -> Self {
        DataStream {
            env,
            node,
            next_edge: EdgeRequest::Default,
            _records: PhantomData,
        }
    }

    /// Adds an operator reading this stream (edge as requested) and returns its output.
    pub(crate) fn add_operator<O: Data>(
        &self,
        name: &str,
        kit: Arc<dyn OperatorKit>,
        request: EdgeRequest,
        hash: Option<HashFn<T>>,
        max_parallelism: Option<usize>,
    ) -> DataStream<O> {
        let mut graph = self.env.graph.borrow_mut();
        let node = graph.add_node(Node {
            name: name.to_string(),
            uid: None,
            kind: NodeKind::Operator {
                kit,
                max_parallelism,
            },
            output: TypedStream::<O>::kit(),
            parallelism: None,
            follows_input: false,
            chainable: true,
            inputs: Vec::new(),
            outputs: Vec::new(),
        });
        let hash = hash.map(|hash| Arc::new(hash) as Arc<dyn std::any::Any + Send + Sync>);
        graph.add_edge(self.node, node, request, hash);
        drop(graph);
        DataStream::new(Rc::clone(&self.env), node)
    }

    /// A `map` that always runs in this stream's tasks (same parallelism, chained):
    /// used to tag the inputs of two-input operators without reordering them.
    pub(crate) fn map_in_place<O, F>(&self, name: &str, function: F) -> DataStream<O>
    where
        O: Data,
        F: FnMut(T) -> O + Clone + Send + Sync + 'static,
    {
        let mapped = self.map(function).name(name);
        self.env.graph.borrow_mut().nodes[mapped.node].follows_input = true;
        mapped
    }

    /// Applies `function` to every record.
    pub fn map<O, F>(&self, function: F) -> DataStream<O>
    where
        O: Data,
        F: FnMut(T) -> O + Clone + Send + Sync + 'static,
    {
        let kit = operator_kit::<T, O, _>(move |_, next| {
            Ok(Box::new(MapOperator::new(function.clone(), next)))
        });
        self.add_operator("map", kit, self.next_edge, None, None)
    }

    /// Gives every record its event-time timestamp and emits watermarks after it, as
    /// `strategy` says (see [`crate::watermark`]).
    pub fn assign_timestamps_and_watermarks(
        &self,
        strategy: WatermarkStrategy<T>,
    ) -> DataStream<T> {
        let kit = operator_kit::<T, T, _>(move |context, next| {
            Ok(Box::new(TimestampsAndWatermarks::new(
                strategy.clone(),
                context.subtask.to_string(),
                context.sides.clone(),
                next,
            )))
        });
        self.add_operator("timestamps_watermarks", kit, self.next_edge, None, None)
    }

    /// Keeps the records for which `predicate` holds.
    pub fn filter<F>(&self, predicate: F) -> DataStream<T>
    where
        F: FnMut(&T) -> bool + Clone + Send + Sync + 'static,
    {
        let kit = operator_kit::<T, T, _>(move |_, next| {
            Ok(Box::new(FilterOperator::new(predicate.clone(), next)))
        });
        self.add_operator("filter", kit, self.next_edge, None, None)
    }

    /// Emits every item of the iterator `function` returns for each record.
    pub fn flat_map<O, It, F>(&self, function: F) -> DataStream<O>
    where
        O: Data,
        It: IntoIterator<Item = O> + 'static,
        F: FnMut(T) -> It + Clone + Send + Sync + 'static,
    {
        let kit = operator_kit::<T, O, _>(move |_, next| {
            Ok(Box::new(FlatMapOperator::<T, O, It, F>::new(
                function.clone(),
                next,
            )))
        });
        self.add_operator("flat_map", kit, self.next_edge, None, None)
    }

    /// Partitions the stream by key: records with equal keys go to the same subtask, in
    /// order. Keys are hashed into key groups (see [`crate::partition`]).
    pub fn key_by<K, KS>(&self, key_of: KS) -> KeyedStream<T, K, KS>
    where
        K: Key,
        KS: Fn(&T) -> K + Clone + Send + Sync + 'static,
    {
        KeyedStream {
            blocking: false,
            stream: self.clone(),
            key_of,
            _key: PhantomData,
        }
    }

    /// Merges this stream with `other` (same record type); order within each input is kept.
    pub fn union(&self, other: &DataStream<T>) -> DataStream<T> {
        let kit = operator_kit::<T, T, _>(|_, next| Ok(Box::new(IdentityOperator::new(next))));
        let merged: DataStream<T> = self.add_operator("union", kit, self.next_edge, None, None);
        self.env
            .graph
            .borrow_mut()
            .add_edge(other.node, merged.node, other.next_edge, None);
        merged
    }

    /// The side stream `tag` of the operator that produces this stream (records its
    /// function emitted with `ctx.output(&tag, ..)`, or late records of a window).
    pub fn side_output<X: Data>(&self, tag: &OutputTag<X>) -> DataStream<X> {
        let kit = operator_kit::<X, X, _>(|_, next| Ok(Box::new(IdentityOperator::new(next))));
        let mut graph = self.env.graph.borrow_mut();
        let node = graph.add_node(Node {
            name: format!("side_output({})", tag.id()),
            uid: None,
            kind: NodeKind::Operator {
                kit,
                max_parallelism: None,
            },
            output: TypedStream::<X>::kit(),
            parallelism: None,
            follows_input: true,
            chainable: true,
            inputs: Vec::new(),
            outputs: Vec::new(),
        });
        graph.add_side_edge(self.node, node, tag.id());
        drop(graph);
        DataStream::new(Rc::clone(&self.env), node)
    }

    /// Connects this stream with `other` for a two-input operator (Flink's `connect`).
    pub fn connect<B: Data>(&self, other: &DataStream<B>) -> ConnectedStreams<T, B> {
        ConnectedStreams {
            left: self.clone(),
            right: other.clone(),
        }
    }

    /// Sends the next operator's input round-robin over its subtasks.
    pub fn rebalance(&self) -> DataStream<T> {
        self.with_edge(Partitioning::Rebalance)
    }

    /// Sends every record to every subtask of the next operator.
    pub fn broadcast(&self) -> DataStream<T> {
        self.with_edge(Partitioning::Broadcast)
    }

    /// Subtask i feeds subtask i of the next operator (equal parallelism required).
    pub fn forward(&self) -> DataStream<T> {
        self.with_edge(Partitioning::Forward)
    }

    /// The job's settings.
    pub(crate) fn config(&self) -> &JobConfig {
        &self.env.config
    }

    fn with_edge(&self, partitioning: Partitioning) -> DataStream<T> {
        DataStream {
            next_edge: EdgeRequest::Explicit(partitioning),
            ..self.clone()
        }
    }

    /// Sets the parallelism of the operator that produces this stream.
    pub fn set_parallelism(self, parallelism: usize) -> Self {
        self.env.graph.borrow_mut().nodes[self.node].parallelism = Some(parallelism);
        self
    }

    /// Names the operator that produces this stream (shown in metrics and errors).
    pub fn name(self, name: &str) -> Self {
        self.env.graph.borrow_mut().nodes[self.node].name = name.to_string();
        self
    }

    /// Gives the operator that produces this stream a stable id (Flink's `uid`): its
    /// state in checkpoints and savepoints is stored under this id, so the job can be
    /// changed (operators added or removed) and still restore it. Without one, the id
    /// is `<position in the graph>-<name>`. Letters, digits, `_`, `-` and `.` only.
    pub fn uid(self, id: &str) -> Self {
        self.env.graph.borrow_mut().nodes[self.node].uid = Some(id.to_string());
        self
    }

    /// Starts a new chain at the operator that produces this stream (it gets its own
    /// task and reads its input through a ring).
    pub fn disable_chaining(self) -> Self {
        self.env.graph.borrow_mut().nodes[self.node].chainable = false;
        self
    }

    /// Writes the stream into a user [`Sink`]; each sink subtask gets a clone.
    pub fn sink<S>(&self, sink: S) -> StreamSink
    where
        S: Sink<T> + Clone + Sync,
    {
        let kit = operator_kit::<T, (), _>(move |context, _| {
            let mut sink = sink.clone();
            sink.open(context.subtask)?;
            if let Some((checkpoint_id, states)) = context.restored_parts()? {
                sink.restore(checkpoint_id, &states)?;
            }
            Ok(Box::new(SinkOperator::new(sink, context)))
        });
        let stream: DataStream<()> = self.add_operator("sink", kit, self.next_edge, None, None);
        StreamSink {
            env: stream.env,
            node: stream.node,
        }
    }

    /// Calls `function` for every record (in the sink subtask that receives it).
    pub fn sink_fn<F>(&self, function: F) -> StreamSink
    where
        F: FnMut(T) + Clone + Send + Sync + 'static,
    {
        self.sink(FnSink::new(function))
    }

    /// Collects the records of a bounded job; read them with [`Collected::take`] after
    /// [`Env::execute`] returned.
    pub fn collect_vec(&self) -> Collected<T> {
        let collected = Collected::new();
        let target = collected.clone();
        let kit = operator_kit::<T, (), _>(move |context, _| {
            Ok(Box::new(SinkOperator::new(
                CollectSink::new(target.clone()),
                context,
            )))
        });
        let _: DataStream<()> = self.add_operator("collect", kit, self.next_edge, None, None);
        collected
    }

    /// Sends the records to a [`ResultHandle`] (a sink of parallelism 1; at most
    /// `capacity` records wait in it before the pipeline is backpressured).
    pub fn collect_handle(&self, capacity: usize) -> ResultHandle<T> {
        let (sink, handle) = result_channel::<T>(capacity);
        let slot = Mutex::new(Some(sink));
        let kit = operator_kit::<T, (), _>(move |_, _| match take_once(&slot) {
            Some(sink) => Ok(Box::new(sink)),
            None => Err(ConnectorError::new(
                "a result handle's sink can run only once",
            )),
        });
        let _: DataStream<()> = self
            .add_operator("result_handle", kit, self.next_edge, None, Some(1))
            .set_parallelism(1);
        handle
    }
}

/// Makes an [`OperatorKit`] from a typed builder `(subtask, downstream) -> operator`.
pub(crate) fn operator_kit<I, O, F>(build: F) -> Arc<dyn OperatorKit>
where
    I: Data,
    O: Data,
    F: Fn(&BuildContext<'_>, Box<dyn Output<O>>) -> Result<Box<dyn Output<I>>, ConnectorError>
        + Send
        + Sync
        + 'static,
{
    Arc::new(FnOperator(
        move |context: &BuildContext<'_>, downstream: AnyBox| {
            let downstream = downcast::<Box<dyn Output<O>>>(downstream);
            build(context, downstream).map(|operator| Box::new(operator) as AnyBox)
        },
    ))
}

/// The end of a stream written to a sink; its parallelism and name can be set.
pub struct StreamSink {
    env: Rc<EnvInner>,
    node: NodeId,
}

impl StreamSink {
    /// Sets the sink's parallelism.
    pub fn set_parallelism(self, parallelism: usize) -> Self {
        self.env.graph.borrow_mut().nodes[self.node].parallelism = Some(parallelism);
        self
    }

    /// Names the sink.
    pub fn name(self, name: &str) -> Self {
        self.env.graph.borrow_mut().nodes[self.node].name = name.to_string();
        self
    }

    /// Gives the sink a stable id for its state in checkpoints (see [`DataStream::uid`]).
    pub fn uid(self, id: &str) -> Self {
        self.env.graph.borrow_mut().nodes[self.node].uid = Some(id.to_string());
        self
    }
}

/// A stream partitioned by key (Flink's `KeyedStream`).
pub struct KeyedStream<T, K, KS> {
    stream: DataStream<T>,
    key_of: KS,
    /// The exchange into the keyed operator is blocking in every mode.
    blocking: bool,
    _key: PhantomData<fn() -> K>,
}

impl<T, K, KS> KeyedStream<T, K, KS>
where
    T: Data,
    K: Key,
    KS: Fn(&T) -> K + Clone + Send + Sync + 'static,
{
    /// The key hash function of the hash exchange in front of a keyed operator.
    pub(crate) fn hash_fn(&self) -> HashFn<T> {
        let key_of = self.key_of.clone();
        Arc::new(move |record: &T| key_hash(&key_of(record)))
    }

    /// The stream before partitioning.
    #[allow(dead_code)] // for keyed operator families outside this module (windows)
    pub(crate) fn stream(&self) -> &DataStream<T> {
        &self.stream
    }

    /// The key selector.
    #[allow(dead_code)] // for keyed operator families outside this module (windows)
    pub(crate) fn key_selector(&self) -> &KS {
        &self.key_of
    }

    /// Adds a keyed operator behind a pipelined hash exchange on this stream's key.
    pub(crate) fn add_keyed_operator<O: Data>(
        &self,
        name: &str,
        kit: Arc<dyn OperatorKit>,
    ) -> DataStream<O> {
        self.stream.add_operator(
            name,
            kit,
            EdgeRequest::Explicit(Partitioning::Hash),
            Some(self.hash_fn()),
            None,
        )
    }

    /// Adds a keyed operator that can read its input sorted by key: behind a hash
    /// exchange that is blocking in BATCH mode or when asked with
    /// [`KeyedStream::blocking`] (its records are spillable).
    pub(crate) fn add_sorting_keyed_operator<O: Data>(
        &self,
        name: &str,
        kit: Arc<dyn OperatorKit>,
    ) -> DataStream<O>
    where
        T: StateData,
    {
        let operator = self.stream.add_operator(
            name,
            kit,
            EdgeRequest::Explicit(Partitioning::Hash),
            Some(self.hash_fn()),
            None,
        );
        let mut graph = self.stream.env.graph.borrow_mut();
        let edge = *graph.nodes[operator.node]
            .inputs
            .last()
            .expect("the operator was added with its input edge");
        graph.edges[edge].spill = Some(self.spill_kit());
        graph.edges[edge].blocking_requested = self.blocking;
        drop(graph);
        operator
    }

    /// How records of this stream are spilled on a blocking exchange.
    pub(crate) fn spill_kit(&self) -> Arc<dyn crate::blocking::SpillKit>
    where
        T: StateData,
    {
        Arc::new(crate::blocking::TypedSpill {
            hash: self.hash_fn(),
        })
    }

    /// Makes the exchange into the next keyed operator *blocking* also in STREAMING
    /// mode (the seed's "blocking stream: whole thing materialized, possibly to disk"):
    /// the operator starts when its input has ended, and reads it sorted by key, spilled
    /// to disk beyond the memory budget. In BATCH mode every keyed exchange is blocking.
    pub fn blocking(mut self) -> Self {
        self.blocking = true;
        self
    }

    /// Rolling reduce per key: `reduce(accumulated, next)`. STREAMING emits every
    /// updated value; BATCH emits one final value per key at end of input.
    pub fn reduce<F>(&self, reduce: F) -> DataStream<T>
    where
        F: FnMut(T, T) -> T + Clone + Send + Sync + 'static,
        T: StateData,
        K: StateData,
    {
        let emit_updates = self.stream.config().mode == Mode::Streaming;
        let key_of = self.key_of.clone();
        let kit = operator_kit::<T, T, _>(move |context, next| {
            Ok(Box::new(
                ReduceOperator::new(
                    key_of.clone(),
                    reduce.clone(),
                    context.subtask,
                    context.max_parallelism,
                    emit_updates,
                    next,
                )
                .sorted_input(context.sorted_input)
                .restore(context.operator_id, context.restored_key_groups()?)?,
            ))
        });
        self.add_sorting_keyed_operator("reduce", kit)
    }

    /// Calls `function(record, context, out)` per record; the context gives the key, the
    /// key's simple state `S` (starting from `S::default()`), keyed state and timers.
    pub fn process<O, S, F>(&self, function: F) -> DataStream<O>
    where
        O: Data,
        S: Default + StateData,
        K: StateData,
        F: FnMut(T, &mut KeyedContext<'_, K, S>, &mut Collector<'_, O>)
            + Clone
            + Send
            + Sync
            + 'static,
    {
        self.process_function(ProcessFn(function))
    }

    /// Runs a [`KeyedProcessFunction`] (with `on_timer`) on every record.
    pub fn process_function<O, S, F>(&self, function: F) -> DataStream<O>
    where
        O: Data,
        S: Default + StateData,
        K: StateData,
        F: KeyedProcessFunction<K, T, O, S>,
    {
        self.add_keyed_operator("process", self.process_kit(function))
    }

    /// [`process_function`](Self::process_function) on spillable records: behind a
    /// blocking exchange in BATCH mode, reading its input sorted by key (one key's
    /// state at a time).
    pub(crate) fn process_function_sorting<O, S, F>(&self, function: F) -> DataStream<O>
    where
        T: StateData,
        O: Data,
        S: Default + StateData,
        K: StateData,
        F: KeyedProcessFunction<K, T, O, S>,
    {
        self.add_sorting_keyed_operator("process", self.process_kit(function))
    }

    fn process_kit<O, S, F>(&self, function: F) -> Arc<dyn OperatorKit>
    where
        O: Data,
        S: Default + StateData,
        K: StateData,
        F: KeyedProcessFunction<K, T, O, S>,
    {
        let key_of = self.key_of.clone();
        let batch_mode = self.stream.config().mode == Mode::Batch;
        operator_kit::<T, O, _>(move |context, next| {
            Ok(Box::new(
                ProcessOperator::new(key_of.clone(), function.clone(), context, batch_mode, next)
                    .restore(context.restored, context.restored_group_refs()?)?
                    .sorted_input(context.sorted_input),
            ))
        })
    }
}

/// Two streams connected for a two-input operator.
pub struct ConnectedStreams<A, B> {
    left: DataStream<A>,
    right: DataStream<B>,
}

impl<A: Data, B: Data> ConnectedStreams<A, B> {
    /// Partitions both inputs by key (the same key type on both sides).
    pub fn key_by<K, KA, KB>(
        &self,
        left_key: KA,
        right_key: KB,
    ) -> KeyedConnectedStreams<A, B, K, KA, KB>
    where
        K: Key,
        KA: Fn(&A) -> K + Clone + Send + Sync + 'static,
        KB: Fn(&B) -> K + Clone + Send + Sync + 'static,
    {
        KeyedConnectedStreams {
            left: self.left.clone(),
            right: self.right.clone(),
            left_key,
            right_key,
            _key: PhantomData,
        }
    }
}

/// Two streams connected and partitioned by the same key.
pub struct KeyedConnectedStreams<A, B, K, KA, KB> {
    left: DataStream<A>,
    right: DataStream<B>,
    left_key: KA,
    right_key: KB,
    _key: PhantomData<fn() -> K>,
}

impl<A, B, K, KA, KB> KeyedConnectedStreams<A, B, K, KA, KB>
where
    A: Data,
    B: Data,
    K: Key,
    KA: Fn(&A) -> K + Clone + Send + Sync + 'static,
    KB: Fn(&B) -> K + Clone + Send + Sync + 'static,
{
    /// Runs a [`KeyedCoProcessFunction`]: both inputs of a key meet in one subtask and
    /// share its keyed state and timers; the watermark is the minimum of both inputs'.
    pub fn process<O, S, F>(&self, function: F) -> DataStream<O>
    where
        O: Data,
        S: Default + StateData,
        K: StateData,
        F: KeyedCoProcessFunction<K, A, B, O, S>,
    {
        let (keyed, right) = self.tagged();
        let joined = keyed
            .process_function(CoProcess(function))
            .name("co_process");
        attach_second_input(&keyed, &right, &joined);
        joined
    }

    /// [`process`](Self::process) on spillable inputs (the interval join): in BATCH
    /// mode both tagged inputs go through blocking exchanges into one sorted merge, and
    /// the operator holds one key's state at a time.
    pub(crate) fn process_sorting<O, S, F>(&self, function: F) -> DataStream<O>
    where
        A: StateData,
        B: StateData,
        O: Data,
        S: Default + StateData,
        K: StateData,
        F: KeyedCoProcessFunction<K, A, B, O, S>,
    {
        let (keyed, right) = self.tagged();
        let joined = keyed
            .process_function_sorting(CoProcess(function))
            .name("co_process");
        attach_second_sorting_input(&keyed, &right, &joined);
        joined
    }

    /// Both inputs tagged ([`Either`]) in their own tasks: the left one keyed (add the
    /// two-input operator to it), the right one to attach with [`attach_second_input`].
    #[allow(clippy::type_complexity)]
    fn tagged(
        &self,
    ) -> (
        KeyedStream<Either<A, B>, K, impl Fn(&Either<A, B>) -> K + Clone + Send + Sync + 'static>,
        DataStream<Either<A, B>>,
    ) {
        let left = self.left.map_in_place("tag_left", Either::<A, B>::Left);
        let right = self.right.map_in_place("tag_right", Either::<A, B>::Right);
        let (left_key, right_key) = (self.left_key.clone(), self.right_key.clone());
        let keyed = left.key_by(move |record: &Either<A, B>| match record {
            Either::Left(a) => left_key(a),
            Either::Right(b) => right_key(b),
        });
        (keyed, right)
    }
}

/// Sends `right` through a hash exchange on `keyed`'s key into `operator`, the keyed
/// operator built on `keyed`: both inputs of a key then meet in one subtask.
fn attach_second_input<T: Data, K: Key, KS, O>(
    keyed: &KeyedStream<T, K, KS>,
    right: &DataStream<T>,
    operator: &DataStream<O>,
) where
    KS: Fn(&T) -> K + Clone + Send + Sync + 'static,
{
    let hash = Arc::new(keyed.hash_fn()) as Arc<dyn std::any::Any + Send + Sync>;
    // No spill kit: a co-process reads rings (see the planner); the window join adds
    // one with `attach_second_sorting_input`.
    right.env.graph.borrow_mut().add_edge(
        right.node,
        operator.node,
        EdgeRequest::Explicit(Partitioning::Hash),
        Some(hash),
    );
}

/// Like [`attach_second_input`], into an operator added with
/// [`KeyedStream::add_sorting_keyed_operator`] whose second input has the same record
/// type (the window join's tagged union): the second edge spills like the first, so in
/// BATCH mode both are blocking and the operator reads one merge of both inputs' sorted
/// runs, one key after the other.
fn attach_second_sorting_input<T: Data + StateData, K: Key, KS, O>(
    keyed: &KeyedStream<T, K, KS>,
    right: &DataStream<T>,
    operator: &DataStream<O>,
) where
    KS: Fn(&T) -> K + Clone + Send + Sync + 'static,
{
    attach_second_input(keyed, right, operator);
    let mut graph = right.env.graph.borrow_mut();
    let edge = *graph.nodes[operator.node]
        .inputs
        .last()
        .expect("the second input was just added");
    graph.edges[edge].spill = Some(keyed.spill_kit());
    graph.edges[edge].blocking_requested = keyed.blocking;
}

impl<A, K, KA> KeyedStream<A, K, KA>
where
    A: Data,
    K: Key,
    KA: Fn(&A) -> K + Clone + Send + Sync + 'static,
{
    /// Joins this stream with `other` by key and event-time interval (Flink's
    /// `intervalJoin`); set the interval with [`IntervalJoinBuilder::between`].
    pub fn interval_join<B, KB>(
        &self,
        other: &KeyedStream<B, K, KB>,
    ) -> IntervalJoinBuilder<A, B, K, KA, KB>
    where
        B: Data,
        KB: Fn(&B) -> K + Clone + Send + Sync + 'static,
    {
        IntervalJoinBuilder {
            connected: self
                .stream
                .connect(&other.stream)
                .key_by(self.key_of.clone(), other.key_of.clone()),
            bounds: IntervalBounds {
                lower: 0,
                upper: 0,
                lower_exclusive: false,
                upper_exclusive: false,
            },
            left_late: None,
            right_late: None,
        }
    }
}

/// An interval join being set up.
pub struct IntervalJoinBuilder<A, B, K, KA, KB> {
    connected: KeyedConnectedStreams<A, B, K, KA, KB>,
    bounds: IntervalBounds,
    left_late: Option<OutputTag<A>>,
    right_late: Option<OutputTag<B>>,
}

impl<A, B, K, KA, KB> IntervalJoinBuilder<A, B, K, KA, KB>
where
    A: Data + Sync,
    B: Data + Sync,
    K: Key,
    KA: Fn(&A) -> K + Clone + Send + Sync + 'static,
    KB: Fn(&B) -> K + Clone + Send + Sync + 'static,
{
    /// A left record at `t` joins right records in `[t + lower_ms, t + upper_ms]`
    /// (event-time milliseconds; either may be negative; `lower_ms <= upper_ms`).
    pub fn between(mut self, lower_ms: i64, upper_ms: i64) -> Self {
        self.bounds.lower = lower_ms;
        self.bounds.upper = upper_ms;
        self
    }

    /// Excludes the lower bound itself.
    pub fn lower_bound_exclusive(mut self) -> Self {
        self.bounds.lower_exclusive = true;
        self
    }

    /// Excludes the upper bound itself.
    pub fn upper_bound_exclusive(mut self) -> Self {
        self.bounds.upper_exclusive = true;
        self
    }

    /// Sends late left records (below the watermark) to the side output `tag`.
    pub fn side_output_left_late_data(mut self, tag: &OutputTag<A>) -> Self {
        self.left_late = Some(*tag);
        self
    }

    /// Sends late right records (below the watermark) to the side output `tag`.
    pub fn side_output_right_late_data(mut self, tag: &OutputTag<B>) -> Self {
        self.right_late = Some(*tag);
        self
    }

    /// Emits `join(left, right)` for every joining pair, stamped with the larger of the
    /// two timestamps.
    pub fn process<O, F>(self, join: F) -> DataStream<O>
    where
        O: Data,
        K: StateData,
        A: StateData,
        B: StateData,
        F: FnMut(&A, &B) -> O + Clone + Send + Sync + 'static,
    {
        self.connected
            .process_sorting(IntervalJoin::new(
                self.bounds,
                self.left_late,
                self.right_late,
                join,
            ))
            .name("interval_join")
    }
}

/// Two streams to be joined in windows (Flink's `DataStream.join`).
pub struct JoinBuilder<A, B> {
    left: DataStream<A>,
    right: DataStream<B>,
}

impl<A: Data> DataStream<A> {
    /// Joins this stream with `other` per key and window (Flink's `join ... where ...
    /// equalTo ... window ... apply`): every pair of one key in one window is joined.
    pub fn join<B: Data>(&self, other: &DataStream<B>) -> JoinBuilder<A, B> {
        JoinBuilder {
            left: self.clone(),
            right: other.clone(),
        }
    }
}

impl<A: Data, B: Data> JoinBuilder<A, B> {
    /// The key of the left records (Flink's `where`).
    pub fn where_key<K, KA>(self, left_key: KA) -> JoinWhere<A, B, K, KA>
    where
        K: Key,
        KA: Fn(&A) -> K + Clone + Send + Sync + 'static,
    {
        JoinWhere {
            builder: self,
            left_key,
            _key: PhantomData,
        }
    }
}

/// A window join with its left key.
pub struct JoinWhere<A, B, K, KA> {
    builder: JoinBuilder<A, B>,
    left_key: KA,
    _key: PhantomData<fn() -> K>,
}

impl<A: Data, B: Data, K: Key, KA> JoinWhere<A, B, K, KA>
where
    KA: Fn(&A) -> K + Clone + Send + Sync + 'static,
{
    /// The key of the right records (Flink's `equalTo`).
    pub fn equal_to<KB>(self, right_key: KB) -> JoinKeyed<A, B, K, KA, KB>
    where
        KB: Fn(&B) -> K + Clone + Send + Sync + 'static,
    {
        JoinKeyed {
            builder: self.builder,
            left_key: self.left_key,
            right_key,
            _key: PhantomData,
        }
    }
}

/// A window join with both keys.
pub struct JoinKeyed<A, B, K, KA, KB> {
    builder: JoinBuilder<A, B>,
    left_key: KA,
    right_key: KB,
    _key: PhantomData<fn() -> K>,
}

impl<A, B, K, KA, KB> JoinKeyed<A, B, K, KA, KB>
where
    A: Data,
    B: Data,
    K: Key,
    KA: Fn(&A) -> K + Clone + Send + Sync + 'static,
    KB: Fn(&B) -> K + Clone + Send + Sync + 'static,
{
    /// The windows the join happens in (tumbling, sliding, session, …).
    pub fn window<W>(self, assigner: W) -> JoinWindowed<A, B, K, KA, KB, W>
    where
        W: crate::window::WindowAssigner<Either<A, B>>,
    {
        JoinWindowed {
            keyed: self,
            assigner,
        }
    }
}

/// A window join ready to run.
pub struct JoinWindowed<A, B, K, KA, KB, W> {
    keyed: JoinKeyed<A, B, K, KA, KB>,
    assigner: W,
}

impl<A, B, K, KA, KB, W> JoinWindowed<A, B, K, KA, KB, W>
where
    A: Data + StateData,
    B: Data + StateData,
    K: Key + StateData,
    KA: Fn(&A) -> K + Clone + Send + Sync + 'static,
    KB: Fn(&B) -> K + Clone + Send + Sync + 'static,
    W: crate::window::WindowAssigner<Either<A, B>>,
{
    /// Emits `join(left, right)` for every pair of one key that falls into one window
    /// (Flink's `JoinFunction`); results get the window's max timestamp, and a window
    /// fires as its assigner's default trigger says (event time: when the watermark
    /// passes its end).
    pub fn apply<O, F>(self, join: F) -> DataStream<O>
    where
        O: Data,
        F: FnMut(&A, &B) -> O + Clone + Send + Sync + 'static,
    {
        let JoinKeyed {
            builder,
            left_key,
            right_key,
            ..
        } = self.keyed;
        let connected = builder
            .left
            .connect(&builder.right)
            .key_by(left_key, right_key);
        let (keyed, right) = connected.tagged();
        let mut join = join;
        let joined = keyed
            .window(self.assigner)
            .process(
                move |_key: &K, _window, elements: &[Either<A, B>], out: &mut Collector<'_, O>| {
                    // Flink's window join is a co-group: all left × right pairs of the window,
                    // left records in arrival order, each with the rights in arrival order.
                    for left in elements {
                        let Either::Left(a) = left else { continue };
                        for right in elements {
                            if let Either::Right(b) = right {
                                out.collect(join(a, b));
                            }
                        }
                    }
                },
            )
            .name("window_join");
        attach_second_sorting_input(&keyed, &right, &joined);
        joined
    }
}
