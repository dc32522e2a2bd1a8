//! Message types shared across the workspace: the event record that the node
//! stores and forwards, its compact versioned binary encoding, and its stable
//! JSON view.
//!
//! This crate depends on `serde`, `postcard` and `thiserror` only, so that the
//! field tools build on any operating system without the node's hardware stack.
//!
//! Layout:
//! - [`event`]: [`EventRecord`] and the types it is made of, in fixed-point units;
//! - [`codec`]: the versioned binary envelope (`[version][postcard body]`);
//! - [`json`]: [`EventJson`], the documented JSON view in physical units.

pub mod codec;
pub mod event;
pub mod json;

pub use codec::{DecodeError, decode_event, encode_event};
pub use event::{EventClass, EventRecord, KeyFeatures, ModalityScores, ModelVersion, Permille};
pub use json::EventJson;
