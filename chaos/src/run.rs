//! One run of a scenario, whatever it runs on.
//!
//! [`drive`] is the run every entry point shares — the `ruckus` command,
//! the per-file `cargo test` tier, the simulator's own tests and the
//! real-broker runner (`ruckus-integration`). It owns what does not depend
//! on where the group runs:
//!
//! - the fault schedule ([`plan`]: the scenario's scheduled faults and the
//!   nemesis's draws, compound faults expanded), applied and healed on
//!   time through the backend's one `apply`;
//! - the history's fault and heal records;
//! - the checkers, fed the history as it is recorded ([`Checks`]);
//! - the quiet phase and the final stop, in that order, and the checkers'
//!   [`Context`] built from how they ended;
//! - a failure of the backend (a simulated host's error, a broker that
//!   could not apply a fault), which ends the run but keeps its history
//!   and verdict.
//!
//! A [`Backend`] owns the rest: the cluster, the producer, the members and
//! the convergence watcher, set up when it is built (the simulation in
//! [`crate::world`]; librdkafka's mock cluster, a container or an external
//! cluster in `ruckus-integration`).

use std::future::Future;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll, Wake, Waker};
use std::time::Duration;

use ruckus_core::model::Instant;
use ruckus_history::fault::{Fault, FaultRecord};
use ruckus_history::record::{Entry, History, Record};

use crate::check::{Checks, Context, Liveness, Order, Violation};
use crate::nemesis;
use crate::scenario::{OrderingSpec, Scenario};
use crate::schedule::{Item, Schedule};

/// Every fault of a run of `sc` with `seed`: the scheduled ones and the
/// nemesis's draws, in time order.
pub fn plan(sc: &Scenario, seed: u64) -> Vec<Fault> {
    let mut plan = crate::schedule::scheduled(sc);
    if let Some(n) = &sc.nemesis {
        plan.extend(nemesis::draw(sc, n, seed));
    }
    plan.sort_by_key(Fault::at);
    plan
}

/// Where a scenario runs: a cluster, a producer and the group's members,
/// started when the backend is built, that [`drive`] advances, faults and
/// finally stops.
///
/// A backend applies each primitive fault kind of the one fault model
/// ([`Fault`]) in one `apply`, or says with its error why it cannot.
pub trait Backend {
    /// How the backend heals a fault it applied (its targets resolved).
    type Heal;
    /// Why the backend failed.
    type Error: std::error::Error + Send + Sync + 'static;

    /// Whether the history's entries are recorded in time order, so the
    /// checkers can read them as they arrive. A wall-clock backend whose
    /// members stamp events with their own clocks is sorted at the end.
    const IN_ORDER: bool;

    /// The history the cluster, the producer and the members record into;
    /// [`drive`] records the faults and heals there too.
    fn history(&self) -> &History;

    /// How coarse the history's timestamps are ([`Context::resolution`]).
    fn resolution(&self) -> Duration;

    /// Whether `[expect] no_rebalance_after` can be judged here (a broker
    /// that rebalances on every join, as librdkafka's mock does, cannot
    /// hold such a window).
    fn judges_no_rebalance(&self) -> bool {
        true
    }

    /// Time since the run started, on the backend's clock.
    fn elapsed(&self) -> Duration;

    /// When a fault or heal scheduled at `scheduled` took effect, as the
    /// history records it.
    fn stamp(&self, scheduled: Duration) -> Instant;

    /// Runs until `at` since the start. `Ok(false)`: the run ended on its
    /// own before that.
    fn advance_to(&mut self, at: Duration) -> impl Future<Output = Result<bool, Self::Error>>;

    /// Applies a primitive fault now: what the history records and how to
    /// heal it, or `Ok(None)` when its target does not exist at this
    /// moment (no live broker coordinates).
    ///
    /// # Errors
    /// The fault has no equivalent here, or the backend failed to apply it.
    #[allow(clippy::type_complexity)]
    fn apply(
        &mut self,
        fault: &Fault,
    ) -> impl Future<Output = Result<Option<(FaultRecord, Option<Self::Heal>)>, Self::Error>>;

    /// Heals a fault it applied.
    fn heal(&mut self, heal: Self::Heal) -> impl Future<Output = Result<(), Self::Error>>;

    /// The faults are over: the quiet phase, until the group converges or
    /// the liveness deadline passes.
    fn settle(&mut self) -> impl Future<Output = Result<(), Self::Error>>;

    /// The final stop (every running member asked to shut down
    /// gracefully) if it has not happened, and how the run ended. Called
    /// once, last, also after a failure.
    fn finish(&mut self) -> impl Future<Output = Settled>;
}

/// How a run ended, as its backend saw it.
#[derive(Clone, Debug)]
pub struct Settled {
    /// Convergence and the final stop, for the liveness checker.
    pub liveness: Liveness,
    /// When the final stop began, if the run got that far.
    pub final_stop_at: Option<Instant>,
    /// Time the run took on the backend's clock.
    pub elapsed: Duration,
    /// What the broker did wrong that no consumer can prevent (a record
    /// acknowledged without an offset and not in the log), reported apart.
    pub anomalies: Vec<String>,
}

/// The backend failed; the run ended there.
#[derive(Clone, Debug, thiserror::Error)]
#[error("{what} at {:.3}s: {source}", at.as_secs_f64())]
pub struct Failed {
    /// What the run was doing.
    pub what: String,
    /// When, since the start.
    pub at: Duration,
    /// Why.
    #[source]
    pub source: Arc<dyn std::error::Error + Send + Sync>,
}

impl Failed {
    fn new(
        what: impl Into<String>,
        at: Duration,
        e: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Self {
            what: what.into(),
            at,
            source: Arc::new(e),
        }
    }
}

/// The result of one run.
#[derive(Clone, Debug)]
pub struct RunOutput {
    /// The seed.
    pub seed: u64,
    /// Every event, in time order.
    pub history: Vec<Entry>,
    /// What the checkers need besides the history.
    pub context: Context,
    /// What the scenario's checkers found (`[expect]`'s invariants).
    pub violations: Vec<Violation>,
    /// Time the run took on its backend's clock (simulated time in the
    /// simulation).
    pub elapsed: Duration,
    /// When the final stop began (every running member asked to shut
    /// down gracefully), if the run got that far.
    pub final_stop_at: Option<Instant>,
    /// The backend failed (a simulated host's software returned an error,
    /// a broker could not apply a fault): the run ended there.
    pub error: Option<Failed>,
    /// Broker faults no consumer can prevent, reported apart.
    pub anomalies: Vec<String>,
    /// Whether each fault on a member reached what it is about: how many
    /// partitions the member owned when it landed (`None`: the history
    /// shows no ownership at all, as a black box's does).
    pub reach: Option<Vec<Reach>>,
}

/// A fault on a member, and what it found there.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Reach {
    /// When it landed.
    pub at_ms: u64,
    /// Its kind.
    pub kind: String,
    /// The member.
    pub member: usize,
    /// Partitions the member owned then (0: the fault hit an idle member,
    /// which proves little about the consumer).
    pub owned: usize,
}

/// For every fault applied to a member, the partitions the member owned
/// when it landed, from the history's assignments, revocations, losses and
/// stops (`None` if the history records no assignment at all).
pub fn reach(history: &[Entry]) -> Option<Vec<Reach>> {
    use std::collections::{BTreeMap, BTreeSet};

    use ruckus_core::events::Event;
    use ruckus_history::fault::Target;

    let mut owned: BTreeMap<&str, BTreeSet<&ruckus_core::model::TopicPartition>> = BTreeMap::new();
    let mut any = false;
    let mut out = Vec::new();
    for e in history {
        match &e.record {
            Record::Client(Event::Assigned { partitions, .. }) => {
                any = true;
                owned
                    .entry(e.host.as_str())
                    .or_default()
                    .extend(partitions.iter().map(|(tp, _)| tp));
            }
            Record::Client(Event::Revoked { partitions, .. } | Event::Lost { partitions }) => {
                if let Some(o) = owned.get_mut(e.host.as_str()) {
                    for tp in partitions {
                        o.remove(tp);
                    }
                }
            }
            Record::Client(Event::Stopped { .. }) => {
                owned.remove(e.host.as_str());
            }
            Record::Fault(f) => {
                for t in &f.targets {
                    if let Target::Member(m) = t {
                        let host = ruckus_history::fault::member_host(*m);
                        out.push(Reach {
                            at_ms: e.at.as_millis(),
                            kind: f.fault.kind().to_owned(),
                            member: *m,
                            owned: owned.get(host.as_str()).map_or(0, BTreeSet::len),
                        });
                    }
                }
                // A crash ends what the member owned.
                if let Some(m) = f.ends_member(false) {
                    owned.remove(ruckus_history::fault::member_host(m).as_str());
                }
            }
            _ => {}
        }
    }
    any.then_some(out)
}

/// Runs `sc` with `seed` on `backend`, applying `plan` (see [`plan`]), and
/// judges the history with the scenario's checkers.
pub async fn drive<B: Backend>(
    sc: &Scenario,
    seed: u64,
    plan: Vec<Fault>,
    mut backend: B,
) -> RunOutput {
    let order = match sc.group.ordering {
        OrderingSpec::Partition => Order::Partition,
        OrderingSpec::Key => Order::Key,
    };
    let mut checks = Checks::new(
        &sc.expect.invariants(),
        sc.group.retry.policy(),
        order,
        backend.resolution(),
    );
    let history = backend.history().clone();
    let mut checked = 0;
    let mut schedule: Schedule<B::Heal> = Schedule::new(plan);
    let mut error = None;
    let mut ended = false;
    'faults: while let Some(next) = schedule.next_at() {
        match backend.advance_to(next).await {
            Ok(true) => {}
            Ok(false) => {
                ended = true;
                break;
            }
            Err(e) => {
                error = Some(Failed::new("running", backend.elapsed(), e));
                break;
            }
        }
        if B::IN_ORDER {
            checked = history.scan_from(checked, |e| checks.observe(e));
        }
        while let Some((at, item)) = schedule.pop_due(backend.elapsed()) {
            match item {
                Item::Apply(fault) => match backend.apply(&fault).await {
                    Ok(Some((applied, heal))) => {
                        history.record_at(
                            backend.stamp(at),
                            "nemesis",
                            Record::Fault(applied.clone()),
                        );
                        schedule.heal_later(at, &fault, applied, heal);
                    }
                    // Its target is gone (no live broker coordinates).
                    Ok(None) => {}
                    Err(e) => {
                        let what = format!("applying {} at {:?}", fault.kind(), fault.at());
                        error = Some(Failed::new(what, at, e));
                        break 'faults;
                    }
                },
                Item::Heal(applied, heal) => {
                    if let Err(e) = backend.heal(heal).await {
                        error = Some(Failed::new(format!("healing {applied}"), at, e));
                        break 'faults;
                    }
                    history.record_at(backend.stamp(at), "nemesis", Record::Healed(applied));
                }
            }
        }
    }
    if error.is_none() && !ended {
        if let Err(e) = backend.settle().await {
            error = Some(Failed::new("the quiet phase", backend.elapsed(), e));
        }
    }
    let settled = backend.finish().await;
    let mut entries = history.entries();
    if !B::IN_ORDER {
        entries.sort_by_key(|e| e.at);
    }
    let context = Context {
        retry: sc.group.retry.policy(),
        order,
        liveness: settled.liveness,
        resolution: backend.resolution(),
        no_rebalance: if backend.judges_no_rebalance() {
            sc.expect.no_rebalance_after.map(|d| {
                (
                    Instant::from_millis(d.0.as_millis() as u64),
                    settled.final_stop_at,
                )
            })
        } else {
            None
        },
    };
    for e in &entries[checks.seen()..] {
        checks.observe(e);
    }
    let violations = checks.finish(&entries, &context);
    let reach = reach(&entries);
    RunOutput {
        seed,
        history: entries,
        context,
        violations,
        elapsed: settled.elapsed,
        final_stop_at: settled.final_stop_at,
        error,
        anomalies: settled.anomalies,
        reach,
    }
}

/// Runs a future that never waits — a run on a backend that keeps its own
/// time, as the simulation does — to its end on this thread.
///
/// # Panics
/// The future waited: a backend that keeps its own time never does, so
/// that is a bug in it.
pub fn block_on<F: Future>(f: F) -> F::Output {
    struct Never;
    impl Wake for Never {
        fn wake(self: Arc<Self>) {}
    }
    let waker = Waker::from(Arc::new(Never));
    let mut cx = TaskContext::from_waker(&waker);
    let mut f = std::pin::pin!(f);
    match f.as_mut().poll(&mut cx) {
        Poll::Ready(out) => out,
        Poll::Pending => panic!("a backend that keeps its own time waited on the wall clock"),
    }
}

#[cfg(test)]
mod tests {
    use ruckus_core::events::Event;
    use ruckus_core::model::{Generation, Offset, TopicPartition};
    use ruckus_history::duration::Dur;
    use ruckus_history::fault::Target;

    use super::*;

    fn at(ms: u64) -> Instant {
        Instant::from_millis(ms)
    }

    fn fault(ms: u64, f: Fault, member: usize) -> Entry {
        Entry {
            at: at(ms),
            host: "nemesis".into(),
            record: Record::Fault(FaultRecord::new(f, vec![Target::Member(member)])),
        }
    }

    #[test]
    fn reach_counts_what_a_member_owned_when_its_fault_landed() {
        let tp = |p| TopicPartition::new("orders", p);
        let h = vec![
            Entry::client(
                at(10),
                "consumer-1",
                Event::Assigned {
                    partitions: vec![(tp(0), Offset(0)), (tp(1), Offset(0))],
                    generation: Generation(1),
                },
            ),
            fault(
                20,
                Fault::PauseMember {
                    at: Dur(std::time::Duration::from_millis(20)),
                    member: 1,
                    duration: Dur(std::time::Duration::from_secs(1)),
                },
                1,
            ),
            Entry::client(
                at(30),
                "consumer-1",
                Event::Revoked {
                    partitions: vec![tp(0)],
                    generation: Generation(1),
                },
            ),
            fault(
                40,
                Fault::CrashMember {
                    at: Dur(std::time::Duration::from_millis(40)),
                    member: 1,
                    restart_after: None,
                },
                1,
            ),
            // The crash ended what it owned; and member 2 never owned any.
            fault(
                50,
                Fault::CrashMember {
                    at: Dur(std::time::Duration::from_millis(50)),
                    member: 1,
                    restart_after: None,
                },
                1,
            ),
            fault(
                60,
                Fault::StopMember {
                    at: Dur(std::time::Duration::from_millis(60)),
                    member: 2,
                    restart_after: None,
                },
                2,
            ),
        ];
        let r = reach(&h).expect("the history has assignments");
        let owned: Vec<(u64, usize, usize)> =
            r.iter().map(|x| (x.at_ms, x.member, x.owned)).collect();
        assert_eq!(owned, vec![(20, 1, 2), (40, 1, 1), (50, 1, 0), (60, 2, 0)]);
        // A history with no ownership in it (a black box's) says nothing.
        assert_eq!(reach(&h[1..2]), None);
    }
}
