//! Wildlife calls: birds (trills, swept whistles, harmonic calls, series of
//! short notes, 1-8 kHz), frogs (pulsed low croaks), owls (low hoots) and
//! mammals (howls and barks). A call event is a sequence of notes, each a
//! tone with a pitch contour, a few harmonics, vibrato, pulsing and a breath
//! of noise, heard through a distance low-pass.

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::signal::{Noise, OnePole, Phase, db, sin_cycles};

/// What is calling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallKind {
    /// Rapid repeated down-swept notes.
    Trill,
    /// Whistled notes sweeping up, down or over an arch.
    Whistle,
    /// Short harsh calls with strong harmonics.
    Harmonic,
    /// A series of short notes at a steady rate.
    Repeated,
    /// Pulsed low croaks.
    Frog,
    /// Low soft hoots.
    Hoot,
    /// A long rising and falling howl.
    Howl,
    /// Short noisy barks in bouts.
    Bark,
}

impl CallKind {
    /// A name for the summary.
    pub fn name(self) -> &'static str {
        match self {
            CallKind::Trill => "bird trill",
            CallKind::Whistle => "bird whistle",
            CallKind::Harmonic => "bird harmonic call",
            CallKind::Repeated => "bird note series",
            CallKind::Frog => "frog croaks",
            CallKind::Hoot => "owl hoots",
            CallKind::Howl => "mammal howl",
            CallKind::Bark => "mammal barks",
        }
    }
}

/// Pitch contour of a note from `f0` to `f1`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Contour {
    /// Straight line in Hz.
    Linear,
    /// Straight line in log-frequency.
    Glide,
    /// From `f0` up to `f1` and back.
    Arch,
}

/// One note of a call.
#[derive(Debug, Clone, PartialEq)]
pub struct Note {
    /// Start, seconds from the scene start.
    pub start: f64,
    /// Length, seconds.
    pub dur: f64,
    /// Pitch at the start (and end for an arch), Hz.
    pub f0: f32,
    /// Pitch at the end (top of an arch), Hz.
    pub f1: f32,
    /// Contour.
    pub contour: Contour,
    /// Vibrato rate (Hz) and depth (fraction).
    pub vibrato: (f32, f32),
    /// Pulsing within the note: rate (Hz, 0 for none) and depth.
    pub pulses: (f32, f32),
    /// Amplitudes of harmonics 1 to 4.
    pub harmonics: [f32; 4],
    /// Noise mixed in (0: pure tone).
    pub noise: f32,
    /// Peak amplitude.
    pub amp: f32,
}

/// A labelled wildlife call event.
#[derive(Debug, Clone)]
pub struct CallEvent {
    /// Start, seconds.
    pub start: f64,
    /// End of the last note, seconds.
    pub end: f64,
    /// What calls.
    pub kind: CallKind,
    /// The notes, by start.
    pub notes: Vec<Note>,
    /// Distance low-pass corner, Hz.
    pub air_hz: f32,
}

fn pick_kind(rng: &mut ChaCha8Rng, night: bool) -> CallKind {
    use CallKind::*;
    let table: &[(CallKind, f64)] = if night {
        &[
            (Frog, 0.35),
            (Hoot, 0.2),
            (Howl, 0.1),
            (Bark, 0.1),
            (Trill, 0.1),
            (Whistle, 0.05),
            (Repeated, 0.1),
        ]
    } else {
        &[
            (Trill, 0.22),
            (Whistle, 0.22),
            (Harmonic, 0.18),
            (Repeated, 0.2),
            (Frog, 0.07),
            (Bark, 0.05),
            (Howl, 0.03),
            (Hoot, 0.03),
        ]
    };
    let total: f64 = table.iter().map(|k| k.1).sum();
    let mut x = rng.random_range(0.0..total);
    for &(k, w) in table {
        if x < w {
            return k;
        }
        x -= w;
    }
    Whistle
}

/// Plans a call event starting at `t0` and lasting up to `len` seconds;
/// pitches stay below `top_hz`.
pub fn plan_call(rng: &mut ChaCha8Rng, t0: f64, len: f64, top_hz: f32, night: bool) -> CallEvent {
    let kind = pick_kind(rng, night);
    let level = db(rng.random_range(-46.0..-14.0));
    let air_hz = rng.random_range(2500.0..14_000.0f32);
    let end_by = t0 + len;
    let mut notes = Vec::new();
    let cap = |f: f32| f.min(top_hz);
    let mut t = t0;
    // Every kind: bouts of notes until the event's length is used.
    let tone = [1.0, 0.0, 0.0, 0.0];
    match kind {
        CallKind::Trill => {
            let centre = rng.random_range(2000.0..7000.0f32);
            let rate = rng.random_range(12.0..40.0f64);
            let drop = rng.random_range(0.7..0.92f32);
            while t < end_by {
                let phrase = rng.random_range(0.5..2.5f64);
                let mut s = t;
                while s < (t + phrase).min(end_by) {
                    notes.push(Note {
                        start: s,
                        dur: 0.6 / rate,
                        f0: cap(centre),
                        f1: cap(centre * drop),
                        contour: Contour::Glide,
                        vibrato: (0.0, 0.0),
                        pulses: (0.0, 0.0),
                        harmonics: [1.0, 0.15, 0.0, 0.0],
                        noise: 0.02,
                        amp: level * rng.random_range(0.7..1.0),
                    });
                    s += 1.0 / rate;
                }
                t = s + rng.random_range(1.5..6.0);
            }
        }
        CallKind::Whistle => {
            let motif = rng.random_range(1..=3usize);
            let shapes: Vec<(f32, f32, Contour, f64)> = (0..motif)
                .map(|_| {
                    let f0 = rng.random_range(1500.0..6000.0f32);
                    let f1 = f0 * rng.random_range(0.5..2.0f32);
                    let c = match rng.random_range(0..3) {
                        0 => Contour::Linear,
                        1 => Contour::Glide,
                        _ => Contour::Arch,
                    };
                    (f0, f1.clamp(1000.0, 8000.0), c, rng.random_range(0.25..1.2))
                })
                .collect();
            let vib = (rng.random_range(0.0..30.0), rng.random_range(0.0..0.03));
            while t < end_by {
                for &(f0, f1, contour, dur) in &shapes {
                    if t >= end_by {
                        break;
                    }
                    notes.push(Note {
                        start: t,
                        dur: dur.min(end_by - t + 0.05),
                        f0: cap(f0),
                        f1: cap(f1),
                        contour,
                        vibrato: vib,
                        pulses: (0.0, 0.0),
                        harmonics: tone,
                        noise: 0.01,
                        amp: level * rng.random_range(0.7..1.0),
                    });
                    t += dur + rng.random_range(0.05..0.3);
                }
                t += rng.random_range(1.5..5.0);
            }
        }
        CallKind::Harmonic => {
            let f = rng.random_range(600.0..2500.0f32);
            let h = [
                1.0,
                rng.random_range(0.5..0.9),
                rng.random_range(0.2..0.6),
                rng.random_range(0.1..0.3),
            ];
            let noise = rng.random_range(0.05..0.3);
            while t < end_by {
                for _ in 0..rng.random_range(2..=5) {
                    let dur = rng.random_range(0.12..0.5);
                    notes.push(Note {
                        start: t,
                        dur,
                        f0: cap(f * 1.05),
                        f1: cap(f * 0.9),
                        contour: Contour::Arch,
                        vibrato: (rng.random_range(20.0..60.0), 0.01),
                        pulses: (0.0, 0.0),
                        harmonics: h,
                        noise,
                        amp: level * rng.random_range(0.7..1.0),
                    });
                    t += dur + rng.random_range(0.15..0.6);
                }
                t += rng.random_range(2.0..6.0);
            }
        }
        CallKind::Repeated => {
            let fa = rng.random_range(2000.0..8000.0f32);
            let fb = if rng.random_bool(0.4) {
                fa * rng.random_range(0.75..0.95)
            } else {
                fa
            };
            let rate = rng.random_range(2.0..8.0f64);
            let dur = rng.random_range(0.03..0.12f64).min(0.7 / rate);
            let mut i = 0u32;
            while t < end_by {
                let series = rng.random_range(3..=14);
                for _ in 0..series {
                    let f = if i.is_multiple_of(2) { fa } else { fb };
                    notes.push(Note {
                        start: t,
                        dur,
                        f0: cap(f),
                        f1: cap(f * 0.97),
                        contour: Contour::Linear,
                        vibrato: (0.0, 0.0),
                        pulses: (0.0, 0.0),
                        harmonics: [1.0, 0.1, 0.0, 0.0],
                        noise: 0.0,
                        amp: level * rng.random_range(0.8..1.0),
                    });
                    i += 1;
                    t += 1.0 / rate;
                }
                t += rng.random_range(1.0..4.0);
            }
        }
        CallKind::Frog => {
            let f = rng.random_range(150.0..700.0f32);
            let pulse = rng.random_range(10.0..80.0f32);
            while t < end_by {
                let dur = rng.random_range(0.2..1.5);
                notes.push(Note {
                    start: t,
                    dur,
                    f0: f,
                    f1: f * 1.04,
                    contour: Contour::Arch,
                    vibrato: (0.0, 0.0),
                    pulses: (pulse, 0.9),
                    harmonics: [1.0, 0.7, 0.5, 0.3],
                    noise: 0.05,
                    amp: level * rng.random_range(0.7..1.0),
                });
                t += dur + rng.random_range(0.4..2.5);
            }
        }
        CallKind::Hoot => {
            let f = rng.random_range(300.0..800.0f32);
            while t < end_by {
                for _ in 0..rng.random_range(2..=5) {
                    let dur = rng.random_range(0.3..1.0);
                    notes.push(Note {
                        start: t,
                        dur,
                        f0: f,
                        f1: f * 1.06,
                        contour: Contour::Arch,
                        vibrato: (rng.random_range(3.0..8.0), 0.01),
                        pulses: (0.0, 0.0),
                        harmonics: [1.0, 0.2, 0.05, 0.0],
                        noise: 0.03,
                        amp: level,
                    });
                    t += dur + rng.random_range(0.2..0.9);
                }
                t += rng.random_range(2.0..6.0);
            }
        }
        CallKind::Howl => {
            let f = rng.random_range(350.0..1000.0f32);
            while t < end_by {
                let dur = rng.random_range(1.5..4.0);
                notes.push(Note {
                    start: t,
                    dur,
                    f0: f,
                    f1: f * rng.random_range(1.3..1.8),
                    contour: Contour::Arch,
                    vibrato: (rng.random_range(4.0..7.0), 0.02),
                    pulses: (0.0, 0.0),
                    harmonics: [1.0, 0.4, 0.2, 0.1],
                    noise: 0.05,
                    amp: level,
                });
                t += dur + rng.random_range(1.0..4.0);
            }
        }
        CallKind::Bark => {
            let f = rng.random_range(200.0..700.0f32);
            while t < end_by {
                for _ in 0..rng.random_range(2..=6) {
                    let dur = rng.random_range(0.08..0.25);
                    notes.push(Note {
                        start: t,
                        dur,
                        f0: f * 1.1,
                        f1: f * 0.85,
                        contour: Contour::Linear,
                        vibrato: (0.0, 0.0),
                        pulses: (0.0, 0.0),
                        harmonics: [1.0, 0.6, 0.4, 0.3],
                        noise: 0.6,
                        amp: level,
                    });
                    t += dur + rng.random_range(0.2..0.8);
                }
                t += rng.random_range(1.5..5.0);
            }
        }
    }
    notes.retain(|n| n.start < end_by);
    let end = notes
        .iter()
        .map(|n| n.start + n.dur)
        .fold(t0 + 0.1, f64::max);
    CallEvent {
        start: t0,
        end,
        kind,
        notes,
        air_hz,
    }
}

/// Renders one call event.
#[derive(Debug, Clone)]
pub struct CallVoice {
    ev: CallEvent,
    rate: f64,
    top: f32,
    next: usize,
    phase: Phase,
    vib: Phase,
    pulse: Phase,
    noise: Noise,
    air: OnePole,
    buf: Vec<f32>,
}

impl CallVoice {
    /// A renderer at `rate` Hz.
    pub fn new(ev: &CallEvent, rate: u32, seed: u64) -> CallVoice {
        CallVoice {
            ev: ev.clone(),
            rate: f64::from(rate),
            top: 0.45 * rate as f32,
            next: 0,
            phase: Phase::default(),
            vib: Phase::default(),
            pulse: Phase::default(),
            noise: Noise::new(seed),
            air: OnePole::new(ev.air_hz, rate as f32),
            buf: Vec::new(),
        }
    }

    /// Start and end of the event, seconds.
    pub fn span(&self) -> (f64, f64) {
        (self.ev.start, self.ev.end + 0.05)
    }

    /// Adds the samples from sample `n0` on.
    pub fn add(&mut self, n0: u64, out: &mut [f32]) {
        let t0 = n0 as f64 / self.rate;
        let t1 = (n0 + out.len() as u64) as f64 / self.rate;
        self.buf.clear();
        self.buf.resize(out.len(), 0.0);
        while self.next < self.ev.notes.len()
            && self.ev.notes[self.next].start + self.ev.notes[self.next].dur < t0
        {
            self.next += 1;
        }
        for note in &self.ev.notes[self.next..] {
            if note.start >= t1 {
                break;
            }
            let a = ((note.start - t0) * self.rate).ceil().max(0.0) as usize;
            let b = (((note.start + note.dur - t0) * self.rate).ceil().max(0.0) as usize)
                .min(out.len());
            for i in a..b {
                let t = t0 + i as f64 / self.rate;
                let u = ((t - note.start) / note.dur) as f32;
                let mut f = match note.contour {
                    Contour::Linear => note.f0 + (note.f1 - note.f0) * u,
                    Contour::Glide => note.f0 * (note.f1 / note.f0).powf(u),
                    Contour::Arch => {
                        note.f0 + (note.f1 - note.f0) * (std::f32::consts::PI * u).sin()
                    }
                };
                let v = sin_cycles(self.vib.step(f64::from(note.vibrato.0), self.rate));
                f *= 1.0 + note.vibrato.1 * v;
                let att = (u / 0.12).min(1.0);
                let rel = ((1.0 - u) / 0.2).min(1.0);
                let mut env = note.amp * att * att * rel;
                if note.pulses.0 > 0.0 {
                    let p = sin_cycles(self.pulse.step(f64::from(note.pulses.0), self.rate));
                    let g = 0.5 + 0.5 * p;
                    env *= 1.0 - note.pulses.1 + note.pulses.1 * g * g;
                }
                let p = self.phase.step(f64::from(f), self.rate);
                let mut y = 0.0;
                for (k, &h) in note.harmonics.iter().enumerate() {
                    let kf = (k + 1) as f32;
                    if h > 0.0 && f * kf < self.top {
                        y += h * sin_cycles(p * f64::from(kf));
                    }
                }
                if note.noise > 0.0 {
                    y += note.noise * self.noise.normal() * (0.5 + 0.5 * sin_cycles(p));
                }
                self.buf[i] += env * y;
            }
        }
        for (o, &x) in out.iter_mut().zip(&self.buf) {
            *o += self.air.lp(x);
        }
    }
}
