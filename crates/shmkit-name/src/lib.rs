//! Names for shared memory regions, and what the OS calls them.
//!
//! - [`Name`]: a validated region name (1 to 39 bytes of `[0-9A-Za-z_.-]`, starting with a
//!   letter or digit); constructing one is the only validation point.
//! - [`Key`]: a name zero-padded to 40 bytes, the form kept in shared memory, with
//!   [`Key::hash64`], a hash every process computes the same way.
//! - [`PageSize`]: normal (4 KiB), huge (2 MiB) or gigantic (1 GiB) pages.
//! - [`Name::posix_name`], [`Name::sysv_key`], [`Name::hugetlbfs_path`]: the name as each OS
//!   backing spells it.
//!
//! `no_std`, no allocation, no unsafe code; everything that can be is a `const fn`.
//!
//! # Examples
//!
//! ```
//! use shmkit_name::{DEFAULT_HUGETLBFS_BASE, Key, Name, PageSize};
//!
//! let name: Name = "orders.v1".parse()?;
//! assert_eq!(name.posix_name().as_str(), "/orders.v1");
//!
//! let page_size: PageSize = "2M".parse()?;
//! let path = name.hugetlbfs_path(DEFAULT_HUGETLBFS_BASE, page_size);
//! assert_eq!(path.map(|path| path.to_string()).as_deref(), Some("/mnt/.shmkit/.huge/orders.v1"));
//!
//! // In shared memory a name is a fixed 40-byte key, checked again when read back.
//! let key = Key::from(name);
//! assert_eq!(key.to_name()?, name);
//! let bucket = key.hash64() & 255;
//! # let _ = bucket;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
// Unit tests use std's `format!` and `String` to check messages; the library itself is no_std.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

mod key;
mod name;
mod page_size;
mod paths;

pub use key::Key;
pub use name::{Name, NameError};
pub use page_size::{InputExcerpt, PageSize, PageSizeError};
pub use paths::{DEFAULT_HUGETLBFS_BASE, HUGETLBFS_BASE_ENV, HugetlbfsPath, PosixName};
