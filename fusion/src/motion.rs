//! The camera motion trigger: each frame is compared with a slowly adapting
//! background after removing light changes: first the global gain (the sun,
//! the time of day), then large-scale shading (a cloud shadow) by
//! subtracting a heavily blurred copy of the relative difference. What remains above
//! a threshold, in pixels with moving neighbours, is motion.

use crate::activation::{Activation, Features, MotionFeatures};
use crate::config::MotionConfig;
use crate::{GrayFrame, Modality};

struct Open {
    start_ms: i64,
    last_ms: i64,
    frames: u32,
    best: MotionFeatures,
}

/// The motion trigger for one camera.
pub struct MotionTrigger {
    cfg: MotionConfig,
    size: (u32, u32),
    background: Vec<f32>,
    last_t: Option<i64>,
    open: Option<Open>,
    out: Vec<Activation>,
    diff: Vec<f32>,
    integral: Vec<f64>,
    mask: Vec<bool>,
    processed_ms: i64,
}

impl MotionTrigger {
    /// A trigger with no background yet.
    pub fn new(cfg: &MotionConfig) -> Self {
        MotionTrigger {
            cfg: cfg.clone(),
            size: (0, 0),
            background: Vec::new(),
            last_t: None,
            open: None,
            out: Vec::new(),
            diff: Vec::new(),
            integral: Vec::new(),
            mask: Vec::new(),
            processed_ms: i64::MIN,
        }
    }

    /// Feeds a frame. Returns false (and ignores it) when it is malformed.
    pub fn push(&mut self, f: &GrayFrame) -> bool {
        let (w, h) = (f.width as usize, f.height as usize);
        if w == 0 || h == 0 || f.luma.len() != w * h || self.last_t.is_some_and(|t| f.t_ms < t) {
            return false;
        }
        if self.size != (f.width, f.height) {
            // New camera or new size: start the background again.
            self.size = (f.width, f.height);
            self.background = f.luma.iter().map(|&v| f32::from(v)).collect();
            self.diff = vec![0.0; w * h];
            self.mask = vec![false; w * h];
            self.integral = vec![0.0; (w + 1) * (h + 1)];
            self.last_t = Some(f.t_ms);
            self.processed_ms = f.t_ms;
            return true;
        }
        let dt = (f.t_ms - self.last_t.unwrap_or(f.t_ms)).max(0) as f32;
        self.last_t = Some(f.t_ms);
        self.processed_ms = f.t_ms;

        // 1. Global gain.
        let mean_f = f.luma.iter().map(|&v| f32::from(v)).sum::<f32>() / (w * h) as f32;
        let mean_b = self.background.iter().sum::<f32>() / (w * h) as f32;
        let gain = if mean_f > 1.0 {
            (mean_b / mean_f).clamp(0.25, 4.0)
        } else {
            1.0
        };
        // Relative change, in grey levels of an average pixel: shading multiplies
        // the scene, so in this form a shadow is smooth even on textured ground.
        for i in 0..w * h {
            let bg = self.background[i].max(8.0);
            self.diff[i] = (f32::from(f.luma[i]) * gain / bg - 1.0) * mean_b;
        }
        // 2. Large-scale shading: subtract a box blur (radius ~ a fifth of the frame).
        let r = (w.max(h) / 5).max(2);
        self.blur_subtract(w, h, r);
        // 3. Threshold, keeping pixels with at least two moving 4-neighbours.
        let thr = self.cfg.pixel_threshold;
        for i in 0..w * h {
            self.mask[i] = self.diff[i].abs() > thr;
        }
        let (mut count, mut sx, mut sy, mut top, mut bottom) = (0usize, 0f64, 0f64, h, 0usize);
        for y in 0..h {
            for x in 0..w {
                let i = y * w + x;
                if !self.mask[i] {
                    continue;
                }
                let n = [
                    x > 0 && self.mask[i - 1],
                    x + 1 < w && self.mask[i + 1],
                    y > 0 && self.mask[i - w],
                    y + 1 < h && self.mask[i + w],
                ]
                .iter()
                .filter(|b| **b)
                .count();
                if n >= 2 {
                    count += 1;
                    sx += x as f64;
                    sy += y as f64;
                    top = top.min(y);
                    bottom = bottom.max(y);
                }
            }
        }
        let area = count as f32 / (w * h) as f32;
        // 4. Background update: moving pixels adapt ten times slower.
        let alpha = 1.0 - (-dt / self.cfg.background_tau_ms.max(1) as f32).exp();
        for i in 0..w * h {
            let a = if self.mask[i] { alpha * 0.1 } else { alpha };
            let v = f32::from(f.luma[i]) * gain;
            self.background[i] += (v - self.background[i]) * a;
        }
        let moving = area >= self.cfg.on_area;
        let feat = MotionFeatures {
            max_area: area,
            centroid: if count > 0 {
                (
                    (sx / count as f64 / w as f64) as f32,
                    (sy / count as f64 / h as f64) as f32,
                )
            } else {
                (0.5, 0.5)
            },
            max_height: if count > 0 {
                (bottom + 1 - top) as f32 / h as f32
            } else {
                0.0
            },
        };
        match self.open.as_mut() {
            None if moving => {
                self.open = Some(Open {
                    start_ms: f.t_ms,
                    last_ms: f.t_ms,
                    frames: 1,
                    best: feat,
                });
            }
            None => {}
            Some(o) if moving => {
                o.last_ms = f.t_ms;
                o.frames += 1;
                if feat.max_area > o.best.max_area {
                    o.best.max_area = feat.max_area;
                    o.best.centroid = feat.centroid;
                }
                o.best.max_height = o.best.max_height.max(feat.max_height);
            }
            Some(o) => {
                if o.frames < self.cfg.min_frames {
                    self.open = None;
                } else if f.t_ms - o.last_ms > i64::from(self.cfg.hangover_ms) {
                    self.close();
                }
            }
        }
        true
    }

    fn blur_subtract(&mut self, w: usize, h: usize, r: usize) {
        let s = w + 1;
        for y in 0..h {
            let mut row = 0f64;
            for x in 0..w {
                row += f64::from(self.diff[y * w + x]);
                self.integral[(y + 1) * s + x + 1] = self.integral[y * s + x + 1] + row;
            }
        }
        for y in 0..h {
            let (y0, y1) = (y.saturating_sub(r), (y + r + 1).min(h));
            for x in 0..w {
                let (x0, x1) = (x.saturating_sub(r), (x + r + 1).min(w));
                let sum = self.integral[y1 * s + x1]
                    - self.integral[y0 * s + x1]
                    - self.integral[y1 * s + x0]
                    + self.integral[y0 * s + x0];
                let mean = sum / ((y1 - y0) * (x1 - x0)) as f64;
                self.diff[y * w + x] -= mean as f32;
            }
        }
    }

    fn close(&mut self) {
        let Some(o) = self.open.take() else { return };
        if o.frames < self.cfg.min_frames {
            return;
        }
        let score = (o.best.max_area / 0.05).sqrt().clamp(0.05, 1.0);
        self.out.push(Activation {
            modality: Modality::Camera,
            start_ms: o.start_ms,
            end_ms: o.last_ms,
            score,
            features: Features::Motion(o.best),
        });
    }

    /// Closes whatever is open (end of input, or the camera going away).
    pub fn finish(&mut self) {
        self.close();
    }

    /// Activations completed so far.
    pub fn take(&mut self) -> Vec<Activation> {
        std::mem::take(&mut self.out)
    }

    /// No activation can start or extend before this time.
    pub fn safe_ms(&self) -> i64 {
        match &self.open {
            Some(o) => o.start_ms,
            None => self.processed_ms,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn textured(w: u32, h: u32, t: u32) -> Vec<u8> {
        (0..w * h)
            .map(|i| (100 + (i * 37 + t) % 23) as u8)
            .collect()
    }

    fn frame(t_ms: i64, luma: Vec<u8>) -> GrayFrame {
        GrayFrame {
            t_ms,
            width: 80,
            height: 60,
            luma,
        }
    }

    fn run(frames: impl Iterator<Item = GrayFrame>) -> Vec<Activation> {
        let mut m = MotionTrigger::new(&MotionConfig::default());
        for f in frames {
            assert!(m.push(&f));
        }
        m.finish();
        m.take()
    }

    #[test]
    fn a_moving_blob_triggers_and_light_changes_do_not() {
        let base = textured(80, 60, 0);
        // Light: brightness falls by 30% over 10 s then a cloud shadow darkens the left half.
        let light = (0..60).map(|i| {
            let g = 1.0 - 0.3 * (i as f32 / 20.0).min(1.0);
            let px = base
                .iter()
                .enumerate()
                .map(|(j, &v)| {
                    let shade = if i > 30 && (j % 80) < 40 { 0.85 } else { 1.0 };
                    (f32::from(v) * g * shade) as u8
                })
                .collect();
            frame(i * 500, px)
        });
        assert!(run(light).is_empty());
        // A dark 6x4 animal crossing from x=5 to x=70 over 8 s.
        let blob = (0..40).map(|i| {
            let mut px = base.clone();
            if (10..26).contains(&i) {
                let x0 = 5 + (i - 10) * 4;
                for y in 30..34 {
                    for x in x0..x0 + 6 {
                        px[y * 80 + x] = 30;
                    }
                }
            }
            frame(i as i64 * 500, px)
        });
        let acts = run(blob);
        assert_eq!(acts.len(), 1, "{acts:?}");
        let Features::Motion(f) = acts[0].features else {
            panic!()
        };
        assert!(f.max_area > 0.003 && f.max_area < 0.05, "{f:?}");
        assert!(
            (acts[0].start_ms, acts[0].end_ms) >= (4_500, 12_000),
            "{:?}",
            acts[0]
        );
    }

    #[test]
    fn malformed_frames_are_refused() {
        let mut m = MotionTrigger::new(&MotionConfig::default());
        assert!(!m.push(&GrayFrame {
            t_ms: 0,
            width: 10,
            height: 10,
            luma: vec![0; 5]
        }));
        assert!(m.push(&GrayFrame {
            t_ms: 10,
            width: 2,
            height: 2,
            luma: vec![0; 4]
        }));
        assert!(!m.push(&GrayFrame {
            t_ms: 5,
            width: 2,
            height: 2,
            luma: vec![0; 4]
        }));
    }
}
