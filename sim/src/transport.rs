//! The simulated [`Transport`]: the reference consumer's connection to the
//! simulated cluster.
//!
//! Group membership runs in a background task that drives
//! `ruckus-core`'s [`Membership`] state machine over the wire and hands its
//! events (joined, assigned, revoked, lost) to [`Transport::poll`] through a
//! channel — so `poll` stays cancel-safe. Fetches go to each partition's
//! leader; positions advance only when a fetch's records are returned.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ruckus_core::consumer::{DeadLetter, StartPosition};
use ruckus_core::coordinator as co;
use ruckus_core::driver::{Transport, TransportError, TransportEvent};
use ruckus_core::membership::{
    MemberRequest, MemberResponse, Membership, MembershipConfig, MembershipEvent, RequestId,
};
use ruckus_core::model::{ErrorCode, Generation, MemberId, Offset, Record, Topic, TopicPartition};
use tokio::sync::mpsc;

use crate::client::{Brokers, CallError};
use crate::clock::HostClock;
use crate::loss::LinkLoss;
use crate::pause::PauseGate;
use crate::wire::{ProduceRecord, Request, Response};

/// Settings of the simulated transport.
#[derive(Clone, Debug)]
pub struct SimTransportConfig {
    /// Broker ids to bootstrap from.
    pub brokers: Vec<u32>,
    /// Group membership settings (group, assignors, timeouts).
    pub membership: MembershipConfig,
    /// Timeout of an ordinary request.
    pub request_timeout: Duration,
    /// Records per partition per fetch.
    pub max_records: u32,
    /// How long a broker may hold a fetch that finds nothing. Zero (the
    /// default) answers at once: a fetch round waits for all its brokers,
    /// so a long wait at an idle broker would hold up records from a busy
    /// one.
    pub fetch_max_wait: Duration,
    /// Bytes per fetch response (soft, as in Kafka).
    pub fetch_max_bytes: u32,
    /// The host's pause gate (see [`crate::pause`]); the default never
    /// closes.
    pub pause: PauseGate,
    /// The host's clock for group membership (see [`crate::clock`]).
    pub clock: HostClock,
    /// Message loss on the host's links to brokers (see [`crate::loss`]).
    pub loss: LinkLoss,
}

impl SimTransportConfig {
    /// A configuration with the fault handles `cluster` keeps for `host`
    /// (pause gate, clock, link loss), so fault verbs reach it.
    pub fn for_host(
        cluster: &crate::cluster::Cluster,
        host: &str,
        brokers: Vec<u32>,
        membership: MembershipConfig,
    ) -> Self {
        Self {
            brokers,
            membership,
            request_timeout: Duration::from_secs(2),
            max_records: 200,
            fetch_max_wait: Duration::ZERO,
            fetch_max_bytes: 1 << 20,
            pause: cluster.pause_gate(host),
            clock: cluster.clock(host),
            loss: cluster.link_loss(host),
        }
    }
}

enum Command {
    RevokeDone,
    Rejoin(Generation, ErrorCode),
    Leave,
}

/// The transport. Build with [`SimTransport::new`] inside a turmoil host.
pub struct SimTransport {
    config: SimTransportConfig,
    brokers: Arc<Brokers>,
    /// Results of the fetch round in flight (at most one).
    fetch_tx: mpsc::UnboundedSender<FetchRound>,
    fetch_rx: mpsc::UnboundedReceiver<FetchRound>,
    fetch_in_flight: bool,
    /// Bumped on every seek and release of a partition: fetch results from
    /// an older epoch are dropped, never mistaken for a gap.
    epochs: BTreeMap<TopicPartition, u64>,
    next_epoch: u64,
    /// A fetch hit a partition its broker does not lead: refresh leaders.
    metadata_stale: bool,
    events: Option<mpsc::UnboundedReceiver<TransportEvent>>,
    commands: Option<mpsc::UnboundedSender<Command>>,
    group_task: Option<tokio::task::JoinHandle<()>>,
    positions: BTreeMap<TopicPartition, Offset>,
    paused: BTreeSet<TopicPartition>,
    leaders: BTreeMap<TopicPartition, u32>,
    topics: BTreeMap<Topic, u32>,
    coordinator: Option<u32>,
    /// The bootstrap broker that answered last (shared with the group task).
    preferred: Arc<AtomicU32>,
}

/// `brokers` starting at `first` (if present), then the rest in order.
fn rotate(brokers: &[u32], first: u32) -> Vec<u32> {
    let k = brokers.iter().position(|b| *b == first).unwrap_or(0);
    brokers[k..].iter().chain(&brokers[..k]).copied().collect()
}

/// One fetch round's outcome.
struct FetchRound {
    epochs: BTreeMap<TopicPartition, u64>,
    records: Vec<Record>,
    stale_metadata: bool,
}

/// Awaits all futures concurrently on this task; outputs in input order.
async fn join_all<F: std::future::Future>(futures: impl IntoIterator<Item = F>) -> Vec<F::Output> {
    let mut set: Vec<std::pin::Pin<Box<F>>> = futures.into_iter().map(Box::pin).collect();
    let mut out: Vec<Option<F::Output>> = (0..set.len()).map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (i, f) in set.iter_mut().enumerate() {
            if out[i].is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => out[i] = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    out.into_iter()
        .map(|o| o.expect("every future finished"))
        .collect()
}

impl Drop for SimTransport {
    fn drop(&mut self) {
        if let Some(t) = &self.group_task {
            t.abort();
        }
    }
}

impl SimTransport {
    /// A transport; nothing is sent until `subscribe`.
    pub fn new(config: SimTransportConfig) -> Self {
        let (fetch_tx, fetch_rx) = mpsc::unbounded_channel();
        let brokers = Arc::new(Brokers::for_host(config.pause.clone(), config.loss.clone()));
        Self {
            config,
            brokers,
            fetch_tx,
            fetch_rx,
            fetch_in_flight: false,
            epochs: BTreeMap::new(),
            next_epoch: 0,
            metadata_stale: false,
            events: None,
            commands: None,
            group_task: None,
            positions: BTreeMap::new(),
            paused: BTreeSet::new(),
            leaders: BTreeMap::new(),
            topics: BTreeMap::new(),
            coordinator: None,
            preferred: Arc::default(),
        }
    }

    fn bump_epoch(&mut self, tp: &TopicPartition) {
        self.next_epoch += 1;
        self.epochs.insert(tp.clone(), self.next_epoch);
    }

    fn epoch(&self, tp: &TopicPartition) -> u64 {
        self.epochs.get(tp).copied().unwrap_or(0)
    }

    /// Starts one fetch round on its own task: every leader at once, each
    /// with the positions (and their epochs) as they are now.
    fn start_fetch_round(&mut self) {
        let mut by_leader: BTreeMap<u32, Vec<(TopicPartition, Offset)>> = BTreeMap::new();
        let mut epochs = BTreeMap::new();
        for (tp, pos) in &self.positions {
            if self.paused.contains(tp) {
                continue;
            }
            if let Some(l) = self.leaders.get(tp) {
                by_leader.entry(*l).or_default().push((tp.clone(), *pos));
                epochs.insert(tp.clone(), self.epoch(tp));
            }
        }
        if by_leader.is_empty() {
            return;
        }
        self.fetch_in_flight = true;
        let (brokers, tx) = (self.brokers.clone(), self.fetch_tx.clone());
        let (timeout, max_records) = (self.config.request_timeout, self.config.max_records);
        let (max_wait, max_bytes) = (self.config.fetch_max_wait, self.config.fetch_max_bytes);
        tokio::spawn(async move {
            let calls = by_leader.into_iter().map(|(leader, partitions)| {
                let brokers = brokers.clone();
                async move {
                    brokers
                        .call(
                            leader,
                            Request::Fetch {
                                partitions,
                                max_records,
                                max_wait,
                                max_bytes,
                            },
                            timeout + max_wait,
                        )
                        .await
                }
            });
            let mut records = Vec::new();
            let mut stale_metadata = false;
            for result in join_all(calls).await {
                match result {
                    Ok(Response::Fetch { partitions }) => {
                        for p in partitions {
                            if p.error.is_ok() {
                                records.extend(p.records);
                            } else {
                                stale_metadata = true;
                            }
                        }
                    }
                    _ => stale_metadata = true,
                }
            }
            let _ = tx.send(FetchRound {
                epochs,
                records,
                stale_metadata,
            });
        });
    }

    /// Takes a fetch round's records that are still wanted: fetched in the
    /// partition's current epoch, at or after its position. Synchronous on
    /// purpose: positions move and records are returned with no await in
    /// between, so a cancelled `poll` cannot lose records.
    fn accept(&mut self, round: FetchRound) -> Option<Vec<Record>> {
        self.fetch_in_flight = false;
        let mut fresh = Vec::with_capacity(round.records.len());
        for r in round.records {
            let tp = r.topic_partition.clone();
            if round.epochs.get(&tp).copied() != Some(self.epoch(&tp)) {
                continue;
            }
            if let Some(pos) = self.positions.get_mut(&tp) {
                if r.offset >= *pos {
                    *pos = r.offset.next();
                    fresh.push(r);
                }
            }
        }
        self.metadata_stale |= round.stale_metadata;
        (!fresh.is_empty()).then_some(fresh)
    }

    /// Asks every bootstrap broker in turn until one answers.
    async fn any(&mut self, request: Request) -> Result<Response, TransportError> {
        // Start with the broker that answered last: a dead broker costs one
        // timeout, once, instead of on every lookup.
        for b in rotate(&self.config.brokers, self.preferred.load(Ordering::SeqCst)) {
            let timeout = self.config.request_timeout;
            if let Ok(r) = self.brokers.call(b, request.clone(), timeout).await {
                self.preferred.store(b, Ordering::SeqCst);
                return Ok(r);
            }
        }
        Err(TransportError::Io("no broker reachable".into()))
    }

    async fn refresh_metadata(&mut self) -> Result<(), TransportError> {
        if let Response::Metadata {
            topics, leaders, ..
        } = self.any(Request::Metadata).await?
        {
            self.topics = topics.into_iter().collect();
            self.leaders = leaders.into_iter().collect();
        }
        Ok(())
    }

    /// Sends a group request to the coordinator, looking it up first if
    /// unknown. One attempt: the engine retries failed commits itself, and
    /// a retry loop here would hold up the driver, which awaits commits in
    /// order.
    async fn coordinator_call(&mut self, request: Request) -> Result<Response, ErrorCode> {
        let coordinator = match self.coordinator {
            Some(c) => c,
            None => {
                let find = Request::FindCoordinator {
                    group: self.config.membership.group_id.clone(),
                };
                match self.any(find).await {
                    Ok(Response::FindCoordinator {
                        error: ErrorCode::None,
                        broker,
                    }) => {
                        self.coordinator = Some(broker);
                        broker
                    }
                    _ => return Err(ErrorCode::CoordinatorNotAvailable),
                }
            }
        };
        match self
            .brokers
            .call(coordinator, request, self.config.request_timeout)
            .await
        {
            Ok(Response::NotCoordinator) | Err(_) => {
                self.coordinator = None;
                Err(ErrorCode::NotCoordinator)
            }
            Ok(r) => Ok(r),
        }
    }
}

impl Transport for SimTransport {
    async fn subscribe(&mut self, _topics: &[Topic]) -> Result<(), TransportError> {
        self.refresh_metadata().await?;
        let (etx, erx) = mpsc::unbounded_channel();
        let (ctx, crx) = mpsc::unbounded_channel();
        let task = GroupTask {
            brokers: Arc::new(Brokers::for_host(
                self.config.pause.clone(),
                self.config.loss.clone(),
            )),
            clock: self.config.clock.clone(),
            bootstrap: self.config.brokers.clone(),
            preferred: self.preferred.clone(),
            coordinator: Arc::default(),
            request_timeout: self.config.request_timeout,
            membership: Membership::new(self.config.membership.clone(), self.config.clock.now()),
            events: etx,
            commands: crx,
        };
        let topics = self.topics.clone();
        self.group_task = Some(tokio::spawn(task.run(topics)));
        self.events = Some(erx);
        self.commands = Some(ctx);
        Ok(())
    }

    async fn poll(&mut self, max_wait: Duration) -> Result<Vec<TransportEvent>, TransportError> {
        if let Some(e) = self.events.as_mut().and_then(|rx| rx.try_recv().ok()) {
            return Ok(vec![e]);
        }
        // Refresh before taking anything: if this is cancelled, nothing is lost.
        if self.metadata_stale && self.refresh_metadata().await.is_ok() {
            self.metadata_stale = false;
        }
        if let Ok(round) = self.fetch_rx.try_recv() {
            if let Some(records) = self.accept(round) {
                return Ok(vec![TransportEvent::Records(records)]);
            }
        }
        if !self.fetch_in_flight {
            self.start_fetch_round();
        }
        // Everything awaited here is cancel-safe: the fetch round runs on its
        // own task, so dropping this future loses nothing.
        let wait = max_wait.min(Duration::from_millis(5));
        let events = self.events.as_mut();
        let round = tokio::select! {
            biased;
            e = async {
                match events {
                    Some(rx) => rx.recv().await,
                    None => std::future::pending().await,
                }
            } => {
                return match e {
                    Some(e) => Ok(vec![e]),
                    None => Err(TransportError::Closed),
                };
            }
            round = self.fetch_rx.recv() => round,
            () = tokio::time::sleep(wait) => None,
        };
        if let Some(round) = round {
            if let Some(records) = self.accept(round) {
                return Ok(vec![TransportEvent::Records(records)]);
            }
        }
        Ok(vec![])
    }

    async fn start_positions(
        &mut self,
        partitions: &[TopicPartition],
    ) -> Result<Vec<(TopicPartition, StartPosition)>, TransportError> {
        let fetch = Request::OffsetFetch(co::OffsetFetchRequest {
            group_id: self.config.membership.group_id.clone(),
            partitions: Some(partitions.to_vec()),
        });
        let committed: BTreeMap<TopicPartition, Offset> = match self.coordinator_call(fetch).await {
            Ok(Response::OffsetFetch(r)) => r
                .partitions
                .into_iter()
                .filter(|(_, o, _)| o.0 >= 0)
                .map(|(tp, o, _)| (tp, o))
                .collect(),
            _ => return Err(TransportError::Kafka(ErrorCode::CoordinatorNotAvailable)),
        };
        let mut out = Vec::with_capacity(partitions.len());
        for tp in partitions {
            let (low, high) = self.watermarks(tp).await?;
            out.push((
                tp.clone(),
                StartPosition {
                    committed: committed.get(tp).copied(),
                    log_start: low,
                    log_end: high,
                },
            ));
        }
        Ok(out)
    }

    fn seek(&mut self, tp: &TopicPartition, offset: Offset) {
        self.bump_epoch(tp);
        self.positions.insert(tp.clone(), offset);
    }

    fn pause(&mut self, tp: &TopicPartition) {
        self.paused.insert(tp.clone());
    }

    fn resume(&mut self, tp: &TopicPartition) {
        self.paused.remove(tp);
    }

    async fn commit(
        &mut self,
        generation: Generation,
        member_id: &MemberId,
        offsets: &[(TopicPartition, Offset)],
    ) -> Result<(), ErrorCode> {
        let req = Request::OffsetCommit(co::OffsetCommitRequest {
            group_id: self.config.membership.group_id.clone(),
            generation,
            member_id: member_id.clone(),
            instance_id: self.config.membership.instance_id.clone(),
            offsets: offsets
                .iter()
                .map(|(tp, o)| (tp.clone(), *o, String::new()))
                .collect(),
        });
        match self.coordinator_call(req).await? {
            Response::OffsetCommit(r) => {
                match r.partitions.iter().map(|(_, e)| *e).find(|e| !e.is_ok()) {
                    Some(e) => Err(e),
                    None => Ok(()),
                }
            }
            _ => Err(ErrorCode::UnknownServerError),
        }
    }

    async fn produce_dead_letter(
        &mut self,
        topic: &Topic,
        letter: &DeadLetter,
    ) -> Result<(), ErrorCode> {
        let n = self.topics.get(topic).copied().unwrap_or(1).max(1);
        let tp = TopicPartition {
            topic: topic.clone(),
            partition: ruckus_core::model::Partition(
                (letter.offset.0 as u64 % u64::from(n)) as i32,
            ),
        };
        let leader = self
            .leaders
            .get(&tp)
            .copied()
            .ok_or(ErrorCode::UnknownTopicOrPartition)?;
        let record = ProduceRecord {
            key: letter.key.clone(),
            value: letter.value.clone(),
            headers: letter.headers(),
        };
        match self
            .brokers
            .call(
                leader,
                Request::Produce {
                    tp,
                    records: vec![record],
                },
                self.config.request_timeout,
            )
            .await
        {
            Ok(Response::Produce {
                error: ErrorCode::None,
                ..
            }) => Ok(()),
            Ok(Response::Produce { error, .. }) => {
                let _ = self.refresh_metadata().await;
                Err(error)
            }
            Ok(_) => Err(ErrorCode::UnknownServerError),
            Err(CallError::TimedOut) => Err(ErrorCode::RequestTimedOut),
            Err(CallError::Disconnected) => {
                let _ = self.refresh_metadata().await;
                Err(ErrorCode::NetworkException)
            }
        }
    }

    async fn watermarks(
        &mut self,
        tp: &TopicPartition,
    ) -> Result<(Offset, Offset), TransportError> {
        // Once with the metadata we have, once more after refreshing it.
        for attempt in 0..2 {
            if attempt > 0 {
                let _ = self.refresh_metadata().await;
            }
            let Some(leader) = self.leaders.get(tp).copied() else {
                continue;
            };
            let request = Request::ListOffsets {
                partitions: vec![tp.clone()],
            };
            if let Ok(Response::ListOffsets { partitions }) = self
                .brokers
                .call(leader, request, self.config.request_timeout)
                .await
            {
                match partitions.first() {
                    Some((_, ErrorCode::None, low, high)) => return Ok((*low, *high)),
                    Some((_, ErrorCode::NotLeaderOrFollower, _, _)) => continue,
                    Some((_, e, _, _)) => return Err(TransportError::Kafka(*e)),
                    None => continue,
                }
            }
        }
        Err(TransportError::Io(format!(
            "no leader answered ListOffsets for {tp}"
        )))
    }

    async fn revocation_done(&mut self, partitions: &[TopicPartition]) {
        // A pause stays as the engine left it (the rule on `Transport`):
        // the engine resumes the partition if it is assigned again.
        for tp in partitions {
            self.bump_epoch(tp);
            self.positions.remove(tp);
        }
        if let Some(c) = &self.commands {
            let _ = c.send(Command::RevokeDone);
        }
    }

    fn rejoin(&mut self, generation: Generation, error: ErrorCode) {
        if let Some(c) = &self.commands {
            let _ = c.send(Command::Rejoin(generation, error));
        }
    }

    async fn leave(&mut self) -> Result<(), TransportError> {
        if let Some(c) = &self.commands {
            let _ = c.send(Command::Leave);
        }
        // Wait (bounded) for the group task to finish leaving: its event
        // channel closes when it does.
        if let Some(rx) = self.events.as_mut() {
            let _ = tokio::time::timeout(self.config.request_timeout * 2, async {
                while rx.recv().await.is_some() {}
            })
            .await;
        }
        Ok(())
    }
}

/// Drives `Membership` over the wire.
struct GroupTask {
    brokers: Arc<Brokers>,
    bootstrap: Vec<u32>,
    preferred: Arc<AtomicU32>,
    /// The coordinator learned from FindCoordinator; cleared when a broker
    /// says it is not (or cannot be reached).
    coordinator: Arc<std::sync::Mutex<Option<u32>>>,
    request_timeout: Duration,
    clock: HostClock,
    membership: Membership,
    events: mpsc::UnboundedSender<TransportEvent>,
    commands: mpsc::UnboundedReceiver<Command>,
}

impl GroupTask {
    async fn run(mut self, topics: BTreeMap<Topic, u32>) {
        let now = self.clock.now();
        self.membership.handle_metadata(now, topics);
        self.membership.handle_timeout(now);
        let (rtx, mut rrx) = mpsc::unbounded_channel::<(RequestId, Option<MemberResponse>)>();
        loop {
            while let Some((id, req)) = self.membership.poll_request() {
                self.send(id, req, rtx.clone());
            }
            while let Some(e) = self.membership.poll_event() {
                let out = match e {
                    MembershipEvent::Joined {
                        member_id,
                        generation,
                        ..
                    } => TransportEvent::Joined {
                        member_id,
                        generation,
                    },
                    MembershipEvent::Assigned {
                        partitions,
                        generation,
                    } => TransportEvent::Assigned {
                        partitions,
                        generation,
                    },
                    MembershipEvent::Revoked { partitions, .. } => {
                        TransportEvent::Revoked { partitions }
                    }
                    MembershipEvent::Lost { partitions, .. } => TransportEvent::Lost { partitions },
                    // Left or failed: the task ends; the channel closing tells `leave`.
                    _ => return,
                };
                if self.events.send(out).is_err() {
                    return;
                }
            }
            let timer = self.membership.poll_timeout();
            // `biased`: a fixed branch order. Unbiased select! draws from
            // tokio's per-thread RNG, which the simulation cannot seed.
            tokio::select! {
                biased;
                Some((id, response)) = rrx.recv() => {
                    let now = self.clock.now();
                    match response {
                        Some(r) => self.membership.handle_response(now, id, r),
                        None => self.membership.handle_request_failed(now, id),
                    }
                }
                cmd = self.commands.recv() => {
                    let now = self.clock.now();
                    match cmd {
                        Some(Command::RevokeDone) => self.membership.handle_revoke_done(now),
                        Some(Command::Rejoin(generation, error)) => {
                            self.membership.handle_commit_error(now, generation, error);
                        }
                        Some(Command::Leave) => self.membership.leave(now),
                        None => return,
                    }
                }
                () = sleep_until_clock(&self.clock, timer) => {
                    self.membership.handle_timeout(self.clock.now());
                }
            }
        }
    }

    /// Sends a membership request on its own task (a JoinGroup may wait a
    /// whole rebalance while heartbeats go on); the answer comes back
    /// through `results`, `None` when the call failed.
    fn send(
        &mut self,
        id: RequestId,
        req: MemberRequest,
        results: mpsc::UnboundedSender<(RequestId, Option<MemberResponse>)>,
    ) {
        let timeout = match &req {
            MemberRequest::JoinGroup(j) => j.rebalance_timeout + Duration::from_secs(5),
            _ => self.request_timeout,
        };
        let (wire, find) = match req {
            MemberRequest::FindCoordinator { group_id } => {
                (Request::FindCoordinator { group: group_id }, true)
            }
            MemberRequest::JoinGroup(r) => (Request::JoinGroup(r), false),
            MemberRequest::SyncGroup(r) => (Request::SyncGroup(r), false),
            MemberRequest::Heartbeat(r) => (Request::Heartbeat(r), false),
            MemberRequest::LeaveGroup(r) => (Request::LeaveGroup(r), false),
            _ => return,
        };
        let targets: Vec<u32> = if find {
            rotate(&self.bootstrap, self.preferred.load(Ordering::SeqCst))
        } else {
            self.coordinator
                .lock()
                .expect("coordinator")
                .iter()
                .copied()
                .collect()
        };
        let brokers = self.brokers.clone();
        let coordinator = self.coordinator.clone();
        let preferred = self.preferred.clone();
        tokio::spawn(async move {
            let mut answer = None;
            for b in targets {
                let r = brokers.call(b, wire.clone(), timeout).await;
                answer = match r {
                    Ok(Response::FindCoordinator {
                        error: ErrorCode::None,
                        broker,
                    }) => {
                        preferred.store(b, Ordering::SeqCst);
                        *coordinator.lock().expect("coordinator") = Some(broker);
                        Some(MemberResponse::FindCoordinator(ErrorCode::None))
                    }
                    Ok(Response::FindCoordinator { error, .. }) => {
                        Some(MemberResponse::FindCoordinator(error))
                    }
                    Ok(Response::NotCoordinator) => {
                        *coordinator.lock().expect("coordinator") = None;
                        Some(not_coordinator(&wire))
                    }
                    Ok(Response::JoinGroup(r)) => Some(MemberResponse::JoinGroup(r)),
                    Ok(Response::SyncGroup(r)) => Some(MemberResponse::SyncGroup(r)),
                    Ok(Response::Heartbeat(r)) => Some(MemberResponse::Heartbeat(r)),
                    Ok(Response::LeaveGroup(r)) => Some(MemberResponse::LeaveGroup(r)),
                    Ok(_) => None,
                    Err(_) => {
                        if !find {
                            *coordinator.lock().expect("coordinator") = None;
                        }
                        None
                    }
                };
                if answer.is_some() {
                    break;
                }
            }
            let _ = results.send((id, answer));
        });
    }
}

/// The NOT_COORDINATOR answer for a group request.
fn not_coordinator(request: &Request) -> MemberResponse {
    let e = ErrorCode::NotCoordinator;
    match request {
        Request::JoinGroup(_) => {
            MemberResponse::JoinGroup(co::JoinGroupResponse::error(e, MemberId::unknown()))
        }
        Request::SyncGroup(_) => MemberResponse::SyncGroup(co::SyncGroupResponse::error(e)),
        Request::LeaveGroup(_) => MemberResponse::LeaveGroup(co::LeaveGroupResponse {
            error: e,
            members: vec![],
        }),
        _ => MemberResponse::Heartbeat(co::HeartbeatResponse { error: e }),
    }
}

async fn sleep_until_clock(clock: &HostClock, at: Option<ruckus_core::model::Instant>) {
    match at {
        Some(at) => {
            let wait = at.saturating_duration_since(clock.now());
            tokio::time::sleep(wait).await;
        }
        None => std::future::pending().await,
    }
}
