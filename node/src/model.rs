//! Opening the fusion model for the detection stage. A model that cannot be
//! used never stops the node: it logs why, the `model` entry of the health
//! board says so, and events keep the triggers' class.

use fusion::Classifier;
use fusion::model::FusionModel;

use crate::config::Config;
use crate::sensors::health::HealthHandle;

/// The classifier of `[fusion] model`, or `None` (triggers only), with the
/// reason recorded on `health`.
pub fn open_classifier(cfg: &Config, health: &HealthHandle) -> Option<Box<dyn Classifier>> {
    let Some(path) = cfg.fusion.model.as_deref() else {
        health.set_absent("no [fusion] model configured: triggers only");
        return None;
    };
    match FusionModel::open(&cfg.fusion, path) {
        Ok(model) => {
            let status = model.status();
            if status.starts_with("unavailable") {
                tracing::error!(manifest = %path.display(), status = %status, "fusion model cannot run; events keep the triggers' class");
                health.set_degraded(format!("{status}; triggers only"));
            } else {
                tracing::info!(manifest = %path.display(), version = model.version().0, "fusion model ready");
                health.set_ok();
            }
            Some(Box::new(model))
        }
        Err(e) => {
            tracing::error!(manifest = %path.display(), error = %e, "fusion model not loaded; events keep the triggers' class");
            health.set_degraded(format!("{e}; triggers only"));
            None
        }
    }
}
