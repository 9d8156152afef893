//! The header every shared primitive starts with: magic, layout version, kind, sizes, and the
//! publication state that makes creation a handshake.
//!
//! The creator writes every field, then stores [`STATE_READY`] with `Release`; an opener loads the
//! state with `Acquire` and only then reads (and checks) the rest. Sizes the opener relies on are
//! checked against the byte range it was given (which comes from the OS), never trusted.

use crate::error::{Error, Result};
use crate::primitive::{AtomicU32, AtomicU64, Ordering, fence};

/// `b"SHMKRING"` read as a little-endian `u64`: the first 8 bytes of every primitive.
pub const MAGIC: u64 = u64::from_le_bytes(*b"SHMKRING");

/// Not yet (or no longer) usable: zero-filled memory reads as this.
pub const STATE_EMPTY: u32 = 0;
/// The creator is writing the primitive.
pub const STATE_INITIALISING: u32 = 1;
/// Published: every field is written and stays as it is.
pub const STATE_READY: u32 = 2;

/// Which primitive a header belongs to, so that bytes made for one are never opened as another.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// [`crate::spsc`].
    Spsc = 1,
    /// [`crate::bytes`].
    Bytes = 2,
    /// [`crate::broadcast`].
    Broadcast = 3,
    /// [`crate::seqlock`].
    SeqLock = 4,
}

impl Kind {
    /// The kind numbered `number` in a header, if any.
    pub const fn from_u32(number: u32) -> Option<Self> {
        match number {
            1 => Some(Self::Spsc),
            2 => Some(Self::Bytes),
            3 => Some(Self::Broadcast),
            4 => Some(Self::SeqLock),
            _ => None,
        }
    }

    /// The layout version of this kind that this build writes and reads.
    pub const fn layout_version(self) -> u32 {
        match self {
            Self::Spsc => crate::spsc::LAYOUT_VERSION,
            Self::Bytes => crate::bytes::LAYOUT_VERSION,
            Self::Broadcast => crate::broadcast::LAYOUT_VERSION,
            Self::SeqLock => crate::seqlock::LAYOUT_VERSION,
        }
    }

    /// The primitive's name in errors.
    #[cfg(not(loom))]
    pub(crate) const fn what(self) -> &'static str {
        match self {
            Self::Spsc => crate::spsc::WHAT,
            Self::Bytes => crate::bytes::WHAT,
            Self::Broadcast => crate::broadcast::WHAT,
            Self::SeqLock => crate::seqlock::WHAT,
        }
    }
}

/// The first 128 bytes of every primitive. All atomics: the peer may write them at any time.
#[repr(C, align(128))]
#[derive(Debug)]
pub struct Header {
    /// [`MAGIC`].
    pub magic: AtomicU64,
    /// The layout version of this kind.
    pub version: AtomicU32,
    /// [`Kind`] as a number.
    pub kind: AtomicU32,
    /// Elements (or bytes, for the byte ring) the primitive holds; a power of two where the kind
    /// says so.
    pub capacity: AtomicU64,
    /// Bytes of one element (or of one slot).
    pub element_size: AtomicU64,
    /// Bytes of the whole primitive, header included.
    pub total_size: AtomicU64,
    /// [`STATE_EMPTY`], [`STATE_INITIALISING`] or [`STATE_READY`].
    pub state: AtomicU32,
    /// Zero; room for later fields of this layout version.
    pub reserved: [AtomicU32; 19],
}

#[cfg(not(loom))]
static_assertions::assert_eq_size!(Header, [u8; 128]);

/// What a header must say for an opener to accept it.
#[derive(Clone, Copy, Debug)]
pub struct Expected {
    /// The primitive's name in errors.
    pub what: &'static str,
    /// Its kind.
    pub kind: Kind,
    /// Its layout version.
    pub version: u32,
    /// Bytes of one element, as this process's type has them.
    pub element_size: u64,
}

/// What a valid header said.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    /// Capacity.
    pub capacity: u64,
    /// Total size in bytes.
    pub total_size: u64,
}

impl Header {
    /// Writes every field but the state (left at [`STATE_INITIALISING`]); the caller builds the
    /// rest of the primitive, then calls [`Header::publish`].
    pub fn begin(&self, expected: &Expected, layout: Layout) {
        self.state.store(STATE_INITIALISING, Ordering::Relaxed);
        self.magic.store(MAGIC, Ordering::Relaxed);
        self.version.store(expected.version, Ordering::Relaxed);
        self.kind.store(expected.kind as u32, Ordering::Relaxed);
        self.capacity.store(layout.capacity, Ordering::Relaxed);
        self.element_size.store(expected.element_size, Ordering::Relaxed);
        self.total_size.store(layout.total_size, Ordering::Relaxed);
        for word in &self.reserved {
            word.store(0, Ordering::Relaxed);
        }
    }

    /// Makes everything written before it visible to openers (`Release`).
    pub fn publish(&self) {
        self.state.store(STATE_READY, Ordering::Release);
    }

    /// Checks a published header against what this opener expects and the `len` bytes it was
    /// given; returns the capacity and size it says, for the caller's own range checks.
    pub fn check(&self, expected: &Expected, len: usize) -> Result<Layout> {
        let what = expected.what;
        self.check_published(what)?;
        let kind = self.kind.load(Ordering::Relaxed);
        if kind != expected.kind as u32 {
            return Err(corrupted(what, "kind", u64::from(kind), "this primitive's kind"));
        }
        self.check_version(what, expected.kind)?;
        let element_size = self.element_size.load(Ordering::Relaxed);
        if element_size != expected.element_size {
            return Err(corrupted(
                what,
                "element size",
                element_size,
                "the size of this process's element type",
            ));
        }
        self.layout(what, len)
    }

    /// Checks that the header is published (its state, then its magic). The state is a relaxed
    /// load and an `Acquire` fence rather than an `Acquire` load: the same ordering, and of the
    /// atomic loads only relaxed ones are sure to work on memory mapped read-only (see
    /// [`core::sync::atomic`]), which [`crate::inspect`] reads.
    pub(crate) fn check_published(&self, what: &'static str) -> Result<()> {
        let state = self.state.load(Ordering::Relaxed);
        fence(Ordering::Acquire);
        match state {
            STATE_READY => {}
            STATE_EMPTY | STATE_INITIALISING => return Err(Error::NotPublished { what }),
            other => return Err(corrupted(what, "state", u64::from(other), "0, 1 or 2")),
        }
        let magic = self.magic.load(Ordering::Relaxed);
        if magic != MAGIC {
            return Err(corrupted(what, "magic", magic, "SHMKRING"));
        }
        Ok(())
    }

    /// Checks that a published header of `kind` has this build's layout version of that kind.
    pub(crate) fn check_version(&self, what: &'static str, kind: Kind) -> Result<u32> {
        let version = self.version.load(Ordering::Relaxed);
        let known = kind.layout_version();
        if version != known {
            return Err(Error::UnknownVersion { what, kind, version, known });
        }
        Ok(version)
    }

    /// The capacity and total size of a published header, the size checked against the `len`
    /// bytes given.
    pub(crate) fn layout(&self, what: &'static str, len: usize) -> Result<Layout> {
        let total_size = self.total_size.load(Ordering::Relaxed);
        if total_size > len as u64 {
            return Err(corrupted(what, "total size", total_size, "at most the bytes mapped"));
        }
        Ok(Layout { capacity: self.capacity.load(Ordering::Relaxed), total_size })
    }
}

/// The error for a bad header field.
fn corrupted(what: &'static str, field: &'static str, value: u64, expected: &'static str) -> Error {
    Error::Corrupted { what, field, value, expected }
}

/// Checks that `len` bytes at `addr` can hold `needed` bytes aligned to `align`.
pub fn check_placement(
    what: &'static str,
    addr: usize,
    len: usize,
    needed: usize,
    align: usize,
) -> Result<()> {
    let placement = |reason| Error::Placement { what, reason, needed, align, len, addr };
    if !addr.is_multiple_of(align) {
        return Err(placement("misaligned"));
    }
    if len < needed {
        return Err(placement("too small"));
    }
    Ok(())
}
