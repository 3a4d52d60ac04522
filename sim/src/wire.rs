//! The simulation's wire protocol: length-prefixed frames (a 4-byte
//! big-endian length, then a bincode body) carrying requests and responses
//! that mirror Kafka's APIs. Group-protocol messages are `ruckus-core`'s own
//! types, so the coordinator sees exactly what it sees in unit tests.

use std::time::Duration;

use std::io;

use ruckus_core::coordinator as co;
use ruckus_core::model::{ErrorCode, GroupId, Offset, Record, Topic, TopicPartition};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Largest frame accepted: a guard against a corrupt length.
pub const MAX_FRAME: u32 = 64 << 20;

/// A record to produce.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProduceRecord {
    /// Key.
    pub key: Option<bytes::Bytes>,
    /// Value.
    pub value: Option<bytes::Bytes>,
    /// Headers.
    pub headers: Vec<ruckus_core::model::Header>,
}

/// A request, mirroring a Kafka API.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Request {
    /// Metadata: brokers, partition counts and leaders.
    Metadata,
    /// Produce (acks=all) to one partition.
    Produce {
        /// Where.
        tp: TopicPartition,
        /// What.
        records: Vec<ProduceRecord>,
    },
    /// Fetch from partitions this broker leads.
    Fetch {
        /// Partitions and the offset to read from.
        partitions: Vec<(TopicPartition, Offset)>,
        /// Records per partition at most.
        max_records: u32,
        /// With nothing to return, wait up to this long for records to
        /// arrive before answering (Kafka's `fetch.max.wait.ms`).
        max_wait: Duration,
        /// Bytes (keys and values) per response at most — a soft limit, as
        /// in Kafka: the first record is returned even if it is larger.
        max_bytes: u32,
    },
    /// ListOffsets: log start and high watermark.
    ListOffsets {
        /// Partitions.
        partitions: Vec<TopicPartition>,
    },
    /// FindCoordinator for a group.
    FindCoordinator {
        /// The group.
        group: GroupId,
    },
    /// JoinGroup.
    JoinGroup(co::JoinGroupRequest),
    /// SyncGroup.
    SyncGroup(co::SyncGroupRequest),
    /// Heartbeat.
    Heartbeat(co::HeartbeatRequest),
    /// LeaveGroup.
    LeaveGroup(co::LeaveGroupRequest),
    /// OffsetCommit.
    OffsetCommit(co::OffsetCommitRequest),
    /// OffsetFetch.
    OffsetFetch(co::OffsetFetchRequest),
}

/// Per-partition fetch result.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FetchPartition {
    /// Partition.
    pub tp: TopicPartition,
    /// Error (NOT_LEADER_OR_FOLLOWER if this broker does not lead it).
    pub error: ErrorCode,
    /// High watermark.
    pub high_watermark: Offset,
    /// Records from the requested offset.
    pub records: Vec<Record>,
}

/// A response, mirroring a Kafka API.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Response {
    /// Metadata.
    Metadata {
        /// Live brokers by id.
        brokers: Vec<u32>,
        /// Topics with their partition counts.
        topics: Vec<(Topic, u32)>,
        /// Leader broker of each partition.
        leaders: Vec<(TopicPartition, u32)>,
    },
    /// Produce.
    Produce {
        /// Error.
        error: ErrorCode,
        /// Offset of the first record written.
        base_offset: Offset,
    },
    /// Fetch.
    Fetch {
        /// Per partition.
        partitions: Vec<FetchPartition>,
    },
    /// ListOffsets.
    ListOffsets {
        /// Per partition: error, log start, high watermark.
        partitions: Vec<(TopicPartition, ErrorCode, Offset, Offset)>,
    },
    /// FindCoordinator.
    FindCoordinator {
        /// Error.
        error: ErrorCode,
        /// The coordinator broker.
        broker: u32,
    },
    /// JoinGroup.
    JoinGroup(co::JoinGroupResponse),
    /// SyncGroup.
    SyncGroup(co::SyncGroupResponse),
    /// Heartbeat.
    Heartbeat(co::HeartbeatResponse),
    /// LeaveGroup.
    LeaveGroup(co::LeaveGroupResponse),
    /// OffsetCommit.
    OffsetCommit(co::OffsetCommitResponse),
    /// OffsetFetch.
    OffsetFetch(co::OffsetFetchResponse),
    /// A group request sent to a broker that is not the coordinator.
    NotCoordinator,
}

/// A frame: a correlation id and a body.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Frame<T> {
    /// Matches a response to its request.
    pub correlation: u64,
    /// The message.
    pub body: T,
}

/// Writes one frame.
///
/// # Errors
/// I/O errors, or a message too large to frame.
pub async fn write_frame<T: Serialize, W: AsyncWrite + Unpin>(
    w: &mut W,
    frame: &Frame<T>,
) -> io::Result<()> {
    let body =
        bincode::serialize(frame).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
    let len = u32::try_from(body.len())
        .ok()
        .filter(|l| *l <= MAX_FRAME)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "frame too large"))?;
    w.write_all(&len.to_be_bytes()).await?;
    w.write_all(&body).await?;
    w.flush().await
}

/// Reads one frame.
///
/// # Errors
/// I/O errors (including a closed connection) and undecodable frames.
pub async fn read_frame<T: for<'de> Deserialize<'de>, R: AsyncRead + Unpin>(
    r: &mut R,
) -> io::Result<Frame<T>> {
    let mut len = [0u8; 4];
    r.read_exact(&mut len).await?;
    let len = u32::from_be_bytes(len);
    if len > MAX_FRAME {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "frame too large",
        ));
    }
    let mut body = vec![0u8; len as usize];
    r.read_exact(&mut body).await?;
    bincode::deserialize(&body).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}
