//! Cross-core wake-ups of parked tasks.
//!
//! Every task has a [`Doorbell`]. A task with nothing to do spins for a while, then
//! *arms* its doorbell, looks at its inputs once more, and only then sleeps until the
//! doorbell rings (or a fallback timer fires). Whoever gives it work rings it: the
//! producer of an input link after sending a message, the consumer of an output link
//! after freeing a slot (which unblocks a backpressured producer).
//!
//! No wake-up is lost: the ringer publishes its message, then (after a full fence)
//! reads `armed`; the sleeper sets `armed`, then (after a full fence) looks at its
//! inputs. One of the two sees the other's write. Ringing an unarmed doorbell costs a
//! fence and a load per buffer, never a lock or a system call; ringing an armed one
//! wakes the task through glommio, which queues it to its executor from any thread.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{fence, AtomicBool, Ordering};
use std::task::{Context, Poll};

use atomic_waker::AtomicWaker;

/// The wake-up bell of one task.
#[derive(Debug, Default)]
pub struct Doorbell {
    armed: AtomicBool,
    waker: AtomicWaker,
}

impl Doorbell {
    /// Wakes the task if it is asleep or about to sleep. Call after publishing work.
    #[inline]
    pub fn ring(&self) {
        fence(Ordering::SeqCst);
        if self.armed.load(Ordering::Relaxed) && self.armed.swap(false, Ordering::AcqRel) {
            self.waker.wake();
        }
    }

    /// Declares that the task is about to sleep; it must look at its inputs once more
    /// before calling [`Doorbell::sleep`].
    pub(crate) fn arm(&self) {
        self.armed.store(true, Ordering::Relaxed);
        fence(Ordering::SeqCst);
    }

    /// The task found work after arming: no need to be woken.
    pub(crate) fn disarm(&self) {
        self.armed.store(false, Ordering::Relaxed);
    }

    /// Resolves once the doorbell rang after [`Doorbell::arm`].
    pub(crate) fn rung(&self) -> Rung<'_> {
        Rung { bell: self }
    }
}

/// Future of [`Doorbell::rung`].
pub(crate) struct Rung<'a> {
    bell: &'a Doorbell,
}

impl Future for Rung<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if !self.bell.armed.load(Ordering::Acquire) {
            return Poll::Ready(());
        }
        self.bell.waker.register(cx.waker());
        // A ring between the check above and the registration would be lost: look again.
        if !self.bell.armed.load(Ordering::Acquire) {
            return Poll::Ready(());
        }
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn a_ring_after_arming_wakes_the_sleeper_across_threads() {
        let bell = Arc::new(Doorbell::default());
        let ringer = Arc::clone(&bell);
        let handle = glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
            .io_memory(64 << 10)
            .spawn(move || async move {
                for _ in 0..100 {
                    bell.arm();
                    // Whatever the interleaving, the ringer thread rings after each arm.
                    bell.rung().await;
                }
            })
            .unwrap();
        // Ring until the executor has finished its 100 sleeps (and dropped its clone).
        while Arc::strong_count(&ringer) > 1 {
            ringer.ring();
            std::hint::spin_loop();
        }
        handle.join().unwrap();
    }

    #[test]
    fn ringing_an_unarmed_bell_does_nothing() {
        let bell = Doorbell::default();
        bell.ring();
        assert!(!bell.armed.load(Ordering::Relaxed));
        bell.arm();
        bell.disarm();
        bell.ring();
        assert!(!bell.armed.load(Ordering::Relaxed));
    }
}
