//! Anonymous joins (memory obtained elsewhere, registered with `join_anonymous`), their
//! collisions with named and anonymous joins, and the thread-safety of the public types.
//!
//! Tests here run in parallel threads of one process and share its registry: each asserts only
//! about its own names and addresses. Collision probes use addresses inside the probed join's own
//! range or its guard pages, which no other test can have registered; the registry never touches
//! the memory of a join it records, so probing with them is harmless.

mod common;

use std::ptr::NonNull;

use common::{TestRegion, huge_pages_ready, load, maps_file_named, options, store, unique_name};
use shmkit_join::{
    Error, Join, JoinInfo, JoinOptions, Registry, Snapshot, join, join_anonymous, join_with, joins,
    leave_anonymous, query_by_handle, query_by_name, query_by_range,
};
use shmkit_name::{Name, PageSize};
use shmkit_os::{Access, AnonHugePages, MapOptions, Memfd};

static_assertions::assert_impl_all!(Join: Send, Sync, std::fmt::Debug);
static_assertions::assert_impl_all!(Registry: Send, Sync, Default, std::fmt::Debug);
static_assertions::assert_impl_all!(JoinInfo: Send, Sync, Copy, Eq, std::fmt::Debug);
static_assertions::assert_impl_all!(Snapshot: Send, Sync, Clone, std::fmt::Debug);
static_assertions::assert_impl_all!(JoinOptions: Send, Sync, Clone, Default, Eq);
static_assertions::assert_impl_all!(Error: Send, Sync, std::error::Error);

const PAGE: usize = 4096;

/// `address` as `NonNull` (the tests never pass 0).
fn at(address: usize) -> NonNull<u8> {
    NonNull::new(address as *mut u8).expect("not null")
}

/// Registers `page_count` pages of `page_size` at `addr` under `name`, read-write, with handle
/// `handle`.
fn register(
    name: &Name,
    handle: usize,
    addr: usize,
    page_size: PageSize,
    page_count: u64,
) -> shmkit_join::Result<JoinInfo> {
    join_anonymous(name, Access::ReadWrite, at(handle), at(addr), page_size, page_count)
}

/// Whether the registry finds `name` by a range query over `[start, start + len)`.
fn range_finds(start: usize, len: usize, name: &Name) -> bool {
    query_by_range(start as *const u8, len)
        .unwrap_or_else(|error| panic!("query_by_range({start:#x}, {len}): {error}"))
        .is_some_and(|info| info.name == *name)
}

/// Registers memory at `addr` and checks every query finds it, and nothing after the leave.
fn register_and_query(tag: &str, addr: usize, page_size: PageSize, page_count: u64) {
    let name = unique_name(&format!("j-anon-{tag}"));
    let len = page_count as usize * page_size.bytes();
    let handle = addr + 128;
    let info = register(&name, handle, addr, page_size, page_count)
        .unwrap_or_else(|error| panic!("join_anonymous {name} ({tag}): {error}"));
    let expected = JoinInfo {
        name,
        page_size,
        page_count,
        access: Access::ReadWrite,
        addr,
        len,
        handle,
        count: 1,
        anonymous: true,
    };
    assert_eq!(info, expected, "the record of {tag}");
    assert_eq!(query_by_name(&name), Some(expected), "by name ({tag})");
    assert_eq!(query_by_handle(handle as *const u8), Some(expected), "by handle ({tag})");
    assert!(
        query_by_handle(addr as *const u8).is_none_or(|info| info.name != name),
        "the first byte is not the handle ({tag})"
    );
    for (start, sub) in [(addr, 1), (addr + len - 1, 1), (addr + len / 2, 10), (addr - 1, 2)] {
        assert!(range_finds(start, sub, &name), "{sub} bytes at {start:#x} are in {tag}");
    }
    for (start, sub) in [(addr - 1, 1), (addr + len, 1), (addr + len, PAGE)] {
        assert!(!range_finds(start, sub, &name), "{sub} bytes at {start:#x} are not in {tag}");
    }
    assert!(joins().iter().any(|info| *info == expected), "the snapshot holds {tag}");
    assert_eq!(leave_anonymous(at(handle)).expect("leave_anonymous"), expected, "{tag}");
    assert!(query_by_name(&name).is_none(), "{tag} left");
    assert!(query_by_handle(handle as *const u8).is_none_or(|info| info.name != name));
    assert!(!range_finds(addr, len, &name), "{tag} left");
    assert!(joins().iter().all(|info| info.name != name), "{tag} left the snapshot");
    let again = leave_anonymous(at(handle));
    assert!(matches!(again, Err(Error::NotJoined { .. })), "a second leave: {again:?}");
}

#[test]
fn anonymous_normal_pages_are_found_by_every_query() {
    let mut memory = AnonHugePages::acquire(PageSize::Normal, 4, None).expect("4 normal pages");
    register_and_query("normal", memory.as_ptr() as usize, PageSize::Normal, 4);
    // The memory stays the caller's: still there and writable after the leave.
    memory.as_mut_slice()[4 * PAGE - 1] = 7;
    assert_eq!(memory.as_slice()[4 * PAGE - 1], 7);
}

#[test]
fn a_memfd_mapping_is_found_by_every_query() {
    let memfd = Memfd::create("j-anon-memfd", 3 * PAGE, PageSize::Normal, false).expect("memfd");
    let mapping = memfd.map(&MapOptions::new()).expect("map the memfd");
    register_and_query("memfd", mapping.as_ptr() as usize, PageSize::Normal, 3);
    mapping.write_at(0, b"still mine").expect("the mapping outlives its anonymous join");
}

#[test]
fn anonymous_huge_pages_are_found_by_every_query() {
    if !huge_pages_ready(PageSize::Huge, 2) {
        return;
    }
    let memory = AnonHugePages::acquire(PageSize::Huge, 2, None).expect("2 huge pages");
    register_and_query("huge", memory.as_ptr() as usize, PageSize::Huge, 2);
}

/// The ranges that overlap `[addr, addr + pages * PAGE)`: over its first byte, over its last
/// byte, around it, inside it and equal to it.
fn overlapping(addr: usize, pages: u64) -> [(&'static str, usize, u64); 5] {
    let len = pages as usize * PAGE;
    [
        ("over the first byte", addr - PAGE, 2),
        ("over the last byte", addr + len - PAGE, 2),
        ("around it", addr - PAGE, pages + 2),
        ("inside it", addr + PAGE, 1),
        ("equal to it", addr, pages),
    ]
}

/// Every overlapping registration is a collision, and the page on either side is not.
fn check_overlaps(target: &Name, addr: usize, pages: u64, free_handle: usize) {
    let probe = unique_name("j-anon-probe");
    for (how, start, count) in overlapping(addr, pages) {
        let result = register(&probe, free_handle, start, PageSize::Normal, count);
        let Err(Error::Collision { name, reason }) = &result else {
            panic!("{count} pages at {start:#x}, {how} of {target}: {result:?}, not a collision");
        };
        assert_eq!(name, &probe);
        assert!(reason.contains(target.as_str()), "the reason names {target}: {reason}");
        assert!(query_by_name(&probe).is_none(), "a refused join is not recorded");
    }
    let len = pages as usize * PAGE;
    for (how, start) in [("before", addr - PAGE), ("after", addr + len)] {
        let info = register(&probe, free_handle, start, PageSize::Normal, 1)
            .unwrap_or_else(|error| panic!("the page {how} {target} is free: {error}"));
        assert_eq!(leave_anonymous(at(free_handle)).expect("leave"), info);
    }
}

#[test]
fn collisions_with_a_named_join_are_refused() {
    let region = TestRegion::normal("collide", 3);
    let named = join(&region.name, Access::ReadWrite, &options()).expect("join");
    let before = named.info().expect("info");
    let memory = AnonHugePages::acquire(PageSize::Normal, 2, None).expect("2 pages");
    let free = memory.as_ptr() as usize;

    let result = register(&region.name, free, free, PageSize::Normal, 2);
    assert!(
        matches!(&result, Err(Error::Collision { name, .. }) if *name == region.name),
        "the name is joined: {result:?}"
    );
    let probe = unique_name("j-anon-probe");
    let result = register(&probe, named.as_ptr() as usize, free, PageSize::Normal, 2);
    assert!(
        matches!(&result, Err(Error::Collision { name, reason }) if *name == probe
            && reason.contains(region.name.as_str())),
        "the handle is joined: {result:?}"
    );
    check_overlaps(&region.name, before.addr, 3, free);
    assert_eq!(named.info().expect("info"), before, "refusals changed nothing");
    named.leave().expect("leave");
    // Once left, the same addresses may be registered.
    let info = register(&probe, before.addr, before.addr, PageSize::Normal, 3).expect("register");
    assert_eq!(leave_anonymous(at(before.addr)).expect("leave_anonymous"), info);
}

#[test]
fn collisions_with_an_anonymous_join_are_refused() {
    let memory = AnonHugePages::acquire(PageSize::Normal, 3, None).expect("3 pages");
    let other = AnonHugePages::acquire(PageSize::Normal, 1, None).expect("1 page");
    let (addr, free) = (memory.as_ptr() as usize, other.as_ptr() as usize);
    let name = unique_name("j-anon-target");
    let registered = register(&name, addr, addr, PageSize::Normal, 3).expect("register");

    let result = register(&name, free, free, PageSize::Normal, 1);
    assert!(matches!(result, Err(Error::Collision { .. })), "the name is joined: {result:?}");
    let probe = unique_name("j-anon-probe");
    let result = register(&probe, addr, free, PageSize::Normal, 1);
    assert!(matches!(result, Err(Error::Collision { .. })), "the handle is joined: {result:?}");
    check_overlaps(&name, addr, 3, free);
    assert_eq!(query_by_name(&name), Some(registered), "refusals changed nothing");
    // A named join of a name that exists only anonymously is refused by the same rules as any.
    let region_join = join(&probe, Access::ReadOnly, &options());
    assert!(matches!(region_join, Err(Error::Os(_))), "no region {probe}: {region_join:?}");
    assert!(query_by_name(&probe).is_none(), "a failed join is not recorded");
    assert_eq!(leave_anonymous(at(addr)).expect("leave_anonymous"), registered);
}

#[test]
fn a_join_hook_handing_back_another_joins_handle_is_refused() {
    let first = TestRegion::normal("hook-first", 1);
    let second = TestRegion::normal("hook-second", 1);
    let joined = join(&first.name, Access::ReadWrite, &options()).expect("join");
    let before = joined.info().expect("info");
    let taken = NonNull::new(joined.as_ptr()).expect("not null");
    let mut calls = 0;
    let result = join_with(&second.name, Access::ReadWrite, &options(), |_| {
        calls += 1;
        Ok(taken)
    });
    assert_eq!(calls, 1, "the hook ran");
    assert!(
        matches!(&result, Err(Error::Collision { name, reason }) if *name == second.name
            && reason.contains(first.name.as_str())),
        "a second join with the handle of {}: {result:?}",
        first.name
    );
    assert!(query_by_name(&second.name).is_none(), "the refused join is not recorded");
    assert!(!maps_file_named(&second.name), "the refused join was unmapped");
    assert_eq!(joined.info().expect("info"), before, "the refusal changed nothing");
    let again = join(&second.name, Access::ReadWrite, &options()).expect("a join without the hook");
    assert_eq!(again.as_ptr(), again.region_ptr());
}

#[test]
fn a_handle_may_point_into_another_joins_range() {
    let region = TestRegion::normal("inside", 2);
    let named = join(&region.name, Access::ReadWrite, &options()).expect("join");
    let memory = AnonHugePages::acquire(PageSize::Normal, 1, None).expect("1 page");
    let addr = memory.as_ptr() as usize;
    let handle = named.region_ptr() as usize + PAGE;
    let name = unique_name("j-anon-inside");
    let registered = register(&name, handle, addr, PageSize::Normal, 1)
        .expect("a handle is refused only when it is another join's handle");
    assert_eq!(query_by_handle(handle as *const u8), Some(registered), "by handle");
    assert!(range_finds(handle, 1, &region.name), "the handle's byte belongs to the region");
    assert!(range_finds(addr, 1, &name), "the memory belongs to the anonymous join");
    assert_eq!(query_by_handle(named.as_ptr()).map(|info| info.name), Some(region.name));
    assert_eq!(leave_anonymous(at(handle)).expect("leave_anonymous"), registered);
    assert_eq!(query_by_handle(named.as_ptr()).map(|info| info.name), Some(region.name));
}

#[test]
fn a_named_join_of_an_anonymous_name_is_a_count_hit() {
    let memory = AnonHugePages::acquire(PageSize::Normal, 2, None).expect("2 pages");
    let addr = memory.as_ptr() as usize;
    let handle = addr + 256;
    let name = unique_name("j-anon-hit");
    let registered = register(&name, handle, addr, PageSize::Normal, 2).expect("register");

    let by_name = join(&name, Access::ReadOnly, &options()).expect("a named join is a count hit");
    assert_eq!(
        (by_name.as_ptr() as usize, by_name.region_ptr() as usize, by_name.len()),
        (handle, addr, 2 * PAGE)
    );
    assert_eq!(query_by_name(&name).map(|info| info.count), Some(2));
    let refused = leave_anonymous(at(handle));
    assert!(
        matches!(&refused, Err(Error::WrongLeave { name: left, .. }) if *left == name),
        "leave_anonymous with count 2: {refused:?}"
    );
    assert_eq!(query_by_name(&name).map(|info| info.count), Some(2), "the refusal changed nothing");

    let read_write = join(&name, Access::ReadWrite, &options()).expect("read-write hit");
    store(&read_write, 8, 0x1234);
    assert_eq!(load(&by_name, 8), 0x1234, "both joins are the same memory");
    assert_eq!(memory.as_slice()[8], 0x34, "... which is the caller's");
    assert_eq!(query_by_name(&name).map(|info| info.count), Some(3));
    drop(read_write);
    by_name.leave().expect("leave the named join");
    assert_eq!(query_by_name(&name), Some(registered), "back to the anonymous join alone");
    assert_eq!(leave_anonymous(at(handle)).expect("leave_anonymous"), registered);
    assert!(query_by_name(&name).is_none());
    assert!(query_by_handle(handle as *const u8).is_none_or(|info| info.name != name));
}

#[test]
fn a_read_only_anonymous_join_refuses_read_write_joins() {
    let memory = AnonHugePages::acquire(PageSize::Normal, 1, None).expect("1 page");
    let addr = at(memory.as_ptr() as usize);
    let name = unique_name("j-anon-ro");
    let registered =
        join_anonymous(&name, Access::ReadOnly, addr, addr, PageSize::Normal, 1).expect("register");
    let error = join(&name, Access::ReadWrite, &options()).expect_err("an upgrade");
    assert!(matches!(error, Error::AccessUpgrade { .. }), "{error}");
    assert_eq!(query_by_name(&name), Some(registered));
    assert_eq!(leave_anonymous(addr).expect("leave_anonymous"), registered);
}

#[test]
fn leave_anonymous_of_a_named_join_is_a_wrong_leave() {
    let region = TestRegion::normal("wrong", 1);
    let named = join(&region.name, Access::ReadWrite, &options()).expect("join");
    let before = named.info().expect("info");
    let result = leave_anonymous(at(named.as_ptr() as usize));
    assert!(
        matches!(&result, Err(Error::WrongLeave { name, .. }) if *name == region.name),
        "{result:?}"
    );
    let message = result.expect_err("refused").to_string();
    assert!(message.contains(region.name.as_str()), "the message names the region: {message}");
    assert_eq!(named.info().expect("info"), before, "the refusal changed nothing");
    named.leave().expect("leave");
    assert!(query_by_name(&region.name).is_none());
}

#[test]
fn leave_anonymous_of_an_unknown_handle_is_not_joined() {
    let memory = AnonHugePages::acquire(PageSize::Normal, 1, None).expect("1 page");
    let result = leave_anonymous(at(memory.as_ptr() as usize));
    assert!(matches!(result, Err(Error::NotJoined { .. })), "{result:?}");
}

#[test]
fn empty_and_wrapping_ranges_are_invalid() {
    let memory = AnonHugePages::acquire(PageSize::Normal, 1, None).expect("1 page");
    let addr = memory.as_ptr() as usize;
    let top = usize::MAX - (PAGE - 1);
    let cases: [(&str, usize, PageSize, u64); 5] = [
        ("zero pages", addr, PageSize::Normal, 0),
        ("u64::MAX pages", addr, PageSize::Normal, u64::MAX),
        ("a length that overflows usize", addr, PageSize::Normal, (usize::MAX / PAGE + 1) as u64),
        ("huge pages past the end of the address space", addr, PageSize::Huge, 1 << 43),
        ("two pages at the last page", top, PageSize::Normal, 2),
    ];
    for (what, start, page_size, count) in cases {
        let name = unique_name("j-anon-bad");
        let result =
            join_anonymous(&name, Access::ReadWrite, at(start), at(start), page_size, count);
        assert!(matches!(result, Err(Error::InvalidRange { .. })), "{what}: {result:?}");
        assert!(query_by_name(&name).is_none(), "{what} is not recorded");
    }
    let error = join_anonymous(
        &unique_name("j-anon-bad"),
        Access::ReadOnly,
        at(top),
        at(top),
        PageSize::Normal,
        2,
    )
    .expect_err("wraps");
    let message = error.to_string();
    assert!(
        message.contains("8192 bytes at 0xfffffffffffff000: empty, or past the end"),
        "{message}"
    );
}

#[test]
fn a_join_moves_to_another_thread_and_is_shared_between_threads() {
    let region = TestRegion::normal("threads", 2);
    let first = join(&region.name, Access::ReadWrite, &options()).expect("join");
    let second = join(&region.name, Access::ReadOnly, &options()).expect("join");
    store(&first, 0, 42);
    assert_eq!(first.info().expect("info").count, 2);
    std::thread::spawn(move || {
        assert_eq!(load(&second, 0), 42, "the moved join reads the region");
        drop(second);
    })
    .join()
    .expect("the thread that dropped the moved join");
    assert_eq!(first.info().expect("info").count, 1, "dropping on another thread left");

    let shared = &first;
    std::thread::scope(|scope| {
        for thread in 1..=4_u64 {
            scope.spawn(move || {
                assert_eq!(shared.info().expect("info").name, region.name);
                assert_eq!(load(shared, 0), 42);
                store(shared, 8 * thread as usize, thread);
                let extra =
                    join(&region.name, Access::ReadOnly, &options()).expect("a join per thread");
                assert_eq!(extra.region_ptr(), shared.region_ptr());
            });
        }
    });
    for thread in 1..=4_u64 {
        assert_eq!(load(&first, 8 * thread as usize), thread, "thread {thread}'s write");
    }
    assert_eq!(first.info().expect("info").count, 1, "every thread's join was left");
    std::thread::spawn(move || first.leave().expect("leave on another thread"))
        .join()
        .expect("the thread that left");
    assert!(query_by_name(&region.name).is_none(), "left from another thread");
}
