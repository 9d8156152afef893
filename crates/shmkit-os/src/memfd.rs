//! Anonymous shared memory files (`memfd_create`): regions without a name in any filesystem,
//! shared by passing the file descriptor (inheritance, `SCM_RIGHTS`, `/proc/PID/fd/N`), and gone
//! when the last descriptor and mapping are.
//!
//! Seals (`F_ADD_SEALS`) let the creator promise a peer that the file will not shrink under its
//! mappings (which would turn its accesses into `SIGBUS`), not grow, or not change at all. Linux
//! 6.18 allows sealing of `MFD_HUGETLB` memfds too (hugetlbfs has supported seals since 4.16).
//!
//! ```
//! use shmkit_name::PageSize;
//! use shmkit_os::MapOptions;
//! use shmkit_os::memfd::{Memfd, Seals};
//!
//! let memfd = Memfd::create("doc-memfd", 8192, PageSize::Normal, true)?;
//! memfd.seal(Seals::SHRINK | Seals::GROW | Seals::SEAL)?;
//! assert!(memfd.seals()?.contains(Seals::SHRINK | Seals::GROW));
//! let mapping = memfd.map(&MapOptions::new())?;
//! mapping.write_at(0, b"sealed size, free contents")?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fmt;
use std::ops::{BitOr, BitOrAssign};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use rustix::fs::{MemfdFlags, SealFlags};
use shmkit_name::PageSize;

use crate::error::{Error, Result};
use crate::map::{MapOptions, Mapping, check_len, out_of_memory_or_os};

/// The longest name `memfd_create` takes (249 bytes: 255 less the `memfd:` prefix).
pub const MAX_LABEL_LEN: usize = 249;

/// A set of `F_SEAL_*` seals on a memfd.
///
/// ```
/// use shmkit_os::memfd::Seals;
///
/// let seals = Seals::SHRINK | Seals::GROW;
/// assert!(seals.contains(Seals::GROW));
/// assert!(!seals.contains(Seals::WRITE));
/// assert_eq!(format!("{seals}"), "shrink|grow");
/// ```
#[doc(alias = "F_SEAL_SEAL")]
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Seals(u32);

impl Seals {
    /// No seal.
    pub const NONE: Self = Self(0);
    /// `F_SEAL_SEAL`: no more seals may be added.
    pub const SEAL: Self = Self(SealFlags::SEAL.bits());
    /// `F_SEAL_SHRINK`: the file may not shrink, so a peer's mapping never loses pages.
    pub const SHRINK: Self = Self(SealFlags::SHRINK.bits());
    /// `F_SEAL_GROW`: the file may not grow.
    pub const GROW: Self = Self(SealFlags::GROW.bits());
    /// `F_SEAL_WRITE`: the contents may not change; refused while any writable shared mapping
    /// exists.
    pub const WRITE: Self = Self(SealFlags::WRITE.bits());
    /// `F_SEAL_FUTURE_WRITE`: no new writable mapping or `write`, while existing writable
    /// mappings keep writing (a producer keeps its mapping, consumers get read-only ones).
    pub const FUTURE_WRITE: Self = Self(SealFlags::FUTURE_WRITE.bits());

    const NAMES: [(Self, &'static str); 5] = [
        (Self::SEAL, "seal"),
        (Self::SHRINK, "shrink"),
        (Self::GROW, "grow"),
        (Self::WRITE, "write"),
        (Self::FUTURE_WRITE, "future-write"),
    ];

    /// Whether every seal of `other` is in `self`.
    pub const fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }

    /// Whether there is no seal.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The raw `F_SEAL_*` bits.
    pub const fn bits(self) -> u32 {
        self.0
    }

    fn flags(self) -> SealFlags {
        SealFlags::from_bits_retain(self.0)
    }
}

impl BitOr for Seals {
    type Output = Self;

    fn bitor(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }
}

impl BitOrAssign for Seals {
    fn bitor_assign(&mut self, other: Self) {
        self.0 |= other.0;
    }
}

impl fmt::Display for Seals {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut rest = self.0;
        let mut first = true;
        for (seal, name) in Self::NAMES {
            if self.contains(seal) {
                f.write_str(if first { "" } else { "|" })?;
                f.write_str(name)?;
                first = false;
                rest &= !seal.0;
            }
        }
        match (rest, first) {
            (0, true) => f.write_str("none"),
            (0, false) => Ok(()),
            (rest, true) => write!(f, "{rest:#x}"),
            (rest, false) => write!(f, "|{rest:#x}"),
        }
    }
}

impl fmt::Debug for Seals {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Seals({self})")
    }
}

/// A memfd: an anonymous file on normal pages (tmpfs) or on huge or gigantic pages (hugetlbfs).
///
/// Dropping it closes the descriptor; the memory lives on while a mapping or another descriptor
/// does.
#[derive(Debug)]
pub struct Memfd {
    fd: OwnedFd,
    page_size: PageSize,
    label: String,
}

impl Memfd {
    /// `memfd_create(label, MFD_CLOEXEC [| MFD_ALLOW_SEALING] [| MFD_HUGETLB | MFD_HUGE_2MB/1GB])`
    /// then `ftruncate(size)`—Creates a memfd of `size` bytes on pages of `page_size`.
    ///
    /// `label` is only a name for debugging: it shows as `/memfd:LABEL (deleted)` in
    /// `/proc/PID/maps` and need not be unique. `size` must be a non-zero multiple of the page
    /// size. Without `allow_sealing` the file starts with `F_SEAL_SEAL`, so no seal can ever be
    /// added. Huge and gigantic pages are allocated now (`fallocate`), so a shortage is
    /// [`Error::OutOfMemory`] here rather than in a peer's `mmap`; normal pages come on first
    /// touch, as for any tmpfs file.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] for a bad label or size; [`Error::OutOfMemory`] when the pages are
    /// not there; [`Error::Os`] for what the kernel refuses.
    ///
    /// # References
    ///  - [Linux `memfd_create(2)`](https://man7.org/linux/man-pages/man2/memfd_create.2.html)
    #[doc(alias = "memfd_create")]
    pub fn create(
        label: &str,
        size: usize,
        page_size: PageSize,
        allow_sealing: bool,
    ) -> Result<Self> {
        if label.len() > MAX_LABEL_LEN || label.contains('\0') {
            return Err(Error::invalid(
                "memfd label",
                format!("{label:?} must be at most {MAX_LABEL_LEN} bytes, without NUL"),
            ));
        }
        let display = format!("memfd {label:?}");
        check_len(size, page_size, &display)?;
        let mut flags = MemfdFlags::CLOEXEC;
        if allow_sealing {
            flags |= MemfdFlags::ALLOW_SEALING;
        }
        flags |= match page_size {
            PageSize::Normal => MemfdFlags::empty(),
            PageSize::Huge => MemfdFlags::HUGETLB | MemfdFlags::HUGE_2MB,
            PageSize::Gigantic => MemfdFlags::HUGETLB | MemfdFlags::HUGE_1GB,
        };
        let fd =
            rustix::fs::memfd_create(label, flags).map_err(Error::os("memfd_create", &display))?;
        rustix::fs::ftruncate(&fd, size as u64).map_err(Error::os("ftruncate", &display))?;
        if page_size != PageSize::Normal {
            rustix::fs::fallocate(&fd, rustix::fs::FallocateFlags::empty(), 0, size as u64)
                .map_err(|errno| {
                    out_of_memory_or_os(errno, "fallocate", &display, size, page_size)
                })?;
        }
        Ok(Self { fd, page_size, label: display })
    }

    /// Takes over a memfd descriptor (received from a peer, or inherited), whose pages are
    /// `page_size`. Its size comes from `fstat`.
    ///
    /// # Errors
    ///
    /// [`Error::Corrupted`] if its size is not a non-zero multiple of `page_size`; [`Error::Os`]
    /// if `fstat` fails.
    pub fn from_fd(fd: OwnedFd, page_size: PageSize) -> Result<Self> {
        let label = describe_fd(fd.as_fd());
        let memfd = Self { fd, page_size, label };
        memfd.size()?;
        Ok(memfd)
    }

    /// Gives up the descriptor, for passing to a peer.
    pub fn into_fd(self) -> OwnedFd {
        self.fd
    }

    /// The descriptor.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// The page size backing the file.
    pub fn page_size(&self) -> PageSize {
        self.page_size
    }

    /// How errors name this memfd.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// The file's size now, from `fstat` (a peer may have resized an unsealed memfd).
    ///
    /// # Errors
    ///
    /// [`Error::Corrupted`] if the size is not a non-zero multiple of the page size;
    /// [`Error::Os`] if `fstat` fails.
    pub fn size(&self) -> Result<usize> {
        crate::map::fd_size(self.fd.as_fd(), self.page_size, &self.label)
    }

    /// `fcntl(fd, F_ADD_SEALS, seals)`—Adds seals; seals are never removed.
    ///
    /// # Errors
    ///
    /// [`Error::Os`] with `EPERM` once `F_SEAL_SEAL` is set (or the memfd was made without
    /// sealing), `EBUSY` for `F_SEAL_WRITE` while a writable shared mapping exists.
    ///
    /// # References
    ///  - [Linux `fcntl(2)`, File seals](https://man7.org/linux/man-pages/man2/fcntl.2.html)
    #[doc(alias = "F_ADD_SEALS")]
    pub fn seal(&self, seals: Seals) -> Result<()> {
        rustix::fs::fcntl_add_seals(&self.fd, seals.flags())
            .map_err(Error::os("fcntl(F_ADD_SEALS)", &self.label))
    }

    /// `fcntl(fd, F_GET_SEALS)`—The seals in place.
    ///
    /// # Errors
    ///
    /// [`Error::Os`] if the descriptor is not of a file that supports seals.
    ///
    /// # References
    ///  - [Linux `fcntl(2)`, File seals](https://man7.org/linux/man-pages/man2/fcntl.2.html)
    #[doc(alias = "F_GET_SEALS")]
    pub fn seals(&self) -> Result<Seals> {
        let flags = rustix::fs::fcntl_get_seals(&self.fd)
            .map_err(Error::os("fcntl(F_GET_SEALS)", &self.label))?;
        Ok(Seals(flags.bits()))
    }

    /// Maps the whole file (size from `fstat`) at a random address.
    ///
    /// # Errors
    ///
    /// [`Error::Corrupted`] for a size that does not fit the page size; [`Error::OutOfMemory`]
    /// when huge pages run out; [`Error::MemlockLimit`] if locking was asked and refused;
    /// [`Error::Os`] (`EPERM`) for a writable mapping of a write-sealed memfd.
    pub fn map(&self, options: &MapOptions) -> Result<Mapping> {
        options.map_fd(self.fd.as_fd(), self.size()?, self.page_size, &self.label)
    }
}

impl AsFd for Memfd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// What `/proc/self/fd/N` says the descriptor is (`/memfd:LABEL (deleted)`), for errors.
fn describe_fd(fd: BorrowedFd<'_>) -> String {
    let raw = fd.as_raw_fd();
    std::fs::read_link(format!("/proc/self/fd/{raw}")).map_or_else(
        |_| format!("memfd (fd {raw})"),
        |target| format!("{} (fd {raw})", target.display()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seals_display() {
        assert_eq!(Seals::NONE.to_string(), "none");
        assert_eq!((Seals::SEAL | Seals::WRITE).to_string(), "seal|write");
        assert_eq!(Seals(0x100 | 2).to_string(), "shrink|0x100");
        assert_eq!(Seals(0x100).to_string(), "0x100");
        assert!(Seals::NONE.is_empty());
    }

    #[test]
    fn labels_are_checked() {
        let long = "x".repeat(MAX_LABEL_LEN + 1);
        assert!(matches!(
            Memfd::create(&long, 4096, PageSize::Normal, false),
            Err(Error::InvalidInput { .. })
        ));
        assert!(matches!(
            Memfd::create("a\0b", 4096, PageSize::Normal, false),
            Err(Error::InvalidInput { .. })
        ));
        assert!(matches!(
            Memfd::create("ok", 100, PageSize::Normal, false),
            Err(Error::InvalidInput { .. })
        ));
    }
}
