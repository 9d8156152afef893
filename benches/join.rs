//! `shmkit-join`: a re-join that is a count hit (plus its leave), a query by address with the
//! registry full (255 joins), and a first join of an existing region against the plain sequence a
//! program would write without shmkit (`shm_open` + `fstat` + `mmap` + `close`, then `munmap`).
//!
//! The first join finds the page size, opens with `O_NOFOLLOW`, checks the size with `fstat`,
//! reserves a random address range with a guard page on each side, maps into it, excludes it from
//! core dumps and records it; its leave unmaps. Mapping is left unlocked on both sides (locking
//! faults every page in, which would measure the page size, not the join).

use std::hint::black_box;
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicU64, Ordering};

use criterion::{Criterion, criterion_main};
use rustix::mm::{MapFlags, ProtFlags};
use shmkit_benches::{XorShift, paired, report_paired};
use shmkit_join::{CAPACITY, Join, JoinOptions, join, query_by_range};
use shmkit_name::{Name, PageSize};
use shmkit_os::{Access, MapOptions, RegionOptions};

/// A region for the benchmark, unlinked on drop.
struct BenchRegion(Name);

impl BenchRegion {
    fn new(pages: u64) -> Self {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let name = Name::new(&format!("bench-join-{}-{n}", std::process::id())).expect("name");
        RegionOptions::new().create(&name, pages).expect("create");
        Self(name)
    }
}

impl Drop for BenchRegion {
    fn drop(&mut self) {
        let _ = shmkit_os::unlink(&self.0, PageSize::Normal);
    }
}

fn options() -> JoinOptions {
    JoinOptions::new().map_options(MapOptions::new())
}

fn raw_join_leave(name: &Name) {
    let fd = rustix::shm::open(
        name.posix_name().as_c_str(),
        rustix::shm::OFlags::RDWR,
        rustix::fs::Mode::empty(),
    )
    .expect("shm_open");
    let len = usize::try_from(rustix::fs::fstat(&fd).expect("fstat").st_size).expect("size");
    // SAFETY: a fresh shared mapping at an address the kernel picks; nothing else refers to it.
    let address = unsafe {
        rustix::mm::mmap(
            std::ptr::null_mut(),
            len,
            ProtFlags::READ | ProtFlags::WRITE,
            MapFlags::SHARED,
            fd.as_fd(),
            0,
        )
    }
    .expect("mmap");
    drop(fd);
    black_box(address);
    // SAFETY: the mapping made above; nothing refers to it any more.
    unsafe { rustix::mm::munmap(address, len) }.expect("munmap");
}

fn shmkit_join_leave(name: &Name, options: &JoinOptions) {
    let joined = join(name, Access::ReadWrite, options).expect("join");
    black_box(joined.as_ptr());
    joined.leave().expect("leave");
}

fn bench_rejoin(c: &mut Criterion) {
    let region = BenchRegion::new(1);
    let held = join(&region.0, Access::ReadWrite, &options()).expect("join");
    c.bench_function("join/rejoin-hit+leave", |b| {
        b.iter(|| drop(black_box(join(&region.0, Access::ReadWrite, &options()).expect("join"))));
    });
    drop(held);
}

fn bench_query(c: &mut Criterion) {
    let regions: Vec<BenchRegion> = (0..CAPACITY).map(|_| BenchRegion::new(1)).collect();
    let joins: Vec<Join> = regions
        .iter()
        .map(|region| join(&region.0, Access::ReadWrite, &options()).expect("join"))
        .collect();
    let mut rng = XorShift::new(0x5eed);
    // Random bytes inside random joined regions, and as many misses (a page past each end lies
    // in a guard page, which no join covers).
    let probes: Vec<usize> = (0..4096)
        .map(|i| {
            let joined = &joins[(rng.next_u64() % joins.len() as u64) as usize];
            let offset = (rng.next_u64() % joined.len() as u64) as usize;
            if i % 2 == 0 {
                joined.region_ptr() as usize + offset
            } else {
                joined.region_ptr() as usize + joined.len() + offset
            }
        })
        .collect();
    let mut next = 0;
    c.bench_function("join/query-by-range/255-joins", |b| {
        b.iter(|| {
            next = (next + 1) % probes.len();
            black_box(query_by_range(probes[next] as *const u8, 8).expect("query"))
        });
    });
    drop(joins);
    drop(regions);
}

fn bench_first_join(c: &mut Criterion) {
    let region = BenchRegion::new(64);
    // The default (out of core dumps: one `madvise` more than the plain sequence), and with
    // dumps allowed, which is the plain sequence's work exactly.
    let dumped = JoinOptions::new().map_options(MapOptions::new().dump(true));
    let mut group = c.benchmark_group("join/first-join+leave/256KiB");
    group.bench_function("shmkit", |b| b.iter(|| shmkit_join_leave(&region.0, &options())));
    group.bench_function("shmkit-dump", |b| b.iter(|| shmkit_join_leave(&region.0, &dumped)));
    group.bench_function("raw", |b| b.iter(|| raw_join_leave(&region.0)));
    group.finish();
    let rounds = 41;
    for (label, options) in [("shmkit", options()), ("shmkit-dump", dumped)] {
        let result = paired(
            rounds,
            256,
            || shmkit_join_leave(&region.0, &options),
            || raw_join_leave(&region.0),
        );
        report_paired("join/first-join+leave/256KiB", label, "raw", rounds, &result);
    }
}

/// The criterion group of this file, in a module of its own so that the lint exemption below
/// covers only what the macro generates.
#[expect(missing_docs, reason = "criterion_group! generates an undocumented public function")]
pub mod group {
    use super::{bench_first_join, bench_query, bench_rejoin};

    criterion::criterion_group!(benches, bench_rejoin, bench_query, bench_first_join);
}

criterion_main!(group::benches);
