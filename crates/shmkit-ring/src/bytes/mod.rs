//! The byte-stream ring: one producer appends variable-length records, one consumer reads them,
//! each record always one contiguous range of the ring (never split across the wrap).
//!
//! # Layout
//!
//! ```text
//! offset  bytes     what                                         written by
//! 0       128       Header (magic, version, kind, capacity...)   the creator, once
//! 128     128       producer line: tail u64, owner u32           the producer
//! 256     128       consumer line: head u64, owner u32           the consumer
//! 384     128       events: `data` (consumer sleeps), `space`    a side that goes to sleep
//!                   (producer sleeps), 8 bytes each
//! 512     capacity  data area (a power of two in bytes)          the producer
//! ```
//!
//! The events have a line of their own: a notify loads their waiter count every time, so they must
//! not share a line that the other side writes on every record.
//!
//! # Records
//!
//! `head` and `tail` are byte counts since creation (they never wrap: 2^64 bytes); a position's
//! place in the data area is `position mod capacity`. `head == tail` means empty. Every record
//! starts at a multiple of 8 with an 8-byte header word, `tag << 32 | length`, then `length`
//! payload bytes, padded with unspecified bytes to a multiple of 8: it takes
//! [`ByteRing::record_size`] bytes. A record that would cross the end of the data area is
//! preceded by a *padding marker*, a header word with the padding tag that covers the rest of the
//! area; the record itself goes to offset 0, so that every record is one contiguous range. The
//! padding and its record are published together (one store of `tail`), so a reader sees a
//! padding marker only with a record after it.
//!
//! The largest payload is [`ByteRing::max_record`] of the capacity: `capacity / 2 - 8` bytes.
//! Half the capacity guarantees that any record fits into an empty ring wherever the positions
//! are: if it does not fit before the end of the area, the empty ring's offset is past the middle,
//! so the padding plus the record still fit.
//!
//! # Orderings
//!
//! The producer writes a record (header word and payload), then stores `tail` with `Release`; the
//! consumer loads `tail` with `Acquire` before reading the record. The consumer stores `head`
//! with `Release` after it read a record; the producer loads `head` with `Acquire` before it
//! overwrites those bytes. Each side keeps its own position privately and caches the other's, so
//! a side touches the other's line only when its cached view says full (or empty): a consumer
//! behind the producer reads a whole batch of records for one load of `tail`.
//!
//! A consumer could instead poll the header word after the last record, FastForward-style, and
//! never read `tail`. Measured here (64-byte records, a consumer polling without back-off), that
//! was ten times slower: a consumer that keeps up polls the very cache line the producer is
//! copying the next record into, and the line bounces between the cores on every store of the
//! copy. Polling `tail` costs one line transfer per publication instead.
//!
//! # What is checked
//!
//! Each side trusts only its own private position. The other side's position, every header word
//! and every record length come from memory the peer may write at any time, and are checked
//! before use: `head <= tail <= head + capacity`, both multiples of 8; a record's length at most
//! [`ByteRing::max_record`] and within the published bytes; a padding marker covers exactly the
//! rest of the area and is followed by a record. Anything else is [`Error::Corrupted`]. Every
//! offset into the data area is reduced modulo the capacity, so no value in shared memory can
//! make either side read or write outside the range it was given.

//! # Waiting (`std` feature)
//!
//! `append`, `reserve`, `read`, `peek` and `skip` never wait and never notify: they are the fast
//! path, with no system call and no barrier beyond the position store. The `*_blocking` calls
//! (`append_blocking`, `reserve_blocking`, `read_blocking`, `peek_blocking`) wait with a
//! [`shmkit_sync::WaitStrategy`] and notify the other side's event after they publish. **The
//! pairing rule:** a side that may sleep (a strategy that sleeps, such as
//! [`shmkit_sync::SpinFutex`]) must be paired with a peer that notifies, that is, a peer that
//! uses the `*_blocking` calls, or calls [`ByteProducer::notify_consumer`] /
//! [`ByteConsumer::notify_producer`] after its own publications. A peer that only uses the
//! non-waiting calls never wakes a sleeper: the sleeper then waits for its timeout.

#[cfg(feature = "std")]
pub(crate) mod blocking;
mod consumer;
mod data;
mod producer;

use core::ptr::NonNull;

pub use consumer::{ByteConsumer, ReadGrant};
pub use producer::{AppendBatch, ByteProducer, WriteGrant};

use crate::error::{Error, Result};
use crate::header::{self, Expected, Header, Kind};
use crate::pad::CachePadded;
use crate::primitive::{AtomicU32, AtomicU64, Ordering};
use crate::role::RoleName;
use data::Data;

/// The primitive's name in errors.
pub(crate) const WHAT: &str = "byte ring";

/// The layout version of the byte ring; bumped whenever the shared layout changes.
pub const LAYOUT_VERSION: u32 = 1;

const EXPECTED: Expected =
    Expected { what: WHAT, kind: Kind::Bytes, version: LAYOUT_VERSION, element_size: 1 };

const PRODUCER: RoleName = RoleName { what: WHAT, role: "producer" };
const CONSUMER: RoleName = RoleName { what: WHAT, role: "consumer" };

/// Positions found at attach time are below this (2^62 bytes: 4 EiB, never reached), so that
/// neither side's position can overflow.
const MAX_POSITION: u64 = 1 << 62;

/// Bytes of a record's header word, and the alignment of every record.
const WORD: u64 = 8;

/// The tag of a record's header word (`b"REC1"` as a little-endian `u32`).
const TAG_RECORD: u32 = u32::from_le_bytes(*b"REC1");
/// The tag of a padding marker (`b"PAD1"` as a little-endian `u32`).
const TAG_PADDING: u32 = u32::from_le_bytes(*b"PAD1");

/// A header word: `tag << 32 | length`.
const fn header_word(tag: u32, length: u32) -> u64 {
    ((tag as u64) << 32) | length as u64
}

/// An 8-byte event slot. With `std` it is a [`shmkit_sync::Event`]; without, the same 8 bytes,
/// kept zero (a fresh event) so that a `std` peer can use them.
#[cfg(feature = "std")]
pub(crate) type EventSlot = shmkit_sync::Event;

/// An 8-byte event slot. With `std` it is a `shmkit_sync::Event`; without, the same 8 bytes,
/// kept zero (a fresh event) so that a `std` peer can use them.
#[cfg(not(feature = "std"))]
#[repr(C)]
#[derive(Debug)]
pub(crate) struct EventSlot([AtomicU32; 2]);

#[cfg(not(feature = "std"))]
impl EventSlot {
    pub(crate) fn new() -> Self {
        Self([AtomicU32::new(0), AtomicU32::new(0)])
    }
}

#[cfg(not(loom))]
static_assertions::assert_eq_size!(EventSlot, [u8; 8]);
#[cfg(not(loom))]
static_assertions::const_assert_eq!(align_of::<EventSlot>(), 4);

/// The producer's line.
#[repr(C)]
#[derive(Debug)]
pub(crate) struct ProducerLine {
    /// Bytes ever appended (records, headers and padding).
    pub(crate) tail: AtomicU64,
    /// The producer's owner id, 0 when free.
    pub(crate) owner: AtomicU32,
    /// Zero.
    reserved: AtomicU32,
}

/// The consumer's line.
#[repr(C)]
#[derive(Debug)]
pub(crate) struct ConsumerLine {
    /// Bytes ever consumed.
    pub(crate) head: AtomicU64,
    /// The consumer's owner id, 0 when free.
    pub(crate) owner: AtomicU32,
    /// Zero.
    reserved: AtomicU32,
}

/// The two events, on a line that is written only when a side registers to sleep.
#[repr(C)]
#[derive(Debug)]
struct Events {
    /// The consumer sleeps on it for records; the producer notifies it.
    data: EventSlot,
    /// The producer sleeps on it for space; the consumer notifies it.
    space: EventSlot,
}

/// Everything before the data area.
#[repr(C)]
#[derive(Debug)]
pub(crate) struct Control {
    pub(crate) header: Header,
    pub(crate) producer: CachePadded<ProducerLine>,
    pub(crate) consumer: CachePadded<ConsumerLine>,
    events: CachePadded<Events>,
}

#[cfg(not(loom))]
mod layout {
    use core::mem::offset_of;

    use super::{Control, ProducerLine};

    static_assertions::assert_eq_size!(Control, [u8; 512]);
    static_assertions::const_assert_eq!(offset_of!(Control, producer), 128);
    static_assertions::const_assert_eq!(offset_of!(Control, consumer), 256);
    static_assertions::const_assert_eq!(offset_of!(Control, events), 384);
    static_assertions::const_assert_eq!(offset_of!(ProducerLine, owner), 8);
}

impl Control {
    fn new() -> Self {
        let line = || (AtomicU64::new(0), AtomicU32::new(0), AtomicU32::new(0));
        let (tail, producer_owner, producer_reserved) = line();
        let (head, consumer_owner, consumer_reserved) = line();
        Self {
            header: fresh_header(),
            producer: CachePadded(ProducerLine {
                tail,
                owner: producer_owner,
                reserved: producer_reserved,
            }),
            consumer: CachePadded(ConsumerLine {
                head,
                owner: consumer_owner,
                reserved: consumer_reserved,
            }),
            events: CachePadded(Events { data: EventSlot::new(), space: EventSlot::new() }),
        }
    }
}

/// A header with every field zero ([`header::STATE_EMPTY`]), to be filled by [`Header::begin`].
pub(crate) fn fresh_header() -> Header {
    Header {
        magic: AtomicU64::new(0),
        version: AtomicU32::new(0),
        kind: AtomicU32::new(0),
        capacity: AtomicU64::new(0),
        element_size: AtomicU64::new(0),
        total_size: AtomicU64::new(0),
        state: AtomicU32::new(header::STATE_EMPTY),
        reserved: core::array::from_fn(|_| AtomicU32::new(0)),
    }
}

/// The byte-stream ring: sizes and placement. The two sides are [`ByteProducer`] and
/// [`ByteConsumer`]; the module docs give the layout, the record format and what is checked.
///
/// ```
/// use std::num::NonZeroU32;
/// use std::ptr::NonNull;
/// use shmkit_ring::CachePadded;
/// use shmkit_ring::bytes::{ByteConsumer, ByteProducer, ByteRing};
///
/// // Any 128-aligned byte range both processes map; a heap buffer here.
/// let len = ByteRing::bytes_for(4096)?;
/// let mut memory: Vec<CachePadded<[u8; 128]>> =
///     (0..len.div_ceil(128)).map(|_| CachePadded([0; 128])).collect();
/// let ptr = NonNull::new(memory.as_mut_ptr().cast::<u8>()).expect("a Vec is never null");
/// let owner = NonZeroU32::new(std::process::id()).expect("a pid is never 0");
///
/// // SAFETY: `memory` outlives the ring and is used only through it.
/// let (mut producer, mut consumer) = unsafe {
///     ByteRing::init(ptr, len, 4096)?;
///     (ByteProducer::attach(ptr, len, owner)?, ByteConsumer::attach(ptr, len, owner)?)
/// };
/// assert!(producer.append(b"hello")?);
/// assert!(producer.append(b"shared world")?);
///
/// let mut buffer = [0; 64];
/// assert_eq!(consumer.read(&mut buffer)?, Some(5));
/// assert_eq!(&buffer[..5], b"hello");
/// let record = consumer.peek()?.expect("a record is waiting");
/// assert_eq!(record.len(), 12);
/// record.release();
/// assert!(consumer.is_empty()?);
/// # Ok::<(), shmkit_ring::Error>(())
/// ```
#[derive(Debug)]
pub struct ByteRing(());

impl ByteRing {
    /// The smallest capacity, in bytes.
    pub const MIN_CAPACITY: usize = 16;
    /// The largest capacity, in bytes (1 TiB).
    pub const MAX_CAPACITY: usize = 1 << 40;
    /// The alignment the byte range must have.
    pub const ALIGN: usize = align_of::<Control>();
    /// Bytes before the data area (header, the two sides' lines, the events).
    pub const CONTROL_SIZE: usize = size_of::<Control>();

    /// Bytes a ring of `capacity` data bytes takes, control lines included.
    ///
    /// `capacity` must be a power of two from [`ByteRing::MIN_CAPACITY`] to
    /// [`ByteRing::MAX_CAPACITY`].
    pub fn bytes_for(capacity: usize) -> Result<usize> {
        if !capacity.is_power_of_two()
            || !(Self::MIN_CAPACITY..=Self::MAX_CAPACITY).contains(&capacity)
        {
            return Err(Error::InvalidInput {
                what: "byte ring capacity",
                reason: "a power of two from 16 bytes to 1 TiB",
                value: capacity as u64,
            });
        }
        Self::CONTROL_SIZE.checked_add(data::area_bytes(capacity)).ok_or(Error::InvalidInput {
            what: "byte ring capacity",
            reason: "too large for this address space",
            value: capacity as u64,
        })
    }

    /// Bytes a record of `length` payload bytes takes in the ring: an 8-byte header word plus the
    /// payload rounded up to a multiple of 8 (padding markers at the wrap come on top).
    pub const fn record_size(length: usize) -> usize {
        WORD as usize + length.next_multiple_of(WORD as usize)
    }

    /// The longest record a ring of `capacity` bytes takes: `capacity / 2 - 8`.
    pub const fn max_record(capacity: usize) -> usize {
        max_record(capacity as u64) as usize
    }

    /// Places a fresh, empty byte ring of `capacity` data bytes in `len` bytes at `ptr`, and
    /// publishes it: from then on [`ByteProducer::attach`] and [`ByteConsumer::attach`] open it,
    /// in this process or another that maps the same bytes.
    ///
    /// # Safety
    ///
    /// - `ptr..ptr + len` is valid for reads and writes for as long as any side of the ring is
    ///   attached (stays mapped).
    /// - Nobody else, in this or another process, accesses those bytes while this writes them;
    ///   others attach afterwards (they see the ring once this returns, through the header's
    ///   `Release` publication).
    /// - From then on the bytes are accessed only through this ring's handles (or as atomics).
    pub unsafe fn init(ptr: NonNull<u8>, len: usize, capacity: usize) -> Result<()> {
        let needed = Self::bytes_for(capacity)?;
        header::check_placement(WHAT, ptr.as_ptr() as usize, len, needed, Self::ALIGN)?;
        let control = ptr.cast::<Control>();
        // SAFETY: `check_placement` checked that the range holds `needed >= CONTROL_SIZE` bytes,
        // aligned for `Control`; the caller guarantees it is writable and that nobody else
        // accesses it now.
        unsafe { control.write(Control::new()) };
        // SAFETY: just written; from now on accessed only through atomics.
        let control = unsafe { control.as_ref() };
        control.header.begin(
            &EXPECTED,
            header::Layout { capacity: capacity as u64, total_size: needed as u64 },
        );
        // SAFETY: the data area `CONTROL_SIZE..needed` is inside the range.
        let data = unsafe { Data::new(ptr.add(Self::CONTROL_SIZE), capacity as u64) };
        // SAFETY: as for the control lines: nobody else accesses the range yet.
        unsafe { data.init() };
        control.header.publish();
        Ok(())
    }
}

/// `capacity / 2 - 8`, and at most what a header word's 32-bit length holds.
const fn max_record(capacity: u64) -> u64 {
    let half = capacity / 2 - WORD;
    if half > (u32::MAX as u64 & !(WORD - 1)) { u32::MAX as u64 & !(WORD - 1) } else { half }
}

/// `record_size` on `u64`s.
const fn record_size(length: u64) -> u64 {
    WORD + length.next_multiple_of(WORD)
}

/// An attached view of a published ring: its control lines, data area and checked sizes.
#[derive(Clone, Copy, Debug)]
struct Ring<'a> {
    control: &'a Control,
    data: Data,
    capacity: u64,
    max_record: u64,
}

impl Ring<'_> {
    /// Opens the ring at `ptr`: checks placement, the header and the sizes it says.
    ///
    /// # Safety
    ///
    /// `ptr..ptr + len` is valid for reads and writes for `'a`, and accessed only as a ring.
    unsafe fn open(ptr: NonNull<u8>, len: usize) -> Result<Self> {
        header::check_placement(
            WHAT,
            ptr.as_ptr() as usize,
            len,
            ByteRing::CONTROL_SIZE,
            ByteRing::ALIGN,
        )?;
        // SAFETY: the range holds an aligned `Control`, valid for `'a` (the caller); all atomics.
        let control = unsafe { ptr.cast::<Control>().as_ref() };
        let layout = control.header.check(&EXPECTED, len)?;
        check_layout(layout)?;
        // SAFETY: a ring of this capacity takes `total_size <= len` bytes (`check_layout`,
        // `Header::check`), so the data area `CONTROL_SIZE..total_size` is inside the range.
        let data = unsafe { Data::new(ptr.add(ByteRing::CONTROL_SIZE), layout.capacity) };
        Ok(Self {
            control,
            data,
            capacity: layout.capacity,
            max_record: max_record(layout.capacity),
        })
    }

    #[cold]
    fn corrupted(field: &'static str, value: u64, expected: &'static str) -> Error {
        Error::Corrupted { what: WHAT, field, value, expected }
    }

    /// Checks a pair of positions: `head <= tail <= head + capacity`, both multiples of 8.
    fn check_positions(&self, head: u64, tail: u64) -> Result<()> {
        check_positions(self.capacity, head, tail)
    }

    /// Loads both positions (`Acquire`) and checks them, for a side that attaches: also below
    /// [`MAX_POSITION`], so that the side's own position never overflows.
    fn positions(&self) -> Result<(u64, u64)> {
        let head = self.control.consumer.head.load(Ordering::Acquire);
        let tail = self.control.producer.tail.load(Ordering::Acquire);
        check_attach_positions(self.capacity, head, tail)?;
        Ok((head, tail))
    }
}

/// Checks the capacity and total size of a published header (after [`Header::check`], which
/// checked the total size against the bytes mapped): a capacity [`ByteRing::bytes_for`] takes,
/// and exactly the size of a ring of that capacity. Returns the capacity.
pub(crate) fn check_layout(layout: header::Layout) -> Result<usize> {
    let capacity = usize::try_from(layout.capacity)
        .ok()
        .filter(|&capacity| ByteRing::bytes_for(capacity).is_ok())
        .ok_or(Ring::corrupted("capacity", layout.capacity, "a power of two from 16 to 2^40"))?;
    let needed = ByteRing::bytes_for(capacity)?;
    if layout.total_size != needed as u64 {
        return Err(Ring::corrupted(
            "total size",
            layout.total_size,
            "the size of a ring of its capacity",
        ));
    }
    Ok(capacity)
}

/// Checks a pair of positions: `head <= tail <= head + capacity`, both multiples of 8.
pub(crate) fn check_positions(capacity: u64, head: u64, tail: u64) -> Result<()> {
    if !head.is_multiple_of(WORD) {
        return Err(Ring::corrupted("head", head, "a multiple of 8"));
    }
    if !tail.is_multiple_of(WORD) {
        return Err(Ring::corrupted("tail", tail, "a multiple of 8"));
    }
    match tail.checked_sub(head) {
        Some(used) if used <= capacity => Ok(()),
        _ => Err(Ring::corrupted(
            "tail - head",
            tail.wrapping_sub(head),
            "at most the capacity (tail never behind head)",
        )),
    }
}

/// [`check_positions`], and a `tail` below [`MAX_POSITION`], as a side that attaches needs (so
/// that its own position never overflows).
pub(crate) fn check_attach_positions(capacity: u64, head: u64, tail: u64) -> Result<()> {
    check_positions(capacity, head, tail)?;
    if tail >= MAX_POSITION {
        return Err(Ring::corrupted("tail", tail, "below 2^62"));
    }
    Ok(())
}

#[cfg(feature = "std")]
impl<'a> Ring<'a> {
    /// The event the consumer sleeps on for records.
    fn data_event(&self) -> &'a shmkit_sync::Event {
        &self.control.events.0.data
    }

    /// The event the producer sleeps on for space.
    fn space_event(&self) -> &'a shmkit_sync::Event {
        &self.control.events.0.space
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(ByteRing::bytes_for(4096), Ok(512 + 4096));
        assert!(ByteRing::bytes_for(4095).is_err());
        assert!(ByteRing::bytes_for(8).is_err());
        assert!(ByteRing::bytes_for(1 << 41).is_err());
        assert_eq!(ByteRing::record_size(0), 8);
        assert_eq!(ByteRing::record_size(1), 16);
        assert_eq!(ByteRing::record_size(8), 16);
        assert_eq!(ByteRing::record_size(9), 24);
        assert_eq!(ByteRing::max_record(16), 0);
        assert_eq!(ByteRing::max_record(4096), 2040);
        assert_eq!(ByteRing::max_record(1 << 40), (u32::MAX - 7) as usize);
    }
}
