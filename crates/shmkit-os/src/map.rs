//! Mappings: a region's memory placed at a page-aligned random address, unmapped on drop.
//!
//! A file is mapped straight at a random address with `MAP_FIXED_NOREPLACE`, so nothing already
//! mapped is ever replaced: one `mmap`, as cheap as letting the kernel choose. With
//! [`MapOptions::guard_pages`] (and always for anonymous huge pages and `SysV` attachments) the
//! mapping instead starts as an anonymous `PROT_NONE` reservation at a random address, and the
//! region is mapped over its middle with `MAP_FIXED`; the reservation's two ends stay as guard
//! areas of one page each, so an overrun out of one region faults instead of running into a
//! neighbour, and a failure at any step releases the reservation. This module holds the
//! `mmap`-family calls of every shared mapping; `anon` (private huge pages) and `sysv` (`shmat`
//! over a reservation) make their own over a [`Reservation`](crate::map) taken here.

use std::ffi::c_void;
use std::fmt;
use std::os::fd::BorrowedFd;
use std::ptr::{self, NonNull};
use std::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, Ordering};

use rustix::mm::{
    self, Advice, MapFlags, MlockFlags, MprotectFlags, MremapFlags, MsyncFlags, ProtFlags,
};
use shmkit_name::PageSize;

use crate::error::{Error, Result};

/// Whether a mapping may be written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Access {
    /// `PROT_READ`: writes fault.
    ReadOnly,
    /// `PROT_READ | PROT_WRITE`.
    ReadWrite,
}

impl Access {
    fn prot(self) -> ProtFlags {
        match self {
            Self::ReadOnly => ProtFlags::READ,
            Self::ReadWrite => ProtFlags::READ | ProtFlags::WRITE,
        }
    }
}

impl fmt::Display for Access {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::ReadOnly => "read-only",
            Self::ReadWrite => "read-write",
        })
    }
}

/// How [`msync`](Mapping::sync) writes back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyncMode {
    /// `MS_SYNC`: returns when the data is on the backing file.
    Sync,
    /// `MS_ASYNC`: schedules the write-back and returns.
    Async,
}

/// How to map a region: access, locking, core dumps, transparent huge pages, pre-faulting.
///
/// ```
/// use shmkit_os::{Access, MapOptions};
///
/// let options = MapOptions::new().access(Access::ReadOnly).lock(true).dump(false);
/// assert_eq!(options.get_access(), Access::ReadOnly);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[must_use]
#[allow(clippy::struct_excessive_bools, reason = "independent switches of a builder")]
pub struct MapOptions {
    access: Access,
    lock: bool,
    dump: bool,
    transparent_huge_pages: bool,
    populate: bool,
    guard_pages: bool,
}

impl Default for MapOptions {
    fn default() -> Self {
        Self::new()
    }
}

impl MapOptions {
    /// Read-write, not locked, excluded from core dumps, no `MADV_HUGEPAGE`, not pre-faulted, no
    /// guard pages.
    pub const fn new() -> Self {
        Self {
            access: Access::ReadWrite,
            lock: false,
            dump: false,
            transparent_huge_pages: false,
            populate: false,
            guard_pages: false,
        }
    }

    /// Put an inaccessible page (of the region's page size) on each side of the mapping, so that
    /// an overrun out of it faults instead of running into a neighbour.
    ///
    /// Off by default: the mapping already sits at a random address in a 64 TiB window, where a
    /// neighbour within one page is vanishingly unlikely, and the guards cost a second `mmap` and
    /// a split of the reservation, which doubles the cost of mapping a region (5.3 µs against
    /// 10.4 µs for `mmap` + `munmap` of 256 KiB on the development VM).
    pub const fn guard_pages(mut self, guard_pages: bool) -> Self {
        self.guard_pages = guard_pages;
        self
    }

    /// Read-only or read-write.
    pub const fn access(mut self, access: Access) -> Self {
        self.access = access;
        self
    }

    /// `mlock` the mapping, so that its pages are resident and never swapped; a failure names
    /// `RLIMIT_MEMLOCK`.
    pub const fn lock(mut self, lock: bool) -> Self {
        self.lock = lock;
        self
    }

    /// Include the mapping in core dumps (by default `MADV_DONTDUMP` keeps shared regions, which
    /// can be gigabytes, out of them).
    pub const fn dump(mut self, dump: bool) -> Self {
        self.dump = dump;
        self
    }

    /// `MADV_HUGEPAGE` for a normal-page mapping: let the kernel back it with transparent huge
    /// pages where it can. Ignored for huge and gigantic pages, which are huge already.
    pub const fn transparent_huge_pages(mut self, enable: bool) -> Self {
        self.transparent_huge_pages = enable;
        self
    }

    /// Fault every page in now rather than on first touch (`MADV_POPULATE_READ`/`WRITE`), so that
    /// a shortage is an error here and not a `SIGBUS` later.
    pub const fn populate(mut self, populate: bool) -> Self {
        self.populate = populate;
        self
    }

    /// The access these options ask for.
    pub const fn get_access(&self) -> Access {
        self.access
    }

    /// Whether these options lock the mapping.
    pub const fn get_lock(&self) -> bool {
        self.lock
    }

    /// Maps `len` bytes of `fd` from offset 0, whose pages are `page_size`, at a random address.
    /// `label` names the region in errors.
    ///
    /// `len` must be a non-zero multiple of `page_size` and no larger than the file (checked with
    /// `fstat`). The check holds when mapping: whoever can write the file can still shrink it
    /// later, and then an access past the new end raises `SIGBUS`; seal a memfd against
    /// shrinking (`F_SEAL_SHRINK`) where that matters.
    ///
    /// ```
    /// use rustix::fs::{MemfdFlags, ftruncate, memfd_create};
    /// use shmkit_name::PageSize;
    /// use shmkit_os::MapOptions;
    ///
    /// let fd = memfd_create("example", MemfdFlags::CLOEXEC)?;
    /// ftruncate(&fd, 8192)?;
    /// let mapping = MapOptions::new().map_fd(fd.as_fd(), 8192, PageSize::Normal, "example")?;
    /// mapping.write_at(100, b"hello")?;
    /// let mut back = [0; 5];
    /// mapping.read_at(100, &mut back)?;
    /// assert_eq!(&back, b"hello");
    /// # use std::os::fd::AsFd;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn map_fd(
        &self,
        fd: BorrowedFd<'_>,
        len: usize,
        page_size: PageSize,
        label: &str,
    ) -> Result<Mapping> {
        check_len(len, page_size, label)?;
        let file_len = rustix::fs::fstat(fd).map_err(Error::os("fstat", label))?.st_size;
        if u64::try_from(file_len).map_or(true, |file_len| (len as u64) > file_len) {
            return Err(Error::invalid(
                "mapping length",
                format!("{len} bytes asked of {label}, which holds only {file_len} bytes"),
            ));
        }
        self.map_fd_unchecked(fd, len, page_size, label)
    }

    /// [`MapOptions::map_fd`] for a caller that has just checked `len` against the file.
    pub(crate) fn map_fd_unchecked(
        &self,
        fd: BorrowedFd<'_>,
        len: usize,
        page_size: PageSize,
        label: &str,
    ) -> Result<Mapping> {
        check_len(len, page_size, label)?;
        if !self.guard_pages
            && let Some(mapping) = self.map_fd_at_random(fd, len, page_size, label)?
        {
            self.apply(&mapping)?;
            return Ok(mapping);
        }
        let reservation = Reservation::random(len, page_size, self.guard_pages, label)?;
        let flags = MapFlags::SHARED | MapFlags::FIXED;
        // SAFETY: the target range lies inside our own reservation (`region_start`, `len` fit by
        // construction), which nothing else references, so replacing it is sound.
        let mapped = unsafe {
            mm::mmap(reservation.region_start().cast(), len, self.access.prot(), flags, fd, 0)
        }
        .map_err(|errno| out_of_memory_or_os(errno, "mmap", label, len, page_size))?;
        debug_assert_eq!(mapped.cast::<u8>(), reservation.region_start());
        let mapping = reservation.into_mapping(len, page_size, self.access, Kind::Mmap, label);
        self.apply(&mapping)?;
        Ok(mapping)
    }

    /// Maps `fd` straight at a random aligned address (`MAP_FIXED_NOREPLACE`, one `mmap`), or
    /// returns `None` when no random address is free or in range, for the caller to fall back to a
    /// kernel-chosen reservation.
    fn map_fd_at_random(
        &self,
        fd: BorrowedFd<'_>,
        len: usize,
        page_size: PageSize,
        label: &str,
    ) -> Result<Option<Mapping>> {
        let flags = MapFlags::SHARED | MapFlags::FIXED_NOREPLACE;
        let prot = self.access.prot();
        // SAFETY: FIXED_NOREPLACE never replaces an existing mapping: it either maps fresh,
        // unused address space at `hint` or fails with EEXIST.
        let map = |hint| unsafe { mm::mmap(hint, len, prot, flags, fd, 0) };
        // ENOMEM here may also be hugetlb pages that cannot be reserved: the fallback maps over a
        // reservation the kernel places, and reports a real shortage there.
        match at_random_address(len, page_size.bytes(), label, map)? {
            Placed::At(start) => Ok(Some(Mapping {
                reservation: start,
                reservation_len: len,
                addr: start,
                len,
                page_size,
                access: self.access,
                kind: Kind::Mmap,
                label: label.into(),
            })),
            Placed::Fallback => Ok(None),
            Placed::Failed(errno) => Err(out_of_memory_or_os(errno, "mmap", label, len, page_size)),
        }
    }

    /// The advice and locking that follow a successful map; an error drops (unmaps) `mapping`.
    pub(crate) fn apply(&self, mapping: &Mapping) -> Result<()> {
        if self.populate {
            // MADV_POPULATE_* (Linux 5.14) reports a failed allocation as an error; MAP_POPULATE
            // would ignore it and leave a SIGBUS for the first touch.
            let (advice, op) = match mapping.access {
                Access::ReadOnly => (Advice::LinuxPopulateRead, "madvise(MADV_POPULATE_READ)"),
                Access::ReadWrite => (Advice::LinuxPopulateWrite, "madvise(MADV_POPULATE_WRITE)"),
            };
            // SAFETY: the range is exactly the mapping; populating changes no contents.
            unsafe { mm::madvise(mapping.addr.as_ptr().cast(), mapping.len, advice) }.map_err(
                |errno| {
                    out_of_memory_or_os(errno, op, &mapping.label, mapping.len, mapping.page_size)
                },
            )?;
        }
        if !self.dump {
            mapping.advise(Advice::LinuxDontDump, "madvise(MADV_DONTDUMP)")?;
        }
        if self.transparent_huge_pages && mapping.page_size == PageSize::Normal {
            mapping.advise(Advice::LinuxHugepage, "madvise(MADV_HUGEPAGE)")?;
        }
        if self.lock {
            mapping.lock()?;
        }
        Ok(())
    }
}

/// The size of the file behind `fd` from `fstat`, which must be a non-zero multiple of
/// `page_size` (else [`Error::Corrupted`]: a region's size is whole pages by construction).
pub(crate) fn fd_size(fd: BorrowedFd<'_>, page_size: PageSize, label: &str) -> Result<usize> {
    let size = rustix::fs::fstat(fd).map_err(Error::os("fstat", label))?.st_size;
    usize::try_from(size)
        .ok()
        .filter(|&size| size != 0 && size.is_multiple_of(page_size.bytes()))
        .ok_or_else(|| Error::Corrupted {
            target: label.to_owned(),
            reason: format!(
                "its size {size} is not a non-zero multiple of the {page_size} page size ({})",
                page_size.bytes()
            ),
        })
}

/// A `len` that can be mapped with pages of `page_size`.
pub(crate) fn check_len(len: usize, page_size: PageSize, label: &str) -> Result<()> {
    if len == 0 || !len.is_multiple_of(page_size.bytes()) {
        return Err(Error::invalid(
            "mapping length",
            format!(
                "{len} bytes for {label} is not a non-zero multiple of the {page_size} page size ({})",
                page_size.bytes()
            ),
        ));
    }
    Ok(())
}

/// `ENOMEM` from a call that allocates pages is a shortage of pages, said as such.
pub(crate) fn out_of_memory_or_os(
    errno: rustix::io::Errno,
    op: &'static str,
    label: &str,
    len: usize,
    page_size: PageSize,
) -> Error {
    if errno == rustix::io::Errno::NOMEM || errno == rustix::io::Errno::NOSPC {
        Error::OutOfMemory {
            target: label.to_owned(),
            page_size,
            pages: (len / page_size.bytes()) as u64,
            op,
            source: errno.into(),
        }
    } else {
        Error::os(op, label)(errno)
    }
}

/// What unmaps the region part of a mapping.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// `munmap`.
    Mmap,
    /// A `SysV` attachment (`shmat`); it cannot be moved or grown.
    SysV,
}

/// An anonymous `PROT_NONE` reservation of guard + region + guard (guards of one page, or none)
/// at a random aligned address; unmapped on drop unless turned into a [`Mapping`].
pub(crate) struct Reservation {
    start: NonNull<u8>,
    len: usize,
    guard: usize,
}

/// Attempts at a random address before letting the kernel choose (and aligning by hand).
const RANDOM_ATTEMPTS: usize = 64;
/// Random addresses are drawn from [4 GiB, 64 TiB): inside the 47-bit user space of x86-64 and
/// the 48-bit one of aarch64, away from the low heap and the high stack.
const RANDOM_LOW: u64 = 1 << 32;
const RANDOM_HIGH: u64 = 1 << 46;

impl Reservation {
    /// Reserves room for `len` bytes of `page_size` pages, plus a guard page on each side if
    /// `guards`.
    pub(crate) fn random(
        len: usize,
        page_size: PageSize,
        guards: bool,
        label: &str,
    ) -> Result<Self> {
        let align = page_size.bytes();
        let guard = if guards { align } else { 0 };
        let total = len.checked_add(2 * guard).ok_or_else(|| {
            Error::invalid(
                "mapping length",
                format!("{len} bytes for {label} overflow the address space"),
            )
        })?;
        let flags = MapFlags::PRIVATE | MapFlags::NORESERVE | MapFlags::FIXED_NOREPLACE;
        // SAFETY: FIXED_NOREPLACE never replaces an existing mapping: it either maps fresh,
        // unused address space at `hint` or fails with EEXIST.
        let map = |hint| unsafe { mm::mmap_anonymous(hint, total, ProtFlags::empty(), flags) };
        match at_random_address(total, align, label, map)? {
            Placed::At(start) => Ok(Self { start, len: total, guard }),
            Placed::Fallback => Self::kernel_chosen(total, align, guard, label),
            Placed::Failed(errno) => Err(Error::os("mmap (address reservation)", label)(errno)),
        }
    }

    /// The fallback: an over-sized reservation where the kernel likes, trimmed to alignment.
    fn kernel_chosen(total: usize, align: usize, guard: usize, label: &str) -> Result<Self> {
        let oversized = total.checked_add(align).ok_or_else(|| {
            Error::invalid(
                "mapping length",
                format!("{total} bytes for {label} overflow the address space"),
            )
        })?;
        // SAFETY: a null hint without MAP_FIXED only ever takes unused address space.
        let start = unsafe {
            mm::mmap_anonymous(
                ptr::null_mut(),
                oversized,
                ProtFlags::empty(),
                MapFlags::PRIVATE | MapFlags::NORESERVE,
            )
        }
        .map_err(Error::os("mmap (address reservation)", label))?;
        let start = start.cast::<u8>();
        let aligned_offset = (start as usize).next_multiple_of(align) - start as usize;
        // Give back the unaligned head and the unused tail; both are ours and unreferenced.
        if aligned_offset > 0 {
            unmap(start, aligned_offset);
        }
        let tail = oversized - aligned_offset - total;
        if tail > 0 {
            unmap(start.wrapping_add(aligned_offset + total), tail);
        }
        Ok(Self { start: non_null(start.wrapping_add(aligned_offset).cast()), len: total, guard })
    }

    /// Where the region goes: after the leading guard.
    pub(crate) fn region_start(&self) -> *mut u8 {
        self.start.as_ptr().wrapping_add(self.guard)
    }

    /// Gives up ownership: (start, length, region start). The caller now unmaps it.
    fn into_raw(self) -> (NonNull<u8>, usize, NonNull<u8>) {
        let this = std::mem::ManuallyDrop::new(self);
        (this.start, this.len, non_null(this.region_start().cast()))
    }

    /// Hands the reservation, now holding a region of `len` bytes, to a [`Mapping`].
    pub(crate) fn into_mapping(
        self,
        len: usize,
        page_size: PageSize,
        access: Access,
        kind: Kind,
        label: &str,
    ) -> Mapping {
        let (reservation, reservation_len, addr) = self.into_raw();
        Mapping {
            reservation,
            reservation_len,
            addr,
            len,
            page_size,
            access,
            kind,
            label: label.into(),
        }
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        unmap(self.start.as_ptr(), self.len);
    }
}

/// What [`at_random_address`] did.
enum Placed {
    /// Mapped at a random address.
    At(NonNull<u8>),
    /// No random address will do: every one tried was taken, or they lie beyond this address
    /// space (a smaller VA on this CPU, or `RLIMIT_AS`: `ENOMEM`/`EINVAL`). Let the kernel choose.
    Fallback,
    /// `map` failed otherwise.
    Failed(rustix::io::Errno),
}

/// Calls `map(hint)`, an `mmap` with `MAP_FIXED_NOREPLACE` of `len` bytes, at random
/// `align`-aligned hints until one is free: the one retry loop of every random placement.
fn at_random_address(
    len: usize,
    align: usize,
    label: &str,
    mut map: impl FnMut(*mut c_void) -> rustix::io::Result<*mut c_void>,
) -> Result<Placed> {
    for _ in 0..RANDOM_ATTEMPTS {
        let hint = random_address(len as u64, align as u64, label)?;
        match map(hint as *mut c_void) {
            Ok(start) if start as u64 == hint => return Ok(Placed::At(non_null(start))),
            // Kernels before 4.17 treat the flag as a hint; give back a misplaced mapping.
            Ok(elsewhere) => unmap(elsewhere.cast(), len),
            Err(rustix::io::Errno::EXIST) => {}
            Err(rustix::io::Errno::NOMEM | rustix::io::Errno::INVAL) => {
                return Ok(Placed::Fallback);
            }
            Err(errno) => return Ok(Placed::Failed(errno)),
        }
    }
    Ok(Placed::Fallback)
}

/// A random `align`-aligned address in [`RANDOM_LOW`, `RANDOM_HIGH` - `total`).
///
/// Drawn from a process-wide splitmix64 sequence seeded once by `getrandom`, not a `getrandom`
/// per call: placement needs spread, not secrecy (the addresses are in `/proc/self/maps`), and a
/// system call per map costs more than a tenth of a plain `mmap` on a VM.
fn random_address(total: u64, align: u64, label: &str) -> Result<u64> {
    const GAMMA: u64 = 0x9e37_79b9_7f4a_7c15;
    static STATE: AtomicU64 = AtomicU64::new(0);
    if STATE.load(Ordering::Relaxed) == 0 {
        let mut bytes = [0_u8; 8];
        rustix::rand::getrandom(&mut bytes, rustix::rand::GetRandomFlags::empty())
            .map_err(Error::os("getrandom", label))?;
        // Another thread may have seeded it meanwhile; either seed will do. Zero means unseeded.
        let _ = STATE.compare_exchange(
            0,
            u64::from_le_bytes(bytes) | 1,
            Ordering::Relaxed,
            Ordering::Relaxed,
        );
    }
    let mut z = STATE.fetch_add(GAMMA, Ordering::Relaxed).wrapping_add(GAMMA);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    let span = RANDOM_HIGH.saturating_sub(RANDOM_LOW).saturating_sub(total).max(align);
    Ok((RANDOM_LOW + z % span) / align * align)
}

fn non_null(address: *mut c_void) -> NonNull<u8> {
    // mmap never returns null on success: page zero is never mappable by unprivileged code and
    // the kernel's `mmap_min_addr` keeps it unmapped; treat it as the impossible case it is.
    NonNull::new(address.cast()).unwrap_or(NonNull::dangling())
}

/// Unmaps a range this module owns; a failure here would mean the range was not a mapping, which
/// our bookkeeping rules out, so it is ignored rather than turned into a panic in `drop`.
fn unmap(start: *mut u8, len: usize) {
    // SAFETY: callers pass only ranges they mapped and that no reference points into.
    let _ = unsafe { mm::munmap(start.cast(), len) };
}

/// A region's memory mapped into this process; unmapped (or detached) on drop.
///
/// The memory may be written by other processes at any time, so the mapping never hands out
/// `&[u8]` or `&mut [u8]`: it gives raw pointers, bounds-checked copies made of relaxed atomic
/// byte accesses, and atomic views.
pub struct Mapping {
    reservation: NonNull<u8>,
    reservation_len: usize,
    addr: NonNull<u8>,
    len: usize,
    page_size: PageSize,
    access: Access,
    kind: Kind,
    label: Box<str>,
}

// SAFETY: a `Mapping` is an address range, not data behind references; the memory is shared with
// other processes anyway, and every access its safe methods make is atomic; raw pointers put the
// burden on their user.
unsafe impl Send for Mapping {}
// SAFETY: as for `Send`; `&Mapping` offers reads of fixed fields and atomic accesses only, so
// threads sharing it race on values, never on memory in the Rust sense.
unsafe impl Sync for Mapping {}

impl fmt::Debug for Mapping {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mapping")
            .field("label", &self.label)
            .field("addr", &self.addr)
            .field("len", &self.len)
            .field("page_size", &self.page_size)
            .field("access", &self.access)
            .finish_non_exhaustive()
    }
}

impl Mapping {
    /// The first byte of the region.
    pub fn as_ptr(&self) -> *mut u8 {
        self.addr.as_ptr()
    }

    /// The region's length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Always false: a mapping holds at least one page.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The page size backing the region.
    pub fn page_size(&self) -> PageSize {
        self.page_size
    }

    /// How many pages the region spans.
    pub fn page_count(&self) -> usize {
        self.len / self.page_size.bytes()
    }

    /// Read-only or read-write.
    pub fn access(&self) -> Access {
        self.access
    }

    /// The name or path the region was mapped from, as used in errors.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// Whether `[start, start + len)` overlaps this mapping's region.
    pub fn overlaps(&self, start: usize, len: usize) -> bool {
        let ours = self.addr.as_ptr() as usize;
        len > 0 && start < ours + self.len && ours < start.saturating_add(len)
    }

    fn bounds(&self, offset: usize, len: usize) -> Result<*mut u8> {
        match offset.checked_add(len) {
            Some(end) if end <= self.len => Ok(self.addr.as_ptr().wrapping_add(offset)),
            _ => Err(Error::invalid(
                "offset",
                format!(
                    "bytes {offset}..{} are outside {} ({} bytes)",
                    offset.saturating_add(len),
                    self.label,
                    self.len
                ),
            )),
        }
    }

    fn writable(&self) -> Result<()> {
        if self.access == Access::ReadOnly {
            return Err(Error::invalid("access", format!("{} is mapped read-only", self.label)));
        }
        Ok(())
    }

    /// Copies `out.len()` bytes from `offset` with relaxed atomic byte loads: other threads and
    /// processes may be writing them, and atomics make that a race on values, never undefined
    /// behaviour. What is read is whatever is there.
    pub fn read_at(&self, offset: usize, out: &mut [u8]) -> Result<()> {
        let source = self.bounds(offset, out.len())?;
        for (index, byte) in out.iter_mut().enumerate() {
            // SAFETY: `bounds` checked that offset..offset+len lies inside the mapping, which is
            // readable for as long as `self` lives; AtomicU8 has the layout of u8 and every
            // access to shared bytes through a `Mapping` is atomic.
            *byte = unsafe { AtomicU8::from_ptr(source.add(index)) }.load(Ordering::Relaxed);
        }
        Ok(())
    }

    /// Copies `data` to `offset` with relaxed atomic byte stores (see [`Mapping::read_at`]).
    /// Fails on a read-only mapping.
    pub fn write_at(&self, offset: usize, data: &[u8]) -> Result<()> {
        self.writable()?;
        let target = self.bounds(offset, data.len())?;
        for (index, byte) in data.iter().enumerate() {
            // SAFETY: in bounds and writable (both checked above); atomic as in `read_at`.
            unsafe { AtomicU8::from_ptr(target.add(index)) }.store(*byte, Ordering::Relaxed);
        }
        Ok(())
    }

    /// An atomic view of the 8 bytes at `offset` (8-byte aligned), for words shared with other
    /// processes. Fails on a read-only mapping, where a store would fault.
    pub fn atomic_u64(&self, offset: usize) -> Result<&AtomicU64> {
        self.writable()?;
        let address = self.aligned(offset, 8)?;
        // SAFETY: in bounds, 8-byte aligned, writable, and alive as long as `&self`; AtomicU64 has
        // the size and alignment of u64, and atomics may alias memory other processes write.
        Ok(unsafe { AtomicU64::from_ptr(address.cast()) })
    }

    /// An atomic view of the 4 bytes at `offset` (4-byte aligned); see [`Mapping::atomic_u64`].
    pub fn atomic_u32(&self, offset: usize) -> Result<&AtomicU32> {
        self.writable()?;
        let address = self.aligned(offset, 4)?;
        // SAFETY: as in `atomic_u64`, for a 4-byte aligned word.
        Ok(unsafe { AtomicU32::from_ptr(address.cast()) })
    }

    fn aligned(&self, offset: usize, align: usize) -> Result<*mut u8> {
        if !offset.is_multiple_of(align) {
            return Err(Error::invalid("offset", format!("{offset} is not {align}-byte aligned")));
        }
        self.bounds(offset, align)
    }

    fn advise(&self, advice: Advice, op: &'static str) -> Result<()> {
        // SAFETY: the range is exactly our mapping; these advices change no contents.
        unsafe { mm::madvise(self.addr.as_ptr().cast(), self.len, advice) }
            .map_err(Error::os(op, &*self.label))
    }

    /// `mlock`: makes every page resident and keeps it so. A failure caused by the locked-memory
    /// limit is [`Error::MemlockLimit`].
    pub fn lock(&self) -> Result<()> {
        // SAFETY: the range is exactly our mapping; locking changes no contents.
        unsafe { mm::mlock(self.addr.as_ptr().cast(), self.len) }
            .map_err(|errno| memlock_error(errno, "mlock", &self.label, self.len as u64))
    }

    /// `mlock2(MLOCK_ONFAULT)`: locks pages as they are first touched.
    pub fn lock_on_fault(&self) -> Result<()> {
        // SAFETY: the range is exactly our mapping; locking changes no contents.
        unsafe { mm::mlock_with(self.addr.as_ptr().cast(), self.len, MlockFlags::ONFAULT) }
            .map_err(|errno| memlock_error(errno, "mlock2", &self.label, self.len as u64))
    }

    /// `munlock`.
    pub fn unlock(&self) -> Result<()> {
        // SAFETY: the range is exactly our mapping; unlocking changes no contents.
        unsafe { mm::munlock(self.addr.as_ptr().cast(), self.len) }
            .map_err(Error::os("munlock", &*self.label))
    }

    /// `mprotect`: changes the access of the whole mapping. Raising a mapping to read-write works
    /// only if the file was opened read-write.
    pub fn protect(&mut self, access: Access) -> Result<()> {
        let flags = match access {
            Access::ReadOnly => MprotectFlags::READ,
            Access::ReadWrite => MprotectFlags::READ | MprotectFlags::WRITE,
        };
        // SAFETY: the range is exactly our mapping; `&mut self` means no view handed out by this
        // mapping is alive, so none can be used to write after the change.
        unsafe { mm::mprotect(self.addr.as_ptr().cast(), self.len, flags) }
            .map_err(Error::os("mprotect", &*self.label))?;
        self.access = access;
        Ok(())
    }

    /// `msync`: writes dirty pages back to the file (meaningful for plain files).
    pub fn sync(&self, mode: SyncMode) -> Result<()> {
        let flags = match mode {
            SyncMode::Sync => MsyncFlags::SYNC,
            SyncMode::Async => MsyncFlags::ASYNC,
        };
        // SAFETY: the range is exactly our mapping; msync changes no contents.
        unsafe { mm::msync(self.addr.as_ptr().cast(), self.len, flags) }
            .map_err(Error::os("msync", &*self.label))
    }

    /// Grows the mapping to `new_len` bytes with `mremap`, moving it to a new random reservation.
    /// [`grow_fd`] has checked the kinds and resized the file.
    pub(crate) fn remap(&mut self, new_len: usize) -> Result<()> {
        check_len(new_len, self.page_size, &self.label)?;
        if self.kind != Kind::Mmap {
            return Err(Error::invalid(
                "resize",
                format!("{} is a SysV segment, which cannot grow", self.label),
            ));
        }
        let guard = self.addr.as_ptr() as usize - self.reservation.as_ptr() as usize;
        let reservation = Reservation::random(new_len, self.page_size, guard > 0, &self.label)?;
        // SAFETY: the old range is exactly our mapping; the new one is inside our fresh
        // reservation, which nothing references. `&mut self` means no view into the old range
        // is alive, so moving it invalidates nothing.
        unsafe {
            mm::mremap_fixed(
                self.addr.as_ptr().cast(),
                self.len,
                new_len,
                MremapFlags::MAYMOVE,
                reservation.region_start().cast(),
            )
        }
        .map_err(|errno| {
            out_of_memory_or_os(errno, "mremap", &self.label, new_len, self.page_size)
        })?;
        let (start, len, region) = reservation.into_raw();
        // The old region has moved out; unmap only the two old guards, never the gap between
        // them, where another thread's mapping may already have landed.
        let old_start = self.reservation.as_ptr();
        if guard > 0 {
            unmap(old_start, guard);
            unmap(
                self.addr.as_ptr().wrapping_add(self.len),
                self.reservation_len - guard - self.len,
            );
        }
        self.reservation = start;
        self.reservation_len = len;
        self.addr = region;
        self.len = new_len;
        Ok(())
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // One munmap of the whole reservation, also for a SysV attachment: unmapping it runs the
        // same close as `shmdt` (the attach count falls), and a single call leaves no moment in
        // which the middle is free for another thread's mapping to land in and be unmapped.
        unmap(self.reservation.as_ptr(), self.reservation_len);
    }
}

/// Grows the file behind `mapping` from `old_size` to `new_len` bytes and moves the mapping to
/// cover it: `ftruncate`, `fallocate` of the new pages (so a shortage is an error now), then
/// `mremap`. Any failure puts the file back to `old_size`. Huge and gigantic page mappings are
/// refused before anything changes: the kernel will not expand a hugetlb mapping with `mremap`.
pub(crate) fn grow_fd(
    fd: BorrowedFd<'_>,
    mapping: &mut Mapping,
    old_size: u64,
    new_len: usize,
) -> Result<()> {
    let label = mapping.label.to_string();
    if mapping.page_size != PageSize::Normal {
        return Err(Error::invalid(
            "resize",
            format!(
                "{label} is on {} pages, and the kernel does not grow hugetlb mappings: create a larger region instead",
                mapping.page_size
            ),
        ));
    }
    if mapping.kind != Kind::Mmap {
        return Err(Error::invalid(
            "resize",
            format!("{label} is a SysV segment, which cannot grow"),
        ));
    }
    check_len(new_len, mapping.page_size, &label)?;
    let added = (new_len as u64).checked_sub(old_size).ok_or_else(|| {
        Error::invalid(
            "size",
            format!("{new_len} bytes would shrink {label} ({old_size} bytes); regions only grow"),
        )
    })?;
    rustix::fs::ftruncate(fd, new_len as u64).map_err(Error::os("ftruncate", &label))?;
    let grown = allocate(fd, old_size, added, mapping.page_size, &label)
        .and_then(|()| mapping.remap(new_len));
    if grown.is_err() {
        let _ = rustix::fs::ftruncate(fd, old_size);
    }
    grown
}

/// `fallocate` of `len` bytes at `offset`; filesystems without it fall back to faulting later.
pub(crate) fn allocate(
    fd: BorrowedFd<'_>,
    offset: u64,
    len: u64,
    page_size: PageSize,
    label: &str,
) -> Result<()> {
    if len == 0 {
        return Ok(());
    }
    match rustix::fs::fallocate(fd, rustix::fs::FallocateFlags::empty(), offset, len) {
        Ok(()) | Err(rustix::io::Errno::OPNOTSUPP) => Ok(()),
        Err(errno) => Err(out_of_memory_or_os(errno, "fallocate", label, len as usize, page_size)),
    }
}

/// `mlock`-family failures: ENOMEM, EPERM and EAGAIN come from `RLIMIT_MEMLOCK` (or a lack of
/// `CAP_IPC_LOCK`), so say so with the limit in hand.
pub(crate) fn memlock_error(
    errno: rustix::io::Errno,
    op: &'static str,
    target: &str,
    bytes: u64,
) -> Error {
    use rustix::io::Errno;
    if errno == Errno::NOMEM || errno == Errno::PERM || errno == Errno::AGAIN {
        let limit = rustix::process::getrlimit(rustix::process::Resource::Memlock)
            .current
            .map_or_else(|| "unlimited".to_owned(), |bytes| format!("{bytes} bytes"));
        Error::MemlockLimit { target: target.to_owned(), bytes, limit, source: errno.into() }
    } else {
        Error::os(op, target)(errno)
    }
}
