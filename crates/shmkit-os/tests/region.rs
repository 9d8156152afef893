//! Named regions against the real kernel: /dev/shm, hugetlbfs mounts, NUMA placement, a second
//! real process, and Python's `multiprocessing.shared_memory` as a program no one here wrote.

mod common;

use std::process::Command;
use std::sync::atomic::Ordering;

use common::{
    ChildProcess, RegionGuard, child_env, child_role, hugetlbfs_ready, tell_parent, unique_name,
    vma_at,
};
use shmkit_name::{Name, PageSize};
use shmkit_os::numa::{CpuList, Topology};
use shmkit_os::{Access, Error, MapOptions, Placement, Region, RegionOptions, info, unlink};

/// A unique region name, removed in every page size when dropped.
struct TestRegion {
    name: Name,
    _guard: RegionGuard,
}

impl TestRegion {
    fn new(tag: &str) -> Self {
        let name = unique_name(&format!("t-{tag}"));
        Self { name, _guard: RegionGuard(name) }
    }
}

/// The child's side of the multi-process tests; a plain run (no role in the environment) is the
/// parent and does nothing here.
#[test]
fn child_process_entry() {
    let Some(role) = child_role() else { return };
    let name = Name::new(&child_env("SHMKIT_TEST_NAME")).expect("valid name");
    let page_size: PageSize = child_env("SHMKIT_TEST_PAGE_SIZE").parse().expect("page size");
    let region = Region::open(&name, Some(page_size), Access::ReadWrite).expect("child open");
    let mapping = region.map(&MapOptions::new()).expect("child map");
    match role.as_str() {
        // Sees the parent's word at the start, answers with its own at the end of the last page.
        "echo" => {
            let word = mapping.atomic_u64(0).expect("word").load(Ordering::Acquire);
            assert_eq!(word, 0x5348_4D4B_4954_0001, "child sees the parent's write");
            let last = mapping.len() - 8;
            mapping.atomic_u64(last).expect("word").store(word + 1, Ordering::Release);
            tell_parent("answered");
        }
        other => panic!("unknown child role {other}"),
    }
}

fn run_child(role: &str, name: &Name, page_size: PageSize) {
    let env = [
        ("SHMKIT_TEST_NAME", name.as_str().to_owned()),
        ("SHMKIT_TEST_PAGE_SIZE", page_size.name().to_owned()),
    ];
    let mut child = ChildProcess::spawn("child_process_entry", role, &env);
    child.expect("answered");
    child.finish();
}

fn two_process_round_trip(page_size: PageSize, page_count: u64, tag: &str) {
    let region = TestRegion::new(tag);
    let created =
        RegionOptions::new().page_size(page_size).create(&region.name, page_count).expect("create");
    assert_eq!(created.size, page_count * page_size.bytes() as u64);
    let mapping = Region::open(&region.name, Some(page_size), Access::ReadWrite)
        .and_then(|r| r.map(&MapOptions::new()))
        .expect("map");
    assert_eq!(mapping.as_ptr() as usize % page_size.bytes(), 0, "aligned to the page size");
    mapping.atomic_u64(0).expect("word").store(0x5348_4D4B_4954_0001, Ordering::Release);
    run_child("echo", &region.name, page_size);
    let last = mapping.len() - 8;
    assert_eq!(
        mapping.atomic_u64(last).expect("word").load(Ordering::Acquire),
        0x5348_4D4B_4954_0002
    );
    drop(mapping);
    unlink(&region.name, page_size).expect("unlink");
    assert!(!created.path.exists(), "{} is gone after unlink", created.path.display());
}

#[test]
fn posix_region_is_shared_with_a_second_process() {
    two_process_round_trip(PageSize::Normal, 3, "posix2p");
}

#[test]
fn huge_region_is_shared_with_a_second_process() {
    if hugetlbfs_ready(PageSize::Huge) {
        two_process_round_trip(PageSize::Huge, 2, "huge2p");
    }
}

#[test]
fn gigantic_region_is_shared_with_a_second_process() {
    if hugetlbfs_ready(PageSize::Gigantic) {
        two_process_round_trip(PageSize::Gigantic, 1, "giga2p");
    }
}

#[test]
fn smaps_shows_the_page_size_of_each_kind() {
    for (page_size, kib) in
        [(PageSize::Normal, 4), (PageSize::Huge, 2048), (PageSize::Gigantic, 1024 * 1024)]
    {
        if page_size != PageSize::Normal && !hugetlbfs_ready(page_size) {
            continue;
        }
        let region = TestRegion::new("smaps");
        RegionOptions::new().page_size(page_size).create(&region.name, 1).expect("create");
        let mapping = Region::open(&region.name, Some(page_size), Access::ReadOnly)
            .and_then(|r| r.map(&MapOptions::new().access(Access::ReadOnly)))
            .expect("map");
        let vma = vma_at(mapping.as_ptr() as usize).expect("the mapping is in smaps");
        assert_eq!(vma.kib("KernelPageSize"), Some(kib), "{page_size}");
    }
}

#[test]
fn a_region_that_exists_is_refused_and_left_alone() {
    let region = TestRegion::new("exists");
    RegionOptions::new().create(&region.name, 1).expect("create");
    let error = RegionOptions::new().create(&region.name, 4).expect_err("second create");
    assert!(matches!(error, Error::AlreadyExists { .. }), "{error}");
    assert_eq!(
        info(&region.name, None).expect("info").page_count,
        1,
        "the first region is untouched"
    );
}

#[test]
fn the_mode_is_exact_whatever_the_umask() {
    let region = TestRegion::new("mode");
    let old = rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
    let created = RegionOptions::new().mode(0o664).create(&region.name, 1);
    rustix::process::umask(old);
    assert_eq!(created.expect("create").mode, 0o664);
    assert_eq!(info(&region.name, Some(PageSize::Normal)).expect("info").mode, 0o664);
    let default = TestRegion::new("mode-default");
    assert_eq!(RegionOptions::new().create(&default.name, 1).expect("create").mode, 0o600);
}

/// The node list of this machine as error messages print it.
fn nodes_text() -> String {
    shmkit_os::numa::format_ids(
        Topology::read().expect("topology").nodes().iter().map(|node| node.id),
    )
}

#[test]
fn bad_input_is_an_error_and_leaves_nothing() {
    let region = TestRegion::new("bad");
    let zero = RegionOptions::new().create(&region.name, 0).expect_err("zero pages");
    assert!(zero.to_string().contains("0 pages"), "{zero}");
    let overflow = RegionOptions::new().create(&region.name, u64::MAX / 2).expect_err("overflow");
    assert!(matches!(overflow, Error::InvalidInput { what: "page count", .. }), "{overflow}");
    let mode = RegionOptions::new().mode(0o17777).create(&region.name, 1).expect_err("mode");
    assert!(mode.to_string().contains("17777"), "{mode}");
    let node = RegionOptions::new()
        .placement(Placement::Node(999))
        .create(&region.name, 1)
        .expect_err("node");
    assert_eq!(
        node.to_string(),
        format!("NUMA node 999 does not exist: this machine has node(s) {}", nodes_text())
    );
    assert!(matches!(info(&region.name, None), Err(Error::NotFound { .. })), "nothing left behind");
}

#[test]
fn a_shortage_of_pages_is_an_error_now_and_leaves_nothing() {
    // 4 TiB of tmpfs: the size fits a file but not this machine, so allocation fails.
    let region = TestRegion::new("short");
    let error = RegionOptions::new().create(&region.name, 1 << 30).expect_err("more than memory");
    assert!(matches!(error, Error::OutOfMemory { .. } | Error::Os { .. }), "{error}");
    assert!(matches!(info(&region.name, None), Err(Error::NotFound { .. })), "nothing left behind");
    assert_no_staging_files(shmkit_os::mounts::POSIX_SHM_DIR, &region.name);
    // More huge pages than the pool holds: OutOfMemory naming setup-hugepages, mount left empty.
    if hugetlbfs_ready(PageSize::Huge) {
        // More than the whole pool, not just its free part, so no other test's release can make
        // this fit.
        let pool: u64 =
            std::fs::read_to_string("/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages")
                .ok()
                .and_then(|text| text.trim().parse().ok())
                .expect("the pool size");
        let huge = RegionOptions::new()
            .page_size(PageSize::Huge)
            .create(&region.name, pool + 1)
            .expect_err("short");
        assert!(matches!(huge, Error::OutOfMemory { .. }), "{huge}");
        assert!(huge.to_string().contains("cargo xtask setup-hugepages"), "{huge}");
        assert!(matches!(info(&region.name, Some(PageSize::Huge)), Err(Error::NotFound { .. })));
        let dir = shmkit_os::mounts::region_dir(PageSize::Huge).expect("mount");
        assert_no_staging_files(&dir.display().to_string(), &region.name);
    }
}

/// No staging file of region `name` is left in `dir` (other tests of this process may be
/// creating regions, with staging files of their own, at the same moment).
fn assert_no_staging_files(dir: &str, name: &Name) {
    let ours = format!(".shmkit-new-{}-", std::process::id());
    let left: Vec<_> = std::fs::read_dir(dir)
        .expect("read the region folder")
        .flatten()
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .filter(|file| file.starts_with(&ours) && file.ends_with(&format!("-{}", name.as_str())))
        .collect();
    assert!(left.is_empty(), "staging files left in {dir}: {left:?}");
}

#[test]
fn numa_placement_on_node_zero_is_verified() {
    let region = TestRegion::new("numa");
    let created =
        RegionOptions::new().placement(Placement::Node(0)).create(&region.name, 8).expect("create");
    assert_eq!(created.page_count, 8);
    // One part per online CPU: on a one-node machine every part lands on node 0.
    let topology = Topology::read().expect("topology");
    let cpus: CpuList =
        topology.cpus().iter().filter(|cpu| topology.node_of_cpu(*cpu).ok() == Some(0)).collect();
    let multi = TestRegion::new("numa-multi");
    let created = RegionOptions::new()
        .placement(Placement::Cpus(cpus))
        .create(&multi.name, 5)
        .expect("create");
    assert_eq!(created.page_count, 5);
    let mapping = Region::open(&multi.name, None, Access::ReadOnly)
        .and_then(|r| r.map(&MapOptions::new().access(Access::ReadOnly).populate(true)))
        .expect("map");
    shmkit_os::numa::verify_placement("numa-multi", mapping.as_ptr(), mapping.len(), 4096, 0)
        .expect("all on node 0");
    let unknown_cpu: CpuList = "0,4096".parse().expect("cpu list");
    let error = RegionOptions::new()
        .placement(Placement::Cpus(unknown_cpu))
        .create(&multi.name, 1)
        .expect_err("cpu");
    assert!(matches!(error, Error::UnknownCpu { cpu: 4096, .. }), "{error}");
}

#[test]
fn info_reports_a_size_that_is_not_whole_pages_as_corrupted() {
    let region = TestRegion::new("corrupt");
    let path = shmkit_os::path_of(&region.name, PageSize::Normal);
    std::fs::write(&path, vec![0_u8; 5000]).expect("write odd-sized file");
    let error = info(&region.name, Some(PageSize::Normal)).expect_err("corrupted");
    assert!(matches!(error, Error::Corrupted { .. }), "{error}");
    assert!(error.to_string().contains("5000"), "{error}");
}

#[test]
fn a_region_grows_and_keeps_its_contents() {
    let region = TestRegion::new("grow");
    RegionOptions::new().create(&region.name, 2).expect("create");
    let mut opened = Region::open(&region.name, None, Access::ReadWrite).expect("open");
    let mut mapping = opened.map(&MapOptions::new()).expect("map");
    mapping.write_at(8000, b"kept").expect("write");
    opened.grow(&mut mapping, 5).expect("grow");
    assert_eq!((mapping.len(), opened.info().page_count), (5 * 4096, 5));
    let mut kept = [0; 4];
    mapping.read_at(8000, &mut kept).expect("read");
    assert_eq!(&kept, b"kept");
    mapping.write_at(5 * 4096 - 4, b"tail").expect("the new pages are mapped");
    let error = opened.grow(&mut mapping, 1).expect_err("shrink");
    assert!(error.to_string().contains("only grow"), "{error}");
}

#[test]
fn read_only_mappings_refuse_writes_and_bounds_are_checked() {
    let region = TestRegion::new("ro");
    RegionOptions::new().create(&region.name, 1).expect("create");
    let read_only = Region::open(&region.name, None, Access::ReadOnly).expect("open");
    assert!(read_only.map(&MapOptions::new()).is_err(), "read-write map of a read-only open");
    let mapping = read_only.map(&MapOptions::new().access(Access::ReadOnly)).expect("map");
    assert!(mapping.write_at(0, b"x").is_err());
    assert!(mapping.atomic_u64(0).is_err());
    let mut buffer = [0; 8];
    assert!(mapping.read_at(4090, &mut buffer).is_err(), "past the end");
    assert!(mapping.read_at(usize::MAX, &mut buffer).is_err(), "overflowing offset");
    mapping.read_at(4088, &mut buffer).expect("last 8 bytes");
}

#[test]
fn mapping_options_lock_dump_and_transparent_huge_pages() {
    let region = TestRegion::new("opts");
    RegionOptions::new().create(&region.name, 4).expect("create");
    let opened = Region::open(&region.name, None, Access::ReadWrite).expect("open");
    let mapping = opened
        .map(&MapOptions::new().lock(true).dump(true).transparent_huge_pages(true).populate(true))
        .expect("map with every option");
    mapping.sync(shmkit_os::SyncMode::Async).expect("msync");
    mapping.unlock().expect("munlock");
    mapping.lock_on_fault().expect("mlock2");
    let a = opened.map(&MapOptions::new()).expect("second map");
    let b = opened.map(&MapOptions::new()).expect("third map");
    assert_ne!(a.as_ptr(), b.as_ptr(), "each mapping gets its own random address");
    assert!(!a.overlaps(b.as_ptr() as usize, b.len()));
}

fn python3(script: &str) -> std::process::Output {
    Command::new("python3").args(["-c", script]).output().expect("python3 is on every machine")
}

#[test]
fn python_reads_a_shmkit_region_and_shmkit_reads_a_python_one() {
    // shmkit creates, Python reads (by the POSIX name, as any shm_open user would).
    let ours = TestRegion::new("py-ours");
    RegionOptions::new().create(&ours.name, 1).expect("create");
    let mapping = Region::open(&ours.name, None, Access::ReadWrite)
        .and_then(|r| r.map(&MapOptions::new()))
        .expect("map");
    mapping.write_at(0, b"from shmkit").expect("write");
    let script = format!(
        "from multiprocessing import shared_memory, resource_tracker as rt\n\
         m = shared_memory.SharedMemory(name={:?})\n\
         rt.unregister(m._name, 'shared_memory')\n\
         print(bytes(m.buf[:11]).decode(), m.size)\n\
         m.close()",
        ours.name.as_str()
    );
    let output = python3(&script);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(String::from_utf8_lossy(&output.stdout).trim(), "from shmkit 4096");

    // Python creates, shmkit reads.
    let theirs = TestRegion::new("py-theirs");
    let script = format!(
        "from multiprocessing import shared_memory, resource_tracker as rt\n\
         m = shared_memory.SharedMemory(name={:?}, create=True, size=8192)\n\
         rt.unregister(m._name, 'shared_memory')\n\
         m.buf[:11] = b'from python'\n\
         m.close()",
        theirs.name.as_str()
    );
    let output = python3(&script);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let found = info(&theirs.name, None).expect("info");
    assert_eq!((found.page_size, found.size), (PageSize::Normal, 8192));
    let mapping = Region::open(&theirs.name, None, Access::ReadOnly)
        .and_then(|r| r.map(&MapOptions::new().access(Access::ReadOnly)))
        .expect("map");
    let mut text = [0; 11];
    mapping.read_at(0, &mut text).expect("read");
    assert_eq!(&text, b"from python");
}

#[test]
fn guard_pages_are_asked_for_and_survive_a_grow() {
    let region = TestRegion::new("guards");
    RegionOptions::new().create(&region.name, 2).expect("create");
    let mut opened = Region::open(&region.name, None, Access::ReadWrite).expect("open");
    let page = 4096;
    let plain = opened.map(&MapOptions::new()).expect("map");
    let start = plain.as_ptr() as usize;
    for outside in [start - page, start + plain.len()] {
        assert!(
            vma_at(outside).is_none_or(|vma| vma.perms != "---p"),
            "no guard at {outside:#x} by default"
        );
    }
    drop(plain);
    let mut guarded = opened.map(&MapOptions::new().guard_pages(true)).expect("map");
    let check = |mapping: &shmkit_os::Mapping| {
        let start = mapping.as_ptr() as usize;
        for guard in [start - page, start + mapping.len()] {
            assert_eq!(
                vma_at(guard).map(|vma| vma.perms),
                Some("---p".to_owned()),
                "a guard page at {guard:#x}"
            );
        }
    };
    check(&guarded);
    opened.grow(&mut guarded, 4).expect("grow");
    check(&guarded);
    guarded.write_at(4 * page - 1, b"x").expect("the grown mapping is whole");
}

#[test]
fn open_takes_the_first_page_size_found_and_refuses_what_is_not_a_region() {
    let region = TestRegion::new("order");
    RegionOptions::new().create(&region.name, 1).expect("create");
    if hugetlbfs_ready(PageSize::Huge) {
        RegionOptions::new().page_size(PageSize::Huge).create(&region.name, 1).expect("create");
        let opened = Region::open(&region.name, None, Access::ReadOnly).expect("open");
        assert_eq!(opened.info().page_size, PageSize::Normal, "/dev/shm comes first");
        assert!(info(&region.name, None).is_err(), "info reports the name in two page sizes");
        let huge = Region::open(&region.name, Some(PageSize::Huge), Access::ReadOnly);
        assert_eq!(huge.expect("open huge").info().page_size, PageSize::Huge);
        unlink(&region.name, PageSize::Normal).expect("unlink");
        let opened = Region::open(&region.name, None, Access::ReadOnly).expect("open");
        assert_eq!(opened.info().page_size, PageSize::Huge, "found on hugetlbfs next");
    }
    let folder = TestRegion::new("folder");
    let path = shmkit_os::path_of(&folder.name, PageSize::Normal);
    std::fs::create_dir(&path).expect("mkdir");
    let error = Region::open(&folder.name, None, Access::ReadOnly).expect_err("a folder");
    std::fs::remove_dir(&path).expect("rmdir");
    assert!(matches!(error, Error::Corrupted { .. }), "{error}");
    let missing = TestRegion::new("missing");
    let error = Region::open(&missing.name, None, Access::ReadOnly).expect_err("missing");
    assert!(matches!(error, Error::NotFound { .. }), "{error}");
    let error =
        Region::open(&missing.name, Some(PageSize::Normal), Access::ReadOnly).expect_err("missing");
    assert!(matches!(error, Error::NotFound { .. }), "{error}");
}
