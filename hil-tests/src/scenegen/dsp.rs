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
    // 6.283, not TAU, below: the phases the bundled demo scene was made with.
    #[allow(clippy::approx_constant)]
    pub fn new(rng: &mut ChaCha8Rng, lo_hz: f32, hi_hz: f32) -> Self {
        let parts = (0..4)
            .map(|_| (uniform(rng, lo_hz, hi_hz), uniform(rng, 0.0, 6.283)))
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

/// Fast white noise for long layers (xorshift64*), seeded from a stream:
/// the scene-length layers draw hundreds of millions of values, which
/// ChaCha and Box-Muller would make slow.
#[derive(Clone, Debug)]
pub struct Noise {
    s: u64,
}

impl Noise {
    /// A source seeded from `rng`.
    pub fn new(rng: &mut ChaCha8Rng) -> Self {
        Noise {
            s: rng.random::<u64>() | 1,
        }
    }

    /// Uniform in -1..1.
    #[inline]
    pub fn uniform(&mut self) -> f32 {
        self.s ^= self.s >> 12;
        self.s ^= self.s << 25;
        self.s ^= self.s >> 27;
        let x = self.s.wrapping_mul(0x2545_f491_4f6c_dd1d);
        ((x >> 40) as f32) * (2.0 / 16_777_216.0) - 1.0
    }

    /// Zero mean, unit variance (uniform, scaled): spectrally white, and
    /// Gaussian enough once filtered.
    #[inline]
    pub fn white(&mut self) -> f32 {
        self.uniform() * 1.732_050_8
    }

    /// Uniform in `0..1`.
    #[inline]
    pub fn unit(&mut self) -> f32 {
        0.5 * (self.uniform() + 1.0)
    }
}

/// A sine oscillator that rotates a phasor (a few multiplications per
/// sample instead of a `sin`), renormalised now and then.
#[derive(Clone, Debug)]
pub struct Osc {
    c: f64,
    s: f64,
    dc: f64,
    ds: f64,
    n: u32,
}

impl Osc {
    /// `freq_hz` at `rate`, starting at `phase` radians.
    pub fn new(rate: f32, freq_hz: f32, phase: f32) -> Self {
        let w = std::f64::consts::TAU * f64::from(freq_hz) / f64::from(rate);
        Osc {
            c: f64::from(phase).cos(),
            s: f64::from(phase).sin(),
            dc: w.cos(),
            ds: w.sin(),
            n: 0,
        }
    }

    /// The next sample, in -1..1.
    #[inline]
    pub fn run(&mut self) -> f32 {
        let c = self.c * self.dc - self.s * self.ds;
        let s = self.s * self.dc + self.c * self.ds;
        self.c = c;
        self.s = s;
        self.n += 1;
        if self.n == 4096 {
            self.n = 0;
            let g = 1.0 / (c * c + s * s).sqrt();
            self.c *= g;
            self.s *= g;
        }
        s as f32
    }
}

/// A one-pole low-pass (exponential smoothing) with time constant `tau`
/// in the units of the steps it is run with.
#[derive(Clone, Debug)]
pub struct OnePole {
    a: f32,
    /// Current output.
    pub y: f32,
}

impl OnePole {
    /// Cut-off `f0` Hz at `rate`.
    pub fn lowpass(rate: f32, f0: f32) -> Self {
        OnePole {
            a: 1.0 - (-std::f32::consts::TAU * f0 / rate).exp(),
            y: 0.0,
        }
    }

    /// Filters one sample.
    #[inline]
    pub fn run(&mut self, x: f32) -> f32 {
        self.y += self.a * (x - self.y);
        self.y
    }
}

/// Smooth bump in 0..1 over `x` in 0..1 (raised cosine), 0 outside.
pub fn bump(x: f32) -> f32 {
    if (0.0..=1.0).contains(&x) {
        0.5 - 0.5 * (std::f32::consts::TAU * x).cos()
    } else {
        0.0
    }
}

/// Sound rendered at a control rate: `values[k]` holds at sample
/// `k * step`, linearly interpolated in between. Envelopes are cheap this
/// way however many gusts or swells make them.
#[derive(Clone, Debug)]
pub struct Envelope {
    /// Samples per control step.
    pub step: usize,
    /// Control values.
    pub values: Vec<f32>,
}

impl Envelope {
    /// Evaluates `f(t)` every `step` samples over `len` samples at `rate`.
    pub fn sample(len: usize, rate: f32, step: usize, mut f: impl FnMut(f32) -> f32) -> Self {
        let n = len / step + 2;
        let values = (0..n).map(|k| f((k * step) as f32 / rate)).collect();
        Envelope { step, values }
    }

    /// Value at sample `i`.
    #[inline]
    pub fn at(&self, i: usize) -> f32 {
        let k = i / self.step;
        let x = (i % self.step) as f32 / self.step as f32;
        match (self.values.get(k), self.values.get(k + 1)) {
            (Some(a), Some(b)) => a + (b - a) * x,
            (Some(a), None) => *a,
            _ => self.values.last().copied().unwrap_or(0.0),
        }
    }
}

/// A periodic waveform played from one period stored in a table (linear
/// interpolation between 4096 points): a sum of harmonics of one
/// fundamental costs one lookup per sample however many harmonics it has.
#[derive(Clone, Debug)]
pub struct Wavetable {
    table: Vec<f32>,
    phase: f64,
    step: f64,
}

impl Wavetable {
    const SIZE: usize = 4096;

    /// `Σ amp · sin(2π · k · f0 · t + phase)` over `(k, amp, phase)`, at `rate`.
    pub fn new(rate: f32, f0: f32, harmonics: &[(f32, f32, f32)]) -> Self {
        let table = (0..=Self::SIZE)
            .map(|i| {
                let x = std::f64::consts::TAU * i as f64 / Self::SIZE as f64;
                harmonics
                    .iter()
                    .map(|&(k, a, p)| f64::from(a) * (f64::from(k) * x + f64::from(p)).sin())
                    .sum::<f64>() as f32
            })
            .collect();
        Wavetable {
            table,
            phase: 0.0,
            step: f64::from(f0) / f64::from(rate),
        }
    }

    /// The next sample.
    #[inline]
    pub fn run(&mut self) -> f32 {
        let x = self.phase * Self::SIZE as f64;
        let i = x as usize;
        let f = (x - i as f64) as f32;
        let (a, b) = (self.table[i], self.table[i + 1]);
        self.phase += self.step;
        if self.phase >= 1.0 {
            self.phase -= self.phase.floor();
        }
        a + (b - a) * f
    }
}
