//! Detector settings (`[detector]` in the node's configuration).

use serde::{Deserialize, Serialize};

/// Audio trigger.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AudioTriggerConfig {
    /// Analysis frame length, ms (rounded to a power-of-two FFT size); hop is half.
    pub frame_ms: f32,
    /// An activation starts when a band rises this far above its noise floor, dB.
    pub on_db: f32,
    /// ... and lasts while a band stays this far above it, dB.
    pub off_db: f32,
    /// How fast the noise floor may rise, dB per second (it falls at once).
    pub floor_rise_db_per_s: f32,
    /// Shortest activation, ms.
    pub min_duration_ms: u32,
    /// An activation ends this long after the level fell below `off_db`, ms.
    pub hangover_ms: u32,
    /// At an onset (a spectral-flux peak), an activation already starts at
    /// this level above the floor, dB (between `off_db` and `on_db`).
    pub onset_on_db: f32,
    /// An onset is a flux above its running mean by this many running
    /// (mean absolute) deviations.
    pub onset_k: f32,
}

impl Default for AudioTriggerConfig {
    fn default() -> Self {
        AudioTriggerConfig {
            frame_ms: 32.0,
            on_db: 10.0,
            off_db: 5.0,
            floor_rise_db_per_s: 0.4,
            min_duration_ms: 120,
            hangover_ms: 800,
            onset_on_db: 7.0,
            onset_k: 4.0,
        }
    }
}

/// Camera motion trigger.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct MotionConfig {
    /// A pixel moves when it differs from the background by at least this
    /// many grey levels (after removing global and large-scale light
    /// changes); noise and the pixel's own usual deviation can raise the bar.
    pub pixel_threshold: f32,
    /// An activation needs this share of the frame in motion, 0..1.
    pub on_area: f32,
    /// Consecutive moving frames needed to start an activation.
    pub min_frames: u32,
    /// An activation ends this long after the last moving frame, ms.
    pub hangover_ms: u32,
    /// Time constant of the background model, ms.
    pub background_tau_ms: u32,
    /// A pixel must also differ by this many times the frame's measured
    /// noise (the robust spread of all pixels' differences).
    pub noise_k: f32,
    /// ... and by this many times its own usual deviation (swaying
    /// vegetation, flickering water).
    pub deviation_k: f32,
    /// Time constant of each pixel's usual deviation, ms.
    pub deviation_tau_ms: u32,
    /// When this share of the frame changes at once, the frame is a light
    /// change (exposure, day/night switch): the background restarts from it
    /// instead of reporting motion, 0..1.
    pub light_change_area: f32,
}

impl Default for MotionConfig {
    fn default() -> Self {
        MotionConfig {
            pixel_threshold: 18.0,
            on_area: 0.002,
            min_frames: 2,
            hangover_ms: 1500,
            background_tau_ms: 8_000,
            noise_k: 4.0,
            deviation_k: 3.0,
            deviation_tau_ms: 30_000,
            light_change_area: 0.3,
        }
    }
}

/// Default [`ClimateTriggerConfig::sun_brightening`].
pub const SUN_BRIGHTENING: f32 = 1.15;

/// Climate trigger.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ClimateTriggerConfig {
    /// Window over which the rate of change is measured, ms.
    pub rate_window_ms: u32,
    /// An activation starts when the temperature rises faster than this, °C per minute.
    pub on_rate_c_per_min: f32,
    /// ... and lasts while it rises faster than this, °C per minute.
    pub off_rate_c_per_min: f32,
    /// Time constant of the rolling baseline, ms.
    pub baseline_tau_ms: u32,
    /// A heat rise is the sun on the enclosure, neither an event nor the
    /// context of the events it overlaps, when the camera's view had
    /// brightened by at least this factor by the time the heat began (the
    /// light it held for half a minute from the rise's start at the latest,
    /// over the dimmest minute of the quarter of an hour before); 0 turns
    /// the test off.
    pub sun_brightening: f32,
}

impl Default for ClimateTriggerConfig {
    fn default() -> Self {
        ClimateTriggerConfig {
            rate_window_ms: 60_000,
            on_rate_c_per_min: 0.5,
            off_rate_c_per_min: 0.15,
            baseline_tau_ms: 600_000,
            sun_brightening: SUN_BRIGHTENING,
        }
    }
}

/// Merging activations into events.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct MergeConfig {
    /// Activations closer than this join one event, ms.
    pub gap_ms: u32,
    /// Audio activations this close that sound alike (dominant frequency
    /// within half an octave, similar share of low, mid and high bands,
    /// little energy below 300 Hz so that wind gusts never qualify) join
    /// one event even beyond `gap_ms`: a bird's song bout or a repeated
    /// call is one event, not one per song, ms (0 turns it off).
    pub repeat_gap_ms: u32,
    /// Events shorter than this are dropped, ms.
    pub min_event_ms: u32,
    /// Longer events are closed and a new one started, ms.
    pub max_event_ms: u32,
    /// Keep events the triggers class as background (wind, rain, light)
    /// when no model classifies them (no model, or the power policy denied
    /// the burst). With a model, its verdict decides and `[fusion] exclude`
    /// applies.
    pub report_background: bool,
}

impl Default for MergeConfig {
    fn default() -> Self {
        MergeConfig {
            gap_ms: 3_000,
            repeat_gap_ms: 6_000,
            min_event_ms: 300,
            max_event_ms: 180_000,
            report_background: false,
        }
    }
}

/// The whole detector.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct DetectorConfig {
    /// `[detector.audio]`
    pub audio: AudioTriggerConfig,
    /// `[detector.motion]`
    pub motion: MotionConfig,
    /// `[detector.climate]`
    pub climate: ClimateTriggerConfig,
    /// `[detector.merge]`
    pub merge: MergeConfig,
}

impl DetectorConfig {
    /// Range checks, as `(key path relative to [detector], problem)`.
    pub fn validate(&self) -> Vec<(String, String)> {
        let mut e = Vec::new();
        let mut need = |ok: bool, k: &str, m: &str| {
            if !ok {
                e.push((k.to_string(), m.to_string()));
            }
        };
        let a = &self.audio;
        need(
            (8.0..=256.0).contains(&a.frame_ms),
            "audio.frame_ms",
            "must be between 8 and 256 ms",
        );
        need(
            a.on_db > 0.0 && a.on_db <= 60.0,
            "audio.on_db",
            "must be between 0 and 60 dB",
        );
        need(
            a.off_db > 0.0 && a.off_db <= a.on_db,
            "audio.off_db",
            "must be positive and not above audio.on_db",
        );
        need(
            a.onset_on_db >= a.off_db && a.onset_on_db <= a.on_db,
            "audio.onset_on_db",
            "must be between audio.off_db and audio.on_db",
        );
        need(
            (1.0..=20.0).contains(&a.onset_k),
            "audio.onset_k",
            "must be between 1 and 20",
        );
        need(
            (0.01..=20.0).contains(&a.floor_rise_db_per_s),
            "audio.floor_rise_db_per_s",
            "must be between 0.01 and 20",
        );
        need(
            a.hangover_ms <= 60_000,
            "audio.hangover_ms",
            "must be at most 60000 ms",
        );
        let m = &self.motion;
        need(
            (1.0..=255.0).contains(&m.pixel_threshold),
            "motion.pixel_threshold",
            "must be between 1 and 255",
        );
        need(
            m.on_area > 0.0 && m.on_area < 1.0,
            "motion.on_area",
            "must be between 0 and 1",
        );
        need(
            (1..=100).contains(&m.min_frames),
            "motion.min_frames",
            "must be between 1 and 100",
        );
        need(
            m.background_tau_ms >= 100,
            "motion.background_tau_ms",
            "must be at least 100 ms",
        );
        need(
            (1.0..=20.0).contains(&m.noise_k),
            "motion.noise_k",
            "must be between 1 and 20",
        );
        need(
            (1.0..=20.0).contains(&m.deviation_k),
            "motion.deviation_k",
            "must be between 1 and 20",
        );
        need(
            m.deviation_tau_ms >= 1_000,
            "motion.deviation_tau_ms",
            "must be at least 1000 ms",
        );
        need(
            m.light_change_area > m.on_area && m.light_change_area <= 1.0,
            "motion.light_change_area",
            "must be above motion.on_area and at most 1",
        );
        let c = &self.climate;
        need(
            c.rate_window_ms >= 1_000,
            "climate.rate_window_ms",
            "must be at least 1000 ms",
        );
        need(
            c.on_rate_c_per_min > 0.0,
            "climate.on_rate_c_per_min",
            "must be positive",
        );
        need(
            c.off_rate_c_per_min >= 0.0 && c.off_rate_c_per_min <= c.on_rate_c_per_min,
            "climate.off_rate_c_per_min",
            "must be between 0 and climate.on_rate_c_per_min",
        );
        need(
            c.baseline_tau_ms >= 1_000,
            "climate.baseline_tau_ms",
            "must be at least 1000 ms",
        );
        need(
            c.sun_brightening == 0.0 || (1.01..=10.0).contains(&c.sun_brightening),
            "climate.sun_brightening",
            "must be 0 (off) or between 1.01 and 10",
        );
        let g = &self.merge;
        need(
            g.gap_ms <= 600_000,
            "merge.gap_ms",
            "must be at most 600000 ms",
        );
        need(
            g.repeat_gap_ms <= 60_000,
            "merge.repeat_gap_ms",
            "must be at most 60000 ms",
        );
        need(
            g.max_event_ms > g.min_event_ms,
            "merge.max_event_ms",
            "must be above merge.min_event_ms",
        );
        e
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sun_brightening_is_off_or_a_rise() {
        let mut c = DetectorConfig::default();
        assert!(c.validate().is_empty(), "{:?}", c.validate());
        for (v, ok) in [
            (0.0, true),
            (1.2, true),
            (10.0, true),
            (1.0, false),
            (0.5, false),
            (-1.0, false),
            (f32::NAN, false),
            (11.0, false),
        ] {
            c.climate.sun_brightening = v;
            let errors = c.validate();
            assert_eq!(errors.is_empty(), ok, "{v}: {errors:?}");
            if !ok {
                assert_eq!(errors[0].0, "climate.sun_brightening");
            }
        }
    }
}
