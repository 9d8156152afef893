//! Who maps which region, and on which NUMA nodes its mapped pages are, for many regions in one
//! pass over `/proc/*/maps` and `/proc/*/numa_maps`.
//!
//! `shmkit_os::list::mappers` answers for one file with a pass over every process; `ls` asks for
//! every region, and wants placement and the page size of System V segments too, so it reads each
//! process once here. A file region is matched by its path (a region removed while mapped shows
//! with ` (deleted)`, and still counts); a System V segment by its id, which the kernel puts in the
//! inode column of its `/SYSV<key>` line.
//!
//! Placement comes from `numa_maps` (the `N<node>=<pages>` counts of the mapping with the same
//! start address as in `maps`): it is known only for regions some process maps, and counts the
//! pages that process has in its page tables. A region nobody maps has no known placement.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::path::Path;

use serde::Serialize;

/// What a region is matched by.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Target {
    /// A file, by its path as the kernel shows it.
    File(String),
    /// A System V segment, by its id.
    SysV(i32),
}

impl Target {
    /// The file at `path`, resolved as the kernel resolves it in `maps`.
    pub fn file(path: &Path) -> Self {
        let path = fs::canonicalize(path).unwrap_or_else(|_| path.to_owned());
        // The kernel escapes newlines in the path column as `\012`.
        Self::File(path.to_string_lossy().replace('\n', "\\012"))
    }
}

/// Pages of a region on one NUMA node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct NodePages {
    /// The node.
    pub node: u32,
    /// Pages (of the region's page size) on it.
    pub pages: u64,
}

/// What the scan found of one region.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    /// The processes that map it, ascending.
    pub pids: Vec<u32>,
    /// Its mapped pages per node, from the process that has the most of them in its page tables;
    /// `None` when no mapper's `numa_maps` could be read.
    pub placement: Option<Vec<NodePages>>,
    /// The page size of its mappings in bytes (`kernelpagesize_kB`), when a mapper was read.
    pub page_size: Option<u64>,
}

/// Reads every process's maps (and, for those that map a target, its `numa_maps`). Processes that
/// cannot be read (another user's, without privilege) or exit meanwhile are left out.
pub fn scan(targets: &[Target]) -> HashMap<Target, Usage> {
    let mut found: HashMap<Target, Usage> = HashMap::new();
    if targets.is_empty() {
        return found;
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
    let Ok(entries) = fs::read_dir("/proc") else { return found };
    // Per target: per pid, per node, pages; and the page size.
    let mut placement: HashMap<&Target, BTreeMap<u32, BTreeMap<u32, u64>>> = HashMap::new();
    for entry in entries.flatten() {
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
        if matched.is_empty() {
            continue;
        }
        for (_, target) in &matched {
            let usage = found.entry((*target).clone()).or_default();
            if usage.pids.last() != Some(&pid) {
                usage.pids.push(pid);
            }
        }
        let Ok(numa_maps) = fs::read_to_string(entry.path().join("numa_maps")) else { continue };
        for line in numa_maps.lines() {
            let Some(numa) = NumaLine::parse(line) else { continue };
            for (_, target) in matched.iter().filter(|(start, _)| *start == numa.start) {
                let nodes = placement.entry(target).or_default().entry(pid).or_default();
                for &(node, pages) in &numa.nodes {
                    *nodes.entry(node).or_default() += pages;
                }
                if let Some(usage) = found.get_mut(*target) {
                    usage.page_size = usage.page_size.or(numa.page_size);
                }
            }
        }
    }
    for (target, by_pid) in placement {
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
    found
}

/// When process `pid` started, in clock ticks after boot (field 22 of `/proc/PID/stat`): with
/// the pid, it names a process for good, since a pid is reused only by a process started later.
pub fn start_time(pid: u32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command (field 2) may hold spaces and parentheses: the fields resume after the last `)`.
    let (_, rest) = stat.rsplit_once(')')?;
    rest.split_ascii_whitespace().nth(19)?.parse().ok()
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
        let found = scan(std::slice::from_ref(&target));
        let usage = found.get(&target).expect("the binary is mapped");
        assert!(usage.pids.contains(&std::process::id()));
    }

    #[test]
    fn reads_start_times() {
        let mine = start_time(std::process::id()).expect("this process has a start time");
        assert!(start_time(1).is_some_and(|init| init <= mine));
        assert_eq!(start_time(u32::MAX), None);
    }
}
