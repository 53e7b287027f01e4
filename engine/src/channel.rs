//! A link between one producer subtask and one consumer subtask: a pair of lock-free
//! SPSC rings (`rtrb`). The forward ring carries [`Message`]s (buffers of records and
//! in-band control); the return ring hands emptied buffers back to the producer. That
//! pair is the link's buffer pool: in steady state no buffer is allocated.
//!
//! A full forward ring never blocks the thread (executors are cooperative, the consumer
//! may run on the same core): the sender keeps the message in a small pending queue and
//! reports that it is blocked; the task stops pulling input until the queue drains.
//! Blocked time is counted per link ([`LinkMetrics::blocked_nanos`]), which gives the
//! backpressure ratio.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use crate::config::BufferConfig;
use crate::message::{Batch, Message, Timestamp};
use crate::runtime::doorbell::Doorbell;

/// Counters of one link, written by its producer (per buffer, never per record) and
/// read by anyone.
#[derive(Debug)]
pub struct LinkMetrics {
    /// `producer-task -> consumer-task`.
    pub name: String,
    /// Records sent.
    pub records: AtomicU64,
    /// Buffers sent.
    pub buffers: AtomicU64,
    /// Nanoseconds the producer spent unable to send because the ring was full, for
    /// stalls that have ended.
    pub blocked_nanos: AtomicU64,
    /// When the current stall began: nanoseconds since `origin`, plus one; 0 = none.
    blocked_since: AtomicU64,
    /// The start of the first stall (all instants come from the job's clock).
    origin: std::sync::OnceLock<Instant>,
}

impl LinkMetrics {
    fn new(name: String) -> Self {
        LinkMetrics {
            name,
            records: AtomicU64::new(0),
            buffers: AtomicU64::new(0),
            blocked_nanos: AtomicU64::new(0),
            blocked_since: AtomicU64::new(0),
            origin: std::sync::OnceLock::new(),
        }
    }

    /// Total time the producer has been blocked by now, the current stall included.
    pub fn blocked(&self, now: Instant) -> std::time::Duration {
        let ended = self.blocked_nanos.load(Ordering::Relaxed);
        let since = self.blocked_since.load(Ordering::Relaxed);
        let ongoing = match self.origin.get() {
            Some(origin) if since != 0 => {
                let started = *origin + std::time::Duration::from_nanos(since - 1);
                now.saturating_duration_since(started).as_nanos() as u64
            }
            _ => 0,
        };
        std::time::Duration::from_nanos(ended + ongoing)
    }

    fn stall_started(&self, at: Instant) {
        let origin = *self.origin.get_or_init(|| at);
        let since = at.saturating_duration_since(origin).as_nanos() as u64 + 1;
        self.blocked_since.store(since, Ordering::Relaxed);
    }

    fn stall_ended(&self, blocked_nanos: u64) {
        self.blocked_nanos
            .fetch_add(blocked_nanos, Ordering::Relaxed);
        self.blocked_since.store(0, Ordering::Relaxed);
    }
}

/// Creates a link with the given thresholds, between tasks that do not sleep (each
/// end gets a doorbell nobody listens to).
pub fn link<T>(buffer: BufferConfig, name: String) -> (LinkSender<T>, LinkReceiver<T>) {
    link_between(buffer, name, Arc::default(), Arc::default())
}

/// Creates a link whose sender rings `consumer` after sending and whose receiver rings
/// `producer` after taking a message (freeing a slot).
pub(crate) fn link_between<T>(
    buffer: BufferConfig,
    name: String,
    producer: Arc<Doorbell>,
    consumer: Arc<Doorbell>,
) -> (LinkSender<T>, LinkReceiver<T>) {
    let (ring, ring_rx) = rtrb::RingBuffer::new(buffer.count);
    // Every buffer of the link can sit in the return ring at once: those in the forward
    // ring, the one being consumed, the one being filled, plus any held back while blocked.
    let (returns_tx, returns) = rtrb::RingBuffer::new(2 * buffer.count + 4);
    let metrics = Arc::new(LinkMetrics::new(name));
    let sender = LinkSender {
        ring,
        returns,
        current: Batch::new(),
        marker: None,
        pending: VecDeque::new(),
        first_record_at: None,
        blocked_since: None,
        buffer_size: buffer.size,
        records_sent: 0,
        buffers_sent: 0,
        metrics: Arc::clone(&metrics),
        consumer,
    };
    let receiver = LinkReceiver {
        ring: ring_rx,
        returns: returns_tx,
        watermark: Timestamp::MIN,
        ended: false,
        idle: false,
        blocked_on: None,
        metrics,
        producer,
    };
    (sender, receiver)
}

/// The producer end of a link.
pub struct LinkSender<T> {
    ring: rtrb::Producer<Message<T>>,
    returns: rtrb::Consumer<Batch<T>>,
    /// The buffer being filled.
    current: Batch<T>,
    /// A latency marker waiting for `current` to be sent (it follows it).
    marker: Option<crate::latency::LatencyMarker>,
    /// Messages that did not fit into the ring, oldest first.
    pending: VecDeque<Message<T>>,
    first_record_at: Option<Instant>,
    blocked_since: Option<Instant>,
    buffer_size: usize,
    records_sent: u64,
    buffers_sent: u64,
    metrics: Arc<LinkMetrics>,
    /// The consumer task's doorbell, rung after each message sent.
    consumer: Arc<Doorbell>,
}

impl<T> LinkSender<T> {
    /// Appends a record without timestamp to the current buffer; sends the buffer
    /// when it is full.
    #[inline]
    pub fn push(&mut self, record: T) {
        if self.current.capacity() == 0 {
            self.current = self.fresh_buffer();
        }
        self.current.push(record);
        if self.current.len() >= self.buffer_size {
            self.send_current();
        }
    }

    /// Appends a record with its timestamp ([`NO_TIMESTAMP`](crate::message::NO_TIMESTAMP)
    /// for none); sends the buffer when it is full.
    #[inline]
    pub fn push_at(&mut self, record: T, timestamp: Timestamp) {
        if self.current.capacity() == 0 {
            self.current = self.fresh_buffer();
        }
        self.current.push_at(record, timestamp);
        if self.current.len() >= self.buffer_size {
            self.send_current();
        }
    }

    /// Sends the current buffer if it holds any record.
    pub fn flush(&mut self) {
        if !self.current.is_empty() {
            self.send_current();
        }
    }

    /// Sends the current buffer if its first record has waited `timeout` or longer.
    /// Stamps a newly started buffer with `now`. Returns the deadline of the buffer
    /// still waiting, if any.
    pub fn flush_expired(&mut self, now: Instant, timeout: std::time::Duration) -> Option<Instant> {
        if self.current.is_empty() {
            return None;
        }
        let since = *self.first_record_at.get_or_insert(now);
        let deadline = since + timeout;
        if now >= deadline {
            self.send_current();
            None
        } else {
            Some(deadline)
        }
    }

    /// Flushes the current buffer and sends a watermark after it.
    pub fn send_watermark(&mut self, watermark: Timestamp) {
        self.flush();
        self.send(Message::Watermark(watermark));
    }

    /// Flushes the current buffer and marks the link idle after it.
    pub fn send_idle(&mut self) {
        self.flush();
        self.send(Message::Idle);
    }

    /// Flushes the current buffer and sends a checkpoint barrier after it.
    pub fn send_barrier(&mut self, barrier: crate::checkpoint::Barrier) {
        self.flush();
        self.send(Message::Barrier(barrier));
    }

    /// Sends a latency marker behind the records pushed before it: at once when no
    /// buffer is being filled, else right after that buffer, when it is full or its
    /// timeout passes (so the marker measures the buffer's wait too). A link holds one
    /// marker: the older one is kept, later ones are dropped until it is sent.
    pub fn send_latency_marker(&mut self, marker: crate::latency::LatencyMarker) {
        if self.current.is_empty() {
            self.send(Message::LatencyMarker(marker));
        } else if self.marker.is_none() {
            self.marker = Some(marker);
        }
    }

    /// Flushes the current buffer and sends end-of-input after it.
    pub fn send_end_of_input(&mut self) {
        self.flush();
        self.send(Message::EndOfInput);
    }

    /// Moves held-back messages into the ring. Returns `true` when none is held back.
    pub fn try_drain(&mut self, now: Instant) -> bool {
        let mut sent = false;
        while let Some(message) = self.pending.pop_front() {
            if let Err(rtrb::PushError::Full(message)) = self.ring.push(message) {
                self.pending.push_front(message);
                if self.blocked_since.is_none() {
                    self.blocked_since = Some(now);
                    self.metrics.stall_started(now);
                }
                if sent {
                    self.consumer.ring();
                }
                return false;
            }
            sent = true;
        }
        if sent {
            self.consumer.ring();
        }
        if let Some(since) = self.blocked_since.take() {
            let blocked = now.saturating_duration_since(since).as_nanos() as u64;
            self.metrics.stall_ended(blocked);
        }
        true
    }

    /// Whether messages are held back because the ring is full.
    pub fn is_blocked(&self) -> bool {
        !self.pending.is_empty()
    }

    /// This link's counters.
    pub fn metrics(&self) -> &Arc<LinkMetrics> {
        &self.metrics
    }

    fn send_current(&mut self) {
        let fresh = self.fresh_buffer();
        let full = std::mem::replace(&mut self.current, fresh);
        self.first_record_at = None;
        self.records_sent += full.len() as u64;
        self.buffers_sent += 1;
        self.metrics
            .records
            .store(self.records_sent, Ordering::Relaxed);
        self.metrics
            .buffers
            .store(self.buffers_sent, Ordering::Relaxed);
        self.send(Message::Data(full));
        if let Some(marker) = self.marker.take() {
            self.send(Message::LatencyMarker(marker));
        }
    }

    fn send(&mut self, message: Message<T>) {
        if !self.pending.is_empty() {
            self.pending.push_back(message);
        } else {
            match self.ring.push(message) {
                Ok(()) => self.consumer.ring(),
                Err(rtrb::PushError::Full(message)) => self.pending.push_back(message),
            }
        }
    }

    fn fresh_buffer(&mut self) -> Batch<T> {
        match self.returns.pop() {
            Ok(buffer) => buffer,
            Err(_) => Batch::with_capacity(self.buffer_size),
        }
    }
}

/// The consumer end of a link.
pub struct LinkReceiver<T> {
    ring: rtrb::Consumer<Message<T>>,
    returns: rtrb::Producer<Batch<T>>,
    /// The last watermark received.
    pub watermark: Timestamp,
    /// Whether end-of-input was received.
    pub ended: bool,
    /// Whether the producer declared itself idle (and sent nothing since).
    pub idle: bool,
    /// The checkpoint barrier this link delivered and the task is aligning on: the link
    /// is not read until the other links deliver it too (exactly-once mode).
    pub(crate) blocked_on: Option<u64>,
    metrics: Arc<LinkMetrics>,
    /// The producer task's doorbell, rung after each message taken.
    producer: Arc<Doorbell>,
}

impl<T> LinkReceiver<T> {
    /// Takes the next message, if any.
    #[inline]
    pub fn pop(&mut self) -> Option<Message<T>> {
        let message = self.ring.pop().ok()?;
        self.producer.ring();
        Some(message)
    }

    /// Whether a message is waiting.
    #[inline]
    pub fn has_message(&self) -> bool {
        !self.ring.is_empty()
    }

    /// Hands an emptied buffer back to the producer's pool.
    #[inline]
    pub fn recycle(&mut self, mut buffer: Batch<T>) {
        buffer.clear();
        // A full return ring means the producer holds enough buffers: drop this one.
        let _ = self.returns.push(buffer);
    }

    /// Whether the producer has gone away without sending end-of-input (it failed).
    pub fn is_abandoned(&self) -> bool {
        self.ring.is_abandoned() && self.ring.is_empty()
    }

    /// This link's counters.
    pub fn metrics(&self) -> &Arc<LinkMetrics> {
        &self.metrics
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::{Clock, ManualClock};
    use std::time::Duration;

    fn config(size: usize, count: usize) -> BufferConfig {
        BufferConfig {
            size,
            timeout: Duration::from_millis(1),
            count,
        }
    }

    fn drain<T>(rx: &mut LinkReceiver<T>, out: &mut Vec<T>) -> usize {
        let mut controls = 0;
        while let Some(message) = rx.pop() {
            match message {
                Message::Data(mut buffer) => {
                    out.extend(buffer.drain_values());
                    rx.recycle(buffer);
                }
                _ => controls += 1,
            }
        }
        controls
    }

    #[test]
    fn full_ring_holds_back_without_loss_or_reordering() {
        let clock = ManualClock::new();
        let (mut tx, mut rx) = link::<u64>(config(4, 2), "a->b".into());
        for i in 0..100 {
            tx.push(i);
        }
        tx.send_end_of_input();
        assert!(tx.is_blocked());
        assert!(!tx.try_drain(clock.now()));
        // A stall that has not ended yet already counts.
        clock.advance(Duration::from_micros(7));
        assert!(tx.metrics().blocked(clock.now()) >= Duration::from_micros(7));
        let mut got = Vec::new();
        let mut controls = 0;
        loop {
            controls += drain(&mut rx, &mut got);
            clock.advance(Duration::from_micros(3));
            if tx.try_drain(clock.now()) {
                controls += drain(&mut rx, &mut got);
                break;
            }
        }
        assert_eq!(got, (0..100).collect::<Vec<_>>());
        assert_eq!(controls, 1);
        assert!(tx.metrics().blocked_nanos.load(Ordering::Relaxed) > 0);
        assert_eq!(tx.metrics().records.load(Ordering::Relaxed), 100);
    }

    #[test]
    fn buffers_are_recycled() {
        let (mut tx, mut rx) = link::<u64>(config(8, 4), "a->b".into());
        let mut out = Vec::new();
        // Warm up: the pool fills.
        for i in 0..64 {
            tx.push(i);
            drain(&mut rx, &mut out);
        }
        let before = tx.current.values().as_ptr();
        let mut seen_again = false;
        for i in 0..64 {
            tx.push(i);
            drain(&mut rx, &mut out);
            seen_again |= tx.current.values().as_ptr() == before;
        }
        assert!(seen_again, "a returned buffer should be reused");
    }

    #[test]
    fn timeout_flushes_partial_buffers() {
        let clock = ManualClock::new();
        let timeout = Duration::from_micros(100);
        let (mut tx, mut rx) = link::<u64>(config(1000, 4), "a->b".into());
        tx.push(1);
        let deadline = tx.flush_expired(clock.now(), timeout).expect("waiting");
        assert!(rx.pop().is_none());
        clock.advance(Duration::from_micros(99));
        assert_eq!(tx.flush_expired(clock.now(), timeout), Some(deadline));
        clock.advance(Duration::from_micros(1));
        assert_eq!(tx.flush_expired(clock.now(), timeout), None);
        assert!(matches!(rx.pop(), Some(Message::Data(b)) if b.values() == [1]));
    }

    fn marker(clock: &ManualClock, subtask: u32) -> crate::latency::LatencyMarker {
        crate::latency::LatencyMarker {
            marked: clock.now(),
            source_vertex: 0,
            subtask,
        }
    }

    #[test]
    fn a_latency_marker_follows_the_buffer_being_filled() {
        let clock = ManualClock::new();
        let timeout = Duration::from_micros(100);
        let (mut tx, mut rx) = link::<u64>(config(1000, 8), "a->b".into());
        // nothing buffered: the marker goes at once
        tx.send_latency_marker(marker(&clock, 1));
        assert!(matches!(rx.pop(), Some(Message::LatencyMarker(m)) if m.subtask == 1));
        // records buffered: the marker waits for their buffer; a second one is dropped
        tx.push(7);
        tx.flush_expired(clock.now(), timeout);
        tx.send_latency_marker(marker(&clock, 2));
        tx.send_latency_marker(marker(&clock, 3));
        tx.push(8);
        assert!(
            rx.pop().is_none(),
            "the marker must not overtake the buffer"
        );
        clock.advance(timeout);
        assert_eq!(tx.flush_expired(clock.now(), timeout), None);
        assert!(matches!(rx.pop(), Some(Message::Data(b)) if b.values() == [7, 8]));
        assert!(matches!(rx.pop(), Some(Message::LatencyMarker(m)) if m.subtask == 2));
        assert!(rx.pop().is_none());
    }

    proptest::proptest! {
        /// Whatever the interleaving of records, markers and flushes, and however small
        /// the ring, every record arrives once and in order, and every marker that
        /// arrives comes after every record pushed before it was sent.
        #[test]
        fn markers_never_overtake_records(
            ops in proptest::collection::vec(0u8..10, 1..400),
            size in 1usize..6,
            count in 1usize..4,
        ) {
            let clock = ManualClock::new();
            let (mut tx, mut rx) = link::<u64>(config(size, count), "a->b".into());
            let mut next = 0u64;
            // per marker (its subtask field numbers it): records pushed before it
            let mut before = Vec::new();
            let mut got = Vec::new();
            let mut markers_seen = Vec::new();
            let take = |rx: &mut LinkReceiver<u64>, got: &mut Vec<u64>, seen: &mut Vec<(u32, usize)>| {
                while let Some(message) = rx.pop() {
                    match message {
                        Message::Data(mut b) => {
                            got.extend(b.drain_values());
                            rx.recycle(b);
                        }
                        Message::LatencyMarker(m) => seen.push((m.subtask, got.len())),
                        _ => {}
                    }
                }
            };
            for op in ops {
                match op {
                    0..=5 => {
                        tx.push(next);
                        next += 1;
                    }
                    6 => {
                        before.push(next as usize);
                        tx.send_latency_marker(marker(&clock, before.len() as u32 - 1));
                    }
                    7 => tx.flush(),
                    8 => {
                        tx.try_drain(clock.now());
                    }
                    _ => take(&mut rx, &mut got, &mut markers_seen),
                }
            }
            tx.send_end_of_input();
            while !tx.try_drain(clock.now()) {
                take(&mut rx, &mut got, &mut markers_seen);
            }
            take(&mut rx, &mut got, &mut markers_seen);
            proptest::prop_assert_eq!(&got, &(0..next).collect::<Vec<_>>());
            for (id, received_after) in markers_seen {
                proptest::prop_assert!(received_after >= before[id as usize]);
            }
        }
    }
}
