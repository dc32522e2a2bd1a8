//! Large-scale shading of a difference image (a cloud's shadow over part of
//! the view, a lamp's pool of light), estimated robustly: the median of each
//! block of pixels, then the median of each block's neighbourhood, spread
//! back over the pixels bilinearly. A figure in view, however bright, moves
//! the medians of the few blocks it covers and not their neighbourhoods',
//! so it leaves no halo of false differences around itself (a local mean
//! would spread its difference over everything within the window).

/// A block's neighbourhood reaches this many blocks each way: 5x5 blocks,
/// of which a figure up to an eighth of the view wide spoils fewer than
/// half.
const REACH: usize = 2;

/// Removes large-scale shading from difference images of one size.
pub(crate) struct Shading {
    w: usize,
    h: usize,
    /// Block side, pixels.
    side: usize,
    /// Blocks across and down.
    bw: usize,
    bh: usize,
    /// Each block's median difference.
    block: Vec<f32>,
    /// Median over each block's neighbourhood.
    smooth: Vec<f32>,
    /// Per column and per row: the two block centres it lies between and
    /// the weight of the second.
    cols: Vec<(usize, usize, f32)>,
    rows: Vec<(usize, usize, f32)>,
    scratch: Vec<f32>,
}

impl Shading {
    /// For `w` x `h` images; a block's side is a tenth of the larger one
    /// (at least 2 pixels), its neighbourhood half the view's width.
    pub(crate) fn new(w: usize, h: usize) -> Shading {
        let side = (w.max(h) / 10).max(2);
        let (bw, bh) = (w.div_ceil(side), h.div_ceil(side));
        // Bilinear between block centres, flat beyond the outer ones.
        let between = |v: usize, n: usize| -> (usize, usize, f32) {
            let c = ((v as f32 + 0.5) / side as f32 - 0.5).clamp(0.0, n.saturating_sub(1) as f32);
            let i = c.floor() as usize;
            (i, (i + 1).min(n.saturating_sub(1)), c - i as f32)
        };
        Shading {
            w,
            h,
            side,
            bw,
            bh,
            block: vec![0.0; bw * bh],
            smooth: vec![0.0; bw * bh],
            cols: (0..w).map(|x| between(x, bw)).collect(),
            rows: (0..h).map(|y| between(y, bh)).collect(),
            scratch: Vec::with_capacity((side * side).max((2 * REACH + 1).pow(2))),
        }
    }

    /// Subtracts the shading from `diff` (row-major, the size given to
    /// [`Shading::new`]; any other length is left alone).
    pub(crate) fn remove(&mut self, diff: &mut [f32]) {
        let (w, h, side) = (self.w, self.h, self.side);
        if diff.len() != w * h || w == 0 || h == 0 {
            return;
        }
        for by in 0..self.bh {
            for bx in 0..self.bw {
                self.scratch.clear();
                for y in by * side..((by + 1) * side).min(h) {
                    self.scratch.extend_from_slice(
                        &diff[y * w + bx * side..y * w + ((bx + 1) * side).min(w)],
                    );
                }
                self.block[by * self.bw + bx] = median(&mut self.scratch);
            }
        }
        for by in 0..self.bh {
            for bx in 0..self.bw {
                self.scratch.clear();
                for y in window(by, self.bh) {
                    for x in window(bx, self.bw) {
                        self.scratch.push(self.block[y * self.bw + x]);
                    }
                }
                self.smooth[by * self.bw + bx] = median(&mut self.scratch);
            }
        }
        let (s, bw) = (&self.smooth, self.bw);
        for (y, &(y0, y1, fy)) in self.rows.iter().enumerate() {
            let row = &mut diff[y * w..(y + 1) * w];
            for (d, &(x0, x1, fx)) in row.iter_mut().zip(&self.cols) {
                let top = s[y0 * bw + x0] * (1.0 - fx) + s[y0 * bw + x1] * fx;
                let bottom = s[y1 * bw + x0] * (1.0 - fx) + s[y1 * bw + x1] * fx;
                *d -= top * (1.0 - fy) + bottom * fy;
            }
        }
    }
}

/// The blocks of block `i`'s neighbourhood along one axis of `n` blocks:
/// `2 * REACH + 1` of them, kept inside the image near its edges (a
/// neighbourhood cut short at an edge would be half spoilt by a figure
/// entering there).
fn window(i: usize, n: usize) -> std::ops::Range<usize> {
    let len = (2 * REACH + 1).min(n);
    let start = i.saturating_sub(REACH).min(n - len);
    start..start + len
}

/// Median of a non-empty slice (reorders it); the upper one of an even count.
fn median(v: &mut [f32]) -> f32 {
    if v.is_empty() {
        return 0.0;
    }
    let mid = v.len() / 2;
    *v.select_nth_unstable_by(mid, f32::total_cmp).1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(w: usize, h: usize, f: impl Fn(usize, usize) -> f32) -> Vec<f32> {
        (0..w * h).map(|i| f(i % w, i / w)).collect()
    }

    #[test]
    fn a_bright_figure_keeps_its_difference_and_leaves_no_halo() {
        let (w, h) = (80, 60);
        let figure = |x: usize, y: usize| (35..45).contains(&x) && (20..55).contains(&y);
        let mut d = image(w, h, |x, y| if figure(x, y) { 135.0 } else { 0.0 });
        Shading::new(w, h).remove(&mut d);
        for y in 0..h {
            for x in 0..w {
                let v = d[y * w + x];
                if figure(x, y) {
                    assert!(v > 100.0, "figure at {x},{y}: {v}");
                } else {
                    assert!(v.abs() < 1.0, "around the figure at {x},{y}: {v}");
                }
            }
        }
    }

    #[test]
    fn a_shadow_over_part_of_the_view_is_removed() {
        // A shadow 40 levels deep over the left half, softened over 16
        // pixels; a small thing stays.
        let (w, h) = (80, 60);
        let shadow = |x: usize| -40.0 * (1.0 - ((x as f32 - 32.0) / 16.0).clamp(0.0, 1.0));
        let thing = |x: usize, y: usize| (10..14).contains(&x) && (30..33).contains(&y);
        let mut d = image(w, h, |x, y| {
            shadow(x) + if thing(x, y) { 60.0 } else { 0.0 }
        });
        Shading::new(w, h).remove(&mut d);
        let rest = (0..w * h)
            .filter(|&i| !thing(i % w, i / w))
            .map(|i| d[i].abs())
            .fold(0f32, f32::max);
        assert!(rest < 18.0, "shadow left: {rest}");
        assert!(d[31 * w + 12] > 40.0, "the thing: {}", d[31 * w + 12]);
    }

    #[test]
    fn any_size_and_a_wrong_length_are_safe() {
        for (w, h) in [(1, 1), (2, 3), (7, 5), (64, 48), (160, 120)] {
            let mut d = image(w, h, |x, y| (x + y) as f32);
            Shading::new(w, h).remove(&mut d);
            assert!(d.iter().all(|v| v.is_finite()));
        }
        let mut short = vec![1.0; 10];
        Shading::new(80, 60).remove(&mut short);
        assert_eq!(short, vec![1.0; 10]);
    }
}
