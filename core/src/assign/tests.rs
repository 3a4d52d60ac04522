//! Property tests for the assignors. Each property names the assignors it
//! binds; the unit tests at the end pin the documented edge cases.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;

use super::*;
use crate::model::{Generation, InstanceId, Partition, Topic, TopicPartition};

fn eager() -> Vec<Box<dyn Assignor>> {
    vec![Box::new(Range), Box::new(RoundRobin), Box::new(Sticky)]
}

/// An arbitrary group: up to 5 topics of up to 12 partitions, up to 7
/// members with equal (`uniform`) or arbitrary subscriptions, and arbitrary
/// claims: valid, duplicated across members, on unknown partitions and on
/// unsubscribed topics, from one of three generations or none.
fn group(uniform: bool) -> impl Strategy<Value = GroupSubscription> {
    (1usize..=5, 0usize..=7)
        .prop_flat_map(move |(topics, members)| {
            let counts = proptest::collection::vec(0u32..=12, topics);
            let member = (
                proptest::collection::vec(any::<bool>(), topics),
                proptest::collection::vec((0..topics, 0i32..14), 0..16),
                proptest::option::of(1i32..=3),
                proptest::option::of(0u8..4),
            );
            (counts, proptest::collection::vec(member, members))
        })
        .prop_map(move |(counts, members)| {
            let names: Vec<Topic> = (0..counts.len())
                .map(|i| Topic::new(format!("t{i}")))
                .collect();
            let topics = names.iter().cloned().zip(counts).collect();
            let members = members
                .into_iter()
                .enumerate()
                .map(
                    |(i, (subs, owned, generation, instance))| MemberSubscription {
                        member_id: format!("m{i}").into(),
                        instance_id: instance.map(|k| InstanceId::new(format!("i{k}-{i}"))),
                        topics: names
                            .iter()
                            .zip(&subs)
                            .filter(|(_, s)| uniform || **s)
                            .map(|(t, _)| t.clone())
                            .collect(),
                        owned: owned
                            .into_iter()
                            .map(|(t, p)| TopicPartition {
                                topic: names[t].clone(),
                                partition: Partition(p),
                            })
                            .collect(),
                        generation: generation.map(Generation),
                    },
                )
                .collect();
            GroupSubscription { members, topics }
        })
}

/// Partitions that must be assigned: those of existing topics somebody subscribes to.
fn subscribed_partitions(g: &GroupSubscription) -> BTreeSet<TopicPartition> {
    let mut out = BTreeSet::new();
    for m in &g.members {
        for t in &m.topics {
            if let Some(&n) = g.topics.get(t) {
                for p in 0..n as i32 {
                    out.insert(TopicPartition {
                        topic: t.clone(),
                        partition: Partition(p),
                    });
                }
            }
        }
    }
    out
}

fn owners(a: &GroupAssignment) -> BTreeMap<TopicPartition, Vec<MemberId>> {
    let mut out: BTreeMap<TopicPartition, Vec<MemberId>> = BTreeMap::new();
    for (m, tps) in a {
        for tp in tps {
            out.entry(tp.clone()).or_default().push(m.clone());
        }
    }
    out
}

fn member<'a>(g: &'a GroupSubscription, id: &MemberId) -> &'a MemberSubscription {
    g.members
        .iter()
        .find(|m| &m.member_id == id)
        .expect("member in input")
}

/// The claims the sticky assignors must honour: from the highest
/// generation, subscribed, existing, uncontested. Written independently of
/// the implementation, from the rule in the module docs.
fn current_owners(g: &GroupSubscription) -> BTreeMap<TopicPartition, MemberId> {
    let key = |m: &MemberSubscription| m.generation.map_or(i64::MIN, |x| i64::from(x.0));
    let Some(max) = g.members.iter().map(key).max() else {
        return BTreeMap::new();
    };
    let mut claims: BTreeMap<TopicPartition, BTreeSet<MemberId>> = BTreeMap::new();
    for m in g.members.iter().filter(|m| key(m) == max) {
        for tp in &m.owned {
            let exists = g
                .topics
                .get(&tp.topic)
                .is_some_and(|&n| tp.partition.0 >= 0 && (tp.partition.0 as u32) < n);
            if exists && m.topics.contains(&tp.topic) {
                claims
                    .entry(tp.clone())
                    .or_default()
                    .insert(m.member_id.clone());
            }
        }
    }
    claims
        .into_iter()
        .filter(|(_, c)| c.len() == 1)
        .map(|(tp, c)| (tp, c.into_iter().next().unwrap()))
        .collect()
}

fn counts(a: &GroupAssignment) -> Vec<usize> {
    a.values().map(Vec::len).collect()
}

/// The next round's input: members claim what they were given.
fn next_round(g: &GroupSubscription, a: &GroupAssignment, generation: i32) -> GroupSubscription {
    let mut next = g.clone();
    for m in &mut next.members {
        m.owned = a.get(&m.member_id).cloned().unwrap_or_default();
        m.generation = Some(Generation(generation));
    }
    next
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Every subscribed partition goes to exactly one member, that member
    /// subscribes to its topic, every input member is in the output, and
    /// lists are sorted.
    #[test]
    fn every_subscribed_partition_assigned_exactly_once(g in prop_oneof![group(true), group(false)]) {
        let want = subscribed_partitions(&g);
        for a in eager() {
            let out = a.assign(&g);
            let ids: BTreeSet<_> = g.members.iter().map(|m| m.member_id.clone()).collect();
            prop_assert_eq!(out.keys().cloned().collect::<BTreeSet<_>>(), ids, "{}", a.name());
            let own = owners(&out);
            prop_assert_eq!(own.keys().cloned().collect::<BTreeSet<_>>(), want.clone(), "{}", a.name());
            for (tp, ms) in &own {
                prop_assert_eq!(ms.len(), 1, "{}: {} assigned to {:?}", a.name(), tp, ms);
                prop_assert!(member(&g, &ms[0]).topics.contains(&tp.topic), "{}: {} to a non-subscriber", a.name(), tp);
            }
            for tps in out.values() {
                prop_assert!(tps.windows(2).all(|w| w[0] < w[1]), "{}: unsorted", a.name());
            }
        }
    }

    /// The output does not depend on the order members arrive in.
    #[test]
    fn assignment_ignores_member_order(g in prop_oneof![group(true), group(false)], seed in any::<u64>()) {
        let mut shuffled = g.clone();
        // A deterministic shuffle from the seed (Fisher–Yates over an LCG).
        let mut x = seed | 1;
        for i in (1..shuffled.members.len()).rev() {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            shuffled.members.swap(i, (x >> 33) as usize % (i + 1));
        }
        for a in eager().into_iter().chain([Box::new(CooperativeSticky) as Box<dyn Assignor>]) {
            prop_assert_eq!(a.assign(&g), a.assign(&shuffled), "{}", a.name());
        }
    }

    /// With equal subscriptions, round-robin and sticky give every member
    /// the same count give or take one; range does so topic by topic.
    #[test]
    fn equal_subscriptions_balance_within_one(g in group(true)) {
        for a in [&RoundRobin as &dyn Assignor, &Sticky] {
            let c = counts(&a.assign(&g));
            if let (Some(max), Some(min)) = (c.iter().max(), c.iter().min()) {
                prop_assert!(max - min <= 1, "{}: counts {:?}", a.name(), c);
            }
        }
        let out = Range.assign(&g);
        for t in g.topics.keys() {
            let per: Vec<usize> = out.values().map(|tps| tps.iter().filter(|tp| &tp.topic == t).count()).collect();
            if let (Some(max), Some(min)) = (per.iter().max(), per.iter().min()) {
                prop_assert!(max - min <= 1, "range, topic {}: {:?}", t, per);
            }
        }
    }

    /// With unequal subscriptions, sticky is balanced in Kafka's sense: no
    /// partition could move to another subscriber of its topic holding two
    /// or more fewer partitions than its owner.
    #[test]
    fn sticky_unequal_subscriptions_have_no_improving_move(g in group(false)) {
        let out = Sticky.assign(&g);
        for (owner, tps) in &out {
            for tp in tps {
                for other in g.members.iter().filter(|m| m.topics.contains(&tp.topic)) {
                    prop_assert!(tps.len() < out[&other.member_id].len() + 2,
                        "{} on {} ({}) could move to {} ({})", tp, owner, tps.len(), other.member_id, out[&other.member_id].len());
                }
            }
        }
    }

    /// Sticky keeps as many current claims as balance allows: with equal
    /// subscriptions, `Σ min(owned, ⌊P/N⌋) + min(#{owned > ⌊P/N⌋}, P mod N)`.
    /// Stale and contested claims are not current and need not be kept.
    #[test]
    fn sticky_moves_only_what_balance_requires(g in group(true)) {
        let out = Sticky.assign(&g);
        let current = current_owners(&g);
        let n = out.len();
        if n == 0 { return Ok(()); }
        let total = subscribed_partitions(&g).len();
        let (min_q, extra) = (total / n, total % n);
        let mut owned: BTreeMap<&MemberId, usize> = BTreeMap::new();
        for m in current.values() { *owned.entry(m).or_default() += 1; }
        let bound: usize = owned.values().map(|&o| o.min(min_q)).sum::<usize>()
            + owned.values().filter(|&&o| o > min_q).count().min(extra);
        let kept = current.iter().filter(|(tp, m)| out[*m].contains(tp)).count();
        prop_assert_eq!(kept, bound);
    }

    /// Unequal subscriptions: an assignment that is already complete and
    /// balanced is returned unchanged.
    #[test]
    fn sticky_keeps_a_balanced_assignment(g in group(false)) {
        let first = Sticky.assign(&g);
        let again = Sticky.assign(&next_round(&g, &first, 7));
        prop_assert_eq!(first, again);
    }

    /// Cooperative: a partition whose current owner would change is given to
    /// nobody this round; everything else is as sticky assigns it; and with
    /// equal subscriptions the follow-up round (owners having revoked)
    /// completes the assignment without moving anything again.
    #[test]
    fn cooperative_withholds_moving_partitions_for_one_round(g in prop_oneof![group(true), group(false)]) {
        let sticky = owners(&Sticky.assign(&g));
        let coop = CooperativeSticky.assign(&g);
        let coop_owners = owners(&coop);
        let current = current_owners(&g);
        for (tp, to) in &sticky {
            let moving = current.get(tp).is_some_and(|from| from != &to[0]);
            if moving {
                prop_assert!(!coop_owners.contains_key(tp), "{} handed over in one round", tp);
            } else {
                prop_assert_eq!(coop_owners.get(tp), Some(to), "{} differs from sticky", tp);
            }
        }
        let uniform = g.members.windows(2).all(|w| w[0].topics == w[1].topics);
        if uniform {
            let round2 = CooperativeSticky.assign(&next_round(&g, &coop, 100));
            let own2 = owners(&round2);
            prop_assert_eq!(own2.keys().cloned().collect::<BTreeSet<_>>(), subscribed_partitions(&g));
            for (m, tps) in &coop {
                for tp in tps {
                    prop_assert_eq!(&own2[tp][0], m, "{} moved again in round two", tp);
                }
            }
        }
    }

    /// Cooperative with unequal subscriptions: balance is path-dependent (as
    /// in Kafka's general sticky assignor), so a follow-up round may find a
    /// better balance and revoke more; but rounds converge to a complete
    /// assignment, and no round ever hands a partition straight from one
    /// owner to another.
    #[test]
    fn cooperative_rounds_converge_without_direct_hand_over(g in group(false)) {
        let mut g = g;
        let want = subscribed_partitions(&g);
        for round in 0..12 {
            let before = current_owners(&g);
            let out = CooperativeSticky.assign(&g);
            let after = owners(&out);
            for (tp, from) in &before {
                if let Some(to) = after.get(tp) {
                    prop_assert_eq!(&to[0], from, "round {}: {} handed over directly", round, tp);
                }
            }
            if after.keys().cloned().collect::<BTreeSet<_>>() == want && before.len() == want.len() {
                return Ok(());
            }
            g = next_round(&g, &out, 100 + round);
        }
        prop_assert!(false, "no convergence in 12 rounds");
    }

    /// Contested (two current claimants) and stale (older generation)
    /// claims are not ownership: cooperative never withholds them.
    #[test]
    fn contested_and_stale_claims_are_unowned(g in prop_oneof![group(true), group(false)]) {
        let current = current_owners(&g);
        let coop = owners(&CooperativeSticky.assign(&g));
        for tp in subscribed_partitions(&g) {
            if !current.contains_key(&tp) {
                prop_assert!(coop.contains_key(&tp), "{} unowned but withheld", tp);
            }
        }
    }
}

fn topics(spec: &[(&str, u32)]) -> BTreeMap<Topic, u32> {
    spec.iter().map(|(t, n)| (Topic::new(t), *n)).collect()
}

#[test]
fn no_members_gives_an_empty_assignment() {
    let g = GroupSubscription {
        members: vec![],
        topics: topics(&[("a", 10)]),
    };
    for a in eager()
        .into_iter()
        .chain([Box::new(CooperativeSticky) as Box<dyn Assignor>])
    {
        assert!(a.assign(&g).is_empty(), "{}", a.name());
    }
}

/// The seeds' range assignor divided by the subscriber count of every topic,
/// including topics nobody subscribed to.
#[test]
fn range_skips_topics_with_no_subscriber() {
    let g = GroupSubscription {
        members: vec![MemberSubscription::new("m", [Topic::new("a")])],
        topics: topics(&[("a", 3), ("b", 5)]),
    };
    let out = Range.assign(&g);
    assert_eq!(out[&MemberId::new("m")].len(), 3);
}

#[test]
fn range_gives_contiguous_ranges_extra_to_first_members() {
    let g = GroupSubscription {
        members: vec![
            MemberSubscription::new("b", [Topic::new("t")]),
            MemberSubscription::new("a", [Topic::new("t")]),
        ],
        topics: topics(&[("t", 5)]),
    };
    let out = Range.assign(&g);
    let ps = |m: &str| {
        out[&MemberId::new(m)]
            .iter()
            .map(|tp| tp.partition.0)
            .collect::<Vec<_>>()
    };
    assert_eq!(ps("a"), vec![0, 1, 2]);
    assert_eq!(ps("b"), vec![3, 4]);
}

#[test]
fn static_members_sort_first_by_instance_id() {
    let mut s = MemberSubscription::new("zzz", [Topic::new("t")]);
    s.instance_id = Some(InstanceId::new("a"));
    let g = GroupSubscription {
        members: vec![MemberSubscription::new("aaa", [Topic::new("t")]), s],
        topics: topics(&[("t", 2)]),
    };
    let out = Range.assign(&g);
    assert_eq!(
        out[&MemberId::new("zzz")],
        vec![TopicPartition::new("t", 0)]
    );
}

#[test]
fn round_robin_skips_members_not_subscribed() {
    let g = GroupSubscription {
        members: vec![
            MemberSubscription::new("a", [Topic::new("x"), Topic::new("y")]),
            MemberSubscription::new("b", [Topic::new("y")]),
        ],
        topics: topics(&[("x", 2), ("y", 2)]),
    };
    let out = RoundRobin.assign(&g);
    assert_eq!(out[&MemberId::new("a")].len(), 3);
    assert_eq!(out[&MemberId::new("b")].len(), 1);
}

#[test]
fn sticky_keeps_partitions_when_a_member_joins() {
    let mut a = MemberSubscription::new("a", [Topic::new("t")]);
    a.owned = (0..6).map(|p| TopicPartition::new("t", p)).collect();
    a.generation = Some(Generation(3));
    let g = GroupSubscription {
        members: vec![a, MemberSubscription::new("b", [Topic::new("t")])],
        topics: topics(&[("t", 6)]),
    };
    let out = Sticky.assign(&g);
    assert_eq!(out[&MemberId::new("a")].len(), 3);
    assert!(
        out[&MemberId::new("a")].iter().all(|tp| tp.partition.0 < 3),
        "a keeps its first three"
    );
}

#[test]
fn sticky_ignores_a_zombie_claim_from_an_older_generation() {
    let mut current = MemberSubscription::new("a", [Topic::new("t")]);
    current.owned = vec![TopicPartition::new("t", 0)];
    current.generation = Some(Generation(5));
    let mut zombie = MemberSubscription::new("b", [Topic::new("t")]);
    zombie.owned = vec![TopicPartition::new("t", 0), TopicPartition::new("t", 1)];
    zombie.generation = Some(Generation(4));
    let g = GroupSubscription {
        members: vec![current, zombie],
        topics: topics(&[("t", 2)]),
    };
    let out = CooperativeSticky.assign(&g);
    assert_eq!(out[&MemberId::new("a")], vec![TopicPartition::new("t", 0)]);
    assert_eq!(out[&MemberId::new("b")], vec![TopicPartition::new("t", 1)]);
}

#[test]
fn by_name_knows_kafkas_protocol_names() {
    for n in ["range", "roundrobin", "sticky", "cooperative-sticky"] {
        assert_eq!(by_name(n).map(|a| a.name().to_owned()), Some(n.to_owned()));
    }
    assert!(by_name("nope").is_none());
    assert_eq!(
        by_name("cooperative-sticky").unwrap().protocol(),
        RebalanceProtocol::Cooperative
    );
}
