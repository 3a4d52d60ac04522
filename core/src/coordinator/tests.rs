//! One test per coordinator rule, named for the behaviour.

use std::time::Duration;

use bytes::Bytes;

use super::*;
use crate::model::{
    ErrorCode, Generation, GroupId, InstanceId, Instant, MemberId, Offset, TopicPartition,
};

const SESSION: Duration = Duration::from_secs(10);
const REBALANCE: Duration = Duration::from_secs(30);

struct T {
    c: Coordinator,
    /// Responses produced but not yet looked at.
    inbox: Vec<(ReplyTo, Response)>,
    now: Instant,
    next: u64,
    group: GroupId,
}

fn t() -> T {
    t_with(Duration::ZERO)
}

fn t_with(initial_delay: Duration) -> T {
    let config = CoordinatorConfig {
        initial_rebalance_delay: initial_delay,
        ..CoordinatorConfig::default()
    };
    T {
        c: Coordinator::new(config),
        inbox: Vec::new(),
        now: Instant::ZERO,
        next: 0,
        group: GroupId::new("g"),
    }
}

fn protocols(names: &[&str]) -> Vec<ProtocolMetadata> {
    names
        .iter()
        .map(|n| ProtocolMetadata {
            name: (*n).to_owned(),
            metadata: Bytes::from(format!("meta-{n}")),
        })
        .collect()
}

impl T {
    fn reply(&mut self) -> ReplyTo {
        self.next += 1;
        ReplyTo(self.next)
    }

    fn join_req(&self, member: &MemberId, instance: Option<&str>) -> JoinGroupRequest {
        JoinGroupRequest {
            group_id: self.group.clone(),
            member_id: member.clone(),
            instance_id: instance.map(InstanceId::new),
            client_id: "client".to_owned(),
            protocol_type: "consumer".to_owned(),
            protocols: protocols(&["range"]),
            session_timeout: SESSION,
            rebalance_timeout: REBALANCE,
        }
    }

    fn send_join(&mut self, req: JoinGroupRequest) -> ReplyTo {
        let r = self.reply();
        self.c.handle_join_group(self.now, r, req);
        r
    }

    fn join(&mut self, member: &MemberId, instance: Option<&str>) -> ReplyTo {
        let req = self.join_req(member, instance);
        self.send_join(req)
    }

    /// A dynamic member's two-step join; returns its id and the pending reply.
    fn new_member(&mut self) -> (MemberId, ReplyTo) {
        let r = self.join(&MemberId::unknown(), None);
        let JoinGroupResponse {
            error, member_id, ..
        } = self.join_response(r);
        assert_eq!(error, ErrorCode::MemberIdRequired);
        let r = self.join(&member_id, None);
        (member_id, r)
    }

    /// Moves the clock forward by `d`, firing every timer on the way at
    /// its own instant.
    fn advance(&mut self, d: Duration) {
        let target = self.now + d;
        for _ in 0..10_000 {
            match self.c.poll_timeout() {
                Some(at) if at <= target => {
                    self.now = self.now.max(at);
                    self.c.handle_timeout(self.now);
                }
                _ => break,
            }
        }
        self.now = target;
    }

    fn drain(&mut self) {
        while let Some(r) = self.c.poll_response() {
            self.inbox.push(r);
        }
    }

    /// Every response not yet looked at.
    fn responses(&mut self) -> Vec<(ReplyTo, Response)> {
        self.drain();
        std::mem::take(&mut self.inbox)
    }

    /// The response to `r`, if it has come.
    fn response(&mut self, r: ReplyTo) -> Option<Response> {
        self.drain();
        let mine: Vec<usize> = (0..self.inbox.len())
            .filter(|&i| self.inbox[i].0 == r)
            .collect();
        assert!(mine.len() <= 1, "two responses to one request");
        mine.first().map(|&i| self.inbox.remove(i).1)
    }

    fn join_response(&mut self, r: ReplyTo) -> JoinGroupResponse {
        match self.response(r) {
            Some(Response::JoinGroup(j)) => j,
            other => panic!("expected a JoinGroup response, got {other:?}"),
        }
    }

    fn sync(
        &mut self,
        member: &MemberId,
        generation: Generation,
        assignments: Vec<(MemberId, Bytes)>,
    ) -> ReplyTo {
        let r = self.reply();
        let req = SyncGroupRequest {
            group_id: self.group.clone(),
            generation,
            member_id: member.clone(),
            instance_id: None,
            protocol_type: None,
            protocol_name: None,
            assignments,
        };
        self.c.handle_sync_group(self.now, r, req);
        r
    }

    fn sync_response(&mut self, r: ReplyTo) -> Option<SyncGroupResponse> {
        match self.response(r) {
            Some(Response::SyncGroup(s)) => Some(s),
            None => None,
            other => panic!("expected a SyncGroup response, got {other:?}"),
        }
    }

    fn heartbeat_as(
        &mut self,
        member: &MemberId,
        instance: Option<&str>,
        generation: Generation,
    ) -> ErrorCode {
        let r = self.reply();
        let req = HeartbeatRequest {
            group_id: self.group.clone(),
            generation,
            member_id: member.clone(),
            instance_id: instance.map(InstanceId::new),
        };
        self.c.handle_heartbeat(self.now, r, req);
        match self.response(r) {
            Some(Response::Heartbeat(h)) => h.error,
            other => panic!("expected a Heartbeat response, got {other:?}"),
        }
    }

    fn heartbeat(&mut self, member: &MemberId, generation: Generation) -> ErrorCode {
        self.heartbeat_as(member, None, generation)
    }

    fn commit_as(
        &mut self,
        member: &MemberId,
        instance: Option<&str>,
        generation: Generation,
        offset: i64,
    ) -> ErrorCode {
        let r = self.reply();
        let req = OffsetCommitRequest {
            group_id: self.group.clone(),
            generation,
            member_id: member.clone(),
            instance_id: instance.map(InstanceId::new),
            offsets: vec![(TopicPartition::new("t", 0), Offset(offset), String::new())],
        };
        self.c.handle_offset_commit(self.now, r, req);
        match self.response(r) {
            Some(Response::OffsetCommit(c)) => c.partitions[0].1,
            other => panic!("expected an OffsetCommit response, got {other:?}"),
        }
    }

    fn commit(&mut self, member: &MemberId, generation: Generation, offset: i64) -> ErrorCode {
        self.commit_as(member, None, generation, offset)
    }

    fn leave(&mut self, member: &MemberId) -> ErrorCode {
        let r = self.reply();
        let req = LeaveGroupRequest {
            group_id: self.group.clone(),
            members: vec![LeavingMember {
                member_id: member.clone(),
                instance_id: None,
            }],
        };
        self.c.handle_leave_group(self.now, r, req);
        match self.response(r) {
            Some(Response::LeaveGroup(l)) => l.members[0].1,
            other => panic!("expected a LeaveGroup response, got {other:?}"),
        }
    }

    fn state(&self) -> GroupState {
        self.c.state(&self.group).expect("group exists")
    }

    fn generation(&self) -> Generation {
        self.c.generation(&self.group).expect("group exists")
    }

    /// One dynamic member, joined and synced: the group is Stable.
    fn stable_one(&mut self) -> MemberId {
        let (m, r) = self.new_member();
        self.advance(Duration::ZERO);
        let j = self.join_response(r);
        assert_eq!(j.error, ErrorCode::None);
        let s = self.sync(
            &m,
            j.generation,
            vec![(m.clone(), Bytes::from_static(b"a0"))],
        );
        assert_eq!(self.sync_response(s).unwrap().error, ErrorCode::None);
        assert_eq!(self.state(), GroupState::Stable);
        m
    }

    /// Two dynamic members, Stable; returns (leader, follower).
    fn stable_two(&mut self) -> (MemberId, MemberId) {
        let a = self.stable_one();
        let (b, rb) = self.new_member();
        assert_eq!(self.state(), GroupState::PreparingRebalance);
        let ra = self.join(&a, None);
        let (ja, jb) = (self.join_response(ra), self.join_response(rb));
        assert_eq!((ja.error, jb.error), (ErrorCode::None, ErrorCode::None));
        let leader = ja.leader.clone();
        let follower = if leader == a { b.clone() } else { a.clone() };
        let sf = self.sync(&follower, ja.generation, vec![]);
        let sl = self.sync(
            &leader,
            ja.generation,
            vec![(a.clone(), "A".into()), (b.clone(), "B".into())],
        );
        assert!(self.sync_response(sl).is_some());
        let _ = sf;
        assert_eq!(self.state(), GroupState::Stable);
        (leader, follower)
    }
}

fn events(c: &mut Coordinator) -> Vec<CoordinatorEvent> {
    std::iter::from_fn(|| c.poll_event()).collect()
}

#[test]
fn new_dynamic_member_is_told_member_id_required() {
    let mut t = t();
    let r = t.join(&MemberId::unknown(), None);
    let j = t.join_response(r);
    assert_eq!(j.error, ErrorCode::MemberIdRequired);
    assert!(
        !j.member_id.is_unknown(),
        "the response carries the id to rejoin with"
    );
    assert!(
        t.c.members(&t.group).is_empty(),
        "a pending member is not a member yet"
    );
}

#[test]
fn generation_increments_when_the_join_phase_completes() {
    let mut t = t();
    let (m, r) = t.new_member();
    assert_eq!(t.state(), GroupState::PreparingRebalance);
    assert_eq!(t.generation(), Generation(0));
    t.advance(Duration::ZERO);
    let j = t.join_response(r);
    assert_eq!(
        (j.error, j.generation, &j.leader),
        (ErrorCode::None, Generation(1), &m)
    );
    assert_eq!(j.members.len(), 1, "the leader sees every member");
    assert_eq!(t.state(), GroupState::CompletingRebalance);
}

/// The seeds' coordinator bumped the generation on every state change.
#[test]
fn generation_changes_only_when_a_join_phase_completes() {
    // Over a busy history (joins, a leave, a session expiry, the group
    // emptying), the generation moves only on join-phase completion.
    let mut t = t();
    let (a, _b) = t.stable_two();
    t.leave(&a);
    t.advance(SESSION * 2);
    let mut last = Generation(0);
    let mut bumps = 0;
    for e in events(&mut t.c) {
        if let CoordinatorEvent::StateChanged {
            from,
            to,
            generation,
            ..
        } = e
        {
            if generation != last {
                assert_eq!(generation.0, last.0 + 1, "by one");
                assert_eq!(
                    from,
                    GroupState::PreparingRebalance,
                    "{from:?} -> {to:?} changed the generation"
                );
                assert!(matches!(
                    to,
                    GroupState::CompletingRebalance | GroupState::Empty
                ));
                bumps += 1;
            }
            last = generation;
        }
    }
    // a joins (1); b joins (2); a leaves and b, silent, expires inside the
    // same join phase, which then completes with nobody: Empty (3).
    assert_eq!(bumps, 3);
    // Direct check: walk a full cycle and watch the generation at each step.
    let mut t = super::tests::t();
    let (m, r) = t.new_member();
    let g0 = t.generation();
    t.advance(Duration::ZERO);
    let g1 = t.join_response(r).generation;
    assert_eq!(g1.0, g0.0 + 1, "join completion increments");
    let s = t.sync(&m, g1, vec![]);
    t.sync_response(s);
    assert_eq!(
        (t.state(), t.generation()),
        (GroupState::Stable, g1),
        "CompletingRebalance -> Stable keeps it"
    );
    assert_eq!(t.heartbeat(&m, g1), ErrorCode::None);
    assert_eq!(t.generation(), g1, "heartbeats keep it");
    assert_eq!(t.leave(&m), ErrorCode::None);
    assert_eq!(t.state(), GroupState::Empty);
    assert_eq!(
        t.generation().0,
        g1.0 + 1,
        "the emptied join phase completes and increments once"
    );
}

#[test]
fn state_changes_follow_kafkas_valid_transitions() {
    use GroupState::*;
    let all = [Empty, PreparingRebalance, CompletingRebalance, Stable, Dead];
    let valid = [
        (Empty, PreparingRebalance),
        (Stable, PreparingRebalance),
        (CompletingRebalance, PreparingRebalance),
        (PreparingRebalance, CompletingRebalance),
        (PreparingRebalance, Empty),
        (CompletingRebalance, Stable),
    ];
    for from in all {
        for to in all {
            let expect = to == Dead || valid.contains(&(from, to));
            assert_eq!(from.can_transition_to(to), expect, "{from:?} -> {to:?}");
        }
    }
    // And every transition a busy group makes is one of them.
    let mut t = t();
    let (a, _) = t.stable_two();
    t.leave(&a);
    t.advance(SESSION * 3);
    for e in events(&mut t.c) {
        if let CoordinatorEvent::StateChanged { from, to, .. } = e {
            assert!(from.can_transition_to(to), "{from:?} -> {to:?}");
        }
    }
}

#[test]
fn initial_rebalance_delay_waits_and_extends_for_new_members() {
    let mut t = t_with(Duration::from_secs(3));
    let (_a, ra) = t.new_member();
    t.advance(Duration::from_secs(1));
    let (_b, rb) = t.new_member();
    // First delay ends at 3 s; a member arrived, so it extends to 6 s.
    t.advance(Duration::from_millis(4_900));
    assert_eq!(
        t.state(),
        GroupState::PreparingRebalance,
        "still waiting at 5.9 s"
    );
    assert!(t.responses().is_empty());
    t.advance(Duration::from_millis(100));
    assert_eq!(t.state(), GroupState::CompletingRebalance, "done at 6 s");
    let _ = (ra, rb);
    assert_eq!(t.responses().len(), 2);
}

#[test]
fn initial_rebalance_delay_of_zero_completes_at_the_same_instant() {
    let mut t = t();
    let (_m, r) = t.new_member();
    assert_eq!(t.c.poll_timeout(), Some(Instant::ZERO));
    t.advance(Duration::ZERO);
    assert_eq!(t.join_response(r).error, ErrorCode::None);
}

#[test]
fn session_timeout_expiry_removes_the_member_and_rebalances() {
    let mut t = t();
    let (a, b) = t.stable_two();
    let g = t.generation();
    t.advance(SESSION / 2);
    assert_eq!(t.heartbeat(&a, g), ErrorCode::None);
    t.advance(SESSION / 2); // b has now been silent for a whole session
    assert!(!t.c.members(&t.group).contains(&b));
    assert_eq!(t.state(), GroupState::PreparingRebalance);
    assert_eq!(t.heartbeat(&a, g), ErrorCode::RebalanceInProgress);
    assert!(events(&mut t.c).iter().any(|e| matches!(e, CoordinatorEvent::MemberRemoved { reason: RemovalReason::SessionExpired, member, .. } if *member == b)));
}

#[test]
fn rebalance_timeout_removes_members_that_did_not_rejoin() {
    let mut t = t();
    let (a, b) = t.stable_two();
    let ra = t.join(&a, None); // leader rejoins: rebalance; b never rejoins but keeps heartbeating
    let g = t.generation();
    for _ in 0..5 {
        t.advance(Duration::from_secs(5));
        if t.state() == GroupState::PreparingRebalance {
            assert_eq!(t.heartbeat(&b, g), ErrorCode::RebalanceInProgress);
        }
    }
    t.advance(REBALANCE);
    assert!(
        !t.c.members(&t.group).contains(&b),
        "b did not rejoin within the rebalance timeout"
    );
    let j = t.join_response(ra);
    assert_eq!(
        (j.error, j.generation),
        (ErrorCode::None, Generation(g.0 + 1))
    );
    assert_eq!(t.heartbeat(&b, j.generation), ErrorCode::UnknownMemberId);
}

#[test]
fn join_phase_completes_early_once_everyone_rejoined() {
    let mut t = t();
    let (a, b) = t.stable_two();
    let ra = t.join(&a, None);
    assert_eq!(t.state(), GroupState::PreparingRebalance);
    let rb = t.join(&b, None);
    assert_eq!(
        t.state(),
        GroupState::CompletingRebalance,
        "no timer needed"
    );
    assert_eq!(t.join_response(ra).error, ErrorCode::None);
    assert_eq!(t.join_response(rb).error, ErrorCode::None);
}

#[test]
fn leave_group_triggers_a_rebalance() {
    let mut t = t();
    let (a, b) = t.stable_two();
    assert_eq!(t.leave(&b), ErrorCode::None);
    assert_eq!(t.state(), GroupState::PreparingRebalance);
    let g = t.generation();
    let ra = t.join(&a, None);
    let j = t.join_response(ra);
    assert_eq!((j.generation, j.members.len()), (Generation(g.0 + 1), 1));
}

#[test]
fn leave_group_of_an_unknown_member_is_unknown_member_id() {
    let mut t = t();
    t.stable_one();
    assert_eq!(t.leave(&MemberId::new("ghost")), ErrorCode::UnknownMemberId);
}

#[test]
fn last_member_leaving_empties_the_group() {
    let mut t = t();
    let m = t.stable_one();
    assert_eq!(t.leave(&m), ErrorCode::None);
    assert_eq!(t.state(), GroupState::Empty);
}

#[test]
fn heartbeat_during_preparing_rebalance_is_rebalance_in_progress() {
    let mut t = t();
    let (a, b) = t.stable_two();
    let g = t.generation();
    t.join(&a, None);
    assert_eq!(t.heartbeat(&b, g), ErrorCode::RebalanceInProgress);
}

#[test]
fn heartbeat_from_an_unknown_member_is_unknown_member_id() {
    let mut t = t();
    t.stable_one();
    let g = t.generation();
    assert_eq!(
        t.heartbeat(&MemberId::new("ghost"), g),
        ErrorCode::UnknownMemberId
    );
}

#[test]
fn heartbeat_with_another_generation_is_illegal_generation() {
    let mut t = t();
    let m = t.stable_one();
    let g = t.generation();
    assert_eq!(
        t.heartbeat(&m, Generation(g.0 - 1)),
        ErrorCode::IllegalGeneration
    );
    assert_eq!(
        t.heartbeat(&m, Generation(g.0 + 1)),
        ErrorCode::IllegalGeneration
    );
}

#[test]
fn heartbeat_between_join_and_sync_is_accepted() {
    let mut t = t();
    let (m, r) = t.new_member();
    t.advance(Duration::ZERO);
    let j = t.join_response(r);
    assert_eq!(t.state(), GroupState::CompletingRebalance);
    assert_eq!(t.heartbeat(&m, j.generation), ErrorCode::None);
}

#[test]
fn follower_sync_waits_for_the_leader_and_gets_its_assignment() {
    let mut t = t();
    let a = t.stable_one();
    let (b, rb) = t.new_member();
    let ra = t.join(&a, None);
    let ja = t.join_response(ra);
    let jb = t.join_response(rb);
    let (leader, follower) = if ja.leader == a {
        (a.clone(), b.clone())
    } else {
        (b.clone(), a.clone())
    };
    assert_eq!(jb.leader, ja.leader);
    let sf = t.sync(&follower, ja.generation, vec![]);
    assert!(t.sync_response(sf).is_none(), "waits for the leader");
    let sl = t.sync(&leader, ja.generation, vec![(follower.clone(), "F".into())]);
    let all = t.responses();
    let get = |r: ReplyTo| match all.iter().find(|(x, _)| *x == r) {
        Some((_, Response::SyncGroup(s))) => s.clone(),
        other => panic!("{other:?}"),
    };
    assert_eq!(get(sf).assignment, Bytes::from("F"));
    assert_eq!(
        get(sl).assignment,
        Bytes::new(),
        "a member the leader left out gets an empty assignment"
    );
}

#[test]
fn sync_during_preparing_rebalance_is_rebalance_in_progress() {
    let mut t = t();
    let (a, b) = t.stable_two();
    let g = t.generation();
    t.join(&a, None);
    let s = t.sync(&b, g, vec![]);
    assert_eq!(
        t.sync_response(s).unwrap().error,
        ErrorCode::RebalanceInProgress
    );
}

#[test]
fn sync_with_another_generation_is_illegal_generation() {
    let mut t = t();
    let m = t.stable_one();
    let s = t.sync(&m, Generation(99), vec![]);
    assert_eq!(
        t.sync_response(s).unwrap().error,
        ErrorCode::IllegalGeneration
    );
}

#[test]
fn rebalance_while_completing_fails_waiting_syncs() {
    let mut t = t();
    let a = t.stable_one();
    let (b, rb) = t.new_member();
    let ra = t.join(&a, None);
    let (ja, _) = (t.join_response(ra), t.join_response(rb));
    let follower = if ja.leader == a { b.clone() } else { a.clone() };
    let sf = t.sync(&follower, ja.generation, vec![]);
    // A third member arrives before the leader syncs.
    let (_c, _rc) = t.new_member();
    assert_eq!(
        t.sync_response(sf).unwrap().error,
        ErrorCode::RebalanceInProgress
    );
    assert_eq!(t.state(), GroupState::PreparingRebalance);
}

#[test]
fn follower_rejoining_with_same_metadata_when_stable_does_not_rebalance() {
    let mut t = t();
    let (_leader, follower) = t.stable_two();
    let g = t.generation();
    let r = t.join(&follower, None);
    let j = t.join_response(r);
    assert_eq!((j.error, j.generation), (ErrorCode::None, g));
    assert_eq!(t.state(), GroupState::Stable);
}

#[test]
fn leader_rejoining_when_stable_rebalances() {
    let mut t = t();
    let (leader, _follower) = t.stable_two();
    t.join(&leader, None);
    assert_eq!(t.state(), GroupState::PreparingRebalance);
}

#[test]
fn member_changing_its_protocols_rebalances() {
    let mut t = t();
    let (_leader, follower) = t.stable_two();
    let mut req = t.join_req(&follower, None);
    req.protocols = protocols(&["range", "roundrobin"]);
    t.send_join(req);
    assert_eq!(t.state(), GroupState::PreparingRebalance);
}

#[test]
fn join_with_no_common_protocol_is_inconsistent_group_protocol() {
    let mut t = t();
    t.stable_one();
    let mut req = t.join_req(&MemberId::unknown(), None);
    req.protocols = protocols(&["roundrobin"]);
    let r = t.send_join(req);
    assert_eq!(
        t.join_response(r).error,
        ErrorCode::InconsistentGroupProtocol
    );
    let mut req = t.join_req(&MemberId::unknown(), None);
    req.protocol_type = "connect".to_owned();
    let r = t.send_join(req);
    assert_eq!(
        t.join_response(r).error,
        ErrorCode::InconsistentGroupProtocol
    );
}

#[test]
fn protocol_is_chosen_by_vote_among_common_protocols() {
    let mut t = t();
    let mut req = t.join_req(&MemberId::unknown(), Some("s1"));
    req.protocols = protocols(&["cooperative-sticky", "range"]);
    let r1 = t.send_join(req);
    let mut req = t.join_req(&MemberId::unknown(), Some("s2"));
    req.protocols = protocols(&["range", "cooperative-sticky"]);
    let _r2 = t.send_join(req);
    let mut req = t.join_req(&MemberId::unknown(), Some("s3"));
    req.protocols = protocols(&["cooperative-sticky", "range"]);
    t.send_join(req);
    t.advance(Duration::ZERO);
    assert_eq!(
        t.join_response(r1).protocol_name.as_deref(),
        Some("cooperative-sticky")
    );
}

#[test]
fn session_timeout_outside_broker_bounds_is_invalid_session_timeout() {
    let mut t = t();
    let mut req = t.join_req(&MemberId::unknown(), None);
    req.session_timeout = Duration::from_secs(1);
    let r = t.send_join(req);
    assert_eq!(t.join_response(r).error, ErrorCode::InvalidSessionTimeout);
    assert!(
        t.c.state(&t.group).is_none(),
        "a refused join leaves no group behind"
    );
}

#[test]
fn join_with_an_unknown_member_id_is_unknown_member_id() {
    let mut t = t();
    let r = t.join(&MemberId::new("never-issued"), None);
    assert_eq!(t.join_response(r).error, ErrorCode::UnknownMemberId);
    t.stable_one();
    let r = t.join(&MemberId::new("never-issued"), None);
    assert_eq!(t.join_response(r).error, ErrorCode::UnknownMemberId);
}

#[test]
fn pending_member_that_never_rejoins_expires() {
    let mut t = t();
    let m = t.stable_one();
    let g = t.generation();
    let r = t.join(&MemberId::unknown(), None);
    let pending = t.join_response(r).member_id;
    t.advance(SESSION / 2);
    assert_eq!(t.heartbeat(&m, g), ErrorCode::None);
    t.advance(SESSION / 2);
    assert_eq!(
        t.state(),
        GroupState::Stable,
        "a pending member never triggered a rebalance"
    );
    let r = t.join(&pending, None);
    assert_eq!(
        t.join_response(r).error,
        ErrorCode::UnknownMemberId,
        "its id expired"
    );
}

fn stable_static(t: &mut T, instance: &str) -> MemberId {
    let r = t.join(&MemberId::unknown(), Some(instance));
    t.advance(Duration::ZERO);
    let j = t.join_response(r);
    assert_eq!(
        j.error,
        ErrorCode::None,
        "a new static member joins without MEMBER_ID_REQUIRED"
    );
    let s = t.sync(
        &j.member_id,
        j.generation,
        vec![(j.member_id.clone(), Bytes::from_static(b"mine"))],
    );
    assert_eq!(t.sync_response(s).unwrap().error, ErrorCode::None);
    j.member_id
}

#[test]
fn static_member_restarting_when_stable_replaces_its_id_without_rebalance() {
    let mut t = t();
    let old = stable_static(&mut t, "pod-0");
    let g = t.generation();
    let r = t.join(&MemberId::unknown(), Some("pod-0"));
    let j = t.join_response(r);
    assert_eq!(
        (j.error, j.generation),
        (ErrorCode::None, g),
        "same generation: no rebalance"
    );
    assert_ne!(j.member_id, old);
    assert_eq!(
        j.leader, old,
        "the old leader id is returned so the new member does not reassign"
    );
    assert_eq!(t.state(), GroupState::Stable);
    let s = t.sync(&j.member_id, g, vec![]);
    assert_eq!(
        t.sync_response(s).unwrap().assignment,
        Bytes::from_static(b"mine"),
        "keeps its assignment"
    );
}

#[test]
fn fenced_static_member_id_gets_fenced_instance_id() {
    let mut t = t();
    let old = stable_static(&mut t, "pod-0");
    let g = t.generation();
    let r = t.join(&MemberId::unknown(), Some("pod-0"));
    t.join_response(r);
    assert_eq!(
        t.heartbeat_as(&old, Some("pod-0"), g),
        ErrorCode::FencedInstanceId
    );
    assert_eq!(
        t.commit_as(&old, Some("pod-0"), g, 5),
        ErrorCode::FencedInstanceId
    );
    let r = t.join(&old, Some("pod-0"));
    assert_eq!(t.join_response(r).error, ErrorCode::FencedInstanceId);
}

#[test]
fn static_member_that_misses_a_join_phase_stays_until_its_session_expires() {
    let mut t = t();
    let s = stable_static(&mut t, "pod-0");
    let g = t.generation();
    let (_d, rd) = t.new_member();
    // pod-0 never rejoins but keeps heartbeating through the join phase.
    for _ in 0..(REBALANCE.as_secs() / 5 - 1) {
        t.advance(Duration::from_secs(5));
        assert_eq!(
            t.heartbeat_as(&s, Some("pod-0"), g),
            ErrorCode::RebalanceInProgress
        );
    }
    t.advance(Duration::from_secs(5)); // the rebalance timeout: the phase completes without pod-0
    assert!(
        t.c.members(&t.group).contains(&s),
        "static members are not removed by the join phase"
    );
    assert_eq!(t.join_response(rd).error, ErrorCode::None);
    t.advance(SESSION);
    assert!(
        !t.c.members(&t.group).contains(&s),
        "but its session does expire"
    );
}

#[test]
fn offset_commit_from_the_current_generation_is_stored() {
    let mut t = t();
    let m = t.stable_one();
    let g = t.generation();
    assert_eq!(t.commit(&m, g, 42), ErrorCode::None);
    assert_eq!(
        t.c.committed(&t.group, &TopicPartition::new("t", 0))
            .unwrap()
            .offset,
        Offset(42)
    );
}

#[test]
fn offset_commit_from_a_stale_generation_is_illegal_generation() {
    let mut t = t();
    let m = t.stable_one();
    let g = t.generation();
    assert_eq!(
        t.commit(&m, Generation(g.0 - 1), 42),
        ErrorCode::IllegalGeneration
    );
    assert!(
        t.c.committed(&t.group, &TopicPartition::new("t", 0))
            .is_none(),
        "nothing stored"
    );
}

#[test]
fn offset_commit_of_the_outgoing_generation_is_accepted_while_preparing_rebalance() {
    let mut t = t();
    let (a, b) = t.stable_two();
    let g = t.generation();
    t.join(&a, None); // rebalance starts; b commits on revoke before rejoining
    assert_eq!(t.state(), GroupState::PreparingRebalance);
    assert_eq!(t.commit(&b, g, 7), ErrorCode::None);
}

#[test]
fn offset_commit_while_completing_rebalance_is_rebalance_in_progress() {
    let mut t = t();
    let (m, r) = t.new_member();
    t.advance(Duration::ZERO);
    let j = t.join_response(r);
    assert_eq!(
        t.commit(&m, j.generation, 1),
        ErrorCode::RebalanceInProgress
    );
}

#[test]
fn offset_commit_from_an_unknown_member_is_unknown_member_id() {
    let mut t = t();
    t.stable_one();
    let g = t.generation();
    assert_eq!(
        t.commit(&MemberId::new("ghost"), g, 1),
        ErrorCode::UnknownMemberId
    );
}

#[test]
fn offset_commit_without_generation_only_when_empty() {
    let mut t = t();
    assert_eq!(
        t.commit(&MemberId::unknown(), Generation::NONE, 3),
        ErrorCode::None,
        "no group: a standalone commit"
    );
    assert_eq!(t.state(), GroupState::Empty);
    t.stable_one();
    assert_ne!(
        t.commit(&MemberId::unknown(), Generation::NONE, 4),
        ErrorCode::None,
        "a managed group refuses it"
    );
    assert_eq!(
        t.c.committed(&t.group, &TopicPartition::new("t", 0))
            .unwrap()
            .offset,
        Offset(3)
    );
}

#[test]
fn offset_commit_with_a_generation_for_an_unknown_group_is_illegal_generation() {
    let mut t = t();
    assert_eq!(
        t.commit(&MemberId::new("m"), Generation(3), 1),
        ErrorCode::IllegalGeneration
    );
}

#[test]
fn offset_fetch_returns_committed_offsets_and_minus_one_for_the_rest() {
    let mut t = t();
    let m = t.stable_one();
    let g = t.generation();
    t.commit(&m, g, 9);
    let r = t.reply();
    let req = OffsetFetchRequest {
        group_id: t.group.clone(),
        partitions: Some(vec![
            TopicPartition::new("t", 0),
            TopicPartition::new("t", 1),
        ]),
    };
    t.c.handle_offset_fetch(t.now, r, req);
    let Some(Response::OffsetFetch(f)) = t.response(r) else {
        panic!()
    };
    assert_eq!(f.partitions[0].1, Offset(9));
    assert_eq!(f.partitions[1].1, Offset::INVALID);
}

#[test]
fn unloading_a_group_answers_waiting_members_not_coordinator() {
    let mut t = t();
    let a = t.stable_one();
    let ra = t.join(&a, None);
    let (_b, rb) = t.new_member();
    let _ = ra;
    // Both wait in PreparingRebalance? a rejoined, b joined: the phase may be done.
    t.responses();
    let (_c, rc) = t.new_member();
    let _ = rb;
    t.c.unload_group(&t.group.clone());
    let resp = t.join_response(rc);
    assert_eq!(resp.error, ErrorCode::NotCoordinator);
    assert!(t.c.state(&t.group).is_none());
}

#[test]
fn only_an_empty_group_can_be_deleted() {
    let mut t = t();
    let m = t.stable_one();
    assert_eq!(
        t.c.delete_group(&t.group.clone()),
        Err(ErrorCode::NonEmptyGroup)
    );
    t.leave(&m);
    assert_eq!(t.c.delete_group(&t.group.clone()), Ok(()));
    assert_eq!(
        t.c.delete_group(&t.group.clone()),
        Err(ErrorCode::GroupIdNotFound)
    );
}

mod sequences {
    //! Arbitrary sequences of requests from a handful of members, with the
    //! clock moving between them, as quinn-proto fuzzes its state machine
    //! with `Operation` sequences. Whatever the order, the coordinator must
    //! not panic, must answer every request exactly once (unless the group
    //! was unloaded), must change state only along Kafka's transitions and
    //! must only ever increase the generation, one at a time.

    use super::*;
    use proptest::prelude::*;

    #[derive(Clone, Debug)]
    enum Op {
        JoinNew { static_id: Option<u8> },
        Rejoin { who: u8, change_protocols: bool },
        Sync { who: u8, stale: bool },
        Heartbeat { who: u8, stale: bool },
        Leave { who: u8 },
        Commit { who: u8, generation: i8 },
        Fetch,
        Advance { millis: u16 },
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            proptest::option::of(0u8..3).prop_map(|static_id| Op::JoinNew { static_id }),
            (0u8..6, any::<bool>()).prop_map(|(who, change_protocols)| Op::Rejoin {
                who,
                change_protocols
            }),
            (0u8..6, any::<bool>()).prop_map(|(who, stale)| Op::Sync { who, stale }),
            (0u8..6, any::<bool>()).prop_map(|(who, stale)| Op::Heartbeat { who, stale }),
            (0u8..6).prop_map(|who| Op::Leave { who }),
            (0u8..6, -2i8..4).prop_map(|(who, generation)| Op::Commit { who, generation }),
            Just(Op::Fetch),
            (0u16..15_000).prop_map(|millis| Op::Advance { millis }),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 1024, ..ProptestConfig::default() })]

        #[test]
        fn any_request_sequence_keeps_the_coordinator_consistent(ops in proptest::collection::vec(op(), 1..80), delay in prop_oneof![Just(0u64), Just(3_000)]) {
            let mut t = t_with(Duration::from_millis(delay));
            // Ids the coordinator handed out (some later fenced or expired).
            let mut known: Vec<(MemberId, Option<String>)> = Vec::new();
            let mut sent = std::collections::BTreeSet::new();
            let pick = |known: &Vec<(MemberId, Option<String>)>, who: u8| known.get(who as usize % known.len().max(1)).cloned();
            for op in ops {
                let g = t.c.generation(&t.group).unwrap_or(Generation(0));
                match op {
                    Op::JoinNew { static_id } => {
                        let inst = static_id.map(|i| format!("s{i}"));
                        let r = t.join(&MemberId::unknown(), inst.as_deref());
                        sent.insert(r);
                    }
                    Op::Rejoin { who, change_protocols } => {
                        if let Some((m, inst)) = pick(&known, who) {
                            let mut req = t.join_req(&m, inst.as_deref());
                            if change_protocols { req.protocols = protocols(&["range", "roundrobin"]); }
                            sent.insert(t.send_join(req));
                        }
                    }
                    Op::Sync { who, stale } => {
                        if let Some((m, _)) = pick(&known, who) {
                            let gen = if stale { Generation(g.0 - 1) } else { g };
                            let all = known.iter().map(|(id, _)| (id.clone(), Bytes::from_static(b"x"))).collect();
                            sent.insert(t.sync(&m, gen, all));
                        }
                    }
                    Op::Heartbeat { who, stale } => {
                        if let Some((m, inst)) = pick(&known, who) {
                            let gen = if stale { Generation(g.0 - 1) } else { g };
                            let _ = t.heartbeat_as(&m, inst.as_deref(), gen);
                        }
                    }
                    Op::Leave { who } => {
                        if let Some((m, _)) = pick(&known, who) { let _ = t.leave(&m); }
                    }
                    Op::Commit { who, generation } => {
                        let (m, inst) = pick(&known, who).unwrap_or((MemberId::unknown(), None));
                        let gen = if generation < 0 { Generation::NONE } else { Generation(g.0 - 1 + i32::from(generation)) };
                        let _ = t.commit_as(&m, inst.as_deref(), gen, 1);
                    }
                    Op::Fetch => {
                        let r = t.reply();
                        t.c.handle_offset_fetch(t.now, r, OffsetFetchRequest { group_id: t.group.clone(), partitions: None });
                        prop_assert!(matches!(t.response(r), Some(Response::OffsetFetch(_))));
                    }
                    Op::Advance { millis } => t.advance(Duration::from_millis(u64::from(millis))),
                }
                // Learn ids from every response (MEMBER_ID_REQUIRED and joins).
                t.drain();
                for (r, resp) in &t.inbox {
                    prop_assert!(sent.contains(r) || !matches!(resp, Response::JoinGroup(_) | Response::SyncGroup(_)), "a response to nothing");
                    if let Response::JoinGroup(j) = resp {
                        if !j.member_id.is_unknown() && !known.iter().any(|(m, _)| *m == j.member_id) {
                            let inst = j.member_id.as_str().split('-').next().filter(|p| p.starts_with('s')).map(str::to_owned);
                            known.push((j.member_id.clone(), inst));
                        }
                    }
                }
                for (r, _) in std::mem::take(&mut t.inbox) {
                    sent.remove(&r);
                }
            }
            // Transitions valid, generation monotone by ones.
            let mut last = Generation(0);
            for e in events(&mut t.c) {
                if let CoordinatorEvent::StateChanged { from, to, generation, .. } = e {
                    prop_assert!(from.can_transition_to(to), "{:?} -> {:?}", from, to);
                    prop_assert!(generation == last || generation.0 == last.0 + 1, "{:?} after {:?}", generation, last);
                    last = generation;
                }
            }
            // Everything parked is eventually answered once the group drains:
            // stop all traffic and let sessions and timers run out.
            t.advance(Duration::from_secs(3_600));
            t.drain();
            for (r, _) in std::mem::take(&mut t.inbox) {
                sent.remove(&r);
            }
            prop_assert!(sent.is_empty(), "never answered: {:?}", sent);
        }
    }
}
