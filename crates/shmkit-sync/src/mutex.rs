//! [`RobustMutex`]: a process-shared mutex that survives the death of its holder.
//!
//! It wraps glibc's robust process-shared pthread mutex (`PTHREAD_PROCESS_SHARED`,
//! `PTHREAD_MUTEX_ROBUST`, type `PTHREAD_MUTEX_ERRORCHECK`); the crate docs say why that and not a
//! futex word of our own. The kernel does the owner-death work: glibc links every robust mutex a
//! thread holds into the thread's robust list (registered with `set_robust_list`), and when a
//! thread ends, however it ends (`kill -9` included), the kernel walks that list, sets
//! `FUTEX_OWNER_DIED` in each lock word and wakes one waiter. The next `pthread_mutex_lock`
//! returns `EOWNERDEAD` with the lock taken; [`MutexGuard::owner_died`] reports it.
//!
//! # Layout (64 bytes, 64-aligned)
//!
//! | offset | field | |
//! |---|---|---|
//! | 0 | `magic` | `b"SKmx"` once published |
//! | 4 | `version` | layout version, 1 |
//! | 8 | `state` | 0 unpublished, 1 initialising, 2 published (a futex openers sleep on) |
//! | 12 | `raw_size` | `size_of::<pthread_mutex_t>()` of the initialiser (40 on x86-64 glibc) |
//! | 16 | `raw` | the `pthread_mutex_t` |
//! | 16 + `raw_size` | reserved | up to 64 |

use core::cell::UnsafeCell;
use core::fmt;
use core::marker::{PhantomData, PhantomPinned};
use core::mem::{MaybeUninit, offset_of};
use core::pin::Pin;
use core::ptr::NonNull;
use std::io;
use std::time::Duration;

use libc::{c_int, pthread_mutex_t};

use crate::error::{Error, Result};
use crate::placement::{self, Header, Placed};
use crate::primitive::{AtomicU32, Ordering};

const WHAT: &str = "robust mutex";
const MAGIC: u32 = u32::from_le_bytes(*b"SKmx");
const VERSION: u32 = 1;

/// Bytes reserved for the `pthread_mutex_t` (40 on x86-64 glibc, 48 on `AArch64`).
const RAW_CAPACITY: usize = 48;
const RAW_SIZE: usize = size_of::<pthread_mutex_t>();

// `pthread_mutex_clocklock` (glibc 2.30+) is not in the `libc` crate. It takes an absolute
// CLOCK_MONOTONIC deadline, so a wall-clock step cannot stretch or cut a `lock_timeout`, which
// the older `pthread_mutex_timedlock` (CLOCK_REALTIME only) would allow.
unsafe extern "C" {
    fn pthread_mutex_clocklock(
        mutex: *mut pthread_mutex_t,
        clock: libc::clockid_t,
        abstime: *const libc::timespec,
    ) -> c_int;
}

/// A robust, process-shared mutex that lives in shared memory: `#[repr(C)]`, 64 bytes,
/// initialised in place by one process ([`RobustMutex::init_at`]) and opened from the same bytes
/// by the others ([`RobustMutex::open_at`]).
///
/// It guards no data of its own: it protects whatever the processes agree it protects, usually
/// bytes beside it in the same region. When a holder dies, the next locker gets a guard whose
/// [`owner_died`](MutexGuard::owner_died) is true: it repairs the data, then calls
/// [`mark_consistent`](MutexGuard::mark_consistent). Dropping that guard without doing so makes
/// the mutex unusable for everyone: every later lock fails with [`Error::NotRecoverable`] (the
/// POSIX `EOWNERDEAD` / `pthread_mutex_consistent` / `ENOTRECOVERABLE` contract).
///
/// ```
/// use shmkit_sync::{Error, RobustMutex};
///
/// let mutex = RobustMutex::boxed()?; // in-process; `init_at` places one in shared memory
/// let mut guard = mutex.lock()?;
/// assert!(!guard.owner_died());
/// // An error-checking mutex: relocking from the holding thread is an error, not a hang.
/// assert!(matches!(mutex.try_lock(), Err(Error::Deadlock { .. })));
/// guard.mark_consistent()?; // a no-op unless the previous owner died
/// drop(guard);
/// assert!(mutex.try_lock()?.is_some());
/// # Ok::<(), Error>(())
/// ```
#[repr(C, align(64))]
pub struct RobustMutex {
    /// Magic, version and publication state (offsets 0, 4 and 8).
    header: Header,
    raw_size: AtomicU32,
    raw: UnsafeCell<pthread_mutex_t>,
    /// Unused; covered by a cell so no byte of the object is frozen under a shared reference.
    _reserved: UnsafeCell<[u8; RAW_CAPACITY - RAW_SIZE]>,
    /// A locked robust mutex is linked into its owner's robust list by address: it never moves.
    _pinned: PhantomPinned,
}

static_assertions::const_assert!(RAW_SIZE <= RAW_CAPACITY);
static_assertions::assert_eq_size!(RobustMutex, [u8; 64]);
static_assertions::const_assert_eq!(align_of::<RobustMutex>(), 64);
static_assertions::const_assert_eq!(offset_of!(RobustMutex, header), 0);
static_assertions::const_assert_eq!(offset_of!(RobustMutex, raw_size), 12);
static_assertions::const_assert_eq!(offset_of!(RobustMutex, raw), 16);

// SAFETY: the pthread mutex is made to be used from many threads (and processes) at once; every
// other field is an atomic, and `_reserved` is never accessed.
unsafe impl Sync for RobustMutex {}

impl RobustMutex {
    /// The size of a mutex in shared memory.
    pub const SIZE: usize = size_of::<Self>();
    /// The alignment the bytes given to [`RobustMutex::init_at`] and
    /// [`RobustMutex::open_at`] must have.
    pub const ALIGN: usize = align_of::<Self>();

    /// Initialises a mutex in place at `ptr` and publishes it: `pthread_mutex_init` with the
    /// robust, process-shared, error-checking attributes, then the header, then a release store
    /// of the published state that wakes every [`RobustMutex::open_at`] waiting for it.
    ///
    /// Fails with [`Error::Placement`] if `len` is smaller than [`RobustMutex::SIZE`] or `ptr` is
    /// not aligned to [`RobustMutex::ALIGN`]. This is also how a [`Error::NotRecoverable`] mutex
    /// is brought back, once every process has let go of it.
    ///
    /// # Safety
    ///
    /// - `ptr..ptr + len` is mapped readable and writable for all of `'a`, and stays mapped at
    ///   that address while any guard of the mutex lives (a locked robust mutex is linked into
    ///   its owner's robust list by address).
    /// - While this runs, no thread of any process holds, waits for, locks or opens a mutex in
    ///   these bytes: they are fresh, or every earlier user has let go of them.
    /// - For `'a`, the bytes are used only as this mutex (through the returned reference or
    ///   another process's [`RobustMutex::open_at`]), never through other Rust references.
    pub unsafe fn init_at<'a>(ptr: NonNull<u8>, len: usize) -> Result<&'a Self> {
        // SAFETY: the caller's three points include `placement::init_at`'s.
        unsafe { placement::init_at(ptr, len) }
    }

    /// Opens the mutex another process initialised at the same bytes, waiting up to `timeout`
    /// for it to be published.
    ///
    /// Fails with [`Error::Placement`] for a short or misaligned range, [`Error::NotPublished`]
    /// if it is not published in time, and [`Error::Corrupted`] for a wrong magic, layout
    /// version or `pthread_mutex_t` size (a peer built against another C library).
    ///
    /// # Safety
    ///
    /// - `ptr..ptr + len` is mapped readable and writable for all of `'a`, and stays mapped at
    ///   that address while any guard of the mutex lives.
    /// - For `'a`, the bytes are used only as this mutex, never through other Rust references.
    /// - The processes that share the bytes trust one another not to write garbage over them:
    ///   glibc follows pointers it stores inside a locked robust mutex (see the crate docs).
    pub unsafe fn open_at<'a>(ptr: NonNull<u8>, len: usize, timeout: Duration) -> Result<&'a Self> {
        // SAFETY: the caller's first two points are `placement::open_at`'s preconditions.
        unsafe { placement::open_at(ptr, len, timeout) }
    }

    /// A mutex on the heap, initialised and pinned (it must never move): for tests, examples
    /// and locks that only one process's threads share.
    pub fn boxed() -> Result<Pin<Box<Self>>> {
        placement::boxed(Self::unpublished())
    }

    /// `pthread_mutex_lock`: blocks until this thread holds the mutex.
    ///
    /// The guard's [`owner_died`](MutexGuard::owner_died) says whether the previous holder died
    /// holding it. Fails with [`Error::NotRecoverable`] (see the type docs) or
    /// [`Error::Deadlock`] if this thread already holds it.
    #[doc(alias = "pthread_mutex_lock")]
    #[inline]
    pub fn lock(&self) -> Result<MutexGuard<'_>> {
        // SAFETY: `raw` is an initialised robust mutex (a `&Self` exists only once published), at
        // an address that stays put for `'_`.
        let code = unsafe { libc::pthread_mutex_lock(self.raw.get()) };
        self.taken("pthread_mutex_lock", code)
    }

    /// `pthread_mutex_trylock`: takes the mutex if no one holds it; `Ok(None)` if someone does.
    #[doc(alias = "pthread_mutex_trylock")]
    #[inline]
    pub fn try_lock(&self) -> Result<Option<MutexGuard<'_>>> {
        // SAFETY: as in `lock`.
        let code = unsafe { libc::pthread_mutex_trylock(self.raw.get()) };
        match code {
            libc::EBUSY => Ok(None),
            libc::ENOTRECOVERABLE => {
                self.release_leaked_lock_word();
                Err(Error::NotRecoverable { what: WHAT })
            }
            code => self.taken("pthread_mutex_trylock", code).map(Some),
        }
    }

    /// Works around a glibc bug (seen in 2.36; the code reads the same in 2.29): on a
    /// not-recoverable robust mutex, `pthread_mutex_trylock` takes the lock word (CAS 0 -> TID)
    /// and returns `ENOTRECOVERABLE`, but it releases the word only `if (oldval == id)`, where it
    /// means `oldval == 0`, so the word keeps this thread's TID. The mutex is then neither in
    /// this thread's robust list nor owned by anyone: `lock` in every other thread blocks
    /// forever instead of failing, and in this thread fails with `EDEADLK`. Release the word as
    /// glibc's `lll_unlock` would: exchange it for 0, and wake a waiter if `FUTEX_WAITERS` was
    /// set. A glibc without the bug leaves 0 or another TID there, and then this does nothing.
    /// (A thread killed between the two calls leaves the word held: a window of a few
    /// instructions, on a mutex that is unusable anyway until it is initialised again.)
    #[cold]
    fn release_leaked_lock_word(&self) {
        const FUTEX_WAITERS: u32 = 0x8000_0000;
        const FUTEX_TID_MASK: u32 = 0x3fff_ffff;
        // SAFETY: `__lock`, the futex word, is the first `int` of glibc's `struct
        // __pthread_mutex_s` (public header, part of the ABI): 4-aligned inside `raw`, valid for
        // `'_`, and accessed atomically by glibc and the kernel.
        let word = unsafe { AtomicU32::from_ptr(self.raw.get().cast::<u32>()) };
        let tid = rustix::thread::gettid().as_raw_nonzero().get().unsigned_abs();
        let mut current = word.load(Ordering::Relaxed);
        while current & FUTEX_TID_MASK == tid {
            match word.compare_exchange(current, 0, Ordering::Release, Ordering::Relaxed) {
                Ok(_) => {
                    if current & FUTEX_WAITERS != 0 {
                        let _ = rustix::thread::futex::wake(
                            word,
                            rustix::thread::futex::Flags::empty(),
                            1,
                        );
                    }
                    return;
                }
                Err(changed) => current = changed,
            }
        }
    }

    /// `pthread_mutex_clocklock(CLOCK_MONOTONIC)`: as [`RobustMutex::lock`], but gives up with
    /// [`Error::TimedOut`] after `timeout`.
    #[doc(alias = "pthread_mutex_clocklock")]
    pub fn lock_timeout(&self, timeout: Duration) -> Result<MutexGuard<'_>> {
        let deadline = monotonic_deadline(timeout);
        // SAFETY: as in `lock`; `deadline` is a valid timespec that outlives the call.
        let code = unsafe {
            pthread_mutex_clocklock(self.raw.get(), libc::CLOCK_MONOTONIC, &raw const deadline)
        };
        if code == libc::ETIMEDOUT {
            return Err(Error::TimedOut(timeout));
        }
        self.taken("pthread_mutex_clocklock", code)
    }

    /// The guard for a successful lock call, or the error its code means.
    #[inline]
    fn taken(&self, call: &'static str, code: c_int) -> Result<MutexGuard<'_>> {
        let owner_died = match code {
            0 => false,
            libc::EOWNERDEAD => true,
            libc::ENOTRECOVERABLE => return Err(Error::NotRecoverable { what: WHAT }),
            libc::EDEADLK => return Err(Error::Deadlock { what: WHAT }),
            code => return Err(os_error(call, code)),
        };
        Ok(MutexGuard { mutex: self, owner_died, _not_send: PhantomData })
    }

    /// A mutex with nothing published yet, to be initialised where it will stay.
    pub(crate) const fn unpublished() -> Self {
        Self {
            header: Header::unpublished(),
            raw_size: AtomicU32::new(0),
            raw: UnsafeCell::new(libc::PTHREAD_MUTEX_INITIALIZER),
            _reserved: UnsafeCell::new([0; RAW_CAPACITY - RAW_SIZE]),
            _pinned: PhantomPinned,
        }
    }
}

// SAFETY: every bit pattern is a valid mutex (atomics, and a `pthread_mutex_t` of C integers
// behind a cell), and every byte is an atomic or inside a cell.
unsafe impl Placed for RobustMutex {
    const WHAT: &'static str = WHAT;

    fn header(&self) -> &Header {
        &self.header
    }

    /// Initialises the pthread mutex and publishes the header.
    unsafe fn initialise(&self) -> Result<()> {
        self.header.initialise(MAGIC, VERSION, || {
            init_robust(self.raw.get())?;
            self.raw_size.store(RAW_SIZE as u32, Ordering::Relaxed);
            Ok(())
        })
    }

    /// Checks the header of a published mutex, its publication state included (an embedded
    /// mutex is validated without being waited for).
    fn validate(&self) -> Result<()> {
        self.header.check_published(WHAT)?;
        self.header.check(WHAT, MAGIC, VERSION)?;
        let raw_size = self.raw_size.load(Ordering::Relaxed);
        if raw_size as usize != RAW_SIZE {
            return Err(Error::Corrupted {
                what: WHAT,
                detail: format!(
                    "pthread_mutex_t of {raw_size} bytes, this build's C library has {RAW_SIZE}: \
                     every process must use the same C library"
                ),
            });
        }
        Ok(())
    }
}

impl fmt::Debug for RobustMutex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RobustMutex").field("state", &self.header.state()).finish_non_exhaustive()
    }
}

/// Proof that this thread holds a [`RobustMutex`]; unlocks it on drop.
///
/// Not `Send`: a pthread mutex must be unlocked by the thread that locked it.
#[must_use = "the mutex is unlocked as soon as the guard is dropped"]
pub struct MutexGuard<'a> {
    mutex: &'a RobustMutex,
    owner_died: bool,
    _not_send: PhantomData<*const ()>,
}

impl MutexGuard<'_> {
    /// Whether the previous holder died holding the mutex (`EOWNERDEAD`) and the data it
    /// protects has not been marked consistent since: repair it, then call
    /// [`MutexGuard::mark_consistent`], or the mutex becomes unusable when this guard drops.
    pub fn owner_died(&self) -> bool {
        self.owner_died
    }

    /// `pthread_mutex_consistent`: declares the protected data repaired, so that the mutex
    /// goes on working after this guard drops. Does nothing if the previous owner did not die.
    #[doc(alias = "pthread_mutex_consistent")]
    pub fn mark_consistent(&mut self) -> Result<()> {
        if !self.owner_died {
            return Ok(());
        }
        // SAFETY: this thread holds the mutex (the guard exists), in the owner-died state.
        let code = unsafe { libc::pthread_mutex_consistent(self.mutex.raw.get()) };
        if code != 0 {
            return Err(os_error("pthread_mutex_consistent", code));
        }
        self.owner_died = false;
        Ok(())
    }
}

impl Drop for MutexGuard<'_> {
    #[inline]
    fn drop(&mut self) {
        // SAFETY: this thread locked the mutex: the guard is made only by a successful lock and
        // cannot leave the thread. If the owner died and no one marked the mutex consistent,
        // this is the unlock that makes it not recoverable.
        let code = unsafe { libc::pthread_mutex_unlock(self.mutex.raw.get()) };
        // The only failure is EPERM (not the owner), which the guard rules out, except in a child
        // that `fork`ed while the parent held the guard: there the unlock must not happen.
        let _ = code;
    }
}

impl fmt::Debug for MutexGuard<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MutexGuard").field("owner_died", &self.owner_died).finish_non_exhaustive()
    }
}

/// `pthread_mutex_init` with the robust, process-shared, error-checking attributes.
fn init_robust(raw: *mut pthread_mutex_t) -> Result<()> {
    let mut attr = MaybeUninit::<libc::pthread_mutexattr_t>::uninit();
    // SAFETY: `attr` is writable storage for an attribute object.
    check("pthread_mutexattr_init", unsafe { libc::pthread_mutexattr_init(attr.as_mut_ptr()) })?;
    let attr = attr.as_mut_ptr();
    let result = (|| {
        // SAFETY: `attr` was initialised above and is destroyed only below.
        check("pthread_mutexattr_settype", unsafe {
            libc::pthread_mutexattr_settype(attr, libc::PTHREAD_MUTEX_ERRORCHECK)
        })?;
        // SAFETY: as above.
        check("pthread_mutexattr_setpshared", unsafe {
            libc::pthread_mutexattr_setpshared(attr, libc::PTHREAD_PROCESS_SHARED)
        })?;
        // SAFETY: as above.
        check("pthread_mutexattr_setrobust", unsafe {
            libc::pthread_mutexattr_setrobust(attr, libc::PTHREAD_MUTEX_ROBUST)
        })?;
        // SAFETY: `raw` is writable and unused by anyone (the caller's contract), `attr` is set.
        check("pthread_mutex_init", unsafe { libc::pthread_mutex_init(raw, attr) })
    })();
    // SAFETY: `attr` was initialised above and is not used after this.
    unsafe { libc::pthread_mutexattr_destroy(attr) };
    result
}

/// `CLOCK_MONOTONIC` now plus `timeout`, capped at 2^32 seconds (136 years) so that the
/// kernel's 64-bit nanosecond deadline cannot overflow.
fn monotonic_deadline(timeout: Duration) -> libc::timespec {
    const NANOS: i64 = 1_000_000_000;
    let now = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    let seconds = i64::from(u32::try_from(timeout.as_secs()).unwrap_or(u32::MAX));
    let mut whole = now.tv_sec.saturating_add(seconds);
    let mut nanos = now.tv_nsec + i64::from(timeout.subsec_nanos());
    if nanos >= NANOS {
        nanos -= NANOS;
        whole = whole.saturating_add(1);
    }
    libc::timespec { tv_sec: whole, tv_nsec: nanos }
}

fn check(call: &'static str, code: c_int) -> Result<()> {
    if code == 0 { Ok(()) } else { Err(os_error(call, code)) }
}

/// pthread calls return the errno instead of setting it.
#[cold]
fn os_error(call: &'static str, code: c_int) -> Error {
    Error::Os { call, source: io::Error::from_raw_os_error(code) }
}
