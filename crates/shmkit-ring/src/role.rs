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

/// How a role handle's constructor gets the role: the one thing its four constructors differ in.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Claim {
    /// [`claim`] it for this owner.
    Owner(NonZeroU32),
    /// [`take_over`] from `dead` for `new`.
    TakeOver { dead: NonZeroU32, new: NonZeroU32 },
    /// [`claim_or_take_over_dead`] for this process.
    #[cfg(feature = "std")]
    IfDead,
}

impl Claim {
    /// Gets the role in `word` as this says; returns the owner id it is now held for.
    pub(crate) fn apply(self, word: &AtomicU32, name: RoleName) -> Result<NonZeroU32> {
        match self {
            Self::Owner(owner) => claim(word, owner, name).map(|()| owner),
            Self::TakeOver { dead, new } => take_over(word, dead, new, name).map(|()| new),
            #[cfg(feature = "std")]
            Self::IfDead => claim_or_take_over_dead(word, name).map(|()| current_process()),
        }
    }
}

/// Generates a role handle's public constructors (`attach`, `take_over`, and with `std`
/// `attach_current_process` and `take_over_if_dead`) around the handle's own
/// `unsafe fn open_as(ptr: NonNull<u8>, len: usize, claim: role::Claim) -> Result<Self>`, whose
/// contract is `attach`'s. Each constructor takes its doc comment; `take_over` also the names of
/// its two owner parameters (dead, then new).
macro_rules! constructors {
    (
        $(#[$attach:meta])*
        attach;
        $(#[$take_over:meta])*
        take_over($dead:ident, $new:ident);
        $(#[$current:meta])*
        attach_current_process;
        $(#[$if_dead:meta])*
        take_over_if_dead;
    ) => {
        $(#[$attach])*
        pub unsafe fn attach(
            ptr: ::core::ptr::NonNull<u8>,
            len: usize,
            owner: ::core::num::NonZeroU32,
        ) -> $crate::error::Result<Self> {
            // SAFETY: forwarded from the caller.
            unsafe { Self::open_as(ptr, len, $crate::role::Claim::Owner(owner)) }
        }

        $(#[$take_over])*
        pub unsafe fn take_over(
            ptr: ::core::ptr::NonNull<u8>,
            len: usize,
            $dead: ::core::num::NonZeroU32,
            $new: ::core::num::NonZeroU32,
        ) -> $crate::error::Result<Self> {
            let claim = $crate::role::Claim::TakeOver { dead: $dead, new: $new };
            // SAFETY: forwarded from the caller.
            unsafe { Self::open_as(ptr, len, claim) }
        }

        $(#[$current])*
        #[cfg(feature = "std")]
        pub unsafe fn attach_current_process(
            ptr: ::core::ptr::NonNull<u8>,
            len: usize,
        ) -> $crate::error::Result<Self> {
            // SAFETY: forwarded from the caller.
            unsafe { Self::attach(ptr, len, $crate::role::current_process()) }
        }

        $(#[$if_dead])*
        #[cfg(feature = "std")]
        pub unsafe fn take_over_if_dead(
            ptr: ::core::ptr::NonNull<u8>,
            len: usize,
        ) -> $crate::error::Result<Self> {
            // SAFETY: forwarded from the caller.
            unsafe { Self::open_as(ptr, len, $crate::role::Claim::IfDead) }
        }
    };
}
pub(crate) use constructors;
