//! The producer side of the byte ring: [`ByteProducer`] and its in-place [`WriteGrant`].

use core::fmt;
use core::num::NonZeroU32;
use core::ptr::NonNull;

use super::{PRODUCER, Ring, TAG_PADDING, TAG_RECORD, WORD, header_word, record_size};
use crate::error::{Error, Result};
use crate::primitive::Ordering;
use crate::role;

/// The producer of a byte ring: appends records, by copy ([`ByteProducer::append`]) or in place
/// ([`ByteProducer::reserve`] then [`WriteGrant::commit`]).
///
/// One producer at a time holds the role (an owner word in shared memory, released on drop); see
/// [`ByteRing`](super::ByteRing) for an example and the [module docs](super) for the protocol.
pub struct ByteProducer<'a> {
    pub(super) ring: Ring<'a>,
    owner: NonZeroU32,
    /// Bytes appended: this side's own copy of `tail`, the only one it trusts.
    pub(super) tail: u64,
    /// The last `head` loaded (and checked).
    head_cache: u64,
}

// SAFETY: the handle owns the producer role; the shared memory it points to is accessed only
// through atomics and the ring's protocol, from whichever thread holds the handle.
unsafe impl Send for ByteProducer<'_> {}

/// Where a record of a given length goes, decided by [`ByteProducer::plan`].
#[derive(Clone, Copy, Debug)]
pub(super) struct Plan {
    /// Bytes of padding before it (0, or the rest of the area).
    padding: u64,
    /// Bytes the record takes (header word and padded payload).
    size: u64,
}

impl Plan {
    /// Bytes the producer needs free for it.
    pub(super) fn needed(self) -> u64 {
        self.padding + self.size
    }
}

impl<'a> ByteProducer<'a> {
    role::constructors! {
        /// Attaches to the byte ring at `ptr` as its producer, recording `owner` (a process id, in
        /// practice) in the ring's producer owner word.
        ///
        /// Fails with [`Error::NotPublished`] before the ring is published, [`Error::Corrupted`] if
        /// the header or the positions are wrong, [`Error::RoleTaken`] if another producer is
        /// attached.
        ///
        /// # Safety
        ///
        /// - `ptr..ptr + len` is valid for reads and writes for `'a` (stays mapped while the handle
        ///   lives), and `len` comes from the OS (the size of the mapping), not from the ring.
        /// - The bytes are accessed only through this ring's handles (or as atomics), in any process.
        attach;
        /// Takes over the producer role from `dead` (a holder that died without detaching), then
        /// attaches as [`ByteProducer::attach`] does. Fails with [`Error::TakeOver`] if the role is
        /// not held by `dead`.
        ///
        /// A record the dead producer was writing is lost (it was not published); everything it
        /// published stays.
        ///
        /// # Safety
        ///
        /// As for [`ByteProducer::attach`]; and `dead` really is gone, or at least no longer appends:
        /// two producers at once corrupt the ring (never this process's memory, but the records).
        take_over(dead, owner);
        /// Attaches with this process's id as the owner (`std` feature).
        ///
        /// # Safety
        ///
        /// As [`ByteProducer::attach`].
        attach_current_process;
        /// Attaches with this process's id as the owner, taking the role over if the process
        /// recorded as its holder is gone (`std` feature; `kill(pid, 0)` fails with `ESRCH`). A
        /// reused pid makes a dead holder look alive: then this fails with
        /// [`Error::RoleTaken`], the safe mistake.
        ///
        /// # Safety
        ///
        /// As [`ByteProducer::attach`].
        take_over_if_dead;
    }

    /// Opens the ring and gets the role as `claim` says: the body of the constructors.
    ///
    /// # Safety
    ///
    /// As [`ByteProducer::attach`].
    unsafe fn open_as(ptr: NonNull<u8>, len: usize, claim: role::Claim) -> Result<Self> {
        // SAFETY: the caller's contract is `Ring::open`'s.
        let ring = unsafe { Ring::open(ptr, len) }?;
        let owner = claim.apply(&ring.control.producer.owner, PRODUCER)?;
        Self::with_role(ring, owner)
    }

    /// Builds the handle once the role is held: reads and checks the positions.
    fn with_role(ring: Ring<'a>, owner: NonZeroU32) -> Result<Self> {
        match ring.positions() {
            Ok((head, tail)) => Ok(Self { ring, owner, tail, head_cache: head }),
            Err(error) => {
                role::release(&ring.control.producer.owner, owner);
                Err(error)
            }
        }
    }

    /// The ring's capacity in bytes.
    pub fn capacity(&self) -> usize {
        self.ring.capacity as usize
    }

    /// The longest record this ring takes ([`ByteRing::max_record`](super::ByteRing::max_record) of its capacity).
    pub fn max_record(&self) -> usize {
        self.ring.max_record as usize
    }

    /// Bytes in the ring (records with their header words and padding, not yet consumed):
    /// `tail - head`, with `head` loaded now.
    pub fn len(&self) -> Result<usize> {
        let head = self.load_head()?;
        Ok((self.tail - head) as usize)
    }

    /// Whether the ring is empty (`head == tail`): the consumer has read everything.
    pub fn is_empty(&self) -> Result<bool> {
        Ok(self.len()? == 0)
    }

    /// Free bytes: `capacity - len`. A record of `n` bytes needs
    /// [`ByteRing::record_size`](super::ByteRing::record_size)`(n)` of them, plus the rest of the
    /// area when it would cross the end.
    pub fn avail(&self) -> Result<usize> {
        Ok(self.capacity() - self.len()?)
    }

    /// Appends `record` (copied) and publishes it; `Ok(false)` when there is not enough free
    /// space now (nothing was written: retry later). Fails with [`Error::InvalidInput`] if the
    /// record is longer than [`ByteProducer::max_record`], [`Error::Corrupted`] if the
    /// consumer's position is.
    ///
    /// Never waits and never notifies a sleeping consumer (see the pairing rule in the
    /// [module docs](super)). [`ByteProducer::batch`] publishes several records at once.
    #[inline]
    pub fn append(&mut self, record: &[u8]) -> Result<bool> {
        if !self.write_record(record)? {
            return Ok(false);
        }
        self.publish_tail();
        Ok(true)
    }

    /// Starts a batch: records appended through it are written at once, and published together
    /// by one store of `tail` when the batch ends ([`AppendBatch::publish`], or its drop). The
    /// consumer sees all of them or none: a message made of several records (a header and a
    /// body) never shows up half written. It also saves a store of `tail`, and the cache-line
    /// transfer to a consumer polling it, per record.
    ///
    /// ```
    /// # use std::num::NonZeroU32;
    /// # use std::ptr::NonNull;
    /// # use shmkit_ring::CachePadded;
    /// # use shmkit_ring::bytes::{ByteConsumer, ByteProducer, ByteRing};
    /// # let len = ByteRing::bytes_for(1024)?;
    /// # let mut memory: Vec<CachePadded<[u8; 128]>> =
    /// #     (0..len.div_ceil(128)).map(|_| CachePadded([0; 128])).collect();
    /// # let ptr = NonNull::new(memory.as_mut_ptr().cast::<u8>()).unwrap();
    /// # let owner = NonZeroU32::new(1).unwrap();
    /// # // SAFETY: `memory` outlives the ring and is used only through it.
    /// # let (mut producer, mut consumer) = unsafe {
    /// #     ByteRing::init(ptr, len, 1024)?;
    /// #     (ByteProducer::attach(ptr, len, owner)?, ByteConsumer::attach(ptr, len, owner)?)
    /// # };
    /// let mut batch = producer.batch();
    /// for record in [&b"one"[..], b"two", b"three"] {
    ///     assert!(batch.append(record)?);
    /// }
    /// assert_eq!(consumer.skip()?, None, "not published yet");
    /// batch.publish();
    /// assert_eq!(consumer.skip()?, Some(3));
    /// # Ok::<(), shmkit_ring::Error>(())
    /// ```
    pub fn batch(&mut self) -> AppendBatch<'_, 'a> {
        AppendBatch { producer: self, appended: 0 }
    }

    /// Writes `record` and advances this side's tail, without publishing it; `Ok(false)` when
    /// there is no room.
    #[inline]
    fn write_record(&mut self, record: &[u8]) -> Result<bool> {
        let plan = self.plan(record.len())?;
        if !self.has_room(plan.needed())? {
            return Ok(false);
        }
        let offset = (self.tail + plan.padding) & (self.ring.capacity - 1);
        // SAFETY: the record (header word and payload) fits before the end of the area (`plan`),
        // in the producer's free space (`has_room`): the consumer reads none of it before the
        // tail store that publishes it.
        unsafe { self.ring.data.write(offset + WORD, record) };
        write_headers(self.ring, &mut self.tail, plan.padding, record.len());
        Ok(true)
    }

    /// Stores `tail` (`Release`: the records' bytes before the position that publishes them).
    #[inline]
    fn publish_tail(&self) {
        self.ring.control.producer.tail.store(self.tail, Ordering::Release);
    }

    /// Reserves room for a record of up to `length` bytes, to be written in place and published
    /// with [`WriteGrant::commit`]; `Ok(None)` when there is not enough free space now. Errors as
    /// for [`ByteProducer::append`].
    ///
    /// The grant's bytes are one contiguous range of the ring.
    #[inline]
    pub fn reserve(&mut self, length: usize) -> Result<Option<WriteGrant<'_>>> {
        let plan = self.plan(length)?;
        if !self.has_room(plan.needed())? {
            return Ok(None);
        }
        Ok(Some(self.grant(plan, length)))
    }

    /// Where a record of `length` bytes goes from the current tail.
    #[inline]
    pub(super) fn plan(&self, length: usize) -> Result<Plan> {
        if length as u64 > self.ring.max_record {
            return Err(too_long(length));
        }
        let size = record_size(length as u64);
        let to_end = self.ring.capacity - (self.tail & (self.ring.capacity - 1));
        Ok(Plan { padding: if size <= to_end { 0 } else { to_end }, size })
    }

    /// Whether `needed` bytes are free, loading `head` only when the cached one says no.
    #[inline]
    pub(super) fn has_room(&mut self, needed: u64) -> Result<bool> {
        if self.tail - self.head_cache + needed <= self.ring.capacity {
            return Ok(true);
        }
        self.head_cache = self.load_head()?;
        Ok(self.tail - self.head_cache + needed <= self.ring.capacity)
    }

    /// Loads `head` (`Acquire`: the consumer's reads of the bytes it frees happen before this
    /// side overwrites them) and checks it against this side's own tail.
    fn load_head(&self) -> Result<u64> {
        let head = self.ring.control.consumer.head.load(Ordering::Acquire);
        self.ring.check_positions(head, self.tail)?;
        Ok(head)
    }

    /// The grant for `plan`, which `has_room` accepted.
    pub(super) fn grant(&mut self, plan: Plan, length: usize) -> WriteGrant<'_> {
        WriteGrant {
            ring: self.ring,
            tail: &mut self.tail,
            padding: plan.padding,
            length,
            #[cfg(feature = "std")]
            notify: false,
        }
    }

    /// The owner id this handle recorded in the ring.
    pub fn owner(&self) -> NonZeroU32 {
        self.owner
    }
}

impl Drop for ByteProducer<'_> {
    fn drop(&mut self) {
        role::release(&self.ring.control.producer.owner, self.owner);
    }
}

impl fmt::Debug for ByteProducer<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ByteProducer")
            .field("capacity", &self.ring.capacity)
            .field("tail", &self.tail)
            .field("owner", &self.owner)
            .finish_non_exhaustive()
    }
}

/// Room for one record, reserved by [`ByteProducer::reserve`]: write the payload in place, then
/// [`WriteGrant::commit`] it. Dropped without a commit, nothing is published.
///
/// ```
/// # use std::num::NonZeroU32;
/// # use std::ptr::NonNull;
/// # use shmkit_ring::CachePadded;
/// # use shmkit_ring::bytes::{ByteConsumer, ByteProducer, ByteRing};
/// # let len = ByteRing::bytes_for(1024)?;
/// # let mut memory: Vec<CachePadded<[u8; 128]>> =
/// #     (0..len.div_ceil(128)).map(|_| CachePadded([0; 128])).collect();
/// # let ptr = NonNull::new(memory.as_mut_ptr().cast::<u8>()).unwrap();
/// # let owner = NonZeroU32::new(1).unwrap();
/// # // SAFETY: `memory` outlives the ring and is used only through it.
/// # let (mut producer, mut consumer) = unsafe {
/// #     ByteRing::init(ptr, len, 1024)?;
/// #     (ByteProducer::attach(ptr, len, owner)?, ByteConsumer::attach(ptr, len, owner)?)
/// # };
/// let mut grant = producer.reserve(100)?.expect("an empty ring has room");
/// grant.copy_from_slice(0, b"header:");
/// grant.copy_from_slice(7, b"body");
/// grant.commit(11); // a shorter record than reserved is fine
///
/// let mut buffer = [0; 100];
/// assert_eq!(consumer.read(&mut buffer)?, Some(11));
/// assert_eq!(&buffer[..11], b"header:body");
/// # Ok::<(), shmkit_ring::Error>(())
/// ```
pub struct WriteGrant<'g> {
    ring: Ring<'g>,
    tail: &'g mut u64,
    padding: u64,
    length: usize,
    /// Whether `commit` notifies the consumer's event (a grant of `reserve_blocking`).
    #[cfg(feature = "std")]
    pub(super) notify: bool,
}

impl WriteGrant<'_> {
    /// Bytes reserved: the longest record [`WriteGrant::commit`] can publish.
    pub fn len(&self) -> usize {
        self.length
    }

    /// Whether the grant is for an empty record.
    pub fn is_empty(&self) -> bool {
        self.length == 0
    }

    /// Where the record's header word goes.
    fn record_offset(&self) -> u64 {
        (*self.tail + self.padding) & (self.ring.capacity - 1)
    }

    /// The first of the grant's [`WriteGrant::len`] bytes, for writing the payload in place
    /// (with `ptr::copy_nonoverlapping`, an encoder, a `read(2)`...). The bytes are writable and
    /// contiguous; their initial content is unspecified. Valid until the grant is committed or
    /// dropped.
    ///
    /// Not under loom, whose data area is not plain bytes; use
    /// [`WriteGrant::copy_from_slice`] there.
    #[cfg(not(loom))]
    pub fn as_mut_ptr(&mut self) -> *mut u8 {
        // SAFETY: the record (header word and payload) fits before the end of the area (`plan`),
        // so `record_offset + 8 <= capacity`.
        unsafe { self.ring.data.ptr(self.record_offset() + WORD) }
    }

    /// Copies `source` into the grant at `offset`.
    ///
    /// # Panics
    ///
    /// If `offset + source.len()` is more than [`WriteGrant::len`].
    pub fn copy_from_slice(&mut self, offset: usize, source: &[u8]) {
        assert!(
            offset.checked_add(source.len()).is_some_and(|end| end <= self.length),
            "copy of {} bytes at {offset} out of a grant of {}",
            source.len(),
            self.length
        );
        if source.is_empty() {
            return;
        }
        // SAFETY: inside the grant's bytes (checked above), which fit before the end of the area
        // (`plan`) and are the producer's free space: the consumer reads none of them before the
        // commit publishes them.
        unsafe { self.ring.data.write(self.record_offset() + WORD + offset as u64, source) };
    }

    /// Publishes the first `length` bytes of the grant as one record: writes the padding marker
    /// (if the record wraps) and the record's header word, then stores `tail` (`Release`).
    ///
    /// # Panics
    ///
    /// If `length` is more than [`WriteGrant::len`].
    #[inline]
    pub fn commit(self, length: usize) {
        assert!(length <= self.length, "commit of {length} bytes from a grant of {}", self.length);
        write_headers(self.ring, self.tail, self.padding, length);
        // Release: the record's bytes before the position that publishes them.
        self.ring.control.producer.tail.store(*self.tail, Ordering::Release);
        #[cfg(feature = "std")]
        if self.notify {
            self.ring.data_event().notify_all();
        }
    }
}

/// Writes the headers of a record of `length` bytes whose payload is written, `padding` bytes
/// after `tail` (the padding marker if the record wraps, then the record's header word), and
/// advances `tail` past it. Nothing is published until the caller stores `tail`.
#[inline]
fn write_headers(ring: Ring<'_>, tail: &mut u64, padding: u64, length: usize) {
    let data = ring.data;
    if padding != 0 {
        // The padding covers the rest of the area, header word included.
        data.write_word(*tail, header_word(TAG_PADDING, (padding - WORD) as u32));
    }
    data.write_word(*tail + padding, header_word(TAG_RECORD, length as u32));
    *tail += padding + record_size(length as u64);
}

/// The error of a record longer than the ring takes (out of line: the hot path only branches).
#[cold]
fn too_long(length: usize) -> Error {
    Error::InvalidInput {
        what: "byte ring record length",
        reason: "at most capacity / 2 - 8 bytes",
        value: length as u64,
    }
}

impl fmt::Debug for WriteGrant<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WriteGrant")
            .field("len", &self.length)
            .field("offset", &self.record_offset())
            .finish_non_exhaustive()
    }
}

/// Records appended together and published by one store of `tail`, from
/// [`ByteProducer::batch`]. The records are written as they are appended; the consumer sees
/// them, all at once, when the batch is published (by [`AppendBatch::publish`] or the drop).
pub struct AppendBatch<'g, 'a> {
    producer: &'g mut ByteProducer<'a>,
    appended: usize,
}

impl AppendBatch<'_, '_> {
    /// Appends `record` (copied) to the batch; `Ok(false)` when there is not enough free space
    /// now (publish the batch, so that the consumer can free some). Errors as for
    /// [`ByteProducer::append`].
    #[inline]
    pub fn append(&mut self, record: &[u8]) -> Result<bool> {
        let appended = self.producer.write_record(record)?;
        self.appended += usize::from(appended);
        Ok(appended)
    }

    /// Records appended to the batch so far.
    pub fn len(&self) -> usize {
        self.appended
    }

    /// Whether nothing was appended to the batch.
    pub fn is_empty(&self) -> bool {
        self.appended == 0
    }

    /// Publishes every record of the batch (what dropping it does too).
    pub fn publish(self) {}
}

impl Drop for AppendBatch<'_, '_> {
    fn drop(&mut self) {
        if self.appended != 0 {
            self.producer.publish_tail();
        }
    }
}

impl fmt::Debug for AppendBatch<'_, '_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AppendBatch").field("appended", &self.appended).finish_non_exhaustive()
    }
}
