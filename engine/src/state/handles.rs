//! State descriptors (declared once) and the handles a function gets for the current
//! key.

use std::collections::HashMap;
use std::hash::Hash;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use rustc_hash::FxBuildHasher;

use super::backend::{Stamped, StateTable};

/// When an entry's time-to-live restarts (Flink's `StateTtlConfig.UpdateType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TtlUpdate {
    /// On creation and on every write.
    OnCreateAndWrite,
    /// On creation, write and read.
    OnReadAndWrite,
}

/// Time-to-live of state entries, in processing time. An expired entry is never
/// returned (Flink's `NeverReturnExpired`) and is dropped on access or by
/// [`KeyedStateBackend::purge_expired`](super::KeyedStateBackend::purge_expired).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StateTtl {
    ttl_ms: i64,
    update: TtlUpdate,
}

impl StateTtl {
    /// Entries expire `ttl` after they were created or last written.
    pub fn new(ttl: Duration) -> Self {
        StateTtl {
            ttl_ms: ttl.as_millis().clamp(1, i64::MAX as u128) as i64,
            update: TtlUpdate::OnCreateAndWrite,
        }
    }

    /// Changes when the time-to-live restarts.
    pub fn update(mut self, update: TtlUpdate) -> Self {
        self.update = update;
        self
    }

    pub(crate) fn ttl_ms(&self) -> i64 {
        self.ttl_ms
    }

    fn refresh_on_read(&self) -> bool {
        self.update == TtlUpdate::OnReadAndWrite
    }
}

/// Looks up the current key's live entry, dropping it if it expired.
fn live<'a, K: Hash + Eq, V>(
    table: &'a mut StateTable<K, V>,
    group: usize,
    key: &K,
    now_ms: i64,
) -> Option<&'a mut Stamped<V>> {
    if table.ttl.is_none() {
        // No time-to-live: one probe, nothing to check or refresh.
        return table.map.get_mut(group, key);
    }
    let expired = match table.map.get(group, key) {
        None => return None,
        Some(entry) => table.expired(entry.touched_ms, now_ms),
    };
    if expired {
        table.map.remove(group, key);
        return None;
    }
    let refresh = table.ttl.is_some_and(|ttl| ttl.refresh_on_read());
    let entry = table.map.get_mut(group, key).expect("checked above");
    if refresh {
        entry.touched_ms = now_ms;
    }
    Some(entry)
}

/// Where a handle points: a table, a key and its key group, the current time.
pub(crate) struct Slot<'a, K, V> {
    pub(crate) table: &'a mut StateTable<K, V>,
    pub(crate) key: &'a K,
    pub(crate) group: usize,
    pub(crate) now_ms: i64,
}

impl<K: Hash + Eq + Clone, V> Slot<'_, K, V> {
    fn get(&mut self) -> Option<&mut V> {
        live(self.table, self.group, self.key, self.now_ms).map(|entry| &mut entry.value)
    }

    fn get_or_insert_with(&mut self, make: impl FnOnce() -> V) -> &mut V {
        if live(self.table, self.group, self.key, self.now_ms).is_none() {
            self.table.map.insert(
                self.group,
                self.key.clone(),
                Stamped {
                    value: make(),
                    touched_ms: self.now_ms,
                },
            );
        }
        let entry = self
            .table
            .map
            .get_mut(self.group, self.key)
            .expect("inserted above");
        entry.touched_ms = self.now_ms;
        &mut entry.value
    }

    fn set(&mut self, value: V) {
        // Overwrite in place when the key is there: no clone of the key (a `String`
        // would allocate) on the common path.
        if let Some(entry) = self.table.map.get_mut(self.group, self.key) {
            entry.value = value;
            entry.touched_ms = self.now_ms;
            return;
        }
        self.table.map.insert(
            self.group,
            self.key.clone(),
            Stamped {
                value,
                touched_ms: self.now_ms,
            },
        );
    }

    fn take(&mut self) -> Option<V> {
        let entry = self.table.map.remove(self.group, self.key)?;
        (!self.table.expired(entry.touched_ms, self.now_ms)).then_some(entry.value)
    }
}

macro_rules! descriptor {
    ($(#[$doc:meta])* $name:ident<$($param:ident),*>) => {
        $(#[$doc])*
        pub struct $name<$($param),*> {
            pub(crate) name: &'static str,
            pub(crate) ttl: Option<StateTtl>,
            _types: PhantomData<fn() -> ($($param,)*)>,
        }

        impl<$($param),*> Clone for $name<$($param),*> {
            fn clone(&self) -> Self {
                $name { name: self.name, ttl: self.ttl, _types: PhantomData }
            }
        }

        impl<$($param),*> $name<$($param),*> {
            /// A state named `name` (unique within its operator).
            pub fn new(name: &'static str) -> Self {
                $name { name, ttl: None, _types: PhantomData }
            }

            /// Entries expire after `ttl` (see [`StateTtl`]).
            pub fn with_ttl(mut self, ttl: StateTtl) -> Self {
                self.ttl = Some(ttl);
                self
            }
        }
    };
}

descriptor!(
    /// Declares a single value per key.
    ValueStateDescriptor<V>
);
descriptor!(
    /// Declares a list of values per key.
    ListStateDescriptor<V>
);
descriptor!(
    /// Declares a map per key.
    MapStateDescriptor<MK, MV>
);

/// The current key's value.
pub struct ValueState<'a, K, V> {
    pub(crate) slot: Slot<'a, K, V>,
}

impl<K: Hash + Eq + Clone, V> ValueState<'_, K, V> {
    /// The value, if set (and not expired).
    pub fn get(&mut self) -> Option<&mut V> {
        self.slot.get()
    }

    /// The value, set to `V::default()` first if absent.
    pub fn get_or_default(&mut self) -> &mut V
    where
        V: Default,
    {
        self.slot.get_or_insert_with(V::default)
    }

    /// Sets the value.
    pub fn set(&mut self, value: V) {
        self.slot.set(value);
    }

    /// Removes the value and returns it.
    pub fn take(&mut self) -> Option<V> {
        self.slot.take()
    }

    /// Removes the value.
    pub fn clear(&mut self) {
        self.slot.take();
    }
}

/// The current key's list.
pub struct ListState<'a, K, V> {
    pub(crate) slot: Slot<'a, K, Vec<V>>,
}

impl<K: Hash + Eq + Clone, V> ListState<'_, K, V> {
    /// Appends a value.
    pub fn add(&mut self, value: V) {
        self.slot.get_or_insert_with(Vec::new).push(value);
    }

    /// The values, in the order they were added (empty if none).
    pub fn get(&mut self) -> &[V] {
        match self.slot.get() {
            Some(values) => values,
            None => &[],
        }
    }

    /// Replaces the values.
    pub fn update(&mut self, values: Vec<V>) {
        self.slot.set(values);
    }

    /// Removes the values and returns them.
    pub fn take(&mut self) -> Vec<V> {
        self.slot.take().unwrap_or_default()
    }

    /// Removes the values.
    pub fn clear(&mut self) {
        self.slot.take();
    }
}

/// The per-key map of a [`MapStateDescriptor`].
pub type UserMap<MK, MV> = HashMap<MK, MV, FxBuildHasher>;

/// The current key's map.
pub struct MapState<'a, K, MK, MV> {
    pub(crate) slot: Slot<'a, K, UserMap<MK, MV>>,
}

impl<K: Hash + Eq + Clone, MK: Hash + Eq, MV> MapState<'_, K, MK, MV> {
    /// The value under `map_key`.
    pub fn get(&mut self, map_key: &MK) -> Option<&mut MV> {
        self.slot.get()?.get_mut(map_key)
    }

    /// Puts a value under `map_key`, returning the previous one.
    pub fn put(&mut self, map_key: MK, value: MV) -> Option<MV> {
        self.slot
            .get_or_insert_with(HashMap::default)
            .insert(map_key, value)
    }

    /// Removes the value under `map_key`.
    pub fn remove(&mut self, map_key: &MK) -> Option<MV> {
        let map = self.slot.get()?;
        let removed = map.remove(map_key);
        if map.is_empty() {
            self.slot.take();
        }
        removed
    }

    /// Whether `map_key` has a value.
    pub fn contains(&mut self, map_key: &MK) -> bool {
        self.slot.get().is_some_and(|map| map.contains_key(map_key))
    }

    /// The entries (in no particular order).
    pub fn entries(&mut self) -> impl Iterator<Item = (&MK, &MV)> {
        self.slot.get().into_iter().flat_map(|map| map.iter())
    }

    /// Whether the map is empty.
    pub fn is_empty(&mut self) -> bool {
        self.slot.get().is_none_or(|map| map.is_empty())
    }

    /// Removes every entry.
    pub fn clear(&mut self) {
        self.slot.take();
    }
}

/// Declares a value per key folded with a reduce function.
pub struct ReducingStateDescriptor<V> {
    pub(crate) name: &'static str,
    pub(crate) ttl: Option<StateTtl>,
    pub(crate) reduce: Arc<dyn Fn(V, V) -> V + Send + Sync>,
}

impl<V> Clone for ReducingStateDescriptor<V> {
    fn clone(&self) -> Self {
        ReducingStateDescriptor {
            name: self.name,
            ttl: self.ttl,
            reduce: Arc::clone(&self.reduce),
        }
    }
}

impl<V> ReducingStateDescriptor<V> {
    /// A reducing state named `name`.
    pub fn new(name: &'static str, reduce: impl Fn(V, V) -> V + Send + Sync + 'static) -> Self {
        ReducingStateDescriptor {
            name,
            ttl: None,
            reduce: Arc::new(reduce),
        }
    }

    /// Entries expire after `ttl`.
    pub fn with_ttl(mut self, ttl: StateTtl) -> Self {
        self.ttl = Some(ttl);
        self
    }
}

/// The current key's reduced value.
pub struct ReducingState<'a, K, V> {
    pub(crate) slot: Slot<'a, K, Option<V>>,
    pub(crate) reduce: &'a (dyn Fn(V, V) -> V + Send + Sync),
}

impl<K: Hash + Eq + Clone, V> ReducingState<'_, K, V> {
    /// Folds `value` into the state.
    pub fn add(&mut self, value: V) {
        let reduce = self.reduce;
        let slot = self.slot.get_or_insert_with(|| None);
        *slot = Some(match slot.take() {
            Some(accumulated) => reduce(accumulated, value),
            None => value,
        });
    }

    /// The reduced value, if any value was added.
    pub fn get(&mut self) -> Option<&V> {
        self.slot.get().and_then(|value| value.as_ref())
    }

    /// Removes the value.
    pub fn clear(&mut self) {
        self.slot.take();
    }
}

/// An incremental aggregation (Flink's `AggregateFunction`): an accumulator is created,
/// inputs are added to it, two accumulators can be merged, and the result is read.
pub trait AggregateFunction: Send + Sync + 'static {
    /// What is added.
    type Input;
    /// The running aggregate.
    type Accumulator: Clone + Send + 'static;
    /// What is read out.
    type Output;
    /// A new, empty accumulator.
    fn create_accumulator(&self) -> Self::Accumulator;
    /// Adds a value.
    fn add(&self, value: Self::Input, accumulator: &mut Self::Accumulator);
    /// The result of an accumulator.
    fn get_result(&self, accumulator: &Self::Accumulator) -> Self::Output;
    /// Merges `other` into `accumulator` (session windows merge their accumulators).
    fn merge(&self, accumulator: &mut Self::Accumulator, other: Self::Accumulator);
}

/// Declares a value per key aggregated by an [`AggregateFunction`].
pub struct AggregatingStateDescriptor<A> {
    pub(crate) name: &'static str,
    pub(crate) ttl: Option<StateTtl>,
    pub(crate) function: Arc<A>,
}

impl<A> Clone for AggregatingStateDescriptor<A> {
    fn clone(&self) -> Self {
        AggregatingStateDescriptor {
            name: self.name,
            ttl: self.ttl,
            function: Arc::clone(&self.function),
        }
    }
}

impl<A: AggregateFunction> AggregatingStateDescriptor<A> {
    /// An aggregating state named `name`.
    pub fn new(name: &'static str, function: A) -> Self {
        AggregatingStateDescriptor {
            name,
            ttl: None,
            function: Arc::new(function),
        }
    }

    /// Entries expire after `ttl`.
    pub fn with_ttl(mut self, ttl: StateTtl) -> Self {
        self.ttl = Some(ttl);
        self
    }
}

/// The current key's aggregate.
pub struct AggregatingState<'a, K, A: AggregateFunction> {
    pub(crate) slot: Slot<'a, K, A::Accumulator>,
    pub(crate) function: &'a A,
}

impl<K: Hash + Eq + Clone, A: AggregateFunction> AggregatingState<'_, K, A> {
    /// Adds a value to the aggregate.
    pub fn add(&mut self, value: A::Input) {
        let function = self.function;
        let accumulator = self
            .slot
            .get_or_insert_with(|| function.create_accumulator());
        function.add(value, accumulator);
    }

    /// The aggregate's result, if any value was added.
    pub fn get(&mut self) -> Option<A::Output> {
        let function = self.function;
        self.slot
            .get()
            .map(|accumulator| function.get_result(accumulator))
    }

    /// Removes the aggregate.
    pub fn clear(&mut self) {
        self.slot.take();
    }
}
