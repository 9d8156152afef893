//! The seqlock: one writer process publishes a `T: Plain` value that any number of reader
//! processes read, for read-mostly state (a configuration, a price, a statistics snapshot).
//! Readers never block the writer and write nothing shared; a read that overlaps a write is
//! detected and retried, so a reader never returns a torn value.
//!
//! # Layout
//!
//! ```text
//! offset 0    Header (128 B)        magic, version, kind, capacity 1, element size, total size
//! offset 128  writer line (128 B)   sequence: u64, writer owner: u32
//! offset 256  value                 ⌈size_of::<T>() / 8⌉ 64-bit words
//! ```
//!
//! The value is stored as `AtomicU64` words, read and written with relaxed atomics: a read racing
//! a write is then an ordinary atomic race (a stale or mixed set of words, detected below), never
//! a data race, in either process.
//!
//! # Protocol (Boehm, "Can seqlocks get along with programming language memory models?", 2012)
//!
//! ```text
//! writer                                   reader
//! sequence.store(s + 1, Relaxed)  (odd)    s1 = sequence.load(Acquire)     retry if odd
//! fence(Release)                           words[i].load(Relaxed) ...
//! words[i].store(Relaxed) ...              fence(Acquire)
//! sequence.store(s + 2, Release)  (even)   s2 = sequence.load(Relaxed)     retry if s2 != s1
//! ```
//!
//! If a reader's word load saw any store of a write, the writer's release fence and the reader's
//! acquire fence order that write's odd store before the reader's second load, so `s2` differs
//! from the even `s1`; if it saw none, `s1` (acquired from the previous write's even store)
//! guarantees the words are that write's. `tests/loom.rs` checks it with two-word values.
//!
//! # The double buffer
//!
//! This is the read-mostly "double buffer" of the design: the writer never waits (a write is a
//! sequence bump, the words, a bump), readers never write, and the version a reader gets is a
//! consistent snapshot. What a second copy would add is readers that never retry; with a
//! single-writer seqlock a reader retries only when a write lands during its own read, which for
//! read-mostly state (writes far apart compared with a read of a few words) is rare, and the
//! retry costs one more read. [`Reader::version`] lets a reader skip re-reading an unchanged
//! value. The flip side: a writer that writes back to back, without pause, can starve readers
//! (every read overlaps a write); a seqlock suits state that changes far less often than a read
//! takes.
//!
//! # Roles and validation
//!
//! One writer at a time: the owner word in the writer line, claimed and released as the SPSC
//! ring's roles ([`Writer::attach`], [`Writer::take_over`]). A writer that dies in the middle of
//! a write leaves the sequence odd: readers retry ([`Reader::try_read`] gives up after a bounded
//! number of attempts) until a new writer takes over and writes. An opener checks the header as
//! the ring's do (magic, version, kind, element size, total size within the bytes given, and the
//! value's words within the total size). Nothing else is read from shared memory but the words
//! and the sequence, whose values cannot move an access.
//!
//! ```
//! use core::num::NonZeroU32;
//! use core::ptr::NonNull;
//! use shmkit_ring::seqlock::{Reader, SeqLock, Writer};
//!
//! #[repr(C, align(128))]
//! struct Block([u8; 128]);
//! let len = SeqLock::<[u64; 3]>::bytes_for();
//! let mut memory: Vec<Block> = (0..len.div_ceil(128)).map(|_| Block([0; 128])).collect();
//! let ptr = NonNull::new(memory.as_mut_ptr().cast::<u8>()).unwrap();
//!
//! // SAFETY: `memory` outlives the handles and is used only through this seqlock.
//! unsafe { SeqLock::init(ptr, len, &[0_u64; 3])? };
//! let mut writer = unsafe { Writer::<[u64; 3]>::attach(ptr, len, NonZeroU32::MIN)? };
//! let reader = unsafe { Reader::<[u64; 3]>::open(ptr, len)? };
//! writer.write(&[1, 2, 3]);
//! writer.update(|value| value[0] = 10);
//! assert_eq!(reader.read(), [10, 2, 3]);
//! # Ok::<(), shmkit_ring::Error>(())
//! ```

use core::marker::PhantomData;
use core::mem::MaybeUninit;
use core::num::NonZeroU32;
use core::ptr::NonNull;

use crate::error::{Error, Result};
use crate::header::{self, Expected, Header, Kind, Layout};
use crate::pad::CachePadded;
use crate::plain::Plain;
use crate::primitive::{AtomicU32, AtomicU64, Ordering, fence, spin_hint};
use crate::role::{self, RoleName};

/// The primitive's name in errors.
pub(crate) const WHAT: &str = "seqlock";
/// The layout version of the seqlock; bumped whenever the shared layout changes.
pub const LAYOUT_VERSION: u32 = 1;
const WRITER: RoleName = RoleName { what: WHAT, role: "writer" };
/// Bytes of one stored word.
const WORD: usize = size_of::<u64>();

/// The writer's line.
#[repr(C)]
#[derive(Debug)]
pub(crate) struct WriterLine {
    /// Even: the value is complete; odd: a write is under way. Counts writes twice.
    pub(crate) sequence: AtomicU64,
    /// The writer role's holder, 0 when free.
    pub(crate) owner: AtomicU32,
    /// Zero.
    reserved: AtomicU32,
}

/// Everything before the value's words.
#[repr(C)]
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) header: Header,
    pub(crate) writer: CachePadded<WriterLine>,
}

#[cfg(not(loom))]
mod layout {
    use core::mem::offset_of;

    use super::Shared;

    static_assertions::assert_eq_size!(Shared, [u8; 256]);
    static_assertions::const_assert_eq!(offset_of!(Shared, writer), 128);
}

/// The type-level entry point: the layout size and the creator's [`SeqLock::init`]. Then one
/// [`Writer`] and any number of [`Reader`]s open the same bytes.
#[derive(Debug)]
pub struct SeqLock<T>(PhantomData<T>);

impl<T: Plain> SeqLock<T> {
    /// Words the value takes.
    const WORDS: usize = size_of::<T>().div_ceil(WORD);

    /// Bytes a seqlock of `T` needs (128-byte aligned): 256 + `size_of::<T>()` rounded up to 8.
    ///
    /// ```
    /// use shmkit_ring::seqlock::SeqLock;
    /// assert_eq!(SeqLock::<[u32; 3]>::bytes_for(), 256 + 16);
    /// ```
    pub const fn bytes_for() -> usize {
        size_of::<Shared>() + Self::WORDS * size_of::<AtomicU64>()
    }

    /// Creates a seqlock holding `initial` in the `len` bytes at `ptr` and publishes its header
    /// (`Release`).
    ///
    /// Fails with [`Error::Placement`] if the range is too small or not 128-byte aligned.
    ///
    /// # Safety
    ///
    /// - `ptr` is valid for reads and writes of `len` bytes while this runs;
    /// - no handle of a seqlock in those bytes is in use;
    /// - the bytes are used only through this crate's shared primitives (or atomically) afterwards.
    pub unsafe fn init(ptr: NonNull<u8>, len: usize, initial: &T) -> Result<()> {
        let needed = Self::bytes_for();
        header::check_placement(WHAT, ptr.as_ptr().addr(), len, needed, align_of::<Shared>())?;
        // SAFETY: `needed` bytes, aligned, valid for writes (checked; the caller).
        unsafe { construct::<T>(ptr) };
        // SAFETY: as above; every field is an atomic, valid for any bytes.
        let shared = unsafe { ptr.cast::<Shared>().as_ref() };
        shared.header.begin(&expected::<T>(), Layout { capacity: 1, total_size: needed as u64 });
        shared.writer.sequence.store(0, Ordering::Relaxed);
        shared.writer.owner.store(0, Ordering::Relaxed);
        shared.writer.reserved.store(0, Ordering::Relaxed);
        // SAFETY: the words follow `Shared` within the `needed` bytes checked above.
        let words = unsafe { words::<T>(ptr) };
        store_value(words, initial);
        shared.header.publish();
        Ok(())
    }
}

/// What an opener of a seqlock of `T` expects in the header.
fn expected<T>() -> Expected {
    Expected {
        what: WHAT,
        kind: Kind::SeqLock,
        version: LAYOUT_VERSION,
        element_size: size_of::<T>() as u64,
    }
}

/// Under loom, builds the model's atomics in place (see `crate::construct`); nothing otherwise.
///
/// # Safety
///
/// - `ptr` is valid for writes of [`SeqLock::bytes_for`] bytes, 128-aligned.
#[cfg_attr(not(loom), allow(unused_variables))]
unsafe fn construct<T: Plain>(ptr: NonNull<u8>) {
    #[cfg(loom)]
    // SAFETY: the caller guarantees the range; nobody else sees it yet.
    unsafe {
        ptr.cast::<Shared>().write(Shared {
            header: crate::construct::header(),
            writer: CachePadded(WriterLine {
                sequence: AtomicU64::new(0),
                owner: AtomicU32::new(0),
                reserved: AtomicU32::new(0),
            }),
        });
        let words = ptr.add(size_of::<Shared>()).cast::<AtomicU64>();
        for index in 0..SeqLock::<T>::WORDS {
            words.add(index).write(AtomicU64::new(0));
        }
    }
}

/// The value's words.
///
/// # Safety
///
/// - `ptr` is valid for [`SeqLock::bytes_for`] bytes of `T` for `'a`, 128-aligned, accessed only
///   atomically.
unsafe fn words<'a, T: Plain>(ptr: NonNull<u8>) -> &'a [AtomicU64] {
    // SAFETY: the words follow `Shared` (8-aligned, as `Shared` is 128-aligned and 256 long)
    // within the range the caller guarantees; atomics are valid for any bytes.
    unsafe {
        core::slice::from_raw_parts(
            ptr.add(size_of::<Shared>()).cast::<AtomicU64>().as_ptr(),
            SeqLock::<T>::WORDS,
        )
    }
}

/// Stores `value`'s bytes into `words` (relaxed; the protocol orders them), the last word padded
/// with zeros.
#[inline]
fn store_value<T: Plain>(words: &[AtomicU64], value: &T) {
    let bytes = core::ptr::from_ref(value).cast::<u8>();
    for (index, word) in words.iter().enumerate() {
        let offset = index * WORD;
        let mut buffer = [0_u8; WORD];
        let count = WORD.min(size_of::<T>() - offset);
        // SAFETY: `offset + count ≤ size_of::<T>()`; a `Plain` value has no padding, so every
        // byte is initialised.
        unsafe { core::ptr::copy_nonoverlapping(bytes.add(offset), buffer.as_mut_ptr(), count) };
        word.store(u64::from_ne_bytes(buffer), Ordering::Relaxed);
    }
}

/// Loads the words (relaxed) into a value. Any bytes make a valid `T` (`Plain`).
#[inline]
fn load_value<T: Plain>(words: &[AtomicU64]) -> T {
    let mut value = MaybeUninit::<T>::uninit();
    let bytes = value.as_mut_ptr().cast::<u8>();
    for (index, word) in words.iter().enumerate() {
        let offset = index * WORD;
        let buffer = word.load(Ordering::Relaxed).to_ne_bytes();
        let count = WORD.min(size_of::<T>() - offset);
        // SAFETY: `offset + count ≤ size_of::<T>()`, inside `value`.
        unsafe { core::ptr::copy_nonoverlapping(buffer.as_ptr(), bytes.add(offset), count) };
    }
    // SAFETY: every byte of `value` was written (the words cover `size_of::<T>()`), and every
    // bit pattern is a valid `T` (`Plain`).
    unsafe { value.assume_init() }
}

/// Checks placement and header; returns the shared lines and the words.
///
/// # Safety
///
/// - `ptr` is valid for reads and writes of `len` bytes for `'a`, accessed by others only through
///   this crate's primitives or atomically.
unsafe fn open<'a, T: Plain>(
    ptr: NonNull<u8>,
    len: usize,
) -> Result<(&'a Shared, &'a [AtomicU64])> {
    let min = size_of::<Shared>();
    header::check_placement(WHAT, ptr.as_ptr().addr(), len, min, align_of::<Shared>())?;
    // SAFETY: `min` bytes, aligned (checked), valid for `'a` (the caller); all atomics.
    let shared = unsafe { ptr.cast::<Shared>().as_ref() };
    let layout = shared.header.check(&expected::<T>(), len)?;
    check_layout(layout, size_of::<T>() as u64)?;
    // SAFETY: `bytes_for` ≤ total size ≤ `len` (`check_layout`, `Header::check`).
    Ok((shared, unsafe { words::<T>(ptr) }))
}

/// Checks the capacity and total size of a published header (after [`Header::check`], which
/// checked the total size against the bytes mapped): capacity 1, and room for the words of a
/// value of `element_size` bytes ([`SeqLock::bytes_for`]).
pub(crate) fn check_layout(layout: Layout, element_size: u64) -> Result<()> {
    if layout.capacity != 1 {
        return Err(Error::Corrupted {
            what: WHAT,
            field: "capacity",
            value: layout.capacity,
            expected: "1",
        });
    }
    let needed = element_size
        .checked_next_multiple_of(WORD as u64)
        .and_then(|words| words.checked_add(size_of::<Shared>() as u64));
    if needed.is_none_or(|needed| layout.total_size < needed) {
        return Err(Error::Corrupted {
            what: WHAT,
            field: "total size",
            value: layout.total_size,
            expected: "at least the size of the value's layout",
        });
    }
    Ok(())
}

/// The single writer of a seqlock. Releases its role on drop.
///
/// ```
/// # use core::{num::NonZeroU32, ptr::NonNull};
/// # use shmkit_ring::seqlock::{Reader, SeqLock, Writer};
/// # #[repr(C, align(128))] struct Block([u8; 128]);
/// # let len = SeqLock::<u64>::bytes_for();
/// # let mut memory: Vec<Block> = (0..len.div_ceil(128)).map(|_| Block([0; 128])).collect();
/// # let ptr = NonNull::new(memory.as_mut_ptr().cast::<u8>()).unwrap();
/// # unsafe { SeqLock::init(ptr, len, &0_u64)? };
/// // SAFETY: the bytes hold a seqlock and outlive the handles.
/// let mut writer = unsafe { Writer::<u64>::attach(ptr, len, NonZeroU32::MIN)? };
/// assert!(unsafe { Writer::<u64>::attach(ptr, len, NonZeroU32::MAX) }.is_err());
/// writer.write(&42);
/// assert_eq!(writer.value(), 42);
/// # Ok::<(), shmkit_ring::Error>(())
/// ```
#[derive(Debug)]
pub struct Writer<'a, T: Plain> {
    shared: &'a Shared,
    words: &'a [AtomicU64],
    /// The sequence this writer last stored (or found, if it is odd: a dead writer's half write).
    sequence: u64,
    owner: NonZeroU32,
    _value: PhantomData<T>,
}

// SAFETY: only atomics in shared memory the caller promised valid for `'a`.
unsafe impl<T: Plain> Send for Writer<'_, T> {}

impl<'a, T: Plain> Writer<'a, T> {
    role::constructors! {
        /// Attaches as the writer, claiming the role for `owner` (a process id in practice).
        ///
        /// Fails with [`Error::RoleTaken`] if another writer holds it, [`Error::NotPublished`],
        /// [`Error::Corrupted`] or [`Error::Placement`] as the ring's attach.
        ///
        /// # Safety
        ///
        /// - `ptr` is valid for reads and writes of `len` bytes for `'a`;
        /// - those bytes are accessed by anyone else only through this crate's primitives or
        ///   atomically.
        attach;
        /// Takes over the writer role from `dead_owner`, for `new_owner`. If the dead writer stopped
        /// in the middle of a write, readers wait until this handle's first write.
        ///
        /// Fails with [`Error::TakeOver`] if the role is not held by `dead_owner`.
        ///
        /// # Safety
        ///
        /// As [`Writer::attach`].
        take_over(dead_owner, new_owner);
        /// Attaches with this process's id as the owner (`std` feature).
        ///
        /// # Safety
        ///
        /// As [`Writer::attach`].
        attach_current_process;
        /// Attaches with this process's id as the owner, taking the role over if the process recorded
        /// as its holder is gone (`std` feature); see
        /// [`crate::spsc::Producer::take_over_if_dead`] for the limits of that test (pid reuse).
        ///
        /// # Safety
        ///
        /// As [`Writer::attach`].
        take_over_if_dead;
    }

    /// Opens the seqlock and gets the role as `claim` says: the body of the constructors.
    ///
    /// # Safety
    ///
    /// As [`Writer::attach`].
    unsafe fn open_as(ptr: NonNull<u8>, len: usize, claim: role::Claim) -> Result<Self> {
        // SAFETY: forwarded from the caller.
        let (shared, words) = unsafe { open::<T>(ptr, len) }?;
        let owner = claim.apply(&shared.writer.owner, WRITER)?;
        Ok(Self::resume(shared, words, owner))
    }

    fn resume(shared: &'a Shared, words: &'a [AtomicU64], owner: NonZeroU32) -> Self {
        let sequence = shared.writer.sequence.load(Ordering::Acquire);
        Self { shared, words, sequence, owner, _value: PhantomData }
    }

    /// Publishes `value`. Never waits: readers that overlap the write retry.
    #[inline]
    pub fn write(&mut self, value: &T) {
        // Odd while writing; a dead writer's odd sequence is reused as is.
        let odd = self.sequence | 1;
        let sequence = &self.shared.writer.sequence;
        sequence.store(odd, Ordering::Relaxed);
        // Orders the odd store before the words: a reader that sees any new word sees it.
        fence(Ordering::Release);
        store_value(self.words, value);
        self.sequence = odd.wrapping_add(1);
        sequence.store(self.sequence, Ordering::Release);
    }

    /// The current value as this writer last wrote it (its own words: no retry needed).
    #[inline]
    pub fn value(&self) -> T {
        load_value(self.words)
    }

    /// Changes the value in place: `change` gets a copy of the current value, the result is
    /// published with [`Writer::write`].
    #[inline]
    pub fn update(&mut self, change: impl FnOnce(&mut T)) {
        let mut value = self.value();
        change(&mut value);
        self.write(&value);
    }

    /// The owner id this handle holds the role for.
    pub fn owner(&self) -> NonZeroU32 {
        self.owner
    }
}

impl<T: Plain> Drop for Writer<'_, T> {
    fn drop(&mut self) {
        role::release(&self.shared.writer.owner, self.owner);
    }
}

/// A reader of a seqlock: any number, in any process; reading writes nothing shared.
///
/// ```
/// # use core::{num::NonZeroU32, ptr::NonNull};
/// # use shmkit_ring::seqlock::{Reader, SeqLock, Writer};
/// # #[repr(C, align(128))] struct Block([u8; 128]);
/// # let len = SeqLock::<[u32; 2]>::bytes_for();
/// # let mut memory: Vec<Block> = (0..len.div_ceil(128)).map(|_| Block([0; 128])).collect();
/// # let ptr = NonNull::new(memory.as_mut_ptr().cast::<u8>()).unwrap();
/// # unsafe { SeqLock::init(ptr, len, &[0_u32; 2])? };
/// # let mut writer = unsafe { Writer::<[u32; 2]>::attach(ptr, len, NonZeroU32::MIN)? };
/// // SAFETY: the bytes hold a seqlock and outlive the handle.
/// let reader = unsafe { Reader::<[u32; 2]>::open(ptr, len)? };
/// let seen = reader.version();
/// writer.write(&[7, 7]);
/// assert_ne!(reader.version(), seen); // changed since
/// assert_eq!(reader.try_read(), Some([7, 7]));
/// # Ok::<(), shmkit_ring::Error>(())
/// ```
#[derive(Debug)]
pub struct Reader<'a, T: Plain> {
    shared: &'a Shared,
    words: &'a [AtomicU64],
    _value: PhantomData<T>,
}

// SAFETY: only atomics in shared memory the caller promised valid for `'a`.
unsafe impl<T: Plain> Send for Reader<'_, T> {}
// SAFETY: every method takes `&self` and only loads atomics.
unsafe impl<T: Plain> Sync for Reader<'_, T> {}

impl<T: Plain> Reader<'_, T> {
    /// Attempts [`Reader::try_read`] makes before giving up.
    pub const TRY_ATTEMPTS: u32 = 64;

    /// Opens the seqlock in the `len` bytes at `ptr` for reading.
    ///
    /// Fails with [`Error::NotPublished`], [`Error::Corrupted`] or [`Error::Placement`].
    ///
    /// # Safety
    ///
    /// - `ptr` is valid for reads of `len` bytes for `'a`;
    /// - those bytes are accessed by anyone else only through this crate's primitives or
    ///   atomically.
    pub unsafe fn open(ptr: NonNull<u8>, len: usize) -> Result<Self> {
        // SAFETY: forwarded from the caller.
        let (shared, words) = unsafe { open::<T>(ptr, len) }?;
        Ok(Self { shared, words, _value: PhantomData })
    }

    /// One attempt: the value, or `None` if a write overlapped (or is under way).
    #[inline]
    pub fn read_once(&self) -> Option<T> {
        let sequence = &self.shared.writer.sequence;
        let before = sequence.load(Ordering::Acquire);
        if before & 1 == 1 {
            return None;
        }
        let value = load_value(self.words);
        // Orders the word loads before the second sequence load (see the module docs).
        fence(Ordering::Acquire);
        (sequence.load(Ordering::Relaxed) == before).then_some(value)
    }

    /// The value, retrying (with the CPU's spin hint) while writes overlap. Spins for as long as
    /// a write is under way: forever if the writer died in the middle of one and nobody takes
    /// over; use [`Reader::try_read`] where that matters.
    #[inline]
    pub fn read(&self) -> T {
        loop {
            if let Some(value) = self.read_once() {
                return value;
            }
            spin_hint();
        }
    }

    /// The value, or `None` after [`Reader::TRY_ATTEMPTS`] attempts that all overlapped a write.
    #[inline]
    pub fn try_read(&self) -> Option<T> {
        for _ in 0..Self::TRY_ATTEMPTS {
            if let Some(value) = self.read_once() {
                return Some(value);
            }
            spin_hint();
        }
        None
    }

    /// The sequence number: even when the value is complete, odd during a write, and changed by
    /// every write. A reader that saw an even version and sees it again has nothing new to read.
    #[inline]
    pub fn version(&self) -> u64 {
        self.shared.writer.sequence.load(Ordering::Acquire)
    }
}
