//! Partition assignment: the [`Assignor`] trait and Kafka's four built-in
//! strategies, as pure, deterministic functions.
//!
//! An assignor sees what the group leader sees in Kafka's consumer protocol:
//! every member's subscription (topics, the partitions it claims to own and
//! the generation of that claim) and the partition count of each topic. It
//! returns a partition list for every member. The same input gives the same
//! output, whatever order the members arrive in.
//!
//! | assignor | protocol | behaviour |
//! |---|---|---|
//! | [`Range`] | eager | per topic, contiguous ranges over the sorted subscribers (Kafka's `RangeAssignor`) |
//! | [`RoundRobin`] | eager | all partitions dealt in turn over the sorted members (Kafka's `RoundRobinAssignor`) |
//! | [`Sticky`] | eager | balanced, moving as few owned partitions as balance allows (KIP-54) |
//! | [`CooperativeSticky`] | cooperative | sticky, but a partition changing owner is withheld for one round (KIP-429) |
//!
//! ## Who owns what
//!
//! The sticky assignors trust a member's claimed partitions only when the
//! claim is current: the member's generation is the highest reported in the
//! group (a member with no generation loses to any member with one), the
//! topic is still subscribed by that member and the partition exists. A
//! partition claimed by two current members is treated as unowned. This is
//! how Kafka's `AbstractStickyAssignor` guards against zombies that rejoin
//! with an old assignment.
//!
//! ## Member order
//!
//! Members are ordered as Kafka orders `MemberInfo`: static members (with a
//! `group.instance.id`) first by instance id, then dynamic members by member
//! id. A static member that restarts under a new member id therefore keeps
//! its place, and its partitions under range and round-robin.

mod index;
mod range;
mod round_robin;
mod sticky;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use crate::model::{Generation, InstanceId, MemberId, Topic, TopicPartition};

pub use range::Range;
pub use round_robin::RoundRobin;
pub use sticky::{CooperativeSticky, Sticky};

/// How members hand partitions over during a rebalance.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RebalanceProtocol {
    /// Every member revokes everything before rejoining ("stop the world").
    Eager,
    /// Members keep what they are allowed to keep; partitions that change
    /// owner are revoked first and assigned in a follow-up rebalance
    /// (KIP-429).
    Cooperative,
}

/// One member's subscription, as the group leader decodes it from the
/// JoinGroup response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberSubscription {
    /// The member's id.
    pub member_id: MemberId,
    /// The member's `group.instance.id`, for static members.
    pub instance_id: Option<InstanceId>,
    /// Subscribed topics. Topics missing from the metadata are ignored.
    pub topics: Vec<Topic>,
    /// Partitions the member says it owns.
    pub owned: Vec<TopicPartition>,
    /// The generation in which it owned them; `None` if it does not say.
    pub generation: Option<Generation>,
}

impl MemberSubscription {
    /// A member with no owned partitions and no generation.
    pub fn new(member_id: impl Into<MemberId>, topics: impl IntoIterator<Item = Topic>) -> Self {
        Self {
            member_id: member_id.into(),
            instance_id: None,
            topics: topics.into_iter().collect(),
            owned: Vec::new(),
            generation: None,
        }
    }
}

/// Everything an assignor sees.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GroupSubscription {
    /// The members. If a member id appears twice, the first entry counts.
    pub members: Vec<MemberSubscription>,
    /// Partition count of each topic in the cluster metadata.
    pub topics: BTreeMap<Topic, u32>,
}

/// The result: every member of the input (even one with nothing) mapped to
/// its partitions, sorted by topic then partition.
pub type GroupAssignment = BTreeMap<MemberId, Vec<TopicPartition>>;

/// A partition assignment strategy.
///
/// Implement this for a custom assignor. An implementation must be a pure
/// function of its input: no clock, no randomness, no hash-map iteration
/// order in the result. ruckus's checkers and the simulation's determinism
/// rely on that.
pub trait Assignor: Send + Sync {
    /// The protocol name members advertise in JoinGroup (Kafka's names:
    /// `range`, `roundrobin`, `sticky`, `cooperative-sticky`).
    fn name(&self) -> &str;

    /// The rebalance protocol this assignor supports.
    fn protocol(&self) -> RebalanceProtocol {
        RebalanceProtocol::Eager
    }

    /// Computes the assignment. Must not panic on any input: no members,
    /// no topics, topics nobody subscribes to, claims on partitions that no
    /// longer exist.
    fn assign(&self, group: &GroupSubscription) -> GroupAssignment;
}

/// The built-in assignor with the given protocol name, if any.
pub fn by_name(name: &str) -> Option<Box<dyn Assignor>> {
    match name {
        "range" => Some(Box::new(Range)),
        "roundrobin" => Some(Box::new(RoundRobin)),
        "sticky" => Some(Box::new(Sticky)),
        "cooperative-sticky" => Some(Box::new(CooperativeSticky)),
        _ => None,
    }
}
