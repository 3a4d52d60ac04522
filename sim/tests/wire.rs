//! The broker's Fetch: a long poll that answers when records arrive, and a
//! soft byte limit.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use ruckus_core::coordinator::CoordinatorConfig;
use ruckus_core::model::{Offset, Topic, TopicPartition};
use ruckus_sim::client::Brokers;
use ruckus_sim::cluster::{broker, broker_host, sim_now, Cluster};
use ruckus_sim::wire::{ProduceRecord, Request, Response};

fn tp() -> TopicPartition {
    TopicPartition::new("t", 0)
}

fn fetch(from: i64, max_wait: Duration, max_bytes: u32) -> Request {
    Request::Fetch {
        partitions: vec![(tp(), Offset(from))],
        max_records: 100,
        max_wait,
        max_bytes,
    }
}

fn records(r: &Response) -> Vec<i64> {
    match r {
        Response::Fetch { partitions } => partitions
            .iter()
            .flat_map(|p| p.records.iter().map(|r| r.offset.0))
            .collect(),
        other => panic!("not a fetch response: {other:?}"),
    }
}

fn produce(n: usize, size: usize) -> Request {
    Request::Produce {
        tp: tp(),
        records: (0..n)
            .map(|_| ProduceRecord {
                key: None,
                value: Some(Bytes::from(vec![b'x'; size])),
                headers: vec![],
            })
            .collect(),
    }
}

fn cluster(sim: &mut turmoil::Sim<'_>) -> Cluster {
    let c = Cluster::new(1, &[(Topic::new("t"), 1)], CoordinatorConfig::default());
    let b = c.clone();
    sim.host(broker_host(0), move || broker(b.clone(), 0));
    c
}

#[test]
fn a_long_poll_fetch_answers_when_records_arrive() {
    let mut sim = ruckus_sim::builder(1, Duration::from_secs(10)).build();
    cluster(&mut sim);
    let answered = Arc::new(Mutex::new(None));
    let a = answered.clone();
    sim.client("consumer", async move {
        let pool = Brokers::default();
        let t0 = sim_now();
        let r = pool
            .call(
                0,
                fetch(0, Duration::from_secs(2), 1 << 20),
                Duration::from_secs(5),
            )
            .await
            .expect("answered");
        *a.lock().unwrap() = Some((sim_now().as_millis() - t0.as_millis(), records(&r)));
        Ok(())
    });
    sim.client("producer", async move {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let r = Brokers::default()
            .call(0, produce(3, 10), Duration::from_secs(5))
            .await
            .expect("answered");
        assert!(matches!(r, Response::Produce { .. }));
        Ok(())
    });
    sim.run().unwrap();
    let (waited, got) = answered.lock().unwrap().clone().expect("answered");
    assert_eq!(got, vec![0, 1, 2]);
    assert!(
        (500..2000).contains(&waited),
        "answered after {waited} ms: not held until the records came"
    );
}

#[test]
fn a_long_poll_fetch_with_nothing_answers_empty_at_its_deadline() {
    let mut sim = ruckus_sim::builder(1, Duration::from_secs(10)).build();
    cluster(&mut sim);
    sim.client("consumer", async move {
        let t0 = sim_now();
        let r = Brokers::default()
            .call(
                0,
                fetch(0, Duration::from_millis(800), 1 << 20),
                Duration::from_secs(5),
            )
            .await
            .expect("answered");
        let waited = sim_now().as_millis() - t0.as_millis();
        assert!(records(&r).is_empty());
        assert!((800..1000).contains(&waited), "answered after {waited} ms");
        Ok(())
    });
    sim.run().unwrap();
}

#[test]
fn max_bytes_is_a_soft_limit() {
    let mut sim = ruckus_sim::builder(1, Duration::from_secs(10)).build();
    cluster(&mut sim);
    sim.client("client", async move {
        let pool = Brokers::default();
        pool.call(0, produce(10, 100), Duration::from_secs(5))
            .await
            .expect("answered");
        // 350 bytes: three 100-byte records.
        let r = pool
            .call(0, fetch(0, Duration::ZERO, 350), Duration::from_secs(5))
            .await
            .expect("answered");
        assert_eq!(records(&r), vec![0, 1, 2]);
        // Smaller than one record: that record still comes.
        let r = pool
            .call(0, fetch(4, Duration::ZERO, 10), Duration::from_secs(5))
            .await
            .expect("answered");
        assert_eq!(records(&r), vec![4]);
        Ok(())
    });
    sim.run().unwrap();
}
