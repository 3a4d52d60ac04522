//! Dense integer indexing shared by the assignors.
//!
//! Topics become indices in name order, members indices in Kafka's member
//! order, and each partition a global index `topic_start[t] + p`. The
//! assignors then work on `Vec`s instead of maps, which is what keeps a
//! 1M-partition × 2,000-member assignment in the tens of milliseconds.

use rustc_hash::FxHashMap;

use super::{GroupAssignment, GroupSubscription, MemberSubscription};
use crate::model::{Topic, TopicPartition};

/// Marks a partition with no owner.
pub(super) const NONE: u32 = u32::MAX;

pub(super) struct Indexed<'a> {
    /// Topics that exist and that at least one member subscribes to, by name.
    pub(super) topics: Vec<&'a Topic>,
    /// First global partition index of each topic; one extra entry at the end.
    pub(super) topic_start: Vec<u32>,
    /// Members in Kafka's order (static by instance id, then dynamic by id).
    pub(super) members: Vec<&'a MemberSubscription>,
    /// Each member's subscription list, an index into `list_subs`.
    list_of: Vec<u32>,
    /// Each distinct subscription list's topic indices, sorted, deduplicated.
    list_subs: Vec<Vec<u32>>,
    /// Subscriber member indices of each topic, ascending.
    pub(super) subscribers: Vec<Vec<u32>>,
    /// Whether all members subscribe to the same (existing) topics.
    uniform: bool,
}

/// Kafka's `MemberInfo` order: static members first by instance id, then
/// dynamic members by member id.
fn member_order(a: &MemberSubscription, b: &MemberSubscription) -> std::cmp::Ordering {
    match (&a.instance_id, &b.instance_id) {
        (Some(x), Some(y)) => x.cmp(y).then_with(|| a.member_id.cmp(&b.member_id)),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => a.member_id.cmp(&b.member_id),
    }
}

impl<'a> Indexed<'a> {
    pub(super) fn new(group: &'a GroupSubscription) -> Self {
        // Deduplicate members by id (first occurrence wins), then sort.
        let mut members: Vec<&MemberSubscription> = Vec::with_capacity(group.members.len());
        {
            let mut seen = std::collections::BTreeSet::new();
            for m in &group.members {
                if seen.insert(&m.member_id) {
                    members.push(m);
                }
            }
        }
        members.sort_by(|a, b| member_order(a, b));

        // Members usually share one subscription list (often literally the
        // same topics), so index each distinct list once: with 2,000 members
        // of 500 topics that is 500 lookups instead of a million.
        let mut lists: Vec<&[Topic]> = Vec::new();
        let mut list_of: Vec<u32> = Vec::with_capacity(members.len());
        for m in &members {
            // Look back a few lists only, so that all-distinct subscriptions
            // stay linear; a missed share just indexes a list twice.
            let lookback = lists.len().saturating_sub(8);
            let found = (lookback..lists.len())
                .rev()
                .find(|&i| lists[i] == m.topics.as_slice());
            let id = found.unwrap_or_else(|| {
                lists.push(&m.topics);
                lists.len() - 1
            });
            list_of.push(id as u32);
        }

        // Topics that exist and are subscribed, in name order.
        let mut subscribed: Vec<&Topic> = Vec::new();
        for l in &lists {
            subscribed.extend(l.iter().filter(|t| group.topics.contains_key(*t)));
        }
        subscribed.sort_unstable();
        subscribed.dedup();

        let lookup: FxHashMap<&str, u32> = subscribed
            .iter()
            .enumerate()
            .map(|(i, t)| (t.as_str(), i as u32))
            .collect();

        let mut topic_start = Vec::with_capacity(subscribed.len() + 1);
        let mut total: u64 = 0;
        for t in &subscribed {
            topic_start.push(total as u32);
            total += u64::from(group.topics[*t]);
        }
        // Global indices are u32; NONE is reserved. Kafka's own limits are far
        // below this, so a bigger input is a caller bug, not data.
        assert!(
            total < u64::from(NONE),
            "more than 2^32-1 partitions in one assignment"
        );
        topic_start.push(total as u32);

        let list_subs: Vec<Vec<u32>> = lists
            .iter()
            .map(|l| {
                let mut s: Vec<u32> = l
                    .iter()
                    .filter_map(|t| lookup.get(t.as_str()).copied())
                    .collect();
                s.sort_unstable();
                s.dedup();
                s
            })
            .collect();
        let mut subscribers = vec![Vec::new(); subscribed.len()];
        for (mi, &l) in list_of.iter().enumerate() {
            for &t in &list_subs[l as usize] {
                subscribers[t as usize].push(mi as u32);
            }
        }
        let uniform = list_subs.windows(2).all(|w| w[0] == w[1]);

        Indexed {
            topics: subscribed,
            topic_start,
            members,
            list_of,
            list_subs,
            subscribers,
            uniform,
        }
    }

    pub(super) fn total_partitions(&self) -> u32 {
        *self.topic_start.last().unwrap_or(&0)
    }

    pub(super) fn partition_count(&self, t: u32) -> u32 {
        self.topic_start[t as usize + 1] - self.topic_start[t as usize]
    }

    pub(super) fn subscribes(&self, member: u32, topic: u32) -> bool {
        self.list_subs[self.list_of[member as usize] as usize]
            .binary_search(&topic)
            .is_ok()
    }

    /// Whether every member subscribes to the same topics.
    pub(super) fn uniform(&self) -> bool {
        self.uniform
    }

    /// Topic index of a topic name, searching from a hint first: owned lists
    /// are sorted by topic, so consecutive lookups usually hit the same one.
    fn topic_of(&self, name: &Topic, hint: &mut u32) -> Option<u32> {
        if let Some(t) = self.topics.get(*hint as usize) {
            if *t == name {
                return Some(*hint);
            }
        }
        let t = self.topics.binary_search(&name).ok()? as u32;
        *hint = t;
        Some(t)
    }

    /// Current owners: one owner per partition, or [`NONE`]. A claim counts
    /// only if it comes from a member of the highest reported generation,
    /// for a topic the member still subscribes to, for a partition that
    /// exists, and if no other such member claims the same partition.
    pub(super) fn current_owners(&self) -> Vec<u32> {
        let total = self.total_partitions() as usize;
        let mut owner = vec![NONE; total];
        let gen_key = |m: &MemberSubscription| m.generation.map_or(i64::MIN, |g| i64::from(g.0));
        let Some(max_gen) = self.members.iter().map(|m| gen_key(m)).max() else {
            return owner;
        };
        // A second claimant marks the partition contested; contested stays NONE.
        let mut contested = vec![false; total];
        for (mi, m) in self.members.iter().enumerate() {
            if gen_key(m) != max_gen {
                continue;
            }
            let mut hint = 0;
            for tp in &m.owned {
                let Some(t) = self.topic_of(&tp.topic, &mut hint) else {
                    continue;
                };
                if !self.subscribes(mi as u32, t) {
                    continue;
                }
                let p = tp.partition.0;
                if p < 0 || p as u32 >= self.partition_count(t) {
                    continue;
                }
                let g = (self.topic_start[t as usize] + p as u32) as usize;
                match owner[g] {
                    NONE if !contested[g] => owner[g] = mi as u32,
                    o if o == mi as u32 => {} // listed twice by the same member
                    _ => {
                        owner[g] = NONE;
                        contested[g] = true;
                    }
                }
            }
        }
        owner
    }

    /// Builds the result from an owner array. Every member appears.
    pub(super) fn to_assignment(&self, owner: &[u32]) -> GroupAssignment {
        let mut per_member: Vec<Vec<TopicPartition>> = vec![Vec::new(); self.members.len()];
        for (t, topic) in self.topics.iter().enumerate() {
            let start = self.topic_start[t];
            let end = self.topic_start[t + 1];
            for g in start..end {
                let o = owner[g as usize];
                if o != NONE {
                    per_member[o as usize].push(TopicPartition {
                        topic: (*topic).clone(),
                        partition: crate::model::Partition((g - start) as i32),
                    });
                }
            }
        }
        self.members
            .iter()
            .map(|m| m.member_id.clone())
            .zip(per_member)
            .collect()
    }
}
