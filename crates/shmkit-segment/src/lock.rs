//! The segment's lock: a lock the kernel holds, so that a peer writing garbage over the segment
//! cannot break it or crash its holder, and the kernel releases it when its holder dies.
//!
//! - POSIX and memfd segments: `flock(LOCK_EX)` on the process's own open file description of the
//!   segment's file. The kernel drops the lock when the description closes, which a process that
//!   dies does.
//! - System V segments: the segment's [`SemLock`] (a System V semaphore with `SEM_UNDO`).
//!
//! Both exclude processes, not the threads of one process (`flock` belongs to the description
//! all clones share), so an in-process mutex is taken first.
//!
//! Owner death: the holder records itself (pid and start time) in the header's `lock_holder`
//! word after taking the lock and clears it before releasing. A locker that finds the word set
//! knows the previous holder died holding the lock, and its guard says so
//! ([`SegmentGuard::owner_died`]): the data the lock protects may be half-written. The word is
//! only a report: a peer that scribbles it makes the next guard report a death that did not
//! happen, never breaks the lock.
//!
//! Why not a robust pthread mutex in the header: glibc links a held robust mutex into its
//! owner's robust list through pointers stored in the mutex itself, and follows them on unlock;
//! a peer that writes over the mutex while this process holds it can make this process write
//! through a pointer of the peer's choosing (see `shmkit_sync::RobustMutex`'s trust note). A
//! segment's peer is not trusted, so the lock lives in the kernel.

use std::cell::Cell;
use std::fmt;
use std::os::fd::BorrowedFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, TryLockError};

use rustix::fs::FlockOperation;
use shmkit_sync::{SemGuard, SemLock};

use crate::error::{Error, Result};
use crate::process::{self, Identity};

/// The in-process half of the lock: a mutex, and which thread holds it (to refuse a relock by
/// the holder instead of deadlocking).
#[derive(Debug, Default)]
pub(crate) struct LocalLock {
    mutex: Mutex<()>,
    owner: AtomicU64,
}

/// The kernel half of the lock.
#[derive(Clone, Copy, Debug)]
pub(crate) enum KernelLock<'a> {
    /// `flock` on this descriptor.
    File(BorrowedFd<'a>),
    /// The System V semaphore.
    Semaphore(&'a SemLock),
}

/// A number for this thread, never 0.
fn thread_number() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    thread_local! {
        static NUMBER: Cell<u64> = const { Cell::new(0) };
    }
    NUMBER.with(|number| {
        if number.get() == 0 {
            number.set(NEXT.fetch_add(1, Ordering::Relaxed));
        }
        number.get()
    })
}

/// Takes the lock: the in-process mutex, then the kernel lock, then records this process as the
/// holder. With `wait` false, a held lock is [`Error::WouldBlock`].
pub(crate) fn acquire<'a>(
    local: &'a LocalLock,
    kernel: KernelLock<'a>,
    holder: &'a AtomicU64,
    label: &str,
    wait: bool,
) -> Result<SegmentGuard<'a>> {
    let thread = thread_number();
    if local.owner.load(Ordering::Relaxed) == thread {
        return Err(Error::Deadlock { target: label.to_owned() });
    }
    let would_block = || Error::WouldBlock { target: label.to_owned() };
    let guard = if wait {
        local.mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    } else {
        match local.mutex.try_lock() {
            Ok(guard) => guard,
            Err(TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
            Err(TryLockError::WouldBlock) => return Err(would_block()),
        }
    };
    let held = match kernel {
        KernelLock::File(fd) => {
            let operation = if wait {
                FlockOperation::LockExclusive
            } else {
                FlockOperation::NonBlockingLockExclusive
            };
            loop {
                match rustix::fs::flock(fd, operation) {
                    Ok(()) => break Held::File(fd),
                    Err(rustix::io::Errno::INTR) => {}
                    Err(rustix::io::Errno::WOULDBLOCK) if !wait => return Err(would_block()),
                    Err(errno) => return Err(Error::os("flock(LOCK_EX)", label)(errno)),
                }
            }
        }
        KernelLock::Semaphore(semaphore) => {
            let taken = if wait { semaphore.lock().map(Some) } else { semaphore.try_lock() };
            match taken {
                Ok(Some(guard)) => Held::Semaphore { _guard: guard },
                Ok(None) => return Err(would_block()),
                Err(source) => return Err(crate::backing::lock_error(label, source)),
            }
        }
    };
    local.owner.store(thread, Ordering::Relaxed);
    let me = process::current().word();
    // AcqRel: see what the previous holder wrote before releasing (the kernel lock orders it
    // already; this keeps the word's own history straight).
    let previous = holder.swap(me, Ordering::AcqRel);
    Ok(SegmentGuard { holder, me, previous, owner: &local.owner, held, _local: guard })
}

/// What the kernel holds for a guard.
enum Held<'a> {
    File(BorrowedFd<'a>),
    /// Released when dropped.
    Semaphore {
        _guard: SemGuard<'a>,
    },
}

/// Proof that this thread holds a segment's lock; released on drop (or [`SegmentGuard::unlock`]).
///
/// The lock is held by the kernel: `flock` on the process's own open file description for POSIX
/// and memfd segments, the segment's System V semaphore (`SEM_UNDO`) for System V ones, after an
/// in-process mutex that orders the threads of one process. The kernel releases it when its
/// holder dies, and no byte of the segment can corrupt it. (Not a robust pthread mutex in the
/// header: glibc follows pointers stored in a held robust mutex, which an untrusted peer could
/// overwrite.) The holder records its pid and start time in the header while it holds the lock,
/// so the next holder learns of a death: [`SegmentGuard::owner_died`]. A peer scribbling that
/// record can only make a guard report a death that did not happen.
///
/// A child made by `fork` (without `exec`) shares the parent's open file description, and with
/// it a held `flock`: fork only while not holding the lock.
///
/// Not `Send`: the in-process half is a mutex of this thread.
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct SegmentGuard<'a> {
    holder: &'a AtomicU64,
    me: u64,
    previous: u64,
    owner: &'a AtomicU64,
    // Field order is drop order: the kernel lock goes before the in-process mutex.
    held: Held<'a>,
    _local: MutexGuard<'a, ()>,
}

impl SegmentGuard<'_> {
    /// Whether the previous holder died holding the lock (it never released it): the data the
    /// lock protects may be half-written, and should be checked or repaired now. The lock itself
    /// works as always.
    pub fn owner_died(&self) -> bool {
        self.previous != 0
    }

    /// The pid of the holder that died holding the lock, if one did.
    pub fn dead_owner_pid(&self) -> Option<u32> {
        self.owner_died().then(|| Identity::pid_of_word(self.previous))
    }

    /// Releases the lock (as dropping the guard does).
    pub fn unlock(self) {
        drop(self);
    }
}

impl Drop for SegmentGuard<'_> {
    fn drop(&mut self) {
        // Cleared before the release, so that the next holder finds it clear. A peer may have
        // written over it: then leave its value, which the next holder reports.
        let _ = self.holder.compare_exchange(self.me, 0, Ordering::Release, Ordering::Relaxed);
        self.owner.store(0, Ordering::Relaxed);
        if let Held::File(fd) = self.held {
            // LOCK_UN never blocks; the only failures (EBADF, EINTR) cannot happen on a
            // descriptor the segment keeps open and a call that does not wait.
            let _ = rustix::fs::flock(fd, FlockOperation::Unlock);
        }
        // A semaphore is released by its `SemGuard` field, dropped after this.
    }
}

impl fmt::Debug for SegmentGuard<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SegmentGuard")
            .field("owner_died", &self.owner_died())
            .field("dead_owner_pid", &self.dead_owner_pid())
            .finish_non_exhaustive()
    }
}
