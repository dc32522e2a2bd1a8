//! Model inference on an accelerator, in bursts.
//!
//! The always-on triggers decide when a window is worth classifying; a burst
//! then classifies a batch of windows in one call. The accelerator is woken
//! for the burst and released after an idle time, so between bursts the node
//! holds no session, no model weights and no inference threads.
//!
//! Layout:
//! - [`tensor`]: named `f32` tensors, batch first ([`NamedTensors`]), and the
//!   expected inputs and outputs of a model ([`IoSpec`], filled from its manifest);
//! - [`accelerator`]: the [`Accelerator`] trait (wake, run, release), and how
//!   a HailoRT backend would fit beside ONNX Runtime;
//! - [`library`]: where the ONNX Runtime shared library is found
//!   (configuration, then `ORT_DYLIB_PATH`, then `scripts/install-onnxruntime`'s place);
//! - [`ort_backend`]: [`OrtBackend`], ONNX Runtime on the CPU through `ort`
//!   (loaded at run time), checking the model against its [`IoSpec`]s;
//! - [`lifecycle`]: [`BurstRunner`], which wakes the accelerator on demand,
//!   releases it when idle, counts wakes and runs and reports a [`Status`];
//! - [`InferError`] (in [`error`]): why inference could not run.
//!
//! Failure is a typed error, never a panic: a missing or wrong-version
//! library, a missing or corrupt model, a model that does not match its
//! specification and malformed input all come back as [`InferError`], and a
//! [`BurstRunner`] whose backend cannot work reports
//! [`Status::Unavailable`] so the node can fall back to its triggers.

pub mod accelerator;
pub mod error;
pub mod library;
pub mod lifecycle;
pub mod ort_backend;
mod runtime;
pub mod tensor;

pub use accelerator::Accelerator;
pub use error::InferError;
pub use library::{LibraryLocation, LibrarySource};
pub use lifecycle::{BurstRunner, Counters, LifecycleConfig, Status};
pub use ort_backend::{OrtBackend, OrtConfig};
pub use tensor::{ElementType, IoSpec, NamedTensors, TensorF32};
