//! The reference consumer over rdkafka against librdkafka's mock cluster
//! (in process, no Docker), judged by `ruckus-chaos`'s checkers. Runs are
//! in wall-clock time, so message counts are small.

// Progress of each run is reported on stderr.
#![allow(clippy::print_stderr)]

use std::time::Duration;

use rdkafka::types::RDKafkaApiKey;
use ruckus_chaos::check::Invariant;
use ruckus_chaos::duration::Dur;
use ruckus_core::consumer::CommitStrategy;
use ruckus_core::driver::{Transport, TransportEvent};
use ruckus_core::events::Event;
use ruckus_core::model::{ErrorCode, Topic, TopicPartition};
use ruckus_history::fault::{Api, BrokerRef, ErrorName, Fault, FaultRecord, Target};
use ruckus_history::record::{BrokerEvent, Entry, Record};
use ruckus_integration::harness::*;
use ruckus_integration::mock::MockKafka;
use ruckus_integration::transport::{GroupProtocol, KafkaConfig, RdKafkaTransport};

/// Records `fault` (on `targets`) as applied now: these tests drive the
/// mock cluster by hand, the way the scenario runner's `Real::apply` does.
fn applied(run: &Run, fault: impl FnOnce(Dur) -> Fault, targets: Vec<Target>) {
    let at = Dur(Duration::from_millis(run.now().as_millis()));
    run.fault(FaultRecord::new(fault(at), targets));
}

fn errors(api: Api, error: ErrorCode, count: u32) -> impl FnOnce(Dur) -> Fault {
    move |at| Fault::Errors {
        at,
        api,
        error: ErrorName(error),
        count,
    }
}

fn broker_crash(b: u32) -> impl FnOnce(Dur) -> Fault {
    move |at| Fault::CrashBroker {
        at,
        broker: BrokerRef::Id(b),
        restart_after: Some(Dur::secs(3)),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn steady_state_on_the_mock_cluster_loses_nothing() {
    let mut run = Run::new(3, consumer_config());
    for i in 0..3 {
        run.start_member(i);
    }
    run.produce_burst(2_000, 0).await.expect("produced");
    let (h, v) = run.finish("steady_state", Duration::from_secs(60)).await;
    assert_holds("steady_state", &h, &v);
    assert_eq!(count(&h, |e| matches!(e, Event::Produced { .. })), 2_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_crash_on_the_mock_cluster_loses_nothing() {
    let mut run = Run::new(3, consumer_config());
    for i in 0..3 {
        run.start_member(i);
    }
    let produce = run.produce_burst(3_000, 0);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    run.crash_member(1);
    produce.await.expect("produced");
    let (h, v) = run.finish("member_crash", Duration::from_secs(60)).await;
    assert_holds("member_crash", &h, &v);
    assert_eq!(
        h.iter()
            .filter(|e| matches!(e.record, Record::Fault(_)))
            .count(),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offset_commit_error_burst_on_the_mock_cluster_loses_nothing() {
    let mut run = Run::new(3, consumer_config());
    for i in 0..3 {
        run.start_member(i);
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    run.mock()
        .request_errors(
            RDKafkaApiKey::OffsetCommit,
            &[ErrorCode::RebalanceInProgress; 3],
        )
        .expect("errors");
    applied(
        &run,
        errors(Api::OffsetCommit, ErrorCode::RebalanceInProgress, 3),
        vec![],
    );
    run.produce_burst(2_000, 0).await.expect("produced");
    let (h, v) = run.finish("commit_errors", Duration::from_secs(60)).await;
    assert_holds("commit_errors", &h, &v);
    assert!(
        count(&h, |e| matches!(e, Event::CommitFailed { .. })) > 0,
        "no commit failed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_records_are_dead_lettered_on_the_mock_cluster() {
    let mut run = Run::new(3, consumer_config());
    for i in 0..2 {
        run.start_member(i);
    }
    run.produce_burst(1_000, 50).await.expect("produced");
    let (h, v) = run.finish("poison", Duration::from_secs(60)).await;
    assert_holds("poison", &h, &v);
    assert!(count(&h, |e| matches!(e, Event::DeadLettered { .. })) >= 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_known_bad_auto_commit_is_caught_losing_messages_on_the_mock_cluster() {
    let mut config = consumer_config();
    config.commit = CommitStrategy::KnownBadAutoCommitFetched {
        interval: Duration::from_millis(100),
    };
    let mut run = Run::new(3, config);
    for i in 0..2 {
        run.start_member(i);
    }
    let produce = run.produce_burst(4_000, 0);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    run.crash_member(0);
    produce.await.expect("produced");
    let (_, v) = run
        .finish("known_bad_auto_commit", Duration::from_secs(60))
        .await;
    let found: Vec<Invariant> = v.iter().map(|x| x.invariant).collect();
    eprintln!("known-bad auto-commit: violations {found:?}");
    assert!(
        found.contains(&Invariant::ZeroLoss),
        "the known-bad auto-commit was not caught losing messages: {v:?}"
    );
}

/// Runs three members, produces `messages` (every `poison_every`-th
/// poison), applies `fault` 1.5 s in, and judges the history.
async fn with_fault(
    name: &str,
    messages: usize,
    poison_every: usize,
    fault: impl FnOnce(&Run) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + '_>>,
) -> Vec<Entry> {
    let mut run = Run::new(3, consumer_config());
    for i in 0..3 {
        run.start_member(i);
    }
    let produce = run.produce_burst(messages, poison_every);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    fault(&run).await;
    produce.await.expect("produced");
    let (h, v) = run.finish(name, Duration::from_secs(90)).await;
    assert_holds(name, &h, &v);
    h
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_broker_down_for_3s_on_the_mock_cluster_loses_nothing() {
    with_fault("leader_down", 3_000, 0, |run| {
        Box::pin(async move {
            run.mock().broker_down(1).expect("down");
            applied(run, broker_crash(0), vec![Target::Broker(0)]);
            tokio::time::sleep(Duration::from_secs(3)).await;
            run.mock().broker_up(1).expect("up");
        })
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_coordinator_move_on_the_mock_cluster_loses_nothing() {
    with_fault("coordinator_move", 3_000, 0, |run| {
        Box::pin(async move {
            run.mock().move_coordinator(GROUP, 3).expect("moved");
            run.broker_event(BrokerEvent::CoordinatorMoved { broker: 2 });
        })
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeat_errors_forcing_a_rejoin_on_the_mock_cluster_lose_nothing() {
    let h = with_fault("heartbeat_errors", 3_000, 0, |run| {
        Box::pin(async move {
            run.mock()
                .request_errors(
                    RDKafkaApiKey::Heartbeat,
                    &[ErrorCode::RebalanceInProgress; 4],
                )
                .expect("errors");
            applied(
                run,
                errors(Api::Heartbeat, ErrorCode::RebalanceInProgress, 4),
                vec![],
            );
            tokio::time::sleep(Duration::from_secs(1)).await;
        })
    })
    .await;
    let joins = count(&h, |e| matches!(e, Event::Joined { .. }));
    assert!(joins > 3, "no member rejoined ({joins} joins)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_brokers_down_for_3s_on_the_mock_cluster_loses_nothing() {
    with_fault("all_brokers_down", 3_000, 0, |run| {
        Box::pin(async move {
            for b in run.mock().broker_ids() {
                run.mock().broker_down(b).expect("down");
            }
            for b in 0..3 {
                applied(run, broker_crash(b), vec![Target::Broker(b)]);
            }
            tokio::time::sleep(Duration::from_secs(3)).await;
            for b in run.mock().broker_ids() {
                run.mock().broker_up(b).expect("up");
            }
        })
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letter_produce_errors_on_the_mock_cluster_lose_nothing() {
    let h = with_fault("dead_letter_errors", 2_000, 40, |run| {
        Box::pin(async move {
            run.mock()
                .request_errors(RDKafkaApiKey::Produce, &[ErrorCode::NotEnoughReplicas; 12])
                .expect("errors");
            applied(
                run,
                errors(Api::Produce, ErrorCode::NotEnoughReplicas, 12),
                vec![],
            );
        })
    })
    .await;
    assert!(count(&h, |e| matches!(e, Event::DeadLettered { .. })) >= 40);
}

/// A run whose members speak KIP-848 (`group.protocol=consumer`): the
/// mock cluster assigns, members reconcile incrementally.
fn kip848_run() -> Run {
    let mut run = Run::new(3, consumer_config());
    run.mock()
        .consumer_group_timeouts(Duration::from_millis(2_000), Duration::from_millis(100))
        .expect("timeouts");
    run.membership.protocol = GroupProtocol::Consumer;
    run
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kip848_steady_state_on_the_mock_cluster_loses_nothing() {
    let mut run = kip848_run();
    for i in 0..3 {
        run.start_member(i);
    }
    run.produce_burst(2_000, 0).await.expect("produced");
    let (h, v) = run
        .finish("kip848_steady_state", Duration::from_secs(60))
        .await;
    assert_holds("kip848_steady_state", &h, &v);
    let owners: std::collections::BTreeSet<&str> = h
        .iter()
        .filter(|e| matches!(e.event(), Some(Event::Assigned { .. })))
        .map(|e| e.host.as_str())
        .collect();
    assert_eq!(
        owners.len(),
        3,
        "the broker did not assign to every member: {owners:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kip848_member_crash_on_the_mock_cluster_loses_nothing() {
    let mut run = kip848_run();
    for i in 0..3 {
        run.start_member(i);
    }
    // 3,000 messages over about 3 s, the crash in the middle.
    let produce = run.produce(Workload {
        messages: 3_000,
        batch: 100,
        interval: Duration::from_millis(100),
        poison_every: 0,
        payloads: None,
    });
    tokio::time::sleep(Duration::from_millis(1500)).await;
    run.crash_member(1);
    produce.await.expect("produced");
    let (h, v) = run
        .finish("kip848_member_crash", Duration::from_secs(60))
        .await;
    assert_holds("kip848_member_crash", &h, &v);
    // The survivors took the crashed member's partitions over.
    let crash = h
        .iter()
        .find(|e| matches!(e.record, Record::Fault(_)))
        .map(|e| e.at)
        .expect("the crash is in the history");
    let taken_over = h.iter().any(|e| {
        e.at > crash && e.host != "consumer-1" && matches!(e.event(), Some(Event::Assigned { .. }))
    });
    assert!(
        taken_over,
        "no survivor was assigned partitions after the crash"
    );
}

/// Polls `t` for `within`, returning the group events it reported.
async fn group_events(t: &mut RdKafkaTransport, within: Duration) -> Vec<TransportEvent> {
    let deadline = tokio::time::Instant::now() + within;
    let mut out = Vec::new();
    while tokio::time::Instant::now() < deadline {
        for e in t.poll(Duration::from_millis(50)).await.expect("polled") {
            if !matches!(e, TransportEvent::Records(_)) {
                out.push(e);
            }
        }
    }
    out
}

fn assigned(events: &[TransportEvent]) -> Vec<TopicPartition> {
    events
        .iter()
        .flat_map(|e| match e {
            TransportEvent::Assigned { partitions, .. } => partitions.clone(),
            _ => Vec::new(),
        })
        .collect()
}

/// The transport holds a revocation (does not give the partitions back to
/// librdkafka) until the engine says it is done: until then no other
/// member is assigned them, so a partition never has two owners while the
/// first one commits what it finished.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_is_held_until_the_engine_is_done_with_it() {
    let mock = MockKafka::start(1).expect("mock cluster");
    mock.create_topic("held", 4).expect("topic");
    let config = |client: &str| {
        let mut c = KafkaConfig::new(&mock.bootstrap(), "held-group", client);
        c.revoke_timeout = Duration::from_secs(60);
        c
    };
    let topics = [Topic::new("held")];
    let mut a = RdKafkaTransport::new(config("a")).expect("transport");
    a.subscribe(&topics).await.expect("subscribed");
    let first = group_events(&mut a, Duration::from_secs(4)).await;
    assert_eq!(
        assigned(&first).len(),
        4,
        "a owns every partition: {first:?}"
    );

    let mut b = RdKafkaTransport::new(config("b")).expect("transport");
    b.subscribe(&topics).await.expect("subscribed");
    // Both poll, as their drivers would; a does not answer its revocation.
    let mut revoked = Vec::new();
    let mut b_got = Vec::new();
    for _ in 0..40 {
        for e in group_events(&mut a, Duration::from_millis(100)).await {
            if let TransportEvent::Revoked { partitions } = e {
                revoked.extend(partitions);
            }
        }
        b_got.extend(assigned(
            &group_events(&mut b, Duration::from_millis(100)).await,
        ));
    }
    assert!(
        !revoked.is_empty(),
        "b's arrival revokes some of a's partitions"
    );
    assert!(
        b_got.iter().all(|tp| !revoked.contains(tp)),
        "b was assigned {b_got:?} while a still held its revocation of {revoked:?}"
    );

    // Once a is done, b gets them.
    a.revocation_done(&revoked).await;
    for _ in 0..60 {
        let _ = group_events(&mut a, Duration::from_millis(100)).await;
        b_got.extend(assigned(
            &group_events(&mut b, Duration::from_millis(100)).await,
        ));
        if revoked.iter().all(|tp| b_got.contains(tp)) {
            break;
        }
    }
    assert!(
        revoked.iter().all(|tp| b_got.contains(tp)),
        "after the revocation was done b got {b_got:?}, not all of {revoked:?}"
    );
}

/// What a producer wrote arrives whole through the transport: keys, values,
/// null keys, tombstones, headers (one without a value), timestamps and
/// offsets. A record produced while the transport is waiting in `poll`
/// wakes it (the poll returns the record, not an empty batch after its
/// 10 s wait).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_arrive_whole_through_the_transport() {
    use rdkafka::config::ClientConfig;
    use rdkafka::message::{Header as RdHeader, OwnedHeaders};
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
    use ruckus_core::model::{Header, Offset, Partition, Record};

    let mock = MockKafka::start(1).expect("mock cluster");
    mock.create_topic("whole", 1).expect("topic");
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", mock.bootstrap())
        .create()
        .expect("producer");
    let send = |record: BaseRecord<'_, str, str>| {
        producer.send(record).expect("queued");
        producer.flush(Duration::from_secs(10)).expect("flushed");
    };
    send(
        BaseRecord::to("whole")
            .key("k0")
            .payload("v0")
            .timestamp(1_700_000_000_123)
            .headers(
                OwnedHeaders::new()
                    .insert(RdHeader {
                        key: "h1",
                        value: Some("a"),
                    })
                    .insert(RdHeader::<&str> {
                        key: "h2",
                        value: None,
                    }),
            ),
    );
    send(BaseRecord::to("whole").payload("v1"));
    send(BaseRecord::to("whole").key("k2"));

    let mut t = RdKafkaTransport::new(KafkaConfig::new(&mock.bootstrap(), "whole-group", "w"))
        .expect("transport");
    t.subscribe(&[Topic::new("whole")])
        .await
        .expect("subscribed");
    let tp = TopicPartition {
        topic: Topic::new("whole"),
        partition: Partition(0),
    };
    let mut got: Vec<Record> = Vec::new();
    let mut seeked = false;
    for _ in 0..100 {
        for e in t.poll(Duration::from_millis(100)).await.expect("polled") {
            match e {
                TransportEvent::Assigned { partitions, .. } if partitions.contains(&tp) => {
                    t.seek(&tp, Offset(0));
                    seeked = true;
                }
                TransportEvent::Records(r) => got.extend(r),
                _ => {}
            }
        }
        if got.len() >= 3 {
            break;
        }
    }
    assert!(seeked, "the partition was assigned");
    let bytes = |s: &str| Some(bytes::Bytes::copy_from_slice(s.as_bytes()));
    let fields: Vec<_> = got
        .iter()
        .map(|r| (r.offset, r.key.clone(), r.value.clone(), r.headers.clone()))
        .collect();
    assert_eq!(
        fields,
        vec![
            (
                Offset(0),
                bytes("k0"),
                bytes("v0"),
                vec![
                    Header {
                        key: "h1".into(),
                        value: bytes("a"),
                    },
                    Header {
                        key: "h2".into(),
                        value: None,
                    },
                ],
            ),
            (Offset(1), None, bytes("v1"), vec![]),
            (Offset(2), bytes("k2"), None, vec![]),
        ]
    );
    assert_eq!(got[0].timestamp.0, 1_700_000_000_123);
    assert!(got.iter().all(|r| r.topic_partition == tp));

    // Waiting in poll, woken by a record that arrives meanwhile.
    let waiting = tokio::spawn(async move {
        let started = std::time::Instant::now();
        let events = t.poll(Duration::from_secs(10)).await.expect("polled");
        (t, events, started.elapsed())
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    send(BaseRecord::to("whole").key("k3").payload("v3"));
    let (_t, events, waited) = waiting.await.expect("joined");
    // Not a speed check: a poll that was never woken finds the record only
    // when its 10 s wait runs out.
    assert!(
        waited < Duration::from_secs(5),
        "the waiting poll was not woken by the new record (returned after {waited:?})"
    );
    let offsets: Vec<Offset> = events
        .iter()
        .flat_map(|e| match e {
            TransportEvent::Records(r) => r.iter().map(|r| r.offset).collect(),
            _ => Vec::new(),
        })
        .collect();
    assert_eq!(offsets, vec![Offset(3)], "the waiting poll got {events:?}");
}

/// A one-broker mock cluster whose `topic` holds `records` records already.
fn backlog(topic: &str, partitions: i32, records: usize) -> MockKafka {
    let mock = MockKafka::start(1).expect("mock cluster");
    mock.create_topic(topic, partitions).expect("topic");
    mock.fill(topic, records, b"v").expect("produced");
    mock
}

/// A consumer far behind (its whole backlog prefetched, its partition
/// queues holding more than a batch most of the time) still serves the
/// group's callbacks: a rebalance reaches it while it works through its
/// backlog, not only once the backlog is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_far_behind_still_serves_a_rebalance() {
    use ruckus_core::model::Offset;

    const BACKLOG: usize = 100_000;
    let mock = backlog("behind", 2, BACKLOG);

    let config = |client: &str| {
        let mut c = KafkaConfig::new(&mock.bootstrap(), "behind-group", client);
        // Prefetch everything: the partition queues stay full.
        c.extra = vec![("queued.min.messages".into(), "1000000".into())];
        // The pace the backlog is sized for: at most 250 records per poll,
        // 5 ms apart, while a rebalance takes about a second.
        c.max_poll_records = 250;
        c
    };
    let topics = [Topic::new("behind")];
    let mut a = RdKafkaTransport::new(config("a")).expect("transport");
    a.subscribe(&topics).await.expect("subscribed");
    // a takes both partitions and starts on its backlog.
    let mut consumed = 0usize;
    let mut b = None;
    let mut revoked_after = None;
    for _ in 0..4000 {
        for e in a.poll(Duration::from_millis(100)).await.expect("polled") {
            match e {
                TransportEvent::Assigned { partitions, .. } => {
                    for tp in partitions {
                        a.seek(&tp, Offset(0));
                    }
                }
                TransportEvent::Records(r) => consumed += r.len(),
                TransportEvent::Revoked { partitions } => {
                    revoked_after.get_or_insert(consumed);
                    a.revocation_done(&partitions).await;
                }
                _ => {}
            }
        }
        if revoked_after.is_some() || consumed >= BACKLOG {
            break;
        }
        // Once a is into its backlog, and librdkafka has had the time to
        // prefetch all of it, b joins; a goes on slowly.
        if b.is_none() && consumed > 0 {
            tokio::time::sleep(Duration::from_millis(1500)).await;
            let mut t = RdKafkaTransport::new(config("b")).expect("transport");
            t.subscribe(&topics).await.expect("subscribed");
            b = Some(tokio::spawn(async move {
                for _ in 0..200 {
                    let _ = t.poll(Duration::from_millis(20)).await;
                }
                t
            }));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let revoked_after = revoked_after.unwrap_or_else(|| {
        panic!("a never saw its revocation while it consumed {consumed} of {BACKLOG} records")
    });
    eprintln!("a saw its revocation after {revoked_after} of {BACKLOG} records");
    assert!(
        revoked_after < BACKLOG * 3 / 4,
        "a saw its revocation only after {revoked_after} of {BACKLOG} records: \
         the group's callbacks waited for the backlog"
    );
    if let Some(b) = b {
        b.abort();
    }
}

/// Records the transport's fetch thread took ahead of a seek are not handed
/// out after it: a seek back (as when a partition comes back to a consumer
/// that had fetched past its last commit) starts again at the sought
/// offset, with nothing skipped. Handed out, records taken ahead would move
/// the position past the sought offset and the records in between would be
/// dropped as duplicates, never processed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_taken_ahead_of_a_seek_are_not_handed_out_after_it() {
    use ruckus_core::model::{Offset, Partition};

    let mock = backlog("seek-back", 1, 5_000);
    let mut config = KafkaConfig::new(&mock.bootstrap(), "seek-back-group", "s");
    // Prefetch plenty, so the fetch thread has batches ready ahead.
    config.extra = vec![("queued.min.messages".into(), "100000".into())];
    let mut t = RdKafkaTransport::new(config).expect("transport");
    t.subscribe(&[Topic::new("seek-back")])
        .await
        .expect("subscribed");
    let tp = TopicPartition {
        topic: Topic::new("seek-back"),
        partition: Partition(0),
    };
    let mut first = Vec::new();
    for _ in 0..100 {
        for e in t.poll(Duration::from_millis(100)).await.expect("polled") {
            match e {
                TransportEvent::Assigned { partitions, .. } if partitions.contains(&tp) => {
                    t.seek(&tp, Offset(0));
                }
                TransportEvent::Records(r) => first.extend(r.into_iter().map(|r| r.offset)),
                _ => {}
            }
        }
        if !first.is_empty() {
            break;
        }
    }
    assert_eq!(
        first.first(),
        Some(&Offset(0)),
        "the first poll starts at 0"
    );
    // The fetch thread fills its hand-over meanwhile.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let back = Offset(1);
    t.seek(&tp, back);
    let mut after = Vec::new();
    for _ in 0..100 {
        for e in t.poll(Duration::from_millis(100)).await.expect("polled") {
            if let TransportEvent::Records(r) = e {
                after.extend(r.into_iter().map(|r| r.offset));
            }
        }
        if after.len() >= 1_000 {
            break;
        }
    }
    let expected: Vec<Offset> = (1..=after.len() as i64).map(Offset).collect();
    assert!(
        after.len() >= 1_000 && after == expected,
        "after the seek to {back:?}: {} records, starting {:?}, not contiguous from it",
        after.len(),
        &after[..after.len().min(5)]
    );
}

/// The rule on `Transport` (issue 14), on real librdkafka: a pause stays as
/// the engine left it across a revocation and a later assignment of the
/// same partition — the transport neither resumes nor clears it on its own
/// — and the engine's resume after the new ownership's seek makes the
/// partition fetch again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pause_outlives_a_reassignment_until_the_engine_resumes() {
    use ruckus_core::model::Offset;

    let mock = backlog("kept-pause", 2, 200);
    let config = |client: &str| KafkaConfig::new(&mock.bootstrap(), "kept-pause-group", client);
    let topics = [Topic::new("kept-pause")];
    let mut a = RdKafkaTransport::new(config("a")).expect("transport");
    a.subscribe(&topics).await.expect("subscribed");
    let first = assigned(&group_events(&mut a, Duration::from_secs(4)).await);
    assert_eq!(first.len(), 2, "a owns both partitions: {first:?}");
    // The engine starts the ownerships, then pauses them (retries, say).
    for tp in &first {
        a.seek(tp, Offset(0));
        a.pause(tp);
    }

    // Another member takes a partition away...
    let mut b = RdKafkaTransport::new(config("b")).expect("transport");
    b.subscribe(&topics).await.expect("subscribed");
    let mut revoked: Option<TopicPartition> = None;
    for _ in 0..60 {
        for e in group_events(&mut a, Duration::from_millis(100)).await {
            if let TransportEvent::Revoked { partitions } = e {
                a.revocation_done(&partitions).await;
                revoked = revoked.or_else(|| partitions.first().cloned());
            }
        }
        let _ = group_events(&mut b, Duration::from_millis(100)).await;
        if revoked.is_some() {
            break;
        }
    }
    let tp = revoked.expect("b's arrival revokes one of a's partitions");
    // ...and leaves, so it comes back to a.
    b.leave().await.expect("b left");
    drop(b);
    let mut back = false;
    for _ in 0..100 {
        let events = group_events(&mut a, Duration::from_millis(100)).await;
        if assigned(&events).contains(&tp) {
            back = true;
            break;
        }
    }
    assert!(back, "{tp} came back to a");
    a.seek(&tp, Offset(0));
    let records = |events: Vec<TransportEvent>| {
        events
            .into_iter()
            .flat_map(|e| match e {
                TransportEvent::Records(r) => r,
                _ => Vec::new(),
            })
            .collect::<Vec<_>>()
    };
    let mut while_paused = Vec::new();
    for _ in 0..15 {
        while_paused.extend(records(
            a.poll(Duration::from_millis(100)).await.expect("polled"),
        ));
    }
    assert!(
        while_paused.is_empty(),
        "the transport kept the engine's pause across the reassignment, yet fetched {} records",
        while_paused.len()
    );
    // The engine lifts it after the seek: the partition is fetched again.
    a.resume(&tp);
    let mut after = Vec::new();
    for _ in 0..50 {
        after.extend(records(
            a.poll(Duration::from_millis(100)).await.expect("polled"),
        ));
        if !after.is_empty() {
            break;
        }
    }
    assert!(!after.is_empty(), "resumed, {tp} is fetched again");
    assert!(
        after.iter().all(|r| r.topic_partition == tp),
        "only the resumed partition: the other one is still paused"
    );
}

/// A dead letter is the record it claims to be: a null key stays null, a
/// tombstone stays a tombstone, the value and key bytes are the original's,
/// and the headers say where it came from — read back from the dead-letter
/// topic.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_letter_is_read_back_as_the_record_it_was() {
    use std::sync::Arc;

    use rdkafka::config::ClientConfig;
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::message::{Headers, Message};
    use rdkafka::topic_partition_list::TopicPartitionList;
    use rdkafka::Offset as RdOffset;
    use ruckus_chaos::processor::{DynFactory, MemberStart};
    use ruckus_chaos::{Payload, Payloads};
    use ruckus_core::consumer::ProcessingError;
    use ruckus_core::driver::{MessageProcessor, RecordContext};

    /// Refuses every record: each is dead-lettered at once.
    struct Refuse;
    impl MessageProcessor for Refuse {
        async fn process(
            &self,
            _: &ruckus_core::model::Record,
            _: &RecordContext,
        ) -> Result<(), ProcessingError> {
            Err(ProcessingError::permanent("refused"))
        }
    }

    const N: usize = 20;
    let mut run = Run::new(1, consumer_config());
    run.processing = Processing::Factory(DynFactory::new(Arc::new(|_: &MemberStart| Refuse)));
    run.start_member(0);
    // Even records: a null key; odd ones: a tombstone.
    let payload = |i: usize| {
        if i % 2 == 0 {
            Payload {
                key: None,
                value: Some(format!("value-{i}").into()),
            }
        } else {
            Payload {
                key: Some(format!("key-{i}").into()),
                value: None,
            }
        }
    };
    run.produce(Workload {
        payloads: Some(Payloads::new(payload)),
        ..Workload::burst(N)
    })
    .await
    .expect("produced");
    // Every record dead-lettered (the acknowledgement is in the history).
    let lettered = |run: &Run| {
        count(&run.history().entries(), |e| {
            matches!(e, Event::DeadLettered { .. })
        })
    };
    for _ in 0..300 {
        if lettered(&run) >= N {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(lettered(&run), N, "not every record was dead-lettered");

    // Read the dead-letter topic back, whole.
    let (bootstrap, dlq) = (run.bootstrap().to_owned(), run.names.dlq.clone());
    let letters = tokio::task::spawn_blocking(move || {
        let reader: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &bootstrap)
            .set("group.id", "dlq-reader")
            .set("enable.auto.commit", "false")
            .create()
            .expect("reader");
        let mut tpl = TopicPartitionList::new();
        for p in 0..2 {
            tpl.add_partition_offset(&dlq, p, RdOffset::Beginning)
                .expect("partition");
        }
        reader.assign(&tpl).expect("assigned");
        let mut out = Vec::new();
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while out.len() < N && std::time::Instant::now() < deadline {
            if let Some(Ok(m)) = reader.poll(Duration::from_millis(100)) {
                let offset = m
                    .headers()
                    .and_then(|hs| {
                        hs.iter()
                            .find(|h| h.key == "kafka_dlt-original-offset")
                            .and_then(|h| h.value)
                            .and_then(|v| <[u8; 8]>::try_from(v).ok())
                    })
                    .map(i64::from_be_bytes)
                    .expect("the original offset header");
                out.push((
                    offset,
                    m.key().map(<[u8]>::to_vec),
                    m.payload().map(<[u8]>::to_vec),
                ));
            }
        }
        out
    })
    .await
    .expect("read");
    assert_eq!(letters.len(), N, "dead letters read back: {letters:?}");
    let mut seen = Vec::new();
    for (offset, key, value) in letters {
        // Each dead letter is its original: the record's one present part,
        // byte for byte, and the other still absent.
        let text = |b: &[u8]| String::from_utf8(b.to_vec()).expect("text");
        let i: usize = match (key.as_deref(), value.as_deref()) {
            (None, Some(v)) => text(v)
                .strip_prefix("value-")
                .expect("value-i")
                .parse()
                .expect("i"),
            (Some(k), None) => text(k)
                .strip_prefix("key-")
                .expect("key-i")
                .parse()
                .expect("i"),
            other => panic!("dead letter of offset {offset}: key and value {other:?}"),
        };
        assert_eq!(
            payload(i).key.map(|k| k.to_vec()),
            key,
            "record {i}: the key"
        );
        assert_eq!(
            payload(i).value.map(|v| v.to_vec()),
            value,
            "record {i}: the value"
        );
        seen.push(i);
    }
    seen.sort_unstable();
    assert_eq!(seen, (0..N).collect::<Vec<_>>());
    let (h, v) = run.finish("dead letters", Duration::from_secs(30)).await;
    assert_holds("dead letters", &h, &v);
}
