//! [`Name`]: a validated region name, and [`NameError`]: why a candidate was refused.

use core::fmt;
use core::str::FromStr;

use crate::key::Key;

/// A validated region name: 1 to [`Name::MAX_LEN`] bytes of `[0-9A-Za-z_.-]`, starting with an
/// ASCII letter or digit.
///
/// Construction ([`Name::new`], [`Name::from_bytes`], [`Key::to_name`], `parse`, `try_from`) is the
/// only place a name is checked, so every function that takes a `Name` may rely on it: the name
/// is safe as a file name, as the part after `/` of a POSIX shared memory name, and in a
/// zero-padded [`Key`].
///
/// A `Name` is stored as its [`Key`] (40 bytes, inline, `Copy`), so [`Name::key`] costs nothing.
/// Names order by their bytes, which is the same as ordering the strings.
///
/// # Examples
///
/// ```
/// use shmkit_name::{Name, NameError};
///
/// let name = Name::new("orders.v1")?;
/// assert_eq!(name.as_str(), "orders.v1");
/// assert_eq!(name.len(), 9);
/// assert_eq!(name.to_string(), "orders.v1");
/// assert_eq!(format!("{name:?}"), r#"Name("orders.v1")"#);
///
/// assert_eq!(Name::new("a/b"), Err(NameError::InvalidChar { ch: '/', at: 1 }));
/// assert_eq!(Name::new(".hidden"), Err(NameError::BadFirst { ch: '.' }));
///
/// // Names can be built at compile time.
/// const REGISTRY: Name = match Name::new("registry") {
///     Ok(name) => name,
///     Err(_) => panic!("not a valid name"),
/// };
/// assert_eq!(REGISTRY.as_str(), "registry");
/// # Ok::<(), NameError>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Name(Key);

/// Why a candidate name was refused.
///
/// Checks run in this order, and the first failure is reported: [`Empty`](Self::Empty), then
/// [`TooLong`](Self::TooLong), then each character from left to right
/// ([`InvalidChar`](Self::InvalidChar), [`InvalidByte`](Self::InvalidByte), or
/// [`BadFirst`](Self::BadFirst) for an allowed character that may not come first). A [`Key`]
/// read back with [`Key::to_name`] is checked the same way, then for
/// [`NotPadded`](Self::NotPadded). Positions are byte offsets.
///
/// # Examples
///
/// ```
/// use shmkit_name::{Name, NameError};
///
/// let error = Name::new("abc/def").unwrap_err();
/// assert_eq!(error, NameError::InvalidChar { ch: '/', at: 3 });
/// assert_eq!(error.to_string(), "invalid character '/' at 3");
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Debug, thiserror::Error)]
pub enum NameError {
    /// The name has no characters.
    #[error("empty")]
    Empty,
    /// The name is longer than [`Name::MAX_LEN`] bytes.
    #[error("too long: {len} bytes, at most 39")]
    TooLong {
        /// The length in bytes.
        len: usize,
    },
    /// A character outside `[0-9A-Za-z_.-]`.
    #[error("invalid character {ch:?} at {at}")]
    InvalidChar {
        /// The character.
        ch: char,
        /// Its byte offset.
        at: usize,
    },
    /// A byte that does not start a valid UTF-8 character (only from [`Name::from_bytes`] and
    /// [`Key::to_name`]).
    #[error("invalid byte {byte:#04x} at {at}")]
    InvalidByte {
        /// The byte.
        byte: u8,
        /// Its byte offset.
        at: usize,
    },
    /// The first character is `_`, `.` or `-`: allowed later, but a leading `.` would hide the
    /// file and a leading `-` would read as an option on a command line.
    #[error("must start with a letter or digit, not {ch:?}")]
    BadFirst {
        /// The first character.
        ch: char,
    },
    /// A [`Key`] has a non-zero byte after the zero that ends its name (only from
    /// [`Key::to_name`]): the key was not written by [`Key::from`] a [`Name`], or is corrupt.
    #[error("bytes after the name are not zero: the first is at {at}")]
    NotPadded {
        /// The byte offset of the first non-zero byte after the name.
        at: usize,
    },
}

impl Name {
    /// The longest name, in bytes. One byte less than [`Key::LEN`], so a key always ends in zero.
    pub const MAX_LEN: usize = Key::LEN - 1;

    /// Checks `name` and returns it as a `Name`.
    ///
    /// # Errors
    ///
    /// The first rule `name` breaks, in the order given in [`NameError`].
    ///
    /// # Examples
    ///
    /// ```
    /// use shmkit_name::{Name, NameError};
    ///
    /// assert!(Name::new("ticks-2024.raw_v2").is_ok());
    /// assert_eq!(Name::new(""), Err(NameError::Empty));
    /// assert_eq!(Name::new("é"), Err(NameError::InvalidChar { ch: 'é', at: 0 }));
    /// ```
    pub const fn new(name: &str) -> Result<Self, NameError> {
        Self::from_bytes(name.as_bytes())
    }

    /// Checks `bytes` and returns them as a `Name`. Like [`Name::new`], but the input need not be
    /// UTF-8: a byte that does not start a valid UTF-8 character is reported as
    /// [`NameError::InvalidByte`].
    ///
    /// # Errors
    ///
    /// The first rule `bytes` breaks, in the order given in [`NameError`].
    ///
    /// # Examples
    ///
    /// ```
    /// use shmkit_name::{Name, NameError};
    ///
    /// assert_eq!(Name::from_bytes(b"abc")?.as_str(), "abc");
    /// assert_eq!(Name::from_bytes(b"ab\xff"), Err(NameError::InvalidByte { byte: 0xff, at: 2 }));
    /// # Ok::<(), NameError>(())
    /// ```
    pub const fn from_bytes(bytes: &[u8]) -> Result<Self, NameError> {
        if bytes.is_empty() {
            return Err(NameError::Empty);
        }
        if bytes.len() > Self::MAX_LEN {
            return Err(NameError::TooLong { len: bytes.len() });
        }
        let mut key = [0; Key::LEN];
        let mut at = 0;
        while at < bytes.len() {
            let byte = bytes[at];
            if !is_name_byte(byte) {
                return Err(invalid_at(bytes, at));
            }
            if at == 0 && !byte.is_ascii_alphanumeric() {
                return Err(NameError::BadFirst { ch: byte as char });
            }
            key[at] = byte;
            at += 1;
        }
        Ok(Self(Key::from_bytes(key)))
    }

    /// The name.
    pub const fn as_str(&self) -> &str {
        match core::str::from_utf8(self.as_bytes()) {
            Ok(name) => name,
            // Unreachable: construction admitted ASCII only. Not a panic, to keep every path
            // panic-free.
            Err(_) => "",
        }
    }

    /// The name's bytes, without the key's zero padding.
    pub const fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes().split_at(self.len()).0
    }

    /// The length in bytes, 1 to [`Name::MAX_LEN`].
    #[allow(clippy::len_without_is_empty, reason = "a Name is never empty")]
    pub const fn len(&self) -> usize {
        self.0.name_len()
    }

    /// The name as a zero-padded 40-byte [`Key`], the form kept in shared memory.
    ///
    /// # Examples
    ///
    /// ```
    /// use shmkit_name::Name;
    ///
    /// let key = Name::new("abc")?.key();
    /// assert_eq!(&key.as_bytes()[..4], b"abc\0");
    /// # Ok::<(), shmkit_name::NameError>(())
    /// ```
    pub const fn key(&self) -> Key {
        self.0
    }
}

/// Bit `b` is set for each byte `b` that may appear in a name: one shift and test per byte
/// instead of five range checks.
const NAME_BYTES: u128 = {
    let mut set = 0;
    let mut byte: u8 = 0;
    while byte < 128 {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'_' | b'.' | b'-') {
            set |= 1 << byte;
        }
        byte += 1;
    }
    set
};

/// Whether `byte` may appear in a name (ignoring the rule for the first character).
const fn is_name_byte(byte: u8) -> bool {
    byte < 128 && (NAME_BYTES >> byte) & 1 == 1
}

/// The error for the disallowed byte at `at`: the whole character if it is valid UTF-8 there.
const fn invalid_at(bytes: &[u8], at: usize) -> NameError {
    let byte = bytes[at];
    if byte.is_ascii() {
        return NameError::InvalidChar { ch: byte as char, at };
    }
    match char_at(bytes, at) {
        Some(ch) => NameError::InvalidChar { ch, at },
        None => NameError::InvalidByte { byte, at },
    }
}

/// Decodes the multi-byte UTF-8 character starting at `at`, if there is a valid one.
const fn char_at(bytes: &[u8], at: usize) -> Option<char> {
    let lead = bytes[at];
    // Lead bytes of 2, 3 and 4-byte sequences; `from_utf8` below rejects overlong forms,
    // surrogates and values past U+10FFFF that these ranges still let through.
    let width = match lead {
        0xC2..=0xDF => 2,
        0xE0..=0xEF => 3,
        0xF0..=0xF4 => 4,
        _ => return None,
    };
    let Some((_, rest)) = bytes.split_at_checked(at) else { return None };
    let Some((sequence, _)) = rest.split_at_checked(width) else { return None };
    if core::str::from_utf8(sequence).is_err() {
        return None;
    }
    let mut code = (lead & (0x7F >> width)) as u32;
    let mut index = 1;
    while index < width {
        code = (code << 6) | (sequence[index] & 0x3F) as u32;
        index += 1;
    }
    char::from_u32(code)
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

impl fmt::Debug for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Name").field(&self.as_str()).finish()
    }
}

impl FromStr for Name {
    type Err = NameError;

    fn from_str(name: &str) -> Result<Self, NameError> {
        Self::new(name)
    }
}

impl TryFrom<&str> for Name {
    type Error = NameError;

    fn try_from(name: &str) -> Result<Self, NameError> {
        Self::new(name)
    }
}

impl TryFrom<Key> for Name {
    type Error = NameError;

    /// Same as [`Key::to_name`].
    fn try_from(key: Key) -> Result<Self, NameError> {
        key.to_name()
    }
}

impl AsRef<str> for Name {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl PartialEq<str> for Name {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for Name {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALNUM: &str = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

    fn name(text: &str) -> Name {
        match Name::new(text) {
            Ok(name) => name,
            Err(error) => panic!("{text:?} should be valid: {error}"),
        }
    }

    #[test]
    fn lengths_at_the_edges() {
        assert_eq!(Name::new(""), Err(NameError::Empty));
        assert_eq!(name("a").len(), 1);
        let longest = "a".repeat(39);
        assert_eq!(name(&longest).len(), 39);
        assert_eq!(name(&longest).as_str(), longest);
        assert_eq!(Name::new(&"a".repeat(40)), Err(NameError::TooLong { len: 40 }));
        assert_eq!(Name::new(&"a".repeat(1000)), Err(NameError::TooLong { len: 1000 }));
        // Length is checked before characters.
        assert_eq!(Name::new(&"/".repeat(40)), Err(NameError::TooLong { len: 40 }));
        // Bytes, not characters: 20 two-byte characters are 40 bytes.
        assert_eq!(Name::new(&"é".repeat(20)), Err(NameError::TooLong { len: 40 }));
    }

    #[test]
    fn every_allowed_character_is_accepted_in_every_place_it_may_go() {
        for ch in ALNUM.chars() {
            let mut buf = [0; 4];
            let first = ch.encode_utf8(&mut buf);
            assert_eq!(name(first).as_str(), first);
        }
        let all = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz.-";
        assert_eq!(name(&all[..39]).as_str(), &all[..39]);
        assert_eq!(name(&format!("x{}", &all[30..])).as_str(), format!("x{}", &all[30..]));
        assert_eq!(name("a_").as_str(), "a_");
        assert_eq!(name("a.").as_str(), "a.");
        assert_eq!(name("a-").as_str(), "a-");
        assert_eq!(name("0-._").as_str(), "0-._");
    }

    #[test]
    fn every_other_ascii_character_is_refused_with_its_position() {
        for byte in 0..=0x7F_u8 {
            let ch = char::from(byte);
            if ch.is_ascii_alphanumeric() || "_.-".contains(ch) {
                continue;
            }
            let text = format!("ab{ch}");
            assert_eq!(Name::new(&text), Err(NameError::InvalidChar { ch, at: 2 }), "{text:?}");
            let text = format!("{ch}ab");
            assert_eq!(Name::new(&text), Err(NameError::InvalidChar { ch, at: 0 }), "{text:?}");
        }
    }

    #[test]
    fn first_character_rules() {
        for ch in ['_', '.', '-'] {
            assert_eq!(Name::new(&format!("{ch}abc")), Err(NameError::BadFirst { ch }));
            assert_eq!(Name::new(&ch.to_string()), Err(NameError::BadFirst { ch }));
        }
        // Outside the set entirely: InvalidChar, even at 0.
        assert_eq!(Name::new("/abc"), Err(NameError::InvalidChar { ch: '/', at: 0 }));
        // Scan is left to right, so a bad first character wins over a later invalid one.
        assert_eq!(Name::new("_a/"), Err(NameError::BadFirst { ch: '_' }));
        assert_eq!(Name::new("a/b c"), Err(NameError::InvalidChar { ch: '/', at: 1 }));
    }

    #[test]
    fn non_ascii_and_nul() {
        assert_eq!(Name::new("é"), Err(NameError::InvalidChar { ch: 'é', at: 0 }));
        assert_eq!(Name::new("caf\u{e9}"), Err(NameError::InvalidChar { ch: 'é', at: 3 }));
        assert_eq!(Name::new("a€"), Err(NameError::InvalidChar { ch: '€', at: 1 }));
        assert_eq!(Name::new("ab😀"), Err(NameError::InvalidChar { ch: '😀', at: 2 }));
        assert_eq!(Name::new("a\0b"), Err(NameError::InvalidChar { ch: '\0', at: 1 }));
        assert_eq!(Name::from_bytes(b"a\0"), Err(NameError::InvalidChar { ch: '\0', at: 1 }));
    }

    #[test]
    fn bytes_that_are_not_utf8() {
        let cases: [(&[u8], u8, usize); 8] = [
            (b"\xff", 0xFF, 0),
            (b"ab\x80", 0x80, 2),
            (b"a\xc3", 0xC3, 1),             // truncated 2-byte sequence
            (b"a\xc3a", 0xC3, 1),            // bad continuation
            (b"a\xc0\x80", 0xC0, 1),         // overlong NUL
            (b"a\xe0\x80\x80", 0xE0, 1),     // overlong 3-byte
            (b"a\xed\xa0\x80", 0xED, 1),     // surrogate
            (b"a\xf4\x90\x80\x80", 0xF4, 1), // past U+10FFFF
        ];
        for (bytes, byte, at) in cases {
            assert_eq!(
                Name::from_bytes(bytes),
                Err(NameError::InvalidByte { byte, at }),
                "{bytes:?}"
            );
        }
        assert_eq!(
            Name::from_bytes("aé".as_bytes()),
            Err(NameError::InvalidChar { ch: 'é', at: 1 })
        );
        assert_eq!(
            Name::from_bytes("a\u{10FFFF}".as_bytes()),
            Err(NameError::InvalidChar { ch: '\u{10FFFF}', at: 1 })
        );
    }

    #[test]
    fn error_messages() {
        assert_eq!(NameError::Empty.to_string(), "empty");
        assert_eq!(NameError::TooLong { len: 40 }.to_string(), "too long: 40 bytes, at most 39");
        assert_eq!(Name::new("abc/").unwrap_err().to_string(), "invalid character '/' at 3");
        assert_eq!(Name::new("a\0").unwrap_err().to_string(), r"invalid character '\0' at 1");
        assert_eq!(Name::new("a'").unwrap_err().to_string(), r"invalid character '\'' at 1");
        assert_eq!(Name::from_bytes(b"abc\xff").unwrap_err().to_string(), "invalid byte 0xff at 3");
        assert_eq!(Name::from_bytes(b"\x80").unwrap_err().to_string(), "invalid byte 0x80 at 0");
        assert_eq!(
            Name::new("_x").unwrap_err().to_string(),
            "must start with a letter or digit, not '_'"
        );
        assert_eq!(
            NameError::NotPadded { at: 5 }.to_string(),
            "bytes after the name are not zero: the first is at 5"
        );
    }

    #[test]
    fn conversions_and_formatting() {
        let abc = name("abc");
        assert_eq!("abc".parse::<Name>(), Ok(abc));
        assert_eq!(Name::try_from("abc"), Ok(abc));
        assert_eq!(Name::try_from(abc.key()), Ok(abc));
        assert_eq!(abc.as_bytes(), b"abc");
        assert_eq!(abc, "abc");
        assert_eq!(abc, *"abc");
        assert_eq!(AsRef::<str>::as_ref(&abc), "abc");
        assert_eq!(format!("{abc}"), "abc");
        assert_eq!(format!("[{abc:>5}]"), "[  abc]");
        assert_eq!(format!("{abc:?}"), "Name(\"abc\")");
        assert_eq!(abc.to_string().parse::<Name>(), Ok(abc));
    }

    #[test]
    fn order_is_string_order() {
        let mut names = ["b", "abc", "ab", "Z", "a-", "a.", "a_", "a0", "9"].map(name);
        names.sort();
        let mut strings = names.map(|name| name.to_string());
        let sorted = strings.clone();
        strings.sort();
        assert_eq!(sorted, strings);
    }

    #[test]
    fn usable_in_const() {
        const NAME: Result<Name, NameError> = Name::new("const.name");
        const LEN: usize = match NAME {
            Ok(name) => name.len(),
            Err(_) => 0,
        };
        assert_eq!(LEN, 10);
    }
}
