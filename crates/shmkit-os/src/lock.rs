//! Locking the whole process in memory (`mlockall`, `munlockall`): for latency-critical processes
//! that must never page-fault on swapped-out or not-yet-touched memory.
//!
//! Locking is per process: it covers every thread, and `MCL_FUTURE` every mapping made later
//! (shared regions too). Without `CAP_IPC_LOCK` it is bounded by `RLIMIT_MEMLOCK`, which a
//! failure names ([`Error::MemlockLimit`]).
//!
//! ```
//! use shmkit_os::Error;
//! use shmkit_os::lock::{LockAll, lock_all, unlock_all};
//!
//! // Lock what is mapped now and, as it is faulted in, whatever is mapped later.
//! match lock_all(LockAll { current: true, future: true, on_fault: true }) {
//!     Ok(()) => unlock_all()?,
//!     // Without CAP_IPC_LOCK, a process larger than RLIMIT_MEMLOCK cannot.
//!     Err(error @ Error::MemlockLimit { .. }) => assert!(error.to_string().contains("RLIMIT_MEMLOCK")),
//!     Err(error) => return Err(error),
//! }
//! # Ok::<(), shmkit_os::Error>(())
//! ```

use rustix::mm::MlockAllFlags;

use crate::error::{Error, Result};
use crate::map::memlock_error;

/// What [`lock_all`] locks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[allow(
    clippy::struct_excessive_bools,
    reason = "three independent flags of one call, as in mlockall(2)"
)]
pub struct LockAll {
    /// `MCL_CURRENT`: every page mapped now.
    pub current: bool,
    /// `MCL_FUTURE`: every page mapped later, as it is mapped.
    pub future: bool,
    /// `MCL_ONFAULT`: with the others, lock pages when first touched instead of faulting every
    /// page in now (a sparse mapping stays sparse).
    pub on_fault: bool,
}

/// `mlockall(flags)`—Locks the process's pages in memory as `what` says.
///
/// # Errors
///
/// [`Error::InvalidInput`] if neither `current` nor `future` is set; [`Error::MemlockLimit`]
/// (target "this process") when `RLIMIT_MEMLOCK` or the lack of `CAP_IPC_LOCK` forbids it;
/// [`Error::Os`] for the rest.
///
/// # References
///  - [Linux `mlockall(2)`](https://man7.org/linux/man-pages/man2/mlockall.2.html)
#[doc(alias = "mlockall")]
pub fn lock_all(what: LockAll) -> Result<()> {
    if !what.current && !what.future {
        return Err(Error::invalid("lock", "lock current or future pages, or both"));
    }
    let mut flags = MlockAllFlags::empty();
    if what.current {
        flags |= MlockAllFlags::CURRENT;
    }
    if what.future {
        flags |= MlockAllFlags::FUTURE;
    }
    if what.on_fault {
        flags |= MlockAllFlags::ONFAULT;
    }
    rustix::mm::mlockall(flags).map_err(|errno| memlock_error(errno, "mlockall", "this process", 0))
}

/// `munlockall()`—Unlocks every page of the process and cancels `MCL_FUTURE`.
///
/// # Errors
///
/// [`Error::Os`] if the kernel refuses (it does not on Linux).
///
/// # References
///  - [Linux `munlockall(2)`](https://man7.org/linux/man-pages/man2/munlockall.2.html)
#[doc(alias = "munlockall")]
pub fn unlock_all() -> Result<()> {
    rustix::mm::munlockall().map_err(Error::os("munlockall", "this process"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn needs_current_or_future() {
        assert!(matches!(
            lock_all(LockAll { on_fault: true, ..LockAll::default() }),
            Err(Error::InvalidInput { .. })
        ));
    }
}
