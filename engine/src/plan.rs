//! The planner: turns the logical graph into chains and exchanges.
//!
//! 1. Every node gets its parallelism (its own, or the job default; non-parallel
//!    sources and result sinks are capped at 1).
//! 2. Every edge gets its partitioning: as requested, or forward when both sides have
//!    the same parallelism and rebalance otherwise (as Flink does). A forward edge
//!    between different parallelisms is an error.
//! 3. A node is *chained* to its input (same task, plain calls, no ring) when it has
//!    exactly one input edge, that edge is forward, and chaining is not disabled.
//!    A chain is the tree of nodes reachable from its head over chained edges.

use crate::config::{JobConfig, Mode};
use crate::error::EngineError;
use crate::graph::{EdgeId, EdgeRequest, Graph, NodeId, NodeKind};
use crate::operators::source::Boundedness;
use crate::partition::Partitioning;

/// A chain of operators that runs as one task per subtask.
#[derive(Debug, Clone)]
pub(crate) struct Chain {
    /// The node whose input (or source) drives the chain.
    pub(crate) head: NodeId,
    /// All nodes of the chain, head first.
    pub(crate) nodes: Vec<NodeId>,
    /// Parallelism of every node of the chain.
    pub(crate) parallelism: usize,
}

/// The physical plan.
#[derive(Debug)]
pub(crate) struct Plan {
    /// Parallelism per node.
    pub(crate) parallelism: Vec<usize>,
    /// Whether an edge is chained (no exchange).
    pub(crate) chained: Vec<bool>,
    /// The chains.
    pub(crate) chains: Vec<Chain>,
    /// Whether an edge is a blocking exchange (sorted, spilled, read after its
    /// producers ended): the hash edges into keyed operators in BATCH mode or when
    /// asked for. A node's inputs are all blocking or none.
    pub(crate) blocking: Vec<bool>,
}

impl Plan {
    /// Plans `graph` (resolving its edges' partitioning in place).
    pub(crate) fn new(graph: &mut Graph, config: &JobConfig) -> Result<Plan, EngineError> {
        if graph.nodes.is_empty() {
            return Err(EngineError::Graph("the job has no operators".into()));
        }
        let default = config.effective_parallelism();
        let mut parallelism = Vec::with_capacity(graph.nodes.len());
        for node in &graph.nodes {
            let cap = match &node.kind {
                NodeKind::Source {
                    max_parallelism, ..
                }
                | NodeKind::Operator {
                    max_parallelism, ..
                } => *max_parallelism,
            };
            // Side-output nodes and input taggers run in their producer's tasks. (Nodes
            // are created after their inputs, so the producer is planned already.)
            if node.follows_input && node.parallelism.is_none() {
                if let Some(&edge) = node.inputs.first() {
                    parallelism.push(parallelism[graph.edges[edge].from]);
                    continue;
                }
            }
            let chosen = match (node.parallelism, cap) {
                (Some(p), Some(cap)) if p > cap => {
                    return Err(EngineError::Graph(format!(
                        "'{}' cannot run with parallelism {p}: it is not parallel (at most {cap})",
                        node.name
                    )))
                }
                (Some(p), _) => p,
                (None, Some(cap)) => cap.min(default),
                (None, None) => default,
            };
            if chosen == 0 {
                return Err(EngineError::Graph(format!(
                    "'{}' has parallelism 0",
                    node.name
                )));
            }
            if let NodeKind::Source { boundedness, .. } = &node.kind {
                if config.mode == Mode::Batch && *boundedness == Boundedness::Unbounded {
                    return Err(EngineError::Graph(format!(
                        "source '{}' is unbounded, but BATCH mode needs bounded sources",
                        node.name
                    )));
                }
            }
            parallelism.push(chosen);
        }

        let mut chained = vec![false; graph.edges.len()];
        for (id, edge) in graph.edges.iter_mut().enumerate() {
            let (from, to) = (parallelism[edge.from], parallelism[edge.to]);
            if edge.request == EdgeRequest::Explicit(Partitioning::Hash)
                && to > config.max_parallelism
            {
                return Err(EngineError::Graph(format!(
                    "keyed operator '{}' has parallelism {to}, more than max_parallelism {}",
                    graph.nodes[edge.to].name, config.max_parallelism
                )));
            }
            edge.partitioning = match edge.request {
                EdgeRequest::Default if from == to => Partitioning::Forward,
                EdgeRequest::Default => Partitioning::Rebalance,
                EdgeRequest::Explicit(Partitioning::Forward) if from != to => {
                    return Err(EngineError::Graph(format!(
                        "forward edge '{}' -> '{}' needs equal parallelism, got {from} and {to}",
                        graph.nodes[edge.from].name, graph.nodes[edge.to].name
                    )))
                }
                EdgeRequest::Explicit(partitioning) => partitioning,
            };
            let target = &graph.nodes[edge.to];
            chained[id] = edge.side.is_some()
                || (edge.partitioning == Partitioning::Forward
                    && target.inputs.len() == 1
                    && target.chainable);
        }

        let mut chains = Vec::new();
        for (id, node) in graph.nodes.iter().enumerate() {
            let is_head = node.inputs.is_empty() || node.inputs.iter().any(|&e| !chained[e]);
            if !is_head {
                continue;
            }
            let mut nodes = vec![id];
            let mut index = 0;
            while index < nodes.len() {
                let current = nodes[index];
                for &edge in &graph.nodes[current].outputs {
                    if chained[edge] {
                        nodes.push(graph.edges[edge].to);
                    }
                }
                index += 1;
            }
            chains.push(Chain {
                head: id,
                nodes,
                parallelism: parallelism[id],
            });
        }
        let mut blocking: Vec<bool> = graph
            .edges
            .iter()
            .enumerate()
            .map(|(id, edge)| {
                !chained[id]
                    && edge.partitioning == Partitioning::Hash
                    && edge.spill.is_some()
                    && (config.mode == Mode::Batch || edge.blocking_requested)
            })
            .collect();
        for node in &graph.nodes {
            let inputs = &node.inputs;
            if inputs.iter().any(|&e| blocking[e]) && !inputs.iter().all(|&e| blocking[e]) {
                // Mixed inputs (a keyed operator with another, non-keyed input) stay
                // pipelined: a task reads either rings or sorted runs.
                inputs.iter().for_each(|&e| blocking[e] = false);
            }
        }
        Ok(Plan {
            parallelism,
            chained,
            chains,
            blocking,
        })
    }

    /// Whether `edge` is a blocking exchange.
    pub(crate) fn is_blocking(&self, edge: EdgeId) -> bool {
        self.blocking[edge]
    }

    /// Whether `edge` is an exchange (not chained).
    pub(crate) fn is_exchange(&self, edge: EdgeId) -> bool {
        !self.chained[edge]
    }
}
