//! [`Topology`]: this machine's NUMA nodes, their CPUs and huge page pools, read from sysfs.

use std::fs;
use std::io;
use std::path::Path;

use shmkit_name::PageSize;

use super::cpulist::{CpuList, format_ids};
use crate::error::{Error, Result};

/// Where sysfs is mounted on every Linux system.
const SYSFS: &str = "/sys";

/// The pool directories of the two huge page sizes, as the kernel names them.
const HUGE_POOL: &str = "hugepages-2048kB";
const GIGANTIC_POOL: &str = "hugepages-1048576kB";

/// The NUMA nodes of this machine, their CPUs and their huge page pools, as sysfs showed them
/// when read.
///
/// Read from `/sys/devices/system/node` (`online`, then each `nodeN/cpulist` and
/// `nodeN/hugepages/hugepages-{2048,1048576}kB/{nr,free}_hugepages`) and
/// `/sys/devices/system/cpu/online`. A kernel built without NUMA has no node directory: it is
/// shown as one node 0 holding every online CPU, with the machine-wide pools of
/// `/sys/kernel/mm/hugepages`.
///
/// Node ids need not be contiguous (a machine may have nodes 0 and 2), so look nodes up by id
/// with [`Topology::node`], never by position.
///
/// # Examples
///
/// ```
/// use shmkit_os::numa::Topology;
///
/// let topology = Topology::read()?;
/// assert!(topology.node_count() >= 1);
/// let node = topology.node_of_cpu(0)?;
/// assert!(topology.node(node)?.cpus.contains(0));
/// for node in topology.nodes() {
///     println!("node {}: CPUs {}, {} free 2 MiB pages", node.id, node.cpus, node.huge.free);
/// }
/// # Ok::<(), shmkit_os::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topology {
    nodes: Vec<Node>,
    cpus: CpuList,
}

/// One NUMA node: its CPUs and its huge page pools.
///
/// # Examples
///
/// ```
/// use shmkit_name::PageSize;
/// use shmkit_os::numa::Topology;
///
/// let topology = Topology::read()?;
/// let node = &topology.nodes()[0];
/// assert_eq!(node.pool(PageSize::Huge), Some(node.huge));
/// assert_eq!(node.pool(PageSize::Normal), None);
/// # Ok::<(), shmkit_os::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// The node id, as the kernel numbers it.
    pub id: u32,
    /// The node's CPUs, ascending; empty for a node with memory only.
    pub cpus: CpuList,
    /// The node's pool of 2 MiB pages.
    pub huge: PagePool,
    /// The node's pool of 1 GiB pages.
    pub gigantic: PagePool,
}

/// A pool of huge pages the kernel holds in reserve (`nr_hugepages`, `free_hugepages`).
///
/// A pool the kernel does not have (no such page size, or no sysfs file) shows as 0 pages.
///
/// # Examples
///
/// ```
/// use shmkit_os::numa::PagePool;
///
/// let pool = PagePool { total: 8, free: 3 };
/// assert_eq!(pool.total - pool.free, 5);
/// assert_eq!(PagePool::default(), PagePool { total: 0, free: 0 });
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct PagePool {
    /// Pages in the pool (`nr_hugepages`).
    pub total: u64,
    /// Pages in the pool not in use (`free_hugepages`).
    pub free: u64,
}

impl Node {
    /// The pool of `page_size` pages; `None` for [`PageSize::Normal`], which has no pool.
    ///
    /// # Examples
    ///
    /// ```
    /// use shmkit_name::PageSize;
    /// use shmkit_os::numa::Topology;
    ///
    /// let topology = Topology::read()?;
    /// let pool = topology.node(0)?.pool(PageSize::Gigantic);
    /// assert!(pool.is_some_and(|pool| pool.free <= pool.total));
    /// # Ok::<(), shmkit_os::Error>(())
    /// ```
    pub fn pool(&self, page_size: PageSize) -> Option<PagePool> {
        match page_size {
            PageSize::Normal => None,
            PageSize::Huge => Some(self.huge),
            PageSize::Gigantic => Some(self.gigantic),
        }
    }
}

impl Topology {
    /// Reads the topology of this machine from `/sys`.
    ///
    /// # Errors
    ///
    /// [`Error::Os`] when a sysfs file cannot be read (other than a missing huge page pool, which
    /// counts as empty); [`Error::Corrupted`] naming the file when its contents do not parse.
    ///
    /// # Examples
    ///
    /// ```
    /// let topology = shmkit_os::numa::Topology::read()?;
    /// assert!(topology.cpu_count() >= 1);
    /// # Ok::<(), shmkit_os::Error>(())
    /// ```
    pub fn read() -> Result<Self> {
        Self::read_from(Path::new(SYSFS))
    }

    /// Reads the topology from a sysfs tree mounted at `sysfs_root` (for tests, a directory
    /// built to look like `/sys`).
    ///
    /// # Errors
    ///
    /// As [`Topology::read`].
    ///
    /// # Examples
    ///
    /// ```
    /// use std::fs;
    /// use shmkit_os::numa::Topology;
    ///
    /// let root = std::env::temp_dir().join(format!("shmkit-doc-topology-{}", std::process::id()));
    /// fs::create_dir_all(root.join("devices/system/cpu"))?;
    /// fs::write(root.join("devices/system/cpu/online"), "0-3\n")?;
    ///
    /// // No devices/system/node: a kernel without NUMA, shown as one node 0.
    /// let topology = Topology::read_from(&root)?;
    /// assert_eq!(topology.node_count(), 1);
    /// assert_eq!(topology.node(0)?.cpus.as_slice(), [0, 1, 2, 3]);
    /// fs::remove_dir_all(&root)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn read_from(sysfs_root: &Path) -> Result<Self> {
        let cpus = online_cpus(sysfs_root)?;
        let node_dir = sysfs_root.join("devices/system/node");
        let nodes = if let Some(ids) = node_ids(&node_dir)? {
            ids.into_iter().map(|id| read_node(&node_dir, id)).collect::<Result<Vec<_>>>()?
        } else {
            let pools = sysfs_root.join("kernel/mm/hugepages");
            vec![Node {
                id: 0,
                cpus: cpus.clone(),
                huge: read_pool(&pools.join(HUGE_POOL))?,
                gigantic: read_pool(&pools.join(GIGANTIC_POOL))?,
            }]
        };
        Ok(Self { nodes, cpus })
    }

    /// How many NUMA nodes there are.
    ///
    /// # Examples
    ///
    /// ```
    /// let topology = shmkit_os::numa::Topology::read()?;
    /// assert_eq!(topology.node_count(), topology.nodes().len());
    /// # Ok::<(), shmkit_os::Error>(())
    /// ```
    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    /// The nodes, sorted by id.
    ///
    /// # Examples
    ///
    /// ```
    /// let topology = shmkit_os::numa::Topology::read()?;
    /// assert!(topology.nodes().is_sorted_by_key(|node| node.id));
    /// # Ok::<(), shmkit_os::Error>(())
    /// ```
    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    /// The node with id `node`.
    ///
    /// # Errors
    ///
    /// [`Error::UnknownNode`] listing the nodes there are.
    ///
    /// # Examples
    ///
    /// ```
    /// let topology = shmkit_os::numa::Topology::read()?;
    /// assert_eq!(topology.node(0)?.id, 0);
    /// assert!(topology.node(999).is_err());
    /// # Ok::<(), shmkit_os::Error>(())
    /// ```
    pub fn node(&self, node: u32) -> Result<&Node> {
        match self.nodes.binary_search_by_key(&node, |candidate| candidate.id) {
            Ok(index) => Ok(&self.nodes[index]),
            Err(_) => Err(unknown_node(node, self.nodes.iter().map(|node| node.id))),
        }
    }

    /// How many CPUs are online.
    ///
    /// # Examples
    ///
    /// ```
    /// let topology = shmkit_os::numa::Topology::read()?;
    /// assert_eq!(topology.cpu_count(), topology.cpus().len());
    /// # Ok::<(), shmkit_os::Error>(())
    /// ```
    pub fn cpu_count(&self) -> usize {
        self.cpus.len()
    }

    /// The online CPUs, as `/sys/devices/system/cpu/online` lists them.
    ///
    /// # Examples
    ///
    /// ```
    /// let topology = shmkit_os::numa::Topology::read()?;
    /// assert!(topology.cpus().contains(0));
    /// # Ok::<(), shmkit_os::Error>(())
    /// ```
    pub fn cpus(&self) -> &CpuList {
        &self.cpus
    }

    /// The node CPU `cpu` belongs to.
    ///
    /// # Errors
    ///
    /// [`Error::UnknownCpu`] listing the online CPUs, when no node holds `cpu`.
    ///
    /// # Examples
    ///
    /// ```
    /// let topology = shmkit_os::numa::Topology::read()?;
    /// let node = topology.node_of_cpu(0)?;
    /// assert!(topology.node(node)?.cpus.contains(0));
    /// assert!(topology.node_of_cpu(1_000_000).is_err());
    /// # Ok::<(), shmkit_os::Error>(())
    /// ```
    pub fn node_of_cpu(&self, cpu: u32) -> Result<u32> {
        self.nodes
            .iter()
            .find(|node| node.cpus.contains(cpu))
            .map(|node| node.id)
            .ok_or_else(|| Error::UnknownCpu { cpu, available: format_ids(&self.cpus) })
    }

    /// The lowest-numbered CPU of node `node`, or `None` for a node without CPUs.
    ///
    /// # Errors
    ///
    /// [`Error::UnknownNode`] when there is no such node.
    ///
    /// # Examples
    ///
    /// ```
    /// let topology = shmkit_os::numa::Topology::read()?;
    /// let node = topology.node_of_cpu(0)?;
    /// assert_eq!(topology.first_cpu_of_node(node)?, Some(0));
    /// # Ok::<(), shmkit_os::Error>(())
    /// ```
    pub fn first_cpu_of_node(&self, node: u32) -> Result<Option<u32>> {
        Ok(self.node(node)?.cpus.iter().min())
    }

    /// The node of each CPU of `cpus`, one entry per entry of `cpus` and in the same order, so
    /// that the parts of a multi-part region placed by a CPU list each get their node.
    ///
    /// # Errors
    ///
    /// [`Error::UnknownCpu`] for the first CPU that no node holds.
    ///
    /// # Examples
    ///
    /// ```
    /// use shmkit_os::numa::{CpuList, Topology};
    ///
    /// let topology = Topology::read()?;
    /// let cpus: CpuList = "0,0".parse()?;
    /// let nodes = topology.nodes_of(&cpus)?;
    /// assert_eq!(nodes.len(), 2);
    /// assert_eq!(nodes[0], topology.node_of_cpu(0)?);
    /// # Ok::<(), shmkit_os::Error>(())
    /// ```
    pub fn nodes_of(&self, cpus: &CpuList) -> Result<Vec<u32>> {
        cpus.iter().map(|cpu| self.node_of_cpu(cpu)).collect()
    }
}

/// Checks that node `node` exists on this machine, reading only the node list (cheap enough to
/// do before every NUMA call, and never stale after a node is brought online).
pub(super) fn check_node(node: u32) -> Result<()> {
    let node_dir = Path::new(SYSFS).join("devices/system/node");
    let ids = node_ids(&node_dir)?.unwrap_or_else(|| vec![0]);
    if ids.contains(&node) { Ok(()) } else { Err(unknown_node(node, ids)) }
}

fn unknown_node(node: u32, available: impl IntoIterator<Item = u32>) -> Error {
    Error::UnknownNode { node, available: format_ids(available) }
}

/// The online CPUs: `cpu/online`, or `cpu/possible` on a kernel too old or odd to have it.
fn online_cpus(sysfs_root: &Path) -> Result<CpuList> {
    let cpu_dir = sysfs_root.join("devices/system/cpu");
    let online = cpu_dir.join("online");
    match read_list(&online)? {
        Some(cpus) => Ok(cpus),
        None => read_list(&cpu_dir.join("possible"))?.ok_or_else(|| not_found("read", &online)),
    }
}

/// The node ids, ascending, or `None` when there is no node directory (a kernel without NUMA).
///
/// `online` is the kernel's own list; without it, the `nodeN` directories are.
fn node_ids(node_dir: &Path) -> Result<Option<Vec<u32>>> {
    let online = node_dir.join("online");
    let mut ids = match read_list(&online)? {
        Some(list) => list.as_slice().to_vec(),
        None => match fs::read_dir(node_dir) {
            Ok(entries) => {
                let mut ids = Vec::new();
                for entry in entries {
                    let entry = entry.map_err(Error::io("read_dir", node_dir.display()))?;
                    if let Some(id) = entry.file_name().to_str().and_then(node_id) {
                        ids.push(id);
                    }
                }
                ids
            }
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(error) => return Err(Error::io("read_dir", node_dir.display())(error)),
        },
    };
    ids.sort_unstable();
    ids.dedup();
    if ids.is_empty() {
        return Err(corrupted(node_dir, "it lists no NUMA node, not even node 0".to_owned()));
    }
    Ok(Some(ids))
}

/// The id in a directory name `node<N>`.
fn node_id(name: &str) -> Option<u32> {
    let digits = name.strip_prefix("node")?;
    if digits.is_empty() || !digits.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

fn read_node(node_dir: &Path, id: u32) -> Result<Node> {
    let dir = node_dir.join(format!("node{id}"));
    let cpulist = dir.join("cpulist");
    let mut cpus = read_list(&cpulist)?.ok_or_else(|| not_found("read", &cpulist))?;
    // Promise ascending CPUs whatever the file's order, so `first_cpu_of_node` and Display agree.
    let mut sorted = cpus.as_slice().to_vec();
    if !sorted.is_sorted() {
        sorted.sort_unstable();
        cpus = CpuList::from(sorted);
    }
    let pools = dir.join("hugepages");
    Ok(Node {
        id,
        cpus,
        huge: read_pool(&pools.join(HUGE_POOL))?,
        gigantic: read_pool(&pools.join(GIGANTIC_POOL))?,
    })
}

/// A pool's two counts; a missing file (no such page size here) counts as 0.
fn read_pool(dir: &Path) -> Result<PagePool> {
    Ok(PagePool {
        total: read_count(&dir.join("nr_hugepages"))?.unwrap_or(0),
        free: read_count(&dir.join("free_hugepages"))?.unwrap_or(0),
    })
}

fn read_count(path: &Path) -> Result<Option<u64>> {
    let Some(text) = read_optional(path)? else { return Ok(None) };
    let count = text.trim();
    // Digits only: `parse` would also take a sign.
    if count.bytes().all(|byte| byte.is_ascii_digit())
        && let Ok(count) = count.parse()
    {
        return Ok(Some(count));
    }
    Err(corrupted(path, format!("expected a page count, found {count:?}")))
}

fn read_list(path: &Path) -> Result<Option<CpuList>> {
    let Some(text) = read_optional(path)? else { return Ok(None) };
    text.parse::<CpuList>().map(Some).map_err(|error| corrupted(path, error.to_string()))
}

/// A file's contents, `None` if it does not exist.
fn read_optional(path: &Path) -> Result<Option<String>> {
    match fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(Error::io("read", path.display())(error)),
    }
}

fn corrupted(path: &Path, reason: String) -> Error {
    Error::Corrupted { target: path.display().to_string(), reason }
}

fn not_found(op: &'static str, path: &Path) -> Error {
    Error::io(op, path.display())(io::ErrorKind::NotFound.into())
}
