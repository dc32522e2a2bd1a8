//! `fieldnode update ...`: a technician with a shell queues a bundle for
//! the running node (checked first, so a refusal is seen at once), reads
//! the install state, or makes the self-test vectors a model bundle
//! carries.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use rand::{Rng, SeedableRng};
use serde::Serialize;

use super::install::Installer;
use crate::config::Config;

/// Checks `file` against the node's trust state and queues it in
/// `<data_dir>/incoming/`, where the running node installs it when power
/// allows. Returns the queued path, or the refusal. A refusal is also left
/// for the node ([`super::install::leave_refusal`]), which records it as
/// the last result in its install state and reports it like its own.
pub fn apply(
    cfg: &Config,
    file: &Path,
    now_ms: i64,
) -> Result<std::result::Result<PathBuf, String>> {
    let installer = Installer::open_read_only(cfg, now_ms);
    let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    let bundle = match installer.check(&bytes[..], now_ms) {
        Ok(b) => b,
        Err(r) => {
            let o = super::install::refusal_outcome(&bytes, &r, now_ms);
            if let Err(e) = super::install::leave_refusal(&cfg.node.data_dir, &o) {
                tracing::warn!(error = %e, "cannot leave the refusal for the node to report");
            }
            return Ok(Err(o.reason));
        }
    };
    let incoming = cfg.node.data_dir.join("incoming");
    uplink::store::durable::create_dir_durably(&incoming)
        .with_context(|| format!("creating {}", incoming.display()))?;
    let name = format!(
        "{}-{}-{:020}.fnb",
        bundle.meta.kind.as_str(),
        bundle
            .meta
            .name
            .replace(|c: char| !c.is_ascii_alphanumeric(), "_"),
        bundle.meta.version
    );
    let dest = incoming.join(name);
    uplink::store::durable::replace_atomically(&dest, &bytes)
        .with_context(|| format!("writing {}", dest.display()))?;
    Ok(Ok(dest))
}

/// What `fieldnode update status` prints.
#[derive(Serialize)]
pub struct Status {
    /// Whether updates are on, or why not.
    pub trust: String,
    /// The trusted root's version.
    pub root_version: Option<u64>,
    /// Installed versions per kind and name.
    pub installed: Vec<(String, String, u64)>,
    /// The install state (its last result includes a refusal by
    /// `fieldnode update apply` the node has not taken yet).
    pub state: super::InstallState,
    /// Bundles waiting in the drop folder.
    pub pending: Vec<PathBuf>,
}

/// The install state of the node whose data directory `cfg` names.
pub fn status(cfg: &Config, now_ms: i64) -> Status {
    let installer = Installer::open_read_only(cfg, now_ms);
    let (trust, root_version, installed) = match installer.trust() {
        Ok(t) => (
            "on".to_string(),
            Some(t.root.root.version),
            t.installed
                .iter()
                .map(|(k, n, v)| (k.as_str().to_string(), n.clone(), *v))
                .collect(),
        ),
        Err(e) => (format!("off: {e}"), None, Vec::new()),
    };
    // A refusal by `fieldnode update apply` that the node has not taken
    // yet is the last result all the same.
    let mut state = installer.state().clone();
    let left = super::install::left_refusals(&cfg.node.data_dir)
        .into_iter()
        .filter_map(|(_, o)| o)
        .next_back();
    if let Some(o) = left
        && state.last.as_ref().is_none_or(|l| l.t_ms <= o.t_ms)
    {
        state.last = Some(o);
    }
    Status {
        trust,
        root_version,
        installed,
        state,
        pending: super::task::pending(&cfg.node.data_dir.join("incoming")),
    }
}

/// One self-test vector, as `field-tools bundle pack --self-tests` reads it.
#[derive(Serialize)]
pub struct Vector {
    /// One row per model input (audio, camera, climate, mask).
    pub inputs: Vec<Vec<f32>>,
    /// The class the model gives.
    pub expected_class: u8,
    /// The probabilities it gives.
    pub probabilities: Vec<f32>,
    /// Accepted difference per probability on the node.
    pub tolerance: f32,
}

/// Runs the model of `manifest` on `count` deterministic inputs (every mask
/// pattern in turn) and returns them with its answers.
pub fn selftests(
    cfg: &Config,
    manifest: &Path,
    count: usize,
    tolerance: f32,
    seed: u64,
) -> Result<Vec<Vector>> {
    use fusion::features::{AUDIO_DIM, CAMERA_DIM, CLIMATE_DIM};
    let mut model = fusion::model::FusionModel::open(&cfg.fusion, manifest)
        .with_context(|| format!("opening {}", manifest.display()))?;
    let masks = [
        [1.0, 1.0, 1.0],
        [1.0, 0.0, 0.0],
        [0.0, 1.0, 0.0],
        [0.0, 0.0, 1.0],
        [1.0, 1.0, 0.0],
        [1.0, 0.0, 1.0],
    ];
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut out = Vec::with_capacity(count);
    for i in 0..count {
        let mask = masks[i % masks.len()];
        let mut row = |dim: usize, on: f32| -> Vec<f32> {
            (0..dim)
                .map(|_| {
                    if on > 0.0 {
                        rng.random_range(-1.0f32..2.0)
                    } else {
                        0.0
                    }
                })
                .collect()
        };
        let inputs = vec![
            row(AUDIO_DIM, mask[0]),
            row(CAMERA_DIM, mask[1]),
            row(CLIMATE_DIM, mask[2]),
            mask.to_vec(),
        ];
        let probabilities = model
            .probabilities(&inputs)
            .map_err(|e| anyhow::anyhow!("the model did not run: {e:?}"))?;
        let expected_class = probabilities
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .map_or(0, |(i, _)| i as u8);
        out.push(Vector {
            inputs,
            expected_class,
            probabilities,
            tolerance,
        });
    }
    Ok(out)
}
