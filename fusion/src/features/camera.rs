//! Camera features of an event, from what the motion trigger follows as
//! crossing in each frame ([`FrameMotion`]): how much of the frame moves,
//! where (a 4x4 grid), the moving things' extent and path, and how much the
//! light changed. Swaying vegetation, exposure steps, noise and shading are
//! not motion to the trigger, so they add nothing here either.

use std::collections::VecDeque;

use ndarray::Array2;

use super::stats::{max, mean, std_dev};
use crate::motion::FrameMotion;

/// Motion grid cells per side.
const GRID: usize = 4;
/// Length of the camera feature vector.
pub const CAMERA_DIM: usize = 2 + 2 * GRID * GRID + 4 + 5 + 1 + 2 + 1;
/// A frame shows motion when this share of it moves.
const MOTION_FRAME_AREA: f32 = 0.002;
/// How much history is kept: the longest event and the minute or so the
/// detector waits after it (until no heat rise could start before it).
const HORIZON_MS: i64 = 420_000;
/// Frames this long before and after an event are included.
const MARGIN_MS: i64 = 1_000;

/// What one frame showed.
#[derive(Clone, Copy, Debug, PartialEq)]
struct MotionFrame {
    t_ms: i64,
    area: f32,
    grid: [f32; GRID * GRID],
    /// Box around every crossing thing (x0, y0, x1, y1), 0..1, if any.
    bbox: Option<[f32; 4]>,
    /// Area-weighted centroid of the crossing things, 0..1.
    centroid: Option<(f32, f32)>,
    /// |log| of the frame's mean brightness ratio to the previous frame.
    light_change: f32,
}

/// Recent frames' motion.
#[derive(Default)]
pub struct CameraHistory {
    /// The previous frame's mean level (none across a camera gap).
    prev_luma: Option<f32>,
    frames: VecDeque<MotionFrame>,
}

impl CameraHistory {
    /// Empty history.
    pub fn new() -> Self {
        CameraHistory::default()
    }

    /// Feeds what the motion trigger saw in a frame; out-of-order frames
    /// are ignored.
    pub fn push(&mut self, m: &FrameMotion) {
        if self.frames.back().is_some_and(|p| m.t_ms <= p.t_ms) {
            return;
        }
        let luma = m.mean_luma.max(1.0);
        if let Some(prev) = self.prev_luma {
            self.frames
                .push_back(summarise(m, (luma / prev).ln().abs()));
        }
        self.prev_luma = Some(luma);
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

    /// The camera was off: the light change across the gap is not measured.
    pub fn gap(&mut self) {
        self.prev_luma = None;
    }

    /// Features of `[start_ms, end_ms]` (with a margin), or `None` when
    /// fewer than two frames (after the first) cover it.
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

/// One frame's crossing things as area, grid, box and centroid. A thing's
/// pixels are spread over the grid cells its box covers, in proportion to
/// the overlap.
fn summarise(m: &FrameMotion, light_change: f32) -> MotionFrame {
    let mut grid = [0f32; GRID * GRID];
    let mut area = 0f32;
    let mut bbox: Option<[f32; 4]> = None;
    let (mut sx, mut sy) = (0f32, 0f32);
    let g = GRID as f32;
    for t in &m.things {
        let [x0, y0, x1, y1] = t.bbox;
        area += t.area;
        sx += t.centroid.0 * t.area;
        sy += t.centroid.1 * t.area;
        bbox = Some(match bbox {
            None => t.bbox,
            Some(b) => [b[0].min(x0), b[1].min(y0), b[2].max(x1), b[3].max(y1)],
        });
        let box_area = ((x1 - x0) * (y1 - y0)).max(f32::EPSILON);
        for (c, cell) in grid.iter_mut().enumerate() {
            let (cx0, cy0) = ((c % GRID) as f32 / g, (c / GRID) as f32 / g);
            let ox = ((x1.min(cx0 + 1.0 / g)) - x0.max(cx0)).max(0.0);
            let oy = ((y1.min(cy0 + 1.0 / g)) - y0.max(cy0)).max(0.0);
            // Share of the cell: the thing's area times the share of its box
            // in the cell, over the cell's share of the frame.
            *cell += t.area * ox * oy / box_area * g * g;
        }
    }
    let centroid = (area > 0.0).then(|| (sx / area, sy / area));
    MotionFrame {
        t_ms: m.t_ms,
        area,
        grid: grid.map(|v| v.min(1.0)),
        bbox,
        centroid,
        light_change,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::GrayFrame;
    use crate::config::MotionConfig;
    use crate::motion::MotionTrigger;

    /// A textured 80x60 view at a gain, with a 6x8 bright blob at (x, y).
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
            exposure: None,
        }
    }

    /// The motion trigger and the camera history, fed as the node feeds them.
    struct Camera {
        trigger: MotionTrigger,
        history: CameraHistory,
    }

    impl Camera {
        fn new() -> Camera {
            Camera {
                trigger: MotionTrigger::new(&MotionConfig::default()),
                history: CameraHistory::new(),
            }
        }

        fn push(&mut self, f: &GrayFrame) {
            self.trigger.push(f);
            if let Some(m) = self.trigger.frame_motion() {
                self.history.push(m);
            }
        }

        fn off(&mut self) {
            self.trigger.restart();
            self.history.gap();
        }
    }

    #[test]
    fn a_crossing_blob_moves_through_the_grid_and_light_does_not() {
        let mut c = Camera::new();
        for i in 0..20i64 {
            let blob = (5..15).contains(&i).then(|| (5 + (i as usize - 5) * 7, 40));
            c.push(&frame(i * 500, 1.0, blob));
        }
        let f = c.history.features(2_500, 7_000).unwrap_or_default();
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
        assert!(f[2 + 32 + 4 + 4] > 0.02, "{f:?}");
        // A light change alone (20 % brighter) moves nothing.
        let mut l = Camera::new();
        for i in 0..10i64 {
            l.push(&frame(i * 500, 1.0 + 0.02 * i as f32, None));
        }
        let g = l.history.features(0, 5_000).unwrap_or_default();
        assert_eq!(g.len(), CAMERA_DIM);
        assert_eq!(g[0], 0.0, "light change seen as motion: {g:?}");
        assert!(g[CAMERA_DIM - 3] > 0.0, "light change not measured");
    }

    #[test]
    fn something_that_appears_and_stays_is_not_motion() {
        // A thing parked in view moves nothing once it is there: it never
        // travels. (Frame differences would count its arrival.)
        let mut c = Camera::new();
        for i in 0..20i64 {
            c.push(&frame(i * 500, 1.0, (i >= 8).then_some((30, 20))));
        }
        let f = c.history.features(0, 10_000).unwrap_or_default();
        assert_eq!(f.len(), CAMERA_DIM);
        assert_eq!(f[0], 0.0, "{f:?}");
    }

    #[test]
    fn no_light_change_is_taken_across_the_time_the_camera_was_off() {
        let mut c = Camera::new();
        c.push(&frame(0, 1.0, None));
        c.push(&frame(500, 1.0, None));
        c.off();
        // Back 30 s later, and darker.
        for i in 0..4 {
            c.push(&frame(30_000 + i * 500, 0.6, None));
        }
        let f = c.history.features(30_000, 31_500).unwrap_or_default();
        assert_eq!(f.len(), CAMERA_DIM);
        assert_eq!(f[CAMERA_DIM - 2], 0.0, "{f:?}");
        // Without the gap, the first frame back would be a change.
        let mut d = Camera::new();
        d.push(&frame(0, 1.0, None));
        d.push(&frame(500, 1.0, None));
        for i in 0..4 {
            d.push(&frame(30_000 + i * 500, 0.6, None));
        }
        let g = d.history.features(30_000, 31_500).unwrap_or_default();
        assert!(g[CAMERA_DIM - 2] > 0.0, "{g:?}");
    }

    #[test]
    fn out_of_order_frames_are_ignored() {
        let mut c = CameraHistory::new();
        let at = |t_ms| FrameMotion {
            t_ms,
            mean_luma: 100.0,
            things: Vec::new(),
        };
        c.push(&at(0));
        c.push(&at(1000));
        c.push(&at(500));
        assert_eq!(c.features(0, 2000), None);
    }
}
