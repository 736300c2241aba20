//! `partition.strategy=round_robin`: librdkafka has no round-robin partitioner, so the producer's
//! librdkafka context carries this one. librdkafka may call it on any of its threads.

use std::sync::atomic::{AtomicU32, Ordering};

use rdkafka::producer::Partitioner;

#[derive(Default)]
pub(crate) struct RoundRobin {
    next: AtomicU32,
}

impl Partitioner for RoundRobin {
    /// The next partition with a leader; keys are ignored. With no leader anywhere, the next one
    /// all the same: librdkafka holds the record until it has one.
    fn partition(
        &self,
        _topic: &str,
        _key: Option<&[u8]>,
        partition_count: i32,
        is_partition_available: impl Fn(i32) -> bool,
    ) -> i32 {
        let count = partition_count.max(1) as u32;
        let first = self.next.fetch_add(1, Ordering::Relaxed);
        (0..count)
            .map(|step| (first.wrapping_add(step) % count) as i32)
            .find(|&partition| is_partition_available(partition))
            .unwrap_or((first % count) as i32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_take_turns_and_unavailable_ones_are_skipped() {
        let round_robin = RoundRobin::default();
        let picks: Vec<i32> = (0..6)
            .map(|_| round_robin.partition("t", None, 3, |_| true))
            .collect();
        assert_eq!(picks, [0, 1, 2, 0, 1, 2]);
        let picks: Vec<i32> = (0..4)
            .map(|_| round_robin.partition("t", Some(b"k"), 3, |p| p != 1))
            .collect();
        assert!(picks.iter().all(|&p| p != 1), "{picks:?}");
        assert_eq!(
            round_robin.partition("t", None, 3, |_| false) as u32,
            10 % 3
        );
    }
}
