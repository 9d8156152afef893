//! The reader-writer lock between real processes: an `RwLock` in a POSIX shared memory region,
//! and children (this test binary re-executed in a role) that read, write, or are killed with
//! SIGKILL while reading, writing or waiting to write.
//!
//! A wait that must end runs on a helper thread with a 60 s guard, so a hang fails the test
//! instead of stalling it. No test asserts anything else about time.

use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal};
use shmkit_name::Name;
use shmkit_os::{Access, MapOptions, Mapping, Region, RegionOptions};
use shmkit_sync::{Error, RwLock};
use shmkit_testkit::{
    ChildProcess, RegionGuard, child_env, child_role, tell_parent, unique_name, wait_for_parent,
};

const NAME_ENV: &str = "SHMKIT_TEST_NAME";
const ROUNDS_ENV: &str = "SHMKIT_TEST_ROUNDS";
const OPEN_TIMEOUT: Duration = Duration::from_secs(10);
/// Far beyond any wait that should end; only a hang reaches it.
const HANG_GUARD: Duration = Duration::from_secs(60);

/// Offsets in the shared page: the lock, then two words every writer keeps equal (a writer
/// killed between the two writes leaves them apart), then atomics the test itself uses.
const LOCK: usize = 0;
const FIRST: usize = 1024;
const SECOND: usize = 1032;
const STOP: usize = 1088;

struct Shared {
    mapping: Mapping,
}

impl Shared {
    fn open(name: &Name) -> Self {
        let mapping = Region::open(name, None, Access::ReadWrite)
            .and_then(|region| region.map(&MapOptions::new()))
            .expect("map the test region");
        Self { mapping }
    }

    fn base(&self) -> NonNull<u8> {
        NonNull::new(self.mapping.as_ptr()).expect("a mapping is never null")
    }

    /// Initialises the lock (again): nobody may use it meanwhile.
    fn init(&self) -> &RwLock {
        // SAFETY: the mapping lives as long as `self`; the callers initialise before any child
        // starts or after every user has gone; the first bytes are used only as the lock.
        unsafe { RwLock::init_at(self.base(), self.mapping.len()) }.expect("init the lock")
    }

    fn lock(&self) -> &RwLock {
        // SAFETY: as in `init`; the parent initialised the bytes before starting any child.
        unsafe { RwLock::open_at(self.base(), self.mapping.len(), OPEN_TIMEOUT) }
            .expect("open the lock")
    }

    fn word(&self, offset: usize) -> *mut u64 {
        assert!(offset >= LOCK + RwLock::SIZE && offset + 8 <= self.mapping.len());
        self.mapping.as_ptr().wrapping_add(offset).cast()
    }

    /// A plain read of a protected word (the caller holds the lock, or no one else runs).
    fn read(&self, offset: usize) -> u64 {
        // SAFETY: inside the mapping, 8-aligned; the lock keeps writers out.
        unsafe { self.word(offset).read_volatile() }
    }

    fn write(&self, offset: usize, value: u64) {
        // SAFETY: as in `read`; the caller holds the write lock.
        unsafe { self.word(offset).write_volatile(value) }
    }

    fn stop(&self) -> &AtomicU64 {
        self.mapping.atomic_u64(STOP).expect("stop flag fits")
    }
}

/// The parent's region, created with a fresh lock and removed on drop.
struct TestRegion {
    name: Name,
    shared: Shared,
    _guard: RegionGuard,
}

impl TestRegion {
    fn new(tag: &str) -> Self {
        let name = unique_name(&format!("t-rw-{tag}"));
        let guard = RegionGuard(name);
        RegionOptions::new().create(&name, 1).expect("create the test region");
        let shared = Shared::open(&name);
        shared.init();
        Self { name, shared, _guard: guard }
    }

    fn spawn(&self, role: &str, extra: &[(&str, String)]) -> ChildProcess {
        let mut env = vec![(NAME_ENV, self.name.as_str().to_owned())];
        env.extend(extra.iter().cloned());
        ChildProcess::spawn("child_process_entry", role, &env)
    }

    /// Runs `work` on the lock from a thread of its own (with its own mapping), failing the test
    /// if it does not finish within the hang guard.
    fn bounded<T: Send + 'static>(
        &self,
        what: &str,
        work: impl FnOnce(&Shared, &RwLock) -> T + Send + 'static,
    ) -> T {
        let name = self.name;
        let (sender, receiver) = mpsc::channel();
        std::thread::spawn(move || {
            let shared = Shared::open(&name);
            let _ = sender.send(work(&shared, shared.lock()));
        });
        receiver.recv_timeout(HANG_GUARD).unwrap_or_else(|_| panic!("{what} hung"))
    }
}

/// `kill -9` the child (it stays a zombie until dropped).
fn kill(child: &ChildProcess) {
    let pid = Pid::from_raw(child.pid().cast_signed()).expect("a child pid is positive");
    rustix::process::kill_process(pid, Signal::KILL).expect("kill -9 the child");
}

/// `kill -9` the child, then reap it.
fn kill_and_reap(child: ChildProcess) {
    kill(&child);
    drop(child);
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
fn read_outcome(shared: &Shared, lock: &RwLock) -> String {
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
    let shared = Shared::open(&Name::new(&child_env(NAME_ENV)).expect("valid name"));
    let lock = shared.lock();
    let rounds = || -> u64 { child_env(ROUNDS_ENV).parse().expect("rounds") };
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
            while shared.stop().load(Ordering::Acquire) == 0 {
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
            while shared.stop().load(Ordering::Acquire) == 0 {
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
    let region = TestRegion::new("exclusion");
    let mut writer = region.spawn("writer", &[(ROUNDS_ENV, ROUNDS.to_string())]);
    let mut readers: Vec<ChildProcess> = (0..2).map(|_| region.spawn("reader", &[])).collect();
    writer.expect("ready");
    for reader in &mut readers {
        reader.expect("ready");
    }
    for reader in &mut readers {
        reader.send("go");
    }
    writer.send("go");
    // This process reads too, while the others run.
    let lock = region.shared.lock();
    let mut torn_here = 0;
    for _ in 0..2_000 {
        let guard = lock.read().expect("read");
        torn_here += u64::from(region.shared.read(FIRST) != region.shared.read(SECOND));
        drop(guard);
    }
    writer.expect("wrote");
    writer.finish();
    region.shared.stop().store(1, Ordering::Release);
    for mut reader in readers {
        let report = reader.expect("read");
        assert!(report.ends_with("torn 0"), "a reader saw a half-done write: {report}");
        reader.finish();
    }
    assert_eq!(torn_here, 0);
    let _guard = lock.read().expect("read");
    assert_eq!((region.shared.read(FIRST), region.shared.read(SECOND)), (ROUNDS, ROUNDS));
}

#[test]
fn a_waiting_writer_keeps_new_readers_out() {
    let region = TestRegion::new("prefer");
    let lock = region.shared.lock();
    let held = lock.read().expect("read");
    let mut writer = region.spawn("write-once", &[]);
    // The writer blocks behind `held`; once it has announced itself, a new reader must wait
    // even though only readers hold the lock (a reader-preferring lock would let it in).
    until_a_writer_waits(lock);
    assert!(lock.try_read().expect("try_read").is_none());
    assert!(lock.try_write().expect("try_write").is_none());
    drop(held);
    writer.expect("wrote");
    writer.finish();
    let _guard = lock.read().expect("read");
    assert_eq!((region.shared.read(FIRST), region.shared.read(SECOND)), (1, 1));
}

#[test]
fn a_stream_of_overlapping_readers_does_not_starve_a_writer() {
    let region = TestRegion::new("stream");
    let mut readers: Vec<ChildProcess> =
        (0..3).map(|_| region.spawn("stream-reader", &[])).collect();
    for reader in &mut readers {
        reader.expect("streaming");
    }
    let wrote = region.bounded("a write among streaming readers", |shared, lock| {
        let guard = lock.write().expect("write");
        shared.write(FIRST, 7);
        shared.write(SECOND, 7);
        drop(guard);
        true
    });
    assert!(wrote);
    region.shared.stop().store(1, Ordering::Release);
    for mut reader in readers {
        reader.expect("stopped");
        reader.finish();
    }
}

#[test]
fn a_killed_reader_does_not_keep_a_writer_out() {
    let region = TestRegion::new("dead-reader");
    let lock = region.shared.lock();
    let mut child = region.spawn("die-reading", &[]);
    child.expect("reading");
    assert!(lock.try_write().expect("try_write").is_none(), "a live reader holds it");

    // Killed but not reaped: a zombie, which `kill(pid, 0)` still finds.
    kill(&child);
    let owner_died = region.bounded("a write after a reader died", |_, lock| {
        lock.write().expect("write").owner_died()
    });
    assert!(!owner_died, "a dead reader changed nothing");
    drop(child);
    assert!(lock.try_write().expect("try_write").is_some());
    assert!(lock.try_read().expect("try_read").is_some());
}

#[test]
fn a_writer_killed_while_writing_is_reported_and_repaired() {
    let region = TestRegion::new("dead-writer");
    let shared = &region.shared;
    let lock = shared.lock();
    let mut child = region.spawn("die-writing", &[]);
    child.expect("writing");
    let child_pid = child.pid();

    // A reader already waiting when the writer dies must not wait forever.
    let waiting_reader = region.bounded_start(|_, lock| match lock.read() {
        Err(Error::OwnerDied { pid, .. }) => pid,
        other => panic!("expected OwnerDied, got {other:?}"),
    });
    kill_and_reap(child);
    assert_eq!(waiting_reader.finish("a reader waiting for a dead writer"), child_pid);

    for _ in 0..2 {
        assert!(matches!(lock.read(), Err(Error::OwnerDied { pid, .. }) if pid == child_pid));
        assert!(matches!(lock.try_read(), Err(Error::OwnerDied { .. })));
    }
    let message = lock.read().expect_err("owner died").to_string();
    assert!(message.contains("mark_consistent"), "the error says what to do: {message}");
    let mut reporter = region.spawn("report-read", &[]);
    assert_eq!(reporter.expect("read"), format!("owner-died {child_pid}"));
    reporter.finish();

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
    let mut reporter = region.spawn("report-read", &[]);
    assert_eq!(reporter.expect("read"), "normal");
    reporter.finish();
}

#[test]
fn an_unrepaired_lock_is_not_recoverable_until_initialised_again() {
    let region = TestRegion::new("unrepaired");
    let lock = region.shared.lock();
    let mut child = region.spawn("die-writing", &[]);
    child.expect("writing");
    kill_and_reap(child);

    let guard = lock.write().expect("write");
    assert!(guard.owner_died());
    drop(guard); // without mark_consistent

    assert!(matches!(lock.read(), Err(Error::NotRecoverable { .. })));
    assert!(matches!(lock.try_read(), Err(Error::NotRecoverable { .. })));
    assert!(matches!(lock.write(), Err(Error::NotRecoverable { .. })));
    assert!(matches!(lock.try_write(), Err(Error::NotRecoverable { .. })));
    let mut reporter = region.spawn("report-read", &[]);
    assert_eq!(reporter.expect("read"), "not-recoverable");
    reporter.finish();

    region.shared.write(SECOND, region.shared.read(FIRST));
    let lock = region.shared.init();
    assert!(!lock.write().expect("write").owner_died());
    let mut reporter = region.spawn("report-read", &[]);
    assert_eq!(reporter.expect("read"), "normal");
    reporter.finish();
}

#[test]
fn a_writer_killed_while_waiting_for_readers_leaves_nothing_to_repair() {
    let region = TestRegion::new("dead-intent");
    let lock = region.shared.lock();
    let held = lock.read().expect("read");
    let mut child = region.spawn("die-waiting-to-write", &[]);
    child.expect("writing soon");
    until_a_writer_waits(lock);
    kill_and_reap(child);
    drop(held);

    // Readers find the dead writer's intent and clear it.
    let read = region.bounded("a read after a waiting writer died", |shared, lock| {
        let _guard = lock.read().expect("read");
        (shared.read(FIRST), shared.read(SECOND))
    });
    assert_eq!(read, (0, 0));
    assert!(!lock.write().expect("write").owner_died(), "the dead writer never wrote");
    let mut reporter = region.spawn("report-read", &[]);
    assert_eq!(reporter.expect("read"), "normal");
    reporter.finish();
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

/// A piece of work started on a thread of its own by [`TestRegion::bounded_start`].
struct Started<T> {
    receiver: mpsc::Receiver<T>,
}

impl<T> Started<T> {
    fn finish(self, what: &str) -> T {
        self.receiver.recv_timeout(HANG_GUARD).unwrap_or_else(|_| panic!("{what} hung"))
    }
}

impl TestRegion {
    /// As [`TestRegion::bounded`], but returns at once; [`Started::finish`] waits for the result.
    fn bounded_start<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Shared, &RwLock) -> T + Send + 'static,
    ) -> Started<T> {
        let name = self.name;
        let (sender, receiver) = mpsc::channel();
        std::thread::spawn(move || {
            let shared = Shared::open(&name);
            let _ = sender.send(work(&shared, shared.lock()));
        });
        Started { receiver }
    }
}
