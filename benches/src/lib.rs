//! Helpers shared by the criterion benchmarks in this folder.
//!
//! Each `*.rs` file beside `Cargo.toml` is one criterion bench target; `cargo bench -p
//! shmkit-benches --bench <name>` runs one. Peers (rtrb, crossbeam) are measured in the same run as
//! shmkit, because this machine's cross-core hand-off speed varies by up to 4x over seconds.

pub mod process;

/// A small deterministic generator (xorshift64*), so benchmark inputs are the same on every run
/// without a dependency.
#[derive(Debug, Clone)]
pub struct XorShift(u64);

impl XorShift {
    /// A generator from a seed; a zero seed is replaced by a fixed non-zero one.
    pub fn new(seed: u64) -> Self {
        Self(if seed == 0 { 0x9E37_79B9_7F4A_7C15 } else { seed })
    }

    /// The next 64 pseudo-random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

use std::time::{Duration, Instant};

/// The result of [`paired`]: each side's median time per call and the median of the per-round
/// ratios `a / b`.
#[derive(Debug, Clone, Copy)]
pub struct Paired {
    /// Median time of one call of `a`.
    pub a: Duration,
    /// Median time of one call of `b`.
    pub b: Duration,
    /// Median over rounds of (time of `a`) / (time of `b`) in the same round.
    pub ratio: f64,
}

/// Measures `a` and `b` interleaved (A B A B ...), `rounds` rounds of `batch` calls each, and
/// reports the median of the per-round ratios.
///
/// This machine's host slows every cross-core hand-off about 4x for stretches of 5 to 15
/// seconds; two figures taken minutes apart can differ by that much, while the ratio of two
/// measurements taken a few milliseconds apart does not. Criterion gives each side's absolute
/// figures; this gives the comparison.
pub fn paired(rounds: usize, batch: u32, mut a: impl FnMut(), mut b: impl FnMut()) -> Paired {
    let time = |f: &mut dyn FnMut()| {
        let start = Instant::now();
        for _ in 0..batch {
            f();
        }
        start.elapsed() / batch
    };
    // One warm-up round each, discarded.
    time(&mut a);
    time(&mut b);
    let mut a_times = Vec::with_capacity(rounds);
    let mut b_times = Vec::with_capacity(rounds);
    let mut ratios = Vec::with_capacity(rounds);
    for round in 0..rounds {
        // Alternate which side goes first, so neither always runs on a warmer cache.
        let (ta, tb) = if round % 2 == 0 {
            let ta = time(&mut a);
            (ta, time(&mut b))
        } else {
            let tb = time(&mut b);
            (time(&mut a), tb)
        };
        a_times.push(ta);
        b_times.push(tb);
        ratios.push(ta.as_secs_f64() / tb.as_secs_f64().max(f64::MIN_POSITIVE));
    }
    a_times.sort();
    b_times.sort();
    ratios.sort_by(f64::total_cmp);
    let middle = rounds / 2;
    Paired {
        a: a_times.get(middle).copied().unwrap_or_default(),
        b: b_times.get(middle).copied().unwrap_or_default(),
        ratio: ratios.get(middle).copied().unwrap_or(f64::NAN),
    }
}

/// Prints a [`Paired`] result as one line: `label: a 1.2 µs, b 1.1 µs, ratio a/b 1.09 (median of N)`.
pub fn report_paired(label: &str, a_name: &str, b_name: &str, rounds: usize, result: &Paired) {
    println!(
        "{label}: {a_name} {:.3?}, {b_name} {:.3?}, ratio {a_name}/{b_name} {:.3} (median of {rounds} interleaved rounds)",
        result.a, result.b, result.ratio
    );
}
