//! Permanent satellite refusals: the real `fieldnode` forwards its outbox
//! by satellite only, through the modem emulator on a pseudo-terminal
//! (`hil_tests::sbd_emu`), whose first sessions answer MO status 12, 16,
//! 14, 12 and 14 (the gateway refuses the message for good: too many
//! segments, the modem is locked, a bad segment size), then deliver.
//!
//! With `max_permanent_failures = 2`, checked on the emulator's record of
//! every session:
//! - an item is in at most 2 refused messages (12 or 14), and after the
//!   first it only ever goes alone; after the second it is never offered
//!   again: it is quarantined;
//! - a locked modem (16) counts against no item;
//! - the quarantined items are still in the store after the run, the rest
//!   was delivered; the run summary counts the refusals and the quarantine,
//!   `<data_dir>/sbd-refusals` holds their counts;
//! - after a restart on the same data directory, with a modem that
//!   delivers everything, the quarantined items are still not sent by
//!   satellite and still on disk.
//!
//! A modem locked for good (16 at every session), with an hour's
//! `sbd_locked_retry_ms`, gets one session in a whole run, not one per
//! round, and every stored item stays in the outbox.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use hil_tests::sbd_emu::SbdEmulator;
use messages::Message;
use messages::pack::unpack;

const NODE_ID: &str = "node-q";
const MAX_REFUSALS: u32 = 2;
/// The scripted MO statuses of the first sessions.
const SCRIPT: [u8; 5] = [12, 16, 14, 12, 14];

fn config(port: &Path, locked_retry_ms: u64) -> String {
    format!(
        r#"
[node]
id = "{NODE_ID}"
[uplink]
enabled = true
round_interval_ms = 100
drain_timeout_ms = 10000
[uplink.scheduler]
sbd_min_priority = "low"
sbd_min_signal_bars = 1
sbd_min_interval_ms = 0
sbd_locked_retry_ms = {locked_retry_ms}
sbd_fill_bytes = 120
sbd_urgent_max_wait_ms = 0
sbd_max_wait_ms = 0
[uplink.sbd]
port = "{port}"
command_timeout_ms = 800
session_timeout_ms = 1500
backoff_min_ms = 2000
backoff_max_ms = 2000
give_up_after_ms = 1000
credits_per_day = 1000
credits_per_month = 10000
reopen_interval_ms = 1000
max_permanent_failures = {MAX_REFUSALS}
# One priority for everything, so that items go oldest first: a refused
# item is always the first in sending order when its turn comes.
[outbox.priority]
status = "normal"
unknown = {{ priority = "normal", thresholds = [] }}
wildlife = {{ priority = "normal", thresholds = [] }}
machinery_anomaly = {{ priority = "normal", thresholds = [] }}
human_activity = {{ priority = "normal", thresholds = [] }}
background = {{ priority = "normal", thresholds = [] }}
"#,
        port = port.display(),
    )
}

/// Runs the node on `scene`; returns the ids it stored and its summary.
fn run(
    scene: &Path,
    data: &Path,
    config: &Path,
    log: &Path,
) -> (BTreeSet<u64>, serde_json::Value, String) {
    let mut child = common::node_run(scene, data, &["--speed", "max"])
        .arg("--config")
        .arg(config)
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap();
    let out = child.stdout.take().unwrap();
    let reader = common::read_stored_ids(out);
    let status = common::wait_or_fail(&mut child, Duration::from_secs(90), log);
    let (stored, summary) = reader.join().expect("stdout reader");
    let text = std::fs::read_to_string(log).unwrap_or_default();
    assert!(status.success(), "fieldnode failed: {status}\n{text}");
    (stored, summary.expect("summary line"), text)
}

/// The outbox ids in one MO message.
fn ids_of(mo: &[u8]) -> Vec<u64> {
    unpack(mo, NODE_ID)
        .expect("MO message unpacks")
        .iter()
        .map(Message::id)
        .collect()
}

fn outbox_ids(data: &Path) -> BTreeSet<u64> {
    let (store, _) =
        uplink::EventStore::open(&data.join("store"), &uplink::StoreConfig::default()).unwrap();
    store
        .pending(messages::Priority::Low, 100_000)
        .unwrap()
        .items
        .iter()
        .map(|i| i.id)
        .collect()
}

#[test]
fn items_refused_for_good_are_retried_alone_a_bounded_number_of_times_then_quarantined() {
    let emu = SbdEmulator::start().expect("modem emulator on a pty");
    emu.set_signal(4);
    emu.script_sessions(&SCRIPT);
    let tmp = tempfile::tempdir().unwrap();
    let scene = tmp.path().join("scene");
    common::scenegen(
        &scene,
        &["--preset", "mixed", "--seed", "21", "--duration", "600"],
    );
    let config_file = tmp.path().join("fieldnode.toml");
    // The script goes on after the lock: the locked modem is tried again at
    // once.
    std::fs::write(&config_file, config(emu.path(), 0)).unwrap();
    let data = tmp.path().join("data");
    let (stored, summary, text) = run(&scene, &data, &config_file, &tmp.path().join("1.log"));
    assert!(stored.len() >= 3, "scene gave too few events: {stored:?}");

    // Replay the sessions: count each item's refusals (12, 14), check that
    // a refused item only ever goes alone afterwards and that a quarantined
    // one never goes again.
    let sessions = emu.session_log();
    assert!(sessions.len() > SCRIPT.len(), "{sessions:?}\n{text}");
    let statuses: Vec<u8> = sessions.iter().map(|s| s.mo_status).collect();
    assert_eq!(statuses[..SCRIPT.len()], SCRIPT, "{statuses:?}");
    let mut refusals: BTreeMap<u64, u32> = BTreeMap::new();
    let mut delivered: BTreeSet<u64> = BTreeSet::new();
    let mut quarantining_sessions = 0;
    for (n, s) in sessions.iter().enumerate() {
        let ids = ids_of(s.mo.as_deref().expect("every session carries a message"));
        for id in &ids {
            let before = refusals.get(id).copied().unwrap_or(0);
            assert!(
                before < MAX_REFUSALS,
                "session {n}: item {id} sent again after {before} refusals ({ids:?})\n{text}"
            );
            if before > 0 {
                assert_eq!(
                    ids,
                    [*id],
                    "session {n}: refused item {id} not sent alone\n{text}"
                );
            }
        }
        match s.mo_status {
            0..=4 => delivered.extend(ids),
            12 | 14 => {
                let mut quarantines = false;
                for id in ids {
                    let r = refusals.entry(id).or_insert(0);
                    *r += 1;
                    quarantines |= *r == MAX_REFUSALS;
                }
                quarantining_sessions += usize::from(quarantines);
            }
            // 16: the modem is locked, the items are not to blame.
            16 => {}
            other => panic!("unscripted status {other}"),
        }
    }
    let quarantined: BTreeSet<u64> = refusals
        .iter()
        .filter(|&(_, &n)| n == MAX_REFUSALS)
        .map(|(&id, _)| id)
        .collect();
    assert!(
        !quarantined.is_empty(),
        "nothing quarantined: {refusals:?}\n{text}"
    );
    // The locked modem's session carried a refused item alone, and did not
    // count: that item needed a further refusal.
    let locked = sessions[1].mo.as_deref().map(ids_of).unwrap_or_default();
    assert_eq!(locked.len(), 1, "{locked:?}");
    assert_eq!(refusals.get(&locked[0]), Some(&MAX_REFUSALS));
    assert_eq!(ids_of(sessions[2].mo.as_deref().unwrap()), locked);

    // Every stored event was delivered or is quarantined, still on disk.
    let left = outbox_ids(&data);
    assert_eq!(left, quarantined, "left in the outbox\n{text}");
    assert!(delivered.is_disjoint(&quarantined));
    for id in &stored {
        assert!(
            delivered.contains(id) || quarantined.contains(id),
            "event {id} neither delivered nor quarantined\n{text}"
        );
    }
    // Counted and reported.
    let n = |k: &str| summary.pointer(k).and_then(|v| v.as_u64());
    assert_eq!(
        n("/uplink/sbd_refused"),
        Some(SCRIPT.len() as u64),
        "{summary}"
    );
    assert_eq!(
        n("/uplink/sbd_quarantined"),
        Some(quarantined.len() as u64),
        "{summary}"
    );
    assert_eq!(
        n("/uplink/sbd_quarantine_held"),
        Some(quarantined.len() as u64)
    );
    assert_eq!(n("/uplink/left_in_outbox"), Some(quarantined.len() as u64));
    // Logged: every refusal, each quarantine once, the lock once.
    assert_eq!(
        text.matches("satellite message refused for good").count(),
        SCRIPT.iter().filter(|&&s| s != 16).count(),
        "{text}"
    );
    assert_eq!(
        text.matches("items quarantined for the satellite link")
            .count(),
        quarantining_sessions,
        "{text}"
    );
    assert_eq!(
        text.matches("satellite modem locked").count(),
        1,
        "the lock is logged once\n{text}"
    );
    // The counts on disk: the quarantined items with theirs, nothing else
    // (the delivered items were forgotten).
    let file = std::fs::read_to_string(data.join("sbd-refusals")).unwrap();
    let on_disk: BTreeMap<u64, u32> = file
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| {
            let (id, n) = l.split_once(' ').unwrap();
            (id.parse().unwrap(), n.parse().unwrap())
        })
        .collect();
    let want: BTreeMap<u64, u32> = quarantined.iter().map(|&id| (id, MAX_REFUSALS)).collect();
    assert_eq!(on_disk, want, "{file}");

    // A restart, a modem that delivers everything: the quarantine holds.
    let before = emu.session_log().len();
    let scene2 = tmp.path().join("scene2");
    common::scenegen(
        &scene2,
        &["--preset", "mixed", "--seed", "22", "--duration", "300"],
    );
    let (stored2, summary2, text2) = run(&scene2, &data, &config_file, &tmp.path().join("2.log"));
    let later: Vec<u64> = emu.session_log()[before..]
        .iter()
        .flat_map(|s| ids_of(s.mo.as_deref().unwrap()))
        .collect();
    assert!(
        later.iter().all(|id| !quarantined.contains(id)),
        "a quarantined item went by satellite after the restart: {later:?}\n{text2}"
    );
    for id in &stored2 {
        assert!(later.contains(id), "event {id} of the second run not sent");
    }
    assert_eq!(outbox_ids(&data), quarantined);
    let n2 = |k: &str| summary2.pointer(k).and_then(|v| v.as_u64());
    assert_eq!(n2("/uplink/sbd_refused"), Some(0));
    assert_eq!(n2("/uplink/sbd_quarantined"), Some(0));
    assert_eq!(
        n2("/uplink/sbd_quarantine_held"),
        Some(quarantined.len() as u64),
        "{summary2}"
    );
    println!(
        "sbd quarantine: {} sessions ({} refused), {} items refused, {} quarantined: {quarantined:?}",
        sessions.len(),
        SCRIPT.len(),
        refusals.len(),
        quarantined.len()
    );
}

#[test]
fn a_locked_modem_is_left_alone_until_the_retry_interval() {
    let emu = SbdEmulator::start().expect("modem emulator on a pty");
    emu.set_signal(4);
    emu.script_sessions(&[16; 64]);
    let tmp = tempfile::tempdir().unwrap();
    let scene = tmp.path().join("scene");
    common::scenegen(
        &scene,
        &["--preset", "mixed", "--seed", "23", "--duration", "300"],
    );
    let config_file = tmp.path().join("fieldnode.toml");
    std::fs::write(&config_file, config(emu.path(), 3_600_000)).unwrap();
    let data = tmp.path().join("data");
    let (stored, summary, text) = run(&scene, &data, &config_file, &tmp.path().join("1.log"));
    assert!(!stored.is_empty(), "the scene gave no event\n{text}");
    // Rounds every 100 ms, no interval between sessions, and the drain at
    // the end: without the retry interval the modem would be tried again
    // and again.
    let statuses: Vec<u8> = emu.session_log().iter().map(|s| s.mo_status).collect();
    assert_eq!(statuses, [16], "{text}");
    let n = |k: &str| summary.pointer(k).and_then(|v| v.as_u64());
    assert_eq!(n("/uplink/sbd_refused"), Some(1), "{summary}");
    assert_eq!(n("/uplink/sbd_quarantined"), Some(0), "{summary}");
    // Nothing was lost or blamed: every stored item is still pending.
    let left = outbox_ids(&data);
    assert!(stored.is_subset(&left), "stored {stored:?}, left {left:?}");
    let counts = std::fs::read_to_string(data.join("sbd-refusals")).unwrap_or_default();
    assert!(
        counts.lines().all(|l| l.starts_with('#')),
        "a locked modem's refusal was counted against items: {counts}"
    );
    assert_eq!(text.matches("satellite modem locked").count(), 1, "{text}");
}
