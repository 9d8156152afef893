//! memfds against the real kernel: a second real process mapping an inherited descriptor, seals
//! enforced on every holder, hugetlb memfds, and `mlock` beyond `RLIMIT_MEMLOCK`.

mod common;

use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;

use common::{ChildProcess, child_env, child_role, tell_parent, wait_for_parent};
use rustix::io::Errno;
use shmkit_name::PageSize;
use shmkit_os::memfd::{Memfd, Seals};
use shmkit_os::{Access, Error, MapOptions};

#[test]
fn a_memfd_is_shared_with_a_child_that_inherits_it() {
    if let Some(role) = child_role() {
        assert_eq!(role, "inherit");
        let raw: i32 = child_env("SHMKIT_TEST_FD").parse().expect("an fd number");
        // SAFETY: the parent cleared CLOEXEC on this descriptor for this child only and passes
        // its number; nothing else in this process owns it.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let memfd = Memfd::from_fd(fd, PageSize::Normal).expect("take the memfd");
        assert_eq!(memfd.size().expect("size"), 65536);
        assert!(memfd.label().contains("/memfd:shared"), "{}", memfd.label());
        let mapping = memfd.map(&MapOptions::new()).expect("map");
        let mut seen = [0; 6];
        mapping.read_at(0, &mut seen).expect("read");
        assert_eq!(&seen, b"parent");
        mapping.write_at(65530, b"child!").expect("write");
        tell_parent("written");
        wait_for_parent();
        return;
    }
    let memfd = Memfd::create("shared", 65536, PageSize::Normal, false).expect("create");
    let mapping = memfd.map(&MapOptions::new()).expect("map");
    mapping.write_at(0, b"parent").expect("write");
    let raw = memfd.fd().as_raw_fd();
    let mut child = ChildProcess::spawn_with(
        "a_memfd_is_shared_with_a_child_that_inherits_it",
        "inherit",
        &[("SHMKIT_TEST_FD", raw.to_string())],
        |command| {
            // SAFETY: runs in the forked child before exec; fcntl is async-signal-safe and `raw`
            // is open there (fork copies descriptors). Clearing CLOEXEC there only lets exactly
            // this child inherit it, not children other tests spawn meanwhile.
            unsafe {
                command.pre_exec(move || {
                    let fd = rustix::fd::BorrowedFd::borrow_raw(raw);
                    rustix::io::fcntl_setfd(fd, rustix::io::FdFlags::empty())
                        .map_err(std::io::Error::from)
                });
            }
        },
    );
    child.expect("written");
    let mut seen = [0; 6];
    mapping.read_at(65530, &mut seen).expect("read");
    assert_eq!(&seen, b"child!");
    child.send("done");
    child.finish();
    // Only the parent's descriptor kept CLOEXEC cleared in the child; ours is untouched.
    let flags = rustix::io::fcntl_getfd(memfd.fd()).expect("fcntl");
    assert!(flags.contains(rustix::io::FdFlags::CLOEXEC));
}

#[test]
fn seals_bind_every_holder() {
    if let Some(role) = child_role() {
        assert_eq!(role, "peer");
        // A peer reaching the memfd through /proc, as a process with the right to do so may.
        let path =
            format!("/proc/{}/fd/{}", child_env("SHMKIT_TEST_PID"), child_env("SHMKIT_TEST_FD"));
        let file =
            std::fs::OpenOptions::new().read(true).write(true).open(&path).expect("open via /proc");
        let memfd = Memfd::from_fd(OwnedFd::from(file), PageSize::Normal).expect("take the memfd");
        let seals = memfd.seals().expect("seals");
        assert!(seals.contains(Seals::SHRINK | Seals::GROW | Seals::SEAL), "{seals}");
        assert_eq!(rustix::fs::ftruncate(memfd.fd(), 4096), Err(Errno::PERM));
        assert_eq!(rustix::fs::ftruncate(memfd.fd(), 1 << 20), Err(Errno::PERM));
        memfd.map(&MapOptions::new()).expect("map").write_at(0, b"peer").expect("write");
        return;
    }
    let memfd = Memfd::create("seals", 8192, PageSize::Normal, true).expect("create");
    assert_eq!(memfd.seals().expect("seals"), Seals::NONE);

    memfd.seal(Seals::SHRINK).expect("seal shrink");
    assert_eq!(rustix::fs::ftruncate(memfd.fd(), 4096), Err(Errno::PERM));
    rustix::fs::ftruncate(memfd.fd(), 16384).expect("growing is still allowed");
    assert_eq!(memfd.size().expect("size"), 16384);

    memfd.seal(Seals::GROW).expect("seal grow");
    assert_eq!(rustix::fs::ftruncate(memfd.fd(), 32768), Err(Errno::PERM));

    memfd.seal(Seals::SEAL).expect("seal seal");
    let refused = memfd.seal(Seals::WRITE).expect_err("no more seals");
    assert_eq!(refused.raw_os_error(), Some(libc::EPERM), "{refused}");
    assert_eq!(memfd.seals().expect("seals"), Seals::SHRINK | Seals::GROW | Seals::SEAL);

    ChildProcess::spawn(
        "seals_bind_every_holder",
        "peer",
        &[
            ("SHMKIT_TEST_PID", std::process::id().to_string()),
            ("SHMKIT_TEST_FD", memfd.fd().as_raw_fd().to_string()),
        ],
    )
    .finish();
    let mut seen = [0; 4];
    memfd
        .map(&MapOptions::new().access(Access::ReadOnly))
        .expect("map")
        .read_at(0, &mut seen)
        .expect("read");
    assert_eq!(&seen, b"peer");
}

#[test]
fn a_memfd_without_sealing_refuses_every_seal() {
    let memfd = Memfd::create("unsealable", 4096, PageSize::Normal, false).expect("create");
    assert_eq!(memfd.seals().expect("seals"), Seals::SEAL);
    assert_eq!(memfd.seal(Seals::SHRINK).expect_err("refused").raw_os_error(), Some(libc::EPERM));
}

#[test]
fn the_write_seal_waits_for_writable_mappings_to_go() {
    let memfd = Memfd::create("write-seal", 4096, PageSize::Normal, true).expect("create");
    let mapping = memfd.map(&MapOptions::new()).expect("map");
    mapping.write_at(0, b"final").expect("write");
    let busy = memfd.seal(Seals::WRITE).expect_err("a writable mapping exists");
    assert_eq!(busy.raw_os_error(), Some(libc::EBUSY), "{busy}");
    drop(mapping);
    memfd.seal(Seals::WRITE).expect("seal write");
    let refused =
        memfd.map(&MapOptions::new()).expect_err("no writable mapping of a write-sealed memfd");
    assert_eq!(refused.raw_os_error(), Some(libc::EPERM), "{refused}");
    let reader = memfd.map(&MapOptions::new().access(Access::ReadOnly)).expect("read-only is fine");
    let mut seen = [0; 5];
    reader.read_at(0, &mut seen).expect("read");
    assert_eq!(&seen, b"final");
}

#[test]
fn from_fd_checks_the_size_against_the_page_size() {
    let fd =
        rustix::fs::memfd_create("odd", rustix::fs::MemfdFlags::CLOEXEC).expect("memfd_create");
    rustix::fs::ftruncate(&fd, 5000).expect("ftruncate");
    assert!(matches!(Memfd::from_fd(fd, PageSize::Normal), Err(Error::Corrupted { .. })));

    let memfd = Memfd::create("ok", 4096 * 3, PageSize::Normal, false).expect("create");
    assert!(matches!(
        Memfd::from_fd(memfd.into_fd(), PageSize::Huge),
        Err(Error::Corrupted { .. })
    ));
}

/// What this kernel does: hugetlb memfds accept `MFD_ALLOW_SEALING` and seals (hugetlbfs has
/// supported them since Linux 4.16). Needs no huge page: nothing is mapped.
#[test]
fn hugetlb_memfds_can_be_sealed_on_this_kernel() {
    let flags = rustix::fs::MemfdFlags::CLOEXEC
        | rustix::fs::MemfdFlags::ALLOW_SEALING
        | rustix::fs::MemfdFlags::HUGETLB
        | rustix::fs::MemfdFlags::HUGE_2MB;
    let fd = rustix::fs::memfd_create("huge-seals", flags)
        .expect("memfd_create(MFD_HUGETLB | MFD_ALLOW_SEALING)");
    rustix::fs::ftruncate(&fd, 2 << 20).expect("sizing takes no page yet");
    let seals = rustix::fs::SealFlags::SHRINK | rustix::fs::SealFlags::GROW;
    rustix::fs::fcntl_add_seals(&fd, seals).expect("hugetlb seals");
    assert_eq!(rustix::fs::ftruncate(&fd, 4 << 20), Err(Errno::PERM));
}

#[test]
fn huge_page_memfds_map_on_huge_pages() {
    if !common::huge_pages_ready(PageSize::Huge, 2) {
        return;
    }
    let memfd = Memfd::create("huge", 2 << 21, PageSize::Huge, true).expect("create");
    memfd.seal(Seals::SHRINK | Seals::GROW | Seals::SEAL).expect("seal");
    let mapping = memfd.map(&MapOptions::new()).expect("map");
    assert_eq!(mapping.as_ptr() as usize % (2 << 20), 0);
    mapping.write_at(0, b"huge").expect("write");
    let vma = common::vma_at(mapping.as_ptr() as usize).expect("in smaps");
    assert_eq!((vma.kib("KernelPageSize"), vma.end - vma.start), (Some(2048), 2 << 21));
    assert!(vma.path.starts_with("/memfd:huge"), "{vma:?}");
}

#[test]
fn gigantic_page_memfds_map_on_gigantic_pages() {
    if !common::huge_pages_ready(PageSize::Gigantic, 1) {
        return;
    }
    let memfd = Memfd::create("gigantic", 1 << 30, PageSize::Gigantic, false).expect("create");
    let mapping = memfd.map(&MapOptions::new()).expect("map");
    assert_eq!(mapping.as_ptr() as usize % (1 << 30), 0);
    let vma = common::vma_at(mapping.as_ptr() as usize).expect("in smaps");
    assert_eq!(vma.kib("KernelPageSize"), Some(1 << 20));
}

/// `Mapping::lock` beyond `RLIMIT_MEMLOCK` is `MemlockLimit`. Run in a child that lowers the
/// limit and, as root, gives up root (and with it `CAP_IPC_LOCK`, which ignores the limit): the
/// limit is per process and the parent runs other tests in parallel.
#[test]
fn locking_beyond_the_memlock_limit_names_the_limit() {
    if let Some(role) = child_role() {
        assert_eq!(role, "limited");
        let memfd = Memfd::create("lock", 1 << 20, PageSize::Normal, false).expect("create");
        let mapping = memfd.map(&MapOptions::new()).expect("map");
        let limit = rustix::process::Rlimit { current: Some(65536), maximum: Some(65536) };
        rustix::process::setrlimit(rustix::process::Resource::Memlock, limit).expect("setrlimit");
        if rustix::process::geteuid().is_root() {
            // This thread only (the raw setuid syscall): it is the one that calls mlock.
            rustix::thread::set_thread_uid(rustix::process::Uid::from_raw(65534))
                .expect("become nobody");
        }
        let error = mapping.lock().expect_err("1 MiB over a 64 KiB limit");
        assert!(matches!(error, Error::MemlockLimit { bytes: 1_048_576, .. }), "{error:?}");
        let text = error.to_string();
        assert!(text.contains("RLIMIT_MEMLOCK") && text.contains("65536 bytes"), "{text}");
        let error = MapOptions::new()
            .lock(true)
            .map_fd(memfd.as_fd(), 1 << 20, PageSize::Normal, "lock")
            .expect_err("refused");
        assert!(matches!(error, Error::MemlockLimit { .. }), "{error:?}");
        return;
    }
    ChildProcess::spawn("locking_beyond_the_memlock_limit_names_the_limit", "limited", &[])
        .finish();
}
