//! The integration runner: a scenario file from `scenarios/`, run on a real
//! broker, its faults mapped to real faults, judged by the same checkers.
//!
//! A scenario says where it runs (`backends = ["sim", "mock", ...]`).
//! [`plan`] maps each of its faults to what the backend can really do, or
//! says plainly that a fault has no real equivalent there; [`run`] starts
//! the members, produces the workload, applies the faults on the wall
//! clock, waits for convergence and checks the history.
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
//! the run starts (and the pin is in the history). A container is one
//! broker: every broker reference names it.

use std::time::Duration;

use rdkafka::types::RDKafkaApiKey;
use ruckus_chaos::scenario::{
    Backend, BrokerRef, FaultSpec, HostRef, Scenario, DLQ_TOPIC, GROUP, TOPIC,
};
use ruckus_core::model::ErrorCode;
use ruckus_sim::cluster::Api;

use crate::container::ContainerBroker;
use crate::harness::{Broker, Membership, Names, Processing, Run, Verdict, Workload};
use crate::mock::MockKafka;
use crate::transport::{Assignor, GroupProtocol};

/// What a real backend does at one moment of a run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Kill member `i` (nothing committed).
    CrashMember(usize),
    /// Start member `i` (again, or for the first time).
    StartMember(usize),
    /// Shut member `i` down gracefully.
    StopMember(usize),
    /// Mock: take broker `id` down (connections closed, new ones refused).
    BrokerDown(i32),
    /// Mock: bring it back.
    BrokerUp(i32),
    /// Mock: delay every response of broker `id` by this long (0 heals).
    Rtt(i32, Duration),
    /// Mock: the next `count` requests of an API that broker `id`
    /// receives fail with `error`.
    BrokerErrors(i32, RDKafkaApiKey, ErrorCode, u32),
    /// Mock: move the group's coordinator to broker `id`.
    MoveCoordinator(i32),
    /// Mock: move the leadership of a source partition to broker `id`.
    MoveLeader(i32, i32),
    /// Mock: the next `count` requests of an API fail with `error`.
    Errors(RDKafkaApiKey, ErrorCode, u32),
    /// Container: freeze it.
    PauseContainer,
    /// Container: thaw it.
    UnpauseContainer,
    /// Container: stop it.
    StopContainer,
    /// Container: start it again.
    StartContainer,
    /// Container: disconnect it from its network.
    DisconnectContainer,
    /// Container: connect it again.
    ReconnectContainer,
}

/// One planned action: when, what, and how it reads in the history.
#[derive(Clone, Debug)]
pub struct Step {
    /// Since the run started.
    pub at: Duration,
    /// What.
    pub action: Action,
    /// The history's description of it.
    pub description: String,
    /// Whether it heals an earlier step.
    pub heals: bool,
}

/// A scenario mapped to a backend.
#[derive(Clone, Debug)]
pub struct Plan {
    /// Mock only: the coordinator is pinned to this broker, and each
    /// `(partition, broker)` leader, before the run starts.
    pub pin_coordinator: Option<i32>,
    /// Pinned partition leaders.
    pub pin_leaders: Vec<(i32, i32)>,
    /// Mock only: every dead-letter partition is led by this broker (and no
    /// source partition is), so errors on it hit dead-letter writes only.
    pub pin_dead_letters: Option<i32>,
    /// Steps in time order.
    pub steps: Vec<Step>,
    /// Notes on how faults were approximated.
    pub notes: Vec<String>,
}

/// Why a scenario cannot run on a backend.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{file}: cannot run on {backend:?}:\n  {}", reasons.join("\n  "))]
pub struct Unsupported {
    /// The scenario file.
    pub file: String,
    /// The backend.
    pub backend: Backend,
    /// One line per fault (or setting) with no real equivalent.
    pub reasons: Vec<String>,
}

fn fault_name(f: &FaultSpec) -> &'static str {
    match f {
        FaultSpec::CrashMember { .. } => "crash-member",
        FaultSpec::StopMember { .. } => "stop-member",
        FaultSpec::StartMember { .. } => "start-member",
        FaultSpec::PauseMember { .. } => "pause-member",
        FaultSpec::CrashBroker { .. } => "crash-broker",
        FaultSpec::PauseBroker { .. } => "pause-broker",
        FaultSpec::DisconnectBroker { .. } => "disconnect-broker",
        FaultSpec::Partition { .. } => "partition",
        FaultSpec::Hold { .. } => "hold",
        FaultSpec::Latency { .. } => "latency",
        FaultSpec::Errors { .. } => "errors",
        FaultSpec::DeadLetterOutage { .. } => "dead-letter-outage",
        FaultSpec::ClockJump { .. } => "clock-jump",
        FaultSpec::Loss { .. } => "loss",
        FaultSpec::RollingRestart { .. } => "rolling-restart",
    }
}

/// librdkafka's name of a simulated API.
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

struct Planner<'a> {
    sc: &'a Scenario,
    backend: Backend,
    durable: bool,
    plan: Plan,
    reasons: Vec<String>,
}

impl Planner<'_> {
    fn push(&mut self, at: Duration, action: Action, description: String, heals: bool) {
        self.plan.steps.push(Step {
            at,
            action,
            description,
            heals,
        });
    }

    /// The mock broker id of a reference (pinning it if needed).
    fn mock_broker(&mut self, b: &BrokerRef) -> i32 {
        let n = self.sc.cluster.brokers.max(1) as i32;
        match b {
            BrokerRef::Id(i) => *i as i32 + 1,
            BrokerRef::Coordinator => *self.plan.pin_coordinator.get_or_insert(1),
            BrokerRef::LeaderOf(p) => {
                if let Some((_, id)) = self.plan.pin_leaders.iter().find(|(q, _)| q == p) {
                    return *id;
                }
                // Away from the pinned coordinator when there is room.
                let id = (p + 1) % n + 1;
                self.plan.pin_leaders.push((*p, id));
                id
            }
        }
    }

    /// What a real cluster does when broker `id` dies: the group's
    /// coordinator and the partitions it led move to a live broker. The
    /// mock cluster moves nothing by itself (and its group state machine
    /// can abort the process when members rejoin a coordinator that came
    /// back), so the plan moves them.
    fn fail_over(&mut self, at: Duration, id: i32) {
        let n = self.sc.cluster.brokers.max(1) as i32;
        if n < 2 {
            return;
        }
        let to = id % n + 1;
        if self.plan.pin_coordinator == Some(id) {
            self.push(
                at,
                Action::MoveCoordinator(to),
                format!("the coordinator fails over to mock broker {to}"),
                false,
            );
        }
        let moved: Vec<i32> = self
            .plan
            .pin_leaders
            .iter()
            .filter(|(_, l)| *l == id)
            .map(|(p, _)| *p)
            .collect();
        for p in moved {
            self.push(
                at,
                Action::MoveLeader(p, to),
                format!("the leader of partition {p} fails over to mock broker {to}"),
                false,
            );
        }
    }

    /// A fault at `at` and, `after` later (if ever), the step that heals it.
    fn fault_healed(
        &mut self,
        at: Duration,
        (action, description): (Action, String),
        after: Option<Duration>,
        (heal, heal_description): (Action, String),
    ) {
        self.push(at, action, description, false);
        if let Some(d) = after {
            self.push(at + d, heal, heal_description, true);
        }
    }

    fn member_fault(&mut self, f: &FaultSpec) {
        let at = f.at();
        match f {
            FaultSpec::CrashMember {
                member,
                restart_after,
                ..
            } => {
                self.fault_healed(
                    at,
                    (
                        Action::CrashMember(*member),
                        format!("crash consumer-{member}"),
                    ),
                    restart_after.map(|d| d.0),
                    (
                        Action::StartMember(*member),
                        format!("restart consumer-{member}"),
                    ),
                );
            }
            FaultSpec::StopMember {
                member,
                restart_after,
                ..
            } => {
                self.fault_healed(
                    at,
                    (
                        Action::StopMember(*member),
                        format!("shutdown consumer-{member}"),
                    ),
                    restart_after.map(|d| d.0),
                    (
                        Action::StartMember(*member),
                        format!("restart consumer-{member}"),
                    ),
                );
            }
            FaultSpec::StartMember { member, .. } => self.push(
                at,
                Action::StartMember(*member),
                format!("start consumer-{member}"),
                false,
            ),
            FaultSpec::RollingRestart { gap, .. } => {
                let mut t = at;
                for m in 0..self.sc.group.members {
                    self.fault_healed(
                        t,
                        (Action::StopMember(m), format!("shutdown consumer-{m}")),
                        Some(gap.0),
                        (Action::StartMember(m), format!("restart consumer-{m}")),
                    );
                    t += gap.0 * 2;
                }
            }
            _ => unreachable!("member faults only"),
        }
    }

    fn no(&mut self, f: &FaultSpec, why: &str) {
        self.reasons
            .push(format!("`{}` at {:?}: {why}", fault_name(f), f.at()));
    }

    fn fault(&mut self, f: &FaultSpec) {
        let at = f.at();
        let backend = self.backend;
        match (f, backend) {
            (
                FaultSpec::CrashMember { .. }
                | FaultSpec::StopMember { .. }
                | FaultSpec::StartMember { .. }
                | FaultSpec::RollingRestart { .. },
                _,
            ) => self.member_fault(f),
            (FaultSpec::PauseMember { .. }, _) => self.no(
                f,
                "no real equivalent: a member's process cannot be frozen from inside the test \
                 (its rdkafka threads would keep heartbeating)",
            ),
            (FaultSpec::ClockJump { .. }, _) => {
                self.no(f, "no real equivalent: the members share the host's clock")
            }
            (FaultSpec::Partition { .. } | FaultSpec::Hold { .. } | FaultSpec::Loss { .. }, _) => {
                self.no(
                    f,
                    "no real equivalent: one client's link cannot be cut, held or made lossy \
                     (every client reaches the broker through the same loopback port)",
                )
            }
            (_, Backend::External) => self.no(
                f,
                "an external cluster is someone else's: only the members' own faults apply",
            ),
            (_, Backend::Sim) => {}
            (
                FaultSpec::CrashBroker {
                    broker,
                    restart_after,
                    ..
                },
                Backend::Mock,
            ) => {
                let id = self.mock_broker(broker);
                self.fault_healed(
                    at,
                    (
                        Action::BrokerDown(id),
                        format!("mock broker {id} down ({broker:?})"),
                    ),
                    restart_after.map(|d| d.0),
                    (Action::BrokerUp(id), format!("mock broker {id} up")),
                );
                self.fail_over(at, id);
            }
            (
                FaultSpec::DisconnectBroker {
                    broker, duration, ..
                },
                Backend::Mock,
            ) => {
                let id = self.mock_broker(broker);
                self.plan.notes.push(
                    "disconnect-broker on the mock cluster: the broker goes down (its \
                     connections close), the nearest the mock has to a cut network; what it \
                     coordinated or led fails over, as for a crash (the mock's group state \
                     machine can abort the process when members rejoin a coordinator whose \
                     connections closed under a pending join: \
                     rd_kafka_mock_cgrp_classic_member_add, `!member->resp`)"
                        .into(),
                );
                self.fault_healed(
                    at,
                    (
                        Action::BrokerDown(id),
                        format!("mock broker {id} disconnected (down) ({broker:?})"),
                    ),
                    duration.map(|d| d.0),
                    (
                        Action::BrokerUp(id),
                        format!("mock broker {id} reconnected (up)"),
                    ),
                );
                self.fail_over(at, id);
            }
            (
                FaultSpec::PauseBroker {
                    broker, duration, ..
                },
                Backend::Mock,
            ) => {
                let id = self.mock_broker(broker);
                self.plan.notes.push(
                    "pause-broker on the mock cluster: the broker's round-trip time becomes \
                     the pause, so what is sent during it is answered that late"
                        .into(),
                );
                self.fault_healed(
                    at,
                    (
                        Action::Rtt(id, duration.0),
                        format!(
                            "mock broker {id} paused (rtt {:?}) ({broker:?})",
                            duration.0
                        ),
                    ),
                    Some(duration.0),
                    (
                        Action::Rtt(id, Duration::ZERO),
                        format!("mock broker {id} unpaused (rtt 0)"),
                    ),
                );
            }
            (
                FaultSpec::Latency {
                    a,
                    b,
                    latency,
                    duration,
                    ..
                },
                Backend::Mock,
            ) => {
                let broker = match (a, b) {
                    (HostRef::Broker(x), HostRef::Consumer(_) | HostRef::Producer)
                    | (HostRef::Consumer(_) | HostRef::Producer, HostRef::Broker(x)) => x,
                    _ => {
                        return self.no(
                            f,
                            "the mock cluster can only slow a broker (for every client), \
                             not a link between two clients or two brokers",
                        )
                    }
                };
                let id = self.mock_broker(broker);
                self.plan.notes.push(
                    "latency on the mock cluster: the broker's round-trip time, for every \
                     client (the mock cannot slow one link)"
                        .into(),
                );
                self.fault_healed(
                    at,
                    (
                        Action::Rtt(id, latency.0 * 2),
                        format!("mock broker {id} rtt {:?} for every client", latency.0 * 2),
                    ),
                    duration.map(|d| d.0),
                    (
                        Action::Rtt(id, Duration::ZERO),
                        format!("mock broker {id} rtt 0"),
                    ),
                );
            }
            (
                FaultSpec::Errors {
                    api, error, count, ..
                },
                Backend::Mock,
            ) => match api_key(*api) {
                Some(key) => self.push(
                    at,
                    Action::Errors(key, error.0, *count),
                    format!("errors {api:?} {:?} x{count}", error.0),
                    false,
                ),
                None => self.no(f, &format!("librdkafka has no API {api:?}")),
            },
            (FaultSpec::DeadLetterOutage { count, .. }, Backend::Mock) => {
                let n = self.sc.cluster.brokers as i32;
                if n < 2 {
                    return self.no(
                        f,
                        "on one mock broker the outage would hit the workload's producer too: \
                         give the cluster two brokers or more",
                    );
                }
                // The dead-letter partitions on the last broker, the source
                // partitions on the others: Produce errors of that broker
                // hit dead-letter writes only.
                let d = n;
                self.plan.pin_dead_letters = Some(d);
                for p in 0..self.sc.cluster.partitions as i32 {
                    if !self.plan.pin_leaders.iter().any(|(q, _)| *q == p) {
                        self.plan.pin_leaders.push((p, p % (n - 1) + 1));
                    }
                }
                self.push(
                    at,
                    Action::BrokerErrors(
                        d,
                        RDKafkaApiKey::Produce,
                        ErrorCode::NotEnoughReplicas,
                        *count,
                    ),
                    format!("errors Produce NotEnoughReplicas x{count} on mock broker {d}, leader of the dead-letter partitions"),
                    false,
                );
            }
            (FaultSpec::CrashBroker { broker, .. }, Backend::Container)
                if !matches!(
                    broker,
                    BrokerRef::Id(0) | BrokerRef::Coordinator | BrokerRef::LeaderOf(_)
                ) =>
            {
                self.no(f, "the container tier has one broker, broker-0");
            }
            (FaultSpec::CrashBroker { restart_after, .. }, Backend::Container) => {
                if !self.durable {
                    return self.no(
                        f,
                        "this image keeps its data in memory: stopping it loses the log, \
                         which is broker loss, not consumer loss (use pause-broker or \
                         disconnect-broker, or a durable image such as Redpanda)",
                    );
                }
                self.fault_healed(
                    at,
                    (Action::StopContainer, "stop broker container".into()),
                    restart_after.map(|d| d.0),
                    (Action::StartContainer, "start broker container".into()),
                );
            }
            (FaultSpec::PauseBroker { duration, .. }, Backend::Container) => {
                self.fault_healed(
                    at,
                    (Action::PauseContainer, "pause broker container".into()),
                    Some(duration.0),
                    (Action::UnpauseContainer, "unpause broker container".into()),
                );
            }
            (FaultSpec::DisconnectBroker { duration, .. }, Backend::Container) => {
                self.fault_healed(
                    at,
                    (
                        Action::DisconnectContainer,
                        "disconnect broker container from its network".into(),
                    ),
                    duration.map(|d| d.0),
                    (
                        Action::ReconnectContainer,
                        "reconnect broker container".into(),
                    ),
                );
            }
            (
                FaultSpec::Latency { .. }
                | FaultSpec::Errors { .. }
                | FaultSpec::DeadLetterOutage { .. },
                Backend::Container,
            ) => self.no(
                f,
                "a container broker cannot be made to answer errors or slow down from outside \
                 (no traffic control in the image)",
            ),
        }
    }
}

/// Maps `sc` to `backend`. `durable`: whether a container broker keeps its
/// data across a stop.
///
/// # Errors
/// Some fault or setting has no real equivalent on `backend`; each is
/// named.
pub fn plan(sc: &Scenario, backend: Backend, durable: bool) -> Result<Plan, Unsupported> {
    let mut p = Planner {
        sc,
        backend,
        durable,
        plan: Plan {
            pin_coordinator: None,
            pin_leaders: Vec::new(),
            pin_dead_letters: None,
            steps: Vec::new(),
            notes: Vec::new(),
        },
        reasons: Vec::new(),
    };
    if backend == Backend::Sim {
        p.reasons
            .push("the simulation is ruckus-chaos's backend, not a real one".into());
    }
    if sc.nemesis.is_some() {
        p.reasons.push(
            "a randomized nemesis draws simulator faults; real runs take scheduled faults only"
                .into(),
        );
    }
    if Assignor::from_name(&sc.group.assignor).is_none() {
        p.reasons.push(format!(
            "librdkafka has no `{}` assignor (it has range, roundrobin, cooperative-sticky)",
            sc.group.assignor
        ));
    }
    if backend == Backend::Mock {
        // A known coordinator, so a crash of its broker can fail over.
        p.plan.pin_coordinator = Some(1);
    }
    for f in &sc.faults {
        p.fault(f.get_ref());
    }
    if !p.reasons.is_empty() {
        return Err(Unsupported {
            file: sc.path.display().to_string(),
            backend,
            reasons: p.reasons,
        });
    }
    let mut plan = p.plan;
    // Stable: a heal scheduled at the same moment as its fault runs after.
    plan.steps.sort_by_key(|s| s.at);
    plan.notes.dedup();
    Ok(plan)
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
    pub result: Result<(), String>,
    /// Violations that are the broker's fault (it lost an acknowledged
    /// commit), not counted in `result`.
    pub broker_anomalies: Vec<String>,
}

/// A run could not be set up or a fault could not be applied.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The scenario cannot run on the backend.
    #[error(transparent)]
    Unsupported(#[from] Unsupported),
    /// The broker, topics or a fault failed.
    #[error("{0}")]
    Setup(String),
}

/// Runs `sc` on `backend` (which must be available, see [`unavailable`]).
///
/// # Errors
/// The scenario cannot run there, or the broker could not be set up.
pub async fn run(sc: &Scenario, backend: Backend) -> Result<Outcome, RunError> {
    let names = Names {
        topic: TOPIC.into(),
        dlq: DLQ_TOPIC.into(),
        group: GROUP.into(),
    };
    // Planned before any broker starts: a scenario that cannot run here
    // (the simulation included) fails at once.
    let durable =
        backend == Backend::Container && crate::container::durable(&crate::container::image());
    let plan = plan(sc, backend, durable)?;
    let (broker, names) = match backend {
        Backend::Mock => {
            let mock = MockKafka::start(sc.cluster.brokers.max(1) as i32)
                .map_err(|e| RunError::Setup(e.to_string()))?;
            (Broker::Mock(mock), names)
        }
        Backend::Container => {
            let c = ContainerBroker::start()
                .await
                .map_err(|e| RunError::Setup(e.to_string()))?;
            (Broker::Container(Box::new(c)), names)
        }
        Backend::External => {
            let b = std::env::var(EXTERNAL_BOOTSTRAP)
                .map_err(|_| RunError::Setup(format!("{EXTERNAL_BOOTSTRAP} is not set")))?;
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
    .await
    .map_err(|e| RunError::Setup(e.to_string()))?;
    run.membership = Membership {
        protocol: GroupProtocol::Classic,
        assignor: Assignor::from_name(&g.assignor).unwrap_or(Assignor::CooperativeSticky),
        session: g.session_timeout.0,
        heartbeat: g.heartbeat_interval.0,
        static_membership: g.static_membership,
    };
    run.processing = Processing::Behaviour(sc.processing.behaviour());
    if let Broker::Mock(m) = &run.broker {
        if let Some(id) = plan.pin_coordinator {
            m.move_coordinator(&run.names.group, id)
                .map_err(|e| RunError::Setup(e.to_string()))?;
            run.fault(&format!("pin the coordinator to mock broker {id}"));
        }
        if let Some(id) = plan.pin_dead_letters {
            for p in 0..sc.cluster.dead_letter_partitions as i32 {
                m.move_leader(&run.names.dlq, p, id)
                    .map_err(|e| RunError::Setup(e.to_string()))?;
            }
            run.fault(&format!(
                "pin the dead-letter partitions' leader to mock broker {id}"
            ));
        }
        for (p, id) in &plan.pin_leaders {
            m.move_leader(&run.names.topic, *p, *id)
                .map_err(|e| RunError::Setup(e.to_string()))?;
            run.fault(&format!(
                "pin the leader of partition {p} to mock broker {id}"
            ));
        }
    }
    for i in 0..g.members {
        run.start_member(i);
    }
    let produce = run.produce(Workload {
        messages: sc.workload.messages,
        batch: sc.workload.batch,
        interval: sc.workload.interval.0,
        poison_every: 0,
    });
    let start = tokio::time::Instant::now();
    for step in &plan.steps {
        tokio::time::sleep_until(start + step.at).await;
        apply(&mut run, &step.action)
            .await
            .map_err(|e| RunError::Setup(format!("{}: {e}", step.description)))?;
        if step.heals {
            run.healed(&step.description);
        } else {
            run.fault(&step.description);
        }
    }
    produce
        .await
        .map_err(|e| RunError::Setup(format!("producer: {e}")))?;
    let wanted = sc.expect.invariants();
    let verdict = run
        .finish_checking(&sc.name, sc.phases.quiet.0, &wanted)
        .await;
    // A broker that loses acknowledged commits causes redeliveries no
    // consumer can prevent: reported, apart, never counted against it.
    let (broker_faults, consumer): (Vec<_>, Vec<_>) = verdict
        .violations
        .iter()
        .partition(|v| v.invariant.is_broker_fault());
    let broker_anomalies: Vec<String> = broker_faults
        .iter()
        .map(ToString::to_string)
        .chain(verdict.producer_anomalies.iter().cloned())
        .collect();
    let result = match sc.expect.violation {
        Some(x) if verdict.violations.iter().any(|v| v.invariant == x) => Ok(()),
        Some(x) => Err(format!(
            "the known-bad consumer was expected to violate {x:?} and did not{}",
            if verdict.violations.is_empty() {
                String::new()
            } else {
                format!(
                    " (found: {:?})",
                    verdict
                        .violations
                        .iter()
                        .map(|v| v.invariant)
                        .collect::<Vec<_>>()
                )
            }
        )),
        None if consumer.is_empty() => Ok(()),
        None => Err(consumer
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n")),
    };
    Ok(Outcome {
        plan,
        verdict,
        result,
        broker_anomalies,
    })
}

async fn apply(run: &mut Run, action: &Action) -> Result<(), String> {
    let container = || {
        run.container()
            .ok_or_else(|| "not a container run".to_string())
    };
    match action {
        Action::CrashMember(i) => {
            run.kill_member(*i);
        }
        Action::StartMember(i) => run.start_member(*i),
        Action::StopMember(i) => run.stop_member(*i, Duration::from_secs(15)).await,
        Action::BrokerDown(id) => run.mock().broker_down(*id).map_err(|e| e.to_string())?,
        Action::BrokerUp(id) => run.mock().broker_up(*id).map_err(|e| e.to_string())?,
        Action::MoveCoordinator(id) => {
            let group = run.names.group.clone();
            run.mock()
                .move_coordinator(&group, *id)
                .map_err(|e| e.to_string())?;
        }
        Action::MoveLeader(p, id) => {
            let topic = run.names.topic.clone();
            run.mock()
                .move_leader(&topic, *p, *id)
                .map_err(|e| e.to_string())?;
        }
        Action::Rtt(id, d) => run.mock().broker_rtt(*id, *d).map_err(|e| e.to_string())?,
        Action::BrokerErrors(id, api, e, n) => run
            .mock()
            .broker_request_errors(*id, *api, &vec![*e; *n as usize])
            .map_err(|e| e.to_string())?,
        Action::Errors(api, e, n) => run
            .mock()
            .request_errors(*api, &vec![*e; *n as usize])
            .map_err(|e| e.to_string())?,
        Action::PauseContainer => container()?.pause().await.map_err(|e| e.to_string())?,
        Action::UnpauseContainer => container()?.unpause().await.map_err(|e| e.to_string())?,
        Action::StopContainer => container()?.stop().await.map_err(|e| e.to_string())?,
        Action::StartContainer => container()?.restart().await.map_err(|e| e.to_string())?,
        Action::DisconnectContainer => container()?.disconnect().map_err(|e| e.to_string())?,
        Action::ReconnectContainer => container()?.reconnect().map_err(|e| e.to_string())?,
    }
    Ok(())
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

    #[test]
    fn a_coordinator_crash_on_the_mock_fails_over_and_comes_back() {
        let sc = scenario(
            "[[fault]]\nkind = \"crash-broker\"\nat = \"3s\"\nbroker = \"coordinator\"\nrestart_after = \"5s\"\n",
        );
        let p = plan(&sc, Backend::Mock, false).expect("plans");
        assert_eq!(p.pin_coordinator, Some(1));
        let actions: Vec<(u64, Action)> = p
            .steps
            .iter()
            .map(|s| (s.at.as_secs(), s.action.clone()))
            .collect();
        assert_eq!(
            actions,
            vec![
                (3, Action::BrokerDown(1)),
                (3, Action::MoveCoordinator(2)),
                (8, Action::BrokerUp(1)),
            ]
        );
    }

    #[test]
    fn a_dead_letter_outage_on_the_mock_hits_only_the_dead_letter_leader() {
        let sc = scenario("[[fault]]\nkind = \"dead-letter-outage\"\nat = \"2s\"\ncount = 7\n");
        let p = plan(&sc, Backend::Mock, false).expect("plans");
        let d = p.pin_dead_letters.expect("dead letters pinned");
        assert!(
            p.pin_leaders.iter().all(|(_, l)| *l != d),
            "a source partition shares the dead-letter leader: {:?}",
            p.pin_leaders
        );
        assert_eq!(p.pin_leaders.len(), sc.cluster.partitions as usize);
        assert!(matches!(
            p.steps[0].action,
            Action::BrokerErrors(b, RDKafkaApiKey::Produce, ErrorCode::NotEnoughReplicas, 7) if b == d
        ));
    }

    #[test]
    fn faults_without_a_real_equivalent_are_named_not_skipped() {
        let sc = scenario(
            "[[fault]]\nkind = \"partition\"\nat = \"1s\"\na = \"consumer-0\"\nb = \"coordinator\"\nduration = \"2s\"\n\
             [[fault]]\nkind = \"clock-jump\"\nat = \"2s\"\nmember = 1\nby = \"5s\"\n",
        );
        for backend in [Backend::Mock, Backend::Container, Backend::External] {
            let e = plan(&sc, backend, true).expect_err("cannot run");
            assert_eq!(e.reasons.len(), 2, "{e}");
            assert!(e.reasons[0].starts_with("`partition`"), "{e}");
            assert!(e.reasons[1].starts_with("`clock-jump`"), "{e}");
        }
    }

    #[test]
    fn stopping_a_container_that_keeps_its_log_in_memory_is_refused() {
        let sc = scenario(
            "[[fault]]\nkind = \"crash-broker\"\nat = \"3s\"\nbroker = \"broker-0\"\nrestart_after = \"2s\"\n",
        );
        let e = plan(&sc, Backend::Container, false).expect_err("Tansu loses its log");
        assert!(e.reasons[0].contains("broker loss"), "{e}");
        let p = plan(&sc, Backend::Container, true).expect("a durable image");
        assert_eq!(p.steps[0].action, Action::StopContainer);
        assert_eq!(p.steps[1].action, Action::StartContainer);
    }

    #[test]
    fn broker_faults_are_refused_on_an_external_cluster_member_faults_are_not() {
        let sc = scenario(
            "[[fault]]\nkind = \"crash-member\"\nat = \"1s\"\nmember = 1\nrestart_after = \"1s\"\n\
             [[fault]]\nkind = \"pause-broker\"\nat = \"2s\"\nbroker = \"coordinator\"\nduration = \"1s\"\n",
        );
        let e = plan(&sc, Backend::External, false).expect_err("no broker faults");
        assert_eq!(e.reasons.len(), 1, "{e}");
        let p = plan(&sc, Backend::Container, false).expect("container pauses");
        let actions: Vec<Action> = p.steps.iter().map(|s| s.action.clone()).collect();
        assert_eq!(
            actions,
            vec![
                Action::CrashMember(1),
                Action::StartMember(1),
                Action::PauseContainer,
                Action::UnpauseContainer,
            ]
        );
    }
}
