//! Model bundles: the manifest that describes a model file (version, hash,
//! quantization, tensor names and shapes, classes, measured latency) and the
//! check of a model file against it. The fusion model itself lives in
//! `models/fusion/` with the script that trains it (see its README).
//! Signing and installation of bundles arrive with the update issue.
//!
//! Layout:
//! - [`manifest`]: [`Manifest`], read from TOML and checked; [`Manifest::verify_model`].

pub mod manifest;

pub use manifest::{Latency, Manifest, ManifestError, TensorSpec, VerifyError};
