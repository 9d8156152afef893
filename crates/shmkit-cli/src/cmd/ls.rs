//! `shmkit ls`: every region on the host, like `ipcs -m` for every kind.

use serde::Serialize;
use shmkit_os::list::usage::{self, Target, Usage};

use crate::args::LsArgs;
use crate::error::Result;
use crate::output::{self, Table, octal_mode};
use crate::size::human;
use crate::target::{HostRegion, host_regions};
use crate::users::Users;

/// `shmkit ls --json`: `{"regions": [Region, ...]}`.
#[derive(Debug, Serialize)]
pub struct LsOutput {
    /// Every region, sorted: POSIX, hugetlbfs, System V.
    pub regions: Vec<RegionRow>,
}

/// One region as `ls --json` and `info --json` write it (field meanings in docs/cli.md).
#[derive(Debug, Serialize)]
pub struct RegionRow {
    /// The file name, or for System V the key as `ipcs` writes it (`0x1234abcd`).
    pub name: String,
    /// `posix`, `hugetlbfs` or `sysv`.
    pub kind: &'static str,
    /// The file, for POSIX and hugetlbfs regions.
    pub path: Option<String>,
    /// The System V key (`0x1234abcd`), `null` for files and private segments.
    pub sysv_key: Option<String>,
    /// The System V id (`shmid`), `null` for files.
    pub sysv_id: Option<i32>,
    /// Size in bytes.
    pub size: u64,
    /// `normal`, `huge`, `gigantic`, or `null` when unknown.
    pub page_size: Option<&'static str>,
    /// The page size in bytes, or `null` when unknown.
    pub page_size_bytes: Option<u64>,
    /// Permission bits in octal (`"0600"`).
    pub mode: String,
    /// Owner uid.
    pub uid: u32,
    /// Owner gid.
    pub gid: u32,
    /// Owner user name, `null` if not in /etc/passwd.
    pub owner: Option<String>,
    /// How many processes map it: the attach count for System V, else the processes whose
    /// `/proc/PID/maps` show it.
    pub mappers: u64,
    /// The pids found mapping it (those whose maps this user may read).
    pub mapper_pids: Vec<u32>,
    /// Mapped pages per NUMA node, or `null` when unknown (nobody maps it).
    pub placement: Option<Vec<NodePages>>,
}

/// Pages of a region on one NUMA node, as `--json` writes them (`shmkit-os`'s
/// [`usage::NodePages`], which does not depend on serde).
#[derive(Clone, Copy, Debug, Serialize)]
pub struct NodePages {
    /// The node.
    pub node: u32,
    /// Pages (of the region's page size) on it.
    pub pages: u64,
}

impl From<&usage::NodePages> for NodePages {
    fn from(found: &usage::NodePages) -> Self {
        Self { node: found.node, pages: found.pages }
    }
}

/// The target to scan `/proc` for, for each region.
pub fn scan_target(region: &HostRegion) -> Option<Target> {
    match (region.sysv_id(), &region.listed.path) {
        (Some(id), _) => Some(Target::SysV(id)),
        (None, Some(path)) => Some(Target::file(path)),
        (None, None) => None,
    }
}

/// A region's row, with what the scan found.
pub fn row(region: &HostRegion, usage: Option<&Usage>, users: &Users) -> RegionRow {
    let listed = &region.listed;
    let pids = usage.map(|usage| usage.pids.clone()).unwrap_or_default();
    // System V: the kernel's count is exact; files: the processes found.
    let mappers = listed.attach_count.unwrap_or(pids.len() as u64);
    let page_size_bytes =
        region.page_size_bytes().or_else(|| usage.and_then(|usage| usage.page_size));
    let page_size = listed.page_size.map(shmkit_name::PageSize::name).or_else(|| {
        page_size_bytes
            .and_then(|bytes| shmkit_name::PageSize::from_bytes(bytes).ok())
            .map(shmkit_name::PageSize::name)
    });
    RegionRow {
        name: listed.name.clone(),
        kind: region.kind_name(),
        path: listed.path.as_ref().map(|path| path.display().to_string()),
        sysv_key: region.sysv_key().map(|key| format!("0x{:08x}", key.get().cast_unsigned())),
        sysv_id: region.sysv_id(),
        size: listed.size,
        page_size,
        page_size_bytes,
        mode: octal_mode(listed.mode),
        uid: listed.uid,
        gid: listed.gid,
        owner: users.name(listed.uid).map(str::to_owned),
        mappers,
        mapper_pids: pids,
        placement: usage
            .and_then(|usage| usage.placement.as_ref())
            .map(|nodes| nodes.iter().map(NodePages::from).collect()),
    }
}

/// Placement for people: `0:16` or `0:8 1:8`, `-` when unknown.
pub fn placement_text(placement: Option<&[NodePages]>) -> String {
    match placement {
        Some(nodes) if !nodes.is_empty() => nodes
            .iter()
            .map(|node| format!("{}:{}", node.node, node.pages))
            .collect::<Vec<_>>()
            .join(" "),
        _ => "-".to_owned(),
    }
}

/// Runs `shmkit ls`.
pub fn run(args: &LsArgs) -> Result<()> {
    let regions = host_regions()?;
    let targets: Vec<Target> = regions.iter().filter_map(scan_target).collect();
    let found = usage::scan(&targets)?;
    let users = Users::read();
    let rows: Vec<RegionRow> = regions
        .iter()
        .map(|region| {
            row(region, scan_target(region).as_ref().and_then(|target| found.get(target)), &users)
        })
        .collect();
    if args.json {
        return output::print_json(&LsOutput { regions: rows });
    }
    if rows.is_empty() {
        return output::print("no shared memory regions on this host\n");
    }
    let mut table =
        Table::new(&["NAME", "KIND", "ID", "SIZE", "PAGE", "MODE", "OWNER", "MAPPERS", "NUMA"])
            .right_align(&[2, 3, 7]);
    for row in &rows {
        table.row(vec![
            row.name.clone(),
            row.kind.to_owned(),
            row.sysv_id.map_or_else(|| "-".to_owned(), |id| id.to_string()),
            human(row.size),
            row.page_size.map_or_else(
                || row.page_size_bytes.map_or_else(|| "-".to_owned(), human),
                str::to_owned,
            ),
            row.mode.clone(),
            row.owner.clone().unwrap_or_else(|| row.uid.to_string()),
            row.mappers.to_string(),
            placement_text(row.placement.as_deref()),
        ]);
    }
    output::print(&table.render())
}
