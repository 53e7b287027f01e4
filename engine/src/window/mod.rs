//! Windows on keyed streams and over whole streams, with Flink's semantics.
//!
//! A window operator cuts a stream into finite windows, keeps their state per key in
//! keyed state, and runs a window function when a trigger fires them:
//!
//! * [`windows`] — [`TimeWindow`] (`[start, end)`, max timestamp `end - 1`) and
//!   [`GlobalWindow`].
//! * [`assigners`] — tumbling, sliding, session and global windows, in event or
//!   processing time, aligned to the epoch with an optional offset.
//! * [`triggers`] — when windows fire: the [`Trigger`] trait and the event-time,
//!   processing-time, count, purging and never triggers.
//! * `merging` — how session windows merge (Flink's `MergingWindowSet`).
//! * [`functions`] — reduce, aggregate, process and aggregate+process, and the
//!   [`WindowContext`] a process function sees.
//! * `operator` — the window operator: state per (key, window) in key groups, timers
//!   per (key, window), allowed lateness, late records to a late-data output.
//! * `api` — [`WindowedStream`], `KeyedStream::window` / `count_window` /
//!   `count_window_slide`, `DataStream::window_all` / `count_window_all`.
//!
//! Results carry the window's max timestamp. In BATCH mode (bounded input, end of input
//! = watermark +∞) the same programs give the same results as in STREAMING mode
//! whenever no record is late; BATCH has no late records at all.

mod api;
pub mod assigners;
pub mod functions;
mod merging;
mod operator;
pub mod triggers;
pub mod windows;

pub use api::{AllWindowedStream, WindowedStream};
pub use assigners::{
    EventTimeSessionWindows, GlobalWindows, ProcessingTimeSessionWindows, SlidingEventTimeWindows,
    SlidingProcessingTimeWindows, TumblingEventTimeWindows, TumblingProcessingTimeWindows,
    WindowAssigner,
};
pub use functions::{ProcessWindowFunction, WindowContext};
pub use triggers::{
    CountTrigger, EventTimeTrigger, NeverTrigger, ProcessingTimeTrigger, PurgingTrigger, Trigger,
    TriggerContext, TriggerResult,
};
pub use windows::{window_start_with_offset, GlobalWindow, TimeWindow, Window};
