//! The delivery-latency histogram: recorded on the delivery thread once per message, so a record
//! is a few relaxed atomics and no lock that a metrics reader could hold up. Buckets are
//! log-linear: values below 128 µs are exact, larger ones fall into one of 128 buckets per power
//! of two, so a quantile is at most 0.8% above the true value.

use std::sync::atomic::{AtomicU64, Ordering};

/// Sub-buckets per power of two, as a power of two.
const SUB_BITS: u32 = 7;
const SUB: usize = 1 << SUB_BITS;
/// Values are kept up to 2^36 µs (19 hours); larger ones count in the last bucket.
const TOP_BIT: u32 = 36;
const BUCKETS: usize = (TOP_BIT - SUB_BITS + 1) as usize * SUB;

pub(crate) struct LatencyHistogram {
    counts: Box<[AtomicU64]>,
    sum_us: AtomicU64,
    max_us: AtomicU64,
}

impl Default for LatencyHistogram {
    fn default() -> LatencyHistogram {
        LatencyHistogram {
            counts: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
            sum_us: AtomicU64::new(0),
            max_us: AtomicU64::new(0),
        }
    }
}

/// The bucket of `micros`.
fn bucket(micros: u64) -> usize {
    let micros = micros.min((1 << TOP_BIT) - 1);
    if micros < SUB as u64 {
        return micros as usize;
    }
    let exponent = 63 - micros.leading_zeros(); // >= SUB_BITS
    let shift = exponent - SUB_BITS;
    let mantissa = (micros >> shift) as usize; // in [SUB, 2 * SUB)
    (shift as usize + 1) * SUB + mantissa - SUB
}

/// The largest value that falls into bucket `index`.
fn upper_bound(index: usize) -> u64 {
    if index < SUB {
        return index as u64;
    }
    let shift = index / SUB - 1;
    let mantissa = (SUB + index % SUB) as u64;
    ((mantissa + 1) << shift) - 1
}

/// What a snapshot reads: consistent with itself (the count is the sum of the buckets read), if
/// not with reports made while it was read.
pub(crate) struct Counts {
    counts: Vec<u64>,
    pub(crate) count: u64,
    pub(crate) sum_us: u64,
    pub(crate) max_us: u64,
}

impl LatencyHistogram {
    pub(crate) fn record(&self, micros: u64) {
        self.counts[bucket(micros)].fetch_add(1, Ordering::Relaxed);
        self.sum_us.fetch_add(micros, Ordering::Relaxed);
        // Read first: the maximum rarely changes, and a plain load does not take the cache line.
        if micros > self.max_us.load(Ordering::Relaxed) {
            self.max_us.fetch_max(micros, Ordering::Relaxed);
        }
    }

    pub(crate) fn counts(&self) -> Counts {
        let counts: Vec<u64> = self
            .counts
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .collect();
        Counts {
            count: counts.iter().sum(),
            counts,
            sum_us: self.sum_us.load(Ordering::Relaxed),
            max_us: self.max_us.load(Ordering::Relaxed),
        }
    }
}

impl Counts {
    /// The value at quantile `q` (0 to 1): the upper bound of its bucket, never above the largest
    /// value recorded; 0 when nothing was.
    pub(crate) fn value_at_quantile(&self, q: f64) -> u64 {
        if self.count == 0 {
            return 0;
        }
        let rank = ((q * self.count as f64).ceil() as u64).clamp(1, self.count);
        let mut seen = 0;
        for (index, &n) in self.counts.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return upper_bound(index).min(self.max_us);
            }
        }
        self.max_us
    }

    /// How many values are at most `micros` (counting the whole bucket `micros` falls into).
    pub(crate) fn count_at_most(&self, micros: u64) -> u64 {
        self.counts[..=bucket(micros)].iter().sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_value_falls_into_a_bucket_whose_bounds_hold_it_within_0_8_percent() {
        let mut lower = 0;
        for index in 0..BUCKETS {
            let upper = upper_bound(index);
            assert_eq!(bucket(lower), index, "{lower}");
            assert_eq!(bucket(upper), index, "{upper}");
            assert!(
                (upper - lower) as f64 <= lower as f64 / SUB as f64,
                "{lower}..{upper}"
            );
            lower = upper + 1;
        }
        assert_eq!(bucket(u64::MAX), BUCKETS - 1);
    }

    #[test]
    fn quantiles_count_and_sum_match_what_was_recorded() {
        let histogram = LatencyHistogram::default();
        for micros in 1..=10_000 {
            histogram.record(micros);
        }
        let counts = histogram.counts();
        assert_eq!(counts.count, 10_000);
        assert_eq!(counts.sum_us, 10_000 * 10_001 / 2);
        assert_eq!(counts.max_us, 10_000);
        for (q, exact) in [
            (0.5, 5_000.0),
            (0.99, 9_900.0),
            (0.999, 9_990.0),
            (1.0, 10_000.0),
        ] {
            let value = counts.value_at_quantile(q) as f64;
            assert!(value >= exact && value <= exact * 1.008, "{q}: {value}");
        }
        assert_eq!(counts.count_at_most(100), 100);
        assert_eq!(counts.count_at_most(1_000_000), 10_000);
        assert_eq!(
            LatencyHistogram::default().counts().value_at_quantile(0.5),
            0
        );
    }
}
