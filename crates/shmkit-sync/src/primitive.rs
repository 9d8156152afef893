//! The atomics this crate uses, from `core` normally and from loom under `--cfg loom`, so that
//! `cargo xtask loom` checks the same protocol code the library runs. Every other module imports
//! atomics from here, never from `core` directly. The spin and yield hints come from here too:
//! loom must see a spinning thread give way, or it explores the spin loop forever.

#[cfg(not(loom))]
#[allow(unused_imports, reason = "the shim offers what the protocols may need")]
pub(crate) use core::sync::atomic::{AtomicU32, AtomicU64, Ordering, fence};

#[cfg(loom)]
#[allow(unused_imports, reason = "the shim offers what the protocols may need")]
pub(crate) use loom::sync::atomic::{AtomicU32, AtomicU64, Ordering, fence};

/// The CPU's pause hint inside a spin loop (a yield to loom's scheduler under loom).
#[cfg(not(loom))]
pub(crate) use core::hint::spin_loop;
#[cfg(loom)]
pub(crate) use loom::hint::spin_loop;

#[cfg(loom)]
pub(crate) use loom::thread::yield_now;
/// Gives the CPU to another thread (loom's scheduler under loom).
#[cfg(not(loom))]
pub(crate) use std::thread::yield_now;
