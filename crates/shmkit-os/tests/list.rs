//! Listing every region of the host and finding the processes that map one, against the real
//! kernel and a second real process.

mod common;

use common::{
    ChildProcess, RegionGuard, SysvGuard, child_env, child_role, tell_parent, unique_name,
    wait_for_parent,
};
use shmkit_name::{Name, PageSize};
use shmkit_os::list::{ListedRegion, RegionKind, list, mappers};
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
    assert_eq!(posix.path, Some(std::path::Path::new("/dev/shm").join(name.as_str())));
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
    assert_eq!(mappers(&info.path).expect("mappers"), both);

    // Unlinked but still mapped: /proc/PID/maps says "(deleted)", and it still counts.
    shmkit_os::unlink(&name, PageSize::Normal).expect("unlink");
    assert_eq!(mappers(&info.path).expect("mappers"), both);
    child.send("done");
    child.finish();
    assert_eq!(mappers(&info.path).expect("mappers"), [std::process::id()]);
    drop(mapping);
    assert_eq!(mappers(&info.path).expect("mappers"), Vec::<u32>::new());
}
