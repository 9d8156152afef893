//! Plain-file regions against the real kernel: a second real process mapping the file, `msync`
//! then plain reads, growth, exact modes, and nothing left behind on failure.

mod common;

use std::os::unix::fs::{MetadataExt, symlink};

use common::{ChildProcess, TempPath, child_env, child_role, tell_parent, wait_for_parent};
use shmkit_os::file::FileRegion;
use shmkit_os::{Access, Error, MapOptions, SyncMode};

#[test]
fn a_file_region_is_shared_with_a_second_process() {
    if let Some(role) = child_role() {
        assert_eq!(role, "map");
        let region =
            FileRegion::open(child_env("SHMKIT_TEST_PATH"), Access::ReadWrite).expect("open");
        let mapping = region.map(&MapOptions::new()).expect("map");
        let mut seen = [0; 6];
        mapping.read_at(0, &mut seen).expect("read");
        assert_eq!(&seen, b"parent");
        mapping.write_at(4096, b"child").expect("write");
        region.sync(&mapping, SyncMode::Sync).expect("msync");
        tell_parent("written");
        wait_for_parent();
        return;
    }
    let path = TempPath::new("file-shared");
    let region = FileRegion::create(&path.0, 8192, 0o640).expect("create");
    let meta = std::fs::metadata(&path.0).expect("stat");
    assert_eq!((meta.len(), meta.mode() & 0o7777), (8192, 0o640));
    let mapping = region.map(&MapOptions::new()).expect("map");
    mapping.write_at(0, b"parent").expect("write");
    region.sync(&mapping, SyncMode::Async).expect("msync async");

    let mut child = ChildProcess::spawn(
        "a_file_region_is_shared_with_a_second_process",
        "map",
        &[("SHMKIT_TEST_PATH", path.0.display().to_string())],
    );
    child.expect("written");
    let mut seen = [0; 5];
    mapping.read_at(4096, &mut seen).expect("read");
    assert_eq!(&seen, b"child");
    let mappers = shmkit_os::list::mappers(&path.0).expect("mappers");
    assert!(mappers.contains(&std::process::id()) && mappers.contains(&child.pid()), "{mappers:?}");
    child.send("done");
    child.finish();

    region.sync(&mapping, SyncMode::Sync).expect("msync");
    let bytes = std::fs::read(&path.0).expect("read the file");
    assert_eq!(
        (&bytes[..6], &bytes[4096..4101], bytes.len()),
        (&b"parent"[..], &b"child"[..], 8192)
    );
    drop(mapping);
    region.remove().expect("remove");
    assert!(!path.0.exists());
}

#[test]
fn sync_writes_back_what_read_then_sees() {
    let path = TempPath::new("file-sync");
    let region = FileRegion::create(&path.0, 4096, 0o600).expect("create");
    let mapping = region.map(&MapOptions::new()).expect("map");
    for (mode, text) in [(SyncMode::Sync, b"synchronous"), (SyncMode::Async, b"asynchronou")] {
        mapping.write_at(100, text).expect("write");
        region.sync(&mapping, mode).expect("msync");
        assert_eq!(&std::fs::read(&path.0).expect("read")[100..111], text);
    }
    let other_path = TempPath::new("file-other");
    let other = FileRegion::create(&other_path.0, 4096, 0o600).expect("create");
    assert!(matches!(other.sync(&mapping, SyncMode::Sync), Err(Error::InvalidInput { .. })));
}

#[test]
fn growing_keeps_the_contents_and_zeroes_the_rest() {
    let path = TempPath::new("file-grow");
    let mut region = FileRegion::create(&path.0, 8192, 0o600).expect("create");
    let mut mapping = region.map(&MapOptions::new()).expect("map");
    let pattern: Vec<u8> = (0..8192_u32).map(|index| (index % 251) as u8 + 1).collect();
    mapping.write_at(0, &pattern).expect("write");

    region.grow(&mut mapping, 65536).expect("grow");
    assert_eq!((mapping.len(), region.size().expect("size")), (65536, 65536));
    let mut back = vec![0; 65536];
    mapping.read_at(0, &mut back).expect("read");
    assert_eq!(&back[..8192], &pattern[..]);
    assert!(back[8192..].iter().all(|&byte| byte == 0), "the new part is zero");
    mapping.write_at(65535, &[9]).expect("the new end is mapped");
    region.sync(&mapping, SyncMode::Sync).expect("msync");
    let bytes = std::fs::read(&path.0).expect("read the file");
    assert_eq!((bytes.len(), &bytes[..8192], bytes[65535]), (65536, &pattern[..], 9));

    assert!(
        matches!(region.grow(&mut mapping, 8192), Err(Error::InvalidInput { .. })),
        "no shrinking"
    );
    assert!(
        matches!(region.grow(&mut mapping, 70000), Err(Error::InvalidInput { .. })),
        "4 KiB multiples"
    );
    let mut partial = MapOptions::new()
        .map_fd(region.fd(), 4096, shmkit_name::PageSize::Normal, &path.0.display().to_string())
        .expect("map part");
    assert!(
        matches!(region.grow(&mut partial, 131_072), Err(Error::InvalidInput { .. })),
        "a whole mapping only"
    );
}

#[test]
fn creation_refuses_what_exists_and_leaves_nothing_on_failure() {
    let path = TempPath::new("file-exists");
    let region = FileRegion::create(&path.0, 4096, 0o600).expect("create");
    assert!(matches!(FileRegion::create(&path.0, 4096, 0o600), Err(Error::AlreadyExists { .. })));
    drop(region);

    let link = TempPath::new("file-link");
    symlink(&path.0, &link.0).expect("symlink");
    assert!(
        matches!(FileRegion::create(&link.0, 4096, 0o600), Err(Error::AlreadyExists { .. })),
        "no following"
    );
    assert!(FileRegion::open(&link.0, Access::ReadOnly).is_err(), "O_NOFOLLOW on open too");

    let bad = TempPath::new("file-bad");
    for (size, mode) in [(0, 0o600), (100, 0o600), (4096, 0o17777)] {
        let refused = FileRegion::create(&bad.0, size, mode);
        assert!(matches!(refused, Err(Error::InvalidInput { .. })), "{size} {mode:o}: {refused:?}");
        assert!(!bad.0.exists(), "nothing left after a refused creation");
    }
    assert!(matches!(FileRegion::open(&bad.0, Access::ReadOnly), Err(Error::NotFound { .. })));
}

#[test]
fn the_mode_is_exact_whatever_the_umask() {
    if let Some(role) = child_role() {
        assert_eq!(role, "umask");
        // Only in this child: the umask is per process, and the parent runs tests in parallel.
        rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
        let path = child_env("SHMKIT_TEST_PATH");
        let region = FileRegion::create(&path, 4096, 0o664).expect("create");
        assert_eq!(std::fs::metadata(&path).expect("stat").mode() & 0o7777, 0o664);
        region.remove().expect("remove");
        return;
    }
    let path = TempPath::new("file-umask");
    ChildProcess::spawn(
        "the_mode_is_exact_whatever_the_umask",
        "umask",
        &[("SHMKIT_TEST_PATH", path.0.display().to_string())],
    )
    .finish();
}

#[test]
fn read_only_files_map_read_only() {
    let path = TempPath::new("file-ro");
    FileRegion::create(&path.0, 4096, 0o600).expect("create");
    let mut region = FileRegion::open(&path.0, Access::ReadOnly).expect("open");
    assert!(matches!(region.map(&MapOptions::new()), Err(Error::InvalidInput { .. })));
    let mut mapping =
        region.map(&MapOptions::new().access(Access::ReadOnly)).expect("map read-only");
    assert!(mapping.write_at(0, b"x").is_err());
    assert!(matches!(region.grow(&mut mapping, 8192), Err(Error::InvalidInput { .. })));

    std::fs::write(&path.0, [1_u8; 5000]).expect("rewrite with a size of no whole pages");
    assert!(matches!(FileRegion::open(&path.0, Access::ReadOnly), Err(Error::Corrupted { .. })));
    region.remove().expect("remove");
    assert!(matches!(FileRegion::open(&path.0, Access::ReadOnly), Err(Error::NotFound { .. })));
}
