//! A key-value store a processor writes its side effects to, and the
//! client it writes with.
//!
//! In the simulation the store is its own host ([`STORE_HOST`]), reached
//! over turmoil's network like a real database: a member's crash loses what
//! its processor buffered but not what the store acknowledged, and the
//! network faults of the fault model (partition, hold, latency between a
//! member and `store`) and a store outage (the host crashed, its data kept)
//! apply to it. On a real broker the same client talks to the same store in
//! process ([`StoreClient::in_process`]), so one processor runs on every
//! backend.
//!
//! The store records every write it applies in the run's history
//! ([`StoreEvent`]), stamped when it applies it, with the record the
//! processor named as its cause: that is what the effect checkers judge.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use ruckus_core::model::{Instant, Offset, Record, TopicPartition};
use ruckus_history::record::{Cause, History, Record as HRecord, StoreEvent};
use serde::{Deserialize, Serialize};
use turmoil::net::TcpListener;

use crate::client::{CallError, Connection};
use crate::wire::{read_frame, write_frame, Frame};

/// The store's host name in the simulation.
pub const STORE_HOST: &str = "store";
/// The port it listens on.
pub const STORE_PORT: u16 = 7070;

/// How a store call failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The store could not be reached (down, or the network cut): the
    /// write was not applied.
    #[error("the store is unavailable: {0}")]
    Unavailable(String),
    /// No answer in time: the write may or may not have been applied.
    #[error("no answer from the store within {0:?}: the write may or may not be applied")]
    Timeout(Duration),
}

#[derive(Clone, Debug, Serialize, Deserialize)]
enum Request {
    Put {
        cause: Option<(TopicPartition, i64)>,
        key: String,
        value: Vec<u8>,
        once: bool,
    },
    Get {
        key: String,
    },
}

#[derive(Clone, Debug, Serialize, Deserialize)]
enum Response {
    Put { applied: bool },
    Get { value: Option<Vec<u8>> },
}

type Clock = Arc<dyn Fn() -> Instant + Send + Sync>;

struct State {
    data: BTreeMap<String, Bytes>,
    history: Option<History>,
    clock: Clock,
    up: bool,
}

/// The store's data: it outlives the store host (a crash of the host is an
/// outage, not data loss).
#[derive(Clone)]
pub struct Store(Arc<Mutex<State>>);

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = self.0.lock().expect("store");
        f.debug_struct("Store")
            .field("keys", &s.data.len())
            .field("up", &s.up)
            .finish_non_exhaustive()
    }
}

impl Store {
    /// An empty store recording into `history`, stamping with `clock`.
    pub fn new(
        history: Option<History>,
        clock: impl Fn() -> Instant + Send + Sync + 'static,
    ) -> Self {
        Self(Arc::new(Mutex::new(State {
            data: BTreeMap::new(),
            history,
            clock: Arc::new(clock),
            up: true,
        })))
    }

    /// A store in the simulation, stamping with simulated time.
    pub fn simulated(history: History) -> Self {
        Self::new(Some(history), crate::cluster::sim_now)
    }

    /// The value of `key`, read directly (for tests and checks at the end
    /// of a run).
    pub fn get(&self, key: &str) -> Option<Bytes> {
        self.0.lock().expect("store").data.get(key).cloned()
    }

    /// Every key and value, in key order.
    pub fn snapshot(&self) -> Vec<(String, Bytes)> {
        let s = self.0.lock().expect("store");
        s.data.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }

    /// An in-process store's outage: while down, every call fails with
    /// [`StoreError::Unavailable`]. (In the simulation an outage is the
    /// store host crashing.)
    pub fn set_up(&self, up: bool) {
        self.0.lock().expect("store").up = up;
    }

    fn is_up(&self) -> bool {
        self.0.lock().expect("store").up
    }

    fn put(&self, cause: Option<Cause>, key: String, value: Bytes, once: bool) -> bool {
        let mut s = self.0.lock().expect("store");
        let at = (s.clock)();
        let applied = !(once && s.data.contains_key(&key));
        let event = if applied {
            s.data.insert(key.clone(), value);
            StoreEvent::Applied { cause, key, once }
        } else {
            StoreEvent::Unchanged { cause, key }
        };
        if let Some(h) = &s.history {
            h.record_at(at, STORE_HOST, HRecord::Store(event));
        }
        applied
    }

    fn answer(&self, request: Request) -> Response {
        match request {
            Request::Put {
                cause,
                key,
                value,
                once,
            } => {
                let cause = cause.map(|(tp, o)| Cause {
                    tp,
                    offset: Offset(o),
                });
                Response::Put {
                    applied: self.put(cause, key, Bytes::from(value), once),
                }
            }
            Request::Get { key } => Response::Get {
                value: self.get(&key).map(|v| v.to_vec()),
            },
        }
    }
}

/// The store host's software: answers requests until it crashes.
///
/// # Errors
/// Binding the listener fails.
pub async fn serve(store: Store) -> turmoil::Result {
    let listener = TcpListener::bind((IpAddr::from(Ipv4Addr::UNSPECIFIED), STORE_PORT)).await?;
    loop {
        let (stream, _) = listener.accept().await?;
        let store = store.clone();
        tokio::spawn(async move {
            let (mut rd, mut wr) = stream.into_split();
            while let Ok(frame) = read_frame::<Request, _>(&mut rd).await {
                let body = store.answer(frame.body);
                let reply = Frame {
                    correlation: frame.correlation,
                    body,
                };
                if write_frame(&mut wr, &reply).await.is_err() {
                    return;
                }
            }
        });
    }
}

enum Link {
    /// Over the simulated network: one connection, many calls on it (a
    /// broken one is replaced at the next call).
    Sim(tokio::sync::Mutex<Option<Arc<Connection<Request, Response>>>>),
    /// Straight to the store.
    InProcess(Store),
}

/// The client a processor writes its effects with. Cheap to clone; a new
/// one per member start (a crashed member's connection dies with it).
#[derive(Clone)]
pub struct StoreClient {
    link: Arc<Link>,
    timeout: Duration,
}

impl std::fmt::Debug for StoreClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let how = match &*self.link {
            Link::Sim(_) => "simulated network",
            Link::InProcess(_) => "in process",
        };
        f.debug_struct("StoreClient")
            .field("link", &how)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// The default time a call waits for its answer.
pub const STORE_TIMEOUT: Duration = Duration::from_secs(1);

impl StoreClient {
    /// A client of the simulated store host; use it from a simulated
    /// member's tasks.
    pub fn simulated() -> Self {
        Self {
            link: Arc::new(Link::Sim(tokio::sync::Mutex::new(None))),
            timeout: STORE_TIMEOUT,
        }
    }

    /// A client of `store` in this process (real-broker runs).
    pub fn in_process(store: Store) -> Self {
        Self {
            link: Arc::new(Link::InProcess(store)),
            timeout: STORE_TIMEOUT,
        }
    }

    /// The same client waiting `timeout` for each answer.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Writes `value` under `key` as the effect of `cause`, and returns
    /// once the store applied it.
    ///
    /// # Errors
    /// The store is unavailable, or did not answer in time.
    pub async fn put(
        &self,
        cause: &Record,
        key: impl Into<String>,
        value: impl Into<Bytes>,
    ) -> Result<(), StoreError> {
        self.write(cause, key.into(), value.into(), false)
            .await
            .map(|_| ())
    }

    /// Writes `value` under `key` as the effect of `cause` unless `key`
    /// was written before (an idempotent write: key it by the record, and
    /// a redelivered record changes nothing). Returns whether this call
    /// wrote it.
    ///
    /// # Errors
    /// The store is unavailable, or did not answer in time.
    pub async fn put_once(
        &self,
        cause: &Record,
        key: impl Into<String>,
        value: impl Into<Bytes>,
    ) -> Result<bool, StoreError> {
        self.write(cause, key.into(), value.into(), true).await
    }

    /// The value of `key`.
    ///
    /// # Errors
    /// The store is unavailable, or did not answer in time.
    pub async fn get(&self, key: &str) -> Result<Option<Bytes>, StoreError> {
        match self
            .call(Request::Get {
                key: key.to_owned(),
            })
            .await?
        {
            Response::Get { value } => Ok(value.map(Bytes::from)),
            Response::Put { .. } => Err(StoreError::Unavailable("a garbled answer".into())),
        }
    }

    async fn write(
        &self,
        cause: &Record,
        key: String,
        value: Bytes,
        once: bool,
    ) -> Result<bool, StoreError> {
        let request = Request::Put {
            cause: Some((cause.topic_partition.clone(), cause.offset.0)),
            key,
            value: value.to_vec(),
            once,
        };
        match self.call(request).await? {
            Response::Put { applied } => Ok(applied),
            Response::Get { .. } => Err(StoreError::Unavailable("a garbled answer".into())),
        }
    }

    async fn call(&self, request: Request) -> Result<Response, StoreError> {
        match &*self.link {
            Link::InProcess(store) => {
                if !store.is_up() {
                    return Err(StoreError::Unavailable("the store is down".into()));
                }
                Ok(store.answer(request))
            }
            Link::Sim(conn) => {
                let c = {
                    let mut conn = conn.lock().await;
                    match conn.as_ref().filter(|c| c.is_alive()) {
                        Some(c) => c.clone(),
                        None => {
                            let c =
                                Arc::new(Connection::open(STORE_HOST, STORE_PORT).await.map_err(
                                    |_| StoreError::Unavailable("cannot connect".into()),
                                )?);
                            *conn = Some(c.clone());
                            c
                        }
                    }
                };
                match c.call(request, self.timeout).await {
                    Ok(r) => Ok(r),
                    Err(CallError::Disconnected) => {
                        Err(StoreError::Unavailable("the connection broke".into()))
                    }
                    Err(CallError::TimedOut) => {
                        // What was lost on a cut or held link leaves the
                        // stream unusable: the next call opens a new one.
                        let mut conn = conn.lock().await;
                        if conn.as_ref().is_some_and(|x| Arc::ptr_eq(x, &c)) {
                            *conn = None;
                        }
                        Err(StoreError::Timeout(self.timeout))
                    }
                }
            }
        }
    }
}
