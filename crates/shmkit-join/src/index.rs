//! A sorted array of disjoint address spans, each naming the key of its record: how the registry
//! answers "which join overlaps these bytes" and "which join has this handle" in O(log n) without
//! walking its 256 large records.
//!
//! Spans are closed (`[start, last]`), so a span ending at the top of the address space needs no
//! overflow. They never overlap: [`SpanIndex::insert`] refuses a span that overlaps one already
//! there. With disjoint spans sorted by start, the only span that can overlap `[start, last]` and
//! begin at or before `last` is the last such span; if it ends before `start`, all earlier ones do
//! too.

use shmkit_name::Key;

#[derive(Clone, Copy, Debug)]
struct Span {
    start: usize,
    last: usize,
    key: Key,
}

const EMPTY: Span = Span { start: 0, last: 0, key: Key::NULL };

/// At most `N` disjoint spans, sorted by start.
pub(crate) struct SpanIndex<const N: usize> {
    spans: [Span; N],
    len: usize,
}

impl<const N: usize> SpanIndex<N> {
    pub(crate) const fn new() -> Self {
        Self { spans: [EMPTY; N], len: 0 }
    }

    /// How many spans start at or before `at`: where a span starting after them would go.
    fn starting_by(&self, at: usize) -> usize {
        self.spans[..self.len].partition_point(|span| span.start <= at)
    }

    /// The key of a span overlapping `[start, last]`.
    pub(crate) fn find(&self, start: usize, last: usize) -> Option<&Key> {
        let candidate = self.starting_by(last).checked_sub(1)?;
        let span = &self.spans[candidate];
        (span.last >= start).then_some(&span.key)
    }

    /// Adds `[start, last]` for `key`, or returns the key of a span it overlaps (or `None` as the
    /// error when the index is full).
    pub(crate) fn insert(
        &mut self,
        start: usize,
        last: usize,
        key: Key,
    ) -> Result<(), Option<Key>> {
        debug_assert!(start <= last);
        if let Some(other) = self.find(start, last) {
            return Err(Some(*other));
        }
        if self.len == N {
            return Err(None);
        }
        let at = self.starting_by(start);
        self.spans.copy_within(at..self.len, at + 1);
        self.spans[at] = Span { start, last, key };
        self.len += 1;
        Ok(())
    }

    /// Removes the span starting at `start` if it belongs to `key`.
    pub(crate) fn remove(&mut self, start: usize, key: &Key) -> bool {
        let Some(at) = self.starting_by(start).checked_sub(1) else { return false };
        if self.spans[at].start != start || self.spans[at].key != *key {
            return false;
        }
        self.spans.copy_within(at + 1..self.len, at);
        self.len -= 1;
        self.spans[self.len] = EMPTY;
        true
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.len
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u8) -> Key {
        let name = shmkit_name::Name::new(&format!("k{n}")).expect("valid");
        name.key()
    }

    /// The index against a plain list on random disjoint spans, including the top of the
    /// address space.
    #[test]
    fn agrees_with_a_linear_scan() {
        let mut index = SpanIndex::<16>::new();
        let mut model: Vec<(usize, usize, Key)> = Vec::new();
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for step in 0..20_000_u32 {
            let base = if next() % 8 == 0 { usize::MAX - 80 } else { 0 };
            let start = base + (next() % 60) as usize;
            let last = start.saturating_add((next() % 6) as usize);
            let id = (step % 200) as u8;
            if next() % 3 == 0 && !model.is_empty() {
                let victim = (next() as usize) % model.len();
                let (start, _, key) = model.swap_remove(victim);
                assert!(index.remove(start, &key));
            } else {
                let overlapping = model.iter().find(|(s, l, _)| *s <= last && start <= *l);
                let result = index.insert(start, last, key(id));
                match (overlapping, result) {
                    (Some(_), Err(Some(_))) => {}
                    (None, Ok(())) => model.push((start, last, key(id))),
                    (None, Err(None)) => assert_eq!(model.len(), 16),
                    (expected, got) => panic!("step {step}: model {expected:?}, index {got:?}"),
                }
            }
            assert_eq!(index.len(), model.len());
            let q_start = base + (next() % 70) as usize;
            let q_last = q_start.saturating_add((next() % 4) as usize);
            let expected = model.iter().any(|(s, l, _)| *s <= q_last && q_start <= *l);
            let found = index.find(q_start, q_last);
            assert_eq!(found.is_some(), expected, "step {step}: query {q_start}..={q_last}");
            if let Some(found) = found {
                assert!(
                    model.iter().any(|(s, l, k)| k == found && *s <= q_last && q_start <= *l),
                    "step {step}: the key found overlaps the query"
                );
            }
        }
    }

    #[test]
    fn remove_checks_the_key() {
        let mut index = SpanIndex::<4>::new();
        index.insert(10, 20, key(1)).expect("insert");
        assert!(!index.remove(10, &key(2)));
        assert!(!index.remove(11, &key(1)));
        assert!(index.remove(10, &key(1)));
        assert!(index.find(0, usize::MAX).is_none());
    }
}
