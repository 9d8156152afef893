//! `shmkit-sync` events: what a notify costs when nobody waits (the fast path a ring pays on every
//! publication), and how long a wake-up takes from one process to another.
//!
//! - `sync_event/notify-no-waiter`: `notify_all` / `notify_one` with nobody registered, alone and
//!   after the store that a real publication makes (the barrier's cost grows with pending stores),
//!   against that store alone and against the `futex(FUTEX_WAKE)` system call the waiter count
//!   saves.
//! - `sync_event/cross-process-one-way`: ping-pong between this process and a child process (this
//!   bench binary re-executed with `SHMKIT_BENCH_EVENT_ROLE` set) through two events and two
//!   counters in a POSIX shared memory region. Each figure is one way: a round trip / 2. `event`
//!   sleeps at once on both sides, so it is the futex wake-up latency (wake, scheduler, the
//!   sleeper back on a core); `spin-futex` is the default strategy, whose spins catch answers
//!   that come within them; `busy-spin` is the floor, a cache-line hand-off each way, and needs
//!   two idle cores.

use std::hint::black_box;
use std::process::{Child, Command, Stdio};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::Criterion;
use shmkit_name::{Name, PageSize};
use shmkit_os::{Access, MapOptions, Mapping, Region, RegionOptions};
use shmkit_sync::{BusySpin, Event, Futex, SpinFutex, WaitStrategy};

/// Set in the child: the strategy it answers with.
const ROLE_ENV: &str = "SHMKIT_BENCH_EVENT_ROLE";
/// Set in the child: the region to open.
const NAME_ENV: &str = "SHMKIT_BENCH_EVENT_NAME";

/// Two events, then two counters, each on 128 bytes of its own.
const EVENT_OFFSETS: [usize; 2] = [0, 128];
const COUNTER_OFFSETS: [usize; 2] = [256, 384];
/// The ping value that tells the child to exit.
const STOP: u64 = u64::MAX;

/// The ways both sides wait, by the name the child is given.
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

    fn parse(name: &str) -> Self {
        Self::ALL
            .into_iter()
            .find(|strategy| strategy.name() == name)
            .unwrap_or_else(|| panic!("unknown strategy {name}"))
    }

    fn wait_until(self, event: &Event, ready: impl FnMut() -> bool, timeout: Duration) -> bool {
        match self {
            Self::Event => event.wait_until(ready, Some(timeout)),
            Self::SpinFutex => SpinFutex::default().wait_until(event, ready, Some(timeout)),
            Self::BusySpin => BusySpin.wait_until(event, ready, Some(timeout)),
        }
    }
}

/// The shared page, mapped in either process.
struct Shared {
    mapping: Mapping,
}

impl Shared {
    fn open(name: &Name) -> Self {
        let mapping = Region::open(name, Some(PageSize::Normal), Access::ReadWrite)
            .and_then(|region| region.map(&MapOptions::new()))
            .expect("map the bench region");
        Self { mapping }
    }

    fn event_ptr(&self, index: usize) -> (NonNull<u8>, usize) {
        let offset = EVENT_OFFSETS[index];
        let ptr = NonNull::new(self.mapping.as_ptr().wrapping_add(offset)).expect("mapped");
        (ptr, self.mapping.len() - offset)
    }

    fn event(&self, index: usize) -> &Event {
        let (ptr, len) = self.event_ptr(index);
        // SAFETY: inside the mapping, which lives as long as `self`; the parent initialised the
        // event before starting the child, and the bytes are only accessed atomically.
        unsafe { Event::open_at(ptr, len) }.expect("event fits")
    }

    fn counter(&self, index: usize) -> &AtomicU64 {
        self.mapping.atomic_u64(COUNTER_OFFSETS[index]).expect("counter fits")
    }

    fn publish(&self, index: usize, value: u64) {
        self.counter(index).store(value, Ordering::Release);
        self.event(index).notify_one();
    }
}

/// The child: answers each ping (counter 0, event 0) with a pong (counter 1, event 1) until
/// [`STOP`], or until its parent is gone.
fn run_child(strategy: Strategy) {
    let name =
        Name::new(&std::env::var(NAME_ENV).expect("the parent sets the name")).expect("name");
    let shared = Shared::open(&name);
    let parent = std::os::unix::process::parent_id();
    let mut round = 1;
    loop {
        let pinged = || shared.counter(0).load(Ordering::Acquire) >= round;
        if !strategy.wait_until(shared.event(0), pinged, Duration::from_secs(1)) {
            if std::os::unix::process::parent_id() != parent {
                return;
            }
            continue;
        }
        if shared.counter(0).load(Ordering::Acquire) == STOP {
            return;
        }
        shared.publish(1, round);
        round += 1;
    }
}

/// The parent's side: a region with two fresh events and a child answering on it; the child is
/// stopped and the region unlinked on drop.
struct PingPong {
    name: Name,
    shared: Shared,
    child: Child,
    strategy: Strategy,
    round: u64,
}

impl PingPong {
    fn start(strategy: Strategy) -> Self {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let name = Name::new(&format!("bench-event-{}-{n}", std::process::id())).expect("name");
        RegionOptions::new().create(&name, 1).expect("create the bench region");
        let shared = Shared::open(&name);
        for index in 0..2 {
            let (ptr, len) = shared.event_ptr(index);
            // SAFETY: inside the mapping, which outlives this call; the child does not exist yet,
            // and the bytes are used only through `Event` afterwards.
            unsafe { Event::init_at(ptr, len) }.expect("event fits");
        }
        let child = Command::new(std::env::current_exe().expect("bench binary path"))
            .env(ROLE_ENV, strategy.name())
            .env(NAME_ENV, name.as_str())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .expect("spawn the child");
        let mut ping_pong = Self { name, shared, child, strategy, round: 0 };
        // The first round waits for the child to start; it is not measured.
        ping_pong.round_trip();
        ping_pong
    }

    fn round_trip(&mut self) {
        self.round += 1;
        let round = self.round;
        self.shared.publish(0, round);
        let ponged = || self.shared.counter(1).load(Ordering::Acquire) >= round;
        assert!(
            self.strategy.wait_until(self.shared.event(1), ponged, Duration::from_secs(30)),
            "the child did not answer round {round}"
        );
    }
}

impl Drop for PingPong {
    fn drop(&mut self) {
        self.shared.publish(0, STOP);
        let _ = self.child.wait();
        let _ = shmkit_os::unlink(&self.name, PageSize::Normal);
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
        group.bench_function(strategy.name(), |b| {
            b.iter_custom(|round_trips| {
                let start = Instant::now();
                for _ in 0..round_trips {
                    ping_pong.round_trip();
                }
                start.elapsed() / 2
            });
        });
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

/// `criterion_main!`, plus the child's role: the same binary answers ping-pongs when started with
/// [`ROLE_ENV`] set.
fn main() {
    if let Ok(role) = std::env::var(ROLE_ENV) {
        run_child(Strategy::parse(&role));
        return;
    }
    group::benches();
    Criterion::default().configure_from_args().final_summary();
}
