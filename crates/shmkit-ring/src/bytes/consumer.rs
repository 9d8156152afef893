//! The consumer side of the byte ring: [`ByteConsumer`] and its in-place [`ReadGrant`].

use core::fmt;
use core::num::NonZeroU32;
use core::ptr::NonNull;

use super::{CONSUMER, Ring, TAG_PADDING, TAG_RECORD, WORD, record_size};
use crate::error::{Error, Result};
use crate::primitive::Ordering;
use crate::role;

/// The consumer of a byte ring: reads records by copy ([`ByteConsumer::read`]), in place
/// ([`ByteConsumer::peek`] then [`ReadGrant::release`]), or drops them ([`ByteConsumer::skip`]).
///
/// One consumer at a time holds the role (an owner word in shared memory, released on drop); see
/// [`super::ByteRing`] for an example and the [module docs](super) for the protocol.
pub struct ByteConsumer<'a> {
    pub(super) ring: Ring<'a>,
    owner: NonZeroU32,
    /// Bytes consumed: this side's own copy of `head`, the only one it trusts.
    head: u64,
    /// The last `tail` loaded (and checked).
    tail_cache: u64,
}

// SAFETY: the handle owns the consumer role; the shared memory it points to is accessed only
// through atomics and the ring's protocol, from whichever thread holds the handle.
unsafe impl Send for ByteConsumer<'_> {}

/// The next record, found and checked by [`ByteConsumer::next_record`].
#[derive(Clone, Copy, Debug)]
struct Record {
    /// Offset of its payload in the data area.
    payload: u64,
    /// Payload bytes.
    length: usize,
    /// Bytes `head` advances past it (padding before it, header word, padded payload).
    advance: u64,
}

impl<'a> ByteConsumer<'a> {
    role::constructors! {
        /// Attaches to the byte ring at `ptr` as its consumer, recording `owner` (a process id, in
        /// practice) in the ring's consumer owner word.
        ///
        /// Fails with [`Error::NotPublished`] before the ring is published, [`Error::Corrupted`] if
        /// the header or the positions are wrong, [`Error::RoleTaken`] if another consumer is
        /// attached.
        ///
        /// # Safety
        ///
        /// - `ptr..ptr + len` is valid for reads and writes for `'a` (stays mapped while the handle
        ///   lives), and `len` comes from the OS (the size of the mapping), not from the ring.
        /// - The bytes are accessed only through this ring's handles (or as atomics), in any process.
        attach;
        /// Takes over the consumer role from `dead` (a holder that died without detaching), then
        /// attaches as [`ByteConsumer::attach`] does. Fails with [`Error::TakeOver`] if the role is
        /// not held by `dead`. Reading resumes after the last record the dead consumer released.
        ///
        /// # Safety
        ///
        /// As for [`ByteConsumer::attach`]; and `dead` really is gone, or at least no longer reads.
        take_over(dead, owner);
        /// Attaches with this process's id as the owner (`std` feature).
        ///
        /// # Safety
        ///
        /// As [`ByteConsumer::attach`].
        attach_current_process;
        /// Attaches with this process's id as the owner, taking the role over if the process
        /// recorded as its holder is gone (`std` feature; `kill(pid, 0)` fails with `ESRCH`). A
        /// reused pid makes a dead holder look alive: then this fails with
        /// [`Error::RoleTaken`], the safe mistake.
        ///
        /// # Safety
        ///
        /// As [`ByteConsumer::attach`].
        take_over_if_dead;
    }

    /// Opens the ring and gets the role as `claim` says: the body of the constructors.
    ///
    /// # Safety
    ///
    /// As [`ByteConsumer::attach`].
    unsafe fn open_as(ptr: NonNull<u8>, len: usize, claim: role::Claim) -> Result<Self> {
        // SAFETY: the caller's contract is `Ring::open`'s.
        let ring = unsafe { Ring::open(ptr, len) }?;
        let owner = claim.apply(&ring.control.consumer.owner, CONSUMER)?;
        Self::with_role(ring, owner)
    }

    /// Builds the handle once the role is held: reads and checks the positions.
    fn with_role(ring: Ring<'a>, owner: NonZeroU32) -> Result<Self> {
        match ring.positions() {
            Ok((head, tail)) => Ok(Self { ring, owner, head, tail_cache: tail }),
            Err(error) => {
                role::release(&ring.control.consumer.owner, owner);
                Err(error)
            }
        }
    }

    /// The ring's capacity in bytes.
    pub fn capacity(&self) -> usize {
        self.ring.capacity as usize
    }

    /// The longest record the ring takes.
    pub fn max_record(&self) -> usize {
        self.ring.max_record as usize
    }

    /// Bytes in the ring (records with their header words and padding, not yet consumed):
    /// `tail - head`, with `tail` loaded now.
    pub fn len(&self) -> Result<usize> {
        Ok((self.load_tail()? - self.head) as usize)
    }

    /// Whether the ring is empty (`head == tail`).
    pub fn is_empty(&self) -> Result<bool> {
        Ok(self.len()? == 0)
    }

    /// Free bytes: `capacity - len`.
    pub fn avail(&self) -> Result<usize> {
        Ok(self.capacity() - self.len()?)
    }

    /// Copies the next record into `buffer` and consumes it: `Ok(Some(length))`, or `Ok(None)`
    /// when the ring is empty. Fails with [`Error::InvalidInput`] (the record's length as the
    /// value; nothing consumed) if `buffer` is shorter than the record, [`Error::Corrupted`] if
    /// the producer's position or the record is.
    ///
    /// Never waits and never notifies a sleeping producer (see the pairing rule in the
    /// [module docs](super)).
    #[inline]
    pub fn read(&mut self, buffer: &mut [u8]) -> Result<Option<usize>> {
        let Some(record) = self.next_record()? else { return Ok(None) };
        let Some(target) = buffer.get_mut(..record.length) else {
            return Err(buffer_too_short(record.length));
        };
        // SAFETY: `next_record` checked that the record lies in the data area and is published.
        unsafe { self.ring.data.read(record.payload, target) };
        self.head += record.advance;
        self.ring.control.consumer.head.store(self.head, Ordering::Release);
        Ok(Some(record.length))
    }

    /// Consumes the next record without reading it: `Ok(Some(length))`, or `Ok(None)` when the
    /// ring is empty. Errors as for [`ByteConsumer::read`].
    pub fn skip(&mut self) -> Result<Option<usize>> {
        let Some(grant) = self.peek()? else { return Ok(None) };
        let length = grant.len();
        grant.release();
        Ok(Some(length))
    }

    /// The next record, in place, without consuming it: read it through the grant, then
    /// [`ReadGrant::release`] it (or drop the grant to leave it for the next call). `Ok(None)`
    /// when the ring is empty; [`Error::Corrupted`] if the producer's position or the record is.
    #[inline]
    pub fn peek(&mut self) -> Result<Option<ReadGrant<'_>>> {
        let Some(record) = self.next_record()? else { return Ok(None) };
        Ok(Some(self.grant(record)))
    }

    /// The grant of a checked record.
    fn grant(&mut self, record: Record) -> ReadGrant<'_> {
        ReadGrant {
            ring: self.ring,
            head: &mut self.head,
            record,
            #[cfg(feature = "std")]
            notify: false,
        }
    }

    /// Whether a record is published (loads `tail` when the cached one says empty).
    #[inline]
    pub(super) fn has_record(&mut self) -> Result<bool> {
        if self.head != self.tail_cache {
            return Ok(true);
        }
        self.tail_cache = self.load_tail()?;
        Ok(self.head != self.tail_cache)
    }

    /// Loads `tail` (`Acquire`: the producer's writes of the records happen before this side
    /// reads them) and checks it against this side's own head.
    fn load_tail(&self) -> Result<u64> {
        let tail = self.ring.control.producer.tail.load(Ordering::Acquire);
        self.ring.check_positions(self.head, tail)?;
        Ok(tail)
    }

    /// Finds and checks the record at `head`: every word read here comes from the peer.
    #[inline]
    fn next_record(&mut self) -> Result<Option<Record>> {
        if !self.has_record()? {
            return Ok(None);
        }
        let capacity = self.ring.capacity;
        let published = self.tail_cache - self.head;
        let mut offset = self.head & (capacity - 1);
        let mut padding = 0;
        let mut word = self.ring.data.read_word(offset);
        if (word >> 32) as u32 == TAG_PADDING {
            let to_end = capacity - offset;
            if word & u64::from(u32::MAX) != to_end - WORD {
                return Err(Ring::corrupted("padding length", word, "the rest of the data area"));
            }
            if published < to_end + WORD {
                return Err(Ring::corrupted(
                    "padding",
                    published,
                    "a padding marker followed by a published record",
                ));
            }
            padding = to_end;
            offset = 0;
            word = self.ring.data.read_word(0);
        }
        if (word >> 32) as u32 != TAG_RECORD {
            return Err(Ring::corrupted("record header", word, "a record or padding tag"));
        }
        let length = word & u64::from(u32::MAX);
        if length > self.ring.max_record {
            return Err(Ring::corrupted("record length", length, "at most capacity / 2 - 8"));
        }
        let size = record_size(length);
        if padding + size > published || offset + size > capacity {
            return Err(Ring::corrupted(
                "record length",
                length,
                "within the published bytes, before the end of the data area",
            ));
        }
        Ok(Some(Record {
            payload: offset + WORD,
            length: length as usize,
            advance: padding + size,
        }))
    }

    /// The owner id this handle recorded in the ring.
    pub fn owner(&self) -> NonZeroU32 {
        self.owner
    }

    /// Peeks with the grant flagged to notify the producer on release (for `peek_blocking`).
    #[cfg(feature = "std")]
    pub(super) fn peek_notifying(&mut self) -> Result<Option<ReadGrant<'_>>> {
        let Some(record) = self.next_record()? else { return Ok(None) };
        let mut grant = self.grant(record);
        grant.notify = true;
        Ok(Some(grant))
    }
}

/// The error of a read buffer shorter than the record (out of line: the hot path only branches).
#[cold]
pub(super) fn buffer_too_short(length: usize) -> Error {
    Error::InvalidInput {
        what: "byte ring read buffer",
        reason: "at least as long as the next record",
        value: length as u64,
    }
}

impl Drop for ByteConsumer<'_> {
    fn drop(&mut self) {
        role::release(&self.ring.control.consumer.owner, self.owner);
    }
}

impl fmt::Debug for ByteConsumer<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ByteConsumer")
            .field("capacity", &self.ring.capacity)
            .field("head", &self.head)
            .field("owner", &self.owner)
            .finish_non_exhaustive()
    }
}

/// One record, in place, from [`ByteConsumer::peek`]: read it, then [`ReadGrant::release`] it.
/// Dropped without a release, the record stays for the next read.
///
/// No `&[u8]` over the record is handed out safely: the bytes are shared memory that a
/// misbehaving producer could write while they are read. [`ReadGrant::copy_to`] copies them out;
/// [`ReadGrant::as_ptr`] and the `unsafe` [`ReadGrant::as_slice`] read them in place.
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
/// producer.append(b"in place")?;
/// let record = consumer.peek()?.expect("a record");
/// // SAFETY: the producer is a shmkit producer, which never writes a record before its release.
/// assert_eq!(unsafe { record.as_slice() }, b"in place");
/// record.release();
/// assert_eq!(consumer.peek()?.map(|record| record.len()), None);
/// # Ok::<(), shmkit_ring::Error>(())
/// ```
pub struct ReadGrant<'g> {
    ring: Ring<'g>,
    head: &'g mut u64,
    record: Record,
    /// Whether `release` notifies the producer's event (a grant of `peek_blocking`).
    #[cfg(feature = "std")]
    notify: bool,
}

impl ReadGrant<'_> {
    /// The record's length in bytes.
    pub fn len(&self) -> usize {
        self.record.length
    }

    /// Whether the record is empty.
    pub fn is_empty(&self) -> bool {
        self.record.length == 0
    }

    /// The record's first byte: [`ReadGrant::len`] contiguous bytes, readable until the grant is
    /// released or dropped. Read them with raw-pointer copies, not through a reference unless
    /// the contract of [`ReadGrant::as_slice`] holds.
    ///
    /// Not under loom, whose data area is not plain bytes.
    #[cfg(not(loom))]
    pub fn as_ptr(&self) -> *const u8 {
        // SAFETY: `next_record` checked `payload + length <= capacity`.
        unsafe { self.ring.data.ptr(self.record.payload) }
    }

    /// The record as a slice, without a copy.
    ///
    /// # Safety
    ///
    /// - Nothing writes the record's bytes while the slice lives. A shmkit producer never does
    ///   (it writes only free space, and the record is not free before its release); this is a
    ///   promise that the process on the other side is one, and not a peer that writes at
    ///   random.
    #[cfg(not(loom))]
    pub unsafe fn as_slice(&self) -> &[u8] {
        // SAFETY: in bounds (checked by `next_record`); nothing writes them (the caller).
        unsafe { core::slice::from_raw_parts(self.as_ptr(), self.record.length) }
    }

    /// Copies the record into `target[..len]`.
    ///
    /// # Panics
    ///
    /// If `target` is shorter than the record.
    #[inline]
    pub fn copy_to(&self, target: &mut [u8]) {
        let target = &mut target[..self.record.length];
        // SAFETY: in bounds (checked by `next_record`), and published to this side.
        unsafe { self.ring.data.read(self.record.payload, target) };
    }

    /// Consumes the record: stores `head` past it (`Release`: the reads of it happen before the
    /// producer reuses its bytes).
    #[inline]
    pub fn release(self) {
        *self.head += self.record.advance;
        self.ring.control.consumer.head.store(*self.head, Ordering::Release);
        #[cfg(feature = "std")]
        if self.notify {
            self.ring.space_event().notify_all();
        }
    }
}

impl fmt::Debug for ReadGrant<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReadGrant")
            .field("len", &self.record.length)
            .field("offset", &self.record.payload)
            .finish_non_exhaustive()
    }
}
