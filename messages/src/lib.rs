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
//! - [`json`]: [`EventJson`], the documented JSON view in physical units;
//! - [`pack`]: several records in one 340-byte Iridium SBD message;
//! - [`command`]: downlink commands (binary for SBD MT, JSON for MQTT).

pub mod codec;
pub mod command;
pub mod event;
pub mod json;
pub mod pack;
pub mod status;

pub use codec::{DecodeError, Message, decode_event, decode_message, encode_event, encode_status};
#[cfg(feature = "json")]
pub use command::parse_json;
pub use command::{Command, CommandError, parse_mt};
pub use event::{EventClass, EventRecord, KeyFeatures, ModalityScores, ModelVersion, Permille};
pub use json::EventJson;
pub use pack::{PackError, Packed, UnpackError, pack, unpack};
pub use status::{DropCounters, PowerModeCode, Priority, SensorHealth, SensorState, StatusRecord};
