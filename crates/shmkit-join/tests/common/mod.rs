//! Helpers shared by the join tests: regions that clean up after themselves, the join options
//! of the tests (no `mlock`), and atomic word accesses through a [`Join`] (never a `&[u8]` over
//! shared memory).
#![allow(dead_code, unused_imports, reason = "each test binary uses a part of the helpers")]

use std::sync::atomic::{AtomicU64, Ordering};

use shmkit_join::{Join, JoinOptions};
use shmkit_name::{Name, PageSize};
use shmkit_os::{Access, MapOptions, RegionOptions};
pub(crate) use shmkit_testkit::{
    ChildProcess, RegionGuard, child_env, child_role, huge_pages_ready, hugetlbfs_ready,
    tell_parent, unique_name, wait_for_parent,
};

/// A region created for one test under a unique name (pid + counter), unlinked in every page
/// size on drop, also when the test panics.
#[derive(Debug)]
pub(crate) struct TestRegion {
    pub(crate) name: Name,
    pub(crate) page_size: PageSize,
    pub(crate) page_count: u64,
    _guard: RegionGuard,
}

impl TestRegion {
    /// Creates `page_count` pages of `page_size` named after `tag`.
    pub(crate) fn new(tag: &str, page_size: PageSize, page_count: u64) -> Self {
        let name = unique_name(&format!("j-{tag}"));
        // The guard first, so that a half-made region is removed too.
        let guard = RegionGuard(name);
        RegionOptions::new().page_size(page_size).create(&name, page_count).unwrap_or_else(
            |error| panic!("create {name} ({page_count} {page_size} pages): {error}"),
        );
        Self { name, page_size, page_count, _guard: guard }
    }

    /// A region of normal pages.
    pub(crate) fn normal(tag: &str, page_count: u64) -> Self {
        Self::new(tag, PageSize::Normal, page_count)
    }

    /// Its length in bytes.
    pub(crate) fn len(&self) -> usize {
        self.page_count as usize * self.page_size.bytes()
    }
}

/// The tests' join options: page size found from the region, not locked (tests must not depend on
/// `RLIMIT_MEMLOCK`).
pub(crate) fn options() -> JoinOptions {
    JoinOptions::new().map_options(MapOptions::new())
}

/// The address of the 8-byte word at `offset` of the region `join` holds, checked in bounds and
/// aligned.
fn word_ptr(join: &Join, offset: usize) -> *mut u64 {
    assert!(
        offset.is_multiple_of(8) && offset.checked_add(8).is_some_and(|end| end <= join.len()),
        "word at {offset} is not an aligned word inside {} ({} bytes)",
        join.name(),
        join.len()
    );
    join.region_ptr().wrapping_add(offset).cast()
}

/// Loads the word at `offset` of the region `join` holds (relaxed: valid on a read-only mapping
/// too).
pub(crate) fn load(join: &Join, offset: usize) -> u64 {
    let word = word_ptr(join, offset);
    assert!(word.is_aligned(), "{} is not page aligned", join.name());
    // SAFETY: in bounds (`word_ptr`) and aligned; the live `join` keeps it mapped for the borrow.
    // Peers write it only atomically; a relaxed 8-byte atomic load is allowed on read-only
    // memory, so a read-only join is fine too.
    let word = unsafe { AtomicU64::from_ptr(word) };
    word.load(Ordering::Relaxed)
}

/// Loads the word at `offset` with acquire ordering; the join must be read-write.
pub(crate) fn load_acquire(join: &Join, offset: usize) -> u64 {
    writable(join);
    let word = word_ptr(join, offset);
    assert!(word.is_aligned(), "{} is not page aligned", join.name());
    // SAFETY: as in `load`; the mapping is writable (checked), so any atomic access is allowed.
    let word = unsafe { AtomicU64::from_ptr(word) };
    word.load(Ordering::Acquire)
}

/// Stores `value` in the word at `offset` with release ordering; the join must be read-write.
pub(crate) fn store(join: &Join, offset: usize, value: u64) {
    writable(join);
    let word = word_ptr(join, offset);
    assert!(word.is_aligned(), "{} is not page aligned", join.name());
    // SAFETY: as in `load`; the mapping is writable (checked), so a store does not fault.
    let word = unsafe { AtomicU64::from_ptr(word) };
    word.store(value, Ordering::Release);
}

/// Panics unless the region `join` holds is mapped read-write.
fn writable(join: &Join) {
    let info = join.info().unwrap_or_else(|error| panic!("info of {}: {error}", join.name()));
    assert_eq!(info.access, Access::ReadWrite, "{} is joined read-only: no store", join.name());
}

/// Whether this process maps a file named `name` (a region in /dev/shm or hugetlbfs), from
/// `/proc/self/maps`.
pub(crate) fn maps_file_named(name: &Name) -> bool {
    let maps = std::fs::read_to_string("/proc/self/maps").expect("read /proc/self/maps");
    let path_end = format!("/{name}");
    let deleted = format!("/{name} (deleted)");
    maps.lines().any(|line| line.ends_with(&path_end) || line.ends_with(&deleted))
}
