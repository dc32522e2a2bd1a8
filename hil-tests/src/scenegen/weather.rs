//! Weather of the field conditions: wind with gusts at the microphone, rain,
//! distant traffic and aircraft, and the clouds that take the sun away.
//!
//! The wind and the sky are shared by every modality: the camera sways its
//! vegetation with [`Wind::strength`] and dims with [`Sky::sun`], and the
//! enclosure heats in the sun the sky lets through.

// Sample loops index the buffer by sample number because the number is also the time.
#![allow(clippy::needless_range_loop)]

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::dsp::{Biquad, Envelope, Noise, OnePole, SlowWobble, bump, rms, uniform};

/// Samples per control step of the level envelopes.
const STEP: usize = 64;

/// RMS of `chain` driven by unit white noise, measured on a few thousand
/// samples: the factor that makes a filtered layer sit at its nominal level
/// whatever the sample rate.
fn chain_rms(mut chain: impl FnMut(f32) -> f32, noise: &mut Noise, rate: f32) -> f32 {
    let warm = (rate * 0.2) as usize;
    for _ in 0..warm {
        chain(noise.white());
    }
    let n = (rate * 1.0) as usize;
    let e: f32 = (0..n).map(|_| chain(noise.white()).powi(2)).sum::<f32>() / n as f32;
    e.sqrt().max(1e-6)
}

/// One gust: seconds long, its level rising and falling smoothly.
#[derive(Clone, Debug, PartialEq)]
pub struct Gust {
    /// Start, s.
    pub start_s: f32,
    /// End, s.
    pub end_s: f32,
    /// Peak rise above the floor, dB.
    pub rise_db: f32,
}

/// Wind on an unshielded microphone: turbulence whose energy sits below a
/// few hundred Hz, its level wandering over tens of seconds and fluttering
/// at a few Hz, and gusts of seconds that raise it by up to 25 dB and
/// spread it broadband.
#[derive(Clone, Debug)]
pub struct Wind {
    /// Level of the steady wind, dBFS RMS.
    pub floor_db: f32,
    /// Corner of the turbulence's low-pass, Hz.
    pub corner_hz: f32,
    /// How far the level wanders, dB.
    pub wander_db: f32,
    /// The gusts, in time order.
    pub gusts: Vec<Gust>,
    wander: SlowWobble,
}

impl Wind {
    /// Wind with a floor drawn in `floor_db`, `gusts_per_min` gusts on
    /// average, each rising by a level drawn in `rise_db`.
    pub fn draw(
        rng: &mut ChaCha8Rng,
        duration_s: f32,
        floor_db: (f32, f32),
        gusts_per_min: f32,
        rise_db: (f32, f32),
    ) -> Self {
        let floor = uniform(rng, floor_db.0, floor_db.1);
        let corner_hz = uniform(rng, 150.0, 350.0);
        let wander = SlowWobble::new(rng, 1.0 / 90.0, 1.0 / 15.0);
        let mut gusts = Vec::new();
        if gusts_per_min > 0.0 {
            let mean_gap = 60.0 / gusts_per_min;
            let mut t = uniform(rng, 0.0, mean_gap);
            while t < duration_s {
                let len = uniform(rng, 2.0, 9.0);
                gusts.push(Gust {
                    start_s: t,
                    end_s: (t + len).min(duration_s),
                    rise_db: uniform(rng, rise_db.0, rise_db.1),
                });
                // Exponential gaps: gusts come irregularly, sometimes in bursts.
                t += len + mean_gap * -(1.0 - rng.random::<f32>()).max(1e-6).ln();
            }
        }
        Wind {
            floor_db: floor,
            corner_hz,
            wander_db: 4.0,
            gusts,
            wander,
        }
    }

    /// Rise of the gusts at `t`, dB (0 outside gusts).
    fn gust_db(&self, t: f32) -> f32 {
        let first = self.gusts.partition_point(|g| g.end_s < t);
        self.gusts[first..]
            .iter()
            .take_while(|g| g.start_s <= t)
            .map(|g| g.rise_db * bump((t - g.start_s) / (g.end_s - g.start_s)))
            .sum()
    }

    /// Level at `t`, dBFS RMS.
    pub fn level_db(&self, t: f32) -> f32 {
        self.floor_db + self.wander_db * self.wander.at(t) + self.gust_db(t)
    }

    /// How hard the wind blows at `t`: 0 for still air, 1 for a gale
    /// (linear in dB from -66 to -18 dBFS).
    pub fn strength(&self, t: f32) -> f32 {
        ((self.level_db(t) + 66.0) / 48.0).clamp(0.0, 1.2)
    }

    /// The amplitude envelopes of the low (turbulence) and broadband parts
    /// over `len` samples.
    pub fn envelopes(&self, len: usize, rate: f32) -> (Envelope, Envelope) {
        let mut low = Envelope::sample(len, rate, STEP, |t| {
            self.floor_db + self.wander_db * self.wander.at(t)
        });
        let mut gust = vec![0f32; low.values.len()];
        let dt = STEP as f32 / rate;
        for g in &self.gusts {
            let a = (g.start_s / dt).floor().max(0.0) as usize;
            let b = ((g.end_s / dt).ceil() as usize).min(gust.len());
            for (k, v) in gust.iter_mut().enumerate().take(b).skip(a) {
                *v += g.rise_db * bump((k as f32 * dt - g.start_s) / (g.end_s - g.start_s));
            }
        }
        let mut broad = low.clone();
        for ((l, b), g) in low.values.iter_mut().zip(&mut broad.values).zip(&gust) {
            let base = *l;
            *l = rms(base + g);
            // A gust spreads the wind broadband: about 12 dB below the
            // turbulence at a 20 dB gust, nothing in steady wind.
            let spread = (g / 20.0).clamp(0.0, 1.3);
            *b = rms(base + g) * 0.25 * spread * spread.sqrt();
        }
        (low, broad)
    }
}

/// One microphone's wind: its own turbulence (wind is not coherent between
/// two microphones) under the scene's shared envelopes.
pub struct WindVoice {
    noise: Noise,
    lp1: Biquad,
    lp2: Biquad,
    hp: Biquad,
    lpb: OnePole,
    flutter: OnePole,
    low_gain: f32,
    broad_gain: f32,
    flutter_gain: f32,
}

impl WindVoice {
    /// A voice for `wind` at `rate`, seeded from `rng`.
    pub fn new(wind: &Wind, rate: f32, rng: &mut ChaCha8Rng) -> Self {
        let mut noise = Noise::new(rng);
        let mut lp1 = Biquad::lowpass(rate, wind.corner_hz, 0.7);
        let mut lp2 = Biquad::lowpass(rate, wind.corner_hz * 1.5, 0.7);
        let low = chain_rms(|x| lp2.run(lp1.run(x)), &mut noise, rate);
        let mut hp = Biquad::highpass(rate, 150.0, 0.7);
        let mut lpb = OnePole::lowpass(rate, 4000.0_f32.min(rate * 0.4));
        let broad = chain_rms(|x| lpb.run(hp.run(x)), &mut noise, rate);
        let mut flutter = OnePole::lowpass(rate, 4.0);
        let fl = chain_rms(|x| flutter.run(x), &mut noise, rate);
        WindVoice {
            noise,
            lp1,
            lp2,
            hp,
            lpb,
            flutter,
            low_gain: 1.0 / low,
            broad_gain: 1.0 / broad,
            flutter_gain: 1.0 / fl,
        }
    }

    /// The next sample, at amplitudes `low` and `broad` (RMS).
    #[inline]
    pub fn next(&mut self, low: f32, broad: f32) -> f32 {
        let n = self.noise.white();
        let flutter = 1.0 + 0.35 * (self.flutter.run(n) * self.flutter_gain).clamp(-2.5, 2.5);
        let n2 = self.noise.white();
        let turbulence = self.lp2.run(self.lp1.run(n2)) * self.low_gain;
        let spread = self.lpb.run(self.hp.run(n)) * self.broad_gain;
        turbulence * low * flutter + spread * broad
    }
}

/// Rain: broadband hiss (above ~800 Hz) and drop impacts, short decaying
/// resonances of random strength (a heavy-tailed, impulsive sound), with
/// an intensity that wanders over minutes; fades in and out over 15 s.
#[allow(clippy::too_many_arguments)]
pub fn rain(
    buf: &mut [f32],
    rate: f32,
    rng: &mut ChaCha8Rng,
    start_s: f32,
    end_s: f32,
    level_db: f32,
    drops_per_s: f32,
) {
    let a = ((start_s * rate) as usize).min(buf.len());
    let b = ((end_s * rate) as usize).clamp(a, buf.len());
    let mut noise = Noise::new(rng);
    let mut hp = Biquad::highpass(rate, 800.0, 0.7);
    let mut lp = OnePole::lowpass(rate, 9000.0_f32.min(rate * 0.4));
    let hiss = 1.0 / chain_rms(|x| lp.run(hp.run(x)), &mut noise, rate);
    let top = (rate * 0.42).min(7000.0);
    let mut drops: Vec<Biquad> = (0..6)
        .map(|_| Biquad::bandpass(rate, uniform(rng, 1500.0_f32.min(top * 0.6), top), 6.0))
        .collect();
    // Samples each resonance still rings for: an idle one is not run (its
    // ring has decayed by more than 80 dB after 25 ms).
    let ring = (0.025 * rate) as u32;
    let mut ringing = [0u32; 6];
    let intensity = SlowWobble::new(rng, 1.0 / 400.0, 1.0 / 60.0);
    let dur = end_s - start_s;
    let env = Envelope::sample(b - a, rate, STEP, |t| {
        let fade = (t / 15.0).min(1.0) * ((dur - t) / 15.0).clamp(0.0, 1.0);
        fade * (1.0 + 0.45 * intensity.at(start_s + t))
    });
    let amp = rms(level_db);
    let p_drop = drops_per_s / rate;
    for i in a..b {
        let e = env.at(i - a);
        let mut x = lp.run(hp.run(noise.white())) * hiss;
        let kick = if noise.unit() < p_drop * e {
            // Log-uniform strengths: most drops are soft, a few are loud.
            let strength = 2.0 * 40f32.powf(noise.unit());
            let k = (noise.unit() * drops.len() as f32) as usize % drops.len();
            ringing[k] = ring;
            (k, strength * noise.uniform().signum() * 3.0)
        } else {
            (usize::MAX, 0.0)
        };
        for (k, f) in drops.iter_mut().enumerate() {
            if ringing[k] > 0 {
                ringing[k] -= 1;
                x += f.run(if k == kick.0 { kick.1 } else { 0.0 });
            }
        }
        buf[i] += amp * e * x;
    }
}

/// An aircraft passing far away: low-passed noise (below ~600 Hz) and an
/// engine tone with its Doppler slide, swelling and fading over the pass.
pub fn aircraft(
    buf: &mut [f32],
    rate: f32,
    rng: &mut ChaCha8Rng,
    start_s: f32,
    end_s: f32,
    level_db: f32,
) {
    let a = ((start_s * rate) as usize).min(buf.len());
    let b = ((end_s * rate) as usize).clamp(a, buf.len());
    let mut noise = Noise::new(rng);
    let mut lp1 = Biquad::lowpass(rate, uniform(rng, 350.0, 700.0), 0.7);
    let mut lp2 = Biquad::lowpass(rate, 900.0, 0.7);
    let g = 1.0 / chain_rms(|x| lp2.run(lp1.run(x)), &mut noise, rate);
    let f0 = uniform(rng, 70.0, 140.0);
    let amp = rms(level_db);
    let len = (b - a).max(1) as f32;
    let mut ph = 0f32;
    for i in a..b {
        let x = (i - a) as f32 / len;
        // Louder and brighter at the closest point, past the middle.
        let env = bump(x).powf(1.5);
        let f = f0 * (1.05 - 0.1 * x);
        ph = (ph + f / rate).fract();
        let tone = (std::f32::consts::TAU * ph).sin() * 0.3
            + (2.0 * std::f32::consts::TAU * ph).sin() * 0.15;
        buf[i] += amp * env * (lp2.run(lp1.run(noise.white())) * g + tone);
    }
}

/// Distant road traffic: a rumble below a few hundred Hz that swells for
/// tens of seconds as each vehicle passes, over a faint steady floor.
#[derive(Clone, Debug)]
pub struct Traffic {
    /// Level of a passing vehicle at its loudest, dBFS RMS.
    pub level_db: f32,
    /// Passes: time of the loudest point and its spread (s).
    pub passes: Vec<(f32, f32)>,
    corner_hz: f32,
}

impl Traffic {
    /// `per_min` vehicles a minute on average over `duration_s`.
    pub fn draw(rng: &mut ChaCha8Rng, duration_s: f32, level_db: f32, per_min: f32) -> Self {
        let mut passes = Vec::new();
        let mut t = uniform(rng, -30.0, 30.0);
        while t < duration_s + 60.0 {
            passes.push((t, uniform(rng, 5.0, 15.0)));
            t += 60.0 / per_min * uniform(rng, 0.2, 1.8);
        }
        Traffic {
            level_db,
            passes,
            corner_hz: uniform(rng, 90.0, 250.0),
        }
    }

    /// Adds the traffic to `buf`.
    pub fn render(&self, buf: &mut [f32], rate: f32, rng: &mut ChaCha8Rng) {
        let mut env = Envelope::sample(buf.len(), rate, STEP, |_| 0.1);
        let dt = STEP as f32 / rate;
        for &(peak, sigma) in &self.passes {
            let a = ((peak - 3.0 * sigma) / dt).max(0.0) as usize;
            let b = (((peak + 3.0 * sigma) / dt).max(0.0) as usize).min(env.values.len());
            for k in a..b {
                let z = (k as f32 * dt - peak) / sigma;
                env.values[k] += (-0.5 * z * z).exp();
            }
        }
        let mut noise = Noise::new(rng);
        let mut lp1 = Biquad::lowpass(rate, self.corner_hz, 0.7);
        let mut lp2 = Biquad::lowpass(rate, self.corner_hz * 2.0, 0.7);
        let g = rms(self.level_db) / chain_rms(|x| lp2.run(lp1.run(x)), &mut noise, rate);
        for (i, s) in buf.iter_mut().enumerate() {
            *s += g * env.at(i) * lp2.run(lp1.run(noise.white()));
        }
    }
}

/// The sun as the enclosure and the camera see it: clouds pass over and
/// take part of it away, the light changing within seconds at their edges.
#[derive(Clone, Debug, Default)]
pub struct Sky {
    /// Fraction of the sun taken by a uniform overcast, 0..1.
    pub overcast: f32,
    /// Clouds over the sun: start, end (s) and the fraction they take.
    pub clouds: Vec<(f32, f32, f32)>,
}

impl Sky {
    /// `per_hour` clouds an hour on average, each over the sun for one to
    /// eight minutes.
    pub fn broken(rng: &mut ChaCha8Rng, duration_s: f32, per_hour: f32) -> Self {
        let mut clouds = Vec::new();
        let mut t = uniform(rng, 0.0, 3600.0 / per_hour);
        while t < duration_s {
            let len = uniform(rng, 60.0, 480.0);
            clouds.push((t, (t + len).min(duration_s), uniform(rng, 0.5, 0.85)));
            t += len + 3600.0 / per_hour * uniform(rng, 0.3, 1.7);
        }
        Sky {
            overcast: 0.0,
            clouds,
        }
    }

    /// Fraction of the clear-sky sun that gets through at `t`, 0..1.
    pub fn sun(&self, t: f32) -> f32 {
        let cloud = self
            .clouds
            .iter()
            .map(|&(a, b, depth)| {
                // Edges of 5 to 20 s: a cloud's shadow sweeps by in seconds.
                let edge = 5.0 + 15.0 * depth;
                depth * ((t - a) / edge).clamp(0.0, 1.0) * ((b - t) / edge).clamp(0.0, 1.0)
            })
            .fold(0.0, f32::max);
        (1.0 - self.overcast) * (1.0 - cloud)
    }
}
