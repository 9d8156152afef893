//! `inspect::snapshot` on bytes mapped read-only: a memfd mapped twice, read-write for the
//! handles and read-only (with guard pages) for the snapshots, so that a store, or a load out of
//! the mapping, faults. What each primitive says after some traffic, the errors for bytes that are
//! not a primitive this build reads, and snapshots of rings that threads are using meanwhile.

use std::mem::offset_of;
use std::num::NonZeroU32;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use shmkit_name::PageSize;
use shmkit_os::{Access, MapOptions, Mapping, Memfd};
use shmkit_ring::broadcast::{
    Broadcast, BroadcastConsumer, BroadcastProducer, Flow, Received, Start,
};
use shmkit_ring::bytes::{ByteConsumer, ByteProducer, ByteRing};
use shmkit_ring::header::Kind;
use shmkit_ring::inspect::{self, CreditConsumer, Detail, SeqLockSnapshot, Side, Snapshot};
use shmkit_ring::seqlock::{SeqLock, Writer};
use shmkit_ring::spsc::{Consumer, Producer, SpscRing};
use shmkit_ring::{Error, Header};

const PAGE: usize = 4096;

fn id(value: u32) -> NonZeroU32 {
    NonZeroU32::new(value).expect("non-zero")
}

/// A memfd mapped read-write and read-only.
struct Twice {
    rw: Mapping,
    ro: Mapping,
    _memfd: Memfd,
}

impl Twice {
    fn new(len: usize) -> Self {
        let memfd = Memfd::create("inspect", len, PageSize::Normal, false).expect("memfd");
        let rw = memfd.map(&MapOptions::new()).expect("map read-write");
        let ro = memfd
            .map(&MapOptions::new().access(Access::ReadOnly).guard_pages(true))
            .expect("map read-only");
        Self { rw, ro, _memfd: memfd }
    }

    fn rw(&self) -> NonNull<u8> {
        NonNull::new(self.rw.as_ptr()).expect("mapped")
    }

    fn len(&self) -> usize {
        self.rw.len()
    }

    /// A snapshot of the `len` bytes from `offset` of the read-only mapping.
    fn snapshot_at(&self, offset: usize, len: usize) -> Result<Snapshot<'_>, Error> {
        assert!(offset + len <= self.ro.len());
        let ptr = NonNull::new(self.ro.as_ptr().wrapping_add(offset)).expect("mapped");
        // SAFETY: inside the read-only mapping, which outlives the snapshot; the read-write
        // mapping of the same memfd is used only through the primitives' handles and atomics.
        unsafe { inspect::snapshot(ptr, len) }
    }

    /// A snapshot of the whole read-only mapping.
    fn snapshot(&self) -> Result<Snapshot<'_>, Error> {
        self.snapshot_at(0, self.len())
    }

    /// The 4-byte word at `offset` of the read-write mapping.
    fn word_u32(&self, offset: usize) -> &AtomicU32 {
        self.rw.atomic_u32(offset).expect("in the mapping")
    }

    /// The 8-byte word at `offset` of the read-write mapping.
    fn word_u64(&self, offset: usize) -> &AtomicU64 {
        self.rw.atomic_u64(offset).expect("in the mapping")
    }

    /// A fresh SPSC ring of `u64` over the whole mapping, and its two sides for these owners.
    fn spsc(&self, capacity: usize, owners: (u32, u32)) -> (Producer<'_, u64>, Consumer<'_, u64>) {
        let (ptr, len) = (self.rw(), self.len());
        // SAFETY: the mapping outlives the handles (they borrow `self`), and is used only through
        // the ring; no handle of an earlier primitive there is alive (they borrow `self` too, and
        // the callers drop them first).
        unsafe {
            SpscRing::<u64>::init(ptr, len, capacity).expect("init");
            (
                Producer::attach(ptr, len, id(owners.0)).expect("producer"),
                Consumer::attach(ptr, len, id(owners.1)).expect("consumer"),
            )
        }
    }

    /// A fresh byte ring over the whole mapping, and its two sides for these owners.
    fn byte_ring(
        &self,
        capacity: usize,
        owners: (u32, u32),
    ) -> (ByteProducer<'_>, ByteConsumer<'_>) {
        let (ptr, len) = (self.rw(), self.len());
        // SAFETY: as in `spsc`.
        unsafe {
            ByteRing::init(ptr, len, capacity).expect("init");
            (
                ByteProducer::attach(ptr, len, id(owners.0)).expect("producer"),
                ByteConsumer::attach(ptr, len, id(owners.1)).expect("consumer"),
            )
        }
    }
}

#[test]
fn spsc_after_traffic() {
    let shm = Twice::new(PAGE);
    let (mut producer, mut consumer) = shm.spsc(16, (11, 22));
    for value in 0..10 {
        assert!(producer.push(value).expect("push"));
    }
    for _ in 0..3 {
        assert!(consumer.pop().expect("pop").is_some());
    }
    let snapshot = shm.snapshot().expect("snapshot");
    assert_eq!(snapshot.kind, Kind::Spsc);
    assert_eq!(snapshot.version, shmkit_ring::spsc::LAYOUT_VERSION);
    assert_eq!(snapshot.capacity, 16);
    assert_eq!(snapshot.element_size, 8);
    assert_eq!(snapshot.total_size, SpscRing::<u64>::bytes_for(16).expect("size") as u64);
    assert_eq!(snapshot.producer(), Some(Side { position: 10, owner: Some(id(11)) }));
    assert_eq!(snapshot.consumer(), Some(Side { position: 3, owner: Some(id(22)) }));
    assert_eq!(snapshot.fill(), Some(7));
    assert!(snapshot.broadcast().is_none());

    drop(producer);
    let snapshot = shm.snapshot().expect("snapshot");
    assert_eq!(snapshot.producer(), Some(Side { position: 10, owner: None }), "released");
}

#[test]
fn byte_ring_after_traffic() {
    let shm = Twice::new(PAGE);
    let (mut producer, mut consumer) = shm.byte_ring(1024, (3, 4));
    for record in [&b"hello"[..], b"shared", b"world!!!!"] {
        assert!(producer.append(record).expect("append"));
    }
    let mut buffer = [0; 64];
    assert_eq!(consumer.read(&mut buffer).expect("read"), Some(5));
    let written = [5, 6, 9].map(ByteRing::record_size).iter().sum::<usize>() as u64;
    let read = ByteRing::record_size(5) as u64;

    let snapshot = shm.snapshot().expect("snapshot");
    assert_eq!(snapshot.kind, Kind::Bytes);
    assert_eq!(snapshot.version, shmkit_ring::bytes::LAYOUT_VERSION);
    assert_eq!((snapshot.capacity, snapshot.element_size), (1024, 1));
    assert_eq!(snapshot.total_size, ByteRing::bytes_for(1024).expect("size") as u64);
    assert_eq!(snapshot.producer(), Some(Side { position: written, owner: Some(id(3)) }));
    assert_eq!(snapshot.consumer(), Some(Side { position: read, owner: Some(id(4)) }));
    assert_eq!(snapshot.fill(), Some(written - read));
}

#[test]
fn credit_broadcast_after_traffic() {
    let shm = Twice::new(PAGE);
    let (ptr, len) = (shm.rw(), shm.len());
    let flow = Flow::Credit { consumers: 3 };
    // SAFETY: the mapping outlives the handles, and is used only through the ring.
    let (mut producer, mut slow, mut fast) = unsafe {
        Broadcast::<u64>::init(ptr, len, 8, flow).expect("init");
        (
            BroadcastProducer::<u64>::attach(ptr, len, id(5)).expect("producer"),
            BroadcastConsumer::<u64>::attach_credit(ptr, len, id(6)).expect("slow consumer"),
            BroadcastConsumer::<u64>::attach_credit(ptr, len, id(7)).expect("fast consumer"),
        )
    };
    for value in 0..6 {
        assert!(producer.try_publish(&value).expect("publish"));
    }
    for _ in 0..2 {
        assert!(matches!(slow.try_recv().expect("receive"), Received::Message(_)));
    }
    for _ in 0..6 {
        assert!(matches!(fast.try_recv().expect("receive"), Received::Message(_)));
    }

    let snapshot = shm.snapshot().expect("snapshot");
    assert_eq!(snapshot.kind, Kind::Broadcast);
    assert_eq!(snapshot.version, shmkit_ring::broadcast::LAYOUT_VERSION);
    assert_eq!((snapshot.capacity, snapshot.element_size), (8, 8));
    assert_eq!(snapshot.total_size, Broadcast::<u64>::bytes_for(8, flow).expect("size") as u64);
    assert_eq!(snapshot.producer(), Some(Side { position: 6, owner: Some(id(5)) }));
    assert_eq!(snapshot.consumer(), None);
    assert_eq!(snapshot.fill(), Some(4), "the slow consumer has read 2 of 6");
    let broadcast = snapshot.broadcast().expect("a broadcast ring");
    assert_eq!(broadcast.flow, flow);
    assert_eq!(broadcast.overwritten, 0);
    assert_eq!((broadcast.registered, broadcast.slowest), (2, Some(2)));
    assert_eq!(broadcast.credit_slots(), 3);
    let consumers: Vec<CreditConsumer> =
        broadcast.credit_consumers().collect::<Result<_, _>>().expect("credit consumers");
    assert_eq!(
        consumers,
        [
            CreditConsumer { slot: 0, position: 2, owner: id(6), behind: 4 },
            CreditConsumer { slot: 1, position: 6, owner: id(7), behind: 0 },
        ]
    );
    assert_eq!(broadcast.credit_consumer(2), Ok(None), "a free slot");
    assert!(matches!(broadcast.credit_consumer(3), Err(Error::InvalidInput { .. })));

    // Read on demand: the table as it is now.
    drop(slow);
    assert_eq!(broadcast.credit_consumer(0), Ok(None), "released since the snapshot");
    assert_eq!(broadcast.credit_consumers().count(), 1);
}

#[test]
fn lossy_broadcast_counts_what_is_overwritten() {
    let shm = Twice::new(PAGE);
    let (ptr, len) = (shm.rw(), shm.len());
    // SAFETY: the mapping outlives the handle, and is used only through the ring.
    let mut producer = unsafe {
        Broadcast::<[u64; 3]>::init(ptr, len, 8, Flow::Lossy).expect("init");
        BroadcastProducer::<[u64; 3]>::attach(ptr, len, id(5)).expect("producer")
    };
    for value in 0..20 {
        assert!(producer.try_publish(&[value; 3]).expect("publish"));
    }
    let snapshot = shm.snapshot().expect("snapshot");
    assert_eq!(snapshot.element_size, 24);
    assert_eq!(snapshot.fill(), None, "no credit consumer");
    let broadcast = snapshot.broadcast().expect("a broadcast ring");
    assert_eq!(broadcast.flow, Flow::Lossy);
    assert_eq!(broadcast.overwritten, 12);
    assert_eq!(broadcast.credit_slots(), 0);
    assert_eq!(broadcast.credit_consumers().count(), 0);
    assert_eq!(broadcast.producer, Side { position: 20, owner: Some(id(5)) });
}

#[test]
fn seqlock_writer_line() {
    let shm = Twice::new(PAGE);
    let (ptr, len) = (shm.rw(), shm.len());
    // SAFETY: the mapping outlives the handle, and is used only through the seqlock.
    let mut writer = unsafe {
        SeqLock::init(ptr, len, &[0_u32; 5]).expect("init");
        Writer::<[u32; 5]>::attach(ptr, len, id(9)).expect("writer")
    };
    writer.write(&[1; 5]);
    writer.write(&[2; 5]);
    let snapshot = shm.snapshot().expect("snapshot");
    assert_eq!(snapshot.kind, Kind::SeqLock);
    assert_eq!(snapshot.version, shmkit_ring::seqlock::LAYOUT_VERSION);
    assert_eq!((snapshot.capacity, snapshot.element_size), (1, 20));
    assert_eq!(snapshot.total_size, SeqLock::<[u32; 5]>::bytes_for() as u64);
    assert!(matches!(
        snapshot.detail,
        Detail::SeqLock(SeqLockSnapshot { sequence: 4, writer: Some(owner) }) if owner == id(9)
    ));
    assert_eq!((snapshot.producer(), snapshot.consumer(), snapshot.fill()), (None, None, None));
}

#[test]
fn bytes_that_are_not_a_readable_primitive() {
    let shm = Twice::new(PAGE);
    assert!(matches!(shm.snapshot(), Err(Error::NotPublished { .. })), "zero bytes");
    assert!(matches!(shm.snapshot_at(64, 1024), Err(Error::Placement { .. })), "misaligned");
    assert!(matches!(shm.snapshot_at(0, 100), Err(Error::Placement { .. })), "too small");

    drop(shm.spsc(16, (1, 2)));
    let total = SpscRing::<u64>::bytes_for(16).expect("size");
    assert!(
        matches!(shm.snapshot_at(0, total - 8), Err(Error::Corrupted { field: "total size", .. })),
        "fewer bytes than the header says"
    );

    let version = shm.word_u32(offset_of!(Header, version));
    version.store(99, Ordering::Relaxed);
    assert_eq!(
        shm.snapshot().map(|snapshot| snapshot.kind),
        Err(Error::UnknownVersion { what: "SPSC ring", kind: Kind::Spsc, version: 99, known: 2 })
    );
    version.store(shmkit_ring::spsc::LAYOUT_VERSION, Ordering::Relaxed);

    let kind = shm.word_u32(offset_of!(Header, kind));
    kind.store(9, Ordering::Relaxed);
    assert!(matches!(shm.snapshot(), Err(Error::Corrupted { field: "kind", value: 9, .. })));
    kind.store(Kind::Spsc as u32, Ordering::Relaxed);

    let capacity = shm.word_u64(offset_of!(Header, capacity));
    capacity.store(12, Ordering::Relaxed);
    assert!(matches!(shm.snapshot(), Err(Error::Corrupted { field: "capacity", .. })));
    capacity.store(16, Ordering::Relaxed);

    // A head ahead of the tail: no order of loads explains it.
    let head = shm.word_u64(256);
    head.store(5, Ordering::Relaxed);
    assert!(matches!(shm.snapshot(), Err(Error::Corrupted { field: "tail - head", .. })));
    head.store(0, Ordering::Relaxed);
    assert_eq!(shm.snapshot().map(|snapshot| snapshot.fill()), Ok(Some(0)));

    let magic = shm.word_u64(offset_of!(Header, magic));
    magic.store(7, Ordering::Relaxed);
    assert!(matches!(shm.snapshot(), Err(Error::Corrupted { field: "magic", .. })));
}

/// Runs `producer` and `consumer` in loops on two threads, and takes snapshots meanwhile until
/// the producer has moved `distance` (and at least 10 000 snapshots), each passing `check`.
fn while_in_use(
    shm: &Twice,
    distance: u64,
    mut producer: impl FnMut() + Send,
    mut consumer: impl FnMut() + Send,
    check: impl Fn(&Snapshot<'_>),
) {
    let stop = &AtomicBool::new(false);
    let deadline = Instant::now() + Duration::from_secs(60);
    std::thread::scope(|scope| {
        scope.spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                producer();
            }
        });
        scope.spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                consumer();
            }
        });
        let mut count = 0_u32;
        loop {
            let snapshot = shm.snapshot();
            let done = snapshot.as_ref().map_or(true, |snapshot| {
                count += 1;
                let position = snapshot.producer().map_or(0, |producer| producer.position);
                (count >= 10_000 && position >= distance) || Instant::now() > deadline
            });
            if done {
                stop.store(true, Ordering::Relaxed);
            }
            check(&snapshot.expect("a ring in use is never reported corrupted"));
            if done {
                break;
            }
        }
    });
}

#[test]
fn snapshots_of_rings_in_use() {
    let shm = Twice::new(PAGE);
    let (ptr, len) = (shm.rw(), shm.len());

    let (mut producer, mut consumer) = shm.spsc(8, (1, 2));
    while_in_use(
        &shm,
        100_000,
        move || {
            let _ = producer.push(7).expect("push");
        },
        move || {
            let _ = consumer.pop().expect("pop");
        },
        |snapshot| assert!(snapshot.fill().is_some_and(|fill| fill <= 8), "{snapshot:?}"),
    );

    let (mut producer, mut consumer) = shm.byte_ring(64, (1, 2));
    let mut buffer = [0; 32];
    while_in_use(
        &shm,
        100_000,
        move || {
            let _ = producer.append(b"record").expect("append");
        },
        move || {
            let _ = consumer.read(&mut buffer).expect("read");
        },
        |snapshot| assert!(snapshot.fill().is_some_and(|fill| fill <= 64), "{snapshot:?}"),
    );

    let flow = Flow::Credit { consumers: 2 };
    // SAFETY: the mapping outlives the handles, and is used only through the ring; the byte
    // ring's handles are gone.
    let (mut producer, mut credit, mut lossy) = unsafe {
        Broadcast::<u64>::init(ptr, len, 4, flow).expect("init");
        (
            BroadcastProducer::<u64>::attach(ptr, len, id(1)).expect("producer"),
            BroadcastConsumer::<u64>::attach_credit(ptr, len, id(2)).expect("credit consumer"),
            BroadcastConsumer::<u64>::attach(ptr, len, Start::Oldest).expect("consumer"),
        )
    };
    while_in_use(
        &shm,
        100_000,
        move || {
            let _ = producer.try_publish(&7).expect("publish");
        },
        move || {
            let _ = credit.try_recv().expect("receive");
            let _ = lossy.try_recv().expect("receive");
        },
        |snapshot| {
            let broadcast = snapshot.broadcast().expect("a broadcast ring");
            assert_eq!(broadcast.registered, 1);
            assert!(broadcast.fill().is_some());
            for consumer in broadcast.credit_consumers() {
                assert_eq!(consumer.expect("a credit consumer").owner, id(2));
            }
        },
    );
}
