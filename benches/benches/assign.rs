//! Assignors at Kafka's large-group scale: 500 topics × 2,000 partitions
//! (1M partitions) over 2,000 members.
//!
//! `cargo bench -p ruckus-benches --bench assign`

// criterion_group! generates an undocumented public function.
#![allow(missing_docs)]

use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use ruckus_benches::{after_member_left, fresh_group, Subscriptions};
use ruckus_core::assign::{Assignor, CooperativeSticky, Range, RoundRobin, Sticky};

const TOPICS: usize = 500;
const PARTITIONS: u32 = 2_000;
const MEMBERS: usize = 2_000;

fn assignors(c: &mut Criterion) {
    let mut g = c.benchmark_group("assign_1M_partitions_2000_members");
    g.sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(8));

    for subs in [Subscriptions::Uniform, Subscriptions::NonUniform] {
        let fresh = fresh_group(TOPICS, PARTITIONS, MEMBERS, subs);
        let tag = match subs {
            Subscriptions::Uniform => "uniform",
            Subscriptions::NonUniform => "non_uniform",
        };
        let list: [(&str, &dyn Assignor); 4] = [
            ("range", &Range),
            ("round_robin", &RoundRobin),
            ("sticky", &Sticky),
            ("cooperative_sticky", &CooperativeSticky),
        ];
        for (name, a) in list {
            g.bench_function(format!("{name}/{tag}/fresh"), |b| {
                b.iter(|| a.assign(&fresh))
            });
        }
        for (name, a) in [
            ("sticky", &Sticky as &dyn Assignor),
            ("cooperative_sticky", &CooperativeSticky),
        ] {
            let rebalance = after_member_left(&fresh, a);
            g.bench_function(format!("{name}/{tag}/member_left"), |b| {
                b.iter(|| a.assign(&rebalance))
            });
        }
    }
    g.finish();
}

criterion_group!(benches, assignors);
criterion_main!(benches);
