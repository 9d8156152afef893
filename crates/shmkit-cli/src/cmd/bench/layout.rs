//! The bench region: a control block, then one ring per transport measured.
//!
//! ```text
//! offset  what
//! 0       control block (4 KiB): little-endian u64 words, written once by the creator
//!           0   magic b"SHMKBNCH" (stored last, Release: the block is complete once it is there)
//!           8   layout version (1)
//!           16  creator pid
//!           24  creator start time (clock ticks after boot, /proc/PID/stat field 22)
//!           32  number of rings (at most 8)
//!           40  per ring, 4 words: kind (1 spsc, 2 bytes, 3 broadcast), offset, bytes, message size
//! 4096    the rings, each at a 4 KiB-aligned offset
//! ```
//!
//! The creator pid and its start time let `shmkit gc` tell a region whose bench died (killed
//! with `SIGKILL`, where no guard runs) from one in use, even after the pid is reused.
//!
//! This module places the rings in the mapping: the one place of `bench` with `unsafe`, because
//! `shmkit-ring` takes raw pointers (it knows nothing of mappings). Each handle borrows the
//! [`Mapping`] it lives in, so it cannot outlive it.
#![allow(unsafe_code, reason = "shmkit-ring's attach and init take raw pointers into the mapping")]

use std::num::NonZeroU32;
use std::ptr::NonNull;
use std::sync::atomic::Ordering;

use shmkit_os::Mapping;
use shmkit_ring::Plain;
use shmkit_ring::broadcast::{Broadcast, BroadcastConsumer, BroadcastProducer, Flow};
use shmkit_ring::bytes::{ByteConsumer, ByteProducer, ByteRing};
use shmkit_ring::spsc::{Consumer, Producer, SpscRing};

use crate::error::{CliError, Result};

/// `b"SHMKBNCH"` as a little-endian u64: the first word of a bench region.
pub const MAGIC: u64 = u64::from_le_bytes(*b"SHMKBNCH");
/// The control block's layout version.
pub const VERSION: u64 = 1;
/// Bytes of the control block; the first ring starts here.
pub const CONTROL_SIZE: usize = 4096;
/// Rings a control block can describe.
pub const MAX_RINGS: usize = 8;
/// The prefix of every bench region's name (then the creator's pid and a counter).
pub const NAME_PREFIX: &str = "shmkit-bench-";

/// Word offsets in the control block.
pub const OFFSET_MAGIC: usize = 0;
/// The layout version.
pub const OFFSET_VERSION: usize = 8;
/// The creator's pid.
pub const OFFSET_CREATOR_PID: usize = 16;
/// The creator's start time.
pub const OFFSET_CREATOR_START: usize = 24;
/// The number of rings.
pub const OFFSET_RING_COUNT: usize = 32;
/// The first ring entry.
pub const OFFSET_RINGS: usize = 40;

/// The ring kinds, as the control block and `shmkit-ring`'s header number them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RingKind {
    /// The SPSC element ring.
    Spsc = 1,
    /// The byte ring.
    Bytes = 2,
    /// The broadcast ring.
    Broadcast = 3,
}

impl RingKind {
    /// The kind numbered `value`.
    pub fn from_u64(value: u64) -> Option<Self> {
        match value {
            1 => Some(Self::Spsc),
            2 => Some(Self::Bytes),
            3 => Some(Self::Broadcast),
            _ => None,
        }
    }

    /// `spsc`, `bytes`, `broadcast`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Spsc => "spsc",
            Self::Bytes => "bytes",
            Self::Broadcast => "broadcast",
        }
    }
}

/// Where one ring lives in the region.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Placed {
    /// Its kind.
    pub kind: RingKind,
    /// Its offset from the region's start.
    pub offset: usize,
    /// Its bytes.
    pub len: usize,
    /// The size of one message, in bytes.
    pub message_size: u64,
}

/// Writes the control block (magic last) into a fresh region's mapping.
pub fn write_control(mapping: &Mapping, creator_start: u64, rings: &[Placed]) -> Result<()> {
    if rings.len() > MAX_RINGS {
        return Err(CliError::runtime(format!("at most {MAX_RINGS} rings in a bench region")));
    }
    let store = |offset: usize, value: u64| -> Result<()> {
        mapping.atomic_u64(offset)?.store(value, Ordering::Relaxed);
        Ok(())
    };
    store(OFFSET_VERSION, VERSION)?;
    store(OFFSET_CREATOR_PID, u64::from(std::process::id()))?;
    store(OFFSET_CREATOR_START, creator_start)?;
    store(OFFSET_RING_COUNT, rings.len() as u64)?;
    for (index, ring) in rings.iter().enumerate() {
        let at = OFFSET_RINGS + index * 32;
        store(at, ring.kind as u64)?;
        store(at + 8, ring.offset as u64)?;
        store(at + 16, ring.len as u64)?;
        store(at + 24, ring.message_size)?;
    }
    mapping.atomic_u64(OFFSET_MAGIC)?.store(MAGIC, Ordering::Release);
    Ok(())
}

/// The start of `placed` in `mapping`, checked to lie inside it.
fn range(mapping: &Mapping, placed: Placed) -> Result<NonNull<u8>> {
    let end = placed.offset.checked_add(placed.len);
    if end.is_none_or(|end| end > mapping.len()) {
        return Err(CliError::runtime(format!(
            "the {} ring at {}+{} lies outside the {}-byte region",
            placed.kind.name(),
            placed.offset,
            placed.len,
            mapping.len()
        )));
    }
    NonNull::new(mapping.as_ptr().wrapping_add(placed.offset))
        .ok_or_else(|| CliError::runtime("the region is mapped at address 0"))
}

/// This process's owner id for ring roles: its pid.
pub fn owner() -> NonZeroU32 {
    NonZeroU32::new(std::process::id()).unwrap_or(NonZeroU32::MIN)
}

fn ring_error(kind: RingKind, error: shmkit_ring::Error) -> CliError {
    CliError::runtime(format!("{} ring: {error}", kind.name()))
}

// Every function below has the same safety argument. `range` checked that `offset..offset + len`
// lies in the mapping, which is valid for reads and writes for the returned handle's lifetime
// (the handle borrows it), and whose length comes from the OS. The bench region is private to the
// bench and its consumer: its ring bytes are only ever accessed through shmkit-ring, in either
// process. `init` runs before the consumer is started, so nobody else touches the bytes then.

/// Creates an SPSC ring of `capacity` values of `T` at `placed`.
pub fn init_spsc<T: Plain>(mapping: &Mapping, placed: Placed, capacity: usize) -> Result<()> {
    let ptr = range(mapping, placed)?;
    // SAFETY: `range` checked the bytes lie in `mapping`, which the result borrows (see above).
    unsafe { SpscRing::<T>::init(ptr, placed.len, capacity) }
        .map_err(|error| ring_error(placed.kind, error))
}

/// The producer of the SPSC ring at `placed`.
pub fn spsc_producer<T: Plain>(mapping: &Mapping, placed: Placed) -> Result<Producer<'_, T>> {
    let ptr = range(mapping, placed)?;
    // SAFETY: `range` checked the bytes lie in `mapping`, which the result borrows (see above).
    unsafe { Producer::attach(ptr, placed.len, owner()) }
        .map_err(|error| ring_error(placed.kind, error))
}

/// The consumer of the SPSC ring at `placed`.
pub fn spsc_consumer<T: Plain>(mapping: &Mapping, placed: Placed) -> Result<Consumer<'_, T>> {
    let ptr = range(mapping, placed)?;
    // SAFETY: `range` checked the bytes lie in `mapping`, which the result borrows (see above).
    unsafe { Consumer::attach(ptr, placed.len, owner()) }
        .map_err(|error| ring_error(placed.kind, error))
}

/// Creates a byte ring of `capacity` data bytes at `placed`.
pub fn init_bytes(mapping: &Mapping, placed: Placed, capacity: usize) -> Result<()> {
    let ptr = range(mapping, placed)?;
    // SAFETY: `range` checked the bytes lie in `mapping`, which the result borrows (see above).
    unsafe { ByteRing::init(ptr, placed.len, capacity) }
        .map_err(|error| ring_error(placed.kind, error))
}

/// The producer of the byte ring at `placed`.
pub fn bytes_producer(mapping: &Mapping, placed: Placed) -> Result<ByteProducer<'_>> {
    let ptr = range(mapping, placed)?;
    // SAFETY: `range` checked the bytes lie in `mapping`, which the result borrows (see above).
    unsafe { ByteProducer::attach(ptr, placed.len, owner()) }
        .map_err(|error| ring_error(placed.kind, error))
}

/// The consumer of the byte ring at `placed`.
pub fn bytes_consumer(mapping: &Mapping, placed: Placed) -> Result<ByteConsumer<'_>> {
    let ptr = range(mapping, placed)?;
    // SAFETY: `range` checked the bytes lie in `mapping`, which the result borrows (see above).
    unsafe { ByteConsumer::attach(ptr, placed.len, owner()) }
        .map_err(|error| ring_error(placed.kind, error))
}

/// Creates a broadcast ring of `capacity` slots of `T`, with credit for one consumer, at
/// `placed`: the bench checks every message, so its consumer must never be lapped.
pub fn init_broadcast<T: Plain>(mapping: &Mapping, placed: Placed, capacity: usize) -> Result<()> {
    let ptr = range(mapping, placed)?;
    // SAFETY: `range` checked the bytes lie in `mapping`, which the result borrows (see above).
    unsafe { Broadcast::<T>::init(ptr, placed.len, capacity, BROADCAST_FLOW) }
        .map_err(|error| ring_error(placed.kind, error))
}

/// The bench's broadcast flow: credit for its one consumer.
pub const BROADCAST_FLOW: Flow = Flow::Credit { consumers: 1 };

/// The producer of the broadcast ring at `placed`.
pub fn broadcast_producer<T: Plain>(
    mapping: &Mapping,
    placed: Placed,
) -> Result<BroadcastProducer<'_, T>> {
    let ptr = range(mapping, placed)?;
    // SAFETY: `range` checked the bytes lie in `mapping`, which the result borrows (see above).
    unsafe { BroadcastProducer::attach(ptr, placed.len, owner()) }
        .map_err(|error| ring_error(placed.kind, error))
}

/// The credit consumer of the broadcast ring at `placed`.
pub fn broadcast_consumer<T: Plain>(
    mapping: &Mapping,
    placed: Placed,
) -> Result<BroadcastConsumer<'_, T>> {
    let ptr = range(mapping, placed)?;
    // SAFETY: `range` checked the bytes lie in `mapping`, which the result borrows (see above).
    unsafe { BroadcastConsumer::attach_credit(ptr, placed.len, owner()) }
        .map_err(|error| ring_error(placed.kind, error))
}
