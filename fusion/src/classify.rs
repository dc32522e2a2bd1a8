//! What the triggers alone can tell about an event. Rules, in words:
//!
//! - **Machinery anomaly**: the temperature rose abnormally fast during the
//!   event (heat from a nearby machine: strong evidence), or a modulated
//!   sound above 300 Hz went on for more than 20 s (calls come in bouts of
//!   seconds; a bearing fault rings on).
//! - **Wildlife**: tonal sound (flatness < 0.35) dominated by energy above
//!   1.5 kHz (song, calls), and/or a small moving region (< 6 % of the frame,
//!   shorter than 30 % of its height).
//! - **Human activity**: sound centred in the voice range (100 Hz..1.5 kHz,
//!   mostly mid band) with syllable-like modulation (1.5..9 peaks/s), and/or
//!   a large or tall moving region (> 6 % of the frame or > 30 % of its height).
//! - **Background**: sound only, broadband or low-frequency (wind, rain, a
//!   machine switching on), with no motion and no heat.
//!
//! Each rule adds evidence to its class; the class with the most evidence
//! wins, with its share of the total as confidence. Without evidence the
//! class is unknown.

use messages::EventClass;

use crate::activation::{AudioFeatures, ClimateFeatures, MotionFeatures};

/// The strongest features of each modality in an event.
#[derive(Debug, Default, Clone, Copy)]
pub struct Evidence {
    /// Audio, if it fired.
    pub audio: Option<AudioFeatures>,
    /// Length of the audio activity, ms.
    pub audio_ms: i64,
    /// Motion, if it fired.
    pub motion: Option<MotionFeatures>,
    /// Climate, if it fired.
    pub climate: Option<ClimateFeatures>,
}

/// Class and confidence from the evidence.
pub fn classify(e: &Evidence) -> (EventClass, f32) {
    let mut score = [0f32; 4]; // wildlife, machinery, human, background
    const W: usize = 0;
    const M: usize = 1;
    const H: usize = 2;
    const B: usize = 3;
    if let Some(c) = e.climate {
        // Heat is context: a machine warms the air near the node, but so
        // does the sun on the enclosure. It decides only when the sound
        // does not (or there is no sound).
        score[M] += 0.8 + 0.4 * (c.temp_delta_c / 2.0).min(1.0);
    }
    if let Some(a) = e.audio {
        let [low, mid, high] = a.band_share;
        let tonal = a.flatness < 0.35;
        if e.audio_ms > 20_000 && high + mid > 0.5 && a.modulation_hz >= 1.0 {
            // Calls come in bouts of seconds; a sound changing for this long is a machine.
            score[M] += 1.0;
        } else if tonal && high > 0.5 && a.peak_hz > 1500.0 {
            score[W] += 1.0 + high;
        } else if mid + low * 0.5 > 0.5
            && (100.0..1500.0).contains(&a.peak_hz)
            && (1.5..9.0).contains(&a.modulation_hz)
            && low < 0.6
        {
            score[H] += 1.0 + mid;
        } else if low > 0.5 || a.flatness >= 0.35 {
            score[B] += 0.6 + low * 0.4;
        } else if high > 0.5 {
            score[W] += 0.5;
        } else {
            score[H] += 0.3;
        }
    }
    if let Some(m) = e.motion {
        if m.max_area > 0.06 || m.max_height > 0.3 {
            score[H] += 1.2;
        } else {
            score[W] += 1.0;
        }
        // Motion makes weather an unlikely explanation.
        score[B] *= 0.3;
    }
    if e.climate.is_some() {
        score[B] *= 0.3;
    }
    let total: f32 = score.iter().sum();
    let (best, &s) = match score.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)) {
        Some(x) => x,
        None => return (EventClass::Unknown, 0.0),
    };
    if s < 0.3 || total <= 0.0 {
        return (EventClass::Unknown, 0.0);
    }
    let class = [
        EventClass::Wildlife,
        EventClass::MachineryAnomaly,
        EventClass::HumanActivity,
        EventClass::Background,
    ][best];
    (class, (s / total).clamp(0.0, 1.0) * (s / (s + 0.5)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn audio(
        band_share: [f32; 3],
        peak_hz: f32,
        flatness: f32,
        modulation_hz: f32,
    ) -> Option<AudioFeatures> {
        Some(AudioFeatures {
            peak_snr_db: 20.0,
            peak_hz,
            band_share,
            flatness,
            modulation_hz,
        })
    }

    #[test]
    fn rules() {
        let bird = Evidence {
            audio: audio([0.0, 0.1, 0.9], 3500.0, 0.1, 4.0),
            audio_ms: 2000,
            ..Default::default()
        };
        assert_eq!(classify(&bird).0, EventClass::Wildlife);
        let speech = Evidence {
            audio: audio([0.2, 0.7, 0.1], 400.0, 0.4, 4.0),
            audio_ms: 8000,
            ..Default::default()
        };
        assert_eq!(classify(&speech).0, EventClass::HumanActivity);
        let walker = Evidence {
            motion: Some(MotionFeatures {
                max_area: 0.1,
                centroid: (0.5, 0.5),
                max_height: 0.4,
            }),
            ..Default::default()
        };
        assert_eq!(classify(&walker).0, EventClass::HumanActivity);
        let heat = Evidence {
            climate: Some(ClimateFeatures {
                temp_delta_c: 3.0,
                mean_temp_c: 20.0,
                max_rate_c_per_min: 2.0,
                peak_ms: 0,
            }),
            audio: audio([0.1, 0.3, 0.6], 3000.0, 0.6, 8.0),
            audio_ms: 40_000,
            ..Default::default()
        };
        assert_eq!(classify(&heat).0, EventClass::MachineryAnomaly);
        let wind = Evidence {
            audio: audio([0.9, 0.1, 0.0], 120.0, 0.6, 0.5),
            audio_ms: 5000,
            ..Default::default()
        };
        assert_eq!(classify(&wind).0, EventClass::Background);
        assert_eq!(classify(&Evidence::default()).0, EventClass::Unknown);
    }
}
