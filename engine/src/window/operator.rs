//! The window operator (Flink's `WindowOperator`): assigns each element of a keyed
//! stream to windows, keeps per-(key, window) state, asks the trigger when to fire and
//! cleans up.
//!
//! Per element: the assigner gives its windows; windows already cleaned up (event time:
//! `max_timestamp + allowed_lateness <= watermark`) are skipped; merging assigners
//! first merge the new window into the key's windows ([`super::merging`]). For each
//! remaining window the trigger's `on_element` decides, the element is added to the
//! window's state (reduced value, accumulator or element list, see
//! [`super::functions`]), the window fires and/or purges as decided, and a cleanup
//! timer is set at `max_timestamp + allowed_lateness` (event time) or `max_timestamp`
//! (processing time). An element that no window took and that is late
//! (`timestamp + allowed_lateness <= watermark`) goes to the *late output* — never
//! dropped silently: by default [`DropLate`] drops it with a warning and a count, and
//! the API routes it to a user stream once side outputs exist.
//!
//! Timers belong to (key, window) and are deduplicated per time
//! ([`TimerService`]); a watermark fires the event-time timers it reaches before it is
//! passed on; processing-time timers fire from [`Output::poll_time`] when the job
//! clock reaches them. A timer at a window's cleanup time drops the window's state.
//!
//! State lives in the subtask's [`KeyedStateBackend`] (table `window-contents`, split
//! by key group): per key, the key's windows sorted by window, each with its contents,
//! its trigger state and a tiny cache of its registered timers, so that the per-element
//! timer registration of the event-time trigger costs no allocation.
//!
//! BATCH mode ignores watermarks until end of input (as Flink's BATCH execution): no
//! element is late, every event-time window fires once, at the end (watermark +∞), and
//! processing-time timers fire at the end too. STREAMING mode fires event-time windows
//! at +∞ as well, but drops pending processing-time windows at end of input (as
//! Flink).
//!
//! *Sorted input* (behind a blocking exchange: BATCH mode, or
//! [`KeyedStream::blocking`](crate::api::KeyedStream::blocking)): records arrive grouped
//! by key hash and the watermark stands still until the end, so a key is complete when
//! the next hash starts. The operator then *finishes* the keys of the previous hash
//! ([`finish_keys`]): it fires their timers as end of input would (event time +∞, then,
//! in BATCH mode, processing time +∞; in time order, each key alone) and drops what is
//! left of their windows and timers. Memory holds the windows of one hash value
//! (usually one key) at a time, and the results are those of the unsorted path: end of
//! input fires each (key, window) with the same state and watermark +∞, and no
//! element is ever late before it.

use std::hash::Hash;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::{Duration, Instant};

use smallvec::SmallVec;

use crate::blocking::SortedKeys;
use crate::checkpoint::{decode, encode, SeqOf, StateData};
use crate::clock::Clock;
use crate::error::{ChainResult, ConnectorError, PollResult};
use crate::graph::BuildContext;
use crate::message::{Batch, Timestamp, NO_TIMESTAMP};
use crate::operators::source::SubtaskInfo;
use crate::output::{Collector, Output};
use crate::partition::{key_hash, KeyGroupResolver};
use crate::state::{KeyGroupedMap, KeyedStateBackend, Stamped};
use crate::timers::{TimeDomain, TimerQueue, TimerService};

use super::assigners::WindowAssigner;
use super::functions::{WindowContext, WindowCore};
use super::merging::plan_merge;
use super::triggers::{TimerRequest, Trigger, TriggerContext};
use super::windows::Window;

/// Name of the window state table in the keyed state backend.
pub(crate) const WINDOW_STATE: &str = "window-contents";

/// Results are handed downstream in buffers of at most about this many records while
/// a watermark fires many windows.
const FLUSH_RECORDS: usize = 1024;

/// The timers a window registered, as far as known: up to two (trigger and cleanup
/// timer). Lets repeated registrations of the same timer skip the timer service (and
/// the key clone it needs). Only ever holds timers that are registered.
#[derive(Debug, Default, Clone, Copy)]
struct TimerCache {
    slots: [Option<(TimeDomain, Timestamp)>; 2],
    next: usize,
}

impl TimerCache {
    #[inline]
    fn contains(&self, domain: TimeDomain, time: Timestamp) -> bool {
        self.slots.contains(&Some((domain, time)))
    }

    #[inline]
    fn insert(&mut self, domain: TimeDomain, time: Timestamp) {
        self.slots[self.next] = Some((domain, time));
        self.next ^= 1;
    }

    #[inline]
    fn remove(&mut self, domain: TimeDomain, time: Timestamp) {
        for slot in &mut self.slots {
            if *slot == Some((domain, time)) {
                *slot = None;
            }
        }
    }
}

/// The state of one (key, window).
pub(crate) struct WindowEntry<S, TS> {
    /// The function's state; `None` when empty or purged.
    contents: Option<S>,
    /// The trigger's state.
    trigger: TS,
    timers: TimerCache,
}

impl<S, TS: Default> Default for WindowEntry<S, TS> {
    fn default() -> Self {
        WindowEntry {
            contents: None,
            trigger: TS::default(),
            timers: TimerCache::default(),
        }
    }
}

/// A key's windows, sorted by window. Inline up to one window (a tumbling window's key
/// has one at a time), so a new key costs no allocation besides its table slot.
type KeyWindows<W, S, TS> = SmallVec<[(W, WindowEntry<S, TS>); 1]>;

/// The window state table: key → the key's windows.
type WindowTable<K, W, S, TS> = KeyGroupedMap<K, Stamped<KeyWindows<W, S, TS>>>;

/// The default late output: drops late records, counts them and says so in the log
/// (Flink drops them into its `numLateRecordsDropped` metric).
pub(crate) struct DropLate {
    operator: String,
    dropped: u64,
}

impl DropLate {
    pub(crate) fn new(subtask: &SubtaskInfo) -> Self {
        DropLate {
            operator: subtask.to_string(),
            dropped: 0,
        }
    }
}

impl<T: 'static> Output<T> for DropLate {
    fn push_batch(&mut self, batch: &mut Batch<T>) -> ChainResult {
        if self.dropped == 0 && !batch.is_empty() {
            tracing::warn!(
                operator = %self.operator,
                "dropping records later than the allowed lateness (route them with side_output_late_data)"
            );
        }
        self.dropped += batch.len() as u64;
        batch.clear();
        Ok(())
    }
    fn watermark(&mut self, _watermark: Timestamp) -> ChainResult {
        Ok(())
    }
    fn idle(&mut self) -> ChainResult {
        Ok(())
    }
    fn end_of_input(&mut self) -> ChainResult {
        if self.dropped > 0 {
            tracing::warn!(operator = %self.operator, late_records_dropped = self.dropped, "late records were dropped");
        }
        Ok(())
    }
    fn poll_time(&mut self, _now: Instant) -> PollResult {
        Ok(None)
    }
    fn try_drain(&mut self, _now: Instant) -> bool {
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
        Ok(())
    }
}

/// What the operator uses while a window's state is borrowed from the table.
struct Windowing<T, K, W, Tr, C: WindowCore<K, T, W>> {
    trigger: Tr,
    core: C,
    timers: TimerService<(K, W)>,
    requests: Vec<TimerRequest>,
    out: Batch<C::Out>,
    watermark: Timestamp,
    now_ms: i64,
    event_time: bool,
    allowed_lateness_ms: i64,
    _elements: PhantomData<fn(T)>,
}

impl<T, K, W, Tr, C> Windowing<T, K, W, Tr, C>
where
    T: 'static,
    K: Hash + Eq + Clone + 'static,
    W: Window,
    Tr: Trigger<T, W>,
    C: WindowCore<K, T, W>,
{
    /// When the window's state is dropped (Flink's `cleanupTime`); `Timestamp::MAX`:
    /// never.
    #[inline]
    fn cleanup_time(&self, window: &W) -> Timestamp {
        if self.event_time {
            window
                .max_timestamp()
                .saturating_add(self.allowed_lateness_ms)
        } else {
            window.max_timestamp()
        }
    }

    /// Whether the window was (or would have been) cleaned up already.
    #[inline]
    fn is_window_late(&self, window: &W) -> bool {
        self.event_time && self.cleanup_time(window) <= self.watermark
    }

    #[inline]
    fn is_element_late(&self, timestamp: Timestamp) -> bool {
        self.event_time && timestamp.saturating_add(self.allowed_lateness_ms) <= self.watermark
    }

    fn queue(&mut self, domain: TimeDomain) -> &mut TimerQueue<(K, W)> {
        match domain {
            TimeDomain::EventTime => &mut self.timers.event,
            TimeDomain::ProcessingTime => &mut self.timers.processing,
        }
    }

    /// Applies the timer requests of the last trigger call to (key, window).
    #[inline]
    fn apply_requests(&mut self, cache: &mut TimerCache, key: &K, window: &W) {
        for index in 0..self.requests.len() {
            match self.requests[index] {
                TimerRequest::Register(domain, time) => {
                    if !cache.contains(domain, time) {
                        self.queue(domain)
                            .register(&(key.clone(), window.clone()), time);
                        cache.insert(domain, time);
                    }
                }
                TimerRequest::Delete(domain, time) => {
                    cache.remove(domain, time);
                    self.queue(domain)
                        .delete(&(key.clone(), window.clone()), time);
                }
            }
        }
        self.requests.clear();
    }

    fn cleanup_domain(&self) -> TimeDomain {
        if self.event_time {
            TimeDomain::EventTime
        } else {
            TimeDomain::ProcessingTime
        }
    }

    #[inline]
    fn register_cleanup_timer(&mut self, cache: &mut TimerCache, key: &K, window: &W) {
        let time = self.cleanup_time(window);
        if time == Timestamp::MAX {
            return;
        }
        let domain = self.cleanup_domain();
        if !cache.contains(domain, time) {
            self.queue(domain)
                .register(&(key.clone(), window.clone()), time);
            cache.insert(domain, time);
        }
    }

    fn emit(&mut self, key: &K, window: &W, state: &mut C::State) {
        let context = WindowContext {
            window,
            watermark: self.watermark,
            processing_time_ms: self.now_ms,
        };
        let mut out = Collector::new(&mut self.out, window.max_timestamp());
        self.core.emit(key, &context, state, &mut out);
    }

    /// Adds `element` to `window` of `key`, fires and purges as the trigger says.
    #[inline]
    fn add_element(
        &mut self,
        entry: &mut WindowEntry<C::State, Tr::State>,
        key: &K,
        window: &W,
        element: T,
        timestamp: Timestamp,
    ) {
        let mut context = TriggerContext::new(self.watermark, self.now_ms, &mut self.requests);
        let result = self.trigger.on_element(
            &element,
            timestamp,
            window,
            &mut entry.trigger,
            &mut context,
        );
        self.apply_requests(&mut entry.timers, key, window);
        self.core.add(&mut entry.contents, element);
        if result.is_fire() {
            if let Some(state) = entry.contents.as_mut() {
                self.emit(key, window, state);
            }
        }
        if result.is_purge() {
            entry.contents = None;
        }
        self.register_cleanup_timer(&mut entry.timers, key, window);
    }

    /// Moves the state of `merged` (merged away) into `target` (window `result`).
    fn merge_window(
        &mut self,
        key: &K,
        result: &W,
        target: &mut WindowEntry<C::State, Tr::State>,
        merged: &W,
        mut entry: WindowEntry<C::State, Tr::State>,
    ) {
        if let Some(contents) = entry.contents.take() {
            self.core.merge(&mut target.contents, contents);
        }
        let mut context = TriggerContext::new(self.watermark, self.now_ms, &mut self.requests);
        self.trigger
            .on_merge(result, &mut target.trigger, &entry.trigger, &mut context);
        self.apply_requests(&mut target.timers, key, result);
        let mut context = TriggerContext::new(self.watermark, self.now_ms, &mut self.requests);
        self.trigger.clear(merged, &mut entry.trigger, &mut context);
        self.apply_requests(&mut entry.timers, key, merged);
        let cleanup = self.cleanup_time(merged);
        if cleanup != Timestamp::MAX {
            let domain = self.cleanup_domain();
            self.queue(domain)
                .delete(&(key.clone(), merged.clone()), cleanup);
        }
    }

    /// A timer of (key, window) fired; returns whether the window is to be dropped.
    fn on_timer(
        &mut self,
        domain: TimeDomain,
        time: Timestamp,
        key: &K,
        window: &W,
        entry: &mut WindowEntry<C::State, Tr::State>,
    ) -> bool {
        entry.timers.remove(domain, time);
        let mut context = TriggerContext::new(self.watermark, self.now_ms, &mut self.requests);
        let result = match domain {
            TimeDomain::EventTime => {
                self.trigger
                    .on_event_time(time, window, &mut entry.trigger, &mut context)
            }
            TimeDomain::ProcessingTime => {
                self.trigger
                    .on_processing_time(time, window, &mut entry.trigger, &mut context)
            }
        };
        self.apply_requests(&mut entry.timers, key, window);
        if result.is_fire() {
            if let Some(state) = entry.contents.as_mut() {
                self.emit(key, window, state);
            }
        }
        if result.is_purge() {
            entry.contents = None;
        }
        let cleanup = domain == self.cleanup_domain() && time == self.cleanup_time(window);
        if cleanup {
            let mut context = TriggerContext::new(self.watermark, self.now_ms, &mut self.requests);
            self.trigger.clear(window, &mut entry.trigger, &mut context);
            self.apply_requests(&mut entry.timers, key, window);
        }
        cleanup
    }
}

/// The windows of `key`, created empty if it has none (one hash probe).
#[inline]
fn key_windows<'a, K: Hash + Eq + Clone, V: Default>(
    table: &'a mut KeyGroupedMap<K, Stamped<V>>,
    group: usize,
    key: &K,
) -> &'a mut V {
    let fresh = || Stamped {
        value: V::default(),
        touched_ms: 0,
    };
    if !std::mem::needs_drop::<K>() {
        // A key without drop glue owns no heap memory, so cloning it costs nothing:
        // one probe with `entry`.
        return &mut table.entry(group, key.clone()).or_insert_with(fresh).value;
    }
    // A key that may own heap memory (a `String`) is cloned only when it is new: an
    // existing key (the common case) costs a second probe, never an allocation.
    if table.get(group, key).is_none() {
        table.insert(group, key.clone(), fresh());
    }
    &mut table.get_mut(group, key).expect("inserted above").value
}

/// The entry of `window`, created empty if absent.
#[inline]
fn window_entry<'a, W: Ord + Clone, E: Default>(
    windows: &'a mut SmallVec<[(W, E); 1]>,
    window: &W,
) -> &'a mut E {
    let index = match windows.binary_search_by(|(w, _)| w.cmp(window)) {
        Ok(index) => index,
        Err(index) => {
            windows.insert(index, (window.clone(), E::default()));
            index
        }
    };
    &mut windows[index].1
}

/// Fires the timers of `domain` due at `time` in time order, emitting into `next` in
/// buffers of about [`FLUSH_RECORDS`] (the rest stays in `windowing.out`).
fn fire_due<T, K, W, Tr, C>(
    table: &mut WindowTable<K, W, C::State, Tr::State>,
    windowing: &mut Windowing<T, K, W, Tr, C>,
    key_groups: KeyGroupResolver,
    next: &mut dyn Output<C::Out>,
    domain: TimeDomain,
    time: Timestamp,
) -> ChainResult
where
    T: 'static,
    K: Hash + Eq + Clone + 'static,
    W: Window,
    Tr: Trigger<T, W>,
    C: WindowCore<K, T, W>,
{
    while let Some((when, (key, window))) = windowing.queue(domain).pop_due(time) {
        let group = key_groups.of(&key);
        let Some(windows) = table.get_mut(group, &key) else {
            continue;
        };
        let windows = &mut windows.value;
        let Ok(index) = windows.binary_search_by(|(w, _)| w.cmp(&window)) else {
            continue;
        };
        if windowing.on_timer(domain, when, &key, &window, &mut windows[index].1) {
            windows.remove(index);
            if windows.is_empty() {
                table.remove(group, &key);
            }
        }
        if windowing.out.len() >= FLUSH_RECORDS {
            next.push_batch(&mut windowing.out)?;
        }
    }
    Ok(())
}

/// Sorted input: the keys held (all in key group `group`, as they share a hash) are
/// complete. Fires their windows as end of input does — every event-time timer at
/// watermark +∞, then in BATCH mode every processing-time timer — and drops what is
/// left (windows that never fire, e.g. global windows, and their timers). The watermark
/// goes back to where it stood, so the next key's elements are not late. Returns how
/// many keys were held.
fn finish_keys<T, K, W, Tr, C>(
    table: &mut WindowTable<K, W, C::State, Tr::State>,
    windowing: &mut Windowing<T, K, W, Tr, C>,
    key_groups: KeyGroupResolver,
    next: &mut dyn Output<C::Out>,
    group: usize,
    batch_mode: bool,
) -> Result<usize, ConnectorError>
where
    T: 'static,
    K: Hash + Eq + Clone + 'static,
    W: Window,
    Tr: Trigger<T, W>,
    C: WindowCore<K, T, W>,
{
    let keys = table.group_entries(group).len();
    let watermark = std::mem::replace(&mut windowing.watermark, Timestamp::MAX);
    let mut fired = fire_due(
        table,
        windowing,
        key_groups,
        next,
        TimeDomain::EventTime,
        Timestamp::MAX,
    );
    if fired.is_ok() && batch_mode {
        fired = fire_due(
            table,
            windowing,
            key_groups,
            next,
            TimeDomain::ProcessingTime,
            Timestamp::MAX,
        );
    }
    windowing.watermark = watermark;
    fired?;
    windowing.timers.event.clear();
    windowing.timers.processing.clear();
    let entries = table.group_entries_mut(group);
    if !entries.is_empty() {
        entries.clear();
    }
    Ok(keys)
}

/// What the operator needs to assign an element to its windows.
struct Assigning<KS, A, W> {
    key_of: KS,
    assigner: A,
    merging: bool,
    key_groups: KeyGroupResolver,
    /// The windows of the element at hand.
    assigned: Vec<W>,
}

impl<KS, A, W> Assigning<KS, A, W>
where
    W: Window,
{
    /// Adds an element of `key` (in key group `group`) to its windows; returns it if no
    /// window took it.
    #[allow(clippy::too_many_arguments)]
    fn process_element<T, K, Tr, C>(
        &mut self,
        table: &mut WindowTable<K, W, C::State, Tr::State>,
        windowing: &mut Windowing<T, K, W, Tr, C>,
        key: K,
        group: usize,
        element: T,
        timestamp: Timestamp,
    ) -> Option<T>
    where
        T: Clone + 'static,
        A: WindowAssigner<T, Window = W>,
        K: Hash + Eq + Clone + 'static,
        KS: Fn(&T) -> K,
        Tr: Trigger<T, W>,
        C: WindowCore<K, T, W>,
    {
        self.assigned.clear();
        self.assigner
            .assign_windows(&element, timestamp, windowing.now_ms, &mut self.assigned);
        if !self.merging {
            self.assigned
                .retain(|window| !windowing.is_window_late(window));
            let (last, rest) = match self.assigned.split_last() {
                Some(split) => split,
                None => return Some(element),
            };
            let windows = key_windows(table, group, &key);
            for window in rest {
                let entry = window_entry(windows, window);
                windowing.add_element(entry, &key, window, element.clone(), timestamp);
            }
            let entry = window_entry(windows, last);
            windowing.add_element(entry, &key, last, element, timestamp);
            return None;
        }
        let mut element = Some(element);
        let mut accepted = false;
        let count = self.assigned.len();
        for (index, new) in self.assigned.iter().enumerate() {
            let plan = match table.get(group, &key) {
                Some(windows) => plan_merge(&windows.value, new),
                None => plan_merge::<_, ()>(&[], new),
            };
            if windowing.is_window_late(&plan.result) {
                continue;
            }
            let windows = key_windows(table, group, &key);
            if !plan.existing {
                let mut target = WindowEntry::default();
                for (window, entry) in windows.drain(plan.merged.clone()) {
                    windowing.merge_window(&key, &plan.result, &mut target, &window, entry);
                }
                windows.insert(plan.index, (plan.result.clone(), target));
            }
            let value = match (index + 1 == count, &mut element) {
                (true, slot) => slot.take(),
                (false, slot) => slot.clone(),
            };
            if let Some(value) = value {
                accepted = true;
                let entry = &mut windows[plan.index].1;
                windowing.add_element(entry, &key, &plan.result, value, timestamp);
            }
        }
        if accepted {
            None
        } else {
            element
        }
    }
}

/// The window operator (see the module documentation).
pub(crate) struct WindowOperator<T, K, KS, A, Tr, C>
where
    A: WindowAssigner<T>,
    C: WindowCore<K, T, A::Window>,
{
    assigning: Assigning<KS, A, A::Window>,
    backend: KeyedStateBackend<K>,
    windowing: Windowing<T, K, A::Window, Tr, C>,
    clock: Arc<dyn Clock>,
    batch_mode: bool,
    /// Sorted input (behind a blocking exchange): the key hash at hand.
    sorted: Option<SortedKeys>,
    late_out: Batch<T>,
    late: Box<dyn Output<T>>,
    next: Box<dyn Output<C::Out>>,
    /// `operator (subtask/parallelism)`, for errors.
    name: String,
    /// The stable id its state is stored under in checkpoints.
    operator_id: String,
}

impl<T, K, KS, A, Tr, C> WindowOperator<T, K, KS, A, Tr, C>
where
    T: Clone + 'static,
    K: Hash + Eq + Clone + 'static,
    KS: Fn(&T) -> K + 'static,
    A: WindowAssigner<T>,
    Tr: Trigger<T, A::Window>,
    C: WindowCore<K, T, A::Window>,
{
    /// A window operator for one subtask. Late records go to `late`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        key_of: KS,
        assigner: A,
        trigger: Tr,
        core: C,
        allowed_lateness_ms: i64,
        context: &BuildContext<'_>,
        clock: Arc<dyn Clock>,
        batch_mode: bool,
        next: Box<dyn Output<C::Out>>,
        late: Box<dyn Output<T>>,
    ) -> Self {
        let subtask = context.subtask;
        let backend =
            KeyedStateBackend::new(subtask.index, subtask.parallelism, context.max_parallelism);
        WindowOperator {
            windowing: Windowing {
                trigger,
                core,
                timers: TimerService::new(),
                requests: Vec::new(),
                out: Batch::new(),
                watermark: Timestamp::MIN,
                now_ms: 0,
                event_time: assigner.is_event_time(),
                allowed_lateness_ms: allowed_lateness_ms.max(0),
                _elements: PhantomData,
            },
            assigning: Assigning {
                key_of,
                merging: assigner.is_merging(),
                assigner,
                key_groups: KeyGroupResolver::new(context.max_parallelism),
                assigned: Vec::new(),
            },
            backend,
            clock,
            batch_mode,
            sorted: None,
            late_out: Batch::new(),
            late,
            next,
            name: subtask.to_string(),
            operator_id: context.operator_id.to_owned(),
        }
    }

    fn table(
        backend: &mut KeyedStateBackend<K>,
    ) -> &mut WindowTable<K, A::Window, C::State, Tr::State> {
        &mut backend
            .table::<KeyWindows<A::Window, C::State, Tr::State>>(WINDOW_STATE, None)
            .map
    }

    /// Fires the timers of `domain` due at `time`, in time order.
    fn fire_timers(&mut self, domain: TimeDomain, time: Timestamp) -> ChainResult {
        fire_due(
            Self::table(&mut self.backend),
            &mut self.windowing,
            self.assigning.key_groups,
            &mut *self.next,
            domain,
            time,
        )
    }

    /// Reads the input sorted by key hash (behind a blocking exchange): holds one hash's
    /// keys at a time (see the module documentation). Call after `restore`: an
    /// operator that restored windows keeps every key until end of input (finishing a
    /// key drops the timers of all keys held).
    pub(crate) fn sorted_input(mut self, sorted: bool) -> Self {
        let restored = Self::table(&mut self.backend).len() > 0
            || self.windowing.timers.event.registered().next().is_some()
            || self
                .windowing
                .timers
                .processing
                .registered()
                .next()
                .is_some();
        self.sorted = (sorted && !restored).then(SortedKeys::default);
        self
    }

    /// Keys whose windows the operator holds now.
    #[cfg(test)]
    fn live_keys(&mut self) -> usize {
        Self::table(&mut self.backend).len()
    }

    fn advance_watermark(&mut self, watermark: Timestamp) -> ChainResult {
        self.windowing.now_ms = self.clock.wall_millis();
        self.windowing.watermark = self.windowing.watermark.max(watermark);
        self.fire_timers(TimeDomain::EventTime, watermark)
    }

    fn flush(&mut self) -> ChainResult {
        if !self.windowing.out.is_empty() {
            self.next.push_batch(&mut self.windowing.out)?;
        }
        if !self.late_out.is_empty() {
            self.late.push_batch(&mut self.late_out)?;
        }
        Ok(())
    }
}

/// One key group of a window operator in a checkpoint: each key's windows (window,
/// contents, trigger state), then the event-time and processing-time timers.
type WindowGroup<K, W, S, TS> = (
    Vec<(K, Vec<(W, Option<S>, TS)>)>,
    Vec<(Timestamp, (K, W))>,
    Vec<(Timestamp, (K, W))>,
);

impl<T, K, KS, A, Tr, C> WindowOperator<T, K, KS, A, Tr, C>
where
    T: Clone + 'static,
    K: Hash + Eq + Clone + StateData,
    KS: Fn(&T) -> K + 'static,
    A: WindowAssigner<T>,
    Tr: Trigger<T, A::Window>,
    C: WindowCore<K, T, A::Window>,
    C::State: StateData,
{
    /// Takes the windows of this subtask's key groups from a checkpoint.
    pub(crate) fn restore(mut self, groups: Vec<(usize, &[u8])>) -> Result<Self, ConnectorError> {
        let key_groups = self.assigning.key_groups;
        for (group, bytes) in groups {
            let (keys, event, processing): WindowGroup<K, A::Window, C::State, Tr::State> =
                decode(bytes)?;
            let table = Self::table(&mut self.backend);
            let entries = table.group_entries_mut(group);
            for (key, windows) in keys {
                let windows: KeyWindows<A::Window, C::State, Tr::State> = windows
                    .into_iter()
                    .map(|(window, contents, trigger)| {
                        (
                            window,
                            WindowEntry {
                                contents,
                                trigger,
                                timers: TimerCache::default(),
                            },
                        )
                    })
                    .collect();
                entries.insert(
                    key,
                    Stamped {
                        value: windows,
                        touched_ms: 0,
                    },
                );
            }
            for (time, (key, window)) in event {
                debug_assert_eq!(key_groups.of(&key), group);
                self.windowing.timers.event.register(&(key, window), time);
            }
            for (time, (key, window)) in processing {
                self.windowing
                    .timers
                    .processing
                    .register(&(key, window), time);
            }
        }
        Ok(self)
    }

    fn snapshot(&mut self) -> Result<Vec<(u32, Vec<u8>)>, ConnectorError> {
        type Timers<'a, K, W> = (Vec<(Timestamp, &'a (K, W))>, Vec<(Timestamp, &'a (K, W))>);
        let key_groups = self.assigning.key_groups;
        let mut timers: std::collections::HashMap<usize, Timers<'_, K, A::Window>> =
            std::collections::HashMap::new();
        for (entry, time) in self.windowing.timers.event.registered() {
            timers
                .entry(key_groups.of(&entry.0))
                .or_default()
                .0
                .push((time, entry));
        }
        for (entry, time) in self.windowing.timers.processing.registered() {
            timers
                .entry(key_groups.of(&entry.0))
                .or_default()
                .1
                .push((time, entry));
        }
        let table = &self
            .backend
            .table::<KeyWindows<A::Window, C::State, Tr::State>>(WINDOW_STATE, None)
            .map;
        let mut groups = Vec::new();
        for group in table.key_groups() {
            let entries = table.group_entries(group);
            let (event, processing) = timers.remove(&group).unwrap_or_default();
            if entries.is_empty() && event.is_empty() && processing.is_empty() {
                continue;
            }
            let keys = SeqOf::new(entries.iter().map(|(key, stamped)| {
                (
                    key,
                    SeqOf::new(
                        stamped
                            .value
                            .iter()
                            .map(|(window, entry)| (window, &entry.contents, &entry.trigger)),
                    ),
                )
            }));
            groups.push((group as u32, encode(&(keys, event, processing))?));
        }
        Ok(groups)
    }
}

impl<T, K, KS, A, Tr, C> Output<T> for WindowOperator<T, K, KS, A, Tr, C>
where
    T: Clone + 'static,
    K: Hash + Eq + Clone + StateData,
    C::State: StateData,
    KS: Fn(&T) -> K + 'static,
    A: WindowAssigner<T>,
    Tr: Trigger<T, A::Window>,
    C: WindowCore<K, T, A::Window>,
{
    fn push_batch(&mut self, batch: &mut Batch<T>) -> ChainResult {
        self.windowing.now_ms = self.clock.wall_millis();
        let event_time = self.windowing.event_time;
        // The window table is looked up once per buffer, not per record.
        let table = Self::table(&mut self.backend);
        let windowing = &mut self.windowing;
        let key_groups = self.assigning.key_groups;
        for (element, timestamp) in batch.drain() {
            if event_time && timestamp == NO_TIMESTAMP {
                return Err(ConnectorError::new(
                    "an event-time window got a record without timestamp: assign timestamps \
                     (assign_timestamps_and_watermarks) or use a processing-time window",
                ));
            }
            let key = (self.assigning.key_of)(&element);
            let hash = key_hash(&key);
            let group = key_groups.of_hash(hash);
            if let Some(sorted) = &mut self.sorted {
                if let Some(previous) = sorted.advance(hash) {
                    let keys = finish_keys(
                        table,
                        windowing,
                        key_groups,
                        &mut *self.next,
                        key_groups.of_hash(previous),
                        self.batch_mode,
                    )?;
                    sorted.finished(keys);
                }
            }
            if let Some(skipped) = self
                .assigning
                .process_element(table, windowing, key, group, element, timestamp)
            {
                if windowing.is_element_late(timestamp) {
                    self.late_out.push_at(skipped, timestamp);
                }
                // Otherwise it fell between windows (a slide larger than the size).
            }
        }
        self.flush()
    }

    fn watermark(&mut self, watermark: Timestamp) -> ChainResult {
        if self.batch_mode && watermark < Timestamp::MAX {
            // BATCH: event time stands still until the end of input.
            return Ok(());
        }
        self.advance_watermark(watermark)?;
        self.flush()?;
        self.late.watermark(watermark)?;
        self.next.watermark(watermark)
    }

    fn idle(&mut self) -> ChainResult {
        self.late.idle()?;
        self.next.idle()
    }

    fn end_of_input(&mut self) -> ChainResult {
        if let Some(sorted) = &self.sorted {
            tracing::debug!(
                operator = %self.name,
                keys_finished_early = sorted.keys_finished,
                keys_held_max = sorted.keys_held_max,
                "sorted window input"
            );
        }
        if self.windowing.watermark < Timestamp::MAX {
            self.advance_watermark(Timestamp::MAX)?;
        }
        if self.batch_mode {
            self.fire_timers(TimeDomain::ProcessingTime, i64::MAX)?;
        }
        self.flush()?;
        self.late.end_of_input()?;
        self.next.end_of_input()
    }

    fn poll_time(&mut self, now: Instant) -> PollResult {
        let mut earliest = self.next.poll_time(now)?;
        if let Some(late) = self.late.poll_time(now)? {
            earliest = Some(earliest.map_or(late, |e| e.min(late)));
        }
        let Some(first) = self.windowing.timers.processing.next_time() else {
            return Ok(earliest);
        };
        let wall_ms = self.clock.wall_millis();
        if first <= wall_ms {
            self.windowing.now_ms = wall_ms;
            self.fire_timers(TimeDomain::ProcessingTime, wall_ms)?;
            self.flush()?;
        }
        if let Some(next) = self.windowing.timers.processing.next_time() {
            let wait_ms = next.saturating_sub(wall_ms).max(0) as u64;
            let mine = now + Duration::from_millis(wait_ms.min(3_600_000));
            earliest = Some(earliest.map_or(mine, |e| e.min(mine)));
        }
        Ok(earliest)
    }

    fn try_drain(&mut self, now: Instant) -> bool {
        let late = self.late.try_drain(now);
        self.next.try_drain(now) && late
    }

    fn barrier(
        &mut self,
        barrier: crate::checkpoint::Barrier,
        snapshot: &mut crate::checkpoint::TaskSnapshot,
    ) -> ChainResult {
        // Anything ready is emitted before the barrier passes.
        self.flush()?;
        let groups = self.snapshot().map_err(|error| {
            ConnectorError::new(format!("window operator {}: {error}", self.name))
        })?;
        snapshot.add(&self.operator_id, groups, Vec::new());
        self.late.barrier(barrier, snapshot)?;
        self.next.barrier(barrier, snapshot)
    }

    fn checkpoint_complete(&mut self, id: u64) -> ChainResult {
        self.late.checkpoint_complete(id)?;
        self.next.checkpoint_complete(id)
    }

    fn latency_marker(&mut self, marker: crate::latency::LatencyMarker) -> ChainResult {
        // Behind what is ready, not behind the windows' contents (as in Flink).
        self.flush()?;
        self.late.latency_marker(marker)?;
        self.next.latency_marker(marker)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::output::testing::{Capture, Event};
    use crate::window::assigners::{EventTimeSessionWindows, TumblingEventTimeWindows};
    use crate::window::functions::ReduceCore;
    use std::cell::RefCell;
    use std::rc::Rc;

    type Record = (u32, i64);

    /// `keys` keys with records spread over a few windows each, in the order a blocking
    /// exchange delivers them: sorted by key hash, each key's records in input order.
    fn sorted_records(keys: u32) -> Vec<(Record, Timestamp)> {
        let mut records: Vec<(Record, Timestamp)> = (0..keys)
            .flat_map(|key| {
                (0..9i64).map(move |i| {
                    let timestamp = (i * 7 + i64::from(key) * 3) % 50;
                    ((key, i + 1), timestamp)
                })
            })
            .collect();
        records.sort_by_key(|((key, _), _)| key_hash(key));
        records
    }

    /// Runs a BATCH window operator summing values per window over `records` in
    /// buffers of 7 (so keys change inside a buffer); returns what it emitted, sorted,
    /// and the most keys it held after a buffer.
    fn run<A>(
        assigner: A,
        sorted: bool,
        records: &[(Record, Timestamp)],
    ) -> (Vec<(Record, Timestamp)>, usize)
    where
        A: WindowAssigner<Record>,
    {
        let info = SubtaskInfo {
            job: "t".into(),
            operator: "window".into(),
            index: 0,
            parallelism: 1,
        };
        let clock: Arc<dyn Clock> = Arc::new(ManualClock::new());
        let counters = Arc::new(vec![std::sync::atomic::AtomicU64::new(0)]);
        let context = BuildContext {
            subtask: &info,
            clock: &clock,
            sides: None,
            max_parallelism: 128,
            operator_id: "window",
            restored: None,
            sorted_input: sorted,
            records: (&counters, 0),
        };
        let events = Rc::new(RefCell::new(Vec::new()));
        let trigger = assigner.default_trigger();
        let mut operator = WindowOperator::new(
            |record: &Record| record.0,
            assigner,
            trigger,
            ReduceCore(|a: Record, b: Record| (a.0, a.1 + b.1)),
            5,
            &context,
            Arc::clone(&clock),
            true,
            Box::new(Capture(Rc::clone(&events))),
            Box::new(DropLate::new(&info)),
        )
        .sorted_input(sorted);
        let mut live_max = 0;
        for chunk in records.chunks(7) {
            let mut batch = Batch::new();
            for &(record, timestamp) in chunk {
                batch.push_at(record, timestamp);
            }
            operator.push_batch(&mut batch).unwrap();
            // BATCH: watermarks below +∞ change nothing.
            operator.watermark(1_000).unwrap();
            live_max = live_max.max(operator.live_keys());
        }
        operator.watermark(Timestamp::MAX).unwrap();
        operator.end_of_input().unwrap();
        assert_eq!(operator.live_keys(), 0, "end of input drops every window");
        let mut emitted: Vec<(Record, Timestamp)> = events
            .borrow()
            .iter()
            .filter_map(|event| match event {
                Event::Record(record, timestamp) => Some((*record, *timestamp)),
                _ => None,
            })
            .collect();
        emitted.sort();
        (emitted, live_max)
    }

    #[test]
    fn latency_markers_pass_the_windows_contents_but_not_fired_results() {
        let info = SubtaskInfo {
            job: "t".into(),
            operator: "window".into(),
            index: 0,
            parallelism: 1,
        };
        let clock: Arc<dyn Clock> = Arc::new(ManualClock::new());
        let counters = Arc::new(vec![std::sync::atomic::AtomicU64::new(0)]);
        let context = BuildContext {
            subtask: &info,
            clock: &clock,
            sides: None,
            max_parallelism: 128,
            operator_id: "window",
            restored: None,
            sorted_input: false,
            records: (&counters, 0),
        };
        let events = Rc::new(RefCell::new(Vec::new()));
        let assigner = TumblingEventTimeWindows::of(Duration::from_millis(10));
        let trigger = WindowAssigner::<Record>::default_trigger(&assigner);
        let mut operator = WindowOperator::new(
            |record: &Record| record.0,
            assigner,
            trigger,
            ReduceCore(|a: Record, b: Record| (a.0, a.1 + b.1)),
            5,
            &context,
            Arc::clone(&clock),
            false,
            Box::new(Capture(Rc::clone(&events))),
            Box::new(DropLate::new(&info)),
        );
        let marker = |subtask| crate::latency::LatencyMarker {
            marked: clock.now(),
            source_vertex: 0,
            subtask,
        };
        let mut batch = Batch::new();
        batch.push_at((1, 2), 3);
        batch.push_at((1, 5), 4);
        batch.push_at((1, 7), 15);
        operator.push_batch(&mut batch).unwrap();
        // The windows hold their records: the marker does not wait for them.
        operator.latency_marker(marker(1)).unwrap();
        assert_eq!(&*events.borrow(), &[Event::Marker(1)]);
        operator.watermark(9).unwrap();
        operator.latency_marker(marker(2)).unwrap();
        // [0, 10) fired before the watermark passed on; the marker follows both.
        assert_eq!(
            &events.borrow()[1..],
            &[
                Event::Record((1, 7), 9),
                Event::Watermark(9),
                Event::Marker(2)
            ]
        );
    }

    #[test]
    fn sorted_tumbling_windows_hold_one_key_and_emit_the_same_windows() {
        let records = sorted_records(300);
        let assigner = || TumblingEventTimeWindows::of(Duration::from_millis(10));
        let (all_keys, all_live) = run(assigner(), false, &records);
        let (one_key, one_live) = run(assigner(), true, &records);
        assert_eq!(one_key, all_keys);
        assert!(!one_key.is_empty());
        assert_eq!(all_live, 300, "unsorted: every key is held until the end");
        assert_eq!(one_live, 1, "sorted: one key at a time");
    }

    #[test]
    fn sorted_session_windows_hold_one_key_and_emit_the_same_sessions() {
        let records = sorted_records(300);
        let assigner = || EventTimeSessionWindows::with_gap(Duration::from_millis(4));
        let (all_keys, all_live) = run(assigner(), false, &records);
        let (one_key, one_live) = run(assigner(), true, &records);
        assert_eq!(one_key, all_keys);
        assert_eq!(all_live, 300);
        assert_eq!(one_live, 1);
    }
}
