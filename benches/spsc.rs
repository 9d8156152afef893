//! The SPSC element ring of `shmkit-ring` across processes, against its peers in the same run.
//!
//! Every figure moves 8-byte items (`u64`) between two CPUs: this process on CPU 0, the peer (a
//! child process of this bench binary, or for the in-process rivals a thread) on CPU 1, through
//! the harness of `shmkit_benches::process`.
//!
//! - `spsc/throughput/*`: a batch of [`BATCH`] items, producer here, consumer in the peer.
//!   `shmkit-process` pushes and pops one at a time across processes; `shmkit-process-chunk64`
//!   moves chunks of 64 (written and read in place); `rtrb-threads` and
//!   `crossbeam-arrayqueue-threads` are the rivals between two threads. Same capacity
//!   ([`CAPACITY`]) everywhere, same spin-with-pause loops on full and empty.
//! - `spsc/ping-pong-one-way/*`: a value sent and sent back, halved. `cache-line-floor` is two
//!   processes bouncing a counter in one cache line each way (the physical floor); `shmkit-rings`
//!   is the same through two SPSC rings (one each way).
//!
//! Criterion gives each absolute figure. Then the comparisons are measured again interleaved
//! (A B A B ...) and printed as the median of pairwise ratios, because this VM's host slows every
//! cross-core hand-off about 4x for stretches of seconds: only ratios of measurements taken
//! close together mean something.

use std::hint::spin_loop;
use std::num::NonZeroU32;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput};
use shmkit_benches::process::{self, Peer, PeerContext, child_main};
use shmkit_ring::spsc::{Consumer, Producer, SpscRing};

/// Items per measured batch.
const BATCH: u64 = 100_000;
/// Ring capacity (items), for shmkit and the rivals alike.
const CAPACITY: usize = 4096;
/// Items per chunk in the chunked figure.
const CHUNK: usize = 64;
/// Ring capacity for the ping-pong rings (one value in flight).
const PING_CAPACITY: usize = 16;
/// Round trips per measured ping-pong batch.
const ROUND_TRIPS: u64 = 2_000;

const PRODUCER_ID: NonZeroU32 = NonZeroU32::MIN;
const CONSUMER_ID: NonZeroU32 = NonZeroU32::new(2).expect("non-zero");

/// The sum a consumer of `0..count` reports.
fn sum_to(count: u64) -> u64 {
    count * count.saturating_sub(1) / 2
}

// --- shmkit across processes -----------------------------------------------------------------

/// # Safety
///
/// `ptr..ptr + len` is a mapping that outlives the handle, used only through the ring.
unsafe fn consumer(ptr: NonNull<u8>, len: usize) -> Consumer<'static, u64> {
    // SAFETY: forwarded.
    unsafe { Consumer::attach(ptr, len, CONSUMER_ID) }.expect("attach the consumer")
}

/// # Safety
///
/// As [`consumer`].
unsafe fn producer(ptr: NonNull<u8>, len: usize) -> Producer<'static, u64> {
    // SAFETY: forwarded.
    unsafe { Producer::attach(ptr, len, PRODUCER_ID) }.expect("attach the producer")
}

fn init_ring(ptr: NonNull<u8>, len: usize, capacity: usize) {
    // SAFETY: a fresh area of the harness, used only through this ring.
    unsafe { SpscRing::<u64>::init(ptr, len, capacity) }.expect("init the ring");
}

/// Peer role: pops `count` items one at a time per command, reports their sum.
fn role_pop_one(mut ctx: PeerContext) {
    let (ptr, len) = ctx.data();
    // SAFETY: the area lives as long as `ctx`, which outlives the handle.
    let mut consumer = unsafe { consumer(ptr, len) };
    while let Some(count) = ctx.next_command() {
        // The same loop as the rivals' consumers.
        let sum = pop_count(count, || consumer.pop().expect("valid ring"));
        ctx.done(sum);
    }
}

/// Peer role: reads chunks of up to [`CHUNK`] in place until `count` items, reports their sum.
fn role_pop_chunks(mut ctx: PeerContext) {
    let (ptr, len) = ctx.data();
    // SAFETY: as in `role_pop_one`.
    let mut consumer = unsafe { consumer(ptr, len) };
    while let Some(count) = ctx.next_command() {
        let mut sum = 0_u64;
        let mut left = count;
        while left > 0 {
            let chunk = consumer.read_chunk(CHUNK).expect("valid ring");
            if chunk.is_empty() {
                spin_loop();
                continue;
            }
            sum = chunk.iter().fold(sum, u64::wrapping_add);
            left -= chunk.len() as u64;
            chunk.commit_all();
        }
        ctx.done(sum);
    }
}

/// The parent's side of a cross-process throughput figure.
struct ShmkitThroughput {
    // Declared before `peer`: dropped (its role released) before the area goes away.
    producer: Producer<'static, u64>,
    peer: Peer,
}

impl ShmkitThroughput {
    fn start(role: &str) -> Self {
        let bytes = SpscRing::<u64>::bytes_for(CAPACITY).expect("layout");
        let peer = Peer::process(role, bytes, |ptr, len| init_ring(ptr, len, CAPACITY));
        let (ptr, len) = peer.data();
        // SAFETY: the area lives as long as `peer`, dropped after the producer.
        let producer = unsafe { producer(ptr, len) };
        Self { producer, peer }
    }

    /// Pushes `0..BATCH` one at a time while the peer pops them; the time from the command to
    /// the peer's last pop.
    fn one_at_a_time(&mut self) -> Duration {
        self.peer.call(0); // wakes the peer, untimed
        let start = Instant::now();
        self.peer.post(BATCH);
        for value in 0..BATCH {
            while !self.producer.push(value).expect("valid ring") {
                spin_loop();
            }
        }
        let sum = self.peer.wait();
        let elapsed = start.elapsed();
        assert_eq!(sum, sum_to(BATCH), "the consumer got other values");
        elapsed
    }

    /// As [`ShmkitThroughput::one_at_a_time`], writing chunks of up to [`CHUNK`] in place.
    fn chunks(&mut self) -> Duration {
        self.peer.call(0);
        let start = Instant::now();
        self.peer.post(BATCH);
        let mut next = 0;
        while next < BATCH {
            let mut chunk = self.producer.write_chunk(CHUNK).expect("valid ring");
            if chunk.is_empty() {
                spin_loop();
                continue;
            }
            let count = (chunk.len() as u64).min(BATCH - next) as usize;
            chunk.fill_with(|index| next + index as u64);
            chunk.commit(count);
            next += count as u64;
        }
        let sum = self.peer.wait();
        let elapsed = start.elapsed();
        assert_eq!(sum, sum_to(BATCH), "the consumer got other values");
        elapsed
    }
}

// --- rivals between two threads --------------------------------------------------------------

/// A rival queue's producer, for [`ThreadThroughput`].
trait RivalProducer {
    fn try_push(&mut self, value: u64) -> bool;
}

impl RivalProducer for rtrb::Producer<u64> {
    #[inline]
    fn try_push(&mut self, value: u64) -> bool {
        self.push(value).is_ok()
    }
}

impl RivalProducer for std::sync::Arc<crossbeam_queue::ArrayQueue<u64>> {
    #[inline]
    fn try_push(&mut self, value: u64) -> bool {
        self.push(value).is_ok()
    }
}

/// Pops `count` items with `pop` (spinning while empty); their sum.
fn pop_count(count: u64, mut pop: impl FnMut() -> Option<u64>) -> u64 {
    let mut sum = 0_u64;
    let mut left = count;
    while left > 0 {
        match pop() {
            Some(value) => {
                sum = sum.wrapping_add(value);
                left -= 1;
            }
            None => spin_loop(),
        }
    }
    sum
}

/// A rival between this thread and a pinned peer thread.
struct ThreadThroughput<P> {
    producer: P,
    peer: Peer,
}

impl ThreadThroughput<rtrb::Producer<u64>> {
    fn rtrb() -> Self {
        let (producer, mut consumer) = rtrb::RingBuffer::<u64>::new(CAPACITY);
        let peer = Peer::thread(
            0,
            |_, _| {},
            move |mut ctx| {
                while let Some(count) = ctx.next_command() {
                    let sum = pop_count(count, || consumer.pop().ok());
                    ctx.done(sum);
                }
            },
        );
        Self { producer, peer }
    }
}

impl ThreadThroughput<std::sync::Arc<crossbeam_queue::ArrayQueue<u64>>> {
    fn crossbeam() -> Self {
        let queue = std::sync::Arc::new(crossbeam_queue::ArrayQueue::<u64>::new(CAPACITY));
        let consumer = std::sync::Arc::clone(&queue);
        let peer = Peer::thread(
            0,
            |_, _| {},
            move |mut ctx| {
                while let Some(count) = ctx.next_command() {
                    let sum = pop_count(count, || consumer.pop());
                    ctx.done(sum);
                }
            },
        );
        Self { producer: queue, peer }
    }
}

impl<P: RivalProducer> ThreadThroughput<P> {
    fn one_at_a_time(&mut self) -> Duration {
        self.peer.call(0);
        let start = Instant::now();
        self.peer.post(BATCH);
        for value in 0..BATCH {
            while !self.producer.try_push(value) {
                spin_loop();
            }
        }
        let sum = self.peer.wait();
        let elapsed = start.elapsed();
        assert_eq!(sum, sum_to(BATCH), "the consumer got other values");
        elapsed
    }
}

// --- ping-pong -------------------------------------------------------------------------------

/// The floor's two counters, a 128-byte line each: ping (parent → child) and pong (back).
const PING: usize = 0;
const PONG: usize = 128;

fn counter(ptr: NonNull<u8>, offset: usize) -> &'static AtomicU64 {
    // SAFETY: inside a harness area of at least 256 bytes that outlives the bench, 128-aligned,
    // used only atomically.
    unsafe { ptr.add(offset).cast::<AtomicU64>().as_ref() }
}

/// Peer role: answers `rounds` pings on the floor's cache lines per command.
fn role_floor_echo(mut ctx: PeerContext) {
    let (ptr, _) = ctx.data();
    let (request, answer) = (counter(ptr, PING), counter(ptr, PONG));
    let mut seen = 0;
    while let Some(rounds) = ctx.next_command() {
        for _ in 0..rounds {
            seen += 1;
            while request.load(Ordering::Acquire) != seen {
                spin_loop();
            }
            answer.store(seen, Ordering::Release);
        }
        ctx.done(0);
    }
}

/// The byte offset of the second ping-pong ring (child → parent).
fn ring_b_offset() -> usize {
    SpscRing::<u64>::bytes_for(PING_CAPACITY).expect("layout").next_multiple_of(128)
}

/// Peer role: pops each value from ring A and pushes it back on ring B, `rounds` per command.
fn role_ring_echo(mut ctx: PeerContext) {
    let (ptr, len) = ctx.data();
    let offset = ring_b_offset();
    // SAFETY: both rings are inside the area, which outlives the handles.
    let (mut from, mut to) =
        unsafe { (consumer(ptr, offset), producer(ptr.add(offset), len - offset)) };
    while let Some(rounds) = ctx.next_command() {
        for _ in 0..rounds {
            let value = loop {
                if let Some(value) = from.pop().expect("valid ring") {
                    break value;
                }
                spin_loop();
            };
            while !to.push(value).expect("valid ring") {
                spin_loop();
            }
        }
        ctx.done(0);
    }
}

struct FloorPingPong {
    peer: Peer,
    counter: u64,
}

impl FloorPingPong {
    fn start() -> Self {
        Self { peer: Peer::process("floor-echo", 256, |_, _| {}), counter: 0 }
    }

    /// One-way latency: [`ROUND_TRIPS`] round trips, halved, per trip.
    fn one_way(&mut self) -> Duration {
        self.run(ROUND_TRIPS) / ROUND_TRIPS as u32
    }

    /// `trips` round trips; half their time (the one-way time of `trips` messages).
    fn run(&mut self, trips: u64) -> Duration {
        let (ptr, _) = self.peer.data();
        let (request, answer) = (counter(ptr, PING), counter(ptr, PONG));
        self.peer.call(0);
        let start = Instant::now();
        self.peer.post(trips);
        for _ in 0..trips {
            self.counter += 1;
            request.store(self.counter, Ordering::Release);
            while answer.load(Ordering::Acquire) != self.counter {
                spin_loop();
            }
        }
        let elapsed = start.elapsed();
        self.peer.wait();
        elapsed / 2
    }
}

struct RingPingPong {
    to: Producer<'static, u64>,
    from: Consumer<'static, u64>,
    peer: Peer,
}

impl RingPingPong {
    fn start() -> Self {
        let offset = ring_b_offset();
        let peer = Peer::process("ring-echo", 2 * offset, |ptr, len| {
            init_ring(ptr, offset, PING_CAPACITY);
            // SAFETY: the second ring starts inside the area.
            init_ring(unsafe { ptr.add(offset) }, len - offset, PING_CAPACITY);
        });
        let (ptr, len) = peer.data();
        // SAFETY: both rings are inside the area, which outlives the handles (dropped first).
        let (to, from) =
            unsafe { (producer(ptr, offset), consumer(ptr.add(offset), len - offset)) };
        Self { to, from, peer }
    }

    /// One-way latency: [`ROUND_TRIPS`] round trips, halved, per trip.
    fn one_way(&mut self) -> Duration {
        self.run(ROUND_TRIPS) / ROUND_TRIPS as u32
    }

    /// `trips` round trips; half their time.
    fn run(&mut self, trips: u64) -> Duration {
        self.peer.call(0);
        let start = Instant::now();
        self.peer.post(trips);
        for value in 0..trips {
            while !self.to.push(value).expect("valid ring") {
                spin_loop();
            }
            let back = loop {
                if let Some(back) = self.from.pop().expect("valid ring") {
                    break back;
                }
                spin_loop();
            };
            debug_assert_eq!(back, value);
        }
        let elapsed = start.elapsed();
        self.peer.wait();
        elapsed / 2
    }
}

// --- the run ---------------------------------------------------------------------------------

/// Per-second rate of `items` in `time`.
#[expect(clippy::cast_precision_loss, reason = "batch sizes are far below 2^52")]
fn rate(items: u64, time: Duration) -> f64 {
    items as f64 / time.as_secs_f64()
}

/// Times a closure that measures itself (`iter_custom`): `iters` calls, each one batch.
fn custom(iters: u64, mut measure: impl FnMut() -> Duration) -> Duration {
    (0..iters).map(|_| measure()).sum()
}

fn bench_throughput(c: &mut Criterion, peers: &mut Peers) {
    let mut group = c.benchmark_group("spsc/throughput");
    group.throughput(Throughput::Elements(BATCH));
    group.bench_function("shmkit-process", |b| {
        b.iter_custom(|iters| custom(iters, || peers.one.one_at_a_time()));
    });
    group.bench_function("shmkit-process-chunk64", |b| {
        b.iter_custom(|iters| custom(iters, || peers.chunk.chunks()));
    });
    group.bench_function("rtrb-threads", |b| {
        b.iter_custom(|iters| custom(iters, || peers.rtrb.one_at_a_time()));
    });
    group.bench_function("crossbeam-arrayqueue-threads", |b| {
        b.iter_custom(|iters| custom(iters, || peers.crossbeam.one_at_a_time()));
    });
    group.finish();
}

fn bench_ping_pong(c: &mut Criterion, peers: &mut Peers) {
    let mut group = c.benchmark_group("spsc/ping-pong-one-way");
    group.bench_function("cache-line-floor", |b| {
        b.iter_custom(|iters| peers.floor.run(iters));
    });
    group.bench_function("shmkit-rings", |b| {
        b.iter_custom(|iters| peers.rings.run(iters));
    });
    group.finish();
}

/// Every peer of the run, started once (each idle peer sleeps while the others are measured).
struct Peers {
    one: ShmkitThroughput,
    chunk: ShmkitThroughput,
    rtrb: ThreadThroughput<rtrb::Producer<u64>>,
    crossbeam: ThreadThroughput<std::sync::Arc<crossbeam_queue::ArrayQueue<u64>>>,
    floor: FloorPingPong,
    rings: RingPingPong,
}

/// Interleaved comparisons: A B A B ..., each side timing itself; the median of the per-round
/// ratios.
fn compare(rounds: usize, peers: &mut Peers) {
    let report = |label: &str, result: &process::Paired, rounds: usize| {
        println!(
            "{label}: {:.3?} vs {:.3?}, ratio {:.3} (median of {rounds} interleaved rounds)",
            result.a, result.b, result.ratio
        );
    };
    println!("\n== interleaved comparisons (ratio > 1: shmkit better, except where said) ==");
    let vs_rtrb =
        process::paired_timed(rounds, || peers.rtrb.one_at_a_time(), || peers.one.one_at_a_time());
    report("throughput shmkit-process / rtrb-threads (time rtrb / time shmkit)", &vs_rtrb, rounds);
    let vs_crossbeam = process::paired_timed(
        rounds,
        || peers.crossbeam.one_at_a_time(),
        || peers.one.one_at_a_time(),
    );
    report("throughput shmkit-process / crossbeam-threads", &vs_crossbeam, rounds);
    let chunks =
        process::paired_timed(rounds, || peers.one.one_at_a_time(), || peers.chunk.chunks());
    report("throughput chunk64 / one-at-a-time (speed-up)", &chunks, rounds);
    let latency =
        process::paired_timed(rounds / 2, || peers.rings.one_way(), || peers.floor.one_way());
    report("ping-pong one-way shmkit-rings / floor (lower is better)", &latency, rounds / 2);
    println!(
        "\n| figure | shmkit | peer | ratio |\n|---|---|---|---|\n\
         | 1-at-a-time msgs/s vs rtrb | {:.1} M | {:.1} M | {:.2} |\n\
         | 1-at-a-time msgs/s vs crossbeam | {:.1} M | {:.1} M | {:.2} |\n\
         | chunk64 vs 1-at-a-time msgs/s | {:.1} M | {:.1} M | {:.2} |\n\
         | ping-pong one-way vs floor | {:.0?} | {:.0?} | {:.2} |",
        rate(BATCH, vs_rtrb.b) / 1e6,
        rate(BATCH, vs_rtrb.a) / 1e6,
        vs_rtrb.ratio,
        rate(BATCH, vs_crossbeam.b) / 1e6,
        rate(BATCH, vs_crossbeam.a) / 1e6,
        vs_crossbeam.ratio,
        rate(BATCH, chunks.b) / 1e6,
        rate(BATCH, chunks.a) / 1e6,
        chunks.ratio,
        latency.a,
        latency.b,
        latency.ratio,
    );
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(10)
        .configure_from_args()
}

/// `criterion_main!` with the peers' roles first: the same binary runs a role when started by
/// the harness.
fn main() {
    if child_main(&[
        ("pop-one", role_pop_one),
        ("pop-chunks", role_pop_chunks),
        ("floor-echo", role_floor_echo),
        ("ring-echo", role_ring_echo),
    ]) {
        return;
    }
    let mut peers = Peers {
        one: ShmkitThroughput::start("pop-one"),
        chunk: ShmkitThroughput::start("pop-chunks"),
        rtrb: ThreadThroughput::rtrb(),
        crossbeam: ThreadThroughput::crossbeam(),
        floor: FloorPingPong::start(),
        rings: RingPingPong::start(),
    };
    let mut criterion = config();
    bench_throughput(&mut criterion, &mut peers);
    bench_ping_pong(&mut criterion, &mut peers);
    compare(100, &mut peers);
    criterion.final_summary();
}
