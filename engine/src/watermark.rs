//! Event time: timestamp assigners and watermark strategies (Flink's
//! `WatermarkStrategy`), applied by [`DataStream::assign_timestamps_and_watermarks`].
//!
//! The operator sets every record's timestamp, remembers the largest one seen and, after
//! each buffer, emits the watermark `max_timestamp - max_out_of_orderness - 1` when it
//! advanced (Flink's `BoundedOutOfOrdernessWatermarks`; monotonous timestamps are the
//! case `max_out_of_orderness = 0`). Watermarks travel in-band; an operator with several
//! inputs forwards the minimum over them. With idleness configured, a subtask that saw
//! no record for that long declares its output idle, so it stops holding back the
//! watermark downstream until it emits again. At end of input the watermark jumps to
//! `Timestamp::MAX`, which closes every event-time window (BATCH semantics).
//!
//! [`DataStream::assign_timestamps_and_watermarks`]: crate::api::DataStream::assign_timestamps_and_watermarks

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::error::{ChainResult, PollResult};
use crate::message::{Batch, Timestamp, NO_TIMESTAMP};
use crate::output::Output;
use crate::side::{OutputTag, SharedSideOutputs};

/// A function giving a record's event time (milliseconds since the epoch), or why it
/// cannot.
pub type TimestampFn<T> = Arc<dyn Fn(&T) -> Result<Timestamp, String> + Send + Sync>;

/// The largest event time accepted (about 142,000 years after 1970): far enough for any
/// real data, small enough that window arithmetic never overflows.
pub const MAX_EVENT_TIME: Timestamp = 1 << 52;

/// The smallest event time accepted.
pub const MIN_EVENT_TIME: Timestamp = -(1 << 52);

/// A record whose timestamp could not be extracted or was out of range, with the reason
/// and where it was seen (a dead letter).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadRecord<T> {
    /// The record, unchanged.
    pub record: T,
    /// Why it was rejected.
    pub reason: String,
    /// `operator (subtask/parallelism)`.
    pub operator: String,
    /// Its position among the records this subtask's assigner saw (0-based).
    pub offset: u64,
}

/// How records get their event time and how watermarks follow it.
pub struct WatermarkStrategy<T> {
    max_out_of_orderness_ms: i64,
    assigner: Option<TimestampFn<T>>,
    idleness: Option<Duration>,
    dead_letters: Option<OutputTag<BadRecord<T>>>,
}

impl<T> Clone for WatermarkStrategy<T> {
    fn clone(&self) -> Self {
        WatermarkStrategy {
            max_out_of_orderness_ms: self.max_out_of_orderness_ms,
            assigner: self.assigner.clone(),
            idleness: self.idleness,
            dead_letters: self.dead_letters,
        }
    }
}

impl<T> WatermarkStrategy<T> {
    /// Records may arrive up to `max_out_of_orderness` later than a record with a larger
    /// timestamp; the watermark trails the largest timestamp seen by that much.
    pub fn for_bounded_out_of_orderness(max_out_of_orderness: Duration) -> Self {
        WatermarkStrategy {
            max_out_of_orderness_ms: max_out_of_orderness.as_millis().min(i64::MAX as u128) as i64,
            assigner: None,
            idleness: None,
            dead_letters: None,
        }
    }

    /// Timestamps never decrease; the watermark follows the largest one seen.
    pub fn for_monotonous_timestamps() -> Self {
        WatermarkStrategy::for_bounded_out_of_orderness(Duration::ZERO)
    }

    /// Takes each record's timestamp from the record (without it, records keep the
    /// timestamp their source gave them).
    pub fn with_timestamp_assigner(
        mut self,
        assigner: impl Fn(&T) -> Timestamp + Send + Sync + 'static,
    ) -> Self {
        self.assigner = Some(Arc::new(move |record: &T| Ok(assigner(record))));
        self
    }

    /// Takes each record's timestamp from the record with a function that may fail
    /// (a missing or unparsable field): a failing record is a bad record (see
    /// [`WatermarkStrategy::with_dead_letters`]).
    pub fn with_fallible_timestamp_assigner<E: std::fmt::Display>(
        mut self,
        assigner: impl Fn(&T) -> Result<Timestamp, E> + Send + Sync + 'static,
    ) -> Self {
        self.assigner = Some(Arc::new(move |record: &T| {
            assigner(record).map_err(|error| error.to_string())
        }));
        self
    }

    /// Sends bad records (timestamp not extractable, or outside
    /// [`MIN_EVENT_TIME`]`..=`[`MAX_EVENT_TIME`]) to the side output `tag`, with the
    /// reason and position. Without it, a bad record fails the job with that reason.
    pub fn with_dead_letters(mut self, tag: OutputTag<BadRecord<T>>) -> Self {
        self.dead_letters = Some(tag);
        self
    }

    /// Declares the output idle after `timeout` without records (processing time).
    pub fn with_idleness(mut self, timeout: Duration) -> Self {
        self.idleness = Some(timeout);
        self
    }

    /// The watermark that follows from the largest timestamp seen.
    pub fn watermark_for(&self, max_timestamp: Timestamp) -> Timestamp {
        if max_timestamp == NO_TIMESTAMP {
            return Timestamp::MIN;
        }
        max_timestamp
            .saturating_sub(self.max_out_of_orderness_ms)
            .saturating_sub(1)
    }
}

/// Assigns timestamps and emits watermarks (see the module documentation).
pub(crate) struct TimestampsAndWatermarks<T> {
    strategy: WatermarkStrategy<T>,
    operator: String,
    sides: Option<SharedSideOutputs>,
    offset: u64,
    bad: Vec<(usize, String)>,
    max_timestamp: Timestamp,
    emitted: Timestamp,
    records_since_poll: bool,
    last_activity: Option<Instant>,
    idle: bool,
    next: Box<dyn Output<T>>,
}

impl<T> TimestampsAndWatermarks<T> {
    pub(crate) fn new(
        strategy: WatermarkStrategy<T>,
        operator: String,
        sides: Option<SharedSideOutputs>,
        next: Box<dyn Output<T>>,
    ) -> Self {
        TimestampsAndWatermarks {
            strategy,
            operator,
            sides,
            offset: 0,
            bad: Vec::new(),
            max_timestamp: NO_TIMESTAMP,
            emitted: Timestamp::MIN,
            records_since_poll: false,
            last_activity: None,
            idle: false,
            next,
        }
    }
}

impl<T: 'static> TimestampsAndWatermarks<T> {
    /// Sets the timestamps of `batch`; takes bad records out of it (to the dead letters,
    /// or fails with the first reason).
    fn assign(&mut self, batch: &mut Batch<T>) -> ChainResult {
        let first_offset = self.offset;
        self.offset += batch.len() as u64;
        let bad = &mut self.bad;
        bad.clear();
        let mut index = 0;
        match &self.strategy.assigner {
            Some(assigner) => batch.assign_timestamps(|value, _| {
                let timestamp = match assigner(value) {
                    Ok(timestamp) => check_range(timestamp),
                    Err(reason) => Err(format!("cannot extract the timestamp: {reason}")),
                };
                index += 1;
                timestamp.unwrap_or_else(|reason| {
                    bad.push((index - 1, reason));
                    NO_TIMESTAMP
                })
            }),
            None => {
                if let Some(timestamps) = batch.timestamps() {
                    for (index, &timestamp) in timestamps.iter().enumerate() {
                        if timestamp == NO_TIMESTAMP {
                            bad.push((index, "the record has no timestamp".to_string()));
                        } else if let Err(reason) = check_range(timestamp) {
                            bad.push((index, reason));
                        }
                    }
                }
            }
        }
        if self.bad.is_empty() {
            return Ok(());
        }
        let Some(tag) = self.strategy.dead_letters else {
            let (index, reason) = &self.bad[0];
            return Err(crate::error::ConnectorError::new(format!(
                "bad record at offset {} of {}: {reason} (set dead letters on the watermark strategy to route bad records to a side output)",
                first_offset + *index as u64,
                self.operator
            )));
        };
        let indices: Vec<usize> = self.bad.iter().map(|(index, _)| *index).collect();
        let removed = batch.remove_indices(&indices);
        if let Some(sides) = &self.sides {
            let mut sides = sides.borrow_mut();
            for ((record, _), (index, reason)) in removed.into_iter().zip(self.bad.drain(..)) {
                let bad = BadRecord {
                    record,
                    reason,
                    operator: self.operator.clone(),
                    offset: first_offset + index as u64,
                };
                sides.emit(&tag, bad, NO_TIMESTAMP);
            }
        } else {
            // Nobody reads the dead letters: they are dropped as the user asked, loudly.
            tracing::warn!(
                operator = %self.operator,
                count = removed.len(),
                "bad records dropped: the job reads no side output '{}'",
                tag.id()
            );
        }
        Ok(())
    }
}

/// Accepts a timestamp inside the supported range.
fn check_range(timestamp: Timestamp) -> Result<Timestamp, String> {
    if (MIN_EVENT_TIME..=MAX_EVENT_TIME).contains(&timestamp) {
        Ok(timestamp)
    } else {
        Err(format!(
            "timestamp {timestamp} is out of range ({MIN_EVENT_TIME}..={MAX_EVENT_TIME} ms)"
        ))
    }
}

impl<T: 'static> Output<T> for TimestampsAndWatermarks<T> {
    fn push_batch(&mut self, batch: &mut Batch<T>) -> ChainResult {
        if batch.is_empty() {
            return Ok(());
        }
        self.assign(batch)?;
        if batch.is_empty() {
            return Ok(());
        }
        if let Some(timestamps) = batch.timestamps() {
            if let Some(&max) = timestamps.iter().max() {
                self.max_timestamp = self.max_timestamp.max(max);
            }
        }
        self.records_since_poll = true;
        self.idle = false;
        self.next.push_batch(batch)?;
        let watermark = self.strategy.watermark_for(self.max_timestamp);
        if watermark > self.emitted {
            self.emitted = watermark;
            self.next.watermark(watermark)?;
        }
        Ok(())
    }

    /// Watermarks from upstream are replaced by this operator's own (as in Flink).
    fn watermark(&mut self, _watermark: Timestamp) -> ChainResult {
        Ok(())
    }

    /// Idleness is decided here, from this operator's own input.
    fn idle(&mut self) -> ChainResult {
        Ok(())
    }

    fn end_of_input(&mut self) -> ChainResult {
        if self.emitted < Timestamp::MAX {
            self.emitted = Timestamp::MAX;
            self.next.watermark(Timestamp::MAX)?;
        }
        self.next.end_of_input()
    }

    fn barrier(
        &mut self,
        barrier: crate::checkpoint::Barrier,
        snapshot: &mut crate::checkpoint::TaskSnapshot,
    ) -> ChainResult {
        // Like Flink, watermarks are not checkpointed: after a restore they start
        // again from the replayed records.
        self.next.barrier(barrier, snapshot)
    }

    fn checkpoint_complete(&mut self, id: u64) -> ChainResult {
        self.next.checkpoint_complete(id)
    }

    fn latency_marker(&mut self, marker: crate::latency::LatencyMarker) -> ChainResult {
        self.next.latency_marker(marker)
    }

    fn poll_time(&mut self, now: Instant) -> PollResult {
        let downstream = self.next.poll_time(now)?;
        let Some(timeout) = self.strategy.idleness else {
            return Ok(downstream);
        };
        if self.records_since_poll || self.last_activity.is_none() {
            self.records_since_poll = false;
            self.last_activity = Some(now);
        }
        let deadline = self.last_activity.expect("set above") + timeout;
        if self.idle {
            return Ok(downstream);
        }
        if now >= deadline {
            self.idle = true;
            self.next.idle()?;
            return Ok(downstream);
        }
        Ok(Some(downstream.map_or(deadline, |d| d.min(deadline))))
    }

    fn try_drain(&mut self, now: Instant) -> bool {
        self.next.try_drain(now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::testing::{Capture, Event, Events};
    use std::cell::RefCell;
    use std::rc::Rc;

    fn operator(strategy: WatermarkStrategy<u32>) -> (TimestampsAndWatermarks<u32>, Events<u32>) {
        let events = Rc::new(RefCell::new(Vec::new()));
        let op = TimestampsAndWatermarks::new(
            strategy,
            "assign (1/1)".into(),
            None,
            Box::new(Capture(Rc::clone(&events))),
        );
        (op, events)
    }

    proptest::proptest! {
        /// The watermark after each buffer is max(timestamps so far) - delay - 1, emitted
        /// only when it advances, and MAX at the end.
        #[test]
        fn watermarks_trail_the_largest_timestamp(
            buffers in proptest::collection::vec(proptest::collection::vec(0u32..1000, 0..8), 0..12),
            delay_ms in 0u64..50,
        ) {
            let strategy = WatermarkStrategy::for_bounded_out_of_orderness(Duration::from_millis(delay_ms))
                .with_timestamp_assigner(|v: &u32| i64::from(*v) * 10);
            let (mut op, events) = operator(strategy);
            let mut expected = Vec::new();
            let mut max = None::<i64>;
            let mut last = Timestamp::MIN;
            for buffer in &buffers {
                let mut batch = Batch::from(buffer.clone());
                op.push_batch(&mut batch).unwrap();
                for &v in buffer {
                    let ts = i64::from(v) * 10;
                    expected.push(Event::Record(v, ts));
                    max = Some(max.map_or(ts, |m: i64| m.max(ts)));
                }
                if let Some(max) = max {
                    let wm = max - delay_ms as i64 - 1;
                    if wm > last && !buffer.is_empty() {
                        last = wm;
                        expected.push(Event::Watermark(wm));
                    }
                }
            }
            op.end_of_input().unwrap();
            expected.push(Event::Watermark(Timestamp::MAX));
            expected.push(Event::End);
            proptest::prop_assert_eq!(&*events.borrow(), &expected);
        }
    }

    #[test]
    fn an_input_without_records_goes_idle_after_the_timeout_and_wakes_with_data() {
        let strategy = WatermarkStrategy::for_monotonous_timestamps()
            .with_timestamp_assigner(|v: &u32| i64::from(*v))
            .with_idleness(Duration::from_millis(100));
        let (mut op, events) = operator(strategy);
        let start = crate::clock::ManualClock::new();
        use crate::clock::Clock;
        let t0 = start.now();
        assert_eq!(
            op.poll_time(t0).unwrap(),
            Some(t0 + Duration::from_millis(100))
        );
        assert_eq!(
            op.poll_time(t0 + Duration::from_millis(99)).unwrap(),
            Some(t0 + Duration::from_millis(100))
        );
        assert!(events.borrow().is_empty());
        assert_eq!(op.poll_time(t0 + Duration::from_millis(100)).unwrap(), None);
        assert_eq!(&*events.borrow(), &[Event::Idle]);
        // Data makes it active again: the idle timer restarts from the next poll.
        op.push_batch(&mut Batch::from(vec![7])).unwrap();
        let t1 = t0 + Duration::from_millis(150);
        assert_eq!(
            op.poll_time(t1).unwrap(),
            Some(t1 + Duration::from_millis(100))
        );
        assert_eq!(
            &*events.borrow(),
            &[Event::Idle, Event::Record(7, 7), Event::Watermark(6)]
        );
    }
}
