//! Small signal-processing parts for the generator: seeded random streams,
//! a biquad (RBJ cookbook band-pass and low-pass), a one-pole low-pass and
//! smooth random modulation.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// An independent random stream for `(seed, name)`, so adding a signal does
/// not shift the others.
pub fn stream(seed: u64, name: &str) -> ChaCha8Rng {
    // FNV-1a of the name, mixed with the seed.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in name.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    ChaCha8Rng::seed_from_u64(seed ^ h.rotate_left(17))
}

/// Uniform in `lo..hi`.
pub fn uniform(rng: &mut ChaCha8Rng, lo: f32, hi: f32) -> f32 {
    lo + (hi - lo) * rng.random::<f32>()
}

/// Standard normal (Box-Muller).
pub fn gauss(rng: &mut ChaCha8Rng) -> f32 {
    let u1 = rng.random::<f32>().max(1e-9);
    let u2 = rng.random::<f32>();
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f32::consts::PI * u2).cos()
}

/// Amplitude of a sine whose RMS is `dbfs` dB below full scale.
pub fn sine_amp(dbfs: f32) -> f32 {
    10f32.powf(dbfs / 20.0) * std::f32::consts::SQRT_2
}

/// RMS amplitude for `dbfs`.
pub fn rms(dbfs: f32) -> f32 {
    10f32.powf(dbfs / 20.0)
}

/// A biquad filter (transposed direct form II).
#[derive(Clone, Debug)]
pub struct Biquad {
    b: [f32; 3],
    a: [f32; 2],
    z: [f32; 2],
}

impl Biquad {
    /// Band-pass with 0 dB peak gain at `f0` Hz.
    pub fn bandpass(rate: f32, f0: f32, q: f32) -> Self {
        let w = 2.0 * std::f32::consts::PI * (f0 / rate).min(0.49);
        let alpha = w.sin() / (2.0 * q);
        let a0 = 1.0 + alpha;
        Biquad {
            b: [alpha / a0, 0.0, -alpha / a0],
            a: [-2.0 * w.cos() / a0, (1.0 - alpha) / a0],
            z: [0.0; 2],
        }
    }

    /// Low-pass at `f0` Hz.
    pub fn lowpass(rate: f32, f0: f32, q: f32) -> Self {
        let w = 2.0 * std::f32::consts::PI * (f0 / rate).min(0.49);
        let alpha = w.sin() / (2.0 * q);
        let c = w.cos();
        let a0 = 1.0 + alpha;
        let b1 = (1.0 - c) / a0;
        Biquad {
            b: [b1 / 2.0, b1, b1 / 2.0],
            a: [-2.0 * c / a0, (1.0 - alpha) / a0],
            z: [0.0; 2],
        }
    }

    /// High-pass at `f0` Hz.
    pub fn highpass(rate: f32, f0: f32, q: f32) -> Self {
        let w = 2.0 * std::f32::consts::PI * (f0 / rate).min(0.49);
        let alpha = w.sin() / (2.0 * q);
        let c = w.cos();
        let a0 = 1.0 + alpha;
        let b0 = (1.0 + c) / 2.0 / a0;
        Biquad {
            b: [b0, -2.0 * b0, b0],
            a: [-2.0 * c / a0, (1.0 - alpha) / a0],
            z: [0.0; 2],
        }
    }

    /// Filters one sample.
    pub fn run(&mut self, x: f32) -> f32 {
        let y = self.b[0] * x + self.z[0];
        self.z[0] = self.b[1] * x - self.a[0] * y + self.z[1];
        self.z[1] = self.b[2] * x - self.a[1] * y;
        y
    }
}

/// Smooth random modulation: a sum of slow sines with random phases, in -1..1.
#[derive(Clone, Debug)]
pub struct SlowWobble {
    parts: Vec<(f32, f32)>,
}

impl SlowWobble {
    /// Frequencies spread over `lo_hz..hi_hz`.
    pub fn new(rng: &mut ChaCha8Rng, lo_hz: f32, hi_hz: f32) -> Self {
        let parts = (0..4)
            .map(|_| {
                (
                    uniform(rng, lo_hz, hi_hz),
                    uniform(rng, 0.0, std::f32::consts::TAU),
                )
            })
            .collect();
        SlowWobble { parts }
    }

    /// Value at `t` seconds.
    pub fn at(&self, t: f32) -> f32 {
        self.parts
            .iter()
            .map(|(f, p)| (2.0 * std::f32::consts::PI * f * t + p).sin())
            .sum::<f32>()
            / self.parts.len() as f32
    }
}
