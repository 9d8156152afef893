//! Memory policy: binding the calling thread ([`bind_thread_to_node`]) or a range of memory
//! ([`bind_range`]) to a NUMA node, and reading the thread's policy ([`thread_policy`]).

use std::marker::PhantomData;

use libc::c_int;

use super::nodemask::NodeMask;
use super::sys;
use super::topology::check_node;
use crate::error::{Error, Result};

/// A memory policy mode (`MPOL_*` in `set_mempolicy(2)`).
///
/// # Examples
///
/// ```
/// use shmkit_os::numa::{PolicyMode, thread_policy};
///
/// // A thread that never set a policy follows the system default.
/// let policy = std::thread::spawn(thread_policy).join().expect("thread")?;
/// assert_eq!(policy.mode(), PolicyMode::Default);
/// # Ok::<(), shmkit_os::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PolicyMode {
    /// `MPOL_DEFAULT`: no policy of its own; the system default (local allocation).
    Default,
    /// `MPOL_PREFERRED`: the node first, others when it is full.
    Preferred,
    /// `MPOL_BIND`: only these nodes.
    Bind,
    /// `MPOL_INTERLEAVE`: page by page round robin over these nodes.
    Interleave,
    /// `MPOL_LOCAL`: the node of the CPU that faults the page.
    Local,
    /// `MPOL_PREFERRED_MANY`: these nodes first, others when they are full (Linux 5.15).
    PreferredMany,
    /// `MPOL_WEIGHTED_INTERLEAVE`: interleave with per-node weights (Linux 6.9).
    WeightedInterleave,
    /// A mode newer than this crate, by its number.
    Unknown(i32),
}

impl PolicyMode {
    /// The mode of a raw `get_mempolicy` result, ignoring its `MPOL_F_*` flags.
    fn from_raw(raw: c_int) -> Self {
        match raw & !sys::MPOL_MODE_FLAGS {
            sys::MPOL_DEFAULT => Self::Default,
            sys::MPOL_PREFERRED => Self::Preferred,
            sys::MPOL_BIND => Self::Bind,
            sys::MPOL_INTERLEAVE => Self::Interleave,
            sys::MPOL_LOCAL => Self::Local,
            sys::MPOL_PREFERRED_MANY => Self::PreferredMany,
            sys::MPOL_WEIGHTED_INTERLEAVE => Self::WeightedInterleave,
            other => Self::Unknown(other),
        }
    }
}

/// A thread's memory policy, as `get_mempolicy` reports it: mode, mode flags and nodes.
///
/// # Examples
///
/// ```
/// use shmkit_os::numa::{PolicyMode, bind_thread_to_node, thread_policy};
///
/// let _guard = bind_thread_to_node(0)?;
/// let policy = thread_policy()?;
/// assert_eq!(policy.mode(), PolicyMode::Bind);
/// assert_eq!(policy.nodes(), [0]);
/// # Ok::<(), shmkit_os::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThreadPolicy {
    /// The mode with its `MPOL_F_*` flags, exactly as reported, so that restoring it restores
    /// the flags (static or relative nodes, NUMA balancing) too.
    raw_mode: c_int,
    nodes: Vec<u32>,
}

impl ThreadPolicy {
    /// The policy mode.
    pub fn mode(&self) -> PolicyMode {
        PolicyMode::from_raw(self.raw_mode)
    }

    /// The policy's nodes, ascending; empty for [`PolicyMode::Default`] and
    /// [`PolicyMode::Local`].
    pub fn nodes(&self) -> &[u32] {
        &self.nodes
    }

    /// Makes this the calling thread's policy again.
    fn apply(&self, why: &str) -> Result<()> {
        let mask = NodeMask::from_nodes(self.nodes.iter().copied())?;
        // MPOL_DEFAULT refuses a mask, even an empty one given with a maxnode; so does MPOL_LOCAL.
        let mask = (!mask.is_empty()).then_some(&mask);
        sys::set_mempolicy(self.raw_mode, mask)
            .map_err(Error::io("set_mempolicy", format!("this thread ({why})")))
    }
}

/// `get_mempolicy(&mode, mask, maxnode, NULL, 0)`: the calling thread's memory policy.
///
/// # Errors
///
/// [`Error::Os`] if the call fails (`ENOSYS` on a kernel built without NUMA, `EPERM` where a
/// seccomp filter forbids it).
///
/// # Examples
///
/// ```
/// use shmkit_os::numa::{PolicyMode, bind_thread_to_node, thread_policy};
///
/// let before = thread_policy()?;
/// let guard = bind_thread_to_node(0)?;
/// assert_eq!(thread_policy()?.mode(), PolicyMode::Bind);
/// drop(guard);
/// assert_eq!(thread_policy()?, before);
/// # Ok::<(), shmkit_os::Error>(())
/// ```
#[doc(alias = "get_mempolicy")]
pub fn thread_policy() -> Result<ThreadPolicy> {
    let mut mask = NodeMask::empty();
    let raw_mode =
        sys::get_mempolicy(&mut mask).map_err(Error::io("get_mempolicy", "this thread"))?;
    Ok(ThreadPolicy { raw_mode, nodes: mask.nodes() })
}

/// `set_mempolicy(MPOL_BIND, {node})`: makes every page the calling thread allocates from now on
/// come from node `node`, until the returned guard drops and puts the previous policy back.
///
/// The policy is the thread's own: threads already running are unaffected, and the guard is
/// `!Send` so that it restores the policy of the thread that set it. Threads spawned while the
/// guard lives inherit the policy (`clone` copies it) and keep it after the guard drops. It applies where a page is first
/// touched (faulted in) by this thread, in any mapping without a policy of its own (see
/// [`bind_range`]); pages already present do not move. With `MPOL_BIND`, an allocation the node
/// cannot satisfy fails (`SIGBUS` for huge pages, the OOM killer for normal pages) rather than
/// falling back to another node.
///
/// # Errors
///
/// [`Error::UnknownNode`] before any call if the machine has no node `node`; [`Error::Os`] if
/// reading or setting the policy fails (`EINVAL` for a node outside this thread's cpuset).
///
/// # Examples
///
/// ```
/// use shmkit_os::numa::bind_thread_to_node;
///
/// let guard = bind_thread_to_node(0)?;
/// // ... create and touch a region: its pages come from node 0 ...
/// guard.restore()?;
///
/// let error = bind_thread_to_node(999).unwrap_err();
/// assert!(error.to_string().starts_with("NUMA node 999 does not exist"));
/// # Ok::<(), shmkit_os::Error>(())
/// ```
#[doc(alias = "set_mempolicy")]
pub fn bind_thread_to_node(node: u32) -> Result<ThreadPolicyGuard> {
    check_node(node)?;
    let mask = NodeMask::from_nodes([node])?;
    let saved = thread_policy()?;
    sys::set_mempolicy(sys::MPOL_BIND, Some(&mask))
        .map_err(Error::io("set_mempolicy", format!("this thread (MPOL_BIND to node {node})")))?;
    Ok(ThreadPolicyGuard { saved, armed: true, _same_thread: PhantomData })
}

/// Puts back the calling thread's previous memory policy when dropped; made by
/// [`bind_thread_to_node`].
///
/// Dropping ignores a failure to restore (there is nothing a destructor could do about it; it
/// would take a seccomp filter installed in between); call [`ThreadPolicyGuard::restore`] to see
/// it. Guards nest: drop them in reverse order of creation.
///
/// The guard stays on its thread:
///
/// ```compile_fail
/// fn send<T: Send>(_: T) {}
/// send(shmkit_os::numa::bind_thread_to_node(0));
/// ```
///
/// # Examples
///
/// ```
/// use shmkit_os::numa::{PolicyMode, bind_thread_to_node, thread_policy};
///
/// let guard = bind_thread_to_node(0)?;
/// assert_eq!(guard.previous().mode(), PolicyMode::Default);
/// drop(guard);
/// assert_eq!(thread_policy()?.mode(), PolicyMode::Default);
/// # Ok::<(), shmkit_os::Error>(())
/// ```
#[must_use = "dropping the guard at once restores the previous policy"]
#[derive(Debug)]
pub struct ThreadPolicyGuard {
    saved: ThreadPolicy,
    armed: bool,
    /// A memory policy belongs to a thread: restoring it from another would change the wrong
    /// thread's policy, so the guard is neither `Send` nor `Sync`.
    _same_thread: PhantomData<*const ()>,
}

impl ThreadPolicyGuard {
    /// The policy the thread had before, which dropping the guard restores.
    pub fn previous(&self) -> &ThreadPolicy {
        &self.saved
    }

    /// Restores the previous policy now, reporting a failure that dropping would ignore.
    ///
    /// # Errors
    ///
    /// [`Error::Os`] if `set_mempolicy` fails.
    ///
    /// # Examples
    ///
    /// ```
    /// let guard = shmkit_os::numa::bind_thread_to_node(0)?;
    /// guard.restore()?;
    /// # Ok::<(), shmkit_os::Error>(())
    /// ```
    pub fn restore(mut self) -> Result<()> {
        self.armed = false;
        self.saved.apply("restoring its previous policy")
    }
}

impl Drop for ThreadPolicyGuard {
    fn drop(&mut self) {
        if self.armed {
            // Nothing useful to do with an error in a destructor; `restore` reports it.
            let _ = self.saved.apply("restoring its previous policy");
        }
    }
}

/// `mbind(addr, len, MPOL_BIND, {node}, maxnode, flags)`: binds the pages of
/// `addr..addr + len` to node `node`.
///
/// Pages faulted in later come from `node` whichever thread touches them. With `strict`, pages
/// already present elsewhere are moved there too (`MPOL_MF_MOVE`) and the call fails with `EIO`
/// if any cannot be (`MPOL_MF_STRICT`); without it, present pages stay where they are.
///
/// For shared mappings of shared memory (POSIX shm, memfd, hugetlbfs) the policy belongs to the
/// shared object, so it also governs pages other processes fault in.
///
/// # Safety
///
/// - `addr..addr + len` must be part of mappings the caller owns, or may re-place: the policy
///   and any page moves apply to whoever else uses that memory, and a binding made behind another
///   owner's back breaks what it may rely on (its own `mbind`, its huge page accounting).
/// - Moving pages keeps their contents: other threads touching the range meanwhile see only
///   latency, so no further care is needed for concurrent readers or writers.
///
/// # Errors
///
/// [`Error::UnknownNode`] before any call if the machine has no node `node`;
/// [`Error::InvalidInput`] if `addr` is not aligned to the system page size; [`Error::Os`] if
/// `mbind` fails (`EFAULT` or `ENOMEM` for a range that is not all mapped, `EINVAL` for a
/// hugetlbfs range not aligned to its huge page size, `EIO` when `strict` could not move pages).
///
/// # Examples
///
/// ```
/// use std::ptr;
/// use rustix::mm::{MapFlags, ProtFlags, mmap_anonymous, munmap};
/// use shmkit_os::numa::{bind_range, page_nodes};
///
/// let page = rustix::param::page_size();
/// let len = 4 * page;
/// // SAFETY: a fresh private anonymous mapping, placed by the kernel.
/// let addr = unsafe {
///     mmap_anonymous(ptr::null_mut(), len, ProtFlags::READ | ProtFlags::WRITE, MapFlags::PRIVATE)
/// }?
/// .cast::<u8>();
/// // SAFETY: the mapping was just created here and nothing else uses it.
/// unsafe { bind_range(addr, len, 0, true) }?;
/// // SAFETY: the mapping is `len` bytes, readable and writable.
/// unsafe { addr.write_bytes(1, len) };
/// assert_eq!(page_nodes(addr, len, page)?, [0; 4]);
/// // SAFETY: unmapping what was mapped above; nothing refers to it any more.
/// unsafe { munmap(addr.cast(), len) }?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[doc(alias = "mbind")]
pub unsafe fn bind_range(addr: *mut u8, len: usize, node: u32, strict: bool) -> Result<()> {
    check_node(node)?;
    let mask = NodeMask::from_nodes([node])?;
    let page = rustix::param::page_size();
    if !addr.addr().is_multiple_of(page) {
        return Err(Error::invalid(
            "address",
            format!("{addr:p} is not aligned to the {page}-byte page size, as mbind needs"),
        ));
    }
    let flags = if strict { sys::MPOL_MF_STRICT | sys::MPOL_MF_MOVE } else { 0 };
    let target = format!("{:#x}..{:#x}", addr.addr(), addr.addr().saturating_add(len));
    // SAFETY: the range is the caller's to re-place (this function's contract).
    unsafe { sys::mbind(addr, len, sys::MPOL_BIND, &mask, flags) }
        .map_err(Error::io("mbind", target))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_modes_without_their_flags() {
        assert_eq!(PolicyMode::from_raw(0), PolicyMode::Default);
        assert_eq!(PolicyMode::from_raw(2), PolicyMode::Bind);
        assert_eq!(PolicyMode::from_raw(2 | sys::MPOL_F_STATIC_NODES), PolicyMode::Bind);
        assert_eq!(PolicyMode::from_raw(3 | sys::MPOL_F_RELATIVE_NODES), PolicyMode::Interleave);
        assert_eq!(PolicyMode::from_raw(2 | sys::MPOL_F_NUMA_BALANCING), PolicyMode::Bind);
        assert_eq!(PolicyMode::from_raw(4), PolicyMode::Local);
        assert_eq!(PolicyMode::from_raw(6), PolicyMode::WeightedInterleave);
        assert_eq!(PolicyMode::from_raw(42), PolicyMode::Unknown(42));
    }
}
