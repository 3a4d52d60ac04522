//! History checkers. Each invariant is a function of the history alone
//! (plus the scenario's policy), kept apart from the code it judges, and
//! each returns the first violation it finds with the slice of history that
//! shows it.
//!
//! Histories are the simulation's [`Entry`] list: every host's
//! `ruckus-core` [`Event`]s stamped with simulated time and the emitting
//! host, plus the nemesis's fault records (`crash consumer-1`, …).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::Duration;

use ruckus_core::consumer::{ErrorClass, RetryPolicy};
use ruckus_core::events::Event;
use ruckus_core::model::{Generation, Instant, Offset, TopicPartition};
use serde::{Deserialize, Serialize};

pub use crate::record::render;
use crate::record::{BrokerEvent, Entry, Record};
use ruckus_core::model::{ErrorCode, MemberId};

mod effects;
#[cfg(test)]
mod tests;

/// The invariants, by the names scenario files use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Invariant {
    /// Every acknowledged produce was processed or dead-lettered.
    ZeroLoss,
    /// No commit passed a record that was neither processed nor
    /// dead-lettered.
    CommitSafety,
    /// A new owner starts at or before the last offset committed for the
    /// partition (it never skips ahead).
    HandOffContinuity,
    /// Records are redelivered only where a crash, revocation or failed
    /// commit allows: never twice within one ownership, never from below an
    /// offset committed in an earlier generation (so none after a clean
    /// shutdown whose final commit succeeded).
    BoundedDuplicates,
    /// One owner per partition per generation; a commit from an older
    /// generation is never accepted after its member joined a newer one.
    ExclusiveOwnership,
    /// With partition ordering, a partition's records start in offset
    /// order, each after the previous one finished.
    PartitionOrder,
    /// Acknowledged committed offsets never move backwards within a
    /// generation or from an older generation's commit.
    NoCommitRegression,
    /// Dead-lettered exactly when retries ran out or the record was
    /// poison; never both processed and dead-lettered in one ownership.
    DeadLetterCorrectness,
    /// Attempts stay within the policy, and each retry waits its backoff.
    RetryBounds,
    /// After the faults healed, lag returns to zero within the scenario's
    /// bound.
    Liveness,
    /// The broker keeps what it acknowledged: a new owner starts at the
    /// latest acknowledged commit of its partition, never below it. A
    /// broker fault, not the consumer's — reported apart from the
    /// consumer's invariants by the real-broker runs; `bounded-duplicates`
    /// leaves such starts to it.
    CommitsKept,
    /// The broker never applies a commit from a member outside the
    /// generation the commit names: the member must belong to the group's
    /// current generation, and the generation must be that one (judged
    /// from the broker's side: its generations and the commits it
    /// applied).
    FencedCommits,
    /// No partition has two owners at once across generations: when the
    /// coordinator's assignment of a generation hands a partition to a
    /// member, no other member of that same generation still holds it
    /// (has not revoked it or lost it). A zombie outside the generation
    /// may still believe it owns the partition; fencing its commits is
    /// `fenced-commits`' business.
    NoOverlappingOwners,
    /// The member's view of its commits and the broker's agree: every
    /// commit a member saw acknowledged was applied by the broker, and
    /// every commit the broker applied was requested by that member. A
    /// commit applied but never acknowledged (its answer lost, or the
    /// member gone first) is a commit: the next owner may start there.
    CommitAgreement,
    /// The group does not rebalance where the scenario says it must not
    /// (`[expect] no_rebalance_after`): from then until the final stop, no
    /// generation begins (a static member back within its session, a
    /// broker roll).
    NoUnexpectedRebalance,
    /// Every record processed successfully (and not dead-lettered) has its
    /// effect in the store at the end: some write the processor made for
    /// it was applied. Judged only where a scenario or a test asks
    /// ([`Invariant::EFFECTS`]): a processor judged on effects writes for
    /// every record it processes.
    EffectLoss,
    /// No record's effect is applied twice: a redelivered record's write
    /// is made idempotent (the store's `put_once`), so the store applies
    /// each record's effect exactly once.
    EffectDuplicates,
    /// No commit passes a record whose effect the store had not yet
    /// applied when the commit was requested (a processor that returns
    /// `Ok` before its write is durable).
    EffectBeforeCommit,
}

impl Invariant {
    /// The invariants on a processor's side effects: judged when a
    /// scenario says `[expect] effects = true`, or lists them, or a test
    /// asks for them.
    pub const EFFECTS: [Invariant; 3] = [
        Invariant::EffectLoss,
        Invariant::EffectDuplicates,
        Invariant::EffectBeforeCommit,
    ];

    /// [`Invariant::ALL`], then [`Invariant::EFFECTS`]: the order
    /// violations are reported in.
    pub fn every() -> impl Iterator<Item = Invariant> {
        Self::ALL.into_iter().chain(Self::EFFECTS)
    }

    /// Every invariant, in the order they are checked.
    pub const ALL: [Invariant; 15] = [
        Invariant::ZeroLoss,
        Invariant::CommitSafety,
        Invariant::HandOffContinuity,
        Invariant::BoundedDuplicates,
        Invariant::ExclusiveOwnership,
        Invariant::PartitionOrder,
        Invariant::NoCommitRegression,
        Invariant::DeadLetterCorrectness,
        Invariant::RetryBounds,
        Invariant::Liveness,
        Invariant::CommitsKept,
        Invariant::FencedCommits,
        Invariant::NoOverlappingOwners,
        Invariant::CommitAgreement,
        Invariant::NoUnexpectedRebalance,
    ];

    /// Whether a violation of it is the broker's fault, not the consumer's.
    pub fn is_broker_fault(self) -> bool {
        matches!(self, Invariant::CommitsKept | Invariant::FencedCommits)
    }

    /// The kebab-case name.
    pub fn name(self) -> &'static str {
        match self {
            Invariant::ZeroLoss => "zero-loss",
            Invariant::CommitSafety => "commit-safety",
            Invariant::HandOffContinuity => "hand-off-continuity",
            Invariant::BoundedDuplicates => "bounded-duplicates",
            Invariant::ExclusiveOwnership => "exclusive-ownership",
            Invariant::PartitionOrder => "partition-order",
            Invariant::NoCommitRegression => "no-commit-regression",
            Invariant::DeadLetterCorrectness => "dead-letter-correctness",
            Invariant::RetryBounds => "retry-bounds",
            Invariant::Liveness => "liveness",
            Invariant::CommitsKept => "commits-kept",
            Invariant::FencedCommits => "fenced-commits",
            Invariant::NoOverlappingOwners => "no-overlapping-owners",
            Invariant::CommitAgreement => "commit-agreement",
            Invariant::NoUnexpectedRebalance => "no-unexpected-rebalance",
            Invariant::EffectLoss => "effect-loss",
            Invariant::EffectDuplicates => "effect-duplicates",
            Invariant::EffectBeforeCommit => "effect-before-commit",
        }
    }
}

impl fmt::Display for Invariant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A broken invariant: which, when, where, and the history that shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Violation {
    /// Which invariant.
    pub invariant: Invariant,
    /// Simulated time, in milliseconds since the start.
    pub at_ms: u64,
    /// The host whose event broke it.
    pub host: Option<String>,
    /// Partition (`topic/partition`).
    pub partition: Option<String>,
    /// Offset.
    pub offset: Option<i64>,
    /// What happened, in words.
    pub detail: String,
    /// The entries that show it, oldest first, the breaking one last.
    pub slice: Vec<String>,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} violated at {}",
            self.invariant,
            Instant::from_millis(self.at_ms)
        )?;
        if let Some(p) = &self.partition {
            write!(f, " on {p}")?;
            if let Some(o) = self.offset {
                write!(f, "@{o}")?;
            }
        }
        writeln!(f, ": {}", self.detail)?;
        for line in &self.slice {
            writeln!(f, "    {line}")?;
        }
        Ok(())
    }
}

/// Processing order the consumer promised.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Order {
    /// One record at a time per partition, in offset order.
    Partition,
    /// Per key only (no per-partition check).
    Key,
}

/// What the checkers need besides the history.
#[derive(Clone, Debug)]
pub struct Context {
    /// The processing retry policy.
    pub retry: RetryPolicy,
    /// The promised order.
    pub order: Order,
    /// The liveness verdict of the run.
    pub liveness: Liveness,
    /// How coarse the timestamps are: zero for a simulation (each event
    /// carries the exact simulated time); for a wall-clock run, events are
    /// stamped in whole milliseconds by the sink, a little after the
    /// engine acted, so time comparisons allow this much slack.
    pub resolution: Duration,
    /// When the group must not rebalance: from the first instant to the
    /// second (the final stop; the end of the run if `None`). `None`: no
    /// such expectation.
    pub no_rebalance: Option<(Instant, Option<Instant>)>,
}

/// How the run ended, for the liveness checker.
///
/// A run ends in two steps. First the group must **converge** by the
/// deadline: everything produced is processed or dead-lettered and — for a
/// consumer that commits while it runs (per record, periodically) —
/// committed. A consumer that commits only on revocation and shutdown
/// commits nothing while the group is stable, so for it convergence is
/// consumption alone. Then comes the **final stop**: every running member
/// is asked to shut down gracefully, and once they have, the group's
/// committed offsets must equal the high watermark (what Kafka's
/// `OffsetValidationTest` checks after a clean bounce). Every commit
/// strategy is judged by the same two steps.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Liveness {
    /// The time by which the group had to converge.
    pub deadline: Instant,
    /// When it converged, if it did.
    pub converged_at: Option<Instant>,
    /// Partitions behind at the end, after the final stop: committed and
    /// high watermark.
    pub lagging: Vec<(TopicPartition, Option<Offset>, Offset)>,
    /// Members asked to stop at the end that did not finish stopping.
    pub unstopped: Vec<String>,
}

/// Runs the `wanted` checkers over a whole history; returns every
/// violation found (at most one per invariant).
pub fn check(history: &[Entry], ctx: &Context, wanted: &[Invariant]) -> Vec<Violation> {
    let mut checks = Checks::new(wanted, ctx.retry.clone(), ctx.order, ctx.resolution);
    for e in history {
        checks.observe(e);
    }
    checks.finish(history, ctx)
}

/// Runs one checker.
pub fn check_one(inv: Invariant, history: &[Entry], ctx: &Context) -> Option<Violation> {
    check(history, ctx, &[inv]).into_iter().next()
}

/// The wanted checkers, fed a history entry by entry as a run records it.
/// Most judge each entry as it arrives and keep the first violation they
/// see; zero loss, commit safety, liveness and the rebalance window are
/// judged at the end, when [`Checks::finish`] has the run's outcome.
pub struct Checks {
    streaming: Vec<(Invariant, Box<dyn Streaming + Send>, Option<Found>)>,
    at_end: Vec<Invariant>,
    seen: usize,
}

impl fmt::Debug for Checks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Checks")
            .field("seen", &self.seen)
            .field("at_end", &self.at_end)
            .finish_non_exhaustive()
    }
}

impl Checks {
    /// The `wanted` checkers, with the retry policy, the promised order and
    /// the timestamps' resolution (see [`Context`]).
    pub fn new(
        wanted: &[Invariant],
        retry: RetryPolicy,
        order: Order,
        resolution: Duration,
    ) -> Self {
        let mut streaming: Vec<(Invariant, Box<dyn Streaming + Send>, Option<Found>)> = Vec::new();
        let mut at_end = Vec::new();
        for inv in Invariant::every().filter(|i| wanted.contains(i)) {
            let checker: Box<dyn Streaming + Send> = match inv {
                Invariant::HandOffContinuity => Box::<HandOffContinuity>::default(),
                Invariant::BoundedDuplicates => Box::<BoundedDuplicates>::default(),
                Invariant::ExclusiveOwnership => Box::<ExclusiveOwnership>::default(),
                Invariant::PartitionOrder if order == Order::Partition => {
                    Box::<PartitionOrder>::default()
                }
                Invariant::PartitionOrder => continue,
                Invariant::NoCommitRegression => Box::<NoCommitRegression>::default(),
                Invariant::DeadLetterCorrectness => Box::new(DeadLetterCorrectness {
                    max_attempts: retry.max_attempts,
                    allowed: PerOwner::default(),
                    processed: PerOwner::default(),
                    lettered: PerOwner::default(),
                }),
                Invariant::RetryBounds => Box::new(RetryBounds {
                    retry: retry.clone(),
                    resolution,
                    not_before: PerOwner::default(),
                }),
                Invariant::CommitsKept => Box::<CommitsKept>::default(),
                Invariant::FencedCommits => Box::<FencedCommits>::default(),
                Invariant::NoOverlappingOwners => Box::<NoOverlappingOwners>::default(),
                Invariant::CommitAgreement => Box::<CommitAgreement>::default(),
                Invariant::ZeroLoss
                | Invariant::CommitSafety
                | Invariant::Liveness
                | Invariant::NoUnexpectedRebalance
                | Invariant::EffectLoss
                | Invariant::EffectDuplicates
                | Invariant::EffectBeforeCommit => {
                    at_end.push(inv);
                    continue;
                }
            };
            streaming.push((inv, checker, None));
        }
        Self {
            streaming,
            at_end,
            seen: 0,
        }
    }

    /// Reads the next entry of the history.
    pub fn observe(&mut self, e: &Entry) {
        let i = self.seen;
        self.seen += 1;
        for (_, checker, found) in &mut self.streaming {
            if found.is_none() {
                *found = checker.observe(i, e);
            }
        }
    }

    /// How many entries were read.
    pub fn seen(&self) -> usize {
        self.seen
    }

    /// Every violation, in [`Invariant::every`] order: what the streaming
    /// checkers found, and the end-of-run checks judged on `history` (the
    /// entries observed, in order) and the run's outcome in `ctx`.
    pub fn finish(self, history: &[Entry], ctx: &Context) -> Vec<Violation> {
        debug_assert_eq!(history.len(), self.seen, "finish with the history observed");
        let mut out: Vec<Violation> = self
            .streaming
            .into_iter()
            .filter_map(|(inv, _, f)| f.map(|f| f.into_violation(inv, history)))
            .collect();
        for inv in self.at_end {
            let v = match inv {
                Invariant::ZeroLoss => zero_loss(history).map(|f| f.into_violation(inv, history)),
                Invariant::CommitSafety => {
                    commit_safety(history).map(|f| f.into_violation(inv, history))
                }
                Invariant::NoUnexpectedRebalance => ctx
                    .no_rebalance
                    .and_then(|w| no_unexpected_rebalance(history, w))
                    .map(|f| f.into_violation(inv, history)),
                Invariant::Liveness => liveness(history, &ctx.liveness),
                Invariant::EffectLoss => {
                    effects::effect_loss(history).map(|f| f.into_violation(inv, history))
                }
                Invariant::EffectDuplicates => {
                    effects::effect_duplicates(history).map(|f| f.into_violation(inv, history))
                }
                Invariant::EffectBeforeCommit => {
                    effects::effect_before_commit(history, ctx.resolution)
                        .map(|f| f.into_violation(inv, history))
                }
                _ => None,
            };
            out.extend(v);
        }
        let rank = |i: Invariant| Invariant::every().position(|x| x == i);
        out.sort_by_key(|v| rank(v.invariant));
        out
    }
}

/// What a checker found: the index of the breaking entry, the partition
/// and offset, and the words.
struct Found {
    index: usize,
    tp: Option<TopicPartition>,
    offset: Option<Offset>,
    detail: String,
}

impl Found {
    fn new(index: usize, tp: &TopicPartition, offset: Offset, detail: String) -> Self {
        Self {
            index,
            tp: Some(tp.clone()),
            offset: Some(offset),
            detail,
        }
    }

    fn into_violation(self, invariant: Invariant, history: &[Entry]) -> Violation {
        let e = &history[self.index];
        Violation {
            invariant,
            at_ms: e.at.as_millis(),
            host: Some(e.host.clone()),
            partition: self.tp.as_ref().map(ToString::to_string),
            offset: self.offset.map(|o| o.0),
            detail: self.detail,
            slice: slice(history, self.index, self.tp.as_ref(), self.offset),
        }
    }
}

/// The partition an event is about, and its offset if it has one.
fn about(e: &Event) -> Option<(&TopicPartition, Option<Offset>)> {
    match e {
        Event::Produced { tp, offset }
        | Event::Fetched { tp, offset }
        | Event::ProcessingStarted { tp, offset, .. }
        | Event::ProcessingSucceeded { tp, offset, .. }
        | Event::ProcessingFailed { tp, offset, .. }
        | Event::Retried { tp, offset, .. }
        | Event::DeadLetterRequested { tp, offset }
        | Event::DeadLettered { tp, offset, .. }
        | Event::DeadLetterFailed { tp, offset, .. }
        | Event::StaleCompletion { tp, offset }
        | Event::CommitRequested { tp, offset, .. }
        | Event::Committed { tp, offset, .. }
        | Event::CommitFailed { tp, offset, .. } => Some((tp, Some(*offset))),
        Event::Paused { tp } | Event::Resumed { tp } => Some((tp, None)),
        _ => None,
    }
}

fn mentions(e: &Entry, tp: &TopicPartition) -> bool {
    let e = match &e.record {
        Record::Client(e) => e,
        Record::Fault(_) | Record::Healed(_) => return true,
        Record::Store(s) => return s.cause().is_some_and(|c| &c.tp == tp),
        Record::Broker(b) => {
            return match b {
                BrokerEvent::Appended { .. } => false,
                BrokerEvent::CommitHandled { offsets, .. } => offsets.iter().any(|(t, _)| t == tp),
                BrokerEvent::LeaderMoved { tp: t, .. }
                | BrokerEvent::CommitObserved { tp: t, .. } => t == tp,
                _ => true,
            }
        }
    };
    match e {
        Event::Assigned { partitions, .. } => partitions.iter().any(|(p, _)| p == tp),
        Event::Revoked { partitions, .. } | Event::Lost { partitions } => partitions.contains(tp),
        Event::Joined { .. } => true,
        Event::Stopped { .. } | Event::Left => true,
        other => about(other).is_some_and(|(t, _)| t == tp),
    }
}

const SLICE_LINES: usize = 24;

/// The history that shows a violation: group and fault events and the
/// partition's events near the offset, up to and including the breaking
/// entry, at most [`SLICE_LINES`] lines.
fn slice(
    history: &[Entry],
    index: usize,
    tp: Option<&TopicPartition>,
    offset: Option<Offset>,
) -> Vec<String> {
    let relevant = |e: &Entry| match tp {
        None => true,
        Some(tp) => {
            mentions(e, tp)
                && match (e.event().and_then(about), offset) {
                    (Some((_, Some(o))), Some(x)) => {
                        (o.0 - x.0).abs() <= 2
                            || matches!(
                                e.event(),
                                Some(
                                    Event::CommitRequested { .. }
                                        | Event::Committed { .. }
                                        | Event::CommitFailed { .. }
                                )
                            )
                    }
                    _ => true,
                }
        }
    };
    let mut lines: Vec<String> = history[..=index]
        .iter()
        .rev()
        .filter(|e| relevant(e))
        .take(SLICE_LINES)
        .map(render)
        .collect();
    lines.reverse();
    lines
}

fn finished(e: &Event) -> Option<(&TopicPartition, Offset)> {
    match e {
        Event::ProcessingSucceeded { tp, offset, .. } | Event::DeadLettered { tp, offset, .. } => {
            Some((tp, *offset))
        }
        _ => None,
    }
}

/// Zero loss.
fn zero_loss(h: &[Entry]) -> Option<Found> {
    let done: BTreeSet<(&TopicPartition, Offset)> = h
        .iter()
        .filter_map(|e| e.event().and_then(finished))
        .collect();
    let (i, tp, offset) = h.iter().enumerate().find_map(|(i, e)| match e.event()? {
        Event::Produced { tp, offset } if !done.contains(&(tp, *offset)) => Some((i, tp, *offset)),
        _ => None,
    })?;
    // Show the moment it was lost for good: the first acknowledged commit
    // past it (the next owner starts there), else the partition's last event.
    let lost = h[i..]
        .iter()
        .position(|e| matches!(e.event(), Some(Event::Committed { tp: t, offset: c, .. }) if t == tp && *c > offset))
        .map(|k| i + k)
        .or_else(|| h.iter().rposition(|e| mentions(e, tp) && e.event().and_then(about).is_some()))
        .unwrap_or(i)
        .max(i);
    let how = match h[lost].event() {
        Some(Event::Committed { offset: c, .. }) if *c > offset => {
            format!("; {} committed {c} past it at {}", h[lost].host, h[lost].at)
        }
        _ => String::new(),
    };
    Some(Found::new(
        lost,
        tp,
        offset,
        format!(
            "acknowledged to {} at {} and never processed nor dead-lettered{how}",
            h[i].host, h[i].at
        ),
    ))
}

/// Commit safety: when a commit of `o` is requested, every record below
/// `o` that exists (produced or fetched, ever) is already finished.
fn commit_safety(h: &[Entry]) -> Option<Found> {
    let mut existing: BTreeMap<&TopicPartition, BTreeSet<Offset>> = BTreeMap::new();
    for e in h {
        if let Some(Event::Produced { tp, offset } | Event::Fetched { tp, offset }) = e.event() {
            existing.entry(tp).or_default().insert(*offset);
        }
    }
    // Per partition, the lowest offset not yet finished is found by
    // walking a cursor forward: finishing only ever adds.
    let mut done: BTreeMap<&TopicPartition, BTreeSet<Offset>> = BTreeMap::new();
    for (i, e) in h.iter().enumerate() {
        if let Some((tp, o)) = e.event().and_then(finished) {
            done.entry(tp).or_default().insert(o);
        }
        if let Some(Event::CommitRequested { tp, offset, .. }) = e.event() {
            let Some(below) = existing.get(tp) else {
                continue;
            };
            let d = done.get(tp);
            if let Some(x) = below
                .range(..*offset)
                .find(|x| !d.is_some_and(|d| d.contains(x)))
            {
                return Some(Found::new(
                    i,
                    tp,
                    *x,
                    format!(
                        "{} committed {} past offset {}, which was neither processed nor dead-lettered",
                        e.host, offset, x
                    ),
                ));
            }
        }
    }
    None
}

/// The consumer whose software an entry says was killed, if any: a
/// member's crash, or the restart that heals a crash or a graceful stop
/// (it kills a running instance before starting a new one).
fn ended_host(e: &Entry) -> Option<String> {
    match &e.record {
        Record::Fault(f) => f.ends_member(false),
        Record::Healed(f) => f.ends_member(true),
        _ => None,
    }
    .map(crate::fault::member_host)
}

/// Liveness: the run converged by its deadline, and after the final
/// graceful stop every member had stopped and nothing was left uncommitted
/// (see [`Liveness`]).
fn liveness(h: &[Entry], l: &Liveness) -> Option<Violation> {
    let converged = matches!(l.converged_at, Some(t) if t <= l.deadline);
    match l.converged_at {
        _ if converged && l.lagging.is_empty() && l.unstopped.is_empty() => None,
        _ => {
            let lag: Vec<String> = l
                .lagging
                .iter()
                .take(6)
                .map(|(tp, c, hw)| {
                    format!(
                        "{tp}: committed {}, high watermark {hw}",
                        c.map_or("nothing".to_owned(), |c| c.to_string())
                    )
                })
                .collect();
            let first = l.lagging.first();
            let tail: Vec<String> = h
                .iter()
                .rev()
                .filter(|e| {
                    !matches!(
                        e.event(),
                        Some(
                            Event::Fetched { .. }
                                | Event::ProcessingStarted { .. }
                                | Event::ProcessingSucceeded { .. }
                                | Event::Produced { .. }
                        )
                    )
                })
                .take(SLICE_LINES)
                .map(render)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            Some(Violation {
                invariant: Invariant::Liveness,
                at_ms: l.deadline.as_millis(),
                host: None,
                partition: first.map(|(tp, _, _)| tp.to_string()),
                offset: first.and_then(|(_, c, _)| c.map(|c| c.0)),
                detail: match l.converged_at {
                    _ if converged && !l.unstopped.is_empty() => format!(
                        "asked to stop gracefully at the end of the run, {} did not stop",
                        l.unstopped.join(", ")
                    ),
                    _ if converged => format!(
                        "converged, but after every member stopped gracefully the group's \
                         commits lag: {}",
                        lag.join("; ")
                    ),
                    Some(t) => format!("converged only at {t}, after the deadline {}", l.deadline),
                    None => format!(
                        "not converged by {}: {}",
                        l.deadline,
                        if lag.is_empty() {
                            "production unfinished".to_owned()
                        } else {
                            lag.join("; ")
                        }
                    ),
                },
                slice: tail,
            })
        }
    }
}

/// No rebalance within the window: no generation begins in it, judged from
/// the broker's group states where they are recorded and from the
/// members' joins (a real broker).
fn no_unexpected_rebalance(
    h: &[Entry],
    (from, until): (Instant, Option<Instant>),
) -> Option<Found> {
    let within = |at: Instant| {
        at >= from
            && match until {
                Some(u) => at < u,
                None => true,
            }
    };
    // Where the coordinator's inside is recorded (the simulation), a
    // rebalance is the group entering PreparingRebalance; a join inside the
    // window may complete one that began before it. On a real broker the
    // members' joins are all there is: a generation newer than any joined
    // before the window is a rebalance in it.
    let broker_side = h
        .iter()
        .any(|e| e.broker().is_some_and(BrokerEvent::is_coordinators));
    // The newest generation any member joined before the window.
    let mut before: Option<Generation> = None;
    for (i, e) in h.iter().enumerate() {
        if let Some(BrokerEvent::GroupState {
            to: ruckus_core::coordinator::GroupState::PreparingRebalance,
            generation,
            ..
        }) = e.broker()
        {
            if within(e.at) {
                return Some(Found {
                    index: i,
                    tp: None,
                    offset: None,
                    detail: format!(
                        "the group began a rebalance at {} (after generation {generation}), \
                         where the scenario says it must not",
                        e.at
                    ),
                });
            }
        }
        if broker_side {
            continue;
        }
        if let Some(Event::Joined { generation, .. }) = e.event() {
            if !within(e.at) {
                if e.at < from {
                    before = before.max(Some(*generation));
                }
            } else if before.is_some_and(|b| *generation > b) {
                return Some(Found {
                    index: i,
                    tp: None,
                    offset: None,
                    detail: format!(
                        "{} joined generation {generation} at {}, a rebalance where the \
                         scenario says there must be none",
                        e.host, e.at
                    ),
                });
            }
        }
    }
    None
}

/// State kept per (host, partition): looked up by borrowed names, so the
/// checkers that read every record allocate only for an owner they have
/// not seen before.
struct PerOwner<V>(BTreeMap<String, BTreeMap<TopicPartition, V>>);

impl<V> Default for PerOwner<V> {
    fn default() -> Self {
        Self(BTreeMap::new())
    }
}

impl<V> PerOwner<V> {
    fn get(&self, host: &str, tp: &TopicPartition) -> Option<&V> {
        self.0.get(host)?.get(tp)
    }

    fn get_mut(&mut self, host: &str, tp: &TopicPartition) -> Option<&mut V> {
        self.0.get_mut(host)?.get_mut(tp)
    }

    fn insert(&mut self, host: &str, tp: &TopicPartition, v: V) {
        if !self.0.contains_key(host) {
            self.0.insert(host.to_owned(), BTreeMap::new());
        }
        let parts = self.0.get_mut(host).expect("inserted");
        match parts.get_mut(tp) {
            Some(old) => *old = v,
            None => {
                parts.insert(tp.clone(), v);
            }
        }
    }

    fn entry(&mut self, host: &str, tp: &TopicPartition) -> &mut V
    where
        V: Default,
    {
        if self.get(host, tp).is_none() {
            self.insert(host, tp, V::default());
        }
        self.get_mut(host, tp).expect("inserted")
    }

    fn remove(&mut self, host: &str, tp: &TopicPartition) -> Option<V> {
        self.0.get_mut(host)?.remove(tp)
    }

    fn remove_host(&mut self, host: &str) {
        self.0.remove(host);
    }
}

impl PerOwner<BTreeSet<Offset>> {
    fn contains(&self, host: &str, tp: &TopicPartition, o: Offset) -> bool {
        self.get(host, tp).is_some_and(|s| s.contains(&o))
    }
}

/// A checker that reads the history entry by entry, as it is recorded:
/// the first entry that breaks the invariant is reported as soon as it is
/// seen. (Zero loss, commit safety, liveness and the rebalance window need
/// the end of the run and are judged then.)
trait Streaming {
    /// Reads entry `i`; a finding the moment the invariant breaks.
    fn observe(&mut self, i: usize, e: &Entry) -> Option<Found>;
}

/// Hand-off continuity: a new owner's start is at or below the highest
/// offset anyone asked to commit before it (or the log start if nobody
/// committed).
#[derive(Default)]
struct HandOffContinuity {
    requested: BTreeMap<TopicPartition, Offset>,
}

impl Streaming for HandOffContinuity {
    fn observe(&mut self, i: usize, e: &Entry) -> Option<Found> {
        match e.event()? {
            Event::CommitRequested { tp, offset, .. } => {
                let r = self.requested.entry(tp.clone()).or_insert(*offset);
                *r = (*r).max(*offset);
            }
            Event::Assigned { partitions, .. } => {
                for (tp, start) in partitions {
                    let bound = self.requested.get(tp).copied().unwrap_or(Offset(0));
                    if *start > bound {
                        return Some(Found::new(
                            i,
                            tp,
                            *start,
                            format!(
                                "{} starts at {} but nothing above {} was ever committed: \
                                 records {}..{} are skipped",
                                e.host, start, bound, bound, start
                            ),
                        ));
                    }
                }
            }
            _ => {}
        }
        None
    }
}

/// Bounded duplicates.
#[derive(Default)]
struct BoundedDuplicates {
    /// Acknowledged commits per partition, with their generation.
    acked: BTreeMap<TopicPartition, Vec<(Generation, Offset)>>,
    /// (host, partition) -> records processed in the current ownership.
    processed: PerOwner<BTreeSet<Offset>>,
}

impl Streaming for BoundedDuplicates {
    fn observe(&mut self, i: usize, e: &Entry) -> Option<Found> {
        match e.event()? {
            Event::Committed {
                tp,
                offset,
                generation,
            } => self
                .acked
                .entry(tp.clone())
                .or_default()
                .push((*generation, *offset)),
            Event::Assigned {
                partitions,
                generation,
            } => {
                for (tp, start) in partitions {
                    self.processed.remove(&e.host, tp);
                    let earlier = self
                        .acked
                        .get(tp)
                        .into_iter()
                        .flatten()
                        .filter(|(g, _)| g < generation)
                        .map(|(_, o)| *o)
                        .max();
                    // A start below the latest acknowledged commit is the
                    // broker forgetting it (commits-kept), not a consumer's
                    // stale commit.
                    let latest = self.acked.get(tp).and_then(|v| v.last()).map(|(_, o)| *o);
                    if latest.is_some_and(|l| *start < l) {
                        continue;
                    }
                    if let Some(c) = earlier.filter(|c| start < c) {
                        return Some(Found::new(
                            i,
                            tp,
                            *start,
                            format!(
                                "{} starts at {} below {}, committed in an earlier generation: \
                                 records {}..{} are redelivered though their processing was committed",
                                e.host, start, c, start, c
                            ),
                        ));
                    }
                }
            }
            Event::ProcessingSucceeded { tp, offset, .. }
                if !self.processed.entry(&e.host, tp).insert(*offset) =>
            {
                return Some(Found::new(
                    i,
                    tp,
                    *offset,
                    format!("{} processed it twice within one ownership", e.host),
                ));
            }
            _ => {}
        }
        None
    }
}

/// Commits kept: each new owner starts at the latest acknowledged commit.
#[derive(Default)]
struct CommitsKept {
    latest: BTreeMap<TopicPartition, Offset>,
    /// Ownerships handed less than the latest acknowledged commit, until
    /// they process a record below it or end: (host, partition) -> (index
    /// of the assignment, start, acknowledged).
    short: PerOwner<(usize, Offset, Offset)>,
}

impl Streaming for CommitsKept {
    fn observe(&mut self, i: usize, e: &Entry) -> Option<Found> {
        let host = e.host.as_str();
        match e.event()? {
            Event::Committed { tp, offset, .. } => {
                self.latest.insert(tp.clone(), *offset);
            }
            Event::Assigned { partitions, .. } => {
                for (tp, start) in partitions {
                    self.short.remove(host, tp);
                    if let Some(l) = self.latest.get(tp).filter(|l| start < *l) {
                        self.short.insert(host, tp, (i, *start, *l));
                    }
                }
            }
            // Judged when the short-handed owner redelivers: a start
            // position read before a later commit was acknowledged (an
            // assignment of an older generation, applied after its start
            // positions were fetched, while the group had moved on and
            // another owner committed) is not a lost commit if the
            // ownership ends before it processes anything below it — seen
            // with the configuration swarm, nemesis_mix seed 154.
            Event::ProcessingStarted { tp, offset, .. } => {
                if let Some(&(at, start, l)) = self.short.get(host, tp) {
                    if *offset < l {
                        return Some(Found::new(
                            at,
                            tp,
                            start,
                            format!(
                                "{host} was handed {start} though the broker had acknowledged a \
                                 commit of {l}: the broker lost an acknowledged commit, and \
                                 records {start}..{l} are redelivered (from {offset})"
                            ),
                        ));
                    }
                    self.short.remove(host, tp);
                }
            }
            Event::Revoked { partitions, .. } | Event::Lost { partitions } => {
                for tp in partitions {
                    self.short.remove(host, tp);
                }
            }
            _ => {}
        }
        None
    }
}

/// Exclusive ownership.
#[derive(Default)]
struct ExclusiveOwnership {
    /// partition -> host -> generation it was assigned in
    owners: BTreeMap<TopicPartition, BTreeMap<String, Generation>>,
    /// host -> newest generation it joined
    joined: BTreeMap<String, Generation>,
}

impl Streaming for ExclusiveOwnership {
    fn observe(&mut self, i: usize, e: &Entry) -> Option<Found> {
        let host = e.host.as_str();
        if let Some(gone) = ended_host(e) {
            for o in self.owners.values_mut() {
                o.remove(&gone);
            }
            self.joined.remove(&gone);
        }
        match e.event()? {
            Event::Joined { generation, .. } => {
                self.joined.insert(host.to_owned(), *generation);
            }
            Event::Assigned {
                partitions,
                generation,
            } => {
                for (tp, _) in partitions {
                    let o = self.owners.entry(tp.clone()).or_default();
                    if let Some((other, _)) = o
                        .iter()
                        .find(|(h2, g)| h2.as_str() != host && **g == *generation)
                    {
                        return Some(Found {
                            index: i,
                            tp: Some(tp.clone()),
                            offset: None,
                            detail: format!(
                                "{host} and {other} both own it in generation {generation}"
                            ),
                        });
                    }
                    o.insert(host.to_owned(), *generation);
                }
            }
            Event::Revoked { partitions, .. } | Event::Lost { partitions } => {
                for tp in partitions {
                    if let Some(o) = self.owners.get_mut(tp) {
                        o.remove(host);
                    }
                }
            }
            Event::Stopped { .. } | Event::Left => {
                for o in self.owners.values_mut() {
                    o.remove(host);
                }
            }
            Event::Committed {
                tp,
                offset,
                generation,
            } => {
                if let Some(newer) = self.joined.get(host).filter(|g| **g > *generation) {
                    return Some(Found::new(
                        i,
                        tp,
                        *offset,
                        format!(
                            "a commit from generation {generation} was accepted after {host} \
                             joined generation {newer}: stale-generation commits must be fenced"
                        ),
                    ));
                }
            }
            _ => {}
        }
        None
    }
}

/// Partition order (partition ordering only).
#[derive(Default)]
struct PartitionOrder {
    /// (host, partition) -> (current offset, finished?)
    cur: PerOwner<(Offset, bool)>,
}

impl Streaming for PartitionOrder {
    fn observe(&mut self, i: usize, e: &Entry) -> Option<Found> {
        let host = e.host.as_str();
        if let Some(gone) = ended_host(e) {
            self.cur.remove_host(&gone);
        }
        match e.event()? {
            Event::Assigned { partitions, .. } => {
                for (tp, _) in partitions {
                    self.cur.remove(host, tp);
                }
            }
            Event::Revoked { partitions, .. } | Event::Lost { partitions } => {
                for tp in partitions {
                    self.cur.remove(host, tp);
                }
            }
            Event::ProcessingStarted { tp, offset, .. } => {
                if let Some((o, done)) = self.cur.get(host, tp).copied() {
                    if *offset == o && !done {
                        return None; // a retry of the current record
                    }
                    if *offset <= o {
                        return Some(Found::new(
                            i,
                            tp,
                            *offset,
                            format!("{host} started {offset} after {o}: out of offset order"),
                        ));
                    }
                    if !done {
                        return Some(Found::new(
                            i,
                            tp,
                            *offset,
                            format!("{host} started {offset} before {o} finished"),
                        ));
                    }
                }
                self.cur.insert(host, tp, (*offset, false));
            }
            Event::ProcessingSucceeded { tp, offset, .. }
            | Event::DeadLetterRequested { tp, offset } => {
                if let Some(c) = self.cur.get_mut(host, tp) {
                    if c.0 == *offset {
                        c.1 = true;
                    }
                }
            }
            _ => {}
        }
        None
    }
}

/// No committed-offset regression: an acknowledged commit `(g, o)` is a
/// regression when an earlier acknowledged commit `(g2, o2)` had `g2 <= g`
/// and `o2 > o`. (A late acknowledgement from an older generation — a
/// paused member's — is not a regression of the newer one.)
#[derive(Default)]
struct NoCommitRegression {
    acked: BTreeMap<TopicPartition, Vec<(Generation, Offset)>>,
}

impl Streaming for NoCommitRegression {
    fn observe(&mut self, i: usize, e: &Entry) -> Option<Found> {
        if let Some(Event::Committed {
            tp,
            offset,
            generation,
        }) = e.event()
        {
            let list = self.acked.entry(tp.clone()).or_default();
            if let Some((g2, o2)) = list.iter().find(|(g2, o2)| g2 <= generation && o2 > offset) {
                return Some(Found::new(
                    i,
                    tp,
                    *offset,
                    format!(
                        "{} moved the committed offset back to {} (generation {}) after {} \
                         (generation {}) was committed",
                        e.host, offset, generation, o2, g2
                    ),
                ));
            }
            list.push((*generation, *offset));
        }
        None
    }
}

/// Dead-letter correctness.
struct DeadLetterCorrectness {
    max_attempts: u32,
    /// (host, partition, offset) it may dead-letter.
    allowed: PerOwner<BTreeSet<Offset>>,
    processed: PerOwner<BTreeSet<Offset>>,
    lettered: PerOwner<BTreeSet<Offset>>,
}

impl Streaming for DeadLetterCorrectness {
    fn observe(&mut self, i: usize, e: &Entry) -> Option<Found> {
        let host = e.host.as_str();
        match e.event()? {
            Event::Assigned { partitions, .. } => {
                for (tp, _) in partitions {
                    self.processed.remove(host, tp);
                    self.lettered.remove(host, tp);
                }
            }
            Event::ProcessingFailed {
                tp,
                offset,
                attempt,
                class,
                ..
            } => {
                let exhausted = *class == ErrorClass::Transient && *attempt >= self.max_attempts;
                if *class == ErrorClass::Permanent || exhausted {
                    self.allowed.entry(host, tp).insert(*offset);
                }
            }
            Event::DeadLetterRequested { tp, offset }
                if !self.allowed.contains(host, tp, *offset) =>
            {
                return Some(Found::new(
                    i,
                    tp,
                    *offset,
                    format!(
                        "{host} dead-lettered it without a permanent failure or {} failed attempts",
                        self.max_attempts
                    ),
                ));
            }
            Event::DeadLettered { tp, offset, .. } => {
                if self.processed.contains(host, tp, *offset) {
                    return Some(Found::new(
                        i,
                        tp,
                        *offset,
                        format!("{host} both processed and dead-lettered it"),
                    ));
                }
                self.lettered.entry(host, tp).insert(*offset);
            }
            Event::ProcessingSucceeded { tp, offset, .. } => {
                if self.lettered.contains(host, tp, *offset) {
                    return Some(Found::new(
                        i,
                        tp,
                        *offset,
                        format!("{host} both dead-lettered and processed it"),
                    ));
                }
                self.processed.entry(host, tp).insert(*offset);
            }
            _ => {}
        }
        None
    }
}

/// Retry bounds and backoff.
struct RetryBounds {
    retry: RetryPolicy,
    resolution: Duration,
    /// (host, partition) -> (offset, attempt) -> earliest time it may start
    not_before: PerOwner<BTreeMap<(Offset, u32), Instant>>,
}

impl Streaming for RetryBounds {
    fn observe(&mut self, i: usize, e: &Entry) -> Option<Found> {
        let host = e.host.as_str();
        let retry = &self.retry;
        match e.event()? {
            Event::ProcessingStarted {
                tp,
                offset,
                attempt,
            } => {
                if *attempt > retry.max_attempts || *attempt == 0 {
                    return Some(Found::new(
                        i,
                        tp,
                        *offset,
                        format!(
                            "{host} started attempt {attempt}; the policy allows 1..={}",
                            retry.max_attempts
                        ),
                    ));
                }
                let due = self
                    .not_before
                    .get_mut(host, tp)
                    .and_then(|m| m.remove(&(*offset, *attempt)));
                if let Some(t) = due {
                    if e.at.as_millis() + (self.resolution.as_millis() as u64) < t.as_millis() {
                        return Some(Found::new(
                            i,
                            tp,
                            *offset,
                            format!("{host} retried at {} before its backoff ended at {t}", e.at),
                        ));
                    }
                }
            }
            Event::Retried {
                tp,
                offset,
                next_attempt,
                delay,
            } => {
                let base = retry.base_delay(next_attempt.saturating_sub(1));
                let hi = base.as_millis() as u64 + 1;
                let lo = ((base.as_secs_f64() * (1.0 - retry.jitter)) * 1000.0).floor() as u64;
                let d = delay.as_millis() as u64;
                if d < lo.saturating_sub(1) || d > hi {
                    return Some(Found::new(
                        i,
                        tp,
                        *offset,
                        format!(
                            "{host} backs off {d} ms before attempt {next_attempt}; the policy \
                             allows {lo}..={hi} ms"
                        ),
                    ));
                }
                self.not_before
                    .entry(host, tp)
                    .insert((*offset, *next_attempt), e.at + *delay);
            }
            _ => {}
        }
        None
    }
}

/// The group as the coordinator's events tell it: its members, and the
/// members of its current generation — every member when the join phase
/// completed (a member is in a generation from its JoinGroup answer on,
/// whether or not the SyncGroup round finishes), less those removed since,
/// with a fenced static member's new id in place of its old one.
#[derive(Default)]
struct BrokerView {
    generation: Option<Generation>,
    group: BTreeSet<MemberId>,
    members: BTreeSet<MemberId>,
    /// Member id -> client id (the host).
    clients: BTreeMap<MemberId, String>,
}

impl BrokerView {
    fn see(&mut self, b: &BrokerEvent) {
        match b {
            BrokerEvent::GroupState { to, generation, .. } => {
                if *to == ruckus_core::coordinator::GroupState::CompletingRebalance {
                    self.members = self.group.clone();
                }
                self.generation = Some(*generation);
            }
            BrokerEvent::GenerationCompleted {
                generation,
                members,
            } => {
                self.generation = Some(*generation);
                self.members = members.iter().map(|m| m.member.clone()).collect();
                for m in members {
                    self.clients.insert(m.member.clone(), m.client.clone());
                }
            }
            BrokerEvent::MemberAdded { member, client } => {
                self.group.insert(member.clone());
                self.clients.insert(member.clone(), client.clone());
            }
            BrokerEvent::MemberRemoved { member, .. } => {
                self.group.remove(member);
                self.members.remove(member);
            }
            BrokerEvent::MemberFenced { old, new } => {
                if self.group.remove(old) {
                    self.group.insert(new.clone());
                }
                if self.members.remove(old) {
                    self.members.insert(new.clone());
                }
                if let Some(c) = self.clients.get(old).cloned() {
                    self.clients.insert(new.clone(), c);
                }
            }
            _ => {}
        }
    }
}

/// Fenced commits: judged from the broker's events alone.
#[derive(Default)]
struct FencedCommits {
    view: BrokerView,
}

impl Streaming for FencedCommits {
    fn observe(&mut self, i: usize, e: &Entry) -> Option<Found> {
        let b = e.broker()?;
        let view = &self.view;
        if let BrokerEvent::CommitHandled {
            member,
            generation,
            offsets,
            error: ErrorCode::None,
        } = b
        {
            // Generation -1: a client outside group management, which
            // Kafka allows only while the group is empty.
            let outside = if generation.0 < 0 {
                None
            } else if view.generation != Some(*generation) {
                Some(format!(
                    "it names generation {generation}, but the group is in generation {}",
                    view.generation
                        .map_or_else(|| "none".to_owned(), |g| g.to_string())
                ))
            } else if !view.members.contains(member) {
                Some(format!(
                    "{member} is not a member of generation {generation}"
                ))
            } else {
                None
            };
            if let (Some(why), Some((tp, offset))) = (outside, offsets.first()) {
                let client = view.clients.get(member).map_or("?", String::as_str);
                return Some(Found::new(
                    i,
                    tp,
                    *offset,
                    format!(
                        "the broker applied a commit of {offset} from {member} ({client}): {why}"
                    ),
                ));
            }
        }
        self.view.see(b);
        None
    }
}

/// No overlapping owners across generations.
#[derive(Default)]
struct NoOverlappingOwners {
    /// Client side: host -> partitions it holds (assigned, not yet revoked,
    /// lost, stopped or ended).
    holds: BTreeMap<String, BTreeSet<TopicPartition>>,
    /// Broker side: generation -> the hosts that are its members.
    members_of: BTreeMap<Generation, BTreeSet<String>>,
}

impl Streaming for NoOverlappingOwners {
    fn observe(&mut self, i: usize, e: &Entry) -> Option<Found> {
        let host = e.host.as_str();
        if let Some(gone) = ended_host(e) {
            self.holds.remove(&gone);
        }
        if let Some(BrokerEvent::GenerationCompleted {
            generation,
            members,
        }) = e.broker()
        {
            self.members_of.insert(
                *generation,
                members.iter().map(|m| m.client.clone()).collect(),
            );
        }
        match e.event()? {
            Event::Assigned {
                partitions,
                generation,
            } => {
                let Some(peers) = self.members_of.get(generation) else {
                    // No broker-side record of the generation (a real
                    // broker): nothing to judge it by.
                    let held = self.holds.entry(host.to_owned()).or_default();
                    held.extend(partitions.iter().map(|(tp, _)| tp.clone()));
                    return None;
                };
                for (tp, _) in partitions {
                    let other = self.holds.iter().find(|(h2, held)| {
                        h2.as_str() != host && held.contains(tp) && peers.contains(h2.as_str())
                    });
                    if let Some((other, _)) = other {
                        return Some(Found {
                            index: i,
                            tp: Some(tp.clone()),
                            offset: None,
                            detail: format!(
                                "{host} was assigned it in generation {generation} while {other}, \
                                 also a member of generation {generation}, still held it"
                            ),
                        });
                    }
                    self.holds
                        .entry(host.to_owned())
                        .or_default()
                        .insert(tp.clone());
                }
            }
            Event::Revoked { partitions, .. } | Event::Lost { partitions } => {
                if let Some(held) = self.holds.get_mut(host) {
                    for tp in partitions {
                        held.remove(tp);
                    }
                }
            }
            Event::Stopped { .. } | Event::Left => {
                self.holds.remove(host);
            }
            _ => {}
        }
        None
    }
}

/// Commit agreement between members and the broker.
#[derive(Default)]
struct CommitAgreement {
    view: BrokerView,
    /// (host, partition, offset, generation) a member asked to commit.
    requested: PerOwner<BTreeSet<(Offset, Generation)>>,
    /// (host, partition, offset, generation) the broker applied.
    applied: PerOwner<BTreeSet<(Offset, Generation)>>,
    /// Whether the coordinator's inside is recorded (the simulation's).
    observed: bool,
}

impl Streaming for CommitAgreement {
    fn observe(&mut self, i: usize, e: &Entry) -> Option<Found> {
        if let Some(b) = e.broker() {
            // Only a history with the coordinator's inside (the
            // simulation's) can say what it applied; a real run records
            // just the pins and fail-overs it made itself.
            self.observed |= b.is_coordinators();
            self.view.see(b);
            if let BrokerEvent::CommitHandled {
                member,
                generation,
                offsets,
                error: ErrorCode::None,
            } = b
            {
                let host = self.view.clients.get(member)?.as_str();
                for (tp, offset) in offsets {
                    let asked = self
                        .requested
                        .get(host, tp)
                        .is_some_and(|r| r.contains(&(*offset, *generation)));
                    if !asked {
                        return Some(Found::new(
                            i,
                            tp,
                            *offset,
                            format!(
                                "the broker applied a commit of {offset} in generation \
                                 {generation} from {member} ({host}), which {host} never asked for"
                            ),
                        ));
                    }
                    self.applied.entry(host, tp).insert((*offset, *generation));
                }
            }
            return None;
        }
        let host = e.host.as_str();
        match e.event()? {
            Event::CommitRequested {
                tp,
                offset,
                generation,
            } => {
                self.requested
                    .entry(host, tp)
                    .insert((*offset, *generation));
            }
            // Judged only where the broker's side is recorded.
            Event::Committed {
                tp,
                offset,
                generation,
            } if self.observed
                && !self
                    .applied
                    .get(host, tp)
                    .is_some_and(|a| a.contains(&(*offset, *generation))) =>
            {
                return Some(Found::new(
                    i,
                    tp,
                    *offset,
                    format!(
                        "{host} saw its commit of {offset} in generation {generation} \
                         acknowledged, but the broker never applied it"
                    ),
                ));
            }
            _ => {}
        }
        None
    }
}
