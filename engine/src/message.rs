//! What travels through a ring: buffers of records ([`Batch`]) and in-band control
//! (watermarks, checkpoint barriers, latency markers, end of input).
//!
//! A batch keeps its records' event-time timestamps beside the values
//! (structure of arrays). A stream without event time carries no timestamps at all, so
//! pipelines that do not use event time pay nothing for it.

/// Event time in milliseconds since the Unix epoch.
pub type Timestamp = i64;

/// The timestamp of a record that has none (Flink's `hasTimestamp() == false`).
pub const NO_TIMESTAMP: Timestamp = Timestamp::MIN;

/// One element of a ring.
#[derive(Debug)]
pub enum Message<T> {
    /// A buffer of records (at most `buffer.size`), in order.
    Data(Batch<T>),
    /// No record with a timestamp at or below this one will follow on this link.
    Watermark(Timestamp),
    /// The producer has had no input for a while (source idleness): until it sends
    /// data or a watermark again, this link does not hold the combined watermark back.
    Idle,
    /// Everything before this on the link belongs to checkpoint `barrier.id`.
    Barrier(crate::checkpoint::Barrier),
    /// A latency marker of a source (see [`crate::latency`]): it followed the records
    /// emitted before it.
    LatencyMarker(crate::latency::LatencyMarker),
    /// The producer subtask has ended; nothing follows.
    EndOfInput,
}

/// A buffer of records with their timestamps.
///
/// Invariant: `timestamps` is empty (no record has a timestamp) or exactly as long as
/// `values` (records without one hold [`NO_TIMESTAMP`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch<T> {
    values: Vec<T>,
    timestamps: Vec<Timestamp>,
}

impl<T> Default for Batch<T> {
    fn default() -> Self {
        Batch::new()
    }
}

impl<T> From<Vec<T>> for Batch<T> {
    fn from(values: Vec<T>) -> Self {
        Batch {
            values,
            timestamps: Vec::new(),
        }
    }
}

impl<T> Batch<T> {
    /// An empty batch that allocates nothing.
    pub const fn new() -> Self {
        Batch {
            values: Vec::new(),
            timestamps: Vec::new(),
        }
    }

    /// An empty batch with room for `capacity` values.
    pub fn with_capacity(capacity: usize) -> Self {
        Batch {
            values: Vec::with_capacity(capacity),
            timestamps: Vec::new(),
        }
    }

    /// Number of records.
    #[inline]
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Whether the batch holds no record.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// Room for values without reallocating.
    #[inline]
    pub fn capacity(&self) -> usize {
        self.values.capacity()
    }

    /// The records' values.
    #[inline]
    pub fn values(&self) -> &[T] {
        &self.values
    }

    /// The records' values, for in-place edits that keep their number.
    #[inline]
    pub fn values_mut(&mut self) -> &mut [T] {
        &mut self.values
    }

    /// The records' timestamps, if any record has one.
    #[inline]
    pub fn timestamps(&self) -> Option<&[Timestamp]> {
        (!self.timestamps.is_empty()).then_some(&self.timestamps[..])
    }

    /// The timestamp of record `index` ([`NO_TIMESTAMP`] if it has none).
    #[inline]
    pub fn timestamp(&self, index: usize) -> Timestamp {
        self.timestamps.get(index).copied().unwrap_or(NO_TIMESTAMP)
    }

    /// Appends a record without a timestamp.
    #[inline]
    pub fn push(&mut self, value: T) {
        if !self.timestamps.is_empty() {
            self.timestamps.push(NO_TIMESTAMP);
        }
        self.values.push(value);
    }

    /// Appends a record with a timestamp (or none, if `timestamp` is [`NO_TIMESTAMP`]).
    #[inline]
    pub fn push_at(&mut self, value: T, timestamp: Timestamp) {
        if self.timestamps.is_empty() {
            if timestamp == NO_TIMESTAMP {
                self.values.push(value);
                return;
            }
            self.timestamps.resize(self.values.len(), NO_TIMESTAMP);
        }
        self.timestamps.push(timestamp);
        self.values.push(value);
    }

    /// Removes every record (keeps the capacity).
    #[inline]
    pub fn clear(&mut self) {
        self.values.clear();
        self.timestamps.clear();
    }

    /// Takes every record out, in order, with its timestamp.
    #[inline]
    pub fn drain(&mut self) -> impl Iterator<Item = (T, Timestamp)> + '_ {
        let timestamps = self
            .timestamps
            .drain(..)
            .chain(std::iter::repeat(NO_TIMESTAMP));
        self.values.drain(..).zip(timestamps)
    }

    /// Takes every value out, in order, dropping the timestamps.
    #[inline]
    pub fn drain_values(&mut self) -> std::vec::Drain<'_, T> {
        self.timestamps.clear();
        self.values.drain(..)
    }

    /// Appends values computed from this batch's values to the empty batch `out`;
    /// `self` is left empty and the timestamps move along unchanged (this is `map`
    /// without a per-record branch).
    #[inline]
    pub fn map_into<O>(&mut self, out: &mut Batch<O>, function: impl FnMut(T) -> O) {
        debug_assert!(out.is_empty(), "map_into needs an empty output batch");
        out.values.extend(self.values.drain(..).map(function));
        // `out.timestamps` is empty: after the swap `self` is empty as well.
        std::mem::swap(&mut out.timestamps, &mut self.timestamps);
    }

    /// Sets every record's timestamp to `assign(value, previous timestamp)`.
    pub fn assign_timestamps(&mut self, mut assign: impl FnMut(&T, Timestamp) -> Timestamp) {
        self.timestamps.resize(self.values.len(), NO_TIMESTAMP);
        for (value, timestamp) in self.values.iter().zip(self.timestamps.iter_mut()) {
            *timestamp = assign(value, *timestamp);
        }
    }

    /// Removes the records at `indices` (ascending) and returns them, keeping the order
    /// of the others.
    pub(crate) fn remove_indices(&mut self, indices: &[usize]) -> Vec<(T, Timestamp)> {
        let mut removed = Vec::with_capacity(indices.len());
        let mut next = indices.iter().copied().peekable();
        let mut kept = Batch::with_capacity(self.len());
        for (index, (value, timestamp)) in self.drain().enumerate() {
            if next.peek() == Some(&index) {
                next.next();
                removed.push((value, timestamp));
            } else {
                kept.push_at(value, timestamp);
            }
        }
        *self = kept;
        removed
    }

    /// Keeps the records for which `keep` holds, in order.
    #[inline]
    pub fn retain(&mut self, mut keep: impl FnMut(&T) -> bool) {
        if self.timestamps.is_empty() {
            self.values.retain(keep);
            return;
        }
        let mut kept = 0;
        for index in 0..self.values.len() {
            if keep(&self.values[index]) {
                self.values.swap(kept, index);
                self.timestamps.swap(kept, index);
                kept += 1;
            }
        }
        self.values.truncate(kept);
        self.timestamps.truncate(kept);
    }

    /// Appends copies of all records of `other`.
    pub fn extend_from(&mut self, other: &Batch<T>)
    where
        T: Clone,
    {
        if other.timestamps.is_empty() {
            if self.timestamps.is_empty() {
                self.values.extend_from_slice(&other.values);
            } else {
                self.timestamps
                    .resize(self.values.len() + other.values.len(), NO_TIMESTAMP);
                self.values.extend_from_slice(&other.values);
            }
        } else {
            self.timestamps.resize(self.values.len(), NO_TIMESTAMP);
            self.timestamps.extend_from_slice(&other.timestamps);
            self.values.extend_from_slice(&other.values);
        }
    }

    /// Moves all records of `other` to the end of this batch.
    pub fn append(&mut self, other: &mut Batch<T>) {
        if other.timestamps.is_empty() {
            if !self.timestamps.is_empty() {
                self.timestamps
                    .resize(self.values.len() + other.values.len(), NO_TIMESTAMP);
            }
        } else {
            self.timestamps.resize(self.values.len(), NO_TIMESTAMP);
            self.timestamps.append(&mut other.timestamps);
        }
        self.values.append(&mut other.values);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn invariant<T>(batch: &Batch<T>) -> bool {
        batch.timestamps.is_empty() || batch.timestamps.len() == batch.values.len()
    }

    proptest! {
        #[test]
        fn operations_keep_values_and_timestamps_aligned(
            records in proptest::collection::vec((any::<u16>(), proptest::option::of(-5i64..5)), 0..40),
            split in 0usize..40,
        ) {
            let mut batch = Batch::new();
            for &(value, timestamp) in &records {
                match timestamp {
                    Some(timestamp) => batch.push_at(value, timestamp),
                    None => batch.push(value),
                }
                prop_assert!(invariant(&batch));
            }
            let expected: Vec<(u16, Timestamp)> = records
                .iter()
                .map(|&(v, t)| (v, t.unwrap_or(NO_TIMESTAMP)))
                .collect();
            // extend_from / append / retain / map_into against a plain model.
            let mut copy = Batch::new();
            let split = split.min(records.len());
            copy.extend_from(&batch);
            let mut tail = Batch::new();
            for (value, timestamp) in copy.drain().skip(split) {
                tail.push_at(value, timestamp);
            }
            let mut head: Batch<u16> = Batch::new();
            for &(value, timestamp) in &expected[..split] {
                head.push_at(value, timestamp);
            }
            head.append(&mut tail);
            prop_assert!(invariant(&head) && tail.is_empty());
            prop_assert_eq!(head.drain().collect::<Vec<_>>(), expected.clone());

            let mut kept = batch.clone();
            kept.retain(|v| v % 3 != 0);
            prop_assert!(invariant(&kept));
            let model: Vec<_> = expected.iter().copied().filter(|(v, _)| v % 3 != 0).collect();
            prop_assert_eq!(kept.drain().collect::<Vec<_>>(), model);

            let mut mapped = Batch::new();
            batch.map_into(&mut mapped, |v| u32::from(v) * 2);
            prop_assert!(batch.is_empty() && invariant(&batch) && invariant(&mapped));
            let model: Vec<_> = expected.iter().map(|&(v, t)| (u32::from(v) * 2, t)).collect();
            prop_assert_eq!(mapped.drain().collect::<Vec<_>>(), model);
        }
    }
}
