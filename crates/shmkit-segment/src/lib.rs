//! `shmkit-segment`: one call gives two processes a ready shared segment: a header, a common
//! data area they allocate shared structures from, a byte ring between them, and a lock.
//!
//! - [`Segment::create`] (or [`SegmentOptions`]) makes a segment of a given size for a peer,
//!   as a POSIX region in `/dev/shm`, a System V segment, or a sealed memfd
//!   ([`Implementation`]). [`Segment::send`] passes it over a Unix socket (the memfd itself by
//!   `SCM_RIGHTS`); [`Segment::receive`] or [`Segment::decode`] opens it on the other side.
//!   [`PeerCredentials::of_socket`] reads who the peer is (`SO_PEERCRED`), and a segment made for
//!   it is owned by its user and open only to it and the creator.
//! - [`Segment::data_alloc`] allocates from the common data area (a bump allocator both
//!   processes share) and returns offsets both resolve ([`Segment::addr`], [`Segment::read_at`],
//!   [`Segment::atomic_u64`]).
//! - [`Segment::ring_producer`] and [`Segment::ring_consumer`]: the two sides of the byte ring
//!   (`shmkit-ring`): append, read, skip, avail, len.
//! - [`Segment::lock`] and [`Segment::try_lock`]: a lock the kernel holds and releases when its
//!   holder dies; the next guard reports the death ([`SegmentGuard::owner_died`]).
//! - [`stale`] and [`remove_stale`]: segments whose creator died and that nobody maps.
//!
//! # The peer is not trusted
//!
//! The opener checks magic, layout version and every offset of the header against the size the
//! OS reports (`fstat`, `IPC_STAT`), keeps that checked copy, and never reads a bound from the
//! header again; the bump pointer and the ring's positions, which change, are checked on every
//! use. A peer that writes garbage over the segment gets [`Error::Corrupted`] (or a ring error)
//! out of this process, never an access outside the segment. The lock is in the kernel, out of
//! the peer's reach. What a peer can still do: change the bytes of the data area (they are
//! shared: treat them as input), and, for a POSIX segment it owns, `ftruncate` the file, after
//! which accesses past the new end raise `SIGBUS`: against a hostile peer use
//! [`Implementation::Memfd`] (sealed against resizing) or [`Implementation::SysV`] (never
//! resized).
//!
//! # Reference counting
//!
//! A [`Segment`] is a handle around an `Arc`: clones share the mapping, the lock's descriptor
//! and the in-process half of the lock; the last handle to drop unmaps, and the creator's last
//! handle removes the segment. The join registry of `shmkit-join` is not used: it counts joins of
//! named regions it maps itself, while a segment is also a System V segment or a received memfd,
//! carries a lock and the creator's duty to remove it, and its handles are passed between threads
//! as values.
//!
//! ```
//! use shmkit_segment::{Implementation, Segment};
//!
//! let segment = Segment::create(4096, None, Implementation::Posix)?;
//! let clone = segment.clone();
//! assert!(clone.same_mapping(&segment) && segment.is_master());
//! let path = std::path::Path::new("/dev/shm").join(segment.name().as_str());
//! assert!(path.exists());
//! drop((segment, clone)); // the creator's last handle: removed
//! assert!(!path.exists());
//! # Ok::<(), shmkit_segment::Error>(())
//! ```
#![deny(unsafe_op_in_unsafe_fn)]

mod backing;
mod descriptor;
mod error;
mod layout;
mod lock;
mod passing;
mod peer;
mod process;
mod ring;
mod segment;
mod stale;

pub use backing::{Implementation, NAME_PREFIX};
pub use descriptor::Descriptor;
pub use error::{Error, Result};
pub use layout::{HEADER_SIZE, LAYOUT_VERSION, MAGIC, MIN_RING_CAPACITY};
pub use lock::SegmentGuard;
pub use peer::PeerCredentials;
pub use ring::{RingConsumer, RingProducer};
pub use segment::{DEFAULT_OPEN_TIMEOUT, OpenOptions, Segment, SegmentOptions};
pub use shmkit_sync::{BusySpin, SpinFutex, SpinYield, WaitStrategy};
pub use stale::{StaleReason, StaleSegment, remove_stale, stale};
