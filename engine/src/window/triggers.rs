//! Triggers decide when a window's contents are handed to the window function (FIRE)
//! and when they are dropped (PURGE) — Flink's `Trigger`.
//!
//! A trigger is called for every element added to a window, and for every timer it
//! registered (event time: when the watermark reaches it; processing time: when the
//! job clock does). It keeps its own per-window state (`Trigger::State`, e.g. the count
//! of [`CountTrigger`]), which lives beside the window's contents in keyed state and is
//! dropped with them. Timers are registered through the [`TriggerContext`]; they belong
//! to the (key, window) being processed and are deduplicated per time.
//!
//! Built-in triggers, as in Flink:
//! * [`EventTimeTrigger`] — fires when the watermark passes the window's end (default
//!   of event-time assigners); an element added to a window the watermark has already
//!   passed (allowed lateness) fires it again at once.
//! * [`ProcessingTimeTrigger`] — fires when the job clock passes the window's end
//!   (default of processing-time assigners).
//! * [`CountTrigger`] — fires every `n` elements.
//! * [`PurgingTrigger`] — turns another trigger's FIRE into FIRE_AND_PURGE.
//! * [`NeverTrigger`] — never fires (default of [`GlobalWindows`]).
//!
//! [`GlobalWindows`]: super::assigners::GlobalWindows

use crate::message::Timestamp;
use crate::timers::TimeDomain;

use super::windows::Window;

/// What a trigger decided (Flink's `TriggerResult`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TriggerResult {
    /// Nothing happens.
    Continue,
    /// The window function runs on the current contents; they are kept.
    Fire,
    /// The contents are dropped without running the function.
    Purge,
    /// The window function runs, then the contents are dropped.
    FireAndPurge,
}

impl TriggerResult {
    /// Whether the window function runs.
    #[inline]
    pub fn is_fire(self) -> bool {
        matches!(self, TriggerResult::Fire | TriggerResult::FireAndPurge)
    }

    /// Whether the contents are dropped.
    #[inline]
    pub fn is_purge(self) -> bool {
        matches!(self, TriggerResult::Purge | TriggerResult::FireAndPurge)
    }
}

/// A timer change a trigger asked for; the operator applies it to the current (key,
/// window).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TimerRequest {
    Register(TimeDomain, Timestamp),
    Delete(TimeDomain, Timestamp),
}

/// What a trigger sees besides its state: the current time of both clocks, and timers
/// of the window being processed.
pub struct TriggerContext<'a> {
    watermark: Timestamp,
    processing_time_ms: i64,
    requests: &'a mut Vec<TimerRequest>,
}

impl<'a> TriggerContext<'a> {
    pub(crate) fn new(
        watermark: Timestamp,
        processing_time_ms: i64,
        requests: &'a mut Vec<TimerRequest>,
    ) -> Self {
        TriggerContext {
            watermark,
            processing_time_ms,
            requests,
        }
    }

    /// The operator's current watermark (`Timestamp::MIN` before the first one).
    pub fn current_watermark(&self) -> Timestamp {
        self.watermark
    }

    /// The job clock's processing time, in milliseconds since the epoch.
    pub fn current_processing_time(&self) -> i64 {
        self.processing_time_ms
    }

    /// Calls `on_event_time` for this window once the watermark reaches `time`.
    pub fn register_event_time_timer(&mut self, time: Timestamp) {
        self.requests
            .push(TimerRequest::Register(TimeDomain::EventTime, time));
    }

    /// Calls `on_processing_time` for this window once the job clock reaches `time`.
    pub fn register_processing_time_timer(&mut self, time: i64) {
        self.requests
            .push(TimerRequest::Register(TimeDomain::ProcessingTime, time));
    }

    /// Deletes an event-time timer of this window.
    pub fn delete_event_time_timer(&mut self, time: Timestamp) {
        self.requests
            .push(TimerRequest::Delete(TimeDomain::EventTime, time));
    }

    /// Deletes a processing-time timer of this window.
    pub fn delete_processing_time_timer(&mut self, time: i64) {
        self.requests
            .push(TimerRequest::Delete(TimeDomain::ProcessingTime, time));
    }
}

/// Decides when a window fires (Flink's `Trigger`). One clone runs per subtask.
///
/// `State` is the trigger's per-(key, window) state; it starts as `State::default()`
/// and is dropped when the window is cleaned up.
pub trait Trigger<T, W: Window>: Clone + Send + Sync + 'static {
    /// Per-window state of the trigger (serde: it is checkpointed).
    type State: Default + crate::checkpoint::StateData;

    /// Called for every element added to `window` (before the operator adds it to the
    /// contents; a FIRE sees the contents with the element).
    fn on_element(
        &self,
        element: &T,
        timestamp: Timestamp,
        window: &W,
        state: &mut Self::State,
        ctx: &mut TriggerContext<'_>,
    ) -> TriggerResult;

    /// Called when an event-time timer of `window` fires.
    fn on_event_time(
        &self,
        time: Timestamp,
        window: &W,
        state: &mut Self::State,
        ctx: &mut TriggerContext<'_>,
    ) -> TriggerResult;

    /// Called when a processing-time timer of `window` fires.
    fn on_processing_time(
        &self,
        time: i64,
        window: &W,
        state: &mut Self::State,
        ctx: &mut TriggerContext<'_>,
    ) -> TriggerResult;

    /// Whether the trigger supports merging windows (session windows need it).
    fn can_merge(&self) -> bool {
        false
    }

    /// Windows merged into `window`: called once per merged window, with the merged
    /// window's state in `merged` (e.g. add its count); register the timers `window`
    /// needs. The merged windows are cleared (see [`Trigger::clear`]) afterwards.
    fn on_merge(
        &self,
        window: &W,
        state: &mut Self::State,
        merged: &Self::State,
        ctx: &mut TriggerContext<'_>,
    ) {
        let _ = (window, state, merged, ctx);
    }

    /// The window is being dropped (cleaned up or merged away): delete its timers.
    fn clear(&self, window: &W, state: &mut Self::State, ctx: &mut TriggerContext<'_>) {
        let _ = (window, state, ctx);
    }
}

/// Fires when the watermark passes the window's max timestamp (Flink's
/// `EventTimeTrigger`); an element that arrives after that (within the allowed
/// lateness) fires the window again at once.
#[derive(Debug, Clone, Copy, Default)]
pub struct EventTimeTrigger;

impl<T, W: Window> Trigger<T, W> for EventTimeTrigger {
    type State = ();

    #[inline]
    fn on_element(
        &self,
        _element: &T,
        _timestamp: Timestamp,
        window: &W,
        _state: &mut (),
        ctx: &mut TriggerContext<'_>,
    ) -> TriggerResult {
        if window.max_timestamp() <= ctx.current_watermark() {
            // Late, but within the allowed lateness: fire at once.
            TriggerResult::Fire
        } else {
            ctx.register_event_time_timer(window.max_timestamp());
            TriggerResult::Continue
        }
    }

    fn on_event_time(
        &self,
        time: Timestamp,
        window: &W,
        _state: &mut (),
        _ctx: &mut TriggerContext<'_>,
    ) -> TriggerResult {
        if time == window.max_timestamp() {
            TriggerResult::Fire
        } else {
            TriggerResult::Continue
        }
    }

    fn on_processing_time(
        &self,
        _time: i64,
        _window: &W,
        _state: &mut (),
        _ctx: &mut TriggerContext<'_>,
    ) -> TriggerResult {
        TriggerResult::Continue
    }

    fn can_merge(&self) -> bool {
        true
    }

    fn on_merge(&self, window: &W, _state: &mut (), _merged: &(), ctx: &mut TriggerContext<'_>) {
        if window.max_timestamp() > ctx.current_watermark() {
            ctx.register_event_time_timer(window.max_timestamp());
        }
    }

    fn clear(&self, window: &W, _state: &mut (), ctx: &mut TriggerContext<'_>) {
        ctx.delete_event_time_timer(window.max_timestamp());
    }
}

/// Fires when the job clock passes the window's max timestamp (Flink's
/// `ProcessingTimeTrigger`).
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessingTimeTrigger;

impl<T, W: Window> Trigger<T, W> for ProcessingTimeTrigger {
    type State = ();

    fn on_element(
        &self,
        _element: &T,
        _timestamp: Timestamp,
        window: &W,
        _state: &mut (),
        ctx: &mut TriggerContext<'_>,
    ) -> TriggerResult {
        ctx.register_processing_time_timer(window.max_timestamp());
        TriggerResult::Continue
    }

    fn on_event_time(
        &self,
        _time: Timestamp,
        _window: &W,
        _state: &mut (),
        _ctx: &mut TriggerContext<'_>,
    ) -> TriggerResult {
        TriggerResult::Continue
    }

    fn on_processing_time(
        &self,
        _time: i64,
        _window: &W,
        _state: &mut (),
        _ctx: &mut TriggerContext<'_>,
    ) -> TriggerResult {
        TriggerResult::Fire
    }

    fn can_merge(&self) -> bool {
        true
    }

    fn on_merge(&self, window: &W, _state: &mut (), _merged: &(), ctx: &mut TriggerContext<'_>) {
        if window.max_timestamp() > ctx.current_processing_time() {
            ctx.register_processing_time_timer(window.max_timestamp());
        }
    }

    fn clear(&self, window: &W, _state: &mut (), ctx: &mut TriggerContext<'_>) {
        ctx.delete_processing_time_timer(window.max_timestamp());
    }
}

/// Fires every `count` elements of a window, then starts counting again (Flink's
/// `CountTrigger`).
#[derive(Debug, Clone, Copy)]
pub struct CountTrigger {
    count: u64,
}

impl CountTrigger {
    /// Fires once a window has `count` elements (counted since the last firing).
    pub fn of(count: u64) -> Self {
        CountTrigger { count }
    }
}

impl<T, W: Window> Trigger<T, W> for CountTrigger {
    type State = u64;

    #[inline]
    fn on_element(
        &self,
        _element: &T,
        _timestamp: Timestamp,
        _window: &W,
        seen: &mut u64,
        _ctx: &mut TriggerContext<'_>,
    ) -> TriggerResult {
        *seen += 1;
        if *seen >= self.count {
            *seen = 0;
            TriggerResult::Fire
        } else {
            TriggerResult::Continue
        }
    }

    fn on_event_time(
        &self,
        _time: Timestamp,
        _window: &W,
        _seen: &mut u64,
        _ctx: &mut TriggerContext<'_>,
    ) -> TriggerResult {
        TriggerResult::Continue
    }

    fn on_processing_time(
        &self,
        _time: i64,
        _window: &W,
        _seen: &mut u64,
        _ctx: &mut TriggerContext<'_>,
    ) -> TriggerResult {
        TriggerResult::Continue
    }

    fn can_merge(&self) -> bool {
        true
    }

    fn on_merge(&self, _window: &W, seen: &mut u64, merged: &u64, _ctx: &mut TriggerContext<'_>) {
        *seen += *merged;
    }

    fn clear(&self, _window: &W, seen: &mut u64, _ctx: &mut TriggerContext<'_>) {
        *seen = 0;
    }
}

/// Wraps a trigger so that every FIRE also purges the window (Flink's
/// `PurgingTrigger`).
#[derive(Debug, Clone, Copy)]
pub struct PurgingTrigger<Tr> {
    inner: Tr,
}

impl<Tr> PurgingTrigger<Tr> {
    /// `inner`, with FIRE turned into FIRE_AND_PURGE.
    pub fn of(inner: Tr) -> Self {
        PurgingTrigger { inner }
    }
}

fn purging(result: TriggerResult) -> TriggerResult {
    if result.is_fire() {
        TriggerResult::FireAndPurge
    } else {
        result
    }
}

impl<T, W: Window, Tr: Trigger<T, W>> Trigger<T, W> for PurgingTrigger<Tr> {
    type State = Tr::State;

    #[inline]
    fn on_element(
        &self,
        element: &T,
        timestamp: Timestamp,
        window: &W,
        state: &mut Self::State,
        ctx: &mut TriggerContext<'_>,
    ) -> TriggerResult {
        purging(
            self.inner
                .on_element(element, timestamp, window, state, ctx),
        )
    }

    fn on_event_time(
        &self,
        time: Timestamp,
        window: &W,
        state: &mut Self::State,
        ctx: &mut TriggerContext<'_>,
    ) -> TriggerResult {
        purging(self.inner.on_event_time(time, window, state, ctx))
    }

    fn on_processing_time(
        &self,
        time: i64,
        window: &W,
        state: &mut Self::State,
        ctx: &mut TriggerContext<'_>,
    ) -> TriggerResult {
        purging(self.inner.on_processing_time(time, window, state, ctx))
    }

    fn can_merge(&self) -> bool {
        self.inner.can_merge()
    }

    fn on_merge(
        &self,
        window: &W,
        state: &mut Self::State,
        merged: &Self::State,
        ctx: &mut TriggerContext<'_>,
    ) {
        self.inner.on_merge(window, state, merged, ctx)
    }

    fn clear(&self, window: &W, state: &mut Self::State, ctx: &mut TriggerContext<'_>) {
        self.inner.clear(window, state, ctx)
    }
}

/// Never fires (the default trigger of [`GlobalWindows`]; give them a real one with
/// `.trigger(..)`).
///
/// [`GlobalWindows`]: super::assigners::GlobalWindows
#[derive(Debug, Clone, Copy, Default)]
pub struct NeverTrigger;

impl<T, W: Window> Trigger<T, W> for NeverTrigger {
    type State = ();

    fn on_element(
        &self,
        _element: &T,
        _timestamp: Timestamp,
        _window: &W,
        _state: &mut (),
        _ctx: &mut TriggerContext<'_>,
    ) -> TriggerResult {
        TriggerResult::Continue
    }

    fn on_event_time(
        &self,
        _time: Timestamp,
        _window: &W,
        _state: &mut (),
        _ctx: &mut TriggerContext<'_>,
    ) -> TriggerResult {
        TriggerResult::Continue
    }

    fn on_processing_time(
        &self,
        _time: i64,
        _window: &W,
        _state: &mut (),
        _ctx: &mut TriggerContext<'_>,
    ) -> TriggerResult {
        TriggerResult::Continue
    }

    fn can_merge(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::window::windows::TimeWindow;

    fn context(watermark: Timestamp, requests: &mut Vec<TimerRequest>) -> TriggerContext<'_> {
        TriggerContext::new(watermark, 0, requests)
    }

    #[test]
    fn event_time_trigger_registers_the_window_end_and_fires_late_elements_at_once() {
        let window = TimeWindow::new(0, 10);
        let mut requests = Vec::new();
        let on_time = Trigger::<u8, _>::on_element(
            &EventTimeTrigger,
            &1,
            3,
            &window,
            &mut (),
            &mut context(5, &mut requests),
        );
        assert_eq!(on_time, TriggerResult::Continue);
        assert_eq!(
            requests,
            vec![TimerRequest::Register(TimeDomain::EventTime, 9)]
        );
        requests.clear();
        let late = Trigger::<u8, _>::on_element(
            &EventTimeTrigger,
            &1,
            3,
            &window,
            &mut (),
            &mut context(9, &mut requests),
        );
        assert_eq!(late, TriggerResult::Fire);
        assert!(requests.is_empty());
        let fired = Trigger::<u8, _>::on_event_time(
            &EventTimeTrigger,
            9,
            &window,
            &mut (),
            &mut context(9, &mut requests),
        );
        assert_eq!(fired, TriggerResult::Fire);
    }

    #[test]
    fn purging_count_trigger_fires_and_purges_every_n_elements() {
        let trigger = PurgingTrigger::of(CountTrigger::of(3));
        let mut requests = Vec::new();
        let mut count = 0;
        let results: Vec<_> = (0..7)
            .map(|i| {
                Trigger::<u8, _>::on_element(
                    &trigger,
                    &i,
                    0,
                    &TimeWindow::new(0, 1),
                    &mut count,
                    &mut context(0, &mut requests),
                )
            })
            .collect();
        use TriggerResult::*;
        assert_eq!(
            results,
            vec![
                Continue,
                Continue,
                FireAndPurge,
                Continue,
                Continue,
                FireAndPurge,
                Continue
            ]
        );
        assert_eq!(count, 1);
    }
}
