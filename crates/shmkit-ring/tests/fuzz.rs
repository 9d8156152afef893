//! Random bytes over the shared state of every primitive, then every open and read path: each
//! call must return `Ok` or an `Error`, never panic, hang, or touch memory outside the range it
//! was given.
//!
//! The range handed to the primitive is a slice of a larger buffer with guard bytes after it; the
//! guards must be intact afterwards (a write out of the range would change them; a read out of
//! range is kept from being silent by the slot sizes coming only from `len` and the validated
//! capacity). Deterministic: xorshift from a printed seed (`SHMKIT_FUZZ_SEED` replays one).

use std::num::NonZeroU32;
use std::ptr::NonNull;

/// Iterations per primitive.
const ITERATIONS: u32 = 100_000;
const GUARD: u8 = 0xA5;
const GUARD_LEN: usize = 256;

/// xorshift64*.
struct Rng(u64);

impl Rng {
    fn from_env() -> Self {
        let seed = std::env::var("SHMKIT_FUZZ_SEED")
            .ok()
            .and_then(|seed| seed.parse().ok())
            .unwrap_or(0x5EED_0F5A_F00D_u64);
        println!("fuzz seed {seed} (replay with SHMKIT_FUZZ_SEED={seed})");
        Self(seed.max(1))
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, bound: usize) -> usize {
        (self.next() % bound as u64) as usize
    }
}

/// A 128-byte aligned buffer: `len` bytes for the primitive, then guard bytes.
struct Arena {
    blocks: Vec<Block>,
    len: usize,
}

#[repr(C, align(128))]
#[derive(Clone, Copy)]
struct Block([u8; 128]);

impl Arena {
    fn new(len: usize) -> Self {
        let mut arena =
            Self { blocks: vec![Block([0; 128]); (len + GUARD_LEN).div_ceil(128)], len };
        arena.bytes_mut()[len..].fill(GUARD);
        arena
    }

    fn ptr(&mut self) -> NonNull<u8> {
        NonNull::new(self.blocks.as_mut_ptr().cast::<u8>()).expect("non-null")
    }

    fn bytes_mut(&mut self) -> &mut [u8] {
        let total = self.blocks.len() * 128;
        // SAFETY: the blocks are `total` initialised bytes, borrowed mutably: no handle is alive
        // while this slice is.
        unsafe { std::slice::from_raw_parts_mut(self.ptr().as_ptr(), total) }
    }

    /// [`scramble`] over the first `limit` bytes of the range.
    fn scramble(&mut self, rng: &mut Rng, limit: usize, count: usize) {
        scramble(&mut self.bytes_mut()[..limit], rng, count);
    }

    fn guards_intact(&mut self) -> bool {
        let len = self.len;
        self.bytes_mut()[len..].iter().all(|byte| *byte == GUARD)
    }
}

/// Overwrites `count` random bytes of `bytes` (or whole 8-byte words with interesting values: 0,
/// all ones, small numbers, the right magic).
fn scramble(bytes: &mut [u8], rng: &mut Rng, count: usize) {
    for _ in 0..count {
        let choice = rng.next();
        let offset = rng.below(bytes.len());
        if choice.is_multiple_of(3) {
            let start = offset & !7;
            let word: u64 = match choice % 7 {
                0 => 0,
                1 => u64::MAX,
                2 => choice >> 60,
                3 => u64::from_le_bytes(*b"SHMKRING"),
                4 => 1 << (choice >> 58),
                _ => choice,
            };
            bytes[start..start + 8].copy_from_slice(&word.to_le_bytes());
        } else {
            bytes[offset] = (choice >> 8) as u8;
        }
    }
}

mod spsc_fuzz {
    use shmkit_ring::spsc::{Consumer, Producer, SpscRing};

    use super::{Arena, ITERATIONS, NonZeroU32, Rng};

    const CAPACITY: usize = 8;

    /// Random bytes over the header and the two lines (the first 384 bytes) and over the blocks
    /// (stamps and values), before attaching and between calls of attached handles.
    #[test]
    fn random_header_position_and_stamp_bytes() {
        let mut rng = Rng::from_env();
        let len = SpscRing::<u64>::bytes_for(CAPACITY).expect("layout");
        let (mut attached, mut refused) = (0_u32, 0_u32);
        for _ in 0..ITERATIONS {
            let mut arena = Arena::new(len);
            let ptr = arena.ptr();
            // SAFETY: the arena outlives the handles of this iteration.
            unsafe { SpscRing::<u64>::init(ptr, len, CAPACITY) }.expect("init");
            // Some traffic first, so positions are not all zero.
            {
                // SAFETY: the test buffer outlives every handle and is used only through the primitive.
                let mut producer = unsafe { Producer::<u64>::attach(ptr, len, NonZeroU32::MIN) }
                    .expect("producer");
                for value in 0..rng.below(20) as u64 {
                    let _ = producer.push(value);
                }
            }
            let count = 1 + rng.below(6);
            arena.scramble(&mut rng, 384, count);
            let owner = NonZeroU32::new(7).expect("non-zero");
            // SAFETY: the test buffer outlives every handle and is used only through the primitive.
            let producer = unsafe { Producer::<u64>::attach(ptr, len, owner) };
            // SAFETY: the test buffer outlives every handle and is used only through the primitive.
            let consumer = unsafe { Consumer::<u64>::attach(ptr, len, owner) };
            // SAFETY: the test buffer outlives every handle and is used only through the primitive.
            let taken = unsafe { Producer::<u64>::take_over(ptr, len, owner, owner) };
            match (producer, consumer) {
                (Ok(mut producer), Ok(mut consumer)) => {
                    attached += 1;
                    // Positions, and stamps a peer could write, scrambled again while attached.
                    if rng.next().is_multiple_of(2) {
                        arena.scramble(&mut rng, 384, 2);
                    }
                    if rng.next().is_multiple_of(2) {
                        arena.scramble(&mut rng, len, 3);
                    }
                    exercise(&mut rng, &mut producer, &mut consumer);
                }
                _ => refused += 1,
            }
            drop(taken);
            assert!(arena.guards_intact(), "a write went past the range");
        }
        println!("spsc: {attached} iterations attached, {refused} refused");
    }

    fn exercise(rng: &mut Rng, producer: &mut Producer<'_, u64>, consumer: &mut Consumer<'_, u64>) {
        for _ in 0..16 {
            match rng.next() % 10 {
                0 => drop(producer.push(rng.next())),
                1 => drop(consumer.pop()),
                2 => drop(consumer.peek()),
                3 => {
                    if let Ok(mut chunk) = producer.write_chunk(rng.below(20)) {
                        for index in 0..chunk.len() {
                            chunk.set(index, index as u64);
                        }
                        let count = chunk.len();
                        chunk.commit(count);
                    }
                }
                4 => {
                    if let Ok(chunk) = consumer.read_chunk(rng.below(20)) {
                        let sum: u64 = chunk.iter().fold(0, u64::wrapping_add);
                        std::hint::black_box(sum);
                        chunk.commit_all();
                    }
                }
                5 => drop((producer.len(), producer.free())),
                6 => drop((consumer.len(), consumer.free(), consumer.is_empty())),
                9 => {
                    if let Ok(mut chunk) = producer.write_chunk(rng.below(20)) {
                        chunk.fill_with(|index| index as u64);
                        chunk.commit_all();
                    }
                }
                7 => {
                    // Whatever either side believes, a chunk never exceeds the capacity.
                    if let Ok(chunk) = consumer.read_chunk(usize::MAX) {
                        assert!(chunk.len() <= CAPACITY);
                    }
                }
                _ => {
                    if let Ok(chunk) = producer.write_chunk(usize::MAX) {
                        assert!(chunk.len() <= CAPACITY);
                    }
                }
            }
        }
    }
}

mod seqlock_fuzz {
    use shmkit_ring::seqlock::{Reader, SeqLock, Writer};

    use super::{Arena, ITERATIONS, NonZeroU32, Rng};

    type Value = [u32; 5];

    /// Random bytes over the header, the writer line and the value's words.
    #[test]
    fn random_header_and_value_bytes() {
        let mut rng = Rng::from_env();
        let len = SeqLock::<Value>::bytes_for();
        let (mut opened, mut refused) = (0_u32, 0_u32);
        for _ in 0..ITERATIONS {
            let mut arena = Arena::new(len);
            let ptr = arena.ptr();
            // SAFETY: the arena outlives the handles of this iteration.
            unsafe { SeqLock::<Value>::init(ptr, len, &[1; 5]) }.expect("init");
            let count = 1 + rng.below(6);
            arena.scramble(&mut rng, len, count);
            // SAFETY: the test buffer outlives every handle and is used only through the primitive.
            match unsafe { Reader::<Value>::open(ptr, len) } {
                Ok(reader) => {
                    opened += 1;
                    std::hint::black_box((reader.try_read(), reader.read_once(), reader.version()));
                    let owner = NonZeroU32::MIN;
                    // SAFETY: the test buffer outlives every handle and is used only through the primitive.
                    let writer = unsafe { Writer::<Value>::attach(ptr, len, owner) };
                    if let Ok(mut writer) = writer {
                        writer.update(|value| value[0] = value[0].wrapping_add(1));
                        // A fresh write always makes the value readable again.
                        assert!(reader.try_read().is_some());
                    }
                }
                Err(_) => refused += 1,
            }
            assert!(arena.guards_intact(), "a write went past the range");
        }
        println!("seqlock: {opened} iterations opened, {refused} refused");
    }
}

mod bytes_fuzz {
    use shmkit_ring::bytes::{ByteConsumer, ByteProducer, ByteRing};

    use super::{Arena, ITERATIONS, NonZeroU32, Rng};

    const CAPACITY: usize = 256;
    /// The header, the two lines and the events line.
    const CONTROL: usize = ByteRing::CONTROL_SIZE;

    /// Appends and reads records of random lengths, so that positions, records and padding
    /// markers are all somewhere.
    fn traffic(rng: &mut Rng, producer: &mut ByteProducer<'_>, consumer: &mut ByteConsumer<'_>) {
        let record = [0x5A; CAPACITY];
        let mut buffer = [0; CAPACITY];
        for _ in 0..rng.below(24) {
            let length = rng.below(producer.max_record() + 1);
            let _ = producer.append(&record[..length]);
            if !rng.next().is_multiple_of(3) {
                let _ = consumer.read(&mut buffer);
            }
        }
    }

    /// Random bytes over the header, the lines and the data area (record header words and
    /// padding markers included), before attaching and between calls of attached handles.
    #[test]
    fn random_header_position_and_record_bytes() {
        let mut rng = Rng::from_env();
        let len = ByteRing::bytes_for(CAPACITY).expect("layout");
        let (mut attached, mut refused, mut corrupt_reads) = (0_u32, 0_u32, 0_u32);
        for _ in 0..ITERATIONS {
            let mut arena = Arena::new(len);
            let ptr = arena.ptr();
            let owner = NonZeroU32::new(7).expect("non-zero");
            // SAFETY: the arena outlives the handles of this iteration.
            unsafe { ByteRing::init(ptr, len, CAPACITY) }.expect("init");
            {
                // SAFETY: the arena outlives the handles of this iteration.
                let mut producer =
                    unsafe { ByteProducer::attach(ptr, len, owner) }.expect("producer");
                // SAFETY: the arena outlives the handles of this iteration.
                let mut consumer =
                    unsafe { ByteConsumer::attach(ptr, len, owner) }.expect("consumer");
                traffic(&mut rng, &mut producer, &mut consumer);
            }
            // The control lines, the data area, or both.
            let limit = [CONTROL, len, len][rng.below(3)];
            let count = 1 + rng.below(6);
            if limit == len && rng.next().is_multiple_of(2) {
                // Only the data area: header words that look like records and padding markers
                // (right tags, random lengths), the positions intact.
                for _ in 0..count {
                    let offset = CONTROL + rng.below(CAPACITY / 8) * 8;
                    let length = rng.next() % (2 * CAPACITY as u64);
                    let word = match rng.next() % 3 {
                        0 => u64::from(u32::from_le_bytes(*b"REC1")) << 32 | length,
                        1 => u64::from(u32::from_le_bytes(*b"PAD1")) << 32 | length,
                        _ => rng.next(),
                    };
                    arena.bytes_mut()[offset..offset + 8].copy_from_slice(&word.to_le_bytes());
                }
            } else {
                arena.scramble(&mut rng, limit, count);
            }
            // SAFETY: the arena outlives the handles of this iteration.
            let producer = unsafe { ByteProducer::attach(ptr, len, owner) };
            // SAFETY: the arena outlives the handles of this iteration.
            let consumer = unsafe { ByteConsumer::attach(ptr, len, owner) };
            // SAFETY: the arena outlives the handles of this iteration.
            let taken = unsafe { ByteConsumer::take_over(ptr, len, owner, owner) };
            match (producer, consumer) {
                (Ok(mut producer), Ok(mut consumer)) => {
                    attached += 1;
                    if rng.next().is_multiple_of(2) {
                        arena.scramble(&mut rng, len, 2);
                    }
                    corrupt_reads += exercise(&mut rng, ptr, &mut producer, &mut consumer);
                }
                _ => refused += 1,
            }
            drop(taken);
            assert!(arena.guards_intact(), "a write went past the range");
        }
        println!(
            "bytes: {attached} iterations attached ({corrupt_reads} reads refused: corrupt, or \
             the buffer too short), {refused} refused"
        );
    }

    /// Random calls of both sides; every record handed out lies inside the data area and within
    /// the longest record. Returns how many reads reported corruption.
    fn exercise(
        rng: &mut Rng,
        base: std::ptr::NonNull<u8>,
        producer: &mut ByteProducer<'_>,
        consumer: &mut ByteConsumer<'_>,
    ) -> u32 {
        let data = base.as_ptr() as usize + ByteRing::CONTROL_SIZE;
        let record = [0xC3; CAPACITY];
        let mut buffer = [0; CAPACITY];
        let mut corrupt = 0;
        for _ in 0..16 {
            match rng.next() % 8 {
                0 => drop(producer.append(&record[..rng.below(CAPACITY)])),
                1 => {
                    if let Ok(Some(mut grant)) = producer.reserve(rng.below(CAPACITY / 2)) {
                        let length = grant.len();
                        grant.copy_from_slice(0, &record[..length]);
                        grant.commit(rng.below(length + 1));
                    }
                }
                2 => {
                    let size = rng.below(CAPACITY);
                    if consumer.read(&mut buffer[..size]).is_err() {
                        corrupt += 1;
                    }
                }
                3 | 4 => match consumer.peek() {
                    Ok(Some(grant)) => {
                        let start = grant.as_ptr() as usize;
                        assert!(grant.len() <= consumer_max(CAPACITY));
                        assert!(start >= data && start + grant.len() <= data + CAPACITY);
                        grant.copy_to(&mut buffer);
                        if rng.next().is_multiple_of(2) {
                            grant.release();
                        }
                    }
                    Ok(None) => {}
                    Err(_) => corrupt += 1,
                },
                5 => drop(consumer.skip()),
                6 => drop((producer.len(), producer.avail(), producer.is_empty())),
                _ => drop((consumer.len(), consumer.avail(), consumer.is_empty())),
            }
        }
        corrupt
    }

    fn consumer_max(capacity: usize) -> usize {
        ByteRing::max_record(capacity)
    }
}

mod broadcast_fuzz {
    use shmkit_ring::broadcast::{
        Broadcast, BroadcastConsumer, BroadcastProducer, Flow, Received, Start,
    };

    use super::{Arena, ITERATIONS, NonZeroU32, Rng};

    type Message = [u64; 3];
    const CAPACITY: usize = 8;

    /// Random bytes over the header, the producer line, the credit table and the slots (their
    /// sequence words and payloads), then every attach and the publish and receive paths.
    #[test]
    fn random_header_credit_and_slot_bytes() {
        let mut rng = Rng::from_env();
        let (mut attached, mut refused, mut laps, mut corrupt) = (0_u32, 0_u32, 0_u64, 0_u32);
        for _ in 0..ITERATIONS {
            let flow = if rng.next().is_multiple_of(2) {
                Flow::Lossy
            } else {
                Flow::Credit { consumers: 1 + rng.below(3) as u32 }
            };
            let len = Broadcast::<Message>::bytes_for(CAPACITY, flow).expect("layout");
            let mut arena = Arena::new(len);
            let ptr = arena.ptr();
            let owner = NonZeroU32::new(7).expect("non-zero");
            // SAFETY: the arena outlives the handles of this iteration.
            unsafe { Broadcast::<Message>::init(ptr, len, CAPACITY, flow) }.expect("init");
            {
                // SAFETY: the arena outlives the handles of this iteration.
                let mut producer = unsafe { BroadcastProducer::<Message>::attach(ptr, len, owner) }
                    .expect("producer");
                for n in 0..rng.below(30) as u64 {
                    let _ = producer.try_publish(&[n; 3]);
                }
            }
            let count = 1 + rng.below(6);
            arena.scramble(&mut rng, len, count);
            let start = if rng.next().is_multiple_of(2) { Start::Newest } else { Start::Oldest };
            // SAFETY: the arena outlives the handles of this iteration.
            let producer = unsafe { BroadcastProducer::<Message>::attach(ptr, len, owner) };
            // SAFETY: the arena outlives the handles of this iteration.
            let consumer = unsafe { BroadcastConsumer::<Message>::attach(ptr, len, start) };
            // SAFETY: the arena outlives the handles of this iteration.
            let credit = unsafe { BroadcastConsumer::<Message>::attach_credit(ptr, len, owner) };
            match (producer, consumer) {
                (Ok(mut producer), Ok(consumer)) => {
                    attached += 1;
                    if rng.next().is_multiple_of(2) {
                        arena.scramble(&mut rng, len, 2);
                    }
                    let mut consumers = vec![consumer];
                    consumers.extend(credit.ok());
                    for _ in 0..16 {
                        match rng.next() % 4 {
                            0 | 1 => drop(producer.try_publish(&[rng.next(); 3])),
                            2 => drop(producer.credit_consumers().count()),
                            _ => {
                                let index = rng.below(consumers.len());
                                let consumer = &mut consumers[index];
                                match consumer.try_recv() {
                                    Ok(Received::Lapped { lost }) => {
                                        assert!(lost >= 1);
                                        laps += 1;
                                    }
                                    Ok(_) => {}
                                    Err(_) => corrupt += 1,
                                }
                            }
                        }
                    }
                    if rng.next().is_multiple_of(4) {
                        producer.evict_consumer(owner);
                    }
                }
                _ => refused += 1,
            }
            assert!(arena.guards_intact(), "a write went past the range");
        }
        println!(
            "broadcast: {attached} iterations attached ({laps} laps, {corrupt} corrupt reads \
             refused), {refused} refused"
        );
    }
}

mod inspect_fuzz {
    use shmkit_name::PageSize;
    use shmkit_os::{Access, MapOptions, Mapping, Memfd};
    use shmkit_ring::Error;
    use shmkit_ring::broadcast::{Broadcast, BroadcastConsumer, BroadcastProducer, Flow};
    use shmkit_ring::bytes::{ByteConsumer, ByteProducer, ByteRing};
    use shmkit_ring::inspect::{self, Detail};
    use shmkit_ring::seqlock::{SeqLock, Writer};
    use shmkit_ring::spsc::{Consumer, Producer, SpscRing};

    use super::{ITERATIONS, NonNull, NonZeroU32, Rng, scramble};

    const PAGE: usize = 4096;
    const CAPACITY: usize = 8;

    /// Places a primitive of a random kind at `ptr` (the `len` bytes to the end of the page),
    /// with some traffic; returns the bytes of its header and lines (the credit table included).
    fn place(rng: &mut Rng, ptr: NonNull<u8>, len: usize) -> usize {
        let owner = NonZeroU32::new(7).expect("non-zero");
        // SAFETY: the read-write mapping outlives the handles, which are dropped here, and is
        // used only through the primitive (the snapshots read the same memfd read-only).
        unsafe {
            match rng.below(4) {
                0 => {
                    SpscRing::<u64>::init(ptr, len, CAPACITY).expect("init");
                    let mut producer = Producer::<u64>::attach(ptr, len, owner).expect("producer");
                    let mut consumer = Consumer::<u64>::attach(ptr, len, owner).expect("consumer");
                    for value in 0..rng.below(12) as u64 {
                        let _ = producer.push(value);
                        let _ = if value % 3 == 0 { consumer.pop().ok() } else { None };
                    }
                    384
                }
                1 => {
                    ByteRing::init(ptr, len, 256).expect("init");
                    let mut producer = ByteProducer::attach(ptr, len, owner).expect("producer");
                    let mut consumer = ByteConsumer::attach(ptr, len, owner).expect("consumer");
                    let mut buffer = [0; 128];
                    for length in 0..rng.below(12) {
                        let _ = producer.append(&buffer[..length * 5]);
                        let _ = consumer.read(&mut buffer);
                    }
                    ByteRing::CONTROL_SIZE
                }
                2 => {
                    let consumers = rng.below(4) as u32;
                    let flow =
                        if consumers == 0 { Flow::Lossy } else { Flow::Credit { consumers } };
                    Broadcast::<u64>::init(ptr, len, CAPACITY, flow).expect("init");
                    let mut producer =
                        BroadcastProducer::<u64>::attach(ptr, len, owner).expect("producer");
                    let mut credit = BroadcastConsumer::<u64>::attach_credit(ptr, len, owner).ok();
                    for value in 0..rng.below(30) as u64 {
                        let _ = producer.try_publish(&value);
                        if let Some(credit) = credit.as_mut().filter(|_| value % 2 == 0) {
                            let _ = credit.try_recv();
                        }
                    }
                    384 + 128 * consumers as usize
                }
                _ => {
                    SeqLock::init(ptr, len, &[1_u64; 3]).expect("init");
                    let mut writer = Writer::<[u64; 3]>::attach(ptr, len, owner).expect("writer");
                    writer.write(&[2; 3]);
                    256
                }
            }
        }
    }

    /// The bytes a primitive of each kind takes in [`place`], at most.
    fn largest() -> usize {
        [
            SpscRing::<u64>::bytes_for(CAPACITY).expect("layout"),
            ByteRing::bytes_for(256).expect("layout"),
            Broadcast::<u64>::bytes_for(CAPACITY, Flow::Credit { consumers: 3 }).expect("layout"),
            SeqLock::<[u64; 3]>::bytes_for(),
        ]
        .into_iter()
        .max()
        .expect("four")
    }

    /// Random bytes over the header and the lines of every primitive (or anywhere in its range),
    /// read through a read-only mapping whose range ends at a guard page: a snapshot is `Ok` or an
    /// `Error`, never a panic or a fault (a store, or a load past the range), and what it says
    /// passed its checks.
    #[test]
    fn random_header_and_line_bytes_read_only() {
        let mut rng = Rng::from_env();
        let memfd = Memfd::create("inspect-fuzz", PAGE, PageSize::Normal, false).expect("memfd");
        let rw = memfd.map(&MapOptions::new()).expect("map read-write");
        let ro = memfd
            .map(&MapOptions::new().access(Access::ReadOnly).guard_pages(true))
            .expect("map read-only");
        let at = |mapping: &Mapping, offset: usize| {
            NonNull::new(mapping.as_ptr().wrapping_add(offset)).expect("mapped")
        };
        // At the end of the page, 128-aligned: the guard page follows the range.
        let offset = (PAGE - largest()) & !127;
        let len = PAGE - offset;
        let (mut read, mut refused) = (0_u32, 0_u32);
        for _ in 0..ITERATIONS {
            rw.write_at(offset, &vec![0; len]).expect("zero");
            let lines = place(&mut rng, at(&rw, offset), len);
            let mut bytes = vec![0; len];
            rw.read_at(offset, &mut bytes).expect("read back");
            let limit = if rng.next().is_multiple_of(4) { len } else { lines };
            let count = 1 + rng.below(6);
            scramble(&mut bytes[..limit], &mut rng, count);
            rw.write_at(offset, &bytes).expect("write back");
            // SAFETY: the read-only mapping outlives the snapshot; the read-write one is used
            // only atomically meanwhile (`Mapping::write_at`).
            match unsafe { inspect::snapshot(at(&ro, offset), len) } {
                Ok(snapshot) => {
                    read += 1;
                    assert!(snapshot.total_size <= len as u64, "{snapshot:?}");
                    if let Detail::Ring { .. } = snapshot.detail {
                        assert!(snapshot.fill().is_some_and(|fill| fill <= snapshot.capacity));
                    }
                    if let Some(broadcast) = snapshot.broadcast() {
                        assert_eq!(broadcast.slowest.is_some(), broadcast.registered > 0);
                        let slots = broadcast.credit_slots();
                        for index in 0..slots {
                            std::hint::black_box(broadcast.credit_consumer(index).ok());
                        }
                        assert!(matches!(
                            broadcast.credit_consumer(slots),
                            Err(Error::InvalidInput { .. })
                        ));
                        assert!(broadcast.credit_consumers().count() <= slots as usize);
                    }
                }
                Err(_) => refused += 1,
            }
        }
        println!("inspect: {read} snapshots read, {refused} refused");
    }
}
