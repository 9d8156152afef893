//! The reader-writer lock between real processes: an `RwLock` in a POSIX shared memory region,
//! and children (this test binary re-executed in a role) that read, write, or are killed with
//! SIGKILL while reading, writing or waiting to write.
//!
//! A wait that must end runs on a helper thread with a 60 s guard, so a hang fails the test
//! instead of stalling it. No test asserts anything else about time.

mod common;

use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use shmkit_sync::{Error, RwLock};
use shmkit_testkit::{ChildProcess, SharedRegion, child_role, tell_parent, wait_for_parent};

use common::{HANG_GUARD, OPEN_TIMEOUT, PlainWords, ROUNDS_ENV, ask, finish_all, rounds, spawn_on};

/// Offsets in the shared page: the lock, then two words every writer keeps equal (a writer
/// killed between the two writes leaves them apart), then atomics the test itself uses.
const LOCK: usize = 0;
const FIRST: usize = 1024;
const SECOND: usize = 1032;
const STOP: usize = 1088;
const _: () = assert!(FIRST >= LOCK + RwLock::SIZE, "the data is beside the lock");

/// Initialises the lock of `region` (again): nobody may use it meanwhile.
fn init(region: &SharedRegion) -> &RwLock {
    // SAFETY: the mapping lives as long as `region`; the callers initialise before any child
    // starts or after every user has gone; the first bytes are used only as the lock.
    unsafe { RwLock::init_at(region.ptr(), region.len()) }.expect("init the lock")
}

/// Opens the lock of `region`.
fn open(region: &SharedRegion) -> &RwLock {
    // SAFETY: as in `init`; the parent initialised the bytes before starting any child.
    unsafe { RwLock::open_at(region.ptr(), region.len(), OPEN_TIMEOUT) }.expect("open the lock")
}

/// The flag that tells reading children to stop.
fn stop(region: &SharedRegion) -> &AtomicU64 {
    region.atomic_u64(STOP)
}

/// The parent's region, with a fresh lock; removed on drop.
fn test_region(tag: &str) -> SharedRegion {
    let region = SharedRegion::create(&format!("t-rw-{tag}"));
    init(&region);
    region
}

/// Until `try_read` would block: a writer has announced itself.
fn until_a_writer_waits(lock: &RwLock) {
    let start = Instant::now();
    while lock.try_read().expect("try_read").is_some() {
        assert!(start.elapsed() < HANG_GUARD, "the writer never announced itself");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// What a read found, as a child reports it.
fn read_outcome(shared: &SharedRegion, lock: &RwLock) -> String {
    match lock.read() {
        Ok(_guard) if shared.read(FIRST) == shared.read(SECOND) => "normal".to_owned(),
        Ok(_guard) => "inconsistent data".to_owned(),
        Err(Error::OwnerDied { pid, .. }) => format!("owner-died {pid}"),
        Err(Error::NotRecoverable { .. }) => "not-recoverable".to_owned(),
        Err(error) => format!("error {error}"),
    }
}

/// The children's side; a plain run (no role) is the parent and does nothing here.
#[test]
fn child_process_entry() {
    let Some(role) = child_role() else { return };
    let shared = SharedRegion::from_env();
    let lock = open(&shared);
    match role.as_str() {
        "die-reading" => {
            let _guard = lock.read().expect("read");
            tell_parent("reading");
            wait_for_parent();
            unreachable!("the parent kills this child while it reads");
        }
        // Writes the first of the two words and waits to be killed.
        "die-writing" => {
            let guard = lock.write().expect("write");
            assert!(!guard.owner_died());
            shared.write(FIRST, shared.read(FIRST) + 1);
            tell_parent("writing");
            wait_for_parent();
            unreachable!("the parent kills this child while it writes");
        }
        // Blocks in `write` behind the parent's read lock, and is killed there.
        "die-waiting-to-write" => {
            tell_parent("writing soon");
            let _guard = lock.write().expect("write");
            tell_parent("wrote");
            wait_for_parent();
        }
        "write-once" => {
            let guard = lock.write().expect("write");
            shared.write(FIRST, shared.read(FIRST) + 1);
            shared.write(SECOND, shared.read(SECOND) + 1);
            drop(guard);
            tell_parent("wrote");
        }
        "report-read" => tell_parent(&format!("read {}", read_outcome(&shared, lock))),
        "writer" => {
            let rounds = rounds();
            tell_parent("ready");
            wait_for_parent();
            for round in 1..=rounds {
                let guard = lock.write().expect("write");
                shared.write(FIRST, round);
                std::thread::yield_now(); // widen the window a reader could see
                shared.write(SECOND, round);
                drop(guard);
            }
            tell_parent("wrote");
        }
        // Reads until told to stop; reports how many reads saw the two words differ.
        "reader" => {
            tell_parent("ready");
            wait_for_parent();
            let (mut reads, mut torn) = (0_u64, 0_u64);
            while stop(&shared).load(Ordering::Acquire) == 0 {
                let guard = lock.read().expect("read");
                let first = shared.read(FIRST);
                std::thread::yield_now();
                torn += u64::from(first != shared.read(SECOND));
                reads += 1;
                drop(guard);
            }
            tell_parent(&format!("read {reads} torn {torn}"));
        }
        // Holds read locks back to back, 2 ms each, until told to stop.
        "stream-reader" => {
            let mut first = true;
            while stop(&shared).load(Ordering::Acquire) == 0 {
                let guard = lock.read().expect("read");
                if first {
                    tell_parent("streaming");
                    first = false;
                }
                std::thread::sleep(Duration::from_millis(2));
                drop(guard);
            }
            tell_parent("stopped");
        }
        other => panic!("unknown child role {other}"),
    }
}

#[test]
fn a_writer_excludes_readers_of_other_processes() {
    const ROUNDS: u64 = 3_000;
    let region = test_region("exclusion");
    let mut writer = spawn_on(&region, "writer", &[(ROUNDS_ENV, ROUNDS.to_string())]);
    let mut readers: Vec<ChildProcess> = (0..2).map(|_| spawn_on(&region, "reader", &[])).collect();
    writer.expect("ready");
    for reader in &mut readers {
        reader.expect("ready");
    }
    for reader in &mut readers {
        reader.send("go");
    }
    writer.send("go");
    // This process reads too, while the others run.
    let lock = open(&region);
    let mut torn_here = 0;
    for _ in 0..2_000 {
        let guard = lock.read().expect("read");
        torn_here += u64::from(region.read(FIRST) != region.read(SECOND));
        drop(guard);
    }
    writer.expect("wrote");
    writer.finish();
    stop(&region).store(1, Ordering::Release);
    for mut reader in readers {
        let report = reader.expect("read");
        assert!(report.ends_with("torn 0"), "a reader saw a half-done write: {report}");
        reader.finish();
    }
    assert_eq!(torn_here, 0);
    let _guard = lock.read().expect("read");
    assert_eq!((region.read(FIRST), region.read(SECOND)), (ROUNDS, ROUNDS));
}

#[test]
fn a_waiting_writer_keeps_new_readers_out() {
    let region = test_region("prefer");
    let lock = open(&region);
    let held = lock.read().expect("read");
    let mut writer = spawn_on(&region, "write-once", &[]);
    // The writer blocks behind `held`; once it has announced itself, a new reader must wait
    // even though only readers hold the lock (a reader-preferring lock would let it in).
    until_a_writer_waits(lock);
    assert!(lock.try_read().expect("try_read").is_none());
    assert!(lock.try_write().expect("try_write").is_none());
    drop(held);
    writer.expect("wrote");
    writer.finish();
    let _guard = lock.read().expect("read");
    assert_eq!((region.read(FIRST), region.read(SECOND)), (1, 1));
}

#[test]
fn a_stream_of_overlapping_readers_does_not_starve_a_writer() {
    let region = test_region("stream");
    let mut readers: Vec<ChildProcess> =
        (0..3).map(|_| spawn_on(&region, "stream-reader", &[])).collect();
    for reader in &mut readers {
        reader.expect("streaming");
    }
    let wrote = bounded(&region, "a write among streaming readers", |shared, lock| {
        let guard = lock.write().expect("write");
        shared.write(FIRST, 7);
        shared.write(SECOND, 7);
        drop(guard);
        true
    });
    assert!(wrote);
    stop(&region).store(1, Ordering::Release);
    finish_all(readers, "stopped");
}

#[test]
fn a_killed_reader_does_not_keep_a_writer_out() {
    let region = test_region("dead-reader");
    let lock = open(&region);
    let mut child = spawn_on(&region, "die-reading", &[]);
    child.expect("reading");
    assert!(lock.try_write().expect("try_write").is_none(), "a live reader holds it");

    // Killed but not reaped: a zombie, which `kill(pid, 0)` still finds.
    child.kill();
    let owner_died = bounded(&region, "a write after a reader died", |_, lock| {
        lock.write().expect("write").owner_died()
    });
    assert!(!owner_died, "a dead reader changed nothing");
    drop(child);
    assert!(lock.try_write().expect("try_write").is_some());
    assert!(lock.try_read().expect("try_read").is_some());
}

#[test]
fn a_writer_killed_while_writing_is_reported_and_repaired() {
    let region = test_region("dead-writer");
    let shared = &region;
    let lock = open(shared);
    let mut child = spawn_on(&region, "die-writing", &[]);
    child.expect("writing");
    let child_pid = child.pid();

    // A reader already waiting when the writer dies must not wait forever.
    let waiting_reader = bounded_start(&region, |_, lock| match lock.read() {
        Err(Error::OwnerDied { pid, .. }) => pid,
        other => panic!("expected OwnerDied, got {other:?}"),
    });
    child.kill_and_reap();
    assert_eq!(waiting_reader.finish("a reader waiting for a dead writer"), child_pid);

    for _ in 0..2 {
        assert!(matches!(lock.read(), Err(Error::OwnerDied { pid, .. }) if pid == child_pid));
        assert!(matches!(lock.try_read(), Err(Error::OwnerDied { .. })));
    }
    let message = lock.read().expect_err("owner died").to_string();
    assert!(message.contains("mark_consistent"), "the error says what to do: {message}");
    assert_eq!(ask(&region, "report-read", "read"), format!("owner-died {child_pid}"));

    let mut guard = lock.write().expect("write");
    assert!(guard.owner_died());
    assert_eq!((shared.read(FIRST), shared.read(SECOND)), (1, 0), "the half-done write");
    shared.write(SECOND, shared.read(FIRST));
    guard.mark_consistent();
    drop(guard);

    let guard = lock.read().expect("read");
    assert_eq!((shared.read(FIRST), shared.read(SECOND)), (1, 1));
    drop(guard);
    assert!(!lock.write().expect("write").owner_died());
    assert_eq!(ask(&region, "report-read", "read"), "normal");
}

#[test]
fn an_unrepaired_lock_is_not_recoverable_until_initialised_again() {
    let region = test_region("unrepaired");
    let lock = open(&region);
    let mut child = spawn_on(&region, "die-writing", &[]);
    child.expect("writing");
    child.kill_and_reap();

    let guard = lock.write().expect("write");
    assert!(guard.owner_died());
    drop(guard); // without mark_consistent

    assert!(matches!(lock.read(), Err(Error::NotRecoverable { .. })));
    assert!(matches!(lock.try_read(), Err(Error::NotRecoverable { .. })));
    assert!(matches!(lock.write(), Err(Error::NotRecoverable { .. })));
    assert!(matches!(lock.try_write(), Err(Error::NotRecoverable { .. })));
    assert_eq!(ask(&region, "report-read", "read"), "not-recoverable");

    region.write(SECOND, region.read(FIRST));
    let lock = init(&region);
    assert!(!lock.write().expect("write").owner_died());
    assert_eq!(ask(&region, "report-read", "read"), "normal");
}

#[test]
fn a_writer_killed_while_waiting_for_readers_leaves_nothing_to_repair() {
    let region = test_region("dead-intent");
    let lock = open(&region);
    let held = lock.read().expect("read");
    let mut child = spawn_on(&region, "die-waiting-to-write", &[]);
    child.expect("writing soon");
    until_a_writer_waits(lock);
    child.kill_and_reap();
    drop(held);

    // Readers find the dead writer's intent and clear it.
    let read = bounded(&region, "a read after a waiting writer died", |shared, lock| {
        let _guard = lock.read().expect("read");
        (shared.read(FIRST), shared.read(SECOND))
    });
    assert_eq!(read, (0, 0));
    assert!(!lock.write().expect("write").owner_died(), "the dead writer never wrote");
    assert_eq!(ask(&region, "report-read", "read"), "normal");
}

#[test]
fn in_one_process_guards_share_and_exclude() {
    let lock = RwLock::boxed().expect("lock");
    let first = lock.read().expect("read");
    let second = lock.try_read().expect("try_read").expect("readers share");
    assert!(lock.try_write().expect("try_write").is_none());
    drop((first, second));

    let writer = lock.write().expect("write");
    assert!(matches!(lock.write(), Err(Error::Deadlock { .. })));
    assert!(matches!(lock.try_write(), Err(Error::Deadlock { .. })));
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                assert!(lock.try_read().expect("try_read").is_none());
                assert!(lock.try_write().expect("try_write").is_none());
            })
            .join()
            .expect("thread");
        // A reader that waits for the writer gets in once it leaves.
        let reader = scope.spawn(|| drop(lock.read().expect("read")));
        drop(writer);
        reader.join().expect("reader");
    });

    // Readers beyond the slot table wait; up to it, they all get in.
    let guards: Vec<_> = (0..shmkit_sync::READER_SLOTS)
        .map(|_| lock.try_read().expect("try_read").expect("a free slot"))
        .collect();
    assert!(lock.try_read().expect("try_read").is_none(), "every slot taken");
    drop(guards);
    assert!(lock.try_write().expect("try_write").is_some());
}

/// 128-aligned bytes on the heap, to place locks in (and to corrupt).
#[repr(C, align(128))]
struct Bytes([u8; 1024]);

#[test]
fn placement_and_header_are_checked() {
    let mut bytes = Box::new(Bytes([0; 1024]));
    let base = NonNull::from(&mut bytes.0).cast::<u8>();

    // SAFETY: (this call and every one below) `bytes` outlives the references, which are used only here, and
    // its bytes are used only as the lock.
    let misaligned = unsafe { RwLock::init_at(base.add(64), 900) };
    assert!(matches!(misaligned, Err(Error::Placement { .. })), "{misaligned:?}");
    // SAFETY: as above.
    let short = unsafe { RwLock::init_at(base, RwLock::SIZE - 1) };
    assert!(matches!(short, Err(Error::Placement { .. })), "{short:?}");
    // SAFETY: as above.
    let unpublished = unsafe { RwLock::open_at(base, 1024, Duration::from_millis(10)) };
    assert!(matches!(unpublished, Err(Error::NotPublished { .. })), "{unpublished:?}");

    // SAFETY: as above.
    unsafe { RwLock::init_at(base, 1024) }.expect("init");
    // SAFETY: as above.
    let opened = unsafe { RwLock::open_at(base, 1024, Duration::ZERO) };
    assert!(opened.is_ok(), "{opened:?}");
    // A wrong magic (offset 0), then a wrong magic of the embedded mutex (offset 128).
    // SAFETY: inside `bytes`; no reference to the lock is used after this.
    unsafe { base.cast::<u32>().write_volatile(0xDEAD_BEEF) };
    // SAFETY: as above.
    let bad_magic = unsafe { RwLock::open_at(base, 1024, Duration::ZERO) };
    assert!(matches!(bad_magic, Err(Error::Corrupted { .. })), "{bad_magic:?}");
    // SAFETY: as above.
    unsafe { RwLock::init_at(base, 1024) }.expect("init");
    // SAFETY: as above.
    unsafe { base.add(128).cast::<u32>().write_volatile(0xDEAD_BEEF) };
    // SAFETY: as above.
    let bad_inner = unsafe { RwLock::open_at(base, 1024, Duration::ZERO) };
    assert!(
        matches!(bad_inner, Err(Error::Corrupted { what: "robust mutex", .. })),
        "{bad_inner:?}"
    );
}

/// Runs `work` on the lock of `region` from a thread of its own (with its own mapping), failing
/// the test if it does not finish within the hang guard.
fn bounded<T: Send + 'static>(
    region: &SharedRegion,
    what: &str,
    work: impl FnOnce(&SharedRegion, &RwLock) -> T + Send + 'static,
) -> T {
    bounded_start(region, work).finish(what)
}

/// A piece of work started on a thread of its own by [`bounded_start`].
struct Started<T> {
    receiver: mpsc::Receiver<T>,
}

impl<T> Started<T> {
    fn finish(self, what: &str) -> T {
        self.receiver.recv_timeout(HANG_GUARD).unwrap_or_else(|_| panic!("{what} hung"))
    }
}

/// As [`bounded`], but returns at once; [`Started::finish`] waits for the result.
fn bounded_start<T: Send + 'static>(
    region: &SharedRegion,
    work: impl FnOnce(&SharedRegion, &RwLock) -> T + Send + 'static,
) -> Started<T> {
    let name = *region.name();
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        let shared = SharedRegion::open(&name);
        let _ = sender.send(work(&shared, open(&shared)));
    });
    Started { receiver }
}
