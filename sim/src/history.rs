//! One ordered history for the whole simulation: every host's events,
//! stamped with simulated time, plus the two checks the simulation tests
//! need first (the full checker suite belongs to `ruckus-chaos`).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use ruckus_core::driver::EventSink;
use ruckus_core::events::Event;
use ruckus_core::model::{Instant, Offset, TopicPartition};

use crate::cluster::sim_now;

/// One history entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Simulated time.
    pub at: Instant,
    /// The emitting host.
    pub host: String,
    /// What happened.
    pub event: Event,
}

/// The shared history.
#[derive(Clone, Debug, Default)]
pub struct History(Arc<Mutex<Vec<Entry>>>);

impl History {
    /// Appends an event from `host` at the current simulated time.
    pub fn record(&self, host: &str, event: Event) {
        self.0.lock().expect("history").push(Entry {
            at: sim_now(),
            host: host.to_owned(),
            event,
        });
    }

    /// Appends an event at a given time (from outside the hosts, where
    /// there is no current simulated clock).
    pub fn record_at(&self, at: Instant, host: &str, event: Event) {
        self.0.lock().expect("history").push(Entry {
            at,
            host: host.to_owned(),
            event,
        });
    }

    /// A sink for a host's driver.
    pub fn sink(&self, host: &str) -> Arc<dyn EventSink> {
        Arc::new(HostSink {
            host: host.to_owned(),
            history: self.clone(),
        })
    }

    /// A copy of the entries.
    pub fn entries(&self) -> Vec<Entry> {
        self.0.lock().expect("history").clone()
    }

    /// Hands `f` the entries from index `from` on, in order, without
    /// copying the history; returns the index to continue from. A watcher
    /// that reads the history as it grows calls this again and again.
    pub fn scan_from(&self, from: usize, mut f: impl FnMut(&Entry)) -> usize {
        let entries = self.0.lock().expect("history");
        for e in entries.iter().skip(from) {
            f(e);
        }
        entries.len()
    }
}

struct HostSink {
    host: String,
    history: History,
}

impl EventSink for HostSink {
    fn emit(&self, _at: Instant, event: &Event) {
        self.history.record(&self.host, event.clone());
    }
}

/// A broken invariant, with where and when.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// Which invariant.
    pub invariant: &'static str,
    /// Simulated time.
    pub at: Instant,
    /// Partition.
    pub tp: TopicPartition,
    /// Offset.
    pub offset: Offset,
    /// What happened, in words.
    pub detail: String,
}

fn finished(e: &Event) -> Option<(&TopicPartition, Offset)> {
    match e {
        Event::ProcessingSucceeded { tp, offset, .. } | Event::DeadLettered { tp, offset, .. } => {
            Some((tp, *offset))
        }
        _ => None,
    }
}

/// Zero loss: every acknowledged produce was processed or dead-lettered.
///
/// # Errors
/// The first record acknowledged and never finished.
pub fn check_zero_loss(history: &[Entry]) -> Result<(), Violation> {
    let done: BTreeSet<(&TopicPartition, Offset)> =
        history.iter().filter_map(|e| finished(&e.event)).collect();
    for e in history {
        if let Event::Produced { tp, offset } = &e.event {
            if !done.contains(&(tp, *offset)) {
                return Err(Violation {
                    invariant: "zero loss",
                    at: e.at,
                    tp: tp.clone(),
                    offset: *offset,
                    detail: format!(
                        "acknowledged to {} and never processed nor dead-lettered",
                        e.host
                    ),
                });
            }
        }
    }
    Ok(())
}

/// Commit safety: when a commit of offset `o` is sent, every record below
/// `o` that exists (was produced or fetched, ever) was already processed or
/// dead-lettered.
///
/// # Errors
/// The first commit that passed an unfinished record.
pub fn check_commit_safety(history: &[Entry]) -> Result<(), Violation> {
    let mut existing: BTreeMap<&TopicPartition, BTreeSet<Offset>> = BTreeMap::new();
    for e in history {
        if let Event::Produced { tp, offset } | Event::Fetched { tp, offset } = &e.event {
            existing.entry(tp).or_default().insert(*offset);
        }
    }
    let mut done: BTreeSet<(&TopicPartition, Offset)> = BTreeSet::new();
    for e in history {
        if let Some(f) = finished(&e.event) {
            done.insert(f);
        }
        if let Event::CommitRequested { tp, offset, .. } = &e.event {
            if let Some(below) = existing.get(tp) {
                if let Some(x) = below.range(..*offset).find(|x| !done.contains(&(tp, **x))) {
                    return Err(Violation {
                        invariant: "commit safety",
                        at: e.at,
                        tp: tp.clone(),
                        offset: *x,
                        detail: format!(
                            "{} committed {} past unfinished offset {}",
                            e.host, offset, x
                        ),
                    });
                }
            }
        }
    }
    Ok(())
}
