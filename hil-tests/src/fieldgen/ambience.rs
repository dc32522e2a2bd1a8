//! The field around the microphone: wind with gusts, rain, an insect
//! chorus, a distant road and aircraft, and the recorder's input gain.
//! Each has a planner (drawn from the scene's generator) and a renderer
//! that adds its sound block by block.

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::signal::{Noise, OnePole, Phase, Svf, db, sin_cycles, smoothstep};
use super::sky::poisson_count;
use super::track::{Episode, Track, Wander, sum_env};

/// Control-rate step of the renderers, samples.
const CONTROL: usize = 32;

/// Strongest wind modelled, m/s (a storm).
pub const MAX_WIND: f32 = 30.0;

/// Wind at the node.
#[derive(Debug, Clone)]
pub struct WindPlan {
    /// Wind speed, m/s, 10 Hz (gusts included).
    pub speed: Track,
    /// The gusts (peak = speed added, m/s).
    pub gusts: Vec<Episode>,
    /// Windshield attenuation as an amplitude factor.
    pub shield: f32,
}

/// Draws the wind: a mean in `mean`, a slow wander around it, and gusts.
pub fn plan_wind(
    rng: &mut ChaCha8Rng,
    d: f64,
    mean: (f32, f32),
    gusts_per_h: (f64, f64),
    gust_peak: (f32, f32),
) -> WindPlan {
    let m = rng.random_range(mean.0..=mean.1);
    let spacing = rng.random_range(15.0..70.0);
    let base = Wander::new(rng, d, spacing, m * 0.55, m * 1.45 + 0.1);
    let rate = rng.random_range(gusts_per_h.0..=gusts_per_h.1);
    let n = poisson_count(rng, rate * d / 3600.0);
    let mut gusts: Vec<Episode> = (0..n)
        .map(|_| Episode {
            start: rng.random_range(-5.0..d),
            attack: rng.random_range(0.4..3.0),
            hold: rng.random_range(0.3..6.0),
            release: rng.random_range(1.0..6.0),
            peak: rng.random_range(gust_peak.0..=gust_peak.1),
        })
        .collect();
    gusts.sort_by(|a, b| a.start.total_cmp(&b.start));
    // Gusts are short: only those near t matter (sorted by start).
    let speed = Track::sample(d, 10.0, |t| {
        let from = gusts.partition_point(|g| g.start < t - 20.0);
        let to = gusts.partition_point(|g| g.start <= t);
        let gust = gusts[from..to].iter().map(|g| g.env(t)).fold(0.0, f32::max);
        (base.at(t) + gust).clamp(0.0, MAX_WIND)
    });
    let shield = if rng.random_bool(0.65) {
        db(rng.random_range(-22.0..-10.0))
    } else {
        1.0
    };
    WindPlan {
        speed,
        gusts,
        shield,
    }
}

/// Renders wind noise on one microphone.
#[derive(Debug, Clone)]
pub struct WindVoice {
    speed: Track,
    shield: f32,
    rate: f32,
    noise: Noise,
    turb_noise: Noise,
    turb: OnePole,
    rumble: Svf,
    band_hp: OnePole,
    band_lp: OnePole,
    amp: f32,
    broad: f32,
}

impl WindVoice {
    /// A renderer; `turb_seed` is shared by the channels of one recorder
    /// (the same buffeting), `seed` is per channel.
    pub fn new(plan: &WindPlan, rate: u32, seed: u64, turb_seed: u64) -> WindVoice {
        let r = rate as f32;
        WindVoice {
            speed: plan.speed.clone(),
            shield: plan.shield,
            rate: r,
            noise: Noise::new(seed),
            turb_noise: Noise::new(turb_seed),
            turb: OnePole::new(2.5, r / CONTROL as f32),
            rumble: Svf::new(60.0, 0.7, r),
            band_hp: OnePole::new(250.0, r),
            band_lp: OnePole::new(3000.0, r),
            amp: 0.0,
            broad: 0.0,
        }
    }

    /// Adds the samples from sample `n0` on.
    pub fn add(&mut self, n0: u64, out: &mut [f32]) {
        for (k, chunk) in out.chunks_mut(CONTROL).enumerate() {
            let t = (n0 + (k * CONTROL) as u64) as f64 / f64::from(self.rate);
            let v = self.speed.at(t);
            let fc = 35.0 + 7.0 * v;
            self.rumble.tune(fc, 0.7, self.rate);
            self.band_lp.set(1500.0 + 250.0 * v, self.rate);
            // Buffeting: a slow random factor around 1.
            let tb = self.turb.lp(self.turb_noise.normal()) * 4.0;
            let buffet = (1.0 + 0.7 * tb).max(0.08);
            let norm = (self.rate / (2.2 * fc)).sqrt();
            let amp = self.shield * 6e-4 * v * v * buffet * norm;
            let broad = self.shield * 2.5e-4 * v * v * smoothstep((v - 4.0) / 12.0) * buffet;
            let (a0, b0) = (self.amp, self.broad);
            let step = 1.0 / chunk.len() as f32;
            for (i, o) in chunk.iter_mut().enumerate() {
                let f = i as f32 * step;
                let a = a0 + (amp - a0) * f;
                let b = b0 + (broad - b0) * f;
                let w = self.noise.normal();
                let low = self.rumble.run(w).low;
                let band = self.band_lp.lp(self.band_hp.hp(w)) * 1.5;
                *o += a * low + b * band;
            }
            self.amp = amp;
            self.broad = broad;
        }
    }
}

/// Rain over the scene.
#[derive(Debug, Clone)]
pub struct RainPlan {
    /// The showers (peak = intensity, 0..1).
    pub showers: Vec<Episode>,
    /// Intensity, 0..1, 1 Hz.
    pub intensity: Track,
}

/// Draws rain: with probability `p` some showers; `long` covers most of the
/// scene.
pub fn plan_rain(rng: &mut ChaCha8Rng, d: f64, p: f64, long: bool) -> RainPlan {
    let mut showers = Vec::new();
    let raining = rng.random_bool(p);
    let n = rng.random_range(1..=3usize);
    for i in 0..n {
        let e = if long {
            let len = d * rng.random_range(0.6..1.0) / n as f64;
            Episode {
                start: d * i as f64 / n as f64 - rng.random_range(0.0..0.05) * d,
                attack: (len * 0.1).min(90.0),
                hold: len * 0.8,
                release: (len * 0.1).min(120.0),
                peak: rng.random_range(0.25..1.0),
            }
        } else {
            let len = rng.random_range(120.0..1200.0f64).min(d * 0.7);
            Episode {
                start: rng.random_range(-len * 0.3..d),
                attack: len * 0.2,
                hold: len * 0.6,
                release: len * 0.2,
                peak: rng.random_range(0.1..0.9),
            }
        };
        if raining {
            showers.push(e);
        }
    }
    let intensity = Track::sample(d, 1.0, |t| sum_env(&showers, t).min(1.0));
    RainPlan { showers, intensity }
}

/// Renders rain: a broadband hiss and impulsive drops. Each drop is an
/// impulse into one of a few ringing resonators (drops on leaves and on the
/// enclosure ring at a few typical pitches), so the cost does not grow with
/// the drop rate.
#[derive(Debug, Clone)]
pub struct RainVoice {
    intensity: Track,
    rate: f32,
    noise: Noise,
    hiss_hp: OnePole,
    hiss_lp: OnePole,
    rings: Vec<Svf>,
    click: f32,
    click_decay: f32,
}

impl RainVoice {
    /// A renderer at `rate` Hz.
    pub fn new(plan: &RainPlan, rate: u32, seed: u64) -> RainVoice {
        let r = rate as f32;
        let mut noise = Noise::new(seed);
        let rings = (0..6)
            .map(|_| {
                let f = 900.0 + 3500.0 * noise.unit();
                Svf::new(f, 6.0 + 14.0 * noise.unit(), r)
            })
            .collect();
        RainVoice {
            intensity: plan.intensity.clone(),
            rate: r,
            noise,
            hiss_hp: OnePole::new(400.0, r),
            hiss_lp: OnePole::new(7000.0, r),
            rings,
            click: 0.0,
            click_decay: (-1.0 / (0.0015 * r)).exp(),
        }
    }

    /// Adds the samples from sample `n0` on.
    pub fn add(&mut self, n0: u64, out: &mut [f32]) {
        let t0 = n0 as f64 / f64::from(self.rate);
        let t1 = (n0 + out.len() as u64) as f64 / f64::from(self.rate);
        if self.intensity.at(t0) <= 0.0 && self.intensity.at(t1) <= 0.0 && self.click < 1e-5 {
            return;
        }
        // A band-pass rings at a peak proportional to its bandwidth over the
        // rate: this makes a drop's loudness independent of the rate.
        let ring_gain = self.rate / 2000.0;
        for (k, chunk) in out.chunks_mut(CONTROL).enumerate() {
            let t = (n0 + (k * CONTROL) as u64) as f64 / f64::from(self.rate);
            let i = self.intensity.at(t);
            let hiss = 0.025 * i;
            let p_drop = 2500.0 * i.powf(1.3) / self.rate;
            for o in chunk.iter_mut() {
                let w = self.noise.normal();
                let mut y = hiss * self.hiss_lp.lp(self.hiss_hp.hp(w));
                let mut kick = 0.0;
                let mut which = 0;
                if i > 0.0 && self.noise.unit() < p_drop {
                    let u = self.noise.unit();
                    which = (self.noise.unit() * self.rings.len() as f32) as usize;
                    // About one drop in ten thousand lands on the enclosure.
                    if self.noise.unit() < 1e-4 {
                        self.click = 0.25 + 0.4 * u;
                        kick = self.click;
                    } else {
                        kick = 0.06 * i.sqrt() * u * u * u;
                    }
                }
                for (j, ring) in self.rings.iter_mut().enumerate() {
                    let x = if j == which { kick * ring_gain } else { 0.0 };
                    y += ring.run(x).band;
                }
                if self.click > 1e-5 {
                    y += self.click * w;
                    self.click *= self.click_decay;
                }
                *o += y;
            }
        }
    }
}

/// One insect species in the chorus.
#[derive(Debug, Clone)]
pub struct InsectSpecies {
    /// Carrier, Hz.
    pub freq: f32,
    /// Pulses per second within a chirp.
    pub pulse_hz: f32,
    /// Chirp length and period, seconds (period 0: a continuous buzz).
    pub chirp: (f32, f32),
    /// Per-caller detuning factor and time offset.
    pub callers: Vec<(f32, f32)>,
    /// Loudness over time (amplitude).
    pub level: Wander,
}

/// Draws an insect chorus of one or two species between 3 and 10 kHz (below
/// `top_hz`).
pub fn plan_insects(rng: &mut ChaCha8Rng, d: f64, top_hz: f32, night: bool) -> Vec<InsectSpecies> {
    let n = rng.random_range(1..=2usize);
    (0..n)
        .map(|_| {
            let freq = rng.random_range(3000.0..10_000.0f32).min(top_hz * 0.95);
            let cicada = rng.random_bool(0.4);
            let chirp = if cicada {
                (0.0, 0.0)
            } else {
                let on = rng.random_range(0.05..0.8f32);
                (on, on + rng.random_range(0.15..2.5))
            };
            let callers = (0..rng.random_range(1..=3))
                .map(|_| (rng.random_range(0.985..1.015), rng.random_range(0.0..3.0)))
                .collect();
            let loud = if night { -34.0 } else { -42.0 };
            let lo = db(loud - 14.0);
            let hi = db(loud);
            InsectSpecies {
                freq,
                pulse_hz: rng.random_range(12.0..70.0),
                chirp,
                callers,
                level: Wander::new(rng, d, 90.0, lo, hi),
            }
        })
        .collect()
}

/// Renders the insect chorus.
#[derive(Debug, Clone)]
pub struct InsectVoice {
    species: Vec<InsectSpecies>,
    phases: Vec<Phase>,
    rate: f64,
}

impl InsectVoice {
    /// A renderer at `rate` Hz.
    pub fn new(species: &[InsectSpecies], rate: u32) -> InsectVoice {
        let n = species.iter().map(|s| s.callers.len()).sum();
        InsectVoice {
            species: species.to_vec(),
            phases: vec![Phase::default(); n],
            rate: f64::from(rate),
        }
    }

    /// Adds the samples from sample `n0` on.
    pub fn add(&mut self, n0: u64, out: &mut [f32]) {
        let mut pi = 0;
        for s in &self.species {
            let level = s.level.at(n0 as f64 / self.rate);
            for &(detune, offset) in &s.callers {
                let ph = &mut self.phases[pi];
                pi += 1;
                let f = f64::from(s.freq * detune);
                let pulse = f64::from(s.pulse_hz * detune);
                for (i, o) in out.iter_mut().enumerate() {
                    let t = (n0 + i as u64) as f64 / self.rate + f64::from(offset);
                    let mut gate = pulse_gate((t * pulse).fract() as f32);
                    if s.chirp.1 > 0.0 {
                        let c = (t % f64::from(s.chirp.1)) as f32;
                        gate *= edge(c, s.chirp.0, 0.01);
                    }
                    if gate > 0.0 {
                        *o += level * gate * sin_cycles(ph.0);
                    }
                    ph.step(f, self.rate);
                }
            }
        }
    }
}

/// A pulse within a period: on for the first 40 %, with soft edges.
#[inline]
fn pulse_gate(u: f32) -> f32 {
    if u >= 0.4 {
        0.0
    } else {
        let x = u / 0.4;
        4.0 * x * (1.0 - x)
    }
}

/// 1 inside `[0, len]` with linear edges of `ramp` seconds, 0 outside.
#[inline]
fn edge(t: f32, len: f32, ramp: f32) -> f32 {
    if t <= 0.0 || t >= len {
        0.0
    } else {
        (t / ramp).min((len - t) / ramp).min(1.0)
    }
}

/// A passing aircraft.
#[derive(Debug, Clone)]
pub struct Aircraft {
    /// Loudness over the pass.
    pub pass: Episode,
    /// Blade or fan tone heard at the middle of the pass, Hz.
    pub tone_hz: f32,
    /// Doppler shift either side of the middle (fraction).
    pub doppler: f32,
}

/// Distant road traffic and aircraft.
#[derive(Debug, Clone)]
pub struct DistantPlan {
    /// Road rumble loudness (0: no road).
    pub road: f32,
    /// Vehicles passing on the road (peak = extra loudness factor).
    pub swells: Vec<Episode>,
    /// Aircraft passes.
    pub aircraft: Vec<Aircraft>,
}

/// Draws the distant sources; with probability `p` there is a road.
pub fn plan_distant(rng: &mut ChaCha8Rng, d: f64, p: f64) -> DistantPlan {
    let road_there = rng.random_bool(p);
    let road = db(rng.random_range(-62.0..-44.0));
    let swell_rate = rng.random_range(10.0..90.0);
    let swells: Vec<Episode> = (0..poisson_count(rng, swell_rate * d / 3600.0))
        .map(|_| Episode {
            start: rng.random_range(-30.0..d),
            attack: rng.random_range(8.0..30.0),
            hold: rng.random_range(0.0..10.0),
            release: rng.random_range(8.0..30.0),
            peak: rng.random_range(1.0..6.0),
        })
        .collect();
    let air_rate = rng.random_range(0.0..4.0);
    let aircraft = (0..poisson_count(rng, air_rate * d / 3600.0))
        .map(|_| Aircraft {
            pass: Episode {
                start: rng.random_range(-40.0..d),
                attack: rng.random_range(20.0..60.0),
                hold: rng.random_range(0.0..25.0),
                release: rng.random_range(25.0..70.0),
                peak: db(rng.random_range(-46.0..-24.0)),
            },
            tone_hz: rng.random_range(70.0..180.0),
            doppler: rng.random_range(0.02..0.08),
        })
        .collect();
    DistantPlan {
        road: if road_there { road } else { 0.0 },
        swells: if road_there { swells } else { Vec::new() },
        aircraft,
    }
}

/// Renders the road and the aircraft.
#[derive(Debug, Clone)]
pub struct DistantVoice {
    road: Track,
    aircraft: Vec<Aircraft>,
    rate: f64,
    noise: Noise,
    road_lp1: OnePole,
    road_lp2: OnePole,
    air_lp: Svf,
    tone: Phase,
}

impl DistantVoice {
    /// A renderer at `rate` Hz.
    pub fn new(plan: &DistantPlan, duration: f64, rate: u32, seed: u64) -> DistantVoice {
        let r = rate as f32;
        let road = Track::sample(duration, 4.0, |t| {
            plan.road * (1.0 + sum_env(&plan.swells, t))
        });
        DistantVoice {
            road,
            aircraft: plan.aircraft.clone(),
            rate: f64::from(rate),
            noise: Noise::new(seed),
            road_lp1: OnePole::new(90.0, r),
            road_lp2: OnePole::new(160.0, r),
            air_lp: Svf::new(350.0, 0.8, r),
            tone: Phase::default(),
        }
    }

    /// Adds the samples from sample `n0` on.
    pub fn add(&mut self, n0: u64, out: &mut [f32]) {
        let t0 = n0 as f64 / self.rate;
        let t1 = (n0 + out.len() as u64) as f64 / self.rate;
        let road0 = self.road.at(t0);
        let road1 = self.road.at(t1);
        let norm = (self.rate as f32 / 200.0).sqrt();
        let passes: Vec<Aircraft> = self
            .aircraft
            .iter()
            .filter(|a| a.pass.start < t1 && a.pass.end() > t0)
            .cloned()
            .collect();
        if road0 <= 0.0 && road1 <= 0.0 && passes.is_empty() {
            return;
        }
        for (k, chunk) in out.chunks_mut(CONTROL).enumerate() {
            let t = (n0 + (k * CONTROL) as u64) as f64 / self.rate;
            let road = self.road.at(t) * norm;
            let mut air = 0.0;
            let mut tone_hz = 0.0;
            for a in &passes {
                let e = a.pass.env(t);
                if e > air {
                    air = e;
                    let mid = a.pass.start + a.pass.attack + a.pass.hold * 0.5;
                    let x = ((mid - t) / 25.0).tanh() as f32;
                    tone_hz = a.tone_hz * (1.0 + a.doppler * x);
                }
            }
            for o in chunk.iter_mut() {
                let w = self.noise.normal();
                let r = self.road_lp2.lp(self.road_lp1.lp(w));
                let mut y = road * r;
                if air > 0.0 {
                    let n = self.air_lp.run(w).low * (self.rate as f32 / 700.0).sqrt();
                    let p = self.tone.step(f64::from(tone_hz), self.rate);
                    let tone =
                        sin_cycles(p) + 0.5 * sin_cycles(2.0 * p) + 0.25 * sin_cycles(3.0 * p);
                    y += air * (n + 0.4 * tone);
                }
                *o += y;
            }
        }
    }
}

/// The recorder's input gain, dB, 1 Hz: a level for the scene, a slow
/// drift, and occasional steps (someone or an automatic gain control
/// turning it).
pub fn plan_gain(rng: &mut ChaCha8Rng, d: f64) -> Track {
    let base = rng.random_range(-6.0..8.0f32);
    let drift = Wander::new(rng, d, 240.0, -1.5, 1.5);
    let step_rate = rng.random_range(0.0..3.0);
    let mut steps: Vec<(f64, f32)> = (0..poisson_count(rng, step_rate * d / 3600.0))
        .map(|_| (rng.random_range(0.0..d), rng.random_range(-6.0..6.0)))
        .collect();
    steps.sort_by(|a, b| a.0.total_cmp(&b.0));
    Track::sample(d, 1.0, |t| {
        let stepped: f32 = steps.iter().take_while(|s| s.0 <= t).map(|s| s.1).sum();
        (base + drift.at(t) + stepped).clamp(-20.0, 24.0)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn wind_at(speed: f32, rate: u32) -> Vec<f32> {
        let plan = WindPlan {
            speed: Track::sample(10.0, 10.0, |_| speed),
            gusts: Vec::new(),
            shield: 1.0,
        };
        let mut v = WindVoice::new(&plan, rate, 1, 2);
        let mut out = vec![0.0; rate as usize * 4];
        v.add(0, &mut out);
        out
    }

    fn energy(x: &[f32]) -> f32 {
        x.iter().map(|v| v * v).sum::<f32>() / x.len() as f32
    }

    #[test]
    fn wind_grows_with_speed_and_sits_low() {
        let rate = 16_000;
        let (calm, fresh) = (wind_at(1.0, rate), wind_at(10.0, rate));
        assert!(energy(&fresh) > 1000.0 * energy(&calm));
        // Most of a moderate wind's energy is below a few hundred Hz.
        let mut lp = OnePole::new(300.0, rate as f32);
        let low: Vec<f32> = fresh.iter().map(|&x| lp.lp(x)).collect();
        assert!(energy(&low) > 0.6 * energy(&fresh));
        // A gale spreads it: more energy above 1 kHz, relative to the whole.
        let high_share = |x: &[f32]| {
            let mut hp = OnePole::new(1000.0, rate as f32);
            let h: Vec<f32> = x.iter().map(|&v| hp.hp(v)).collect();
            energy(&h) / energy(x)
        };
        assert!(high_share(&wind_at(22.0, rate)) > 2.0 * high_share(&fresh));
    }

    #[test]
    fn gusts_do_not_pile_up_beyond_a_storm() {
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        let w = plan_wind(
            &mut rng,
            600.0,
            (14.0, 14.0),
            (2000.0, 2000.0),
            (16.0, 16.0),
        );
        assert!(w.speed.max_over(0.0, 600.0) <= MAX_WIND);
        assert!(w.speed.max_over(0.0, 600.0) > 25.0);
    }
}
