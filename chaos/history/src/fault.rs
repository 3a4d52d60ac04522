//! The one fault model: what scenario files, the nemesis and the shrinker
//! produce, and what every backend applies.
//!
//! A [`Fault`] is data. Its targets are named the way scenario files name
//! them ([`BrokerRef`], [`HostRef`], member indexes) and resolved by the
//! backend when the fault fires: `coordinator` and `leader-of-<p>` mean
//! whichever broker holds that role at that moment. Each backend implements
//! one `apply` for it — one arm per kind, checked by the compiler — and
//! either returns a way to heal it or says, with [`Unsupported`], why the
//! fault has no equivalent there. The history records what was applied as a
//! [`FaultRecord`]: the fault and the targets it resolved to.

use std::fmt;
use std::time::Duration;

use ruckus_core::model::ErrorCode;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::duration::Dur;

/// A Kafka API, for error injection; scenario files name it in kebab
/// case (`offset-commit`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Api {
    /// Produce.
    Produce,
    /// Fetch.
    Fetch,
    /// ListOffsets.
    ListOffsets,
    /// FindCoordinator.
    FindCoordinator,
    /// JoinGroup.
    JoinGroup,
    /// SyncGroup.
    SyncGroup,
    /// Heartbeat.
    Heartbeat,
    /// LeaveGroup.
    LeaveGroup,
    /// OffsetCommit.
    OffsetCommit,
    /// OffsetFetch.
    OffsetFetch,
}

/// The host name of member `i` (`consumer-<i>`), the same on every backend.
pub fn member_host(i: usize) -> String {
    format!("consumer-{i}")
}

/// A broker named in a fault: by id, the group coordinator, or the leader
/// of a source partition — the last two resolved when the fault fires.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BrokerRef {
    /// Broker `n`.
    Id(u32),
    /// Whichever broker coordinates the group.
    Coordinator,
    /// Whichever broker leads partition `p` of the source topic.
    LeaderOf(i32),
}

impl<'de> Deserialize<'de> for BrokerRef {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        parse_broker(&s).map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for BrokerRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BrokerRef::Id(n) => write!(f, "broker-{n}"),
            BrokerRef::Coordinator => write!(f, "coordinator"),
            BrokerRef::LeaderOf(p) => write!(f, "leader-of-{p}"),
        }
    }
}

/// Written as scenario files name it (`broker-1`, `coordinator`,
/// `leader-of-3`).
impl Serialize for BrokerRef {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

fn parse_broker(s: &str) -> Result<BrokerRef, String> {
    if s == "coordinator" {
        return Ok(BrokerRef::Coordinator);
    }
    if let Some(p) = s.strip_prefix("leader-of-") {
        if let Ok(p) = p.parse() {
            return Ok(BrokerRef::LeaderOf(p));
        }
    }
    if let Some(Ok(n)) = s.strip_prefix("broker-").map(str::parse) {
        return Ok(BrokerRef::Id(n));
    }
    Err(format!(
        "unknown broker `{s}`: expected `broker-<n>`, `coordinator` or `leader-of-<partition>`"
    ))
}

/// A host named in a link fault: `consumer-<n>`, `broker-<n>`, `producer`,
/// or `coordinator` (the coordinating broker when the fault fires).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HostRef {
    /// A consumer host.
    Consumer(usize),
    /// A broker.
    Broker(BrokerRef),
    /// The producer.
    Producer,
    /// The store a processor writes its effects to.
    Store,
}

impl fmt::Display for HostRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HostRef::Consumer(n) => write!(f, "consumer-{n}"),
            HostRef::Broker(b) => write!(f, "{b}"),
            HostRef::Producer => write!(f, "producer"),
            HostRef::Store => write!(f, "store"),
        }
    }
}

/// Written as scenario files name it.
impl Serialize for HostRef {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for HostRef {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        if s == "producer" {
            return Ok(HostRef::Producer);
        }
        if s == "store" {
            return Ok(HostRef::Store);
        }
        if let Some(Ok(n)) = s.strip_prefix("consumer-").map(str::parse) {
            return Ok(HostRef::Consumer(n));
        }
        parse_broker(&s).map(HostRef::Broker).map_err(|_| {
            serde::de::Error::custom(format!(
                "unknown host `{s}`: expected `consumer-<n>`, `broker-<n>`, `coordinator`, \
                 `leader-of-<partition>`, `producer` or `store`"
            ))
        })
    }
}

/// A Kafka error code, written by name (`REBALANCE_IN_PROGRESS`) or number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ErrorName(pub ErrorCode);

const ERROR_NAMES: &[(&str, i16)] = &[
    ("UNKNOWN_TOPIC_OR_PARTITION", 3),
    ("LEADER_NOT_AVAILABLE", 5),
    ("NOT_LEADER_OR_FOLLOWER", 6),
    ("REQUEST_TIMED_OUT", 7),
    ("NETWORK_EXCEPTION", 13),
    ("COORDINATOR_LOAD_IN_PROGRESS", 14),
    ("COORDINATOR_NOT_AVAILABLE", 15),
    ("NOT_COORDINATOR", 16),
    ("NOT_ENOUGH_REPLICAS", 19),
    ("NOT_ENOUGH_REPLICAS_AFTER_APPEND", 20),
    ("ILLEGAL_GENERATION", 22),
    ("UNKNOWN_MEMBER_ID", 25),
    ("REBALANCE_IN_PROGRESS", 27),
    ("KAFKA_STORAGE_ERROR", 56),
];

/// Written by name where it has one, by number otherwise.
impl Serialize for ErrorName {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let code = self.0.code();
        match ERROR_NAMES.iter().find(|(_, c)| *c == code) {
            Some((name, _)) => s.serialize_str(name),
            None => s.serialize_i16(code),
        }
    }
}

impl<'de> Deserialize<'de> for ErrorName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Code(i16),
            Name(String),
        }
        match Raw::deserialize(d)? {
            Raw::Code(c) => Ok(ErrorName(ErrorCode::from_code(c))),
            Raw::Name(n) => ERROR_NAMES
                .iter()
                .find(|(name, _)| *name == n)
                .map(|(_, c)| ErrorName(ErrorCode::from_code(*c)))
                .ok_or_else(|| {
                    let names: Vec<&str> = ERROR_NAMES.iter().map(|(n, _)| *n).collect();
                    serde::de::Error::custom(format!(
                        "unknown error `{n}`: expected a Kafka error code number or one of {}",
                        names.join(", ")
                    ))
                }),
        }
    }
}

/// A scheduled fault (`[[fault]]`), chosen by `kind`.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Fault {
    /// Kill a member (its memory is gone); restart it after a while, or
    /// never.
    CrashMember {
        /// When.
        at: Dur,
        /// Which member (`consumer-<member>`).
        member: usize,
        /// Restart after this long (never, if absent).
        restart_after: Option<Dur>,
    },
    /// Shut a member down gracefully; restart it after a while, or never.
    StopMember {
        /// When.
        at: Dur,
        /// Which member.
        member: usize,
        /// Restart after this long (never, if absent).
        restart_after: Option<Dur>,
    },
    /// Start a late member (scale up).
    StartMember {
        /// When.
        at: Dur,
        /// Which member (one of the `late_members`).
        member: usize,
    },
    /// Stop the world of a member: no heartbeats, no commits, no records
    /// finished, for `duration`.
    PauseMember {
        /// When.
        at: Dur,
        /// Which member.
        member: usize,
        /// How long.
        duration: Dur,
    },
    /// Crash a broker; restart it after a while, or never.
    CrashBroker {
        /// When.
        at: Dur,
        /// `broker-<n>`, `coordinator` or `leader-of-<partition>`.
        broker: BrokerRef,
        /// Restart after this long (never, if absent).
        restart_after: Option<Dur>,
    },
    /// Freeze a broker (as `docker pause` does): its connections stay
    /// open and nothing it is sent is answered until it thaws; then it
    /// answers everything held.
    PauseBroker {
        /// When.
        at: Dur,
        /// `broker-<n>`, `coordinator` or `leader-of-<partition>`.
        broker: BrokerRef,
        /// How long.
        duration: Dur,
    },
    /// Cut a broker off from every client (as `docker network disconnect`
    /// does): what is sent to or from it is dropped.
    DisconnectBroker {
        /// When.
        at: Dur,
        /// `broker-<n>`, `coordinator` or `leader-of-<partition>`.
        broker: BrokerRef,
        /// Reconnect after this long (never, if absent).
        duration: Option<Dur>,
    },
    /// Drop all traffic between two hosts (from `a` to `b` only, if
    /// one-way).
    Partition {
        /// When.
        at: Dur,
        /// One side.
        a: HostRef,
        /// The other side.
        b: HostRef,
        /// Heal after this long (never, if absent).
        duration: Option<Dur>,
        /// Only traffic from `a` to `b` is dropped.
        #[serde(default)]
        one_way: bool,
    },
    /// Hold all traffic between two hosts, delivering it on release.
    Hold {
        /// When.
        at: Dur,
        /// One side.
        a: HostRef,
        /// The other side.
        b: HostRef,
        /// How long.
        duration: Dur,
    },
    /// Change the latency of a link.
    Latency {
        /// When.
        at: Dur,
        /// One side.
        a: HostRef,
        /// The other side.
        b: HostRef,
        /// The new one-way latency.
        latency: Dur,
        /// Back to the seeded latency after this long (never, if absent).
        duration: Option<Dur>,
    },
    /// The next `count` requests of an API fail with `error`.
    Errors {
        /// When.
        at: Dur,
        /// Which API.
        api: Api,
        /// The error answered.
        error: ErrorName,
        /// How many requests.
        count: u32,
    },
    /// The next `count` dead-letter writes fail (NOT_ENOUGH_REPLICAS).
    DeadLetterOutage {
        /// When.
        at: Dur,
        /// How many writes.
        count: u32,
    },
    /// The next `count` produce requests to the source topic fail with
    /// `error` (the workload's producer retries them; dead-letter writes
    /// are not touched).
    ProduceErrors {
        /// When.
        at: Dur,
        /// The error answered.
        error: ErrorName,
        /// How many requests.
        count: u32,
    },
    /// Move a member's clock (its group-protocol timers): forward, timers
    /// come due at once; backwards, nothing comes due for that long.
    ClockJump {
        /// When.
        at: Dur,
        /// Which member.
        member: usize,
        /// How far.
        by: Dur,
        /// Backwards instead of forwards.
        #[serde(default)]
        backwards: bool,
    },
    /// Lose a fraction of the messages (each way) between a member and a
    /// broker: lost requests never arrive, lost responses were acted on.
    Loss {
        /// When.
        at: Dur,
        /// Which member.
        member: usize,
        /// `broker-<n>`, `coordinator` or `leader-of-<partition>`.
        broker: BrokerRef,
        /// The fraction lost, each way, in [0, 1].
        rate: f64,
        /// Heal after this long (never, if absent).
        duration: Option<Dur>,
    },
    /// The store a processor writes to is down for `duration`: every call
    /// fails (or, in flight, gets no answer); what it applied before is
    /// kept.
    StoreOutage {
        /// When.
        at: Dur,
        /// How long.
        duration: Dur,
    },
    /// Stop each member gracefully in turn and restart it after `gap`; the
    /// next member stops `gap` after the previous one restarted.
    RollingRestart {
        /// When the first member stops.
        at: Dur,
        /// Pause between steps.
        gap: Dur,
    },
}

impl Fault {
    /// When the fault starts.
    pub fn at(&self) -> Duration {
        match self {
            Fault::CrashMember { at, .. }
            | Fault::StopMember { at, .. }
            | Fault::StartMember { at, .. }
            | Fault::PauseMember { at, .. }
            | Fault::CrashBroker { at, .. }
            | Fault::PauseBroker { at, .. }
            | Fault::DisconnectBroker { at, .. }
            | Fault::Partition { at, .. }
            | Fault::Hold { at, .. }
            | Fault::Latency { at, .. }
            | Fault::Errors { at, .. }
            | Fault::DeadLetterOutage { at, .. }
            | Fault::ProduceErrors { at, .. }
            | Fault::ClockJump { at, .. }
            | Fault::Loss { at, .. }
            | Fault::StoreOutage { at, .. }
            | Fault::RollingRestart { at, .. } => at.0,
        }
    }

    /// The kind, as scenario files name it.
    pub fn kind(&self) -> &'static str {
        match self {
            Fault::CrashMember { .. } => "crash-member",
            Fault::StopMember { .. } => "stop-member",
            Fault::StartMember { .. } => "start-member",
            Fault::PauseMember { .. } => "pause-member",
            Fault::CrashBroker { .. } => "crash-broker",
            Fault::PauseBroker { .. } => "pause-broker",
            Fault::DisconnectBroker { .. } => "disconnect-broker",
            Fault::Partition { .. } => "partition",
            Fault::Hold { .. } => "hold",
            Fault::Latency { .. } => "latency",
            Fault::Errors { .. } => "errors",
            Fault::DeadLetterOutage { .. } => "dead-letter-outage",
            Fault::ProduceErrors { .. } => "produce-errors",
            Fault::ClockJump { .. } => "clock-jump",
            Fault::Loss { .. } => "loss",
            Fault::StoreOutage { .. } => "store-outage",
            Fault::RollingRestart { .. } => "rolling-restart",
        }
    }

    /// How long after it starts the fault heals (never, if `None`; faults
    /// that are over once applied, such as an error burst or a clock jump,
    /// have no heal).
    pub fn heal_after(&self) -> Option<Duration> {
        match self {
            Fault::CrashMember { restart_after, .. }
            | Fault::StopMember { restart_after, .. }
            | Fault::CrashBroker { restart_after, .. } => restart_after.map(|d| d.0),
            Fault::PauseMember { duration, .. }
            | Fault::PauseBroker { duration, .. }
            | Fault::StoreOutage { duration, .. }
            | Fault::Hold { duration, .. } => Some(duration.0),
            Fault::DisconnectBroker { duration, .. }
            | Fault::Partition { duration, .. }
            | Fault::Latency { duration, .. }
            | Fault::Loss { duration, .. } => duration.map(|d| d.0),
            Fault::StartMember { .. }
            | Fault::Errors { .. }
            | Fault::DeadLetterOutage { .. }
            | Fault::ProduceErrors { .. }
            | Fault::ClockJump { .. }
            | Fault::RollingRestart { .. } => None,
        }
    }

    /// When it is over: when it heals, or when it fires if it never heals
    /// or is over once applied.
    pub fn over_at(&self) -> Duration {
        self.at() + self.heal_after().unwrap_or_default()
    }

    /// The primitive faults this one stands for, in time order: a rolling
    /// restart of `members` members is a graceful stop of each in turn,
    /// restarted after `gap`, the next one stopping `gap` after that; every
    /// other fault is itself. Backends apply primitive faults only.
    pub fn expand(&self, members: usize) -> Vec<Fault> {
        match self {
            Fault::RollingRestart { at, gap } => (0..members)
                .map(|m| Fault::StopMember {
                    at: Dur(at.0 + gap.0 * 2 * m as u32),
                    member: m,
                    restart_after: Some(*gap),
                })
                .collect(),
            other => vec![other.clone()],
        }
    }
}

/// A fault's target, resolved when it fired.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Target {
    /// Member `i` (host `consumer-<i>`).
    Member(usize),
    /// Broker `n` (on the mock cluster, the scenario's `broker-<n>`).
    Broker(u32),
    /// The workload's producer.
    Producer,
    /// The one broker of a container or an external cluster.
    Cluster,
    /// The store a processor writes to.
    Store,
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Member(i) => write!(f, "consumer-{i}"),
            Target::Broker(n) => write!(f, "broker-{n}"),
            Target::Producer => f.write_str("producer"),
            Target::Cluster => f.write_str("cluster"),
            Target::Store => f.write_str("store"),
        }
    }
}

/// A fault as the history records it: the fault and the targets it
/// resolved to when it fired (a `coordinator` crash names the broker that
/// coordinated then), plus how the backend applied it, when that differs
/// from the fault's own words (the mock cluster's approximations).
#[derive(Clone, Debug, PartialEq)]
pub struct FaultRecord {
    /// The fault.
    pub fault: Fault,
    /// Its resolved targets.
    pub targets: Vec<Target>,
    /// How the backend applied it, if not literally (empty otherwise).
    pub how: String,
}

impl FaultRecord {
    /// A record of `fault` on `targets`.
    pub fn new(fault: Fault, targets: Vec<Target>) -> Self {
        Self {
            fault,
            targets,
            how: String::new(),
        }
    }

    /// The same, saying how it was applied.
    pub fn how(mut self, how: impl Into<String>) -> Self {
        self.how = how.into();
        self
    }

    /// The member whose software this record ends, if any: a crash kills
    /// it, and a crash's or a graceful stop's heal (a restart) kills a
    /// running instance before starting a new one.
    pub fn ends_member(&self, healed: bool) -> Option<usize> {
        match (&self.fault, healed) {
            (Fault::CrashMember { member, .. }, _) | (Fault::StopMember { member, .. }, true) => {
                Some(*member)
            }
            _ => None,
        }
    }
}

impl fmt::Display for FaultRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.fault.kind())?;
        for t in &self.targets {
            write!(f, " {t}")?;
        }
        match &self.fault {
            Fault::Partition { one_way: true, .. } => f.write_str(" (one way)")?,
            Fault::Latency { latency, .. } => write!(f, " {latency}")?,
            Fault::Errors {
                api, error, count, ..
            } => write!(f, " {api:?} {:?} x{count}", error.0)?,
            Fault::DeadLetterOutage { count, .. } => write!(f, " x{count}")?,
            Fault::ProduceErrors { error, count, .. } => write!(f, " {:?} x{count}", error.0)?,
            Fault::ClockJump { by, backwards, .. } => {
                write!(f, " {}{by}", if *backwards { "-" } else { "+" })?
            }
            Fault::Loss { rate, .. } => write!(f, " {:.1}%", rate * 100.0)?,
            _ => {}
        }
        if !self.how.is_empty() {
            write!(f, " ({})", self.how)?;
        }
        Ok(())
    }
}

/// Why a fault cannot be applied on a backend.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("`{kind}` at {at:?}: {why}")]
#[non_exhaustive]
pub struct Unsupported {
    /// The fault's kind.
    pub kind: &'static str,
    /// When it was to start.
    pub at: Duration,
    /// Why, in words.
    pub why: String,
}

impl Unsupported {
    /// `fault` has no equivalent here, because `why`.
    pub fn new(fault: &Fault, why: impl Into<String>) -> Self {
        Self {
            kind: fault.kind(),
            at: fault.at(),
            why: why.into(),
        }
    }
}
