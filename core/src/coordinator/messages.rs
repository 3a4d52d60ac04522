//! Requests the coordinator takes and responses it gives, mirroring the
//! fields of Kafka's JoinGroup (v5+), SyncGroup (v5+), Heartbeat, LeaveGroup
//! (v3+, batched), OffsetCommit and OffsetFetch that the group protocol uses.

use std::time::Duration;

use bytes::Bytes;

use crate::model::{ErrorCode, Generation, GroupId, InstanceId, MemberId, Offset, TopicPartition};

/// One protocol a member offers: an assignor name and its metadata (for
/// consumers, an encoded [`Subscription`](crate::protocol::Subscription)).
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProtocolMetadata {
    /// Protocol (assignor) name, e.g. `cooperative-sticky`.
    pub name: String,
    /// Opaque metadata.
    pub metadata: Bytes,
}

/// JoinGroup.
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JoinGroupRequest {
    /// The group.
    pub group_id: GroupId,
    /// The member id; empty on a member's first join.
    pub member_id: MemberId,
    /// `group.instance.id` for a static member.
    pub instance_id: Option<InstanceId>,
    /// The client id; generated member ids start with it.
    pub client_id: String,
    /// `consumer` for consumers.
    pub protocol_type: String,
    /// Offered protocols, most preferred first.
    pub protocols: Vec<ProtocolMetadata>,
    /// `session.timeout.ms`.
    pub session_timeout: Duration,
    /// `max.poll.interval.ms`: how long the coordinator waits for this
    /// member to rejoin during a rebalance.
    pub rebalance_timeout: Duration,
}

/// A member as the leader sees it in the JoinGroup response.
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JoinGroupMember {
    /// Member id.
    pub member_id: MemberId,
    /// Static instance id.
    pub instance_id: Option<InstanceId>,
    /// The member's metadata for the selected protocol.
    pub metadata: Bytes,
}

/// JoinGroup response.
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JoinGroupResponse {
    /// Error, or [`ErrorCode::None`].
    pub error: ErrorCode,
    /// The new generation.
    pub generation: Generation,
    /// The group's protocol type.
    pub protocol_type: Option<String>,
    /// The selected protocol.
    pub protocol_name: Option<String>,
    /// The leader's member id.
    pub leader: MemberId,
    /// This member's id (also set with [`ErrorCode::MemberIdRequired`]).
    pub member_id: MemberId,
    /// All members, for the leader only; empty for followers.
    pub members: Vec<JoinGroupMember>,
}

impl JoinGroupResponse {
    /// A response carrying only an error (and the member id, for MEMBER_ID_REQUIRED).
    pub fn error(error: ErrorCode, member_id: MemberId) -> Self {
        Self {
            error,
            generation: Generation::NONE,
            protocol_type: None,
            protocol_name: None,
            leader: MemberId::unknown(),
            member_id,
            members: Vec::new(),
        }
    }
}

/// SyncGroup.
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyncGroupRequest {
    /// The group.
    pub group_id: GroupId,
    /// The generation the member joined.
    pub generation: Generation,
    /// Member id.
    pub member_id: MemberId,
    /// Static instance id.
    pub instance_id: Option<InstanceId>,
    /// Protocol type, checked if present (v5+).
    pub protocol_type: Option<String>,
    /// Protocol name, checked if present (v5+).
    pub protocol_name: Option<String>,
    /// The leader's assignment for every member; empty for followers.
    pub assignments: Vec<(MemberId, Bytes)>,
}

/// SyncGroup response.
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyncGroupResponse {
    /// Error, or [`ErrorCode::None`].
    pub error: ErrorCode,
    /// The group's protocol type.
    pub protocol_type: Option<String>,
    /// The selected protocol.
    pub protocol_name: Option<String>,
    /// This member's assignment (opaque bytes).
    pub assignment: Bytes,
}

impl SyncGroupResponse {
    /// A response carrying only an error.
    pub fn error(error: ErrorCode) -> Self {
        Self {
            error,
            protocol_type: None,
            protocol_name: None,
            assignment: Bytes::new(),
        }
    }
}

/// Heartbeat.
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeartbeatRequest {
    /// The group.
    pub group_id: GroupId,
    /// The member's generation.
    pub generation: Generation,
    /// Member id.
    pub member_id: MemberId,
    /// Static instance id.
    pub instance_id: Option<InstanceId>,
}

/// Heartbeat response.
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeartbeatResponse {
    /// Error, or [`ErrorCode::None`].
    pub error: ErrorCode,
}

/// A member leaving, by member id or (for static members) by instance id.
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeavingMember {
    /// Member id; may be empty when `instance_id` is given.
    pub member_id: MemberId,
    /// Static instance id.
    pub instance_id: Option<InstanceId>,
}

/// LeaveGroup.
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaveGroupRequest {
    /// The group.
    pub group_id: GroupId,
    /// Members leaving.
    pub members: Vec<LeavingMember>,
}

/// LeaveGroup response.
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaveGroupResponse {
    /// Top-level error.
    pub error: ErrorCode,
    /// Per-member result.
    pub members: Vec<(LeavingMember, ErrorCode)>,
}

/// A committed offset as stored.
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommittedOffset {
    /// The next offset to consume.
    pub offset: Offset,
    /// Free-form metadata from the committer.
    pub metadata: String,
    /// When it was committed, on the coordinator's clock.
    pub commit_time: crate::model::Instant,
}

/// OffsetCommit.
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OffsetCommitRequest {
    /// The group.
    pub group_id: GroupId,
    /// The committer's generation; [`Generation::NONE`] for a group not
    /// managed by the coordinator.
    pub generation: Generation,
    /// Member id; empty for unmanaged commits.
    pub member_id: MemberId,
    /// Static instance id.
    pub instance_id: Option<InstanceId>,
    /// Offsets with metadata.
    pub offsets: Vec<(TopicPartition, Offset, String)>,
}

/// OffsetCommit response.
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OffsetCommitResponse {
    /// Per-partition result.
    pub partitions: Vec<(TopicPartition, ErrorCode)>,
}

/// OffsetFetch.
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OffsetFetchRequest {
    /// The group.
    pub group_id: GroupId,
    /// Partitions to fetch; `None` for all the group has.
    pub partitions: Option<Vec<TopicPartition>>,
}

/// OffsetFetch response.
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OffsetFetchResponse {
    /// Top-level error.
    pub error: ErrorCode,
    /// Per partition: the committed offset ([`Offset::INVALID`] if none)
    /// and metadata.
    pub partitions: Vec<(TopicPartition, Offset, String)>,
}

/// Any request the coordinator handles.
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Request {
    /// JoinGroup.
    JoinGroup(JoinGroupRequest),
    /// SyncGroup.
    SyncGroup(SyncGroupRequest),
    /// Heartbeat.
    Heartbeat(HeartbeatRequest),
    /// LeaveGroup.
    LeaveGroup(LeaveGroupRequest),
    /// OffsetCommit.
    OffsetCommit(OffsetCommitRequest),
    /// OffsetFetch.
    OffsetFetch(OffsetFetchRequest),
}

/// Any response the coordinator gives.
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Response {
    /// JoinGroup.
    JoinGroup(JoinGroupResponse),
    /// SyncGroup.
    SyncGroup(SyncGroupResponse),
    /// Heartbeat.
    Heartbeat(HeartbeatResponse),
    /// LeaveGroup.
    LeaveGroup(LeaveGroupResponse),
    /// OffsetCommit.
    OffsetCommit(OffsetCommitResponse),
    /// OffsetFetch.
    OffsetFetch(OffsetFetchResponse),
}
