//! Each checker fires on a hand-built bad history and stays quiet on a
//! good one.

use std::time::Duration;

use crate::fault::{Fault, FaultRecord, Target};
use crate::record::{BrokerEvent, Entry, GenerationMember, Record};
use ruckus_core::consumer::{ErrorClass, RetryPolicy};
use ruckus_core::coordinator::GroupState;
use ruckus_core::events::Event;
use ruckus_core::model::{ErrorCode, Generation, Instant, MemberId, Offset, TopicPartition};

use super::*;

fn tp() -> TopicPartition {
    TopicPartition::new("orders", 0)
}

fn e(at: u64, host: &str, event: Event) -> Entry {
    Entry::client(Instant::from_millis(at), host, event)
}

/// The client event of an entry (tests build client-only histories where
/// they use it; any other record reads as `Left`, which no test matches).
trait Ev {
    fn ev(&self) -> &Event;
    fn ev_mut(&mut self) -> &mut Event;
}

static NOT_CLIENT: Event = Event::Left;

impl Ev for Entry {
    fn ev(&self) -> &Event {
        self.event().unwrap_or(&NOT_CLIENT)
    }
    fn ev_mut(&mut self) -> &mut Event {
        match &mut self.record {
            Record::Client(e) => e,
            other => panic!("not a client event: {other:?}"),
        }
    }
}

fn policy() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 3,
        initial_backoff: Duration::from_millis(20),
        max_backoff: Duration::from_secs(1),
        multiplier: 2.0,
        jitter: 0.2,
    }
}

fn ctx() -> Context {
    Context {
        retry: policy(),
        order: Order::Partition,
        liveness: Liveness {
            deadline: Instant::from_millis(5_000),
            converged_at: Some(Instant::from_millis(1_000)),
            lagging: vec![],
            unstopped: vec![],
        },
        resolution: std::time::Duration::ZERO,
        no_rebalance: None,
    }
}

fn g(n: i32) -> Generation {
    Generation(n)
}

fn started(at: u64, host: &str, o: i64, attempt: u32) -> Entry {
    e(
        at,
        host,
        Event::ProcessingStarted {
            tp: tp(),
            offset: Offset(o),
            attempt,
        },
    )
}

fn succeeded(at: u64, host: &str, o: i64, attempt: u32) -> Entry {
    e(
        at,
        host,
        Event::ProcessingSucceeded {
            tp: tp(),
            offset: Offset(o),
            attempt,
        },
    )
}

fn assigned(at: u64, host: &str, start: i64, generation: i32) -> Entry {
    e(
        at,
        host,
        Event::Assigned {
            partitions: vec![(tp(), Offset(start))],
            generation: g(generation),
        },
    )
}

fn commit(at: u64, host: &str, o: i64, generation: i32) -> [Entry; 2] {
    [
        e(
            at,
            host,
            Event::CommitRequested {
                tp: tp(),
                offset: Offset(o),
                generation: g(generation),
            },
        ),
        e(
            at + 30,
            host,
            Event::Committed {
                tp: tp(),
                offset: Offset(o),
                generation: g(generation),
            },
        ),
    ]
}

/// Three records produced; consumer-0 processes them, the third after one
/// transient failure and a retry within policy; commits 3; then hands the
/// partition to consumer-1 in generation 2, which starts at 3 and
/// processes a fourth record.
fn good() -> Vec<Entry> {
    let c0 = "consumer-0";
    let mut h = vec![
        e(
            0,
            "producer",
            Event::Produced {
                tp: tp(),
                offset: Offset(0),
            },
        ),
        e(
            0,
            "producer",
            Event::Produced {
                tp: tp(),
                offset: Offset(1),
            },
        ),
        e(
            0,
            "producer",
            Event::Produced {
                tp: tp(),
                offset: Offset(2),
            },
        ),
        e(
            10,
            c0,
            Event::Joined {
                member_id: MemberId::new("m0"),
                generation: g(1),
            },
        ),
        assigned(20, c0, 0, 1),
        e(
            30,
            c0,
            Event::Fetched {
                tp: tp(),
                offset: Offset(0),
            },
        ),
        e(
            30,
            c0,
            Event::Fetched {
                tp: tp(),
                offset: Offset(1),
            },
        ),
        e(
            30,
            c0,
            Event::Fetched {
                tp: tp(),
                offset: Offset(2),
            },
        ),
        started(31, c0, 0, 1),
        succeeded(32, c0, 0, 1),
        started(33, c0, 1, 1),
        succeeded(34, c0, 1, 1),
        started(35, c0, 2, 1),
        e(
            36,
            c0,
            Event::ProcessingFailed {
                tp: tp(),
                offset: Offset(2),
                attempt: 1,
                class: ErrorClass::Transient,
                message: "timeout".into(),
            },
        ),
        e(
            36,
            c0,
            Event::Retried {
                tp: tp(),
                offset: Offset(2),
                next_attempt: 2,
                delay: Duration::from_millis(18),
            },
        ),
        started(54, c0, 2, 2),
        succeeded(55, c0, 2, 2),
    ];
    h.extend(commit(60, c0, 3, 1));
    h.push(e(
        200,
        c0,
        Event::Revoked {
            partitions: vec![tp()],
            generation: g(2),
        },
    ));
    h.push(e(
        250,
        "consumer-1",
        Event::Joined {
            member_id: MemberId::new("m1"),
            generation: g(2),
        },
    ));
    h.push(assigned(260, "consumer-1", 3, 2));
    h.push(e(
        270,
        "producer",
        Event::Produced {
            tp: tp(),
            offset: Offset(3),
        },
    ));
    h.push(started(280, "consumer-1", 3, 1));
    h.push(succeeded(281, "consumer-1", 3, 1));
    h.extend(commit(300, "consumer-1", 4, 2));
    h
}

fn fires(inv: Invariant, h: &[Entry]) -> Violation {
    match check_one(inv, h, &ctx()) {
        Some(v) => {
            assert_eq!(v.invariant, inv);
            assert!(!v.slice.is_empty(), "a violation shows its history");
            v
        }
        None => panic!("{inv} did not fire on a bad history"),
    }
}

fn index_of(h: &[Entry], f: impl Fn(&Entry) -> bool) -> usize {
    h.iter().position(f).expect("entry present")
}

#[test]
fn every_checker_is_quiet_on_a_good_history() {
    let found = check(&good(), &ctx(), &Invariant::ALL);
    assert!(found.is_empty(), "{found:#?}");
}

#[test]
fn zero_loss_fires_on_a_record_never_finished() {
    let mut h = good();
    h.retain(|x| {
        !matches!(
            x.ev(),
            Event::ProcessingSucceeded {
                offset: Offset(1),
                ..
            }
        )
    });
    let v = fires(Invariant::ZeroLoss, &h);
    assert_eq!(
        (v.partition.as_deref(), v.offset),
        (Some("orders-0"), Some(1))
    );
    assert!(v.detail.contains("never processed"), "{}", v.detail);
}

#[test]
fn zero_loss_accepts_dead_lettered_records() {
    let mut h = good();
    let i = index_of(&h, |x| {
        matches!(
            x.ev(),
            Event::ProcessingSucceeded {
                offset: Offset(1),
                ..
            }
        )
    });
    *h[i].ev_mut() = Event::DeadLettered {
        tp: tp(),
        offset: Offset(1),
        attempts: 1,
    };
    assert!(check_one(Invariant::ZeroLoss, &h, &ctx()).is_none());
}

#[test]
fn commit_safety_fires_on_a_commit_past_an_unfinished_record() {
    let mut h = good();
    // Commit 3 right after record 1, before 2 finished.
    let c = index_of(&h, |x| matches!(x.ev(), Event::CommitRequested { .. }));
    let req = h.remove(c);
    let at = index_of(&h, |x| {
        matches!(
            x.ev(),
            Event::ProcessingSucceeded {
                offset: Offset(1),
                ..
            }
        )
    });
    h.insert(at + 1, req);
    let v = fires(Invariant::CommitSafety, &h);
    assert_eq!(v.offset, Some(2));
}

#[test]
fn hand_off_continuity_fires_when_a_new_owner_skips_ahead() {
    let mut h = good();
    let i = index_of(&h, |x| {
        x.host == "consumer-1" && matches!(x.ev(), Event::Assigned { .. })
    });
    h[i] = assigned(260, "consumer-1", 5, 2);
    let v = fires(Invariant::HandOffContinuity, &h);
    assert_eq!(v.offset, Some(5));
}

#[test]
fn bounded_duplicates_fires_on_reprocessing_within_one_ownership() {
    let mut h = good();
    let i = index_of(&h, |x| {
        matches!(
            x.ev(),
            Event::ProcessingSucceeded {
                offset: Offset(1),
                ..
            }
        )
    });
    h.insert(i + 1, succeeded(34, "consumer-0", 1, 1));
    let v = fires(Invariant::BoundedDuplicates, &h);
    assert!(v.detail.contains("twice"), "{}", v.detail);
}

#[test]
fn bounded_duplicates_fires_when_a_new_owner_starts_below_a_committed_offset() {
    let mut h = good();
    let i = index_of(&h, |x| {
        x.host == "consumer-1" && matches!(x.ev(), Event::Assigned { .. })
    });
    // A stale commit of 1 from generation 1 is acknowledged after the
    // commit of 3: the broker honestly hands the new owner 1.
    h[i] = assigned(260, "consumer-1", 1, 2);
    for (k, x) in commit(259, "consumer-0", 1, 1).into_iter().enumerate() {
        h.insert(i + k, x);
    }
    let v = fires(Invariant::BoundedDuplicates, &h);
    assert_eq!(v.offset, Some(1));
    assert!(check_one(Invariant::CommitsKept, &h, &ctx()).is_none());
}

#[test]
fn commits_kept_fires_when_the_broker_hands_out_less_than_it_acknowledged() {
    let mut h = good();
    let i = index_of(&h, |x| {
        x.host == "consumer-1" && matches!(x.ev(), Event::Assigned { .. })
    });
    // The latest acknowledged commit is 3; the broker says 1, and the new
    // owner redelivers from there.
    h[i] = assigned(260, "consumer-1", 1, 2);
    h.insert(i + 1, started(261, "consumer-1", 1, 1));
    let v = fires(Invariant::CommitsKept, &h);
    assert_eq!(v.offset, Some(1));
    assert!(Invariant::CommitsKept.is_broker_fault());
    // Not the consumer's doing: bounded-duplicates leaves it alone.
    assert!(check_one(Invariant::BoundedDuplicates, &h, &ctx()).is_none());
}

/// Found with the configuration swarm (nemesis_mix seed 154): a member
/// applied an assignment of an older generation whose start position it
/// had read before another owner's commit was acknowledged, and lost the
/// partition at once. Nothing was redelivered and the broker lost nothing.
#[test]
fn commits_kept_is_quiet_when_a_short_handed_ownership_ends_before_it_processes() {
    let mut h = good();
    let i = index_of(&h, |x| {
        x.host == "consumer-1" && matches!(x.ev(), Event::Assigned { .. })
    });
    h[i] = assigned(260, "consumer-1", 1, 2);
    h.insert(
        i + 1,
        e(
            260,
            "consumer-1",
            Event::Lost {
                partitions: vec![tp()],
            },
        ),
    );
    assert!(check_one(Invariant::CommitsKept, &h, &ctx()).is_none());
}

#[test]
fn bounded_duplicates_allows_redelivery_after_a_crash_before_the_commit() {
    let mut h = good();
    // consumer-0 crashes before its commit lands; consumer-1 starts at 0
    // and reprocesses 0..3: allowed, nothing above 0 was committed.
    h.retain(|x| {
        !matches!(
            x.ev(),
            Event::CommitRequested { .. } | Event::Committed { .. }
        )
    });
    let i = index_of(&h, |x| {
        x.host == "consumer-1" && matches!(x.ev(), Event::Assigned { .. })
    });
    h[i] = assigned(260, "consumer-1", 0, 2);
    h.insert(i + 1, succeeded(261, "consumer-1", 0, 1));
    assert!(check_one(Invariant::BoundedDuplicates, &h, &ctx()).is_none());
}

#[test]
fn exclusive_ownership_fires_on_two_owners_in_one_generation() {
    let mut h = good();
    h.insert(6, assigned(25, "consumer-1", 0, 1));
    let v = fires(Invariant::ExclusiveOwnership, &h);
    assert!(v.detail.contains("both own"), "{}", v.detail);
}

#[test]
fn exclusive_ownership_fires_on_a_stale_generation_commit_accepted() {
    let mut h = good();
    // consumer-1 joined generation 2, then an ack of its generation-1 commit.
    h.push(e(
        400,
        "consumer-1",
        Event::Committed {
            tp: tp(),
            offset: Offset(4),
            generation: g(1),
        },
    ));
    let v = fires(Invariant::ExclusiveOwnership, &h);
    assert!(v.detail.contains("fenced"), "{}", v.detail);
}

#[test]
fn exclusive_ownership_releases_a_crashed_members_partitions() {
    let mut h = good();
    // No revocation: consumer-0 crashed, and consumer-1 gets the partition
    // in the same generation number it had (a fresh group).
    h.retain(|x| !matches!(x.ev(), Event::Revoked { .. }));
    let i = index_of(&h, |x| {
        x.host == "consumer-1" && matches!(x.ev(), Event::Assigned { .. })
    });
    h[i] = assigned(260, "consumer-1", 3, 1);
    h.insert(
        i,
        Entry {
            at: Instant::from_millis(240),
            host: "nemesis".into(),
            record: Record::Fault(FaultRecord::new(
                Fault::CrashMember {
                    at: crate::duration::Dur::ms(240),
                    member: 0,
                    restart_after: None,
                },
                vec![Target::Member(0)],
            )),
        },
    );
    assert!(check_one(Invariant::ExclusiveOwnership, &h, &ctx()).is_none());
}

#[test]
fn partition_order_fires_when_a_record_starts_before_the_previous_finished() {
    let mut h = good();
    let i = index_of(&h, |x| {
        matches!(
            x.ev(),
            Event::ProcessingSucceeded {
                offset: Offset(0),
                ..
            }
        )
    });
    let s0 = h.remove(i);
    let j = index_of(&h, |x| {
        matches!(
            x.ev(),
            Event::ProcessingStarted {
                offset: Offset(1),
                ..
            }
        )
    });
    h.insert(j + 1, s0);
    let v = fires(Invariant::PartitionOrder, &h);
    assert_eq!(v.offset, Some(1));
}

#[test]
fn partition_order_is_not_checked_for_key_ordering() {
    let mut h = good();
    let i = index_of(&h, |x| {
        matches!(
            x.ev(),
            Event::ProcessingSucceeded {
                offset: Offset(0),
                ..
            }
        )
    });
    let s0 = h.remove(i);
    let j = index_of(&h, |x| {
        matches!(
            x.ev(),
            Event::ProcessingStarted {
                offset: Offset(1),
                ..
            }
        )
    });
    h.insert(j + 1, s0);
    let mut c = ctx();
    c.order = Order::Key;
    assert!(check_one(Invariant::PartitionOrder, &h, &c).is_none());
}

#[test]
fn no_commit_regression_fires_when_an_old_commit_lands_last() {
    let mut h = good();
    h.push(e(
        500,
        "consumer-1",
        Event::Committed {
            tp: tp(),
            offset: Offset(2),
            generation: g(2),
        },
    ));
    let v = fires(Invariant::NoCommitRegression, &h);
    assert_eq!(v.offset, Some(2));
}

#[test]
fn no_commit_regression_ignores_a_late_ack_from_an_older_generation() {
    let mut h = good();
    // A paused member's generation-1 ack arriving after generation 2
    // committed 4 is not a regression of generation 2's commit.
    h.push(e(
        500,
        "consumer-0",
        Event::Committed {
            tp: tp(),
            offset: Offset(3),
            generation: g(1),
        },
    ));
    assert!(check_one(Invariant::NoCommitRegression, &h, &ctx()).is_none());
}

#[test]
fn dead_letter_correctness_fires_on_dead_lettering_without_cause() {
    let mut h = good();
    let i = index_of(&h, |x| {
        matches!(
            x.ev(),
            Event::ProcessingSucceeded {
                offset: Offset(1),
                ..
            }
        )
    });
    h[i] = e(
        34,
        "consumer-0",
        Event::DeadLetterRequested {
            tp: tp(),
            offset: Offset(1),
        },
    );
    h.insert(
        i + 1,
        e(
            40,
            "consumer-0",
            Event::DeadLettered {
                tp: tp(),
                offset: Offset(1),
                attempts: 1,
            },
        ),
    );
    let v = fires(Invariant::DeadLetterCorrectness, &h);
    assert!(v.detail.contains("without"), "{}", v.detail);
}

#[test]
fn dead_letter_correctness_fires_on_processed_and_dead_lettered() {
    let mut h = good();
    let i = index_of(&h, |x| {
        matches!(
            x.ev(),
            Event::ProcessingSucceeded {
                offset: Offset(1),
                ..
            }
        )
    });
    h.insert(
        i + 1,
        e(
            34,
            "consumer-0",
            Event::DeadLettered {
                tp: tp(),
                offset: Offset(1),
                attempts: 1,
            },
        ),
    );
    let v = fires(Invariant::DeadLetterCorrectness, &h);
    assert!(v.detail.contains("both"), "{}", v.detail);
}

#[test]
fn dead_letter_correctness_accepts_poison_and_exhausted_retries() {
    let mut h = good();
    let i = index_of(&h, |x| {
        matches!(
            x.ev(),
            Event::ProcessingSucceeded {
                offset: Offset(1),
                ..
            }
        )
    });
    h[i] = e(
        34,
        "consumer-0",
        Event::ProcessingFailed {
            tp: tp(),
            offset: Offset(1),
            attempt: 1,
            class: ErrorClass::Permanent,
            message: "poison".into(),
        },
    );
    h.insert(
        i + 1,
        e(
            34,
            "consumer-0",
            Event::DeadLetterRequested {
                tp: tp(),
                offset: Offset(1),
            },
        ),
    );
    h.insert(
        i + 2,
        e(
            40,
            "consumer-0",
            Event::DeadLettered {
                tp: tp(),
                offset: Offset(1),
                attempts: 1,
            },
        ),
    );
    assert!(check_one(Invariant::DeadLetterCorrectness, &h, &ctx()).is_none());
}

#[test]
fn retry_bounds_fires_on_a_retry_before_its_backoff() {
    let mut h = good();
    let i = index_of(&h, |x| {
        matches!(x.ev(), Event::ProcessingStarted { attempt: 2, .. })
    });
    h[i] = started(40, "consumer-0", 2, 2);
    let v = fires(Invariant::RetryBounds, &h);
    assert!(v.detail.contains("before its backoff"), "{}", v.detail);
}

#[test]
fn retry_bounds_fires_on_a_backoff_outside_the_policy() {
    let mut h = good();
    let i = index_of(&h, |x| matches!(x.ev(), Event::Retried { .. }));
    *h[i].ev_mut() = Event::Retried {
        tp: tp(),
        offset: Offset(2),
        next_attempt: 2,
        delay: Duration::from_millis(500),
    };
    let v = fires(Invariant::RetryBounds, &h);
    assert!(v.detail.contains("policy"), "{}", v.detail);
}

#[test]
fn retry_bounds_fires_on_too_many_attempts() {
    let mut h = good();
    h.push(started(600, "consumer-1", 3, 4));
    let v = fires(Invariant::RetryBounds, &h);
    assert!(v.detail.contains("attempt 4"), "{}", v.detail);
}

#[test]
fn liveness_fires_when_the_group_never_converged() {
    let mut c = ctx();
    c.liveness.converged_at = None;
    c.liveness.lagging = vec![(tp(), Some(Offset(3)), Offset(4))];
    let v = check_one(Invariant::Liveness, &good(), &c).expect("fires");
    assert!(
        v.detail.contains("committed 3, high watermark 4"),
        "{}",
        v.detail
    );
}

/// Issue 14: a consumer that commits only on revocation and shutdown is
/// judged after the final graceful stop of every member — whatever its
/// commits leave behind then is unfinished business.
#[test]
fn liveness_fires_when_commits_lag_after_the_final_stop() {
    let mut c = ctx();
    c.liveness.lagging = vec![(tp(), Some(Offset(3)), Offset(4))];
    let v = check_one(Invariant::Liveness, &good(), &c).expect("fires");
    assert!(
        v.detail.contains("after every member stopped gracefully")
            && v.detail.contains("committed 3, high watermark 4"),
        "{}",
        v.detail
    );
}

#[test]
fn liveness_fires_when_a_member_does_not_stop_when_asked() {
    let mut c = ctx();
    c.liveness.unstopped = vec!["consumer-2".into()];
    let v = check_one(Invariant::Liveness, &good(), &c).expect("fires");
    assert!(v.detail.contains("consumer-2 did not stop"), "{}", v.detail);
}

#[test]
fn liveness_is_quiet_when_converged_in_time_and_stopped_clean() {
    assert!(check_one(Invariant::Liveness, &good(), &ctx()).is_none());
}

#[test]
fn liveness_fires_when_convergence_came_too_late() {
    let mut c = ctx();
    c.liveness.converged_at = Some(Instant::from_millis(9_000));
    assert!(check_one(Invariant::Liveness, &good(), &c).is_some());
}

#[test]
fn a_violation_names_invariant_time_partition_offset_and_shows_the_history() {
    let mut h = good();
    h.retain(|x| {
        !matches!(
            x.ev(),
            Event::ProcessingSucceeded {
                offset: Offset(1),
                ..
            }
        )
    });
    let v = fires(Invariant::ZeroLoss, &h);
    let text = v.to_string();
    assert!(
        text.starts_with("zero-loss violated at 0.090s on orders-0@1"),
        "{text}"
    );
    assert!(
        text.contains("consumer-0 committed 3 past it at 0.090s"),
        "{text}"
    );
    assert!(
        v.slice
            .iter()
            .any(|l| l.contains("Produced { tp: orders-0, offset: Offset(1) }")),
        "{:?}",
        v.slice
    );
    assert!(
        v.slice.last().is_some_and(|l| l.contains("Committed")),
        "{:?}",
        v.slice
    );
}

fn broker(at: u64, b: BrokerEvent) -> Entry {
    Entry {
        at: Instant::from_millis(at),
        host: "broker-0".into(),
        record: Record::Broker(b),
    }
}

fn state(at: u64, from: GroupState, to: GroupState, generation: i32) -> Entry {
    broker(
        at,
        BrokerEvent::GroupState {
            from,
            to,
            generation: g(generation),
        },
    )
}

fn gen_member(id: &str, client: &str, owns: bool) -> GenerationMember {
    GenerationMember {
        member: MemberId::new(id),
        client: client.into(),
        partitions: if owns { vec![tp()] } else { vec![] },
    }
}

fn handled(at: u64, id: &str, generation: i32, o: i64, error: ErrorCode) -> Entry {
    broker(
        at,
        BrokerEvent::CommitHandled {
            member: MemberId::new(id),
            generation: g(generation),
            offsets: vec![(tp(), Offset(o))],
            error,
        },
    )
}

/// [`good`] with the broker's side: consumer-0 (`m0`) forms generation 1
/// alone; consumer-1 (`m1`) joins, and generation 2 gives it the
/// partition (consumer-0 stays a member, with nothing); each commit is
/// applied before it is acknowledged.
fn good_with_broker() -> Vec<Entry> {
    use GroupState::*;
    let mut h = good();
    h.extend([
        broker(
            5,
            BrokerEvent::MemberAdded {
                member: MemberId::new("m0"),
                client: "consumer-0".into(),
            },
        ),
        state(5, Empty, PreparingRebalance, 0),
        state(8, PreparingRebalance, CompletingRebalance, 1),
        broker(
            9,
            BrokerEvent::GenerationCompleted {
                generation: g(1),
                members: vec![gen_member("m0", "consumer-0", true)],
            },
        ),
        state(9, CompletingRebalance, Stable, 1),
        handled(75, "m0", 1, 3, ErrorCode::None),
        broker(
            150,
            BrokerEvent::MemberAdded {
                member: MemberId::new("m1"),
                client: "consumer-1".into(),
            },
        ),
        state(150, Stable, PreparingRebalance, 1),
        state(240, PreparingRebalance, CompletingRebalance, 2),
        broker(
            245,
            BrokerEvent::GenerationCompleted {
                generation: g(2),
                members: vec![
                    gen_member("m0", "consumer-0", false),
                    gen_member("m1", "consumer-1", true),
                ],
            },
        ),
        state(245, CompletingRebalance, Stable, 2),
        handled(315, "m1", 2, 4, ErrorCode::None),
    ]);
    h.sort_by_key(|x| x.at);
    h
}

#[test]
fn every_checker_is_quiet_on_a_good_history_with_the_brokers_side() {
    let found = check(&good_with_broker(), &ctx(), &Invariant::ALL);
    assert!(found.is_empty(), "{found:#?}");
}

#[test]
fn fenced_commits_fires_on_a_stale_generation_commit_the_broker_applied() {
    let mut h = good_with_broker();
    h.push(handled(340, "m0", 1, 4, ErrorCode::None));
    let v = fires(Invariant::FencedCommits, &h);
    assert!(v.detail.contains("names generation 1"), "{}", v.detail);
}

#[test]
fn fenced_commits_fires_on_a_commit_from_a_member_outside_the_generation() {
    let mut h = good_with_broker();
    // m0 was removed (its session expired) and still got a commit in.
    h.push(broker(
        330,
        BrokerEvent::MemberRemoved {
            member: MemberId::new("m0"),
            reason: ruckus_core::coordinator::RemovalReason::SessionExpired,
        },
    ));
    h.push(handled(340, "m0", 2, 4, ErrorCode::None));
    let v = fires(Invariant::FencedCommits, &h);
    assert!(
        v.detail.contains("not a member of generation 2"),
        "{}",
        v.detail
    );
}

#[test]
fn fenced_commits_is_quiet_when_the_broker_refuses_the_stale_commit() {
    let mut h = good_with_broker();
    h.push(handled(340, "m0", 1, 4, ErrorCode::IllegalGeneration));
    assert!(check_one(Invariant::FencedCommits, &h, &ctx()).is_none());
}

#[test]
fn no_overlapping_owners_fires_when_a_member_of_the_new_generation_still_holds_it() {
    let mut h = good_with_broker();
    h.retain(|x| !matches!(x.ev(), Event::Revoked { .. }));
    let v = fires(Invariant::NoOverlappingOwners, &h);
    assert!(v.detail.contains("consumer-0"), "{}", v.detail);
}

#[test]
fn no_overlapping_owners_leaves_a_zombie_outside_the_generation_to_fencing() {
    let mut h = good_with_broker();
    // consumer-0 never revoked, but it is no member of generation 2: a
    // zombie, whose commits fencing must refuse.
    h.retain(|x| !matches!(x.ev(), Event::Revoked { .. }));
    for x in &mut h {
        if let Record::Broker(BrokerEvent::GenerationCompleted {
            generation,
            members,
        }) = &mut x.record
        {
            if *generation == g(2) {
                members.retain(|m| m.client != "consumer-0");
            }
        }
    }
    assert!(check_one(Invariant::NoOverlappingOwners, &h, &ctx()).is_none());
}

#[test]
fn commit_agreement_fires_on_an_acknowledged_commit_the_broker_never_applied() {
    let mut h = good_with_broker();
    h.retain(|x| {
        !matches!(&x.record, Record::Broker(BrokerEvent::CommitHandled { member, .. }) if member.as_str() == "m0")
    });
    let v = fires(Invariant::CommitAgreement, &h);
    assert!(v.detail.contains("never applied"), "{}", v.detail);
}

#[test]
fn commit_agreement_fires_on_a_commit_nobody_requested() {
    let mut h = good_with_broker();
    h.push(handled(340, "m1", 2, 9, ErrorCode::None));
    let v = fires(Invariant::CommitAgreement, &h);
    assert!(v.detail.contains("never asked for"), "{}", v.detail);
}

#[test]
fn a_commit_applied_but_never_acknowledged_is_a_commit_not_a_loss() {
    // consumer-0's commit of 3 is applied, but its answer is lost and
    // consumer-0 crashes before it learns; consumer-1 starts at 3.
    let mut h = good_with_broker();
    h.retain(|x| !matches!(x.ev(), Event::Committed { generation, .. } if *generation == g(1)));
    let crash = index_of(&h, |x| matches!(x.ev(), Event::Revoked { .. }));
    h[crash] = Entry {
        at: Instant::from_millis(200),
        host: "nemesis".into(),
        record: Record::Fault(FaultRecord::new(
            Fault::CrashMember {
                at: crate::duration::Dur::ms(200),
                member: 0,
                restart_after: None,
            },
            vec![Target::Member(0)],
        )),
    };
    let found = check(&h, &ctx(), &Invariant::ALL);
    assert!(found.is_empty(), "{found:#?}");
}

#[test]
fn no_unexpected_rebalance_fires_on_a_rebalance_inside_the_window() {
    let h = good_with_broker();
    let mut c = ctx();
    c.no_rebalance = Some((Instant::from_millis(100), None));
    let v = check_one(Invariant::NoUnexpectedRebalance, &h, &c).expect("fires");
    assert!(v.detail.contains("began a rebalance"), "{}", v.detail);
    // Without the broker's side (a real broker), the new generation's join
    // shows it.
    let clients: Vec<Entry> = h.into_iter().filter(|x| x.event().is_some()).collect();
    let v = check_one(Invariant::NoUnexpectedRebalance, &clients, &c).expect("fires");
    assert!(v.detail.contains("joined generation 2"), "{}", v.detail);
}

#[test]
fn no_unexpected_rebalance_is_quiet_outside_the_window_or_without_one() {
    let h = good_with_broker();
    let mut c = ctx();
    assert!(check_one(Invariant::NoUnexpectedRebalance, &h, &c).is_none());
    c.no_rebalance = Some((Instant::from_millis(300), None));
    assert!(check_one(Invariant::NoUnexpectedRebalance, &h, &c).is_none());
    c.no_rebalance = Some((Instant::from_millis(100), Some(Instant::from_millis(120))));
    assert!(check_one(Invariant::NoUnexpectedRebalance, &h, &c).is_none());
}

#[test]
fn a_real_brokers_history_with_only_the_runs_own_moves_is_judged_on_the_client_side() {
    // A real broker shows no generations or applied commits; the run
    // records only the pins and fail-overs it made. The broker-side checks
    // have nothing to judge and must not read the missing commits as
    // unapplied.
    let mut h = good();
    h.insert(0, broker(0, BrokerEvent::CoordinatorMoved { broker: 0 }));
    h.insert(
        1,
        broker(
            0,
            BrokerEvent::LeaderMoved {
                tp: tp(),
                broker: 1,
            },
        ),
    );
    let found = check(&h, &ctx(), &Invariant::ALL);
    assert!(found.is_empty(), "{found:#?}");
}

#[test]
fn a_join_in_the_window_that_completes_an_earlier_rebalance_is_not_a_new_one() {
    // Generation 2's rebalance began at 150 ms, before a window that opens
    // at 200 ms; consumer-1's join of generation 2 at 250 ms completes it.
    let h = good_with_broker();
    let mut c = ctx();
    c.no_rebalance = Some((Instant::from_millis(200), None));
    assert!(check_one(Invariant::NoUnexpectedRebalance, &h, &c).is_none());
}

/// The store's record of a write for offset `o`.
fn applied(at: u64, o: i64, once: bool) -> Entry {
    Entry {
        at: Instant::from_millis(at),
        host: "store".into(),
        record: Record::Store(crate::record::StoreEvent::Applied {
            cause: Some(crate::record::Cause {
                tp: tp(),
                offset: Offset(o),
            }),
            key: format!("order-{o}"),
            once,
        }),
    }
}

/// [`good`] with a processor that writes each record's effect (once)
/// before it returns.
fn good_with_effects() -> Vec<Entry> {
    let mut h = Vec::new();
    for x in good() {
        if let Some(Event::ProcessingSucceeded { offset, .. }) = x.event() {
            h.push(applied(x.at.as_millis(), offset.0, true));
        }
        h.push(x);
    }
    h
}

fn is_applied(x: &Entry, o: i64) -> bool {
    matches!(x.store(), Some(crate::record::StoreEvent::Applied { cause: Some(c), .. }) if c.offset == Offset(o))
}

#[test]
fn the_effect_checkers_are_quiet_when_every_effect_is_written_once_before_its_commit() {
    let found = check(&good_with_effects(), &ctx(), &Invariant::EFFECTS);
    assert!(found.is_empty(), "{found:?}");
    // Nor do they fire on the plain good history unless asked.
    assert!(check(&good(), &ctx(), &Invariant::ALL).is_empty());
}

#[test]
fn effect_loss_fires_on_a_processed_record_whose_write_never_arrived() {
    let mut h = good_with_effects();
    h.retain(|x| !is_applied(x, 1));
    let v = fires(Invariant::EffectLoss, &h);
    assert_eq!(v.offset, Some(1));
    assert!(
        v.detail.contains("no write for it ever reached the store"),
        "{}",
        v.detail
    );
}

#[test]
fn effect_loss_leaves_dead_lettered_records_alone() {
    let mut h = good_with_effects();
    h.retain(|x| !is_applied(x, 1));
    h.push(e(
        400,
        "consumer-1",
        Event::DeadLettered {
            tp: tp(),
            offset: Offset(1),
            attempts: 3,
        },
    ));
    assert!(check_one(Invariant::EffectLoss, &h, &ctx()).is_none());
}

#[test]
fn effect_duplicates_fires_on_a_second_applied_write_for_one_record() {
    let mut h = good_with_effects();
    h.push(started(400, "consumer-1", 0, 1));
    h.push(applied(401, 0, false));
    let v = fires(Invariant::EffectDuplicates, &h);
    assert_eq!(v.offset, Some(0));
    assert!(v.detail.contains("applied twice"), "{}", v.detail);
    assert!(v.detail.contains("consumer-1"), "{}", v.detail);
}

#[test]
fn effect_duplicates_accepts_an_idempotent_write_that_changed_nothing() {
    let mut h = good_with_effects();
    h.push(Entry {
        at: Instant::from_millis(401),
        host: "store".into(),
        record: Record::Store(crate::record::StoreEvent::Unchanged {
            cause: Some(crate::record::Cause {
                tp: tp(),
                offset: Offset(0),
            }),
            key: "order-0".into(),
        }),
    });
    assert!(check_one(Invariant::EffectDuplicates, &h, &ctx()).is_none());
}

#[test]
fn effect_before_commit_fires_on_a_commit_ahead_of_the_write() {
    let mut h = good_with_effects();
    h.retain(|x| !is_applied(x, 2));
    // The buffered write lands after the commit of 3 at 60.
    h.push(applied(100, 2, true));
    h.sort_by_key(|x| x.at);
    let v = fires(Invariant::EffectBeforeCommit, &h);
    assert_eq!(v.offset, Some(2));
    assert!(
        v.detail.contains("only at 100ms") || v.detail.contains("only at"),
        "{}",
        v.detail
    );
    // The write did arrive, so nothing was lost.
    assert!(check_one(Invariant::EffectLoss, &h, &ctx()).is_none());
}
