//! An in-memory cluster and transport, for the driver's own tests and for
//! trying a processor without a broker. One consumer owns the whole group:
//! it is assigned every partition of its topics on subscribe; a test can
//! revoke, assign or lose partitions and inject commit and dead-letter
//! failures. It is not a Kafka model — the simulation crate is.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;

use super::{Transport, TransportError, TransportEvent};
use crate::consumer::{DeadLetter, StartPosition};
use crate::model::{
    ErrorCode, Generation, MemberId, Offset, Record, Timestamp, Topic, TopicPartition,
};

#[derive(Debug, Default)]
struct State {
    logs: BTreeMap<TopicPartition, Vec<Record>>,
    committed: BTreeMap<TopicPartition, Offset>,
    commit_log: Vec<(Generation, TopicPartition, Offset)>,
    dead_letters: Vec<DeadLetter>,
    fail_commits: u32,
    commit_error: Option<ErrorCode>,
    fail_dead_letters: u32,
    commit_attempts: u32,
    commit_latency: Duration,
    rejoins: Vec<(Generation, ErrorCode)>,
    events: VecDeque<TransportEvent>,
    generation: i32,
    revocations_done: Vec<Vec<TopicPartition>>,
    left: bool,
}

/// The cluster: topic logs, committed offsets, the dead-letter log, and
/// fault knobs. Clone it to keep a handle while the transport runs.
#[derive(Clone, Debug, Default)]
pub struct MemoryCluster(Arc<Mutex<State>>);

impl MemoryCluster {
    /// An empty cluster.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.0.lock().expect("memory cluster lock")
    }

    /// Creates a topic with `partitions` empty partitions.
    pub fn create_topic(&self, topic: &str, partitions: i32) {
        let mut s = self.lock();
        for p in 0..partitions {
            s.logs.entry(TopicPartition::new(topic, p)).or_default();
        }
    }

    /// Appends a record; returns its offset.
    pub fn produce(&self, tp: &TopicPartition, key: &str, value: &str) -> Offset {
        let mut s = self.lock();
        let log = s.logs.entry(tp.clone()).or_default();
        let offset = Offset(log.len() as i64);
        log.push(Record {
            topic_partition: tp.clone(),
            offset,
            key: Some(Bytes::from(key.to_owned())),
            value: Some(Bytes::from(value.to_owned())),
            headers: Vec::new(),
            timestamp: Timestamp(offset.0),
        });
        offset
    }

    /// The committed offset of a partition.
    pub fn committed(&self, tp: &TopicPartition) -> Option<Offset> {
        self.lock().committed.get(tp).copied()
    }

    /// Every successful commit, in order.
    pub fn commit_log(&self) -> Vec<(Generation, TopicPartition, Offset)> {
        self.lock().commit_log.clone()
    }

    /// Records written to dead-letter topics.
    pub fn dead_letters(&self) -> Vec<DeadLetter> {
        self.lock().dead_letters.clone()
    }

    /// The next `n` commits fail with REQUEST_TIMED_OUT.
    pub fn fail_commits(&self, n: u32) {
        self.fail_commits_with(n, ErrorCode::RequestTimedOut);
    }

    /// The next `n` commits fail with `error`. With a "member out of its
    /// generation" error, a rejoin of that generation ends the failures.
    pub fn fail_commits_with(&self, n: u32, error: ErrorCode) {
        let mut s = self.lock();
        s.fail_commits = n;
        s.commit_error = Some(error);
    }

    /// Each commit takes this long to be answered (default: none).
    pub fn set_commit_latency(&self, latency: Duration) {
        self.lock().commit_latency = latency;
    }

    /// Commit requests received, failed ones included.
    pub fn commit_attempts(&self) -> u32 {
        self.lock().commit_attempts
    }

    /// Rejoins the consumer asked for: the generation and the commit error.
    pub fn rejoins(&self) -> Vec<(Generation, ErrorCode)> {
        self.lock().rejoins.clone()
    }

    /// The next `n` dead-letter writes fail with NOT_ENOUGH_REPLICAS.
    pub fn fail_dead_letters(&self, n: u32) {
        self.lock().fail_dead_letters = n;
    }

    /// Starts a rebalance that revokes `partitions`.
    pub fn revoke(&self, partitions: Vec<TopicPartition>) {
        self.lock()
            .events
            .push_back(TransportEvent::Revoked { partitions });
    }

    /// Assigns `partitions` in a new generation.
    pub fn assign(&self, partitions: Vec<TopicPartition>) {
        let mut s = self.lock();
        s.generation += 1;
        let generation = Generation(s.generation);
        s.events.push_back(TransportEvent::Joined {
            member_id: MemberId::new("memory-member"),
            generation,
        });
        s.events.push_back(TransportEvent::Assigned {
            partitions,
            generation,
        });
    }

    /// Loses `partitions` (as a fenced consumer would).
    pub fn lose(&self, partitions: Vec<TopicPartition>) {
        self.lock()
            .events
            .push_back(TransportEvent::Lost { partitions });
    }

    /// Revocations the consumer reported finished.
    pub fn revocations_done(&self) -> Vec<Vec<TopicPartition>> {
        self.lock().revocations_done.clone()
    }

    /// Whether the consumer left.
    pub fn left(&self) -> bool {
        self.lock().left
    }
}

/// The transport for one consumer of a [`MemoryCluster`].
#[derive(Debug)]
pub struct MemoryTransport {
    cluster: MemoryCluster,
    positions: BTreeMap<TopicPartition, Offset>,
    paused: BTreeSet<TopicPartition>,
    max_batch: usize,
}

impl MemoryTransport {
    /// A transport on `cluster`.
    pub fn new(cluster: MemoryCluster) -> Self {
        Self {
            cluster,
            positions: BTreeMap::new(),
            paused: BTreeSet::new(),
            max_batch: 100,
        }
    }

    /// Takes what is ready, without waiting: the cancel-safe core of `poll`.
    fn take(&mut self) -> Vec<TransportEvent> {
        let mut s = self.cluster.lock();
        if let Some(e) = s.events.pop_front() {
            if let TransportEvent::Lost { partitions } = &e {
                for tp in partitions {
                    self.positions.remove(tp);
                }
            }
            return vec![e];
        }
        let mut records = Vec::new();
        for (tp, pos) in &mut self.positions {
            if self.paused.contains(tp) {
                continue;
            }
            let Some(log) = s.logs.get(tp) else { continue };
            let from = pos.0.max(0) as usize;
            let to = (from + self.max_batch).min(log.len());
            if from < to {
                records.extend_from_slice(&log[from..to]);
                *pos = Offset(to as i64);
            }
        }
        drop(s);
        if records.is_empty() {
            Vec::new()
        } else {
            vec![TransportEvent::Records(records)]
        }
    }
}

impl Transport for MemoryTransport {
    async fn subscribe(&mut self, topics: &[Topic]) -> Result<(), TransportError> {
        let all: Vec<TopicPartition> = self
            .cluster
            .lock()
            .logs
            .keys()
            .filter(|tp| topics.contains(&tp.topic))
            .cloned()
            .collect();
        self.cluster.assign(all);
        Ok(())
    }

    async fn poll(&mut self, max_wait: Duration) -> Result<Vec<TransportEvent>, TransportError> {
        // Check, sleep a little, check again: nothing is taken across an
        // await point, so dropping this future loses nothing.
        let step = Duration::from_millis(1).min(max_wait);
        let deadline = tokio::time::Instant::now() + max_wait;
        loop {
            let got = self.take();
            if !got.is_empty() || tokio::time::Instant::now() >= deadline {
                return Ok(got);
            }
            tokio::time::sleep(step.max(Duration::from_micros(100))).await;
        }
    }

    async fn start_positions(
        &mut self,
        partitions: &[TopicPartition],
    ) -> Result<Vec<(TopicPartition, StartPosition)>, TransportError> {
        let s = self.cluster.lock();
        Ok(partitions
            .iter()
            .map(|tp| {
                let end = s.logs.get(tp).map_or(0, Vec::len) as i64;
                let pos = StartPosition {
                    committed: s.committed.get(tp).copied(),
                    log_start: Offset(0),
                    log_end: Offset(end),
                };
                (tp.clone(), pos)
            })
            .collect())
    }

    fn seek(&mut self, tp: &TopicPartition, offset: Offset) {
        self.positions.insert(tp.clone(), offset);
    }

    fn pause(&mut self, tp: &TopicPartition) {
        self.paused.insert(tp.clone());
    }

    fn resume(&mut self, tp: &TopicPartition) {
        self.paused.remove(tp);
    }

    async fn commit(
        &mut self,
        generation: Generation,
        _member_id: &MemberId,
        offsets: &[(TopicPartition, Offset)],
    ) -> Result<(), ErrorCode> {
        let latency = self.cluster.lock().commit_latency;
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
        let mut s = self.cluster.lock();
        s.commit_attempts += 1;
        if s.fail_commits > 0 {
            s.fail_commits -= 1;
            return Err(s.commit_error.unwrap_or(ErrorCode::RequestTimedOut));
        }
        for (tp, o) in offsets {
            s.committed.insert(tp.clone(), *o);
            s.commit_log.push((generation, tp.clone(), *o));
        }
        Ok(())
    }

    async fn produce_dead_letter(
        &mut self,
        _topic: &Topic,
        letter: &DeadLetter,
    ) -> Result<(), ErrorCode> {
        let mut s = self.cluster.lock();
        if s.fail_dead_letters > 0 {
            s.fail_dead_letters -= 1;
            return Err(ErrorCode::NotEnoughReplicas);
        }
        s.dead_letters.push(letter.clone());
        Ok(())
    }

    async fn watermarks(
        &mut self,
        tp: &TopicPartition,
    ) -> Result<(Offset, Offset), TransportError> {
        let s = self.cluster.lock();
        let end = s
            .logs
            .get(tp)
            .ok_or(TransportError::Kafka(ErrorCode::UnknownTopicOrPartition))?
            .len();
        Ok((Offset(0), Offset(end as i64)))
    }

    async fn revocation_done(&mut self, partitions: &[TopicPartition]) {
        // A pause stays as the engine left it (the rule on `Transport`).
        for tp in partitions {
            self.positions.remove(tp);
        }
        self.cluster
            .lock()
            .revocations_done
            .push(partitions.to_vec());
    }

    /// As Kafka's consumer: the partitions owned are lost and the member
    /// joins a new generation, which is assigned the same partitions (this
    /// cluster has one member) and whose commits are accepted again.
    fn rejoin(&mut self, generation: Generation, error: ErrorCode) {
        let owned: Vec<TopicPartition> = self.positions.keys().cloned().collect();
        {
            let mut s = self.cluster.lock();
            s.rejoins.push((generation, error));
            if generation != Generation(s.generation) {
                return;
            }
            s.fail_commits = 0;
            s.events.push_back(TransportEvent::Lost {
                partitions: owned.clone(),
            });
        }
        self.cluster.assign(owned);
    }

    async fn leave(&mut self) -> Result<(), TransportError> {
        self.cluster.lock().left = true;
        Ok(())
    }
}
