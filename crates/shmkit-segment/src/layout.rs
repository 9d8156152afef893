//! The shared layout of a segment: the [`Header`] at offset 0, the common data area, the byte
//! ring at the end; and [`Layout`], the private, checked copy of the offsets that every access
//! uses.
//!
//! ```text
//! offset                  bytes               what
//! 0                       128                 header line 0: written once by the creator
//! 128                     128                 header line 1: bump pointer, lock holder
//! 256 (data begin)        data end - 256      common data area (data_alloc)
//! ring begin (128-align)  512 + capacity      byte ring (shmkit-ring: its own header, head and
//!                                             tail lines, events, then the data bytes)
//! ring end = total size
//! ```
//!
//! Header line 0:
//!
//! | offset | field | |
//! |---|---|---|
//! | 0 | `magic` u64 | `b"SHMKSEGM"` |
//! | 8 | `version` u32 | [`LAYOUT_VERSION`] |
//! | 12 | `state` u32 | 0 empty, 1 initialising, 2 published |
//! | 16 | `implementation` u32 | 1 POSIX, 2 System V, 3 memfd |
//! | 20 | `creator_pid` u32 | |
//! | 24 | `creator_start` u64 | start time of the creator (`/proc/PID/stat` field 22) |
//! | 32 | `total_size` u64 | bytes of the segment |
//! | 40, 48 | `data_begin`, `data_end` u64 | the common data area |
//! | 56, 64 | `ring_begin`, `ring_end` u64 | the byte ring |
//! | 72 | `lock_kind` u32 | 1 file lock (`flock`), 2 System V semaphore |
//! | 76 | `sem_id` u32 | the semaphore set's id (System V) |
//! | 80 | `name` 40 bytes | the segment's name, zero-padded |
//! | 120 | reserved | |
//!
//! Header line 1 (its own 128 bytes, because it is written while the segment is in use):
//! `data_next` u64 at 128 (the bump pointer: the offset of the first free data byte) and
//! `lock_holder` u64 at 136 (who holds the lock: pid and start time, 0 when free).
//!
//! The ring's head and tail are the byte ring's own, in its control lines at `ring_begin + 256`
//! and `ring_begin + 128`; `shmkit-ring` checks them on every use.

use std::mem::offset_of;
use std::ops::Range;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use shmkit_name::Key;
use shmkit_ring::bytes::ByteRing;

use crate::error::{Error, Result};

/// `b"SHMKSEGM"` as a little-endian `u64`: the first 8 bytes of every segment.
pub const MAGIC: u64 = u64::from_le_bytes(*b"SHMKSEGM");
/// The layout version of the segment header; bumped whenever the shared layout changes.
pub const LAYOUT_VERSION: u32 = 1;
/// Bytes of the header, and the offset where the common data area begins.
pub const HEADER_SIZE: usize = size_of::<Header>();

/// `state`: zero-filled memory.
pub(crate) const STATE_EMPTY: u32 = 0;
/// `state`: the creator is filling the header.
pub(crate) const STATE_INITIALISING: u32 = 1;
/// `state`: published; every field of line 0 stays as it is.
pub(crate) const STATE_PUBLISHED: u32 = 2;

/// `lock_kind`: an `flock` on the segment's file.
pub(crate) const LOCK_FILE: u32 = 1;
/// `lock_kind`: a System V semaphore with `SEM_UNDO`.
pub(crate) const LOCK_SEMAPHORE: u32 = 2;

/// The alignment of the ring area (what `shmkit-ring` needs).
const RING_ALIGN: u64 = ByteRing::ALIGN as u64;
/// The smallest ring capacity: with it, the ring's bytes are a multiple of its alignment, so a
/// ring at the end of a segment of whole pages starts aligned.
pub const MIN_RING_CAPACITY: usize = 128;

/// The segment header, at offset 0. All atomics: the peer may write any byte of it at any time.
#[repr(C, align(128))]
#[derive(Debug)]
pub(crate) struct Header {
    pub(crate) magic: AtomicU64,
    pub(crate) version: AtomicU32,
    pub(crate) state: AtomicU32,
    pub(crate) implementation: AtomicU32,
    pub(crate) creator_pid: AtomicU32,
    pub(crate) creator_start: AtomicU64,
    pub(crate) total_size: AtomicU64,
    pub(crate) data_begin: AtomicU64,
    pub(crate) data_end: AtomicU64,
    pub(crate) ring_begin: AtomicU64,
    pub(crate) ring_end: AtomicU64,
    pub(crate) lock_kind: AtomicU32,
    pub(crate) sem_id: AtomicU32,
    pub(crate) name: [AtomicU64; 5],
    reserved0: AtomicU64,
    pub(crate) data_next: AtomicU64,
    pub(crate) lock_holder: AtomicU64,
    reserved1: [AtomicU64; 14],
}

static_assertions::assert_eq_size!(Header, [u8; 256]);
static_assertions::const_assert_eq!(align_of::<Header>(), 128);
static_assertions::const_assert_eq!(offset_of!(Header, version), 8);
static_assertions::const_assert_eq!(offset_of!(Header, state), 12);
static_assertions::const_assert_eq!(offset_of!(Header, implementation), 16);
static_assertions::const_assert_eq!(offset_of!(Header, creator_pid), 20);
static_assertions::const_assert_eq!(offset_of!(Header, creator_start), 24);
static_assertions::const_assert_eq!(offset_of!(Header, total_size), 32);
static_assertions::const_assert_eq!(offset_of!(Header, data_begin), 40);
static_assertions::const_assert_eq!(offset_of!(Header, data_end), 48);
static_assertions::const_assert_eq!(offset_of!(Header, ring_begin), 56);
static_assertions::const_assert_eq!(offset_of!(Header, ring_end), 64);
static_assertions::const_assert_eq!(offset_of!(Header, lock_kind), 72);
static_assertions::const_assert_eq!(offset_of!(Header, sem_id), 76);
static_assertions::const_assert_eq!(offset_of!(Header, name), 80);
static_assertions::const_assert_eq!(offset_of!(Header, data_next), 128);
static_assertions::const_assert_eq!(offset_of!(Header, lock_holder), 136);
static_assertions::const_assert!((HEADER_SIZE as u64).is_multiple_of(RING_ALIGN));
static_assertions::const_assert!((ByteRing::CONTROL_SIZE as u64).is_multiple_of(RING_ALIGN));
static_assertions::const_assert!((MIN_RING_CAPACITY as u64).is_multiple_of(RING_ALIGN));
static_assertions::const_assert!(MIN_RING_CAPACITY >= ByteRing::MIN_CAPACITY);
static_assertions::const_assert_eq!(Key::LEN, 40);

impl Header {
    /// Writes the name as five words (the 40-byte key, zero-padded).
    pub(crate) fn store_name(&self, key: &Key) {
        for (word, chunk) in self.name.iter().zip(key.as_bytes().chunks_exact(8)) {
            let mut bytes = [0; 8];
            bytes.copy_from_slice(chunk);
            word.store(u64::from_ne_bytes(bytes), Ordering::Relaxed);
        }
    }

    /// The name as written (any bytes: check with [`Key::to_name`]).
    pub(crate) fn load_name(&self) -> Key {
        let mut bytes = [0; Key::LEN];
        for (word, chunk) in self.name.iter().zip(bytes.chunks_exact_mut(8)) {
            chunk.copy_from_slice(&word.load(Ordering::Relaxed).to_ne_bytes());
        }
        Key::from_bytes(bytes)
    }
}

/// The offsets of a segment's areas: computed by the creator from the size the OS gave it, or
/// read from the header by an opener and checked against the size the OS reports. Every access
/// uses this private copy; the header is never read again for a bound.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Layout {
    /// Bytes of the segment, from the OS.
    pub(crate) total: u64,
    /// The common data area.
    pub(crate) data: Range<u64>,
    /// The byte ring.
    pub(crate) ring: Range<u64>,
}

impl Layout {
    /// Plans a segment of `total` bytes (whole pages): header, data area, then a ring of
    /// `ring_capacity` bytes (a power of two, at least [`MIN_RING_CAPACITY`]), or by default the
    /// largest power of two that leaves at least as much for data as for the ring. Returns the
    /// layout and the capacity.
    pub(crate) fn plan(total: u64, ring_capacity: Option<usize>) -> Result<(Self, usize)> {
        let control = ByteRing::CONTROL_SIZE as u64;
        let room = total.saturating_sub(HEADER_SIZE as u64 + control);
        let capacity = ring_capacity.unwrap_or_else(|| {
            let half = (room / 2).min(ByteRing::MAX_CAPACITY as u64);
            // The largest power of two at most `half` (0 when there is no room: refused below).
            if half == 0 { 0 } else { 1usize << half.ilog2() }
        });
        let invalid = || {
            Error::invalid(
                "ring capacity",
                format!(
                    "{capacity} bytes in a segment of {total}: a power of two from \
                     {MIN_RING_CAPACITY} to {} bytes, which fits beside the {HEADER_SIZE}-byte \
                     header and the ring's {control} bytes of control lines",
                    ByteRing::MAX_CAPACITY
                ),
            )
        };
        if capacity < MIN_RING_CAPACITY {
            return Err(invalid());
        }
        let ring_bytes = ByteRing::bytes_for(capacity).map_err(|_| invalid())? as u64;
        // `total` is whole pages and `ring_bytes` a multiple of 128, so the ring starts aligned.
        let ring_begin = total
            .checked_sub(ring_bytes)
            .filter(|&begin| begin >= HEADER_SIZE as u64)
            .ok_or_else(invalid)?;
        let layout = Self { total, data: HEADER_SIZE as u64..ring_begin, ring: ring_begin..total };
        Ok((layout, capacity))
    }

    /// The ring's capacity: its area less the control lines (a power of two, checked by
    /// [`Layout::load`]).
    pub(crate) fn ring_capacity(&self) -> usize {
        (self.ring.end - self.ring.start) as usize - ByteRing::CONTROL_SIZE
    }

    /// Writes the layout into a header being initialised (the creator's side).
    pub(crate) fn store(&self, header: &Header) {
        header.total_size.store(self.total, Ordering::Relaxed);
        header.data_begin.store(self.data.start, Ordering::Relaxed);
        header.data_end.store(self.data.end, Ordering::Relaxed);
        header.ring_begin.store(self.ring.start, Ordering::Relaxed);
        header.ring_end.store(self.ring.end, Ordering::Relaxed);
        header.data_next.store(self.data.start, Ordering::Relaxed);
    }

    /// Reads the layout of a published header and checks it against `os_size`, the size the OS
    /// reports: every area inside the segment, in order, the ring aligned and big enough for
    /// its control lines. `target` names the segment in errors.
    pub(crate) fn load(header: &Header, os_size: u64, target: &str) -> Result<Self> {
        let total = header.total_size.load(Ordering::Relaxed);
        if total != os_size {
            return Err(Error::corrupted(
                target,
                "total size",
                total,
                format!("{os_size}, the size the OS reports"),
            ));
        }
        let data_begin = header.data_begin.load(Ordering::Relaxed);
        let data_end = header.data_end.load(Ordering::Relaxed);
        let ring_begin = header.ring_begin.load(Ordering::Relaxed);
        let ring_end = header.ring_end.load(Ordering::Relaxed);
        let header_end = HEADER_SIZE as u64;
        if data_begin < header_end || data_begin > os_size {
            return Err(Error::corrupted(
                target,
                "data begin",
                data_begin,
                format!("from {header_end} to {os_size}"),
            ));
        }
        if data_end < data_begin || data_end > ring_begin {
            return Err(Error::corrupted(
                target,
                "data end",
                data_end,
                format!("from data begin {data_begin} to ring begin {ring_begin}"),
            ));
        }
        if !ring_begin.is_multiple_of(RING_ALIGN) {
            return Err(Error::corrupted(
                target,
                "ring begin",
                ring_begin,
                format!("a multiple of {RING_ALIGN}"),
            ));
        }
        let control = ByteRing::CONTROL_SIZE as u64;
        let capacity_ok = |len: u64| {
            len.checked_sub(control).is_some_and(|capacity| {
                capacity.is_power_of_two()
                    && (MIN_RING_CAPACITY as u64..=ByteRing::MAX_CAPACITY as u64)
                        .contains(&capacity)
            })
        };
        if ring_end > os_size
            || ring_end.checked_sub(ring_begin).is_none_or(|len| !capacity_ok(len))
        {
            return Err(Error::corrupted(
                target,
                "ring end",
                ring_end,
                format!(
                    "at most {os_size}, and {control} bytes plus a power of two from \
                     {MIN_RING_CAPACITY} past ring begin {ring_begin}"
                ),
            ));
        }
        Ok(Self { total, data: data_begin..data_end, ring: ring_begin..ring_end })
    }

    /// Checks that the header still says what this layout says (line 0 never changes once
    /// published): a changed field means a peer wrote over it.
    pub(crate) fn verify(&self, header: &Header, target: &str) -> Result<()> {
        let fields = [
            ("total size", &header.total_size, self.total),
            ("data begin", &header.data_begin, self.data.start),
            ("data end", &header.data_end, self.data.end),
            ("ring begin", &header.ring_begin, self.ring.start),
            ("ring end", &header.ring_end, self.ring.end),
        ];
        for (field, word, expected) in fields {
            let value = word.load(Ordering::Relaxed);
            if value != expected {
                return Err(Error::corrupted(
                    target,
                    field,
                    value,
                    format!("{expected}, as published"),
                ));
            }
        }
        Ok(())
    }
}

/// What a header said, copied out of a segment that may not be mapped (read with `pread`, or from
/// a read-only attachment): for finding stale segments.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Snapshot {
    pub(crate) magic: u64,
    pub(crate) version: u32,
    pub(crate) state: u32,
    pub(crate) implementation: u32,
    pub(crate) creator_pid: u32,
    pub(crate) creator_start: u64,
    pub(crate) name: Key,
}

impl Snapshot {
    /// Parses the first [`HEADER_SIZE`] bytes of a segment (native byte order, as the atomics
    /// store them).
    pub(crate) fn parse(bytes: &[u8; HEADER_SIZE]) -> Self {
        let u64_at = |offset: usize| {
            let mut word = [0; 8];
            word.copy_from_slice(&bytes[offset..offset + 8]);
            u64::from_ne_bytes(word)
        };
        let u32_at = |offset: usize| {
            let mut word = [0; 4];
            word.copy_from_slice(&bytes[offset..offset + 4]);
            u32::from_ne_bytes(word)
        };
        let mut name = [0; Key::LEN];
        let at = offset_of!(Header, name);
        name.copy_from_slice(&bytes[at..at + Key::LEN]);
        Self {
            magic: u64_at(offset_of!(Header, magic)),
            version: u32_at(offset_of!(Header, version)),
            state: u32_at(offset_of!(Header, state)),
            implementation: u32_at(offset_of!(Header, implementation)),
            creator_pid: u32_at(offset_of!(Header, creator_pid)),
            creator_start: u64_at(offset_of!(Header, creator_start)),
            name: Key::from_bytes(name),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> Box<Header> {
        // SAFETY: every field is an atomic integer, for which all-zero bytes are valid.
        Box::new(unsafe { std::mem::zeroed() })
    }

    #[test]
    fn default_plan_splits_between_data_and_ring() {
        let (layout, capacity) = Layout::plan(4096, None).expect("plan");
        assert_eq!((capacity, layout.ring_capacity()), (1024, 1024));
        assert_eq!(layout.ring, 2560..4096);
        assert_eq!(layout.data, 256..2560);
        let (layout, capacity) = Layout::plan(1 << 20, None).expect("plan");
        assert_eq!(capacity, 1 << 18);
        assert_eq!(layout.ring.end - layout.ring.start, (1 << 18) + 512);
        assert!(layout.data.end - layout.data.start >= 1 << 18);
    }

    #[test]
    fn explicit_capacities_are_checked() {
        let (layout, capacity) = Layout::plan(8192, Some(128)).expect("small ring");
        assert_eq!((capacity, layout.ring_capacity()), (128, 128));
        assert_eq!(layout.ring, 8192 - 640..8192);
        assert!(Layout::plan(8192, Some(16)).is_err(), "below the smallest capacity");
        assert!(Layout::plan(8192, Some(1000)).is_err(), "not a power of two");
        assert!(Layout::plan(4096, Some(4096)).is_err(), "does not fit");
        assert!(Layout::plan(512, None).is_err(), "no room for any ring");
    }

    #[test]
    fn load_accepts_what_plan_stores_and_refuses_the_rest() {
        let (layout, _) = Layout::plan(8192, None).expect("plan");
        let header = header();
        layout.store(&header);
        assert_eq!(Layout::load(&header, 8192, "t").expect("load"), layout);
        layout.verify(&header, "t").expect("unchanged");
        assert!(matches!(Layout::load(&header, 4096, "t"), Err(Error::Corrupted { .. })));
        let cases: [(&AtomicU64, u64); 6] = [
            (&header.data_begin, 0),
            (&header.data_end, layout.ring.start + 8),
            (&header.ring_begin, layout.ring.start + 8),
            (&header.ring_end, 8192 + 4096),
            (&header.ring_begin, 8192 - 128),
            (&header.data_begin, u64::MAX),
        ];
        for (word, value) in cases {
            let saved = word.swap(value, Ordering::Relaxed);
            assert!(matches!(Layout::load(&header, 8192, "t"), Err(Error::Corrupted { .. })));
            assert!(matches!(layout.verify(&header, "t"), Err(Error::Corrupted { .. })));
            word.store(saved, Ordering::Relaxed);
        }
    }

    #[test]
    fn names_round_trip_and_snapshots_parse() {
        let header = header();
        let name = shmkit_name::Name::new("shmkit-seg-1-2-3").expect("name");
        header.store_name(&name.key());
        assert_eq!(header.load_name().to_name().ok(), Some(name));
        header.magic.store(MAGIC, Ordering::Relaxed);
        header.version.store(LAYOUT_VERSION, Ordering::Relaxed);
        header.creator_pid.store(77, Ordering::Relaxed);
        header.creator_start.store(12345, Ordering::Relaxed);
        let mut bytes = [0; HEADER_SIZE];
        // SAFETY: the header is 256 initialised bytes (atomics of integers) owned by this test.
        let raw = unsafe {
            std::slice::from_raw_parts(std::ptr::from_ref(&*header).cast::<u8>(), HEADER_SIZE)
        };
        bytes.copy_from_slice(raw);
        let snapshot = Snapshot::parse(&bytes);
        assert_eq!((snapshot.magic, snapshot.version), (MAGIC, LAYOUT_VERSION));
        assert_eq!((snapshot.creator_pid, snapshot.creator_start), (77, 12345));
        assert_eq!(snapshot.name, name.key());
    }
}
