//! The broker side of Kafka's classic consumer group protocol, modelled on
//! Apache Kafka's `GroupCoordinator` (the pre-KIP-848 implementation in
//! `kafka.coordinator.group`), sans-IO.
//!
//! ## States
//!
//! ```text
//!            join                   join phase completes          leader syncs
//!  Empty ───────────▶ PreparingRebalance ─────────▶ CompletingRebalance ─────────▶ Stable
//!    ▲                 │   ▲       ▲                     │                          │
//!    └─ no members ────┘   │       └── join / leave / ───┘                          │
//!                          └──────── expiry / leader rejoin / new protocol ─────────┘
//!  any state ──unload / delete──▶ Dead
//! ```
//!
//! The **generation** increments exactly when a join phase completes
//! (`PreparingRebalance → CompletingRebalance`, or `→ Empty` when nobody is
//! left), never on other transitions.
//!
//! ## Driving it
//!
//! Feed requests with [`Coordinator::handle_request`] (or the typed
//! `handle_*` methods) tagged with an opaque [`ReplyTo`]; collect responses
//! with [`Coordinator::poll_response`]. Some responses are delayed, as in
//! Kafka: a JoinGroup is answered when the join phase completes, a
//! follower's SyncGroup when the leader's assignment arrives. Call
//! [`Coordinator::handle_timeout`] when the clock passes
//! [`Coordinator::poll_timeout`] (session expiry, rebalance timeout, the
//! initial rebalance delay). [`Coordinator::poll_event`] reports state
//! changes and member removals for the history.

mod messages;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use bytes::Bytes;

use crate::model::{
    ErrorCode, Generation, GroupId, InstanceId, Instant, MemberId, Offset, TopicPartition,
};

pub use messages::*;

/// The state of a group, with Kafka's names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum GroupState {
    /// No members; offsets may still be stored.
    Empty,
    /// Waiting for members to (re)join.
    PreparingRebalance,
    /// Join phase done; waiting for the leader's assignment.
    CompletingRebalance,
    /// Assignment distributed; members heartbeat.
    Stable,
    /// Unloaded or deleted; the group is gone from this coordinator.
    Dead,
}

impl GroupState {
    /// Whether `self → to` is one of Kafka's valid transitions
    /// (`GroupState.validPreviousStates`).
    pub fn can_transition_to(self, to: GroupState) -> bool {
        use GroupState::*;
        match to {
            PreparingRebalance => matches!(self, Stable | CompletingRebalance | Empty),
            CompletingRebalance => self == PreparingRebalance,
            Stable => self == CompletingRebalance,
            Empty => self == PreparingRebalance,
            Dead => true,
        }
    }
}

/// Coordinator settings, with Kafka's broker defaults.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CoordinatorConfig {
    /// `group.min.session.timeout.ms` (default 6 s).
    pub min_session_timeout: Duration,
    /// `group.max.session.timeout.ms` (default 30 min).
    pub max_session_timeout: Duration,
    /// `group.initial.rebalance.delay.ms` (default 3 s; 0 allowed): how long
    /// an Empty group waits for more members before its first join phase
    /// completes, extended by the same delay per new member up to the
    /// rebalance timeout.
    pub initial_rebalance_delay: Duration,
}

impl Default for CoordinatorConfig {
    fn default() -> Self {
        Self {
            min_session_timeout: Duration::from_secs(6),
            max_session_timeout: Duration::from_secs(1800),
            initial_rebalance_delay: Duration::from_secs(3),
        }
    }
}

/// An opaque tag the caller attaches to a request and gets back with its
/// response (for example a connection and correlation id).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ReplyTo(pub u64);

/// Why a member left the group.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RemovalReason {
    /// It sent LeaveGroup.
    Left,
    /// Its session timed out without a heartbeat.
    SessionExpired,
    /// It did not rejoin before the join phase completed (rebalance timeout).
    DidNotRejoin,
    /// A pending member (given an id with MEMBER_ID_REQUIRED) never rejoined.
    PendingExpired,
}

/// Something the coordinator did, for the history.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CoordinatorEvent {
    /// A group changed state.
    StateChanged {
        /// The group.
        group: GroupId,
        /// Old state.
        from: GroupState,
        /// New state.
        to: GroupState,
        /// Generation after the change.
        generation: Generation,
    },
    /// A member was added.
    MemberAdded {
        /// The group.
        group: GroupId,
        /// The member.
        member: MemberId,
        /// The client id it joined with.
        client_id: String,
    },
    /// A member was removed.
    MemberRemoved {
        /// The group.
        group: GroupId,
        /// The member.
        member: MemberId,
        /// Why.
        reason: RemovalReason,
    },
    /// A static member rejoined under a new member id; the old id is fenced.
    StaticMemberReplaced {
        /// The group.
        group: GroupId,
        /// The instance id.
        instance: InstanceId,
        /// The fenced member id.
        old: MemberId,
        /// The new member id.
        new: MemberId,
    },
    /// The leader's assignment was handed out: the generation is complete
    /// (the group is Stable).
    GenerationCompleted {
        /// The group.
        group: GroupId,
        /// The generation.
        generation: Generation,
        /// Each member, its client id and its assignment (the consumer
        /// protocol's bytes, as the leader sent them).
        members: Vec<(MemberId, String, Bytes)>,
    },
    /// An OffsetCommit was answered.
    OffsetCommitHandled {
        /// The group.
        group: GroupId,
        /// The member that sent it.
        member: MemberId,
        /// The generation it named.
        generation: Generation,
        /// The offsets it carried.
        offsets: Vec<(TopicPartition, Offset)>,
        /// The answer (`None`: applied).
        error: ErrorCode,
    },
}

#[derive(Clone, Debug)]
struct Member {
    instance_id: Option<InstanceId>,
    client_id: String,
    protocol_type: String,
    protocols: Vec<ProtocolMetadata>,
    session_timeout: Duration,
    rebalance_timeout: Duration,
    awaiting_join: Option<ReplyTo>,
    awaiting_sync: Option<ReplyTo>,
    assignment: Bytes,
    session_deadline: Instant,
}

impl Member {
    fn matches(&self, protocols: &[ProtocolMetadata]) -> bool {
        self.protocols == protocols
    }

    fn metadata(&self, protocol: &str) -> Bytes {
        self.protocols
            .iter()
            .find(|p| p.name == protocol)
            .map(|p| p.metadata.clone())
            .unwrap_or_default()
    }
}

/// The delayed-join timer: either the rebalance timeout, or Kafka's
/// `InitialDelayedJoin` for a group that was Empty.
#[derive(Clone, Copy, Debug)]
enum JoinTimer {
    Rebalance {
        deadline: Instant,
    },
    Initial {
        deadline: Instant,
        delay: Duration,
        remaining: Duration,
        new_member_added: bool,
    },
}

impl JoinTimer {
    fn deadline(self) -> Instant {
        match self {
            JoinTimer::Rebalance { deadline } | JoinTimer::Initial { deadline, .. } => deadline,
        }
    }
}

#[derive(Clone, Debug)]
struct Group {
    id: GroupId,
    state: GroupState,
    generation: Generation,
    protocol_type: Option<String>,
    protocol_name: Option<String>,
    leader: Option<MemberId>,
    members: BTreeMap<MemberId, Member>,
    /// Dynamic members told MEMBER_ID_REQUIRED, with the deadline to rejoin.
    pending: BTreeMap<MemberId, Instant>,
    static_members: BTreeMap<InstanceId, MemberId>,
    join_timer: Option<JoinTimer>,
    offsets: BTreeMap<TopicPartition, CommittedOffset>,
    /// How many members offer each protocol (Kafka's `supportedProtocols`),
    /// kept by `attach`/`detach`/`set_protocols` so a join need not scan
    /// every member.
    protocol_support: BTreeMap<String, usize>,
    /// How many members wait for a JoinGroup response (Kafka's
    /// `numMembersAwaitingJoin`).
    awaiting_join: usize,
}

impl Group {
    fn new(id: GroupId) -> Self {
        Self {
            id,
            state: GroupState::Empty,
            generation: Generation(0),
            protocol_type: None,
            protocol_name: None,
            leader: None,
            members: BTreeMap::new(),
            pending: BTreeMap::new(),
            static_members: BTreeMap::new(),
            join_timer: None,
            offsets: BTreeMap::new(),
            protocol_support: BTreeMap::new(),
            awaiting_join: 0,
        }
    }

    fn support(&mut self, protocols: &[ProtocolMetadata], add: bool) {
        let names: std::collections::BTreeSet<&str> =
            protocols.iter().map(|p| p.name.as_str()).collect();
        for n in names {
            if add {
                *self.protocol_support.entry(n.to_owned()).or_default() += 1;
            } else if let Some(c) = self.protocol_support.get_mut(n) {
                *c -= 1;
                if *c == 0 {
                    self.protocol_support.remove(n);
                }
            }
        }
    }

    /// Adds a member, keeping the counters.
    fn attach(&mut self, id: MemberId, m: Member) {
        self.support(&m.protocols, true);
        self.awaiting_join += usize::from(m.awaiting_join.is_some());
        self.members.insert(id, m);
    }

    /// Removes a member, keeping the counters.
    fn detach(&mut self, id: &MemberId) -> Option<Member> {
        let m = self.members.remove(id)?;
        self.support(&m.protocols, false);
        self.awaiting_join -= usize::from(m.awaiting_join.is_some());
        Some(m)
    }

    fn set_protocols(&mut self, id: &MemberId, protocols: Vec<ProtocolMetadata>) {
        let old = std::mem::take(&mut self.members.get_mut(id).expect("member").protocols);
        self.support(&old, false);
        self.support(&protocols, true);
        self.members.get_mut(id).expect("member").protocols = protocols;
    }

    /// Parks a JoinGroup; returns an earlier parked one it supersedes.
    fn set_awaiting_join(&mut self, id: &MemberId, reply: ReplyTo) -> Option<ReplyTo> {
        let m = self.members.get_mut(id).expect("member");
        let old = m.awaiting_join.replace(reply);
        if old.is_none() {
            self.awaiting_join += 1;
        }
        old
    }

    fn take_awaiting_join(&mut self, id: &MemberId) -> Option<ReplyTo> {
        let r = self.members.get_mut(id)?.awaiting_join.take();
        self.awaiting_join -= usize::from(r.is_some());
        r
    }

    /// The counters agree with the members (checked in debug builds).
    fn check_counters(&self) {
        if cfg!(debug_assertions) {
            let waiting = self
                .members
                .values()
                .filter(|m| m.awaiting_join.is_some())
                .count();
            assert_eq!(
                self.awaiting_join, waiting,
                "group {}: awaiting-join counter drifted",
                self.id
            );
            let mut support: BTreeMap<String, usize> = BTreeMap::new();
            for m in self.members.values() {
                let names: std::collections::BTreeSet<&str> =
                    m.protocols.iter().map(|p| p.name.as_str()).collect();
                for n in names {
                    *support.entry(n.to_owned()).or_default() += 1;
                }
            }
            assert_eq!(
                self.protocol_support, support,
                "group {}: protocol counters drifted",
                self.id
            );
        }
    }

    /// The instance id is held by a different member id (KIP-345 fencing).
    fn is_fenced(&self, member_id: &MemberId, instance_id: Option<&InstanceId>) -> bool {
        instance_id.is_some_and(|i| self.static_members.get(i).is_some_and(|m| m != member_id))
    }

    /// Kafka's `supportsProtocols`.
    fn supports(&self, protocol_type: &str, protocols: &[ProtocolMetadata]) -> bool {
        if self.members.is_empty() {
            return !protocol_type.is_empty() && !protocols.is_empty();
        }
        self.protocol_type.as_deref() == Some(protocol_type)
            && protocols
                .iter()
                .any(|p| self.protocol_support.get(&p.name) == Some(&self.members.len()))
    }

    /// Kafka's `selectProtocol`: among protocols every member supports, each
    /// member votes for its most preferred; most votes wins, ties to the
    /// smaller name (Kafka leaves ties to map order; we must be deterministic).
    fn select_protocol(&self) -> Option<String> {
        let candidates: Vec<&str> = self
            .members
            .values()
            .next()?
            .protocols
            .iter()
            .map(|p| p.name.as_str())
            .filter(|n| self.protocol_support.get(*n) == Some(&self.members.len()))
            .collect();
        let mut votes: BTreeMap<&str, usize> = BTreeMap::new();
        for m in self.members.values() {
            if let Some(v) = m
                .protocols
                .iter()
                .find(|p| candidates.contains(&p.name.as_str()))
            {
                *votes.entry(v.name.as_str()).or_default() += 1;
            }
        }
        let best = votes.values().copied().max()?;
        votes
            .into_iter()
            .find(|(_, v)| *v == best)
            .map(|(n, _)| n.to_owned())
    }

    fn all_joined(&self) -> bool {
        self.pending.is_empty() && self.awaiting_join == self.members.len()
    }

    fn max_rebalance_timeout(&self) -> Duration {
        self.members
            .values()
            .map(|m| m.rebalance_timeout)
            .max()
            .unwrap_or(Duration::ZERO)
    }
}

/// The group coordinator for any number of groups.
#[derive(Debug)]
pub struct Coordinator {
    config: CoordinatorConfig,
    groups: BTreeMap<GroupId, Group>,
    responses: VecDeque<(ReplyTo, Response)>,
    events: VecDeque<CoordinatorEvent>,
    next_member: u64,
}

impl Coordinator {
    /// A coordinator with no groups.
    pub fn new(config: CoordinatorConfig) -> Self {
        Self {
            config,
            groups: BTreeMap::new(),
            responses: VecDeque::new(),
            events: VecDeque::new(),
            next_member: 0,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &CoordinatorConfig {
        &self.config
    }

    /// A group's state, if the coordinator knows the group.
    pub fn state(&self, group: &GroupId) -> Option<GroupState> {
        self.groups.get(group).map(|g| g.state)
    }

    /// A group's current generation.
    pub fn generation(&self, group: &GroupId) -> Option<Generation> {
        self.groups.get(group).map(|g| g.generation)
    }

    /// A group's leader.
    pub fn leader(&self, group: &GroupId) -> Option<&MemberId> {
        self.groups.get(group).and_then(|g| g.leader.as_ref())
    }

    /// A group's members, in id order.
    pub fn members(&self, group: &GroupId) -> Vec<MemberId> {
        self.groups
            .get(group)
            .map(|g| g.members.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// A group's committed offset for a partition.
    pub fn committed(&self, group: &GroupId, tp: &TopicPartition) -> Option<&CommittedOffset> {
        self.groups.get(group).and_then(|g| g.offsets.get(tp))
    }

    /// The next response to deliver.
    #[must_use]
    pub fn poll_response(&mut self) -> Option<(ReplyTo, Response)> {
        self.responses.pop_front()
    }

    /// The next event for the history. Drain it: events accumulate until polled.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<CoordinatorEvent> {
        self.events.pop_front()
    }

    /// The earliest instant at which [`handle_timeout`](Self::handle_timeout)
    /// has work: a join timer, a pending member's deadline, or a session
    /// deadline of a member not waiting on a join or sync response.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.groups
            .values()
            .flat_map(|g| {
                let join = g.join_timer.map(JoinTimer::deadline);
                let pending = g.pending.values().copied().min();
                let session = g
                    .members
                    .values()
                    .filter(|m| session_applies(m))
                    .map(|m| m.session_deadline)
                    .min();
                [join, pending, session]
            })
            .flatten()
            .min()
    }

    /// Fires every timer due at `now`, in group-id order: join timers,
    /// pending-member expiry, then session expiry.
    pub fn handle_timeout(&mut self, now: Instant) {
        let ids: Vec<GroupId> = self.groups.keys().cloned().collect();
        for id in ids {
            let Some(mut g) = self.groups.remove(&id) else {
                continue;
            };
            if let Some(timer) = g.join_timer.filter(|t| t.deadline() <= now) {
                match timer {
                    JoinTimer::Initial {
                        delay,
                        remaining,
                        new_member_added: true,
                        ..
                    } if !remaining.is_zero() => {
                        // Kafka's InitialDelayedJoin: more members arrived, wait
                        // one more delay, never past the rebalance timeout.
                        let next = delay.min(remaining);
                        g.join_timer = Some(JoinTimer::Initial {
                            deadline: now + next,
                            delay,
                            remaining: remaining.saturating_sub(delay),
                            new_member_added: false,
                        });
                    }
                    _ => self.complete_join(now, &mut g),
                }
            }
            let expired: Vec<MemberId> = g
                .pending
                .iter()
                .filter(|(_, d)| **d <= now)
                .map(|(m, _)| m.clone())
                .collect();
            for m in expired {
                g.pending.remove(&m);
                self.events.push_back(CoordinatorEvent::MemberRemoved {
                    group: g.id.clone(),
                    member: m,
                    reason: RemovalReason::PendingExpired,
                });
                self.try_complete_join(now, &mut g);
            }
            let expired: Vec<MemberId> = g
                .members
                .iter()
                .filter(|(_, m)| session_applies(m) && m.session_deadline <= now)
                .map(|(id, _)| id.clone())
                .collect();
            for m in expired {
                self.remove_member_and_update(now, &mut g, &m, RemovalReason::SessionExpired);
            }
            g.check_counters();
            self.groups.insert(id, g);
        }
    }

    /// Handles any request. Responses come out of [`poll_response`](Self::poll_response).
    pub fn handle_request(&mut self, now: Instant, reply: ReplyTo, request: Request) {
        match request {
            Request::JoinGroup(r) => self.handle_join_group(now, reply, r),
            Request::SyncGroup(r) => self.handle_sync_group(now, reply, r),
            Request::Heartbeat(r) => self.handle_heartbeat(now, reply, r),
            Request::LeaveGroup(r) => self.handle_leave_group(now, reply, r),
            Request::OffsetCommit(r) => self.handle_offset_commit(now, reply, r),
            Request::OffsetFetch(r) => self.handle_offset_fetch(now, reply, r),
        }
    }

    fn respond(&mut self, reply: ReplyTo, response: Response) {
        self.responses.push_back((reply, response));
    }

    fn join_error(&mut self, reply: ReplyTo, error: ErrorCode, member: MemberId) {
        self.respond(
            reply,
            Response::JoinGroup(JoinGroupResponse::error(error, member)),
        );
    }

    fn transition(&mut self, g: &mut Group, to: GroupState) {
        assert!(
            g.state.can_transition_to(to),
            "group {}: invalid transition {:?} -> {:?}",
            g.id,
            g.state,
            to
        );
        let from = std::mem::replace(&mut g.state, to);
        self.events.push_back(CoordinatorEvent::StateChanged {
            group: g.id.clone(),
            from,
            to,
            generation: g.generation,
        });
    }

    /// JoinGroup (Kafka's `handleJoinGroup`).
    pub fn handle_join_group(&mut self, now: Instant, reply: ReplyTo, req: JoinGroupRequest) {
        if req.group_id.as_str().is_empty() {
            return self.join_error(reply, ErrorCode::InvalidGroupId, req.member_id);
        }
        if req.session_timeout < self.config.min_session_timeout
            || req.session_timeout > self.config.max_session_timeout
        {
            return self.join_error(reply, ErrorCode::InvalidSessionTimeout, req.member_id);
        }
        let mut g = match self.groups.remove(&req.group_id) {
            Some(g) => g,
            None if req.member_id.is_unknown() => Group::new(req.group_id.clone()),
            None => return self.join_error(reply, ErrorCode::UnknownMemberId, req.member_id),
        };
        if !g.supports(&req.protocol_type, &req.protocols) {
            self.join_error(
                reply,
                ErrorCode::InconsistentGroupProtocol,
                req.member_id.clone(),
            );
        } else if req.member_id.is_unknown() {
            self.join_unknown_member(now, reply, &mut g, req);
        } else {
            self.join_known_member(now, reply, &mut g, req);
        }
        // A group created by a join that was refused holds nothing: drop it.
        if g.state == GroupState::Empty
            && g.members.is_empty()
            && g.pending.is_empty()
            && g.offsets.is_empty()
            && g.generation == Generation(0)
        {
            return;
        }
        g.check_counters();
        self.groups.insert(g.id.clone(), g);
    }

    fn new_member_id(&mut self, prefix: &str) -> MemberId {
        self.next_member += 1;
        MemberId::new(format!("{prefix}-{:08}", self.next_member))
    }

    fn join_unknown_member(
        &mut self,
        now: Instant,
        reply: ReplyTo,
        g: &mut Group,
        req: JoinGroupRequest,
    ) {
        match req.instance_id.clone() {
            Some(instance) if g.static_members.contains_key(&instance) => {
                let new_id = self.new_member_id(instance.as_str());
                self.replace_static_member(now, reply, g, instance, new_id, req);
            }
            Some(_) => {
                // A new static member joins straight away (no MEMBER_ID_REQUIRED).
                let id = self.new_member_id(
                    req.instance_id
                        .as_ref()
                        .map_or(&req.client_id, |i| i.as_str()),
                );
                self.add_member_and_rebalance(now, reply, g, id, req);
            }
            None => {
                // KIP-394: a new dynamic member must come back with the id we
                // hand out, so a client that retries a lost response does not
                // leave a ghost member behind.
                let id = self.new_member_id(&req.client_id);
                g.pending.insert(id.clone(), now + req.session_timeout);
                self.join_error(reply, ErrorCode::MemberIdRequired, id);
            }
        }
    }

    /// KIP-345: a known `group.instance.id` joins with an unknown member id
    /// (it restarted). Its old member id is fenced and replaced; when the
    /// group is Stable and the selected protocol would not change, there is
    /// no rebalance and the member gets its old assignment on SyncGroup.
    fn replace_static_member(
        &mut self,
        now: Instant,
        reply: ReplyTo,
        g: &mut Group,
        instance: InstanceId,
        new_id: MemberId,
        req: JoinGroupRequest,
    ) {
        let old_id = g.static_members[&instance].clone();
        let mut member = g
            .detach(&old_id)
            .expect("static member index points at a member");
        if let Some(r) = member.awaiting_join.take() {
            self.join_error(r, ErrorCode::FencedInstanceId, old_id.clone());
        }
        if let Some(r) = member.awaiting_sync.take() {
            self.respond(
                r,
                Response::SyncGroup(SyncGroupResponse::error(ErrorCode::FencedInstanceId)),
            );
        }
        let old_leader = g.leader.clone();
        if g.leader.as_ref() == Some(&old_id) {
            g.leader = Some(new_id.clone());
        }
        member.protocols = req.protocols;
        member.protocol_type = req.protocol_type;
        member.session_timeout = req.session_timeout;
        member.rebalance_timeout = req.rebalance_timeout;
        member.session_deadline = now + member.session_timeout;
        member.awaiting_join = Some(reply);
        g.attach(new_id.clone(), member);
        g.static_members.insert(instance.clone(), new_id.clone());
        self.events
            .push_back(CoordinatorEvent::StaticMemberReplaced {
                group: g.id.clone(),
                instance,
                old: old_id,
                new: new_id.clone(),
            });
        match g.state {
            GroupState::Stable if g.select_protocol() == g.protocol_name => {
                // Kafka answers with the *old* leader id so that a restarted
                // leader does not compute an assignment a Stable group would
                // never distribute.
                g.take_awaiting_join(&new_id);
                let resp = JoinGroupResponse {
                    error: ErrorCode::None,
                    generation: g.generation,
                    protocol_type: g.protocol_type.clone(),
                    protocol_name: g.protocol_name.clone(),
                    leader: old_leader.unwrap_or_else(MemberId::unknown),
                    member_id: new_id,
                    members: Vec::new(),
                };
                self.respond(reply, Response::JoinGroup(resp));
            }
            GroupState::Stable | GroupState::CompletingRebalance => self.prepare_rebalance(now, g),
            GroupState::PreparingRebalance => self.try_complete_join(now, g),
            GroupState::Empty | GroupState::Dead => {
                unreachable!("a group with a static member is neither Empty nor Dead")
            }
        }
    }

    fn add_member_and_rebalance(
        &mut self,
        now: Instant,
        reply: ReplyTo,
        g: &mut Group,
        id: MemberId,
        req: JoinGroupRequest,
    ) {
        if g.members.is_empty() {
            g.protocol_type = Some(req.protocol_type.clone());
        }
        if let Some(i) = &req.instance_id {
            g.static_members.insert(i.clone(), id.clone());
        }
        let client_id = req.client_id.clone();
        let member = Member {
            instance_id: req.instance_id,
            client_id: req.client_id,
            protocol_type: req.protocol_type,
            protocols: req.protocols,
            session_timeout: req.session_timeout,
            rebalance_timeout: req.rebalance_timeout,
            awaiting_join: Some(reply),
            awaiting_sync: None,
            assignment: Bytes::new(),
            session_deadline: now + req.session_timeout,
        };
        g.attach(id.clone(), member);
        if g.leader.is_none() {
            g.leader = Some(id.clone());
        }
        self.events.push_back(CoordinatorEvent::MemberAdded {
            group: g.id.clone(),
            member: id,
            client_id,
        });
        if let Some(JoinTimer::Initial {
            new_member_added, ..
        }) = &mut g.join_timer
        {
            if g.generation == Generation(0) {
                *new_member_added = true;
            }
        }
        self.maybe_prepare_rebalance(now, g);
    }

    fn join_known_member(
        &mut self,
        now: Instant,
        reply: ReplyTo,
        g: &mut Group,
        req: JoinGroupRequest,
    ) {
        let id = req.member_id.clone();
        if g.pending.remove(&id).is_some() {
            return self.add_member_and_rebalance(now, reply, g, id, req);
        }
        if g.is_fenced(&id, req.instance_id.as_ref()) {
            return self.join_error(reply, ErrorCode::FencedInstanceId, id);
        }
        let Some(member) = g.members.get(&id) else {
            return self.join_error(reply, ErrorCode::UnknownMemberId, id);
        };
        let unchanged = member.matches(&req.protocols);
        match g.state {
            GroupState::Empty | GroupState::Dead => {
                self.join_error(reply, ErrorCode::UnknownMemberId, id)
            }
            GroupState::PreparingRebalance => self.update_member_and_rebalance(now, reply, g, req),
            // A repeated JoinGroup (say, a retry after a lost response) with
            // unchanged metadata gets this generation's answer again.
            GroupState::CompletingRebalance if unchanged => self.respond_join(reply, g, &id),
            GroupState::Stable if unchanged && g.leader.as_ref() != Some(&id) => {
                self.respond_join(reply, g, &id)
            }
            GroupState::CompletingRebalance | GroupState::Stable => {
                self.update_member_and_rebalance(now, reply, g, req)
            }
        }
    }

    fn respond_join(&mut self, reply: ReplyTo, g: &Group, id: &MemberId) {
        let resp = self.join_response(g, id);
        self.respond(reply, Response::JoinGroup(resp));
    }

    fn join_response(&self, g: &Group, id: &MemberId) -> JoinGroupResponse {
        let protocol = g.protocol_name.clone().unwrap_or_default();
        let members = if g.leader.as_ref() == Some(id) {
            g.members
                .iter()
                .map(|(mid, m)| JoinGroupMember {
                    member_id: mid.clone(),
                    instance_id: m.instance_id.clone(),
                    metadata: m.metadata(&protocol),
                })
                .collect()
        } else {
            Vec::new()
        };
        JoinGroupResponse {
            error: ErrorCode::None,
            generation: g.generation,
            protocol_type: g.protocol_type.clone(),
            protocol_name: g.protocol_name.clone(),
            leader: g.leader.clone().unwrap_or_else(MemberId::unknown),
            member_id: id.clone(),
            members,
        }
    }

    fn update_member_and_rebalance(
        &mut self,
        now: Instant,
        reply: ReplyTo,
        g: &mut Group,
        req: JoinGroupRequest,
    ) {
        g.set_protocols(&req.member_id, req.protocols);
        let member = g
            .members
            .get_mut(&req.member_id)
            .expect("caller checked membership");
        member.protocol_type = req.protocol_type;
        member.session_timeout = req.session_timeout;
        member.rebalance_timeout = req.rebalance_timeout;
        // Kafka drops a superseded JoinGroup unanswered (its client gave up
        // on it); we answer it, so that every request gets exactly one
        // response and no caller waits for a timeout.
        if let Some(old) = g.set_awaiting_join(&req.member_id, reply) {
            self.join_error(old, ErrorCode::RebalanceInProgress, req.member_id.clone());
        }
        self.maybe_prepare_rebalance(now, g);
    }

    fn maybe_prepare_rebalance(&mut self, now: Instant, g: &mut Group) {
        match g.state {
            GroupState::Stable | GroupState::CompletingRebalance | GroupState::Empty => {
                self.prepare_rebalance(now, g)
            }
            GroupState::PreparingRebalance => self.try_complete_join(now, g),
            GroupState::Dead => {}
        }
    }

    fn prepare_rebalance(&mut self, now: Instant, g: &mut Group) {
        if g.state == GroupState::CompletingRebalance {
            // The leader's assignment for this generation will never be
            // distributed: fail the waiting syncs so members rejoin.
            let waiting: Vec<ReplyTo> = g
                .members
                .values_mut()
                .filter_map(|m| m.awaiting_sync.take())
                .collect();
            for r in waiting {
                self.respond(
                    r,
                    Response::SyncGroup(SyncGroupResponse::error(ErrorCode::RebalanceInProgress)),
                );
            }
            for m in g.members.values_mut() {
                m.assignment = Bytes::new();
            }
        }
        let timeout = g.max_rebalance_timeout();
        g.join_timer = Some(if g.state == GroupState::Empty {
            let delay = self.config.initial_rebalance_delay;
            JoinTimer::Initial {
                deadline: now + delay,
                delay,
                remaining: timeout.saturating_sub(delay),
                new_member_added: false,
            }
        } else {
            JoinTimer::Rebalance {
                deadline: now + timeout,
            }
        });
        self.transition(g, GroupState::PreparingRebalance);
        self.try_complete_join(now, g);
    }

    /// Completes the join phase early when every member has rejoined and no
    /// new member is pending — except under the initial delay, which always
    /// waits for its timer.
    fn try_complete_join(&mut self, now: Instant, g: &mut Group) {
        if g.state == GroupState::PreparingRebalance
            && matches!(g.join_timer, Some(JoinTimer::Rebalance { .. }))
            && g.all_joined()
        {
            self.complete_join(now, g);
        }
    }

    /// Kafka's `onCompleteJoin`.
    fn complete_join(&mut self, now: Instant, g: &mut Group) {
        if g.state != GroupState::PreparingRebalance {
            g.join_timer = None;
            return;
        }
        // Dynamic members that did not rejoin in time are removed; static
        // members stay until their session expires (KIP-345).
        let gone: Vec<MemberId> = g
            .members
            .iter()
            .filter(|(_, m)| m.awaiting_join.is_none() && m.instance_id.is_none())
            .map(|(id, _)| id.clone())
            .collect();
        for id in gone {
            self.remove_member(g, &id, RemovalReason::DidNotRejoin);
        }
        // The leader must be a member that rejoined.
        let leader_joined = g
            .leader
            .as_ref()
            .and_then(|l| g.members.get(l))
            .is_some_and(|m| m.awaiting_join.is_some());
        if !leader_joined {
            g.leader = g
                .members
                .iter()
                .find(|(_, m)| m.awaiting_join.is_some())
                .map(|(id, _)| id.clone());
        }
        if g.leader.is_none() && !g.members.is_empty() {
            // Only static members that have not rejoined are left: wait
            // another rebalance timeout for them or their session expiry.
            g.join_timer = Some(JoinTimer::Rebalance {
                deadline: now + g.max_rebalance_timeout(),
            });
            return;
        }
        g.join_timer = None;
        g.generation = Generation(g.generation.0 + 1);
        if g.members.is_empty() {
            g.protocol_name = None;
            g.protocol_type = None;
            self.transition(g, GroupState::Empty);
            return;
        }
        g.protocol_name = g.select_protocol();
        self.transition(g, GroupState::CompletingRebalance);
        let ids: Vec<MemberId> = g.members.keys().cloned().collect();
        for id in ids {
            let member = g.members.get_mut(&id).expect("listed");
            member.session_deadline = now + member.session_timeout;
            if let Some(r) = g.take_awaiting_join(&id) {
                let resp = self.join_response(g, &id);
                self.respond(r, Response::JoinGroup(resp));
            }
        }
    }

    /// Removes a member, answering its waiting requests with UNKNOWN_MEMBER_ID.
    fn remove_member(&mut self, g: &mut Group, id: &MemberId, reason: RemovalReason) {
        let Some(mut m) = g.detach(id) else {
            return;
        };
        if let Some(r) = m.awaiting_join.take() {
            self.join_error(r, ErrorCode::UnknownMemberId, id.clone());
        }
        if let Some(r) = m.awaiting_sync.take() {
            self.respond(
                r,
                Response::SyncGroup(SyncGroupResponse::error(ErrorCode::UnknownMemberId)),
            );
        }
        if let Some(i) = &m.instance_id {
            g.static_members.remove(i);
        }
        if g.leader.as_ref() == Some(id) {
            g.leader = g.members.keys().next().cloned();
        }
        self.events.push_back(CoordinatorEvent::MemberRemoved {
            group: g.id.clone(),
            member: id.clone(),
            reason,
        });
    }

    fn remove_member_and_update(
        &mut self,
        now: Instant,
        g: &mut Group,
        id: &MemberId,
        reason: RemovalReason,
    ) {
        self.remove_member(g, id, reason);
        match g.state {
            GroupState::Stable | GroupState::CompletingRebalance => self.prepare_rebalance(now, g),
            GroupState::PreparingRebalance => self.try_complete_join(now, g),
            GroupState::Empty | GroupState::Dead => {}
        }
    }

    /// SyncGroup (Kafka's `handleSyncGroup`).
    pub fn handle_sync_group(&mut self, now: Instant, reply: ReplyTo, req: SyncGroupRequest) {
        let error = |c| Response::SyncGroup(SyncGroupResponse::error(c));
        let Some(mut g) = self.groups.remove(&req.group_id) else {
            return self.respond(reply, error(ErrorCode::UnknownMemberId));
        };
        let code = if g.state == GroupState::Dead {
            Some(ErrorCode::CoordinatorNotAvailable)
        } else if g.is_fenced(&req.member_id, req.instance_id.as_ref()) {
            Some(ErrorCode::FencedInstanceId)
        } else if !g.members.contains_key(&req.member_id) {
            Some(ErrorCode::UnknownMemberId)
        } else if req.generation != g.generation {
            Some(ErrorCode::IllegalGeneration)
        } else if req
            .protocol_type
            .as_ref()
            .is_some_and(|t| Some(t) != g.protocol_type.as_ref())
            || req
                .protocol_name
                .as_ref()
                .is_some_and(|n| Some(n) != g.protocol_name.as_ref())
        {
            Some(ErrorCode::InconsistentGroupProtocol)
        } else {
            match g.state {
                GroupState::Empty => Some(ErrorCode::UnknownMemberId),
                GroupState::PreparingRebalance => Some(ErrorCode::RebalanceInProgress),
                _ => None,
            }
        };
        if let Some(code) = code {
            self.respond(reply, error(code));
            self.groups.insert(req.group_id, g);
            return;
        }
        let member = g.members.get_mut(&req.member_id).expect("checked above");
        member.session_deadline = now + member.session_timeout;
        match g.state {
            GroupState::Stable => {
                let resp = SyncGroupResponse {
                    error: ErrorCode::None,
                    protocol_type: g.protocol_type.clone(),
                    protocol_name: g.protocol_name.clone(),
                    assignment: member.assignment.clone(),
                };
                self.respond(reply, Response::SyncGroup(resp));
            }
            GroupState::CompletingRebalance => {
                if let Some(old) = member.awaiting_sync.replace(reply) {
                    // A repeated SyncGroup supersedes the parked one; answer
                    // the old one rather than leave it hanging.
                    self.respond(
                        old,
                        Response::SyncGroup(SyncGroupResponse::error(
                            ErrorCode::RebalanceInProgress,
                        )),
                    );
                }
                if g.leader.as_ref() == Some(&req.member_id) {
                    let mut given: BTreeMap<MemberId, Bytes> =
                        req.assignments.into_iter().collect();
                    for (id, m) in &mut g.members {
                        m.assignment = given.remove(id).unwrap_or_default();
                    }
                    self.transition(&mut g, GroupState::Stable);
                    self.events
                        .push_back(CoordinatorEvent::GenerationCompleted {
                            group: g.id.clone(),
                            generation: g.generation,
                            members: g
                                .members
                                .iter()
                                .map(|(id, m)| {
                                    (id.clone(), m.client_id.clone(), m.assignment.clone())
                                })
                                .collect(),
                        });
                    let waiting: Vec<(ReplyTo, Bytes)> = g
                        .members
                        .values_mut()
                        .filter_map(|m| m.awaiting_sync.take().map(|r| (r, m.assignment.clone())))
                        .collect();
                    for (r, assignment) in waiting {
                        let resp = SyncGroupResponse {
                            error: ErrorCode::None,
                            protocol_type: g.protocol_type.clone(),
                            protocol_name: g.protocol_name.clone(),
                            assignment,
                        };
                        self.respond(r, Response::SyncGroup(resp));
                    }
                }
            }
            _ => unreachable!("states answered above"),
        }
        self.groups.insert(req.group_id, g);
    }

    /// Heartbeat (Kafka's `handleHeartbeat`).
    pub fn handle_heartbeat(&mut self, now: Instant, reply: ReplyTo, req: HeartbeatRequest) {
        let error = match self.groups.get_mut(&req.group_id) {
            None => ErrorCode::UnknownMemberId,
            Some(g) => {
                if g.state == GroupState::Dead {
                    ErrorCode::CoordinatorNotAvailable
                } else if g.is_fenced(&req.member_id, req.instance_id.as_ref()) {
                    ErrorCode::FencedInstanceId
                } else if g.state == GroupState::Empty {
                    ErrorCode::UnknownMemberId
                } else if let Some(m) = g.members.get_mut(&req.member_id) {
                    if req.generation != g.generation {
                        ErrorCode::IllegalGeneration
                    } else {
                        m.session_deadline = now + m.session_timeout;
                        match g.state {
                            // Tell the member to rejoin; its session stays alive meanwhile.
                            GroupState::PreparingRebalance => ErrorCode::RebalanceInProgress,
                            // Members may heartbeat between JoinGroup and SyncGroup.
                            _ => ErrorCode::None,
                        }
                    }
                } else {
                    ErrorCode::UnknownMemberId
                }
            }
        };
        self.respond(reply, Response::Heartbeat(HeartbeatResponse { error }));
    }

    /// LeaveGroup (Kafka's `handleLeaveGroup`, batched as in v3+).
    pub fn handle_leave_group(&mut self, now: Instant, reply: ReplyTo, req: LeaveGroupRequest) {
        let Some(mut g) = self.groups.remove(&req.group_id) else {
            let members = req
                .members
                .into_iter()
                .map(|m| (m, ErrorCode::UnknownMemberId))
                .collect();
            return self.respond(
                reply,
                Response::LeaveGroup(LeaveGroupResponse {
                    error: ErrorCode::None,
                    members,
                }),
            );
        };
        if g.state == GroupState::Dead {
            self.groups.insert(req.group_id, g);
            let resp = LeaveGroupResponse {
                error: ErrorCode::CoordinatorNotAvailable,
                members: Vec::new(),
            };
            return self.respond(reply, Response::LeaveGroup(resp));
        }
        let mut results = Vec::with_capacity(req.members.len());
        for leaving in req.members {
            // A static member may leave by instance id alone.
            let id = match (&leaving.instance_id, leaving.member_id.is_unknown()) {
                (Some(i), true) => g
                    .static_members
                    .get(i)
                    .cloned()
                    .unwrap_or_else(MemberId::unknown),
                _ => leaving.member_id.clone(),
            };
            let code = if g.is_fenced(&id, leaving.instance_id.as_ref()) {
                ErrorCode::FencedInstanceId
            } else if g.pending.remove(&id).is_some() {
                self.events.push_back(CoordinatorEvent::MemberRemoved {
                    group: g.id.clone(),
                    member: id,
                    reason: RemovalReason::Left,
                });
                self.try_complete_join(now, &mut g);
                ErrorCode::None
            } else if g.members.contains_key(&id) {
                self.remove_member_and_update(now, &mut g, &id, RemovalReason::Left);
                ErrorCode::None
            } else {
                ErrorCode::UnknownMemberId
            };
            results.push((leaving, code));
        }
        self.groups.insert(req.group_id, g);
        self.respond(
            reply,
            Response::LeaveGroup(LeaveGroupResponse {
                error: ErrorCode::None,
                members: results,
            }),
        );
    }

    /// OffsetCommit (Kafka's `handleCommitOffsets`): commits from a member of
    /// the current generation; during PreparingRebalance the generation has
    /// not moved yet, so the outgoing generation's commits (a consumer
    /// committing on revoke) are accepted; REBALANCE_IN_PROGRESS while
    /// CompletingRebalance; ILLEGAL_GENERATION for any other generation;
    /// generation −1 (a client not using group management) only while the
    /// group is Empty.
    pub fn handle_offset_commit(&mut self, now: Instant, reply: ReplyTo, req: OffsetCommitRequest) {
        let all = |offsets: &[(TopicPartition, Offset, String)], c: ErrorCode| {
            Response::OffsetCommit(OffsetCommitResponse {
                partitions: offsets.iter().map(|(tp, _, _)| (tp.clone(), c)).collect(),
            })
        };
        if !self.groups.contains_key(&req.group_id) {
            if req.generation.0 >= 0 {
                // A managed commit for a group we do not have: a member of a
                // generation this coordinator never saw.
                return self.respond(reply, all(&req.offsets, ErrorCode::IllegalGeneration));
            }
            self.groups
                .insert(req.group_id.clone(), Group::new(req.group_id.clone()));
        }
        let g = self.groups.get_mut(&req.group_id).expect("present");
        let code = if g.state == GroupState::Dead {
            ErrorCode::CoordinatorNotAvailable
        } else if g.is_fenced(&req.member_id, req.instance_id.as_ref()) {
            ErrorCode::FencedInstanceId
        } else if req.generation.0 < 0 && g.state == GroupState::Empty {
            ErrorCode::None
        } else if g.state == GroupState::CompletingRebalance {
            ErrorCode::RebalanceInProgress
        } else if !g.members.contains_key(&req.member_id) {
            ErrorCode::UnknownMemberId
        } else if req.generation != g.generation {
            ErrorCode::IllegalGeneration
        } else {
            let m = g.members.get_mut(&req.member_id).expect("checked");
            m.session_deadline = now + m.session_timeout;
            ErrorCode::None
        };
        self.events
            .push_back(CoordinatorEvent::OffsetCommitHandled {
                group: req.group_id.clone(),
                member: req.member_id.clone(),
                generation: req.generation,
                offsets: req
                    .offsets
                    .iter()
                    .map(|(tp, o, _)| (tp.clone(), *o))
                    .collect(),
                error: code,
            });
        if code.is_ok() {
            for (tp, offset, metadata) in &req.offsets {
                g.offsets.insert(
                    tp.clone(),
                    CommittedOffset {
                        offset: *offset,
                        metadata: metadata.clone(),
                        commit_time: now,
                    },
                );
            }
        }
        self.respond(reply, all(&req.offsets, code));
    }

    /// OffsetFetch: the committed offsets ([`Offset::INVALID`] where none).
    pub fn handle_offset_fetch(&mut self, _now: Instant, reply: ReplyTo, req: OffsetFetchRequest) {
        let g = self.groups.get(&req.group_id);
        let partitions = match (req.partitions, g) {
            (Some(tps), _) => tps
                .into_iter()
                .map(|tp| {
                    let c = g.and_then(|g| g.offsets.get(&tp));
                    let (o, m) = c.map_or((Offset::INVALID, String::new()), |c| {
                        (c.offset, c.metadata.clone())
                    });
                    (tp, o, m)
                })
                .collect(),
            (None, Some(g)) => g
                .offsets
                .iter()
                .map(|(tp, c)| (tp.clone(), c.offset, c.metadata.clone()))
                .collect(),
            (None, None) => Vec::new(),
        };
        self.respond(
            reply,
            Response::OffsetFetch(OffsetFetchResponse {
                error: ErrorCode::None,
                partitions,
            }),
        );
    }

    /// DeleteGroups for one group: only an Empty group may be deleted.
    ///
    /// # Errors
    /// [`ErrorCode::GroupIdNotFound`] or [`ErrorCode::NonEmptyGroup`].
    pub fn delete_group(&mut self, group: &GroupId) -> Result<(), ErrorCode> {
        let g = self
            .groups
            .get_mut(group)
            .ok_or(ErrorCode::GroupIdNotFound)?;
        if g.state != GroupState::Empty {
            return Err(ErrorCode::NonEmptyGroup);
        }
        let mut g = self.groups.remove(group).expect("present");
        self.transition(&mut g, GroupState::Dead);
        Ok(())
    }

    /// The coordinator stops serving a group (it moved to another broker):
    /// the group goes Dead and waiting requests are answered NOT_COORDINATOR
    /// so clients look the coordinator up again.
    pub fn unload_group(&mut self, group: &GroupId) {
        let Some(mut g) = self.groups.remove(group) else {
            return;
        };
        let waiting: Vec<(Option<ReplyTo>, Option<ReplyTo>, MemberId)> = g
            .members
            .iter_mut()
            .map(|(id, m)| (m.awaiting_join.take(), m.awaiting_sync.take(), id.clone()))
            .collect();
        for (join, sync, id) in waiting {
            if let Some(r) = join {
                self.join_error(r, ErrorCode::NotCoordinator, id);
            }
            if let Some(r) = sync {
                self.respond(
                    r,
                    Response::SyncGroup(SyncGroupResponse::error(ErrorCode::NotCoordinator)),
                );
            }
        }
        self.transition(&mut g, GroupState::Dead);
    }
}

/// The inverse of Kafka's `shouldKeepAlive`: a member waiting for a JoinGroup or SyncGroup
/// response is not expired by its session timer (the coordinator owes it an
/// answer); every other member must heartbeat.
fn session_applies(m: &Member) -> bool {
    m.awaiting_join.is_none() && m.awaiting_sync.is_none()
}
