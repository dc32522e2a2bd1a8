//! Why inference could not run: one enum for every backend and the lifecycle.

use std::path::PathBuf;

use super::library::LibrarySource;

/// An inference failure. Every variant says which file or tensor it is about.
#[derive(Debug, thiserror::Error)]
pub enum InferError {
    /// No library path was configured, `ORT_DYLIB_PATH` is unset and `HOME`
    /// is unset, so the install location is unknown.
    #[error(
        "no ONNX Runtime library location: set the configuration's library path or ORT_DYLIB_PATH, or HOME for the installed copy"
    )]
    NoLibraryLocation,
    /// The library file does not exist.
    #[error(
        "ONNX Runtime library not found at {path} (from {from}); run scripts/install-onnxruntime"
    )]
    LibraryNotFound {
        /// Where it was looked for.
        path: PathBuf,
        /// Which setting named that path.
        from: LibrarySource,
    },
    /// The file exists but could not be loaded as a shared library.
    #[error("cannot load {path} as a shared library: {reason}")]
    LibraryLoad {
        /// The file.
        path: PathBuf,
        /// The loader's message.
        reason: String,
    },
    /// The file is a shared library but not ONNX Runtime (no `OrtGetApiBase`).
    #[error("{path} is not ONNX Runtime (it does not export OrtGetApiBase)")]
    NotOnnxRuntime {
        /// The file.
        path: PathBuf,
    },
    /// The library's ONNX Runtime version is older than the one `ort` needs.
    #[error("ONNX Runtime at {path} is version {found}; this build needs {expected} or newer")]
    LibraryVersion {
        /// The file.
        path: PathBuf,
        /// The version the library reports.
        found: String,
        /// The version this build was made for.
        expected: String,
    },
    /// The library loaded but cannot serve this build (it failed or panicked
    /// while setting up its API or environment). The process cannot load
    /// another ONNX Runtime library after this.
    #[error("ONNX Runtime at {path} is unusable: {reason}")]
    LibraryUnusable {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// This process already loaded ONNX Runtime from another file; a process
    /// can hold only one.
    #[error("ONNX Runtime is already loaded from {loaded}; cannot also load {requested}")]
    LibraryConflict {
        /// The file in use.
        loaded: PathBuf,
        /// The file asked for.
        requested: PathBuf,
    },
    /// The model file could not be read.
    #[error("cannot read model {path}: {source}")]
    ModelRead {
        /// The model file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The runtime rejected the model (corrupt, unsupported operator or IR version).
    #[error("cannot load model {path}: {reason}")]
    ModelLoad {
        /// The model file.
        path: PathBuf,
        /// The runtime's message.
        reason: String,
    },
    /// The model's inputs or outputs differ from what its specification says.
    #[error("model {path} does not match its specification: {}", problems.join("; "))]
    ModelMismatch {
        /// The model file.
        path: PathBuf,
        /// Each difference, one sentence each.
        problems: Vec<String>,
    },
    /// A configuration value or an [`IoSpec`](super::IoSpec) is impossible.
    #[error("inference configuration: {0}")]
    Config(String),
    /// The input tensors do not fit the specification (caller's error; the
    /// session is unaffected).
    #[error("bad input: {0}")]
    BadInput(String),
    /// `run` was called on a backend that is not awake.
    #[error("the accelerator is not awake")]
    NotAwake,
    /// The runtime failed while running the batch, or returned outputs that
    /// differ from the specification.
    #[error("inference failed: {0}")]
    Run(String),
    /// The backend is unavailable for the rest of this run of the node
    /// (its earlier failure is the reason); the node uses its triggers alone.
    #[error("inference unavailable: {0}")]
    Unavailable(String),
}

impl InferError {
    /// Whether trying again without changing anything (library, model,
    /// configuration) cannot help. A [`BurstRunner`](super::BurstRunner)
    /// stops waking a backend that failed this way.
    pub fn is_permanent(&self) -> bool {
        !matches!(
            self,
            InferError::BadInput(_) | InferError::NotAwake | InferError::Run(_)
        )
    }

    /// A short stable name of the variant, for counters and status lines.
    pub fn kind(&self) -> &'static str {
        match self {
            InferError::NoLibraryLocation => "no_library_location",
            InferError::LibraryNotFound { .. } => "library_not_found",
            InferError::LibraryLoad { .. } => "library_load",
            InferError::NotOnnxRuntime { .. } => "not_onnxruntime",
            InferError::LibraryVersion { .. } => "library_version",
            InferError::LibraryUnusable { .. } => "library_unusable",
            InferError::LibraryConflict { .. } => "library_conflict",
            InferError::ModelRead { .. } => "model_read",
            InferError::ModelLoad { .. } => "model_load",
            InferError::ModelMismatch { .. } => "model_mismatch",
            InferError::Config(_) => "config",
            InferError::BadInput(_) => "bad_input",
            InferError::NotAwake => "not_awake",
            InferError::Run(_) => "run",
            InferError::Unavailable(_) => "unavailable",
        }
    }
}
