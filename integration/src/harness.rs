//! What every real-broker run shares: reference-consumer members over the
//! rdkafka transport, a producer, a wall-clock history with the faults in
//! it, convergence, and the verdict of `ruckus-chaos`'s checkers.
//!
//! A [`Run`] is in wall-clock time: events are stamped with milliseconds
//! since the run started. It is used by the hand-written tests in `tests/`
//! and by the scenario runner ([`crate::scenario`]). Progress goes to
//! stderr, where the test harness shows it for a failing test.
#![allow(clippy::print_stderr)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant as WallInstant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::topic_partition_list::TopicPartitionList;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::Message as _;
use rdkafka::Offset as RdOffset;
use ruckus_chaos::check::{self, Context, Invariant, Liveness, Order};
use ruckus_chaos::duration::Dur;
use ruckus_chaos::processor::{BoxedProcessor, DynFactory, MemberStart, ProcessorFactory};
use ruckus_chaos::store::{Store, StoreClient};
use ruckus_chaos::Payloads;
use ruckus_core::consumer::{
    CommitStrategy, ConsumerConfig, DeadLetterConfig, DlqLimit, ProcessingError, RetryPolicy,
};
use ruckus_core::driver::{Driver, EventSink, MessageProcessor, RecordContext, ShutdownHandle};
use ruckus_core::events::Event;
use ruckus_core::model::{GroupId, Instant, Offset, Record, Topic, TopicPartition};
use ruckus_core::rng::SplitMix64;
use ruckus_history::fault::{Fault, FaultRecord, Target};
use ruckus_history::record::{BrokerEvent, Entry, History, Record as HRecord};
use ruckus_sim::processing::SimProcessor;
use tokio::task::JoinHandle;

use crate::container::ContainerBroker;
use crate::mock::MockKafka;
use crate::transport::{Assignor, GroupProtocol, KafkaConfig, RdKafkaTransport};

/// The source topic of the hand-written tests.
pub const TOPIC: &str = "orders";
/// Their dead-letter topic.
pub const DLQ: &str = "orders.dlq";
/// Their group.
pub const GROUP: &str = "ruckus-mock";
/// Partitions of their source topic.
pub const PARTITIONS: i32 = 6;

/// The broker a run talks to.
#[derive(Debug)]
pub enum Broker {
    /// librdkafka's mock cluster, in process.
    Mock(MockKafka),
    /// A broker in a container.
    Container(Box<ContainerBroker>),
    /// A cluster someone else runs, by bootstrap address.
    External(String),
}

impl Broker {
    /// `bootstrap.servers`.
    pub fn bootstrap(&self) -> String {
        match self {
            Broker::Mock(m) => m.bootstrap(),
            Broker::Container(c) => c.bootstrap(),
            Broker::External(b) => b.clone(),
        }
    }
}

/// Topic and group names of a run. Runs on a shared (external) cluster use
/// fresh names, so runs never see each other's records or offsets.
#[derive(Clone, Debug)]
pub struct Names {
    /// The source topic.
    pub topic: String,
    /// The dead-letter topic.
    pub dlq: String,
    /// The consumer group.
    pub group: String,
}

impl Names {
    /// `topic`, `topic.dlq` and `group`.
    pub fn new(topic: &str, group: &str) -> Self {
        Self {
            topic: topic.to_owned(),
            dlq: format!("{topic}.dlq"),
            group: group.to_owned(),
        }
    }

    /// The same names with a suffix unique to this process and moment.
    pub fn unique(self) -> Self {
        let nonce = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_micros());
        let suffix = format!("{}-{nonce}", std::process::id());
        Self {
            topic: format!("{}-{suffix}", self.topic),
            dlq: format!("{}-{suffix}", self.dlq),
            group: format!("{}-{suffix}", self.group),
        }
    }
}

/// How the members join the group (the parts of [`KafkaConfig`] a run
/// chooses).
#[derive(Clone, Debug)]
pub struct Membership {
    /// The group protocol.
    pub protocol: GroupProtocol,
    /// The assignor (classic protocol).
    pub assignor: Assignor,
    /// Session timeout.
    pub session: Duration,
    /// Heartbeat interval.
    pub heartbeat: Duration,
    /// Static membership: `group.instance.id` = `consumer-<i>-instance`.
    pub static_membership: bool,
}

impl Default for Membership {
    fn default() -> Self {
        Self {
            protocol: GroupProtocol::Classic,
            assignor: Assignor::CooperativeSticky,
            session: Duration::from_millis(2_000),
            heartbeat: Duration::from_millis(100),
            static_membership: false,
        }
    }
}

/// Stamps a member's events with the time its driver gives them (the
/// input that caused them, in milliseconds since the driver started) plus
/// when, since the run started, the driver started. Stamping them when the
/// sink sees them instead made a batch of events emitted after the engine
/// decided look later than the decision: a retry's backoff then seemed to
/// end after the retry began (retry-bounds, mock::poison_storm, 2 of about
/// 8 runs).
struct WallSink {
    history: History,
    host: String,
    /// When the member's driver started, since the run started.
    base: Duration,
}

impl EventSink for WallSink {
    fn emit(&self, at: Instant, event: &Event) {
        let at = Instant::from_millis(self.base.as_millis() as u64 + at.as_millis());
        self.history
            .record_at(at, &self.host, HRecord::Client(event.clone()));
    }
}

/// What processing does.
#[derive(Clone, Debug)]
pub enum Processing {
    /// 1 ms per record; records whose value ends in `poison` fail
    /// permanently.
    Work,
    /// The simulation's processor with a scenario's behaviour (latency,
    /// failures, poison), seeded per member.
    Behaviour(ruckus_sim::processing::Behaviour),
    /// Your processors: the factory makes one at every member start, with
    /// a client of the run's in-process store.
    Factory(DynFactory),
    /// No reference consumer: each member is a process of this command
    /// line (a black box; see [`crate::blackbox`]).
    Process(crate::blackbox::Command),
}

/// A running member.
#[derive(Debug)]
enum Member {
    /// A reference consumer on a task.
    Task(JoinHandle<()>, ShutdownHandle),
    /// A consumer process.
    Process(crate::blackbox::Process),
}

/// The processor of one member.
enum Processor {
    Work,
    Sim(SimProcessor),
    Boxed(BoxedProcessor),
}

impl MessageProcessor for Processor {
    async fn process(&self, record: &Record, ctx: &RecordContext) -> Result<(), ProcessingError> {
        match self {
            Processor::Work => {
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
            Processor::Sim(p) => p.process(record, ctx).await,
            Processor::Boxed(p) => p.process(record, ctx).await,
        }
    }

    fn on_success(&self, record: &Record) {
        if let Processor::Boxed(p) = self {
            p.on_success(record);
        }
    }

    fn on_failure(&self, record: &Record, error: &ProcessingError) {
        if let Processor::Boxed(p) = self {
            p.on_failure(record, error);
        }
    }

    fn on_dead_letter(&self, letter: &ruckus_core::consumer::DeadLetter) {
        if let Processor::Boxed(p) = self {
            p.on_dead_letter(letter);
        }
    }
}

/// What the producer writes.
#[derive(Clone, Debug)]
pub struct Workload {
    /// Messages in total.
    pub messages: usize,
    /// Messages sent before each pause.
    pub batch: usize,
    /// The pause between batches.
    pub interval: Duration,
    /// Every `poison_every`-th value ends in `poison` (0: none).
    pub poison_every: usize,
    /// What each record holds (default: key `key-<i mod 97>`, value
    /// `message-<i>`, poison as above).
    pub payloads: Option<Payloads>,
}

impl Workload {
    /// `messages` sent at once, no poison.
    pub fn burst(messages: usize) -> Self {
        Self {
            messages,
            batch: messages.max(1),
            interval: Duration::ZERO,
            poison_every: 0,
            payloads: None,
        }
    }
}

/// The consumer configuration of the hand-written tests: periodic commits,
/// three attempts, dead letters.
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

/// A run of reference-consumer members against one broker.
pub struct Run {
    /// The broker.
    pub broker: Broker,
    /// Topic and group names.
    pub names: Names,
    /// How members join.
    pub membership: Membership,
    /// What processing does.
    pub processing: Processing,
    /// The store your processors write to (in process), if they do.
    pub store: Option<Store>,
    bootstrap: String,
    partitions: i32,
    history: History,
    start: WallInstant,
    members: Vec<Option<Member>>,
    config: ConsumerConfig,
    producer_anomalies: Arc<std::sync::Mutex<Vec<String>>>,
}

impl std::fmt::Debug for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Run")
            .field("broker", &self.broker)
            .field("names", &self.names)
            .finish_non_exhaustive()
    }
}

/// Setting a run up failed.
#[derive(Debug, thiserror::Error)]
#[error("setting up the run: {0}")]
pub struct SetupError(pub String);

impl Run {
    /// A run of the hand-written tests on a fresh mock cluster of
    /// `brokers` brokers: topic [`TOPIC`] with [`PARTITIONS`] partitions.
    ///
    /// # Panics
    /// The mock cluster could not be created.
    pub fn new(brokers: i32, config: ConsumerConfig) -> Self {
        let mock = MockKafka::start(brokers).expect("mock cluster");
        mock.create_topic(TOPIC, PARTITIONS).expect("topic");
        mock.create_topic(DLQ, 2).expect("dlq topic");
        Self::assemble(
            Broker::Mock(mock),
            Names::new(TOPIC, GROUP),
            PARTITIONS,
            config,
        )
    }

    /// A run on `broker`: creates the topics (`partitions` and
    /// `dlq_partitions` partitions) and points `config` at `names`.
    ///
    /// # Errors
    /// The topics could not be created.
    pub async fn on(
        broker: Broker,
        names: Names,
        partitions: i32,
        dlq_partitions: i32,
        mut config: ConsumerConfig,
    ) -> Result<Self, SetupError> {
        match &broker {
            Broker::Mock(m) => {
                m.create_topic(&names.topic, partitions)
                    .and_then(|()| m.create_topic(&names.dlq, dlq_partitions))
                    .map_err(|e| SetupError(e.to_string()))?;
            }
            Broker::Container(_) | Broker::External(_) => {
                create_topics(&broker.bootstrap(), &names, partitions, dlq_partitions).await?;
            }
        }
        config.group_id = GroupId::new(names.group.clone());
        config.topics = vec![Topic::new(names.topic.clone())];
        if let Some(d) = config.dead_letter.as_mut() {
            d.topic = Topic::new(names.dlq.clone());
        }
        Ok(Self::assemble(broker, names, partitions, config))
    }

    fn assemble(broker: Broker, names: Names, partitions: i32, config: ConsumerConfig) -> Self {
        Self {
            bootstrap: broker.bootstrap(),
            broker,
            names,
            membership: Membership::default(),
            processing: Processing::Work,
            store: None,
            partitions,
            history: History::default(),
            start: WallInstant::now(),
            members: Vec::new(),
            config,
            producer_anomalies: Arc::default(),
        }
    }

    /// The mock cluster (mock-cluster runs only).
    ///
    /// # Panics
    /// The run is not on the mock cluster.
    pub fn mock(&self) -> &MockKafka {
        match &self.broker {
            Broker::Mock(m) => m,
            other => panic!("not a mock-cluster run: {other:?}"),
        }
    }

    /// The container (container runs only).
    pub fn container(&self) -> Option<&ContainerBroker> {
        match &self.broker {
            Broker::Container(c) => Some(c),
            _ => None,
        }
    }

    /// `bootstrap.servers`.
    pub fn bootstrap(&self) -> &str {
        &self.bootstrap
    }

    /// Wall-clock time since the run started.
    pub fn now(&self) -> Instant {
        Instant::from_millis(self.start.elapsed().as_millis() as u64)
    }

    /// When the run started.
    pub fn started(&self) -> WallInstant {
        self.start
    }

    /// Wall-clock time since the run started.
    pub fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }

    /// The history the members, the producer and the run record into.
    pub fn history(&self) -> &History {
        &self.history
    }

    /// Records the broker acknowledged without an offset that were then not
    /// found in the log (the broker's faults; not in the history).
    pub fn producer_anomalies(&self) -> Vec<String> {
        self.producer_anomalies.lock().expect("anomalies").clone()
    }

    /// The final stop: shuts every running member down gracefully and
    /// waits up to `within` for each; returns those that had not stopped.
    pub async fn stop_all(&mut self, within: Duration) -> Vec<String> {
        let mut unstopped = Vec::new();
        let running: Vec<(usize, Member)> = self
            .members
            .iter_mut()
            .enumerate()
            .filter_map(|(i, m)| m.take().map(|m| (i, m)))
            .collect();
        // Every member is asked first, then each is waited for.
        for (_, m) in &running {
            if let Member::Task(_, stop) = m {
                stop.shutdown();
            }
        }
        for (i, m) in running {
            let stopped = match m {
                Member::Task(task, _) => tokio::time::timeout(within, task).await.is_ok(),
                Member::Process(p) => p.terminate(within).await,
            };
            if !stopped {
                unstopped.push(format!("consumer-{i}"));
            }
        }
        unstopped
    }

    /// Records an applied fault.
    pub fn fault(&self, record: FaultRecord) {
        self.history
            .record_at(self.now(), "nemesis", HRecord::Fault(record));
    }

    /// Records a healed fault.
    pub fn healed(&self, record: FaultRecord) {
        self.history
            .record_at(self.now(), "nemesis", HRecord::Healed(record));
    }

    /// Records something the run itself made a broker do (a pin, a
    /// fail-over).
    pub fn broker_event(&self, event: BrokerEvent) {
        self.history
            .record_at(self.now(), "cluster", HRecord::Broker(event));
    }

    /// Whether member `i` runs.
    pub fn is_running(&self, i: usize) -> bool {
        self.members.get(i).is_some_and(Option::is_some)
    }

    /// Starts member `i` (`consumer-<i>`); kills a running one first.
    ///
    /// # Panics
    /// librdkafka rejected the configuration.
    pub fn start_member(&mut self, i: usize) {
        if let Err(e) = self.try_start_member(i) {
            eprintln!("consumer-{i}: {e}");
        }
    }

    /// [`Run::start_member`], saying why a member process could not start.
    ///
    /// # Errors
    /// A black box's program could not be started.
    ///
    /// # Panics
    /// librdkafka rejected the configuration.
    pub fn try_start_member(&mut self, i: usize) -> Result<(), crate::blackbox::BlackBoxError> {
        self.kill_member(i);
        let host = format!("consumer-{i}");
        if self.members.len() <= i {
            self.members.resize_with(i + 1, || None);
        }
        if let Processing::Process(cmd) = &self.processing {
            let p = crate::blackbox::Process::spawn(cmd, &host, &self.bootstrap, &self.names)?;
            self.members[i] = Some(Member::Process(p));
            return Ok(());
        }
        let mut kc = KafkaConfig::new(&self.bootstrap, &self.names.group, &host);
        kc.protocol = self.membership.protocol;
        kc.assignor = self.membership.assignor;
        kc.session_timeout = self.membership.session;
        kc.heartbeat_interval = self.membership.heartbeat;
        kc.revoke_timeout = self.config.revoke_timeout;
        if self.membership.static_membership {
            kc.extra
                .push(("group.instance.id".into(), format!("{host}-instance")));
        }

        let processor = match &self.processing {
            Processing::Work => Processor::Work,
            Processing::Behaviour(b) => Processor::Sim(SimProcessor::new(b.clone(), i as u64 + 1)),
            Processing::Process(_) => unreachable!("started above"),
            Processing::Factory(f) => {
                let start = self.start;
                let history = self.history.clone();
                let store = self
                    .store
                    .get_or_insert_with(|| {
                        Store::new(Some(history), move || {
                            Instant::from_millis(start.elapsed().as_millis() as u64)
                        })
                    })
                    .clone();
                Processor::Boxed(f.start(&MemberStart::new(
                    i,
                    i as u64 + 1,
                    StoreClient::in_process(store),
                )))
            }
        };
        let transport = RdKafkaTransport::new(kc).expect("transport");
        // Read as close to Driver::new (which starts its clock) as can be.
        let sink = Arc::new(WallSink {
            history: self.history.clone(),
            host: host.clone(),
            base: self.start.elapsed(),
        });
        let driver = Driver::new(
            self.config.clone(),
            transport,
            processor,
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
        self.members[i] = Some(Member::Task(task, stop));
        Ok(())
    }

    /// Whether member `i` is a process that has exited, and how.
    pub fn exited(&mut self, i: usize) -> Option<std::process::ExitStatus> {
        match self.members.get_mut(i)? {
            Some(Member::Process(p)) => p.exited(),
            _ => None,
        }
    }

    /// Freezes member `i`'s process (SIGSTOP); false if it is not a
    /// running process.
    pub fn pause_member(&self, i: usize) -> bool {
        match self.members.get(i) {
            Some(Some(Member::Process(p))) => {
                p.pause();
                true
            }
            _ => false,
        }
    }

    /// Thaws member `i`'s process (SIGCONT).
    pub fn resume_member(&self, i: usize) {
        if let Some(Some(Member::Process(p))) = self.members.get(i) {
            p.resume();
        }
    }

    /// Kills member `i`: its task is dropped mid-flight, nothing
    /// committed. Returns whether it was running.
    pub fn kill_member(&mut self, i: usize) -> bool {
        match self.members.get_mut(i).and_then(Option::take) {
            Some(Member::Task(task, _)) => {
                task.abort();
                true
            }
            Some(Member::Process(p)) => {
                p.kill();
                true
            }
            None => false,
        }
    }

    /// [`Run::kill_member`], recorded as a fault.
    pub fn crash_member(&mut self, i: usize) {
        if self.kill_member(i) {
            let at = Dur(Duration::from_millis(self.now().as_millis()));
            self.fault(FaultRecord::new(
                Fault::CrashMember {
                    at,
                    member: i,
                    restart_after: None,
                },
                vec![Target::Member(i)],
            ));
        }
    }

    /// Shuts member `i` down gracefully and waits (up to `within`) until it
    /// has left.
    pub async fn stop_member(&mut self, i: usize, within: Duration) {
        match self.members.get_mut(i).and_then(Option::take) {
            Some(Member::Task(task, stop)) => {
                stop.shutdown();
                let _ = tokio::time::timeout(within, task).await;
            }
            Some(Member::Process(p)) => {
                p.terminate(within).await;
            }
            None => {}
        }
    }

    /// Produces `workload` on its own task; each acknowledged record enters
    /// the history.
    pub fn produce(&self, workload: Workload) -> JoinHandle<()> {
        let (bootstrap, history, start, topic, anomalies) = (
            self.bootstrap.clone(),
            self.history.clone(),
            self.start,
            self.names.topic.clone(),
            self.producer_anomalies.clone(),
        );
        tokio::spawn(async move {
            let producer: FutureProducer = ClientConfig::new()
                .set("bootstrap.servers", bootstrap.clone())
                .set("acks", "all")
                .set("enable.idempotence", "true")
                .set("linger.ms", "5")
                .create()
                .expect("producer");
            let mut waits = Vec::new();
            let poison = workload.poison_every;
            let payloads = workload.payloads.clone();
            let payload = |i: usize| -> (Option<Vec<u8>>, Option<Vec<u8>>) {
                match &payloads {
                    Some(p) => {
                        let p = p.payload(i);
                        (p.key.map(|k| k.to_vec()), p.value.map(|v| v.to_vec()))
                    }
                    None => (
                        Some(format!("key-{}", i % 97).into_bytes()),
                        Some(value_of(i, poison).into_bytes()),
                    ),
                }
            };
            for i in 0..workload.messages {
                let (key, value) = payload(i);
                let mut record = FutureRecord::<Vec<u8>, Vec<u8>>::to(&topic);
                if let Some(k) = &key {
                    record = record.key(k);
                }
                if let Some(v) = &value {
                    record = record.payload(v);
                }
                waits.push(producer.send_result(record).expect("queued"));
                if !workload.interval.is_zero() && (i + 1) % workload.batch.max(1) == 0 {
                    tokio::time::sleep(workload.interval).await;
                }
            }
            // An idempotent retry of a batch the broker had already written
            // is acknowledged without its offset (-1): look such records up
            // in the log by their value afterwards.
            let mut unknown: Vec<(i32, String, Instant)> = Vec::new();
            for (i, w) in waits.into_iter().enumerate() {
                if let Ok(Ok(d)) = w.await {
                    let at = Instant::from_millis(start.elapsed().as_millis() as u64);
                    if d.offset < 0 {
                        let value = payload(i).1.unwrap_or_default();
                        unknown.push((
                            d.partition,
                            String::from_utf8_lossy(&value).into_owned(),
                            at,
                        ));
                        continue;
                    }
                    history.record_at(
                        at,
                        "producer",
                        HRecord::Client(Event::Produced {
                            tp: TopicPartition::new(topic.as_str(), d.partition),
                            offset: Offset(d.offset),
                        }),
                    );
                }
            }
            if !unknown.is_empty() {
                let found = tokio::task::spawn_blocking({
                    let (bootstrap, topic, unknown) =
                        (bootstrap.clone(), topic.clone(), unknown.clone());
                    move || find_offsets(&bootstrap, &topic, &unknown)
                })
                .await
                .unwrap_or_default();
                for ((partition, value, at), offset) in unknown.into_iter().zip(found) {
                    let Some(offset) = offset else {
                        // Acknowledged, yet not in the log: the broker lost
                        // it (or never wrote it) — nothing a consumer could
                        // have read.
                        anomalies.lock().expect("anomalies").push(format!(
                            "{value} was acknowledged on partition {partition} without an \
                             offset and is not in the log"
                        ));
                        continue;
                    };
                    history.record_at(
                        at,
                        "producer",
                        HRecord::Client(Event::Produced {
                            tp: TopicPartition::new(topic.as_str(), partition),
                            offset: Offset(offset),
                        }),
                    );
                }
            }
        })
    }

    /// Produces [`Workload::burst`]`(messages)` with every `poison_every`-th
    /// value poison.
    pub fn produce_burst(&self, messages: usize, poison_every: usize) -> JoinHandle<()> {
        self.produce(Workload {
            poison_every,
            ..Workload::burst(messages)
        })
    }

    /// Waits until every partition's committed offset reaches one past its
    /// highest acknowledged produce; returns when, or `None` at the
    /// deadline.
    pub async fn converge(&self, within: Duration) -> Option<Instant> {
        let admin: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", self.bootstrap.clone())
            .set("group.id", self.names.group.clone())
            .set("enable.auto.commit", "false")
            .create()
            .expect("admin consumer");
        let admin = Arc::new(admin);
        let deadline = WallInstant::now() + within;
        while WallInstant::now() < deadline {
            let a = admin.clone();
            // The end of each partition comes from the history: some
            // brokers' "latest" ListOffsets is wrong after batched produces
            // (Tansu's).
            let mut ends = BTreeMap::new();
            for e in self.history.entries() {
                if let Some(Event::Produced { tp, offset }) = e.event() {
                    let end = ends.entry(tp.partition.0).or_insert(0);
                    *end = (*end).max(offset.0 + 1);
                }
            }
            let (topic, partitions) = (self.names.topic.clone(), self.partitions);
            let done = tokio::task::spawn_blocking(move || {
                let mut tpl = TopicPartitionList::new();
                for p in 0..partitions {
                    tpl.add_partition(&topic, p);
                }
                let Ok(committed) = a.committed_offsets(tpl, Duration::from_secs(2)) else {
                    return false;
                };
                (0..partitions).all(|p| {
                    let end = ends.get(&p).copied().unwrap_or(0);
                    match committed.find_partition(&topic, p).map(|e| e.offset()) {
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

    /// Waits for convergence (up to `within`), stops the members gracefully
    /// and judges the history against `wanted`.
    pub async fn finish_checking(
        mut self,
        name: &str,
        within: Duration,
        wanted: &[Invariant],
    ) -> Verdict {
        let converged = self.converge(within).await;
        let deadline = self.now();
        let unstopped = self.stop_all(Duration::from_secs(15)).await;
        let mut history = self.history.entries();
        history.sort_by_key(|e| e.at);
        let ctx = Context {
            retry: self.config.retry.clone(),
            order: match self.config.ordering {
                ruckus_core::consumer::Ordering::Key => Order::Key,
                _ => Order::Partition,
            },
            liveness: Liveness {
                deadline,
                converged_at: converged,
                // Convergence here already polled the broker's committed
                // offsets up to the high watermark, before the stop.
                lagging: vec![],
                unstopped,
            },
            // Stamped in whole milliseconds when the sink sees the event.
            resolution: Duration::from_millis(2),
            no_rebalance: None,
        };
        let violations = check::check(&history, &ctx, wanted);
        eprintln!(
            "{name}: {} events in {:.1}s; converged at {}",
            history.len(),
            self.start.elapsed().as_secs_f64(),
            converged.map_or("never".into(), |t| t.to_string())
        );
        let producer_anomalies = self.producer_anomalies();
        Verdict {
            history,
            violations,
            converged_at: converged,
            elapsed: self.start.elapsed(),
            producer_anomalies,
        }
    }

    /// [`Run::finish_checking`] with every invariant.
    pub async fn finish(self, name: &str, within: Duration) -> (Vec<Entry>, Vec<check::Violation>) {
        let v = self.finish_checking(name, within, &Invariant::ALL).await;
        (v.history, v.violations)
    }
}

/// The outcome of a run.
#[derive(Debug)]
pub struct Verdict {
    /// Every event, in time order.
    pub history: Vec<Entry>,
    /// What the checkers found.
    pub violations: Vec<check::Violation>,
    /// When everything produced was committed.
    pub converged_at: Option<Instant>,
    /// Wall time of the run.
    pub elapsed: Duration,
    /// Records the broker acknowledged without an offset that were then
    /// not found in the log (broker faults; not in the history).
    pub producer_anomalies: Vec<String>,
}

impl Verdict {
    /// The history's group events and faults, one per line, and the
    /// violations: what a failing run should show.
    pub fn report(&self, name: &str) -> String {
        let mut out = String::new();
        for e in self.history.iter().filter(|e| {
            matches!(
                &e.record,
                HRecord::Client(
                    Event::Joined { .. }
                        | Event::Assigned { .. }
                        | Event::Revoked { .. }
                        | Event::Lost { .. }
                        | Event::Stopped { .. }
                ) | HRecord::Fault(_)
                    | HRecord::Healed(_)
                    | HRecord::Broker(_)
            )
        }) {
            out.push_str(&check::render(e));
            out.push('\n');
        }
        for v in &self.violations {
            out.push_str(&format!("{name}: {v}\n"));
        }
        out
    }

    /// Writes the whole history to the file `RUCKUS_DUMP` names, if set.
    pub fn dump(&self) {
        if let Ok(path) = std::env::var("RUCKUS_DUMP") {
            let lines: Vec<String> = self.history.iter().map(check::render).collect();
            if let Err(e) = std::fs::write(&path, lines.join("\n")) {
                eprintln!("RUCKUS_DUMP={path}: {e}");
            }
        }
    }
}

/// The value of the `i`-th produced message.
fn value_of(i: usize, poison_every: usize) -> String {
    if poison_every > 0 && i % poison_every == poison_every - 1 {
        format!("message-{i}-poison")
    } else {
        format!("message-{i}")
    }
}

/// The offsets of records with these values, read from the log (`None`
/// for one not found within 30 s).
fn find_offsets(
    bootstrap: &str,
    topic: &str,
    wanted: &[(i32, String, Instant)],
) -> Vec<Option<i64>> {
    let mut found: Vec<Option<i64>> = vec![None; wanted.len()];
    let Ok(reader) = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "ruckus-offset-lookup")
        .set("enable.auto.commit", "false")
        .create::<BaseConsumer>()
    else {
        return found;
    };
    let mut tpl = TopicPartitionList::new();
    let partitions: std::collections::BTreeSet<i32> = wanted.iter().map(|w| w.0).collect();
    for p in &partitions {
        let _ = tpl.add_partition_offset(topic, *p, RdOffset::Beginning);
    }
    if reader.assign(&tpl).is_err() {
        return found;
    }
    let deadline = WallInstant::now() + Duration::from_secs(30);
    while found.iter().any(Option::is_none) && WallInstant::now() < deadline {
        let Some(Ok(m)) = reader.poll(Duration::from_millis(200)) else {
            continue;
        };
        let Some(payload) = m.payload() else { continue };
        for (k, (p, value, _)) in wanted.iter().enumerate() {
            if found[k].is_none() && *p == m.partition() && payload == value.as_bytes() {
                found[k] = Some(m.offset());
            }
        }
    }
    found
}

async fn create_topics(
    bootstrap: &str,
    names: &Names,
    partitions: i32,
    dlq_partitions: i32,
) -> Result<(), SetupError> {
    create(
        bootstrap,
        &[(&names.topic, partitions), (&names.dlq, dlq_partitions)],
    )
    .await
}

/// Creates `topic` with `partitions` partitions on the cluster at
/// `bootstrap` (an existing one is kept).
///
/// # Errors
/// The cluster refused.
pub async fn create_topic(bootstrap: &str, topic: &str, partitions: i32) -> Result<(), SetupError> {
    create(bootstrap, &[(topic, partitions)]).await
}

async fn create(bootstrap: &str, wanted: &[(&str, i32)]) -> Result<(), SetupError> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .map_err(|e| SetupError(format!("admin client: {e}")))?;
    let topics: Vec<NewTopic<'_>> = wanted
        .iter()
        .map(|(t, p)| NewTopic::new(t, *p, TopicReplication::Fixed(1)))
        .collect();
    let created = admin
        .create_topics(
            &topics,
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
        )
        .await
        .map_err(|e| SetupError(format!("create topics: {e}")))?;
    for r in created {
        match r {
            Ok(_) => {}
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((t, e)) => return Err(SetupError(format!("creating {t}: {e}"))),
        }
    }
    Ok(())
}

/// Panics with the violations (after printing the group events and
/// faults, and writing `RUCKUS_DUMP`) if there are any.
///
/// # Panics
/// When `violations` is not empty: this is for tests.
pub fn assert_holds(name: &str, h: &[Entry], violations: &[check::Violation]) {
    if violations.is_empty() {
        return;
    }
    let verdict = Verdict {
        history: h.to_vec(),
        violations: violations.to_vec(),
        converged_at: None,
        elapsed: Duration::ZERO,
        producer_anomalies: Vec::new(),
    };
    eprint!("{}", verdict.report(name));
    verdict.dump();
    let text: Vec<String> = violations.iter().map(ToString::to_string).collect();
    panic!("{name}: {}", text.join("\n"));
}

/// Events of `history` that `f` selects.
pub fn count(h: &[Entry], f: impl Fn(&Event) -> bool) -> usize {
    h.iter().filter(|e| e.event().is_some_and(&f)).count()
}
