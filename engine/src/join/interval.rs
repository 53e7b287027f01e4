//! The interval join, built on connected keyed streams with keyed state and event-time
//! timers, with Flink's semantics:
//!
//! * a pair (left `a` at `ta`, right `b` at `tb`) of one key joins when
//!   `ta + lower <= tb <= ta + upper` (bounds inclusive unless made exclusive);
//! * the output record gets the larger of the two timestamps;
//! * each side keeps its records in keyed state, by timestamp, until the watermark
//!   passes the last time a partner could still arrive (`ta + upper` for the left side,
//!   `tb - lower` for the right side), then an event-time timer drops them;
//! * a record whose timestamp is below the current watermark is late: it is not joined
//!   (a partner may already be gone) and goes to the late side output of its side if the
//!   user set one, as Flink's `sideOutputLeftLateData` / `sideOutputRightLateData`;
//!   without one it is dropped as in Flink, but counted and logged, never silently.

use std::hash::Hash;

use crate::message::Timestamp;
use crate::operators::co::KeyedCoProcessFunction;
use crate::operators::keyed::KeyedContext;
use crate::output::Collector;
use crate::side::OutputTag;
use crate::state::MapStateDescriptor;
use crate::timers::TimeDomain;

/// The interval bounds, in event-time milliseconds relative to the left record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IntervalBounds {
    /// Lowest right timestamp relative to the left one.
    pub lower: i64,
    /// Highest right timestamp relative to the left one.
    pub upper: i64,
    /// Whether `lower` itself is excluded.
    pub lower_exclusive: bool,
    /// Whether `upper` itself is excluded.
    pub upper_exclusive: bool,
}

impl IntervalBounds {
    /// Effective inclusive bounds.
    fn inclusive(&self) -> (i64, i64) {
        (
            self.lower + i64::from(self.lower_exclusive),
            self.upper - i64::from(self.upper_exclusive),
        )
    }
}

/// Buffered records of one side, per timestamp.
type Buffer<V> = MapStateDescriptor<Timestamp, Vec<V>>;

/// The join as a [`KeyedCoProcessFunction`].
pub(crate) struct IntervalJoin<A, B, F> {
    lower: i64,
    upper: i64,
    left: Buffer<A>,
    right: Buffer<B>,
    left_late: Option<OutputTag<A>>,
    right_late: Option<OutputTag<B>>,
    /// Late records dropped because no late side output was set (logged, not silent).
    late_dropped: u64,
    join: F,
}

impl<A, B, F: Clone> Clone for IntervalJoin<A, B, F> {
    fn clone(&self) -> Self {
        IntervalJoin {
            lower: self.lower,
            upper: self.upper,
            left: self.left.clone(),
            right: self.right.clone(),
            left_late: self.left_late,
            right_late: self.right_late,
            late_dropped: 0,
            join: self.join.clone(),
        }
    }
}

impl<A, B, F> IntervalJoin<A, B, F> {
    pub(crate) fn new(
        bounds: IntervalBounds,
        left_late: Option<OutputTag<A>>,
        right_late: Option<OutputTag<B>>,
        join: F,
    ) -> Self {
        let (lower, upper) = bounds.inclusive();
        IntervalJoin {
            lower,
            upper,
            left: MapStateDescriptor::new("interval-join-left"),
            right: MapStateDescriptor::new("interval-join-right"),
            left_late,
            right_late,
            late_dropped: 0,
            join,
        }
    }

    /// Counts a late record dropped for want of a late side output, and says so (at
    /// the 1st, 2nd, 4th, 8th, … drop, so the log stays small).
    fn dropped_late(&mut self, side: &str) {
        self.late_dropped += 1;
        if self.late_dropped.is_power_of_two() {
            tracing::warn!(
                dropped = self.late_dropped,
                "interval join: late {side} records dropped (set side_output_{side}_late_data to keep them)"
            );
        }
    }

    /// Until when a left record at `t` may still meet a right record.
    fn left_cleanup(&self, t: Timestamp) -> Timestamp {
        t.saturating_add(self.upper.max(0))
    }

    /// Until when a right record at `t` may still meet a left record.
    fn right_cleanup(&self, t: Timestamp) -> Timestamp {
        t.saturating_sub(self.lower.min(0))
    }
}

impl<K, A, B, O, F> KeyedCoProcessFunction<K, A, B, O> for IntervalJoin<A, B, F>
where
    K: Hash + Eq + Clone + crate::checkpoint::StateData,
    A: Clone + Send + Sync + crate::checkpoint::StateData,
    B: Clone + Send + Sync + crate::checkpoint::StateData,
    O: 'static,
    F: FnMut(&A, &B) -> O + Clone + Send + Sync + 'static,
{
    fn process_element1(
        &mut self,
        record: A,
        ctx: &mut KeyedContext<'_, K>,
        out: &mut Collector<'_, O>,
    ) {
        let Some(t) = ctx.timestamp() else {
            return;
        };
        if t < ctx.current_watermark() {
            match &self.left_late {
                Some(tag) => ctx.output(tag, record),
                None => self.dropped_late("left"),
            }
            return;
        }
        let (from, to) = (t.saturating_add(self.lower), t.saturating_add(self.upper));
        for (&tb, partners) in ctx.map(&self.right).entries() {
            if (from..=to).contains(&tb) {
                for partner in partners {
                    out.collect_at((self.join)(&record, partner), t.max(tb));
                }
            }
        }
        let mut buffer = ctx.map(&self.left);
        match buffer.get(&t) {
            Some(records) => records.push(record),
            None => {
                buffer.put(t, vec![record]);
            }
        }
        let cleanup = self.left_cleanup(t);
        ctx.register_event_time_timer(cleanup);
    }

    fn process_element2(
        &mut self,
        record: B,
        ctx: &mut KeyedContext<'_, K>,
        out: &mut Collector<'_, O>,
    ) {
        let Some(t) = ctx.timestamp() else {
            return;
        };
        if t < ctx.current_watermark() {
            match &self.right_late {
                Some(tag) => ctx.output(tag, record),
                None => self.dropped_late("right"),
            }
            return;
        }
        let (from, to) = (t.saturating_sub(self.upper), t.saturating_sub(self.lower));
        for (&ta, partners) in ctx.map(&self.left).entries() {
            if (from..=to).contains(&ta) {
                for partner in partners {
                    out.collect_at((self.join)(partner, &record), t.max(ta));
                }
            }
        }
        let mut buffer = ctx.map(&self.right);
        match buffer.get(&t) {
            Some(records) => records.push(record),
            None => {
                buffer.put(t, vec![record]);
            }
        }
        let cleanup = self.right_cleanup(t);
        ctx.register_event_time_timer(cleanup);
    }

    fn on_timer(
        &mut self,
        time: Timestamp,
        domain: TimeDomain,
        ctx: &mut KeyedContext<'_, K>,
        _out: &mut Collector<'_, O>,
    ) {
        debug_assert_eq!(domain, TimeDomain::EventTime);
        let expired_left: Vec<Timestamp> = ctx
            .map(&self.left)
            .entries()
            .map(|(&t, _)| t)
            .filter(|&t| self.left_cleanup(t) <= time)
            .collect();
        for t in expired_left {
            ctx.map(&self.left).remove(&t);
        }
        let expired_right: Vec<Timestamp> = ctx
            .map(&self.right)
            .entries()
            .map(|(&t, _)| t)
            .filter(|&t| self.right_cleanup(t) <= time)
            .collect();
        for t in expired_right {
            ctx.map(&self.right).remove(&t);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::{Clock, ManualClock};
    use crate::graph::BuildContext;
    use crate::message::Batch;
    use crate::operators::co::{CoProcess, Either};
    use crate::operators::keyed::ProcessOperator;
    use crate::operators::source::SubtaskInfo;
    use crate::output::testing::{Capture, Event};
    use crate::output::Output;
    use crate::side::{SideBuffer, SideOutputs, WithSideOutputs};
    use std::cell::RefCell;
    use std::rc::Rc;
    use std::sync::Arc;

    type Record = (u8, u32);
    const LATE_LEFT: OutputTag<Record> = OutputTag::new("late-left");
    const LATE_RIGHT: OutputTag<Record> = OutputTag::new("late-right");

    /// Drives the join operator by hand: records and watermarks in a chosen order.
    #[test]
    fn late_records_of_either_side_go_to_their_side_output_and_state_is_cleaned() {
        let main = Rc::new(RefCell::new(Vec::new()));
        let late_left = Rc::new(RefCell::new(Vec::<Event<Record>>::new()));
        let late_right = Rc::new(RefCell::new(Vec::<Event<Record>>::new()));
        let sides = Rc::new(RefCell::new(SideOutputs::new(vec![
            Box::new(SideBuffer::new(
                "late-left",
                Box::new(Capture(Rc::clone(&late_left))),
            )),
            Box::new(SideBuffer::new(
                "late-right",
                Box::new(Capture(Rc::clone(&late_right))),
            )),
        ])));
        let clock: Arc<dyn Clock> = Arc::new(ManualClock::new());
        let info = SubtaskInfo {
            job: "t".into(),
            operator: "join".into(),
            index: 0,
            parallelism: 1,
        };
        let counters = Arc::new(vec![std::sync::atomic::AtomicU64::new(0)]);
        let context = BuildContext {
            subtask: &info,
            clock: &clock,
            sides: Some(Rc::clone(&sides)),
            max_parallelism: 128,
            operator_id: "join",
            restored: None,
            sorted_input: false,
            records: (&counters, 0),
        };
        let join = IntervalJoin::new(
            IntervalBounds {
                lower: -5,
                upper: 5,
                lower_exclusive: false,
                upper_exclusive: false,
            },
            Some(LATE_LEFT),
            Some(LATE_RIGHT),
            |a: &Record, b: &Record| (a.1, b.1),
        );
        let downstream: Box<dyn Output<(u32, u32)>> = Box::new(WithSideOutputs::new(
            Box::new(Capture(Rc::clone(&main))),
            Rc::clone(&sides),
        ));
        let mut operator = ProcessOperator::new(
            |record: &Either<Record, Record>| match record {
                Either::Left(r) | Either::Right(r) => r.0,
            },
            CoProcess(join),
            &context,
            false,
            downstream,
        );
        let push = |operator: &mut dyn Output<Either<Record, Record>>, record, t| {
            let mut batch = Batch::new();
            batch.push_at(record, t);
            operator.push_batch(&mut batch).unwrap();
        };
        push(&mut operator, Either::Left((1, 0)), 100);
        push(&mut operator, Either::Right((1, 10)), 104);
        operator.watermark(150).unwrap();
        // Both are behind the watermark now: late, not joined, reported.
        push(&mut operator, Either::Right((1, 11)), 101);
        push(&mut operator, Either::Left((1, 1)), 149);
        // On time: joins with nothing (the state of 100/104 was cleaned at 105/109).
        push(&mut operator, Either::Left((1, 2)), 160);
        push(&mut operator, Either::Right((1, 12)), 163);
        operator.end_of_input().unwrap();

        let main = main.borrow();
        let records: Vec<_> = main
            .iter()
            .filter_map(|e| match e {
                Event::Record(r, t) => Some((*r, *t)),
                _ => None,
            })
            .collect();
        assert_eq!(records, vec![((0, 10), 104), ((2, 12), 163)]);
        assert_eq!(main.last(), Some(&Event::End));
        assert!(main.contains(&Event::Watermark(150)));
        assert_eq!(
            *late_right.borrow(),
            vec![
                Event::Watermark(150),
                Event::Record((1, 11), 101),
                Event::End
            ]
        );
        assert_eq!(
            *late_left.borrow(),
            vec![
                Event::Watermark(150),
                Event::Record((1, 1), 149),
                Event::End
            ]
        );
    }

    /// A record of either side with its timestamp: ((key, id), t).
    type Timed = (Either<(u32, u32), (u32, u32)>, Timestamp);
    /// A joined pair of ids with its timestamp.
    type Pair = ((u32, u32), Timestamp);

    /// Runs a BATCH interval join ([-5, 5]) of `records` (u32 keys) in buffers of 5;
    /// returns its pairs, sorted, and the most state entries it held after a buffer.
    fn run_sorted(records: &[Timed], sorted: bool) -> (Vec<Pair>, usize) {
        let main = Rc::new(RefCell::new(Vec::new()));
        let clock: Arc<dyn Clock> = Arc::new(ManualClock::new());
        let info = SubtaskInfo {
            job: "t".into(),
            operator: "join".into(),
            index: 0,
            parallelism: 1,
        };
        let counters = Arc::new(vec![std::sync::atomic::AtomicU64::new(0)]);
        let context = BuildContext {
            subtask: &info,
            clock: &clock,
            sides: None,
            max_parallelism: 128,
            operator_id: "join",
            restored: None,
            sorted_input: sorted,
            records: (&counters, 0),
        };
        let join = IntervalJoin::new(
            IntervalBounds {
                lower: -5,
                upper: 5,
                lower_exclusive: false,
                upper_exclusive: false,
            },
            None,
            None,
            |a: &(u32, u32), b: &(u32, u32)| (a.1, b.1),
        );
        let mut operator = ProcessOperator::new(
            |record: &Either<(u32, u32), (u32, u32)>| match record {
                Either::Left(r) | Either::Right(r) => r.0,
            },
            CoProcess(join),
            &context,
            true,
            Box::new(Capture(Rc::clone(&main))) as Box<dyn Output<(u32, u32)>>,
        )
        .sorted_input(sorted);
        let mut held_max = 0;
        for chunk in records.chunks(5) {
            let mut batch = Batch::new();
            for (record, timestamp) in chunk {
                batch.push_at(record.clone(), *timestamp);
            }
            operator.push_batch(&mut batch).unwrap();
            held_max = held_max.max(operator.live_entries());
        }
        operator.watermark(Timestamp::MAX).unwrap();
        operator.end_of_input().unwrap();
        let mut pairs: Vec<_> = main
            .borrow()
            .iter()
            .filter_map(|e| match e {
                Event::Record(r, t) => Some((*r, *t)),
                _ => None,
            })
            .collect();
        pairs.sort();
        (pairs, held_max)
    }

    /// Sorted by key hash (as a blocking exchange delivers them), a BATCH interval join
    /// holds one key's state (one map entry per side) and finds the pairs the unsorted
    /// operator finds.
    #[test]
    fn a_sorted_interval_join_holds_one_key_and_finds_the_same_pairs() {
        let mut records: Vec<Timed> = (0..200u32)
            .flat_map(|key| {
                (0..6u32).map(move |i| {
                    let timestamp = i64::from((i * 7 + key) % 30);
                    let record = if i % 2 == 0 {
                        Either::Left((key, i))
                    } else {
                        Either::Right((key, i))
                    };
                    (record, timestamp)
                })
            })
            .collect();
        records.sort_by_key(|(record, _)| match record {
            Either::Left(r) | Either::Right(r) => crate::partition::key_hash(&r.0),
        });
        let (all_pairs, all_held) = run_sorted(&records, false);
        let (sorted_pairs, sorted_held) = run_sorted(&records, true);
        assert!(!all_pairs.is_empty());
        assert_eq!(sorted_pairs, all_pairs);
        assert!(
            all_held >= 200,
            "unsorted: every key until the end ({all_held})"
        );
        assert!(sorted_held <= 2, "sorted: one key ({sorted_held} entries)");
    }
}
