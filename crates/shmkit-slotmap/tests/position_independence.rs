//! A map's bytes are a working map wherever they are copied (as another process's mapping of the
//! same shared memory would see them), and a map made of arbitrary bytes never panics or hangs.

use std::mem::MaybeUninit;
use std::ptr;

use shmkit_slotmap::{InsertError, SlotMap};

use shmkit_testkit::Rng;

/// Copies `map`'s bytes into a fresh heap allocation (a different address), then overwrites the
/// original with `0xA5` so nothing can still be read through it by accident.
///
/// `K` and `V` must be plain data for which every byte pattern, `0xA5…` included, is valid.
#[expect(
    clippy::unnecessary_box_returns,
    reason = "the point is a copy at a separate heap address"
)]
fn copy_elsewhere<K: shmkit_slotmap::SlotKey, V: Copy, const N: usize>(
    map: &mut SlotMap<K, V, N>,
) -> Box<SlotMap<K, V, N>> {
    let mut copy: Box<MaybeUninit<SlotMap<K, V, N>>> = Box::new_uninit();
    let source = ptr::from_mut(map);
    // SAFETY: both regions are valid for `size_of::<SlotMap>()` bytes and do not overlap (one is
    // on the heap, freshly allocated); byte copies need no alignment.
    unsafe {
        ptr::copy_nonoverlapping(
            source.cast::<u8>(),
            copy.as_mut_ptr().cast::<u8>(),
            size_of::<SlotMap<K, V, N>>(),
        );
    };
    // SAFETY: the original stays a valid value: its keys and values become `0xA5` bytes, which the
    // callers' plain-data `K` and `V` accept, and `V: Copy` has no drop to run on them.
    unsafe { ptr::write_bytes(source.cast::<u8>(), 0xA5, size_of::<SlotMap<K, V, N>>()) };
    assert_ne!(copy.as_ptr().cast::<u8>(), source.cast::<u8>().cast_const());
    // SAFETY: the buffer holds an exact byte copy of a valid map whose keys and values contain no
    // pointers, so the copy is a valid map too.
    unsafe { copy.assume_init() }
}

#[cfg(feature = "name")]
mod name_keys {
    use shmkit_name::{Key, Name};

    use super::*;

    /// A typical shared value: plain, `repr(C)`, no pointers.
    #[repr(C)]
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    struct Region {
        size: u64,
        node: u32,
        joins: u32,
    }

    fn key(index: usize) -> Key {
        match Name::new(&format!("region-{index:04}")) {
            Ok(name) => name.key(),
            Err(error) => panic!("region-{index:04} should be a valid name: {error}"),
        }
    }

    fn region(index: usize) -> Region {
        Region { size: index as u64 * 4096, node: index as u32 % 4, joins: 1 }
    }

    #[test]
    fn copied_name_map_works() {
        let mut map: SlotMap<Key, Region, 64> = SlotMap::new();
        for index in 0..48 {
            assert!(map.insert(key(index), region(index)).is_ok());
        }
        let mut copy = copy_elsewhere(&mut map);
        assert_eq!(copy.len(), 48);
        for index in 0..48 {
            assert_eq!(copy.get(&key(index)), Some(&region(index)), "region-{index:04}");
        }
        assert_eq!(copy.get(&key(48)), None);
        for index in (0..48).step_by(3) {
            assert_eq!(copy.remove(&key(index)), Some(region(index)));
        }
        for index in 48..64 {
            assert!(copy.insert(key(index), region(index)).is_ok());
        }
        if let Some(entry) = copy.get_mut(&key(1)) {
            entry.joins += 1;
        }
        for index in 0..64 {
            let expected = (index >= 48 || index % 3 != 0)
                .then(|| Region { joins: 1 + u32::from(index == 1), ..region(index) });
            assert_eq!(copy.get(&key(index)).copied(), expected, "region-{index:04}");
        }
        assert_eq!(copy.len(), 48);
        assert_eq!(copy.iter().count(), 48);

        // The scribbled original is garbage, but garbage that is safe to use and drop.
        assert_eq!(map.get(&key(0)), None);
    }
}

#[test]
fn copied_integer_map_works() {
    let mut map: SlotMap<u64, u64, 256> = SlotMap::new();
    for key in 1..=256 {
        assert!(map.insert(key, key * 7).is_ok());
    }
    assert_eq!(map.remove(&100), Some(700));
    let mut copy = copy_elsewhere(&mut map);
    assert_eq!(copy.len(), 255);
    for key in 1..=256 {
        assert_eq!(copy.get(&key), (key != 100).then_some(&(key * 7)), "key {key}");
    }
    assert!(copy.insert(100, 1).is_ok());
    assert!(matches!(copy.insert(1000, 1), Err(InsertError::Full(1))));
    for key in 1..=200 {
        assert!(copy.remove(&key).is_some());
    }
    for key in 1000..1200 {
        assert!(copy.insert(key, key).is_ok());
    }
    for key in 201..=256 {
        assert_eq!(copy.get(&key), Some(&(key * 7)));
    }
    assert_eq!(copy.len(), 256);
}

/// A map whose every byte is random: keys (many repeated, some null), values and length.
#[expect(
    clippy::unnecessary_box_returns,
    reason = "a 1024-slot map is 16 KiB; keep it off the stack"
)]
fn garbage<const N: usize>(rng: &mut Rng) -> Box<SlotMap<u64, u64, N>> {
    let mut map: Box<MaybeUninit<SlotMap<u64, u64, N>>> = Box::new_uninit();
    let words = size_of::<SlotMap<u64, u64, N>>() / 8;
    let base = map.as_mut_ptr().cast::<u64>();
    // Small keys repeat and collide often; null (0) keys leave a few gaps, or none.
    let null_chance = rng.next() % 4;
    for word in 0..words {
        let raw = rng.next();
        let value = match raw % 8 {
            0..=3 => raw >> 60,
            4 if null_chance == 0 => raw,
            4 => 0,
            _ => raw,
        };
        // SAFETY: `word` < `words`, so the write is within the allocation and 8-byte aligned.
        unsafe { base.add(word).write(value) };
    }
    // SAFETY: every byte is written, and a map of `u64` keys and values is valid for any bytes.
    unsafe { map.assume_init() }
}

fn abuse<const N: usize>(rng: &mut Rng) {
    let mut map = garbage::<N>(rng);
    let len = map.len();
    assert!(len <= N);
    let mut total = 0_u64;
    for (key, value) in map.iter() {
        total = total.wrapping_add(*key ^ *value);
    }
    for (_, value) in map.iter_mut().rev() {
        *value = value.wrapping_add(1);
    }
    let _ = format!("{map:?}");
    let copy = map.clone();
    for _ in 0..4 * N {
        let key = rng.next() >> 60;
        match rng.next() % 7 {
            0 => drop(map.get(&key)),
            1 => drop(map.get_key_value(&key)),
            2 => drop(map.insert(key, total)),
            3 => drop(map.insert_or_replace(key, total)),
            4 => drop(map.remove(&key)),
            5 => drop(map.contains(&key)),
            _ => {
                if let Some(value) = map.get_mut(&key) {
                    *value = 0;
                }
            }
        }
        assert!(map.len() <= N);
    }
    let mut visits = 0;
    map.retain(|key, _| {
        visits += 1;
        key % 2 == 0
    });
    // Even garbage cannot make retain visit more than the 2N slot reads its loop allows.
    assert!(visits <= 2 * N);
    drop(copy);
    map.clear();
    assert!(map.is_empty());
    assert_eq!(map.iter().count(), 0);
}

#[test]
fn arbitrary_bytes_never_panic_or_hang() {
    let mut rng = Rng(0x5EED);
    for _ in 0..2000 {
        abuse::<1>(&mut rng);
        abuse::<2>(&mut rng);
        abuse::<8>(&mut rng);
        abuse::<64>(&mut rng);
    }
    for _ in 0..200 {
        abuse::<1024>(&mut rng);
    }
}
