//! Keyed state: value, list, map, reducing and aggregating state scoped to the current
//! key, with optional time-to-live, laid out in key groups.
//!
//! Every keyed operator subtask owns one [`KeyedStateBackend`]. Its tables are split by
//! key group (the subtask's contiguous range of the `max_parallelism` groups, see
//! [`crate::partition`]), so a snapshot can be cut per key group and restored with
//! another parallelism. The API ([`ValueState`], [`ListState`], …) is independent of
//! where the bytes live: today the tables are in-memory hash maps; checkpoints will
//! serialise them per key group.
//!
//! State is declared with a descriptor ([`ValueStateDescriptor`] and friends), created
//! once outside the function and used from the [`KeyedContext`](crate::operators::keyed::KeyedContext):
//!
//! ```
//! use eddy_engine::state::ValueStateDescriptor;
//! let count = ValueStateDescriptor::<u64>::new("count");
//! // in a KeyedProcessFunction: `*ctx.value(&count).get_or_default() += 1;`
//! # let _ = count;
//! ```

mod backend;
pub(crate) mod handles;

pub use backend::KeyedStateBackend;
pub(crate) use backend::{KeyGroupedMap, Stamped};
pub use handles::{
    AggregateFunction, AggregatingState, AggregatingStateDescriptor, ListState,
    ListStateDescriptor, MapState, MapStateDescriptor, ReducingState, ReducingStateDescriptor,
    StateTtl, TtlUpdate, ValueState, ValueStateDescriptor,
};
