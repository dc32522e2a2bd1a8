//! The camera under field conditions: sensor noise, auto-exposure that
//! jumps (sudden global gain steps, when the light changes and now and
//! then on its own), grey low-contrast infrared frames at night, vegetation
//! swaying in place with the wind, and light that changes slowly with haze
//! and within seconds when a cloud takes the sun.

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::dsp::{Noise, SlowWobble, uniform};
use super::weather::{Sky, Wind};

/// When the camera switches to infrared.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Infrared {
    /// Never: daylight frames only.
    Never,
    /// Every frame.
    Always,
    /// While the sun is down (before 05:45 and after 20:15 UTC).
    AtNight,
}

/// What the conditions do to the camera.
#[derive(Clone, Debug)]
pub struct View {
    /// Sensor noise, grey levels RMS (daylight; infrared frames have their own).
    pub noise: f32,
    /// Infrared frames.
    pub infrared: Infrared,
    /// Auto-exposure jumps on its own: time (s) and gain factor.
    pub exposure_jumps: Vec<(f32, f32)>,
    /// Vegetation sway at a gale, pixels for an 80-pixel-wide frame.
    pub sway_px: f32,
    /// Slow light changes (haze), fraction of the light.
    pub haze: f32,
    haze_wobble: SlowWobble,
}

impl View {
    /// Noise drawn in `noise`, `jumps_per_min` exposure jumps on average,
    /// haze of `haze` at most.
    pub fn draw(
        rng: &mut ChaCha8Rng,
        duration_s: f32,
        noise: (f32, f32),
        infrared: Infrared,
        jumps_per_min: f32,
        haze: f32,
    ) -> Self {
        let noise = uniform(rng, noise.0, noise.1);
        let mut exposure_jumps = Vec::new();
        if jumps_per_min > 0.0 {
            let mut t = uniform(rng, 0.0, 60.0 / jumps_per_min);
            while t < duration_s {
                let f = uniform(rng, 1.15, 1.6);
                exposure_jumps.push((t, if rng.random::<bool>() { f } else { 1.0 / f }));
                t += 60.0 / jumps_per_min * uniform(rng, 0.2, 1.8);
            }
        }
        View {
            noise,
            infrared,
            exposure_jumps,
            sway_px: 3.0,
            haze: uniform(rng, 0.3, 1.0) * haze,
            haze_wobble: SlowWobble::new(rng, 1.0 / 1800.0, 1.0 / 300.0),
        }
    }
}

/// A patch of vegetation that sways in place.
#[derive(Clone, Debug)]
struct Patch {
    x0: usize,
    x1: usize,
    y0: usize,
    y1: usize,
    freq_hz: f32,
    phase: f32,
    amp: f32,
}

/// The conditions as one camera applies them, frame after frame.
pub struct FieldView {
    view: View,
    wind: Option<Wind>,
    sky: Sky,
    patches: Vec<Patch>,
    noise: Noise,
    /// Auto-exposure: current gain, the brightness it settled on, and since
    /// when the brightness has been off.
    ae_gain: f32,
    ae_settled: Option<f32>,
    ae_off_since: Option<f32>,
    jumps_done: usize,
}

impl FieldView {
    /// The conditions for a `w`×`h` view whose ground starts at row
    /// `horizon`, seeded from `rng`.
    pub fn new(
        view: View,
        wind: Option<Wind>,
        sky: Sky,
        w: usize,
        h: usize,
        horizon: usize,
        rng: &mut ChaCha8Rng,
    ) -> Self {
        let n = rng.random_range(2..=5);
        let patches = (0..n)
            .map(|_| {
                let pw = (w as f32 * uniform(rng, 0.12, 0.25)) as usize;
                let ph = (h as f32 * uniform(rng, 0.1, 0.2)) as usize;
                let x0 = rng.random_range(0..w.saturating_sub(pw).max(1));
                let top = horizon.min(h.saturating_sub(ph + 1));
                let y0 = rng.random_range(top..h.saturating_sub(ph).max(top + 1));
                Patch {
                    x0,
                    x1: (x0 + pw).min(w),
                    y0,
                    y1: (y0 + ph).min(h),
                    freq_hz: uniform(rng, 0.3, 1.4),
                    phase: uniform(rng, 0.0, std::f32::consts::TAU),
                    amp: uniform(rng, 0.6, 1.4),
                }
            })
            .collect();
        FieldView {
            view,
            wind,
            sky,
            patches,
            noise: Noise::new(rng),
            ae_gain: 1.0,
            ae_settled: None,
            ae_off_since: None,
            jumps_done: 0,
        }
    }

    /// Whether the frame at `hour` (UTC) is infrared.
    pub fn infrared(&self, hour: f32) -> bool {
        match self.view.infrared {
            Infrared::Never => false,
            Infrared::Always => true,
            Infrared::AtNight => !(5.75..20.25).contains(&hour),
        }
    }

    /// The light at `t`, given the clear-sky daylight gain.
    pub fn light(&self, t: f32, daylight: f32) -> f32 {
        // Direct sun is most of the light: a thick cloud takes 60 % of it.
        let sun = 0.3 + 0.7 * self.sky.sun(t);
        daylight * sun * (1.0 + self.view.haze * self.view.haze_wobble.at(t))
    }

    /// Sways the vegetation in `px` (drawn from `texture` under `light`).
    pub fn sway(&self, t: f32, px: &mut [f32], texture: &[f32], w: usize, light: f32) {
        let Some(wind) = &self.wind else { return };
        let strength = wind.strength(t);
        let scale = self.view.sway_px * w as f32 / 80.0 * strength;
        for p in &self.patches {
            let arg = std::f32::consts::TAU * p.freq_hz * t + p.phase;
            let d = scale * p.amp * (arg.sin() + 0.3 * (2.3 * arg).sin());
            for y in p.y0..p.y1 {
                for x in p.x0..p.x1 {
                    let sx = (x as f32 - d).clamp(0.0, (w - 1) as f32);
                    let i = sx.floor() as usize;
                    let f = sx - i as f32;
                    let j = (i + 1).min(w - 1);
                    px[y * w + x] =
                        (texture[y * w + i] * (1.0 - f) + texture[y * w + j] * f) * light;
                }
            }
        }
    }

    /// Auto-exposure for a frame of brightness `b` (relative light) at `t`:
    /// steps its gain suddenly when the light has been off by a quarter for
    /// over a second, and jumps on its own at the drawn times.
    fn exposure(&mut self, t: f32, b: f32) -> f32 {
        while let Some(&(at, f)) = self.view.exposure_jumps.get(self.jumps_done) {
            if at > t {
                break;
            }
            self.ae_gain = (self.ae_gain * f).clamp(0.4, 2.5);
            self.jumps_done += 1;
        }
        let settled = *self.ae_settled.get_or_insert(b);
        let seen = b * self.ae_gain;
        if (seen / settled - 1.0).abs() > 0.25 {
            let since = *self.ae_off_since.get_or_insert(t);
            if t - since >= 1.0 {
                // Compensates most of the change in one step.
                self.ae_gain = (self.ae_gain * (settled / seen).powf(0.8)).clamp(0.4, 2.5);
                self.ae_off_since = None;
            }
        } else {
            self.ae_off_since = None;
        }
        self.ae_gain
    }

    /// Turns the composed frame `px` (under `light`) into bytes: infrared
    /// mapping if `infrared`, auto-exposure, noise, rain speckle.
    #[allow(clippy::too_many_arguments)]
    pub fn finish(
        &mut self,
        t: f32,
        px: Vec<f32>,
        light: f32,
        infrared: bool,
        raining: bool,
        w: usize,
        horizon: usize,
    ) -> Vec<u8> {
        let h = px.len() / w.max(1);
        let gain = self.exposure(t, if infrared { 1.0 } else { light });
        let mut out = Vec::with_capacity(px.len());
        let noise = if infrared {
            self.view.noise.max(6.0)
        } else {
            self.view.noise
        } * 1.224_745;
        let (cx, cy) = (w as f32 / 2.0, h as f32 / 2.0);
        let r2 = cx * cx + cy * cy;
        for (i, v) in px.into_iter().enumerate() {
            let (x, y) = (i % w, i / w);
            let mut v = if infrared {
                // An IR illuminator: grey, low contrast, bright in the
                // middle; the sky stays dark.
                let dx = x as f32 - cx;
                let dy = y as f32 - cy;
                let vignette = 1.0 - 0.5 * (dx * dx + dy * dy) / r2;
                if y < horizon {
                    vignette * (22.0 + 0.1 * (v - 200.0))
                } else {
                    vignette * (80.0 + 0.3 * (v - 120.0))
                }
            } else {
                v
            } * gain;
            v += (self.noise.uniform() + self.noise.uniform()) * noise;
            if raining && self.noise.unit() < 0.004 {
                v += 45.0;
            }
            out.push(v.round().clamp(0.0, 255.0) as u8);
        }
        out
    }
}
