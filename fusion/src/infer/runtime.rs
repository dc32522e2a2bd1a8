//! The process-wide ONNX Runtime: the shared library and `ort`'s single
//! environment.
//!
//! `ort` keeps the loaded library and its environment in process globals: a
//! process can load one ONNX Runtime library, once, and create one
//! environment, once. This module owns that state behind a mutex. A failure
//! before the library is accepted (missing file, not a shared library, not
//! ONNX Runtime, too old) leaves the process free to try another path; a
//! failure after it (the API or the environment cannot be set up, including
//! a panic inside `ort`, which is caught here) makes ONNX Runtime unusable
//! in this process, and every later request says why.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use ort::LoadDynamicError;
use ort::environment::Environment;

use super::error::InferError;
use super::library::ORT_MIN_MINOR;

/// The loaded library and its environment; sessions are created from it.
pub(crate) struct Runtime {
    /// The environment every session is created in.
    pub(crate) env: Environment,
    /// The library file it was loaded from.
    pub(crate) path: PathBuf,
    /// ONNX Runtime's build description (version, commit).
    pub(crate) build_info: String,
}

enum State {
    Empty,
    Ready(Arc<Runtime>),
    Broken { path: PathBuf, reason: String },
}

static STATE: Mutex<State> = Mutex::new(State::Empty);

fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic without a message".to_string()
    }
}

/// The runtime loaded from `path`: loads it on first use, returns the
/// loaded one after that, or the reason it cannot be had.
pub(crate) fn runtime(path: &Path) -> Result<Arc<Runtime>, InferError> {
    // The state is only ever replaced whole, so a poisoned lock still holds a
    // consistent value.
    let mut state = STATE.lock().unwrap_or_else(|p| p.into_inner());
    match &*state {
        State::Ready(rt) if same_file(&rt.path, path) => return Ok(Arc::clone(rt)),
        State::Ready(rt) => {
            return Err(InferError::LibraryConflict {
                loaded: rt.path.clone(),
                requested: path.to_path_buf(),
            });
        }
        State::Broken { path: p, reason } => {
            return Err(InferError::LibraryUnusable {
                path: p.clone(),
                reason: reason.clone(),
            });
        }
        State::Empty => {}
    }

    let builder = match catch_unwind(AssertUnwindSafe(|| ort::init_from(path))) {
        Ok(Ok(builder)) => builder,
        Ok(Err(e)) => return Err(load_error(path, e)),
        Err(payload) => {
            let reason = format!("panicked while loading: {}", panic_message(&*payload));
            *state = State::Broken {
                path: path.to_path_buf(),
                reason: reason.clone(),
            };
            return Err(InferError::LibraryUnusable {
                path: path.to_path_buf(),
                reason,
            });
        }
    };

    // From here on the library is loaded into the process for good.
    let built = catch_unwind(AssertUnwindSafe(|| {
        let env = builder.with_name("fieldnode").build()?;
        Ok::<_, ort::Error>((env, ort::info().to_string()))
    }));
    let reason = match built {
        Ok(Ok((env, build_info))) => {
            tracing::info!(path = %path.display(), build_info = %build_info, "ONNX Runtime loaded");
            let rt = Arc::new(Runtime {
                env,
                path: path.to_path_buf(),
                build_info,
            });
            *state = State::Ready(Arc::clone(&rt));
            return Ok(rt);
        }
        Ok(Err(e)) => format!("creating the environment failed: {e}"),
        Err(payload) => format!(
            "it does not provide ONNX Runtime C API version {ORT_MIN_MINOR} ({})",
            panic_message(&*payload)
        ),
    };
    *state = State::Broken {
        path: path.to_path_buf(),
        reason: reason.clone(),
    };
    Err(InferError::LibraryUnusable {
        path: path.to_path_buf(),
        reason,
    })
}

fn load_error(path: &Path, e: LoadDynamicError) -> InferError {
    match e {
        LoadDynamicError::Dlopen { error, .. } => InferError::LibraryLoad {
            path: path.to_path_buf(),
            reason: error.to_string(),
        },
        LoadDynamicError::MissingApi { .. } => InferError::NotOnnxRuntime {
            path: path.to_path_buf(),
        },
        LoadDynamicError::InvalidVersionString => InferError::LibraryVersion {
            path: path.to_path_buf(),
            found: "an unreadable version".to_string(),
            expected: format!("1.{ORT_MIN_MINOR}"),
        },
        LoadDynamicError::BadVersion { version_str, .. } => InferError::LibraryVersion {
            path: path.to_path_buf(),
            found: version_str,
            expected: format!("1.{ORT_MIN_MINOR}"),
        },
    }
}
