//! [`Segment`]: creation (the creator's side of the handshake), opening (the opener's side), the
//! common data area, the lock, and reference counting within a process.

use std::fmt;
use std::ops::Range;
use std::os::fd::{AsFd, OwnedFd};
use std::ptr::NonNull;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use shmkit_name::Name;
use shmkit_os::Mapping;
use shmkit_ring::bytes::ByteRing;

use crate::backing::{Backing, Implementation, unique_name};
use crate::descriptor::Descriptor;
use crate::error::{Error, Result};
use crate::layout::{
    HEADER_SIZE, Header, LAYOUT_VERSION, LOCK_FILE, LOCK_SEMAPHORE, Layout, MAGIC, STATE_EMPTY,
    STATE_INITIALISING, STATE_PUBLISHED,
};
use crate::lock::{self, LocalLock, SegmentGuard};
use crate::peer::PeerCredentials;
use crate::process;
use crate::ring::{RingConsumer, RingProducer};

/// How long an opener waits for the creator to publish the header, unless told otherwise.
pub const DEFAULT_OPEN_TIMEOUT: Duration = Duration::from_secs(5);

/// How many fresh names creation tries before giving up (a name is taken only by a collision of
/// pid, counter and 32 random bits, or of a System V key).
const NAME_ATTEMPTS: usize = 16;

/// Options for creating a segment: size, peer, implementation, ring capacity.
///
/// ```
/// use shmkit_segment::{Implementation, SegmentOptions};
///
/// let segment = SegmentOptions::new(64 * 1024)
///     .implementation(Implementation::Memfd)
///     .ring_capacity(16 * 1024)
///     .create()?;
/// assert_eq!(segment.ring_capacity(), 16 * 1024);
/// assert_eq!(segment.size(), 64 * 1024);
/// # Ok::<(), shmkit_segment::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[must_use]
pub struct SegmentOptions {
    size: usize,
    peer: Option<PeerCredentials>,
    implementation: Implementation,
    ring_capacity: Option<usize>,
}

impl SegmentOptions {
    /// A segment of `size` bytes (rounded up to whole pages), for a peer of this process's user,
    /// of the automatic implementation, with the default ring (the largest power of two that
    /// leaves at least as much room for common data).
    pub const fn new(size: usize) -> Self {
        Self { size, peer: None, implementation: Implementation::Auto, ring_capacity: None }
    }

    /// The peer the segment is for: it is created owned by the peer's user and open only to
    /// it and the creator, set before the header is published. Get the credentials from the
    /// peer's socket with [`PeerCredentials::of_socket`].
    pub const fn peer(mut self, peer: PeerCredentials) -> Self {
        self.peer = Some(peer);
        self
    }

    /// How the segment is made.
    pub const fn implementation(mut self, implementation: Implementation) -> Self {
        self.implementation = implementation;
        self
    }

    /// The ring's capacity in bytes: a power of two from 16 bytes, which must fit in the segment
    /// beside the 256-byte header and the ring's 512 bytes of control lines.
    pub const fn ring_capacity(mut self, bytes: usize) -> Self {
        self.ring_capacity = Some(bytes);
        self
    }

    /// Creates the segment; this process is its creator (master), and removes it when its last
    /// handle drops.
    ///
    /// The handshake: the memory is made with mode 0600 (owner only), given to the peer's user
    /// if there is one, the header is filled in (creator pid and start time first, so a creator
    /// that dies half-way leaves a segment [`stale`](crate::stale) recognises), the ring is
    /// placed, and only then is the header published with a release store. A failure at any
    /// step removes what was made.
    pub fn create(&self) -> Result<Segment> {
        let implementation = self.implementation.resolve(self.peer.as_ref());
        let total = whole_pages(self.size)?;
        let (layout, capacity) = Layout::plan(total, self.ring_capacity)?;
        let mut made = None;
        for _ in 0..NAME_ATTEMPTS {
            if let Some(backing) = Backing::create(implementation, unique_name()?, total)? {
                made = Some(backing);
                break;
            }
        }
        let (backing, mapping) = made.ok_or_else(|| {
            Error::invalid("segment name", "every fresh name tried was taken: try again")
        })?;
        let label = backing.label();
        // From here on, dropping `inner` (on any error) removes the segment.
        let inner =
            Inner { mapping, backing, layout, master: true, label, local: LocalLock::default() };
        if inner.mapping.len() as u64 != total {
            return Err(Error::SizeMismatch {
                target: inner.label.clone(),
                asked: self.size as u64,
                rounded: total,
                os: inner.mapping.len() as u64,
            });
        }
        inner.initialise(capacity)?;
        if let Some(peer) = &self.peer {
            inner.backing.give_to(peer, &inner.label)?;
        }
        // Pairs with the opener's acquire load in `wait_published`: an opener that sees the
        // state published sees every field and the ring.
        inner.header().state.store(STATE_PUBLISHED, Ordering::Release);
        Ok(Segment { inner: Arc::new(inner) })
    }
}

/// Options for opening a segment a peer created: how long to wait for its publication.
///
/// ```
/// use std::time::Duration;
/// use shmkit_segment::{OpenOptions, Segment};
///
/// let segment = Segment::create(4096, None, shmkit_segment::Implementation::Posix)?;
/// let opened = OpenOptions::new().timeout(Duration::from_secs(1)).decode(&segment.encode(), 4096)?;
/// assert_eq!(opened.name(), segment.name());
/// # Ok::<(), shmkit_segment::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[must_use]
pub struct OpenOptions {
    timeout: Duration,
}

impl Default for OpenOptions {
    fn default() -> Self {
        Self::new()
    }
}

impl OpenOptions {
    /// Waits up to [`DEFAULT_OPEN_TIMEOUT`] for the creator to publish the segment.
    pub const fn new() -> Self {
        Self { timeout: DEFAULT_OPEN_TIMEOUT }
    }

    /// How long to wait for the creator to publish the segment's header (and, for System V, its
    /// semaphore).
    pub const fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Opens the segment an encoded descriptor names ([`Segment::encode`]); `size` is the size
    /// that was asked for, and the segment must have exactly that many bytes (rounded up to
    /// whole pages) by the OS's account. A memfd segment needs its descriptor too:
    /// [`OpenOptions::decode_fd`], or [`OpenOptions::receive`] from a socket.
    ///
    /// The opener waits for the published state, refuses a wrong magic, layout version or
    /// implementation, and checks every offset of the header against the size the OS reports.
    pub fn decode(&self, encoded: &[u8], size: usize) -> Result<Segment> {
        self.open(Descriptor::decode(encoded)?, None, size)
    }

    /// As [`OpenOptions::decode`], with the memfd's file descriptor (received by other means).
    /// The memfd must be sealed against shrinking and growing.
    pub fn decode_fd(&self, encoded: &[u8], fd: OwnedFd, size: usize) -> Result<Segment> {
        self.open(Descriptor::decode(encoded)?, Some(fd), size)
    }

    /// Receives a descriptor (and, for a memfd, the descriptor's file, by `SCM_RIGHTS`) from a
    /// connected Unix socket, sent by [`Segment::send`], and opens the segment as
    /// [`OpenOptions::decode`] does. Blocks until the whole descriptor has arrived (give the
    /// socket a read timeout to bound that).
    pub fn receive(&self, socket: impl AsFd, size: usize) -> Result<Segment> {
        let (bytes, fd) = crate::passing::receive(socket.as_fd())?;
        self.open(Descriptor::decode(&bytes)?, fd, size)
    }

    fn open(&self, descriptor: Descriptor, fd: Option<OwnedFd>, size: usize) -> Result<Segment> {
        let deadline = Instant::now().checked_add(self.timeout);
        let name = descriptor.name;
        if descriptor.layout_version != LAYOUT_VERSION {
            return Err(Error::LayoutVersion {
                target: format!("segment {name}"),
                found: descriptor.layout_version,
                expected: LAYOUT_VERSION,
            });
        }
        let rounded = whole_pages(size)?;
        let (backing, os_size) = match descriptor.implementation {
            Implementation::Auto | Implementation::Posix => Backing::open_posix(name)?,
            Implementation::SysV => {
                let id = descriptor.sysv_id.ok_or_else(|| Error::BadDescriptor {
                    reason: "a System V descriptor without a shmid".to_owned(),
                })?;
                Backing::open_sysv(name, id, self.timeout)?
            }
            Implementation::Memfd => {
                let fd = fd.ok_or_else(|| Error::BadDescriptor {
                    reason: format!(
                        "memfd segment {name} arrived without its file descriptor: receive it \
                         with OpenOptions::receive (SCM_RIGHTS) or pass it to decode_fd"
                    ),
                })?;
                Backing::open_memfd(name, fd)?
            }
        };
        let label = backing.label();
        if os_size != rounded {
            return Err(Error::SizeMismatch {
                target: label,
                asked: size as u64,
                rounded,
                os: os_size,
            });
        }
        if descriptor.size != os_size {
            return Err(Error::BadDescriptor {
                reason: format!(
                    "it says {} bytes, the OS reports {os_size} for {label}",
                    descriptor.size
                ),
            });
        }
        let mapping = backing.map(&label)?;
        if mapping.len() as u64 != os_size {
            return Err(Error::SizeMismatch {
                target: label,
                asked: size as u64,
                rounded,
                os: mapping.len() as u64,
            });
        }
        let header = header_of(&mapping, &label)?;
        wait_published(header, deadline, self.timeout, &label)?;
        check_identity(header, &descriptor, &label)?;
        let layout = Layout::load(header, os_size, &label)?;
        check_lock(header, &backing, &label)?;
        let inner =
            Inner { mapping, backing, layout, master: false, label, local: LocalLock::default() };
        Ok(Segment { inner: Arc::new(inner) })
    }
}

/// `size` rounded up to whole pages of this machine (normal pages).
fn whole_pages(size: usize) -> Result<u64> {
    let page = rustix::param::page_size();
    if size == 0 {
        return Err(Error::invalid("size", "0 bytes: a segment has at least one page"));
    }
    size.checked_next_multiple_of(page).map(|size| size as u64).ok_or_else(|| {
        Error::invalid("size", format!("{size} bytes overflow when rounded to pages"))
    })
}

/// The header at the start of a mapping.
fn header_of<'a>(mapping: &'a Mapping, label: &str) -> Result<&'a Header> {
    if mapping.len() < HEADER_SIZE {
        return Err(Error::corrupted(
            label,
            "size",
            mapping.len() as u64,
            format!("at least {HEADER_SIZE} bytes"),
        ));
    }
    Ok(header_at(mapping))
}

/// The header of a mapping known to hold one.
#[allow(clippy::cast_ptr_alignment, reason = "a mapping starts on a page boundary")]
fn header_at(mapping: &Mapping) -> &Header {
    let ptr = mapping.as_ptr().cast::<Header>();
    debug_assert!(ptr.is_aligned());
    // SAFETY: the mapping holds at least `HEADER_SIZE` bytes (`header_of` checks) from a page
    // boundary (aligned for `Header`) and lives as long as the reference; `Header` is all
    // atomics, valid for any bytes and writable by peers at any time.
    unsafe { &*ptr }
}

/// Waits until the header says published (acquire), until `deadline`.
fn wait_published(
    header: &Header,
    deadline: Option<Instant>,
    timeout: Duration,
    label: &str,
) -> Result<()> {
    let mut pause = Duration::from_micros(50);
    loop {
        match header.state.load(Ordering::Acquire) {
            STATE_PUBLISHED => return Ok(()),
            STATE_EMPTY | STATE_INITIALISING => {}
            other => {
                return Err(Error::corrupted(
                    label,
                    "publication state",
                    u64::from(other),
                    "0, 1 or 2",
                ));
            }
        }
        let left = deadline
            .map_or(Duration::MAX, |deadline| deadline.saturating_duration_since(Instant::now()));
        if left.is_zero() {
            return Err(Error::NotPublished { target: label.to_owned(), waited: timeout });
        }
        // The creator publishes with one store and wakes nobody: poll, backing off to 10 ms.
        std::thread::sleep(pause.min(left));
        pause = (pause * 2).min(Duration::from_millis(10));
    }
}

/// Magic, layout version, implementation and name of a published header.
fn check_identity(header: &Header, descriptor: &Descriptor, label: &str) -> Result<()> {
    let magic = header.magic.load(Ordering::Relaxed);
    if magic != MAGIC {
        return Err(Error::BadMagic { target: label.to_owned(), found: magic, expected: MAGIC });
    }
    let version = header.version.load(Ordering::Relaxed);
    if version != LAYOUT_VERSION {
        return Err(Error::LayoutVersion {
            target: label.to_owned(),
            found: version,
            expected: LAYOUT_VERSION,
        });
    }
    let implementation = descriptor.implementation;
    let code = header.implementation.load(Ordering::Relaxed);
    if code != implementation.code() {
        return Err(Error::corrupted(
            label,
            "implementation",
            u64::from(code),
            format!("{} ({implementation}), as the descriptor says", implementation.code()),
        ));
    }
    if header.load_name() != descriptor.name.key() {
        return Err(Error::corrupted(
            label,
            "name",
            0,
            format!("{}, as the descriptor says", descriptor.name),
        ));
    }
    Ok(())
}

/// The header's lock fields must match what this opener uses.
fn check_lock(header: &Header, backing: &Backing, label: &str) -> Result<()> {
    let kind = header.lock_kind.load(Ordering::Relaxed);
    let sem_id = header.sem_id.load(Ordering::Relaxed);
    let (expected_kind, expected_sem) = match backing.semaphore_id() {
        Some(id) => (LOCK_SEMAPHORE, id.cast_unsigned()),
        None => (LOCK_FILE, 0),
    };
    if kind != expected_kind {
        return Err(Error::corrupted(label, "lock kind", u64::from(kind), expected_kind));
    }
    if sem_id != expected_sem {
        return Err(Error::corrupted(
            label,
            "semaphore id",
            u64::from(sem_id),
            format!("{expected_sem}, the id of the semaphore with the segment's key"),
        ));
    }
    Ok(())
}

/// What every handle of one segment in this process shares.
struct Inner {
    // Field order is drop order: unmapped before the backing (file, semaphore) is closed.
    mapping: Mapping,
    backing: Backing,
    /// The checked offsets; the header is never read again for a bound.
    layout: Layout,
    master: bool,
    label: String,
    local: LocalLock,
}

impl Inner {
    fn header(&self) -> &Header {
        header_at(&self.mapping)
    }

    /// The creator fills the header and places the ring, before publication.
    fn initialise(&self, capacity: usize) -> Result<()> {
        let header = self.header();
        let me = process::current();
        header.state.store(STATE_INITIALISING, Ordering::Relaxed);
        // Who made it, and the magic, first: a creator that dies from here on leaves a segment
        // that `stale` recognises as a shmkit segment with a dead creator.
        header.creator_pid.store(me.pid, Ordering::Relaxed);
        header.creator_start.store(me.start_time, Ordering::Relaxed);
        header.store_name(&self.backing.name().key());
        header.magic.store(MAGIC, Ordering::Relaxed);
        header.version.store(LAYOUT_VERSION, Ordering::Relaxed);
        header.implementation.store(self.backing.implementation().code(), Ordering::Relaxed);
        self.layout.store(header);
        let (kind, sem_id) = match self.backing.semaphore_id() {
            Some(id) => (LOCK_SEMAPHORE, id.cast_unsigned()),
            None => (LOCK_FILE, 0),
        };
        header.lock_kind.store(kind, Ordering::Relaxed);
        header.sem_id.store(sem_id, Ordering::Relaxed);
        header.lock_holder.store(0, Ordering::Relaxed);
        let (ring, len) = self.ring_bytes();
        // SAFETY: the ring area lies in our mapping (`Layout::plan`, 128-aligned), which the ring
        // handles keep alive; the header is unpublished, so no peer following the protocol
        // touches the area while this writes it.
        unsafe { ByteRing::init(ring, len, capacity) }
            .map_err(|source| Error::Ring { target: self.label.clone(), source })
    }

    /// The ring area: where it starts and how many bytes it has.
    fn ring_bytes(&self) -> (NonNull<u8>, usize) {
        let ring = &self.layout.ring;
        let start = self.mapping.as_ptr().wrapping_add(ring.start as usize);
        (NonNull::new(start).unwrap_or(NonNull::dangling()), (ring.end - ring.start) as usize)
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        if self.master {
            self.backing.remove();
        }
    }
}

/// A shared segment between two processes: a header, a common data area allocated with
/// [`Segment::data_alloc`], a byte ring ([`Segment::ring_producer`], [`Segment::ring_consumer`])
/// and a lock ([`Segment::lock`]).
///
/// A `Segment` is a handle: clones share one mapping (and one lock, one descriptor); the last
/// handle in the process to drop unmaps it, and if this process created it, removes it (the
/// name in `/dev/shm`, the System V segment and semaphore). A peer that still maps it keeps its
/// mapping.
///
/// ```
/// use shmkit_segment::{Implementation, Segment};
///
/// // One process creates (here POSIX, for a peer of the same user) ...
/// let server = Segment::create(64 * 1024, None, Implementation::Posix)?;
/// let counter = server.data_alloc(8, 8)?;
/// server.atomic_u64(counter)?.store(41, std::sync::atomic::Ordering::Release);
///
/// // ... the other opens it from the descriptor (sent over a socket in real use).
/// let client = Segment::decode(&server.encode(), 64 * 1024)?;
/// client.atomic_u64(counter)?.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
/// assert_eq!(server.atomic_u64(counter)?.load(std::sync::atomic::Ordering::Acquire), 42);
///
/// let mut producer = server.ring_producer()?;
/// let mut consumer = client.ring_consumer()?;
/// assert!(producer.append(b"hello")?);
/// let mut buffer = [0; 16];
/// assert_eq!(consumer.read(&mut buffer)?, Some(5));
///
/// let guard = client.lock()?;
/// assert!(server.try_lock().is_err()); // would block: the peer holds it
/// drop(guard);
/// # Ok::<(), shmkit_segment::Error>(())
/// ```
#[derive(Clone)]
pub struct Segment {
    inner: Arc<Inner>,
}

impl Segment {
    /// Creates a segment of `size` bytes (rounded up to whole pages) for `peer` (or for a peer
    /// of this process's user), made by `implementation`. See [`SegmentOptions::create`].
    pub fn create(
        size: usize,
        peer: Option<&PeerCredentials>,
        implementation: Implementation,
    ) -> Result<Self> {
        let mut options = SegmentOptions::new(size).implementation(implementation);
        if let Some(peer) = peer {
            options = options.peer(*peer);
        }
        options.create()
    }

    /// Opens the segment of an encoded descriptor, checking that the OS reports `size` bytes
    /// (rounded up to whole pages); see [`OpenOptions::decode`].
    pub fn decode(encoded: &[u8], size: usize) -> Result<Self> {
        OpenOptions::new().decode(encoded, size)
    }

    /// Receives a segment from a connected Unix socket (sent with [`Segment::send`]); see
    /// [`OpenOptions::receive`].
    pub fn receive(socket: impl AsFd, size: usize) -> Result<Self> {
        OpenOptions::new().receive(socket, size)
    }

    /// The descriptor a peer opens this segment with.
    pub fn descriptor(&self) -> Descriptor {
        Descriptor {
            implementation: self.implementation(),
            name: self.name(),
            sysv_id: self.inner.backing.sysv_id(),
            size: self.size(),
            layout_version: LAYOUT_VERSION,
        }
    }

    /// The encoded descriptor, for [`Segment::decode`] in the peer. A memfd segment also needs
    /// its file descriptor passed: use [`Segment::send`].
    pub fn encode(&self) -> [u8; Descriptor::LEN] {
        self.descriptor().encode()
    }

    /// How the segment is made.
    pub fn implementation(&self) -> Implementation {
        self.inner.backing.implementation()
    }

    /// Its name (the file in `/dev/shm` for POSIX segments).
    pub fn name(&self) -> Name {
        self.inner.backing.name()
    }

    /// How errors name it.
    pub fn label(&self) -> &str {
        &self.inner.label
    }

    /// Its size in bytes, as the OS reports it.
    pub fn size(&self) -> u64 {
        self.inner.layout.total
    }

    /// Whether this process created it (and will remove it when its last handle drops).
    pub fn is_master(&self) -> bool {
        self.inner.master
    }

    /// The System V segment id, for System V segments.
    pub fn sysv_id(&self) -> Option<i32> {
        self.inner.backing.sysv_id()
    }

    /// The memfd's descriptor, for memfd segments.
    pub fn memfd(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        self.inner.backing.memfd()
    }

    /// How many handles of this segment's mapping this process holds (clones, ring sides).
    pub fn handle_count(&self) -> usize {
        Arc::strong_count(&self.inner)
    }

    /// Whether two handles share one mapping.
    pub fn same_mapping(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }

    /// The first byte of the mapping. The whole segment may be written by the peer at any time:
    /// access it only through atomics or volatile copies.
    pub fn as_ptr(&self) -> *mut u8 {
        self.inner.mapping.as_ptr()
    }

    /// The creator's pid as the header says it (written by the peer, so only a hint).
    pub fn creator_pid(&self) -> u32 {
        self.inner.header().creator_pid.load(Ordering::Relaxed)
    }

    /// The common data area: offsets from the start of the segment.
    pub fn data_range(&self) -> Range<u64> {
        self.inner.layout.data.clone()
    }

    /// The ring area: offsets from the start of the segment.
    pub fn ring_range(&self) -> Range<u64> {
        self.inner.layout.ring.clone()
    }

    /// The ring's capacity in bytes.
    pub fn ring_capacity(&self) -> usize {
        self.inner.layout.ring_capacity()
    }

    /// Allocates `size` bytes aligned to `align` (a power of two, at most the page size) in the
    /// common data area, for both processes: returns the offset from the start of the segment,
    /// which the peer resolves with [`Segment::addr`] (or [`Segment::read_at`], ...). Allocations
    /// are never freed.
    ///
    /// The bump pointer lives in the header and both processes allocate from it (a CAS loop); a
    /// pointer outside the data area, or a header whose bounds changed since publication, is
    /// [`Error::Corrupted`]. No room is [`Error::DataExhausted`].
    pub fn data_alloc(&self, size: usize, align: usize) -> Result<u64> {
        let page = rustix::param::page_size();
        if size == 0 {
            return Err(Error::invalid("allocation size", "0 bytes: allocate at least 1"));
        }
        if !align.is_power_of_two() || align > page {
            return Err(Error::invalid(
                "alignment",
                format!("{align}: a power of two from 1 to the page size {page}"),
            ));
        }
        let header = self.inner.header();
        let label = &self.inner.label;
        self.inner.layout.verify(header, label)?;
        let data = &self.inner.layout.data;
        let (size, align) = (size as u64, align as u64);
        let mut current = header.data_next.load(Ordering::Acquire);
        loop {
            if current < data.start || current > data.end {
                return Err(Error::corrupted(
                    label,
                    "bump pointer",
                    current,
                    format!("inside the data area {}..={}", data.start, data.end),
                ));
            }
            let start = current.next_multiple_of(align);
            let end = start.checked_add(size).filter(|&end| end <= data.end);
            let Some(end) = end else {
                return Err(Error::DataExhausted {
                    target: label.clone(),
                    asked: size,
                    align,
                    free: data.end - current,
                });
            };
            match header.data_next.compare_exchange_weak(
                current,
                end,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return Ok(start),
                Err(actual) => current = actual,
            }
        }
    }

    /// Bytes of the common data area not yet allocated (as the bump pointer says now).
    pub fn data_free(&self) -> Result<u64> {
        let data = &self.inner.layout.data;
        let current = self.inner.header().data_next.load(Ordering::Acquire);
        if current < data.start || current > data.end {
            return Err(Error::corrupted(
                &self.inner.label,
                "bump pointer",
                current,
                format!("inside the data area {}..={}", data.start, data.end),
            ));
        }
        Ok(data.end - current)
    }

    /// The address of `len` bytes at `offset` of the common data area: the bounds are checked
    /// against the data area as published (and checked against the OS's size when this process
    /// opened the segment), never against what the header says now. The peer may write these
    /// bytes at any time: access them through atomics or volatile copies.
    pub fn addr(&self, offset: u64, len: usize) -> Result<NonNull<u8>> {
        let data = &self.inner.layout.data;
        let inside = offset >= data.start
            && offset.checked_add(len as u64).is_some_and(|end| end <= data.end);
        if !inside {
            return Err(Error::OutOfBounds {
                target: self.inner.label.clone(),
                offset,
                len: len as u64,
                begin: data.start,
                end: data.end,
            });
        }
        let address = self.inner.mapping.as_ptr().wrapping_add(offset as usize);
        Ok(NonNull::new(address).unwrap_or(NonNull::dangling()))
    }

    /// Copies `out.len()` bytes at `offset` of the data area (bounds as [`Segment::addr`]), with
    /// relaxed atomic byte loads: a peer writing meanwhile is a race on values, never undefined
    /// behaviour.
    pub fn read_at(&self, offset: u64, out: &mut [u8]) -> Result<()> {
        self.addr(offset, out.len())?;
        self.inner
            .mapping
            .read_at(offset as usize, out)
            .map_err(|error| Error::memory("read", &self.inner.label, error))
    }

    /// Copies `data` to `offset` of the data area (bounds as [`Segment::addr`]), with relaxed
    /// atomic byte stores.
    pub fn write_at(&self, offset: u64, data: &[u8]) -> Result<()> {
        self.addr(offset, data.len())?;
        self.inner
            .mapping
            .write_at(offset as usize, data)
            .map_err(|error| Error::memory("write", &self.inner.label, error))
    }

    /// An atomic view of the 8 bytes at `offset` of the data area (8-aligned).
    pub fn atomic_u64(&self, offset: u64) -> Result<&AtomicU64> {
        self.addr(offset, 8)?;
        self.inner
            .mapping
            .atomic_u64(offset as usize)
            .map_err(|error| Error::memory("atomic view", &self.inner.label, error))
    }

    /// Takes the segment's lock, waiting while the peer (or another thread) holds it. The
    /// guard's [`owner_died`](SegmentGuard::owner_died) says whether the previous holder died
    /// holding it. Locking it again from the holding thread is [`Error::Deadlock`].
    ///
    /// The lock is held by the kernel (`flock` on POSIX and memfd segments, the System V
    /// semaphore with `SEM_UNDO` on System V ones), which releases it when its holder dies and
    /// which no byte of the segment can corrupt.
    pub fn lock(&self) -> Result<SegmentGuard<'_>> {
        self.acquire(true)
    }

    /// Takes the lock if it is free: [`Error::WouldBlock`] when the peer (or another thread)
    /// holds it.
    pub fn try_lock(&self) -> Result<SegmentGuard<'_>> {
        self.acquire(false)
    }

    fn acquire(&self, wait: bool) -> Result<SegmentGuard<'_>> {
        let inner = &*self.inner;
        lock::acquire(
            &inner.local,
            inner.backing.kernel_lock(),
            &inner.header().lock_holder,
            &inner.label,
            wait,
        )
    }

    /// Takes the producer side of the ring (appends). One producer at a time, in either
    /// process; a producer whose process died is taken over.
    pub fn ring_producer(&self) -> Result<RingProducer> {
        RingProducer::new(self.clone())
    }

    /// Takes the consumer side of the ring (reads). One consumer at a time, in either process;
    /// a consumer whose process died is taken over.
    pub fn ring_consumer(&self) -> Result<RingConsumer> {
        RingConsumer::new(self.clone())
    }

    /// The ring area: its first byte and length.
    pub(crate) fn ring_bytes(&self) -> (NonNull<u8>, usize) {
        self.inner.ring_bytes()
    }
}

impl fmt::Debug for Segment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Segment")
            .field("label", &self.inner.label)
            .field("size", &self.inner.layout.total)
            .field("master", &self.inner.master)
            .field("data", &self.inner.layout.data)
            .field("ring", &self.inner.layout.ring)
            .finish_non_exhaustive()
    }
}
