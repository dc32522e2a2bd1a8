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
//!   change of what the motion trigger follows as crossing ([`CAMERA_DIM`]);
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

use ndarray::{Array2, ArrayView1};
use serde::{Deserialize, Serialize};

pub use audio::AUDIO_DIM;
pub use camera::CAMERA_DIM;
pub use climate::CLIMATE_DIM;

use crate::motion::FrameMotion;
use crate::{AudioChunk, ClimateSample, Modality};

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

    /// Feeds what the motion trigger saw in a frame
    /// ([`crate::Detector::frame_motion`]).
    pub fn push_motion(&mut self, m: &FrameMotion) {
        self.camera.push(m);
    }

    /// Feeds a climate reading.
    pub fn push_climate(&mut self, s: &ClimateSample) {
        self.climate.push(s);
    }

    /// Modality `m` stopped (off by the power policy or on demand, or out):
    /// no feature is taken across the time it was off. (Audio and climate
    /// history are kept by time, so only the camera's light change needs
    /// telling.)
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

/// Model inputs for a batch of rows: one `[rows, dim]` matrix per modality
/// and the `[rows, 3]` mask (1 where the modality is present).
#[derive(Clone, Debug, PartialEq)]
pub struct Batch {
    /// `[rows, AUDIO_DIM]`.
    pub audio: Array2<f32>,
    /// `[rows, CAMERA_DIM]`.
    pub camera: Array2<f32>,
    /// `[rows, CLIMATE_DIM]`.
    pub climate: Array2<f32>,
    /// `[rows, 3]`: 1 where the modality is present.
    pub mask: Array2<f32>,
}

impl Batch {
    /// One row per event. A vector of the wrong length is treated as
    /// missing: its row stays zero and its mask 0.
    pub fn from_rows(rows: &[&EventFeatures]) -> Batch {
        let n = rows.len();
        let mut b = Batch {
            audio: Array2::zeros((n, AUDIO_DIM)),
            camera: Array2::zeros((n, CAMERA_DIM)),
            climate: Array2::zeros((n, CLIMATE_DIM)),
            mask: Array2::zeros((n, 3)),
        };
        for (i, f) in rows.iter().enumerate() {
            for (k, (dst, v)) in [
                (&mut b.audio, &f.audio),
                (&mut b.camera, &f.camera),
                (&mut b.climate, &f.climate),
            ]
            .into_iter()
            .enumerate()
            {
                if let Some(v) = v.as_deref().filter(|v| v.len() == dst.ncols()) {
                    dst.row_mut(i).assign(&ArrayView1::from(v));
                    b.mask[[i, k]] = 1.0;
                }
            }
        }
        b
    }

    /// Rows.
    pub fn rows(&self) -> usize {
        self.mask.nrows()
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
        let without = f.without(Modality::Audio);
        let b = Batch::from_rows(&[&f, &without]);
        assert_eq!(b.rows(), 2);
        assert_eq!(b.mask, ndarray::array![[1.0, 0.0, 0.0], [0.0, 0.0, 0.0]]);
        assert_eq!(b.audio.dim(), (2, AUDIO_DIM));
        assert!(b.audio.row(0).iter().all(|&v| v == 1.0));
        assert!(b.audio.row(1).iter().all(|&v| v == 0.0));
        assert_eq!(b.camera.dim(), (2, CAMERA_DIM));
        assert!(b.camera.iter().all(|&v| v == 0.0));
        assert_eq!(b.climate.dim(), (2, CLIMATE_DIM));
        assert!(b.climate.iter().all(|&v| v == 0.0));
    }
}
