//! Named regions: POSIX shared memory (`/dev/shm/NAME`, normal pages) and hugetlbfs files
//! (`BASE/.huge/NAME`, `BASE/.gigantic/NAME`), one concept whatever the page size.

use std::fmt;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use rustix::fs::{Mode, OFlags};
use shmkit_name::{Name, PageSize};

use crate::error::{Error, Result};
use crate::map::{Access, MapOptions, Mapping, out_of_memory_or_os};
use crate::mounts;
use crate::numa::{self, CpuList, Topology};

/// Where the pages of a new region go.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Placement {
    /// Wherever the kernel's policy for this thread puts them.
    #[default]
    Anywhere,
    /// All pages on one NUMA node (strict: a shortage there is an error, not a fallback).
    Node(u32),
    /// A multi-part region: one consecutive part per entry of the list, on the node of that CPU,
    /// with the pages split as evenly as possible (earlier parts take the remainder).
    Cpus(CpuList),
}

/// Options for [`RegionOptions::create`]: page size, NUMA placement, permission bits.
///
/// ```
/// use shmkit_name::{Name, PageSize};
/// use shmkit_os::{Placement, RegionOptions};
///
/// let name = Name::new(&format!("doc-create-{}", std::process::id()))?;
/// let info = RegionOptions::new().page_size(PageSize::Normal).placement(Placement::Node(0)).mode(0o640).create(&name, 4)?;
/// assert_eq!((info.page_count, info.size, info.mode), (4, 16384, 0o640));
/// shmkit_os::unlink(&name, PageSize::Normal)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[must_use]
pub struct RegionOptions {
    page_size: PageSize,
    placement: Placement,
    mode: u32,
}

impl Default for RegionOptions {
    fn default() -> Self {
        Self::new()
    }
}

/// The default permission bits of a new region: the owner only.
pub const DEFAULT_MODE: u32 = 0o600;

impl RegionOptions {
    /// Normal pages, placed anywhere, mode 0600.
    pub const fn new() -> Self {
        Self { page_size: PageSize::Normal, placement: Placement::Anywhere, mode: DEFAULT_MODE }
    }

    /// The page size: normal regions live in `/dev/shm`, huge and gigantic ones in hugetlbfs.
    pub const fn page_size(mut self, page_size: PageSize) -> Self {
        self.page_size = page_size;
        self
    }

    /// Where the pages go.
    pub fn placement(mut self, placement: Placement) -> Self {
        self.placement = placement;
        self
    }

    /// The permission bits, honoured exactly whatever the umask (at most `0o7777`).
    pub const fn mode(mut self, mode: u32) -> Self {
        self.mode = mode;
        self
    }

    /// Creates the region `name` of `page_count` pages.
    ///
    /// The region is built under a hidden staging name in its folder (created with
    /// `O_CREAT | O_EXCL | O_NOFOLLOW`), given the exact mode, sized, placed, and every page is
    /// allocated and faulted in, so that a shortage is an error here rather than a `SIGBUS` in
    /// whoever touches the page later; placement is verified page by page. Only then is it renamed
    /// to its name with `RENAME_NOREPLACE`, so other processes never see a half-made region, and
    /// an existing region is [`Error::AlreadyExists`], never replaced. On any failure the staging
    /// file is removed: nothing is left behind.
    ///
    /// Pages are not left locked: locking belongs to each mapping ([`MapOptions::lock`]), and the
    /// creating mapping is gone when this returns.
    pub fn create(&self, name: &Name, page_count: u64) -> Result<RegionInfo> {
        let label = display_path(name, self.page_size);
        let size = region_size(page_count, self.page_size, &label)?;
        if self.mode > 0o7777 {
            return Err(Error::invalid("mode", format!("{:o} has bits beyond 0o7777", self.mode)));
        }
        let parts = plan_parts(&self.placement, page_count)?;
        let dir = mounts::region_dir(self.page_size)?;
        let final_path = dir.join(name.as_str());
        // Cheap early refusal, so an existing name costs no page faults; the rename below is what
        // makes the refusal exact.
        if std::fs::symlink_metadata(&final_path).is_ok() {
            return Err(Error::AlreadyExists { target: label });
        }
        let staging = Staging::create(&dir, name, self.mode)?;
        let fd = &staging.fd;
        rustix::fs::fchmod(fd, Mode::from_raw_mode(self.mode))
            .map_err(Error::os("fchmod", &label))?;
        rustix::fs::ftruncate(fd, size).map_err(Error::os("ftruncate", &label))?;
        let len = usize::try_from(size).map_err(|_| {
            Error::invalid("page count", format!("{size} bytes do not fit this address space"))
        })?;
        let mapping = MapOptions::new().map_fd(fd.as_fd(), len, self.page_size, &label)?;
        fault_in(fd, &mapping, &parts, &label)?;
        drop(mapping);
        let info = stat_region(fd.as_fd(), *name, self.page_size, final_path.clone())?;
        staging.publish(&final_path, &label)?;
        Ok(info)
    }
}

/// A region under construction: a hidden file beside where it will live, removed on drop unless
/// published. Its name starts with a dot, which no region name can, so it never collides with a
/// region and listings skip it.
struct Staging {
    fd: OwnedFd,
    path: Option<PathBuf>,
}

/// The prefix of the hidden staging file a region is built in ([`RegionOptions::create`]) before
/// it is published under its name; the whole file name is a [`StagingName`].
pub const STAGING_PREFIX: &str = ".shmkit-new-";

/// The name of a staging file, `.shmkit-new-PID-N-NAME`: the process creating the region, its
/// count of staging files made before this one, and the region's name. A staging file left behind
/// by a creator that died can be told, and removed, by its pid.
///
/// ```
/// use shmkit_name::Name;
/// use shmkit_os::StagingName;
///
/// let staging = StagingName::parse(".shmkit-new-4242-7-orders.v1").ok_or("not a staging file")?;
/// assert_eq!((staging.pid, staging.counter, staging.name), (4242, 7, Name::new("orders.v1")?));
/// assert_eq!(staging.to_string(), ".shmkit-new-4242-7-orders.v1");
/// assert_eq!(StagingName::parse("orders.v1"), None);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StagingName {
    /// The pid of the process that is (or was) creating the region.
    pub pid: u32,
    /// How many staging files that process had made before this one.
    pub counter: u64,
    /// The name the region is published under.
    pub name: Name,
}

impl StagingName {
    /// The parts of the file name `file_name`, or `None` if it is not a staging file's name (no
    /// [`STAGING_PREFIX`], a bad pid or counter, or an invalid region name).
    pub fn parse(file_name: &str) -> Option<Self> {
        let rest = file_name.strip_prefix(STAGING_PREFIX)?;
        let (pid, rest) = rest.split_once('-')?;
        let (counter, name) = rest.split_once('-')?;
        Some(Self {
            pid: pid.parse().ok()?,
            counter: counter.parse().ok()?,
            name: Name::new(name).ok()?,
        })
    }
}

impl fmt::Display for StagingName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{STAGING_PREFIX}{}-{}-{}", self.pid, self.counter, self.name)
    }
}

impl Staging {
    fn create(dir: &Path, name: &Name, mode: u32) -> Result<Self> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let counter = COUNTER.fetch_add(1, Ordering::Relaxed);
        let staging = StagingName { pid: std::process::id(), counter, name: *name };
        let path = dir.join(staging.to_string());
        let flags =
            OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::RDWR | OFlags::CLOEXEC;
        let fd = rustix::fs::open(&path, flags, Mode::from_raw_mode(mode & 0o777))
            .map_err(Error::os("open (create)", path.display()))?;
        Ok(Self { fd, path: Some(path) })
    }

    /// Renames the staging file to `target` unless something is there already.
    fn publish(mut self, target: &Path, label: &str) -> Result<()> {
        let Some(path) = self.path.take() else { return Ok(()) };
        let result = rustix::fs::renameat_with(
            rustix::fs::CWD,
            &path,
            rustix::fs::CWD,
            target,
            rustix::fs::RenameFlags::NOREPLACE,
        );
        if let Err(errno) = result {
            let _ = rustix::fs::unlink(&path);
            return Err(if errno == rustix::io::Errno::EXIST {
                Error::AlreadyExists { target: label.to_owned() }
            } else {
                Error::os("renameat2 (RENAME_NOREPLACE)", label)(errno)
            });
        }
        Ok(())
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if let Some(path) = &self.path {
            let _ = rustix::fs::unlink(path);
        }
    }
}

/// One consecutive part of a region and the node it belongs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Part {
    first_page: u64,
    pages: u64,
    node: Option<u32>,
}

/// Splits `page_count` pages over the placement's parts, checking every node and CPU against the
/// machine before anything is created.
fn plan_parts(placement: &Placement, page_count: u64) -> Result<Vec<Part>> {
    let nodes: Vec<Option<u32>> = match placement {
        Placement::Anywhere => vec![None],
        Placement::Node(node) => {
            Topology::read()?.node(*node)?;
            vec![Some(*node)]
        }
        Placement::Cpus(cpus) => {
            if cpus.is_empty() {
                return Err(Error::invalid("CPU list", "empty: name at least one CPU"));
            }
            Topology::read()?.nodes_of(cpus)?.into_iter().map(Some).collect()
        }
    };
    Ok(split_pages(page_count, &nodes))
}

/// `page_count` pages split over `nodes.len()` consecutive parts as evenly as possible; the first
/// `page_count % parts` parts take one page more. Parts that would be empty are left out.
fn split_pages(page_count: u64, nodes: &[Option<u32>]) -> Vec<Part> {
    let parts = nodes.len() as u64;
    let (base, extra) = (page_count / parts, page_count % parts);
    let mut first_page = 0;
    let mut out = Vec::with_capacity(nodes.len());
    for (index, node) in nodes.iter().enumerate() {
        let pages = base + u64::from((index as u64) < extra);
        if pages > 0 {
            out.push(Part { first_page, pages, node: *node });
        }
        first_page += pages;
    }
    out
}

/// Allocates every page of every part on its node and checks where each landed.
fn fault_in(fd: &OwnedFd, mapping: &Mapping, parts: &[Part], label: &str) -> Result<()> {
    let page = mapping.page_size().bytes();
    for part in parts {
        let offset = part.first_page * page as u64;
        let len = part.pages * page as u64;
        let start = mapping.as_ptr().wrapping_add(offset as usize);
        // The thread policy steers the allocation done by fallocate; mbind sets the policy of
        // this mapping (on tmpfs also the file's shared policy) for the faults that follow.
        let thread_policy = part.node.map(numa::bind_thread_to_node).transpose()?;
        if let Some(node) = part.node {
            // SAFETY: `start..start+len` is a part of `mapping`, which we own and which no
            // reference points into.
            unsafe { numa::bind_range(start, len as usize, node, true) }?;
        }
        rustix::fs::fallocate(fd, rustix::fs::FallocateFlags::empty(), offset, len).map_err(
            |errno| {
                out_of_memory_or_os(errno, "fallocate", label, len as usize, mapping.page_size())
            },
        )?;
        // Touch each page so it is in our page tables: placement is verified through them.
        for index in 0..part.pages as usize {
            // SAFETY: inside `mapping` (index < pages of this part), readable, and the page exists
            // in the file (fallocate succeeded), so the read cannot fault.
            unsafe { start.add(index * page).read_volatile() };
        }
        if let Some(node) = part.node {
            numa::verify_placement(label, start, len as usize, page, node)?;
        }
        if let Some(policy) = thread_policy {
            policy.restore()?;
        }
    }
    Ok(())
}

fn region_size(page_count: u64, page_size: PageSize, label: &str) -> Result<u64> {
    if page_count == 0 {
        return Err(Error::invalid(
            "page count",
            format!("0 pages for {label}: a region has at least one page"),
        ));
    }
    page_count
        .checked_mul(page_size.bytes() as u64)
        .filter(|size| i64::try_from(*size).is_ok())
        .ok_or_else(|| {
            Error::invalid(
                "page count",
                format!("{page_count} {page_size} pages for {label} overflow a file size (off_t)"),
            )
        })
}

/// What the OS says of a region: sizes come from `fstat`, never from the region's contents.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegionInfo {
    /// The region's name.
    pub name: Name,
    /// Its page size.
    pub page_size: PageSize,
    /// How many pages it holds.
    pub page_count: u64,
    /// Its size in bytes (`page_count * page_size`).
    pub size: u64,
    /// Its file: `/dev/shm/NAME`, or under a hugetlbfs mount.
    pub path: PathBuf,
    /// Its permission bits.
    pub mode: u32,
    /// Its owner.
    pub uid: u32,
    /// Its group.
    pub gid: u32,
}

/// `fstat` of an open region at `path`: a regular file whose size is whole pages.
fn stat_region(
    fd: BorrowedFd<'_>,
    name: Name,
    page_size: PageSize,
    path: PathBuf,
) -> Result<RegionInfo> {
    let stat = rustix::fs::fstat(fd).map_err(Error::os("fstat", path.display()))?;
    if rustix::fs::FileType::from_raw_mode(stat.st_mode) != rustix::fs::FileType::RegularFile {
        return Err(Error::Corrupted {
            target: path.display().to_string(),
            reason: "not a regular file".to_owned(),
        });
    }
    region_info_from(name, page_size, stat.st_size, stat.st_mode, stat.st_uid, stat.st_gid, path)
}

fn region_info_from(
    name: Name,
    page_size: PageSize,
    size: i64,
    mode: u32,
    uid: u32,
    gid: u32,
    path: PathBuf,
) -> Result<RegionInfo> {
    let size = u64::try_from(size).map_err(|_| Error::Corrupted {
        target: display_path(&name, page_size),
        reason: format!("negative size {size}"),
    })?;
    let page = page_size.bytes() as u64;
    if !size.is_multiple_of(page) {
        return Err(Error::Corrupted {
            target: display_path(&name, page_size),
            reason: format!("its size {size} is not a multiple of its page size {page}"),
        });
    }
    Ok(RegionInfo {
        name,
        page_size,
        page_count: size / page,
        size,
        path,
        mode: mode & 0o7777,
        uid,
        gid,
    })
}

/// Where a region of that name and page size lives (whether or not it exists).
pub fn path_of(name: &Name, page_size: PageSize) -> PathBuf {
    match page_size.hugetlbfs_dir() {
        None => {
            // One allocation: a join opens by this path, and its cost is meant to be one `open`.
            let mut path = PathBuf::with_capacity(mounts::POSIX_SHM_DIR.len() + 1 + name.len());
            path.push(mounts::POSIX_SHM_DIR);
            path.push(name.as_str());
            path
        }
        Some(sub) => mounts::base_dir().join(sub).join(name.as_str()),
    }
}

fn display_path(name: &Name, page_size: PageSize) -> String {
    path_of(name, page_size).display().to_string()
}

/// Removes the region `name` of `page_size` (`shm_unlink` or `unlink`). Processes that have it
/// mapped keep their mapping; the memory is freed when the last one unmaps it.
pub fn unlink(name: &Name, page_size: PageSize) -> Result<()> {
    let label = display_path(name, page_size);
    let result = match page_size {
        PageSize::Normal => rustix::shm::unlink(name.posix_name().as_c_str()),
        PageSize::Huge | PageSize::Gigantic => rustix::fs::unlink(path_of(name, page_size)),
    };
    result.map_err(|errno| {
        if errno == rustix::io::Errno::NOENT {
            Error::NotFound { target: label.clone() }
        } else {
            Error::os("unlink", &label)(errno)
        }
    })
}

/// What the OS says of region `name`. With `page_size` `None`, looks in `/dev/shm` and in the
/// huge and gigantic mounts that exist; a name found in two of them is an error asking for the
/// page size, rather than a guess. A page size whose mount is missing is
/// [`Error::NoHugetlbfsMount`]. A file whose size is not a multiple of
/// its page size is [`Error::Corrupted`].
pub fn info(name: &Name, page_size: Option<PageSize>) -> Result<RegionInfo> {
    let candidates: &[PageSize] = match page_size {
        Some(ref one) => std::slice::from_ref(one),
        None => &PageSize::ALL,
    };
    let mut found: Option<RegionInfo> = None;
    for &candidate in candidates {
        let dir = match mounts::region_dir(candidate) {
            Ok(dir) => dir,
            // Asked for this page size: say the mount is missing, with what to do about it.
            Err(error @ Error::NoHugetlbfsMount { .. }) if page_size.is_some() => {
                return Err(error);
            }
            Err(Error::NoHugetlbfsMount { .. }) => continue,
            Err(error) => return Err(error),
        };
        let path = dir.join(name.as_str());
        let meta = match std::fs::symlink_metadata(&path) {
            Ok(meta) => meta,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => continue,
            Err(error) => return Err(Error::io("stat", path.display())(error)),
        };
        if !meta.file_type().is_file() {
            return Err(Error::Corrupted {
                target: path.display().to_string(),
                reason: "not a regular file".to_owned(),
            });
        }
        let size = i64::try_from(meta.size()).unwrap_or(i64::MAX);
        let this =
            region_info_from(*name, candidate, size, meta.mode(), meta.uid(), meta.gid(), path)?;
        if let Some(first) = &found {
            return Err(Error::invalid(
                "page size",
                format!(
                    "region {name} exists with {} and with {} pages ({} and {}): name the page size",
                    first.page_size,
                    candidate,
                    first.path.display(),
                    this.path.display()
                ),
            ));
        }
        found = Some(this);
    }
    found.ok_or_else(|| Error::NotFound {
        target: match page_size {
            Some(page_size) => display_path(name, page_size),
            None => format!("region {name} (looked in every page size)"),
        },
    })
}

/// An open region: its file descriptor and what the OS said of it when opened.
///
/// ```
/// use shmkit_name::{Name, PageSize};
/// use shmkit_os::{Access, MapOptions, Region, RegionOptions};
///
/// let name = Name::new(&format!("doc-open-{}", std::process::id()))?;
/// RegionOptions::new().create(&name, 1)?;
/// let region = Region::open(&name, None, Access::ReadWrite)?;
/// let mapping = region.map(&MapOptions::new())?;
/// mapping.atomic_u64(0)?.store(7, std::sync::atomic::Ordering::Release);
/// shmkit_os::unlink(&name, PageSize::Normal)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Region {
    fd: OwnedFd,
    info: RegionInfo,
    access: Access,
}

impl Region {
    /// Opens region `name` for `access`, with the page size given or, with `None`, the first
    /// found in the order normal (`/dev/shm`), huge, gigantic.
    ///
    /// Unlike [`info`], which looks everywhere and reports a name that exists with two page sizes,
    /// `open` stops at the first it finds: it is the first half of a join, whose cost should be
    /// one `open` and one `fstat`. A file in a hugetlbfs folder counts only if that folder really
    /// is a hugetlbfs mount of that page size (`fstatfs` of the open file).
    pub fn open(name: &Name, page_size: Option<PageSize>, access: Access) -> Result<Self> {
        let candidates: &[PageSize] = match page_size {
            Some(ref one) => std::slice::from_ref(one),
            None => &PageSize::ALL,
        };
        let flags = match access {
            Access::ReadOnly => OFlags::RDONLY,
            Access::ReadWrite => OFlags::RDWR,
        };
        for &candidate in candidates {
            let path = path_of(name, candidate);
            // By path for every page size (for normal pages, the file `shm_open` would open), so
            // that O_NOFOLLOW holds: a symlink planted under the name is refused, not followed.
            let fd = match rustix::fs::open(
                &path,
                flags | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            ) {
                Ok(fd) => fd,
                Err(rustix::io::Errno::NOENT | rustix::io::Errno::NOTDIR) => {
                    if page_size.is_some() {
                        // Say which is missing: the mount (with what to do), or the region.
                        mounts::region_dir(candidate)?;
                        return Err(Error::NotFound { target: path.display().to_string() });
                    }
                    continue;
                }
                Err(errno) => return Err(Error::os("open", path.display())(errno)),
            };
            if candidate != PageSize::Normal {
                let label = path.display().to_string();
                let statfs = rustix::fs::fstatfs(&fd).map_err(Error::os("fstatfs", &label))?;
                if mounts::page_size_of_statfs(&statfs, &label)? != candidate {
                    if page_size.is_some() {
                        return Err(mounts::region_dir(candidate).err().unwrap_or(
                            Error::NoHugetlbfsMount { page_size: candidate, path: label },
                        ));
                    }
                    continue;
                }
            }
            // The size that counts is the one of the file we hold, not of the name we looked up.
            let info = stat_region(fd.as_fd(), *name, candidate, path)?;
            return Ok(Self { fd, info, access });
        }
        Err(Error::NotFound { target: format!("region {name} (looked in every page size)") })
    }

    /// What the OS said of the region when it was opened.
    pub fn info(&self) -> &RegionInfo {
        &self.info
    }

    /// The open file, for `mmap` by other means or for passing to a peer.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Maps the whole region at a random address. The options' access may not exceed the access
    /// the region was opened with.
    pub fn map(&self, options: &MapOptions) -> Result<Mapping> {
        if options.get_access() == Access::ReadWrite && self.access == Access::ReadOnly {
            return Err(Error::invalid(
                "access",
                format!(
                    "{} was opened read-only and cannot be mapped read-write",
                    self.info.path.display()
                ),
            ));
        }
        let len = usize::try_from(self.info.size).map_err(|_| {
            Error::invalid(
                "size",
                format!("{} bytes do not fit this address space", self.info.size),
            )
        })?;
        // The size was checked by `fstat` when the region was opened (or grown); as with any
        // mapping, a writer that shrinks the file later makes accesses past its end fault.
        let label = self.info.path.to_string_lossy();
        options.map_fd_unchecked(self.fd.as_fd(), len, self.info.page_size, &label)
    }

    /// Grows the region to `page_count` pages (`ftruncate`, then the new pages are allocated with
    /// `fallocate` so a shortage is an error now) and moves `mapping`, which must be a mapping of
    /// this region, to cover it all (`mremap`). Shrinking is refused: other processes may map the
    /// pages that would go.
    pub fn grow(&mut self, mapping: &mut Mapping, page_count: u64) -> Result<()> {
        let label = self.info.path.display().to_string();
        let size = region_size(page_count, self.info.page_size, &label)?;
        // The size now, from the OS: a peer may have grown the region since we opened it, and
        // growing to less than that would shrink it under the peer's mappings.
        let current = stat_region(
            self.fd.as_fd(),
            self.info.name,
            self.info.page_size,
            self.info.path.clone(),
        )?
        .size;
        if size < current {
            return Err(Error::invalid(
                "page count",
                format!(
                    "{page_count} pages would shrink {label} ({current} bytes); regions only grow"
                ),
            ));
        }
        if mapping.len() as u64 != current || mapping.label() != label {
            return Err(Error::invalid(
                "mapping",
                format!("{} is not a whole mapping of {label}", mapping.label()),
            ));
        }
        let len = usize::try_from(size).map_err(|_| {
            Error::invalid("page count", format!("{size} bytes do not fit this address space"))
        })?;
        crate::map::grow_fd(self.fd.as_fd(), mapping, current, len)?;
        self.info = stat_region(
            self.fd.as_fd(),
            self.info.name,
            self.info.page_size,
            self.info.path.clone(),
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_split_as_evenly_as_possible() {
        let parts = split_pages(10, &[Some(0), Some(1), Some(0)]);
        let shape: Vec<_> = parts.iter().map(|p| (p.first_page, p.pages, p.node)).collect();
        assert_eq!(shape, [(0, 4, Some(0)), (4, 3, Some(1)), (7, 3, Some(0))]);
        let parts = split_pages(2, &[Some(0), Some(1), Some(2)]);
        let shape: Vec<_> = parts.iter().map(|p| (p.first_page, p.pages, p.node)).collect();
        assert_eq!(shape, [(0, 1, Some(0)), (1, 1, Some(1))]);
        assert_eq!(split_pages(7, &[None]), [Part { first_page: 0, pages: 7, node: None }]);
    }

    #[test]
    fn sizes_are_checked() {
        assert!(matches!(region_size(0, PageSize::Normal, "x"), Err(Error::InvalidInput { .. })));
        assert!(matches!(
            region_size(u64::MAX / 4096 + 1, PageSize::Normal, "x"),
            Err(Error::InvalidInput { .. })
        ));
        assert!(matches!(
            region_size(1 << 33, PageSize::Gigantic, "x"),
            Err(Error::InvalidInput { .. })
        ));
        assert_eq!(region_size(3, PageSize::Huge, "x").ok(), Some(3 << 21));
    }

    #[test]
    fn staging_names_round_trip_and_refuse_other_names() {
        let name = Name::new("a-b-c").expect("valid");
        let staging = StagingName { pid: 12, counter: 3, name };
        assert_eq!(staging.to_string(), ".shmkit-new-12-3-a-b-c");
        assert_eq!(StagingName::parse(&staging.to_string()), Some(staging));
        for other in [
            "a-b-c",
            ".shmkit-new-",
            ".shmkit-new-12",
            ".shmkit-new-12-3",
            ".shmkit-new-12-3-",
            ".shmkit-new-x-3-a",
            ".shmkit-new-12-x-a",
            ".shmkit-new--3-a",
            ".shmkit-new-99999999999-3-a",
        ] {
            assert_eq!(StagingName::parse(other), None, "{other}");
        }
    }
}
