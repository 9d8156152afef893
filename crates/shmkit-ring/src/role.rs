//! Single-holder roles (an SPSC ring's producer and consumer, a seqlock's writer): an owner word in
//! shared memory, 0 while free, else the holder's owner id (a process id in practice).
//!
//! Claiming is a CAS `0 → owner`, so of two attachments racing for a role exactly one wins; a
//! release is a CAS `owner → 0`, so a holder that was taken over (presumed dead, but alive after
//! all) never frees the role of its successor; a take-over is a CAS `dead → new`, so of two
//! processes taking over the same dead holder exactly one wins.
//!
//! Orderings: a claim or take-over `Acquire`s, a release `Release`s, so that a new holder sees
//! everything its predecessor wrote before releasing. A dead holder released nothing; what it
//! published (its position, stored with `Release`) the successor reads with `Acquire` itself.

use core::num::NonZeroU32;

use crate::error::{Error, Result};
use crate::primitive::{AtomicU32, Ordering};

/// Which role of which primitive a word holds, for errors.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RoleName {
    pub(crate) what: &'static str,
    pub(crate) role: &'static str,
}

/// Claims a free role: `0 → owner`, else [`Error::RoleTaken`] with the current holder.
pub(crate) fn claim(word: &AtomicU32, owner: NonZeroU32, name: RoleName) -> Result<()> {
    word.compare_exchange(0, owner.get(), Ordering::Acquire, Ordering::Relaxed)
        .map(drop)
        .map_err(|holder| Error::RoleTaken { what: name.what, role: name.role, owner: holder })
}

/// Takes over a role held by `dead`: `dead → new`, else [`Error::TakeOver`] with the holder found.
pub(crate) fn take_over(
    word: &AtomicU32,
    dead: NonZeroU32,
    new: NonZeroU32,
    name: RoleName,
) -> Result<()> {
    word.compare_exchange(dead.get(), new.get(), Ordering::Acquire, Ordering::Relaxed)
        .map(drop)
        .map_err(|holder| Error::TakeOver {
            what: name.what,
            role: name.role,
            owner: holder,
            expected: dead.get(),
        })
}

/// Releases a role this attachment holds (`owner → 0`); does nothing if it was taken over.
pub(crate) fn release(word: &AtomicU32, owner: NonZeroU32) {
    let _ = word.compare_exchange(owner.get(), 0, Ordering::Release, Ordering::Relaxed);
}

/// The owner id of this process: its pid.
#[cfg(feature = "std")]
pub(crate) fn current_process() -> NonZeroU32 {
    // A process id is never 0 (that is the scheduler's idle task); 1 is a safe stand-in anyway.
    NonZeroU32::new(std::process::id()).unwrap_or(NonZeroU32::MIN)
}

/// Whether the process `pid` is gone (`kill(pid, 0)` fails with `ESRCH`). Any other answer,
/// including `EPERM` (a process of another user has that pid), counts as alive.
#[cfg(feature = "std")]
pub(crate) fn process_is_dead(pid: NonZeroU32) -> bool {
    let Ok(raw) = i32::try_from(pid.get()) else { return false };
    let Some(pid) = rustix::process::Pid::from_raw(raw) else { return false };
    rustix::process::test_kill_process(pid) == Err(rustix::io::Errno::SRCH)
}

/// Claims the role for this process: free → claim it; held by a process that is gone (by the
/// pid test of [`process_is_dead`]) → take it over; else [`Error::RoleTaken`].
#[cfg(feature = "std")]
pub(crate) fn claim_or_take_over_dead(word: &AtomicU32, name: RoleName) -> Result<()> {
    let me = current_process();
    loop {
        let holder = word.load(Ordering::Relaxed);
        let Some(holder) = NonZeroU32::new(holder) else {
            match claim(word, me, name) {
                // Someone claimed it between the load and the CAS: look at the new holder.
                Err(Error::RoleTaken { .. }) => continue,
                other => return other,
            }
        };
        if holder == me || !process_is_dead(holder) {
            return Err(Error::RoleTaken { what: name.what, role: name.role, owner: holder.get() });
        }
        match take_over(word, holder, me, name) {
            // It changed hands (released, or taken over by another process): look again.
            Err(Error::TakeOver { .. }) => {}
            other => return other,
        }
    }
}
