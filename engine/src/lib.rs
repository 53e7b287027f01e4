//! eddy's engine: records, the DataStream API, the planner and the thread-per-core
//! runtime.
//!
//! A tour, from what users touch to what runs:
//!
//! * [`api`] — [`Env`](api::Env), [`DataStream`](api::DataStream),
//!   [`KeyedStream`](api::KeyedStream): build a job as a DAG of sources, operators
//!   and sinks.
//! * [`config`] — [`JobConfig`](config::JobConfig): mode, parallelism, cores and the
//!   buffer-pool thresholds (`buffer.size`, `buffer.timeout`, `buffer.count`).
//! * [`handles`] — push records into a running job and receive its results from a
//!   service thread (for embedding).
//! * [`operators`] — the operator family (map, filter, flat_map, reduce, process),
//!   the [`Source`](operators::source::Source) and [`Sink`](operators::sink::Sink) traits.
//! * `graph` and `plan` — the type-erased logical graph and the planner that fuses
//!   operators into chains and turns the other edges into exchanges.
//! * [`runtime`] — one pinned glommio executor per core; the task loops; job handles.
//! * [`channel`], [`exchange`], [`partition`] — SPSC ring links with their buffer pool
//!   and backpressure accounting; routing of records; key groups.
//! * [`output`], [`message`] — the interface between operators of a chain, and what
//!   travels in a ring (buffers, watermarks, end of input).
//! * [`join`] — joins of keyed streams (interval join; the window join is in [`api`]).
//! * [`side`] — side outputs (tagged streams of another type).
//! * [`state`] — keyed state (value, list, map, reducing, aggregating, TTL) in key groups.
//! * [`watermark`] — event time: timestamp assigners and watermark strategies.
//! * [`window`] — windows (tumbling, sliding, session, global, count), triggers,
//!   window functions, allowed lateness and late data.
//! * [`latency`] — latency markers (Flink's latency tracking) and their histograms.
//! * [`clock`] — injected time.

#![warn(missing_docs)]

pub mod api;
mod blocking;
pub mod channel;
pub mod checkpoint;
pub mod clock;
pub mod config;
pub mod error;
pub mod exchange;
mod graph;
pub mod handles;
pub mod join;
pub mod latency;
pub mod message;
pub mod operators;
pub mod output;
pub mod partition;
mod plan;
pub mod runtime;
pub mod side;
pub mod state;
pub mod timers;
pub mod watermark;
pub mod window;

/// Everything a job author needs, in one import.
pub mod prelude {
    pub use crate::api::{
        ConnectedStreams, IntervalJoinBuilder, JoinBuilder, KeyedConnectedStreams,
    };
    pub use crate::api::{Data, DataStream, Env, Key, KeyedStream, StreamSink};
    pub use crate::checkpoint::coordinator::CompletedCheckpoint;
    pub use crate::checkpoint::{
        CheckpointConfig, CheckpointingMode, RestartStrategy, RestoreFrom, StateData,
    };
    pub use crate::config::{BufferConfig, IdleConfig, JobConfig, Mode};
    pub use crate::error::{ConfigError, ConnectorError, EngineError};
    pub use crate::handles::{PushError, PushHandle, RecvError, ResultHandle};
    pub use crate::latency::{LatencyMarker, VertexLatency};
    pub use crate::message::{Batch, Timestamp, NO_TIMESTAMP};
    pub use crate::operators::co::{Either, KeyedCoProcessFunction};
    pub use crate::operators::keyed::{KeyedContext, KeyedProcessFunction};
    pub use crate::operators::sink::{Collected, Sink};
    pub use crate::operators::source::{
        same_subtask_position, Boundedness, Source, SourceOutput, SourceStatus, SubtaskInfo,
    };
    pub use crate::output::Collector;
    pub use crate::runtime::monitor::{
        EdgeInfo, JobException, JobGraphInfo, JobMonitor, JobStatus, VertexInfo,
    };
    pub use crate::runtime::{
        Canceller, CheckpointStats, JobHandle, LinkSnapshot, MetricsSnapshot,
    };
    pub use crate::side::OutputTag;
    pub use crate::state::{
        AggregateFunction, AggregatingStateDescriptor, ListStateDescriptor, MapStateDescriptor,
        ReducingStateDescriptor, StateTtl, TtlUpdate, ValueStateDescriptor,
    };
    pub use crate::timers::TimeDomain;
    pub use crate::watermark::{BadRecord, WatermarkStrategy};
    pub use crate::window::{
        EventTimeSessionWindows, GlobalWindows, ProcessWindowFunction,
        ProcessingTimeSessionWindows, SlidingEventTimeWindows, SlidingProcessingTimeWindows,
        TimeWindow, Trigger, TriggerResult, TumblingEventTimeWindows,
        TumblingProcessingTimeWindows, WindowAssigner, WindowContext, WindowedStream,
    };
}
