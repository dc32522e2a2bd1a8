//! Opening the fusion model for the detection stage. A model that cannot be
//! used never stops the node: it logs why, the `model` entry of the health
//! board says so, and events keep the triggers' class.

use std::path::{Path, PathBuf};

use fusion::Classifier;
use fusion::model::FusionModel;

use crate::config::Config;
use crate::sensors::health::HealthHandle;

/// The classifier of `[fusion] model`, or `None` (triggers only), with the
/// reason recorded on `health`.
///
/// A model installed by a signed update (`installed`, its slot's manifest)
/// comes first; if it cannot be loaded, the configured one is used.
pub fn open_classifier(
    cfg: &Config,
    health: &HealthHandle,
    installed: Option<&Path>,
) -> Option<Box<dyn Classifier>> {
    if let Some(path) = installed {
        match FusionModel::open(&cfg.fusion, path) {
            Ok(model) if !model.status().starts_with("unavailable") => {
                tracing::info!(manifest = %path.display(), version = model.version().0, "fusion model ready (installed by an update)");
                health.set_ok();
                return Some(Box::new(model));
            }
            Ok(model) => {
                tracing::error!(manifest = %path.display(), status = %model.status(), "the updated model cannot run; trying the configured one");
            }
            Err(e) => {
                tracing::error!(manifest = %path.display(), error = %e, "the updated model does not load; trying the configured one");
            }
        }
    }
    let Some(path) = cfg.fusion.model.as_deref() else {
        health.set_absent("no [fusion] model configured: triggers only");
        return None;
    };
    let path = &resolve_model(path);
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

/// The manifest path: as configured, or the model committed next to the
/// sources when the default is used from another working directory (as the
/// bundled demo scene is).
fn resolve_model(path: &Path) -> PathBuf {
    let default = Path::new(fusion::fusion_config::DEFAULT_MODEL);
    if path.exists() || path != default {
        return path.to_path_buf();
    }
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(default)
}
