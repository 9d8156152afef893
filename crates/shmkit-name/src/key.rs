//! [`Key`]: a name as the fixed 40 bytes kept in shared memory, and its stable hash.

use core::fmt;

use crate::name::{Name, NameError};

/// A region name zero-padded to 40 bytes: the form a name takes in shared memory and in
/// fixed-capacity maps.
///
/// A `Key` is a plain byte array with no invariant, so that one read from memory another process
/// may write is safe to hold: check it with [`Key::to_name`] before trusting it. A key made from
/// a [`Name`] always ends in at least one zero; [`Key::NULL`] (all zeros) stands for "no name".
///
/// Keys compare and order by their bytes; [`Key::hash64`] is a hash that every process computes
/// the same way.
///
/// # Examples
///
/// ```
/// use shmkit_name::{Key, Name, NameError};
///
/// let name = Name::new("orders.v1")?;
/// let key = Key::from(name);
/// assert_eq!(&key.as_bytes()[..10], b"orders.v1\0");
/// assert_eq!(key.to_name(), Ok(name));
/// assert_eq!(format!("{key:?}"), r#"Key("orders.v1")"#);
///
/// // Bytes from shared memory are checked on the way back.
/// let mut bytes = *key.as_bytes();
/// bytes[20] = b'x';
/// assert_eq!(Key::from_bytes(bytes).to_name(), Err(NameError::NotPadded { at: 20 }));
///
/// assert!(Key::NULL.is_null());
/// assert_eq!(Key::NULL.to_name(), Err(NameError::Empty));
/// # Ok::<(), NameError>(())
/// ```
#[repr(C)]
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key([u8; Key::LEN]);

// Shared memory layout: no padding, no alignment demand, so a key can sit at any offset.
const _: () = assert!(size_of::<Key>() == 40 && align_of::<Key>() == 1);

/// The constants of [`Key::hash64`]: the first 512 bits of the fraction of pi, so that nobody
/// chose them. Each of the first five has bytes that never occur in a name (such as `0x08`), so
/// no word of a valid key cancels one to zero.
const HASH_PI: [u64; 8] = [
    0x243F_6A88_85A3_08D3,
    0x1319_8A2E_0370_7344,
    0xA409_3822_299F_31D0,
    0x082E_FA98_EC4E_6C89,
    0x4528_21E6_38D0_1377,
    0xBE54_66CF_34E9_0C6C,
    0xC0AC_29B7_C97C_50DD,
    0x3F84_D5B5_B547_0917,
];

/// The full 128-bit product of `a` and `b` with its two halves combined by exclusive or (the
/// "mum" of wyhash).
const fn fold_multiply(a: u64, b: u64) -> u64 {
    let product = a as u128 * b as u128;
    product as u64 ^ (product >> 64) as u64
}

impl Key {
    /// The size of a key in bytes.
    pub const LEN: usize = 40;

    /// The all-zero key, which no [`Name`] produces: "no name", e.g. an empty slot.
    pub const NULL: Self = Self([0; Self::LEN]);

    /// A key holding `bytes` as they are, unchecked; see [`Key::to_name`].
    pub const fn from_bytes(bytes: [u8; Self::LEN]) -> Self {
        Self(bytes)
    }

    /// The 40 bytes.
    pub const fn as_bytes(&self) -> &[u8; Self::LEN] {
        &self.0
    }

    /// Whether this is [`Key::NULL`].
    pub const fn is_null(&self) -> bool {
        self.padding_error(0).is_none()
    }

    /// The name this key holds, checked as [`Name::from_bytes`] checks it: the bytes before the
    /// first zero must be a valid name, and every byte after that zero must be zero.
    ///
    /// # Errors
    ///
    /// [`NameError::Empty`] for a key that starts with zero (such as [`Key::NULL`]),
    /// [`NameError::TooLong`] for a key with no zero, any other error of [`Name::from_bytes`] for
    /// the bytes before the first zero, and [`NameError::NotPadded`] if a non-zero byte follows.
    ///
    /// # Examples
    ///
    /// ```
    /// use shmkit_name::{Key, NameError};
    ///
    /// let mut bytes = [0; 40];
    /// bytes[..3].copy_from_slice(b"abc");
    /// assert_eq!(Key::from_bytes(bytes).to_name()?.as_str(), "abc");
    /// assert_eq!(Key::from_bytes([b'a'; 40]).to_name(), Err(NameError::TooLong { len: 40 }));
    /// # Ok::<(), NameError>(())
    /// ```
    pub const fn to_name(&self) -> Result<Name, NameError> {
        let len = self.name_len();
        let name = match Name::from_bytes(self.0.split_at(len).0) {
            Ok(name) => name,
            Err(error) => return Err(error),
        };
        match self.padding_error(len) {
            Some(error) => Err(error),
            None => Ok(name),
        }
    }

    /// The offset of the first zero byte, or [`Key::LEN`] if there is none.
    pub(crate) const fn name_len(&self) -> usize {
        let mut len = 0;
        while len < Self::LEN && self.0[len] != 0 {
            len += 1;
        }
        len
    }

    /// [`NameError::NotPadded`] if a byte at or after `from` is not zero.
    const fn padding_error(&self, from: usize) -> Option<NameError> {
        let mut at = from;
        while at < Self::LEN {
            if self.0[at] != 0 {
                return Some(NameError::NotPadded { at });
            }
            at += 1;
        }
        None
    }

    /// A 64-bit hash of the 40 bytes, the same in every process, build, version and byte order
    /// ("shmkit key hash v1"), so that processes sharing a hash table agree on where a key goes.
    ///
    /// Definition, in C (`P` is the first 512 bits of the fraction of pi, `0x243F6A8885A308D3`,
    /// `0x13198A2E03707344`, ..., `0x3F84D5B5B5470917`; `load_le64` reads 8 bytes as a
    /// little-endian integer):
    ///
    /// ```c
    /// static uint64_t mum(uint64_t a, uint64_t b) {
    ///     unsigned __int128 p = (unsigned __int128)a * b;
    ///     return (uint64_t)p ^ (uint64_t)(p >> 64);
    /// }
    /// uint64_t shmkit_key_hash_v1(const uint8_t key[40]) {
    ///     uint64_t w0 = load_le64(key), w1 = load_le64(key + 8), w2 = load_le64(key + 16),
    ///              w3 = load_le64(key + 24), w4 = load_le64(key + 32);
    ///     uint64_t a = mum(w0 ^ P[0], w1 ^ P[1]);
    ///     uint64_t b = mum(w2 ^ P[2], w3 ^ P[3]);
    ///     uint64_t c = mum(w4 ^ P[4], P[5]);
    ///     return mum(a ^ c ^ P[6], b ^ P[7]);
    /// }
    /// ```
    ///
    /// A tree of full-width multiplies rather than a chain: every input bit passes through two,
    /// but the critical path is two multiplies deep, half the latency of a word-by-word
    /// multiply-rotate chain with a finalizer, on the hot path of every map lookup. Every output
    /// bit depends on every input bit, so `hash & (n - 1)` is a good bucket for a power-of-two
    /// table. It is not keyed: do not rely on it against an adversary who picks colliding names.
    ///
    /// # Examples
    ///
    /// ```
    /// use shmkit_name::{Key, Name};
    ///
    /// assert_eq!(Key::NULL.hash64(), 0xC8AB_888F_1266_9F8B);
    /// assert_eq!(Name::new("orders.v1")?.key().hash64(), 0x9706_1273_93F3_2CFA);
    /// # Ok::<(), shmkit_name::NameError>(())
    /// ```
    #[inline]
    pub const fn hash64(&self) -> u64 {
        let a = fold_multiply(self.word(0) ^ HASH_PI[0], self.word(1) ^ HASH_PI[1]);
        let b = fold_multiply(self.word(2) ^ HASH_PI[2], self.word(3) ^ HASH_PI[3]);
        let c = fold_multiply(self.word(4) ^ HASH_PI[4], HASH_PI[5]);
        fold_multiply(a ^ c ^ HASH_PI[6], b ^ HASH_PI[7])
    }

    /// Little-endian word `index` (0 to 4) of the key.
    #[inline]
    const fn word(&self, index: usize) -> u64 {
        let (words, _) = self.0.as_chunks::<8>();
        u64::from_le_bytes(words[index])
    }
}

impl From<Name> for Key {
    fn from(name: Name) -> Self {
        name.key()
    }
}

impl Default for Key {
    /// [`Key::NULL`].
    fn default() -> Self {
        Self::NULL
    }
}

impl fmt::Debug for Key {
    /// `Key("name")`, `Key(NULL)`, or for bytes that are not a valid key, `Key(invalid "...")`
    /// with the bytes escaped and trailing zeros left out.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_null() {
            return f.write_str("Key(NULL)");
        }
        if let Ok(name) = self.to_name() {
            return f.debug_tuple("Key").field(&name.as_str()).finish();
        }
        let end = self.0.iter().rposition(|&byte| byte != 0).map_or(0, |last| last + 1);
        write!(f, "Key(invalid \"{}\")", self.0.split_at(end).0.escape_ascii())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(text: &str) -> Key {
        match Name::new(text) {
            Ok(name) => name.key(),
            Err(error) => panic!("{text:?} should be valid: {error}"),
        }
    }

    fn raw(prefix: &[u8]) -> Key {
        let mut bytes = [0; Key::LEN];
        bytes[..prefix.len()].copy_from_slice(prefix);
        Key::from_bytes(bytes)
    }

    #[test]
    fn padding_and_round_trip() {
        let abc = key("abc");
        assert_eq!(abc, raw(b"abc"));
        assert!(abc.as_bytes()[3..].iter().all(|&byte| byte == 0));
        assert_eq!(abc.to_name().map(|name| name.key()), Ok(abc));
        let longest = "Z".repeat(39);
        let long = key(&longest);
        assert_eq!(long.as_bytes()[39], 0);
        assert_eq!(long.to_name().map(|name| name.to_string()), Ok(longest));
        assert_eq!(Key::default(), Key::NULL);
    }

    #[test]
    fn null() {
        assert!(Key::NULL.is_null());
        assert!(!key("a").is_null());
        assert!(!raw(&[0; 39].iter().chain(&[1]).copied().collect::<Vec<_>>()).is_null());
        assert!(!raw(&[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7]).is_null());
    }

    #[test]
    fn untrusted_bytes_are_checked() {
        assert_eq!(Key::NULL.to_name(), Err(NameError::Empty));
        assert_eq!(raw(b"\0x").to_name(), Err(NameError::Empty));
        assert_eq!(Key::from_bytes([b'a'; 40]).to_name(), Err(NameError::TooLong { len: 40 }));
        assert_eq!(raw(b"ab\0c").to_name(), Err(NameError::NotPadded { at: 3 }));
        let mut last = *key("abc").as_bytes();
        last[39] = 1;
        assert_eq!(Key::from_bytes(last).to_name(), Err(NameError::NotPadded { at: 39 }));
        assert_eq!(raw(b"a/b").to_name(), Err(NameError::InvalidChar { ch: '/', at: 1 }));
        assert_eq!(raw(b"_ab").to_name(), Err(NameError::BadFirst { ch: '_' }));
        assert_eq!(raw(b"a\xff").to_name(), Err(NameError::InvalidByte { byte: 0xFF, at: 1 }));
        // The name's own error comes before the padding's.
        assert_eq!(raw(b"a/\0x").to_name(), Err(NameError::InvalidChar { ch: '/', at: 1 }));
    }

    #[test]
    fn debug() {
        assert_eq!(format!("{:?}", key("abc")), "Key(\"abc\")");
        assert_eq!(format!("{:?}", Key::NULL), "Key(NULL)");
        assert_eq!(format!("{:?}", raw(b"ab\0c")), r#"Key(invalid "ab\x00c")"#);
        assert_eq!(format!("{:?}", raw(b"\xff\"")), r#"Key(invalid "\xff\"")"#);
        assert_eq!(
            format!("{:?}", raw(b"\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\x01")),
            r#"Key(invalid "\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01")"#
        );
    }

    #[test]
    fn order_and_equality_are_by_bytes() {
        assert!(key("ab") < key("abc"));
        assert!(key("B") < key("a"));
        assert_ne!(key("a"), key("A"));
    }

    #[test]
    fn hash_is_usable_in_const() {
        const HASH: u64 = Key::NULL.hash64();
        assert_eq!(HASH, Key::NULL.hash64());
    }
}
