//! Blocking exchanges (BATCH mode, or asked for with [`KeyedStream::blocking`]): the
//! producers sort their records by key into runs under a memory budget, spilling runs to
//! files (eddy-storage's external sort); the consumers start only when every producer
//! has finished, and read a k-way merge of all runs for them — records of one key
//! arrive together, so a keyed operator can finish a key before the next one starts
//! (sort-based, as Flink's batch execution).
//!
//! [`KeyedStream::blocking`]: crate::api::KeyedStream::blocking
//!
//! ```text
//! producer p ── SortingOutput: one ExternalSorter per consumer (budget / sorters) ──┐
//!                                                  finish: runs → slots[c][p]     │
//! consumer c ── waits until every producer finished, merges slots[c][*] by key ◀──┘
//! ```
//!
//! A record is spilled as `(timestamp, record)` encoded with postcard (serde); its sort
//! key is the 64-bit hash of its key, big-endian, so equal keys are adjacent (two keys
//! with the same hash may interleave; operators compare the keys themselves).

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use eddy_storage::spill::{ExternalSorter, Lexicographic, SortedRuns, SorterConfig, SpillOwner};

use crate::checkpoint::{decode, encode_into, Barrier, StateData, TaskSnapshot};
use crate::error::{ChainResult, ConnectorError, EngineError, PollResult};
use crate::exchange::HashFn;
use crate::graph::{downcast, AnyBox, TaskFuture};
use crate::message::{Batch, Timestamp, NO_TIMESTAMP};
use crate::output::Output;
use crate::partition::subtask_for_key_group;
use crate::runtime::doorbell::Doorbell;
use crate::runtime::task::TaskEnv;

/// Where a keyed operator reading sorted input (behind a blocking exchange) stands: the
/// key hash whose keys it holds. Records of one hash arrive together, and the watermark
/// stands still until the end, so the keys of a hash are complete when the next hash
/// starts: the operator then fires what end of input would fire for them and drops
/// their state (windows, `process`-based joins), holding one hash's keys at a time.
#[derive(Debug, Default)]
pub(crate) struct SortedKeys {
    hash: Option<u64>,
    /// The most keys held at once (1 unless keys share a hash).
    pub(crate) keys_held_max: usize,
    /// Keys finished before end of input.
    pub(crate) keys_finished: u64,
}

impl SortedKeys {
    /// A record of key hash `hash` arrives: returns the previous hash if its keys are
    /// complete now.
    #[inline]
    pub(crate) fn advance(&mut self, hash: u64) -> Option<u64> {
        match self.hash.replace(hash) {
            Some(previous) if previous != hash => Some(previous),
            _ => None,
        }
    }

    /// The keys of a hash were finished; `keys` of them were held.
    pub(crate) fn finished(&mut self, keys: usize) {
        self.keys_held_max = self.keys_held_max.max(keys);
        self.keys_finished += keys as u64;
    }
}

/// What producers hand over to consumers on one blocking edge.
pub(crate) struct BlockingShared {
    /// `slots[consumer][producer]`: the producer's sorted runs for that consumer.
    slots: Mutex<Vec<Vec<Option<SortedRuns>>>>,
    /// Producers that have not finished yet.
    running: AtomicUsize,
    /// The consumers' doorbells, rung when the last producer finished.
    consumers: Vec<Arc<Doorbell>>,
}

impl BlockingShared {
    pub(crate) fn new(producers: usize, consumers: Vec<Arc<Doorbell>>) -> Arc<Self> {
        Arc::new(BlockingShared {
            slots: Mutex::new(
                (0..consumers.len())
                    .map(|_| (0..producers).map(|_| None).collect())
                    .collect(),
            ),
            running: AtomicUsize::new(producers),
            consumers,
        })
    }

    fn finished(&self) -> bool {
        self.running.load(Ordering::Acquire) == 0
    }

    fn take(&self, consumer: usize) -> Vec<SortedRuns> {
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        slots[consumer]
            .iter_mut()
            .filter_map(Option::take)
            .collect()
    }
}

/// Where and how much the sorters of a job may spill.
#[derive(Debug, Clone)]
pub(crate) struct SpillSettings {
    pub(crate) dir: PathBuf,
    pub(crate) job: String,
    /// The budget of one sorter (the job's budget shared by all of its sorters).
    pub(crate) sorter_budget_bytes: usize,
}

/// The typed pieces of a blocking edge, made where the record type is known to be
/// spillable.
pub(crate) trait SpillKit: Send + Sync {
    /// `Box<dyn Output<T>>` sorting producer `producer`'s records into runs.
    fn sorting_output(
        &self,
        shared: Arc<BlockingShared>,
        producer: usize,
        operator: &str,
        max_parallelism: usize,
        settings: &SpillSettings,
    ) -> AnyBox;

    /// The task of a consumer whose inputs are blocking edges: waits for their
    /// producers, then feeds `head` (`Box<dyn Output<T>>`) the merged runs.
    fn input_task(
        &self,
        inputs: Vec<Arc<BlockingShared>>,
        consumer: usize,
        head: AnyBox,
        env: TaskEnv,
    ) -> TaskFuture;
}

/// The [`SpillKit`] of spillable records `T` with key hash `hash`.
pub(crate) struct TypedSpill<T> {
    pub(crate) hash: HashFn<T>,
}

impl<T: StateData + Clone + Send> SpillKit for TypedSpill<T> {
    fn sorting_output(
        &self,
        shared: Arc<BlockingShared>,
        producer: usize,
        operator: &str,
        max_parallelism: usize,
        settings: &SpillSettings,
    ) -> AnyBox {
        let consumers = shared.consumers.len();
        let sorters = (0..consumers)
            .map(|consumer| {
                ExternalSorter::new(SorterConfig {
                    spill_dir: settings.dir.clone(),
                    owner: SpillOwner::new(
                        settings.job.clone(),
                        format!("{operator}-to-{consumer}"),
                        producer as u32,
                    ),
                    memory_budget_bytes: settings.sorter_budget_bytes,
                })
            })
            .collect();
        let output: Box<dyn Output<T>> = Box::new(SortingOutput {
            hash: Arc::clone(&self.hash),
            groups: max_parallelism as u64,
            target_of_group: (0..max_parallelism)
                .map(|group| subtask_for_key_group(group, max_parallelism, consumers) as u32)
                .collect(),
            sorters,
            shared,
            producer,
            scratch: Vec::new(),
            done: false,
        });
        Box::new(output)
    }

    fn input_task(
        &self,
        inputs: Vec<Arc<BlockingShared>>,
        consumer: usize,
        head: AnyBox,
        env: TaskEnv,
    ) -> TaskFuture {
        let head = downcast::<Box<dyn Output<T>>>(head);
        Box::pin(run_blocking_input_task::<T>(inputs, consumer, head, env))
    }
}

/// The producer side: sorts records into runs per consumer.
struct SortingOutput<T> {
    hash: HashFn<T>,
    groups: u64,
    target_of_group: Box<[u32]>,
    sorters: Vec<ExternalSorter>,
    shared: Arc<BlockingShared>,
    producer: usize,
    scratch: Vec<u8>,
    done: bool,
}

fn spill_error(error: eddy_storage::StorageError) -> ConnectorError {
    ConnectorError::with_source("blocking exchange", error)
}

impl<T: StateData> Output<T> for SortingOutput<T> {
    fn push_batch(&mut self, batch: &mut Batch<T>) -> ChainResult {
        for (record, timestamp) in batch.drain() {
            let hash = (self.hash)(&record);
            let target = self.target_of_group[(hash % self.groups) as usize] as usize;
            self.scratch.clear();
            self.scratch = encode_into(&(timestamp, &record), std::mem::take(&mut self.scratch))?;
            self.sorters[target]
                .push(&hash.to_be_bytes(), &self.scratch)
                .map_err(spill_error)?;
        }
        Ok(())
    }

    fn watermark(&mut self, _watermark: Timestamp) -> ChainResult {
        // The consumer sees the whole input at once: event time is +∞ for it.
        Ok(())
    }

    fn idle(&mut self) -> ChainResult {
        Ok(())
    }

    fn end_of_input(&mut self) -> ChainResult {
        if self.done {
            return Ok(());
        }
        self.done = true;
        let mut runs = Vec::with_capacity(self.sorters.len());
        for sorter in self.sorters.drain(..) {
            runs.push(sorter.finish().map_err(spill_error)?);
        }
        {
            let mut slots = self.shared.slots.lock().unwrap_or_else(|e| e.into_inner());
            for (consumer, runs) in runs.into_iter().enumerate() {
                slots[consumer][self.producer] = Some(runs);
            }
        }
        if self.shared.running.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.shared.consumers.iter().for_each(|bell| bell.ring());
        }
        Ok(())
    }

    fn poll_time(&mut self, _now: Instant) -> PollResult {
        Ok(None)
    }

    fn try_drain(&mut self, _now: Instant) -> bool {
        true
    }

    fn barrier(&mut self, barrier: Barrier, _snapshot: &mut TaskSnapshot) -> ChainResult {
        Err(ConnectorError::new(format!(
            "checkpoint {} cannot pass a blocking exchange (a blocking stage is recomputed \
             as a whole, as in Flink's batch execution)",
            barrier.id
        )))
    }

    fn checkpoint_complete(&mut self, _id: u64) -> ChainResult {
        Ok(())
    }

    fn latency_marker(&mut self, _marker: crate::latency::LatencyMarker) -> ChainResult {
        // A materialised exchange ends markers (see crate::latency).
        Ok(())
    }
}

/// The consumer side: waits for every producer of every input, then pushes the merge
/// of all runs, in key order, through the chain.
async fn run_blocking_input_task<T: StateData>(
    inputs: Vec<Arc<BlockingShared>>,
    consumer: usize,
    mut chain: Box<dyn Output<T>>,
    env: TaskEnv,
) -> Result<(), EngineError> {
    // Wait for the producers (they ring this task's doorbell when the last one ends).
    loop {
        if env.control.is_cancelled() {
            return Ok(());
        }
        if inputs.iter().all(|input| input.finished()) {
            break;
        }
        env.doorbell.arm();
        if inputs.iter().all(|input| input.finished()) {
            env.doorbell.disarm();
            break;
        }
        futures_lite::future::or(
            env.doorbell.rung(),
            glommio::timer::sleep(env.idle.park_max),
        )
        .await;
        env.doorbell.disarm();
    }
    let runs: Vec<SortedRuns> = inputs
        .iter()
        .flat_map(|input| input.take(consumer))
        .collect();
    // One merge over every producer's runs: equal keys in producer order, then in the
    // order each producer sorted them.
    let mut merge = SortedRuns::merge_all(&runs, &Lexicographic);
    let failed = |error: ConnectorError| EngineError::TaskFailed {
        task: env.name.clone(),
        reason: error.to_string(),
    };
    let mut batch: Batch<T> = Batch::with_capacity(env.buffer.size);
    while let Some(next) = merge.next_record() {
        let (_key, value) = next.map_err(|e| failed(spill_error(e)))?;
        let (timestamp, record): (Timestamp, T) = decode(value).map_err(failed)?;
        if timestamp == NO_TIMESTAMP {
            batch.push(record);
        } else {
            batch.push_at(record, timestamp);
        }
        if batch.len() >= env.buffer.size {
            chain.push_batch(&mut batch).map_err(failed)?;
            // Backpressure: wait until what the chain holds back is handed on.
            loop {
                if env.control.is_cancelled() {
                    return Ok(());
                }
                if chain.try_drain(env.clock.now()) {
                    break;
                }
                futures_lite::future::yield_now().await;
            }
            futures_lite::future::yield_now().await;
        }
    }
    chain.push_batch(&mut batch).map_err(failed)?;
    chain.watermark(Timestamp::MAX).map_err(failed)?;
    chain.end_of_input().map_err(failed)?;
    loop {
        if env.control.is_cancelled() || chain.try_drain(env.clock.now()) {
            break;
        }
        futures_lite::future::yield_now().await;
    }
    // The runs (and their spill files) go away here.
    drop(merge);
    drop(runs);
    Ok(())
}
