//! Coverage counters: each fires on a hand-built history that reaches its
//! state and stays quiet on one that does not; a scenario names the states
//! it must reach, and its report flags one no seed reached.

use ruckus_chaos::coverage::{count, State};
use ruckus_chaos::runner::{judge_seeds, SeedResult};
use ruckus_chaos::scenario::Scenario;
use ruckus_core::coordinator::GroupState;
use ruckus_core::events::Event;
use ruckus_core::model::{Generation, Instant, Offset, TopicPartition};
use ruckus_history::duration::Dur;
use ruckus_history::fault::{Fault, FaultRecord, Target};
use ruckus_history::record::{BrokerEvent, Entry, Record};

fn tp() -> TopicPartition {
    TopicPartition::new("orders", 0)
}

fn e(at: u64, host: &str, event: Event) -> Entry {
    Entry::client(Instant::from_millis(at), host, event)
}

fn assigned(at: u64, host: &str) -> Entry {
    e(
        at,
        host,
        Event::Assigned {
            partitions: vec![(tp(), Offset(0))],
            generation: Generation(1),
        },
    )
}

fn pause(at: u64, member: usize) -> Entry {
    Entry {
        at: Instant::from_millis(at),
        host: "nemesis".into(),
        record: Record::Fault(FaultRecord::new(
            Fault::PauseMember {
                at: Dur::ms(at),
                member,
                duration: Dur::secs(1),
            },
            vec![Target::Member(member)],
        )),
    }
}

fn lost(at: u64, host: &str) -> Entry {
    e(
        at,
        host,
        Event::Lost {
            partitions: vec![tp()],
        },
    )
}

fn reached(h: &[Entry], s: State) -> bool {
    count(h).get(&s).copied().unwrap_or(0) > 0
}

#[test]
fn a_fault_on_an_owner_counts_and_one_on_an_idle_member_does_not() {
    let good = vec![assigned(0, "consumer-0"), pause(10, 0)];
    assert!(reached(&good, State::FaultOnOwner));
    let idle = vec![assigned(0, "consumer-0"), pause(10, 1)];
    assert!(!reached(&idle, State::FaultOnOwner));
    let after_loss = vec![
        assigned(0, "consumer-0"),
        lost(5, "consumer-0"),
        pause(10, 0),
    ];
    assert!(!reached(&after_loss, State::FaultOnOwner));
}

#[test]
fn a_retry_waiting_when_the_partition_is_lost_counts() {
    let retried = e(
        10,
        "consumer-0",
        Event::Retried {
            tp: tp(),
            offset: Offset(3),
            next_attempt: 2,
            delay: std::time::Duration::from_secs(1),
        },
    );
    let waiting = vec![
        assigned(0, "consumer-0"),
        retried.clone(),
        lost(20, "consumer-0"),
    ];
    assert!(reached(&waiting, State::RetryWaitingWhenLost));
    let started_again = e(
        15,
        "consumer-0",
        Event::ProcessingStarted {
            tp: tp(),
            offset: Offset(3),
            attempt: 2,
        },
    );
    let done = vec![
        assigned(0, "consumer-0"),
        retried,
        started_again,
        lost(20, "consumer-0"),
    ];
    assert!(!reached(&done, State::RetryWaitingWhenLost));
}

#[test]
fn a_commit_in_flight_when_a_rebalance_begins_counts() {
    let asked = e(
        10,
        "consumer-0",
        Event::CommitRequested {
            tp: tp(),
            offset: Offset(5),
            generation: Generation(1),
        },
    );
    let answered = e(
        12,
        "consumer-0",
        Event::Committed {
            tp: tp(),
            offset: Offset(5),
            generation: Generation(1),
        },
    );
    let rebalance = Entry {
        at: Instant::from_millis(11),
        host: "broker-0".into(),
        record: Record::Broker(BrokerEvent::GroupState {
            from: GroupState::Stable,
            to: GroupState::PreparingRebalance,
            generation: Generation(1),
        }),
    };
    let inflight = vec![
        assigned(0, "consumer-0"),
        asked.clone(),
        rebalance.clone(),
        answered.clone(),
    ];
    assert!(reached(&inflight, State::CommitInFlightDuringRevoke));
    let before = vec![
        assigned(0, "consumer-0"),
        asked,
        answered,
        Entry {
            at: Instant::from_millis(13),
            ..rebalance
        },
    ];
    assert!(!reached(&before, State::CommitInFlightDuringRevoke));
}

#[test]
fn a_record_processed_by_a_second_member_is_a_redelivery() {
    let done = |at, host: &str| {
        e(
            at,
            host,
            Event::ProcessingSucceeded {
                tp: tp(),
                offset: Offset(7),
                attempt: 1,
            },
        )
    };
    assert!(reached(
        &[done(1, "consumer-0"), done(2, "consumer-1")],
        State::Redelivered
    ));
    assert!(!reached(
        &[done(1, "consumer-0"), done(2, "consumer-0")],
        State::Redelivered
    ));
}

fn scenario(reach: &str) -> Result<Scenario, ruckus_chaos::scenario::ScenarioError> {
    Scenario::parse(
        "reach.toml",
        &format!("description = \"x\"\n\n[expect]\nreach = [{reach}]\n"),
    )
}

#[test]
fn a_scenario_names_its_states_and_an_unknown_one_is_an_error() {
    let sc = scenario("\"fault-on-owner\", \"dead-letter-write-failed\"").expect("valid");
    assert_eq!(
        sc.expect.reach,
        [State::FaultOnOwner, State::DeadLetterWriteFailed]
    );
    let e = scenario("\"fault-on-owners\"").expect_err("unknown");
    assert_eq!(e.line, 4, "{e}");
    assert!(e.message.contains("fault-on-owner"), "{e}");
}

#[test]
fn a_named_state_no_seed_reached_is_flagged() {
    let sc = scenario("\"fault-on-owner\", \"dead-letter-write-failed\"").expect("valid");
    let seed = |n: u64, reached: &[State]| SeedResult {
        seed: n,
        passed: true,
        violations: Vec::new(),
        error: None,
        deterministic: None,
        events: 1,
        simulated_ms: 1,
        wall_ms: 1,
        repro: String::new(),
        config: None,
        member_faults: (0, 0),
        coverage: reached.iter().map(|s| (*s, 1)).collect(),
    };
    let r = judge_seeds(&sc, vec![seed(1, &[State::FaultOnOwner]), seed(2, &[])], 1);
    assert_eq!(r.coverage.get(&State::FaultOnOwner), Some(&1));
    assert_eq!(r.unreached, [State::DeadLetterWriteFailed]);
    assert!(
        r.verdict
            .contains("UNREACHED in every seed: dead-letter-write-failed"),
        "{}",
        r.verdict
    );
    let all = judge_seeds(
        &sc,
        vec![seed(
            1,
            &[State::FaultOnOwner, State::DeadLetterWriteFailed],
        )],
        1,
    );
    assert!(all.unreached.is_empty());
    assert!(!all.verdict.contains("UNREACHED"));
}

#[test]
fn every_bundled_simulated_scenario_names_the_states_it_must_reach() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
    for f in ruckus_chaos::runner::discover(&dir).expect("readable") {
        let sc = Scenario::load(&f).unwrap_or_else(|e| panic!("{e}"));
        if sc.runs_in_simulation() {
            assert!(
                !sc.expect.reach.is_empty(),
                "{} names no state to reach",
                sc.name
            );
        }
    }
}

#[test]
fn commit_failures_dead_letters_and_fatal_failures_are_counted() {
    let failed = e(
        1,
        "consumer-0",
        Event::CommitFailed {
            tp: tp(),
            offset: Offset(1),
            generation: Generation(1),
            error: ruckus_core::model::ErrorCode::RequestTimedOut,
        },
    );
    let lettered = e(
        2,
        "consumer-0",
        Event::DeadLettered {
            tp: tp(),
            offset: Offset(1),
            attempts: 1,
        },
    );
    let fatal = e(
        3,
        "consumer-0",
        Event::ProcessingFailed {
            tp: tp(),
            offset: Offset(2),
            attempt: 1,
            class: ruckus_core::consumer::ErrorClass::Fatal,
            message: "x".into(),
        },
    );
    let c = count(&[failed, lettered, fatal]);
    for s in [
        State::CommitFailed,
        State::DeadLettered,
        State::FatalFailure,
    ] {
        assert_eq!(c.get(&s), Some(&1), "{s:?}");
    }
    assert!(!count(&[assigned(0, "consumer-0")]).contains_key(&State::CommitFailed));
}
