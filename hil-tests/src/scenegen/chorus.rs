//! Choruses that go on for hours: insects (crickets, katydids, cicadas) at
//! 3 to 10 kHz and frogs lower down. Each voice is a carrier gated by a
//! pulse train, itself grouped into chirps or croaks; several voices at
//! unrelated rates make the chorus.

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::dsp::{Envelope, Osc, SlowWobble, rms, uniform};

/// One caller.
#[derive(Clone, Debug)]
struct Voice {
    carrier_hz: f32,
    /// Strength of the second harmonic.
    harmonic: f32,
    pulse_hz: f32,
    /// Fraction of each pulse period that sounds.
    pulse_duty: f32,
    /// Chirps (or croaks) per second; 0 for a continuous buzz.
    group_hz: f32,
    /// Fraction of each chirp period that sounds.
    group_duty: f32,
    amp: f32,
    phase: f32,
}

/// A chorus of voices, its level wandering by a few dB over minutes.
#[derive(Clone, Debug)]
pub struct Chorus {
    voices: Vec<Voice>,
    wander: SlowWobble,
}

/// Smooth gate over `x` in 0..1 of a period, sounding for `duty` of it.
#[inline]
fn gate(x: f32, duty: f32) -> f32 {
    if x < duty {
        let u = x / duty;
        let w = 4.0 * u * (1.0 - u);
        w * w
    } else {
        0.0
    }
}

impl Chorus {
    /// Insects at `level_db` (dBFS RMS, all voices together): 2 to 5
    /// voices at 3 to 10 kHz (below 0.42 of `rate`), crickets chirping
    /// pulse trains or katydids and cicadas buzzing.
    pub fn insects(rng: &mut ChaCha8Rng, rate: f32, level_db: f32) -> Self {
        let top = (rate * 0.42).min(10_000.0);
        let n = rng.random_range(2..=5);
        let voices = (0..n)
            .map(|_| {
                let cricket = rng.random::<f32>() < 0.6;
                Voice {
                    carrier_hz: uniform(rng, 3000.0_f32.min(top * 0.9), top),
                    harmonic: 0.0,
                    pulse_hz: if cricket {
                        uniform(rng, 20.0, 45.0)
                    } else {
                        uniform(rng, 60.0, 200.0)
                    },
                    pulse_duty: uniform(rng, 0.4, 0.7),
                    group_hz: if cricket { uniform(rng, 0.8, 3.0) } else { 0.0 },
                    group_duty: uniform(rng, 0.15, 0.45),
                    amp: uniform(rng, 0.4, 1.0),
                    phase: uniform(rng, 0.0, 1.0),
                }
            })
            .collect();
        Self::scaled(voices, rng, level_db)
    }

    /// Frogs at `level_db`: 2 to 4 voices with carriers at 0.4 to 2.5 kHz
    /// and a second harmonic, croaks of pulses every one to three seconds.
    pub fn frogs(rng: &mut ChaCha8Rng, rate: f32, level_db: f32) -> Self {
        let top = (rate * 0.2).min(2500.0);
        let n = rng.random_range(2..=4);
        let voices = (0..n)
            .map(|_| {
                let period = uniform(rng, 0.7, 3.0);
                Voice {
                    carrier_hz: uniform(rng, 400.0, top),
                    harmonic: uniform(rng, 0.3, 0.7),
                    pulse_hz: uniform(rng, 10.0, 25.0),
                    pulse_duty: uniform(rng, 0.3, 0.6),
                    group_hz: 1.0 / period,
                    group_duty: uniform(rng, 0.1, 0.5) / period,
                    amp: uniform(rng, 0.4, 1.0),
                    phase: uniform(rng, 0.0, 1.0),
                }
            })
            .collect();
        Self::scaled(voices, rng, level_db)
    }

    fn scaled(mut voices: Vec<Voice>, rng: &mut ChaCha8Rng, level_db: f32) -> Self {
        // The RMS of a gated sine is about amp * sqrt(duty products / 2 * 0.4).
        let power: f32 = voices
            .iter()
            .map(|v| {
                let group = if v.group_hz > 0.0 { v.group_duty } else { 1.0 };
                v.amp * v.amp * 0.5 * (1.0 + v.harmonic * v.harmonic) * 0.4 * v.pulse_duty * group
            })
            .sum();
        let k = rms(level_db) / power.sqrt().max(1e-6);
        for v in &mut voices {
            v.amp *= k;
        }
        Chorus {
            voices,
            wander: SlowWobble::new(rng, 1.0 / 600.0, 1.0 / 120.0),
        }
    }

    /// Adds the chorus to `buf`, for its whole length.
    pub fn render(&self, buf: &mut [f32], rate: f32) {
        let level = Envelope::sample(buf.len(), rate, 256, |t| {
            10f32.powf(3.0 * self.wander.at(t) / 20.0)
        });
        for v in &self.voices {
            let mut c1 = Osc::new(rate, v.carrier_hz, v.phase * 6.0);
            let mut c2 = Osc::new(rate, (2.0 * v.carrier_hz).min(rate * 0.45), v.phase);
            let dp = v.pulse_hz / rate;
            let dg = v.group_hz / rate;
            let (mut p, mut g) = (v.phase, v.phase);
            for (i, s) in buf.iter_mut().enumerate() {
                p += dp;
                if p >= 1.0 {
                    p -= 1.0;
                }
                g += dg;
                if g >= 1.0 {
                    g -= 1.0;
                }
                let grouped = if v.group_hz > 0.0 {
                    gate(g, v.group_duty)
                } else {
                    1.0
                };
                let env = gate(p, v.pulse_duty) * grouped;
                let tone = c1.run();
                let h = if v.harmonic > 0.0 {
                    v.harmonic * c2.run()
                } else {
                    0.0
                };
                *s += v.amp * level.at(i) * env * (tone + h);
            }
        }
    }
}
