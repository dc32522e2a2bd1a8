//! The microphone and its input stage: one or two channels, each with its
//! own wind noise (wind is not coherent between microphones) and
//! self-noise, the second a little later and weaker than the first; an
//! input gain that drifts and steps; and either a soft limiter or hard
//! clipping at full scale.

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::dsp::{Envelope, Noise, SlowWobble, rms, stream, uniform};
use super::weather::{Wind, WindVoice};

/// Frames per block handed to the sink.
const BLOCK: usize = 4096;

/// The input stage.
#[derive(Clone, Debug)]
pub struct Mic {
    /// Channels, 1 or 2.
    pub channels: u16,
    /// Input gain, dB.
    pub gain_db: f32,
    /// How far the gain drifts over minutes, dB.
    pub drift_db: f32,
    /// Gain steps: time (s) and change (dB), in time order.
    pub steps: Vec<(f32, f32)>,
    /// Hard clipping at full scale (an overdriven input) instead of the
    /// soft limiter.
    pub clip: bool,
    /// Self-noise of each channel, dBFS RMS.
    pub self_noise_db: Option<f32>,
    /// Delay of the second channel, s.
    pub second_delay_s: f32,
    /// Level of the second channel relative to the first, dB.
    pub second_db: f32,
    drift: SlowWobble,
}

impl Mic {
    /// A clean input: unit gain, the soft limiter, no self-noise; the second
    /// channel 60 µs later and 1 dB weaker.
    pub fn plain(channels: u16) -> Self {
        Mic {
            channels,
            gain_db: 0.0,
            drift_db: 0.0,
            steps: Vec::new(),
            clip: false,
            self_noise_db: None,
            second_delay_s: 60e-6,
            second_db: -1.0,
            drift: SlowWobble::new(&mut stream(0, "mic-drift"), 1.0 / 900.0, 1.0 / 120.0),
        }
    }

    /// An input with self-noise, a gain drawn in `gain_db` that drifts by
    /// `drift_db`, `steps_per_hour` gain steps on average, and hard
    /// clipping if `clip`.
    pub fn draw(
        rng: &mut ChaCha8Rng,
        channels: u16,
        duration_s: f32,
        gain_db: (f32, f32),
        drift_db: f32,
        steps_per_hour: f32,
        clip: bool,
    ) -> Self {
        let gain = uniform(rng, gain_db.0, gain_db.1);
        let drift = SlowWobble::new(rng, 1.0 / 900.0, 1.0 / 120.0);
        let mut steps = Vec::new();
        if steps_per_hour > 0.0 {
            let mut t = uniform(rng, 0.0, 3600.0 / steps_per_hour);
            while t < duration_s {
                let db = uniform(rng, 3.0, 8.0) * if rng.random::<bool>() { 1.0 } else { -1.0 };
                steps.push((t, db));
                t += 3600.0 / steps_per_hour * uniform(rng, 0.3, 1.7);
            }
        }
        Mic {
            channels,
            gain_db: gain,
            drift_db,
            steps,
            clip,
            self_noise_db: Some(uniform(rng, -74.0, -66.0)),
            second_delay_s: uniform(rng, 0.0, 200e-6),
            second_db: uniform(rng, -2.0, 2.0),
            drift,
        }
    }

    /// Gain at `t`, dB.
    pub fn gain_at(&self, t: f32) -> f32 {
        let stepped: f32 = self
            .steps
            .iter()
            .take_while(|s| s.0 <= t)
            .map(|s| s.1)
            .sum();
        self.gain_db + self.drift_db * self.drift.at(t) + stepped
    }
}

/// The soft limiter the generator has always used: linear to 0.8, then
/// bending towards 0.99.
#[inline]
pub fn soft_limit(x: f32) -> f32 {
    if x.abs() > 0.8 {
        x.signum() * (0.8 + 0.19 * ((x.abs() - 0.8) / 0.19).tanh())
    } else {
        x
    }
}

/// Mixes the microphone's channels from `coherent` (every source that
/// reaches both microphones alike), adding each channel's wind and
/// self-noise, applying the gain and the limiter or clipping, and hands
/// interleaved blocks to `sink`. `seed` seeds the per-channel noise.
pub fn mix<E>(
    coherent: &[f32],
    rate: f32,
    mic: &Mic,
    wind: Option<&Wind>,
    seed: u64,
    mut sink: impl FnMut(&[f32]) -> Result<(), E>,
) -> Result<(), E> {
    let len = coherent.len();
    let mean = (coherent.iter().map(|v| f64::from(*v)).sum::<f64>() / len.max(1) as f64) as f32;
    let gain = Envelope::sample(len, rate, 256, |t| rms(mic.gain_at(t)));
    let envs = wind.map(|w| w.envelopes(len, rate));
    let channels = usize::from(mic.channels.clamp(1, 2));
    let mut winds: Vec<WindVoice> = match wind {
        Some(w) => (0..channels)
            .map(|c| WindVoice::new(w, rate, &mut stream(seed, &format!("mic-wind-{c}"))))
            .collect(),
        None => Vec::new(),
    };
    let mut noises: Vec<Noise> = (0..channels)
        .map(|c| Noise::new(&mut stream(seed, &format!("mic-noise-{c}"))))
        .collect();
    let self_noise = mic.self_noise_db.map(rms);
    let delay = (mic.second_delay_s * rate).round() as usize;
    let second = rms(mic.second_db);
    let mut out = Vec::with_capacity(BLOCK * channels);
    let mut i = 0;
    while i < len {
        out.clear();
        for j in i..(i + BLOCK).min(len) {
            let g = gain.at(j);
            let (low, broad) = match &envs {
                Some((l, b)) => (l.at(j), b.at(j)),
                None => (0.0, 0.0),
            };
            for (c, noise) in noises.iter_mut().enumerate() {
                let mut x = if c == 0 {
                    coherent[j] - mean
                } else {
                    (j.checked_sub(delay).map_or(0.0, |k| coherent[k]) - mean) * second
                };
                if let Some(v) = winds.get_mut(c) {
                    x += v.next(low, broad);
                }
                if let Some(n) = self_noise {
                    x += n * noise.white();
                }
                let x = x * g;
                out.push(if mic.clip {
                    x.clamp(-1.0, 1.0)
                } else {
                    soft_limit(x)
                });
            }
        }
        sink(&out)?;
        i += BLOCK;
    }
    Ok(())
}
