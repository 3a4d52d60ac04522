//! The invariants on a processor's side effects, judged from the store's
//! own records ([`StoreEvent`]) beside the members' processing and
//! commits.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use ruckus_core::events::Event;
use ruckus_core::model::{Instant, Offset, TopicPartition};

use super::Found;
use crate::record::{Cause, Entry, StoreEvent};

/// Records processed successfully and never dead-lettered: each must
/// have an effect. With the index of the first success of each.
fn effectful(h: &[Entry]) -> BTreeMap<Cause, usize> {
    let mut out = BTreeMap::new();
    let mut lettered = BTreeSet::new();
    for (i, e) in h.iter().enumerate() {
        match e.event() {
            Some(Event::ProcessingSucceeded { tp, offset, .. }) => {
                out.entry(cause(tp, *offset)).or_insert(i);
            }
            Some(Event::DeadLettered { tp, offset, .. }) => {
                lettered.insert(cause(tp, *offset));
            }
            _ => {}
        }
    }
    out.retain(|c, _| !lettered.contains(c));
    out
}

fn cause(tp: &TopicPartition, offset: Offset) -> Cause {
    Cause {
        tp: tp.clone(),
        offset,
    }
}

/// When the store first held each record's effect (an applied write, or
/// an idempotent write that found it already there).
fn first_effects(h: &[Entry]) -> BTreeMap<&Cause, Instant> {
    let mut out = BTreeMap::new();
    for e in h {
        if let Some(c) = e.store().and_then(StoreEvent::cause) {
            out.entry(c).or_insert(e.at);
        }
    }
    out
}

/// Effect loss: a record processed successfully (and not dead-lettered)
/// whose effect never reached the store.
pub(super) fn effect_loss(h: &[Entry]) -> Option<Found> {
    let written = first_effects(h);
    let (c, i) = effectful(h)
        .into_iter()
        .filter(|(c, _)| !written.contains_key(c))
        .min_by_key(|(_, i)| *i)?;
    let committed = h[i..].iter().find_map(|e| match e.event() {
        Some(Event::Committed { tp, offset, .. }) if *tp == c.tp && *offset > c.offset => Some(
            format!("; {} committed {offset} past it at {}", e.host, e.at),
        ),
        _ => None,
    });
    Some(Found::new(
        i,
        &c.tp,
        c.offset,
        format!(
            "{} processed it successfully at {}, and no write for it ever reached the store{}",
            h[i].host,
            h[i].at,
            committed.unwrap_or_default()
        ),
    ))
}

/// Effect duplicates: a record's effect applied twice.
pub(super) fn effect_duplicates(h: &[Entry]) -> Option<Found> {
    let mut applied: BTreeMap<&Cause, (Instant, &str, &str)> = BTreeMap::new();
    for (i, e) in h.iter().enumerate() {
        let Some(StoreEvent::Applied {
            cause: Some(c),
            key,
            ..
        }) = e.store()
        else {
            continue;
        };
        if let Some((at, host, first_key)) = applied.get(c) {
            return Some(Found::new(
                i,
                &c.tp,
                c.offset,
                format!(
                    "its effect was applied twice: `{first_key}` at {at} (written by {host}) \
                     and `{key}` now (by {}); a redelivered record must write idempotently",
                    writer(h, i)
                ),
            ));
        }
        applied.insert(c, (e.at, writer(h, i), key));
    }
    None
}

/// The member whose processing of the write's record came last before
/// entry `i` (the store does not know its clients).
fn writer(h: &[Entry], i: usize) -> &str {
    let Some(c) = h[i].store().and_then(StoreEvent::cause) else {
        return "?";
    };
    h[..i]
        .iter()
        .rev()
        .find(|e| {
            matches!(e.event(), Some(Event::ProcessingStarted { tp, offset, .. }) if *tp == c.tp && *offset == c.offset)
        })
        .map_or("?", |e| e.host.as_str())
}

/// Effect before commit: when a commit of `o` is requested, every record
/// below `o` that is processed (and not dead-lettered) already has its
/// effect in the store, `resolution` allowing for coarse timestamps.
pub(super) fn effect_before_commit(h: &[Entry], resolution: Duration) -> Option<Found> {
    let written = first_effects(h);
    let mut by_partition: BTreeMap<&TopicPartition, BTreeSet<Offset>> = BTreeMap::new();
    let effectful = effectful(h);
    for c in effectful.keys() {
        by_partition.entry(&c.tp).or_default().insert(c.offset);
    }
    // Per partition, the offsets below this were judged at an earlier
    // commit, whose time is earlier than any later commit's.
    let mut judged: BTreeMap<&TopicPartition, Offset> = BTreeMap::new();
    for (i, e) in h.iter().enumerate() {
        let Some(Event::CommitRequested { tp, offset, .. }) = e.event() else {
            continue;
        };
        let Some(offsets) = by_partition.get(tp) else {
            continue;
        };
        let from = judged.get(tp).copied().unwrap_or(Offset(0));
        if *offset <= from {
            continue;
        }
        for x in offsets.range(from..*offset) {
            let c = cause(tp, *x);
            let late = match written.get(&c) {
                None => Some("never".to_owned()),
                Some(at) if at.as_millis() > e.at.as_millis() + resolution.as_millis() as u64 => {
                    Some(format!("only at {at}"))
                }
                Some(_) => None,
            };
            if let Some(when) = late {
                return Some(Found::new(
                    i,
                    tp,
                    *x,
                    format!(
                        "{} committed {offset} past offset {x}, whose effect the store applied {when}: \
                         the processor returned before its write was durable",
                        e.host
                    ),
                ));
            }
        }
        judged.insert(tp, *offset);
    }
    None
}
