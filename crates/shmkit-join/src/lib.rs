//! `shmkit-join`: the per-process join registry.
//!
//! [`join`] maps a named region once per process and counts the joins of it; the last [`Join`]
//! to leave unmaps it. Hooks ([`join_with`], [`Join::leave_with`]) run after the first map and
//! before the last unmap, without the registry's lock, so they may build nested topologies by
//! joining other regions; a hook that joins the region whose join is in progress on its own thread
//! gets [`Error::Cycle`], never a deadlock. Queries ([`query_by_name`], [`query_by_handle`],
//! [`query_by_range`]) return copies of the record; [`joins`] copies them all under the lock.
//! Memory obtained elsewhere can be registered with [`join_anonymous`].
//!
//! The registry is a `static` fixed slot map of 256 slots (255 joins) behind a spin lock: it
//! allocates nothing.
//!
//! After `fork`, the child has a copy of the registry and of every mapping; its joins are its
//! own, and leaving them unmaps only the child's copies. Fork only while no other thread is inside
//! a registry call (the lock could be copied held, as with any lock).
//!
//! ```
//! use shmkit_join::{JoinOptions, join, query_by_name};
//! use shmkit_name::{Name, PageSize};
//! use shmkit_os::{Access, RegionOptions};
//!
//! let name = Name::new(&format!("doc-lib-join-{}", std::process::id()))?;
//! RegionOptions::new().create(&name, 4)?;
//! let joined = join(&name, Access::ReadWrite, &JoinOptions::new().map_options(shmkit_os::MapOptions::new()))?;
//! assert_eq!(query_by_name(&name).map(|info| info.count), Some(1));
//! joined.leave()?;
//! assert!(query_by_name(&name).is_none());
//! shmkit_os::unlink(&name, PageSize::Normal)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(unsafe_op_in_unsafe_fn)]
#![forbid(unsafe_code)]

mod error;
mod index;
#[cfg(not(loom))]
mod join;
mod primitive;
mod registry;

pub use error::{Error, HookError, Result};
#[cfg(not(loom))]
pub use join::{
    Join, JoinOptions, global, join, join_anonymous, join_with, joins, leave_anonymous,
    query_by_handle, query_by_name, query_by_range,
};
pub use registry::{CAPACITY, JoinInfo, Registry, Snapshot};
