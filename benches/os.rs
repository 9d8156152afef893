//! `shmkit-os`: create + map + unmap + unlink of a region, against the same syscall sequence
//! written plainly, for 1 MiB of normal pages, 64 MiB of huge pages and 1 GiB of gigantic pages.
//!
//! Both sides do the same work: create the file exclusively, set its mode, size it, allocate every
//! page (`fallocate`) and fault it in, unmap, then open it again, map it, unmap it and unlink it.
//! shmkit adds its random-address reservation with guard pages, `MADV_DONTDUMP` and its `fstat`
//! checks; the comparison says what those cost.

use std::hint::black_box;
use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use criterion::{Criterion, criterion_main};
use rustix::fs::{Mode, OFlags};
use rustix::mm::{MapFlags, ProtFlags};
use shmkit_benches::{paired, report_paired};
use shmkit_name::{Name, PageSize};
use shmkit_os::{Access, MapOptions, Region, RegionOptions};

fn unique_name(tag: &str) -> Name {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    Name::new(&format!("bench-{tag}-{}-{n}", std::process::id())).expect("valid bench name")
}

fn shmkit_cycle(page_size: PageSize, pages: u64) {
    let name = unique_name("shmkit");
    RegionOptions::new().page_size(page_size).create(&name, pages).expect("create");
    let mapping = Region::open(&name, Some(page_size), Access::ReadWrite)
        .and_then(|region| region.map(&MapOptions::new()))
        .expect("map");
    black_box(mapping.as_ptr());
    drop(mapping);
    shmkit_os::unlink(&name, page_size).expect("unlink");
}

fn raw_open(page_size: PageSize, name: &Name, create: bool) -> OwnedFd {
    let mode = Mode::from_raw_mode(0o600);
    if page_size == PageSize::Normal {
        let flags = if create {
            rustix::shm::OFlags::CREATE | rustix::shm::OFlags::EXCL | rustix::shm::OFlags::RDWR
        } else {
            rustix::shm::OFlags::RDWR
        };
        rustix::shm::open(name.posix_name().as_c_str(), flags, mode).expect("shm_open")
    } else {
        let mut flags = OFlags::RDWR | OFlags::CLOEXEC | OFlags::NOFOLLOW;
        if create {
            flags |= OFlags::CREATE | OFlags::EXCL;
        }
        rustix::fs::open(raw_path(page_size, name), flags, mode).expect("open")
    }
}

fn raw_path(page_size: PageSize, name: &Name) -> PathBuf {
    shmkit_os::path_of(name, page_size)
}

fn raw_map(fd: &OwnedFd, len: usize) -> *mut std::ffi::c_void {
    // SAFETY: a fresh shared mapping at an address the kernel picks; nothing else refers to it.
    unsafe {
        rustix::mm::mmap(
            std::ptr::null_mut(),
            len,
            ProtFlags::READ | ProtFlags::WRITE,
            MapFlags::SHARED,
            fd.as_fd(),
            0,
        )
    }
    .expect("mmap")
}

fn raw_cycle(page_size: PageSize, pages: u64) {
    let name = unique_name("raw");
    let page = page_size.bytes();
    let len = page * pages as usize;
    let fd = raw_open(page_size, &name, true);
    rustix::fs::fchmod(&fd, Mode::from_raw_mode(0o600)).expect("fchmod");
    rustix::fs::ftruncate(&fd, len as u64).expect("ftruncate");
    let address = raw_map(&fd, len);
    rustix::fs::fallocate(&fd, rustix::fs::FallocateFlags::empty(), 0, len as u64)
        .expect("fallocate");
    for index in 0..pages as usize {
        // SAFETY: inside the mapping just made, whose pages fallocate allocated.
        unsafe { address.cast::<u8>().add(index * page).read_volatile() };
    }
    // SAFETY: the mapping made above; nothing refers to it any more.
    unsafe { rustix::mm::munmap(address, len) }.expect("munmap");
    drop(fd);
    let fd = raw_open(page_size, &name, false);
    rustix::fs::fstat(&fd).expect("fstat");
    let address = raw_map(&fd, len);
    black_box(address);
    // SAFETY: the mapping made above; nothing refers to it any more.
    unsafe { rustix::mm::munmap(address, len) }.expect("munmap");
    drop(fd);
    match page_size {
        PageSize::Normal => rustix::shm::unlink(name.posix_name().as_c_str()).expect("shm_unlink"),
        _ => rustix::fs::unlink(raw_path(page_size, &name)).expect("unlink"),
    }
}

fn available(page_size: PageSize) -> bool {
    match shmkit_os::mounts::region_dir(page_size) {
        Ok(_) => true,
        Err(error) => {
            eprintln!("os/{page_size}: skipped: {error}");
            false
        }
    }
}

fn bench_os(c: &mut Criterion) {
    let cases = [
        (PageSize::Normal, 256, "1MiB-normal"),
        (PageSize::Huge, 32, "64MiB-huge"),
        (PageSize::Gigantic, 1, "1GiB-gigantic"),
    ];
    for (page_size, pages, label) in cases {
        if !available(page_size) {
            continue;
        }
        let mut group = c.benchmark_group(format!("os/create-map-unmap-unlink/{label}"));
        if page_size == PageSize::Gigantic {
            group.sample_size(10);
        }
        group.bench_function("shmkit", |b| b.iter(|| shmkit_cycle(page_size, pages)));
        group.bench_function("raw", |b| b.iter(|| raw_cycle(page_size, pages)));
        group.finish();

        let (rounds, batch) = if page_size == PageSize::Gigantic { (11, 1) } else { (31, 8) };
        let result = paired(
            rounds,
            batch,
            || shmkit_cycle(page_size, pages),
            || raw_cycle(page_size, pages),
        );
        report_paired(&format!("os/{label}"), "shmkit", "raw", rounds, &result);
    }
}

/// The criterion group of this file, in a module of its own so that the lint exemption below
/// covers only what the macro generates.
#[expect(missing_docs, reason = "criterion_group! generates an undocumented public function")]
pub mod group {
    use super::bench_os;

    criterion::criterion_group!(benches, bench_os);
}

criterion_main!(group::benches);
