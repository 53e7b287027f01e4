//! Window assigners put each element into zero or more windows (Flink's
//! `WindowAssigner`), by its event-time timestamp or by the job clock:
//!
//! | assigner | windows of an element at time `t` | default trigger |
//! | --- | --- | --- |
//! | [`TumblingEventTimeWindows`] / [`TumblingProcessingTimeWindows`] | the one `[s, s + size)` with `s = offset + k·size ≤ t` | event / processing time |
//! | [`SlidingEventTimeWindows`] / [`SlidingProcessingTimeWindows`] | every `[s, s + size)` with `s = offset + k·slide`, `s ≤ t < s + size` | event / processing time |
//! | [`EventTimeSessionWindows`] / [`ProcessingTimeSessionWindows`] | `[t, t + gap)`, merged with every window it overlaps or touches | event / processing time |
//! | [`GlobalWindows`] | the single [`GlobalWindow`] | [`NeverTrigger`] |
//!
//! Window starts are aligned to the epoch as in Flink
//! ([`window_start_with_offset`]); the offset (which may be negative, e.g. to align
//! days to a time zone) is taken modulo the size (tumbling) or slide (sliding).
//! Processing-time assigners read the job's [`Clock`](crate::clock::Clock) once per
//! input buffer.

use std::time::Duration;

use crate::message::Timestamp;

use super::triggers::{EventTimeTrigger, NeverTrigger, ProcessingTimeTrigger, Trigger};
use super::windows::{window_start_with_offset, GlobalWindow, TimeWindow, Window};

/// Assigns elements to windows (Flink's `WindowAssigner`). One clone runs per subtask.
pub trait WindowAssigner<T>: Clone + Send + Sync + 'static {
    /// The windows it makes.
    type Window: Window;
    /// The trigger used unless the user sets one.
    type Trigger: Trigger<T, Self::Window>;

    /// Appends the windows of `element` (event time `timestamp`, which is never
    /// `NO_TIMESTAMP` for an event-time assigner; processing time `now_ms`) to
    /// `windows`.
    fn assign_windows(
        &self,
        element: &T,
        timestamp: Timestamp,
        now_ms: i64,
        windows: &mut Vec<Self::Window>,
    );

    /// The default trigger.
    fn default_trigger(&self) -> Self::Trigger;

    /// Whether windows follow event time (then lateness applies and state is cleaned
    /// up by the watermark) rather than processing time.
    fn is_event_time(&self) -> bool;

    /// Whether windows merge (session windows).
    fn is_merging(&self) -> bool {
        false
    }

    /// Checks the parameters; the message says what is wrong.
    fn validate(&self) -> Result<(), String> {
        Ok(())
    }
}

fn millis(duration: Duration) -> i64 {
    duration.as_millis().min(i64::MAX as u128) as i64
}

fn positive(what: &str, name: &str, value_ms: i64) -> Result<(), String> {
    if value_ms > 0 {
        Ok(())
    } else {
        Err(format!(
            "{what}: the {name} must be at least 1 ms, got {value_ms} ms"
        ))
    }
}

macro_rules! tumbling {
    ($(#[$doc:meta])* $name:ident, event_time = $event:expr, $trigger:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy)]
        pub struct $name {
            size_ms: i64,
            offset_ms: i64,
        }

        impl $name {
            /// Windows of `size`, aligned to the epoch.
            pub fn of(size: Duration) -> Self {
                $name { size_ms: millis(size), offset_ms: 0 }
            }

            /// Shifts the window starts by `offset_ms` (may be negative; taken modulo
            /// the size).
            pub fn with_offset_ms(mut self, offset_ms: i64) -> Self {
                self.offset_ms = offset_ms;
                self
            }
        }

        impl<T> WindowAssigner<T> for $name {
            type Window = TimeWindow;
            type Trigger = $trigger;

            #[inline]
            fn assign_windows(&self, _element: &T, timestamp: Timestamp, now_ms: i64, windows: &mut Vec<TimeWindow>) {
                let time = if $event { timestamp } else { now_ms };
                let start = window_start_with_offset(time, self.offset_ms % self.size_ms, self.size_ms);
                windows.push(TimeWindow::new(start, start.saturating_add(self.size_ms)));
            }

            fn default_trigger(&self) -> $trigger {
                $trigger
            }

            fn is_event_time(&self) -> bool {
                $event
            }

            fn validate(&self) -> Result<(), String> {
                positive(stringify!($name), "size", self.size_ms)
            }
        }
    };
}

tumbling!(
    /// Fixed-size, non-overlapping windows of event time (Flink's
    /// `TumblingEventTimeWindows`).
    TumblingEventTimeWindows,
    event_time = true,
    EventTimeTrigger
);
tumbling!(
    /// Fixed-size, non-overlapping windows of processing time (Flink's
    /// `TumblingProcessingTimeWindows`).
    TumblingProcessingTimeWindows,
    event_time = false,
    ProcessingTimeTrigger
);

macro_rules! sliding {
    ($(#[$doc:meta])* $name:ident, event_time = $event:expr, $trigger:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy)]
        pub struct $name {
            size_ms: i64,
            slide_ms: i64,
            offset_ms: i64,
        }

        impl $name {
            /// Windows of `size` starting every `slide`, aligned to the epoch.
            pub fn of(size: Duration, slide: Duration) -> Self {
                $name { size_ms: millis(size), slide_ms: millis(slide), offset_ms: 0 }
            }

            /// Shifts the window starts by `offset_ms` (may be negative; taken modulo
            /// the slide).
            pub fn with_offset_ms(mut self, offset_ms: i64) -> Self {
                self.offset_ms = offset_ms;
                self
            }
        }

        impl<T> WindowAssigner<T> for $name {
            type Window = TimeWindow;
            type Trigger = $trigger;

            #[inline]
            fn assign_windows(&self, _element: &T, timestamp: Timestamp, now_ms: i64, windows: &mut Vec<TimeWindow>) {
                let time = if $event { timestamp } else { now_ms };
                let last_start = window_start_with_offset(time, self.offset_ms % self.slide_ms, self.slide_ms);
                let first_excluded = time.saturating_sub(self.size_ms);
                let mut start = last_start;
                // As Flink: from the latest window back, while the window holds `time`.
                while start > first_excluded {
                    windows.push(TimeWindow::new(start, start.saturating_add(self.size_ms)));
                    match start.checked_sub(self.slide_ms) {
                        Some(previous) => start = previous,
                        None => break,
                    }
                }
            }

            fn default_trigger(&self) -> $trigger {
                $trigger
            }

            fn is_event_time(&self) -> bool {
                $event
            }

            fn validate(&self) -> Result<(), String> {
                positive(stringify!($name), "size", self.size_ms)?;
                positive(stringify!($name), "slide", self.slide_ms)
            }
        }
    };
}

sliding!(
    /// Windows of a fixed size that start every `slide` and may overlap (HOP; Flink's
    /// `SlidingEventTimeWindows`), in event time.
    SlidingEventTimeWindows,
    event_time = true,
    EventTimeTrigger
);
sliding!(
    /// Sliding windows of processing time (Flink's `SlidingProcessingTimeWindows`).
    SlidingProcessingTimeWindows,
    event_time = false,
    ProcessingTimeTrigger
);

macro_rules! session {
    ($(#[$doc:meta])* $name:ident, event_time = $event:expr, $trigger:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy)]
        pub struct $name {
            gap_ms: i64,
        }

        impl $name {
            /// Sessions that close after `gap` without elements.
            pub fn with_gap(gap: Duration) -> Self {
                $name { gap_ms: millis(gap) }
            }
        }

        impl<T> WindowAssigner<T> for $name {
            type Window = TimeWindow;
            type Trigger = $trigger;

            #[inline]
            fn assign_windows(&self, _element: &T, timestamp: Timestamp, now_ms: i64, windows: &mut Vec<TimeWindow>) {
                let time = if $event { timestamp } else { now_ms };
                windows.push(TimeWindow::new(time, time.saturating_add(self.gap_ms)));
            }

            fn default_trigger(&self) -> $trigger {
                $trigger
            }

            fn is_event_time(&self) -> bool {
                $event
            }

            fn is_merging(&self) -> bool {
                true
            }

            fn validate(&self) -> Result<(), String> {
                positive(stringify!($name), "gap", self.gap_ms)
            }
        }
    };
}

session!(
    /// Session windows of event time: an element opens `[t, t + gap)`, and windows of
    /// a key that overlap or touch merge (Flink's `EventTimeSessionWindows`).
    EventTimeSessionWindows,
    event_time = true,
    EventTimeTrigger
);
session!(
    /// Session windows of processing time (Flink's `ProcessingTimeSessionWindows`).
    ProcessingTimeSessionWindows,
    event_time = false,
    ProcessingTimeTrigger
);

/// One window per key holding every element (Flink's `GlobalWindows`). It never fires
/// unless given a trigger (`.trigger(..)`); count windows are global windows with a
/// count trigger.
#[derive(Debug, Clone, Copy, Default)]
pub struct GlobalWindows;

impl GlobalWindows {
    /// The global window assigner.
    pub fn create() -> Self {
        GlobalWindows
    }
}

impl<T> WindowAssigner<T> for GlobalWindows {
    type Window = GlobalWindow;
    type Trigger = NeverTrigger;

    #[inline]
    fn assign_windows(
        &self,
        _element: &T,
        _timestamp: Timestamp,
        _now_ms: i64,
        windows: &mut Vec<GlobalWindow>,
    ) {
        windows.push(GlobalWindow);
    }

    fn default_trigger(&self) -> NeverTrigger {
        NeverTrigger
    }

    fn is_event_time(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assign<A: WindowAssigner<()>>(assigner: &A, time: i64) -> Vec<A::Window> {
        let mut windows = Vec::new();
        assigner.assign_windows(&(), time, time, &mut windows);
        windows
    }

    #[test]
    fn tumbling_windows_align_to_the_epoch_with_an_offset() {
        let ten = TumblingEventTimeWindows::of(Duration::from_millis(10));
        assert_eq!(assign(&ten, 13), vec![TimeWindow::new(10, 20)]);
        assert_eq!(assign(&ten, -1), vec![TimeWindow::new(-10, 0)]);
        let shifted = ten.with_offset_ms(-13);
        assert_eq!(assign(&shifted, 13), vec![TimeWindow::new(7, 17)]);
        let processing = TumblingProcessingTimeWindows::of(Duration::from_millis(10));
        assert_eq!(assign(&processing, 29), vec![TimeWindow::new(20, 30)]);
        assert!(
            WindowAssigner::<()>::validate(&TumblingEventTimeWindows::of(Duration::ZERO)).is_err()
        );
    }

    #[test]
    fn sliding_windows_are_listed_latest_first_as_in_flink() {
        let hop = SlidingEventTimeWindows::of(Duration::from_millis(10), Duration::from_millis(4));
        assert_eq!(
            assign(&hop, 9),
            vec![
                TimeWindow::new(8, 18),
                TimeWindow::new(4, 14),
                TimeWindow::new(0, 10)
            ]
        );
        // Size not a multiple of the slide, negative times.
        assert_eq!(
            assign(&hop, -3),
            vec![
                TimeWindow::new(-4, 6),
                TimeWindow::new(-8, 2),
                TimeWindow::new(-12, -2)
            ]
        );
        // A slide larger than the size leaves gaps.
        let sparse =
            SlidingEventTimeWindows::of(Duration::from_millis(2), Duration::from_millis(5));
        assert_eq!(assign(&sparse, 6), vec![TimeWindow::new(5, 7)]);
        assert!(assign(&sparse, 8).is_empty());
    }

    #[test]
    fn sessions_open_a_gap_long_window() {
        let sessions = EventTimeSessionWindows::with_gap(Duration::from_millis(5));
        assert_eq!(assign(&sessions, 3), vec![TimeWindow::new(3, 8)]);
        assert!(WindowAssigner::<()>::is_merging(&sessions));
        assert_eq!(assign(&GlobalWindows::create(), 3), vec![GlobalWindow]);
    }
}
