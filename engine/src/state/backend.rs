//! The in-memory keyed state backend: named tables, split by key group.

use std::any::Any;
use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::hash::Hash;
use std::ops::Range;

use rustc_hash::FxBuildHasher;

use super::handles::StateTtl;
use crate::checkpoint::{decode, encode, SeqOf, StateData};
use crate::error::ConnectorError;
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

    /// The entries of key group `group`.
    pub(crate) fn group_entries(&self, group: usize) -> &HashMap<K, V, FxBuildHasher> {
        &self.groups[self.group(group)]
    }

    /// The entries of key group `group`, to fill on restore.
    pub(crate) fn group_entries_mut(&mut self, group: usize) -> &mut HashMap<K, V, FxBuildHasher> {
        let index = self.group(group);
        &mut self.groups[index]
    }

    /// The key groups this map holds.
    pub(crate) fn key_groups(&self) -> Range<usize> {
        self.first_group..self.first_group + self.groups.len()
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

/// Encodes one key group of a table.
type EncodeGroup<K, V> =
    fn(&HashMap<K, Stamped<V>, FxBuildHasher>) -> Result<Vec<u8>, ConnectorError>;
/// Decodes one key group of a table into it.
type DecodeGroup<K, V> =
    fn(&[u8], &mut HashMap<K, Stamped<V>, FxBuildHasher>) -> Result<(), ConnectorError>;

/// One named state's table.
pub(crate) struct StateTable<K, V> {
    pub(crate) map: KeyGroupedMap<K, Stamped<V>>,
    pub(crate) ttl: Option<StateTtl>,
    /// How to checkpoint the table; `None` for internal tables of operators that do not
    /// take part in checkpoints yet.
    codec: Option<(EncodeGroup<K, V>, DecodeGroup<K, V>)>,
}

fn encode_group<K: StateData, V: StateData>(
    entries: &HashMap<K, Stamped<V>, FxBuildHasher>,
) -> Result<Vec<u8>, ConnectorError> {
    encode(&SeqOf::new(
        entries
            .iter()
            .map(|(key, entry)| (key, entry.touched_ms, &entry.value)),
    ))
}

fn decode_group<K: StateData + Hash + Eq, V: StateData>(
    bytes: &[u8],
    entries: &mut HashMap<K, Stamped<V>, FxBuildHasher>,
) -> Result<(), ConnectorError> {
    let decoded: Vec<(K, i64, V)> = decode(bytes)?;
    entries.extend(
        decoded
            .into_iter()
            .map(|(key, touched_ms, value)| (key, Stamped { value, touched_ms })),
    );
    Ok(())
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
    /// The bytes of key group `group` (`None` when it is empty); an error when the
    /// table cannot be checkpointed.
    fn snapshot_group(&self, group: usize) -> Result<Option<Vec<u8>>, ()>;
    fn restore_group(&mut self, group: usize, bytes: &[u8]) -> Result<(), ConnectorError>;
    /// Drops the entries of key group `group`.
    fn clear_group(&mut self, group: usize);
    /// Number of entries in key group `group`.
    fn group_len(&self, group: usize) -> usize;
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

    fn snapshot_group(&self, group: usize) -> Result<Option<Vec<u8>>, ()> {
        let (encode, _) = self.codec.ok_or(())?;
        let entries = self.map.group_entries(group);
        if entries.is_empty() {
            return Ok(None);
        }
        // An entry that cannot be encoded is a bug of the state's Serialize impl.
        encode(entries).map(Some).map_err(|error| {
            tracing::error!(%error, "cannot encode a state entry");
        })
    }

    fn restore_group(&mut self, group: usize, bytes: &[u8]) -> Result<(), ConnectorError> {
        let Some((_, decode)) = self.codec else {
            return Err(ConnectorError::new("this state cannot be restored"));
        };
        decode(bytes, self.map.group_entries_mut(group))
    }

    fn clear_group(&mut self, group: usize) {
        let entries = self.map.group_entries_mut(group);
        if !entries.is_empty() {
            entries.clear();
        }
    }

    fn group_len(&self, group: usize) -> usize {
        self.map.group_entries(group).len()
    }
}

/// The keyed state of one operator subtask.
pub struct KeyedStateBackend<K> {
    max_parallelism: usize,
    key_groups: Range<usize>,
    tables: Vec<(&'static str, Box<dyn ErasedTable>)>,
    /// Restored bytes of tables not declared yet: (name, key group, bytes). A table
    /// takes its bytes when it is declared; until then they go into every snapshot
    /// unchanged, so state the function has not touched since the restore is kept.
    restored: Vec<(String, usize, Vec<u8>)>,
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
            restored: Vec::new(),
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

    /// The key group of a key whose [`key_hash`](crate::partition::key_hash) is `hash`.
    #[inline]
    pub fn key_group_of_hash(&self, hash: u64) -> usize {
        KeyGroupResolver::new(self.max_parallelism).of_hash(hash)
    }

    /// The most entries one table holds in key group `group` (a lower bound of its
    /// keys).
    pub(crate) fn group_len_max(&self, group: usize) -> usize {
        self.tables
            .iter()
            .map(|(_, table)| table.group_len(group))
            .max()
            .unwrap_or(0)
    }

    /// Drops every table's entries of key group `group` (a sorted input finished its
    /// keys).
    pub(crate) fn clear_group(&mut self, group: usize) {
        for (_, table) in &mut self.tables {
            table.clear_group(group);
        }
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
                    codec: None,
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

    /// The table of state `name` holding `V`, taking part in checkpoints; created on
    /// first use (with the restored entries of that name, if any).
    ///
    /// # Panics
    /// If `name` was declared before with another value type (a programming error).
    pub(crate) fn checkpointed_table<V: StateData>(
        &mut self,
        name: &'static str,
        ttl: Option<StateTtl>,
    ) -> &mut StateTable<K, V>
    where
        K: StateData,
    {
        if !self.tables.iter().any(|(n, _)| *n == name) {
            let mut table: StateTable<K, V> = StateTable {
                map: KeyGroupedMap::new(self.key_groups.clone()),
                ttl,
                codec: Some((encode_group::<K, V>, decode_group::<K, V>)),
            };
            let mut index = 0;
            while index < self.restored.len() {
                if self.restored[index].0 == name {
                    let (_, group, bytes) = self.restored.swap_remove(index);
                    if let Err(error) = table.restore_group(group, &bytes) {
                        // The job was changed: the state's type no longer matches.
                        panic!("cannot restore state '{name}' in key group {group}: {error}");
                    }
                } else {
                    index += 1;
                }
            }
            self.tables.push((name, Box::new(table)));
        }
        self.table::<V>(name, ttl)
    }

    /// The tables of key group `group`, encoded: (state name, bytes). Fails naming a
    /// state that cannot be checkpointed.
    pub(crate) fn snapshot_group(
        &self,
        group: usize,
    ) -> Result<Vec<(String, Vec<u8>)>, ConnectorError> {
        let mut out = Vec::new();
        for (name, table) in &self.tables {
            match table.snapshot_group(group) {
                Ok(Some(bytes)) => out.push(((*name).to_owned(), bytes)),
                Ok(None) => {}
                Err(()) => {
                    return Err(ConnectorError::new(format!(
                        "state '{name}' cannot be checkpointed"
                    )))
                }
            }
        }
        for (name, restored_group, bytes) in &self.restored {
            if *restored_group == group {
                out.push((name.clone(), bytes.clone()));
            }
        }
        Ok(out)
    }

    /// Restores the tables of key group `group` from what [`Self::snapshot_group`]
    /// wrote; tables are filled when they are declared.
    pub(crate) fn restore_group(&mut self, group: usize, tables: Vec<(String, Vec<u8>)>) {
        for (name, bytes) in tables {
            self.restored.push((name, group, bytes));
        }
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
