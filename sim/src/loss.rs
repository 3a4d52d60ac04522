//! Message loss on the links between a host and the brokers. A lost
//! request never reaches the broker; a lost response was acted on by the
//! broker (a commit applied, a record appended) but never reaches the
//! client. Either way the client sees its request time out and its
//! connection reset, as a TCP connection broken mid-request looks.
//!
//! Draws come from a per-host generator seeded from the run's seed and the
//! host's name, in the host's own order of calls, so a run replays exactly.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use ruckus_core::rng::{Rng, SplitMix64};

/// A host's loss rates per broker. Cloning shares it.
#[derive(Clone, Debug)]
pub struct LinkLoss(Arc<Mutex<Inner>>);

#[derive(Debug)]
struct Inner {
    rates: BTreeMap<u32, f64>,
    rng: SplitMix64,
}

impl Default for LinkLoss {
    fn default() -> Self {
        Self::new(0)
    }
}

/// What happens to one call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fate {
    /// Delivered both ways.
    Delivered,
    /// The request is lost on the way to the broker.
    RequestLost,
    /// The broker handles the request; its response is lost.
    ResponseLost,
}

impl LinkLoss {
    /// No loss yet; draws seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        Self(Arc::new(Mutex::new(Inner {
            rates: BTreeMap::new(),
            rng: SplitMix64::new(seed),
        })))
    }

    /// Sets the loss rate (each direction) of the link to `broker`; 0 heals.
    pub fn set(&self, broker: u32, rate: f64) {
        let mut s = self.0.lock().expect("loss");
        if rate > 0.0 {
            s.rates.insert(broker, rate.min(1.0));
        } else {
            s.rates.remove(&broker);
        }
    }

    /// Draws the fate of one call to `broker`.
    pub fn draw(&self, broker: u32) -> Fate {
        let mut s = self.0.lock().expect("loss");
        let Some(&rate) = s.rates.get(&broker) else {
            return Fate::Delivered;
        };
        if s.rng.next_f64() < rate {
            Fate::RequestLost
        } else if s.rng.next_f64() < rate {
            Fate::ResponseLost
        } else {
            Fate::Delivered
        }
    }
}
