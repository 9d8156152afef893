//! loom models of the registry's join/leave/query protocol: the record states (`Joining`,
//! `Ready`, `Leaving`), the lock released while mapping, and the indexes updated with the records.
//! A first join "maps" a fake address (loom cannot map memory); run by `cargo xtask loom`.
#![cfg(loom)]

use loom::sync::Arc;
use loom::thread;
use shmkit_join::Registry;
use shmkit_name::Name;
use shmkit_os::Access;

const ADDR: usize = 0x10_0000;
const LEN: usize = 0x2000;

/// Runs `body` under loom and reports how many interleavings it explored.
fn model(what: &str, body: impl Fn() + Send + Sync + 'static) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let runs = std::sync::Arc::new(AtomicUsize::new(0));
    let counter = std::sync::Arc::clone(&runs);
    loom::model(move || {
        counter.fetch_add(1, Ordering::Relaxed);
        body();
    });
    eprintln!("{what}: {} interleavings explored", runs.load(Ordering::Relaxed));
}

fn name(text: &str) -> Name {
    Name::new(text).expect("valid name")
}

/// Two threads join one name at once: one maps, the other waits for it (never a false cycle,
/// never a second mapping); both see the same record, and the count is exact.
#[test]
fn concurrent_first_joins_share_one_record() {
    model("concurrent first joins", || {
        let registry = Arc::new(Registry::new());
        let other = {
            let registry = Arc::clone(&registry);
            thread::spawn(move || registry.model_join(&name("r"), Access::ReadWrite, ADDR, LEN))
        };
        let mine = registry.model_join(&name("r"), Access::ReadWrite, ADDR + LEN * 4, LEN);
        let theirs = other.join().expect("thread");
        let (mine, theirs) = (mine.expect("join"), theirs.expect("join"));
        assert_eq!(mine.0, theirs.0, "one mapping");
        let info = registry.query_by_name(&name("r")).expect("joined");
        assert_eq!(info.count, 2);
        assert_eq!(registry.query_by_range(info.addr, 1).expect("range").map(|i| i.count), Some(2));
        registry.model_leave(&name("r"), info.handle).expect("leave");
        registry.model_leave(&name("r"), info.handle).expect("leave");
        assert!(registry.query_by_name(&name("r")).is_none());
        assert!(registry.query_by_range(info.addr, LEN).expect("range").is_none());
    });
}

/// Queries racing a join and a leave see either nothing or a whole ready record: never a
/// half-made one (address 0, count 0), and the range and handle indexes agree with the records.
#[test]
fn queries_never_see_a_record_in_progress() {
    model("queries racing a join and a leave", || {
        let registry = Arc::new(Registry::new());
        let joiner = {
            let registry = Arc::clone(&registry);
            thread::spawn(move || {
                let (_, handle) = registry.model_join(&name("q"), Access::ReadOnly, ADDR, LEN)?;
                registry.model_leave(&name("q"), handle)
            })
        };
        for _ in 0..2 {
            let by_name = registry.query_by_name(&name("q"));
            let by_range = registry.query_by_range(ADDR + LEN - 1, 1).expect("range");
            let by_handle = registry.query_by_handle(ADDR);
            for info in [by_name, by_range, by_handle].into_iter().flatten() {
                assert_eq!((info.addr, info.len, info.count), (ADDR, LEN, 1), "{info:?}");
            }
        }
        joiner.join().expect("thread").expect("join and leave");
        assert!(registry.snapshot().is_empty());
    });
}

/// A last leave racing a new join of the same name: the join either raises the old count (and
/// the leave then only lowers it) or waits for the leave and maps afresh; either way one join
/// remains, indexed at the address it reports.
#[test]
fn a_join_racing_the_last_leave() {
    model("a join racing the last leave", || {
        let registry = Arc::new(Registry::new());
        let (_, first) =
            registry.model_join(&name("l"), Access::ReadWrite, ADDR, LEN).expect("join");
        let leaver = {
            let registry = Arc::clone(&registry);
            thread::spawn(move || registry.model_leave(&name("l"), first))
        };
        let (second, _) =
            registry.model_join(&name("l"), Access::ReadWrite, ADDR + LEN * 8, LEN).expect("join");
        leaver.join().expect("thread").expect("leave");
        let info = registry.query_by_name(&name("l")).expect("still joined");
        assert_eq!(info.count, 1);
        assert_eq!(info.addr, second);
        let found = registry.query_by_range(second, LEN).expect("range");
        assert_eq!(found.map(|i| i.addr), Some(second));
        assert_eq!(registry.snapshot().len(), 1);
    });
}
