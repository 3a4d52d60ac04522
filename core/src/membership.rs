//! The client side of Kafka's classic group protocol, sans-IO: what Kafka's
//! `ConsumerCoordinator` (over `AbstractCoordinator`) does, as a state
//! machine that emits requests and events as data.
//!
//! ```text
//! Unjoined ─FindCoordinator─▶ (coordinator known) ─JoinGroup─▶ Joining ─▶ Syncing ─▶ Stable ⟲ Heartbeat
//!     ▲                                   ▲                                   │
//!     └── coordinator lost ───────────────┴─── REBALANCE_IN_PROGRESS, revoke ─┘
//! ```
//!
//! ## Rebalance protocols
//!
//! - **Eager**: before rejoining, every owned partition is revoked
//!   ([`MembershipEvent::Revoked`]); the new assignment arrives whole.
//! - **Cooperative** (KIP-429): the member rejoins keeping its partitions
//!   and reports them in its subscription; after SyncGroup it revokes only
//!   the partitions it lost and, if it revoked any, rejoins at once so the
//!   follow-up rebalance can hand them to their new owner.
//!
//! The protocol is cooperative when every configured assignor supports it,
//! as in Kafka.
//!
//! ## Revocation is acknowledged
//!
//! A [`MembershipEvent::Revoked`] holds the state machine until the
//! application calls [`Membership::handle_revoke_done`]: that is where a
//! consumer finishes or abandons in-flight work and commits, using
//! [`Membership::generation`], which stays the generation that owned the
//! partitions until the next JoinGroup response.
//!
//! ## Losing partitions
//!
//! [`MembershipEvent::Lost`] means the partitions may already belong to
//! someone else: nothing from them may be committed. It is emitted when the
//! coordinator says the member or its generation is gone
//! (UNKNOWN_MEMBER_ID, ILLEGAL_GENERATION, FENCED_INSTANCE_ID) and,
//! deliberately more cautious than Kafka's Java client, as soon as no
//! heartbeat has succeeded for a whole session timeout: by then the
//! coordinator has removed the member, and a paused or partitioned member
//! (a zombie) must stop before it learns so from a response.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use crate::assign::{Assignor, GroupSubscription, MemberSubscription, RebalanceProtocol};
use crate::coordinator::{
    HeartbeatRequest, HeartbeatResponse, JoinGroupRequest, JoinGroupResponse, LeaveGroupRequest,
    LeaveGroupResponse, LeavingMember, ProtocolMetadata, SyncGroupRequest, SyncGroupResponse,
};
use crate::model::{
    ErrorCode, Generation, GroupId, InstanceId, Instant, MemberId, Topic, TopicPartition,
};
use crate::protocol::{Assignment, DecodeError, Subscription};

/// Client-side settings, named after the Kafka consumer configs they mirror.
#[derive(Clone)]
pub struct MembershipConfig {
    /// `group.id`.
    pub group_id: GroupId,
    /// `group.instance.id`, for static membership (KIP-345).
    pub instance_id: Option<InstanceId>,
    /// `client.id`.
    pub client_id: String,
    /// Subscribed topics.
    pub topics: Vec<Topic>,
    /// `partition.assignment.strategy`, most preferred first.
    pub assignors: Vec<Arc<dyn Assignor>>,
    /// `session.timeout.ms`.
    pub session_timeout: Duration,
    /// `max.poll.interval.ms` (the rebalance timeout).
    pub rebalance_timeout: Duration,
    /// `heartbeat.interval.ms`.
    pub heartbeat_interval: Duration,
    /// `retry.backoff.ms`: the wait before retrying after an error.
    pub retry_backoff: Duration,
}

impl std::fmt::Debug for MembershipConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MembershipConfig")
            .field("group_id", &self.group_id)
            .field("instance_id", &self.instance_id)
            .field("client_id", &self.client_id)
            .field("topics", &self.topics)
            .field(
                "assignors",
                &self
                    .assignors
                    .iter()
                    .map(|a| a.name().to_owned())
                    .collect::<Vec<_>>(),
            )
            .field("session_timeout", &self.session_timeout)
            .field("rebalance_timeout", &self.rebalance_timeout)
            .field("heartbeat_interval", &self.heartbeat_interval)
            .field("retry_backoff", &self.retry_backoff)
            .finish()
    }
}

impl MembershipConfig {
    /// Kafka's client defaults (session 45 s, rebalance 5 min, heartbeat 3 s,
    /// backoff 100 ms) with the given group, client, topics and assignors.
    pub fn new(
        group_id: impl Into<GroupId>,
        client_id: impl Into<String>,
        topics: Vec<Topic>,
        assignors: Vec<Arc<dyn Assignor>>,
    ) -> Self {
        Self {
            group_id: group_id.into(),
            instance_id: None,
            client_id: client_id.into(),
            topics,
            assignors,
            session_timeout: Duration::from_secs(45),
            rebalance_timeout: Duration::from_secs(300),
            heartbeat_interval: Duration::from_secs(3),
            retry_backoff: Duration::from_millis(100),
        }
    }
}

/// Identifies a request this state machine emitted; its response must come
/// back with the same id. Responses with an id no longer awaited are stale
/// and ignored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RequestId(pub u64);

/// A request for the transport to send to the group coordinator.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum MemberRequest {
    /// Find the group's coordinator (FindCoordinator). Answer with
    /// [`MemberResponse::FindCoordinator`].
    FindCoordinator {
        /// The group.
        group_id: GroupId,
    },
    /// JoinGroup.
    JoinGroup(JoinGroupRequest),
    /// SyncGroup.
    SyncGroup(SyncGroupRequest),
    /// Heartbeat.
    Heartbeat(HeartbeatRequest),
    /// LeaveGroup.
    LeaveGroup(LeaveGroupRequest),
}

/// A response, as the transport hands it back.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum MemberResponse {
    /// The coordinator was found (the transport now routes group requests
    /// to it), or the lookup failed with an error.
    FindCoordinator(ErrorCode),
    /// JoinGroup.
    JoinGroup(JoinGroupResponse),
    /// SyncGroup.
    SyncGroup(SyncGroupResponse),
    /// Heartbeat.
    Heartbeat(HeartbeatResponse),
    /// LeaveGroup.
    LeaveGroup(LeaveGroupResponse),
}

/// Why partitions were lost.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum LostReason {
    /// The coordinator answered with this error.
    Error(ErrorCode),
    /// No heartbeat succeeded for a whole session timeout.
    SessionExpired,
}

/// Why the member stopped for good.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FatalError {
    /// The coordinator answered with an error retrying cannot fix.
    #[error("group coordinator error {0}")]
    Coordinator(ErrorCode),
    /// The assignment from the leader could not be decoded.
    #[error("undecodable assignment: {0}")]
    BadAssignment(DecodeError),
}

/// What the application must know.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum MembershipEvent {
    /// A join completed: this member is in `generation`.
    Joined {
        /// This member's id.
        member_id: MemberId,
        /// The generation joined.
        generation: Generation,
        /// Whether this member computed the assignment.
        leader: bool,
        /// The selected assignor.
        protocol: String,
    },
    /// Partitions now owned.
    Assigned {
        /// Newly owned partitions.
        partitions: Vec<TopicPartition>,
        /// The generation that owns them.
        generation: Generation,
    },
    /// Partitions to give up. Finish or abandon their work, commit with
    /// [`Membership::generation`], then call
    /// [`Membership::handle_revoke_done`].
    Revoked {
        /// The partitions.
        partitions: Vec<TopicPartition>,
        /// The generation that owned them (still valid for commits).
        generation: Generation,
    },
    /// Partitions that may already belong to another member: drop their
    /// in-flight work, commit nothing for them.
    Lost {
        /// The partitions.
        partitions: Vec<TopicPartition>,
        /// Why.
        reason: LostReason,
    },
    /// The member left the group after [`Membership::leave`].
    Left,
    /// The member stopped and will do nothing more.
    Fatal(FatalError),
}

/// Where the state machine is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum MembershipState {
    /// Not in the group; will look up the coordinator and join.
    Unjoined,
    /// Waiting for the application to acknowledge a revocation.
    Revoking,
    /// JoinGroup in flight.
    Joining,
    /// SyncGroup in flight.
    Syncing,
    /// In the group, heartbeating.
    Stable,
    /// LeaveGroup in flight.
    Leaving,
    /// Left the group.
    Left,
    /// Stopped on a fatal error.
    Failed,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outstanding {
    FindCoordinator,
    Join,
    Sync,
    Leave,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum AfterRevoke {
    Join,
    Leave,
}

/// The client-side group membership state machine.
#[derive(Debug)]
pub struct Membership {
    config: MembershipConfig,
    protocol: RebalanceProtocol,
    state: MembershipState,
    member_id: MemberId,
    generation: Option<Generation>,
    leader: bool,
    selected: Option<String>,
    coordinator_known: bool,
    /// Partitions owned now.
    owned: BTreeSet<TopicPartition>,
    /// Partitions handed to the application to revoke, until it is done.
    revoking: BTreeSet<TopicPartition>,
    /// The last assignment received, which eager sticky assignors use for
    /// stickiness although it was revoked before the rejoin.
    last_assignment: Vec<TopicPartition>,
    after_revoke: Option<AfterRevoke>,
    /// A rejoin was requested while something else was in flight.
    rejoin_needed: bool,
    leave_requested: bool,
    metadata: BTreeMap<Topic, u32>,
    next_request: u64,
    outstanding: Option<(RequestId, Outstanding)>,
    heartbeat_outstanding: Option<RequestId>,
    /// When the outstanding heartbeat, join or sync was sent.
    heartbeat_sent: Instant,
    sync_sent: Instant,
    next_heartbeat: Option<Instant>,
    /// When the last request that refreshed our session at the coordinator
    /// was *sent*. The coordinator saw it later, so its session deadline
    /// is at least this plus the session timeout: expiring from here, the
    /// client always notices before the coordinator reassigns.
    last_heartbeat_ok: Instant,
    backoff_until: Option<Instant>,
    requests: VecDeque<(RequestId, MemberRequest)>,
    events: VecDeque<MembershipEvent>,
}

impl Membership {
    /// A member that will look up its coordinator and join on the first
    /// [`poll_request`](Self::poll_request).
    pub fn new(config: MembershipConfig, now: Instant) -> Self {
        let cooperative = !config.assignors.is_empty()
            && config
                .assignors
                .iter()
                .all(|a| a.protocol() == RebalanceProtocol::Cooperative);
        Self {
            protocol: if cooperative {
                RebalanceProtocol::Cooperative
            } else {
                RebalanceProtocol::Eager
            },
            config,
            state: MembershipState::Unjoined,
            member_id: MemberId::unknown(),
            generation: None,
            leader: false,
            selected: None,
            coordinator_known: false,
            owned: BTreeSet::new(),
            revoking: BTreeSet::new(),
            last_assignment: Vec::new(),
            after_revoke: None,
            rejoin_needed: true,
            leave_requested: false,
            metadata: BTreeMap::new(),
            next_request: 0,
            outstanding: None,
            heartbeat_outstanding: None,
            heartbeat_sent: now,
            sync_sent: now,
            next_heartbeat: None,
            last_heartbeat_ok: now,
            backoff_until: None,
            requests: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &MembershipConfig {
        &self.config
    }

    /// The rebalance protocol in use.
    pub fn protocol(&self) -> RebalanceProtocol {
        self.protocol
    }

    /// The state.
    pub fn state(&self) -> MembershipState {
        self.state
    }

    /// The member id (empty until the coordinator hands one out).
    pub fn member_id(&self) -> &MemberId {
        &self.member_id
    }

    /// The generation to commit with: the one that owns the current
    /// partitions, kept through a revocation until the next join completes.
    pub fn generation(&self) -> Option<Generation> {
        self.generation
    }

    /// Whether this member led the last join.
    pub fn is_leader(&self) -> bool {
        self.leader
    }

    /// Partitions owned now.
    pub fn owned(&self) -> impl Iterator<Item = &TopicPartition> {
        self.owned.iter()
    }

    /// Partition counts the leader assigns from. Call with fresh metadata;
    /// a leader whose subscribed topics changed partition count rejoins so
    /// the group is reassigned.
    pub fn handle_metadata(&mut self, now: Instant, topics: BTreeMap<Topic, u32>) {
        let changed = self.leader
            && self.state == MembershipState::Stable
            && self
                .config
                .topics
                .iter()
                .any(|t| self.metadata.get(t) != topics.get(t));
        self.metadata = topics;
        if changed {
            self.request_rejoin(now);
        }
    }

    /// The next request to send.
    #[must_use]
    pub fn poll_request(&mut self) -> Option<(RequestId, MemberRequest)> {
        self.requests.pop_front()
    }

    /// The next event.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<MembershipEvent> {
        self.events.pop_front()
    }

    /// When [`handle_timeout`](Self::handle_timeout) next has work.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let session = self
            .has_session()
            .then(|| self.last_heartbeat_ok + self.config.session_timeout);
        let heartbeat = self
            .next_heartbeat
            .filter(|_| self.heartbeat_outstanding.is_none() && self.can_heartbeat());
        [session, heartbeat, self.backoff_until]
            .into_iter()
            .flatten()
            .min()
    }

    /// Fires due timers: client-side session expiry, heartbeats, retries.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.has_session() && now >= self.last_heartbeat_ok + self.config.session_timeout {
            self.lose_all(LostReason::SessionExpired);
            self.generation = None;
            self.coordinator_known = false;
            self.outstanding = None;
            self.heartbeat_outstanding = None;
            self.next_heartbeat = None;
            self.state = MembershipState::Unjoined;
            self.rejoin_needed = true;
        }
        if self.backoff_until.is_some_and(|t| t <= now) {
            self.backoff_until = None;
        }
        if self.next_heartbeat.is_some_and(|t| t <= now)
            && self.heartbeat_outstanding.is_none()
            && self.can_heartbeat()
        {
            let id = self.next_id();
            self.heartbeat_outstanding = Some(id);
            self.heartbeat_sent = now;
            self.next_heartbeat = None;
            self.requests.push_back((
                id,
                MemberRequest::Heartbeat(HeartbeatRequest {
                    group_id: self.config.group_id.clone(),
                    generation: self.generation.unwrap_or(Generation::NONE),
                    member_id: self.member_id.clone(),
                    instance_id: self.config.instance_id.clone(),
                }),
            ));
        }
        self.advance(now);
    }

    /// The application finished the revocation it was given.
    pub fn handle_revoke_done(&mut self, now: Instant) {
        if self.state != MembershipState::Revoking {
            return;
        }
        self.revoking.clear();
        let then = self.after_revoke.take();
        if self.leave_requested || then == Some(AfterRevoke::Leave) {
            if self.owned.is_empty() {
                self.send_leave();
            } else {
                // leave() came during a cooperative revocation: give up the rest too.
                self.start_revoke(self.owned.iter().cloned().collect(), AfterRevoke::Leave);
            }
            return;
        }
        // Every revocation ends in a rejoin: eager revokes before joining,
        // cooperative revokes what moved and rejoins for the follow-up.
        self.state = MembershipState::Unjoined;
        self.rejoin_needed = true;
        self.advance(now);
    }

    /// The coordinator refused an offset commit sent with `generation`
    /// with `error`. As Kafka's consumer does
    /// (`ConsumerCoordinator.OffsetCommitResponseHandler`):
    /// `UNKNOWN_MEMBER_ID` and `ILLEGAL_GENERATION` reset the generation (and
    /// the member id) and rejoin, the partitions lost; `REBALANCE_IN_PROGRESS`
    /// rejoins; `FENCED_INSTANCE_ID` is fatal. Other errors are the
    /// committer's to retry and change nothing here.
    ///
    /// Only while this member is in `generation` and not already
    /// rebalancing: an answer about an older generation, or one that came
    /// while a join is in flight (a new generation is on its way, as
    /// librdkafka reasons), is stale.
    pub fn handle_commit_error(&mut self, now: Instant, generation: Generation, error: ErrorCode) {
        if self.generation != Some(generation) || !self.has_session() {
            return;
        }
        match error {
            ErrorCode::UnknownMemberId | ErrorCode::IllegalGeneration => {
                self.on_group_error(now, error);
            }
            ErrorCode::RebalanceInProgress if self.state == MembershipState::Stable => {
                self.request_rejoin(now);
                // Still in the generation while an eager member revokes:
                // keep the session alive.
                if self.has_session() && self.heartbeat_outstanding.is_none() {
                    self.schedule_heartbeat(now + self.config.heartbeat_interval);
                }
                return;
            }
            ErrorCode::FencedInstanceId => self.fail(FatalError::Coordinator(error)),
            _ => return,
        }
        self.advance(now);
    }

    /// Leave the group: revoke what is owned (wait for
    /// [`handle_revoke_done`](Self::handle_revoke_done)), then send
    /// LeaveGroup — except for a static member, which, as in Kafka, does
    /// not leave on close so that a restart within the session keeps its
    /// partitions without a rebalance.
    pub fn leave(&mut self, now: Instant) {
        if matches!(
            self.state,
            MembershipState::Left | MembershipState::Failed | MembershipState::Leaving
        ) {
            return;
        }
        self.leave_requested = true;
        if self.state == MembershipState::Revoking {
            return; // continued in handle_revoke_done
        }
        // Abandon a join or sync in flight; its response will be ignored.
        self.outstanding = None;
        if self.owned.is_empty() {
            self.send_leave();
        } else {
            self.start_revoke(self.owned.iter().cloned().collect(), AfterRevoke::Leave);
        }
        let _ = now;
    }

    /// A response arrived.
    pub fn handle_response(&mut self, now: Instant, id: RequestId, response: MemberResponse) {
        if let MemberResponse::Heartbeat(h) = response {
            if self.heartbeat_outstanding == Some(id) {
                self.heartbeat_outstanding = None;
                self.on_heartbeat(now, h.error);
                self.advance(now);
            }
            return;
        }
        let Some((expected, kind)) = self.outstanding else {
            return;
        };
        if expected != id {
            return;
        }
        self.outstanding = None;
        match (kind, response) {
            (Outstanding::FindCoordinator, MemberResponse::FindCoordinator(error)) => {
                if error.is_ok() {
                    self.coordinator_known = true;
                    if self.has_session() && self.heartbeat_outstanding.is_none() {
                        self.schedule_heartbeat(now);
                    }
                } else {
                    self.backoff(now);
                }
            }
            (Outstanding::Join, MemberResponse::JoinGroup(r)) => self.on_join(now, r),
            (Outstanding::Sync, MemberResponse::SyncGroup(r)) => self.on_sync(now, r),
            (Outstanding::Leave, MemberResponse::LeaveGroup(_)) => self.finish_leave(),
            // A response of the wrong kind for the id: treat as a failure.
            _ => self.coordinator_lost(now),
        }
        self.advance(now);
    }

    /// A request failed in transport (timeout, disconnect). As in Kafka, the
    /// coordinator is then presumed unknown and looked up again.
    pub fn handle_request_failed(&mut self, now: Instant, id: RequestId) {
        if self.heartbeat_outstanding == Some(id) {
            self.heartbeat_outstanding = None;
            self.coordinator_lost(now);
            self.schedule_heartbeat(now + self.config.retry_backoff);
        } else if self.outstanding.is_some_and(|(o, _)| o == id) {
            let leaving = self
                .outstanding
                .is_some_and(|(_, k)| k == Outstanding::Leave);
            self.outstanding = None;
            if leaving {
                // Best effort, as in Kafka: the session will expire instead.
                self.finish_leave();
            } else {
                self.coordinator_lost(now);
            }
        }
        self.advance(now);
    }

    fn next_id(&mut self) -> RequestId {
        self.next_request += 1;
        RequestId(self.next_request)
    }

    fn has_session(&self) -> bool {
        matches!(
            self.state,
            MembershipState::Stable | MembershipState::Revoking
        ) && self.generation.is_some()
    }

    fn can_heartbeat(&self) -> bool {
        self.has_session() && self.coordinator_known
    }

    fn schedule_heartbeat(&mut self, at: Instant) {
        self.next_heartbeat = Some(at);
    }

    fn backoff(&mut self, now: Instant) {
        self.backoff_until = Some(now + self.config.retry_backoff);
    }

    fn coordinator_lost(&mut self, now: Instant) {
        self.coordinator_known = false;
        if matches!(
            self.state,
            MembershipState::Joining | MembershipState::Syncing
        ) {
            self.state = MembershipState::Unjoined;
            self.rejoin_needed = true;
        }
        self.backoff(now);
    }

    fn request_rejoin(&mut self, now: Instant) {
        self.rejoin_needed = true;
        if self.state == MembershipState::Stable {
            self.state = MembershipState::Unjoined;
        }
        self.advance(now);
    }

    /// Emits Lost for everything owned — and for what is being revoked: the
    /// application must not finish (commit) a revocation of partitions the
    /// group may already have handed to another member — and forgets it.
    fn lose_all(&mut self, reason: LostReason) {
        let mut lost = std::mem::take(&mut self.owned);
        lost.append(&mut self.revoking);
        if !lost.is_empty() {
            let partitions = lost.into_iter().collect();
            self.events
                .push_back(MembershipEvent::Lost { partitions, reason });
        }
        if self.state == MembershipState::Revoking {
            // The revocation in progress is moot: those partitions are lost.
            self.after_revoke = if self.leave_requested {
                Some(AfterRevoke::Leave)
            } else {
                None
            };
        }
    }

    fn start_revoke(&mut self, partitions: Vec<TopicPartition>, then: AfterRevoke) {
        for tp in &partitions {
            self.owned.remove(tp);
            self.revoking.insert(tp.clone());
        }
        self.events.push_back(MembershipEvent::Revoked {
            partitions,
            generation: self.generation.unwrap_or(Generation::NONE),
        });
        self.after_revoke = Some(then);
        self.state = MembershipState::Revoking;
    }

    fn fail(&mut self, error: FatalError) {
        self.lose_all(LostReason::Error(match &error {
            FatalError::Coordinator(c) => *c,
            FatalError::BadAssignment(_) => ErrorCode::InconsistentGroupProtocol,
        }));
        self.state = MembershipState::Failed;
        self.outstanding = None;
        self.next_heartbeat = None;
        self.backoff_until = None;
        self.events.push_back(MembershipEvent::Fatal(error));
    }

    /// Moves forward from the current state: look up the coordinator (to
    /// rejoin, or to keep heartbeating), revoke before an eager rejoin, or
    /// send the JoinGroup.
    fn advance(&mut self, _now: Instant) {
        if self.outstanding.is_some() || self.backoff_until.is_some() {
            return;
        }
        if matches!(
            self.state,
            MembershipState::Left | MembershipState::Failed | MembershipState::Leaving
        ) {
            return;
        }
        let joining = self.state == MembershipState::Unjoined && self.rejoin_needed;
        if !self.coordinator_known && (joining || self.has_session()) {
            let id = self.next_id();
            self.outstanding = Some((id, Outstanding::FindCoordinator));
            self.requests.push_back((
                id,
                MemberRequest::FindCoordinator {
                    group_id: self.config.group_id.clone(),
                },
            ));
            return;
        }
        if self.state == MembershipState::Revoking {
            return;
        }
        if self.leave_requested {
            return self.send_leave();
        }
        if !joining {
            return;
        }
        if self.protocol == RebalanceProtocol::Eager && !self.owned.is_empty() {
            // Kafka's onJoinPrepare: eager members give up everything first.
            return self.start_revoke(self.owned.iter().cloned().collect(), AfterRevoke::Join);
        }
        self.send_join();
    }

    fn subscription(&self) -> Subscription {
        let owned = match self.protocol {
            RebalanceProtocol::Cooperative => self.owned.iter().cloned().collect(),
            RebalanceProtocol::Eager => self.last_assignment.clone(),
        };
        Subscription {
            topics: self.config.topics.clone(),
            user_data: None,
            owned,
            generation: self.generation,
            rack: None,
        }
    }

    fn send_join(&mut self) {
        let metadata = self.subscription().encode();
        let protocols = self
            .config
            .assignors
            .iter()
            .map(|a| ProtocolMetadata {
                name: a.name().to_owned(),
                metadata: metadata.clone(),
            })
            .collect();
        let id = self.next_id();
        self.outstanding = Some((id, Outstanding::Join));
        self.state = MembershipState::Joining;
        self.rejoin_needed = false;
        self.next_heartbeat = None;
        self.requests.push_back((
            id,
            MemberRequest::JoinGroup(JoinGroupRequest {
                group_id: self.config.group_id.clone(),
                member_id: self.member_id.clone(),
                instance_id: self.config.instance_id.clone(),
                client_id: self.config.client_id.clone(),
                protocol_type: "consumer".to_owned(),
                protocols,
                session_timeout: self.config.session_timeout,
                rebalance_timeout: self.config.rebalance_timeout,
            }),
        ));
    }

    fn send_leave(&mut self) {
        self.leave_requested = true;
        let dynamic = self.config.instance_id.is_none();
        if dynamic && !self.member_id.is_unknown() && self.coordinator_known {
            let id = self.next_id();
            self.outstanding = Some((id, Outstanding::Leave));
            self.state = MembershipState::Leaving;
            self.next_heartbeat = None;
            self.requests.push_back((
                id,
                MemberRequest::LeaveGroup(LeaveGroupRequest {
                    group_id: self.config.group_id.clone(),
                    members: vec![LeavingMember {
                        member_id: self.member_id.clone(),
                        instance_id: None,
                    }],
                }),
            ));
        } else {
            self.finish_leave();
        }
    }

    fn finish_leave(&mut self) {
        self.state = MembershipState::Left;
        self.outstanding = None;
        self.heartbeat_outstanding = None;
        self.next_heartbeat = None;
        self.generation = None;
        self.events.push_back(MembershipEvent::Left);
    }

    /// Errors shared by JoinGroup, SyncGroup and Heartbeat responses.
    /// Returns true if handled.
    fn on_group_error(&mut self, now: Instant, error: ErrorCode) -> bool {
        match error {
            ErrorCode::UnknownMemberId => {
                self.lose_all(LostReason::Error(error));
                self.member_id = MemberId::unknown();
                self.generation = None;
                self.rejoin(now, false);
            }
            ErrorCode::IllegalGeneration => {
                self.lose_all(LostReason::Error(error));
                self.generation = None;
                self.rejoin(now, false);
            }
            ErrorCode::FencedInstanceId => self.fail(FatalError::Coordinator(error)),
            ErrorCode::RebalanceInProgress => self.rejoin(now, false),
            ErrorCode::NotCoordinator | ErrorCode::CoordinatorNotAvailable => {
                self.coordinator_lost(now);
                if !self.has_session() {
                    self.rejoin(now, true);
                }
            }
            ErrorCode::CoordinatorLoadInProgress => self.rejoin(now, true),
            e if e.is_retriable() => self.rejoin(now, true),
            _ => return false,
        }
        true
    }

    fn rejoin(&mut self, now: Instant, with_backoff: bool) {
        self.rejoin_needed = true;
        if matches!(
            self.state,
            MembershipState::Stable | MembershipState::Joining | MembershipState::Syncing
        ) {
            self.state = MembershipState::Unjoined;
        }
        self.next_heartbeat = None;
        if with_backoff {
            self.backoff(now);
        }
    }

    fn on_join(&mut self, now: Instant, r: JoinGroupResponse) {
        match r.error {
            ErrorCode::None => {}
            ErrorCode::MemberIdRequired => {
                self.member_id = r.member_id;
                self.state = MembershipState::Unjoined;
                self.rejoin_needed = true;
                return;
            }
            e => {
                if !self.on_group_error(now, e) {
                    self.fail(FatalError::Coordinator(e));
                }
                return;
            }
        }
        self.member_id = r.member_id.clone();
        self.generation = Some(r.generation);
        self.leader = r.leader == r.member_id;
        self.selected = r.protocol_name.clone();
        let protocol = r.protocol_name.clone().unwrap_or_default();
        self.events.push_back(MembershipEvent::Joined {
            member_id: self.member_id.clone(),
            generation: r.generation,
            leader: self.leader,
            protocol: protocol.clone(),
        });
        let assignments = if self.leader {
            self.assign(&protocol, &r)
        } else {
            Vec::new()
        };
        let id = self.next_id();
        self.sync_sent = now;
        self.outstanding = Some((id, Outstanding::Sync));
        self.state = MembershipState::Syncing;
        self.requests.push_back((
            id,
            MemberRequest::SyncGroup(SyncGroupRequest {
                group_id: self.config.group_id.clone(),
                generation: r.generation,
                member_id: self.member_id.clone(),
                instance_id: self.config.instance_id.clone(),
                protocol_type: Some("consumer".to_owned()),
                protocol_name: r.protocol_name,
                assignments,
            }),
        ));
    }

    /// The leader's duty: run the selected assignor over every member's
    /// subscription. A subscription that cannot be decoded counts as an
    /// empty one (that member gets nothing this round) rather than failing
    /// the whole group.
    fn assign(&self, protocol: &str, r: &JoinGroupResponse) -> Vec<(MemberId, bytes::Bytes)> {
        let Some(assignor) = self.config.assignors.iter().find(|a| a.name() == protocol) else {
            return Vec::new();
        };
        let members = r
            .members
            .iter()
            .map(|m| {
                let sub = Subscription::decode(&m.metadata).unwrap_or_default();
                MemberSubscription {
                    member_id: m.member_id.clone(),
                    instance_id: m.instance_id.clone(),
                    topics: sub.topics,
                    owned: sub.owned,
                    generation: sub.generation,
                }
            })
            .collect();
        let group = GroupSubscription {
            members,
            topics: self.metadata.clone(),
        };
        assignor
            .assign(&group)
            .into_iter()
            .map(|(id, partitions)| {
                (
                    id,
                    Assignment {
                        partitions,
                        user_data: None,
                    }
                    .encode(),
                )
            })
            .collect()
    }

    fn on_sync(&mut self, now: Instant, r: SyncGroupResponse) {
        if !r.error.is_ok() {
            if !self.on_group_error(now, r.error) {
                self.fail(FatalError::Coordinator(r.error));
            }
            return;
        }
        let assignment = match Assignment::decode(&r.assignment) {
            Ok(a) => a,
            Err(e) => return self.fail(FatalError::BadAssignment(e)),
        };
        let generation = self.generation.expect("a sync follows a successful join");
        let new: BTreeSet<TopicPartition> = assignment.partitions.iter().cloned().collect();
        self.last_assignment = assignment.partitions;
        self.state = MembershipState::Stable;
        self.last_heartbeat_ok = self.sync_sent;
        self.schedule_heartbeat(now + self.config.heartbeat_interval);
        let revoked: Vec<TopicPartition> = self.owned.difference(&new).cloned().collect();
        let added: Vec<TopicPartition> = new.difference(&self.owned).cloned().collect();
        if !added.is_empty() {
            self.owned.extend(added.iter().cloned());
            self.events.push_back(MembershipEvent::Assigned {
                partitions: added,
                generation,
            });
        }
        if !revoked.is_empty() {
            // KIP-429: give up what moved, then rejoin so its new owner gets it.
            self.start_revoke(revoked, AfterRevoke::Join);
            self.rejoin_needed = true;
        }
    }

    fn on_heartbeat(&mut self, now: Instant, error: ErrorCode) {
        if !self.has_session() {
            return;
        }
        if error.is_ok() {
            self.last_heartbeat_ok = self.heartbeat_sent;
        } else if error == ErrorCode::RebalanceInProgress {
            // The coordinator still counts us in: the session is alive.
            self.last_heartbeat_ok = self.heartbeat_sent;
            if self.state == MembershipState::Stable {
                // An eager member now revokes before it joins, and goes on
                // heartbeating meanwhile (below), as Kafka's heartbeat
                // thread does while onPartitionsRevoked runs: a revocation
                // that takes longer than the session must not cost the
                // session (issue 14).
                self.request_rejoin(now);
            }
        } else if !self.on_group_error(now, error) {
            // Other errors: keep heartbeating; the session timer decides.
        }
        if self.has_session() {
            self.schedule_heartbeat(now + self.config.heartbeat_interval);
        }
    }
}

#[cfg(test)]
mod tests {
    //! The client state machine alone, fed responses by hand.

    use super::*;
    use crate::assign::{CooperativeSticky, Range};
    use crate::protocol::Assignment;

    const T0: Instant = Instant::ZERO;

    fn member(assignor: Arc<dyn Assignor>, instance: Option<&str>) -> Membership {
        let mut c = MembershipConfig::new("g", "c", vec![Topic::new("t")], vec![assignor]);
        c.instance_id = instance.map(InstanceId::new);
        c.session_timeout = Duration::from_secs(10);
        c.heartbeat_interval = Duration::from_secs(1);
        let mut m = Membership::new(c, T0);
        m.handle_metadata(T0, [(Topic::new("t"), 4)].into_iter().collect());
        m.handle_timeout(T0);
        m
    }

    fn requests(m: &mut Membership) -> Vec<(RequestId, MemberRequest)> {
        std::iter::from_fn(|| m.poll_request()).collect()
    }

    fn events(m: &mut Membership) -> Vec<MembershipEvent> {
        std::iter::from_fn(|| m.poll_event()).collect()
    }

    fn one(m: &mut Membership) -> (RequestId, MemberRequest) {
        let mut r = requests(m);
        assert_eq!(r.len(), 1, "expected one request, got {r:?}");
        r.remove(0)
    }

    fn join_ok(
        m: &mut Membership,
        now: Instant,
        id: RequestId,
        generation: i32,
        partitions: &[i32],
    ) {
        let resp = JoinGroupResponse {
            error: ErrorCode::None,
            generation: Generation(generation),
            protocol_type: Some("consumer".into()),
            protocol_name: Some(m.config().assignors[0].name().to_owned()),
            leader: MemberId::new("other"),
            member_id: MemberId::new("me"),
            members: vec![],
        };
        m.handle_response(now, id, MemberResponse::JoinGroup(resp));
        let (sid, req) = one(m);
        assert!(matches!(req, MemberRequest::SyncGroup(_)));
        let a = Assignment {
            partitions: partitions
                .iter()
                .map(|&p| TopicPartition::new("t", p))
                .collect(),
            user_data: None,
        };
        let resp = SyncGroupResponse {
            error: ErrorCode::None,
            protocol_type: None,
            protocol_name: None,
            assignment: a.encode(),
        };
        m.handle_response(now, sid, MemberResponse::SyncGroup(resp));
    }

    /// A member through FindCoordinator, JoinGroup and SyncGroup, Stable
    /// owning `partitions`.
    fn stable(
        assignor: Arc<dyn Assignor>,
        instance: Option<&str>,
        partitions: &[i32],
    ) -> Membership {
        let mut m = member(assignor, instance);
        let (id, req) = one(&mut m);
        assert!(matches!(req, MemberRequest::FindCoordinator { .. }));
        m.handle_response(T0, id, MemberResponse::FindCoordinator(ErrorCode::None));
        let (id, req) = one(&mut m);
        assert!(matches!(req, MemberRequest::JoinGroup(_)));
        join_ok(&mut m, T0, id, 1, partitions);
        assert_eq!(m.state(), MembershipState::Stable);
        events(&mut m);
        m
    }

    fn heartbeat(m: &mut Membership, now: Instant) -> RequestId {
        m.handle_timeout(now);
        let (id, req) = one(m);
        assert!(matches!(req, MemberRequest::Heartbeat(_)), "{req:?}");
        id
    }

    /// The member lost its partitions for `error` and sends a JoinGroup,
    /// which is returned.
    fn lost_then_join(m: &mut Membership, error: ErrorCode) -> JoinGroupRequest {
        let ev = events(m);
        assert!(
            matches!(
                &ev[0],
                MembershipEvent::Lost { reason: LostReason::Error(e), .. } if *e == error
            ),
            "{ev:?}"
        );
        let (_, req) = one(m);
        let MemberRequest::JoinGroup(j) = req else {
            panic!("{req:?}")
        };
        j
    }

    fn hb_error(m: &mut Membership, now: Instant, e: ErrorCode) {
        let id = heartbeat(m, now);
        m.handle_response(
            now,
            id,
            MemberResponse::Heartbeat(HeartbeatResponse { error: e }),
        );
    }

    #[test]
    fn member_id_required_rejoins_with_the_given_id() {
        let mut m = member(Arc::new(Range), None);
        let (id, _) = one(&mut m);
        m.handle_response(T0, id, MemberResponse::FindCoordinator(ErrorCode::None));
        let (id, _) = one(&mut m);
        let mut resp =
            JoinGroupResponse::error(ErrorCode::MemberIdRequired, MemberId::new("given"));
        resp.generation = Generation::NONE;
        m.handle_response(T0, id, MemberResponse::JoinGroup(resp));
        let (_, req) = one(&mut m);
        let MemberRequest::JoinGroup(j) = req else {
            panic!("{req:?}")
        };
        assert_eq!(j.member_id, MemberId::new("given"));
    }

    #[test]
    fn fenced_instance_id_is_fatal_and_loses_everything() {
        let mut m = stable(Arc::new(Range), Some("pod"), &[0, 1]);
        hb_error(
            &mut m,
            Instant::from_millis(1_000),
            ErrorCode::FencedInstanceId,
        );
        let ev = events(&mut m);
        assert!(
            matches!(&ev[0], MembershipEvent::Lost { partitions, .. } if partitions.len() == 2)
        );
        assert!(matches!(
            ev[1],
            MembershipEvent::Fatal(FatalError::Coordinator(ErrorCode::FencedInstanceId))
        ));
        assert_eq!(m.state(), MembershipState::Failed);
        m.handle_timeout(Instant::from_millis(60_000));
        assert!(
            requests(&mut m).is_empty(),
            "a failed member sends nothing more"
        );
    }

    #[test]
    fn unknown_member_id_loses_partitions_and_rejoins_as_new() {
        let mut m = stable(Arc::new(Range), None, &[0, 1]);
        hb_error(
            &mut m,
            Instant::from_millis(1_000),
            ErrorCode::UnknownMemberId,
        );
        let j = lost_then_join(&mut m, ErrorCode::UnknownMemberId);
        assert!(j.member_id.is_unknown(), "rejoins without the dead id");
        assert!(m.generation().is_none());
    }

    #[test]
    fn illegal_generation_loses_partitions_but_keeps_the_member_id() {
        let mut m = stable(Arc::new(CooperativeSticky), None, &[0]);
        hb_error(
            &mut m,
            Instant::from_millis(1_000),
            ErrorCode::IllegalGeneration,
        );
        let j = lost_then_join(&mut m, ErrorCode::IllegalGeneration);
        assert_eq!(j.member_id, MemberId::new("me"));
        let sub = Subscription::decode(&j.protocols[0].metadata).unwrap();
        assert!(
            sub.owned.is_empty() && sub.generation.is_none(),
            "claims nothing it lost"
        );
    }

    /// Issue 14: a commit refused because the member is out of its
    /// generation is acted on as Kafka's consumer does, not left to the
    /// heartbeat (which a busy or stuck application may never let run).
    #[test]
    fn a_commit_refused_with_unknown_member_id_loses_the_partitions_and_rejoins_as_new() {
        let mut m = stable(Arc::new(Range), None, &[0, 1]);
        let now = Instant::from_millis(500);
        m.handle_commit_error(now, Generation(1), ErrorCode::UnknownMemberId);
        let j = lost_then_join(&mut m, ErrorCode::UnknownMemberId);
        assert!(j.member_id.is_unknown());
        assert!(m.generation().is_none());
    }

    #[test]
    fn a_commit_refused_with_illegal_generation_loses_the_partitions_and_rejoins() {
        let mut m = stable(Arc::new(CooperativeSticky), None, &[0]);
        m.handle_commit_error(
            Instant::from_millis(500),
            Generation(1),
            ErrorCode::IllegalGeneration,
        );
        let j = lost_then_join(&mut m, ErrorCode::IllegalGeneration);
        assert_eq!(j.member_id, MemberId::new("me"));
    }

    #[test]
    fn a_commit_refused_with_rebalance_in_progress_rejoins_without_losing() {
        let mut m = stable(Arc::new(Range), None, &[0, 1]);
        m.handle_commit_error(
            Instant::from_millis(500),
            Generation(1),
            ErrorCode::RebalanceInProgress,
        );
        // Eager: revoke (not lose) everything before joining again.
        assert!(matches!(
            &events(&mut m)[0],
            MembershipEvent::Revoked { .. }
        ));
        assert_eq!(m.state(), MembershipState::Revoking);
    }

    #[test]
    fn a_commit_refused_with_fenced_instance_id_is_fatal() {
        let mut m = stable(Arc::new(Range), Some("i-1"), &[0]);
        m.handle_commit_error(
            Instant::from_millis(500),
            Generation(1),
            ErrorCode::FencedInstanceId,
        );
        assert_eq!(m.state(), MembershipState::Failed);
    }

    #[test]
    fn a_refused_commit_of_another_generation_or_a_retriable_error_changes_nothing() {
        let mut m = stable(Arc::new(Range), None, &[0, 1]);
        let now = Instant::from_millis(500);
        m.handle_commit_error(now, Generation(0), ErrorCode::IllegalGeneration);
        m.handle_commit_error(now, Generation(1), ErrorCode::NotCoordinator);
        m.handle_commit_error(now, Generation(1), ErrorCode::RequestTimedOut);
        assert!(events(&mut m).is_empty());
        assert!(requests(&mut m).is_empty());
        assert_eq!(m.state(), MembershipState::Stable);
        assert_eq!(m.generation(), Some(Generation(1)));
    }

    /// Issue 14: after a REBALANCE_IN_PROGRESS heartbeat, an eager member
    /// stopped heartbeating while the application revoked; a revocation
    /// longer than the session expired it client-side, and it rejoined
    /// while the application was still finishing (and committing) the
    /// partitions it was giving up.
    #[test]
    fn an_eager_member_keeps_heartbeating_while_the_application_revokes() {
        let mut m = stable(Arc::new(Range), None, &[0, 1]);
        hb_error(
            &mut m,
            Instant::from_millis(1_000),
            ErrorCode::RebalanceInProgress,
        );
        assert!(matches!(
            &events(&mut m)[0],
            MembershipEvent::Revoked { .. }
        ));
        assert_eq!(m.state(), MembershipState::Revoking);
        // A revocation three sessions long, each heartbeat answered with
        // REBALANCE_IN_PROGRESS: the session stays alive.
        let mut now = Instant::from_millis(1_000);
        for _ in 0..30 {
            now = now + Duration::from_secs(1);
            hb_error(&mut m, now, ErrorCode::RebalanceInProgress);
        }
        assert_eq!(m.state(), MembershipState::Revoking);
        assert!(events(&mut m).is_empty(), "nothing lost");
        m.handle_revoke_done(now);
        let reqs = requests(&mut m);
        assert!(
            reqs.iter()
                .any(|(_, r)| matches!(r, MemberRequest::JoinGroup(_))),
            "{reqs:?}"
        );
    }

    #[test]
    fn a_session_lost_while_revoking_loses_what_is_being_revoked() {
        let mut m = stable(Arc::new(Range), None, &[0, 1]);
        hb_error(
            &mut m,
            Instant::from_millis(1_000),
            ErrorCode::RebalanceInProgress,
        );
        let revoked = events(&mut m);
        let MembershipEvent::Revoked { partitions, .. } = &revoked[0] else {
            panic!("{revoked:?}")
        };
        let partitions = partitions.clone();
        // The coordinator stops answering: the session runs out.
        let id = heartbeat(&mut m, Instant::from_millis(2_000));
        m.handle_request_failed(Instant::from_millis(2_100), id);
        m.handle_timeout(Instant::from_millis(20_000));
        let lost: Vec<MembershipEvent> = events(&mut m);
        assert!(
            lost.iter().any(|e| matches!(
                e,
                MembershipEvent::Lost { partitions: p, reason: LostReason::SessionExpired } if *p == partitions
            )),
            "{lost:?}"
        );
    }

    #[test]
    fn not_coordinator_looks_the_coordinator_up_again_and_keeps_the_partitions() {
        let mut m = stable(Arc::new(Range), None, &[0, 1]);
        hb_error(
            &mut m,
            Instant::from_millis(1_000),
            ErrorCode::NotCoordinator,
        );
        assert!(events(&mut m).is_empty(), "nothing lost");
        m.handle_timeout(Instant::from_millis(1_100)); // after the retry backoff
        let (id, req) = one(&mut m);
        assert!(matches!(req, MemberRequest::FindCoordinator { .. }));
        m.handle_response(
            Instant::from_millis(1_100),
            id,
            MemberResponse::FindCoordinator(ErrorCode::None),
        );
        assert_eq!(
            m.poll_timeout(),
            Some(Instant::from_millis(1_100)),
            "a heartbeat is due at once"
        );
        m.handle_timeout(Instant::from_millis(1_100));
        let (_, req) = one(&mut m);
        assert!(matches!(req, MemberRequest::Heartbeat(_)), "{req:?}");
        assert_eq!(m.owned().count(), 2);
    }

    #[test]
    fn a_response_to_an_abandoned_request_is_ignored() {
        let mut m = stable(Arc::new(Range), None, &[0]);
        let id = heartbeat(&mut m, Instant::from_millis(1_000));
        m.handle_request_failed(Instant::from_millis(1_500), id);
        // The late answer to the failed heartbeat must not revive anything.
        m.handle_response(
            Instant::from_millis(1_600),
            id,
            MemberResponse::Heartbeat(HeartbeatResponse {
                error: ErrorCode::UnknownMemberId,
            }),
        );
        assert!(events(&mut m).is_empty());
        assert_eq!(m.member_id(), &MemberId::new("me"));
    }

    #[test]
    fn eager_rebalance_revokes_all_and_waits_for_the_ack_before_joining() {
        let mut m = stable(Arc::new(Range), None, &[0, 1]);
        hb_error(
            &mut m,
            Instant::from_millis(1_000),
            ErrorCode::RebalanceInProgress,
        );
        let ev = events(&mut m);
        assert!(
            matches!(&ev[0], MembershipEvent::Revoked { partitions, generation } if partitions.len() == 2 && *generation == Generation(1))
        );
        assert!(
            requests(&mut m)
                .iter()
                .all(|(_, r)| !matches!(r, MemberRequest::JoinGroup(_))),
            "no join before the ack"
        );
        assert_eq!(
            m.generation(),
            Some(Generation(1)),
            "still valid for the revoke commit"
        );
        m.handle_revoke_done(Instant::from_millis(1_010));
        let (_, req) = one(&mut m);
        assert!(matches!(req, MemberRequest::JoinGroup(_)));
    }

    #[test]
    fn cooperative_rejoin_keeps_partitions_and_revokes_only_what_moved() {
        let mut m = stable(Arc::new(CooperativeSticky), None, &[0, 1]);
        hb_error(
            &mut m,
            Instant::from_millis(1_000),
            ErrorCode::RebalanceInProgress,
        );
        assert!(events(&mut m).is_empty(), "nothing revoked up front");
        let (id, req) = one(&mut m);
        let MemberRequest::JoinGroup(j) = req else {
            panic!("{req:?}")
        };
        assert_eq!(
            Subscription::decode(&j.protocols[0].metadata)
                .unwrap()
                .owned
                .len(),
            2
        );
        join_ok(&mut m, Instant::from_millis(1_001), id, 2, &[0]);
        let ev = events(&mut m);
        assert!(matches!(&ev[0], MembershipEvent::Joined { .. }));
        assert!(
            matches!(&ev[1], MembershipEvent::Revoked { partitions, .. } if partitions == &vec![TopicPartition::new("t", 1)])
        );
        m.handle_revoke_done(Instant::from_millis(1_002));
        let (_, req) = one(&mut m);
        assert!(
            matches!(req, MemberRequest::JoinGroup(_)),
            "rejoins for the follow-up round"
        );
    }

    #[test]
    fn a_static_member_does_not_send_leave_group() {
        let mut m = stable(Arc::new(Range), Some("pod"), &[0]);
        m.leave(Instant::from_millis(500));
        assert!(matches!(
            &events(&mut m)[0],
            MembershipEvent::Revoked { .. }
        ));
        m.handle_revoke_done(Instant::from_millis(501));
        assert!(
            requests(&mut m).is_empty(),
            "no LeaveGroup: a restart within the session keeps the partitions"
        );
        assert_eq!(events(&mut m), vec![MembershipEvent::Left]);
    }

    #[test]
    fn a_dynamic_member_leaves_after_revoking() {
        let mut m = stable(Arc::new(Range), None, &[0]);
        m.leave(Instant::from_millis(500));
        events(&mut m);
        m.handle_revoke_done(Instant::from_millis(501));
        let (id, req) = one(&mut m);
        assert!(matches!(req, MemberRequest::LeaveGroup(_)));
        m.handle_response(
            Instant::from_millis(502),
            id,
            MemberResponse::LeaveGroup(LeaveGroupResponse {
                error: ErrorCode::None,
                members: vec![],
            }),
        );
        assert_eq!(events(&mut m), vec![MembershipEvent::Left]);
        assert_eq!(m.state(), MembershipState::Left);
    }

    #[test]
    fn a_silent_session_is_lost_counting_from_the_last_heartbeat_sent() {
        let mut m = stable(Arc::new(Range), None, &[0]);
        let id = heartbeat(&mut m, Instant::from_millis(1_000));
        m.handle_response(
            Instant::from_millis(4_000),
            id,
            MemberResponse::Heartbeat(HeartbeatResponse {
                error: ErrorCode::None,
            }),
        );
        // Accepted heartbeat was *sent* at 1 s: the session ends at 11 s, not 14 s.
        let _ = requests(&mut m);
        m.handle_timeout(Instant::from_millis(10_999));
        assert!(events(&mut m).is_empty());
        m.handle_timeout(Instant::from_millis(11_000));
        assert!(matches!(
            &events(&mut m)[0],
            MembershipEvent::Lost {
                reason: LostReason::SessionExpired,
                ..
            }
        ));
    }

    #[test]
    fn an_undecodable_assignment_is_fatal() {
        let mut m = member(Arc::new(Range), None);
        let (id, _) = one(&mut m);
        m.handle_response(T0, id, MemberResponse::FindCoordinator(ErrorCode::None));
        let (id, _) = one(&mut m);
        let resp = JoinGroupResponse {
            error: ErrorCode::None,
            generation: Generation(1),
            protocol_type: None,
            protocol_name: Some("range".into()),
            leader: MemberId::new("x"),
            member_id: MemberId::new("me"),
            members: vec![],
        };
        m.handle_response(T0, id, MemberResponse::JoinGroup(resp));
        let (sid, _) = one(&mut m);
        let bad = SyncGroupResponse {
            error: ErrorCode::None,
            protocol_type: None,
            protocol_name: None,
            assignment: bytes::Bytes::from_static(&[0, 0, 0]),
        };
        m.handle_response(T0, sid, MemberResponse::SyncGroup(bad));
        assert!(events(&mut m)
            .iter()
            .any(|e| matches!(e, MembershipEvent::Fatal(FatalError::BadAssignment(_)))));
    }
}
