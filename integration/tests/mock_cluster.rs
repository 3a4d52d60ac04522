//! The reference consumer over rdkafka against librdkafka's mock cluster
//! (in process, no Docker), judged by `ruckus-chaos`'s checkers. Runs are
//! in wall-clock time, so message counts are small.

// Progress of each run is reported on stderr.
#![allow(clippy::print_stderr)]

use std::sync::Arc;
use std::time::{Duration, Instant as WallInstant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::topic_partition_list::TopicPartitionList;
use rdkafka::types::RDKafkaApiKey;
use rdkafka::Offset as RdOffset;
use ruckus_chaos::check::{self, Context, Invariant, Liveness, Order};
use ruckus_core::consumer::{
    CommitStrategy, ConsumerConfig, DeadLetterConfig, DlqLimit, ProcessingError, RetryPolicy,
};
use ruckus_core::driver::{Driver, EventSink, MessageProcessor, RecordContext, ShutdownHandle};
use ruckus_core::events::Event;
use ruckus_core::model::{ErrorCode, Instant, Offset, Record, Topic, TopicPartition};
use ruckus_core::rng::SplitMix64;
use ruckus_integration::mock::MockKafka;
use ruckus_integration::transport::{KafkaConfig, RdKafkaTransport};
use ruckus_sim::history::{Entry, History};
use tokio::task::JoinHandle;

const TOPIC: &str = "orders";
const DLQ: &str = "orders.dlq";
const GROUP: &str = "ruckus-mock";
const PARTITIONS: i32 = 6;

/// Stamps events with wall-clock milliseconds since the run started.
struct WallSink {
    history: History,
    host: String,
    start: WallInstant,
}

impl EventSink for WallSink {
    fn emit(&self, _at: Instant, event: &Event) {
        let at = Instant::from_millis(self.start.elapsed().as_millis() as u64);
        self.history.record_at(at, &self.host, event.clone());
    }
}

/// Processing: 1 ms per record; records whose value ends in `poison` fail
/// permanently.
struct Work;

impl MessageProcessor for Work {
    async fn process(&self, record: &Record, _ctx: &RecordContext) -> Result<(), ProcessingError> {
        tokio::time::sleep(Duration::from_millis(1)).await;
        if record
            .value
            .as_deref()
            .is_some_and(|v| v.ends_with(b"poison"))
        {
            return Err(ProcessingError::permanent("poison"));
        }
        Ok(())
    }
}

struct Run {
    mock: MockKafka,
    history: History,
    start: WallInstant,
    members: Vec<Option<(JoinHandle<()>, ShutdownHandle)>>,
    config: ConsumerConfig,
}

fn consumer_config() -> ConsumerConfig {
    let mut c = ConsumerConfig::new(GROUP, vec![Topic::new(TOPIC)]);
    c.commit = CommitStrategy::Periodic {
        records: 100,
        interval: Duration::from_millis(200),
    };
    c.retry = RetryPolicy {
        max_attempts: 3,
        initial_backoff: Duration::from_millis(20),
        ..RetryPolicy::default()
    };
    c.dead_letter = Some(DeadLetterConfig {
        topic: Topic::new(DLQ),
        limit: DlqLimit::default(),
        write_backoff: RetryPolicy {
            initial_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_secs(1),
            ..RetryPolicy::default()
        },
    });
    c
}

impl Run {
    fn new(brokers: i32, config: ConsumerConfig) -> Self {
        let mock = MockKafka::start(brokers).expect("mock cluster");
        mock.create_topic(TOPIC, PARTITIONS).expect("topic");
        mock.create_topic(DLQ, 2).expect("dlq topic");
        Self {
            mock,
            history: History::default(),
            start: WallInstant::now(),
            members: Vec::new(),
            config,
        }
    }

    fn now(&self) -> Instant {
        Instant::from_millis(self.start.elapsed().as_millis() as u64)
    }

    fn fault(&self, description: &str) {
        self.history.record_at(
            self.now(),
            "nemesis",
            Event::FaultInjected {
                description: description.to_owned(),
            },
        );
    }

    fn start_member(&mut self, i: usize) {
        let host = format!("consumer-{i}");
        let kc = KafkaConfig::new(&self.mock.bootstrap(), GROUP, &host);
        let sink = Arc::new(WallSink {
            history: self.history.clone(),
            host: host.clone(),
            start: self.start,
        });
        let transport = RdKafkaTransport::new(kc).expect("transport");
        let driver = Driver::new(
            self.config.clone(),
            transport,
            Work,
            Box::new(SplitMix64::new(i as u64 + 1)),
            sink,
        )
        .expect("valid config");
        let stop = driver.shutdown_handle();
        let task = tokio::spawn(async move {
            if let Err(e) = driver.run().await {
                eprintln!("{host}: driver ended: {e}");
            }
        });
        if self.members.len() <= i {
            self.members.resize_with(i + 1, || None);
        }
        self.members[i] = Some((task, stop));
    }

    /// Kills a member: its task is dropped mid-flight, nothing committed.
    fn crash_member(&mut self, i: usize) {
        if let Some((task, _)) = self.members[i].take() {
            task.abort();
            self.fault(&format!("crash consumer-{i}"));
        }
    }

    /// Produces on its own task; each acknowledged record enters the
    /// history.
    fn produce(&self, messages: usize, poison_every: usize) -> JoinHandle<()> {
        let (bootstrap, history, start) = (self.mock.bootstrap(), self.history.clone(), self.start);
        tokio::spawn(async move {
            let producer: FutureProducer = ClientConfig::new()
                .set("bootstrap.servers", bootstrap)
                .set("acks", "all")
                .set("enable.idempotence", "true")
                .set("linger.ms", "5")
                .create()
                .expect("producer");
            let mut waits = Vec::new();
            for i in 0..messages {
                let key = format!("key-{}", i % 97);
                let value = if poison_every > 0 && i % poison_every == poison_every - 1 {
                    format!("message-{i}-poison")
                } else {
                    format!("message-{i}")
                };
                let record = FutureRecord::to(TOPIC).key(&key).payload(&value);
                waits.push(producer.send_result(record).expect("queued"));
            }
            for w in waits {
                if let Ok(Ok(d)) = w.await {
                    history.record_at(
                        Instant::from_millis(start.elapsed().as_millis() as u64),
                        "producer",
                        Event::Produced {
                            tp: TopicPartition::new(TOPIC, d.partition),
                            offset: Offset(d.offset),
                        },
                    );
                }
            }
        })
    }

    /// Waits until every partition's committed offset reaches its high
    /// watermark; returns when, or `None` at the deadline.
    async fn converge(&self, within: Duration) -> Option<Instant> {
        let admin: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", self.mock.bootstrap())
            .set("group.id", GROUP)
            .set("enable.auto.commit", "false")
            .create()
            .expect("admin consumer");
        let admin = Arc::new(admin);
        let deadline = WallInstant::now() + within;
        while WallInstant::now() < deadline {
            let a = admin.clone();
            let done = tokio::task::spawn_blocking(move || {
                let mut tpl = TopicPartitionList::new();
                for p in 0..PARTITIONS {
                    tpl.add_partition(TOPIC, p);
                }
                let Ok(committed) = a.committed_offsets(tpl, Duration::from_secs(2)) else {
                    return false;
                };
                (0..PARTITIONS).all(|p| {
                    let Ok((_, high)) = a.fetch_watermarks(TOPIC, p, Duration::from_secs(2)) else {
                        return false;
                    };
                    matches!(
                        committed.find_partition(TOPIC, p).map(|e| e.offset()),
                        Some(RdOffset::Offset(c)) if c == high
                    )
                })
            })
            .await
            .unwrap_or(false);
            if done {
                return Some(self.now());
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        None
    }

    /// Stops the members gracefully and judges the history.
    async fn finish(mut self, name: &str, within: Duration) -> (Vec<Entry>, Vec<check::Violation>) {
        let converged = self.converge(within).await;
        let deadline = self.now();
        for m in self.members.iter_mut() {
            if let Some((task, stop)) = m.take() {
                stop.shutdown();
                let _ = tokio::time::timeout(Duration::from_secs(15), task).await;
            }
        }
        self.mock.flush();
        let history = self.history.entries();
        let mut sorted = history.clone();
        sorted.sort_by_key(|e| e.at);
        let ctx = Context {
            retry: self.config.retry.clone(),
            order: Order::Partition,
            liveness: Liveness {
                deadline,
                converged_at: converged,
                lagging: vec![],
            },
        };
        let violations = check::check(&sorted, &ctx, &Invariant::ALL);
        eprintln!(
            "{name}: {} events in {:.1}s; converged at {}",
            history.len(),
            self.start.elapsed().as_secs_f64(),
            converged.map_or("never".into(), |t| t.to_string())
        );
        (sorted, violations)
    }
}

fn assert_holds(name: &str, h: &[Entry], violations: &[check::Violation]) {
    if !violations.is_empty() {
        for e in h.iter().filter(|e| {
            matches!(
                e.event,
                Event::Joined { .. }
                    | Event::Assigned { .. }
                    | Event::Revoked { .. }
                    | Event::Lost { .. }
                    | Event::Stopped { .. }
                    | Event::FaultInjected { .. }
            )
        }) {
            eprintln!("{}", check::render(e));
        }
        if let Ok(path) = std::env::var("RUCKUS_DUMP") {
            let lines: Vec<String> = h.iter().map(check::render).collect();
            let _ = std::fs::write(path, lines.join("\n"));
        }
        let text: Vec<String> = violations.iter().map(ToString::to_string).collect();
        panic!("{name}: {}", text.join("\n"));
    }
}

fn count(h: &[Entry], f: impl Fn(&Event) -> bool) -> usize {
    h.iter().filter(|e| f(&e.event)).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn steady_state_on_the_mock_cluster_loses_nothing() {
    let mut run = Run::new(3, consumer_config());
    for i in 0..3 {
        run.start_member(i);
    }
    run.produce(2_000, 0).await.expect("produced");
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
    let produce = run.produce(3_000, 0);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    run.crash_member(1);
    produce.await.expect("produced");
    let (h, v) = run.finish("member_crash", Duration::from_secs(60)).await;
    assert_holds("member_crash", &h, &v);
    assert!(count(&h, |e| matches!(e, Event::FaultInjected { .. })) == 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offset_commit_error_burst_on_the_mock_cluster_loses_nothing() {
    let mut run = Run::new(3, consumer_config());
    for i in 0..3 {
        run.start_member(i);
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    run.mock
        .request_errors(
            RDKafkaApiKey::OffsetCommit,
            &[ErrorCode::RebalanceInProgress; 3],
        )
        .expect("errors");
    run.fault("errors OffsetCommit RebalanceInProgress x3");
    run.produce(2_000, 0).await.expect("produced");
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
    run.produce(1_000, 50).await.expect("produced");
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
    let produce = run.produce(4_000, 0);
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
    let produce = run.produce(messages, poison_every);
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
            run.mock.broker_down(1).expect("down");
            run.fault("crash broker-1");
            tokio::time::sleep(Duration::from_secs(3)).await;
            run.mock.broker_up(1).expect("up");
        })
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_coordinator_move_on_the_mock_cluster_loses_nothing() {
    with_fault("coordinator_move", 3_000, 0, |run| {
        Box::pin(async move {
            run.mock.move_coordinator(GROUP, 3).expect("moved");
            run.fault("coordinator moved to broker 3");
        })
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeat_errors_forcing_a_rejoin_on_the_mock_cluster_lose_nothing() {
    let h = with_fault("heartbeat_errors", 3_000, 0, |run| {
        Box::pin(async move {
            run.mock
                .request_errors(
                    RDKafkaApiKey::Heartbeat,
                    &[ErrorCode::RebalanceInProgress; 4],
                )
                .expect("errors");
            run.fault("errors Heartbeat RebalanceInProgress x4");
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
            for b in run.mock.broker_ids() {
                run.mock.broker_down(b).expect("down");
            }
            run.fault("crash every broker");
            tokio::time::sleep(Duration::from_secs(3)).await;
            for b in run.mock.broker_ids() {
                run.mock.broker_up(b).expect("up");
            }
        })
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letter_produce_errors_on_the_mock_cluster_lose_nothing() {
    let h = with_fault("dead_letter_errors", 2_000, 40, |run| {
        Box::pin(async move {
            run.mock
                .request_errors(RDKafkaApiKey::Produce, &[ErrorCode::NotEnoughReplicas; 12])
                .expect("errors");
            run.fault("errors Produce NotEnoughReplicas x12");
        })
    })
    .await;
    assert!(count(&h, |e| matches!(e, Event::DeadLettered { .. })) >= 40);
}
