//! Timers of keyed operators: event-time and processing-time timers per key, fired in
//! timestamp order, at most once per (key, time).

use std::collections::{BTreeMap, HashSet};
use std::hash::Hash;

use rustc_hash::FxBuildHasher;

use crate::message::Timestamp;

/// Which clock a timer follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeDomain {
    /// Fires when the watermark reaches its time.
    EventTime,
    /// Fires when the processing-time clock reaches its time.
    ProcessingTime,
}

/// Timers of one domain, ordered by time, deduplicated per (key, time).
///
/// Deleting is lazy: a deleted timer leaves the registered set at once (O(1)) but stays
/// in its time bucket until that time comes, where `pop_due` and `next_time` skip it.
/// (Session windows delete a timer on every merge; scanning the bucket each time cost
/// 60 % of a session benchmark.)
pub(crate) struct TimerQueue<K> {
    by_time: BTreeMap<Timestamp, Vec<K>>,
    registered: HashSet<(K, Timestamp), FxBuildHasher>,
}

impl<K: Hash + Eq + Clone> TimerQueue<K> {
    pub(crate) fn new() -> Self {
        TimerQueue {
            by_time: BTreeMap::new(),
            registered: HashSet::default(),
        }
    }

    /// Registers a timer; a second registration of the same (key, time) is a no-op.
    pub(crate) fn register(&mut self, key: &K, time: Timestamp) {
        if self.registered.insert((key.clone(), time)) {
            self.by_time.entry(time).or_default().push(key.clone());
        }
    }

    /// Deletes a timer, if registered.
    pub(crate) fn delete(&mut self, key: &K, time: Timestamp) {
        self.registered.remove(&(key.clone(), time));
    }

    /// The earliest registered timer's time (drops deleted timers in front of it).
    pub(crate) fn next_time(&mut self) -> Option<Timestamp> {
        loop {
            let mut entry = self.by_time.first_entry()?;
            let when = *entry.key();
            let registered = &self.registered;
            entry
                .get_mut()
                .retain(|key| registered.contains(&(key.clone(), when)));
            if !entry.get().is_empty() {
                return Some(when);
            }
            entry.remove();
        }
    }

    /// Removes and returns the earliest registered timer if it is due at `time`.
    pub(crate) fn pop_due(&mut self, time: Timestamp) -> Option<(Timestamp, K)> {
        loop {
            let mut entry = self.by_time.first_entry()?;
            if *entry.key() > time {
                return None;
            }
            let when = *entry.key();
            let key = entry.get_mut().pop().expect("no empty buckets are kept");
            if entry.get().is_empty() {
                entry.remove();
            }
            // A deleted timer (or a second copy of one registered again) is skipped.
            if self.registered.remove(&(key.clone(), when)) {
                return Some((when, key));
            }
        }
    }

    /// Every registered timer: (key, time), in no particular order.
    pub(crate) fn registered(&self) -> impl Iterator<Item = (&K, Timestamp)> + '_ {
        self.registered.iter().map(|(key, time)| (key, *time))
    }

    /// Drops every timer (keeps the allocated capacity; free when already empty).
    pub(crate) fn clear(&mut self) {
        if !self.registered.is_empty() {
            self.registered.clear();
        }
        self.by_time.clear();
    }

    /// Number of timers.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.registered.len()
    }
}

/// The timers of one keyed operator subtask.
pub(crate) struct TimerService<K> {
    pub(crate) event: TimerQueue<K>,
    pub(crate) processing: TimerQueue<K>,
}

impl<K: Hash + Eq + Clone> TimerService<K> {
    pub(crate) fn new() -> Self {
        TimerService {
            event: TimerQueue::new(),
            processing: TimerQueue::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Timers pop in time order, each (key, time) once, deletes respected.
        #[test]
        fn timers_fire_in_order_once(
            ops in proptest::collection::vec((0u8..4, 0i64..50, any::<bool>()), 0..80),
            watermark in 0i64..60,
        ) {
            let mut queue = TimerQueue::new();
            let mut model = std::collections::BTreeSet::new();
            for (key, time, delete) in ops {
                if delete {
                    queue.delete(&key, time);
                    model.remove(&(time, key));
                } else {
                    queue.register(&key, time);
                    model.insert((time, key));
                }
            }
            prop_assert_eq!(queue.len(), model.len());
            let mut fired = Vec::new();
            while let Some((time, key)) = queue.pop_due(watermark) {
                fired.push((time, key));
            }
            let expected: Vec<_> = model.iter().copied().filter(|(t, _)| *t <= watermark).collect();
            let mut sorted = fired.clone();
            sorted.sort();
            prop_assert_eq!(&sorted, &expected);
            prop_assert!(fired.windows(2).all(|w| w[0].0 <= w[1].0), "time order");
            prop_assert_eq!(queue.next_time(), model.iter().map(|(t, _)| *t).find(|t| *t > watermark));
        }
    }
}
