//! NUMA topology from fake and real sysfs trees, thread and range binding, and placement checks
//! on real anonymous mappings.

use std::error::Error as StdError;
use std::fs;
use std::path::PathBuf;
use std::ptr;
use std::sync::atomic::{AtomicUsize, Ordering};

use rustix::mm::{Advice, MapFlags, ProtFlags, madvise, mmap_anonymous, munmap};
use shmkit_name::PageSize;
use shmkit_os::Error;
use shmkit_os::numa::{
    CpuList, PagePool, PolicyMode, Topology, bind_range, bind_thread_to_node, format_ids,
    page_nodes, thread_policy, verify_placement,
};

type TestResult = Result<(), Box<dyn StdError>>;

// ---------------------------------------------------------------------------------------------
// Fake sysfs trees

/// A directory shaped like `/sys`, unique per test, removed on drop.
struct FakeSysfs {
    root: PathBuf,
}

impl FakeSysfs {
    fn new() -> Self {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let root = std::env::temp_dir().join(format!(
            "shmkit-numa-test-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        // A leftover from a killed run with the same pid would only add stale files.
        let _ = fs::remove_dir_all(&root);
        Self { root }
    }

    fn write(&self, path: &str, contents: &str) -> &Self {
        let path = self.root.join(path);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent)
                .unwrap_or_else(|error| panic!("{}: {error}", parent.display()));
        }
        fs::write(&path, contents).unwrap_or_else(|error| panic!("{}: {error}", path.display()));
        self
    }

    fn mkdir(&self, path: &str) -> &Self {
        let path = self.root.join(path);
        fs::create_dir_all(&path).unwrap_or_else(|error| panic!("{}: {error}", path.display()));
        self
    }

    fn pool(&self, node: u32, dir: &str, total: u64, free: u64) -> &Self {
        let base = format!("devices/system/node/node{node}/hugepages/{dir}");
        self.write(&format!("{base}/nr_hugepages"), &format!("{total}\n"))
            .write(&format!("{base}/free_hugepages"), &format!("{free}\n"))
    }

    fn path(&self, path: &str) -> String {
        self.root.join(path).display().to_string()
    }

    fn read(&self) -> Result<Topology, Error> {
        Topology::read_from(&self.root)
    }
}

impl Drop for FakeSysfs {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.root);
    }
}

/// Two nodes, 0 and 2 (ids need not be contiguous), with two CPUs each and some huge pages.
fn two_nodes() -> FakeSysfs {
    let sysfs = FakeSysfs::new();
    sysfs
        .write("devices/system/cpu/online", "0-3\n")
        .write("devices/system/cpu/possible", "0-7\n")
        .write("devices/system/node/online", "0,2\n")
        .write("devices/system/node/possible", "0-3\n")
        .write("devices/system/node/has_cpu", "0,2\n")
        .write("devices/system/node/node0/cpulist", "0-1\n")
        .write("devices/system/node/node2/cpulist", "2-3\n")
        .pool(0, "hugepages-2048kB", 16, 10)
        .pool(0, "hugepages-1048576kB", 2, 1)
        .pool(2, "hugepages-2048kB", 8, 8);
    sysfs
}

#[test]
fn reads_non_contiguous_nodes_with_cpus_and_pools() -> TestResult {
    let sysfs = two_nodes();
    let topology = sysfs.read()?;

    assert_eq!(topology.node_count(), 2);
    let ids: Vec<u32> = topology.nodes().iter().map(|node| node.id).collect();
    assert_eq!(ids, [0, 2]);
    assert_eq!(topology.cpu_count(), 4);
    assert_eq!(topology.cpus().as_slice(), [0, 1, 2, 3]);

    let node0 = topology.node(0)?;
    assert_eq!(node0.cpus.as_slice(), [0, 1]);
    assert_eq!(node0.huge, PagePool { total: 16, free: 10 });
    assert_eq!(node0.gigantic, PagePool { total: 2, free: 1 });
    assert_eq!(node0.pool(PageSize::Huge), Some(PagePool { total: 16, free: 10 }));
    assert_eq!(node0.pool(PageSize::Gigantic), Some(PagePool { total: 2, free: 1 }));
    assert_eq!(node0.pool(PageSize::Normal), None);

    let node2 = topology.node(2)?;
    assert_eq!(node2.cpus.as_slice(), [2, 3]);
    assert_eq!(node2.huge, PagePool { total: 8, free: 8 });
    // No hugepages-1048576kB directory: no gigantic pages there.
    assert_eq!(node2.gigantic, PagePool::default());

    assert_eq!(topology.node_of_cpu(0)?, 0);
    assert_eq!(topology.node_of_cpu(1)?, 0);
    assert_eq!(topology.node_of_cpu(2)?, 2);
    assert_eq!(topology.node_of_cpu(3)?, 2);
    assert_eq!(topology.first_cpu_of_node(0)?, Some(0));
    assert_eq!(topology.first_cpu_of_node(2)?, Some(2));
    assert_eq!(topology.nodes_of(&"3,0,2-3,1".parse()?)?, [2, 0, 2, 2, 0]);
    assert_eq!(topology.nodes_of(&CpuList::new())?, Vec::<u32>::new());
    Ok(())
}

#[test]
fn unknown_nodes_and_cpus_list_what_exists() -> TestResult {
    let sysfs = two_nodes();
    let topology = sysfs.read()?;

    let error = topology.node(1).err().ok_or("node 1 found")?;
    assert!(matches!(&error, Error::UnknownNode { node: 1, available } if available == "0,2"));
    assert_eq!(error.to_string(), "NUMA node 1 does not exist: this machine has node(s) 0,2");
    assert!(matches!(topology.first_cpu_of_node(3), Err(Error::UnknownNode { node: 3, .. })));

    let error = topology.node_of_cpu(4).err().ok_or("CPU 4 found")?;
    assert_eq!(error.to_string(), "CPU 4 does not exist: this machine has CPUs 0-3");
    let error = topology.nodes_of(&"0,9,1".parse()?).err().ok_or("CPU 9 found")?;
    assert!(matches!(error, Error::UnknownCpu { cpu: 9, .. }));
    Ok(())
}

#[test]
fn enumerates_node_directories_without_an_online_file() -> TestResult {
    let sysfs = FakeSysfs::new();
    sysfs
        .write("devices/system/cpu/online", "0-3\n")
        .write("devices/system/node/node2/cpulist", "2-3\n")
        .write("devices/system/node/node0/cpulist", "0-1\n")
        .write("devices/system/node/has_cpu", "0,2\n")
        .mkdir("devices/system/node/power")
        .mkdir("devices/system/node/nodeX")
        .mkdir("devices/system/node/node");
    let topology = sysfs.read()?;
    let ids: Vec<u32> = topology.nodes().iter().map(|node| node.id).collect();
    assert_eq!(ids, [0, 2]);
    assert_eq!(topology.node(2)?.cpus.as_slice(), [2, 3]);
    assert_eq!(topology.node(0)?.huge, PagePool::default());
    Ok(())
}

#[test]
fn a_node_without_cpus_has_an_empty_list() -> TestResult {
    let sysfs = FakeSysfs::new();
    sysfs
        .write("devices/system/cpu/online", "0-1\n")
        .write("devices/system/node/online", "0-1\n")
        .write("devices/system/node/node0/cpulist", "0-1\n")
        .write("devices/system/node/node1/cpulist", "\n")
        .pool(1, "hugepages-2048kB", 4, 4);
    let topology = sysfs.read()?;
    assert!(topology.node(1)?.cpus.is_empty());
    assert_eq!(topology.first_cpu_of_node(1)?, None);
    assert_eq!(topology.node(1)?.huge, PagePool { total: 4, free: 4 });
    assert_eq!(topology.node_of_cpu(1)?, 0);
    Ok(())
}

#[test]
fn missing_hugepage_directories_mean_empty_pools() -> TestResult {
    let sysfs = FakeSysfs::new();
    sysfs
        .write("devices/system/cpu/online", "0\n")
        .write("devices/system/node/online", "0\n")
        .write("devices/system/node/node0/cpulist", "0\n")
        // A pool directory with one of its two files.
        .write("devices/system/node/node0/hugepages/hugepages-2048kB/nr_hugepages", "3\n");
    let node = sysfs.read()?.node(0)?.clone();
    assert_eq!(node.huge, PagePool { total: 3, free: 0 });
    assert_eq!(node.gigantic, PagePool::default());
    Ok(())
}

#[test]
fn without_a_node_directory_everything_is_node_0() -> TestResult {
    let sysfs = FakeSysfs::new();
    sysfs
        .write("devices/system/cpu/online", "0-5\n")
        .write("kernel/mm/hugepages/hugepages-2048kB/nr_hugepages", "64\n")
        .write("kernel/mm/hugepages/hugepages-2048kB/free_hugepages", "60\n")
        .write("kernel/mm/hugepages/hugepages-1048576kB/nr_hugepages", "1\n")
        .write("kernel/mm/hugepages/hugepages-1048576kB/free_hugepages", "0\n");
    let topology = sysfs.read()?;
    assert_eq!(topology.node_count(), 1);
    let node = topology.node(0)?;
    assert_eq!(node.id, 0);
    assert_eq!(node.cpus.as_slice(), [0, 1, 2, 3, 4, 5]);
    assert_eq!(node.huge, PagePool { total: 64, free: 60 });
    assert_eq!(node.gigantic, PagePool { total: 1, free: 0 });
    assert_eq!(topology.node_of_cpu(5)?, 0);
    assert_eq!(
        topology.node(1).err().map(|error| error.to_string()).as_deref(),
        Some("NUMA node 1 does not exist: this machine has node(s) 0")
    );
    Ok(())
}

#[test]
fn falls_back_to_possible_cpus_without_online() -> TestResult {
    let sysfs = FakeSysfs::new();
    sysfs.write("devices/system/cpu/possible", "0-2\n");
    assert_eq!(sysfs.read()?.cpus().as_slice(), [0, 1, 2]);
    Ok(())
}

#[test]
fn malformed_sysfs_files_are_named_in_errors() {
    let cases: [(&str, &str, String); 5] = [
        (
            "devices/system/node/node0/cpulist",
            "0-x\n",
            r#"is corrupted: invalid CPU list: item "0-x" at byte 0: "x" is not a number"#.to_owned(),
        ),
        (
            "devices/system/node/node0/hugepages/hugepages-2048kB/free_hugepages",
            "lots\n",
            r#"is corrupted: expected a page count, found "lots""#.to_owned(),
        ),
        (
            "devices/system/node/node0/hugepages/hugepages-1048576kB/nr_hugepages",
            "-1\n",
            r#"is corrupted: expected a page count, found "-1""#.to_owned(),
        ),
        (
            "devices/system/node/online",
            "0,,1\n",
            "is corrupted: invalid CPU list: empty item at byte 2".to_owned(),
        ),
        (
            "devices/system/cpu/online",
            "0-3 junk\n",
            r#"is corrupted: invalid CPU list: item "0-3 junk" at byte 0: "3 junk" is not a number"#
                .to_owned(),
        ),
    ];
    for (file, contents, message) in cases {
        let sysfs = FakeSysfs::new();
        sysfs
            .write("devices/system/cpu/online", "0\n")
            .write("devices/system/node/online", "0\n")
            .write("devices/system/node/node0/cpulist", "0\n")
            .write(file, contents);
        let error = sysfs.read().err().map(|error| error.to_string());
        assert_eq!(error, Some(format!("{} {message}", sysfs.path(file))), "{file}");
    }
}

#[test]
fn missing_sysfs_files_are_named_in_errors() {
    // Online node without its directory.
    let sysfs = FakeSysfs::new();
    sysfs.write("devices/system/cpu/online", "0\n").write("devices/system/node/online", "0-1\n");
    let error = sysfs.read().err().map(|error| error.to_string()).unwrap_or_default();
    let cpulist = sysfs.path("devices/system/node/node0/cpulist");
    assert!(error.starts_with(&format!("read on {cpulist} failed: ")), "{error}");
    assert!(matches!(sysfs.read(), Err(Error::Os { op: "read", .. })));

    // No CPU list at all.
    let sysfs = FakeSysfs::new();
    sysfs.mkdir("devices/system");
    let error = sysfs.read().err().map(|error| error.to_string()).unwrap_or_default();
    let online = sysfs.path("devices/system/cpu/online");
    assert!(error.starts_with(&format!("read on {online} failed: ")), "{error}");

    // A node directory listing no node.
    let sysfs = FakeSysfs::new();
    sysfs.write("devices/system/cpu/online", "0\n").write("devices/system/node/online", "\n");
    let error = sysfs.read().err().map(|error| error.to_string()).unwrap_or_default();
    let node_dir = sysfs.path("devices/system/node");
    assert_eq!(error, format!("{node_dir} is corrupted: it lists no NUMA node, not even node 0"));
}

// ---------------------------------------------------------------------------------------------
// This machine

#[test]
fn real_topology_has_node_0_with_cpu_0_and_every_cpu() -> TestResult {
    let topology = Topology::read()?;
    assert!(topology.node_count() >= 1);
    assert!(topology.node(0)?.cpus.contains(0));
    assert_eq!(topology.node_of_cpu(0)?, 0);
    assert_eq!(topology.first_cpu_of_node(0)?, Some(0));
    assert_eq!(topology.cpu_count(), std::thread::available_parallelism()?.get());
    let in_nodes: usize = topology.nodes().iter().map(|node| node.cpus.len()).sum();
    assert_eq!(in_nodes, topology.cpu_count());
    for node in topology.nodes() {
        for page_size in [PageSize::Huge, PageSize::Gigantic] {
            let pool = node.pool(page_size).ok_or("no pool")?;
            assert!(pool.free <= pool.total, "node {} {page_size}: {pool:?}", node.id);
        }
    }
    Ok(())
}

/// A private anonymous mapping without transparent huge pages (so that touching one page faults
/// in exactly that page), unmapped on drop.
struct Mapping {
    addr: *mut u8,
    len: usize,
}

impl Mapping {
    fn new(pages: usize) -> Result<Self, Box<dyn StdError>> {
        let len = pages * page();
        // SAFETY: a fresh mapping at an address the kernel picks; it overlaps nothing.
        let addr = unsafe {
            mmap_anonymous(
                ptr::null_mut(),
                len,
                ProtFlags::READ | ProtFlags::WRITE,
                MapFlags::PRIVATE,
            )
        }?;
        let mapping = Self { addr: addr.cast(), len };
        // SAFETY: advice on the mapping just created; NOHUGEPAGE changes no contents.
        unsafe { madvise(addr, len, Advice::LinuxNoHugepage) }?;
        Ok(mapping)
    }

    /// Writes one byte in each of the first `pages` pages, faulting them in.
    fn touch(&self, pages: usize) {
        for page_index in 0..pages.min(self.len / page()) {
            // SAFETY: inside the mapping, which is readable and writable and used by no one else.
            unsafe { self.addr.add(page_index * page()).write_volatile(1) };
        }
    }

    fn pages(&self) -> usize {
        self.len / page()
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `new`; nothing refers to it after the drop.
        let _ = unsafe { munmap(self.addr.cast(), self.len) };
    }
}

fn page() -> usize {
    rustix::param::page_size()
}

fn node_list() -> Result<String, Box<dyn StdError>> {
    Ok(format_ids(Topology::read()?.nodes().iter().map(|node| node.id)))
}

#[test]
fn binding_the_thread_places_new_pages_and_restores_the_policy() -> TestResult {
    let before = thread_policy()?;
    let mapping = Mapping::new(64)?;
    {
        let guard = bind_thread_to_node(0)?;
        assert_eq!(guard.previous(), &before);
        let bound = thread_policy()?;
        assert_eq!(bound.mode(), PolicyMode::Bind);
        assert_eq!(bound.nodes(), [0]);

        mapping.touch(mapping.pages());
        assert_eq!(page_nodes(mapping.addr, mapping.len, page())?, vec![0; 64]);
        verify_placement("numa-test", mapping.addr, mapping.len, page(), 0)?;
    }
    assert_eq!(thread_policy()?, before);
    Ok(())
}

#[test]
fn explicit_restore_and_nested_guards() -> TestResult {
    let before = thread_policy()?;
    let outer = bind_thread_to_node(0)?;
    let inner = bind_thread_to_node(0)?;
    assert_eq!(inner.previous().mode(), PolicyMode::Bind);
    assert_eq!(inner.previous().nodes(), [0]);
    inner.restore()?;
    assert_eq!(thread_policy()?.mode(), PolicyMode::Bind);
    outer.restore()?;
    assert_eq!(thread_policy()?, before);
    Ok(())
}

#[test]
fn the_policy_is_per_thread_and_inherited_by_new_threads() -> TestResult {
    let before = thread_policy()?;
    let (go, wait) = std::sync::mpsc::channel::<()>();
    let existing = std::thread::spawn(move || {
        let _ = wait.recv();
        thread_policy().map(|policy| policy.mode())
    });
    let guard = bind_thread_to_node(0)?;
    go.send(())?;
    let existing = existing.join().map_err(|_| "thread panicked")??;
    assert_eq!(existing, before.mode());

    // clone(2) copies the policy: a thread spawned while bound is bound too, for good.
    let spawned = std::thread::spawn(|| {
        thread_policy().map(|policy| (policy.mode(), policy.nodes().to_vec()))
    });
    drop(guard);
    let spawned = spawned.join().map_err(|_| "thread panicked")??;
    assert_eq!(spawned, (PolicyMode::Bind, vec![0]));
    assert_eq!(thread_policy()?, before);
    Ok(())
}

#[test]
fn binding_a_range_places_its_pages() -> TestResult {
    for strict in [false, true] {
        let mapping = Mapping::new(16)?;
        // SAFETY: the mapping is this test's own.
        unsafe { bind_range(mapping.addr, mapping.len, 0, strict) }?;
        mapping.touch(mapping.pages());
        assert_eq!(page_nodes(mapping.addr, mapping.len, page())?, vec![0; 16], "strict {strict}");
        verify_placement("numa-test", mapping.addr, mapping.len, page(), 0)?;
    }
    Ok(())
}

#[test]
fn strict_binding_moves_pages_already_present() -> TestResult {
    let mapping = Mapping::new(8)?;
    mapping.touch(8);
    // SAFETY: the mapping is this test's own.
    unsafe { bind_range(mapping.addr, mapping.len, 0, true) }?;
    verify_placement("numa-test", mapping.addr, mapping.len, page(), 0)?;
    Ok(())
}

#[test]
fn binding_a_range_refuses_an_unaligned_address() -> TestResult {
    let mapping = Mapping::new(2)?;
    // SAFETY: the mapping is this test's own (and the call is refused before mbind).
    let error = unsafe { bind_range(mapping.addr.add(1), page(), 0, false) }
        .err()
        .ok_or("unaligned mbind accepted")?;
    assert!(matches!(error, Error::InvalidInput { what: "address", .. }), "{error}");
    Ok(())
}

#[test]
fn untouched_pages_are_reported_and_count_as_misplaced() -> TestResult {
    let mapping = Mapping::new(8)?;
    mapping.touch(3);
    let statuses = page_nodes(mapping.addr, mapping.len, page())?;
    let mut expected = vec![0; 3];
    expected.extend([-libc::ENOENT; 5]);
    assert_eq!(statuses, expected);

    let error = verify_placement("numa-test", mapping.addr, mapping.len, page(), 0)
        .err()
        .ok_or("untouched pages verified")?;
    assert!(
        matches!(&error, Error::Misplaced { target, node: 0, misplaced: 5, pages: 8 } if target == "numa-test"),
        "{error:?}"
    );
    assert_eq!(error.to_string(), "5 of 8 pages of numa-test are not on NUMA node 0");
    Ok(())
}

#[test]
fn read_only_pages_map_no_node_of_their_own() -> TestResult {
    let mapping = Mapping::new(2)?;
    // SAFETY: inside the mapping, which is readable.
    let _ = unsafe { mapping.addr.read_volatile() };
    let statuses = page_nodes(mapping.addr, mapping.len, page())?;
    // The shared zero page: -EFAULT since Linux 4.x's FOLL_DUMP, -ENOENT before.
    assert!(statuses[0] == -libc::EFAULT || statuses[0] == -libc::ENOENT, "{statuses:?}");
    assert_eq!(statuses[1], -libc::ENOENT);
    assert!(verify_placement("numa-test", mapping.addr, mapping.len, page(), 0).is_err());
    Ok(())
}

#[test]
fn unmapped_addresses_get_efault_not_a_crash() -> TestResult {
    let mapping = Mapping::new(4)?;
    let (addr, len) = (mapping.addr, mapping.len);
    drop(mapping);
    assert_eq!(page_nodes(addr, len, page())?, vec![-libc::EFAULT; 4]);
    assert_eq!(page_nodes(ptr::null(), page(), page())?, [-libc::EFAULT]);
    Ok(())
}

#[test]
fn page_nodes_covers_partial_pages_and_many_chunks() -> TestResult {
    let mapping = Mapping::new(2500)?;
    mapping.touch(2500);
    assert_eq!(page_nodes(mapping.addr, mapping.len, page())?, vec![0; 2500]);
    // One byte straddling two pages is two pages; an empty range none.
    // SAFETY: both pointers are inside the mapping.
    let straddling = unsafe { mapping.addr.add(page() - 1) };
    assert_eq!(page_nodes(straddling, 2, page())?, [0, 0]);
    assert_eq!(page_nodes(mapping.addr, 0, page())?, Vec::<i32>::new());
    verify_placement("numa-test", mapping.addr, mapping.len, page(), 0)?;
    Ok(())
}

#[test]
fn page_nodes_refuses_bad_page_sizes() {
    let error = page_nodes(ptr::null(), 1, 1000).err().map(|error| error.to_string());
    assert_eq!(
        error,
        Some(format!("invalid page size: 1000 is not a power of two of at least {} bytes", page()))
    );
}

#[test]
fn unknown_nodes_are_refused_before_any_call() -> TestResult {
    let available = node_list()?;
    let before = thread_policy()?;
    let mapping = Mapping::new(1)?;
    mapping.touch(1);

    let error = bind_thread_to_node(999).err().ok_or("node 999 bound")?;
    let message = format!("NUMA node 999 does not exist: this machine has node(s) {available}");
    assert_eq!(error.to_string(), message);
    if available == "0" {
        assert_eq!(message, "NUMA node 999 does not exist: this machine has node(s) 0");
        let error = bind_thread_to_node(1).err().ok_or("node 1 bound")?;
        assert_eq!(error.to_string(), "NUMA node 1 does not exist: this machine has node(s) 0");
    }
    assert_eq!(thread_policy()?, before);

    // SAFETY: the mapping is this test's own (and the call is refused before mbind).
    let error = unsafe { bind_range(mapping.addr, mapping.len, 999, true) }
        .err()
        .ok_or("range bound to node 999")?;
    assert!(matches!(error, Error::UnknownNode { node: 999, .. }));

    let error = verify_placement("numa-test", mapping.addr, mapping.len, page(), 999)
        .err()
        .ok_or("node 999 verified")?;
    assert!(matches!(error, Error::UnknownNode { node: 999, .. }));

    let error = bind_thread_to_node(u32::MAX).err().ok_or("node u32::MAX bound")?;
    assert!(matches!(error, Error::UnknownNode { node: u32::MAX, .. }));
    Ok(())
}
