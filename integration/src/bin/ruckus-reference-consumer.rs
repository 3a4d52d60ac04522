//! The reference consumer as a black box: it meets ruckus's black-box
//! contract (`ruckus_integration::blackbox`), so ruckus can run it as N
//! processes and judge it from the broker, as it judges a consumer written
//! in any language.
//!
//! It reads `RUCKUS_BOOTSTRAP`, `RUCKUS_GROUP`, `RUCKUS_TOPIC`,
//! `RUCKUS_OUTPUT_TOPIC` and `RUCKUS_MEMBER`; for each record it writes
//! `<partition>:<offset>` to the output topic and waits for the write's
//! acknowledgement before the record counts as processed (the engine
//! commits only past processed records); SIGTERM stops it gracefully.

use std::sync::Arc;
use std::time::Duration;

use rdkafka::config::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord};
use ruckus_core::consumer::{ConsumerConfig, ProcessingError};
use ruckus_core::driver::{Driver, MessageProcessor, NoSink, RecordContext};
use ruckus_core::model::{Record, Topic};
use ruckus_core::rng::SplitMix64;
use ruckus_rdkafka::{KafkaConfig, RdKafkaTransport};

struct Report {
    producer: FutureProducer,
    output: String,
    member: String,
}

impl MessageProcessor for Report {
    async fn process(&self, record: &Record, _ctx: &RecordContext) -> Result<(), ProcessingError> {
        let value = format!("{}:{}", record.topic_partition.partition.0, record.offset.0);
        let out = FutureRecord::to(&self.output)
            .key(&self.member)
            .payload(&value);
        self.producer
            .send(out, Duration::from_secs(10))
            .await
            .map(|_| ())
            .map_err(|(e, _)| ProcessingError::transient(format!("output write: {e}")))
    }
}

fn env(name: &str) -> Result<String, String> {
    std::env::var(name).map_err(|_| format!("{name} is not set (ruckus's black-box contract)"))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (bootstrap, group, topic, output, member) = (
        env("RUCKUS_BOOTSTRAP")?,
        env("RUCKUS_GROUP")?,
        env("RUCKUS_TOPIC")?,
        env("RUCKUS_OUTPUT_TOPIC")?,
        env("RUCKUS_MEMBER")?,
    );
    let config = ConsumerConfig::new(group.as_str(), vec![Topic::new(topic)]);
    let mut kc = KafkaConfig::new(&bootstrap, &group, &member);
    kc.session_timeout = Duration::from_secs(6);
    kc.heartbeat_interval = Duration::from_millis(500);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        // rdkafka's clients want the runtime they run on.
        let transport = RdKafkaTransport::new(kc)?;
        let producer: FutureProducer = ClientConfig::new()
            .set("bootstrap.servers", &bootstrap)
            .set("acks", "all")
            .set("enable.idempotence", "true")
            .set("linger.ms", "2")
            .create()?;
        let driver = Driver::new(
            config,
            transport,
            Report {
                producer,
                output,
                member,
            },
            Box::new(SplitMix64::new(1)),
            Arc::new(NoSink),
        )?;
        let stop = driver.shutdown_handle();
        tokio::spawn(async move {
            let Ok(mut term) =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            else {
                return;
            };
            term.recv().await;
            stop.shutdown();
        });
        driver.run().await?;
        Ok(())
    })
}
