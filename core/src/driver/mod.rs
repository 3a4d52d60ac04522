//! The async driver: runs the sans-IO [`Consumer`] engine, the user's
//! [`MessageProcessor`] and a [`Transport`] together on tokio.
//!
//! The driver is the only part of ruckus-core that reads a clock, and the
//! clock it reads is tokio's: under turmoil or tokio's paused test clock,
//! time is simulated and runs are deterministic.
//!
//! One loop does everything, in one task: it carries out the engine's
//! actions (commits and dead-letter writes are awaited in order, so they
//! never reorder), runs processing futures concurrently, and waits for
//! whichever comes first of a processing result, the engine's next timer, a
//! transport event, or shutdown.
//!
//! ## Observability
//!
//! Every engine [`Event`] goes to the [`EventSink`]. Through the `metrics`
//! facade the driver records `ruckus_consumer_consumed_total`,
//! `_processed_total`, `_failed_total{class}`, `_retried_total`,
//! `_dead_lettered_total`, `_commits_total`, `_commit_failures_total`,
//! `_rebalances_total`, the histograms `ruckus_consumer_processing_seconds`
//! and `ruckus_consumer_commit_seconds` (a recorder such as
//! metrics-exporter-prometheus derives p50/p95/p99 from them), and the
//! gauges `ruckus_consumer_in_flight` and
//! `ruckus_consumer_lag{topic,partition}`. They are counted whether or not
//! the engine's per-record events are on. The per-record metrics are
//! registered once, when [`Driver::run`] starts: install the recorder
//! before. Each record is processed inside a `tracing` span `ruckus.record`
//! with topic, partition, offset and attempt.
//!
//! Logs (`tracing` events, target `ruckus`) mark what an operator needs:
//! partitions assigned (with the generation and start offsets) and revoked
//! (with how long the revocation took) at info; partitions lost, commit
//! failures, refused commits that make the member rejoin, and failed
//! dead-letter writes at warn; fatal processing failures and stops for any
//! reason but a shutdown (a dead-letter limit, no dead-letter topic, a fatal
//! record) at error; joins, leaves and a shutdown's stop at info. Nothing
//! is logged per record.

pub mod memory;

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::Duration;

use futures_util::future::{Either, OptionFuture};
use futures_util::stream::{FuturesUnordered, StreamExt};
use futures_util::FutureExt;
use tracing::Instrument;

use crate::consumer::{
    Action, ConfigError, Consumer, ConsumerConfig, DeadLetter, Dispatch, ProcessingError,
    StartPosition, StopReason,
};
use crate::events::Event;
use crate::model::{
    ErrorCode, Generation, Instant, MemberId, Offset, Record, Topic, TopicPartition,
};
use crate::rng::Rng;

/// What a record's processing knows besides the record.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RecordContext {
    /// Which attempt (1 for the first).
    pub attempt: u32,
    /// The consumer's member id.
    pub member_id: MemberId,
}

/// The user's business logic.
///
/// `process` returns `Ok` or a [`ProcessingError`] carrying its class. A
/// panic inside `process` is caught and treated as a transient failure of
/// that record (retried, then dead-lettered); the consumer keeps running.
/// Write `async fn process(...)` in an implementation.
pub trait MessageProcessor: Send + Sync + 'static {
    /// Processes one record.
    fn process(
        &self,
        record: &Record,
        ctx: &RecordContext,
    ) -> impl Future<Output = Result<(), ProcessingError>> + Send;

    /// Called after a record was processed successfully.
    fn on_success(&self, _record: &Record) {}

    /// Called after a processing attempt failed.
    fn on_failure(&self, _record: &Record, _error: &ProcessingError) {}

    /// Called after a record's dead-letter write was acknowledged.
    fn on_dead_letter(&self, _letter: &DeadLetter) {}
}

/// A transport failure.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TransportError {
    /// The cluster answered with a Kafka error.
    #[error("kafka error {0}")]
    Kafka(ErrorCode),
    /// The connection failed.
    #[error("transport failure: {0}")]
    Io(String),
    /// The transport is closed.
    #[error("transport closed")]
    Closed,
}

/// What a transport reports while polling.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TransportEvent {
    /// Records, in offset order per partition.
    Records(Vec<Record>),
    /// The consumer joined a generation.
    Joined {
        /// Member id.
        member_id: MemberId,
        /// Generation.
        generation: Generation,
    },
    /// Partitions assigned.
    Assigned {
        /// The partitions.
        partitions: Vec<TopicPartition>,
        /// The owning generation.
        generation: Generation,
    },
    /// Partitions to revoke; answer with [`Transport::revocation_done`].
    Revoked {
        /// The partitions.
        partitions: Vec<TopicPartition>,
    },
    /// Partitions lost.
    Lost {
        /// The partitions.
        partitions: Vec<TopicPartition>,
    },
}

/// What the consumer needs from a cluster. The simulated transport
/// (turmoil), the rdkafka transport and the in-memory one implement it.
///
/// [`poll`](Transport::poll) must be cancel-safe: the driver races it
/// against processing results and timers and may drop it before it
/// completes, and nothing it would have returned may be lost.
///
/// ## Who owns what
///
/// The engine and the driver own the consumer's state; a transport carries
/// out what it is told and reports what the cluster says, and nothing else:
///
/// - **Pause is the engine's.** A transport applies [`pause`](Transport::pause)
///   and [`resume`](Transport::resume) exactly as told and keeps a
///   partition's pause across assignment changes: it never pauses, resumes
///   or clears a pause on its own — not on a revocation, a loss, or a new
///   assignment. The engine lifts every pause it asked for: a partition
///   released while paused (lost or revoked during a retry's backoff, say)
///   is resumed right after its [`seek`](Transport::seek) when it is
///   assigned again. (librdkafka, like this rule, keeps an application
///   pause across an unassign and a later assign.)
/// - **Generation loss is decided by the group.** The engine never drops
///   partitions on its own; the transport reports [`TransportEvent::Lost`]
///   and [`TransportEvent::Revoked`] as its group membership decides. When
///   the coordinator refuses a commit because the member is out of its
///   generation, the engine asks for [`rejoin`](Transport::rejoin) once per
///   generation, and the transport's membership rejoins as Kafka's consumer
///   does: `UNKNOWN_MEMBER_ID` and `ILLEGAL_GENERATION` reset the
///   generation and lose the partitions, `REBALANCE_IN_PROGRESS` rejoins,
///   `FENCED_INSTANCE_ID` is fatal.
/// - **Commits are the engine's to retry.** [`commit`](Transport::commit)
///   makes one attempt and returns the coordinator's answer; the engine
///   waits its backoff before trying again, whatever the error.
pub trait Transport: Send {
    /// Subscribes to topics and joins the group.
    fn subscribe(
        &mut self,
        topics: &[Topic],
    ) -> impl Future<Output = Result<(), TransportError>> + Send;

    /// Waits up to `max_wait` for records or group events.
    fn poll(
        &mut self,
        max_wait: Duration,
    ) -> impl Future<Output = Result<Vec<TransportEvent>, TransportError>> + Send;

    /// Committed offsets and log bounds of newly assigned partitions.
    fn start_positions(
        &mut self,
        partitions: &[TopicPartition],
    ) -> impl Future<Output = Result<Vec<(TopicPartition, StartPosition)>, TransportError>> + Send;

    /// Fetch `tp` from `offset` on.
    fn seek(&mut self, tp: &TopicPartition, offset: Offset);

    /// Stop fetching `tp`.
    fn pause(&mut self, tp: &TopicPartition);

    /// Fetch `tp` again.
    fn resume(&mut self, tp: &TopicPartition);

    /// Commits offsets with the group generation.
    fn commit(
        &mut self,
        generation: Generation,
        member_id: &MemberId,
        offsets: &[(TopicPartition, Offset)],
    ) -> impl Future<Output = Result<(), ErrorCode>> + Send;

    /// Writes a record to the dead-letter topic (acks=all).
    fn produce_dead_letter(
        &mut self,
        topic: &Topic,
        letter: &DeadLetter,
    ) -> impl Future<Output = Result<(), ErrorCode>> + Send;

    /// Low and high watermarks of a partition, for lag.
    fn watermarks(
        &mut self,
        tp: &TopicPartition,
    ) -> impl Future<Output = Result<(Offset, Offset), TransportError>> + Send;

    /// The consumer finished revoking these partitions.
    fn revocation_done(&mut self, partitions: &[TopicPartition])
        -> impl Future<Output = ()> + Send;

    /// The coordinator refused a commit sent with `generation` with `error`,
    /// an answer that means this member is out of that generation (see
    /// "Who owns what" above). Rejoin as Kafka's consumer would — unless the
    /// membership has already moved past `generation`, in which case the
    /// answer is stale and nothing is done.
    fn rejoin(&mut self, generation: Generation, error: ErrorCode);

    /// Leaves the group and closes.
    fn leave(&mut self) -> impl Future<Output = Result<(), TransportError>> + Send;
}

/// Where events go. Implementations must be cheap: this is on the hot path.
pub trait EventSink: Send + Sync {
    /// One event at a time on the driver's clock.
    fn emit(&self, at: Instant, event: &Event);
}

/// Discards events.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoSink;

impl EventSink for NoSink {
    fn emit(&self, _at: Instant, _event: &Event) {}
}

/// Keeps every event in memory, in order.
#[derive(Debug, Default)]
pub struct VecSink(Mutex<Vec<(Instant, Event)>>);

impl VecSink {
    /// A copy of the events so far.
    pub fn events(&self) -> Vec<(Instant, Event)> {
        self.0.lock().expect("sink lock").clone()
    }
}

impl EventSink for VecSink {
    fn emit(&self, at: Instant, event: &Event) {
        self.0.lock().expect("sink lock").push((at, event.clone()));
    }
}

/// Asks a running driver to shut down gracefully.
#[derive(Clone, Debug)]
pub struct ShutdownHandle(Arc<tokio::sync::watch::Sender<bool>>);

impl ShutdownHandle {
    /// Starts the graceful shutdown (idempotent).
    pub fn shutdown(&self) {
        self.0.send_replace(true);
    }
}

/// Why the driver ended.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DriverError {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The transport failed in a way the consumer cannot handle.
    #[error(transparent)]
    Transport(#[from] TransportError),
}

/// A finished processing: the dispatch, its result, and when it started;
/// and the processor handle and context it ran with, for the next.
type Processed<P> = (
    Dispatch,
    Result<(), ProcessingError>,
    tokio::time::Instant,
    Handle<P>,
);

/// What a processing runs with besides its record.
type Handle<P> = (Arc<P>, RecordContext);

/// A processing still running after its first poll. (An `OptionFuture`:
/// see `act`, which reuses one allocation for processings that finish on
/// their first poll.)
type Running<P> = Pin<Box<dyn Future<Output = Option<Processed<P>>> + Send>>;

/// Runs a consumer. Build with [`Driver::new`], then [`Driver::run`].
pub struct Driver<T: Transport, P: MessageProcessor> {
    engine: Consumer,
    transport: T,
    processor: Arc<P>,
    sink: Arc<dyn EventSink>,
    start: tokio::time::Instant,
    member_id: MemberId,
    shutdown_rx: tokio::sync::watch::Receiver<bool>,
    shutdown_tx: Arc<tokio::sync::watch::Sender<bool>>,
    poll_wait: Duration,
    lag_interval: Duration,
    metrics: Metrics,
    /// When each partition's revocation was asked for, to log how long it
    /// took.
    revoking: std::collections::BTreeMap<TopicPartition, Instant>,
}

/// The per-record metrics' handles, registered once, when the driver starts
/// running (install the recorder before that).
struct Metrics {
    consumed: metrics::Counter,
    processed: metrics::Counter,
    processing: metrics::Histogram,
    in_flight: metrics::Gauge,
    /// The in-flight gauge's last value: set again only when it changes.
    last_in_flight: Option<usize>,
}

impl Metrics {
    fn noop() -> Self {
        Self {
            consumed: metrics::Counter::noop(),
            processed: metrics::Counter::noop(),
            processing: metrics::Histogram::noop(),
            in_flight: metrics::Gauge::noop(),
            last_in_flight: None,
        }
    }

    fn register() -> Self {
        Self {
            consumed: metrics::counter!("ruckus_consumer_consumed_total"),
            processed: metrics::counter!("ruckus_consumer_processed_total"),
            processing: metrics::histogram!("ruckus_consumer_processing_seconds"),
            in_flight: metrics::gauge!("ruckus_consumer_in_flight"),
            last_in_flight: None,
        }
    }
}

impl<T: Transport, P: MessageProcessor> Driver<T, P> {
    /// A driver for `config` over `transport` with `processor`. `rng` draws
    /// retry jitter.
    ///
    /// # Errors
    /// An invalid configuration, naming the field.
    pub fn new(
        config: ConsumerConfig,
        transport: T,
        processor: P,
        rng: Box<dyn Rng + Send>,
        sink: Arc<dyn EventSink>,
    ) -> Result<Self, DriverError> {
        let engine = Consumer::new(config, rng, Instant::ZERO)?;
        let (tx, rx) = tokio::sync::watch::channel(false);
        Ok(Self {
            engine,
            transport,
            processor: Arc::new(processor),
            sink,
            start: tokio::time::Instant::now(),
            member_id: MemberId::unknown(),
            shutdown_rx: rx,
            shutdown_tx: Arc::new(tx),
            poll_wait: Duration::from_millis(100),
            lag_interval: Duration::from_secs(5),
            metrics: Metrics::noop(),
            revoking: std::collections::BTreeMap::new(),
        })
    }

    /// A handle that starts a graceful shutdown.
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        ShutdownHandle(self.shutdown_tx.clone())
    }

    /// How long one transport poll may wait (default 100 ms).
    pub fn set_poll_wait(&mut self, d: Duration) -> &mut Self {
        self.poll_wait = d;
        self
    }

    /// How often lag is measured (default 5 s).
    pub fn set_lag_interval(&mut self, d: Duration) -> &mut Self {
        self.lag_interval = d;
        self
    }

    fn now(&self) -> Instant {
        self.engine_time(tokio::time::Instant::now())
    }

    /// The engine's time of a tokio instant.
    fn engine_time(&self, at: tokio::time::Instant) -> Instant {
        let ms = at.saturating_duration_since(self.start).as_millis();
        Instant::from_millis(u64::try_from(ms).unwrap_or(u64::MAX))
    }

    fn to_tokio(&self, at: Instant) -> tokio::time::Instant {
        self.start + Duration::from_millis(at.as_millis())
    }

    /// Hands the engine's events to the sink, stamped `at` (read now if
    /// `None`; the clock is read only when there is something to stamp).
    fn flush_events(&mut self, at: Option<tokio::time::Instant>) {
        let mut next = self.engine.poll_event();
        if next.is_some() {
            let now = self.engine_time(at.unwrap_or_else(tokio::time::Instant::now));
            while let Some(e) = next {
                record_metrics(&e);
                log_event(&e, now, &mut self.revoking);
                self.sink.emit(now, &e);
                next = self.engine.poll_event();
            }
        }
        let in_flight = self.engine.in_flight();
        if self.metrics.last_in_flight != Some(in_flight) {
            self.metrics.last_in_flight = Some(in_flight);
            self.metrics.in_flight.set(in_flight as f64);
        }
    }

    /// Runs until the consumer stops: after a graceful shutdown, a fatal
    /// processing error, or an exceeded dead-letter limit.
    ///
    /// # Errors
    /// A transport failure the consumer cannot continue from.
    pub async fn run(mut self) -> Result<StopReason, DriverError> {
        self.metrics = Metrics::register();
        let topics = self.engine.config().topics.clone();
        self.transport.subscribe(&topics).await?;
        let mut running: FuturesUnordered<Running<P>> = FuturesUnordered::new();
        let mut next_lag = tokio::time::Instant::now() + self.lag_interval;
        // Whether the engine was told to shut down. The request is read
        // from the channel's value, not only from its change: one made
        // while the driver was busy elsewhere (carrying out actions, or
        // inside a processor that finished on its first poll) is seen too.
        let mut stopping = false;
        // When the transport last answered a poll. The select below prefers
        // finished processings, and `act` awaits commits in order: under a
        // steady stream of both, the transport's poll — which carries the
        // group's rebalance events as well as records — could wait for
        // seconds (a revocation the group had started went unseen for 3.7 s
        // of a 3 s session, issue 14). So it is polled, without waiting,
        // whenever `poll_wait` has passed since its last answer — between
        // calls of `act`, never inside one: an action the engine queued
        // before a generation changed (a commit naming the old one) must
        // not be carried out after the change was read.
        let mut last_poll = tokio::time::Instant::now();
        loop {
            if !stopping && *self.shutdown_rx.borrow_and_update() {
                stopping = true;
                let now = self.now();
                self.engine.shutdown(now);
            }
            if let Some(reason) = self.act(&mut running).await? {
                return Ok(reason);
            }
            if last_poll.elapsed() >= self.poll_wait {
                let polled = self.transport.poll(Duration::ZERO).await?;
                last_poll = tokio::time::Instant::now();
                for event in polled {
                    self.handle_transport_event(event).await?;
                }
                continue;
            }
            let timer = self.engine.poll_timeout().map(|t| self.to_tokio(t));
            tokio::select! {
                biased;
                // The value is acted on at the top of the loop (the sender
                // lives in the driver, so this never fails).
                _ = self.shutdown_rx.changed(), if !stopping => {}
                Some(done) = running.next(), if !running.is_empty() => {
                    // Only filled slots are ever pushed.
                    if let Some((d, result, started, _)) = done {
                        self.finish_processing(d, result, started, tokio::time::Instant::now());
                    }
                }
                () = sleep_until(timer) => {
                    let now = self.now();
                    self.engine.handle_timeout(now);
                }
                () = tokio::time::sleep_until(next_lag) => {
                    self.measure_lag().await;
                    next_lag = tokio::time::Instant::now() + self.lag_interval;
                }
                polled = self.transport.poll(self.poll_wait) => {
                    last_poll = tokio::time::Instant::now();
                    for event in polled? {
                        self.handle_transport_event(event).await?;
                    }
                }
            }
        }
    }

    /// Carries out the engine's actions, all of them: one queued before a
    /// transport event (a new generation, say) is carried out before that
    /// event is read. Returns the stop reason once stopped.
    async fn act(
        &mut self,
        running: &mut FuturesUnordered<Running<P>>,
    ) -> Result<Option<StopReason>, DriverError> {
        // The clock as read at the end of the last action, if nothing was
        // awaited since: stamps the events it caused and starts the next
        // record's processing.
        let mut clock = None;
        // Where a processing runs its first poll. One that finishes there
        // leaves the allocation for the next record's; one still running
        // moves on, allocation and all, into `running`.
        let mut slot = None;
        // The processor handle and context of the last processing that
        // finished on its first poll, taken on by the next (no reference
        // count touched per record). The member id cannot change before
        // this call returns.
        let mut spare: Option<Handle<P>> = None;
        loop {
            self.flush_events(clock);
            let Some(action) = self.engine.poll_action() else {
                return Ok(None);
            };
            let clock_now = clock.take();
            match action {
                Action::Seek { tp, offset } => self.transport.seek(&tp, offset),
                Action::Pause(tp) => self.transport.pause(&tp),
                Action::Resume(tp) => self.transport.resume(&tp),
                Action::Process(d) => {
                    // A processing that is done on its first poll (nothing
                    // to wait for) is answered here and now, so a batch of
                    // such records goes through without a trip round the
                    // select loop and the set of running futures each. The
                    // clock read at the end of one is the start of the next.
                    let started = clock_now.unwrap_or_else(tokio::time::Instant::now);
                    let handle = spare.take().unwrap_or_else(|| {
                        let ctx = RecordContext {
                            attempt: 0,
                            member_id: self.member_id.clone(),
                        };
                        (self.processor.clone(), ctx)
                    });
                    let processing =
                        OptionFuture::from(Some(Self::start_processing(d, started, handle)));
                    let processing = match slot.as_mut() {
                        Some(s) => {
                            Pin::set(&mut *s, processing);
                            s
                        }
                        None => slot.insert(Box::pin(processing)),
                    };
                    match std::future::poll_fn(|cx| Poll::Ready(processing.as_mut().poll(cx))).await
                    {
                        Poll::Ready(Some((d, result, started, handle))) => {
                            spare = Some(handle);
                            let ended = tokio::time::Instant::now();
                            self.finish_processing(d, result, started, ended);
                            clock = Some(ended);
                        }
                        // Not so: the slot was just filled.
                        Poll::Ready(None) => {}
                        // Polled again (with its own waker) by the set.
                        Poll::Pending => {
                            if let Some(s) = slot.take() {
                                running.push(s);
                            }
                        }
                    }
                }
                Action::Commit(c) => {
                    let started = tokio::time::Instant::now();
                    let result = self
                        .transport
                        .commit(c.generation, &c.member_id, &c.offsets)
                        .await;
                    metrics::histogram!("ruckus_consumer_commit_seconds")
                        .record(started.elapsed().as_secs_f64());
                    let now = self.now();
                    self.engine.handle_commit_result(now, c.id, result);
                }
                Action::DeadLetter(w) => {
                    let result = self
                        .transport
                        .produce_dead_letter(&w.topic, &w.letter)
                        .await;
                    if result.is_ok() {
                        self.processor.on_dead_letter(&w.letter);
                    }
                    let now = self.now();
                    self.engine.handle_dead_letter_result(now, w.id, result);
                }
                Action::RevocationDone(tps) => self.transport.revocation_done(&tps).await,
                Action::Rejoin { generation, error } => self.transport.rejoin(generation, error),
                Action::Stopped(reason) => {
                    self.flush_events(None);
                    let left = self.transport.leave().await;
                    self.engine.handle_left();
                    self.flush_events(None);
                    left?;
                    return Ok(Some(reason));
                }
            }
        }
    }

    /// Hands a processing result to the processor's hooks and the engine.
    fn finish_processing(
        &mut self,
        d: Dispatch,
        result: Result<(), ProcessingError>,
        started: tokio::time::Instant,
        ended: tokio::time::Instant,
    ) {
        self.metrics
            .processing
            .record(ended.saturating_duration_since(started).as_secs_f64());
        match &result {
            Ok(()) => {
                // Counted here, not from the engine's per-record events,
                // which a production consumer may turn off.
                self.metrics.processed.increment(1);
                self.processor.on_success(&d.record);
            }
            Err(e) => self.processor.on_failure(&d.record, e),
        }
        let now = self.engine_time(ended);
        self.engine.handle_processed(now, d, result);
    }

    /// The processing of `d`, started at `started`, with `handle`.
    #[inline(always)]
    fn start_processing(
        d: Dispatch,
        started: tokio::time::Instant,
        handle: Handle<P>,
    ) -> impl Future<Output = Processed<P>> + Send + 'static {
        let (processor, mut ctx) = handle;
        ctx.attempt = d.ticket.attempt();
        let span = tracing::info_span!(
            "ruckus.record",
            topic = %d.record.topic_partition.topic,
            partition = d.record.topic_partition.partition.0,
            offset = d.record.offset.0,
            attempt = ctx.attempt,
        );
        let processing = async move {
            let result = AssertUnwindSafe(processor.process(&d.record, &ctx))
                .catch_unwind()
                .await;
            let result = result.unwrap_or_else(|panic| {
                // A panic is a failure of this record, not of the consumer.
                Err(ProcessingError::transient(format!(
                    "processor panicked: {}",
                    crate::panic_message(&*panic)
                )))
            });
            (d, result, started, (processor, ctx))
        };
        // Without a subscriber that wants the span, skip entering and
        // leaving it on every poll.
        if span.is_disabled() {
            Either::Left(processing)
        } else {
            Either::Right(processing.instrument(span))
        }
    }

    async fn handle_transport_event(&mut self, event: TransportEvent) -> Result<(), DriverError> {
        let now = self.now();
        match event {
            TransportEvent::Records(records) => {
                self.metrics.consumed.increment(records.len() as u64);
                self.engine.handle_fetched(now, records);
            }
            TransportEvent::Joined {
                member_id,
                generation,
            } => {
                self.member_id = member_id.clone();
                self.engine.handle_joined(member_id, generation);
            }
            TransportEvent::Assigned {
                partitions,
                generation,
            } => {
                // A leader or coordinator may be moving: retry with backoff
                // before giving up on the consumer.
                let mut attempt = 0u32;
                let positions = loop {
                    match self.transport.start_positions(&partitions).await {
                        Ok(p) => break p,
                        Err(e) if attempt >= 20 => return Err(e.into()),
                        Err(_) => {
                            attempt += 1;
                            tokio::time::sleep(Duration::from_millis(
                                50 * u64::from(attempt.min(10)),
                            ))
                            .await;
                        }
                    }
                };
                let now = self.now();
                self.engine.handle_assigned(now, generation, positions);
            }
            TransportEvent::Revoked { partitions } => {
                for tp in &partitions {
                    self.revoking.entry(tp.clone()).or_insert(now);
                }
                self.engine.handle_revoked(now, partitions)
            }
            TransportEvent::Lost { partitions } => self.engine.handle_lost(now, partitions),
        }
        Ok(())
    }

    async fn measure_lag(&mut self) {
        for tp in self.engine.assignment() {
            let Some(position) = self.engine.committable(&tp) else {
                continue;
            };
            if let Ok((_, high)) = self.transport.watermarks(&tp).await {
                let lag = (high.0 - position.0).max(0);
                metrics::gauge!(
                    "ruckus_consumer_lag",
                    "topic" => tp.topic.to_string(),
                    "partition" => tp.partition.0.to_string()
                )
                .set(lag as f64);
            }
        }
    }
}

async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// The log line an operator needs for `e`, at its level (target `ruckus`):
/// assignment changes with their generation (info), revocations and how
/// long they took (info), lost partitions (warn), commit failures and
/// rejoins (warn), dead-letter write failures (warn), fatal processing
/// failures (error), joins and leaves (info), and stops with their reason
/// (info for a shutdown, error otherwise). Per-record events are not
/// logged: they are the event sink's and the metrics' business.
fn log_event(
    e: &Event,
    now: Instant,
    revoking: &mut std::collections::BTreeMap<TopicPartition, Instant>,
) {
    match e {
        Event::Joined {
            member_id,
            generation,
        } => {
            tracing::info!(target: "ruckus", member_id = %member_id, generation = generation.0, "joined the group")
        }
        Event::Left => tracing::info!(target: "ruckus", "left the group"),
        Event::Assigned {
            partitions,
            generation,
        } => tracing::info!(
            target: "ruckus",
            generation = generation.0,
            count = partitions.len(),
            partitions = ?partitions.iter().map(|(tp, o)| format!("{tp}@{}", o.0)).collect::<Vec<_>>(),
            "partitions assigned"
        ),
        Event::Revoked {
            partitions,
            generation,
        } => {
            let asked = partitions
                .iter()
                .filter_map(|tp| revoking.remove(tp))
                .min()
                .unwrap_or(now);
            tracing::info!(
                target: "ruckus",
                generation = generation.0,
                partitions = ?partitions,
                took_ms = now.saturating_duration_since(asked).as_millis() as u64,
                "partitions revoked"
            );
        }
        Event::Lost { partitions } => {
            for tp in partitions {
                revoking.remove(tp);
            }
            tracing::warn!(
                target: "ruckus",
                partitions = ?partitions,
                "partitions lost: another member may own them already; their in-flight work is dropped uncommitted"
            );
        }
        Event::CommitFailed {
            tp,
            offset,
            generation,
            error,
        } => tracing::warn!(
            target: "ruckus",
            partition = %tp,
            offset = offset.0,
            generation = generation.0,
            error = ?error,
            "commit failed"
        ),
        Event::RejoinRequested { generation, error } => tracing::warn!(
            target: "ruckus",
            generation = generation.0,
            error = ?error,
            "the coordinator refused a commit of this generation: rejoining"
        ),
        Event::DeadLetterFailed { tp, offset, error } => tracing::warn!(
            target: "ruckus",
            partition = %tp,
            offset = offset.0,
            error = ?error,
            "dead-letter write failed: the record is held (never committed past) and the write retried"
        ),
        Event::ProcessingFailed {
            tp,
            offset,
            class: crate::consumer::ErrorClass::Fatal,
            message,
            ..
        } => tracing::error!(
            target: "ruckus",
            partition = %tp,
            offset = offset.0,
            error = %message,
            "fatal processing failure"
        ),
        Event::Stopped { reason } => match reason {
            StopReason::Shutdown => tracing::info!(target: "ruckus", "stopped: shutdown"),
            StopReason::DeadLetterLimit { tp, offset } => tracing::error!(
                target: "ruckus",
                partition = %tp,
                offset = offset.0,
                "stopped: dead-lettering this record would exceed the dead-letter limit"
            ),
            other => tracing::error!(target: "ruckus", reason = ?other, "stopped"),
        },
        _ => {}
    }
}

fn record_metrics(e: &Event) {
    match e {
        Event::ProcessingFailed { class, .. } => {
            metrics::counter!("ruckus_consumer_failed_total", "class" => class.as_str())
                .increment(1)
        }
        Event::Retried { .. } => metrics::counter!("ruckus_consumer_retried_total").increment(1),
        Event::DeadLettered { .. } => {
            metrics::counter!("ruckus_consumer_dead_lettered_total").increment(1)
        }
        Event::Committed { .. } => metrics::counter!("ruckus_consumer_commits_total").increment(1),
        Event::CommitFailed { .. } => {
            metrics::counter!("ruckus_consumer_commit_failures_total").increment(1)
        }
        Event::Assigned { .. } | Event::Revoked { .. } | Event::Lost { .. } => {
            metrics::counter!("ruckus_consumer_rebalances_total").increment(1)
        }
        _ => {}
    }
}
