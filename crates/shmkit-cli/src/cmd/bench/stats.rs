//! Latency percentiles and what a consumer reports to the bench.

use serde::{Deserialize, Serialize};

/// One-way latency in nanoseconds over the latency phase's messages.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Latency {
    /// Messages measured.
    pub samples: u64,
    /// The fastest.
    pub min: u64,
    /// The median.
    pub p50: u64,
    /// The 99th percentile.
    pub p99: u64,
    /// The 99.9th percentile.
    pub p999: u64,
    /// The slowest.
    pub max: u64,
}

impl Latency {
    /// The percentiles of `samples` (sorted here), by the nearest-rank method.
    pub fn of(samples: &mut [u64]) -> Self {
        if samples.is_empty() {
            return Self::default();
        }
        samples.sort_unstable();
        let rank = |per_mille: u64| {
            let count = samples.len() as u64;
            // Nearest rank: the smallest value with at least p of the samples at or below it.
            let index = (count * per_mille).div_ceil(1000).clamp(1, count) - 1;
            samples[usize::try_from(index).unwrap_or(0)]
        };
        Self {
            samples: samples.len() as u64,
            min: samples[0],
            p50: rank(500),
            p99: rank(990),
            p999: rank(999),
            max: samples[samples.len() - 1],
        }
    }
}

/// One message in this many of the throughput phase is stamped with its send time.
pub const STREAM_SAMPLE: u64 = 1024;

/// What the consumer process prints when it is done: one JSON line on stdout.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsumerReport {
    /// Messages received and checked (all of them, or the consumer would have failed).
    pub received: u64,
    /// When the last message of the throughput phase arrived (`CLOCK_MONOTONIC` ns).
    pub stream_end_ns: u64,
    /// The latency phase.
    pub latency: Latency,
    /// The stamped messages of the throughput phase (one in [`STREAM_SAMPLE`]).
    pub stream_latency: Latency,
    /// Messages the consumer lost to overruns (broadcast; always 0 with credit).
    pub lost: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_by_nearest_rank() {
        let mut samples: Vec<u64> = (1..=1000).rev().collect();
        let latency = Latency::of(&mut samples);
        assert_eq!(
            (latency.min, latency.p50, latency.p99, latency.p999, latency.max),
            (1, 500, 990, 999, 1000)
        );
        assert_eq!(Latency::of(&mut [7]).p999, 7);
        assert_eq!(Latency::of(&mut []), Latency::default());
    }
}
