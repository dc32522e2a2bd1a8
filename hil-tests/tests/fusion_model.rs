//! The fusion model in the node, end to end: the node replays generated
//! scenes (seeds the model never saw) with the committed 4-bit model on the
//! real ONNX Runtime, and its stored events are scored against the labels;
//! and the node keeps working, on its triggers, when the runtime library is
//! missing or the model file was tampered with.
//!
//! `HIL_FUSION_SECONDS` (default 600) sets each scene's length. The ONNX
//! Runtime library comes from `scripts/setup` (`scripts/install-onnxruntime`).

use std::path::{Path, PathBuf};

use field_tools::score;
use messages::{EventRecord, ModelVersion};

mod common;

const MODEL_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../models/fusion");

struct Run {
    report: score::ScoreReport,
    events: Vec<EventRecord>,
    stderr: String,
}

fn scene(dir: &Path, preset: &str, seed: u64, seconds: u64) -> PathBuf {
    let scene = dir.join(format!("{preset}-{seed}"));
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
    scene
}

fn run(dir: &Path, scene: &Path, seconds: u64, fusion_toml: &str, name: &str) -> Run {
    let data = dir.join(format!("{name}-data"));
    let config = dir.join(format!("{name}.toml"));
    std::fs::write(&config, format!("[fusion]\n{fusion_toml}\n")).unwrap();
    let out = common::node_run(scene, &data, &["--speed", "max", "--config"])
        .arg(&config)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{stderr}");
    let (events, report) = common::score_events(scene, &data, seconds);
    Run {
        report,
        events,
        stderr,
    }
}

fn seconds() -> u64 {
    std::env::var("HIL_FUSION_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(600)
}

fn model_line() -> String {
    format!("model = \"{MODEL_DIR}/fusion.int4.manifest.toml\"")
}

#[test]
fn the_model_classifies_unseen_scenes() {
    let t = tempfile::tempdir().unwrap();
    let secs = seconds();
    eprintln!(
        "{:<10} {:<18} {:>6} {:>4} {:>4} {:>4} {:>5}",
        "preset", "class", "labels", "tp", "fp", "fn", "f1"
    );
    for (preset, seed, class) in [
        ("wildlife", 301, "wildlife"),
        ("machinery", 302, "machinery_anomaly"),
        ("human", 303, "human_activity"),
    ] {
        let s = scene(t.path(), preset, seed, secs);
        let r = run(t.path(), &s, secs, &model_line(), preset);
        let c = r.report.classes.iter().find(|c| c.class == class).unwrap();
        eprintln!(
            "{preset:<10} {class:<18} {:>6} {:>4} {:>4} {:>4} {:>5.2}",
            c.labels, c.tp, c.fp, c.fn_, c.f1
        );
        assert!(c.labels >= 3, "{preset}: too few labels to judge");
        // The trigger-only detector measures 0.7..0.8 on wildlife and human
        // activity; the model measures 0.9 or more (docs/performance.md).
        assert!(c.f1 >= 0.85, "{preset}: {class} F1 {:.2}", c.f1);
        assert!(!r.events.is_empty());
        for e in &r.events {
            assert_eq!(
                e.model,
                ModelVersion(common::update::base_version() as u32),
                "{e:?}"
            );
            // Every modality of these scenes was present: each has a measured
            // contribution, and the winning class's confidence is a probability.
            assert!(
                e.scores.audio.is_some() && e.scores.camera.is_some(),
                "{e:?}"
            );
            assert!(e.confidence.0 <= 1000);
        }
    }
    let s = scene(t.path(), "background", 304, secs);
    let r = run(t.path(), &s, secs, &model_line(), "background");
    eprintln!(
        "background: {} events, {:.1} false events per hour",
        r.report.events, r.report.false_alarms_per_hour
    );
    assert!(
        r.report.false_alarms <= 1,
        "background: {} false events",
        r.report.false_alarms
    );
}

#[test]
fn without_the_runtime_library_the_node_runs_on_its_triggers() {
    let t = tempfile::tempdir().unwrap();
    let s = scene(t.path(), "mixed", 305, 300);
    let r = run(
        t.path(),
        &s,
        300,
        &format!(
            "{}\nonnxruntime = \"{}\"",
            model_line(),
            t.path().join("no-such-libonnxruntime.so").display()
        ),
        "nolib",
    );
    assert!(
        r.stderr.contains("triggers only") || r.stderr.contains("keep the triggers"),
        "the fallback is not reported:\n{}",
        r.stderr
    );
    assert!(!r.events.is_empty(), "no events without the model");
    assert!(
        r.events
            .iter()
            .all(|e| e.model == ModelVersion::TRIGGERS_ONLY),
        "an event claims a model that could not run"
    );
}

#[test]
fn a_tampered_model_is_refused_and_the_node_runs_on_its_triggers() {
    let t = tempfile::tempdir().unwrap();
    let models = t.path().join("models");
    std::fs::create_dir(&models).unwrap();
    for f in ["fusion.int4.manifest.toml", "fusion.int4.onnx"] {
        std::fs::copy(Path::new(MODEL_DIR).join(f), models.join(f)).unwrap();
    }
    let model = models.join("fusion.int4.onnx");
    let mut bytes = std::fs::read(&model).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x01;
    std::fs::write(&model, &bytes).unwrap();
    let s = scene(t.path(), "mixed", 306, 300);
    let r = run(
        t.path(),
        &s,
        300,
        &format!(
            "model = \"{}\"",
            models.join("fusion.int4.manifest.toml").display()
        ),
        "tampered",
    );
    assert!(r.stderr.contains("sha256"), "{}", r.stderr);
    assert!(!r.events.is_empty());
    assert!(
        r.events
            .iter()
            .all(|e| e.model == ModelVersion::TRIGGERS_ONLY)
    );
}
