//! The producer side of an exchange: routes each record of a batch to the link of its
//! target subtask (forward, rebalance, hash or broadcast).

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::channel::LinkSender;
use crate::error::{ChainResult, PollResult};
use crate::message::{Batch, Timestamp};
use crate::output::Output;
use crate::partition::subtask_for_key_group;

/// A key hash function, as `key_by` provides it.
pub type HashFn<T> = Arc<dyn Fn(&T) -> u64 + Send + Sync>;

/// How this producer subtask picks the link of a record.
pub(crate) enum Route<T> {
    /// One link only (forward).
    Single,
    /// Round-robin over the links, starting at `next`.
    Rebalance { next: usize },
    /// By key group.
    Hash {
        hash: HashFn<T>,
        max_parallelism: usize,
    },
    /// By key group, with the target of every key group looked up in a table
    /// (built from `Hash` by [`ExchangeOutput::new`]; no division per record).
    HashTable {
        hash: HashFn<T>,
        /// `key_group(hash) = hash % groups`, done as `hash & mask` when `groups` is a
        /// power of two.
        groups: u64,
        mask: Option<u64>,
        target_of_group: Box<[u32]>,
    },
    /// To every link.
    Broadcast,
}

/// Writes records into the links to the consumer subtasks.
pub(crate) struct ExchangeOutput<T> {
    links: Vec<LinkSender<T>>,
    route: Route<T>,
    timeout: Duration,
}

impl<T: Clone + 'static> ExchangeOutput<T> {
    /// `links[j]` leads to consumer subtask `j` (or the single link for `Route::Single`).
    pub(crate) fn new(links: Vec<LinkSender<T>>, route: Route<T>, timeout: Duration) -> Self {
        assert!(!links.is_empty(), "an exchange needs at least one link");
        let route = match route {
            Route::Hash {
                hash,
                max_parallelism,
            } => Route::HashTable {
                hash,
                groups: max_parallelism as u64,
                mask: max_parallelism
                    .is_power_of_two()
                    .then(|| max_parallelism as u64 - 1),
                target_of_group: (0..max_parallelism)
                    .map(|group| subtask_for_key_group(group, max_parallelism, links.len()) as u32)
                    .collect(),
            },
            other => other,
        };
        ExchangeOutput {
            links,
            route,
            timeout,
        }
    }
}

impl<T: Clone + 'static> Output<T> for ExchangeOutput<T> {
    fn push_batch(&mut self, batch: &mut Batch<T>) -> ChainResult {
        let targets = self.links.len();
        let timed = batch.timestamps().is_some();
        match &mut self.route {
            Route::Single if !timed => {
                let link = &mut self.links[0];
                batch.drain_values().for_each(|record| link.push(record));
            }
            Route::Single => {
                let link = &mut self.links[0];
                batch
                    .drain()
                    .for_each(|(record, timestamp)| link.push_at(record, timestamp));
            }
            Route::Rebalance { next } => {
                for (record, timestamp) in batch.drain() {
                    self.links[*next].push_at(record, timestamp);
                    *next += 1;
                    if *next == targets {
                        *next = 0;
                    }
                }
            }
            Route::Hash { .. } => unreachable!("ExchangeOutput::new turns Hash into HashTable"),
            Route::HashTable {
                hash,
                groups,
                mask,
                target_of_group,
            } => {
                for (record, timestamp) in batch.drain() {
                    let hashed = hash(&record);
                    let group = match mask {
                        Some(mask) => hashed & *mask,
                        None => hashed % *groups,
                    };
                    let target = target_of_group[group as usize] as usize;
                    self.links[target].push_at(record, timestamp);
                }
            }
            Route::Broadcast => {
                let (last, rest) = self.links.split_last_mut().expect("non-empty");
                for (record, timestamp) in batch.drain() {
                    for link in rest.iter_mut() {
                        link.push_at(record.clone(), timestamp);
                    }
                    last.push_at(record, timestamp);
                }
            }
        }
        if self.timeout.is_zero() {
            self.links.iter_mut().for_each(LinkSender::flush);
        }
        Ok(())
    }

    fn watermark(&mut self, watermark: Timestamp) -> ChainResult {
        for link in &mut self.links {
            link.send_watermark(watermark);
        }
        Ok(())
    }

    fn end_of_input(&mut self) -> ChainResult {
        for link in &mut self.links {
            link.send_end_of_input();
        }
        Ok(())
    }

    fn barrier(
        &mut self,
        barrier: crate::checkpoint::Barrier,
        _snapshot: &mut crate::checkpoint::TaskSnapshot,
    ) -> ChainResult {
        // To every consumer, behind the records before it (the buffer is flushed).
        for link in &mut self.links {
            link.send_barrier(barrier);
        }
        Ok(())
    }

    fn checkpoint_complete(&mut self, _id: u64) -> ChainResult {
        Ok(())
    }

    fn latency_marker(&mut self, marker: crate::latency::LatencyMarker) -> ChainResult {
        // To every consumer (Flink picks one at random; with every consumer measured,
        // each downstream subtask reports every path).
        for link in &mut self.links {
            link.send_latency_marker(marker);
        }
        Ok(())
    }

    fn idle(&mut self) -> ChainResult {
        for link in &mut self.links {
            link.send_idle();
        }
        Ok(())
    }

    fn poll_time(&mut self, now: Instant) -> PollResult {
        let timeout = self.timeout;
        Ok(self
            .links
            .iter_mut()
            .filter_map(|link| link.flush_expired(now, timeout))
            .min())
    }

    fn try_drain(&mut self, now: Instant) -> bool {
        // Every link gets its turn (no short-circuit), so all of them progress.
        let mut clear = true;
        for link in &mut self.links {
            clear &= link.try_drain(now);
        }
        clear
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::channel::link;
    use crate::config::BufferConfig;
    use crate::message::Message;
    use crate::partition::{key_group, key_hash};
    use proptest::prelude::*;

    proptest! {
        /// The table route sends every key where the key-group formula says.
        #[test]
        fn hash_route_follows_key_groups(
            keys in proptest::collection::vec(any::<u32>(), 1..200),
            targets in 1usize..6,
            max_parallelism in prop_oneof![Just(128usize), Just(100usize), Just(256usize)],
        ) {
            let buffer = BufferConfig { size: 1, timeout: Duration::ZERO, count: 1024 };
            let (senders, mut receivers): (Vec<_>, Vec<_>) =
                (0..targets).map(|_| link::<u32>(buffer, "t".into())).unzip();
            let hash: HashFn<u32> = Arc::new(|key: &u32| key_hash(key));
            let mut output = ExchangeOutput::new(
                senders,
                Route::Hash { hash, max_parallelism },
                Duration::ZERO,
            );
            output.push_batch(&mut Batch::from(keys.clone())).unwrap();
            for (target, receiver) in receivers.iter_mut().enumerate() {
                while let Some(Message::Data(mut buffer)) = receiver.pop() {
                    for key in buffer.drain_values() {
                        let group = key_group(key_hash(&key), max_parallelism);
                        prop_assert_eq!(subtask_for_key_group(group, max_parallelism, targets), target);
                    }
                }
            }
        }
    }
}
