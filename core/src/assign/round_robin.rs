use super::index::{Indexed, NONE};
use super::{Assignor, GroupAssignment, GroupSubscription};

/// Kafka's `RoundRobinAssignor`: all partitions, by topic then partition, are
/// dealt in turn over the members in member order; a member that does not
/// subscribe to a partition's topic is skipped for that partition.
///
/// With equal subscriptions every member gets the same count, give or take
/// one.
#[derive(Clone, Copy, Debug, Default)]
pub struct RoundRobin;

impl Assignor for RoundRobin {
    fn name(&self) -> &str {
        "roundrobin"
    }

    fn assign(&self, group: &GroupSubscription) -> GroupAssignment {
        let ix = Indexed::new(group);
        let mut owner = vec![NONE; ix.total_partitions() as usize];
        let n = ix.members.len() as u32;
        let mut next = 0u32;
        for t in 0..ix.topics.len() as u32 {
            // Every indexed topic has at least one subscriber, so the search
            // below ends within one turn of the circle.
            for g in ix.topic_start[t as usize]..ix.topic_start[t as usize + 1] {
                while !ix.subscribes(next, t) {
                    next = (next + 1) % n;
                }
                owner[g as usize] = next;
                next = (next + 1) % n;
            }
        }
        ix.to_assignment(&owner)
    }
}
