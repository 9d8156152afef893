//! Who maps which region, on which NUMA nodes its mapped pages are, and its page size, for many
//! regions in one pass over `/proc/*/maps` and `/proc/*/numa_maps`.
//!
//! [`mappers`](super::mappers) answers for one file; [`scan`] reads each process once for any
//! number of files and System V segments (a listing of every region of the host asks for all of
//! them). A file is matched by its path (a file removed while mapped shows with ` (deleted)`, and
//! still counts); a System V segment by its id, which the kernel puts in the inode column of its
//! `/SYSV<key>` line.
//!
//! Placement comes from `numa_maps` (the `N<node>=<pages>` counts of the mapping with the same
//! start address as in `maps`): it is known only for regions some process maps, and counts the
//! pages that process has in its page tables. A region nobody maps has no known placement; this
//! module never maps a region to find out, which could allocate its pages.
//!
//! ```
//! use shmkit_name::{Name, PageSize};
//! use shmkit_os::list::usage::{self, Target};
//! use shmkit_os::{Access, MapOptions, Region, RegionOptions};
//!
//! let name = Name::new(&format!("doc-usage-{}", std::process::id()))?;
//! let info = RegionOptions::new().create(&name, 2)?;
//! let mapping = Region::open(&name, None, Access::ReadWrite)?.map(&MapOptions::new())?;
//! mapping.write_at(0, b"touched")?;
//!
//! let target = Target::file(&info.path);
//! let found = usage::scan(std::slice::from_ref(&target))?;
//! let usage = found.get(&target).ok_or("not mapped")?;
//! assert_eq!(usage.pids, [std::process::id()]);
//! assert_eq!(usage.page_size, Some(4096));
//! drop(mapping);
//! shmkit_os::unlink(&name, PageSize::Normal)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::path::Path;

use crate::error::{Error, Result};

/// What a region is matched by in `/proc/PID/maps`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Target {
    /// A file, by its path as the kernel shows it (see [`Target::file`]).
    File(String),
    /// A System V segment, by its id.
    SysV(i32),
}

impl Target {
    /// The file at `path`, resolved as the kernel resolves it in `maps` (symlinks followed, when
    /// the file is still there; newlines escaped as `\012`).
    pub fn file(path: &Path) -> Self {
        let path = fs::canonicalize(path).unwrap_or_else(|_| path.to_owned());
        Self::File(path.to_string_lossy().replace('\n', "\\012"))
    }
}

/// Pages of a region on one NUMA node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NodePages {
    /// The node.
    pub node: u32,
    /// Pages (of the region's page size) on it.
    pub pages: u64,
}

/// What [`scan`] found of one region.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    /// The processes that map it, ascending, each once.
    pub pids: Vec<u32>,
    /// Its mapped pages per node, from the process that has the most of them in its page tables;
    /// `None` when no mapper's `numa_maps` could be read.
    pub placement: Option<Vec<NodePages>>,
    /// The page size of its mappings in bytes (`kernelpagesize_kB`), when a mapper's
    /// `numa_maps` was read.
    pub page_size: Option<u64>,
}

/// Reads every process's `maps` (and, for those that map a target, its `numa_maps`): the
/// regions of `targets` that some process maps, with their mappers, placement and page size. A
/// target nobody maps is not in the answer.
///
/// Processes that cannot be read (another user's, without privilege) or that exit meanwhile are
/// left out, so the answer may be short for an unprivileged caller.
///
/// # Errors
///
/// [`Error::Os`] if `/proc` cannot be read.
pub fn scan(targets: &[Target]) -> Result<HashMap<Target, Usage>> {
    scan_with(targets, true)
}

/// [`scan`], reading `numa_maps` only when `placement` is asked for (it costs a walk of the
/// process's page tables).
pub(super) fn scan_with(targets: &[Target], placement: bool) -> Result<HashMap<Target, Usage>> {
    let mut found: HashMap<Target, Usage> = HashMap::new();
    if targets.is_empty() {
        return Ok(found);
    }
    let files: HashMap<&str, &Target> = targets
        .iter()
        .filter_map(|target| match target {
            Target::File(path) => Some((path.as_str(), target)),
            Target::SysV(_) => None,
        })
        .collect();
    let sysv: HashMap<i32, &Target> = targets
        .iter()
        .filter_map(|target| match target {
            Target::SysV(id) => Some((*id, target)),
            Target::File(_) => None,
        })
        .collect();
    // Per target: per pid, per node, pages.
    let mut nodes_of: HashMap<&Target, BTreeMap<u32, BTreeMap<u32, u64>>> = HashMap::new();
    for entry in fs::read_dir("/proc").map_err(Error::io("read_dir", "/proc"))?.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|name| name.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(maps) = fs::read_to_string(entry.path().join("maps")) else { continue };
        // Start address of each matching mapping, and what it maps.
        let mut matched: Vec<(u64, &Target)> = Vec::new();
        for line in maps.lines() {
            let Some(mapping) = MapsLine::parse(line) else { continue };
            let path = mapping.path.strip_suffix(" (deleted)").unwrap_or(mapping.path);
            let target = if let Some(target) = files.get(path) {
                Some(*target)
            } else if path.starts_with("/SYSV") {
                i32::try_from(mapping.inode).ok().and_then(|id| sysv.get(&id).copied())
            } else {
                None
            };
            if let Some(target) = target {
                matched.push((mapping.start, target));
            }
        }
        for (_, target) in &matched {
            let usage = found.entry((*target).clone()).or_default();
            if usage.pids.last() != Some(&pid) {
                usage.pids.push(pid);
            }
        }
        if matched.is_empty() || !placement {
            continue;
        }
        let Ok(numa_maps) = fs::read_to_string(entry.path().join("numa_maps")) else { continue };
        for line in numa_maps.lines() {
            let Some(numa) = NumaLine::parse(line) else { continue };
            for (_, target) in matched.iter().filter(|(start, _)| *start == numa.start) {
                let nodes = nodes_of.entry(target).or_default().entry(pid).or_default();
                for &(node, pages) in &numa.nodes {
                    *nodes.entry(node).or_default() += pages;
                }
                if let Some(usage) = found.get_mut(*target) {
                    usage.page_size = usage.page_size.or(numa.page_size);
                }
            }
        }
    }
    for (target, by_pid) in nodes_of {
        let best = by_pid.into_values().max_by_key(|nodes| nodes.values().sum::<u64>());
        if let (Some(usage), Some(nodes)) = (found.get_mut(target), best) {
            usage.placement =
                Some(nodes.into_iter().map(|(node, pages)| NodePages { node, pages }).collect());
        }
    }
    for usage in found.values_mut() {
        usage.pids.sort_unstable();
        usage.pids.dedup();
    }
    Ok(found)
}

/// One line of `/proc/PID/maps`: start address, inode, path.
struct MapsLine<'a> {
    start: u64,
    inode: u64,
    path: &'a str,
}

impl<'a> MapsLine<'a> {
    /// `start-end perms offset dev inode path`; `None` for an anonymous mapping or a bad line.
    fn parse(line: &'a str) -> Option<Self> {
        let mut rest = line;
        let mut fields = [""; 5];
        for field in &mut fields {
            rest = rest.trim_start();
            let end = rest.find(char::is_whitespace)?;
            *field = &rest[..end];
            rest = &rest[end..];
        }
        let path = rest.trim_start();
        if path.is_empty() {
            return None;
        }
        let start = u64::from_str_radix(fields[0].split('-').next()?, 16).ok()?;
        let inode = fields[4].parse().ok()?;
        Some(Self { start, inode, path })
    }
}

/// One line of `/proc/PID/numa_maps`: start address, pages per node, page size.
struct NumaLine {
    start: u64,
    nodes: Vec<(u32, u64)>,
    page_size: Option<u64>,
}

impl NumaLine {
    fn parse(line: &str) -> Option<Self> {
        let mut words = line.split_ascii_whitespace();
        let start = u64::from_str_radix(words.next()?, 16).ok()?;
        let mut nodes = Vec::new();
        let mut page_size = None;
        for word in words {
            let Some((key, value)) = word.split_once('=') else { continue };
            if let Some(node) = key.strip_prefix('N')
                && let (Ok(node), Ok(pages)) = (node.parse(), value.parse())
            {
                nodes.push((node, pages));
            } else if key == "kernelpagesize_kB" {
                page_size = value.parse::<u64>().ok().and_then(|kib| kib.checked_mul(1024));
            }
        }
        Some(Self { start, nodes, page_size })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_maps_and_numa_maps_lines() {
        let line =
            "7f0000000000-7f0000200000 rw-s 00000000 00:2d 1234          /dev/shm/a b (deleted)";
        let parsed = MapsLine::parse(line).expect("a file mapping");
        assert_eq!(
            (parsed.start, parsed.inode, parsed.path),
            (0x7f00_0000_0000, 1234, "/dev/shm/a b (deleted)")
        );
        let memfd = "7f0000000000-7f0000001000 rw-s 00000000 00:01 77   /memfd:x (deleted)";
        assert_eq!(MapsLine::parse(memfd).map(|line| line.path), Some("/memfd:x (deleted)"));
        assert!(MapsLine::parse("7f0000000000-7f0000001000 ---p 00000000 00:00 0 ").is_none());
        assert!(MapsLine::parse("garbage").is_none());

        let numa = NumaLine::parse("7f0000000000 default file=/SYSV00001234\\040(deleted) huge dirty=2 N0=1 N1=1 kernelpagesize_kB=2048")
            .expect("a line");
        assert_eq!(
            (numa.start, numa.nodes, numa.page_size),
            (0x7f00_0000_0000, vec![(0, 1), (1, 1)], Some(2 << 20))
        );
    }

    #[test]
    fn finds_this_process_mapping_a_file() {
        // This test binary maps itself: its own pid is among the mappers of its executable.
        let exe = std::env::current_exe().expect("test binary");
        let target = Target::file(&exe);
        let found = scan(std::slice::from_ref(&target)).expect("scan");
        let usage = found.get(&target).expect("the binary is mapped");
        assert!(usage.pids.contains(&std::process::id()));
        assert!(scan(&[]).expect("scan").is_empty());
    }
}
