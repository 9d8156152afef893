//! [`PageSize`]: the three page sizes a region can live on, and [`PageSizeError`].

use core::fmt;
use core::str::FromStr;

/// The size of the pages backing a region, as on x86-64 Linux.
///
/// Parses (any ASCII case) from its name (`normal`, `huge`, `gigantic`), the kernel's spelling
/// (`4K`, `2M`, `1G`) or a decimal byte count (`4096`, `2097152`, `1073741824`); displays as its
/// name.
///
/// # Examples
///
/// ```
/// use shmkit_name::PageSize;
///
/// let huge: PageSize = "huge".parse()?;
/// assert_eq!(huge, PageSize::Huge);
/// assert_eq!("2M".parse::<PageSize>()?, huge);
/// assert_eq!("2097152".parse::<PageSize>()?, huge);
/// assert_eq!(huge.bytes(), 2 * 1024 * 1024);
/// assert_eq!(huge.log2(), 21);
/// assert_eq!(huge.to_string(), "huge");
/// assert_eq!(PageSize::from_bytes(4096)?, PageSize::Normal);
/// # Ok::<(), shmkit_name::PageSizeError>(())
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum PageSize {
    /// 4 KiB pages: `/dev/shm`, memfd, plain files.
    #[default]
    Normal,
    /// 2 MiB huge pages, from a hugetlbfs mount or transparent huge pages.
    Huge,
    /// 1 GiB gigantic pages, from a hugetlbfs mount.
    Gigantic,
}

/// Why a page size was refused.
///
/// # Examples
///
/// ```
/// use shmkit_name::{PageSize, PageSizeError};
///
/// let error = PageSize::from_bytes(4097).unwrap_err();
/// assert_eq!(error, PageSizeError::UnsupportedBytes { bytes: 4097 });
/// assert_eq!(error.to_string(), "4097 bytes is not a page size: use 4096, 2097152 or 1073741824");
///
/// let error = "big".parse::<PageSize>().unwrap_err();
/// assert_eq!(error.to_string(), r#"unknown page size "big": use normal, huge or gigantic"#);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PageSizeError {
    /// A string that is neither a name, a kernel spelling nor a page size in bytes.
    #[error("unknown page size \"{input}\": use normal, huge or gigantic")]
    Unknown {
        /// The start of the refused string.
        input: InputExcerpt,
    },
    /// A byte count that is not one of the three page sizes.
    #[error("{bytes} bytes is not a page size: use 4096, 2097152 or 1073741824")]
    UnsupportedBytes {
        /// The byte count.
        bytes: u64,
    },
    /// A base-2 logarithm that is not one of the three page sizes'.
    #[error("log2 {log2} is not a page size: use 12, 21 or 30")]
    UnsupportedLog2 {
        /// The logarithm.
        log2: u32,
    },
}

/// The first [`InputExcerpt::CAPACITY`] bytes (whole characters) of a refused string, kept
/// inline so that [`PageSizeError`] needs no allocation.
///
/// Displays with Rust string escapes (so a newline or quote in the input cannot garble a
/// message) and `...` if the input was cut.
///
/// # Examples
///
/// ```
/// use shmkit_name::{PageSize, PageSizeError};
///
/// let Err(PageSizeError::Unknown { input }) = "a page size of twelve".parse::<PageSize>() else {
///     panic!("should be refused");
/// };
/// assert_eq!(input.as_str(), "a page size of t");
/// assert!(input.is_truncated());
/// assert_eq!(input.to_string(), "a page size of t...");
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct InputExcerpt {
    bytes: [u8; InputExcerpt::CAPACITY],
    len: u8,
    truncated: bool,
}

impl PageSize {
    /// Every page size, smallest first.
    pub const ALL: [Self; 3] = [Self::Normal, Self::Huge, Self::Gigantic];

    /// The page size in bytes: 4096, 2097152 or 1073741824.
    pub const fn bytes(self) -> usize {
        1 << self.log2()
    }

    /// The base-2 logarithm of [`PageSize::bytes`]: 12, 21 or 30.
    pub const fn log2(self) -> u32 {
        match self {
            Self::Normal => 12,
            Self::Huge => 21,
            Self::Gigantic => 30,
        }
    }

    /// The page size of `bytes` bytes.
    ///
    /// # Errors
    ///
    /// [`PageSizeError::UnsupportedBytes`] unless `bytes` is 4096, 2097152 or 1073741824.
    pub const fn from_bytes(bytes: u64) -> Result<Self, PageSizeError> {
        if bytes.is_power_of_two()
            && let Ok(size) = Self::from_log2(bytes.trailing_zeros())
        {
            return Ok(size);
        }
        Err(PageSizeError::UnsupportedBytes { bytes })
    }

    /// The page size of `1 << log2` bytes.
    ///
    /// # Errors
    ///
    /// [`PageSizeError::UnsupportedLog2`] unless `log2` is 12, 21 or 30.
    ///
    /// # Examples
    ///
    /// ```
    /// use shmkit_name::PageSize;
    ///
    /// assert_eq!(PageSize::from_log2(30), Ok(PageSize::Gigantic));
    /// assert!(PageSize::from_log2(13).is_err());
    /// ```
    pub const fn from_log2(log2: u32) -> Result<Self, PageSizeError> {
        match log2 {
            12 => Ok(Self::Normal),
            21 => Ok(Self::Huge),
            30 => Ok(Self::Gigantic),
            _ => Err(PageSizeError::UnsupportedLog2 { log2 }),
        }
    }

    /// The name: `"normal"`, `"huge"` or `"gigantic"`.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Normal => "normal",
            Self::Huge => "huge",
            Self::Gigantic => "gigantic",
        }
    }

    /// The kernel's spelling, as in `hugepagesz=2M`.
    const fn kernel_name(self) -> &'static str {
        match self {
            Self::Normal => "4K",
            Self::Huge => "2M",
            Self::Gigantic => "1G",
        }
    }

    /// The folder under the hugetlbfs base (see [`crate::DEFAULT_HUGETLBFS_BASE`]) where a
    /// hugetlbfs with this page size is mounted: `.huge` or `.gigantic`; `None` for
    /// [`PageSize::Normal`], which needs no hugetlbfs.
    ///
    /// # Examples
    ///
    /// ```
    /// use shmkit_name::PageSize;
    ///
    /// assert_eq!(PageSize::Normal.hugetlbfs_dir(), None);
    /// assert_eq!(PageSize::Gigantic.hugetlbfs_dir(), Some(".gigantic"));
    /// ```
    pub const fn hugetlbfs_dir(self) -> Option<&'static str> {
        match self {
            Self::Normal => None,
            Self::Huge => Some(".huge"),
            Self::Gigantic => Some(".gigantic"),
        }
    }
}

impl fmt::Display for PageSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.name())
    }
}

impl FromStr for PageSize {
    type Err = PageSizeError;

    /// Exact match only: no surrounding spaces, no sign, no unit other than the kernel's.
    fn from_str(text: &str) -> Result<Self, PageSizeError> {
        if let Some(size) = Self::ALL.into_iter().find(|size| {
            text.eq_ignore_ascii_case(size.name()) || text.eq_ignore_ascii_case(size.kernel_name())
        }) {
            return Ok(size);
        }
        // `u64::from_str` would also take a leading `+`.
        if !text.is_empty()
            && text.bytes().all(|byte| byte.is_ascii_digit())
            && let Ok(bytes) = text.parse()
        {
            return Self::from_bytes(bytes);
        }
        Err(PageSizeError::Unknown { input: InputExcerpt::new(text) })
    }
}

impl InputExcerpt {
    /// The most bytes kept.
    pub const CAPACITY: usize = 16;

    fn new(text: &str) -> Self {
        let mut excerpt = Self { bytes: [0; Self::CAPACITY], len: 0, truncated: false };
        let mut len = 0;
        for ch in text.chars() {
            let end = len + ch.len_utf8();
            let Some(slot) = excerpt.bytes.get_mut(len..end) else {
                excerpt.truncated = true;
                break;
            };
            ch.encode_utf8(slot);
            len = end;
        }
        excerpt.len = len as u8;
        excerpt
    }

    /// The kept start of the input.
    pub fn as_str(&self) -> &str {
        let kept = self.bytes.get(..usize::from(self.len)).unwrap_or_default();
        // Always valid: `new` copied whole characters. The fallback keeps this panic-free.
        core::str::from_utf8(kept).unwrap_or_default()
    }

    /// Whether the input was longer than what is kept.
    pub const fn is_truncated(&self) -> bool {
        self.truncated
    }
}

impl fmt::Display for InputExcerpt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.as_str().escape_debug(), f)?;
        if self.truncated {
            f.write_str("...")?;
        }
        Ok(())
    }
}

impl fmt::Debug for InputExcerpt {
    /// `InputExcerpt("text")`, followed by `...` if the input was cut.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "InputExcerpt({:?}{})", self.as_str(), if self.truncated { "..." } else { "" })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(PageSize::ALL.map(PageSize::bytes), [4096, 2 * 1024 * 1024, 1024 * 1024 * 1024]);
        assert_eq!(PageSize::ALL.map(PageSize::log2), [12, 21, 30]);
        assert_eq!(PageSize::ALL.map(PageSize::name), ["normal", "huge", "gigantic"]);
        assert_eq!(
            PageSize::ALL.map(PageSize::hugetlbfs_dir),
            [None, Some(".huge"), Some(".gigantic")]
        );
        assert_eq!(PageSize::ALL.map(|size| size as u8), [0, 1, 2]);
        assert_eq!(PageSize::default(), PageSize::Normal);
        assert!(PageSize::Normal < PageSize::Huge && PageSize::Huge < PageSize::Gigantic);
    }

    #[test]
    fn numeric_conversions_round_trip_and_refuse_the_rest() {
        for size in PageSize::ALL {
            assert_eq!(PageSize::from_bytes(size.bytes() as u64), Ok(size));
            assert_eq!(PageSize::from_log2(size.log2()), Ok(size));
        }
        for bytes in
            [0, 1, 2048, 4095, 4097, 8192, 1 << 20, (1 << 21) + 1, 1 << 31, 1 << 63, u64::MAX]
        {
            assert_eq!(PageSize::from_bytes(bytes), Err(PageSizeError::UnsupportedBytes { bytes }));
        }
        for log2 in [0, 11, 13, 20, 22, 29, 31, 64, u32::MAX] {
            assert_eq!(PageSize::from_log2(log2), Err(PageSizeError::UnsupportedLog2 { log2 }));
        }
    }

    #[test]
    fn every_spelling_parses() {
        let spellings = [
            (PageSize::Normal, ["normal", "NORMAL", "Normal", "4K", "4k", "4096"]),
            (PageSize::Huge, ["huge", "HUGE", "hUgE", "2M", "2m", "2097152"]),
            (PageSize::Gigantic, ["gigantic", "GIGANTIC", "Gigantic", "1G", "1g", "1073741824"]),
        ];
        for (size, texts) in spellings {
            for text in texts {
                assert_eq!(text.parse(), Ok(size), "{text:?}");
            }
            assert_eq!(size.to_string().parse(), Ok(size));
        }
        assert_eq!("0004096".parse(), Ok(PageSize::Normal));
    }

    #[test]
    fn refused_strings() {
        for text in [
            "", " huge", "huge ", "hug", "huges", "+4096", "-4096", "4 K", "4KB", "2MiB", "1T", "é",
        ] {
            let Err(PageSizeError::Unknown { input }) = text.parse::<PageSize>() else {
                panic!("{text:?} should be unknown");
            };
            assert_eq!(input.as_str(), text);
            assert!(!input.is_truncated());
        }
        assert_eq!(
            "4097".parse::<PageSize>(),
            Err(PageSizeError::UnsupportedBytes { bytes: 4097 })
        );
        // Too big for u64: not a number we can name, so unknown.
        assert!(matches!(
            "99999999999999999999".parse::<PageSize>(),
            Err(PageSizeError::Unknown { .. })
        ));
    }

    #[test]
    fn excerpts_keep_whole_characters() {
        let excerpt = InputExcerpt::new("0123456789abcdef");
        assert_eq!((excerpt.as_str(), excerpt.is_truncated()), ("0123456789abcdef", false));
        let excerpt = InputExcerpt::new("0123456789abcdefg");
        assert_eq!((excerpt.as_str(), excerpt.is_truncated()), ("0123456789abcdef", true));
        // 'é' is two bytes and would end at byte 17.
        let excerpt = InputExcerpt::new("0123456789abcdeé");
        assert_eq!((excerpt.as_str(), excerpt.is_truncated()), ("0123456789abcde", true));
        let excerpt = InputExcerpt::new("😀😀😀😀😀");
        assert_eq!((excerpt.as_str(), excerpt.is_truncated()), ("😀😀😀😀", true));
    }

    #[test]
    fn error_messages() {
        let message = |text: &str| text.parse::<PageSize>().map_err(|error| error.to_string());
        assert_eq!(
            message("x"),
            Err(r#"unknown page size "x": use normal, huge or gigantic"#.to_owned())
        );
        assert_eq!(
            message("a\"b\n"),
            Err(r#"unknown page size "a\"b\n": use normal, huge or gigantic"#.to_owned())
        );
        assert_eq!(
            message("0123456789abcdefXYZ"),
            Err(r#"unknown page size "0123456789abcdef...": use normal, huge or gigantic"#
                .to_owned())
        );
        assert_eq!(
            message("4097"),
            Err("4097 bytes is not a page size: use 4096, 2097152 or 1073741824".to_owned())
        );
        assert_eq!(
            PageSize::from_log2(13).map_err(|error| error.to_string()),
            Err("log2 13 is not a page size: use 12, 21 or 30".to_owned())
        );
        assert_eq!(
            format!("{:?} {:?}", InputExcerpt::new("ab"), InputExcerpt::new(&"x".repeat(17))),
            r#"InputExcerpt("ab") InputExcerpt("xxxxxxxxxxxxxxxx"...)"#
        );
    }
}
