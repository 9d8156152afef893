//! Blocking calls of the broadcast ring (`std` feature): wait with a [`WaitStrategy`] on the
//! ring's events, and notify the other side after publishing (the pairing rule is in the
//! [module docs](super)).

use core::time::Duration;

use shmkit_sync::WaitStrategy;

use super::{BroadcastConsumer, BroadcastProducer, Received, WHAT};
use crate::bytes::blocking::wait_for;
use crate::error::Result;
use crate::plain::Plain;

impl<T: Plain> BroadcastProducer<'_, T> {
    /// Publishes `value`, waiting with `strategy` while a registered consumer has no room
    /// (credit flow control only; at most `timeout`, then [`crate::Error::TimedOut`]; `None`
    /// waits forever), then notifies the consumers' event: no system call unless one sleeps.
    ///
    /// ```
    /// # use std::num::NonZeroU32;
    /// # use std::ptr::NonNull;
    /// # use shmkit_ring::CachePadded;
    /// # use shmkit_ring::broadcast::{Broadcast, BroadcastConsumer, BroadcastProducer, Flow, Received};
    /// use std::time::Duration;
    /// use shmkit_sync::SpinFutex;
    ///
    /// let flow = Flow::Credit { consumers: 4 };
    /// let len = Broadcast::<u64>::bytes_for(8, flow)?;
    /// let mut memory: Vec<CachePadded<[u8; 128]>> =
    ///     (0..len.div_ceil(128)).map(|_| CachePadded([0; 128])).collect();
    /// let ptr = NonNull::new(memory.as_mut_ptr().cast::<u8>()).unwrap();
    /// // SAFETY: `memory` outlives the ring (the thread is joined) and is used only through it.
    /// let mut consumer = unsafe {
    ///     Broadcast::<u64>::init(ptr, len, 8, flow)?;
    ///     BroadcastConsumer::<u64>::attach_credit(ptr, len, NonZeroU32::new(2).unwrap())?
    /// };
    /// let address = ptr.as_ptr() as usize;
    /// let producer = std::thread::spawn(move || -> shmkit_ring::Result<()> {
    ///     let ptr = NonNull::new(address as *mut u8).unwrap();
    ///     // SAFETY: as above.
    ///     let mut producer =
    ///         unsafe { BroadcastProducer::<u64>::attach(ptr, len, NonZeroU32::MIN)? };
    ///     for n in 0..1000 {
    ///         producer.publish_blocking(&n, &SpinFutex::default(), Some(Duration::from_secs(10)))?;
    ///     }
    ///     Ok(())
    /// });
    /// // A hundred times the capacity, and nothing lost: the producer waits for this consumer.
    /// for n in 0..1000 {
    ///     assert_eq!(consumer.recv_blocking(&SpinFutex::default(), None)?, Received::Message(n));
    /// }
    /// producer.join().unwrap()?;
    /// # Ok::<(), shmkit_ring::Error>(())
    /// ```
    pub fn publish_blocking(
        &mut self,
        value: &T,
        strategy: &impl WaitStrategy,
        timeout: Option<Duration>,
    ) -> Result<()> {
        if !self.try_publish(value)? {
            let event = self.ring.credit_event();
            wait_for(strategy, event, WHAT, || self.refresh_limit(), timeout)?;
            // The wait saw credit for this message, and only this producer uses it up.
            let published = self.try_publish(value)?;
            debug_assert!(published, "credit seen by the wait is still there");
        }
        strategy.notify(self.ring.data_event());
        Ok(())
    }

    /// Wakes the consumers that sleep on the ring's data event; without a sleeper, one
    /// `StoreLoad` barrier and one load, no system call. For a producer that publishes with
    /// [`BroadcastProducer::try_publish`] and has consumers that may sleep: call it after a batch.
    pub fn notify_consumers(&self) {
        self.ring.data_event().notify_all();
    }
}

impl<T: Plain> BroadcastConsumer<'_, T> {
    /// The next message or lap ([`Received::Message`] or [`Received::Lapped`], never
    /// [`Received::Empty`]), waiting with `strategy` until there is one (at most `timeout`, then
    /// [`crate::Error::TimedOut`]; `None` waits forever). A credit consumer then notifies the
    /// producer's event: no system call unless the producer sleeps.
    pub fn recv_blocking(
        &mut self,
        strategy: &impl WaitStrategy,
        timeout: Option<Duration>,
    ) -> Result<Received<T>> {
        loop {
            match self.try_recv()? {
                Received::Empty => {
                    let event = self.ring.data_event();
                    wait_for(strategy, event, WHAT, || self.ready(), timeout)?;
                }
                received => {
                    if self.has_credit() {
                        strategy.notify(self.ring.credit_event());
                    }
                    return Ok(received);
                }
            }
        }
    }

    /// Wakes the producer if it sleeps on the ring's credit event; without a sleeper, one
    /// `StoreLoad` barrier and one load, no system call. For a credit consumer that reads with
    /// [`BroadcastConsumer::try_recv`] and has a producer that may sleep: call it after a batch.
    pub fn notify_producer(&self) {
        self.ring.credit_event().notify_all();
    }
}
