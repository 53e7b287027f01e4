//! Stateless operators: map, filter, flat_map and identity (union).

use std::marker::PhantomData;

use super::{forward_checkpoint_hooks, forward_control_hooks};
use crate::error::ChainResult;
use crate::message::{Batch, Timestamp};
use crate::output::Output;

/// Applies a function to each record.
pub(crate) struct MapOperator<I, O, F> {
    function: F,
    scratch: Batch<O>,
    next: Box<dyn Output<O>>,
    _input: PhantomData<fn(I)>,
}

impl<I, O, F> MapOperator<I, O, F> {
    pub(crate) fn new(function: F, next: Box<dyn Output<O>>) -> Self {
        MapOperator {
            function,
            scratch: Batch::new(),
            next,
            _input: PhantomData,
        }
    }
}

impl<I: 'static, O: 'static, F: FnMut(I) -> O + 'static> Output<I> for MapOperator<I, O, F> {
    #[inline]
    fn push_batch(&mut self, batch: &mut Batch<I>) -> ChainResult {
        batch.map_into(&mut self.scratch, &mut self.function);
        self.next.push_batch(&mut self.scratch)
    }

    fn watermark(&mut self, watermark: Timestamp) -> ChainResult {
        self.next.watermark(watermark)
    }

    fn end_of_input(&mut self) -> ChainResult {
        self.next.end_of_input()
    }

    forward_control_hooks!();
    forward_checkpoint_hooks!();
}

/// Keeps the records for which a predicate holds (in place, no copy).
pub(crate) struct FilterOperator<T, F> {
    predicate: F,
    next: Box<dyn Output<T>>,
}

impl<T, F> FilterOperator<T, F> {
    pub(crate) fn new(predicate: F, next: Box<dyn Output<T>>) -> Self {
        FilterOperator { predicate, next }
    }
}

impl<T: 'static, F: FnMut(&T) -> bool + 'static> Output<T> for FilterOperator<T, F> {
    #[inline]
    fn push_batch(&mut self, batch: &mut Batch<T>) -> ChainResult {
        batch.retain(&mut self.predicate);
        self.next.push_batch(batch)
    }

    fn watermark(&mut self, watermark: Timestamp) -> ChainResult {
        self.next.watermark(watermark)
    }

    fn end_of_input(&mut self) -> ChainResult {
        self.next.end_of_input()
    }

    forward_control_hooks!();
    forward_checkpoint_hooks!();
}

/// Emits zero or more records per input record.
pub(crate) struct FlatMapOperator<I, O, It, F> {
    function: F,
    scratch: Batch<O>,
    next: Box<dyn Output<O>>,
    _types: PhantomData<fn(I) -> It>,
}

impl<I, O, It, F> FlatMapOperator<I, O, It, F> {
    pub(crate) fn new(function: F, next: Box<dyn Output<O>>) -> Self {
        FlatMapOperator {
            function,
            scratch: Batch::new(),
            next,
            _types: PhantomData,
        }
    }
}

impl<I, O, It, F> Output<I> for FlatMapOperator<I, O, It, F>
where
    I: 'static,
    O: 'static,
    It: IntoIterator<Item = O> + 'static,
    F: FnMut(I) -> It + 'static,
{
    #[inline]
    fn push_batch(&mut self, batch: &mut Batch<I>) -> ChainResult {
        for (record, timestamp) in batch.drain() {
            for output in (self.function)(record) {
                self.scratch.push_at(output, timestamp);
            }
        }
        self.next.push_batch(&mut self.scratch)
    }

    fn watermark(&mut self, watermark: Timestamp) -> ChainResult {
        self.next.watermark(watermark)
    }

    fn end_of_input(&mut self) -> ChainResult {
        self.next.end_of_input()
    }

    forward_control_hooks!();
    forward_checkpoint_hooks!();
}

/// Passes records through unchanged (the head of a union).
pub(crate) struct IdentityOperator<T> {
    next: Box<dyn Output<T>>,
}

impl<T> IdentityOperator<T> {
    pub(crate) fn new(next: Box<dyn Output<T>>) -> Self {
        IdentityOperator { next }
    }
}

impl<T: 'static> Output<T> for IdentityOperator<T> {
    #[inline]
    fn push_batch(&mut self, batch: &mut Batch<T>) -> ChainResult {
        self.next.push_batch(batch)
    }

    fn watermark(&mut self, watermark: Timestamp) -> ChainResult {
        self.next.watermark(watermark)
    }

    fn end_of_input(&mut self) -> ChainResult {
        self.next.end_of_input()
    }

    forward_control_hooks!();
    forward_checkpoint_hooks!();
}
