//! `[update]`: where the trust root comes from and the limits of an install.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// `[update]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct UpdateConfig {
    /// The provisioned trust root (a root file made with `field-tools root
    /// init`). Without it the node takes no update.
    pub root: Option<PathBuf>,
    /// Largest bundle accepted, bytes.
    pub max_bundle_bytes: u64,
    /// How often the drop folder is looked at, ms.
    pub scan_interval_ms: u64,
    /// Bursts a new model must run before it is committed.
    pub trial_bursts: u32,
    /// A self-test run may take this many times the latency the bundle
    /// states (which was measured on the machine that made the model), and
    /// at least 50 ms.
    pub latency_factor: f64,
    /// No install above this enclosure temperature (the BME280's), °C.
    pub max_temp_c: f64,
    /// No install below this enclosure temperature, °C.
    pub min_temp_c: f64,
    /// No install above this SoC temperature (the board's thermal zone),
    /// °C. A Pi 5 starts to throttle at 80 °C and an install runs the
    /// model's self-test on top of the node's own load.
    pub max_soc_temp_c: f64,
}

impl Default for UpdateConfig {
    fn default() -> Self {
        UpdateConfig {
            root: None,
            max_bundle_bytes: 32 * 1024 * 1024,
            scan_interval_ms: 60_000,
            trial_bursts: 3,
            latency_factor: 20.0,
            max_temp_c: 70.0,
            min_temp_c: -20.0,
            max_soc_temp_c: 75.0,
        }
    }
}

impl UpdateConfig {
    /// Problems, as (key under `update`, message).
    pub fn validate(&self) -> Vec<(String, String)> {
        let mut e = Vec::new();
        if !(1024..=1 << 30).contains(&self.max_bundle_bytes) {
            e.push((
                "max_bundle_bytes".into(),
                "must be between 1 KiB and 1 GiB".into(),
            ));
        }
        if !(100..=86_400_000).contains(&self.scan_interval_ms) {
            e.push((
                "scan_interval_ms".into(),
                "must be between 100 ms and one day".into(),
            ));
        }
        if self.trial_bursts > 1000 {
            e.push(("trial_bursts".into(), "must be at most 1000".into()));
        }
        if !(1.0..=1000.0).contains(&self.latency_factor) {
            e.push(("latency_factor".into(), "must be between 1 and 1000".into()));
        }
        if self.min_temp_c >= self.max_temp_c {
            e.push(("min_temp_c".into(), "must be below max_temp_c".into()));
        }
        if !(0.0..=110.0).contains(&self.max_soc_temp_c) {
            e.push((
                "max_soc_temp_c".into(),
                "must be between 0 and 110 °C".into(),
            ));
        }
        e
    }
}
