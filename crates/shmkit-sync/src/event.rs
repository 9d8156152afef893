//! [`Event`]: sleep until a condition that another thread or process makes true, with a notify
//! that makes no system call while nobody sleeps.
//!
//! The protocol, why no wake-up is lost, and what a notify costs are in [`Event`]'s docs.

use core::fmt;
use core::ptr::NonNull;
use core::time::Duration;

use crate::error::{Error, Result};
use crate::futex::Futex;
use crate::primitive::{AtomicU32, Ordering, fence};
use crate::wait::{Deadline, Remaining};

/// A process-shared event: [`Event::wait_until`] sleeps until a condition holds, and
/// [`Event::notify_one`] / [`Event::notify_all`] wake sleepers after the caller made it hold,
/// making no system call while nobody sleeps.
///
/// The condition is the caller's (a flag, an index): the event only carries the wake-up, so one
/// event can serve any number of conditions as long as notifies use [`Event::notify_all`].
///
/// ```
/// use std::sync::atomic::{AtomicBool, Ordering};
/// use shmkit_sync::Event;
///
/// static READY: AtomicBool = AtomicBool::new(false);
/// static EVENT: Event = Event::new();
///
/// let waiter = std::thread::spawn(|| EVENT.wait_until(|| READY.load(Ordering::Acquire), None));
/// READY.store(true, Ordering::Release);
/// EVENT.notify_all(); // one barrier and one load if the waiter is not asleep yet
/// assert!(waiter.join().unwrap());
/// ```
///
/// # The protocol
///
/// The condition lives outside the event (a ring's write index, a flag); the notifier makes it
/// true with its own store, then calls [`Event::notify_all`]. The event is two words: `seq`, the
/// futex word sleepers wait on, and `waiters`, how many threads are registered to sleep.
///
/// ```text
/// waiter                                    notifier
/// if ready() { return true }                (its own store makes ready() true)
/// waiters += 1                              fence(SeqCst)                    [Fn]
/// fence(SeqCst)                      [Fw]   if waiters.load() == 0 { return }
/// loop {                                    seq += 1 (Release)
///     s = seq.load(Acquire)                 futex_wake(seq)
///     if ready() { break true }
///     futex_wait(seq, s)   // sleeps only while seq == s
/// }
/// waiters -= 1
/// ```
///
/// Why no wake-up is lost: the two `SeqCst` fences are in one total order.
/// - `Fn` before `Fw`: the notifier's store is sequenced before `Fn` and every `ready()` of the
///   waiter after `Fw`, so the waiter sees the condition and never sleeps.
/// - `Fw` before `Fn`: the notifier's load of `waiters`, after `Fn`, sees the waiter's increment
///   (a later value of the counter still counts it: the waiter leaves only when done), so the
///   notifier bumps `seq` and wakes. The waiter's `s` is either older than the bump, and then
///   `futex_wait(seq, s)` returns at once or is woken (the kernel checks the word and queues the
///   sleeper atomically with respect to `futex_wake`), or it is the bump itself, whose release the
///   acquire load pairs with, so `ready()` sees the notifier's store.
///
/// Every other return of `futex_wait` (a signal, a timeout, a wake meant for another condition)
/// just goes round the loop again. `seq` wraps after 2^32 wakes: a waiter would have to read `s`,
/// stall through exactly a multiple of 2^32 of them and then sleep, and even then the next notify
/// wakes it. `tests/loom.rs` checks the protocol exhaustively (bounded preemptions), and also shows
/// loom finding the lost wake-up when the fences are dropped.
///
/// # Why the notifier's fast path needs a `StoreLoad` barrier, and what it costs
///
/// Each side stores (the condition; the registration) and then loads what the other side stored
/// (the registration; the condition): the store-buffering pattern. Without a barrier between its
/// store and its load, a CPU may perform the load first (x86 keeps the store in its store buffer
/// while later loads go ahead), both sides read the old values, the notifier skips the wake and the
/// waiter sleeps. Acquire/release orderings do not forbid that outcome; only a `StoreLoad` barrier
/// does, so `notify_*` pays one even when nobody waits: one locked instruction on x86-64 (LLVM
/// lowers `fence(SeqCst)` to `lock or` on the stack, a few cycles when the store buffer is short),
/// `dmb ish` on `AArch64`. It is the whole fast path with one load of `waiters`, which stays in the
/// notifier's cache as a shared line while nobody registers: no system call, no write to shared
/// memory. Measured (`benches/sync_event.rs`): a notify with nobody waiting takes under 3 ns, where
/// the `futex` wake it avoids takes hundreds of nanoseconds. An RMW on `waiters` would be the same
/// locked instruction on x86-64 but would take the line exclusive in every notifier; an asymmetric
/// barrier (`membarrier(2)` on the waiter's slow path) would make the notifier's fence a compiler
/// fence, but only for processes registered with the kernel, which a peer in another process cannot
/// be made to honour.
///
/// # In shared memory
///
/// An event is 8 bytes of two `u32` counters, 4-aligned, placed by [`Event::init_at`] and opened by
/// [`Event::open_at`]. It has no magic or version of its own: it is always a field of a larger
/// shared header that carries them (as every shmkit shared header does). Every bit pattern is a
/// valid event, so there is nothing to check and nothing a peer can corrupt into undefined
/// behaviour: a wrong `waiters` costs an unneeded system call (too high: a process that died while
/// sleeping leaves it so) or a missed wake (too low: only a peer that writes garbage, which could
/// as well never notify; a sleeper's timeout covers both). All-zero bytes are a fresh event, so a
/// region that the OS handed out zero-filled needs no `init_at`.
#[repr(C)]
#[derive(Default)]
pub struct Event {
    /// The futex word: bumped by every notify that finds a registered waiter.
    seq: Futex,
    /// How many threads are registered to sleep (between their increment and decrement).
    waiters: AtomicU32,
}

impl Event {
    /// Bytes an event takes in shared memory (8).
    pub const SIZE: usize = size_of::<Self>();
    /// The alignment an event needs in shared memory (4).
    pub const ALIGN: usize = align_of::<Self>();

    /// A fresh event, for a `static` or any memory of one process. In shared memory, use
    /// [`Event::init_at`] (or zero-filled bytes and [`Event::open_at`]).
    #[cfg(not(loom))]
    pub const fn new() -> Self {
        Self { seq: Futex::new(0), waiters: AtomicU32::new(0) }
    }

    /// A fresh event.
    #[cfg(loom)]
    pub fn new() -> Self {
        Self { seq: Futex::new(0), waiters: AtomicU32::new(0) }
    }

    /// Writes a fresh event at `ptr` and returns it.
    ///
    /// ```
    /// use std::ptr::NonNull;
    /// use shmkit_name::{Name, PageSize};
    /// use shmkit_os::{Access, MapOptions, Region, RegionOptions};
    /// use shmkit_sync::Event;
    ///
    /// let name = Name::new(&format!("doc-event-{}", std::process::id()))?;
    /// RegionOptions::new().create(&name, 1)?;
    /// let mapping = Region::open(&name, None, Access::ReadWrite)?.map(&MapOptions::new())?;
    /// let base = NonNull::new(mapping.as_ptr()).expect("a mapping is never null");
    /// // SAFETY: the mapping outlives the event and no other process maps the region yet; its
    /// // first 8 bytes are used only as the event.
    /// let event = unsafe { Event::init_at(base, mapping.len()) }?;
    /// // Any process that maps the region opens the same bytes.
    /// // SAFETY: as above.
    /// let same = unsafe { Event::open_at(base, mapping.len()) }?;
    /// event.notify_all();
    /// assert_eq!(same.wakeups(), 0, "nobody waited, so nothing was woken");
    /// shmkit_os::unlink(&name, PageSize::Normal)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Safety
    ///
    /// - `ptr..ptr + len` is valid for reads and writes for `'a` (stays mapped while the
    ///   reference lives).
    /// - Nobody else, in this or another process, accesses these bytes while this writes them;
    ///   others learn about the event afterwards through a publication (the enclosing header's
    ///   release store).
    /// - For `'a`, the bytes are accessed only through atomics (this event, or another opened
    ///   with [`Event::open_at`] in any process), never through a `&mut` or a plain write.
    pub unsafe fn init_at<'a>(ptr: NonNull<u8>, len: usize) -> Result<&'a Self> {
        let event = Self::placed(ptr, len)?;
        // SAFETY: `placed` checked size and alignment; the caller guarantees the bytes are valid
        // for writes and that nobody accesses them during this write.
        unsafe { event.write(Self::new()) };
        // SAFETY: just initialised; valid for `'a` and accessed only atomically (caller).
        Ok(unsafe { event.as_ref() })
    }

    /// Opens the event another process (or this one) placed at `ptr` with [`Event::init_at`].
    ///
    /// Only size and alignment are checked: an event has no header of its own (it lives inside
    /// a header that has the magic), and every bit pattern is a valid event.
    ///
    /// # Safety
    ///
    /// - `ptr..ptr + len` is valid for reads and writes for `'a` (stays mapped while the
    ///   reference lives).
    /// - The bytes hold an event: written by [`Event::init_at`] and published, or zero-filled by
    ///   the OS (a zeroed event is a fresh one). Under `--cfg loom`, only `init_at` counts.
    /// - For `'a`, the bytes are accessed only through atomics, never through a `&mut` or a plain
    ///   write.
    pub unsafe fn open_at<'a>(ptr: NonNull<u8>, len: usize) -> Result<&'a Self> {
        let event = Self::placed(ptr, len)?;
        // SAFETY: size and alignment checked; the caller guarantees the bytes hold an event that
        // stays valid for `'a` and is accessed only atomically, as `Event` does.
        Ok(unsafe { event.as_ref() })
    }

    /// `ptr` as an event, if `len` bytes there can hold one.
    fn placed(ptr: NonNull<u8>, len: usize) -> Result<NonNull<Self>> {
        if len < Self::SIZE {
            return Err(Error::Placement {
                what: "event",
                detail: format!("{len} bytes given, an event needs {}", Self::SIZE),
            });
        }
        if !ptr.as_ptr().addr().is_multiple_of(Self::ALIGN) {
            return Err(Error::Placement {
                what: "event",
                detail: format!("address {ptr:p} is not {}-byte aligned", Self::ALIGN),
            });
        }
        Ok(ptr.cast())
    }

    /// Wakes one sleeper, if any is registered. Call it after making the condition true.
    ///
    /// With nobody registered it costs one `StoreLoad` barrier and one load: no system call and no
    /// write. Use it only when every sleeper waits for the same condition and any one of them can
    /// take it (one consumer per event): a wake that goes to a sleeper waiting for something else
    /// is lost for the others. Otherwise use [`Event::notify_all`].
    #[doc(alias = "FUTEX_WAKE")]
    #[inline]
    pub fn notify_one(&self) {
        if self.has_waiters() {
            self.wake(1);
        }
    }

    /// Wakes every registered sleeper. Call it after making the condition true.
    ///
    /// With nobody registered it costs one `StoreLoad` barrier and one load: no system call and no
    /// write.
    #[doc(alias = "FUTEX_WAKE")]
    #[inline]
    pub fn notify_all(&self) {
        if self.has_waiters() {
            self.wake(u32::MAX);
        }
    }

    /// The notifier's side of the protocol, after the caller's store: whether anyone may sleep.
    #[inline]
    fn has_waiters(&self) -> bool {
        // The StoreLoad barrier that pairs with the waiter's fence (see [`Event`]): either the
        // waiter sees the caller's store, or this load sees the waiter's registration.
        fence(Ordering::SeqCst);
        self.waiters.load(Ordering::Relaxed) != 0
    }

    /// The slow path: a sleeper is registered.
    #[cold]
    #[inline(never)]
    fn wake(&self, count: u32) {
        // Release: a waiter whose acquire load reads this bump sees the caller's store (the fence
        // in `has_waiters` already gives that, as loom confirms with Relaxed here; Release says it
        // where it is used, free on x86-64). The bump also makes a `futex_wait` still on its way
        // with the old value return at once.
        self.seq.word().fetch_add(1, Ordering::Release);
        self.seq.wake(count);
    }

    /// Sleeps until `ready()` returns `true` (returns `true`) or `timeout` passes first (returns
    /// `false`); `None` waits forever, `Some(Duration::ZERO)` checks once.
    ///
    /// `ready` must read the condition with at least `Acquire` loads (to see what the notifier
    /// wrote before making it true) and have no side effects: it is called again after every
    /// wake-up, spurious or not. The wait never returns because of a notify alone: only a true
    /// `ready()` or the timeout end it. The timeout is measured on the monotonic clock; the
    /// sleep may overrun it by the scheduler's latency.
    #[doc(alias = "FUTEX_WAIT")]
    pub fn wait_until(&self, ready: impl FnMut() -> bool, timeout: Option<Duration>) -> bool {
        self.wait_until_deadline(ready, Deadline::after(timeout))
    }

    /// [`Event::wait_until`] with a deadline already running (for the wait strategies).
    pub(crate) fn wait_until_deadline(
        &self,
        mut ready: impl FnMut() -> bool,
        deadline: Deadline,
    ) -> bool {
        if ready() {
            return true;
        }
        if let Remaining::Passed = deadline.remaining() {
            return false;
        }
        let _registered = Registration::new(&self.waiters);
        // The StoreLoad barrier that pairs with the notifier's (see [`Event`]).
        fence(Ordering::SeqCst);
        loop {
            // Read before `ready()`: a notify after the check changes `seq`, so the sleep below
            // does not start, or the kernel wakes it.
            let seen = self.seq.load(Ordering::Acquire);
            if ready() {
                return true;
            }
            let timeout = match deadline.remaining() {
                Remaining::Forever => None,
                Remaining::Left(left) => Some(left),
                Remaining::Passed => return false,
            };
            // Every outcome (woken, changed, signal, timeout) means: look again.
            self.seq.wait(seen, timeout);
        }
    }

    /// How many threads are registered to sleep right now, in any process (a snapshot, for
    /// statistics and tests).
    pub fn waiters(&self) -> u32 {
        self.waiters.load(Ordering::Relaxed)
    }

    /// How many notifies found a registered sleeper and called the kernel, modulo 2^32 (the futex
    /// word; a snapshot, for statistics and tests). A notify that leaves it unchanged made no
    /// system call.
    pub fn wakeups(&self) -> u32 {
        self.seq.load(Ordering::Relaxed)
    }
}

impl fmt::Debug for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Event")
            .field("waiters", &self.waiters())
            .field("wakeups", &self.wakeups())
            .finish()
    }
}

/// A waiter's registration in `waiters`, undone on drop (also if `ready` panics, so a panicking
/// waiter does not leave notifiers making system calls for nobody).
struct Registration<'a>(&'a AtomicU32);

impl<'a> Registration<'a> {
    fn new(waiters: &'a AtomicU32) -> Self {
        // Relaxed: the fence after it orders it before the waiter's loads (see [`Event`]).
        waiters.fetch_add(1, Ordering::Relaxed);
        Self(waiters)
    }
}

impl Drop for Registration<'_> {
    fn drop(&mut self) {
        // Relaxed: leaving orders nothing; a notifier that reads the lower count skips a wake this
        // waiter no longer needs.
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(all(test, not(loom)))]
mod layout {
    use core::mem::offset_of;

    use super::Event;

    static_assertions::assert_eq_size!(Event, [u8; 8]);
    static_assertions::assert_eq_align!(Event, u32);
    static_assertions::const_assert_eq!(offset_of!(Event, seq), 0);
    static_assertions::const_assert_eq!(offset_of!(Event, waiters), 4);
}

#[cfg(all(test, not(loom)))]
mod tests {
    use std::sync::atomic::AtomicBool;
    use std::time::Instant;

    use super::*;

    #[test]
    fn notify_without_a_waiter_changes_nothing() {
        let event = Event::new();
        event.notify_one();
        event.notify_all();
        assert_eq!((event.waiters(), event.wakeups()), (0, 0));
    }

    #[test]
    fn a_ready_condition_returns_without_registering() {
        let event = Event::new();
        assert!(event.wait_until(|| true, None));
        assert!(event.wait_until(|| true, Some(Duration::ZERO)));
        assert_eq!(event.waiters(), 0);
    }

    #[test]
    fn a_zero_timeout_checks_once() {
        let event = Event::new();
        let mut checks = 0;
        let ready = event.wait_until(
            || {
                checks += 1;
                false
            },
            Some(Duration::ZERO),
        );
        assert_eq!((ready, checks, event.waiters()), (false, 1, 0));
    }

    #[test]
    fn a_wait_times_out_after_its_timeout() {
        let event = Event::new();
        let timeout = Duration::from_millis(20);
        let start = Instant::now();
        assert!(!event.wait_until(|| false, Some(timeout)));
        assert!(start.elapsed() >= timeout);
        assert_eq!(event.waiters(), 0);
    }

    #[test]
    fn a_sleeping_thread_is_woken() {
        let event = Event::new();
        let ready = AtomicBool::new(false);
        std::thread::scope(|scope| {
            let waiter = scope.spawn(|| event.wait_until(|| ready.load(Ordering::Acquire), None));
            while event.waiters() == 0 {
                std::thread::yield_now();
            }
            ready.store(true, Ordering::Release);
            event.notify_one();
            assert!(waiter.join().expect("waiter"));
        });
        assert_eq!((event.waiters(), event.wakeups()), (0, 1));
    }

    #[test]
    fn a_panicking_condition_leaves_no_registration() {
        let event = Event::new();
        let mut calls = 0;
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            event.wait_until(
                || {
                    calls += 1;
                    assert!(calls < 2, "condition panics on its second call");
                    false
                },
                None,
            )
        }));
        assert!(result.is_err());
        assert_eq!(event.waiters(), 0);
    }

    #[test]
    fn placement_checks_size_and_alignment() {
        let mut words = [0_u32; 4];
        let base = NonNull::from(&mut words).cast::<u8>();
        // SAFETY: `words` outlives every event below and is only used through them.
        unsafe {
            assert!(matches!(Event::init_at(base, 7), Err(Error::Placement { .. })));
            assert!(matches!(Event::open_at(base.add(2), 8), Err(Error::Placement { .. })));
            let event = Event::init_at(base.add(4), 12).expect("fits");
            event.waiters.store(3, Ordering::Relaxed);
            assert_eq!(Event::open_at(base.add(4), 8).expect("opens").waiters(), 3);
        }
        assert_eq!(words, [0, 0, 3, 0]);
    }

    #[test]
    fn zeroed_bytes_are_a_fresh_event() {
        let mut words = [0_u32; 2];
        let base = NonNull::from(&mut words).cast::<u8>();
        // SAFETY: `words` outlives the event and is only used through it.
        let event = unsafe { Event::open_at(base, 8) }.expect("opens");
        assert_eq!((event.waiters(), event.wakeups()), (0, 0));
        assert!(event.wait_until(|| true, None));
    }
}
