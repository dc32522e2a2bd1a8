//! A deep sleep and the wake after it, through the `fieldnode` program on
//! simulated hardware, a fake sysfs tree and the paused clock (`--speed
//! max`): the real power policy calls the sleep at a low battery after its
//! minimum dwell; the node stores and flushes everything, sets the RTC wake
//! alarm in the fake tree, writes its sleep record and halts (the
//! simulated halt ends the run as a power-off would). The next start, with
//! the clock past the planned wake, is an RTC wake; every event stored
//! before the sleep is still in the store, and a status record reports the
//! sleep with its reason and length. Without a writable wake alarm the
//! node does not stop for a sleep nothing would end.

use std::collections::BTreeSet;
use std::path::Path;

use messages::{Message, SleepReasonCode, WakeCause};

mod common;

/// A node's stdout: the ids it reported stored, and its summary.
fn run(scene: &Path, data: &Path, config: &Path) -> (BTreeSet<u64>, serde_json::Value, String) {
    let out = common::node_run(scene, data, &["--speed", "max", "--config"])
        .arg(config)
        .env("RUST_LOG", "info")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "{stderr}");
    let mut ids = BTreeSet::new();
    let mut summary = None;
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if let Some(id) = v.pointer("/stored/id").and_then(|i| i.as_u64()) {
            ids.insert(id);
        } else if let Some(s) = v.get("summary") {
            summary = Some(s.clone());
        }
    }
    let summary = summary.unwrap_or_else(|| panic!("no summary; stderr:\n{stderr}"));
    (ids, summary, stderr)
}

/// A port nothing listens on: the MQTT link never comes up, so every
/// record stays in the outbox (status records are made only with a link).
fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

fn config(dir: &Path, name: &str, sys: &Path, soc: f64) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(
        &p,
        format!(
            "[node]\nid = \"sleeper\"\n\n\
             [uplink]\nenabled = true\ndrain_timeout_ms = 0\n\n\
             [uplink.mqtt]\nhost = \"127.0.0.1\"\nport = {}\nplain_tcp = true\n\n\
             [power]\ninterval_ms = 5000\n\n\
             [power.policy]\nmin_dwell_ms = 60000\nsleep_below_soc = 0.10\n\n\
             [power.simulation]\ninitial_soc = {soc}\nsolar_peak_w = 0.0\n\n\
             [power.sysfs]\nroot = \"{}\"\n\n\
             [power.sleep]\nmax_sleep_s = 21600\nrecovery_h = 9.0\n",
            closed_port(),
            sys.display()
        ),
    )
    .unwrap();
    p
}

/// The demo scene with another start time.
fn scene_at(src: &Path, dst: &Path, start: &str) {
    std::fs::create_dir_all(dst).unwrap();
    for f in ["audio.wav", "camera.y4m", "climate.csv", "labels.csv"] {
        std::fs::copy(src.join(f), dst.join(f)).unwrap();
    }
    std::fs::write(dst.join("scene.toml"), format!("start = \"{start}\"\n")).unwrap();
}

#[test]
fn a_deep_sleep_loses_nothing_and_the_next_start_is_an_rtc_wake() {
    let t = tempfile::tempdir().unwrap();
    let demo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenes/demo");
    let data = t.path().join("data");
    // The fake sysfs tree: an RTC with no alarm set.
    let sys = t.path().join("sys-root");
    let alarm = sys.join("sys/class/rtc/rtc0/wakealarm");
    std::fs::create_dir_all(alarm.parent().unwrap()).unwrap();
    std::fs::write(&alarm, "").unwrap();

    // First boot: 8 % and no sun. The demo starts at 07:30 UTC; after the
    // 60 s dwell the policy calls the sleep. The wake: 09:00 (solar
    // recovery, local solar time = UTC here) is before the 6 h cap.
    let low = config(t.path(), "low.toml", &sys, 0.08);
    let (before, s1, err1) = run(&demo, &data, &low);
    assert_eq!(s1["boot"]["cause"], "cold", "{s1}");
    let sleep = &s1["sleep"];
    assert_eq!(sleep["reason"], "low_battery", "{s1}\n{err1}");
    assert_eq!(sleep["halt"], "simulated");
    assert_eq!(sleep["halted"], true, "{s1}\n{err1}");
    assert_eq!(sleep["bound"], "recovery");
    let planned_ms = sleep["planned_wake_ms"].as_i64().unwrap();
    // 2026-06-01T09:00:00Z.
    assert_eq!(planned_ms, 1_780_304_400_000);
    // The run ended at the sleep, well before the scene's 120 s.
    let covered = s1["scene_ms"].as_i64().unwrap();
    assert!((60_000..120_000).contains(&covered), "{covered}");
    assert!(err1.contains("halting for deep sleep"), "{err1}");
    assert!(
        !before.is_empty(),
        "the demo stores events in its first minute"
    );
    // The RTC alarm holds the planned time, in seconds.
    assert_eq!(
        std::fs::read_to_string(&alarm).unwrap().trim(),
        (planned_ms / 1000).to_string()
    );

    // The board wakes at 09:00:07 (the alarm left as it was: the wake is
    // recognised from the clock). The sun has charged the battery.
    let woke = t.path().join("woke");
    scene_at(&demo, &woke, "2026-06-01T09:00:07Z");
    let high = config(t.path(), "high.toml", &sys, 0.6);
    let (after, s2, err2) = run(&woke, &data, &high);
    assert_eq!(s2["boot"]["cause"], "rtc", "{s2}\n{err2}");
    assert!(s2.get("sleep").is_none(), "{s2}");
    assert!(err2.contains("woke from deep sleep"), "{err2}");
    let slept_at_ms = 1_780_299_000_000 + 60_000; // 07:30 + the dwell
    let last = &s2["boot"]["last_sleep"];
    assert_eq!(last["wake"], "rtc");
    assert_eq!(
        last["planned_s"].as_i64(),
        Some((planned_ms - slept_at_ms) / 1000)
    );
    assert_eq!(
        last["slept_s"].as_i64(),
        Some((planned_ms + 7_000 - slept_at_ms) / 1000)
    );

    // Nothing stored before the sleep is lost; the second run adds to it.
    let (store, _) =
        uplink::EventStore::open(&data.join("store"), &uplink::StoreConfig::default()).unwrap();
    let mut kept = BTreeSet::new();
    let mut sleeps = Vec::new();
    for m in store.iter_messages_from(0) {
        match m.unwrap() {
            Message::Event(e) => {
                kept.insert(e.id);
            }
            Message::Status(s) => sleeps.push(s.clock.sleep),
        }
    }
    let lost: Vec<_> = before.difference(&kept).collect();
    assert!(lost.is_empty(), "lost across the sleep: {lost:?}");
    assert!(after.iter().all(|id| kept.contains(id)));
    assert!(after.iter().all(|id| before.iter().all(|b| b < id)));
    // The status record made at the wake reports the sleep.
    let reported: Vec<_> = sleeps.iter().flatten().collect();
    assert!(
        !reported.is_empty(),
        "no status record reports the sleep: {sleeps:?}"
    );
    for s in reported {
        assert_eq!(s.reason, SleepReasonCode::LowBattery);
        assert_eq!(s.wake, WakeCause::Rtc);
        assert_eq!(
            i64::from(s.slept_s),
            (planned_ms + 7_000 - slept_at_ms) / 1000
        );
        assert_eq!(i64::from(s.planned_s), (planned_ms - slept_at_ms) / 1000);
    }
}

#[test]
fn without_a_writable_wake_alarm_the_node_stays_awake() {
    let t = tempfile::tempdir().unwrap();
    let demo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenes/demo");
    // A sysfs tree without an RTC: nothing could end the sleep.
    let sys = t.path().join("no-rtc");
    std::fs::create_dir_all(&sys).unwrap();
    let low = config(t.path(), "low.toml", &sys, 0.08);
    let (stored, s, err) = run(&demo, &t.path().join("data"), &low);
    assert!(s.get("sleep").is_none(), "{s}");
    assert_eq!(s["scene_ms"].as_i64(), Some(120_000), "{s}");
    assert_eq!(s["power_mode"], "critical");
    assert!(
        err.contains("deep sleep called but the RTC wake alarm cannot be set"),
        "{err}"
    );
    // Said once, not at every reading.
    assert_eq!(
        err.matches("cannot be set; staying awake").count(),
        1,
        "{err}"
    );
    assert!(!stored.is_empty());
    assert!(!t.path().join("data/sleep.json").exists());
}

/// A fake sysfs tree with an RTC whose alarm is unset.
fn rtc_tree(root: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let sys = root.join("sys-root");
    let alarm = sys.join("sys/class/rtc/rtc0/wakealarm");
    std::fs::create_dir_all(alarm.parent().unwrap()).unwrap();
    std::fs::write(&alarm, "").unwrap();
    (sys, alarm)
}

#[test]
fn inside_a_listening_window_the_node_stays_awake_at_a_low_charge() {
    let t = tempfile::tempdir().unwrap();
    let demo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenes/demo");
    let (sys, alarm) = rtc_tree(t.path());
    // 05:10 UTC is inside the default dawn window (05:00-06:00 local solar
    // time, UTC here); 8 % is below sleep_below_soc but above survival.
    let dawn = t.path().join("dawn");
    scene_at(&demo, &dawn, "2026-06-01T05:10:00Z");
    let low = config(t.path(), "low.toml", &sys, 0.08);
    let (stored, s, err) = run(&dawn, &t.path().join("data"), &low);
    assert!(s.get("sleep").is_none(), "{s}\n{err}");
    assert_eq!(s["scene_ms"].as_i64(), Some(120_000), "{s}");
    assert!(!err.contains("calls for deep sleep"), "{err}");
    assert_eq!(std::fs::read_to_string(&alarm).unwrap().trim(), "");
    assert!(!stored.is_empty());
}

#[test]
fn a_sleep_before_a_listening_window_wakes_for_its_start() {
    let t = tempfile::tempdir().unwrap();
    let demo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenes/demo");
    let (sys, alarm) = rtc_tree(t.path());
    // 04:30 UTC, 8 %, no sun: the sleep comes after the 60 s dwell, and
    // the dawn window's start (05:00) is the earliest bound.
    let night = t.path().join("night");
    scene_at(&demo, &night, "2026-06-01T04:30:00Z");
    let low = config(t.path(), "low.toml", &sys, 0.08);
    let (_, s, err) = run(&night, &t.path().join("data"), &low);
    let sleep = &s["sleep"];
    assert_eq!(sleep["halted"], true, "{s}\n{err}");
    assert_eq!(sleep["bound"], "listening", "{s}");
    // 2026-06-01T05:00:00Z.
    let planned_ms = 1_780_290_000_000_i64;
    assert_eq!(sleep["planned_wake_ms"].as_i64(), Some(planned_ms));
    assert_eq!(
        std::fs::read_to_string(&alarm).unwrap().trim(),
        (planned_ms / 1000).to_string()
    );
}
