//! Regions backed by a plain file at any path: persistent across reboots on a disk filesystem,
//! written back with `msync`.
//!
//! Mapping goes through [`MapOptions::map_fd`], not memmap2: a region shared with other processes
//! must sit at a random address, be unmapped by the crate's one RAII type
//! ([`Mapping`], which the join registry and segments build on) and never be seen as `&[u8]`,
//! which memmap2's `Mmap` derefs to and which is unsound while another process may write the
//! file. memmap2 fits only private, read-once views, which this module does not need.
//!
//! On hugetlbfs the page size is the mount's, found with `fstatfs`; elsewhere pages are 4 KiB.
//!
//! ```
//! use shmkit_os::file::FileRegion;
//! use shmkit_os::{MapOptions, SyncMode};
//!
//! let path = std::env::temp_dir().join(format!("shmkit-doc-file-{}", std::process::id()));
//! let region = FileRegion::create(&path, 4096, 0o600)?;
//! let mapping = region.map(&MapOptions::new())?;
//! mapping.write_at(0, b"on disk")?;
//! region.sync(&mapping, SyncMode::Sync)?;
//! assert_eq!(&std::fs::read(&path)?[..7], b"on disk");
//! drop(mapping);
//! region.remove()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use rustix::fs::{Mode, OFlags};
use shmkit_name::PageSize;

use crate::error::{Error, Result};
use crate::map::{Access, MapOptions, Mapping, SyncMode};

/// A file holding a region: its descriptor, path, access and page size.
///
/// Dropping it closes the file, which stays on disk until [`FileRegion::remove`].
#[derive(Debug)]
pub struct FileRegion {
    fd: OwnedFd,
    path: PathBuf,
    label: String,
    access: Access,
    page_size: PageSize,
}

impl FileRegion {
    /// `open(path, O_CREAT | O_EXCL | O_NOFOLLOW | O_RDWR)`, `fchmod(mode)`, `ftruncate(size)`—
    /// Creates the file `path` of `size` bytes with exactly `mode` (whatever the umask).
    ///
    /// An existing file (or symlink) is [`Error::AlreadyExists`], never reused. `size` must be a
    /// non-zero multiple of the page size (4 KiB, or the hugetlbfs mount's). The blocks are
    /// allocated now where the filesystem can (`fallocate`), so that a full disk is an error here
    /// rather than a `SIGBUS` on a later write through a mapping. On any failure the file is
    /// removed again.
    ///
    /// # Errors
    ///
    /// [`Error::AlreadyExists`]; [`Error::InvalidInput`] for a bad size or mode;
    /// [`Error::OutOfMemory`] when the filesystem is full; [`Error::Os`] for the rest.
    pub fn create(path: impl AsRef<Path>, size: usize, mode: u32) -> Result<Self> {
        let path = path.as_ref();
        let label = path.display().to_string();
        if mode > 0o7777 {
            return Err(Error::invalid("mode", format!("{mode:o} has bits beyond 0o7777")));
        }
        // Whole 4 KiB pages before touching the file system; a hugetlbfs mount's larger page
        // size can only be checked once the file is open.
        check_size(size, PageSize::Normal, &label)?;
        let flags =
            OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::RDWR | OFlags::CLOEXEC;
        let fd =
            rustix::fs::open(path, flags, Mode::from_raw_mode(mode & 0o777)).map_err(|errno| {
                if errno == rustix::io::Errno::EXIST {
                    Error::AlreadyExists { target: label.clone() }
                } else {
                    Error::os("open (create)", &label)(errno)
                }
            })?;
        let mut guard = RemoveOnDrop { path: Some(path) };
        let page_size = page_size_of(fd.as_fd(), &label)?;
        check_size(size, page_size, &label)?;
        rustix::fs::fchmod(&fd, Mode::from_raw_mode(mode)).map_err(Error::os("fchmod", &label))?;
        rustix::fs::ftruncate(&fd, size as u64).map_err(Error::os("ftruncate", &label))?;
        crate::map::allocate(fd.as_fd(), 0, size as u64, page_size, &label)?;
        guard.path = None;
        Ok(Self { fd, path: path.to_owned(), label, access: Access::ReadWrite, page_size })
    }

    /// `open(path, O_RDONLY or O_RDWR | O_NOFOLLOW)`—Opens an existing region file.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`]; [`Error::Corrupted`] if it is not a regular file or its size is not
    /// a non-zero multiple of its page size; [`Error::Os`] for the rest.
    pub fn open(path: impl AsRef<Path>, access: Access) -> Result<Self> {
        let path = path.as_ref();
        let label = path.display().to_string();
        let flags = match access {
            Access::ReadOnly => OFlags::RDONLY,
            Access::ReadWrite => OFlags::RDWR,
        };
        let fd = rustix::fs::open(path, flags | OFlags::NOFOLLOW | OFlags::CLOEXEC, Mode::empty())
            .map_err(Error::os_or_not_found("open", &label))?;
        let stat = rustix::fs::fstat(&fd).map_err(Error::os("fstat", &label))?;
        if rustix::fs::FileType::from_raw_mode(stat.st_mode) != rustix::fs::FileType::RegularFile {
            return Err(Error::Corrupted {
                target: label,
                reason: "not a regular file".to_owned(),
            });
        }
        let page_size = page_size_of(fd.as_fd(), &label)?;
        let region = Self { fd, path: path.to_owned(), label, access, page_size };
        region.size()?;
        Ok(region)
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The page size: the hugetlbfs mount's, else normal.
    pub fn page_size(&self) -> PageSize {
        self.page_size
    }

    /// The access the file was opened with.
    pub fn access(&self) -> Access {
        self.access
    }

    /// The descriptor.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// The file's size now, from `fstat` (another process may have grown it).
    ///
    /// # Errors
    ///
    /// [`Error::Corrupted`] if it is not a non-zero multiple of the page size; [`Error::Os`] if
    /// `fstat` fails.
    pub fn size(&self) -> Result<usize> {
        crate::map::fd_size(self.fd.as_fd(), self.page_size, &self.label)
    }

    /// Maps the whole file (`MAP_SHARED`) at a random address. The options'
    /// access may not exceed the access the file was opened with.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] for read-write on a file opened read-only; as
    /// [`MapOptions::map_fd`] otherwise.
    pub fn map(&self, options: &MapOptions) -> Result<Mapping> {
        if options.get_access() == Access::ReadWrite && self.access == Access::ReadOnly {
            return Err(Error::invalid(
                "access",
                format!("{} was opened read-only and cannot be mapped read-write", self.label),
            ));
        }
        options.map_fd(self.fd.as_fd(), self.size()?, self.page_size, &self.label)
    }

    /// `msync(mapping, MS_SYNC or MS_ASYNC)`—Writes `mapping`'s dirty pages back to the file:
    /// with [`SyncMode::Sync`] they are on the file when this returns, with [`SyncMode::Async`]
    /// the write-back is started. Either way other processes mapping the file see writes at
    /// once; this is about the file's contents on disk and for `read`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] if `mapping` is not a mapping of this file; [`Error::Os`] if
    /// `msync` fails (`EIO`: the disk refused the write).
    ///
    /// # References
    ///  - [Linux `msync(2)`](https://man7.org/linux/man-pages/man2/msync.2.html)
    #[doc(alias = "msync")]
    pub fn sync(&self, mapping: &Mapping, mode: SyncMode) -> Result<()> {
        self.check_mapping(mapping)?;
        mapping.sync(mode)
    }

    /// Grows the file to `new_size` bytes (`ftruncate`, blocks allocated as in
    /// [`FileRegion::create`]) and moves `mapping`, a whole mapping of this file, to cover it
    /// (`mremap`). The old contents stay; the new bytes are zero. Shrinking is refused: other
    /// processes may map the bytes that would go.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] for a smaller or unaligned size, a read-only file, or a mapping
    /// of something else; [`Error::OutOfMemory`] when the filesystem is full; [`Error::Os`] for
    /// the rest.
    pub fn grow(&mut self, mapping: &mut Mapping, new_size: usize) -> Result<()> {
        let size = self.size()?;
        self.check_mapping(mapping)?;
        check_size(new_size, self.page_size, &self.label)?;
        if self.access == Access::ReadOnly {
            return Err(Error::invalid(
                "access",
                format!("{} was opened read-only and cannot grow", self.label),
            ));
        }
        if new_size < size {
            return Err(Error::invalid(
                "size",
                format!(
                    "{new_size} bytes would shrink {} ({size} bytes); files only grow",
                    self.label
                ),
            ));
        }
        if mapping.len() != size {
            return Err(Error::invalid(
                "mapping",
                format!(
                    "{} bytes mapped of {} ({size} bytes): grow a whole mapping",
                    mapping.len(),
                    self.label
                ),
            ));
        }
        crate::map::grow_fd(self.fd.as_fd(), mapping, size as u64, new_size)
    }

    /// `unlink(path)`—Removes the file. Processes that have it mapped keep their mapping; the
    /// blocks are freed when the last one unmaps it.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`] if the path is gone already; [`Error::Os`] for the rest.
    #[doc(alias = "unlink")]
    pub fn remove(self) -> Result<()> {
        rustix::fs::unlink(&self.path).map_err(|errno| {
            if errno == rustix::io::Errno::NOENT {
                Error::NotFound { target: self.label.clone() }
            } else {
                Error::os("unlink", &self.label)(errno)
            }
        })
    }

    fn check_mapping(&self, mapping: &Mapping) -> Result<()> {
        if mapping.label() != self.label || mapping.page_size() != self.page_size {
            return Err(Error::invalid(
                "mapping",
                format!("{} is not a mapping of {}", mapping.label(), self.label),
            ));
        }
        Ok(())
    }
}

impl AsFd for FileRegion {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// The page size a file's mapping must use: the hugetlbfs mount's block size, else normal.
fn page_size_of(fd: BorrowedFd<'_>, label: &str) -> Result<PageSize> {
    let statfs = rustix::fs::fstatfs(fd).map_err(Error::os("fstatfs", label))?;
    crate::mounts::page_size_of_statfs(&statfs, label)
}

fn check_size(size: usize, page_size: PageSize, label: &str) -> Result<()> {
    if size == 0 || !size.is_multiple_of(page_size.bytes()) || i64::try_from(size).is_err() {
        return Err(Error::invalid(
            "size",
            format!(
                "{size} bytes for {label} is not a non-zero multiple of the {page_size} page size ({})",
                page_size.bytes()
            ),
        ));
    }
    Ok(())
}

/// Removes a half-made file unless disarmed.
struct RemoveOnDrop<'a> {
    path: Option<&'a Path>,
}

impl Drop for RemoveOnDrop<'_> {
    fn drop(&mut self) {
        if let Some(path) = self.path {
            let _ = rustix::fs::unlink(path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_checked() {
        assert!(check_size(0, PageSize::Normal, "x").is_err());
        assert!(check_size(4097, PageSize::Normal, "x").is_err());
        assert!(check_size(4096, PageSize::Huge, "x").is_err());
        assert!(check_size(8192, PageSize::Normal, "x").is_ok());
    }
}
