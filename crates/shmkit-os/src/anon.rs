//! Anonymous private memory on huge (2 MiB), gigantic (1 GiB) or normal pages
//! (`mmap(MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB | MAP_HUGE_2MB/1GB)`): for one process's own
//! buffers, optionally bound to a NUMA node.
//!
//! The pages sit at a random aligned address between guard pages, like every mapping of the
//! crate. Part of an acquisition can be released, from the front or the back only, so that what
//! remains is one block. A released part is not unmapped but replaced by an inaccessible
//! reservation: the huge pages go back to the kernel's pool, the address range stays ours, so
//! that no later mapping of anyone else can land in it (and be unmapped along with the rest on
//! drop) and the remaining pages keep a guard on that side.
//!
//! This memory is private to the process, so unlike [`Mapping`](crate::Mapping) it is handed
//! out as slices.
//!
//! ```
//! use shmkit_name::PageSize;
//! use shmkit_os::anon::AnonHugePages;
//!
//! let mut pages = AnonHugePages::acquire(PageSize::Normal, 4, None)?;
//! pages.as_mut_slice()[0] = 1;
//! pages.release_pages(3, 1)?; // the last page
//! pages.release_pages(0, 1)?; // the first page
//! assert_eq!(pages.page_count(), 2);
//! pages.release();
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::ptr::NonNull;

use rustix::mm::{self, Advice, MapFlags, ProtFlags};
use shmkit_name::PageSize;

use crate::error::{Error, Result};
use crate::map::{Reservation, check_len, out_of_memory_or_os};
use crate::numa;

/// Pages of anonymous private memory, released on drop.
pub struct AnonHugePages {
    /// guard | every page acquired | guard; unmapped as a whole on drop.
    #[allow(dead_code, reason = "held for its drop, which unmaps the whole range")]
    reservation: Reservation,
    /// The first page not released.
    start: NonNull<u8>,
    page_count: usize,
    page_size: PageSize,
    label: String,
}

impl std::fmt::Debug for AnonHugePages {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AnonHugePages")
            .field("label", &self.label)
            .field("start", &self.start)
            .field("page_count", &self.page_count)
            .field("page_size", &self.page_size)
            .finish_non_exhaustive()
    }
}

// SAFETY: the pages are private memory owned by this value alone, like a `Vec<u8>`'s buffer;
// `&self` gives only shared slices and `&mut self` exclusive ones.
unsafe impl Send for AnonHugePages {}
// SAFETY: as for `Send`.
unsafe impl Sync for AnonHugePages {}

impl AnonHugePages {
    /// `mmap(addr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED
    /// [| MAP_HUGETLB | MAP_HUGE_2MB/1GB])`—Acquires `page_count` pages of `page_size`, on NUMA
    /// node `node` if given, zero-filled and faulted in.
    ///
    /// Every page is populated now (`MADV_POPULATE_WRITE`, Linux 5.14), so a shortage is
    /// [`Error::OutOfMemory`] here, never a `SIGBUS` later; with a node, the range is bound to
    /// it first (`mbind`, strict) and every page's node is then verified.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] for 0 pages or a count that overflows; [`Error::OutOfMemory`]
    /// when the pages (of the pool for huge and gigantic pages, which `cargo xtask
    /// setup-hugepages` reserves) are not there; [`Error::UnknownNode`] and
    /// [`Error::Misplaced`] for the node; [`Error::Os`] for the rest.
    ///
    /// # References
    ///  - [Linux `mmap(2)`](https://man7.org/linux/man-pages/man2/mmap.2.html)
    ///  - [Linux hugetlbpage](https://docs.kernel.org/admin-guide/mm/hugetlbpage.html)
    #[doc(alias = "mmap")]
    #[doc(alias = "MAP_HUGETLB")]
    pub fn acquire(page_size: PageSize, page_count: usize, node: Option<u32>) -> Result<Self> {
        let label = match node {
            Some(node) => format!("{page_count} anonymous {page_size} pages on node {node}"),
            None => format!("{page_count} anonymous {page_size} pages"),
        };
        let len = page_count.checked_mul(page_size.bytes()).ok_or_else(|| {
            Error::invalid("page count", format!("{label} overflow the address space"))
        })?;
        check_len(len, page_size, &label)?;
        let reservation = Reservation::random(len, page_size, true, &label)?;
        let flags = MapFlags::PRIVATE | MapFlags::FIXED | hugetlb_flags(page_size);
        let start = reservation.region_start();
        // SAFETY: the target range lies inside our own reservation (after its leading guard,
        // `len` bytes by construction), which nothing references, so replacing it is sound.
        unsafe { mm::mmap_anonymous(start.cast(), len, ProtFlags::READ | ProtFlags::WRITE, flags) }
            .map_err(|errno| out_of_memory_or_os(errno, "mmap", &label, len, page_size))?;
        if let Some(node) = node {
            // SAFETY: the range is the pages just mapped, ours alone, and not yet touched.
            unsafe { numa::bind_range(start, len, node, true) }?;
        }
        // SAFETY: the range is exactly the pages just mapped; populating changes no contents.
        unsafe { mm::madvise(start.cast(), len, Advice::LinuxPopulateWrite) }.map_err(|errno| {
            // EFAULT: a fault would have raised SIGBUS, which for fresh anonymous memory means
            // no page to give (a bound node's pool is empty).
            let errno =
                if errno == rustix::io::Errno::FAULT { rustix::io::Errno::NOMEM } else { errno };
            out_of_memory_or_os(errno, "madvise(MADV_POPULATE_WRITE)", &label, len, page_size)
        })?;
        if let Some(node) = node {
            numa::verify_placement(&label, start, len, page_size.bytes(), node)?;
        }
        let start = NonNull::new(start)
            .ok_or_else(|| Error::invalid("address", "the reservation is at address 0"))?;
        Ok(Self { reservation, start, page_count, page_size, label })
    }

    /// The first byte of the pages still held.
    pub fn as_ptr(&self) -> *mut u8 {
        self.start.as_ptr()
    }

    /// The bytes still held.
    pub fn len(&self) -> usize {
        self.page_count * self.page_size.bytes()
    }

    /// Always false: at least one page is held until [`AnonHugePages::release`].
    pub fn is_empty(&self) -> bool {
        self.page_count == 0
    }

    /// The page size.
    pub fn page_size(&self) -> PageSize {
        self.page_size
    }

    /// How many pages are still held.
    pub fn page_count(&self) -> usize {
        self.page_count
    }

    /// The pages as bytes.
    pub fn as_slice(&self) -> &[u8] {
        // SAFETY: `start..start+len` is mapped readable and writable, initialised (zero-filled by
        // the kernel), private to this process and owned by `self`, which the borrow keeps alive.
        unsafe { std::slice::from_raw_parts(self.start.as_ptr(), self.len()) }
    }

    /// The pages as mutable bytes.
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: as in `as_slice`; `&mut self` makes the borrow exclusive.
        unsafe { std::slice::from_raw_parts_mut(self.start.as_ptr(), self.len()) }
    }

    /// Gives back `count` pages from `first_page` (counted from the first page still held), which
    /// must be at the front or the back: the pages kept stay one contiguous block. Their memory
    /// returns to the kernel (to the huge-page pool for huge and gigantic pages); their address
    /// range stays reserved and inaccessible until drop.
    ///
    /// ```
    /// use shmkit_name::PageSize;
    /// use shmkit_os::anon::AnonHugePages;
    ///
    /// let mut pages = AnonHugePages::acquire(PageSize::Normal, 3, None)?;
    /// assert!(pages.release_pages(1, 1).is_err()); // a hole in the middle
    /// pages.release_pages(0, 2)?;
    /// assert_eq!(pages.page_count(), 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] for a range outside the pages held, in the middle, empty, or
    /// covering every page (use [`AnonHugePages::release`]); [`Error::Os`] if the kernel refuses
    /// the replacement (then nothing changed).
    pub fn release_pages(&mut self, first_page: usize, count: usize) -> Result<()> {
        let end = first_page.checked_add(count).filter(|&end| end <= self.page_count);
        let Some(end) = end else {
            return Err(Error::invalid(
                "pages",
                format!(
                    "{count} pages from page {first_page} are outside the {} pages held of {}",
                    self.page_count, self.label
                ),
            ));
        };
        if count == 0 || count == self.page_count {
            return Err(Error::invalid(
                "pages",
                format!(
                    "release 1 to {} pages of {}; release() gives back all",
                    self.page_count - 1,
                    self.label
                ),
            ));
        }
        if first_page != 0 && end != self.page_count {
            return Err(Error::invalid(
                "pages",
                format!(
                    "pages {first_page}..{end} of {} would leave a hole in the middle: release from the \
                     front (first page 0) or up to the back (last page {})",
                    self.label,
                    self.page_count - 1
                ),
            ));
        }
        let page = self.page_size.bytes();
        let start = self.start.as_ptr().wrapping_add(first_page * page);
        let flags = MapFlags::PRIVATE | MapFlags::FIXED | MapFlags::NORESERVE;
        // SAFETY: the range is pages we hold (checked above) inside our reservation; `&mut self`
        // means no slice into them is alive. Replacing them frees their memory and keeps the
        // addresses reserved.
        unsafe { mm::mmap_anonymous(start.cast(), count * page, ProtFlags::empty(), flags) }
            .map_err(Error::os("mmap (release pages)", &self.label))?;
        if first_page == 0 {
            self.start = NonNull::new(start.wrapping_add(count * page)).unwrap_or(self.start);
        }
        self.page_count -= count;
        Ok(())
    }

    /// Gives back every page and the address range (`munmap`); what drop does.
    pub fn release(self) {
        drop(self);
    }
}

/// `MAP_HUGETLB` with the page size in the `MAP_HUGE_*` bits, or nothing for normal pages.
fn hugetlb_flags(page_size: PageSize) -> MapFlags {
    match page_size {
        PageSize::Normal => MapFlags::empty(),
        PageSize::Huge => MapFlags::HUGETLB | MapFlags::HUGE_2MB,
        PageSize::Gigantic => MapFlags::HUGETLB | MapFlags::HUGE_1GB,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_holes_and_bad_ranges() -> Result<()> {
        let mut pages = AnonHugePages::acquire(PageSize::Normal, 4, None)?;
        pages.as_mut_slice().fill(7);
        let first = pages.as_ptr();
        assert!(matches!(pages.release_pages(1, 2), Err(Error::InvalidInput { .. })));
        assert!(matches!(pages.release_pages(3, 2), Err(Error::InvalidInput { .. })));
        assert!(matches!(pages.release_pages(0, 0), Err(Error::InvalidInput { .. })));
        assert!(matches!(pages.release_pages(0, 4), Err(Error::InvalidInput { .. })));
        assert!(matches!(pages.release_pages(usize::MAX, 2), Err(Error::InvalidInput { .. })));
        pages.release_pages(0, 1)?;
        assert_eq!(pages.as_ptr(), first.wrapping_add(4096));
        pages.release_pages(2, 1)?;
        assert_eq!((pages.page_count(), pages.len()), (2, 8192));
        assert!(pages.as_slice().iter().all(|&byte| byte == 7));
        Ok(())
    }

    #[test]
    fn refuses_zero_and_overflow() {
        assert!(matches!(
            AnonHugePages::acquire(PageSize::Normal, 0, None),
            Err(Error::InvalidInput { .. })
        ));
        assert!(matches!(
            AnonHugePages::acquire(PageSize::Gigantic, usize::MAX / 2, None),
            Err(Error::InvalidInput { .. })
        ));
    }
}
