//! Simulated processing behaviour: latency, transient failures drawn from a
//! seeded RNG, and poison records chosen by a hash of the record (so a
//! poison record fails on every attempt, on every consumer).

use std::sync::Mutex;
use std::time::Duration;

use ruckus_core::consumer::ProcessingError;
use ruckus_core::driver::{MessageProcessor, RecordContext};
use ruckus_core::model::Record;
use ruckus_core::rng::{Rng, SplitMix64};

use crate::pause::PauseGate;

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
    /// Probability that an attempt fails with a *fatal* error (the
    /// reference consumer stops; a known-bad variant logs and skips).
    pub fatal_rate: f64,
    /// Extra latency drawn uniformly from `[0, latency_jitter]` per attempt.
    pub latency_jitter: Duration,
    /// Records with one of these keys are poison too.
    pub poison_keys: Vec<String>,
}

impl Behaviour {
    /// Succeeds after `latency`, always.
    pub fn steady(latency: Duration) -> Self {
        Self {
            latency,
            transient_rate: 0.0,
            poison_rate: 0.0,
            panic_rate: 0.0,
            fatal_rate: 0.0,
            latency_jitter: Duration::ZERO,
            poison_keys: Vec::new(),
        }
    }

    /// Whether `record` is poison under this behaviour.
    pub fn is_poison(&self, record: &Record) -> bool {
        if !self.poison_keys.is_empty()
            && record
                .key
                .as_ref()
                .is_some_and(|k| self.poison_keys.iter().any(|p| p.as_bytes() == &k[..]))
        {
            return true;
        }
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
    gate: PauseGate,
}

impl SimProcessor {
    /// A processor drawing its transient failures from `seed`.
    pub fn new(behaviour: Behaviour, seed: u64) -> Self {
        Self {
            behaviour,
            rng: Mutex::new(SplitMix64::new(seed)),
            gate: PauseGate::default(),
        }
    }

    /// The same processor, finishing no record while `gate` is closed.
    pub fn with_gate(mut self, gate: PauseGate) -> Self {
        self.gate = gate;
        self
    }
}

impl MessageProcessor for SimProcessor {
    async fn process(&self, record: &Record, ctx: &RecordContext) -> Result<(), ProcessingError> {
        let jitter = if self.behaviour.latency_jitter.is_zero() {
            Duration::ZERO
        } else {
            let f = self.rng.lock().expect("rng").next_f64();
            self.behaviour.latency_jitter.mul_f64(f)
        };
        tokio::time::sleep(self.behaviour.latency + jitter).await;
        self.gate.wait().await;
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
        let mut edge = self.behaviour.panic_rate + self.behaviour.transient_rate;
        if draw < edge {
            return Err(ProcessingError::transient("simulated transient failure"));
        }
        edge += self.behaviour.fatal_rate;
        if draw < edge {
            return Err(ProcessingError::fatal("simulated fatal failure"));
        }
        Ok(())
    }
}
