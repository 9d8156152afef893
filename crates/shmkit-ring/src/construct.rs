//! Under loom, the atomics of a shared layout are objects of the model, not bytes: an `init` must
//! build them in place before storing to them. Outside loom any bytes are valid atomics, and
//! nothing here exists.

use crate::header::Header;
use crate::primitive::{AtomicU32, AtomicU64};

/// A header of fresh (zero) atomics.
pub(crate) fn header() -> Header {
    Header {
        magic: AtomicU64::new(0),
        version: AtomicU32::new(0),
        kind: AtomicU32::new(0),
        capacity: AtomicU64::new(0),
        element_size: AtomicU64::new(0),
        total_size: AtomicU64::new(0),
        state: AtomicU32::new(0),
        reserved: core::array::from_fn(|_| AtomicU32::new(0)),
    }
}
