//! Events between real processes: an [`Event`] in a POSIX shared memory region, a child process
//! (this test binary re-executed in a role) on the other side. Threads of one process would not
//! prove that the futex is process-shared.
//!
//! Waits that should end use a long timeout and assert that they ended: a lost wake-up fails the
//! test instead of hanging it. No test asserts an upper bound on time.

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use shmkit_sync::{BusySpin, Event, SpinFutex, SpinYield, WaitStrategy};
use shmkit_testkit::{ChildProcess, SharedRegion, child_env, child_role, tell_parent};

use common::{HANG_GUARD, ROUNDS_ENV, finish_all, rounds, spawn_on};

/// Offsets in the shared page: two events, then two counters on lines of their own.
const EVENT_OFFSETS: [usize; 2] = [0, 128];
const COUNTER_OFFSETS: [usize; 2] = [256, 384];

const STRATEGY_ENV: &str = "SHMKIT_TEST_STRATEGY";

/// One page of shared memory holding two events and two counters.
struct Shared(SharedRegion);

impl Shared {
    /// The parent's region: created with fresh events, removed on drop.
    fn create(tag: &str) -> Self {
        let region = SharedRegion::create(&format!("t-ev-{tag}"));
        for offset in EVENT_OFFSETS {
            let (ptr, len) = region.range_at(offset);
            // SAFETY: inside the mapping, which outlives this call; no other process has the
            // region open yet, and the bytes are used only through `Event` afterwards.
            unsafe { Event::init_at(ptr, len) }.expect("event fits");
        }
        Self(region)
    }

    fn spawn(&self, role: &str, extra: &[(&str, String)]) -> ChildProcess {
        spawn_on(&self.0, role, extra)
    }

    fn event(&self, index: usize) -> &Event {
        let (ptr, len) = self.0.range_at(EVENT_OFFSETS[index]);
        // SAFETY: inside the mapping, which lives as long as `self`; the bytes hold an event (the
        // parent's `init_at`, before any child started) and are only accessed atomically.
        unsafe { Event::open_at(ptr, len) }.expect("event fits")
    }

    fn counter(&self, index: usize) -> &AtomicU64 {
        self.0.atomic_u64(COUNTER_OFFSETS[index])
    }

    /// Waits until counter `index` reaches `value`, on event `index`, with `strategy`.
    fn wait_for(&self, strategy: Strategy, index: usize, value: u64) {
        let reached = || self.counter(index).load(Ordering::Acquire) >= value;
        assert!(
            strategy.wait_until(self.event(index), reached, Some(HANG_GUARD)),
            "lost wake-up: counter {index} never reached {value}"
        );
    }

    /// Sets counter `index` to `value` and notifies event `index`.
    fn publish(&self, index: usize, value: u64) {
        self.counter(index).store(value, Ordering::Release);
        self.event(index).notify_one();
    }

    /// Until someone in any process is registered on event `index` (the wait is then asleep or
    /// about to sleep, so a notify must go through the kernel).
    fn until_waiters(&self, index: usize, count: u32) {
        let start = Instant::now();
        while self.event(index).waiters() < count {
            assert!(start.elapsed() < HANG_GUARD, "nobody started waiting on event {index}");
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

/// The strategies a ping-pong can use; `Event` is the event's own wait (sleep at once).
#[derive(Clone, Copy, Debug)]
enum Strategy {
    Event,
    BusySpin,
    SpinYield,
    SpinFutex,
}

impl Strategy {
    fn parse(name: &str) -> Self {
        match name {
            "event" => Self::Event,
            "busy-spin" => Self::BusySpin,
            "spin-yield" => Self::SpinYield,
            "spin-futex" => Self::SpinFutex,
            other => panic!("unknown strategy {other}"),
        }
    }

    fn wait_until(
        self,
        event: &Event,
        ready: impl FnMut() -> bool,
        timeout: Option<Duration>,
    ) -> bool {
        match self {
            Self::Event => event.wait_until(ready, timeout),
            Self::BusySpin => BusySpin.wait_until(event, ready, timeout),
            Self::SpinYield => SpinYield::default().wait_until(event, ready, timeout),
            // Few spins, so that both the spin and the sleep paths run.
            Self::SpinFutex => SpinFutex { spins: 8 }.wait_until(event, ready, timeout),
        }
    }
}

/// The child's side of every test; a plain run (no role in the environment) does nothing here.
#[test]
fn child_process_entry() {
    let Some(role) = child_role() else { return };
    let shared = Shared(SharedRegion::from_env());
    match role.as_str() {
        // Sleeps until the parent sets counter 0.
        "wait" => {
            tell_parent("waiting");
            shared.wait_for(Strategy::Event, 0, 1);
            tell_parent("woke");
        }
        // Wakes the parent, asleep on event 1, by setting counter 1.
        "notify" => {
            shared.until_waiters(1, 1);
            shared.publish(1, 1);
            tell_parent("notified");
        }
        // Answers each ping (counter 0) with a pong (counter 1).
        "pong" => {
            let strategy = Strategy::parse(&child_env(STRATEGY_ENV));
            for round in 1..=rounds() {
                shared.wait_for(strategy, 0, round);
                shared.publish(1, round);
            }
            tell_parent("done");
        }
        other => panic!("unknown child role {other}"),
    }
}

#[test]
fn a_child_asleep_is_woken_by_the_parent() {
    let region = Shared::create("wait");
    let mut child = region.spawn("wait", &[]);
    child.expect("waiting");
    region.until_waiters(0, 1);
    region.publish(0, 1);
    child.expect("woke");
    child.finish();
    let event = region.event(0);
    assert_eq!((event.waiters(), event.wakeups()), (0, 1), "one notify, through the kernel");
}

#[test]
fn a_parent_asleep_is_woken_by_a_child() {
    let region = Shared::create("notify");
    let mut child = region.spawn("notify", &[]);
    region.wait_for(Strategy::Event, 1, 1);
    child.expect("notified");
    child.finish();
    assert_eq!(region.event(1).waiters(), 0);
}

#[test]
fn notify_all_wakes_sleepers_in_two_processes() {
    let region = Shared::create("all");
    let mut children = [region.spawn("wait", &[]), region.spawn("wait", &[])];
    for child in &mut children {
        child.expect("waiting");
    }
    region.until_waiters(0, 2);
    region.counter(0).store(1, Ordering::Release);
    region.event(0).notify_all();
    finish_all(children, "woke");
    let event = region.event(0);
    assert_eq!((event.waiters(), event.wakeups()), (0, 1), "one notify woke both");
}

/// `rounds` ping-pongs with a child, both sides waiting with `strategy`; returns how many
/// notifies went through the kernel.
fn ping_pong(strategy: &str, rounds: u64) -> u32 {
    let region = Shared::create(strategy);
    let mut child = region
        .spawn("pong", &[(STRATEGY_ENV, strategy.to_owned()), (ROUNDS_ENV, rounds.to_string())]);
    let waiting = Strategy::parse(strategy);
    for round in 1..=rounds {
        region.publish(0, round);
        region.wait_for(waiting, 1, round);
    }
    child.expect("done");
    child.finish();
    let (to_child, to_parent) = (region.event(0), region.event(1));
    assert_eq!((to_child.waiters(), to_parent.waiters()), (0, 0), "every waiter left");
    to_child.wakeups().wrapping_add(to_parent.wakeups())
}

#[test]
fn ten_thousand_ping_pongs_lose_no_wake_up() {
    let wakeups = ping_pong("event", 10_000);
    // Each side sleeps at once, so the other side's notify goes through the kernel nearly every
    // round: the futex path is what this test exercised.
    assert!(wakeups > 0, "no notify found a sleeper");
}

#[test]
fn ping_pongs_with_spin_futex_lose_no_wake_up() {
    ping_pong("spin-futex", 10_000);
}

#[test]
fn ping_pongs_with_spin_yield_finish() {
    ping_pong("spin-yield", 1_000);
}

#[test]
fn ping_pongs_with_busy_spin_finish() {
    // Few rounds: with more spinners than free cores, each round can wait for a time slice.
    ping_pong("busy-spin", 200);
}

#[test]
fn a_wait_in_shared_memory_times_out() {
    let region = Shared::create("timeout");
    let event = region.event(0);
    let timeout = Duration::from_millis(50);
    let start = Instant::now();
    assert!(!event.wait_until(|| false, Some(timeout)), "nothing made the condition true");
    assert!(start.elapsed() >= timeout, "returned before its timeout");
    assert_eq!((event.waiters(), event.wakeups()), (0, 0));
}

#[test]
fn a_notify_with_nobody_waiting_makes_no_system_call() {
    let region = Shared::create("nowaiter");
    let event = region.event(0);
    for _ in 0..1_000 {
        event.notify_one();
        event.notify_all();
    }
    // A notify calls the kernel only after bumping the futex word, which stayed 0.
    assert_eq!((event.waiters(), event.wakeups()), (0, 0));
    // And a wait for a condition already true does not register.
    assert!(event.wait_until(|| true, Some(Duration::ZERO)));
    assert_eq!(event.waiters(), 0);
}
