//! The scenario model: what a file in `scenarios/` says, read from TOML.
//!
//! A scenario names a cluster, a workload, the consumer group and its
//! configuration, how processing behaves, scheduled faults, an optional
//! randomized nemesis, the phases of a run, how many seeds to run, and the
//! expected outcome: the invariants that must hold, or — for a scenario
//! that demonstrates a known-bad consumer — the violation it must find.
//!
//! Every table rejects unknown fields. [`Scenario::parse`] never panics: a
//! malformed file gives a [`ScenarioError`] with file, line, column and what
//! was expected.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use ruckus_core::assign;
use ruckus_core::consumer::{
    CommitStrategy, ConsumerConfig, DeadLetterConfig, DlqLimit, KnownBad, Ordering, RetryPolicy,
};
use ruckus_core::membership::MembershipConfig;
use ruckus_core::model::{InstanceId, Topic};
pub use ruckus_history::fault::{BrokerRef, ErrorName, Fault, HostRef};
use ruckus_sim::processing::Behaviour;
use serde::{Deserialize, Serialize};
use toml::Spanned;

use crate::check::Invariant;
use crate::duration::Dur;

/// The source topic every scenario produces to and consumes from.
pub const TOPIC: &str = "orders";
/// The dead-letter topic.
pub const DLQ_TOPIC: &str = "orders.dlq";
/// The consumer group.
pub const GROUP: &str = "ruckus";

/// A scenario file, parsed and validated.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// The file's stem (`broker_crash` for `scenarios/broker_crash.toml`).
    #[serde(skip)]
    pub name: String,
    /// Where it was read from.
    #[serde(skip)]
    pub path: PathBuf,
    /// What the scenario shows, in a sentence or two.
    pub description: String,
    /// Where it can run: `sim` (always), `mock`, `container` and
    /// `external` (real brokers, ruckus-integration).
    #[serde(default = "default_backends")]
    pub backends: Vec<Backend>,
    /// The cluster.
    #[serde(default)]
    pub cluster: ClusterSpec,
    /// What is produced.
    #[serde(default)]
    pub workload: WorkloadSpec,
    /// The consumer group and its configuration.
    #[serde(default)]
    pub group: GroupSpec,
    /// How processing behaves.
    #[serde(default)]
    pub processing: ProcessingSpec,
    /// Faults at fixed times (`[[fault]]` tables).
    #[serde(default, rename = "fault", serialize_with = "faults_as_tables")]
    pub faults: Vec<Spanned<Fault>>,
    /// Randomized faults drawn from the seed.
    #[serde(default)]
    pub nemesis: Option<NemesisSpec>,
    /// Faults on, then a quiet phase in which the group must converge.
    #[serde(default)]
    pub phases: Phases,
    /// How many seeds to run.
    #[serde(default)]
    pub seeds: SeedSpec,
    /// What must (or, for a known-bad consumer, must not) hold.
    #[serde(default)]
    pub expect: Expect,
}

fn faults_as_tables<S: serde::Serializer>(
    faults: &[Spanned<Fault>],
    s: S,
) -> Result<S::Ok, S::Error> {
    s.collect_seq(faults.iter().map(Spanned::get_ref))
}

fn default_backends() -> Vec<Backend> {
    vec![Backend::Sim]
}

/// Where a scenario runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Backend {
    /// The turmoil simulation.
    Sim,
    /// librdkafka's mock cluster.
    Mock,
    /// A broker in a container.
    Container,
    /// A cluster someone else runs (`RUCKUS_KAFKA_BOOTSTRAP`): only the
    /// members' own faults, none of the brokers'.
    External,
}

/// The simulated cluster.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterSpec {
    /// Broker hosts.
    pub brokers: u32,
    /// Partitions of the source topic.
    pub partitions: u32,
    /// Partitions of the dead-letter topic.
    pub dead_letter_partitions: u32,
}

impl Default for ClusterSpec {
    fn default() -> Self {
        Self {
            brokers: 3,
            partitions: 12,
            dead_letter_partitions: 3,
        }
    }
}

/// What the producer writes.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct WorkloadSpec {
    /// Messages in total.
    pub messages: usize,
    /// Records per produce request.
    pub batch: usize,
    /// Pause between produce requests, to spread the load over the run.
    pub interval: Dur,
}

impl Default for WorkloadSpec {
    fn default() -> Self {
        Self {
            messages: 2_000,
            batch: 20,
            interval: Dur::ms(20),
        }
    }
}

/// When the consumer commits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CommitSpec {
    /// After every record.
    PerRecord,
    /// Every `commit_records` records or `commit_interval`.
    Periodic,
    /// Only on revocation and shutdown.
    OnRevoke,
    /// KNOWN-BAD: commit the fetched position every `commit_interval`.
    KnownBadAutoCommit,
}

/// A known-bad consumer variant (see `ruckus_core::consumer::KnownBad`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum KnownBadSpec {
    /// Commit past a record whose dead-letter write failed.
    SkipFailedDeadLetter,
    /// Log a fatal error and skip the record.
    SkipFatal,
    /// Re-send failed async commits with their old offsets.
    RetryStaleCommits,
}

/// Processing order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum OrderingSpec {
    /// One record at a time per partition.
    Partition,
    /// In order per key, keys in parallel.
    Key,
}

/// Retries of failed processing.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetrySpec {
    /// Attempts in total, the first included.
    pub max_attempts: u32,
    /// Delay after the first failure.
    pub initial_backoff: Dur,
    /// Cap of the delay.
    pub max_backoff: Dur,
    /// Growth per attempt.
    pub multiplier: f64,
    /// Random reduction, a fraction of the delay.
    pub jitter: f64,
}

impl Default for RetrySpec {
    fn default() -> Self {
        Self {
            max_attempts: 3,
            initial_backoff: Dur::ms(20),
            max_backoff: Dur::secs(1),
            multiplier: 2.0,
            jitter: 0.2,
        }
    }
}

impl RetrySpec {
    /// As the engine's policy.
    pub fn policy(&self) -> RetryPolicy {
        RetryPolicy {
            max_attempts: self.max_attempts,
            initial_backoff: self.initial_backoff.0,
            max_backoff: self.max_backoff.0,
            multiplier: self.multiplier,
            jitter: self.jitter,
        }
    }
}

/// The consumer group.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct GroupSpec {
    /// Members running from the start (`consumer-0` …).
    pub members: usize,
    /// Further members that start only when a `start-member` fault says
    /// so (`consumer-<members>` …), for scale-up.
    pub late_members: usize,
    /// `range`, `roundrobin`, `sticky` or `cooperative-sticky` (the last
    /// rebalances cooperatively, the others eagerly).
    pub assignor: String,
    /// Static membership (KIP-345): each member has a `group.instance.id`.
    pub static_membership: bool,
    /// Session timeout.
    pub session_timeout: Dur,
    /// Heartbeat interval.
    pub heartbeat_interval: Dur,
    /// Rebalance timeout (`max.poll.interval.ms`).
    pub rebalance_timeout: Dur,
    /// When to commit.
    pub commit: CommitSpec,
    /// Records between periodic commits.
    pub commit_records: u32,
    /// Time between periodic commits.
    pub commit_interval: Dur,
    /// Processing order.
    pub ordering: OrderingSpec,
    /// Records in processing at once, in total.
    pub max_in_flight: usize,
    /// Records per partition per fetch.
    pub max_records: u32,
    /// Retries of failed processing.
    pub retry: RetrySpec,
    /// Dead-letter records that cannot be processed (otherwise the consumer
    /// stops on them).
    pub dead_letter: bool,
    /// How long a revoked partition's in-flight records may take.
    pub revoke_timeout: Dur,
    /// Client request timeout.
    pub request_timeout: Dur,
    /// A known-bad consumer variant instead of the reference consumer.
    pub known_bad: Option<KnownBadSpec>,
    /// The group protocol: `classic` (JoinGroup/SyncGroup, the default) or
    /// `consumer` (KIP-848, the broker assigns; real brokers only).
    pub protocol: ProtocolSpec,
}

/// The group protocol.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProtocolSpec {
    /// The classic protocol (JoinGroup/SyncGroup, client-side assignors).
    #[default]
    Classic,
    /// KIP-848 (`group.protocol=consumer`): the broker assigns.
    Consumer,
}

impl Default for GroupSpec {
    fn default() -> Self {
        Self {
            members: 3,
            late_members: 0,
            assignor: "cooperative-sticky".into(),
            static_membership: false,
            session_timeout: Dur::secs(3),
            heartbeat_interval: Dur::ms(300),
            rebalance_timeout: Dur::secs(10),
            commit: CommitSpec::Periodic,
            commit_records: 200,
            commit_interval: Dur::ms(500),
            ordering: OrderingSpec::Partition,
            max_in_flight: 256,
            max_records: 200,
            retry: RetrySpec::default(),
            dead_letter: true,
            revoke_timeout: Dur::secs(10),
            request_timeout: Dur::secs(2),
            known_bad: None,
            protocol: ProtocolSpec::Classic,
        }
    }
}

impl GroupSpec {
    /// Members in all, late ones included.
    pub fn all_members(&self) -> usize {
        self.members + self.late_members
    }

    /// The engine configuration.
    pub fn consumer_config(&self) -> ConsumerConfig {
        let mut c = ConsumerConfig::new(GROUP, vec![Topic::new(TOPIC)]);
        c.commit = match self.commit {
            CommitSpec::PerRecord => CommitStrategy::PerRecord,
            CommitSpec::Periodic => CommitStrategy::Periodic {
                records: self.commit_records,
                interval: self.commit_interval.0,
            },
            CommitSpec::OnRevoke => CommitStrategy::OnRevokeAndShutdown,
            CommitSpec::KnownBadAutoCommit => CommitStrategy::KnownBadAutoCommitFetched {
                interval: self.commit_interval.0,
            },
        };
        c.ordering = match self.ordering {
            OrderingSpec::Partition => Ordering::Partition,
            OrderingSpec::Key => Ordering::Key,
        };
        c.max_in_flight = self.max_in_flight;
        c.retry = self.retry.policy();
        c.revoke_timeout = self.revoke_timeout.0;
        c.dead_letter = self.dead_letter.then(|| DeadLetterConfig {
            topic: Topic::new(DLQ_TOPIC),
            limit: DlqLimit::default(),
            write_backoff: RetryPolicy {
                initial_backoff: Duration::from_millis(50),
                max_backoff: Duration::from_secs(2),
                ..RetryPolicy::default()
            },
        });
        c.known_bad = self.known_bad.map(|k| match k {
            KnownBadSpec::SkipFailedDeadLetter => KnownBad::SkipFailedDeadLetter,
            KnownBadSpec::SkipFatal => KnownBad::SkipFatal,
            KnownBadSpec::RetryStaleCommits => KnownBad::RetryStaleCommits,
        });
        c
    }

    /// The membership configuration of member `host`.
    pub fn membership_config(&self, host: &str) -> MembershipConfig {
        let assignor = assign::by_name(&self.assignor).map_or_else(
            || Arc::new(assign::CooperativeSticky) as Arc<dyn assign::Assignor>,
            Arc::from,
        );
        let mut m = MembershipConfig::new(GROUP, host, vec![Topic::new(TOPIC)], vec![assignor]);
        m.session_timeout = self.session_timeout.0;
        m.rebalance_timeout = self.rebalance_timeout.0;
        m.heartbeat_interval = self.heartbeat_interval.0;
        if self.static_membership {
            m.instance_id = Some(InstanceId::new(format!("{host}-instance")));
        }
        m
    }
}

/// How processing behaves.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProcessingSpec {
    /// Time to process one record.
    pub latency: Dur,
    /// Extra time per attempt, drawn uniformly from `[0, latency_jitter]`.
    pub latency_jitter: Dur,
    /// Probability that an attempt fails transiently.
    pub transient_rate: f64,
    /// Fraction of records that are poison.
    pub poison_rate: f64,
    /// Probability that an attempt panics.
    pub panic_rate: f64,
    /// Probability that an attempt fails fatally.
    pub fatal_rate: f64,
    /// Records with these keys are poison (the producer writes keys
    /// `key-0` … `key-96`).
    pub poison_keys: Vec<String>,
}

impl Default for ProcessingSpec {
    fn default() -> Self {
        Self {
            latency: Dur::ms(1),
            latency_jitter: Dur::ms(0),
            transient_rate: 0.0,
            poison_rate: 0.0,
            panic_rate: 0.0,
            fatal_rate: 0.0,
            poison_keys: Vec::new(),
        }
    }
}

impl ProcessingSpec {
    /// As the simulation's behaviour.
    pub fn behaviour(&self) -> Behaviour {
        Behaviour {
            latency: self.latency.0,
            transient_rate: self.transient_rate,
            poison_rate: self.poison_rate,
            panic_rate: self.panic_rate,
            fatal_rate: self.fatal_rate,
            latency_jitter: self.latency_jitter.0,
            poison_keys: self.poison_keys.clone(),
        }
    }
}

/// Fault kinds the nemesis draws from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
#[allow(missing_docs)]
pub enum NemesisKind {
    CrashMember,
    StopMember,
    PauseMember,
    CrashBroker,
    Partition,
    OneWayPartition,
    Hold,
    Latency,
    CommitErrors,
    HeartbeatErrors,
    FetchErrors,
    DeadLetterOutage,
    ClockJump,
    Loss,
}

/// A randomized nemesis: faults at random times during the fault phase,
/// every choice drawn from the seed.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct NemesisSpec {
    /// The kinds it may use.
    pub kinds: Vec<NemesisKind>,
    /// Mean time between faults (exponentially distributed).
    pub mean_interval: Dur,
    /// The longest a fault lasts before it heals.
    #[serde(default = "default_max_duration")]
    pub max_duration: Dur,
    /// Severity in (0, 1]: scales how long faults last and how many
    /// requests an error burst fails.
    #[serde(default = "default_intensity")]
    pub intensity: f64,
    /// Swarm testing: each seed also draws which of `kinds` it enables.
    #[serde(default = "default_true")]
    pub swarm: bool,
}

fn default_max_duration() -> Dur {
    Dur::secs(6)
}
fn default_intensity() -> f64 {
    0.5
}
fn default_true() -> bool {
    true
}

/// The phases of a run.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Phases {
    /// End of the fault phase: the nemesis draws faults before it.
    pub faults: Dur,
    /// The liveness bound: after the last fault healed (and the fault
    /// phase ended) the group must have consumed and committed everything
    /// within this long.
    pub quiet: Dur,
}

impl Default for Phases {
    fn default() -> Self {
        Self {
            faults: Dur::secs(20),
            quiet: Dur::secs(60),
        }
    }
}

/// Seeds to run.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct SeedSpec {
    /// The first seed.
    pub first: u64,
    /// Seeds `cargo test` runs (`RUCKUS_SEEDS` overrides).
    pub ci: u64,
    /// Seeds `ruckus sweep` runs by default.
    pub sweep: u64,
}

impl Default for SeedSpec {
    fn default() -> Self {
        Self {
            first: 1,
            ci: 4,
            sweep: 50,
        }
    }
}

/// The expected outcome.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Expect {
    /// Invariants checked (all, if empty).
    pub hold: Vec<Invariant>,
    /// For a known-bad consumer: the violation it must produce. The
    /// scenario passes when at least one of its seeds finds it (every seed,
    /// with `in_every_seed`) — and fails if no seed does.
    pub violation: Option<Invariant>,
    /// The violation must show in every seed.
    pub in_every_seed: bool,
    /// From this time until the final stop the group must not rebalance
    /// (a static member back within its session, a rolling broker
    /// restart): checked by `no-unexpected-rebalance`.
    pub no_rebalance_after: Option<Dur>,
    /// Also judge the processor's side effects ([`Invariant::EFFECTS`]:
    /// `effect-loss`, `effect-duplicates`, `effect-before-commit`), for a
    /// processor that writes each record's effect to the store.
    pub effects: bool,
    /// The states the scenario exists to reach ([`crate::coverage::State`]:
    /// `fault-on-owner`, `commit-in-flight-during-revoke`, …): the sweep
    /// reports in how many seeds each was reached and flags one no seed
    /// reached.
    pub reach: Vec<crate::coverage::State>,
}

impl Expect {
    /// The invariants to check.
    pub fn invariants(&self) -> Vec<Invariant> {
        let mut v = if self.hold.is_empty() {
            Invariant::ALL.to_vec()
        } else {
            self.hold.clone()
        };
        if self.effects {
            v.extend(Invariant::EFFECTS.iter().filter(|i| !self.hold.contains(i)));
        }
        if let Some(x) = self.violation {
            if !v.contains(&x) {
                v.push(x);
            }
        }
        v
    }
}

/// A malformed scenario file: where and what was expected.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}:{column}: {message}")]
pub struct ScenarioError {
    /// The file.
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// What is wrong, and what was expected.
    pub message: String,
}

/// 1-based line and column of byte `offset` in `text`.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let column = before.rfind('\n').map_or(before.chars().count(), |nl| {
        before[nl + 1..].chars().count()
    }) + 1;
    (line, column)
}

impl Scenario {
    /// Reads and validates a scenario file.
    ///
    /// # Errors
    /// The file cannot be read, or is malformed (with line and column).
    pub fn load(path: &Path) -> Result<Self, ScenarioError> {
        let text = std::fs::read_to_string(path).map_err(|e| ScenarioError {
            file: path.display().to_string(),
            line: 1,
            column: 1,
            message: format!("cannot read the file: {e}"),
        })?;
        let mut s = Self::parse(&path.display().to_string(), &text)?;
        s.path = path.to_owned();
        s.name = path
            .file_stem()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        Ok(s)
    }

    /// Parses and validates scenario text; `file` names it in errors.
    ///
    /// # Errors
    /// What is wrong, with line and column.
    pub fn parse(file: &str, text: &str) -> Result<Self, ScenarioError> {
        let at = |offset: usize, message: String| {
            let (line, column) = line_col(text, offset);
            ScenarioError {
                file: file.to_owned(),
                line,
                column,
                message,
            }
        };
        let s: Scenario = toml::from_str(text).map_err(|e| {
            let offset = e.span().map_or(0, |r| r.start);
            let mut message = e.message().trim().to_owned();
            if message.is_empty() {
                // The TOML parser gives some syntax errors (a control
                // character in a comment, say) no words of their own.
                let found = text
                    .get(offset..)
                    .and_then(|t| t.chars().next())
                    .map_or_else(|| "the end of the file".to_owned(), |c| format!("{c:?}"));
                message = format!("unexpected {found}: expected valid TOML");
            }
            at(offset, message)
        })?;
        s.validate()
            .map_err(|(key, message)| at(locate(text, key), message))?;
        Ok(s)
    }

    /// The scenario as a file: every table written out in full (defaults
    /// included), faults as `[[fault]]` tables in time order. What
    /// [`Scenario::parse`] reads back is the same scenario; the shrinker
    /// writes its reductions this way.
    ///
    /// # Errors
    /// A value TOML cannot hold (a non-finite rate).
    pub fn to_toml(&self) -> Result<String, toml::ser::Error> {
        toml::to_string(self)
    }

    /// Whether the simulation runs this scenario (its `backends` name
    /// `sim`); one that runs on real brokers only is skipped there, and
    /// says so.
    pub fn runs_in_simulation(&self) -> bool {
        self.backends.contains(&Backend::Sim)
    }

    /// Semantic checks; the error names the key (for its location) and the
    /// problem.
    fn validate(&self) -> Result<(), (Located, String)> {
        let g = &self.group;
        let c = &self.cluster;
        let key = |k: &'static str| Located::Key(k);
        if c.brokers == 0 {
            return Err((
                key("brokers"),
                "`cluster.brokers` must be at least 1".into(),
            ));
        }
        if c.partitions == 0 || c.dead_letter_partitions == 0 {
            return Err((
                key("partitions"),
                "partition counts must be at least 1".into(),
            ));
        }
        if g.members == 0 {
            return Err((key("members"), "`group.members` must be at least 1".into()));
        }
        if g.protocol == ProtocolSpec::Consumer && self.backends.contains(&Backend::Sim) {
            return Err((
                key("protocol"),
                "`group.protocol = \"consumer\"` (KIP-848) runs on real brokers only: the \
                 simulation's coordinator speaks the classic protocol; drop \"sim\" from \
                 `backends`"
                    .into(),
            ));
        }
        if assign::by_name(&g.assignor).is_none() {
            return Err((
                key("assignor"),
                format!(
                    "unknown assignor `{}`: expected range, roundrobin, sticky or cooperative-sticky",
                    g.assignor
                ),
            ));
        }
        if g.heartbeat_interval.0.is_zero() || g.heartbeat_interval >= g.session_timeout {
            return Err((
                key("heartbeat_interval"),
                "`group.heartbeat_interval` must be above zero and below the session timeout"
                    .into(),
            ));
        }
        if g.session_timeout.0 < Duration::from_secs(1) {
            return Err((
                key("session_timeout"),
                "`group.session_timeout` must be at least 1s (the brokers' minimum)".into(),
            ));
        }
        if self.workload.messages == 0 || self.workload.batch == 0 {
            return Err((
                key("messages"),
                "`workload.messages` and `workload.batch` must be at least 1".into(),
            ));
        }
        if let Err(e) = g.consumer_config().validate() {
            return Err((Located::Key("group"), e.to_string()));
        }
        let p = &self.processing;
        for (name, rate) in [
            ("transient_rate", p.transient_rate),
            ("poison_rate", p.poison_rate),
            ("panic_rate", p.panic_rate),
            ("fatal_rate", p.fatal_rate),
        ] {
            if !(0.0..=1.0).contains(&rate) {
                return Err((
                    Located::Key(name),
                    format!("`processing.{name}` must be in [0, 1]"),
                ));
            }
        }
        if p.transient_rate + p.panic_rate + p.fatal_rate > 1.0 {
            return Err((
                key("transient_rate"),
                "`processing` failure rates add up to more than 1".into(),
            ));
        }
        if self.phases.quiet.0.is_zero() {
            return Err((key("quiet"), "`phases.quiet` must be above zero".into()));
        }
        if self.seeds.ci == 0 {
            return Err((key("ci"), "`seeds.ci` must be at least 1".into()));
        }
        if let Some(n) = &self.nemesis {
            if n.kinds.is_empty() {
                return Err((
                    key("kinds"),
                    "`nemesis.kinds` must name at least one kind".into(),
                ));
            }
            if n.mean_interval.0 < Duration::from_millis(100) {
                return Err((
                    key("mean_interval"),
                    "`nemesis.mean_interval` must be at least 100ms".into(),
                ));
            }
            if !(n.intensity > 0.0 && n.intensity <= 1.0) {
                return Err((
                    key("intensity"),
                    "`nemesis.intensity` must be in (0, 1]".into(),
                ));
            }
        }
        let members = g.all_members();
        let member_ok = |m: usize| m < members;
        let host_ok = |h: &HostRef| match h {
            HostRef::Consumer(m) => member_ok(*m),
            HostRef::Broker(BrokerRef::Id(b)) => *b < c.brokers,
            HostRef::Broker(BrokerRef::LeaderOf(p)) => *p >= 0 && (*p as u32) < c.partitions,
            _ => true,
        };
        for f in &self.faults {
            let span = Located::Span(f.span().start);
            let bad = |what: String| Err((span.clone(), what));
            match f.get_ref() {
                Fault::CrashMember { member, .. }
                | Fault::StopMember { member, .. }
                | Fault::PauseMember { member, .. }
                | Fault::ClockJump { member, .. }
                | Fault::Loss { member, .. }
                    if !member_ok(*member) =>
                {
                    return bad(format!(
                        "member {member} does not exist: the group has members 0..{members}"
                    ))
                }
                Fault::StartMember { member, .. } if *member < g.members || *member >= members => {
                    return bad(format!(
                        "member {member} is not a late member: late members are {}..{members}",
                        g.members
                    ))
                }
                Fault::CrashBroker { broker, .. }
                | Fault::PauseBroker { broker, .. }
                | Fault::DisconnectBroker { broker, .. }
                    if !host_ok(&HostRef::Broker(broker.clone())) =>
                {
                    return bad(format!("broker {broker:?} does not exist"))
                }
                Fault::Partition { a, b, .. }
                | Fault::Hold { a, b, .. }
                | Fault::Latency { a, b, .. }
                    if !host_ok(a) || !host_ok(b) || a == b =>
                {
                    return bad("a link needs two different hosts that exist".into())
                }
                Fault::Loss { rate, .. } if !(0.0..=1.0).contains(rate) => {
                    return bad("a loss `rate` must be in [0, 1]".into())
                }
                Fault::Loss { broker, .. } if !host_ok(&HostRef::Broker(broker.clone())) => {
                    return bad(format!("broker {broker:?} does not exist"))
                }
                Fault::DeadLetterOutage { .. } if !g.dead_letter => {
                    return bad("a dead-letter outage needs `group.dead_letter = true`".into())
                }
                _ => {}
            }
        }
        if let Some(v) = self.expect.violation {
            if !self.expect.hold.is_empty() && !self.expect.hold.contains(&v) {
                return Err((
                    key("violation"),
                    "`expect.violation` must be among the invariants checked".into(),
                ));
            }
        }
        Ok(())
    }
}

/// Where a semantic error points.
#[derive(Clone, Debug)]
enum Located {
    /// The first line that sets this key.
    Key(&'static str),
    /// A byte offset.
    Span(usize),
}

fn locate(text: &str, what: Located) -> usize {
    match what {
        Located::Span(o) => o,
        Located::Key(k) => {
            let mut offset = 0;
            for line in text.split_inclusive('\n') {
                let t = line.trim_start();
                let header = format!("[{k}]");
                if t.starts_with(&header)
                    || t.strip_prefix(k)
                        .is_some_and(|r| r.trim_start().starts_with('='))
                {
                    return offset + (line.len() - t.len());
                }
                offset += line.len();
            }
            0
        }
    }
}

impl fmt::Display for Scenario {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.name)
    }
}
