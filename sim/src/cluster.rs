//! The simulated cluster: broker hosts over one shared, perfectly
//! replicated store (acks=all semantics: an acknowledged record survives any
//! broker crash), with `ruckus-core`'s group coordinator unchanged.
//!
//! Partition `p` is led by broker `p % n`, or the next live broker after it;
//! the group coordinator is the lowest live broker. A crashed broker's
//! connections die, so clients get errors or timeouts, ask again, and are
//! told NOT_LEADER_OR_FOLLOWER / NOT_COORDINATOR by brokers that lead or
//! coordinate nothing. Group state lives in the shared store too (Kafka
//! replicates it through `__consumer_offsets`), so coordination moves
//! without losing members or offsets; JoinGroup/SyncGroup answers parked on
//! a crashed broker's connections are lost, and clients retry.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use ruckus_core::coordinator::{self as co, Coordinator, CoordinatorConfig, ReplyTo};
use ruckus_core::model::{ErrorCode, Instant, Offset, Record, Timestamp, Topic, TopicPartition};
use ruckus_core::protocol::Assignment;
use ruckus_history::record::{BrokerEvent, GenerationMember, History, Record as HRecord};
use tokio::sync::mpsc;
use turmoil::net::{TcpListener, TcpStream};

use crate::clock::HostClock;
use crate::loss::LinkLoss;
use crate::pause::PauseGate;
use crate::wire::{read_frame, write_frame, FetchPartition, Frame, Request, Response};

/// The port every broker listens on.
pub const PORT: u16 = 9092;

/// The turmoil host name of broker `id`.
pub fn broker_host(id: u32) -> String {
    format!("broker-{id}")
}

/// The simulation's clock: milliseconds since the simulation started, the
/// same on every host.
pub fn sim_now() -> Instant {
    let d = turmoil::sim_elapsed().unwrap_or_default();
    Instant::from_millis(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[derive(Debug)]
struct State {
    brokers: u32,
    alive: Vec<bool>,
    topics: BTreeMap<Topic, u32>,
    logs: BTreeMap<TopicPartition, Vec<Record>>,
    coordinator: Coordinator,
    conns: BTreeMap<u32, (u32, mpsc::UnboundedSender<Frame<Response>>)>,
    next_conn: u32,
    injected: Vec<Injection>,
    gates: BTreeMap<String, PauseGate>,
    clocks: BTreeMap<String, HostClock>,
    losses: BTreeMap<String, LinkLoss>,
    seed: u64,
    history: Option<History>,
}

pub use ruckus_history::fault::Api;

/// Errors a broker answers instead of handling requests, like librdkafka's
/// mock cluster (`rd_kafka_mock_push_request_errors`).
#[derive(Clone, Debug, PartialEq, Eq)]
struct Injection {
    api: Api,
    topic: Option<Topic>,
    error: ErrorCode,
    remaining: u32,
}

fn api_of(r: &Request) -> Option<(Api, Option<&Topic>)> {
    Some(match r {
        Request::Metadata => return None,
        Request::Produce { tp, .. } => (Api::Produce, Some(&tp.topic)),
        Request::Fetch { .. } => (Api::Fetch, None),
        Request::ListOffsets { .. } => (Api::ListOffsets, None),
        Request::FindCoordinator { .. } => (Api::FindCoordinator, None),
        Request::JoinGroup(_) => (Api::JoinGroup, None),
        Request::SyncGroup(_) => (Api::SyncGroup, None),
        Request::Heartbeat(_) => (Api::Heartbeat, None),
        Request::LeaveGroup(_) => (Api::LeaveGroup, None),
        Request::OffsetCommit(_) => (Api::OffsetCommit, None),
        Request::OffsetFetch(_) => (Api::OffsetFetch, None),
    })
}

/// The response a broker gives when it answers `request` with `error`.
fn error_response(request: &Request, error: ErrorCode) -> Response {
    match request {
        Request::Metadata => Response::Metadata {
            brokers: vec![],
            topics: vec![],
            leaders: vec![],
        },
        Request::Produce { .. } => Response::Produce {
            error,
            base_offset: Offset::INVALID,
        },
        Request::Fetch { partitions, .. } => Response::Fetch {
            partitions: partitions
                .iter()
                .map(|(tp, _)| FetchPartition {
                    tp: tp.clone(),
                    error,
                    high_watermark: Offset::INVALID,
                    records: vec![],
                })
                .collect(),
        },
        Request::ListOffsets { partitions } => Response::ListOffsets {
            partitions: partitions
                .iter()
                .map(|tp| (tp.clone(), error, Offset::INVALID, Offset::INVALID))
                .collect(),
        },
        Request::FindCoordinator { .. } => Response::FindCoordinator { error, broker: 0 },
        Request::JoinGroup(r) => {
            Response::JoinGroup(co::JoinGroupResponse::error(error, r.member_id.clone()))
        }
        Request::SyncGroup(_) => Response::SyncGroup(co::SyncGroupResponse::error(error)),
        Request::Heartbeat(_) => Response::Heartbeat(co::HeartbeatResponse { error }),
        Request::LeaveGroup(_) => Response::LeaveGroup(co::LeaveGroupResponse {
            error,
            members: vec![],
        }),
        Request::OffsetCommit(r) => Response::OffsetCommit(co::OffsetCommitResponse {
            partitions: r
                .offsets
                .iter()
                .map(|(tp, _, _)| (tp.clone(), error))
                .collect(),
        }),
        Request::OffsetFetch(_) => Response::OffsetFetch(co::OffsetFetchResponse {
            error,
            partitions: vec![],
        }),
    }
}

/// A record's size for fetch byte limits: key, value and header bytes.
fn record_size(r: &Record) -> u64 {
    let len = |b: &Option<bytes::Bytes>| b.as_ref().map_or(0, |b| b.len() as u64);
    len(&r.key)
        + len(&r.value)
        + r.headers
            .iter()
            .map(|h| h.key.len() as u64 + len(&h.value))
            .sum::<u64>()
}

/// The shared cluster state. Clone it into every broker host.
#[derive(Clone, Debug)]
pub struct Cluster(Arc<Mutex<State>>);

impl Cluster {
    /// A cluster of `brokers` brokers with the given topics.
    pub fn new(brokers: u32, topics: &[(Topic, u32)], coordinator: CoordinatorConfig) -> Self {
        let mut logs = BTreeMap::new();
        for (t, n) in topics {
            for p in 0..*n as i32 {
                logs.insert(
                    TopicPartition {
                        topic: t.clone(),
                        partition: ruckus_core::model::Partition(p),
                    },
                    Vec::new(),
                );
            }
        }
        Self(Arc::new(Mutex::new(State {
            brokers,
            alive: vec![true; brokers as usize],
            topics: topics.iter().cloned().collect(),
            logs,
            coordinator: Coordinator::new(coordinator),
            conns: BTreeMap::new(),
            next_conn: 0,
            injected: Vec::new(),
            gates: BTreeMap::new(),
            clocks: BTreeMap::new(),
            losses: BTreeMap::new(),
            seed: 0,
            history: None,
        })))
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.0.lock().expect("cluster lock")
    }

    /// Marks a broker crashed (call with turmoil's `crash`) or restarted.
    /// A crashed broker's connections are dropped.
    pub fn set_alive(&self, id: u32, alive: bool) {
        let mut s = self.lock();
        s.alive[id as usize] = alive;
        if !alive {
            s.conns.retain(|_, (b, _)| *b != id);
        }
    }

    /// The next `count` requests of `api` (to `topic`, if given) are
    /// answered with `error` by whichever broker receives them.
    pub fn inject(&self, api: Api, topic: Option<Topic>, error: ErrorCode, count: u32) {
        self.lock().injected.push(Injection {
            api,
            topic,
            error,
            remaining: count,
        });
    }

    /// The pause gate of a host (see [`crate::pause`]), made on first use.
    /// Kept here so it outlives the host's restarts.
    pub fn pause_gate(&self, host: &str) -> PauseGate {
        self.lock()
            .gates
            .entry(host.to_owned())
            .or_default()
            .clone()
    }

    /// Records what the brokers and the coordinator do into `history`
    /// (call before any host starts): appends, group state changes,
    /// completed generations with their assignment, commits applied or
    /// refused, members added, removed or fenced.
    pub fn record_into(&self, history: History) {
        self.lock().history = Some(history);
    }

    /// The seed host fault handles draw from (call before any host starts).
    pub fn set_seed(&self, seed: u64) {
        self.lock().seed = seed;
    }

    /// The skewable clock of a host (see [`crate::clock`]), made on first use.
    pub fn clock(&self, host: &str) -> HostClock {
        self.lock()
            .clocks
            .entry(host.to_owned())
            .or_default()
            .clone()
    }

    /// The link loss of a host (see [`crate::loss`]), made on first use and
    /// seeded from the cluster's seed and the host's name.
    pub fn link_loss(&self, host: &str) -> LinkLoss {
        let mut s = self.lock();
        let h = crate::seeded_hash(s.seed ^ 0x10_55, &[host]);
        s.losses
            .entry(host.to_owned())
            .or_insert_with(|| LinkLoss::new(h))
            .clone()
    }

    /// Whether a fetch from these positions would return a record.
    pub fn fetchable(&self, partitions: &[(TopicPartition, Offset)]) -> bool {
        let s = self.lock();
        partitions.iter().any(|(tp, from)| {
            s.logs
                .get(tp)
                .is_some_and(|log| (from.0.max(0) as usize) < log.len())
        })
    }

    /// The broker coordinating the groups, if any broker is alive.
    pub fn coordinator(&self) -> Option<u32> {
        coordinator(&self.lock())
    }

    /// Whether broker `id` is up.
    pub fn is_alive(&self, id: u32) -> bool {
        self.lock().alive.get(id as usize).copied().unwrap_or(false)
    }

    /// The leader of a partition, if any broker is alive.
    pub fn leader(&self, tp: &TopicPartition) -> Option<u32> {
        leader(&self.lock(), tp)
    }

    /// High watermark of a partition.
    pub fn high_watermark(&self, tp: &TopicPartition) -> Offset {
        Offset(self.lock().logs.get(tp).map_or(0, Vec::len) as i64)
    }

    /// Partitions of a topic.
    pub fn partitions(&self, topic: &Topic) -> Vec<TopicPartition> {
        self.lock()
            .logs
            .keys()
            .filter(|tp| &tp.topic == topic)
            .cloned()
            .collect()
    }

    /// A group's committed offset for a partition.
    pub fn committed(
        &self,
        group: &ruckus_core::model::GroupId,
        tp: &TopicPartition,
    ) -> Option<Offset> {
        self.lock()
            .coordinator
            .committed(group, tp)
            .map(|c| c.offset)
    }

    /// Every record of a partition (for checks).
    pub fn log(&self, tp: &TopicPartition) -> Vec<Record> {
        self.lock().logs.get(tp).cloned().unwrap_or_default()
    }

    fn register(&self, broker: u32, tx: mpsc::UnboundedSender<Frame<Response>>) -> u32 {
        let mut s = self.lock();
        s.next_conn += 1;
        let id = s.next_conn;
        s.conns.insert(id, (broker, tx));
        id
    }

    fn unregister(&self, conn: u32) {
        self.lock().conns.remove(&conn);
    }

    /// Handles a request; `None` when the answer is delivered later through
    /// the connection (group requests).
    fn handle(
        &self,
        broker: u32,
        conn: u32,
        correlation: u64,
        request: Request,
    ) -> Option<Response> {
        let now = sim_now();
        let mut s = self.lock();
        if !s.alive[broker as usize] {
            return None;
        }
        if let Some((api, topic)) = api_of(&request) {
            let hit = s.injected.iter_mut().find(|i| {
                i.api == api && i.remaining > 0 && (i.topic.is_none() || i.topic.as_ref() == topic)
            });
            if let Some(i) = hit {
                i.remaining -= 1;
                let error = i.error;
                return Some(error_response(&request, error));
            }
        }
        let response = match request {
            Request::Metadata => Response::Metadata {
                brokers: (0..s.brokers).filter(|b| s.alive[*b as usize]).collect(),
                topics: s.topics.iter().map(|(t, n)| (t.clone(), *n)).collect(),
                leaders: s
                    .logs
                    .keys()
                    .filter_map(|tp| leader(&s, tp).map(|l| (tp.clone(), l)))
                    .collect(),
            },
            Request::Produce { tp, records } => {
                if leader(&s, &tp) != Some(broker) {
                    Response::Produce {
                        error: ErrorCode::NotLeaderOrFollower,
                        base_offset: Offset::INVALID,
                    }
                } else if let Some(log) = s.logs.get_mut(&tp) {
                    let base = log.len() as i64;
                    let count = records.len() as u32;
                    for (i, r) in records.into_iter().enumerate() {
                        log.push(Record {
                            topic_partition: tp.clone(),
                            offset: Offset(base + i as i64),
                            key: r.key,
                            value: r.value,
                            headers: r.headers,
                            timestamp: Timestamp(now.as_millis() as i64),
                        });
                    }
                    if let Some(h) = &s.history {
                        h.record_at(
                            now,
                            &broker_host(broker),
                            HRecord::Broker(BrokerEvent::Appended {
                                tp,
                                first: Offset(base),
                                count,
                            }),
                        );
                    }
                    Response::Produce {
                        error: ErrorCode::None,
                        base_offset: Offset(base),
                    }
                } else {
                    Response::Produce {
                        error: ErrorCode::UnknownTopicOrPartition,
                        base_offset: Offset::INVALID,
                    }
                }
            }
            Request::Fetch {
                partitions,
                max_records,
                max_bytes,
                ..
            } => {
                let mut budget = u64::from(max_bytes);
                let mut any = false;
                Response::Fetch {
                    partitions: partitions
                        .into_iter()
                        .map(|(tp, from)| {
                            let led = leader(&s, &tp) == Some(broker);
                            match s.logs.get(&tp) {
                                Some(log) if led => {
                                    let start = (from.0.max(0) as usize).min(log.len());
                                    let end = (start + max_records as usize).min(log.len());
                                    let mut records = Vec::new();
                                    for r in &log[start..end] {
                                        let size = record_size(r);
                                        if any && size > budget {
                                            break;
                                        }
                                        budget = budget.saturating_sub(size);
                                        any = true;
                                        records.push(r.clone());
                                    }
                                    FetchPartition {
                                        tp,
                                        error: ErrorCode::None,
                                        high_watermark: Offset(log.len() as i64),
                                        records,
                                    }
                                }
                                Some(_) => FetchPartition {
                                    tp,
                                    error: ErrorCode::NotLeaderOrFollower,
                                    high_watermark: Offset::INVALID,
                                    records: vec![],
                                },
                                None => FetchPartition {
                                    tp,
                                    error: ErrorCode::UnknownTopicOrPartition,
                                    high_watermark: Offset::INVALID,
                                    records: vec![],
                                },
                            }
                        })
                        .collect(),
                }
            }
            Request::ListOffsets { partitions } => Response::ListOffsets {
                partitions: partitions
                    .into_iter()
                    .map(|tp| match s.logs.get(&tp) {
                        Some(log) => (tp, ErrorCode::None, Offset(0), Offset(log.len() as i64)),
                        None => (
                            tp,
                            ErrorCode::UnknownTopicOrPartition,
                            Offset::INVALID,
                            Offset::INVALID,
                        ),
                    })
                    .collect(),
            },
            Request::FindCoordinator { .. } => match coordinator(&s) {
                Some(b) => Response::FindCoordinator {
                    error: ErrorCode::None,
                    broker: b,
                },
                None => Response::FindCoordinator {
                    error: ErrorCode::CoordinatorNotAvailable,
                    broker: 0,
                },
            },
            group => {
                if coordinator(&s) != Some(broker) {
                    Response::NotCoordinator
                } else {
                    let request = match group {
                        Request::JoinGroup(r) => co::Request::JoinGroup(r),
                        Request::SyncGroup(r) => co::Request::SyncGroup(r),
                        Request::Heartbeat(r) => co::Request::Heartbeat(r),
                        Request::LeaveGroup(r) => co::Request::LeaveGroup(r),
                        Request::OffsetCommit(r) => co::Request::OffsetCommit(r),
                        Request::OffsetFetch(r) => co::Request::OffsetFetch(r),
                        _ => unreachable!("non-group requests are matched above"),
                    };
                    let reply = ReplyTo((u64::from(conn) << 32) | (correlation & 0xFFFF_FFFF));
                    s.coordinator.handle_request(now, reply, request);
                    route(&mut s);
                    return None;
                }
            }
        };
        Some(response)
    }

    /// Fires the coordinator's timers if this broker coordinates.
    fn tick(&self, broker: u32) {
        let now = sim_now();
        let mut s = self.lock();
        if coordinator(&s) != Some(broker) {
            return;
        }
        if s.coordinator.poll_timeout().is_some_and(|t| t <= now) {
            s.coordinator.handle_timeout(now);
        }
        route(&mut s);
    }
}

fn leader(s: &State, tp: &TopicPartition) -> Option<u32> {
    let n = s.brokers;
    let preferred = tp.partition.0.unsigned_abs() % n;
    (0..n)
        .map(|k| (preferred + k) % n)
        .find(|b| s.alive[*b as usize])
}

fn coordinator(s: &State) -> Option<u32> {
    (0..s.brokers).find(|b| s.alive[*b as usize])
}

/// Delivers the coordinator's responses to the connections that asked.
fn route(s: &mut State) {
    while let Some((reply, response)) = s.coordinator.poll_response() {
        let conn = (reply.0 >> 32) as u32;
        let correlation = reply.0 & 0xFFFF_FFFF;
        let body = match response {
            co::Response::JoinGroup(r) => Response::JoinGroup(r),
            co::Response::SyncGroup(r) => Response::SyncGroup(r),
            co::Response::Heartbeat(r) => Response::Heartbeat(r),
            co::Response::LeaveGroup(r) => Response::LeaveGroup(r),
            co::Response::OffsetCommit(r) => Response::OffsetCommit(r),
            co::Response::OffsetFetch(r) => Response::OffsetFetch(r),
            _ => continue,
        };
        if let Some((_, tx)) = s.conns.get(&conn) {
            let _ = tx.send(Frame { correlation, body });
        }
    }
    let host = coordinator(s).map_or_else(|| "broker-?".to_owned(), broker_host);
    while let Some(e) = s.coordinator.poll_event() {
        if let (Some(h), Some(b)) = (&s.history, broker_event(e)) {
            h.record_at(sim_now(), &host, HRecord::Broker(b));
        }
    }
}

/// The history's record of a coordinator event.
fn broker_event(e: co::CoordinatorEvent) -> Option<BrokerEvent> {
    use co::CoordinatorEvent as C;
    Some(match e {
        C::StateChanged {
            from,
            to,
            generation,
            ..
        } => BrokerEvent::GroupState {
            from,
            to,
            generation,
        },
        C::MemberAdded {
            member, client_id, ..
        } => BrokerEvent::MemberAdded {
            member,
            client: client_id,
        },
        C::MemberRemoved { member, reason, .. } => BrokerEvent::MemberRemoved { member, reason },
        C::StaticMemberReplaced { old, new, .. } => BrokerEvent::MemberFenced { old, new },
        C::GenerationCompleted {
            generation,
            members,
            ..
        } => BrokerEvent::GenerationCompleted {
            generation,
            members: members
                .into_iter()
                .map(|(member, client, bytes)| GenerationMember {
                    member,
                    client,
                    partitions: Assignment::decode(&bytes)
                        .map(|a| a.partitions)
                        .unwrap_or_default(),
                })
                .collect(),
        },
        C::OffsetCommitHandled {
            member,
            generation,
            offsets,
            error,
            ..
        } => BrokerEvent::CommitHandled {
            member,
            generation,
            offsets,
            error,
        },
        _ => return None,
    })
}

/// A broker host's software: serve connections, and tick the coordinator
/// while this broker coordinates.
///
/// # Errors
/// Binding the listener fails.
pub async fn broker(cluster: Cluster, id: u32) -> turmoil::Result {
    cluster.set_alive(id, true);
    let listener = TcpListener::bind((IpAddr::from(Ipv4Addr::UNSPECIFIED), PORT)).await?;
    let ticker = cluster.clone();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_millis(10)).await;
            ticker.tick(id);
        }
    });
    loop {
        let (stream, _) = listener.accept().await?;
        tokio::spawn(serve(cluster.clone(), id, stream));
    }
}

async fn serve(cluster: Cluster, broker: u32, stream: TcpStream) {
    let (mut rd, mut wr) = stream.into_split();
    let (tx, mut rx) = mpsc::unbounded_channel::<Frame<Response>>();
    let conn = cluster.register(broker, tx.clone());
    let writer = tokio::spawn(async move {
        while let Some(frame) = rx.recv().await {
            if write_frame(&mut wr, &frame).await.is_err() {
                return;
            }
        }
    });
    while let Ok(frame) = read_frame::<Request, _>(&mut rd).await {
        // A long-poll fetch with nothing to return waits on its own task
        // (answers carry correlation ids, so they may overtake it).
        if let Request::Fetch {
            partitions,
            max_wait,
            ..
        } = &frame.body
        {
            if !max_wait.is_zero() && !cluster.fetchable(partitions) {
                let (c, tx, wait) = (cluster.clone(), tx.clone(), *max_wait);
                tokio::spawn(async move {
                    let deadline = tokio::time::Instant::now() + wait;
                    while tokio::time::Instant::now() < deadline {
                        tokio::time::sleep(Duration::from_millis(5)).await;
                        if let Request::Fetch { partitions, .. } = &frame.body {
                            if c.fetchable(partitions) {
                                break;
                            }
                        }
                    }
                    if let Some(body) = c.handle(broker, conn, frame.correlation, frame.body) {
                        let _ = tx.send(Frame {
                            correlation: frame.correlation,
                            body,
                        });
                    }
                });
                continue;
            }
        }
        if let Some(body) = cluster.handle(broker, conn, frame.correlation, frame.body) {
            if tx
                .send(Frame {
                    correlation: frame.correlation,
                    body,
                })
                .is_err()
            {
                break;
            }
        }
    }
    cluster.unregister(conn);
    writer.abort();
}
