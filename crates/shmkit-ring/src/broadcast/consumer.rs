//! The consumer side of the broadcast ring: [`BroadcastConsumer`].

use core::fmt;
use core::num::NonZeroU32;
use core::ptr::NonNull;

use super::{CREDIT_CONSUMER, CreditSlot, Flow, Ring, load_payload};
use crate::error::{Error, Result};
use crate::pad::CachePadded;
use crate::plain::Plain;
use crate::primitive::{Ordering, fence};
use crate::role;

/// What [`BroadcastConsumer::try_recv`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Received<T> {
    /// The next message, whole and in order.
    Message(T),
    /// No new message yet.
    Empty,
    /// The producer overwrote the next message (seen while polling, or while copying it): the
    /// consumer skipped `lost` messages, every one of them overwritten, and the next call reads
    /// the oldest message that may still be in the ring.
    Lapped {
        /// Messages skipped (at least 1).
        lost: u64,
    },
}

/// Where a consumer that does not register for credit starts reading.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Start {
    /// With the next message published (nothing of what is in the ring now).
    Newest,
    /// With the oldest message that may still be in the ring (the last `capacity` published).
    Oldest,
}

/// What a slot's seq says to a consumer at position `p`.
enum SlotState {
    /// An older message, or message `p` being written.
    NotYet,
    /// Message `p`, published.
    Ready,
    /// A newer message: `p` is overwritten.
    Lapped,
}

/// A consumer of a broadcast ring: receives every message it reads in time, in order, and
/// counts the ones it was too slow for.
///
/// Any number of consumers read the same ring without writing to it
/// ([`BroadcastConsumer::attach`]); with credit flow control, up to the ring's number of credit
/// slots register ([`BroadcastConsumer::attach_credit`]), and the producer never overwrites what
/// they have not read. See [`super::Broadcast`] for an example.
pub struct BroadcastConsumer<'a, T> {
    pub(super) ring: Ring<'a, T>,
    /// The next message to read.
    position: u64,
    /// Messages lost to laps since attaching.
    lost: u64,
    /// The credit slot this consumer holds, with its owner id.
    credit: Option<(&'a CachePadded<CreditSlot>, NonZeroU32)>,
}

// SAFETY: the shared memory the handle points to is accessed only through atomics, from
// whichever thread holds the handle; a credit slot is this handle's alone. `T: Send` for the
// values it copies.
unsafe impl<T: Plain + Send> Send for BroadcastConsumer<'_, T> {}

impl<T: Plain> BroadcastConsumer<'_, T> {
    /// Attaches to the broadcast ring at `ptr` as a consumer without credit: it writes nothing to
    /// the ring, and any number of them may attach. It starts at `start`.
    ///
    /// Fails with [`Error::NotPublished`] before the ring is published, [`Error::Corrupted`] if
    /// the header (for this `T`) or the producer's position is wrong.
    ///
    /// # Safety
    ///
    /// - `ptr..ptr + len` is valid for reads and writes for `'a` (stays mapped while the handle
    ///   lives), and `len` comes from the OS (the size of the mapping), not from the ring.
    /// - The bytes are accessed only through this ring's handles (or as atomics), in any process.
    pub unsafe fn attach(ptr: NonNull<u8>, len: usize, start: Start) -> Result<Self> {
        // SAFETY: the caller's contract is `Ring::open`'s.
        let ring = unsafe { Ring::open(ptr, len) }?;
        let next = ring.next()?;
        let position = match start {
            Start::Newest => next,
            Start::Oldest => next.saturating_sub(ring.capacity),
        };
        Ok(Self { ring, position, lost: 0, credit: None })
    }

    /// Registers with the ring's credit flow control under `owner` (a process id, in practice)
    /// and attaches: the producer will not overwrite a message this consumer has not read. It
    /// starts with the next message published.
    ///
    /// Fails as [`BroadcastConsumer::attach`] does, and with [`Error::InvalidInput`] if the ring
    /// has no flow control, [`Error::RoleTaken`] if every credit slot is held.
    ///
    /// # Safety
    ///
    /// As for [`BroadcastConsumer::attach`].
    pub unsafe fn attach_credit(ptr: NonNull<u8>, len: usize, owner: NonZeroU32) -> Result<Self> {
        // SAFETY: the caller's contract is `Ring::open`'s.
        let ring = unsafe { Ring::open(ptr, len) }?;
        if !ring.credit() {
            return Err(Error::InvalidInput {
                what: "broadcast credit consumer",
                reason: "a ring created with Flow::Credit",
                value: 0,
            });
        }
        let mut holder = 0;
        let slot = ring.credits.iter().find(|slot| {
            match role::claim(&slot.owner, owner, CREDIT_CONSUMER) {
                Ok(()) => true,
                Err(Error::RoleTaken { owner, .. }) => {
                    holder = owner;
                    false
                }
                Err(_) => false,
            }
        });
        let Some(slot) = slot else {
            return Err(Error::RoleTaken {
                what: super::WHAT,
                role: "credit consumer",
                owner: holder,
            });
        };
        // Registration (see "Credit-based flow control"): a conservative position first, the
        // fence, then the position the producer cannot have passed without seeing this slot.
        let first = match ring.next() {
            Ok(next) => next,
            Err(error) => {
                role::release(&slot.owner, owner);
                return Err(error);
            }
        };
        slot.position.store(first, Ordering::Relaxed);
        fence(Ordering::SeqCst);
        let position = match ring.next() {
            Ok(next) => next.max(first),
            Err(error) => {
                role::release(&slot.owner, owner);
                return Err(error);
            }
        };
        slot.position.store(position, Ordering::Release);
        Ok(Self { ring, position, lost: 0, credit: Some((slot, owner)) })
    }

    /// [`BroadcastConsumer::attach_credit`] with this process's id as the owner (`std`
    /// feature), so that [`super::BroadcastProducer::evict_dead_consumers`] can tell when it is
    /// gone.
    ///
    /// # Safety
    ///
    /// As for [`BroadcastConsumer::attach`].
    #[cfg(feature = "std")]
    pub unsafe fn attach_credit_current_process(ptr: NonNull<u8>, len: usize) -> Result<Self> {
        // SAFETY: forwarded from the caller.
        unsafe { Self::attach_credit(ptr, len, role::current_process()) }
    }

    /// The ring's capacity in messages.
    pub fn capacity(&self) -> usize {
        self.ring.capacity as usize
    }

    /// The number of the next message this consumer reads.
    pub fn position(&self) -> u64 {
        self.position
    }

    /// Messages lost to laps since attaching (the sum of every [`Received::Lapped`]).
    pub fn lost(&self) -> u64 {
        self.lost
    }

    /// The ring's flow control.
    pub fn flow(&self) -> Flow {
        if self.ring.credit() {
            Flow::Credit { consumers: self.ring.credits.len() as u32 }
        } else {
            Flow::Lossy
        }
    }

    /// Whether this consumer holds a credit slot (and has not been evicted from it).
    pub fn has_credit(&self) -> bool {
        self.credit.is_some_and(|(slot, owner)| slot.owner.load(Ordering::Relaxed) == owner.get())
    }

    /// The next message, if the producer has published it: [`Received::Message`] (whole, in
    /// order), [`Received::Empty`], or [`Received::Lapped`] with the number of messages lost.
    /// Fails with [`Error::Corrupted`] if a slot's sequence number does not belong to its slot,
    /// or the producer's position is wrong.
    ///
    /// Never waits and never notifies a sleeping producer (see the pairing rule in the
    /// [module docs](super)).
    #[inline]
    pub fn try_recv(&mut self) -> Result<Received<T>> {
        let p = self.position;
        let slot = self.ring.slot(p);
        let seq = self.ring.seq(p);
        let before = seq.load(Ordering::Acquire);
        match self.classify(before)? {
            SlotState::NotYet => return Ok(Received::Empty),
            SlotState::Lapped => return self.lapped(),
            SlotState::Ready => {}
        }
        let value = load_payload::<T>(slot);
        // Pairs with the producer's release fence after its writing mark: if the copy saw any
        // word of a newer message, the load below sees that message's mark.
        fence(Ordering::Acquire);
        if seq.load(Ordering::Relaxed) != before {
            return self.lapped();
        }
        self.advance(p + 1);
        Ok(Received::Message(value))
    }

    /// Whether [`BroadcastConsumer::try_recv`] has something to say (a message or a lap), without
    /// reading it.
    #[cfg(feature = "std")]
    pub(super) fn ready(&self) -> Result<bool> {
        let before = self.ring.seq(self.position).load(Ordering::Acquire);
        Ok(!matches!(self.classify(before)?, SlotState::NotYet))
    }

    /// What a slot's seq says to this consumer.
    #[inline]
    fn classify(&self, seq: u64) -> Result<SlotState> {
        if seq == 0 {
            return Ok(SlotState::NotYet);
        }
        let p = self.position;
        let mask = self.ring.capacity - 1;
        // `seq == 1` would be "message -1 being written": no producer writes it.
        let message = (seq >> 1).wrapping_sub(1);
        if seq == 1 || message & mask != p & mask {
            return Err(Ring::<T>::corrupted(
                "slot sequence",
                seq,
                "a message that belongs to its slot",
            ));
        }
        Ok(if message < p || (message == p && seq & 1 == 1) {
            SlotState::NotYet
        } else if message == p {
            SlotState::Ready
        } else {
            SlotState::Lapped
        })
    }

    /// Message `position` is overwritten: jump to the oldest message that may still be there.
    #[cold]
    fn lapped(&mut self) -> Result<Received<T>> {
        let p = self.position;
        let next = self.ring.next()?;
        let target = next.saturating_sub(self.ring.capacity).max(p + 1);
        let lost = target - p;
        self.lost += lost;
        self.advance(target);
        Ok(Received::Lapped { lost })
    }

    /// Moves to `position` and, with credit, publishes it (`Release`: the reads of the messages
    /// before it happen before the producer overwrites them). A consumer evicted from its slot
    /// (the owner word is no longer its own) goes on without credit.
    #[inline]
    fn advance(&mut self, position: u64) {
        self.position = position;
        if let Some((slot, owner)) = self.credit {
            if slot.owner.load(Ordering::Relaxed) == owner.get() {
                slot.position.store(position, Ordering::Release);
            } else {
                self.credit = None;
            }
        }
    }
}

impl<T> Drop for BroadcastConsumer<'_, T> {
    fn drop(&mut self) {
        if let Some((slot, owner)) = self.credit {
            role::release(&slot.owner, owner);
            // A producer waiting for this consumer's credit may go on now.
            #[cfg(feature = "std")]
            self.ring.control.events.0.credit.notify_all();
        }
    }
}

impl<T> fmt::Debug for BroadcastConsumer<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BroadcastConsumer")
            .field("capacity", &self.ring.capacity)
            .field("position", &self.position)
            .field("lost", &self.lost)
            .field("credit", &self.credit.map(|(_, owner)| owner))
            .finish_non_exhaustive()
    }
}
