//! External sort: [`ExternalSorter`] buffers (key, value) records within a memory
//! budget, spills sorted runs to spill files when the budget is reached, and
//! [`SortedRuns::iter`] merges the runs back in key order.
//!
//! Order. Records come out ordered by the caller's [`KeyOrder`]; records with equal keys
//! come out in the order they were pushed (the sort is *stable*): each run is sorted
//! stably, runs hold consecutive stretches of the input, and the merge breaks ties by run
//! age (older run first).
//!
//! Memory. [`ExternalSorter::bytes_held`] is the capacity of the sorter's two buffers (the
//! record bytes and one 16-byte index entry per record), never more than the budget
//! except while a single record larger than the budget is held. Not counted: the
//! transient scratch of the stable sort (up to half the index) and the spill writer's
//! 256 KiB buffer; mapped spill files are page cache, not heap.
//!
//! A spilled record is `key length (u32) | key | value` inside a spill file record.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::path::PathBuf;

use crate::error::{Result, StorageError};
use crate::spill::file::{SpillFile, SpillReader, SpillRecords, SpillWriter, RECORD_LEN_MAX_BYTES};
use crate::spill::naming::SpillOwner;

/// A total order on byte keys, supplied by the caller.
///
/// It must be a total order (consistent, transitive); otherwise the output order is
/// unspecified (but every record still comes out exactly once). Closures
/// `Fn(&[u8], &[u8]) -> Ordering` implement it.
pub trait KeyOrder {
    /// Compares two keys.
    fn compare(&self, left: &[u8], right: &[u8]) -> Ordering;

    /// Whether this is byte-wise lexicographic order: the sorter may then compare the
    /// first 8 bytes of keys as integers before comparing whole keys.
    fn is_lexicographic(&self) -> bool {
        false
    }
}

impl<F: Fn(&[u8], &[u8]) -> Ordering> KeyOrder for F {
    fn compare(&self, left: &[u8], right: &[u8]) -> Ordering {
        self(left, right)
    }
}

/// Byte-wise lexicographic key order (the order of `[u8]`), the default. With big-endian
/// integer encodings this is also numeric order.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Lexicographic;

impl KeyOrder for Lexicographic {
    fn compare(&self, left: &[u8], right: &[u8]) -> Ordering {
        left.cmp(right)
    }

    fn is_lexicographic(&self) -> bool {
        true
    }
}

/// The first 8 bytes of `key`, zero-padded, as a big-endian integer. Two keys whose
/// prefixes differ compare lexicographically as their prefixes do (a key that is a
/// strict prefix of the other, zero bytes aside, ties and is decided by the whole key).
#[inline]
fn key_prefix(key: &[u8]) -> u64 {
    let mut bytes = [0u8; 8];
    let len = key.len().min(8);
    bytes[..len].copy_from_slice(&key[..len]);
    u64::from_be_bytes(bytes)
}

/// Where and how much an [`ExternalSorter`] may spill and buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SorterConfig {
    /// Folder for spill files; must exist.
    pub spill_dir: PathBuf,
    /// Who the spill files belong to (part of their names).
    pub owner: SpillOwner,
    /// Memory budget of the in-memory buffers, in bytes (see [`ExternalSorter::bytes_held`]).
    pub memory_budget_bytes: usize,
}

/// One buffered record: `key_len` key bytes then `value_len` value bytes at `offset` in
/// the arena.
#[derive(Debug, Clone, Copy)]
struct Entry {
    offset: usize,
    key_len: u32,
    value_len: u32,
    /// [`key_prefix`] of the key: most comparisons of a lexicographic sort end here,
    /// without touching the arena.
    prefix: u64,
}

const ENTRY_BYTES: usize = std::mem::size_of::<Entry>();
const KEY_LEN_PREFIX_BYTES: usize = 4;
/// Smallest growth step of the buffers, to avoid many tiny reallocations.
const ARENA_GROWTH_MIN_BYTES: usize = 4096;
const ENTRIES_GROWTH_MIN: usize = 256;

/// The in-memory buffer: records in an arena plus an index.
#[derive(Debug, Default)]
struct MemoryRun {
    arena: Vec<u8>,
    entries: Vec<Entry>,
}

impl MemoryRun {
    fn bytes_held(&self) -> usize {
        held_bytes(self.arena.capacity(), self.entries.capacity())
    }

    fn key(&self, entry: &Entry) -> &[u8] {
        &self.arena[entry.offset..entry.offset + entry.key_len as usize]
    }

    fn value(&self, entry: &Entry) -> &[u8] {
        let start = entry.offset + entry.key_len as usize;
        &self.arena[start..start + entry.value_len as usize]
    }

    fn sort<O: KeyOrder>(&mut self, order: &O) {
        let MemoryRun { arena, entries } = self;
        let key = |entry: &Entry| &arena[entry.offset..entry.offset + entry.key_len as usize];
        if order.is_lexicographic() {
            entries.sort_by(|a, b| a.prefix.cmp(&b.prefix).then_with(|| key(a).cmp(key(b))));
        } else {
            entries.sort_by(|a, b| order.compare(key(a), key(b)));
        }
    }

    /// Capacities the buffers need to take one more record of `record_len` bytes within
    /// `budget`: amortised (doubling) growth when that fits, exact growth otherwise, `None`
    /// when neither fits.
    fn capacities_for(&self, record_len: usize, budget: usize) -> Option<(usize, usize)> {
        let arena_needed = self.arena.len().checked_add(record_len)?;
        let entries_needed = self.entries.len() + 1;
        let grow = |needed: usize, capacity: usize, min: usize| {
            if needed <= capacity {
                capacity
            } else {
                needed.max(capacity.saturating_mul(2)).max(min)
            }
        };
        let doubled = (
            grow(arena_needed, self.arena.capacity(), ARENA_GROWTH_MIN_BYTES),
            grow(entries_needed, self.entries.capacity(), ENTRIES_GROWTH_MIN),
        );
        let exact = (
            arena_needed.max(self.arena.capacity()),
            entries_needed.max(self.entries.capacity()),
        );
        [doubled, exact]
            .into_iter()
            .find(|&(arena, entries)| held_bytes(arena, entries) <= budget)
    }

    fn grow_to(&mut self, (arena_capacity, entries_capacity): (usize, usize)) {
        self.arena
            .reserve_exact(arena_capacity.saturating_sub(self.arena.len()));
        self.entries
            .reserve_exact(entries_capacity.saturating_sub(self.entries.len()));
    }

    fn push(&mut self, key: &[u8], value: &[u8]) {
        // Lengths were checked against u32 by the caller.
        let entry = Entry {
            offset: self.arena.len(),
            key_len: key.len() as u32,
            value_len: value.len() as u32,
            prefix: key_prefix(key),
        };
        self.arena.extend_from_slice(key);
        self.arena.extend_from_slice(value);
        self.entries.push(entry);
    }
}

fn held_bytes(arena_capacity: usize, entries_capacity: usize) -> usize {
    arena_capacity.saturating_add(entries_capacity.saturating_mul(ENTRY_BYTES))
}

/// Sorts (key, value) records of any total size within a memory budget.
///
/// ```
/// use eddy_storage::spill::{ExternalSorter, SorterConfig, SpillOwner};
/// # fn main() -> Result<(), eddy_storage::StorageError> {
/// # let spill_dir = tempfile::tempdir().unwrap();
/// let mut sorter = ExternalSorter::new(SorterConfig {
///     spill_dir: spill_dir.path().to_path_buf(),
///     owner: SpillOwner::new("wordcount", "count", 0),
///     memory_budget_bytes: 64 * 1024 * 1024,
/// });
/// sorter.push(b"b", b"2")?;
/// sorter.push(b"a", b"1")?;
/// let runs = sorter.finish()?;
/// let sorted: Vec<(&[u8], &[u8])> = runs.iter().collect::<Result<_, _>>()?;
/// assert_eq!(sorted, vec![(&b"a"[..], &b"1"[..]), (&b"b"[..], &b"2"[..])]);
/// # Ok(()) }
/// ```
///
/// Spill files are deleted when the sorter (or the [`SortedRuns`] it becomes) is dropped.
#[derive(Debug)]
pub struct ExternalSorter<O: KeyOrder = Lexicographic> {
    config: SorterConfig,
    order: O,
    memory: MemoryRun,
    /// Spilled runs, oldest first.
    runs: Vec<SpillFile>,
    records_pushed: u64,
}

impl ExternalSorter<Lexicographic> {
    /// A sorter with byte-wise key order.
    pub fn new(config: SorterConfig) -> Self {
        ExternalSorter::with_order(config, Lexicographic)
    }
}

impl<O: KeyOrder> ExternalSorter<O> {
    /// A sorter with the caller's key order.
    pub fn with_order(config: SorterConfig, order: O) -> Self {
        ExternalSorter {
            config,
            order,
            memory: MemoryRun::default(),
            runs: Vec::new(),
            records_pushed: 0,
        }
    }

    /// Adds a record. Spills the buffered records as a sorted run first when this one
    /// would not fit in the budget.
    ///
    /// Errors: [`StorageError::RecordTooLarge`] when key and value together exceed the
    /// spill record limit (4 GiB), and the errors of writing a spill file
    /// ([`StorageError::DiskFull`] names the spill folder). After a spill error the
    /// buffered records are still held, and the sorter may be dropped or retried.
    pub fn push(&mut self, key: &[u8], value: &[u8]) -> Result<()> {
        let record_len = key.len() as u64 + value.len() as u64;
        if record_len + KEY_LEN_PREFIX_BYTES as u64 > RECORD_LEN_MAX_BYTES {
            return Err(StorageError::RecordTooLarge {
                len_bytes: record_len,
                limit_bytes: RECORD_LEN_MAX_BYTES - KEY_LEN_PREFIX_BYTES as u64,
            });
        }
        let record_len = record_len as usize;
        let budget = self.config.memory_budget_bytes;
        let capacities = match self.memory.capacities_for(record_len, budget) {
            Some(capacities) => Some(capacities),
            None => {
                if !self.memory.entries.is_empty() {
                    self.spill_run()?;
                }
                self.memory.capacities_for(record_len, budget)
            }
        };
        match capacities {
            Some(capacities) => self.memory.grow_to(capacities),
            None => {
                // Not even an empty buffer takes this record within the budget: give the
                // buffers back and hold just this one record.
                self.memory = MemoryRun {
                    arena: Vec::with_capacity(record_len),
                    entries: Vec::with_capacity(1),
                };
            }
        }
        self.memory.push(key, value);
        self.records_pushed += 1;
        Ok(())
    }

    /// Bytes held by the in-memory buffers (their capacity), for sharing a budget.
    pub fn bytes_held(&self) -> usize {
        self.memory.bytes_held()
    }

    /// The memory budget in bytes.
    pub fn memory_budget_bytes(&self) -> usize {
        self.config.memory_budget_bytes
    }

    /// Changes the memory budget. A smaller budget takes effect at the next
    /// [`push`](Self::push); call [`release_memory`](Self::release_memory) to give memory
    /// back at once.
    pub fn set_memory_budget_bytes(&mut self, memory_budget_bytes: usize) {
        self.config.memory_budget_bytes = memory_budget_bytes;
    }

    /// Spills the buffered records (if any) as a sorted run and frees the buffers.
    /// Returns the number of bytes released.
    pub fn release_memory(&mut self) -> Result<usize> {
        let held = self.bytes_held();
        if !self.memory.entries.is_empty() {
            self.spill_run()?;
        }
        self.memory = MemoryRun::default();
        Ok(held)
    }

    /// Records pushed so far.
    pub fn records_pushed(&self) -> u64 {
        self.records_pushed
    }

    /// Sorted runs spilled to disk so far.
    pub fn spilled_run_count(&self) -> usize {
        self.runs.len()
    }

    /// Merges consecutive spilled runs (oldest first) into one; they are deleted after.
    fn merge_group(&self, group: Vec<SpillFile>) -> Result<SpillFile> {
        let mut readers = Vec::with_capacity(group.len());
        for run in group {
            readers.push(run.open()?);
        }
        let cursors: Vec<RunCursor<'_>> = readers
            .iter()
            .map(|reader| RunCursor::Spilled {
                records: reader.records(),
                path: reader.path(),
            })
            .collect();
        let mut merge = MergeIter {
            heap: BinaryHeap::with_capacity(cursors.len()),
            cursors,
            order: &self.order,
            pending_error: None,
        };
        for run in 0..merge.cursors.len() {
            merge.refill(run)?;
        }
        let mut writer = SpillWriter::create(&self.config.spill_dir, &self.config.owner)?;
        for record in merge {
            let (key, value) = record?;
            let key_len = (key.len() as u32).to_le_bytes();
            writer.append_parts(&[&key_len, key, value])?;
        }
        writer.finish()
    }

    /// Sorts the buffered records and writes them as one spill file; the buffers keep
    /// their capacity for the next run.
    fn spill_run(&mut self) -> Result<()> {
        self.memory.sort(&self.order);
        let mut writer = SpillWriter::create(&self.config.spill_dir, &self.config.owner)?;
        for entry in &self.memory.entries {
            let key = self.memory.key(entry);
            let key_len = entry.key_len.to_le_bytes();
            writer.append_parts(&[&key_len, key, self.memory.value(entry)])?;
        }
        self.runs.push(writer.finish()?);
        self.memory.arena.clear();
        self.memory.entries.clear();
        Ok(())
    }

    /// Ends the input: sorts the buffered records and opens (validates) every spilled run.
    /// Iterate the result with [`SortedRuns::iter`].
    ///
    /// More than [`MERGE_FAN_IN`] spilled runs are first merged, the oldest
    /// `MERGE_FAN_IN` at a time, into longer runs (one more pass over their bytes), so
    /// that a final merge reads at most `MERGE_FAN_IN + 1` runs at once: every open run
    /// keeps some of its pages mapped, and hundreds of them would cost hundreds of MB.
    pub fn finish(mut self) -> Result<SortedRuns<O>> {
        self.memory.sort(&self.order);
        let mut pending: std::collections::VecDeque<SpillFile> =
            std::mem::take(&mut self.runs).into_iter().collect();
        let mut merged: Vec<SpillFile> = Vec::new();
        while pending.len() + merged.len() > MERGE_FAN_IN {
            if pending.is_empty() {
                // A pass is done: merge its results in the next one, oldest first.
                pending = merged.drain(..).collect();
                continue;
            }
            let take = MERGE_FAN_IN.min(pending.len());
            let group: Vec<SpillFile> = pending.drain(..take).collect();
            merged.push(self.merge_group(group)?);
        }
        let mut spilled = Vec::with_capacity(merged.len() + pending.len());
        for run in merged.into_iter().chain(pending) {
            spilled.push(run.open()?);
        }
        Ok(SortedRuns {
            order: self.order,
            memory: self.memory,
            spilled,
            record_count: self.records_pushed,
        })
    }
}

/// At most this many spilled runs are merged at once (see [`ExternalSorter::finish`]).
pub const MERGE_FAN_IN: usize = 16;

/// The sorted runs of a finished [`ExternalSorter`]: the in-memory run and the mapped,
/// validated spill files. Dropping it deletes the spill files.
#[derive(Debug)]
pub struct SortedRuns<O: KeyOrder = Lexicographic> {
    order: O,
    memory: MemoryRun,
    /// Oldest first.
    spilled: Vec<SpillReader>,
    record_count: u64,
}

impl<O: KeyOrder> SortedRuns<O> {
    /// Merges all runs: every record once, in key order, equal keys in push order.
    /// Records are borrowed from memory and from the maps. May be called more than once.
    pub fn iter(&self) -> MergeIter<'_, O> {
        let mut cursors: Vec<RunCursor<'_>> = self
            .spilled
            .iter()
            .map(|reader| RunCursor::Spilled {
                records: reader.records(),
                path: reader.path(),
            })
            .collect();
        cursors.push(RunCursor::Memory {
            entries: self.memory.entries.iter(),
            run: &self.memory,
        });
        let mut merge = MergeIter {
            heap: BinaryHeap::with_capacity(cursors.len()),
            cursors,
            order: &self.order,
            pending_error: None,
        };
        for run in 0..merge.cursors.len() {
            if let Err(error) = merge.refill(run) {
                merge.pending_error = Some(error);
                break;
            }
        }
        merge
    }

    /// Total number of records.
    pub fn record_count(&self) -> u64 {
        self.record_count
    }

    /// Number of runs that were spilled to disk.
    pub fn spilled_run_count(&self) -> usize {
        self.spilled.len()
    }

    /// Bytes held by the in-memory run.
    pub fn bytes_held(&self) -> usize {
        self.memory.bytes_held()
    }
}

/// Where one run is read from.
enum RunCursor<'a> {
    Memory {
        entries: std::slice::Iter<'a, Entry>,
        run: &'a MemoryRun,
    },
    Spilled {
        records: SpillRecords<'a>,
        path: &'a std::path::Path,
    },
}

impl<'a> RunCursor<'a> {
    fn next_record(&mut self) -> Option<Result<(&'a [u8], &'a [u8])>> {
        match self {
            RunCursor::Memory { entries, run } => {
                let run: &'a MemoryRun = run;
                entries
                    .next()
                    .map(|entry| Ok((run.key(entry), run.value(entry))))
            }
            RunCursor::Spilled { records, path } => records.next().map(|record| {
                let prefix: Option<[u8; KEY_LEN_PREFIX_BYTES]> = record
                    .get(..KEY_LEN_PREFIX_BYTES)
                    .and_then(|bytes| bytes.try_into().ok());
                let body = record.get(KEY_LEN_PREFIX_BYTES..);
                match (prefix, body) {
                    (Some(prefix), Some(body))
                        if u32::from_le_bytes(prefix) as usize <= body.len() =>
                    {
                        Ok(body.split_at(u32::from_le_bytes(prefix) as usize))
                    }
                    _ => Err(StorageError::corrupt(
                        path,
                        "a sorted-run record is too short for its key length",
                    )),
                }
            }),
        }
    }
}

/// The head record of one run, ordered for a min-heap on (key, run).
struct Head<'a, O> {
    key: &'a [u8],
    value: &'a [u8],
    /// Index of the run; older runs have smaller indexes and win ties.
    run: usize,
    order: &'a O,
}

impl<O: KeyOrder> Ord for Head<'_, O> {
    fn cmp(&self, other: &Self) -> Ordering {
        // Reversed: `BinaryHeap` pops the greatest, the merge wants the smallest.
        self.order
            .compare(other.key, self.key)
            .then_with(|| other.run.cmp(&self.run))
    }
}

impl<O: KeyOrder> PartialOrd for Head<'_, O> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl<O: KeyOrder> PartialEq for Head<'_, O> {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl<O: KeyOrder> Eq for Head<'_, O> {}

/// K-way merge over the runs of [`SortedRuns`]; yields `(key, value)` in key order.
///
/// Spill files were validated when the sorter finished, so errors are not expected; if a
/// record still does not decode, the iterator yields every record before it, then one
/// error naming the spill file, then ends.
pub struct MergeIter<'a, O: KeyOrder = Lexicographic> {
    heap: BinaryHeap<Head<'a, O>>,
    cursors: Vec<RunCursor<'a>>,
    order: &'a O,
    /// Reported by the next `next`, after which the iterator ends.
    pending_error: Option<StorageError>,
}

impl<O: KeyOrder> std::fmt::Debug for MergeIter<'_, O> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MergeIter")
            .field("runs", &self.cursors.len())
            .field("heads", &self.heap.len())
            .field("failed", &self.pending_error.is_some())
            .finish()
    }
}

impl<'a, O: KeyOrder> MergeIter<'a, O> {
    /// Pushes the next record of `run` onto the heap.
    fn refill(&mut self, run: usize) -> Result<()> {
        let Some(cursor) = self.cursors.get_mut(run) else {
            return Ok(());
        };
        if let Some(record) = cursor.next_record() {
            let (key, value) = record?;
            self.heap.push(Head {
                key,
                value,
                run,
                order: self.order,
            });
        }
        Ok(())
    }
}

impl<'a, O: KeyOrder> Iterator for MergeIter<'a, O> {
    type Item = Result<(&'a [u8], &'a [u8])>;

    fn next(&mut self) -> Option<Self::Item> {
        if let Some(error) = self.pending_error.take() {
            self.heap.clear();
            self.cursors.clear();
            return Some(Err(error));
        }
        let head = self.heap.pop()?;
        // The popped head is the smallest record of all runs, so it is correct to return
        // it even when the next record of its run fails to decode.
        if let Err(error) = self.refill(head.run) {
            self.pending_error = Some(error);
        }
        Some(Ok((head.key, head.value)))
    }
}

#[cfg(test)]
mod tests;
