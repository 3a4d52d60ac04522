//! Consumer configuration and its validation.

use std::time::Duration;

use super::{DeadLetterConfig, RetryPolicy};
use crate::model::{GroupId, Topic};

/// In what order records are processed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Ordering {
    /// One record at a time per partition, in offset order (the default).
    #[default]
    Partition,
    /// In offset order per key; different keys of one partition in
    /// parallel, up to `max_in_flight_per_partition` (parallel-consumer's
    /// KEY mode).
    Key,
}

/// Where to start when a partition has no valid committed offset.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum OffsetReset {
    /// The start of the log.
    #[default]
    Earliest,
    /// The end of the log.
    Latest,
}

/// When the consumer commits during normal running. Revocation and
/// shutdown always commit. Every commit is up to the committable offset
/// only, one commit in flight per partition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CommitStrategy {
    /// After every record that advances the committable offset.
    PerRecord,
    /// After `records` completed records or `interval`, whichever first.
    Periodic {
        /// Completed records between commits.
        records: u32,
        /// Time between commits.
        interval: Duration,
    },
    /// Only on revocation and shutdown.
    OnRevokeAndShutdown,
    /// **KNOWN-BAD — loses messages; exists so the harness can prove it.**
    /// Compiled only with the `known-bad` feature, which the chaos layer
    /// enables and the default build does not.
    /// Every `interval`, commit the *fetched* position, processed or not —
    /// what `enable.auto.commit` with automatic offset store does, and what
    /// the user's original designs did with "periodic commit". A consumer
    /// that crashes after such a commit and before processing those records
    /// loses them: the next owner starts past them. Never the default.
    #[cfg(feature = "known-bad")]
    KnownBadAutoCommitFetched {
        /// Time between commits.
        interval: Duration,
    },
}

/// **KNOWN-BAD consumer variants — each loses or corrupts data; they exist
/// so the harness can prove its checkers catch them.** Each is a design the
/// original documents in `shared/seeds/` proposed. Never the default, and
/// compiled only with the `known-bad` feature (the seam the chaos layer
/// uses): a service built on the default features has none of them.
#[cfg(feature = "known-bad")]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum KnownBad {
    /// "Log and continue" when a dead-letter write fails: the record is
    /// counted as done and committed past although it was neither processed
    /// nor dead-lettered — it is gone.
    SkipFailedDeadLetter,
    /// "Fatal errors: log and continue": a record whose processing failed
    /// fatally is skipped and committed past instead of stopping the
    /// consumer — it is gone.
    SkipFatal,
    /// Async commits retried from their callback: a failed commit is re-sent
    /// later with its *original* offsets while newer commits go ahead, so
    /// the retry can land after a newer commit and move the committed
    /// offset backwards (redelivering what was already processed).
    RetryStaleCommits,
}

/// Everything the consumer engine needs to know.
#[derive(Clone, Debug, PartialEq)]
pub struct ConsumerConfig {
    /// The consumer group.
    pub group_id: GroupId,
    /// Source topics.
    pub topics: Vec<Topic>,
    /// Processing order.
    pub ordering: Ordering,
    /// Records in processing at once per partition (key ordering only;
    /// partition ordering processes one at a time).
    pub max_in_flight_per_partition: usize,
    /// Records in processing at once in total.
    pub max_in_flight: usize,
    /// Records fetched and not yet finished per partition before fetching
    /// from it pauses (resumes below half).
    pub max_buffered_per_partition: usize,
    /// When to commit.
    pub commit: CommitStrategy,
    /// Backoff before retrying a failed commit.
    pub commit_retry_backoff: Duration,
    /// Retries of failed processing.
    pub retry: RetryPolicy,
    /// The dead-letter topic; without one, a record that cannot be
    /// processed stops the consumer.
    pub dead_letter: Option<DeadLetterConfig>,
    /// Start position without a valid commit.
    pub offset_reset: OffsetReset,
    /// How long a revoked partition's in-flight records may take to finish
    /// before they are abandoned (not committed) and the partition released.
    pub revoke_timeout: Duration,
    /// How long shutdown waits for in-flight records before the final commit.
    pub shutdown_timeout: Duration,
    /// Emit per-record events (fetched, started, succeeded). The simulation
    /// needs them for its history; production may turn them off.
    pub record_events: bool,
    /// A known-bad variant (see [`KnownBad`]); `None`, the default, is the
    /// reference consumer.
    #[cfg(feature = "known-bad")]
    pub known_bad: Option<KnownBad>,
}

impl ConsumerConfig {
    /// Sensible defaults for a group and its topics.
    pub fn new(group_id: impl Into<GroupId>, topics: Vec<Topic>) -> Self {
        Self {
            group_id: group_id.into(),
            topics,
            ordering: Ordering::Partition,
            max_in_flight_per_partition: 16,
            max_in_flight: 256,
            max_buffered_per_partition: 1_000,
            commit: CommitStrategy::Periodic {
                records: 500,
                interval: Duration::from_secs(1),
            },
            commit_retry_backoff: Duration::from_millis(100),
            retry: RetryPolicy::default(),
            dead_letter: None,
            offset_reset: OffsetReset::Earliest,
            revoke_timeout: Duration::from_secs(10),
            shutdown_timeout: Duration::from_secs(30),
            record_events: true,
            #[cfg(feature = "known-bad")]
            known_bad: None,
        }
    }

    /// Checks the configuration.
    ///
    /// # Errors
    /// The first invalid field, by name, and why.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let err = |field: &'static str, reason: &str| {
            Err(ConfigError {
                field,
                reason: reason.to_owned(),
            })
        };
        if self.group_id.as_str().is_empty() {
            return err("group_id", "must not be empty");
        }
        if self.topics.is_empty() {
            return err("topics", "must name at least one topic");
        }
        if self.max_in_flight == 0 {
            return err("max_in_flight", "must be at least 1");
        }
        if self.max_in_flight_per_partition == 0 {
            return err("max_in_flight_per_partition", "must be at least 1");
        }
        if self.max_buffered_per_partition == 0 {
            return err("max_buffered_per_partition", "must be at least 1");
        }
        if let CommitStrategy::Periodic { records, interval } = self.commit {
            if records == 0 || interval.is_zero() {
                return err(
                    "commit",
                    "periodic commits need records >= 1 and a non-zero interval",
                );
            }
        }
        check_policy("retry", &self.retry)?;
        if self.retry.max_attempts == 0 {
            return err("retry.max_attempts", "must be at least 1 (the first try)");
        }
        if let Some(d) = &self.dead_letter {
            if self.topics.contains(&d.topic) {
                return err("dead_letter.topic", "must not be one of the source topics");
            }
            if d.topic.as_str().is_empty() {
                return err("dead_letter.topic", "must not be empty");
            }
            check_policy("dead_letter.write_backoff", &d.write_backoff)?;
            if let Some(r) = d.limit.max_ratio {
                if !(r > 0.0 && r <= 1.0) {
                    return err("dead_letter.limit.max_ratio", "must be in (0, 1]");
                }
            }
            if d.limit.max_consecutive == Some(0) {
                return err("dead_letter.limit.max_consecutive", "must be at least 1");
            }
        }
        Ok(())
    }
}

fn check_policy(name: &'static str, p: &RetryPolicy) -> Result<(), ConfigError> {
    let field = |f: &'static str| -> &'static str {
        match (name, f) {
            ("retry", "initial_backoff") => "retry.initial_backoff",
            ("retry", "max_backoff") => "retry.max_backoff",
            ("retry", "multiplier") => "retry.multiplier",
            ("retry", "jitter") => "retry.jitter",
            (_, "initial_backoff") => "dead_letter.write_backoff.initial_backoff",
            (_, "max_backoff") => "dead_letter.write_backoff.max_backoff",
            (_, "multiplier") => "dead_letter.write_backoff.multiplier",
            _ => "dead_letter.write_backoff.jitter",
        }
    };
    let err = |f, reason: &str| {
        Err(ConfigError {
            field: field(f),
            reason: reason.to_owned(),
        })
    };
    if p.max_backoff < p.initial_backoff {
        return err("max_backoff", "must not be below the initial backoff");
    }
    if !(p.multiplier >= 1.0 && p.multiplier.is_finite()) {
        return err("multiplier", "must be a finite number >= 1");
    }
    if !(0.0..=1.0).contains(&p.jitter) {
        return err("jitter", "must be in [0, 1]");
    }
    Ok(())
}

/// An invalid configuration field.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid consumer configuration: `{field}` {reason}")]
pub struct ConfigError {
    /// The field, as a path (`retry.max_backoff`).
    pub field: &'static str,
    /// What is wrong.
    pub reason: String,
}
