//! [`RwLock`]: a writer-preferring reader-writer lock that lives in shared memory, for
//! read-mostly shared data (configuration), and that no dead holder can wedge.
//!
//! # Protocol
//!
//! - **Writers** serialise on an embedded [`RobustMutex`]. The one that holds it stores its
//!   identity (pid and start-time tag) in the `writer` word: that is its *intent*, and from then
//!   on new readers back off. It waits for the reader slots to drain, then sets the `WRITING`
//!   bit and returns the guard. Releasing clears `writer` and, if readers sleep, bumps
//!   `writer_left` and wakes them.
//! - **Readers** claim a free slot of a fixed table (64 slots, one `u64` each, holding the
//!   reader's identity), then load `writer`: 0 means they hold a read lock. Otherwise they give
//!   the slot back (waking the writer if it waits: `reader_left`) and sleep on `writer_left`.
//! - Three store-then-load pairs decide who sees whom, each side `SeqCst`, so that in their
//!   single total order one side always sees the other's store:
//!   - reader: slot, then `writer`; writer: `writer`, then the slots. Either the reader sees
//!     the intent and backs off, or the writer sees the slot and waits for it.
//!   - leaving reader: slot, then `writer`; waiting writer: `writer`, then the slots (having
//!     read `reader_left` first). Either the writer sees the slot free, or the reader sees the
//!     writer and bumps `reader_left`, which the writer's `futex` wait checks.
//!   - sleeping reader: `sleepers`, then `writer` again (having read `writer_left` first);
//!     releasing writer: `writer`, then `sleepers`. Either the reader sees the release and does
//!     not sleep, or the writer sees the sleeper and bumps `writer_left`.
//!
//! Writer preference: intent is announced before draining, and readers that arrive after it
//! wait, so a stream of overlapping readers cannot starve a writer. Readers can be starved by a
//! stream of writers; this lock is for read-mostly data.
//!
//! What happens when a holder dies is in the docs of [`RwLock`].

mod process;

use core::cell::UnsafeCell;
use core::fmt;
use core::marker::PhantomPinned;
use core::mem::offset_of;
use core::pin::Pin;
use core::ptr::NonNull;
use core::time::Duration;

use crate::error::{Error, Result};
use crate::futex::{Futex, Wake};
use crate::mutex::{MutexGuard, RobustMutex};
use crate::placement::{self, Header, Placed};
use crate::primitive::{AtomicU32, AtomicU64, Ordering};

const WHAT: &str = "rwlock";
const MAGIC: u32 = u32::from_le_bytes(*b"SKrw");
const VERSION: u32 = 1;

/// How many read guards can be held at once, over all processes. More readers wait for a slot.
pub const READER_SLOTS: usize = 64;

/// `writer` bit: the writer has drained the readers and may be changing the data.
const WRITING: u64 = 1 << 63;
/// `writer` bit: a reader found the writer dead while `WRITING`; the low 32 bits keep its pid.
const POISONED: u64 = 1 << 62;

/// `health` values. Any other value is the pid of a writer that died while writing: the data
/// needs repair. Only a writer (holding the mutex) changes `health`.
const HEALTHY: u32 = 0;
const NOT_RECOVERABLE: u32 = u32::MAX;

/// How long a waiter sleeps before it first checks that the holder it waits for is alive; each
/// check that finds it alive doubles the sleep, up to `LIVENESS_POLL_MAX`, so that many waiters
/// behind a long hold do not keep reading `/proc`.
const LIVENESS_POLL: Duration = Duration::from_millis(10);
const LIVENESS_POLL_MAX: Duration = Duration::from_millis(160);
/// How long a reader that finds every slot taken sleeps before it looks again.
const SLOT_POLL: Duration = Duration::from_millis(1);

/// A process-shared, writer-preferring reader-writer lock in shared memory: `#[repr(C)]`,
/// 768 bytes, 128-aligned, initialised in place by [`RwLock::init_at`] and opened by
/// [`RwLock::open_at`]. Like [`RobustMutex`], it protects data the processes agree on, not data
/// of its own.
///
/// # When a holder dies
///
/// Nothing waits on a dead process forever. Every wait is a `futex` wait of 10 ms, after which
/// the waiter checks whether the holder it waits for is alive (`kill(pid, 0)`, then
/// `/proc/PID/stat` for zombies and recycled pids); while it is, the waits double, up to 160 ms,
/// which bounds how long a death goes unnoticed. `try_read` and `try_write` check at once.
/// - **A reader dies** holding a slot: a writer waiting for the slots to drain clears the dead
///   reader's slot and goes on. Readers never change the data, so nothing needs repair.
/// - **A writer dies before `WRITING`** (while draining readers): readers clear its intent and
///   go on; the next writer takes the robust mutex (owner died), finds nothing to repair and gets
///   a normal guard.
/// - **A writer dies while `WRITING`**: the data may be half-written. Readers mark the word
///   `POISONED` and fail with [`Error::OwnerDied`] (pid of the dead writer) until a writer
///   repairs it. The next [`RwLock::write`] returns a guard whose
///   [`owner_died`](WriteGuard::owner_died) is true; the writer repairs the data and calls
///   [`mark_consistent`](WriteGuard::mark_consistent). If it drops the guard without doing so,
///   the lock is not recoverable: every later `read` and `write` fails with
///   [`Error::NotRecoverable`] until the region is re-initialised.
///
/// Limits: every process must share one pid namespace and see the same `/proc`. Without a
/// readable `/proc/PID/stat`, a killed but unreaped reader (a zombie) looks alive until its
/// parent reaps it, and a recycled pid looks like the dead holder until that process ends. A
/// guard leaked with `mem::forget` holds its slot (or the write lock) until its process ends.
/// Do not `fork` while holding a guard, and in a thread that holds a read lock, take neither the
/// write lock nor a second read lock (a waiting writer makes the second read wait for the first):
/// the lock does not detect these, and they deadlock.
///
/// # Example
///
/// ```
/// use shmkit_sync::RwLock;
///
/// let lock = RwLock::boxed()?; // in-process; `init_at` places one in shared memory
/// let first = lock.read()?;
/// let second = lock.read()?; // readers share
/// assert!(lock.try_write()?.is_none());
/// drop((first, second));
/// let mut writer = lock.write()?;
/// assert!(!writer.owner_died());
/// assert!(lock.try_read()?.is_none());
/// writer.mark_consistent(); // a no-op unless a writer died while writing
/// # Ok::<(), shmkit_sync::Error>(())
/// ```
#[repr(C, align(128))]
pub struct RwLock {
    /// Magic, version and publication state (offsets 0, 4 and 8).
    header: Header,
    /// `size_of::<RwLock>()` of the initialiser.
    size: AtomicU32,
    /// [`READER_SLOTS`] of the initialiser.
    slots: AtomicU32,
    health: AtomicU32,
    /// Bumped when `writer` returns to 0; readers sleep on it.
    writer_left: Futex,
    /// Bumped when a reader leaves while a writer waits; the writer sleeps on it.
    reader_left: Futex,
    /// How many readers sleep on `writer_left` (a release wakes only if some do).
    sleepers: AtomicU32,
    _reserved: AtomicU32,
    /// 0, or the identity of the writer holding or wanting the lock, with `WRITING`, or
    /// `POISONED` with the pid of a writer that died writing.
    writer: AtomicU64,
    _pad0: UnsafeCell<[u8; 80]>,
    writers: RobustMutex,
    _pad1: UnsafeCell<[u8; 64]>,
    readers: [AtomicU64; READER_SLOTS],
    _pinned: PhantomPinned,
}

static_assertions::assert_eq_size!(RwLock, [u8; 768]);
static_assertions::const_assert_eq!(align_of::<RwLock>(), 128);
static_assertions::const_assert_eq!(offset_of!(RwLock, header), 0);
static_assertions::const_assert_eq!(offset_of!(RwLock, size), 12);
static_assertions::const_assert_eq!(offset_of!(RwLock, writer), 40);
static_assertions::const_assert_eq!(offset_of!(RwLock, writers), 128);
static_assertions::const_assert_eq!(offset_of!(RwLock, readers), 256);

// SAFETY: every field is an atomic, a futex word, a header of atomics, a `RobustMutex` (Sync),
// or padding never accessed.
unsafe impl Sync for RwLock {}

impl RwLock {
    /// The size of a lock in shared memory.
    pub const SIZE: usize = size_of::<Self>();
    /// The alignment the bytes given to [`RwLock::init_at`] and [`RwLock::open_at`] must have.
    pub const ALIGN: usize = align_of::<Self>();

    /// Initialises a lock in place at `ptr` (its embedded robust mutex included) and publishes
    /// it with a release store that wakes every [`RwLock::open_at`] waiting for it.
    ///
    /// Fails with [`Error::Placement`] if `len` is smaller than [`RwLock::SIZE`] or `ptr` is not
    /// aligned to [`RwLock::ALIGN`]. This is also how a [`Error::NotRecoverable`] lock is
    /// brought back, once every process has let go of it.
    ///
    /// # Safety
    ///
    /// - `ptr..ptr + len` is mapped readable and writable for all of `'a`, and stays mapped at
    ///   that address while any guard of the lock lives.
    /// - While this runs, no thread of any process holds, waits for, locks or opens a lock in
    ///   these bytes: they are fresh, or every earlier user has let go of them.
    /// - For `'a`, the bytes are used only as this lock (through the returned reference or
    ///   another process's [`RwLock::open_at`]), never through other Rust references.
    pub unsafe fn init_at<'a>(ptr: NonNull<u8>, len: usize) -> Result<&'a Self> {
        // SAFETY: the caller's three points include `placement::init_at`'s.
        unsafe { placement::init_at(ptr, len) }
    }

    /// Opens the lock another process initialised at the same bytes, waiting up to `timeout`
    /// for it to be published.
    ///
    /// Fails with [`Error::Placement`] for a short or misaligned range, [`Error::NotPublished`]
    /// if it is not published in time, and [`Error::Corrupted`] for a wrong magic, layout
    /// version or size.
    ///
    /// # Safety
    ///
    /// - `ptr..ptr + len` is mapped readable and writable for all of `'a`, and stays mapped at
    ///   that address while any guard of the lock lives.
    /// - For `'a`, the bytes are used only as this lock, never through other Rust references.
    /// - The processes that share the bytes trust one another not to write garbage over the
    ///   embedded robust mutex (see [`RobustMutex::open_at`]).
    pub unsafe fn open_at<'a>(ptr: NonNull<u8>, len: usize, timeout: Duration) -> Result<&'a Self> {
        // SAFETY: the caller's first two points are `placement::open_at`'s preconditions.
        unsafe { placement::open_at(ptr, len, timeout) }
    }

    /// A lock on the heap, initialised and pinned: for tests, examples and locks that only one
    /// process's threads share.
    pub fn boxed() -> Result<Pin<Box<Self>>> {
        placement::boxed(Self::unpublished())
    }

    /// Blocks until this thread holds a read lock, shared with other readers.
    ///
    /// Fails with [`Error::OwnerDied`] while the data needs repair after a writer died while
    /// writing, and with [`Error::NotRecoverable`] once a repair was abandoned.
    pub fn read(&self) -> Result<ReadGuard<'_>> {
        loop {
            // A blocking acquire returns only with a guard or an error.
            if let Some(guard) = self.acquire_read(true)? {
                return Ok(guard);
            }
        }
    }

    /// Takes a read lock if no writer holds or waits for the lock and a slot is free; `Ok(None)`
    /// if not. Errors as [`RwLock::read`].
    pub fn try_read(&self) -> Result<Option<ReadGuard<'_>>> {
        self.acquire_read(false)
    }

    /// Blocks until this thread holds the lock alone.
    ///
    /// The guard's [`owner_died`](WriteGuard::owner_died) says whether a writer died while
    /// writing and the data needs repair. Fails with [`Error::NotRecoverable`] once a repair was
    /// abandoned, and [`Error::Deadlock`] if this thread holds the write lock already.
    pub fn write(&self) -> Result<WriteGuard<'_>> {
        loop {
            // A blocking acquire returns only with a guard or an error.
            if let Some(guard) = self.acquire_write(true)? {
                return Ok(guard);
            }
        }
    }

    /// Takes the write lock if no one holds the lock; `Ok(None)` if someone does. Errors as
    /// [`RwLock::write`].
    pub fn try_write(&self) -> Result<Option<WriteGuard<'_>>> {
        self.acquire_write(false)
    }

    fn acquire_read(&self, blocking: bool) -> Result<Option<ReadGuard<'_>>> {
        let me = process::current();
        let (mut waited_for, mut poll) = (0, LIVENESS_POLL);
        loop {
            let Some(slot) = self.claim_slot(me) else {
                // Every slot taken: some holders may be dead.
                self.clear_dead_readers();
                if !blocking {
                    return Ok(None);
                }
                std::thread::sleep(SLOT_POLL);
                continue;
            };
            let generation = self.writer_left.load(Ordering::SeqCst);
            let writer = self.writer.load(Ordering::SeqCst);
            if writer == 0 {
                let health = self.health.load(Ordering::SeqCst);
                if health == HEALTHY {
                    return Ok(Some(ReadGuard { lock: self, slot }));
                }
                self.leave_slot(slot);
                return Err(health_error(health));
            }
            // A writer holds or wants the lock: make way for it.
            self.leave_slot(slot);
            if writer & POISONED != 0 {
                return Err(Error::OwnerDied { what: WHAT, pid: process::pid_of(writer) });
            }
            if blocking {
                // Registering, then loading `writer` again, pairs with the writer's release
                // (store `writer`, then load `sleepers`): either it sees us and bumps
                // `writer_left`, or we see its store here and do not sleep.
                if writer != waited_for {
                    (waited_for, poll) = (writer, LIVENESS_POLL);
                }
                self.sleepers.fetch_add(1, Ordering::SeqCst);
                let wake = if self.writer.load(Ordering::SeqCst) == writer {
                    self.writer_left.wait(generation, Some(poll))
                } else {
                    Wake::Changed
                };
                self.sleepers.fetch_sub(1, Ordering::SeqCst);
                if wake == Wake::TimedOut {
                    if process::is_alive(writer) {
                        poll = (poll * 2).min(LIVENESS_POLL_MAX);
                    } else {
                        self.writer_died(writer);
                    }
                }
            } else if process::is_alive(writer) {
                return Ok(None);
            } else {
                self.writer_died(writer);
            }
        }
    }

    /// Takes a free reader slot for `me`, starting at this thread's usual one.
    fn claim_slot(&self, me: u64) -> Option<usize> {
        let start = process::slot_hint(READER_SLOTS);
        for index in (start..READER_SLOTS).chain(0..start) {
            let slot = &self.readers[index];
            if slot.load(Ordering::Relaxed) == 0
                && slot.compare_exchange(0, me, Ordering::SeqCst, Ordering::Relaxed).is_ok()
            {
                process::remember_slot(index);
                return Some(index);
            }
        }
        None
    }

    /// Gives a reader slot back, and wakes the writer if one waits for the readers to leave.
    fn leave_slot(&self, slot: usize) {
        self.readers[slot].store(0, Ordering::SeqCst);
        if self.writer.load(Ordering::SeqCst) != 0 {
            self.reader_left.word().fetch_add(1, Ordering::SeqCst);
            // Writers are serialised by the mutex: at most one sleeps here.
            self.reader_left.wake(1);
        }
    }

    /// The writer named by `word` is dead: stop waiting for it.
    fn writer_died(&self, word: u64) {
        // A dead writer's intent is cleared: it never touched the data. A dead writer that was
        // writing is marked: readers fail until a writer repairs. The exchange fails harmlessly
        // if a new writer (which must first take the mutex the dead one held) replaced the word.
        let replacement =
            if word & WRITING != 0 { POISONED | u64::from(process::pid_of(word)) } else { 0 };
        if self
            .writer
            .compare_exchange(word, replacement, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
        {
            self.writer_gone();
        }
    }

    /// Tells sleeping readers that `writer` changed; called right after a `SeqCst` store or
    /// exchange of `writer`. Costs one load while no reader sleeps.
    fn writer_gone(&self) {
        if self.sleepers.load(Ordering::SeqCst) > 0 {
            self.writer_left.word().fetch_add(1, Ordering::SeqCst);
            self.writer_left.wake(u32::MAX);
        }
    }

    fn acquire_write(&self, blocking: bool) -> Result<Option<WriteGuard<'_>>> {
        let inner = if blocking { self.writers.lock().map(Some) } else { self.writers.try_lock() };
        let mut inner = match inner {
            Ok(Some(guard)) => guard,
            Ok(None) => return Ok(None),
            Err(Error::Deadlock { .. }) => return Err(Error::Deadlock { what: WHAT }),
            Err(Error::NotRecoverable { .. }) => return Err(Error::NotRecoverable { what: WHAT }),
            Err(error) => return Err(error),
        };
        // The rwlock keeps its own account of the data in `health` and `writer`; the mutex is
        // only the writers' turnstile, so a dead writer's mutex is consistent again at once.
        inner.mark_consistent()?;
        // Only a dead writer leaves its word behind (we hold the mutex it held).
        let previous = self.writer.load(Ordering::SeqCst);
        if previous & (WRITING | POISONED) != 0 {
            let pid = process::pid_of(previous).clamp(1, NOT_RECOVERABLE - 1);
            let _ = self.health.compare_exchange(HEALTHY, pid, Ordering::SeqCst, Ordering::SeqCst);
        }
        let health = self.health.load(Ordering::SeqCst);
        if health == NOT_RECOVERABLE {
            self.writer.store(0, Ordering::SeqCst);
            self.writer_gone();
            return Err(Error::NotRecoverable { what: WHAT });
        }
        let me = process::current();
        // Intent: from here on, new readers back off.
        self.writer.store(me, Ordering::SeqCst);
        let (mut check_liveness, mut poll) = (!blocking, LIVENESS_POLL);
        loop {
            let generation = self.reader_left.load(Ordering::SeqCst);
            if self.readers_gone(check_liveness) {
                break;
            }
            if !blocking {
                self.writer.store(0, Ordering::SeqCst);
                self.writer_gone();
                return Ok(None);
            }
            check_liveness = self.reader_left.wait(generation, Some(poll)) == Wake::TimedOut;
            if check_liveness {
                poll = (poll * 2).min(LIVENESS_POLL_MAX);
            }
        }
        // An exchange, not a store: a full barrier on every CPU, so that no write the caller
        // makes under the guard becomes visible before `WRITING` does (which would let readers
        // take a writer killed now for one that never wrote).
        self.writer.swap(me | WRITING, Ordering::SeqCst);
        let damaged = health != HEALTHY;
        Ok(Some(WriteGuard { lock: self, owner_died: damaged, damaged, _inner: inner }))
    }

    /// Whether every reader slot is free; with `check_liveness`, slots of dead processes are
    /// freed on the way.
    fn readers_gone(&self, check_liveness: bool) -> bool {
        let mut gone = true;
        for slot in &self.readers {
            let reader = slot.load(Ordering::SeqCst);
            if reader == 0 {
                continue;
            }
            if check_liveness && !process::is_alive(reader) {
                // Fails harmlessly if the slot changed hands: a live reader took it since.
                let _ = slot.compare_exchange(reader, 0, Ordering::SeqCst, Ordering::Relaxed);
                continue;
            }
            gone = false;
            if !check_liveness {
                break;
            }
        }
        gone
    }

    /// Frees the slots of dead readers.
    fn clear_dead_readers(&self) {
        self.readers_gone(true);
    }

    const fn unpublished() -> Self {
        Self {
            header: Header::unpublished(),
            size: AtomicU32::new(0),
            slots: AtomicU32::new(0),
            health: AtomicU32::new(HEALTHY),
            writer_left: Futex::new(0),
            reader_left: Futex::new(0),
            sleepers: AtomicU32::new(0),
            _reserved: AtomicU32::new(0),
            writer: AtomicU64::new(0),
            _pad0: UnsafeCell::new([0; 80]),
            writers: RobustMutex::unpublished(),
            _pad1: UnsafeCell::new([0; 64]),
            readers: [const { AtomicU64::new(0) }; READER_SLOTS],
            _pinned: PhantomPinned,
        }
    }
}

// SAFETY: every bit pattern is a valid lock (atomics, padding bytes, and a `RobustMutex`, which
// is `Placed` too), and every byte is an atomic or inside a cell.
unsafe impl Placed for RwLock {
    const WHAT: &'static str = WHAT;

    fn header(&self) -> &Header {
        &self.header
    }

    /// Resets every word, initialises the mutex and publishes the header.
    unsafe fn initialise(&self) -> Result<()> {
        self.header.initialise(MAGIC, VERSION, || {
            self.health.store(HEALTHY, Ordering::Relaxed);
            self.sleepers.store(0, Ordering::Relaxed);
            self.writer.store(0, Ordering::Relaxed);
            for slot in &self.readers {
                slot.store(0, Ordering::Relaxed);
            }
            // SAFETY: the caller's contract covers the embedded mutex.
            unsafe { self.writers.initialise() }?;
            self.size.store(Self::SIZE as u32, Ordering::Relaxed);
            self.slots.store(READER_SLOTS as u32, Ordering::Relaxed);
            Ok(())
        })
    }

    fn validate(&self) -> Result<()> {
        self.header.check(WHAT, MAGIC, VERSION)?;
        let size = self.size.load(Ordering::Relaxed);
        let slots = self.slots.load(Ordering::Relaxed);
        if size as usize != Self::SIZE || slots as usize != READER_SLOTS {
            return Err(Error::Corrupted {
                what: WHAT,
                detail: format!(
                    "built as {size} bytes with {slots} reader slots, this build has {} and \
                     {READER_SLOTS}",
                    Self::SIZE
                ),
            });
        }
        self.writers.validate()
    }
}

impl fmt::Debug for RwLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let writer = self.writer.load(Ordering::Relaxed);
        let readers = self.readers.iter().filter(|slot| slot.load(Ordering::Relaxed) != 0).count();
        f.debug_struct("RwLock")
            .field("state", &self.header.state())
            .field("writer_pid", &process::pid_of(writer))
            .field("writing", &(writer & WRITING != 0))
            .field("poisoned", &(writer & POISONED != 0))
            .field("readers", &readers)
            .field("health", &self.health.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

fn health_error(health: u32) -> Error {
    if health == NOT_RECOVERABLE {
        Error::NotRecoverable { what: WHAT }
    } else {
        Error::OwnerDied { what: WHAT, pid: health }
    }
}

/// A read lock on an [`RwLock`], shared with other readers; released on drop.
#[must_use = "the read lock is released as soon as the guard is dropped"]
#[derive(Debug)]
pub struct ReadGuard<'a> {
    lock: &'a RwLock,
    slot: usize,
}

impl Drop for ReadGuard<'_> {
    fn drop(&mut self) {
        self.lock.leave_slot(self.slot);
    }
}

/// The write lock on an [`RwLock`]; released on drop. Not `Send`: it holds the writers' robust
/// mutex, which the locking thread must unlock.
#[must_use = "the write lock is released as soon as the guard is dropped"]
pub struct WriteGuard<'a> {
    lock: &'a RwLock,
    owner_died: bool,
    /// Whether `health` said "needs repair" when this writer came in.
    damaged: bool,
    /// Dropped after `drop` has released the `writer` word.
    _inner: MutexGuard<'a>,
}

impl WriteGuard<'_> {
    /// Whether a writer died while writing and the data has not been repaired since: repair it,
    /// then call [`WriteGuard::mark_consistent`], or the lock becomes unusable when this guard
    /// drops.
    pub fn owner_died(&self) -> bool {
        self.owner_died
    }

    /// Declares the data repaired, so that readers and writers go on after this guard drops.
    /// Does nothing if no writer died.
    pub fn mark_consistent(&mut self) {
        self.owner_died = false;
    }
}

impl Drop for WriteGuard<'_> {
    fn drop(&mut self) {
        if self.owner_died {
            self.lock.health.store(NOT_RECOVERABLE, Ordering::SeqCst);
        } else if self.damaged {
            self.lock.health.store(HEALTHY, Ordering::SeqCst);
        }
        self.lock.writer.store(0, Ordering::SeqCst);
        self.lock.writer_gone();
    }
}

impl fmt::Debug for WriteGuard<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WriteGuard").field("owner_died", &self.owner_died).finish_non_exhaustive()
    }
}
