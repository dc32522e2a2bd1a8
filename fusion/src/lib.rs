//! Detection for the field node: per-modality features and always-on
//! triggers, and the merger that turns trigger activations into events.
//!
//! Layout:
//! - [`input`]: the windows that sensor tasks feed in (mono audio chunks,
//!   small grayscale frames, climate samples), all stamped in UTC milliseconds;
//! - [`detection`]: the detector's output, one [`Detection`] per event.
//!
//! The detector is a pure function of the per-modality input sequences: how
//! the sensor tasks interleave (replay speed, scheduling) never changes its
//! output, because events are only finalised once every open modality's
//! watermark has passed them.

pub mod detection;
pub mod input;

pub use detection::Detection;
pub use input::{AudioChunk, ClimateSample, GrayFrame, Modality};
