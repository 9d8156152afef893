//! The broadcast ring of `shmkit-ring` across processes: one producer (this process, CPU 0), one
//! consumer (a child process of this bench binary, CPU 1, through the harness of
//! `shmkit_benches::process`), 32-byte messages (`[u64; 4]`).
//!
//! - `broadcast/32B/credit`: the consumer registered for credit: the producer waits for it, so
//!   every message is delivered; messages per second end to end (from the command to the
//!   consumer's last message).
//! - `broadcast/32B/lossy`: no flow control: the producer never waits, the consumer is lapped
//!   when it falls [`CAPACITY`] behind and counts what it lost. The figure is messages published
//!   per second until the consumer has caught up with the last one; the interleaved report adds
//!   the share the consumer received.
//!
//! One child serves both figures, so that no idle peer spins on the consumer's CPU while another
//! is measured. Both sides wait with an exponential back-off (1 to 64 pause hints). Criterion
//! gives each absolute figure; the report after it takes medians of rounds run back to back,
//! because this VM's host slows every cross-core hand-off about 4x for stretches of seconds
//! (`SHMKIT_BENCH_NO_REPORT=1` leaves the report out).

use std::num::NonZeroU32;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput};
use shmkit_benches::process::{Peer, PeerContext, child_main};
use shmkit_ring::broadcast::{
    Broadcast, BroadcastConsumer, BroadcastProducer, Flow, Received, Start,
};
use shmkit_sync::Backoff;

/// The message: 32 bytes.
type Message = [u64; 4];

/// Messages per measured batch.
const BATCH: u64 = 4_000_000;
/// Slots of each ring (`SHMKIT_BENCH_BROADCAST_CAPACITY` overrides it).
const CAPACITY: usize = 4096;

const PRODUCER_ID: NonZeroU32 = NonZeroU32::MIN;
const CONSUMER_ID: NonZeroU32 = NonZeroU32::new(2).expect("non-zero");

/// What a command asks the child: the ring in the top byte, the position to reach below.
const KIND_SHIFT: u32 = 56;
const CREDIT: u64 = 1;
const LOSSY: u64 = 2;

const CREDIT_FLOW: Flow = Flow::Credit { consumers: 1 };

fn capacity() -> usize {
    std::env::var("SHMKIT_BENCH_BROADCAST_CAPACITY")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(CAPACITY)
}

/// Where the lossy ring starts in the area (after the credit ring).
fn lossy_offset() -> usize {
    Broadcast::<Message>::bytes_for(capacity(), CREDIT_FLOW).expect("layout").next_multiple_of(4096)
}

fn area_len() -> usize {
    lossy_offset() + Broadcast::<Message>::bytes_for(capacity(), Flow::Lossy).expect("layout")
}

fn message(n: u64) -> Message {
    [n, n, n, n]
}

// --- the child -------------------------------------------------------------------------------

/// Peer role: receives on the ring each command names until its position reaches the command's
/// end; reports the messages received (every message is checked to be the one expected).
fn role_consumer(mut ctx: PeerContext) {
    let (ptr, len) = ctx.data();
    let offset = lossy_offset();
    // SAFETY: both rings are inside the area, which outlives the handles; the parent initialised
    // them before starting this process.
    let (mut credit, mut lossy) = unsafe {
        (
            BroadcastConsumer::<Message>::attach_credit(ptr, offset, CONSUMER_ID)
                .expect("credit consumer"),
            BroadcastConsumer::<Message>::attach(ptr.add(offset), len - offset, Start::Newest)
                .expect("lossy consumer"),
        )
    };
    while let Some(argument) = ctx.next_command() {
        let end = argument & ((1 << KIND_SHIFT) - 1);
        let consumer = match argument >> KIND_SHIFT {
            CREDIT => &mut credit,
            _ => &mut lossy,
        };
        let mut received = 0_u64;
        let mut backoff = Backoff::default();
        while consumer.position() < end {
            let position = consumer.position();
            match consumer.try_recv().expect("valid ring") {
                Received::Message(message) => {
                    assert_eq!(message[0], position, "message out of order");
                    received += 1;
                    backoff.reset();
                }
                Received::Lapped { .. } => backoff.reset(),
                Received::Empty => backoff.snooze(),
            }
        }
        ctx.done(received);
    }
}

// --- the parent ------------------------------------------------------------------------------

/// The parent's side: both producers and the child.
struct Bench {
    // Declared before `peer`: dropped (their roles released) before the area goes away.
    credit: BroadcastProducer<'static, Message>,
    lossy: BroadcastProducer<'static, Message>,
    peer: Peer,
    /// Messages the lossy consumer received in the last lossy batch.
    last_received: u64,
}

impl Bench {
    fn start() -> Self {
        let offset = lossy_offset();
        let peer = Peer::process("consumer", area_len(), |ptr, len| {
            // SAFETY: a fresh area of the harness, used only through these rings.
            unsafe {
                Broadcast::<Message>::init(ptr, offset, capacity(), CREDIT_FLOW)
                    .expect("init the credit ring");
                Broadcast::<Message>::init(ptr.add(offset), len - offset, capacity(), Flow::Lossy)
                    .expect("init the lossy ring");
            }
        });
        let (ptr, len) = peer.data();
        // SAFETY: the rings live in the area, which outlives the handles (dropped first).
        let (credit, lossy) = unsafe {
            (
                BroadcastProducer::attach(ptr, offset, PRODUCER_ID).expect("credit producer"),
                BroadcastProducer::attach(ptr.add(offset), len - offset, PRODUCER_ID)
                    .expect("lossy producer"),
            )
        };
        let mut bench = Self { credit, lossy, peer, last_received: 0 };
        // The child runs its role (and registers for credit) after it says it is ready: an
        // empty command returns once it has.
        bench.peer.call(CREDIT << KIND_SHIFT);
        bench
    }

    /// Publishes a batch on the ring `kind` while the child receives it; the time from the
    /// command to the child's reaching the batch's last message.
    fn batch(&mut self, kind: u64) -> Duration {
        let producer = if kind == CREDIT { &mut self.credit } else { &mut self.lossy };
        let end = producer.position() + BATCH;
        self.peer.call(kind << KIND_SHIFT); // wakes the child, untimed
        let start = Instant::now();
        self.peer.post(kind << KIND_SHIFT | end);
        let mut backoff = Backoff::default();
        for n in producer.position()..end {
            while !producer.try_publish(&message(n)).expect("valid ring") {
                backoff.snooze();
            }
            backoff.reset();
        }
        let received = self.peer.wait();
        let elapsed = start.elapsed();
        if kind == CREDIT {
            assert_eq!(received, BATCH, "credit delivers every message");
        } else {
            self.last_received = received;
        }
        elapsed
    }
}

// --- the run ---------------------------------------------------------------------------------

fn custom(iters: u64, mut measure: impl FnMut() -> Duration) -> Duration {
    (0..iters).map(|_| measure()).sum()
}

#[expect(clippy::cast_precision_loss, reason = "message counts are far below 2^52")]
fn per_second(count: u64, time: Duration) -> f64 {
    count as f64 / time.as_secs_f64()
}

fn bench_throughput(c: &mut Criterion, bench: &mut Bench) {
    let mut group = c.benchmark_group("broadcast/32B");
    group.throughput(Throughput::Elements(BATCH));
    group
        .bench_function("credit", |b| b.iter_custom(|iters| custom(iters, || bench.batch(CREDIT))));
    group.bench_function("lossy", |b| b.iter_custom(|iters| custom(iters, || bench.batch(LOSSY))));
    group.finish();
}

/// Medians of `rounds` batches of each kind, alternated.
fn report(rounds: usize, bench: &mut Bench) {
    let (mut credit, mut lossy, mut received) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..rounds {
        credit.push(bench.batch(CREDIT));
        lossy.push(bench.batch(LOSSY));
        received.push(bench.last_received);
    }
    credit.sort();
    lossy.sort();
    received.sort_unstable();
    let (credit, lossy, received) = (credit[rounds / 2], lossy[rounds / 2], received[rounds / 2]);
    #[expect(clippy::cast_precision_loss, reason = "message counts are far below 2^52")]
    let share = received as f64 / BATCH as f64 * 100.0;
    println!(
        "\n| figure (median of {rounds} batches of {BATCH}) | messages/s |\n|---|---|\n\
         | broadcast 32 B, credit (all delivered) | {:.1} M |\n\
         | broadcast 32 B, lossy, published | {:.1} M |\n\
         | broadcast 32 B, lossy, received by the consumer ({share:.1} %) | {:.1} M |",
        per_second(BATCH, credit) / 1e6,
        per_second(BATCH, lossy) / 1e6,
        per_second(received, lossy) / 1e6,
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
    bench_throughput(&mut criterion, &mut bench);
    if std::env::var_os("SHMKIT_BENCH_NO_REPORT").is_none() {
        report(15, &mut bench);
    }
    criterion.final_summary();
}
