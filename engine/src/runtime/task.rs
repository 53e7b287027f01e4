//! The task loops: one per subtask of a chain, spawned on its core's executor.
//!
//! A task never blocks its executor. Each iteration it (1) checks for cancellation,
//! (2) hands held-back buffers to full rings — and if some ring is still full, takes no
//! input this round (backpressure reaches the sources this way), (3) takes input —
//! one poll of its source, or one message from each input link — and pushes it through
//! the chain, (4) sends partly filled buffers whose `buffer.timeout` passed. With
//! nothing to do it yields for `idle.spin`, then parks on a timer that doubles up to
//! `idle.park_max`, so an idle pipeline costs almost no CPU.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::mpsc::Sender;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::checkpoint::coordinator::{CheckpointIds, ToCoordinator};
use crate::checkpoint::{Barrier, CheckpointingMode, TaskSnapshot};
use crate::error::ChainResult;

use crate::channel::LinkReceiver;
use crate::clock::Clock;
use crate::config::{BufferConfig, IdleConfig};
use crate::error::{ConnectorError, EngineError};
use crate::latency::TaskLatency;
use crate::message::{Batch, Message, Timestamp};
use crate::operators::source::{Source, SourceOutput, SourceStatus};
use crate::output::Output;
use crate::runtime::doorbell::Doorbell;
use crate::runtime::JobControl;
use crate::side::SharedSideOutputs;

/// What every task needs from its job.
pub(crate) struct TaskEnv {
    /// `operator (subtask/parallelism)` of the chain head.
    pub(crate) name: String,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) control: Arc<JobControl>,
    pub(crate) buffer: BufferConfig,
    pub(crate) idle: IdleConfig,
    /// This task's wake-up bell.
    pub(crate) doorbell: Arc<Doorbell>,
    /// The side streams a source task may emit into.
    pub(crate) sides: Option<SharedSideOutputs>,
    /// How the task takes part in checkpoints (`None`: checkpointing is off).
    pub(crate) checkpoints: Option<TaskCheckpoints>,
    /// A source task restored from a checkpoint: the positions of the old subtasks and
    /// the old parallelism.
    pub(crate) restore_position: Option<RestorePosition>,
    /// The job's per-node record counters and the head's index in them (a source
    /// counts what it emits).
    pub(crate) records: (Arc<Vec<std::sync::atomic::AtomicU64>>, usize),
    /// Latency tracking (`None`: off): sources emit markers, input tasks record them.
    pub(crate) latency: Option<TaskLatency>,
}

/// The positions of a restored source's old subtasks, and their number.
pub(crate) type RestorePosition = (Vec<(u32, Vec<u8>)>, u32);

/// A task's part in checkpoints.
pub(crate) struct TaskCheckpoints {
    pub(crate) mode: CheckpointingMode,
    pub(crate) ids: Arc<CheckpointIds>,
    pub(crate) to_coordinator: Sender<ToCoordinator>,
    /// This task's subtask index (state files are per operator and subtask).
    pub(crate) subtask: u32,
    /// The source operator's id (source tasks only).
    pub(crate) source_id: Option<String>,
    /// The newest checkpoint whose barrier this task has passed on.
    last_barrier: u64,
    /// The newest complete checkpoint this task's chain was told about.
    last_complete: u64,
}

impl TaskCheckpoints {
    /// `baseline`: the requested and completed ids when the attempt started, before its
    /// coordinator did (ids of a previous attempt are neither injected nor committed;
    /// every id after them belongs to this attempt, even one asked for before this task
    /// was built).
    pub(crate) fn new(
        mode: CheckpointingMode,
        ids: Arc<CheckpointIds>,
        to_coordinator: Sender<ToCoordinator>,
        subtask: u32,
        source_id: Option<String>,
        baseline: (u64, u64),
    ) -> Self {
        let (last_barrier, last_complete) = baseline;
        TaskCheckpoints {
            mode,
            ids,
            to_coordinator,
            subtask,
            source_id,
            last_barrier,
            last_complete,
        }
    }

    /// A checkpoint asked for that this (source) task has not injected yet.
    #[inline]
    fn new_request(&mut self) -> Option<u64> {
        let requested = self.ids.requested.load(Ordering::Acquire);
        (requested > self.last_barrier).then(|| {
            self.last_barrier = requested;
            requested
        })
    }

    /// Whether a stop-with-savepoint's barrier has been sent: a source emits nothing
    /// more.
    #[inline]
    fn stopped(&self) -> bool {
        let stop_at = self.ids.stop_at.load(Ordering::Acquire);
        stop_at != 0 && self.last_barrier >= stop_at
    }

    /// A checkpoint completed that the chain was not told about yet.
    #[inline]
    fn new_completion(&mut self) -> Option<u64> {
        let completed = self.ids.completed.load(Ordering::Acquire);
        (completed > self.last_complete).then(|| {
            self.last_complete = completed;
            completed
        })
    }

    /// Snapshots the chain at barrier `id` and hands the state to the coordinator.
    fn snapshot<T: 'static>(
        &mut self,
        chain: &mut Box<dyn Output<T>>,
        id: u64,
        position: Option<Vec<u8>>,
        name: &str,
    ) -> Result<(), ConnectorError> {
        self.last_barrier = self.last_barrier.max(id);
        let mut snapshot = TaskSnapshot::default();
        let result = chain.barrier(Barrier { id }, &mut snapshot);
        let message = match result {
            Ok(()) => ToCoordinator::Ack {
                id,
                subtask: self.subtask,
                states: snapshot.states,
                positions: match (&self.source_id, position) {
                    (Some(source), Some(position)) => vec![(source.clone(), position)],
                    _ => Vec::new(),
                },
            },
            Err(error) => {
                // The checkpoint fails; the job goes on (the barrier may be lost
                // downstream, which only fails this checkpoint too).
                ToCoordinator::Decline {
                    id,
                    task: name.to_owned(),
                    reason: error.to_string(),
                }
            }
        };
        // The coordinator is gone only when the job is ending.
        let _ = self.to_coordinator.send(message);
        Ok(())
    }

    /// Tells the chain about a completed checkpoint, if one completed; returns its id.
    #[inline]
    fn notify<T: 'static>(
        &mut self,
        chain: &mut Box<dyn Output<T>>,
    ) -> Result<Option<u64>, ConnectorError> {
        match self.new_completion() {
            Some(id) => chain.checkpoint_complete(id).map(|()| Some(id)),
            None => Ok(None),
        }
    }

    /// Tells the chain, then the source, about a completed checkpoint, if one
    /// completed; the source gets the position it gave that checkpoint.
    fn notify_source<T: 'static>(
        &mut self,
        chain: &mut Box<dyn Output<T>>,
        source: &mut dyn Source<T>,
        sent: &mut SentPositions,
    ) -> ChainResult {
        if let Some(id) = self.notify(chain)? {
            if let Some(position) = sent.completed(id) {
                source.checkpoint_complete(id, &position)?;
            }
        }
        Ok(())
    }

    fn finished(&self) {
        let _ = self.to_coordinator.send(ToCoordinator::Finished);
    }
}

/// Checkpoints a source task put a position into and has not yet learnt complete,
/// oldest first, with the positions (for [`Source::checkpoint_complete`]). Bounded: a
/// checkpoint that never completes (declined, failed, timed out) is dropped once a
/// later one completes, or as the oldest of more than [`SentPositions::KEPT`].
#[derive(Default)]
struct SentPositions(VecDeque<(u64, Vec<u8>)>);

impl SentPositions {
    /// Checkpoints kept at most (one runs at a time: the others are failed ones).
    const KEPT: usize = 8;

    fn sent(&mut self, id: u64, position: Vec<u8>) {
        if self.0.len() == Self::KEPT {
            self.0.pop_front();
        }
        self.0.push_back((id, position));
    }

    /// The position sent with checkpoint `id`, dropping it and every older one.
    fn completed(&mut self, id: u64) -> Option<Vec<u8>> {
        while let Some((oldest, _)) = self.0.front() {
            if *oldest > id {
                return None;
            }
            let (oldest, position) = self.0.pop_front()?;
            if oldest == id {
                return Some(position);
            }
        }
        None
    }
}

impl TaskEnv {
    fn failed(&self, error: ConnectorError) -> EngineError {
        EngineError::TaskFailed {
            task: self.name.clone(),
            reason: error.to_string(),
        }
    }
}

/// Waiting of an idle or blocked task.
///
/// For `idle.task_spin` after it last made progress the task only yields to its core's
/// other tasks (records that follow soon are taken without a wake-up). Then it arms its
/// doorbell and looks at its inputs once more (so a ring between its look and its sleep
/// is not lost), and after that it sleeps until the doorbell rings or a fallback timer
/// fires: the timer doubles from `park_min` to `park_max` and never passes the task's
/// own deadline (a buffer timeout). Progress resets it.
struct Idle {
    config: IdleConfig,
    since: Option<Instant>,
    park: Duration,
    armed: bool,
    bell: Arc<Doorbell>,
}

impl Idle {
    fn new(config: IdleConfig, bell: &Arc<Doorbell>) -> Self {
        Idle {
            config,
            since: None,
            park: config.park_min,
            armed: false,
            bell: Arc::clone(bell),
        }
    }

    fn reset(&mut self) {
        if self.armed {
            self.bell.disarm();
            self.armed = false;
        }
        self.since = None;
        self.park = self.config.park_min;
    }

    /// Waits a little; never past `deadline`.
    async fn wait(&mut self, now: Instant, deadline: Option<Instant>) {
        let since = *self.since.get_or_insert(now);
        let before_deadline = deadline.is_none_or(|deadline| now < deadline);
        if now.saturating_duration_since(since) < self.config.task_spin && before_deadline {
            futures_lite::future::yield_now().await;
            return;
        }
        if !self.armed {
            self.bell.arm();
            self.armed = true;
            return;
        }
        let mut park = self.park;
        if let Some(deadline) = deadline {
            park = park.min(deadline.saturating_duration_since(now));
        }
        if park.is_zero() {
            futures_lite::future::yield_now().await;
        } else {
            futures_lite::future::or(self.bell.rung(), glommio::timer::sleep(park)).await;
        }
        self.bell.disarm();
        self.armed = false;
        self.park = (self.park * 2).min(self.config.park_max);
    }
}

/// After end of input: keeps handing held-back buffers over until all are sent.
async fn drain_to_end<T: 'static>(chain: &mut Box<dyn Output<T>>, env: &TaskEnv) {
    let mut idle = Idle::new(env.idle, &env.doorbell);
    loop {
        let now = env.clock.now();
        if env.control.is_cancelled() || chain.try_drain(now) {
            return;
        }
        idle.wait(now, None).await;
    }
}

/// The loop of a chain driven by a source.
pub(crate) async fn run_source_task<T: 'static>(
    mut source: Box<dyn Source<T>>,
    mut chain: Box<dyn Output<T>>,
    mut env: TaskEnv,
) -> Result<(), EngineError> {
    let mut checkpoints = env.checkpoints.take();
    let result = source_loop(&mut *source, &mut chain, &env, checkpoints.as_mut()).await;
    if let Some(checkpoints) = &checkpoints {
        checkpoints.finished();
    }
    let closed = source.close().map_err(|e| env.failed(e));
    result.and(closed)
}

async fn source_loop<T: 'static>(
    source: &mut dyn Source<T>,
    chain: &mut Box<dyn Output<T>>,
    env: &TaskEnv,
    mut checkpoints: Option<&mut TaskCheckpoints>,
) -> Result<(), EngineError> {
    let mut batch: Batch<T> = Batch::with_capacity(env.buffer.size);
    let mut idle = Idle::new(env.idle, &env.doorbell);
    let mut flush_deadline: Option<Instant> = None;
    let mut sent = SentPositions::default();
    // When the next latency marker is due (a marker goes out at once).
    let marker_interval = env.latency.as_ref().and_then(|l| l.interval);
    let mut next_marker: Option<Instant> = marker_interval.map(|_| env.clock.now());
    loop {
        if env.control.is_cancelled() {
            if let Some(checkpoints) = checkpoints.as_deref_mut() {
                checkpoints
                    .notify_source(chain, source, &mut sent)
                    .map_err(|e| env.failed(e))?;
            }
            return Ok(());
        }
        if let Some(checkpoints) = checkpoints.as_deref_mut() {
            checkpoints
                .notify_source(chain, source, &mut sent)
                .map_err(|e| env.failed(e))?;
            if checkpoints.stopped() {
                // Stop with savepoint: nothing after its barrier; wait for the end.
                let now = env.clock.now();
                chain.try_drain(now);
                idle.wait(now, None).await;
                continue;
            }
            if let Some(id) = checkpoints.new_request() {
                // Between two polls: everything emitted so far is before the barrier.
                match source.snapshot_position().map_err(|e| env.failed(e))? {
                    Some(position) => {
                        sent.sent(id, position.clone());
                        checkpoints
                            .snapshot(chain, id, Some(position), &env.name)
                            .map_err(|e| env.failed(e))?
                    }
                    None => {
                        let _ = checkpoints.to_coordinator.send(ToCoordinator::Decline {
                            id,
                            task: env.name.clone(),
                            reason: "the source cannot be replayed from a position".into(),
                        });
                        // The barrier still goes downstream, so that tasks aligning on
                        // it from several inputs do not wait for it forever (the
                        // coordinator ignores the acknowledgement of a declined id).
                        checkpoints
                            .snapshot(chain, id, None, &env.name)
                            .map_err(|e| env.failed(e))?;
                    }
                }
            }
        }
        let now = env.clock.now();
        if !chain.try_drain(now) {
            idle.wait(now, None).await;
            continue;
        }
        if let (Some(due), Some(latency), Some(interval)) =
            (next_marker, env.latency.as_ref(), marker_interval)
        {
            if now >= due {
                // Between two polls: behind every record emitted so far.
                chain
                    .latency_marker(latency.marker(now))
                    .map_err(|e| env.failed(e))?;
                // One marker per interval; after a stall, no burst to catch up.
                let next = due + interval;
                next_marker = Some(if next > now { next } else { now + interval });
            }
        }
        let mut out = SourceOutput::new(&mut batch, env.buffer.size).with_sides(env.sides.as_ref());
        let status = source.poll_next(&mut out).map_err(|e| env.failed(e))?;
        let watermark = out.take_watermark();
        let emitted_to_sides = out.emitted_to_sides();
        let progressed = !batch.is_empty() || watermark.is_some() || emitted_to_sides;
        // An empty batch still hands the side buffers on (the side-output wrapper does
        // that after every batch).
        if !batch.is_empty() || emitted_to_sides {
            env.records.0[env.records.1]
                .fetch_add(batch.len() as u64, std::sync::atomic::Ordering::Relaxed);
            chain.push_batch(&mut batch).map_err(|e| env.failed(e))?;
        }
        if let Some(watermark) = watermark {
            chain.watermark(watermark).map_err(|e| env.failed(e))?;
        }
        if progressed || flush_deadline.is_some_and(|deadline| now >= deadline) {
            flush_deadline = chain.poll_time(now).map_err(|e| env.failed(e))?;
        }
        match status {
            SourceStatus::Finished => {
                chain.end_of_input().map_err(|e| env.failed(e))?;
                drain_to_end(chain, env).await;
                return Ok(());
            }
            _ if progressed || status == SourceStatus::Ready => {
                idle.reset();
                futures_lite::future::yield_now().await;
            }
            SourceStatus::IdleUntil(until) => {
                let deadline = flush_deadline.map_or(until, |flush| flush.min(until));
                idle.wait(now, earliest(Some(deadline), next_marker)).await;
            }
            _ => idle.wait(now, earliest(flush_deadline, next_marker)).await,
        }
    }
}

/// The earlier of two optional deadlines.
fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// The loop of a chain driven by input links.
pub(crate) async fn run_input_task<T: 'static>(
    inputs: Vec<LinkReceiver<T>>,
    mut chain: Box<dyn Output<T>>,
    mut env: TaskEnv,
) -> Result<(), EngineError> {
    let mut checkpoints = env.checkpoints.take();
    let result = input_loop(inputs, &mut chain, &env, checkpoints.as_mut()).await;
    if let Some(checkpoints) = &checkpoints {
        checkpoints.finished();
    }
    result
}

/// Barrier handling of an input task.
///
/// Exactly-once: a link that delivered barrier `n` is blocked (not read) until every
/// live link delivered it; then the chain snapshots and all links are unblocked.
/// At-least-once: links are never blocked; the chain snapshots when the last live link
/// delivered barrier `n`.
fn on_barrier<T: 'static>(
    inputs: &mut [LinkReceiver<T>],
    from: Option<usize>,
    barrier: Barrier,
    seen: &mut (u64, usize),
    chain: &mut Box<dyn Output<T>>,
    env: &TaskEnv,
    checkpoints: &mut TaskCheckpoints,
) -> Result<(), EngineError> {
    let live = inputs.iter().filter(|input| !input.ended).count();
    if let Some(from) = from {
        if barrier.id < seen.0 {
            return Ok(()); // A barrier of an abandoned checkpoint.
        }
        if barrier.id > seen.0 {
            // A newer checkpoint: an older one still aligning is abandoned.
            *seen = (barrier.id, 0);
            inputs.iter_mut().for_each(|input| input.blocked_on = None);
        }
        seen.1 += 1;
        if checkpoints.mode == CheckpointingMode::ExactlyOnce {
            inputs[from].blocked_on = Some(barrier.id);
        }
    }
    if seen.0 == barrier.id && seen.1 >= live && seen.1 > 0 {
        // Aligned: never leave a link blocked, even for a barrier already passed on.
        inputs.iter_mut().for_each(|input| input.blocked_on = None);
        if checkpoints.last_barrier < barrier.id {
            checkpoints
                .snapshot(chain, barrier.id, None, &env.name)
                .map_err(|e| env.failed(e))?;
        }
    }
    Ok(())
}

async fn input_loop<T: 'static>(
    mut inputs: Vec<LinkReceiver<T>>,
    chain: &mut Box<dyn Output<T>>,
    env: &TaskEnv,
    mut checkpoints: Option<&mut TaskCheckpoints>,
) -> Result<(), EngineError> {
    let mut seen: (u64, usize) = (0, 0);
    let mut idle = Idle::new(env.idle, &env.doorbell);
    let mut flush_deadline: Option<Instant> = None;
    let mut live = inputs.len();
    let mut watermark = Timestamp::MIN;
    // Whether the chain was told that all running inputs are idle.
    let mut idle_forwarded = false;
    loop {
        if env.control.is_cancelled() {
            if let Some(checkpoints) = checkpoints.as_deref_mut() {
                checkpoints.notify(chain).map_err(|e| env.failed(e))?;
            }
            return Ok(());
        }
        if let Some(checkpoints) = checkpoints.as_deref_mut() {
            checkpoints.notify(chain).map_err(|e| env.failed(e))?;
        }
        let now = env.clock.now();
        if !chain.try_drain(now) {
            idle.wait(now, None).await;
            continue;
        }
        let mut progressed = false;
        for index in 0..inputs.len() {
            let input = &mut inputs[index];
            if input.ended || input.blocked_on.is_some() {
                continue;
            }
            let Some(message) = input.pop() else {
                continue;
            };
            progressed = true;
            match message {
                Message::Data(mut buffer) => {
                    if input.idle {
                        input.idle = false;
                        idle_forwarded = false;
                    }
                    chain.push_batch(&mut buffer).map_err(|e| env.failed(e))?;
                    input.recycle(buffer);
                }
                Message::Watermark(value) => {
                    input.watermark = value;
                    input.idle = false;
                    idle_forwarded = false;
                    advance_watermark(&inputs, &mut watermark, &mut idle_forwarded, chain, env)?;
                }
                Message::Idle => {
                    input.idle = true;
                    advance_watermark(&inputs, &mut watermark, &mut idle_forwarded, chain, env)?;
                }
                Message::LatencyMarker(marker) => {
                    if let Some(latency) = &env.latency {
                        latency
                            .book
                            .record(latency.vertex, &marker, env.clock.now());
                    }
                    chain.latency_marker(marker).map_err(|e| env.failed(e))?;
                }
                Message::Barrier(barrier) => {
                    if let Some(checkpoints) = checkpoints.as_deref_mut() {
                        on_barrier(
                            &mut inputs,
                            Some(index),
                            barrier,
                            &mut seen,
                            chain,
                            env,
                            checkpoints,
                        )?;
                    }
                }
                Message::EndOfInput => {
                    input.ended = true;
                    live -= 1;
                    if live > 0 {
                        advance_watermark(
                            &inputs,
                            &mut watermark,
                            &mut idle_forwarded,
                            chain,
                            env,
                        )?;
                        // The inputs still aligning may now all have their barrier.
                        if let Some(checkpoints) = checkpoints.as_deref_mut() {
                            if seen.0 > 0 {
                                let barrier = Barrier { id: seen.0 };
                                on_barrier(
                                    &mut inputs,
                                    None,
                                    barrier,
                                    &mut seen,
                                    chain,
                                    env,
                                    checkpoints,
                                )?;
                            }
                        }
                    }
                }
            }
            if !chain.try_drain(now) {
                break;
            }
        }
        if live == 0 {
            chain.end_of_input().map_err(|e| env.failed(e))?;
            drain_to_end(chain, env).await;
            return Ok(());
        }
        if progressed || flush_deadline.is_some_and(|deadline| now >= deadline) {
            flush_deadline = chain.poll_time(now).map_err(|e| env.failed(e))?;
        }
        if progressed {
            idle.reset();
            futures_lite::future::yield_now().await;
        } else {
            idle.wait(now, flush_deadline).await;
        }
    }
}

/// Forwards the combined watermark — the minimum over the inputs that are neither
/// ended nor idle — when it advanced; when every running input is idle, tells the chain
/// once that its input is idle.
fn advance_watermark<T: 'static>(
    inputs: &[LinkReceiver<T>],
    watermark: &mut Timestamp,
    idle_forwarded: &mut bool,
    chain: &mut Box<dyn Output<T>>,
    env: &TaskEnv,
) -> Result<(), EngineError> {
    let combined = inputs
        .iter()
        .filter(|input| !input.ended && !input.idle)
        .map(|input| input.watermark)
        .min();
    match combined {
        Some(combined) if combined > *watermark => {
            *watermark = combined;
            chain.watermark(combined).map_err(|e| env.failed(e))
        }
        Some(_) => Ok(()),
        None if inputs.iter().any(|input| !input.ended) && !*idle_forwarded => {
            *idle_forwarded = true;
            chain.idle().map_err(|e| env.failed(e))
        }
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::channel::link;
    use crate::clock::SystemClock;
    use crate::output::testing::{Capture, Event};
    use std::cell::RefCell;
    use std::rc::Rc;

    #[test]
    fn sent_positions_find_a_completed_checkpoint_and_drop_older_ones() {
        let mut sent = SentPositions::default();
        for id in [3, 4, 6] {
            sent.sent(id, vec![id as u8]);
        }
        assert_eq!(sent.completed(2), None);
        // 4 completes: 3 (declined, say) goes with it
        assert_eq!(sent.completed(4), Some(vec![4]));
        // 5 was never sent: nothing, and 6 stays
        assert_eq!(sent.completed(5), None);
        assert_eq!(sent.completed(6), Some(vec![6]));
        assert_eq!(sent.completed(6), None);
        // bounded: the oldest of too many go
        for id in 10..10 + 2 * SentPositions::KEPT as u64 {
            sent.sent(id, Vec::new());
        }
        assert_eq!(sent.0.len(), SentPositions::KEPT);
        assert_eq!(sent.completed(10), None);
    }

    #[test]
    fn the_combined_watermark_skips_idle_and_ended_inputs_and_never_regresses() {
        let config = BufferConfig::default();
        let (_a, input_a) = link::<u32>(config, "a".into());
        let (_b, input_b) = link::<u32>(config, "b".into());
        let mut inputs = vec![input_a, input_b];
        let events = Rc::new(RefCell::new(Vec::new()));
        let mut chain: Box<dyn Output<u32>> = Box::new(Capture(Rc::clone(&events)));
        let env = TaskEnv {
            name: "t".into(),
            clock: Arc::new(SystemClock),
            control: Arc::default(),
            buffer: config,
            idle: IdleConfig::default(),
            doorbell: Arc::default(),
            sides: None,
            checkpoints: None,
            restore_position: None,
            records: (Arc::new(vec![std::sync::atomic::AtomicU64::new(0)]), 0),
            latency: None,
        };
        let mut watermark = Timestamp::MIN;
        let mut idle_forwarded = false;
        let mut step = |inputs: &[LinkReceiver<u32>]| {
            advance_watermark(
                inputs,
                &mut watermark,
                &mut idle_forwarded,
                &mut chain,
                &env,
            )
            .unwrap();
        };
        inputs[0].watermark = 10;
        step(&inputs);
        assert!(
            events.borrow().is_empty(),
            "b still holds the watermark back"
        );
        inputs[1].idle = true;
        step(&inputs);
        inputs[0].idle = true;
        step(&inputs);
        step(&inputs);
        inputs[1].idle = false;
        inputs[1].watermark = 5;
        step(&inputs);
        inputs[1].watermark = 20;
        step(&inputs);
        inputs[0].ended = true;
        inputs[0].idle = false;
        step(&inputs);
        assert_eq!(
            &*events.borrow(),
            &[Event::Watermark(10), Event::Idle, Event::Watermark(20)]
        );
    }
}
