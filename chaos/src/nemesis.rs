//! The randomized nemesis: a fault schedule drawn from the seed. With
//! swarm testing on, the seed first draws which of the scenario's fault
//! kinds this run uses, so different seeds stress different mixes.

use std::time::Duration;

use ruckus_core::model::ErrorCode;
use ruckus_core::rng::{Rng, SplitMix64};
use ruckus_history::duration::Dur;
use ruckus_history::fault::{Api, BrokerRef, ErrorName, Fault, HostRef};

use crate::scenario::{NemesisKind, NemesisSpec, Scenario};

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
pub fn draw(sc: &Scenario, n: &NemesisSpec, seed: u64) -> Vec<Fault> {
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
        let (at, heal) = (Dur(t), Some(Dur(dur)));
        let errors = |api, e, count| Fault::Errors {
            at,
            api,
            error: ErrorName(e),
            count,
        };
        let fault = match kind {
            NemesisKind::CrashMember => Fault::CrashMember {
                at,
                member,
                restart_after: heal,
            },
            NemesisKind::StopMember => Fault::StopMember {
                at,
                member,
                restart_after: heal,
            },
            NemesisKind::PauseMember => Fault::PauseMember {
                at,
                member,
                duration: Dur(dur),
            },
            NemesisKind::CrashBroker => Fault::CrashBroker {
                at,
                broker,
                restart_after: heal,
            },
            NemesisKind::Partition => Fault::Partition {
                at,
                a: HostRef::Consumer(member),
                b: HostRef::Broker(broker),
                duration: heal,
                one_way: false,
            },
            NemesisKind::OneWayPartition => {
                let (a, b) = if rng.next_u64() % 2 == 0 {
                    (HostRef::Consumer(member), HostRef::Broker(broker))
                } else {
                    (HostRef::Broker(broker), HostRef::Consumer(member))
                };
                Fault::Partition {
                    at,
                    a,
                    b,
                    duration: heal,
                    one_way: true,
                }
            }
            NemesisKind::Hold => Fault::Hold {
                at,
                a: HostRef::Consumer(member),
                b: HostRef::Broker(broker),
                duration: Dur(dur),
            },
            NemesisKind::Latency => {
                let ms = 50 + (n.intensity * 450.0 * rng.next_f64()) as u64;
                Fault::Latency {
                    at,
                    a: HostRef::Consumer(member),
                    b: HostRef::Broker(broker),
                    latency: Dur::ms(ms),
                    duration: heal,
                }
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
                errors(Api::OffsetCommit, e, count)
            }
            NemesisKind::HeartbeatErrors => {
                let e = pick(
                    &mut rng,
                    &[ErrorCode::RebalanceInProgress, ErrorCode::NotCoordinator],
                );
                errors(Api::Heartbeat, e, count)
            }
            NemesisKind::FetchErrors => errors(Api::Fetch, ErrorCode::NotLeaderOrFollower, count),
            NemesisKind::ClockJump => {
                let ms = (dur.as_millis() as u64).max(500);
                Fault::ClockJump {
                    at,
                    member,
                    by: Dur::ms(ms),
                    backwards: rng.next_u64() % 2 != 0,
                }
            }
            NemesisKind::Loss => {
                let rate = 0.01 + 0.2 * n.intensity * rng.next_f64();
                Fault::Loss {
                    at,
                    member,
                    broker,
                    rate,
                    duration: heal,
                }
            }
            NemesisKind::DeadLetterOutage => Fault::DeadLetterOutage {
                at,
                count: count * 5,
            },
        };
        out.push(fault);
    }
    out
}
