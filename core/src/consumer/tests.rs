//! Engine tests: one per rule, the named cases, and a property test
//! over arbitrary interleavings.

use std::time::Duration;

use bytes::Bytes;

use super::*;
use crate::model::{GroupId, Partition, Timestamp};
use crate::rng::SplitMix64;

const GEN: Generation = Generation(5);

fn tp(p: i32) -> TopicPartition {
    TopicPartition::new("in", p)
}

fn record(p: i32, offset: i64, key: &str) -> Record {
    Record {
        topic_partition: tp(p),
        offset: Offset(offset),
        key: Some(Bytes::from(key.to_owned())),
        value: Some(Bytes::from(format!("v{offset}"))),
        headers: Vec::new(),
        timestamp: Timestamp(1_000 + offset),
    }
}

fn config() -> ConsumerConfig {
    let mut c = ConsumerConfig::new("g", vec![Topic::new("in")]);
    c.commit = CommitStrategy::PerRecord;
    c.retry = RetryPolicy {
        max_attempts: 3,
        jitter: 0.0,
        ..RetryPolicy::default()
    };
    c.dead_letter = Some(DeadLetterConfig {
        topic: Topic::new("in.dlq"),
        limit: DlqLimit::default(),
        write_backoff: RetryPolicy {
            jitter: 0.0,
            ..RetryPolicy::default()
        },
    });
    c
}

/// The engine plus an inbox of its actions, sorted by kind.
struct H {
    c: Consumer,
    now: Instant,
    process: Vec<Dispatch>,
    commits: Vec<CommitRequest>,
    dlq: Vec<DeadLetterWrite>,
    other: Vec<Action>,
}

impl H {
    fn new(config: ConsumerConfig) -> Self {
        let mut c = Consumer::new(config, Box::new(SplitMix64::new(1)), Instant::ZERO)
            .expect("valid config");
        c.handle_joined(MemberId::new("m"), GEN);
        Self {
            c,
            now: Instant::ZERO,
            process: vec![],
            commits: vec![],
            dlq: vec![],
            other: vec![],
        }
    }

    fn drain(&mut self) {
        while let Some(a) = self.c.poll_action() {
            match a {
                Action::Process(d) => self.process.push(d),
                Action::Commit(c) => self.commits.push(c),
                Action::DeadLetter(d) => self.dlq.push(*d),
                other => self.other.push(other),
            }
        }
    }

    fn assign(&mut self, ps: &[i32]) {
        let pos = StartPosition {
            committed: Some(Offset(0)),
            log_start: Offset(0),
            log_end: Offset(1_000),
        };
        self.c
            .handle_assigned(self.now, GEN, ps.iter().map(|&p| (tp(p), pos)).collect());
        self.drain();
    }

    fn fetch(&mut self, p: i32, offsets: std::ops::Range<i64>) {
        self.c.handle_fetched(
            self.now,
            offsets
                .map(|o| record(p, o, &format!("k{}", o % 3)))
                .collect::<Vec<_>>(),
        );
        self.drain();
    }

    /// Takes the dispatch of (p, offset).
    fn take(&mut self, p: i32, offset: i64) -> Dispatch {
        let i = self
            .process
            .iter()
            .position(|d| d.record.topic_partition == tp(p) && d.record.offset == Offset(offset))
            .unwrap_or_else(|| panic!("{p}/{offset} not dispatched; have {:?}", self.dispatched()));
        self.process.remove(i)
    }

    fn dispatched(&self) -> Vec<(i32, i64, u32)> {
        self.process
            .iter()
            .map(|d| {
                (
                    d.record.topic_partition.partition.0,
                    d.record.offset.0,
                    d.ticket.attempt(),
                )
            })
            .collect()
    }

    fn complete(&mut self, p: i32, offset: i64, result: Result<(), ProcessingError>) {
        let d = self.take(p, offset);
        self.c.handle_processed(self.now, d, result);
        self.drain();
    }

    fn ok(&mut self, p: i32, offset: i64) {
        self.complete(p, offset, Ok(()));
    }

    /// Acknowledges commits until none is pending (answering one may
    /// release the next: one commit in flight per partition).
    fn ack_commits(&mut self) {
        while !self.commits.is_empty() {
            for c in std::mem::take(&mut self.commits) {
                self.c.handle_commit_result(self.now, c.id, Ok(()));
            }
            self.drain();
        }
    }

    fn advance(&mut self, d: Duration) {
        let target = self.now + d;
        while let Some(t) = self.c.poll_timeout().filter(|t| *t <= target) {
            self.now = self.now.max(t);
            self.c.handle_timeout(self.now);
            self.drain();
        }
        self.now = target;
    }

    /// Highest offset any commit so far asked for on partition p.
    fn max_commit(&self, all: &[CommitRequest], p: i32) -> Option<Offset> {
        all.iter()
            .flat_map(|c| c.offsets.iter())
            .filter(|(t, _)| *t == tp(p))
            .map(|(_, o)| *o)
            .max()
    }

    fn stopped(&self) -> Option<&StopReason> {
        self.other.iter().find_map(|a| match a {
            Action::Stopped(r) => Some(r),
            _ => None,
        })
    }
}

#[test]
fn a_commit_never_passes_a_record_whose_dead_letter_write_failed() {
    let mut h = H::new(config());
    h.assign(&[0]);
    h.fetch(0, 0..6);
    h.ok(0, 0);
    h.complete(0, 1, Err(ProcessingError::permanent("poison")));
    let mut seen = Vec::new();
    // The dead-letter topic is down: every write fails, for a long while.
    for _ in 0..5 {
        let w = h.dlq.pop().expect("a dead-letter write (or its retry)");
        assert_eq!(w.letter.offset, Offset(1));
        h.c.handle_dead_letter_result(h.now, w.id, Err(ErrorCode::NotEnoughReplicas));
        h.drain();
        for o in 2..6 {
            if h.process.iter().any(|d| d.record.offset == Offset(o)) {
                h.ok(0, o);
            }
        }
        seen.extend(h.commits.clone());
        h.ack_commits();
        h.advance(Duration::from_secs(60));
    }
    assert_eq!(
        h.max_commit(&seen, 0),
        Some(Offset(1)),
        "commits stop before the record"
    );
    assert_eq!(h.c.committable(&tp(0)), Some(Offset(1)));
    // The write finally succeeds: now the commit passes it.
    let w = h.dlq.pop().expect("still retrying");
    h.c.handle_dead_letter_result(h.now, w.id, Ok(()));
    h.drain();
    h.ack_commits();
    assert_eq!(h.c.committed(&tp(0)), Some(Offset(6)));
}

#[test]
fn a_completion_arriving_after_revoke_is_not_committed() {
    let mut cfg = config();
    cfg.revoke_timeout = Duration::from_secs(1);
    let mut h = H::new(cfg);
    h.assign(&[0]);
    h.fetch(0, 0..3);
    let late = h.take(0, 0);
    h.c.handle_revoked(h.now, vec![tp(0)]);
    h.drain();
    assert!(
        !h.other
            .iter()
            .any(|a| matches!(a, Action::RevocationDone(_))),
        "waits for the in-flight record"
    );
    h.advance(Duration::from_secs(2));
    assert!(h
        .other
        .iter()
        .any(|a| matches!(a, Action::RevocationDone(v) if v == &vec![tp(0)])));
    h.c.handle_processed(h.now, late, Ok(()));
    h.drain();
    assert!(h.commits.is_empty(), "nothing committed: {:?}", h.commits);
    assert_eq!(h.c.stale_completions(), 1);
}

#[test]
fn a_completion_before_the_revoke_deadline_is_committed_with_the_still_valid_generation() {
    let mut h = H::new(config());
    h.assign(&[0]);
    h.fetch(0, 0..3);
    h.ok(0, 0);
    h.ack_commits();
    let d = h.take(0, 1);
    h.c.handle_revoked(h.now, vec![tp(0)]);
    h.drain();
    assert!(
        h.process.is_empty(),
        "no new dispatch from a revoked partition"
    );
    h.c.handle_processed(h.now, d, Ok(()));
    h.drain();
    let c = h.commits.pop().expect("the revocation commits");
    assert_eq!(
        (c.generation, c.offsets.clone(), c.urgent),
        (GEN, vec![(tp(0), Offset(2))], true)
    );
    assert!(
        !h.other
            .iter()
            .any(|a| matches!(a, Action::RevocationDone(_))),
        "done only after the commit answer"
    );
    h.c.handle_commit_result(h.now, c.id, Ok(()));
    h.drain();
    assert!(h
        .other
        .iter()
        .any(|a| matches!(a, Action::RevocationDone(_))));
    assert!(h.c.assignment().is_empty());
}

#[test]
fn a_poison_record_is_dead_lettered_after_exactly_max_attempts_and_the_records_behind_it_continue()
{
    let mut h = H::new(config());
    h.assign(&[0]);
    h.fetch(0, 0..4);
    h.ok(0, 0);
    let mut attempts = Vec::new();
    for _ in 0..3 {
        let d = h.take(0, 1);
        attempts.push(d.ticket.attempt());
        assert!(
            h.process.is_empty(),
            "nothing overtakes it on its partition"
        );
        h.c.handle_processed(h.now, d, Err(ProcessingError::transient("flaky")));
        h.drain();
        h.advance(Duration::from_secs(60));
    }
    assert_eq!(attempts, vec![1, 2, 3]);
    assert_eq!(
        h.dlq.len(),
        1,
        "dead-lettered once, after the third attempt"
    );
    assert_eq!(h.dlq[0].letter.attempts, 3);
    assert_eq!(h.dlq[0].letter.error_class, ErrorClass::Transient);
    // The records behind it continue while the write is in flight.
    h.ok(0, 2);
    h.ok(0, 3);
    assert!(h.max_commit(&h.commits, 0) <= Some(Offset(1)));
    h.ack_commits();
    assert_eq!(
        h.c.committed(&tp(0)),
        Some(Offset(1)),
        "not past the record awaiting its dead-letter ack"
    );
    let w = h.dlq.pop().unwrap();
    h.c.handle_dead_letter_result(h.now, w.id, Ok(()));
    h.drain();
    h.ack_commits();
    assert_eq!(h.c.committed(&tp(0)), Some(Offset(4)));
}

#[test]
fn a_permanent_failure_is_dead_lettered_without_retry() {
    let mut h = H::new(config());
    h.assign(&[0]);
    h.fetch(0, 0..2);
    h.complete(0, 0, Err(ProcessingError::permanent("bad json")));
    assert_eq!(h.dlq.len(), 1);
    assert_eq!(h.dlq[0].letter.attempts, 1);
    assert_eq!(h.dlq[0].letter.error_message, "bad json");
}

#[test]
fn a_fatal_error_stops_the_consumer_without_committing_the_failed_record() {
    let mut h = H::new(config());
    h.assign(&[0, 1]);
    h.fetch(0, 0..3);
    h.fetch(1, 0..2);
    h.ok(0, 0);
    h.ok(1, 0);
    h.ack_commits();
    h.complete(0, 1, Err(ProcessingError::fatal("credentials revoked")));
    // p1's record 1 is in flight: stopping waits for it.
    assert!(h.stopped().is_none());
    h.ok(1, 1);
    h.ack_commits();
    assert!(matches!(
        h.stopped(),
        Some(StopReason::Fatal {
            offset: Offset(1),
            ..
        })
    ));
    let all_commits: Vec<_> = h.c.committed(&tp(0)).into_iter().collect();
    assert_eq!(
        all_commits,
        vec![Offset(1)],
        "p0 committed up to, not past, the failed record"
    );
    assert_eq!(h.c.committed(&tp(1)), Some(Offset(2)));
    assert!(
        h.process.is_empty(),
        "nothing dispatched after the fatal error"
    );
}

#[test]
fn shutdown_commits_exactly_the_completed_prefix() {
    let mut cfg = config();
    cfg.ordering = Ordering::Key;
    cfg.commit = CommitStrategy::OnRevokeAndShutdown;
    cfg.shutdown_timeout = Duration::from_secs(5);
    let mut h = H::new(cfg);
    h.assign(&[0]);
    h.fetch(0, 0..3); // keys k0, k1, k2: all three in flight at once
    assert_eq!(h.process.len(), 3);
    h.ok(0, 0);
    h.ok(0, 2);
    h.c.shutdown(h.now);
    h.drain();
    assert!(h.commits.is_empty(), "waits for offset 1");
    h.fetch(0, 3..5);
    assert!(
        h.process.iter().all(|d| d.record.offset == Offset(1)),
        "nothing new after shutdown"
    );
    h.advance(Duration::from_secs(6)); // offset 1 never finishes
    let c = h.commits.pop().expect("final commit at the deadline");
    assert_eq!(
        c.offsets,
        vec![(tp(0), Offset(1))],
        "exactly the completed prefix"
    );
    assert!(
        h.stopped().is_none(),
        "stopped only once the commit is answered"
    );
    h.c.handle_commit_result(h.now, c.id, Ok(()));
    h.drain();
    assert_eq!(h.stopped(), Some(&StopReason::Shutdown));
}

#[test]
fn a_slow_record_on_one_partition_does_not_stop_another_partition() {
    let mut h = H::new(config());
    h.assign(&[0, 1]);
    h.fetch(0, 0..5);
    h.fetch(1, 0..5);
    let _slow = h.take(0, 0); // never completes
    for o in 0..5 {
        h.ok(1, o);
    }
    h.ack_commits();
    assert_eq!(h.c.committed(&tp(1)), Some(Offset(5)));
    // And a record waiting for its retry on p0 does not block p1 either.
    let mut h = H::new(config());
    h.assign(&[0, 1]);
    h.fetch(0, 0..3);
    h.complete(0, 0, Err(ProcessingError::transient("timeout")));
    assert!(h.other.contains(&Action::Pause(tp(0))), "only p0 pauses");
    h.fetch(1, 0..3);
    for o in 0..3 {
        h.ok(1, o);
    }
    assert!(!h.other.contains(&Action::Pause(tp(1))));
    assert!(h.process.is_empty(), "p0 waits for its retry");
}

#[test]
fn retries_wait_for_their_backoff() {
    let mut h = H::new(config());
    h.assign(&[0]);
    h.fetch(0, 0..1);
    h.complete(0, 0, Err(ProcessingError::transient("x")));
    assert_eq!(h.c.poll_timeout(), Some(Instant::from_millis(500)));
    h.advance(Duration::from_millis(499));
    assert!(h.process.is_empty());
    h.advance(Duration::from_millis(1));
    assert_eq!(h.dispatched(), vec![(0, 0, 2)]);
    h.complete(0, 0, Err(ProcessingError::transient("x")));
    assert_eq!(
        h.c.poll_timeout(),
        Some(Instant::from_millis(1_500)),
        "500 ms × 2"
    );
}

#[test]
fn key_ordering_runs_keys_in_parallel_and_each_key_in_order() {
    let mut cfg = config();
    cfg.ordering = Ordering::Key;
    let mut h = H::new(cfg);
    h.assign(&[0]);
    h.fetch(0, 0..6); // keys k0 k1 k2 k0 k1 k2
    assert_eq!(
        h.dispatched().iter().map(|d| d.1).collect::<Vec<_>>(),
        vec![0, 1, 2]
    );
    h.ok(0, 1);
    assert_eq!(
        h.dispatched().iter().map(|d| d.1).collect::<Vec<_>>(),
        vec![0, 2, 4],
        "k1's next"
    );
    // A retry on k0 holds k0 only.
    h.complete(0, 0, Err(ProcessingError::transient("x")));
    h.ok(0, 2);
    assert!(
        h.dispatched().iter().all(|d| d.1 != 3),
        "k0's next waits behind its retry"
    );
    assert!(h.dispatched().iter().any(|d| d.1 == 5));
}

#[test]
fn backpressure_pauses_and_resumes_fetching() {
    let mut cfg = config();
    cfg.max_buffered_per_partition = 4;
    let mut h = H::new(cfg);
    h.assign(&[0]);
    h.fetch(0, 0..4);
    assert!(h.other.contains(&Action::Pause(tp(0))));
    h.ok(0, 0);
    assert!(
        !h.other.contains(&Action::Resume(tp(0))),
        "3 left, above half"
    );
    h.ok(0, 1);
    assert!(h.other.contains(&Action::Resume(tp(0))), "2 left: half");
}

#[test]
fn the_in_flight_limit_is_global() {
    let mut cfg = config();
    cfg.max_in_flight = 2;
    let mut h = H::new(cfg);
    h.assign(&[0, 1, 2]);
    for p in 0..3 {
        h.fetch(p, 0..2);
    }
    assert_eq!(h.process.len(), 2);
    let first = h.dispatched()[0];
    h.ok(first.0, first.1);
    assert_eq!(h.process.len(), 2, "one freed, one more dispatched");
    assert_eq!(h.c.in_flight(), 2);
}

#[test]
fn lost_partitions_drop_in_flight_work_and_commit_nothing() {
    let mut h = H::new(config());
    h.assign(&[0]);
    h.fetch(0, 0..3);
    let d = h.take(0, 0);
    h.c.handle_lost(h.now, vec![tp(0)]);
    h.drain();
    h.c.handle_processed(h.now, d, Ok(()));
    h.drain();
    assert!(h.commits.is_empty());
    assert_eq!(h.c.stale_completions(), 1);
    assert_eq!(h.c.in_flight(), 0);
    // Reassigned later: a fresh epoch, old tickets stay stale.
    h.assign(&[0]);
    h.fetch(0, 0..1);
    h.ok(0, 0);
    assert_eq!(h.max_commit(&h.commits, 0), Some(Offset(1)));
}

#[test]
fn one_commit_in_flight_per_partition_and_never_reordered() {
    let mut h = H::new(config());
    h.assign(&[0]);
    h.fetch(0, 0..3);
    h.ok(0, 0);
    h.ok(0, 1);
    h.ok(0, 2);
    assert_eq!(h.commits.len(), 1, "the others wait for the first answer");
    let first = h.commits.remove(0);
    assert_eq!(first.offsets, vec![(tp(0), Offset(1))]);
    h.c.handle_commit_result(h.now, first.id, Ok(()));
    h.drain();
    assert_eq!(h.commits.len(), 1);
    assert_eq!(
        h.commits[0].offsets,
        vec![(tp(0), Offset(3))],
        "then the latest, in order"
    );
}

#[test]
fn a_retriable_commit_failure_is_retried_after_backoff() {
    let mut h = H::new(config());
    h.assign(&[0]);
    h.fetch(0, 0..1);
    h.ok(0, 0);
    let c = h.commits.remove(0);
    h.c.handle_commit_result(h.now, c.id, Err(ErrorCode::CoordinatorLoadInProgress));
    h.drain();
    assert!(h.commits.is_empty());
    h.advance(Duration::from_millis(100));
    assert_eq!(h.commits.len(), 1, "retried");
    assert_eq!(h.commits[0].offsets, vec![(tp(0), Offset(1))]);
}

/// The pause/resume actions among `actions` for partition p, in order:
/// true for a pause.
fn pauses(actions: &[Action], p: i32) -> Vec<bool> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Pause(t) if *t == tp(p) => Some(true),
            Action::Resume(t) if *t == tp(p) => Some(false),
            _ => None,
        })
        .collect()
}

/// Issue 14: a partition lost while paused for a retry and assigned again
/// was never resumed (the engine forgot the pause, the transport kept it).
#[test]
fn a_partition_lost_while_paused_for_a_retry_is_resumed_when_assigned_again() {
    let mut h = H::new(config());
    h.assign(&[0]);
    h.fetch(0, 0..3);
    h.complete(0, 0, Err(ProcessingError::transient("later")));
    assert_eq!(pauses(&h.other, 0), vec![true], "paused for the retry");
    h.c.handle_lost(h.now, vec![tp(0)]);
    h.drain();
    h.other.clear();
    h.assign(&[0]);
    let seek = h
        .other
        .iter()
        .position(|a| matches!(a, Action::Seek { tp: t, .. } if *t == tp(0)))
        .expect("seek");
    let resume = h
        .other
        .iter()
        .position(|a| matches!(a, Action::Resume(t) if *t == tp(0)))
        .expect("the new ownership lifts the old pause");
    assert!(seek < resume, "resumed after its seek: {:?}", h.other);
    assert_eq!(h.c.is_paused(&tp(0)), Some(false));
    h.fetch(0, 0..3);
    h.ok(0, 0);
    assert_eq!(h.max_commit(&h.commits, 0), Some(Offset(1)));
}

#[test]
fn a_partition_revoked_while_paused_is_resumed_when_assigned_again() {
    let mut h = H::new(config());
    h.assign(&[0, 1]);
    h.c.handle_revoked(h.now, vec![tp(0)]);
    h.drain();
    assert_eq!(
        pauses(&h.other, 0),
        vec![true],
        "a revoked partition is paused"
    );
    assert!(h
        .other
        .iter()
        .any(|a| matches!(a, Action::RevocationDone(t) if *t == vec![tp(0)])));
    h.other.clear();
    h.assign(&[0]);
    assert_eq!(pauses(&h.other, 0), vec![false]);
    // A partition that was never paused gets no resume.
    h.c.handle_lost(h.now, vec![tp(1)]);
    h.drain();
    h.other.clear();
    h.assign(&[1]);
    assert_eq!(pauses(&h.other, 1), Vec::<bool>::new());
}

/// Issue 14: a commit the coordinator refused because the member is out of
/// its generation was re-sent at once, forever.
#[test]
fn a_commit_refused_as_out_of_the_generation_asks_to_rejoin_and_waits_its_backoff() {
    for error in [
        ErrorCode::UnknownMemberId,
        ErrorCode::IllegalGeneration,
        ErrorCode::RebalanceInProgress,
        ErrorCode::FencedInstanceId,
    ] {
        let mut h = H::new(config());
        h.assign(&[0]);
        h.fetch(0, 0..3);
        h.ok(0, 0);
        let c = h.commits.remove(0);
        h.c.handle_commit_result(h.now, c.id, Err(error));
        h.drain();
        assert!(h.commits.is_empty(), "{error:?}: not re-sent at once");
        let rejoins: Vec<&Action> = h
            .other
            .iter()
            .filter(|a| matches!(a, Action::Rejoin { .. }))
            .collect();
        assert_eq!(
            rejoins,
            vec![&Action::Rejoin {
                generation: GEN,
                error
            }],
            "{error:?}"
        );
        // More completions do not commit before the backoff either.
        h.ok(0, 1);
        assert!(h.commits.is_empty(), "{error:?}");
        h.advance(Duration::from_millis(100));
        assert_eq!(h.commits.len(), 1, "{error:?}: retried after the backoff");
        let c = h.commits.remove(0);
        h.c.handle_commit_result(h.now, c.id, Err(error));
        h.drain();
        let asked = h
            .other
            .iter()
            .filter(|a| matches!(a, Action::Rejoin { .. }))
            .count();
        assert_eq!(asked, 1, "{error:?}: asked once per generation");
    }
}

#[test]
fn a_refused_commit_of_an_older_generation_asks_for_nothing() {
    let mut h = H::new(config());
    h.assign(&[0]);
    h.fetch(0, 0..1);
    h.ok(0, 0);
    let c = h.commits.remove(0);
    h.c.handle_joined(MemberId::new("m"), Generation(6));
    h.c.handle_commit_result(h.now, c.id, Err(ErrorCode::IllegalGeneration));
    h.drain();
    assert!(!h.other.iter().any(|a| matches!(a, Action::Rejoin { .. })));
}

#[test]
fn any_refused_commit_waits_its_backoff() {
    let mut h = H::new(config());
    h.assign(&[0]);
    h.fetch(0, 0..2);
    h.ok(0, 0);
    let c = h.commits.remove(0);
    h.c.handle_commit_result(h.now, c.id, Err(ErrorCode::UnknownServerError));
    h.drain();
    h.ok(0, 1);
    assert!(h.commits.is_empty(), "not re-sent at once");
    assert!(!h.other.iter().any(|a| matches!(a, Action::Rejoin { .. })));
    h.advance(Duration::from_millis(100));
    assert_eq!(h.commits.len(), 1);
    assert_eq!(h.commits[0].offsets, vec![(tp(0), Offset(2))]);
}

/// Issue 14: a revocation still waiting for its in-flight records when the
/// member joined a newer generation committed with the newer one — in
/// which the partition may already be another member's, whose committed
/// offset the coordinator then let this member move back.
#[test]
fn a_revocation_commits_with_the_generation_it_began_in() {
    let mut h = H::new(config());
    h.assign(&[0]);
    h.fetch(0, 0..3);
    let d = h.take(0, 0);
    h.c.handle_revoked(h.now, vec![tp(0)]);
    h.drain();
    h.c.handle_joined(MemberId::new("m"), Generation(6));
    h.c.handle_processed(h.now, d, Ok(()));
    h.drain();
    assert_eq!(h.commits.len(), 1, "the revocation's final commit");
    assert_eq!(h.commits[0].offsets, vec![(tp(0), Offset(1))]);
    assert_eq!(h.commits[0].generation, GEN, "not the newer generation 6");
}

/// Issue 14 (found by the configuration swarm): a final commit refused
/// with a retriable error was not tried again, so a graceful stop during a
/// commit-error burst left the completed work uncommitted.
#[test]
fn a_final_commit_refused_with_a_retriable_error_is_retried_until_the_shutdown_deadline() {
    let mut cfg = config();
    cfg.commit = CommitStrategy::OnRevokeAndShutdown;
    let mut h = H::new(cfg);
    h.assign(&[0]);
    h.fetch(0, 0..2);
    h.ok(0, 0);
    h.ok(0, 1);
    assert!(
        h.commits.is_empty(),
        "on-revoke: nothing committed while running"
    );
    h.c.shutdown(h.now);
    h.drain();
    for error in [
        ErrorCode::NotCoordinator,
        ErrorCode::RebalanceInProgress,
        ErrorCode::RequestTimedOut,
    ] {
        assert_eq!(h.commits.len(), 1, "the final commit");
        let c = h.commits.remove(0);
        h.c.handle_commit_result(h.now, c.id, Err(error));
        h.drain();
        assert!(
            h.stopped().is_none(),
            "not stopped while it may still commit"
        );
        assert!(
            !h.other.iter().any(|a| matches!(a, Action::Rejoin { .. })),
            "a stopping member does not rejoin"
        );
        h.advance(Duration::from_millis(100));
    }
    let c = h.commits.remove(0);
    assert_eq!(c.offsets, vec![(tp(0), Offset(2))]);
    h.c.handle_commit_result(h.now, c.id, Ok(()));
    h.drain();
    assert_eq!(h.stopped(), Some(&StopReason::Shutdown));
}

#[test]
fn a_final_commit_refused_for_good_stops_at_once() {
    let mut h = H::new(config());
    h.assign(&[0]);
    h.fetch(0, 0..1);
    let d = h.take(0, 0);
    h.c.shutdown(h.now);
    h.drain();
    h.c.handle_processed(h.now, d, Ok(()));
    h.drain();
    let c = h.commits.remove(0);
    h.c.handle_commit_result(h.now, c.id, Err(ErrorCode::UnknownMemberId));
    h.drain();
    assert_eq!(h.stopped(), Some(&StopReason::Shutdown));
}

#[test]
fn the_dead_letter_limit_stops_the_consumer_instead_of_dead_lettering() {
    let mut cfg = config();
    cfg.dead_letter.as_mut().unwrap().limit = DlqLimit {
        max_consecutive: Some(1),
        ..DlqLimit::default()
    };
    let mut h = H::new(cfg);
    h.assign(&[0]);
    h.fetch(0, 0..3);
    h.complete(0, 0, Err(ProcessingError::permanent("a")));
    let w = h.dlq.remove(0);
    h.c.handle_dead_letter_result(h.now, w.id, Ok(()));
    h.drain();
    h.complete(0, 1, Err(ProcessingError::permanent("b")));
    assert!(h.dlq.is_empty(), "the second is not dead-lettered");
    h.ack_commits();
    assert!(matches!(
        h.stopped(),
        Some(StopReason::DeadLetterLimit {
            offset: Offset(1),
            ..
        })
    ));
    assert_eq!(h.c.committed(&tp(0)), Some(Offset(1)), "not past it");
}

#[test]
fn without_a_dead_letter_topic_a_poison_record_stops_the_consumer() {
    let mut cfg = config();
    cfg.dead_letter = None;
    let mut h = H::new(cfg);
    h.assign(&[0]);
    h.fetch(0, 0..2);
    h.complete(0, 0, Err(ProcessingError::permanent("poison")));
    h.ack_commits();
    assert!(matches!(
        h.stopped(),
        Some(StopReason::NoDeadLetterTopic { .. })
    ));
    assert!(h.commits.is_empty() && h.c.committed(&tp(0)) == Some(Offset(0)));
}

#[test]
fn a_transient_failure_during_shutdown_is_abandoned_not_dead_lettered() {
    let mut cfg = config();
    cfg.ordering = Ordering::Key;
    let mut h = H::new(cfg);
    h.assign(&[0]);
    h.fetch(0, 0..2);
    h.c.shutdown(h.now);
    h.drain();
    h.complete(0, 0, Err(ProcessingError::transient("x")));
    h.ok(0, 1);
    assert!(h.dlq.is_empty(), "retries were not exhausted");
    assert!(
        h.max_commit(&h.commits, 0).is_none(),
        "offset 0 unfinished: nothing to commit"
    );
}

#[test]
fn the_start_position_is_the_commit_or_the_reset_policy() {
    let mut h = H::new(config());
    let pos = |committed| StartPosition {
        committed,
        log_start: Offset(10),
        log_end: Offset(50),
    };
    h.c.handle_assigned(
        h.now,
        GEN,
        vec![
            (tp(0), pos(Some(Offset(20)))),
            (tp(1), pos(None)),
            (tp(2), pos(Some(Offset(3)))),
        ],
    );
    h.drain();
    let seeks: Vec<_> = h
        .other
        .iter()
        .filter_map(|a| match a {
            Action::Seek { tp, offset } => Some((tp.partition, *offset)),
            _ => None,
        })
        .collect();
    assert_eq!(
        seeks,
        vec![
            (Partition(0), Offset(20)),
            (Partition(1), Offset(10)),
            (Partition(2), Offset(10))
        ]
    );
    let mut cfg = config();
    cfg.offset_reset = OffsetReset::Latest;
    let mut h = H::new(cfg);
    h.c.handle_assigned(h.now, GEN, vec![(tp(0), pos(None))]);
    h.drain();
    assert!(h.other.contains(&Action::Seek {
        tp: tp(0),
        offset: Offset(50)
    }));
}

#[test]
fn refetched_records_are_not_processed_twice() {
    let mut h = H::new(config());
    h.assign(&[0]);
    h.fetch(0, 0..2);
    h.ok(0, 0);
    h.fetch(0, 0..3);
    assert_eq!(h.dispatched(), vec![(0, 1, 1)]);
}

#[test]
fn invalid_configuration_is_rejected_naming_the_field() {
    let bad = |f: &dyn Fn(&mut ConsumerConfig)| {
        let mut c = config();
        f(&mut c);
        Consumer::new(c, Box::new(SplitMix64::new(0)), Instant::ZERO)
            .err()
            .map(|e| e.field)
    };
    assert_eq!(bad(&|c| c.max_in_flight = 0), Some("max_in_flight"));
    assert_eq!(
        bad(&|c| c.max_in_flight_per_partition = 0),
        Some("max_in_flight_per_partition")
    );
    assert_eq!(
        bad(&|c| c.retry.max_attempts = 0),
        Some("retry.max_attempts")
    );
    assert_eq!(
        bad(&|c| c.retry.max_backoff = Duration::from_millis(1)),
        Some("retry.max_backoff")
    );
    assert_eq!(bad(&|c| c.retry.jitter = 1.5), Some("retry.jitter"));
    assert_eq!(
        bad(&|c| c.dead_letter.as_mut().unwrap().topic = Topic::new("in")),
        Some("dead_letter.topic")
    );
    assert_eq!(
        bad(&|c| c.dead_letter.as_mut().unwrap().write_backoff.max_backoff = Duration::ZERO),
        Some("dead_letter.write_backoff.max_backoff")
    );
    assert_eq!(bad(&|c| c.topics.clear()), Some("topics"));
    assert_eq!(bad(&|c| c.group_id = GroupId::new("")), Some("group_id"));
    assert_eq!(
        bad(&|c| c.commit = CommitStrategy::Periodic {
            records: 0,
            interval: Duration::from_secs(1)
        }),
        Some("commit")
    );
    assert_eq!(bad(&|_| {}), None);
    let msg = bad_message();
    assert!(msg.contains("`max_in_flight`"), "{msg}");
}

fn bad_message() -> String {
    let mut c = config();
    c.max_in_flight = 0;
    Consumer::new(c, Box::new(SplitMix64::new(0)), Instant::ZERO)
        .unwrap_err()
        .to_string()
}

mod interleavings {
    //! For any interleaving of fetch, complete (ok / transient / permanent /
    //! fatal), dead-letter results, commit results, revoke, lost, assign and
    //! time, every commit the engine asks for is at or below the first
    //! record of that assignment that was neither processed nor
    //! acknowledged by the dead-letter topic, and within one assignment the
    //! committed offsets never go backwards.

    use std::collections::{BTreeMap, BTreeSet};

    use proptest::prelude::*;

    use super::*;

    #[derive(Clone, Debug)]
    enum Op {
        Fetch { p: u8, n: u8 },
        Complete { pick: u8, outcome: u8 },
        DeadLetter { pick: u8, ok: bool },
        Commit { pick: u8, ok: bool },
        Revoke { p: u8 },
        Lost { p: u8 },
        Assign { p: u8 },
        Advance { ms: u16 },
        Shutdown,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (0u8..3, 1u8..6).prop_map(|(p, n)| Op::Fetch { p, n }),
            6 => (any::<u8>(), 0u8..10).prop_map(|(pick, outcome)| Op::Complete { pick, outcome }),
            2 => (any::<u8>(), any::<bool>()).prop_map(|(pick, ok)| Op::DeadLetter { pick, ok }),
            3 => (any::<u8>(), any::<bool>()).prop_map(|(pick, ok)| Op::Commit { pick, ok }),
            1 => (0u8..3).prop_map(|p| Op::Revoke { p }),
            1 => (0u8..3).prop_map(|p| Op::Lost { p }),
            1 => (0u8..3).prop_map(|p| Op::Assign { p }),
            2 => (0u16..3_000).prop_map(|ms| Op::Advance { ms }),
            1 => Just(Op::Shutdown),
        ]
    }

    /// The model's view of one partition's current assignment.
    #[derive(Default, Debug)]
    struct Model {
        assignment: u32,
        start: i64,
        next: i64,
        unfinished: BTreeSet<i64>,
        last_commit: Option<i64>,
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 1024, ..ProptestConfig::default() })]

        #[test]
        fn commits_never_pass_an_unfinished_record(ops in proptest::collection::vec(op(), 1..150), key_mode in any::<bool>(), strategy in 0u8..3) {
            let mut cfg = config();
            cfg.ordering = if key_mode { Ordering::Key } else { Ordering::Partition };
            cfg.commit = match strategy {
                0 => CommitStrategy::PerRecord,
                1 => CommitStrategy::Periodic { records: 3, interval: Duration::from_millis(700) },
                _ => CommitStrategy::OnRevokeAndShutdown,
            };
            cfg.revoke_timeout = Duration::from_millis(1_500);
            let mut h = H::new(cfg);
            let mut model: BTreeMap<i32, Model> = BTreeMap::new();
            let mut assignments = 0u32;
            // Which model assignment each dispatched ticket and DLQ write belongs to.
            let mut ticket_of: BTreeMap<(i32, i64, u32), u32> = BTreeMap::new();
            let mut dlq_of: BTreeMap<DeadLetterId, (i32, i64, u32)> = BTreeMap::new();
            let mut committed_ranges: Vec<(i32, u32, i64)> = Vec::new();
            let mut transport_paused: BTreeSet<TopicPartition> = BTreeSet::new();

            let assign = |h: &mut H, model: &mut BTreeMap<i32, Model>, assignments: &mut u32, p: i32| {
                *assignments += 1;
                let start = model.get(&p).map_or(0, |m| m.last_commit.unwrap_or(m.start));
                let pos = StartPosition { committed: Some(Offset(start)), log_start: Offset(0), log_end: Offset(10_000) };
                h.c.handle_assigned(h.now, GEN, vec![(tp(p), pos)]);
                model.insert(p, Model { assignment: *assignments, start, next: start, ..Model::default() });
            };
            for p in 0..3 {
                assign(&mut h, &mut model, &mut assignments, p);
            }
            h.drain();

            for op in ops {
                match op {
                    Op::Fetch { p, n } => {
                        let p = i32::from(p);
                        if let Some(m) = model.get_mut(&p) {
                            let from = m.next;
                            let recs: Vec<Record> = (from..from + i64::from(n)).map(|o| record(p, o, &format!("k{}", o % 2))).collect();
                            // The engine refuses records of a revoking or stopping
                            // partition; the model learns that from the engine.
                            let accepting = h.c.committable(&tp(p)).is_some();
                            h.c.handle_fetched(h.now, recs);
                            if accepting {
                                m.next = from + i64::from(n);
                                m.unfinished.extend(from..from + i64::from(n));
                            }
                        }
                    }
                    Op::Complete { pick, outcome } => {
                        if h.process.is_empty() { continue; }
                        let d = h.process.remove(pick as usize % h.process.len());
                        let p = d.record.topic_partition.partition.0;
                        let o = d.record.offset.0;
                        let result = match outcome {
                            0 => Err(ProcessingError::transient("t")),
                            1 => Err(ProcessingError::permanent("p")),
                            2 if o % 7 == 3 => Err(ProcessingError::fatal("f")),
                            _ => Ok(()),
                        };
                        let a = ticket_of.get(&(p, o, d.ticket.attempt())).copied();
                        if result.is_ok() {
                            if let (Some(a), Some(m)) = (a, model.get_mut(&p)) {
                                if m.assignment == a && h.c.committable(&tp(p)).is_some() {
                                    m.unfinished.remove(&o);
                                }
                            }
                        }
                        h.c.handle_processed(h.now, d, result);
                    }
                    Op::DeadLetter { pick, ok } => {
                        if h.dlq.is_empty() { continue; }
                        let w = h.dlq.remove(pick as usize % h.dlq.len());
                        if ok {
                            if let Some(&(p, o, a)) = dlq_of.get(&w.id) {
                                if let Some(m) = model.get_mut(&p) {
                                    if m.assignment == a && h.c.committable(&tp(p)).is_some() {
                                        m.unfinished.remove(&o);
                                    }
                                }
                            }
                        }
                        let r = if ok { Ok(()) } else { Err(ErrorCode::NotEnoughReplicas) };
                        h.c.handle_dead_letter_result(h.now, w.id, r);
                    }
                    Op::Commit { pick, ok } => {
                        if h.commits.is_empty() { continue; }
                        let c = h.commits.remove(pick as usize % h.commits.len());
                        let r = match (ok, pick % 3) {
                            (true, _) => Ok(()),
                            (false, 0) => Err(ErrorCode::UnknownMemberId),
                            (false, _) => Err(ErrorCode::RequestTimedOut),
                        };
                        h.c.handle_commit_result(h.now, c.id, r);
                    }
                    Op::Revoke { p } => h.c.handle_revoked(h.now, vec![tp(i32::from(p))]),
                    Op::Lost { p } => {
                        h.c.handle_lost(h.now, vec![tp(i32::from(p))]);
                        model.remove(&i32::from(p));
                    }
                    Op::Assign { p } => {
                        let p = i32::from(p);
                        if h.c.committable(&tp(p)).is_none() && !h.c.is_stopped() {
                            assign(&mut h, &mut model, &mut assignments, p);
                        }
                    }
                    Op::Advance { ms } => {
                        let target = h.now + Duration::from_millis(u64::from(ms));
                        while let Some(t) = h.c.poll_timeout().filter(|t| *t <= target) {
                            h.now = h.now.max(t);
                            h.c.handle_timeout(h.now);
                            collect(&mut h, &model, &mut ticket_of, &mut dlq_of, &mut committed_ranges)?;
                        }
                        h.now = target;
                    }
                    Op::Shutdown => h.c.shutdown(h.now),
                }
                collect(&mut h, &model, &mut ticket_of, &mut dlq_of, &mut committed_ranges)?;
                // The transport does exactly what it is told about pauses and
                // keeps them across assignments (the rule on `Transport`):
                // what it was told must be the engine's view of every
                // partition the engine owns.
                for a in h.other.drain(..) {
                    match a {
                        Action::Pause(t) => { transport_paused.insert(t); }
                        Action::Resume(t) => { transport_paused.remove(&t); }
                        _ => {}
                    }
                }
                for p in 0..3 {
                    if let Some(paused) = h.c.is_paused(&tp(p)) {
                        prop_assert_eq!(paused, transport_paused.contains(&tp(p)), "p{} pause at the transport", p);
                    }
                }
                // Partitions the engine released are gone from the model too.
                model.retain(|p, _| h.c.committable(&tp(*p)).is_some());
            }
            // Monotone within an assignment.
            let mut last: BTreeMap<(i32, u32), i64> = BTreeMap::new();
            for (p, a, o) in committed_ranges {
                let l = last.entry((p, a)).or_insert(o);
                prop_assert!(o >= *l, "p{} assignment {}: commit {} after {}", p, a, o, l);
                *l = o;
            }
        }
    }

    /// Drains actions, checking each commit against the model.
    fn collect(
        h: &mut H,
        model: &BTreeMap<i32, Model>,
        ticket_of: &mut BTreeMap<(i32, i64, u32), u32>,
        dlq_of: &mut BTreeMap<DeadLetterId, (i32, i64, u32)>,
        committed: &mut Vec<(i32, u32, i64)>,
    ) -> Result<(), TestCaseError> {
        let before_p = h.process.len();
        let before_c = h.commits.len();
        let before_d = h.dlq.len();
        h.drain();
        for d in &h.process[before_p..] {
            let p = d.record.topic_partition.partition.0;
            if let Some(m) = model.get(&p) {
                ticket_of.insert((p, d.record.offset.0, d.ticket.attempt()), m.assignment);
            }
        }
        for w in &h.dlq[before_d..] {
            let p = w.letter.source.partition.0;
            if let Some(m) = model.get(&p) {
                dlq_of
                    .entry(w.id)
                    .or_insert((p, w.letter.offset.0, m.assignment));
            }
        }
        for c in &h.commits[before_c..] {
            for (t, o) in &c.offsets {
                let p = t.partition.0;
                let m = model.get(&p).expect("commits only for owned partitions");
                let limit = m.unfinished.first().copied().unwrap_or(m.next);
                prop_assert!(
                    o.0 <= limit,
                    "p{}: commit {} passes unfinished {} ({:?})",
                    p,
                    o.0,
                    limit,
                    m.unfinished
                );
                committed.push((p, m.assignment, o.0));
            }
        }
        Ok(())
    }
}
