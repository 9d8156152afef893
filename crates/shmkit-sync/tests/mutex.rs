//! The robust mutex between real processes: a `RobustMutex` in a POSIX shared memory region, and
//! children (this test binary re-executed in a role) that lock it, count under it, or are killed
//! with SIGKILL while holding it. No test asserts anything about time.

mod common;

use std::ptr::NonNull;
use std::time::Duration;

use shmkit_sync::{Error, RobustMutex};
use shmkit_testkit::{ChildProcess, SharedRegion, child_role, tell_parent, wait_for_parent};

use common::{
    OPEN_TIMEOUT, PlainWords, ROUNDS_ENV, ask, count_under, finish_all, spawn_on, start_together,
};

/// Offsets in the shared page: the mutex, then the data it protects, on a line of its own.
const MUTEX: usize = 0;
/// A plain (non-atomic) counter, incremented under the lock.
const COUNTER: usize = 128;
/// Two words a holder keeps equal; a holder killed between the two writes leaves them apart.
const FIRST: usize = 136;
const SECOND: usize = 144;
const _: () = assert!(COUNTER >= MUTEX + RobustMutex::SIZE, "the data is beside the mutex");

/// Initialises the mutex of `region` (again): nobody may use it meanwhile.
fn init(region: &SharedRegion) -> &RobustMutex {
    // SAFETY: the mapping lives as long as `region`; the callers initialise before any child
    // starts or after every user has gone; the first 64 bytes are used only as the mutex.
    unsafe { RobustMutex::init_at(region.ptr(), region.len()) }.expect("init the mutex")
}

/// Opens the mutex of `region`.
fn open(region: &SharedRegion) -> &RobustMutex {
    // SAFETY: as in `init`; the parent initialised the bytes before starting any child.
    unsafe { RobustMutex::open_at(region.ptr(), region.len(), OPEN_TIMEOUT) }
        .expect("open the mutex")
}

/// The parent's region, with a fresh mutex; removed on drop.
fn test_region(tag: &str) -> SharedRegion {
    let region = SharedRegion::create(&format!("t-mx-{tag}"));
    init(&region);
    region
}

/// What a lock attempt found, as a child reports it.
fn outcome(mutex: &RobustMutex) -> String {
    match mutex.lock() {
        Ok(guard) if guard.owner_died() => "owner-died".to_owned(),
        Ok(_) => "normal".to_owned(),
        Err(Error::NotRecoverable { .. }) => "not-recoverable".to_owned(),
        Err(error) => format!("error {error}"),
    }
}

/// The children's side; a plain run (no role) is the parent and does nothing here.
#[test]
fn child_process_entry() {
    let Some(role) = child_role() else { return };
    let shared = SharedRegion::from_env();
    let mutex = open(&shared);
    match role.as_str() {
        // Locks, writes the first of two words that must match, and waits to be killed.
        "die-holding" => {
            let guard = mutex.lock().expect("lock");
            assert!(!guard.owner_died());
            shared.write(FIRST, shared.read(FIRST) + 1);
            tell_parent("locked");
            wait_for_parent();
            unreachable!("the parent kills this child while it holds the lock");
        }
        // Holds the lock until the parent says so.
        "hold" => {
            let guard = mutex.lock().expect("lock");
            tell_parent("locked");
            wait_for_parent();
            drop(guard);
            tell_parent("released");
        }
        "report" => tell_parent(&format!("lock {}", outcome(mutex))),
        // Increments the plain counter under the lock, from the parent's "go".
        "count" => count_under(&shared, COUNTER, || {
            let guard = mutex.lock().expect("lock");
            assert!(!guard.owner_died());
            guard
        }),
        other => panic!("unknown child role {other}"),
    }
}

#[test]
fn a_killed_holder_leaves_owner_died_and_a_repaired_mutex_works_again() {
    let region = test_region("repair");
    let shared = &region;
    let mutex = open(shared);
    let mut child = spawn_on(shared, "die-holding", &[]);
    child.expect("locked");

    std::thread::scope(|scope| {
        // A waiter, blocked (or about to block) on the lock the child holds: the kernel must
        // wake it when the child dies, and it must get the lock with the news.
        let waiter = scope.spawn(|| {
            let mut guard = mutex.lock().expect("lock after the owner died");
            assert!(guard.owner_died(), "the child died holding the lock");
            assert_eq!(shared.read(FIRST), 1, "the child's half-done write");
            assert_eq!(shared.read(SECOND), 0);
            shared.write(SECOND, shared.read(FIRST)); // repair
            guard.mark_consistent().expect("mark consistent");
            assert!(!guard.owner_died());
        });
        child.kill_and_reap();
        waiter.join().expect("the waiter thread");
    });

    // Later lockers, in this process and another, see a normal lock and the repaired data.
    let guard = mutex.lock().expect("lock");
    assert!(!guard.owner_died());
    assert_eq!((shared.read(FIRST), shared.read(SECOND)), (1, 1));
    drop(guard);
    assert_eq!(ask(shared, "report", "lock"), "normal");
    let guard = mutex.try_lock().expect("try_lock").expect("free");
    assert!(!guard.owner_died());
}

#[test]
fn an_unrepaired_mutex_is_not_recoverable_for_everyone_until_initialised_again() {
    let region = test_region("unrepaired");
    let mutex = open(&region);
    let mut child = spawn_on(&region, "die-holding", &[]);
    child.expect("locked");
    child.kill_and_reap();

    let guard = mutex.lock().expect("lock");
    assert!(guard.owner_died());
    drop(guard); // without mark_consistent

    assert!(matches!(mutex.lock(), Err(Error::NotRecoverable { .. })));
    assert!(matches!(mutex.try_lock(), Err(Error::NotRecoverable { .. })));
    // Twice each, and from another thread: a failed attempt must leave the mutex as it found it
    // (glibc's trylock does not, see `RobustMutex::try_lock`).
    for _ in 0..2 {
        let timed = mutex.lock_timeout(Duration::from_millis(10));
        assert!(matches!(timed, Err(Error::NotRecoverable { .. })), "{timed:?}");
        assert!(matches!(mutex.try_lock(), Err(Error::NotRecoverable { .. })));
    }
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                assert!(matches!(mutex.try_lock(), Err(Error::NotRecoverable { .. })));
                let timed = mutex.lock_timeout(Duration::from_secs(10));
                assert!(matches!(timed, Err(Error::NotRecoverable { .. })), "{timed:?}");
            })
            .join()
            .expect("thread");
    });
    let message = mutex.lock().expect_err("not recoverable").to_string();
    assert!(message.contains("re-initialise"), "the error says what to do: {message}");
    assert_eq!(ask(&region, "report", "lock"), "not-recoverable");

    // Nobody uses it now: initialising the bytes again brings it back, for every process.
    let mutex = init(&region);
    assert!(!mutex.lock().expect("lock").owner_died());
    assert_eq!(ask(&region, "report", "lock"), "normal");
}

#[test]
fn four_processes_counting_under_the_lock_lose_no_increment() {
    const CHILDREN: usize = 4;
    const ROUNDS: u64 = 100_000;
    let region = test_region("count");
    let rounds = [(ROUNDS_ENV, ROUNDS.to_string())];
    let mut children: Vec<ChildProcess> =
        (0..CHILDREN).map(|_| spawn_on(&region, "count", &rounds)).collect();
    start_together(&mut children);
    finish_all(children, "counted");
    let guard = open(&region).lock().expect("lock");
    assert_eq!(region.read(COUNTER), CHILDREN as u64 * ROUNDS);
    drop(guard);
}

#[test]
fn try_lock_would_block_and_lock_timeout_times_out_while_another_process_holds_it() {
    let region = test_region("busy");
    let mutex = open(&region);
    let mut child = spawn_on(&region, "hold", &[]);
    child.expect("locked");

    assert!(mutex.try_lock().expect("try_lock").is_none(), "would block");
    let timeout = Duration::from_millis(20);
    match mutex.lock_timeout(timeout) {
        Err(Error::TimedOut(waited)) => assert_eq!(waited, timeout),
        other => panic!("expected a timeout, got {other:?}"),
    }

    child.send("release");
    child.expect("released");
    child.finish();
    let guard = mutex.lock_timeout(Duration::from_secs(10)).expect("free now");
    assert!(!guard.owner_died());
}

#[test]
fn a_thread_that_ends_holding_the_lock_leaves_owner_died() {
    let mutex = RobustMutex::boxed().expect("mutex");
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                // Leak the guard: the thread ends while it holds the lock.
                std::mem::forget(mutex.lock().expect("lock"));
            })
            .join()
            .expect("thread");
    });
    let mut guard = mutex.lock().expect("lock");
    assert!(guard.owner_died());
    guard.mark_consistent().expect("mark consistent");
    drop(guard);
    assert!(!mutex.lock().expect("lock").owner_died());
}

#[test]
fn in_one_process_relock_is_an_error_and_other_threads_are_kept_out() {
    let mutex = RobustMutex::boxed().expect("mutex");
    let mut guard = mutex.lock().expect("lock");
    guard.mark_consistent().expect("a no-op on a normal lock");
    assert!(matches!(mutex.lock(), Err(Error::Deadlock { .. })));
    assert!(matches!(mutex.try_lock(), Err(Error::Deadlock { .. })));
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                assert!(mutex.try_lock().expect("try_lock").is_none());
                assert!(matches!(
                    mutex.lock_timeout(Duration::from_millis(5)),
                    Err(Error::TimedOut(_))
                ));
            })
            .join()
            .expect("thread");
    });
    drop(guard);
    std::thread::scope(|scope| {
        scope
            .spawn(|| drop(mutex.try_lock().expect("try_lock").expect("free")))
            .join()
            .expect("thread");
    });
}

/// 64-aligned bytes on the heap, to place mutexes in (and to corrupt).
#[repr(C, align(64))]
struct Bytes([u8; 256]);

#[test]
fn placement_and_header_are_checked() {
    let mut bytes = Box::new(Bytes([0; 256]));
    let base = NonNull::from(&mut bytes.0).cast::<u8>();

    // SAFETY: (this call and every one below) `bytes` outlives the references, which are used only here, and
    // its bytes are used only as the mutex.
    let misaligned = unsafe { RobustMutex::init_at(base.add(8), 200) };
    assert!(matches!(misaligned, Err(Error::Placement { .. })), "{misaligned:?}");
    // SAFETY: as above.
    let short = unsafe { RobustMutex::init_at(base, RobustMutex::SIZE - 1) };
    assert!(matches!(short, Err(Error::Placement { .. })), "{short:?}");

    // Zeroed bytes were never published.
    // SAFETY: as above.
    let unpublished = unsafe { RobustMutex::open_at(base, 256, Duration::from_millis(10)) };
    assert!(matches!(unpublished, Err(Error::NotPublished { .. })), "{unpublished:?}");

    // SAFETY: as above.
    unsafe { RobustMutex::init_at(base, 256) }.expect("init");
    // SAFETY: as above.
    let opened = unsafe { RobustMutex::open_at(base, 256, Duration::ZERO) };
    assert!(opened.is_ok(), "{opened:?}");

    // A wrong magic (offset 0), then a state no creator writes (offset 8).
    // SAFETY: inside `bytes`; no reference to the mutex is used after this.
    unsafe { base.cast::<u32>().write_volatile(0xDEAD_BEEF) };
    // SAFETY: as above.
    let bad_magic = unsafe { RobustMutex::open_at(base, 256, Duration::ZERO) };
    assert!(matches!(bad_magic, Err(Error::Corrupted { .. })), "{bad_magic:?}");
    // SAFETY: as above.
    unsafe { base.add(8).cast::<u32>().write_volatile(77) };
    // SAFETY: as above.
    let bad_state = unsafe { RobustMutex::open_at(base, 256, Duration::ZERO) };
    assert!(matches!(bad_state, Err(Error::Corrupted { .. })), "{bad_state:?}");
}
