//! Joins of two keyed streams.
//!
//! * [`interval`] — the interval join (Flink's `KeyedStream.intervalJoin`): a left
//!   record at `t` joins every right record of the same key whose timestamp lies in
//!   `[t + lower, t + upper]`.

pub mod interval;
