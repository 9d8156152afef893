//! Who keeps a mount busy: processes that map a file under it (`/proc/PID/maps`), hold one open
//! (`/proc/PID/fd`) or work in it (`/proc/PID/cwd`). Processes that vanish or that we may not
//! inspect while scanning are skipped: the list is a hint for the user, not a proof.

use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use super::state::unescape_octal;

/// A process that uses something under the mount.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Holder {
    /// Its pid.
    pub(crate) pid: u32,
    /// Its `comm` (the executable's name, as the kernel keeps it).
    pub(crate) comm: String,
    /// How it uses the mount: `maps PATH`, `has PATH open`, `works in PATH`.
    pub(crate) uses: Vec<String>,
}

/// Every process under `proc` (normally `/proc`) that uses a path under `mount`, by pid.
pub(crate) fn scan(proc: &Path, mount: &Path) -> Vec<Holder> {
    let Ok(entries) = fs::read_dir(proc) else { return Vec::new() };
    let mut holders: Vec<Holder> = entries
        .flatten()
        .filter_map(|entry| {
            let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
            let dir = entry.path();
            let mut uses = Vec::new();
            if let Ok(maps) = fs::read_to_string(dir.join("maps")) {
                uses.extend(
                    mapped_under(&maps, mount)
                        .into_iter()
                        .map(|path| format!("maps {}", path.display())),
                );
            }
            if let Ok(fds) = fs::read_dir(dir.join("fd")) {
                let mut open: Vec<PathBuf> = fds
                    .flatten()
                    .filter_map(|fd| fs::read_link(fd.path()).ok())
                    .filter(|target| target.starts_with(mount))
                    .collect();
                open.sort();
                open.dedup();
                uses.extend(open.into_iter().map(|path| format!("has {} open", path.display())));
            }
            if let Ok(cwd) = fs::read_link(dir.join("cwd"))
                && cwd.starts_with(mount)
            {
                uses.push(format!("works in {}", cwd.display()));
            }
            if uses.is_empty() {
                return None;
            }
            let comm = fs::read_to_string(dir.join("comm"))
                .map_or_else(|_| "?".to_owned(), |comm| comm.trim().to_owned());
            Some(Holder { pid, comm, uses })
        })
        .collect();
    holders.sort_by_key(|holder| holder.pid);
    holders
}

/// The distinct file paths in a `/proc/PID/maps` text that lie under `mount`, in order of first
/// appearance. A deleted file keeps its ` (deleted)` suffix: it still pins the mount.
pub(crate) fn mapped_under(maps: &str, mount: &Path) -> Vec<PathBuf> {
    let mut paths: Vec<PathBuf> = Vec::new();
    for line in maps.lines() {
        let Some(path) = mapped_path(line) else { continue };
        if path.starts_with(mount) && !paths.contains(&path) {
            paths.push(path);
        }
    }
    paths
}

/// The path field of one maps line (`address perms offset dev inode   path`), if it names a
/// file. The kernel pads before the path and escapes only a newline in it (as `\012`).
fn mapped_path(line: &str) -> Option<PathBuf> {
    let mut rest = line;
    for _ in 0..5 {
        rest = rest.trim_start_matches(' ');
        rest = &rest[rest.find(' ')?..];
    }
    let path = rest.trim_start_matches(' ');
    path.starts_with('/')
        .then(|| PathBuf::from(OsStr::from_bytes(&unescape_octal(path, |byte| byte == b'\n'))))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hugepages::testing::TempDir;

    const MAPS: &str = "\
55d0c6a00000-55d0c6a02000 r--p 00000000 fd:01 1234                       /usr/bin/python3.11
7f0000000000-7f0000200000 rw-s 00000000 00:2f 17                         /mnt/.shmkit/.huge/x
7f0000200000-7f0000400000 rw-s 00200000 00:2f 17                         /mnt/.shmkit/.huge/x
7f0000400000-7f0000600000 rw-s 00000000 00:2f 18                         /mnt/.shmkit/.huge/with space
7f0000600000-7f0000800000 rw-s 00000000 00:2f 19                         /mnt/.shmkit/.huge/gone (deleted)
7f0000800000-7f0000a00000 rw-s 00000000 00:2f 20                         /mnt/.shmkit/.huge/new\\012line
7f0000a00000-7f0000c00000 rw-s 00000000 00:30 21                         /mnt/.shmkit/.hugeish/y
7f0000c00000-7f0000c21000 rw-p 00000000 00:00 0                          [heap]
7f0000c21000-7f0000c22000 rw-p 00000000 00:00 0 
";

    #[test]
    fn maps_paths_under_the_mount_are_found_once_each() {
        let found = mapped_under(MAPS, Path::new("/mnt/.shmkit/.huge"));
        let expected: Vec<PathBuf> = ["x", "with space", "gone (deleted)", "new\nline"]
            .into_iter()
            .map(|name| Path::new("/mnt/.shmkit/.huge").join(name))
            .collect();
        assert_eq!(found, expected, "a sibling folder with a longer name is not under the mount");
        assert!(mapped_under(MAPS, Path::new("/mnt/.shmkit/.gigantic")).is_empty());
        assert!(mapped_under("garbage\n\n7f00 rw-p\n", Path::new("/")).is_empty());
    }

    #[test]
    fn scan_names_the_processes_and_skips_the_rest() {
        let tmp = TempDir::new("holders");
        tmp.write("proc/4242/maps", MAPS);
        tmp.write("proc/4242/comm", "python3\n");
        tmp.write("proc/7/maps", "7f00-7f01 r--p 00000000 fd:01 1 /usr/lib/libc.so.6\n");
        tmp.write("proc/7/comm", "init\n");
        // Not a pid, and a process whose maps we may not read: both skipped.
        tmp.write("proc/self-ish/maps", MAPS);
        tmp.write("proc/99/comm", "gone\n");
        let holders = scan(&tmp.path().join("proc"), Path::new("/mnt/.shmkit/.huge"));
        assert_eq!(holders.len(), 1);
        assert_eq!((holders[0].pid, holders[0].comm.as_str()), (4242, "python3"));
        assert_eq!(holders[0].uses[0], "maps /mnt/.shmkit/.huge/x");
        assert_eq!(holders[0].uses.len(), 4);
    }
}
