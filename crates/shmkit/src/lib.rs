//! shmkit: named shared memory on Linux.
//!
//! This crate only re-exports the layer crates, each behind a feature of the same name, so that
//! a user can depend on `shmkit` and pick layers, or depend on one layer crate directly.
//!
//! | feature | crate | what it gives |
//! |---|---|---|
//! | `name` | [`shmkit-name`](shmkit_name) | validated names, 40-byte keys, page sizes |
//! | `slotmap` | [`shmkit-slotmap`](shmkit_slotmap) | fixed-capacity pointer-free map |
//! | `os` | [`shmkit-os`](shmkit_os) | regions (POSIX, hugetlbfs, `SysV`, memfd, files), mappings, NUMA |
//! | `join` | [`shmkit-join`](shmkit_join) | the per-process join registry: refcounted joins, hooks, queries |
//! | `sync` | [`shmkit-sync`](shmkit_sync) | robust process-shared mutex, `SysV` semaphore lock, rwlock, futex events, wait strategies |
//! | `ring` | [`shmkit-ring`](shmkit_ring) | SPSC, byte-stream and broadcast rings and a seqlock, placed in shared bytes |
//! | `segment` | [`shmkit-segment`](shmkit_segment) | peer-to-peer segments: header, common data, byte ring, lock, descriptor passing |
//!
//! ```
//! # #[cfg(feature = "name")] {
//! use shmkit::name::{Name, PageSize};
//!
//! let name: Name = "orders.v1".parse()?;
//! assert_eq!(name.posix_name().as_str(), "/orders.v1");
//! assert_eq!(PageSize::Huge.bytes(), 2 * 1024 * 1024);
//! # }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![no_std]
#![forbid(unsafe_code)]

#[cfg(feature = "name")]
pub use shmkit_name as name;

#[cfg(feature = "slotmap")]
pub use shmkit_slotmap as slotmap;

#[cfg(feature = "os")]
pub use shmkit_os as os;

#[cfg(feature = "join")]
pub use shmkit_join as join;

#[cfg(feature = "sync")]
pub use shmkit_sync as sync;

#[cfg(feature = "ring")]
pub use shmkit_ring as ring;

#[cfg(feature = "segment")]
pub use shmkit_segment as segment;

/// The README's examples, compiled and run as doc tests so that they stay true.
#[cfg(all(
    doctest,
    feature = "name",
    feature = "slotmap",
    feature = "os",
    feature = "join",
    feature = "ring"
))]
#[doc = include_str!("../../../README.md")]
pub struct ReadmeDoctests;
