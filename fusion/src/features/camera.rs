//! Camera features of an event, from frame differences on small grayscale
//! images: how much of the frame moves, where (a 4x4 grid), the moving
//! region's extent and path, and how much the light changed.

use std::collections::VecDeque;

use ndarray::Array2;

use super::stats::{max, mean, std_dev};
use crate::GrayFrame;

/// Motion grid cells per side.
const GRID: usize = 4;
/// Length of the camera feature vector.
pub const CAMERA_DIM: usize = 2 + 2 * GRID * GRID + 4 + 5 + 1 + 2 + 1;
/// A pixel moves when its gain-compensated difference exceeds this (0..255).
const PIXEL_THRESHOLD: f32 = 14.0;
/// A frame shows motion when this share of it moves.
const MOTION_FRAME_AREA: f32 = 0.002;
/// How much history is kept.
const HORIZON_MS: i64 = 300_000;
/// Frames this long before and after an event are included.
const MARGIN_MS: i64 = 1_000;

/// What one frame difference showed.
#[derive(Clone, Copy, Debug, PartialEq)]
struct MotionFrame {
    t_ms: i64,
    area: f32,
    grid: [f32; GRID * GRID],
    /// Bounding box of moving pixels (x0, y0, x1, y1), 0..1, if any moved.
    bbox: Option<[f32; 4]>,
    /// Centroid of moving pixels, 0..1.
    centroid: Option<(f32, f32)>,
    /// |log| of the frame's mean brightness ratio to the previous frame.
    light_change: f32,
}

/// Recent frame differences.
#[derive(Default)]
pub struct CameraHistory {
    prev: Option<GrayFrame>,
    frames: VecDeque<MotionFrame>,
}

impl CameraHistory {
    /// Empty history.
    pub fn new() -> Self {
        CameraHistory::default()
    }

    /// Feeds a frame; malformed or out-of-order frames are ignored (the
    /// triggers count them).
    pub fn push(&mut self, f: &GrayFrame) {
        let (w, h) = (f.width as usize, f.height as usize);
        if w < GRID || h < GRID || f.luma.len() != w * h {
            return;
        }
        if let Some(p) = &self.prev {
            if f.t_ms <= p.t_ms {
                return;
            }
            if p.width == f.width && p.height == f.height {
                let m = diff(p, f);
                self.frames.push_back(m);
            }
        }
        self.prev = Some(f.clone());
        if let Some(last) = self.frames.back().map(|m| m.t_ms) {
            while self
                .frames
                .front()
                .is_some_and(|m| m.t_ms < last - HORIZON_MS)
            {
                self.frames.pop_front();
            }
        }
    }

    /// The camera was off: the next frame is not compared with the last
    /// one before (what changed meanwhile is not motion).
    pub fn gap(&mut self) {
        self.prev = None;
    }

    /// Features of `[start_ms, end_ms]` (with a margin), or `None` when
    /// fewer than two frame differences cover it.
    pub fn features(&self, start_ms: i64, end_ms: i64) -> Option<Vec<f32>> {
        let from = start_ms - MARGIN_MS;
        let to = end_ms + MARGIN_MS;
        let first = self.frames.partition_point(|m| m.t_ms < from);
        let ev: Vec<&MotionFrame> = self
            .frames
            .range(first..)
            .take_while(|m| m.t_ms <= to)
            .collect();
        if ev.len() < 2 {
            return None;
        }
        let area: Vec<f32> = ev.iter().map(|m| m.area).collect();
        let mut out = Vec::with_capacity(CAMERA_DIM);
        out.push(max(&area).sqrt());
        out.push(mean(&area).sqrt());
        // Moving share of each grid cell, frames x cells.
        let grid = Array2::from_shape_fn((ev.len(), GRID * GRID), |(i, c)| ev[i].grid[c]);
        let cells: Vec<Vec<f32>> = grid.columns().into_iter().map(|c| c.to_vec()).collect();
        out.extend(cells.iter().map(|v| max(v).sqrt()));
        out.extend(cells.iter().map(|v| mean(v).sqrt()));
        let moving: Vec<&&MotionFrame> =
            ev.iter().filter(|m| m.area >= MOTION_FRAME_AREA).collect();
        let widths: Vec<f32> = moving
            .iter()
            .filter_map(|m| m.bbox.map(|b| b[2] - b[0]))
            .collect();
        let heights: Vec<f32> = moving
            .iter()
            .filter_map(|m| m.bbox.map(|b| b[3] - b[1]))
            .collect();
        out.extend([max(&widths), max(&heights), mean(&widths), mean(&heights)]);
        let cx: Vec<f32> = moving
            .iter()
            .filter_map(|m| m.centroid.map(|c| c.0))
            .collect();
        let cy: Vec<f32> = moving
            .iter()
            .filter_map(|m| m.centroid.map(|c| c.1))
            .collect();
        let path: f32 = cx
            .windows(2)
            .zip(cy.windows(2))
            .map(|(x, y)| ((x[1] - x[0]).powi(2) + (y[1] - y[0]).powi(2)).sqrt())
            .sum();
        out.extend([
            mean(&cx),
            mean(&cy),
            std_dev(&cx),
            std_dev(&cy),
            path / ev.len() as f32,
        ]);
        out.push(moving.len() as f32 / ev.len() as f32);
        let light: Vec<f32> = ev.iter().map(|m| m.light_change).collect();
        out.extend([mean(&light) * 10.0, max(&light) * 10.0]);
        let aspect: Vec<f32> = widths
            .iter()
            .zip(&heights)
            .map(|(w, h)| (h / w.max(0.01)).min(10.0))
            .collect();
        out.push(mean(&aspect));
        debug_assert_eq!(out.len(), CAMERA_DIM);
        Some(
            out.into_iter()
                .map(|v| if v.is_finite() { v } else { 0.0 })
                .collect(),
        )
    }
}

fn mean_luma(f: &GrayFrame) -> f32 {
    f.luma.iter().map(|&v| u64::from(v)).sum::<u64>() as f32 / f.luma.len().max(1) as f32
}

fn diff(prev: &GrayFrame, cur: &GrayFrame) -> MotionFrame {
    let (w, h) = (cur.width as usize, cur.height as usize);
    let (mp, mc) = (mean_luma(prev).max(1.0), mean_luma(cur).max(1.0));
    let gain = mp / mc;
    let mut grid = [0f32; GRID * GRID];
    let mut count = 0usize;
    let (mut x0, mut y0, mut x1, mut y1) = (w, h, 0usize, 0usize);
    let (mut sx, mut sy) = (0f64, 0f64);
    for y in 0..h {
        for x in 0..w {
            let i = y * w + x;
            let d = (f32::from(cur.luma[i]) * gain - f32::from(prev.luma[i])).abs();
            if d > PIXEL_THRESHOLD {
                count += 1;
                grid[(y * GRID / h) * GRID + x * GRID / w] += 1.0;
                x0 = x0.min(x);
                y0 = y0.min(y);
                x1 = x1.max(x);
                y1 = y1.max(y);
                sx += x as f64;
                sy += y as f64;
            }
        }
    }
    let cell = (w * h) as f32 / (GRID * GRID) as f32;
    for g in &mut grid {
        *g /= cell;
    }
    let (bbox, centroid) = if count > 0 {
        (
            Some([
                x0 as f32 / w as f32,
                y0 as f32 / h as f32,
                (x1 + 1) as f32 / w as f32,
                (y1 + 1) as f32 / h as f32,
            ]),
            Some((
                (sx / count as f64) as f32 / w as f32,
                (sy / count as f64) as f32 / h as f32,
            )),
        )
    } else {
        (None, None)
    };
    MotionFrame {
        t_ms: cur.t_ms,
        area: count as f32 / (w * h) as f32,
        grid,
        bbox,
        centroid,
        light_change: (mc / mp).ln().abs(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(t_ms: i64, gain: f32, blob: Option<(usize, usize)>) -> GrayFrame {
        let (w, h) = (80usize, 60usize);
        let mut luma: Vec<u8> = (0..w * h)
            .map(|i| ((60 + (i * 7919) % 80) as f32 * gain).min(255.0) as u8)
            .collect();
        if let Some((bx, by)) = blob {
            for y in by..(by + 8).min(h) {
                for x in bx..(bx + 6).min(w) {
                    luma[y * w + x] = 240;
                }
            }
        }
        GrayFrame {
            t_ms,
            width: w as u32,
            height: h as u32,
            luma,
        }
    }

    #[test]
    fn a_crossing_blob_moves_through_the_grid_and_light_does_not() {
        let mut c = CameraHistory::new();
        for i in 0..20i64 {
            let blob = (5..15).contains(&i).then(|| (5 + (i as usize - 5) * 7, 40));
            c.push(&frame(i * 500, 1.0, blob));
        }
        let f = c.features(2_500, 7_000).unwrap_or_default();
        assert_eq!(f.len(), CAMERA_DIM);
        assert!(f[0] > 0.05, "max area {}", f[0]);
        // Bottom row cells (y 40..48 of 60) moved, the top row did not.
        let grid_max = &f[2..2 + 16];
        assert!(
            grid_max[12..16].iter().filter(|&&v| v > 0.0).count() >= 3,
            "{grid_max:?}"
        );
        assert!(grid_max[0..4].iter().all(|&v| v == 0.0), "{grid_max:?}");
        // Path length: the blob travelled.
        assert!(f[2 + 32 + 4 + 4] > 0.02);
        // A light change alone (20 % brighter) moves nothing.
        let mut l = CameraHistory::new();
        for i in 0..10i64 {
            l.push(&frame(i * 500, 1.0 + 0.02 * i as f32, None));
        }
        let g = l.features(0, 5_000).unwrap_or_default();
        assert!(g[0] < 0.05, "light change seen as motion: {}", g[0]);
        assert!(g[CAMERA_DIM - 3] > 0.0, "light change not measured");
    }

    #[test]
    fn no_difference_is_taken_across_the_time_the_camera_was_off() {
        let mut c = CameraHistory::new();
        c.push(&frame(0, 1.0, None));
        c.push(&frame(500, 1.0, None));
        c.gap();
        // Back 30 s later, with something parked in view meanwhile.
        for i in 0..4 {
            c.push(&frame(30_000 + i * 500, 1.0, Some((30, 20))));
        }
        let f = c.features(30_000, 31_500).unwrap_or_default();
        assert_eq!(f.len(), CAMERA_DIM);
        assert_eq!(f[0], 0.0, "the parked thing taken for motion: {f:?}");
        // Without the gap, the first frame back would be a difference.
        let mut d = CameraHistory::new();
        d.push(&frame(0, 1.0, None));
        d.push(&frame(500, 1.0, None));
        for i in 0..4 {
            d.push(&frame(30_000 + i * 500, 1.0, Some((30, 20))));
        }
        let g = d.features(30_000, 31_500).unwrap_or_default();
        assert!(g[0] > 0.0, "{g:?}");
    }

    #[test]
    fn bad_frames_are_ignored() {
        let mut c = CameraHistory::new();
        c.push(&GrayFrame {
            t_ms: 0,
            width: 80,
            height: 60,
            luma: vec![0; 10],
        });
        c.push(&frame(1000, 1.0, None));
        c.push(&frame(500, 1.0, None));
        assert_eq!(c.features(0, 2000), None);
    }
}
