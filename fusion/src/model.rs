//! The fusion model as the node's [`Classifier`]: the manifest and model file
//! are checked, the model runs on an [`Accelerator`] through a
//! [`BurstRunner`] (woken per burst, released when idle), and each event's
//! probabilities become a [`Verdict`] with measured modality contributions.
//!
//! The model's contract (checked against its manifest when loading): inputs
//! `audio [-1, AUDIO_DIM]`, `camera [-1, CAMERA_DIM]`, `climate [-1,
//! CLIMATE_DIM]`, `mask [-1, 3]`; output `probs [-1, 4]` in the order of
//! [`MODEL_CLASSES`]; feature layout [`FEATURE_LAYOUT`].

use std::path::Path;
use std::time::Instant;

use messages::ModelVersion;
use models::Manifest;

use crate::classifier::{
    Classifier, ClassifyError, MODEL_CLASSES, Verdict, ablation_rows, verdict,
};
use crate::features::{AUDIO_DIM, Batch, CAMERA_DIM, CLIMATE_DIM, EventFeatures};
use crate::infer::{
    Accelerator, BurstRunner, InferError, IoSpec, LifecycleConfig, NamedTensors, OrtBackend,
    OrtConfig, TensorF32,
};
use crate::{FusionConfig, Modality};

/// The feature layout this build computes (see [`crate::features`]).
pub const FEATURE_LAYOUT: &str = "fieldnode-features-1";

/// Why the model cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// The manifest cannot be read or is malformed.
    #[error("model manifest {}: {problem}", path.display())]
    Manifest {
        /// The manifest.
        path: std::path::PathBuf,
        /// What is wrong.
        problem: String,
    },
    /// The model file does not match the manifest.
    #[error(transparent)]
    Verify(#[from] models::VerifyError),
    /// The manifest describes a model this build cannot feed.
    #[error("model manifest {}: {problem}", path.display())]
    Contract {
        /// The manifest.
        path: std::path::PathBuf,
        /// What does not match.
        problem: String,
    },
    /// The inference backend cannot be made.
    #[error(transparent)]
    Infer(#[from] InferError),
}

/// Reads a manifest and checks it against the contract above; returns it with
/// the path of the verified model file.
pub fn load_manifest(path: &Path) -> Result<(Manifest, std::path::PathBuf), ModelError> {
    let text = std::fs::read_to_string(path).map_err(|e| ModelError::Manifest {
        path: path.to_path_buf(),
        problem: e.to_string(),
    })?;
    let manifest = Manifest::from_toml(&text).map_err(|e| ModelError::Manifest {
        path: path.to_path_buf(),
        problem: e.to_string(),
    })?;
    let contract = |problem: String| ModelError::Contract {
        path: path.to_path_buf(),
        problem,
    };
    let want: Vec<&str> = MODEL_CLASSES.iter().map(|c| c.as_str()).collect();
    if manifest.classes != want {
        return Err(contract(format!(
            "classes {:?}, this build needs {want:?}",
            manifest.classes
        )));
    }
    if manifest.features.as_deref() != Some(FEATURE_LAYOUT) {
        return Err(contract(format!(
            "feature layout {:?}, this build computes {FEATURE_LAYOUT:?}",
            manifest.features
        )));
    }
    let inputs = [
        ("audio", AUDIO_DIM),
        ("camera", CAMERA_DIM),
        ("climate", CLIMATE_DIM),
        ("mask", 3),
    ];
    for (name, dim) in inputs {
        let ok = manifest
            .inputs
            .iter()
            .any(|t| t.name == name && t.dtype == "float32" && t.shape == [-1, dim as i64]);
        if !ok {
            return Err(contract(format!(
                "input `{name}` must be float32 [-1, {dim}]"
            )));
        }
    }
    if manifest.inputs.len() != inputs.len()
        || manifest.outputs.len() != 1
        || manifest.outputs[0].name != "probs"
        || manifest.outputs[0].shape != [-1, MODEL_CLASSES.len() as i64]
    {
        return Err(contract(
            "needs exactly the inputs audio, camera, climate, mask and the output probs [-1, 4]"
                .into(),
        ));
    }
    let model = manifest.verify_model(path)?;
    Ok((manifest, model))
}

fn specs(t: &[models::TensorSpec]) -> Result<Vec<IoSpec>, InferError> {
    t.iter()
        .map(|t| IoSpec::new(&t.name, &t.dtype, &t.shape))
        .collect()
}

/// The fusion model on an accelerator.
pub struct FusionModel<A> {
    version: ModelVersion,
    runner: BurstRunner<A>,
}

impl FusionModel<OrtBackend> {
    /// Loads the model of `[fusion] model` on ONNX Runtime. A manifest or
    /// model that does not check out is an error; a runtime library that
    /// cannot be loaded gives a model that is unavailable (with the reason
    /// in its status), so the node keeps running on its triggers.
    pub fn open(cfg: &FusionConfig, manifest_path: &Path) -> Result<Self, ModelError> {
        let (manifest, model_path) = load_manifest(manifest_path)?;
        let ort = OrtConfig {
            library_path: cfg.onnxruntime.clone(),
            model_path,
            inputs: specs(&manifest.inputs)?,
            outputs: specs(&manifest.outputs)?,
            intra_threads: cfg.threads,
        };
        let life = LifecycleConfig {
            idle_release_ms: cfg.idle_release_ms,
        };
        Ok(FusionModel {
            version: ModelVersion(manifest.version),
            runner: BurstRunner::from_result(OrtBackend::new(ort), life),
        })
    }
}

impl<A: Accelerator> FusionModel<A> {
    /// A model on a given accelerator (tests, other backends).
    pub fn with_runner(version: ModelVersion, runner: BurstRunner<A>) -> Self {
        FusionModel { version, runner }
    }

    /// The runner (status, counters).
    pub fn runner(&self) -> &BurstRunner<A> {
        &self.runner
    }
}

impl<A: Accelerator> Classifier for FusionModel<A> {
    fn version(&self) -> ModelVersion {
        self.version
    }

    fn classify(&mut self, events: &[EventFeatures]) -> Result<Vec<Verdict>, ClassifyError> {
        let mut batch = Batch::default();
        let mut layout: Vec<Vec<Option<Modality>>> = Vec::with_capacity(events.len());
        for f in events {
            let rows = ablation_rows(f);
            layout.push(rows.iter().map(|(m, _)| *m).collect());
            for (_, r) in &rows {
                batch.push(r);
            }
        }
        let n = batch.rows;
        let tensor = |data: Vec<f32>, dim: usize| {
            TensorF32::matrix(n, dim, data).map_err(|e| ClassifyError::Inference(e.to_string()))
        };
        let inputs = NamedTensors::new()
            .with("audio", tensor(batch.audio, AUDIO_DIM)?)
            .with("camera", tensor(batch.camera, CAMERA_DIM)?)
            .with("climate", tensor(batch.climate, CLIMATE_DIM)?)
            .with("mask", tensor(batch.mask, 3)?);
        let out = self
            .runner
            .run_burst(&inputs, Instant::now())
            .map_err(|e| match e {
                InferError::Unavailable(r) => ClassifyError::Unavailable(r),
                e if e.is_permanent() => ClassifyError::Unavailable(e.to_string()),
                e => ClassifyError::Inference(e.to_string()),
            })?;
        let probs = out
            .get("probs")
            .filter(|p| p.rows() == n && p.row_len() == MODEL_CLASSES.len())
            .ok_or_else(|| ClassifyError::Inference("no probs [rows, 4] in the output".into()))?;
        let mut verdicts = Vec::with_capacity(events.len());
        let mut row = 0;
        for rows in layout {
            let mut full = [0f32; 4];
            let mut without = Vec::new();
            for m in rows {
                let mut p = [0f32; 4];
                if let Some(r) = probs.row(row) {
                    p.copy_from_slice(r);
                }
                row += 1;
                match m {
                    None => full = p,
                    Some(m) => without.push((m, p)),
                }
            }
            verdicts.push(verdict(full, &without));
        }
        Ok(verdicts)
    }

    fn release_if_idle(&mut self, _now_ms: i64) {
        self.runner.tick(Instant::now());
    }

    fn status(&self) -> String {
        self.runner.status().to_string()
    }
}
