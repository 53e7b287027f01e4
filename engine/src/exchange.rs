//! The producer side of an exchange: routes each record of a batch to the link of its
//! target subtask (forward, rebalance, hash or broadcast).

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::channel::LinkSender;
use crate::error::ChainResult;
use crate::message::Timestamp;
use crate::output::Output;
use crate::partition::{key_group, subtask_for_key_group};

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
        ExchangeOutput {
            links,
            route,
            timeout,
        }
    }
}

impl<T: Clone + 'static> Output<T> for ExchangeOutput<T> {
    fn push_batch(&mut self, batch: &mut Vec<T>) -> ChainResult {
        let targets = self.links.len();
        match &mut self.route {
            Route::Single => {
                let link = &mut self.links[0];
                batch.drain(..).for_each(|record| link.push(record));
            }
            Route::Rebalance { next } => {
                for record in batch.drain(..) {
                    self.links[*next].push(record);
                    *next += 1;
                    if *next == targets {
                        *next = 0;
                    }
                }
            }
            Route::Hash {
                hash,
                max_parallelism,
            } => {
                for record in batch.drain(..) {
                    let group = key_group(hash(&record), *max_parallelism);
                    let target = subtask_for_key_group(group, *max_parallelism, targets);
                    self.links[target].push(record);
                }
            }
            Route::Broadcast => {
                let (last, rest) = self.links.split_last_mut().expect("non-empty");
                for record in batch.drain(..) {
                    for link in rest.iter_mut() {
                        link.push(record.clone());
                    }
                    last.push(record);
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

    fn flush_expired(&mut self, now: Instant) -> Option<Instant> {
        let timeout = self.timeout;
        self.links
            .iter_mut()
            .filter_map(|link| link.flush_expired(now, timeout))
            .min()
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
