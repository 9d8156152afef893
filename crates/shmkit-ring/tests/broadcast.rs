//! The broadcast ring: behaviour in one process (a heap buffer as the shared range), checks of
//! corrupt shared state, and real processes: ten million messages to consumer processes that
//! check every message they get and account for every one they lost, consumers stopped on
//! purpose that are lapped (lossy) or hold the producer back (credit).
//!
//! No test asserts an upper bound on time; waits that should end have a long timeout.
//!
//! Needs the `std` feature (blocking calls, process ids as owners).
#![cfg(feature = "std")]

use std::num::NonZeroU32;
use std::ptr::NonNull;
use std::sync::atomic::Ordering;
use std::time::Duration;

use shmkit_name::Name;
use shmkit_os::{Access, MapOptions, Mapping, Region, RegionOptions};
use shmkit_ring::Error;
use shmkit_ring::broadcast::{
    Broadcast, BroadcastConsumer, BroadcastProducer, Flow, Received, Start,
};
use shmkit_sync::SpinFutex;
use shmkit_testkit::{
    ChildProcess, HeapBuffer, RegionGuard, child_env, child_role, tell_parent, unique_name,
    wait_for_parent,
};

const ONE: NonZeroU32 = NonZeroU32::MIN;
const TWO: NonZeroU32 = NonZeroU32::new(2).expect("non-zero");
const THREE: NonZeroU32 = NonZeroU32::new(3).expect("non-zero");

/// Far beyond any real wait; only a lost wake-up or a dead peer reaches it.
const HANG_GUARD: Option<Duration> = Some(Duration::from_secs(60));

/// A 32-byte message whose four words are derived from its number: a torn or misplaced message
/// fails [`check`].
type Message = [u64; 4];

fn message(n: u64) -> Message {
    [n, n ^ 0xA5A5_A5A5_A5A5_A5A5, n.wrapping_mul(3), !n]
}

/// Checks that `received` is message `n`, whole.
fn check(n: u64, received: Message) {
    assert_eq!(received, message(n), "message {n} torn or out of order");
}

/// A buffer holding a fresh ring and its producer.
fn ring(capacity: usize, flow: Flow) -> (HeapBuffer, BroadcastProducer<'static, Message>) {
    let mut buffer =
        HeapBuffer::new(Broadcast::<Message>::bytes_for(capacity, flow).expect("layout"));
    let (ptr, len) = buffer.range();
    // SAFETY: every test drops its handles before its buffer; the buffer is used only through
    // the ring.
    unsafe {
        Broadcast::<Message>::init(ptr, len, capacity, flow).expect("init");
        (buffer, BroadcastProducer::attach(ptr, len, ONE).expect("producer"))
    }
}

fn lossy(buffer: &mut HeapBuffer, start: Start) -> BroadcastConsumer<'static, Message> {
    let (ptr, len) = buffer.range();
    // SAFETY: as in `ring`.
    unsafe { BroadcastConsumer::attach(ptr, len, start) }.expect("consumer")
}

fn credit(buffer: &mut HeapBuffer, owner: NonZeroU32) -> BroadcastConsumer<'static, Message> {
    let (ptr, len) = buffer.range();
    // SAFETY: as in `ring`.
    unsafe { BroadcastConsumer::attach_credit(ptr, len, owner) }.expect("credit consumer")
}

fn publish(producer: &mut BroadcastProducer<'_, Message>, count: u64) -> u64 {
    let mut published = 0;
    while published < count
        && producer.try_publish(&message(producer.position())).expect("valid ring")
    {
        published += 1;
    }
    published
}

/// Receives every message up to `end`, which must all be there: no laps, nothing missing.
fn receive_all(consumer: &mut BroadcastConsumer<'_, Message>, end: u64) {
    while consumer.position() < end {
        let n = consumer.position();
        match consumer.try_recv().expect("valid ring") {
            Received::Message(received) => check(n, received),
            other => panic!("message {n}: {other:?}"),
        }
    }
}

#[test]
fn consumers_in_time_read_everything_in_order() {
    let (mut buffer, mut producer) = ring(8, Flow::Lossy);
    let mut early = lossy(&mut buffer, Start::Newest);
    assert_eq!(early.try_recv(), Ok(Received::Empty));
    for round in 0..1000 {
        assert_eq!(publish(&mut producer, round % 9), round % 9);
        receive_all(&mut early, producer.position());
        assert_eq!(early.try_recv(), Ok(Received::Empty));
    }
    let mut late = lossy(&mut buffer, Start::Oldest);
    assert_eq!(late.position(), producer.position() - 8);
    receive_all(&mut late, producer.position());
    let mut newest = lossy(&mut buffer, Start::Newest);
    assert_eq!((newest.position(), newest.try_recv()), (producer.position(), Ok(Received::Empty)));
    assert_eq!((early.lost(), late.lost(), newest.flow()), (0, 0, Flow::Lossy));
}

#[test]
fn a_stopped_consumer_loses_exactly_what_was_overwritten() {
    for (capacity, published) in [(8, 9), (8, 100), (8, 8), (1, 5), (64, 1000)] {
        let (mut buffer, mut producer) = ring(capacity, Flow::Lossy);
        let mut consumer = lossy(&mut buffer, Start::Newest);
        assert_eq!(publish(&mut producer, published), published, "a lossy producer never waits");
        let lost = published.saturating_sub(capacity as u64);
        if lost > 0 {
            assert_eq!(consumer.try_recv(), Ok(Received::Lapped { lost }));
        }
        receive_all(&mut consumer, published);
        assert_eq!(consumer.try_recv(), Ok(Received::Empty));
        assert_eq!(consumer.lost(), lost);
    }
}

#[test]
fn a_lap_seen_while_polling_moves_past_the_lost_message() {
    // (A lap while copying needs a concurrent producer: the loom models check it.)
    let (mut buffer, mut producer) = ring(4, Flow::Lossy);
    let mut consumer = lossy(&mut buffer, Start::Newest);
    publish(&mut producer, 4);
    receive_all(&mut consumer, 2);
    // Slot 2's seq says "message 6 being written": a lap while polling.
    let slots = 384;
    let stride = Broadcast::<Message>::SLOT_STRIDE;
    buffer.word(slots + 2 * stride).store(2 * 7 + 1, Ordering::Relaxed);
    assert_eq!(consumer.try_recv(), Ok(Received::Lapped { lost: 1 }));
    assert_eq!(consumer.position(), 3, "next - capacity is 0: the consumer moves by one");
    receive_all(&mut consumer, 4);
}

#[test]
fn credit_holds_the_producer_at_the_slowest_consumer() {
    let flow = Flow::Credit { consumers: 2 };
    let (mut buffer, mut producer) = ring(8, flow);
    let mut fast = credit(&mut buffer, TWO);
    let mut slow = credit(&mut buffer, THREE);
    let mut free = lossy(&mut buffer, Start::Newest);
    assert_eq!((fast.flow(), fast.has_credit(), free.has_credit()), (flow, true, false));
    assert_eq!(publish(&mut producer, 100), 8, "stops at the capacity");
    receive_all(&mut fast, 8);
    receive_all(&mut free, 8);
    assert_eq!(publish(&mut producer, 100), 0, "the slow consumer has read nothing");
    receive_all(&mut slow, 3);
    assert_eq!(publish(&mut producer, 100), 3);
    let owners: Vec<_> = producer.credit_consumers().collect();
    assert_eq!(owners, [(TWO, 8), (THREE, 3)]);
    drop(slow);
    assert_eq!(publish(&mut producer, 100), 5, "now only the fast consumer counts");
    receive_all(&mut fast, 16);
    assert_eq!(publish(&mut producer, 100), 8);
    // A lossy reader in a credit ring is never waited for: it was lapped.
    assert_eq!(free.try_recv(), Ok(Received::Lapped { lost: 8 }));
    receive_all(&mut free, 24);
}

#[test]
fn credit_slots_are_limited_evictable_and_released() {
    let (mut buffer, mut producer) = ring(4, Flow::Credit { consumers: 1 });
    let (ptr, len) = buffer.range();
    let mut first = credit(&mut buffer, TWO);
    // SAFETY: the buffer outlives every handle here.
    unsafe {
        assert_eq!(
            BroadcastConsumer::<Message>::attach_credit(ptr, len, THREE).map(drop),
            Err(Error::RoleTaken { what: "broadcast ring", role: "credit consumer", owner: 2 })
        );
    }
    assert_eq!(publish(&mut producer, 10), 4);
    // The consumer is "dead": evict it, and the producer goes on.
    assert_eq!(producer.evict_consumer(THREE), 0);
    assert_eq!(producer.evict_consumer(TWO), 1);
    assert_eq!(publish(&mut producer, 6), 6);
    assert!(!first.has_credit());
    // It was alive after all: it reads on without credit, and is lapped.
    assert_eq!(first.try_recv(), Ok(Received::Lapped { lost: 6 }));
    receive_all(&mut first, 10);
    let second = credit(&mut buffer, THREE);
    assert_eq!(second.position(), 10);
    drop(second);
    assert_eq!(producer.credit_consumers().count(), 0, "released on drop");

    let (mut buffer, _producer) = ring(4, Flow::Lossy);
    let (ptr, len) = buffer.range();
    // SAFETY: as above.
    unsafe {
        assert!(matches!(
            BroadcastConsumer::<Message>::attach_credit(ptr, len, TWO),
            Err(Error::InvalidInput { .. })
        ));
    }
}

#[test]
fn roles_placement_and_header_are_checked() {
    assert!(Broadcast::<Message>::bytes_for(6, Flow::Lossy).is_err());
    let (mut buffer, producer) = ring(4, Flow::Lossy);
    let (ptr, len) = buffer.range();
    // SAFETY: the buffer outlives every handle here.
    unsafe {
        assert_eq!(
            BroadcastProducer::<Message>::attach(ptr, len, TWO).map(drop),
            Err(Error::RoleTaken { what: "broadcast ring", role: "producer", owner: 1 })
        );
        std::mem::forget(producer);
        let mut producer =
            BroadcastProducer::<Message>::take_over(ptr, len, ONE, TWO).expect("take over");
        assert_eq!(publish(&mut producer, 1), 1);
        assert!(matches!(
            BroadcastConsumer::<[u64; 3]>::attach(ptr, len, Start::Newest),
            Err(Error::Corrupted { field: "element size", .. })
        ));
        // Zero bytes (no creator yet). Not bytes inside the ring: its slots hold messages, which
        // may read as any header state.
        let mut zeroes = HeapBuffer::new(len);
        let (zero_ptr, zero_len) = zeroes.range();
        assert!(matches!(
            BroadcastConsumer::<Message>::attach(zero_ptr, zero_len, Start::Newest),
            Err(Error::NotPublished { .. })
        ));
        assert!(matches!(
            BroadcastConsumer::<Message>::attach(ptr, 600, Start::Newest),
            Err(Error::Corrupted { field: "total size", .. })
        ));
        assert!(matches!(
            Broadcast::<Message>::init(ptr.add(64), len - 64, 4, Flow::Lossy),
            Err(Error::Placement { .. })
        ));
    }
}

#[test]
fn corrupt_shared_words_are_refused() {
    let (mut buffer, mut producer) = ring(4, Flow::Credit { consumers: 1 });
    let (ptr, len) = buffer.range();
    let mut consumer = lossy(&mut buffer, Start::Newest);
    publish(&mut producer, 2);
    // A slot whose seq names a message of another slot.
    let slots = 384 + 128;
    buffer.word(slots).store(2 * (1 + 1), Ordering::Relaxed);
    assert!(matches!(consumer.try_recv(), Err(Error::Corrupted { field: "slot sequence", .. })));
    // A credit position beyond the producer.
    let registered = credit(&mut buffer, TWO);
    assert_eq!(publish(&mut producer, 4), 4);
    buffer.word(384).store(1000, Ordering::Relaxed);
    assert!(matches!(
        producer.try_publish(&message(6)),
        Err(Error::Corrupted { field: "credit position", .. })
    ));
    // The producer's position beyond 2^62.
    buffer.word(128).store(1 << 62, Ordering::Relaxed);
    // SAFETY: the buffer outlives every handle here.
    unsafe {
        assert!(matches!(
            BroadcastConsumer::<Message>::attach(ptr, len, Start::Newest),
            Err(Error::Corrupted { field: "next", .. })
        ));
    }
    // The flow word.
    buffer.word(136).store(u64::from(ONE.get()) | 7 << 32, Ordering::Relaxed);
    // SAFETY: as above.
    unsafe {
        assert!(matches!(
            BroadcastConsumer::<Message>::attach(ptr, len, Start::Newest),
            Err(Error::Corrupted { field: "flow", .. })
        ));
    }
    drop(registered);
}

#[test]
fn blocking_calls_deliver_everything_under_credit() {
    let flow = Flow::Credit { consumers: 2 };
    let (mut buffer, mut producer) = ring(16, flow);
    let consumers = [credit(&mut buffer, TWO), credit(&mut buffer, THREE)];
    let strategy = SpinFutex { spins: 4 };
    std::thread::scope(|scope| {
        for mut consumer in consumers {
            scope.spawn(move || {
                for n in 0..50_000 {
                    match consumer.recv_blocking(&strategy, HANG_GUARD).expect("receive") {
                        Received::Message(received) => check(n, received),
                        other => panic!("message {n}: {other:?}"),
                    }
                }
            });
        }
        for n in 0..50_000 {
            producer.publish_blocking(&message(n), &strategy, HANG_GUARD).expect("publish");
        }
    });
    let mut consumer = lossy(&mut buffer, Start::Newest);
    assert_eq!(
        consumer.recv_blocking(&strategy, Some(Duration::from_millis(10))),
        Err(Error::TimedOut { what: "broadcast ring" })
    );
}

// --- Real processes --------------------------------------------------------------------------

const NAME_ENV: &str = "SHMKIT_TEST_NAME";
const COUNT_ENV: &str = "SHMKIT_TEST_COUNT";

/// Messages moved between the processes.
const MESSAGES: u64 = 10_000_000;
/// Slots of the rings between processes.
const CAPACITY: usize = 1024;

fn map(name: &Name) -> Mapping {
    Region::open(name, None, Access::ReadWrite)
        .and_then(|region| region.map(&MapOptions::new()))
        .expect("map the test region")
}

fn base(mapping: &Mapping) -> NonNull<u8> {
    NonNull::new(mapping.as_ptr()).expect("a mapping is never null")
}

/// A region named uniquely, holding a fresh ring, removed on drop.
fn shared_ring(tag: &str, flow: Flow) -> (Name, RegionGuard, Mapping) {
    let name = unique_name(tag);
    let guard = RegionGuard(name);
    let len = Broadcast::<Message>::bytes_for(CAPACITY, flow).expect("layout");
    RegionOptions::new().create(&name, len.div_ceil(4096) as u64).expect("create the region");
    let mapping = map(&name);
    // SAFETY: the mapping outlives the ring's handles in this process; children attach only
    // after this returns.
    unsafe { Broadcast::<Message>::init(base(&mapping), mapping.len(), CAPACITY, flow) }
        .expect("init");
    (name, guard, mapping)
}

fn spawn(role: &str, name: &Name, count: u64) -> ChildProcess {
    let env = [(NAME_ENV, name.as_str().to_owned()), (COUNT_ENV, count.to_string())];
    ChildProcess::spawn("child_process_entry", role, &env)
}

/// The child's side of the multi-process tests; a plain run (no role) does nothing here.
#[test]
fn child_process_entry() {
    let Some(role) = child_role() else { return };
    let name = Name::new(&child_env(NAME_ENV)).expect("valid name");
    let count: u64 = child_env(COUNT_ENV).parse().expect("count");
    let mapping = map(&name);
    let (ptr, len) = (base(&mapping), mapping.len());
    let strategy = SpinFutex::default();
    match role.as_str() {
        // Receives until message `count - 1`: every message whole and in order, every loss
        // counted; reports both counts.
        "lossy" => {
            // SAFETY: the mapping outlives the handle; the region holds the parent's ring.
            let mut consumer =
                unsafe { BroadcastConsumer::<Message>::attach(ptr, len, Start::Newest) }
                    .expect("consumer");
            tell_parent("attached");
            let (mut received, mut lost) = (0_u64, 0_u64);
            while consumer.position() < count {
                let n = consumer.position();
                match consumer.recv_blocking(&strategy, HANG_GUARD).expect("receive") {
                    Received::Message(message) => {
                        check(n, message);
                        received += 1;
                    }
                    Received::Lapped { lost: count } => lost += count,
                    Received::Empty => unreachable!("recv_blocking waits"),
                }
            }
            assert_eq!(consumer.lost(), lost);
            tell_parent(&format!("received {received} lost {lost}"));
        }
        // Registered for credit: must receive all `count` messages, none lost.
        "credit" => {
            // SAFETY: as above.
            let mut consumer =
                unsafe { BroadcastConsumer::<Message>::attach_credit_current_process(ptr, len) }
                    .expect("credit consumer");
            assert_eq!(consumer.position(), 0);
            tell_parent("attached");
            for n in 0..count {
                match consumer.recv_blocking(&strategy, HANG_GUARD).expect("receive") {
                    Received::Message(message) => check(n, message),
                    other => panic!("message {n}: {other:?}"),
                }
            }
            tell_parent(&format!("received {count} lost {}", consumer.lost()));
        }
        // Attaches, then stops until the parent says `go` (having published `count` messages):
        // reports the lap, then receives the rest.
        "stopped-lossy" => {
            // SAFETY: as above.
            let mut consumer =
                unsafe { BroadcastConsumer::<Message>::attach(ptr, len, Start::Newest) }
                    .expect("consumer");
            tell_parent("attached");
            assert_eq!(wait_for_parent(), "go");
            let first = consumer.try_recv().expect("valid ring");
            let Received::Lapped { lost } = first else { panic!("not lapped: {first:?}") };
            let resumed = consumer.position();
            receive_all(&mut consumer, count);
            assert_eq!(consumer.try_recv(), Ok(Received::Empty));
            tell_parent(&format!("lost {lost} resumed at {resumed}"));
        }
        // Registered for credit, then stops until the parent says `go`; then receives all.
        "stopped-credit" => {
            // SAFETY: as above.
            let mut consumer =
                unsafe { BroadcastConsumer::<Message>::attach_credit_current_process(ptr, len) }
                    .expect("credit consumer");
            tell_parent("attached");
            assert_eq!(wait_for_parent(), "go");
            for n in 0..count {
                match consumer.recv_blocking(&strategy, HANG_GUARD).expect("receive") {
                    Received::Message(message) => check(n, message),
                    other => panic!("message {n}: {other:?}"),
                }
            }
            tell_parent(&format!("received {count} lost {}", consumer.lost()));
        }
        other => panic!("unknown child role {other}"),
    }
}

/// Parses a child's `received R lost L`.
fn received_lost(report: &str) -> (u64, u64) {
    let words: Vec<&str> = report.split_whitespace().collect();
    match words[..] {
        [received, "lost", lost] => {
            (received.parse().expect("count"), lost.parse().expect("count"))
        }
        _ => panic!("unexpected report {report:?}"),
    }
}

/// Ten million 32-byte messages from this process to two lossy consumer processes: each checks
/// that every message it gets is whole and in order, and that received + lost == sent.
#[test]
fn ten_million_messages_to_two_lossy_consumer_processes() {
    let (name, _guard, mapping) = shared_ring("ring-bcast", Flow::Lossy);
    let mut children = [spawn("lossy", &name, MESSAGES), spawn("lossy", &name, MESSAGES)];
    for child in &mut children {
        child.expect("attached");
    }
    // SAFETY: the mapping outlives the handle.
    let mut producer = unsafe {
        BroadcastProducer::<Message>::attach_current_process(base(&mapping), mapping.len())
    }
    .expect("producer");
    let strategy = SpinFutex::default();
    for n in 0..MESSAGES {
        producer.publish_blocking(&message(n), &strategy, HANG_GUARD).expect("publish");
    }
    for mut child in children {
        let (received, lost) = received_lost(&child.expect("received"));
        assert_eq!(received + lost, MESSAGES);
        assert!(received >= 1, "the last message is always received");
        eprintln!("a lossy consumer process received {received}, lost {lost} (counted)");
        child.finish();
    }
}

/// Ten million messages to a consumer process registered for credit: the producer waits for it,
/// and it receives every message, in order, none lost.
#[test]
fn ten_million_messages_under_credit_lose_nothing() {
    let (name, _guard, mapping) = shared_ring("ring-bcast-credit", Flow::Credit { consumers: 4 });
    let mut child = spawn("credit", &name, MESSAGES);
    child.expect("attached");
    // SAFETY: the mapping outlives the handle.
    let mut producer = unsafe {
        BroadcastProducer::<Message>::attach_current_process(base(&mapping), mapping.len())
    }
    .expect("producer");
    let strategy = SpinFutex::default();
    for n in 0..MESSAGES {
        producer.publish_blocking(&message(n), &strategy, HANG_GUARD).expect("publish");
    }
    assert_eq!(received_lost(&child.expect("received")), (MESSAGES, 0));
    child.finish();
}

/// A consumer process stopped while this process publishes 50,000 messages into 1024 slots:
/// when it resumes it reports exactly 50,000 - 1024 lost, then receives the last 1024 in order.
#[test]
fn a_stopped_consumer_process_counts_exactly_what_it_lost() {
    const PUBLISHED: u64 = 50_000;
    let (name, _guard, mapping) = shared_ring("ring-bcast-stop", Flow::Lossy);
    let mut child = spawn("stopped-lossy", &name, PUBLISHED);
    child.expect("attached");
    // SAFETY: the mapping outlives the handle.
    let mut producer = unsafe {
        BroadcastProducer::<Message>::attach_current_process(base(&mapping), mapping.len())
    }
    .expect("producer");
    assert_eq!(publish(&mut producer, PUBLISHED), PUBLISHED);
    child.send("go");
    let lost = PUBLISHED - CAPACITY as u64;
    assert_eq!(child.expect("lost"), format!("{lost} resumed at {lost}"));
    child.finish();
}

/// A credit consumer process stopped: this producer publishes exactly the capacity, then is
/// refused; once the consumer resumes, everything is delivered, nothing lost.
#[test]
fn a_stopped_credit_consumer_process_holds_the_producer() {
    const PUBLISHED: u64 = 20_000;
    let (name, _guard, mapping) = shared_ring("ring-bcast-stopc", Flow::Credit { consumers: 2 });
    let mut child = spawn("stopped-credit", &name, PUBLISHED);
    child.expect("attached");
    // SAFETY: the mapping outlives the handle.
    let mut producer = unsafe {
        BroadcastProducer::<Message>::attach_current_process(base(&mapping), mapping.len())
    }
    .expect("producer");
    assert_eq!(publish(&mut producer, PUBLISHED), CAPACITY as u64, "held at the capacity");
    assert_eq!(publish(&mut producer, PUBLISHED), 0, "still held");
    child.send("go");
    let strategy = SpinFutex::default();
    while producer.position() < PUBLISHED {
        let n = producer.position();
        producer.publish_blocking(&message(n), &strategy, HANG_GUARD).expect("publish");
    }
    assert_eq!(received_lost(&child.expect("received")), (PUBLISHED, 0));
    child.finish();
}
