//! Side outputs (Flink's `OutputTag`): an operator emits records of another type into a
//! tagged side stream, which the job reads with
//! [`DataStream::side_output`](crate::api::DataStream::side_output).
//!
//! The runtime gives an operator whose stream has side-output consumers a shared
//! [`SideOutputs`]: the operator appends to a tag's buffer while it processes a batch;
//! the buffers are handed on after the batch, and every control event (watermark,
//! idleness, end of input, time, draining) reaches the side streams after the records
//! emitted before it, exactly as on the main output.

use std::any::Any;
use std::cell::RefCell;
use std::marker::PhantomData;
use std::rc::Rc;
use std::time::Instant;

use crate::checkpoint::{Barrier, TaskSnapshot};
use crate::error::{ChainResult, PollResult};
use crate::message::{Batch, Timestamp};
use crate::output::Output;

/// Names a side output and the type of its records.
pub struct OutputTag<T> {
    id: &'static str,
    _records: PhantomData<fn() -> T>,
}

impl<T> Clone for OutputTag<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for OutputTag<T> {}

impl<T> std::fmt::Debug for OutputTag<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "OutputTag({})", self.id)
    }
}

impl<T> OutputTag<T> {
    /// A tag; its id must be unique among the side outputs of one operator.
    pub const fn new(id: &'static str) -> Self {
        OutputTag {
            id,
            _records: PhantomData,
        }
    }

    /// The tag's id.
    pub fn id(&self) -> &'static str {
        self.id
    }
}

/// One side stream: a buffer of emitted records in front of its downstream.
pub(crate) trait SideChannel {
    fn tag(&self) -> &'static str;
    fn as_any_mut(&mut self) -> &mut dyn Any;
    fn flush(&mut self) -> ChainResult;
    fn output(&mut self) -> &mut dyn ControlOutput;
}

/// The control hooks of an [`Output`], without its record type.
pub(crate) trait ControlOutput {
    fn watermark(&mut self, watermark: Timestamp) -> ChainResult;
    fn idle(&mut self) -> ChainResult;
    fn end_of_input(&mut self) -> ChainResult;
    fn poll_time(&mut self, now: Instant) -> PollResult;
    fn try_drain(&mut self, now: Instant) -> bool;
    fn barrier(&mut self, barrier: Barrier, snapshot: &mut TaskSnapshot) -> ChainResult;
    fn checkpoint_complete(&mut self, id: u64) -> ChainResult;
    fn latency_marker(&mut self, marker: crate::latency::LatencyMarker) -> ChainResult;
}

impl<T: 'static> ControlOutput for Box<dyn Output<T>> {
    fn watermark(&mut self, watermark: Timestamp) -> ChainResult {
        Output::watermark(&mut **self, watermark)
    }
    fn idle(&mut self) -> ChainResult {
        Output::idle(&mut **self)
    }
    fn end_of_input(&mut self) -> ChainResult {
        Output::end_of_input(&mut **self)
    }
    fn poll_time(&mut self, now: Instant) -> PollResult {
        Output::poll_time(&mut **self, now)
    }
    fn barrier(&mut self, barrier: Barrier, snapshot: &mut TaskSnapshot) -> ChainResult {
        Output::barrier(&mut **self, barrier, snapshot)
    }
    fn checkpoint_complete(&mut self, id: u64) -> ChainResult {
        Output::checkpoint_complete(&mut **self, id)
    }
    fn latency_marker(&mut self, marker: crate::latency::LatencyMarker) -> ChainResult {
        Output::latency_marker(&mut **self, marker)
    }
    fn try_drain(&mut self, now: Instant) -> bool {
        Output::try_drain(&mut **self, now)
    }
}

/// The typed [`SideChannel`].
pub(crate) struct SideBuffer<T> {
    tag: &'static str,
    buffer: Batch<T>,
    output: Box<dyn Output<T>>,
}

impl<T: 'static> SideBuffer<T> {
    pub(crate) fn new(tag: &'static str, output: Box<dyn Output<T>>) -> Self {
        SideBuffer {
            tag,
            buffer: Batch::new(),
            output,
        }
    }
}

impl<T: 'static> SideChannel for SideBuffer<T> {
    fn tag(&self) -> &'static str {
        self.tag
    }
    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
    fn flush(&mut self) -> ChainResult {
        if self.buffer.is_empty() {
            return Ok(());
        }
        self.output.push_batch(&mut self.buffer)
    }
    fn output(&mut self) -> &mut dyn ControlOutput {
        &mut self.output
    }
}

/// The side streams of one operator subtask.
#[derive(Default)]
pub(crate) struct SideOutputs {
    channels: Vec<Box<dyn SideChannel>>,
}

/// Shared between an operator (which emits) and the wrapper of its main output (which
/// hands the buffers on and forwards control events).
pub(crate) type SharedSideOutputs = Rc<RefCell<SideOutputs>>;

impl SideOutputs {
    pub(crate) fn new(channels: Vec<Box<dyn SideChannel>>) -> Self {
        SideOutputs { channels }
    }

    /// Appends a record to the side stream `tag` (dropped if nobody reads that tag).
    ///
    /// # Panics
    /// If `tag` was used with another record type (a programming error, as in Flink).
    pub(crate) fn emit<T: 'static>(&mut self, tag: &OutputTag<T>, value: T, timestamp: Timestamp) {
        let Some(channel) = self.channels.iter_mut().find(|c| c.tag() == tag.id) else {
            return;
        };
        let buffer = channel
            .as_any_mut()
            .downcast_mut::<SideBuffer<T>>()
            .unwrap_or_else(|| panic!("side output '{}' is read with another record type", tag.id));
        buffer.buffer.push_at(value, timestamp);
    }

    fn flush(&mut self) -> ChainResult {
        self.channels.iter_mut().try_for_each(|c| c.flush())
    }
}

/// The main output of an operator with side streams: after each batch it hands the side
/// buffers on, and it forwards every control event to the side streams too.
pub(crate) struct WithSideOutputs<T> {
    main: Box<dyn Output<T>>,
    sides: SharedSideOutputs,
}

impl<T> WithSideOutputs<T> {
    pub(crate) fn new(main: Box<dyn Output<T>>, sides: SharedSideOutputs) -> Self {
        WithSideOutputs { main, sides }
    }

    fn each(&self, mut hook: impl FnMut(&mut dyn ControlOutput) -> ChainResult) -> ChainResult {
        let mut sides = self.sides.borrow_mut();
        sides.flush()?;
        sides.channels.iter_mut().try_for_each(|c| hook(c.output()))
    }
}

impl<T: 'static> Output<T> for WithSideOutputs<T> {
    fn push_batch(&mut self, batch: &mut Batch<T>) -> ChainResult {
        self.main.push_batch(batch)?;
        self.sides.borrow_mut().flush()
    }

    fn watermark(&mut self, watermark: Timestamp) -> ChainResult {
        self.each(|side| side.watermark(watermark))?;
        self.main.watermark(watermark)
    }

    fn idle(&mut self) -> ChainResult {
        self.each(|side| side.idle())?;
        self.main.idle()
    }

    fn end_of_input(&mut self) -> ChainResult {
        self.each(|side| side.end_of_input())?;
        self.main.end_of_input()
    }

    fn poll_time(&mut self, now: Instant) -> PollResult {
        let mut earliest = self.main.poll_time(now)?;
        let mut sides = self.sides.borrow_mut();
        sides.flush()?;
        for channel in &mut sides.channels {
            if let Some(deadline) = channel.output().poll_time(now)? {
                earliest = Some(earliest.map_or(deadline, |e| e.min(deadline)));
            }
        }
        Ok(earliest)
    }

    fn try_drain(&mut self, now: Instant) -> bool {
        let mut clear = self.main.try_drain(now);
        for channel in &mut self.sides.borrow_mut().channels {
            clear &= channel.output().try_drain(now);
        }
        clear
    }

    fn barrier(&mut self, barrier: Barrier, snapshot: &mut TaskSnapshot) -> ChainResult {
        self.each(|side| side.barrier(barrier, snapshot))?;
        self.main.barrier(barrier, snapshot)
    }

    fn checkpoint_complete(&mut self, id: u64) -> ChainResult {
        self.each(|side| side.checkpoint_complete(id))?;
        self.main.checkpoint_complete(id)
    }

    fn latency_marker(&mut self, marker: crate::latency::LatencyMarker) -> ChainResult {
        self.each(|side| side.latency_marker(marker))?;
        self.main.latency_marker(marker)
    }
}
