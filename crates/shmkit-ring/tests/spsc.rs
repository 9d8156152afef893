//! The SPSC ring between real processes, in a POSIX shared memory region of `shmkit-os`: this
//! test binary re-executes itself as the child (`child_process_entry`, role in the environment).
//!
//! - 10 million `u64`s from the parent (producer) to a child (consumer), one at a time with the
//!   blocking calls and in chunks of 64; the consumer checks every value and the order.
//! - A second producer in another process is refused.
//! - A producer process killed with SIGKILL keeps its role until the parent takes it over; the
//!   values it published are all delivered, in order, before the new producer's.
#![cfg(feature = "std")]

use std::ptr::NonNull;
use std::time::Duration;

use shmkit_name::Name;
use shmkit_os::{Access, MapOptions, Mapping, Region, RegionOptions};
use shmkit_ring::Error;
use shmkit_ring::spsc::{Consumer, Producer, SpscRing};
use shmkit_sync::SpinFutex;
use shmkit_testkit::{
    ChildProcess, RegionGuard, child_env, child_role, tell_parent, unique_name, wait_for_parent,
};

const MESSAGES: u64 = 10_000_000;
const CAPACITY: usize = 4096;
const CHUNK: usize = 64;
const NAME_ENV: &str = "SHMKIT_TEST_RING_NAME";
/// Long enough for a loaded CI machine; only a hung peer reaches it.
const TIMEOUT: Option<Duration> = Some(Duration::from_secs(60));

/// A region holding one ring, mapped in this process.
struct Shared {
    mapping: Mapping,
}

impl Shared {
    fn create(name: &Name) -> Self {
        let bytes = SpscRing::<u64>::bytes_for(CAPACITY).expect("layout");
        RegionOptions::new().create(name, bytes.div_ceil(4096) as u64).expect("create");
        let shared = Self::open(name);
        // SAFETY: the mapping outlives every handle of this test and holds only the ring.
        unsafe { SpscRing::<u64>::init(shared.ptr(), shared.mapping.len(), CAPACITY) }
            .expect("init");
        shared
    }

    fn open(name: &Name) -> Self {
        let mapping = Region::open(name, None, Access::ReadWrite)
            .and_then(|region| region.map(&MapOptions::new()))
            .expect("map the region");
        Self { mapping }
    }

    fn ptr(&self) -> NonNull<u8> {
        NonNull::new(self.mapping.as_ptr()).expect("a mapping is never null")
    }

    fn producer(&self) -> shmkit_ring::Result<Producer<'_, u64>> {
        // SAFETY: the mapping outlives the handle (borrowed from `self`).
        unsafe { Producer::attach_current_process(self.ptr(), self.mapping.len()) }
    }

    fn consumer(&self) -> shmkit_ring::Result<Consumer<'_, u64>> {
        // SAFETY: as above.
        unsafe { Consumer::attach_current_process(self.ptr(), self.mapping.len()) }
    }
}

/// The child's roles; a plain run (no role in the environment) does nothing here.
#[test]
fn child_process_entry() {
    let Some(role) = child_role() else { return };
    let name = Name::new(&child_env(NAME_ENV)).expect("valid name");
    let shared = Shared::open(&name);
    let strategy = SpinFutex::default();
    match role.as_str() {
        "consume-one-at-a-time" => {
            let mut consumer = shared.consumer().expect("consumer");
            tell_parent("attached");
            for expected in 0..MESSAGES {
                let value = consumer.pop_blocking(&strategy, TIMEOUT).expect("pop");
                assert_eq!(value, expected, "out of order or corrupted");
            }
            tell_parent("received all");
        }
        "consume-chunks" => {
            let mut consumer = shared.consumer().expect("consumer");
            tell_parent("attached");
            let mut expected = 0;
            let mut values = [0; CHUNK];
            while expected < MESSAGES {
                consumer.wait_for_len(1, &strategy, TIMEOUT).expect("wait for data");
                let chunk = consumer.read_chunk(CHUNK).expect("chunk");
                let count = chunk.len();
                chunk.copy_to_slice(&mut values[..count]);
                chunk.commit_all();
                consumer.notify_producer();
                for value in &values[..count] {
                    assert_eq!(*value, expected, "out of order or corrupted");
                    expected += 1;
                }
            }
            tell_parent("received all");
        }
        "second-producer" => {
            let refused = shared.producer().map(drop);
            let holder = std::os::unix::process::parent_id();
            assert!(
                matches!(refused, Err(Error::RoleTaken { role: "producer", owner, .. }) if owner == holder),
                "{refused:?}"
            );
            tell_parent("refused");
        }
        "produce-then-hang" => {
            let mut producer = shared.producer().expect("producer");
            for value in 0..1000 {
                assert!(producer.push(value).expect("push"), "room for 1000 values");
            }
            // A value written but not published: lost with the process.
            let mut chunk = producer.write_chunk(1).expect("chunk");
            chunk.set(0, u64::MAX);
            tell_parent("published 1000");
            // Killed here by the parent.
            wait_for_parent();
            std::process::abort();
        }
        other => panic!("unknown child role {other}"),
    }
}

fn spawn(role: &str, name: &Name) -> ChildProcess {
    ChildProcess::spawn("child_process_entry", role, &[(NAME_ENV, name.as_str().to_owned())])
}

#[test]
fn ten_million_values_one_at_a_time_across_processes() {
    let name = unique_name("ring-spsc-one");
    let _guard = RegionGuard(name);
    let shared = Shared::create(&name);
    let mut producer = shared.producer().expect("producer");
    let mut child = spawn("consume-one-at-a-time", &name);
    child.expect("attached");
    let strategy = SpinFutex::default();
    for value in 0..MESSAGES {
        producer.push_blocking(value, &strategy, TIMEOUT).expect("push");
    }
    child.expect("received all");
    child.finish();
}

#[test]
fn ten_million_values_in_chunks_across_processes() {
    let name = unique_name("ring-spsc-chunk");
    let _guard = RegionGuard(name);
    let shared = Shared::create(&name);
    let mut producer = shared.producer().expect("producer");
    let mut child = spawn("consume-chunks", &name);
    child.expect("attached");
    let strategy = SpinFutex::default();
    let mut next = 0;
    while next < MESSAGES {
        producer.wait_for_free(1, &strategy, TIMEOUT).expect("wait for space");
        let mut chunk = producer.write_chunk(CHUNK).expect("chunk");
        let count = (chunk.len() as u64).min(MESSAGES - next) as usize;
        for index in 0..count {
            chunk.set(index, next + index as u64);
        }
        chunk.commit(count);
        producer.notify_consumer();
        next += count as u64;
    }
    child.expect("received all");
    child.finish();
}

#[test]
fn a_second_producer_process_is_refused() {
    let name = unique_name("ring-spsc-second");
    let _guard = RegionGuard(name);
    let shared = Shared::create(&name);
    let _producer = shared.producer().expect("producer");
    let mut child = spawn("second-producer", &name);
    child.expect("refused");
    child.finish();
}

#[test]
fn a_killed_producer_is_taken_over() {
    let name = unique_name("ring-spsc-takeover");
    let _guard = RegionGuard(name);
    let shared = Shared::create(&name);
    let mut consumer = shared.consumer().expect("consumer");
    let mut child = spawn("produce-then-hang", &name);
    child.expect("published 1000");
    let child_pid = child.pid();
    // Held by a live process: no take-over.
    let refused = shared.producer().map(drop);
    assert!(matches!(refused, Err(Error::RoleTaken { owner, .. }) if owner == child_pid));
    // SAFETY: the mapping outlives the attempt.
    let refused = unsafe { Producer::<u64>::take_over_if_dead(shared.ptr(), shared.mapping.len()) };
    assert!(matches!(refused.map(drop), Err(Error::RoleTaken { .. })));
    // Dropping the handle SIGKILLs the child and reaps it, so its pid is gone.
    drop(child);
    // SAFETY: as above.
    let mut producer =
        unsafe { Producer::<u64>::take_over_if_dead(shared.ptr(), shared.mapping.len()) }
            .expect("take over the dead producer's role");
    assert_eq!(producer.owner().get(), std::process::id());
    producer.push(1000).expect("push");
    for expected in 0..=1000 {
        assert_eq!(consumer.pop(), Ok(Some(expected)));
    }
    assert_eq!(consumer.pop(), Ok(None));
}
