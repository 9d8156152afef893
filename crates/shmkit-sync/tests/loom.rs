//! Loom models of the event protocol (`src/event.rs`): no lost wake-up, whatever the interleaving
//! and whatever stale values the memory model lets a load return.
//!
//! A lost wake-up shows as a waiter asleep with nobody left to wake it: loom reports the deadlock
//! (under loom, `Futex::wait` ignores timeouts, so no model finishes by timing out).
//!
//! Run by `cargo xtask loom`, or directly:
//! `RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=2 cargo test -p shmkit-sync --test loom --release`.
#![cfg(loom)]

use loom::sync::Arc;
use loom::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use loom::thread;
use shmkit_sync::{Event, Futex, SpinFutex, WaitStrategy};

/// An event and the condition its waiters wait for.
#[derive(Default)]
struct Shared {
    event: Event,
    ready: AtomicBool,
}

impl Shared {
    fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    fn make_ready_and_notify_one(&self) {
        self.ready.store(true, Ordering::Release);
        self.event.notify_one();
    }
}

/// One waiter, one notifier: the waiter always finishes.
#[test]
fn a_notify_reaches_its_waiter() {
    loom::model(|| {
        let shared = Arc::new(Shared::default());
        let notifier = {
            let shared = shared.clone();
            thread::spawn(move || shared.make_ready_and_notify_one())
        };
        assert!(shared.event.wait_until(|| shared.is_ready(), None));
        notifier.join().expect("notifier");
        assert_eq!(shared.event.waiters(), 0);
    });
}

/// Two waiters, one `notify_all`: both finish.
#[test]
fn notify_all_reaches_both_waiters() {
    loom::model(|| {
        let shared = Arc::new(Shared::default());
        let waiters: Vec<_> = (0..2)
            .map(|_| {
                let shared = shared.clone();
                thread::spawn(move || shared.event.wait_until(|| shared.is_ready(), None))
            })
            .collect();
        shared.ready.store(true, Ordering::Release);
        shared.event.notify_all();
        for waiter in waiters {
            assert!(waiter.join().expect("waiter"));
        }
        assert_eq!(shared.event.waiters(), 0);
    });
}

/// Two notifiers (two producers of one ring), one waiter that needs both: concurrent bumps of the
/// futex word lose neither notify.
#[test]
fn two_notifiers_reach_one_waiter() {
    loom::model(|| {
        let shared = Arc::new((Event::new(), AtomicU32::new(0)));
        let notifiers: Vec<_> = (0..2)
            .map(|_| {
                let shared = shared.clone();
                thread::spawn(move || {
                    shared.1.fetch_add(1, Ordering::Release);
                    shared.0.notify_all();
                })
            })
            .collect();
        assert!(shared.0.wait_until(|| shared.1.load(Ordering::Acquire) == 2, None));
        for notifier in notifiers {
            notifier.join().expect("notifier");
        }
    });
}

/// A notify with nobody registered touches nothing; a later wait finds the condition true and
/// returns without registering.
#[test]
fn a_notify_before_the_wait_is_not_needed() {
    loom::model(|| {
        let shared = Arc::new(Shared::default());
        let notifier = {
            let shared = shared.clone();
            thread::spawn(move || shared.make_ready_and_notify_one())
        };
        notifier.join().expect("notifier");
        assert_eq!(shared.event.wakeups(), 0, "no waiter, so no wake call");
        assert!(shared.event.wait_until(|| shared.is_ready(), None));
        assert_eq!(shared.event.waiters(), 0);
    });
}

/// Two round trips through two events (what a ring's two sides do): the `seq` a waiter sleeps on
/// is re-read each time, so a notify of the first round cannot be mistaken for the second.
#[test]
fn ping_pong_loses_no_round() {
    #[derive(Default)]
    struct PingPong {
        ping: Event,
        pong: Event,
        pings: AtomicU32,
        pongs: AtomicU32,
    }
    const ROUNDS: u32 = 2;

    loom::model(|| {
        let shared = Arc::new(PingPong::default());
        let answerer = {
            let shared = shared.clone();
            thread::spawn(move || {
                for round in 1..=ROUNDS {
                    let pinged = || shared.pings.load(Ordering::Acquire) >= round;
                    assert!(shared.ping.wait_until(pinged, None));
                    shared.pongs.store(round, Ordering::Release);
                    shared.pong.notify_one();
                }
            })
        };
        for round in 1..=ROUNDS {
            shared.pings.store(round, Ordering::Release);
            shared.ping.notify_one();
            let ponged = || shared.pongs.load(Ordering::Acquire) >= round;
            assert!(shared.pong.wait_until(ponged, None));
        }
        answerer.join().expect("answerer");
    });
}

/// The spin-then-sleep strategy: its spin phase hands over to the event's protocol correctly.
#[test]
fn spin_futex_is_woken_after_its_spins() {
    loom::model(|| {
        let shared = Arc::new(Shared::default());
        let strategy = SpinFutex { spins: 1 };
        let notifier = {
            let shared = shared.clone();
            thread::spawn(move || {
                shared.ready.store(true, Ordering::Release);
                strategy.notify(&shared.event);
            })
        };
        assert!(strategy.wait_until(&shared.event, || shared.is_ready(), None));
        notifier.join().expect("notifier");
    });
}

/// Why the barriers are there: the same protocol without them (the waiter registers and the
/// notifier checks with plain acquire/release) loses the wake-up, and loom finds it. This is the
/// store-buffering outcome the `SeqCst` fences in `Event` rule out.
#[test]
#[should_panic(expected = "deadlock")]
fn without_the_barriers_a_wake_up_is_lost() {
    #[derive(Default)]
    struct Unfenced {
        seq: Futex,
        waiters: AtomicU32,
        ready: AtomicBool,
    }

    loom::model(|| {
        let shared = Arc::new(Unfenced::default());
        let notifier = {
            let shared = shared.clone();
            thread::spawn(move || {
                shared.ready.store(true, Ordering::Release);
                if shared.waiters.load(Ordering::Acquire) != 0 {
                    shared.seq.word().fetch_add(1, Ordering::Release);
                    shared.seq.wake(1);
                }
            })
        };
        shared.waiters.fetch_add(1, Ordering::AcqRel);
        loop {
            let seen = shared.seq.load(Ordering::Acquire);
            if shared.ready.load(Ordering::Acquire) {
                break;
            }
            shared.seq.wait(seen, None);
        }
        shared.waiters.fetch_sub(1, Ordering::Relaxed);
        notifier.join().expect("notifier");
    });
}
