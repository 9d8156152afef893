//! System V segments against the real kernel: a second real process attaching by key, `ipcs -m`
//! agreeing with what we report, the umask ignored, removal while attached, huge pages.

mod common;

use common::{
    ChildProcess, SysvGuard, child_env, child_role, ipcs_row, tell_parent, unique_name,
    wait_for_parent,
};
use shmkit_name::PageSize;
use shmkit_os::sysv::{self, SysvKey, SysvSegment};
use shmkit_os::{Access, Error, MapOptions};

/// The key of a fresh unique name: no other test or process uses it.
fn unique_key() -> SysvKey {
    SysvKey::of(&unique_name("sysv"))
}

fn ipcs_key(key: SysvKey) -> String {
    format!("0x{:08x}", key.get().cast_unsigned())
}

#[test]
fn a_segment_is_shared_with_a_second_process() {
    if let Some(role) = child_role() {
        assert_eq!(role, "attach");
        let key = SysvKey::new(child_env("SHMKIT_TEST_KEY").parse().expect("a key"))
            .expect("not private");
        let segment = SysvSegment::open(key, PageSize::Normal).expect("open by key");
        let mapping = segment.attach(&MapOptions::new()).expect("attach");
        let mut seen = [0; 6];
        mapping.read_at(0, &mut seen).expect("read");
        assert_eq!(&seen, b"parent");
        mapping.write_at(100, b"child").expect("write");
        tell_parent("attached");
        wait_for_parent();
        return;
    }
    let key = unique_key();
    let segment = SysvSegment::create(key, 8192, PageSize::Normal, 0o640).expect("create");
    let _guard = SysvGuard(segment.id());
    let row = ipcs_row(segment.id()).expect("ipcs -m lists the new segment");
    assert_eq!(
        (row.key.as_str(), row.perms.as_str(), row.bytes, row.attach_count),
        (ipcs_key(key).as_str(), "640", 8192, 0)
    );

    let mapping = segment.attach(&MapOptions::new()).expect("attach");
    mapping.write_at(0, b"parent").expect("write");
    let mut child = ChildProcess::spawn(
        "a_segment_is_shared_with_a_second_process",
        "attach",
        &[("SHMKIT_TEST_KEY", key.get().to_string())],
    );
    child.expect("attached");
    // Both attachments are live: ours and the child's.
    assert_eq!(segment.stat().expect("stat").attach_count, 2);
    assert_eq!(ipcs_row(segment.id()).map(|row| row.attach_count), Some(2));
    let mut seen = [0; 5];
    mapping.read_at(100, &mut seen).expect("read");
    assert_eq!(&seen, b"child");
    let child_pid = child.pid();
    child.send("done");
    child.finish();

    let info = segment.stat().expect("stat");
    assert_eq!((info.attach_count, info.last_pid), (1, child_pid), "the child's exit detached it");
    assert_eq!(
        (info.creator_pid, info.size, info.mode, info.key),
        (std::process::id(), 8192, 0o640, Some(key))
    );
    assert!(info.attach_time.is_some() && info.detach_time.is_some() && info.change_time.is_some());
    let listed =
        sysv::list_sysv().expect("list").into_iter().find(|listed| listed.id == segment.id());
    assert_eq!(
        listed.map(|listed| (listed.size, listed.mode, listed.attach_count)),
        Some((8192, 0o640, 1))
    );

    drop(mapping);
    let id = segment.id();
    segment.remove().expect("remove");
    assert_eq!(ipcs_row(id), None, "ipcs -m no longer lists it");
    assert!(matches!(sysv::stat_id(id), Err(Error::NotFound { .. })));
    assert!(matches!(SysvSegment::open(key, PageSize::Normal), Err(Error::NotFound { .. })));
    assert!(matches!(sysv::remove_id(id), Err(Error::NotFound { .. })));
}

#[test]
fn the_mode_is_exact_whatever_the_umask() {
    if let Some(role) = child_role() {
        assert_eq!(role, "umask");
        // Only in this child: the umask is per process, and the parent runs tests in parallel.
        rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
        let segment = SysvSegment::create_private(4096, PageSize::Normal, 0o666).expect("create");
        let _guard = SysvGuard(segment.id());
        assert_eq!(segment.stat().expect("stat").mode, 0o666);
        assert_eq!(ipcs_row(segment.id()).map(|row| row.perms), Some("666".to_owned()));
        return;
    }
    ChildProcess::spawn("the_mode_is_exact_whatever_the_umask", "umask", &[]).finish();
}

#[test]
fn an_existing_key_and_bad_input_are_refused() {
    let key = unique_key();
    let segment = SysvSegment::create(key, 4096, PageSize::Normal, 0o600).expect("create");
    let _guard = SysvGuard(segment.id());
    let error = SysvSegment::create(key, 4096, PageSize::Normal, 0o600).expect_err("key taken");
    assert!(matches!(error, Error::AlreadyExists { .. }));
    assert!(error.to_string().contains(&format!("SysV key {}", ipcs_key(key))), "{error}");

    for (size, mode) in [(0, 0o600), (100, 0o600), (4096, 0o1600), (4096, 0o4600)] {
        let refused = SysvSegment::create(unique_key(), size, PageSize::Normal, mode);
        assert!(matches!(refused, Err(Error::InvalidInput { .. })), "{size} {mode:o}: {refused:?}");
    }
    let refused = SysvSegment::create(unique_key(), 4096, PageSize::Huge, 0o600);
    assert!(matches!(refused, Err(Error::InvalidInput { .. })), "4 KiB of huge pages: {refused:?}");
    assert!(matches!(SysvKey::new(0), Err(Error::InvalidInput { .. })));
    assert!(matches!(
        SysvSegment::open(unique_key(), PageSize::Normal),
        Err(Error::NotFound { .. })
    ));

    // The segment is 4 KiB: opening it as a huge-page segment is refused, not misaligned.
    assert!(matches!(SysvSegment::open(key, PageSize::Huge), Err(Error::Corrupted { .. })));
    assert!(matches!(
        SysvSegment::open_id(segment.id(), PageSize::Huge),
        Err(Error::Corrupted { .. })
    ));
}

#[test]
fn a_segment_handed_to_another_user_stays_its_creators_to_use_and_remove() {
    // A user and group nobody has: the creator may hand its segment to anyone, root or not.
    const OTHER: u32 = 54_321;
    let segment = SysvSegment::create(unique_key(), 4096, PageSize::Normal, 0o600).expect("create");
    let _guard = SysvGuard(segment.id());
    segment.set_owner(OTHER, OTHER, 0o640).expect("IPC_SET");
    let info = segment.stat().expect("stat");
    let me = rustix::process::geteuid().as_raw();
    assert_eq!(
        (info.uid, info.gid, info.mode, info.cuid, info.size),
        (OTHER, OTHER, 0o640, me, 4096)
    );
    assert_eq!(ipcs_row(segment.id()).map(|row| row.perms), Some("640".to_owned()));

    // The creator keeps the owner's rights: it still attaches (read-write) and removes it.
    let mapping = segment.attach(&MapOptions::new()).expect("the creator attaches");
    mapping.write_at(0, b"still mine").expect("write");
    drop(mapping);
    let refused = segment.set_owner(OTHER, OTHER, 0o1640);
    assert!(matches!(refused, Err(Error::InvalidInput { .. })), "{refused:?}");
    sysv::set_owner_id(segment.id(), me, OTHER, 0o600).expect("IPC_SET by id");
    assert_eq!(segment.stat().map(|info| (info.uid, info.mode)).ok(), Some((me, 0o600)));
    let id = segment.id();
    segment.remove().expect("the creator removes it");
    assert!(matches!(sysv::set_owner_id(id, me, me, 0o600), Err(Error::NotFound { .. })));
}

#[test]
fn removal_while_attached_frees_the_key_and_keeps_the_memory() {
    let key = unique_key();
    let segment = SysvSegment::create(key, 4096, PageSize::Normal, 0o600).expect("create");
    let id = segment.id();
    let _guard = SysvGuard(id);
    let mapping = segment.attach(&MapOptions::new()).expect("attach");
    segment.remove().expect("remove");

    let info = sysv::stat_id(id).expect("still there while attached");
    assert!(info.marked_for_removal);
    assert_eq!(info.key, None, "the kernel rewrites the key of a removed segment to IPC_PRIVATE");
    assert!(
        ipcs_row(id).is_some_and(|row| row.status.contains("dest")),
        "ipcs -m shows it as dest"
    );
    mapping.write_at(0, b"still mine").expect("the attachment still works");

    let again =
        SysvSegment::create(key, 4096, PageSize::Normal, 0o600).expect("the key is free again");
    let _again_guard = SysvGuard(again.id());
    assert_ne!(again.id(), id);

    drop(mapping);
    assert!(
        matches!(sysv::stat_id(id), Err(Error::NotFound { .. })),
        "gone with its last attachment"
    );
    assert_eq!(ipcs_row(id), None);
}

#[test]
fn read_only_attachments_and_open_by_id() {
    let segment = SysvSegment::create_private(8192, PageSize::Normal, 0o600).expect("create");
    let _guard = SysvGuard(segment.id());
    assert_eq!(segment.key(), None);
    let writer = segment.attach(&MapOptions::new()).expect("attach");
    writer.write_at(8191, &[42]).expect("write the last byte");

    let by_id = SysvSegment::open_id(segment.id(), PageSize::Normal).expect("open by id");
    let reader =
        by_id.attach(&MapOptions::new().access(Access::ReadOnly)).expect("attach read-only");
    assert_eq!((reader.len(), reader.access()), (8192, Access::ReadOnly));
    let mut byte = [0];
    reader.read_at(8191, &mut byte).expect("read");
    assert_eq!(byte, [42]);
    assert!(reader.write_at(0, b"x").is_err());
    assert!(reader.read_at(8192, &mut byte).is_err(), "bounds are the segment's size");
    assert_eq!(segment.stat().expect("stat").attach_count, 2);
    drop((writer, reader));
    assert_eq!(segment.stat().expect("stat").attach_count, 0);
}

#[test]
fn populate_and_lock_fault_every_page_in() {
    let segment = SysvSegment::create_private(64 * 1024, PageSize::Normal, 0o600).expect("create");
    let _guard = SysvGuard(segment.id());
    let options = MapOptions::new().populate(true);
    let options = if rustix::process::geteuid().is_root() { options.lock(true) } else { options };
    let mapping = segment.attach(&options).expect("attach");
    let vma = common::vma_at(mapping.as_ptr() as usize).expect("in smaps");
    assert_eq!((vma.start, vma.end - vma.start), (mapping.as_ptr() as usize, 64 * 1024));
    assert!(vma.path.starts_with("/SYSV"), "{vma:?}");
    assert_eq!(vma.kib("Rss"), Some(64), "populated");
    if options.get_lock() {
        assert_eq!(vma.kib("Locked"), Some(64));
    }
    // The guard pages on each side are reserved and inaccessible.
    for guard in [vma.start - 4096, vma.end] {
        assert_eq!(common::vma_at(guard).map(|guard| guard.perms), Some("---p".to_owned()));
    }
}

#[test]
fn huge_page_segments() {
    if !common::huge_pages_ready(PageSize::Huge, 2) {
        return;
    }
    let key = unique_key();
    let segment = SysvSegment::create(key, 2 << 21, PageSize::Huge, 0o600).expect("create");
    let _guard = SysvGuard(segment.id());
    let mapping = SysvSegment::open(key, PageSize::Huge)
        .expect("open")
        .attach(&MapOptions::new())
        .expect("attach");
    assert_eq!(mapping.as_ptr() as usize % (2 << 20), 0, "aligned to the huge page size");
    mapping.write_at((2 << 21) - 1, &[1]).expect("write");
    let vma = common::vma_at(mapping.as_ptr() as usize).expect("in smaps");
    assert_eq!(vma.kib("KernelPageSize"), Some(2048));
    assert_eq!(vma.end - vma.start, 2 << 21);
}

#[test]
fn gigantic_page_segments() {
    if !common::huge_pages_ready(PageSize::Gigantic, 1) {
        return;
    }
    let segment = SysvSegment::create_private(1 << 30, PageSize::Gigantic, 0o600).expect("create");
    let _guard = SysvGuard(segment.id());
    let mapping = segment.attach(&MapOptions::new()).expect("attach");
    assert_eq!(mapping.as_ptr() as usize % (1 << 30), 0);
    mapping.write_at(0, &[1]).expect("write");
    let vma = common::vma_at(mapping.as_ptr() as usize).expect("in smaps");
    assert_eq!(vma.kib("KernelPageSize"), Some(1 << 20));
}
