//! The logical job graph the DataStream API builds: nodes (sources, operators, sinks)
//! and edges (how records move between them).
//!
//! The graph is type-erased so that one planner and one runtime handle every record
//! type: each node carries *kits*, small objects created where the types are known
//! (in the API) that later build the typed pieces — the operator of a subtask, the
//! links of an edge, the task loop — behind `dyn Any`. Downcasts happen only while a
//! job is being built, never per record.

use std::any::Any;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use crate::channel::{link_between, LinkMetrics, LinkReceiver, LinkSender};
use crate::clock::Clock;
use crate::config::BufferConfig;
use crate::error::{ConnectorError, EngineError};
use crate::exchange::{ExchangeOutput, HashFn, Route};
use crate::operators::source::{Boundedness, Source, SubtaskInfo};
use crate::output::{Discard, Output, Tee};
use crate::partition::Partitioning;
use crate::runtime::doorbell::Doorbell;
use crate::runtime::task::{run_input_task, run_source_task, TaskEnv};
use crate::side::{SharedSideOutputs, SideBuffer, SideChannel, WithSideOutputs};

/// Index of a node in the graph.
pub(crate) type NodeId = usize;
/// Index of an edge in the graph.
pub(crate) type EdgeId = usize;
/// A typed value behind `dyn Any`, built on an executor thread.
pub(crate) type AnyBox = Box<dyn Any>;
/// A typed value behind `dyn Any` that moves between threads (link ends).
pub(crate) type AnySend = Box<dyn Any + Send>;
/// A task, as spawned on an executor.
pub(crate) type TaskFuture = Pin<Box<dyn Future<Output = Result<(), EngineError>>>>;

/// What an operator instance is built with.
pub(crate) struct BuildContext<'a> {
    /// Which subtask it is.
    pub(crate) subtask: &'a SubtaskInfo,
    /// The job's clock (processing time).
    pub(crate) clock: &'a Arc<dyn Clock>,
    /// The side streams read from this operator, if any.
    pub(crate) sides: Option<SharedSideOutputs>,
    /// The job's number of key groups.
    pub(crate) max_parallelism: usize,
    /// The operator's stable id (its state in checkpoints is stored under it).
    pub(crate) operator_id: &'a str,
    /// The snapshot the job starts from, if any.
    pub(crate) restored: Option<&'a Arc<crate::checkpoint::RestoredState>>,
    /// Whether the operator reads its input sorted by key (blocking exchanges): keyed
    /// operators may then finish a key when the next one starts.
    pub(crate) sorted_input: bool,
    /// The job's per-node record counters and this node's index (sinks count what
    /// they receive).
    pub(crate) records: (&'a Arc<Vec<std::sync::atomic::AtomicU64>>, usize),
}

impl BuildContext<'_> {
    /// This node's record counter.
    pub(crate) fn record_counter(&self) -> crate::operators::sink::RecordCounter {
        crate::operators::sink::RecordCounter {
            counters: Arc::clone(self.records.0),
            index: self.records.1,
        }
    }
}

impl BuildContext<'_> {
    /// The restored keyed state of this operator in this subtask's key groups, as
    /// references into the mapped snapshot (for operators that decode lazily).
    pub(crate) fn restored_group_refs(
        &self,
    ) -> Result<Vec<(usize, crate::checkpoint::GroupRef)>, ConnectorError> {
        match self.restored {
            None => Ok(Vec::new()),
            Some(restored) => restored.key_group_refs(
                self.operator_id,
                crate::partition::key_group_range(
                    self.subtask.index,
                    self.max_parallelism,
                    self.subtask.parallelism,
                ),
            ),
        }
    }

    /// The restored keyed state of this operator in this subtask's key groups.
    pub(crate) fn restored_key_groups(&self) -> Result<Vec<(usize, &[u8])>, ConnectorError> {
        match self.restored {
            None => Ok(Vec::new()),
            Some(restored) => restored.key_groups(
                self.operator_id,
                crate::partition::key_group_range(
                    self.subtask.index,
                    self.max_parallelism,
                    self.subtask.parallelism,
                ),
            ),
        }
    }

    /// The restored checkpoint id and the non-keyed state parts this subtask takes
    /// over: those of old subtasks `j` with `j % parallelism == index`. `None` on a
    /// fresh start.
    #[allow(clippy::type_complexity)]
    pub(crate) fn restored_parts(
        &self,
    ) -> Result<Option<(u64, Vec<(u32, &[u8])>)>, ConnectorError> {
        let Some(restored) = self.restored else {
            return Ok(None);
        };
        let parallelism = self.subtask.parallelism as u32;
        let index = self.subtask.index as u32;
        let parts = restored
            .operator_parts(self.operator_id)?
            .into_iter()
            .filter(|(old, _)| old % parallelism == index)
            .collect();
        Ok(Some((restored.checkpoint_id(), parts)))
    }
}

/// The id of `node` in checkpoints: its uid, or `<index>-<name>` with characters other
/// than letters, digits, `_`, `-` and `.` replaced by `_`.
pub(crate) fn operator_id(node: &Node, index: NodeId) -> String {
    if let Some(uid) = &node.uid {
        return uid.clone();
    }
    let name: String = node
        .name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.') {
                c
            } else {
                '_'
            }
        })
        .take(100)
        .collect();
    format!("{index}-{name}")
}

/// Builds one subtask's operator: takes its downstream `Box<dyn Output<Out>>` and
/// returns it wrapped as `Box<dyn Output<In>>`.
pub(crate) trait OperatorKit: Send + Sync {
    fn build(
        &self,
        context: &BuildContext<'_>,
        downstream: AnyBox,
    ) -> Result<AnyBox, ConnectorError>;
}

/// Builds one subtask of a source together with its task loop.
pub(crate) trait SourceKit: Send + Sync {
    fn build_task(
        &self,
        subtask: &SubtaskInfo,
        downstream: AnyBox,
        env: TaskEnv,
    ) -> Result<TaskFuture, ConnectorError>;
}

/// Typed helpers for the records of one stream (a node's output type `T`).
pub(crate) trait StreamKit: Send + Sync {
    /// `Box<dyn Output<T>>` that drops everything.
    fn discard(&self) -> AnyBox;
    /// `Box<dyn Output<T>>` sending to each of `outputs`.
    fn tee(&self, outputs: Vec<AnyBox>) -> AnyBox;
    /// A link: (`LinkSender<T>`, `LinkReceiver<T>`, its metrics), between the tasks
    /// with these doorbells.
    fn link(
        &self,
        buffer: BufferConfig,
        name: String,
        producer: Arc<Doorbell>,
        consumer: Arc<Doorbell>,
    ) -> (AnySend, AnySend, Arc<LinkMetrics>);
    /// `Box<dyn Output<T>>` routing into `links` (ordered by consumer subtask); hash
    /// edges spread `max_parallelism` key groups.
    fn exchange(
        &self,
        links: Vec<AnySend>,
        edge: &Edge,
        buffer: BufferConfig,
        max_parallelism: usize,
    ) -> AnyBox;
    /// The task loop of a chain whose head reads `T` from `inputs`.
    fn input_task(&self, inputs: Vec<AnySend>, head: AnyBox, env: TaskEnv) -> TaskFuture;
    /// The side stream `tag` of records `T`, feeding `outputs` (`Box<dyn Output<T>>`).
    fn side_channel(&self, tag: &'static str, outputs: Vec<AnyBox>) -> Box<dyn SideChannel>;
    /// `main` (`Box<dyn Output<T>>`) wrapped so that `sides` follow its control events.
    fn with_sides(&self, main: AnyBox, sides: SharedSideOutputs) -> AnyBox;
}

/// The [`StreamKit`] of records of type `T`.
pub(crate) struct TypedStream<T>(std::marker::PhantomData<fn() -> T>);

impl<T> TypedStream<T> {
    pub(crate) fn kit() -> Arc<dyn StreamKit>
    where
        T: Clone + Send + 'static,
    {
        Arc::new(TypedStream::<T>(std::marker::PhantomData))
    }
}

pub(crate) fn downcast<T: 'static>(value: AnyBox) -> T {
    *value.downcast::<T>().unwrap_or_else(|_| {
        panic!(
            "job graph type mismatch: expected {}",
            std::any::type_name::<T>()
        )
    })
}

fn downcast_send<T: 'static>(value: AnySend) -> T {
    *(value as Box<dyn Any>).downcast::<T>().unwrap_or_else(|_| {
        panic!(
            "job graph type mismatch: expected {}",
            std::any::type_name::<T>()
        )
    })
}

impl<T: Clone + Send + 'static> StreamKit for TypedStream<T> {
    fn discard(&self) -> AnyBox {
        Box::new(Box::new(Discard) as Box<dyn Output<T>>)
    }

    fn tee(&self, outputs: Vec<AnyBox>) -> AnyBox {
        let outputs = outputs
            .into_iter()
            .map(downcast::<Box<dyn Output<T>>>)
            .collect();
        Box::new(Box::new(Tee::new(outputs)) as Box<dyn Output<T>>)
    }

    fn link(
        &self,
        buffer: BufferConfig,
        name: String,
        producer: Arc<Doorbell>,
        consumer: Arc<Doorbell>,
    ) -> (AnySend, AnySend, Arc<LinkMetrics>) {
        let (sender, receiver) = link_between::<T>(buffer, name, producer, consumer);
        let metrics = Arc::clone(sender.metrics());
        (Box::new(sender), Box::new(receiver), metrics)
    }

    fn exchange(
        &self,
        links: Vec<AnySend>,
        edge: &Edge,
        buffer: BufferConfig,
        max_parallelism: usize,
    ) -> AnyBox {
        let links: Vec<LinkSender<T>> = links.into_iter().map(downcast_send).collect();
        let route = match edge.partitioning {
            Partitioning::Forward => Route::Single,
            Partitioning::Rebalance => Route::Rebalance { next: 0 },
            Partitioning::Broadcast => Route::Broadcast,
            Partitioning::Hash => {
                let hash = edge
                    .hash
                    .as_ref()
                    .and_then(|hash| hash.downcast_ref::<HashFn<T>>())
                    .expect("a hash edge carries its key hash function")
                    .clone();
                Route::Hash {
                    hash,
                    max_parallelism,
                }
            }
        };
        let output = ExchangeOutput::new(links, route, buffer.timeout);
        Box::new(Box::new(output) as Box<dyn Output<T>>)
    }

    fn input_task(&self, inputs: Vec<AnySend>, head: AnyBox, env: TaskEnv) -> TaskFuture {
        let inputs: Vec<LinkReceiver<T>> = inputs.into_iter().map(downcast_send).collect();
        let head = downcast::<Box<dyn Output<T>>>(head);
        Box::pin(run_input_task(inputs, head, env))
    }

    fn side_channel(&self, tag: &'static str, mut outputs: Vec<AnyBox>) -> Box<dyn SideChannel> {
        let output = if outputs.len() == 1 {
            downcast::<Box<dyn Output<T>>>(outputs.pop().expect("one output"))
        } else {
            downcast::<Box<dyn Output<T>>>(self.tee(outputs))
        };
        Box::new(SideBuffer::new(tag, output))
    }

    fn with_sides(&self, main: AnyBox, sides: SharedSideOutputs) -> AnyBox {
        let main = downcast::<Box<dyn Output<T>>>(main);
        Box::new(Box::new(WithSideOutputs::new(main, sides)) as Box<dyn Output<T>>)
    }
}

/// A [`SourceKit`] built from a factory of per-subtask sources.
pub(crate) struct FactorySource<T> {
    #[allow(clippy::type_complexity)]
    factory: Box<dyn Fn(&SubtaskInfo) -> Box<dyn Source<T>> + Send + Sync>,
}

impl<T: 'static> FactorySource<T> {
    pub(crate) fn new(
        factory: impl Fn(&SubtaskInfo) -> Box<dyn Source<T>> + Send + Sync + 'static,
    ) -> Self {
        FactorySource {
            factory: Box::new(factory),
        }
    }
}

impl<T: Clone + Send + 'static> SourceKit for FactorySource<T> {
    fn build_task(
        &self,
        subtask: &SubtaskInfo,
        downstream: AnyBox,
        env: TaskEnv,
    ) -> Result<TaskFuture, ConnectorError> {
        let mut source = (self.factory)(subtask);
        source.set_doorbell(Arc::clone(&env.doorbell));
        if let Some((positions, old_parallelism)) = &env.restore_position {
            let positions: Vec<(u32, &[u8])> = positions
                .iter()
                .map(|(subtask, bytes)| (*subtask, bytes.as_slice()))
                .collect();
            source.restore_position(subtask, &positions, *old_parallelism)?;
        }
        source.open(subtask)?;
        let downstream = downcast::<Box<dyn Output<T>>>(downstream);
        Ok(Box::pin(run_source_task(source, downstream, env)))
    }
}

/// An [`OperatorKit`] from a closure (the API's usual way to make one).
pub(crate) struct FnOperator<F>(pub(crate) F);

impl<F> OperatorKit for FnOperator<F>
where
    F: Fn(&BuildContext<'_>, AnyBox) -> Result<AnyBox, ConnectorError> + Send + Sync,
{
    fn build(
        &self,
        context: &BuildContext<'_>,
        downstream: AnyBox,
    ) -> Result<AnyBox, ConnectorError> {
        (self.0)(context, downstream)
    }
}

/// What a node does.
pub(crate) enum NodeKind {
    /// Emits records; has no input.
    Source {
        kit: Arc<dyn SourceKit>,
        boundedness: Boundedness,
        /// `Some(1)` for non-parallel sources.
        max_parallelism: Option<usize>,
    },
    /// Transforms (or consumes, for sinks) records from its input edges.
    Operator {
        kit: Arc<dyn OperatorKit>,
        /// `Some(1)` for operators that must not run in parallel (result handles).
        max_parallelism: Option<usize>,
    },
}

/// A node of the logical graph.
pub(crate) struct Node {
    pub(crate) name: String,
    /// The stable id the user gave ([`DataStream::uid`](crate::api::DataStream::uid)):
    /// state in checkpoints is matched to operators by it.
    pub(crate) uid: Option<String>,
    pub(crate) kind: NodeKind,
    /// Kit of the node's output type.
    pub(crate) output: Arc<dyn StreamKit>,
    /// `None`: the job's default (or the input's, with `follows_input`).
    pub(crate) parallelism: Option<usize>,
    /// Without an explicit parallelism, take the parallelism of the (single) input, so
    /// that the node chains to it (side outputs, input tagging of two-input operators).
    pub(crate) follows_input: bool,
    /// Whether the node may be chained to its input.
    pub(crate) chainable: bool,
    pub(crate) inputs: Vec<EdgeId>,
    pub(crate) outputs: Vec<EdgeId>,
}

/// What the user asked for on an edge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EdgeRequest {
    /// Forward if both sides have the same parallelism, else rebalance (as Flink).
    Default,
    /// A specific partitioning.
    Explicit(Partitioning),
}

/// An edge of the logical graph.
pub(crate) struct Edge {
    pub(crate) from: NodeId,
    pub(crate) to: NodeId,
    pub(crate) request: EdgeRequest,
    /// Resolved by the planner.
    pub(crate) partitioning: Partitioning,
    /// `HashFn<T>` of a hash edge.
    pub(crate) hash: Option<Arc<dyn Any + Send + Sync>>,
    /// The tag, if this edge carries a side output of `from` (always chained).
    pub(crate) side: Option<&'static str>,
    /// How to spill its records: set on the hash edges into keyed operators, whose
    /// records are spillable; such an edge is blocking in BATCH mode or when asked.
    pub(crate) spill: Option<Arc<dyn crate::blocking::SpillKit>>,
    /// Blocking asked for in the API ([`KeyedStream::blocking`](crate::api::KeyedStream::blocking)).
    pub(crate) blocking_requested: bool,
}

/// The logical DAG.
#[derive(Default)]
pub(crate) struct Graph {
    pub(crate) nodes: Vec<Node>,
    pub(crate) edges: Vec<Edge>,
}

impl Graph {
    pub(crate) fn add_node(&mut self, node: Node) -> NodeId {
        self.nodes.push(node);
        self.nodes.len() - 1
    }

    /// Adds the edge from `from` to the node `to` reading its side stream `tag`.
    pub(crate) fn add_side_edge(&mut self, from: NodeId, to: NodeId, tag: &'static str) -> EdgeId {
        let id = self.add_edge(from, to, EdgeRequest::Explicit(Partitioning::Forward), None);
        self.edges[id].side = Some(tag);
        id
    }

    pub(crate) fn add_edge(
        &mut self,
        from: NodeId,
        to: NodeId,
        request: EdgeRequest,
        hash: Option<Arc<dyn Any + Send + Sync>>,
    ) -> EdgeId {
        let id = self.edges.len();
        self.edges.push(Edge {
            from,
            to,
            request,
            partitioning: Partitioning::Forward,
            hash,
            side: None,
            spill: None,
            blocking_requested: false,
        });
        self.nodes[from].outputs.push(id);
        self.nodes[to].inputs.push(id);
        id
    }
}
