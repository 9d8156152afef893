//! The broadcast ring: one producer that never waits (unless asked to), any number of consumers,
//! each of which reads every message it is fast enough to read, and learns exactly how many it
//! lost when the producer laps it. Optional credit-based flow control turns it into a reliable
//! broadcast for a set of registered consumers.
//!
//! # Layout
//!
//! ```text
//! offset        bytes               what                                  written by
//! 0             128                 Header (capacity = slots,             the creator, once
//!                                   element size = size_of::<T>())
//! 128           128                 producer line: next u64, owner u32,   the producer (next,
//!                                   flow u32, credit slots u32,           owner); the creator
//!                                   slot stride u32                       (the rest)
//! 256           128                 events: `data` (consumers sleep),     a side that goes to
//!                                   `credit` (the producer sleeps)        sleep
//! 384           128 × credit slots  credit table: position u64,           each registered
//!                                   owner u32 per consumer                consumer, its own line
//! 384 + 128·c   capacity × stride   slots: seq u64, then the message as   the producer
//!                                   u64 words, padded to the stride
//! ```
//!
//! The stride is `8 + size_of::<T>()` rounded up to a power of two up to 64 bytes and to a
//! multiple of 64 above, so that a slot never straddles a cache line needlessly. Every word of a
//! slot is an atomic: a consumer may read a slot while the producer overwrites it, which is a
//! detected race on values, never a data race.
//!
//! # Protocol
//!
//! Message `n` (counted from 0 since creation) goes to slot `n mod capacity`. A slot's `seq` is 0
//! while never written, `2(n + 1) + 1` while message `n` is being written, `2(n + 1)` once it is
//! published. The producer:
//!
//! ```text
//! seq.store(writing(n), Relaxed)
//! fence(Release)                       // orders the mark before the payload stores
//! payload words .store(..., Relaxed)
//! seq.store(published(n), Release)     // the message, for a consumer's Acquire load
//! next.store(n + 1, Release)           // the producer's position, for lapped and new consumers
//! ```
//!
//! A consumer at position `p` loads the seq of slot `p mod capacity` (`Acquire`):
//! - message `p`, published: it copies the payload (`Relaxed` loads), `fence(Acquire)`, and loads
//!   the seq again. Unchanged: the copy is message `p`, whole. Changed: the producer began to
//!   overwrite the slot during the copy (the fence pairs with the producer's release fence: a
//!   load that saw a newer payload word makes the newer writing mark visible), so the copy is
//!   dropped and the consumer is *lapped while reading*;
//! - an older message, or message `p` being written: nothing yet ([`Received::Empty`]);
//! - a newer message (written or being written): the consumer is *lapped while polling*.
//!
//! # Loss accounting
//!
//! A lapped consumer loads the producer's position `next` and jumps to
//! `max(p + 1, next - capacity)`, the oldest message that may still be in the ring, and reports
//! [`Received::Lapped`] with `lost` = the number of messages it jumped over. Every one of them is
//! gone: message `p` was seen overwritten, and a message `m < next - capacity` was overwritten by
//! message `m + capacity < next`. So `lost` is exact, and for a consumer that stays attached,
//! `received + lost == position - start` always. The message it jumps to may itself be overwritten
//! before it is read (the producer keeps going); that is a further lap, counted the same way.
//! A consumer stopped while the producer wrote `N > capacity` messages past its position (and
//! then stopped) loses exactly `N - capacity` and then receives the last `capacity` in order.
//!
//! # Credit-based flow control
//!
//! Chosen at [`Broadcast::init`] with [`Flow::Credit`]: the ring has a table of credit slots, one
//! 128-byte line each. A consumer that registers ([`BroadcastConsumer::attach_credit`]) claims a
//! slot (CAS of its owner word from 0) and publishes its position there (`Release`) after every
//! message it receives. The producer caches `limit = min(registered positions) + capacity` and
//! writes message `n` only while `n < limit`; when it reaches the limit it rescans the table
//! (`Acquire` loads, after a `SeqCst` fence) and, if the slowest consumer has not moved,
//! [`BroadcastProducer::try_publish`] returns `Ok(false)` (the producer waits, or
//! `publish_blocking` sleeps). Nothing a registered consumer has not read is ever overwritten.
//!
//! Registration races with the producer without locking: the consumer stores its slot's owner
//! and a position read from `next`, issues a `SeqCst` fence, loads `next` again and starts from
//! that second value. Either the producer's rescan fence comes after the consumer's fence and the
//! rescan sees the registration, or the consumer's second load sees every position the producer
//! had reached at its rescans that missed the registration, and none of those rescans let it
//! overwrite a message at or after that position.
//!
//! Consumers that do not register read the same ring without credit (they may be lapped).
//! A registered consumer that dies holds the producer back forever: the producer cannot tell it
//! from a slow one. [`BroadcastProducer::evict_consumer`] frees a given owner's slot, and (`std`)
//! [`BroadcastProducer::evict_dead_consumers`] frees the slots of owners whose process is gone.
//!
//! # What is checked
//!
//! The header (kind, version, `size_of::<T>()`, sizes), the flow configuration against the
//! header's total size, the producer's position (below 2^62), every slot seq (its message must
//! belong to that slot: `seq`'s message `≡ slot mod capacity`), and every credit position (at
//! most the producer's own position). A bad value is [`Error::Corrupted`]; slot indices are always
//! reduced modulo the capacity, so no value in shared memory moves an access out of range.
//!
//! # Waiting (`std` feature)
//!
//! `try_publish` and `try_recv` never wait and never notify. `publish_blocking` waits for credit
//! and notifies the consumers' data event after publishing; `recv_blocking` waits for a message
//! and (credit consumers) notifies the producer's credit event after receiving. The pairing rule
//! of the [byte ring](crate::bytes) applies: a consumer that may sleep needs a producer that uses
//! `publish_blocking` or calls [`BroadcastProducer::notify_consumers`]; a credit producer that may
//! sleep needs consumers that use `recv_blocking` or call
//! [`BroadcastConsumer::notify_producer`].

#[cfg(feature = "std")]
mod blocking;
mod consumer;
mod producer;

use core::marker::PhantomData;
use core::mem::MaybeUninit;
use core::ptr::NonNull;

pub use consumer::{BroadcastConsumer, Received, Start};
pub use producer::BroadcastProducer;

use crate::bytes::{EventSlot, fresh_header};
use crate::error::{Error, Result};
use crate::header::{self, Expected, Header, Kind};
use crate::pad::CachePadded;
use crate::plain::Plain;
use crate::primitive::{AtomicU32, AtomicU64, Ordering};
use crate::role::RoleName;

/// The primitive's name in errors.
pub(crate) const WHAT: &str = "broadcast ring";

/// The layout version of the broadcast ring; bumped whenever the shared layout changes.
pub const LAYOUT_VERSION: u32 = 1;

const PRODUCER: RoleName = RoleName { what: WHAT, role: "producer" };
const CREDIT_CONSUMER: RoleName = RoleName { what: WHAT, role: "credit consumer" };

/// Positions stay below this, so that a slot's seq `2(n + 1) + 1` fits in 64 bits (at 10^9
/// messages a second, 146 years).
const MAX_POSITION: u64 = 1 << 62;

/// The seq of a slot while message `n` is written.
#[inline]
const fn writing(n: u64) -> u64 {
    ((n + 1) << 1) | 1
}

/// The seq of a slot once message `n` is published.
#[inline]
const fn published(n: u64) -> u64 {
    (n + 1) << 1
}

/// `flow` in the producer line: no flow control.
const FLOW_LOSSY: u32 = 0;
/// `flow` in the producer line: credit-based flow control.
const FLOW_CREDIT: u32 = 1;

/// How the producer treats slow consumers, chosen once at [`Broadcast::init`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flow {
    /// The producer never waits; a slow consumer is lapped and told how many messages it lost.
    Lossy,
    /// Up to `consumers` consumers may register for credit; the producer never overwrites a
    /// message a registered consumer has not read (it waits instead). Unregistered consumers
    /// may still read, without credit.
    Credit {
        /// Credit slots in the table (1 to [`Broadcast::MAX_CREDIT_CONSUMERS`]), 128 bytes each.
        consumers: u32,
    },
}

impl Flow {
    /// Credit slots the layout has.
    pub(crate) const fn credit_slots(self) -> u32 {
        match self {
            Self::Lossy => 0,
            Self::Credit { consumers } => consumers,
        }
    }
}

/// The producer's line: `next` and `owner` change, the rest is the creator's configuration.
#[repr(C)]
#[derive(Debug)]
pub(crate) struct ProducerLine {
    /// Messages ever published (stored after each one).
    pub(crate) next: AtomicU64,
    /// The producer's owner id, 0 when free.
    pub(crate) owner: AtomicU32,
    /// [`FLOW_LOSSY`] or [`FLOW_CREDIT`].
    flow: AtomicU32,
    /// Credit slots in the table (0 when lossy).
    credit_slots: AtomicU32,
    /// Bytes of one slot.
    slot_stride: AtomicU32,
}

/// The two events, on a line that is written only when a side registers to sleep.
#[repr(C)]
#[derive(Debug)]
struct Events {
    /// Consumers sleep on it for messages; the producer notifies it.
    data: EventSlot,
    /// The producer sleeps on it for credit; credit consumers notify it.
    credit: EventSlot,
}

/// One registered consumer's line in the credit table.
#[repr(C)]
#[derive(Debug)]
pub(crate) struct CreditSlot {
    /// The next message the consumer will read (everything before it is read).
    pub(crate) position: AtomicU64,
    /// The consumer's owner id, 0 while the slot is free.
    pub(crate) owner: AtomicU32,
    /// Zero.
    reserved: AtomicU32,
}

impl CreditSlot {
    fn new() -> Self {
        Self { position: AtomicU64::new(0), owner: AtomicU32::new(0), reserved: AtomicU32::new(0) }
    }
}

/// Everything before the credit table.
#[repr(C)]
#[derive(Debug)]
pub(crate) struct Control {
    pub(crate) header: Header,
    pub(crate) producer: CachePadded<ProducerLine>,
    events: CachePadded<Events>,
}

#[cfg(not(loom))]
mod layout {
    use core::mem::offset_of;

    use super::{Control, CreditSlot, ProducerLine};
    use crate::pad::CachePadded;

    static_assertions::assert_eq_size!(Control, [u8; 384]);
    static_assertions::const_assert_eq!(offset_of!(Control, producer), 128);
    static_assertions::const_assert_eq!(offset_of!(Control, events), 256);
    static_assertions::const_assert_eq!(offset_of!(ProducerLine, owner), 8);
    static_assertions::const_assert_eq!(offset_of!(ProducerLine, slot_stride), 20);
    static_assertions::assert_eq_size!(CachePadded<CreditSlot>, [u8; 128]);
    static_assertions::const_assert_eq!(offset_of!(CreditSlot, owner), 8);
}

/// The broadcast ring of `T` messages: sizes and placement. The two sides are
/// [`BroadcastProducer`] and [`BroadcastConsumer`]; the [module docs](self) give the layout, the
/// protocol and the loss accounting.
///
/// ```
/// use std::num::NonZeroU32;
/// use std::ptr::NonNull;
/// use shmkit_ring::CachePadded;
/// use shmkit_ring::broadcast::{
///     Broadcast, BroadcastConsumer, BroadcastProducer, Flow, Received, Start,
/// };
///
/// let len = Broadcast::<[u64; 4]>::bytes_for(4, Flow::Lossy)?;
/// let mut memory: Vec<CachePadded<[u8; 128]>> =
///     (0..len.div_ceil(128)).map(|_| CachePadded([0; 128])).collect();
/// let ptr = NonNull::new(memory.as_mut_ptr().cast::<u8>()).expect("a Vec is never null");
/// let owner = NonZeroU32::new(std::process::id()).expect("a pid is never 0");
///
/// // SAFETY: `memory` outlives the ring and is used only through it.
/// let (mut producer, mut consumer) = unsafe {
///     Broadcast::<[u64; 4]>::init(ptr, len, 4, Flow::Lossy)?;
///     (
///         BroadcastProducer::<[u64; 4]>::attach(ptr, len, owner)?,
///         BroadcastConsumer::<[u64; 4]>::attach(ptr, len, Start::Newest)?,
///     )
/// };
/// for n in 0..6 {
///     assert!(producer.try_publish(&[n; 4])?); // a lossy producer never waits
/// }
/// // Six messages into four slots: the consumer lost the first two.
/// assert_eq!(consumer.try_recv()?, Received::Lapped { lost: 2 });
/// assert_eq!(consumer.try_recv()?, Received::Message([2; 4]));
/// assert_eq!(consumer.try_recv()?, Received::Message([3; 4]));
/// # Ok::<(), shmkit_ring::Error>(())
/// ```
#[derive(Debug)]
pub struct Broadcast<T>(PhantomData<T>);

impl<T: Plain> Broadcast<T> {
    /// The most credit slots a ring may have.
    pub const MAX_CREDIT_CONSUMERS: u32 = MAX_CREDIT_CONSUMERS;
    /// The most slots a ring may have.
    pub const MAX_CAPACITY: usize = MAX_CAPACITY;
    /// The alignment the byte range must have.
    pub const ALIGN: usize = align_of::<Control>();
    /// Bytes of one slot in shared memory: the seq word and the message, padded (see the
    /// [module docs](self)).
    pub const SLOT_STRIDE: usize = 8 * stride_words::<T>();

    /// Bytes a ring of `capacity` slots with `flow` takes.
    ///
    /// `capacity` must be a power of two from 1 to [`Broadcast::MAX_CAPACITY`]; a credit flow
    /// must have 1 to [`Broadcast::MAX_CREDIT_CONSUMERS`] consumers.
    pub fn bytes_for(capacity: usize, flow: Flow) -> Result<usize> {
        if Self::SLOT_STRIDE > u32::MAX as usize {
            return Err(Error::InvalidInput {
                what: "broadcast ring message size",
                reason: "a slot of at most 4 GiB",
                value: size_of::<T>() as u64,
            });
        }
        layout_bytes(stride_words::<T>(), capacity, flow)
    }

    /// Places a fresh broadcast ring of `capacity` slots in `len` bytes at `ptr`, and publishes
    /// it: from then on [`BroadcastProducer::attach`] and the consumers' attaches open it, in
    /// this process or another that maps the same bytes.
    ///
    /// # Safety
    ///
    /// - `ptr..ptr + len` is valid for reads and writes for as long as any side of the ring is
    ///   attached (stays mapped).
    /// - Nobody else, in this or another process, accesses those bytes while this writes them;
    ///   others attach afterwards (they see the ring once this returns, through the header's
    ///   `Release` publication).
    /// - From then on the bytes are accessed only through this ring's handles (or as atomics).
    pub unsafe fn init(ptr: NonNull<u8>, len: usize, capacity: usize, flow: Flow) -> Result<()> {
        let needed = Self::bytes_for(capacity, flow)?;
        header::check_placement(WHAT, ptr.as_ptr() as usize, len, needed, Self::ALIGN)?;
        let credit_slots = flow.credit_slots();
        // SAFETY: `check_placement` checked `needed` aligned bytes (control lines, credit table,
        // slots); the caller guarantees they are writable and unused by others now. Every atomic
        // is written fresh (under loom they are objects, not bytes).
        let control = unsafe {
            let control = ptr.cast::<Control>();
            control.write(Control {
                header: fresh_header(),
                producer: CachePadded(ProducerLine {
                    next: AtomicU64::new(0),
                    owner: AtomicU32::new(0),
                    flow: AtomicU32::new(match flow {
                        Flow::Lossy => FLOW_LOSSY,
                        Flow::Credit { .. } => FLOW_CREDIT,
                    }),
                    credit_slots: AtomicU32::new(credit_slots),
                    slot_stride: AtomicU32::new(Self::SLOT_STRIDE as u32),
                }),
                events: CachePadded(Events { data: EventSlot::new(), credit: EventSlot::new() }),
            });
            let credits = ptr.add(size_of::<Control>()).cast::<CachePadded<CreditSlot>>();
            for index in 0..credit_slots as usize {
                credits.add(index).write(CachePadded(CreditSlot::new()));
            }
            let slots = ptr.add(slots_offset(credit_slots)).cast::<AtomicU64>();
            for index in 0..capacity * stride_words::<T>() {
                slots.add(index).write(AtomicU64::new(0));
            }
            control.as_ref()
        };
        control.header.begin(
            &expected::<T>(),
            header::Layout { capacity: capacity as u64, total_size: needed as u64 },
        );
        control.header.publish();
        Ok(())
    }
}

/// What a header must say for this `T`.
const fn expected<T>() -> Expected {
    Expected {
        what: WHAT,
        kind: Kind::Broadcast,
        version: LAYOUT_VERSION,
        element_size: size_of::<T>() as u64,
    }
}

/// Words of a message.
const fn payload_words<T>() -> usize {
    size_of::<T>().div_ceil(8)
}

/// Words of a slot of `T` messages: see [`stride_words_for`].
const fn stride_words<T>() -> usize {
    stride_words_for(size_of::<T>())
}

/// Words of a slot of messages of `size` bytes: seq and payload, rounded up to a power of two up
/// to 8 words (64 bytes) and to a multiple of 8 words above.
pub(crate) const fn stride_words_for(size: usize) -> usize {
    let words = 1 + size.div_ceil(8);
    if words <= 8 { words.next_power_of_two() } else { words.next_multiple_of(8) }
}

/// The most credit slots a ring may have.
const MAX_CREDIT_CONSUMERS: u32 = 1024;
/// The most slots a ring may have.
const MAX_CAPACITY: usize = 1 << 32;

/// Bytes a ring of `capacity` slots of `stride_words` words with `flow` takes
/// ([`Broadcast::bytes_for`] for any message size).
fn layout_bytes(stride_words: usize, capacity: usize, flow: Flow) -> Result<usize> {
    if !capacity.is_power_of_two() || capacity > MAX_CAPACITY {
        return Err(Error::InvalidInput {
            what: "broadcast ring capacity",
            reason: "a power of two from 1 to 2^32 slots",
            value: capacity as u64,
        });
    }
    if let Flow::Credit { consumers } = flow
        && !(1..=MAX_CREDIT_CONSUMERS).contains(&consumers)
    {
        return Err(Error::InvalidInput {
            what: "broadcast ring credit consumers",
            reason: "from 1 to 1024",
            value: u64::from(consumers),
        });
    }
    let too_large = Error::InvalidInput {
        what: "broadcast ring capacity",
        reason: "too large for this address space",
        value: capacity as u64,
    };
    let slots = stride_words
        .checked_mul(size_of::<AtomicU64>())
        .and_then(|stride| stride.checked_mul(capacity))
        .ok_or(too_large)?;
    slots_offset(flow.credit_slots()).checked_add(slots).ok_or(too_large)
}

/// Checks the configuration in the producer line of a published header's ring against the
/// header (after [`Header::check`], which checked the total size against the bytes mapped): a
/// known flow, the stride of `stride_words` words, and a capacity whose ring of that flow takes
/// exactly the total size. Returns the flow.
pub(crate) fn check_config(
    producer: &ProducerLine,
    layout: header::Layout,
    stride_words: usize,
) -> Result<Flow> {
    let flow = match (
        producer.flow.load(Ordering::Relaxed),
        producer.credit_slots.load(Ordering::Relaxed),
    ) {
        (FLOW_LOSSY, 0) => Flow::Lossy,
        (FLOW_CREDIT, consumers) => Flow::Credit { consumers },
        (flow, _) => {
            return Err(corrupted(
                "flow",
                u64::from(flow),
                "0 (lossy, no credit slots) or 1 (credit)",
            ));
        }
    };
    let stride = producer.slot_stride.load(Ordering::Relaxed);
    if stride as usize != 8 * stride_words {
        return Err(corrupted("slot stride", u64::from(stride), "the stride of its message size"));
    }
    let needed = usize::try_from(layout.capacity)
        .ok()
        .and_then(|capacity| layout_bytes(stride_words, capacity, flow).ok())
        .ok_or(corrupted(
            "capacity",
            layout.capacity,
            "a power of two up to 2^32, with 1 to 1024 credit slots",
        ))?;
    if layout.total_size != needed as u64 {
        return Err(corrupted(
            "total size",
            layout.total_size,
            "the size of a ring of its capacity and flow",
        ));
    }
    Ok(flow)
}

/// The error for a bad value read from shared memory.
#[cold]
fn corrupted(field: &'static str, value: u64, expected: &'static str) -> Error {
    Error::Corrupted { what: WHAT, field, value, expected }
}

/// Checks a registered consumer's credit position against the producer's position `next`: a
/// consumer never reads past the producer.
pub(crate) fn check_credit_position(position: u64, next: u64) -> Result<()> {
    if position > next {
        return Err(corrupted("credit position", position, "at most the producer's position"));
    }
    Ok(())
}

/// The producer's position, checked: below [`MAX_POSITION`].
pub(crate) fn load_next(producer: &ProducerLine, order: Ordering) -> Result<u64> {
    let next = producer.next.load(order);
    if next >= MAX_POSITION {
        return Err(corrupted("next", next, "below 2^62"));
    }
    Ok(next)
}

/// Where the slots start: after the control lines and `credit_slots` credit lines.
const fn slots_offset(credit_slots: u32) -> usize {
    size_of::<Control>() + credit_slots as usize * size_of::<CachePadded<CreditSlot>>()
}

/// An attached view of a published ring: its lines, credit table, slots and checked sizes.
struct Ring<'a, T> {
    control: &'a Control,
    credits: &'a [CachePadded<CreditSlot>],
    slots: NonNull<AtomicU64>,
    capacity: u64,
    _message: PhantomData<T>,
}

impl<T> Clone for Ring<'_, T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for Ring<'_, T> {}

impl<'a, T: Plain> Ring<'a, T> {
    /// Opens the ring at `ptr`: checks placement, the header and the configuration.
    ///
    /// # Safety
    ///
    /// `ptr..ptr + len` is valid for reads and writes for `'a`, and accessed only as a ring.
    unsafe fn open(ptr: NonNull<u8>, len: usize) -> Result<Self> {
        header::check_placement(
            WHAT,
            ptr.as_ptr() as usize,
            len,
            size_of::<Control>(),
            Broadcast::<T>::ALIGN,
        )?;
        // SAFETY: the range holds an aligned `Control`, valid for `'a` (the caller); all atomics.
        let control = unsafe { ptr.cast::<Control>().as_ref() };
        let layout = control.header.check(&expected::<T>(), len)?;
        let flow = check_config(&control.producer, layout, stride_words::<T>())?;
        let credit_slots = flow.credit_slots() as usize;
        // SAFETY: a ring of this flow and capacity takes `total_size <= len` bytes (`check_config`,
        // `Header::check`): the control lines, `credit_slots` credit lines and the slots; all
        // atomics, valid for `'a`.
        let (credits, slots) = unsafe {
            let credits = ptr.add(size_of::<Control>()).cast::<CachePadded<CreditSlot>>();
            (
                core::slice::from_raw_parts(credits.as_ptr(), credit_slots),
                ptr.add(slots_offset(flow.credit_slots())).cast::<AtomicU64>(),
            )
        };
        Ok(Self { control, credits, slots, capacity: layout.capacity, _message: PhantomData })
    }

    fn corrupted(field: &'static str, value: u64, expected: &'static str) -> Error {
        corrupted(field, value, expected)
    }

    /// The words of slot `position mod capacity`: seq first, then the payload.
    #[inline]
    fn slot(&self, position: u64) -> NonNull<AtomicU64> {
        let index = (position & (self.capacity - 1)) as usize;
        // SAFETY: `index < capacity`, and the slots area holds `capacity * stride_words` words.
        unsafe { self.slots.add(index * stride_words::<T>()) }
    }

    /// The seq word of slot `position mod capacity`.
    #[inline]
    fn seq(&self, position: u64) -> &'a AtomicU64 {
        // SAFETY: a word of the slots area (see `slot`), valid for `'a`, only accessed atomically.
        unsafe { self.slot(position).as_ref() }
    }

    /// Loads the producer's position and checks it.
    fn next(&self) -> Result<u64> {
        load_next(&self.control.producer, Ordering::Acquire)
    }

    /// The ring's flow control.
    fn credit(&self) -> bool {
        !self.credits.is_empty()
    }

    #[cfg(feature = "std")]
    fn data_event(&self) -> &'a shmkit_sync::Event {
        &self.control.events.0.data
    }

    #[cfg(feature = "std")]
    fn credit_event(&self) -> &'a shmkit_sync::Event {
        &self.control.events.0.credit
    }
}

/// Stores `value` into the payload words of the slot at `slot` (`Relaxed`).
#[inline]
fn store_payload<T: Plain>(slot: NonNull<AtomicU64>, value: &T) {
    let source = core::ptr::from_ref(value).cast::<u8>();
    let size = size_of::<T>();
    for word in 0..payload_words::<T>() {
        let start = word * 8;
        let bits = if start + 8 <= size {
            // SAFETY: bytes `start..start + 8` of `value`, which has no padding (`Plain`).
            unsafe { source.add(start).cast::<u64>().read_unaligned() }
        } else {
            let mut bytes = [0; 8];
            // SAFETY: the last `size - start` bytes of `value`.
            unsafe {
                core::ptr::copy_nonoverlapping(source.add(start), bytes.as_mut_ptr(), size - start);
            }
            u64::from_ne_bytes(bytes)
        };
        // SAFETY: payload word `word` of the slot (`1 + word < stride_words`), valid for the
        // ring's lifetime, only accessed atomically.
        unsafe { slot.add(1 + word).as_ref() }.store(bits, Ordering::Relaxed);
    }
}

/// Loads a `T` from the payload words of the slot at `slot` (`Relaxed`).
#[inline]
fn load_payload<T: Plain>(slot: NonNull<AtomicU64>) -> T {
    let mut value = MaybeUninit::<T>::uninit();
    let target = value.as_mut_ptr().cast::<u8>();
    let size = size_of::<T>();
    for word in 0..payload_words::<T>() {
        // SAFETY: as in `store_payload`.
        let bits = unsafe { slot.add(1 + word).as_ref() }.load(Ordering::Relaxed);
        let start = word * 8;
        if start + 8 <= size {
            // SAFETY: bytes `start..start + 8` of `value`.
            unsafe { target.add(start).cast::<u64>().write_unaligned(bits) };
        } else {
            let bytes = bits.to_ne_bytes();
            // SAFETY: the last `size - start` bytes of `value`.
            unsafe {
                core::ptr::copy_nonoverlapping(bytes.as_ptr(), target.add(start), size - start);
            }
        }
    }
    // SAFETY: every byte of `value` was written above, and `T: Plain` is valid for every bit
    // pattern.
    unsafe { value.assume_init() }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn strides() {
        assert_eq!(Broadcast::<u8>::SLOT_STRIDE, 16);
        assert_eq!(Broadcast::<u64>::SLOT_STRIDE, 16);
        assert_eq!(Broadcast::<[u64; 3]>::SLOT_STRIDE, 32);
        assert_eq!(Broadcast::<[u64; 4]>::SLOT_STRIDE, 64);
        assert_eq!(Broadcast::<[u64; 7]>::SLOT_STRIDE, 64);
        assert_eq!(Broadcast::<[u64; 8]>::SLOT_STRIDE, 128);
        assert_eq!(Broadcast::<[u8; 100]>::SLOT_STRIDE, 128);
        assert_eq!(Broadcast::<[u64; 4]>::bytes_for(4, Flow::Lossy), Ok(384 + 256));
        assert_eq!(
            Broadcast::<[u64; 4]>::bytes_for(4, Flow::Credit { consumers: 2 }),
            Ok(384 + 256 + 256)
        );
        assert!(Broadcast::<u64>::bytes_for(3, Flow::Lossy).is_err());
        assert!(Broadcast::<u64>::bytes_for(4, Flow::Credit { consumers: 0 }).is_err());
        assert!(Broadcast::<u64>::bytes_for(4, Flow::Credit { consumers: 1025 }).is_err());
    }

    #[test]
    fn payload_round_trip() {
        let mut words = [const { AtomicU64::new(0) }; 4];
        let slot = NonNull::from(&mut words).cast::<AtomicU64>();
        let value: [u8; 21] = core::array::from_fn(|index| index as u8 + 1);
        store_payload(slot, &value);
        assert_eq!(load_payload::<[u8; 21]>(slot), value);
        assert_eq!(words[0].load(Ordering::Relaxed), 0, "the seq word is untouched");
    }
}
