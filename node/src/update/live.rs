//! Settings that take effect without a restart. When a settings bundle is
//! installed, the update task publishes the configuration's `[fusion]`
//! class thresholds and exclusions and the `[power.policy]` thresholds and
//! cadences as they are with the patch over the configuration; the detect
//! task applies the classes before its next burst, the power task the
//! policy at its next reading (the camera and climate tasks follow the
//! cadence that reading allows). Everything a settings patch can change
//! applies this way; the next start applies the same patch again.

use std::sync::Arc;

use tokio::sync::watch;

use fusion::FusionConfig;

use crate::config::Config;

/// The settings that apply while the node runs.
#[derive(Debug, Clone, PartialEq)]
pub struct LiveSettings {
    /// The installed settings bundle's version.
    pub version: u64,
    /// Class thresholds and exclusions (`[fusion]`).
    pub fusion: FusionConfig,
    /// Power thresholds and cadences (`[power.policy]`).
    pub policy: power::PolicyConfig,
}

impl LiveSettings {
    /// The live part of a (patched) configuration.
    pub fn of(cfg: &Config, version: u64) -> LiveSettings {
        LiveSettings {
            version,
            fusion: cfg.fusion.clone(),
            policy: cfg.power.policy.clone(),
        }
    }
}

/// The newest installed settings, `None` until one is installed while the
/// node runs.
pub type Settings = Option<Arc<LiveSettings>>;

/// A channel for live settings: the update task sends, the detect and power
/// tasks receive.
pub fn channel() -> (watch::Sender<Settings>, watch::Receiver<Settings>) {
    watch::channel(None)
}

/// The settings sent since `rx` last looked, if any.
pub fn changed(rx: &mut watch::Receiver<Settings>) -> Option<Arc<LiveSettings>> {
    if !rx.has_changed().unwrap_or(false) {
        return None;
    }
    rx.borrow_and_update().clone()
}
