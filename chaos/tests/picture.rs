//! The picture of a run: the model behind the drawing, built from
//! hand-built histories; the page is self-contained; and a real browser
//! (headless Chromium) draws a failing known-bad seed's page, with its
//! lanes, faults, commits and violation, and takes a screenshot.
//!
//! The browser test needs `chromium` (Debian's package; `.ci/run`
//! installs it). Without one it is reported IGNORED and the reason
//! printed, never passed.

// Skip reasons and where the screenshot went are reported on stderr.
#![allow(clippy::print_stderr)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant as WallInstant};

use libtest_mimic::{Arguments, Failed, Trial};
use ruckus_chaos::check::{Invariant, Violation};
use ruckus_chaos::picture::{self, LagSeries, Ownership, Picture};
use ruckus_chaos::scenario::Scenario;
use ruckus_core::consumer::StopReason;
use ruckus_core::events::Event;
use ruckus_core::model::{ErrorCode, Generation, Instant, MemberId, Offset, TopicPartition};
use ruckus_history::duration::Dur;
use ruckus_history::fault::{Fault, FaultRecord, Target};
use ruckus_history::record::{BrokerEvent, Entry, Record};

fn tp(p: i32) -> TopicPartition {
    TopicPartition::new("orders", p)
}

fn e(at: u64, host: &str, event: Event) -> Entry {
    Entry::client(Instant::from_millis(at), host, event)
}

fn at(at: u64, host: &str, record: Record) -> Entry {
    Entry {
        at: Instant::from_millis(at),
        host: host.into(),
        record,
    }
}

fn assigned(t: u64, host: &str, g: i32, ps: &[(i32, i64)]) -> Entry {
    e(
        t,
        host,
        Event::Assigned {
            partitions: ps.iter().map(|(p, o)| (tp(*p), Offset(*o))).collect(),
            generation: Generation(g),
        },
    )
}

fn crash() -> FaultRecord {
    FaultRecord::new(
        Fault::CrashMember {
            at: Dur::ms(500),
            member: 0,
            restart_after: Some(Dur::ms(500)),
        },
        vec![Target::Member(0)],
    )
}

/// Two members, two partitions: consumer-0 owns both, crashes at 0.5 s
/// and is restarted at 1 s; consumer-1 takes both over at 0.8 s and stops
/// at 2 s.
fn history() -> Vec<Entry> {
    let produced = |t, p, o| {
        e(
            t,
            "producer",
            Event::Produced {
                tp: tp(p),
                offset: Offset(o),
            },
        )
    };
    let handled = |t, p, o| {
        at(
            t,
            "broker-0",
            Record::Broker(BrokerEvent::CommitHandled {
                member: MemberId::new("m"),
                generation: Generation(1),
                offsets: vec![(tp(p), Offset(o))],
                error: ErrorCode::None,
            }),
        )
    };
    vec![
        produced(10, 0, 0),
        produced(10, 0, 1),
        produced(10, 1, 0),
        e(
            100,
            "consumer-0",
            Event::Joined {
                member_id: MemberId::new("c0"),
                generation: Generation(1),
            },
        ),
        assigned(100, "consumer-0", 1, &[(0, 0), (1, 0)]),
        e(
            300,
            "consumer-0",
            Event::Committed {
                tp: tp(0),
                offset: Offset(1),
                generation: Generation(1),
            },
        ),
        handled(300, 0, 1),
        at(500, "nemesis", Record::Fault(crash())),
        assigned(800, "consumer-1", 2, &[(0, 1), (1, 0)]),
        at(1000, "nemesis", Record::Healed(crash())),
        e(
            1200,
            "consumer-1",
            Event::Revoked {
                partitions: vec![tp(1)],
                generation: Generation(2),
            },
        ),
        handled(1500, 0, 2),
        e(
            2000,
            "consumer-1",
            Event::Stopped {
                reason: StopReason::Shutdown,
            },
        ),
    ]
}

fn model() -> Picture {
    let v = Violation {
        invariant: Invariant::ZeroLoss,
        at_ms: 1500,
        host: Some("consumer-1".into()),
        partition: Some(tp(1).to_string()),
        offset: Some(0),
        detail: "hand-built".into(),
        slice: vec!["a line </script> that must not end the page's script".into()],
    };
    Picture::new(
        "hand",
        "a hand-built run",
        7,
        &history(),
        &[v],
        "ruckus replay hand.toml --seed 7".into(),
    )
}

fn lanes_show_who_owned_what_and_how_it_ended() -> Result<(), Failed> {
    let p = model();
    assert_eq!(p.partitions, ["orders-0", "orders-1"]);
    let hosts: Vec<&str> = p.lanes.iter().map(|l| l.host.as_str()).collect();
    assert_eq!(hosts, ["consumer-0", "consumer-1"]);
    let own = |from, until, partition, ended: &str, generation, start| Ownership {
        partition,
        from,
        until,
        generation,
        start,
        ended: ended.into(),
    };
    assert_eq!(
        p.lanes[0].owned,
        [
            own(100, 500, 0, "crashed", 1, 0),
            own(100, 500, 1, "crashed", 1, 0)
        ]
    );
    assert_eq!(
        p.lanes[1].owned,
        [
            own(800, 2000, 0, "stopped", 2, 1),
            own(800, 1200, 1, "revoked", 2, 0)
        ]
    );
    assert_eq!(p.lanes[0].generations, [(100, 1)]);
    let marks: Vec<u64> = p.lanes[0].marks.iter().map(|m| m.0).collect();
    assert_eq!(marks, [500, 1000], "crashed, then restarted");
    Ok(())
}

fn faults_commits_lag_and_the_violation_are_placed() -> Result<(), Failed> {
    let p = model();
    assert_eq!(p.end_ms, 2000);
    assert_eq!(p.faults.len(), 1);
    let f = &p.faults[0];
    assert_eq!(
        (f.from, f.until, f.kind.as_str()),
        (500, 1000, "crash-member")
    );
    assert_eq!(f.members, ["consumer-0"]);
    assert_eq!(p.commits.len(), 1);
    assert_eq!((p.commits[0].at, p.commits[0].offset), (300, 1));
    // Lag: produced minus what the broker applied (its side recorded).
    assert_eq!(
        p.lag,
        [
            LagSeries {
                partition: 0,
                points: vec![(10, 2), (300, 1), (1500, 0)]
            },
            LagSeries {
                partition: 1,
                points: vec![(10, 1)]
            }
        ]
    );
    let v = &p.violations[0];
    assert_eq!((v.at, v.partition, v.offset), (1500, Some(1), Some(0)));
    assert!(!v.explanation.is_empty());
    Ok(())
}

fn the_page_is_self_contained() -> Result<(), Failed> {
    let html = picture::html(&model());
    assert!(html.starts_with("<!DOCTYPE html>"));
    for needle in ["src=", "href=\"http", "@import", "url(http"] {
        assert!(
            !html.contains(needle),
            "the page fetches something: {needle}"
        );
    }
    // The only absolute URL is SVG's namespace name, which is never fetched.
    let urls: Vec<&str> = html
        .match_indices("http")
        .map(|(i, _)| &html[i..i + 26])
        .collect();
    assert!(
        urls.iter()
            .all(|u| u.starts_with("http://www.w3.org/2000/svg")),
        "{urls:?}"
    );
    // The history slice cannot close the data block early.
    assert_eq!(html.matches("</script>").count(), 2, "two script blocks");
    assert!(
        html.contains("a line &lt;/script&gt;"),
        "the slice is escaped"
    );
    assert!(html.contains("How it happened"));
    Ok(())
}

fn the_summary_page_links_the_pictures() -> Result<(), Failed> {
    let sc = load("known_bad_fatal_skip");
    let r = ruckus_chaos::runner::run_scenario(&sc, &ruckus_chaos::runner::Options::new(1..2));
    let mut pages = std::collections::BTreeMap::new();
    pages.insert(
        r.scenario.clone(),
        vec![(1, "pages/known_bad_fatal_skip-seed1.html".to_owned())],
    );
    let html = picture::summary_html(&[r], &pages);
    assert!(
        html.contains("1 scenarios, 1 seeds, 1 passed, 0 failed"),
        "{html}"
    );
    assert!(html.contains("<a href=\"pages/known_bad_fatal_skip-seed1.html\">seed 1</a>"));
    assert!(html.contains("seeds/min/core") && html.contains("sim/wall"));
    Ok(())
}

fn load(name: &str) -> Scenario {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../scenarios")
        .join(format!("{name}.toml"));
    Scenario::load(&path).unwrap_or_else(|e| panic!("{e}"))
}

/// A Chromium (or Chrome) on this machine, if there is one.
fn browser() -> Option<PathBuf> {
    if let Ok(b) = std::env::var("RUCKUS_BROWSER") {
        return Some(PathBuf::from(b));
    }
    let path = std::env::var_os("PATH")?;
    [
        "chromium",
        "chromium-browser",
        "google-chrome",
        "google-chrome-stable",
    ]
    .iter()
    .flat_map(|name| std::env::split_paths(&path).map(move |d| d.join(name)))
    .find(|p| p.is_file())
}

/// Runs the browser headless with `args` on `page`: its standard output.
fn headless(browser: &Path, args: &[&str], page: &Path) -> Result<String, Failed> {
    let profile = tempdir("profile");
    let mut child = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--hide-scrollbars",
            "--virtual-time-budget=5000",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(format!("file://{}", page.display()))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    // Read its output while it runs: a page's DOM is more than a pipe holds.
    let mut stdout = child.stdout.take().ok_or("no stdout")?;
    let reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = std::io::Read::read_to_end(&mut stdout, &mut buf);
        buf
    });
    let start = WallInstant::now();
    loop {
        if child.try_wait()?.is_some() {
            break;
        }
        if start.elapsed() > Duration::from_secs(120) {
            let _ = child.kill();
            return Err("the browser did not finish within 120 s".into());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = reader.join().map_err(|_| "the output reader panicked")?;
    Ok(String::from_utf8_lossy(&out).into_owned())
}

fn tempdir(what: &str) -> PathBuf {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("picture-{what}"));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("a temporary directory");
    d
}

fn a_browser_draws_a_failing_known_bad_seed(browser: &Path) -> Result<(), Failed> {
    let sc = load("known_bad_auto_commit");
    let out = ruckus_chaos::runner::run_caught(&sc, 1)?;
    assert!(!out.violations.is_empty(), "seed 1 finds the bug");
    let p = Picture::new(
        &sc.name,
        &sc.description,
        1,
        &out.history,
        &out.violations,
        ruckus_chaos::runner::repro(&sc, 1, false),
    );
    let dir = tempdir("page");
    let page = dir.join("known_bad_auto_commit-seed1.html");
    std::fs::write(&page, picture::html(&p))?;

    // The script ran and drew every part.
    let dom = headless(browser, &["--dump-dom"], &page)?;
    let drawn = dom
        .split("data-drawn=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .and_then(|n| n.parse::<usize>().ok())
        .ok_or_else(|| format!("the page's script did not run: {} bytes of DOM", dom.len()))?;
    assert!(drawn > 0, "no ownership drawn");
    for class in [
        "owned",
        "generation",
        "fault",
        "fault-shade",
        "commit",
        "lag",
        "violation",
        "violation-mark",
    ] {
        assert!(
            dom.contains(&format!("class=\"{class}\"")),
            "the browser drew no {class}"
        );
    }
    assert!(dom.contains("zero-loss") || dom.contains("commit-safety"));

    // And a screenshot of it, to look at.
    let shot = dir.join("known_bad_auto_commit-seed1.png");
    headless(
        browser,
        &[
            &format!("--screenshot={}", shot.display()),
            "--window-size=1600,1300",
        ],
        &page,
    )?;
    let png =
        std::fs::read(&shot).map_err(|e| format!("no screenshot at {}: {e}", shot.display()))?;
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    assert!(
        png.len() > 20_000,
        "a blank screenshot? {} bytes",
        png.len()
    );
    eprintln!("screenshot: {} ({} bytes)", shot.display(), png.len());
    Ok(())
}

fn main() {
    ruckus_chaos::quiet_simulated_panics();
    let args = Arguments::from_args();
    let mut trials = vec![
        Trial::test(
            "lanes_show_who_owned_what_and_how_it_ended",
            lanes_show_who_owned_what_and_how_it_ended,
        ),
        Trial::test(
            "faults_commits_lag_and_the_violation_are_placed",
            faults_commits_lag_and_the_violation_are_placed,
        ),
        Trial::test("the_page_is_self_contained", the_page_is_self_contained),
        Trial::test(
            "the_summary_page_links_the_pictures",
            the_summary_page_links_the_pictures,
        ),
    ];
    let name = "a_browser_draws_a_failing_known_bad_seed";
    match browser() {
        Some(b) => trials.push(Trial::test(name, move || {
            a_browser_draws_a_failing_known_bad_seed(&b)
        })),
        None => {
            eprintln!(
                "SKIPPED {name}: no chromium, chromium-browser or google-chrome on PATH (apt-get \
                 install chromium; or set RUCKUS_BROWSER): reported IGNORED, not passed"
            );
            trials.push(Trial::test(name, || Ok(())).with_ignored_flag(true));
        }
    }
    libtest_mimic::run(&args, trials).exit();
}
