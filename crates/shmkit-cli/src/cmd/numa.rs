//! `shmkit numa`: the NUMA nodes, their CPUs and huge page pools, and the hugetlbfs mounts.

use serde::Serialize;
use shmkit_name::PageSize;
use shmkit_os::mounts;
use shmkit_os::numa::{PagePool, Topology};
use std::fmt::Write as _;

use crate::args::NumaArgs;
use crate::error::Result;
use crate::output::{self, Table};

/// `shmkit numa --json`.
#[derive(Debug, Serialize)]
pub struct NumaOutput {
    /// Every node, by id.
    pub nodes: Vec<NodeRow>,
    /// The online CPUs (`0-3`).
    pub cpus: String,
    /// Every hugetlbfs mount.
    pub mounts: Vec<MountRow>,
    /// Where shmkit looks for its mounts (`$SHMKIT_PATH` or `/mnt/.shmkit`).
    pub shmkit_base: String,
}

/// One NUMA node.
#[derive(Debug, Serialize)]
pub struct NodeRow {
    /// The node id.
    pub node: u32,
    /// Its CPUs in list syntax (`0-3,8`), empty for a memory-only node.
    pub cpus: String,
    /// Its CPUs, one by one.
    pub cpu_ids: Vec<u32>,
    /// Its pool of 2 MiB pages.
    pub huge: Pool,
    /// Its pool of 1 GiB pages.
    pub gigantic: Pool,
}

/// A huge page pool.
#[derive(Debug, Serialize)]
pub struct Pool {
    /// Pages in the pool.
    pub total: u64,
    /// Pages not in use.
    pub free: u64,
}

impl From<PagePool> for Pool {
    fn from(pool: PagePool) -> Self {
        Self { total: pool.total, free: pool.free }
    }
}

/// One hugetlbfs mount.
#[derive(Debug, Serialize)]
pub struct MountRow {
    /// Where it is mounted.
    pub path: String,
    /// `huge`, `gigantic`, or `null` for a page size shmkit does not use.
    pub page_size: Option<&'static str>,
    /// The `pagesize=` option as the kernel wrote it (`2M`, `1024M`).
    pub page_size_option: String,
    /// Whether it is the mount shmkit uses for that page size.
    pub shmkit: bool,
}

/// Runs `shmkit numa`.
pub fn run(args: &NumaArgs) -> Result<()> {
    let topology = Topology::read()?;
    let ours: Vec<_> = [PageSize::Huge, PageSize::Gigantic]
        .into_iter()
        .filter_map(|page_size| mounts::region_dir(page_size).ok())
        .filter_map(|dir| std::fs::canonicalize(dir).ok())
        .collect();
    let out = NumaOutput {
        nodes: topology
            .nodes()
            .iter()
            .map(|node| NodeRow {
                node: node.id,
                cpus: node.cpus.to_string(),
                cpu_ids: node.cpus.as_slice().to_vec(),
                huge: node.huge.into(),
                gigantic: node.gigantic.into(),
            })
            .collect(),
        cpus: topology.cpus().to_string(),
        mounts: mounts::hugetlbfs_mounts()?
            .into_iter()
            .map(|mount| MountRow {
                shmkit: std::fs::canonicalize(&mount.path).is_ok_and(|path| ours.contains(&path)),
                path: mount.path.display().to_string(),
                page_size: mount.page_size.map(PageSize::name),
                page_size_option: mount.page_size_option,
            })
            .collect(),
        shmkit_base: mounts::base_dir().display().to_string(),
    };
    if args.json {
        return output::print_json(&out);
    }
    output::print(&render(&out))
}

fn render(out: &NumaOutput) -> String {
    let mut nodes = Table::new(&["NODE", "CPUS", "HUGE 2M FREE/TOTAL", "GIGANTIC 1G FREE/TOTAL"])
        .right_align(&[0, 2, 3]);
    for node in &out.nodes {
        nodes.row(vec![
            node.node.to_string(),
            if node.cpus.is_empty() { "-".to_owned() } else { node.cpus.clone() },
            format!("{}/{}", node.huge.free, node.huge.total),
            format!("{}/{}", node.gigantic.free, node.gigantic.total),
        ]);
    }
    let mut text = nodes.render();
    text.push('\n');
    if out.mounts.is_empty() {
        let _ = writeln!(
            text,
            "no hugetlbfs mounts: `cargo xtask setup-hugepages` mounts them under {}",
            out.shmkit_base
        );
    } else {
        let mut mounts = Table::new(&["MOUNT", "PAGE SIZE", "SHMKIT"]);
        for mount in &out.mounts {
            mounts.row(vec![
                mount.path.clone(),
                mount.page_size.map_or_else(|| mount.page_size_option.clone(), str::to_owned),
                if mount.shmkit { "yes" } else { "no" }.to_owned(),
            ]);
        }
        text.push_str(&mounts.render());
        let missing: Vec<&str> = [PageSize::Huge, PageSize::Gigantic]
            .into_iter()
            .filter(|&page_size| mounts::region_dir(page_size).is_err())
            .map(PageSize::name)
            .collect();
        if !missing.is_empty() {
            let _ = writeln!(
                text,
                "shmkit has no {} mount under {}: run `cargo xtask setup-hugepages`",
                missing.join(" or "),
                out.shmkit_base
            );
        }
    }
    text
}
