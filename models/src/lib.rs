//! Model bundles: the manifest that describes a model file (version, hash,
//! quantization, tensor names and shapes, classes). Signing, verification
//! and installation of bundles, and the model files with their training
//! script, arrive with the fusion and update issues.
//!
//! Layout:
//! - [`manifest`]: [`Manifest`], read from TOML and checked.

pub mod manifest;

pub use manifest::{Manifest, ManifestError, TensorSpec};
