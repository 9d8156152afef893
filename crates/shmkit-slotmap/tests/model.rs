//! Model test: long random operation sequences on small and large tables, checked step by step
//! against `std::collections::HashMap`, plus the probing invariant read from the raw slots.

use std::collections::{HashMap, HashSet};

use shmkit_slotmap::{InsertError, SlotKey, SlotMap};

use shmkit_testkit::Rng;

/// The key of every slot, read through the documented `#[repr(C)]` layout: a `u64` length, then
/// `N` slots of (`u64` key, `u64` value). Keys are always initialised; values are not read.
fn slot_keys<const N: usize>(map: &SlotMap<u64, u64, N>) -> [u64; N] {
    let base = std::ptr::from_ref(map).cast::<u64>();
    std::array::from_fn(|slot| {
        // SAFETY: the layout puts slot `slot`'s key at word 1 + 2 * slot, within the map, aligned,
        // and always initialised (null for an empty slot).
        unsafe { base.add(1 + 2 * slot).read() }
    })
}

/// Every key is reachable from its home slot without crossing an empty slot, appears once, and
/// the occupied slots number `len`.
fn check_invariant<const N: usize>(map: &SlotMap<u64, u64, N>, context: &str) {
    let keys = slot_keys(map);
    let mut seen = HashSet::new();
    for (slot, &key) in keys.iter().enumerate() {
        if key.is_null() {
            continue;
        }
        assert!(seen.insert(key), "{context}: key {key} stored twice");
        let home = key.hash64() as usize & (N - 1);
        let mut index = home;
        while index != slot {
            assert!(
                !keys[index].is_null(),
                "{context}: key {key} in slot {slot} (home {home}) is cut off by empty slot {index}"
            );
            index = (index + 1) & (N - 1);
        }
    }
    assert_eq!(seen.len(), map.len(), "{context}: occupied slots vs len");
}

fn check_contents<const N: usize>(
    map: &SlotMap<u64, u64, N>,
    model: &HashMap<u64, u64>,
    context: &str,
) {
    let mut entries: Vec<(u64, u64)> = map.iter().map(|(&key, &value)| (key, value)).collect();
    entries.sort_unstable();
    let mut expected: Vec<(u64, u64)> = model.iter().map(|(&key, &value)| (key, value)).collect();
    expected.sort_unstable();
    assert_eq!(entries, expected, "{context}: iter");
    let mut backwards: Vec<(u64, u64)> =
        map.iter().rev().map(|(&key, &value)| (key, value)).collect();
    backwards.sort_unstable();
    assert_eq!(backwards, expected, "{context}: iter().rev()");
}

/// Checks `insert`'s result against the model and applies it; true if the table was full.
fn check_insert<const N: usize>(
    result: &Result<u64, InsertError<u64>>,
    key: u64,
    value: u64,
    model: &mut HashMap<u64, u64>,
    context: &str,
) -> bool {
    match result {
        Ok(stored) => {
            assert_eq!(*stored, value, "{context}");
            assert!(
                key != 0 && !model.contains_key(&key) && model.len() < N,
                "{context}: insert succeeded"
            );
            model.insert(key, value);
        }
        Err(InsertError::NullKey(back)) => assert!(key == 0 && *back == value, "{context}"),
        Err(InsertError::Exists(back)) => {
            assert!(model.contains_key(&key) && *back == value, "{context}");
        }
        Err(InsertError::Full(back)) => {
            assert!(
                key != 0 && !model.contains_key(&key) && model.len() == N && *back == value,
                "{context}"
            );
            return true;
        }
    }
    false
}

/// Checks `insert_or_replace`'s result against the model and applies it; true if the table was
/// full.
fn check_replace<const N: usize>(
    result: &Result<Option<u64>, InsertError<u64>>,
    key: u64,
    value: u64,
    model: &mut HashMap<u64, u64>,
    context: &str,
) -> bool {
    match result {
        Ok(old) => {
            assert_ne!(key, 0, "{context}");
            assert!(model.len() < N || model.contains_key(&key), "{context}");
            assert_eq!(*old, model.insert(key, value), "{context}: replaced value");
        }
        Err(InsertError::NullKey(back)) => assert!(key == 0 && *back == value, "{context}"),
        Err(InsertError::Full(back)) => {
            assert!(!model.contains_key(&key) && model.len() == N && *back == value, "{context}");
            return true;
        }
        Err(InsertError::Exists(_)) => panic!("{context}: insert_or_replace never reports Exists"),
    }
    false
}

/// `retain` on both, keeping the keys whose hash picks a set bit of `mask`, and checking that the
/// map offers each entry exactly once.
fn retain_both<const N: usize>(
    map: &mut SlotMap<u64, u64, N>,
    model: &mut HashMap<u64, u64>,
    mask: u64,
    context: &str,
) {
    let keep = |key: u64| mask & (1 << (key.hash64() % 64)) != 0;
    let mut visits: HashMap<u64, u32> = HashMap::new();
    map.retain(|&key, stored| {
        *visits.entry(key).or_default() += 1;
        *stored = stored.wrapping_add(1);
        keep(key)
    });
    let expected_visits: HashMap<u64, u32> = model.keys().map(|&key| (key, 1)).collect();
    assert_eq!(visits, expected_visits, "{context}: retain visits");
    model.retain(|&key, stored| {
        *stored = stored.wrapping_add(1);
        keep(key)
    });
}

/// `steps` random operations on keys `0..key_space` (0 is the null key), compared with a model.
fn run<const N: usize>(seed: u64, steps: usize, key_space: u64) -> usize {
    let mut rng = Rng(seed);
    // Boxed: the 256-slot map alone is 4 KiB, and is moved around below.
    let mut map: Box<SlotMap<u64, u64, N>> = Box::default();
    let mut model: HashMap<u64, u64> = HashMap::new();
    let mut times_full = 0;
    for step in 0..steps {
        let context = format!("N={N} seed={seed} step={step}");
        let key = rng.below(key_space);
        let value = rng.next();
        match rng.below(10_000) {
            0..2500 => {
                let result = map.insert(key, value).map(|stored| *stored);
                times_full +=
                    usize::from(check_insert::<N>(&result, key, value, &mut model, &context));
            }
            2500..4000 => {
                let result = map.insert_or_replace(key, value);
                times_full +=
                    usize::from(check_replace::<N>(&result, key, value, &mut model, &context));
            }
            4000..5500 => assert_eq!(map.get(&key), model.get(&key), "{context}: get"),
            5500..6200 => {
                if let Some(stored) = map.get_mut(&key) {
                    *stored = stored.wrapping_add(value);
                }
                if let Some(stored) = model.get_mut(&key) {
                    *stored = stored.wrapping_add(value);
                }
                assert_eq!(map.get(&key), model.get(&key), "{context}: get_mut");
            }
            6200..6500 => {
                let expected = model.get_key_value(&key);
                assert_eq!(map.get_key_value(&key), expected, "{context}: get_key_value");
            }
            6500..8500 => assert_eq!(map.remove(&key), model.remove(&key), "{context}: remove"),
            8500..9560 => {
                assert_eq!(map.contains(&key), model.contains_key(&key), "{context}: contains");
            }
            9560..9700 => {
                for (_, stored) in map.iter_mut() {
                    *stored ^= value;
                }
                for stored in model.values_mut() {
                    *stored ^= value;
                }
            }
            9700..9730 => {
                retain_both(&mut map, &mut model, rng.next() | rng.next() | rng.next(), &context);
            }
            9730..9998 => {
                let copy = map.clone();
                check_contents(&copy, &model, &format!("{context} (clone)"));
                check_invariant(&copy, &format!("{context} (clone)"));
            }
            _ => {
                map.clear();
                model.clear();
            }
        }
        assert_eq!(map.len(), model.len(), "{context}: len");
        assert_eq!(map.is_empty(), model.is_empty(), "{context}: is_empty");
        if N <= 16 || step % 16 == 0 {
            check_contents(&map, &model, &context);
            check_invariant(&map, &context);
        }
    }
    check_contents(&map, &model, "end");
    check_invariant(&map, "end");
    times_full
}

const STEPS: usize = 100_000;

#[test]
fn model_capacity_1() {
    let full = run::<1>(1, STEPS, 4);
    assert!(full > 1000, "the table was full only {full} times");
}

#[test]
fn model_capacity_2() {
    let full = run::<2>(2, STEPS, 6);
    assert!(full > 1000, "the table was full only {full} times");
}

#[test]
fn model_capacity_8() {
    let full = run::<8>(3, STEPS, 13);
    assert!(full > 1000, "the table was full only {full} times");
    // Denser key space: longer clusters, more wrap-around.
    run::<8>(4, STEPS, 10);
}

#[test]
fn model_capacity_256() {
    // Inserting takes 40% of operations and removing 20%, so occupancy settles near 2/3 of the
    // key space: 341 here, more than fits, so the table is full much of the time.
    let full = run::<256>(5, STEPS, 512);
    assert!(full > 1000, "the table was full only {full} times");
}

#[test]
fn model_many_short_runs() {
    for seed in 100..300 {
        run::<4>(seed, 500, 7);
        run::<16>(seed, 500, 24);
    }
}

/// Heap-owning values: every replaced, removed, retained-out, cleared or rejected value is dropped
/// exactly once (a double drop or a leak of a `String` shows up under a sanitizer or as a
/// mismatch with the model).
#[test]
fn model_owned_values() {
    let mut rng = Rng(7);
    let mut map: SlotMap<u64, String, 8> = SlotMap::new();
    let mut model: HashMap<u64, String> = HashMap::new();
    for step in 0..20_000 {
        let key = rng.below(12);
        let value = format!("{key}:{step}");
        match rng.below(100) {
            0..30 => {
                let inserted = map.insert(key, value.clone()).is_ok();
                assert_eq!(inserted, key != 0 && !model.contains_key(&key) && model.len() < 8);
                if inserted {
                    model.insert(key, value);
                }
            }
            30..50 => match map.insert_or_replace(key, value.clone()) {
                Ok(old) => assert_eq!(old, model.insert(key, value), "step {step}"),
                Err(error) => assert_eq!(error.into_value(), value),
            },
            50..80 => assert_eq!(map.remove(&key), model.remove(&key), "step {step}"),
            80..95 => assert_eq!(map.get(&key), model.get(&key), "step {step}"),
            95..99 => {
                let cut = rng.below(12);
                map.retain(|&key, _| key < cut);
                model.retain(|&key, _| key < cut);
            }
            _ => {
                map.clear();
                model.clear();
            }
        }
        assert_eq!(map.len(), model.len(), "step {step}");
    }
    let copy = map.clone();
    drop(map);
    let mut entries: Vec<(u64, String)> =
        copy.iter().map(|(&key, value)| (key, value.clone())).collect();
    entries.sort();
    let mut expected: Vec<(u64, String)> = model.into_iter().collect();
    expected.sort();
    assert_eq!(entries, expected);
}
