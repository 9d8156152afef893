//! [`Backoff`]: exponential spinning for a side that polls what another core writes.

use crate::primitive::spin_loop;

/// Spins 1, 2, 4 … 64 pause hints between polls (as crossbeam's `Backoff`).
///
/// A side that polls a position or a slot on every pause pulls that cache line back from the
/// core writing it, and both slow down; doubling the pause between polls lets the writer finish.
/// Call [`Backoff::reset`] after progress. For waits that may last long, use a
/// [`WaitStrategy`](crate::WaitStrategy) that yields or sleeps.
///
/// ```
/// use std::sync::atomic::{AtomicBool, Ordering};
/// use shmkit_sync::Backoff;
///
/// let ready = AtomicBool::new(true);
/// let mut backoff = Backoff::new();
/// while !ready.load(Ordering::Acquire) {
///     backoff.snooze();
/// }
/// backoff.reset();
/// ```
#[derive(Debug, Default, Clone)]
pub struct Backoff(u32);

impl Backoff {
    /// The longest pause is `2^LIMIT` hints.
    const LIMIT: u32 = 6;

    /// A back-off at its shortest pause.
    pub const fn new() -> Self {
        Self(0)
    }

    /// Spins the current pause, then doubles it (up to 64 hints).
    #[inline]
    pub fn snooze(&mut self) {
        for _ in 0..1_u32 << self.0 {
            spin_loop();
        }
        if self.0 < Self::LIMIT {
            self.0 += 1;
        }
    }

    /// Back to the shortest pause, after progress.
    #[inline]
    pub fn reset(&mut self) {
        self.0 = 0;
    }
}
