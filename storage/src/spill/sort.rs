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
//! record bytes and one 24-byte index entry per record), never more than the budget
//! except while a single record larger than the budget is held. Not counted: the
//! transient scratch of the stable sort (up to half the index), the spill writer's
//! 256 KiB buffer, and the merge's read buffers (256 KiB per spilled run being read,
//! see [`READ_BUFFER_BYTES`](crate::spill::READ_BUFFER_BYTES)).
//!
//! A spilled record is `key length (u32) | key | value` inside a spill file record.

use std::cmp::Ordering;
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
/// let mut merge = runs.iter();
/// let mut sorted = Vec::new();
/// while let Some(record) = merge.next_record() {
///     let (key, value) = record?;
///     sorted.push((key.to_vec(), value.to_vec()));
/// }
/// assert_eq!(sorted, vec![(b"a".to_vec(), b"1".to_vec()), (b"b".to_vec(), b"2".to_vec())]);
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
        let cursors = readers.iter().map(RunCursor::spilled).collect();
        let mut merge = MergeIter::new(cursors, &self.order);
        let mut writer = SpillWriter::create(&self.config.spill_dir, &self.config.owner)?;
        while let Some(record) = merge.next_record() {
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
    /// that a final merge reads at most `MERGE_FAN_IN + 1` runs at once: every run being
    /// read holds a read buffer, and hundreds of them would cost tens of MB outside the
    /// budget.
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

/// The sorted runs of a finished [`ExternalSorter`]: the in-memory run and the
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
    /// Records are borrowed from memory and from the merge's read buffers (one of
    /// [`READ_BUFFER_BYTES`](crate::spill::READ_BUFFER_BYTES) per spilled run). May be
    /// called more than once.
    pub fn iter(&self) -> MergeIter<'_, O> {
        SortedRuns::merge_all(std::slice::from_ref(self), &self.order)
    }

    /// Merges the runs of several sorters (for example one per producer of a blocking
    /// exchange) into one key order under `order`, which must be the order they were
    /// sorted by. Records with equal keys come out in the order of `runs`, then in
    /// push order within one sorter.
    pub fn merge_all<'a>(runs: &'a [SortedRuns<O>], order: &'a O) -> MergeIter<'a, O> {
        let mut cursors = Vec::new();
        for sorted in runs {
            cursors.extend(sorted.spilled.iter().map(RunCursor::spilled));
            cursors.push(RunCursor::Memory {
                entries: sorted.memory.entries.iter(),
                run: &sorted.memory,
                head: (&[], &[]),
            });
        }
        MergeIter::new(cursors, order)
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

/// Where one run is read from, and its current record.
enum RunCursor<'a> {
    Memory {
        entries: std::slice::Iter<'a, Entry>,
        run: &'a MemoryRun,
        head: (&'a [u8], &'a [u8]),
    },
    Spilled {
        records: SpillRecords<'a>,
        /// Length of the current record's key.
        key_len: usize,
    },
}

impl<'a> RunCursor<'a> {
    fn spilled(reader: &'a SpillReader) -> Self {
        RunCursor::Spilled {
            records: reader.records(),
            key_len: 0,
        }
    }

    /// Moves to the next record; `Ok(false)` at the end of the run.
    fn advance(&mut self) -> Result<bool> {
        match self {
            RunCursor::Memory { entries, run, head } => match entries.next() {
                Some(entry) => {
                    *head = (run.key(entry), run.value(entry));
                    Ok(true)
                }
                None => Ok(false),
            },
            RunCursor::Spilled { records, key_len } => {
                if !records.advance()? {
                    return Ok(false);
                }
                let record = records.current();
                let prefix: Option<[u8; KEY_LEN_PREFIX_BYTES]> = record
                    .get(..KEY_LEN_PREFIX_BYTES)
                    .and_then(|bytes| bytes.try_into().ok());
                match prefix {
                    Some(prefix)
                        if u32::from_le_bytes(prefix) as usize
                            <= record.len() - KEY_LEN_PREFIX_BYTES =>
                    {
                        *key_len = u32::from_le_bytes(prefix) as usize;
                        Ok(true)
                    }
                    _ => Err(StorageError::corrupt(
                        records.path(),
                        "a sorted-run record is too short for its key length",
                    )),
                }
            }
        }
    }

    /// The current record as (key, value); valid after `advance` returned `true`.
    #[inline]
    fn head(&self) -> (&[u8], &[u8]) {
        match self {
            RunCursor::Memory { head, .. } => *head,
            RunCursor::Spilled { records, key_len } => {
                records.current()[KEY_LEN_PREFIX_BYTES..].split_at(*key_len)
            }
        }
    }
}

/// K-way merge over sorted runs (see [`SortedRuns::iter`] and
/// [`SortedRuns::merge_all`]): [`next_record`](Self::next_record) lends `(key, value)`
/// in key order until the next call.
///
/// Spill files were validated when the sorter finished, so errors are not expected; if
/// a run still fails to read (its file was cut short or damaged since), the merge yields
/// every record before it, then one error naming the spill file, then ends.
///
/// Cost: one heap sift per record over the runs' current keys (`log2(runs)`
/// comparisons), the first 8 key bytes compared as an integer for byte-wise order.
pub struct MergeIter<'a, O: KeyOrder = Lexicographic> {
    cursors: Vec<RunCursor<'a>>,
    /// [`key_prefix`] of each cursor's current key (byte-wise order only).
    prefixes: Vec<u64>,
    /// Indexes of the cursors that have a current record: a binary min-heap on
    /// (key, index); older runs have smaller indexes and win ties.
    heap: Vec<usize>,
    order: &'a O,
    lexicographic: bool,
    /// The record on top of the heap was lent out: its run moves on at the next call.
    lent: bool,
    /// Reported by the next call, after which the merge ends.
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
    fn new(cursors: Vec<RunCursor<'a>>, order: &'a O) -> Self {
        let mut merge = MergeIter {
            prefixes: vec![0; cursors.len()],
            heap: Vec::with_capacity(cursors.len()),
            cursors,
            order,
            lexicographic: order.is_lexicographic(),
            lent: false,
            pending_error: None,
        };
        for run in 0..merge.cursors.len() {
            match merge.advance(run) {
                Ok(true) => merge.heap.push(run),
                Ok(false) => {}
                Err(error) => {
                    merge.pending_error = Some(error);
                    break;
                }
            }
        }
        for position in (0..merge.heap.len() / 2).rev() {
            merge.sift_down(position);
        }
        merge
    }

    /// The next record in key order, lent until the next call; `None` after the last
    /// record or after an error.
    pub fn next_record(&mut self) -> Option<Result<(&[u8], &[u8])>> {
        if self.lent {
            self.lent = false;
            let run = *self.heap.first()?;
            match self.advance(run) {
                Ok(true) => self.sift_down(0),
                Ok(false) => {
                    let last = self.heap.pop()?;
                    if let Some(top) = self.heap.first_mut() {
                        *top = last;
                        self.sift_down(0);
                    }
                }
                Err(error) => self.pending_error = Some(error),
            }
        }
        if let Some(error) = self.pending_error.take() {
            self.heap.clear();
            self.cursors.clear();
            return Some(Err(error));
        }
        let run = *self.heap.first()?;
        self.lent = true;
        Some(Ok(self.cursors[run].head()))
    }

    /// Moves run `run` to its next record and caches its key prefix.
    fn advance(&mut self, run: usize) -> Result<bool> {
        let cursor = &mut self.cursors[run];
        let more = cursor.advance()?;
        if more && self.lexicographic {
            self.prefixes[run] = key_prefix(cursor.head().0);
        }
        Ok(more)
    }

    /// Whether run `a`'s current record comes before run `b`'s.
    #[inline]
    fn before(&self, a: usize, b: usize) -> bool {
        let by_key = if self.lexicographic {
            self.prefixes[a]
                .cmp(&self.prefixes[b])
                .then_with(|| self.cursors[a].head().0.cmp(self.cursors[b].head().0))
        } else {
            self.order
                .compare(self.cursors[a].head().0, self.cursors[b].head().0)
        };
        by_key.then_with(|| a.cmp(&b)) == Ordering::Less
    }

    fn sift_down(&mut self, mut position: usize) {
        let len = self.heap.len();
        loop {
            let left = 2 * position + 1;
            if left >= len {
                return;
            }
            let right = left + 1;
            let child = if right < len && self.before(self.heap[right], self.heap[left]) {
                right
            } else {
                left
            };
            if !self.before(self.heap[child], self.heap[position]) {
                return;
            }
            self.heap.swap(child, position);
            position = child;
        }
    }
}

#[cfg(test)]
mod tests;
