//! The data area of a byte ring: header words and payload copies at byte offsets.
//!
//! Normally the area is `capacity` plain bytes: header words are 8-byte atomics (a peer writing
//! one concurrently is a race on a value, which the reader checks, never undefined behaviour) and
//! payloads are copied with `memcpy` through raw pointers, never through references.
//!
//! Under loom the area is one `loom::cell::UnsafeCell<u64>` per 8 bytes, so that loom reports any
//! access to a record that the positions' orderings do not separate from the other side's.

use core::ptr::NonNull;

#[cfg(loom)]
type Word = loom::cell::UnsafeCell<u64>;

/// Bytes the data area of a ring of `capacity` bytes takes.
pub(super) const fn area_bytes(capacity: usize) -> usize {
    #[cfg(not(loom))]
    return capacity;
    #[cfg(loom)]
    return capacity / 8 * size_of::<Word>();
}

/// A data area: where it starts and its capacity in bytes (a power of two, at least 16).
#[derive(Clone, Copy, Debug)]
pub(super) struct Data {
    base: NonNull<u8>,
    capacity: u64,
}

impl Data {
    /// The area of `capacity` bytes at `base`.
    ///
    /// # Safety
    ///
    /// `base..base + area_bytes(capacity)` is valid for reads and writes, 8-aligned, for as long
    /// as the result (or a copy) is used.
    pub(super) unsafe fn new(base: NonNull<u8>, capacity: u64) -> Self {
        Self { base, capacity }
    }

    /// Fills the area with fresh words (under loom; normally nothing, as the bytes need no
    /// initial value).
    ///
    /// # Safety
    ///
    /// Nobody else accesses the area during the call.
    #[cfg_attr(not(loom), allow(clippy::unused_self, reason = "only loom's area needs filling"))]
    pub(super) unsafe fn init(&self) {
        #[cfg(loom)]
        for index in 0..self.capacity as usize / 8 {
            // SAFETY: inside the area (the contract of `new`); nobody else accesses it.
            unsafe { self.base.cast::<Word>().add(index).write(Word::new(0)) };
        }
    }

    /// The index of the 8-byte word at `offset`, reduced into the area.
    #[inline]
    fn word_index(&self, offset: u64) -> usize {
        ((offset & (self.capacity - 1)) / 8) as usize
    }

    /// Loads the 8-byte word at `offset` (reduced modulo the capacity, rounded down to 8).
    #[inline]
    pub(super) fn read_word(&self, offset: u64) -> u64 {
        let index = self.word_index(offset);
        #[cfg(not(loom))]
        {
            // SAFETY: `index < capacity / 8`: inside the area, aligned; its bytes are only
            // accessed as atomics or through raw copies, never through references.
            let word =
                unsafe { self.base.cast::<crate::primitive::AtomicU64>().add(index).as_ref() };
            word.load(crate::primitive::Ordering::Relaxed)
        }
        #[cfg(loom)]
        // SAFETY: inside the area, a word `init` wrote.
        unsafe { self.base.cast::<Word>().add(index).as_ref() }.with(|word| {
            // SAFETY: loom checks that no write to this word races with the read.
            unsafe { *word }
        })
    }

    /// Stores the 8-byte word at `offset` (reduced modulo the capacity, rounded down to 8).
    #[inline]
    pub(super) fn write_word(&self, offset: u64, value: u64) {
        let index = self.word_index(offset);
        #[cfg(not(loom))]
        {
            // SAFETY: as in `read_word`.
            let word =
                unsafe { self.base.cast::<crate::primitive::AtomicU64>().add(index).as_ref() };
            word.store(value, crate::primitive::Ordering::Relaxed);
        }
        #[cfg(loom)]
        // SAFETY: inside the area, a word `init` wrote.
        unsafe { self.base.cast::<Word>().add(index).as_ref() }.with_mut(|word| {
            // SAFETY: loom checks that no other access to this word races with the write.
            unsafe { *word = value };
        });
    }

    /// The address of the byte at `offset`.
    ///
    /// # Safety
    ///
    /// `offset <= capacity`.
    #[cfg(not(loom))]
    #[inline]
    pub(super) unsafe fn ptr(&self, offset: u64) -> *mut u8 {
        debug_assert!(offset <= self.capacity);
        // SAFETY: inside the area or one past its end (the caller).
        unsafe { self.base.as_ptr().add(offset as usize) }
    }

    /// Copies `source` to `offset..offset + source.len()`.
    ///
    /// # Safety
    ///
    /// - `offset + source.len() <= capacity`.
    /// - The bytes belong to the caller's side (the producer's free space): the other side does
    ///   not read them until they are published.
    #[inline]
    pub(super) unsafe fn write(&self, offset: u64, source: &[u8]) {
        debug_assert!(offset + source.len() as u64 <= self.capacity);
        #[cfg(not(loom))]
        // SAFETY: in bounds (the caller); `source` is private memory, the area never overlaps it.
        unsafe {
            copy(source.as_ptr(), self.ptr(offset), source.len());
        }
        #[cfg(loom)]
        {
            // Whole words only: read each touched word, change the copied bytes, write it back.
            let mut done = 0;
            while done < source.len() {
                let at = offset + done as u64;
                let in_word = (at % 8) as usize;
                let count = (8 - in_word).min(source.len() - done);
                let mut bytes = self.read_word(at).to_ne_bytes();
                bytes[in_word..in_word + count].copy_from_slice(&source[done..done + count]);
                self.write_word(at, u64::from_ne_bytes(bytes));
                done += count;
            }
        }
    }

    /// Copies `offset..offset + target.len()` to `target`.
    ///
    /// # Safety
    ///
    /// - `offset + target.len() <= capacity`.
    /// - The bytes are published to the caller's side (the consumer's records).
    #[inline]
    pub(super) unsafe fn read(&self, offset: u64, target: &mut [u8]) {
        debug_assert!(offset + target.len() as u64 <= self.capacity);
        #[cfg(not(loom))]
        // SAFETY: in bounds (the caller); `target` is private memory, the area never overlaps it.
        unsafe {
            copy(self.ptr(offset), target.as_mut_ptr(), target.len());
        }
        #[cfg(loom)]
        {
            let mut done = 0;
            while done < target.len() {
                let at = offset + done as u64;
                let in_word = (at % 8) as usize;
                let count = (8 - in_word).min(target.len() - done);
                let bytes = self.read_word(at).to_ne_bytes();
                target[done..done + count].copy_from_slice(&bytes[in_word..in_word + count]);
                done += count;
            }
        }
    }
}

/// Copies `length` bytes: up to 128 inline as two fixed-size moves that may overlap (the
/// first and the last 64, 32, 16... bytes), larger ones with `memcpy`.
///
/// For a record of 64 bytes, the call into the C library's `memcpy` (and its size dispatch)
/// costs more than the copy: a third of the time of an append and a read in one thread. (A
/// copy loop would not do: the compiler turns it back into a `memcpy` call.)
///
/// # Safety
///
/// As `ptr::copy_nonoverlapping`: `source` readable and `target` writable for `length` bytes,
/// the two not overlapping.
#[cfg(not(loom))]
#[inline]
unsafe fn copy(source: *const u8, target: *mut u8, length: usize) {
    /// The first and the last `N` bytes (the whole range when `N <= length <= 2N`).
    ///
    /// # Safety
    ///
    /// As `copy`, and `N <= length`.
    #[inline]
    unsafe fn ends<const N: usize>(source: *const u8, target: *mut u8, length: usize) {
        // SAFETY: both `N`-byte ranges lie inside the `length` bytes (the caller).
        unsafe {
            let first = source.cast::<[u8; N]>().read_unaligned();
            let last = source.add(length - N).cast::<[u8; N]>().read_unaligned();
            target.cast::<[u8; N]>().write_unaligned(first);
            target.add(length - N).cast::<[u8; N]>().write_unaligned(last);
        }
    }
    // SAFETY: every arm copies within the `length` bytes (`N <= length` by its range), which
    // the caller guarantees readable at `source`, writable at `target`, not overlapping.
    unsafe {
        match length {
            0 => {}
            1 => target.write(source.read()),
            2..4 => ends::<2>(source, target, length),
            4..8 => ends::<4>(source, target, length),
            8..16 => ends::<8>(source, target, length),
            16..32 => ends::<16>(source, target, length),
            32..64 => ends::<32>(source, target, length),
            64..=128 => ends::<64>(source, target, length),
            _ => core::ptr::copy_nonoverlapping(source, target, length),
        }
    }
}
