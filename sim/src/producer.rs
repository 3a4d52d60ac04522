//! A producer host: writes keyed records with acks=all and retries, and
//! records every acknowledged write in the history.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use ruckus_core::events::Event;
use ruckus_core::model::{ErrorCode, Offset, TopicPartition};

use crate::client::Brokers;
use crate::history::History;
use crate::wire::{ProduceRecord, Request, Response};

/// One record's key and value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Payload {
    /// The key (none: a null key).
    pub key: Option<Bytes>,
    /// The value (none: a tombstone).
    pub value: Option<Bytes>,
}

impl Payload {
    /// A keyed record.
    pub fn new(key: impl Into<Bytes>, value: impl Into<Bytes>) -> Self {
        Self {
            key: Some(key.into()),
            value: Some(value.into()),
        }
    }

    /// The default workload's `i`-th record: key `key-<i mod 97>`, value
    /// `message-<i>`.
    pub fn default_for(i: usize) -> Self {
        Self::new(format!("key-{}", i % 97), format!("message-{i}"))
    }
}

/// What the `i`-th record of a workload holds.
#[derive(Clone)]
pub struct Payloads(Arc<dyn Fn(usize) -> Payload + Send + Sync>);

impl Payloads {
    /// Payloads made by `f` from the record's index.
    pub fn new(f: impl Fn(usize) -> Payload + Send + Sync + 'static) -> Self {
        Self(Arc::new(f))
    }

    /// The `i`-th record.
    pub fn payload(&self, i: usize) -> Payload {
        (self.0)(i)
    }
}

impl Default for Payloads {
    fn default() -> Self {
        Self::new(Payload::default_for)
    }
}

impl std::fmt::Debug for Payloads {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Payloads(..)")
    }
}

/// What to produce.
#[derive(Clone, Debug)]
pub struct Workload {
    /// Target partitions, written round-robin.
    pub partitions: Vec<TopicPartition>,
    /// Messages in total.
    pub messages: usize,
    /// Records per produce request.
    pub batch: usize,
    /// Pause between produce requests (zero: as fast as acknowledgements
    /// come), to spread the load over a run.
    pub interval: Duration,
    /// What each record holds.
    pub payloads: Payloads,
}

/// Produces the workload; returns when every record was acknowledged.
///
/// A request that times out is retried, so a record may be written twice
/// (at-least-once, as a Kafka producer without idempotence); only
/// acknowledged offsets enter the history.
///
/// # Errors
/// Never: it retries until acknowledged.
pub async fn produce(
    brokers: Vec<u32>,
    workload: Workload,
    history: History,
    host: String,
) -> turmoil::Result {
    let pool = Arc::new(Brokers::default());
    let mut sent = 0usize;
    let mut round = 0usize;
    while sent < workload.messages {
        let tp = workload.partitions[round % workload.partitions.len()].clone();
        round += 1;
        let n = workload.batch.min(workload.messages - sent);
        let records: Vec<ProduceRecord> = (sent..sent + n)
            .map(|i| {
                let p = workload.payloads.payload(i);
                ProduceRecord {
                    key: p.key,
                    value: p.value,
                    headers: vec![],
                }
            })
            .collect();
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let leader = leader_of(&pool, &brokers, &tp).await;
            let result = match leader {
                Some(l) => pool
                    .call(
                        l,
                        Request::Produce {
                            tp: tp.clone(),
                            records: records.clone(),
                        },
                        Duration::from_secs(2),
                    )
                    .await
                    .ok(),
                None => None,
            };
            if let Some(Response::Produce {
                error: ErrorCode::None,
                base_offset,
            }) = result
            {
                for k in 0..n as i64 {
                    crate::history::record(
                        &history,
                        &host,
                        Event::Produced {
                            tp: tp.clone(),
                            offset: Offset(base_offset.0 + k),
                        },
                    );
                }
                break;
            }
            tokio::time::sleep(Duration::from_millis(50 * u64::from(attempt.min(20)))).await;
        }
        sent += n;
        if !workload.interval.is_zero() && sent < workload.messages {
            tokio::time::sleep(workload.interval).await;
        }
    }
    Ok(())
}

async fn leader_of(pool: &Brokers, brokers: &[u32], tp: &TopicPartition) -> Option<u32> {
    for b in brokers {
        if let Ok(Response::Metadata { leaders, .. }) = pool
            .call(*b, Request::Metadata, Duration::from_secs(2))
            .await
        {
            return leaders.into_iter().find(|(t, _)| t == tp).map(|(_, l)| l);
        }
    }
    None
}
