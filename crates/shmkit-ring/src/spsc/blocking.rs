//! Blocking calls of the SPSC ring (`std` feature): wait with a [`WaitStrategy`] on the events in
//! the lines, notify the other side after every publication.
//!
//! Why no wake-up is lost: the waiter's `ready()` loads the other side's position with `Acquire`
//! inside [`WaitStrategy::wait_until`]; the publisher stores its position, then
//! [`WaitStrategy::notify`]s, whose `StoreLoad` barrier pairs with the waiter's registration (the
//! [`Event`] protocol, checked by `shmkit-sync`'s loom models). A side that publishes with the
//! non-blocking calls must notify itself (`notify_consumer` / `notify_producer`) if its peer may
//! sleep.

use core::ptr::NonNull;
use core::time::Duration;
use std::time::Instant;

use shmkit_sync::{Event, WaitStrategy};

use super::{Consumer, Producer, Ring, WHAT};
use crate::error::{Error, Result};
use crate::plain::Plain;
use crate::primitive::{AtomicU32, Ordering};

impl<T: Plain> Ring<'_, T> {
    /// The event a consumer waiting for data sleeps on.
    pub(super) fn data_event(&self) -> &Event {
        event(&self.shared.consumer.data)
    }

    /// The event a producer waiting for space sleeps on.
    pub(super) fn space_event(&self) -> &Event {
        event(&self.shared.producer.space)
    }
}

/// The 8-byte event slot of a line as an [`Event`] (zero bytes are a fresh one).
fn event(slot: &[AtomicU32; 2]) -> &Event {
    let ptr = NonNull::from(slot).cast::<u8>();
    // SAFETY: the slot is 8 bytes, 8-aligned (layout asserts), inside the ring's shared lines that
    // live as long as the borrow, and accessed only atomically, by `Event` or as `AtomicU32`s.
    let event = unsafe { Event::open_at(ptr, size_of::<[AtomicU32; 2]>()) };
    event.expect("the event slot is 8 bytes, 8-aligned (layout asserts)")
}

/// The end of a blocking call's timeout, so that a loop of waits (a peer that keeps publishing
/// positions but no usable value) still ends in time.
struct Deadline(Option<Instant>);

impl Deadline {
    /// `timeout` from now; `None` (or a timeout beyond what `Instant` holds) is never.
    fn after(timeout: Option<Duration>) -> Self {
        Self(timeout.and_then(|timeout| Instant::now().checked_add(timeout)))
    }

    /// What is left of it, for the next wait (zero once passed).
    fn left(&self) -> Option<Duration> {
        self.0.map(|deadline| deadline.saturating_duration_since(Instant::now()))
    }
}

/// A timeout that passed.
fn timed_out() -> Error {
    Error::TimedOut { what: WHAT }
}

/// `count` checked against the capacity: waiting for more could never end.
fn check_count(count: usize, capacity: u64) -> Result<u64> {
    if count as u64 > capacity {
        return Err(Error::InvalidInput {
            what: "count to wait for",
            reason: "at most the capacity",
            value: count as u64,
        });
    }
    Ok(count as u64)
}

impl<T: Plain> Producer<'_, T> {
    /// Waits until at least `count` slots are free (or the head looks corrupt, which the next
    /// call reports); returns the free slots. `None` waits forever.
    ///
    /// Fails with [`Error::TimedOut`], [`Error::Corrupted`], or [`Error::InvalidInput`] if
    /// `count` exceeds the capacity.
    pub fn wait_for_free(
        &mut self,
        count: usize,
        strategy: &impl WaitStrategy,
        timeout: Option<Duration>,
    ) -> Result<usize> {
        let ring = self.ring();
        let capacity = ring.capacity();
        let count = check_count(count, capacity)?;
        let (tail, head) = (self.tail(), &ring.shared.consumer.head);
        let ready = || {
            let fill = tail.wrapping_sub(head.load(Ordering::Acquire));
            fill > capacity || capacity - fill >= count
        };
        if !strategy.wait_until(ring.space_event(), ready, timeout) {
            return Err(timed_out());
        }
        self.free()
    }

    /// Pushes `value`, waiting with `strategy` while the ring is full, then wakes the consumer if
    /// it sleeps. `None` waits forever.
    ///
    /// Fails with [`Error::TimedOut`] (nothing pushed) or [`Error::Corrupted`].
    ///
    /// ```
    /// # use core::{num::NonZeroU32, ptr::NonNull};
    /// # use shmkit_ring::spsc::{Consumer, Producer, SpscRing};
    /// # #[repr(C, align(128))] struct Block([u8; 128]);
    /// # let len = SpscRing::<u64>::bytes_for(2)?;
    /// # let mut memory: Vec<Block> = (0..len.div_ceil(128)).map(|_| Block([0; 128])).collect();
    /// # let ptr = NonNull::new(memory.as_mut_ptr().cast::<u8>()).unwrap();
    /// # unsafe { SpscRing::<u64>::init(ptr, len, 2)? };
    /// use std::time::Duration;
    /// use shmkit_sync::SpinFutex;
    ///
    /// let (ptr, len) = (ptr.as_ptr() as usize, len);
    /// let consumer = std::thread::spawn(move || -> shmkit_ring::Result<u64> {
    ///     let ptr = NonNull::new(ptr as *mut u8).unwrap();
    ///     // SAFETY: the buffer outlives the thread (joined below).
    ///     let mut consumer = unsafe { Consumer::<u64>::attach(ptr, len, NonZeroU32::MIN)? };
    ///     let mut sum = 0;
    ///     for _ in 0..100 {
    ///         sum += consumer.pop_blocking(&SpinFutex::default(), None)?;
    ///     }
    ///     Ok(sum)
    /// });
    /// let ptr = NonNull::new(ptr as *mut u8).unwrap();
    /// let mut producer = unsafe { Producer::<u64>::attach(ptr, len, NonZeroU32::MIN)? };
    /// for value in 0..100 {
    ///     producer.push_blocking(value, &SpinFutex::default(), Some(Duration::from_secs(10)))?;
    /// }
    /// assert_eq!(consumer.join().unwrap()?, 4950);
    /// # Ok::<(), shmkit_ring::Error>(())
    /// ```
    pub fn push_blocking(
        &mut self,
        value: T,
        strategy: &impl WaitStrategy,
        timeout: Option<Duration>,
    ) -> Result<()> {
        let deadline = Deadline::after(timeout);
        while !self.push(value)? {
            self.wait_for_free(1, strategy, deadline.left())?;
        }
        strategy.notify(self.ring().data_event());
        Ok(())
    }
}

impl<T: Plain> Consumer<'_, T> {
    /// Waits until at least `count` values are in the ring (or the tail looks corrupt, which the
    /// next call reports); returns how many there are. `None` waits forever.
    ///
    /// Fails with [`Error::TimedOut`], [`Error::Corrupted`], or [`Error::InvalidInput`] if
    /// `count` exceeds the capacity.
    pub fn wait_for_len(
        &mut self,
        count: usize,
        strategy: &impl WaitStrategy,
        timeout: Option<Duration>,
    ) -> Result<usize> {
        let ring = self.ring();
        let capacity = ring.capacity();
        let count = check_count(count, capacity)?;
        let (head, tail) = (self.head(), &ring.shared.producer.tail);
        let ready = || {
            let fill = tail.load(Ordering::Acquire).wrapping_sub(head);
            fill > capacity || fill >= count
        };
        if !strategy.wait_until(ring.data_event(), ready, timeout) {
            return Err(timed_out());
        }
        self.len()
    }

    /// Pops the oldest value, waiting with `strategy` while the ring is empty, then wakes the
    /// producer if it sleeps. `None` waits forever. See [`Producer::push_blocking`] for an
    /// example.
    ///
    /// Fails with [`Error::TimedOut`] or [`Error::Corrupted`].
    pub fn pop_blocking(
        &mut self,
        strategy: &impl WaitStrategy,
        timeout: Option<Duration>,
    ) -> Result<T> {
        let deadline = Deadline::after(timeout);
        loop {
            if let Some(value) = self.pop()? {
                strategy.notify(self.ring().space_event());
                return Ok(value);
            }
            self.wait_for_len(1, strategy, deadline.left())?;
        }
    }
}
