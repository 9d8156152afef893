//! [`Join`]: the RAII handle of one join, and the functions that join through the process's
//! registry.

use std::ptr::NonNull;

use shmkit_name::{Name, PageSize};
use shmkit_os::{Access, MapOptions, Region};

use crate::error::{HookError, Result};
use crate::registry::{JoinInfo, Joined, Mapped, Registry, Snapshot};

/// The process's join registry.
static GLOBAL: Registry = Registry::new();

/// The registry every free function of this crate uses.
pub fn global() -> &'static Registry {
    &GLOBAL
}

/// How a first join finds and maps its region (a count hit reuses the mapping as it is): the
/// page size to look for, and the [`MapOptions`] of the mapping, whose access the join's own
/// access replaces.
///
/// ```
/// use shmkit_join::JoinOptions;
/// use shmkit_name::PageSize;
/// use shmkit_os::MapOptions;
///
/// let options = JoinOptions::new().page_size(PageSize::Normal).map_options(MapOptions::new().dump(true));
/// # let _ = options;
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[must_use]
pub struct JoinOptions {
    page_size: Option<PageSize>,
    mapping: MapOptions,
}

impl Default for JoinOptions {
    fn default() -> Self {
        Self::new()
    }
}

impl JoinOptions {
    /// Page size found from the region; mapped locked (`mlock`) and out of core dumps.
    pub const fn new() -> Self {
        Self { page_size: None, mapping: MapOptions::new().lock(true) }
    }

    /// Look for the region with this page size only (the default looks in every one).
    pub const fn page_size(mut self, page_size: PageSize) -> Self {
        self.page_size = Some(page_size);
        self
    }

    /// How to map the region (locking, core dumps, transparent huge pages, populate).
    pub fn map_options(mut self, mapping: MapOptions) -> Self {
        self.mapping = mapping;
        self
    }

    fn map(&self, name: &Name, access: Access) -> Result<Mapped> {
        let region = Region::open(name, self.page_size, access)?;
        let mapping = region.map(&self.mapping.clone().access(access))?;
        Ok(Mapped {
            addr: mapping.as_ptr() as usize,
            len: mapping.len(),
            page_size: mapping.page_size(),
            page_count: region.info().page_count,
            mapping: Some(mapping),
        })
    }
}

/// One join of a region: the region stays mapped while any join of it lives. Dropping it leaves
/// (errors are ignored; [`Join::leave`] reports them).
///
/// A `Join` is `Send` and `Sync`: it is a name and an address, and leaving takes the registry's
/// lock, so it may be moved to, shared with, and dropped on any thread.
///
/// ```
/// use shmkit_join::{JoinOptions, join};
/// use shmkit_name::{Name, PageSize};
/// use shmkit_os::{Access, RegionOptions};
///
/// let name = Name::new(&format!("doc-join-{}", std::process::id()))?;
/// RegionOptions::new().create(&name, 1)?;
/// let first = join(&name, Access::ReadWrite, &JoinOptions::new())?;
/// let second = join(&name, Access::ReadOnly, &JoinOptions::new())?;
/// assert_eq!(first.as_ptr(), second.as_ptr());
/// assert_eq!(first.info()?.count, 2);
/// drop(second);
/// first.leave()?;
/// shmkit_os::unlink(&name, PageSize::Normal)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
#[must_use = "dropping a Join leaves the region at once"]
#[repr(C)] // the name first, 8-aligned: see `JoinInfo`
pub struct Join {
    name: Name,
    registry: &'static Registry,
    handle: usize,
    addr: usize,
    len: usize,
}

impl Join {
    fn new(registry: &'static Registry, name: &Name, joined: Joined) -> Self {
        Self { name: *name, registry, handle: joined.handle, addr: joined.addr, len: joined.len }
    }

    /// The join handle: what the join hook returned, or the region's first byte.
    pub fn as_ptr(&self) -> *mut u8 {
        self.handle as *mut u8
    }

    /// The region's first byte.
    pub fn region_ptr(&self) -> *mut u8 {
        self.addr as *mut u8
    }

    /// The region's length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Always false: a region holds at least one page.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The region's name.
    pub fn name(&self) -> &Name {
        &self.name
    }

    /// The join record as it is now (the count changes as others join and leave).
    pub fn info(&self) -> Result<JoinInfo> {
        self.registry
            .query_by_name(&self.name)
            .ok_or_else(|| crate::Error::NotJoined { what: format!("region {}", self.name) })
    }

    /// Leaves, reporting errors. The last leave unmaps the region.
    pub fn leave(self) -> Result<()> {
        let this = std::mem::ManuallyDrop::new(self);
        this.registry.leave(&this.name, this.handle, None)
    }

    /// Leaves; if this is the last join, `hook` runs first, while the region is still mapped and
    /// without the registry's lock (it may join and leave other regions).
    pub fn leave_with(self, mut hook: impl FnMut(&JoinInfo)) -> Result<()> {
        let this = std::mem::ManuallyDrop::new(self);
        this.registry.leave(&this.name, this.handle, Some(&mut hook))
    }
}

impl Drop for Join {
    fn drop(&mut self) {
        let _ = self.registry.leave(&self.name, self.handle, None);
    }
}

impl Registry {
    /// Joins region `name` for `access` through this registry: see [`join`].
    pub fn join(&'static self, name: &Name, access: Access, options: &JoinOptions) -> Result<Join> {
        let joined = self.join_core(name, access, || options.map(name, access), None)?;
        Ok(Join::new(self, name, joined))
    }

    /// Joins with a hook: see [`join_with`].
    pub fn join_with(
        &'static self,
        name: &Name,
        access: Access,
        options: &JoinOptions,
        mut hook: impl FnMut(&JoinInfo) -> Result<NonNull<u8>, HookError>,
    ) -> Result<Join> {
        let mut erased = |info: &JoinInfo| hook(info).map(|pointer| pointer.as_ptr() as usize);
        let joined =
            self.join_core(name, access, || options.map(name, access), Some(&mut erased))?;
        Ok(Join::new(self, name, joined))
    }
}

/// Joins region `name`: if this process has joined it, the count rises and the same mapping is
/// returned; otherwise its page size is found, it is mapped at a random aligned address, locked
/// and left out of core dumps (as `options` say), and recorded.
///
/// A read-write join of a region joined read-only is [`Error::AccessUpgrade`](crate::Error).
pub fn join(name: &Name, access: Access, options: &JoinOptions) -> Result<Join> {
    global().join(name, access, options)
}

/// As [`join`], with a hook that runs once, after the first join maps the region and before it
/// is recorded, without the registry's lock: it returns the join handle (the object the caller
/// wants inside the mapping), or refuses, which undoes the join. It may join and leave other
/// regions; joining the region being joined is [`Error::Cycle`](crate::Error). Another thread
/// joining the same name meanwhile waits for the outcome.
pub fn join_with(
    name: &Name,
    access: Access,
    options: &JoinOptions,
    hook: impl FnMut(&JoinInfo) -> Result<NonNull<u8>, HookError>,
) -> Result<Join> {
    global().join_with(name, access, options, hook)
}

/// Registers `page_count` pages of `page_size` at `addr`, obtained elsewhere (for example
/// [`shmkit_os::AnonHugePages`]), under `name` with join handle `handle`, so that the queries find
/// them. Refused when the name, the handle or any byte of the range is joined already.
pub fn join_anonymous(
    name: &Name,
    access: Access,
    handle: NonNull<u8>,
    addr: NonNull<u8>,
    page_size: PageSize,
    page_count: u64,
) -> Result<JoinInfo> {
    let len = usize::try_from(page_count)
        .ok()
        .and_then(|pages| pages.checked_mul(page_size.bytes()))
        .filter(|len| *len > 0)
        .ok_or(crate::Error::InvalidRange { start: addr.as_ptr() as usize, len: usize::MAX })?;
    global().join_anonymous(JoinInfo {
        name: *name,
        page_size,
        page_count,
        access,
        addr: addr.as_ptr() as usize,
        len,
        handle: handle.as_ptr() as usize,
        count: 1,
        anonymous: true,
    })
}

/// Removes the anonymous join whose handle is `handle`, which must be joined exactly once, and
/// hands its record back.
pub fn leave_anonymous(handle: NonNull<u8>) -> Result<JoinInfo> {
    global().leave_anonymous(handle.as_ptr() as usize)
}

/// The join of `name`, if this process has joined it.
pub fn query_by_name(name: &Name) -> Option<JoinInfo> {
    global().query_by_name(name)
}

/// The join whose handle is `handle`.
pub fn query_by_handle(handle: *const u8) -> Option<JoinInfo> {
    global().query_by_handle(handle as usize)
}

/// A join whose region overlaps `[start, start + len)`; see [`Registry::query_by_range`].
pub fn query_by_range(start: *const u8, len: usize) -> Result<Option<JoinInfo>> {
    global().query_by_range(start as usize, len)
}

/// Every join of this process, copied under the registry's lock.
pub fn joins() -> Snapshot {
    global().snapshot()
}
