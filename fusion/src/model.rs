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
pub const FEATURE_LAYOUT: &str = "fieldnode-features-2";

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

/// The result of a self-test: how many vectors passed, and the slowest
/// run (the accelerator already awake).
#[derive(Debug, Clone, PartialEq)]
pub struct SelfTestReport {
    /// Vectors run.
    pub vectors: usize,
    /// The slowest single run, microseconds.
    pub slowest_us: u64,
}

/// Why a self-test failed.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum SelfTestError {
    /// The bundle carries no vectors: a model is never installed untested.
    #[error("no self-test vectors")]
    NoVectors,
    /// A vector does not fit the model's inputs.
    #[error("self-test {index}: {problem}")]
    Shape {
        /// Which vector.
        index: usize,
        /// What does not fit.
        problem: String,
    },
    /// The model did not run.
    #[error("self-test {index}: the model did not run: {reason}")]
    Run {
        /// Which vector.
        index: usize,
        /// Why.
        reason: String,
    },
    /// Another answer than the expected one.
    #[error("self-test {index}: {problem}")]
    Mismatch {
        /// Which vector.
        index: usize,
        /// How it differs.
        problem: String,
    },
}

/// Why one row of inputs gave no probabilities.
#[derive(Debug, Clone, PartialEq)]
pub enum RowsError {
    /// The rows do not fit the model's inputs.
    Shape(String),
    /// The model did not run.
    Run(String),
}

impl<A: Accelerator> FusionModel<A> {
    /// Runs each vector (one row per input, in the contract's order: audio,
    /// camera, climate, mask) and checks the expected class and every
    /// probability within the tolerance. The first run also wakes the
    /// accelerator, and is not counted in the latency.
    /// The model's probabilities for one set of input rows (audio,
    /// camera, climate, mask), as the model gives them.
    pub fn probabilities(&mut self, rows: &[Vec<f32>]) -> Result<Vec<f32>, RowsError> {
        let dims = [
            ("audio", AUDIO_DIM),
            ("camera", CAMERA_DIM),
            ("climate", CLIMATE_DIM),
            ("mask", 3),
        ];
        if rows.len() != dims.len() {
            return Err(RowsError::Shape(format!(
                "{} input rows, the model has {}",
                rows.len(),
                dims.len()
            )));
        }
        let mut inputs = NamedTensors::new();
        for ((name, dim), row) in dims.iter().zip(rows) {
            if row.len() != *dim {
                return Err(RowsError::Shape(format!(
                    "input `{name}` has {} values, not {dim}",
                    row.len()
                )));
            }
            let t = TensorF32::matrix(1, *dim, row.clone())
                .map_err(|e| RowsError::Shape(e.to_string()))?;
            inputs = inputs.with(name, t);
        }
        let out = self
            .runner
            .run_burst(&inputs, Instant::now())
            .map_err(|e| RowsError::Run(e.to_string()))?;
        out.get("probs")
            .and_then(|p| p.row(0))
            .map(|r| r.to_vec())
            .ok_or_else(|| RowsError::Run("no probs in the output".into()))
    }

    pub fn self_test(
        &mut self,
        vectors: &[models::bundle::SelfTest],
    ) -> Result<SelfTestReport, SelfTestError> {
        if vectors.is_empty() {
            return Err(SelfTestError::NoVectors);
        }
        let mut slowest_us = 0;
        for (index, v) in vectors.iter().enumerate() {
            // The first vector runs twice: its first run wakes the
            // accelerator and is not timed.
            let runs = if index == 0 { 2 } else { 1 };
            let mut probs = Vec::new();
            let mut took_us = 0;
            for _ in 0..runs {
                let started = Instant::now();
                probs = self.probabilities(&v.inputs).map_err(|e| match e {
                    RowsError::Shape(problem) => SelfTestError::Shape { index, problem },
                    RowsError::Run(reason) => SelfTestError::Run { index, reason },
                })?;
                took_us = started.elapsed().as_micros() as u64;
            }
            slowest_us = slowest_us.max(took_us);
            let mismatch = |problem: String| SelfTestError::Mismatch { index, problem };
            if probs.len() != v.probabilities.len() {
                return Err(mismatch(format!(
                    "{} probabilities, expected {}",
                    probs.len(),
                    v.probabilities.len()
                )));
            }
            let best = probs
                .iter()
                .enumerate()
                .max_by(|a, b| a.1.total_cmp(b.1))
                .map_or(0, |(i, _)| i);
            if best != usize::from(v.expected_class) {
                return Err(mismatch(format!(
                    "class {best}, expected {}",
                    v.expected_class
                )));
            }
            for (i, (got, want)) in probs.iter().zip(&v.probabilities).enumerate() {
                let within = (got - want).abs() <= v.tolerance; // false for NaN
                if !within {
                    return Err(mismatch(format!(
                        "probability {i} is {got:.4}, expected {want:.4} ± {}",
                        v.tolerance
                    )));
                }
            }
        }
        Ok(SelfTestReport {
            vectors: vectors.len(),
            slowest_us,
        })
    }
}

impl<A: Accelerator> Classifier for FusionModel<A> {
    fn version(&self) -> ModelVersion {
        self.version
    }

    fn classify(&mut self, events: &[EventFeatures]) -> Result<Vec<Verdict>, ClassifyError> {
        let mut layout: Vec<Vec<Option<Modality>>> = Vec::with_capacity(events.len());
        let mut all_rows = Vec::new();
        for f in events {
            let rows = ablation_rows(f);
            layout.push(rows.iter().map(|(m, _)| *m).collect());
            all_rows.extend(rows.into_iter().map(|(_, r)| r));
        }
        let batch = Batch::from_rows(&all_rows.iter().collect::<Vec<_>>());
        let n = batch.rows();
        let tensor = |m: ndarray::Array2<f32>| {
            TensorF32::from_array(m).map_err(|e| ClassifyError::Inference(e.to_string()))
        };
        let inputs = NamedTensors::new()
            .with("audio", tensor(batch.audio)?)
            .with("camera", tensor(batch.camera)?)
            .with("climate", tensor(batch.climate)?)
            .with("mask", tensor(batch.mask)?);
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

    fn release(&mut self) {
        self.runner.release_now();
    }

    fn status(&self) -> String {
        self.runner.status().to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use messages::EventClass;

    const MANIFEST: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../models/fusion/fusion.int4.manifest.toml"
    );

    fn copy_model(dir: &Path, edit: impl Fn(String) -> String) -> std::path::PathBuf {
        let src = Path::new(MANIFEST);
        let text = std::fs::read_to_string(src).unwrap();
        let model = src.with_file_name("fusion.int4.onnx");
        std::fs::copy(&model, dir.join("fusion.int4.onnx")).unwrap();
        let path = dir.join("m.toml");
        std::fs::write(&path, edit(text)).unwrap();
        path
    }

    #[test]
    fn the_committed_manifest_meets_the_contract() {
        let (m, model) = load_manifest(Path::new(MANIFEST)).unwrap();
        // A committed model is a trained one: version 1 or later (0 means
        // triggers only).
        assert!(m.version >= 1, "{}", m.version);
        assert!(model.ends_with("fusion.int4.onnx"));
        assert!(m.latency.is_some());
    }

    #[test]
    fn a_manifest_that_does_not_fit_this_build_is_refused() {
        let t = tempfile::tempdir().unwrap();
        let cases: [(&str, &dyn Fn(String) -> String); 4] = [
            ("shape", &|s| {
                s.replace("shape = [-1, 110]", "shape = [-1, 111]")
            }),
            ("layout", &|s| {
                s.replace("fieldnode-features-2", "fieldnode-features-0")
            }),
            ("classes", &|s| s.replace("\"human_activity\", ", "")),
            ("output", &|s| {
                s.replace("name = \"probs\"", "name = \"logits\"")
            }),
        ];
        for (what, edit) in cases {
            let p = copy_model(t.path(), edit);
            let e = load_manifest(&p).err();
            assert!(
                matches!(e, Some(ModelError::Contract { .. })),
                "{what}: {e:?}"
            );
        }
        let p = copy_model(t.path(), |s| s);
        std::fs::write(t.path().join("fusion.int4.onnx"), b"not a model").unwrap();
        assert!(matches!(load_manifest(&p), Err(ModelError::Verify(_))));
        assert!(matches!(
            load_manifest(&t.path().join("missing.toml")),
            Err(ModelError::Manifest { .. })
        ));
    }

    /// An accelerator that answers from the mask alone: wildlife when audio
    /// is present, else background; it records the batch it saw.
    struct MaskModel {
        awake: bool,
        rows_seen: Vec<usize>,
    }

    impl Accelerator for MaskModel {
        fn name(&self) -> &'static str {
            "mask-model"
        }
        fn wake(&mut self) -> Result<(), InferError> {
            self.awake = true;
            Ok(())
        }
        fn is_awake(&self) -> bool {
            self.awake
        }
        fn run(&mut self, inputs: &NamedTensors) -> Result<NamedTensors, InferError> {
            let mask = inputs
                .get("mask")
                .ok_or(InferError::BadInput("no mask".into()))?;
            let n = mask.rows();
            self.rows_seen.push(n);
            let mut probs = Vec::new();
            for i in 0..n {
                let audio = mask.row(i).is_some_and(|r| r[0] > 0.0);
                probs.extend(if audio {
                    [0.9, 0.0, 0.0, 0.1]
                } else {
                    [0.3, 0.0, 0.0, 0.7]
                });
            }
            Ok(NamedTensors::new().with("probs", TensorF32::matrix(n, 4, probs)?))
        }
        fn release(&mut self) {
            self.awake = false;
        }
    }

    #[test]
    fn a_burst_is_one_batch_and_contributions_come_from_its_ablation_rows() {
        let runner = BurstRunner::new(
            MaskModel {
                awake: false,
                rows_seen: Vec::new(),
            },
            LifecycleConfig::default(),
        );
        let mut model = FusionModel::with_runner(ModelVersion(7), runner);
        let both = EventFeatures {
            audio: Some(vec![0.0; AUDIO_DIM]),
            camera: Some(vec![0.0; CAMERA_DIM]),
            climate: None,
        };
        let camera_only = both.without(Modality::Audio);
        let v = model.classify(&[both, camera_only]).unwrap();
        // 3 rows for the first event (whole, -audio, -camera), 2 for the second.
        assert_eq!(model.runner().accelerator().unwrap().rows_seen, vec![5]);
        assert_eq!(v[0].class, EventClass::Wildlife);
        assert!((v[0].confidence - 0.9).abs() < 1e-6);
        assert_eq!(v[0].contributions.audio, Some(messages::Permille(1000)));
        assert_eq!(v[0].contributions.camera, Some(messages::Permille(0)));
        assert_eq!(v[0].contributions.climate, None);
        assert_eq!(v[1].class, EventClass::Background);
        assert_eq!(v[1].contributions.audio, None);
        assert_eq!(model.version(), ModelVersion(7));
        assert_eq!(model.status(), "loaded");
        // Released on demand (before its supply goes off), woken by the next burst.
        model.release();
        assert_eq!(model.status(), "released");
        assert_eq!(model.runner().counters().releases, 1);
    }
}
