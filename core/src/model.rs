//! Identifiers, records, time and Kafka's error codes, as plain data.

use std::fmt;
use std::ops::{Add, Sub};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
        #[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(Arc<str>);

        impl $name {
            /// Creates the identifier from a string.
            pub fn new(s: impl AsRef<str>) -> Self {
                Self(Arc::from(s.as_ref()))
            }

            /// The identifier as a string slice.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(&*self.0, f)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                Self::new(s)
            }
        }

        impl From<String> for $name {
            fn from(s: String) -> Self {
                Self(Arc::from(s))
            }
        }
    };
}

string_id!(
    /// A topic name.
    Topic
);
string_id!(
    /// A consumer group id (`group.id`).
    GroupId
);
string_id!(
    /// A member id handed out by the group coordinator. The empty id means
    /// "not yet known" in a JoinGroup request, as in Kafka.
    MemberId
);
string_id!(
    /// A static member's `group.instance.id` (KIP-345).
    InstanceId
);

impl MemberId {
    /// The empty member id a new member sends in its first JoinGroup.
    pub fn unknown() -> Self {
        Self::new("")
    }

    /// Whether this is the empty, not-yet-assigned member id.
    pub fn is_unknown(&self) -> bool {
        self.0.is_empty()
    }
}

/// A partition number within a topic.
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Partition(pub i32);

impl fmt::Display for Partition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

/// A record offset within a partition. Committed offsets name the *next*
/// record to consume, as in Kafka.
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Offset(pub i64);

impl Offset {
    /// Kafka's "no offset" (−1), returned by OffsetFetch when nothing was
    /// committed.
    pub const INVALID: Offset = Offset(-1);

    /// The offset after this one.
    #[must_use]
    pub fn next(self) -> Offset {
        Offset(self.0 + 1)
    }
}

impl fmt::Display for Offset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

/// A group generation. It increments each time a join phase completes.
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Generation(pub i32);

impl Generation {
    /// The generation (−1) a client uses when it is not part of a managed
    /// group; OffsetCommit accepts it only for an Empty group.
    pub const NONE: Generation = Generation(-1);
}

impl fmt::Display for Generation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

/// A topic and one of its partitions.
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TopicPartition {
    /// The topic.
    pub topic: Topic,
    /// The partition.
    pub partition: Partition,
}

impl TopicPartition {
    /// Creates a topic-partition.
    pub fn new(topic: impl Into<Topic>, partition: i32) -> Self {
        Self {
            topic: topic.into(),
            partition: Partition(partition),
        }
    }
}

impl fmt::Debug for TopicPartition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.topic, self.partition)
    }
}

impl fmt::Display for TopicPartition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.topic, self.partition)
    }
}

/// A point on the caller's clock, in milliseconds from an origin the caller
/// chooses (the start of a simulation, or process start for real runs).
///
/// Core never reads a clock; every time-dependent input takes one of these.
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Instant(u64);

impl Instant {
    /// The origin of the clock.
    pub const ZERO: Instant = Instant(0);

    /// An instant `millis` milliseconds after the origin.
    pub const fn from_millis(millis: u64) -> Self {
        Self(millis)
    }

    /// Milliseconds since the origin.
    pub const fn as_millis(self) -> u64 {
        self.0
    }

    /// The time from `earlier` to `self`, or zero if `earlier` is later.
    pub fn saturating_duration_since(self, earlier: Instant) -> Duration {
        Duration::from_millis(self.0.saturating_sub(earlier.0))
    }
}

impl Add<Duration> for Instant {
    type Output = Instant;
    fn add(self, rhs: Duration) -> Instant {
        let ms = u64::try_from(rhs.as_millis()).unwrap_or(u64::MAX);
        Instant(self.0.saturating_add(ms))
    }
}

impl Sub<Duration> for Instant {
    type Output = Instant;
    fn sub(self, rhs: Duration) -> Instant {
        let ms = u64::try_from(rhs.as_millis()).unwrap_or(u64::MAX);
        Instant(self.0.saturating_sub(ms))
    }
}

impl fmt::Display for Instant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:03}s", self.0 / 1000, self.0 % 1000)
    }
}

/// A record header.
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    /// Header name.
    pub key: String,
    /// Header value; Kafka allows a null value.
    pub value: Option<Bytes>,
}

/// A record timestamp: milliseconds since the Unix epoch, as Kafka stores it.
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(pub i64);

/// A consumed record.
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// Where the record lives.
    pub topic_partition: TopicPartition,
    /// Its offset in the partition.
    pub offset: Offset,
    /// Key; Kafka allows a null key.
    pub key: Option<Bytes>,
    /// Value; Kafka allows a null value (a tombstone).
    pub value: Option<Bytes>,
    /// Headers, in order.
    pub headers: Vec<Header>,
    /// Create or log-append time.
    pub timestamp: Timestamp,
}

macro_rules! error_codes {
    ($( $(#[$doc:meta])* $variant:ident = $code:literal, $retriable:literal; )*) => {
        /// A Kafka protocol error code, as data, with Kafka's own numbers.
        ///
        /// Codes this enum does not name are kept as [`ErrorCode::Other`] so
        /// that a broker's answer is never lost or turned into a panic.
        #[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        #[non_exhaustive]
        pub enum ErrorCode {
            $( $(#[$doc])* $variant, )*
            /// A code this enum does not name.
            Other(i16),
        }

        impl ErrorCode {
            /// Builds the code from Kafka's number.
            pub fn from_code(code: i16) -> Self {
                match code {
                    $( $code => ErrorCode::$variant, )*
                    other => ErrorCode::Other(other),
                }
            }

            /// Kafka's number for this code.
            pub fn code(self) -> i16 {
                match self {
                    $( ErrorCode::$variant => $code, )*
                    ErrorCode::Other(c) => c,
                }
            }

            /// Whether Kafka classifies the error as retriable (its exception
            /// extends `RetriableException`): the same request may succeed if
            /// sent again, possibly after refreshing metadata. Unknown codes
            /// are not retriable.
            pub fn is_retriable(self) -> bool {
                match self {
                    $( ErrorCode::$variant => $retriable, )*
                    ErrorCode::Other(_) => false,
                }
            }
        }
    };
}

error_codes! {
    /// −1: an unexpected server error.
    UnknownServerError = -1, false;
    /// 0: no error.
    None = 0, false;
    /// 1: the requested offset is outside the log.
    OffsetOutOfRange = 1, false;
    /// 2: a record failed its CRC check or is otherwise corrupt.
    CorruptMessage = 2, true;
    /// 3: the topic or partition does not exist on this broker.
    UnknownTopicOrPartition = 3, true;
    /// 5: no leader for the partition right now.
    LeaderNotAvailable = 5, true;
    /// 6: this broker is not the partition's leader.
    NotLeaderOrFollower = 6, true;
    /// 7: the request timed out on the broker.
    RequestTimedOut = 7, true;
    /// 8: the broker is not available.
    BrokerNotAvailable = 8, false;
    /// 10: the message is larger than the broker accepts.
    MessageTooLarge = 10, false;
    /// 13: the connection broke before a response arrived.
    NetworkException = 13, true;
    /// 14: the coordinator is still loading the group.
    CoordinatorLoadInProgress = 14, true;
    /// 15: the coordinator is not available.
    CoordinatorNotAvailable = 15, true;
    /// 16: this broker is not the group's coordinator.
    NotCoordinator = 16, true;
    /// 17: the topic name is invalid.
    InvalidTopicException = 17, false;
    /// 19: fewer in-sync replicas than required.
    NotEnoughReplicas = 19, true;
    /// 20: written, but fewer in-sync replicas than required.
    NotEnoughReplicasAfterAppend = 20, true;
    /// 22: the generation in the request is not the group's.
    IllegalGeneration = 22, false;
    /// 23: the member's protocol type or protocols do not match the group's.
    InconsistentGroupProtocol = 23, false;
    /// 24: the group id is empty or invalid.
    InvalidGroupId = 24, false;
    /// 25: the coordinator does not know this member id.
    UnknownMemberId = 25, false;
    /// 26: the session timeout is outside the broker's allowed range.
    InvalidSessionTimeout = 26, false;
    /// 27: the group is rebalancing; rejoin.
    RebalanceInProgress = 27, false;
    /// 28: the committed offset metadata is too large.
    InvalidCommitOffsetSize = 28, false;
    /// 29: not authorized for the topic.
    TopicAuthorizationFailed = 29, false;
    /// 30: not authorized for the group.
    GroupAuthorizationFailed = 30, false;
    /// 56: a disk error on the broker.
    KafkaStorageError = 56, true;
    /// 68: the group is not empty (DeleteGroups).
    NonEmptyGroup = 68, false;
    /// 69: the group does not exist.
    GroupIdNotFound = 69, false;
    /// 74: the leader epoch in the request is older than the broker's.
    FencedLeaderEpoch = 74, true;
    /// 75: the leader epoch in the request is newer than the broker's.
    UnknownLeaderEpoch = 75, true;
    /// 79: a new dynamic member must rejoin with the member id it was given.
    MemberIdRequired = 79, false;
    /// 81: the group has reached its maximum size.
    GroupMaxSizeReached = 81, false;
    /// 82: another member now holds this `group.instance.id`.
    FencedInstanceId = 82, false;
    /// 88: offsets have pending transactional writes.
    UnstableOffsetCommit = 88, true;
    /// 89: throttled by a quota.
    ThrottlingQuotaExceeded = 89, true;
}

impl ErrorCode {
    /// Whether this is [`ErrorCode::None`].
    pub fn is_ok(self) -> bool {
        self == ErrorCode::None
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}({})", self, self.code())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_round_trip_through_kafka_numbers() {
        for code in -1i16..=120 {
            assert_eq!(ErrorCode::from_code(code).code(), code);
        }
    }

    #[test]
    fn error_codes_have_kafka_numbers() {
        assert_eq!(ErrorCode::IllegalGeneration.code(), 22);
        assert_eq!(ErrorCode::UnknownMemberId.code(), 25);
        assert_eq!(ErrorCode::RebalanceInProgress.code(), 27);
        assert_eq!(ErrorCode::MemberIdRequired.code(), 79);
        assert_eq!(ErrorCode::FencedInstanceId.code(), 82);
        assert_eq!(ErrorCode::NotCoordinator.code(), 16);
    }

    #[test]
    fn retriable_classification_follows_kafka() {
        assert!(ErrorCode::NotCoordinator.is_retriable());
        assert!(ErrorCode::NotLeaderOrFollower.is_retriable());
        assert!(ErrorCode::CoordinatorLoadInProgress.is_retriable());
        assert!(!ErrorCode::IllegalGeneration.is_retriable());
        assert!(!ErrorCode::RebalanceInProgress.is_retriable());
        assert!(!ErrorCode::FencedInstanceId.is_retriable());
        assert!(!ErrorCode::Other(999).is_retriable());
    }

    #[test]
    fn instant_arithmetic_saturates() {
        let t = Instant::from_millis(5);
        assert_eq!((t - Duration::from_secs(1)).as_millis(), 0);
        assert_eq!(
            t.saturating_duration_since(Instant::from_millis(9)),
            Duration::ZERO
        );
        assert_eq!((t + Duration::from_millis(10)).as_millis(), 15);
    }
}
