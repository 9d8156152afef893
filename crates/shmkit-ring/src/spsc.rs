//! The SPSC element ring: one producer process and one consumer process move `T: Plain` values
//! through a power-of-two array of slots in shared memory.
//!
//! # Layout
//!
//! ```text
//! offset 0    Header (128 B)           magic, version, kind, capacity, element size, total size
//! offset 128  producer line (128 B)    tail: u64, producer owner: u32, "space" event (8 B)
//! offset 256  consumer line (128 B)    head: u64, consumer owner: u32, "data" event (8 B)
//! offset 384  blocks                   ⌈capacity / K⌉ blocks: a stamp (u64), then K values (`T`)
//! ```
//!
//! The value of a position is value `q % K` of block `q / K`, where `q = position & (capacity − 1)`.
//! A small `T` (one fits in a line beside the stamp) gets blocks of one 64-byte line with as many
//! values as fit beside the stamp (K = 7 for 8-byte values, 3 for `u128`): one stamp per line
//! costs one word in eight for 8-byte values and puts the stamp a consumer polls in the same cache
//! line as the values it then reads. A larger `T` gets blocks of a stamp line and K = 7 values
//! from the next line on, padded to whole lines. Every block starts a line.
//!
//! `tail` counts values ever pushed, `head` values ever popped: 64-bit counters that never wrap in
//! practice (at 10⁹ values a second, in 584 years). `tail − head` is the fill level, between 0 and
//! the capacity.
//!
//! # Protocol and orderings
//!
//! The producer publishes a *run* of values (one `push`, or one chunk commit) by writing the
//! values, then storing its `tail` with `Release`, then the run's end position (exclusive) into
//! the stamp of the block of the run's first value with `Release`. A stamp `s` therefore says
//! "every position below `s` is published" — also a stamp left from an earlier run or lap, since
//! positions count up forever and a published position stays published until it is read.
//!
//! - The consumer keeps in its handle the end of the published values it knows of
//!   (`cached_tail`). When it has read up to there, it loads the stamp of the block of the next
//!   position with `Acquire`: a stamp above `cached_tail` (and at most a capacity above `head`)
//!   extends what it knows. So a `pop` touches the block's line and its own line, never the
//!   producer's: for small values, the values and their stamp arrive in one cache line transfer
//!   (a large `T` sits in the lines after its block's stamp line), and the `tail` line
//!   stays in the producer's cache. (With a `tail` to poll, as in rtrb, every poll of an empty
//!   ring takes that line away from the producer, which must take it back for its next store.)
//! - The consumer reads slot `head & mask`, then stores `head + 1` with `Release`; the producer
//!   loads `head` with `Acquire` before writing over any slot below it, only when the cached copy
//!   in its handle says full (or, for a chunk, shows fewer free slots than asked for).
//! - `tail` serves `len`, the blocking waits, and the resumption of a taken-over producer. A
//!   producer that died between storing `tail` and the stamp left a run the consumer cannot see:
//!   its successor stores `tail` into the stamp of every block from the consumer's head to `tail`
//!   (each such stamp tells the truth), so the consumer finds the run wherever it stands.
//!
//! # Roles
//!
//! Each line holds its role's owner word (0 free, else the holder's owner id, a pid in practice).
//! [`Producer::attach`] / [`Consumer::attach`] claim it with a CAS from 0, so a second producer
//! gets [`Error::RoleTaken`]; dropping the handle releases it. A holder that died keeps its role
//! until someone takes it over explicitly: [`Producer::take_over`] with the dead owner's id, or
//! (`std` feature) [`Producer::take_over_if_dead`], which checks the recorded pid first. The new
//! holder resumes from the positions the dead one last published: a value it wrote but did not
//! publish is lost, a value published is delivered.
//!
//! # Validation
//!
//! An opener checks the header (magic, layout version, kind, element size, total size at most the
//! bytes it was given), then that the capacity is a non-zero power of two whose layout fits in the
//! total size. The capacity is then fixed in the handle, never read again; slots are reached only
//! through `position & mask` (or a cursor that wraps at the capacity) from the start of the blocks,
//! so no value in shared memory can move an access out of the range. Every position read from the peer is checked: the fill level
//! `tail − head` (wrapping) must be at most the capacity, else the call returns
//! [`Error::Corrupted`]. A stamp is used only if it lies between the consumer's known end and a
//! capacity above its head; any other stamp reads as "nothing published yet" (a bad stamp cannot
//! be told from an old one). A peer that writes garbage can make the values wrong, never this
//! process misbehave.
//!
//! # Performance
//!
//! The fast path is one slot access, the stores of the side's position (and, for the producer,
//! the stamp), and a compare with the cached position; no bounds check, no fence, no system call.
//! The consumer keeps a cursor at its head (block and index), so a `pop` finds its slot with an
//! add, not the division by K; [`WriteChunk::fill_with`] and [`ReadChunk::iter`] walk a cursor too
//! ([`WriteChunk::set`] / [`ReadChunk::get`] locate each slot, a multiply). The producer locates
//! its slot on purpose: with a cursor of its own it pushed faster and the pair went slower (1.0–1.08×
//! rtrb against 1.19–1.28×, threads, same run). The ring then swung between full and empty far
//! more often (per 100,000 values, 5,166 refused pushes and 2,117 empty pops, against 3,893 and
//! 136), and each swing costs line transfers (the producer re-reading `head`, the consumer the
//! block being written). The
//! consumer polls the block it reads next, not the producer's line (see the protocol). A chunk
//! prefetches its slots' cache lines (for writing on the producer's side, `prefetchw`; for reading
//! on the consumer's), so that the line transfers of a batch overlap. `benches/spsc.rs` measures
//! the ring between two processes against rtrb and crossbeam between two threads, and against a
//! bare cache-line ping-pong.
//!
//! # Waiting
//!
//! The core never waits and never makes a system call: `push` returns `Ok(false)` on a full ring,
//! `pop` returns `Ok(None)` on an empty one. With the `std` feature, `push_blocking` /
//! `pop_blocking` wait with a [`shmkit_sync::WaitStrategy`] on the events in the lines, and notify
//! the other side after every value. The non-blocking calls do not notify (a notify costs a
//! `StoreLoad` barrier, the price of a whole push): a side that may sleep ([`shmkit_sync::SpinFutex`])
//! must be paired with a peer that uses the blocking calls, or calls
//! [`Producer::notify_consumer`] / [`Consumer::notify_producer`] after its non-blocking ones.
//!
//! ```
//! use core::num::NonZeroU32;
//! use core::ptr::NonNull;
//! use shmkit_ring::spsc::{Consumer, Producer, SpscRing};
//!
//! // Any shared byte range will do; a heap buffer of 128-byte aligned blocks here.
//! #[repr(C, align(128))]
//! struct Block([u8; 128]);
//! let len = SpscRing::<u64>::bytes_for(8)?;
//! let mut memory: Vec<Block> = (0..len / 128).map(|_| Block([0; 128])).collect();
//! let ptr = NonNull::new(memory.as_mut_ptr().cast::<u8>()).unwrap();
//!
//! // SAFETY: `memory` outlives the handles and is used only through this ring.
//! unsafe { SpscRing::<u64>::init(ptr, len, 8)? };
//! let mut producer = unsafe { Producer::<u64>::attach(ptr, len, NonZeroU32::new(1).unwrap())? };
//! let mut consumer = unsafe { Consumer::<u64>::attach(ptr, len, NonZeroU32::new(2).unwrap())? };
//! assert!(producer.push(7)?);
//! assert_eq!(consumer.pop()?, Some(7));
//! assert_eq!(consumer.pop()?, None);
//! # Ok::<(), shmkit_ring::Error>(())
//! ```

mod consumer;
mod producer;

#[cfg(all(feature = "std", not(loom)))]
mod blocking;

use core::marker::PhantomData;
use core::ptr::NonNull;

pub use consumer::{Consumer, ReadChunk};
pub use producer::{Producer, WriteChunk};

use crate::error::{Error, Result};
use crate::header::{self, Expected, Header, Kind, Layout};
use crate::pad::CachePadded;
use crate::plain::Plain;
use crate::primitive::{AtomicU32, AtomicU64, Ordering};
use crate::role::RoleName;

/// The primitive's name in errors.
pub(crate) const WHAT: &str = "SPSC ring";
/// The layout version of the SPSC ring; bumped whenever the shared layout changes (2: stamped
/// blocks, where version 1 had bare slots and a consumer that polled `tail`).
pub const LAYOUT_VERSION: u32 = 2;

const PRODUCER: RoleName = RoleName { what: WHAT, role: "producer" };
const CONSUMER: RoleName = RoleName { what: WHAT, role: "consumer" };

/// The producer's line: written by the producer only (but for the event's waiter count).
#[repr(C)]
#[derive(Debug)]
pub(crate) struct ProducerLine {
    /// Values ever pushed (published with `Release`).
    pub(crate) tail: AtomicU64,
    /// The producer role's holder, 0 when free.
    pub(crate) owner: AtomicU32,
    /// Zero; keeps the event 8-byte aligned.
    reserved: AtomicU32,
    /// A `shmkit_sync::Event` (zero bytes are a fresh one): a producer waiting for space sleeps
    /// on it, the consumer notifies it.
    space: [AtomicU32; 2],
}

/// The consumer's line: written by the consumer only (but for the event's waiter count).
#[repr(C)]
#[derive(Debug)]
pub(crate) struct ConsumerLine {
    /// Values ever popped (published with `Release`).
    pub(crate) head: AtomicU64,
    /// The consumer role's holder, 0 when free.
    pub(crate) owner: AtomicU32,
    /// Zero; keeps the event 8-byte aligned.
    reserved: AtomicU32,
    /// A `shmkit_sync::Event`: a consumer waiting for data sleeps on it, the producer notifies it.
    data: [AtomicU32; 2],
}

/// Everything before the slots. All atomics: the peer may write any of it at any time.
#[repr(C)]
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) header: Header,
    pub(crate) producer: CachePadded<ProducerLine>,
    pub(crate) consumer: CachePadded<ConsumerLine>,
}

#[cfg(not(loom))]
mod layout {
    use core::mem::offset_of;

    use super::{ConsumerLine, ProducerLine, Shared};

    static_assertions::assert_eq_size!(Shared, [u8; 384]);
    static_assertions::const_assert_eq!(offset_of!(Shared, producer), 128);
    static_assertions::const_assert_eq!(offset_of!(Shared, consumer), 256);
    static_assertions::const_assert_eq!(offset_of!(ProducerLine, tail), 0);
    static_assertions::const_assert_eq!(offset_of!(ProducerLine, owner), 8);
    static_assertions::const_assert_eq!(offset_of!(ProducerLine, space), 16);
    static_assertions::const_assert_eq!(offset_of!(ConsumerLine, head), 0);
    static_assertions::const_assert_eq!(offset_of!(ConsumerLine, owner), 8);
    static_assertions::const_assert_eq!(offset_of!(ConsumerLine, data), 16);
}

/// Bytes of a cache line: a block of small values is one line.
#[cfg(not(loom))]
const LINE: usize = 64;
/// Values per block when a value is too big to share a line with the stamp (a block is then a
/// stamp line and this many values: the stamp costs an eighth of the bytes, or less).
#[cfg(not(loom))]
const LARGE_PER_BLOCK: usize = 7;

/// Where a small value may start after the 8-byte stamp: at its alignment.
#[cfg(not(loom))]
const fn after_stamp<T>() -> usize {
    if align_of::<T>() > 8 { align_of::<T>() } else { 8 }
}

/// Whether a `T` is small: at least one fits in a line beside the stamp.
#[cfg(not(loom))]
const fn is_small<T>() -> bool {
    after_stamp::<T>() + size_of::<T>() <= LINE
}

/// Where a block's values start: right after the stamp for small values; for large ones, at the
/// next line (so that a 64-byte value sits in one line, as in a bare array).
#[cfg(not(loom))]
const fn values_offset<T>() -> usize {
    if is_small::<T>() {
        after_stamp::<T>()
    } else if align_of::<T>() > LINE {
        align_of::<T>()
    } else {
        LINE
    }
}

/// Values per block (K): for small values as many as fit in a line beside the stamp, for large
/// ones [`LARGE_PER_BLOCK`]. (Two under loom, whose blocks are typed, see `LoomBlock`.)
#[cfg_attr(loom, expect(clippy::extra_unused_type_parameters, reason = "K is fixed under loom"))]
const fn per_block<T>() -> usize {
    #[cfg(loom)]
    return LOOM_PER_BLOCK;
    #[cfg(not(loom))]
    if is_small::<T>() {
        // Not zero: a zero-sized `T` is refused before any block exists (`bytes_for`).
        (LINE - after_stamp::<T>()) / if size_of::<T>() == 0 { 1 } else { size_of::<T>() }
    } else {
        LARGE_PER_BLOCK
    }
}

/// Bytes of a block: the stamp, K values, padded to whole lines (and the values' alignment), so
/// that every block starts a line.
const fn block_size<T>() -> usize {
    #[cfg(loom)]
    return size_of::<LoomBlock<T>>();
    #[cfg(not(loom))]
    {
        let unit = if align_of::<T>() > LINE { align_of::<T>() } else { LINE };
        (values_offset::<T>() + per_block::<T>() * size_of::<T>()).next_multiple_of(unit)
    }
}

/// A slot's value. Outside loom: the raw bytes of a `T`, only ever read and written with volatile
/// copies. Under loom: a checked cell, so that the models catch a slot read racing its write.
#[cfg(not(loom))]
type Cell<T> = T;
#[cfg(loom)]
type Cell<T> = loom::cell::UnsafeCell<T>;

/// Values per block under loom: two, so that the models see runs share a stamp.
#[cfg(loom)]
const LOOM_PER_BLOCK: usize = 2;

/// A block under loom, where atomics and cells are objects of the model.
#[cfg(loom)]
#[repr(C)]
struct LoomBlock<T> {
    stamp: AtomicU64,
    values: [Cell<T>; LOOM_PER_BLOCK],
}

/// Writes `value` into a slot.
///
/// # Safety
///
/// - `slot` points into the slots of a ring this process mapped, inside the range it was given.
#[inline]
unsafe fn write_slot<T: Plain>(slot: *mut Cell<T>, value: T) {
    // SAFETY: the caller guarantees the pointer is in range; volatile, because the peer maps the
    // same bytes (a racing write by a misbehaving peer tears the value, which `Plain` allows).
    #[cfg(not(loom))]
    unsafe {
        slot.write_volatile(value);
    }
    // SAFETY: as above; the cell was constructed in place by `init`.
    #[cfg(loom)]
    unsafe {
        (*slot).with_mut(|slot| slot.write(value));
    }
}

/// Reads the value in a slot.
///
/// # Safety
///
/// - `slot` points into the slots of a ring this process mapped, inside the range it was given.
#[inline]
unsafe fn read_slot<T: Plain>(slot: *const Cell<T>) -> T {
    // SAFETY: in range (the caller), initialised (`init` zero-fills every slot), and every bit
    // pattern is a valid `T` (`Plain`), so even a torn read by a racing peer is a value.
    #[cfg(not(loom))]
    unsafe {
        slot.read_volatile()
    }
    // SAFETY: as above; the cell was constructed in place by `init`.
    #[cfg(loom)]
    unsafe {
        (*slot).with(|slot| slot.read())
    }
}

/// Lines a chunk prefetches at most: enough to have every line of a typical chunk in flight at
/// once, few enough not to evict what the caller is working on.
const CHUNK_PREFETCH_LINES: usize = 16;

/// Asks the CPU to fetch the cache line of `slot` for reading: a hint, no access.
///
/// A read chunk issues it for each of its lines, so that their transfers from the producer's core
/// overlap instead of following one another. (A one-at-a-time `pop` does not prefetch: on a ring
/// that looks empty, the next slot is the one the producer is writing, and fetching it early
/// takes the line away from the producer in the middle of its write.)
#[inline]
fn prefetch_read(slot: *const u8) {
    #[cfg(all(target_arch = "x86_64", not(loom)))]
    // SAFETY: `prefetcht0` never faults and changes nothing the program can observe.
    unsafe {
        core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(slot.cast());
    }
    #[cfg(not(all(target_arch = "x86_64", not(loom))))]
    let _ = slot;
}

/// Asks the CPU to fetch the cache line of `slot` for writing (exclusive): a hint, no access.
///
/// A write chunk issues it for each of its lines: the consumer's core read them on the previous
/// lap, so each first write would wait for the line to be taken back; prefetched together, the
/// transfers overlap instead of queueing behind each other in the store buffer.
#[inline]
fn prefetch_write(slot: *const u8) {
    #[cfg(all(target_arch = "x86_64", not(loom)))]
    // SAFETY: `prefetchw` never faults and changes nothing the program can observe (CPUs
    // without it decode it as a no-op).
    unsafe {
        core::arch::asm!("prefetchw [{0}]", in(reg) slot, options(nostack, preserves_flags, readonly));
    }
    #[cfg(not(all(target_arch = "x86_64", not(loom))))]
    let _ = slot;
}

/// The type-level entry point: the layout size and the creator's [`SpscRing::init`]. The two
/// sides then attach with [`Producer::attach`] and [`Consumer::attach`].
#[derive(Debug)]
pub struct SpscRing<T>(PhantomData<T>);

impl<T: Plain> SpscRing<T> {
    /// Bytes a ring of `capacity` values of `T` needs (128-byte aligned): 384 + the blocks (see
    /// the layout: ⌈`capacity` / K⌉ blocks of K values each).
    ///
    /// `capacity` must be a power of two; `T` must not be zero-sized or aligned to more than 128
    /// bytes.
    ///
    /// ```
    /// use shmkit_ring::spsc::SpscRing;
    /// assert_eq!(SpscRing::<u64>::bytes_for(1024)?, 384 + 64 * 1024_usize.div_ceil(7));
    /// assert_eq!(SpscRing::<[u8; 56]>::bytes_for(1024)?, 384 + 64 * 1024);
    /// // 64-byte values: a stamp line, then 7 lines of values.
    /// assert_eq!(SpscRing::<[u64; 8]>::bytes_for(1024)?, 384 + 512 * 1024_usize.div_ceil(7));
    /// assert!(SpscRing::<u64>::bytes_for(1000).is_err());
    /// # Ok::<(), shmkit_ring::Error>(())
    /// ```
    pub fn bytes_for(capacity: usize) -> Result<usize> {
        let invalid = |what, reason, value: u64| Error::InvalidInput { what, reason, value };
        if size_of::<T>() == 0 {
            return Err(invalid("element size", "not zero", 0));
        }
        if align_of::<T>() > align_of::<Shared>() {
            return Err(invalid("element alignment", "at most 128", align_of::<T>() as u64));
        }
        if !capacity.is_power_of_two() {
            return Err(invalid("capacity", "a non-zero power of two", capacity as u64));
        }
        capacity
            .div_ceil(per_block::<T>())
            .checked_mul(block_size::<T>())
            .and_then(|blocks| blocks.checked_add(size_of::<Shared>()))
            .ok_or_else(|| {
                invalid("capacity", "small enough for the address space", capacity as u64)
            })
    }

    /// Creates a ring of `capacity` values in the `len` bytes at `ptr`: writes the header, zeroes
    /// the positions, owner words, events and slots, then publishes the header (`Release`).
    /// Afterwards any process that maps the same bytes can attach.
    ///
    /// Fails with [`Error::Placement`] if the range is too small or not 128-byte aligned, and
    /// [`Error::InvalidInput`] as [`SpscRing::bytes_for`].
    ///
    /// # Safety
    ///
    /// - `ptr` is valid for reads and writes of `len` bytes while this runs;
    /// - no handle of a ring in those bytes is in use (a re-init under an attached peer makes its
    ///   values wrong, though never unsafe for it);
    /// - the bytes are used only through this crate's shared primitives (or atomically) afterwards.
    pub unsafe fn init(ptr: NonNull<u8>, len: usize, capacity: usize) -> Result<()> {
        let needed = Self::bytes_for(capacity)?;
        header::check_placement(WHAT, ptr.as_ptr().addr(), len, needed, align_of::<Shared>())?;
        let shared = ptr.cast::<Shared>();
        // SAFETY: the range holds `needed` bytes, 128-aligned (checked), valid for writes (the
        // caller).
        unsafe { construct(shared) };
        // SAFETY: as above; every field of `Shared` is an atomic, valid for any bytes.
        let shared = unsafe { shared.as_ref() };
        shared.header.begin(
            &expected::<T>(),
            Layout { capacity: capacity as u64, total_size: needed as u64 },
        );
        for line_word in [&shared.producer.tail, &shared.consumer.head] {
            line_word.store(0, Ordering::Relaxed);
        }
        for word in [
            &shared.producer.owner,
            &shared.producer.reserved,
            &shared.producer.space[0],
            &shared.producer.space[1],
            &shared.consumer.owner,
            &shared.consumer.reserved,
            &shared.consumer.data[0],
            &shared.consumer.data[1],
        ] {
            word.store(0, Ordering::Relaxed);
        }
        // SAFETY: the blocks follow `Shared` within the `needed` bytes checked above.
        let blocks = unsafe { ptr.add(size_of::<Shared>()) };
        // SAFETY: the blocks of `capacity` values fit in the range (checked); nobody uses them.
        unsafe { zero_blocks::<T>(blocks, capacity) };
        shared.header.publish();
        Ok(())
    }
}

/// What an opener of a ring of `T` expects in the header.
fn expected<T>() -> Expected {
    Expected {
        what: WHAT,
        kind: Kind::Spsc,
        version: LAYOUT_VERSION,
        element_size: size_of::<T>() as u64,
    }
}

/// Outside loom the bytes already are valid atomics (any bytes are), so nothing to do: `init`
/// stores every field. Under loom, atomics are objects of the model: built in place here.
///
/// # Safety
///
/// - `shared` is valid for writes of a `Shared`, aligned.
#[cfg_attr(not(loom), allow(clippy::unnecessary_wraps, unused_variables))]
unsafe fn construct(shared: NonNull<Shared>) {
    #[cfg(loom)]
    {
        let line = || ProducerLine {
            tail: AtomicU64::new(0),
            owner: AtomicU32::new(0),
            reserved: AtomicU32::new(0),
            space: [AtomicU32::new(0), AtomicU32::new(0)],
        };
        let consumer = ConsumerLine {
            head: AtomicU64::new(0),
            owner: AtomicU32::new(0),
            reserved: AtomicU32::new(0),
            data: [AtomicU32::new(0), AtomicU32::new(0)],
        };
        // SAFETY: the caller guarantees the pointer; under loom nobody else can see it yet.
        unsafe {
            shared.write(Shared {
                header: crate::construct::header(),
                producer: CachePadded(line()),
                consumer: CachePadded(consumer),
            });
        }
    }
}

/// Zero-fills the blocks of `capacity` values, so that every value is a valid `T` (`Plain`: zero
/// bytes are one) before any is read, and every stamp is 0 (nothing published).
///
/// # Safety
///
/// - `blocks` is valid for writes of the blocks of `capacity` values, aligned for them, and
///   unused by anyone else.
unsafe fn zero_blocks<T: Plain>(blocks: NonNull<u8>, capacity: usize) {
    let count = capacity.div_ceil(per_block::<T>());
    #[cfg(not(loom))]
    // SAFETY: the caller guarantees the range; zero bytes are a valid `T` (`Plain`).
    unsafe {
        blocks.write_bytes(0, count * block_size::<T>());
    }
    #[cfg(loom)]
    for index in 0..count {
        // SAFETY: as above; each block is constructed in place, its values zero bytes (`Plain`).
        unsafe {
            blocks.cast::<LoomBlock<T>>().add(index).write(LoomBlock {
                stamp: AtomicU64::new(0),
                values: core::array::from_fn(|_| loom::cell::UnsafeCell::new(core::mem::zeroed())),
            });
        }
    }
}

/// Value `index` of `block`.
///
/// # Safety
///
/// - `block` is a block of a ring this process mapped, in range, and `index` < K.
#[inline]
unsafe fn value_in<T>(block: *mut u8, index: usize) -> *mut Cell<T> {
    #[cfg(not(loom))]
    // SAFETY: value `index` < K of the block lies inside it (`block_size`).
    unsafe {
        block.add(values_offset::<T>() + index * size_of::<T>()).cast::<T>()
    }
    // SAFETY: under loom the blocks are `LoomBlock`s, constructed by `init`; `index` < K.
    #[cfg(loom)]
    unsafe {
        (&raw mut (*block.cast::<LoomBlock<T>>()).values).cast::<Cell<T>>().add(index)
    }
}

/// The stamp of `block`.
///
/// # Safety
///
/// - `block` is a block of a ring this process mapped, in range, alive for `'a`.
#[inline]
#[cfg_attr(
    not(loom),
    expect(
        clippy::cast_ptr_alignment,
        reason = "blocks start 8-aligned: at offset 384 of a 128-aligned range, sized in \
                  multiples of 64"
    ),
    expect(clippy::extra_unused_type_parameters, reason = "`T` types the block under loom")
)]
unsafe fn stamp_of<'a, T>(block: *mut u8) -> &'a AtomicU64 {
    #[cfg(not(loom))]
    // SAFETY: a block starts with its stamp, 8-aligned, alive for `'a` (the caller); an atomic is
    // valid for any bytes (no reference to the plain values beside it is made).
    unsafe {
        &*block.cast::<AtomicU64>()
    }
    // SAFETY: under loom the blocks are `LoomBlock`s, constructed by `init`.
    #[cfg(loom)]
    unsafe {
        &(*block.cast::<LoomBlock<T>>()).stamp
    }
}

/// Visits the value slots of consecutive positions, a step costing an add and two compares
/// instead of the division of [`Ring::slot`]: the walk of a chunk, and where the consumer's next
/// `pop` reads.
#[derive(Debug)]
struct Cursor<T> {
    /// The current block and value index in it.
    block: *mut u8,
    index: usize,
    /// Values from the current one to the end of the ring (then the walk wraps to the start).
    left: usize,
    /// The first block, and the capacity: where and with how many values a wrap starts over.
    first: *mut u8,
    capacity: usize,
    value: PhantomData<T>,
}

impl<T> Clone for Cursor<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for Cursor<T> {}

impl<T> Cursor<T> {
    /// The stamp of the current block: the one a run starting here is published in.
    #[inline]
    fn stamp(&self) -> &AtomicU64 {
        // SAFETY: the cursor stays on the ring's blocks (`Ring::cursor`, `advance`), which outlive
        // the handle that holds the cursor.
        unsafe { stamp_of::<T>(self.block) }
    }

    /// The current value slot.
    #[inline]
    fn slot(&self) -> *mut Cell<T> {
        // SAFETY: the cursor stays on the ring's blocks with `index` < K (`Ring::cursor`,
        // `advance`).
        unsafe { value_in::<T>(self.block, self.index) }
    }

    /// Moves to the next position's slot.
    #[inline]
    fn advance(&mut self) {
        self.left -= 1;
        self.index += 1;
        // The end of the ring first: when it is also the end of a block, the next block is not
        // one of the ring's.
        if self.left == 0 {
            (self.block, self.index, self.left) = (self.first, 0, self.capacity);
        } else if self.index == per_block::<T>() {
            // SAFETY: values are left before the end of the ring, so the next block is one of its
            // blocks.
            self.block = unsafe { self.block.add(block_size::<T>()) };
            self.index = 0;
        }
        debug_assert!(self.index < per_block::<T>() && self.left <= self.capacity);
    }
}

/// What both handles hold: the shared lines, the slots, and the capacity fixed at attach.
#[derive(Debug)]
struct Ring<'a, T> {
    shared: &'a Shared,
    blocks: NonNull<u8>,
    /// `capacity − 1`: a position's index among the values is `position & mask`.
    mask: u64,
    value: PhantomData<T>,
}

impl<T: Plain> Ring<'_, T> {
    /// Checks the placement and the header; returns the ring and its shared lines.
    ///
    /// # Safety
    ///
    /// - `ptr` is valid for reads and writes of `len` bytes for `'a`;
    /// - the bytes are accessed by others only through this crate's primitives (or atomically).
    unsafe fn open(ptr: NonNull<u8>, len: usize) -> Result<Self> {
        let min = size_of::<Shared>();
        header::check_placement(WHAT, ptr.as_ptr().addr(), len, min, align_of::<Shared>())?;
        // SAFETY: `min` bytes, aligned (checked), valid for `'a` (the caller); all atomics.
        let shared = unsafe { ptr.cast::<Shared>().as_ref() };
        let layout = shared.header.check(&expected::<T>(), len)?;
        let capacity = usize::try_from(layout.capacity).ok().filter(|c| c.is_power_of_two());
        let Some(capacity) = capacity else {
            return Err(corrupted("capacity", layout.capacity, "a non-zero power of two"));
        };
        if !Self::fits(capacity, layout.total_size) {
            return Err(corrupted("capacity", layout.capacity, "slots that fit in the total size"));
        }
        // SAFETY: `Shared` and the blocks of `capacity` values fit in `total_size` ≤ `len`
        // (checked).
        let blocks = unsafe { ptr.add(size_of::<Shared>()) };
        Ok(Self { shared, blocks, mask: capacity as u64 - 1, value: PhantomData })
    }

    /// Whether the layout of `capacity` slots fits in `total_size` bytes (`total_size` was checked
    /// against the mapped length by `Header::check`).
    fn fits(capacity: usize, total_size: u64) -> bool {
        SpscRing::<T>::bytes_for(capacity).is_ok_and(|needed| needed as u64 <= total_size)
    }

    #[inline]
    fn capacity(&self) -> u64 {
        self.mask + 1
    }

    /// The block of `position` and the value's index in it; always inside the blocks (masked).
    #[inline]
    fn locate(&self, position: u64) -> (*mut u8, usize) {
        let index = (position & self.mask) as usize;
        let per = per_block::<T>();
        // SAFETY: `index` < capacity, so block `index / per` is one of the capacity's blocks, all
        // in range (`open`).
        let block = unsafe { self.blocks.as_ptr().add(index / per * block_size::<T>()) };
        (block, index % per)
    }

    /// The value slot of `position`.
    #[inline]
    fn slot(&self, position: u64) -> *mut Cell<T> {
        let (block, index) = self.locate(position);
        // SAFETY: `block` is one of the ring's blocks and `index` < K (`locate`).
        unsafe { value_in::<T>(block, index) }
    }

    /// A cursor at `position`, to visit the slots of the positions from there in order.
    #[inline]
    fn cursor(&self, position: u64) -> Cursor<T> {
        let (block, index) = self.locate(position);
        let left = (self.capacity() - (position & self.mask)) as usize;
        Cursor {
            block,
            index,
            left,
            first: self.blocks.as_ptr(),
            capacity: self.capacity() as usize,
            value: PhantomData,
        }
    }

    /// Positions from `position` to the end of its block (or of the ring, if that comes first):
    /// the step from one block's stamp to the next one's.
    fn to_block_end(&self, position: u64) -> u64 {
        let index = position & self.mask;
        let per = per_block::<T>() as u64;
        (index / per + 1).saturating_mul(per).min(self.capacity()) - index
    }

    /// The stamp of the block of `position`.
    #[inline]
    fn stamp(&self, position: u64) -> &AtomicU64 {
        let (block, _) = self.locate(position);
        // SAFETY: one of the ring's blocks (`locate`), alive as long as `self`.
        unsafe { stamp_of::<T>(block) }
    }

    /// Publishes a run of values written up to `end` (exclusive), whose first value's block has
    /// `stamp`: `tail`, then the stamp (both `Release`). In this order, `tail` is never behind
    /// what the consumer learnt from a stamp, so `tail − head` stays a fill level.
    #[inline]
    fn publish(&self, stamp: &AtomicU64, end: u64) {
        self.shared.producer.tail.store(end, Ordering::Release);
        stamp.store(end, Ordering::Release);
    }

    /// A run end that `stamp` (of the block of `known`, the end of what the consumer knows is
    /// published) gives, if it is believable: above `known` and at most a capacity above `head`.
    #[inline]
    fn run_end(&self, stamp: &AtomicU64, head: u64, known: u64) -> Option<u64> {
        let end = stamp.load(Ordering::Acquire);
        let ahead = end.wrapping_sub(head);
        (ahead > known.wrapping_sub(head) && ahead <= self.capacity()).then_some(end)
    }

    /// [`Ring::run_end`] from the stamp of the block of `known`.
    #[inline]
    fn next_run_end(&self, head: u64, known: u64) -> Option<u64> {
        self.run_end(self.stamp(known), head, known)
    }

    /// Prefetches the lines of `count` slots from `position` (at most [`CHUNK_PREFETCH_LINES`]),
    /// for writing or for reading.
    #[inline]
    fn prefetch_lines(&self, position: u64, count: usize, write: bool) {
        for offset in (0..count).step_by(per_block::<T>()).take(CHUNK_PREFETCH_LINES) {
            let (block, _) = self.locate(position.wrapping_add(offset as u64));
            if write { prefetch_write(block) } else { prefetch_read(block) }
        }
    }

    /// Checks a fill level computed from a position the peer wrote.
    #[inline]
    fn check_fill(&self, tail: u64, head: u64, field: &'static str, value: u64) -> Result<u64> {
        check_fill(self.capacity(), tail, head, field, value)
    }
}

/// Checks a fill level `tail − head` (wrapping) computed from a position the peer wrote (`field`
/// is `value`): at most the capacity.
#[inline]
pub(crate) fn check_fill(
    capacity: u64,
    tail: u64,
    head: u64,
    field: &'static str,
    value: u64,
) -> Result<u64> {
    let fill = tail.wrapping_sub(head);
    if fill > capacity {
        return Err(corrupted(field, value, "within capacity of the other position"));
    }
    Ok(fill)
}

/// The error for a bad value read from shared memory.
#[cold]
#[inline(never)]
fn corrupted(field: &'static str, value: u64, expected: &'static str) -> Error {
    Error::Corrupted { what: WHAT, field, value, expected }
}

#[cfg(all(test, not(loom)))]
mod tests;

#[cfg(all(test, loom))]
mod loom_models;
