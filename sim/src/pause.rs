//! Stop-the-world pauses of a host: a [`PauseGate`] that every outgoing
//! request, every response and every processed record of a host passes
//! through. While it is closed the host sends nothing (no heartbeats, no
//! commits, no fetches) and finishes no record — a garbage-collection-like
//! stall. Its timers keep running, so on resume everything that came due
//! fires at once, as it does after a real stall: the classic zombie, which
//! wakes up believing it still owns its partitions.

use std::sync::Arc;

use tokio::sync::watch;

/// An open-or-closed gate, shared between a host and the fault schedule.
/// Cloning shares it.
#[derive(Clone, Debug)]
pub struct PauseGate(Arc<watch::Sender<bool>>);

impl Default for PauseGate {
    fn default() -> Self {
        Self(Arc::new(watch::Sender::new(false)))
    }
}

impl PauseGate {
    /// Closes the gate: the host stalls at its next request, response or
    /// record.
    pub fn pause(&self) {
        self.0.send_replace(true);
    }

    /// Opens the gate: everything waiting goes on.
    pub fn resume(&self) {
        self.0.send_replace(false);
    }

    /// Whether the gate is closed.
    pub fn is_paused(&self) -> bool {
        *self.0.borrow()
    }

    /// Waits until the gate is open (at once if it is).
    pub async fn wait(&self) {
        if !self.is_paused() {
            return;
        }
        let mut rx = self.0.subscribe();
        // The sender lives in `self`, so the channel cannot close here.
        let _ = rx.wait_for(|paused| !*paused).await;
    }
}
