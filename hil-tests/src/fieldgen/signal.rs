//! Signal building blocks shared by the audio sources: a fast seeded noise
//! generator, a sine table, one-pole and state-variable filters.
//!
//! Everything here is deterministic: the same seed and the same calls give
//! the same numbers on every run.

use std::f32::consts::PI;
use std::sync::OnceLock;

/// splitmix64-seeded xorshift generator for per-sample noise (far cheaper
/// than the plan's ChaCha generator, which seeds it).
#[derive(Debug, Clone)]
pub struct Noise(u64);

impl Noise {
    /// A generator from any seed.
    pub fn new(seed: u64) -> Noise {
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        Noise((z ^ (z >> 31)) | 1)
    }

    /// The next 64 random bits.
    #[inline]
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `[0, 1)`.
    #[inline]
    pub fn unit(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 * (1.0 / (1u64 << 24) as f32)
    }

    /// Uniform in `[-1, 1)`.
    #[inline]
    pub fn bipolar(&mut self) -> f32 {
        self.unit() * 2.0 - 1.0
    }

    /// Roughly normal with unit variance (sum of three uniforms).
    #[inline]
    pub fn normal(&mut self) -> f32 {
        let b = self.next_u64();
        let u = |s: u32| ((b >> s) & 0x1F_FFFF) as f32 * (1.0 / 0x20_0000 as f32);
        (u(0) + u(21) + u(42) - 1.5) * 2.0
    }
}

const SINE_BITS: u32 = 12;
const SINE_LEN: usize = 1 << SINE_BITS;

fn sine_table() -> &'static [f32] {
    static TABLE: OnceLock<Vec<f32>> = OnceLock::new();
    TABLE.get_or_init(|| {
        (0..=SINE_LEN)
            .map(|i| (2.0 * std::f64::consts::PI * i as f64 / SINE_LEN as f64).sin() as f32)
            .collect()
    })
}

/// A sine lookup with linear interpolation; `phase` in cycles (any value).
#[inline]
pub fn sin_cycles(phase: f64) -> f32 {
    let p = phase - phase.floor();
    let x = p as f32 * SINE_LEN as f32;
    let i = (x as usize).min(SINE_LEN - 1);
    let f = x - i as f32;
    let t = sine_table();
    t[i] + (t[i + 1] - t[i]) * f
}

/// A phase accumulator in cycles, kept in `[0, 1)` so that hours of signal
/// keep their precision.
#[derive(Debug, Clone, Default)]
pub struct Phase(pub f64);

impl Phase {
    /// Advances by `freq / rate` cycles and returns the phase before the step.
    #[inline]
    pub fn step(&mut self, freq: f64, rate: f64) -> f64 {
        let p = self.0;
        self.0 += freq / rate;
        if self.0 >= 1.0 {
            self.0 -= self.0.floor();
        }
        p
    }
}

/// First-order low-pass (the high-pass is the input minus it).
#[derive(Debug, Clone, Default)]
pub struct OnePole {
    a: f32,
    z: f32,
}

impl OnePole {
    /// A low-pass with corner `fc` Hz at sampling rate `rate`.
    pub fn new(fc: f32, rate: f32) -> OnePole {
        let mut p = OnePole::default();
        p.set(fc, rate);
        p
    }

    /// Moves the corner frequency (the state is kept).
    pub fn set(&mut self, fc: f32, rate: f32) {
        let fc = fc.clamp(0.1, rate * 0.49);
        self.a = 1.0 - (-2.0 * PI * fc / rate).exp();
    }

    /// Low-pass output.
    #[inline]
    pub fn lp(&mut self, x: f32) -> f32 {
        self.z += self.a * (x - self.z);
        self.z
    }

    /// High-pass output.
    #[inline]
    pub fn hp(&mut self, x: f32) -> f32 {
        x - self.lp(x)
    }
}

/// Topology-preserving state-variable filter (trapezoidal integration), safe
/// to retune while running.
#[derive(Debug, Clone, Default)]
pub struct Svf {
    a1: f32,
    a2: f32,
    a3: f32,
    k: f32,
    ic1: f32,
    ic2: f32,
}

/// The three outputs of [`Svf::run`].
#[derive(Debug, Clone, Copy)]
pub struct SvfOut {
    /// Low-pass.
    pub low: f32,
    /// Band-pass (unity gain at the centre).
    pub band: f32,
    /// High-pass.
    pub high: f32,
}

impl Svf {
    /// A filter tuned to `fc` Hz with quality `q`.
    pub fn new(fc: f32, q: f32, rate: f32) -> Svf {
        let mut s = Svf::default();
        s.tune(fc, q, rate);
        s
    }

    /// Retunes; frequencies beyond 0.45 of the rate are clamped.
    pub fn tune(&mut self, fc: f32, q: f32, rate: f32) {
        let fc = fc.clamp(5.0, rate * 0.45);
        let g = (PI * fc / rate).tan();
        self.k = 1.0 / q.max(0.3);
        self.a1 = 1.0 / (1.0 + g * (g + self.k));
        self.a2 = g * self.a1;
        self.a3 = g * self.a2;
    }

    /// One sample through the filter.
    #[inline]
    pub fn run(&mut self, x: f32) -> SvfOut {
        let v3 = x - self.ic2;
        let v1 = self.a1 * self.ic1 + self.a2 * v3;
        let v2 = self.ic2 + self.a2 * self.ic1 + self.a3 * v3;
        self.ic1 = 2.0 * v1 - self.ic1;
        self.ic2 = 2.0 * v2 - self.ic2;
        SvfOut {
            low: v2,
            band: v1 * self.k,
            high: x - self.k * v1 - v2,
        }
    }
}

/// Decibels to an amplitude factor.
pub fn db(x: f32) -> f32 {
    10f32.powf(x / 20.0)
}

/// Raised-cosine edge: 0 at `x <= 0`, 1 at `x >= 1`.
#[inline]
pub fn smoothstep(x: f32) -> f32 {
    if x <= 0.0 {
        0.0
    } else if x >= 1.0 {
        1.0
    } else {
        0.5 - 0.5 * (PI * x).cos()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sine_table_matches_sin() {
        for i in 0..1000 {
            let p = i as f64 * 0.0137;
            let want = (2.0 * std::f64::consts::PI * p).sin() as f32;
            assert!((sin_cycles(p) - want).abs() < 1e-3);
        }
    }

    #[test]
    fn svf_band_passes_its_centre() {
        let rate = 16_000.0;
        let mut f = Svf::new(1000.0, 5.0, rate);
        let mut ph = Phase::default();
        let mut peak = 0f32;
        for n in 0..8000 {
            let y = f.run(sin_cycles(ph.step(1000.0, rate as f64))).band;
            if n > 4000 {
                peak = peak.max(y.abs());
            }
        }
        assert!((peak - 1.0).abs() < 0.05, "{peak}");
    }

    #[test]
    fn noise_is_centred() {
        let mut n = Noise::new(3);
        let mean: f32 = (0..100_000).map(|_| n.normal()).sum::<f32>() / 100_000.0;
        assert!(mean.abs() < 0.02);
    }
}
