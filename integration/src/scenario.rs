//! The integration runner: a scenario file from `scenarios/`, run on a real
//! broker, its faults applied as real faults, judged by the same checkers.
//!
//! A scenario says where it runs (`backends = ["sim", "mock", ...]`). The
//! real backends are one backend of the fault model ([`Fault`]): [`Real::apply`]
//! has one arm per fault kind, which applies the fault on the mock cluster,
//! the container or the external cluster and returns how to heal it — or
//! says plainly, with [`Unsupported`], that the fault has no real
//! equivalent there. [`plan`] runs the same `apply` without touching a broker
//! first, so a scenario that cannot run is refused before anything starts
//! and the pins the mock cluster needs are known; [`run`] starts the
//! members, produces the workload, applies the faults on the wall clock,
//! waits for convergence and checks the history.
//!
//! | fault | mock cluster | container | external |
//! |---|---|---|---|
//! | crash/stop/start member, rolling restart | real | real | real |
//! | crash-broker | broker down/up; the coordinator and the partitions it led fail over to a live broker | stop/start (durable images only) | — |
//! | pause-broker | round-trip time = the pause, then 0 | `docker pause`/`unpause` | — |
//! | disconnect-broker | broker down/up; fails over as for crash-broker | network disconnect/connect | — |
//! | latency (member or producer to broker) | the broker's round-trip time, for every client | — | — |
//! | errors | per-API request errors | — | — |
//! | dead-letter-outage | Produce errors on the broker that leads every dead-letter partition (and no source partition) | — | — |
//! | pause-member, partition, hold, clock-jump, loss, nemesis | — | — | — |
//!
//! The mock cluster's brokers are `1..=n` for the scenario's `broker-0 …`;
//! `coordinator` and `leader-of-<p>` are pinned to known brokers before
//! the run starts (and the pin is in the history as a broker event). A
//! container is one broker: every broker reference names it.
//!
//! What a real run records: the members' events, the producer's
//! acknowledgements, every fault applied and healed, and the pins and
//! fail-overs the run itself makes. What the brokers do inside (group
//! state changes, generations, commits applied) is not observable from
//! outside a real broker, so the broker-side checks find nothing to judge
//! there and pass vacuously; the simulation records all of it.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use rdkafka::types::RDKafkaApiKey;
use ruckus_chaos::check::Liveness;
use ruckus_chaos::processor::{DynFactory, ProcessorFactory};
use ruckus_chaos::run::{Failed, Settled};
use ruckus_chaos::scenario::{
    Backend, BrokerRef, Fault, HostRef, ProtocolSpec, Scenario, DLQ_TOPIC, GROUP, TOPIC,
};
use ruckus_chaos::schedule::Unmet;
use ruckus_chaos::suite::{RealResult, RealRunner};
use ruckus_chaos::world::App;
use ruckus_core::model::{ErrorCode, Instant, TopicPartition};
use ruckus_history::fault::{Api, FaultRecord, Target, Unsupported};
use ruckus_history::record::{BrokerEvent, History};

use crate::container::ContainerBroker;
use crate::harness::{Broker, Membership, Names, Processing, Run, Verdict, Workload};
use crate::mock::MockKafka;
use crate::transport::{Assignor, GroupProtocol};

/// librdkafka's name of an API.
pub fn api_key(api: Api) -> Option<RDKafkaApiKey> {
    Some(match api {
        Api::Produce => RDKafkaApiKey::Produce,
        Api::Fetch => RDKafkaApiKey::Fetch,
        Api::ListOffsets => RDKafkaApiKey::ListOffsets,
        Api::FindCoordinator => RDKafkaApiKey::FindCoordinator,
        Api::JoinGroup => RDKafkaApiKey::JoinGroup,
        Api::SyncGroup => RDKafkaApiKey::SyncGroup,
        Api::Heartbeat => RDKafkaApiKey::Heartbeat,
        Api::LeaveGroup => RDKafkaApiKey::LeaveGroup,
        Api::OffsetCommit => RDKafkaApiKey::OffsetCommit,
        Api::OffsetFetch => RDKafkaApiKey::OffsetFetch,
        _ => return None,
    })
}

/// What a heal returns: done, or why the backend failed.
pub type HealFuture<'a> = Pin<Box<dyn Future<Output = Result<(), ApplyError>> + Send + 'a>>;

/// How a real backend heals a fault it applied (targets already resolved).
pub type Heal = Box<dyn for<'a> FnOnce(&'a mut Run) -> HealFuture<'a> + Send>;

fn heal<F>(f: F) -> Option<Heal>
where
    F: for<'a> FnOnce(&'a mut Run) -> HealFuture<'a> + Send + 'static,
{
    Some(Box::new(f))
}

/// A scenario mapped to a real backend, before any broker starts.
#[derive(Clone, Debug, Default)]
pub struct Plan {
    /// Mock only: the coordinator is pinned to this broker before the run
    /// starts.
    pub pin_coordinator: Option<i32>,
    /// Pinned partition leaders: `(partition, mock broker)`.
    pub pin_leaders: Vec<(i32, i32)>,
    /// Mock only: every dead-letter partition is led by this broker (and no
    /// source partition is), so errors on it hit dead-letter writes only.
    pub pin_dead_letters: Option<i32>,
    /// The primitive faults, in time order.
    pub faults: Vec<Fault>,
    /// What the run will do, one line per fault and heal, as the history
    /// will record it: `(since the start, line)`.
    pub script: Vec<(Duration, String)>,
    /// Notes on how faults were approximated.
    pub notes: Vec<String>,
}

/// Why applying a fault on a real backend did not happen.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// The fault has no equivalent on this backend.
    #[error(transparent)]
    Unsupported(#[from] Unsupported),
    /// The mock cluster failed to apply it.
    #[error("the mock cluster: {0}")]
    Mock(#[from] crate::mock::MockError),
    /// The container failed to apply it.
    #[error("the broker container: {0}")]
    Container(#[from] crate::container::ContainerError),
    /// A container fault reached a run on another backend.
    #[error("not a container run")]
    NotAContainerRun,
}

/// A real backend of the fault model and of the one run
/// ([`ruckus_chaos::run::drive`]). Without a run (`run: None`) it applies
/// nothing: it decides the pins and says which faults cannot run.
pub struct Real<'a> {
    sc: &'a Scenario,
    backend: Backend,
    durable: bool,
    /// The pins the run starts with (decided as references are first met).
    plan: Plan,
    /// Where the coordinator is now (fail-overs move it).
    coordinator_now: Option<i32>,
    /// Where each pinned partition's leader is now.
    leaders_now: BTreeMap<i32, i32>,
    run: Option<Run>,
    /// Whether the members' processors write to an (in-process) store.
    store: bool,
    /// Whether the members are processes (black boxes).
    black_box: bool,
    /// A black box's output topic, read as the run goes.
    output: Option<crate::blackbox::OutputReader>,
    /// The workload's producer, until the quiet phase waits for it.
    producer: Option<tokio::task::JoinHandle<()>>,
    /// When the group converged (the quiet phase), and when the quiet
    /// phase ended: the liveness deadline and the start of the final stop.
    settled: Option<(Option<Instant>, Instant)>,
}

impl std::fmt::Debug for Real<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Real")
            .field("scenario", &self.sc.name)
            .field("backend", &self.backend)
            .field("run", &self.run)
            .finish_non_exhaustive()
    }
}

impl<'a> Real<'a> {
    fn new(
        sc: &'a Scenario,
        backend: Backend,
        durable: bool,
        store: bool,
        run: Option<Run>,
    ) -> Self {
        // A known coordinator on the mock, so a crash of its broker can
        // fail over.
        let pin = (backend == Backend::Mock).then_some(1);
        Real {
            sc,
            backend,
            durable,
            plan: Plan {
                pin_coordinator: pin,
                ..Plan::default()
            },
            coordinator_now: pin,
            leaders_now: BTreeMap::new(),
            run,
            store,
            black_box: false,
            output: None,
            producer: None,
            settled: None,
        }
    }

    fn live(&mut self) -> &mut Run {
        self.run
            .as_mut()
            .expect("a live run: the dry pass never runs")
    }

    /// The mock broker id a reference names now (pinning it if needed).
    fn mock_broker(&mut self, b: &BrokerRef) -> i32 {
        let n = self.sc.cluster.brokers.max(1) as i32;
        match b {
            BrokerRef::Id(i) => *i as i32 + 1,
            BrokerRef::Coordinator => *self.coordinator_now.get_or_insert(1),
            BrokerRef::LeaderOf(p) => {
                if let Some(id) = self.leaders_now.get(p) {
                    return *id;
                }
                // Away from the pinned coordinator when there is room.
                let id = (p + 1) % n + 1;
                self.plan.pin_leaders.push((*p, id));
                self.leaders_now.insert(*p, id);
                id
            }
        }
    }

    /// What a real cluster does when broker `id` dies: the group's
    /// coordinator and the partitions it led move to a live broker. The
    /// mock cluster moves nothing by itself (and its group state machine
    /// can abort the process when members rejoin a coordinator that came
    /// back), so the run moves them, and records the moves.
    fn fail_over(&mut self, id: i32) -> Result<(), ApplyError> {
        let n = self.sc.cluster.brokers.max(1) as i32;
        if n < 2 {
            return Ok(());
        }
        let to = id % n + 1;
        let coordinator = self.coordinator_now == Some(id);
        if coordinator {
            self.coordinator_now = Some(to);
        }
        let moved: Vec<i32> = self
            .leaders_now
            .iter()
            .filter(|(_, l)| **l == id)
            .map(|(p, _)| *p)
            .collect();
        for p in &moved {
            self.leaders_now.insert(*p, to);
        }
        if let Some(run) = self.run.as_mut() {
            if coordinator {
                let group = run.names.group.clone();
                run.mock()
                    .move_coordinator(&group, to)
                    .map_err(ApplyError::from)?;
                run.broker_event(BrokerEvent::CoordinatorMoved {
                    broker: to as u32 - 1,
                });
            }
            for p in moved {
                let topic = run.names.topic.clone();
                run.mock()
                    .move_leader(&topic, p, to)
                    .map_err(ApplyError::from)?;
                run.broker_event(BrokerEvent::LeaderMoved {
                    tp: TopicPartition::new(topic.as_str(), p),
                    broker: to as u32 - 1,
                });
            }
        }
        Ok(())
    }

    /// Pins every dead-letter partition to the last of the `n` mock
    /// brokers and the source partitions not yet pinned to the others, so
    /// a broker's Produce errors hit one topic only; returns the
    /// dead-letter leader.
    fn dead_letters_apart(&mut self, n: i32) -> i32 {
        self.plan.pin_dead_letters = Some(n);
        for p in 0..self.sc.cluster.partitions as i32 {
            if !self.leaders_now.contains_key(&p) {
                let leader = p % (n - 1) + 1;
                self.plan.pin_leaders.push((p, leader));
                self.leaders_now.insert(p, leader);
            }
        }
        n
    }

    fn note(&mut self, note: &str) {
        self.plan.notes.push(note.to_owned());
    }

    /// Applies a primitive fault now (or, without a run, only decides how
    /// it would be applied); returns its record and how to heal it.
    ///
    /// # Errors
    /// The fault has no equivalent on this backend, or the backend failed.
    pub async fn apply(&mut self, f: &Fault) -> Result<(FaultRecord, Option<Heal>), ApplyError> {
        let no = |why: &str| Err(ApplyError::Unsupported(Unsupported::new(f, why)));
        let record = |targets: Vec<Target>| FaultRecord::new(f.clone(), targets);
        let mock_target = |id: i32| vec![Target::Broker(id as u32 - 1)];
        let start = |m: usize| {
            heal(move |run: &mut Run| {
                Box::pin(async move {
                    run.start_member(m);
                    Ok(())
                })
            })
        };
        match (f, self.backend) {
            (_, Backend::Sim) => no("the simulation is ruckus-chaos's backend, not a real one"),
            (
                Fault::Partition { a, b, .. }
                | Fault::Hold { a, b, .. }
                | Fault::Latency { a, b, .. },
                _,
            ) if *a == HostRef::Store || *b == HostRef::Store => no(
                "the real runs' store is in process: there is no link to it to cut, hold or slow",
            ),
            (Fault::CrashMember { member, .. }, _) => {
                if let Some(run) = self.run.as_mut() {
                    run.kill_member(*member);
                }
                Ok((record(vec![Target::Member(*member)]), start(*member)))
            }
            (Fault::StopMember { member, .. }, _) => {
                if let Some(run) = self.run.as_mut() {
                    run.stop_member(*member, Duration::from_secs(15)).await;
                }
                Ok((record(vec![Target::Member(*member)]), start(*member)))
            }
            (Fault::StartMember { member, .. }, _) => {
                if let Some(run) = self.run.as_mut() {
                    run.start_member(*member);
                }
                Ok((record(vec![Target::Member(*member)]), None))
            }
            (Fault::RollingRestart { .. }, _) => {
                no("a compound fault: the run expands it into graceful stops before applying")
            }
            (Fault::PauseMember { member, .. }, _) if self.black_box => {
                // SIGSTOP freezes the whole process, heartbeats included.
                if let Some(run) = self.run.as_ref() {
                    run.pause_member(*member);
                }
                let m = *member;
                let thaw = heal(move |run: &mut Run| {
                    Box::pin(async move {
                        run.resume_member(m);
                        Ok(())
                    })
                });
                Ok((record(vec![Target::Member(*member)]).how("SIGSTOP"), thaw))
            }
            (Fault::PauseMember { .. }, _) => no(
                "no real equivalent: a member's process cannot be frozen from inside the test \
                 (its rdkafka threads would keep heartbeating); a black box's can",
            ),
            (Fault::ClockJump { .. }, _) => {
                no("no real equivalent: the members share the host's clock")
            }
            (Fault::Partition { .. } | Fault::Hold { .. } | Fault::Loss { .. }, _) => no(
                "no real equivalent: one client's link cannot be cut, held or made lossy \
                 (every client reaches the broker through the same loopback port)",
            ),
            (Fault::StoreOutage { .. }, _) if !self.store => no(
                "this run has no store: its processor writes no effects (run the scenario \
                 with a processor that writes to the store)",
            ),
            (Fault::StoreOutage { .. }, _) => {
                // The in-process store refuses every call while down; what
                // it applied is kept.
                if let Some(store) = self.run.as_ref().and_then(|r| r.store.clone()) {
                    store.set_up(false);
                }
                let up = heal(move |run: &mut Run| {
                    Box::pin(async move {
                        if let Some(store) = &run.store {
                            store.set_up(true);
                        }
                        Ok(())
                    })
                });
                Ok((record(vec![Target::Store]).how("in-process store down"), up))
            }
            (_, Backend::External) => {
                no("an external cluster is someone else's: only the members' own faults apply")
            }
            (
                Fault::CrashBroker { broker, .. } | Fault::DisconnectBroker { broker, .. },
                Backend::Mock,
            ) => {
                if matches!(f, Fault::DisconnectBroker { .. }) {
                    self.note(
                        "disconnect-broker on the mock cluster: the broker goes down (its \
                         connections close), the nearest the mock has to a cut network; what it \
                         coordinated or led fails over, as for a crash (the mock's group state \
                         machine can abort the process when members rejoin a coordinator whose \
                         connections closed under a pending join: \
                         rd_kafka_mock_cgrp_classic_member_add, `!member->resp`)",
                    );
                }
                let id = self.mock_broker(broker);
                if let Some(run) = self.run.as_mut() {
                    run.mock().broker_down(id).map_err(ApplyError::from)?;
                }
                self.fail_over(id)?;
                let up = heal(move |run: &mut Run| {
                    Box::pin(async move { run.mock().broker_up(id).map_err(ApplyError::from) })
                });
                Ok((
                    record(mock_target(id)).how(format!("mock broker {id} down")),
                    up,
                ))
            }
            (
                Fault::PauseBroker {
                    broker, duration, ..
                },
                Backend::Mock,
            ) => {
                let id = self.mock_broker(broker);
                self.note(
                    "pause-broker on the mock cluster: the broker's round-trip time becomes \
                     the pause, so what is sent during it is answered that late",
                );
                if let Some(run) = self.run.as_mut() {
                    run.mock()
                        .broker_rtt(id, duration.0)
                        .map_err(ApplyError::from)?;
                }
                let rtt0 = heal(move |run: &mut Run| {
                    Box::pin(async move {
                        run.mock()
                            .broker_rtt(id, Duration::ZERO)
                            .map_err(ApplyError::from)
                    })
                });
                Ok((
                    record(mock_target(id)).how(format!("mock broker {id} rtt {:?}", duration.0)),
                    rtt0,
                ))
            }
            (Fault::Latency { a, b, latency, .. }, Backend::Mock) => {
                let broker = match (a, b) {
                    (HostRef::Broker(x), HostRef::Consumer(_) | HostRef::Producer)
                    | (HostRef::Consumer(_) | HostRef::Producer, HostRef::Broker(x)) => x,
                    _ => {
                        return no(
                            "the mock cluster can only slow a broker (for every client), \
                             not a link between two clients or two brokers",
                        )
                    }
                };
                let id = self.mock_broker(broker);
                self.note(
                    "latency on the mock cluster: the broker's round-trip time, for every \
                     client (the mock cannot slow one link)",
                );
                let rtt = latency.0 * 2;
                if let Some(run) = self.run.as_mut() {
                    run.mock().broker_rtt(id, rtt).map_err(ApplyError::from)?;
                }
                let rtt0 = heal(move |run: &mut Run| {
                    Box::pin(async move {
                        run.mock()
                            .broker_rtt(id, Duration::ZERO)
                            .map_err(ApplyError::from)
                    })
                });
                Ok((
                    record(mock_target(id))
                        .how(format!("mock broker {id} rtt {rtt:?} for every client")),
                    rtt0,
                ))
            }
            (
                Fault::Errors {
                    api, error, count, ..
                },
                Backend::Mock,
            ) => {
                let Some(key) = api_key(*api) else {
                    return no(&format!("librdkafka has no API {api:?}"));
                };
                if let Some(run) = self.run.as_mut() {
                    run.mock()
                        .request_errors(key, &vec![error.0; *count as usize])
                        .map_err(ApplyError::from)?;
                }
                Ok((record(Vec::new()), None))
            }
            (Fault::DeadLetterOutage { count, .. }, Backend::Mock) => {
                let n = self.sc.cluster.brokers as i32;
                if n < 2 {
                    return no(
                        "on one mock broker the outage would hit the workload's producer too: \
                         give the cluster two brokers or more",
                    );
                }
                // Produce errors of the dead-letter leader hit dead-letter
                // writes only.
                let d = self.dead_letters_apart(n);
                if let Some(run) = self.run.as_mut() {
                    run.mock()
                        .broker_request_errors(
                            d,
                            RDKafkaApiKey::Produce,
                            &vec![ErrorCode::NotEnoughReplicas; *count as usize],
                        )
                        .map_err(ApplyError::from)?;
                }
                Ok((
                    record(mock_target(d)).how(format!(
                        "Produce errors on mock broker {d}, leader of the dead-letter partitions"
                    )),
                    None,
                ))
            }
            (Fault::ProduceErrors { error, count, .. }, Backend::Mock) => {
                let n = self.sc.cluster.brokers as i32;
                if n < 2 && self.sc.group.dead_letter {
                    return no(
                        "on one mock broker the errors would hit dead-letter writes too: give \
                         the cluster two brokers or more, or turn dead letters off",
                    );
                }
                // Every source leader answers the errors (librdkafka's mock
                // counts them per broker); none leads a dead-letter partition.
                let sources: Vec<i32> = if n < 2 {
                    vec![1]
                } else {
                    let d = self.dead_letters_apart(n);
                    (1..d).collect()
                };
                self.note(
                    "produce-errors on the mock cluster: each broker that leads source \
                     partitions answers the next `count` Produce requests it gets with the error",
                );
                if let Some(run) = self.run.as_mut() {
                    for b in &sources {
                        run.mock()
                            .broker_request_errors(
                                *b,
                                RDKafkaApiKey::Produce,
                                &vec![error.0; *count as usize],
                            )
                            .map_err(ApplyError::from)?;
                    }
                }
                Ok((
                    record(
                        sources
                            .iter()
                            .map(|b| Target::Broker(*b as u32 - 1))
                            .collect(),
                    ),
                    None,
                ))
            }
            (Fault::CrashBroker { broker, .. }, Backend::Container)
                if !matches!(
                    broker,
                    BrokerRef::Id(0) | BrokerRef::Coordinator | BrokerRef::LeaderOf(_)
                ) =>
            {
                no("the container tier has one broker, broker-0")
            }
            (Fault::CrashBroker { .. }, Backend::Container) => {
                if !self.durable {
                    return no(
                        "this image keeps its data in memory: stopping it loses the log, \
                         which is broker loss, not consumer loss (use pause-broker or \
                         disconnect-broker, or a durable image such as Redpanda)",
                    );
                }
                if let Some(run) = self.run.as_mut() {
                    container(run)?.stop().await.map_err(ApplyError::from)?;
                }
                let restart = heal(move |run: &mut Run| {
                    Box::pin(
                        async move { container(run)?.restart().await.map_err(ApplyError::from) },
                    )
                });
                Ok((
                    record(vec![Target::Cluster]).how("stop the container"),
                    restart,
                ))
            }
            (Fault::PauseBroker { .. }, Backend::Container) => {
                if let Some(run) = self.run.as_mut() {
                    container(run)?.pause().await.map_err(ApplyError::from)?;
                }
                let unpause = heal(move |run: &mut Run| {
                    Box::pin(
                        async move { container(run)?.unpause().await.map_err(ApplyError::from) },
                    )
                });
                Ok((record(vec![Target::Cluster]).how("docker pause"), unpause))
            }
            (Fault::DisconnectBroker { .. }, Backend::Container) => {
                if let Some(run) = self.run.as_mut() {
                    container(run)?.disconnect().map_err(ApplyError::from)?;
                }
                let reconnect = heal(move |run: &mut Run| {
                    Box::pin(async move { container(run)?.reconnect().map_err(ApplyError::from) })
                });
                Ok((
                    record(vec![Target::Cluster]).how("network disconnect"),
                    reconnect,
                ))
            }
            (
                Fault::Latency { .. }
                | Fault::Errors { .. }
                | Fault::DeadLetterOutage { .. }
                | Fault::ProduceErrors { .. },
                Backend::Container,
            ) => no(
                "a container broker cannot be made to answer errors or slow down from outside \
                 (no traffic control in the image)",
            ),
        }
    }
}

fn container(run: &Run) -> Result<&ContainerBroker, ApplyError> {
    run.container().ok_or(ApplyError::NotAContainerRun)
}

/// Maps `sc` to `backend` without touching a broker: every fault goes
/// through [`Real::apply`] once, deciding the mock cluster's pins and
/// collecting every fault that has no equivalent there. `durable`: whether
/// a container broker keeps its data across a stop.
///
/// # Errors
/// Some fault or setting has no real equivalent on `backend`; each is
/// named.
pub async fn plan(
    sc: &Scenario,
    backend: Backend,
    durable: bool,
    store: bool,
) -> Result<Plan, Refused> {
    plan_for(sc, backend, durable, store, false).await
}

/// [`plan`] for members that are processes (`black_box`) or not.
///
/// # Errors
/// As [`plan`].
pub async fn plan_for(
    sc: &Scenario,
    backend: Backend,
    durable: bool,
    store: bool,
    black_box: bool,
) -> Result<Plan, Refused> {
    let mut reasons = Vec::new();
    if sc.nemesis.is_some() {
        reasons.push(
            "a randomized nemesis draws simulator faults; real runs take scheduled faults only"
                .into(),
        );
    }
    if Assignor::from_name(&sc.group.assignor).is_none() {
        reasons.push(format!(
            "librdkafka has no `{}` assignor (it has range, roundrobin, cooperative-sticky)",
            sc.group.assignor
        ));
    }
    let faults = ruckus_chaos::schedule::scheduled(sc);
    let mut real = Real::new(sc, backend, durable, store, None);
    real.black_box = black_box;
    let mut script = Vec::new();
    for f in &faults {
        match real.apply(f).await {
            Ok((record, heal)) => {
                script.push((f.at(), format!("fault {record}")));
                if let (Some(after), Some(_)) = (f.heal_after(), heal) {
                    script.push((f.at() + after, format!("healed {record}")));
                }
            }
            Err(ApplyError::Unsupported(u)) => reasons.push(u.to_string()),
            Err(e) => reasons.push(e.to_string()),
        }
    }
    if backend == Backend::Sim && reasons.is_empty() {
        reasons.push("the simulation is ruckus-chaos's backend, not a real one".into());
    }
    if !reasons.is_empty() {
        reasons.dedup();
        return Err(Refused {
            file: sc.path.display().to_string(),
            backend,
            reasons,
        });
    }
    if backend == Backend::Mock && sc.expect.no_rebalance_after.is_some() {
        real.note(
            "no_rebalance_after is not judged on the mock cluster: its classic group \
             rebalances on every join, a static member's included \
             (rd_kafka_mock_cgrp_classic_member_add has no KIP-345 path)",
        );
    }
    let mut plan = real.plan;
    script.sort_by_key(|(at, _)| *at);
    plan.script = script;
    plan.faults = faults;
    plan.notes.dedup();
    Ok(plan)
}

/// Why a scenario cannot run on a backend.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{file}: cannot run on {backend:?}:\n  {}", reasons.join("\n  "))]
pub struct Refused {
    /// The scenario file.
    pub file: String,
    /// The backend.
    pub backend: Backend,
    /// One line per fault (or setting) with no real equivalent.
    pub reasons: Vec<String>,
}

/// Why the backend cannot run here, if it cannot (the run is then reported
/// as skipped, never as passed).
pub fn unavailable(backend: Backend) -> Option<String> {
    match backend {
        Backend::Mock => None,
        Backend::Sim => Some("the simulation is not a real backend".into()),
        Backend::Container => crate::container::unavailable(),
        Backend::External => match std::env::var(EXTERNAL_BOOTSTRAP) {
            Ok(b) if !b.trim().is_empty() => None,
            _ => Some(format!(
                "{EXTERNAL_BOOTSTRAP} is not set (the bootstrap address of a cluster to run on)"
            )),
        },
    }
}

/// The environment variable naming an external cluster.
pub const EXTERNAL_BOOTSTRAP: &str = "RUCKUS_KAFKA_BOOTSTRAP";

/// How a scenario run on a real backend ended.
#[derive(Debug)]
pub struct Outcome {
    /// The plan that was followed.
    pub plan: Plan,
    /// The checked history.
    pub verdict: Verdict,
    /// `Ok` when the scenario's expectation is met: every invariant holds,
    /// or (for a known-bad consumer) the expected violation was found.
    pub result: Result<(), Unmet>,
    /// The backend failed mid-run (a fault could not be applied or
    /// healed): the run ended there, its history kept.
    pub error: Option<Failed>,
    /// Violations that are the broker's fault (it lost an acknowledged
    /// commit), not counted in `result`.
    pub broker_anomalies: Vec<String>,
}

/// A run could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RunError {
    /// The scenario cannot run on the backend.
    #[error(transparent)]
    Refused(#[from] Refused),
    /// A black box could not start.
    #[error(transparent)]
    BlackBox(#[from] crate::blackbox::BlackBoxError),
    /// The mock cluster failed.
    #[error("the mock cluster: {0}")]
    Mock(#[from] crate::mock::MockError),
    /// The container failed to start.
    #[error("the broker container: {0}")]
    Container(#[from] crate::container::ContainerError),
    /// The topics could not be created.
    #[error(transparent)]
    Setup(#[from] crate::harness::SetupError),
    /// `RUCKUS_KAFKA_BOOTSTRAP` names no cluster.
    #[error("{EXTERNAL_BOOTSTRAP} is not set")]
    NoExternalCluster,
}

impl<'a> Real<'a> {
    /// Sets `sc` up on `backend` (which must be available, see
    /// [`unavailable`]): the broker, the topics, the pins the plan
    /// decided, the first members and the workload's producer. Returns the
    /// backend ready for [`ruckus_chaos::run::drive`] and the plan.
    ///
    /// # Errors
    /// The scenario cannot run there, or the broker could not be set up.
    pub async fn start(
        sc: &'a Scenario,
        backend: Backend,
        consumers: Consumers<'_>,
    ) -> Result<(Self, Plan), RunError> {
        let app = match consumers {
            Consumers::Yours(a) => Some(a),
            _ => None,
        };
        let black_box = match consumers {
            Consumers::BlackBox(c) => Some(c),
            _ => None,
        };
        let store = app.is_some_and(|a| a.processor.uses_store());
        let names = Names {
            topic: TOPIC.into(),
            dlq: DLQ_TOPIC.into(),
            group: GROUP.into(),
        };
        // Planned before any broker starts: a scenario that cannot run here
        // (the simulation included) fails at once.
        let durable =
            backend == Backend::Container && crate::container::durable(&crate::container::image());
        let plan = plan_for(sc, backend, durable, store, black_box.is_some()).await?;
        let (broker, names) = match backend {
            Backend::Mock => {
                let mock = MockKafka::start(sc.cluster.brokers.max(1) as i32)?;
                (Broker::Mock(mock), names)
            }
            Backend::Container => {
                let c = ContainerBroker::start().await?;
                (Broker::Container(Box::new(c)), names)
            }
            Backend::External => {
                let b =
                    std::env::var(EXTERNAL_BOOTSTRAP).map_err(|_| RunError::NoExternalCluster)?;
                (Broker::External(b), names.unique())
            }
            Backend::Sim => unreachable!("`plan` refuses the simulation"),
        };
        let g = &sc.group;
        let mut run = Run::on(
            broker,
            names,
            sc.cluster.partitions as i32,
            sc.cluster.dead_letter_partitions as i32,
            g.consumer_config(),
        )
        .await?;
        run.membership = Membership {
            protocol: match g.protocol {
                ProtocolSpec::Classic => GroupProtocol::Classic,
                ProtocolSpec::Consumer => GroupProtocol::Consumer,
            },
            assignor: Assignor::from_name(&g.assignor).unwrap_or(Assignor::CooperativeSticky),
            session: g.session_timeout.0,
            heartbeat: g.heartbeat_interval.0,
            static_membership: g.static_membership,
        };
        run.processing = match (app, black_box) {
            (_, Some(c)) => Processing::Process(c.clone()),
            (Some(a), None) => Processing::Factory((*a.processor).clone()),
            (None, None) => Processing::Behaviour(sc.processing.behaviour()),
        };
        let output = match black_box {
            Some(_) => {
                let out = crate::blackbox::output_topic(&run.names);
                let partitions = sc.cluster.partitions as i32;
                match &run.broker {
                    Broker::Mock(m) => m.create_topic(&out, partitions)?,
                    _ => crate::harness::create_topic(run.bootstrap(), &out, partitions).await?,
                }
                Some(crate::blackbox::OutputReader::start(
                    run.bootstrap(),
                    &run.names,
                    partitions,
                    run.history().clone(),
                    run.started(),
                ))
            }
            None => None,
        };
        if let Broker::Mock(m) = &run.broker {
            if let Some(id) = plan.pin_coordinator {
                m.move_coordinator(&run.names.group, id)?;
                run.broker_event(BrokerEvent::CoordinatorMoved {
                    broker: id as u32 - 1,
                });
            }
            if let Some(id) = plan.pin_dead_letters {
                for p in 0..sc.cluster.dead_letter_partitions as i32 {
                    m.move_leader(&run.names.dlq, p, id)?;
                    run.broker_event(BrokerEvent::LeaderMoved {
                        tp: TopicPartition::new(run.names.dlq.as_str(), p),
                        broker: id as u32 - 1,
                    });
                }
            }
            for (p, id) in &plan.pin_leaders {
                m.move_leader(&run.names.topic, *p, *id)?;
                run.broker_event(BrokerEvent::LeaderMoved {
                    tp: TopicPartition::new(run.names.topic.as_str(), *p),
                    broker: *id as u32 - 1,
                });
            }
        }
        for i in 0..g.members {
            run.try_start_member(i)?;
        }
        if let Some(c) = black_box {
            // A command line that cannot run fails here, not at the end.
            tokio::time::sleep(Duration::from_millis(500)).await;
            for i in 0..g.members {
                if let Some(status) = run.exited(i) {
                    run.stop_all(Duration::from_secs(5)).await;
                    return Err(RunError::BlackBox(
                        crate::blackbox::BlackBoxError::ExitedAtOnce {
                            member: ruckus_history::fault::member_host(i),
                            program: c.program.clone(),
                            status,
                        },
                    ));
                }
            }
        }
        let producer = run.produce(Workload {
            messages: sc.workload.messages,
            batch: sc.workload.batch,
            interval: sc.workload.interval.0,
            poison_every: 0,
            payloads: app.map(|a| a.payloads.clone()),
        });
        let mut real = Real::new(sc, backend, durable, store, Some(run));
        real.producer = Some(producer);
        real.black_box = black_box.is_some();
        real.output = output;
        // The live pass starts where the pins put the brokers.
        real.coordinator_now = plan.pin_coordinator;
        real.leaders_now = plan.pin_leaders.iter().copied().collect();
        Ok((real, plan))
    }
}

/// Why a real backend failed mid-run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RealError {
    /// A fault could not be applied or healed.
    #[error(transparent)]
    Apply(#[from] ApplyError),
    /// The workload's producer task failed.
    #[error("the producer: {0}")]
    Producer(#[from] tokio::task::JoinError),
    /// A black box wrote nothing to its output topic.
    #[error(
        "no member wrote a record to RUCKUS_OUTPUT_TOPIC within {0:?} of the workload's end: \
         does the consumer connect to RUCKUS_BOOTSTRAP, subscribe to RUCKUS_TOPIC in group \
         RUCKUS_GROUP, and write `<partition>:<offset>` for each record it finishes?"
    )]
    Silent(Duration),
}

/// How long a black box may stay silent after the workload was produced.
pub const SILENT_WITHIN: Duration = Duration::from_secs(20);

impl ruckus_chaos::run::Backend for Real<'_> {
    type Heal = Heal;
    type Error = RealError;
    // Each member stamps its events with its own driver's clock.
    const IN_ORDER: bool = false;

    fn history(&self) -> &History {
        self.run
            .as_ref()
            .expect("a live run: the dry pass never runs")
            .history()
    }

    fn resolution(&self) -> Duration {
        // Stamped in whole milliseconds, a little after the engine acted.
        Duration::from_millis(2)
    }

    fn judges_no_rebalance(&self) -> bool {
        // librdkafka's mock cluster rebalances its classic group on every
        // join, a static member's included (rd_kafka_mock_cgrp_classic_
        // member_add has no KIP-345 path): a scenario's no-rebalance
        // window cannot hold there (the plan says so).
        self.backend != Backend::Mock
    }

    fn elapsed(&self) -> Duration {
        self.run.as_ref().map_or(Duration::ZERO, Run::elapsed)
    }

    fn stamp(&self, _scheduled: Duration) -> Instant {
        // When it took effect: a graceful stop takes as long as it takes.
        self.run.as_ref().map_or(Instant::from_millis(0), Run::now)
    }

    async fn advance_to(&mut self, at: Duration) -> Result<bool, RealError> {
        let wait = at.saturating_sub(self.elapsed());
        tokio::time::sleep(wait).await;
        Ok(true)
    }

    async fn apply(&mut self, f: &Fault) -> Result<Option<(FaultRecord, Option<Heal>)>, RealError> {
        Ok(Some(Real::apply(self, f).await?))
    }

    async fn heal(&mut self, heal: Heal) -> Result<(), RealError> {
        Ok(heal(self.live()).await?)
    }

    async fn settle(&mut self) -> Result<(), RealError> {
        if let Some(p) = self.producer.take() {
            p.await?;
        }
        if let Some(out) = &self.output {
            // A consumer that never connects, or never writes its output,
            // is told so in bounded time.
            let deadline = tokio::time::Instant::now() + SILENT_WITHIN;
            while out.seen() == 0 && tokio::time::Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            if out.seen() == 0 {
                return Err(RealError::Silent(SILENT_WITHIN));
            }
        }
        let quiet = self.sc.phases.quiet.0;
        let run = self.live();
        let converged = run.converge(quiet).await;
        self.settled = Some((converged, run.now()));
        Ok(())
    }

    async fn finish(&mut self) -> Settled {
        if let Some(p) = self.producer.take() {
            p.abort();
        }
        let settled = self.settled;
        let run = self.live();
        let (converged_at, deadline) = settled.unwrap_or((None, run.now()));
        let unstopped = run.stop_all(Duration::from_secs(15)).await;
        if let Some(mut out) = self.output.take() {
            out.finish();
        }
        let run = self.live();
        Settled {
            liveness: Liveness {
                deadline,
                converged_at,
                // Convergence here already polled the broker's committed
                // offsets up to the end of the log, before the stop.
                lagging: Vec::new(),
                unstopped,
            },
            final_stop_at: Some(deadline),
            elapsed: run.elapsed(),
            anomalies: run.producer_anomalies(),
        }
    }
}

/// Runs `sc` on `backend` (which must be available, see [`unavailable`]):
/// [`Real::start`], then the one run every backend shares
/// ([`ruckus_chaos::run::drive`]).
///
/// # Errors
/// The scenario cannot run there, or the broker could not be set up.
pub async fn run(sc: &Scenario, backend: Backend) -> Result<Outcome, RunError> {
    run_with(sc, backend, None).await
}

/// [`run`] with your processors and payloads (`app`) instead of the
/// scenario's scripted processor.
///
/// # Errors
/// The scenario cannot run there, or the broker could not be set up.
pub async fn run_with(
    sc: &Scenario,
    backend: Backend,
    app: Option<&App<DynFactory>>,
) -> Result<Outcome, RunError> {
    let consumers = match app {
        Some(a) => Consumers::Yours(a),
        None => Consumers::Reference,
    };
    let (real, plan) = Real::start(sc, backend, consumers).await?;
    // Real runs draw nothing: the plan refuses a nemesis.
    let faults = plan.faults.clone();
    Ok(outcome(
        sc,
        plan,
        ruckus_chaos::run::drive(sc, 0, faults, real).await,
    ))
}

/// Judges a real run's output by `sc`'s expectation.
fn outcome(sc: &Scenario, plan: Plan, out: ruckus_chaos::run::RunOutput) -> Outcome {
    // A broker that loses acknowledged commits causes redeliveries no
    // consumer can prevent: reported, apart, never counted against it.
    let broker_anomalies: Vec<String> = out
        .violations
        .iter()
        .filter(|v| v.invariant.is_broker_fault())
        .map(ToString::to_string)
        .chain(out.anomalies.iter().cloned())
        .collect();
    let result = sc.expect.judge(&out.violations, true);
    Outcome {
        plan,
        verdict: Verdict {
            converged_at: out.context.liveness.converged_at,
            elapsed: out.elapsed,
            producer_anomalies: out.anomalies,
            history: out.history,
            violations: out.violations,
        },
        result,
        error: out.error,
        broker_anomalies,
    }
}

/// Who the members are.
#[derive(Clone, Copy, Debug)]
pub enum Consumers<'a> {
    /// The reference consumer with the scenario's scripted processor.
    Reference,
    /// The reference consumer with your processors.
    Yours(&'a App<DynFactory>),
    /// Processes of a command line (see [`crate::blackbox`]).
    BlackBox(&'a crate::blackbox::Command),
}

/// Runs `sc` on `backend` with `command` as its members (black boxes),
/// judged on what a black box can be judged on
/// ([`crate::blackbox::JUDGED`]).
///
/// # Errors
/// The scenario cannot run there, the broker could not be set up, or the
/// command could not start.
pub async fn run_black_box(
    sc: &Scenario,
    backend: Backend,
    command: &crate::blackbox::Command,
) -> Result<Outcome, RunError> {
    let mut sc = sc.clone();
    let wanted: Vec<_> = sc
        .expect
        .invariants()
        .into_iter()
        .filter(|i| crate::blackbox::JUDGED.contains(i))
        .collect();
    sc.expect.hold = wanted;
    sc.expect.effects = false;
    let (real, plan) = Real::start(&sc, backend, Consumers::BlackBox(command)).await?;
    let faults = plan.faults.clone();
    Ok(outcome(
        &sc,
        plan,
        ruckus_chaos::run::drive(&sc, 0, faults, real).await,
    ))
}

/// The real brokers as a [`RealRunner`], for
/// `ruckus_chaos::suite::Suite::on_real_brokers`: each scenario once on each
/// real backend it declares, with your processors and an in-process store.
/// It runs its own tokio runtime: call it from a plain `#[test]`, not from
/// inside a runtime.
#[derive(Clone, Copy, Debug, Default)]
pub struct RealBrokers;

impl RealRunner for RealBrokers {
    fn unavailable(&self, backend: Backend) -> Option<String> {
        unavailable(backend)
    }

    fn run(&self, sc: &Scenario, backend: Backend, app: &App<DynFactory>) -> RealResult {
        let result = |passed: bool, violations, explanation: String| RealResult {
            scenario: sc.name.clone(),
            backend,
            skipped: None,
            passed,
            violations,
            explanation,
        };
        let rt = match tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
        {
            Ok(rt) => rt,
            Err(e) => return result(false, Vec::new(), format!("no tokio runtime: {e}")),
        };
        match rt.block_on(run_with(sc, backend, Some(app))) {
            Err(e) => result(false, Vec::new(), e.to_string()),
            Ok(o) => {
                let why = match (&o.error, &o.result) {
                    (Some(e), _) => Some(e.to_string()),
                    (None, Err(unmet)) => Some(unmet.to_string()),
                    (None, Ok(())) => None,
                };
                let explanation = why.map_or_else(String::new, |w| {
                    format!(
                        "{w}\n  (a real run replays no seed: set RUCKUS_DUMP=<file> for its \
                         whole history)"
                    )
                });
                if !explanation.is_empty() {
                    o.verdict.dump();
                }
                result(
                    o.error.is_none() && o.result.is_ok(),
                    o.verdict.violations,
                    explanation,
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scenario(faults: &str) -> Scenario {
        let text = format!(
            "description = \"test\"\nbackends = [\"sim\", \"mock\", \"container\", \"external\"]\n{faults}"
        );
        Scenario::parse("test.toml", &text).expect("valid scenario")
    }

    fn planned(sc: &Scenario, backend: Backend, durable: bool) -> Result<Plan, Refused> {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime")
            .block_on(plan(sc, backend, durable, false))
    }

    fn script(p: &Plan) -> Vec<(u64, String)> {
        p.script
            .iter()
            .map(|(at, line)| (at.as_secs(), line.clone()))
            .collect()
    }

    #[test]
    fn a_coordinator_crash_on_the_mock_is_its_pinned_broker_going_down_and_up() {
        let sc = scenario(
            "[[fault]]\nkind = \"crash-broker\"\nat = \"3s\"\nbroker = \"coordinator\"\nrestart_after = \"5s\"\n",
        );
        let p = planned(&sc, Backend::Mock, false).expect("plans");
        assert_eq!(p.pin_coordinator, Some(1));
        assert_eq!(
            script(&p),
            vec![
                (3, "fault crash-broker broker-0 (mock broker 1 down)".into()),
                (
                    8,
                    "healed crash-broker broker-0 (mock broker 1 down)".into()
                ),
            ]
        );
    }

    #[test]
    fn a_dead_letter_outage_on_the_mock_hits_only_the_dead_letter_leader() {
        let sc = scenario("[[fault]]\nkind = \"dead-letter-outage\"\nat = \"2s\"\ncount = 7\n");
        let p = planned(&sc, Backend::Mock, false).expect("plans");
        let d = p.pin_dead_letters.expect("dead letters pinned");
        assert!(
            p.pin_leaders.iter().all(|(_, l)| *l != d),
            "a source partition shares the dead-letter leader: {:?}",
            p.pin_leaders
        );
        assert_eq!(p.pin_leaders.len(), sc.cluster.partitions as usize);
        assert!(
            p.script[0]
                .1
                .contains(&format!("Produce errors on mock broker {d}")),
            "{:?}",
            p.script
        );
    }

    #[test]
    fn faults_without_a_real_equivalent_are_named_not_skipped() {
        let sc = scenario(
            "[[fault]]\nkind = \"partition\"\nat = \"1s\"\na = \"consumer-0\"\nb = \"coordinator\"\nduration = \"2s\"\n\
             [[fault]]\nkind = \"clock-jump\"\nat = \"2s\"\nmember = 1\nby = \"5s\"\n",
        );
        for backend in [Backend::Mock, Backend::Container, Backend::External] {
            let e = planned(&sc, backend, true).expect_err("cannot run");
            assert_eq!(e.reasons.len(), 2, "{e}");
            assert!(e.reasons[0].starts_with("`partition`"), "{e}");
            assert!(e.reasons[1].starts_with("`clock-jump`"), "{e}");
        }
    }

    #[test]
    fn the_simulation_is_not_a_real_backend() {
        let e = planned(&scenario(""), Backend::Sim, false).expect_err("not real");
        assert!(e.reasons[0].contains("not a real one"), "{e}");
    }

    #[test]
    fn stopping_a_container_that_keeps_its_log_in_memory_is_refused() {
        let sc = scenario(
            "[[fault]]\nkind = \"crash-broker\"\nat = \"3s\"\nbroker = \"broker-0\"\nrestart_after = \"2s\"\n",
        );
        let e = planned(&sc, Backend::Container, false).expect_err("Tansu loses its log");
        assert!(e.reasons[0].contains("broker loss"), "{e}");
        let p = planned(&sc, Backend::Container, true).expect("a durable image");
        assert_eq!(
            script(&p),
            vec![
                (3, "fault crash-broker cluster (stop the container)".into()),
                (5, "healed crash-broker cluster (stop the container)".into()),
            ]
        );
    }

    #[test]
    fn broker_faults_are_refused_on_an_external_cluster_member_faults_are_not() {
        let sc = scenario(
            "[[fault]]\nkind = \"crash-member\"\nat = \"1s\"\nmember = 1\nrestart_after = \"1s\"\n\
             [[fault]]\nkind = \"pause-broker\"\nat = \"2s\"\nbroker = \"coordinator\"\nduration = \"1s\"\n",
        );
        let e = planned(&sc, Backend::External, false).expect_err("no broker faults");
        assert_eq!(e.reasons.len(), 1, "{e}");
        let p = planned(&sc, Backend::Container, false).expect("container pauses");
        assert_eq!(
            script(&p),
            vec![
                (1, "fault crash-member consumer-1".into()),
                (2, "healed crash-member consumer-1".into()),
                (2, "fault pause-broker cluster (docker pause)".into()),
                (3, "healed pause-broker cluster (docker pause)".into()),
            ]
        );
    }
}
