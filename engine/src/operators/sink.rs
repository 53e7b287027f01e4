//! Sinks: the [`Sink`] trait users implement, and built-in sinks (closure, collect).

use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::checkpoint::{Barrier, TaskSnapshot};
use crate::error::{ChainResult, ConnectorError, PollResult};
use crate::message::{Batch, Timestamp};
use crate::operators::source::SubtaskInfo;
use crate::output::Output;

/// A destination of records. One instance runs per sink subtask.
pub trait Sink<T>: Send + 'static {
    /// Called once on the subtask's core before the first record.
    fn open(&mut self, subtask: &SubtaskInfo) -> Result<(), ConnectorError> {
        let _ = subtask;
        Ok(())
    }

    /// Writes one record. Must not block the executor for long.
    fn write(&mut self, record: T) -> Result<(), ConnectorError>;

    /// Writes a buffer of records (takes them all; timestamps are in
    /// [`Batch::timestamps`]). Override to write in bulk.
    fn write_batch(&mut self, batch: &mut Batch<T>) -> Result<(), ConnectorError> {
        batch
            .drain_values()
            .try_for_each(|record| self.write(record))
    }

    /// The input's event-time clock advanced.
    fn on_watermark(&mut self, watermark: Timestamp) -> Result<(), ConnectorError> {
        let _ = watermark;
        Ok(())
    }

    /// All input was written (bounded jobs): flush, commit everything and close.
    fn finish(&mut self) -> Result<(), ConnectorError> {
        Ok(())
    }

    /// First phase of a two-phase commit, at the barrier of checkpoint
    /// `checkpoint_id`: make everything written so far durable but not yet visible
    /// (pending), and return what is needed to commit it later; it is kept in the
    /// checkpoint. `None` (the default): the sink keeps no state.
    fn pre_commit(&mut self, checkpoint_id: u64) -> Result<Option<Vec<u8>>, ConnectorError> {
        let _ = checkpoint_id;
        Ok(None)
    }

    /// Second phase: checkpoint `checkpoint_id` is complete, so what was pre-committed
    /// up to it becomes visible. Must be idempotent.
    fn commit(&mut self, checkpoint_id: u64) -> Result<(), ConnectorError> {
        let _ = checkpoint_id;
        Ok(())
    }

    /// Called once after [`Sink::open`], before the first record, when the job starts
    /// from checkpoint `checkpoint_id`: `states` are what [`Sink::pre_commit`] returned
    /// in it, by old subtask (those this subtask takes over; its own index among them
    /// when the parallelism did not change). The sink commits them again (idempotently)
    /// and withdraws or discards whatever it wrote after that checkpoint, so the output
    /// matches the restored state. Not called on a fresh start.
    fn restore(
        &mut self,
        checkpoint_id: u64,
        states: &[(u32, &[u8])],
    ) -> Result<(), ConnectorError> {
        let _ = (checkpoint_id, states);
        Ok(())
    }
}

/// A node's count of records, in the job's per-node counters.
pub(crate) struct RecordCounter {
    pub(crate) counters: std::sync::Arc<Vec<std::sync::atomic::AtomicU64>>,
    pub(crate) index: usize,
}

impl RecordCounter {
    fn add(&self, records: usize) {
        self.counters[self.index].fetch_add(records as u64, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Runs a [`Sink`] as the last operator of a chain.
pub(crate) struct SinkOperator<S> {
    sink: S,
    operator_id: String,
    records: RecordCounter,
}

impl<S> SinkOperator<S> {
    pub(crate) fn new(sink: S, context: &crate::graph::BuildContext<'_>) -> Self {
        SinkOperator {
            sink,
            operator_id: context.operator_id.to_owned(),
            records: context.record_counter(),
        }
    }
}

impl<T: 'static, S: Sink<T>> Output<T> for SinkOperator<S> {
    fn push_batch(&mut self, batch: &mut Batch<T>) -> ChainResult {
        // One relaxed add per buffer.
        self.records.add(batch.len());
        self.sink.write_batch(batch)
    }

    fn watermark(&mut self, watermark: Timestamp) -> ChainResult {
        self.sink.on_watermark(watermark)
    }

    fn end_of_input(&mut self) -> ChainResult {
        self.sink.finish()
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

    fn barrier(&mut self, barrier: Barrier, snapshot: &mut TaskSnapshot) -> ChainResult {
        if let Some(state) = self.sink.pre_commit(barrier.id)? {
            snapshot.add(&self.operator_id, Vec::new(), state);
        }
        Ok(())
    }

    fn checkpoint_complete(&mut self, id: u64) -> ChainResult {
        self.sink.commit(id)
    }

    fn latency_marker(&mut self, _marker: crate::latency::LatencyMarker) -> ChainResult {
        // The task recorded the marker when it took it from its input.
        Ok(())
    }
}

/// A sink calling a closure per record.
#[derive(Clone)]
pub(crate) struct FnSink<F> {
    function: F,
}

impl<F> FnSink<F> {
    pub(crate) fn new(function: F) -> Self {
        FnSink { function }
    }
}

impl<T, F: FnMut(T) + Send + 'static> Sink<T> for FnSink<F> {
    fn write(&mut self, record: T) -> Result<(), ConnectorError> {
        (self.function)(record);
        Ok(())
    }
}

/// The records a bounded job collected with
/// [`DataStream::collect_vec`](crate::api::DataStream::collect_vec); filled when the job ends.
#[derive(Debug)]
pub struct Collected<T> {
    shared: Arc<Mutex<Vec<T>>>,
}

impl<T> Clone for Collected<T> {
    fn clone(&self) -> Self {
        Collected {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<T> Collected<T> {
    pub(crate) fn new() -> Self {
        Collected {
            shared: Arc::new(Mutex::new(Vec::new())),
        }
    }

    /// Takes the records collected so far (all of them once the job has ended). Order:
    /// each sink subtask's records in order, subtasks one after another.
    pub fn take(&self) -> Vec<T> {
        std::mem::take(&mut *self.shared.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

/// Keeps a subtask's records locally and hands them over at end of input (one lock
/// per subtask, none per record).
pub(crate) struct CollectSink<T> {
    local: Vec<T>,
    target: Collected<T>,
}

impl<T> CollectSink<T> {
    pub(crate) fn new(target: Collected<T>) -> Self {
        CollectSink {
            local: Vec::new(),
            target,
        }
    }
}

impl<T: Send + 'static> Sink<T> for CollectSink<T> {
    fn write(&mut self, record: T) -> Result<(), ConnectorError> {
        self.local.push(record);
        Ok(())
    }

    fn write_batch(&mut self, batch: &mut Batch<T>) -> Result<(), ConnectorError> {
        self.local.extend(batch.drain_values());
        Ok(())
    }

    fn finish(&mut self) -> Result<(), ConnectorError> {
        let mut shared = self.target.shared.lock().unwrap_or_else(|e| e.into_inner());
        shared.append(&mut self.local);
        Ok(())
    }
}
