//! Joins in two real processes (this test binary re-executed as a child): each has its own
//! registry and its own mapping, they see each other's writes, and a child that exits or is
//! killed while joined disturbs nothing in the parent.

mod common;

use common::{
    ChildProcess, TestRegion, child_env, child_role, huge_pages_ready, hugetlbfs_ready, load,
    load_acquire, maps_file_named, options, store, tell_parent, wait_for_parent,
};
use shmkit_join::{join, joins, query_by_name, query_by_range};
use shmkit_name::{Name, PageSize};
use shmkit_os::Access;

/// What the parent writes in the first words of the region (word `i` holds `PATTERN ^ i`).
const PATTERN: u64 = 0x5348_4D4B_4A4F_494E;
/// How many pattern words.
const WORDS: usize = 64;
/// Where a holding child leaves its mark (after the pattern).
const MARK_OFFSET: usize = 8 * WORDS;
/// The mark.
const MARK: u64 = 0xC41D_0000_0000_0001;

/// The child's side of every test here; a plain run (no role in the environment) does nothing.
#[test]
fn child_process_entry() {
    let Some(role) = child_role() else { return };
    let name = Name::new(&child_env("SHMKIT_TEST_NAME")).expect("valid name");
    assert!(joins().is_empty(), "a new process's registry is empty: joins are per process");
    let joined = join(&name, Access::ReadWrite, &options()).expect("child join");
    let info = query_by_name(&name).expect("the child's join is recorded");
    assert_eq!(info.count, 1, "the child's count is its own: {info:?}");
    assert_eq!(info.addr, joined.region_ptr() as usize);
    assert_eq!(joins().len(), 1, "the child's registry holds its one join");
    for index in 0..WORDS {
        let word = load_acquire(&joined, 8 * index);
        assert_eq!(word, PATTERN ^ index as u64, "word {index} the parent wrote");
    }
    match role.as_str() {
        // Answers at the end of the region, then leaves and checks it is gone from its registry.
        "echo" => {
            let last = joined.len() - 8;
            store(&joined, last, PATTERN.wrapping_add(1));
            joined.leave().expect("child leave");
            assert!(query_by_name(&name).is_none(), "the child left");
            assert!(!maps_file_named(&name), "the child's last leave unmapped {name}");
            tell_parent("answered");
        }
        // Marks the region and exits while joined: no leave, no destructor.
        "exit" => {
            store(&joined, MARK_OFFSET, MARK);
            tell_parent("joined");
            std::process::exit(0);
        }
        // Marks the region and waits, joined, for the parent to kill it.
        "kill" => {
            store(&joined, MARK_OFFSET, MARK);
            tell_parent("joined");
            let line = wait_for_parent();
            panic!("the parent should have killed this child, it said {line:?}");
        }
        other => panic!("unknown child role {other}"),
    }
}

/// Joins `region` read-write and writes the pattern.
fn join_and_write(region: &TestRegion) -> shmkit_join::Join {
    let joined = join(&region.name, Access::ReadWrite, &options())
        .unwrap_or_else(|error| panic!("join {}: {error}", region.name));
    for index in 0..WORDS {
        store(&joined, 8 * index, PATTERN ^ index as u64);
    }
    joined
}

fn spawn(role: &str, region: &TestRegion) -> ChildProcess {
    ChildProcess::spawn(
        "child_process_entry",
        role,
        &[("SHMKIT_TEST_NAME", region.name.as_str().to_owned())],
    )
}

/// The parent writes, the child reads through its own join and answers, the parent reads the
/// answer; the child's join and leave change nothing in the parent's registry.
fn round_trip(region: &TestRegion) {
    let joined = join_and_write(region);
    let before = joined.info().expect("info");
    assert_eq!((before.count, before.page_size), (1, region.page_size), "{before:?}");
    let last = joined.len() - 8;
    assert_eq!(load(&joined, last), 0, "a new region is zeroed");
    let mut child = spawn("echo", region);
    child.expect("answered");
    child.finish();
    assert_eq!(load_acquire(&joined, last), PATTERN.wrapping_add(1), "the child's answer");
    assert_eq!(joined.info().expect("info"), before, "the child's join left ours alone");
    assert!(maps_file_named(&region.name), "{} is mapped while joined", region.name);
    joined.leave().expect("leave");
    assert!(query_by_name(&region.name).is_none());
    assert!(!maps_file_named(&region.name), "the last leave unmapped {}", region.name);
}

#[test]
fn two_processes_see_each_others_writes() {
    round_trip(&TestRegion::normal("share", 3));
}

#[test]
fn two_processes_see_each_others_writes_on_huge_pages() {
    if hugetlbfs_ready(PageSize::Huge) && huge_pages_ready(PageSize::Huge, 1) {
        round_trip(&TestRegion::new("share-huge", PageSize::Huge, 1));
    }
}

/// A child joins and ends (`role`) without leaving; the parent's join is as it was.
fn child_ends_while_joined(role: &str, end: impl FnOnce(ChildProcess)) {
    let region = TestRegion::normal(&format!("ends-{role}"), 2);
    let first = join_and_write(&region);
    let second = join(&region.name, Access::ReadOnly, &options()).expect("second join");
    let before = first.info().expect("info");
    assert_eq!(before.count, 2);
    let mut child = spawn(role, &region);
    child.expect("joined");
    end(child);
    let after = query_by_name(&region.name).expect("still joined");
    assert_eq!(after, before, "a child that ended joined changed nothing here");
    assert_eq!(first.region_ptr() as usize, after.addr);
    for index in 0..WORDS {
        assert_eq!(load(&second, 8 * index), PATTERN ^ index as u64, "word {index} is intact");
    }
    assert_eq!(load_acquire(&first, MARK_OFFSET), MARK, "the child's write is visible");
    assert!(
        joins().iter().any(|info| *info == before),
        "the snapshot holds the parent's record as it was"
    );
    drop(second);
    assert!(maps_file_named(&region.name), "{} is mapped while joined", region.name);
    assert_eq!(query_by_name(&region.name).map(|info| info.count), Some(1));
    first.leave().expect("leave");
    assert!(query_by_name(&region.name).is_none(), "the last leave forgets the region");
    let stale = query_by_range(before.addr as *const u8, before.len).expect("query");
    assert!(stale.is_none_or(|info| info.name != region.name), "{stale:?}");
    assert!(!maps_file_named(&region.name), "the last leave unmapped {}", region.name);
}

#[test]
fn a_child_that_exits_joined_disturbs_nothing() {
    child_ends_while_joined("exit", ChildProcess::finish);
}

#[test]
fn a_child_killed_while_joined_disturbs_nothing() {
    // Dropping a running child kills it (SIGKILL) and reaps it.
    child_ends_while_joined("kill", drop);
}
