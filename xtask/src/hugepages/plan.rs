//! What to do, decided from the observed [`State`] and the [`Request`] alone: no I/O, so every
//! rule (raise only, idempotence, what teardown touches) is unit tested without root.

use std::path::{Path, PathBuf};

use super::state::{PathKind, State};
use super::{Node, PageKind};

/// What the user asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Request {
    /// 2 MiB pages wanted per node (0: leave them and their mount alone).
    pub(crate) huge: u64,
    /// 1 GiB pages wanted per node (0: leave them and their mount alone).
    pub(crate) gigantic: u64,
    /// Only this node.
    pub(crate) node: Option<u32>,
    /// BASE, holding `.huge` and `.gigantic`.
    pub(crate) base: PathBuf,
    /// How new mounts are made.
    pub(crate) mount: MountOptions,
}

impl Request {
    /// The count wanted of `kind`.
    pub(crate) fn wanted(&self, kind: PageKind) -> u64 {
        match kind {
            PageKind::Huge => self.huge,
            PageKind::Gigantic => self.gigantic,
        }
    }

    /// `BASE/.huge` or `BASE/.gigantic`.
    pub(crate) fn mount_path(&self, kind: PageKind) -> PathBuf {
        self.base.join(kind.mount_dir())
    }
}

/// Mode and owner of a new mount's root.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct MountOptions {
    /// Permission bits and sticky bit.
    pub(crate) mode: u32,
    /// Owner.
    pub(crate) uid: u32,
    /// Group.
    pub(crate) gid: u32,
}

/// One change to the machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Action {
    /// Write `to` into `dir/nr_hugepages`; a raise is read back and retried once after compaction.
    SetPages {
        /// The node.
        node: Node,
        /// The page size.
        kind: PageKind,
        /// The pool's sysfs folder.
        dir: PathBuf,
        /// The count found.
        from: u64,
        /// The count to write.
        to: u64,
    },
    /// Create the folder a mount goes on (and its parents).
    CreateDir {
        /// The folder.
        path: PathBuf,
    },
    /// Mount hugetlbfs with pages of `kind` at `path`.
    Mount {
        /// The mount point.
        path: PathBuf,
        /// The page size.
        kind: PageKind,
        /// Mode and owner of the root.
        options: MountOptions,
    },
    /// Unmount the hugetlbfs at `path` (once per stacked mount).
    Unmount {
        /// The mount point.
        path: PathBuf,
        /// Its `pagesize=` option, for the report.
        pagesize: String,
    },
}

impl Action {
    /// For `--check`: what this action would fix, worded as a problem. `None` for steps that
    /// are not problems by themselves (creating the folder is part of the missing mount).
    pub(crate) fn shortfall(&self) -> Option<String> {
        match self {
            Self::SetPages { node, kind, from, to, .. } => Some(format!(
                "{node}: {to} {kind} ({}kB) pages wanted, {from} reserved",
                kind.kib()
            )),
            Self::Mount { path, kind, .. } => Some(format!(
                "no hugetlbfs mount with pagesize={} at {}",
                kind.pagesize_option(),
                path.display()
            )),
            Self::CreateDir { .. } | Self::Unmount { .. } => None,
        }
    }
}

/// The actions in order, and remarks for the user that are not errors.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Plan {
    /// The changes, in the order they must be made.
    pub(crate) actions: Vec<Action>,
    /// Things worth saying (a page size the kernel lacks, a mount left with another mode).
    pub(crate) notes: Vec<String>,
}

/// The nodes the request covers: the one asked for, or all with memory.
fn nodes(state: &State, request: &Request) -> Result<Vec<Node>, String> {
    let Some(wanted) = request.node else { return Ok(state.nodes.clone()) };
    let found = state.nodes.iter().find(|&&node| match node {
        Node::Numa(node) => node == wanted,
        // A kernel without NUMA folders has everything on node 0.
        Node::System => wanted == 0,
    });
    found.map(|&node| vec![node]).ok_or_else(|| {
        let nodes: Vec<String> = state.nodes.iter().map(ToString::to_string).collect();
        format!(
            "node {wanted} is not online or has no memory (nodes with memory: {})",
            nodes.join(", ")
        )
    })
}

/// Setting up: raise each pool that is short, then mount what is missing. Fails (with every
/// problem found) when something in the way must not be touched: a foreign mount, a file.
pub(crate) fn setup(state: &State, request: &Request) -> Result<Plan, Vec<String>> {
    let nodes = nodes(state, request).map_err(|e| vec![e])?;
    let mut plan = Plan::default();
    let mut problems = Vec::new();
    let kinds: Vec<PageKind> = PageKind::ALL
        .into_iter()
        .filter(|&kind| request.wanted(kind) > 0)
        .filter(|&kind| {
            let supported = state.supports(kind);
            if !supported {
                plan.notes.push(format!(
                    "this kernel offers no {kind} ({}kB) pages (no /sys/kernel/mm/hugepages/{}): \
                     skipping them and the {} mount",
                    kind.kib(),
                    kind.sysfs_dir(),
                    kind.mount_dir()
                ));
            }
            supported
        })
        .collect();

    for &kind in &kinds {
        let wanted = request.wanted(kind);
        for &node in &nodes {
            match state.pool(node, kind) {
                // Raise only: a larger reservation may be someone else's.
                Some(pool) if pool.total < wanted => plan.actions.push(Action::SetPages {
                    node,
                    kind,
                    dir: pool.dir.clone(),
                    from: pool.total,
                    to: wanted,
                }),
                Some(_) => {}
                None => problems.push(format!("{node} has no {} pool in sysfs", kind.sysfs_dir())),
            }
        }
    }

    for &kind in &kinds {
        let path = request.mount_path(kind);
        if let Some(mount) = state.mounts_at(&path).next() {
            if !mount.is_hugetlbfs() {
                problems.push(format!(
                    "{} is a {} mount (from {}), not hugetlbfs: unmount it, or set SHMKIT_PATH to \
                     another folder",
                    path.display(),
                    mount.fstype,
                    mount.source
                ));
            } else if mount.pagesize_kib() != Some(kind.kib()) {
                problems.push(format!(
                    "{} is a hugetlbfs mount with pagesize={}, but {} pages need pagesize={}: \
                     unmount it (`--teardown`) and run again",
                    path.display(),
                    mount.option("pagesize").unwrap_or("(none)"),
                    kind,
                    kind.pagesize_option()
                ));
            } else if let Some(note) = differs(mount, &path, request.mount) {
                plan.notes.push(note);
            }
            continue;
        }
        match state.path_kind(&path) {
            PathKind::Missing => plan.actions.push(Action::CreateDir { path: path.clone() }),
            PathKind::Directory => {}
            PathKind::Other => {
                problems.push(format!(
                    "{} exists and is not a folder (or cannot be looked at): remove it, or set \
                     SHMKIT_PATH to another folder",
                    path.display()
                ));
                continue;
            }
        }
        plan.actions.push(Action::Mount { path, kind, options: request.mount });
    }

    if problems.is_empty() { Ok(plan) } else { Err(problems) }
}

/// A note when a mount already in place has another mode or owner than asked: it is accepted as
/// it is, since remounting under users' feet would pull their files away.
fn differs(mount: &super::state::Mount, path: &Path, wanted: MountOptions) -> Option<String> {
    let (uid, gid) = mount.owner();
    let same =
        mount.mode() == Some(wanted.mode) && uid == Some(wanted.uid) && gid == Some(wanted.gid);
    (!same).then(|| {
        format!(
            "{} is mounted as {}, not mode {:04o} uid {} gid {} as asked: left as it is \
             (`--teardown` and run again to change it)",
            path.display(),
            mount.describe(),
            wanted.mode,
            wanted.uid,
            wanted.gid
        )
    })
}

/// Tearing down: unmount every hugetlbfs stacked at the two paths, then set the pools to 0.
/// The executor releases no page when an unmount fails.
pub(crate) fn teardown(state: &State, request: &Request) -> Result<Plan, Vec<String>> {
    let nodes = nodes(state, request).map_err(|e| vec![e])?;
    let mut plan = Plan::default();
    let mut problems = Vec::new();
    for kind in PageKind::ALL {
        let path = request.mount_path(kind);
        for mount in state.mounts_at(&path) {
            if !mount.is_hugetlbfs() {
                // Whatever is under it stays hidden; unmounting a foreign filesystem is not ours to do.
                problems.push(format!(
                    "{} is a {} mount (from {}), not hugetlbfs: not touching it",
                    path.display(),
                    mount.fstype,
                    mount.source
                ));
                break;
            }
            plan.actions.push(Action::Unmount {
                path: path.clone(),
                pagesize: mount.option("pagesize").unwrap_or("?").to_owned(),
            });
        }
    }
    for kind in PageKind::ALL {
        for &node in &nodes {
            if let Some(pool) = state.pool(node, kind).filter(|pool| pool.total > 0) {
                plan.actions.push(Action::SetPages {
                    node,
                    kind,
                    dir: pool.dir.clone(),
                    from: pool.total,
                    to: 0,
                });
            }
        }
    }
    if problems.is_empty() { Ok(plan) } else { Err(problems) }
}

/// `16 huge and 1 gigantic pages on node 0, mounts in place (...)`: the state a setup that has
/// nothing to do found.
pub(crate) fn describe_setup(state: &State, request: &Request) -> String {
    let kinds: Vec<PageKind> = PageKind::ALL
        .into_iter()
        .filter(|&kind| request.wanted(kind) > 0 && state.supports(kind))
        .collect();
    if kinds.is_empty() {
        return "no page size asked for".to_owned();
    }
    let per_node: Vec<String> = nodes(state, request)
        .unwrap_or_default()
        .into_iter()
        .map(|node| {
            let counts: Vec<String> = kinds
                .iter()
                .map(|&kind| {
                    let total = state.pool(node, kind).map_or(0, |pool| pool.total);
                    format!("{total} {kind}")
                })
                .collect();
            format!("{} pages on {node}", counts.join(" and "))
        })
        .collect();
    let mounts: Vec<String> =
        kinds.iter().map(|&kind| request.mount_path(kind).display().to_string()).collect();
    format!("{}, mounts in place ({})", per_node.join("; "), mounts.join(", "))
}

/// What a teardown that has nothing to do found.
pub(crate) fn describe_teardown(state: &State, request: &Request) -> String {
    let nodes: Vec<String> =
        nodes(state, request).unwrap_or_default().iter().map(ToString::to_string).collect();
    format!(
        "no hugetlbfs mounted at {} or {}, and no huge or gigantic pages reserved on {}",
        request.mount_path(PageKind::Huge).display(),
        request.mount_path(PageKind::Gigantic).display(),
        nodes.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hugepages::state::{Pool, parse_mounts};

    const BASE: &str = "/mnt/.shmkit";
    const MODE: MountOptions = MountOptions { mode: 0o1777, uid: 0, gid: 0 };

    fn request(huge: u64, gigantic: u64) -> Request {
        Request { huge, gigantic, node: None, base: PathBuf::from(BASE), mount: MODE }
    }

    fn pool(node: u32, kind: PageKind, total: u64) -> Pool {
        Pool {
            node: Node::Numa(node),
            kind,
            dir: PathBuf::from(format!("/n{node}/{}", kind.kib())),
            total,
            free: total,
        }
    }

    /// A one-node machine with both sizes, the given pool totals, and the given mounts.
    fn machine(huge: u64, gigantic: u64, mounts: &str) -> State {
        State {
            hugetlbfs: true,
            supported: PageKind::ALL.to_vec(),
            nodes: vec![Node::Numa(0)],
            pools: vec![pool(0, PageKind::Huge, huge), pool(0, PageKind::Gigantic, gigantic)],
            mounts: parse_mounts(mounts),
            paths: vec![
                (PathBuf::from("/mnt/.shmkit/.huge"), PathKind::Missing),
                (PathBuf::from("/mnt/.shmkit/.gigantic"), PathKind::Missing),
            ],
        }
    }

    const BOTH_MOUNTED: &str = "\
none /mnt/.shmkit/.huge hugetlbfs rw,relatime,mode=1777,pagesize=2M 0 0
none /mnt/.shmkit/.gigantic hugetlbfs rw,relatime,mode=1777,pagesize=1G 0 0
";

    fn set(kind: PageKind, from: u64, to: u64) -> Action {
        Action::SetPages { node: Node::Numa(0), kind, dir: pool(0, kind, 0).dir, from, to }
    }

    #[test]
    fn a_bare_machine_gets_pages_folders_and_mounts() {
        let plan = setup(&machine(0, 0, ""), &request(16, 1)).expect("nothing in the way");
        assert_eq!(
            plan.actions,
            [
                set(PageKind::Huge, 0, 16),
                set(PageKind::Gigantic, 0, 1),
                Action::CreateDir { path: PathBuf::from("/mnt/.shmkit/.huge") },
                Action::Mount {
                    path: PathBuf::from("/mnt/.shmkit/.huge"),
                    kind: PageKind::Huge,
                    options: MODE
                },
                Action::CreateDir { path: PathBuf::from("/mnt/.shmkit/.gigantic") },
                Action::Mount {
                    path: PathBuf::from("/mnt/.shmkit/.gigantic"),
                    kind: PageKind::Gigantic,
                    options: MODE
                },
            ]
        );
        assert!(plan.notes.is_empty());
    }

    #[test]
    fn a_machine_already_set_up_needs_nothing() {
        let state = machine(16, 1, BOTH_MOUNTED);
        let plan = setup(&state, &request(16, 1)).expect("nothing in the way");
        assert_eq!(plan, Plan::default());
        assert_eq!(
            describe_setup(&state, &request(16, 1)),
            "16 huge and 1 gigantic pages on node 0, mounts in place (/mnt/.shmkit/.huge, /mnt/.shmkit/.gigantic)"
        );
    }

    #[test]
    fn reservations_are_only_raised() {
        let plan =
            setup(&machine(64, 0, BOTH_MOUNTED), &request(16, 2)).expect("nothing in the way");
        assert_eq!(
            plan.actions,
            [set(PageKind::Gigantic, 0, 2)],
            "64 huge pages stay, not lowered to 16"
        );
        let plan =
            setup(&machine(8, 3, BOTH_MOUNTED), &request(16, 2)).expect("nothing in the way");
        assert_eq!(plan.actions, [set(PageKind::Huge, 8, 16)]);
    }

    #[test]
    fn an_existing_folder_is_mounted_on_without_creating_it() {
        let mut state = machine(16, 1, "");
        state.paths[0].1 = PathKind::Directory;
        let plan = setup(&state, &request(16, 0)).expect("nothing in the way");
        assert_eq!(
            plan.actions,
            [Action::Mount {
                path: PathBuf::from("/mnt/.shmkit/.huge"),
                kind: PageKind::Huge,
                options: MODE
            }]
        );
    }

    #[test]
    fn a_zero_count_leaves_that_size_and_its_mount_alone() {
        let plan = setup(&machine(0, 0, ""), &request(0, 1)).expect("nothing in the way");
        assert!(plan.actions.iter().all(|action| !matches!(
            action,
            Action::SetPages { kind: PageKind::Huge, .. }
                | Action::Mount { kind: PageKind::Huge, .. }
        )));
        assert_eq!(plan.actions.len(), 3);
        assert_eq!(setup(&machine(0, 0, ""), &request(0, 0)), Ok(Plan::default()));
    }

    #[test]
    fn a_kernel_without_gigantic_pages_is_noted_and_skipped() {
        let mut state = machine(16, 0, BOTH_MOUNTED.lines().next().unwrap_or_default());
        state.supported = vec![PageKind::Huge];
        state.pools.retain(|pool| pool.kind == PageKind::Huge);
        let plan = setup(&state, &request(16, 1)).expect("nothing in the way");
        assert!(plan.actions.is_empty(), "{:?}", plan.actions);
        assert_eq!(plan.notes.len(), 1);
        assert!(plan.notes[0].contains("no gigantic (1048576kB) pages"), "{}", plan.notes[0]);
        // Without the note's page size, nothing is said about it when all is well.
        assert!(setup(&state, &request(16, 0)).is_ok_and(|plan| plan.notes.is_empty()));
    }

    #[test]
    fn foreign_or_wrong_mounts_are_errors_that_name_them() {
        let mounts = "\
tmpfs /mnt/.shmkit/.huge tmpfs rw 0 0
none /mnt/.shmkit/.gigantic hugetlbfs rw,pagesize=2M 0 0
";
        let problems =
            setup(&machine(16, 1, mounts), &request(16, 1)).expect_err("mounts in the way");
        assert_eq!(problems.len(), 2);
        assert!(
            problems[0].contains("/mnt/.shmkit/.huge is a tmpfs mount (from tmpfs)"),
            "{}",
            problems[0]
        );
        assert!(
            problems[1].contains("/mnt/.shmkit/.gigantic is a hugetlbfs mount with pagesize=2M"),
            "{}",
            problems[1]
        );
    }

    #[test]
    fn a_file_where_a_mount_goes_is_an_error() {
        let mut state = machine(16, 1, "");
        state.paths[1].1 = PathKind::Other;
        let problems = setup(&state, &request(16, 1)).expect_err("file in the way");
        assert_eq!(problems.len(), 1);
        assert!(
            problems[0].starts_with("/mnt/.shmkit/.gigantic exists and is not a folder"),
            "{}",
            problems[0]
        );
    }

    #[test]
    fn a_mount_in_place_with_another_mode_is_kept_with_a_note() {
        let mounts = "\
none /mnt/.shmkit/.huge hugetlbfs rw,pagesize=2M 0 0
none /mnt/.shmkit/.gigantic hugetlbfs rw,mode=1777,pagesize=1G 0 0
";
        let plan = setup(&machine(16, 1, mounts), &request(16, 1)).expect("accepted");
        assert!(plan.actions.is_empty());
        assert_eq!(plan.notes.len(), 1);
        assert!(plan.notes[0].contains("mode 0755, not mode 1777"), "{}", plan.notes[0]);
    }

    #[test]
    fn every_node_or_the_one_asked_for() {
        let mut state = machine(0, 1, BOTH_MOUNTED);
        state.nodes.push(Node::Numa(1));
        state.pools.push(pool(1, PageKind::Huge, 4));
        state.pools.push(pool(1, PageKind::Gigantic, 1));
        let plan = setup(&state, &request(4, 1)).expect("nothing in the way");
        assert_eq!(plan.actions, [set(PageKind::Huge, 0, 4)]);

        let only_1 = Request { node: Some(1), ..request(8, 1) };
        let plan = setup(&state, &only_1).expect("nothing in the way");
        assert!(matches!(
            plan.actions.as_slice(),
            [Action::SetPages { node: Node::Numa(1), from: 4, to: 8, .. }]
        ));

        let absent = Request { node: Some(7), ..request(8, 1) };
        let problems = setup(&state, &absent).expect_err("no node 7");
        assert_eq!(
            problems,
            ["node 7 is not online or has no memory (nodes with memory: node 0, node 1)"]
        );
    }

    #[test]
    fn node_0_means_the_system_pool_without_numa_folders() {
        let mut state = machine(0, 0, BOTH_MOUNTED);
        state.nodes = vec![Node::System];
        for pool in &mut state.pools {
            pool.node = Node::System;
        }
        let plan =
            setup(&state, &Request { node: Some(0), ..request(2, 0) }).expect("system is node 0");
        assert!(matches!(
            plan.actions.as_slice(),
            [Action::SetPages { node: Node::System, to: 2, .. }]
        ));
    }

    #[test]
    fn check_words_each_missing_piece_once() {
        let plan = setup(&machine(3, 0, ""), &request(16, 1)).expect("nothing in the way");
        let problems: Vec<String> = plan.actions.iter().filter_map(Action::shortfall).collect();
        assert_eq!(
            problems,
            [
                "node 0: 16 huge (2048kB) pages wanted, 3 reserved",
                "node 0: 1 gigantic (1048576kB) pages wanted, 0 reserved",
                "no hugetlbfs mount with pagesize=2M at /mnt/.shmkit/.huge",
                "no hugetlbfs mount with pagesize=1G at /mnt/.shmkit/.gigantic",
            ]
        );
    }

    #[test]
    fn teardown_unmounts_first_then_releases_every_pool() {
        let plan = teardown(&machine(16, 1, BOTH_MOUNTED), &request(0, 0)).expect("ours to remove");
        assert_eq!(
            plan.actions,
            [
                Action::Unmount {
                    path: PathBuf::from("/mnt/.shmkit/.huge"),
                    pagesize: "2M".to_owned()
                },
                Action::Unmount {
                    path: PathBuf::from("/mnt/.shmkit/.gigantic"),
                    pagesize: "1G".to_owned()
                },
                set(PageKind::Huge, 16, 0),
                set(PageKind::Gigantic, 1, 0),
            ]
        );
    }

    #[test]
    fn teardown_of_a_clean_machine_is_empty() {
        let state = machine(0, 0, "");
        assert_eq!(teardown(&state, &request(0, 0)), Ok(Plan::default()));
        assert!(
            describe_teardown(&state, &request(0, 0))
                .ends_with("no huge or gigantic pages reserved on node 0")
        );
    }

    #[test]
    fn teardown_unmounts_stacked_mounts_and_refuses_foreign_ones() {
        let stacked = "\
none /mnt/.shmkit/.huge hugetlbfs rw,pagesize=2M 0 0
none /mnt/.shmkit/.huge hugetlbfs rw,pagesize=2M 0 0
";
        let plan = teardown(&machine(0, 0, stacked), &request(0, 0)).expect("ours to remove");
        assert_eq!(plan.actions.len(), 2);
        let foreign = "tmpfs /mnt/.shmkit/.gigantic tmpfs rw 0 0\n";
        let problems = teardown(&machine(5, 0, foreign), &request(0, 0)).expect_err("not ours");
        assert_eq!(
            problems,
            [
                "/mnt/.shmkit/.gigantic is a tmpfs mount (from tmpfs), not hugetlbfs: not touching it"
            ]
        );
    }
}
