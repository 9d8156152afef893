//! `shmkit-sync`: synchronisation that works between processes.
//!
//! Every object here is `#[repr(C)]`, fixed in size, initialised in place in a shared byte range
//! by one process and opened from the same bytes by the others.
//!
//! - [`Futex`]: a shared 32-bit word to sleep on (`futex` without the private flag).
//! - [`RobustMutex`]: a mutex whose holder may die (even `kill -9`): the next locker is told
//!   ([`MutexGuard::owner_died`]), repairs the data and marks it consistent.
//! - [`RwLock`]: a writer-preferring reader-writer lock for read-mostly shared data, which no
//!   dead reader or writer can wedge.
//! - [`SemLock`]: a lock on one System V semaphore, which the kernel releases when its holder
//!   dies (`SEM_UNDO`), for System V segments.
//! - [`Event`]: sleep until a condition holds; notify makes no system call while nobody sleeps.
//! - [`Backoff`]: exponential spinning between polls of a line another core writes.
//! - [`WaitStrategy`]: how a ring's side waits: [`BusySpin`], [`SpinYield`], [`SpinFutex`].
//!
//! # The robust mutex: mechanism, and what owner death means
//!
//! [`RobustMutex`] is glibc's robust process-shared pthread mutex (`PTHREAD_PROCESS_SHARED`,
//! `PTHREAD_MUTEX_ROBUST`, `PTHREAD_MUTEX_ERRORCHECK`), not a futex word with a robust list of
//! our own. Why:
//! - The kernel learns which locks a dying thread held from one robust list per thread, whose
//!   head the thread registers with `set_robust_list(2)`; at exit it walks the list, sets
//!   `FUTEX_OWNER_DIED` in each lock word and wakes a waiter. There is one head per thread, and
//!   glibc registers its own for every thread it starts. A lock of ours that registered a second
//!   head would replace glibc's and silently break every robust pthread mutex in the process,
//!   the application's included; to coexist it would have to splice its entries into glibc's
//!   private list, whose layout and `list_op_pending` protocol are glibc internals.
//! - glibc's mutex already is the contract asked for: `EOWNERDEAD` with the lock taken,
//!   `pthread_mutex_consistent`, `ENOTRECOVERABLE` for everyone once a repair is abandoned,
//!   `EDEADLK` for a relock by the holder, and `pthread_mutex_clocklock` (glibc 2.30+) for a
//!   timeout on `CLOCK_MONOTONIC`.
//!
//! The price:
//! - Speed: a robust mutex takes glibc's general `__pthread_mutex_lock_full`, not its inlined
//!   fast path. Around the same CAS it publishes `list_op_pending` in the thread descriptor,
//!   links the mutex into the robust list and records the owner; unlock unlinks it before the
//!   exchange.
//!   Uncontended lock + unlock measured 15-20 ns, against 7-9 ns for a plain process-shared
//!   pthread mutex and 5-7 ns for `std::sync::Mutex`; the wrapper adds about 1 ns to glibc's
//!   robust mutex called directly (`cargo bench -p shmkit-benches --bench sync_lock`).
//! - Portability: the bytes are glibc's ABI, so every process must use glibc (the header records
//!   the size of `pthread_mutex_t` and an opener checks it).
//! - Trust: glibc links a held robust mutex into its owner's robust list through pointers stored
//!   in the mutex itself, so a peer that writes garbage over a mutex another process holds can
//!   make that process (or the kernel, at its exit) follow a bad pointer. A home-made lock on the
//!   kernel's robust list would share this. The processes sharing a robust mutex (or an
//!   [`RwLock`], which embeds one) must trust each other.
//!
//! Owner death, step by step:
//! 1. A process (or thread) dies holding the mutex, however it dies.
//! 2. The next `lock`, `try_lock` or `lock_timeout`, in any process, gets the lock with
//!    [`MutexGuard::owner_died`] true. The data may be half-written.
//! 3. It repairs the data and calls [`MutexGuard::mark_consistent`]; from then on the mutex works
//!    as before, and later lockers see a normal lock.
//! 4. If it drops the guard without marking it consistent, every later lock, in every process,
//!    fails with [`Error::NotRecoverable`]. The only way back is [`RobustMutex::init_at`] on the
//!    same bytes once no process uses them.
//!
//! [`RwLock`] builds on the same mutex for its writers and detects dead readers by pid (its docs
//! say how); [`SemLock`] leaves owner death to the kernel's `SEM_UNDO` and tells no one.
//!
//! ```
//! use std::ptr::NonNull;
//! use std::time::Duration;
//! use shmkit_name::{Name, PageSize};
//! use shmkit_os::{Access, MapOptions, Region, RegionOptions};
//! use shmkit_sync::RobustMutex;
//!
//! let name = Name::new(&format!("doc-sync-{}", std::process::id()))?;
//! RegionOptions::new().create(&name, 1)?;
//! let mapping = Region::open(&name, None, Access::ReadWrite)?.map(&MapOptions::new())?;
//! let base = NonNull::new(mapping.as_ptr()).expect("a mapping is never null");
//! // SAFETY: the mapping outlives the mutex; its first 64 bytes are used only as the mutex.
//! unsafe { RobustMutex::init_at(base, mapping.len()) }?;
//! // Any process that maps the region opens the same bytes.
//! // SAFETY: as above.
//! let mutex = unsafe { RobustMutex::open_at(base, mapping.len(), Duration::from_secs(1)) }?;
//! let mut guard = mutex.lock()?;
//! if guard.owner_died() {
//!     // Repair the data the mutex protects, then:
//!     guard.mark_consistent()?;
//! }
//! drop(guard);
//! shmkit_os::unlink(&name, PageSize::Normal)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(unsafe_op_in_unsafe_fn)]

mod backoff;
mod error;
mod event;
mod futex;
#[cfg(not(loom))]
mod mutex;
#[cfg(not(loom))]
mod placement;
mod primitive;
#[cfg(not(loom))]
mod rwlock;
#[cfg(not(loom))]
mod semaphore;
mod wait;

pub use backoff::Backoff;
pub use error::{Error, Result};
pub use event::Event;
pub use futex::{Futex, Wake};
#[cfg(not(loom))]
pub use mutex::{MutexGuard, RobustMutex};
#[cfg(not(loom))]
pub use rwlock::{READER_SLOTS, ReadGuard, RwLock, WriteGuard};
#[cfg(not(loom))]
pub use semaphore::{SemGuard, SemLock};
pub use wait::{BusySpin, SpinFutex, SpinYield, WaitStrategy};
