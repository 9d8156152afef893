//! Every region on the host, whoever made it: POSIX shared memory in `/dev/shm`, files on
//! shmkit's hugetlbfs mounts, and System V segments; and which processes map a given file.
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
use crate::sysv::{self, SysvKey};

/// Which backend a listed region lives in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RegionKind {
    /// A file in `/dev/shm` (`shm_open`).
    Posix,
    /// A file on shmkit's hugetlbfs mount for that page size.
    Hugetlbfs(PageSize),
    /// A System V segment.
    SysV {
        /// Its key; `None` for a private segment or one marked for removal.
        key: Option<SysvKey>,
        /// Its id.
        id: i32,
    },
}

/// One region found by [`list`].
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
    /// The page size, where it is known (not for System V segments, which do not record it).
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
    let mut out = list_dir(Path::new(mounts::POSIX_SHM_DIR), RegionKind::Posix, PageSize::Normal)?;
    for page_size in [PageSize::Huge, PageSize::Gigantic] {
        match mounts::region_dir(page_size) {
            Ok(dir) => out.extend(list_dir(&dir, RegionKind::Hugetlbfs(page_size), page_size)?),
            Err(Error::NoHugetlbfsMount { .. }) => {}
            Err(error) => return Err(error),
        }
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

fn sort_key(region: &ListedRegion) -> (u8, Option<PageSize>, &str, i32) {
    match region.kind {
        RegionKind::Posix => (0, None, &region.name, 0),
        RegionKind::Hugetlbfs(page_size) => (1, Some(page_size), &region.name, 0),
        RegionKind::SysV { id, .. } => (2, None, &region.name, id),
    }
}

/// The regular files of `dir` (symlinks and folders are not regions).
fn list_dir(dir: &Path, kind: RegionKind, page_size: PageSize) -> Result<Vec<ListedRegion>> {
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
        // A region being created is not a region yet; POSIX semaphores (`sem.NAME`) share
        // /dev/shm but are not shared memory regions.
        if name.starts_with(crate::region::STAGING_PREFIX)
            || (kind == RegionKind::Posix && name.starts_with("sem."))
        {
            continue;
        }
        out.push(ListedRegion {
            kind,
            region_name: Name::new(&name).ok(),
            name,
            path: Some(entry.path()),
            size: meta.size(),
            page_size: Some(page_size),
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
/// segments have [`ListedRegion::attach_count`] instead.
///
/// # Errors
///
/// [`Error::Os`] if `/proc` cannot be read.
pub fn mappers(path: &Path) -> Result<Vec<u32>> {
    // Maps show the path the kernel resolved, so compare with the same.
    let path = fs::canonicalize(path).unwrap_or_else(|_| path.to_owned());
    // The kernel escapes newlines in the path column as `\012`.
    let wanted = path.to_string_lossy().replace('\n', "\\012");
    let mut pids = Vec::new();
    for entry in fs::read_dir("/proc").map_err(Error::io("read_dir", "/proc"))? {
        let Ok(entry) = entry else { continue };
        let Some(pid) = entry.file_name().to_str().and_then(|name| name.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(maps) = fs::read_to_string(entry.path().join("maps")) else { continue };
        if maps
            .lines()
            .any(|line| maps_line_path(line).is_some_and(|mapped| same_path(mapped, &wanted)))
        {
            pids.push(pid);
        }
    }
    pids.sort_unstable();
    Ok(pids)
}

/// The path column of a `/proc/PID/maps` line: everything after the five fixed fields
/// (address, perms, offset, device, inode); `None` for an anonymous mapping.
fn maps_line_path(line: &str) -> Option<&str> {
    let mut rest = line;
    for _ in 0..5 {
        rest = rest.trim_start();
        let end = rest.find(char::is_whitespace)?;
        rest = &rest[end..];
    }
    let path = rest.trim_start();
    (!path.is_empty()).then_some(path)
}

fn same_path(mapped: &str, wanted: &str) -> bool {
    mapped == wanted || mapped.strip_suffix(" (deleted)") == Some(wanted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_path_column() {
        let line =
            "7f0000000000-7f0000200000 rw-s 00000000 00:2d 1234                       /dev/shm/a b";
        assert_eq!(maps_line_path(line), Some("/dev/shm/a b"));
        let deleted = "7f0000000000-7f0000001000 rw-s 00000000 00:01 77   /memfd:x (deleted)";
        assert_eq!(maps_line_path(deleted), Some("/memfd:x (deleted)"));
        assert_eq!(maps_line_path("7f0000000000-7f0000001000 ---p 00000000 00:00 0 "), None);
        assert_eq!(maps_line_path("garbage"), None);
        assert!(same_path("/dev/shm/x (deleted)", "/dev/shm/x"));
        assert!(same_path("/dev/shm/x", "/dev/shm/x"));
        assert!(!same_path("/dev/shm/xy", "/dev/shm/x"));
    }
}
