//! Clock skew for a host: a [`HostClock`] its group membership reads
//! instead of the simulation's clock. A forward jump makes deadlines come
//! due at once (heartbeats, the client-side session check); a backward jump
//! holds the clock still until real time catches up, so nothing comes due
//! for that long — the member stops heartbeating and the coordinator
//! expires it. The clock never runs backwards: the state machines above
//! take time as an argument and may rely on it rising.
//!
//! What reads it: the membership state machine of the simulated transport
//! (the group protocol's timers). The consumer engine's own timers (retry
//! backoff, periodic commits) run on the host's tokio clock, unskewed.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;

use ruckus_core::model::Instant;

use crate::cluster::sim_now;

/// A host's skewable clock. Cloning shares it.
#[derive(Clone, Debug, Default)]
pub struct HostClock(Arc<Inner>);

#[derive(Debug, Default)]
struct Inner {
    offset_ms: AtomicI64,
    last_ms: AtomicU64,
}

impl HostClock {
    /// Moves the clock by `ms` (negative: backwards, seen as a standstill).
    pub fn jump(&self, ms: i64) {
        self.0.offset_ms.fetch_add(ms, Ordering::SeqCst);
    }

    /// The total skew set so far, in milliseconds.
    pub fn skew_ms(&self) -> i64 {
        self.0.offset_ms.load(Ordering::SeqCst)
    }

    /// The host's time: the simulation's, skewed, never decreasing. Call
    /// inside the simulation.
    pub fn now(&self) -> Instant {
        let real = sim_now().as_millis() as i64;
        let skewed = u64::try_from(real + self.skew_ms()).unwrap_or(0);
        let prev = self.0.last_ms.fetch_max(skewed, Ordering::SeqCst);
        Instant::from_millis(prev.max(skewed))
    }
}
