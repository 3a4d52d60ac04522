//! Client connections to simulated brokers: correlation ids, request
//! timeouts, and reconnects (a failed connection is dropped and the next
//! call opens a new one).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::sync::{mpsc, oneshot};
use turmoil::net::TcpStream;

use crate::cluster::{broker_host, PORT};
use crate::loss::{Fate, LinkLoss};
use crate::pause::PauseGate;
use crate::wire::{read_frame, write_frame, Frame, Request, Response};

/// Why a call failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CallError {
    /// Could not connect, or the connection broke.
    Disconnected,
    /// No answer within the request timeout.
    TimedOut,
}

type Pending<R> = Arc<Mutex<BTreeMap<u64, oneshot::Sender<R>>>>;

/// One connection to one broker (or, with other message types, to another
/// simulated service: the store): requests carry correlation ids, so many
/// calls share it; when it breaks, the calls waiting on it fail in
/// correlation order.
#[derive(Debug)]
pub struct Connection<Q = Request, R = Response> {
    tx: mpsc::UnboundedSender<Frame<Q>>,
    pending: Pending<R>,
    next: AtomicU64,
    alive: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl<Q, R> Drop for Connection<Q, R> {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl Connection {
    /// Connects to broker `id`.
    ///
    /// # Errors
    /// [`CallError::Disconnected`] if the broker cannot be reached.
    pub async fn connect(id: u32) -> Result<Self, CallError> {
        Self::open(&broker_host(id), PORT).await
    }
}

impl<Q, R> Connection<Q, R>
where
    Q: Serialize + Send + Sync + 'static,
    R: DeserializeOwned + Send + 'static,
{
    /// Connects to `host`:`port`.
    ///
    /// # Errors
    /// [`CallError::Disconnected`] if the host cannot be reached.
    pub async fn open(host: &str, port: u16) -> Result<Self, CallError> {
        let stream = TcpStream::connect((host, port))
            .await
            .map_err(|_| CallError::Disconnected)?;
        let (mut rd, mut wr) = stream.into_split();
        let (tx, mut rx) = mpsc::unbounded_channel::<Frame<Q>>();
        let pending: Pending<R> = Arc::default();
        let alive = Arc::new(AtomicBool::new(true));
        let (p, a) = (pending.clone(), alive.clone());
        let reader = tokio::spawn(async move {
            while let Ok(frame) = read_frame::<R, _>(&mut rd).await {
                if let Some(waiter) = p.lock().expect("pending").remove(&frame.correlation) {
                    let _ = waiter.send(frame.body);
                }
            }
            a.store(false, Ordering::SeqCst);
            // Dropping the waiters fails their calls at once.
            p.lock().expect("pending").clear();
        });
        let a = alive.clone();
        let writer = tokio::spawn(async move {
            while let Some(frame) = rx.recv().await {
                if write_frame(&mut wr, &frame).await.is_err() {
                    a.store(false, Ordering::SeqCst);
                    return;
                }
            }
        });
        Ok(Self {
            tx,
            pending,
            next: AtomicU64::new(1),
            alive,
            tasks: vec![reader, writer],
        })
    }

    /// Whether the connection still works.
    pub fn is_alive(&self) -> bool {
        self.alive.load(Ordering::SeqCst)
    }

    /// Sends a request and waits for its response.
    ///
    /// # Errors
    /// A broken connection or a timeout.
    pub async fn call(&self, request: Q, timeout: Duration) -> Result<R, CallError> {
        let correlation = self.next.fetch_add(1, Ordering::SeqCst);
        let (tx, rx) = oneshot::channel();
        self.pending
            .lock()
            .expect("pending")
            .insert(correlation, tx);
        if self
            .tx
            .send(Frame {
                correlation,
                body: request,
            })
            .is_err()
        {
            self.pending.lock().expect("pending").remove(&correlation);
            return Err(CallError::Disconnected);
        }
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(_)) => Err(CallError::Disconnected),
            Err(_) => {
                self.pending.lock().expect("pending").remove(&correlation);
                Err(CallError::TimedOut)
            }
        }
    }
}

/// Connections by broker id, opened on demand and replaced when broken.
/// Shared by reference: the lock is held only to look a connection up,
/// never across a call.
#[derive(Debug, Default)]
pub struct Brokers {
    conns: Mutex<BTreeMap<u32, Arc<Connection>>>,
    gate: PauseGate,
    loss: LinkLoss,
}

impl Brokers {
    /// Connections of a host whose every request and response first passes
    /// `gate` (a paused host sends and receives nothing) and whose links
    /// lose messages as `loss` says.
    pub fn for_host(gate: PauseGate, loss: LinkLoss) -> Self {
        Self {
            conns: Mutex::default(),
            gate,
            loss,
        }
    }

    async fn connection(&self, id: u32, timeout: Duration) -> Result<Arc<Connection>, CallError> {
        if let Some(c) = self
            .conns
            .lock()
            .expect("conns")
            .get(&id)
            .filter(|c| c.is_alive())
        {
            return Ok(c.clone());
        }
        let c = Arc::new(
            tokio::time::timeout(timeout, Connection::connect(id))
                .await
                .map_err(|_| CallError::TimedOut)??,
        );
        self.conns.lock().expect("conns").insert(id, c.clone());
        Ok(c)
    }

    /// Calls broker `id`, connecting if needed. A failed call drops the
    /// connection so the next call reconnects.
    ///
    /// # Errors
    /// A broken connection or a timeout.
    pub async fn call(
        &self,
        id: u32,
        request: Request,
        timeout: Duration,
    ) -> Result<Response, CallError> {
        self.gate.wait().await;
        let conn = self.connection(id, timeout).await?;
        let fate = self.loss.draw(id);
        let result = match fate {
            Fate::Delivered => conn.call(request, timeout).await,
            Fate::RequestLost => {
                tokio::time::sleep(timeout).await;
                Err(CallError::TimedOut)
            }
            Fate::ResponseLost => {
                let start = tokio::time::Instant::now();
                let _ = conn.call(request, timeout).await;
                tokio::time::sleep_until(start + timeout).await;
                Err(CallError::TimedOut)
            }
        };
        self.gate.wait().await;
        if result.is_err() {
            let mut conns = self.conns.lock().expect("conns");
            if conns.get(&id).is_some_and(|c| Arc::ptr_eq(c, &conn)) {
                conns.remove(&id);
            }
        }
        result
    }
}
