//! Loom models of the `shmkit-ring` primitives: every interleaving (with a bounded number of
//! preemptions) of small scenarios, with loom's atomics swapped in through `src/primitive.rs`.
//!
//! Run with `cargo xtask loom` (or `RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=2 cargo test
//! --release -p shmkit-ring --test loom --all-features`). Under loom the "shared memory" is a heap
//! buffer; the primitives build loom's atomics (and, for ring slots, loom's checked cells, so a
//! slot read racing its write fails the model) in place in it.
#![cfg(loom)]

use std::num::NonZeroU32;
use std::ptr::NonNull;

/// A 128-byte aligned zero-filled heap buffer standing in for a shared mapping.
#[derive(Debug)]
struct Buffer(Vec<Block>);

#[repr(C, align(128))]
#[derive(Clone, Copy, Debug)]
struct Block([u8; 128]);

impl Buffer {
    fn new(len: usize) -> Self {
        Self(vec![Block([0; 128]); len.div_ceil(128)])
    }

    /// The start and length.
    fn range(&mut self) -> (NonNull<u8>, usize) {
        let ptr = NonNull::new(self.0.as_mut_ptr().cast::<u8>()).expect("a vector is never null");
        (ptr, self.0.len() * 128)
    }
}

const ONE: NonZeroU32 = NonZeroU32::MIN;
const TWO: NonZeroU32 = NonZeroU32::new(2).expect("non-zero");

mod spsc_models {
    use loom::thread;
    use shmkit_ring::spsc::{Consumer, Producer, SpscRing};

    use super::{Buffer, ONE, TWO};

    /// A ring of `capacity` u64s with both handles attached; the buffer must outlive them.
    fn ring(capacity: usize) -> (Buffer, Producer<'static, u64>, Consumer<'static, u64>) {
        let mut buffer = Buffer::new(SpscRing::<u64>::bytes_for(capacity).expect("layout"));
        let (ptr, len) = buffer.range();
        // SAFETY: the buffer outlives the handles (each model joins its threads before dropping
        // it) and is used only through the ring.
        unsafe {
            SpscRing::<u64>::init(ptr, len, capacity).expect("init");
            let producer = Producer::attach(ptr, len, ONE).expect("producer");
            let consumer = Consumer::attach(ptr, len, TWO).expect("consumer");
            (buffer, producer, consumer)
        }
    }

    /// Pops `count` values, yielding while the ring is empty; checks they come in order from
    /// `first`.
    fn pop_in_order(consumer: &mut Consumer<'static, u64>, first: u64, count: u64) {
        let mut expected = first;
        while expected < first + count {
            match consumer.pop().expect("valid positions") {
                Some(value) => {
                    assert_eq!(value, expected);
                    expected += 1;
                }
                None => thread::yield_now(),
            }
        }
    }

    /// Capacity 2, three values: the producer finds the ring full, waits for the consumer's head,
    /// and writes over a slot the consumer released (wrap-around); every value arrives in order.
    #[test]
    fn push_pop_wraps_around() {
        loom::model(|| {
            let (buffer, mut producer, mut consumer) = ring(2);
            let writer = thread::spawn(move || {
                for value in 1..=3 {
                    while !producer.push(value).expect("valid positions") {
                        thread::yield_now();
                    }
                }
            });
            pop_in_order(&mut consumer, 1, 3);
            writer.join().expect("producer");
            assert_eq!(consumer.pop(), Ok(None));
            drop(consumer);
            drop(buffer);
        });
    }

    /// Capacity 1, the smallest ring: every push fills it and every pop empties it.
    #[test]
    fn capacity_one_full_and_empty_edges() {
        loom::model(|| {
            let (buffer, mut producer, mut consumer) = ring(1);
            let writer = thread::spawn(move || {
                for value in 1..=2 {
                    while !producer.push(value).expect("valid positions") {
                        thread::yield_now();
                    }
                }
                // Full again after the consumer took nothing more: a third push is refused or
                // lands, depending on the interleaving, never overwrites an unread value.
                producer.push(3).expect("valid positions")
            });
            pop_in_order(&mut consumer, 1, 2);
            let third_pushed = writer.join().expect("producer");
            assert_eq!(consumer.pop(), Ok(third_pushed.then_some(3)));
            drop(consumer);
            drop(buffer);
        });
    }

    /// Two attachments race for the producer role: exactly one wins, the other is told who holds
    /// it; once the winner detaches, the role is free again.
    #[test]
    fn one_producer_wins_the_role() {
        loom::model(|| {
            let mut buffer = Buffer::new(SpscRing::<u64>::bytes_for(2).expect("layout"));
            let (ptr, len) = buffer.range();
            // SAFETY: the buffer outlives the handles (the thread is joined before it is dropped).
            unsafe { SpscRing::<u64>::init(ptr, len, 2).expect("init") };
            let addr = ptr.as_ptr().expose_provenance();
            let rival = thread::spawn(move || {
                let ptr = std::ptr::with_exposed_provenance_mut::<u8>(addr);
                let ptr = std::ptr::NonNull::new(ptr).expect("non-null");
                // SAFETY: as above. The handle, if any, is returned: held until after `mine`.
                unsafe { Producer::<u64>::attach(ptr, len, TWO) }
            });
            // SAFETY: as above.
            let mine = unsafe { Producer::<u64>::attach(ptr, len, ONE) };
            let theirs = rival.join().expect("rival");
            match (&mine, &theirs) {
                (Ok(_), Err(shmkit_ring::Error::RoleTaken { owner: 1, .. }))
                | (Err(shmkit_ring::Error::RoleTaken { owner: 2, .. }), Ok(_)) => {}
                other => panic!("both or neither won: {:?}", (other.0.is_ok(), other.1.is_ok())),
            }
            drop(theirs);
            drop(mine);
            // SAFETY: as above.
            let again = unsafe { Producer::<u64>::attach(ptr, len, ONE) };
            assert!(again.is_ok(), "the role is free once both are gone");
            drop(again);
            drop(buffer);
        });
    }

    /// The producer pushed 1 and 2 and is gone (its handle forgotten, the role still held); a
    /// successor takes the role over, which re-stamps the unread slots, and pushes 3 while the
    /// consumer pops: the re-stamping never shows the consumer a value twice or out of order.
    #[test]
    fn a_take_over_restamps_under_a_reading_consumer() {
        loom::model(|| {
            let (mut buffer, mut producer, mut consumer) = ring(4);
            assert_eq!((producer.push(1), producer.push(2)), (Ok(true), Ok(true)));
            std::mem::forget(producer);
            let (ptr, len) = buffer.range();
            let addr = ptr.as_ptr().expose_provenance();
            let successor = thread::spawn(move || {
                let ptr = std::ptr::with_exposed_provenance_mut::<u8>(addr);
                let ptr = std::ptr::NonNull::new(ptr).expect("non-null");
                // SAFETY: the buffer outlives the handle (the thread is joined before it is
                // dropped) and is used only through the ring.
                let mut producer =
                    unsafe { Producer::<u64>::take_over(ptr, len, ONE, TWO) }.expect("take over");
                assert_eq!(producer.push(3), Ok(true), "room: capacity 4, at most 2 unread");
            });
            pop_in_order(&mut consumer, 1, 3);
            successor.join().expect("successor");
            assert_eq!(consumer.pop(), Ok(None));
            drop(consumer);
            drop(buffer);
        });
    }

    /// Capacity 4, positions at 3 before the model: a chunk of 3 wraps around the end of the
    /// slots; the consumer reads chunks and commits part of them.
    #[test]
    fn chunk_commit_across_the_wrap() {
        loom::model(|| {
            let (buffer, mut producer, mut consumer) = ring(4);
            for value in 0..3 {
                assert_eq!(producer.push(value), Ok(true));
                assert_eq!(consumer.pop(), Ok(Some(value)));
            }
            let writer = thread::spawn(move || {
                let mut chunk = producer.write_chunk(3).expect("valid positions");
                assert_eq!(chunk.len(), 3, "the consumer released everything before");
                chunk.copy_from_slice(&[10, 11, 12]);
                chunk.commit(2);
                // The third slot is published by a second, single-slot chunk.
                let mut chunk = producer.write_chunk(1).expect("valid positions");
                chunk.set(0, 12);
                chunk.commit_all();
            });
            let mut expected = 10;
            while expected < 13 {
                let chunk = consumer.read_chunk(2).expect("valid positions");
                if chunk.is_empty() {
                    drop(chunk);
                    thread::yield_now();
                    continue;
                }
                assert_eq!(chunk.get(0), expected);
                // Commit only the first value: the rest is read again next time.
                chunk.commit(1);
                expected += 1;
            }
            writer.join().expect("producer");
            drop(consumer);
            drop(buffer);
        });
    }
}

mod seqlock_models {
    use loom::thread;
    use shmkit_ring::seqlock::{Reader, SeqLock, Writer};

    use super::{Buffer, ONE};

    /// Two writes of a two-word value whose words are always equal, against a reader: a read that
    /// overlaps a write is refused (`None`), never torn, and versions never go back.
    #[test]
    fn a_torn_read_is_detected() {
        loom::model(|| {
            let mut buffer = Buffer::new(SeqLock::<[u64; 2]>::bytes_for());
            let (ptr, len) = buffer.range();
            // SAFETY: the buffer outlives the handles (the writer thread is joined first).
            let (mut writer, reader) = unsafe {
                SeqLock::init(ptr, len, &[0_u64; 2]).expect("init");
                let writer = Writer::<[u64; 2]>::attach(ptr, len, ONE).expect("writer");
                (writer, Reader::<[u64; 2]>::open(ptr, len).expect("reader"))
            };
            let handle = thread::spawn(move || {
                writer.write(&[1, 1]);
                writer.update(|value| *value = [value[0] + 1, value[1] + 1]);
            });
            let mut last = 0;
            for _ in 0..2 {
                if let Some([first, second]) = reader.read_once() {
                    assert_eq!(first, second, "torn read returned");
                    assert!(first >= last, "went back from {last} to {first}");
                    last = first;
                }
            }
            handle.join().expect("writer");
            assert_eq!(reader.read_once(), Some([2, 2]));
            drop(reader);
            drop(buffer);
        });
    }
}

mod bytes_models {
    use loom::thread;
    use shmkit_ring::bytes::{ByteConsumer, ByteProducer, ByteRing};

    use super::{Buffer, ONE, TWO};

    /// A byte ring of `capacity` bytes with both handles attached; the buffer must outlive them.
    fn ring(capacity: usize) -> (Buffer, ByteProducer<'static>, ByteConsumer<'static>) {
        let mut buffer = Buffer::new(ByteRing::bytes_for(capacity).expect("layout"));
        let (ptr, len) = buffer.range();
        // SAFETY: the buffer outlives the handles (each model joins its threads before dropping
        // it) and is used only through the ring.
        unsafe {
            ByteRing::init(ptr, len, capacity).expect("init");
            let producer = ByteProducer::attach(ptr, len, ONE).expect("producer");
            let consumer = ByteConsumer::attach(ptr, len, TWO).expect("consumer");
            (buffer, producer, consumer)
        }
    }

    /// Reads records of the given lengths, yielding while the ring is empty; record `i` must be
    /// `lengths[i]` bytes of `first + i`.
    fn read_in_order(consumer: &mut ByteConsumer<'static>, first: u8, lengths: &[usize]) {
        let mut buffer = [0_u8; 16];
        for (index, &length) in lengths.iter().enumerate() {
            let read = loop {
                match consumer.read(&mut buffer).expect("valid ring") {
                    Some(read) => break read,
                    None => thread::yield_now(),
                }
            };
            assert_eq!(read, length, "record {index}");
            let value = first + index as u8;
            assert!(buffer[..read].iter().all(|&byte| byte == value), "record {index} content");
        }
    }

    /// 64 bytes (records up to 24 bytes): three records of 16 bytes take 24 bytes each, so the
    /// third does not fit before the end: the producer waits for the consumer to free the start,
    /// writes a padding marker and the record at offset 0; a fourth (8 bytes) follows. The
    /// consumer skips the padding and reads every record whole and in order. Loom's cells check
    /// that no byte of a record is read while it is written.
    #[test]
    fn append_read_wraps_with_padding() {
        loom::model(|| {
            let (buffer, mut producer, mut consumer) = ring(64);
            let lengths = [16, 16, 16, 8];
            let writer = thread::spawn(move || {
                for (index, length) in lengths.into_iter().enumerate() {
                    let record = [index as u8 + 1; 16];
                    while !producer.append(&record[..length]).expect("valid ring") {
                        thread::yield_now();
                    }
                }
                producer
            });
            read_in_order(&mut consumer, 1, &lengths);
            let producer = writer.join().expect("producer");
            assert_eq!(consumer.read(&mut [0; 16]), Ok(None));
            assert_eq!(producer.len(), Ok(0));
            drop((producer, consumer));
            drop(buffer);
        });
    }

    /// Positions at 48 of 64 before the model: a reserved record of up to 16 bytes wraps (padding
    /// marker, record at 0), is written in place in two pieces and committed shorter
    /// (5 bytes); a second grant is dropped without a commit (nothing published), a third
    /// committed. The consumer peeks, copies and releases.
    #[test]
    fn reserve_commit_across_the_wrap() {
        loom::model(|| {
            let (buffer, mut producer, mut consumer) = ring(64);
            for _ in 0..2 {
                assert_eq!(producer.append(&[0; 16]), Ok(true));
                assert_eq!(consumer.skip(), Ok(Some(16)));
            }
            let writer = thread::spawn(move || {
                let mut grant = producer.reserve(16).expect("valid ring").expect("empty ring");
                grant.copy_from_slice(0, &[7, 7]);
                grant.copy_from_slice(2, &[7, 7, 7]);
                grant.commit(5);
                drop(producer.reserve(8).expect("valid ring"));
                loop {
                    if let Some(mut grant) = producer.reserve(3).expect("valid ring") {
                        grant.copy_from_slice(0, &[8, 8, 8]);
                        grant.commit(3);
                        break;
                    }
                    thread::yield_now();
                }
                producer
            });
            for (value, length) in [(7_u8, 5), (8, 3)] {
                loop {
                    let Some(grant) = consumer.peek().expect("valid ring") else {
                        thread::yield_now();
                        continue;
                    };
                    assert_eq!(grant.len(), length);
                    let mut copy = [0; 16];
                    grant.copy_to(&mut copy);
                    assert!(copy[..length].iter().all(|&byte| byte == value));
                    grant.release();
                    break;
                }
            }
            let producer = writer.join().expect("producer");
            assert_eq!(consumer.peek().map(|grant| grant.is_some()), Ok(false));
            drop((producer, consumer));
            drop(buffer);
        });
    }
}

mod broadcast_models {
    use loom::thread;
    use shmkit_ring::broadcast::{
        Broadcast, BroadcastConsumer, BroadcastProducer, Flow, Received, Start,
    };

    use super::{Buffer, ONE, TWO};

    type Message = [u64; 2];

    /// A broadcast ring of `capacity` two-word messages and its producer.
    fn ring(capacity: usize, flow: Flow) -> (Buffer, BroadcastProducer<'static, Message>) {
        let mut buffer =
            Buffer::new(Broadcast::<Message>::bytes_for(capacity, flow).expect("layout"));
        let (ptr, len) = buffer.range();
        // SAFETY: the buffer outlives the handles (each model joins its threads before dropping
        // it) and is used only through the ring.
        unsafe {
            Broadcast::<Message>::init(ptr, len, capacity, flow).expect("init");
            (buffer, BroadcastProducer::attach(ptr, len, ONE).expect("producer"))
        }
    }

    fn attach(buffer: &mut Buffer, start: Start) -> BroadcastConsumer<'static, Message> {
        let (ptr, len) = buffer.range();
        // SAFETY: as in `ring`.
        unsafe { BroadcastConsumer::attach(ptr, len, start) }.expect("consumer")
    }

    /// Publishes messages `first..first + count`, message `n` as `[n + 1, n + 1]`, waiting (by
    /// yielding) while credit says so.
    fn publish(producer: &mut BroadcastProducer<'static, Message>, count: u64) {
        for _ in 0..count {
            let n = producer.position();
            while !producer.try_publish(&[n + 1, n + 1]).expect("valid ring") {
                thread::yield_now();
            }
        }
    }

    /// Receives until the consumer's position reaches `end`; checks that every message is whole
    /// (both words equal), is the message numbered by the position it was read at, and returns
    /// (received, lost).
    fn receive_until(consumer: &mut BroadcastConsumer<'static, Message>, end: u64) -> (u64, u64) {
        let (mut received, mut lost) = (0, 0);
        while consumer.position() < end {
            let position = consumer.position();
            match consumer.try_recv().expect("valid ring") {
                Received::Message([first, second]) => {
                    assert_eq!(first, second, "a torn message was returned");
                    assert_eq!(first, position + 1, "message out of order");
                    received += 1;
                }
                Received::Lapped { lost: count } => {
                    assert!(count >= 1);
                    lost += count;
                }
                Received::Empty => thread::yield_now(),
            }
        }
        (received, lost)
    }

    /// Two slots, four messages from a producer that never waits, against a consumer that
    /// polls: the consumer is lapped while polling or while copying (the producer overwrites
    /// the slot it reads), never returns a torn or out-of-order message, and accounts for every
    /// message exactly: received + lost == 4.
    #[test]
    fn overrun_is_detected_and_counted_exactly() {
        loom::model(|| {
            let (mut buffer, mut producer) = ring(2, Flow::Lossy);
            let mut consumer = attach(&mut buffer, Start::Newest);
            let writer = thread::spawn(move || {
                publish(&mut producer, 4);
                producer
            });
            let (received, lost) = receive_until(&mut consumer, 4);
            assert_eq!(received + lost, 4);
            assert_eq!(consumer.lost(), lost);
            assert!(received >= 1, "the last message is never lost");
            let producer = writer.join().expect("producer");
            drop((producer, consumer));
            drop(buffer);
        });
    }

    /// Credit flow control, one slot for a registered consumer, two ring slots, three messages:
    /// the producer waits for the consumer's position instead of overwriting, so nothing is lost.
    #[test]
    fn credit_never_overwrites_an_unread_message() {
        loom::model(|| {
            let (mut buffer, mut producer) = ring(2, Flow::Credit { consumers: 1 });
            let (ptr, len) = buffer.range();
            // SAFETY: as in `ring`.
            let mut consumer =
                unsafe { BroadcastConsumer::<Message>::attach_credit(ptr, len, TWO) }
                    .expect("credit consumer");
            let writer = thread::spawn(move || {
                publish(&mut producer, 3);
                producer
            });
            assert_eq!(receive_until(&mut consumer, 3), (3, 0));
            let producer = writer.join().expect("producer");
            drop((producer, consumer));
            drop(buffer);
        });
    }

    /// A consumer registers for credit while the producer (one ring slot, credit mode) is
    /// publishing: whatever position registration gives it, the producer never overwrites a
    /// message at or after that position before the consumer read it.
    #[test]
    fn credit_registration_races_the_producer() {
        loom::model(|| {
            let (mut buffer, mut producer) = ring(1, Flow::Credit { consumers: 1 });
            let (ptr, len) = (buffer.range().0.as_ptr() as usize, buffer.range().1);
            let reader = thread::spawn(move || {
                let ptr = std::ptr::NonNull::new(ptr as *mut u8).expect("non-null");
                // SAFETY: as in `ring` (the thread is joined before the buffer is dropped).
                let mut consumer =
                    unsafe { BroadcastConsumer::<Message>::attach_credit(ptr, len, TWO) }
                        .expect("credit consumer");
                let start = consumer.position();
                let (received, lost) = receive_until(&mut consumer, 2);
                assert_eq!((received, lost), (2 - start.min(2), 0));
            });
            publish(&mut producer, 2);
            reader.join().expect("consumer");
            drop(producer);
            drop(buffer);
        });
    }
}
