//! The machine as found: hugetlbfs support, the page pools of each node, the mounts, and what is
//! at the mount paths. Everything here only reads; sysfs and procfs contents are treated as input
//! (parsed, never unwrapped).

use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use super::{Node, PageKind};
use crate::cmd::Error;

/// Where sysfs and procfs are: `/sys` and `/proc`, or a made-up tree in tests.
#[derive(Debug, Clone)]
pub(crate) struct Roots {
    /// Stands for `/sys`.
    pub(crate) sys: PathBuf,
    /// Stands for `/proc`.
    pub(crate) proc: PathBuf,
}

impl Roots {
    /// The real `/sys` and `/proc`.
    pub(crate) fn system() -> Self {
        Self { sys: PathBuf::from("/sys"), proc: PathBuf::from("/proc") }
    }
}

/// One page-size pool on one node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Pool {
    /// The node.
    pub(crate) node: Node,
    /// The page size.
    pub(crate) kind: PageKind,
    /// Its sysfs folder (holding `nr_hugepages` and `free_hugepages`).
    pub(crate) dir: PathBuf,
    /// `nr_hugepages`: the persistent pages reserved.
    pub(crate) total: u64,
    /// `free_hugepages`: of those, not in use.
    pub(crate) free: u64,
}

/// One line of `/proc/self/mounts`, unescaped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Mount {
    /// What was mounted (`none`, `hugetlbfs`, a device).
    pub(crate) source: String,
    /// Where.
    pub(crate) point: PathBuf,
    /// The filesystem type.
    pub(crate) fstype: String,
    /// The options, split at commas.
    pub(crate) options: Vec<String>,
}

impl Mount {
    /// The value of option `key=value`, if present.
    pub(crate) fn option(&self, key: &str) -> Option<&str> {
        self.options.iter().find_map(|option| option.strip_prefix(key)?.strip_prefix('='))
    }

    /// Whether this is a hugetlbfs mount.
    pub(crate) fn is_hugetlbfs(&self) -> bool {
        self.fstype == "hugetlbfs"
    }

    /// The `pagesize=` option in KiB, if present and readable.
    pub(crate) fn pagesize_kib(&self) -> Option<u64> {
        self.option("pagesize").and_then(parse_size_kib)
    }

    /// The root's mode: the kernel omits `mode=` when it is hugetlbfs's default, 0755.
    pub(crate) fn mode(&self) -> Option<u32> {
        match self.option("mode") {
            Some(mode) => u32::from_str_radix(mode, 8).ok(),
            None => Some(0o755),
        }
    }

    /// The root's owner: the kernel omits `uid=`/`gid=` when it is root.
    pub(crate) fn owner(&self) -> (Option<u32>, Option<u32>) {
        let id = |key| self.option(key).map_or(Some(0), |value| value.parse().ok());
        (id("uid"), id("gid"))
    }

    /// `pagesize=2M mode 1777`, plus the owner when it is not root, for reports.
    pub(crate) fn describe(&self) -> String {
        let show = |id: Option<u32>, octal: bool| match id {
            Some(id) if octal => format!("{id:04o}"),
            Some(id) => id.to_string(),
            None => "?".to_owned(),
        };
        let mut text =
            format!("{} pagesize={}", self.fstype, self.option("pagesize").unwrap_or("?"));
        if self.is_hugetlbfs() {
            text = format!("{text} mode {}", show(self.mode(), true));
            let (uid, gid) = self.owner();
            if uid != Some(0) || gid != Some(0) {
                text = format!("{text} uid {} gid {}", show(uid, false), show(gid, false));
            }
        }
        text
    }
}

/// What a mount path is before anything is mounted on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PathKind {
    /// Nothing there: the folder must be created.
    Missing,
    /// A folder (or a mount point, which is one).
    Directory,
    /// A file, a symlink or something else the kernel would not mount on as named.
    Other,
}

/// Everything the plan needs to know about the machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct State {
    /// `hugetlbfs` is in `/proc/filesystems`.
    pub(crate) hugetlbfs: bool,
    /// The page sizes the kernel offers (a folder in `/sys/kernel/mm/hugepages`).
    pub(crate) supported: Vec<PageKind>,
    /// The nodes with memory, or `[Node::System]` without NUMA folders.
    pub(crate) nodes: Vec<Node>,
    /// One pool per node and supported size that sysfs shows.
    pub(crate) pools: Vec<Pool>,
    /// `/proc/self/mounts`, in order (a later line is mounted over an earlier one at the same
    /// point).
    pub(crate) mounts: Vec<Mount>,
    /// What is at `BASE/.huge` and `BASE/.gigantic`, in [`PageKind::ALL`] order.
    pub(crate) paths: Vec<(PathBuf, PathKind)>,
}

impl State {
    /// Whether the kernel offers this page size.
    pub(crate) fn supports(&self, kind: PageKind) -> bool {
        self.supported.contains(&kind)
    }

    /// The pool of `kind` on `node`, if sysfs shows one.
    pub(crate) fn pool(&self, node: Node, kind: PageKind) -> Option<&Pool> {
        self.pools.iter().find(|pool| pool.node == node && pool.kind == kind)
    }

    /// Every mount at `point`, the visible (last mounted) one first.
    pub(crate) fn mounts_at<'a>(&'a self, point: &'a Path) -> impl Iterator<Item = &'a Mount> + 'a {
        self.mounts.iter().rev().filter(move |mount| mount.point == point)
    }

    /// What is at `path`, as observed; `Missing` for a path that was not looked at.
    pub(crate) fn path_kind(&self, path: &Path) -> PathKind {
        self.paths.iter().find(|(at, _)| at == path).map_or(PathKind::Missing, |(_, kind)| *kind)
    }
}

/// Reads the machine under `roots`, with the mount paths under `base`.
pub(crate) fn observe(roots: &Roots, base: &Path) -> Result<State, Error> {
    let filesystems = read(&roots.proc.join("filesystems"))?;
    let hugetlbfs =
        filesystems.lines().any(|line| line.split_whitespace().last() == Some("hugetlbfs"));
    let mounts = parse_mounts(&read(&roots.proc.join("self/mounts"))?);

    let global = roots.sys.join("kernel/mm/hugepages");
    let supported: Vec<PageKind> =
        PageKind::ALL.into_iter().filter(|kind| global.join(kind.sysfs_dir()).is_dir()).collect();

    let node_root = roots.sys.join("devices/system/node");
    let nodes = if node_root.is_dir() {
        // Nodes without memory (CPU-only) can hold no pages; `has_memory` is absent on old kernels.
        let has_memory = node_root.join("has_memory");
        let list = if has_memory.is_file() { has_memory } else { node_root.join("online") };
        let nodes = parse_node_list(&read(&list)?).map_err(|bad| {
            Error::Message(format!("{}: cannot read node list: {bad}", list.display()))
        })?;
        nodes.into_iter().map(Node::Numa).collect()
    } else {
        vec![Node::System]
    };

    let mut pools = Vec::new();
    for &node in &nodes {
        for &kind in &supported {
            let dir = match node {
                Node::Numa(k) => {
                    node_root.join(format!("node{k}/hugepages")).join(kind.sysfs_dir())
                }
                Node::System => global.join(kind.sysfs_dir()),
            };
            if dir.is_dir() {
                let total = read_count(&dir.join("nr_hugepages"))?;
                let free = read_count(&dir.join("free_hugepages"))?;
                pools.push(Pool { node, kind, dir, total, free });
            }
        }
    }

    let paths = PageKind::ALL
        .into_iter()
        .map(|kind| {
            let path = base.join(kind.mount_dir());
            let kind = match fs::symlink_metadata(&path) {
                Ok(meta) if meta.is_dir() => PathKind::Directory,
                Err(e) if e.kind() == io::ErrorKind::NotFound => PathKind::Missing,
                // Not a folder, or unreadable (a parent we may not search): mounting there would
                // fail or land elsewhere (a symlink), so the plan refuses it.
                Ok(_) | Err(_) => PathKind::Other,
            };
            (path, kind)
        })
        .collect();

    Ok(State { hugetlbfs, supported, nodes, pools, mounts, paths })
}

/// Lines describing the state for `--check`: support, pools per node, mounts.
pub(crate) fn report(state: &State, base: &Path) -> Vec<String> {
    let mut lines = vec![if state.hugetlbfs {
        "hugetlbfs: supported".to_owned()
    } else {
        "hugetlbfs: not supported by this kernel".to_owned()
    }];
    for kind in PageKind::ALL {
        if !state.supports(kind) {
            lines.push(format!(
                "{kind} pages ({}kB): not offered by this kernel (no /sys/kernel/mm/hugepages/{})",
                kind.kib(),
                kind.sysfs_dir()
            ));
        }
    }
    for &node in &state.nodes {
        let pools: Vec<String> = PageKind::ALL
            .into_iter()
            .filter_map(|kind| state.pool(node, kind))
            .map(|pool| {
                format!(
                    "{} ({}kB) {} free of {}",
                    pool.kind,
                    pool.kind.kib(),
                    pool.free,
                    pool.total
                )
            })
            .collect();
        let pools =
            if pools.is_empty() { "no huge page pools".to_owned() } else { pools.join(", ") };
        lines.push(format!("{node}: {pools}"));
    }
    for (path, _) in &state.paths {
        match state.mounts_at(path).next() {
            Some(mount) => lines.push(format!("mount {}: {}", path.display(), mount.describe())),
            None => lines.push(format!("mount {}: none", path.display())),
        }
    }
    for mount in
        state.mounts.iter().filter(|mount| mount.is_hugetlbfs() && !mount.point.starts_with(base))
    {
        lines.push(format!(
            "other hugetlbfs mount {}: {}",
            mount.point.display(),
            mount.describe()
        ));
    }
    lines
}

/// Parses `/proc/self/mounts` (the `fstab` format): six space-separated fields per line, spaces,
/// tabs, newlines and backslashes in the first two written as `\ooo` octal escapes. Malformed
/// lines are skipped: they cannot be ours.
pub(crate) fn parse_mounts(text: &str) -> Vec<Mount> {
    text.lines()
        .filter_map(|line| {
            let mut fields = line.split(' ');
            let source = unescape_octal(fields.next()?, |_| true);
            let point = unescape_octal(fields.next()?, |_| true);
            let fstype =
                String::from_utf8_lossy(&unescape_octal(fields.next()?, |_| true)).into_owned();
            let options =
                String::from_utf8_lossy(&unescape_octal(fields.next()?, |_| true)).into_owned();
            Some(Mount {
                source: String::from_utf8_lossy(&source).into_owned(),
                point: PathBuf::from(std::ffi::OsStr::from_bytes(&point)),
                fstype,
                options: options.split(',').map(str::to_owned).collect(),
            })
        })
        .collect()
}

/// Replaces each `\ooo` (three octal digits) for which `decode` says yes with its byte. Mounts
/// escape the backslash too, so every escape is decoded there; maps escape only the newline, so a
/// name that really holds `\040` must stay as it is.
pub(crate) fn unescape_octal(text: &str, decode: impl Fn(u8) -> bool) -> Vec<u8> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut at = 0;
    while at < bytes.len() {
        if bytes[at] == b'\\'
            && let Some(digits) = bytes.get(at + 1..at + 4)
            && digits.iter().all(|digit| (b'0'..=b'7').contains(digit))
        {
            let value =
                digits.iter().fold(0u32, |value, digit| value * 8 + u32::from(digit - b'0'));
            if let Ok(byte) = u8::try_from(value)
                && decode(byte)
            {
                out.push(byte);
                at += 4;
                continue;
            }
        }
        out.push(bytes[at]);
        at += 1;
    }
    out
}

/// A size as the kernel writes it in mount options (`2M`, `1G`, `2048K`, or bytes) in KiB.
pub(crate) fn parse_size_kib(text: &str) -> Option<u64> {
    let (digits, shift) = match text.as_bytes().last()? {
        b'k' | b'K' => (&text[..text.len() - 1], 10),
        b'm' | b'M' => (&text[..text.len() - 1], 20),
        b'g' | b'G' => (&text[..text.len() - 1], 30),
        _ => (text, 0),
    };
    let bytes = digits.parse::<u64>().ok()?.checked_mul(1 << shift)?;
    (bytes % 1024 == 0).then_some(bytes / 1024)
}

/// Parses a sysfs node list such as `0`, `0-3` or `0,2-3` (empty: no node).
pub(crate) fn parse_node_list(text: &str) -> Result<Vec<u32>, String> {
    let text = text.trim();
    let mut nodes = Vec::new();
    if text.is_empty() {
        return Ok(nodes);
    }
    for part in text.split(',') {
        let bad = || format!("`{part}` in `{text}`");
        let (first, last) = part.split_once('-').unwrap_or((part, part));
        let (first, last): (u32, u32) =
            (first.parse().map_err(|_| bad())?, last.parse().map_err(|_| bad())?);
        if first > last {
            return Err(bad());
        }
        nodes.extend(first..=last);
    }
    nodes.sort_unstable();
    nodes.dedup();
    Ok(nodes)
}

/// A whole small file of procfs or sysfs.
fn read(path: &Path) -> Result<String, Error> {
    fs::read_to_string(path)
        .map_err(|e| Error::Message(format!("cannot read {}: {e}", path.display())))
}

/// A sysfs file that holds one count.
pub(crate) fn read_count(path: &Path) -> Result<u64, Error> {
    let text = read(path)?;
    text.trim().parse().map_err(|_| {
        Error::Message(format!("{}: expected a count, found {:?}", path.display(), text.trim()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hugepages::testing::TempDir;

    const MOUNTS: &str = "\
sysfs /sys sysfs rw,nosuid,nodev,noexec,relatime 0 0
none /mnt/.shmkit/.huge hugetlbfs rw,relatime,mode=1777,pagesize=2M 0 0
tmpfs /mnt/with\\040space\\134and\\011tab tmpfs rw 0 0
none /mnt/.shmkit/.huge hugetlbfs rw,relatime,uid=1000,gid=100,pagesize=1G 0 0
garbage
";

    #[test]
    fn mounts_are_parsed_with_their_escapes() {
        let mounts = parse_mounts(MOUNTS);
        assert_eq!(mounts.len(), 4, "the malformed line is skipped");
        assert_eq!(mounts[2].point, Path::new("/mnt/with space\\and\ttab"));
        assert_eq!(mounts[2].fstype, "tmpfs");
        let huge = &mounts[1];
        assert!(huge.is_hugetlbfs());
        assert_eq!(
            (huge.pagesize_kib(), huge.mode(), huge.owner()),
            (Some(2048), Some(0o1777), (Some(0), Some(0)))
        );
        assert_eq!(huge.describe(), "hugetlbfs pagesize=2M mode 1777");
        let stacked = &mounts[3];
        assert_eq!((stacked.pagesize_kib(), stacked.mode()), (Some(1_048_576), Some(0o755)));
        assert_eq!(stacked.describe(), "hugetlbfs pagesize=1G mode 0755 uid 1000 gid 100");
    }

    #[test]
    fn the_last_mount_at_a_point_is_the_visible_one() {
        let state = State {
            hugetlbfs: true,
            supported: vec![],
            nodes: vec![],
            pools: vec![],
            mounts: parse_mounts(MOUNTS),
            paths: vec![],
        };
        let at: Vec<_> =
            state.mounts_at(Path::new("/mnt/.shmkit/.huge/")).map(Mount::pagesize_kib).collect();
        assert_eq!(at, [Some(1_048_576), Some(2048)]);
    }

    #[test]
    fn octal_escapes_decode_only_what_is_asked() {
        assert_eq!(unescape_octal(r"a\040b\012c", |_| true), b"a b\nc");
        assert_eq!(unescape_octal(r"a\040b\012c", |byte| byte == b'\n'), b"a\\040b\nc");
        assert_eq!(unescape_octal(r"end\04", |_| true), b"end\\04", "too short to be an escape");
        assert_eq!(unescape_octal(r"\777", |_| true), b"\\777", "not a byte");
        assert_eq!(unescape_octal(r"\08x", |_| true), b"\\08x");
    }

    #[test]
    fn sizes_in_mount_options() {
        assert_eq!(parse_size_kib("2M"), Some(2048));
        assert_eq!(parse_size_kib("1G"), Some(1_048_576));
        // How Linux 6.x lists a 1 GiB hugetlbfs in /proc/self/mounts.
        assert_eq!(parse_size_kib("1024M"), Some(1_048_576));
        assert_eq!(parse_size_kib("2048K"), Some(2048));
        assert_eq!(parse_size_kib("2097152"), Some(2048));
        assert_eq!(parse_size_kib("64k"), Some(64));
        for bad in ["", "M", "2X", "-1M", "100", "99999999999999999G"] {
            assert_eq!(parse_size_kib(bad), None, "{bad}");
        }
    }

    #[test]
    fn node_lists() {
        assert_eq!(parse_node_list("0\n"), Ok(vec![0]));
        assert_eq!(parse_node_list("0-2,5"), Ok(vec![0, 1, 2, 5]));
        assert_eq!(parse_node_list("3,1-2,2"), Ok(vec![1, 2, 3]));
        assert_eq!(parse_node_list("\n"), Ok(vec![]));
        for bad in ["a", "1-", "2-1", "0,,1", "-1"] {
            assert!(parse_node_list(bad).is_err(), "{bad}");
        }
    }

    /// A made-up `/sys` and `/proc` with the given node folders (`None`: a kernel without NUMA
    /// folders) and a 2 MiB pool of 8 pages, 5 free, wherever a pool folder is made.
    fn fake_machine(tmp: &TempDir, nodes: Option<&str>, gigantic: bool) -> Roots {
        let roots = Roots { sys: tmp.path().join("sys"), proc: tmp.path().join("proc") };
        tmp.write("proc/filesystems", "nodev\tsysfs\nnodev\thugetlbfs\n");
        tmp.write("proc/self/mounts", "none /base/.huge hugetlbfs rw,pagesize=2M 0 0\n");
        let mut pool_dirs = vec!["sys/kernel/mm/hugepages/hugepages-2048kB".to_owned()];
        if gigantic {
            pool_dirs.push("sys/kernel/mm/hugepages/hugepages-1048576kB".to_owned());
        }
        if let Some(nodes) = nodes {
            tmp.write("sys/devices/system/node/has_memory", &format!("{nodes}\n"));
            for node in parse_node_list(nodes).unwrap_or_default() {
                pool_dirs
                    .push(format!("sys/devices/system/node/node{node}/hugepages/hugepages-2048kB"));
            }
        }
        for dir in pool_dirs {
            tmp.write(&format!("{dir}/nr_hugepages"), "8\n");
            tmp.write(&format!("{dir}/free_hugepages"), "5\n");
        }
        roots
    }

    #[test]
    fn observes_the_pools_of_each_node() {
        let tmp = TempDir::new("observe-numa");
        let roots = fake_machine(&tmp, Some("0-1"), true);
        let state = observe(&roots, Path::new("/base")).expect("fake machine is readable");
        assert!(state.hugetlbfs);
        assert_eq!(state.supported, [PageKind::Huge, PageKind::Gigantic]);
        assert_eq!(state.nodes, [Node::Numa(0), Node::Numa(1)]);
        // The made-up nodes have no 1 GiB folder: only their 2 MiB pools are seen.
        assert_eq!(state.pools.len(), 2);
        let pool = state.pool(Node::Numa(1), PageKind::Huge).expect("node 1 pool");
        assert_eq!((pool.total, pool.free), (8, 5));
        assert!(pool.dir.ends_with("node1/hugepages/hugepages-2048kB"));
        assert_eq!(state.mounts_at(Path::new("/base/.huge")).count(), 1);
        assert_eq!(
            state.path_kind(Path::new("/base/.huge")),
            PathKind::Missing,
            "not on this disk"
        );
    }

    #[test]
    fn without_node_folders_the_system_pools_are_used() {
        let tmp = TempDir::new("observe-system");
        let roots = fake_machine(&tmp, None, false);
        let state = observe(&roots, &tmp.path().join("base")).expect("fake machine is readable");
        assert_eq!(state.supported, [PageKind::Huge]);
        assert_eq!(state.nodes, [Node::System]);
        let pool = state.pool(Node::System, PageKind::Huge).expect("system pool");
        assert!(pool.dir.ends_with("kernel/mm/hugepages/hugepages-2048kB"));
    }

    #[test]
    fn garbage_in_sysfs_is_an_error_not_a_panic() {
        let tmp = TempDir::new("observe-garbage");
        let roots = fake_machine(&tmp, Some("0"), false);
        tmp.write(
            "sys/devices/system/node/node0/hugepages/hugepages-2048kB/nr_hugepages",
            "lots\n",
        );
        let error = observe(&roots, Path::new("/base")).expect_err("garbage count");
        assert!(error.to_string().contains("expected a count, found \"lots\""), "{error}");
        tmp.write("sys/devices/system/node/has_memory", "zero\n");
        assert!(observe(&roots, Path::new("/base")).is_err());
    }

    #[test]
    fn what_is_at_the_mount_paths() {
        let tmp = TempDir::new("observe-paths");
        let roots = fake_machine(&tmp, Some("0"), false);
        tmp.write("base/.huge/keep", "");
        tmp.write("base/.gigantic", "a file");
        let state = observe(&roots, &tmp.path().join("base")).expect("fake machine is readable");
        assert_eq!(state.path_kind(&tmp.path().join("base/.huge")), PathKind::Directory);
        assert_eq!(state.path_kind(&tmp.path().join("base/.gigantic")), PathKind::Other);
    }
}
