//! The producer side of the broadcast ring: [`BroadcastProducer`].

use core::fmt;
use core::num::NonZeroU32;
use core::ptr::NonNull;

use super::{
    MAX_POSITION, PRODUCER, Ring, check_credit_position, published, store_payload, writing,
};
use crate::error::Result;
use crate::plain::Plain;
use crate::primitive::{Ordering, fence};
use crate::role;

/// The producer of a broadcast ring: publishes `T` messages to every consumer.
///
/// Without flow control it never waits: [`BroadcastProducer::try_publish`] always publishes, and
/// a consumer too slow to keep up is lapped. With credit ([`super::Flow::Credit`]) it publishes
/// only while every registered consumer has room. One producer at a time holds the role (an
/// owner word in shared memory, released on drop); see [`super::Broadcast`] for an example.
pub struct BroadcastProducer<'a, T> {
    pub(super) ring: Ring<'a, T>,
    owner: NonZeroU32,
    /// The next message's number: this side's own copy of `next`, the only one it trusts.
    next: u64,
    /// Messages below this may be written without looking at the credit table
    /// (`min(registered positions) + capacity` at the last rescan; `u64::MAX` when lossy).
    limit: u64,
}

// SAFETY: the handle owns the producer role; the shared memory it points to is accessed only
// through atomics, from whichever thread holds the handle. `T: Send` for the values it copies.
unsafe impl<T: Plain + Send> Send for BroadcastProducer<'_, T> {}

impl<'a, T: Plain> BroadcastProducer<'a, T> {
    role::constructors! {
        /// Attaches to the broadcast ring at `ptr` as its producer, recording `owner` (a process id,
        /// in practice) in the ring's producer owner word. Publishing continues from the ring's
        /// position.
        ///
        /// Fails with [`crate::Error::NotPublished`] before the ring is published,
        /// [`crate::Error::Corrupted`] if the header (for this `T`) or the position is wrong,
        /// [`crate::Error::RoleTaken`] if another producer is attached.
        ///
        /// # Safety
        ///
        /// - `ptr..ptr + len` is valid for reads and writes for `'a` (stays mapped while the handle
        ///   lives), and `len` comes from the OS (the size of the mapping), not from the ring.
        /// - The bytes are accessed only through this ring's handles (or as atomics), in any process.
        attach;
        /// Takes over the producer role from `dead` (a holder that died without detaching), then
        /// attaches as [`BroadcastProducer::attach`] does. Fails with [`crate::Error::TakeOver`] if
        /// the role is not held by `dead`. The message the dead producer was writing, if any, is
        /// written again with this producer's next message.
        ///
        /// # Safety
        ///
        /// As for [`BroadcastProducer::attach`]; and `dead` really is gone, or at least no longer
        /// publishes.
        take_over(dead, owner);
        /// Attaches with this process's id as the owner (`std` feature).
        ///
        /// # Safety
        ///
        /// As [`BroadcastProducer::attach`].
        attach_current_process;
        /// Attaches with this process's id as the owner, taking the role over if the process
        /// recorded as its holder is gone (`std` feature; `kill(pid, 0)` fails with `ESRCH`). A
        /// reused pid makes a dead holder look alive: then this fails with
        /// [`crate::Error::RoleTaken`], the safe mistake.
        ///
        /// # Safety
        ///
        /// As [`BroadcastProducer::attach`].
        take_over_if_dead;
    }

    /// Opens the ring and gets the role as `claim` says: the body of the constructors.
    ///
    /// # Safety
    ///
    /// As [`BroadcastProducer::attach`].
    unsafe fn open_as(ptr: NonNull<u8>, len: usize, claim: role::Claim) -> Result<Self> {
        // SAFETY: the caller's contract is `Ring::open`'s.
        let ring = unsafe { Ring::open(ptr, len) }?;
        let owner = claim.apply(&ring.control.producer.owner, PRODUCER)?;
        Self::with_role(ring, owner)
    }

    /// Builds the handle once the role is held: reads and checks the position.
    fn with_role(ring: Ring<'a, T>, owner: NonZeroU32) -> Result<Self> {
        match ring.next() {
            Ok(next) => {
                let limit = if ring.credit() { next } else { u64::MAX };
                Ok(Self { ring, owner, next, limit })
            }
            Err(error) => {
                role::release(&ring.control.producer.owner, owner);
                Err(error)
            }
        }
    }

    /// The ring's capacity in messages.
    pub fn capacity(&self) -> usize {
        self.ring.capacity as usize
    }

    /// The number the next message gets (messages published so far, since creation).
    pub fn position(&self) -> u64 {
        self.next
    }

    /// The owner id this handle recorded in the ring.
    pub fn owner(&self) -> NonZeroU32 {
        self.owner
    }

    /// Publishes `value` as the next message: `Ok(true)`. With credit flow control, `Ok(false)`
    /// (nothing written) while the slowest registered consumer has no room; a lossy ring never
    /// returns it. Fails with [`crate::Error::Corrupted`] if a credit position in the table is
    /// beyond this producer's position.
    ///
    /// Never waits and never notifies a sleeping consumer (see the pairing rule in the
    /// [module docs](super)).
    #[inline]
    pub fn try_publish(&mut self, value: &T) -> Result<bool> {
        let n = self.next;
        if n >= self.limit && !self.refresh_limit()? {
            return Ok(false);
        }
        debug_assert!(n < MAX_POSITION);
        let slot = self.ring.slot(n);
        // SAFETY: the slot's seq word, valid for the ring's lifetime, only accessed atomically.
        let seq = unsafe { slot.as_ref() };
        seq.store(writing(n), Ordering::Relaxed);
        // Orders the writing mark before the payload stores, for a consumer whose copy sees one
        // of them (its acquire fence pairs with this one, then its second seq load sees the mark).
        fence(Ordering::Release);
        store_payload(slot, value);
        seq.store(published(n), Ordering::Release);
        self.next = n + 1;
        self.ring.control.producer.next.store(n + 1, Ordering::Release);
        Ok(true)
    }

    /// Whether message `next` may be written under credit: rescans the table for the slowest
    /// registered consumer.
    #[cold]
    pub(super) fn refresh_limit(&mut self) -> Result<bool> {
        if !self.ring.credit() {
            self.limit = u64::MAX;
            return Ok(true);
        }
        // Pairs with the registering consumer's fence (see "Credit-based flow control").
        fence(Ordering::SeqCst);
        let mut slowest = self.next;
        for slot in self.ring.credits {
            if slot.owner.load(Ordering::Acquire) == 0 {
                continue;
            }
            // Acquire: the consumer's reads of the messages below its position happen before
            // this producer overwrites them.
            let position = slot.position.load(Ordering::Acquire);
            check_credit_position(position, self.next)?;
            slowest = slowest.min(position);
        }
        self.limit = slowest + self.ring.capacity;
        Ok(self.next < self.limit)
    }

    /// Frees every credit slot held by `owner` (a registered consumer that died without
    /// detaching, or that the application gives up on); returns how many. The producer no
    /// longer waits for it; if it is alive after all, it notices at its next message and reads
    /// on without credit (it may be lapped). Evict only consumers that are gone: a live one
    /// may store its position once more, into the slot of a consumer that registered in
    /// between, which that consumer would see as a lap.
    pub fn evict_consumer(&mut self, owner: NonZeroU32) -> usize {
        let mut evicted = 0;
        for slot in self.ring.credits {
            if slot
                .owner
                .compare_exchange(owner.get(), 0, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
            {
                evicted += 1;
            }
        }
        evicted
    }

    /// Frees the credit slots of registered consumers whose process is gone (`std` feature;
    /// `kill(pid, 0)` fails with `ESRCH`: owner ids are taken as process ids); returns how many.
    #[cfg(feature = "std")]
    pub fn evict_dead_consumers(&mut self) -> usize {
        let mut evicted = 0;
        for slot in self.ring.credits {
            let Some(owner) = NonZeroU32::new(slot.owner.load(Ordering::Relaxed)) else {
                continue;
            };
            if role::process_is_dead(owner)
                && slot
                    .owner
                    .compare_exchange(owner.get(), 0, Ordering::AcqRel, Ordering::Relaxed)
                    .is_ok()
            {
                evicted += 1;
            }
        }
        evicted
    }

    /// The owners of the registered credit consumers and their positions, for statistics and
    /// eviction decisions (a snapshot).
    pub fn credit_consumers(&self) -> impl Iterator<Item = (NonZeroU32, u64)> + '_ {
        self.ring.credits.iter().filter_map(|slot| {
            let owner = NonZeroU32::new(slot.owner.load(Ordering::Acquire))?;
            Some((owner, slot.position.load(Ordering::Acquire)))
        })
    }
}

impl<T> Drop for BroadcastProducer<'_, T> {
    fn drop(&mut self) {
        role::release(&self.ring.control.producer.owner, self.owner);
    }
}

impl<T> fmt::Debug for BroadcastProducer<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BroadcastProducer")
            .field("capacity", &self.ring.capacity)
            .field("next", &self.next)
            .field("owner", &self.owner)
            .finish_non_exhaustive()
    }
}
