//! The violation in words: accounts built from hand-built histories name
//! who fetched the record, in which generation, which commit passed it and
//! why it was allowed, and the faults in effect.

use ruckus_chaos::check::{Invariant, Violation};
use ruckus_chaos::explain::{explain, fault_spans};
use ruckus_core::consumer::ErrorClass;
use ruckus_core::events::Event;
use ruckus_core::model::{ErrorCode, Generation, Instant, MemberId, Offset, TopicPartition};
use ruckus_history::duration::Dur;
use ruckus_history::fault::{Fault, FaultRecord, Target};
use ruckus_history::record::{Entry, Record};

fn tp() -> TopicPartition {
    TopicPartition::new("orders", 0)
}

fn e(at: u64, host: &str, event: Event) -> Entry {
    Entry::client(Instant::from_millis(at), host, event)
}

fn fault(at: u64, healed: bool, f: Fault, member: usize) -> Entry {
    let r = FaultRecord::new(f, vec![Target::Member(member)]);
    Entry {
        at: Instant::from_millis(at),
        host: "nemesis".into(),
        record: if healed {
            Record::Healed(r)
        } else {
            Record::Fault(r)
        },
    }
}

fn violation(invariant: Invariant, at_ms: u64, offset: i64) -> Violation {
    Violation {
        invariant,
        at_ms,
        host: None,
        partition: Some(tp().to_string()),
        offset: Some(offset),
        detail: "hand-built".into(),
        slice: Vec::new(),
    }
}

fn joined(at: u64, host: &str, g: i32, from: i64) -> Vec<Entry> {
    vec![
        e(
            at,
            host,
            Event::Joined {
                member_id: MemberId::new(format!("{host}-1")),
                generation: Generation(g),
            },
        ),
        e(
            at,
            host,
            Event::Assigned {
                partitions: vec![(tp(), Offset(from))],
                generation: Generation(g),
            },
        ),
    ]
}

fn crash() -> Fault {
    Fault::CrashMember {
        at: Dur::ms(400),
        member: 0,
        restart_after: Some(Dur::secs(1)),
    }
}

/// consumer-0 commits the fetched position past record 5, then crashes;
/// consumer-1 starts past it.
fn lost_history() -> Vec<Entry> {
    let mut h = vec![e(
        10,
        "producer",
        Event::Produced {
            tp: tp(),
            offset: Offset(5),
        },
    )];
    h.extend(joined(100, "consumer-0", 1, 0));
    h.push(e(
        200,
        "consumer-0",
        Event::Fetched {
            tp: tp(),
            offset: Offset(5),
        },
    ));
    h.push(e(
        300,
        "consumer-0",
        Event::CommitRequested {
            tp: tp(),
            offset: Offset(10),
            generation: Generation(1),
        },
    ));
    h.push(e(
        350,
        "consumer-0",
        Event::Committed {
            tp: tp(),
            offset: Offset(10),
            generation: Generation(1),
        },
    ));
    h.push(fault(400, false, crash(), 0));
    h.extend(joined(900, "consumer-1", 2, 10));
    h.push(fault(1400, true, crash(), 0));
    h
}

#[test]
fn a_lost_record_is_told_from_fetch_to_hand_off() {
    let h = lost_history();
    let text = explain(&h, &violation(Invariant::ZeroLoss, 350, 5)).join("\n");
    for needle in [
        "orders-0@5 was produced (acknowledged) at 0.010s",
        "consumer-0 fetched it at 0.200s in generation 1 and never finished processing it",
        "consumer-0 committed orders-0 at offset 10 (past 5) at 0.350s, generation 1, sent at 0.300s",
        "had fetched orders-0@5 but not finished it",
        "Then, at 0.400s, crash-member consumer-0",
        "consumer-1 was assigned orders-0 from offset 10 at 0.900s in generation 2: past 5",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
    }
}

#[test]
fn the_faults_in_effect_are_named_and_healed_ones_are_not() {
    let h = lost_history();
    let spans = fault_spans(&h);
    assert_eq!(spans.len(), 1);
    assert_eq!(spans[0].until, Some(Instant::from_millis(1400)));
    assert!(spans[0].active_at(Instant::from_millis(500)));
    assert!(!spans[0].active_at(Instant::from_millis(1500)));
    let during = explain(&h, &violation(Invariant::ZeroLoss, 500, 5));
    assert!(
        during
            .last()
            .unwrap()
            .starts_with("In effect at 0.500s: crash-member consumer-0"),
        "{during:?}"
    );
    let quiet = explain(&h, &violation(Invariant::ZeroLoss, 350, 5));
    assert!(
        quiet.last().unwrap().starts_with("No fault was in effect"),
        "{quiet:?}"
    );
}

#[test]
fn a_skip_after_a_failed_dead_letter_write_is_the_reason_given() {
    let mut h = lost_history();
    h.insert(
        4,
        e(
            250,
            "consumer-0",
            Event::ProcessingFailed {
                tp: tp(),
                offset: Offset(5),
                attempt: 1,
                class: ErrorClass::Permanent,
                message: "poison".into(),
            },
        ),
    );
    h.insert(
        5,
        e(
            260,
            "consumer-0",
            Event::DeadLetterFailed {
                tp: tp(),
                offset: Offset(5),
                error: ErrorCode::NotEnoughReplicas,
            },
        ),
    );
    let text = explain(&h, &violation(Invariant::CommitSafety, 300, 5)).join("\n");
    assert!(text.contains("failed it permanently at 0.250s"), "{text}");
    assert!(
        text.contains("failed to dead-letter it at 0.260s"),
        "{text}"
    );
    assert!(
        text.contains("counted orders-0@5 done after its dead-letter write failed"),
        "{text}"
    );
    // Commit safety is about the commit: no hand-off story.
    assert!(!text.contains("was assigned"), "{text}");
}

#[test]
fn a_duplicate_names_both_owners_and_where_the_second_started() {
    let mut h = lost_history();
    // consumer-0 finished it this time, but its commit of 6 never came:
    // consumer-1 starts at 5 and does it again.
    h.retain(|x| !matches!(x.event(), Some(Event::Committed { .. } | Event::CommitRequested { .. } | Event::Assigned { .. }) if x.host == "consumer-1" || x.at.as_millis() >= 300));
    h.insert(
        4,
        e(
            250,
            "consumer-0",
            Event::ProcessingSucceeded {
                tp: tp(),
                offset: Offset(5),
                attempt: 1,
            },
        ),
    );
    h.push(e(
        900,
        "consumer-1",
        Event::Assigned {
            partitions: vec![(tp(), Offset(5))],
            generation: Generation(2),
        },
    ));
    h.push(e(
        950,
        "consumer-1",
        Event::Fetched {
            tp: tp(),
            offset: Offset(5),
        },
    ));
    h.push(e(
        960,
        "consumer-1",
        Event::ProcessingSucceeded {
            tp: tp(),
            offset: Offset(5),
            attempt: 1,
        },
    ));
    h.sort_by_key(|x| x.at);
    let text = explain(&h, &violation(Invariant::BoundedDuplicates, 960, 5)).join("\n");
    assert!(
        text.contains("consumer-0 fetched it at 0.200s in generation 1 and processed it at 0.250s"),
        "{text}"
    );
    assert!(
        text.contains("consumer-1 fetched it at 0.950s in generation 2 and processed it at 0.960s"),
        "{text}"
    );
    assert!(
        text.contains("consumer-1 was assigned orders-0 from offset 5 at 0.900s in generation 2: at or before 5, so it fetched it again"),
        "{text}"
    );
}

#[test]
fn a_commit_regression_shows_the_two_commits_and_the_failed_first_try() {
    let mut h = joined(0, "consumer-0", 3, 0);
    let commit = |at, o, ok: bool| {
        e(
            at,
            "consumer-0",
            if ok {
                Event::Committed {
                    tp: tp(),
                    offset: Offset(o),
                    generation: Generation(3),
                }
            } else {
                Event::CommitFailed {
                    tp: tp(),
                    offset: Offset(o),
                    generation: Generation(3),
                    error: ErrorCode::CoordinatorLoadInProgress,
                }
            },
        )
    };
    h.push(e(
        100,
        "consumer-0",
        Event::CommitRequested {
            tp: tp(),
            offset: Offset(24),
            generation: Generation(3),
        },
    ));
    h.push(commit(150, 24, false));
    h.push(commit(200, 27, true));
    h.push(commit(300, 24, true));
    let text = explain(&h, &violation(Invariant::NoCommitRegression, 300, 24)).join("\n");
    assert!(
        text.contains("committed orders-0 at 24 (generation 3) at 0.300s, after consumer-0 had committed 27 (generation 3) at 0.200s: the committed offset went back by 3"),
        "{text}"
    );
    assert!(
        text.contains("first asked for offset 24 at 0.100s"),
        "{text}"
    );
    assert!(
        text.contains("failed with CoordinatorLoadInProgress at 0.150s"),
        "{text}"
    );
}

#[test]
fn a_violation_without_a_record_falls_back_to_its_detail() {
    let v = Violation {
        partition: None,
        offset: None,
        ..violation(Invariant::ExclusiveOwnership, 10, 0)
    };
    let lines = explain(&[], &v);
    assert_eq!(lines[0], "exclusive-ownership: hand-built");
}
