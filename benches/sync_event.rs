//! `shmkit-sync` events: what a notify costs when nobody waits (the fast path a ring pays on every
//! publication), and how long a wake-up takes from one process to another.
//!
//! - `sync_event/notify-no-waiter`: `notify_all` / `notify_one` with nobody registered, alone and
//!   after the store that a real publication makes (the barrier's cost grows with pending stores),
//!   against that store alone and against the `futex(FUTEX_WAKE)` system call the waiter count
//!   saves.
//! - `sync_event/cross-process-one-way`: ping-pong between this process and a child process (the
//!   peer of `shmkit_benches::process`, pinned to the other CPU) through two events and two
//!   counters in the harness's shared area. Each figure is one way: a round trip / 2. `event`
//!   sleeps at once on both sides, so it is the futex wake-up latency (wake, scheduler, the
//!   sleeper back on a core); `spin-futex` is the default strategy, whose spins catch answers
//!   that come within them; `busy-spin` is the floor, a cache-line hand-off each way, and needs
//!   two idle cores.

use std::hint::black_box;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::Criterion;
use shmkit_benches::process::{Peer, PeerContext, child_main};
use shmkit_sync::{BusySpin, Event, Futex, SpinFutex, WaitStrategy};

/// Two events, then two counters, each on 128 bytes of its own, in the harness's data area.
const EVENT_OFFSETS: [usize; 2] = [0, 128];
const COUNTER_OFFSETS: [usize; 2] = [256, 384];
const AREA: usize = 512;
/// How long either side waits for the other before the bench fails.
const TIMEOUT: Duration = Duration::from_secs(30);

/// The ways both sides wait.
#[derive(Clone, Copy, Debug)]
enum Strategy {
    /// `Event::wait_until`: sleeps as soon as the condition is false.
    Event,
    SpinFutex,
    BusySpin,
}

impl Strategy {
    const ALL: [Self; 3] = [Self::Event, Self::SpinFutex, Self::BusySpin];

    fn name(self) -> &'static str {
        match self {
            Self::Event => "event",
            Self::SpinFutex => "spin-futex",
            Self::BusySpin => "busy-spin",
        }
    }

    fn wait_until(self, event: &Event, ready: impl FnMut() -> bool, timeout: Duration) -> bool {
        match self {
            Self::Event => event.wait_until(ready, Some(timeout)),
            Self::SpinFutex => SpinFutex::default().wait_until(event, ready, Some(timeout)),
            Self::BusySpin => BusySpin.wait_until(event, ready, Some(timeout)),
        }
    }
}

/// The events and counters in the data area, as either process maps it.
struct Lines {
    ptr: NonNull<u8>,
    len: usize,
}

impl Lines {
    fn event(&self, index: usize) -> &Event {
        let offset = EVENT_OFFSETS[index];
        // SAFETY: inside the harness's area (at least `AREA` bytes), which outlives the borrow;
        // the parent initialised the event before starting the peer; accessed only atomically.
        unsafe { Event::open_at(self.ptr.add(offset), self.len - offset) }.expect("event fits")
    }

    fn counter(&self, index: usize) -> &AtomicU64 {
        // SAFETY: 8-aligned (the area is 128-aligned), inside it, accessed only atomically.
        unsafe { self.ptr.add(COUNTER_OFFSETS[index]).cast::<AtomicU64>().as_ref() }
    }

    fn publish(&self, index: usize, value: u64) {
        self.counter(index).store(value, Ordering::Release);
        self.event(index).notify_one();
    }
}

/// The peer: answers each ping (counter 0, event 0) with a pong (counter 1, event 1), the
/// command's number of rounds per command.
fn echo(mut ctx: PeerContext, strategy: Strategy) {
    let (ptr, len) = ctx.data();
    let lines = Lines { ptr, len };
    let mut round = 0;
    while let Some(rounds) = ctx.next_command() {
        for _ in 0..rounds {
            round += 1;
            let pinged = || lines.counter(0).load(Ordering::Acquire) >= round;
            assert!(strategy.wait_until(lines.event(0), pinged, TIMEOUT), "no ping {round}");
            lines.publish(1, round);
        }
        ctx.done(0);
    }
}

fn echo_event(ctx: PeerContext) {
    echo(ctx, Strategy::Event);
}

fn echo_spin_futex(ctx: PeerContext) {
    echo(ctx, Strategy::SpinFutex);
}

fn echo_busy_spin(ctx: PeerContext) {
    echo(ctx, Strategy::BusySpin);
}

/// The parent's side: a peer process answering on two fresh events.
struct PingPong {
    peer: Peer,
    strategy: Strategy,
    round: u64,
}

impl PingPong {
    fn start(strategy: Strategy) -> Self {
        let peer = Peer::process(strategy.name(), AREA, |ptr, len| {
            for offset in EVENT_OFFSETS {
                // SAFETY: inside the fresh area, which outlives the peer; nobody uses it yet,
                // and the bytes are used only through `Event` afterwards.
                unsafe { Event::init_at(ptr.add(offset), len - offset) }.expect("event fits");
            }
        });
        Self { peer, strategy, round: 0 }
    }

    /// `round_trips` round trips; half their time (the one-way time of `round_trips` messages).
    fn run(&mut self, round_trips: u64) -> Duration {
        let (ptr, len) = self.peer.data();
        let lines = Lines { ptr, len };
        self.peer.call(0); // wakes the peer, untimed
        self.peer.post(round_trips);
        let start = Instant::now();
        for _ in 0..round_trips {
            self.round += 1;
            let round = self.round;
            lines.publish(0, round);
            let ponged = || lines.counter(1).load(Ordering::Acquire) >= round;
            assert!(
                self.strategy.wait_until(lines.event(1), ponged, TIMEOUT),
                "the peer did not answer round {round}"
            );
        }
        let elapsed = start.elapsed();
        self.peer.wait();
        elapsed / 2
    }
}

fn bench_notify_no_waiter(c: &mut Criterion) {
    let mut group = c.benchmark_group("sync_event/notify-no-waiter");
    let event = Event::new();
    let word = AtomicU64::new(0);
    group.bench_function("notify_all", |b| b.iter(|| black_box(&event).notify_all()));
    group.bench_function("notify_one", |b| b.iter(|| black_box(&event).notify_one()));
    let mut value = 0;
    group.bench_function("store-only", |b| {
        b.iter(|| {
            value += 1;
            black_box(&word).store(value, Ordering::Release);
        });
    });
    group.bench_function("store+notify_all", |b| {
        b.iter(|| {
            value += 1;
            black_box(&word).store(value, Ordering::Release);
            black_box(&event).notify_all();
        });
    });
    let futex = Futex::new(0);
    group.bench_function("futex-wake-syscall", |b| b.iter(|| black_box(&futex).wake(1)));
    group.finish();
    assert_eq!((event.waiters(), event.wakeups()), (0, 0), "no notify went to the kernel");
}

fn bench_cross_process(c: &mut Criterion) {
    let mut group = c.benchmark_group("sync_event/cross-process-one-way");
    for strategy in Strategy::ALL {
        let mut ping_pong = PingPong::start(strategy);
        group.bench_function(strategy.name(), |b| b.iter_custom(|trips| ping_pong.run(trips)));
    }
    group.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(20)
}

/// The criterion group of this file, in a module of its own so that the lint exemption below
/// covers only what the macro generates.
#[expect(missing_docs, reason = "criterion_group! generates an undocumented public function")]
pub mod group {
    use super::{bench_cross_process, bench_notify_no_waiter, config};

    criterion::criterion_group! {
        name = benches;
        config = config();
        targets = bench_notify_no_waiter, bench_cross_process
    }
}

/// `criterion_main!`, with the peers' roles first: the same binary answers ping-pongs when the
/// harness starts it as a peer.
fn main() {
    if child_main(&[
        (Strategy::Event.name(), echo_event),
        (Strategy::SpinFutex.name(), echo_spin_futex),
        (Strategy::BusySpin.name(), echo_busy_spin),
    ]) {
        return;
    }
    group::benches();
    Criterion::default().configure_from_args().final_summary();
}
