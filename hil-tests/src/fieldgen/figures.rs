//! Figures crossing the camera's view: an animal (a body on four legs with
//! a head) or a person (head, torso, two swinging legs), drawn into the
//! frame's reflectance map as they walk from one side to the other.

use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// What crosses.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Figure {
    /// An animal; its body is this many times longer than high.
    Animal {
        /// Body length over body height.
        aspect: f32,
    },
    /// A person.
    Person,
}

/// One crossing of the view.
#[derive(Debug, Clone, PartialEq)]
pub struct Crossing {
    /// When the figure enters the frame, seconds.
    pub start: f64,
    /// When it has left, seconds.
    pub end: f64,
    /// What crosses.
    pub figure: Figure,
    /// Walking left to right.
    pub from_left: bool,
    /// Height of the feet, as a fraction of the frame height from the top.
    pub ground: f32,
    /// Figure height as a fraction of the frame height.
    pub size: f32,
    /// Reflectance in daylight (0 black .. 1 white).
    pub day_refl: f32,
    /// Reflectance under the IR illuminator.
    pub ir_refl: f32,
    /// Steps per second.
    pub gait_hz: f32,
}

/// An animal crossing during a call event at `t0` of `len` seconds.
pub fn plan_animal(rng: &mut ChaCha8Rng, t0: f64, len: f64, d: f64) -> Crossing {
    let start = (t0 + rng.random_range(0.0..=len * 0.5))
        .min(d - 1.0)
        .max(0.0);
    let dur = rng.random_range(2.0..10.0f64);
    Crossing {
        start,
        end: (start + dur).min(d),
        figure: Figure::Animal {
            aspect: rng.random_range(1.3..2.5),
        },
        from_left: rng.random_bool(0.5),
        ground: rng.random_range(0.6..0.95),
        size: rng.random_range(0.08..0.3),
        day_refl: if rng.random_bool(0.75) {
            rng.random_range(0.04..0.2)
        } else {
            rng.random_range(0.6..0.9)
        },
        ir_refl: rng.random_range(0.5..0.95),
        gait_hz: rng.random_range(1.5..4.0),
    }
}

/// A person crossing during a human event at `t0` of `len` seconds.
pub fn plan_person(rng: &mut ChaCha8Rng, t0: f64, len: f64, d: f64) -> Crossing {
    let start = (t0 + rng.random_range(0.0..=len * 0.5))
        .min(d - 1.0)
        .max(0.0);
    let dur = rng.random_range(4.0..15.0f64);
    Crossing {
        start,
        end: (start + dur).min(d),
        figure: Figure::Person,
        from_left: rng.random_bool(0.5),
        ground: rng.random_range(0.75..0.98),
        size: rng.random_range(0.35..0.9),
        day_refl: if rng.random_bool(0.6) {
            rng.random_range(0.05..0.25)
        } else {
            rng.random_range(0.55..0.85)
        },
        ir_refl: rng.random_range(0.55..0.95),
        gait_hz: rng.random_range(1.6..2.2),
    }
}

/// A reflectance map being drawn on.
pub struct Canvas<'a> {
    /// Pixels, row by row.
    pub px: &'a mut [f32],
    /// Width.
    pub w: usize,
    /// Height.
    pub h: usize,
}

impl Canvas<'_> {
    fn fill_rect(&mut self, x0: f32, y0: f32, x1: f32, y1: f32, v: f32) {
        let (xa, xb) = (
            x0.min(x1).max(0.0) as usize,
            x0.max(x1).ceil().max(0.0) as usize,
        );
        let (ya, yb) = (
            y0.min(y1).max(0.0) as usize,
            y0.max(y1).ceil().max(0.0) as usize,
        );
        for y in ya..yb.min(self.h) {
            for x in xa..xb.min(self.w) {
                self.px[y * self.w + x] = v;
            }
        }
    }

    fn fill_ellipse(&mut self, cx: f32, cy: f32, rx: f32, ry: f32, v: f32) {
        let rx = rx.max(0.5);
        let ry = ry.max(0.5);
        let ya = (cy - ry).max(0.0) as usize;
        let yb = ((cy + ry).ceil().max(0.0) as usize).min(self.h);
        let xa = (cx - rx).max(0.0) as usize;
        let xb = ((cx + rx).ceil().max(0.0) as usize).min(self.w);
        for y in ya..yb {
            let dy = (y as f32 + 0.5 - cy) / ry;
            for x in xa..xb {
                let dx = (x as f32 + 0.5 - cx) / rx;
                if dx * dx + dy * dy <= 1.0 {
                    self.px[y * self.w + x] = v;
                }
            }
        }
    }

    /// A thick line from (x0, y0) to (x1, y1).
    fn line(&mut self, x0: f32, y0: f32, x1: f32, y1: f32, thick: f32, v: f32) {
        let n = ((x1 - x0).abs().max((y1 - y0).abs()).ceil() as usize).max(1);
        for i in 0..=n {
            let f = i as f32 / n as f32;
            let x = x0 + (x1 - x0) * f;
            let y = y0 + (y1 - y0) * f;
            self.fill_rect(x - thick / 2.0, y, x + thick / 2.0, y + 1.0, v);
        }
    }
}

/// Draws `c` at time `t` (nothing outside its crossing); `ir` picks the
/// reflectance under the IR illuminator.
pub fn draw(c: &Crossing, t: f64, ir: bool, canvas: &mut Canvas<'_>) {
    if t < c.start || t >= c.end {
        return;
    }
    let (w, h) = (canvas.w as f32, canvas.h as f32);
    let u = ((t - c.start) / (c.end - c.start)) as f32;
    let fig_h = c.size * h;
    let v = if ir { c.ir_refl } else { c.day_refl };
    let gait = (2.0 * std::f32::consts::PI * c.gait_hz * (t - c.start) as f32).sin();
    let feet = c.ground * h;
    match c.figure {
        Figure::Person => {
            let half = fig_h * 0.2;
            let x = -half + (w + 2.0 * half) * u;
            let x = if c.from_left { x } else { w - x };
            let bob = gait.abs() * fig_h * 0.015;
            let top = feet - fig_h - bob;
            let hip = top + fig_h * 0.55;
            canvas.fill_ellipse(x, top + fig_h * 0.08, fig_h * 0.07, fig_h * 0.08, v);
            canvas.fill_rect(
                x - fig_h * 0.12,
                top + fig_h * 0.17,
                x + fig_h * 0.12,
                hip,
                v,
            );
            let stride = fig_h * 0.14 * gait;
            let leg = (fig_h * 0.07).max(1.0);
            canvas.line(x, hip, x + stride, feet, leg, v);
            canvas.line(x, hip, x - stride, feet, leg, v);
        }
        Figure::Animal { aspect } => {
            let body_h = fig_h * 0.5;
            let body_w = body_h * aspect;
            let span = body_w * 0.5 + body_h;
            let x = -span + (w + 2.0 * span) * u;
            let (x, dir) = if c.from_left { (x, 1.0) } else { (w - x, -1.0) };
            let legs = fig_h * 0.45;
            let cy = feet - legs - body_h * 0.5;
            canvas.fill_ellipse(x, cy, body_w * 0.5, body_h * 0.5, v);
            canvas.fill_ellipse(
                x + dir * body_w * 0.55,
                cy - body_h * 0.45,
                body_h * 0.35,
                body_h * 0.3,
                v,
            );
            let leg = (fig_h * 0.06).max(1.0);
            let swing = gait * legs * 0.3;
            for (k, at) in [-0.35f32, 0.35].into_iter().enumerate() {
                let lx = x + at * body_w;
                let s = if k == 0 { swing } else { -swing };
                canvas.line(lx, cy, lx + s, feet, leg, v);
                canvas.line(lx, cy, lx - s * 0.6, feet, leg, v);
            }
        }
    }
}
