//! [`SlotKey`]: what a key type provides so that a [`SlotMap`](crate::SlotMap) can store it, and
//! its implementations for `u64`, `u32` and (with the `name` feature) `shmkit_name::Key`.

/// A key of a [`SlotMap`](crate::SlotMap): a small `Copy` value with one reserved
/// [`NULL`](SlotKey::NULL) value that marks an empty slot, and a hash that every process
/// computes the same way.
///
/// The map stores no occupancy flags: a slot is occupied exactly when its key is not null. That is
/// why the null key can never be inserted, and why the trait is `unsafe` (see below).
///
/// The hash picks a key's home slot as `hash64() & (N - 1)`, so its low bits must be well mixed.
/// It must not depend on anything but the key's value (no per-process seed, no address): a map
/// copied into shared memory is probed by other processes with their own `hash64`.
///
/// # Safety
///
/// The map decides from [`is_null`](SlotKey::is_null) alone whether a slot's value is
/// initialised, so an implementation must guarantee:
///
/// - `is_null` depends only on the key's value: it returns the same answer for equal bit
///   patterns every time it is called, and does not panic;
/// - `Self::NULL.is_null()` is `true`.
///
/// `hash64`, `Eq` and `key_eq` are trusted for correctness only: a poor hash makes the map slow and an
/// inconsistent one makes keys unfindable, but neither can cause undefined behaviour.
///
/// # Examples
///
/// A port number as a key, with port 0 (never a valid port) as the null key:
///
/// ```
/// use shmkit_slotmap::{SlotKey, SlotMap};
///
/// #[repr(C)]
/// #[derive(Clone, Copy, PartialEq, Eq, Debug)]
/// struct Port(u16);
///
/// // SAFETY: `is_null` is a pure function of the value, and `NULL` (port 0) is null.
/// unsafe impl SlotKey for Port {
///     const NULL: Self = Port(0);
///
///     fn hash64(&self) -> u64 {
///         u64::from(self.0).hash64()
///     }
///
///     fn is_null(&self) -> bool {
///         self.0 == 0
///     }
/// }
///
/// let mut services: SlotMap<Port, &str, 8> = SlotMap::new();
/// services.insert(Port(443), "https")?;
/// assert_eq!(services.get(&Port(443)), Some(&"https"));
/// assert!(services.insert(Port(0), "reserved").is_err());
/// # Ok::<(), shmkit_slotmap::InsertError<&str>>(())
/// ```
pub unsafe trait SlotKey: Copy + Eq {
    /// The key that marks an empty slot; never stored as a real key.
    const NULL: Self;

    /// A 64-bit hash, identical in every process and build; its low bits choose the home slot.
    fn hash64(&self) -> u64;

    /// Whether this key is [`NULL`](SlotKey::NULL).
    fn is_null(&self) -> bool;

    /// Whether `self == other`, as the map compares keys while probing.
    ///
    /// The default is `==`; override it only when a cheaper comparison gives the same answer
    /// (as `shmkit_name::Key` does, comparing five words instead of calling `memcmp`).
    #[inline]
    fn key_eq(&self, other: &Self) -> bool {
        self == other
    }
}

/// The 64-bit finaliser of `MurmurHash3`: a bijection with full avalanche, so distinct integer keys never
/// share a full hash and every bit of the key reaches the low bits used for the home slot.
const fn fmix64(mut value: u64) -> u64 {
    value ^= value >> 33;
    value = value.wrapping_mul(0xFF51_AFD7_ED55_8CCD);
    value ^= value >> 33;
    value = value.wrapping_mul(0xC4CE_B9FE_1A85_EC53);
    value ^ (value >> 33)
}

/// `0` is the null key; the hash is the `fmix64` finaliser of `MurmurHash3` (a bijection).
///
/// ```
/// use shmkit_slotmap::SlotKey;
///
/// assert!(<u64 as SlotKey>::NULL.is_null());
/// assert_eq!(7_u64.hash64(), 7_u64.hash64());
/// assert_ne!(7_u64.hash64() & 255, 8_u64.hash64() & 255);
/// ```
// SAFETY: `is_null` compares the value with 0, which is `NULL`; it cannot panic.
unsafe impl SlotKey for u64 {
    const NULL: Self = 0;

    #[inline]
    fn hash64(&self) -> u64 {
        fmix64(*self)
    }

    #[inline]
    fn is_null(&self) -> bool {
        *self == 0
    }
}

/// `0` is the null key; the hash is the `u64` hash of the same number.
///
/// ```
/// use shmkit_slotmap::SlotKey;
///
/// assert!(<u32 as SlotKey>::NULL.is_null());
/// assert_eq!(7_u32.hash64(), 7_u64.hash64());
/// ```
// SAFETY: `is_null` compares the value with 0, which is `NULL`; it cannot panic.
unsafe impl SlotKey for u32 {
    const NULL: Self = 0;

    #[inline]
    fn hash64(&self) -> u64 {
        fmix64(u64::from(*self))
    }

    #[inline]
    fn is_null(&self) -> bool {
        *self == 0
    }
}

/// [`Key::NULL`](shmkit_name::Key::NULL) (all zeros) is the null key; the hash is
/// [`Key::hash64`](shmkit_name::Key::hash64), which is defined to be the same in every process.
///
/// ```
/// use shmkit_name::{Key, Name};
/// use shmkit_slotmap::SlotMap;
///
/// let mut sizes: SlotMap<Key, u64, 16> = SlotMap::new();
/// let orders = Name::new("orders.v1")?.key();
/// sizes.insert(orders, 1 << 20)?;
/// assert_eq!(sizes.get(&orders), Some(&(1 << 20)));
/// assert!(sizes.insert(Key::NULL, 0).is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[cfg(feature = "name")]
// SAFETY: `is_null` tests the 40 bytes for zero, which is exactly `Key::NULL`; it cannot panic.
unsafe impl SlotKey for shmkit_name::Key {
    const NULL: Self = shmkit_name::Key::NULL;

    #[inline]
    fn hash64(&self) -> u64 {
        shmkit_name::Key::hash64(self)
    }

    // Both below work on five machine words: `Key::is_null` walks byte by byte, and the derived
    // `==` on a byte array calls `memcmp`; both are on the probe loop's path for every slot.

    #[inline]
    fn is_null(&self) -> bool {
        key_words(self).into_iter().fold(0, |any, word| any | word) == 0
    }

    #[inline]
    fn key_eq(&self, other: &Self) -> bool {
        // Branch-free: the probe loop branches once per slot on the result, not per word.
        let (mine, theirs) = (key_words(self), key_words(other));
        mine.into_iter().zip(theirs).fold(0, |differ, (left, right)| differ | (left ^ right)) == 0
    }
}

/// The 40 bytes of a key as five words in native byte order (only ever compared, never stored).
#[cfg(feature = "name")]
#[inline]
fn key_words(key: &shmkit_name::Key) -> [u64; 5] {
    let (words, _) = key.as_bytes().as_chunks::<8>();
    let word = |index: usize| words.get(index).map_or(0, |&bytes| u64::from_ne_bytes(bytes));
    [word(0), word(1), word(2), word(3), word(4)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integer_nulls() {
        assert!(<u64 as SlotKey>::NULL.is_null());
        assert!(!1_u64.is_null());
        assert!(<u32 as SlotKey>::NULL.is_null());
        assert!(!u32::MAX.is_null());
    }

    #[test]
    fn integer_hashes_are_fixed() {
        // Pinned: a map built by another process (or build) must agree on home slots.
        assert_eq!(0_u64.hash64(), 0);
        assert_eq!(1_u64.hash64(), 0xB456_BCFC_34C2_CB2C);
        assert_eq!(1_u32.hash64(), 1_u64.hash64());
    }

    #[test]
    fn integer_hash_spreads_consecutive_keys() {
        let mut seen = [false; 64];
        for key in 1_u64..=64 {
            seen[(key.hash64() & 63) as usize] = true;
        }
        // A perfect spread fills 64; a random one fills about 41. Identity-like hashes fill 64 too,
        // so also check that neighbours do not land on neighbouring slots.
        assert!(seen.iter().filter(|&&hit| hit).count() > 30);
        let adjacent =
            (1_u64..64).filter(|key| (key.hash64() & 63) + 1 == ((key + 1).hash64() & 63)).count();
        assert!(adjacent < 8, "{adjacent} neighbours hash to neighbouring slots");
    }

    #[cfg(feature = "name")]
    #[test]
    fn name_key() {
        use shmkit_name::{Key, Name};

        assert!(<Key as SlotKey>::is_null(&Key::NULL));
        let key = match Name::new("a") {
            Ok(name) => name.key(),
            Err(error) => panic!("valid name: {error}"),
        };
        assert!(!SlotKey::is_null(&key));
        assert_eq!(SlotKey::hash64(&key), key.hash64());
        let mut last_byte = [0; Key::LEN];
        last_byte[Key::LEN - 1] = 1;
        let last = Key::from_bytes(last_byte);
        assert!(!SlotKey::is_null(&last));
        assert!(last.key_eq(&last));
        assert!(!last.key_eq(&Key::NULL));
        assert!(!key.key_eq(&last));
        for at in 0..Key::LEN {
            let mut bytes = *key.as_bytes();
            bytes[at] ^= 0x80;
            assert!(!key.key_eq(&Key::from_bytes(bytes)), "a difference in byte {at} is missed");
        }
    }
}
