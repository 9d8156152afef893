//! [`Consumer`]: the reading side of an SPSC ring, and its zero-copy [`ReadChunk`].

use core::num::NonZeroU32;
use core::ptr::NonNull;

use super::{CONSUMER, Cell, Cursor, Ring, read_slot};
use crate::error::Result;
use crate::plain::Plain;
use crate::primitive::Ordering;
use crate::role;

/// The consumer of an SPSC ring: the only attachment that pops. Releases its role on drop.
///
/// ```
/// # use core::{num::NonZeroU32, ptr::NonNull};
/// # use shmkit_ring::spsc::{Consumer, Producer, SpscRing};
/// # #[repr(C, align(128))] struct Block([u8; 128]);
/// # let len = SpscRing::<u32>::bytes_for(4)?;
/// # let mut memory: Vec<Block> = (0..len.div_ceil(128)).map(|_| Block([0; 128])).collect();
/// # let ptr = NonNull::new(memory.as_mut_ptr().cast::<u8>()).unwrap();
/// # unsafe { SpscRing::<u32>::init(ptr, len, 4)? };
/// # let mut producer = unsafe { Producer::<u32>::attach(ptr, len, NonZeroU32::MIN)? };
/// // SAFETY: the bytes hold a ring and outlive the handle.
/// let mut consumer = unsafe { Consumer::<u32>::attach(ptr, len, NonZeroU32::new(2).unwrap())? };
/// producer.push(5)?;
/// producer.push(6)?;
/// assert_eq!(consumer.peek()?, Some(5));
/// assert_eq!(consumer.pop()?, Some(5));
/// assert_eq!(consumer.len()?, 1);
/// assert_eq!(consumer.pop()?, Some(6));
/// assert_eq!(consumer.pop()?, None);
/// # Ok::<(), shmkit_ring::Error>(())
/// ```
#[derive(Debug)]
pub struct Consumer<'a, T: Plain> {
    ring: Ring<'a, T>,
    /// The next position to read (the head this side last published, or will publish).
    head: u64,
    /// The end of the values this side knows are published (from stamps or the tail).
    cached_tail: u64,
    /// Where `head` is: its slot and block.
    cursor: Cursor<T>,
    owner: NonZeroU32,
}

// SAFETY: as for `Producer`: shared memory the caller promised valid for `'a`, nothing tied to a
// thread.
unsafe impl<T: Plain> Send for Consumer<'_, T> {}

impl<'a, T: Plain> Consumer<'a, T> {
    role::constructors! {
        /// Attaches as the consumer of the ring in the `len` bytes at `ptr`, claiming the role for
        /// `owner` (a process id in practice).
        ///
        /// Fails as [`super::Producer::attach`] does.
        ///
        /// # Safety
        ///
        /// - `ptr` is valid for reads and writes of `len` bytes for `'a` (a mapping that outlives the
        ///   handle);
        /// - those bytes are accessed by anyone else only through this crate's primitives or
        ///   atomically (the peer may be wrong or hostile: that cannot make this handle unsound).
        attach;
        /// Takes over the consumer role from `dead_owner`, for `new_owner`; the new handle resumes at
        /// the last published head (a value the dead consumer read but did not publish as read is
        /// read again).
        ///
        /// Fails as [`super::Producer::take_over`] does.
        ///
        /// # Safety
        ///
        /// As [`Consumer::attach`].
        take_over(dead_owner, new_owner);
        /// Attaches with this process's id as the owner (`std` feature).
        ///
        /// # Safety
        ///
        /// As [`Consumer::attach`].
        attach_current_process;
        /// Attaches with this process's id as the owner, taking the role over if the process
        /// recorded as its holder is gone (`std` feature); see
        /// [`super::Producer::take_over_if_dead`] for what "gone" can and cannot tell.
        ///
        /// # Safety
        ///
        /// As [`Consumer::attach`].
        take_over_if_dead;
    }

    /// Opens the ring and gets the role as `claim` says: the body of the constructors.
    ///
    /// # Safety
    ///
    /// As [`Consumer::attach`].
    unsafe fn open_as(ptr: NonNull<u8>, len: usize, claim: role::Claim) -> Result<Self> {
        // SAFETY: forwarded from the caller.
        let ring = unsafe { Ring::open(ptr, len) }?;
        let owner = claim.apply(&ring.shared.consumer.owner, CONSUMER)?;
        Self::resume(ring, owner)
    }

    /// Reads the published positions for a freshly claimed role; releases it if they are bad.
    fn resume(ring: Ring<'a, T>, owner: NonZeroU32) -> Result<Self> {
        let head = ring.shared.consumer.head.load(Ordering::Acquire);
        let tail = ring.shared.producer.tail.load(Ordering::Acquire);
        if let Err(error) = ring.check_fill(tail, head, "head", head) {
            role::release(&ring.shared.consumer.owner, owner);
            return Err(error);
        }
        let cursor = ring.cursor(head);
        Ok(Self { ring, head, cached_tail: tail, cursor, owner })
    }

    /// Slots the ring has.
    pub fn capacity(&self) -> usize {
        self.ring.capacity() as usize
    }

    /// The owner id this handle holds the role for.
    pub fn owner(&self) -> NonZeroU32 {
        self.owner
    }

    /// Loads the producer's tail (`Acquire`) and checks it; returns the fill level, and caches the
    /// tail if it is past the known end of published values.
    fn refresh(&mut self) -> Result<u64> {
        let tail = self.ring.shared.producer.tail.load(Ordering::Acquire);
        let fill = self.ring.check_fill(tail, self.head, "tail", tail)?;
        if fill > self.cached_tail.wrapping_sub(self.head) {
            self.cached_tail = tail;
        }
        Ok(fill)
    }

    /// Moves the end of the values known to be published to the end of the next run, if the
    /// stamp after it shows one; whether it did.
    #[inline]
    fn extend(&mut self) -> bool {
        let end = self.ring.next_run_end(self.head, self.cached_tail);
        self.cached_tail = end.unwrap_or(self.cached_tail);
        end.is_some()
    }

    /// [`Consumer::extend`] when the known end is `head`: the stamp is the one of the cursor's
    /// block, found without a division.
    #[inline]
    fn extend_here(&mut self) -> bool {
        let end = self.ring.run_end(self.cursor.stamp(), self.head, self.cached_tail);
        self.cached_tail = end.unwrap_or(self.cached_tail);
        end.is_some()
    }

    /// Values known to be published, following the stamps while fewer than `wanted`.
    #[inline]
    fn available_for(&mut self, wanted: u64) -> u64 {
        // At most a capacity of steps: each moves `cached_tail` on, never past `head + capacity`.
        while self.cached_tail.wrapping_sub(self.head) < wanted && self.extend() {}
        self.cached_tail.wrapping_sub(self.head)
    }

    /// Pops the oldest value: `Ok(None)` when the ring is empty. Touches only the slot's block and
    /// the consumer's line: when the values known to be published are used up, it loads the stamp
    /// of the block it reads next (never the producer's line).
    ///
    /// A producer that died between storing `tail` and stamping its last run leaves that run
    /// unseen by `pop`, `peek` and `read_chunk` until a successor takes the role over (which
    /// stamps it), though [`Consumer::len`] counts it; `len`, and the blocking calls that use it,
    /// also make it visible to the next `pop`.
    ///
    /// Never fails today (a stamp out of range reads as "not published"); the `Result` keeps
    /// room for checks of the shared state.
    #[inline]
    pub fn pop(&mut self) -> Result<Option<T>> {
        if self.cached_tail == self.head && !self.extend_here() {
            return Ok(None);
        }
        // SAFETY: the cursor's slot is the one of `head`, below the known published end, so the
        // producer published it and does not write it until this side moves `head` past it.
        let value = unsafe { read_slot(self.cursor.slot()) };
        self.head = self.head.wrapping_add(1);
        self.cursor.advance();
        self.ring.shared.consumer.head.store(self.head, Ordering::Release);
        Ok(Some(value))
    }

    /// The oldest value, left in the ring: `Ok(None)` when empty.
    #[inline]
    pub fn peek(&mut self) -> Result<Option<T>> {
        if self.available_for(1) == 0 {
            return Ok(None);
        }
        // SAFETY: as in `pop`.
        Ok(Some(unsafe { read_slot(self.cursor.slot()) }))
    }

    /// Values in the ring (a fresh load of the producer's tail).
    pub fn len(&mut self) -> Result<usize> {
        Ok(self.refresh()? as usize)
    }

    /// Whether the ring is empty (a fresh load of the producer's tail).
    pub fn is_empty(&mut self) -> Result<bool> {
        Ok(self.len()? == 0)
    }

    /// Free slots (a fresh load of the producer's tail).
    pub fn free(&mut self) -> Result<usize> {
        Ok(self.capacity() - self.len()?)
    }

    /// Up to `max` values to read in place, released together by [`ReadChunk::commit`]: the
    /// chunk's length is `max` or the values there, whichever is smaller (0 when empty). Follows
    /// the stamps of the runs after the known values only while it knows fewer than `max`. See
    /// [`super::Producer::write_chunk`] for an example.
    ///
    /// Never fails today, as [`Consumer::pop`].
    #[inline]
    pub fn read_chunk(&mut self, max: usize) -> Result<ReadChunk<'_, 'a, T>> {
        let available = self.available_for(max as u64);
        let len = (max as u64).min(available) as usize;
        // This chunk's lines and, if published already, the next chunk's.
        self.ring.prefetch_lines(self.head, len.saturating_mul(2).min(available as usize), false);
        Ok(ReadChunk { consumer: self, len })
    }

    /// Wakes a producer that sleeps waiting for space (`std` feature): call it after
    /// non-blocking pops or chunk commits when the producer may use a sleeping wait strategy.
    /// [`Consumer::pop_blocking`] does it by itself.
    #[cfg(all(feature = "std", not(loom)))]
    pub fn notify_producer(&self) {
        self.ring.space_event().notify_all();
    }

    /// The shared state, for the blocking calls.
    #[cfg(all(feature = "std", not(loom)))]
    pub(super) fn ring(&self) -> &Ring<'a, T> {
        &self.ring
    }

    /// The next position to read, for the blocking calls.
    #[cfg(all(feature = "std", not(loom)))]
    pub(super) fn head(&self) -> u64 {
        self.head
    }
}

impl<T: Plain> Drop for Consumer<'_, T> {
    fn drop(&mut self) {
        role::release(&self.ring.shared.consumer.owner, self.owner);
    }
}

/// Published values, read in place and released together: the zero-copy batch read of
/// [`Consumer::read_chunk`].
///
/// The slots live in shared memory, in blocks that start with a stamp, so the chunk hands out no
/// `&[T]`: read with [`ReadChunk::get`], [`ReadChunk::iter`] or [`ReadChunk::copy_to_slice`]. Nothing is released until [`ReadChunk::commit`]; dropping an
/// uncommitted chunk leaves the values in the ring.
#[derive(Debug)]
pub struct ReadChunk<'c, 'a, T: Plain> {
    consumer: &'c mut Consumer<'a, T>,
    len: usize,
}

impl<T: Plain> ReadChunk<'_, '_, T> {
    /// Values in the chunk.
    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the chunk has no value (the ring was empty).
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    #[inline]
    fn slot(&self, index: usize) -> *mut Cell<T> {
        assert!(index < self.len, "index {index} out of a read chunk of {}", self.len);
        self.consumer.ring.slot(self.consumer.head.wrapping_add(index as u64))
    }

    /// Value `index` of the chunk (0 is the oldest).
    ///
    /// # Panics
    ///
    /// If `index` is not less than [`ReadChunk::len`].
    #[inline]
    pub fn get(&self, index: usize) -> T {
        // SAFETY: a published slot of the chunk, masked into the slots.
        unsafe { read_slot(self.slot(index)) }
    }

    /// The chunk's values, oldest first (one step of a cursor per value, where
    /// [`ReadChunk::get`] locates each).
    #[inline]
    pub fn iter(&self) -> impl ExactSizeIterator<Item = T> + '_ {
        let mut cursor = self.consumer.cursor;
        (0..self.len).map(move |_| {
            // SAFETY: a published slot of the chunk (fewer than `len` steps from its start).
            let value = unsafe { read_slot(cursor.slot()) };
            cursor.advance();
            value
        })
    }

    /// Copies the chunk's values into `values`, oldest first.
    ///
    /// # Panics
    ///
    /// If `values` is not exactly as long as the chunk (as `<[T]>::copy_from_slice`).
    #[inline]
    pub fn copy_to_slice(&self, values: &mut [T]) {
        assert_eq!(values.len(), self.len, "copy_to_slice from a read chunk of another length");
        for (value, read) in values.iter_mut().zip(self.iter()) {
            *value = read;
        }
    }

    /// Releases the first `count` values (`Release`): the producer may write over them from now
    /// on.
    ///
    /// # Panics
    ///
    /// If `count` is more than [`ReadChunk::len`].
    #[inline]
    pub fn commit(self, count: usize) {
        assert!(count <= self.len, "commit of {count} values of a read chunk of {}", self.len);
        let consumer = self.consumer;
        consumer.head = consumer.head.wrapping_add(count as u64);
        consumer.cursor = consumer.ring.cursor(consumer.head);
        consumer.ring.shared.consumer.head.store(consumer.head, Ordering::Release);
    }

    /// Releases every value of the chunk.
    #[inline]
    pub fn commit_all(self) {
        let len = self.len;
        self.commit(len);
    }
}
