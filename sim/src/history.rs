//! The simulation's side of the typed history (`ruckus-history`): a sink
//! that stamps each host's engine events with simulated time.

use std::sync::Arc;

use ruckus_core::driver::EventSink;
use ruckus_core::events::Event;
use ruckus_core::model::Instant;
pub use ruckus_history::record::{Entry, History, Record};

use crate::cluster::sim_now;

/// Appends a client event from `host` at the current simulated time.
pub fn record(history: &History, host: &str, event: Event) {
    history.record_at(sim_now(), host, Record::Client(event));
}

/// A sink for a host's driver: its events, stamped with the simulation's
/// clock (the same on every host, whatever the host's own clock says).
pub fn sink(history: &History, host: &str) -> Arc<dyn EventSink> {
    Arc::new(HostSink {
        host: host.to_owned(),
        history: history.clone(),
    })
}

struct HostSink {
    host: String,
    history: History,
}

impl EventSink for HostSink {
    fn emit(&self, _at: Instant, event: &Event) {
        record(&self.history, &self.host, event.clone());
    }
}
