//! [`InsertError`]: why an insertion failed, with the value handed back.

use core::fmt;

/// Why [`SlotMap::insert`](crate::SlotMap::insert) or
/// [`SlotMap::insert_or_replace`](crate::SlotMap::insert_or_replace) did not store a value.
///
/// Each variant carries the value back, so that a failed insertion neither drops nor loses it;
/// [`into_value`](InsertError::into_value) takes it out whatever the variant.
///
/// # Examples
///
/// ```
/// use shmkit_slotmap::{InsertError, SlotMap};
///
/// let mut map: SlotMap<u64, String, 1> = SlotMap::new();
/// map.insert(1, "one".to_owned())?;
///
/// let error = map.insert(2, "two".to_owned()).unwrap_err();
/// assert!(matches!(error, InsertError::Full(_)));
/// assert_eq!(error.to_string(), "map is full: every slot holds a key; a larger capacity N is needed");
/// assert_eq!(error.into_value(), "two");
/// # Ok::<(), InsertError<String>>(())
/// ```
#[derive(thiserror::Error)]
pub enum InsertError<V> {
    /// Every slot holds a key (the key was not present).
    #[error("map is full: every slot holds a key; a larger capacity N is needed")]
    Full(V),
    /// The key is already present ([`SlotMap::insert`](crate::SlotMap::insert) only; use
    /// [`insert_or_replace`](crate::SlotMap::insert_or_replace) to overwrite).
    #[error("key already present")]
    Exists(V),
    /// The key was the [`SlotKey::NULL`](crate::SlotKey::NULL) key, which marks empty slots.
    #[error("the null key cannot be inserted")]
    NullKey(V),
}

impl<V> InsertError<V> {
    /// The value that was not inserted.
    ///
    /// ```
    /// use shmkit_slotmap::{InsertError, SlotMap};
    ///
    /// let mut map: SlotMap<u64, &str, 4> = SlotMap::new();
    /// assert_eq!(map.insert(0, "zero").map_err(InsertError::into_value), Err("zero"));
    /// ```
    pub fn into_value(self) -> V {
        match self {
            Self::Full(value) | Self::Exists(value) | Self::NullKey(value) => value,
        }
    }
}

/// Prints the variant only (`Full(..)`), so that errors of any value type can be printed and
/// `?`-propagated into `Box<dyn Error>`.
impl<V> fmt::Debug for InsertError<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let variant = match self {
            Self::Full(_) => "Full",
            Self::Exists(_) => "Exists",
            Self::NullKey(_) => "NullKey",
        };
        f.debug_tuple(variant).finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    extern crate std;

    use std::format;
    use std::string::ToString;

    use super::*;

    /// No `Debug` on purpose: the error's `Debug` must not need it.
    struct Opaque(u8);

    #[test]
    fn messages() {
        assert_eq!(
            InsertError::Full(Opaque(0)).to_string(),
            "map is full: every slot holds a key; a larger capacity N is needed"
        );
        assert_eq!(InsertError::Exists(Opaque(0)).to_string(), "key already present");
        assert_eq!(InsertError::NullKey(Opaque(0)).to_string(), "the null key cannot be inserted");
    }

    #[test]
    fn debug_shows_variant_only() {
        assert_eq!(format!("{:?}", InsertError::Full(Opaque(1))), "Full(..)");
        assert_eq!(format!("{:?}", InsertError::Exists(Opaque(1))), "Exists(..)");
        assert_eq!(format!("{:?}", InsertError::NullKey(Opaque(1))), "NullKey(..)");
    }

    #[test]
    fn into_value() {
        assert_eq!(InsertError::Full(Opaque(1)).into_value().0, 1);
        assert_eq!(InsertError::Exists(Opaque(2)).into_value().0, 2);
        assert_eq!(InsertError::NullKey(Opaque(3)).into_value().0, 3);
    }

    #[test]
    fn is_an_error() {
        fn source_of(error: &dyn core::error::Error) -> bool {
            error.source().is_some()
        }
        assert!(!source_of(&InsertError::Full(Opaque(0))));
    }
}
