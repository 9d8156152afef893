//! Where hugetlbfs regions live: `BASE/.huge` and `BASE/.gigantic`, with `BASE` from
//! `SHMKIT_PATH` (default `/mnt/.shmkit`), each a hugetlbfs mount found in `/proc/self/mounts` by
//! its `pagesize=` option.

use std::path::PathBuf;

use shmkit_name::{DEFAULT_HUGETLBFS_BASE, HUGETLBFS_BASE_ENV, PageSize};

use crate::error::{Error, Result};

/// The folder holding the `.huge` and `.gigantic` mounts: `$SHMKIT_PATH`, or `/mnt/.shmkit`.
pub fn base_dir() -> PathBuf {
    std::env::var_os(HUGETLBFS_BASE_ENV)
        .filter(|path| !path.is_empty())
        .map_or_else(|| PathBuf::from(DEFAULT_HUGETLBFS_BASE), PathBuf::from)
}

/// One hugetlbfs mount of this machine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HugetlbfsMount {
    /// Where it is mounted.
    pub path: PathBuf,
    /// The page size from its `pagesize=` option, when it is one shmkit knows.
    pub page_size: Option<PageSize>,
    /// The `pagesize=` value as the kernel wrote it (`2M`, `1024M`, `1G`).
    pub page_size_option: String,
}

/// Every hugetlbfs mount in `/proc/self/mounts`.
pub fn hugetlbfs_mounts() -> Result<Vec<HugetlbfsMount>> {
    let text = std::fs::read_to_string("/proc/self/mounts")
        .map_err(Error::io("read", "/proc/self/mounts"))?;
    Ok(parse_mounts(&text))
}

/// The hugetlbfs mounts listed in a `/proc/mounts`-format text.
pub fn parse_mounts(text: &str) -> Vec<HugetlbfsMount> {
    text.lines()
        .filter_map(|line| {
            let mut fields = line.split_ascii_whitespace();
            let (_source, path, fstype, options) =
                (fields.next()?, fields.next()?, fields.next()?, fields.next()?);
            if fstype != "hugetlbfs" {
                return None;
            }
            let page_size_option = options
                .split(',')
                .find_map(|option| option.strip_prefix("pagesize="))
                .unwrap_or("2M")
                .to_owned();
            let page_size = parse_kernel_size(&page_size_option)
                .and_then(|bytes| PageSize::from_bytes(bytes).ok());
            Some(HugetlbfsMount {
                path: PathBuf::from(unescape_mount_path(path)),
                page_size,
                page_size_option,
            })
        })
        .collect()
}

/// `2M`, `1024M`, `1G`, `4K` or a plain byte count, as the kernel writes sizes in mount options.
fn parse_kernel_size(text: &str) -> Option<u64> {
    let (digits, shift) = match text.as_bytes().last()? {
        b'K' | b'k' => (&text[..text.len() - 1], 10),
        b'M' | b'm' => (&text[..text.len() - 1], 20),
        b'G' | b'g' => (&text[..text.len() - 1], 30),
        _ => (text, 0),
    };
    digits.parse::<u64>().ok()?.checked_mul(1 << shift)
}

/// `/proc/mounts` escapes space, tab, newline and backslash as three octal digits.
fn unescape_mount_path(path: &str) -> String {
    let bytes = path.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] == b'\\'
            && let Some(octal) = bytes.get(index + 1..index + 4)
            && let Ok(text) = std::str::from_utf8(octal)
            && let Ok(byte) = u8::from_str_radix(text, 8)
        {
            out.push(byte);
            index += 4;
            continue;
        }
        out.push(bytes[index]);
        index += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The folder for regions of `page_size`: `/dev/shm` for normal pages, else `BASE/.huge` or
/// `BASE/.gigantic`, which must be a hugetlbfs mount of that page size. Checked with one `statfs`
/// of the folder (its `f_type` and block size), which says the same as its `/proc/self/mounts`
/// line at a fraction of the cost, so that opening a region stays as cheap as a plain `open`.
pub fn region_dir(page_size: PageSize) -> Result<PathBuf> {
    let Some(sub) = page_size.hugetlbfs_dir() else {
        return Ok(PathBuf::from(POSIX_SHM_DIR));
    };
    let path = base_dir().join(sub);
    let missing = || Error::NoHugetlbfsMount { page_size, path: path.display().to_string() };
    let statfs = rustix::fs::statfs(&path).map_err(|_| missing())?;
    match page_size_of_statfs(&statfs, &path.display().to_string()) {
        Ok(found) if found == page_size => Ok(path),
        _ => Err(missing()),
    }
}

/// `HUGETLBFS_MAGIC` of `<linux/magic.h>`, the `f_type` of a hugetlbfs mount.
const HUGETLBFS_MAGIC: u64 = 0x9584_58f6;

/// The page size of the filesystem `statfs` describes: its block size on hugetlbfs, normal pages
/// anywhere else.
pub(crate) fn page_size_of_statfs(statfs: &rustix::fs::StatFs, label: &str) -> Result<PageSize> {
    #[allow(clippy::useless_conversion, reason = "f_type's width differs between architectures")]
    let fs_type = u64::try_from(statfs.f_type).unwrap_or(0);
    if fs_type != HUGETLBFS_MAGIC {
        return Ok(PageSize::Normal);
    }
    #[allow(clippy::useless_conversion, reason = "f_bsize's width differs between architectures")]
    let block = u64::try_from(statfs.f_bsize).unwrap_or(0);
    PageSize::from_bytes(block).map_err(|error| {
        Error::invalid("file system", format!("{label} is on a hugetlbfs with {error}"))
    })
}

/// Where Linux keeps POSIX shared memory objects.
pub const POSIX_SHM_DIR: &str = "/dev/shm";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_hugetlbfs_mounts_and_their_page_sizes() {
        let text = "\
proc /proc proc rw,nosuid 0 0
none /mnt/.shmkit/.huge hugetlbfs rw,relatime,pagesize=2M 0 0
none /mnt/.shmkit/.gigantic hugetlbfs rw,relatime,pagesize=1024M 0 0
hugetlbfs /dev/hugepages hugetlbfs rw,relatime 0 0
none /mnt/with\\040space hugetlbfs rw,pagesize=1G 0 0
none /mnt/odd hugetlbfs rw,pagesize=64K 0 0
";
        let mounts = parse_mounts(text);
        let found: Vec<_> =
            mounts.iter().map(|m| (m.path.to_str().unwrap_or(""), m.page_size)).collect();
        assert_eq!(
            found,
            [
                ("/mnt/.shmkit/.huge", Some(PageSize::Huge)),
                ("/mnt/.shmkit/.gigantic", Some(PageSize::Gigantic)),
                ("/dev/hugepages", Some(PageSize::Huge)),
                ("/mnt/with space", Some(PageSize::Gigantic)),
                ("/mnt/odd", None),
            ]
        );
        assert_eq!(mounts[1].page_size_option, "1024M");
    }

    #[test]
    fn kernel_sizes() {
        assert_eq!(parse_kernel_size("2M"), Some(2 << 20));
        assert_eq!(parse_kernel_size("1G"), Some(1 << 30));
        assert_eq!(parse_kernel_size("4096"), Some(4096));
        assert_eq!(parse_kernel_size("M"), None);
        assert_eq!(parse_kernel_size("99999999999999999999G"), None);
    }
}
