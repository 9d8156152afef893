//! `fork` while joined: the child has a copy of the registry and of the mapping, its leaves are
//! its own (they unmap only its copy), its writes reach the parent (`MAP_SHARED`), and the
//! parent's registry is unchanged.
//!
//! This binary holds exactly one test, so no other test thread can be inside the registry (holding
//! its lock) at the moment of the fork.

mod common;

use std::panic::AssertUnwindSafe;

use common::{TestRegion, load, load_acquire, options, store};
use shmkit_join::{Join, JoinInfo, join, joins, query_by_handle, query_by_name, query_by_range};
use shmkit_name::Name;
use shmkit_os::Access;

/// What the parent writes at offset 0 before the fork.
const PATTERN: u64 = 0x5348_4D4B_464F_524B;
/// Where the child writes, and what.
const CHILD_OFFSET: usize = 4096;
const CHILD_WORD: u64 = 0xC41D_0000_0000_F04B;

/// The child's exit codes: 0 is success, the others say which check failed.
const CHECKS: &[(i32, &str)] = &[
    (10, "query_by_name in the child found nothing"),
    (11, "the child's copy of the record differs from the parent's"),
    (12, "the child's snapshot is not the one parent record"),
    (13, "query_by_handle in the child does not find the record"),
    (14, "the child does not see the parent's pattern"),
    (15, "dropping one join in the child did not bring its count to 1"),
    (16, "the child's last leave failed"),
    (17, "query_by_name still finds the region after the child's last leave"),
    (18, "the child's snapshot is not empty after its last leave"),
    (19, "query_by_range still finds the region after the child's last leave"),
    (98, "the child's write through its join failed"),
    (99, "the child panicked (see its stderr)"),
];

/// The child's checks, as an exit code (no panics cross `fork`'s child: see `CHECKS`).
fn child(name: &Name, first: Join, second: Join, before: JoinInfo) -> i32 {
    let Some(info) = query_by_name(name) else { return 10 };
    if info != before {
        return 11;
    }
    if joins().len() != 1 || joins().iter().next() != Some(&before) {
        return 12;
    }
    if query_by_handle(first.as_ptr()) != Some(before) {
        return 13;
    }
    if load(&second, 0) != PATTERN {
        return 14;
    }
    drop(second);
    if query_by_name(name).map(|info| info.count) != Some(1) {
        return 15;
    }
    store(&first, CHILD_OFFSET, CHILD_WORD);
    if load(&first, CHILD_OFFSET) != CHILD_WORD {
        return 98;
    }
    if first.leave().is_err() {
        return 16;
    }
    if query_by_name(name).is_some() {
        return 17;
    }
    if !joins().is_empty() {
        return 18;
    }
    if !matches!(query_by_range(before.addr as *const u8, before.len), Ok(None)) {
        return 19;
    }
    0
}

/// Waits for `pid` and returns its wait status.
fn wait(pid: libc::pid_t) -> i32 {
    let mut status = 0;
    loop {
        // SAFETY: `status` is a valid `int` to write; `pid` is our own child.
        let waited = unsafe { libc::waitpid(pid, &raw mut status, 0) };
        if waited == pid {
            return status;
        }
        let error = std::io::Error::last_os_error();
        assert_eq!(error.kind(), std::io::ErrorKind::Interrupted, "waitpid({pid}): {error}");
    }
}

#[test]
fn a_forked_child_has_its_own_copy_of_the_registry() {
    let region = TestRegion::normal("fork", 2);
    assert!(joins().is_empty(), "this binary's only test starts with an empty registry");
    let first = join(&region.name, Access::ReadWrite, &options()).expect("join");
    let second = join(&region.name, Access::ReadOnly, &options()).expect("second join");
    store(&first, 0, PATTERN);
    let before = first.info().expect("info");
    assert_eq!(before.count, 2, "{before:?}");

    // SAFETY: this binary runs one test, so no other thread holds the registry's lock; the child
    // only takes that (free) lock, writes through atomics, unmaps its copy and ends with `_exit`
    // (no destructors: the region guard must not unlink, the harness must not run).
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork: {}", std::io::Error::last_os_error());
    if pid == 0 {
        let name = region.name;
        let code =
            std::panic::catch_unwind(AssertUnwindSafe(|| child(&name, first, second, before)))
                .unwrap_or(99);
        // SAFETY: `_exit` ends the child at once; nothing of it is used after.
        unsafe { libc::_exit(code) };
    }

    let status = wait(pid);
    let code = libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status));
    let failed = CHECKS.iter().find(|(number, _)| Some(*number) == code).map(|(_, what)| *what);
    assert_eq!(
        code,
        Some(0),
        "the forked child failed (wait status {status:#x}): {}",
        failed.unwrap_or("unknown exit code or signal")
    );
    assert_eq!(
        load_acquire(&first, CHILD_OFFSET),
        CHILD_WORD,
        "the child's write before its leave reached the parent (MAP_SHARED)"
    );
    assert_eq!(first.info().expect("info"), before, "the child's leaves left ours alone");
    assert_eq!(joins().len(), 1, "the parent's registry holds its one record");
    assert_eq!(load(&second, 0), PATTERN, "the parent's mapping survived the child's unmap");
    drop(second);
    assert_eq!(query_by_name(&region.name).map(|info| info.count), Some(1));
    first.leave().expect("leave");
    assert!(query_by_name(&region.name).is_none());
    assert!(joins().is_empty());
}
