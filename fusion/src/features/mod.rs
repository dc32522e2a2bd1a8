//! Model features: what the fusion model sees of an event.
//!
//! [`FeatureBank`] keeps a few minutes of per-modality history, fed the same
//! sensor windows as the triggers; when the detector finalises an event,
//! [`FeatureBank::event`] summarises the event's span into one fixed-length
//! vector per modality ([`EventFeatures`]). A modality that was missing during
//! the event is `None` and becomes a zero vector with a 0 in the mask
//! ([`Batch`]), never zeros passed off as readings.
//!
//! - [`logmel`]: streaming log-mel frames (realfft);
//! - [`audio`]: levels above the pre-event floor per mel band, their spread,
//!   envelope modulation, spectral statistics ([`AUDIO_DIM`] values);
//! - [`camera`]: motion area, a 4x4 motion grid, extent, path and light
//!   change from frame differences ([`CAMERA_DIM`]);
//! - [`climate`]: temperature/humidity/pressure against a rolling baseline
//!   and rates of change ([`CLIMATE_DIM`]).
//!
//! The order of values in each vector is part of the model's contract: the
//! training script reads vectors dumped by the node (`fusion.dump_features`),
//! so features are computed by this code only.

pub mod audio;
pub mod camera;
pub mod climate;
pub mod logmel;
mod stats;

use serde::{Deserialize, Serialize};

pub use audio::AUDIO_DIM;
pub use camera::CAMERA_DIM;
pub use climate::CLIMATE_DIM;

use crate::{AudioChunk, ClimateSample, GrayFrame, Modality};

/// Per-modality feature vectors of one event.
#[derive(Clone, Debug, PartialEq, Default, Serialize, Deserialize)]
pub struct EventFeatures {
    /// [`AUDIO_DIM`] values, or `None` when the microphone was missing.
    pub audio: Option<Vec<f32>>,
    /// [`CAMERA_DIM`] values, or `None` when the camera was missing.
    pub camera: Option<Vec<f32>>,
    /// [`CLIMATE_DIM`] values, or `None` when the climate sensor was missing.
    pub climate: Option<Vec<f32>>,
}

impl EventFeatures {
    /// Whether a modality is present.
    pub fn has(&self, m: Modality) -> bool {
        match m {
            Modality::Audio => self.audio.is_some(),
            Modality::Camera => self.camera.is_some(),
            Modality::Climate => self.climate.is_some(),
        }
    }

    /// A copy with one modality removed.
    pub fn without(&self, m: Modality) -> EventFeatures {
        let mut f = self.clone();
        match m {
            Modality::Audio => f.audio = None,
            Modality::Camera => f.camera = None,
            Modality::Climate => f.climate = None,
        }
        f
    }

    /// The presence mask, in [`Modality::ALL`] order.
    pub fn mask(&self) -> [f32; 3] {
        Modality::ALL.map(|m| if self.has(m) { 1.0 } else { 0.0 })
    }
}

/// History of every modality, for event features.
#[derive(Default)]
pub struct FeatureBank {
    audio: audio::AudioHistory,
    camera: camera::CameraHistory,
    climate: climate::ClimateHistory,
}

impl FeatureBank {
    /// Empty history.
    pub fn new() -> Self {
        FeatureBank::default()
    }

    /// Feeds mono audio.
    pub fn push_audio(&mut self, c: &AudioChunk) {
        self.audio.push(c.start_ms, c.sample_rate, &c.samples);
    }

    /// Feeds a grayscale frame.
    pub fn push_frame(&mut self, f: &GrayFrame) {
        self.camera.push(f);
    }

    /// Feeds a climate reading.
    pub fn push_climate(&mut self, s: &ClimateSample) {
        self.climate.push(s);
    }

    /// Modality `m` stopped (off by the power policy or on demand, or out):
    /// no feature is taken across the time it was off. (Audio and climate
    /// history are kept by time, so only the camera's frame differences
    /// need telling.)
    pub fn stopped(&mut self, m: crate::Modality) {
        if m == crate::Modality::Camera {
            self.camera.gap();
        }
    }

    /// Features of the event `[start_ms, end_ms]`.
    pub fn event(&self, start_ms: i64, end_ms: i64) -> EventFeatures {
        EventFeatures {
            audio: self.audio.features(start_ms, end_ms),
            camera: self.camera.features(start_ms, end_ms),
            climate: self.climate.features(start_ms, end_ms),
        }
    }
}

/// Model input tensors for a batch of rows, row-major `[rows, dim]`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Batch {
    /// Rows.
    pub rows: usize,
    /// `[rows, AUDIO_DIM]`.
    pub audio: Vec<f32>,
    /// `[rows, CAMERA_DIM]`.
    pub camera: Vec<f32>,
    /// `[rows, CLIMATE_DIM]`.
    pub climate: Vec<f32>,
    /// `[rows, 3]`: 1 where the modality is present.
    pub mask: Vec<f32>,
}

impl Batch {
    /// Appends one row. A vector of the wrong length is treated as missing.
    pub fn push(&mut self, f: &EventFeatures) {
        fn put(dst: &mut Vec<f32>, v: &Option<Vec<f32>>, dim: usize) -> f32 {
            match v {
                Some(v) if v.len() == dim => {
                    dst.extend_from_slice(v);
                    1.0
                }
                _ => {
                    dst.resize(dst.len() + dim, 0.0);
                    0.0
                }
            }
        }
        let a = put(&mut self.audio, &f.audio, AUDIO_DIM);
        let c = put(&mut self.camera, &f.camera, CAMERA_DIM);
        let k = put(&mut self.climate, &f.climate, CLIMATE_DIM);
        self.mask.extend([a, c, k]);
        self.rows += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_modality_is_masked_not_faked() {
        let f = EventFeatures {
            audio: Some(vec![1.0; AUDIO_DIM]),
            camera: None,
            climate: Some(vec![2.0; CLIMATE_DIM + 1]),
        };
        let mut b = Batch::default();
        b.push(&f);
        b.push(&f.without(Modality::Audio));
        assert_eq!(b.rows, 2);
        assert_eq!(b.mask, vec![1.0, 0.0, 0.0, 0.0, 0.0, 0.0]);
        assert_eq!(b.audio.len(), 2 * AUDIO_DIM);
        assert!(b.audio[AUDIO_DIM..].iter().all(|&v| v == 0.0));
        assert_eq!(b.camera.len(), 2 * CAMERA_DIM);
        assert_eq!(b.climate.len(), 2 * CLIMATE_DIM);
    }
}
