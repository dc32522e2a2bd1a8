//! Sound sources, each rendered into the scene's mono buffer (full scale ±1).
//! Levels are dBFS RMS; spectra and time structure follow the physical
//! sources they stand for (see each function).

// Sample loops index the buffer by sample number because the number is also the time.
#![allow(clippy::needless_range_loop)]

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::dsp::{Biquad, Noise, SlowWobble, Wavetable, gauss, rms, sine_amp, uniform};

const TAU: f32 = 2.0 * std::f32::consts::PI;

fn span(buf: &[f32], rate: f32, start_s: f32, end_s: f32) -> (usize, usize) {
    let a = ((start_s * rate) as usize).min(buf.len());
    let b = ((end_s * rate) as usize).clamp(a, buf.len());
    (a, b)
}

/// Wind: pink-ish noise low-passed near 400 Hz (turbulence at the
/// microphone), its level wandering over tens of seconds; `gusts` add
/// `(start, end)` episodes up to 14 dB louder.
pub fn wind(buf: &mut [f32], rate: f32, rng: &mut ChaCha8Rng, level_db: f32, gusts: &[(f32, f32)]) {
    let mut lp = Biquad::lowpass(rate, 400.0, 0.7);
    let mut lp2 = Biquad::lowpass(rate, 900.0, 0.7);
    let wobble = SlowWobble::new(rng, 0.01, 0.08);
    let base = rms(level_db) * 3.0;
    for (i, s) in buf.iter_mut().enumerate() {
        let t = i as f32 / rate;
        let mut g = 1.0 + 0.35 * wobble.at(t);
        for &(a, b) in gusts {
            if t > a && t < b {
                let x = (t - a) / (b - a);
                g *= 1.0 + 4.0 * (std::f32::consts::PI * x).sin().powi(2);
            }
        }
        let n = gauss(rng);
        *s += lp2.run(lp.run(n)) * base * g;
    }
}

/// Rain: broadband hiss above 1 kHz plus droplet impacts (short decaying
/// resonances at 2..7 kHz), fading in and out over a few seconds.
pub fn rain(
    buf: &mut [f32],
    rate: f32,
    rng: &mut ChaCha8Rng,
    start_s: f32,
    end_s: f32,
    level_db: f32,
) {
    let (a, b) = span(buf, rate, start_s, end_s);
    let mut hp = Biquad::highpass(rate, 1000.0, 0.7);
    let amp = rms(level_db);
    let mut drops: Vec<(Biquad, f32)> = Vec::new();
    for i in a..b {
        let t = (i - a) as f32 / rate;
        let dur = end_s - start_s;
        let env = (t / 4.0).min(1.0) * ((dur - t) / 4.0).clamp(0.0, 1.0);
        let mut x = hp.run(gauss(rng)) * amp;
        if rng.random::<f32>() < 60.0 / rate {
            drops.push((
                Biquad::bandpass(rate, uniform(rng, 2000.0, (rate * 0.45).min(7000.0)), 8.0),
                amp * uniform(rng, 5.0, 20.0),
            ));
        }
        for (f, e) in drops.iter_mut() {
            x += f.run(*e);
            *e = 0.0;
        }
        if drops.len() > 16 {
            drops.remove(0);
        }
        buf[i] += x * env;
    }
}

/// Bird song: a bout of frequency-modulated syllables (50..300 ms, 2..7 kHz
/// below Nyquist) with a weaker second harmonic, silent gaps between.
pub fn birdsong(
    buf: &mut [f32],
    rate: f32,
    rng: &mut ChaCha8Rng,
    start_s: f32,
    end_s: f32,
    level_db: f32,
) {
    let top = (rate * 0.42).min(7000.0);
    let mut t = start_s;
    let amp = sine_amp(level_db);
    while t < end_s - 0.1 {
        // A bout of 1 to 4 s, then a pause.
        let bout_end = (t + uniform(rng, 1.0, 4.0)).min(end_s);
        let f_base = uniform(rng, 2500.0, top * 0.8);
        while t < bout_end {
            let len = uniform(rng, 0.05, 0.3);
            let f0 = (f_base * uniform(rng, 0.85, 1.15)).min(top);
            let sweep = uniform(rng, -1500.0, 1500.0);
            let (a, b) = span(buf, rate, t, (t + len).min(bout_end));
            let mut ph = 0f32;
            for i in a..b {
                let x = (i - a) as f32 / (b - a).max(1) as f32;
                let f = (f0 + sweep * x + 150.0 * (TAU * 30.0 * x * len).sin()).clamp(1500.0, top);
                ph += TAU * f / rate;
                let env = (std::f32::consts::PI * x).sin().powi(2);
                let h2 = if 2.0 * f < rate * 0.45 {
                    0.25 * (2.0 * ph).sin()
                } else {
                    0.0
                };
                buf[i] += amp * env * (ph.sin() + h2);
            }
            t += len + uniform(rng, 0.05, 0.15);
        }
        t += uniform(rng, 0.5, 1.5);
    }
}

/// A deer-like bark: 0.2..0.5 s, a buzzy source near 300 Hz and noise,
/// through a formant at 0.5..1.5 kHz; repeated every 1..3 s.
pub fn barks(
    buf: &mut [f32],
    rate: f32,
    rng: &mut ChaCha8Rng,
    start_s: f32,
    end_s: f32,
    level_db: f32,
) {
    let mut t = start_s + 0.2;
    let amp = rms(level_db) * 4.0;
    while t < end_s - 0.5 {
        let len = uniform(rng, 0.2, 0.5);
        let mut formant = Biquad::bandpass(rate, uniform(rng, 500.0, 1500.0), 2.5);
        let f0 = uniform(rng, 250.0, 380.0);
        let (a, b) = span(buf, rate, t, t + len);
        let mut ph = 0f32;
        for i in a..b {
            let x = (i - a) as f32 / (b - a).max(1) as f32;
            ph += TAU * f0 * (1.0 - 0.3 * x) / rate;
            let src = (ph.sin().signum() * 0.6) + 0.4 * gauss(rng);
            let env = (x * 20.0).min(1.0) * (1.0 - x).powi(2);
            buf[i] += amp * env * formant.run(src);
        }
        t += len + uniform(rng, 1.0, 3.0);
    }
}

/// A running machine: a harmonic series on its rotation frequency (with
/// 1/k amplitudes to ~1 kHz) plus broadband motor noise below 2 kHz.
pub struct Machine {
    /// Rotation frequency, Hz.
    pub f_rot: f32,
    phases: Vec<f32>,
    /// Level, dBFS RMS.
    pub level_db: f32,
}

impl Machine {
    /// A machine with random rotation speed and phases.
    pub fn new(rng: &mut ChaCha8Rng, level_db: f32) -> Self {
        let f_rot = uniform(rng, 25.0, 50.0);
        let phases = (0..40).map(|_| uniform(rng, 0.0, TAU)).collect();
        Machine {
            f_rot,
            phases,
            level_db,
        }
    }

    /// Renders the machine running over the whole buffer.
    pub fn render(&self, buf: &mut [f32], rate: f32, rng: &mut ChaCha8Rng) {
        let mut lp = Biquad::lowpass(rate, 2000.0, 0.7);
        let amp = rms(self.level_db);
        let ks: Vec<usize> = (1..=40)
            .filter(|k| *k as f32 * self.f_rot < 1000.0_f32.min(rate * 0.45))
            .collect();
        let norm: f32 = ks
            .iter()
            .map(|k| 1.0 / (*k as f32 * *k as f32))
            .sum::<f32>()
            .sqrt();
        for (i, s) in buf.iter_mut().enumerate() {
            let t = i as f32 / rate;
            let mut x = 0.0;
            for &k in &ks {
                x += (TAU * self.f_rot * k as f32 * t + self.phases[k - 1]).sin() / k as f32;
            }
            *s += amp * (0.8 * x / norm * std::f32::consts::SQRT_2 + 0.5 * lp.run(gauss(rng)));
        }
    }

    /// The same machine as [`Machine::render`], its harmonics played from
    /// a table of one rotation instead of a `sin` per harmonic and sample
    /// (equal to it within -80 dB): the field conditions' scenes run for
    /// hours at up to 48 kHz.
    pub fn render_fast(&self, buf: &mut [f32], rate: f32, rng: &mut ChaCha8Rng) {
        let mut noise = Noise::new(rng);
        let mut lp = Biquad::lowpass(rate, 2000.0, 0.7);
        let amp = rms(self.level_db);
        let ks: Vec<usize> = (1..=40)
            .filter(|k| *k as f32 * self.f_rot < 1000.0_f32.min(rate * 0.45))
            .collect();
        let norm: f32 = ks
            .iter()
            .map(|k| 1.0 / (*k as f32 * *k as f32))
            .sum::<f32>()
            .sqrt();
        let harmonics: Vec<(f32, f32, f32)> = ks
            .iter()
            .map(|&k| {
                (
                    k as f32,
                    0.8 / k as f32 / norm * std::f32::consts::SQRT_2,
                    self.phases[k - 1],
                )
            })
            .collect();
        let mut tone = Wavetable::new(rate, self.f_rot, &harmonics);
        for s in buf.iter_mut() {
            *s += amp * (tone.run() + 0.5 * lp.run(noise.white()));
        }
    }

    /// A bearing fault: impacts at `impact_hz` ringing a resonance, and the
    /// second and third harmonics growing, `rise_db` above the machine.
    #[allow(clippy::too_many_arguments)]
    pub fn fault(
        &self,
        buf: &mut [f32],
        rate: f32,
        rng: &mut ChaCha8Rng,
        start_s: f32,
        end_s: f32,
        impact_hz: f32,
        resonance_hz: f32,
        rise_db: f32,
    ) {
        let (a, b) = span(buf, rate, start_s, end_s);
        let amp = rms(self.level_db + rise_db);
        let mut ring = Biquad::bandpass(rate, resonance_hz.min(rate * 0.45), 12.0);
        let period = (rate / impact_hz) as usize;
        let dur = end_s - start_s;
        for i in a..b {
            let t = (i - a) as f32 / rate;
            // The fault develops over a few seconds and stays.
            let env = (t / 3.0).min(1.0) * ((dur - t) / 1.0).clamp(0.0, 1.0);
            let jitter = (i - a) % period.max(1) == 0;
            let kick = if jitter {
                uniform(rng, 20.0, 40.0)
            } else {
                0.0
            };
            let tt = i as f32 / rate;
            let harm = (TAU * 2.0 * self.f_rot * tt).sin() * 0.5
                + (TAU * 3.0 * self.f_rot * tt).sin() * 0.4;
            buf[i] += env * amp * (ring.run(kick) + 0.6 * harm);
        }
    }
}

const VOWELS: [[f32; 3]; 5] = [
    [730.0, 1090.0, 2440.0],
    [270.0, 2290.0, 3010.0],
    [300.0, 870.0, 2240.0],
    [530.0, 1840.0, 2480.0],
    [570.0, 840.0, 2410.0],
];

/// Speech-like sound: phrases of syllables (3..5 per second), each a glottal
/// pulse train (f0 90..250 Hz with falling intonation) through three vowel
/// formants, with short consonant noise bursts, and pauses between phrases.
pub fn speech(
    buf: &mut [f32],
    rate: f32,
    rng: &mut ChaCha8Rng,
    start_s: f32,
    end_s: f32,
    level_db: f32,
) {
    let f0_base = uniform(rng, 90.0, 250.0);
    let amp = rms(level_db) * 6.0;
    let mut t = start_s + 0.2;
    while t < end_s - 0.5 {
        let phrase_end = (t + uniform(rng, 1.0, 4.0)).min(end_s - 0.2);
        let phrase_len = phrase_end - t;
        let phrase_start = t;
        while t < phrase_end {
            let syl = uniform(rng, 0.2, 0.33);
            let v = VOWELS[rng.random_range(0..VOWELS.len())];
            let mut f: Vec<Biquad> = v
                .iter()
                .enumerate()
                .map(|(j, &fr)| Biquad::bandpass(rate, fr.min(rate * 0.45), 5.0 + j as f32 * 2.0))
                .collect();
            let mut cons = Biquad::highpass(rate, 2500.0, 0.7);
            let (a, b) = span(buf, rate, t, (t + syl).min(phrase_end));
            let mut ph = 0f32;
            for i in a..b {
                let x = (i - a) as f32 / (b - a).max(1) as f32;
                let tp = (i as f32 / rate - phrase_start) / phrase_len.max(0.1);
                let f0 = f0_base * (1.15 - 0.3 * tp) * (1.0 + 0.05 * (TAU * 5.0 * x).sin());
                let prev = ph;
                ph = (ph + f0 / rate).fract();
                let pulse = if ph < prev { 1.0 } else { 0.0 };
                let voiced: f32 = f
                    .iter_mut()
                    .enumerate()
                    .map(|(j, bq)| bq.run(pulse) * [1.0, 0.6, 0.3][j])
                    .sum();
                let consonant = if x < 0.15 {
                    cons.run(gauss(rng)) * 0.05
                } else {
                    0.0
                };
                let env = (x / 0.15).min(1.0) * ((1.0 - x) / 0.3).min(1.0);
                buf[i] += amp * (voiced * env * 8.0 + consonant);
            }
            t += syl + uniform(rng, 0.0, 0.06);
        }
        t += uniform(rng, 0.3, 1.0);
    }
}

/// Footsteps: low thumps every 0.45..0.6 s.
pub fn footsteps(
    buf: &mut [f32],
    rate: f32,
    rng: &mut ChaCha8Rng,
    start_s: f32,
    end_s: f32,
    level_db: f32,
) {
    let step = uniform(rng, 0.45, 0.6);
    let amp = rms(level_db) * 8.0;
    let mut t = start_s;
    while t < end_s {
        let mut lp = Biquad::lowpass(rate, 180.0, 1.0);
        let (a, b) = span(buf, rate, t, t + 0.08);
        for i in a..b {
            let x = (i - a) as f32 / (b - a).max(1) as f32;
            buf[i] += amp * (1.0 - x).powi(3) * lp.run(gauss(rng));
        }
        t += step * uniform(rng, 0.9, 1.1);
    }
}
