//! `[fusion]`: the fusion model, the accelerator it runs on, and how its
//! answers become event classes.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// The default model manifest, relative to the working directory (the
/// repository root for the README's commands).
pub const DEFAULT_MODEL: &str = "models/fusion/fusion.int4.manifest.toml";

fn empty_is_none<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<PathBuf>, D::Error> {
    let s: Option<PathBuf> = Option::deserialize(d)?;
    Ok(s.filter(|p| !p.as_os_str().is_empty()))
}

/// Settings of the model stage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct FusionConfig {
    /// The model's manifest (`*.manifest.toml`); the model file sits beside
    /// it. Relative paths are relative to the working directory. Default: the
    /// 4-bit model committed in `models/fusion/`. Set it to `""` for no
    /// model (the triggers classify alone).
    #[serde(deserialize_with = "empty_is_none")]
    pub model: Option<PathBuf>,
    /// `libonnxruntime.so`; empty: `ORT_DYLIB_PATH`, then the location that
    /// `scripts/install-onnxruntime` uses.
    pub onnxruntime: Option<PathBuf>,
    /// The session is dropped (the accelerator released) after this long
    /// without a burst, ms.
    pub idle_release_ms: u64,
    /// Threads for one inference.
    pub threads: usize,
    /// Minimum calibrated probability per class (`wildlife`,
    /// `machinery_anomaly`, `human_activity`); a model's verdict below its
    /// class's threshold is stored as `unknown` (low priority) instead.
    pub thresholds: BTreeMap<String, f32>,
    /// Classes that are not stored (counted and logged instead).
    pub exclude: Vec<String>,
    /// Whether to store, as `unknown`, an event that the triggers' own
    /// rules call background (wind, rain, a hum) while the model cannot
    /// place it (below its class's threshold, or a class resting on the
    /// climate, which is context) and that joined no surer event of a
    /// bout. By default such an event is not stored: neither what was heard
    /// nor what was seen shows anything there (counted as
    /// `uncertain_background`).
    pub store_uncertain_background: bool,
    /// A model's wildlife or human-activity class for an event that the
    /// triggers' own rules call background (nothing heard but wind, rain or
    /// a hum, nothing seen, no climate change) needs at least this
    /// confidence to overrule them; below it the event is unsure
    /// (`unknown`), as below its class's threshold. A machinery class needs
    /// only its threshold: a steady machine is a hum to the rules. 0..1; at
    /// or below the class thresholds it changes nothing.
    pub overrule_background: f32,
    /// Events the model gives the same class that follow each other within
    /// this gap are stored as one event: a bird's songs or a machine's
    /// bursts that the triggers split at their pauses (an `unknown` verdict
    /// counts as the class it fell short in), ms (0: never joined). Each
    /// event is held until no later one can join it.
    pub join_gap_ms: u32,
    /// Where to append each event's feature vectors as JSON lines (for
    /// training); empty: not written.
    pub dump_features: Option<PathBuf>,
}

impl Default for FusionConfig {
    fn default() -> Self {
        FusionConfig {
            model: Some(PathBuf::from(DEFAULT_MODEL)),
            onnxruntime: None,
            idle_release_ms: 60_000,
            threads: 1,
            thresholds: ["wildlife", "machinery_anomaly", "human_activity"]
                .into_iter()
                .map(|c| (c.to_string(), 0.5))
                .collect(),
            exclude: vec!["background".into()],
            store_uncertain_background: false,
            overrule_background: 0.7,
            join_gap_ms: 6_000,
            dump_features: None,
        }
    }
}

impl FusionConfig {
    /// Range checks, as (key, problem) pairs.
    pub fn validate(&self) -> Vec<(String, String)> {
        let mut e = Vec::new();
        if !(1..=16).contains(&self.threads) {
            e.push(("threads".into(), "must be between 1 and 16".into()));
        }
        if self.join_gap_ms > 60_000 {
            e.push(("join_gap_ms".into(), "must be at most 60000 ms".into()));
        }
        if self.idle_release_ms > 86_400_000 {
            e.push(("idle_release_ms".into(), "must be at most one day".into()));
        }
        for (k, v) in &self.thresholds {
            if messages::EventClass::parse(k).is_none() {
                e.push((format!("thresholds.{k}"), "unknown class".into()));
            }
            if !(0.0..=1.0).contains(v) {
                e.push((format!("thresholds.{k}"), "must be between 0 and 1".into()));
            }
        }
        if !(0.0..=1.0).contains(&self.overrule_background) {
            e.push((
                "overrule_background".into(),
                "must be between 0 and 1".into(),
            ));
        }
        for (i, k) in self.exclude.iter().enumerate() {
            if messages::EventClass::parse(k).is_none() {
                e.push((format!("exclude[{i}]"), format!("unknown class `{k}`")));
            }
        }
        e
    }
}
