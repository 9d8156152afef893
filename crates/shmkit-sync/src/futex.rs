//! A 32-bit word in shared memory that threads of any process can sleep on: the Linux `futex`
//! call without `FUTEX_PRIVATE_FLAG`, so the kernel keys waiters by the physical page and a wake in
//! one process reaches a waiter in another.
//!
//! Under `--cfg loom` the word is a loom atomic and the sleep is emulated with a loom mutex and
//! condition variable that keep the futex contract: `wait` sleeps only if the word still holds
//! `expected`, atomically with respect to `wake`.

use core::time::Duration;

use crate::primitive::{AtomicU32, Ordering};

/// Why [`Futex::wait`] returned. Every outcome means "look at the word again": futex waits can
/// wake spuriously.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wake {
    /// Woken by [`Futex::wake`] (or spuriously, or by a signal).
    Woken,
    /// The word did not hold the expected value, so the call did not sleep.
    Changed,
    /// The timeout passed.
    TimedOut,
}

/// A 32-bit futex word. `#[repr(transparent)]` over `AtomicU32`, so it can sit at any 4-aligned
/// offset of a shared header.
#[cfg_attr(not(loom), repr(transparent))]
#[derive(Debug, Default)]
pub struct Futex {
    word: AtomicU32,
    #[cfg(loom)]
    sleep: loom_sleep::Sleep,
}

impl Futex {
    /// A word holding `value`.
    #[cfg(not(loom))]
    pub const fn new(value: u32) -> Self {
        Self { word: AtomicU32::new(value) }
    }

    /// A word holding `value`.
    #[cfg(loom)]
    pub fn new(value: u32) -> Self {
        Self { word: AtomicU32::new(value), sleep: loom_sleep::Sleep::default() }
    }

    /// The word itself, for the protocol built on it.
    pub fn word(&self) -> &AtomicU32 {
        &self.word
    }

    /// `futex(word, FUTEX_WAIT, expected, timeout)`: sleeps while the word holds `expected`,
    /// until [`Futex::wake`], a signal or `timeout` (relative; `None` waits forever).
    #[doc(alias = "FUTEX_WAIT")]
    #[cfg(not(loom))]
    pub fn wait(&self, expected: u32, timeout: Option<Duration>) -> Wake {
        use rustix::io::Errno;
        use rustix::thread::futex;

        let timespec = timeout.map(|timeout| rustix::time::Timespec {
            tv_sec: i64::try_from(timeout.as_secs()).unwrap_or(i64::MAX),
            tv_nsec: i64::from(timeout.subsec_nanos()),
        });
        match futex::wait(&self.word, futex::Flags::empty(), expected, timespec.as_ref()) {
            Err(Errno::AGAIN) => Wake::Changed,
            Err(Errno::TIMEDOUT) => Wake::TimedOut,
            // Woken, interrupted by a signal (EINTR), or any other error: the caller re-checks
            // the word, which is the only safe reaction to every one of them.
            Ok(()) | Err(_) => Wake::Woken,
        }
    }

    /// `futex(word, FUTEX_WAKE, count)`: wakes up to `count` sleepers (in any process); returns
    /// how many were woken. `u32::MAX` (any count from `i32::MAX` up) wakes them all.
    #[doc(alias = "FUTEX_WAKE")]
    #[cfg(not(loom))]
    pub fn wake(&self, count: u32) -> usize {
        // The kernel reads the count as a C `int`: `u32::MAX` would be -1, and `futex_wake` stops
        // after the first sleeper once its tally reaches a negative count. `INT_MAX` means all.
        let count = count.min(i32::MAX as u32);
        rustix::thread::futex::wake(&self.word, rustix::thread::futex::Flags::empty(), count)
            .unwrap_or(0)
    }

    /// Emulated `FUTEX_WAIT` for loom models (timeouts are ignored: loom has no clock, and a
    /// model that needs a timeout to finish has a lost wake-up, which is what it checks for).
    #[cfg(loom)]
    pub fn wait(&self, expected: u32, _timeout: Option<Duration>) -> Wake {
        self.sleep.wait(|| self.word.load(Ordering::SeqCst) == expected)
    }

    /// Emulated `FUTEX_WAKE` for loom models.
    #[cfg(loom)]
    pub fn wake(&self, count: u32) -> usize {
        self.sleep.wake(count)
    }

    /// Loads the word.
    pub fn load(&self, order: Ordering) -> u32 {
        self.word.load(order)
    }
}

#[cfg(loom)]
mod loom_sleep {
    use std::sync::PoisonError;

    use loom::sync::{Condvar, Mutex};

    use super::Wake;

    /// A futex queue for loom: the value check and the sleep happen under one mutex, and wakes
    /// take the same mutex, so no wake can fall between them (the kernel's guarantee).
    #[derive(Debug, Default)]
    pub(super) struct Sleep {
        sleepers: Mutex<u32>,
        condvar: Condvar,
    }

    impl Sleep {
        pub(super) fn wait(&self, still_expected: impl Fn() -> bool) -> Wake {
            let mut sleepers = self.sleepers.lock().unwrap_or_else(PoisonError::into_inner);
            if !still_expected() {
                return Wake::Changed;
            }
            *sleepers += 1;
            let mut sleepers = self.condvar.wait(sleepers).unwrap_or_else(PoisonError::into_inner);
            *sleepers -= 1;
            Wake::Woken
        }

        pub(super) fn wake(&self, count: u32) -> usize {
            let sleepers = self.sleepers.lock().unwrap_or_else(PoisonError::into_inner);
            // Up to `count` of the queued sleepers, each once, as the kernel does: a model that
            // relies on waking more than it asked for fails here as it would for real.
            // (`sleepers` may still count threads woken but not yet running; a `notify_one`
            // with nobody queued does nothing.)
            let woken = (*sleepers).min(count);
            for _ in 0..woken {
                self.condvar.notify_one();
            }
            woken as usize
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn a_wait_on_a_changed_word_returns_at_once() {
        let futex = Futex::new(1);
        assert_eq!(futex.wait(0, None), Wake::Changed);
    }

    #[test]
    fn a_wait_times_out() {
        let futex = Futex::new(0);
        assert_eq!(futex.wait(0, Some(Duration::from_millis(5))), Wake::TimedOut);
    }

    #[test]
    fn a_wake_with_no_sleeper_wakes_nobody() {
        assert_eq!(Futex::new(0).wake(u32::MAX), 0);
    }

    /// `u32::MAX` is -1 to the kernel, which would wake one sleeper only.
    #[test]
    fn a_wake_of_u32_max_wakes_every_sleeper() {
        let futex = Futex::new(0);
        std::thread::scope(|scope| {
            let sleepers: Vec<_> = (0..3)
                .map(|_| {
                    scope.spawn(|| {
                        while futex.load(Ordering::Acquire) == 0 {
                            futex.wait(0, None);
                        }
                    })
                })
                .collect();
            // Woken sleepers go back to sleep while the word is 0, so one call soon finds all
            // three asleep; a call that can wake one only never returns 3.
            let all_at_once = (0..2_000)
                .map(|_| {
                    std::thread::sleep(Duration::from_millis(1));
                    futex.wake(u32::MAX)
                })
                .find(|&woken| woken == 3);
            // Let them all go, one by one if need be, before judging.
            futex.word().store(1, Ordering::Release);
            while !sleepers.iter().all(std::thread::ScopedJoinHandle::is_finished) {
                futex.wake(1);
                std::thread::yield_now();
            }
            assert_eq!(all_at_once, Some(3), "one wake reaches every sleeper");
        });
    }
}
