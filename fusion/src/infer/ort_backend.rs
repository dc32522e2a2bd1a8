//! ONNX Runtime on the CPU, through `ort` with the library loaded at run time.
//!
//! [`OrtBackend::new`] finds and loads the library (so a missing or
//! wrong-version library is reported when the node starts); each
//! [`wake`](Accelerator::wake) reads the model file, creates a session with
//! the configured number of intra-op threads (no spinning: idle threads
//! sleep instead of burning the battery) and checks the model's inputs and
//! outputs against the [`IoSpec`]s; [`release`](Accelerator::release) drops
//! the session, its weights and its threads, and returns the freed heap to
//! the kernel (`malloc_trim` on glibc).

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ort::session::Session;
use ort::value::{TensorElementType, TensorRef, ValueType};

use super::accelerator::Accelerator;
use super::error::InferError;
use super::library::{self, LibraryLocation};
use super::runtime::{self, Runtime};
use super::tensor::{ElementType, IoSpec, NamedTensors, TensorF32};

/// Most intra-op threads allowed (a Pi 5 has 4 cores).
pub const MAX_THREADS: usize = 4;

/// What an [`OrtBackend`] runs and how.
#[derive(Debug, Clone, PartialEq)]
pub struct OrtConfig {
    /// The library file from the configuration; `None` falls back to
    /// `ORT_DYLIB_PATH`, then to the install location.
    pub library_path: Option<PathBuf>,
    /// The `.onnx` model file.
    pub model_path: PathBuf,
    /// Expected inputs (from the model's manifest).
    pub inputs: Vec<IoSpec>,
    /// Expected outputs (from the model's manifest).
    pub outputs: Vec<IoSpec>,
    /// Intra-op threads per session, 1 to [`MAX_THREADS`].
    pub intra_threads: usize,
}

impl OrtConfig {
    fn check(&self) -> Result<(), InferError> {
        if !(1..=MAX_THREADS).contains(&self.intra_threads) {
            return Err(InferError::Config(format!(
                "intra_threads must be 1 to {MAX_THREADS}, got {}",
                self.intra_threads
            )));
        }
        if self.inputs.is_empty() || self.outputs.is_empty() {
            return Err(InferError::Config(
                "a model needs at least one input and one output".into(),
            ));
        }
        let mut names: Vec<&str> = Vec::new();
        for spec in self.inputs.iter().chain(&self.outputs) {
            spec.check()?;
            if names.contains(&spec.name.as_str()) {
                return Err(InferError::Config(format!(
                    "tensor name `{}` appears twice",
                    spec.name
                )));
            }
            names.push(&spec.name);
        }
        Ok(())
    }
}

/// ONNX Runtime CPU backend; see the module documentation.
pub struct OrtBackend {
    config: OrtConfig,
    location: LibraryLocation,
    runtime: Arc<Runtime>,
    session: Option<Session>,
}

impl std::fmt::Debug for OrtBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OrtBackend")
            .field("config", &self.config)
            .field("location", &self.location)
            .field("awake", &self.session.is_some())
            .finish()
    }
}

impl OrtBackend {
    /// Checks the configuration and loads the ONNX Runtime library. Does not
    /// read the model: that happens at the first [`wake`](Accelerator::wake).
    pub fn new(config: OrtConfig) -> Result<OrtBackend, InferError> {
        config.check()?;
        let location = library::resolve(config.library_path.as_deref())?;
        let runtime = runtime::runtime(&location.path)?;
        Ok(OrtBackend {
            config,
            location,
            runtime,
            session: None,
        })
    }

    /// Finds and loads the ONNX Runtime library without a model (what
    /// [`new`](Self::new) does first), returning where it came from and
    /// ONNX Runtime's build description. For start-up checks and tools.
    pub fn load_library(
        library_path: Option<&Path>,
    ) -> Result<(LibraryLocation, String), InferError> {
        let location = library::resolve(library_path)?;
        let runtime = runtime::runtime(&location.path)?;
        Ok((location, runtime.build_info.clone()))
    }

    /// Where the library came from.
    pub fn library(&self) -> &LibraryLocation {
        &self.location
    }

    /// ONNX Runtime's description of its build (version and commit).
    pub fn build_info(&self) -> &str {
        &self.runtime.build_info
    }

    /// The configuration.
    pub fn config(&self) -> &OrtConfig {
        &self.config
    }

    /// Reads a model's own inputs and outputs as [`IoSpec`]s (dynamic
    /// dimensions as `-1`), for tools that have a model but no manifest. Fails
    /// for tensors that are not `float32` or whose first dimension is not dynamic.
    pub fn inspect_model(
        library_path: Option<&Path>,
        model: &Path,
    ) -> Result<(Vec<IoSpec>, Vec<IoSpec>), InferError> {
        let location = library::resolve(library_path)?;
        let runtime = runtime::runtime(&location.path)?;
        let session = create_session(&runtime, model, 1)?;
        let describe = |outlets: &[ort::value::Outlet]| -> Result<Vec<IoSpec>, InferError> {
            outlets
                .iter()
                .map(|o| match o.dtype() {
                    ValueType::Tensor {
                        ty: TensorElementType::Float32,
                        shape,
                        ..
                    } => IoSpec::f32(o.name(), shape),
                    other => Err(InferError::Config(format!(
                        "`{}` is {other:?}, only float32 tensors are supported",
                        o.name()
                    ))),
                })
                .collect()
        };
        Ok((describe(session.inputs())?, describe(session.outputs())?))
    }
}

fn create_session(runtime: &Runtime, model: &Path, threads: usize) -> Result<Session, InferError> {
    let bytes = std::fs::read(model).map_err(|source| InferError::ModelRead {
        path: model.to_path_buf(),
        source,
    })?;
    let load_err = |reason: String| InferError::ModelLoad {
        path: model.to_path_buf(),
        reason,
    };
    let made = catch_unwind(AssertUnwindSafe(|| -> Result<Session, String> {
        let text = |e: ort::Error<ort::session::builder::SessionBuilder>| e.to_string();
        let builder = Session::builder(&runtime.env).map_err(|e| e.to_string())?;
        let builder = builder.with_intra_threads(threads).map_err(text)?;
        let builder = builder.with_inter_threads(1).map_err(text)?;
        let builder = builder.with_intra_op_spinning(false).map_err(text)?;
        let mut builder = builder.with_inter_op_spinning(false).map_err(text)?;
        builder
            .commit_from_memory(&bytes)
            .map_err(|e| e.to_string())
    }));
    match made {
        Ok(Ok(session)) => Ok(session),
        Ok(Err(reason)) => Err(load_err(reason)),
        Err(_) => Err(load_err("the runtime panicked while loading it".into())),
    }
}

/// Hands the heap memory the dropped session freed back to the kernel.
/// glibc keeps freed memory for reuse, so without this a released session's
/// weights and buffers stay resident (measured: 112 MB resident after
/// releasing a 16 MB model, 30 MB after trimming).
fn return_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim has no preconditions; it only releases free pages
    // of glibc's own heap.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Compares one side (inputs or outputs) of a session with its specs.
fn compare(
    side: &str,
    outlets: &[ort::value::Outlet],
    specs: &[IoSpec],
    problems: &mut Vec<String>,
) {
    for spec in specs {
        let Some(outlet) = outlets.iter().find(|o| o.name() == spec.name) else {
            let names: Vec<&str> = outlets.iter().map(|o| o.name()).collect();
            problems.push(format!(
                "{side} `{}` is not in the model (it has {names:?})",
                spec.name
            ));
            continue;
        };
        match outlet.dtype() {
            ValueType::Tensor { ty, shape, .. } => {
                let ElementType::Float32 = spec.dtype;
                if *ty != TensorElementType::Float32 {
                    problems.push(format!(
                        "{side} `{}` is {ty:?} in the model, {} in the specification",
                        spec.name,
                        spec.dtype.name()
                    ));
                }
                // A fixed size in the specification may meet a dynamic one in
                // the model (the model is more general); the batch (-1) must be
                // dynamic in the model, and fixed sizes must agree.
                let fits = shape.len() == spec.shape.len()
                    && shape
                        .iter()
                        .zip(&spec.shape)
                        .all(|(&m, &s)| m == s || (m == -1 && s > 0));
                if !fits {
                    problems.push(format!(
                        "{side} `{}` has shape {:?} in the model, {:?} in the specification",
                        spec.name,
                        &shape[..],
                        spec.shape
                    ));
                }
            }
            other => problems.push(format!(
                "{side} `{}` is not a tensor in the model ({other:?})",
                spec.name
            )),
        }
    }
    for outlet in outlets {
        if !specs.iter().any(|s| s.name == outlet.name()) {
            problems.push(format!(
                "the model has {side} `{}`, which the specification does not list",
                outlet.name()
            ));
        }
    }
}

impl Accelerator for OrtBackend {
    fn name(&self) -> &'static str {
        "onnxruntime-cpu"
    }

    fn wake(&mut self) -> Result<(), InferError> {
        if self.session.is_some() {
            return Ok(());
        }
        let session = create_session(
            &self.runtime,
            &self.config.model_path,
            self.config.intra_threads,
        )?;
        let mut problems = Vec::new();
        compare(
            "input",
            session.inputs(),
            &self.config.inputs,
            &mut problems,
        );
        compare(
            "output",
            session.outputs(),
            &self.config.outputs,
            &mut problems,
        );
        if !problems.is_empty() {
            return Err(InferError::ModelMismatch {
                path: self.config.model_path.clone(),
                problems,
            });
        }
        self.session = Some(session);
        Ok(())
    }

    fn is_awake(&self) -> bool {
        self.session.is_some()
    }

    fn run(&mut self, inputs: &NamedTensors) -> Result<NamedTensors, InferError> {
        let rows = inputs.check_against(&self.config.inputs)?;
        let session = self.session.as_mut().ok_or(InferError::NotAwake)?;
        let specs_out = &self.config.outputs;
        let specs_in = &self.config.inputs;
        let ran = catch_unwind(AssertUnwindSafe(|| -> Result<NamedTensors, String> {
            let mut feed = Vec::with_capacity(specs_in.len());
            for spec in specs_in {
                // check_against has made sure every specified input is there.
                let t = inputs
                    .get(&spec.name)
                    .ok_or_else(|| format!("input `{}` vanished", spec.name))?;
                let view = TensorRef::from_array_view(t.view())
                    .map_err(|e| format!("input `{}`: {e}", spec.name))?;
                feed.push((spec.name.as_str(), view));
            }
            let outputs = session.run(feed).map_err(|e| e.to_string())?;
            let mut result = NamedTensors::new();
            for spec in specs_out {
                let value = outputs
                    .get(&spec.name)
                    .ok_or_else(|| format!("output `{}` is missing", spec.name))?;
                let array = value
                    .try_extract_array::<f32>()
                    .map_err(|e| format!("output `{}`: {e}", spec.name))?;
                let dims = array.shape();
                let want_rest: Vec<usize> = spec.shape[1..].iter().map(|&d| d as usize).collect();
                if dims.first() != Some(&rows) || dims[1..] != want_rest[..] {
                    return Err(format!(
                        "output `{}` has shape {dims:?}, expected [{rows}, {}]",
                        spec.name,
                        want_rest
                            .iter()
                            .map(|d| d.to_string())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ));
                }
                let tensor = TensorF32::from_array(array.to_owned())
                    .map_err(|e| format!("output `{}`: {e}", spec.name))?;
                result.insert(&spec.name, tensor);
            }
            Ok(result)
        }));
        match ran {
            Ok(Ok(out)) => Ok(out),
            Ok(Err(reason)) => Err(InferError::Run(reason)),
            Err(_) => Err(InferError::Run("the runtime panicked".into())),
        }
    }

    fn release(&mut self) {
        if self.session.take().is_some() {
            return_freed_memory();
        }
    }
}
