//! The simulation as a backend of the one run ([`crate::run`]): the
//! simulated cluster, the producer, the members and a convergence watcher
//! for the quiet phase, as hosts of one seeded turmoil simulation, and the
//! simulation's `apply` of the fault model ([`World::apply`]).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering as AtomicOrdering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ruckus_core::coordinator::CoordinatorConfig;
use ruckus_core::driver::{Driver, ShutdownHandle};
use ruckus_core::events::Event;
use ruckus_core::model::{ErrorCode, GroupId, Instant, Topic, TopicPartition};
use ruckus_core::rng::SplitMix64;
use ruckus_history::fault::{member_host, Api, FaultRecord, Target, Unsupported};
use ruckus_history::record::History;
use ruckus_sim::cluster::{broker, broker_host, Cluster};
use ruckus_sim::pause::PauseGate;
use ruckus_sim::producer::{produce, Payloads, Workload};
use ruckus_sim::store::{Store, StoreClient, STORE_HOST};
use ruckus_sim::transport::{SimTransport, SimTransportConfig};

use crate::check::Liveness;
use crate::processor::{Gated, MemberStart, ProcessorFactory, Scripted};
use crate::run::Settled;
use crate::scenario::{BrokerRef, CommitSpec, Fault, HostRef, Scenario, DLQ_TOPIC, GROUP, TOPIC};

pub use crate::run::{plan, RunOutput};

struct Members {
    /// The running members' shutdown handles, by host.
    handles: Mutex<BTreeMap<String, ShutdownHandle>>,
    /// Members whose driver returned (a graceful stop finished), by host.
    stopped: Mutex<BTreeSet<String>>,
}

/// When the final stop began, and the members that had not stopped by its
/// bound.
type FinalStop = (Instant, Vec<String>);

/// How long the final stop may take: the members' drain, last commit and
/// leave (their shutdown timeout is 30 s; a stop that is not stuck takes
/// well under a second of simulated time).
const FINAL_STOP_BOUND: Duration = Duration::from_secs(25);

/// Runs `sc` with `seed` in the simulation, with the scenario's scripted
/// processor: [`crate::run::drive`] on a [`Simulation`].
pub fn run(sc: &Scenario, seed: u64) -> RunOutput {
    run_with(sc, seed, &App::scripted(sc))
}

/// Runs `sc` with `seed` in the simulation, with `app`'s processor and
/// payloads.
pub fn run_with<F: ProcessorFactory>(sc: &Scenario, seed: u64, app: &App<F>) -> RunOutput {
    let plan = plan(sc, seed);
    let backend = Simulation::new(sc, seed, &plan, app);
    crate::run::block_on(crate::run::drive(sc, seed, plan, backend))
}

/// What a run's members process and the producer writes: the processor
/// factory, the payloads, whether the store runs.
#[derive(Debug)]
pub struct App<F> {
    /// Makes each member's processor at each start.
    pub processor: Arc<F>,
    /// What the workload's records hold.
    pub payloads: Payloads,
}

impl<F> Clone for App<F> {
    fn clone(&self) -> Self {
        Self {
            processor: self.processor.clone(),
            payloads: self.payloads.clone(),
        }
    }
}

impl App<Scripted> {
    /// The scenario's own: its scripted processor and the default payloads.
    pub fn scripted(sc: &Scenario) -> Self {
        Self::new(Scripted(sc.processing.behaviour()))
    }
}

impl<F: ProcessorFactory> App<F> {
    /// `processor`'s members, with the default payloads.
    pub fn new(processor: F) -> Self {
        Self {
            processor: Arc::new(processor),
            payloads: Payloads::default(),
        }
    }
}

/// The simulation as a backend: simulated brokers, the workload's
/// producer, the group's members running the reference consumer, and a
/// convergence watcher, all hosts of one seeded turmoil simulation that
/// runs on its own clock.
pub struct Simulation {
    sim: turmoil::Sim<'static>,
    world: World,
    history: History,
    partitions: Vec<TopicPartition>,
    deadline: Duration,
    faults_over: Arc<AtomicBool>,
    converged: Arc<Mutex<Option<Instant>>>,
    final_stop: Arc<Mutex<Option<FinalStop>>>,
    /// Every host's software has returned.
    ended: bool,
}

impl std::fmt::Debug for Simulation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Simulation")
            .field("seed", &self.world.seed)
            .field("elapsed", &self.sim.elapsed())
            .finish_non_exhaustive()
    }
}

/// Why the simulation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SimError {
    /// A fault the simulation cannot apply (a compound fault that was not
    /// expanded).
    #[error(transparent)]
    Unsupported(#[from] Unsupported),
    /// A host's software returned an error (turmoil's message).
    #[error("the simulation failed: {0}")]
    Host(String),
}

impl Simulation {
    /// The simulation of `sc` with `seed` and `app`'s processors, every
    /// host registered; `plan` (the faults the run will apply) decides how
    /// long it may run.
    pub fn new<F: ProcessorFactory>(
        sc: &Scenario,
        seed: u64,
        plan: &[Fault],
        app: &App<F>,
    ) -> Self {
        let g = &sc.group;
        let brokers = sc.cluster.brokers;
        let faults_end = plan
            .iter()
            .map(Fault::over_at)
            .max()
            .unwrap_or_default()
            .max(if sc.nemesis.is_some() {
                sc.phases.faults.0
            } else {
                Duration::ZERO
            });
        let deadline = faults_end + sc.phases.quiet.0;
        let mut sim =
            ruckus_sim::builder(seed, deadline + FINAL_STOP_BOUND + Duration::from_secs(30))
                .build();
        let coordinator = CoordinatorConfig {
            min_session_timeout: Duration::from_secs(1),
            initial_rebalance_delay: Duration::ZERO,
            ..CoordinatorConfig::default()
        };
        let cluster = Cluster::new(
            brokers,
            &[
                (Topic::new(TOPIC), sc.cluster.partitions),
                (Topic::new(DLQ_TOPIC), sc.cluster.dead_letter_partitions),
            ],
            coordinator,
        );
        cluster.set_seed(seed);
        let history = History::default();
        cluster.record_into(history.clone());
        for b in 0..brokers {
            let c = cluster.clone();
            sim.host(broker_host(b), move || broker(c.clone(), b));
        }
        let members = Arc::new(Members {
            handles: Mutex::default(),
            stopped: Mutex::default(),
        });
        let store = app.processor.uses_store().then(|| {
            let store = Store::simulated(history.clone());
            let s = store.clone();
            sim.host(STORE_HOST, move || ruckus_sim::store::serve(s.clone()));
            store
        });
        let mut start_gates = BTreeMap::new();
        for i in 0..g.all_members() {
            let host = member_host(i);
            let start = PauseGate::default();
            if i >= g.members {
                start.pause();
            }
            start_gates.insert(i, start.clone());
            let (history, config, factory, gate, cluster) = (
                history.clone(),
                g.consumer_config(),
                app.processor.clone(),
                cluster.pause_gate(&host),
                cluster.clone(),
            );
            let membership = g.membership_config(&host);
            let (request_timeout, max_records) = (g.request_timeout.0, g.max_records);
            let members = members.clone();
            let host_seed = seed ^ (i as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
            sim.host(host.clone(), move || {
                let (host, history, config, factory, gate, membership, members, start, cluster) = (
                    host.clone(),
                    history.clone(),
                    config.clone(),
                    factory.clone(),
                    gate.clone(),
                    membership.clone(),
                    members.clone(),
                    start.clone(),
                    cluster.clone(),
                );
                async move {
                    start.wait().await;
                    let transport = SimTransport::new(SimTransportConfig {
                        request_timeout,
                        max_records,
                        ..SimTransportConfig::for_host(
                            &cluster,
                            &host,
                            (0..brokers).collect(),
                            membership,
                        )
                    });
                    let processor = factory.start(&MemberStart {
                        index: i,
                        host: host.clone(),
                        seed: host_seed,
                        store: StoreClient::simulated(),
                    });
                    let driver = Driver::new(
                        config,
                        transport,
                        Gated::new(processor, gate),
                        Box::new(SplitMix64::new(host_seed)),
                        ruckus_sim::history::sink(&history, &host),
                    )?;
                    members
                        .handles
                        .lock()
                        .expect("handles")
                        .insert(host.clone(), driver.shutdown_handle());
                    members.stopped.lock().expect("stopped").remove(&host);
                    driver.run().await?;
                    members
                        .stopped
                        .lock()
                        .expect("stopped")
                        .insert(host.clone());
                    Ok(())
                }
            });
        }
        let partitions: Vec<TopicPartition> = (0..sc.cluster.partitions as i32)
            .map(|p| TopicPartition::new(TOPIC, p))
            .collect();
        sim.client(
            "producer",
            produce(
                (0..brokers).collect(),
                Workload {
                    partitions: partitions.clone(),
                    messages: sc.workload.messages,
                    batch: sc.workload.batch,
                    interval: sc.workload.interval.0,
                    payloads: app.payloads.clone(),
                },
                history.clone(),
                "producer".into(),
            ),
        );
        // The watcher: once the faults are over and the group has converged
        // (everything produced is committed), or at the liveness deadline,
        // the final stop: every running member shuts down gracefully. The
        // run ends when they all have; then nothing may be left uncommitted
        // (see `check::Liveness`). A consumer that commits only on revoke
        // and shutdown commits nothing while the group is stable, so for it
        // the final stop comes at the deadline and the commits it leaves
        // decide. (Stopping it as soon as every record was processed once
        // is not the same: records processed by a member that crashed after
        // processing them are redelivered to the next owner, who must
        // process them again before stopping.)
        let faults_over = Arc::new(AtomicBool::new(plan.is_empty()));
        let converged: Arc<Mutex<Option<Instant>>> = Arc::default();
        let final_stop: Arc<Mutex<Option<FinalStop>>> = Arc::default();
        {
            let (c, h, over, conv, messages, members, stop) = (
                cluster.clone(),
                history.clone(),
                faults_over.clone(),
                converged.clone(),
                sc.workload.messages,
                members.clone(),
                final_stop.clone(),
            );
            let commits_while_running = g.commit != CommitSpec::OnRevoke;
            let partitions = partitions.clone();
            let deadline_ms = deadline.as_millis() as u64;
            sim.client("watcher", async move {
                let group = GroupId::new(GROUP);
                // Produced records counted so far, and the history entries
                // read.
                let (mut produced, mut cursor) = (0, 0);
                loop {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    let now = ruckus_sim::cluster::sim_now();
                    cursor = h.scan_from(cursor, |e| {
                        if matches!(e.event(), Some(Event::Produced { .. })) {
                            produced += 1;
                        }
                    });
                    if commits_while_running
                        && over.load(AtomicOrdering::SeqCst)
                        && produced >= messages
                        && partitions
                            .iter()
                            .all(|tp| c.committed(&group, tp) == Some(c.high_watermark(tp)))
                    {
                        *conv.lock().expect("converged") = Some(now);
                        break;
                    }
                    if now.as_millis() > deadline_ms {
                        if !commits_while_running {
                            // Judged by the commits the final stop leaves.
                            *conv.lock().expect("converged") =
                                Some(Instant::from_millis(deadline_ms));
                        }
                        break;
                    }
                }
                // The final stop.
                let asked: BTreeMap<String, ShutdownHandle> =
                    std::mem::take(&mut *members.handles.lock().expect("handles"));
                for handle in asked.values() {
                    handle.shutdown();
                }
                let started = ruckus_sim::cluster::sim_now();
                let pending = || {
                    let stopped = members.stopped.lock().expect("stopped");
                    asked
                        .keys()
                        .filter(|m| !stopped.contains(*m))
                        .cloned()
                        .collect::<Vec<String>>()
                };
                while !pending().is_empty()
                    && ruckus_sim::cluster::sim_now().as_millis()
                        < started.as_millis() + FINAL_STOP_BOUND.as_millis() as u64
                {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                *stop.lock().expect("final stop") = Some((started, pending()));
                Ok(())
            });
        }
        let mut hosts: Vec<String> = (0..brokers).map(broker_host).collect();
        hosts.extend((0..g.all_members()).map(member_host));
        hosts.push("producer".into());
        if store.is_some() {
            hosts.push(STORE_HOST.into());
        }
        for (i, a) in hosts.iter().enumerate() {
            for b in &hosts[i + 1..] {
                sim.set_link_latency(a.as_str(), b.as_str(), ruckus_sim::link_latency(seed, a, b));
            }
        }
        Simulation {
            sim,
            world: World {
                cluster,
                members,
                starts: start_gates,
                seed,
                store,
            },
            history,
            partitions,
            deadline,
            faults_over,
            converged,
            final_stop,
            ended: false,
        }
    }

    /// One step of the simulation (one tick).
    fn step(&mut self) -> Result<(), SimError> {
        match self.sim.step() {
            Ok(done) => {
                self.ended = done;
                Ok(())
            }
            Err(e) => Err(SimError::Host(e.to_string())),
        }
    }
}

impl crate::run::Backend for Simulation {
    type Heal = Heal;
    type Error = SimError;
    const IN_ORDER: bool = true;

    fn history(&self) -> &History {
        &self.history
    }

    fn resolution(&self) -> Duration {
        // Every event carries the exact simulated time.
        Duration::ZERO
    }

    fn elapsed(&self) -> Duration {
        self.sim.elapsed()
    }

    fn stamp(&self, scheduled: Duration) -> Instant {
        // The simulated clock stops exactly at each scheduled moment.
        Instant::from_millis(scheduled.as_millis() as u64)
    }

    async fn advance_to(&mut self, at: Duration) -> Result<bool, SimError> {
        while !self.ended && self.sim.elapsed() < at {
            self.step()?;
        }
        Ok(!self.ended)
    }

    async fn apply(&mut self, fault: &Fault) -> Result<Option<Applied>, SimError> {
        Ok(self.world.apply(&mut self.sim, fault)?)
    }

    async fn heal(&mut self, heal: Heal) -> Result<(), SimError> {
        heal(&mut self.sim, &self.world);
        Ok(())
    }

    async fn settle(&mut self) -> Result<(), SimError> {
        // The watcher stops the members once the group converged (or at the
        // deadline); the run ends when every host's software has returned.
        self.faults_over.store(true, AtomicOrdering::SeqCst);
        while !self.ended {
            self.step()?;
        }
        Ok(())
    }

    async fn finish(&mut self) -> Settled {
        let group = GroupId::new(GROUP);
        let cluster = &self.world.cluster;
        let lagging = self
            .partitions
            .iter()
            .filter_map(|tp| {
                let c = cluster.committed(&group, tp);
                let hw = cluster.high_watermark(tp);
                (c != Some(hw)).then(|| (tp.clone(), c, hw))
            })
            .collect();
        let converged_at = *self.converged.lock().expect("converged");
        let (final_stop_at, unstopped) = self
            .final_stop
            .lock()
            .expect("final stop")
            .clone()
            .map_or((None, Vec::new()), |(at, pending)| (Some(at), pending));
        Settled {
            liveness: Liveness {
                deadline: Instant::from_millis(self.deadline.as_millis() as u64),
                converged_at,
                lagging,
                unstopped,
            },
            final_stop_at,
            elapsed: self.sim.elapsed(),
            anomalies: Vec::new(),
        }
    }
}

/// How the simulation heals a fault it applied (targets already resolved).
pub type Heal = Box<dyn FnOnce(&mut turmoil::Sim<'_>, &World)>;

/// A fault applied: what the history records, and how to heal it.
pub type Applied = (FaultRecord, Option<Heal>);

/// The simulation as a backend of the fault model.
pub struct World {
    cluster: Cluster,
    members: Arc<Members>,
    starts: BTreeMap<usize, PauseGate>,
    seed: u64,
    /// The store, when the members' processors write to one.
    store: Option<Store>,
}

impl World {
    fn broker(&self, b: &BrokerRef) -> Option<u32> {
        match b {
            BrokerRef::Id(n) => Some(*n),
            BrokerRef::Coordinator => self.cluster.coordinator(),
            BrokerRef::LeaderOf(p) => self.cluster.leader(&TopicPartition::new(TOPIC, *p)),
        }
    }

    fn target(&self, h: &HostRef) -> Option<Target> {
        Some(match h {
            HostRef::Consumer(i) => Target::Member(*i),
            HostRef::Producer => Target::Producer,
            HostRef::Broker(b) => Target::Broker(self.broker(b)?),
            HostRef::Store => Target::Store,
        })
    }

    /// Refuses a fault on the store when this run has none.
    fn needs_store(&self, fault: &Fault) -> Result<(), Unsupported> {
        let on_store = match fault {
            Fault::StoreOutage { .. } => true,
            Fault::Partition { a, b, .. }
            | Fault::Hold { a, b, .. }
            | Fault::Latency { a, b, .. } => *a == HostRef::Store || *b == HostRef::Store,
            _ => false,
        };
        if on_store && self.store.is_none() {
            return Err(Unsupported::new(
                fault,
                "this run has no store: its processor writes no effects (run the scenario \
                 with a processor that writes to the store)",
            ));
        }
        Ok(())
    }

    /// Every client host: the members (late ones too) and the producer.
    fn clients(&self) -> Vec<String> {
        let mut v: Vec<String> = self.starts.keys().map(|m| member_host(*m)).collect();
        v.push("producer".into());
        v
    }

    fn stop(&self, member: usize) {
        let h = self
            .members
            .handles
            .lock()
            .expect("handles")
            .remove(&member_host(member));
        if let Some(h) = h {
            h.shutdown();
        }
    }

    /// Applies a primitive fault; `None` when its target does not exist at
    /// this moment (no live broker coordinates, or the broker is already
    /// down).
    ///
    /// # Errors
    /// A compound fault (expanded before the run) reached the backend.
    fn apply(
        &self,
        sim: &mut turmoil::Sim<'_>,
        fault: &Fault,
    ) -> Result<Option<Applied>, Unsupported> {
        self.needs_store(fault)?;
        let record = |targets: Vec<Target>| FaultRecord::new(fault.clone(), targets);
        let bounce = |m: usize| -> Heal {
            Box::new(move |sim: &mut turmoil::Sim<'_>, _: &World| sim.bounce(member_host(m)))
        };
        Ok(Some(match fault {
            Fault::CrashMember { member, .. } => {
                sim.crash(member_host(*member));
                self.members
                    .handles
                    .lock()
                    .expect("handles")
                    .remove(&member_host(*member));
                (record(vec![Target::Member(*member)]), Some(bounce(*member)))
            }
            Fault::StopMember { member, .. } => {
                self.stop(*member);
                (record(vec![Target::Member(*member)]), Some(bounce(*member)))
            }
            Fault::StartMember { member, .. } => {
                if let Some(g) = self.starts.get(member) {
                    g.resume();
                }
                (record(vec![Target::Member(*member)]), None)
            }
            Fault::PauseMember { member, .. } => {
                let gate = self.cluster.pause_gate(&member_host(*member));
                gate.pause();
                let heal: Heal = Box::new(move |_: &mut turmoil::Sim<'_>, _: &World| gate.resume());
                (record(vec![Target::Member(*member)]), Some(heal))
            }
            Fault::CrashBroker { broker: b, .. } => {
                let Some(n) = self.broker(b).filter(|n| self.cluster.is_alive(*n)) else {
                    return Ok(None);
                };
                self.cluster.set_alive(n, false);
                sim.crash(broker_host(n));
                let heal: Heal = Box::new(move |sim: &mut turmoil::Sim<'_>, w: &World| {
                    w.cluster.set_alive(n, true);
                    sim.bounce(broker_host(n));
                });
                (record(vec![Target::Broker(n)]), Some(heal))
            }
            Fault::PauseBroker { broker: b, .. } => {
                let Some(n) = self.broker(b) else {
                    return Ok(None);
                };
                for c in self.clients() {
                    sim.hold(broker_host(n).as_str(), c.as_str());
                }
                let heal: Heal = Box::new(move |sim: &mut turmoil::Sim<'_>, w: &World| {
                    for c in w.clients() {
                        sim.release(broker_host(n).as_str(), c.as_str());
                    }
                });
                (record(vec![Target::Broker(n)]), Some(heal))
            }
            Fault::DisconnectBroker { broker: b, .. } => {
                let Some(n) = self.broker(b) else {
                    return Ok(None);
                };
                for c in self.clients() {
                    sim.partition(broker_host(n).as_str(), c.as_str());
                }
                let heal: Heal = Box::new(move |sim: &mut turmoil::Sim<'_>, w: &World| {
                    for c in w.clients() {
                        sim.repair(broker_host(n).as_str(), c.as_str());
                    }
                });
                (record(vec![Target::Broker(n)]), Some(heal))
            }
            Fault::Partition { a, b, one_way, .. } => {
                let (Some(ta), Some(tb)) = (self.target(a), self.target(b)) else {
                    return Ok(None);
                };
                let (ha, hb) = (ta.to_string(), tb.to_string());
                if *one_way {
                    sim.partition_oneway(ha.as_str(), hb.as_str());
                } else {
                    sim.partition(ha.as_str(), hb.as_str());
                }
                let one_way = *one_way;
                let heal: Heal = Box::new(move |sim: &mut turmoil::Sim<'_>, _: &World| {
                    if one_way {
                        sim.repair_oneway(ha.as_str(), hb.as_str());
                    } else {
                        sim.repair(ha.as_str(), hb.as_str());
                    }
                });
                (record(vec![ta, tb]), Some(heal))
            }
            Fault::Hold { a, b, .. } => {
                let (Some(ta), Some(tb)) = (self.target(a), self.target(b)) else {
                    return Ok(None);
                };
                let (ha, hb) = (ta.to_string(), tb.to_string());
                sim.hold(ha.as_str(), hb.as_str());
                let heal: Heal = Box::new(move |sim: &mut turmoil::Sim<'_>, _: &World| {
                    sim.release(ha.as_str(), hb.as_str());
                });
                (record(vec![ta, tb]), Some(heal))
            }
            Fault::Latency { a, b, latency, .. } => {
                let (Some(ta), Some(tb)) = (self.target(a), self.target(b)) else {
                    return Ok(None);
                };
                let (ha, hb) = (ta.to_string(), tb.to_string());
                sim.set_link_latency(ha.as_str(), hb.as_str(), latency.0);
                let heal: Heal = Box::new(move |sim: &mut turmoil::Sim<'_>, w: &World| {
                    let seeded = ruckus_sim::link_latency(w.seed, &ha, &hb);
                    sim.set_link_latency(ha.as_str(), hb.as_str(), seeded);
                });
                (record(vec![ta, tb]), Some(heal))
            }
            Fault::Errors {
                api, error, count, ..
            } => {
                self.cluster.inject(*api, None, error.0, *count);
                (record(Vec::new()), None)
            }
            Fault::DeadLetterOutage { count, .. } => {
                self.cluster.inject(
                    Api::Produce,
                    Some(Topic::new(DLQ_TOPIC)),
                    ErrorCode::NotEnoughReplicas,
                    *count,
                );
                (record(Vec::new()), None)
            }
            Fault::ProduceErrors { error, count, .. } => {
                let source = Some(Topic::new(TOPIC));
                self.cluster.inject(Api::Produce, source, error.0, *count);
                (record(Vec::new()), None)
            }
            Fault::ClockJump {
                member,
                by,
                backwards,
                ..
            } => {
                let ms = by.0.as_millis() as i64;
                self.cluster
                    .clock(&member_host(*member))
                    .jump(if *backwards { -ms } else { ms });
                (record(vec![Target::Member(*member)]), None)
            }
            Fault::Loss {
                member,
                broker: b,
                rate,
                ..
            } => {
                let Some(n) = self.broker(b) else {
                    return Ok(None);
                };
                let link = self.cluster.link_loss(&member_host(*member));
                link.set(n, *rate);
                let heal: Heal =
                    Box::new(move |_: &mut turmoil::Sim<'_>, _: &World| link.set(n, 0.0));
                (
                    record(vec![Target::Member(*member), Target::Broker(n)]),
                    Some(heal),
                )
            }
            Fault::StoreOutage { .. } => {
                // Its data lives outside the host: an outage, not a loss.
                sim.crash(STORE_HOST);
                let heal: Heal =
                    Box::new(|sim: &mut turmoil::Sim<'_>, _: &World| sim.bounce(STORE_HOST));
                (record(vec![Target::Store]), Some(heal))
            }
            Fault::RollingRestart { .. } => {
                return Err(Unsupported::new(
                    fault,
                    "a compound fault: the run expands it into graceful stops before applying",
                ))
            }
        }))
    }
}
