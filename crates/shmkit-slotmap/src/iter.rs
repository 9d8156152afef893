//! Borrowing iterators over a [`SlotMap`](crate::SlotMap), in slot order.

use core::fmt;
use core::iter::FusedIterator;
use core::slice;

use crate::key::SlotKey;
use crate::map::Slot;

/// The entries of a [`SlotMap`](crate::SlotMap) as `(&K, &V)`, in slot order; see
/// [`SlotMap::iter`](crate::SlotMap::iter).
///
/// It walks all `N` slots whatever the map's length, so it ends after at most `N` steps even on a
/// corrupted copy.
pub struct Iter<'a, K, V> {
    slots: slice::Iter<'a, Slot<K, V>>,
}

impl<'a, K: SlotKey, V> Iter<'a, K, V> {
    pub(crate) fn new(slots: &'a [Slot<K, V>]) -> Self {
        Self { slots: slots.iter() }
    }
}

fn occupied<K: SlotKey, V>(slot: &Slot<K, V>) -> Option<(&K, &V)> {
    if slot.key.is_null() {
        return None;
    }
    // SAFETY: a slot's value is initialised iff its key is not null, and the key is not null.
    Some((&slot.key, unsafe { slot.value.assume_init_ref() }))
}

fn occupied_mut<K: SlotKey, V>(slot: &mut Slot<K, V>) -> Option<(&K, &mut V)> {
    if slot.key.is_null() {
        return None;
    }
    // SAFETY: a slot's value is initialised iff its key is not null, and the key is not null.
    Some((&slot.key, unsafe { slot.value.assume_init_mut() }))
}

impl<'a, K: SlotKey, V> Iterator for Iter<'a, K, V> {
    type Item = (&'a K, &'a V);

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        self.slots.find_map(occupied)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (0, Some(self.slots.len()))
    }
}

impl<K: SlotKey, V> DoubleEndedIterator for Iter<'_, K, V> {
    fn next_back(&mut self) -> Option<Self::Item> {
        self.slots.by_ref().rev().find_map(occupied)
    }
}

impl<K: SlotKey, V> FusedIterator for Iter<'_, K, V> {}

// Not derived: a derive would demand `K: Clone, V: Clone`, which copying references does not need.
impl<K, V> Clone for Iter<'_, K, V> {
    fn clone(&self) -> Self {
        Self { slots: self.slots.clone() }
    }
}

/// The entries not yet visited.
impl<K: SlotKey + fmt::Debug, V: fmt::Debug> fmt::Debug for Iter<'_, K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.clone()).finish()
    }
}

/// The entries of a [`SlotMap`](crate::SlotMap) as `(&K, &mut V)`, in slot order; see
/// [`SlotMap::iter_mut`](crate::SlotMap::iter_mut).
///
/// Like [`Iter`], it ends after at most `N` steps.
pub struct IterMut<'a, K, V> {
    slots: slice::IterMut<'a, Slot<K, V>>,
}

impl<'a, K: SlotKey, V> IterMut<'a, K, V> {
    pub(crate) fn new(slots: &'a mut [Slot<K, V>]) -> Self {
        Self { slots: slots.iter_mut() }
    }
}

impl<'a, K: SlotKey, V> Iterator for IterMut<'a, K, V> {
    type Item = (&'a K, &'a mut V);

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        self.slots.find_map(occupied_mut)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (0, Some(self.slots.len()))
    }
}

impl<K: SlotKey, V> DoubleEndedIterator for IterMut<'_, K, V> {
    fn next_back(&mut self) -> Option<Self::Item> {
        self.slots.by_ref().rev().find_map(occupied_mut)
    }
}

impl<K: SlotKey, V> FusedIterator for IterMut<'_, K, V> {}

/// The entries not yet visited.
impl<K: SlotKey + fmt::Debug, V: fmt::Debug> fmt::Debug for IterMut<'_, K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let remaining = Iter { slots: self.slots.as_slice().iter() };
        f.debug_list().entries(remaining).finish()
    }
}
