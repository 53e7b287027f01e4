//! The windowing API: [`KeyedStream::window`], [`KeyedStream::count_window`],
//! [`DataStream::window_all`] and the [`WindowedStream`] they return (Flink's
//! `WindowedStream` / `AllWindowedStream`).
//!
//! ```
//! use std::time::Duration;
//! use eddy_engine::prelude::*;
//! use eddy_engine::window::TumblingEventTimeWindows;
//!
//! let env = Env::new(JobConfig::default());
//! let sums = env
//!     .from_iter(vec![('a', 1u64, 0i64), ('b', 2, 3), ('a', 3, 12)])
//!     .assign_timestamps_and_watermarks(
//!         WatermarkStrategy::for_monotonous_timestamps().with_timestamp_assigner(|r: &(char, u64, i64)| r.2),
//!     )
//!     .set_parallelism(1)
//!     .key_by(|r: &(char, u64, i64)| r.0)
//!     .window(TumblingEventTimeWindows::of(Duration::from_millis(10)))
//!     .reduce(|a, b| (a.0, a.1 + b.1, a.2.max(b.2)))
//!     .collect_vec();
//! env.execute().unwrap();
//! let mut sums = sums.take();
//! sums.sort();
//! assert_eq!(sums, vec![('a', 1, 0), ('a', 3, 12), ('b', 2, 3)]);
//! ```

use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use crate::api::{operator_kit, Data, DataStream, Key, KeyedStream};
use crate::checkpoint::StateData;
use crate::config::Mode;
use crate::error::{ChainResult, ConnectorError, PollResult};
use crate::graph::BuildContext;
use crate::message::{Batch, Timestamp};
use crate::output::{Collector, Output};
use crate::side::{OutputTag, SharedSideOutputs};
use crate::state::AggregateFunction;

use super::assigners::{GlobalWindows, WindowAssigner};
use super::functions::{
    AggregateCore, AggregateProcessCore, CountEvictingCore, ProcessCore, ProcessWindowFn,
    ProcessWindowFunction, ReduceCore, WindowContext, WindowCore,
};
use super::operator::{DropLate, WindowOperator};
use super::triggers::{CountTrigger, PurgingTrigger, Trigger};

/// The key of a non-keyed (`window_all`) window: every record has it.
fn no_key<T>(_record: &T) {}

impl<T, K, KS> KeyedStream<T, K, KS>
where
    T: Data,
    K: Key,
    KS: Fn(&T) -> K + Clone + Send + Sync + 'static,
{
    /// Windows of this keyed stream, as `assigner` makes them (Flink's `window`). The
    /// assigner's default trigger applies unless [`WindowedStream::trigger`] sets
    /// another.
    pub fn window<A: WindowAssigner<T>>(
        &self,
        assigner: A,
    ) -> WindowedStream<T, K, KS, A, A::Trigger> {
        WindowedStream::new(
            self.stream().clone(),
            self.key_selector().clone(),
            assigner,
            false,
        )
    }

    /// Tumbling count windows: every `size` records of a key form a window (Flink's
    /// `countWindow(size)`: global windows, a purging count trigger). Leftover records
    /// at end of input do not fire.
    pub fn count_window(
        &self,
        size: u64,
    ) -> WindowedStream<T, K, KS, GlobalWindows, PurgingTrigger<CountTrigger>>
    where
        T: StateData,
        K: StateData,
    {
        self.window(GlobalWindows::create())
            .trigger(PurgingTrigger::of(CountTrigger::of(size)))
            .checked_count("count_window size", size)
    }

    /// Sliding count windows: every `slide` records of a key, a window of the last
    /// `size` records (Flink's `countWindow(size, slide)`: global windows, a count
    /// trigger, a count evictor).
    pub fn count_window_slide(
        &self,
        size: u64,
        slide: u64,
    ) -> WindowedStream<T, K, KS, GlobalWindows, CountTrigger>
    where
        T: StateData,
        K: StateData,
    {
        let mut windowed = self
            .window(GlobalWindows::create())
            .trigger(CountTrigger::of(slide))
            .checked_count("count_window_slide slide", slide)
            .checked_count("count_window_slide size", size);
        windowed.evict_to_count = Some(usize::try_from(size).unwrap_or(usize::MAX));
        windowed
    }
}

impl<T: Data> DataStream<T> {
    /// Windows over the whole stream, not keyed (Flink's `windowAll`); the window
    /// operator runs with parallelism 1 and window functions see the key `()`.
    pub fn window_all<A: WindowAssigner<T>>(
        &self,
        assigner: A,
    ) -> AllWindowedStream<T, A, A::Trigger> {
        WindowedStream::new(self.clone(), no_key::<T> as fn(&T), assigner, true)
    }

    /// Tumbling count windows over the whole stream (Flink's `countWindowAll(size)`).
    pub fn count_window_all(
        &self,
        size: u64,
    ) -> AllWindowedStream<T, GlobalWindows, PurgingTrigger<CountTrigger>>
    where
        T: StateData,
    {
        self.window_all(GlobalWindows::create())
            .trigger(PurgingTrigger::of(CountTrigger::of(size)))
            .checked_count("count_window_all size", size)
    }
}

/// A whole stream cut into windows ([`DataStream::window_all`]; Flink's
/// `AllWindowedStream`): a [`WindowedStream`] whose key is `()`.
pub type AllWindowedStream<T, A, Tr> = WindowedStream<T, (), fn(&T), A, Tr>;

/// A keyed (or `window_all`) stream cut into windows, waiting for its window function
/// (Flink's `WindowedStream`). `A` assigns the windows, `Tr` fires them.
pub struct WindowedStream<T, K, KS, A, Tr> {
    input: DataStream<T>,
    key_of: KS,
    assigner: A,
    trigger: Tr,
    allowed_lateness_ms: i64,
    evict_to_count: Option<usize>,
    late_tag: Option<OutputTag<T>>,
    non_keyed: bool,
    invalid: Option<String>,
    _key: PhantomData<fn() -> K>,
}

impl<T, K, KS, A> WindowedStream<T, K, KS, A, A::Trigger>
where
    T: Data,
    A: WindowAssigner<T>,
{
    fn new(input: DataStream<T>, key_of: KS, assigner: A, non_keyed: bool) -> Self {
        WindowedStream {
            input,
            key_of,
            trigger: assigner.default_trigger(),
            assigner,
            allowed_lateness_ms: 0,
            evict_to_count: None,
            late_tag: None,
            non_keyed,
            invalid: None,
            _key: PhantomData,
        }
    }
}

impl<T, K, KS, A, Tr> WindowedStream<T, K, KS, A, Tr>
where
    T: Data + StateData,
    K: Key + StateData,
    KS: Fn(&T) -> K + Clone + Send + Sync + 'static,
    A: WindowAssigner<T>,
    Tr: Trigger<T, A::Window>,
{
    fn checked_count(mut self, what: &str, count: u64) -> Self {
        if count == 0 && self.invalid.is_none() {
            self.invalid = Some(format!("{what} must be at least 1"));
        }
        self
    }

    /// Fires windows with `trigger` instead of the assigner's default (Flink's
    /// `trigger`).
    pub fn trigger<Tr2: Trigger<T, A::Window>>(
        self,
        trigger: Tr2,
    ) -> WindowedStream<T, K, KS, A, Tr2> {
        WindowedStream {
            input: self.input,
            key_of: self.key_of,
            assigner: self.assigner,
            trigger,
            allowed_lateness_ms: self.allowed_lateness_ms,
            evict_to_count: self.evict_to_count,
            late_tag: self.late_tag,
            non_keyed: self.non_keyed,
            invalid: self.invalid,
            _key: PhantomData,
        }
    }

    /// Keeps event-time windows `lateness` past their end: a late record within it is
    /// added and fires the window again (with the event-time trigger: once per late
    /// record); later records go to the late-data output. Processing-time windows
    /// ignore it (as Flink).
    pub fn allowed_lateness(mut self, lateness: Duration) -> Self {
        self.allowed_lateness_ms = lateness.as_millis().min(i64::MAX as u128) as i64;
        self
    }

    /// Sends records later than the allowed lateness to the side stream `tag` of the
    /// window's result stream (read it with [`DataStream::side_output`]), with their
    /// timestamps. Without it they are dropped, counted and logged (Flink's
    /// `sideOutputLateData`).
    pub fn side_output_late_data(mut self, tag: OutputTag<T>) -> Self {
        self.late_tag = Some(tag);
        self
    }

    /// Reduces each window's records with `reduce(accumulated, next)`, incrementally;
    /// emits the reduced record when the window fires.
    pub fn reduce<F>(self, reduce: F) -> DataStream<T>
    where
        F: FnMut(T, T) -> T + Clone + Send + Sync + 'static,
    {
        self.build("window_reduce", move || ReduceCore(reduce.clone()))
    }

    /// Aggregates each window incrementally with `aggregate` (add per record, merge when
    /// session windows merge); emits the result when the window fires.
    pub fn aggregate<AF>(self, aggregate: AF) -> DataStream<AF::Output>
    where
        AF: AggregateFunction<Input = T>,
        AF::Accumulator: StateData,
        AF::Output: Data,
    {
        let aggregate = Arc::new(aggregate);
        self.build("window_aggregate", move || {
            AggregateCore(Arc::clone(&aggregate))
        })
    }

    /// Aggregates each window incrementally with `aggregate`; when it fires, `process`
    /// gets the single result (a one-element slice), the key and the window (Flink's
    /// `aggregate(AggregateFunction, ProcessWindowFunction)`).
    pub fn aggregate_with<AF, O, F>(self, aggregate: AF, process: F) -> DataStream<O>
    where
        AF: AggregateFunction<Input = T>,
        AF::Accumulator: StateData,
        AF::Output: 'static,
        O: Data,
        F: FnMut(&K, &WindowContext<'_, A::Window>, &[AF::Output], &mut Collector<'_, O>)
            + Clone
            + Send
            + Sync
            + 'static,
    {
        let aggregate = Arc::new(aggregate);
        let process = ProcessWindowFn(process);
        self.build("window_aggregate_process", move || AggregateProcessCore {
            aggregate: Arc::clone(&aggregate),
            function: process.clone(),
            _out: PhantomData,
        })
    }

    /// Keeps every record of a window; when it fires, `process(key, context, records,
    /// out)` gets them all with the window's metadata.
    pub fn process<O, F>(self, process: F) -> DataStream<O>
    where
        O: Data,
        F: FnMut(&K, &WindowContext<'_, A::Window>, &[T], &mut Collector<'_, O>)
            + Clone
            + Send
            + Sync
            + 'static,
    {
        self.process_function(ProcessWindowFn(process))
    }

    /// Runs a [`ProcessWindowFunction`] on every fired window.
    pub fn process_function<O, P>(self, function: P) -> DataStream<O>
    where
        O: Data,
        P: ProcessWindowFunction<K, T, O, A::Window>,
    {
        self.build("window_process", move || ProcessCore {
            function: function.clone(),
            _out: PhantomData,
        })
    }

    fn validate(&self) -> Result<(), String> {
        if let Some(invalid) = &self.invalid {
            return Err(invalid.clone());
        }
        self.assigner.validate()?;
        if self.assigner.is_merging() && !self.trigger.can_merge() {
            return Err(
                "a merging window assigner (sessions) needs a trigger that can merge".to_string(),
            );
        }
        Ok(())
    }

    /// Adds the window operator with the function state `make_core` builds per subtask.
    fn build<C, MC>(self, name: &str, make_core: MC) -> DataStream<C::Out>
    where
        C: WindowCore<K, T, A::Window>,
        C::State: StateData,
        C::Out: Data,
        MC: Fn() -> C + Send + Sync + 'static,
    {
        let valid = self.validate();
        let batch_mode = self.input.config().mode == Mode::Batch;
        let WindowedStream {
            input,
            key_of,
            assigner,
            trigger,
            allowed_lateness_ms,
            evict_to_count,
            late_tag,
            non_keyed,
            ..
        } = self;
        let keyed = input.key_by(key_of.clone());
        let kit = operator_kit::<T, C::Out, _>(move |context, next| {
            valid
                .clone()
                .map_err(|reason| ConnectorError::new(format!("invalid window: {reason}")))?;
            let late = late_output(late_tag, context);
            let clock = Arc::clone(context.clock);
            let operator: Box<dyn Output<T>> = match evict_to_count {
                None => Box::new(
                    WindowOperator::new(
                        key_of.clone(),
                        assigner.clone(),
                        trigger.clone(),
                        make_core(),
                        allowed_lateness_ms,
                        context,
                        clock,
                        batch_mode,
                        next,
                        late,
                    )
                    .restore(context.restored_key_groups()?)?
                    .sorted_input(context.sorted_input),
                ),
                Some(max_count) => Box::new(
                    WindowOperator::new(
                        key_of.clone(),
                        assigner.clone(),
                        trigger.clone(),
                        CountEvictingCore {
                            inner: make_core(),
                            max_count,
                        },
                        allowed_lateness_ms,
                        context,
                        clock,
                        batch_mode,
                        next,
                        late,
                    )
                    .restore(context.restored_key_groups()?)?
                    .sorted_input(context.sorted_input),
                ),
            };
            Ok(operator)
        });
        let name = if non_keyed {
            format!("{name}_all")
        } else {
            name.to_string()
        };
        let stream = keyed.add_sorting_keyed_operator(&name, kit);
        if non_keyed {
            stream.set_parallelism(1)
        } else {
            stream
        }
    }
}

/// Where a window's late records go: the side stream `tag` if the job reads it,
/// otherwise [`DropLate`].
fn late_output<T: Data>(
    tag: Option<OutputTag<T>>,
    context: &BuildContext<'_>,
) -> Box<dyn Output<T>> {
    match (tag, &context.sides) {
        (Some(tag), Some(sides)) => Box::new(LateToSide {
            tag,
            sides: sides.clone(),
        }),
        _ => Box::new(DropLate::new(context.subtask)),
    }
}

/// Late records into a side stream. The operator's main output (wrapped by the
/// runtime) hands side buffers on and forwards control events to them, so this output
/// only appends.
struct LateToSide<T> {
    tag: OutputTag<T>,
    sides: SharedSideOutputs,
}

impl<T: 'static> Output<T> for LateToSide<T> {
    fn push_batch(&mut self, batch: &mut Batch<T>) -> ChainResult {
        let mut sides = self.sides.borrow_mut();
        for (record, timestamp) in batch.drain() {
            sides.emit(&self.tag, record, timestamp);
        }
        Ok(())
    }
    fn watermark(&mut self, _watermark: Timestamp) -> ChainResult {
        Ok(())
    }
    fn idle(&mut self) -> ChainResult {
        Ok(())
    }
    fn end_of_input(&mut self) -> ChainResult {
        Ok(())
    }
    fn poll_time(&mut self, _now: std::time::Instant) -> PollResult {
        Ok(None)
    }
    fn try_drain(&mut self, _now: std::time::Instant) -> bool {
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
        // The main output's wrapper passes markers to the side streams.
        Ok(())
    }
}
