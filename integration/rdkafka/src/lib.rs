//! # ruckus-rdkafka — the reference consumer's transport for real brokers
//!
//! `ruckus-core`'s [`Transport`] over a real Kafka client (rdkafka), so the
//! reference consumer runs unchanged against Kafka-protocol brokers: the
//! classic protocol, eager and cooperative, and KIP-848. A service depends
//! on this crate and `ruckus-core`; nothing of the test harness (no
//! simulator, no testcontainers, no command line) comes with it.
//!
//! - Offsets are never committed or stored by librdkafka on its own
//!   (`enable.auto.commit=false`, `enable.auto.offset.store=false`); the
//!   engine commits explicit offset lists.
//! - The consumer queue is polled on the driver's own task, inside
//!   [`Transport::poll`]; it carries the group's callbacks.
//! - Each assigned partition's messages are taken off the consumer queue
//!   onto the partition's own fetch queue (before the partition is first
//!   assigned). A thread of the transport's own ("ruckus-fetch") takes
//!   them from there up to `max_poll_records` (500) at a time, in one
//!   librdkafka call, copies keys, values and headers out, and hands the
//!   batch to `poll` (at most 8 batches ahead, so librdkafka's own prefetch
//!   limits still hold). `poll` turns batches into records, and drops those
//!   of a partition sought since the batch was taken (taken before the
//!   seek's barrier).
//! - Rebalances are served there too and become [`TransportEvent`]s: an
//!   assignment (with the group generation read from librdkafka), a
//!   revocation, or a loss. A revocation is not given back to librdkafka in
//!   its callback: the partitions are unassigned only when the engine says
//!   [`Transport::revocation_done`] (or after `revoke_timeout`), so the
//!   engine commits its completed prefix while it still owns them.
//! - Dead letters go through an idempotent producer with `acks=all`.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::{Duration, Instant as WallInstant};

use bytes::Bytes;
use futures_util::task::AtomicWaker;
use futures_util::StreamExt;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, RebalanceProtocol, StreamConsumer,
};
use rdkafka::error::KafkaError;
use rdkafka::message::{Header as RdHeader, Headers, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::topic_partition_list::TopicPartitionList;
use rdkafka::types::{RDKafkaErrorCode, RDKafkaRespErr};
use rdkafka::{ClientContext, Offset as RdOffset};
use ruckus_core::consumer::{DeadLetter, StartPosition};
use ruckus_core::driver::{Transport, TransportError, TransportEvent};
use ruckus_core::model::{
    ErrorCode, Generation, Header, MemberId, Offset, Partition, Record, Timestamp, Topic,
    TopicPartition,
};

mod ffi;

use crate::ffi::{Bell, FetchQueue, Fetched, Reaper};

/// How the consumer group rebalances.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Assignor {
    /// Eager, range.
    Range,
    /// Eager, round-robin.
    RoundRobin,
    /// Cooperative (KIP-429), sticky.
    CooperativeSticky,
}

impl Assignor {
    /// Every assignor librdkafka has.
    pub const ALL: [Assignor; 3] = [
        Assignor::Range,
        Assignor::RoundRobin,
        Assignor::CooperativeSticky,
    ];

    /// The assignor of this `partition.assignment.strategy` name.
    pub fn from_name(name: &str) -> Option<Assignor> {
        Self::ALL.into_iter().find(|a| a.as_str() == name)
    }

    /// Its `partition.assignment.strategy` name.
    pub fn as_str(self) -> &'static str {
        match self {
            Assignor::Range => "range",
            Assignor::RoundRobin => "roundrobin",
            Assignor::CooperativeSticky => "cooperative-sticky",
        }
    }
}

/// Which group protocol the consumer speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GroupProtocol {
    /// The classic protocol (JoinGroup/SyncGroup/Heartbeat), the assignor
    /// on the client.
    Classic,
    /// KIP-848 (`group.protocol=consumer`): the broker assigns and
    /// reconciles incrementally through ConsumerGroupHeartbeat; session
    /// timeout and heartbeat interval are the broker's, so
    /// [`KafkaConfig::assignor`], `session_timeout` and
    /// `heartbeat_interval` are not sent.
    Consumer,
}

/// Settings of the rdkafka transport.
#[derive(Clone, Debug)]
pub struct KafkaConfig {
    /// `bootstrap.servers`.
    pub bootstrap: String,
    /// `group.id`.
    pub group_id: String,
    /// `client.id` (also the member's name in the history).
    pub client_id: String,
    /// The group protocol.
    pub protocol: GroupProtocol,
    /// The assignor (classic protocol).
    pub assignor: Assignor,
    /// `session.timeout.ms`.
    pub session_timeout: Duration,
    /// `heartbeat.interval.ms`.
    pub heartbeat_interval: Duration,
    /// How long a revocation waits for the engine before giving the
    /// partitions up anyway.
    pub revoke_timeout: Duration,
    /// Timeout of blocking calls (commits, offset and watermark queries).
    pub request_timeout: Duration,
    /// Records handed to the engine per poll at most (as the Java
    /// client's `max.poll.records`, default 500); also the size of the
    /// batches the fetch thread takes. Larger batches cost less per record
    /// and make the first record of a batch wait longer for the last.
    pub max_poll_records: usize,
    /// Further client properties, applied last (consumer and producer).
    pub extra: Vec<(String, String)>,
}

impl KafkaConfig {
    /// Defaults for a group on `bootstrap`, tuned for tests: short
    /// sessions, small prefetch, short fetch waits.
    pub fn new(bootstrap: &str, group_id: &str, client_id: &str) -> Self {
        Self {
            bootstrap: bootstrap.to_owned(),
            group_id: group_id.to_owned(),
            client_id: client_id.to_owned(),
            protocol: GroupProtocol::Classic,
            assignor: Assignor::CooperativeSticky,
            session_timeout: Duration::from_millis(2_000),
            heartbeat_interval: Duration::from_millis(100),
            revoke_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(5),
            max_poll_records: 500,
            extra: Vec::new(),
        }
    }

    /// The consumer's client configuration.
    pub fn consumer_config(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.bootstrap)
            .set("group.id", &self.group_id)
            .set("client.id", &self.client_id)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .set("fetch.wait.max.ms", "20")
            .set("fetch.queue.backoff.ms", "10")
            .set("queued.min.messages", "200")
            .set("topic.metadata.refresh.interval.ms", "1000")
            .set("reconnect.backoff.ms", "50")
            .set("reconnect.backoff.max.ms", "500");
        match self.protocol {
            GroupProtocol::Classic => {
                c.set("group.protocol", "classic")
                    .set("partition.assignment.strategy", self.assignor.as_str())
                    .set("session.timeout.ms", ms(self.session_timeout))
                    .set("heartbeat.interval.ms", ms(self.heartbeat_interval));
            }
            GroupProtocol::Consumer => {
                c.set("group.protocol", "consumer");
            }
        }
        for (k, v) in &self.extra {
            c.set(k, v);
        }
        c
    }

    /// The dead-letter producer's configuration: idempotent, `acks=all`.
    pub fn producer_config(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.bootstrap)
            .set("client.id", format!("{}-dlq", self.client_id))
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("message.timeout.ms", "5000")
            .set("linger.ms", "0");
        for (k, v) in &self.extra {
            if k.starts_with("test.") || k.starts_with("reconnect.") {
                c.set(k, v);
            }
        }
        c
    }
}

fn ms(d: Duration) -> String {
    d.as_millis().to_string()
}

/// A revocation librdkafka is waiting for: the partitions are unassigned
/// once the engine is done with them.
struct PendingRevoke {
    tpl: TopicPartitionList,
    since: WallInstant,
}

/// The consumer context. Its callbacks run inside librdkafka's poll, on
/// the driver's task.
struct Ctx {
    /// Group events for the engine, in the order librdkafka reported them.
    events: Mutex<VecDeque<TransportEvent>>,
    /// Set while `events` is not empty (checked once per polled message).
    has_events: AtomicBool,
    /// The revocation librdkafka waits for, if any.
    revoke: Mutex<Option<PendingRevoke>>,
    /// Leaving: a revocation is given up at once, nobody waits for it.
    leaving: AtomicBool,
    /// Each assigned partition's own fetch queue (see [`FetchQueue`]).
    queues: Mutex<FetchQueues>,
    /// Rung for the fetch thread: a fetch queue turned non-empty, `poll`
    /// took a batch, or the transport is closing.
    bell: Arc<Bell>,
    /// Batches the fetch thread took, for `poll`.
    ready: Mutex<Ready>,
    /// Woken when a batch is ready.
    wake: AtomicWaker,
    /// The fetch thread is to end.
    closing: AtomicBool,
    /// Records per batch and per poll (`max_poll_records`).
    batch: usize,
}

/// Batches the fetch thread may be ahead of `poll`.
const READY_MAX: usize = 8;

/// The fetch thread's hand-over to `poll`.
#[derive(Default)]
struct Ready {
    fetches: VecDeque<Fetch>,
    /// The fetch thread waits for room (it is rung once half is taken, not
    /// for every batch).
    waiting: bool,
}

/// A batch taken from the fetch queues, and the seek count when it was
/// taken (see [`FetchQueues::seeks`]).
struct Fetch {
    batch: Batch,
    seeks: u64,
}

/// The partitions' fetch queues, drained in turn starting from `next`,
/// and what destroys the messages taken from them.
#[derive(Default)]
struct FetchQueues {
    list: Vec<(TopicPartition, FetchQueue)>,
    next: usize,
    /// `None` if its thread could not be started: then messages are
    /// destroyed in place.
    reaper: Option<Reaper>,
    /// Seeks so far. A seek bumps librdkafka's version barrier and this
    /// count under the same lock as draining, so a batch taken with a
    /// lower count may hold that partition's messages from before the
    /// seek, and one with this count or higher does not.
    seeks: u64,
}

impl Ctx {
    fn push(&self, event: TransportEvent) {
        let mut events = self.events.lock().expect("events");
        events.push_back(event);
        self.has_events.store(true, Ordering::Release);
    }

    fn has_events(&self) -> bool {
        self.has_events.load(Ordering::Acquire)
    }

    /// Takes each partition of `tpl` out of the consumer queue onto its own
    /// fetch queue, once per client. Called before the partitions are
    /// assigned, so none of their messages reach the consumer queue.
    fn split(&self, consumer: &BaseConsumer<Self>, tpl: &TopicPartitionList) {
        let mut queues = self.queues.lock().expect("queues");
        for tp in partitions_of(tpl) {
            if queues.list.iter().any(|(t, _)| *t == tp) {
                continue;
            }
            // A partition that cannot be split (no such topic handle) stays
            // on the consumer queue, which is polled too.
            if let Some(q) = FetchQueue::split(
                consumer.client(),
                tp.topic.as_str(),
                tp.partition.0,
                self.bell.clone(),
                self.batch,
            ) {
                queues.list.push((tp, q));
            }
        }
    }

    /// Takes what the fetch queues hold, up to `self.batch` records in `batch`,
    /// without waiting; each call starts from the next queue, so no
    /// partition starves the others. Returns the seek count it drained at.
    fn drain_queues(&self, batch: &mut Batch) -> u64 {
        let mut queues = self.queues.lock().expect("queues");
        let FetchQueues {
            list,
            next,
            reaper,
            seeks,
        } = &mut *queues;
        let n = list.len();
        for i in 0..n {
            let room = self.batch.saturating_sub(batch.len());
            if room == 0 {
                break;
            }
            let (tp, q) = &mut list[(*next + i) % n];
            let start = batch.polled.len();
            batch.runs.push((tp.clone(), start));
            q.drain(room, reaper.as_mut(), |m| batch.push_fetched(m));
            if batch.polled.len() == start {
                batch.runs.pop();
            }
        }
        if n > 0 {
            *next = (*next + 1) % n;
        }
        *seeks
    }

    /// The fetch thread: drains the fetch queues into batches for `poll`,
    /// while fewer than `READY_MAX` wait, until the transport closes.
    fn fetch(&self) {
        const IDLE: Duration = Duration::from_millis(100);
        // Room left in the last batch's buffer: the next batch is copied
        // on after it, so a buffer serves several batches.
        let mut spare = bytes::BytesMut::new();
        while !self.closing.load(Ordering::Acquire) {
            {
                let mut ready = self.ready.lock().expect("ready");
                ready.waiting = ready.fetches.len() >= READY_MAX;
                if ready.waiting {
                    drop(ready);
                    self.bell.wait(IDLE);
                    continue;
                }
            }
            let mut batch = Batch {
                arena: std::mem::take(&mut spare),
                polled: Vec::with_capacity(self.batch),
                ..Batch::default()
            };
            let seeks = self.drain_queues(&mut batch);
            spare = batch.arena.split_off(batch.arena.len());
            if batch.is_empty() {
                // Going idle: what was taken is destroyed now.
                if let Some(r) = self.queues.lock().expect("queues").reaper.as_mut() {
                    r.flush();
                }
                self.bell.wait(IDLE);
                continue;
            }
            self.ready
                .lock()
                .expect("ready")
                .fetches
                .push_back(Fetch { batch, seeks });
            self.wake.wake();
        }
    }

    /// Takes ready batches holding up to about `max` records; rings the
    /// fetch thread if it waits for room and half the hand-over is free.
    fn take_ready(&self, max: usize, into: &mut Vec<Fetch>) -> usize {
        let mut ready = self.ready.lock().expect("ready");
        let mut n = 0;
        while n < max {
            let Some(f) = ready.fetches.pop_front() else {
                break;
            };
            n += f.batch.len();
            into.push(f);
        }
        let ring = ready.waiting && ready.fetches.len() <= READY_MAX / 2;
        if ring {
            ready.waiting = false;
        }
        drop(ready);
        if ring {
            self.bell.ring();
        }
        n
    }

    fn take_events(&self) -> Vec<TransportEvent> {
        if !self.has_events() {
            return Vec::new();
        }
        let mut events = self.events.lock().expect("events");
        self.has_events.store(false, Ordering::Release);
        events.drain(..).collect()
    }

    /// Reports an assignment (and the generation it belongs to).
    fn assigned(&self, consumer: &BaseConsumer<Self>, tpl: &TopicPartitionList) {
        let (generation, member) =
            ffi::group_generation(consumer.client()).unwrap_or((-1, String::new()));
        let generation = Generation(generation);
        self.push(TransportEvent::Joined {
            member_id: MemberId::new(member),
            generation,
        });
        let partitions = partitions_of(tpl);
        // librdkafka keeps an application pause across an unassign and a
        // later assign of the same partition, which is the rule on
        // `Transport`: the engine resumes what it left paused.
        if !partitions.is_empty() {
            self.push(TransportEvent::Assigned {
                partitions,
                generation,
            });
        }
    }
}

impl ClientContext for Ctx {}

fn partitions_of(tpl: &TopicPartitionList) -> Vec<TopicPartition> {
    tpl.elements()
        .iter()
        .map(|e| TopicPartition {
            topic: Topic::new(e.topic()),
            partition: Partition(e.partition()),
        })
        .collect()
}

/// Gives partitions back to librdkafka: an incremental unassign under a
/// cooperative protocol, the whole assignment otherwise. Failures are
/// librdkafka's to report; the group goes on either way.
fn unassign<C: Consumer<Ctx>>(consumer: &C, tpl: &TopicPartitionList) {
    let _ = match consumer.rebalance_protocol() {
        RebalanceProtocol::Cooperative => consumer.incremental_unassign(tpl),
        _ => consumer.unassign(),
    };
}

impl ConsumerContext for Ctx {
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                self.split(consumer, tpl);
                let _ = match consumer.rebalance_protocol() {
                    RebalanceProtocol::Cooperative => consumer.incremental_assign(tpl),
                    _ => consumer.assign(tpl),
                };
                self.assigned(consumer, tpl);
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                let partitions = partitions_of(tpl);
                if partitions.is_empty() {
                    unassign(consumer, tpl);
                } else if consumer.assignment_lost() {
                    self.push(TransportEvent::Lost { partitions });
                    unassign(consumer, tpl);
                } else {
                    self.push(TransportEvent::Revoked { partitions });
                    if self.leaving.load(Ordering::SeqCst) {
                        unassign(consumer, tpl);
                    } else {
                        // Held until the engine committed what it finished.
                        *self.revoke.lock().expect("revoke") = Some(PendingRevoke {
                            tpl: tpl.clone(),
                            since: WallInstant::now(),
                        });
                    }
                }
            }
            // A rebalance error: give up the assignment, as librdkafka's
            // own handling does; the group reassigns.
            _ => unassign(consumer, tpl),
        }
    }
}

/// The transport. Build with [`RdKafkaTransport::new`] inside a tokio
/// runtime.
pub struct RdKafkaTransport {
    config: KafkaConfig,
    consumer: Arc<StreamConsumer<Ctx>>,
    producer: FutureProducer,
    /// Next offset to hand to the engine per owned partition; records below
    /// are stale (from before a seek) and dropped.
    positions: BTreeMap<TopicPartition, Offset>,
    /// The seek count (see [`FetchQueues::seeks`]) at each partition's
    /// last seek.
    sought: BTreeMap<TopicPartition, u64>,
    /// Where records polled from the consumer queue are gathered.
    batch: Batch,
    /// Batches taken from the fetch thread by a poll.
    fetches: Vec<Fetch>,
    /// The fetch thread; joined on drop.
    fetcher: Option<std::thread::JoinHandle<()>>,
}

impl std::fmt::Debug for RdKafkaTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RdKafkaTransport")
            .field("client_id", &self.config.client_id)
            .finish_non_exhaustive()
    }
}

fn kafka_error(e: &KafkaError) -> ErrorCode {
    match e.rdkafka_error_code() {
        Some(code) => {
            let c = code as i32;
            if c >= 0 {
                ErrorCode::from_code(c as i16)
            } else {
                // librdkafka's local errors: timeouts and transport failures
                // are worth retrying; say so with a retriable Kafka code.
                match code {
                    RDKafkaErrorCode::MessageTimedOut
                    | RDKafkaErrorCode::OperationTimedOut
                    | RDKafkaErrorCode::RequestTimedOut => ErrorCode::RequestTimedOut,
                    RDKafkaErrorCode::AllBrokersDown | RDKafkaErrorCode::BrokerTransportFailure => {
                        ErrorCode::NetworkException
                    }
                    RDKafkaErrorCode::State => ErrorCode::RebalanceInProgress,
                    _ => ErrorCode::UnknownServerError,
                }
            }
        }
        None => ErrorCode::UnknownServerError,
    }
}

fn transport_error(e: &KafkaError) -> TransportError {
    TransportError::Io(e.to_string())
}

impl RdKafkaTransport {
    /// Creates the consumer and the dead-letter producer. Nothing joins
    /// the group until `subscribe`.
    ///
    /// # Errors
    /// librdkafka rejected the configuration.
    pub fn new(config: KafkaConfig) -> Result<Self, TransportError> {
        let ctx = Ctx {
            events: Mutex::new(VecDeque::new()),
            has_events: AtomicBool::new(false),
            revoke: Mutex::new(None),
            leaving: AtomicBool::new(false),
            queues: Mutex::new(FetchQueues {
                reaper: Reaper::start().ok(),
                ..FetchQueues::default()
            }),
            bell: Arc::default(),
            ready: Mutex::default(),
            wake: AtomicWaker::new(),
            closing: AtomicBool::new(false),
            batch: config.max_poll_records.max(1),
        };
        let consumer: StreamConsumer<Ctx> = config
            .consumer_config()
            .create_with_context(ctx)
            .map_err(|e| transport_error(&e))?;
        let producer: FutureProducer = config
            .producer_config()
            .create()
            .map_err(|e| transport_error(&e))?;
        let fetch_ctx = consumer.context().clone();
        let fetcher = std::thread::Builder::new()
            .name("ruckus-fetch".into())
            .spawn(move || fetch_ctx.fetch())
            .map_err(|e| TransportError::Io(format!("cannot start the fetch thread: {e}")))?;
        Ok(Self {
            config,
            consumer: Arc::new(consumer),
            producer,
            positions: BTreeMap::new(),
            sought: BTreeMap::new(),
            batch: Batch::default(),
            fetches: Vec::new(),
            fetcher: Some(fetcher),
        })
    }

    /// Runs a blocking librdkafka call off the async thread.
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&StreamConsumer<Ctx>) -> T + Send + 'static,
    ) -> Result<T, TransportError> {
        let c = self.consumer.clone();
        tokio::task::spawn_blocking(move || f(&c))
            .await
            .map_err(|e| TransportError::Io(e.to_string()))
    }

    fn ctx(&self) -> &Arc<Ctx> {
        self.consumer.context()
    }

    /// From now on revocations are not held; one that is held is given
    /// back now.
    fn stop_holding_revocations(&self) {
        self.ctx().leaving.store(true, Ordering::SeqCst);
        self.finish_revocation();
    }

    /// Gives the partitions of a held revocation back to librdkafka.
    fn finish_revocation(&self) {
        let pending = self.ctx().revoke.lock().expect("revoke").take();
        if let Some(p) = pending {
            unassign(&*self.consumer, &p.tpl);
        }
    }

    /// Group events for the engine; the positions of partitions it gives
    /// up are forgotten, so their late records are dropped.
    fn take_events(&mut self) -> Vec<TransportEvent> {
        let events = self.ctx().take_events();
        for e in &events {
            if let TransportEvent::Revoked { partitions } | TransportEvent::Lost { partitions } = e
            {
                for tp in partitions {
                    self.positions.remove(tp);
                }
            }
        }
        events
    }

    /// Records of owned partitions at or past the engine's position.
    fn accept(&mut self, mut batch: Vec<Record>) -> Vec<Record> {
        // Records come in runs of one partition: its position is looked up
        // once per run and written back at the run's end. Filtered in
        // place: a record is not moved once more.
        fn end_run(
            positions: &mut BTreeMap<TopicPartition, Offset>,
            run: Option<(TopicPartition, Option<Offset>)>,
        ) {
            if let Some((tp, Some(pos))) = run {
                positions.insert(tp, pos);
            }
        }
        let positions = &mut self.positions;
        let mut run: Option<(TopicPartition, Option<Offset>)> = None;
        batch.retain(|r| {
            if !run.as_ref().is_some_and(|(tp, _)| *tp == r.topic_partition) {
                end_run(positions, run.take());
                let pos = positions.get(&r.topic_partition).copied();
                run = Some((r.topic_partition.clone(), pos));
            }
            match run.as_mut() {
                Some((_, Some(pos))) if r.offset >= *pos => {
                    *pos = Offset(r.offset.0 + 1);
                    true
                }
                _ => false,
            }
        });
        end_run(positions, run);
        batch
    }
}

impl Drop for RdKafkaTransport {
    fn drop(&mut self) {
        // Nobody answers revocations any more; the consumer's own close
        // (when it is dropped) then leaves the group.
        self.stop_holding_revocations();
        // The fetch thread ends; queue handles go back, and every message
        // taken is destroyed, before the client is destroyed.
        self.ctx().closing.store(true, Ordering::Release);
        self.ctx().bell.ring();
        if let Some(t) = self.fetcher.take() {
            let _ = t.join();
        }
        let mut queues = self.ctx().queues.lock().expect("queues");
        queues.list.clear();
        drop(queues.reaper.take());
    }
}

/// A polled message, its key and value copied into the batch's arena (its
/// partition is its run's).
struct Polled {
    offset: Offset,
    key: Option<std::ops::Range<usize>>,
    value: Option<std::ops::Range<usize>>,
    headers: Vec<Header>,
    timestamp: Timestamp,
}

/// A header, copied out of librdkafka's message.
fn header(key: &str, value: Option<&[u8]>) -> Header {
    Header {
        key: key.to_owned(),
        value: value.map(Bytes::copy_from_slice),
    }
}

/// Records gathered by one poll or one drain of the fetch thread. Keys and
/// values are copied into one buffer per batch (one allocation, not two per
/// record) that the records then share; topic names are interned. Messages
/// come in runs of one partition, each run named once: a batch filled on
/// one thread and made into records on another touches no reference count
/// per record on the first.
#[derive(Default)]
struct Batch {
    arena: bytes::BytesMut,
    polled: Vec<Polled>,
    /// Each run's partition and where in `polled` it starts.
    runs: Vec<(TopicPartition, usize)>,
    topics: Vec<Topic>,
}

impl Batch {
    fn topic(&mut self, name: &str) -> Topic {
        if let Some(t) = self.topics.iter().find(|t| t.as_str() == name) {
            return t.clone();
        }
        let t = Topic::new(name);
        self.topics.push(t.clone());
        t
    }

    fn copy(&mut self, bytes: Option<&[u8]>) -> Option<std::ops::Range<usize>> {
        bytes.map(|b| {
            if self.arena.capacity() - self.arena.len() < b.len() {
                self.arena.reserve(b.len().max(64 * 1024));
            }
            let at = self.arena.len();
            self.arena.extend_from_slice(b);
            at..self.arena.len()
        })
    }

    /// A message from the consumer queue.
    fn push(&mut self, m: &rdkafka::message::BorrowedMessage<'_>) {
        let headers = m
            .headers()
            .map(|h| {
                h.iter()
                    .map(|x: RdHeader<'_, &[u8]>| header(x.key, x.value))
                    .collect()
            })
            .unwrap_or_default();
        let partition = Partition(m.partition());
        if !self
            .runs
            .last()
            .is_some_and(|(tp, _)| tp.partition == partition && tp.topic.as_str() == m.topic())
        {
            let topic = self.topic(m.topic());
            self.runs
                .push((TopicPartition { topic, partition }, self.polled.len()));
        }
        let timestamp = Timestamp(m.timestamp().to_millis().unwrap_or(0));
        self.push_parts(m.offset(), m.key(), m.payload(), headers, timestamp);
    }

    /// A message from a partition's own fetch queue, in the run the caller
    /// started for that partition.
    fn push_fetched(&mut self, m: &Fetched<'_>) {
        let mut headers = Vec::new();
        m.for_each_header(|key, value| headers.push(header(key, value)));
        let timestamp = Timestamp(m.timestamp().unwrap_or(0));
        self.push_parts(m.offset(), m.key(), m.value(), headers, timestamp);
    }

    fn push_parts(
        &mut self,
        offset: i64,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: Vec<Header>,
        timestamp: Timestamp,
    ) {
        let key = self.copy(key);
        let value = self.copy(value);
        self.polled.push(Polled {
            offset: Offset(offset),
            key,
            value,
            headers,
            timestamp,
        });
    }

    fn len(&self) -> usize {
        self.polled.len()
    }

    fn is_empty(&self) -> bool {
        self.polled.is_empty()
    }

    /// Appends the records gathered so far to `out`, but those of
    /// partitions `skip` names; the batch starts over.
    fn take_into(&mut self, out: &mut Vec<Record>, skip: impl Fn(&TopicPartition) -> bool) {
        let shared = self.arena.split().freeze();
        let mut polled = self.polled.drain(..);
        let mut runs = self.runs.drain(..).peekable();
        out.reserve(polled.len());
        while let Some((tp, start)) = runs.next() {
            let count = runs.peek().map_or(usize::MAX, |(_, next)| next - start);
            let run = polled.by_ref().take(count);
            if skip(&tp) {
                run.for_each(drop);
                continue;
            }
            out.extend(run.map(|p| Record {
                topic_partition: tp.clone(),
                offset: p.offset,
                key: p.key.map(|r| shared.slice(r)),
                value: p.value.map(|r| shared.slice(r)),
                headers: p.headers,
                timestamp: p.timestamp,
            }));
        }
    }
}

impl Transport for RdKafkaTransport {
    async fn subscribe(&mut self, topics: &[Topic]) -> Result<(), TransportError> {
        let names: Vec<&str> = topics.iter().map(Topic::as_str).collect();
        self.consumer
            .subscribe(&names)
            .map_err(|e| transport_error(&e))
    }

    async fn poll(&mut self, max_wait: Duration) -> Result<Vec<TransportEvent>, TransportError> {
        // A revocation the engine never answered is given up after
        // `revoke_timeout`, as librdkafka would otherwise wait forever.
        let overdue = self
            .ctx()
            .revoke
            .lock()
            .expect("revoke")
            .as_ref()
            .is_some_and(|p| p.since.elapsed() >= self.config.revoke_timeout);
        if overdue {
            self.finish_revocation();
        }
        let events = self.take_events();
        if !events.is_empty() {
            return Ok(events);
        }
        // Records come in batches from the fetch thread, and from the
        // consumer queue, whose polling also serves librdkafka's callbacks:
        // a rebalance becomes an event in the context and gathering stops
        // there, so records gathered before it are handed out before it.
        // (Records of a partition given up that come after it are dropped
        // by `accept`: never processed, never committed.) Nothing is taken
        // across an await, so a dropped poll loses nothing.
        let consumer = self.consumer.clone();
        let ctx = consumer.context().clone();
        let batch = &mut self.batch;
        let fetches = &mut self.fetches;
        {
            let mut stream = consumer.stream();
            let mut gather = std::pin::pin!(std::future::poll_fn(|cx| {
                // Registered before taking: a batch made ready after it
                // wakes this task.
                ctx.wake.register(cx.waker());
                let mut n = 0;
                if !ctx.has_events() {
                    n = ctx.take_ready(ctx.batch, fetches);
                }
                // The consumer queue is polled at least once per gather,
                // even with a full batch: a consumer far behind, whose
                // fetch thread always has batches ready, still serves the
                // group's callbacks.
                let mut served = false;
                while (n + batch.len() < ctx.batch || !served) && !ctx.has_events() {
                    served = true;
                    match stream.poll_next_unpin(cx) {
                        Poll::Ready(Some(Ok(m))) => batch.push(&m),
                        // Errors while polling (a broker down, a partition
                        // EOF) are librdkafka's to recover from; the group
                        // callbacks report what matters to the engine.
                        Poll::Ready(Some(Err(_))) => {}
                        Poll::Ready(None) | Poll::Pending => break,
                    }
                }
                if !fetches.is_empty() || !batch.is_empty() || ctx.has_events() {
                    Poll::Ready(())
                } else {
                    Poll::Pending
                }
            }));
            // Without a timer when something is there already.
            if futures_util::FutureExt::now_or_never(gather.as_mut()).is_none() {
                let _ = tokio::time::timeout(max_wait, gather).await;
            }
        }
        let mut records = Vec::new();
        for mut f in self.fetches.drain(..) {
            // A partition sought since the batch was taken may have
            // messages in it from before the seek.
            let sought = &self.sought;
            f.batch.take_into(&mut records, |tp| {
                sought.get(tp).is_some_and(|at| *at > f.seeks)
            });
        }
        self.batch.take_into(&mut records, |_| false);
        let records = self.accept(records);
        Ok(if records.is_empty() {
            self.take_events()
        } else {
            vec![TransportEvent::Records(records)]
        })
    }

    async fn start_positions(
        &mut self,
        partitions: &[TopicPartition],
    ) -> Result<Vec<(TopicPartition, StartPosition)>, TransportError> {
        let parts = partitions.to_vec();
        let timeout = self.config.request_timeout;
        self.blocking(move |c| {
            let mut tpl = TopicPartitionList::new();
            for tp in &parts {
                tpl.add_partition(tp.topic.as_str(), tp.partition.0);
            }
            let committed = c
                .committed_offsets(tpl, timeout)
                .map_err(|e| transport_error(&e))?;
            let mut out = Vec::new();
            for tp in &parts {
                let elem = committed.find_partition(tp.topic.as_str(), tp.partition.0);
                // A partition the broker answered with an error has an
                // unknown commit: fail (the driver retries) rather than
                // treat it as "never committed" and rewind to the log start.
                if let Some(Err(e)) = elem.as_ref().map(|e| e.error()) {
                    return Err(transport_error(&e));
                }
                let committed = elem.and_then(|e| match e.offset() {
                    RdOffset::Offset(o) if o >= 0 => Some(Offset(o)),
                    _ => None,
                });
                let (low, high) = c
                    .fetch_watermarks(tp.topic.as_str(), tp.partition.0, timeout)
                    .map_err(|e| transport_error(&e))?;
                out.push((
                    tp.clone(),
                    StartPosition {
                        committed,
                        log_start: Offset(low),
                        log_end: Offset(high),
                    },
                ));
            }
            Ok(out)
        })
        .await?
    }

    fn seek(&mut self, tp: &TopicPartition, offset: Offset) {
        self.positions.insert(tp.clone(), offset);
        // Asynchronous (timeout 0). It fails while librdkafka is still
        // starting the partition's fetcher — which then starts at the
        // committed offset, the same position the engine chose; the filter
        // above drops anything below `offset` either way. Under the fetch
        // queues' lock, with the seek count: a batch the fetch thread took
        // before it is told apart from one taken after librdkafka's barrier.
        let at = {
            let mut queues = self.ctx().queues.lock().expect("queues");
            let _ = self.consumer.seek(
                tp.topic.as_str(),
                tp.partition.0,
                RdOffset::Offset(offset.0),
                Duration::ZERO,
            );
            queues.seeks += 1;
            queues.seeks
        };
        self.sought.insert(tp.clone(), at);
        // No resume here: a pause is the engine's (the rule on
        // `Transport`). One it left on from an earlier ownership it lifts
        // itself, right after this seek.
    }

    fn pause(&mut self, tp: &TopicPartition) {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition(tp.topic.as_str(), tp.partition.0);
        let _ = self.consumer.pause(&tpl);
    }

    fn resume(&mut self, tp: &TopicPartition) {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition(tp.topic.as_str(), tp.partition.0);
        let _ = self.consumer.resume(&tpl);
    }

    async fn commit(
        &mut self,
        _generation: Generation,
        _member_id: &MemberId,
        offsets: &[(TopicPartition, Offset)],
    ) -> Result<(), ErrorCode> {
        let offsets = offsets.to_vec();
        let result = self
            .blocking(move |c| {
                let mut tpl = TopicPartitionList::new();
                for (tp, o) in &offsets {
                    tpl.add_partition_offset(
                        tp.topic.as_str(),
                        tp.partition.0,
                        RdOffset::Offset(o.0),
                    )
                    .map_err(|e| kafka_error(&e))?;
                }
                match c.commit(&tpl, CommitMode::Sync) {
                    Ok(()) => Ok(()),
                    // Nothing to commit is not a failure.
                    Err(e) if e.rdkafka_error_code() == Some(RDKafkaErrorCode::NoOffset) => Ok(()),
                    Err(e) => Err(kafka_error(&e)),
                }
            })
            .await;
        result.map_err(|_| ErrorCode::UnknownServerError)?
    }

    async fn produce_dead_letter(
        &mut self,
        topic: &Topic,
        letter: &DeadLetter,
    ) -> Result<(), ErrorCode> {
        let mut headers = OwnedHeaders::new();
        for h in letter.headers() {
            headers = headers.insert(RdHeader {
                key: &h.key,
                value: h.value.as_deref(),
            });
        }
        // A null key stays null and a tombstone stays a tombstone: the dead
        // letter is the record it claims to be.
        let mut record = FutureRecord::<[u8], [u8]>::to(topic.as_str()).headers(headers);
        if let Some(k) = letter.key.as_deref() {
            record = record.key(k);
        }
        if let Some(v) = letter.value.as_deref() {
            record = record.payload(v);
        }
        match self.producer.send_result(record) {
            Ok(delivery) => match delivery.await {
                Ok(Ok(_)) => Ok(()),
                Ok(Err((e, _))) => Err(kafka_error(&e)),
                Err(_) => Err(ErrorCode::RequestTimedOut),
            },
            Err((e, _)) => Err(kafka_error(&e)),
        }
    }

    async fn watermarks(
        &mut self,
        tp: &TopicPartition,
    ) -> Result<(Offset, Offset), TransportError> {
        let (topic, p, timeout) = (
            tp.topic.clone(),
            tp.partition.0,
            self.config.request_timeout,
        );
        self.blocking(move |c| {
            c.fetch_watermarks(topic.as_str(), p, timeout)
                .map(|(l, h)| (Offset(l), Offset(h)))
                .map_err(|e| transport_error(&e))
        })
        .await?
    }

    async fn revocation_done(&mut self, _partitions: &[TopicPartition]) {
        self.finish_revocation();
    }

    /// Nothing to do: librdkafka acts on the commit's answer itself before
    /// the error reaches the engine. On `UNKNOWN_MEMBER_ID` and
    /// `ILLEGAL_GENERATION` (classic protocol) it resets the member id or
    /// generation, revokes everything as lost and rejoins
    /// (`rd_kafka_cgrp_op_handle_OffsetCommit`); `REBALANCE_IN_PROGRESS`
    /// reaches it through the next heartbeat, `FENCED_INSTANCE_ID` is a
    /// fatal error of the client. The loss and the new assignment come
    /// back through the rebalance callback.
    fn rejoin(&mut self, _generation: Generation, _error: ErrorCode) {}

    async fn leave(&mut self) -> Result<(), TransportError> {
        self.stop_holding_revocations();
        self.consumer.unsubscribe();
        // Serve the final revocation: poll (dropping records, which are
        // never processed, so never committed) until nothing is assigned.
        let deadline = WallInstant::now() + Duration::from_secs(1);
        let consumer = self.consumer.clone();
        while WallInstant::now() < deadline {
            {
                let mut stream = consumer.stream();
                let _ = tokio::time::timeout(Duration::from_millis(20), stream.next()).await;
            }
            let assigned = consumer.assignment().map_or(0, |a| a.count());
            if assigned == 0 {
                break;
            }
        }
        self.ctx().take_events();
        Ok(())
    }
}
