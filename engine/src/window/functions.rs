//! Window functions: what runs when a window fires, and the incremental state each
//! kind keeps per window.
//!
//! * `reduce(f)` — keeps one reduced value per window (`f(accumulated, next)`), emits
//!   it.
//! * `aggregate(a)` — keeps an [`AggregateFunction`] accumulator per window
//!   (add / merge on session merges / get_result), emits the result.
//! * `process(f)` — keeps every element; a [`ProcessWindowFunction`] gets them all with
//!   the key and the window's metadata ([`WindowContext`]).
//! * `aggregate_with(a, f)` — incremental like `aggregate`; the process function gets
//!   the single aggregated result (a one-element slice), as Flink's
//!   `aggregate(AggregateFunction, ProcessWindowFunction)`.
//!
//! Every result is emitted with the window's max timestamp (`end - 1`) as its
//! timestamp.

use std::sync::Arc;

use crate::message::Timestamp;
use crate::output::Collector;
use crate::state::AggregateFunction;

/// What a process window function knows about the window being fired.
pub struct WindowContext<'a, W> {
    pub(crate) window: &'a W,
    pub(crate) watermark: Timestamp,
    pub(crate) processing_time_ms: i64,
}

impl<W> WindowContext<'_, W> {
    /// The window that fired.
    pub fn window(&self) -> &W {
        self.window
    }

    /// The operator's current watermark.
    pub fn current_watermark(&self) -> Timestamp {
        self.watermark
    }

    /// The job clock's processing time, in milliseconds since the epoch.
    pub fn current_processing_time(&self) -> i64 {
        self.processing_time_ms
    }
}

/// A function over all elements of a fired window (Flink's `ProcessWindowFunction`).
/// One clone runs per subtask. Emitted records get the window's max timestamp.
pub trait ProcessWindowFunction<K, I, O, W>: Clone + Send + Sync + 'static {
    /// Called when a window of `key` fires, with its elements in arrival order (for
    /// merged session windows: window by window, in time order).
    fn process(
        &mut self,
        key: &K,
        context: &WindowContext<'_, W>,
        elements: &[I],
        out: &mut Collector<'_, O>,
    );
}

/// A closure as a [`ProcessWindowFunction`].
#[derive(Clone)]
pub(crate) struct ProcessWindowFn<F>(pub(crate) F);

impl<K, I, O, W, F> ProcessWindowFunction<K, I, O, W> for ProcessWindowFn<F>
where
    F: FnMut(&K, &WindowContext<'_, W>, &[I], &mut Collector<'_, O>)
        + Clone
        + Send
        + Sync
        + 'static,
{
    fn process(
        &mut self,
        key: &K,
        context: &WindowContext<'_, W>,
        elements: &[I],
        out: &mut Collector<'_, O>,
    ) {
        (self.0)(key, context, elements, out)
    }
}

/// The operator's view of a window function: the per-window state it keeps and how it
/// emits. `K`, `T`, `W`: key, element, window.
pub(crate) trait WindowCore<K, T, W>: 'static {
    /// Per-window state (the reduced value, the accumulator, the elements).
    type State: 'static;
    /// What the window emits.
    type Out: 'static;

    /// Adds an element to a window's state (`None`: the window has no contents yet).
    fn add(&mut self, state: &mut Option<Self::State>, element: T);

    /// Merges `other` into `state` (session windows merging).
    fn merge(&mut self, state: &mut Option<Self::State>, other: Self::State);

    /// The window fired: emit its result(s).
    fn emit(
        &mut self,
        key: &K,
        context: &WindowContext<'_, W>,
        state: &mut Self::State,
        out: &mut Collector<'_, Self::Out>,
    );
}

/// `reduce(f)`.
pub(crate) struct ReduceCore<F>(pub(crate) F);

impl<K, T, W, F> WindowCore<K, T, W> for ReduceCore<F>
where
    T: Clone + 'static,
    F: FnMut(T, T) -> T + 'static,
{
    type State = T;
    type Out = T;

    #[inline]
    fn add(&mut self, state: &mut Option<T>, element: T) {
        *state = Some(match state.take() {
            Some(accumulated) => (self.0)(accumulated, element),
            None => element,
        });
    }

    fn merge(&mut self, state: &mut Option<T>, other: T) {
        <Self as WindowCore<K, T, W>>::add(self, state, other);
    }

    fn emit(
        &mut self,
        _key: &K,
        _context: &WindowContext<'_, W>,
        state: &mut T,
        out: &mut Collector<'_, T>,
    ) {
        out.collect(state.clone());
    }
}

/// `aggregate(a)`.
pub(crate) struct AggregateCore<A>(pub(crate) Arc<A>);

impl<K, T, W, A> WindowCore<K, T, W> for AggregateCore<A>
where
    A: AggregateFunction<Input = T>,
    A::Output: 'static,
{
    type State = A::Accumulator;
    type Out = A::Output;

    #[inline]
    fn add(&mut self, state: &mut Option<A::Accumulator>, element: T) {
        let function = &*self.0;
        let accumulator = state.get_or_insert_with(|| function.create_accumulator());
        function.add(element, accumulator);
    }

    fn merge(&mut self, state: &mut Option<A::Accumulator>, other: A::Accumulator) {
        match state {
            Some(accumulator) => self.0.merge(accumulator, other),
            None => *state = Some(other),
        }
    }

    fn emit(
        &mut self,
        _key: &K,
        _context: &WindowContext<'_, W>,
        state: &mut A::Accumulator,
        out: &mut Collector<'_, A::Output>,
    ) {
        out.collect(self.0.get_result(state));
    }
}

/// `process(f)`: keeps the elements.
pub(crate) struct ProcessCore<P, O> {
    pub(crate) function: P,
    pub(crate) _out: std::marker::PhantomData<fn() -> O>,
}

impl<K, T, W, P, O> WindowCore<K, T, W> for ProcessCore<P, O>
where
    K: 'static,
    T: 'static,
    W: 'static,
    O: 'static,
    P: ProcessWindowFunction<K, T, O, W>,
{
    type State = Vec<T>;
    type Out = O;

    #[inline]
    fn add(&mut self, state: &mut Option<Vec<T>>, element: T) {
        state.get_or_insert_with(Vec::new).push(element);
    }

    fn merge(&mut self, state: &mut Option<Vec<T>>, mut other: Vec<T>) {
        match state {
            Some(elements) => elements.append(&mut other),
            None => *state = Some(other),
        }
    }

    fn emit(
        &mut self,
        key: &K,
        context: &WindowContext<'_, W>,
        state: &mut Vec<T>,
        out: &mut Collector<'_, O>,
    ) {
        self.function.process(key, context, state, out);
    }
}

/// `aggregate_with(a, f)`: incremental aggregation, the process function gets the
/// result.
pub(crate) struct AggregateProcessCore<A, P, O> {
    pub(crate) aggregate: Arc<A>,
    pub(crate) function: P,
    pub(crate) _out: std::marker::PhantomData<fn() -> O>,
}

impl<K, T, W, A, P, O> WindowCore<K, T, W> for AggregateProcessCore<A, P, O>
where
    K: 'static,
    W: 'static,
    O: 'static,
    A: AggregateFunction<Input = T>,
    A::Output: 'static,
    P: ProcessWindowFunction<K, A::Output, O, W>,
{
    type State = A::Accumulator;
    type Out = O;

    #[inline]
    fn add(&mut self, state: &mut Option<A::Accumulator>, element: T) {
        let function = &*self.aggregate;
        let accumulator = state.get_or_insert_with(|| function.create_accumulator());
        function.add(element, accumulator);
    }

    fn merge(&mut self, state: &mut Option<A::Accumulator>, other: A::Accumulator) {
        match state {
            Some(accumulator) => self.aggregate.merge(accumulator, other),
            None => *state = Some(other),
        }
    }

    fn emit(
        &mut self,
        key: &K,
        context: &WindowContext<'_, W>,
        state: &mut A::Accumulator,
        out: &mut Collector<'_, O>,
    ) {
        let result = self.aggregate.get_result(state);
        self.function
            .process(key, context, std::slice::from_ref(&result), out);
    }
}

/// Keeps the elements and, when the window fires, first drops all but the last
/// `max_count` of them for good, then runs `inner` over the rest (Flink's
/// `CountEvictor` before the function, as `countWindow(size, slide)` uses it).
pub(crate) struct CountEvictingCore<C> {
    pub(crate) inner: C,
    pub(crate) max_count: usize,
}

impl<K, T, W, C> WindowCore<K, T, W> for CountEvictingCore<C>
where
    T: Clone + 'static,
    C: WindowCore<K, T, W>,
{
    type State = Vec<T>;
    type Out = C::Out;

    #[inline]
    fn add(&mut self, state: &mut Option<Vec<T>>, element: T) {
        state.get_or_insert_with(Vec::new).push(element);
    }

    fn merge(&mut self, state: &mut Option<Vec<T>>, mut other: Vec<T>) {
        match state {
            Some(elements) => elements.append(&mut other),
            None => *state = Some(other),
        }
    }

    fn emit(
        &mut self,
        key: &K,
        context: &WindowContext<'_, W>,
        state: &mut Vec<T>,
        out: &mut Collector<'_, C::Out>,
    ) {
        if state.len() > self.max_count {
            state.drain(..state.len() - self.max_count);
        }
        let mut inner = None;
        for element in state.iter() {
            self.inner.add(&mut inner, element.clone());
        }
        if let Some(inner) = inner.as_mut() {
            self.inner.emit(key, context, inner, out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::Batch;

    struct Sum;
    impl AggregateFunction for Sum {
        type Input = i64;
        type Accumulator = i64;
        type Output = i64;
        fn create_accumulator(&self) -> i64 {
            0
        }
        fn add(&self, value: i64, accumulator: &mut i64) {
            *accumulator += value;
        }
        fn get_result(&self, accumulator: &i64) -> i64 {
            *accumulator
        }
        fn merge(&self, accumulator: &mut i64, other: i64) {
            *accumulator += other;
        }
    }

    fn fire<C: WindowCore<(), i64, ()>>(core: &mut C, state: &mut C::State) -> Vec<C::Out> {
        let mut batch = Batch::new();
        let context = WindowContext {
            window: &(),
            watermark: 0,
            processing_time_ms: 0,
        };
        core.emit(&(), &context, state, &mut Collector::new(&mut batch, 9));
        batch.drain().map(|(value, _)| value).collect()
    }

    #[test]
    fn every_core_adds_merges_and_emits() {
        let mut reduce = ReduceCore(|a: i64, b: i64| a.max(b));
        let (mut a, mut b) = (None, None);
        for v in [3, 1] {
            WindowCore::<(), i64, ()>::add(&mut reduce, &mut a, v);
        }
        WindowCore::<(), i64, ()>::add(&mut reduce, &mut b, 7);
        WindowCore::<(), i64, ()>::merge(&mut reduce, &mut a, b.unwrap());
        assert_eq!(fire(&mut reduce, a.as_mut().unwrap()), vec![7]);

        let mut aggregate = AggregateCore(Arc::new(Sum));
        let mut state = None;
        for v in [3, 4] {
            WindowCore::<(), i64, ()>::add(&mut aggregate, &mut state, v);
        }
        WindowCore::<(), i64, ()>::merge(&mut aggregate, &mut state, 10);
        assert_eq!(fire(&mut aggregate, state.as_mut().unwrap()), vec![17]);

        let counting = ProcessWindowFn(
            |_: &(),
             _: &WindowContext<'_, ()>,
             elements: &[i64],
             out: &mut Collector<'_, usize>| { out.collect(elements.len()) },
        );
        let mut with = AggregateProcessCore {
            aggregate: Arc::new(Sum),
            function: counting.clone(),
            _out: std::marker::PhantomData,
        };
        let mut state = None;
        for v in [3, 4, 5] {
            WindowCore::<(), i64, ()>::add(&mut with, &mut state, v);
        }
        assert_eq!(fire(&mut with, state.as_mut().unwrap()), vec![1]);

        let mut evicting = CountEvictingCore {
            inner: AggregateCore(Arc::new(Sum)),
            max_count: 2,
        };
        let mut state = None;
        for v in [1, 2, 3] {
            WindowCore::<(), i64, ()>::add(&mut evicting, &mut state, v);
        }
        assert_eq!(fire(&mut evicting, state.as_mut().unwrap()), vec![5]);
        assert_eq!(state, Some(vec![2, 3]), "evicted for good");
    }
}
