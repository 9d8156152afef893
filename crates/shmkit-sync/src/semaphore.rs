//! [`SemLock`]: a lock made of one System V semaphore, for System V shared segments.
//!
//! The semaphore holds 1 when the lock is free and 0 when it is taken. Every operation passes
//! `SEM_UNDO`, so the kernel keeps, per process, the sum of what that process did, and applies
//! its opposite when the process exits: a holder that dies (even `kill -9`) gives the lock back.
//! Unlike [`RobustMutex`](crate::RobustMutex), nobody is told: the next locker cannot know that
//! the data under the lock may be half-written. Use the robust mutex where that matters.

use core::ptr;
use core::time::Duration;
use std::io;
use std::time::Instant;

use libc::{c_int, key_t};

use crate::error::{Error, Result};

const WHAT: &str = "SysV semaphore";

unsafe extern "C" {
    // glibc's `semtimedop`, which the `libc` crate does not declare for Linux.
    fn semtimedop(
        semid: c_int,
        sops: *mut libc::sembuf,
        nsops: libc::size_t,
        timeout: *const libc::timespec,
    ) -> c_int;
}

/// A lock on one System V semaphore, released by the kernel when its holder dies (`SEM_UNDO`).
///
/// A handle made by [`SemLock::create`] or [`SemLock::create_private`] removes the semaphore
/// when dropped (see [`SemLock::set_remove_on_drop`]); one made by [`SemLock::open`] or
/// [`SemLock::open_id`] does not. The lock is not recursive and does not know its holder:
/// locking it twice from one thread deadlocks.
///
/// # Creation handshake
///
/// `semget(IPC_CREAT | IPC_EXCL)` makes a semaphore holding 0, and a set nobody has operated on
/// has `sem_otime == 0`. The creator then adds 1 with `semop` (not `semctl(SETVAL)`, which leaves
/// `sem_otime` at 0); openers wait, with a timeout, until `IPC_STAT` shows `sem_otime != 0`
/// (Stevens, *UNIX Network Programming* vol. 2, §11.2). A creator that dies between the two
/// steps leaves a set that never publishes: openers fail with [`Error::NotPublished`], and
/// `ipcrm -s ID` removes it.
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use shmkit_sync::SemLock;
///
/// let lock = SemLock::create_private()?; // removed (IPC_RMID) when dropped
/// let guard = lock.lock()?;
/// assert!(lock.try_lock()?.is_none()); // taken, even for this process
/// drop(guard);
/// // Another process would open it with `SemLock::open_id(lock.id(), timeout)`.
/// let other = SemLock::open_id(lock.id(), Duration::from_secs(1))?;
/// assert!(other.try_lock()?.is_some());
/// # Ok::<(), shmkit_sync::Error>(())
/// ```
#[derive(Debug)]
pub struct SemLock {
    id: c_int,
    remove_on_drop: bool,
}

impl SemLock {
    /// `semget(key, 1, IPC_CREAT | IPC_EXCL | mode)`, then a `semop` of +1 that publishes it.
    ///
    /// Fails with [`Error::Os`] (`EEXIST`) if a semaphore set with that key exists. The handle
    /// removes the semaphore when dropped.
    #[doc(alias = "semget")]
    pub fn create(key: key_t, mode: u32) -> Result<Self> {
        let flags = libc::IPC_CREAT | libc::IPC_EXCL | (mode & 0o777).cast_signed();
        // SAFETY: `semget` only reads its integer arguments.
        let id = unsafe { libc::semget(key, 1, flags) };
        if id < 0 {
            return Err(last_error("semget"));
        }
        let lock = Self { id, remove_on_drop: true };
        // Publish: 0 -> 1 without SEM_UNDO (the creator's exit must not take it back), which also
        // sets `sem_otime`, the mark openers wait for. On failure, `lock` removes the set.
        lock.semop(1, 0, None).map_err(|source| Error::Os { call: "semop", source })?;
        Ok(lock)
    }

    /// A new semaphore with key `IPC_PRIVATE` and mode 0600, which other processes open by id
    /// ([`SemLock::open_id`]). Removed when the handle drops.
    pub fn create_private() -> Result<Self> {
        Self::create(libc::IPC_PRIVATE, 0o600)
    }

    /// `semget(key, 1, 0)`, then waits up to `timeout` for the creator to publish it.
    ///
    /// Fails with [`Error::Os`] (`ENOENT`) if no set has that key, [`Error::NotPublished`] if
    /// the creator did not publish it in time, and [`Error::Corrupted`] if the set is not a
    /// lock (more than one semaphore, or a value above 1).
    pub fn open(key: key_t, timeout: Duration) -> Result<Self> {
        // SAFETY: `semget` only reads its integer arguments.
        let id = unsafe { libc::semget(key, 1, 0) };
        if id < 0 {
            return Err(last_error("semget"));
        }
        Self::open_id(id, timeout)
    }

    /// Opens the semaphore set `id` (as `ipcs -s` shows it), waiting up to `timeout` for the
    /// creator to publish it; errors as [`SemLock::open`].
    pub fn open_id(id: i32, timeout: Duration) -> Result<Self> {
        let deadline = Instant::now().checked_add(timeout);
        let mut pause = Duration::from_micros(50);
        loop {
            let stat = ipc_stat(id)?;
            if stat.sem_otime != 0 {
                if stat.sem_nsems != 1 {
                    let detail =
                        format!("set {id} has {} semaphores, a lock has 1", stat.sem_nsems);
                    return Err(Error::Corrupted { what: WHAT, detail });
                }
                // SAFETY: GETVAL only reads the semaphore's value.
                let value = unsafe { libc::semctl(id, 0, libc::GETVAL) };
                if value < 0 {
                    return Err(last_error("semctl(GETVAL)"));
                }
                if value > 1 {
                    let detail = format!("set {id} holds {value}, a lock holds 0 or 1");
                    return Err(Error::Corrupted { what: WHAT, detail });
                }
                return Ok(Self { id, remove_on_drop: false });
            }
            let left =
                deadline.map_or(Duration::MAX, |d| d.saturating_duration_since(Instant::now()));
            if left.is_zero() {
                return Err(Error::NotPublished { what: WHAT, waited: timeout });
            }
            // Nothing to sleep on until the creator's `semop`: poll, backing off to 10 ms.
            std::thread::sleep(pause.min(left));
            pause = (pause * 2).min(Duration::from_millis(10));
        }
    }

    /// The semaphore set's id, for [`SemLock::open_id`] in another process and for `ipcs -s`.
    pub fn id(&self) -> i32 {
        self.id
    }

    /// Whether dropping this handle removes the semaphore (`IPC_RMID`): true for the creator.
    /// A creator that hands the lock over to longer-lived peers turns it off.
    pub fn set_remove_on_drop(&mut self, remove: bool) {
        self.remove_on_drop = remove;
    }

    /// `semop(-1, SEM_UNDO)`: blocks until this process holds the lock.
    #[doc(alias = "semop")]
    pub fn lock(&self) -> Result<SemGuard<'_>> {
        loop {
            match self.semop(-1, libc::SEM_UNDO, None) {
                Ok(()) => return Ok(SemGuard { lock: self }),
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(source) => return Err(Error::Os { call: "semop", source }),
            }
        }
    }

    /// `semop(-1, SEM_UNDO | IPC_NOWAIT)`: takes the lock if it is free; `Ok(None)` if not.
    pub fn try_lock(&self) -> Result<Option<SemGuard<'_>>> {
        loop {
            match self.semop(-1, libc::SEM_UNDO | libc::IPC_NOWAIT, None) {
                Ok(()) => return Ok(Some(SemGuard { lock: self })),
                Err(error) if error.raw_os_error() == Some(libc::EAGAIN) => return Ok(None),
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(source) => return Err(Error::Os { call: "semop", source }),
            }
        }
    }

    /// `semtimedop(-1, SEM_UNDO, timeout)`: as [`SemLock::lock`], but gives up with
    /// [`Error::TimedOut`] after `timeout`.
    #[doc(alias = "semtimedop")]
    pub fn lock_timeout(&self, timeout: Duration) -> Result<SemGuard<'_>> {
        let deadline = Instant::now().checked_add(timeout);
        loop {
            let left =
                deadline.map_or(Duration::MAX, |d| d.saturating_duration_since(Instant::now()));
            let relative = libc::timespec {
                tv_sec: i64::try_from(left.as_secs()).unwrap_or(i64::MAX),
                tv_nsec: i64::from(left.subsec_nanos()),
            };
            match self.semop(-1, libc::SEM_UNDO, Some(&relative)) {
                Ok(()) => return Ok(SemGuard { lock: self }),
                Err(error) if error.raw_os_error() == Some(libc::EAGAIN) => {
                    return Err(Error::TimedOut(timeout));
                }
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(source) => return Err(Error::Os { call: "semtimedop", source }),
            }
        }
    }

    /// `semctl(IPC_RMID)`: removes the semaphore now. Processes blocked on it fail with `EIDRM`,
    /// later calls with `EINVAL`.
    #[doc(alias = "IPC_RMID")]
    pub fn remove(mut self) -> Result<()> {
        self.remove_on_drop = false;
        Self::remove_id(self.id)
    }

    /// `semctl(id, 0, IPC_RMID)`: removes the semaphore set `id` (as `ipcrm -s ID` does), whether
    /// or not it is a lock or was ever published: for cleaning up after a process that died.
    ///
    /// Fails with [`Error::Os`]: `EINVAL` if no set has that id (any more), `EPERM` if the caller
    /// neither owns nor created it and is not privileged.
    ///
    /// ```
    /// use shmkit_sync::SemLock;
    ///
    /// let mut lock = SemLock::create_private()?;
    /// lock.set_remove_on_drop(false);
    /// SemLock::remove_id(lock.id())?;
    /// assert!(SemLock::remove_id(lock.id()).is_err(), "already gone");
    /// # Ok::<(), shmkit_sync::Error>(())
    /// ```
    #[doc(alias = "IPC_RMID")]
    pub fn remove_id(id: i32) -> Result<()> {
        // SAFETY: IPC_RMID takes no fourth argument and touches no memory of ours.
        if unsafe { libc::semctl(id, 0, libc::IPC_RMID) } < 0 {
            return Err(last_error("semctl(IPC_RMID)"));
        }
        Ok(())
    }

    /// `semget(key, 0, 0)`: the id of the semaphore set with `key`, if there is one, without
    /// waiting for it to be published or checking that it is a lock (see [`SemLock::open`] for
    /// that); `Ok(None)` if no set has that key.
    ///
    /// Fails with [`Error::Os`] for anything else `semget` refuses (`EACCES`: the set's mode
    /// does not let this user read it).
    ///
    /// ```
    /// use shmkit_sync::SemLock;
    ///
    /// // A key no other process uses: the SysV key of a name unique to this process.
    /// let name = shmkit_name::Name::new(&format!("doc-sem-key-{}", std::process::id()))?;
    /// let key = name.sysv_key();
    /// assert_eq!(SemLock::id_of_key(key)?, None);
    /// let lock = SemLock::create(key, 0o600)?; // removed when dropped
    /// assert_eq!(SemLock::id_of_key(key)?, Some(lock.id()));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[doc(alias = "semget")]
    pub fn id_of_key(key: key_t) -> Result<Option<i32>> {
        // SAFETY: `semget` only reads its integer arguments.
        let id = unsafe { libc::semget(key, 0, 0) };
        if id < 0 {
            let error = last_error("semget");
            return match error {
                Error::Os { ref source, .. } if source.raw_os_error() == Some(libc::ENOENT) => {
                    Ok(None)
                }
                error => Err(error),
            };
        }
        Ok(Some(id))
    }

    /// `semctl(id, 0, IPC_STAT)` then `semctl(id, 0, IPC_SET)`: gives the semaphore to user
    /// `uid` and group `gid`, with permission bits `mode & 0o777`, so that a peer running as
    /// another user can open it.
    ///
    /// The kernel allows it to the set's owner or creator without privilege, and the creator
    /// keeps the owner's rights after handing it over (it can still lock and remove it). Fails
    /// with [`Error::Os`]: `EPERM` for anyone else, `EINVAL`/`EIDRM` once the set is gone.
    ///
    /// ```
    /// use shmkit_sync::SemLock;
    ///
    /// let lock = SemLock::create_private()?;
    /// let (uid, gid) = (rustix::process::geteuid().as_raw(), rustix::process::getegid().as_raw());
    /// lock.set_owner(uid, gid, 0o660)?;
    /// drop(lock.lock()?);
    /// # Ok::<(), shmkit_sync::Error>(())
    /// ```
    #[doc(alias = "IPC_SET")]
    pub fn set_owner(&self, uid: u32, gid: u32, mode: u32) -> Result<()> {
        let mut stat = ipc_stat(self.id)?;
        stat.sem_perm.uid = uid;
        stat.sem_perm.gid = gid;
        stat.sem_perm.mode = (mode & 0o777) as libc::c_ushort;
        // SAFETY: IPC_SET reads one `semid_ds` through the pointer (glibc's `union semun` passes
        // `buf` as a pointer); the kernel copies it and keeps nothing.
        if unsafe { libc::semctl(self.id, 0, libc::IPC_SET, &raw mut stat) } < 0 {
            return Err(last_error("semctl(IPC_SET)"));
        }
        Ok(())
    }

    /// One operation on semaphore 0.
    fn semop(&self, op: i16, flags: c_int, timeout: Option<&libc::timespec>) -> io::Result<()> {
        let mut operation = libc::sembuf { sem_num: 0, sem_op: op, sem_flg: flags as i16 };
        let timeout = timeout.map_or(ptr::null(), ptr::from_ref);
        // SAFETY: one valid `sembuf` and `nsops == 1`; `timeout` is null or a valid timespec;
        // both outlive the call.
        if unsafe { semtimedop(self.id, &raw mut operation, 1, timeout) } < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}

impl Drop for SemLock {
    fn drop(&mut self) {
        if self.remove_on_drop {
            // A failure (already removed) leaves nothing to clean up.
            let _ = Self::remove_id(self.id);
        }
    }
}

/// Proof that this process holds a [`SemLock`]; releases it on drop with
/// `semop(+1, SEM_UNDO)`, which also cancels the undo entry the lock made.
#[derive(Debug)]
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct SemGuard<'a> {
    lock: &'a SemLock,
}

impl Drop for SemGuard<'_> {
    fn drop(&mut self) {
        // +1 never blocks; the only failures are a removed set (nothing to release) or EINTR,
        // which a non-blocking operation does not return.
        let _ = self.lock.semop(1, libc::SEM_UNDO, None);
    }
}

/// `semctl(id, 0, IPC_STAT)`.
fn ipc_stat(id: c_int) -> Result<libc::semid_ds> {
    let mut stat = core::mem::MaybeUninit::<libc::semid_ds>::zeroed();
    // SAFETY: IPC_STAT writes one `semid_ds` through the pointer (glibc's `union semun` passes
    // `buf` as a pointer), into storage of that type.
    if unsafe { libc::semctl(id, 0, libc::IPC_STAT, stat.as_mut_ptr()) } < 0 {
        return Err(last_error("semctl(IPC_STAT)"));
    }
    // SAFETY: zeroed and then filled by the kernel: every field is an integer.
    Ok(unsafe { stat.assume_init() })
}

fn last_error(call: &'static str) -> Error {
    Error::Os { call, source: io::Error::last_os_error() }
}
