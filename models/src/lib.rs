//! Model bundles: the manifest that describes a model file (version, hash,
//! quantization, tensor names and shapes, classes, measured latency) and the
//! check of a model file against it. The fusion model itself lives in
//! `models/fusion/` with the script that trains it (see its README). Signed
//! bundles carry new models and settings to a node; the node's trust root
//! says whose signatures count.
//!
//! Layout:
//! - [`manifest`]: [`Manifest`], read from TOML and checked; [`Manifest::verify_model`];
//! - [`bundle`]: keys, the trust root, bundles, settings patches and the verifier.

pub mod bundle;
pub mod manifest;

pub use manifest::{Latency, Manifest, ManifestError, TensorSpec, VerifyError};
