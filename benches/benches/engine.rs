//! The consumer engine's hot path, in memory, no-op processing: fetch →
//! dispatch → complete → commit decision.
//!
//! `cargo bench -p ruckus-benches --bench engine`

// criterion_group! generates an undocumented public function.
#![allow(missing_docs)]

use std::time::Duration;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use ruckus_core::consumer::{
    Action, CommitStrategy, Consumer, ConsumerConfig, Ordering, StartPosition,
};
use ruckus_core::model::{
    Generation, Instant, MemberId, Offset, Record, Timestamp, Topic, TopicPartition,
};
use ruckus_core::rng::SplitMix64;

const BATCH: i64 = 10_000;
const PARTITIONS: i32 = 8;

/// `keys` distinct keys, round-robin over the offsets.
fn records(p: i32, from: i64, keys: &[Bytes]) -> Vec<Record> {
    let tp = TopicPartition::new("in", p);
    (from..from + BATCH)
        .map(|o| Record {
            topic_partition: tp.clone(),
            offset: Offset(o),
            key: Some(keys[o as usize % keys.len()].clone()),
            value: Some(Bytes::from_static(b"value")),
            headers: Vec::new(),
            timestamp: Timestamp(o),
        })
        .collect()
}

fn engine(ordering: Ordering, record_events: bool) -> Consumer {
    let mut cfg = ConsumerConfig::new("g", vec![Topic::new("in")]);
    cfg.ordering = ordering;
    cfg.record_events = record_events;
    cfg.max_buffered_per_partition = usize::MAX / 2;
    cfg.commit = CommitStrategy::Periodic {
        records: 1_000,
        interval: Duration::from_secs(1),
    };
    let mut c = Consumer::new(cfg, Box::new(SplitMix64::new(1)), Instant::ZERO).expect("valid");
    c.handle_joined(MemberId::new("m"), Generation(1));
    let pos = StartPosition {
        committed: None,
        log_start: Offset(0),
        log_end: Offset(0),
    };
    c.handle_assigned(
        Instant::ZERO,
        Generation(1),
        (0..PARTITIONS)
            .map(|p| (TopicPartition::new("in", p), pos))
            .collect(),
    );
    while c.poll_action().is_some() {}
    c
}

/// Feeds one batch per partition and completes everything the engine
/// dispatches, answering commits, until it is all done.
fn run(c: &mut Consumer, batches: Vec<Vec<Record>>) -> u64 {
    let now = Instant::ZERO;
    let mut done = 0;
    for b in batches {
        c.handle_fetched(now, b);
    }
    while let Some(a) = c.poll_action() {
        match a {
            Action::Process(d) => {
                c.handle_processed(now, d, Ok(()));
                done += 1;
            }
            Action::Commit(r) => c.handle_commit_result(now, r.id, Ok(())),
            _ => {}
        }
        while c.poll_event().is_some() {}
    }
    done
}

fn hot_path(cr: &mut Criterion) {
    let mut g = cr.benchmark_group("engine_hot_path");
    g.throughput(Throughput::Elements((BATCH * i64::from(PARTITIONS)) as u64));
    g.measurement_time(Duration::from_secs(5));
    let many: Vec<Bytes> = (0..1024).map(|k| Bytes::from(format!("key-{k}"))).collect();
    let one = vec![Bytes::from_static(b"key")];
    for (name, ordering, events, keys) in [
        (
            "partition_order/no_record_events",
            Ordering::Partition,
            false,
            &many,
        ),
        (
            "partition_order/record_events",
            Ordering::Partition,
            true,
            &many,
        ),
        (
            "key_order_1024_keys/no_record_events",
            Ordering::Key,
            false,
            &many,
        ),
        (
            "key_order_1_key/no_record_events",
            Ordering::Key,
            false,
            &one,
        ),
    ] {
        let mut c = engine(ordering, events);
        let mut next = 0i64;
        g.bench_function(name, |b| {
            b.iter_batched(
                || {
                    let batches = (0..PARTITIONS)
                        .map(|p| records(p, next, keys))
                        .collect::<Vec<_>>();
                    next += BATCH;
                    batches
                },
                |batches| assert_eq!(run(&mut c, batches), (BATCH * i64::from(PARTITIONS)) as u64),
                BatchSize::LargeInput,
            )
        });
    }
    g.finish();
}

criterion_group!(benches, hot_path);
criterion_main!(benches);
