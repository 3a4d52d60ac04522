//! Dead-letter records: the envelope, its header scheme, and the limit that
//! stops a consumer instead of dead-lettering everything.
//!
//! ## Header scheme
//!
//! A dead-lettered record keeps the original key, value and headers, and
//! gains these headers. The `kafka_dlt-*` ones are Spring Kafka's
//! (`DeadLetterPublishingRecoverer`), with Spring's encodings, so existing
//! tooling reads them; the `ruckus-dlt-*` ones add what Spring lacks.
//!
//! | header | value |
//! |---|---|
//! | `kafka_dlt-original-topic` | UTF-8 topic name |
//! | `kafka_dlt-original-partition` | 4-byte big-endian int |
//! | `kafka_dlt-original-offset` | 8-byte big-endian long |
//! | `kafka_dlt-original-timestamp` | 8-byte big-endian long, ms since epoch |
//! | `kafka_dlt-original-timestamp-type` | UTF-8, `CreateTime` |
//! | `kafka_dlt-original-consumer-group` | UTF-8 group id |
//! | `kafka_dlt-exception-fqcn` | UTF-8, `ruckus.ProcessingError.<class>` |
//! | `kafka_dlt-exception-message` | UTF-8 error message |
//! | `ruckus-dlt-error-class` | UTF-8: `transient`, `permanent` or `fatal` |
//! | `ruckus-dlt-attempts` | 4-byte big-endian int: processing attempts made |
//! | `ruckus-dlt-first-failure` | 8-byte big-endian long, ms on the consumer's clock |
//! | `ruckus-dlt-last-failure` | 8-byte big-endian long, ms on the consumer's clock |
//! | `ruckus-dlt-member-id` | UTF-8 member id of the consumer that gave up |

use bytes::Bytes;

use super::ErrorClass;
use crate::model::{GroupId, Header, Instant, MemberId, Offset, Timestamp, Topic, TopicPartition};

/// A record on its way to the dead-letter topic.
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeadLetter {
    /// Where the record came from.
    pub source: TopicPartition,
    /// Its offset there.
    pub offset: Offset,
    /// Original key.
    pub key: Option<Bytes>,
    /// Original value.
    pub value: Option<Bytes>,
    /// Original headers.
    pub headers: Vec<Header>,
    /// Original timestamp.
    pub timestamp: Timestamp,
    /// Class of the last error.
    pub error_class: ErrorClass,
    /// Message of the last error.
    pub error_message: String,
    /// Processing attempts made.
    pub attempts: u32,
    /// First failure, on the consumer's clock.
    pub first_failure: Instant,
    /// Last failure, on the consumer's clock.
    pub last_failure: Instant,
    /// The consumer group.
    pub group_id: GroupId,
    /// The member that gave up.
    pub member_id: MemberId,
}

fn h(key: &str, value: impl Into<Bytes>) -> Header {
    Header {
        key: key.to_owned(),
        value: Some(value.into()),
    }
}

impl DeadLetter {
    /// The headers to write: the original ones, then the scheme above.
    pub fn headers(&self) -> Vec<Header> {
        let mut out = self.headers.clone();
        out.extend([
            h(
                "kafka_dlt-original-topic",
                Bytes::copy_from_slice(self.source.topic.as_str().as_bytes()),
            ),
            h(
                "kafka_dlt-original-partition",
                Bytes::copy_from_slice(&self.source.partition.0.to_be_bytes()),
            ),
            h(
                "kafka_dlt-original-offset",
                Bytes::copy_from_slice(&self.offset.0.to_be_bytes()),
            ),
            h(
                "kafka_dlt-original-timestamp",
                Bytes::copy_from_slice(&self.timestamp.0.to_be_bytes()),
            ),
            h(
                "kafka_dlt-original-timestamp-type",
                Bytes::from_static(b"CreateTime"),
            ),
            h(
                "kafka_dlt-original-consumer-group",
                Bytes::copy_from_slice(self.group_id.as_str().as_bytes()),
            ),
            h(
                "kafka_dlt-exception-fqcn",
                format!("ruckus.ProcessingError.{}", self.error_class.as_str()),
            ),
            h("kafka_dlt-exception-message", self.error_message.clone()),
            h("ruckus-dlt-error-class", self.error_class.as_str()),
            h(
                "ruckus-dlt-attempts",
                Bytes::copy_from_slice(&self.attempts.to_be_bytes()),
            ),
            h(
                "ruckus-dlt-first-failure",
                Bytes::copy_from_slice(&self.first_failure.as_millis().to_be_bytes()),
            ),
            h(
                "ruckus-dlt-last-failure",
                Bytes::copy_from_slice(&self.last_failure.as_millis().to_be_bytes()),
            ),
            h(
                "ruckus-dlt-member-id",
                Bytes::copy_from_slice(self.member_id.as_str().as_bytes()),
            ),
        ]);
        out
    }
}

/// When dead-lettering must stop the consumer instead (like Arroyo's
/// `DlqLimit`): a consumer that dead-letters everything is broken, and
/// silently draining a topic into the dead-letter topic is data loss in
/// practice.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DlqLimit {
    /// Stop when dead-lettered / finished records exceeds this ratio, once
    /// at least `min_sample` records have finished.
    pub max_ratio: Option<f64>,
    /// Records that must finish before `max_ratio` applies.
    pub min_sample: u64,
    /// Stop after this many dead-letters in a row.
    pub max_consecutive: Option<u64>,
}

/// Dead-letter settings.
#[derive(Clone, Debug, PartialEq)]
pub struct DeadLetterConfig {
    /// The dead-letter topic.
    pub topic: Topic,
    /// When to stop instead.
    pub limit: DlqLimit,
    /// Backoff between attempts to write a record whose dead-letter write
    /// failed. Such a record is retried for as long as the consumer owns it
    /// and is never committed past; `max_attempts` is not used.
    pub write_backoff: super::RetryPolicy,
}

impl DeadLetterConfig {
    /// Dead letters to `topic`, with no limit, and a failed dead-letter
    /// write retried after 50 ms, doubling up to 1 s.
    pub fn new(topic: Topic) -> Self {
        Self {
            topic,
            limit: DlqLimit::default(),
            write_backoff: super::RetryPolicy {
                initial_backoff: std::time::Duration::from_millis(50),
                max_backoff: std::time::Duration::from_secs(1),
                ..super::RetryPolicy::default()
            },
        }
    }
}

/// Counts for the limit.
#[derive(Clone, Debug, Default)]
pub(crate) struct DlqCounter {
    finished: u64,
    dead: u64,
    consecutive: u64,
}

impl DlqCounter {
    pub(crate) fn succeeded(&mut self) {
        self.finished += 1;
        self.consecutive = 0;
    }

    /// Whether one more dead-letter would exceed `limit`.
    pub(crate) fn would_exceed(&self, limit: &DlqLimit) -> bool {
        let (finished, dead, consecutive) =
            (self.finished + 1, self.dead + 1, self.consecutive + 1);
        if limit.max_consecutive.is_some_and(|m| consecutive > m) {
            return true;
        }
        limit
            .max_ratio
            .is_some_and(|r| finished >= limit.min_sample && dead as f64 / finished as f64 > r)
    }

    pub(crate) fn dead_lettered(&mut self) {
        self.finished += 1;
        self.dead += 1;
        self.consecutive += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn letter() -> DeadLetter {
        DeadLetter {
            source: TopicPartition::new("orders", 3),
            offset: Offset(42),
            key: Some(Bytes::from_static(b"k")),
            value: Some(Bytes::from_static(b"v")),
            headers: vec![h("trace", "abc")],
            timestamp: Timestamp(1_700_000_000_000),
            error_class: ErrorClass::Permanent,
            error_message: "bad json".to_owned(),
            attempts: 3,
            first_failure: Instant::from_millis(10),
            last_failure: Instant::from_millis(900),
            group_id: GroupId::new("g"),
            member_id: MemberId::new("m-1"),
        }
    }

    #[test]
    fn headers_keep_the_originals_and_follow_springs_encodings() {
        let hs = letter().headers();
        let get = |k: &str| {
            hs.iter()
                .find(|x| x.key == k)
                .and_then(|x| x.value.clone())
                .unwrap()
        };
        assert_eq!(hs[0].key, "trace");
        assert_eq!(
            get("kafka_dlt-original-topic"),
            Bytes::from_static(b"orders")
        );
        assert_eq!(
            get("kafka_dlt-original-partition").as_ref(),
            &3i32.to_be_bytes()
        );
        assert_eq!(
            get("kafka_dlt-original-offset").as_ref(),
            &42i64.to_be_bytes()
        );
        assert_eq!(get("ruckus-dlt-attempts").as_ref(), &3u32.to_be_bytes());
        assert_eq!(
            get("ruckus-dlt-error-class"),
            Bytes::from_static(b"permanent")
        );
    }

    #[test]
    fn consecutive_limit_trips_on_the_next_dead_letter() {
        let limit = DlqLimit {
            max_consecutive: Some(2),
            ..DlqLimit::default()
        };
        let mut c = DlqCounter::default();
        assert!(!c.would_exceed(&limit));
        c.dead_lettered();
        assert!(!c.would_exceed(&limit));
        c.dead_lettered();
        assert!(c.would_exceed(&limit), "a third in a row exceeds 2");
        c.succeeded();
        assert!(!c.would_exceed(&limit), "a success resets the run");
    }

    #[test]
    fn ratio_limit_waits_for_its_sample() {
        let limit = DlqLimit {
            max_ratio: Some(0.5),
            min_sample: 10,
            max_consecutive: None,
        };
        let mut c = DlqCounter::default();
        for _ in 0..4 {
            assert!(!c.would_exceed(&limit), "sample too small");
            c.dead_lettered();
        }
        for _ in 0..5 {
            c.succeeded();
        }
        // 4 dead of 9; one more would be 5 of 10 = 0.5, not above.
        assert!(!c.would_exceed(&limit));
        c.dead_lettered();
        assert!(c.would_exceed(&limit), "6 of 11 > 0.5");
    }
}
