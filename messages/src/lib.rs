//! Message types shared across the workspace: the event record that the node
//! stores and forwards, its compact versioned binary encoding, its stable
//! JSON view, and the field-link protocol that a technician's laptop speaks
//! with a running node.
//!
//! This crate depends on `serde`, `postcard` and `thiserror`, and for the field
//! link's framing on `cobs` and `crc32fast` (small, pure Rust), so that the
//! field tools build on any operating system without the node's hardware stack.
//!
//! Layout:
//! - [`event`]: [`EventRecord`] and the types it is made of, in fixed-point units;
//! - [`codec`]: the versioned binary envelope (`[version][postcard body]`);
//! - [`status`]: [`StatusRecord`], the periodic health report (with the store's
//!   disk, [`DiskReport`], the node's clock and RTC, [`ClockStatus`], and the
//!   detector's health counters, [`DetectionHealth`], and the events found and
//!   not stored, [`NotStored`]), and [`Priority`];
//! - [`update_status`]: the signed-update part of the status record;
//! - [`json`]: [`EventJson`], the documented JSON view in physical units;
//! - [`mod@pack`]: several records in one 340-byte Iridium SBD message;
//! - [`command`]: downlink commands (binary for SBD MT, JSON for MQTT);
//! - [`link`]: the field-link protocol between a technician's `field-tools link`
//!   and a running node (framing, requests and replies), transport-agnostic.

pub mod codec;
pub mod command;
pub mod event;
pub mod json;
pub mod link;
pub mod pack;
pub mod status;
pub mod update_status;

pub use codec::{DecodeError, Message, decode_event, decode_message, encode_event, encode_status};
#[cfg(feature = "json")]
pub use command::parse_json;
pub use command::{Command, CommandError, parse_mt};
pub use event::{
    EventClass, EventRecord, KeyFeatures, ModalityScores, ModelVersion, MonoRef, Permille,
    TimeQuality, TimeSource,
};
pub use json::EventJson;
pub use pack::{PackError, Packed, UnpackError, pack, unpack};
pub use status::{
    ClockStatus, DetectionHealth, DiskReport, DiskStateCode, DropCounters, LastSleep, NotStored,
    PowerModeCode, Priority, RtcState, RtcStatus, SensorHealth, SensorState, SleepReasonCode,
    StatusRecord, WakeCause,
};
pub use update_status::{
    BundleKindCode, ShortText, StatusCause, UpdateOutcome, UpdateResult, UpdateStatus,
};
