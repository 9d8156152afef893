//! Queries while a last leave's hook runs: the leaving region is no longer found, every other
//! ready join still is, including by a range that also covers the leaving one.
//!
//! One test in this binary: a range between two random addresses can span terabytes, and any
//! other test's joins in this process could lie in it.

mod common;

use common::{TestRegion, options};
use shmkit_join::{Join, join, query_by_range};
use shmkit_os::Access;

/// Two joined regions, the one at the lower address first.
fn two_joins(tag: &str) -> (TestRegion, TestRegion, Join, Join) {
    let a = TestRegion::normal(&format!("{tag}-a"), 1);
    let b = TestRegion::normal(&format!("{tag}-b"), 1);
    let first = join(&a.name, Access::ReadWrite, &options()).expect("join a");
    let second = join(&b.name, Access::ReadWrite, &options()).expect("join b");
    if first.region_ptr() < second.region_ptr() {
        (a, b, first, second)
    } else {
        (b, a, second, first)
    }
}

#[test]
fn queries_during_a_leave_hook() {
    a_ready_join_is_found_by_its_own_range_while_another_leaves();
    a_ready_join_is_found_by_a_range_that_also_covers_a_leaving_one();
}

fn a_ready_join_is_found_by_its_own_range_while_another_leaves() {
    let (low_region, _high_region, low, high) = two_joins("leave-own");
    let (start, len) = (low.region_ptr(), low.len());
    let mut during = None;
    high.leave_with(|_| during = Some(query_by_range(start, len).expect("query"))).expect("leave");
    let during = during.expect("the hook ran").map(|info| info.name);
    assert_eq!(during, Some(low_region.name), "the ready join is found during the leave hook");
}

/// The range from the lower join's first byte to the higher join's last covers both; while the
/// higher one leaves, the lower one is ready and must still be found.
///
/// (The leaving record leaves the address index when its leave hook starts, so the binary search
/// meets the ready span below it.)
fn a_ready_join_is_found_by_a_range_that_also_covers_a_leaving_one() {
    let (low_region, _high_region, low, high) = two_joins("leave-both");
    let start = low.region_ptr();
    let len = high.region_ptr() as usize + high.len() - start as usize;
    let before = query_by_range(start, len).expect("query").map(|info| info.name);
    assert!(before.is_some(), "both are ready before the leave");
    let mut during = None;
    high.leave_with(|_| during = Some(query_by_range(start, len).expect("query"))).expect("leave");
    let during = during.expect("the hook ran").map(|info| info.name);
    let after = query_by_range(start, len).expect("query").map(|info| info.name);
    assert_eq!(after, Some(low_region.name), "after the leave");
    assert!(
        during.is_some(),
        "during the leave hook of the higher join, {len} bytes at {start:p} overlap the ready {} \
         but query_by_range found {during:?}",
        low_region.name
    );
    drop(low);
}
