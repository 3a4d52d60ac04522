use super::index::{Indexed, NONE};
use super::{Assignor, GroupAssignment, GroupSubscription};

/// Kafka's `RangeAssignor`: for each topic, its partitions are split into
/// contiguous ranges over the topic's subscribers in member order; the
/// first `partitions % subscribers` members get one extra.
///
/// Balance is per topic only: with several topics the first members get the
/// extra partition of every topic, as in Kafka. A topic nobody subscribes to
/// is skipped (no division by zero).
#[derive(Clone, Copy, Debug, Default)]
pub struct Range;

impl Assignor for Range {
    fn name(&self) -> &str {
        "range"
    }

    fn assign(&self, group: &GroupSubscription) -> GroupAssignment {
        let ix = Indexed::new(group);
        let mut owner = vec![NONE; ix.total_partitions() as usize];
        for (t, subscribers) in ix.subscribers.iter().enumerate() {
            let n = subscribers.len() as u32;
            if n == 0 {
                continue;
            }
            let count = ix.partition_count(t as u32);
            let (per, extra) = (count / n, count % n);
            let mut g = ix.topic_start[t];
            for (i, &m) in subscribers.iter().enumerate() {
                let len = per + u32::from((i as u32) < extra);
                owner[g as usize..(g + len) as usize].fill(m);
                g += len;
            }
        }
        ix.to_assignment(&owner)
    }
}
