//! In-process tests of the SPSC ring: edges of every call, validation, roles, and two threads.

extern crate std;

use std::vec::Vec;

use super::*;
use crate::spsc::{Consumer, Producer};

/// A 128-byte aligned, zero-filled heap buffer standing in for a shared mapping.
pub(crate) struct Buffer(Vec<Block>);

#[repr(C, align(128))]
#[derive(Clone, Copy)]
pub(crate) struct Block([u8; 128]);

impl Buffer {
    pub(crate) fn new(len: usize) -> Self {
        Self(std::vec![Block([0; 128]); len.div_ceil(128)])
    }

    pub(crate) fn ptr(&mut self) -> NonNull<u8> {
        NonNull::new(self.0.as_mut_ptr().cast::<u8>()).expect("a vector is never null")
    }

    pub(crate) fn len(&self) -> usize {
        self.0.len() * 128
    }
}

const ONE: NonZeroU32 = NonZeroU32::MIN;
const TWO: NonZeroU32 = NonZeroU32::new(2).expect("non-zero");

use core::num::NonZeroU32;

fn ring<T: Plain>(capacity: usize) -> (Buffer, NonNull<u8>, usize) {
    let mut buffer = Buffer::new(SpscRing::<T>::bytes_for(capacity).expect("valid"));
    let (ptr, len) = (buffer.ptr(), buffer.len());
    // SAFETY: the buffer outlives every handle of the test and is used only through the ring.
    unsafe { SpscRing::<T>::init(ptr, len, capacity) }.expect("init");
    (buffer, ptr, len)
}

fn shared(ptr: NonNull<u8>) -> &'static Shared {
    // SAFETY: test buffers are aligned and live until the end of the test; all atomics.
    unsafe { ptr.cast::<Shared>().as_ref() }
}

/// The stamp of the block of `position` in a ring of `u64`s of `capacity` at `ptr` (blocks of 64
/// bytes from offset 384, 7 values each).
fn stamp_at(ptr: NonNull<u8>, capacity: u64, position: u64) -> &'static AtomicU64 {
    let block = (position % capacity / 7) as usize;
    // SAFETY: inside the test ring's blocks, 8-aligned, accessed only atomically here.
    unsafe { ptr.add(384 + 64 * block).cast::<AtomicU64>().as_ref() }
}

#[test]
fn bytes_for_refuses_what_cannot_be_laid_out() {
    #[repr(align(128))]
    #[derive(Clone, Copy)]
    struct Wide(#[expect(dead_code, reason = "only its size and alignment matter")] [u8; 128]);
    // SAFETY: any bytes are a `Wide`, it has no padding and no pointers.
    unsafe impl Plain for Wide {}
    assert_eq!(SpscRing::<u8>::bytes_for(1), Ok(384 + 64)); // one block: stamp, 56 values
    assert_eq!(SpscRing::<u64>::bytes_for(8), Ok(384 + 2 * 64)); // 7 values a block
    // Large values: a stamp line, then 7 values, padded to whole lines.
    assert_eq!(SpscRing::<[u8; 100]>::bytes_for(2), Ok(384 + 768));
    assert_eq!(SpscRing::<[u8; 57]>::bytes_for(8), Ok(384 + 2 * 512));
    assert_eq!(SpscRing::<u128>::bytes_for(8), Ok(384 + 3 * 64)); // 16-aligned: 3 a line
    assert_eq!(SpscRing::<Wide>::bytes_for(1), Ok(384 + 128 + 7 * 128));
    assert!(matches!(SpscRing::<u64>::bytes_for(0), Err(Error::InvalidInput { .. })));
    assert!(matches!(SpscRing::<u64>::bytes_for(3), Err(Error::InvalidInput { .. })));
    assert!(matches!(SpscRing::<[u8; 0]>::bytes_for(4), Err(Error::InvalidInput { .. })));
    assert!(matches!(SpscRing::<u64>::bytes_for(1 << 62), Err(Error::InvalidInput { .. })));
}

#[test]
fn init_checks_the_placement() {
    let mut buffer = Buffer::new(1024);
    let ptr = buffer.ptr();
    // SAFETY: inside the buffer.
    unsafe {
        let result =
            SpscRing::<u64>::init(ptr, SpscRing::<u64>::bytes_for(8).expect("layout") - 1, 8);
        assert!(matches!(result, Err(Error::Placement { reason: "too small", .. })));
        let result = SpscRing::<u64>::init(ptr.add(8), 1000, 8);
        assert!(matches!(result, Err(Error::Placement { reason: "misaligned", .. })));
    }
}

#[test]
fn attach_refuses_unpublished_and_foreign_bytes() {
    let mut buffer = Buffer::new(1024);
    let (ptr, len) = (buffer.ptr(), buffer.len());
    // SAFETY: the buffer outlives the handles.
    let result = unsafe { Producer::<u64>::attach(ptr, len, ONE) };
    assert!(matches!(result, Err(Error::NotPublished { .. })));
    // SAFETY: the test buffer outlives every handle and is used only through the primitive.
    unsafe { SpscRing::<u64>::init(ptr, len, 8) }.expect("init");
    // SAFETY: the test buffer outlives every handle and is used only through the primitive.
    let result = unsafe { Consumer::<u32>::attach(ptr, len, ONE) };
    assert!(matches!(result, Err(Error::Corrupted { field: "element size", .. })));
    // SAFETY: the test buffer outlives every handle and is used only through the primitive.
    let result = unsafe { Consumer::<u64>::attach(ptr, 256, ONE) };
    assert!(matches!(result, Err(Error::Placement { .. })));
    // SAFETY: the test buffer outlives every handle and is used only through the primitive.
    let result = unsafe { Consumer::<u64>::attach(ptr, 400, ONE) };
    assert!(matches!(result, Err(Error::Corrupted { field: "total size", .. })));

    let header = &shared(ptr).header;
    header.capacity.store(6, Ordering::Relaxed);
    // SAFETY: the test buffer outlives every handle and is used only through the primitive.
    let result = unsafe { Consumer::<u64>::attach(ptr, len, ONE) };
    assert!(matches!(result, Err(Error::Corrupted { field: "capacity", value: 6, .. })));
    // A power of two whose slots do not fit in the total size.
    header.capacity.store(16, Ordering::Relaxed);
    // SAFETY: the test buffer outlives every handle and is used only through the primitive.
    let result = unsafe { Consumer::<u64>::attach(ptr, len, ONE) };
    assert!(matches!(result, Err(Error::Corrupted { field: "capacity", value: 16, .. })));
    header.capacity.store(8, Ordering::Relaxed);
    // A producer position more than a capacity ahead: refused, and the role left free.
    shared(ptr).producer.tail.store(9, Ordering::Relaxed);
    // SAFETY: the test buffer outlives every handle and is used only through the primitive.
    let result = unsafe { Consumer::<u64>::attach(ptr, len, ONE) };
    assert!(matches!(result, Err(Error::Corrupted { field: "head", .. })));
    assert_eq!(shared(ptr).consumer.owner.load(Ordering::Relaxed), 0);
}

#[test]
fn push_and_pop_wrap_around_at_full_and_empty() {
    let (_buffer, ptr, len) = ring::<u32>(4);
    // SAFETY: the buffer outlives the handles.
    let mut producer = unsafe { Producer::<u32>::attach(ptr, len, ONE) }.expect("producer");
    // SAFETY: the test buffer outlives every handle and is used only through the primitive.
    let mut consumer = unsafe { Consumer::<u32>::attach(ptr, len, TWO) }.expect("consumer");
    assert_eq!((producer.capacity(), consumer.capacity()), (4, 4));
    let mut next_in = 0;
    let mut next_out = 0;
    for round in 0..50 {
        // Fill to full (round 0) or top up, then drain a varying amount: every fill level and
        // every slot offset is crossed.
        while producer.push(next_in).expect("push") {
            next_in += 1;
        }
        assert_eq!((producer.len(), producer.free()), (Ok(4), Ok(0)));
        assert_eq!((consumer.len(), consumer.free()), (Ok(4), Ok(0)));
        assert_eq!(consumer.peek(), Ok(Some(next_out)));
        for _ in 0..=(round % 4) {
            assert_eq!(consumer.pop(), Ok(Some(next_out)));
            next_out += 1;
        }
    }
    while let Some(value) = consumer.pop().expect("pop") {
        assert_eq!(value, next_out);
        next_out += 1;
    }
    assert_eq!(next_in, next_out);
    assert_eq!((consumer.is_empty(), producer.is_empty()), (Ok(true), Ok(true)));
    assert_eq!(consumer.peek(), Ok(None));
}

#[test]
fn chunks_split_at_the_wrap_and_commit_part() {
    let (_buffer, ptr, len) = ring::<u64>(8);
    // SAFETY: the buffer outlives the handles.
    let mut producer = unsafe { Producer::<u64>::attach(ptr, len, ONE) }.expect("producer");
    // SAFETY: the test buffer outlives every handle and is used only through the primitive.
    let mut consumer = unsafe { Consumer::<u64>::attach(ptr, len, TWO) }.expect("consumer");
    // Move both positions to 6, so that chunks wrap after 2 slots.
    for value in 0..6 {
        assert_eq!(producer.push(value), Ok(true));
        assert_eq!(consumer.pop(), Ok(Some(value)));
    }
    let mut chunk = producer.write_chunk(100).expect("chunk");
    assert_eq!(chunk.len(), 8);
    for index in 0..5 {
        chunk.set(index, 100 + index as u64);
    }
    assert_eq!(chunk.get(4), 104);
    chunk.commit(5);
    assert_eq!(consumer.len(), Ok(5));
    // One stamp for the run, in the block of its first value (position 6, block 0): the run's
    // end. The next block (position 7) keeps what it had: nothing yet.
    let stamps = (stamp_at(ptr, 8, 6), stamp_at(ptr, 8, 7));
    assert_eq!((stamps.0.load(Ordering::Relaxed), stamps.1.load(Ordering::Relaxed)), (11, 0));
    // An uncommitted chunk publishes nothing.
    let mut chunk = producer.write_chunk(2).expect("chunk");
    chunk.copy_from_slice(&[7, 7]);
    // Not committed: the borrow ends here, nothing published.
    assert_eq!(consumer.len(), Ok(5));
    assert_eq!(producer.write_chunk(10).map(|chunk| chunk.len()), Ok(3));

    let chunk = consumer.read_chunk(3).expect("chunk");
    assert_eq!(chunk.iter().collect::<Vec<_>>(), [100, 101, 102]);
    chunk.commit(1);
    let chunk = consumer.read_chunk(10).expect("chunk");
    let mut values = [0; 4];
    chunk.copy_to_slice(&mut values);
    assert_eq!(values, [101, 102, 103, 104]);
    // Not committed: the values are still there.
    assert_eq!(consumer.pop(), Ok(Some(101)));
    consumer.read_chunk(10).expect("chunk").commit_all();
    assert!(consumer.read_chunk(10).expect("chunk").is_empty());
    assert_eq!(producer.write_chunk(8).map(|chunk| chunk.len()), Ok(8));
}

#[test]
#[should_panic(expected = "commit of 3 slots of a write chunk of 2")]
fn committing_more_than_the_chunk_panics() {
    let (_buffer, ptr, len) = ring::<u64>(2);
    // SAFETY: the buffer outlives the handle.
    let mut producer = unsafe { Producer::<u64>::attach(ptr, len, ONE) }.expect("producer");
    producer.write_chunk(5).expect("chunk").commit(3);
}

#[test]
fn one_producer_at_a_time_and_take_over() {
    let (_buffer, ptr, len) = ring::<u64>(4);
    // SAFETY: the buffer outlives the handles.
    let mut producer = unsafe { Producer::<u64>::attach(ptr, len, ONE) }.expect("producer");
    producer.push(1).expect("push");
    // SAFETY: the test buffer outlives every handle and is used only through the primitive.
    let second = unsafe { Producer::<u64>::attach(ptr, len, TWO) };
    assert_eq!(second.err(), Some(Error::RoleTaken { what: WHAT, role: "producer", owner: 1 }));
    // The consumer role is separate.
    // SAFETY: the test buffer outlives every handle and is used only through the primitive.
    let consumer = unsafe { Consumer::<u64>::attach(ptr, len, TWO) }.expect("consumer");
    // SAFETY: the test buffer outlives every handle and is used only through the primitive.
    let second = unsafe { Consumer::<u64>::attach(ptr, len, ONE) };
    assert!(matches!(second, Err(Error::RoleTaken { role: "consumer", owner: 2, .. })));
    drop(consumer);
    // SAFETY: the test buffer outlives every handle and is used only through the primitive.
    let mut consumer = unsafe { Consumer::<u64>::attach(ptr, len, ONE) }.expect("released");

    // Owner 1 "dies" (forgotten, never released): a take-over naming another owner fails, the
    // right one resumes at the published tail.
    core::mem::forget(producer);
    // SAFETY: the test buffer outlives every handle and is used only through the primitive.
    let wrong = unsafe { Producer::<u64>::take_over(ptr, len, TWO, TWO) };
    assert!(matches!(wrong, Err(Error::TakeOver { owner: 1, expected: 2, .. })));
    // SAFETY: the test buffer outlives every handle and is used only through the primitive.
    let mut producer = unsafe { Producer::<u64>::take_over(ptr, len, ONE, TWO) }.expect("take");
    assert_eq!(producer.owner(), TWO);
    producer.push(2).expect("push");
    assert_eq!(consumer.pop(), Ok(Some(1)));
    assert_eq!(consumer.pop(), Ok(Some(2)));
    // A taken-over handle that comes back does not free its successor's role.
    // SAFETY: the test buffer outlives every handle and is used only through the primitive.
    let stale = unsafe { Producer::<u64>::take_over(ptr, len, TWO, ONE) }.expect("back");
    drop(producer); // owner 2 is no longer the holder: nothing released
    assert_eq!(shared(ptr).producer.owner.load(Ordering::Relaxed), 1);
    drop(stale);
    assert_eq!(shared(ptr).producer.owner.load(Ordering::Relaxed), 0);
}

#[cfg(feature = "std")]
#[test]
fn take_over_if_dead_checks_the_pid() {
    let (_buffer, ptr, len) = ring::<u64>(4);
    // SAFETY: the buffer outlives the handles.
    let me = unsafe { Producer::<u64>::attach_current_process(ptr, len) }.expect("producer");
    // Held by this (live) process: refused.
    // SAFETY: the test buffer outlives every handle and is used only through the primitive.
    let again = unsafe { Producer::<u64>::take_over_if_dead(ptr, len) };
    assert!(matches!(again, Err(Error::RoleTaken { .. })));
    core::mem::forget(me);
    // A pid no process has (beyond the kernel's maximum): taken over.
    shared(ptr).producer.owner.store(i32::MAX as u32, Ordering::Relaxed);
    // SAFETY: the test buffer outlives every handle and is used only through the primitive.
    let producer = unsafe { Producer::<u64>::take_over_if_dead(ptr, len) }.expect("taken over");
    assert_eq!(producer.owner().get(), std::process::id());
    drop(producer);
    // A free role is simply claimed.
    // SAFETY: the test buffer outlives every handle and is used only through the primitive.
    let consumer = unsafe { Consumer::<u64>::take_over_if_dead(ptr, len) }.expect("claimed");
    assert_eq!(consumer.owner().get(), std::process::id());
}

#[test]
fn corrupt_positions_are_reported_not_followed() {
    let (_buffer, ptr, len) = ring::<u64>(4);
    // SAFETY: the buffer outlives the handles.
    let mut producer = unsafe { Producer::<u64>::attach(ptr, len, ONE) }.expect("producer");
    // SAFETY: the test buffer outlives every handle and is used only through the primitive.
    let mut consumer = unsafe { Consumer::<u64>::attach(ptr, len, TWO) }.expect("consumer");
    for value in 0..4 {
        producer.push(value).expect("push");
    }
    assert_eq!(consumer.len(), Ok(4)); // the consumer caches the tail
    // A head ahead of the tail: the producer (finding the ring full) refuses it.
    shared(ptr).consumer.head.store(100, Ordering::Relaxed);
    assert!(matches!(producer.push(9), Err(Error::Corrupted { field: "head", value: 100, .. })));
    assert!(matches!(producer.free(), Err(Error::Corrupted { .. })));
    shared(ptr).consumer.head.store(0, Ordering::Relaxed);
    // A tail far ahead: `len` refuses it; `pop` never reads the tail, and the stamps say the
    // four values are all there is.
    shared(ptr).producer.tail.store(u64::MAX, Ordering::Relaxed);
    for value in 0..4 {
        assert_eq!(consumer.pop(), Ok(Some(value)));
    }
    assert_eq!(consumer.pop(), Ok(None));
    assert!(consumer.read_chunk(1).expect("chunk").is_empty());
    assert!(matches!(consumer.len(), Err(Error::Corrupted { field: "tail", .. })));
    // A stamp beyond a capacity ahead of the head reads as "not published"; a believable one
    // gives the values in the slots (wrong values, never an access outside the ring).
    stamp_at(ptr, 4, 4).store(4 + 5, Ordering::Relaxed);
    assert_eq!(consumer.pop(), Ok(None));
    stamp_at(ptr, 4, 4).store(4 + 4, Ordering::Relaxed);
    assert_eq!(
        consumer.read_chunk(10).map(|chunk| chunk.iter().collect::<Vec<_>>()),
        Ok(std::vec![0, 1, 2, 3])
    );
}

#[test]
fn a_taken_over_producer_stamps_the_run_its_predecessor_counted_but_did_not_stamp() {
    let (_buffer, ptr, len) = ring::<u64>(8);
    // SAFETY: the buffer outlives the handles.
    let mut producer = unsafe { Producer::<u64>::attach(ptr, len, ONE) }.expect("producer");
    // SAFETY: the test buffer outlives every handle and is used only through the primitive.
    let mut consumer = unsafe { Consumer::<u64>::attach(ptr, len, TWO) }.expect("consumer");
    producer.push(10).expect("push");
    producer.push(11).expect("push");
    // The producer writes a run of two at position 2, stores the tail, and dies before the stamp.
    producer.write_chunk(2).expect("chunk").copy_from_slice(&[12, 13]);
    shared(ptr).producer.tail.store(4, Ordering::Release);
    core::mem::forget(producer);
    assert_eq!(consumer.pop(), Ok(Some(10)));
    assert_eq!(consumer.read_chunk(3).map(|chunk| chunk.len()), Ok(1)); // 11; 12 has no stamp
    // SAFETY: as above.
    let mut producer =
        unsafe { Producer::<u64>::take_over(ptr, len, ONE, TWO) }.expect("take over");
    assert_eq!(producer.push(14), Ok(true));
    let values: Vec<_> = core::iter::from_fn(|| consumer.pop().expect("pop")).collect();
    assert_eq!(values, [11, 12, 13, 14]);
    assert_eq!(stamp_at(ptr, 8, 4).load(Ordering::Relaxed), 5); // the successor's run: 4..5
}

#[test]
fn two_threads_move_every_value_in_order() {
    const COUNT: u64 = 200_000;
    for capacity in [1, 2, 16] {
        let (_buffer, ptr, len) = ring::<u64>(capacity);
        // SAFETY: the buffer outlives both threads (scoped).
        let mut producer = unsafe { Producer::<u64>::attach(ptr, len, ONE) }.expect("producer");
        // SAFETY: the test buffer outlives every handle and is used only through the primitive.
        let mut consumer = unsafe { Consumer::<u64>::attach(ptr, len, TWO) }.expect("consumer");
        std::thread::scope(|scope| {
            scope.spawn(move || {
                let mut next = 0;
                while next < COUNT {
                    if next % 3 == 0 {
                        let mut chunk = producer.write_chunk(5).expect("chunk");
                        let count = chunk.len().min((COUNT - next) as usize);
                        for index in 0..count {
                            chunk.set(index, next + index as u64);
                        }
                        chunk.commit(count);
                        next += count as u64;
                    } else if producer.push(next).expect("push") {
                        next += 1;
                    }
                }
            });
            let mut expected = 0;
            while expected < COUNT {
                if expected % 2 == 0 {
                    let chunk = consumer.read_chunk(7).expect("chunk");
                    for value in chunk.iter() {
                        assert_eq!(value, expected);
                        expected += 1;
                    }
                    chunk.commit_all();
                } else if let Some(value) = consumer.pop().expect("pop") {
                    assert_eq!(value, expected);
                    expected += 1;
                }
            }
        });
    }
}

#[cfg(feature = "std")]
#[test]
fn blocking_calls_wake_each_other_and_time_out() {
    use core::time::Duration;

    use shmkit_sync::{SpinFutex, SpinYield};

    let (_buffer, ptr, len) = ring::<u64>(2);
    // SAFETY: the buffer outlives both threads (scoped).
    let mut producer = unsafe { Producer::<u64>::attach(ptr, len, ONE) }.expect("producer");
    // SAFETY: the test buffer outlives every handle and is used only through the primitive.
    let mut consumer = unsafe { Consumer::<u64>::attach(ptr, len, TWO) }.expect("consumer");
    let short = Some(Duration::from_millis(5));
    assert_eq!(
        consumer.pop_blocking(&SpinFutex::default(), short),
        Err(Error::TimedOut { what: WHAT })
    );
    assert!(matches!(
        consumer.wait_for_len(3, &SpinYield::default(), None),
        Err(Error::InvalidInput { .. })
    ));
    std::thread::scope(|scope| {
        scope.spawn(move || {
            // Sleeps at once: every wake-up comes from a notify.
            let strategy = SpinFutex { spins: 0 };
            for value in 0..10_000 {
                producer.push_blocking(value, &strategy, None).expect("push");
            }
            producer
        });
        let strategy = SpinFutex { spins: 0 };
        for value in 0..10_000 {
            assert_eq!(consumer.pop_blocking(&strategy, None), Ok(value));
        }
    });
    assert_eq!(consumer.wait_for_len(0, &SpinFutex::default(), short), Ok(0));
}

#[test]
fn a_ring_that_ends_on_a_block_boundary_wraps_its_cursors() {
    /// Chunks of 3 through a ring of 4 values of `N` bytes (`per` to a block), read back with
    /// `pop` and with chunks in turn, so that the cursors cross the ring's end often.
    fn check<const N: usize>(per: usize) {
        assert_eq!(per_block::<[u8; N]>(), per);
        let (_buffer, ptr, len) = ring::<[u8; N]>(4);
        // SAFETY: the test buffer outlives every handle and is used only through the primitive.
        let mut producer = unsafe { Producer::<[u8; N]>::attach(ptr, len, ONE) }.expect("producer");
        // SAFETY: as above.
        let mut consumer = unsafe { Consumer::<[u8; N]>::attach(ptr, len, TWO) }.expect("consumer");
        let (mut next_in, mut next_out) = (0_u8, 0_u8);
        for round in 0..12 {
            let mut chunk = producer.write_chunk(3).expect("chunk");
            let first = next_in;
            chunk.fill_with(|index| [first + index as u8; N]);
            next_in += chunk.len() as u8;
            chunk.commit_all();
            if round % 2 == 0 {
                while let Some(value) = consumer.pop().expect("pop") {
                    assert_eq!(value, [next_out; N]);
                    next_out += 1;
                }
            } else {
                let chunk = consumer.read_chunk(4).expect("chunk");
                for value in chunk.iter() {
                    assert_eq!(value, [next_out; N]);
                    next_out += 1;
                }
                chunk.commit_all();
            }
        }
        assert_eq!(next_in, next_out);
    }
    check::<40>(1); // the ring ends where a block ends: 4 blocks of 1
    check::<24>(2); // 2 blocks of 2
}

#[test]
fn a_take_over_restamps_every_block_up_to_the_tail_not_only_the_heads() {
    let (_buffer, ptr, len) = ring::<u64>(16);
    // SAFETY: the test buffer outlives every handle and is used only through the primitive.
    let mut producer = unsafe { Producer::<u64>::attach(ptr, len, ONE) }.expect("producer");
    // SAFETY: as above.
    let mut consumer = unsafe { Consumer::<u64>::attach(ptr, len, TWO) }.expect("consumer");
    let mut chunk = producer.write_chunk(8).expect("chunk");
    chunk.fill_with(|index| index as u64);
    chunk.commit_all();
    // The consumer knows up to 8 (in block 1) but its head stays 0.
    assert_eq!(consumer.read_chunk(8).map(|chunk| chunk.len()), Ok(8));
    producer.write_chunk(2).expect("chunk").copy_from_slice(&[8, 9]);
    shared(ptr).producer.tail.store(10, Ordering::Release); // dies before the stamp
    core::mem::forget(producer);
    // SAFETY: as above.
    let _producer = unsafe { Producer::<u64>::take_over(ptr, len, ONE, TWO) }.expect("take over");
    let values: Vec<_> = core::iter::from_fn(|| consumer.pop().expect("pop")).collect();
    assert_eq!(values, (0..10).collect::<Vec<_>>());
}

/// A random mix of every call, checked against a `VecDeque`, with the producer dying at a random
/// point of a run (before `tail`, between `tail` and the stamp, after the stamp) and a successor
/// taking over, sometimes the consumer's role too; at the end `pop` alone must drain every value.
mod model {
    use std::collections::VecDeque;

    use shmkit_testkit::Rng;

    use super::*;

    /// A value type of the model: a distinct `T` for every number.
    trait Value: Plain + PartialEq + core::fmt::Debug {
        fn of(number: u64) -> Self;
    }

    impl Value for u8 {
        #[expect(clippy::cast_possible_truncation, reason = "numbers repeat every 256")]
        fn of(number: u64) -> Self {
            number as u8
        }
    }

    impl Value for u64 {
        fn of(number: u64) -> Self {
            number
        }
    }

    impl Value for u128 {
        fn of(number: u64) -> Self {
            u128::from(number) * 3
        }
    }

    impl<const N: usize> Value for [u8; N] {
        fn of(number: u64) -> Self {
            let mut bytes = [0; N];
            let le = number.to_le_bytes();
            let count = N.min(8);
            bytes[..count].copy_from_slice(&le[..count]);
            bytes[N - 1] ^= le[0];
            bytes
        }
    }

    fn owner(id: u32) -> NonZeroU32 {
        NonZeroU32::new(id).expect("non-zero")
    }

    /// 20,000 random steps on a ring of `capacity` values of `T`.
    fn run<T: Value>(capacity: usize, seed: u64) {
        let (_buffer, ptr, len) = ring::<T>(capacity);
        let mut rng = Rng(seed | 1);
        let mut producer_id = 1;
        let consumer_id = owner(1000);
        // SAFETY: the test buffer outlives every handle and is used only through the primitive.
        let mut producer = unsafe { Producer::<T>::attach(ptr, len, owner(1)) }.expect("producer");
        // SAFETY: as above.
        let mut consumer =
            unsafe { Consumer::<T>::attach(ptr, len, consumer_id) }.expect("consumer");
        let mut queue = VecDeque::new();
        let mut next = 0_u64;
        for step in 0..20_000 {
            match rng.below(9) {
                0 => {
                    let pushed = producer.push(T::of(next)).expect("push");
                    assert_eq!(pushed, queue.len() < capacity, "step {step}");
                    if pushed {
                        queue.push_back(next);
                        next += 1;
                    }
                }
                1 => assert_eq!(consumer.pop(), Ok(queue.pop_front().map(T::of)), "step {step}"),
                2 => {
                    assert_eq!(
                        consumer.peek(),
                        Ok(queue.front().copied().map(T::of)),
                        "step {step}"
                    );
                }
                3 | 4 => {
                    let max = rng.below(2 * capacity as u64 + 2) as usize;
                    let mut chunk = producer.write_chunk(max).expect("chunk");
                    assert_eq!(chunk.len(), max.min(capacity - queue.len()), "step {step}");
                    let first = next;
                    if rng.coin() {
                        chunk.fill_with(|index| T::of(first + index as u64));
                    } else {
                        for index in 0..chunk.len() {
                            chunk.set(index, T::of(first + index as u64));
                        }
                    }
                    let count = rng.below(chunk.len() as u64 + 1);
                    chunk.commit(count as usize);
                    queue.extend(first..first + count);
                    next += count;
                }
                5 | 6 => {
                    let max = rng.below(2 * capacity as u64 + 2) as usize;
                    let chunk = consumer.read_chunk(max).expect("chunk");
                    assert_eq!(chunk.len(), max.min(queue.len()), "step {step}");
                    for (index, value) in chunk.iter().enumerate() {
                        assert_eq!(value, T::of(queue[index]), "step {step}");
                        assert_eq!(chunk.get(index), value, "step {step}");
                    }
                    let count = rng.below(chunk.len() as u64 + 1) as usize;
                    chunk.commit(count);
                    queue.drain(..count);
                }
                7 => {
                    assert_eq!(consumer.len(), Ok(queue.len()), "step {step}");
                    assert_eq!(producer.len(), Ok(queue.len()), "step {step}");
                }
                _ => {
                    // The producer dies in the middle of a run; a successor takes over.
                    let max = 1 + rng.below(capacity as u64) as usize;
                    let mut chunk = producer.write_chunk(max).expect("chunk");
                    let count = chunk.len() as u64;
                    let first = next;
                    chunk.fill_with(|index| T::of(first + index as u64));
                    let tail = shared(ptr).producer.tail.load(Ordering::Relaxed);
                    match rng.below(3) {
                        // Before the `tail` store: the run is lost.
                        0 => {}
                        // Between `tail` and the stamp: published, seen after the take-over.
                        1 => shared(ptr).producer.tail.store(tail + count, Ordering::Release),
                        // After the stamp: an ordinary commit.
                        _ => chunk.commit_all(),
                    }
                    if shared(ptr).producer.tail.load(Ordering::Relaxed) != tail {
                        queue.extend(first..first + count);
                        next += count;
                    }
                    core::mem::forget(producer);
                    let dead = owner(producer_id);
                    producer_id += 1;
                    // SAFETY: as above.
                    producer =
                        unsafe { Producer::<T>::take_over(ptr, len, dead, owner(producer_id)) }
                            .expect("take over");
                    if rng.below(4) == 0 {
                        core::mem::forget(consumer);
                        // SAFETY: as above.
                        consumer =
                            unsafe { Consumer::<T>::take_over(ptr, len, consumer_id, consumer_id) }
                                .expect("consumer take over");
                    }
                }
            }
        }
        // Every value comes out through `pop` alone (no `len` to refresh the known end).
        while let Some(value) = consumer.pop().expect("pop") {
            assert_eq!(Some(value), queue.pop_front().map(T::of));
        }
        assert!(queue.is_empty(), "{} values never seen by pop", queue.len());
    }

    #[test]
    fn every_call_against_a_model_with_take_overs() {
        for (index, capacity) in [1, 2, 4, 8, 16, 128].into_iter().enumerate() {
            let seed = 0x5eed + index as u64;
            run::<u8>(capacity, seed); // 56 to a block
            run::<u64>(capacity, seed); // 7
            run::<u128>(capacity, seed); // 3
            run::<[u8; 40]>(capacity, seed); // 1
            run::<[u8; 64]>(capacity, seed); // large: a stamp line, then 7
            run::<[u8; 100]>(capacity, seed); // large, padded
        }
    }
}
