//! Input builders shared by the ruckus criterion benchmarks.
//!
//! Everything is deterministic: no RNG, so every run measures the same work.

use std::collections::BTreeMap;

use ruckus_core::assign::{Assignor, GroupAssignment, GroupSubscription, MemberSubscription};
use ruckus_core::model::{Generation, Topic};

/// Which topics each member subscribes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Subscriptions {
    /// Every member subscribes to every topic.
    Uniform,
    /// Member `i` skips every topic `t` with `(t + i) % 4 == 0`: four
    /// different subscription lists, each of three quarters of the topics.
    NonUniform,
}

/// A group of `members` over `topics` topics of `partitions` partitions
/// each, with no partition owned yet.
pub fn fresh_group(
    topics: usize,
    partitions: u32,
    members: usize,
    subs: Subscriptions,
) -> GroupSubscription {
    let names: Vec<Topic> = (0..topics)
        .map(|t| Topic::new(format!("topic-{t:04}")))
        .collect();
    let members = (0..members)
        .map(|i| {
            let topics = names
                .iter()
                .enumerate()
                .filter(|(t, _)| subs == Subscriptions::Uniform || (t + i) % 4 != 0)
                .map(|(_, n)| n.clone())
                .collect::<Vec<_>>();
            MemberSubscription::new(format!("member-{i:05}"), topics)
        })
        .collect();
    let topics: BTreeMap<Topic, u32> = names.into_iter().map(|n| (n, partitions)).collect();
    GroupSubscription { members, topics }
}

/// The group after `assignor` assigned it once and then the last member
/// left: every remaining member claims what it was given, in generation 1.
/// This is the rebalance a sticky assignor is built for.
pub fn after_member_left(fresh: &GroupSubscription, assignor: &dyn Assignor) -> GroupSubscription {
    let first: GroupAssignment = assignor.assign(fresh);
    let mut next = fresh.clone();
    next.members.pop();
    for m in &mut next.members {
        m.owned = first.get(&m.member_id).cloned().unwrap_or_default();
        m.generation = Some(Generation(1));
    }
    next
}
