//! Any consumer, any language: a command line run as N member processes
//! against a real broker, faulted with signals, judged from what it leaves
//! on the broker.
//!
//! # The contract
//!
//! ruckus starts the command once per member with these environment
//! variables:
//!
//! | variable | value |
//! |---|---|
//! | `RUCKUS_BOOTSTRAP` | `bootstrap.servers` |
//! | `RUCKUS_GROUP` | the consumer group |
//! | `RUCKUS_TOPIC` | the topic to consume |
//! | `RUCKUS_OUTPUT_TOPIC` | where to report each record it finishes |
//! | `RUCKUS_MEMBER` | the member's name (`consumer-<i>`) |
//!
//! For each record it finishes, the consumer produces one record to the
//! output topic **before** it commits the record's offset: value
//! `<partition>:<offset>` of the input record, key `RUCKUS_MEMBER`
//! (optional). On SIGTERM it should stop gracefully (finish or abandon what
//! it holds, commit what it finished, leave the group) and exit.
//!
//! # What ruckus does with it
//!
//! It produces the scenario's workload, applies its faults — a member crash
//! is SIGKILL, a graceful stop SIGTERM, a pause SIGSTOP then SIGCONT, a
//! restart a new process; broker faults as on any real run — and builds
//! the history from outside: the records produced, one "processed" event
//! per output record (from the member its key names), the faults, and —
//! polled every 250 ms, recorded when they change — the group's state and
//! members (DescribeGroups) and its committed offsets.
//!
//! A black box is judged on `zero-loss` (every acknowledged record appears
//! in the output topic) and `liveness` (the group's committed offsets reach
//! the end of the log, and every member exits when asked). It cannot be
//! judged on what happens inside it — ownership, ordering, retries, dead
//! letters, commit timing against processing — since none of it is
//! observable from the broker.

// Progress and a contract breach go to stderr, as the harness's do.
#![allow(clippy::print_stderr)]

use std::collections::BTreeMap;
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant as WallInstant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::topic_partition_list::TopicPartitionList;
use rdkafka::Message as _;
use rdkafka::Offset as RdOffset;
use ruckus_chaos::check::Invariant;
use ruckus_core::events::Event;
use ruckus_core::model::{Instant, Offset, TopicPartition};
use ruckus_history::record::{BrokerEvent, History, Record as HRecord};

use crate::harness::Names;

/// The invariants a black box is judged on.
pub const JUDGED: [Invariant; 2] = [Invariant::ZeroLoss, Invariant::Liveness];

/// A consumer's command line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Command {
    /// The program.
    pub program: String,
    /// Its arguments.
    pub args: Vec<String>,
    /// More environment variables for it.
    pub env: Vec<(String, String)>,
}

/// Why a black-box run could not start or went wrong.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BlackBoxError {
    /// No command line given.
    #[error("no consumer command line given (the program and its arguments)")]
    NoCommand,
    /// The program could not be started.
    #[error("cannot start `{program}`: {source}")]
    Spawn {
        /// The program.
        program: String,
        /// Why.
        source: std::io::Error,
    },
    /// A member exited at once.
    #[error("{member} (`{program}`) exited at once with {status}: is the command line right?")]
    ExitedAtOnce {
        /// Which member.
        member: String,
        /// The program.
        program: String,
        /// Its exit status.
        status: std::process::ExitStatus,
    },
    /// The output topic could not be created.
    #[error("creating the output topic: {0}")]
    OutputTopic(String),
}

impl Command {
    /// `argv`: the program and its arguments.
    ///
    /// # Errors
    /// `argv` is empty.
    pub fn new(argv: &[String]) -> Result<Self, BlackBoxError> {
        let (program, args) = argv.split_first().ok_or(BlackBoxError::NoCommand)?;
        if program.trim().is_empty() {
            return Err(BlackBoxError::NoCommand);
        }
        Ok(Self {
            program: program.clone(),
            args: args.to_vec(),
            env: Vec::new(),
        })
    }
}

/// The output topic of a run's names.
pub fn output_topic(names: &Names) -> String {
    format!("{}.out", names.topic)
}

/// One member process.
#[derive(Debug)]
pub struct Process {
    child: Child,
    member: String,
}

impl Process {
    /// Starts member `member` of `cmd` against `bootstrap`.
    ///
    /// # Errors
    /// The program cannot be started.
    pub fn spawn(
        cmd: &Command,
        member: &str,
        bootstrap: &str,
        names: &Names,
    ) -> Result<Self, BlackBoxError> {
        let child = std::process::Command::new(&cmd.program)
            .args(&cmd.args)
            .envs(cmd.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env("RUCKUS_BOOTSTRAP", bootstrap)
            .env("RUCKUS_GROUP", &names.group)
            .env("RUCKUS_TOPIC", &names.topic)
            .env("RUCKUS_OUTPUT_TOPIC", output_topic(names))
            .env("RUCKUS_MEMBER", member)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|source| BlackBoxError::Spawn {
                program: cmd.program.clone(),
                source,
            })?;
        Ok(Self {
            child,
            member: member.to_owned(),
        })
    }

    /// Its exit status, if it has exited.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    fn signal(&self, sig: &str) {
        // `kill(1)`: no unsafe code for a signal.
        let _ = std::process::Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.child.id().to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }

    /// SIGKILL, and reaps it.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGSTOP: the whole process freezes (its heartbeats too).
    pub fn pause(&self) {
        self.signal("STOP");
    }

    /// SIGCONT.
    pub fn resume(&self) {
        self.signal("CONT");
    }

    /// SIGTERM (after SIGCONT, in case it is paused), then waits up to
    /// `within` for it to exit; SIGKILL after that. Returns whether it
    /// exited by itself.
    pub async fn terminate(mut self, within: Duration) -> bool {
        self.signal("CONT");
        self.signal("TERM");
        let deadline = WallInstant::now() + within;
        while WallInstant::now() < deadline {
            if self.exited().is_some() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        eprintln!(
            "{}: did not exit within {within:?} of SIGTERM; killed",
            self.member
        );
        self.kill();
        false
    }
}

/// Reads the output topic while the run lasts, recording one processed
/// event per output record; stops when dropped.
#[derive(Debug)]
pub struct OutputReader {
    stop: Arc<AtomicBool>,
    seen: Arc<std::sync::atomic::AtomicUsize>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl OutputReader {
    /// Starts reading `names`' output topic (`partitions` partitions) from
    /// the beginning; events are stamped with `start`'s elapsed time.
    pub fn start(
        bootstrap: &str,
        names: &Names,
        partitions: i32,
        history: History,
        start: WallInstant,
    ) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (out, source, group) = (
            output_topic(names),
            names.topic.clone(),
            names.group.clone(),
        );
        let (s, n, bootstrap) = (stop.clone(), seen.clone(), bootstrap.to_owned());
        let thread = std::thread::spawn(move || {
            let Ok(reader) = ClientConfig::new()
                .set("bootstrap.servers", &bootstrap)
                .set("group.id", "ruckus-output-reader")
                .set("enable.auto.commit", "false")
                .create::<BaseConsumer>()
            else {
                eprintln!("the output reader could not be created");
                return;
            };
            let mut tpl = TopicPartitionList::new();
            for p in 0..partitions {
                let _ = tpl.add_partition_offset(&out, p, RdOffset::Beginning);
            }
            if reader.assign(&tpl).is_err() {
                eprintln!("the output reader could not be assigned {out}");
                return;
            }
            let mut watch = GroupWatch::new(&bootstrap, &group, &source, partitions);
            let mut last_watch = WallInstant::now();
            // A final drain after the stop flag: what was produced before
            // the members stopped is read.
            let mut quiet_after_stop = 0;
            loop {
                if last_watch.elapsed() >= WATCH_EVERY {
                    last_watch = WallInstant::now();
                    if let Some(w) = watch.as_mut() {
                        let at = Instant::from_millis(start.elapsed().as_millis() as u64);
                        w.poll(&history, at);
                    }
                }
                let stopping = s.load(Ordering::Acquire);
                match reader.poll(Duration::from_millis(100)) {
                    Some(Ok(m)) => {
                        quiet_after_stop = 0;
                        let at = Instant::from_millis(start.elapsed().as_millis() as u64);
                        let member = m
                            .key()
                            .and_then(|k| std::str::from_utf8(k).ok())
                            .unwrap_or("consumer-?")
                            .to_owned();
                        let parsed = m.payload().and_then(parse_output);
                        match parsed {
                            Some((p, o)) => {
                                n.fetch_add(1, Ordering::Relaxed);
                                history.record_at(
                                    at,
                                    &member,
                                    HRecord::Client(Event::ProcessingSucceeded {
                                        tp: TopicPartition::new(source.as_str(), p),
                                        offset: Offset(o),
                                        attempt: 1,
                                    }),
                                );
                            }
                            None => eprintln!(
                                "{member}: an output record that breaks the contract \
                                 (value `<partition>:<offset>`): {:?}",
                                m.payload().map(String::from_utf8_lossy)
                            ),
                        }
                    }
                    _ if stopping => {
                        quiet_after_stop += 1;
                        if quiet_after_stop >= 10 {
                            return;
                        }
                    }
                    _ => {}
                }
            }
        });
        Self {
            stop,
            seen,
            thread: Some(thread),
        }
    }

    /// Output records read so far.
    pub fn seen(&self) -> usize {
        self.seen.load(Ordering::Relaxed)
    }

    /// Reads what is left (a second with nothing new), then stops.
    pub fn finish(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for OutputReader {
    fn drop(&mut self) {
        self.finish();
    }
}

/// How often the group and its committed offsets are polled.
const WATCH_EVERY: Duration = Duration::from_millis(250);

/// Polls a group from outside — its state and members (DescribeGroups),
/// and its committed offsets — and records what changed as broker events.
struct GroupWatch {
    client: BaseConsumer,
    group: String,
    topic: String,
    partitions: i32,
    last_group: Option<(String, Vec<(String, String)>)>,
    last_offsets: BTreeMap<i32, i64>,
}

impl GroupWatch {
    fn new(bootstrap: &str, group: &str, topic: &str, partitions: i32) -> Option<Self> {
        // Never subscribes: it only asks about the group.
        let client = ClientConfig::new()
            .set("bootstrap.servers", bootstrap)
            .set("group.id", group)
            .set("enable.auto.commit", "false")
            .create::<BaseConsumer>()
            .ok()?;
        Some(Self {
            client,
            group: group.to_owned(),
            topic: topic.to_owned(),
            partitions,
            last_group: None,
            last_offsets: BTreeMap::new(),
        })
    }

    fn poll(&mut self, history: &History, at: Instant) {
        let timeout = Duration::from_millis(500);
        if let Ok(list) = self.client.fetch_group_list(Some(&self.group), timeout) {
            if let Some(g) = list.groups().iter().find(|g| g.name() == self.group) {
                let mut members: Vec<(String, String)> = g
                    .members()
                    .iter()
                    .map(|m| (m.id().to_owned(), m.client_id().to_owned()))
                    .collect();
                members.sort();
                let now = (g.state().to_owned(), members);
                if self.last_group.as_ref() != Some(&now) {
                    history.record_at(
                        at,
                        "cluster",
                        HRecord::Broker(BrokerEvent::GroupObserved {
                            state: now.0.clone(),
                            members: now.1.clone(),
                        }),
                    );
                    self.last_group = Some(now);
                }
            }
        }
        let mut tpl = TopicPartitionList::new();
        for p in 0..self.partitions {
            tpl.add_partition(&self.topic, p);
        }
        if let Ok(committed) = self.client.committed_offsets(tpl, timeout) {
            for e in committed.elements() {
                if let RdOffset::Offset(o) = e.offset() {
                    if self.last_offsets.get(&e.partition()) != Some(&o) {
                        self.last_offsets.insert(e.partition(), o);
                        history.record_at(
                            at,
                            "cluster",
                            HRecord::Broker(BrokerEvent::CommitObserved {
                                tp: TopicPartition::new(self.topic.as_str(), e.partition()),
                                offset: Offset(o),
                            }),
                        );
                    }
                }
            }
        }
    }
}

/// `<partition>:<offset>`.
fn parse_output(v: &[u8]) -> Option<(i32, i64)> {
    let s = std::str::from_utf8(v).ok()?;
    let (p, o) = s.trim().split_once(':')?;
    Some((p.parse().ok()?, o.parse().ok()?))
}

/// How many output records each member wrote, for a report.
pub fn per_member(history: &[ruckus_history::Entry]) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for e in history {
        if let Some(Event::ProcessingSucceeded { .. }) = e.event() {
            *out.entry(e.host.clone()).or_default() += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_output_contract_is_partition_colon_offset() {
        assert_eq!(parse_output(b"3:1042"), Some((3, 1042)));
        assert_eq!(parse_output(b" 0:7\n"), Some((0, 7)));
        assert_eq!(parse_output(b"orders-3@1042"), None);
        assert_eq!(parse_output(b"3:"), None);
    }

    #[test]
    fn an_empty_command_line_is_refused() {
        assert!(matches!(Command::new(&[]), Err(BlackBoxError::NoCommand)));
        assert!(matches!(
            Command::new(&[" ".into()]),
            Err(BlackBoxError::NoCommand)
        ));
    }
}
