//! Operators on keyed streams: rolling `reduce` and `process` with per-key state.
//!
//! Both hold their state in a hash map from key to value, owned by the subtask (a
//! subtask sees exactly the keys of its key-group range). In STREAMING mode `reduce`
//! emits the updated value for every input record (Flink's rolling reduce); in BATCH
//! mode it emits one final value per key at end of input.

use std::collections::HashMap;
use std::hash::Hash;
use std::marker::PhantomData;

use rustc_hash::FxBuildHasher;

use super::forward_control_hooks;
use crate::error::ChainResult;
use crate::message::{Batch, Timestamp};
use crate::output::{Collector, Output};

/// Rolling reduce per key.
pub(crate) struct ReduceOperator<T, K, KS, F> {
    key_of: KS,
    reduce: F,
    state: HashMap<K, Option<T>, FxBuildHasher>,
    emit_updates: bool,
    scratch: Batch<T>,
    next: Box<dyn Output<T>>,
}

impl<T, K, KS, F> ReduceOperator<T, K, KS, F> {
    pub(crate) fn new(key_of: KS, reduce: F, emit_updates: bool, next: Box<dyn Output<T>>) -> Self {
        ReduceOperator {
            key_of,
            reduce,
            state: HashMap::default(),
            emit_updates,
            scratch: Batch::new(),
            next,
        }
    }
}

impl<T, K, KS, F> Output<T> for ReduceOperator<T, K, KS, F>
where
    T: Clone + 'static,
    K: Hash + Eq + 'static,
    KS: Fn(&T) -> K + 'static,
    F: FnMut(T, T) -> T + 'static,
{
    fn push_batch(&mut self, batch: &mut Batch<T>) -> ChainResult {
        for (record, timestamp) in batch.drain() {
            let key = (self.key_of)(&record);
            match self.state.get_mut(&key) {
                Some(slot) => {
                    let accumulator = slot.take().expect("reduce state is never left empty");
                    let reduced = (self.reduce)(accumulator, record);
                    if self.emit_updates {
                        self.scratch.push_at(reduced.clone(), timestamp);
                    }
                    *slot = Some(reduced);
                }
                None => {
                    if self.emit_updates {
                        self.scratch.push_at(record.clone(), timestamp);
                    }
                    self.state.insert(key, Some(record));
                }
            }
        }
        if self.scratch.is_empty() {
            return Ok(());
        }
        self.next.push_batch(&mut self.scratch)
    }

    fn watermark(&mut self, watermark: Timestamp) -> ChainResult {
        self.next.watermark(watermark)
    }

    fn end_of_input(&mut self) -> ChainResult {
        if !self.emit_updates {
            for (_, value) in self.state.drain() {
                self.scratch
                    .push(value.expect("reduce state is never left empty"));
                if self.scratch.len() >= 1024 {
                    self.next.push_batch(&mut self.scratch)?;
                }
            }
            self.next.push_batch(&mut self.scratch)?;
        }
        self.next.end_of_input()
    }

    forward_control_hooks!();
}

/// What a keyed process function sees besides the record: the current key and the
/// state kept for it.
pub struct KeyedContext<'a, K, S> {
    key: &'a K,
    state: &'a mut S,
    clear: bool,
}

impl<K, S> KeyedContext<'_, K, S> {
    /// The key of the record being processed.
    pub fn key(&self) -> &K {
        self.key
    }

    /// The state of the current key (`S::default()` the first time a key is seen).
    pub fn state(&mut self) -> &mut S {
        self.state
    }

    /// Drops the current key's state after this call (it starts from the default again).
    pub fn clear_state(&mut self) {
        self.clear = true;
    }
}

/// Calls a user function per record with the record's key and state.
pub(crate) struct ProcessOperator<T, K, S, O, KS, F> {
    key_of: KS,
    function: F,
    state: HashMap<K, S, FxBuildHasher>,
    scratch: Batch<O>,
    next: Box<dyn Output<O>>,
    _input: PhantomData<fn(T)>,
}

impl<T, K, S, O, KS, F> ProcessOperator<T, K, S, O, KS, F> {
    pub(crate) fn new(key_of: KS, function: F, next: Box<dyn Output<O>>) -> Self {
        ProcessOperator {
            key_of,
            function,
            state: HashMap::default(),
            scratch: Batch::new(),
            next,
            _input: PhantomData,
        }
    }
}

impl<T, K, S, O, KS, F> Output<T> for ProcessOperator<T, K, S, O, KS, F>
where
    T: 'static,
    K: Hash + Eq + Clone + 'static,
    S: Default + 'static,
    O: 'static,
    KS: Fn(&T) -> K + 'static,
    F: FnMut(T, &mut KeyedContext<'_, K, S>, &mut Collector<'_, O>) + 'static,
{
    fn push_batch(&mut self, batch: &mut Batch<T>) -> ChainResult {
        for (record, timestamp) in batch.drain() {
            let key = (self.key_of)(&record);
            if !self.state.contains_key(&key) {
                self.state.insert(key.clone(), S::default());
            }
            let state = self.state.get_mut(&key).expect("inserted above");
            let mut context = KeyedContext {
                key: &key,
                state,
                clear: false,
            };
            (self.function)(
                record,
                &mut context,
                &mut Collector::new(&mut self.scratch, timestamp),
            );
            if context.clear {
                self.state.remove(&key);
            }
        }
        if self.scratch.is_empty() {
            return Ok(());
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
}
