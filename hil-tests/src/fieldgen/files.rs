//! `scene.toml` and `labels.csv`.

use std::fmt::Write as _;
use std::path::Path;

use super::plan::Plan;
use super::{FieldgenError, VERSION};

fn quoted(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

/// A one-line description of what the scene contains.
pub fn describe(plan: &Plan) -> String {
    let mut d = format!("fieldgen scene, condition {}", plan.condition);
    let count = |class: &str| plan.labels.iter().filter(|l| l.class == class).count();
    let _ = write!(d, "; wind {:.1} m/s at the start", plan.wind.speed.at(0.0));
    if !plan.rain.showers.is_empty() {
        d.push_str("; rain");
    }
    if !plan.insects.is_empty() {
        d.push_str("; insect chorus");
    }
    if plan.machine.is_some() {
        d.push_str("; machine humming");
    }
    if plan.sky.is_night(0.0) {
        d.push_str("; night");
    }
    let _ = write!(
        d,
        "; events: {} wildlife, {} human activity, {} machinery anomaly; {} background episodes",
        count("wildlife"),
        count("human_activity"),
        count("machinery_anomaly"),
        count("background")
    );
    d
}

/// Writes `scene.toml`.
pub fn write_scene_toml(plan: &Plan, path: &Path) -> Result<(), FieldgenError> {
    let preset = format!("fieldgen-{}", plan.condition);
    let text = format!(
        "start = {}\nname = {}\ndescription = {}\n\n[generator]\npreset = {}\nseed = {}\nversion = {}\n",
        quoted(&plan.start_text()),
        quoted(&format!("{preset}-{}", plan.seed)),
        quoted(&describe(plan)),
        quoted(&preset),
        plan.seed,
        VERSION,
    );
    std::fs::write(path, text).map_err(|e| FieldgenError::io(path, e))
}

/// Writes `labels.csv`.
pub fn write_labels(plan: &Plan, path: &Path) -> Result<(), FieldgenError> {
    let mut text = String::from("start_s,end_s,class\n");
    for l in &plan.labels {
        let _ = writeln!(text, "{:.2},{:.2},{}", l.start, l.end, l.class);
    }
    std::fs::write(path, text).map_err(|e| FieldgenError::io(path, e))
}
