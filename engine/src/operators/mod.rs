//! The operator family. Each operator is an [`Output`](crate::output::Output) of the
//! operator before it in its chain and owns its downstream output.
//!
//! * [`map`]: stateless record-at-a-time operators: map, filter, flat_map, identity.
//! * [`keyed`]: operators on keyed streams: reduce, process (with keyed state and timers).
//! * [`co`]: two-input operators on connected keyed streams.
//! * [`source`]: the [`Source`](source::Source) trait and built-in sources.
//! * [`sink`]: the [`Sink`](sink::Sink) trait and built-in sinks.

pub mod co;
pub mod keyed;
pub mod map;
pub mod sink;
pub mod source;

/// Forwards the control hooks (time, draining, idleness, latency markers) of an
/// operator with a single `next` output.
macro_rules! forward_control_hooks {
    () => {
        fn poll_time(&mut self, now: std::time::Instant) -> crate::error::PollResult {
            self.next.poll_time(now)
        }

        fn try_drain(&mut self, now: std::time::Instant) -> bool {
            self.next.try_drain(now)
        }

        fn idle(&mut self) -> crate::error::ChainResult {
            self.next.idle()
        }

        fn latency_marker(
            &mut self,
            marker: crate::latency::LatencyMarker,
        ) -> crate::error::ChainResult {
            self.next.latency_marker(marker)
        }
    };
}
pub(crate) use forward_control_hooks;

/// Passes checkpoint barriers and completions on (operators without state).
macro_rules! forward_checkpoint_hooks {
    () => {
        fn barrier(
            &mut self,
            barrier: crate::checkpoint::Barrier,
            snapshot: &mut crate::checkpoint::TaskSnapshot,
        ) -> crate::error::ChainResult {
            self.next.barrier(barrier, snapshot)
        }

        fn checkpoint_complete(&mut self, id: u64) -> crate::error::ChainResult {
            self.next.checkpoint_complete(id)
        }
    };
}
pub(crate) use forward_checkpoint_hooks;
