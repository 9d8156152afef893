//! `SlotMap::new` is a `const fn`: a map can be a `static`, read-only or behind a lock.

use std::sync::Mutex;
use std::thread;

use shmkit_slotmap::SlotMap;

static EMPTY: SlotMap<u64, u64, 16> = SlotMap::new();

static COUNTS: Mutex<SlotMap<u64, u64, 64>> = Mutex::new(SlotMap::new());

#[test]
fn plain_static() {
    assert!(EMPTY.is_empty());
    assert_eq!(EMPTY.capacity(), 16);
    assert_eq!(EMPTY.get(&1), None);
    assert_eq!(EMPTY.iter().count(), 0);
}

#[test]
fn static_behind_a_lock_shared_by_threads() {
    let workers: Vec<_> = (0..4_u64)
        .map(|worker| {
            thread::spawn(move || {
                for round in 0..1000_u64 {
                    let key = 1 + (worker * 1000 + round) % 48;
                    let mut counts =
                        COUNTS.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                    match counts.get_mut(&key) {
                        Some(count) => *count += 1,
                        None => assert!(counts.insert(key, 1).is_ok()),
                    }
                }
            })
        })
        .collect();
    for worker in workers {
        assert!(worker.join().is_ok());
    }
    let counts = COUNTS.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    assert_eq!(counts.len(), 48);
    assert_eq!(counts.iter().map(|(_, count)| count).sum::<u64>(), 4000);
}

#[cfg(feature = "name")]
#[test]
fn static_of_name_keys() {
    use shmkit_name::{Key, Name};

    static REGIONS: Mutex<SlotMap<Key, u32, 8>> = Mutex::new(SlotMap::new());

    let key = match Name::new("orders.v1") {
        Ok(name) => name.key(),
        Err(error) => panic!("valid name: {error}"),
    };
    let mut regions = REGIONS.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    assert!(regions.insert(key, 3).is_ok());
    assert_eq!(regions.get(&key), Some(&3));
}
