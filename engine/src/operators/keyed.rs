//! Operators on keyed streams: rolling `reduce`, and `process` with keyed state and
//! timers (Flink's `KeyedProcessFunction`).
//!
//! A subtask sees exactly the keys of its key-group range. In STREAMING mode `reduce`
//! emits the updated value for every input record (Flink's rolling reduce); in BATCH
//! mode it emits one final value per key at end of input.
//!
//! The process operator fires event-time timers when the watermark reaches them (before
//! it forwards the watermark) and processing-time timers when the job's clock does; at
//! end of input the watermark is +∞, so every event-time timer fires (and, in BATCH
//! mode, every processing-time timer too).

use std::hash::Hash;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::forward_control_hooks;
use crate::blocking::SortedKeys;
use crate::checkpoint::{
    decode, decode_prefix, encode, encode_into, Barrier, GroupRef, RestoredState, SeqOf, StateData,
    TaskSnapshot,
};
use crate::clock::Clock;
use crate::error::{ChainResult, PollResult};
use crate::graph::BuildContext;
use crate::message::{Batch, Timestamp, NO_TIMESTAMP};
use crate::operators::source::SubtaskInfo;
use crate::output::{Collector, Output};
use crate::partition::{key_group_range, key_hash, KeyGroupResolver};
use crate::side::{OutputTag, SharedSideOutputs};
use crate::state::handles::Slot;
use crate::state::{
    AggregateFunction, AggregatingState, AggregatingStateDescriptor, KeyGroupedMap,
    KeyedStateBackend, ListState, ListStateDescriptor, MapState, MapStateDescriptor, ReducingState,
    ReducingStateDescriptor, StateTtl, ValueState, ValueStateDescriptor,
};
use crate::timers::{TimeDomain, TimerService};

/// Rolling reduce per key.
pub(crate) struct ReduceOperator<T, K, KS, F> {
    key_of: KS,
    reduce: F,
    key_groups: KeyGroupResolver,
    state: KeyGroupedMap<K, Option<T>>,
    emit_updates: bool,
    scratch: Batch<T>,
    next: Box<dyn Output<T>>,
    operator_id: String,
    /// BATCH mode behind a blocking exchange: the input comes sorted by key hash, so
    /// only the keys of the current hash are kept, and emitted when the hash changes.
    sorted: Option<SortedRun<K, T>>,
}

/// The keys of one hash value (usually one key) of a sorted input.
struct SortedRun<K, T> {
    hash: Option<u64>,
    /// (key, accumulator); the accumulator is `None` only while being reduced.
    entries: smallvec::SmallVec<[(K, Option<T>); 1]>,
}

impl<T, K, KS, F> ReduceOperator<T, K, KS, F> {
    pub(crate) fn new(
        key_of: KS,
        reduce: F,
        subtask: &SubtaskInfo,
        max_parallelism: usize,
        emit_updates: bool,
        next: Box<dyn Output<T>>,
    ) -> Self
    where
        K: Hash + Eq,
    {
        let key_groups = KeyGroupResolver::new(max_parallelism);
        ReduceOperator {
            operator_id: String::new(),
            sorted: None,
            key_of,
            reduce,
            state: KeyGroupedMap::new(key_group_range(
                subtask.index,
                max_parallelism,
                subtask.parallelism,
            )),
            key_groups,
            emit_updates,
            scratch: Batch::new(),
            next,
        }
    }
}

impl<T, K, KS, F> ReduceOperator<T, K, KS, F>
where
    T: StateData,
    K: StateData + Hash + Eq,
{
    /// Reads its input sorted by key (BATCH mode behind a blocking exchange): keeps
    /// one key at a time.
    pub(crate) fn sorted_input(mut self, sorted: bool) -> Self {
        if sorted && !self.emit_updates {
            self.sorted = Some(SortedRun {
                hash: None,
                entries: smallvec::SmallVec::new(),
            });
        }
        self
    }

    /// Takes the operator's state from a checkpoint (its key groups' entries).
    pub(crate) fn restore(
        mut self,
        operator_id: &str,
        groups: Vec<(usize, &[u8])>,
    ) -> Result<Self, crate::error::ConnectorError> {
        self.operator_id = operator_id.to_owned();
        for (group, bytes) in groups {
            let entries: Vec<(K, T)> = decode(bytes)?;
            let map = self.state.group_entries_mut(group);
            map.extend(entries.into_iter().map(|(key, value)| (key, Some(value))));
        }
        Ok(self)
    }
}

impl<T, K, KS, F> Output<T> for ReduceOperator<T, K, KS, F>
where
    T: Clone + StateData,
    K: Hash + Eq + StateData,
    KS: Fn(&T) -> K + 'static,
    F: FnMut(T, T) -> T + 'static,
{
    fn push_batch(&mut self, batch: &mut Batch<T>) -> ChainResult {
        if let Some(run) = &mut self.sorted {
            for record in batch.drain_values() {
                let key = (self.key_of)(&record);
                let hash = crate::partition::key_hash(&key);
                if run.hash != Some(hash) {
                    // The previous keys are complete: emit them.
                    for (_, value) in run.entries.drain(..) {
                        self.scratch
                            .push(value.expect("reduce state is never left empty"));
                    }
                    run.hash = Some(hash);
                }
                match run.entries.iter_mut().find(|(k, _)| *k == key) {
                    Some((_, slot)) => {
                        let accumulator = slot.take().expect("reduce state is never left empty");
                        *slot = Some((self.reduce)(accumulator, record));
                    }
                    None => run.entries.push((key, Some(record))),
                }
            }
            if self.scratch.len() >= 1024 {
                self.next.push_batch(&mut self.scratch)?;
            }
            return Ok(());
        }
        for (record, timestamp) in batch.drain() {
            let key = (self.key_of)(&record);
            let group = self.key_groups.of(&key);
            match self.state.get_mut(group, &key) {
                Some(slot) => {
                    let accumulator = slot.take().expect("reduce state is never left empty");
                    let reduced = (self.reduce)(accumulator, record);
                    if self.emit_updates {
                        self.scratch.push_at(reduced.clone(), timestamp);
                    }
                    *slot = Some(reduced);
                }
                None => {
                    if self.emit_updates {
                        self.scratch.push_at(record.clone(), timestamp);
                    }
                    self.state.insert(group, key, Some(record));
                }
            }
        }
        if self.scratch.is_empty() {
            return Ok(());
        }
        self.next.push_batch(&mut self.scratch)
    }

    fn watermark(&mut self, watermark: Timestamp) -> ChainResult {
        self.next.watermark(watermark)
    }

    fn end_of_input(&mut self) -> ChainResult {
        if let Some(run) = &mut self.sorted {
            for (_, value) in run.entries.drain(..) {
                self.scratch
                    .push(value.expect("reduce state is never left empty"));
            }
        }
        if !self.emit_updates {
            for (_, value) in self.state.drain() {
                self.scratch
                    .push(value.expect("reduce state is never left empty"));
                if self.scratch.len() >= 1024 {
                    self.next.push_batch(&mut self.scratch)?;
                }
            }
            self.next.push_batch(&mut self.scratch)?;
        }
        self.next.end_of_input()
    }

    fn barrier(&mut self, barrier: Barrier, snapshot: &mut TaskSnapshot) -> ChainResult {
        let mut groups = Vec::new();
        for group in self.state.key_groups() {
            let entries = self.state.group_entries(group);
            if entries.is_empty() {
                continue;
            }
            let bytes = encode(&SeqOf::new(entries.iter().map(|(key, value)| {
                (
                    key,
                    value.as_ref().expect("reduce state is never left empty"),
                )
            })))?;
            groups.push((group as u32, bytes));
        }
        snapshot.add(&self.operator_id, groups, Vec::new());
        self.next.barrier(barrier, snapshot)
    }

    fn checkpoint_complete(&mut self, id: u64) -> ChainResult {
        self.next.checkpoint_complete(id)
    }

    forward_control_hooks!();
}

/// What a keyed function sees besides the record: the key, keyed state, timers, time.
pub struct KeyedContext<'a, K, S = ()> {
    key: &'a K,
    key_group: usize,
    simple: &'a mut KeyGroupedMap<K, S>,
    clear: bool,
    backend: &'a mut KeyedStateBackend<K>,
    timers: &'a mut TimerService<K>,
    timestamp: Timestamp,
    watermark: Timestamp,
    sides: Option<&'a SharedSideOutputs>,
}

impl<K: Hash + Eq + Clone + 'static, S: Default> KeyedContext<'_, K, S> {
    /// Emits `value` to the side stream `tag` (with the current record's timestamp);
    /// dropped if the job reads no such side stream.
    pub fn output<X: 'static>(&mut self, tag: &OutputTag<X>, value: X) {
        if let Some(sides) = self.sides {
            sides.borrow_mut().emit(tag, value, self.timestamp);
        }
    }

    /// The key of the record (or timer) being processed.
    pub fn key(&self) -> &K {
        self.key
    }

    /// The record's event-time timestamp (the timer's time in `on_timer`), if it has one.
    pub fn timestamp(&self) -> Option<Timestamp> {
        (self.timestamp != NO_TIMESTAMP).then_some(self.timestamp)
    }

    /// The operator's current watermark.
    pub fn current_watermark(&self) -> Timestamp {
        self.watermark
    }

    /// The job clock's processing time, in milliseconds since the epoch.
    pub fn current_processing_time(&self) -> i64 {
        self.backend.now_ms()
    }

    /// The simple per-key state `S` of a closure-based `process` (`S::default()` the
    /// first time).
    pub fn state(&mut self) -> &mut S {
        if self.simple.get(self.key_group, self.key).is_none() {
            self.simple
                .insert(self.key_group, self.key.clone(), S::default());
        }
        self.simple
            .get_mut(self.key_group, self.key)
            .expect("inserted above")
    }

    /// Drops the simple per-key state after this call.
    pub fn clear_state(&mut self) {
        self.clear = true;
    }

    /// Fires `on_timer` for this key once the watermark reaches `time` (once per
    /// key and time, however often registered).
    pub fn register_event_time_timer(&mut self, time: Timestamp) {
        self.timers.event.register(self.key, time);
    }

    /// Fires `on_timer` for this key once the processing time reaches `time` (ms).
    pub fn register_processing_time_timer(&mut self, time: i64) {
        self.timers.processing.register(self.key, time);
    }

    /// Deletes an event-time timer of this key.
    pub fn delete_event_time_timer(&mut self, time: Timestamp) {
        self.timers.event.delete(self.key, time);
    }

    /// Deletes a processing-time timer of this key.
    pub fn delete_processing_time_timer(&mut self, time: i64) {
        self.timers.processing.delete(self.key, time);
    }

    fn slot<V: StateData>(&mut self, name: &'static str, ttl: Option<StateTtl>) -> Slot<'_, K, V>
    where
        K: StateData,
    {
        let now_ms = self.backend.now_ms();
        Slot {
            table: self.backend.checkpointed_table::<V>(name, ttl),
            key: self.key,
            group: self.key_group,
            now_ms,
        }
    }

    /// The current key's value state.
    pub fn value<V: StateData>(
        &mut self,
        descriptor: &ValueStateDescriptor<V>,
    ) -> ValueState<'_, K, V>
    where
        K: StateData,
    {
        ValueState {
            slot: self.slot(descriptor.name, descriptor.ttl),
        }
    }

    /// The current key's list state.
    pub fn list<V: StateData>(&mut self, descriptor: &ListStateDescriptor<V>) -> ListState<'_, K, V>
    where
        K: StateData,
    {
        ListState {
            slot: self.slot(descriptor.name, descriptor.ttl),
        }
    }

    /// The current key's map state.
    pub fn map<MK, MV>(
        &mut self,
        descriptor: &MapStateDescriptor<MK, MV>,
    ) -> MapState<'_, K, MK, MV>
    where
        K: StateData,
        MK: StateData + Hash + Eq,
        MV: StateData,
    {
        MapState {
            slot: self.slot(descriptor.name, descriptor.ttl),
        }
    }

    /// The current key's reducing state.
    pub fn reducing<'d, V: StateData>(
        &'d mut self,
        descriptor: &'d ReducingStateDescriptor<V>,
    ) -> ReducingState<'d, K, V>
    where
        K: StateData,
    {
        ReducingState {
            slot: self.slot(descriptor.name, descriptor.ttl),
            reduce: &*descriptor.reduce,
        }
    }

    /// The current key's aggregating state.
    pub fn aggregating<'d, A: AggregateFunction>(
        &'d mut self,
        descriptor: &'d AggregatingStateDescriptor<A>,
    ) -> AggregatingState<'d, K, A>
    where
        K: StateData,
        A::Accumulator: StateData,
    {
        AggregatingState {
            slot: self.slot(descriptor.name, descriptor.ttl),
            function: &*descriptor.function,
        }
    }
}

/// A function on a keyed stream with state and timers (Flink's `KeyedProcessFunction`).
/// `S` is an optional simple per-key state (see [`KeyedContext::state`]).
pub trait KeyedProcessFunction<K, I, O, S = ()>: Clone + Send + Sync + 'static {
    /// Called for every record.
    fn process_element(
        &mut self,
        record: I,
        ctx: &mut KeyedContext<'_, K, S>,
        out: &mut Collector<'_, O>,
    );

    /// Called when a timer of this key fires; emitted records get the timer's time as
    /// timestamp (event time) or none (processing time).
    fn on_timer(
        &mut self,
        time: Timestamp,
        domain: TimeDomain,
        ctx: &mut KeyedContext<'_, K, S>,
        out: &mut Collector<'_, O>,
    ) {
        let _ = (time, domain, ctx, out);
    }
}

/// A closure as a [`KeyedProcessFunction`] without timers.
#[derive(Clone)]
pub(crate) struct ProcessFn<F>(pub(crate) F);

impl<K, I, O, S, F> KeyedProcessFunction<K, I, O, S> for ProcessFn<F>
where
    F: FnMut(I, &mut KeyedContext<'_, K, S>, &mut Collector<'_, O>) + Clone + Send + Sync + 'static,
{
    fn process_element(
        &mut self,
        record: I,
        ctx: &mut KeyedContext<'_, K, S>,
        out: &mut Collector<'_, O>,
    ) {
        (self.0)(record, ctx, out)
    }
}

/// Runs a [`KeyedProcessFunction`] with its keyed state and timers.
pub(crate) struct ProcessOperator<T, K, S, O, KS, F> {
    key_of: KS,
    function: F,
    backend: KeyedStateBackend<K>,
    simple: KeyGroupedMap<K, S>,
    timers: TimerService<K>,
    watermark: Timestamp,
    clock: Arc<dyn Clock>,
    batch_mode: bool,
    sides: Option<SharedSideOutputs>,
    scratch: Batch<O>,
    next: Box<dyn Output<O>>,
    operator_id: String,
    /// Restored key groups not decoded yet (decoded when a key of theirs is first
    /// touched), `None` once all are.
    lazy: Option<LazyGroups>,
    /// Sorted input (behind a blocking exchange): the key hash at hand.
    sorted: Option<SortedKeys>,
    _input: PhantomData<fn(T)>,
}

/// Key groups of a restored snapshot that are decoded on first use: a restore only maps
/// the files and reads the timers, so a large state is back at once.
struct LazyGroups {
    restored: Arc<RestoredState>,
    first: usize,
    pending: Vec<Option<GroupRef>>,
    remaining: usize,
}

impl<T, K, S, O, KS, F> ProcessOperator<T, K, S, O, KS, F>
where
    K: Hash + Eq + Clone + 'static,
{
    pub(crate) fn new(
        key_of: KS,
        function: F,
        context: &BuildContext<'_>,
        batch_mode: bool,
        next: Box<dyn Output<O>>,
    ) -> Self {
        let subtask = context.subtask;
        let backend =
            KeyedStateBackend::new(subtask.index, subtask.parallelism, context.max_parallelism);
        let simple = KeyGroupedMap::new(backend.key_groups());
        ProcessOperator {
            key_of,
            function,
            backend,
            simple,
            timers: TimerService::new(),
            watermark: Timestamp::MIN,
            clock: Arc::clone(context.clock),
            batch_mode,
            sides: context.sides.clone(),
            scratch: Batch::new(),
            next,
            operator_id: context.operator_id.to_owned(),
            lazy: None,
            sorted: None,
            _input: PhantomData,
        }
    }

    /// Reads the input sorted by key hash (behind a blocking exchange): when the next
    /// hash starts, the keys of the previous one fire every timer end of input would
    /// fire (event time +∞, then in BATCH mode processing time +∞) and their state and
    /// timers are dropped, so one hash's keys are held at a time. Call after
    /// `restore`: an operator that restored state keeps every key until end of input.
    pub(crate) fn sorted_input(mut self, sorted: bool) -> Self {
        let restored = self.lazy.is_some()
            || self.backend.entries() > 0
            || self.simple.len() > 0
            || self.timers.event.registered().next().is_some()
            || self.timers.processing.registered().next().is_some();
        self.sorted = (sorted && !restored).then(SortedKeys::default);
        self
    }

    /// Keyed state entries held (state tables and simple state).
    #[cfg(test)]
    pub(crate) fn live_entries(&self) -> usize {
        self.backend.entries() + self.simple.len()
    }
}

/// One key group of a process operator in a checkpoint, two values one after the
/// other: its timers (event time, processing time), then its state (keyed state tables
/// by name, simple state entries). Restores read the timers at once and the state when
/// the group is first used.
type GroupTimers<K> = (Vec<(Timestamp, K)>, Vec<(Timestamp, K)>);
type GroupState<K, S> = (Vec<(String, Vec<u8>)>, Vec<(K, S)>);

impl<T, K, S, O, KS, F> ProcessOperator<T, K, S, O, KS, F>
where
    K: StateData + Hash + Eq + Clone,
    S: StateData,
{
    /// Takes the operator's state from a checkpoint: timers now, each key group's state
    /// when one of its keys is first used.
    pub(crate) fn restore(
        mut self,
        restored: Option<&Arc<RestoredState>>,
        groups: Vec<(usize, GroupRef)>,
    ) -> Result<Self, crate::error::ConnectorError> {
        let Some(restored) = restored else {
            return Ok(self);
        };
        let range = self.backend.key_groups();
        let mut lazy = LazyGroups {
            restored: Arc::clone(restored),
            first: range.start,
            pending: vec![None; range.len()],
            remaining: 0,
        };
        for (group, at) in groups {
            let bytes = restored.group(at);
            let ((event, processing), rest): (GroupTimers<K>, &[u8]) = decode_prefix(bytes)?;
            for (time, key) in event {
                self.timers.event.register(&key, time);
            }
            for (time, key) in processing {
                self.timers.processing.register(&key, time);
            }
            lazy.pending[group - range.start] = Some(at.skip(bytes.len() - rest.len()));
            lazy.remaining += 1;
        }
        if lazy.remaining > 0 {
            self.lazy = Some(lazy);
        }
        Ok(self)
    }

    /// Decodes key group `group`'s restored state if it is still pending.
    #[inline]
    fn load_group(&mut self, group: usize) -> Result<(), crate::error::ConnectorError> {
        let Some(lazy) = &mut self.lazy else {
            return Ok(());
        };
        let Some(at) = lazy.pending[group - lazy.first].take() else {
            return Ok(());
        };
        let (tables, simple): GroupState<K, S> = decode(lazy.restored.group(at))?;
        lazy.remaining -= 1;
        if lazy.remaining == 0 {
            // Every group is in memory: the snapshot's files may be unmapped.
            self.lazy = None;
        }
        self.backend.restore_group(group, tables);
        self.simple.group_entries_mut(group).extend(simple);
        Ok(())
    }

    fn snapshot(&self) -> Result<Vec<(u32, Vec<u8>)>, crate::error::ConnectorError> {
        type Timers<'a, K> = (Vec<(Timestamp, &'a K)>, Vec<(Timestamp, &'a K)>);
        let mut timers: std::collections::HashMap<usize, Timers<'_, K>> =
            std::collections::HashMap::new();
        for (key, time) in self.timers.event.registered() {
            let group = self.backend.key_group_of(key);
            timers.entry(group).or_default().0.push((time, key));
        }
        for (key, time) in self.timers.processing.registered() {
            let group = self.backend.key_group_of(key);
            timers.entry(group).or_default().1.push((time, key));
        }
        let mut groups = Vec::new();
        for group in self.backend.key_groups() {
            let (event, processing) = timers.remove(&group).unwrap_or_default();
            let pending = self
                .lazy
                .as_ref()
                .and_then(|lazy| lazy.pending[group - lazy.first].map(|at| (lazy, at)));
            let bytes = encode(&(event, processing))?;
            let bytes = match pending {
                // Not decoded since the restore: its state bytes go on unchanged.
                Some((lazy, at)) => {
                    let mut bytes = bytes;
                    bytes.extend_from_slice(lazy.restored.group(at));
                    bytes
                }
                None => {
                    let tables = self.backend.snapshot_group(group)?;
                    let simple = self.simple.group_entries(group);
                    if tables.is_empty() && simple.is_empty() && bytes.len() == 2 {
                        continue; // Nothing in this group (two empty timer lists).
                    }
                    encode_into(&(tables, SeqOf::new(simple.iter())), bytes)?
                }
            };
            groups.push((group as u32, bytes));
        }
        Ok(groups)
    }
}

impl<T, K, S, O, KS, F> ProcessOperator<T, K, S, O, KS, F>
where
    T: 'static,
    K: Hash + Eq + Clone + StateData,
    S: Default + StateData,
    O: 'static,
    KS: Fn(&T) -> K + 'static,
    F: KeyedProcessFunction<K, T, O, S>,
{
    /// Fires the timers of `domain` due at `time`, in time order (timers registered while
    /// firing that are due fire too).
    fn fire_timers(&mut self, domain: TimeDomain, time: Timestamp) -> ChainResult {
        loop {
            let queue = match domain {
                TimeDomain::EventTime => &mut self.timers.event,
                TimeDomain::ProcessingTime => &mut self.timers.processing,
            };
            let Some((when, key)) = queue.pop_due(time) else {
                return Ok(());
            };
            let key_group = self.backend.key_group_of(&key);
            if self.lazy.is_some() {
                self.load_group(key_group)?;
            }
            let timestamp = match domain {
                TimeDomain::EventTime => when,
                TimeDomain::ProcessingTime => NO_TIMESTAMP,
            };
            let mut context = KeyedContext {
                key: &key,
                key_group,
                simple: &mut self.simple,
                clear: false,
                backend: &mut self.backend,
                timers: &mut self.timers,
                timestamp,
                watermark: self.watermark,
                sides: self.sides.as_ref(),
            };
            self.function.on_timer(
                when,
                domain,
                &mut context,
                &mut Collector::new(&mut self.scratch, timestamp),
            );
            if context.clear {
                self.simple.remove(key_group, &key);
            }
        }
    }

    fn flush(&mut self) -> ChainResult {
        if self.scratch.is_empty() {
            return Ok(());
        }
        self.next.push_batch(&mut self.scratch)
    }

    /// Sorted input: the keys held (all in key group `group`, as they share a hash) are
    /// complete. Fires their timers as end of input does, with the watermark at +∞ for
    /// the while, then drops their state and what is left of their timers. Returns how
    /// many keys were held (as far as the state tables tell).
    fn finish_keys(&mut self, group: usize) -> Result<usize, crate::error::ConnectorError> {
        let keys = self
            .simple
            .group_entries(group)
            .len()
            .max(self.backend.group_len_max(group));
        let watermark = std::mem::replace(&mut self.watermark, Timestamp::MAX);
        let mut fired = self.fire_timers(TimeDomain::EventTime, Timestamp::MAX);
        if fired.is_ok() && self.batch_mode {
            fired = self.fire_timers(TimeDomain::ProcessingTime, Timestamp::MAX);
        }
        self.watermark = watermark;
        fired?;
        self.timers.event.clear();
        self.timers.processing.clear();
        self.backend.clear_group(group);
        let simple = self.simple.group_entries_mut(group);
        if !simple.is_empty() {
            simple.clear();
        }
        if self.scratch.len() >= 1024 {
            self.next.push_batch(&mut self.scratch)?;
        }
        Ok(keys)
    }
}

impl<T, K, S, O, KS, F> Output<T> for ProcessOperator<T, K, S, O, KS, F>
where
    T: 'static,
    K: Hash + Eq + Clone + StateData,
    S: Default + StateData,
    O: 'static,
    KS: Fn(&T) -> K + 'static,
    F: KeyedProcessFunction<K, T, O, S>,
{
    fn push_batch(&mut self, batch: &mut Batch<T>) -> ChainResult {
        self.backend.set_now(self.clock.wall_millis());
        for (record, timestamp) in batch.drain() {
            let key = (self.key_of)(&record);
            let hash = key_hash(&key);
            let key_group = self.backend.key_group_of_hash(hash);
            if let Some(previous) = self.sorted.as_mut().and_then(|s| s.advance(hash)) {
                let keys = self.finish_keys(self.backend.key_group_of_hash(previous))?;
                if let Some(sorted) = &mut self.sorted {
                    sorted.finished(keys);
                }
            }
            if self.lazy.is_some() {
                self.load_group(key_group)?;
            }
            let mut context = KeyedContext {
                key: &key,
                key_group,
                simple: &mut self.simple,
                clear: false,
                backend: &mut self.backend,
                timers: &mut self.timers,
                timestamp,
                watermark: self.watermark,
                sides: self.sides.as_ref(),
            };
            self.function.process_element(
                record,
                &mut context,
                &mut Collector::new(&mut self.scratch, timestamp),
            );
            if context.clear {
                self.simple.remove(key_group, &key);
            }
        }
        self.flush()
    }

    fn watermark(&mut self, watermark: Timestamp) -> ChainResult {
        self.backend.set_now(self.clock.wall_millis());
        self.fire_timers(TimeDomain::EventTime, watermark)?;
        self.watermark = watermark;
        self.flush()?;
        self.next.watermark(watermark)
    }

    fn idle(&mut self) -> ChainResult {
        self.next.idle()
    }

    fn end_of_input(&mut self) -> ChainResult {
        self.backend.set_now(self.clock.wall_millis());
        self.watermark = Timestamp::MAX;
        self.fire_timers(TimeDomain::EventTime, Timestamp::MAX)?;
        if self.batch_mode {
            self.fire_timers(TimeDomain::ProcessingTime, i64::MAX)?;
        }
        self.flush()?;
        self.next.end_of_input()
    }

    fn poll_time(&mut self, now: Instant) -> PollResult {
        let downstream = self.next.poll_time(now)?;
        let Some(first) = self.timers.processing.next_time() else {
            return Ok(downstream);
        };
        let wall_ms = self.clock.wall_millis();
        if first <= wall_ms {
            self.backend.set_now(wall_ms);
            self.fire_timers(TimeDomain::ProcessingTime, wall_ms)?;
            self.flush()?;
        }
        let mine =
            self.timers.processing.next_time().map(|next| {
                now + Duration::from_millis(next.saturating_sub(wall_ms).max(0) as u64)
            });
        Ok(match (mine, downstream) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        })
    }

    fn try_drain(&mut self, now: Instant) -> bool {
        self.next.try_drain(now)
    }

    fn barrier(&mut self, barrier: Barrier, snapshot: &mut TaskSnapshot) -> ChainResult {
        let groups = self.snapshot().map_err(|error| {
            crate::error::ConnectorError::new(format!("operator '{}': {error}", self.operator_id))
        })?;
        snapshot.add(&self.operator_id, groups, Vec::new());
        self.next.barrier(barrier, snapshot)
    }

    fn checkpoint_complete(&mut self, id: u64) -> ChainResult {
        self.next.checkpoint_complete(id)
    }

    fn latency_marker(&mut self, marker: crate::latency::LatencyMarker) -> ChainResult {
        self.flush()?;
        self.next.latency_marker(marker)
    }
}
