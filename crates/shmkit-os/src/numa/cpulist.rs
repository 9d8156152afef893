//! [`CpuList`]: the Linux CPU list syntax (`0-3,8,10-14:2`) of sysfs, `taskset -c` and shmkit's
//! CLI, and [`format_ids`] for sets of CPU or node ids in messages.

use std::fmt;
use std::iter::Copied;
use std::ops::RangeInclusive;
use std::slice;
use std::str::FromStr;

use crate::error::{Error, Result};

/// The most entries a parsed [`CpuList`] may have.
///
/// A list is text from a user or a file, and `"0-4000000000"` is four characters of range syntax
/// away from gigabytes of memory; no machine has anywhere near this many CPUs.
pub const MAX_CPU_LIST_LEN: usize = 65_536;

/// An ordered list of CPU (or node) ids, as written in the Linux CPU list syntax.
///
/// The text is comma-separated items, each `N`, `A-B` (A to B inclusive) or `A-B:S` (A, A+S,
/// A+2S, ... up to B; S at least 1). Order and duplicates are kept, because a list given to shmkit
/// names one CPU per part of a multi-part region. Whitespace around items and a trailing newline
/// (as in every sysfs file) are ignored; an empty or blank text is an empty list (the `cpulist` of
/// a node without CPUs).
///
/// Display writes the compact form that parses back to the same list: runs of consecutive
/// ascending ids become `A-B`, everything else is written one by one.
///
/// # Errors
///
/// Parsing fails with [`Error::InvalidInput`] (`what` is `"CPU list"`) naming the bad item and
/// its byte offset: an empty item, something that is not a decimal number, a number above
/// `u32::MAX`, a reversed range, a zero stride, a stride without a range, or a list that would be
/// longer than [`MAX_CPU_LIST_LEN`].
///
/// # Examples
///
/// ```
/// use shmkit_os::numa::CpuList;
///
/// let list: CpuList = "0-4:2,10,9-11".parse()?;
/// assert_eq!(list.as_slice(), [0, 2, 4, 10, 9, 10, 11]);
/// assert_eq!(list.len(), 7);
/// assert_eq!(list.to_string(), "0,2,4,10,9-11");
///
/// // sysfs files end with a newline; a node without CPUs has an empty list.
/// assert_eq!("0-3\n".parse::<CpuList>()?.as_slice(), [0, 1, 2, 3]);
/// assert!("\n".parse::<CpuList>()?.is_empty());
///
/// let error = "1,5-3".parse::<CpuList>().unwrap_err();
/// assert_eq!(
///     error.to_string(),
///     r#"invalid CPU list: item "5-3" at byte 2: start 5 is greater than end 3"#
/// );
/// # Ok::<(), shmkit_os::Error>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct CpuList {
    ids: Vec<u32>,
}

impl CpuList {
    /// An empty list.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(shmkit_os::numa::CpuList::new().is_empty());
    /// ```
    pub const fn new() -> Self {
        Self { ids: Vec::new() }
    }

    /// The ids, in list order.
    ///
    /// # Examples
    ///
    /// ```
    /// let list: shmkit_os::numa::CpuList = "3,1".parse()?;
    /// assert_eq!(list.as_slice(), [3, 1]);
    /// # Ok::<(), shmkit_os::Error>(())
    /// ```
    pub fn as_slice(&self) -> &[u32] {
        &self.ids
    }

    /// The ids, in list order.
    ///
    /// # Examples
    ///
    /// ```
    /// let list: shmkit_os::numa::CpuList = "0-6:3".parse()?;
    /// assert_eq!(list.iter().collect::<Vec<_>>(), [0, 3, 6]);
    /// # Ok::<(), shmkit_os::Error>(())
    /// ```
    pub fn iter(&self) -> Copied<slice::Iter<'_, u32>> {
        self.ids.iter().copied()
    }

    /// How many entries the list has, duplicates included.
    ///
    /// # Examples
    ///
    /// ```
    /// let list: shmkit_os::numa::CpuList = "1,1,2".parse()?;
    /// assert_eq!(list.len(), 3);
    /// # Ok::<(), shmkit_os::Error>(())
    /// ```
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether the list has no entries.
    ///
    /// # Examples
    ///
    /// ```
    /// let list: shmkit_os::numa::CpuList = "".parse()?;
    /// assert!(list.is_empty());
    /// # Ok::<(), shmkit_os::Error>(())
    /// ```
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Whether `id` is in the list.
    ///
    /// # Examples
    ///
    /// ```
    /// let list: shmkit_os::numa::CpuList = "0-3".parse()?;
    /// assert!(list.contains(3));
    /// assert!(!list.contains(4));
    /// # Ok::<(), shmkit_os::Error>(())
    /// ```
    pub fn contains(&self, id: u32) -> bool {
        self.ids.contains(&id)
    }
}

impl FromStr for CpuList {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self> {
        let mut ids = Vec::new();
        if text.trim().is_empty() {
            return Ok(Self { ids });
        }
        let mut item_start = 0;
        for raw in text.split(',') {
            let trimmed = raw.trim_start();
            let offset = item_start + (raw.len() - trimmed.len());
            let item = trimmed.trim_end();
            if item.is_empty() {
                return Err(invalid(format!("empty item at byte {item_start}")));
            }
            let bad = |why: String| invalid(format!("item \"{item}\" at byte {offset}: {why}"));
            let range = Item::parse(item).map_err(bad)?;
            if range.len() > (MAX_CPU_LIST_LEN - ids.len()) as u64 {
                return Err(bad(format!(
                    "the list would have more than {MAX_CPU_LIST_LEN} entries"
                )));
            }
            ids.extend(range.ids());
            item_start += raw.len() + 1;
        }
        Ok(Self { ids })
    }
}

impl fmt::Display for CpuList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut rest = self.ids.as_slice();
        let mut separator = "";
        while let Some(&first) = rest.first() {
            let run =
                rest.windows(2).take_while(|pair| pair[0].checked_add(1) == Some(pair[1])).count();
            f.write_str(separator)?;
            if run == 0 {
                write!(f, "{first}")?;
            } else {
                write!(f, "{first}-{}", rest[run])?;
            }
            separator = ",";
            rest = &rest[run + 1..];
        }
        Ok(())
    }
}

impl FromIterator<u32> for CpuList {
    fn from_iter<I: IntoIterator<Item = u32>>(ids: I) -> Self {
        Self { ids: ids.into_iter().collect() }
    }
}

impl From<Vec<u32>> for CpuList {
    fn from(ids: Vec<u32>) -> Self {
        Self { ids }
    }
}

impl<'a> IntoIterator for &'a CpuList {
    type Item = u32;
    type IntoIter = Copied<slice::Iter<'a, u32>>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

/// Formats a set of CPU or node ids for a message: sorted, without duplicates, in the compact
/// list syntax (`"0-1,4"`), or `"none"` for an empty set.
///
/// # Examples
///
/// ```
/// use shmkit_os::numa::format_ids;
///
/// assert_eq!(format_ids([4, 1, 0, 1]), "0-1,4");
/// assert_eq!(format_ids([0]), "0");
/// assert_eq!(format_ids([]), "none");
/// ```
pub fn format_ids(ids: impl IntoIterator<Item = u32>) -> String {
    let mut ids: Vec<u32> = ids.into_iter().collect();
    if ids.is_empty() {
        return "none".to_owned();
    }
    ids.sort_unstable();
    ids.dedup();
    CpuList::from(ids).to_string()
}

/// One item of a list: `first..=last` every `stride`.
struct Item {
    first: u32,
    last: u32,
    stride: u32,
}

impl Item {
    /// Parses `N`, `A-B` or `A-B:S`; the error is the reason, without the item.
    fn parse(item: &str) -> Result<Self, String> {
        let (range, stride) = match item.split_once(':') {
            Some((range, stride)) => (range, Some(number(stride)?)),
            None => (item, None),
        };
        let (first, last) = match range.split_once('-') {
            Some((first, last)) => (number(first)?, number(last)?),
            None if stride.is_some() => {
                return Err("a stride needs a range (A-B:S)".to_owned());
            }
            None => {
                let id = number(range)?;
                (id, id)
            }
        };
        if first > last {
            return Err(format!("start {first} is greater than end {last}"));
        }
        let stride = stride.unwrap_or(1);
        if stride == 0 {
            return Err("the stride must be at least 1".to_owned());
        }
        Ok(Self { first, last, stride })
    }

    /// How many ids the item stands for, computed without producing them.
    fn len(&self) -> u64 {
        u64::from((self.last - self.first) / self.stride) + 1
    }

    fn ids(&self) -> std::iter::StepBy<RangeInclusive<u32>> {
        // u32 fits in usize on every target Linux runs on (32 and 64 bits).
        (self.first..=self.last).step_by(self.stride as usize)
    }
}

/// A decimal `u32`, digits only (`str::parse` would also take a leading `+`).
fn number(text: &str) -> Result<u32, String> {
    if text.is_empty() {
        return Err("a number is missing".to_owned());
    }
    if !text.bytes().all(|byte| byte.is_ascii_digit()) {
        return Err(format!("\"{text}\" is not a number"));
    }
    text.parse().map_err(|_| format!("{text} is larger than the largest id {}", u32::MAX))
}

fn invalid(reason: String) -> Error {
    Error::invalid("CPU list", reason)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Vec<u32> {
        match text.parse::<CpuList>() {
            Ok(list) => list.ids,
            Err(error) => panic!("{text:?} did not parse: {error}"),
        }
    }

    fn error(text: &str) -> String {
        match text.parse::<CpuList>() {
            Ok(list) => panic!("{text:?} parsed as {:?}", list.ids),
            Err(error) => error.to_string(),
        }
    }

    #[test]
    fn parses_the_documented_example() {
        assert_eq!(parse("0-4:2,10,9-11"), [0, 2, 4, 10, 9, 10, 11]);
    }

    #[test]
    fn parses_single_ids_ranges_and_strides() {
        assert_eq!(parse("7"), [7]);
        assert_eq!(parse("0-3"), [0, 1, 2, 3]);
        assert_eq!(parse("5-5"), [5]);
        assert_eq!(parse("0-10:3"), [0, 3, 6, 9]);
        assert_eq!(parse("0-9:3"), [0, 3, 6, 9]);
        assert_eq!(parse("2-3:5"), [2]);
        assert_eq!(parse("4-6:1"), [4, 5, 6]);
        assert_eq!(parse("007"), [7]);
    }

    #[test]
    fn keeps_order_and_duplicates() {
        assert_eq!(parse("3,1,3,0"), [3, 1, 3, 0]);
        assert_eq!(parse("1,1"), [1, 1]);
    }

    #[test]
    fn reaches_u32_max_without_overflow() {
        assert_eq!(parse("4294967294-4294967295"), [u32::MAX - 1, u32::MAX]);
        assert_eq!(parse("4294967290-4294967295:4"), [u32::MAX - 5, u32::MAX - 1]);
        assert_eq!(
            CpuList::from(vec![u32::MAX - 1, u32::MAX]).to_string(),
            "4294967294-4294967295"
        );
    }

    #[test]
    fn tolerates_whitespace_around_items_and_sysfs_newlines() {
        assert_eq!(parse("0-1\n"), [0, 1]);
        assert_eq!(parse(" 0 , 2-3 \t,\n4\n"), [0, 2, 3, 4]);
        assert_eq!(parse(""), Vec::<u32>::new());
        assert_eq!(parse("\n"), Vec::<u32>::new());
        assert_eq!(parse("  "), Vec::<u32>::new());
    }

    #[test]
    fn refuses_empty_items() {
        assert_eq!(error("1,,2"), "invalid CPU list: empty item at byte 2");
        assert_eq!(error(",1"), "invalid CPU list: empty item at byte 0");
        assert_eq!(error("1,"), "invalid CPU list: empty item at byte 2");
        assert_eq!(error("1, ,2"), "invalid CPU list: empty item at byte 2");
    }

    #[test]
    fn refuses_reversed_ranges() {
        assert_eq!(
            error("5-3"),
            r#"invalid CPU list: item "5-3" at byte 0: start 5 is greater than end 3"#
        );
        assert_eq!(
            error("0, 9-1:2"),
            r#"invalid CPU list: item "9-1:2" at byte 3: start 9 is greater than end 1"#
        );
    }

    #[test]
    fn refuses_bad_strides() {
        assert_eq!(
            error("0-4:0"),
            r#"invalid CPU list: item "0-4:0" at byte 0: the stride must be at least 1"#
        );
        assert_eq!(
            error("4:2"),
            r#"invalid CPU list: item "4:2" at byte 0: a stride needs a range (A-B:S)"#
        );
        assert_eq!(
            error("0-4:"),
            r#"invalid CPU list: item "0-4:" at byte 0: a number is missing"#
        );
        assert_eq!(
            error("0-4:2:1"),
            r#"invalid CPU list: item "0-4:2:1" at byte 0: "2:1" is not a number"#
        );
    }

    #[test]
    fn refuses_non_numbers() {
        assert_eq!(error("a"), r#"invalid CPU list: item "a" at byte 0: "a" is not a number"#);
        assert_eq!(error("1,+2"), r#"invalid CPU list: item "+2" at byte 2: "+2" is not a number"#);
        assert_eq!(error("-3"), r#"invalid CPU list: item "-3" at byte 0: a number is missing"#);
        assert_eq!(error("3-"), r#"invalid CPU list: item "3-" at byte 0: a number is missing"#);
        assert_eq!(
            error("1-2-3"),
            r#"invalid CPU list: item "1-2-3" at byte 0: "2-3" is not a number"#
        );
        assert_eq!(
            error("1 2"),
            r#"invalid CPU list: item "1 2" at byte 0: "1 2" is not a number"#
        );
        assert_eq!(error("0,é"), r#"invalid CPU list: item "é" at byte 2: "é" is not a number"#);
    }

    #[test]
    fn refuses_overflow() {
        assert_eq!(
            error("4294967296"),
            r#"invalid CPU list: item "4294967296" at byte 0: 4294967296 is larger than the largest id 4294967295"#
        );
        assert_eq!(
            error("0-99999999999999999999999"),
            "invalid CPU list: item \"0-99999999999999999999999\" at byte 0: \
             99999999999999999999999 is larger than the largest id 4294967295"
        );
    }

    #[test]
    fn refuses_lists_longer_than_the_maximum() {
        assert_eq!(
            error("0-4000000000"),
            r#"invalid CPU list: item "0-4000000000" at byte 0: the list would have more than 65536 entries"#
        );
        assert_eq!(parse("0-65535").len(), MAX_CPU_LIST_LEN);
        assert_eq!(
            error("0-65535,0"),
            r#"invalid CPU list: item "0" at byte 8: the list would have more than 65536 entries"#
        );
        assert_eq!(parse("0-131071:2").len(), MAX_CPU_LIST_LEN);
    }

    #[test]
    fn displays_compactly_and_round_trips() {
        for (text, shown) in [
            ("", ""),
            ("0", "0"),
            ("0-1", "0-1"),
            ("0,1,2,3", "0-3"),
            ("0-4:2,10,9-11", "0,2,4,10,9-11"),
            ("3,2,1", "3,2,1"),
            ("1,1,2", "1,1-2"),
            ("0-3,4-7", "0-7"),
            ("8-9,0-1", "8-9,0-1"),
        ] {
            let list: CpuList = text.parse().unwrap_or_default();
            assert_eq!(list.to_string(), shown, "display of {text:?}");
            assert_eq!(parse(shown), list.ids, "round trip of {text:?}");
        }
    }

    #[test]
    fn formats_id_sets_for_messages() {
        assert_eq!(format_ids([0]), "0");
        assert_eq!(format_ids([1, 0]), "0-1");
        assert_eq!(format_ids([4, 0, 1, 1]), "0-1,4");
        assert_eq!(format_ids([0, 2]), "0,2");
        assert_eq!(format_ids(Vec::new()), "none");
    }
}
