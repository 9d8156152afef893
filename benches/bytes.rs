//! The byte-stream ring of `shmkit-ring` across processes, against a Unix-socket stream and the
//! single-core `memcpy` bandwidth, measured in the same run.
//!
//! This process (CPU 0) produces; one child process of this bench binary (CPU 1, through the
//! harness of `shmkit_benches::process`) consumes. One child serves every figure, so that no idle
//! peer spins on the consumer's CPU while another is measured.
//!
//! - `bytes/64KiB/ring`: [`BIG_BATCH`] records of 64 KiB, each copied into the ring
//!   ([`ByteProducer::append`]) and out of it into the child's private 64 KiB buffer
//!   ([`ByteConsumer::read`]): two copies, as with a socket.
//! - `bytes/64KiB/unix-socket`: the same bytes as 64 KiB `write`s on a Unix stream socket to the
//!   child, which `read`s them into a 64 KiB buffer.
//! - `bytes/64KiB/memcpy-128MiB`: one `memcpy` of 128 MiB (the same byte count) between two
//!   buffers larger than the caches, in this process: the single-core copy bandwidth.
//! - `bytes/64B/ring`: [`SMALL_BATCH`] records of 64 bytes, copied in and out, one at a time.
//! - `bytes/64B/same-thread`: the same append and read in one thread, on a ring of its own: the
//!   CPU cost of the two calls without any cache line crossing cores.
//!
//! Both sides wait with an exponential back-off (1 to 64 pause hints, as crossbeam's `Backoff`).
//! The producer appends records that are already in memory: a record written just before its
//! append (its number stored into it, say) makes the copy's first load wait for that store, and
//! on x86 the store waits in the store buffer behind every earlier store to the ring still
//! fetching its cache line from the consumer's core. Measured, that store-forwarding stall cut
//! the 64-byte rate in half; in-place writing ([`ByteProducer::reserve`]) has no such stall.
//!
//! Criterion gives each absolute figure. Then the comparisons are measured again interleaved
//! (A B A B ...) and printed as the median of pairwise ratios, because this VM's host slows
//! every cross-core hand-off about 4x for stretches of seconds: only ratios of measurements taken
//! close together mean something. `SHMKIT_BENCH_NO_REPORT=1` leaves that report out (to profile
//! one figure).

use std::hint::black_box;
use std::io::{Read, Write};
use std::num::NonZeroU32;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixListener, UnixStream};
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput};
use shmkit_benches::process::{self, Peer, PeerContext, child_main};
use shmkit_ring::bytes::{ByteConsumer, ByteProducer, ByteRing};
use shmkit_sync::Backoff;

/// Bytes of a big record (and of a socket write).
const BIG: usize = 64 * 1024;
/// Big records per measured batch: 128 MiB.
const BIG_BATCH: u64 = 2048;
/// Capacity of the ring for big records (`SHMKIT_BENCH_BYTES_CAPACITY` overrides it): 4 MiB,
/// more than a core's L2 (1 MiB on the test VM), less than the shared L3 (32 MiB). A ring that
/// fits in L2 is slower here (measured: 256 KiB about 8 GiB/s, 1 MiB 12 to 25, 4 MiB 30 to 34):
/// each line the consumer reads is then still modified in the producer's L2 and must be probed
/// out of it, where a larger ring's lines have moved on to the L3 both cores read at full speed.
const BIG_CAPACITY: usize = 4 << 20;
/// Bytes of a small record.
const SMALL: usize = 64;
/// Small records per measured batch.
const SMALL_BATCH: u64 = 1_000_000;
/// Distinct small source records the producer cycles through.
const SOURCES: usize = 64;

/// The checksum of `count` small records: the sum of their first words, `index mod SOURCES`.
fn small_sum(count: u64) -> u64 {
    let sources = SOURCES as u64;
    let full = count / sources * (sources * (sources - 1) / 2);
    let rest = count % sources;
    full + rest * rest.saturating_sub(1) / 2
}

/// Small record `index` of the sources.
fn small_record(sources: &[u8], index: u64) -> &[u8] {
    let start = (index as usize % SOURCES) * SMALL;
    &sources[start..start + SMALL]
}

/// Capacity of the ring for small records.
const SMALL_CAPACITY: usize = 1 << 16;
/// Bytes the `memcpy` figure copies: the big batch's.
const MEMCPY_BYTES: usize = BIG * BIG_BATCH as usize;

const PRODUCER_ID: NonZeroU32 = NonZeroU32::MIN;
const CONSUMER_ID: NonZeroU32 = NonZeroU32::new(2).expect("non-zero");

/// What a command asks the child to do: the kind in the top byte, a count below.
const KIND_SHIFT: u32 = 56;
const READ_BIG: u64 = 1;
const READ_SMALL: u64 = 2;
const READ_SOCKET: u64 = 3;

fn command(kind: u64, count: u64) -> u64 {
    kind << KIND_SHIFT | count
}

/// The capacity of the big ring, from the environment or [`BIG_CAPACITY`].
fn big_capacity() -> usize {
    std::env::var("SHMKIT_BENCH_BYTES_CAPACITY")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(BIG_CAPACITY)
}

/// The shared area: the big ring, then the small ring, then the socket's abstract name.
struct Layout {
    big: usize,
    small: usize,
    name: usize,
}

impl Layout {
    fn new() -> Self {
        let big = ByteRing::bytes_for(big_capacity()).expect("layout").next_multiple_of(4096);
        let small = ByteRing::bytes_for(SMALL_CAPACITY).expect("layout").next_multiple_of(4096);
        Self { big, small, name: 64 }
    }

    fn len(&self) -> usize {
        self.big + self.small + self.name
    }
}

/// The socket's abstract name (nothing in the file system), unique per parent.
fn socket_name() -> String {
    format!("shmkit-bench-bytes-{}", std::process::id())
}

// --- the child -------------------------------------------------------------------------------

/// Peer role: consumes whatever each command names, reports a checksum.
fn role_consumer(mut ctx: PeerContext) {
    let layout = Layout::new();
    let (ptr, _) = ctx.data();
    // SAFETY: both rings are inside the area, which outlives the handles; the parent initialised
    // them before starting this process.
    let (mut big, mut small) = unsafe {
        (
            ByteConsumer::attach(ptr, layout.big, CONSUMER_ID).expect("big consumer"),
            ByteConsumer::attach(ptr.add(layout.big), layout.small, CONSUMER_ID)
                .expect("small consumer"),
        )
    };
    // SAFETY: the name's bytes are inside the area, written by the parent before the start.
    let name = unsafe {
        let start = ptr.add(layout.big + layout.small);
        let bytes = std::slice::from_raw_parts(start.as_ptr(), layout.name);
        String::from_utf8_lossy(bytes.split(|&byte| byte == 0).next().unwrap_or_default())
            .into_owned()
    };
    let address = SocketAddr::from_abstract_name(name.as_bytes()).expect("abstract address");
    let mut socket = UnixStream::connect_addr(&address).expect("connect to the parent");
    let mut buffer = vec![0_u8; BIG];
    while let Some(argument) = ctx.next_command() {
        let count = argument & ((1 << KIND_SHIFT) - 1);
        let checksum = match argument >> KIND_SHIFT {
            READ_BIG => read_records(&mut big, count, &mut buffer),
            READ_SMALL => read_records(&mut small, count, &mut buffer[..SMALL]),
            READ_SOCKET => {
                let mut left = count as usize * BIG;
                while left > 0 {
                    let read = socket.read(&mut buffer[..left.min(BIG)]).expect("read the socket");
                    assert!(read > 0, "the parent closed the socket");
                    left -= read;
                }
                black_box(&buffer);
                count
            }
            _ => 0,
        };
        ctx.done(checksum);
    }
}

/// Reads `count` records into `buffer` (spinning while the ring is empty); the sum of their
/// first words.
fn read_records(consumer: &mut ByteConsumer<'_>, count: u64, buffer: &mut [u8]) -> u64 {
    let mut sum = 0_u64;
    let mut backoff = Backoff::default();
    for _ in 0..count {
        loop {
            if let Some(length) = consumer.read(buffer).expect("valid ring") {
                let first = u64::from_le_bytes(buffer[..8].try_into().expect("8 bytes"));
                sum = sum.wrapping_add(first);
                debug_assert_eq!(length, buffer.len());
                backoff.reset();
                break;
            }
            backoff.snooze();
        }
    }
    sum
}

// --- the parent ------------------------------------------------------------------------------

/// The parent's side: the producers, the socket, the memcpy buffers and the child.
struct Bench {
    // Declared before `peer`: dropped (their roles released) before the area goes away.
    big: ByteProducer<'static>,
    small: ByteProducer<'static>,
    socket: UnixStream,
    source: Vec<u8>,
    /// [`SOURCES`] small records, record `j` starting with `j` as a `u64`: messages already in
    /// memory. (Writing a record's number into one source just before appending it would make
    /// the copy's loads wait for that store, which waits behind every store to the ring still
    /// waiting for its cache line: a store-forwarding stall that measures the bench, not the
    /// ring.)
    small_sources: Vec<u8>,
    copy_from: Vec<u8>,
    copy_to: Vec<u8>,
    /// A ring in this process's heap, both sides in this thread (`_memory` holds it).
    local: (ByteProducer<'static>, ByteConsumer<'static>),
    _memory: Vec<Line>,
    peer: Peer,
}

/// 128 bytes, 128-aligned: the unit of the local ring's memory.
#[repr(C, align(128))]
#[derive(Clone, Copy)]
struct Line([u8; 128]);

impl Bench {
    fn start() -> Self {
        let layout = Layout::new();
        let name = socket_name();
        let address = SocketAddr::from_abstract_name(name.as_bytes()).expect("abstract address");
        let listener = UnixListener::bind_addr(&address).expect("bind the socket");
        let peer = Peer::process("consumer", layout.len(), |ptr, len| {
            assert!(len >= layout.len());
            // SAFETY: a fresh area of the harness, used only through these rings and the name.
            unsafe {
                ByteRing::init(ptr, layout.big, big_capacity()).expect("init the big ring");
                ByteRing::init(ptr.add(layout.big), layout.small, SMALL_CAPACITY)
                    .expect("init the small ring");
                let start = ptr.add(layout.big + layout.small).as_ptr();
                std::ptr::copy_nonoverlapping(name.as_ptr(), start, name.len());
            }
        });
        let (socket, _) = listener.accept().expect("the child connects");
        let (ptr, _) = peer.data();
        // SAFETY: the rings live in the area, which outlives the handles (dropped first).
        let (big, small) = unsafe {
            (
                ByteProducer::attach(ptr, layout.big, PRODUCER_ID).expect("big producer"),
                ByteProducer::attach(ptr.add(layout.big), layout.small, PRODUCER_ID)
                    .expect("small producer"),
            )
        };
        let touched = |len: usize| (0..len).map(|index| index as u8).collect::<Vec<u8>>();
        let local_len = ByteRing::bytes_for(SMALL_CAPACITY).expect("layout");
        let mut memory = vec![Line([0; 128]); local_len.div_ceil(128)];
        let local_ptr = std::ptr::NonNull::new(memory.as_mut_ptr().cast::<u8>()).expect("heap");
        // SAFETY: the vector's heap buffer outlives the handles (`local` is dropped before
        // `_memory`, in declaration order, and moving the vector does not move its buffer).
        let local = unsafe {
            ByteRing::init(local_ptr, local_len, SMALL_CAPACITY).expect("init the local ring");
            (
                ByteProducer::attach(local_ptr, local_len, PRODUCER_ID).expect("local producer"),
                ByteConsumer::attach(local_ptr, local_len, CONSUMER_ID).expect("local consumer"),
            )
        };
        Self {
            local,
            _memory: memory,
            big,
            small,
            socket,
            source: touched(BIG),
            small_sources: (0..SOURCES as u64)
                .flat_map(|index| {
                    let mut record = [0_u8; SMALL];
                    record[..8].copy_from_slice(&index.to_le_bytes());
                    record
                })
                .collect(),
            copy_from: touched(MEMCPY_BYTES),
            copy_to: touched(MEMCPY_BYTES),
            peer,
        }
    }

    /// Appends `count` records of the kind's length while the child reads them; the time from
    /// the command to the child's last read.
    fn records(&mut self, kind: u64, count: u64) -> Duration {
        self.peer.call(command(kind, 0)); // wakes the child, untimed
        let start = Instant::now();
        self.peer.post(command(kind, count));
        let mut backoff = Backoff::default();
        let expected = if kind == READ_BIG {
            let record = &mut self.source[..BIG];
            for index in 0..count {
                // One store-forwarding stall per 64 KiB: negligible.
                record[..8].copy_from_slice(&index.to_le_bytes());
                while !self.big.append(record).expect("valid ring") {
                    backoff.snooze();
                }
                backoff.reset();
            }
            count * count.saturating_sub(1) / 2
        } else {
            for index in 0..count {
                let record = small_record(&self.small_sources, index);
                while !self.small.append(record).expect("valid ring") {
                    backoff.snooze();
                }
                backoff.reset();
            }
            small_sum(count)
        };
        let sum = self.peer.wait();
        let elapsed = start.elapsed();
        assert_eq!(sum, expected, "the child read other records");
        elapsed
    }

    /// Appends and reads back [`SMALL_BATCH`] 64-byte records in this thread: the CPU cost of
    /// the two calls, with no cache line crossing cores (a ring of its own in this process).
    fn same_thread(&mut self) -> Duration {
        let (producer, consumer) = &mut self.local;
        let mut read = [0_u8; SMALL];
        let start = Instant::now();
        let mut sum = 0_u64;
        for index in 0..SMALL_BATCH {
            assert!(producer.append(small_record(&self.small_sources, index)).expect("valid ring"));
            let length = consumer.read(&mut read).expect("valid ring");
            debug_assert_eq!(length, Some(SMALL));
            sum = sum.wrapping_add(u64::from_le_bytes(read[..8].try_into().expect("8 bytes")));
        }
        let elapsed = start.elapsed();
        assert_eq!(sum, small_sum(SMALL_BATCH));
        elapsed
    }

    fn ring_big(&mut self) -> Duration {
        self.records(READ_BIG, BIG_BATCH)
    }

    fn ring_small(&mut self) -> Duration {
        self.records(READ_SMALL, SMALL_BATCH)
    }

    /// Writes the big batch's bytes as 64 KiB writes on the socket while the child reads them.
    fn socket(&mut self) -> Duration {
        self.peer.call(command(READ_SOCKET, 0));
        let start = Instant::now();
        self.peer.post(command(READ_SOCKET, BIG_BATCH));
        for _ in 0..BIG_BATCH {
            self.socket.write_all(&self.source).expect("write the socket");
        }
        let count = self.peer.wait();
        let elapsed = start.elapsed();
        assert_eq!(count, BIG_BATCH);
        elapsed
    }

    /// One `memcpy` of 128 MiB between buffers larger than the caches.
    fn memcpy(&mut self) -> Duration {
        let start = Instant::now();
        // SAFETY: two distinct buffers of `MEMCPY_BYTES` bytes each.
        unsafe {
            std::ptr::copy_nonoverlapping(
                black_box(self.copy_from.as_ptr()),
                black_box(self.copy_to.as_mut_ptr()),
                MEMCPY_BYTES,
            );
        }
        black_box(&mut self.copy_to);
        start.elapsed()
    }
}

// --- the run ---------------------------------------------------------------------------------

/// Times a closure that measures itself (`iter_custom`): `iters` calls, each one batch.
fn custom(iters: u64, mut measure: impl FnMut() -> Duration) -> Duration {
    (0..iters).map(|_| measure()).sum()
}

#[expect(clippy::cast_precision_loss, reason = "byte and record counts are far below 2^52")]
fn per_second(count: u64, time: Duration) -> f64 {
    count as f64 / time.as_secs_f64()
}

fn bench_big(c: &mut Criterion, bench: &mut Bench) {
    let mut group = c.benchmark_group("bytes/64KiB");
    group.throughput(Throughput::Bytes(MEMCPY_BYTES as u64));
    group.bench_function("ring", |b| b.iter_custom(|iters| custom(iters, || bench.ring_big())));
    group.bench_function("unix-socket", |b| {
        b.iter_custom(|iters| custom(iters, || bench.socket()));
    });
    group.bench_function("memcpy-128MiB", |b| {
        b.iter_custom(|iters| custom(iters, || bench.memcpy()));
    });
    group.finish();
}

fn bench_small(c: &mut Criterion, bench: &mut Bench) {
    let mut group = c.benchmark_group("bytes/64B");
    group.throughput(Throughput::Elements(SMALL_BATCH));
    group.bench_function("ring", |b| b.iter_custom(|iters| custom(iters, || bench.ring_small())));
    group.bench_function("same-thread", |b| {
        b.iter_custom(|iters| custom(iters, || bench.same_thread()));
    });
    group.finish();
}

/// Interleaved comparisons: A B A B ..., each side timing itself; the median of the per-round
/// ratios.
fn compare(rounds: usize, bench: &mut Bench) {
    let report = |label: &str, result: &process::Paired| {
        println!(
            "{label}: {:.3?} vs {:.3?}, ratio {:.3} (median of {rounds} interleaved rounds)",
            result.a, result.b, result.ratio
        );
    };
    println!("\n== interleaved comparisons (ratio > 1: the ring is faster) ==");
    // Both sides use the one child: a cell lends the bench to one closure at a time.
    let cell = std::cell::RefCell::new(&mut *bench);
    let socket = process::paired_timed(
        rounds,
        || cell.borrow_mut().socket(),
        || cell.borrow_mut().ring_big(),
    );
    report("64 KiB: time unix-socket / time ring", &socket);
    let memcpy = process::paired_timed(
        rounds,
        || cell.borrow_mut().memcpy(),
        || cell.borrow_mut().ring_big(),
    );
    report("64 KiB: time memcpy-128MiB / time ring (same bytes)", &memcpy);
    let mut small: Vec<Duration> = (0..rounds).map(|_| cell.borrow_mut().ring_small()).collect();
    small.sort();
    let small = small[rounds / 2];
    println!("64 B records: {small:.3?} per {SMALL_BATCH} (median of {rounds} runs)");
    let gib = |time: Duration| per_second(MEMCPY_BYTES as u64, time) / f64::from(1 << 30);
    println!(
        "\n| figure | ring | peer | ratio (ring faster if > 1) |\n|---|---|---|---|\n\
         | 64 KiB records vs Unix socket | {:.2} GiB/s | {:.2} GiB/s | {:.2} |\n\
         | 64 KiB records vs memcpy 128 MiB | {:.2} GiB/s | {:.2} GiB/s | {:.2} |\n\
         | 64 B records | {:.1} M records/s | | |",
        gib(socket.b),
        gib(socket.a),
        socket.ratio,
        gib(memcpy.b),
        gib(memcpy.a),
        memcpy.ratio,
        per_second(SMALL_BATCH, small) / 1e6,
    );
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
        .sample_size(10)
        .configure_from_args()
}

/// `criterion_main!` with the child's role first: the same binary runs it when started by the
/// harness.
fn main() {
    if child_main(&[("consumer", role_consumer)]) {
        return;
    }
    let mut bench = Bench::start();
    let mut criterion = config();
    bench_big(&mut criterion, &mut bench);
    bench_small(&mut criterion, &mut bench);
    if std::env::var_os("SHMKIT_BENCH_NO_REPORT").is_none() {
        compare(20, &mut bench);
    }
    criterion.final_summary();
}
