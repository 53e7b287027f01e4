//! Two-input operators on connected keyed streams (Flink's `KeyedCoProcessFunction`).
//!
//! `a.connect(&b).key_by(ka, kb)` tags each input's records ([`Either`]) in that input's
//! own tasks, merges the two tagged streams and partitions them by key, so one keyed
//! operator sees both inputs of each key, shares the key's state and timers between
//! them, and takes the minimum of the two inputs' watermarks.

use crate::message::Timestamp;
use crate::operators::keyed::{KeyedContext, KeyedProcessFunction};
use crate::output::Collector;
use crate::timers::TimeDomain;

/// A record of the first (`Left`) or the second (`Right`) input.
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub enum Either<A, B> {
    /// From the first input.
    Left(A),
    /// From the second input.
    Right(B),
}

/// A function over two keyed inputs with shared keyed state and timers.
pub trait KeyedCoProcessFunction<K, A, B, O, S = ()>: Clone + Send + Sync + 'static {
    /// Called for every record of the first input.
    fn process_element1(
        &mut self,
        record: A,
        ctx: &mut KeyedContext<'_, K, S>,
        out: &mut Collector<'_, O>,
    );

    /// Called for every record of the second input.
    fn process_element2(
        &mut self,
        record: B,
        ctx: &mut KeyedContext<'_, K, S>,
        out: &mut Collector<'_, O>,
    );

    /// Called when a timer of this key fires.
    fn on_timer(
        &mut self,
        time: Timestamp,
        domain: TimeDomain,
        ctx: &mut KeyedContext<'_, K, S>,
        out: &mut Collector<'_, O>,
    ) {
        let _ = (time, domain, ctx, out);
    }
}

/// Runs a [`KeyedCoProcessFunction`] as a [`KeyedProcessFunction`] over [`Either`].
#[derive(Clone)]
pub(crate) struct CoProcess<F>(pub(crate) F);

impl<K, A, B, O, S, F> KeyedProcessFunction<K, Either<A, B>, O, S> for CoProcess<F>
where
    F: KeyedCoProcessFunction<K, A, B, O, S>,
{
    fn process_element(
        &mut self,
        record: Either<A, B>,
        ctx: &mut KeyedContext<'_, K, S>,
        out: &mut Collector<'_, O>,
    ) {
        match record {
            Either::Left(a) => self.0.process_element1(a, ctx, out),
            Either::Right(b) => self.0.process_element2(b, ctx, out),
        }
    }

    fn on_timer(
        &mut self,
        time: Timestamp,
        domain: TimeDomain,
        ctx: &mut KeyedContext<'_, K, S>,
        out: &mut Collector<'_, O>,
    ) {
        self.0.on_timer(time, domain, ctx, out);
    }
}
