//! The reference consumer engine, sans-IO.
//!
//! **Its rule: no commit past a record that was neither processed nor
//! acknowledged by the dead-letter topic.** Every commit the engine asks for
//! is computed from [`OffsetTracker::committable`], and a record becomes
//! complete only on a processing success or an acknowledged dead-letter
//! write — never on a failure, a timeout, a revocation or a lost partition.
//!
//! ## Inputs and outputs
//!
//! Inputs are `handle_*` calls: assignment changes
//! ([`handle_assigned`](Consumer::handle_assigned),
//! [`handle_revoked`](Consumer::handle_revoked),
//! [`handle_lost`](Consumer::handle_lost)), fetched records, processing
//! results, commit results, dead-letter acknowledgements, and time.
//! Outputs are [`Action`]s ([`poll_action`](Consumer::poll_action)) —
//! records to process, commits and dead-letter writes to send, partitions
//! to seek, pause or resume, a finished revocation, a stop — and
//! [`Event`]s for the history ([`poll_event`](Consumer::poll_event)).
//!
//! ## What happens when
//!
//! - **Retry**: a transient failure is retried after the policy's backoff;
//!   meanwhile only that record's partition (key, in key ordering) waits —
//!   other partitions go on. Attempts exhausted, or a permanent failure:
//!   dead-letter. A fatal failure: stop.
//! - **Dead letters**: the record's offset becomes committable only when
//!   the write is acknowledged; a failed write is retried with backoff for
//!   as long as the partition is owned and is never committed past. A
//!   [`DlqLimit`] stops the consumer instead of dead-lettering everything.
//! - **Revoke**: stop dispatching the partition, drop what is buffered, wait
//!   for in-flight records up to `revoke_timeout`, commit the completed
//!   prefix with the still-valid generation, then report
//!   [`Action::RevocationDone`].
//! - **Lost**: drop everything at once; later completions are stale and
//!   never committed.
//! - **Shutdown** (and every stop): stop fetching and dispatching, wait for
//!   in-flight records up to `shutdown_timeout`, commit the completed
//!   prefix (retried on a retriable refusal until the deadline), report
//!   [`Action::Stopped`]; the driver then leaves the group.
//! - **Refused commits** wait `commit_retry_backoff`, whatever the error.
//!   An answer that says the member is out of the generation it committed
//!   with asks for [`Action::Rejoin`], once per generation.
//! - **Pauses** are the engine's: what it paused it resumes, also when a
//!   partition released while paused is assigned again.
//!
//! Completions carry a ticket with the partition's assignment epoch: a
//! completion from an earlier assignment of a partition is dropped and
//! counted ([`Consumer::stale_completions`]).

mod config;
mod dlq;
mod offsets;
mod retry;

#[cfg(test)]
mod tests;

use bytes::Bytes;
use std::collections::{BTreeMap, BTreeSet, VecDeque};

use rustc_hash::{FxHashMap, FxHashSet};

#[cfg(feature = "known-bad")]
pub use config::KnownBad;
pub use config::{CommitStrategy, ConfigError, ConsumerConfig, OffsetReset, Ordering};
pub use dlq::{DeadLetter, DeadLetterConfig, DlqLimit};
pub use offsets::OffsetTracker;
pub use retry::{ErrorClass, ProcessingError, RetryPolicy};

use crate::events::Event;
use crate::model::{
    ErrorCode, Generation, Instant, MemberId, Offset, Record, Topic, TopicPartition,
};
use crate::rng::Rng;
use dlq::DlqCounter;

/// Where a newly assigned partition may start: its committed offset, if
/// any, and the log's bounds for the reset policy.
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StartPosition {
    /// The group's committed offset for the partition.
    pub committed: Option<Offset>,
    /// The first offset in the log.
    pub log_start: Offset,
    /// One past the last offset in the log (the high watermark).
    pub log_end: Offset,
}

/// Identifies one dispatch of one record within one assignment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Ticket {
    slot: u32,
    epoch: u32,
    offset: Offset,
    attempt: u32,
}

impl Ticket {
    /// The record's offset.
    pub fn offset(&self) -> Offset {
        self.offset
    }

    /// Which attempt this is (1 for the first).
    pub fn attempt(&self) -> u32 {
        self.attempt
    }
}

/// A record to process. Hand it back to
/// [`Consumer::handle_processed`] with the result.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dispatch {
    /// The ticket.
    pub ticket: Ticket,
    /// The record.
    pub record: Record,
}

/// Identifies a commit request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CommitId(pub u64);

/// Identifies a dead-letter write.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DeadLetterId(pub u64);

/// A commit to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommitRequest {
    /// Answer with [`Consumer::handle_commit_result`].
    pub id: CommitId,
    /// The generation to commit with.
    pub generation: Generation,
    /// The member committing.
    pub member_id: MemberId,
    /// Offsets (next to consume) per partition.
    pub offsets: Vec<(TopicPartition, Offset)>,
    /// A revocation or stop waits on this commit: send it before anything else.
    pub urgent: bool,
}

/// A dead-letter write to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeadLetterWrite {
    /// Answer with [`Consumer::handle_dead_letter_result`].
    pub id: DeadLetterId,
    /// The dead-letter topic.
    pub topic: Topic,
    /// The envelope.
    pub letter: DeadLetter,
}

/// Why the consumer stopped.
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum StopReason {
    /// [`Consumer::shutdown`] was called.
    Shutdown,
    /// A record failed with a fatal error (it is not committed).
    Fatal {
        /// Where.
        tp: TopicPartition,
        /// Which record.
        offset: Offset,
        /// The error.
        message: String,
    },
    /// Dead-lettering this record would exceed the [`DlqLimit`].
    DeadLetterLimit {
        /// Where.
        tp: TopicPartition,
        /// Which record.
        offset: Offset,
    },
    /// A record could not be processed and there is no dead-letter topic.
    NoDeadLetterTopic {
        /// Where.
        tp: TopicPartition,
        /// Which record.
        offset: Offset,
    },
}

/// Something for the driver to do.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Action {
    /// Fetch this partition from this offset.
    Seek {
        /// The partition.
        tp: TopicPartition,
        /// The offset.
        offset: Offset,
    },
    /// Process a record.
    Process(Dispatch),
    /// Send a commit.
    Commit(CommitRequest),
    /// Write to the dead-letter topic. (Boxed: a write is rare and large,
    /// and every record's [`Action::Process`] would otherwise be moved
    /// about at its size.)
    DeadLetter(Box<DeadLetterWrite>),
    /// Stop fetching from a partition.
    Pause(TopicPartition),
    /// Fetch from a partition again.
    Resume(TopicPartition),
    /// A revocation finished: tell the group membership.
    RevocationDone(Vec<TopicPartition>),
    /// The coordinator refused a commit of the current generation with an
    /// answer that means this member is no longer in that generation
    /// (`UNKNOWN_MEMBER_ID`, `ILLEGAL_GENERATION`, `REBALANCE_IN_PROGRESS`,
    /// `FENCED_INSTANCE_ID`): tell the group membership, which rejoins as
    /// Kafka's consumer does (and reports the partitions lost or revoked).
    /// Asked once per generation.
    Rejoin {
        /// The generation the refused commit was sent with.
        generation: Generation,
        /// The coordinator's answer.
        error: ErrorCode,
    },
    /// The consumer stopped; leave the group.
    Stopped(StopReason),
}

const PAUSE_BACKPRESSURE: u8 = 1;
const PAUSE_RETRY: u8 = 2;
const PAUSE_CLOSING: u8 = 4;

#[derive(Clone, Debug)]
struct Failure {
    first: Instant,
    last: Instant,
}

#[derive(Clone, Debug)]
struct Part {
    tp: TopicPartition,
    epoch: u32,
    tracker: OffsetTracker,
    buffer: VecDeque<Record>,
    in_flight: u32,
    /// Keys in processing or waiting for a retry (key ordering). Only
    /// looked up and cleared, never iterated, so hash order cannot leak.
    busy_keys: FxHashMap<Option<Bytes>, u32>,
    /// Records waiting for their retry: (due, record, next attempt).
    retries: VecDeque<(Instant, Record, u32)>,
    /// Retries that are due, dispatched before anything else.
    ready: VecDeque<(Record, u32)>,
    failures: BTreeMap<i64, Failure>,
    committed: Offset,
    commit_in_flight: bool,
    dead_letters: u32,
    revoke_deadline: Option<Instant>,
    final_commit: bool,
    pause: u8,
    /// Listed in `Consumer::dirty`: committable may be past `committed`.
    dirty: bool,
    /// Listed in `Consumer::wake`: may have records to dispatch.
    woken: bool,
}

impl Part {
    fn blocked_by_retry(&self) -> bool {
        !self.retries.is_empty()
    }

    fn idle(&self) -> bool {
        self.in_flight == 0 && self.dead_letters == 0
    }
}

#[derive(Clone, Debug)]
struct PendingCommit {
    generation: Generation,
    parts: Vec<(u32, u32, TopicPartition, Offset)>,
}

#[derive(Clone, Debug)]
struct PendingDeadLetter {
    slot: u32,
    epoch: u32,
    offset: Offset,
    letter: DeadLetter,
    writes: u32,
    retry_at: Option<Instant>,
}

#[derive(Clone, Debug)]
struct Revocation {
    tps: Vec<TopicPartition>,
    generation: Generation,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Run {
    Running,
    Stopping {
        reason: StopReason,
        deadline: Instant,
        final_sent: bool,
    },
    Stopped,
}

/// KNOWN-BAD stale re-send: when, the old generation, the old offsets.
#[cfg(feature = "known-bad")]
type StaleResend = (Instant, Generation, Vec<(TopicPartition, Offset)>);

/// The consumer engine. See the [module docs](self).
pub struct Consumer {
    config: ConsumerConfig,
    rng: Box<dyn Rng + Send>,
    member_id: MemberId,
    generation: Option<Generation>,
    slots: Vec<Option<Part>>,
    free: Vec<u32>,
    index: BTreeMap<TopicPartition, u32>,
    next_epoch: u32,
    in_flight: usize,
    actions: VecDeque<Action>,
    events: VecDeque<Event>,
    next_id: u64,
    commits: BTreeMap<CommitId, PendingCommit>,
    dead_letters: BTreeMap<DeadLetterId, PendingDeadLetter>,
    dlq_counter: DlqCounter,
    revocations: Vec<Revocation>,
    run: Run,
    last_commit_at: Instant,
    completed_since_commit: u64,
    commit_retry_at: Option<Instant>,
    /// KNOWN-BAD [`KnownBad::RetryStaleCommits`] only: failed commits to
    /// re-send as they were.
    #[cfg(feature = "known-bad")]
    stale_resends: Vec<StaleResend>,
    stale_completions: u64,
    /// Partitions whose committable offset advanced since their last commit.
    dirty: Vec<u32>,
    /// Partitions released (revoked, lost, re-assigned) while the transport
    /// had them paused: the engine asked for a pause and never for the
    /// resume. A later assignment of one resumes it (see
    /// [`Consumer::handle_assigned`]).
    left_paused: BTreeSet<TopicPartition>,
    /// The generation whose refused commit already asked for a rejoin.
    rejoin_asked: Option<Generation>,
    /// Stopping: a final commit failed with a retriable error; it is sent
    /// again after the commit backoff, until the shutdown deadline.
    final_commit_retry: bool,
    /// Partitions that may have records to dispatch.
    wake: Vec<u32>,
    /// The in-flight limit was hit: the next dispatch scans every partition.
    saturated: bool,
    cursor: usize,
    /// The last partition a fetched record went to, to skip the map lookup
    /// for the rest of its batch.
    last_fetch: Option<(TopicPartition, u32)>,
}

impl std::fmt::Debug for Consumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Consumer")
            .field("member_id", &self.member_id)
            .field("generation", &self.generation)
            .field("partitions", &self.index.keys().collect::<Vec<_>>())
            .field("in_flight", &self.in_flight)
            .field("run", &self.run)
            .finish_non_exhaustive()
    }
}

impl Consumer {
    /// A consumer engine. `rng` draws retry jitter; seed it for replay.
    ///
    /// # Errors
    /// An invalid configuration, naming the field.
    pub fn new(
        config: ConsumerConfig,
        rng: Box<dyn Rng + Send>,
        now: Instant,
    ) -> Result<Self, ConfigError> {
        config.validate()?;
        Ok(Self {
            config,
            rng,
            member_id: MemberId::unknown(),
            generation: None,
            slots: Vec::new(),
            free: Vec::new(),
            index: BTreeMap::new(),
            next_epoch: 0,
            in_flight: 0,
            actions: VecDeque::new(),
            events: VecDeque::new(),
            next_id: 0,
            commits: BTreeMap::new(),
            dead_letters: BTreeMap::new(),
            dlq_counter: DlqCounter::default(),
            revocations: Vec::new(),
            run: Run::Running,
            last_commit_at: now,
            completed_since_commit: 0,
            commit_retry_at: None,
            #[cfg(feature = "known-bad")]
            stale_resends: Vec::new(),
            stale_completions: 0,
            dirty: Vec::new(),
            left_paused: BTreeSet::new(),
            rejoin_asked: None,
            final_commit_retry: false,
            wake: Vec::new(),
            saturated: false,
            cursor: 0,
            last_fetch: None,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &ConsumerConfig {
        &self.config
    }

    /// Partitions owned, in order.
    pub fn assignment(&self) -> Vec<TopicPartition> {
        self.index.keys().cloned().collect()
    }

    /// Records in processing.
    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// Completions dropped because their assignment was gone.
    pub fn stale_completions(&self) -> u64 {
        self.stale_completions
    }

    /// The committable offset of an owned partition.
    pub fn committable(&self, tp: &TopicPartition) -> Option<Offset> {
        self.part(tp).map(|p| p.tracker.committable())
    }

    /// The last acknowledged commit of an owned partition.
    pub fn committed(&self, tp: &TopicPartition) -> Option<Offset> {
        self.part(tp).map(|p| p.committed)
    }

    /// Whether fetching an owned partition is paused (for backpressure, a
    /// retry, a revocation or a stop): what the engine's [`Action::Pause`]
    /// and [`Action::Resume`] so far have told the transport.
    pub fn is_paused(&self, tp: &TopicPartition) -> Option<bool> {
        self.part(tp).map(|p| p.pause != 0)
    }

    /// Whether the consumer has stopped.
    pub fn is_stopped(&self) -> bool {
        self.run == Run::Stopped
    }

    /// The next action.
    #[must_use]
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// The next event.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    fn part(&self, tp: &TopicPartition) -> Option<&Part> {
        self.index
            .get(tp)
            .and_then(|&s| self.slots[s as usize].as_ref())
    }

    fn valid(&self, slot: u32, epoch: u32) -> bool {
        self.slots
            .get(slot as usize)
            .and_then(Option::as_ref)
            .is_some_and(|p| p.epoch == epoch)
    }

    fn mark_dirty(&mut self, slot: u32) {
        if let Some(p) = self.slots[slot as usize].as_mut() {
            if !p.dirty {
                p.dirty = true;
                self.dirty.push(slot);
            }
        }
    }

    fn wake(&mut self, slot: u32) {
        if let Some(p) = self.slots[slot as usize].as_mut() {
            if !p.woken {
                p.woken = true;
                self.wake.push(slot);
            }
        }
    }

    fn next_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    fn running(&self) -> bool {
        self.run == Run::Running
    }

    /// The member joined a generation: commits use it from now on.
    pub fn handle_joined(&mut self, member_id: MemberId, generation: Generation) {
        self.member_id = member_id.clone();
        self.generation = Some(generation);
        self.events.push_back(Event::Joined {
            member_id,
            generation,
        });
    }

    /// The member left the group.
    pub fn handle_left(&mut self) {
        self.generation = None;
        self.events.push_back(Event::Left);
    }

    /// Partitions assigned in `generation`, each with where it may start.
    pub fn handle_assigned(
        &mut self,
        now: Instant,
        generation: Generation,
        partitions: Vec<(TopicPartition, StartPosition)>,
    ) {
        self.generation = Some(self.generation.map_or(generation, |g| g.max(generation)));
        let mut started = Vec::with_capacity(partitions.len());
        let mut resumed = Vec::new();
        for (tp, pos) in partitions {
            if let Some(&old) = self.index.get(&tp) {
                self.release(old);
            }
            let start = match pos.committed {
                Some(c) if c >= pos.log_start && c <= pos.log_end => c,
                _ => match self.config.offset_reset {
                    OffsetReset::Earliest => pos.log_start,
                    OffsetReset::Latest => pos.log_end,
                },
            };
            let epoch = self.next_epoch;
            self.next_epoch = self.next_epoch.wrapping_add(1);
            let part = Part {
                tp: tp.clone(),
                epoch,
                tracker: OffsetTracker::new(start),
                buffer: VecDeque::new(),
                in_flight: 0,
                busy_keys: FxHashMap::default(),
                retries: VecDeque::new(),
                ready: VecDeque::new(),
                failures: BTreeMap::new(),
                committed: pos.committed.unwrap_or(Offset::INVALID),
                commit_in_flight: false,
                dead_letters: 0,
                revoke_deadline: None,
                final_commit: false,
                pause: if self.running() { 0 } else { PAUSE_CLOSING },
                dirty: false,
                woken: false,
            };
            let slot = match self.free.pop() {
                Some(s) => {
                    self.slots[s as usize] = Some(part);
                    s
                }
                None => {
                    self.slots.push(Some(part));
                    (self.slots.len() - 1) as u32
                }
            };
            self.index.insert(tp.clone(), slot);
            self.actions.push_back(Action::Seek {
                tp: tp.clone(),
                offset: start,
            });
            let left_paused = self.left_paused.remove(&tp);
            if !self.running() {
                self.actions.push_back(Action::Pause(tp.clone()));
            } else if left_paused {
                // An ownership starts fetching. The transport keeps a pause
                // across assignments (the rule on `Transport`), so one this
                // engine asked for in an earlier ownership and never lifted
                // (the partition was lost or revoked while paused) is lifted
                // here; otherwise the partition would never be fetched again.
                self.actions.push_back(Action::Resume(tp.clone()));
                resumed.push(tp.clone());
            }
            started.push((tp, start));
        }
        self.last_fetch = None;
        self.events.push_back(Event::Assigned {
            partitions: started,
            generation,
        });
        for tp in resumed {
            self.events.push_back(Event::Resumed { tp });
        }
        let _ = now;
    }

    /// Partitions revoked (a rebalance): finish them, commit, then
    /// [`Action::RevocationDone`].
    pub fn handle_revoked(&mut self, now: Instant, partitions: Vec<TopicPartition>) {
        let generation = self.generation.unwrap_or(Generation::NONE);
        for tp in &partitions {
            let Some(&slot) = self.index.get(tp) else {
                continue;
            };
            let deadline = now + self.config.revoke_timeout;
            let part = self.slots[slot as usize].as_mut().expect("indexed");
            part.revoke_deadline = Some(deadline);
            Self::abandon_waiting(part);
            self.set_pause(slot, PAUSE_CLOSING, true);
        }
        self.revocations.push(Revocation {
            tps: partitions,
            generation,
        });
        self.progress(now);
    }

    /// Partitions lost (fenced, session expired): they may already be
    /// someone else's. Everything about them is dropped; nothing of them is
    /// committed.
    pub fn handle_lost(&mut self, now: Instant, partitions: Vec<TopicPartition>) {
        for tp in &partitions {
            if let Some(&slot) = self.index.get(tp) {
                self.release(slot);
            }
        }
        self.events.push_back(Event::Lost { partitions });
        self.progress(now);
    }

    /// Records from a fetch, in offset order per partition. Records for
    /// partitions not owned (or being revoked), and records below the
    /// expected offset (re-fetches), are ignored.
    pub fn handle_fetched(&mut self, now: Instant, records: impl IntoIterator<Item = Record>) {
        for record in records {
            let slot = match &self.last_fetch {
                Some((tp, slot)) if *tp == record.topic_partition => *slot,
                _ => match self.index.get(&record.topic_partition) {
                    Some(&slot) => {
                        self.last_fetch = Some((record.topic_partition.clone(), slot));
                        slot
                    }
                    None => continue,
                },
            };
            let part = self.slots[slot as usize].as_mut().expect("indexed");
            if part.revoke_deadline.is_some() || part.pause & PAUSE_CLOSING != 0 {
                continue;
            }
            if !part.tracker.fetched(record.offset) {
                continue;
            }
            if self.config.record_events {
                self.events.push_back(Event::Fetched {
                    tp: part.tp.clone(),
                    offset: record.offset,
                });
            }
            part.buffer.push_back(record);
            let full = part.buffer.len() + part.in_flight as usize
                >= self.config.max_buffered_per_partition;
            if full && part.pause & PAUSE_BACKPRESSURE == 0 {
                self.set_pause(slot, PAUSE_BACKPRESSURE, true);
            }
            self.wake(slot);
        }
        self.dispatch(now);
    }

    /// The result of processing a dispatched record.
    pub fn handle_processed(
        &mut self,
        now: Instant,
        dispatch: Dispatch,
        result: Result<(), ProcessingError>,
    ) {
        let Dispatch { ticket, record } = dispatch;
        if !self.valid(ticket.slot, ticket.epoch) {
            self.stale_completions += 1;
            self.events.push_back(Event::StaleCompletion {
                tp: record.topic_partition,
                offset: ticket.offset,
            });
            return;
        }
        if self.in_flight == self.config.max_in_flight {
            self.saturated = true;
        }
        self.in_flight -= 1;
        self.wake(ticket.slot);
        let ordering = self.config.ordering;
        let part = self.slots[ticket.slot as usize].as_mut().expect("valid");
        part.in_flight -= 1;
        match result {
            Ok(()) => {
                if ordering == Ordering::Key {
                    release_key(&mut part.busy_keys, &record.key);
                }
                part.failures.remove(&ticket.offset.0);
                let done = part.tracker.complete(ticket.offset);
                debug_assert!(done, "a valid ticket names an incomplete record");
                self.dlq_counter.succeeded();
                self.completed_since_commit += 1;
                self.mark_dirty(ticket.slot);
                if self.config.record_events {
                    self.events.push_back(Event::ProcessingSucceeded {
                        tp: record.topic_partition,
                        offset: ticket.offset,
                        attempt: ticket.attempt,
                    });
                }
            }
            Err(e) => {
                let tp = part.tp.clone();
                let f = part.failures.entry(ticket.offset.0).or_insert(Failure {
                    first: now,
                    last: now,
                });
                f.last = now;
                self.events.push_back(Event::ProcessingFailed {
                    tp: tp.clone(),
                    offset: ticket.offset,
                    attempt: ticket.attempt,
                    class: e.class,
                    message: e.message.clone(),
                });
                let part = self.slots[ticket.slot as usize].as_ref().expect("valid");
                let closing = !self.running() || part.revoke_deadline.is_some();
                match e.class {
                    // Stopping or revoking: a record that would be retried is
                    // abandoned instead — left incomplete, so never committed,
                    // and redelivered to the next owner. Dead-lettering it now
                    // would cut its retries short.
                    ErrorClass::Transient
                        if self.config.retry.retries_after(ticket.attempt) && closing => {}
                    ErrorClass::Transient if self.config.retry.retries_after(ticket.attempt) => {
                        let delay = self.config.retry.delay(ticket.attempt, &mut *self.rng);
                        let part = self.slots[ticket.slot as usize].as_mut().expect("valid");
                        // The key stays busy: nothing behind it on the key overtakes.
                        part.retries
                            .push_back((now + delay, record, ticket.attempt + 1));
                        self.events.push_back(Event::Retried {
                            tp,
                            offset: ticket.offset,
                            next_attempt: ticket.attempt + 1,
                            delay,
                        });
                        if ordering == Ordering::Partition {
                            self.set_pause(ticket.slot, PAUSE_RETRY, true);
                        }
                    }
                    ErrorClass::Transient | ErrorClass::Permanent => {
                        if ordering == Ordering::Key {
                            let part = self.slots[ticket.slot as usize].as_mut().expect("valid");
                            release_key(&mut part.busy_keys, &record.key);
                        }
                        self.dead_letter(now, ticket, record, e);
                    }
                    #[cfg(feature = "known-bad")]
                    ErrorClass::Fatal if self.config.known_bad == Some(KnownBad::SkipFatal) => {
                        // KNOWN-BAD: "log and continue" — the record counts as
                        // done and is committed past, unprocessed.
                        let part = self.slots[ticket.slot as usize].as_mut().expect("valid");
                        if ordering == Ordering::Key {
                            release_key(&mut part.busy_keys, &record.key);
                        }
                        part.failures.remove(&ticket.offset.0);
                        let _ = part.tracker.complete(ticket.offset);
                        self.completed_since_commit += 1;
                        self.mark_dirty(ticket.slot);
                    }
                    ErrorClass::Fatal => {
                        let reason = StopReason::Fatal {
                            tp,
                            offset: ticket.offset,
                            message: e.message,
                        };
                        self.stop(now, reason);
                    }
                }
            }
        }
        self.progress(now);
    }

    fn dead_letter(&mut self, now: Instant, ticket: Ticket, record: Record, e: ProcessingError) {
        let tp = record.topic_partition.clone();
        let Some(cfg) = &self.config.dead_letter else {
            return self.stop(
                now,
                StopReason::NoDeadLetterTopic {
                    tp,
                    offset: ticket.offset,
                },
            );
        };
        if self.dlq_counter.would_exceed(&cfg.limit) {
            return self.stop(
                now,
                StopReason::DeadLetterLimit {
                    tp,
                    offset: ticket.offset,
                },
            );
        }
        let topic = cfg.topic.clone();
        let part = self.slots[ticket.slot as usize].as_mut().expect("valid");
        let failure = part
            .failures
            .get(&ticket.offset.0)
            .cloned()
            .unwrap_or(Failure {
                first: now,
                last: now,
            });
        part.dead_letters += 1;
        let letter = DeadLetter {
            source: tp.clone(),
            offset: record.offset,
            key: record.key,
            value: record.value,
            headers: record.headers,
            timestamp: record.timestamp,
            error_class: e.class,
            error_message: e.message,
            attempts: ticket.attempt,
            first_failure: failure.first,
            last_failure: failure.last,
            group_id: self.config.group_id.clone(),
            member_id: self.member_id.clone(),
        };
        let id = DeadLetterId(self.next_id());
        self.dead_letters.insert(
            id,
            PendingDeadLetter {
                slot: ticket.slot,
                epoch: ticket.epoch,
                offset: ticket.offset,
                letter: letter.clone(),
                writes: 1,
                retry_at: None,
            },
        );
        self.events.push_back(Event::DeadLetterRequested {
            tp,
            offset: ticket.offset,
        });
        self.actions
            .push_back(Action::DeadLetter(Box::new(DeadLetterWrite {
                id,
                topic,
                letter,
            })));
    }

    /// The dead-letter topic answered a write.
    pub fn handle_dead_letter_result(
        &mut self,
        now: Instant,
        id: DeadLetterId,
        result: Result<(), ErrorCode>,
    ) {
        let Some(p) = self.dead_letters.get(&id) else {
            return;
        };
        if !self.valid(p.slot, p.epoch) {
            // The partition is gone; its record stays uncommitted here and
            // will be redelivered to its next owner.
            self.dead_letters.remove(&id);
            return;
        }
        match result {
            Ok(()) => {
                let p = self.dead_letters.remove(&id).expect("present");
                let part = self.slots[p.slot as usize].as_mut().expect("valid");
                part.dead_letters -= 1;
                part.failures.remove(&p.offset.0);
                let done = part.tracker.complete(p.offset);
                debug_assert!(
                    done,
                    "a dead-lettered record is incomplete until acknowledged"
                );
                self.dlq_counter.dead_lettered();
                self.completed_since_commit += 1;
                let slot = p.slot;
                self.events.push_back(Event::DeadLettered {
                    tp: part.tp.clone(),
                    offset: p.offset,
                    attempts: p.letter.attempts,
                });
                self.mark_dirty(slot);
            }
            #[cfg(feature = "known-bad")]
            Err(error) if self.config.known_bad == Some(KnownBad::SkipFailedDeadLetter) => {
                // KNOWN-BAD: "log and continue" — the record counts as done
                // and is committed past, neither processed nor dead-lettered.
                let p = self.dead_letters.remove(&id).expect("present");
                let part = self.slots[p.slot as usize].as_mut().expect("valid");
                part.dead_letters -= 1;
                part.failures.remove(&p.offset.0);
                let _ = part.tracker.complete(p.offset);
                self.completed_since_commit += 1;
                self.events.push_back(Event::DeadLetterFailed {
                    tp: p.letter.source.clone(),
                    offset: p.offset,
                    error,
                });
                self.mark_dirty(p.slot);
            }
            Err(error) => {
                let backoff = self
                    .config
                    .dead_letter
                    .as_ref()
                    .map(|d| d.write_backoff.clone())
                    .unwrap_or_default();
                let p = self.dead_letters.get_mut(&id).expect("present");
                let delay = backoff.delay(p.writes, &mut *self.rng);
                p.writes += 1;
                p.retry_at = Some(now + delay);
                self.events.push_back(Event::DeadLetterFailed {
                    tp: p.letter.source.clone(),
                    offset: p.offset,
                    error,
                });
            }
        }
        self.progress(now);
    }

    /// A commit was answered.
    pub fn handle_commit_result(
        &mut self,
        now: Instant,
        id: CommitId,
        result: Result<(), ErrorCode>,
    ) {
        let Some(pc) = self.commits.remove(&id) else {
            return;
        };
        #[cfg(feature = "known-bad")]
        let stale: Vec<(TopicPartition, Offset)> = pc
            .parts
            .iter()
            .map(|(_, _, tp, o)| (tp.clone(), *o))
            .collect();
        for (slot, epoch, tp, offset) in pc.parts {
            if !self.valid(slot, epoch) {
                continue;
            }
            let part = self.slots[slot as usize].as_mut().expect("valid");
            part.commit_in_flight = false;
            match result {
                Ok(()) => {
                    if offset > part.committed {
                        part.committed = offset;
                    }
                    self.events.push_back(Event::Committed {
                        tp,
                        offset,
                        generation: pc.generation,
                    });
                }
                Err(error) => {
                    self.events.push_back(Event::CommitFailed {
                        tp,
                        offset,
                        generation: pc.generation,
                        error,
                    });
                }
            }
            let part = self.slots[slot as usize].as_ref().expect("valid");
            if part.tracker.committable() > part.committed {
                self.mark_dirty(slot);
            }
        }
        if let Err(e) = result {
            #[cfg(feature = "known-bad")]
            let stale_resend =
                e.is_retriable() && self.config.known_bad == Some(KnownBad::RetryStaleCommits);
            #[cfg(not(feature = "known-bad"))]
            let stale_resend = false;
            if stale_resend {
                // KNOWN-BAD: re-send the same offsets later from the
                // "callback", while newer commits go ahead meanwhile.
                #[cfg(feature = "known-bad")]
                self.stale_resends.push((
                    now + self.config.commit_retry_backoff * 3,
                    pc.generation,
                    stale,
                ));
            } else {
                // Every refused commit waits its backoff, retriable or not.
                // Re-sent at once, a commit the coordinator will refuse
                // again (UNKNOWN_MEMBER_ID, ILLEGAL_GENERATION) became a
                // loop that kept the driver from ever reading the rebalance
                // that would end it (issue 14).
                self.commit_retry_at = Some(now + self.config.commit_retry_backoff);
            }
            // A final commit is retried on what may pass: a retriable error,
            // or REBALANCE_IN_PROGRESS — members stopping together (a
            // rolling stop, the end of a run) rebalance the group under
            // each other's last commits, which the coordinator takes again
            // once the rebalance moves on (or refuses for good).
            if (e.is_retriable() || e == ErrorCode::RebalanceInProgress)
                && matches!(self.run, Run::Stopping { .. })
            {
                self.final_commit_retry = true;
            }
            if out_of_generation(e)
                && self.running()
                && Some(pc.generation) == self.generation
                && self.rejoin_asked != Some(pc.generation)
            {
                self.rejoin_asked = Some(pc.generation);
                self.events.push_back(Event::RejoinRequested {
                    generation: pc.generation,
                    error: e,
                });
                self.actions.push_back(Action::Rejoin {
                    generation: pc.generation,
                    error: e,
                });
            }
        }
        self.progress(now);
    }

    /// Graceful shutdown: stop fetching and dispatching, drain in-flight
    /// records until the shutdown timeout, commit the completed prefix,
    /// then [`Action::Stopped`].
    pub fn shutdown(&mut self, now: Instant) {
        self.stop(now, StopReason::Shutdown);
    }

    fn stop(&mut self, now: Instant, reason: StopReason) {
        if !self.running() {
            return;
        }
        self.run = Run::Stopping {
            reason,
            deadline: now + self.config.shutdown_timeout,
            final_sent: false,
        };
        for slot in 0..self.slots.len() as u32 {
            if let Some(part) = self.slots[slot as usize].as_mut() {
                Self::abandon_waiting(part);
                self.set_pause(slot, PAUSE_CLOSING, true);
            }
        }
        self.progress(now);
    }

    /// Drops buffered records and waiting retries: they were not finished,
    /// so they stay uncommitted and are redelivered to the next owner.
    fn abandon_waiting(part: &mut Part) {
        part.buffer.clear();
        part.retries.clear();
        part.ready.clear();
        part.busy_keys.clear();
    }

    /// When [`handle_timeout`](Self::handle_timeout) next has work.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let mut next: Option<Instant> = None;
        let mut at = |t: Instant| next = Some(next.map_or(t, |n: Instant| n.min(t)));
        for part in self.slots.iter().flatten() {
            if let Some(t) = part.retries.iter().map(|r| r.0).min() {
                at(t);
            }
            if let Some(d) = part.revoke_deadline {
                if !part.final_commit {
                    at(d);
                }
            }
        }
        for p in self.dead_letters.values() {
            if let Some(t) = p.retry_at {
                at(t);
            }
        }
        if let Run::Stopping {
            deadline,
            final_sent: false,
            ..
        } = self.run
        {
            at(deadline);
        }
        if let Some(t) = self.commit_retry_at {
            at(t);
        }
        #[cfg(feature = "known-bad")]
        if let Some(t) = self.stale_resends.iter().map(|r| r.0).min() {
            at(t);
        }
        // While a commit retry is pending it is the commit timer (periodic
        // commits wait for it), so a driver never spins on a timer that
        // cannot act.
        if let (CommitStrategy::Periodic { interval, .. }, None) =
            (self.config.commit, self.commit_retry_at)
        {
            if self.running() && !self.dirty.is_empty() {
                at(self.last_commit_at + interval);
            }
        }
        // Same rule as periodic commits: only a timer that can act.
        #[cfg(feature = "known-bad")]
        if let (CommitStrategy::KnownBadAutoCommitFetched { interval }, None) =
            (self.config.commit, self.commit_retry_at)
        {
            if self.running() && self.generation.is_some() && !self.index.is_empty() {
                at(self.last_commit_at + interval);
            }
        }
        next
    }

    /// Fires due timers: retries, dead-letter rewrites, revocation and
    /// shutdown deadlines, commit retries and periodic commits.
    pub fn handle_timeout(&mut self, now: Instant) {
        for slot in 0..self.slots.len() as u32 {
            let Some(part) = self.slots[slot as usize].as_mut() else {
                continue;
            };
            // Retries are due in order of scheduling per partition; pull every due one.
            let mut due = Vec::new();
            let mut i = 0;
            while i < part.retries.len() {
                if part.retries[i].0 <= now {
                    let (_, r, a) = part.retries.remove(i).expect("in range");
                    due.push((r, a));
                } else {
                    i += 1;
                }
            }
            let any = !due.is_empty();
            part.ready.extend(due);
            if part.retries.is_empty() && part.pause & PAUSE_RETRY != 0 {
                self.set_pause(slot, PAUSE_RETRY, false);
            }
            if any {
                self.wake(slot);
            }
        }
        let due: Vec<DeadLetterId> = self
            .dead_letters
            .iter()
            .filter(|(_, p)| p.retry_at.is_some_and(|t| t <= now))
            .map(|(id, _)| *id)
            .collect();
        let topic = self.config.dead_letter.as_ref().map(|d| d.topic.clone());
        for id in due {
            let p = self.dead_letters.get_mut(&id).expect("listed");
            p.retry_at = None;
            if let Some(topic) = topic.clone() {
                self.actions
                    .push_back(Action::DeadLetter(Box::new(DeadLetterWrite {
                        id,
                        topic,
                        letter: p.letter.clone(),
                    })));
            }
        }
        if self.commit_retry_at.is_some_and(|t| t <= now) {
            self.commit_retry_at = None;
        }
        #[cfg(feature = "known-bad")]
        {
            let (due, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.stale_resends)
                .into_iter()
                .partition(|r| r.0 <= now);
            self.stale_resends = later;
            for (_, generation, offsets) in due {
                self.resend_stale(generation, offsets);
            }
        }
        self.progress(now);
    }

    /// After any input: commit if due, move revocations and shutdown
    /// along, dispatch.
    fn progress(&mut self, now: Instant) {
        self.check_revocations(now);
        self.check_stopping(now);
        if self.running() {
            self.maybe_commit(now);
            self.dispatch(now);
        }
    }

    /// Resumes fetching a partition paused for backpressure once it is
    /// down to half its buffer.
    fn relieve(&mut self, slot: u32) {
        let low = self.config.max_buffered_per_partition / 2;
        let Some(part) = self.slots[slot as usize].as_ref() else {
            return;
        };
        if part.pause & PAUSE_BACKPRESSURE != 0
            && part.buffer.len() + (part.in_flight as usize) <= low
        {
            self.set_pause(slot, PAUSE_BACKPRESSURE, false);
        }
    }

    fn set_pause(&mut self, slot: u32, flag: u8, on: bool) {
        let part = self.slots[slot as usize].as_mut().expect("slot in use");
        let before = part.pause;
        if on {
            part.pause |= flag;
        } else {
            part.pause &= !flag;
        }
        match (before == 0, part.pause == 0) {
            (true, false) => {
                self.actions.push_back(Action::Pause(part.tp.clone()));
                self.events.push_back(Event::Paused {
                    tp: part.tp.clone(),
                });
            }
            (false, true) => {
                self.actions.push_back(Action::Resume(part.tp.clone()));
                self.events.push_back(Event::Resumed {
                    tp: part.tp.clone(),
                });
            }
            _ => {}
        }
    }

    /// Dispatches from the partitions that were woken (new records, a
    /// completion, a due retry) — or from all of them, starting at a
    /// rotating cursor, after the global in-flight limit freed up.
    fn dispatch(&mut self, _now: Instant) {
        if !self.running() || self.slots.is_empty() {
            return;
        }
        let mut woken = std::mem::take(&mut self.wake);
        for &slot in &woken {
            if let Some(p) = self.slots[slot as usize].as_mut() {
                p.woken = false;
            }
        }
        if std::mem::take(&mut self.saturated) {
            let n = self.slots.len();
            self.cursor = (self.cursor + 1) % n;
            woken.clear();
            woken.extend((0..n).map(|k| ((self.cursor + k) % n) as u32));
        }
        for &slot in &woken {
            if self.in_flight >= self.config.max_in_flight {
                // Whoever could not go now must be looked at again later.
                self.saturated = true;
                break;
            }
            match self.config.ordering {
                Ordering::Partition => self.dispatch_partition(slot),
                Ordering::Key => self.dispatch_keys(slot),
            }
            self.relieve(slot);
        }
        // The list is kept for its capacity: no allocation per dispatch.
        if self.wake.is_empty() {
            woken.clear();
            self.wake = woken;
        }
    }

    fn dispatch_partition(&mut self, slot: u32) {
        let Some(part) = self.slots[slot as usize].as_mut() else {
            return;
        };
        if part.revoke_deadline.is_some() || part.in_flight > 0 {
            return;
        }
        let next = match part.ready.pop_front() {
            Some(r) => r,
            None if part.blocked_by_retry() => return,
            None => match part.buffer.pop_front() {
                Some(r) => (r, 1),
                None => return,
            },
        };
        self.emit_process(slot, next.0, next.1);
    }

    fn dispatch_keys(&mut self, slot: u32) {
        let max_pp = self.config.max_in_flight_per_partition as u32;
        let max = self.config.max_in_flight;
        let Some(part) = self.slots[slot as usize].as_mut() else {
            return;
        };
        if part.revoke_deadline.is_some() {
            return;
        }
        let mut out = Vec::new();
        let mut in_flight = self.in_flight;
        // Due retries first: their keys are already busy, nothing overtakes them.
        while part.in_flight + (out.len() as u32) < max_pp && in_flight < max {
            let Some(r) = part.ready.pop_front() else {
                break;
            };
            out.push(r);
            in_flight += 1;
        }
        // Then buffered records whose key is free and not behind a skipped
        // record of the same key, scanning a bounded window.
        // Lookup only, never iterated.
        let mut skipped: FxHashSet<Option<Bytes>> = FxHashSet::default();
        let mut i = 0;
        let window = (4 * max_pp as usize).max(64);
        while i < part.buffer.len().min(window)
            && part.in_flight + (out.len() as u32) < max_pp
            && in_flight < max
        {
            let key = &part.buffer[i].key;
            if skipped.contains(key) {
                i += 1;
                continue;
            }
            if part.busy_keys.contains_key(key) {
                skipped.insert(key.clone());
                i += 1;
                continue;
            }
            let r = part.buffer.remove(i).expect("in range");
            *part.busy_keys.entry(r.key.clone()).or_default() += 1;
            out.push((r, 1));
            in_flight += 1;
        }
        for (r, attempt) in out {
            self.emit_process(slot, r, attempt);
        }
    }

    fn emit_process(&mut self, slot: u32, record: Record, attempt: u32) {
        let part = self.slots[slot as usize].as_mut().expect("slot in use");
        part.in_flight += 1;
        self.in_flight += 1;
        let ticket = Ticket {
            slot,
            epoch: part.epoch,
            offset: record.offset,
            attempt,
        };
        if self.config.record_events {
            self.events.push_back(Event::ProcessingStarted {
                tp: part.tp.clone(),
                offset: record.offset,
                attempt,
            });
        }
        self.actions
            .push_back(Action::Process(Dispatch { ticket, record }));
    }

    /// Strategy-driven commits while running.
    fn maybe_commit(&mut self, now: Instant) {
        if self.commit_retry_at.is_some() {
            return;
        }
        let due = match self.config.commit {
            CommitStrategy::PerRecord => true,
            CommitStrategy::Periodic { records, interval } => {
                self.completed_since_commit >= u64::from(records)
                    || now >= self.last_commit_at + interval
            }
            CommitStrategy::OnRevokeAndShutdown => false,
            #[cfg(feature = "known-bad")]
            CommitStrategy::KnownBadAutoCommitFetched { interval } => {
                if now >= self.last_commit_at + interval {
                    self.known_bad_commit_fetched(now);
                }
                return;
            }
        };
        if !due {
            return;
        }
        let slots: Vec<u32> = std::mem::take(&mut self.dirty);
        for &s in &slots {
            if let Some(p) = self.slots[s as usize].as_mut() {
                p.dirty = false;
            }
        }
        // Revoking partitions commit through their revocation.
        let slots: Vec<u32> = slots
            .into_iter()
            .filter(|&s| {
                self.slots[s as usize]
                    .as_ref()
                    .is_some_and(|p| p.revoke_deadline.is_none())
            })
            .collect();
        if self.commit_slots(now, &slots, false) {
            self.completed_since_commit = 0;
            self.last_commit_at = now;
        }
    }

    /// The known-bad auto-commit: the *fetched* position of every partition,
    /// whatever was processed. See [`CommitStrategy::KnownBadAutoCommitFetched`].
    #[cfg(feature = "known-bad")]
    fn known_bad_commit_fetched(&mut self, now: Instant) {
        let Some(generation) = self.generation else {
            return;
        };
        self.last_commit_at = now;
        let mut parts = Vec::new();
        for (slot, part) in self.slots.iter_mut().enumerate() {
            let Some(part) = part.as_mut() else { continue };
            let offset = part.tracker.next_fetch();
            if part.commit_in_flight || part.revoke_deadline.is_some() || offset <= part.committed {
                continue;
            }
            part.commit_in_flight = true;
            parts.push((slot as u32, part.epoch, part.tp.clone(), offset));
        }
        self.send_commit(generation, parts, false);
    }

    /// KNOWN-BAD ([`KnownBad::RetryStaleCommits`]): re-sends old offsets
    /// as they were, whatever was committed since.
    #[cfg(feature = "known-bad")]
    fn resend_stale(&mut self, generation: Generation, offsets: Vec<(TopicPartition, Offset)>) {
        let mut parts = Vec::new();
        for (tp, offset) in offsets {
            if let Some(&slot) = self.index.get(&tp) {
                let part = self.slots[slot as usize].as_ref().expect("indexed");
                parts.push((slot, part.epoch, tp, offset));
            }
        }
        self.send_commit(generation, parts, false);
    }

    /// Sends one commit request for `parts` (slot, epoch, partition,
    /// offset), already marked in flight. Returns false if there is none.
    fn send_commit(
        &mut self,
        generation: Generation,
        parts: Vec<(u32, u32, TopicPartition, Offset)>,
        urgent: bool,
    ) -> bool {
        if parts.is_empty() {
            return false;
        }
        let id = CommitId(self.next_id());
        for (_, _, tp, offset) in &parts {
            self.events.push_back(Event::CommitRequested {
                tp: tp.clone(),
                offset: *offset,
                generation,
            });
        }
        let offsets = parts.iter().map(|(_, _, tp, o)| (tp.clone(), *o)).collect();
        self.actions.push_back(Action::Commit(CommitRequest {
            id,
            generation,
            member_id: self.member_id.clone(),
            offsets,
            urgent,
        }));
        self.commits.insert(id, PendingCommit { generation, parts });
        true
    }

    /// Commits the committable offset of each slot that has advanced and
    /// has no commit in flight. Returns whether a commit was sent.
    fn commit_slots(&mut self, now: Instant, slots: &[u32], urgent: bool) -> bool {
        let Some(generation) = self.generation else {
            return false;
        };
        self.commit_slots_in(now, generation, slots, urgent)
    }

    /// [`commit_slots`](Self::commit_slots) with `generation`.
    fn commit_slots_in(
        &mut self,
        _now: Instant,
        generation: Generation,
        slots: &[u32],
        urgent: bool,
    ) -> bool {
        let mut parts = Vec::new();
        for &slot in slots {
            let Some(part) = self.slots[slot as usize].as_mut() else {
                continue;
            };
            let offset = part.tracker.committable();
            if offset <= part.committed {
                continue;
            }
            if part.commit_in_flight {
                // One commit in flight per partition: this one waits its turn
                // (re-marked dirty when the first is answered).
                continue;
            }
            part.commit_in_flight = true;
            parts.push((slot, part.epoch, part.tp.clone(), offset));
        }
        self.send_commit(generation, parts, urgent)
    }

    /// Revocations: once a revoked partition is idle (or its deadline
    /// passed) commit its completed prefix, and once that commit is
    /// answered release it. When all of a revocation's partitions are
    /// released, report it done.
    fn check_revocations(&mut self, now: Instant) {
        let mut i = 0;
        while i < self.revocations.len() {
            let tps = self.revocations[i].tps.clone();
            let generation = self.revocations[i].generation;
            let mut to_commit = Vec::new();
            let mut pending = false;
            for tp in &tps {
                let Some(&slot) = self.index.get(tp) else {
                    continue;
                };
                let part = self.slots[slot as usize].as_mut().expect("indexed");
                let Some(deadline) = part.revoke_deadline else {
                    continue;
                };
                if !part.final_commit {
                    if part.idle() || now >= deadline {
                        part.final_commit = true;
                        to_commit.push(slot);
                    }
                    pending = true;
                } else if part.commit_in_flight {
                    pending = true;
                } else {
                    self.release(slot);
                }
            }
            if !to_commit.is_empty() {
                // With the generation that owned them when the revocation
                // began, never a newer one this member joined meanwhile: in
                // that one they may be another member's, and a commit the
                // coordinator accepted from this member there would move
                // the new owner's offset (issue 14; Kafka's consumer commits
                // in onPartitionsRevoked before it sends its JoinGroup).
                self.commit_slots_in(now, generation, &to_commit, true);
                // Partitions with nothing to commit can go at once.
                for slot in to_commit {
                    if self.slots[slot as usize]
                        .as_ref()
                        .is_some_and(|p| !p.commit_in_flight)
                    {
                        self.release(slot);
                    }
                }
                pending = tps.iter().any(|tp| self.index.contains_key(tp));
            }
            if pending {
                i += 1;
            } else {
                let r = self.revocations.remove(i);
                self.events.push_back(Event::Revoked {
                    partitions: r.tps.clone(),
                    generation: r.generation,
                });
                self.actions.push_back(Action::RevocationDone(r.tps));
            }
        }
    }

    /// Stopping: once idle (or at the deadline) commit every completed
    /// prefix; once answered, stopped.
    fn check_stopping(&mut self, now: Instant) {
        let Run::Stopping {
            deadline,
            final_sent,
            ..
        } = &self.run
        else {
            return;
        };
        let (deadline, final_sent) = (*deadline, *final_sent);
        if !final_sent {
            let idle = self.in_flight == 0
                && self
                    .dead_letters
                    .values()
                    .all(|p| !self.valid(p.slot, p.epoch));
            if !(idle || now >= deadline) {
                return;
            }
            let slots: Vec<u32> = self.index.values().copied().collect();
            self.commit_slots(now, &slots, true);
            if let Run::Stopping { final_sent, .. } = &mut self.run {
                *final_sent = true;
            }
        }
        if self.commits.is_empty() && self.final_commit_retry && now < deadline {
            // A final commit refused with a retriable error (the
            // coordinator moving, a timeout) is tried again until the
            // shutdown deadline, as Kafka's close() retries its commitSync:
            // given up at once, a graceful stop left work uncommitted.
            if self.commit_retry_at.is_some_and(|t| t > now) {
                return;
            }
            self.final_commit_retry = false;
            let slots: Vec<u32> = self.index.values().copied().collect();
            if self.commit_slots(now, &slots, true) {
                return;
            }
        }
        if self.commits.is_empty() {
            let Run::Stopping { reason, .. } = std::mem::replace(&mut self.run, Run::Stopped)
            else {
                unreachable!()
            };
            self.events.push_back(Event::Stopped {
                reason: reason.clone(),
            });
            self.actions.push_back(Action::Stopped(reason));
        }
    }

    /// Forgets a partition: its in-flight records are abandoned (their
    /// completions will be stale), pending dead-letter writes dropped.
    fn release(&mut self, slot: u32) {
        let Some(part) = self.slots[slot as usize].take() else {
            return;
        };
        if part.pause != 0 {
            self.left_paused.insert(part.tp.clone());
        }
        self.in_flight -= part.in_flight as usize;
        self.index.remove(&part.tp);
        self.dead_letters.retain(|_, p| p.slot != slot);
        self.free.push(slot);
        self.last_fetch = None;
    }
}

/// A commit answer that means the member is not in the generation it
/// committed with: Kafka's consumer resets its generation and rejoins on
/// `UNKNOWN_MEMBER_ID` and `ILLEGAL_GENERATION`, rejoins on
/// `REBALANCE_IN_PROGRESS`, and stops on `FENCED_INSTANCE_ID`
/// (`ConsumerCoordinator.OffsetCommitResponseHandler`).
fn out_of_generation(e: ErrorCode) -> bool {
    matches!(
        e,
        ErrorCode::UnknownMemberId
            | ErrorCode::IllegalGeneration
            | ErrorCode::RebalanceInProgress
            | ErrorCode::FencedInstanceId
    )
}

fn release_key(busy: &mut FxHashMap<Option<Bytes>, u32>, key: &Option<Bytes>) {
    if let Some(c) = busy.get_mut(key) {
        *c -= 1;
        if *c == 0 {
            busy.remove(key);
        }
    }
}
