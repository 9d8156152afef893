//! The seqlock between real processes, in a POSIX shared memory region of `shmkit-os`, and its
//! edges in one process.
//!
//! A writer process stores a value of eight words that are always all equal (a counter), as fast
//! as it can; a reader process reads it 10 million times and checks that no read returns a torn
//! value (words not all equal) and that the counter never goes back.
#![cfg(feature = "std")]

use std::num::NonZeroU32;
use std::ptr::NonNull;

use shmkit_name::Name;
use shmkit_os::{Access, MapOptions, Mapping, Region, RegionOptions};
use shmkit_ring::Error;
use shmkit_ring::seqlock::{Reader, SeqLock, Writer};
use shmkit_testkit::{
    ChildProcess, HeapBuffer, RegionGuard, child_env, child_role, tell_parent, unique_name,
    wait_for_parent,
};

/// Eight equal words: 64 bytes, so a write spans many stores and a torn read is likely if the
/// protocol were wrong.
type Value = [u64; 8];

const READS: u64 = 10_000_000;
const NAME_ENV: &str = "SHMKIT_TEST_SEQLOCK_NAME";

struct Shared {
    mapping: Mapping,
}

impl Shared {
    fn create(name: &Name) -> Self {
        RegionOptions::new().create(name, 1).expect("create");
        let shared = Self::open(name);
        // SAFETY: the mapping outlives every handle and holds only the seqlock.
        unsafe { SeqLock::<Value>::init(shared.ptr(), shared.mapping.len(), &[0; 8]) }
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

    fn writer(&self) -> shmkit_ring::Result<Writer<'_, Value>> {
        // SAFETY: the mapping outlives the handle (borrowed from `self`).
        unsafe { Writer::attach_current_process(self.ptr(), self.mapping.len()) }
    }

    fn reader(&self) -> Reader<'_, Value> {
        // SAFETY: as above.
        unsafe { Reader::open(self.ptr(), self.mapping.len()) }.expect("reader")
    }
}

#[test]
fn child_process_entry() {
    let Some(role) = child_role() else { return };
    let name = Name::new(&child_env(NAME_ENV)).expect("valid name");
    let shared = Shared::open(&name);
    match role.as_str() {
        "write-until-told" => {
            let mut writer = shared.writer().expect("writer");
            tell_parent("attached");
            // Writes on another thread until the parent says stop (a line on stdin).
            let stop = std::sync::atomic::AtomicBool::new(false);
            std::thread::scope(|scope| {
                scope.spawn(|| {
                    wait_for_parent();
                    stop.store(true, std::sync::atomic::Ordering::Relaxed);
                });
                let mut counter = 0_u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    counter += 1;
                    writer.write(&[counter; 8]);
                    // Read-mostly: a pause between writes (a writer that writes back to back
                    // leaves readers only the moments it is descheduled).
                    for _ in 0..32 {
                        std::hint::spin_loop();
                    }
                }
                tell_parent(&format!("wrote {counter}"));
            });
        }
        "second-writer" => {
            let refused = shared.writer().map(drop);
            assert!(matches!(refused, Err(Error::RoleTaken { role: "writer", .. })), "{refused:?}");
            tell_parent("refused");
        }
        other => panic!("unknown child role {other}"),
    }
}

#[test]
fn no_torn_value_across_processes() {
    let name = unique_name("ring-seqlock");
    let _guard = RegionGuard(name);
    let shared = Shared::create(&name);
    let mut child = ChildProcess::spawn(
        "child_process_entry",
        "write-until-told",
        &[(NAME_ENV, name.as_str().to_owned())],
    );
    child.expect("attached");
    let mut second = ChildProcess::spawn(
        "child_process_entry",
        "second-writer",
        &[(NAME_ENV, name.as_str().to_owned())],
    );
    second.expect("refused");
    second.finish();

    let reader = shared.reader();
    let mut last = 0;
    let mut changes = 0_u64;
    for _ in 0..READS {
        let value = reader.read();
        assert!(value.iter().all(|word| *word == value[0]), "torn read: {value:?}");
        assert!(value[0] >= last, "went back from {last} to {}", value[0]);
        changes += u64::from(value[0] != last);
        last = value[0];
    }
    child.send("stop");
    let wrote: u64 = child.expect("wrote").parse().expect("a count");
    child.finish();
    assert!(last <= wrote);
    // Not a timing assertion: the writer ran during every read, so the reads saw it move.
    assert!(changes > 0, "the reader never saw a write");
    println!("{READS} reads saw {changes} of {wrote} writes");
}

fn buffer(len: usize) -> (HeapBuffer, NonNull<u8>, usize) {
    let mut buffer = HeapBuffer::new(len);
    let (ptr, len) = buffer.range();
    (buffer, ptr, len)
}

#[test]
fn odd_sizes_round_trip_and_versions_move() {
    // 3 bytes and 17 bytes: the last word is partial.
    let (_blocks, ptr, len) = buffer(SeqLock::<[u8; 17]>::bytes_for());
    // SAFETY: the buffer outlives the handles.
    unsafe { SeqLock::init(ptr, len, &[1_u8; 17]) }.expect("init");
    // SAFETY: the test buffer outlives every handle and is used only through the primitive.
    let mut writer = unsafe { Writer::<[u8; 17]>::attach(ptr, len, NonZeroU32::MIN) }.expect("w");
    // SAFETY: the test buffer outlives every handle and is used only through the primitive.
    let reader = unsafe { Reader::<[u8; 17]>::open(ptr, len) }.expect("reader");
    assert_eq!(reader.read(), [1; 17]);
    let before = reader.version();
    let mut value = [0_u8; 17];
    for (index, byte) in value.iter_mut().enumerate() {
        *byte = index as u8;
    }
    writer.write(&value);
    assert_eq!(reader.version(), before + 2);
    assert_eq!(reader.try_read(), Some(value));
    // SAFETY: the test buffer outlives every handle and is used only through the primitive.
    let mismatch = unsafe { Reader::<[u8; 3]>::open(ptr, len) };
    assert!(matches!(mismatch, Err(Error::Corrupted { field: "element size", .. })));
}

#[test]
fn a_dead_writer_mid_write_blocks_readers_until_taken_over() {
    let (_blocks, ptr, len) = buffer(SeqLock::<u64>::bytes_for());
    let one = NonZeroU32::MIN;
    let two = NonZeroU32::new(2).expect("non-zero");
    // SAFETY: the buffer outlives the handles.
    unsafe { SeqLock::init(ptr, len, &5_u64) }.expect("init");
    // SAFETY: the test buffer outlives every handle and is used only through the primitive.
    let writer = unsafe { Writer::<u64>::attach(ptr, len, one) }.expect("writer");
    assert!(matches!(
        // SAFETY: the test buffer outlives every handle and is used only through the primitive.
        unsafe { Writer::<u64>::attach(ptr, len, two) },
        Err(Error::RoleTaken { owner: 1, .. })
    ));
    // SAFETY: the test buffer outlives every handle and is used only through the primitive.
    let reader = unsafe { Reader::<u64>::open(ptr, len) }.expect("reader");
    // The writer "dies" between its odd store and its words: simulate with a raw odd sequence.
    std::mem::forget(writer);
    // SAFETY: the test buffer outlives every handle and is used only through the primitive.
    let sequence = unsafe { ptr.add(128).cast::<std::sync::atomic::AtomicU64>().as_ref() };
    sequence.store(3, std::sync::atomic::Ordering::Relaxed);
    assert_eq!(reader.read_once(), None);
    assert_eq!(reader.try_read(), None);
    // SAFETY: the test buffer outlives every handle and is used only through the primitive.
    let mut writer = unsafe { Writer::<u64>::take_over(ptr, len, one, two) }.expect("take over");
    writer.write(&6);
    assert_eq!(reader.version(), 4);
    assert_eq!(reader.try_read(), Some(6));
    drop(writer);
    // SAFETY: the test buffer outlives every handle and is used only through the primitive.
    let _again = unsafe { Writer::<u64>::attach(ptr, len, one) }.expect("released on drop");
}

#[test]
fn readers_and_writer_threads_never_see_a_torn_value() {
    let (_blocks, ptr, len) = buffer(SeqLock::<Value>::bytes_for());
    // SAFETY: the buffer outlives the scoped threads.
    unsafe { SeqLock::<Value>::init(ptr, len, &[0; 8]) }.expect("init");
    // SAFETY: the test buffer outlives every handle and is used only through the primitive.
    let mut writer = unsafe { Writer::<Value>::attach(ptr, len, NonZeroU32::MIN) }.expect("w");
    // SAFETY: the test buffer outlives every handle and is used only through the primitive.
    let reader = unsafe { Reader::<Value>::open(ptr, len) }.expect("reader");
    std::thread::scope(|scope| {
        scope.spawn(move || {
            for counter in 1..=200_000 {
                writer.update(|value| *value = [counter; 8]);
            }
        });
        let mut last = 0;
        while last < 200_000 {
            if let Some(value) = reader.try_read() {
                assert!(value.iter().all(|word| *word == value[0]), "torn read: {value:?}");
                assert!(value[0] >= last);
                last = value[0];
            }
        }
    });
}
