//! People: speech-like voices and footsteps.
//!
//! A voice is a glottal pulse train (a Rosenberg flow pulse, differentiated
//! for the lips' radiation, with jitter and intonation) at 90-250 Hz
//! through three formant band-passes that glide between vowel targets,
//! syllable by syllable at 3-5 per second, with plosive bursts, fricative
//! noise and pauses between phrases; one or two speakers take turns.
//! Footsteps are heel thumps with a click and a gravel or leaf crunch, at a
//! walker's pace, louder as the walker passes.

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::signal::{Noise, Phase, Svf, db, sin_cycles};

/// Formants (F1, F2, F3) of a few vowels for an adult vocal tract, Hz.
const VOWELS: [[f32; 3]; 7] = [
    [730.0, 1090.0, 2440.0],
    [530.0, 1840.0, 2480.0],
    [270.0, 2290.0, 3010.0],
    [570.0, 840.0, 2410.0],
    [300.0, 870.0, 2240.0],
    [500.0, 1500.0, 2500.0],
    [660.0, 1720.0, 2410.0],
];

/// How a syllable begins.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Onset {
    /// Straight into the vowel.
    Vowel,
    /// A short broadband burst, then voicing.
    Plosive,
    /// Hissing noise centred on the frequency, Hz.
    Fricative(f32),
    /// A murmur with a low first formant.
    Nasal,
}

/// One syllable.
#[derive(Debug, Clone, PartialEq)]
pub struct Syllable {
    /// Start, seconds.
    pub start: f64,
    /// Length, seconds.
    pub dur: f64,
    /// Formant targets, Hz.
    pub formants: [f32; 3],
    /// Onset consonant.
    pub onset: Onset,
    /// Pitch target, Hz.
    pub f0: f32,
    /// Amplitude.
    pub amp: f32,
}

/// Footsteps of one walker.
#[derive(Debug, Clone, PartialEq)]
pub struct Steps {
    /// Step times, seconds.
    pub times: Vec<f64>,
    /// Thump pitch, Hz.
    pub thump_hz: f32,
    /// Crunch of the ground (0: hard path, 1: gravel or dry leaves).
    pub crunch: f32,
    /// Time of the closest pass, seconds, and the pass's width, seconds.
    pub pass: (f64, f64),
    /// Loudness at the closest pass.
    pub level: f32,
}

/// A labelled human activity event.
#[derive(Debug, Clone)]
pub struct HumanEvent {
    /// Start, seconds.
    pub start: f64,
    /// End, seconds.
    pub end: f64,
    /// Syllables of all speakers, by start (empty: nobody talks).
    pub speech: Vec<Syllable>,
    /// Number of speakers.
    pub speakers: usize,
    /// Footsteps, if someone walks.
    pub steps: Option<Steps>,
}

impl HumanEvent {
    /// A description for the summary.
    pub fn describe(&self) -> String {
        match (self.speech.is_empty(), &self.steps) {
            (false, Some(_)) => format!("{} speaking, footsteps", self.speakers_text()),
            (false, None) => format!("{} speaking", self.speakers_text()),
            (true, _) => "footsteps".to_string(),
        }
    }

    fn speakers_text(&self) -> &'static str {
        if self.speakers > 1 {
            "two people"
        } else {
            "a person"
        }
    }
}

/// Plans people at `t0` for up to `len` seconds.
pub fn plan(rng: &mut ChaCha8Rng, t0: f64, len: f64, top_hz: f32) -> HumanEvent {
    let kind = rng.random_range(0..4);
    let talk = kind != 3;
    let walk = kind >= 2;
    let speakers = if rng.random_bool(0.4) { 2 } else { 1 };
    let voices: Vec<(f32, f32, f32)> = (0..speakers)
        .map(|_| {
            let f0 = rng.random_range(90.0..250.0f32);
            // Higher voices come with shorter vocal tracts.
            let tract = 0.92 + (f0 - 90.0) / 160.0 * 0.22 + rng.random_range(-0.04..0.04);
            (f0, tract, db(rng.random_range(-40.0..-18.0)))
        })
        .collect();
    let mut speech = Vec::new();
    let end_by = t0 + len;
    if talk {
        let mut t = t0;
        let mut who = 0;
        while t < end_by - 0.5 {
            let (f0, tract, level) = voices[who];
            let rate = rng.random_range(3.0..5.0f64);
            let n = rng.random_range(3..=12);
            for k in 0..n {
                if t >= end_by - 0.2 {
                    break;
                }
                let dur = rng.random_range(0.7..1.3) / rate;
                let v = VOWELS[rng.random_range(0..VOWELS.len())];
                let onset = match rng.random_range(0..5) {
                    0 | 1 => Onset::Vowel,
                    2 => Onset::Plosive,
                    3 => Onset::Fricative(rng.random_range(2500.0..6000.0f32).min(top_hz)),
                    _ => Onset::Nasal,
                };
                let stress = if rng.random_bool(0.3) { 1.0 } else { 0.0 };
                let fall = 1.0 - 0.18 * k as f32 / n as f32;
                speech.push(Syllable {
                    start: t,
                    dur,
                    formants: v.map(|f| (f * tract).min(top_hz)),
                    onset,
                    f0: f0 * fall * (1.0 + 0.15 * stress) * rng.random_range(0.95..1.05),
                    amp: level * (0.7 + 0.3 * stress) * rng.random_range(0.85..1.0),
                });
                t += dur;
            }
            t += rng.random_range(0.25..1.5);
            who = (who + 1) % speakers;
        }
    }
    let steps = walk.then(|| {
        let pace = rng.random_range(0.45..0.65f64);
        let walk_len = if talk {
            len
        } else {
            rng.random_range(4.0..15.0f64).min(len)
        };
        let mut times = Vec::new();
        let mut s = t0;
        while s < t0 + walk_len {
            times.push(s);
            s += pace * rng.random_range(0.95..1.05);
        }
        Steps {
            times,
            thump_hz: rng.random_range(50.0..120.0),
            crunch: rng.random_range(0.0..1.0),
            pass: (
                t0 + walk_len * rng.random_range(0.3..0.7),
                walk_len * rng.random_range(0.2..0.4),
            ),
            level: db(rng.random_range(-38.0..-16.0)),
        }
    });
    let mut end = speech
        .last()
        .map_or(t0 + 0.1, |s: &Syllable| s.start + s.dur);
    if let Some(st) = &steps
        && let Some(&last) = st.times.last()
    {
        end = end.max(last + 0.2);
    }
    HumanEvent {
        start: t0,
        end,
        speech,
        speakers,
        steps,
    }
}

/// The Rosenberg glottal flow over one period (`p` in cycles).
#[inline]
fn glottal_flow(p: f32) -> f32 {
    const OPEN: f32 = 0.4;
    const CLOSE: f32 = 0.16;
    if p < OPEN {
        0.5 * (1.0 - (std::f32::consts::PI * p / OPEN).cos())
    } else if p < OPEN + CLOSE {
        (std::f32::consts::FRAC_PI_2 * (p - OPEN) / CLOSE).cos()
    } else {
        0.0
    }
}

/// A footstep still ringing.
#[derive(Debug, Clone)]
struct Step {
    thump: f32,
    crunch: f32,
    click: f32,
    phase: Phase,
}

/// Renders one human event.
#[derive(Debug, Clone)]
pub struct HumanVoice {
    ev: HumanEvent,
    rate: f64,
    next_syl: usize,
    next_step: usize,
    f0: f32,
    formants: [f32; 3],
    glottis: Phase,
    jitter: f32,
    last_flow: f32,
    bands: [Svf; 3],
    fric: Svf,
    crunch_band: Svf,
    noise: Noise,
    active: Vec<Step>,
}

const BANDWIDTHS: [f32; 3] = [80.0, 100.0, 140.0];
const FORMANT_GAINS: [f32; 3] = [1.0, 0.6, 0.3];

impl HumanVoice {
    /// A renderer at `rate` Hz.
    pub fn new(ev: &HumanEvent, rate: u32, seed: u64) -> HumanVoice {
        let r = rate as f32;
        let start = ev.speech.first();
        let formants = start.map_or([500.0, 1500.0, 2500.0], |s| s.formants);
        HumanVoice {
            ev: ev.clone(),
            rate: f64::from(rate),
            next_syl: 0,
            next_step: 0,
            f0: start.map_or(120.0, |s| s.f0),
            formants,
            glottis: Phase::default(),
            jitter: 1.0,
            last_flow: 0.0,
            bands: [0, 1, 2].map(|i| Svf::new(formants[i], formants[i] / BANDWIDTHS[i], r)),
            fric: Svf::new(4000.0, 1.5, r),
            crunch_band: Svf::new(2500.0, 0.8, r),
            noise: Noise::new(seed),
            active: Vec::new(),
        }
    }

    /// Start and end of the event, seconds.
    pub fn span(&self) -> (f64, f64) {
        (self.ev.start, self.ev.end + 0.3)
    }

    /// Adds the samples from sample `n0` on.
    pub fn add(&mut self, n0: u64, out: &mut [f32]) {
        let r = self.rate as f32;
        for (k, chunk) in out.chunks_mut(16).enumerate() {
            let tc = (n0 + k as u64 * 16) as f64 / self.rate;
            // Control rate: the syllable, its targets, the filters.
            while self.next_syl < self.ev.speech.len() && {
                let s = &self.ev.speech[self.next_syl];
                s.start + s.dur < tc
            } {
                self.next_syl += 1;
            }
            let syl = self
                .ev
                .speech
                .get(self.next_syl)
                .filter(|s| s.start <= tc)
                .cloned();
            if let Some(s) = &syl {
                let glide = 1.0 - (-16.0 / (0.025 * r)).exp();
                let mut target = s.formants;
                let into = (tc - s.start) as f32;
                if s.onset == Onset::Nasal && into < 0.06 {
                    target[0] = 250.0;
                }
                for i in 0..3 {
                    self.formants[i] += (target[i] - self.formants[i]) * glide;
                    self.bands[i].tune(self.formants[i], self.formants[i] / BANDWIDTHS[i], r);
                }
                self.f0 += (s.f0 - self.f0) * (1.0 - (-16.0 / (0.06 * r)).exp());
                if let Onset::Fricative(fc) = s.onset {
                    self.fric.tune(fc, 1.5, r);
                }
            }
            for (i, o) in chunk.iter_mut().enumerate() {
                let t = tc + i as f64 / self.rate;
                let w = self.noise.normal();
                let mut y = 0.0;
                if let Some(s) = &syl {
                    let into = (t - s.start) as f32;
                    let len = s.dur as f32;
                    let (voice_from, burst, hiss) = match s.onset {
                        Onset::Vowel => (0.0, 0.0, 0.0),
                        Onset::Plosive => (0.03, if into < 0.015 { 1.0 } else { 0.0 }, 0.0),
                        Onset::Fricative(_) => {
                            let fl = (0.06 + 0.05 * len).min(len * 0.5);
                            (fl, 0.0, if into < fl { 1.0 } else { 0.0 })
                        }
                        Onset::Nasal => (0.0, 0.0, 0.0),
                    };
                    let voiced = if into < voice_from || into > len {
                        0.0
                    } else {
                        ((into - voice_from) / 0.025)
                            .min(1.0)
                            .min((len - into) / 0.05)
                            .max(0.0)
                    };
                    let murmur = if s.onset == Onset::Nasal && into < 0.06 {
                        0.5
                    } else {
                        1.0
                    };
                    let p = self
                        .glottis
                        .step(f64::from(self.f0 * self.jitter), self.rate);
                    if self.glottis.0 < p {
                        // A new period: fresh jitter.
                        self.jitter = 1.0 + 0.012 * self.noise.normal();
                    }
                    let flow = glottal_flow(p as f32);
                    let src = (flow - self.last_flow) * (r / (self.f0 * 4.0));
                    self.last_flow = flow;
                    let exc = voiced * murmur * (src + 0.04 * w);
                    let mut v = 0.0;
                    for (b, g) in self.bands.iter_mut().zip(FORMANT_GAINS) {
                        v += g * b.run(exc).band;
                    }
                    y += s.amp * (v * 2.0 + burst * 0.8 * w + hiss * 0.7 * self.fric.run(w).band);
                }
                y += self.footsteps(t, w);
                *o += y;
            }
        }
    }

    /// Footstep sound at `t` (white noise sample `w`).
    fn footsteps(&mut self, t: f64, w: f32) -> f32 {
        let Some(st) = &self.ev.steps else {
            return 0.0;
        };
        if self.next_step < st.times.len() && st.times[self.next_step] <= t {
            let x = (t - st.pass.0) / st.pass.1;
            let near = (-0.5 * x * x).exp() as f32 * 0.85 + 0.15;
            let v = st.level * near * (0.8 + 0.2 * self.noise.unit());
            self.active.push(Step {
                thump: v,
                crunch: v * st.crunch * 0.6,
                click: v * 0.5,
                phase: Phase::default(),
            });
            self.next_step += 1;
        }
        if self.active.is_empty() {
            return 0.0;
        }
        let r = self.rate as f32;
        let thump_decay = (-1.0 / (0.035 * r)).exp();
        let crunch_decay = (-1.0 / (0.06 * r)).exp();
        let click_decay = (-1.0 / (0.002 * r)).exp();
        let grain = if self.noise.unit() < 0.2 {
            w * 2.0
        } else {
            0.0
        };
        let crunch = self.crunch_band.run(grain).band;
        let mut y = 0.0;
        for s in &mut self.active {
            y += s.thump * sin_cycles(s.phase.step(f64::from(st.thump_hz), self.rate))
                + s.crunch * crunch
                + s.click * w;
            s.thump *= thump_decay;
            s.crunch *= crunch_decay;
            s.click *= click_decay;
        }
        self.active.retain(|s| s.thump > 1e-5 || s.crunch > 1e-5);
        y
    }
}
