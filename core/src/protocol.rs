//! The consumer protocol's subscription and assignment: what a consumer puts
//! in JoinGroup's protocol metadata and what the leader puts in SyncGroup's
//! assignments.
//!
//! The group coordinator treats both as opaque bytes, as Kafka's does; only
//! members decode them. The encoding is Kafka's `ConsumerProtocolSubscription`
//! (versions 0–3: topics, user data, owned partitions since v1, generation
//! since v2, rack since v3) and `ConsumerProtocolAssignment` (version 0+),
//! big-endian with `int16`-length strings and `int32`-length arrays, as in
//! `clients/src/main/resources/common/message/ConsumerProtocol*.json`.
//!
//! Decoding never panics: truncated or malformed input is a [`DecodeError`].

use std::collections::BTreeMap;

use bytes::{BufMut, Bytes, BytesMut};

use crate::model::{Generation, Partition, Topic, TopicPartition};

/// The subscription version this crate writes.
pub const SUBSCRIPTION_VERSION: i16 = 3;

/// Why a consumer-protocol blob could not be decoded.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The input ended inside a field.
    #[error(
        "truncated consumer protocol data: needed {needed} more bytes for {field} at byte {at}"
    )]
    Truncated {
        /// What was being read.
        field: &'static str,
        /// Byte position.
        at: usize,
        /// Bytes missing.
        needed: usize,
    },
    /// A length field was negative where null is not allowed, or absurd.
    #[error("invalid length {len} for {field} at byte {at}")]
    InvalidLength {
        /// What was being read.
        field: &'static str,
        /// Byte position.
        at: usize,
        /// The length found.
        len: i64,
    },
    /// A string was not UTF-8.
    #[error("{field} at byte {at} is not UTF-8")]
    NotUtf8 {
        /// What was being read.
        field: &'static str,
        /// Byte position.
        at: usize,
    },
    /// A negative version.
    #[error("unsupported consumer protocol version {0}")]
    Version(i16),
}

/// A member's subscription.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Subscription {
    /// Subscribed topics.
    pub topics: Vec<Topic>,
    /// Opaque user data.
    pub user_data: Option<Bytes>,
    /// Partitions the member owns now (v1+; cooperative and sticky use it).
    pub owned: Vec<TopicPartition>,
    /// Generation of that ownership (v2+); `None` is Kafka's −1.
    pub generation: Option<Generation>,
    /// Rack id (v3+).
    pub rack: Option<String>,
}

/// A member's assignment.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Assignment {
    /// Assigned partitions, sorted.
    pub partitions: Vec<TopicPartition>,
    /// Opaque user data.
    pub user_data: Option<Bytes>,
}

fn put_str(buf: &mut BytesMut, s: &str) {
    buf.put_i16(i16::try_from(s.len()).expect("Kafka strings are at most 32767 bytes"));
    buf.put_slice(s.as_bytes());
}

fn put_nullable_bytes(buf: &mut BytesMut, b: &Option<Bytes>) {
    match b {
        None => buf.put_i32(-1),
        Some(b) => {
            buf.put_i32(i32::try_from(b.len()).expect("user data below 2 GiB"));
            buf.put_slice(b);
        }
    }
}

/// Writes partitions grouped by topic, in topic order.
fn put_partitions(buf: &mut BytesMut, tps: &[TopicPartition]) {
    let mut by_topic: BTreeMap<&Topic, Vec<i32>> = BTreeMap::new();
    for tp in tps {
        by_topic.entry(&tp.topic).or_default().push(tp.partition.0);
    }
    buf.put_i32(by_topic.len() as i32);
    for (t, ps) in by_topic {
        put_str(buf, t.as_str());
        buf.put_i32(ps.len() as i32);
        for p in ps {
            buf.put_i32(p);
        }
    }
}

impl Subscription {
    /// Encodes as `ConsumerProtocolSubscription` v3.
    pub fn encode(&self) -> Bytes {
        let mut buf = BytesMut::with_capacity(64);
        buf.put_i16(SUBSCRIPTION_VERSION);
        buf.put_i32(self.topics.len() as i32);
        for t in &self.topics {
            put_str(&mut buf, t.as_str());
        }
        put_nullable_bytes(&mut buf, &self.user_data);
        put_partitions(&mut buf, &self.owned);
        buf.put_i32(self.generation.map_or(-1, |g| g.0));
        match &self.rack {
            None => buf.put_i16(-1),
            Some(r) => put_str(&mut buf, r),
        }
        buf.freeze()
    }

    /// Decodes any version from 0 up; fields a newer version adds after
    /// those known here are ignored, as Kafka does.
    ///
    /// # Errors
    /// [`DecodeError`] on truncated or malformed input.
    pub fn decode(data: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader { data, at: 0 };
        let version = r.i16("version")?;
        if version < 0 {
            return Err(DecodeError::Version(version));
        }
        let n = r.len("topics")?;
        let mut topics = Vec::with_capacity(n.min(1024));
        for _ in 0..n {
            topics.push(Topic::new(r.string("topic")?));
        }
        let user_data = r.nullable_bytes("user_data")?;
        let mut sub = Subscription {
            topics,
            user_data,
            ..Subscription::default()
        };
        if version >= 1 {
            sub.owned = r.partitions("owned_partitions")?;
        }
        if version >= 2 {
            let g = r.i32("generation_id")?;
            sub.generation = (g >= 0).then_some(Generation(g));
        }
        if version >= 3 {
            sub.rack = r.nullable_string("rack_id")?;
        }
        Ok(sub)
    }
}

impl Assignment {
    /// Encodes as `ConsumerProtocolAssignment` v0 (v1 adds nothing to the
    /// layout).
    pub fn encode(&self) -> Bytes {
        let mut buf = BytesMut::with_capacity(16 + 8 * self.partitions.len());
        buf.put_i16(0);
        put_partitions(&mut buf, &self.partitions);
        put_nullable_bytes(&mut buf, &self.user_data);
        buf.freeze()
    }

    /// Decodes. An empty blob is an empty assignment: Kafka's coordinator
    /// hands out empty bytes to members the leader left out.
    ///
    /// # Errors
    /// [`DecodeError`] on truncated or malformed input.
    pub fn decode(data: &[u8]) -> Result<Self, DecodeError> {
        if data.is_empty() {
            return Ok(Assignment::default());
        }
        let mut r = Reader { data, at: 0 };
        let version = r.i16("version")?;
        if version < 0 {
            return Err(DecodeError::Version(version));
        }
        let mut partitions = r.partitions("assigned_partitions")?;
        partitions.sort();
        let user_data = r.nullable_bytes("user_data")?;
        Ok(Assignment {
            partitions,
            user_data,
        })
    }
}

struct Reader<'a> {
    data: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, field: &'static str, n: usize) -> Result<&'a [u8], DecodeError> {
        let rest = &self.data[self.at..];
        if rest.len() < n {
            return Err(DecodeError::Truncated {
                field,
                at: self.at,
                needed: n - rest.len(),
            });
        }
        self.at += n;
        Ok(&rest[..n])
    }

    fn i16(&mut self, field: &'static str) -> Result<i16, DecodeError> {
        let b = self.take(field, 2)?;
        Ok(i16::from_be_bytes([b[0], b[1]]))
    }

    fn i32(&mut self, field: &'static str) -> Result<i32, DecodeError> {
        let b = self.take(field, 4)?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// An array length: non-negative, and no more elements than bytes left
    /// (every element takes at least one byte), so a hostile length cannot
    /// make us allocate.
    fn len(&mut self, field: &'static str) -> Result<usize, DecodeError> {
        let at = self.at;
        let n = self.i32(field)?;
        if n < 0 || n as usize > self.data.len() - self.at {
            return Err(DecodeError::InvalidLength {
                field,
                at,
                len: i64::from(n),
            });
        }
        Ok(n as usize)
    }

    fn string(&mut self, field: &'static str) -> Result<&'a str, DecodeError> {
        let at = self.at;
        let n = self.i16(field)?;
        if n < 0 {
            return Err(DecodeError::InvalidLength {
                field,
                at,
                len: i64::from(n),
            });
        }
        let b = self.take(field, n as usize)?;
        std::str::from_utf8(b).map_err(|_| DecodeError::NotUtf8 { field, at })
    }

    fn nullable_string(&mut self, field: &'static str) -> Result<Option<String>, DecodeError> {
        let at = self.at;
        let n = self.i16(field)?;
        if n < 0 {
            return Ok(None);
        }
        let b = self.take(field, n as usize)?;
        std::str::from_utf8(b)
            .map(|s| Some(s.to_owned()))
            .map_err(|_| DecodeError::NotUtf8 { field, at })
    }

    fn nullable_bytes(&mut self, field: &'static str) -> Result<Option<Bytes>, DecodeError> {
        let n = self.i32(field)?;
        if n < 0 {
            return Ok(None);
        }
        Ok(Some(Bytes::copy_from_slice(self.take(field, n as usize)?)))
    }

    fn partitions(&mut self, field: &'static str) -> Result<Vec<TopicPartition>, DecodeError> {
        let topics = self.len(field)?;
        let mut out = Vec::new();
        for _ in 0..topics {
            let topic = Topic::new(self.string(field)?);
            let n = self.len(field)?;
            for _ in 0..n {
                out.push(TopicPartition {
                    topic: topic.clone(),
                    partition: Partition(self.i32(field)?),
                });
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn tp() -> impl Strategy<Value = TopicPartition> {
        ("[a-z]{1,6}", 0i32..100).prop_map(|(t, p)| TopicPartition::new(t.as_str(), p))
    }

    fn subscription() -> impl Strategy<Value = Subscription> {
        (
            proptest::collection::vec("[a-z.]{1,8}", 0..6),
            proptest::option::of(proptest::collection::vec(any::<u8>(), 0..16)),
            proptest::collection::btree_set(tp(), 0..12),
            proptest::option::of(0i32..1000),
            proptest::option::of("[a-z0-9]{0,5}"),
        )
            .prop_map(|(topics, ud, owned, generation, rack)| Subscription {
                topics: topics.into_iter().map(Topic::from).collect(),
                user_data: ud.map(Bytes::from),
                owned: owned.into_iter().collect(),
                generation: generation.map(Generation),
                rack,
            })
    }

    proptest! {
        #[test]
        fn subscription_round_trips(s in subscription()) {
            prop_assert_eq!(Subscription::decode(&s.encode()).unwrap(), s);
        }

        #[test]
        fn assignment_round_trips(ps in proptest::collection::btree_set(tp(), 0..20), ud in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..8))) {
            let a = Assignment { partitions: ps.into_iter().collect(), user_data: ud.map(Bytes::from) };
            prop_assert_eq!(Assignment::decode(&a.encode()).unwrap(), a);
        }

        /// Garbage and truncated blobs are errors, never panics.
        #[test]
        fn decoding_arbitrary_bytes_never_panics(data in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = Subscription::decode(&data);
            let _ = Assignment::decode(&data);
        }

        #[test]
        fn every_truncation_of_a_valid_blob_is_an_error(s in subscription()) {
            let full = s.encode();
            for cut in 0..full.len() {
                prop_assert!(Subscription::decode(&full[..cut]).is_err(), "cut at {}", cut);
            }
        }
    }

    #[test]
    fn version_zero_subscription_has_topics_and_user_data_only() {
        let mut v0 = BytesMut::new();
        v0.put_i16(0);
        v0.put_i32(1);
        put_str(&mut v0, "orders");
        v0.put_i32(-1);
        let s = Subscription::decode(&v0).unwrap();
        assert_eq!(s.topics, vec![Topic::new("orders")]);
        assert!(s.owned.is_empty() && s.generation.is_none());
    }

    #[test]
    fn empty_assignment_blob_is_an_empty_assignment() {
        assert_eq!(Assignment::decode(&[]).unwrap(), Assignment::default());
    }
}
