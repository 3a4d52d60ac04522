//! A minimal service on the reference consumer: consume a topic with the
//! engine's commit rule (never past a record that was neither processed nor
//! dead-lettered), dead-letter poison records, stop gracefully on Ctrl-C.
//!
//! It depends on `ruckus-core` and `ruckus-rdkafka` only: `cargo tree -p
//! ruckus-example-service` shows no simulator, no testcontainers, no
//! command-line parser and no chaos runner (the test command checks it).
//!
//! ```text
//! RUCKUS_KAFKA_BOOTSTRAP=127.0.0.1:9092 cargo run -p ruckus-example-service -- orders my-group
//! ```

use std::sync::Arc;

use ruckus_core::consumer::{ConsumerConfig, DeadLetterConfig, ProcessingError};
use ruckus_core::driver::{Driver, MessageProcessor, NoSink, RecordContext};
use ruckus_core::model::{Record, Topic};
use ruckus_core::rng::SplitMix64;
use ruckus_rdkafka::{KafkaConfig, RdKafkaTransport};

/// The business logic: a record whose value is not UTF-8 is poison.
struct Orders;

impl MessageProcessor for Orders {
    async fn process(&self, record: &Record, _ctx: &RecordContext) -> Result<(), ProcessingError> {
        match record.value.as_deref().map(std::str::from_utf8) {
            Some(Err(_)) => Err(ProcessingError::permanent("value is not UTF-8")),
            _ => Ok(()),
        }
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let topic = args.next().unwrap_or_else(|| "orders".into());
    let group = args.next().unwrap_or_else(|| "orders-service".into());
    let bootstrap =
        std::env::var("RUCKUS_KAFKA_BOOTSTRAP").unwrap_or_else(|_| "127.0.0.1:9092".into());
    let mut config = ConsumerConfig::new(group.as_str(), vec![Topic::new(topic.clone())]);
    config.dead_letter = Some(DeadLetterConfig::new(Topic::new(format!("{topic}.dlq"))));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        // rdkafka's clients want the runtime they run on.
        let transport =
            RdKafkaTransport::new(KafkaConfig::new(&bootstrap, &group, "orders-service"))?;
        let driver = Driver::new(
            config,
            transport,
            Orders,
            Box::new(SplitMix64::new(1)),
            Arc::new(NoSink),
        )?;
        let stop = driver.shutdown_handle();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                stop.shutdown();
            }
        });
        driver.run().await?;
        Ok(())
    })
}
