//! Every region on the host, whoever made it: POSIX shared memory in `/dev/shm`, files on
//! shmkit's hugetlbfs mounts (and, with [`list_all`], on every other hugetlbfs mount), and System
//! V segments; which processes map a given file ([`mappers`]); and, for many regions in one pass,
//! their mappers, NUMA placement and page size ([`usage`]).
//!
//! memfds, plain files elsewhere and anonymous memory have no place to be listed from; they show
//! only in the `/proc/PID/maps` of the processes that map them.
//!
//! ```
//! use shmkit_os::list::{RegionKind, list, mappers};
//! use shmkit_name::{Name, PageSize};
//! use shmkit_os::{MapOptions, Region, RegionOptions};
//!
//! let name = Name::new(&format!("doc-list-{}", std::process::id()))?;
//! RegionOptions::new().create(&name, 1)?;
//! let listed = list()?;
//! let ours = listed.iter().find(|region| region.region_name == Some(name)).ok_or("not listed")?;
//! assert_eq!((ours.kind, ours.size), (RegionKind::Posix, 4096));
//!
//! let path = ours.path.clone().ok_or("no path")?;
//! let mapping = Region::open(&name, None, shmkit_os::Access::ReadWrite)?.map(&MapOptions::new())?;
//! assert_eq!(mappers(&path)?, [std::process::id()]);
//! drop(mapping);
//! shmkit_os::unlink(&name, PageSize::Normal)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use shmkit_name::{Name, PageSize};

use crate::error::{Error, Result};
use crate::mounts;
use crate::region::STAGING_PREFIX;
use crate::sysv::{self, SysvKey};

pub mod usage;

/// Which backend a listed region lives in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RegionKind {
    /// A file in `/dev/shm` (`shm_open`).
    Posix,
    /// A file on shmkit's hugetlbfs mount for that page size.
    Hugetlbfs(PageSize),
    /// A file on a hugetlbfs mount other than shmkit's (such as `/dev/hugepages`): only
    /// [`list_all`] lists these.
    ForeignHugetlbfs {
        /// The mount's page size in bytes (the file's `st_blksize`), which may be one shmkit has
        /// no [`PageSize`] for (64 KiB on arm64, say).
        page_size_bytes: u64,
    },
    /// A System V segment.
    SysV {
        /// Its key; `None` for a private segment or one marked for removal.
        key: Option<SysvKey>,
        /// Its id.
        id: i32,
    },
}

/// One region found by [`list`] or [`list_all`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListedRegion {
    /// The backend.
    pub kind: RegionKind,
    /// The file name (any bytes, lossily decoded), or for System V the key as `ipcs` shows it
    /// (`0x04f53e89`).
    pub name: String,
    /// The name as a shmkit [`Name`], when it is a valid one (files only).
    pub region_name: Option<Name>,
    /// The file, for POSIX and hugetlbfs regions.
    pub path: Option<PathBuf>,
    /// The size in bytes.
    pub size: u64,
    /// The page size, where it is known (not for System V segments, which do not record it, nor
    /// for a foreign hugetlbfs mount whose page size shmkit has no [`PageSize`] for).
    pub page_size: Option<PageSize>,
    /// The permission bits.
    pub mode: u32,
    /// The owner.
    pub uid: u32,
    /// The group.
    pub gid: u32,
    /// How many attachments a System V segment has (`None` for files; see [`mappers`]).
    pub attach_count: Option<u64>,
}

/// Every region of every listable backend: regular files in `/dev/shm`, files on the `.huge` and
/// `.gigantic` hugetlbfs mounts under the shmkit base (page sizes without a mount are skipped),
/// and every System V segment of this IPC namespace. Sorted by backend, then name.
///
/// Files that vanish while being listed are left out.
///
/// # Errors
///
/// [`Error::Os`] if a folder or `/proc/sysvipc/shm` cannot be read; [`Error::Corrupted`] if the
/// latter does not parse.
pub fn list() -> Result<Vec<ListedRegion>> {
    list_with(false)
}

/// [`list`], and the regular files of every other hugetlbfs mount of `/proc/self/mounts` (such as
/// `/dev/hugepages`), as [`RegionKind::ForeignHugetlbfs`] with the mount's page size: shmkit never
/// creates regions there, but other programs do. A mount reached by two paths is listed once; one
/// this user may not read is left out. Sorted by backend (foreign files after shmkit's hugetlbfs
/// files, by path), then name.
///
/// ```
/// use shmkit_os::list::{RegionKind, list, list_all};
///
/// let is_foreign =
///     |region: &shmkit_os::ListedRegion| matches!(region.kind, RegionKind::ForeignHugetlbfs { .. });
/// assert!(!list()?.iter().any(is_foreign));
/// assert!(list_all()?.iter().filter(|region| is_foreign(region)).all(|region| region.path.is_some()));
/// # Ok::<(), shmkit_os::Error>(())
/// ```
///
/// # Errors
///
/// As [`list`], and [`Error::Os`] if `/proc/self/mounts` cannot be read.
pub fn list_all() -> Result<Vec<ListedRegion>> {
    list_with(true)
}

fn list_with(foreign: bool) -> Result<Vec<ListedRegion>> {
    let mut out = list_dir(Path::new(mounts::POSIX_SHM_DIR), Folder::Posix)?;
    let mut ours = Vec::new();
    for page_size in [PageSize::Huge, PageSize::Gigantic] {
        match mounts::region_dir(page_size) {
            Ok(dir) => {
                out.extend(list_dir(&dir, Folder::Shmkit(page_size))?);
                ours.push(dir);
            }
            Err(Error::NoHugetlbfsMount { .. }) => {}
            Err(error) => return Err(error),
        }
    }
    if foreign {
        out.extend(foreign_hugetlbfs_files(&ours)?);
    }
    // A kernel built without SysV IPC has no /proc/sysvipc/shm: nothing to list there.
    let segments = match sysv::list_sysv() {
        Err(Error::Os { source, .. }) if source.kind() == io::ErrorKind::NotFound => Vec::new(),
        other => other?,
    };
    for info in segments {
        out.push(ListedRegion {
            kind: RegionKind::SysV { key: info.key, id: info.id },
            name: format!("0x{:08x}", info.key.map_or(0, SysvKey::get).cast_unsigned()),
            region_name: None,
            path: None,
            size: info.size,
            page_size: None,
            mode: info.mode,
            uid: info.uid,
            gid: info.gid,
            attach_count: Some(info.attach_count),
        });
    }
    out.sort_by(|a, b| sort_key(a).cmp(&sort_key(b)));
    Ok(out)
}

fn sort_key(region: &ListedRegion) -> (u8, Option<PageSize>, Option<&Path>, &str, i32) {
    match region.kind {
        RegionKind::Posix => (0, None, None, &region.name, 0),
        RegionKind::Hugetlbfs(page_size) => (1, Some(page_size), None, &region.name, 0),
        RegionKind::ForeignHugetlbfs { .. } => (2, None, region.path.as_deref(), &region.name, 0),
        RegionKind::SysV { id, .. } => (3, None, None, &region.name, id),
    }
}

/// The files of the hugetlbfs mounts other than shmkit's folders `ours`.
fn foreign_hugetlbfs_files(ours: &[PathBuf]) -> Result<Vec<ListedRegion>> {
    // Compared as the kernel resolves them: a mount may be reached through a symlink.
    let mut seen: Vec<PathBuf> = ours.iter().filter_map(|dir| fs::canonicalize(dir).ok()).collect();
    let mut out = Vec::new();
    for mount in mounts::hugetlbfs_mounts()? {
        let Ok(dir) = fs::canonicalize(&mount.path) else { continue };
        if seen.contains(&dir) {
            continue;
        }
        seen.push(dir.clone());
        match list_dir(&dir, Folder::Foreign(mount.page_size)) {
            Ok(found) => out.extend(found),
            // Not readable by this user (or unmounted meanwhile): nothing to list there.
            Err(Error::Os { .. }) => {}
            Err(error) => return Err(error),
        }
    }
    Ok(out)
}

/// The folders regions are listed from.
#[derive(Clone, Copy)]
enum Folder {
    /// `/dev/shm`.
    Posix,
    /// shmkit's hugetlbfs mount of that page size.
    Shmkit(PageSize),
    /// Another hugetlbfs mount, with its page size where shmkit has a [`PageSize`] for it.
    Foreign(Option<PageSize>),
}

/// The regular files of `dir` (symlinks and folders are not regions).
fn list_dir(dir: &Path, folder: Folder) -> Result<Vec<ListedRegion>> {
    let label = dir.display();
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).map_err(Error::io("read_dir", &label))? {
        let entry = entry.map_err(Error::io("read_dir", &label))?;
        // Does not follow symlinks: a link is not a region, whatever it points to.
        let meta = match entry.metadata() {
            Ok(meta) => meta,
            Err(error) if error.kind() == io::ErrorKind::NotFound => continue,
            Err(error) => return Err(Error::io("stat", entry.path().display())(error)),
        };
        if !meta.file_type().is_file() {
            continue;
        }
        let name = entry.file_name().to_string_lossy().into_owned();
        // A region being created is not a region yet.
        if name.starts_with(STAGING_PREFIX) {
            continue;
        }
        let (kind, page_size) = match folder {
            // POSIX semaphores (`sem.NAME`) share /dev/shm but are not shared memory regions.
            Folder::Posix if name.starts_with("sem.") => continue,
            Folder::Posix => (RegionKind::Posix, Some(PageSize::Normal)),
            Folder::Shmkit(page_size) => (RegionKind::Hugetlbfs(page_size), Some(page_size)),
            Folder::Foreign(page_size) => {
                (RegionKind::ForeignHugetlbfs { page_size_bytes: meta.blksize() }, page_size)
            }
        };
        out.push(ListedRegion {
            kind,
            region_name: Name::new(&name).ok(),
            name,
            path: Some(entry.path()),
            size: meta.size(),
            page_size,
            mode: meta.mode() & 0o7777,
            uid: meta.uid(),
            gid: meta.gid(),
            attach_count: None,
        });
    }
    Ok(out)
}

/// The pids of the processes that map the file `path` (a region in `/dev/shm` or on hugetlbfs,
/// or any file), found in every `/proc/PID/maps` (a file removed since it was mapped shows
/// there with ` (deleted)`, and still counts). Sorted, each pid once.
///
/// Processes whose maps cannot be read (another user's, without privilege) or that exit while
/// being read are left out, so the answer may be short for an unprivileged caller. System V
/// segments have [`ListedRegion::attach_count`] instead. For many regions at once, with their
/// NUMA placement and page size, see [`usage::scan`].
///
/// # Errors
///
/// [`Error::Os`] if `/proc` cannot be read.
pub fn mappers(path: &Path) -> Result<Vec<u32>> {
    let target = usage::Target::file(path);
    let mut found = usage::scan_with(std::slice::from_ref(&target), false)?;
    Ok(found.remove(&target).map(|usage| usage.pids).unwrap_or_default())
}
