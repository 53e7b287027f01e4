//! Injected time (STYLE.md #10): engine code asks a [`Clock`] instead of the OS, so
//! tests can drive time by hand. This is the only module allowed to read the OS clock.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A source of monotonic and wall-clock time.
pub trait Clock: std::fmt::Debug + Send + Sync + 'static {
    /// Monotonic time, for deadlines and durations.
    fn now(&self) -> Instant;
    /// Milliseconds since the Unix epoch, for processing-time timestamps.
    fn wall_millis(&self) -> i64;
}

/// The operating system's clocks.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    #[allow(clippy::disallowed_methods)] // the one place that reads the OS clock
    fn now(&self) -> Instant {
        Instant::now()
    }

    #[allow(clippy::disallowed_methods)] // the one place that reads the OS clock
    fn wall_millis(&self) -> i64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64)
    }
}

/// A clock that only moves when told to; for tests.
#[derive(Debug, Clone)]
pub struct ManualClock {
    origin: Instant,
    offset_nanos: Arc<AtomicU64>,
}

impl Default for ManualClock {
    fn default() -> Self {
        ManualClock::new()
    }
}

impl ManualClock {
    /// A clock standing at an arbitrary origin.
    pub fn new() -> Self {
        ManualClock {
            origin: SystemClock.now(),
            offset_nanos: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: Duration) {
        self.offset_nanos
            .fetch_add(by.as_nanos() as u64, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Instant {
        self.origin + Duration::from_nanos(self.offset_nanos.load(Ordering::SeqCst))
    }

    fn wall_millis(&self) -> i64 {
        (self.offset_nanos.load(Ordering::SeqCst) / 1_000_000) as i64
    }
}

/// Waits, from a plain (non-executor) thread, until `ready` holds or `deadline` passes:
/// spins briefly, then parks with a growing timeout. Returns whether `ready` held.
pub(crate) fn wait_until(deadline: Option<Instant>, mut ready: impl FnMut() -> bool) -> bool {
    let clock = SystemClock;
    let mut spins = 0u32;
    let mut park = Duration::from_micros(5);
    loop {
        if ready() {
            return true;
        }
        if let Some(deadline) = deadline {
            if clock.now() >= deadline {
                return ready();
            }
        }
        if spins < 200 {
            spins += 1;
            std::hint::spin_loop();
        } else {
            std::thread::park_timeout(park);
            park = (park * 2).min(Duration::from_micros(500));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_told() {
        let clock = ManualClock::new();
        let start = clock.now();
        assert_eq!(clock.now(), start);
        clock.advance(Duration::from_millis(5));
        assert_eq!(clock.now() - start, Duration::from_millis(5));
        assert_eq!(clock.wall_millis(), 5);
    }
}
