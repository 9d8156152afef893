//! Anonymous huge pages and process-wide locking against the real kernel: `/proc/self/smaps`
//! shows the page size and the guards, partial release keeps one block, `mlockall` as root and
//! beyond `RLIMIT_MEMLOCK` (in child processes: locking is per process).

mod common;

use common::{ChildProcess, child_role, vma_at};
use shmkit_name::PageSize;
use shmkit_os::Error;
use shmkit_os::anon::AnonHugePages;
use shmkit_os::lock::{LockAll, lock_all, unlock_all};

/// What of a mapping is in memory, in kB. smaps counts hugetlb pages apart from `Rss`, and 6.18
/// sometimes counts private gigantic pages as `Shared_Hugetlb` (its "likely mapped shared"
/// guess for large folios), so take both.
fn resident_kib(vma: &common::Vma) -> u64 {
    ["Rss", "Shared_Hugetlb", "Private_Hugetlb"].iter().filter_map(|field| vma.kib(field)).sum()
}

/// Acquires 2 pages, releases the first, then the rest, checking `smaps` at each step.
fn acquire_release_front_then_rest(page_size: PageSize) {
    let page = page_size.bytes();
    let kib = page as u64 / 1024;
    let mut pages = AnonHugePages::acquire(page_size, 2, None).expect("acquire");
    let start = pages.as_ptr() as usize;
    assert_eq!(start % page, 0, "aligned to the page size");
    assert_eq!((pages.len(), pages.page_count(), pages.page_size()), (2 * page, 2, page_size));
    let vma = vma_at(start).expect("in smaps");
    assert_eq!(
        (vma.start, vma.end, vma.kib("KernelPageSize")),
        (start, start + 2 * page, Some(kib))
    );
    assert_eq!(resident_kib(&vma), 2 * kib, "faulted in on acquisition");
    for guard in [start - page, start + 2 * page] {
        assert_eq!(
            vma_at(guard).map(|guard| guard.perms),
            Some("---p".to_owned()),
            "a guard page at {guard:#x}"
        );
    }
    // Zero-filled: the first and last byte of each page (a full scan of 2 GiB is slow unoptimised).
    let bytes = pages.as_slice();
    assert!([0, page - 1, page, 2 * page - 1].iter().all(|&index| bytes[index] == 0));
    pages.as_mut_slice()[page..page + 4].copy_from_slice(b"kept");

    pages.release_pages(0, 1).expect("release the first page");
    assert_eq!((pages.as_ptr() as usize, pages.page_count()), (start + page, 1));
    let kept = vma_at(start + page).expect("in smaps");
    assert_eq!(
        (kept.start, kept.end, kept.kib("KernelPageSize")),
        (start + page, start + 2 * page, Some(kib))
    );
    let released = vma_at(start).expect("still reserved");
    assert_eq!(
        (released.perms.as_str(), resident_kib(&released)),
        ("---p", 0),
        "no memory behind it"
    );
    assert_eq!(&pages.as_slice()[..4], b"kept");

    pages.release();
    assert!(
        vma_at(start).is_none() && vma_at(start + page).is_none(),
        "the whole range is unmapped"
    );
}

#[test]
fn huge_pages_are_released_front_first_then_all() {
    if common::huge_pages_ready(PageSize::Huge, 2) {
        acquire_release_front_then_rest(PageSize::Huge);
    }
}

#[test]
fn gigantic_pages_are_released_front_first_then_all() {
    if common::huge_pages_ready(PageSize::Gigantic, 2) {
        acquire_release_front_then_rest(PageSize::Gigantic);
    }
}

#[test]
fn normal_pages_are_released_front_first_then_all() {
    acquire_release_front_then_rest(PageSize::Normal);
}

#[test]
fn the_back_can_go_but_not_the_middle() {
    let mut pages = AnonHugePages::acquire(PageSize::Normal, 5, None).expect("acquire");
    let start = pages.as_ptr() as usize;
    pages.as_mut_slice().fill(3);
    let error = pages.release_pages(1, 2).expect_err("a hole");
    assert!(error.to_string().contains("hole in the middle"), "{error}");
    pages.release_pages(3, 2).expect("release the back");
    assert_eq!((pages.as_ptr() as usize, pages.page_count()), (start, 3));
    assert_eq!(vma_at(start + 3 * 4096).map(|vma| vma.perms), Some("---p".to_owned()));
    assert!(pages.as_slice().iter().all(|&byte| byte == 3));
    pages.release_pages(2, 1).expect("the new back");
    pages.release_pages(0, 1).expect("the front");
    assert_eq!((pages.as_ptr() as usize, pages.len()), (start + 4096, 4096));
}

#[test]
fn a_shortage_is_out_of_memory_with_the_fix() {
    // 2 TiB of huge pages: more than any pool here holds.
    let error = AnonHugePages::acquire(PageSize::Huge, 1 << 20, None).expect_err("no such pool");
    assert!(matches!(error, Error::OutOfMemory { pages: 1_048_576, .. }), "{error:?}");
    assert!(error.to_string().contains("cargo xtask setup-hugepages"), "{error}");
}

#[test]
fn pages_bound_to_a_node_are_verified_there() {
    let pages = AnonHugePages::acquire(PageSize::Normal, 8, Some(0)).expect("acquire on node 0");
    let statuses =
        shmkit_os::numa::page_nodes(pages.as_ptr(), pages.len(), 4096).expect("move_pages");
    assert_eq!(statuses, [0; 8]);
    assert!(matches!(
        AnonHugePages::acquire(PageSize::Normal, 1, Some(4000)),
        Err(Error::UnknownNode { .. })
    ));
    if common::huge_pages_ready(PageSize::Huge, 1) {
        let huge =
            AnonHugePages::acquire(PageSize::Huge, 1, Some(0)).expect("a huge page on node 0");
        assert_eq!(
            shmkit_os::numa::page_nodes(huge.as_ptr(), huge.len(), 2 << 20).expect("move_pages"),
            [0]
        );
    }
}

/// `VmLck` of `/proc/self/status`, in kB.
fn locked_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .expect("status")
        .lines()
        .find_map(|line| line.strip_prefix("VmLck:"))
        .and_then(|value| value.trim().strip_suffix(" kB"))
        .and_then(|value| value.trim().parse().ok())
        .expect("a VmLck line")
}

#[test]
fn lock_all_then_unlock_all() {
    if let Some(role) = child_role() {
        assert_eq!(role, "lock");
        if !rustix::process::geteuid().is_root() {
            eprintln!(
                "skipped: locking a whole process needs root (or CAP_IPC_LOCK) to ignore RLIMIT_MEMLOCK"
            );
            return;
        }
        lock_all(LockAll { current: true, future: true, on_fault: false }).expect("mlockall");
        assert!(locked_kib() > 0);
        // MCL_FUTURE: a new mapping is locked as it is made.
        let pages = AnonHugePages::acquire(PageSize::Normal, 16, None).expect("acquire");
        assert_eq!(vma_at(pages.as_ptr() as usize).and_then(|vma| vma.kib("Locked")), Some(64));
        unlock_all().expect("munlockall");
        assert_eq!(locked_kib(), 0);
        lock_all(LockAll { current: true, future: false, on_fault: true })
            .expect("mlockall on fault");
        unlock_all().expect("munlockall");
        return;
    }
    ChildProcess::spawn("lock_all_then_unlock_all", "lock", &[]).finish();
}

/// Below the limit and without `CAP_IPC_LOCK` (as root, this child gives up root on the thread
/// that calls `mlockall`), locking the whole process is `MemlockLimit`.
#[test]
fn lock_all_beyond_the_memlock_limit_names_the_limit() {
    if let Some(role) = child_role() {
        assert_eq!(role, "limited");
        let limit = rustix::process::Rlimit { current: Some(65536), maximum: Some(65536) };
        rustix::process::setrlimit(rustix::process::Resource::Memlock, limit).expect("setrlimit");
        if rustix::process::geteuid().is_root() {
            rustix::thread::set_thread_uid(rustix::process::Uid::from_raw(65534))
                .expect("become nobody");
        }
        let error =
            lock_all(LockAll { current: true, ..LockAll::default() }).expect_err("over the limit");
        assert!(
            matches!(&error, Error::MemlockLimit { target, bytes: 0, .. } if target == "this process"),
            "{error:?}"
        );
        let text = error.to_string();
        assert!(text.contains("RLIMIT_MEMLOCK") && text.contains("65536 bytes"), "{text}");
        return;
    }
    ChildProcess::spawn("lock_all_beyond_the_memlock_limit_names_the_limit", "limited", &[])
        .finish();
}
