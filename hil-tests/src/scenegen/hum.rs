//! Mains hum: a transformer, generator or pump near the node humming at the
//! mains frequency (50 or 60 Hz) and its harmonics, strongest at twice the
//! mains frequency (magnetostriction), for the whole scene. Its steady
//! sound is background; only a change in the machine is an event.

use rand_chacha::ChaCha8Rng;

use super::dsp::{Wavetable, rms, uniform};

/// A steady hum.
#[derive(Clone, Debug)]
pub struct MainsHum {
    /// Mains frequency, Hz (50 or 60).
    pub mains_hz: f32,
    /// Level, dBFS RMS.
    pub level_db: f32,
    /// Harmonics: multiple of the mains frequency, relative amplitude, phase.
    harmonics: Vec<(f32, f32, f32)>,
}

impl MainsHum {
    /// A hum at `level_db`, on 50 or 60 Hz mains.
    pub fn draw(rng: &mut ChaCha8Rng, level_db: f32) -> Self {
        let mains_hz = if uniform(rng, 0.0, 1.0) < 0.5 {
            50.0
        } else {
            60.0
        };
        let harmonics = [
            (1.0, 0.45),
            (2.0, 1.0),
            (3.0, 0.3),
            (4.0, 0.35),
            (6.0, 0.15),
            (8.0, 0.08),
        ]
        .into_iter()
        .map(|(k, a)| {
            (
                k,
                a * uniform(rng, 0.6, 1.0),
                uniform(rng, 0.0, std::f32::consts::TAU),
            )
        })
        .collect();
        MainsHum {
            mains_hz,
            level_db,
            harmonics,
        }
    }

    /// Adds the hum to the whole of `buf`.
    pub fn render(&self, buf: &mut [f32], rate: f32) {
        let power: f32 = self.harmonics.iter().map(|h| h.1 * h.1 / 2.0).sum();
        let k = rms(self.level_db) / power.sqrt();
        let harmonics: Vec<(f32, f32, f32)> = self
            .harmonics
            .iter()
            .filter(|h| h.0 * self.mains_hz < rate * 0.45)
            .map(|&(m, a, ph)| (m, a * k, ph))
            .collect();
        let mut tone = Wavetable::new(rate, self.mains_hz, &harmonics);
        for s in buf.iter_mut() {
            *s += tone.run();
        }
    }
}
