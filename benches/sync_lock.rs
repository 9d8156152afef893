//! `shmkit-sync` locks, uncontended: one thread locks and unlocks, nobody else touches the lock.
//! The locks live on the heap: placement in shared memory does not change the uncontended path
//! (the same instructions on a line this core owns).
//!
//! - `sync_lock/mutex`: `RobustMutex` lock + unlock (target: under 25 ns) and `try_lock` +
//!   unlock, beside `std::sync::Mutex` (a private futex lock), a plain process-shared pthread
//!   mutex, and glibc's robust process-shared mutex called directly (the same kind as
//!   `RobustMutex`: robust, error-checking). The last one separates what robustness costs in
//!   glibc from what shmkit's wrapper adds.
//! - `sync_lock/semlock`: `SemLock` lock + unlock, two `semop` system calls.
//! - `sync_lock/rwlock`: `RwLock` read + release and write + release.
//!
//! After criterion, an interleaved comparison (`paired`) prints ratios that survive this
//! machine's drifting speed.

use std::cell::UnsafeCell;
use std::hint::black_box;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::time::Duration;

use criterion::{Criterion, criterion_main};
use shmkit_benches::{paired, report_paired};
use shmkit_sync::{RobustMutex, RwLock, SemLock};

/// A pthread mutex on the heap (it never moves), initialised with the given attributes.
struct RawMutex(Pin<Box<UnsafeCell<libc::pthread_mutex_t>>>);

impl RawMutex {
    fn new(robust: bool) -> Self {
        let mutex = Box::pin(UnsafeCell::new(libc::PTHREAD_MUTEX_INITIALIZER));
        let mut attr = MaybeUninit::<libc::pthread_mutexattr_t>::uninit();
        // SAFETY: `attr` is storage for an attribute object, initialised by the first call and
        // destroyed by the last; `mutex` is fresh heap memory that never moves and that nothing
        // else uses yet.
        unsafe {
            assert_eq!(libc::pthread_mutexattr_init(attr.as_mut_ptr()), 0);
            assert_eq!(libc::pthread_mutexattr_setpshared(attr.as_mut_ptr(), 1), 0);
            if robust {
                let attr = attr.as_mut_ptr();
                assert_eq!(libc::pthread_mutexattr_setrobust(attr, libc::PTHREAD_MUTEX_ROBUST), 0);
                let kind = libc::PTHREAD_MUTEX_ERRORCHECK;
                assert_eq!(libc::pthread_mutexattr_settype(attr, kind), 0);
            }
            assert_eq!(libc::pthread_mutex_init(mutex.get(), attr.as_ptr()), 0);
            libc::pthread_mutexattr_destroy(attr.as_mut_ptr());
        }
        Self(mutex)
    }

    fn lock_unlock(&self) {
        // SAFETY: an initialised mutex that never moves; this thread unlocks what it locked.
        unsafe {
            let code = libc::pthread_mutex_lock(self.0.get());
            debug_assert_eq!(code, 0);
            black_box(&self.0);
            libc::pthread_mutex_unlock(self.0.get());
        }
    }
}

fn robust_lock_unlock(mutex: &RobustMutex) {
    let guard = mutex.lock().expect("lock");
    black_box(&guard);
}

fn bench_mutex(c: &mut Criterion) {
    let robust = RobustMutex::boxed().expect("robust mutex");
    let std_mutex = std::sync::Mutex::new(0_u64);
    let plain = RawMutex::new(false);
    let raw_robust = RawMutex::new(true);

    let mut group = c.benchmark_group("sync_lock/mutex");
    group.bench_function("shmkit-robust/lock-unlock", |b| b.iter(|| robust_lock_unlock(&robust)));
    group.bench_function("shmkit-robust/try_lock-unlock", |b| {
        b.iter(|| black_box(robust.try_lock().expect("try_lock").expect("free")));
    });
    group.bench_function("glibc-robust-raw/lock-unlock", |b| b.iter(|| raw_robust.lock_unlock()));
    group.bench_function("pthread-pshared/lock-unlock", |b| b.iter(|| plain.lock_unlock()));
    group.bench_function("std-mutex/lock-unlock", |b| {
        b.iter(|| *black_box(std_mutex.lock().expect("lock")) += 1);
    });
    group.finish();

    let (rounds, batch) = (31, 20_000);
    let result = paired(rounds, batch, || robust_lock_unlock(&robust), || raw_robust.lock_unlock());
    report_paired("sync_lock/mutex", "shmkit-robust", "glibc-robust-raw", rounds, &result);
    let result = paired(rounds, batch, || robust_lock_unlock(&robust), || plain.lock_unlock());
    report_paired("sync_lock/mutex", "shmkit-robust", "pthread-pshared", rounds, &result);
    let result = paired(
        rounds,
        batch,
        || robust_lock_unlock(&robust),
        || *black_box(std_mutex.lock().expect("lock")) += 1,
    );
    report_paired("sync_lock/mutex", "shmkit-robust", "std-mutex", rounds, &result);
}

fn bench_semlock(c: &mut Criterion) {
    let lock = SemLock::create_private().expect("SysV semaphore");
    let mut group = c.benchmark_group("sync_lock/semlock");
    group.bench_function("lock-unlock", |b| b.iter(|| black_box(lock.lock().expect("lock"))));
    group.finish();
}

fn bench_rwlock(c: &mut Criterion) {
    let lock = RwLock::boxed().expect("rwlock");
    let mut group = c.benchmark_group("sync_lock/rwlock");
    group.bench_function("read-release", |b| b.iter(|| black_box(lock.read().expect("read"))));
    group.bench_function("write-release", |b| b.iter(|| black_box(lock.write().expect("write"))));
    group.finish();
}

/// Short runs: the whole file takes well under a minute.
fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1))
        .sample_size(30)
}

/// The criterion group of this file, in a module of its own so that the lint exemption below
/// covers only what the macro generates.
#[expect(missing_docs, reason = "criterion_group! generates an undocumented public function")]
pub mod group {
    use super::{bench_mutex, bench_rwlock, bench_semlock, config};

    criterion::criterion_group! {
        name = benches;
        config = config();
        targets = bench_mutex, bench_semlock, bench_rwlock
    }
}

criterion_main!(group::benches);
