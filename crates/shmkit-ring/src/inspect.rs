//! Read-only inspection: what a primitive in shared bytes says of itself (kind, layout version,
//! sizes, positions, the holders of its roles), read without taking part, for tools that watch
//! rings other processes use (`shmkit ring stat`).
//!
//! [`snapshot`] claims no role, writes nothing, and works on bytes mapped read-only
//! (`PROT_READ`): every shared word is read with a relaxed atomic load, the only atomic access
//! [`core::sync::atomic`] guarantees not to write ("Atomic accesses to read-only memory": loads
//! of up to 8 bytes on 64-bit targets, up to 4 on 32-bit ones), and where an `Acquire` is needed
//! (after the header's publication state) it is a fence after a relaxed load.
//!
//! # What is checked
//!
//! The bytes are not trusted, as for an attach: the header must be published (state, magic),
//! of a known kind, and of the layout version of that kind this build knows
//! ([`Kind::layout_version`]; another version is [`Error::UnknownVersion`], and nothing past the
//! header is read). Then per kind, as its attach checks: the capacity (a power of two where the
//! kind has one), the sizes (the whole primitive within the bytes given, the lines within the
//! total size, the broadcast ring's flow, stride and credit table), and the positions (an SPSC or
//! byte ring's fill level within its capacity, a broadcast producer below 2^62 and every credit
//! position at most the producer's). A bad value is [`Error::Corrupted`]. Nothing is read
//! outside `ptr..ptr + len`: the header's sizes are checked before any line after it is read.
//!
//! # Positions that move
//!
//! The peers keep going while a snapshot is read, so its positions are not of one instant, but
//! they are read in an order that keeps them consistent, and a check fails only on values no
//! correct peer writes:
//! - SPSC and byte ring: the consumer's position, the producer's, the consumer's again. The
//!   producer's position lies between what the two consumer loads allow, so one of them makes a
//!   pair whose fill is within the capacity, unless the consumer moved a whole capacity between
//!   two loads; then the three loads are repeated (a few times, then the bad pair is reported).
//! - Broadcast ring: the credit table first, then the producer's position, so that no credit
//!   position read can be ahead of it. [`BroadcastSnapshot::credit_consumer`] reads a slot when
//!   it is called, and the producer's position again after it.

use core::fmt;
use core::num::NonZeroU32;
use core::ptr::NonNull;

use crate::broadcast::{self, CreditSlot, Flow};
use crate::error::{Error, Result};
use crate::header::{self, Header, Kind, Layout};
use crate::pad::CachePadded;
use crate::primitive::{AtomicU32, AtomicU64, Ordering};
use crate::{bytes, seqlock, spsc};

/// The primitive's name in errors, before its kind is known.
const WHAT: &str = "shmkit primitive";

/// Reads of a ring's two positions before a pair whose fill exceeds the capacity is reported
/// (each a pair a consumer that moved a whole capacity between two loads can explain).
const ATTEMPTS: u32 = 64;

/// One side of a primitive: its position and the holder of its role.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Side {
    /// Elements, bytes or messages ever written (a producer) or read (a consumer).
    pub position: u64,
    /// The owner id holding the role (a process id in practice), `None` while it is free.
    pub owner: Option<NonZeroU32>,
}

/// What a primitive said of itself: its header, then what its kind keeps in its lines.
#[derive(Clone, Copy, Debug)]
pub struct Snapshot<'a> {
    /// Its kind.
    pub kind: Kind,
    /// Its layout version (that of [`Kind::layout_version`]: another one is an error).
    pub version: u32,
    /// Elements (SPSC), data bytes (byte ring), slots (broadcast), or 1 (seqlock).
    pub capacity: u64,
    /// Bytes of one element or message (1 for the byte ring, the value's for the seqlock).
    pub element_size: u64,
    /// Bytes of the whole primitive, header included (at most the bytes given).
    pub total_size: u64,
    /// What its kind keeps in its lines.
    pub detail: Detail<'a>,
}

/// The lines of a primitive, by kind.
#[derive(Clone, Copy, Debug)]
pub enum Detail<'a> {
    /// An SPSC ring or a byte ring: its two sides, the producer at most a capacity ahead.
    Ring {
        /// The producer: values or bytes ever pushed (`tail`).
        producer: Side,
        /// The consumer: values or bytes ever popped (`head`).
        consumer: Side,
    },
    /// A broadcast ring.
    Broadcast(BroadcastSnapshot<'a>),
    /// A seqlock.
    SeqLock(SeqLockSnapshot),
}

impl<'a> Snapshot<'a> {
    /// The producer's side of a ring (`None` for a seqlock).
    pub fn producer(&self) -> Option<Side> {
        match &self.detail {
            Detail::Ring { producer, .. } => Some(*producer),
            Detail::Broadcast(broadcast) => Some(broadcast.producer),
            Detail::SeqLock(_) => None,
        }
    }

    /// The consumer's side of an SPSC or byte ring (`None` for the others).
    pub fn consumer(&self) -> Option<Side> {
        match &self.detail {
            Detail::Ring { consumer, .. } => Some(*consumer),
            Detail::Broadcast(_) | Detail::SeqLock(_) => None,
        }
    }

    /// Elements or bytes in an SPSC or byte ring (at most its capacity), messages not yet read
    /// by the slowest credit consumer of a broadcast ring (`None` without one); `None` for a
    /// seqlock.
    pub fn fill(&self) -> Option<u64> {
        match &self.detail {
            Detail::Ring { producer, consumer } => {
                Some(producer.position.wrapping_sub(consumer.position))
            }
            Detail::Broadcast(broadcast) => broadcast.fill(),
            Detail::SeqLock(_) => None,
        }
    }

    /// The broadcast ring's part, if it is one.
    pub fn broadcast(&self) -> Option<&BroadcastSnapshot<'a>> {
        match &self.detail {
            Detail::Broadcast(broadcast) => Some(broadcast),
            Detail::Ring { .. } | Detail::SeqLock(_) => None,
        }
    }
}

/// What a broadcast ring's lines said: its producer, its flow control, and (read on demand) its
/// credit table.
#[derive(Clone, Copy)]
pub struct BroadcastSnapshot<'a> {
    /// The producer: messages ever published.
    pub producer: Side,
    /// Lossy, or credit with its number of credit slots.
    pub flow: Flow,
    /// Messages no longer in the ring, which any consumer that had not read them lost:
    /// `max(0, position − capacity)`.
    pub overwritten: u64,
    /// Credit consumers registered when the table was read.
    pub registered: u32,
    /// The position of the slowest of them, `None` without any.
    pub slowest: Option<u64>,
    control: &'a broadcast::Control,
    credits: &'a [CachePadded<CreditSlot>],
}

/// A registered credit consumer of a broadcast ring.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CreditConsumer {
    /// Its slot in the credit table.
    pub slot: u32,
    /// The next message it reads (every message before it is read).
    pub position: u64,
    /// Its owner id (a process id in practice).
    pub owner: NonZeroU32,
    /// Messages the producer has published that it has not read yet, against the producer's
    /// position loaded right after its own.
    pub behind: u64,
}

impl<'a> BroadcastSnapshot<'a> {
    /// Messages not yet read by the slowest registered credit consumer, `None` without one.
    pub fn fill(&self) -> Option<u64> {
        self.slowest.map(|slowest| self.producer.position - slowest)
    }

    /// Slots in the credit table (0 for a lossy ring).
    pub fn credit_slots(&self) -> u32 {
        self.flow.credit_slots()
    }

    /// The credit consumer registered in slot `index`, read now (a live consumer may have moved
    /// on since the snapshot): `None` while the slot is free.
    ///
    /// Fails with [`Error::InvalidInput`] for an `index` past the table, and [`Error::Corrupted`]
    /// for a position past the producer's.
    pub fn credit_consumer(&self, index: u32) -> Result<Option<CreditConsumer>> {
        let Some(slot) = self.credits.get(index as usize) else {
            return Err(Error::InvalidInput {
                what: "credit slot",
                reason: "below the ring's number of credit slots",
                value: u64::from(index),
            });
        };
        let Some((owner, position)) = registered(slot) else { return Ok(None) };
        let next = broadcast::load_next(&self.control.producer, Ordering::Relaxed)?;
        broadcast::check_credit_position(position, next)?;
        Ok(Some(CreditConsumer { slot: index, position, owner, behind: next - position }))
    }

    /// The registered credit consumers, slot by slot, each read when the iterator reaches it (as
    /// [`BroadcastSnapshot::credit_consumer`]); it ends after the first error.
    pub fn credit_consumers(&self) -> CreditConsumers<'a> {
        CreditConsumers { snapshot: *self, index: 0 }
    }
}

impl fmt::Debug for BroadcastSnapshot<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BroadcastSnapshot")
            .field("producer", &self.producer)
            .field("flow", &self.flow)
            .field("overwritten", &self.overwritten)
            .field("registered", &self.registered)
            .field("slowest", &self.slowest)
            .finish_non_exhaustive()
    }
}

/// The registered credit consumers of a broadcast ring: [`BroadcastSnapshot::credit_consumers`].
#[derive(Clone, Debug)]
pub struct CreditConsumers<'a> {
    snapshot: BroadcastSnapshot<'a>,
    index: u32,
}

impl Iterator for CreditConsumers<'_> {
    type Item = Result<CreditConsumer>;

    fn next(&mut self) -> Option<Self::Item> {
        while self.index < self.snapshot.credit_slots() {
            let index = self.index;
            self.index += 1;
            match self.snapshot.credit_consumer(index) {
                Ok(None) => {}
                Ok(Some(consumer)) => return Some(Ok(consumer)),
                Err(error) => {
                    self.index = u32::MAX;
                    return Some(Err(error));
                }
            }
        }
        None
    }
}

/// What a seqlock's writer line said.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SeqLockSnapshot {
    /// The sequence: even while the value is complete, odd during a write; two per write.
    pub sequence: u64,
    /// The writer's owner id, `None` while the role is free.
    pub writer: Option<NonZeroU32>,
}

/// Reads what the primitive at `ptr` says of itself, without taking part: no role is claimed,
/// nothing is written, and bytes mapped read-only will do. See the [module docs](self) for what
/// is checked and how positions that move are read.
///
/// Fails with [`Error::Placement`] if the `len` bytes at `ptr` cannot hold a header (fewer than
/// 128, or not 128-byte aligned), [`Error::NotPublished`] before its creator published it,
/// [`Error::UnknownVersion`] for a layout version this build does not know, and
/// [`Error::Corrupted`] for anything else no correct peer writes (a wrong magic included).
///
/// # Safety
///
/// - `ptr` is valid for reads of `len` bytes for `'a` (the snapshot's broadcast credit table is
///   read on demand), and `len` comes from the OS (the size of the mapping), not from the bytes;
/// - those bytes are accessed by anyone else only through this crate's primitives, or
///   atomically;
/// - on a target where 8-byte relaxed atomic loads are not guaranteed to be read-only (32-bit
///   targets, see [`core::sync::atomic`]), the bytes are mapped writable.
///
/// ```
/// use std::num::NonZeroU32;
/// use std::ptr::NonNull;
/// use shmkit_ring::CachePadded;
/// use shmkit_ring::header::Kind;
/// use shmkit_ring::inspect::{self, Side};
/// use shmkit_ring::spsc::{Consumer, Producer, SpscRing};
///
/// let len = SpscRing::<u64>::bytes_for(8)?;
/// let mut memory: Vec<CachePadded<[u8; 128]>> =
///     (0..len / 128).map(|_| CachePadded([0; 128])).collect();
/// let ptr = NonNull::new(memory.as_mut_ptr().cast::<u8>()).expect("a Vec is never null");
/// let (one, two) = (NonZeroU32::new(1).unwrap(), NonZeroU32::new(2).unwrap());
///
/// // SAFETY: `memory` outlives the handles and the snapshot, and is used only through the ring.
/// let snapshot = unsafe {
///     SpscRing::<u64>::init(ptr, len, 8)?;
///     let mut producer = Producer::<u64>::attach(ptr, len, one)?;
///     let mut consumer = Consumer::<u64>::attach(ptr, len, two)?;
///     for value in 0..5 {
///         assert!(producer.push(value)?);
///     }
///     assert_eq!(consumer.pop()?, Some(0));
///     drop(consumer); // frees its role
///     inspect::snapshot(ptr, len)?
/// };
/// assert_eq!(snapshot.kind, Kind::Spsc);
/// assert_eq!(snapshot.version, shmkit_ring::spsc::LAYOUT_VERSION);
/// assert_eq!((snapshot.capacity, snapshot.element_size), (8, 8));
/// assert_eq!(snapshot.producer(), Some(Side { position: 5, owner: Some(one) }));
/// assert_eq!(snapshot.consumer(), Some(Side { position: 1, owner: None }));
/// assert_eq!(snapshot.fill(), Some(4));
/// # Ok::<(), shmkit_ring::Error>(())
/// ```
pub unsafe fn snapshot<'a>(ptr: NonNull<u8>, len: usize) -> Result<Snapshot<'a>> {
    let size = size_of::<Header>();
    header::check_placement(WHAT, ptr.as_ptr().addr(), len, size, align_of::<Header>())?;
    // SAFETY: a header's bytes, aligned (checked), valid for reads for `'a` (the caller); all
    // atomics, of which only relaxed loads are made.
    let header = unsafe { ptr.cast::<Header>().as_ref() };
    header.check_published(WHAT)?;
    let number = header.kind.load(Ordering::Relaxed);
    let Some(kind) = Kind::from_u32(number) else {
        return Err(Error::Corrupted {
            what: WHAT,
            field: "kind",
            value: u64::from(number),
            expected: "1 (SPSC ring), 2 (byte ring), 3 (broadcast ring) or 4 (seqlock)",
        });
    };
    let what = kind.what();
    let version = header.check_version(what, kind)?;
    let layout = header.layout(what, len)?;
    let element_size = header.element_size.load(Ordering::Relaxed);
    // SAFETY: each reads the primitive's lines only once it checked that they fit in the total
    // size, which `layout` checked against `len`; the caller's contract is `snapshot`'s.
    let detail = unsafe {
        match kind {
            Kind::Spsc => spsc_detail(ptr, layout, element_size),
            Kind::Bytes => bytes_detail(ptr, layout, element_size),
            Kind::Broadcast => broadcast_detail(ptr, layout, element_size),
            Kind::SeqLock => seqlock_detail(ptr, layout, element_size),
        }
    }?;
    Ok(Snapshot {
        kind,
        version,
        capacity: layout.capacity,
        element_size,
        total_size: layout.total_size,
        detail,
    })
}

/// The holder of a role, from its owner word.
fn owner(word: &AtomicU32) -> Option<NonZeroU32> {
    NonZeroU32::new(word.load(Ordering::Relaxed))
}

/// The owner and position of a credit slot, `None` while it is free.
fn registered(slot: &CachePadded<CreditSlot>) -> Option<(NonZeroU32, u64)> {
    let owner = owner(&slot.owner)?;
    Some((owner, slot.position.load(Ordering::Relaxed)))
}

/// A consistent pair of a ring's positions (see the module docs): `check(head, tail)` accepts it.
fn sides(
    (head, consumer): (&AtomicU64, &AtomicU32),
    (tail, producer): (&AtomicU64, &AtomicU32),
    check: impl Fn(u64, u64) -> Result<()>,
) -> Result<Detail<'static>> {
    let mut attempt = 0;
    let (head, tail) = loop {
        let first = head.load(Ordering::Relaxed);
        let tail = tail.load(Ordering::Relaxed);
        let second = head.load(Ordering::Relaxed);
        let error = match check(first, tail) {
            Ok(()) => break (first, tail),
            Err(error) => error,
        };
        if check(second, tail).is_ok() {
            break (second, tail);
        }
        attempt += 1;
        if attempt == ATTEMPTS {
            return Err(error);
        }
    };
    Ok(Detail::Ring {
        producer: Side { position: tail, owner: owner(producer) },
        consumer: Side { position: head, owner: owner(consumer) },
    })
}

/// The lines of an SPSC ring.
///
/// # Safety
///
/// As [`snapshot`]; `layout` is the ring's checked header (total size within the range).
unsafe fn spsc_detail<'a>(
    ptr: NonNull<u8>,
    layout: Layout,
    element_size: u64,
) -> Result<Detail<'a>> {
    let corrupted =
        |field, value, expected| Error::Corrupted { what: spsc::WHAT, field, value, expected };
    let capacity = layout.capacity;
    if !capacity.is_power_of_two() || usize::try_from(capacity).is_err() {
        return Err(corrupted("capacity", capacity, "a non-zero power of two"));
    }
    if element_size == 0 {
        return Err(corrupted("element size", 0, "not zero"));
    }
    // The blocks after the lines hold every value in at least its element size.
    let needed = capacity
        .checked_mul(element_size)
        .and_then(|values| values.checked_add(size_of::<spsc::Shared>() as u64));
    if needed.is_none_or(|needed| needed > layout.total_size) {
        return Err(corrupted("capacity", capacity, "slots that fit in the total size"));
    }
    // SAFETY: the lines fit in the total size (checked), within the range (the caller); aligned
    // as the header; all atomics, of which only relaxed loads are made.
    let shared = unsafe { ptr.cast::<spsc::Shared>().as_ref() };
    sides(
        (&shared.consumer.head, &shared.consumer.owner),
        (&shared.producer.tail, &shared.producer.owner),
        |head, tail| {
            spsc::check_fill(capacity, tail, head, "tail - head", tail.wrapping_sub(head)).map(drop)
        },
    )
}

/// The lines of a byte ring.
///
/// # Safety
///
/// As [`spsc_detail`].
unsafe fn bytes_detail<'a>(
    ptr: NonNull<u8>,
    layout: Layout,
    element_size: u64,
) -> Result<Detail<'a>> {
    if element_size != 1 {
        return Err(Error::Corrupted {
            what: bytes::WHAT,
            field: "element size",
            value: element_size,
            expected: "1",
        });
    }
    let capacity = bytes::check_layout(layout)? as u64;
    // SAFETY: a ring of this capacity, lines included, takes the total size (checked), within
    // the range (the caller); all atomics, of which only relaxed loads are made.
    let control = unsafe { ptr.cast::<bytes::Control>().as_ref() };
    sides(
        (&control.consumer.head, &control.consumer.owner),
        (&control.producer.tail, &control.producer.owner),
        |head, tail| bytes::check_positions(capacity, head, tail),
    )
}

/// The lines and the credit table of a broadcast ring.
///
/// # Safety
///
/// As [`spsc_detail`].
unsafe fn broadcast_detail<'a>(
    ptr: NonNull<u8>,
    layout: Layout,
    element_size: u64,
) -> Result<Detail<'a>> {
    // A slot stride (a `u32`: the message, its seq word and padding) computed without overflow.
    let size = u32::try_from(element_size)
        .ok()
        .filter(|&size| size <= u32::MAX - 128)
        .and_then(|size| usize::try_from(size).ok());
    let Some(size) = size else {
        return Err(Error::Corrupted {
            what: broadcast::WHAT,
            field: "element size",
            value: element_size,
            expected: "a message whose slot takes at most 4 GiB",
        });
    };
    // The control lines must fit before `check_config` reads the producer line (a ring of any
    // capacity and flow takes at least them).
    if layout.total_size < size_of::<broadcast::Control>() as u64 {
        return Err(Error::Corrupted {
            what: broadcast::WHAT,
            field: "total size",
            value: layout.total_size,
            expected: "the size of a ring of its capacity and flow",
        });
    }
    // SAFETY: the control lines fit in the total size (checked), within the range (the caller);
    // all atomics, of which only relaxed loads are made.
    let control = unsafe { ptr.cast::<broadcast::Control>().as_ref() };
    let flow =
        broadcast::check_config(&control.producer, layout, broadcast::stride_words_for(size))?;
    // SAFETY: a ring of this flow and capacity takes exactly the total size (`check_config`):
    // the control lines, then the credit table of `credit_slots` lines, then the slots.
    let credits = unsafe {
        let first = ptr.add(size_of::<broadcast::Control>()).cast::<CachePadded<CreditSlot>>();
        core::slice::from_raw_parts(first.as_ptr(), flow.credit_slots() as usize)
    };
    // The table first, then the producer's position: no correct credit position is ahead of it.
    let (mut count, mut slowest, mut fastest) = (0, None::<u64>, 0);
    for (_, position) in credits.iter().filter_map(registered) {
        count += 1;
        slowest = Some(slowest.map_or(position, |slowest| slowest.min(position)));
        fastest = fastest.max(position);
    }
    let next = broadcast::load_next(&control.producer, Ordering::Relaxed)?;
    broadcast::check_credit_position(fastest, next)?;
    Ok(Detail::Broadcast(BroadcastSnapshot {
        producer: Side { position: next, owner: owner(&control.producer.owner) },
        flow,
        overwritten: next.saturating_sub(layout.capacity),
        registered: count,
        slowest,
        control,
        credits,
    }))
}

/// The writer line of a seqlock.
///
/// # Safety
///
/// As [`spsc_detail`].
unsafe fn seqlock_detail<'a>(
    ptr: NonNull<u8>,
    layout: Layout,
    element_size: u64,
) -> Result<Detail<'a>> {
    seqlock::check_layout(layout, element_size)?;
    // SAFETY: the writer line and the value's words fit in the total size (checked), within the
    // range (the caller); all atomics, of which only relaxed loads are made.
    let shared = unsafe { ptr.cast::<seqlock::Shared>().as_ref() };
    Ok(Detail::SeqLock(SeqLockSnapshot {
        sequence: shared.writer.sequence.load(Ordering::Relaxed),
        writer: owner(&shared.writer.owner),
    }))
}
