//! The satellite minimum interval holds across a restart: `fieldnode` with
//! `sbd_min_interval_ms` of an hour opens one session, exits with items
//! still waiting, and a second run on the same data directory opens none,
//! because the first session's time is persisted (`sbd-last-session`). A node
//! rebooting in a brown-out loop must not open a session at every boot.

mod common;

use std::process::Stdio;
use std::time::Duration;

use hil_tests::sbd_emu::SbdEmulator;

fn run(
    scene: &std::path::Path,
    data: &std::path::Path,
    config: &std::path::Path,
    log: &std::path::Path,
) {
    let mut child = common::node_run(scene, data, &["--speed", "max"])
        .arg("--config")
        .arg(config)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap();
    let status = common::wait_or_fail(&mut child, Duration::from_secs(60), log);
    assert!(
        status.success(),
        "fieldnode failed: {}",
        std::fs::read_to_string(log).unwrap_or_default()
    );
}

#[test]
fn the_satellite_minimum_interval_survives_a_restart() {
    let emu = SbdEmulator::start().expect("modem emulator on a pty");
    emu.set_signal(4);
    let t = tempfile::tempdir().unwrap();
    let scene = t.path().join("scene");
    common::scenegen(
        &scene,
        &["--preset", "mixed", "--seed", "5", "--duration", "600"],
    );
    let config = t.path().join("fieldnode.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[node]
id = "node-r"
[uplink]
enabled = true
round_interval_ms = 100
drain_timeout_ms = 3000
[uplink.scheduler]
sbd_min_priority = "low"
sbd_min_signal_bars = 1
sbd_min_interval_ms = 3600000
sbd_fill_bytes = 60
sbd_urgent_max_wait_ms = 0
sbd_max_wait_ms = 0
[uplink.sbd]
port = "{}"
command_timeout_ms = 800
session_timeout_ms = 1500
credits_per_day = 1000
credits_per_month = 10000
"#,
            emu.path().display()
        ),
    )
    .unwrap();
    let data = t.path().join("data");
    run(&scene, &data, &config, &t.path().join("first.log"));
    let first = emu.sessions();
    assert_eq!(first, 1, "one session within the minimum interval");
    assert!(data.join("sbd-last-session").is_file());
    let (store, _) =
        uplink::EventStore::open(&data.join("store"), &uplink::StoreConfig::default()).unwrap();
    let waiting: u32 = store.queue_depth().iter().sum();
    drop(store);
    assert!(waiting > 0, "nothing left waiting: the test proves nothing");

    run(&scene, &data, &config, &t.path().join("second.log"));
    assert_eq!(
        emu.sessions(),
        first,
        "the restarted node opened a session within the minimum interval"
    );
    let log = std::fs::read_to_string(t.path().join("second.log")).unwrap_or_default();
    assert!(
        log.contains("minimum interval counts from the last session"),
        "{log}"
    );
}
