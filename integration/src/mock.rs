//! librdkafka's mock cluster as a broker fixture: in process, no Docker.
//! The default tier, run by every `cargo test`.

use std::time::Duration;

use rdkafka::config::ClientConfig;
use rdkafka::error::KafkaError;
use rdkafka::mocking::{MockCluster, MockCoordinator};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::types::{RDKafkaApiKey, RDKafkaErrorCode, RDKafkaRespErr};
use ruckus_core::model::ErrorCode;

use crate::ffi;

/// A mock cluster, owned by a producer client created with
/// `test.mock.num.brokers` (so the raw handle needed for the group
/// rebalance delay is reachable). Broker ids are `1..=brokers`.
pub struct MockKafka {
    owner: BaseProducer,
    brokers: i32,
}

impl std::fmt::Debug for MockKafka {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MockKafka")
            .field("brokers", &self.brokers)
            .field("bootstrap", &self.bootstrap())
            .finish()
    }
}

/// A mock-cluster operation failed.
#[derive(Debug, thiserror::Error)]
#[error("mock cluster: {0}")]
pub struct MockError(String);

impl MockKafka {
    /// Starts a cluster of `brokers` brokers with the group initial
    /// rebalance delay set to 0 (with librdkafka's default every first
    /// rebalance waits seconds).
    ///
    /// # Errors
    /// librdkafka could not create it.
    pub fn start(brokers: i32) -> Result<Self, MockError> {
        let owner: BaseProducer = ClientConfig::new()
            .set("test.mock.num.brokers", brokers.to_string())
            .set("client.id", "ruckus-mock-owner")
            .create()
            .map_err(|e| MockError(e.to_string()))?;
        if !ffi::mock_initial_rebalance_delay(owner.client(), 0) {
            return Err(MockError("the owner client has no mock cluster".into()));
        }
        Ok(Self { owner, brokers })
    }

    fn cluster(&self) -> MockCluster<'_, rdkafka::producer::DefaultProducerContext> {
        self.owner
            .client()
            .mock_cluster()
            .expect("a mock-owning client keeps its cluster")
    }

    /// Sets the session timeout and heartbeat interval of KIP-848
    /// (`group.protocol=consumer`) groups, which that protocol takes from
    /// the broker (librdkafka's mock defaults: 45 s and 3 s).
    ///
    /// # Errors
    /// The owner client has no mock cluster.
    pub fn consumer_group_timeouts(
        &self,
        session: Duration,
        heartbeat: Duration,
    ) -> Result<(), MockError> {
        let ok = ffi::mock_consumer_group_timeouts(
            self.owner.client(),
            session.as_millis() as i32,
            heartbeat.as_millis() as i32,
        );
        ok.then_some(())
            .ok_or_else(|| MockError("the owner client has no mock cluster".into()))
    }

    /// `bootstrap.servers` for clients.
    pub fn bootstrap(&self) -> String {
        self.cluster().bootstrap_servers()
    }

    /// Broker ids.
    pub fn broker_ids(&self) -> std::ops::RangeInclusive<i32> {
        1..=self.brokers
    }

    /// Creates a topic.
    ///
    /// # Errors
    /// The mock refused.
    pub fn create_topic(&self, topic: &str, partitions: i32) -> Result<(), MockError> {
        self.cluster()
            .create_topic(topic, partitions, self.brokers.min(3))
            .map_err(|e| MockError(e.to_string()))
    }

    /// Produces `records` records of `value` to `topic` (keys `i % 1024`,
    /// so they spread over the partitions) and waits until all are
    /// acknowledged: a backlog for a test or a benchmark.
    ///
    /// # Errors
    /// A record could not be produced or acknowledged.
    pub fn fill(&self, topic: &str, records: usize, value: &[u8]) -> Result<(), MockError> {
        let producer: BaseProducer = ClientConfig::new()
            .set("bootstrap.servers", self.bootstrap())
            .set("linger.ms", "20")
            .set("queue.buffering.max.messages", "1000000")
            .create()
            .map_err(|e| MockError(e.to_string()))?;
        for i in 0..records {
            let key = (i % 1024).to_string();
            // A full local queue is waited out; anything else is an error.
            loop {
                match producer.send(BaseRecord::to(topic).key(&key).payload(value)) {
                    Ok(()) => break,
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                        producer.poll(Duration::from_millis(10));
                    }
                    Err((e, _)) => return Err(MockError(e.to_string())),
                }
            }
        }
        producer
            .flush(Duration::from_secs(60))
            .map_err(|e| MockError(e.to_string()))
    }

    /// Takes a broker down (its connections drop, it accepts none).
    ///
    /// # Errors
    /// No such broker.
    pub fn broker_down(&self, id: i32) -> Result<(), MockError> {
        self.cluster()
            .broker_down(id)
            .map_err(|e| MockError(e.to_string()))
    }

    /// Brings a broker back.
    ///
    /// # Errors
    /// No such broker.
    pub fn broker_up(&self, id: i32) -> Result<(), MockError> {
        self.cluster()
            .broker_up(id)
            .map_err(|e| MockError(e.to_string()))
    }

    /// Sets a broker's round-trip time.
    ///
    /// # Errors
    /// No such broker.
    pub fn broker_rtt(&self, id: i32, rtt: Duration) -> Result<(), MockError> {
        self.cluster()
            .broker_round_trip_time(id, rtt)
            .map_err(|e| MockError(e.to_string()))
    }

    /// The next requests of `api` fail with these errors, in order.
    ///
    /// # Errors
    /// A code librdkafka does not know.
    pub fn request_errors(
        &self,
        api: RDKafkaApiKey,
        errors: &[ErrorCode],
    ) -> Result<(), MockError> {
        let errs = errors
            .iter()
            .map(|e| {
                RDKafkaRespErr::try_from(i32::from(e.code()))
                    .map_err(|_| MockError(format!("librdkafka has no error {e:?}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        self.cluster().request_errors(api, &errs);
        Ok(())
    }

    /// The next requests of `api` that broker `id` receives fail with
    /// these errors, in order (other brokers answer as usual).
    ///
    /// # Errors
    /// No such broker.
    pub fn broker_request_errors(
        &self,
        id: i32,
        api: RDKafkaApiKey,
        errors: &[ErrorCode],
    ) -> Result<(), MockError> {
        for e in errors {
            if !ffi::mock_broker_request_error(
                self.owner.client(),
                id,
                api as i16,
                i32::from(e.code()),
                0,
            ) {
                return Err(MockError(format!("no mock broker {id}")));
            }
        }
        Ok(())
    }

    /// Moves the group's coordinator to broker `id`.
    ///
    /// # Errors
    /// No such broker.
    pub fn move_coordinator(&self, group: &str, id: i32) -> Result<(), MockError> {
        self.cluster()
            .coordinator(MockCoordinator::Group(group.to_owned()), id)
            .map_err(|e| MockError(e.to_string()))
    }

    /// Moves a partition's leadership to broker `id`.
    ///
    /// # Errors
    /// No such partition or broker.
    pub fn move_leader(&self, topic: &str, partition: i32, id: i32) -> Result<(), MockError> {
        self.cluster()
            .partition_leader(topic, partition, Some(id))
            .map_err(|e| MockError(e.to_string()))
    }
}
