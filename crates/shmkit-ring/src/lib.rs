//! `shmkit-ring`: lock-free primitives placed in any shared byte range (a joined region, a memfd,
//! a test buffer) by one process and opened from the same bytes by another.
//!
//! Every primitive starts with a [`Header`] (magic, layout version, kind, sizes, publication
//! state). The peer is not trusted: every position and length read from shared memory is checked
//! before use, and a bad one is [`Error::Corrupted`], never undefined behaviour, an out-of-bounds
//! access or a panic. The core is `no_std` and makes no system call; the `std` feature adds
//! blocking calls with a wait strategy of `shmkit-sync`.
//!
//! - [`spsc`]: the SPSC element ring of `T: Plain` values, with zero-copy batch chunks and
//!   single-holder producer and consumer roles that can be taken over from a dead process.
//! - [`bytes`]: the byte-stream ring of variable-length records, each one contiguous slice (a
//!   padding marker at the wrap), appended by copy or in place and read by copy or in place.
//! - [`broadcast`]: one producer that never blocks, any number of consumers that detect being
//!   lapped and count exactly what they lost; optional credit flow control for reliable delivery.
//! - [`seqlock`]: one writer publishes a `T: Plain` value, any number of readers read it without
//!   ever blocking the writer; a torn read is detected and retried.
//! - [`inspect`]: what any of these says of itself (kind, layout version, sizes, positions, role
//!   holders), read without taking part, from bytes that may be mapped read-only.
#![no_std]
#![deny(unsafe_op_in_unsafe_fn)]

#[cfg(feature = "std")]
extern crate std;

pub mod broadcast;
pub mod bytes;
#[cfg(loom)]
mod construct;
mod error;
pub mod header;
#[cfg(not(loom))]
pub mod inspect;
mod pad;
mod plain;
mod primitive;
mod role;
pub mod seqlock;
pub mod spsc;

pub use error::{Error, Result};
pub use header::Header;
pub use pad::CachePadded;
pub use plain::Plain;
