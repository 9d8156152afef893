//! How one side of a ring waits for the other: [`WaitStrategy`] and its implementations, which
//! trade wake-up latency against CPU time (compared in [`WaitStrategy`]'s docs).

use core::time::Duration;
use std::time::Instant;

use crate::event::Event;
use crate::primitive::{spin_loop, yield_now};

/// How a consumer (or a producer facing a full ring) waits for the other side.
///
/// - [`BusySpin`]: the lowest latency, one cache-line hand-off (~80 ns one way); a whole core
///   for as long as it waits.
/// - [`SpinYield`]: as `BusySpin` while the core has nothing else to run, else a time slice of
///   what runs; a whole core, but lent at once to any runnable thread.
/// - [`SpinFutex`]: as `BusySpin` within its spins, then a futex wake-up (4 to 26 µs one way);
///   the spins, then no CPU at all.
///
/// (Figures from `benches/sync_event.rs` on the 2-core test VM; see each type for more.)
///
/// The waiting side picks its strategy; the publishing side calls [`WaitStrategy::notify`] after
/// every publication. `notify` always notifies the event, whatever the strategy, because the
/// publisher cannot know how the other side waits (another process may have chosen differently):
/// the [`Event`]'s waiter count makes that one barrier and one load while nobody sleeps.
///
/// The trait is generic rather than object-safe: a ring is generic over its strategy, so the
/// strategy's loop is compiled together with the ring's `ready` check. To choose a strategy at run
/// time, match on your own enum and call the concrete strategies.
///
/// ```
/// use std::sync::atomic::{AtomicU64, Ordering};
/// use std::time::Duration;
/// use shmkit_sync::{Event, SpinFutex, WaitStrategy};
///
/// static PUBLISHED: AtomicU64 = AtomicU64::new(0);
/// static EVENT: Event = Event::new();
///
/// let consumer = std::thread::spawn(|| {
///     SpinFutex::default().wait_until(&EVENT, || PUBLISHED.load(Ordering::Acquire) >= 1, None)
/// });
/// PUBLISHED.store(1, Ordering::Release);
/// SpinFutex::default().notify(&EVENT);
/// assert!(consumer.join().unwrap());
///
/// // Nothing to wait for: a timeout ends the wait.
/// assert!(!SpinFutex::default().wait_until(&EVENT, || false, Some(Duration::from_millis(1))));
/// ```
pub trait WaitStrategy {
    /// Waits until `ready()` returns `true` (returns `true`) or `timeout` passes (returns `false`);
    /// `None` waits forever. `ready` must read with `Acquire` loads and have no side effects: it
    /// is called many times. Only a strategy that sleeps uses `event`.
    fn wait_until(
        &self,
        event: &Event,
        ready: impl FnMut() -> bool,
        timeout: Option<Duration>,
    ) -> bool;

    /// Called by the other side after each publication that may make a waiter's `ready()` true.
    /// Wakes sleepers of `event` if any are registered ([`Event::notify_all`]): no system call
    /// otherwise.
    #[inline]
    fn notify(&self, event: &Event) {
        event.notify_all();
    }
}

/// Spins on `ready()` with the CPU's pause hint, never giving the core away.
///
/// Latency: the lowest there is, the time for the publisher's cache line to reach this core
/// (60 to 95 ns one way between two processes on the test VM with both cores free). CPU: the
/// whole core while waiting, and its sibling hyperthread slowed; use it only with a core reserved
/// for the waiter (isolated, pinned), never with more spinning threads than cores, where a spinner
/// holds the core its publisher needs for a whole time slice (the same ping-pong then takes about
/// a millisecond a round). The timeout is checked every 64 spins.
#[derive(Clone, Copy, Debug, Default)]
pub struct BusySpin;

impl WaitStrategy for BusySpin {
    fn wait_until(
        &self,
        _event: &Event,
        ready: impl FnMut() -> bool,
        timeout: Option<Duration>,
    ) -> bool {
        // No bounded spin phase: the whole wait is spins.
        spin_then(ready, timeout, 0, spin_until)
    }
}

/// Spins `spins` times, then yields the core (`sched_yield`) between checks of `ready()`.
///
/// Latency: as [`BusySpin`] during the spins; afterwards a check every yield, about a
/// microsecond apart (one system call) while the core has nothing else to run, and a whole
/// time slice of another thread (milliseconds) when it has. CPU: still a whole core, but one that
/// any runnable thread gets at once, so it suits a machine with more waiters than spare cores that
/// must not sleep. Default: 64 spins (one pause is a few to 140 cycles depending on the CPU, about
/// 30 ns on the test VM, so 2 µs there).
#[derive(Clone, Copy, Debug)]
pub struct SpinYield {
    /// Pause-hinted checks before the first yield.
    pub spins: u32,
}

impl SpinYield {
    /// The default number of spins before yielding.
    pub const DEFAULT_SPINS: u32 = 64;
}

impl Default for SpinYield {
    fn default() -> Self {
        Self { spins: Self::DEFAULT_SPINS }
    }
}

impl WaitStrategy for SpinYield {
    fn wait_until(
        &self,
        _event: &Event,
        ready: impl FnMut() -> bool,
        timeout: Option<Duration>,
    ) -> bool {
        spin_then(ready, timeout, self.spins, |mut ready, deadline| {
            loop {
                yield_now();
                if ready() {
                    return true;
                }
                if deadline.passed() {
                    return false;
                }
            }
        })
    }
}

/// Spins `spins` times, then sleeps on the [`Event`] until the other side's
/// [`WaitStrategy::notify`] wakes it.
///
/// Latency: as [`BusySpin`] while the other side answers within the spins; after that a futex
/// wake-up, microseconds (the kernel's wake plus the scheduler putting this thread back on a core:
/// 4 to 26 µs one way between processes on the test VM, the most when its cores were idle and had
/// to be woken; see the `sync_event` benchmark). CPU: the spins only, then none; the publisher pays
/// a system call per notify only while this side sleeps. The choice for anything that waits long or
/// often, with idle periods. Default: 128 spins (about 4 µs on the test VM, the order of a sleep
/// and wake-up, so a wait shorter than that never pays for the sleep, and a longer one wastes at
/// most as much CPU as the sleep would have cost).
#[derive(Clone, Copy, Debug)]
pub struct SpinFutex {
    /// Pause-hinted checks before sleeping.
    pub spins: u32,
}

impl SpinFutex {
    /// The default number of spins before sleeping.
    pub const DEFAULT_SPINS: u32 = 128;
}

impl Default for SpinFutex {
    fn default() -> Self {
        Self { spins: Self::DEFAULT_SPINS }
    }
}

impl WaitStrategy for SpinFutex {
    fn wait_until(
        &self,
        event: &Event,
        ready: impl FnMut() -> bool,
        timeout: Option<Duration>,
    ) -> bool {
        spin_then(ready, timeout, self.spins, |ready, deadline| {
            event.wait_until_deadline(ready, deadline)
        })
    }
}

/// How often a spin loop reads the clock: reading it costs as much as a few pauses.
const SPINS_PER_CLOCK_CHECK: u32 = 64;

/// The course every strategy's wait takes: one check of `ready()` (no clock read if it already
/// holds), then up to `spins` pause-hinted checks, then, if neither `ready()` nor the deadline
/// ended the wait, `after_spins` with what is left of it.
#[inline]
fn spin_then<F: FnMut() -> bool>(
    mut ready: F,
    timeout: Option<Duration>,
    spins: u32,
    after_spins: impl FnOnce(F, Deadline) -> bool,
) -> bool {
    if ready() {
        return true;
    }
    let deadline = Deadline::after(timeout);
    match spin(&mut ready, spins, deadline) {
        Some(outcome) => outcome,
        None => after_spins(ready, deadline),
    }
}

/// Pause-hinted checks of `ready()` until it holds (`true`) or the deadline passes (`false`).
fn spin_until(mut ready: impl FnMut() -> bool, deadline: Deadline) -> bool {
    loop {
        if let Some(outcome) = spin(&mut ready, u32::MAX, deadline) {
            return outcome;
        }
    }
}

/// Up to `spins` pause-hinted checks of `ready()`: `Some(true)` when ready, `Some(false)` when
/// the deadline passed, `None` when the spins ran out.
fn spin(ready: &mut impl FnMut() -> bool, spins: u32, deadline: Deadline) -> Option<bool> {
    for spin in 1..=spins {
        spin_loop();
        if ready() {
            return Some(true);
        }
        if spin.is_multiple_of(SPINS_PER_CLOCK_CHECK) && deadline.passed() {
            return Some(false);
        }
    }
    None
}

/// When a wait with a timeout must end (never, for `None` or a timeout too large for the clock).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Deadline(Option<Instant>);

/// What is left of a [`Deadline`].
#[derive(Clone, Copy, Debug)]
pub(crate) enum Remaining {
    /// No deadline.
    Forever,
    /// This long.
    Left(Duration),
    /// Nothing: the deadline passed.
    Passed,
}

impl Deadline {
    /// `timeout` from now (no clock read for `None`).
    pub(crate) fn after(timeout: Option<Duration>) -> Self {
        Self(timeout.and_then(|timeout| Instant::now().checked_add(timeout)))
    }

    /// What is left (reads the clock if there is a deadline).
    pub(crate) fn remaining(self) -> Remaining {
        match self.0 {
            None => Remaining::Forever,
            Some(deadline) => match deadline.checked_duration_since(Instant::now()) {
                Some(left) if !left.is_zero() => Remaining::Left(left),
                _ => Remaining::Passed,
            },
        }
    }

    /// Whether the deadline passed.
    pub(crate) fn passed(self) -> bool {
        matches!(self.remaining(), Remaining::Passed)
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::*;

    fn times_out(strategy: &impl WaitStrategy) {
        let event = Event::new();
        let timeout = Duration::from_millis(5);
        let start = Instant::now();
        assert!(!strategy.wait_until(&event, || false, Some(timeout)));
        assert!(start.elapsed() >= timeout);
        assert_eq!(event.waiters(), 0);
    }

    fn wakes_up(strategy: &(impl WaitStrategy + Sync)) {
        let event = Event::new();
        let ready = AtomicBool::new(false);
        std::thread::scope(|scope| {
            let waiter =
                scope.spawn(|| strategy.wait_until(&event, || ready.load(Ordering::Acquire), None));
            std::thread::sleep(Duration::from_millis(2));
            ready.store(true, Ordering::Release);
            strategy.notify(&event);
            assert!(waiter.join().expect("waiter"));
        });
        assert_eq!(event.waiters(), 0);
    }

    #[test]
    fn every_strategy_times_out() {
        times_out(&BusySpin);
        times_out(&SpinYield::default());
        times_out(&SpinFutex::default());
        times_out(&SpinFutex { spins: 0 });
    }

    #[test]
    fn every_strategy_wakes_up() {
        wakes_up(&BusySpin);
        wakes_up(&SpinYield::default());
        wakes_up(&SpinFutex::default());
        wakes_up(&SpinFutex { spins: 0 });
    }

    #[test]
    fn a_ready_condition_returns_at_once() {
        let event = Event::new();
        assert!(BusySpin.wait_until(&event, || true, Some(Duration::ZERO)));
        assert!(SpinYield::default().wait_until(&event, || true, Some(Duration::ZERO)));
        assert!(SpinFutex::default().wait_until(&event, || true, Some(Duration::ZERO)));
    }

    #[test]
    fn a_deadline_without_timeout_never_passes() {
        assert!(matches!(Deadline::after(None).remaining(), Remaining::Forever));
        assert!(matches!(Deadline::after(Some(Duration::MAX)).remaining(), Remaining::Forever));
        assert!(Deadline::after(Some(Duration::ZERO)).passed());
    }
}
