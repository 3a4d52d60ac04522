//! Group coordinator throughput on one core: join phases, heartbeats and
//! offset commits against a Stable group of 1,000 members.
//!
//! `cargo bench -p ruckus-benches --bench coordinator`

// criterion_group! generates an undocumented public function.
#![allow(missing_docs)]

use std::time::Duration;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ruckus_core::coordinator::{
    Coordinator, CoordinatorConfig, HeartbeatRequest, JoinGroupRequest, OffsetCommitRequest,
    ProtocolMetadata, Response, SyncGroupRequest,
};
use ruckus_core::model::{
    ErrorCode, Generation, GroupId, Instant, MemberId, Offset, TopicPartition,
};

const MEMBERS: usize = 1_000;

struct Group {
    c: Coordinator,
    group: GroupId,
    members: Vec<MemberId>,
    generation: Generation,
    now: Instant,
}

fn join_req(group: &GroupId, member: &MemberId) -> JoinGroupRequest {
    JoinGroupRequest {
        group_id: group.clone(),
        member_id: member.clone(),
        instance_id: None,
        client_id: "bench".to_owned(),
        protocol_type: "consumer".to_owned(),
        protocols: vec![ProtocolMetadata {
            name: "range".to_owned(),
            metadata: Bytes::from_static(b"sub"),
        }],
        session_timeout: Duration::from_secs(30),
        rebalance_timeout: Duration::from_secs(60),
    }
}

fn drain(c: &mut Coordinator) -> usize {
    let mut n = 0;
    while c.poll_response().is_some() {
        n += 1;
    }
    while c.poll_event().is_some() {}
    n
}

/// Every member rejoins (the leader first, which starts the rebalance),
/// then every member syncs: one full rebalance.
fn rebalance(g: &mut Group) {
    let mut joined = Generation(0);
    for (i, m) in g.members.iter().enumerate() {
        g.c.handle_join_group(
            g.now,
            ruckus_core::coordinator::ReplyTo(i as u64),
            join_req(&g.group, m),
        );
    }
    while let Some((_, r)) = g.c.poll_response() {
        if let Response::JoinGroup(j) = r {
            assert_eq!(j.error, ErrorCode::None);
            joined = j.generation;
        }
    }
    g.generation = joined;
    let leader = g.c.leader(&g.group).expect("leader").clone();
    let order = std::iter::once(&leader).chain(g.members.iter().filter(|m| **m != leader));
    for m in order {
        let assignments = if *m == leader {
            g.members
                .iter()
                .map(|x| (x.clone(), Bytes::from_static(b"assignment")))
                .collect()
        } else {
            Vec::new()
        };
        let req = SyncGroupRequest {
            group_id: g.group.clone(),
            generation: joined,
            member_id: m.clone(),
            instance_id: None,
            protocol_type: None,
            protocol_name: None,
            assignments,
        };
        g.c.handle_sync_group(g.now, ruckus_core::coordinator::ReplyTo(0), req);
    }
    drain(&mut g.c);
}

fn stable_group() -> Group {
    let config = CoordinatorConfig {
        initial_rebalance_delay: Duration::ZERO,
        ..CoordinatorConfig::default()
    };
    let mut c = Coordinator::new(config);
    let group = GroupId::new("bench-group");
    let now = Instant::ZERO;
    let mut members = Vec::with_capacity(MEMBERS);
    for i in 0..MEMBERS {
        c.handle_join_group(
            now,
            ruckus_core::coordinator::ReplyTo(i as u64),
            join_req(&group, &MemberId::unknown()),
        );
        let Some((_, Response::JoinGroup(j))) = c.poll_response() else {
            panic!("no response")
        };
        assert_eq!(j.error, ErrorCode::MemberIdRequired);
        c.handle_join_group(
            now,
            ruckus_core::coordinator::ReplyTo(i as u64),
            join_req(&group, &j.member_id),
        );
        members.push(j.member_id);
    }
    c.handle_timeout(now);
    drain(&mut c);
    let mut g = Group {
        c,
        group,
        members,
        generation: Generation(0),
        now,
    };
    // The first join phase completed on the timer; finish with a rebalance
    // so that everyone is synced and the group is Stable.
    rebalance(&mut g);
    g
}

fn coordinator(c: &mut Criterion) {
    let mut grp = c.benchmark_group("coordinator_1000_members");
    grp.measurement_time(Duration::from_secs(5));

    let mut g = stable_group();
    grp.throughput(Throughput::Elements(MEMBERS as u64));
    grp.bench_function("rebalance_join_and_sync_per_member", |b| {
        b.iter(|| rebalance(&mut g))
    });

    let mut g = stable_group();
    let reqs: Vec<HeartbeatRequest> = g
        .members
        .iter()
        .map(|m| HeartbeatRequest {
            group_id: g.group.clone(),
            generation: g.generation,
            member_id: m.clone(),
            instance_id: None,
        })
        .collect();
    grp.bench_function("heartbeat", |b| {
        b.iter(|| {
            for r in &reqs {
                g.c.handle_heartbeat(g.now, ruckus_core::coordinator::ReplyTo(0), r.clone());
                let _ = g.c.poll_response();
            }
        })
    });

    let mut g = stable_group();
    let tps: Vec<TopicPartition> = (0..MEMBERS as i32)
        .map(|p| TopicPartition::new("orders", p))
        .collect();
    let mut offset = 0i64;
    grp.bench_function("offset_commit_one_partition", |b| {
        b.iter(|| {
            offset += 1;
            for (m, tp) in g.members.iter().zip(&tps) {
                let req = OffsetCommitRequest {
                    group_id: g.group.clone(),
                    generation: g.generation,
                    member_id: m.clone(),
                    instance_id: None,
                    offsets: vec![(tp.clone(), Offset(offset), String::new())],
                };
                g.c.handle_offset_commit(g.now, ruckus_core::coordinator::ReplyTo(0), req);
                let _ = g.c.poll_response();
            }
        })
    });
    grp.finish();
}

criterion_group!(benches, coordinator);
criterion_main!(benches);
