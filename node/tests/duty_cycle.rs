//! Duty-cycling while awake in the node's real event loop
//! ([`node::run_scene`] on tokio's paused clock, as `--speed max`):
//! - in saver mode the camera (behind a simulated load switch) is off until
//!   the audio trigger hears something, on for the hold time, then off, and
//!   the events heard while it was off carry no camera score;
//! - in critical mode the microphone listens 20 s of every minute, its
//!   capture stopped in between, and what it hears in its windows is still
//!   found.
//!
//! Triggers only (no fusion model), so the test does not depend on ONNX
//! Runtime.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use messages::EventRecord;
use node::clock::{Clock, ReplayClock};
use node::scene::Scene;
use node::{Config, RunSummary};

/// Length of the generated scene, seconds.
const SCENE_S: u32 = 120;
/// Loud 3 kHz tone bursts, (start_s, end_s): 50 s apart, more than the
/// camera's hold time, each inside a listening window of the critical
/// mode's default duty cycle (the first 20 s of each minute, the scene
/// starting on a whole minute).
const TONES: [(f64, f64); 2] = [(10.0, 11.5), (65.0, 66.5)];
/// The camera load's settle time, ms.
const SETTLE_MS: u64 = 1_500;

/// Quiet noise with the [`TONES`] in `audio.wav`, and a still camera at
/// 2 frames a second.
fn write_scene(dir: &Path) -> PathBuf {
    let s = dir.join("scene");
    std::fs::create_dir_all(&s).unwrap();
    std::fs::write(
        s.join("scene.toml"),
        "start = \"2026-06-01T05:30:00Z\"\nname = \"duty-cycle\"\n",
    )
    .unwrap();
    common::write_tone_wav(&s.join("audio.wav"), SCENE_S, &TONES);
    let mut y4m = b"YUV4MPEG2 W16 H12 F2:1 Cmono\n".to_vec();
    for _ in 0..SCENE_S * 2 {
        y4m.extend_from_slice(b"FRAME\n");
        y4m.extend(std::iter::repeat_n(110u8, 16 * 12));
    }
    std::fs::write(s.join("camera.y4m"), y4m).unwrap();
    s
}

/// Replays the scene at a fixed state of charge (no sun), with the camera
/// behind a load switch; `extra` is appended to the configuration.
async fn replay(
    scene_dir: &Path,
    data_dir: &Path,
    soc: f64,
    extra: &str,
) -> (RunSummary, Vec<EventRecord>) {
    let text = format!(
        "[power.simulation]\ninitial_soc = {soc}\nsolar_peak_w = 0.0\n\
         [power.loads.camera]\npin = 27\nsettle_ms = {SETTLE_MS}\ndraw_mw = 1000\n{extra}"
    );
    let mut cfg = Config::from_toml_str(&text).unwrap();
    cfg.scene.dir = scene_dir.to_path_buf();
    cfg.scene.exit_at_end = true;
    cfg.node.data_dir = data_dir.to_path_buf();
    cfg.fusion.model = None;
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

fn starts_s(events: &[EventRecord], scene_start_ms: i64) -> Vec<i64> {
    events
        .iter()
        .map(|e| (e.start_ms - scene_start_ms + 500) / 1000)
        .collect()
}

#[tokio::test(start_paused = true)]
async fn in_saver_mode_the_camera_is_off_until_audio_asks_and_on_for_the_hold() {
    let t = tempfile::tempdir().unwrap();
    let scene = write_scene(t.path());
    let start = Scene::open(&scene).unwrap().meta.start_ms;

    let (s, events) = replay(&scene, &t.path().join("saver"), 0.3, "").await;
    assert_eq!(s.power_mode, "saver");
    // One request per tone, each switching the camera on.
    assert_eq!(s.duty.camera_requests_audio, 2, "{:?}", s.duty);
    assert_eq!(s.duty.camera_demand_wakes, 2, "{:?}", s.duty);
    let cam = &s.loads.as_ref().expect("the loads' report").loads["camera"];
    eprintln!(
        "saver: {:?}, {} frames, camera load {cam:?}",
        s.duty, s.camera_frames
    );
    // On at start to open the device, then once per request.
    assert_eq!((cam.wakes, cam.failures, cam.on), (3, 0, false), "{cam:?}");
    // Each request: the settle time, then frames every 2 s until the 30 s
    // hold after the request ends (at most one frame time later).
    let per_hold = (30_000 - SETTLE_MS) / 2_000;
    assert!(
        (2 * per_hold..=2 * (per_hold + 1)).contains(&s.camera_frames),
        "{} frames",
        s.camera_frames
    );
    // The camera's time on: the start's settle time, then each hold (at
    // most one frame time longer), not the whole two minutes.
    assert!(
        (SETTLE_MS + 60_000..=SETTLE_MS + 64_000).contains(&cam.on_ms),
        "{cam:?}"
    );
    // Both tones are found; the camera was off when each began, so it has
    // no score, rather than a score of 0 from a frozen image.
    assert_eq!(starts_s(&events, start), [10, 65], "{events:?}");
    assert!(
        events.iter().all(|e| e.scores.camera.is_none()),
        "{events:?}"
    );

    // With the camera never on demand, saver mode films all the time.
    let (c, continuous) = replay(
        &scene,
        &t.path().join("continuous"),
        0.3,
        "[power.policy]\ncamera_on_demand = []\n",
    )
    .await;
    assert_eq!(c.duty.camera_demand_wakes, 0);
    assert_eq!(c.loads.as_ref().unwrap().loads["camera"].wakes, 1);
    assert!(
        c.camera_frames >= u64::from(SCENE_S) / 2 - 2,
        "{}",
        c.camera_frames
    );
    assert_eq!(starts_s(&continuous, start), [10, 65]);
    assert!(continuous.iter().all(|e| e.scores.camera.is_some()));
}

#[tokio::test(start_paused = true)]
async fn in_critical_mode_the_microphone_listens_a_third_of_the_time_and_still_hears_in_its_windows()
 {
    let t = tempfile::tempdir().unwrap();
    let scene = write_scene(t.path());
    let start = Scene::open(&scene).unwrap().meta.start_ms;
    assert_eq!(start % 60_000, 0, "the scene starts on a whole minute");

    let (s, events) = replay(&scene, &t.path().join("critical"), 0.10, "").await;
    assert_eq!(s.power_mode, "critical");
    eprintln!("critical: {} s of audio, {:?}", s.audio_s, s.duty);
    // Two minutes: two windows of 20 s heard, the capture stopped after
    // each (the last chunk of a window ends on its end).
    assert!(
        (40.0..=41.0).contains(&s.audio_s),
        "{} s of audio",
        s.audio_s
    );
    assert_eq!(s.duty.audio_pauses, 2, "{:?}", s.duty);
    assert!(
        (79.0..=80.0).contains(&s.duty.audio_paused_s),
        "{:?}",
        s.duty
    );
    // Both tones fall in windows and are found; nothing else (a restart
    // is not an event).
    assert_eq!(starts_s(&events, start), [10, 65], "{events:?}");
    // No camera in critical mode, and its load off.
    assert_eq!(s.camera_frames, 0);
    assert!(!s.loads.as_ref().unwrap().loads["camera"].on);
}
