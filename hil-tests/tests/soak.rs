//! Months unattended, accelerated: the node replays a generated 10-minute
//! scene in loops (`--loops`, time running on) at `--speed max`, one scene
//! hour per process; the test SIGKILLs most processes at a random moment
//! and starts the next one an hour of scene time later, while a real
//! mosquitto is down about 30 % of the wall time in random spells and the
//! outbox's budget is small enough to be reached while it is down.
//!
//! Checks, at the end: every event the node reported as stored is accounted
//! for (delivered to the researcher's persistent session, still in the
//! store, or counted as evicted or expired); the store stays within its
//! budget; the log per process does not grow. Peak resident memory per
//! process is reported with its slope (MiB per scene day), not asserted.
//!
//! The default suite runs 3 scene hours. `SOAK_DAYS=7 cargo test --release
//! -p hil-tests --test soak -- --nocapture` is the week (`docs/reliability.md`).

mod common;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hil_tests::mosquitto::{Broker, BrokerOptions, RESEARCHER, Subscriber};
use messages::Message;
use rand::{Rng, SeedableRng};

const NODE_ID: &str = "node-s";
const SCENE_S: i64 = 600;
const PASSES_PER_PROCESS: u32 = 6;
const MAX_ITEMS: u64 = 16;

/// Seeded, so a run can be repeated.
fn seeded(seed: u64) -> rand_chacha::ChaCha8Rng {
    rand_chacha::ChaCha8Rng::seed_from_u64(seed)
}

fn write_config(dir: &Path, broker: &Broker) -> std::path::PathBuf {
    let mqtt = broker.node_uplink_toml(NODE_ID).expect("certificate");
    let path = dir.join("fieldnode.toml");
    std::fs::write(
        &path,
        format!(
            "[node]\nid = \"{NODE_ID}\"\n[log]\nlevel = \"info\"\n\
             [outbox.budget]\nmax_items = {MAX_ITEMS}\n\
             [uplink]\nenabled = true\nround_interval_ms = 200\ndrain_timeout_ms = 0\n{mqtt}"
        ),
    )
    .expect("config");
    path
}

/// Sets the scene's start time (`scene.toml`), ms since the epoch.
fn set_start(scene: &Path, start_ms: i64) {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(start_ms) * 1_000_000)
        .expect("time");
    let text = t
        .format(&time::format_description::well_known::Rfc3339)
        .expect("format");
    let path = scene.join("scene.toml");
    let old = std::fs::read_to_string(&path).expect("scene.toml");
    let rest: String = old
        .lines()
        .filter(|l| !l.trim_start().starts_with("start"))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&path, format!("start = \"{text}\"\n{rest}")).expect("scene.toml");
}

/// Least-squares slope of y over x.
fn slope(points: &[(f64, f64)]) -> f64 {
    let n = points.len() as f64;
    if n < 2.0 {
        return 0.0;
    }
    let mx = points.iter().map(|p| p.0).sum::<f64>() / n;
    let my = points.iter().map(|p| p.1).sum::<f64>() / n;
    let sxy: f64 = points.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    let sxx: f64 = points.iter().map(|p| (p.0 - mx).powi(2)).sum();
    if sxx == 0.0 { 0.0 } else { sxy / sxx }
}

#[test]
fn a_long_run_with_kills_and_broker_outages_accounts_for_every_event() {
    let days: f64 = std::env::var("SOAK_DAYS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3.0 / 24.0);
    let processes = ((days * 24.0).ceil() as usize).max(1);
    let mut broker = Broker::start(BrokerOptions::default()).unwrap_or_else(|e| panic!("{e}"));
    let tmp = tempfile::tempdir().expect("tempdir");
    let scene = tmp.path().join("scene");
    common::scenegen(
        &scene,
        &[
            "--preset",
            "mixed",
            "--seed",
            "61",
            "--duration",
            &SCENE_S.to_string(),
        ],
    );
    let start_ms = 1_790_000_000_000i64;
    let config = write_config(tmp.path(), &broker);
    let data = tmp.path().join("data");
    let researcher = broker.client_files(RESEARCHER).expect("certificate");
    let sub = Subscriber::start(
        &broker,
        &researcher,
        &format!("field/{NODE_ID}/events"),
        Some("soak-researcher"),
    )
    .unwrap_or_else(|e| panic!("{e}"));

    // The broker: down about 30 % of the wall time, in random spells.
    let stop = Arc::new(AtomicBool::new(false));
    let broker_down_ms = Arc::new(Mutex::new(0u64));
    let mut rng = seeded(0x5eed_50a6);
    let stored: Arc<Mutex<BTreeSet<u64>>> = Arc::default();
    let mut rss = Vec::new();
    // Per process: bytes of the log without the periodic status lines, and
    // how many of those there were.
    let mut log_bytes = Vec::new();
    let mut status_lines = Vec::new();
    let mut kills = 0;
    let wall = Instant::now();
    let outages = {
        let stop = stop.clone();
        let down = broker_down_ms.clone();
        let mut rng = seeded(0x00b2_0ce2);
        std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                let up = rng.random_range(700..2_300);
                std::thread::sleep(Duration::from_millis(up));
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                let spell = rng.random_range(300..1_000);
                broker.stop();
                std::thread::sleep(Duration::from_millis(spell));
                *down.lock().expect("lock") += spell;
                broker
                    .start_again()
                    .unwrap_or_else(|e| panic!("broker restart: {e}"));
            }
            broker
        })
    };

    for p in 0..processes {
        set_start(
            &scene,
            start_ms + p as i64 * i64::from(PASSES_PER_PROCESS) * SCENE_S * 1000,
        );
        let log = tmp.path().join(format!("node-{p}.log"));
        let rss_file = tmp.path().join(format!("rss-{p}"));
        let node = common::node_run(&scene, &data, &["--speed", "max"]);
        let mut child = Command::new("/usr/bin/time")
            .args(["-f", "%M", "-o"])
            .arg(&rss_file)
            .arg(node.get_program())
            .args(node.get_args())
            .args(["--loops", &PASSES_PER_PROCESS.to_string()])
            .arg("--config")
            .arg(&config)
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).expect("log"))
            .spawn()
            .expect("start the node");
        let out = child.stdout.take().expect("stdout");
        let s = stored.clone();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line)
                    && let Some(id) = v.pointer("/stored/id").and_then(|i| i.as_u64())
                {
                    s.lock().expect("lock").insert(id);
                }
            }
        });
        // Most processes die by SIGKILL at a random moment; every third
        // runs to the end of its hour.
        if p % 3 != 2 {
            std::thread::sleep(Duration::from_millis(rng.random_range(200..2_200)));
            if child.try_wait().ok().flatten().is_none() {
                // /usr/bin/time's child is the node: kill the node itself.
                let pid = std::fs::read_to_string(format!(
                    "/proc/{}/task/{}/children",
                    child.id(),
                    child.id()
                ))
                .ok()
                .and_then(|s| {
                    s.split_whitespace()
                        .next()
                        .and_then(|p| p.parse::<i32>().ok())
                });
                if let Some(pid) = pid {
                    let _ = nix::sys::signal::kill(
                        nix::unistd::Pid::from_raw(pid),
                        nix::sys::signal::Signal::SIGKILL,
                    );
                    kills += 1;
                }
            }
        }
        let st = common::wait_or_fail(&mut child, Duration::from_secs(600), &log);
        reader.join().expect("reader");
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        assert!(
            !text.contains("panicked"),
            "process {p} panicked ({st})\n{text}"
        );
        // The status line comes once per status interval of scene time
        // (`[node] status_interval_ms`, a minute), by design: a process
        // that replays its whole hour logs sixty. The rest must not grow
        // with the run's length.
        let (status, other): (Vec<&str>, Vec<&str>) = text
            .lines()
            .partition(|l| l.contains("node::tasks::status: status "));
        status_lines.push(status.len());
        log_bytes.push(other.iter().map(|l| l.len() + 1).sum::<usize>());
        if let Some(kib) = std::fs::read_to_string(&rss_file)
            .ok()
            .and_then(|s| s.lines().last().and_then(|l| l.trim().parse::<u64>().ok()))
        {
            rss.push(((p + 1) as f64 / 24.0, kib as f64 / 1024.0));
        }
    }
    stop.store(true, Ordering::SeqCst);
    let mut broker = outages.join().expect("outage thread");
    broker.start_again().unwrap_or_else(|e| panic!("{e}"));

    // What the researcher got (its persistent session keeps what arrived
    // while it was cut off with the broker), what is left, what was dropped.
    let stored = stored.lock().expect("lock").clone();
    let (store, _) = uplink::EventStore::open(&data.join("store"), &uplink::StoreConfig::default())
        .expect("open the store");
    let pending: BTreeSet<u64> = store
        .pending(messages::Priority::Low, usize::MAX)
        .expect("pending")
        .items
        .into_iter()
        .map(|i| i.id)
        .collect();
    let drops = store.drop_stats();
    let dropped: u64 = drops.evicted_budget.iter().sum::<u64>()
        + drops.evicted_disk.iter().sum::<u64>()
        + drops.expired_ttl.iter().sum::<u64>();
    drop(store);
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut delivered = BTreeSet::new();
    let mut again = None;
    while Instant::now() < deadline {
        delivered.clear();
        let msgs = again.as_ref().unwrap_or(&sub).messages();
        for m in msgs {
            if let Ok(Message::Event(e)) = messages::decode_message(&m.payload) {
                delivered.insert(e.id);
            }
        }
        let missing = stored
            .difference(&delivered)
            .filter(|id| !pending.contains(id))
            .count() as u64;
        if missing <= dropped {
            break;
        }
        if again.is_none() {
            // mosquitto_sub may not come back after a broker restart; the
            // persistent session holds what arrived meanwhile.
            again = Some(
                Subscriber::start(
                    &broker,
                    &researcher,
                    &format!("field/{NODE_ID}/events"),
                    Some("soak-researcher"),
                )
                .unwrap_or_else(|e| panic!("{e}")),
            );
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    let missing: Vec<u64> = stored
        .iter()
        .filter(|id| !delivered.contains(id) && !pending.contains(id))
        .copied()
        .collect();
    let down = *broker_down_ms.lock().expect("lock");
    let wall_s = wall.elapsed().as_secs_f64();
    let store_bytes = dir_size(&data.join("store"));
    eprintln!(
        "soak: {processes} scene hours in {wall_s:.0} s, {kills} SIGKILLs, broker down {:.0} % of the time; \
         {} events stored, {} delivered, {} still stored, {} not delivered and {dropped} dropped (budget or expiry); \
         store {:.1} MiB; log per process {}..{} bytes besides {}..{} status lines; peak RSS {:.1}..{:.1} MiB, slope {:+.2} MiB per scene day",
        100.0 * down as f64 / (wall_s * 1000.0),
        stored.len(),
        stored.intersection(&delivered).count(),
        stored.intersection(&pending).count(),
        missing.len(),
        store_bytes as f64 / 1_048_576.0,
        log_bytes.iter().min().copied().unwrap_or(0),
        log_bytes.iter().max().copied().unwrap_or(0),
        status_lines.iter().min().copied().unwrap_or(0),
        status_lines.iter().max().copied().unwrap_or(0),
        rss.iter().map(|p| p.1).fold(f64::INFINITY, f64::min),
        rss.iter().map(|p| p.1).fold(0.0, f64::max),
        slope(&rss),
    );

    assert!(!stored.is_empty(), "no event was stored");
    assert!(
        missing.len() as u64 <= dropped,
        "{} events neither delivered, stored nor counted as dropped ({dropped} dropped): {:?}",
        missing.len(),
        &missing[..missing.len().min(20)]
    );
    assert!(
        pending.len() as u64 <= MAX_ITEMS,
        "{} items stored over a budget of {MAX_ITEMS}",
        pending.len()
    );
    // The log of a process does not grow with the run's length: beside
    // one status line per scene minute (and one at the start and the
    // end), what it logs stays within twice the first process's.
    let first = log_bytes.first().copied().unwrap_or(0);
    let most = log_bytes.iter().copied().max().unwrap_or(0);
    assert!(
        most <= 2 * first.max(16 * 1024),
        "log per process grew, besides its status lines: {log_bytes:?} bytes"
    );
    let minutes = (i64::from(PASSES_PER_PROCESS) * SCENE_S / 60) as usize;
    assert!(
        status_lines.iter().all(|&n| n <= minutes + 2),
        "more status lines than scene minutes ({minutes}): {status_lines:?}"
    );
}

fn dir_size(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| match e.metadata() {
                    Ok(m) if m.is_dir() => dir_size(&e.path()),
                    Ok(m) => m.len(),
                    Err(_) => 0,
                })
                .sum()
        })
        .unwrap_or(0)
}
