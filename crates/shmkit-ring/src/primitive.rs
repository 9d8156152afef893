//! The atomics this crate uses, from `core` normally and from loom under `--cfg loom`, so that
//! `cargo xtask loom` checks the same protocol code the library runs. Every other module imports
//! atomics from here, never from `core` directly.

#[cfg(not(loom))]
#[allow(unused_imports, reason = "the shim offers what the protocols may need")]
pub(crate) use core::sync::atomic::{AtomicU32, AtomicU64, Ordering, fence};

#[cfg(loom)]
#[allow(unused_imports, reason = "the shim offers what the protocols may need")]
pub(crate) use loom::sync::atomic::{AtomicU32, AtomicU64, Ordering, fence};

/// The CPU's spin-wait hint (loom: a yield, so that models with spin loops terminate).
#[allow(dead_code, reason = "used by the waiting loops of the primitives")]
#[inline]
pub(crate) fn spin_hint() {
    #[cfg(not(loom))]
    core::hint::spin_loop();
    #[cfg(loom)]
    loom::thread::yield_now();
}
