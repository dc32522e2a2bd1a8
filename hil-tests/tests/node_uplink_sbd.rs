//! The real `fieldnode` forwarding its outbox by satellite only (no MQTT):
//! `[uplink.sbd]` points at the modem emulator on a pseudo-terminal
//! (`hil_tests::sbd_emu`), whose first session fails with MO status 32 (no
//! network service). Every stored event must arrive in the emulator's MO
//! messages (each at most 340 bytes, unpacking to the stored records), the
//! failed session must confirm nothing (its items go again in a later
//! message), an MT `send_status` command is obeyed, and the outbox is empty
//! when the node exits.

mod common;

use std::collections::BTreeSet;
use std::process::Stdio;
use std::time::Duration;

use hil_tests::sbd_emu::SbdEmulator;
use messages::Message;
use messages::command::Command;
use messages::pack::{SBD_MO_MAX, unpack};

const NODE_ID: &str = "node-s";

#[test]
fn events_go_by_satellite_and_are_confirmed_only_after_mo_success() {
    let emu = SbdEmulator::start().expect("modem emulator on a pty");
    emu.set_signal(4);
    emu.script_sessions(&[32]);
    emu.queue_mt(&Command::SendStatus.encode_mt());

    let tmp = tempfile::tempdir().unwrap();
    let scene = tmp.path().join("scene");
    common::scenegen(
        &scene,
        &["--preset", "mixed", "--seed", "21", "--duration", "600"],
    );
    let config = tmp.path().join("fieldnode.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[node]
id = "{NODE_ID}"
[uplink]
enabled = true
round_interval_ms = 200
drain_timeout_ms = 40000
allowed_commands = ["send_status"]
[uplink.scheduler]
sbd_min_priority = "low"
sbd_min_signal_bars = 1
sbd_min_interval_ms = 0
sbd_fill_bytes = 100
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
"#,
            port = emu.path().display()
        ),
    )
    .unwrap();
    let data = tmp.path().join("data");
    let log = tmp.path().join("node.log");
    let mut child = common::node_run(&scene, &data, &["--speed", "max"])
        .arg("--config")
        .arg(&config)
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let out = child.stdout.take().unwrap();
    let reader = common::read_stored_ids(out);
    let status = common::wait_or_fail(&mut child, Duration::from_secs(50), &log);
    let (stored, summary) = reader.join().expect("stdout reader");
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(status.success(), "fieldnode failed: {status}\n{text}");
    let summary = summary.expect("summary line");
    assert!(stored.len() >= 3, "scene gave too few events: {stored:?}");

    // Every MO message fits Iridium's limit and unpacks to stored records.
    let delivered = emu.delivered();
    let mut events = Vec::new();
    let mut statuses = 0;
    for m in &delivered {
        assert!(m.len() <= SBD_MO_MAX, "MO message of {} bytes", m.len());
        for r in unpack(m, NODE_ID).expect("MO message unpacks") {
            match r {
                Message::Event(e) => {
                    assert!(stored.contains(&e.id), "event {} was never stored", e.id);
                    events.push(e.id);
                }
                Message::Status(_) => statuses += 1,
            }
        }
    }
    let got: BTreeSet<u64> = events.iter().copied().collect();
    assert_eq!(
        got, stored,
        "events delivered by satellite differ from stored\n{text}"
    );
    assert_eq!(events.len(), got.len(), "an event was delivered twice");

    // The first session failed: nothing confirmed then, everything went in
    // later messages.
    assert!(
        emu.sessions() as usize > delivered.len(),
        "no failed session"
    );
    // The modem's network time reached the node's clock.
    assert!(
        text.contains("Iridium network time read"),
        "no network time read\n{text}"
    );
    let failed_at = text
        .find("satellite message not delivered")
        .unwrap_or_else(|| panic!("no failed send logged\n{text}"));
    let first_ok = text
        .find("satellite message delivered")
        .unwrap_or_else(|| panic!("no delivery logged\n{text}"));
    assert!(
        failed_at < first_ok,
        "a delivery preceded the failed session"
    );
    let n = |k: &str| summary.pointer(k).and_then(|v| v.as_u64());
    assert!(
        n("/uplink/not_delivered").unwrap_or(0) >= 1,
        "summary: {summary}"
    );
    assert_eq!(
        n("/uplink/delivered"),
        Some((events.len() + statuses) as u64)
    );

    // The MT command was obeyed: one status record, sent by satellite too.
    assert_eq!(n("/uplink/commands_done"), Some(1), "summary: {summary}");
    assert!(statuses >= 1, "no status record arrived");

    assert_eq!(n("/uplink/left_in_outbox"), Some(0), "summary: {summary}");
    let (store, _) =
        uplink::EventStore::open(&data.join("store"), &uplink::StoreConfig::default()).unwrap();
    let left: u32 = store.queue_depth().iter().sum();
    assert_eq!(left, 0, "outbox not empty after the drain");
    println!(
        "sbd: {} events + {statuses} status in {} MO messages over {} sessions (largest {} bytes)",
        got.len(),
        delivered.len(),
        emu.sessions(),
        delivered.iter().map(Vec::len).max().unwrap_or(0)
    );
}
