//! Detection with the triggers alone, on generated scenes: the node replays
//! a scene of each preset at `--speed max`, and its stored events are scored
//! against the scene's labels with `field_tools::score`. The table is
//! printed (`--nocapture`); the asserts are floors well under what the
//! trigger-only detector measures, so that a regression fails the test.
//!
//! `HIL_DETECTION_SECONDS` (default 600) sets each scene's length.

use std::path::Path;

use field_tools::score;

mod common;

fn run_preset(dir: &Path, preset: &str, seed: u64, seconds: u64) -> score::ScoreReport {
    let scene = dir.join(format!("{preset}-scene"));
    let data = dir.join(format!("{preset}-data"));
    common::scenegen(
        &scene,
        &[
            "--preset",
            preset,
            "--seed",
            &seed.to_string(),
            "--duration",
            &seconds.to_string(),
        ],
    );
    // Triggers alone: no fusion model (tests/fusion_model.rs covers the model).
    let config = dir.join("triggers-only.toml");
    std::fs::write(&config, "[fusion]\nmodel = \"\"\n").unwrap();
    let out = common::node_run(&scene, &data, &["--speed", "max", "--config"])
        .arg(&config)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    common::score_events(&scene, &data, seconds).1
}

#[test]
fn triggers_find_the_labelled_events() {
    let seconds: u64 = std::env::var("HIL_DETECTION_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(600);
    let t = tempfile::tempdir().unwrap();
    // Seeds the detector was never tuned on.
    let cases = [
        ("wildlife", 101, "wildlife"),
        ("machinery", 102, "machinery_anomaly"),
        ("human", 103, "human_activity"),
    ];
    eprintln!(
        "{:<10} {:<18} {:>6} {:>4} {:>4} {:>4} {:>5} {:>9} {:>7}",
        "preset", "class", "labels", "tp", "fp", "fn", "f1", "detected", "fa/hour"
    );
    for (preset, seed, class) in cases {
        let r = run_preset(t.path(), preset, seed, seconds);
        let c = r.classes.iter().find(|c| c.class == class).unwrap();
        eprintln!(
            "{preset:<10} {class:<18} {:>6} {:>4} {:>4} {:>4} {:>5.2} {:>9} {:>7.1}",
            c.labels, c.tp, c.fp, c.fn_, c.f1, c.detected, r.false_alarms_per_hour
        );
        assert!(c.labels >= 3, "{preset}: too few labels to judge");
        assert!(
            c.detected as f64 >= 0.8 * c.labels as f64,
            "{preset}: detected {} of {} labels",
            c.detected,
            c.labels
        );
        assert!(c.f1 >= 0.7, "{preset}: {class} F1 {:.2}", c.f1);
    }
    let r = run_preset(t.path(), "background", 104, seconds);
    eprintln!(
        "background: {} events, {:.1} false alarms per hour",
        r.events, r.false_alarms_per_hour
    );
    assert!(
        r.false_alarms_per_hour <= 6.0,
        "background: {:.1} false alarms per hour",
        r.false_alarms_per_hour
    );
}
