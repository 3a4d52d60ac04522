//! What every backend's run shares: the fault schedule (faults to apply and
//! the heals they return, in time order) and the verdict on a scenario's
//! expectation. The simulation ([`crate::world`]) and the real brokers
//! (`ruckus-integration`) each apply faults their own way — one arm per
//! fault kind — and step through the same [`Schedule`].

use std::collections::BTreeMap;
use std::time::Duration;

use ruckus_history::check::{Invariant, Violation};
use ruckus_history::fault::{Fault, FaultRecord};

use crate::scenario::{Expect, Scenario};

/// One item of a schedule: a fault to apply, or the heal of one applied.
pub enum Item<H> {
    /// Apply this fault.
    Apply(Fault),
    /// Heal what this record says was applied.
    Heal(FaultRecord, H),
}

/// Faults to apply and heals to run, by time and then by the order they
/// were scheduled in (a heal due at the same moment as a fault scheduled
/// before it runs after it).
pub struct Schedule<H> {
    queue: BTreeMap<(Duration, u64), Item<H>>,
    next: u64,
}

impl<H> Schedule<H> {
    /// A schedule of `faults` (primitive ones: see [`Fault::expand`]).
    pub fn new(faults: impl IntoIterator<Item = Fault>) -> Self {
        let mut queue = BTreeMap::new();
        let mut next = 0;
        for f in faults {
            queue.insert((f.at(), next), Item::Apply(f));
            next += 1;
        }
        Self { queue, next }
    }

    /// When the next item is due, if any is left.
    pub fn next_at(&self) -> Option<Duration> {
        self.queue.keys().next().map(|(at, _)| *at)
    }

    /// The next item due at or before `now`, with its time.
    pub fn pop_due(&mut self, now: Duration) -> Option<(Duration, Item<H>)> {
        let entry = self.queue.first_entry()?;
        if entry.key().0 > now {
            return None;
        }
        let ((at, _), item) = entry.remove_entry();
        Some((at, item))
    }

    /// Schedules the heal of `fault`, applied at `at` as `record`, if the
    /// fault heals and the backend said how.
    pub fn heal_later(
        &mut self,
        at: Duration,
        fault: &Fault,
        record: FaultRecord,
        heal: Option<H>,
    ) {
        if let (Some(after), Some(heal)) = (fault.heal_after(), heal) {
            self.queue
                .insert((at + after, self.next), Item::Heal(record, heal));
            self.next += 1;
        }
    }

    /// Whether nothing is left to apply or heal.
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }
}

/// The scenario's faults as primitive faults, in time order (a rolling
/// restart expanded into graceful stops; faults at the same moment keep
/// the file's order).
pub fn scheduled(sc: &Scenario) -> Vec<Fault> {
    let mut faults: Vec<Fault> = sc
        .faults
        .iter()
        .flat_map(|f| f.get_ref().expand(sc.group.members))
        .collect();
    faults.sort_by_key(Fault::at);
    faults
}

/// How a run missed its scenario's expectation.
#[derive(Clone, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Unmet {
    /// The consumer broke invariants.
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Violated(Vec<Violation>),
    /// A known-bad consumer was expected to break one and did not.
    #[error("the known-bad consumer was expected to violate {expected} and did not{}",
        if found.is_empty() { String::new() } else { format!(" (found: {found:?})") })]
    NotCaught {
        /// The invariant it should have broken.
        expected: Invariant,
        /// What was found instead.
        found: Vec<Invariant>,
    },
}

impl Expect {
    /// Whether `violations` meet the expectation: none (of the consumer's:
    /// with `broker_faults_apart`, violations that are a broker's fault are
    /// not counted — a real broker that loses an acknowledged commit is
    /// reported apart), or, for a known-bad consumer, the one it must
    /// produce.
    ///
    /// # Errors
    /// The expectation is not met, and how.
    pub fn judge(&self, violations: &[Violation], broker_faults_apart: bool) -> Result<(), Unmet> {
        match self.violation {
            Some(x) if violations.iter().any(|v| v.invariant == x) => Ok(()),
            Some(x) => Err(Unmet::NotCaught {
                expected: x,
                found: violations.iter().map(|v| v.invariant).collect(),
            }),
            None => {
                let counted: Vec<Violation> = violations
                    .iter()
                    .filter(|v| !(broker_faults_apart && v.invariant.is_broker_fault()))
                    .cloned()
                    .collect();
                if counted.is_empty() {
                    Ok(())
                } else {
                    Err(Unmet::Violated(counted))
                }
            }
        }
    }
}
