//! The node on simulated hardware, end to end through the `fieldnode`
//! program: replay speed does not change what is detected, SIGTERM stops it
//! cleanly with everything stored, sensors may be absent, a low battery
//! makes the power policy skip the camera and say why, and the periodic
//! status line and the run summary carry the detector's counters.

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::Duration;

use messages::EventJson;

mod common;

fn scene(dir: &Path, name: &str, args: &[&str]) -> PathBuf {
    let out = dir.join(name);
    common::scenegen(&out, args);
    out
}

fn node(scene: &Path, data: &Path, extra: &[&str]) -> Output {
    common::node_run(scene, data, extra)
        .env("RUST_LOG", "info")
        .output()
        .unwrap()
}

/// Stored events without their ids (which differ between stores).
fn stored(out: &Output) -> Vec<EventJson> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v.get("stored").cloned())
        .map(|v| {
            let mut e: EventJson = serde_json::from_value(v).unwrap();
            e.id = 0;
            e
        })
        .collect()
}

/// The demo scene of `seed` replayed at full speed with `config` (TOML).
fn demo_with_config(dir: &Path, seed: &str, config: &str) -> Output {
    let s = scene(dir, "s", &["--preset", "demo", "--seed", seed]);
    let cfg = dir.join("config.toml");
    std::fs::write(&cfg, config).unwrap();
    node(
        &s,
        &dir.join("d"),
        &["--speed", "max", "--config", cfg.to_str().unwrap()],
    )
}

fn summary(out: &Output) -> serde_json::Value {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find_map(|v| v.get("summary").cloned())
        .unwrap_or_else(|| {
            panic!(
                "no summary; stderr:\n{}",
                String::from_utf8_lossy(&out.stderr)
            )
        })
}

#[test]
fn speed_max_and_real_time_replay_store_the_same_events() {
    let t = tempfile::tempdir().unwrap();
    let s = scene(t.path(), "s", &["--preset", "demo", "--seed", "31"]);
    let fast = node(&s, &t.path().join("a"), &["--speed", "max"]);
    let timed = node(&s, &t.path().join("b"), &["--speed", "30"]);
    assert!(fast.status.success() && timed.status.success());
    let (a, b) = (stored(&fast), stored(&timed));
    assert!(a.len() >= 3, "too few events to compare: {a:?}");
    assert_eq!(a, b, "replay speed changed the detections");
}

#[test]
fn sigterm_stops_cleanly_with_everything_stored() {
    let t = tempfile::tempdir().unwrap();
    let s = scene(t.path(), "s", &["--preset", "demo", "--seed", "7"]);
    let data = t.path().join("d");
    // Real time at 20x: the demo's first events are stored within 3 s.
    // The 120 s scene takes 6 s at 20x: the signal comes halfway.
    let child = common::node_run(&s, &data, &["--speed", "20"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(3000));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "exit {:?}:\n{err}", out.status);
    assert!(err.contains("shutdown requested"), "{err}");
    let events = stored(&out);
    let sum = summary(&out);
    assert_eq!(sum["stored"].as_u64(), Some(events.len() as u64));
    assert_eq!(sum["unstored"].as_u64(), Some(0));
    // The scene was cut short: less than all of it was replayed.
    assert!(sum["scene_ms"].as_i64().unwrap() < 120_000, "{sum}");
    let (store, _) =
        uplink::EventStore::open(&data.join("store"), &uplink::StoreConfig::default()).unwrap();
    assert_eq!(store.len(), events.len());
}

#[test]
fn detection_goes_on_with_sensors_absent() {
    let t = tempfile::tempdir().unwrap();
    for (name, flags) in [
        ("no-camera", vec!["--no-camera"]),
        ("no-audio", vec!["--no-audio"]),
        ("audio-only", vec!["--no-camera", "--no-climate"]),
        ("camera-only", vec!["--no-audio", "--no-climate"]),
    ] {
        let mut args = vec!["--preset", "demo", "--seed", "7"];
        args.extend(flags);
        let s = scene(t.path(), name, &args);
        let out = node(
            &s,
            &t.path().join(format!("{name}-data")),
            &["--speed", "max"],
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{name}:\n{err}");
        assert!(
            err.contains("sensor absent"),
            "{name}: absence not logged:\n{err}"
        );
        let events = stored(&out);
        assert!(!events.is_empty(), "{name}: nothing detected");
        for e in &events {
            if name.contains("no-camera") || name == "audio-only" {
                assert_eq!(e.score_camera, None, "{name}: {e:?}");
            }
            if name == "no-audio" || name == "camera-only" {
                assert_eq!(e.score_audio, None, "{name}: {e:?}");
            }
        }
    }
}

#[test]
fn the_status_line_and_the_summary_carry_the_detector_counters() {
    let t = tempfile::tempdir().unwrap();
    let out = demo_with_config(t.path(), "7", "[node]\nstatus_interval_ms = 5000\n");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    let line = err
        .lines()
        .find(|l| l.contains(" status") && l.contains("soc="))
        .unwrap_or_else(|| panic!("no status line:\n{err}"));
    for field in [
        "events_cut_at_max=",
        "events_joined=",
        "events_uncertain=",
        "uncertain_background=",
        "sun_heat_rises=",
    ] {
        assert!(line.contains(field), "{field} missing: {line}");
    }
    let sum = summary(&out);
    for field in [
        "events_cut_at_max",
        "events_joined",
        "events_uncertain",
        "uncertain_background",
        "sun_heat_rises",
    ] {
        assert!(sum[field].is_u64(), "{field} missing: {sum}");
    }
}

#[test]
fn a_low_battery_turns_the_camera_off_and_says_why() {
    let t = tempfile::tempdir().unwrap();
    let out = demo_with_config(
        t.path(),
        "7",
        "[power.simulation]\ninitial_soc = 0.10\nsolar_peak_w = 0.0\n",
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("skipping camera frames") && err.contains("critical mode"),
        "{err}"
    );
    let sum = summary(&out);
    assert_eq!(sum["camera_frames"].as_u64(), Some(0), "{sum}");
    assert!(sum["camera_skipped"].as_u64().unwrap() > 0, "{sum}");
    assert_eq!(sum["power_mode"], "critical");
    // Audio and climate go on: the demo's events are still found.
    let events = stored(&out);
    assert!(events.len() >= 2, "{events:?}");
    assert!(events.iter().all(|e| e.score_camera.is_none()));
}

#[test]
fn a_corrupt_store_is_moved_aside_and_the_node_keeps_running() {
    let t = tempfile::tempdir().unwrap();
    let s = scene(t.path(), "s", &["--preset", "demo", "--seed", "7"]);
    let data = t.path().join("d");
    let first = node(&s, &data, &["--speed", "max"]);
    assert!(first.status.success());
    let before = stored(&first).len();
    // Garbage over sled's files, as a failing card might leave them.
    for name in ["conf", "db"] {
        let p = data.join("store").join(name);
        let len = std::fs::metadata(&p)
            .map(|m| m.len())
            .unwrap_or(4096)
            .max(64) as usize;
        std::fs::write(&p, vec![0x5Au8; len]).unwrap();
    }
    let out = node(&s, &data, &["--speed", "max"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("quarantined"), "no clear log line:\n{err}");
    let sum = summary(&out);
    let moved = sum["store_quarantined"]
        .as_str()
        .expect("summary names the quarantine");
    assert!(Path::new(moved).is_dir(), "{moved}");
    // The fresh store works, and its ids stay above the lost ones.
    let events = stored(&out);
    assert_eq!(events.len(), before);
    let ids: Vec<u64> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v["stored"]["id"].as_u64())
        .collect();
    assert!(ids.iter().all(|&id| id > before as u64), "{ids:?}");
}
