//! loom models of the SPSC ring that need its internals (`cargo xtask loom` runs them with the
//! crate's library tests): a producer that dies between storing `tail` and its stamp, which only
//! a write to the shared lines can stage, and the next lap written into the block being read.

extern crate std;

use core::num::NonZeroU32;
use core::ptr::NonNull;
use std::vec::Vec;

use loom::thread;

use super::*;

#[repr(C, align(128))]
#[derive(Clone, Copy)]
struct Block([u8; 128]);

const ONE: NonZeroU32 = NonZeroU32::MIN;
const TWO: NonZeroU32 = NonZeroU32::new(2).expect("non-zero");
const THREE: NonZeroU32 = NonZeroU32::new(3).expect("non-zero");

/// A fresh ring of `capacity` u64s in `memory`, with both handles attached.
fn ring(
    memory: &mut Vec<Block>,
    capacity: usize,
) -> (NonNull<u8>, usize, Producer<'static, u64>, Consumer<'static, u64>) {
    let len = SpscRing::<u64>::bytes_for(capacity).expect("layout");
    *memory = std::vec![Block([0; 128]); len.div_ceil(128)];
    let ptr = NonNull::new(memory.as_mut_ptr().cast::<u8>()).expect("non-null");
    // SAFETY: `memory` outlives the handles (each model drops them, and joins its threads, before
    // it) and is used only through the ring.
    unsafe {
        SpscRing::<u64>::init(ptr, len, capacity).expect("init");
        let producer = Producer::attach(ptr, len, ONE).expect("producer");
        let consumer = Consumer::attach(ptr, len, TWO).expect("consumer");
        (ptr, len, producer, consumer)
    }
}

/// The shared lines of the ring at `ptr`.
fn shared(ptr: NonNull<u8>) -> &'static Shared {
    // SAFETY: a ring lives there (`ring`), for as long as the model uses it; all atomics.
    unsafe { ptr.cast::<Shared>().as_ref() }
}

/// The ring at an address carried into another thread.
fn at(addr: usize) -> NonNull<u8> {
    NonNull::new(core::ptr::with_exposed_provenance_mut::<u8>(addr)).expect("non-null")
}

/// The next `count` values `pop` gives, yielding while the ring is empty.
fn take(consumer: &mut Consumer<'static, u64>, count: usize) -> Vec<u64> {
    let mut values = Vec::with_capacity(count);
    while values.len() < count {
        match consumer.pop().expect("valid positions") {
            Some(value) => values.push(value),
            None => thread::yield_now(),
        }
    }
    values
}

/// Moves both positions to `before` (each value pushed and popped at once).
fn move_to(
    producer: &mut Producer<'static, u64>,
    consumer: &mut Consumer<'static, u64>,
    before: u64,
) {
    for value in 0..before {
        assert_eq!((producer.push(value), consumer.pop()), (Ok(true), Ok(Some(value))));
    }
}

/// After `before` values, the producer publishes one value, writes a run of `n`, stores `tail`
/// and dies before the stamp; a successor takes over (re-stamping) and pushes one more while the
/// consumer pops: every value, in order, with `pop` alone.
fn died_between_tail_and_stamp(capacity: usize, before: u64, n: usize) {
    loom::model(move || {
        let mut memory = Vec::new();
        let (ptr, len, mut producer, mut consumer) = ring(&mut memory, capacity);
        let addr = ptr.as_ptr().expose_provenance();
        move_to(&mut producer, &mut consumer, before);
        assert_eq!(producer.push(100), Ok(true));
        producer.write_chunk(n).expect("chunk").fill_with(|index| 101 + index as u64);
        shared(ptr).producer.tail.store(before + 1 + n as u64, Ordering::Release);
        core::mem::forget(producer);
        let successor = thread::spawn(move || {
            // SAFETY: as in `ring`; the dead producer's role is taken over, not shared.
            let mut producer = unsafe { Producer::<u64>::take_over(at(addr), len, ONE, THREE) }
                .expect("take over");
            assert_eq!(producer.push(101 + n as u64), Ok(true));
        });
        assert_eq!(take(&mut consumer, 2 + n), (100..102 + n as u64).collect::<Vec<_>>());
        successor.join().expect("successor");
        assert_eq!(consumer.pop(), Ok(None));
        drop(consumer);
        drop(memory);
    });
}

#[test]
fn died_with_a_run_in_the_heads_block() {
    died_between_tail_and_stamp(4, 0, 1);
}

#[test]
fn died_with_a_run_across_blocks_and_the_wrap() {
    died_between_tail_and_stamp(4, 2, 2);
}

/// A full ring: the producer writes the next lap, in chunks, into the block the consumer is still
/// reading, so the consumer meets stamps of the lap before and of the runs before in that block.
#[test]
fn the_next_lap_is_written_into_the_block_being_read() {
    loom::model(|| {
        let mut memory = Vec::new();
        let (_, _, mut producer, mut consumer) = ring(&mut memory, 4);
        let mut chunk = producer.write_chunk(3).expect("chunk");
        chunk.fill_with(|index| index as u64);
        chunk.commit_all();
        assert_eq!(producer.push(3), Ok(true));
        let writer = thread::spawn(move || {
            let mut next = 4;
            while next < 7 {
                let mut chunk = producer.write_chunk(2).expect("chunk");
                let count = chunk.len().min(7 - next as usize);
                if count == 0 {
                    thread::yield_now();
                    continue;
                }
                let first = next;
                chunk.fill_with(|index| first + index as u64);
                chunk.commit(count);
                next += count as u64;
            }
        });
        let mut expected = 0;
        while expected < 7 {
            let chunk = consumer.read_chunk(1).expect("chunk");
            if chunk.is_empty() {
                thread::yield_now();
                continue;
            }
            assert_eq!(chunk.get(0), expected);
            chunk.commit_all();
            expected += 1;
        }
        writer.join().expect("producer");
        drop(consumer);
        drop(memory);
    });
}

/// As `died_between_tail_and_stamp`, with the dead producer in a thread of its own, which starts
/// the successor once it is gone: only the successor's re-stamping (`Release`) can order the dead
/// one's values before the consumer's reads.
fn died_in_another_thread(capacity: usize, before: u64, n: usize) {
    loom::model(move || {
        let mut memory = Vec::new();
        let (ptr, len, mut producer, mut consumer) = ring(&mut memory, capacity);
        let addr = ptr.as_ptr().expose_provenance();
        move_to(&mut producer, &mut consumer, before);
        let end = before + n as u64;
        let dead = thread::spawn(move || {
            producer.write_chunk(n).expect("chunk").fill_with(|index| 100 + index as u64);
            shared(at(addr)).producer.tail.store(end, Ordering::Release);
            core::mem::forget(producer);
            thread::spawn(move || {
                // SAFETY: as in `ring`; the dead producer's role is taken over, not shared.
                let producer = unsafe { Producer::<u64>::take_over(at(addr), len, ONE, THREE) }
                    .expect("take over");
                core::mem::forget(producer);
            })
        });
        assert_eq!(take(&mut consumer, n), (100..100 + n as u64).collect::<Vec<_>>());
        dead.join().expect("dead producer").join().expect("successor");
        assert_eq!(consumer.pop(), Ok(None));
        drop(consumer);
        drop(memory);
    });
}

#[test]
fn died_in_another_thread_one_value() {
    died_in_another_thread(4, 0, 1);
}

#[test]
fn died_in_another_thread_across_the_wrap() {
    died_in_another_thread(4, 3, 2);
}

/// The dead producer, its successor and the consumer in three threads: the successor's `Acquire`
/// load of `tail` is what orders the dead one's value before its re-stamping. (The successor must
/// not load `tail` before `take_over`: an earlier load would hide a `Relaxed` one there.)
#[test]
fn the_successor_in_a_third_thread_acquires_the_dead_ones_values() {
    let mut builder = loom::model::Builder::new();
    builder.max_branches = 100_000;
    builder.check(|| {
        let mut memory = Vec::new();
        let (ptr, len, mut producer, mut consumer) = ring(&mut memory, 2);
        let addr = ptr.as_ptr().expose_provenance();
        let dead = thread::spawn(move || {
            producer.write_chunk(1).expect("chunk").set(0, 100);
            shared(at(addr)).producer.tail.store(1, Ordering::Release);
            core::mem::forget(producer);
        });
        let successor = thread::spawn(move || {
            // SAFETY: as in `ring`; the dead producer's role is taken over, not shared.
            let producer = unsafe { Producer::<u64>::take_over(at(addr), len, ONE, THREE) }
                .expect("take over");
            core::mem::forget(producer);
        });
        // A bounded number of polls: the successor may have looked before the dead one's `tail`.
        for _ in 0..2 {
            if let Some(value) = consumer.pop().expect("valid positions") {
                assert_eq!(value, 100);
                break;
            }
            thread::yield_now();
        }
        successor.join().expect("successor");
        dead.join().expect("dead producer");
        drop(consumer);
        drop(memory);
    });
}
