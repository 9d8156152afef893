//! The System V semaphore lock between real processes: children (this test binary re-executed in
//! a role) open the parent's semaphore by id or key, lock it, count under it, or are killed with
//! SIGKILL while holding it. Every set a test makes is removed when the test ends, checked
//! against `/proc/sysvipc/sem` (what `ipcs -s` reads). No test asserts anything about time.

mod common;

use std::sync::atomic::{AtomicI32, Ordering};
use std::time::Duration;

use shmkit_sync::{Error, SemLock};
use shmkit_testkit::{
    ChildProcess, SharedRegion, child_env, child_role, tell_parent, wait_for_parent,
};

use common::{
    OPEN_TIMEOUT, PlainWords, ROUNDS_ENV, count_under, finish_all, spawn, start_together,
};

const ID_ENV: &str = "SHMKIT_TEST_SEM_ID";
const KEY_ENV: &str = "SHMKIT_TEST_SEM_KEY";
/// The offset of the plain counter the "count" children increment under the lock.
const COUNTER_WORD: usize = 0;

/// Whether the kernel still has semaphore set `id` (`/proc/sysvipc/sem`, as `ipcs -s` shows).
fn sem_exists(id: i32) -> bool {
    let table = std::fs::read_to_string("/proc/sysvipc/sem").expect("read /proc/sysvipc/sem");
    table.lines().skip(1).any(|line| line.split_ascii_whitespace().nth(1) == Some(&id.to_string()))
}

/// The permission bits, owner and group of semaphore set `id` (`/proc/sysvipc/sem`).
fn sem_owner(id: i32) -> Option<(u32, u32, u32)> {
    let table = std::fs::read_to_string("/proc/sysvipc/sem").expect("read /proc/sysvipc/sem");
    let mut lines = table.lines();
    let header: Vec<&str> = lines.next()?.split_ascii_whitespace().collect();
    let column = |name: &str| header.iter().position(|&found| found == name);
    let (semid, perms, uid, gid) =
        (column("semid")?, column("perms")?, column("uid")?, column("gid")?);
    let row: Vec<&str> = lines
        .map(|line| line.split_ascii_whitespace().collect::<Vec<_>>())
        .find(|fields| fields.get(semid).copied() == Some(id.to_string().as_str()))?;
    Some((
        u32::from_str_radix(row.get(perms)?, 8).ok()? & 0o777,
        row.get(uid)?.parse().ok()?,
        row.get(gid)?.parse().ok()?,
    ))
}

/// A key no other test (or test process) uses.
fn unique_key() -> libc::key_t {
    static COUNTER: AtomicI32 = AtomicI32::new(0);
    let pid = std::process::id().cast_signed() & 0xFFFF;
    0x5300_0000 | pid << 8 | COUNTER.fetch_add(1, Ordering::Relaxed) & 0xFF
}

/// Removes a raw semaphore set (made without `SemLock`) on drop.
struct RawSet(i32);

impl Drop for RawSet {
    fn drop(&mut self) {
        // SAFETY: IPC_RMID reads no memory of ours.
        unsafe { libc::semctl(self.0, 0, libc::IPC_RMID) };
    }
}

/// The children's side; a plain run (no role) is the parent and does nothing here.
#[test]
fn child_process_entry() {
    let Some(role) = child_role() else { return };
    let open = || {
        let id: i32 = child_env(ID_ENV).parse().expect("semaphore id");
        SemLock::open_id(id, OPEN_TIMEOUT).expect("open the semaphore")
    };
    match role.as_str() {
        "die-holding" => {
            let lock = open();
            let _guard = lock.lock().expect("lock");
            tell_parent("locked");
            wait_for_parent();
            unreachable!("the parent kills this child while it holds the lock");
        }
        "hold" => {
            let lock = open();
            let guard = lock.lock().expect("lock");
            tell_parent("locked");
            wait_for_parent();
            drop(guard);
            tell_parent("released");
        }
        "by-key" => {
            let key: libc::key_t = child_env(KEY_ENV).parse().expect("key");
            let lock = SemLock::open(key, OPEN_TIMEOUT).expect("open by key");
            drop(lock.lock().expect("lock"));
            tell_parent(&format!("locked {}", lock.id()));
        }
        "count" => {
            let lock = open();
            count_under(&SharedRegion::from_env(), COUNTER_WORD, || lock.lock().expect("lock"));
        }
        other => panic!("unknown child role {other}"),
    }
}

#[test]
fn the_kernel_releases_the_lock_of_a_killed_holder() {
    let lock = SemLock::create_private().expect("create");
    let id = lock.id();
    let mut child = spawn("die-holding", &[(ID_ENV, id.to_string())]);
    child.expect("locked");
    assert!(lock.try_lock().expect("try_lock").is_none(), "the child holds it");

    child.kill_and_reap();
    // SEM_UNDO: the kernel gave the child's -1 back when it died.
    let guard = lock.lock_timeout(OPEN_TIMEOUT).expect("free again");
    drop(guard);
    assert!(lock.try_lock().expect("try_lock").is_some());
    drop(lock);
    assert!(!sem_exists(id), "the creator's handle removed the set");
}

#[test]
fn four_processes_counting_under_the_lock_lose_no_increment() {
    const CHILDREN: usize = 4;
    const ROUNDS: u64 = 20_000;
    let region = SharedRegion::create("t-sem-count");
    let lock = SemLock::create_private().expect("create");
    let env = [(ID_ENV, lock.id().to_string()), region.env(), (ROUNDS_ENV, ROUNDS.to_string())];
    let mut children: Vec<ChildProcess> = (0..CHILDREN).map(|_| spawn("count", &env)).collect();
    start_together(&mut children);
    finish_all(children, "counted");
    let _guard = lock.lock().expect("lock");
    assert_eq!(region.read(COUNTER_WORD), CHILDREN as u64 * ROUNDS);
}

#[test]
fn try_lock_would_block_and_lock_timeout_times_out_while_another_process_holds_it() {
    let lock = SemLock::create_private().expect("create");
    let mut child = spawn("hold", &[(ID_ENV, lock.id().to_string())]);
    child.expect("locked");
    assert!(lock.try_lock().expect("try_lock").is_none());
    let timeout = Duration::from_millis(20);
    match lock.lock_timeout(timeout) {
        Err(Error::TimedOut(waited)) => assert_eq!(waited, timeout),
        other => panic!("expected a timeout, got {other:?}"),
    }
    child.send("release");
    child.expect("released");
    child.finish();
    drop(lock.try_lock().expect("try_lock").expect("free now"));
}

#[test]
fn a_keyed_semaphore_is_exclusive_opened_by_key_and_removed_by_its_creator() {
    let key = unique_key();
    let lock = SemLock::create(key, 0o600).expect("create");
    let id = lock.id();
    match SemLock::create(key, 0o600) {
        Err(Error::Os { call: "semget", source }) => {
            assert_eq!(source.raw_os_error(), Some(libc::EEXIST));
        }
        other => panic!("a second create must fail: {other:?}"),
    }
    let mut child = spawn("by-key", &[(KEY_ENV, key.to_string())]);
    assert_eq!(child.expect("locked"), id.to_string());
    child.finish();

    drop(lock);
    assert!(!sem_exists(id));
    match SemLock::open(key, Duration::ZERO) {
        Err(Error::Os { call: "semget", source }) => {
            assert_eq!(source.raw_os_error(), Some(libc::ENOENT));
        }
        other => panic!("the key is gone: {other:?}"),
    }
}

#[test]
fn a_set_is_found_by_key_handed_to_another_user_and_removed_by_id() {
    // A user and group nobody has: the creator may hand its set to anyone, root or not.
    const OTHER: u32 = 54_321;
    let key = unique_key();
    assert_eq!(SemLock::id_of_key(key).expect("semget"), None);
    let mut lock = SemLock::create(key, 0o600).expect("create");
    let id = lock.id();
    assert_eq!(SemLock::id_of_key(key).expect("semget"), Some(id));

    lock.set_owner(OTHER, OTHER, 0o640).expect("IPC_SET");
    assert_eq!(sem_owner(id), Some((0o640, OTHER, OTHER)));
    // The creator keeps the owner's rights: it still locks it, and removes it.
    drop(lock.lock().expect("the creator locks it"));
    lock.set_remove_on_drop(false);
    drop(lock);
    assert!(sem_exists(id), "disowned");
    SemLock::remove_id(id).expect("remove by id");
    assert!(!sem_exists(id));
    assert_eq!(SemLock::id_of_key(key).expect("semget"), None);
    match SemLock::remove_id(id) {
        Err(Error::Os { call: "semctl(IPC_RMID)", source }) => {
            assert_eq!(source.raw_os_error(), Some(libc::EINVAL));
        }
        other => panic!("already removed: {other:?}"),
    }
}

#[test]
fn only_the_creator_removes_and_removal_can_be_explicit_or_disowned() {
    let mut lock = SemLock::create_private().expect("create");
    let id = lock.id();
    drop(SemLock::open_id(id, Duration::ZERO).expect("open"));
    assert!(sem_exists(id), "an opener's handle does not remove the set");

    lock.set_remove_on_drop(false);
    drop(lock);
    assert!(sem_exists(id), "disowned");
    let opened = SemLock::open_id(id, Duration::ZERO).expect("open");
    opened.remove().expect("remove");
    assert!(!sem_exists(id));
    assert!(matches!(SemLock::open_id(id, Duration::ZERO), Err(Error::Os { .. })));
}

#[test]
fn open_waits_for_publication_and_refuses_what_is_not_a_lock() {
    // A set made but never operated on (`sem_otime == 0`): its creator did not publish it.
    // SAFETY: `semget` reads only its integer arguments.
    let raw = RawSet(unsafe { libc::semget(libc::IPC_PRIVATE, 1, libc::IPC_CREAT | 0o600) });
    assert!(raw.0 >= 0, "semget: {}", std::io::Error::last_os_error());
    let waited = Duration::from_millis(20);
    match SemLock::open_id(raw.0, waited) {
        Err(Error::NotPublished { waited: reported, .. }) => assert_eq!(reported, waited),
        other => panic!("expected NotPublished, got {other:?}"),
    }

    // Published, but with a value a lock never holds.
    let mut add_two = libc::sembuf { sem_num: 0, sem_op: 2, sem_flg: 0 };
    // SAFETY: one valid `sembuf`.
    assert_eq!(unsafe { libc::semop(raw.0, &raw mut add_two, 1) }, 0);
    assert!(matches!(SemLock::open_id(raw.0, waited), Err(Error::Corrupted { .. })));

    // Published, but a set of two semaphores.
    // SAFETY: as above.
    let pair = RawSet(unsafe { libc::semget(libc::IPC_PRIVATE, 2, libc::IPC_CREAT | 0o600) });
    assert!(pair.0 >= 0);
    let mut add_one = libc::sembuf { sem_num: 0, sem_op: 1, sem_flg: 0 };
    // SAFETY: as above.
    assert_eq!(unsafe { libc::semop(pair.0, &raw mut add_one, 1) }, 0);
    assert!(matches!(SemLock::open_id(pair.0, waited), Err(Error::Corrupted { .. })));
}
