//! Listing every region of the host (with other hugetlbfs mounts too), finding the processes that
//! map one, and the usage scan of many at once, against the real kernel and a second real process.

mod common;

use common::{
    ChildProcess, RegionGuard, SysvGuard, child_env, child_role, tell_parent, unique_name,
    wait_for_parent,
};
use std::path::{Path, PathBuf};
use std::process::Command;

use shmkit_name::{Name, PageSize};
use shmkit_os::list::usage::{self, NodePages, Target};
use shmkit_os::list::{ListedRegion, RegionKind, list, list_all, mappers};
use shmkit_os::sysv::{SysvKey, SysvSegment};
use shmkit_os::{Access, MapOptions, Region, RegionOptions};

fn find_named(listed: &[ListedRegion], name: &Name) -> Option<ListedRegion> {
    listed.iter().find(|region| region.region_name == Some(*name)).cloned()
}

#[test]
fn every_backend_is_listed_until_removed() {
    let name = unique_name("list");
    let _region_guard = RegionGuard(name);
    RegionOptions::new().mode(0o640).create(&name, 2).expect("create a POSIX region");
    let key = SysvKey::of(&unique_name("list-sysv"));
    let segment =
        SysvSegment::create(key, 8192, PageSize::Normal, 0o604).expect("create a segment");
    let _sysv_guard = SysvGuard(segment.id());
    let mapping = segment.attach(&MapOptions::new()).expect("attach");
    let huge = unique_name("list-huge");
    let _huge_guard = RegionGuard(huge);
    let with_huge =
        common::hugetlbfs_ready(PageSize::Huge) && common::huge_pages_ready(PageSize::Huge, 1);
    if with_huge {
        RegionOptions::new()
            .page_size(PageSize::Huge)
            .create(&huge, 1)
            .expect("create a huge region");
    }

    let listed = list().expect("list");
    let posix = find_named(&listed, &name).expect("the POSIX region is listed");
    let uid = rustix::process::geteuid().as_raw();
    assert_eq!(
        (
            posix.kind,
            posix.name.as_str(),
            posix.size,
            posix.mode,
            posix.uid,
            posix.page_size,
            posix.attach_count
        ),
        (RegionKind::Posix, name.as_str(), 8192, 0o640, uid, Some(PageSize::Normal), None)
    );
    assert_eq!(posix.path, Some(Path::new("/dev/shm").join(name.as_str())));
    let sysv = listed
        .iter()
        .find(|region| region.kind == RegionKind::SysV { key: Some(key), id: segment.id() })
        .expect("the segment is listed");
    assert_eq!(
        (
            sysv.name.as_str(),
            sysv.size,
            sysv.mode,
            sysv.attach_count,
            sysv.path.as_ref(),
            sysv.page_size
        ),
        (format!("0x{:08x}", key.get().cast_unsigned()).as_str(), 8192, 0o604, Some(1), None, None)
    );
    if with_huge {
        let listed_huge = find_named(&listed, &huge).expect("the huge region is listed");
        assert_eq!(
            (listed_huge.kind, listed_huge.size),
            (RegionKind::Hugetlbfs(PageSize::Huge), 2 << 20)
        );
    }

    drop(mapping);
    let id = segment.id();
    segment.remove().expect("remove the segment");
    shmkit_os::unlink(&name, PageSize::Normal).expect("unlink");
    if with_huge {
        shmkit_os::unlink(&huge, PageSize::Huge).expect("unlink");
    }
    let listed = list().expect("list");
    assert!(find_named(&listed, &name).is_none() && find_named(&listed, &huge).is_none());
    assert!(!listed.iter().any(
        |region| matches!(region.kind, RegionKind::SysV { id: listed_id, .. } if listed_id == id)
    ));
    assert!(!common::in_dev_shm(name.as_str()));
}

/// Asserts that the mappers of `path` are `expected`, once no other test of this binary is
/// between `fork` and `exec`: a child forked then (to spawn a process, or to run `mount`) shares
/// this process's mappings for a moment, and shows as one more mapper.
fn assert_mappers(path: &Path, expected: &[u32]) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let found = mappers(path).expect("mappers");
        if found == expected || std::time::Instant::now() > deadline {
            assert_eq!(found, expected);
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

#[test]
fn mappers_are_the_processes_that_map_the_file() {
    if let Some(role) = child_role() {
        assert_eq!(role, "map");
        let name = Name::new(&child_env("SHMKIT_TEST_NAME")).expect("a name");
        let region = Region::open(&name, Some(PageSize::Normal), Access::ReadOnly).expect("open");
        let _mapping = region.map(&MapOptions::new().access(Access::ReadOnly)).expect("map");
        drop(region);
        tell_parent("mapped");
        wait_for_parent();
        return;
    }
    let name = unique_name("mappers");
    let _guard = RegionGuard(name);
    let info = RegionOptions::new().create(&name, 1).expect("create");
    assert_eq!(mappers(&info.path).expect("mappers"), Vec::<u32>::new(), "nobody maps it yet");

    let mut child = ChildProcess::spawn(
        "mappers_are_the_processes_that_map_the_file",
        "map",
        &[("SHMKIT_TEST_NAME", name.as_str().to_owned())],
    );
    child.expect("mapped");
    assert_eq!(mappers(&info.path).expect("mappers"), [child.pid()]);
    let mapping = Region::open(&name, None, Access::ReadWrite)
        .expect("open")
        .map(&MapOptions::new())
        .expect("map");
    let mut both = vec![std::process::id(), child.pid()];
    both.sort_unstable();
    assert_mappers(&info.path, &both);

    // Unlinked but still mapped: /proc/PID/maps says "(deleted)", and it still counts.
    shmkit_os::unlink(&name, PageSize::Normal).expect("unlink");
    assert_mappers(&info.path, &both);
    child.send("done");
    child.finish();
    assert_mappers(&info.path, &[std::process::id()]);
    drop(mapping);
    assert_eq!(mappers(&info.path).expect("mappers"), Vec::<u32>::new());
}

/// The pages a mapper has on each node, summed.
fn pages(placement: Option<&[NodePages]>) -> u64 {
    placement.unwrap_or_default().iter().map(|node| node.pages).sum()
}

#[test]
fn usage_scan_finds_mappers_placement_and_page_size_of_files_and_segments() {
    if let Some(role) = child_role() {
        assert_eq!(role, "touch");
        let name = Name::new(&child_env("SHMKIT_TEST_NAME")).expect("a name");
        let id: i32 = child_env("SHMKIT_TEST_ID").parse().expect("an id");
        let region = Region::open(&name, Some(PageSize::Normal), Access::ReadWrite).expect("open");
        let file = region.map(&MapOptions::new()).expect("map");
        let segment = SysvSegment::open_id(id, PageSize::Normal).expect("open the segment");
        let attached = segment.attach(&MapOptions::new()).expect("attach");
        // Two of the file's four pages, and all three of the segment's, in the page tables.
        file.write_at(0, b"a").expect("write");
        file.write_at(3 * 4096, b"b").expect("write");
        for page in 0..3 {
            attached.write_at(page * 4096, b"c").expect("write");
        }
        tell_parent("touched");
        wait_for_parent();
        return;
    }
    let segment =
        SysvSegment::create_private(3 * 4096, PageSize::Normal, 0o600).expect("create a segment");
    let _sysv_guard = SysvGuard(segment.id());
    let name = unique_name("usage");
    let _guard = RegionGuard(name);
    let info = RegionOptions::new().create(&name, 4).expect("create");
    let unmapped = unique_name("usage-unmapped");
    let _unmapped_guard = RegionGuard(unmapped);
    let unmapped_info = RegionOptions::new().create(&unmapped, 1).expect("create");

    let mut child = ChildProcess::spawn(
        "usage_scan_finds_mappers_placement_and_page_size_of_files_and_segments",
        "touch",
        &[
            ("SHMKIT_TEST_NAME", name.as_str().to_owned()),
            ("SHMKIT_TEST_ID", segment.id().to_string()),
        ],
    );
    child.expect("touched");
    let targets =
        [Target::file(&info.path), Target::SysV(segment.id()), Target::file(&unmapped_info.path)];
    let found = usage::scan(&targets).expect("scan");
    let file = found.get(&targets[0]).expect("the file is mapped");
    assert_eq!((file.pids.as_slice(), file.page_size), ([child.pid()].as_slice(), Some(4096)));
    assert_eq!(pages(file.placement.as_deref()), 2, "{:?}", file.placement);
    let sysv = found.get(&targets[1]).expect("the segment is attached");
    assert_eq!((sysv.pids.as_slice(), sysv.page_size), ([child.pid()].as_slice(), Some(4096)));
    assert_eq!(pages(sysv.placement.as_deref()), 3, "{:?}", sysv.placement);
    assert!(!found.contains_key(&targets[2]), "nobody maps it");

    // Removed while mapped: the file still counts (maps say "(deleted)").
    shmkit_os::unlink(&name, PageSize::Normal).expect("unlink");
    let found = usage::scan(&targets[..1]).expect("scan");
    assert_eq!(found.get(&targets[0]).map(|usage| usage.pids.clone()), Some(vec![child.pid()]));
    child.send("done");
    child.finish();
    assert!(usage::scan(&targets).expect("scan").is_empty(), "the child's exit unmapped both");
}

/// A hugetlbfs mount of this test's own in the temporary folder, unmounted and removed on drop.
struct TempMount(PathBuf);

impl TempMount {
    /// Mounts hugetlbfs with 2 MiB pages; `None` (with the reason printed) where this process may
    /// not mount (not root, or a container without `CAP_SYS_ADMIN`).
    fn hugetlbfs() -> Option<Self> {
        let dir = std::env::temp_dir().join(common::unique("shmkit-foreign-mount"));
        std::fs::create_dir(&dir).expect("create the mount point");
        let mount = Self(dir);
        let status = Command::new("mount")
            .args(["-t", "hugetlbfs", "-o", "pagesize=2M", "none"])
            .arg(&mount.0)
            .status();
        match status {
            Ok(status) if status.success() => Some(mount),
            other => {
                let reason = format!("cannot mount a hugetlbfs (not root?): {other:?}");
                assert!(
                    std::env::var("SHMKIT_REQUIRE_HUGEPAGES").as_deref() != Ok("1"),
                    "SHMKIT_REQUIRE_HUGEPAGES=1 but {reason}"
                );
                eprintln!("skipped: {reason}");
                None
            }
        }
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempMount {
    fn drop(&mut self) {
        // A failed mount leaves the empty folder only; `umount` then fails, harmlessly.
        let _ = Command::new("umount").arg(&self.0).status();
        let _ = std::fs::remove_dir(&self.0);
    }
}

#[test]
fn list_all_adds_the_files_of_other_hugetlbfs_mounts() {
    let Some(mount) = TempMount::hugetlbfs() else { return };
    let path = mount.path().join("foreign region");
    std::fs::File::create_new(&path).expect("create a file on the mount");
    let path = std::fs::canonicalize(&path).expect("canonical path");

    let all = list_all().expect("list_all");
    let foreign = all
        .iter()
        .find(|region| region.path.as_deref() == Some(path.as_path()))
        .expect("list_all lists the file");
    assert_eq!(
        (foreign.kind, foreign.name.as_str(), foreign.size, foreign.page_size, foreign.region_name),
        (
            RegionKind::ForeignHugetlbfs { page_size_bytes: 2 << 20 },
            "foreign region",
            0,
            Some(PageSize::Huge),
            None
        )
    );
    // After shmkit's own mounts, before System V.
    let rank = |region: &ListedRegion| match region.kind {
        RegionKind::Posix => 0,
        RegionKind::Hugetlbfs(_) => 1,
        RegionKind::ForeignHugetlbfs { .. } => 2,
        RegionKind::SysV { .. } => 3,
    };
    assert!(all.windows(2).all(|pair| rank(&pair[0]) <= rank(&pair[1])));
    assert!(!list().expect("list").iter().any(|region| region.path.as_deref() == Some(&path)));
    std::fs::remove_file(&path).expect("remove the file");
    drop(mount);
    assert!(
        !list_all().expect("list_all").iter().any(|region| region.path.as_deref() == Some(&path))
    );
}
