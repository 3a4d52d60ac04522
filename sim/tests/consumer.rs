//! The reference consumer against the simulated cluster, judged from the
//! history: every acknowledged message processed or dead-lettered, and no
//! commit past an unprocessed record.
//!
//! `RUCKUS_SEED=<seed>` runs one seed; `RUCKUS_MESSAGES=<n>` changes the
//! message count (10,000 by default).

// Each seed's figures (events, simulated and wall time) are reported on stderr.
#![allow(clippy::print_stderr)]

use std::sync::Arc;
use std::time::Duration;

use ruckus_core::assign::CooperativeSticky;
use ruckus_core::consumer::{
    CommitStrategy, ConsumerConfig, DeadLetterConfig, DlqLimit, ProcessingError, RetryPolicy,
};
use ruckus_core::coordinator::CoordinatorConfig;
use ruckus_core::driver::{Driver, MessageProcessor, RecordContext};
use ruckus_core::membership::MembershipConfig;
use ruckus_core::model::{GroupId, Record, Topic, TopicPartition};
use ruckus_core::rng::SplitMix64;
use ruckus_sim::cluster::{broker, broker_host, Cluster};
use ruckus_sim::history::{check_commit_safety, check_zero_loss, Entry, History};
use ruckus_sim::producer::{produce, Workload};
use ruckus_sim::transport::{SimTransport, SimTransportConfig};

const BROKERS: u32 = 3;
const CONSUMERS: usize = 3;
const PARTITIONS: u32 = 12;

struct Noop;

impl MessageProcessor for Noop {
    async fn process(&self, _record: &Record, _ctx: &RecordContext) -> Result<(), ProcessingError> {
        tokio::time::sleep(Duration::from_millis(1)).await;
        Ok(())
    }
}

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

/// Runs one seed; returns the history and the cluster.
fn run(seed: u64, messages: usize) -> (Vec<Entry>, Cluster) {
    let mut sim = turmoil::Builder::new()
        .rng_seed(seed)
        .simulation_duration(Duration::from_secs(600))
        .tick_duration(Duration::from_millis(1))
        .build();
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
    let history = History::default();
    for b in 0..BROKERS {
        let c = cluster.clone();
        sim.host(broker_host(b), move || broker(c.clone(), b));
    }
    for i in 0..CONSUMERS {
        let host = format!("consumer-{i}");
        let history = history.clone();
        sim.host(host.clone(), move || {
            let host = host.clone();
            let history = history.clone();
            async move {
                let transport = SimTransport::new(SimTransportConfig {
                    brokers: (0..BROKERS).collect(),
                    membership: membership(&host),
                    request_timeout: Duration::from_secs(2),
                    max_records: 200,
                });
                let driver = Driver::new(
                    consumer_config(),
                    transport,
                    Noop,
                    Box::new(SplitMix64::new(seed ^ host.len() as u64)),
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
    let c = cluster.clone();
    let h = history.clone();
    sim.client("checker", async move {
        let group = GroupId::new("sim-group");
        loop {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let produced = h
                .entries()
                .iter()
                .filter(|e| matches!(e.event, ruckus_core::events::Event::Produced { .. }))
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
    if let Err(e) = sim.run() {
        panic!("simulation failed: {e}\nreproduce with: RUCKUS_SEED={seed} cargo test -p ruckus-sim --test consumer");
    }
    (history.entries(), cluster)
}

fn seeds() -> Vec<u64> {
    match std::env::var("RUCKUS_SEED") {
        Ok(s) => vec![s.parse().expect("RUCKUS_SEED is a u64")],
        Err(_) => vec![1, 2],
    }
}

fn messages() -> usize {
    std::env::var("RUCKUS_MESSAGES")
        .ok()
        .and_then(|m| m.parse().ok())
        .unwrap_or(10_000)
}

#[test]
fn steady_state_loses_nothing_and_never_commits_past_an_unprocessed_record() {
    for seed in seeds() {
        let started = std::time::Instant::now();
        let (history, _) = run(seed, messages());
        let repro = format!("reproduce with: RUCKUS_SEED={seed} cargo test -p ruckus-sim --test consumer steady_state");
        if let Err(v) = check_zero_loss(&history) {
            panic!("seed {seed}: {v:?}\n{repro}");
        }
        if let Err(v) = check_commit_safety(&history) {
            panic!("seed {seed}: {v:?}\n{repro}");
        }
        let last = history.last().map(|e| e.at).unwrap_or_default();
        eprintln!(
            "seed {seed}: {} events, {} simulated, {:?} wall",
            history.len(),
            last,
            started.elapsed()
        );
    }
}

#[test]
fn the_same_seed_gives_the_same_history() {
    let a = run(7, 1_000).0;
    let b = run(7, 1_000).0;
    assert!(a.len() > 1_000);
    assert_eq!(format!("{a:?}"), format!("{b:?}"), "seed 7 diverged");
}

#[test]
fn every_consumer_takes_part() {
    let (history, _) = run(3, 3_000);
    for i in 0..CONSUMERS {
        let host = format!("consumer-{i}");
        let n = history
            .iter()
            .filter(|e| {
                e.host == host
                    && matches!(
                        e.event,
                        ruckus_core::events::Event::ProcessingSucceeded { .. }
                    )
            })
            .count();
        assert!(n > 300, "{host} processed only {n} of 3000");
    }
}
