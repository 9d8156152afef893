//! The two sides of a segment's byte ring: [`RingProducer`] appends records, [`RingConsumer`]
//! reads them. Each keeps a handle of the segment, so the mapping outlives it.
//!
//! The ring is `shmkit-ring`'s byte ring placed in the segment's ring area: records of 0 to
//! [`RingProducer::max_record`] bytes, each contiguous, with head and tail in the ring's own
//! control lines, every position and length checked on use (a peer that writes garbage there
//! gets [`Error::Ring`] with a corrupted-ring error, never memory outside the ring).

use std::fmt;
use std::time::Duration;

use shmkit_ring::bytes::{ByteConsumer, ByteProducer};
use shmkit_sync::WaitStrategy;

use crate::error::{Error, Result};
use crate::segment::Segment;

/// The producer side of a segment's ring: appends records.
///
/// ```
/// use shmkit_segment::{Implementation, Segment, SpinFutex};
/// use std::time::Duration;
///
/// let segment = Segment::create(16 * 1024, None, Implementation::Memfd)?;
/// let mut producer = segment.ring_producer()?;
/// let mut consumer = segment.ring_consumer()?;
/// producer.append_blocking(b"one", &SpinFutex::default(), Some(Duration::from_secs(1)))?;
/// assert!(producer.append(b"two")?);
/// assert_eq!(producer.len()?, 32); // two records of 8 + 8 bytes
/// let mut buffer = [0; 8];
/// let length = consumer.read_blocking(&mut buffer, &SpinFutex::default(), None)?;
/// assert_eq!(&buffer[..length], b"one");
/// assert_eq!(consumer.skip()?, Some(3));
/// assert_eq!(consumer.read(&mut buffer)?, None);
/// # Ok::<(), shmkit_segment::Error>(())
/// ```
pub struct RingProducer {
    // Field order is drop order: the ring side goes before the segment handle that keeps its
    // memory mapped.
    producer: ByteProducer<'static>,
    segment: Segment,
}

impl RingProducer {
    pub(crate) fn new(segment: Segment) -> Result<Self> {
        let (ptr, len) = segment.ring_bytes();
        // SAFETY: the ring area lies in the mapping (checked against the OS size) and is used only
        // as the ring; `segment`, owned here and dropped after the producer, keeps it mapped, and
        // the `'static` never escapes (methods return owned values or borrows of `self`).
        let producer = unsafe { ByteProducer::take_over_if_dead(ptr, len) }
            .map_err(|source| Error::Ring { target: segment.label().to_owned(), source })?;
        Ok(Self { producer, segment })
    }

    fn error(&self) -> impl FnOnce(shmkit_ring::Error) -> Error + '_ {
        |source| Error::Ring { target: self.segment.label().to_owned(), source }
    }

    /// Appends `record`; `Ok(false)` when the ring has no room for it now (nothing written).
    /// Never waits, and wakes no sleeping consumer: a consumer that may sleep needs
    /// [`RingProducer::notify_consumer`] after a batch, or use [`RingProducer::append_blocking`].
    pub fn append(&mut self, record: &[u8]) -> Result<bool> {
        let result = self.producer.append(record);
        result.map_err(self.error())
    }

    /// Appends `record`, waiting with `strategy` while the ring is full (at most `timeout`;
    /// `None` waits forever), then wakes the consumer if it sleeps.
    pub fn append_blocking(
        &mut self,
        record: &[u8],
        strategy: &impl WaitStrategy,
        timeout: Option<Duration>,
    ) -> Result<()> {
        let result = self.producer.append_blocking(record, strategy, timeout);
        result.map_err(self.error())
    }

    /// Free bytes in the ring (a record of `n` bytes takes 8 + `n` rounded up to 8, more at the
    /// wrap).
    pub fn avail(&self) -> Result<usize> {
        self.producer.avail().map_err(self.error())
    }

    /// Bytes in the ring not yet consumed.
    pub fn len(&self) -> Result<usize> {
        self.producer.len().map_err(self.error())
    }

    /// Whether the consumer has read everything.
    pub fn is_empty(&self) -> Result<bool> {
        self.producer.is_empty().map_err(self.error())
    }

    /// The ring's capacity in bytes.
    pub fn capacity(&self) -> usize {
        self.producer.capacity()
    }

    /// The longest record the ring takes (half the capacity, less 8).
    pub fn max_record(&self) -> usize {
        self.producer.max_record()
    }

    /// Wakes the consumer if it sleeps on the ring.
    pub fn notify_consumer(&self) {
        self.producer.notify_consumer();
    }

    /// The segment.
    pub fn segment(&self) -> &Segment {
        &self.segment
    }
}

impl fmt::Debug for RingProducer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RingProducer")
            .field("segment", &self.segment.label())
            .field("producer", &self.producer)
            .finish()
    }
}

/// The consumer side of a segment's ring: reads records (see [`RingProducer`] for an example).
pub struct RingConsumer {
    // Field order is drop order, as in `RingProducer`.
    consumer: ByteConsumer<'static>,
    segment: Segment,
}

impl RingConsumer {
    pub(crate) fn new(segment: Segment) -> Result<Self> {
        let (ptr, len) = segment.ring_bytes();
        // SAFETY: as in `RingProducer::new`: the ring area of the mapping `segment` keeps alive,
        // dropped after the consumer; the `'static` never escapes this struct.
        let consumer = unsafe { ByteConsumer::take_over_if_dead(ptr, len) }
            .map_err(|source| Error::Ring { target: segment.label().to_owned(), source })?;
        Ok(Self { consumer, segment })
    }

    fn error(&self) -> impl FnOnce(shmkit_ring::Error) -> Error + '_ {
        |source| Error::Ring { target: self.segment.label().to_owned(), source }
    }

    /// Copies the next record into `buffer` and consumes it: `Ok(Some(length))`, or `Ok(None)`
    /// when the ring is empty. A buffer shorter than the record is an error (nothing consumed).
    /// Never waits, and wakes no sleeping producer (see [`RingConsumer::notify_producer`]).
    pub fn read(&mut self, buffer: &mut [u8]) -> Result<Option<usize>> {
        let result = self.consumer.read(buffer);
        result.map_err(self.error())
    }

    /// Reads the next record, waiting with `strategy` while the ring is empty (at most
    /// `timeout`; `None` waits forever), then wakes the producer if it sleeps.
    pub fn read_blocking(
        &mut self,
        buffer: &mut [u8],
        strategy: &impl WaitStrategy,
        timeout: Option<Duration>,
    ) -> Result<usize> {
        let result = self.consumer.read_blocking(buffer, strategy, timeout);
        result.map_err(self.error())
    }

    /// Consumes the next record without reading it: `Ok(Some(length))`, or `Ok(None)` when the
    /// ring is empty.
    pub fn skip(&mut self) -> Result<Option<usize>> {
        let result = self.consumer.skip();
        result.map_err(self.error())
    }

    /// Free bytes in the ring.
    pub fn avail(&self) -> Result<usize> {
        self.consumer.avail().map_err(self.error())
    }

    /// Bytes in the ring not yet consumed.
    pub fn len(&self) -> Result<usize> {
        self.consumer.len().map_err(self.error())
    }

    /// Whether the ring is empty.
    pub fn is_empty(&self) -> Result<bool> {
        self.consumer.is_empty().map_err(self.error())
    }

    /// The ring's capacity in bytes.
    pub fn capacity(&self) -> usize {
        self.consumer.capacity()
    }

    /// Wakes the producer if it sleeps on the ring.
    pub fn notify_producer(&self) {
        self.consumer.notify_producer();
    }

    /// The segment.
    pub fn segment(&self) -> &Segment {
        &self.segment
    }
}

impl fmt::Debug for RingConsumer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RingConsumer")
            .field("segment", &self.segment.label())
            .field("consumer", &self.consumer)
            .finish()
    }
}
