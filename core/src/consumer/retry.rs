//! Retry policy and error classes. Delays are returned as data; nothing
//! here sleeps.

use std::time::Duration;

use crate::rng::Rng;

/// How a processing error is handled.
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum ErrorClass {
    /// May succeed if tried again (a timeout, an unavailable dependency):
    /// retried with backoff, then dead-lettered when attempts run out.
    Transient,
    /// Will never succeed (a poison record, a validation failure):
    /// dead-lettered at once.
    Permanent,
    /// The consumer cannot go on (corrupt state, lost credentials): it stops
    /// without committing the record.
    Fatal,
}

impl ErrorClass {
    /// A stable lowercase name (used in dead-letter headers).
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorClass::Transient => "transient",
            ErrorClass::Permanent => "permanent",
            ErrorClass::Fatal => "fatal",
        }
    }
}

/// A processing failure: its class and a message.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{class:?} processing error: {message}")]
pub struct ProcessingError {
    /// How to handle it.
    pub class: ErrorClass,
    /// What happened.
    pub message: String,
}

impl ProcessingError {
    /// A transient error.
    pub fn transient(message: impl Into<String>) -> Self {
        Self {
            class: ErrorClass::Transient,
            message: message.into(),
        }
    }

    /// A permanent (poison) error.
    pub fn permanent(message: impl Into<String>) -> Self {
        Self {
            class: ErrorClass::Permanent,
            message: message.into(),
        }
    }

    /// A fatal error.
    pub fn fatal(message: impl Into<String>) -> Self {
        Self {
            class: ErrorClass::Fatal,
            message: message.into(),
        }
    }
}

/// Exponential backoff with a cap and jitter.
///
/// The delay after failed attempt `n` (1-based) is
/// `min(initial × multiplierⁿ⁻¹, max)`, reduced by up to `jitter` of itself
/// at random: with `jitter = 0.2` it lies in `[0.8 d, d]`. The random draw
/// comes from the caller's [`Rng`], so a seeded run replays exactly.
#[derive(Clone, Debug, PartialEq)]
pub struct RetryPolicy {
    /// Attempts in total, the first included (1 = never retry).
    pub max_attempts: u32,
    /// Delay after the first failure.
    pub initial_backoff: Duration,
    /// Growth per attempt (≥ 1).
    pub multiplier: f64,
    /// Upper bound on any delay.
    pub max_backoff: Duration,
    /// Fraction of the delay that is randomized, in `[0, 1]`.
    pub jitter: f64,
}

impl Default for RetryPolicy {
    /// 3 attempts; 500 ms, ×2, capped at 30 s; 20% jitter (the user's
    /// original design retried after 0.5, 1 and 2 s).
    fn default() -> Self {
        Self {
            max_attempts: 3,
            initial_backoff: Duration::from_millis(500),
            multiplier: 2.0,
            max_backoff: Duration::from_secs(30),
            jitter: 0.2,
        }
    }
}

impl RetryPolicy {
    /// Whether a record that failed attempt `attempt` (1-based) gets another.
    pub fn retries_after(&self, attempt: u32) -> bool {
        attempt < self.max_attempts
    }

    /// The un-jittered delay after failed attempt `attempt` (1-based).
    pub fn base_delay(&self, attempt: u32) -> Duration {
        let exp = self
            .multiplier
            .powi(attempt.saturating_sub(1).min(1_000) as i32);
        let secs = (self.initial_backoff.as_secs_f64() * exp).min(self.max_backoff.as_secs_f64());
        Duration::from_secs_f64(secs.max(0.0))
    }

    /// The delay after failed attempt `attempt`, jittered with `rng`.
    pub fn delay(&self, attempt: u32, rng: &mut dyn Rng) -> Duration {
        let base = self.base_delay(attempt);
        let cut = base.as_secs_f64() * self.jitter.clamp(0.0, 1.0) * rng.next_f64();
        // Whole milliseconds: the clock core runs on.
        Duration::from_millis(((base.as_secs_f64() - cut) * 1000.0).round() as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::SplitMix64;

    #[test]
    fn backoff_grows_then_caps() {
        let p = RetryPolicy {
            max_attempts: 10,
            jitter: 0.0,
            ..RetryPolicy::default()
        };
        let d: Vec<u64> = (1..=8)
            .map(|a| p.delay(a, &mut SplitMix64::new(1)).as_millis() as u64)
            .collect();
        assert_eq!(d, vec![500, 1000, 2000, 4000, 8000, 16000, 30000, 30000]);
    }

    #[test]
    fn jitter_stays_within_its_fraction_and_replays_from_the_seed() {
        let p = RetryPolicy::default();
        let mut r = SplitMix64::new(9);
        for a in 1..=5 {
            let base = p.base_delay(a).as_millis() as u64;
            let d = p.delay(a, &mut r).as_millis() as u64;
            assert!(
                d <= base && d as f64 >= base as f64 * 0.8 - 1.0,
                "{d} vs {base}"
            );
        }
        let run = |seed| {
            (1..=5)
                .map(|a| p.delay(a, &mut SplitMix64::new(seed)))
                .collect::<Vec<_>>()
        };
        assert_eq!(run(3), run(3));
    }

    #[test]
    fn max_attempts_counts_the_first_try() {
        let p = RetryPolicy {
            max_attempts: 3,
            ..RetryPolicy::default()
        };
        assert!(p.retries_after(1) && p.retries_after(2) && !p.retries_after(3));
        let once = RetryPolicy {
            max_attempts: 1,
            ..RetryPolicy::default()
        };
        assert!(!once.retries_after(1));
    }
}
