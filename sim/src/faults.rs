//! Fault verbs, applied to a running simulation at scheduled simulated
//! times, each recorded in the history.

use std::time::Duration;

use ruckus_core::events::Event;
use ruckus_core::model::Instant;

use ruckus_core::model::{ErrorCode, Topic};

use crate::cluster::{broker_host, Api, Cluster};
use crate::history::History;

/// A fault.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Fault {
    /// Kill a host's software (its memory is gone).
    Crash(String),
    /// Start a crashed host's software again from scratch.
    Restart(String),
    /// Crash broker `id`: its partitions and the coordinator move.
    CrashBroker(u32),
    /// Restart broker `id`.
    RestartBroker(u32),
    /// Drop all traffic between two hosts, both ways.
    Partition(String, String),
    /// Heal a partition.
    Repair(String, String),
    /// Hold all messages between two hosts (delivered later, on release).
    Hold(String, String),
    /// Set the latency of the link between two hosts (fixed, so replayable).
    LinkLatency(String, String, Duration),
    /// Deliver held messages.
    Release(String, String),
    /// Stall a host: no requests, no responses, no records finished (see
    /// [`crate::pause`]).
    Pause(String),
    /// End a host's stall.
    Resume(String),
    /// Move a host's clock by this many milliseconds (see [`crate::clock`]).
    ClockJump(String, i64),
    /// Lose this many per mille of messages (each way) between a host and
    /// broker `id`; 0 heals (see [`crate::loss`]).
    Loss(String, u32, u32),
    /// The next `count` requests of an API (to a topic, if given) fail
    /// with `error`, whichever broker gets them.
    InjectErrors {
        /// Which API.
        api: Api,
        /// Only requests for this topic (Produce).
        topic: Option<Topic>,
        /// The error answered.
        error: ErrorCode,
        /// How many requests.
        count: u32,
    },
}

impl Fault {
    /// Whether this fault heals an earlier one.
    pub fn heals(&self) -> bool {
        matches!(
            self,
            Fault::Restart(_)
                | Fault::RestartBroker(_)
                | Fault::Repair(..)
                | Fault::Release(..)
                | Fault::Resume(_)
                | Fault::Loss(_, _, 0)
        )
    }

    /// Applies the fault to the simulation.
    pub fn apply(&self, sim: &mut turmoil::Sim<'_>, cluster: &Cluster) {
        match self {
            Fault::Crash(h) => sim.crash(h.as_str()),
            Fault::Restart(h) => sim.bounce(h.as_str()),
            Fault::CrashBroker(b) => {
                cluster.set_alive(*b, false);
                sim.crash(broker_host(*b));
            }
            Fault::RestartBroker(b) => {
                cluster.set_alive(*b, true);
                sim.bounce(broker_host(*b));
            }
            Fault::Partition(a, b) => sim.partition(a.as_str(), b.as_str()),
            Fault::Repair(a, b) => sim.repair(a.as_str(), b.as_str()),
            Fault::Hold(a, b) => sim.hold(a.as_str(), b.as_str()),
            Fault::LinkLatency(a, b, d) => sim.set_link_latency(a.as_str(), b.as_str(), *d),
            Fault::Release(a, b) => sim.release(a.as_str(), b.as_str()),
            Fault::Pause(h) => cluster.pause_gate(h).pause(),
            Fault::Resume(h) => cluster.pause_gate(h).resume(),
            Fault::ClockJump(h, ms) => cluster.clock(h).jump(*ms),
            Fault::Loss(h, b, permille) => {
                cluster.link_loss(h).set(*b, f64::from(*permille) / 1000.0);
            }
            Fault::InjectErrors {
                api,
                topic,
                error,
                count,
            } => cluster.inject(*api, topic.clone(), *error, *count),
        }
    }
}

/// Steps `sim` until every client finished, applying `faults` (sorted by
/// time) as simulated time passes them and recording each in `history`.
///
/// # Errors
/// A host's software failed, or the simulation ran past its duration.
pub fn run_with_faults(
    sim: &mut turmoil::Sim<'_>,
    cluster: &Cluster,
    history: &History,
    faults: &[(Duration, Fault)],
) -> turmoil::Result {
    let mut next = 0;
    loop {
        while next < faults.len() && sim.elapsed() >= faults[next].0 {
            let (at, fault) = &faults[next];
            fault.apply(sim, cluster);
            let at = Instant::from_millis(u64::try_from(at.as_millis()).unwrap_or(u64::MAX));
            let description = format!("{fault:?}");
            let event = if fault.heals() {
                Event::FaultHealed { description }
            } else {
                Event::FaultInjected { description }
            };
            history.record_at(at, "nemesis", event);
            next += 1;
        }
        if sim.step()? {
            return Ok(());
        }
    }
}
