//! The four NUMA system calls, through `libc::syscall` because rustix has none of them and glibc
//! leaves them to libnuma. Every raw call of `numa` is here: each wrapper is a thin, typed call in
//! the rustix manner, and the code above it is safe (`bind_range` only passes its caller's
//! promise on to [`mbind`]).
//!
//! Constants the `libc` crate lacks are copied from `include/uapi/linux/mempolicy.h`.

use std::io;
use std::ptr;

use libc::{c_int, c_long, c_uint, c_ulong, c_void};

use super::nodemask::NodeMask;

pub(super) const MPOL_DEFAULT: c_int = 0;
pub(super) const MPOL_PREFERRED: c_int = 1;
pub(super) const MPOL_BIND: c_int = 2;
pub(super) const MPOL_INTERLEAVE: c_int = 3;
pub(super) const MPOL_LOCAL: c_int = 4;
pub(super) const MPOL_PREFERRED_MANY: c_int = 5;
pub(super) const MPOL_WEIGHTED_INTERLEAVE: c_int = 6;

pub(super) const MPOL_F_NUMA_BALANCING: c_int = 1 << 13;
pub(super) const MPOL_F_RELATIVE_NODES: c_int = 1 << 14;
pub(super) const MPOL_F_STATIC_NODES: c_int = 1 << 15;
/// The optional mode flags `get_mempolicy` may report alongside the mode.
pub(super) const MPOL_MODE_FLAGS: c_int =
    MPOL_F_STATIC_NODES | MPOL_F_RELATIVE_NODES | MPOL_F_NUMA_BALANCING;

/// `mbind` flag: fail with `EIO` if existing pages do not follow the policy.
pub(super) const MPOL_MF_STRICT: c_uint = 1 << 0;
/// `mbind` flag: move existing pages of this process that do not follow the policy.
pub(super) const MPOL_MF_MOVE: c_uint = 1 << 1;

// Every argument is passed at full register width (c_long, c_ulong or a pointer): `syscall` is
// variadic and reads each as a long, so a narrower integer would leave its upper bits undefined.

/// Turns a raw `syscall` return into the result, reading `errno` right after the call.
fn check(ret: c_long) -> io::Result<c_long> {
    if ret == -1 { Err(io::Error::last_os_error()) } else { Ok(ret) }
}

/// `get_mempolicy(&mode, mask, maxnode, NULL, 0)`: the calling thread's policy mode (with its
/// `MPOL_F_*` flags) and nodes.
///
/// See `get_mempolicy(2)`.
pub(super) fn get_mempolicy(mask: &mut NodeMask) -> io::Result<c_int> {
    let mut mode: c_int = 0;
    // SAFETY: `mode` is a valid, writable c_int; `mask` is a writable array of MAX_NODES bits and
    // MAXNODE makes the kernel write exactly that many (see nodemask.rs); addr NULL with flags 0
    // asks for the thread policy, so the kernel dereferences nothing else.
    check(unsafe {
        libc::syscall(
            libc::SYS_get_mempolicy,
            ptr::from_mut(&mut mode),
            mask.as_mut_ptr(),
            NodeMask::MAXNODE,
            ptr::null::<c_void>(),
            0 as c_ulong,
        )
    })?;
    Ok(mode)
}

/// `set_mempolicy(mode, mask, maxnode)`: sets the calling thread's policy; `None` passes a NULL
/// mask, as `MPOL_DEFAULT` and `MPOL_LOCAL` require.
///
/// See `set_mempolicy(2)`.
pub(super) fn set_mempolicy(mode: c_int, mask: Option<&NodeMask>) -> io::Result<()> {
    let (mask, maxnode) = match mask {
        Some(mask) => (mask.as_ptr(), NodeMask::MAXNODE),
        None => (ptr::null(), 0),
    };
    // SAFETY: `mask` is NULL with maxnode 0, or a readable array of MAX_NODES bits with MAXNODE
    // making the kernel read no more than that; the call changes only this thread's policy for
    // future allocations, which no Rust invariant depends on.
    check(unsafe { libc::syscall(libc::SYS_set_mempolicy, c_long::from(mode), mask, maxnode) })?;
    Ok(())
}

/// `mbind(addr, len, mode, mask, maxnode, flags)`: sets the policy of a range of this process's
/// address space and, with `MPOL_MF_MOVE`, migrates its pages.
///
/// See `mbind(2)`.
///
/// # Safety
///
/// - `addr..addr + len` must lie in mappings the caller owns: no other code may rely on the range
///   keeping its current policy. Contents are unaffected (migration copies pages).
pub(super) unsafe fn mbind(
    addr: *mut u8,
    len: usize,
    mode: c_int,
    mask: &NodeMask,
    flags: c_uint,
) -> io::Result<()> {
    // SAFETY: `mask` is a readable array of MAX_NODES bits and MAXNODE makes the kernel read no
    // more than that; the range is the caller's to re-bind (this function's contract), and the
    // kernel checks it is mapped (ENOMEM/EFAULT otherwise) rather than touching it from here.
    check(unsafe {
        libc::syscall(
            libc::SYS_mbind,
            addr.cast::<c_void>(),
            len,
            c_long::from(mode),
            mask.as_ptr(),
            NodeMask::MAXNODE,
            c_ulong::from(flags),
        )
    })?;
    Ok(())
}

/// `move_pages(0, count, pages, NULL, status, 0)`: for each address in `pages`, the node of the
/// page holding it, or a negative errno (`-ENOENT` not present, `-EFAULT` unmapped or the zero
/// page), written to `status`.
///
/// With `nodes` NULL the call only reports: nothing moves, and the addresses are looked up in the
/// page tables, never dereferenced, so any address value is harmless.
///
/// See `move_pages(2)`.
pub(super) fn query_pages(pages: &[*const c_void], status: &mut [c_int]) -> io::Result<()> {
    let count = pages.len().min(status.len());
    // SAFETY: pid 0 is this process; `pages` is a readable array and `status` a writable array,
    // both of at least `count` elements; `nodes` NULL makes it a query that neither moves pages
    // nor reads through the addresses.
    check(unsafe {
        libc::syscall(
            libc::SYS_move_pages,
            0 as c_long,
            count as c_ulong,
            pages.as_ptr(),
            ptr::null::<c_int>(),
            status.as_mut_ptr(),
            0 as c_long,
        )
    })?;
    Ok(())
}
