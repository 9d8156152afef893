//! `shmkit-os`: the one crate of shmkit that talks to the kernel about memory.
//!
//! - [`RegionOptions::create`], [`Region::open`], [`info`], [`unlink`]: named regions, on normal
//!   pages in `/dev/shm` (POSIX shm, interoperable with any `shm_open("/NAME")` user) or on huge
//!   and gigantic pages in hugetlbfs (`BASE/.huge/NAME`, `BASE/.gigantic/NAME`).
//! - [`MapOptions`] and [`Mapping`]: maps at a page-aligned random address (guard pages on request),
//!   with `mlock`, `MADV_DONTDUMP`, `MADV_HUGEPAGE`, populate, `mprotect`, `msync`, grow; unmapped
//!   on drop.
//! - [`SysvSegment`] (`shmget`/`shmat`, visible to `ipcs -m`), [`Memfd`] (sealable, for passing
//!   to a peer), [`FileRegion`] (any path, `msync`), [`AnonHugePages`] (one process's huge pages,
//!   released whole or in part), [`lock::lock_all`] (`mlockall`), [`list::list`] (every region
//!   of every backend; [`list::list_all`] adds other programs' hugetlbfs mounts),
//!   [`list::mappers`] (who maps a file) and [`list::usage`] (mappers, NUMA placement and page
//!   size of many regions in one pass over `/proc`).
//! - [`numa`]: topology from sysfs, placement with `set_mempolicy`/`mbind`, verification with
//!   `move_pages`.
//!
//! Where the `unsafe` syscalls are: [`map`] (the `mmap` family for every mapping), [`anon`]
//! (private huge-page mappings), [`sysv`] (`shmat`/`shmdt`/`shmctl`, through libc) and
//! `numa/sys.rs` (the NUMA calls, through libc). Safe calls are direct rustix calls in the module
//! that needs them.
//!
//! ```
//! use shmkit_name::{Name, PageSize};
//! use shmkit_os::{Access, MapOptions, Region, RegionOptions};
//!
//! let name = Name::new(&format!("doc-lib-{}", std::process::id()))?;
//! RegionOptions::new().page_size(PageSize::Normal).create(&name, 2)?;
//! let mapping = Region::open(&name, Some(PageSize::Normal), Access::ReadWrite)?.map(&MapOptions::new())?;
//! mapping.write_at(0, b"hi")?;
//! assert_eq!(mapping.len(), 8192);
//! shmkit_os::unlink(&name, PageSize::Normal)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(unsafe_op_in_unsafe_fn)]

pub mod anon;
mod error;
pub mod file;
pub mod list;
pub mod lock;
pub mod map;
pub mod memfd;
pub mod mounts;
pub mod numa;
mod region;
pub mod sysv;

pub use anon::AnonHugePages;
pub use error::{Error, Result};
pub use file::FileRegion;
pub use list::{ListedRegion, RegionKind};
pub use map::{Access, MapOptions, Mapping, SyncMode};
pub use memfd::{Memfd, Seals};
pub use region::{
    DEFAULT_MODE, Placement, Region, RegionInfo, RegionOptions, STAGING_PREFIX, StagingName, info,
    path_of, unlink,
};
pub use sysv::{SysvInfo, SysvKey, SysvSegment};
