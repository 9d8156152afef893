//! The registry's capacity: 255 joins, then a clear `Error::Full`, not a panic, for named and
//! anonymous joins alike; a count hit still works when full, and a leave makes room.
//!
//! This binary holds exactly one test, so the registry holds nothing but its joins.

mod common;

use std::time::Instant;

use common::{TestRegion, options};
use shmkit_join::{
    CAPACITY, Error, Join, join, join_anonymous, joins, leave_anonymous, query_by_handle,
    query_by_name, query_by_range,
};
use shmkit_name::{Name, PageSize};
use shmkit_os::{Access, AnonHugePages};

/// Asserts `result` is `Error::Full` for `name`, with a message that says so.
fn assert_full<T: std::fmt::Debug>(result: shmkit_join::Result<T>, name: &Name, what: &str) {
    let error = match result {
        Err(error) => error,
        Ok(value) => panic!("{what} past the capacity succeeded: {value:?}"),
    };
    let message = error.to_string();
    let Error::Full { name: refused, capacity } = error else {
        panic!("{what} past the capacity: {message}, not Full");
    };
    assert_eq!((refused, capacity), (*name, CAPACITY), "{what}: {message}");
    for needle in [name.as_str(), "255", "full", "leave a region"] {
        assert!(message.contains(needle), "{what}: {message:?} does not say {needle:?}");
    }
    assert!(query_by_name(name).is_none(), "{what}: a refused join is not recorded");
    assert_eq!(joins().len(), CAPACITY, "{what}: the registry is still full");
}

/// Every held join is found by name, handle and range, and the snapshot holds exactly them.
fn check_every_query(held: &[Join]) {
    assert_eq!(joins().len(), held.len());
    for joined in held {
        let info = query_by_name(joined.name())
            .unwrap_or_else(|| panic!("{} is not found by name", joined.name()));
        assert_eq!(query_by_handle(joined.as_ptr()), Some(info), "by handle");
        let last = joined.region_ptr().wrapping_add(joined.len() - 1);
        assert_eq!(query_by_range(last, 1).expect("query"), Some(info), "by its last byte");
        assert!(joins().iter().any(|found| *found == info), "in the snapshot");
    }
}

#[test]
fn the_registry_holds_255_joins_and_refuses_the_256th() {
    let started = Instant::now();
    assert_eq!(CAPACITY, 255);
    assert!(joins().is_empty(), "this binary's only test starts with an empty registry");
    let regions: Vec<TestRegion> = (0..=CAPACITY).map(|_| TestRegion::normal("cap", 1)).collect();
    let (last, first) = (&regions[CAPACITY], &regions[..CAPACITY]);
    let mut held: Vec<_> = first
        .iter()
        .enumerate()
        .map(|(index, region)| {
            join(&region.name, Access::ReadWrite, &options())
                .unwrap_or_else(|error| panic!("join {index} ({}): {error}", region.name))
        })
        .collect();
    assert_eq!(joins().len(), CAPACITY);
    check_every_query(&held);

    assert_full(join(&last.name, Access::ReadWrite, &options()), &last.name, "a 256th join");
    let memory = AnonHugePages::acquire(PageSize::Normal, 1, None).expect("1 page");
    let addr = std::ptr::NonNull::new(memory.as_ptr()).expect("not null");
    let anon = common::unique_name("j-cap-anon");
    assert_full(
        join_anonymous(&anon, Access::ReadWrite, addr, addr, PageSize::Normal, 1),
        &anon,
        "a 256th anonymous join",
    );

    // A join of a region already joined is a count hit: it needs no slot.
    let again = join(&first[7].name, Access::ReadOnly, &options()).expect("a count hit when full");
    assert_eq!(again.info().expect("info").count, 2);
    drop(again);

    // Leaving one makes room for exactly one more.
    let left = held.swap_remove(0);
    let left_name = *left.name();
    left.leave().expect("leave");
    assert!(query_by_name(&left_name).is_none());
    let newest = join(&last.name, Access::ReadWrite, &options()).expect("room after a leave");
    assert_eq!(joins().len(), CAPACITY);
    assert_full(
        join_anonymous(&anon, Access::ReadWrite, addr, addr, PageSize::Normal, 1),
        &anon,
        "an anonymous join after the room was taken",
    );
    drop(newest);
    let info = join_anonymous(&anon, Access::ReadWrite, addr, addr, PageSize::Normal, 1)
        .expect("an anonymous join takes the room");
    assert_full(join(&last.name, Access::ReadWrite, &options()), &last.name, "a join after that");
    assert_eq!(leave_anonymous(addr).expect("leave_anonymous"), info);

    // Churn at full capacity: leave one, join another, many times; every query stays right.
    held.push(join(&last.name, Access::ReadWrite, &options()).expect("join the last again"));
    assert_eq!(joins().len(), CAPACITY);
    let mut spare = left_name;
    let mut state = 0x9E37_79B9_7F4A_7C15_u64;
    for round in 0..4096 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let index = (state % held.len() as u64) as usize;
        let left = held.swap_remove(index);
        let left_name = *left.name();
        left.leave().unwrap_or_else(|error| panic!("round {round}: leave {left_name}: {error}"));
        let joined = join(&spare, Access::ReadWrite, &options())
            .unwrap_or_else(|error| panic!("round {round}: join {spare} after a leave: {error}"));
        held.push(joined);
        spare = left_name;
        assert_full(join(&spare, Access::ReadWrite, &options()), &spare, "a join in the churn");
        if round % 512 == 0 {
            check_every_query(&held);
        }
    }
    check_every_query(&held);

    // Every slot comes back.
    drop(held);
    assert!(joins().is_empty(), "every join was left");
    let again: Vec<_> = regions
        .iter()
        .take(CAPACITY)
        .map(|region| join(&region.name, Access::ReadOnly, &options()).expect("join again"))
        .collect();
    assert_eq!(joins().len(), CAPACITY);
    drop(again);
    assert!(joins().is_empty());
    eprintln!("capacity test in {:.2?}", started.elapsed());
}
