//! Sources: the [`Source`] trait users implement, and the built-in iterator source.
//!
//! A source is polled by its task: [`Source::poll_next`] emits up to
//! [`SourceOutput::remaining`] records and returns at once. It must never block the
//! executor: a source with nothing ready returns [`SourceStatus::Idle`] and is polled
//! again later (the task spins briefly, then parks with a growing timeout).

use std::sync::Arc;

use crate::error::ConnectorError;
use crate::message::{Batch, Timestamp, NO_TIMESTAMP};
use crate::runtime::doorbell::Doorbell;
use crate::side::{OutputTag, SharedSideOutputs};

/// Which subtask an operator instance is, and of how many.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubtaskInfo {
    /// The job's name.
    pub job: String,
    /// The operator's name.
    pub operator: String,
    /// This subtask's index, `0..parallelism`.
    pub index: usize,
    /// The operator's parallelism.
    pub parallelism: usize,
}

impl std::fmt::Display for SubtaskInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} ({}/{})",
            self.operator,
            self.index + 1,
            self.parallelism
        )
    }
}

/// What a poll of a source found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceStatus {
    /// Records may be ready right away: poll again soon.
    Ready,
    /// Nothing is ready now: poll again after a pause (or when the source rings its
    /// doorbell).
    Idle,
    /// Nothing is ready before this instant of the job's clock (a rate-limited source):
    /// the task sleeps until then, or until the source rings its doorbell.
    IdleUntil(std::time::Instant),
    /// The source has ended; it is not polled again.
    Finished,
}

/// Whether a source ends by itself (Flink's `Boundedness`). BATCH mode accepts only
/// bounded sources.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Boundedness {
    /// Ends by itself (a file, a collection).
    Bounded,
    /// Runs until the job is cancelled (a queue, a push handle).
    Unbounded,
}

/// Where a source puts the records of one poll.
pub struct SourceOutput<'a, T> {
    batch: &'a mut Batch<T>,
    limit: usize,
    watermark: Option<Timestamp>,
    sides: Option<&'a SharedSideOutputs>,
    emitted_to_sides: bool,
}

impl<'a, T> SourceOutput<'a, T> {
    /// An output appending to `batch` until it holds `limit` records. The runtime makes
    /// one per poll; tests of a source can make their own.
    pub fn new(batch: &'a mut Batch<T>, limit: usize) -> Self {
        SourceOutput {
            batch,
            limit,
            watermark: None,
            sides: None,
            emitted_to_sides: false,
        }
    }

    pub(crate) fn with_sides(mut self, sides: Option<&'a SharedSideOutputs>) -> Self {
        self.sides = sides;
        self
    }

    /// Emits `value` to the side stream `tag` (e.g. a dead letter for a record that
    /// does not parse); dropped if the job reads no such side stream.
    pub fn output<X: 'static>(&mut self, tag: &OutputTag<X>, value: X) {
        if let Some(sides) = self.sides {
            sides.borrow_mut().emit(tag, value, NO_TIMESTAMP);
            self.emitted_to_sides = true;
        }
    }

    pub(crate) fn emitted_to_sides(&self) -> bool {
        self.emitted_to_sides
    }

    /// Emits a record without timestamp.
    #[inline]
    pub fn emit(&mut self, record: T) {
        self.batch.push(record);
    }

    /// Emits a record with its event-time timestamp.
    #[inline]
    pub fn emit_at(&mut self, record: T, timestamp: Timestamp) {
        self.batch.push_at(record, timestamp);
    }

    /// How many more records this poll should emit (at most `buffer.size` per poll).
    #[inline]
    pub fn remaining(&self) -> usize {
        self.limit.saturating_sub(self.batch.len())
    }

    /// Declares that no record with a smaller event time will follow; sent after the
    /// records of this poll.
    pub fn emit_watermark(&mut self, watermark: Timestamp) {
        self.watermark = Some(self.watermark.map_or(watermark, |w| w.max(watermark)));
    }

    pub(crate) fn take_watermark(&mut self) -> Option<Timestamp> {
        self.watermark.take()
    }
}

/// A source of records, polled by its subtask's task.
pub trait Source<T>: Send + 'static {
    /// Called once on the subtask's core before the first poll. A parallel source picks
    /// its share of the input here (e.g. every `parallelism`-th split from `index`).
    fn open(&mut self, subtask: &SubtaskInfo) -> Result<(), ConnectorError> {
        let _ = subtask;
        Ok(())
    }

    /// Emits up to `out.remaining()` records without blocking, and says what is next.
    fn poll_next(&mut self, out: &mut SourceOutput<'_, T>) -> Result<SourceStatus, ConnectorError>;

    /// Called once before [`Source::open`] with the task's doorbell. A source fed by
    /// another thread (a queue, a broker client) rings it after handing records over,
    /// so that its sleeping task wakes at once instead of at its fallback timer.
    fn set_doorbell(&mut self, doorbell: Arc<Doorbell>) {
        let _ = doorbell;
    }

    /// Called once when the subtask ends (finished or cancelled).
    fn close(&mut self) -> Result<(), ConnectorError> {
        Ok(())
    }

    /// The source's position between two polls, for a checkpoint: enough to emit
    /// exactly the records after it again (file offsets, Kafka offsets, a count).
    /// `None` (the default): the source cannot be replayed, and checkpoints of jobs
    /// reading it fail.
    fn snapshot_position(&mut self) -> Result<Option<Vec<u8>>, ConnectorError> {
        Ok(None)
    }

    /// Called when checkpoint `checkpoint_id` is complete (every task acknowledged it
    /// and its metadata is written; savepoints too), with the position this subtask's
    /// [`Source::snapshot_position`] returned for it: the source's counterpart of
    /// [`Sink::commit`](super::sink::Sink::commit), e.g. to commit a Kafka consumer
    /// group's offsets for monitoring. It runs on the subtask's core between two polls
    /// (after the chain's sinks committed), so it must not block: hand slow work (a
    /// broker request) to another thread. When several checkpoints complete between
    /// two looks only the newest is reported, and one that failed never is; a restore
    /// never depends on this hook. An error fails the task. The default does nothing.
    fn checkpoint_complete(
        &mut self,
        checkpoint_id: u64,
        position: &[u8],
    ) -> Result<(), ConnectorError> {
        let _ = (checkpoint_id, position);
        Ok(())
    }

    /// Called once before [`Source::open`] when the job starts from a checkpoint:
    /// `positions` are those [`Source::snapshot_position`] returned in it, by old
    /// subtask, out of `old_parallelism` (the source decides how to share them when the
    /// parallelism changed; see [`same_subtask_position`]). The source keeps what it
    /// needs and starts there when opened. The default refuses.
    fn restore_position(
        &mut self,
        subtask: &SubtaskInfo,
        positions: &[(u32, &[u8])],
        old_parallelism: u32,
    ) -> Result<(), ConnectorError> {
        let _ = (subtask, positions, old_parallelism);
        Err(ConnectorError::new(
            "this source cannot be restored from a checkpoint (it has no position)",
        ))
    }
}

/// Restores a source that has one position per subtask and runs with the same
/// parallelism as when the checkpoint was taken.
pub fn same_subtask_position<'a>(
    positions: &[(u32, &'a [u8])],
    subtask: usize,
    old_parallelism: u32,
    parallelism: usize,
) -> Result<Option<&'a [u8]>, ConnectorError> {
    if old_parallelism as usize != parallelism {
        return Err(ConnectorError::new(format!(
            "this source was checkpointed with parallelism {old_parallelism} and cannot be \
             restored with parallelism {parallelism}"
        )));
    }
    Ok(positions
        .iter()
        .find(|(old, _)| *old as usize == subtask)
        .map(|(_, bytes)| *bytes))
}

/// A non-parallel source reading an iterator (Flink's `fromCollection`).
pub(crate) struct IterSource<I> {
    iter: I,
    /// Records emitted so far (the position: the iterator is made afresh on restore).
    emitted: u64,
}

impl<I> IterSource<I> {
    pub(crate) fn new(iter: I) -> Self {
        IterSource { iter, emitted: 0 }
    }
}

impl<T, I> Source<T> for IterSource<I>
where
    T: 'static,
    I: Iterator<Item = T> + Send + 'static,
{
    fn poll_next(&mut self, out: &mut SourceOutput<'_, T>) -> Result<SourceStatus, ConnectorError> {
        for _ in 0..out.remaining() {
            match self.iter.next() {
                Some(record) => {
                    self.emitted += 1;
                    out.emit(record)
                }
                None => return Ok(SourceStatus::Finished),
            }
        }
        Ok(SourceStatus::Ready)
    }

    fn snapshot_position(&mut self) -> Result<Option<Vec<u8>>, ConnectorError> {
        Ok(Some(self.emitted.to_le_bytes().to_vec()))
    }

    fn restore_position(
        &mut self,
        _subtask: &SubtaskInfo,
        positions: &[(u32, &[u8])],
        old_parallelism: u32,
    ) -> Result<(), ConnectorError> {
        let position = same_subtask_position(positions, 0, old_parallelism, 1)?;
        let Some(bytes) = position else {
            return Ok(());
        };
        let count = <[u8; 8]>::try_from(bytes)
            .map(u64::from_le_bytes)
            .map_err(|_| ConnectorError::new("a collection source position is 8 bytes"))?;
        for _ in 0..count {
            if self.iter.next().is_none() {
                break;
            }
        }
        self.emitted = count;
        Ok(())
    }
}
