//! The camera motion trigger on the other scene family's windy scenes
//! (`fieldgen`, whose foliage, crowns and figures were written without
//! reading the trigger), seen the way the node sees them: frames reduced to
//! the analysis size (80x60) and one taken every 500 ms. Crowns swinging in
//! gusts and gales must seldom pass for something crossing, and the figures
//! crossing the view in wind must still be found.

use std::path::Path;

use field_tools::score::read_labels;
use fusion::MotionConfig;
use fusion::motion::MotionTrigger;
use hil_tests::fieldgen::{self, Condition, Options};
use messages::EventClass;
use node::sensors::Camera;
use node::sensors::replay::ReplayCamera;

const SEEDS: std::ops::RangeInclusive<u64> = 1..=6;
const MINUTES: f64 = 30.0;

/// Half an hour of a windy fieldgen scene, camera only, 64x48 at 2 fps.
fn windy(seed: u64, background_only: bool, dir: &Path) {
    let opts = Options {
        duration_s: MINUTES * 60.0,
        condition: Condition::Windy,
        background_only,
        camera_size: Some((64, 48)),
        camera_fps: Some(2),
        audio: false,
        climate: false,
        ..Options::new(seed)
    };
    fieldgen::generate(&opts, dir).unwrap();
}

/// The camera's activations over the scene in `dir`, (start, end) in s.
fn camera_activations(dir: &Path) -> Vec<(f64, f64)> {
    let mut camera = ReplayCamera::open(&dir.join("camera.y4m"), 0, 80, 60).unwrap();
    let mut trigger = MotionTrigger::new(&MotionConfig::default());
    let mut t = 0i64;
    while let Some(frame) = camera.capture(t).unwrap() {
        trigger.push(&frame);
        t += 500;
    }
    trigger.finish();
    trigger
        .take()
        .iter()
        .map(|a| (a.start_ms as f64 / 1e3, a.end_ms as f64 / 1e3))
        .collect()
}

/// The scene's labelled events (not background episodes), (start, end) in s.
fn events(dir: &Path) -> Vec<(f64, f64)> {
    read_labels(&dir.join("labels.csv"))
        .unwrap()
        .iter()
        .filter(|l| l.class != EventClass::Background)
        .map(|l| (l.start_ms as f64 / 1e3, l.end_ms as f64 / 1e3))
        .collect()
}

fn overlap(a: (f64, f64), b: (f64, f64)) -> bool {
    a.0 <= b.1 && b.0 <= a.1
}

#[test]
fn crowns_in_gusts_and_gales_seldom_pass_for_crossings() {
    // Six windy backgrounds (wind 5 to 20 m/s): nothing crosses the view.
    // Following the crowns alone, the trigger opened 35 activations in
    // these three hours; keeping where foliage moves in place, 10.
    let mut per_seed = Vec::new();
    for seed in SEEDS {
        let t = tempfile::tempdir().unwrap();
        windy(seed, true, t.path());
        per_seed.push(camera_activations(t.path()).len());
    }
    let total: usize = per_seed.iter().sum();
    let hours = SEEDS.count() as f64 * MINUTES / 60.0;
    assert!(
        total as f64 <= 5.0 * hours,
        "{total} camera activations in {hours} h of wind without anything crossing: {per_seed:?}"
    );
}

#[test]
fn figures_crossing_in_wind_are_still_found() {
    // The same six seeds with their events: 34 of the 75 labelled events
    // (many are heard, not seen) overlap a camera activation when the
    // crowns are followed alone, 31 when foliage moving in place is known.
    let (mut found, mut labelled, mut stray) = (0, 0, 0);
    for seed in SEEDS {
        let t = tempfile::tempdir().unwrap();
        windy(seed, false, t.path());
        let acts = camera_activations(t.path());
        let evs = events(t.path());
        labelled += evs.len();
        found += evs
            .iter()
            .filter(|&&e| acts.iter().any(|&a| overlap(a, e)))
            .count();
        stray += acts
            .iter()
            .filter(|&&a| !evs.iter().any(|&e| overlap(a, e)))
            .count();
    }
    assert!(
        found >= 28,
        "{found} of {labelled} events found by the camera"
    );
    assert!(
        stray <= 15,
        "{stray} camera activations outside every event"
    );
}
