//! Where pages are: the node of each page of a range ([`page_nodes`]) and the check that a
//! region is wholly on its node ([`verify_placement`]).

use std::ptr;

use libc::{c_int, c_void};

use super::sys;
use super::topology::check_node;
use crate::error::{Error, Result};

/// Pages per `move_pages` call: keeps the two arrays at 8 KiB + 4 KiB whatever the range.
const CHUNK_PAGES: usize = 1024;

/// `move_pages(0, count, pages, NULL, status, 0)`: the NUMA node of each page of
/// `addr..addr + len`, with pages of `page_size` bytes.
///
/// One entry per page, from the page holding `addr` to the one holding the last byte: the node
/// id, or a negative errno: `-ENOENT` for a page not present (never touched, or swapped out),
/// `-EFAULT` for an address that is not mapped or maps the shared zero page (read but never
/// written). Pages are queried 1024 at a time.
///
/// This is safe although the kernel is handed addresses: with a NULL `nodes` array the call only
/// reports, and it looks the addresses up in this process's page tables without reading or
/// writing through them. Any address is harmless; a bad one gets `-EFAULT`.
///
/// The result has one `i32` per page: a 1 TiB range of 4 KiB pages is a 1 GiB vector. To check a
/// large region against one node, [`verify_placement`] counts without keeping the statuses.
///
/// # Errors
///
/// [`Error::InvalidInput`] if `page_size` is not a power of two at least the system page size,
/// or if the range wraps around the address space; [`Error::Os`] if `move_pages` fails (`ENOSYS`
/// on a kernel built without NUMA).
///
/// # Examples
///
/// ```
/// use shmkit_os::numa::{page_nodes, Topology};
///
/// let page = rustix::param::page_size();
/// let data = vec![1_u8; 4 * page];
/// let statuses = page_nodes(data.as_ptr(), data.len(), page)?;
/// // Touched memory is on some node this machine has.
/// let topology = Topology::read()?;
/// for status in statuses {
///     assert!(topology.node(u32::try_from(status).expect("a node")).is_ok());
/// }
/// # Ok::<(), shmkit_os::Error>(())
/// ```
#[doc(alias = "move_pages")]
pub fn page_nodes(addr: *const u8, len: usize, page_size: usize) -> Result<Vec<i32>> {
    let mut nodes = Vec::new();
    for_each_chunk(addr, len, page_size, |statuses| nodes.extend_from_slice(statuses))?;
    Ok(nodes)
}

/// Checks that every page of `addr..addr + len` (pages of `page_size` bytes) is present on node
/// `node`; `target` names the region in the error.
///
/// A page that is not present counts as misplaced: it has no node yet, and where it will land
/// depends on the policy in force when it is first touched. So verify after the region is
/// populated (written, `MAP_POPULATE`d or locked), not before. A page only ever read maps the
/// shared zero page, which counts as misplaced too.
///
/// # Errors
///
/// [`Error::UnknownNode`] before any call if the machine has no node `node`;
/// [`Error::Misplaced`] with the count of pages elsewhere or not present; the errors of
/// [`page_nodes`].
///
/// # Examples
///
/// ```
/// use std::ptr;
/// use rustix::mm::{MapFlags, ProtFlags, mmap_anonymous, munmap};
/// use shmkit_os::Error;
/// use shmkit_os::numa::{bind_thread_to_node, verify_placement};
///
/// let page = rustix::param::page_size();
/// let len = 8 * page;
/// // SAFETY: a fresh private anonymous mapping, placed by the kernel.
/// let addr = unsafe {
///     mmap_anonymous(ptr::null_mut(), len, ProtFlags::READ | ProtFlags::WRITE, MapFlags::PRIVATE)
/// }?
/// .cast::<u8>();
///
/// // Not touched yet: no page is anywhere.
/// let error = verify_placement("scratch", addr, len, page, 0).unwrap_err();
/// assert!(matches!(error, Error::Misplaced { misplaced: 8, pages: 8, .. }));
///
/// let guard = bind_thread_to_node(0)?;
/// // SAFETY: the mapping is `len` bytes, readable and writable.
/// unsafe { addr.write_bytes(1, len) };
/// guard.restore()?;
/// verify_placement("scratch", addr, len, page, 0)?;
///
/// // SAFETY: unmapping what was mapped above; nothing refers to it any more.
/// unsafe { munmap(addr.cast(), len) }?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn verify_placement(
    target: &str,
    addr: *const u8,
    len: usize,
    page_size: usize,
    node: u32,
) -> Result<()> {
    check_node(node)?;
    let mut pages = 0_u64;
    let mut misplaced = 0_u64;
    for_each_chunk(addr, len, page_size, |statuses| {
        pages += statuses.len() as u64;
        misplaced +=
            statuses.iter().filter(|&&status| u32::try_from(status) != Ok(node)).count() as u64;
    })?;
    if misplaced == 0 {
        Ok(())
    } else {
        Err(Error::Misplaced { target: target.to_owned(), node, misplaced, pages })
    }
}

/// Queries the pages of the range [`CHUNK_PAGES`] at a time, handing each chunk's statuses to
/// `each`.
fn for_each_chunk(
    addr: *const u8,
    len: usize,
    page_size: usize,
    mut each: impl FnMut(&[c_int]),
) -> Result<()> {
    let (first, count) = page_span(addr.addr(), len, page_size)?;
    let chunk = count.min(CHUNK_PAGES);
    let mut pages: Vec<*const c_void> = Vec::with_capacity(chunk);
    let mut statuses: Vec<c_int> = vec![0; chunk];
    let mut done = 0;
    while done < count {
        let n = (count - done).min(CHUNK_PAGES);
        pages.clear();
        // Addresses to look up, not to dereference: no provenance needed.
        pages
            .extend((done..done + n).map(|page| ptr::without_provenance(first + page * page_size)));
        let statuses = &mut statuses[..n];
        sys::query_pages(&pages, statuses).map_err(Error::io(
            "move_pages",
            format!("{:#x}..{:#x}", first + done * page_size, first + (done + n) * page_size),
        ))?;
        each(statuses);
        done += n;
    }
    Ok(())
}

/// The first page's address and the number of pages covering `addr..addr + len`.
fn page_span(addr: usize, len: usize, page_size: usize) -> Result<(usize, usize)> {
    let system_page = rustix::param::page_size();
    if !page_size.is_power_of_two() || page_size < system_page {
        return Err(Error::invalid(
            "page size",
            format!("{page_size} is not a power of two of at least {system_page} bytes"),
        ));
    }
    if len == 0 {
        return Ok((addr, 0));
    }
    let wraps = || {
        Error::invalid(
            "address range",
            format!("{addr:#x} + {len:#x} bytes wraps around the address space"),
        )
    };
    let end = addr.checked_add(len).ok_or_else(wraps)?;
    let first = addr & !(page_size - 1);
    let end = end.checked_next_multiple_of(page_size).ok_or_else(wraps)?;
    Ok((first, (end - first) / page_size))
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE: usize = 4096;

    fn span(addr: usize, len: usize, page_size: usize) -> (usize, usize) {
        page_span(addr, len, page_size).unwrap_or_else(|error| panic!("{error}"))
    }

    #[test]
    fn spans_every_page_the_range_touches() {
        assert_eq!(span(0x10000, 0, PAGE), (0x10000, 0));
        assert_eq!(span(0x10000, 1, PAGE), (0x10000, 1));
        assert_eq!(span(0x10000, PAGE, PAGE), (0x10000, 1));
        assert_eq!(span(0x10000, PAGE + 1, PAGE), (0x10000, 2));
        assert_eq!(span(0x10fff, 2, PAGE), (0x10000, 2));
        assert_eq!(span(0x20_0000, 4 << 20, 2 << 20), (0x20_0000, 2));
    }

    #[test]
    fn refuses_bad_page_sizes_and_wrapping_ranges() {
        let error = |addr, len, page_size| {
            page_span(addr, len, page_size).err().map(|error| error.to_string()).unwrap_or_default()
        };
        assert_eq!(
            error(0, 1, 3000),
            format!("invalid page size: 3000 is not a power of two of at least {PAGE} bytes")
        );
        assert!(error(0, 1, 0).starts_with("invalid page size: 0 is not"));
        assert_eq!(
            error(usize::MAX - 10, 20, PAGE),
            format!(
                "invalid address range: {:#x} + 0x14 bytes wraps around the address space",
                usize::MAX - 10
            )
        );
        assert!(error(usize::MAX - 10, 5, PAGE).contains("wraps around"));
    }
}
