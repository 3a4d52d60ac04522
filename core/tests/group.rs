//! Members and a coordinator driven together on a virtual clock
//! (`ruckus_core::testing::GroupHarness`). Every test also asserts that no
//! partition ever had two acting owners.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use ruckus_core::assign::{Assignor, CooperativeSticky, Range, Sticky};
use ruckus_core::coordinator::{CoordinatorConfig, CoordinatorEvent, GroupState, RemovalReason};
use ruckus_core::membership::{LostReason, MembershipConfig, MembershipEvent};
use ruckus_core::model::{GroupId, InstanceId, Topic, TopicPartition};
use ruckus_core::testing::{GroupHarness, Logged};

const SESSION: Duration = Duration::from_secs(10);

fn harness(partitions: u32) -> GroupHarness {
    let config = CoordinatorConfig {
        initial_rebalance_delay: Duration::ZERO,
        ..CoordinatorConfig::default()
    };
    GroupHarness::new(config, [(Topic::new("t"), partitions)])
}

fn member(i: usize, assignor: Arc<dyn Assignor>) -> MembershipConfig {
    let mut c = MembershipConfig::new("g", format!("c{i}"), vec![Topic::new("t")], vec![assignor]);
    c.session_timeout = SESSION;
    c.rebalance_timeout = Duration::from_secs(30);
    c.heartbeat_interval = Duration::from_secs(1);
    c
}

fn group() -> GroupId {
    GroupId::new("g")
}

fn generation(h: &GroupHarness) -> i32 {
    h.coordinator()
        .generation(&group())
        .expect("group exists")
        .0
}

fn counts(h: &GroupHarness, n: usize) -> Vec<usize> {
    (0..n).map(|i| h.owned_by(i).len()).collect()
}

fn stable(h: &mut GroupHarness) {
    let r = h.run_until_stable(Duration::from_secs(120));
    assert!(r.is_ok(), "{}", r.unwrap_err());
    assert!(
        h.violations().is_empty(),
        "double ownership: {:?}",
        h.violations()
    );
}

#[test]
fn members_join_and_the_group_becomes_stable() {
    let mut h = harness(6);
    for i in 0..3 {
        h.add_member(member(i, Arc::new(Range)));
    }
    stable(&mut h);
    assert_eq!(counts(&h, 3), vec![2, 2, 2]);
    assert_eq!(h.coordinator().state(&group()), Some(GroupState::Stable));
    // Heartbeats keep it stable: a minute later nothing changed.
    let g = generation(&h);
    h.run_for(Duration::from_secs(60));
    assert_eq!(generation(&h), g);
    assert!(h.is_stable());
}

#[test]
fn a_member_leaving_rebalances_its_partitions_to_the_rest() {
    let mut h = harness(6);
    for i in 0..3 {
        h.add_member(member(i, Arc::new(Range)));
    }
    stable(&mut h);
    let g = generation(&h);
    h.leave(2);
    stable(&mut h);
    assert_eq!(counts(&h, 3), vec![3, 3, 0]);
    assert!(generation(&h) > g);
    assert!(h
        .member_events(2)
        .iter()
        .any(|(_, e)| *e == MembershipEvent::Left));
    assert!(h.log().iter().any(|(_, l)| matches!(
        l,
        Logged::Coordinator(CoordinatorEvent::MemberRemoved {
            reason: RemovalReason::Left,
            ..
        })
    )));
}

#[test]
fn a_member_that_stops_heartbeating_is_expired_and_the_rest_rebalance() {
    let mut h = harness(6);
    for i in 0..3 {
        h.add_member(member(i, Arc::new(Range)));
    }
    stable(&mut h);
    let muted_at = h.now();
    h.mute(2);
    h.run_for(SESSION * 2);
    stable(&mut h);
    assert_eq!(counts(&h, 3), vec![3, 3, 0]);
    let expired = h.log().iter().find_map(|(t, l)| match l {
        Logged::Coordinator(CoordinatorEvent::MemberRemoved {
            reason: RemovalReason::SessionExpired,
            ..
        }) => Some(*t),
        _ => None,
    });
    let expired = expired.expect("the coordinator expired the silent member");
    assert!(expired.saturating_duration_since(muted_at) <= SESSION + Duration::from_secs(1));
    // The silent member gave its partitions up on its own, no later than the coordinator.
    let lost = h.member_events(2).into_iter().find_map(|(t, e)| match e {
        MembershipEvent::Lost {
            reason: LostReason::SessionExpired,
            ..
        } => Some(t),
        _ => None,
    });
    assert!(lost.expect("member 2 declared its partitions lost") <= expired);
}

#[test]
fn a_static_member_restarting_within_its_session_causes_no_rebalance() {
    let mut h = harness(6);
    for i in 0..3 {
        let mut c = member(i, Arc::new(Range));
        c.instance_id = Some(InstanceId::new(format!("pod-{i}")));
        h.add_member(c);
    }
    stable(&mut h);
    let g = generation(&h);
    let before = h.owned_by(1);
    h.crash(1);
    h.run_for(SESSION / 2);
    h.restart(1);
    stable(&mut h);
    assert_eq!(generation(&h), g, "no new generation");
    assert_eq!(h.owned_by(1), before, "same partitions back");
    for i in [0, 2] {
        assert!(
            !h.member_events(i).iter().any(|(_, e)| matches!(
                e,
                MembershipEvent::Revoked { .. } | MembershipEvent::Lost { .. }
            )),
            "member {i} was disturbed"
        );
    }
    assert!(h.log().iter().any(|(_, l)| matches!(
        l,
        Logged::Coordinator(CoordinatorEvent::StaticMemberReplaced { .. })
    )));
}

#[test]
fn a_static_member_away_longer_than_its_session_is_replaced_by_a_rebalance() {
    let mut h = harness(6);
    for i in 0..2 {
        let mut c = member(i, Arc::new(Range));
        c.instance_id = Some(InstanceId::new(format!("pod-{i}")));
        h.add_member(c);
    }
    stable(&mut h);
    h.crash(1);
    h.run_for(SESSION * 2);
    stable(&mut h);
    assert_eq!(counts(&h, 2), vec![6, 0]);
}

/// KIP-429: a partition moving to a new member is revoked by its owner in
/// one rebalance and assigned in the next; no partition has two owners at
/// any instant, and partitions that stay are never revoked.
#[test]
fn cooperative_hand_off_takes_two_rounds_and_never_double_owns() {
    let mut h = harness(12);
    h.add_member(member(0, Arc::new(CooperativeSticky)));
    h.add_member(member(1, Arc::new(CooperativeSticky)));
    stable(&mut h);
    assert_eq!(counts(&h, 2), vec![6, 6]);
    let g = generation(&h);
    let kept: Vec<BTreeSet<TopicPartition>> = (0..2)
        .map(|i| h.owned_by(i).into_iter().collect())
        .collect();
    let skip = [h.member_events(0).len(), h.member_events(1).len()];

    h.add_member(member(2, Arc::new(CooperativeSticky)));
    stable(&mut h);
    assert_eq!(counts(&h, 3), vec![4, 4, 4]);
    assert_eq!(generation(&h), g + 2, "two rebalances: revoke, then assign");

    let assigned_to_new: Vec<(i32, Vec<TopicPartition>)> = h
        .member_events(2)
        .into_iter()
        .filter_map(|(_, e)| match e {
            MembershipEvent::Assigned {
                partitions,
                generation,
            } => Some((generation.0, partitions)),
            _ => None,
        })
        .collect();
    assert_eq!(
        assigned_to_new.len(),
        1,
        "the newcomer gets its partitions once: {assigned_to_new:?}"
    );
    assert_eq!(assigned_to_new[0].0, g + 2, "in the second round");
    for i in 0..2 {
        let revoked: BTreeSet<TopicPartition> = h.member_events(i)[skip[i]..]
            .iter()
            .flat_map(|(_, e)| match e {
                MembershipEvent::Revoked { partitions, .. } => partitions.clone(),
                _ => Vec::new(),
            })
            .collect();
        assert_eq!(revoked.len(), 2, "member {i} gives up exactly two");
        let now: BTreeSet<TopicPartition> = h.owned_by(i).into_iter().collect();
        assert_eq!(
            &now,
            &kept[i].difference(&revoked).cloned().collect(),
            "member {i} kept the rest untouched"
        );
    }
}

#[test]
fn eager_rebalance_revokes_everything_before_rejoining() {
    let mut h = harness(6);
    h.add_member(member(0, Arc::new(Sticky)));
    stable(&mut h);
    let skip = h.member_events(0).len();
    h.add_member(member(1, Arc::new(Sticky)));
    stable(&mut h);
    let revoked: usize = h.member_events(0)[skip..]
        .iter()
        .map(|(_, e)| match e {
            MembershipEvent::Revoked { partitions, .. } => partitions.len(),
            _ => 0,
        })
        .sum();
    assert_eq!(revoked, 6, "eager gives up all six");
    assert_eq!(counts(&h, 2), vec![3, 3]);
    // Sticky under eager still keeps member 0 on three of its old partitions.
    assert!(
        h.owned_by(0).iter().all(|tp| tp.partition.0 < 3),
        "{:?}",
        h.owned_by(0)
    );
}

/// The classic zombie: a member stalls past its session, the group moves
/// on, and when it wakes it must give its partitions up before acting.
#[test]
fn a_paused_member_resuming_after_its_session_gives_up_its_partitions_first() {
    let mut h = harness(4);
    h.add_member(member(0, Arc::new(Range)));
    h.add_member(member(1, Arc::new(Range)));
    stable(&mut h);
    h.pause(1);
    h.run_for(SESSION * 3);
    assert_eq!(counts(&h, 2)[0], 4, "member 0 took over");
    let before = h.member_events(1).len();
    h.resume(1);
    h.run_for(Duration::ZERO);
    let first = h.member_events(1).get(before).cloned().map(|(_, e)| e);
    assert!(
        matches!(
            first,
            Some(MembershipEvent::Lost {
                reason: LostReason::SessionExpired,
                ..
            })
        ),
        "first thing after waking: {first:?}"
    );
    stable(&mut h);
    assert_eq!(counts(&h, 2), vec![2, 2], "it rejoins as a new member");
}

#[test]
fn a_crashed_member_is_replaced_after_its_session() {
    let mut h = harness(6);
    for i in 0..3 {
        h.add_member(member(i, Arc::new(CooperativeSticky)));
    }
    stable(&mut h);
    h.crash(0);
    h.run_for(SESSION * 2);
    stable(&mut h);
    assert_eq!(counts(&h, 3), vec![0, 3, 3]);
}

/// Same calls, same history: the driver and the state machines are
/// deterministic.
#[test]
fn the_same_run_gives_the_same_history() {
    let run = || {
        let mut h = harness(12);
        for i in 0..4 {
            h.add_member(member(i, Arc::new(CooperativeSticky)));
        }
        h.run_for(Duration::from_secs(5));
        h.crash(1);
        h.mute(3);
        h.run_for(SESSION * 2);
        h.unmute(3);
        h.run_for(SESSION * 3);
        format!("{:?}", h.log())
    };
    let a = run();
    assert!(a.len() > 1000, "a real history");
    assert_eq!(a, run());
}
