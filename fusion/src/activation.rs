//! What a trigger reports: an interval where its modality saw something,
//! with the features the classifier and the event record use.

use crate::Modality;

/// Features of an audio activation.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct AudioFeatures {
    /// Highest band level above its noise floor, dB.
    pub peak_snr_db: f32,
    /// Frequency with the most energy above the floor, Hz (energy-weighted over the activation).
    pub peak_hz: f32,
    /// Share of above-floor energy in the low (< 300 Hz), mid (300..2000 Hz) and high (> 2 kHz) bands.
    pub band_share: [f32; 3],
    /// Mean spectral flatness of the above-floor energy, 0 (pure tone) .. 1 (white noise).
    pub flatness: f32,
    /// Energy-envelope peaks per second (syllables, calls, impacts).
    pub modulation_hz: f32,
}

/// Features of a motion activation.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct MotionFeatures {
    /// Largest share of the frame in motion, 0..1.
    pub max_area: f32,
    /// Motion centroid at the largest area, 0..1 from left and top.
    pub centroid: (f32, f32),
    /// Tallest moving region, share of the frame height.
    pub max_height: f32,
}

/// Features of a climate activation.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct ClimateFeatures {
    /// Temperature change from the start of the rise to its highest point, °C.
    pub temp_delta_c: f32,
    /// Mean temperature during the activation, °C.
    pub mean_temp_c: f32,
    /// Fastest rise, °C per minute.
    pub max_rate_c_per_min: f32,
    /// When the temperature last reached a new high (by more than the
    /// readings' noise), ms since the epoch: where the heating stopped. The
    /// activation itself ends later, when the rise over the rate window has
    /// fallen below the off rate.
    pub peak_ms: i64,
}

/// Per-modality features.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Features {
    /// Audio.
    Audio(AudioFeatures),
    /// Camera.
    Motion(MotionFeatures),
    /// Climate.
    Climate(ClimateFeatures),
}

/// One trigger activation.
#[derive(Debug, Clone, PartialEq)]
pub struct Activation {
    /// Which trigger.
    pub modality: Modality,
    /// Start, ms since the epoch.
    pub start_ms: i64,
    /// End, ms since the epoch.
    pub end_ms: i64,
    /// Strength, 0..1.
    pub score: f32,
    /// Features.
    pub features: Features,
}

impl Activation {
    /// Where what the activation saw ended: for a heat rise its highest
    /// reading, for the others [`Activation::end_ms`].
    pub fn settled_end_ms(&self) -> i64 {
        match self.features {
            Features::Climate(f) => f.peak_ms.clamp(self.start_ms, self.end_ms),
            _ => self.end_ms,
        }
    }
}
