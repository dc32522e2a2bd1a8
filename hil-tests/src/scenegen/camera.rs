//! Camera frames: a textured static view (ground, vegetation, sky) under
//! daylight that changes with the sun, sensor noise, and whatever the plan
//! puts in front of it: animals, people, cloud shadows, swaying vegetation,
//! rain; and, under field conditions, what [`super::view`] adds.

use rand_chacha::ChaCha8Rng;

use super::dsp::{gauss, stream, uniform};
use super::plan::{Happening, Kind};
use super::view::FieldView;

/// A moving ellipse: an animal or a person.
struct Walker {
    start_s: f32,
    end_s: f32,
    x0: f32,
    x1: f32,
    y: f32,
    half_w: f32,
    half_h: f32,
    shade: f32,
    bob: f32,
}

/// The view and everything that will cross it.
pub struct Camera {
    w: usize,
    h: usize,
    texture: Vec<f32>,
    walkers: Vec<Walker>,
    shadows: Vec<(f32, f32, f32)>,
    gusts: Vec<(f32, f32)>,
    rains: Vec<(f32, f32)>,
    start_hour: f32,
    rng: ChaCha8Rng,
    /// First row of the ground.
    horizon: usize,
    field: Option<FieldView>,
}

fn value_noise(w: usize, h: usize, cell: usize, rng: &mut ChaCha8Rng) -> Vec<f32> {
    let gw = w / cell + 2;
    let gh = h / cell + 2;
    let grid: Vec<f32> = (0..gw * gh).map(|_| uniform(rng, -1.0, 1.0)).collect();
    let mut out = vec![0.0; w * h];
    for y in 0..h {
        for x in 0..w {
            let (fx, fy) = (x as f32 / cell as f32, y as f32 / cell as f32);
            let (ix, iy) = (fx as usize, fy as usize);
            let (tx, ty) = (fx - ix as f32, fy - iy as f32);
            let g = |a: usize, b: usize| grid[(iy + b) * gw + ix + a];
            let top = g(0, 0) * (1.0 - tx) + g(1, 0) * tx;
            let bottom = g(0, 1) * (1.0 - tx) + g(1, 1) * tx;
            out[y * w + x] = top * (1.0 - ty) + bottom * ty;
        }
    }
    out
}

impl Camera {
    /// The view for a plan, `w`×`h` pixels, scene starting at `start_hour` UTC.
    pub fn new(w: usize, h: usize, seed: u64, plan: &[Happening], start_hour: f32) -> Self {
        let mut rng = stream(seed, "camera");
        let coarse = value_noise(w, h, (w / 6).max(2), &mut rng);
        let fine = value_noise(w, h, 2, &mut rng);
        let horizon = h as f32 * uniform(&mut rng, 0.25, 0.4);
        let texture = (0..w * h)
            .map(|i| {
                let y = (i / w) as f32;
                let base = if y < horizon {
                    200.0
                } else {
                    95.0 + 20.0 * (y - horizon) / h as f32
                };
                let detail = if y < horizon {
                    10.0 * coarse[i]
                } else {
                    25.0 * coarse[i] + 18.0 * fine[i]
                };
                base + detail
            })
            .collect();
        let (wf, hf) = (w as f32, h as f32);
        let mut cam = Camera {
            w,
            h,
            texture,
            walkers: Vec::new(),
            shadows: Vec::new(),
            gusts: Vec::new(),
            rains: Vec::new(),
            start_hour,
            rng,
            horizon: horizon.ceil().max(0.0) as usize,
            field: None,
        };
        for p in plan {
            let mut r = stream(p.seed, "camera-object");
            let left_to_right = uniform(&mut r, 0.0, 1.0) < 0.5;
            match p.kind {
                Kind::Wildlife { crossing: true, .. } => {
                    let half_w = wf * uniform(&mut r, 0.03, 0.09);
                    let half_h = half_w * uniform(&mut r, 0.5, 0.8) * hf / wf * (wf / hf);
                    let (x0, x1) = if left_to_right {
                        (-half_w, wf + half_w)
                    } else {
                        (wf + half_w, -half_w)
                    };
                    let y = hf * uniform(&mut r, 0.5, 0.85);
                    let shade = if uniform(&mut r, 0.0, 1.0) < 0.7 {
                        uniform(&mut r, 0.3, 0.55)
                    } else {
                        uniform(&mut r, 1.4, 1.7)
                    };
                    cam.walkers.push(Walker {
                        start_s: p.start_s,
                        end_s: p.end_s,
                        x0,
                        x1,
                        y,
                        half_w,
                        half_h,
                        shade,
                        bob: 0.5,
                    });
                }
                Kind::HumanActivity { walking: true, .. } => {
                    let half_h = hf * uniform(&mut r, 0.13, 0.23);
                    let half_w = half_h * uniform(&mut r, 0.25, 0.35);
                    let (x0, x1) = if left_to_right {
                        (-half_w, wf + half_w)
                    } else {
                        (wf + half_w, -half_w)
                    };
                    let y = hf * uniform(&mut r, 0.55, 0.75);
                    let shade = uniform(&mut r, 0.35, 0.6);
                    cam.walkers.push(Walker {
                        start_s: p.start_s,
                        end_s: p.end_s,
                        x0,
                        x1,
                        y,
                        half_w,
                        half_h,
                        shade,
                        bob: 1.0,
                    });
                }
                Kind::CloudShadow => {
                    cam.shadows
                        .push((p.start_s, p.end_s, uniform(&mut r, 0.2, 0.3)))
                }
                Kind::Gust => cam.gusts.push((p.start_s, p.end_s)),
                Kind::Rain | Kind::Rainfall { .. } => cam.rains.push((p.start_s, p.end_s)),
                _ => {}
            }
        }
        cam
    }

    /// Puts the view under field conditions, built by `make` from the
    /// frame size and the first row of the ground.
    pub fn set_conditions(&mut self, make: impl FnOnce(usize, usize, usize) -> FieldView) {
        self.field = Some(make(self.w, self.h, self.horizon));
    }

    /// Daylight gain at `t` seconds: the sun's elevation, never fully dark
    /// (the camera's exposure adapts).
    fn daylight(&self, t: f32) -> f32 {
        let hour = (self.start_hour + t / 3600.0) % 24.0;
        let sun = ((hour - 6.0) / 14.0 * std::f32::consts::PI).sin().max(0.0);
        0.45 + 0.55 * sun
    }

    /// The frame at `t` seconds (luma, row-major).
    pub fn frame(&mut self, t: f32) -> Vec<u8> {
        if let Some(mut field) = self.field.take() {
            let out = self.field_frame(&mut field, t);
            self.field = Some(field);
            return out;
        }
        let px = self.compose(t, self.daylight(t), None);
        let raining = self.raining(t);
        let mut out = Vec::with_capacity(self.w * self.h);
        for v in px {
            let mut v = v + gauss(&mut self.rng) * 1.5;
            if raining && uniform(&mut self.rng, 0.0, 1.0) < 0.004 {
                v += 45.0;
            }
            out.push(v.round().clamp(0.0, 255.0) as u8);
        }
        out
    }

    fn raining(&self, t: f32) -> bool {
        self.rains.iter().any(|&(a, b)| t > a && t < b)
    }

    fn field_frame(&mut self, field: &mut FieldView, t: f32) -> Vec<u8> {
        let hour = (self.start_hour + t / 3600.0) % 24.0;
        let infrared = field.infrared(hour);
        // The infrared illuminator does not change with the sun.
        let light = if infrared {
            1.0
        } else {
            field.light(t, self.daylight(t))
        };
        let px = self.compose(t, light, Some(field));
        field.finish(
            t,
            px,
            light,
            infrared,
            self.raining(t),
            self.w,
            self.horizon,
        )
    }

    /// The view at `t` under `light`, with everything in front of it, before
    /// the sensor's noise.
    fn compose(&self, t: f32, light: f32, field: Option<&FieldView>) -> Vec<f32> {
        let (w, h) = (self.w, self.h);
        let (wf, hf) = (w as f32, h as f32);
        let mut px: Vec<f32> = self.texture.iter().map(|v| v * light).collect();
        if let Some(f) = field {
            f.sway(t, &mut px, &self.texture, w, light);
        }
        // Vegetation sways in gusts: a patch near the bottom shifts sideways.
        for &(a, b) in &self.gusts {
            if t > a && t < b {
                let shift = (2.0 * std::f32::consts::PI * 1.3 * t).sin()
                    * 1.5
                    * ((t - a) / (b - a) * std::f32::consts::PI).sin();
                let (x0, x1, y0, y1) = (w / 10, w / 10 + w / 6, h * 3 / 4, h * 3 / 4 + h / 8);
                for y in y0..y1.min(h) {
                    for x in x0..x1.min(w) {
                        let sx = ((x as f32 + shift).round() as usize).min(w - 1);
                        px[y * w + x] = self.texture[y * w + sx] * light;
                    }
                }
            }
        }
        for wk in &self.walkers {
            if t < wk.start_s || t > wk.end_s {
                continue;
            }
            let x = (t - wk.start_s) / (wk.end_s - wk.start_s);
            let cx = wk.x0 + (wk.x1 - wk.x0) * x;
            let cy = wk.y + wk.bob * (t * 2.0 * std::f32::consts::PI * 1.8).sin();
            let (ya, yb) = (
                (cy - wk.half_h).floor().max(0.0) as usize,
                (cy + wk.half_h).ceil().min(hf - 1.0) as usize,
            );
            let (xa, xb) = (
                (cx - wk.half_w).floor().max(0.0) as usize,
                (cx + wk.half_w).ceil().min(wf - 1.0).max(0.0) as usize,
            );
            for yy in ya..=yb {
                for xx in xa..=xb {
                    let dx = (xx as f32 - cx) / wk.half_w.max(0.5);
                    let dy = (yy as f32 - cy) / wk.half_h.max(0.5);
                    if dx * dx + dy * dy <= 1.0 {
                        let texture = 1.0 + 0.15 * ((xx * 7 + yy * 3) % 5) as f32 / 5.0;
                        px[yy * w + xx] = 110.0 * wk.shade * texture * light;
                    }
                }
            }
        }
        for &(a, b, depth) in &self.shadows {
            if t < a || t > b {
                continue;
            }
            // A soft-edged shadow, larger than the frame, sliding across it.
            let x = (t - a) / (b - a);
            let cx = -0.8 * wf + 2.6 * wf * x;
            let radius = 0.9 * wf;
            for y in 0..h {
                for xx in 0..w {
                    let d =
                        ((xx as f32 - cx).powi(2) + ((y as f32 - hf / 2.0) * 1.2).powi(2)).sqrt();
                    let edge = ((radius - d) / (0.35 * wf)).clamp(0.0, 1.0);
                    let s = edge * edge * (3.0 - 2.0 * edge);
                    px[y * w + xx] *= 1.0 - depth * s;
                }
            }
        }
        px
    }
}
