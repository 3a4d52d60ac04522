//! The randomized nemesis: a fault schedule drawn from the seed. With
//! swarm testing on, the seed first draws which of the scenario's fault
//! kinds this run uses, so different seeds stress different mixes.

use std::time::Duration;

use ruckus_core::model::{ErrorCode, Topic};
use ruckus_core::rng::{Rng, SplitMix64};
use ruckus_sim::cluster::Api;

use crate::scenario::{BrokerRef, HostRef, NemesisKind, NemesisSpec, Scenario, DLQ_TOPIC};
use crate::world::{Planned, Step};

/// When the nemesis starts: after the group has formed.
const START: Duration = Duration::from_secs(2);

/// The kinds a seed enables (all, without swarm testing).
pub fn enabled_kinds(n: &NemesisSpec, seed: u64) -> Vec<NemesisKind> {
    let mut kinds = n.kinds.clone();
    kinds.sort();
    kinds.dedup();
    if !n.swarm {
        return kinds;
    }
    let mut rng = SplitMix64::new(seed ^ 0x5741_524d);
    let picked: Vec<NemesisKind> = kinds
        .iter()
        .copied()
        .filter(|_| rng.next_u64() % 2 == 0)
        .collect();
    if picked.is_empty() {
        vec![kinds[(rng.next_u64() % kinds.len() as u64) as usize]]
    } else {
        picked
    }
}

/// Draws the nemesis's schedule for `seed`: faults at exponentially
/// distributed gaps from 2 s until the end of the fault phase, each healed
/// before that end.
pub fn draw(sc: &Scenario, n: &NemesisSpec, seed: u64) -> Vec<Planned> {
    let kinds = enabled_kinds(n, seed);
    let mut rng = SplitMix64::new(seed ^ 0x004e_454d_4553_4953);
    let end = sc.phases.faults.0;
    let members = sc.group.members as u64;
    let brokers = u64::from(sc.cluster.brokers);
    let partitions = u64::from(sc.cluster.partitions);
    let mut out = Vec::new();
    let mut t = START;
    loop {
        let u = rng.next_f64();
        t += n.mean_interval.0.mul_f64(-(1.0 - u).ln());
        if t >= end {
            break;
        }
        let kind = kinds[(rng.next_u64() % kinds.len() as u64) as usize];
        let span = n
            .max_duration
            .0
            .mul_f64(n.intensity * (0.25 + 0.75 * rng.next_f64()));
        let dur = span.min(end - t).max(Duration::from_millis(100));
        let member = (rng.next_u64() % members) as usize;
        let broker = match rng.next_u64() % 3 {
            0 => BrokerRef::Coordinator,
            1 => BrokerRef::LeaderOf((rng.next_u64() % partitions) as i32),
            _ => BrokerRef::Id((rng.next_u64() % brokers) as u32),
        };
        let count = 1 + (n.intensity * 10.0 * rng.next_f64()) as u32;
        let pick = |rng: &mut SplitMix64, codes: &[ErrorCode]| {
            codes[(rng.next_u64() % codes.len() as u64) as usize]
        };
        let step = match kind {
            NemesisKind::CrashMember => (Step::CrashMember(member), Some(dur)),
            NemesisKind::StopMember => (Step::StopMember(member), Some(dur)),
            NemesisKind::PauseMember => (Step::PauseMember(member), Some(dur)),
            NemesisKind::CrashBroker => (Step::CrashBroker(broker), Some(dur)),
            NemesisKind::Partition => (
                Step::Partition(HostRef::Consumer(member), HostRef::Broker(broker), false),
                Some(dur),
            ),
            NemesisKind::OneWayPartition => {
                let (a, b) = if rng.next_u64() % 2 == 0 {
                    (HostRef::Consumer(member), HostRef::Broker(broker))
                } else {
                    (HostRef::Broker(broker), HostRef::Consumer(member))
                };
                (Step::Partition(a, b, true), Some(dur))
            }
            NemesisKind::Hold => (
                Step::Hold(HostRef::Consumer(member), HostRef::Broker(broker)),
                Some(dur),
            ),
            NemesisKind::Latency => {
                let ms = 50 + (n.intensity * 450.0 * rng.next_f64()) as u64;
                (
                    Step::Latency(
                        HostRef::Consumer(member),
                        HostRef::Broker(broker),
                        Duration::from_millis(ms),
                    ),
                    Some(dur),
                )
            }
            NemesisKind::CommitErrors => {
                let e = pick(
                    &mut rng,
                    &[
                        ErrorCode::RebalanceInProgress,
                        ErrorCode::CoordinatorLoadInProgress,
                        ErrorCode::NotCoordinator,
                        ErrorCode::RequestTimedOut,
                    ],
                );
                (Step::Errors(Api::OffsetCommit, None, e, count), None)
            }
            NemesisKind::HeartbeatErrors => {
                let e = pick(
                    &mut rng,
                    &[ErrorCode::RebalanceInProgress, ErrorCode::NotCoordinator],
                );
                (Step::Errors(Api::Heartbeat, None, e, count), None)
            }
            NemesisKind::FetchErrors => (
                Step::Errors(Api::Fetch, None, ErrorCode::NotLeaderOrFollower, count),
                None,
            ),
            NemesisKind::ClockJump => {
                let ms = (dur.as_millis() as i64).max(500);
                let ms = if rng.next_u64() % 2 == 0 { ms } else { -ms };
                (Step::ClockJump(member, ms), None)
            }
            NemesisKind::Loss => {
                let rate = 0.01 + 0.2 * n.intensity * rng.next_f64();
                (Step::Loss(member, broker, rate), Some(dur))
            }
            NemesisKind::DeadLetterOutage => (
                Step::Errors(
                    Api::Produce,
                    Some(Topic::new(DLQ_TOPIC)),
                    ErrorCode::NotEnoughReplicas,
                    count * 5,
                ),
                None,
            ),
        };
        out.push((t, step.0, step.1));
    }
    out
}
