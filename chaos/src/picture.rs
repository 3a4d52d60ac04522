//! A picture of a run: one self-contained HTML page per run (inline SVG
//! drawn by an inline script from the run's model; nothing is fetched from
//! the network), and a summary page for a sweep.
//!
//! The [`Picture`] is the model behind the drawing, built from the typed
//! history: a lane per member with the partitions it owned over time
//! (generation marks, stops), the fault intervals with their targets, the
//! acknowledged commits per partition, the lag per partition over time,
//! and the violations with their history slice and their account in words
//! ([`crate::explain`]). [`html`] writes the page: zoom with the wheel or
//! the buttons, drag to pan, hover any mark for the exact event.

use std::collections::BTreeMap;

use ruckus_core::events::Event;
use ruckus_core::model::TopicPartition;
use ruckus_history::check::Violation;
use ruckus_history::record::{BrokerEvent, Entry, Record};
use serde::Serialize;

use crate::explain;
use crate::runner::ScenarioReport;

/// Most lag points kept per partition (the last value of each time
/// bucket): enough for the eye, small enough for a page.
const LAG_POINTS: usize = 600;

/// The model of a run's picture.
#[derive(Clone, Debug, Serialize)]
pub struct Picture {
    /// The scenario.
    pub scenario: String,
    /// What it is about.
    pub description: String,
    /// The seed.
    pub seed: u64,
    /// The run's length, in milliseconds.
    pub end_ms: u64,
    /// The source topic's partitions, in order (indexes below refer here).
    pub partitions: Vec<String>,
    /// One lane per member.
    pub lanes: Vec<Lane>,
    /// The faults, as applied.
    pub faults: Vec<FaultBar>,
    /// Acknowledged commits.
    pub commits: Vec<CommitMark>,
    /// Lag per partition over time.
    pub lag: Vec<LagSeries>,
    /// What the checkers found.
    pub violations: Vec<ViolationMark>,
    /// The one-line command that replays the run.
    pub repro: String,
}

/// A member's lane.
#[derive(Clone, Debug, Serialize)]
pub struct Lane {
    /// Its host (`consumer-<i>`).
    pub host: String,
    /// What it owned, when.
    pub owned: Vec<Ownership>,
    /// When it joined which generation.
    pub generations: Vec<(u64, i32)>,
    /// When it stopped, crashed or was restarted, and how.
    pub marks: Vec<(u64, String)>,
}

/// A partition owned over an interval.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Ownership {
    /// Index into [`Picture::partitions`].
    pub partition: usize,
    /// From (ms).
    pub from: u64,
    /// Until (ms): revoked, lost, stopped, crashed, or the run's end.
    pub until: u64,
    /// The generation it was assigned in.
    pub generation: i32,
    /// The offset consumption started from.
    pub start: i64,
    /// How it ended (`revoked`, `lost`, `stopped`, `crashed`, `end`).
    pub ended: String,
}

/// A fault's interval.
#[derive(Clone, Debug, Serialize)]
pub struct FaultBar {
    /// Applied at (ms).
    pub from: u64,
    /// Healed at (ms); equal to `from` for an instant fault, the run's end
    /// for one never healed.
    pub until: u64,
    /// The fault kind.
    pub kind: String,
    /// The fault, its targets resolved, in words.
    pub label: String,
    /// Lanes (member hosts) it is on, to shade.
    pub members: Vec<String>,
}

/// An acknowledged commit.
#[derive(Clone, Debug, Serialize)]
pub struct CommitMark {
    /// When (ms).
    pub at: u64,
    /// Index into [`Picture::partitions`].
    pub partition: usize,
    /// The committed offset.
    pub offset: i64,
    /// Who committed.
    pub host: String,
    /// In which generation.
    pub generation: i32,
}

/// Lag of one partition: produced (acknowledged) minus committed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LagSeries {
    /// Index into [`Picture::partitions`].
    pub partition: usize,
    /// `(ms, lag)`, a step function.
    pub points: Vec<(u64, i64)>,
}

/// A violation, where it happened.
#[derive(Clone, Debug, Serialize)]
pub struct ViolationMark {
    /// When (ms).
    pub at: u64,
    /// The invariant.
    pub invariant: String,
    /// Index into [`Picture::partitions`], if it names one.
    pub partition: Option<usize>,
    /// The offset, if it names one.
    pub offset: Option<i64>,
    /// The host, if one broke it.
    pub host: Option<String>,
    /// The checker's words.
    pub detail: String,
    /// The entries that show it.
    pub slice: Vec<String>,
    /// How it happened ([`explain::explain`]).
    pub explanation: Vec<String>,
}

impl Picture {
    /// The picture of a run of `scenario` with `seed`: its history and
    /// what the checkers found.
    pub fn new(
        scenario: &str,
        description: &str,
        seed: u64,
        history: &[Entry],
        violations: &[Violation],
        repro: String,
    ) -> Self {
        let end_ms = history
            .iter()
            .map(|e| e.at.as_millis())
            .max()
            .unwrap_or(0)
            .max(violations.iter().map(|v| v.at_ms).max().unwrap_or(0))
            .max(1);
        let partitions = partitions(history);
        let index: BTreeMap<String, usize> = partitions
            .iter()
            .enumerate()
            .map(|(i, p)| (p.to_string(), i))
            .collect();
        let idx = |tp: &TopicPartition| index.get(&tp.to_string()).copied();
        Self {
            scenario: scenario.to_owned(),
            description: description.trim().to_owned(),
            seed,
            end_ms,
            lanes: lanes(history, &idx, end_ms),
            faults: faults(history, end_ms),
            commits: commits(history, &idx),
            lag: lag(history, &idx, partitions.len(), end_ms),
            violations: violations
                .iter()
                .map(|v| ViolationMark {
                    at: v.at_ms,
                    invariant: v.invariant.to_string(),
                    partition: v.partition.as_ref().and_then(|p| index.get(p).copied()),
                    offset: v.offset,
                    host: v.host.clone(),
                    detail: v.detail.clone(),
                    slice: v.slice.clone(),
                    explanation: explain::explain(history, v),
                })
                .collect(),
            partitions: partitions.iter().map(ToString::to_string).collect(),
            repro,
        }
    }
}

/// The source topic's partitions the history mentions, by number (the
/// dead-letter topic's are left out: they are written, not consumed).
fn partitions(history: &[Entry]) -> Vec<TopicPartition> {
    let mut seen: BTreeMap<(String, i32), TopicPartition> = BTreeMap::new();
    let mut add = |tp: &TopicPartition| {
        seen.entry((tp.topic.to_string(), tp.partition.0))
            .or_insert_with(|| tp.clone());
    };
    for e in history {
        match &e.record {
            Record::Client(
                Event::Produced { tp, .. }
                | Event::Fetched { tp, .. }
                | Event::Committed { tp, .. },
            ) => add(tp),
            Record::Client(Event::Assigned { partitions, .. }) => {
                partitions.iter().for_each(|(tp, _)| add(tp));
            }
            _ => {}
        }
    }
    seen.into_values().collect()
}

fn lanes(
    history: &[Entry],
    idx: &impl Fn(&TopicPartition) -> Option<usize>,
    end: u64,
) -> Vec<Lane> {
    let mut lanes: BTreeMap<(usize, String), Lane> = BTreeMap::new();
    // Open ownerships per host: partition -> (from, generation, start).
    let mut open: BTreeMap<String, BTreeMap<usize, (u64, i32, i64)>> = BTreeMap::new();
    let key = |h: &str| {
        let n = h
            .strip_prefix("consumer-")
            .and_then(|n| n.parse().ok())
            .unwrap_or(usize::MAX);
        (n, h.to_owned())
    };
    let lane = |lanes: &mut BTreeMap<(usize, String), Lane>, h: &str| {
        lanes.entry(key(h)).or_insert_with(|| Lane {
            host: h.to_owned(),
            owned: Vec::new(),
            generations: Vec::new(),
            marks: Vec::new(),
        });
    };
    let close = |lanes: &mut BTreeMap<(usize, String), Lane>,
                 open: &mut BTreeMap<String, BTreeMap<usize, (u64, i32, i64)>>,
                 h: &str,
                 p: Option<usize>,
                 at: u64,
                 why: &str| {
        let Some(mine) = open.get_mut(h) else { return };
        let ps: Vec<usize> = match p {
            Some(p) => vec![p],
            None => mine.keys().copied().collect(),
        };
        for p in ps {
            if let Some((from, generation, start)) = mine.remove(&p) {
                if let Some(l) = lanes.get_mut(&key(h)) {
                    l.owned.push(Ownership {
                        partition: p,
                        from,
                        until: at,
                        generation,
                        start,
                        ended: why.to_owned(),
                    });
                }
            }
        }
    };
    for e in history {
        let at = e.at.as_millis();
        match &e.record {
            Record::Client(ev) if e.host.starts_with("consumer-") => {
                lane(&mut lanes, &e.host);
                match ev {
                    Event::Joined { generation, .. } => {
                        if let Some(l) = lanes.get_mut(&key(&e.host)) {
                            l.generations.push((at, generation.0));
                        }
                    }
                    Event::Assigned {
                        partitions,
                        generation,
                    } => {
                        for (tp, start) in partitions {
                            if let Some(p) = idx(tp) {
                                close(&mut lanes, &mut open, &e.host, Some(p), at, "reassigned");
                                open.entry(e.host.clone())
                                    .or_default()
                                    .insert(p, (at, generation.0, start.0));
                            }
                        }
                    }
                    Event::Revoked { partitions, .. } | Event::Lost { partitions } => {
                        let why = if matches!(ev, Event::Lost { .. }) {
                            "lost"
                        } else {
                            "revoked"
                        };
                        for tp in partitions {
                            if let Some(p) = idx(tp) {
                                close(&mut lanes, &mut open, &e.host, Some(p), at, why);
                            }
                        }
                    }
                    Event::Stopped { reason } => {
                        close(&mut lanes, &mut open, &e.host, None, at, "stopped");
                        if let Some(l) = lanes.get_mut(&key(&e.host)) {
                            l.marks.push((at, format!("stopped ({reason:?})")));
                        }
                    }
                    _ => {}
                }
            }
            Record::Fault(r) | Record::Healed(r) => {
                let healed = matches!(e.record, Record::Healed(_));
                if let Some(m) = r.ends_member(healed) {
                    let h = ruckus_history::fault::member_host(m);
                    lane(&mut lanes, &h);
                    close(&mut lanes, &mut open, &h, None, at, "crashed");
                    if let Some(l) = lanes.get_mut(&key(&h)) {
                        let what = if healed { "restarted" } else { "crashed" };
                        l.marks.push((at, format!("{what}: {r}")));
                    }
                }
            }
            _ => {}
        }
    }
    let hosts: Vec<String> = open.keys().cloned().collect();
    for h in hosts {
        close(&mut lanes, &mut open, &h, None, end, "end");
    }
    let mut out: Vec<Lane> = lanes.into_values().collect();
    for l in &mut out {
        l.owned.sort_by_key(|o| (o.from, o.partition));
    }
    out
}

fn faults(history: &[Entry], end: u64) -> Vec<FaultBar> {
    explain::fault_spans(history)
        .into_iter()
        .map(|s| {
            let from = s.from.as_millis();
            let until = match s.until {
                Some(u) => u.as_millis(),
                None if s.active_at(s.from + std::time::Duration::from_millis(1)) => end,
                None => from,
            };
            let members = s
                .record
                .targets
                .iter()
                .filter_map(|t| match t {
                    ruckus_history::fault::Target::Member(m) => {
                        Some(ruckus_history::fault::member_host(*m))
                    }
                    _ => None,
                })
                .collect();
            FaultBar {
                from,
                until,
                kind: s.record.fault.kind().to_owned(),
                label: s.record.to_string(),
                members,
            }
        })
        .collect()
}

fn commits(history: &[Entry], idx: &impl Fn(&TopicPartition) -> Option<usize>) -> Vec<CommitMark> {
    history
        .iter()
        .filter_map(|e| match e.event()? {
            Event::Committed {
                tp,
                offset,
                generation,
            } => Some(CommitMark {
                at: e.at.as_millis(),
                partition: idx(tp)?,
                offset: offset.0,
                host: e.host.clone(),
                generation: generation.0,
            }),
            _ => None,
        })
        .collect()
}

/// Lag per partition: the highest acknowledged produce (+1) minus the
/// committed offset as the broker last applied it (the members'
/// acknowledgements where the broker's side is not recorded).
fn lag(
    history: &[Entry],
    idx: &impl Fn(&TopicPartition) -> Option<usize>,
    n: usize,
    end: u64,
) -> Vec<LagSeries> {
    let broker_side = history.iter().any(|e| {
        matches!(
            e.broker(),
            Some(BrokerEvent::CommitHandled { .. } | BrokerEvent::CommitObserved { .. })
        )
    });
    let mut high = vec![0i64; n];
    let mut committed = vec![0i64; n];
    let mut points: Vec<Vec<(u64, i64)>> = vec![Vec::new(); n];
    let mut push = |p: usize, at: u64, lag: i64| {
        let pts = &mut points[p];
        match pts.last_mut() {
            Some(last) if last.0 == at => last.1 = lag,
            Some(last) if last.1 == lag => {}
            _ => pts.push((at, lag)),
        }
    };
    for e in history {
        let at = e.at.as_millis();
        let mut changed: Vec<usize> = Vec::new();
        match &e.record {
            Record::Client(Event::Produced { tp, offset }) => {
                if let Some(p) = idx(tp) {
                    high[p] = high[p].max(offset.0 + 1);
                    changed.push(p);
                }
            }
            Record::Client(Event::Committed { tp, offset, .. }) if !broker_side => {
                if let Some(p) = idx(tp) {
                    committed[p] = offset.0;
                    changed.push(p);
                }
            }
            Record::Broker(BrokerEvent::CommitHandled {
                offsets,
                error: ruckus_core::model::ErrorCode::None,
                ..
            }) => {
                for (tp, o) in offsets {
                    if let Some(p) = idx(tp) {
                        committed[p] = o.0;
                        changed.push(p);
                    }
                }
            }
            Record::Broker(BrokerEvent::CommitObserved { tp, offset }) => {
                if let Some(p) = idx(tp) {
                    committed[p] = offset.0;
                    changed.push(p);
                }
            }
            _ => {}
        }
        for p in changed {
            push(p, at, (high[p] - committed[p]).max(0));
        }
    }
    points
        .into_iter()
        .enumerate()
        .map(|(partition, pts)| LagSeries {
            partition,
            points: thin(pts, end),
        })
        .collect()
}

/// At most [`LAG_POINTS`] points: the last of each time bucket (the step
/// function's shape at the page's resolution).
fn thin(points: Vec<(u64, i64)>, end: u64) -> Vec<(u64, i64)> {
    if points.len() <= LAG_POINTS {
        return points;
    }
    let bucket = end.div_ceil(LAG_POINTS as u64).max(1);
    let mut out: Vec<(u64, i64)> = Vec::with_capacity(LAG_POINTS + 1);
    for (at, lag) in points {
        match out.last_mut() {
            Some(last) if last.0 / bucket == at / bucket => *last = (at, lag),
            _ => out.push((at, lag)),
        }
    }
    out
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// JSON for a `<script type="application/json">` block: `</` never closes
/// the block early.
fn script_json(v: &impl Serialize) -> String {
    serde_json::to_string(v)
        .expect("the picture serializes")
        .replace("</", "<\\/")
}

/// The page of a run: the picture drawn by its inline script, with the
/// violations, their accounts and slices below it.
pub fn html(p: &Picture) -> String {
    let title = format!("{} seed {}", p.scenario, p.seed);
    let verdict = if p.violations.is_empty() {
        "every invariant holds".to_owned()
    } else {
        p.violations
            .iter()
            .map(|v| v.invariant.clone())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut side = String::new();
    for (i, v) in p.violations.iter().enumerate() {
        side.push_str(&format!(
            "<section class=\"violation\" id=\"violation-{i}\"><h2>{} at {}</h2><p>{}</p>\
             <h3>How it happened</h3><ol class=\"why\">{}</ol>\
             <h3>History slice</h3><pre class=\"slice\">{}</pre></section>",
            escape(&v.invariant),
            ms(v.at),
            escape(&v.detail),
            v.explanation
                .iter()
                .map(|l| format!("<li>{}</li>", escape(l)))
                .collect::<String>(),
            escape(&v.slice.join("\n"))
        ));
    }
    PAGE.replace("{{TITLE}}", &escape(&title))
        .replace("{{DESCRIPTION}}", &escape(&p.description))
        .replace("{{VERDICT}}", &escape(&verdict))
        .replace("{{REPRO}}", &escape(&p.repro))
        .replace("{{VIOLATIONS}}", &side)
        .replace("{{STYLE}}", STYLE)
        .replace("{{SCRIPT}}", SCRIPT)
        .replace("{{DATA}}", &script_json(p))
}

fn ms(at: u64) -> String {
    format!("{}.{:03}s", at / 1000, at % 1000)
}

/// The summary page of a sweep: its scenarios, seeds, failures and
/// speed, with links to the pages of failing seeds (`pages`: scenario →
/// `(seed, relative link)`).
pub fn summary_html(
    reports: &[ScenarioReport],
    pages: &BTreeMap<String, Vec<(u64, String)>>,
) -> String {
    let seeds: usize = reports.iter().map(|r| r.seeds_run).sum();
    let failed = reports.iter().filter(|r| !r.passed).count();
    let mut rows = String::new();
    for r in reports {
        let per_min = if r.wall_ms > 0 {
            r.seeds_run as f64 * 60_000.0 / r.wall_ms as f64
        } else {
            0.0
        };
        let links = pages
            .get(&r.scenario)
            .map(|ps| {
                ps.iter()
                    .map(|(s, l)| format!("<a href=\"{}\">seed {s}</a>", escape(l)))
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .unwrap_or_default();
        let reach = r.on_owners();
        // Each state reached, in how many seeds; named ones never reached
        // flagged.
        let states = r
            .coverage
            .iter()
            .map(|(st, n)| {
                let named = if r.reach.contains(st) { "<b>" } else { "" };
                let end = if named.is_empty() { "" } else { "</b>" };
                format!("{named}{} {n}/{}{end}", st.name(), r.seeds_run)
            })
            .chain(
                r.unreached
                    .iter()
                    .map(|st| format!("<b class=\"unreached\">{} never</b>", st.name())),
            )
            .collect::<Vec<_>>()
            .join("<br>");
        rows.push_str(&format!(
            "<tr class=\"{}\"><td>{}</td><td>{}</td><td>{}</td><td>{:.0}</td><td>{:.0}</td><td>{:.0}×</td><td>{}</td><td>{states}</td><td>{} {}</td><td>{}</td></tr>",
            if r.passed { "pass" } else { "fail" },
            escape(&r.scenario),
            r.seeds_run,
            r.seeds_failed,
            per_min,
            r.seeds_per_min_per_core,
            r.sim_per_wall,
            reach,
            if r.passed { "PASS" } else { "FAIL" },
            escape(&r.verdict),
            links
        ));
    }
    SUMMARY
        .replace("{{STYLE}}", STYLE)
        .replace(
            "{{HEADLINE}}",
            &format!(
                "{} scenarios, {seeds} seeds, {} passed, {failed} failed",
                reports.len(),
                reports.len() - failed
            ),
        )
        .replace("{{ROWS}}", &rows)
}

const SUMMARY: &str = r#"<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>ruckus sweep</title><style>{{STYLE}}</style></head>
<body><h1>ruckus sweep</h1><p id="headline">{{HEADLINE}}</p>
<table class="summary"><thead><tr><th>scenario</th><th>seeds</th><th>failed</th><th>seeds/min</th>
<th>seeds/min/core</th><th>sim/wall</th><th>faults on owners</th><th>states reached (named in bold)</th><th>verdict</th><th>pictures</th></tr></thead>
<tbody>{{ROWS}}</tbody></table></body></html>
"#;

const PAGE: &str = r#"<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{{TITLE}}</title><style>{{STYLE}}</style></head>
<body>
<h1>{{TITLE}}</h1>
<p class="description">{{DESCRIPTION}}</p>
<p>Verdict: <b id="verdict">{{VERDICT}}</b>. Replay: <code>{{REPRO}}</code></p>
<div class="controls"><button id="zoom-in">zoom in</button> <button id="zoom-out">zoom out</button>
<button id="reset">whole run</button> <span id="window"></span>
<span class="hint">wheel: zoom · drag: pan · hover: the exact event</span></div>
<div class="main"><div id="chart"><noscript>The picture is drawn by this page's script: enable JavaScript.</noscript></div>
<aside id="side">{{VIOLATIONS}}</aside></div>
<div id="tip"></div>
<script type="application/json" id="data">{{DATA}}</script>
<script>{{SCRIPT}}</script>
</body></html>
"#;

const STYLE: &str = r#"
body{font:13px/1.4 system-ui,sans-serif;margin:16px;color:#222}
h1{font-size:18px;margin:0 0 4px} h2{font-size:15px;margin:8px 0 4px;color:#b00} h3{font-size:13px;margin:8px 0 2px}
.description{max-width:1100px;color:#444;white-space:pre-wrap}
.main{display:flex;gap:12px;align-items:flex-start}
#chart{flex:0 0 auto} #side{flex:1 1 360px;min-width:320px;max-width:640px}
pre.slice{font-size:11px;background:#f6f6f6;padding:6px;overflow:auto;max-height:420px}
ol.why li{margin-bottom:4px}
#tip{position:fixed;display:none;background:#222;color:#fff;padding:4px 6px;font-size:12px;border-radius:3px;pointer-events:none;max-width:520px;white-space:pre-wrap;z-index:9}
.controls{margin:6px 0} .hint{color:#777;margin-left:8px}
svg text{font-size:10px;fill:#333} svg .label{font-size:11px}
table.summary{border-collapse:collapse} table.summary td,table.summary th{border:1px solid #ccc;padding:3px 6px;text-align:right}
table.summary td:first-child,table.summary td:nth-child(8),table.summary td:nth-child(9),table.summary td:nth-child(10){text-align:left}
.unreached{color:#c00}
tr.fail td{background:#fde8e8}
"#;

const SCRIPT: &str = r#"
(function(){
const d = JSON.parse(document.getElementById('data').textContent);
const NS = 'http://www.w3.org/2000/svg';
const W = 1100, LEFT = 110, RIGHT = 10, PW = W - LEFT - RIGHT;
let t0 = 0, t1 = d.end_ms, drag = null;
const P = Math.max(1, d.partitions.length);
const hue = i => Math.round(i * 360 / P);
const pcol = i => `hsl(${hue(i)},65%,50%)`;
const mcol = h => { const i = d.lanes.findIndex(l => l.host === h); return `hsl(${Math.round((i < 0 ? 0 : i) * 137.5) % 360},55%,35%)`; };
const ms = t => (t / 1000).toFixed(3) + 's';
const tip = document.getElementById('tip');
function el(name, attrs, parent, info) {
  const e = document.createElementNS(NS, name);
  for (const k in attrs) e.setAttribute(k, attrs[k]);
  if (info) { e.dataset.info = info; const t = document.createElementNS(NS, 'title'); t.textContent = info; e.appendChild(t); }
  if (parent) parent.appendChild(e);
  return e;
}
function text(x, y, s, parent, cls) { const t = el('text', {x, y, class: cls || ''}, parent); t.textContent = s; return t; }
const X = t => LEFT + (t - t0) / (t1 - t0) * PW;
function clip(a, b) { return [Math.max(a, t0), Math.min(b, t1)]; }
function draw() {
  const chart = document.getElementById('chart');
  chart.textContent = '';
  // Rows of faults, packed so that overlapping ones do not share a row.
  const rows = [];
  const placed = d.faults.map(f => {
    const end = Math.max(f.until, f.from + (t1 - t0) / 150);
    let r = rows.findIndex(e => e <= f.from);
    if (r < 0) { r = rows.length; rows.push(0); }
    rows[r] = end; return {f, r};
  });
  const FH = 14, LH = Math.max(4, Math.min(8, Math.floor(96 / P))), laneH = P * LH + 14;
  const axisY = 18, faultsY = axisY + 8, lanesY = faultsY + rows.length * FH + 12;
  const commitsY = lanesY + d.lanes.length * (laneH + 6) + 16, CH = 11;
  const lagY = commitsY + P * CH + 30, lagH = 150;
  const H = lagY + lagH + 24;
  const svg = el('svg', {xmlns: NS, width: W, height: H, viewBox: `0 0 ${W} ${H}`, id: 'picture'}, chart);
  const defs = el('defs', {}, svg);
  const cp = el('clipPath', {id: 'plot'}, defs); el('rect', {x: LEFT, y: 0, width: PW, height: H}, cp);
  const g = el('g', {'clip-path': 'url(#plot)'}, svg);
  // Time axis.
  const span = t1 - t0, step = [1,2,5,10,20,50,100,200,500,1000,2000,5000,10000,20000,60000].find(s => span / s <= 12) || 60000;
  for (let t = Math.ceil(t0 / step) * step; t <= t1; t += step) {
    el('line', {x1: X(t), x2: X(t), y1: axisY, y2: H - 20, stroke: '#eee'}, g);
    text(X(t) + 2, axisY - 4, ms(t), g);
  }
  // Faults: a row each, and shading on the lanes of the members they hit.
  text(4, faultsY + 10, 'faults', svg, 'label');
  for (const {f, r} of placed) {
    const [a, b] = clip(f.from, Math.max(f.until, f.from + span / 150));
    if (b < a) continue;
    const info = `${f.label}\n${ms(f.from)} → ${f.until > f.from ? ms(f.until) : '(instant)'}`;
    el('rect', {x: X(a), y: faultsY + r * FH, width: Math.max(2, X(b) - X(a)), height: FH - 2, fill: '#f4a340', 'fill-opacity': 0.8, class: 'fault'}, g, info);
    text(X(a) + 2, faultsY + r * FH + 10, f.label, g);
    for (const h of f.members) {
      const li = d.lanes.findIndex(l => l.host === h); if (li < 0) continue;
      el('rect', {x: X(a), y: lanesY + li * (laneH + 6) - 2, width: Math.max(2, X(b) - X(a)), height: laneH + 2, fill: '#f4a340', 'fill-opacity': 0.18, class: 'fault-shade'}, g, info);
    }
  }
  // Lanes: which partitions each member owned, generation marks, stops.
  d.lanes.forEach((l, li) => {
    const y = lanesY + li * (laneH + 6);
    text(4, y + laneH / 2 + 4, l.host, svg, 'label');
    el('rect', {x: LEFT, y: y, width: PW, height: laneH - 2, fill: 'none', stroke: '#ddd'}, svg);
    for (const o of l.owned) {
      const [a, b] = clip(o.from, o.until); if (b <= a) continue;
      el('rect', {x: X(a), y: y + 12 + o.partition * LH, width: Math.max(1, X(b) - X(a)), height: LH - 1, fill: pcol(o.partition), class: 'owned'}, g,
        `${l.host} owned ${d.partitions[o.partition]} from ${ms(o.from)} (offset ${o.start}, generation ${o.generation}) until ${ms(o.until)} (${o.ended})`);
    }
    for (const [t, gen] of l.generations) {
      if (t < t0 || t > t1) continue;
      el('line', {x1: X(t), x2: X(t), y1: y, y2: y + laneH - 2, stroke: '#333', 'stroke-width': 1, class: 'generation'}, g, `${l.host} joined generation ${gen} at ${ms(t)}`);
      text(X(t) + 2, y + 9, 'g' + gen, g);
    }
    for (const [t, what] of l.marks) {
      if (t < t0 || t > t1) continue;
      el('path', {d: `M${X(t)-4},${y} L${X(t)+4},${y} L${X(t)},${y+7} Z`, fill: '#000', class: 'mark'}, g, `${l.host} ${what} at ${ms(t)}`);
    }
  });
  // Commits: a row per partition, a tick per acknowledged commit.
  text(4, commitsY - 4, 'commits', svg, 'label');
  d.partitions.forEach((p, i) => { text(LEFT - 60, commitsY + i * CH + CH - 1, p, svg); });
  for (const c of d.commits) {
    if (c.at < t0 || c.at > t1) continue;
    el('rect', {x: X(c.at) - 1, y: commitsY + c.partition * CH, width: 2, height: CH - 1, fill: mcol(c.host), class: 'commit'}, g,
      `${c.host} committed ${d.partitions[c.partition]} at offset ${c.offset} (generation ${c.generation}) at ${ms(c.at)}`);
  }
  // Lag per partition.
  text(4, lagY + 10, 'lag', svg, 'label');
  let max = 1;
  for (const s of d.lag) for (const [t, v] of s.points) if (t >= t0 && t <= t1) max = Math.max(max, v);
  text(LEFT - 40, lagY + 8, String(max), svg);
  text(LEFT - 16, lagY + lagH, '0', svg);
  el('rect', {x: LEFT, y: lagY, width: PW, height: lagH, fill: 'none', stroke: '#ddd'}, svg);
  const Y = v => lagY + lagH - v / max * (lagH - 4);
  for (const s of d.lag) {
    let path = '', last = null;
    for (const [t, v] of s.points) {
      if (last !== null) path += ` L${X(t)},${Y(last)}`;
      path += (path ? ' L' : 'M') + `${X(t)},${Y(v)}`; last = v;
    }
    if (last !== null) path += ` L${X(d.end_ms)},${Y(last)}`;
    if (path) el('path', {d: path, fill: 'none', stroke: pcol(s.partition), 'stroke-width': 1.2, class: 'lag'}, g, `lag of ${d.partitions[s.partition]}`);
  }
  // Violations: a red line across everything, a mark on its partition.
  d.violations.forEach((v, i) => {
    if (v.at < t0 || v.at > t1) return;
    const info = `${v.invariant} at ${ms(v.at)}${v.partition !== null ? ' on ' + d.partitions[v.partition] + (v.offset !== null ? '@' + v.offset : '') : ''}: ${v.detail}`;
    el('line', {x1: X(v.at), x2: X(v.at), y1: axisY, y2: H - 20, stroke: '#d00', 'stroke-width': 2, class: 'violation'}, g, info);
    text(X(v.at) + 3, H - 8, '✖ ' + v.invariant, g).setAttribute('fill', '#d00');
    if (v.partition !== null) el('circle', {cx: X(v.at), cy: commitsY + v.partition * CH + CH / 2, r: 5, fill: '#d00', class: 'violation-mark'}, g, info);
  });
  document.getElementById('window').textContent = `${ms(t0)} – ${ms(t1)}`;
  svg.addEventListener('mousemove', ev => {
    const info = ev.target.dataset && ev.target.dataset.info;
    if (!info) { tip.style.display = 'none'; return; }
    tip.textContent = info; tip.style.display = 'block';
    tip.style.left = (ev.clientX + 12) + 'px'; tip.style.top = (ev.clientY + 12) + 'px';
  });
  svg.addEventListener('mouseleave', () => { tip.style.display = 'none'; });
  svg.addEventListener('wheel', ev => {
    ev.preventDefault();
    const r = svg.getBoundingClientRect();
    const at = t0 + Math.min(1, Math.max(0, (ev.clientX - r.left - LEFT) / PW)) * (t1 - t0);
    zoom(ev.deltaY < 0 ? 0.8 : 1.25, at);
  }, {passive: false});
  svg.addEventListener('mousedown', ev => { drag = {x: ev.clientX, t0, t1}; });
  window.onmouseup = () => { drag = null; };
  svg.addEventListener('mousemove', ev => {
    if (!drag) return;
    const dt = (ev.clientX - drag.x) / PW * (drag.t1 - drag.t0);
    const len = drag.t1 - drag.t0;
    t0 = Math.max(0, Math.min(d.end_ms - len, drag.t0 - dt)); t1 = t0 + len;
    draw();
  });
  document.body.dataset.drawn = String(svg.querySelectorAll('.owned').length);
}
function zoom(f, at) {
  const len = Math.max(50, Math.min(d.end_ms, (t1 - t0) * f));
  t0 = Math.max(0, Math.min(d.end_ms - len, at - (at - t0) * len / (t1 - t0)));
  t1 = t0 + len; draw();
}
document.getElementById('zoom-in').onclick = () => zoom(0.5, (t0 + t1) / 2);
document.getElementById('zoom-out').onclick = () => zoom(2, (t0 + t1) / 2);
document.getElementById('reset').onclick = () => { t0 = 0; t1 = d.end_ms; draw(); };
// Start on the violation, if there is one: the whole run, its mark on it.
draw();
})();
"#;
