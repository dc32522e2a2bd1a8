//! Detection for the field node: per-modality features and always-on
//! triggers, and the merger that turns trigger activations into events.
//!
//! Layout:
//! - [`input`]: the windows that sensor tasks feed in (mono audio chunks,
//!   small grayscale frames, climate samples), all stamped in UTC milliseconds;
//! - [`audio_trigger`] (with its per-band noise model, [`band_noise`]),
//!   [`motion`], [`climate_trigger`]: the triggers, each
//!   reporting [`activation::Activation`]s with their features;
//! - [`classify`]: what the triggers alone can tell (the rules are in its doc);
//! - [`detector`]: [`Detector`], merging activations into [`Detection`]s
//!   (a heat rise with nothing heard or seen is judged against the view's
//!   light, [`light`]);
//! - [`config`]: [`DetectorConfig`] (`[detector]` in the node's configuration).
//!
//! The detector is a pure function of the per-modality input sequences: how
//! the sensor tasks interleave (replay speed, scheduling) never changes its
//! output, because events are only finalised once every open modality's
//! watermark has passed them.

pub mod activation;
pub mod audio_trigger;
pub mod band_noise;
pub mod classifier;
pub mod classify;
pub mod climate_trigger;
pub mod config;
pub mod detection;
pub mod detector;
pub mod features;
pub mod fusion_config;
pub mod infer;
pub mod input;
pub mod light;
pub mod model;
pub mod motion;
mod shading;

pub use classifier::{Classifier, ClassifyError, Verdict};
pub use config::{
    AudioTriggerConfig, ClimateTriggerConfig, DetectorConfig, MergeConfig, MotionConfig,
};
pub use detection::Detection;
pub use detector::{Detector, DetectorStats};
pub use fusion_config::FusionConfig;
pub use input::{AudioChunk, ClimateSample, GrayFrame, Modality};
