//! [`Producer`]: the writing side of an SPSC ring, and its zero-copy [`WriteChunk`].

use core::num::NonZeroU32;
use core::ptr::NonNull;

use super::{Cell, PRODUCER, Ring, read_slot, write_slot};
use crate::error::Result;
use crate::plain::Plain;
use crate::primitive::Ordering;
use crate::role;

/// The producer of an SPSC ring: the only attachment that pushes. Releases its role on drop.
///
/// ```
/// # use core::{num::NonZeroU32, ptr::NonNull};
/// # use shmkit_ring::spsc::{Consumer, Producer, SpscRing};
/// # #[repr(C, align(128))] struct Block([u8; 128]);
/// # let len = SpscRing::<u32>::bytes_for(4)?;
/// # let mut memory: Vec<Block> = (0..len.div_ceil(128)).map(|_| Block([0; 128])).collect();
/// # let ptr = NonNull::new(memory.as_mut_ptr().cast::<u8>()).unwrap();
/// # unsafe { SpscRing::<u32>::init(ptr, len, 4)? };
/// let owner = NonZeroU32::new(1).unwrap();
/// // SAFETY: the bytes hold a ring and outlive the handle.
/// let mut producer = unsafe { Producer::<u32>::attach(ptr, len, owner)? };
/// // Only one producer at a time.
/// assert!(unsafe { Producer::<u32>::attach(ptr, len, NonZeroU32::new(2).unwrap()) }.is_err());
///
/// while producer.push(1)? {} // fills the ring: `Ok(false)` when full
/// assert_eq!((producer.len()?, producer.free()?), (4, 0));
/// # Ok::<(), shmkit_ring::Error>(())
/// ```
#[derive(Debug)]
pub struct Producer<'a, T: Plain> {
    ring: Ring<'a, T>,
    /// The next position to write (the tail this side last published, or will publish).
    tail: u64,
    /// The consumer's head as last read (checked): the free space this side may use.
    cached_head: u64,
    owner: NonZeroU32,
}

// SAFETY: the handle refers to shared memory (atomics and `Plain` slots, which hold no
// process-local pointers) that the caller promised valid for `'a`; nothing in it is tied to a
// thread.
unsafe impl<T: Plain> Send for Producer<'_, T> {}

impl<'a, T: Plain> Producer<'a, T> {
    role::constructors! {
        /// Attaches as the producer of the ring in the `len` bytes at `ptr`, claiming the role for
        /// `owner` (a process id in practice).
        ///
        /// Fails with [`crate::Error::RoleTaken`] if another producer holds the role,
        /// [`crate::Error::NotPublished`] before the creator's `init` finished, and
        /// [`crate::Error::Corrupted`] or [`crate::Error::Placement`] if the bytes hold no valid ring
        /// of `T`.
        ///
        /// # Safety
        ///
        /// - `ptr` is valid for reads and writes of `len` bytes for `'a` (a mapping that outlives the
        ///   handle);
        /// - those bytes are accessed by anyone else only through this crate's primitives or
        ///   atomically (the peer may be wrong or hostile: that cannot make this handle unsound).
        attach;
        /// Takes over the producer role from `dead_owner` (a holder that died without detaching),
        /// for `new_owner`; the new handle resumes at the last published tail.
        ///
        /// Fails with [`crate::Error::TakeOver`] if the role is not held by `dead_owner` (released,
        /// or already taken over). Taking over a holder that is alive after all leaves two producers,
        /// which makes the values wrong (never this process unsound): be sure it is dead.
        ///
        /// # Safety
        ///
        /// As [`Producer::attach`].
        take_over(dead_owner, new_owner);
        /// Attaches with this process's id as the owner (`std` feature).
        ///
        /// # Safety
        ///
        /// As [`Producer::attach`].
        attach_current_process;
        /// Attaches with this process's id as the owner, taking the role over if the process
        /// recorded as its holder is gone (`std` feature).
        ///
        /// "Gone" is `kill(pid, 0)` failing with `ESRCH`. Process ids are reused: if the holder died
        /// and the kernel gave its pid to a new process, the holder looks alive and this returns
        /// [`crate::Error::RoleTaken`] (the safe mistake); an owner id that is not a pid of this pid
        /// namespace is judged by whatever process has that number here.
        ///
        /// # Safety
        ///
        /// As [`Producer::attach`].
        take_over_if_dead;
    }

    /// Opens the ring and gets the role as `claim` says: the body of the constructors.
    ///
    /// # Safety
    ///
    /// As [`Producer::attach`].
    unsafe fn open_as(ptr: NonNull<u8>, len: usize, claim: role::Claim) -> Result<Self> {
        // SAFETY: forwarded from the caller.
        let ring = unsafe { Ring::open(ptr, len) }?;
        let owner = claim.apply(&ring.shared.producer.owner, PRODUCER)?;
        Self::resume(ring, owner)
    }

    /// Reads the published positions for a freshly claimed role; releases it if they are bad.
    ///
    /// A producer that died between storing `tail` and stamping its last run left that run
    /// invisible to the consumer; so every block from the consumer's head to `tail` gets the stamp
    /// `tail` (true of each of them: everything below `tail` is published), wherever in that span
    /// the consumer looks next. One store per block, at most a capacity's worth of blocks.
    fn resume(ring: Ring<'a, T>, owner: NonZeroU32) -> Result<Self> {
        let tail = ring.shared.producer.tail.load(Ordering::Acquire);
        let head = ring.shared.consumer.head.load(Ordering::Acquire);
        match ring.check_fill(tail, head, "tail", tail) {
            Ok(fill) => {
                let mut offset = 0;
                while offset < fill {
                    let position = head.wrapping_add(offset);
                    ring.stamp(position).store(tail, Ordering::Release);
                    offset += ring.to_block_end(position);
                }
                Ok(Self { ring, tail, cached_head: head, owner })
            }
            Err(error) => {
                role::release(&ring.shared.producer.owner, owner);
                Err(error)
            }
        }
    }

    /// Slots the ring has.
    pub fn capacity(&self) -> usize {
        self.ring.capacity() as usize
    }

    /// The owner id this handle holds the role for.
    pub fn owner(&self) -> NonZeroU32 {
        self.owner
    }

    /// Loads the consumer's head (`Acquire`), checks it, and caches it; returns the free space.
    #[inline]
    fn refresh(&mut self) -> Result<u64> {
        let head = self.ring.shared.consumer.head.load(Ordering::Acquire);
        let fill = self.ring.check_fill(self.tail, head, "head", head)?;
        self.cached_head = head;
        Ok(self.ring.capacity() - fill)
    }

    /// Free slots by the cached head, refreshed only if fewer than `wanted`.
    #[inline]
    fn free_for(&mut self, wanted: u64) -> Result<u64> {
        let free = self.ring.capacity() - self.tail.wrapping_sub(self.cached_head);
        if free >= wanted { Ok(free) } else { self.refresh() }
    }

    /// Pushes `value`: `Ok(true)` when written and published, `Ok(false)` (nothing written) when
    /// the ring is full. Touches only the slot's block (value and stamp) and the producer's line,
    /// unless the ring looks full by the cached head: then it loads the consumer's head once.
    ///
    /// Fails with [`crate::Error::Corrupted`] if the consumer's head is out of range.
    #[inline]
    pub fn push(&mut self, value: T) -> Result<bool> {
        if self.tail.wrapping_sub(self.cached_head) == self.ring.capacity() && self.refresh()? == 0
        {
            return Ok(false);
        }
        // SAFETY: `slot` is masked into the slots; the slot at `tail` is free (the consumer's
        // checked head is less than a capacity behind), so the consumer does not read it now.
        unsafe { write_slot(self.ring.slot(self.tail), value) };
        let start = self.tail;
        self.tail = start.wrapping_add(1);
        self.ring.publish(self.ring.stamp(start), self.tail);
        Ok(true)
    }

    /// Values in the ring (a fresh load of the consumer's head).
    pub fn len(&mut self) -> Result<usize> {
        Ok(self.capacity() - self.refresh()? as usize)
    }

    /// Whether the ring is empty (a fresh load of the consumer's head).
    pub fn is_empty(&mut self) -> Result<bool> {
        Ok(self.len()? == 0)
    }

    /// Free slots (a fresh load of the consumer's head).
    pub fn free(&mut self) -> Result<usize> {
        Ok(self.refresh()? as usize)
    }

    /// Up to `max` free slots to write in place, published together by [`WriteChunk::commit`]:
    /// the chunk's length is `max` or the free space, whichever is smaller (0 when full). Loads
    /// the consumer's head only if the cached one shows fewer than `max` free slots.
    ///
    /// ```
    /// # use core::{num::NonZeroU32, ptr::NonNull};
    /// # use shmkit_ring::spsc::{Consumer, Producer, SpscRing};
    /// # #[repr(C, align(128))] struct Block([u8; 128]);
    /// # let len = SpscRing::<u64>::bytes_for(8)?;
    /// # let mut memory: Vec<Block> = (0..len.div_ceil(128)).map(|_| Block([0; 128])).collect();
    /// # let ptr = NonNull::new(memory.as_mut_ptr().cast::<u8>()).unwrap();
    /// # unsafe { SpscRing::<u64>::init(ptr, len, 8)? };
    /// # let mut producer = unsafe { Producer::<u64>::attach(ptr, len, NonZeroU32::MIN)? };
    /// # let mut consumer = unsafe { Consumer::<u64>::attach(ptr, len, NonZeroU32::MIN)? };
    /// let mut chunk = producer.write_chunk(3)?;
    /// chunk.copy_from_slice(&[1, 2, 3]);
    /// chunk.commit_all();
    ///
    /// let chunk = consumer.read_chunk(10)?; // fewer are there
    /// let mut values = [0; 3];
    /// chunk.copy_to_slice(&mut values);
    /// chunk.commit_all();
    /// assert_eq!(values, [1, 2, 3]);
    /// # Ok::<(), shmkit_ring::Error>(())
    /// ```
    #[inline]
    pub fn write_chunk(&mut self, max: usize) -> Result<WriteChunk<'_, 'a, T>> {
        let free = self.free_for(max as u64)?;
        let len = (max as u64).min(free) as usize;
        // This chunk's lines and, free space allowing, the next chunk's.
        self.ring.prefetch_lines(self.tail, len.saturating_mul(2).min(free as usize), true);
        Ok(WriteChunk { producer: self, len })
    }

    /// Wakes a consumer that sleeps waiting for data (`std` feature): call it after non-blocking
    /// pushes or chunk commits when the consumer may use a sleeping wait strategy. One barrier and
    /// one load while nobody sleeps; [`Producer::push_blocking`] does it by itself.
    #[cfg(all(feature = "std", not(loom)))]
    pub fn notify_consumer(&self) {
        self.ring.data_event().notify_all();
    }

    /// The shared state, for the blocking calls.
    #[cfg(all(feature = "std", not(loom)))]
    pub(super) fn ring(&self) -> &Ring<'a, T> {
        &self.ring
    }

    /// The next position to write, for the blocking calls.
    #[cfg(all(feature = "std", not(loom)))]
    pub(super) fn tail(&self) -> u64 {
        self.tail
    }
}

impl<T: Plain> Drop for Producer<'_, T> {
    fn drop(&mut self) {
        role::release(&self.ring.shared.producer.owner, self.owner);
    }
}

/// Free slots of the ring, written in place and published together: the zero-copy batch write of
/// [`Producer::write_chunk`].
///
/// The slots live in shared memory, in blocks that start with a stamp, so the chunk hands out no
/// `&mut [T]`: write with [`WriteChunk::set`], [`WriteChunk::fill_with`] or
/// [`WriteChunk::copy_from_slice`]. Nothing is published until [`WriteChunk::commit`], which
/// stamps the block of the chunk's first slot once for the whole chunk; dropping an uncommitted
/// chunk publishes nothing.
#[derive(Debug)]
pub struct WriteChunk<'p, 'a, T: Plain> {
    producer: &'p mut Producer<'a, T>,
    len: usize,
}

impl<T: Plain> WriteChunk<'_, '_, T> {
    /// Slots in the chunk.
    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the chunk has no slot (the ring was full).
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    #[inline]
    fn slot(&self, index: usize) -> *mut Cell<T> {
        assert!(index < self.len, "index {index} out of a write chunk of {}", self.len);
        self.producer.ring.slot(self.producer.tail.wrapping_add(index as u64))
    }

    /// Writes `value` into slot `index` of the chunk.
    ///
    /// # Panics
    ///
    /// If `index` is not less than [`WriteChunk::len`].
    #[inline]
    pub fn set(&mut self, index: usize, value: T) {
        let slot = self.slot(index);
        // SAFETY: a slot of the chunk: free, so the consumer does not read it now.
        unsafe { write_slot(slot, value) };
    }

    /// Reads back slot `index` of the chunk (what this side last wrote there, or an old value).
    ///
    /// # Panics
    ///
    /// If `index` is not less than [`WriteChunk::len`].
    #[inline]
    pub fn get(&self, index: usize) -> T {
        // SAFETY: a slot of the chunk, masked into the slots.
        unsafe { read_slot(self.slot(index)) }
    }

    /// Writes `values` into the chunk's slots, in order.
    ///
    /// # Panics
    ///
    /// If `values` is not exactly as long as the chunk (as `<[T]>::copy_from_slice`).
    #[inline]
    pub fn copy_from_slice(&mut self, values: &[T]) {
        assert_eq!(values.len(), self.len, "copy_from_slice into a write chunk of another length");
        self.fill_with(|index| values[index]);
    }

    /// Writes `value(index)` into every slot of the chunk, in order: the fast way to write a
    /// chunk in place (one step of a cursor per slot, where [`WriteChunk::set`] locates each).
    ///
    /// ```
    /// # use core::{num::NonZeroU32, ptr::NonNull};
    /// # use shmkit_ring::spsc::{Consumer, Producer, SpscRing};
    /// # #[repr(C, align(128))] struct Block([u8; 128]);
    /// # let len = SpscRing::<u64>::bytes_for(64)?;
    /// # let mut memory: Vec<Block> = (0..len.div_ceil(128)).map(|_| Block([0; 128])).collect();
    /// # let ptr = NonNull::new(memory.as_mut_ptr().cast::<u8>()).unwrap();
    /// # unsafe { SpscRing::<u64>::init(ptr, len, 64)? };
    /// # let mut producer = unsafe { Producer::<u64>::attach(ptr, len, NonZeroU32::MIN)? };
    /// # let mut consumer = unsafe { Consumer::<u64>::attach(ptr, len, NonZeroU32::MIN)? };
    /// let mut chunk = producer.write_chunk(16)?;
    /// chunk.fill_with(|index| 100 + index as u64);
    /// chunk.commit_all();
    /// assert_eq!(consumer.read_chunk(16)?.iter().sum::<u64>(), (100..116).sum());
    /// # Ok::<(), shmkit_ring::Error>(())
    /// ```
    #[inline]
    pub fn fill_with(&mut self, mut value: impl FnMut(usize) -> T) {
        let mut cursor = self.producer.ring.cursor(self.producer.tail);
        for index in 0..self.len {
            // SAFETY: a slot of the chunk (index < len): free, so the consumer does not read it.
            unsafe { write_slot(cursor.slot(), value(index)) };
            cursor.advance();
        }
    }

    /// Publishes the first `count` slots (one stamp and `tail`, `Release`): the consumer may read
    /// them from now on.
    ///
    /// # Panics
    ///
    /// If `count` is more than [`WriteChunk::len`].
    #[inline]
    pub fn commit(self, count: usize) {
        assert!(count <= self.len, "commit of {count} slots of a write chunk of {}", self.len);
        if count == 0 {
            return;
        }
        let producer = self.producer;
        let start = producer.tail;
        producer.tail = start.wrapping_add(count as u64);
        producer.ring.publish(producer.ring.stamp(start), producer.tail);
    }

    /// Publishes every slot of the chunk.
    #[inline]
    pub fn commit_all(self) {
        let len = self.len;
        self.commit(len);
    }
}
