//! The events a client emits: the reference consumer's engine and a
//! workload's producer. A run's history (`ruckus-history`) holds these,
//! each stamped with its time and emitting host, beside what the brokers
//! did and the faults applied; the checkers judge runs from it alone.

use std::time::Duration;

use crate::consumer::{ErrorClass, StopReason};
use crate::model::{ErrorCode, Generation, MemberId, Offset, TopicPartition};

/// Something that happened, as data.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// A producer's write was acknowledged (acks=all) at this offset.
    Produced {
        /// Where.
        tp: TopicPartition,
        /// Offset given by the broker.
        offset: Offset,
    },
    /// The consumer received a record.
    Fetched {
        /// Where.
        tp: TopicPartition,
        /// Which.
        offset: Offset,
    },
    /// Processing of a record started.
    ProcessingStarted {
        /// Where.
        tp: TopicPartition,
        /// Which.
        offset: Offset,
        /// 1 for the first try.
        attempt: u32,
    },
    /// Processing succeeded.
    ProcessingSucceeded {
        /// Where.
        tp: TopicPartition,
        /// Which.
        offset: Offset,
        /// Which try.
        attempt: u32,
    },
    /// Processing failed.
    ProcessingFailed {
        /// Where.
        tp: TopicPartition,
        /// Which.
        offset: Offset,
        /// Which try.
        attempt: u32,
        /// The error's class.
        class: ErrorClass,
        /// The error's message.
        message: String,
    },
    /// A failed record will be tried again after `delay`.
    Retried {
        /// Where.
        tp: TopicPartition,
        /// Which.
        offset: Offset,
        /// The next attempt's number.
        next_attempt: u32,
        /// The backoff.
        delay: Duration,
    },
    /// A dead-letter write was sent.
    DeadLetterRequested {
        /// Where the record came from.
        tp: TopicPartition,
        /// Which.
        offset: Offset,
    },
    /// The dead-letter topic acknowledged the record: it may be committed past.
    DeadLettered {
        /// Where the record came from.
        tp: TopicPartition,
        /// Which.
        offset: Offset,
        /// Processing attempts made.
        attempts: u32,
    },
    /// A dead-letter write failed; it will be retried, never committed past.
    DeadLetterFailed {
        /// Where the record came from.
        tp: TopicPartition,
        /// Which.
        offset: Offset,
        /// The produce error.
        error: ErrorCode,
    },
    /// A completion for an assignment that is gone was dropped.
    StaleCompletion {
        /// Where.
        tp: TopicPartition,
        /// Which.
        offset: Offset,
    },
    /// A commit was sent.
    CommitRequested {
        /// Where.
        tp: TopicPartition,
        /// The committed offset (next to consume).
        offset: Offset,
        /// The generation it was sent with.
        generation: Generation,
    },
    /// A commit was acknowledged.
    Committed {
        /// Where.
        tp: TopicPartition,
        /// The committed offset (next to consume).
        offset: Offset,
        /// The generation it was sent with.
        generation: Generation,
    },
    /// A commit failed.
    CommitFailed {
        /// Where.
        tp: TopicPartition,
        /// The offset that was not committed.
        offset: Offset,
        /// The generation it was sent with.
        generation: Generation,
        /// Why.
        error: ErrorCode,
    },
    /// The coordinator refused a commit in a way that says this member is
    /// out of the generation it committed with; the consumer asked its
    /// group membership to rejoin.
    RejoinRequested {
        /// The generation of the refused commit.
        generation: Generation,
        /// The coordinator's answer.
        error: ErrorCode,
    },
    /// Partitions assigned to this consumer.
    Assigned {
        /// Partitions with the offset consumption starts from.
        partitions: Vec<(TopicPartition, Offset)>,
        /// The owning generation.
        generation: Generation,
    },
    /// Partitions revoked from this consumer (it finished with them).
    Revoked {
        /// The partitions.
        partitions: Vec<TopicPartition>,
        /// The generation that owned them.
        generation: Generation,
    },
    /// Partitions lost (possibly already someone else's).
    Lost {
        /// The partitions.
        partitions: Vec<TopicPartition>,
    },
    /// The consumer joined a generation of its group.
    Joined {
        /// Its member id.
        member_id: MemberId,
        /// The generation.
        generation: Generation,
    },
    /// The consumer left its group.
    Left,
    /// Fetching from a partition paused (backpressure, retry, shutdown).
    Paused {
        /// The partition.
        tp: TopicPartition,
    },
    /// Fetching from a partition resumed.
    Resumed {
        /// The partition.
        tp: TopicPartition,
    },
    /// The consumer stopped.
    Stopped {
        /// Why.
        reason: StopReason,
    },
}
