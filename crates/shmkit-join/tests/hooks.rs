//! Hooks, cycles, access and the count, against real regions in /dev/shm.

use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering};

use shmkit_join::{
    Error, JoinOptions, join, join_with, query_by_handle, query_by_name, query_by_range,
};
use shmkit_name::{Name, PageSize};
use shmkit_os::{Access, RegionOptions};

/// A fresh region, unlinked on drop.
struct TestRegion(Name);

impl TestRegion {
    fn new(tag: &str) -> Self {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let name = Name::new(&format!("j-{tag}-{}-{n}", std::process::id())).expect("valid name");
        RegionOptions::new().create(&name, 2).expect("create");
        Self(name)
    }
}

impl Drop for TestRegion {
    fn drop(&mut self) {
        let _ = shmkit_os::unlink(&self.0, PageSize::Normal);
    }
}

fn options() -> JoinOptions {
    JoinOptions::new().map_options(shmkit_os::MapOptions::new())
}

#[test]
fn a_refused_join_is_undone() {
    let region = TestRegion::new("refuse");
    let error = join_with(&region.0, Access::ReadWrite, &options(), |_| Err("not today".into()))
        .expect_err("refused");
    assert!(matches!(error, Error::HookRefused { .. }), "{error}");
    assert!(query_by_name(&region.0).is_none());
}

#[test]
fn a_hook_joining_its_own_region_is_a_cycle() {
    let region = TestRegion::new("cycle");
    let name = region.0;
    let mut inner = None;
    let joined = join_with(&name, Access::ReadWrite, &options(), |info| {
        inner = Some(join(&name, Access::ReadWrite, &options()).map(|_| ()));
        NonNull::new(info.addr as *mut u8).ok_or_else(|| "null".into())
    })
    .expect("outer join");
    assert!(matches!(inner, Some(Err(Error::Cycle { .. }))), "{inner:?}");
    assert_eq!(joined.info().expect("info").count, 1);
}

#[test]
fn hooks_build_nested_topologies_and_the_handle_is_what_the_hook_returned() {
    let outer = TestRegion::new("outer");
    let inner = TestRegion::new("inner");
    let mut nested = None;
    let joined = join_with(&outer.0, Access::ReadWrite, &options(), |info| {
        nested = Some(join(&inner.0, Access::ReadWrite, &options()).expect("nested join"));
        NonNull::new((info.addr + 64) as *mut u8).ok_or_else(|| "null".into())
    })
    .expect("join");
    assert_eq!(joined.as_ptr() as usize, joined.region_ptr() as usize + 64);
    assert_eq!(query_by_handle(joined.as_ptr()).map(|info| info.name), Some(outer.0));
    assert_eq!(query_by_name(&inner.0).map(|info| info.count), Some(1));
    let mut left_inner = false;
    joined
        .leave_with(|_| {
            drop(nested.take());
            left_inner = query_by_name(&inner.0).is_none();
        })
        .expect("leave");
    assert!(left_inner, "the leave hook left the nested region");
    assert!(query_by_name(&outer.0).is_none());
}

#[test]
fn read_write_on_a_read_only_join_is_refused() {
    let region = TestRegion::new("upgrade");
    let read_only = join(&region.0, Access::ReadOnly, &options()).expect("join");
    let error = join(&region.0, Access::ReadWrite, &options()).expect_err("upgrade");
    assert!(matches!(error, Error::AccessUpgrade { .. }), "{error}");
    let again = join(&region.0, Access::ReadOnly, &options()).expect("read-only again");
    assert_eq!(again.info().expect("info").count, 2);
    drop(read_only);
}

#[test]
fn queries_by_range() {
    let region = TestRegion::new("range");
    let joined = join(&region.0, Access::ReadWrite, &options()).expect("join");
    let start = joined.region_ptr();
    assert_eq!(query_by_range(start, 1).expect("query").map(|info| info.name), Some(region.0));
    assert_eq!(
        query_by_range(start.wrapping_add(8191), 1).expect("query").map(|info| info.name),
        Some(region.0)
    );
    assert!(
        query_by_range(start.wrapping_add(8192), 1)
            .expect("query")
            .is_none_or(|info| info.name != region.0)
    );
    assert!(query_by_range(start, 0).expect("empty range").is_none());
    assert!(matches!(query_by_range(usize::MAX as *const u8, 2), Err(Error::InvalidRange { .. })));
}

#[test]
fn concurrent_first_joins_of_one_name_share_one_mapping() {
    let region = TestRegion::new("threads");
    let name = region.0;
    let joins: Vec<_> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..8)
            .map(|_| scope.spawn(move || join(&name, Access::ReadWrite, &options()).expect("join")))
            .collect();
        handles.into_iter().map(|handle| handle.join().expect("thread")).collect()
    });
    assert!(joins.windows(2).all(|pair| pair[0].as_ptr() == pair[1].as_ptr()));
    assert_eq!(query_by_name(&name).map(|info| info.count), Some(8));
    drop(joins);
    assert!(query_by_name(&name).is_none());
}
