//! The byte-stream ring: behaviour in one process (a heap buffer as the shared range), checks
//! of corrupt shared state, and real processes moving ten million variable-length records
//! through a POSIX shared memory region.
//!
//! No test asserts an upper bound on time; waits that should end have a long timeout, so a lost
//! wake-up fails the test instead of hanging it.
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
use shmkit_ring::bytes::{ByteConsumer, ByteProducer, ByteRing};
use shmkit_sync::SpinFutex;
use shmkit_testkit::{
    ChildProcess, HeapBuffer, RegionGuard, child_env, child_role, tell_parent, unique_name,
};

const ONE: NonZeroU32 = NonZeroU32::MIN;
const TWO: NonZeroU32 = NonZeroU32::new(2).expect("non-zero");

/// Far beyond any real wait; only a lost wake-up or a dead peer reaches it.
const HANG_GUARD: Option<Duration> = Some(Duration::from_secs(60));

/// Offsets of the shared lines, as the layout in `bytes/mod.rs` fixes them.
const TAIL: usize = 128;
const HEAD: usize = 256;
const DATA: usize = 512;

/// A buffer holding a fresh ring of `capacity` bytes.
fn ring(capacity: usize) -> HeapBuffer {
    let mut buffer = HeapBuffer::new(ByteRing::bytes_for(capacity).expect("layout"));
    let (ptr, len) = buffer.range();
    // SAFETY: the buffer outlives every handle of each test and is used only through the ring.
    unsafe { ByteRing::init(ptr, len, capacity) }.expect("init");
    buffer
}

fn producer_of(buffer: &mut HeapBuffer) -> ByteProducer<'static> {
    let (ptr, len) = buffer.range();
    // SAFETY: every test drops its handles before its buffer.
    unsafe { ByteProducer::attach(ptr, len, ONE) }.expect("producer")
}

fn consumer_of(buffer: &mut HeapBuffer) -> ByteConsumer<'static> {
    let (ptr, len) = buffer.range();
    // SAFETY: as in `producer`.
    unsafe { ByteConsumer::attach(ptr, len, TWO) }.expect("consumer")
}

/// A small deterministic generator (xorshift64*): both processes of a test draw the same records.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

/// The length of the next record drawn from `rng`: mostly 0..=64 bytes, one in 16 up to `max`.
fn record_length(rng: &mut Rng, max: usize) -> usize {
    let draw = rng.next();
    let bound = if draw.is_multiple_of(16) { max } else { 64.min(max) };
    ((draw >> 8) % (bound as u64 + 1)) as usize
}

/// Byte `offset` of record `index`: derived from both, so a record moved, cut or mixed with
/// another is caught.
fn record_byte(index: u64, offset: usize) -> u8 {
    (index.wrapping_mul(0x9E37_79B9) ^ (offset as u64).wrapping_mul(31) ^ (index >> 8)) as u8
}

fn fill_record(index: u64, record: &mut [u8]) {
    for (offset, byte) in record.iter_mut().enumerate() {
        *byte = record_byte(index, offset);
    }
}

fn check_record(index: u64, record: &[u8]) {
    for (offset, &byte) in record.iter().enumerate() {
        assert_eq!(byte, record_byte(index, offset), "record {index}, byte {offset}");
    }
}

#[test]
fn records_of_every_length_round_trip_across_many_wraps() {
    let mut buffer = ring(1024);
    let (mut producer, mut consumer) = (producer_of(&mut buffer), consumer_of(&mut buffer));
    let max = producer.max_record();
    assert_eq!(max, 504);
    let mut rng = Rng(7);
    let mut record = vec![0; max];
    let mut read = vec![0; max];
    let (mut written, mut checked) = (0_u64, 0_u64);
    let mut pending = std::collections::VecDeque::new();
    while checked < 20_000 {
        // A random number of appends, then a random number of reads: every fill level happens.
        for _ in 0..rng.next() % 8 {
            let length = (written as usize * 7) % (max + 1);
            fill_record(written, &mut record[..length]);
            if !producer.append(&record[..length]).expect("valid ring") {
                break;
            }
            pending.push_back(length);
            written += 1;
        }
        for _ in 0..rng.next() % 8 {
            let Some(length) = consumer.read(&mut read).expect("valid ring") else { break };
            assert_eq!(Some(length), pending.pop_front());
            check_record(checked, &read[..length]);
            checked += 1;
        }
    }
    while let Some(length) = consumer.read(&mut read).expect("valid ring") {
        check_record(checked, &read[..length]);
        checked += 1;
    }
    assert_eq!(checked, written);
    assert_eq!((producer.len(), consumer.is_empty()), (Ok(0), Ok(true)));
}

#[test]
fn a_record_that_would_cross_the_end_goes_to_the_start_whole() {
    let mut buffer = ring(128);
    let (mut producer, mut consumer) = (producer_of(&mut buffer), consumer_of(&mut buffer));
    // Two records of 56 bytes (8 + 48): positions at 112 of 128.
    assert_eq!(producer.append(&[1; 48]), Ok(true));
    assert_eq!(producer.append(&[2; 48]), Ok(true));
    assert_eq!(consumer.skip(), Ok(Some(48)));
    // 24 bytes (8 + 16) do not fit in the last 16: padding, then the record at offset 0.
    assert_eq!(producer.avail(), Ok(72));
    assert_eq!(producer.append(&[3; 16]), Ok(true));
    assert_eq!(producer.len(), Ok(56 + 16 + 24), "the padding counts as used");
    assert_eq!(consumer.skip(), Ok(Some(48)));
    let record = consumer.peek().expect("valid ring").expect("a record");
    assert_eq!(record.as_ptr(), buffer.range().0.as_ptr().wrapping_add(DATA + 8));
    // SAFETY: the producer is this test's, which writes nothing before the release.
    assert_eq!(unsafe { record.as_slice() }, &[3; 16]);
    record.release();
    assert_eq!((consumer.len(), producer.is_empty()), (Ok(0), Ok(true)));
}

#[test]
fn full_empty_and_lengths() {
    let mut buffer = ring(64);
    let (mut producer, mut consumer) = (producer_of(&mut buffer), consumer_of(&mut buffer));
    assert_eq!((producer.capacity(), producer.max_record()), (64, 24));
    assert_eq!((producer.len(), producer.avail(), consumer.is_empty()), (Ok(0), Ok(64), Ok(true)));
    assert_eq!(consumer.read(&mut [0; 8]), Ok(None));
    assert_eq!(consumer.peek().map(|grant| grant.is_some()), Ok(false));
    for _ in 0..4 {
        assert_eq!(producer.append(&[9; 5]), Ok(true)); // 16 bytes each
    }
    assert_eq!(producer.append(&[]), Ok(false), "full: not even an empty record fits");
    assert_eq!((consumer.len(), consumer.avail()), (Ok(64), Ok(0)));
    assert_eq!(consumer.skip(), Ok(Some(5)));
    assert_eq!(producer.append(&[7; 8]), Ok(true), "16 bytes freed, 16 taken");
    assert_eq!(
        producer.append(&[0; 25]),
        Err(Error::InvalidInput {
            what: "byte ring record length",
            reason: "at most capacity / 2 - 8 bytes",
            value: 25
        })
    );
    let mut small = [0; 4];
    assert!(matches!(consumer.read(&mut small), Err(Error::InvalidInput { value: 5, .. })));
    assert_eq!(consumer.len(), Ok(64), "a refused read consumes nothing");
}

#[test]
fn grants_commit_shorter_or_publish_nothing() {
    let mut buffer = ring(256);
    let (mut producer, mut consumer) = (producer_of(&mut buffer), consumer_of(&mut buffer));
    let mut grant = producer.reserve(100).expect("valid ring").expect("room");
    assert_eq!(grant.len(), 100);
    // SAFETY: 100 writable bytes (the grant's contract).
    unsafe { grant.as_mut_ptr().write_bytes(4, 100) };
    grant.copy_from_slice(10, &[5; 3]);
    grant.commit(13);
    {
        let abandoned = producer.reserve(50).expect("valid ring").expect("room");
        assert_eq!(abandoned.len(), 50);
    }
    assert_eq!(producer.len(), Ok(24), "a dropped grant publishes nothing");
    assert_eq!(producer.append(b"next"), Ok(true));
    let mut read = [0; 100];
    assert_eq!(consumer.read(&mut read), Ok(Some(13)));
    assert_eq!(read[..13], [4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 5, 5, 5]);
    // A peek dropped without a release leaves the record.
    assert_eq!(consumer.peek().expect("valid ring").map(|grant| grant.len()), Some(4));
    let grant = consumer.peek().expect("valid ring").expect("still there");
    let mut copy = [0; 4];
    grant.copy_to(&mut copy);
    assert_eq!(&copy, b"next");
    grant.release();
    assert_eq!(consumer.skip(), Ok(None));
}

#[test]
fn a_batch_publishes_its_records_together() {
    let mut buffer = ring(128);
    let (mut producer, mut consumer) = (producer_of(&mut buffer), consumer_of(&mut buffer));
    let mut batch = producer.batch();
    assert!(batch.is_empty());
    let mut appended = 0;
    // 24 bytes each: five fit in 128, the sixth is refused.
    while batch.append(&[appended; 16]).expect("valid ring") {
        appended += 1;
        assert_eq!(consumer.skip(), Ok(None), "nothing is published before the batch ends");
    }
    assert_eq!((appended, batch.len()), (5, 5));
    drop(batch);
    let mut read = [0; 16];
    for value in 0..5 {
        assert_eq!(consumer.read(&mut read), Ok(Some(16)));
        assert_eq!(read, [value; 16]);
    }
    // An empty batch publishes nothing, and the ring is empty again.
    producer.batch().publish();
    assert_eq!((producer.is_empty(), consumer.read(&mut read)), (Ok(true), Ok(None)));
}

#[test]
#[should_panic(expected = "out of a grant")]
fn a_copy_beyond_the_grant_panics() {
    let mut buffer = ring(256);
    let mut producer = producer_of(&mut buffer);
    let mut grant = producer.reserve(8).expect("valid ring").expect("room");
    grant.copy_from_slice(4, &[0; 5]);
}

#[test]
fn roles_are_single_and_can_be_taken_over() {
    let mut buffer = ring(256);
    let (ptr, len) = buffer.range();
    let first = producer_of(&mut buffer);
    // SAFETY: the buffer outlives every handle here.
    unsafe {
        assert_eq!(
            ByteProducer::attach(ptr, len, TWO).map(drop),
            Err(Error::RoleTaken { what: "byte ring", role: "producer", owner: 1 })
        );
        assert!(matches!(
            ByteProducer::take_over(ptr, len, TWO, TWO),
            Err(Error::TakeOver { owner: 1, expected: 2, .. })
        ));
        // The holder "died": forget its handle, take over, and carry on from its position.
        let mut first = first;
        assert_eq!(first.append(b"before"), Ok(true));
        std::mem::forget(first);
        let mut second = ByteProducer::take_over(ptr, len, ONE, TWO).expect("take over");
        assert_eq!(second.owner(), TWO);
        assert_eq!(second.append(b"after"), Ok(true));
        let mut consumer = ByteConsumer::attach(ptr, len, ONE).expect("consumer");
        let mut read = [0; 16];
        assert_eq!(consumer.read(&mut read), Ok(Some(6)));
        assert_eq!(consumer.read(&mut read), Ok(Some(5)));
        assert_eq!(&read[..5], b"after");
        drop(second);
        ByteProducer::attach(ptr, len, ONE).expect("released on drop");
        assert_eq!(
            ByteConsumer::attach(ptr, len, TWO).map(drop),
            Err(Error::RoleTaken { what: "byte ring", role: "consumer", owner: 1 })
        );
    }
}

#[test]
fn placement_and_header_are_checked() {
    assert!(matches!(ByteRing::bytes_for(1000), Err(Error::InvalidInput { .. })));
    let mut buffer = HeapBuffer::new(ByteRing::bytes_for(256).expect("layout") + 128);
    let (ptr, len) = buffer.range();
    // SAFETY: the buffer outlives every handle here.
    unsafe {
        assert!(matches!(ByteRing::init(ptr.add(8), len - 8, 256), Err(Error::Placement { .. })));
        assert!(matches!(ByteRing::init(ptr, 600, 256), Err(Error::Placement { .. })));
        assert_eq!(
            ByteConsumer::attach(ptr, len, ONE).map(drop),
            Err(Error::NotPublished { what: "byte ring" })
        );
        ByteRing::init(ptr, len, 256).expect("init");
        assert!(matches!(ByteConsumer::attach(ptr, 700, ONE), Err(Error::Corrupted { .. })));
        buffer.word(0).fetch_xor(1, Ordering::Relaxed);
        assert!(matches!(
            ByteConsumer::attach(ptr, len, ONE),
            Err(Error::Corrupted { field: "magic", .. })
        ));
        buffer.word(0).fetch_xor(1, Ordering::Relaxed);
        // The capacity is the second word after magic, version and kind.
        buffer.word(16).store(512, Ordering::Relaxed);
        assert!(matches!(
            ByteConsumer::attach(ptr, len, ONE),
            Err(Error::Corrupted { field: "total size", .. })
        ));
        buffer.word(16).store(255, Ordering::Relaxed);
        assert!(matches!(
            ByteConsumer::attach(ptr, len, ONE),
            Err(Error::Corrupted { field: "capacity", .. })
        ));
    }
}

#[test]
fn corrupt_positions_and_records_are_refused() {
    let mut buffer = ring(256);
    let (mut producer, mut consumer) = (producer_of(&mut buffer), consumer_of(&mut buffer));
    assert_eq!(producer.append(&[1; 16]), Ok(true));
    assert_eq!(producer.append(&[2; 16]), Ok(true));
    assert_eq!(consumer.read(&mut [0; 64]), Ok(Some(16)));
    // The tail from the peer: ahead of head by more than the capacity, or not a multiple of 8.
    buffer.word(TAIL).store(48 + 256 + 8, Ordering::Relaxed);
    assert_eq!(consumer.read(&mut [0; 64]), Ok(Some(16)), "the cached tail is enough");
    assert!(matches!(
        consumer.read(&mut [0; 64]),
        Err(Error::Corrupted { field: "tail - head", .. })
    ));
    buffer.word(TAIL).store(27, Ordering::Relaxed);
    assert!(matches!(consumer.len(), Err(Error::Corrupted { field: "tail", .. })));
    // The head from the peer: beyond the producer's own tail.
    buffer.word(HEAD).store(64, Ordering::Relaxed);
    assert!(matches!(producer.len(), Err(Error::Corrupted { field: "tail - head", .. })));
    drop((producer, consumer));

    // Header words: a length beyond the maximum, beyond the published bytes, a bad tag, a
    // padding marker that does not reach the end, or reaches it with no record after it.
    let record = |length: u64| u64::from(u32::from_le_bytes(*b"REC1")) << 32 | length;
    let padding = |length: u64| u64::from(u32::from_le_bytes(*b"PAD1")) << 32 | length;
    for (word, field) in [
        (record(121), "record length"),
        (record(24), "record length"),
        (0x1234_5678_0000_0010, "record header"),
        (padding(8), "padding length"),
        (padding(248), "padding"),
    ] {
        let mut buffer = ring(256);
        let (mut producer, mut consumer) = (producer_of(&mut buffer), consumer_of(&mut buffer));
        assert_eq!(producer.append(&[1; 16]), Ok(true));
        buffer.word(DATA).store(word, Ordering::Relaxed);
        let result = consumer.peek().map(|grant| grant.map(|grant| grant.len()));
        assert!(
            matches!(result, Err(Error::Corrupted { field: found, .. }) if found == field),
            "{word:#x}: {result:?}"
        );
    }

    // A record that would cross the end of the data area: head at 240 of 256, where the
    // producer put a padding marker, replaced by a 16-byte record (24 bytes, 16 to the end).
    let mut buffer = ring(256);
    let (mut producer, mut consumer) = (producer_of(&mut buffer), consumer_of(&mut buffer));
    for _ in 0..5 {
        assert_eq!(producer.append(&[3; 40]), Ok(true));
        assert_eq!(consumer.skip(), Ok(Some(40)));
    }
    assert_eq!(producer.append(&[4; 16]), Ok(true));
    buffer.word(DATA + 240).store(record(16), Ordering::Relaxed);
    assert!(matches!(consumer.skip(), Err(Error::Corrupted { field: "record length", .. })));
}

#[test]
fn blocking_calls_move_records_between_threads() {
    let mut buffer = ring(256);
    let (mut producer, mut consumer) = (producer_of(&mut buffer), consumer_of(&mut buffer));
    let strategy = SpinFutex { spins: 4 };
    std::thread::scope(|scope| {
        scope.spawn(move || {
            let mut record = [0; 100];
            for index in 0..20_000_u64 {
                let length = index as usize % 101;
                fill_record(index, &mut record[..length]);
                if index % 2 == 0 {
                    producer.append_blocking(&record[..length], &strategy, HANG_GUARD)
                } else {
                    producer.reserve_blocking(length, &strategy, HANG_GUARD).map(|mut grant| {
                        grant.copy_from_slice(0, &record[..length]);
                        grant.commit(length);
                    })
                }
                .expect("append");
            }
        });
        let mut read = [0; 100];
        for index in 0..20_000_u64 {
            let length = if index % 2 == 0 {
                consumer.read_blocking(&mut read, &strategy, HANG_GUARD).expect("read")
            } else {
                let grant = consumer.peek_blocking(&strategy, HANG_GUARD).expect("peek");
                grant.copy_to(&mut read);
                let length = grant.len();
                grant.release();
                length
            };
            assert_eq!(length, index as usize % 101);
            check_record(index, &read[..length]);
        }
    });
    assert_eq!(
        consumer.read_blocking(&mut [0; 8], &strategy, Some(Duration::from_millis(10))),
        Err(Error::TimedOut { what: "byte ring" })
    );
}

// --- Real processes --------------------------------------------------------------------------

const NAME_ENV: &str = "SHMKIT_TEST_NAME";
const COUNT_ENV: &str = "SHMKIT_TEST_COUNT";

/// Records moved between the processes.
const RECORDS: u64 = 10_000_000;
/// The ring's capacity: 1 MiB, records up to 512 KiB - 8 (the test draws up to 4 KiB).
const CAPACITY: usize = 1 << 20;
/// The longest record the test draws.
const MAX_DRAWN: usize = 4096;

fn map(name: &Name) -> Mapping {
    Region::open(name, None, Access::ReadWrite)
        .and_then(|region| region.map(&MapOptions::new()))
        .expect("map the test region")
}

fn base(mapping: &Mapping) -> NonNull<u8> {
    NonNull::new(mapping.as_ptr()).expect("a mapping is never null")
}

/// The child's side of the multi-process tests; a plain run (no role) does nothing here.
#[test]
fn child_process_entry() {
    let Some(role) = child_role() else { return };
    let name = Name::new(&child_env(NAME_ENV)).expect("valid name");
    let count: u64 = child_env(COUNT_ENV).parse().expect("count");
    let mapping = map(&name);
    match role.as_str() {
        // Appends `count` records drawn from the shared generator, half by copy, half in place.
        "producer" => {
            // SAFETY: the mapping outlives the handle; the region holds the parent's ring.
            let mut producer =
                unsafe { ByteProducer::attach_current_process(base(&mapping), mapping.len()) }
                    .expect("producer");
            let strategy = SpinFutex::default();
            let mut rng = Rng(0x5EED);
            let mut record = vec![0; MAX_DRAWN];
            for index in 0..count {
                let length = record_length(&mut rng, MAX_DRAWN);
                if index % 2 == 0 {
                    fill_record(index, &mut record[..length]);
                    producer.append_blocking(&record[..length], &strategy, HANG_GUARD)
                } else {
                    producer.reserve_blocking(length, &strategy, HANG_GUARD).map(|mut grant| {
                        // Filled in place, one byte at a time, through the raw pointer.
                        let ptr = grant.as_mut_ptr();
                        for offset in 0..length {
                            // SAFETY: `length` writable bytes (the grant's contract).
                            unsafe { ptr.add(offset).write(record_byte(index, offset)) };
                        }
                        grant.commit(length);
                    })
                }
                .expect("append");
            }
            tell_parent("appended");
        }
        // Appends `count` small records and exits without detaching, as if killed.
        "abandon" => {
            // SAFETY: as above.
            let mut producer =
                unsafe { ByteProducer::attach_current_process(base(&mapping), mapping.len()) }
                    .expect("producer");
            for index in 0..count {
                let mut record = [0; 8];
                fill_record(index, &mut record);
                assert_eq!(producer.append(&record), Ok(true));
            }
            std::mem::forget(producer);
            tell_parent("abandoned");
        }
        other => panic!("unknown child role {other}"),
    }
}

/// A region named uniquely, holding a fresh ring, removed on drop.
fn shared_ring(tag: &str) -> (Name, RegionGuard, Mapping) {
    let name = unique_name(tag);
    let guard = RegionGuard(name);
    let len = ByteRing::bytes_for(CAPACITY).expect("layout");
    RegionOptions::new().create(&name, len.div_ceil(4096) as u64).expect("create the region");
    let mapping = map(&name);
    // SAFETY: the mapping outlives the ring's handles in this process; the child attaches only
    // after this returns.
    unsafe { ByteRing::init(base(&mapping), mapping.len(), CAPACITY) }.expect("init");
    (name, guard, mapping)
}

/// A producer process appends ten million records of random lengths (0 to 4 KiB, drawn from a
/// generator both processes share, contents derived from the record's number); this process
/// reads them, half by copy and half in place, and checks every length, byte and the order.
#[test]
fn ten_million_records_between_processes() {
    let (name, _guard, mapping) = shared_ring("ring-bytes");
    let env = [(NAME_ENV, name.as_str().to_owned()), (COUNT_ENV, RECORDS.to_string())];
    let child = ChildProcess::spawn("child_process_entry", "producer", &env);
    // SAFETY: the mapping outlives the handle.
    let mut consumer =
        unsafe { ByteConsumer::attach_current_process(base(&mapping), mapping.len()) }
            .expect("consumer");
    let strategy = SpinFutex::default();
    let mut rng = Rng(0x5EED);
    let mut read = vec![0; MAX_DRAWN];
    let mut bytes = 0_u64;
    for index in 0..RECORDS {
        let expected = record_length(&mut rng, MAX_DRAWN);
        let length = if index % 2 == 0 {
            consumer.read_blocking(&mut read, &strategy, HANG_GUARD).expect("read")
        } else {
            let grant = consumer.peek_blocking(&strategy, HANG_GUARD).expect("peek");
            let length = grant.len();
            // SAFETY: the producer is a shmkit producer (the child), which never writes a
            // record before its release.
            check_record(index, unsafe { grant.as_slice() });
            grant.release();
            length
        };
        assert_eq!(length, expected, "record {index}");
        if index % 2 == 0 {
            check_record(index, &read[..length]);
        }
        bytes += length as u64;
    }
    let mut child = child;
    child.expect("appended");
    child.finish();
    assert_eq!(consumer.is_empty(), Ok(true));
    eprintln!("moved {RECORDS} records, {bytes} payload bytes, between two processes");
}

/// A producer process appends and dies without detaching; this process takes the role over
/// (the recorded pid is gone) and appends more; every record arrives in order.
#[test]
fn a_dead_producer_is_taken_over() {
    let (name, _guard, mapping) = shared_ring("ring-bytes-dead");
    let env = [(NAME_ENV, name.as_str().to_owned()), (COUNT_ENV, "3".to_owned())];
    let mut child = ChildProcess::spawn("child_process_entry", "abandon", &env);
    child.expect("abandoned");
    let pid = child.pid();
    child.finish();
    let (ptr, len) = (base(&mapping), mapping.len());
    // SAFETY: the mapping outlives the handles.
    unsafe {
        assert_eq!(
            ByteProducer::attach_current_process(ptr, len).map(drop),
            Err(Error::RoleTaken { what: "byte ring", role: "producer", owner: pid })
        );
        let mut producer = ByteProducer::take_over_if_dead(ptr, len).expect("take over");
        let mut record = [0; 8];
        fill_record(3, &mut record);
        assert_eq!(producer.append(&record), Ok(true));
        let mut consumer = ByteConsumer::attach_current_process(ptr, len).expect("consumer");
        for index in 0..4 {
            assert_eq!(consumer.read(&mut record), Ok(Some(8)));
            check_record(index, &record);
        }
        assert_eq!(consumer.read(&mut record), Ok(None));
    }
}
