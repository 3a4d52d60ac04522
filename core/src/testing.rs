//! A deterministic driver for group-protocol tests, in the shape of
//! quinn-proto's `Pair`: members ([`Membership`]) and one [`Coordinator`]
//! exchange messages through in-memory queues on a virtual clock. When
//! nothing is left to do at the current instant the clock jumps to the next
//! delivery or timer. No threads, no real time: the same calls give the
//! same history.
//!
//! Faults are verbs on the driver: [`crash`](GroupHarness::crash) and
//! [`restart`](GroupHarness::restart) a member, [`mute`](GroupHarness::mute)
//! its traffic (a partition: requests vanish and fail after the request
//! timeout), [`pause`](GroupHarness::pause) it (a stop-the-world stall: it
//! runs nothing until [`resume`](GroupHarness::resume)), and
//! [`leave`](GroupHarness::leave).
//!
//! The driver applies membership events to an ownership table and checks,
//! after every step, that no partition has two *acting* owners (members that
//! are alive and not paused). A violation is recorded with its time, not
//! panicked on, so a test can assert on it.
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//! use ruckus_core::assign::Range;
//! use ruckus_core::coordinator::CoordinatorConfig;
//! use ruckus_core::membership::MembershipConfig;
//! use ruckus_core::model::Topic;
//! use ruckus_core::testing::GroupHarness;
//!
//! let mut h = GroupHarness::new(CoordinatorConfig::default(), [(Topic::new("orders"), 6)]);
//! for i in 0..3 {
//!     h.add_member(MembershipConfig::new("g", format!("c{i}"), vec![Topic::new("orders")], vec![Arc::new(Range)]));
//! }
//! h.run_until_stable(Duration::from_secs(60)).expect("the group settles");
//! assert!(h.owned_by(0).len() == 2 && h.owned_by(1).len() == 2 && h.owned_by(2).len() == 2);
//! assert!(h.violations().is_empty());
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use crate::coordinator::{
    Coordinator, CoordinatorConfig, CoordinatorEvent, GroupState, ReplyTo, Request, Response,
};
use crate::membership::{
    MemberRequest, MemberResponse, Membership, MembershipConfig, MembershipEvent, MembershipState,
    RequestId,
};
use crate::model::{ErrorCode, Instant, Topic, TopicPartition};

/// What the driver saw, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Logged {
    /// A member emitted an event.
    Member {
        /// Member index.
        member: usize,
        /// The event.
        event: MembershipEvent,
    },
    /// The coordinator emitted an event.
    Coordinator(CoordinatorEvent),
    /// A fault verb was applied.
    Fault(String),
}

/// Two acting members owned one partition at once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// When.
    pub at: Instant,
    /// The partition.
    pub partition: TopicPartition,
    /// The member indices owning it.
    pub owners: Vec<usize>,
}

#[derive(Debug)]
enum Envelope {
    ToCoordinator {
        reply: ReplyTo,
        request: Request,
    },
    ToMember {
        member: usize,
        incarnation: u64,
        id: RequestId,
        response: Option<MemberResponse>,
    },
    /// The application finished revoking these partitions.
    RevokeDone {
        member: usize,
        incarnation: u64,
        partitions: Vec<TopicPartition>,
    },
}

#[derive(Debug)]
struct Slot {
    config: MembershipConfig,
    membership: Option<Membership>,
    incarnation: u64,
    muted: bool,
    paused: bool,
    /// Deliveries that arrived while paused.
    held: Vec<(RequestId, Option<MemberResponse>)>,
}

/// The driver. See the [module docs](self).
#[derive(Debug)]
pub struct GroupHarness {
    now: Instant,
    coordinator: Coordinator,
    slots: Vec<Slot>,
    topics: BTreeMap<Topic, u32>,
    queue: BTreeMap<(Instant, u64), Envelope>,
    seq: u64,
    routes: BTreeMap<ReplyTo, (usize, u64, RequestId)>,
    next_reply: u64,
    latency: Duration,
    request_timeout: Duration,
    revoke_delay: Duration,
    log: Vec<(Instant, Logged)>,
    owners: BTreeMap<TopicPartition, BTreeSet<usize>>,
    violations: Vec<Violation>,
}

/// A step limit that only a livelock reaches.
const MAX_STEPS: usize = 10_000_000;

impl GroupHarness {
    /// A coordinator with `config` and a cluster with the given topics.
    pub fn new(config: CoordinatorConfig, topics: impl IntoIterator<Item = (Topic, u32)>) -> Self {
        Self {
            now: Instant::ZERO,
            coordinator: Coordinator::new(config),
            slots: Vec::new(),
            topics: topics.into_iter().collect(),
            queue: BTreeMap::new(),
            seq: 0,
            routes: BTreeMap::new(),
            next_reply: 0,
            latency: Duration::from_millis(1),
            request_timeout: Duration::from_secs(30),
            revoke_delay: Duration::from_millis(10),
            log: Vec::new(),
            owners: BTreeMap::new(),
            violations: Vec::new(),
        }
    }

    /// Sets the one-way network latency (default 1 ms).
    pub fn set_latency(&mut self, latency: Duration) -> &mut Self {
        self.latency = latency;
        self
    }

    /// Sets how long a dropped request takes to fail (default 30 s).
    pub fn set_request_timeout(&mut self, timeout: Duration) -> &mut Self {
        self.request_timeout = timeout;
        self
    }

    /// Sets how long the application takes to finish a revocation (drain,
    /// commit) before acknowledging it (default 10 ms). It owns the
    /// partitions until then.
    pub fn set_revoke_delay(&mut self, delay: Duration) -> &mut Self {
        self.revoke_delay = delay;
        self
    }

    /// Adds and starts a member; returns its index.
    pub fn add_member(&mut self, config: MembershipConfig) -> usize {
        let mut m = Membership::new(config.clone(), self.now);
        m.handle_metadata(self.now, self.topics.clone());
        m.handle_timeout(self.now);
        self.slots.push(Slot {
            config,
            membership: Some(m),
            incarnation: 0,
            muted: false,
            paused: false,
            held: Vec::new(),
        });
        self.slots.len() - 1
    }

    /// The current time.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// The coordinator.
    pub fn coordinator(&self) -> &Coordinator {
        &self.coordinator
    }

    /// A member's state machine, if it is running.
    pub fn member(&self, i: usize) -> Option<&Membership> {
        self.slots[i].membership.as_ref()
    }

    /// Everything logged so far.
    pub fn log(&self) -> &[(Instant, Logged)] {
        &self.log
    }

    /// Exclusive-ownership violations found so far.
    pub fn violations(&self) -> &[Violation] {
        &self.violations
    }

    /// Partitions member `i` owns in the ownership table.
    pub fn owned_by(&self, i: usize) -> Vec<TopicPartition> {
        self.owners
            .iter()
            .filter(|(_, o)| o.contains(&i))
            .map(|(tp, _)| tp.clone())
            .collect()
    }

    /// Events member `i` emitted, with times.
    pub fn member_events(&self, i: usize) -> Vec<(Instant, MembershipEvent)> {
        self.log
            .iter()
            .filter_map(|(t, l)| match l {
                Logged::Member { member, event } if *member == i => Some((*t, event.clone())),
                _ => None,
            })
            .collect()
    }

    fn fault(&mut self, what: String) {
        self.log.push((self.now, Logged::Fault(what)));
    }

    /// Kills member `i` without leaving: its memory is gone, its partitions
    /// are owned by nobody acting, responses to it are dropped.
    pub fn crash(&mut self, i: usize) {
        self.fault(format!("crash member {i}"));
        let slot = &mut self.slots[i];
        slot.membership = None;
        slot.incarnation += 1;
        slot.held.clear();
        slot.paused = false;
        for owners in self.owners.values_mut() {
            owners.remove(&i);
        }
    }

    /// Starts member `i` afresh with its original configuration (a static
    /// member keeps its `group.instance.id`).
    pub fn restart(&mut self, i: usize) {
        self.fault(format!("restart member {i}"));
        let config = self.slots[i].config.clone();
        let mut m = Membership::new(config, self.now);
        m.handle_metadata(self.now, self.topics.clone());
        m.handle_timeout(self.now);
        let slot = &mut self.slots[i];
        slot.membership = Some(m);
        slot.incarnation += 1;
    }

    /// Drops all of member `i`'s traffic in both directions from now on.
    pub fn mute(&mut self, i: usize) {
        self.fault(format!("mute member {i}"));
        self.slots[i].muted = true;
    }

    /// Restores member `i`'s traffic.
    pub fn unmute(&mut self, i: usize) {
        self.fault(format!("unmute member {i}"));
        self.slots[i].muted = false;
    }

    /// Stalls member `i`: it handles nothing until [`resume`](Self::resume).
    pub fn pause(&mut self, i: usize) {
        self.fault(format!("pause member {i}"));
        self.slots[i].paused = true;
    }

    /// Ends a stall: the member first handles its timers (as a process
    /// waking from a stall would), then what arrived meanwhile.
    pub fn resume(&mut self, i: usize) {
        self.fault(format!("resume member {i}"));
        let now = self.now;
        let slot = &mut self.slots[i];
        slot.paused = false;
        let held = std::mem::take(&mut slot.held);
        if let Some(m) = slot.membership.as_mut() {
            m.handle_timeout(now);
            for (id, response) in held {
                match response {
                    Some(r) => m.handle_response(now, id, r),
                    None => m.handle_request_failed(now, id),
                }
            }
        }
    }

    /// Asks member `i` to leave the group gracefully.
    pub fn leave(&mut self, i: usize) {
        self.fault(format!("leave member {i}"));
        let now = self.now;
        if let Some(m) = self.slots[i].membership.as_mut() {
            m.leave(now);
        }
    }

    fn acting(&self, i: usize) -> bool {
        let s = &self.slots[i];
        s.membership.is_some() && !s.paused
    }

    fn push(&mut self, at: Instant, e: Envelope) {
        self.seq += 1;
        self.queue.insert((at, self.seq), e);
    }

    /// Applies a member event to the ownership table and the log. A
    /// revocation is finished (and the partitions released) only after the
    /// revoke delay; an assignment is checked against acting owners at once.
    fn record(&mut self, i: usize, event: MembershipEvent) {
        match &event {
            MembershipEvent::Assigned { partitions, .. } => {
                for tp in partitions {
                    let others: Vec<usize> = self
                        .owners
                        .get(tp)
                        .into_iter()
                        .flatten()
                        .copied()
                        .filter(|&o| o != i && self.acting(o))
                        .collect();
                    if !others.is_empty() {
                        let mut owners = others;
                        owners.push(i);
                        self.violations.push(Violation {
                            at: self.now,
                            partition: tp.clone(),
                            owners,
                        });
                    }
                    self.owners.entry(tp.clone()).or_default().insert(i);
                }
            }
            MembershipEvent::Revoked { partitions, .. } => {
                let env = Envelope::RevokeDone {
                    member: i,
                    incarnation: self.slots[i].incarnation,
                    partitions: partitions.clone(),
                };
                self.push(self.now + self.revoke_delay, env);
            }
            MembershipEvent::Lost { partitions, .. } => {
                for tp in partitions {
                    if let Some(o) = self.owners.get_mut(tp) {
                        o.remove(&i);
                    }
                }
            }
            _ => {}
        }
        self.log
            .push((self.now, Logged::Member { member: i, event }));
    }

    fn check_ownership(&mut self) {
        for (tp, owners) in &self.owners {
            let acting: Vec<usize> = owners.iter().copied().filter(|&i| self.acting(i)).collect();
            if acting.len() > 1
                && !self
                    .violations
                    .iter()
                    .any(|v| &v.partition == tp && v.owners == acting)
            {
                self.violations.push(Violation {
                    at: self.now,
                    partition: tp.clone(),
                    owners: acting,
                });
            }
        }
    }

    /// Puts a member's request on the wire (or loses it, if muted).
    fn send(&mut self, i: usize, id: RequestId, req: MemberRequest) {
        let now = self.now;
        let incarnation = self.slots[i].incarnation;
        if self.slots[i].muted {
            let env = Envelope::ToMember {
                member: i,
                incarnation,
                id,
                response: None,
            };
            return self.push(now + self.request_timeout, env);
        }
        let request = match req {
            MemberRequest::FindCoordinator { .. } => {
                // The one coordinator is always found, a round trip later.
                let response = Some(MemberResponse::FindCoordinator(ErrorCode::None));
                let env = Envelope::ToMember {
                    member: i,
                    incarnation,
                    id,
                    response,
                };
                return self.push(now + self.latency * 2, env);
            }
            MemberRequest::JoinGroup(r) => Request::JoinGroup(r),
            MemberRequest::SyncGroup(r) => Request::SyncGroup(r),
            MemberRequest::Heartbeat(r) => Request::Heartbeat(r),
            MemberRequest::LeaveGroup(r) => Request::LeaveGroup(r),
        };
        self.next_reply += 1;
        let reply = ReplyTo(self.next_reply);
        self.routes.insert(reply, (i, incarnation, id));
        self.push(
            now + self.latency,
            Envelope::ToCoordinator { reply, request },
        );
    }

    /// Does everything due at the current instant once; true if anything happened.
    fn step(&mut self) -> bool {
        let now = self.now;
        let mut progress = false;
        for i in 0..self.slots.len() {
            if !self.acting(i) {
                continue;
            }
            loop {
                let m = self.slots[i].membership.as_mut().expect("acting");
                if let Some((id, req)) = m.poll_request() {
                    progress = true;
                    self.send(i, id, req);
                    continue;
                }
                let Some(ev) = m.poll_event() else { break };
                progress = true;
                self.record(i, ev);
            }
        }
        while let Some((reply, response)) = self.coordinator.poll_response() {
            progress = true;
            let Some((i, incarnation, id)) = self.routes.remove(&reply) else {
                continue;
            };
            let response = match response {
                Response::JoinGroup(r) => MemberResponse::JoinGroup(r),
                Response::SyncGroup(r) => MemberResponse::SyncGroup(r),
                Response::Heartbeat(r) => MemberResponse::Heartbeat(r),
                Response::LeaveGroup(r) => MemberResponse::LeaveGroup(r),
                other => panic!("the driver sends no request answered by {other:?}"),
            };
            if self.slots[i].muted {
                self.push(
                    now + self.request_timeout,
                    Envelope::ToMember {
                        member: i,
                        incarnation,
                        id,
                        response: None,
                    },
                );
            } else {
                self.push(
                    now + self.latency,
                    Envelope::ToMember {
                        member: i,
                        incarnation,
                        id,
                        response: Some(response),
                    },
                );
            }
        }
        while let Some(e) = self.coordinator.poll_event() {
            progress = true;
            self.log.push((now, Logged::Coordinator(e)));
        }
        while let Some(entry) = self.queue.first_entry() {
            if entry.key().0 > now {
                break;
            }
            progress = true;
            match entry.remove() {
                Envelope::ToCoordinator { reply, request } => {
                    self.coordinator.handle_request(now, reply, request)
                }
                Envelope::RevokeDone {
                    member,
                    incarnation,
                    partitions,
                } => {
                    let slot = &mut self.slots[member];
                    if slot.incarnation != incarnation || slot.membership.is_none() {
                        continue;
                    }
                    for tp in &partitions {
                        if let Some(o) = self.owners.get_mut(tp) {
                            o.remove(&member);
                        }
                    }
                    self.slots[member]
                        .membership
                        .as_mut()
                        .expect("checked")
                        .handle_revoke_done(now);
                }
                Envelope::ToMember {
                    member,
                    incarnation,
                    id,
                    response,
                } => {
                    let slot = &mut self.slots[member];
                    if slot.incarnation != incarnation || slot.membership.is_none() {
                        continue;
                    }
                    if slot.paused {
                        slot.held.push((id, response));
                        continue;
                    }
                    let m = slot.membership.as_mut().expect("checked");
                    match response {
                        Some(r) => m.handle_response(now, id, r),
                        None => m.handle_request_failed(now, id),
                    }
                }
            }
        }
        self.check_ownership();
        progress
    }

    fn next_wakeup(&self) -> Option<Instant> {
        let queue = self.queue.keys().next().map(|(t, _)| *t);
        let members = (0..self.slots.len())
            .filter(|&i| self.acting(i))
            .filter_map(|i| {
                self.slots[i]
                    .membership
                    .as_ref()
                    .and_then(Membership::poll_timeout)
            })
            .min();
        [queue, members, self.coordinator.poll_timeout()]
            .into_iter()
            .flatten()
            .min()
    }

    /// Runs until `deadline`, firing every delivery and timer at its instant.
    ///
    /// # Panics
    /// On a livelock (ten million steps without reaching the deadline).
    pub fn run_until(&mut self, deadline: Instant) {
        for _ in 0..MAX_STEPS {
            while self.step() {}
            match self.next_wakeup() {
                Some(t) if t <= deadline => {
                    self.now = self.now.max(t);
                    let now = self.now;
                    // Members before the coordinator: a member whose session
                    // ends now notices before the coordinator reassigns.
                    for i in 0..self.slots.len() {
                        if self.acting(i) {
                            let m = self.slots[i].membership.as_mut().expect("acting");
                            if m.poll_timeout().is_some_and(|t| t <= now) {
                                m.handle_timeout(now);
                            }
                        }
                    }
                    if self.coordinator.poll_timeout().is_some_and(|t| t <= now) {
                        self.coordinator.handle_timeout(now);
                    }
                }
                _ => {
                    self.now = self.now.max(deadline);
                    while self.step() {}
                    return;
                }
            }
        }
        panic!("group driver livelock at {}", self.now);
    }

    /// Runs for `d`.
    pub fn run_for(&mut self, d: Duration) {
        self.run_until(self.now + d);
    }

    /// Whether the group is settled: the coordinator's group is Stable,
    /// every acting member is Stable in its generation, and every partition
    /// of a subscribed topic has exactly one acting owner.
    pub fn is_stable(&self) -> bool {
        let acting: Vec<&Membership> = (0..self.slots.len())
            .filter(|&i| self.acting(i) && !self.slots[i].muted)
            .filter_map(|i| self.slots[i].membership.as_ref())
            .filter(|m| !matches!(m.state(), MembershipState::Left | MembershipState::Failed))
            .collect();
        let Some(first) = acting.first() else {
            return true;
        };
        let group = &first.config().group_id;
        let generation = self.coordinator.generation(group);
        if self.coordinator.state(group) != Some(GroupState::Stable) {
            return false;
        }
        if !acting
            .iter()
            .all(|m| m.state() == MembershipState::Stable && m.generation() == generation)
        {
            return false;
        }
        let subscribed: BTreeSet<&Topic> = acting
            .iter()
            .flat_map(|m| m.config().topics.iter())
            .collect();
        let all = self
            .topics
            .iter()
            .filter(|(t, _)| subscribed.contains(t))
            .flat_map(|(t, n)| (0..*n as i32).map(|p| TopicPartition::new(t.clone(), p)));
        all.into_iter().all(|tp| {
            self.owners
                .get(&tp)
                .is_some_and(|o| o.iter().filter(|&&i| self.acting(i)).count() == 1)
        })
    }

    /// Runs until [`is_stable`](Self::is_stable), checking after every
    /// wakeup, for at most `limit`.
    ///
    /// # Errors
    /// A description of the unsettled group if `limit` passes first.
    pub fn run_until_stable(&mut self, limit: Duration) -> Result<Instant, String> {
        let deadline = self.now + limit;
        loop {
            while self.step() {}
            if self.is_stable() {
                return Ok(self.now);
            }
            let next = self.next_wakeup().filter(|t| *t <= deadline);
            let Some(next) = next else {
                let states: Vec<String> = (0..self.slots.len())
                    .map(|i| {
                        format!(
                            "{i}: {:?}",
                            self.slots[i].membership.as_ref().map(Membership::state)
                        )
                    })
                    .collect();
                return Err(format!("not stable by {deadline}: members {states:?}"));
            };
            self.run_until(next);
        }
    }
}
