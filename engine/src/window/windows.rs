//! The windows themselves: [`TimeWindow`] (`[start, end)` in milliseconds, as Flink's
//! `TimeWindow`) and [`GlobalWindow`] (the single window of [`GlobalWindows`] and count
//! windows).
//!
//! A window is a value: equal windows of the same key share one state entry. Windows
//! are ordered (by start, then end) so that a key's windows can be kept sorted and
//! found by binary search.
//!
//! [`GlobalWindows`]: super::assigners::GlobalWindows

use std::fmt::Debug;
use std::hash::Hash;

use crate::message::Timestamp;

/// What the window operator needs of a window type (serde: windows are checkpointed).
pub trait Window:
    Clone + Eq + Ord + Hash + Debug + Send + Sync + crate::checkpoint::StateData
{
    /// The largest timestamp that still belongs to the window; results of the window
    /// carry it as their timestamp, and the event-time trigger fires when the watermark
    /// reaches it.
    fn max_timestamp(&self) -> Timestamp;

    /// Whether two windows of a merging assigner overlap or touch, so that they merge
    /// (Flink's `TimeWindow.intersects`).
    fn intersects(&self, other: &Self) -> bool;

    /// The smallest window covering both (Flink's `TimeWindow.cover`).
    fn cover(&self, other: &Self) -> Self;
}

/// A window of event or processing time: `start` inclusive, `end` exclusive, in
/// milliseconds since the epoch.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct TimeWindow {
    /// First millisecond of the window.
    pub start: Timestamp,
    /// First millisecond after the window.
    pub end: Timestamp,
}

impl TimeWindow {
    /// The window `[start, end)`.
    pub const fn new(start: Timestamp, end: Timestamp) -> Self {
        TimeWindow { start, end }
    }
}

impl Window for TimeWindow {
    /// `end - 1`, as Flink's `TimeWindow.maxTimestamp()`.
    #[inline]
    fn max_timestamp(&self) -> Timestamp {
        self.end.saturating_sub(1)
    }

    #[inline]
    fn intersects(&self, other: &Self) -> bool {
        self.start <= other.end && self.end >= other.start
    }

    #[inline]
    fn cover(&self, other: &Self) -> Self {
        TimeWindow {
            start: self.start.min(other.start),
            end: self.end.max(other.end),
        }
    }
}

/// The one window that holds every record of a key ([`GlobalWindows`], count windows).
/// Its max timestamp is `Timestamp::MAX`: it never ends by itself, only its trigger
/// fires it.
///
/// [`GlobalWindows`]: super::assigners::GlobalWindows
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Default,
    serde::Serialize,
    serde::Deserialize,
)]
pub struct GlobalWindow;

impl Window for GlobalWindow {
    #[inline]
    fn max_timestamp(&self) -> Timestamp {
        Timestamp::MAX
    }

    #[inline]
    fn intersects(&self, _other: &Self) -> bool {
        true
    }

    #[inline]
    fn cover(&self, _other: &Self) -> Self {
        GlobalWindow
    }
}

/// The start of the window of `size` (shifted by `offset`) that holds `timestamp`:
/// windows start at `offset + k * size` for any integer `k`, aligned to the epoch
/// (Flink's `TimeWindow.getWindowStartWithOffset`). `size` must be positive.
#[inline]
pub fn window_start_with_offset(timestamp: Timestamp, offset: i64, size: i64) -> Timestamp {
    debug_assert!(size > 0, "window size must be positive");
    let remainder = match timestamp.checked_sub(offset) {
        Some(shifted) => shifted % size,
        // Only near the ends of the i64 range.
        None => ((i128::from(timestamp) - i128::from(offset)) % i128::from(size)) as i64,
    };
    if remainder < 0 {
        timestamp.saturating_sub(remainder + size)
    } else {
        timestamp - remainder
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn max_timestamp_is_end_minus_one() {
        assert_eq!(TimeWindow::new(0, 10).max_timestamp(), 9);
        assert_eq!(GlobalWindow.max_timestamp(), Timestamp::MAX);
    }

    #[test]
    fn touching_windows_intersect_as_in_flink() {
        let a = TimeWindow::new(0, 10);
        assert!(a.intersects(&TimeWindow::new(10, 20)));
        assert!(!a.intersects(&TimeWindow::new(11, 20)));
        assert_eq!(a.cover(&TimeWindow::new(5, 30)), TimeWindow::new(0, 30));
    }

    #[test]
    fn window_starts_follow_flink() {
        assert_eq!(window_start_with_offset(0, 0, 10), 0);
        assert_eq!(window_start_with_offset(9, 0, 10), 0);
        assert_eq!(window_start_with_offset(10, 0, 10), 10);
        assert_eq!(window_start_with_offset(-1, 0, 10), -10);
        assert_eq!(window_start_with_offset(12, 3, 10), 3);
        assert_eq!(window_start_with_offset(2, 3, 10), -7);
        assert_eq!(window_start_with_offset(2, -3, 10), -3);
        // No overflow at the ends of the range.
        let start = window_start_with_offset(Timestamp::MIN, 5, 10);
        assert!(start <= Timestamp::MIN + 10);
        assert!(window_start_with_offset(Timestamp::MAX, -5, 10) > Timestamp::MAX - 10);
    }

    proptest! {
        #[test]
        fn the_window_start_holds_the_timestamp(
            timestamp in -1_000_000i64..1_000_000,
            size in 1i64..1000,
            offset in -999i64..1000,
        ) {
            let offset = offset % size;
            let start = window_start_with_offset(timestamp, offset, size);
            prop_assert!(start <= timestamp && timestamp < start + size);
            prop_assert_eq!((start - offset).rem_euclid(size), 0);
        }
    }
}
