//! The accelerator's switched supply in the node's real event loop
//! ([`node::run_scene`] on tokio's paused clock, as `--speed max`): each
//! burst switches the supply on (through the simulated load switch of a
//! scene replay) and the idle release switches it off again, the loads on
//! for the run stay on, the run summary counts the wakes and their energy,
//! and the events stored are exactly those of the same replay without
//! switched loads.
//!
//! Uses the committed fusion model on ONNX Runtime (`scripts/setup`
//! installs it), since only a burst that runs a model wakes the accelerator.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use messages::EventRecord;
use node::clock::{Clock, ReplayClock};
use node::scene::Scene;
use node::{Config, RunSummary};

/// Length of the generated scene, seconds.
const SCENE_S: u32 = 90;
/// Loud 3 kHz tone bursts, (start_s, end_s): 25 s apart, far more than the
/// idle release below.
const TONES: [(f64, f64); 3] = [(10.0, 12.0), (35.0, 36.5), (60.0, 63.0)];
/// `[fusion] idle_release_ms` of the runs.
const IDLE_RELEASE_MS: u64 = 5_000;
/// The accelerator's settle time and draw.
const SETTLE_MS: u64 = 300;
const DRAW_MW: f64 = 2_500.0;

/// Quiet noise with the [`TONES`] in `audio.wav`; no camera or climate.
fn write_scene(dir: &Path) -> PathBuf {
    let s = dir.join("scene");
    std::fs::create_dir_all(&s).unwrap();
    std::fs::write(
        s.join("scene.toml"),
        "start = \"2026-06-01T05:30:00Z\"\nname = \"switched-loads\"\n",
    )
    .unwrap();
    common::write_tone_wav(&s.join("audio.wav"), SCENE_S, &TONES);
    s
}

async fn replay(
    scene_dir: &Path,
    data_dir: &Path,
    loads: Option<&str>,
) -> (RunSummary, Vec<EventRecord>) {
    let mut text = format!("[fusion]\nidle_release_ms = {IDLE_RELEASE_MS}\n");
    if let Some(l) = loads {
        text.push_str(l);
    }
    let mut cfg = Config::from_toml_str(&text).unwrap();
    cfg.scene.dir = scene_dir.to_path_buf();
    cfg.scene.exit_at_end = true;
    cfg.node.data_dir = data_dir.to_path_buf();
    let scene = Scene::open(scene_dir).unwrap();
    let clock: Arc<dyn Clock> = Arc::new(ReplayClock::new(scene.meta.start_ms, 1.0));
    let run = node::run_scene(
        &cfg,
        &scene,
        clock,
        std::future::pending::<()>(),
        Box::new(|_| {}),
    );
    let summary = tokio::time::timeout(Duration::from_secs(3600), run)
        .await
        .expect("the replay did not finish")
        .unwrap();
    let (store, _) = node::node::open_store(data_dir, &cfg).unwrap();
    let stored = store.iter_from(0).map(Result::unwrap).collect();
    (summary, stored)
}

#[tokio::test(start_paused = true)]
async fn each_burst_wakes_the_accelerator_supply_and_the_idle_release_switches_it_off() {
    let t = tempfile::tempdir().unwrap();
    let scene = write_scene(t.path());
    let loads = format!(
        "[power.loads.accelerator]\npin = 17\nsettle_ms = {SETTLE_MS}\ndraw_mw = {DRAW_MW}\n\
         [power.loads.sensors]\npin = 5\nsettle_ms = 50\ndraw_mw = 20\n\
         [power.loads.modem]\npin = 22\nsettle_ms = 500\ndraw_mw = 250\n"
    );

    let (plain, plain_events) = replay(&scene, &t.path().join("plain"), None).await;
    assert!(plain.loads.is_none(), "no [power.loads]: no switched loads");
    let model = plain.sensors.get("model").map(|s| s.health.as_str());
    assert_eq!(
        model,
        Some("ok"),
        "the fusion model must run (scripts/setup installs ONNX Runtime)"
    );
    assert!(plain.bursts > 0, "{plain:#?}");

    let (s, events) = replay(&scene, &t.path().join("switched"), Some(&loads)).await;
    assert_eq!(
        events, plain_events,
        "switching the supply changes no event"
    );
    assert_eq!(s.bursts, plain.bursts);
    let r = s.loads.as_ref().expect("the loads' report");
    assert_eq!(r.switch, "simulated");
    let a = &r.loads["accelerator"];
    eprintln!("{} bursts: {a:?}", s.bursts);
    assert!(!a.on, "off at the end");
    assert_eq!(a.failures, 0);
    // Each wake served at least one burst; the tones are 25 s apart, much
    // more than the idle release, so each burst had its own wake.
    assert_eq!(a.wakes, s.bursts, "one wake per burst");
    // On for the settle time plus the idle release after each burst (the
    // burst itself takes no time on the paused clock), and off in between:
    // switched off by the idle release, not only at the end of the run.
    assert_eq!(a.on_ms, a.wakes * (SETTLE_MS + IDLE_RELEASE_MS));
    let expected_j = DRAW_MW / 1000.0 * a.on_ms as f64 / 1000.0;
    assert!((a.energy_j - expected_j).abs() < 1e-6, "{} J", a.energy_j);

    // The sensors' power and the modem: on once, at the start, for the
    // whole run, off at its end; the modem after the sensors had settled.
    for name in ["sensors", "modem"] {
        let l = &r.loads[name];
        assert_eq!((l.wakes, l.failures, l.on), (1, 0, false), "{name}");
    }
    let (sensors, modem) = (&r.loads["sensors"], &r.loads["modem"]);
    assert!(sensors.on_ms >= u64::from(SCENE_S) * 1000, "{sensors:?}");
    assert_eq!(modem.on_ms, sensors.on_ms - 50);
    let total: f64 = r.loads.values().map(|l| l.energy_j).sum();
    assert!((r.energy_j - total).abs() < 1e-9);
}
