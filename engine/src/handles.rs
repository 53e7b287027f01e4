//! Handles for services that embed eddy: a [`PushHandle`] through which a service
//! thread pushes records into a running job, and a [`ResultHandle`] from which it takes
//! the job's output. Both are bounded SPSC rings, so a slow pipeline backpressures the
//! pusher and a slow reader backpressures the pipeline; neither allocates per record.

use std::collections::VecDeque;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use crate::clock::{wait_until, Clock, SystemClock};
use crate::error::{ChainResult, ConnectorError, PollResult};
use crate::message::{Batch, Timestamp};
use crate::operators::source::{Source, SourceOutput, SourceStatus};
use crate::output::Output;
use crate::runtime::doorbell::Doorbell;

/// Why a record could not be pushed; the record is handed back.
#[derive(Debug, PartialEq, Eq)]
pub enum PushError<T> {
    /// The pipeline is full (backpressure); try again later.
    Full(T),
    /// The job has ended or was cancelled; nothing more will be read.
    Closed(T),
}

impl<T> PushError<T> {
    /// The record that was not pushed.
    pub fn into_inner(self) -> T {
        match self {
            PushError::Full(record) | PushError::Closed(record) => record,
        }
    }
}

/// The service side of a push source. Dropping it ends the source (end of input).
pub struct PushHandle<T> {
    ring: rtrb::Producer<T>,
    /// The source task's doorbell, once the job runs.
    bell: Arc<OnceLock<Arc<Doorbell>>>,
}

impl<T> Drop for PushHandle<T> {
    fn drop(&mut self) {
        // Wake the source so it sees the end of input at once.
        if let Some(bell) = self.bell.get() {
            bell.ring();
        }
    }
}

impl<T> PushHandle<T> {
    /// Pushes a record, waiting while the pipeline is full. Fails only if the job ended.
    pub fn push(&mut self, record: T) -> Result<(), PushError<T>> {
        let ring = &self.ring;
        wait_until(None, || ring.slots() > 0 || ring.is_abandoned());
        self.try_push(record)
    }

    /// Pushes a record if there is room right now.
    pub fn try_push(&mut self, record: T) -> Result<(), PushError<T>> {
        if self.ring.is_abandoned() {
            return Err(PushError::Closed(record));
        }
        self.ring
            .push(record)
            .map_err(|rtrb::PushError::Full(record)| PushError::Full(record))?;
        if let Some(bell) = self.bell.get() {
            bell.ring();
        }
        Ok(())
    }

    /// Free slots right now.
    pub fn free_slots(&self) -> usize {
        self.ring.slots()
    }
}

/// The job side of a push source (non-parallel, unbounded).
pub(crate) struct PushSource<T> {
    ring: rtrb::Consumer<T>,
    bell: Arc<OnceLock<Arc<Doorbell>>>,
}

/// A connected pair: the handle for the service, the source for the job.
pub(crate) fn push_channel<T>(capacity: usize) -> (PushHandle<T>, PushSource<T>) {
    let (producer, consumer) = rtrb::RingBuffer::new(capacity.max(1));
    let bell = Arc::new(OnceLock::new());
    (
        PushHandle {
            ring: producer,
            bell: Arc::clone(&bell),
        },
        PushSource {
            ring: consumer,
            bell,
        },
    )
}

impl<T: Send + 'static> Source<T> for PushSource<T> {
    fn set_doorbell(&mut self, doorbell: Arc<Doorbell>) {
        let _ = self.bell.set(doorbell);
    }

    fn poll_next(&mut self, out: &mut SourceOutput<'_, T>) -> Result<SourceStatus, ConnectorError> {
        let available = self.ring.slots().min(out.remaining());
        if available == 0 {
            return Ok(if self.ring.is_abandoned() && self.ring.is_empty() {
                SourceStatus::Finished
            } else {
                SourceStatus::Idle
            });
        }
        for _ in 0..available {
            match self.ring.pop() {
                Ok(record) => out.emit(record),
                Err(_) => break,
            }
        }
        Ok(SourceStatus::Ready)
    }
}

/// Why [`ResultHandle::try_recv`] returned nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecvError {
    /// Nothing yet.
    Empty,
    /// The job's output has ended (the job finished, failed or was cancelled).
    Ended,
}

/// The service side of a result sink: receives the records the job emits.
pub struct ResultHandle<T> {
    ring: rtrb::Consumer<T>,
}

impl<T> ResultHandle<T> {
    /// Takes the next record if one is there.
    pub fn try_recv(&mut self) -> Result<T, RecvError> {
        match self.ring.pop() {
            Ok(record) => Ok(record),
            Err(_) if self.ring.is_abandoned() => {
                // The producer may have pushed just before going away.
                self.ring.pop().map_err(|_| RecvError::Ended)
            }
            Err(_) => Err(RecvError::Empty),
        }
    }

    /// Waits for the next record; `None` once the output has ended.
    pub fn recv(&mut self) -> Option<T> {
        self.recv_deadline(None).ok()
    }

    /// Waits at most `timeout` for the next record.
    pub fn recv_timeout(&mut self, timeout: Duration) -> Result<T, RecvError> {
        self.recv_deadline(Some(SystemClock.now() + timeout))
    }

    fn recv_deadline(&mut self, deadline: Option<Instant>) -> Result<T, RecvError> {
        let ring = &self.ring;
        wait_until(deadline, || !ring.is_empty() || ring.is_abandoned());
        self.try_recv()
    }
}

impl<T> Iterator for ResultHandle<T> {
    type Item = T;
    fn next(&mut self) -> Option<T> {
        self.recv()
    }
}

/// The job side of a result handle (a sink of parallelism 1).
pub(crate) struct ResultSink<T> {
    ring: rtrb::Producer<T>,
    pending: VecDeque<T>,
}

/// A connected pair: the sink for the job, the handle for the service.
pub(crate) fn result_channel<T>(capacity: usize) -> (ResultSink<T>, ResultHandle<T>) {
    let (producer, consumer) = rtrb::RingBuffer::new(capacity.max(1));
    (
        ResultSink {
            ring: producer,
            pending: VecDeque::new(),
        },
        ResultHandle { ring: consumer },
    )
}

impl<T: 'static> Output<T> for ResultSink<T> {
    fn push_batch(&mut self, batch: &mut Batch<T>) -> ChainResult {
        for record in batch.drain_values() {
            if self.pending.is_empty() {
                if let Err(rtrb::PushError::Full(record)) = self.ring.push(record) {
                    self.pending.push_back(record);
                }
            } else {
                self.pending.push_back(record);
            }
        }
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
        if self.ring.is_abandoned() {
            // Nobody reads any more: the output is dropped by the reader's choice.
            self.pending.clear();
        }
        while let Some(record) = self.pending.pop_front() {
            if let Err(rtrb::PushError::Full(record)) = self.ring.push(record) {
                self.pending.push_front(record);
                return false;
            }
        }
        true
    }

    fn barrier(
        &mut self,
        _barrier: crate::checkpoint::Barrier,
        _snapshot: &mut crate::checkpoint::TaskSnapshot,
    ) -> ChainResult {
        Ok(())
    }

    fn checkpoint_complete(&mut self, _id: u64) -> ChainResult {
        Ok(())
    }

    fn latency_marker(&mut self, _marker: crate::latency::LatencyMarker) -> ChainResult {
        // A sink: the task recorded the marker when it took it from its input.
        Ok(())
    }
}
