//! The interface between the operators of a chain.
//!
//! A chain is a tree of [`Output`]s: each operator is the `Output` of the one before it
//! and owns its own downstream `Output`(s). Records move a buffer at a time (one dynamic
//! call per operator per buffer, never per record); the leaves are sinks or exchange
//! outputs that write into rings.
//!
//! Lifecycle of an `Output`, as the task drives it:
//! * [`Output::push_batch`] for every buffer of input, in order;
//! * [`Output::watermark`] when the event-time clock of the input advances;
//! * [`Output::poll_time`] once per task iteration (and whenever a deadline it
//!   returned passes), with the current time: sends partly filled buffers whose
//!   `buffer.timeout` has passed, fires processing-time timers;
//! * [`Output::try_drain`] before the task takes more input: `false` means a ring
//!   downstream is full (backpressure) and the task must wait;
//! * [`Output::barrier`] for every checkpoint barrier (after the records before it):
//!   snapshot, then pass it on; [`Output::checkpoint_complete`] when a checkpoint is
//!   durable (sinks commit);
//! * [`Output::latency_marker`] for every latency marker (after the records before
//!   it): operators pass it on at once, exchanges send it behind those records;
//! * [`Output::end_of_input`] exactly once, after all input.

use std::time::Instant;

use crate::checkpoint::{Barrier, TaskSnapshot};
use crate::error::{ChainResult, PollResult};
use crate::latency::LatencyMarker;
use crate::message::{Batch, Timestamp, NO_TIMESTAMP};

/// The receiving side of an operator in a chain.
pub trait Output<T>: 'static {
    /// Processes every record of `batch`, in order. Leaves `batch` empty (capacity kept,
    /// so the caller can reuse it).
    fn push_batch(&mut self, batch: &mut Batch<T>) -> ChainResult;

    /// The input's event-time clock advanced to `watermark`. Operators forward it after
    /// anything it makes ready (e.g. fired windows).
    fn watermark(&mut self, watermark: Timestamp) -> ChainResult;

    /// The input went idle (no data for a while): it should not hold the watermark of
    /// downstream operators back. Operators pass it on.
    fn idle(&mut self) -> ChainResult;

    /// No more input will come: emit final results, flush, and pass it on.
    fn end_of_input(&mut self) -> ChainResult;

    /// Time passed: sends partly filled buffers that waited `buffer.timeout` (and fires
    /// whatever else is due by `now`); returns the earliest instant at which it wants
    /// to be called again.
    fn poll_time(&mut self, now: Instant) -> PollResult;

    /// Tries to hand held-back buffers to full rings. `true`: nothing is held back.
    fn try_drain(&mut self, now: Instant) -> bool;

    /// Checkpoint barrier: every record before it has been pushed. A stateful operator
    /// adds its state to `snapshot` (a sink pre-commits), then passes the barrier on.
    fn barrier(&mut self, barrier: Barrier, snapshot: &mut TaskSnapshot) -> ChainResult;

    /// Checkpoint `id` is complete (durable): sinks commit what they pre-committed up
    /// to it; operators pass it on.
    fn checkpoint_complete(&mut self, id: u64) -> ChainResult;

    /// A latency marker (see [`crate::latency`]): every record before it has been
    /// pushed. Operators pass it on at once (also past records they hold, as Flink's
    /// do); exchanges send it to every consumer; sinks end it (the task recorded it).
    fn latency_marker(&mut self, marker: LatencyMarker) -> ChainResult;
}

/// Sends every batch to several outputs (a stream consumed by several operators).
pub(crate) struct Tee<T> {
    outputs: Vec<Box<dyn Output<T>>>,
    scratch: Batch<T>,
}

impl<T: Clone + 'static> Tee<T> {
    pub(crate) fn new(outputs: Vec<Box<dyn Output<T>>>) -> Self {
        Tee {
            outputs,
            scratch: Batch::new(),
        }
    }
}

impl<T: Clone + 'static> Output<T> for Tee<T> {
    fn push_batch(&mut self, batch: &mut Batch<T>) -> ChainResult {
        let (last, rest) = self
            .outputs
            .split_last_mut()
            .expect("a tee has at least two outputs");
        for output in rest {
            self.scratch.extend_from(batch);
            output.push_batch(&mut self.scratch)?;
            self.scratch.clear();
        }
        last.push_batch(batch)
    }

    fn watermark(&mut self, watermark: Timestamp) -> ChainResult {
        self.outputs
            .iter_mut()
            .try_for_each(|output| output.watermark(watermark))
    }

    fn end_of_input(&mut self) -> ChainResult {
        self.outputs
            .iter_mut()
            .try_for_each(|output| output.end_of_input())
    }

    fn idle(&mut self) -> ChainResult {
        self.outputs.iter_mut().try_for_each(|output| output.idle())
    }

    fn poll_time(&mut self, now: Instant) -> PollResult {
        let mut earliest: Option<Instant> = None;
        for output in &mut self.outputs {
            if let Some(deadline) = output.poll_time(now)? {
                earliest = Some(earliest.map_or(deadline, |e| e.min(deadline)));
            }
        }
        Ok(earliest)
    }

    fn try_drain(&mut self, now: Instant) -> bool {
        // Drain all, not just the first blocked one, so that every link progresses.
        let mut clear = true;
        for output in &mut self.outputs {
            clear &= output.try_drain(now);
        }
        clear
    }

    fn barrier(&mut self, barrier: Barrier, snapshot: &mut TaskSnapshot) -> ChainResult {
        self.outputs
            .iter_mut()
            .try_for_each(|output| output.barrier(barrier, snapshot))
    }

    fn checkpoint_complete(&mut self, id: u64) -> ChainResult {
        self.outputs
            .iter_mut()
            .try_for_each(|output| output.checkpoint_complete(id))
    }

    fn latency_marker(&mut self, marker: LatencyMarker) -> ChainResult {
        self.outputs
            .iter_mut()
            .try_for_each(|output| output.latency_marker(marker))
    }
}

/// Discards everything (the output of an operator nobody consumes).
pub(crate) struct Discard;

impl<T: 'static> Output<T> for Discard {
    fn push_batch(&mut self, batch: &mut Batch<T>) -> ChainResult {
        batch.clear();
        Ok(())
    }
    fn watermark(&mut self, _watermark: Timestamp) -> ChainResult {
        Ok(())
    }
    fn end_of_input(&mut self) -> ChainResult {
        Ok(())
    }
    fn idle(&mut self) -> ChainResult {
        Ok(())
    }
    fn poll_time(&mut self, _now: Instant) -> PollResult {
        Ok(None)
    }
    fn try_drain(&mut self, _now: Instant) -> bool {
        true
    }
    fn barrier(&mut self, _barrier: Barrier, _snapshot: &mut TaskSnapshot) -> ChainResult {
        Ok(())
    }
    fn checkpoint_complete(&mut self, _id: u64) -> ChainResult {
        Ok(())
    }
    fn latency_marker(&mut self, _marker: LatencyMarker) -> ChainResult {
        Ok(())
    }
}

/// Collects the records an operator function emits (Flink's `Collector`). Emitted
/// records carry the timestamp of the record (or timer) being processed.
pub struct Collector<'a, T> {
    buffer: &'a mut Batch<T>,
    timestamp: Timestamp,
}

impl<'a, T> Collector<'a, T> {
    pub(crate) fn new(buffer: &'a mut Batch<T>, timestamp: Timestamp) -> Self {
        Collector { buffer, timestamp }
    }

    /// A collector appending to `buffer` records without timestamp (for tests of
    /// operator functions).
    pub fn into_batch(buffer: &'a mut Batch<T>) -> Self {
        Collector::new(buffer, NO_TIMESTAMP)
    }

    /// Emits a record downstream.
    #[inline]
    pub fn collect(&mut self, record: T) {
        self.buffer.push_at(record, self.timestamp);
    }

    /// Emits a record with an explicit timestamp (joins stamp their output with the
    /// larger timestamp of the pair).
    #[inline]
    pub fn collect_at(&mut self, record: T, timestamp: Timestamp) {
        self.buffer.push_at(record, timestamp);
    }

    /// The timestamp emitted records get.
    pub fn timestamp(&self) -> Timestamp {
        self.timestamp
    }
}

/// An output that records what reaches it, for tests of operators.
#[cfg(test)]
pub(crate) mod testing {
    use super::*;
    use std::cell::RefCell;
    use std::rc::Rc;

    /// What reached a [`Capture`].
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub(crate) enum Event<T> {
        Record(T, Timestamp),
        Watermark(Timestamp),
        Idle,
        Barrier(u64),
        Marker(u32),
        End,
    }

    /// The events a [`Capture`] recorded, shared with the test.
    pub(crate) type Events<T> = Rc<RefCell<Vec<Event<T>>>>;

    /// Records every call.
    pub(crate) struct Capture<T>(pub(crate) Events<T>);

    impl<T: 'static> Output<T> for Capture<T> {
        fn push_batch(&mut self, batch: &mut Batch<T>) -> ChainResult {
            let mut events = self.0.borrow_mut();
            events.extend(batch.drain().map(|(v, t)| Event::Record(v, t)));
            Ok(())
        }
        fn watermark(&mut self, watermark: Timestamp) -> ChainResult {
            self.0.borrow_mut().push(Event::Watermark(watermark));
            Ok(())
        }
        fn idle(&mut self) -> ChainResult {
            self.0.borrow_mut().push(Event::Idle);
            Ok(())
        }
        fn end_of_input(&mut self) -> ChainResult {
            self.0.borrow_mut().push(Event::End);
            Ok(())
        }
        fn poll_time(&mut self, _now: Instant) -> PollResult {
            Ok(None)
        }
        fn try_drain(&mut self, _now: Instant) -> bool {
            true
        }
        fn barrier(&mut self, barrier: Barrier, _snapshot: &mut TaskSnapshot) -> ChainResult {
            self.0.borrow_mut().push(Event::Barrier(barrier.id));
            Ok(())
        }
        fn checkpoint_complete(&mut self, _id: u64) -> ChainResult {
            Ok(())
        }
        fn latency_marker(&mut self, marker: LatencyMarker) -> ChainResult {
            self.0.borrow_mut().push(Event::Marker(marker.subtask));
            Ok(())
        }
    }
}
