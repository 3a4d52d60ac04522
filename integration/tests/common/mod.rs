//! What the real-broker tiers share: a run of reference-consumer members
//! over the rdkafka transport with a producer, a wall-clock history, fault
//! records, convergence and the verdict of `ruckus-chaos`'s checkers.

#![allow(dead_code, unreachable_pub, missing_docs, clippy::print_stderr)]

use std::sync::Arc;
use std::time::{Duration, Instant as WallInstant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::topic_partition_list::TopicPartitionList;
use rdkafka::Offset as RdOffset;
use ruckus_chaos::check::{self, Context, Invariant, Liveness, Order};
use ruckus_core::consumer::{
    CommitStrategy, ConsumerConfig, DeadLetterConfig, DlqLimit, ProcessingError, RetryPolicy,
};
use ruckus_core::driver::{Driver, EventSink, MessageProcessor, RecordContext, ShutdownHandle};
use ruckus_core::events::Event;
use ruckus_core::model::{Instant, Offset, Record, Topic, TopicPartition};
use ruckus_core::rng::SplitMix64;
use ruckus_integration::mock::MockKafka;
use ruckus_integration::transport::{KafkaConfig, RdKafkaTransport};
use ruckus_sim::history::{Entry, History};
use tokio::task::JoinHandle;

pub const TOPIC: &str = "orders";
pub const DLQ: &str = "orders.dlq";
pub const GROUP: &str = "ruckus-mock";
pub const PARTITIONS: i32 = 6;

/// Stamps events with wall-clock milliseconds since the run started.
pub struct WallSink {
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
pub struct Work;

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

pub struct Run {
    pub bootstrap: String,
    pub mock: Option<MockKafka>,
    /// Session timeout and heartbeat interval of the members.
    pub session: (Duration, Duration),
    history: History,
    start: WallInstant,
    members: Vec<Option<(JoinHandle<()>, ShutdownHandle)>>,
    config: ConsumerConfig,
}

pub fn consumer_config() -> ConsumerConfig {
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
    /// A run on a fresh mock cluster of `brokers` brokers.
    pub fn new(brokers: i32, config: ConsumerConfig) -> Self {
        let mock = MockKafka::start(brokers).expect("mock cluster");
        mock.create_topic(TOPIC, PARTITIONS).expect("topic");
        mock.create_topic(DLQ, 2).expect("dlq topic");
        Self {
            bootstrap: mock.bootstrap(),
            mock: Some(mock),
            session: (Duration::from_millis(2_000), Duration::from_millis(100)),
            history: History::default(),
            start: WallInstant::now(),
            members: Vec::new(),
            config,
        }
    }

    /// A run against a real broker at `bootstrap`; creates the topics.
    pub async fn on_broker(
        bootstrap: &str,
        config: ConsumerConfig,
        session: (Duration, Duration),
    ) -> Self {
        let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
            .set("bootstrap.servers", bootstrap)
            .create()
            .expect("admin client");
        let topics = [
            NewTopic::new(TOPIC, PARTITIONS, TopicReplication::Fixed(1)),
            NewTopic::new(DLQ, 2, TopicReplication::Fixed(1)),
        ];
        let created = admin
            .create_topics(
                &topics,
                &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
            )
            .await
            .expect("create topics");
        for r in created {
            if let Err((t, e)) = r {
                panic!("creating {t}: {e}");
            }
        }
        Self {
            bootstrap: bootstrap.to_owned(),
            mock: None,
            session,
            history: History::default(),
            start: WallInstant::now(),
            members: Vec::new(),
            config,
        }
    }

    /// The mock cluster (mock-cluster runs only).
    pub fn mock(&self) -> &MockKafka {
        self.mock.as_ref().expect("a mock-cluster run")
    }

    pub fn now(&self) -> Instant {
        Instant::from_millis(self.start.elapsed().as_millis() as u64)
    }

    pub fn fault(&self, description: &str) {
        self.history.record_at(
            self.now(),
            "nemesis",
            Event::FaultInjected {
                description: description.to_owned(),
            },
        );
    }

    pub fn start_member(&mut self, i: usize) {
        let host = format!("consumer-{i}");
        let mut kc = KafkaConfig::new(&self.bootstrap, GROUP, &host);
        kc.session_timeout = self.session.0;
        kc.heartbeat_interval = self.session.1;
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
    pub fn crash_member(&mut self, i: usize) {
        if let Some((task, _)) = self.members[i].take() {
            task.abort();
            self.fault(&format!("crash consumer-{i}"));
        }
    }

    /// Produces on its own task; each acknowledged record enters the
    /// history.
    pub fn produce(&self, messages: usize, poison_every: usize) -> JoinHandle<()> {
        let (bootstrap, history, start) =
            (self.bootstrap.clone(), self.history.clone(), self.start);
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
    pub async fn converge(&self, within: Duration) -> Option<Instant> {
        let admin: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", self.bootstrap.clone())
            .set("group.id", GROUP)
            .set("enable.auto.commit", "false")
            .create()
            .expect("admin consumer");
        let admin = Arc::new(admin);
        let deadline = WallInstant::now() + within;
        while WallInstant::now() < deadline {
            let a = admin.clone();
            // The end of each partition is one past its highest
            // acknowledged produce, from the history: some brokers' "latest"
            // ListOffsets is wrong after batched produces (Tansu's).
            let mut ends = std::collections::BTreeMap::new();
            for e in self.history.entries() {
                if let Event::Produced { tp, offset } = e.event {
                    let end = ends.entry(tp.partition.0).or_insert(0);
                    *end = (*end).max(offset.0 + 1);
                }
            }
            let done = tokio::task::spawn_blocking(move || {
                let mut tpl = TopicPartitionList::new();
                for p in 0..PARTITIONS {
                    tpl.add_partition(TOPIC, p);
                }
                let Ok(committed) = a.committed_offsets(tpl, Duration::from_secs(2)) else {
                    return false;
                };
                (0..PARTITIONS).all(|p| {
                    let end = ends.get(&p).copied().unwrap_or(0);
                    match committed.find_partition(TOPIC, p).map(|e| e.offset()) {
                        Some(RdOffset::Offset(c)) => c == end,
                        _ => end == 0,
                    }
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
    pub async fn finish(
        mut self,
        name: &str,
        within: Duration,
    ) -> (Vec<Entry>, Vec<check::Violation>) {
        let converged = self.converge(within).await;
        let deadline = self.now();
        for m in self.members.iter_mut() {
            if let Some((task, stop)) = m.take() {
                stop.shutdown();
                let _ = tokio::time::timeout(Duration::from_secs(15), task).await;
            }
        }
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

pub fn assert_holds(name: &str, h: &[Entry], violations: &[check::Violation]) {
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

pub fn count(h: &[Entry], f: impl Fn(&Event) -> bool) -> usize {
    h.iter().filter(|e| f(&e.event)).count()
}
