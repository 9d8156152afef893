//! Which CPUs the producer and the consumer run on: two different ones of those this process may
//! use, when there are two (the consumer pins itself to its CPU, the bench to its own).

use std::sync::OnceLock;

use rustix::thread::{CpuSet, sched_getaffinity, sched_setaffinity};

/// The CPUs this process may run on, ascending.
fn allowed() -> &'static [usize] {
    static ALLOWED: OnceLock<Vec<usize>> = OnceLock::new();
    ALLOWED.get_or_init(|| {
        sched_getaffinity(None)
            .map(|set| (0..CpuSet::MAX_CPU).filter(|&cpu| set.is_set(cpu)).collect())
            .unwrap_or_default()
    })
}

/// The producer's and the consumer's CPUs: the first two allowed, or none with fewer.
pub fn plan() -> Option<(usize, usize)> {
    match allowed() {
        [first, second, ..] => Some((*first, *second)),
        _ => None,
    }
}

/// Pins the calling thread to `cpu` (`sched_setaffinity`).
pub fn pin(cpu: usize) -> std::io::Result<()> {
    let mut set = CpuSet::new();
    set.set(cpu);
    sched_setaffinity(None, &set).map_err(std::io::Error::from)
}
