//! The in-memory keyed state backend: named tables, split by key group.

use std::any::Any;
use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::hash::Hash;
use std::ops::Range;

use rustc_hash::FxBuildHasher;

use super::handles::StateTtl;
use crate::partition::{key_group_range, KeyGroupResolver};

/// A map from key to value, split by key group.
pub(crate) struct KeyGroupedMap<K, V> {
    first_group: usize,
    groups: Vec<HashMap<K, V, FxBuildHasher>>,
}

impl<K: Hash + Eq, V> KeyGroupedMap<K, V> {
    pub(crate) fn new(groups: Range<usize>) -> Self {
        KeyGroupedMap {
            first_group: groups.start,
            groups: groups.map(|_| HashMap::default()).collect(),
        }
    }

    #[inline]
    fn group(&self, group: usize) -> usize {
        debug_assert!(
            group >= self.first_group && group - self.first_group < self.groups.len(),
            "key group {group} is not owned by this subtask"
        );
        group - self.first_group
    }

    #[inline]
    pub(crate) fn get(&self, group: usize, key: &K) -> Option<&V> {
        self.groups[self.group(group)].get(key)
    }

    #[inline]
    pub(crate) fn get_mut(&mut self, group: usize, key: &K) -> Option<&mut V> {
        let index = self.group(group);
        self.groups[index].get_mut(key)
    }

    #[inline]
    pub(crate) fn insert(&mut self, group: usize, key: K, value: V) -> Option<V> {
        let index = self.group(group);
        self.groups[index].insert(key, value)
    }

    /// The entry of `key` (one hash probe for a lookup that may insert).
    #[inline]
    pub(crate) fn entry(&mut self, group: usize, key: K) -> Entry<'_, K, V> {
        let index = self.group(group);
        self.groups[index].entry(key)
    }

    #[inline]
    pub(crate) fn remove(&mut self, group: usize, key: &K) -> Option<V> {
        let index = self.group(group);
        self.groups[index].remove(key)
    }

    /// Number of entries.
    pub(crate) fn len(&self) -> usize {
        self.groups.iter().map(HashMap::len).sum()
    }

    /// Takes every entry out, key group by key group.
    pub(crate) fn drain(&mut self) -> impl Iterator<Item = (K, V)> + '_ {
        self.groups.iter_mut().flat_map(|group| group.drain())
    }

    /// Keeps the entries for which `keep` holds.
    pub(crate) fn retain(&mut self, mut keep: impl FnMut(&K, &mut V) -> bool) {
        for group in &mut self.groups {
            group.retain(|key, value| keep(key, value));
        }
    }
}

/// A value with the processing time it was last written (or read, see [`StateTtl`]).
pub(crate) struct Stamped<V> {
    pub(crate) value: V,
    pub(crate) touched_ms: i64,
}

/// One named state's table.
pub(crate) struct StateTable<K, V> {
    pub(crate) map: KeyGroupedMap<K, Stamped<V>>,
    pub(crate) ttl: Option<StateTtl>,
}

impl<K: Hash + Eq, V> StateTable<K, V> {
    /// Whether an entry stamped at `touched_ms` has expired at `now_ms`.
    #[inline]
    pub(crate) fn expired(&self, touched_ms: i64, now_ms: i64) -> bool {
        self.ttl
            .is_some_and(|ttl| now_ms.saturating_sub(touched_ms) >= ttl.ttl_ms())
    }
}

/// What the backend needs of a table without knowing its value type.
trait ErasedTable {
    fn as_any_mut(&mut self) -> &mut dyn Any;
    fn purge_expired(&mut self, now_ms: i64) -> usize;
    fn len(&self) -> usize;
}

impl<K: Hash + Eq + 'static, V: 'static> ErasedTable for StateTable<K, V> {
    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }

    fn purge_expired(&mut self, now_ms: i64) -> usize {
        let Some(ttl) = self.ttl else {
            return 0;
        };
        let before = self.map.len();
        self.map
            .retain(|_, entry| now_ms.saturating_sub(entry.touched_ms) < ttl.ttl_ms());
        before - self.map.len()
    }

    fn len(&self) -> usize {
        self.map.len()
    }
}

/// The keyed state of one operator subtask.
pub struct KeyedStateBackend<K> {
    max_parallelism: usize,
    key_groups: Range<usize>,
    tables: Vec<(&'static str, Box<dyn ErasedTable>)>,
    now_ms: i64,
    _keys: std::marker::PhantomData<fn() -> K>,
}

impl<K: Hash + Eq + 'static> KeyedStateBackend<K> {
    /// The backend of subtask `subtask` of `parallelism`.
    pub fn new(subtask: usize, parallelism: usize, max_parallelism: usize) -> Self {
        KeyedStateBackend {
            max_parallelism,
            key_groups: key_group_range(subtask, max_parallelism, parallelism),
            tables: Vec::new(),
            now_ms: 0,
            _keys: std::marker::PhantomData,
        }
    }

    /// The key groups this backend holds.
    pub fn key_groups(&self) -> Range<usize> {
        self.key_groups.clone()
    }

    /// The key group of `key`.
    #[inline]
    pub fn key_group_of(&self, key: &K) -> usize {
        KeyGroupResolver::new(self.max_parallelism).of(key)
    }

    /// Sets the processing time used for TTL (once per buffer, not per record).
    pub(crate) fn set_now(&mut self, now_ms: i64) {
        self.now_ms = now_ms;
    }

    pub(crate) fn now_ms(&self) -> i64 {
        self.now_ms
    }

    /// The table of state `name` holding `V`, created on first use.
    ///
    /// # Panics
    /// If `name` was declared before with another value type (a programming error).
    pub(crate) fn table<V: 'static>(
        &mut self,
        name: &'static str,
        ttl: Option<StateTtl>,
    ) -> &mut StateTable<K, V> {
        let index = match self.tables.iter().position(|(n, _)| *n == name) {
            Some(index) => index,
            None => {
                let table: StateTable<K, V> = StateTable {
                    map: KeyGroupedMap::new(self.key_groups.clone()),
                    ttl,
                };
                self.tables.push((name, Box::new(table)));
                self.tables.len() - 1
            }
        };
        self.tables[index]
            .1
            .as_any_mut()
            .downcast_mut::<StateTable<K, V>>()
            .unwrap_or_else(|| panic!("state '{name}' was declared with another type"))
    }

    /// Drops every expired entry of every table that has a TTL (entries are also
    /// dropped lazily when read); returns how many were dropped.
    pub fn purge_expired(&mut self) -> usize {
        let now_ms = self.now_ms;
        self.tables
            .iter_mut()
            .map(|(_, table)| table.purge_expired(now_ms))
            .sum()
    }

    /// Number of entries over all tables (for metrics and tests).
    pub fn entries(&self) -> usize {
        self.tables.iter().map(|(_, table)| table.len()).sum()
    }
}
