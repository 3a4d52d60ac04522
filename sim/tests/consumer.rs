//! The reference consumer against the simulated cluster, judged from the
//! history: every acknowledged message processed or dead-lettered, and no
//! commit past an unprocessed record.
//!
//! `RUCKUS_SEED=<seed>` runs one seed (default: seed 1);
//! `RUCKUS_MESSAGES=<n>` changes the message count (default 10,000).

// Each seed's figures (events, simulated and wall time) are reported on stderr.
#![allow(clippy::print_stderr)]

use std::sync::Arc;
use std::time::Duration;

use ruckus_core::assign::CooperativeSticky;
use ruckus_core::consumer::{
    CommitStrategy, ConsumerConfig, DeadLetterConfig, DlqLimit, RetryPolicy,
};
use ruckus_core::coordinator::CoordinatorConfig;
use ruckus_core::driver::Driver;
use ruckus_core::events::Event;
use ruckus_core::membership::MembershipConfig;
use ruckus_core::model::{ErrorCode, GroupId, Topic, TopicPartition};
use ruckus_core::rng::SplitMix64;
use ruckus_sim::cluster::{broker, broker_host, Api, Cluster};
use ruckus_sim::faults::{run_with_faults, Fault};
use ruckus_sim::history::{check_commit_safety, check_zero_loss, Entry, History};
use ruckus_sim::processing::{Behaviour, SimProcessor};
use ruckus_sim::producer::{produce, Workload};
use ruckus_sim::transport::{SimTransport, SimTransportConfig};

const BROKERS: u32 = 3;
const CONSUMERS: usize = 3;
const PARTITIONS: u32 = 12;

fn consumer_config() -> ConsumerConfig {
    let mut c = ConsumerConfig::new("sim-group", vec![Topic::new("orders")]);
    c.commit = CommitStrategy::Periodic {
        records: 200,
        interval: Duration::from_millis(500),
    };
    c.retry = RetryPolicy {
        max_attempts: 3,
        initial_backoff: Duration::from_millis(20),
        ..RetryPolicy::default()
    };
    c.dead_letter = Some(DeadLetterConfig {
        topic: Topic::new("orders.dlq"),
        limit: DlqLimit::default(),
        write_backoff: RetryPolicy {
            initial_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_secs(2),
            ..RetryPolicy::default()
        },
    });
    c
}

fn membership(host: &str) -> MembershipConfig {
    let mut m = MembershipConfig::new(
        "sim-group",
        host,
        vec![Topic::new("orders")],
        vec![Arc::new(CooperativeSticky)],
    );
    m.session_timeout = Duration::from_secs(3);
    m.rebalance_timeout = Duration::from_secs(10);
    m.heartbeat_interval = Duration::from_millis(300);
    m
}

/// Runs one seed with a fault schedule and a consumer configuration, 1 ms
/// of processing a record; returns the history and the cluster.
fn run_with(
    seed: u64,
    messages: usize,
    faults: &[(Duration, Fault)],
    config: ConsumerConfig,
) -> (Vec<Entry>, Cluster) {
    run_processing(
        seed,
        messages,
        faults,
        config,
        Behaviour::steady(Duration::from_millis(1)),
    )
}

/// As [`run_with`], with a processing time per record.
fn run_processing(
    seed: u64,
    messages: usize,
    faults: &[(Duration, Fault)],
    config: ConsumerConfig,
    behaviour: Behaviour,
) -> (Vec<Entry>, Cluster) {
    let mut sim = ruckus_sim::builder(seed, Duration::from_secs(600)).build();
    let topics = [
        (Topic::new("orders"), PARTITIONS),
        (Topic::new("orders.dlq"), 3),
    ];
    let coordinator = CoordinatorConfig {
        min_session_timeout: Duration::from_secs(1),
        initial_rebalance_delay: Duration::ZERO,
        ..CoordinatorConfig::default()
    };
    let cluster = Cluster::new(BROKERS, &topics, coordinator);
    cluster.set_seed(seed);
    let history = History::default();
    for b in 0..BROKERS {
        let c = cluster.clone();
        sim.host(broker_host(b), move || broker(c.clone(), b));
    }
    for i in 0..CONSUMERS {
        let host = format!("consumer-{i}");
        let history = history.clone();
        let config = config.clone();
        let behaviour = behaviour.clone();
        let gate = cluster.pause_gate(&host);
        let cluster = cluster.clone();
        sim.host(host.clone(), move || {
            let (host, history, config, behaviour, gate, cluster) = (
                host.clone(),
                history.clone(),
                config.clone(),
                behaviour.clone(),
                gate.clone(),
                cluster.clone(),
            );
            async move {
                let transport = SimTransport::new(SimTransportConfig::for_host(
                    &cluster,
                    &host,
                    (0..BROKERS).collect(),
                    membership(&host),
                ));
                let rng = Box::new(SplitMix64::new(seed ^ host.len() as u64));
                let driver = Driver::new(
                    config,
                    transport,
                    SimProcessor::new(behaviour.clone(), seed.rotate_left(7) ^ host.len() as u64)
                        .with_gate(gate),
                    rng,
                    history.sink(&host),
                )?;
                driver.run().await?;
                Ok(())
            }
        });
    }
    let partitions: Vec<TopicPartition> = (0..PARTITIONS as i32)
        .map(|p| TopicPartition::new("orders", p))
        .collect();
    let workload = Workload {
        partitions: partitions.clone(),
        messages,
        batch: 50,
        interval: Duration::ZERO,
    };
    sim.client(
        "producer",
        produce(
            (0..BROKERS).collect(),
            workload,
            history.clone(),
            "producer".into(),
        ),
    );
    let (c, h) = (cluster.clone(), history.clone());
    sim.client("checker", async move {
        let group = GroupId::new("sim-group");
        loop {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let produced = h
                .entries()
                .iter()
                .filter(|e| matches!(e.event, Event::Produced { .. }))
                .count();
            if produced >= messages
                && partitions
                    .iter()
                    .all(|tp| c.committed(&group, tp) == Some(c.high_watermark(tp)))
            {
                return Ok(());
            }
        }
    });
    let mut hosts: Vec<String> = (0..BROKERS).map(broker_host).collect();
    hosts.extend((0..CONSUMERS).map(|i| format!("consumer-{i}")));
    hosts.push("producer".into());
    ruckus_sim::seed_link_latencies(&sim, &hosts, seed);
    if let Err(e) = run_with_faults(&mut sim, &cluster, &history, faults) {
        panic!("seed {seed}: simulation failed: {e}\nreproduce with: RUCKUS_SEED={seed} cargo test -p ruckus-sim --test consumer");
    }
    (history.entries(), cluster)
}

fn seeds() -> Vec<u64> {
    match std::env::var("RUCKUS_SEED") {
        Ok(s) => vec![s.parse().expect("RUCKUS_SEED is a u64")],
        Err(_) => vec![1],
    }
}

fn messages() -> usize {
    std::env::var("RUCKUS_MESSAGES")
        .ok()
        .and_then(|m| m.parse().ok())
        .unwrap_or(10_000)
}

/// Runs every seed under `faults`, checks zero loss and commit safety, and
/// returns the histories so a test can also check that its fault mattered.
fn judge(name: &str, faults: &[(Duration, Fault)]) -> Vec<Vec<Entry>> {
    judge_behaviour(name, faults, &Behaviour::steady(Duration::from_millis(1)))
}

/// Events of `host` after `t` seconds matching `f`.
fn after(history: &[Entry], host: &str, t: u64, f: impl Fn(&Event) -> bool) -> usize {
    history
        .iter()
        .filter(|e| e.host == host && e.at.as_millis() >= t * 1000 && f(&e.event))
        .count()
}

fn assigned(e: &Event) -> bool {
    matches!(e, Event::Assigned { partitions, .. } if !partitions.is_empty())
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn host(s: &str) -> String {
    s.to_owned()
}

#[test]
fn steady_state_loses_nothing_and_never_commits_past_an_unprocessed_record() {
    judge("steady_state", &[]);
}

#[test]
fn a_member_crashing_mid_batch_loses_nothing() {
    for h in judge(
        "a_member_crashing_mid_batch",
        &[(secs(5), Fault::Crash(host("consumer-1")))],
    ) {
        let taken_over =
            after(&h, "consumer-0", 5, assigned) + after(&h, "consumer-2", 5, assigned);
        assert!(
            taken_over > 0,
            "nobody took over the crashed member's partitions"
        );
        assert_eq!(
            after(&h, "consumer-1", 5, |_| true),
            0,
            "a crashed host emits nothing"
        );
    }
}

#[test]
fn a_member_crashing_and_restarting_loses_nothing() {
    let faults = [
        (secs(5), Fault::Crash(host("consumer-1"))),
        (secs(6), Fault::Restart(host("consumer-1"))),
    ];
    for h in judge("a_member_crashing_and_restarting", &faults) {
        assert!(
            after(&h, "consumer-1", 6, assigned) > 0,
            "the restarted member never got partitions back"
        );
    }
}

#[test]
fn a_partition_leader_crash_loses_nothing() {
    // Broker 2 leads partitions 2, 5, 8 and 11; broker 0 coordinates.
    for h in judge(
        "a_partition_leader_crash",
        &[
            (secs(5), Fault::CrashBroker(2)),
            (secs(15), Fault::RestartBroker(2)),
        ],
    ) {
        // Partition 2's records kept flowing while broker 2 was down.
        let moved = h.iter().any(|e| {
            (5_500..15_000).contains(&e.at.as_millis())
                && matches!(&e.event, Event::ProcessingSucceeded { tp, .. } if tp.partition.0 % 3 == 2)
        });
        assert!(
            moved,
            "no record of broker 2's partitions was processed while it was down"
        );
    }
}

#[test]
fn a_coordinator_crash_loses_nothing() {
    for h in judge(
        "a_coordinator_crash",
        &[
            (secs(5), Fault::CrashBroker(0)),
            (secs(30), Fault::RestartBroker(0)),
        ],
    ) {
        let commits_while_down = h
            .iter()
            .filter(|e| {
                (5_500..30_000).contains(&e.at.as_millis())
                    && matches!(e.event, Event::Committed { .. })
            })
            .count();
        assert!(
            commits_while_down > 0,
            "no commit reached the new coordinator while broker 0 was down"
        );
    }
}

#[test]
fn a_member_cut_off_from_the_coordinator_past_its_session_loses_nothing() {
    let faults = [
        (
            secs(5),
            Fault::Partition(host("consumer-1"), host("broker-0")),
        ),
        (
            secs(12),
            Fault::Repair(host("consumer-1"), host("broker-0")),
        ),
    ];
    for h in judge("a_member_cut_off", &faults) {
        assert!(
            after(
                &h,
                "consumer-1",
                5,
                |e| matches!(e, Event::Lost { partitions } if !partitions.is_empty())
            ) > 0,
            "the cut-off member never gave its partitions up"
        );
        assert!(
            after(&h, "consumer-0", 5, assigned) + after(&h, "consumer-2", 5, assigned) > 0,
            "nobody took them over"
        );
    }
}

/// The seeds' periodic auto-commit of fetched offsets: a member that
/// crashes holding fetched, committed, unprocessed records loses them, and
/// the checks must say so. Processing is slower than production here (5 ms
/// a record), as in any consumer with a backlog, so the crash finds fetched
/// records not yet processed. The same run with the reference consumer
/// loses nothing.
#[test]
fn known_bad_auto_commit_of_fetched_offsets_is_caught_losing_messages() {
    let mut config = consumer_config();
    config.commit = CommitStrategy::KnownBadAutoCommitFetched {
        interval: Duration::from_millis(100),
    };
    let faults = [(secs(5), Fault::Crash(host("consumer-1")))];
    let slow = Behaviour::steady(Duration::from_millis(5));
    let (history, _) = run_processing(11, 10_000, &faults, config, slow.clone());
    let loss = check_zero_loss(&history);
    assert!(loss.is_err(), "the known-bad consumer lost nothing?");
    assert!(
        check_commit_safety(&history).is_err(),
        "it committed past unprocessed records"
    );
    let (good, _) = run_processing(11, 10_000, &faults, consumer_config(), slow);
    assert_eq!(check_zero_loss(&good), Ok(()));
    assert_eq!(check_commit_safety(&good), Ok(()));
}

#[test]
fn every_consumer_takes_part() {
    let (history, _) = run_with(3, 3_000, &[], consumer_config());
    for i in 0..CONSUMERS {
        let host = format!("consumer-{i}");
        let n = history
            .iter()
            .filter(|e| e.host == host && matches!(e.event, Event::ProcessingSucceeded { .. }))
            .count();
        assert!(n > 300, "{host} processed only {n} of 3000");
    }
}

/// Several seeds, each run twice in sequence and then twice at once on two
/// threads of this process (both used to perturb crash handling), with a
/// consumer crash, a broker crash and hold/release inside the run:
/// byte-identical histories every time.
#[test]
fn the_same_seed_gives_the_same_history() {
    let faults = [
        (secs(3), Fault::Crash(host("consumer-2"))),
        (secs(4), Fault::CrashBroker(1)),
        (secs(5), Fault::Hold(host("consumer-0"), host("broker-0"))),
        (
            secs(6),
            Fault::Release(host("consumer-0"), host("broker-0")),
        ),
    ];
    for seed in [7, 21, 1_000_003] {
        let reference = run_with(seed, 5_000, &faults, consumer_config()).0;
        let last = reference.last().map_or(0, |e| e.at.as_millis());
        assert!(
            last > 6_000,
            "seed {seed}: the run ended at {last} ms, before its faults"
        );
        let again = run_with(seed, 5_000, &faults, consumer_config()).0;
        assert!(reference == again, "seed {seed} diverged on replay");
        let (x, y) = std::thread::scope(|s| {
            let a = s.spawn(|| run_with(seed, 5_000, &faults, consumer_config()).0);
            let b = s.spawn(|| run_with(seed, 5_000, &faults, consumer_config()).0);
            (a.join().expect("thread"), b.join().expect("thread"))
        });
        assert!(
            reference == x && reference == y,
            "seed {seed} diverged when run beside another simulation"
        );
    }
}

fn count(history: &[Entry], f: impl Fn(&Event) -> bool) -> usize {
    history.iter().filter(|e| f(&e.event)).count()
}

/// Runs every seed with a processing behaviour, checks zero loss and
/// commit safety, reports each seed's figures, and returns the histories so
/// a test can also check that its fault mattered.
fn judge_behaviour(
    name: &str,
    faults: &[(Duration, Fault)],
    behaviour: &Behaviour,
) -> Vec<Vec<Entry>> {
    let mut all = Vec::new();
    for seed in seeds() {
        let started = std::time::Instant::now();
        let (history, _) = run_processing(
            seed,
            messages(),
            faults,
            consumer_config(),
            behaviour.clone(),
        );
        let repro = format!(
            "reproduce with: RUCKUS_SEED={seed} cargo test -p ruckus-sim --test consumer {name}"
        );
        if let Err(v) = check_zero_loss(&history) {
            panic!("{name} seed {seed}: {v:?}\n{repro}");
        }
        if let Err(v) = check_commit_safety(&history) {
            panic!("{name} seed {seed}: {v:?}\n{repro}");
        }
        let last = history.last().map(|e| e.at).unwrap_or_default();
        eprintln!(
            "{name} seed {seed}: {} events, {} simulated, {:?} wall",
            history.len(),
            last,
            started.elapsed()
        );
        all.push(history);
    }
    all
}

#[test]
fn an_offset_commit_error_burst_loses_nothing() {
    let faults = [
        (
            secs(5),
            Fault::InjectErrors {
                api: Api::OffsetCommit,
                topic: None,
                error: ErrorCode::RebalanceInProgress,
                count: 20,
            },
        ),
        (
            secs(8),
            Fault::InjectErrors {
                api: Api::OffsetCommit,
                topic: None,
                error: ErrorCode::NotCoordinator,
                count: 10,
            },
        ),
    ];
    for h in judge_behaviour(
        "an_offset_commit_error_burst",
        &faults,
        &Behaviour::steady(Duration::from_millis(1)),
    ) {
        assert!(
            count(&h, |e| matches!(e, Event::CommitFailed { .. })) > 0,
            "no commit ever failed"
        );
    }
}

#[test]
fn dead_letter_produce_failures_lose_nothing() {
    let behaviour = Behaviour {
        latency: Duration::from_millis(1),
        transient_rate: 0.0,
        poison_rate: 0.01,
        ..Behaviour::steady(Duration::from_millis(1))
    };
    let faults = [(
        secs(3),
        Fault::InjectErrors {
            api: Api::Produce,
            topic: Some(Topic::new("orders.dlq")),
            error: ErrorCode::NotEnoughReplicas,
            count: 60,
        },
    )];
    for h in judge_behaviour("dead_letter_produce_failures", &faults, &behaviour) {
        assert!(
            count(&h, |e| matches!(e, Event::DeadLetterFailed { .. })) > 0,
            "no dead-letter write failed"
        );
        assert!(
            count(&h, |e| matches!(e, Event::DeadLettered { .. })) > 0,
            "nothing was dead-lettered"
        );
    }
}

#[test]
fn transient_failures_and_poison_records_lose_nothing() {
    let behaviour = Behaviour {
        latency: Duration::from_millis(1),
        transient_rate: 0.10,
        poison_rate: 0.001,
        ..Behaviour::steady(Duration::from_millis(1))
    };
    for h in judge_behaviour("transient_failures_and_poison_records", &[], &behaviour) {
        assert!(
            count(&h, |e| matches!(e, Event::Retried { .. })) > 500,
            "10% transient failures should retry often"
        );
        let dead = count(&h, |e| matches!(e, Event::DeadLettered { .. }));
        assert!(dead > 0, "0.1% poison should dead-letter some records");
        // Never both processed and dead-lettered.
        let mut done = std::collections::BTreeSet::new();
        for e in &h {
            if let Event::ProcessingSucceeded { tp, offset, .. }
            | Event::DeadLettered { tp, offset, .. } = &e.event
            {
                if matches!(e.event, Event::DeadLettered { .. }) {
                    assert!(
                        !done.contains(&(tp.clone(), *offset)),
                        "{tp}@{offset} processed and dead-lettered"
                    );
                }
                if matches!(e.event, Event::ProcessingSucceeded { .. }) {
                    done.insert((tp.clone(), *offset));
                }
            }
        }
    }
}

#[test]
fn processor_panics_lose_nothing() {
    let behaviour = Behaviour {
        latency: Duration::from_millis(1),
        transient_rate: 0.0,
        poison_rate: 0.0,
        panic_rate: 0.005,
        ..Behaviour::steady(Duration::from_millis(1))
    };
    for h in judge_behaviour("processor_panics", &[], &behaviour) {
        let panics = count(
            &h,
            |e| matches!(e, Event::ProcessingFailed { message, .. } if message.contains("panicked")),
        );
        assert!(panics > 10, "only {panics} panics caught");
    }
}

/// A zombie by network stall: every link of consumer-1 is held for 8 s
/// (past its 3 s session), then released, so its held heartbeats and
/// commits arrive late, after the group moved on. Not a process pause (its
/// timers keep running); the process-pause verb is not built yet.
#[test]
fn a_member_stalled_past_its_session_then_released_loses_nothing() {
    let mut faults = Vec::new();
    for b in 0..BROKERS {
        faults.push((secs(5), Fault::Hold(host("consumer-1"), broker_host(b))));
    }
    for b in 0..BROKERS {
        faults.push((secs(13), Fault::Release(host("consumer-1"), broker_host(b))));
    }
    for h in judge("a_member_stalled", &faults) {
        // The stalled member's membership declares its partitions lost when
        // its session runs out, but its driver hears of it only after the
        // commit call it is awaiting returns (commits are awaited in
        // order), and the run may finish first. What must hold: the others
        // took its partitions over, and nothing was lost or committed past.
        assert!(
            after(&h, "consumer-0", 5, assigned) + after(&h, "consumer-2", 5, assigned) > 0,
            "nobody took over"
        );
    }
}

/// The classic zombie: consumer-1 stops the world for 8 s (past its 3 s
/// session) mid-stream — no heartbeats, no commits, no records finished —
/// then resumes. The coordinator fenced it meanwhile and the others took
/// its partitions; it must learn it lost them (its session timer runs
/// during the stall, as a real one fires at once on waking), and its late
/// commits must not pass a record the new owners have not finished.
#[test]
fn a_paused_member_that_resumes_after_it_was_fenced_loses_nothing() {
    let faults = [
        (secs(2), Fault::Pause(host("consumer-1"))),
        (secs(8), Fault::Resume(host("consumer-1"))),
    ];
    for h in judge("a_paused_member", &faults) {
        assert!(
            after(&h, "consumer-0", 2, assigned) + after(&h, "consumer-2", 2, assigned) > 0,
            "nobody took over from the paused member"
        );
        assert!(
            after(&h, "consumer-1", 2, |e| matches!(e, Event::Lost { .. })) > 0,
            "the paused member never learned it lost its partitions"
        );
    }
}

/// 10% of the messages between consumer-0 and the coordinator (broker 0,
/// the lowest live broker) and between consumer-1 and broker 1 are lost
/// each way for 8 s: lost requests, and responses to requests the broker
/// acted on (a commit applied but never confirmed).
#[test]
fn lossy_links_lose_nothing() {
    let faults = [
        (secs(2), Fault::Loss(host("consumer-0"), 0, 100)),
        (secs(2), Fault::Loss(host("consumer-1"), 1, 100)),
        (secs(10), Fault::Loss(host("consumer-0"), 0, 0)),
        (secs(10), Fault::Loss(host("consumer-1"), 1, 0)),
    ];
    for h in judge("lossy_links", &faults) {
        assert!(
            count(&h, |e| matches!(e, Event::CommitFailed { .. })) > 0
                || after(&h, "consumer-0", 2, |e| matches!(e, Event::Lost { .. })) > 0,
            "losing 10% of the coordinator's messages disturbed nothing"
        );
    }
}

/// Clock skew: consumer-1's group clock jumps 10 s forward (its session
/// looks expired at once), consumer-2's 6 s back (its clock stands still,
/// no heartbeats: the coordinator expires it).
#[test]
fn clock_jumps_lose_nothing() {
    let faults = [
        (secs(2), Fault::ClockJump(host("consumer-1"), 10_000)),
        (secs(4), Fault::ClockJump(host("consumer-2"), -6_000)),
    ];
    for h in judge("clock_jumps", &faults) {
        assert!(
            after(&h, "consumer-1", 2, |e| matches!(e, Event::Lost { .. })) > 0,
            "a 10 s forward jump past a 3 s session did not give the partitions up"
        );
    }
}
