//! Coverage counters ("sometimes" assertions): how often a run reached the
//! interesting states a fault is meant to drive the consumer into, counted
//! from the typed history. A scenario names the states it exists to reach
//! in `[expect] reach = [...]`; the sweep reports, for each state, in how
//! many seeds it was reached, and flags a named state no seed reached — a
//! fault that lands on an idle group proves nothing.

use std::collections::{BTreeMap, BTreeSet};

use ruckus_core::coordinator::GroupState;
use ruckus_core::events::Event;
use ruckus_core::model::{ErrorCode, TopicPartition};
use ruckus_history::record::{BrokerEvent, Entry, Record};
use serde::{Deserialize, Serialize};

/// A state worth reaching, by the name scenario files use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum State {
    /// A fault landed on a member while it owned partitions.
    FaultOnOwner,
    /// A member's commit was in flight (requested, not yet answered) when
    /// its group began a rebalance (where revocations start) or when it
    /// gave up or lost the partition.
    CommitInFlightDuringRevoke,
    /// A partition was lost or revoked while a record of it waited for a
    /// retry.
    RetryWaitingWhenLost,
    /// A dead-letter write failed.
    DeadLetterWriteFailed,
    /// A rebalance began while a fault was in effect.
    RebalanceUnderFault,
    /// The coordinator refused a commit for its generation or member (a
    /// zombie's commit fenced).
    ZombieCommitFenced,
    /// A completion for an assignment that was gone was dropped.
    StaleCompletionDropped,
    /// A record was processed by a second member after a hand-off.
    Redelivered,
    /// A partition changed hands between members.
    HandOff,
    /// A commit failed (and was retried or given up with the partition).
    CommitFailed,
    /// A record was dead-lettered.
    DeadLettered,
    /// A record failed fatally.
    FatalFailure,
}

impl State {
    /// Every state, in order.
    pub const ALL: [State; 12] = [
        State::FaultOnOwner,
        State::CommitInFlightDuringRevoke,
        State::RetryWaitingWhenLost,
        State::DeadLetterWriteFailed,
        State::RebalanceUnderFault,
        State::ZombieCommitFenced,
        State::StaleCompletionDropped,
        State::Redelivered,
        State::HandOff,
        State::CommitFailed,
        State::DeadLettered,
        State::FatalFailure,
    ];

    /// Its name in scenario files and reports.
    pub fn name(self) -> String {
        serde_json::to_value(self)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default()
    }
}

/// How many times a run reached each state (states never reached are
/// absent).
pub type Counts = BTreeMap<State, u64>;

/// Whether a commit refused with `error` was fenced: its generation or
/// its member is no longer the group's.
fn fences(error: ErrorCode) -> bool {
    matches!(
        error,
        ErrorCode::IllegalGeneration | ErrorCode::UnknownMemberId | ErrorCode::FencedInstanceId
    )
}

/// Counts the states `history` reached.
pub fn count(history: &[Entry]) -> Counts {
    count_with(history, crate::run::reach(history).as_deref())
}

/// [`count`], with the history's [`crate::run::reach`] already computed
/// (a run's output carries it).
pub fn count_with(history: &[Entry], reach: Option<&[crate::run::Reach]>) -> Counts {
    let mut c = Counts::new();
    let hit = |s: State, c: &mut Counts| *c.entry(s).or_insert(0) += 1;
    // Faults on members that owned partitions: the runner's reach.
    let on_owners = reach.map_or(0, |r| r.iter().filter(|x| x.owned > 0).count());
    if on_owners > 0 {
        c.insert(State::FaultOnOwner, on_owners as u64);
    }
    // Per host: commits in flight, retries waiting.
    let mut commits: BTreeMap<&str, BTreeSet<(&TopicPartition, i64)>> = BTreeMap::new();
    let mut retrying: BTreeMap<&str, BTreeSet<&TopicPartition>> = BTreeMap::new();
    // Who last owned each partition, and who processed each record.
    let mut last_owner: BTreeMap<&TopicPartition, &str> = BTreeMap::new();
    let mut processed_by: BTreeMap<(&TopicPartition, i64), &str> = BTreeMap::new();
    let mut active_faults = 0i64;
    // Where the broker's side is recorded, fencing is counted from it.
    let broker_side = history
        .iter()
        .any(|x| matches!(x.broker(), Some(BrokerEvent::CommitHandled { .. })));
    for e in history {
        let host = e.host.as_str();
        match &e.record {
            Record::Fault(f) => {
                active_faults += 1;
                if let Some(m) = f.ends_member(false) {
                    let h = ruckus_history::fault::member_host(m);
                    commits.remove(h.as_str());
                    retrying.remove(h.as_str());
                }
                if f.fault.heal_after().is_none() {
                    // Instant faults are over as they land.
                    active_faults -= 1;
                }
            }
            Record::Healed(_) => active_faults = (active_faults - 1).max(0),
            Record::Broker(BrokerEvent::GroupState {
                to: GroupState::PreparingRebalance,
                ..
            }) => {
                if active_faults > 0 {
                    hit(State::RebalanceUnderFault, &mut c);
                }
                if commits.values().any(|cs| !cs.is_empty()) {
                    hit(State::CommitInFlightDuringRevoke, &mut c);
                }
            }
            Record::Broker(BrokerEvent::CommitHandled { error, .. }) if fences(*error) => {
                hit(State::ZombieCommitFenced, &mut c);
            }
            Record::Client(ev) => match ev {
                Event::Assigned { partitions, .. } => {
                    for (tp, _) in partitions {
                        if last_owner.insert(tp, host).is_some_and(|prev| prev != host) {
                            hit(State::HandOff, &mut c);
                        }
                    }
                }
                Event::Revoked { partitions, .. } | Event::Lost { partitions } => {
                    let inflight = commits
                        .get(host)
                        .is_some_and(|cs| cs.iter().any(|(tp, _)| partitions.contains(tp)));
                    if inflight {
                        hit(State::CommitInFlightDuringRevoke, &mut c);
                    }
                    if let Some(r) = retrying.get_mut(host) {
                        if partitions.iter().any(|tp| r.remove(tp)) {
                            hit(State::RetryWaitingWhenLost, &mut c);
                        }
                    }
                }
                Event::Stopped { .. } => {
                    commits.remove(host);
                    retrying.remove(host);
                }
                Event::CommitRequested { tp, offset, .. } => {
                    commits.entry(host).or_default().insert((tp, offset.0));
                }
                Event::Committed { tp, offset, .. } | Event::CommitFailed { tp, offset, .. } => {
                    if let Some(cs) = commits.get_mut(host) {
                        cs.remove(&(tp, offset.0));
                    }
                    if let Event::CommitFailed { error, .. } = ev {
                        hit(State::CommitFailed, &mut c);
                        if fences(*error) && !broker_side {
                            // Seen from the member where the broker's side
                            // is not recorded.
                            hit(State::ZombieCommitFenced, &mut c);
                        }
                    }
                }
                Event::Retried { tp, .. } => {
                    retrying.entry(host).or_default().insert(tp);
                }
                Event::ProcessingStarted { tp, .. } => {
                    if let Some(r) = retrying.get_mut(host) {
                        r.remove(tp);
                    }
                }
                Event::DeadLetterFailed { .. } => hit(State::DeadLetterWriteFailed, &mut c),
                Event::DeadLettered { .. } => hit(State::DeadLettered, &mut c),
                Event::ProcessingFailed {
                    class: ruckus_core::consumer::ErrorClass::Fatal,
                    ..
                } => hit(State::FatalFailure, &mut c),
                Event::StaleCompletion { .. } => hit(State::StaleCompletionDropped, &mut c),
                Event::ProcessingSucceeded { tp, offset, .. } => {
                    if let Some(prev) = processed_by.insert((tp, offset.0), host) {
                        if prev != host {
                            hit(State::Redelivered, &mut c);
                        }
                    }
                }
                _ => {}
            },
            _ => {}
        }
    }
    c
}
