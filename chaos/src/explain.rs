//! The violation in words: a short account, built from the history, of how
//! a record was lost or duplicated or a commit went wrong — who fetched the
//! record, in which generation, what became of its processing, which commit
//! passed it and why that commit was allowed, what the next owner started
//! from, and which faults were active. In the manner of Elle's
//! explanations: every sentence is a fact of the history, with its time.

use ruckus_core::consumer::ErrorClass;
use ruckus_core::events::Event;
use ruckus_core::model::{Instant, Offset, TopicPartition};
use ruckus_history::check::{Invariant, Violation};
use ruckus_history::fault::{Fault, FaultRecord};
use ruckus_history::record::{Entry, Record};

/// A fault as it was in effect: from when it was applied until it healed
/// (or the run ended).
#[derive(Clone, Debug, PartialEq)]
pub struct FaultSpan {
    /// When it was applied.
    pub from: Instant,
    /// When it healed (`None`: never, or an instant fault).
    pub until: Option<Instant>,
    /// What was applied, its targets resolved.
    pub record: FaultRecord,
}

impl FaultSpan {
    /// Whether it was in effect at `t` (an instant fault — an error burst,
    /// a clock jump, a crash without restart — at the moment it fired).
    pub fn active_at(&self, t: Instant) -> bool {
        match self.until {
            Some(u) => self.from <= t && t < u,
            None => self.from <= t && (self.lasting() || t == self.from),
        }
    }

    /// Whether it lasts until healed (not an instant fault).
    fn lasting(&self) -> bool {
        self.record.fault.heal_after().is_some()
            || matches!(
                self.record.fault,
                Fault::CrashMember { .. }
                    | Fault::StopMember { .. }
                    | Fault::CrashBroker { .. }
                    | Fault::DisconnectBroker { .. }
                    | Fault::Partition { .. }
            )
    }
}

/// Every fault applied in `history`, with when it healed.
pub fn fault_spans(history: &[Entry]) -> Vec<FaultSpan> {
    let mut spans: Vec<FaultSpan> = Vec::new();
    for e in history {
        match &e.record {
            Record::Fault(r) => spans.push(FaultSpan {
                from: e.at,
                until: None,
                record: r.clone(),
            }),
            Record::Healed(r) => {
                if let Some(s) = spans
                    .iter_mut()
                    .find(|s| s.until.is_none() && s.record == *r)
                {
                    s.until = Some(e.at);
                }
            }
            _ => {}
        }
    }
    spans
}

/// The generation `host` was in at `t` (its last join or assignment
/// before then).
fn generation_at(history: &[Entry], host: &str, t: Instant) -> Option<i32> {
    history
        .iter()
        .take_while(|e| e.at <= t)
        .filter(|e| e.host == host)
        .filter_map(|e| match e.event()? {
            Event::Joined { generation, .. } | Event::Assigned { generation, .. } => {
                Some(generation.0)
            }
            _ => None,
        })
        .last()
}

fn in_gen(history: &[Entry], host: &str, t: Instant) -> String {
    generation_at(history, host, t).map_or_else(String::new, |g| format!(" in generation {g}"))
}

/// The faults in effect at `t`, in words.
fn faults_at(spans: &[FaultSpan], t: Instant) -> Vec<String> {
    spans
        .iter()
        .filter(|s| s.active_at(t))
        .map(|s| format!("{} (from {})", s.record, s.from))
        .collect()
}

/// The account of `v`, a violation found in `history`, in sentences.
pub fn explain(history: &[Entry], v: &Violation) -> Vec<String> {
    let spans = fault_spans(history);
    let at = Instant::from_millis(v.at_ms);
    let tp = v.partition.as_ref().and_then(|p| {
        history.iter().find_map(|e| match e.event()? {
            Event::Produced { tp, .. }
            | Event::Fetched { tp, .. }
            | Event::Committed { tp, .. }
                if tp.to_string() == *p =>
            {
                Some(tp.clone())
            }
            _ => None,
        })
    });
    let mut out = Vec::new();
    match (tp, v.offset) {
        (Some(tp), _) if v.invariant == Invariant::Liveness => out.extend(stuck(history, &tp, at)),
        (Some(tp), Some(_)) if v.invariant == Invariant::NoCommitRegression => {
            out.extend(regression(history, &tp, at));
        }
        (Some(tp), Some(o)) => out.extend(record_story(history, &spans, v, &tp, Offset(o))),
        (Some(tp), None) => out.extend(regression(history, &tp, at)),
        _ => {}
    }
    if out.is_empty() {
        out.push(format!("{}: {}", v.invariant, v.detail));
    }
    let active = faults_at(&spans, at);
    out.push(if active.is_empty() {
        format!("No fault was in effect at {at}, when the violation was found.")
    } else {
        format!("In effect at {at}: {}.", active.join("; "))
    });
    out
}

/// What happened to one record: produced, fetched, processed, committed
/// past, handed over.
fn record_story(
    history: &[Entry],
    spans: &[FaultSpan],
    v: &Violation,
    tp: &TopicPartition,
    o: Offset,
) -> Vec<String> {
    let mut out = Vec::new();
    let name = format!("{tp}@{}", o.0);
    let this = |t: &TopicPartition, off: &Offset| t == tp && *off == o;
    if let Some(e) = history
        .iter()
        .find(|e| matches!(e.event(), Some(Event::Produced { tp: t, offset }) if this(t, offset)))
    {
        out.push(format!("{name} was produced (acknowledged) at {}.", e.at));
    }
    // Who fetched it, and what became of it at each.
    let mut hosts: Vec<&str> = Vec::new();
    for e in history {
        if let Some(Event::Fetched { tp: t, offset }) = e.event() {
            if this(t, offset) && !hosts.contains(&e.host.as_str()) {
                hosts.push(&e.host);
            }
        }
    }
    if hosts.is_empty() {
        out.push(format!("No member ever fetched {name}."));
    }
    for host in &hosts {
        let mine = || history.iter().filter(|e| e.host == *host);
        let fetched = mine()
            .find(
                |e| matches!(e.event(), Some(Event::Fetched { tp: t, offset }) if this(t, offset)),
            )
            .map(|e| e.at)
            .unwrap_or_default();
        let mut fate = Vec::new();
        for e in mine() {
            match e.event() {
                Some(Event::ProcessingSucceeded {
                    tp: t,
                    offset,
                    attempt,
                }) if this(t, offset) => {
                    fate.push(format!("processed it at {} (attempt {attempt})", e.at));
                }
                Some(Event::ProcessingFailed {
                    tp: t,
                    offset,
                    attempt,
                    class,
                    ..
                }) if this(t, offset) => fate.push(format!(
                    "failed it {} at {} (attempt {attempt})",
                    match class {
                        ErrorClass::Transient => "transiently",
                        ErrorClass::Permanent => "permanently",
                        ErrorClass::Fatal => "fatally",
                        _ => "",
                    },
                    e.at
                )),
                Some(Event::DeadLettered { tp: t, offset, .. }) if this(t, offset) => {
                    fate.push(format!("dead-lettered it at {}", e.at));
                }
                Some(Event::DeadLetterFailed {
                    tp: t,
                    offset,
                    error,
                }) if this(t, offset) => {
                    fate.push(format!("failed to dead-letter it at {} ({error:?})", e.at));
                }
                Some(Event::StaleCompletion { tp: t, offset }) if this(t, offset) => {
                    fate.push(format!(
                        "dropped its completion at {} (the assignment was gone)",
                        e.at
                    ));
                }
                _ => {}
            }
        }
        let fate = if fate.is_empty() {
            "never finished processing it".to_owned()
        } else {
            fate.join(", ")
        };
        out.push(format!(
            "{host} fetched it at {fetched}{} and {fate}.",
            in_gen(history, host, fetched)
        ));
    }
    // The first acknowledged commit past it, and why it was allowed.
    let done_before = |t: Instant| {
        history.iter().take_while(|e| e.at <= t).any(|e| {
            matches!(e.event(),
                Some(Event::ProcessingSucceeded { tp: x, offset, .. }
                    | Event::DeadLettered { tp: x, offset, .. }) if this(x, offset))
        })
    };
    let passing = history.iter().find(|e| {
        matches!(e.event(), Some(Event::Committed { tp: t, offset, .. })
            if t == tp && offset.0 > o.0)
    });
    if let Some(c) = passing {
        let Some(Event::Committed {
            offset, generation, ..
        }) = c.event()
        else {
            unreachable!("matched above")
        };
        // When it was asked for: the request of that offset before the ack.
        let asked = history
            .iter()
            .take_while(|e| e.at <= c.at)
            .filter(|e| e.host == c.host)
            .filter(|e| matches!(e.event(), Some(Event::CommitRequested { tp: t, offset: x, .. }) if t == tp && x == offset))
            .map(|e| e.at)
            .last()
            .unwrap_or(c.at);
        let mut why = Vec::new();
        if done_before(asked) {
            why.push(format!("{name} had been finished before it was sent"));
        } else {
            let host = c.host.as_str();
            let fetched_by_it = hosts.contains(&host);
            let failed_dlq = history.iter().take_while(|e| e.at <= asked).any(|e| {
                e.host == host
                    && matches!(e.event(), Some(Event::DeadLetterFailed { tp: t, offset: x, .. }) if this(t, x))
            });
            let fatal = history.iter().take_while(|e| e.at <= asked).any(|e| {
                e.host == host
                    && matches!(e.event(), Some(Event::ProcessingFailed { tp: t, offset: x, class: ErrorClass::Fatal, .. }) if this(t, x))
            });
            if failed_dlq {
                why.push(format!(
                    "{host} counted {name} done after its dead-letter write failed, though it was neither processed nor dead-lettered"
                ));
            } else if fatal {
                why.push(format!(
                    "{host} skipped {name} after a fatal failure instead of stopping"
                ));
            } else if fetched_by_it {
                why.push(format!(
                    "when it was sent, {host} had fetched {name} but not finished it: the commit covered what was fetched, not what was finished"
                ));
            } else {
                let start = assigned_from(history, host, tp, asked);
                why.push(match start {
                    Some((t, s)) => format!(
                        "{host} never fetched {name}: its assignment of {tp} at {t} started from offset {s}, past it"
                    ),
                    None => format!("{host} never fetched {name}"),
                });
            }
        }
        let active = faults_at(spans, asked);
        if !active.is_empty() {
            why.push(format!("in effect then: {}", active.join("; ")));
        }
        out.push(format!(
            "{} committed {tp} at offset {} (past {}) at {}, generation {}, sent at {asked}; {}.",
            c.host,
            offset.0,
            o.0,
            c.at,
            generation.0,
            why.join("; ")
        ));
    }
    // The owner that started past it (a loss's hand-off), or at or before
    // it (a duplicate's), after that commit.
    let hand_off = matches!(
        v.invariant,
        Invariant::ZeroLoss | Invariant::HandOffContinuity | Invariant::BoundedDuplicates
    );
    let after = if v.invariant == Invariant::BoundedDuplicates {
        // After it was first finished: whoever starts at or before it then
        // does it again.
        history
            .iter()
            .find(|e| {
                matches!(e.event(),
                    Some(Event::ProcessingSucceeded { tp: x, offset, .. }
                        | Event::DeadLettered { tp: x, offset, .. }) if this(x, offset))
            })
            .map_or(Instant::ZERO, |e| e.at)
    } else {
        passing.map_or(Instant::ZERO, |c| c.at)
    };
    let next = history.iter().find_map(|e| match e.event()? {
        Event::Assigned {
            partitions,
            generation,
        } if e.at > after && hand_off => partitions
            .iter()
            .find(|(t, s)| t == tp && (s.0 > o.0) == (v.invariant != Invariant::BoundedDuplicates))
            .map(|(_, s)| (e, s.0, generation.0)),
        _ => None,
    });
    if let (Some(c), true) = (passing, hand_off) {
        // What ended the committer's hold on the partition, if a fault on
        // it did: the first one after its commit, before the hand-off.
        let until = next.map_or(Instant::from_millis(u64::MAX), |(e, ..)| e.at);
        let fault = spans.iter().find(|s| {
            s.from >= c.at && s.from <= until && member_host(&s.record).is_some_and(|h| h == c.host)
        });
        let ended = history.iter().find(|e| {
            e.host == c.host
                && e.at >= c.at
                && e.at <= until
                && matches!(
                    e.event(),
                    Some(Event::Stopped { .. } | Event::Revoked { .. } | Event::Lost { .. })
                )
        });
        match (fault, ended) {
            (Some(s), _) if ended.map_or(true, |e| s.from <= e.at) => out.push(format!(
                "Then, at {}, {} — before {} had finished {name}.",
                s.from, s.record, c.host
            )),
            (_, Some(e)) => out.push(format!(
                "Then, at {}, {} {} — before it had finished {name}.",
                e.at,
                c.host,
                match e.event() {
                    Some(Event::Stopped { reason }) => format!("stopped ({reason:?})"),
                    Some(Event::Revoked { .. }) => "gave up its partitions (revoked)".to_owned(),
                    _ => "lost its partitions".to_owned(),
                }
            )),
            _ => {}
        }
    }
    if let Some((e, start, generation)) = next {
        out.push(format!(
            "{} was assigned {tp} from offset {start} at {} in generation {generation}{}.",
            e.host,
            e.at,
            if start > o.0 {
                format!(": past {}, so no one fetched it again", o.0)
            } else {
                format!(": at or before {}, so it fetched it again", o.0)
            }
        ));
    }
    dedup_keep_order(&mut out);
    out.truncate(12);
    out
}

/// The member a fault is on, as a host name.
fn member_host(r: &FaultRecord) -> Option<String> {
    match &r.fault {
        Fault::CrashMember { member, .. }
        | Fault::StopMember { member, .. }
        | Fault::PauseMember { member, .. }
        | Fault::ClockJump { member, .. } => Some(ruckus_history::fault::member_host(*member)),
        _ => None,
    }
}

/// Where `host`'s last assignment of `tp` up to `t` started.
fn assigned_from(
    history: &[Entry],
    host: &str,
    tp: &TopicPartition,
    t: Instant,
) -> Option<(Instant, i64)> {
    history
        .iter()
        .take_while(|e| e.at <= t)
        .filter(|e| e.host == host)
        .filter_map(|e| match e.event()? {
            Event::Assigned { partitions, .. } => partitions
                .iter()
                .find(|(x, _)| x == tp)
                .map(|(_, s)| (e.at, s.0)),
            _ => None,
        })
        .last()
}

/// Why `tp` had not caught up by `at`: its last owner, fetch and commit.
fn stuck(history: &[Entry], tp: &TopicPartition, at: Instant) -> Vec<String> {
    let upto = || history.iter().take_while(|e| e.at <= at);
    let mut out = Vec::new();
    let owner = upto()
        .filter_map(|e| match e.event()? {
            Event::Assigned {
                partitions,
                generation,
            } => partitions
                .iter()
                .find(|(t, _)| t == tp)
                .map(|(_, s)| (e, s.0, generation.0)),
            _ => None,
        })
        .last();
    match owner {
        Some((e, start, g)) => {
            out.push(format!(
                "{tp}'s last owner was {}, assigned it from offset {start} at {} in generation {g}.",
                e.host, e.at
            ));
            let gone = upto().any(|x| {
                x.host == e.host
                    && x.at >= e.at
                    && matches!(x.event(), Some(Event::Revoked { partitions, .. } | Event::Lost { partitions }) if partitions.contains(tp))
            });
            if gone {
                out.push(format!(
                    "{} gave it up later, and no member was assigned it again.",
                    e.host
                ));
            }
        }
        None => out.push(format!("No member was ever assigned {tp}.")),
    }
    if let Some(f) = upto()
        .filter(|e| matches!(e.event(), Some(Event::Fetched { tp: t, .. }) if t == tp))
        .last()
    {
        out.push(format!(
            "The last fetch of {tp} was by {} at {}.",
            f.host, f.at
        ));
    }
    if let Some(c) = upto()
        .filter(|e| matches!(e.event(), Some(Event::Committed { tp: t, .. }) if t == tp))
        .last()
    {
        if let Some(Event::Committed { offset, .. }) = c.event() {
            out.push(format!(
                "The last acknowledged commit of {tp} was {} by {} at {}.",
                offset.0, c.host, c.at
            ));
        }
    }
    out.extend(regression(history, tp, at));
    out
}

/// The acknowledged commits of `tp` up to `at`, to show a regression.
fn regression(history: &[Entry], tp: &TopicPartition, at: Instant) -> Vec<String> {
    let commits: Vec<(Instant, &str, i64, i32)> = history
        .iter()
        .take_while(|e| e.at <= at)
        .filter_map(|e| match e.event()? {
            Event::Committed {
                tp: t,
                offset,
                generation,
            } if t == tp => Some((e.at, e.host.as_str(), offset.0, generation.0)),
            _ => None,
        })
        .collect();
    let mut out = Vec::new();
    let mut high: Option<(Instant, &str, i64, i32)> = None;
    for c in &commits {
        if let Some(h) = high {
            if c.2 < h.2 {
                out.push(format!(
                    "{} committed {tp} at {} (generation {}) at {}, after {} had committed {} (generation {}) at {}: the committed offset went back by {}.",
                    c.1, c.2, c.3, c.0, h.1, h.2, h.3, h.0, h.2 - c.2
                ));
                // How the older offset came to be sent late.
                if let Some(req) = history.iter().filter(|e| e.host == c.1 && e.at <= c.0).find(|e| {
                    matches!(e.event(), Some(Event::CommitRequested { tp: t, offset, .. }) if t == tp && offset.0 == c.2)
                }) {
                    out.push(format!(
                        "{} had first asked for offset {} at {}, before the commit of {}: the older commit was sent again, or answered, after the newer one.",
                        c.1, c.2, req.at, h.2
                    ));
                }
                let failed = history.iter().filter(|e| e.host == c.1 && e.at <= c.0).find(|e| {
                    matches!(e.event(), Some(Event::CommitFailed { tp: t, offset, .. }) if t == tp && offset.0 == c.2)
                });
                if let Some(Event::CommitFailed { error, .. }) = failed.and_then(Entry::event) {
                    out.push(format!(
                        "That offset's first commit had failed with {error:?} at {}; it was re-sent with its old offset.",
                        failed.map_or(Instant::ZERO, |e| e.at)
                    ));
                }
                break;
            }
        }
        if high.map_or(true, |h| c.2 >= h.2) {
            high = Some(*c);
        }
    }
    out
}

fn dedup_keep_order(v: &mut Vec<String>) {
    let mut seen = std::collections::BTreeSet::new();
    v.retain(|s| seen.insert(s.clone()));
}
