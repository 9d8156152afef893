//! [`SlotMap`]: the table itself, its probing and its backward-shift deletion.

use core::fmt;
use core::mem::{self, MaybeUninit};

use crate::error::InsertError;
use crate::iter::{Iter, IterMut};
use crate::key::SlotKey;

/// One slot of the table.
///
/// Invariant, on which every `unsafe` block of this crate rests: `value` is initialised iff
/// `key` is not null.
#[repr(C)]
pub(crate) struct Slot<K, V> {
    pub(crate) key: K,
    pub(crate) value: MaybeUninit<V>,
}

/// A map of at most `N` entries (`N` a power of two) stored inline, with no pointers and no
/// allocation: open addressing, linear probing, deletion by backward shift.
///
/// Its layout is `#[repr(C)]`: a `u64` length, then `N` slots, each a key followed by room for a
/// value. Because nothing in it is an address, its bytes can be copied anywhere (another buffer,
/// shared memory mapped at a different address in another process) and the copy works; see the
/// [crate documentation](crate) for what that requires of `K` and `V`.
///
/// Methods never panic (unless a method of `K` or `V`, such as a `Drop`, does), index out of
/// bounds or loop more than a bounded number of times, even if the bytes were written by someone
/// else and disagree with each other (say, a length that does not match the occupied slots):
/// every probe stops after `N` slots and every index is masked with `N - 1`. Such a map gives wrong answers, but no undefined behaviour as long as its keys
/// and values are valid for their types.
///
/// `N` must be a power of two between 1 and `u32::MAX`; any other `N` fails to compile when
/// [`SlotMap::new`] is instantiated.
///
/// # Examples
///
/// ```
/// use shmkit_slotmap::SlotMap;
///
/// let mut joins: SlotMap<u64, &str, 8> = SlotMap::new();
/// joins.insert(41, "orders")?;
/// joins.insert(42, "prices")?;
/// assert_eq!(joins.get(&42), Some(&"prices"));
/// assert_eq!(joins.remove(&41), Some("orders"));
/// assert_eq!(joins.len(), 1);
/// # Ok::<(), shmkit_slotmap::InsertError<&str>>(())
/// ```
#[repr(C)]
pub struct SlotMap<K: SlotKey, V, const N: usize> {
    /// Occupied slots, as kept by this map's own methods; only trusted up to `N`.
    len: u64,
    slots: [Slot<K, V>; N],
}

// The layout is the length, then the slots, with nothing hidden: checked on one instantiation,
// since `repr(C)` lays out every instantiation by the same rule.
const _: () = {
    assert!(size_of::<SlotMap<u64, u64, 16>>() == 8 + 16 * 16);
    assert!(mem::offset_of!(SlotMap<u64, u64, 16>, slots) == 8);
    assert!(size_of::<Slot<u32, u64>>() == 16 && mem::offset_of!(Slot<u32, u64>, value) == 8);
};

/// Where a key's probe ended.
enum Probe {
    /// The key is in this slot.
    Found(usize),
    /// The key is absent; this is the first empty slot of its probe sequence.
    Vacant(usize),
    /// The key is absent and all `N` slots of its probe sequence are occupied.
    Full,
}

impl<K: SlotKey, V, const N: usize> SlotMap<K, V, N> {
    /// `N - 1`, for masking slot indices; referring to it checks `N` at compile time.
    const MASK: usize = {
        assert!(
            N.is_power_of_two() && N <= u32::MAX as usize,
            "SlotMap capacity N must be a power of two between 1 and u32::MAX"
        );
        N - 1
    };

    /// An empty map. It is a `const fn`, so a map can be a `static` (behind a lock for
    /// mutation) or be built in a constant.
    ///
    /// A capacity `N` that is not a power of two, or that exceeds `u32::MAX`, is a compile-time
    /// error here.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Mutex;
    ///
    /// use shmkit_slotmap::SlotMap;
    ///
    /// static OPEN: Mutex<SlotMap<u64, u32, 64>> = Mutex::new(SlotMap::new());
    ///
    /// let mut open = OPEN.lock().unwrap();
    /// assert!(open.is_empty());
    /// open.insert(7, 1)?;
    /// assert_eq!(open.capacity(), 64);
    /// # Ok::<(), shmkit_slotmap::InsertError<u32>>(())
    /// ```
    ///
    /// ```compile_fail
    /// let map: shmkit_slotmap::SlotMap<u64, u64, 12> = shmkit_slotmap::SlotMap::new();
    /// ```
    #[must_use]
    pub const fn new() -> Self {
        const { Self::MASK };
        Self { len: 0, slots: [const { Slot { key: K::NULL, value: MaybeUninit::uninit() } }; N] }
    }

    /// The number of entries, at most `N`.
    ///
    /// On a map whose bytes came from elsewhere this is the stored length clamped to `N`, which
    /// may disagree with the occupied slots; [`iter`](SlotMap::iter) counts the truth.
    ///
    /// ```
    /// use shmkit_slotmap::SlotMap;
    ///
    /// let mut map: SlotMap<u64, (), 4> = SlotMap::new();
    /// map.insert(1, ())?;
    /// assert_eq!(map.len(), 1);
    /// # Ok::<(), shmkit_slotmap::InsertError<()>>(())
    /// ```
    pub const fn len(&self) -> usize {
        if self.len >= N as u64 { N } else { self.len as usize }
    }

    /// Whether the map holds no entry (by [`len`](SlotMap::len)).
    ///
    /// ```
    /// use shmkit_slotmap::SlotMap;
    ///
    /// assert!(SlotMap::<u64, (), 4>::new().is_empty());
    /// ```
    pub const fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The number of slots, `N`: a full table holds this many entries.
    ///
    /// ```
    /// use shmkit_slotmap::SlotMap;
    ///
    /// assert_eq!(SlotMap::<u64, (), 32>::new().capacity(), 32);
    /// ```
    pub const fn capacity(&self) -> usize {
        N
    }

    /// The slot where `key`'s probe sequence starts.
    #[inline]
    fn home(key: &K) -> usize {
        key.hash64() as usize & Self::MASK
    }

    /// The slot holding `key`, if any. The returned slot's key is not null.
    #[inline]
    fn find(&self, key: &K) -> Option<usize> {
        if key.is_null() {
            // Would otherwise "match" an empty slot.
            return None;
        }
        let mut index = Self::home(key);
        for _ in 0..N {
            let slot_key = &self.slots[index].key;
            if slot_key.key_eq(key) {
                // `key` is not null, but `key_eq` is not trusted for safety: check the slot itself.
                return (!slot_key.is_null()).then_some(index);
            }
            if slot_key.is_null() {
                return None;
            }
            index = (index + 1) & Self::MASK;
        }
        None
    }

    /// Where `key` (not null) is or would go.
    fn probe(&self, key: &K) -> Probe {
        let mut index = Self::home(key);
        for _ in 0..N {
            let slot_key = &self.slots[index].key;
            if slot_key.is_null() {
                return Probe::Vacant(index);
            }
            if slot_key.key_eq(key) {
                return Probe::Found(index);
            }
            index = (index + 1) & Self::MASK;
        }
        Probe::Full
    }

    /// Stores `key` and `value` in the empty slot `index`.
    fn occupy(&mut self, index: usize, key: K, value: V) -> &mut V {
        self.len = self.len.saturating_add(1);
        let slot = &mut self.slots[index & Self::MASK];
        // Value first, key second: the key is what declares the value initialised.
        let value = slot.value.write(value);
        slot.key = key;
        value
    }

    /// Inserts `key` with `value` and returns a reference to the stored value, unless the key
    /// is already present, is null, or the table is full: then the value comes back in the error
    /// and the map is unchanged.
    ///
    /// # Errors
    ///
    /// [`InsertError::Exists`] if `key` is present, [`InsertError::NullKey`] if `key` is
    /// [`SlotKey::NULL`], [`InsertError::Full`] if all `N` slots are occupied.
    ///
    /// # Examples
    ///
    /// ```
    /// use shmkit_slotmap::{InsertError, SlotMap};
    ///
    /// let mut map: SlotMap<u64, u32, 2> = SlotMap::new();
    /// *map.insert(1, 10)? += 1;
    /// assert_eq!(map.get(&1), Some(&11));
    ///
    /// assert!(matches!(map.insert(1, 20), Err(InsertError::Exists(20))));
    /// assert!(matches!(map.insert(0, 20), Err(InsertError::NullKey(20))));
    /// map.insert(2, 20)?;
    /// assert!(matches!(map.insert(3, 30), Err(InsertError::Full(30))));
    /// # Ok::<(), InsertError<u32>>(())
    /// ```
    pub fn insert(&mut self, key: K, value: V) -> Result<&mut V, InsertError<V>> {
        if key.is_null() {
            return Err(InsertError::NullKey(value));
        }
        match self.probe(&key) {
            Probe::Vacant(index) => Ok(self.occupy(index, key, value)),
            Probe::Found(_) => Err(InsertError::Exists(value)),
            Probe::Full => Err(InsertError::Full(value)),
        }
    }

    /// Inserts `key` with `value`, replacing and returning the value already stored under `key`
    /// (`Ok(None)` if there was none).
    ///
    /// # Errors
    ///
    /// [`InsertError::NullKey`] if `key` is [`SlotKey::NULL`], [`InsertError::Full`] if `key`
    /// is absent and all `N` slots are occupied; the map is then unchanged.
    ///
    /// # Examples
    ///
    /// ```
    /// use shmkit_slotmap::{InsertError, SlotMap};
    ///
    /// let mut map: SlotMap<u64, &str, 1> = SlotMap::new();
    /// assert_eq!(map.insert_or_replace(1, "a")?, None);
    /// assert_eq!(map.insert_or_replace(1, "b")?, Some("a"));
    /// assert!(matches!(map.insert_or_replace(2, "c"), Err(InsertError::Full("c"))));
    /// # Ok::<(), InsertError<&str>>(())
    /// ```
    pub fn insert_or_replace(&mut self, key: K, value: V) -> Result<Option<V>, InsertError<V>> {
        if key.is_null() {
            return Err(InsertError::NullKey(value));
        }
        match self.probe(&key) {
            Probe::Found(index) => {
                // SAFETY: `probe` reports `Found` only for a slot whose key is not null, so its
                // value is initialised.
                let stored = unsafe { self.slots[index].value.assume_init_mut() };
                Ok(Some(mem::replace(stored, value)))
            }
            Probe::Vacant(index) => {
                self.occupy(index, key, value);
                Ok(None)
            }
            Probe::Full => Err(InsertError::Full(value)),
        }
    }

    /// The value stored under `key`.
    ///
    /// This is the hot path: one hash, then usually one or two key comparisons.
    ///
    /// # Examples
    ///
    /// ```
    /// use shmkit_slotmap::SlotMap;
    ///
    /// let mut map: SlotMap<u32, &str, 8> = SlotMap::new();
    /// map.insert(5, "five")?;
    /// assert_eq!(map.get(&5), Some(&"five"));
    /// assert_eq!(map.get(&6), None);
    /// assert_eq!(map.get(&0), None); // the null key is never present
    /// # Ok::<(), shmkit_slotmap::InsertError<&str>>(())
    /// ```
    #[inline]
    pub fn get(&self, key: &K) -> Option<&V> {
        let index = self.find(key)?;
        // SAFETY: `find` returns only slots whose key is not null, whose value is initialised.
        Some(unsafe { self.slots[index].value.assume_init_ref() })
    }

    /// The value stored under `key`, mutably.
    ///
    /// ```
    /// use shmkit_slotmap::SlotMap;
    ///
    /// let mut map: SlotMap<u64, u32, 8> = SlotMap::new();
    /// map.insert(1, 10)?;
    /// if let Some(value) = map.get_mut(&1) {
    ///     *value += 1;
    /// }
    /// assert_eq!(map.get(&1), Some(&11));
    /// # Ok::<(), shmkit_slotmap::InsertError<u32>>(())
    /// ```
    #[inline]
    pub fn get_mut(&mut self, key: &K) -> Option<&mut V> {
        let index = self.find(key)?;
        // SAFETY: `find` returns only slots whose key is not null, whose value is initialised.
        Some(unsafe { self.slots[index].value.assume_init_mut() })
    }

    /// The stored key and value for `key`.
    ///
    /// ```
    /// use shmkit_slotmap::SlotMap;
    ///
    /// let mut map: SlotMap<u64, u32, 8> = SlotMap::new();
    /// map.insert(1, 10)?;
    /// assert_eq!(map.get_key_value(&1), Some((&1, &10)));
    /// # Ok::<(), shmkit_slotmap::InsertError<u32>>(())
    /// ```
    #[inline]
    pub fn get_key_value(&self, key: &K) -> Option<(&K, &V)> {
        let slot = &self.slots[self.find(key)?];
        // SAFETY: `find` returns only slots whose key is not null, whose value is initialised.
        Some((&slot.key, unsafe { slot.value.assume_init_ref() }))
    }

    /// Whether `key` is present.
    ///
    /// ```
    /// use shmkit_slotmap::SlotMap;
    ///
    /// let mut map: SlotMap<u64, (), 8> = SlotMap::new();
    /// map.insert(1, ())?;
    /// assert!(map.contains(&1));
    /// assert!(!map.contains(&2));
    /// # Ok::<(), shmkit_slotmap::InsertError<()>>(())
    /// ```
    #[inline]
    pub fn contains(&self, key: &K) -> bool {
        self.find(key).is_some()
    }

    /// Removes `key` and returns its value, or `None` if it was absent.
    ///
    /// The entries after it in its cluster move back to close the gap (backward shift), so no
    /// tombstone is left and later probes stay as short as if `key` had never been inserted.
    ///
    /// # Examples
    ///
    /// ```
    /// use shmkit_slotmap::SlotMap;
    ///
    /// let mut map: SlotMap<u64, String, 8> = SlotMap::new();
    /// map.insert(1, "one".to_owned())?;
    /// assert_eq!(map.remove(&1).as_deref(), Some("one"));
    /// assert_eq!(map.remove(&1), None);
    /// assert!(map.is_empty());
    /// # Ok::<(), shmkit_slotmap::InsertError<String>>(())
    /// ```
    pub fn remove(&mut self, key: &K) -> Option<V> {
        let index = self.find(key)?;
        self.remove_at(index)
    }

    /// Takes the value out of slot `index`, if occupied, and closes the gap.
    fn remove_at(&mut self, index: usize) -> Option<V> {
        let slot = &mut self.slots[index & Self::MASK];
        if slot.key.is_null() {
            return None;
        }
        // Key first: once it is null nothing else reads or drops the value we move out.
        slot.key = K::NULL;
        // SAFETY: the key was not null just above, so the value is initialised; nulling the key
        // made this read the value's only owner.
        let value = unsafe { slot.value.assume_init_read() };
        self.len = self.len.saturating_sub(1);
        self.shift_back(index & Self::MASK);
        Some(value)
    }

    /// Closes the empty slot `hole` by moving back each later entry of the cluster that may sit
    /// there: one whose home is not cyclically in `(hole, index]`, since moving it before its
    /// home would hide it from its own probe sequence. The scan ends at the cluster's first empty
    /// slot, or after `N - 1` slots on a full table.
    fn shift_back(&mut self, mut hole: usize) {
        let mut index = hole;
        for _ in 1..N {
            index = (index + 1) & Self::MASK;
            let key = self.slots[index].key;
            if key.is_null() {
                return;
            }
            let displacement = index.wrapping_sub(Self::home(&key)) & Self::MASK;
            let hole_distance = index.wrapping_sub(hole) & Self::MASK;
            if displacement >= hole_distance {
                // A plain move of the `MaybeUninit`, no user code: the invariant holds again once
                // both keys are written, and nothing can panic in between.
                let value = mem::replace(&mut self.slots[index].value, MaybeUninit::uninit());
                let target = &mut self.slots[hole];
                target.value = value;
                target.key = key;
                self.slots[index].key = K::NULL;
                hole = index;
            }
        }
    }

    /// The entries as `(&K, &V)`, in slot order (which depends on the hashes, not on insertion
    /// order). It visits all `N` slots, so it costs O(N) whatever the length.
    ///
    /// # Examples
    ///
    /// ```
    /// use shmkit_slotmap::SlotMap;
    ///
    /// let mut map: SlotMap<u64, u64, 8> = SlotMap::new();
    /// for key in 1..=3 {
    ///     map.insert(key, key * 10)?;
    /// }
    /// let mut entries: Vec<(u64, u64)> = map.iter().map(|(&key, &value)| (key, value)).collect();
    /// entries.sort();
    /// assert_eq!(entries, [(1, 10), (2, 20), (3, 30)]);
    ///
    /// let total: u64 = map.iter().map(|(_, value)| value).sum();
    /// assert_eq!(total, 60);
    /// # Ok::<(), shmkit_slotmap::InsertError<u64>>(())
    /// ```
    pub fn iter(&self) -> Iter<'_, K, V> {
        Iter::new(&self.slots)
    }

    /// The entries as `(&K, &mut V)`, in slot order.
    ///
    /// ```
    /// use shmkit_slotmap::SlotMap;
    ///
    /// let mut map: SlotMap<u64, u64, 8> = SlotMap::new();
    /// map.insert(1, 10)?;
    /// map.insert(2, 20)?;
    /// for (_, value) in map.iter_mut() {
    ///     *value += 1;
    /// }
    /// assert_eq!(map.get(&2), Some(&21));
    /// # Ok::<(), shmkit_slotmap::InsertError<u64>>(())
    /// ```
    pub fn iter_mut(&mut self) -> IterMut<'_, K, V> {
        IterMut::new(&mut self.slots)
    }

    /// Removes and drops every entry.
    ///
    /// ```
    /// use shmkit_slotmap::SlotMap;
    ///
    /// let mut map: SlotMap<u64, String, 8> = SlotMap::new();
    /// map.insert(1, "one".to_owned())?;
    /// map.clear();
    /// assert!(map.is_empty());
    /// assert_eq!(map.get(&1), None);
    /// # Ok::<(), shmkit_slotmap::InsertError<String>>(())
    /// ```
    pub fn clear(&mut self) {
        self.len = 0;
        for slot in &mut self.slots {
            if !slot.key.is_null() {
                // Key first, so that a panicking `drop` leaves no slot that claims a dropped value.
                slot.key = K::NULL;
                // SAFETY: the key was not null, so the value is initialised; with the key now
                // null, this is the only drop of it.
                unsafe { slot.value.assume_init_drop() };
            }
        }
    }

    /// Keeps only the entries for which `keep` returns `true`, calling it exactly once per entry.
    ///
    /// ```
    /// use shmkit_slotmap::SlotMap;
    ///
    /// let mut map: SlotMap<u64, u64, 16> = SlotMap::new();
    /// for key in 1..=10 {
    ///     map.insert(key, key)?;
    /// }
    /// map.retain(|_, value| {
    ///     *value *= 10;
    ///     *value % 20 == 0
    /// });
    /// assert_eq!(map.len(), 5);
    /// assert_eq!(map.get(&4), Some(&40));
    /// assert_eq!(map.get(&3), None);
    /// # Ok::<(), shmkit_slotmap::InsertError<u64>>(())
    /// ```
    pub fn retain<F: FnMut(&K, &mut V) -> bool>(&mut self, mut keep: F) {
        // Walking from a slot that no probe sequence runs across means backward shifts only ever
        // move an entry from a later, unvisited slot to the current or a later one: so re-reading
        // the current slot after a removal visits every entry exactly once.
        let start = self.retain_start();
        let mut offset = 0;
        // Each round either advances `offset` or empties one more slot: at most 2N rounds.
        for _ in 0..N.saturating_mul(2) {
            if offset >= N {
                return;
            }
            let index = start.wrapping_add(offset) & Self::MASK;
            let slot = &mut self.slots[index];
            if !slot.key.is_null() {
                // SAFETY: the key is not null, so the value is initialised.
                let value = unsafe { slot.value.assume_init_mut() };
                if !keep(&slot.key, value) {
                    drop(self.remove_at(index));
                    continue;
                }
            }
            offset += 1;
        }
    }

    /// A slot that no entry's probe path (home up to its slot) enters from the slot before it.
    ///
    /// An empty slot qualifies. On a full table the slot `b` qualifies when no entry at `b + k`
    /// sits `k + 1` or more slots past its home; two backward passes find it. A table built by
    /// this map always has one (the slot after the last one filled); for one built otherwise,
    /// `retain` falls back to slot 0 and may visit an entry twice or miss one, but stays bounded.
    fn retain_start(&self) -> usize {
        if let Some(empty) = self.slots.iter().position(|slot| slot.key.is_null()) {
            return empty;
        }
        let mut reach = 0_usize;
        for pass in 0..2 {
            for index in (0..N).rev() {
                let displacement =
                    index.wrapping_sub(Self::home(&self.slots[index].key)) & Self::MASK;
                reach = displacement.max(reach.saturating_sub(1));
                if pass == 1 && reach == 0 {
                    return index;
                }
            }
        }
        0
    }

    /// The slot index of `key`, for tests of the layout.
    #[cfg(test)]
    fn slot_of(&self, key: &K) -> Option<usize> {
        self.find(key)
    }
}

impl<K: SlotKey, V, const N: usize> Drop for SlotMap<K, V, N> {
    fn drop(&mut self) {
        if mem::needs_drop::<V>() {
            self.clear();
        }
    }
}

impl<K: SlotKey, V, const N: usize> Default for SlotMap<K, V, N> {
    /// An empty map, as [`SlotMap::new`].
    fn default() -> Self {
        Self::new()
    }
}

/// Clones slot by slot, so the copy has the same layout (and the same probe lengths).
impl<K: SlotKey, V: Clone, const N: usize> Clone for SlotMap<K, V, N> {
    fn clone(&self) -> Self {
        let mut copy = Self::new();
        for (source, target) in self.slots.iter().zip(copy.slots.iter_mut()) {
            if !source.key.is_null() {
                // SAFETY: the key is not null, so the value is initialised.
                let value = unsafe { source.value.assume_init_ref() }.clone();
                // Value before key: if a later `clone` panics, `copy` drops what it holds.
                target.value.write(value);
                target.key = source.key;
            }
        }
        copy.len = self.len;
        copy
    }
}

/// Like a map: `{key: value, ...}` in slot order.
impl<K: SlotKey + fmt::Debug, V: fmt::Debug, const N: usize> fmt::Debug for SlotMap<K, V, N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl<'a, K: SlotKey, V, const N: usize> IntoIterator for &'a SlotMap<K, V, N> {
    type Item = (&'a K, &'a V);
    type IntoIter = Iter<'a, K, V>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl<'a, K: SlotKey, V, const N: usize> IntoIterator for &'a mut SlotMap<K, V, N> {
    type Item = (&'a K, &'a mut V);
    type IntoIter = IterMut<'a, K, V>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter_mut()
    }
}

#[cfg(test)]
mod tests {
    extern crate std;

    use core::cell::Cell;
    use std::format;
    use std::string::{String, ToString};
    use std::vec::Vec;

    use super::*;

    type Map<const N: usize> = SlotMap<u64, u64, N>;

    fn home<const N: usize>(key: u64) -> usize {
        Map::<N>::home(&key)
    }

    /// The first `count` non-null keys whose home is `slot` in a table of `N` slots.
    fn keys_homed_at<const N: usize>(slot: usize, count: usize) -> Vec<u64> {
        (1..).filter(|&key| home::<N>(key) == slot).take(count).collect()
    }

    fn must<T, E: fmt::Debug>(result: Result<T, E>) -> T {
        match result {
            Ok(value) => value,
            Err(error) => panic!("unexpected error: {error:?}"),
        }
    }

    #[test]
    fn new_is_empty() {
        let map = Map::<8>::new();
        assert_eq!(map.len(), 0);
        assert!(map.is_empty());
        assert_eq!(map.capacity(), 8);
        assert_eq!(map.iter().count(), 0);
        assert!(Map::<1>::default().is_empty());
    }

    #[test]
    fn insert_get_contains() {
        let mut map = Map::<8>::new();
        assert_eq!(map.insert(1, 10).ok().map(|value| *value), Some(10));
        *must(map.insert(2, 20)) += 1;
        assert_eq!(map.len(), 2);
        assert_eq!(map.get(&1), Some(&10));
        assert_eq!(map.get(&2), Some(&21));
        assert_eq!(map.get(&3), None);
        assert!(map.contains(&1));
        assert!(!map.contains(&3));
        assert_eq!(map.get_key_value(&2), Some((&2, &21)));
        assert_eq!(map.get_key_value(&3), None);
        if let Some(value) = map.get_mut(&1) {
            *value = 11;
        }
        assert_eq!(map.get(&1), Some(&11));
        assert_eq!(map.get_mut(&3), None);
    }

    #[test]
    fn insert_existing_key_hands_value_back() {
        let mut map = Map::<8>::new();
        must(map.insert(1, 10));
        assert!(matches!(map.insert(1, 99), Err(InsertError::Exists(99))));
        assert_eq!(map.get(&1), Some(&10));
        assert_eq!(map.len(), 1);
    }

    #[test]
    fn null_key_is_rejected_and_never_found() {
        let mut map = Map::<8>::new();
        assert!(matches!(map.insert(0, 5), Err(InsertError::NullKey(5))));
        assert!(matches!(map.insert_or_replace(0, 6), Err(InsertError::NullKey(6))));
        must(map.insert(1, 10));
        // Every slot but one is empty, i.e. holds the null key: none may be taken for an entry.
        assert_eq!(map.get(&0), None);
        assert_eq!(map.get_mut(&0), None);
        assert_eq!(map.get_key_value(&0), None);
        assert!(!map.contains(&0));
        assert_eq!(map.remove(&0), None);
        assert_eq!(map.len(), 1);
    }

    #[test]
    fn insert_or_replace() {
        let mut map = Map::<2>::new();
        assert_eq!(must(map.insert_or_replace(1, 10)), None);
        assert_eq!(must(map.insert_or_replace(1, 11)), Some(10));
        assert_eq!(must(map.insert_or_replace(2, 20)), None);
        assert_eq!(map.len(), 2);
        // Full, but replacing an existing key needs no new slot.
        assert_eq!(must(map.insert_or_replace(2, 21)), Some(20));
        assert!(matches!(map.insert_or_replace(3, 30), Err(InsertError::Full(30))));
        assert_eq!(map.get(&1), Some(&11));
        assert_eq!(map.get(&2), Some(&21));
        assert_eq!(map.len(), 2);
    }

    #[test]
    fn remove() {
        let mut map = Map::<8>::new();
        must(map.insert(1, 10));
        must(map.insert(2, 20));
        assert_eq!(map.remove(&1), Some(10));
        assert_eq!(map.remove(&1), None);
        assert_eq!(map.remove(&3), None);
        assert_eq!(map.len(), 1);
        assert_eq!(map.get(&2), Some(&20));
        assert_eq!(map.remove(&2), Some(20));
        assert!(map.is_empty());
    }

    #[test]
    fn capacity_one() {
        let mut map = Map::<1>::new();
        must(map.insert(5, 50));
        assert!(matches!(map.insert(6, 60), Err(InsertError::Full(60))));
        assert_eq!(map.remove(&5), Some(50));
        must(map.insert(6, 60));
        assert_eq!(map.get(&6), Some(&60));
        assert_eq!(map.get(&5), None);
    }

    #[test]
    fn probes_wrap_past_the_last_slot() {
        let keys = keys_homed_at::<8>(7, 3);
        let mut map = Map::<8>::new();
        for &key in &keys {
            must(map.insert(key, key * 10));
        }
        assert_eq!(map.slot_of(&keys[0]), Some(7));
        assert_eq!(map.slot_of(&keys[1]), Some(0));
        assert_eq!(map.slot_of(&keys[2]), Some(1));
        for &key in &keys {
            assert_eq!(map.get(&key), Some(&(key * 10)));
        }
        // A miss homed at 7 must wrap too, and stop at the empty slot 2.
        let absent = keys_homed_at::<8>(7, 4)[3];
        assert_eq!(map.get(&absent), None);
    }

    #[test]
    fn backward_shift_across_the_wrap() {
        let keys = keys_homed_at::<8>(7, 3);
        let mut map = Map::<8>::new();
        for &key in &keys {
            must(map.insert(key, key * 10));
        }
        assert_eq!(map.remove(&keys[0]), Some(keys[0] * 10));
        assert_eq!(map.slot_of(&keys[1]), Some(7));
        assert_eq!(map.slot_of(&keys[2]), Some(0));
        assert!(map.slots[1].key.is_null());
        assert_eq!(map.len(), 2);
        for &key in &keys[1..] {
            assert_eq!(map.get(&key), Some(&(key * 10)));
        }
    }

    #[test]
    fn backward_shift_skips_entries_at_home() {
        // Slots 6, 7, 0 hold: a (home 6), b (home 7), c (home 6). Removing a moves c back to 6 but
        // leaves b, which would otherwise sit before its home.
        let [a, c] = keys_homed_at::<8>(6, 2)[..] else { unreachable!() };
        let b = keys_homed_at::<8>(7, 1)[0];
        let mut map = Map::<8>::new();
        for key in [a, b, c] {
            must(map.insert(key, key));
        }
        assert_eq!(map.slot_of(&c), Some(0));
        assert_eq!(map.remove(&a), Some(a));
        assert_eq!(map.slot_of(&c), Some(6));
        assert_eq!(map.slot_of(&b), Some(7));
        assert!(map.slots[0].key.is_null());
        assert_eq!(map.get(&b), Some(&b));
        assert_eq!(map.get(&c), Some(&c));
    }

    #[test]
    fn full_table_rejects_without_change() {
        let mut map = Map::<8>::new();
        for key in 1..=8 {
            must(map.insert(key, key));
        }
        assert_eq!(map.len(), 8);
        let before: Vec<(u64, u64)> = map.iter().map(|(&key, &value)| (key, value)).collect();
        assert!(matches!(map.insert(9, 90), Err(InsertError::Full(90))));
        assert!(matches!(map.insert_or_replace(9, 91), Err(InsertError::Full(91))));
        assert!(matches!(map.insert(3, 30), Err(InsertError::Exists(30))));
        let after: Vec<(u64, u64)> = map.iter().map(|(&key, &value)| (key, value)).collect();
        assert_eq!(before, after);
        assert_eq!(map.len(), 8);
        // A miss on a full table ends after N slots.
        assert_eq!(map.get(&9), None);
        assert!(!map.contains(&9));
    }

    #[test]
    fn remove_from_full_table_then_reinsert() {
        // All keys homed at one slot: one cluster around the whole table.
        let keys = keys_homed_at::<8>(5, 8);
        let mut map = Map::<8>::new();
        for &key in &keys {
            must(map.insert(key, key));
        }
        for (position, &removed) in keys.iter().enumerate() {
            assert_eq!(map.remove(&removed), Some(removed));
            for &key in &keys {
                assert_eq!(
                    map.get(&key),
                    (key != removed).then_some(&key),
                    "after removing #{position}"
                );
            }
            must(map.insert(removed, removed));
            assert_eq!(map.len(), 8);
            for &key in &keys {
                assert_eq!(map.get(&key), Some(&key));
            }
        }
    }

    #[test]
    fn iter_in_slot_order() {
        let mut map = Map::<8>::new();
        let keys =
            [keys_homed_at::<8>(6, 1)[0], keys_homed_at::<8>(2, 1)[0], keys_homed_at::<8>(4, 1)[0]];
        for key in keys {
            must(map.insert(key, key + 1));
        }
        let forward: Vec<u64> = map.iter().map(|(&key, _)| key).collect();
        assert_eq!(forward, [keys[1], keys[2], keys[0]]);
        let backward: Vec<u64> = map.iter().rev().map(|(&key, _)| key).collect();
        assert_eq!(backward, [keys[0], keys[2], keys[1]]);
        let mut both = map.iter();
        assert_eq!(both.next().map(|(&key, _)| key), Some(keys[1]));
        assert_eq!(both.next_back().map(|(&key, _)| key), Some(keys[0]));
        assert_eq!(both.next().map(|(&key, _)| key), Some(keys[2]));
        assert_eq!(both.next(), None);
        assert_eq!(both.next_back(), None);
        for (&key, &value) in &map {
            assert_eq!(value, key + 1);
        }
        assert!(map.iter().size_hint().1 <= Some(8));
    }

    #[test]
    fn iter_mut_changes_values() {
        let mut map = Map::<8>::new();
        for key in 1..=5 {
            must(map.insert(key, key));
        }
        for (_, value) in &mut map {
            *value *= 2;
        }
        if let Some((_, value)) = map.iter_mut().next_back() {
            *value += 1;
        }
        assert_eq!(map.iter().map(|(_, &value)| value).sum::<u64>(), 31);
        assert_eq!(map.iter_mut().count(), 5);
    }

    #[test]
    fn clear() {
        let mut map = Map::<8>::new();
        for key in 1..=8 {
            must(map.insert(key, key));
        }
        map.clear();
        assert!(map.is_empty());
        assert_eq!(map.iter().count(), 0);
        assert_eq!(map.get(&1), None);
        must(map.insert(1, 1));
        assert_eq!(map.len(), 1);
    }

    fn check_retain<const N: usize>(keys: &[u64], keep: impl Fn(u64) -> bool) {
        let mut map = Map::<N>::new();
        for &key in keys {
            must(map.insert(key, 0));
        }
        map.retain(|_, visits| {
            *visits += 1;
            true
        });
        let mut seen = Vec::new();
        map.retain(|&key, visits| {
            *visits += 1;
            seen.push(key);
            keep(key)
        });
        seen.sort_unstable();
        let mut expected_seen = keys.to_vec();
        expected_seen.sort_unstable();
        assert_eq!(seen, expected_seen, "each entry visited exactly once");
        for &key in keys {
            assert_eq!(map.get(&key), keep(key).then_some(&2), "key {key}");
        }
        assert_eq!(map.len(), keys.iter().filter(|&&key| keep(key)).count());
        assert_eq!(map.iter().count(), map.len());
    }

    #[test]
    fn retain_visits_each_entry_once() {
        check_retain::<16>(&(1..=10).collect::<Vec<_>>(), |key| key % 2 == 0);
        check_retain::<16>(&(1..=10).collect::<Vec<_>>(), |_| false);
        check_retain::<16>(&[], |_| false);
        // Clusters across the wrap, removing the entries that others were displaced by.
        let wrapping = keys_homed_at::<8>(7, 5);
        check_retain::<8>(&wrapping, |key| key != wrapping[0] && key != wrapping[2]);
        check_retain::<8>(&wrapping, |key| key == wrapping[4]);
    }

    #[test]
    fn retain_on_full_tables() {
        for home_slot in 0..8 {
            let keys = keys_homed_at::<8>(home_slot, 8);
            for pattern in 0_u32..256 {
                let keep = |key: u64| {
                    keys.iter().position(|&k| k == key).is_some_and(|at| pattern & (1 << at) != 0)
                };
                check_retain::<8>(&keys, keep);
            }
        }
        for pattern in 0_u64..256 {
            let keys: Vec<u64> = (1..=8).collect();
            check_retain::<8>(&keys, |key| pattern & (1 << (key - 1)) != 0);
        }
    }

    #[test]
    fn retain_start_on_full_tables_is_uncrossed() {
        for seed in 1..200_u64 {
            let mut map = Map::<8>::new();
            let mut key = seed;
            while map.len() < 8 {
                key = key.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                let _ = map.insert(key % 40 + 1, 0);
            }
            let start = map.retain_start();
            for (index, slot) in map.slots.iter().enumerate() {
                let displacement = index.wrapping_sub(home::<8>(slot.key)) & 7;
                let offset = index.wrapping_sub(start) & 7;
                assert!(displacement <= offset, "seed {seed}: slot {index} crosses start {start}");
            }
        }
    }

    /// Counts its drops in a shared cell.
    struct Counted<'a> {
        drops: &'a Cell<usize>,
        id: u64,
    }

    impl Drop for Counted<'_> {
        fn drop(&mut self) {
            self.drops.set(self.drops.get() + 1);
        }
    }

    #[test]
    fn values_are_dropped_exactly_once() {
        let drops = Cell::new(0);
        let value = |id| Counted { drops: &drops, id };
        {
            let mut map: SlotMap<u64, Counted<'_>, 4> = SlotMap::new();
            for key in 1..=4 {
                assert!(map.insert(key, value(key)).is_ok());
            }
            // Rejected values come back undropped, and drop when the caller drops them.
            let rejected = map.insert(5, value(5)).map(|_| ()).unwrap_err().into_value();
            assert_eq!(rejected.id, 5);
            assert_eq!(drops.get(), 0);
            drop(rejected);
            assert_eq!(drops.get(), 1);
            assert!(matches!(map.insert(1, value(9)), Err(InsertError::Exists(_))));
            assert_eq!(drops.get(), 2);

            let removed = map.remove(&1);
            assert_eq!(removed.as_ref().map(|counted| counted.id), Some(1));
            assert_eq!(drops.get(), 2);
            drop(removed);
            assert_eq!(drops.get(), 3);

            let old = must(map.insert_or_replace(2, value(20)));
            assert_eq!(old.as_ref().map(|counted| counted.id), Some(2));
            assert_eq!(drops.get(), 3);
            drop(old);
            assert_eq!(drops.get(), 4);

            map.retain(|&key, _| key != 3);
            assert_eq!(drops.get(), 5);
            assert_eq!(map.len(), 2);
            // Two left: keys 2 (value 20) and 4.
        }
        assert_eq!(drops.get(), 7);

        drops.set(0);
        let mut map: SlotMap<u64, Counted<'_>, 8> = SlotMap::new();
        for key in 1..=6 {
            assert!(map.insert(key, value(key)).is_ok());
        }
        map.clear();
        assert_eq!(drops.get(), 6);
        drop(map);
        assert_eq!(drops.get(), 6);
    }

    #[test]
    fn clone_keeps_layout_and_values() {
        let mut map: SlotMap<u64, String, 8> = SlotMap::new();
        let wrapping = keys_homed_at::<8>(7, 3);
        let others = (1..).filter(|key| !wrapping.contains(key)).take(2);
        for key in wrapping.iter().copied().chain(others) {
            assert!(map.insert(key, key.to_string()).is_ok());
        }
        assert_eq!(map.len(), 5);
        let copy = map.clone();
        assert_eq!(copy.len(), map.len());
        for (slot, copied) in map.slots.iter().zip(&copy.slots) {
            assert_eq!(slot.key, copied.key);
        }
        drop(map);
        for (key, value) in &copy {
            assert_eq!(*value, key.to_string());
        }
    }

    #[test]
    fn debug_like_a_map() {
        let mut map = Map::<4>::new();
        assert_eq!(format!("{map:?}"), "{}");
        must(map.insert(3, 30));
        assert_eq!(format!("{map:?}"), "{3: 30}");
        assert_eq!(format!("{:?}", map.iter()), "[(3, 30)]");
        assert_eq!(format!("{:?}", map.iter_mut()), "[(3, 30)]");
    }

    #[test]
    fn len_is_clamped_to_capacity() {
        let mut map = Map::<4>::new();
        map.len = u64::MAX;
        assert_eq!(map.len(), 4);
        must(map.insert(1, 1));
        assert_eq!(map.len(), 4);
        map.len = 0;
        assert_eq!(map.remove(&1), Some(1));
        assert_eq!(map.len(), 0);
    }

    #[test]
    fn usable_in_statics_and_consts() {
        static EMPTY: Map<16> = SlotMap::new();
        const ALSO_EMPTY: SlotMap<u32, String, 2> = SlotMap::new();
        assert!(EMPTY.is_empty());
        assert_eq!(EMPTY.get(&1), None);
        let mut map = ALSO_EMPTY;
        assert!(map.insert(1, String::from("x")).is_ok());
        assert_eq!(map.get(&1).map(String::as_str), Some("x"));
    }

    #[test]
    fn layout_is_length_then_slots() {
        assert_eq!(size_of::<Map<16>>(), 8 + 16 * 16);
        assert_eq!(mem::offset_of!(Map<16>, slots), 8);
        assert_eq!(size_of::<SlotMap<u32, u32, 4>>(), 8 + 4 * 8);
        assert_eq!(size_of::<Slot<u32, u64>>(), 16);
    }
}
