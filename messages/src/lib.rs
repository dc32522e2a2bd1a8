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
//! - [`status`]: [`StatusRecord`], the periodic health report, and [`Priority`];
//! - [`json`]: [`EventJson`], the documented JSON view in physical units.

pub mod codec;
pub mod event;
pub mod json;
pub mod status;

pub use codec::{DecodeError, Message, decode_event, decode_message, encode_event, encode_status};
pub use event::{EventClass, EventRecord, KeyFeatures, ModalityScores, ModelVersion, Permille};
pub use json::EventJson;
pub use status::{DropCounters, PowerModeCode, Priority, SensorHealth, SensorState, StatusRecord};
