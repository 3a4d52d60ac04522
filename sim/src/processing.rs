//! Simulated processing behaviour: latency, transient failures drawn from a
//! seeded RNG, and poison records chosen by a hash of the record (so a
//! poison record fails on every attempt, on every consumer).

use std::sync::Mutex;
use std::time::Duration;

use ruckus_core::consumer::ProcessingError;
use ruckus_core::driver::{MessageProcessor, RecordContext};
use ruckus_core::model::Record;
use ruckus_core::rng::{Rng, SplitMix64};

/// How processing behaves.
#[derive(Clone, Debug, PartialEq)]
pub struct Behaviour {
    /// Time to process one record.
    pub latency: Duration,
    /// Probability that an attempt fails transiently.
    pub transient_rate: f64,
    /// Fraction of records that are poison (fail permanently).
    pub poison_rate: f64,
    /// Probability that an attempt panics inside the processor (the driver
    /// must catch it and treat it as a failure of that record).
    pub panic_rate: f64,
}

impl Behaviour {
    /// Succeeds after `latency`, always.
    pub fn steady(latency: Duration) -> Self {
        Self {
            latency,
            transient_rate: 0.0,
            poison_rate: 0.0,
            panic_rate: 0.0,
        }
    }

    /// Whether `record` is poison under this behaviour.
    pub fn is_poison(&self, record: &Record) -> bool {
        let key = (u64::from(record.topic_partition.partition.0.unsigned_abs()) << 40)
            ^ record.offset.0 as u64;
        SplitMix64::new(key ^ 0x5eed_0f90_150a).next_f64() < self.poison_rate
    }
}

/// A processor with a [`Behaviour`].
#[derive(Debug)]
pub struct SimProcessor {
    behaviour: Behaviour,
    rng: Mutex<SplitMix64>,
}

impl SimProcessor {
    /// A processor drawing its transient failures from `seed`.
    pub fn new(behaviour: Behaviour, seed: u64) -> Self {
        Self {
            behaviour,
            rng: Mutex::new(SplitMix64::new(seed)),
        }
    }
}

impl MessageProcessor for SimProcessor {
    async fn process(&self, record: &Record, ctx: &RecordContext) -> Result<(), ProcessingError> {
        tokio::time::sleep(self.behaviour.latency).await;
        if self.behaviour.is_poison(record) {
            return Err(ProcessingError::permanent(format!(
                "poison record (attempt {})",
                ctx.attempt
            )));
        }
        let draw = self.rng.lock().expect("rng").next_f64();
        if draw < self.behaviour.panic_rate {
            panic!(
                "simulated processor panic at {}@{}",
                record.topic_partition, record.offset
            );
        }
        if draw < self.behaviour.panic_rate + self.behaviour.transient_rate {
            return Err(ProcessingError::transient("simulated transient failure"));
        }
        Ok(())
    }
}
