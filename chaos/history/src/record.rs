//! The typed history: what every backend records and every checker reads.
//!
//! An [`Entry`] is stamped with the run's time and the host it happened on,
//! and holds one [`Record`]: a client event (the engine's
//! [`ruckus_core::events::Event`]), a broker-side event ([`BrokerEvent`]:
//! what the brokers and the group coordinator did), or a fault applied or
//! healed ([`FaultRecord`]), or what the store a processor writes to did
//! ([`StoreEvent`]: its side effects). Nothing in a history is parsed from
//! text.

use std::sync::{Arc, Mutex};

use ruckus_core::coordinator::{GroupState, RemovalReason};
use ruckus_core::events::Event;
use ruckus_core::model::{ErrorCode, Generation, Instant, MemberId, Offset, TopicPartition};

use crate::fault::FaultRecord;

/// One history entry.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    /// The run's time (simulated, or wall time since the run started).
    pub at: Instant,
    /// The host it happened on: a member (`consumer-<i>`), a broker
    /// (`broker-<n>`), the `producer`, or the `nemesis` for faults.
    pub host: String,
    /// What happened.
    pub record: Record,
}

impl Entry {
    /// A client event of `host` at `at`.
    pub fn client(at: Instant, host: &str, event: Event) -> Self {
        Self {
            at,
            host: host.to_owned(),
            record: Record::Client(event),
        }
    }

    /// The client event, if this is one.
    pub fn event(&self) -> Option<&Event> {
        match &self.record {
            Record::Client(e) => Some(e),
            _ => None,
        }
    }

    /// The broker-side event, if this is one.
    pub fn broker(&self) -> Option<&BrokerEvent> {
        match &self.record {
            Record::Broker(e) => Some(e),
            _ => None,
        }
    }

    /// The store's event, if this is one.
    pub fn store(&self) -> Option<&StoreEvent> {
        match &self.record {
            Record::Store(e) => Some(e),
            _ => None,
        }
    }
}

/// What an entry records.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Record {
    /// A client's event: the producer's acknowledgements, a member
    /// engine's fetches, processing, commits and group changes.
    Client(Event),
    /// What a broker or the group coordinator did.
    Broker(BrokerEvent),
    /// A fault was applied.
    Fault(FaultRecord),
    /// A fault was healed.
    Healed(FaultRecord),
    /// What the store a processor writes to did: its side effects.
    Store(StoreEvent),
}

/// The record a processor's write is the effect of.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Cause {
    /// The record's partition.
    pub tp: TopicPartition,
    /// Its offset.
    pub offset: Offset,
}

impl std::fmt::Display for Cause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}@{}", self.tp, self.offset.0)
    }
}

/// What the store did with a write (recorded by the store itself, when it
/// applies or refuses a write, not when the processor asked).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum StoreEvent {
    /// A write was applied: `key` now holds the value.
    Applied {
        /// The record it is the effect of, as the processor named it.
        cause: Option<Cause>,
        /// The key written.
        key: String,
        /// An idempotent write (`put_once`): applied only because nothing
        /// had written the key before.
        once: bool,
    },
    /// An idempotent write found its key already written and changed
    /// nothing.
    Unchanged {
        /// The record it is the effect of.
        cause: Option<Cause>,
        /// The key.
        key: String,
    },
}

impl StoreEvent {
    /// The record this write is the effect of.
    pub fn cause(&self) -> Option<&Cause> {
        match self {
            StoreEvent::Applied { cause, .. } | StoreEvent::Unchanged { cause, .. } => {
                cause.as_ref()
            }
        }
    }
}

/// A member of a completed generation, as the coordinator handed it its
/// assignment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GenerationMember {
    /// Its member id.
    pub member: MemberId,
    /// The client id it joined with (the member's host).
    pub client: String,
    /// The partitions the leader assigned it.
    pub partitions: Vec<TopicPartition>,
}

/// Something a broker or the group coordinator did. Recorded by the
/// simulated cluster from `ruckus-core`'s coordinator; on real brokers only
/// what can be observed from outside is recorded (see the integration
/// crate's docs).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum BrokerEvent {
    /// A produce request was appended: offsets `first..first + count`.
    Appended {
        /// The partition.
        tp: TopicPartition,
        /// The first offset.
        first: Offset,
        /// How many records.
        count: u32,
    },
    /// The group changed state.
    GroupState {
        /// Old state.
        from: GroupState,
        /// New state.
        to: GroupState,
        /// The generation after the change.
        generation: Generation,
    },
    /// A member was added to the group.
    MemberAdded {
        /// Its id.
        member: MemberId,
        /// Its client id.
        client: String,
    },
    /// A member was removed: it left, its session expired, it did not
    /// rejoin in time.
    MemberRemoved {
        /// Its id.
        member: MemberId,
        /// Why.
        reason: RemovalReason,
    },
    /// A static member rejoined under a new id; the old id is fenced.
    MemberFenced {
        /// The fenced id.
        old: MemberId,
        /// The new id.
        new: MemberId,
    },
    /// A generation completed: the leader's assignment was handed out.
    GenerationCompleted {
        /// The generation.
        generation: Generation,
        /// Its members and what each was assigned.
        members: Vec<GenerationMember>,
    },
    /// An OffsetCommit was answered: applied (`error` is `None`) or
    /// refused.
    CommitHandled {
        /// The member that sent it.
        member: MemberId,
        /// The generation the request named.
        generation: Generation,
        /// The offsets it carried.
        offsets: Vec<(TopicPartition, Offset)>,
        /// The answer.
        error: ErrorCode,
    },
    /// The group's coordinator moved to this broker (a real backend's
    /// fail-over, or a pin before the run).
    CoordinatorMoved {
        /// The broker.
        broker: u32,
    },
    /// A partition's leadership moved to this broker.
    LeaderMoved {
        /// The partition.
        tp: TopicPartition,
        /// The broker.
        broker: u32,
    },
    /// A real broker's group, polled from outside (DescribeGroups) when it
    /// changed: its state and its members. Not the coordinator's own
    /// record: polling misses what happens between two polls.
    GroupObserved {
        /// The state, as the broker names it (`Stable`, `PreparingRebalance`, …).
        state: String,
        /// Its members: `(member id, client id)`.
        members: Vec<(String, String)>,
    },
    /// A real broker's committed offset of a partition, polled from
    /// outside when it changed.
    CommitObserved {
        /// The partition.
        tp: TopicPartition,
        /// The committed offset.
        offset: Offset,
    },
}

impl BrokerEvent {
    /// Whether this is the group coordinator's own doing (recorded only
    /// where its inside is visible: the simulation), not a move the run
    /// made or an append.
    pub fn is_coordinators(&self) -> bool {
        matches!(
            self,
            BrokerEvent::GroupState { .. }
                | BrokerEvent::MemberAdded { .. }
                | BrokerEvent::MemberRemoved { .. }
                | BrokerEvent::MemberFenced { .. }
                | BrokerEvent::GenerationCompleted { .. }
                | BrokerEvent::CommitHandled { .. }
        )
    }
}

/// One line of a history, as reports print it.
pub fn render(e: &Entry) -> String {
    let what = match &e.record {
        Record::Client(ev) => format!("{ev:?}"),
        Record::Broker(b) => format!("broker {b:?}"),
        Record::Fault(f) => format!("fault {f}"),
        Record::Healed(f) => format!("healed {f}"),
        Record::Store(StoreEvent::Applied { cause, key, once }) => format!(
            "store applied {key}{} for {}",
            if *once { " (once)" } else { "" },
            cause.as_ref().map_or("-".to_owned(), ToString::to_string)
        ),
        Record::Store(StoreEvent::Unchanged { cause, key }) => format!(
            "store unchanged {key} (already written) for {}",
            cause.as_ref().map_or("-".to_owned(), ToString::to_string)
        ),
    };
    format!("{:>9} {:<12} {what}", e.at.to_string(), e.host)
}

/// The shared history a run appends to from its hosts and its fault
/// schedule.
#[derive(Clone, Debug, Default)]
pub struct History(Arc<Mutex<Vec<Entry>>>);

impl History {
    /// Appends a record from `host` at `at`.
    pub fn record_at(&self, at: Instant, host: &str, record: Record) {
        self.0.lock().expect("history").push(Entry {
            at,
            host: host.to_owned(),
            record,
        });
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
