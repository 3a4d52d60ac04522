//! One seeded run of a scenario in the simulation: the cluster, the
//! producer, the members, the fault schedule (scheduled faults and the
//! nemesis's), a convergence watcher for the quiet phase, and the history.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering as AtomicOrdering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ruckus_core::coordinator::CoordinatorConfig;
use ruckus_core::driver::{Driver, ShutdownHandle};
use ruckus_core::events::Event;
use ruckus_core::model::{ErrorCode, GroupId, Instant, Topic, TopicPartition};
use ruckus_core::rng::SplitMix64;
use ruckus_sim::cluster::{broker, broker_host, Api, Cluster};
use ruckus_sim::history::{Entry, History};
use ruckus_sim::pause::PauseGate;
use ruckus_sim::processing::SimProcessor;
use ruckus_sim::producer::{produce, Workload};
use ruckus_sim::transport::{SimTransport, SimTransportConfig};

use crate::check::{Context, Liveness, Order};
use crate::nemesis;
use crate::scenario::{
    BrokerRef, CommitSpec, FaultSpec, HostRef, OrderingSpec, Scenario, DLQ_TOPIC, GROUP, TOPIC,
};

/// One step of a fault schedule, at a simulated time.
#[derive(Clone, Debug, PartialEq)]
pub enum Step {
    /// Kill a member's software.
    CrashMember(usize),
    /// Start a member's software again from scratch (kills a running one).
    RestartMember(usize),
    /// Ask a member to shut down gracefully.
    StopMember(usize),
    /// Start a late member for the first time.
    StartMember(usize),
    /// Stop the world of a member.
    PauseMember(usize),
    /// End a member's pause.
    ResumeMember(usize),
    /// Crash a broker.
    CrashBroker(BrokerRef),
    /// Restart broker `n`.
    RestartBroker(u32),
    /// Hold every link between a broker and the clients (a frozen
    /// broker).
    PauseBroker(BrokerRef),
    /// Release them.
    ResumeBroker(u32),
    /// Cut every link between a broker and the clients.
    DisconnectBroker(BrokerRef),
    /// Heal them.
    ReconnectBroker(u32),
    /// Cut a link (one way: from the first host to the second).
    Partition(HostRef, HostRef, bool),
    /// Heal a link.
    Repair(HostRef, HostRef, bool),
    /// Hold a link.
    Hold(HostRef, HostRef),
    /// Release a held link.
    Release(HostRef, HostRef),
    /// Set a link's latency.
    Latency(HostRef, HostRef, Duration),
    /// Put a link back to its seeded latency.
    ResetLatency(HostRef, HostRef),
    /// The next `count` requests of `api` (to `topic`) fail with `error`.
    Errors(Api, Option<Topic>, ErrorCode, u32),
    /// Move a member's clock by this many milliseconds.
    ClockJump(usize, i64),
    /// Lose this fraction of messages between a member and a broker (0
    /// heals).
    Loss(usize, BrokerRef, f64),
}

/// A step with its heal: `(at, step, heal after, heal step)`. The heal's
/// targets are resolved when the step fires (a crashed `coordinator` is
/// restarted by id).
pub type Planned = (Duration, Step, Option<Duration>);

/// The scenario's scheduled faults as steps.
pub fn scheduled(sc: &Scenario) -> Vec<Planned> {
    let mut out = Vec::new();
    for f in &sc.faults {
        let at = f.get_ref().at();
        match f.get_ref().clone() {
            FaultSpec::CrashMember {
                member,
                restart_after,
                ..
            } => out.push((at, Step::CrashMember(member), restart_after.map(|d| d.0))),
            FaultSpec::StopMember {
                member,
                restart_after,
                ..
            } => out.push((at, Step::StopMember(member), restart_after.map(|d| d.0))),
            FaultSpec::StartMember { member, .. } => {
                out.push((at, Step::StartMember(member), None))
            }
            FaultSpec::PauseMember {
                member, duration, ..
            } => out.push((at, Step::PauseMember(member), Some(duration.0))),
            FaultSpec::CrashBroker {
                broker,
                restart_after,
                ..
            } => out.push((at, Step::CrashBroker(broker), restart_after.map(|d| d.0))),
            FaultSpec::PauseBroker {
                broker, duration, ..
            } => out.push((at, Step::PauseBroker(broker), Some(duration.0))),
            FaultSpec::DisconnectBroker {
                broker, duration, ..
            } => out.push((at, Step::DisconnectBroker(broker), duration.map(|d| d.0))),
            FaultSpec::Partition {
                a,
                b,
                duration,
                one_way,
                ..
            } => out.push((at, Step::Partition(a, b, one_way), duration.map(|d| d.0))),
            FaultSpec::Hold { a, b, duration, .. } => {
                out.push((at, Step::Hold(a, b), Some(duration.0)));
            }
            FaultSpec::Latency {
                a,
                b,
                latency,
                duration,
                ..
            } => out.push((at, Step::Latency(a, b, latency.0), duration.map(|d| d.0))),
            FaultSpec::Errors {
                api, error, count, ..
            } => out.push((at, Step::Errors(api, None, error.0, count), None)),
            FaultSpec::DeadLetterOutage { count, .. } => out.push((
                at,
                Step::Errors(
                    Api::Produce,
                    Some(Topic::new(DLQ_TOPIC)),
                    ErrorCode::NotEnoughReplicas,
                    count,
                ),
                None,
            )),
            FaultSpec::ClockJump {
                member,
                by,
                backwards,
                ..
            } => {
                let ms = by.0.as_millis() as i64;
                out.push((
                    at,
                    Step::ClockJump(member, if backwards { -ms } else { ms }),
                    None,
                ));
            }
            FaultSpec::Loss {
                member,
                broker,
                rate,
                duration,
                ..
            } => out.push((at, Step::Loss(member, broker, rate), duration.map(|d| d.0))),
            FaultSpec::RollingRestart { gap, .. } => {
                // Stop, restart after `gap`, next member `gap` later.
                let mut t = at;
                for m in 0..sc.group.members {
                    out.push((t, Step::StopMember(m), Some(gap.0)));
                    t += gap.0 * 2;
                }
            }
        }
    }
    out
}

/// The result of one seeded run.
#[derive(Clone, Debug)]
pub struct RunOutput {
    /// The seed.
    pub seed: u64,
    /// Every event, in order.
    pub history: Vec<Entry>,
    /// What the checkers need besides the history.
    pub context: Context,
    /// Simulated time at the end.
    pub simulated: Duration,
    /// When the final stop began (every running member asked to shut
    /// down gracefully), if the run got that far.
    pub final_stop_at: Option<Instant>,
    /// The simulation itself failed (a host's software returned an error),
    /// with the reason.
    pub error: Option<String>,
}

fn host_name(i: usize) -> String {
    format!("consumer-{i}")
}

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

/// Runs `sc` with `seed`.
pub fn run(sc: &Scenario, seed: u64) -> RunOutput {
    let g = &sc.group;
    let brokers = sc.cluster.brokers;
    let mut plan = scheduled(sc);
    if let Some(n) = &sc.nemesis {
        plan.extend(nemesis::draw(sc, n, seed));
    }
    plan.sort_by_key(|p| p.0);
    let faults_end = plan
        .iter()
        .map(|(at, _, heal)| *at + heal.unwrap_or_default())
        .max()
        .unwrap_or_default()
        .max(if sc.nemesis.is_some() {
            sc.phases.faults.0
        } else {
            Duration::ZERO
        });
    let deadline = faults_end + sc.phases.quiet.0;
    let mut sim =
        ruckus_sim::builder(seed, deadline + FINAL_STOP_BOUND + Duration::from_secs(30)).build();
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
    for b in 0..brokers {
        let c = cluster.clone();
        sim.host(broker_host(b), move || broker(c.clone(), b));
    }
    let members = Arc::new(Members {
        handles: Mutex::default(),
        stopped: Mutex::default(),
    });
    let mut start_gates = BTreeMap::new();
    for i in 0..g.all_members() {
        let host = host_name(i);
        let start = PauseGate::default();
        if i >= g.members {
            start.pause();
        }
        start_gates.insert(i, start.clone());
        let (history, config, behaviour, gate, cluster) = (
            history.clone(),
            g.consumer_config(),
            sc.processing.behaviour(),
            cluster.pause_gate(&host),
            cluster.clone(),
        );
        let membership = g.membership_config(&host);
        let (request_timeout, max_records) = (g.request_timeout.0, g.max_records);
        let members = members.clone();
        let host_seed = seed ^ (i as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        sim.host(host.clone(), move || {
            let (host, history, config, behaviour, gate, membership, members, start, cluster) = (
                host.clone(),
                history.clone(),
                config.clone(),
                behaviour.clone(),
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
                let driver = Driver::new(
                    config,
                    transport,
                    SimProcessor::new(behaviour, host_seed.rotate_left(7)).with_gate(gate),
                    Box::new(SplitMix64::new(host_seed)),
                    history.sink(&host),
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
            },
            history.clone(),
            "producer".into(),
        ),
    );
    // The watcher: once the faults are over and the group has converged
    // (everything produced is committed), or at the liveness deadline, the
    // final stop: every running member shuts down gracefully. The run ends
    // when they all have; then nothing may be left uncommitted (see
    // `check::Liveness`). A consumer that commits only on revoke and
    // shutdown commits nothing while the group is stable, so for it the
    // final stop comes at the deadline and the commits it leaves decide.
    // (Stopping it as soon as every record was processed once is not the
    // same: records processed by a member that crashed after processing
    // them are redelivered to the next owner, who must process them again
    // before stopping.)
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
            // Produced records counted so far, and the history entries read.
            let (mut produced, mut cursor) = (0, 0);
            loop {
                tokio::time::sleep(Duration::from_millis(100)).await;
                let now = ruckus_sim::cluster::sim_now();
                cursor = h.scan_from(cursor, |e| {
                    if matches!(e.event, Event::Produced { .. }) {
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
                        *conv.lock().expect("converged") = Some(Instant::from_millis(deadline_ms));
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
    hosts.extend((0..g.all_members()).map(host_name));
    hosts.push("producer".into());
    for (i, a) in hosts.iter().enumerate() {
        for b in &hosts[i + 1..] {
            sim.set_link_latency(a.as_str(), b.as_str(), ruckus_sim::link_latency(seed, a, b));
        }
    }
    let mut queue: BTreeMap<(Duration, u64), Step> = BTreeMap::new();
    let mut heals: BTreeMap<u64, Duration> = BTreeMap::new();
    for (n, (at, step, heal)) in plan.into_iter().enumerate() {
        if let Some(h) = heal {
            heals.insert(n as u64, h);
        }
        queue.insert((at, n as u64), step);
    }
    let mut next_seq = queue.len() as u64 + 1;
    let mut error = None;
    let world = World {
        cluster: &cluster,
        history: &history,
        members: &members,
        starts: &start_gates,
        seed,
    };
    loop {
        while let Some(entry) = queue.first_entry() {
            if sim.elapsed() < entry.key().0 {
                break;
            }
            let ((at, n), step) = entry.remove_entry();
            let heal = world.apply(&mut sim, at, &step);
            if let (Some(after), Some(heal)) = (heals.remove(&n), heal) {
                queue.insert((at + after, next_seq), heal);
                next_seq += 1;
            }
        }
        if queue.is_empty() {
            faults_over.store(true, AtomicOrdering::SeqCst);
        }
        match sim.step() {
            Ok(true) => break,
            Ok(false) => {}
            Err(e) => {
                error = Some(e.to_string());
                break;
            }
        }
    }
    let group = GroupId::new(GROUP);
    let lagging = partitions
        .iter()
        .filter_map(|tp| {
            let c = cluster.committed(&group, tp);
            let hw = cluster.high_watermark(tp);
            (c != Some(hw)).then(|| (tp.clone(), c, hw))
        })
        .collect();
    let converged_at = *converged.lock().expect("converged");
    let (final_stop_at, unstopped) = final_stop
        .lock()
        .expect("final stop")
        .clone()
        .map_or((None, Vec::new()), |(at, pending)| (Some(at), pending));
    RunOutput {
        seed,
        history: history.entries(),
        context: Context {
            retry: g.retry.policy(),
            order: match g.ordering {
                OrderingSpec::Partition => Order::Partition,
                OrderingSpec::Key => Order::Key,
            },
            liveness: Liveness {
                deadline: Instant::from_millis(deadline.as_millis() as u64),
                converged_at,
                lagging,
                unstopped,
            },
            resolution: Duration::ZERO,
        },
        simulated: sim.elapsed(),
        final_stop_at,
        error,
    }
}

struct World<'a> {
    cluster: &'a Cluster,
    history: &'a History,
    members: &'a Members,
    starts: &'a BTreeMap<usize, PauseGate>,
    seed: u64,
}

impl World<'_> {
    fn broker(&self, b: &BrokerRef) -> Option<u32> {
        match b {
            BrokerRef::Id(n) => Some(*n),
            BrokerRef::Coordinator => self.cluster.coordinator(),
            BrokerRef::LeaderOf(p) => self.cluster.leader(&TopicPartition::new(TOPIC, *p)),
        }
    }

    fn host(&self, h: &HostRef) -> Option<String> {
        match h {
            HostRef::Consumer(i) => Some(host_name(*i)),
            HostRef::Producer => Some("producer".into()),
            HostRef::Broker(b) => self.broker(b).map(broker_host),
        }
    }

    /// Every client host: the members (late ones too) and the producer.
    fn clients(&self) -> Vec<String> {
        let mut v: Vec<String> = self.starts.keys().map(|m| host_name(*m)).collect();
        v.push("producer".into());
        v
    }

    fn record(&self, at: Duration, description: String, heals: bool) {
        let at = Instant::from_millis(at.as_millis() as u64);
        let event = if heals {
            Event::FaultHealed { description }
        } else {
            Event::FaultInjected { description }
        };
        self.history.record_at(at, "nemesis", event);
    }

    /// Applies `step`; returns the step that heals it, targets resolved.
    fn apply(&self, sim: &mut turmoil::Sim<'_>, at: Duration, step: &Step) -> Option<Step> {
        let resolved = |h: &HostRef| match h {
            HostRef::Broker(b) => self.broker(b).map(|n| HostRef::Broker(BrokerRef::Id(n))),
            other => Some(other.clone()),
        };
        match step {
            Step::CrashMember(m) => {
                sim.crash(host_name(*m));
                self.members
                    .handles
                    .lock()
                    .expect("handles")
                    .remove(&host_name(*m));
                self.record(at, format!("crash {}", host_name(*m)), false);
                Some(Step::RestartMember(*m))
            }
            Step::RestartMember(m) => {
                sim.bounce(host_name(*m));
                self.record(at, format!("restart {}", host_name(*m)), true);
                None
            }
            Step::StopMember(m) => {
                let h = self
                    .members
                    .handles
                    .lock()
                    .expect("handles")
                    .remove(&host_name(*m));
                if let Some(h) = h {
                    h.shutdown();
                }
                self.record(at, format!("shutdown {}", host_name(*m)), false);
                Some(Step::RestartMember(*m))
            }
            Step::StartMember(m) => {
                if let Some(g) = self.starts.get(m) {
                    g.resume();
                }
                self.record(at, format!("start {}", host_name(*m)), false);
                None
            }
            Step::PauseMember(m) => {
                self.cluster.pause_gate(&host_name(*m)).pause();
                self.record(at, format!("pause {}", host_name(*m)), false);
                Some(Step::ResumeMember(*m))
            }
            Step::ResumeMember(m) => {
                self.cluster.pause_gate(&host_name(*m)).resume();
                self.record(at, format!("resume {}", host_name(*m)), true);
                None
            }
            Step::CrashBroker(b) => {
                let n = self.broker(b)?;
                if !self.cluster.is_alive(n) {
                    return None;
                }
                self.cluster.set_alive(n, false);
                sim.crash(broker_host(n));
                self.record(at, format!("crash {} ({b:?})", broker_host(n)), false);
                Some(Step::RestartBroker(n))
            }
            Step::RestartBroker(n) => {
                self.cluster.set_alive(*n, true);
                sim.bounce(broker_host(*n));
                self.record(at, format!("restart {}", broker_host(*n)), true);
                None
            }
            Step::PauseBroker(b) => {
                let n = self.broker(b)?;
                for c in self.clients() {
                    sim.hold(broker_host(n).as_str(), c.as_str());
                }
                self.record(at, format!("pause {} ({b:?})", broker_host(n)), false);
                Some(Step::ResumeBroker(n))
            }
            Step::ResumeBroker(n) => {
                for c in self.clients() {
                    sim.release(broker_host(*n).as_str(), c.as_str());
                }
                self.record(at, format!("unpause {}", broker_host(*n)), true);
                None
            }
            Step::DisconnectBroker(b) => {
                let n = self.broker(b)?;
                for c in self.clients() {
                    sim.partition(broker_host(n).as_str(), c.as_str());
                }
                self.record(at, format!("disconnect {} ({b:?})", broker_host(n)), false);
                Some(Step::ReconnectBroker(n))
            }
            Step::ReconnectBroker(n) => {
                for c in self.clients() {
                    sim.repair(broker_host(*n).as_str(), c.as_str());
                }
                self.record(at, format!("reconnect {}", broker_host(*n)), true);
                None
            }
            Step::Partition(a, b, one_way) => {
                let (ha, hb) = (self.host(a)?, self.host(b)?);
                if *one_way {
                    sim.partition_oneway(ha.as_str(), hb.as_str());
                } else {
                    sim.partition(ha.as_str(), hb.as_str());
                }
                let arrow = if *one_way { "->" } else { "<->" };
                self.record(at, format!("partition {ha} {arrow} {hb}"), false);
                Some(Step::Repair(resolved(a)?, resolved(b)?, *one_way))
            }
            Step::Repair(a, b, one_way) => {
                let (ha, hb) = (self.host(a)?, self.host(b)?);
                if *one_way {
                    sim.repair_oneway(ha.as_str(), hb.as_str());
                } else {
                    sim.repair(ha.as_str(), hb.as_str());
                }
                self.record(at, format!("repair {ha} {hb}"), true);
                None
            }
            Step::Hold(a, b) => {
                let (ha, hb) = (self.host(a)?, self.host(b)?);
                sim.hold(ha.as_str(), hb.as_str());
                self.record(at, format!("hold {ha} {hb}"), false);
                Some(Step::Release(resolved(a)?, resolved(b)?))
            }
            Step::Release(a, b) => {
                let (ha, hb) = (self.host(a)?, self.host(b)?);
                sim.release(ha.as_str(), hb.as_str());
                self.record(at, format!("release {ha} {hb}"), true);
                None
            }
            Step::Latency(a, b, d) => {
                let (ha, hb) = (self.host(a)?, self.host(b)?);
                sim.set_link_latency(ha.as_str(), hb.as_str(), *d);
                self.record(at, format!("latency {ha} {hb} {}ms", d.as_millis()), false);
                Some(Step::ResetLatency(resolved(a)?, resolved(b)?))
            }
            Step::ResetLatency(a, b) => {
                let (ha, hb) = (self.host(a)?, self.host(b)?);
                sim.set_link_latency(
                    ha.as_str(),
                    hb.as_str(),
                    ruckus_sim::link_latency(self.seed, &ha, &hb),
                );
                self.record(at, format!("latency {ha} {hb} back to seeded"), true);
                None
            }
            Step::ClockJump(m, ms) => {
                self.cluster.clock(&host_name(*m)).jump(*ms);
                self.record(at, format!("clock {} {ms:+}ms", host_name(*m)), false);
                None
            }
            Step::Loss(m, b, rate) => {
                let n = self.broker(b)?;
                self.cluster.link_loss(&host_name(*m)).set(n, *rate);
                let heals = *rate == 0.0;
                self.record(
                    at,
                    format!(
                        "loss {} {} {:.1}%",
                        host_name(*m),
                        broker_host(n),
                        rate * 100.0
                    ),
                    heals,
                );
                (!heals).then_some(Step::Loss(*m, BrokerRef::Id(n), 0.0))
            }
            Step::Errors(api, topic, error, count) => {
                self.cluster.inject(*api, topic.clone(), *error, *count);
                self.record(
                    at,
                    format!(
                        "errors {api:?} {error:?} x{count}{}",
                        topic
                            .as_ref()
                            .map(|t| format!(" on {t}"))
                            .unwrap_or_default()
                    ),
                    false,
                );
                None
            }
        }
    }
}
