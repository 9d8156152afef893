//! `SlotMap<Key, u64, 256>` with region-name keys, at 50% (128 keys) and 90% (230 keys) load:
//! lookups that hit and miss, inserts and removes.
//!
//! Keys are visited in a fixed pseudo-random order of 1024 picks, so neither the branch predictor
//! nor the prefetcher sees a trivial pattern. Inserts and removes are timed in chunks of 8
//! (inserting 8 absent keys, then removing them untimed; removing 8 present keys, then putting them
//! back untimed), so the load stays within 8 keys of its nominal value; each chunk's time includes
//! one clock read, a few ns spread over the 8 operations.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, criterion_main};
use shmkit_benches::XorShift;
use shmkit_name::{Key, Name};
use shmkit_slotmap::SlotMap;

type Map = SlotMap<Key, u64, 256>;

/// Length of each key-order array: a power of two, so advancing through it is a mask.
const ORDER: usize = 1024;
/// Operations per timed chunk for inserts and removes.
const CHUNK: usize = 8;

fn key(index: usize) -> Key {
    match Name::new(&format!("region-{index:04}")) {
        Ok(name) => name.key(),
        Err(error) => panic!("region-{index:04} should be a valid name: {error}"),
    }
}

/// `ORDER` keys drawn from `pool` in pseudo-random order: shuffled rounds of the pool, so keys
/// appear about equally often and never twice within one chunk.
fn order(pool: &[Key], seed: u64) -> Vec<Key> {
    let mut rng = XorShift::new(seed);
    let mut keys = Vec::with_capacity(ORDER);
    while keys.len() < ORDER {
        let mut round = pool.to_vec();
        // Fisher-Yates.
        for last in (1..round.len()).rev() {
            let pick = (rng.next_u64() % (last as u64 + 1)) as usize;
            round.swap(last, pick);
        }
        // Whole chunks only, so that no chunk straddles two rounds and repeats a key.
        round.truncate(round.len() / CHUNK * CHUNK);
        keys.extend(round);
    }
    keys.truncate(ORDER);
    keys
}

struct Setup {
    label: &'static str,
    map: Map,
    /// Present keys, in visiting order.
    present: Vec<Key>,
    /// Absent keys, in visiting order.
    absent: Vec<Key>,
}

fn setup(label: &'static str, filled: usize) -> Setup {
    let mut map = Map::new();
    let present: Vec<Key> = (1..=filled).map(key).collect();
    for (value, &key) in present.iter().enumerate() {
        assert!(
            map.insert(key, value as u64).is_ok(),
            "a map of 256 slots should take {filled} keys"
        );
    }
    // Absent keys come from a disjoint range of names and number more than a chunk's worth.
    let absent: Vec<Key> = (5001..5001 + 512).map(key).collect();
    Setup { label, map, present: order(&present, 1), absent: order(&absent, 2) }
}

fn setups() -> Vec<Setup> {
    vec![setup("50%", 128), setup("90%", 230)]
}

fn get_hit(c: &mut Criterion) {
    let mut group = c.benchmark_group("slotmap/get_hit");
    for Setup { label, map, present, .. } in setups() {
        group.bench_function(BenchmarkId::from_parameter(label), |b| {
            let mut next = 0;
            b.iter(|| {
                let key = &present[next & (ORDER - 1)];
                next += 1;
                black_box(map.get(black_box(key)))
            });
        });
    }
    group.finish();
}

fn get_miss(c: &mut Criterion) {
    let mut group = c.benchmark_group("slotmap/get_miss");
    for Setup { label, map, absent, .. } in setups() {
        group.bench_function(BenchmarkId::from_parameter(label), |b| {
            let mut next = 0;
            b.iter(|| {
                let key = &absent[next & (ORDER - 1)];
                next += 1;
                black_box(map.get(black_box(key)))
            });
        });
    }
    group.finish();
}

/// Runs `iters` timed operations in chunks of `CHUNK`: `timed` on each key of a chunk under the
/// clock, then `untimed` on the same keys to restore the map.
fn chunked(
    iters: u64,
    map: &mut Map,
    keys: &[Key],
    mut timed: impl FnMut(&mut Map, &Key),
    mut untimed: impl FnMut(&mut Map, &Key),
) -> Duration {
    let mut total = Duration::ZERO;
    let mut next = 0;
    let mut remaining = iters;
    while remaining > 0 {
        let count = remaining.min(CHUNK as u64) as usize;
        let chunk = &keys[next..next + count];
        let start = Instant::now();
        for key in chunk {
            timed(map, black_box(key));
        }
        total += start.elapsed();
        for key in chunk {
            untimed(map, key);
        }
        next = (next + CHUNK) & (ORDER - 1);
        remaining -= count as u64;
    }
    total
}

fn insert(c: &mut Criterion) {
    let mut group = c.benchmark_group("slotmap/insert");
    for Setup { label, mut map, absent, .. } in setups() {
        group.bench_function(BenchmarkId::from_parameter(label), |b| {
            b.iter_custom(|iters| {
                chunked(
                    iters,
                    &mut map,
                    &absent,
                    |map, &key| {
                        black_box(map.insert(key, 1).is_ok());
                    },
                    |map, key| {
                        map.remove(key);
                    },
                )
            });
        });
    }
    group.finish();
}

fn remove(c: &mut Criterion) {
    let mut group = c.benchmark_group("slotmap/remove");
    for Setup { label, mut map, present, .. } in setups() {
        group.bench_function(BenchmarkId::from_parameter(label), |b| {
            b.iter_custom(|iters| {
                chunked(
                    iters,
                    &mut map,
                    &present,
                    |map, key| {
                        black_box(map.remove(key));
                    },
                    |map, &key| {
                        let _ = map.insert(key, 1);
                    },
                )
            });
        });
    }
    group.finish();
}

/// The criterion group of this file, in a module of its own so that the lint exemption below
/// covers only what the macro generates.
#[expect(missing_docs, reason = "criterion_group! generates an undocumented public function")]
pub mod group {
    use super::{get_hit, get_miss, insert, remove};

    criterion::criterion_group!(benches, get_hit, get_miss, insert, remove);
}

criterion_main!(group::benches);
