//! The async driver over the in-memory transport, on tokio's paused clock.

#![cfg(feature = "driver")]

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU32, Ordering as AtomicOrdering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ruckus_core::consumer::{
    CommitStrategy, ConsumerConfig, DeadLetterConfig, DlqLimit, ProcessingError, RetryPolicy,
    StopReason,
};
use ruckus_core::driver::memory::{MemoryCluster, MemoryTransport};
use ruckus_core::driver::{Driver, MessageProcessor, RecordContext, VecSink};
use ruckus_core::events::Event;
use ruckus_core::model::{ErrorCode, Generation, Offset, Record, Topic, TopicPartition};
use ruckus_core::rng::SplitMix64;

fn tp(p: i32) -> TopicPartition {
    TopicPartition::new("orders", p)
}

fn config() -> ConsumerConfig {
    let mut c = ConsumerConfig::new("g", vec![Topic::new("orders")]);
    c.commit = CommitStrategy::Periodic {
        records: 10,
        interval: Duration::from_millis(200),
    };
    c.retry = RetryPolicy {
        max_attempts: 3,
        initial_backoff: Duration::from_millis(50),
        jitter: 0.0,
        ..RetryPolicy::default()
    };
    c.dead_letter = Some(DeadLetterConfig {
        topic: Topic::new("orders.dlq"),
        limit: DlqLimit::default(),
        write_backoff: RetryPolicy {
            initial_backoff: Duration::from_millis(100),
            jitter: 0.0,
            ..RetryPolicy::default()
        },
    });
    c
}

fn cluster(partitions: i32, per_partition: usize) -> MemoryCluster {
    let c = MemoryCluster::new();
    c.create_topic("orders", partitions);
    for p in 0..partitions {
        for i in 0..per_partition {
            c.produce(&tp(p), &format!("k{i}"), &format!("v{i}"));
        }
    }
    c
}

/// Decides a record's fate from the record and the attempt.
type Rule = fn(&Record, u32) -> Result<(), ProcessingError>;

/// Records what it processed; fails by rule.
#[derive(Default)]
struct Recorder {
    seen: Mutex<Vec<(i32, i64, u32)>>,
    rule: Option<Rule>,
    panic_on: Option<i64>,
    dead: AtomicU32,
}

impl MessageProcessor for Recorder {
    async fn process(&self, record: &Record, ctx: &RecordContext) -> Result<(), ProcessingError> {
        tokio::time::sleep(Duration::from_millis(1)).await;
        self.seen.lock().unwrap().push((
            record.topic_partition.partition.0,
            record.offset.0,
            ctx.attempt,
        ));
        if self.panic_on == Some(record.offset.0) && record.topic_partition.partition.0 == 0 {
            panic!("boom at {}", record.offset.0);
        }
        match self.rule {
            Some(rule) => rule(record, ctx.attempt),
            None => Ok(()),
        }
    }

    fn on_dead_letter(&self, _letter: &ruckus_core::consumer::DeadLetter) {
        self.dead.fetch_add(1, AtomicOrdering::Relaxed);
    }
}

async fn run_until_done(
    cluster: &MemoryCluster,
    processor: Recorder,
    config: ConsumerConfig,
    until: impl Fn(&MemoryCluster) -> bool + Send + 'static,
) -> (StopReason, Arc<VecSink>, Arc<Recorder>) {
    let sink = Arc::new(VecSink::default());
    let processor = Arc::new(processor);
    let driver = Driver::new(
        config,
        MemoryTransport::new(cluster.clone()),
        Shared(processor.clone()),
        Box::new(SplitMix64::new(7)),
        sink.clone(),
    )
    .expect("valid config");
    let handle = driver.shutdown_handle();
    let watched = cluster.clone();
    let watcher = tokio::spawn(async move {
        for _ in 0..100_000 {
            if until(&watched) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        handle.shutdown();
    });
    let reason = driver.run().await.expect("driver ends cleanly");
    watcher.abort();
    (reason, sink, processor)
}

/// Lets a test keep a handle on the processor the driver owns.
struct Shared(Arc<Recorder>);

impl MessageProcessor for Shared {
    async fn process(&self, record: &Record, ctx: &RecordContext) -> Result<(), ProcessingError> {
        self.0.process(record, ctx).await
    }
    fn on_dead_letter(&self, letter: &ruckus_core::consumer::DeadLetter) {
        self.0.on_dead_letter(letter)
    }
}

/// The (partition, offset) pairs the processor saw, attempts folded.
fn seen(rec: &Recorder) -> BTreeSet<(i32, i64)> {
    rec.seen
        .lock()
        .unwrap()
        .iter()
        .map(|(p, o, _)| (*p, *o))
        .collect()
}

fn processed_once(rec: &Recorder, partitions: i32, n: i64) {
    let seen = seen(rec);
    for p in 0..partitions {
        for o in 0..n {
            assert!(seen.contains(&(p, o)), "{p}/{o} never processed");
        }
    }
}

#[tokio::test(start_paused = true)]
async fn processes_everything_commits_it_and_leaves_on_shutdown() {
    let c = cluster(3, 50);
    let (reason, sink, rec) = run_until_done(&c, Recorder::default(), config(), |c| {
        (0..3).all(|p| c.committed(&tp(p)) == Some(Offset(50)))
    })
    .await;
    assert_eq!(reason, StopReason::Shutdown);
    processed_once(&rec, 3, 50);
    assert_eq!(rec.seen.lock().unwrap().len(), 150, "each exactly once");
    assert!(c.left());
    // Commits per partition never go backwards.
    let mut last = std::collections::BTreeMap::new();
    for (_, t, o) in c.commit_log() {
        let l = last.entry(t.clone()).or_insert(o);
        assert!(o >= *l, "{t}: {o} after {l}");
        *l = o;
    }
    assert!(sink.events().iter().any(|(_, e)| matches!(
        e,
        Event::Stopped {
            reason: StopReason::Shutdown
        }
    )));
}

/// A shutdown asked for while the driver is not waiting on its channel
/// (here: before it runs at all) still stops it, gracefully.
#[tokio::test(start_paused = true)]
async fn a_shutdown_asked_for_while_the_driver_is_busy_is_not_missed() {
    let c = cluster(2, 5);
    let driver = Driver::new(
        config(),
        MemoryTransport::new(c.clone()),
        Recorder::default(),
        Box::new(SplitMix64::new(7)),
        Arc::new(VecSink::default()),
    )
    .expect("valid config");
    driver.shutdown_handle().shutdown();
    let reason = tokio::time::timeout(Duration::from_secs(60), driver.run())
        .await
        .expect("the driver stops instead of waiting forever")
        .expect("driver ends cleanly");
    assert_eq!(reason, StopReason::Shutdown);
    assert!(c.left());
}

#[tokio::test(start_paused = true)]
async fn a_panicking_processor_fails_only_that_record() {
    let c = cluster(2, 10);
    let rec = Recorder {
        panic_on: Some(4),
        ..Recorder::default()
    };
    let (reason, sink, rec) = run_until_done(&c, rec, config(), |c| {
        c.committed(&tp(0)) == Some(Offset(10)) && c.committed(&tp(1)) == Some(Offset(10))
    })
    .await;
    assert_eq!(reason, StopReason::Shutdown, "the consumer kept running");
    let attempts = rec
        .seen
        .lock()
        .unwrap()
        .iter()
        .filter(|(p, o, _)| *p == 0 && *o == 4)
        .count();
    assert_eq!(attempts, 3, "retried like a transient failure");
    let letters = c.dead_letters();
    assert_eq!(letters.len(), 1);
    assert!(
        letters[0].error_message.contains("panicked: boom at 4"),
        "{}",
        letters[0].error_message
    );
    assert_eq!(
        rec.dead.load(AtomicOrdering::Relaxed),
        1,
        "on_dead_letter hook ran"
    );
    assert!(sink.events().iter().any(|(_, e)| matches!(
        e,
        Event::DeadLettered {
            offset: Offset(4),
            ..
        }
    )));
}

#[tokio::test(start_paused = true)]
async fn dead_letter_outage_holds_commits_until_the_write_succeeds() {
    let c = cluster(1, 20);
    c.fail_dead_letters(5);
    let rec = Recorder {
        rule: Some(|r, _| {
            if r.offset.0 == 7 {
                Err(ProcessingError::permanent("poison"))
            } else {
                Ok(())
            }
        }),
        ..Recorder::default()
    };
    let (_, _, _) = run_until_done(&c, rec, config(), |c| {
        c.committed(&tp(0)) == Some(Offset(20))
    })
    .await;
    // Before the dead-letter write succeeded, no commit passed offset 7.
    let log = c.commit_log();
    let first_past = log
        .iter()
        .position(|(_, _, o)| o.0 > 7)
        .expect("eventually committed past");
    assert!(log[..first_past].iter().all(|(_, _, o)| o.0 <= 7));
    assert_eq!(
        c.dead_letters().len(),
        1,
        "written once, after five failures"
    );
}

#[tokio::test(start_paused = true)]
async fn failed_commits_are_retried() {
    let c = cluster(1, 30);
    c.fail_commits(3);
    let (reason, sink, _) = run_until_done(&c, Recorder::default(), config(), |c| {
        c.committed(&tp(0)) == Some(Offset(30))
    })
    .await;
    assert_eq!(reason, StopReason::Shutdown);
    let failures = sink
        .events()
        .iter()
        .filter(|(_, e)| matches!(e, Event::CommitFailed { .. }))
        .count();
    assert_eq!(failures, 3);
}

#[tokio::test(start_paused = true)]
async fn a_revocation_finishes_and_commits_before_it_is_acknowledged() {
    let c = cluster(2, 40);
    let watched = c.clone();
    let (_, sink, _) = run_until_done(&c, Recorder::default(), config(), move |c| {
        // Once partition 1 is fully processed... revoke it once.
        if c.revocations_done().is_empty() && c.committed(&tp(1)).is_some() {
            watched.revoke(vec![tp(1)]);
        }
        !c.revocations_done().is_empty() && c.committed(&tp(0)) == Some(Offset(40))
    })
    .await;
    assert_eq!(c.revocations_done(), vec![vec![tp(1)]]);
    let events = sink.events();
    let revoked_at = events
        .iter()
        .position(|(_, e)| matches!(e, Event::Revoked { .. }))
        .expect("revoked");
    // Whatever p1 completed before the revocation was committed before it.
    let completed_p1 = events[..revoked_at]
        .iter()
        .filter(|(_, e)| matches!(e, Event::ProcessingSucceeded { tp: t, .. } if *t == tp(1)))
        .count() as i64;
    let committed_p1 = events[..revoked_at]
        .iter()
        .filter_map(|(_, e)| match e {
            Event::Committed { tp: t, offset, .. } if *t == tp(1) => Some(offset.0),
            _ => None,
        })
        .max()
        .unwrap_or(0);
    assert_eq!(
        committed_p1, completed_p1,
        "the revocation committed the completed prefix"
    );
    // Nothing from p1 was processed after the revocation.
    assert!(!events[revoked_at..]
        .iter()
        .any(|(_, e)| matches!(e, Event::ProcessingStarted { tp: t, .. } if *t == tp(1))));
}

#[tokio::test(start_paused = true)]
async fn invalid_configuration_is_rejected_when_the_driver_is_built() {
    let mut cfg = config();
    cfg.max_in_flight = 0;
    let err = Driver::new(
        cfg,
        MemoryTransport::new(MemoryCluster::new()),
        Recorder::default(),
        Box::new(SplitMix64::new(1)),
        Arc::new(VecSink::default()),
    )
    .err()
    .expect("rejected");
    assert!(err.to_string().contains("`max_in_flight`"), "{err}");
}

/// A recorder keeping counter totals by name (labels ignored).
#[derive(Default)]
struct Counters(Mutex<std::collections::BTreeMap<String, Arc<std::sync::atomic::AtomicU64>>>);

impl Counters {
    fn get(&self, name: &str) -> u64 {
        self.0
            .lock()
            .unwrap()
            .get(name)
            .map_or(0, |c| c.load(AtomicOrdering::Relaxed))
    }
}

impl metrics::Recorder for Counters {
    fn describe_counter(
        &self,
        _: metrics::KeyName,
        _: Option<metrics::Unit>,
        _: metrics::SharedString,
    ) {
    }
    fn describe_gauge(
        &self,
        _: metrics::KeyName,
        _: Option<metrics::Unit>,
        _: metrics::SharedString,
    ) {
    }
    fn describe_histogram(
        &self,
        _: metrics::KeyName,
        _: Option<metrics::Unit>,
        _: metrics::SharedString,
    ) {
    }
    fn register_counter(&self, key: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Counter {
        let c = self
            .0
            .lock()
            .unwrap()
            .entry(key.name().to_owned())
            .or_default()
            .clone();
        metrics::Counter::from_arc(c)
    }
    fn register_gauge(&self, _: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Gauge {
        metrics::Gauge::noop()
    }
    fn register_histogram(
        &self,
        _: &metrics::Key,
        _: &metrics::Metadata<'_>,
    ) -> metrics::Histogram {
        metrics::Histogram::noop()
    }
}

/// `ruckus_consumer_processed_total` counts processed records whether or
/// not the engine's per-record events are on (production turns them off).
#[test]
fn processed_records_are_counted_with_per_record_events_off() {
    for events in [true, false] {
        let counters = Counters::default();
        metrics::with_local_recorder(&counters, || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .start_paused(true)
                .build()
                .unwrap();
            rt.block_on(async {
                let c = cluster(2, 20);
                let mut cfg = config();
                cfg.record_events = events;
                let (reason, _, rec) = run_until_done(&c, Recorder::default(), cfg, |c| {
                    (0..2).all(|p| c.committed(&tp(p)) == Some(Offset(20)))
                })
                .await;
                assert_eq!(reason, StopReason::Shutdown);
                processed_once(&rec, 2, 20);
            });
        });
        assert_eq!(
            counters.get("ruckus_consumer_processed_total"),
            40,
            "per-record events {}",
            if events { "on" } else { "off" }
        );
        assert_eq!(counters.get("ruckus_consumer_consumed_total"), 40);
    }
}

/// Issue 14: a partition paused for a retry when it was lost, then assigned
/// to the same consumer again, was never fetched again — the engine forgot
/// the pause with the partition, the transport kept it.
#[tokio::test(start_paused = true)]
async fn a_partition_lost_while_paused_for_a_retry_is_consumed_when_assigned_again() {
    let c = cluster(1, 20);
    let mut cfg = config();
    cfg.retry.initial_backoff = Duration::from_millis(500);
    let processor = Recorder {
        rule: Some(|r, attempt| {
            if r.offset.0 == 5 && attempt == 1 {
                Err(ProcessingError::transient("not yet"))
            } else {
                Ok(())
            }
        }),
        ..Recorder::default()
    };
    let sink = Arc::new(VecSink::default());
    let driver = Driver::new(
        cfg,
        MemoryTransport::new(c.clone()),
        processor,
        Box::new(SplitMix64::new(7)),
        sink.clone(),
    )
    .expect("valid config");
    let handle = driver.shutdown_handle();
    let (watched, events) = (c.clone(), sink.clone());
    let faults = tokio::spawn(async move {
        // Lose the partition while it waits for its retry, and assign it
        // back at once (a new generation).
        while !events
            .events()
            .iter()
            .any(|(_, e)| matches!(e, Event::Retried { .. }))
        {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        watched.lose(vec![tp(0)]);
        watched.assign(vec![tp(0)]);
        for _ in 0..2_000 {
            if watched.committed(&tp(0)) == Some(Offset(20)) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        handle.shutdown();
    });
    driver.run().await.expect("driver ends cleanly");
    faults.await.expect("fault task");
    let events = sink.events();
    let lost = events
        .iter()
        .position(|(_, e)| matches!(e, Event::Lost { .. }))
        .expect("lost");
    assert!(
        events[..lost]
            .iter()
            .rev()
            .find_map(|(_, e)| match e {
                Event::Paused { .. } => Some(true),
                Event::Resumed { .. } => Some(false),
                _ => None,
            })
            .unwrap_or(false),
        "the partition was paused when it was lost"
    );
    assert_eq!(
        c.committed(&tp(0)),
        Some(Offset(20)),
        "consumed and committed after it came back"
    );
}

/// Issue 14: a commit refused with UNKNOWN_MEMBER_ID was re-sent at once,
/// again and again, and the driver, busy re-sending, never read the
/// rebalance that would have ended it. Now the consumer asks its transport
/// to rejoin (once) and waits its backoff between attempts.
#[tokio::test(start_paused = true)]
async fn a_commit_refused_as_out_of_the_generation_makes_the_consumer_rejoin() {
    let c = cluster(2, 20);
    c.fail_commits_with(u32::MAX, ErrorCode::UnknownMemberId);
    let mut cfg = config();
    cfg.commit = CommitStrategy::PerRecord;
    let (reason, sink, rec) = run_until_done(&c, Recorder::default(), cfg, |c| {
        (0..2).all(|p| c.committed(&tp(p)) == Some(Offset(20)))
    })
    .await;
    assert_eq!(reason, StopReason::Shutdown);
    assert_eq!(
        c.rejoins(),
        vec![(Generation(1), ErrorCode::UnknownMemberId)],
        "one rejoin, for the generation whose commit was refused"
    );
    assert!(
        c.commit_attempts() < 20,
        "refused commits are not re-sent in a loop: {} attempts",
        c.commit_attempts()
    );
    let events = sink.events();
    assert!(events.iter().any(|(_, e)| matches!(
        e,
        Event::RejoinRequested {
            generation: Generation(1),
            error: ErrorCode::UnknownMemberId
        }
    )));
    assert!(events.iter().any(
        |(_, e)| matches!(e, Event::Joined { generation, .. } if *generation == Generation(2))
    ));
    // Redelivered after the loss, never lost.
    assert_eq!(seen(&rec).len(), 40);
}

/// Issue 14: with every record committed and each commit answered slowly,
/// the driver was always either awaiting a commit or handing over a
/// finished processing, and the transport's poll — which carries the
/// group's rebalances — waited until the backlog ran dry (a revocation went
/// unseen for 3.7 s of a 3 s session in the simulation). The transport is
/// now polled at least every `poll_wait`.
#[tokio::test(start_paused = true)]
async fn a_rebalance_is_seen_promptly_while_commits_and_completions_keep_the_driver_busy() {
    let c = cluster(2, 100);
    c.set_commit_latency(Duration::from_millis(50));
    let mut cfg = config();
    cfg.commit = CommitStrategy::PerRecord;
    let sink = Arc::new(VecSink::default());
    let driver = Driver::new(
        cfg,
        MemoryTransport::new(c.clone()),
        Recorder::default(),
        Box::new(SplitMix64::new(7)),
        sink.clone(),
    )
    .expect("valid config");
    let handle = driver.shutdown_handle();
    let (watched, events) = (c.clone(), sink.clone());
    let revoke_at = Duration::from_millis(500);
    let faults = tokio::spawn(async move {
        let start = tokio::time::Instant::now();
        tokio::time::sleep(revoke_at).await;
        watched.revoke(vec![tp(1)]);
        while watched.revocations_done().is_empty() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let done = start.elapsed();
        assert!(
            events
                .events()
                .iter()
                .any(|(_, e)| matches!(e, Event::Committed { tp: t, .. } if *t == tp(0))),
            "the driver was busy committing"
        );
        handle.shutdown();
        done
    });
    driver.run().await.expect("driver ends cleanly");
    let done = faults.await.expect("fault task");
    // A poll every 100 ms, then the revocation's own commit (50 ms) and at
    // most one record in flight on the partition (1 ms): well under a second.
    assert!(
        done < revoke_at + Duration::from_millis(400),
        "the revocation asked for at {revoke_at:?} was done only at {done:?}"
    );
}
