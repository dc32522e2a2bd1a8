//! The camera motion trigger. Each grey frame is compared with a slowly
//! adapting background (time constant `background_tau_ms`) after removing
//! what light does to a whole scene:
//!
//! 1. **Tone**: the frame's tone curve against the background (exposure,
//!    gain, gamma, contrast, clipping) is estimated as the interquartile mean
//!    of the frame's levels for each band of background levels, so moving
//!    things (a minority in every band) do not bend it, and made monotonic
//!    by pooling bands out of order with their neighbours (weighted by their
//!    pixels), so a band of few pixels that a figure covers does not lift
//!    every level above it; the background is mapped through that curve.
//! 2. **Shading**: the difference is taken in relative terms and its
//!    large-scale shading is subtracted (`shading`: medians of blocks and of
//!    their neighbourhoods), so a cloud shadow leaves nothing and a large,
//!    bright figure leaves no halo around itself.
//! 3. **Threshold**: a pixel is a candidate when its difference exceeds the
//!    largest of `pixel_threshold`, `noise_k` times the frame's measured
//!    noise (the robust spread of all differences: grey, noisy IR frames
//!    raise it) and `deviation_k` times the pixel's own usual deviation (a
//!    running mean of its absolute difference, `deviation_tau_ms`: swaying
//!    vegetation raises it where it sways). A candidate whose value lies
//!    within the background's range two pixels around it is texture that
//!    shifted in place, not something new. Candidates with at least two
//!    candidate 4-neighbours are motion.
//! 4. **Light changes**: when `light_change_area` of the frame changes at
//!    once beyond what the noise explains (an auto-exposure step the tone
//!    curve cannot follow, the switch between day and IR night mode), the
//!    frame is not motion: the background restarts from it and the trigger
//!    relearns for a few frames (`light_changes()` counts these).
//!
//! 5. **Something crossing**: moving pixels are joined into regions
//!    (pieces within `GROUP_GAP` pixels are one thing) and each region is
//!    followed from frame to frame (nearest pairs of region and track
//!    first). A moving thing counts once it has been followed for
//!    `min_frames` frames and has been clear of its home (where it was in its
//!    first frames: their boxes apart) in two consecutive frames, along a
//!    nearly straight path (its distance from where it was first seen at
//!    least 0.8 of the path's length). Something crossing the view does that
//!    within a few frames, also when it walks in and stops; a bush or branch
//!    swinging in wind comes back over its rest position, and its path
//!    stops being straight. The activation then starts where the moving
//!    thing first appeared (at most `MAX_BACKDATE_MS` back).
//! 6. **Where motion recurs**: each pixel keeps its share of the last ten
//!    minutes or so that it moved without being part of a crossing thing.
//!    A region lying mostly on pixels that did so for more than a few
//!    seconds (foliage moving in place) does not make a track travel: in a
//!    gale, a track can otherwise hop from one crown to pieces of the next
//!    and look like something fast crossing. Passes of crossing things
//!    do not count, so a path that animals or people use stays open.
//!
//! Each frame's crossing things, with the frame's mean level, are kept as
//! [`FrameMotion`] ([`MotionTrigger::frame_motion`]): the model's camera
//! features are made from them (`features::camera`), so what the trigger
//! does not take for motion does not reach the model either.
//!
//! A frame with the same time as the previous one (a capture faster than the
//! camera's frame rate returns the same frame) is ignored: it adds no
//! evidence. An activation ends `hangover_ms` after the last frame with a
//! crossing thing in it. Cost per frame is a fixed number of
//! passes over the pixels plus small fixed-size histograms; buffers are
//! allocated only when the frame size changes.

use crate::activation::{Activation, Features, MotionFeatures};
use crate::config::MotionConfig;
use crate::shading::Shading;
use crate::{GrayFrame, Modality};

/// Background levels per band of the tone curve.
const BG_BIN: usize = 8;
const BG_BINS: usize = 256 / BG_BIN;
/// Frame levels per bin of the joint histogram.
const F_BIN: usize = 4;
const F_BINS: usize = 256 / F_BIN;
/// Bins per grey level of the noise histogram (which spans 64 levels).
const NOISE_STEP: f32 = 4.0;
const NOISE_BINS: usize = 256;
/// How far (pixels) swaying texture may have shifted in place.
const SWAY_RADIUS: usize = 2;
/// Frames after the background (re)starts during which nothing is reported.
const LEARN_FRAMES: u32 = 3;
/// A frame whose noise exceeds this many times the usual noise is a light change.
const NOISE_JUMP: f32 = 2.0;
/// Moving pixels adapt the background this much slower.
const MOVING_SLOWDOWN: f32 = 0.1;
/// Moving regions followed per frame (the largest ones).
const MAX_BLOBS: usize = 16;
/// A moving thing's home is where it was in its first `HOME_FRAMES` frames;
/// it counts as crossing once it has been clear of its home, along a
/// nearly straight path, in `AWAY_FRAMES` frames in a row. Anything swinging
/// about a rest position (a bush in wind) comes back: out of its home for
/// one frame at the end of a swing, its path is no longer straight at the
/// next.
const HOME_FRAMES: u32 = 2;
/// Frames in a row a thing must be away from home to count as crossing.
const AWAY_FRAMES: u32 = 2;
/// A path is nearly straight when the distance from where the thing was
/// first seen is at least this share of the path's length.
const STRAIGHTNESS: f32 = 0.8;
/// Moving regions this close (pixels) are parts of one thing.
const GROUP_GAP: usize = 3;
/// Moving things followed from frame to frame.
const MAX_TRACKS: usize = 8;
/// Time constant (ms) of each pixel's share of time moving in place.
const HABIT_TAU_MS: f32 = 600_000.0;
/// A pixel that moved in place for more than this share of the recent time
/// (2.4 s of the last ten minutes) is where motion recurs: foliage in wind.
const HABIT_LEVEL: f32 = 0.004;
/// A region more than this share of whose pixels are such places does not
/// count as travel: a piece of foliage is not something arriving.
const HABIT_SHARE: f32 = 0.5;
/// A frame stands for at most this much time (ms) of motion: a frame after
/// a gap in the frames does not make what moves in it habitual.
const HABIT_FRAME_MAX_MS: f32 = 2_000.0;
/// How far back an activation may start: where a moving thing first
/// appeared, at most this long before it was seen to travel.
const MAX_BACKDATE_MS: i64 = 10_000;

/// One connected moving region of a frame.
#[derive(Clone, Copy, Default)]
struct Blob {
    count: u32,
    /// Pixels where motion recurs.
    habitual: u32,
    sx: f32,
    sy: f32,
    x0: usize,
    x1: usize,
    y0: usize,
    y1: usize,
}

impl Blob {
    fn centroid(&self) -> (f32, f32) {
        let c = self.count.max(1) as f32;
        (self.sx / c, self.sy / c)
    }

    fn size(&self) -> (f32, f32) {
        (
            (self.x1 + 1 - self.x0) as f32,
            (self.y1 + 1 - self.y0) as f32,
        )
    }

    /// Mostly where motion recurs (foliage that moves in place).
    fn in_habitual_place(&self) -> bool {
        self.habitual as f32 > HABIT_SHARE * self.count as f32
    }
}

/// A region's activation features in a `w` x `h` frame.
fn blob_features(b: &Blob, w: usize, h: usize) -> MotionFeatures {
    let c = b.centroid();
    MotionFeatures {
        max_area: b.count as f32 / (w * h) as f32,
        centroid: (c.0 / w as f32, c.1 / h as f32),
        max_height: b.size().1 / h as f32,
    }
}

/// One crossing thing in a frame, in shares of the frame (0..1).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct MovingThing {
    /// Its moving pixels, share of the frame's pixels.
    pub area: f32,
    /// Its box (x0, y0, x1, y1).
    pub bbox: [f32; 4],
    /// The centroid of its moving pixels (x, y).
    pub centroid: (f32, f32),
}

/// What the trigger saw in one frame, for the model's camera features:
/// only the things it follows as crossing (swaying vegetation, light
/// changes, noise and shading are not in it), and the frame's mean level.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FrameMotion {
    /// The frame's time.
    pub t_ms: i64,
    /// Mean grey level of the frame, 0..255.
    pub mean_luma: f32,
    /// Crossing things, largest first (at most one per followed track).
    pub things: Vec<MovingThing>,
}

/// A moving region followed from frame to frame.
#[derive(Clone, Copy)]
struct Track {
    first_ms: i64,
    last_ms: i64,
    frames: u32,
    pos: (f32, f32),
    vel: (f32, f32),
    /// Largest width and height it has had.
    extent: (f32, f32),
    /// Box (x0, x1, y0, y1) of everywhere it was at first (its home).
    home: (usize, usize, usize, usize),
    /// It has left the place where it appeared.
    travelled: bool,
    /// Where it was first seen (centroid).
    origin: (f32, f32),
    /// Length of the path its centroid has followed.
    path: f32,
    /// Frames in a row it has been away from home on a straight path.
    away: u32,
    /// Matched in the current frame.
    seen: bool,
    /// Matched in the frame before.
    seen_before: bool,
    best: MotionFeatures,
}

impl Track {
    /// A region centred at `c` of size `s` that continues this track lies
    /// clear of the track's home (their boxes are apart), and the track got
    /// there along a nearly straight path.
    fn left_home(&self, c: (f32, f32), s: (f32, f32)) -> bool {
        let h = self.home;
        let centre = ((h.0 + h.1) as f32 / 2.0, (h.2 + h.3) as f32 / 2.0);
        let size = ((h.1 + 1 - h.0) as f32, (h.3 + 1 - h.2) as f32);
        let apart = (c.0 - centre.0).abs() > 0.5 * (size.0 + s.0) + 1.0
            || (c.1 - centre.1).abs() > 0.5 * (size.1 + s.1) + 1.0;
        let net = (c.0 - self.origin.0).hypot(c.1 - self.origin.1);
        apart && net >= STRAIGHTNESS * self.path
    }

    /// Followed long enough and clear of its home: something crossing.
    fn crossing(&self, min_frames: u32) -> bool {
        self.travelled && self.frames >= min_frames
    }
}

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
    /// Each pixel's usual absolute difference.
    deviation: Vec<f32>,
    /// Each pixel's recent share of time moving without crossing.
    habit: Vec<f32>,
    diff: Vec<f32>,
    /// Large-scale shading of the differences.
    shading: Shading,
    candidate: Vec<bool>,
    /// Moving pixels (1), visited by the region search (2).
    mask: Vec<u8>,
    /// Work stack of the region search (capacity: the frame's pixels).
    stack: Vec<u32>,
    blobs: [Blob; MAX_BLOBS],
    n_blobs: usize,
    /// The track each blob of the frame continued or started.
    blob_track: [Option<usize>; MAX_BLOBS],
    tracks: [Option<Track>; MAX_TRACKS],
    /// The last frame's crossing things.
    frame_motion: Option<FrameMotion>,
    /// Joint histogram: background band × frame level bin.
    joint: Vec<u32>,
    /// Tone curve: the frame level expected for each background level.
    tone: [f32; 257],
    /// Factor turning a difference into relative terms, per background level.
    scale: [f32; 256],
    noise_hist: [u32; NOISE_BINS],
    /// Slowly followed frame noise; `None` right after the background restarts.
    noise_slow: Option<f32>,
    since_seed: u32,
    light_changes: u64,
    /// The next frame restarts the background (the camera was off).
    restart: bool,
    last_t: Option<i64>,
    open: Option<Open>,
    out: Vec<Activation>,
    processed_ms: i64,
}

impl MotionTrigger {
    /// A trigger with no background yet.
    pub fn new(cfg: &MotionConfig) -> Self {
        MotionTrigger {
            cfg: cfg.clone(),
            size: (0, 0),
            background: Vec::new(),
            deviation: Vec::new(),
            habit: Vec::new(),
            diff: Vec::new(),
            shading: Shading::new(0, 0),
            candidate: Vec::new(),
            mask: Vec::new(),
            stack: Vec::new(),
            blobs: [Blob::default(); MAX_BLOBS],
            n_blobs: 0,
            blob_track: [None; MAX_BLOBS],
            tracks: [None; MAX_TRACKS],
            frame_motion: None,
            joint: vec![0; BG_BINS * F_BINS],
            tone: [0.0; 257],
            scale: [1.0; 256],
            noise_hist: [0; NOISE_BINS],
            noise_slow: None,
            since_seed: 0,
            light_changes: 0,
            restart: false,
            last_t: None,
            open: None,
            out: Vec::new(),
            processed_ms: i64::MIN,
        }
    }

    /// Frames taken as light changes (exposure steps, day/night switches)
    /// since the trigger was made.
    pub fn light_changes(&self) -> u64 {
        self.light_changes
    }

    /// What the last frame fed showed ([`FrameMotion`]); `None` when it
    /// was malformed or a repeat of the frame before.
    pub fn frame_motion(&self) -> Option<&FrameMotion> {
        self.frame_motion.as_ref()
    }

    /// Feeds a frame. Returns false (and ignores it) when it is malformed.
    pub fn push(&mut self, f: &GrayFrame) -> bool {
        self.frame_motion = None;
        let (w, h) = (f.width as usize, f.height as usize);
        let n = w.saturating_mul(h);
        if n == 0 || f.luma.len() != n || self.last_t.is_some_and(|t| f.t_ms < t) {
            return false;
        }
        if self.last_t == Some(f.t_ms) && self.size == (f.width, f.height) {
            // The same frame again (a capture faster than the camera's frame
            // rate): it adds no evidence.
            return true;
        }
        let mean_luma = f.luma.iter().map(|&v| u64::from(v)).sum::<u64>() as f32 / n as f32;
        self.frame_motion = Some(FrameMotion {
            t_ms: f.t_ms,
            mean_luma,
            things: Vec::new(),
        });
        let dt = (f.t_ms - self.last_t.unwrap_or(f.t_ms)).max(0) as f32;
        self.last_t = Some(f.t_ms);
        self.processed_ms = f.t_ms;
        if std::mem::take(&mut self.restart) && self.size == (f.width, f.height) {
            // Back after the camera was off: what changed meanwhile is not
            // motion. The background starts again from this frame.
            self.reseed(&f.luma);
            self.advance(f.t_ms, None);
            return true;
        }
        if self.size != (f.width, f.height) {
            // New camera or new size: start again.
            self.size = (f.width, f.height);
            for v in [
                &mut self.background,
                &mut self.deviation,
                &mut self.habit,
                &mut self.diff,
            ] {
                *v = vec![0.0; n];
            }
            self.candidate = vec![false; n];
            self.mask = vec![0; n];
            self.stack = Vec::with_capacity(n);
            self.shading = Shading::new(w, h);
            self.reseed(&f.luma);
            return true;
        }
        self.since_seed = self.since_seed.saturating_add(1);

        // 1. Tone curve, 2. relative difference, large-scale shading removed.
        self.fit_tone(&f.luma);
        for i in 0..n {
            let (t, s) = self.tone_at(self.background[i]);
            self.diff[i] = (f32::from(f.luma[i]) - t) * s;
        }
        self.shading.remove(&mut self.diff);

        // 3. Noise, and whether the whole scene changed at once.
        let sigma = self.noise();
        let floor = self.cfg.pixel_threshold;
        let reference = self.noise_slow.unwrap_or(sigma);
        let light_thr = floor.max(self.cfg.noise_k * reference);
        let changed = self.diff.iter().filter(|d| d.abs() > light_thr).count();
        // A sudden jump of the noise (the switch to IR night mode) changes the
        // whole scene too.
        let noise_jump = sigma > NOISE_JUMP * reference + 1.0;
        if noise_jump || changed as f32 >= self.cfg.light_change_area * n as f32 {
            self.light_changes += 1;
            self.reseed(&f.luma);
            self.advance(f.t_ms, None);
            return true;
        }
        let beta = 1.0 - (-dt / self.cfg.deviation_tau_ms.max(1) as f32).exp();
        self.noise_slow = Some(match self.noise_slow {
            Some(s) => s + (sigma - s) * beta,
            None => sigma,
        });

        // 4. Candidates: above every bar, and not texture shifted in place.
        let bar = floor.max(self.cfg.noise_k * sigma);
        let margin = 0.5 * self.cfg.noise_k * sigma;
        for i in 0..n {
            let d = self.diff[i];
            let mut c = d.abs() > bar.max(self.cfg.deviation_k * self.deviation[i]);
            if c {
                let (t, s) = self.tone_at(self.background[i]);
                let (near_lo, near_hi) = self.near_range(w, h, i);
                let lo = (self.tone_at(near_lo).0 - t) * s - margin;
                let hi = (self.tone_at(near_hi).0 - t) * s + margin;
                c = d < lo || d > hi;
            }
            self.candidate[i] = c;
        }
        self.find_blobs(w, h);
        let learning = self.since_seed <= LEARN_FRAMES;
        let moving = if learning {
            self.tracks = [None; MAX_TRACKS];
            None
        } else {
            let moving = self.follow(f.t_ms, w, h);
            self.record_crossing(w, h);
            self.learn_habit(w, dt);
            moving
        };

        // 5. Learning: background (moving pixels slower) and usual deviation.
        let alpha = 1.0 - (-dt / self.cfg.background_tau_ms.max(1) as f32).exp();
        let beta = beta.max(1.0 / self.since_seed as f32);
        for i in 0..n {
            let a = if self.candidate[i] {
                alpha * MOVING_SLOWDOWN
            } else {
                alpha
            };
            self.background[i] += (f32::from(f.luma[i]) - self.background[i]) * a;
            self.deviation[i] += (self.diff[i].abs() - self.deviation[i]) * beta;
        }
        self.advance(f.t_ms, moving);
        true
    }

    /// Blob `k` of this frame belongs to a crossing track (as the
    /// activation counts them).
    fn blob_crossing(&self, k: usize) -> bool {
        self.blob_track[k]
            .and_then(|j| self.tracks[j])
            .is_some_and(|t| t.crossing(self.cfg.min_frames))
    }

    /// Puts this frame's blobs that belong to a crossing track (as the
    /// activation counts them) into [`FrameMotion`].
    fn record_crossing(&mut self, w: usize, h: usize) {
        let Some(mut fm) = self.frame_motion.take() else {
            return;
        };
        let (wf, hf) = (w as f32, h as f32);
        for k in 0..self.n_blobs {
            if !self.blob_crossing(k) {
                continue;
            }
            let b = &self.blobs[k];
            let c = b.centroid();
            fm.things.push(MovingThing {
                area: b.count as f32 / (wf * hf),
                bbox: [
                    b.x0 as f32 / wf,
                    b.y0 as f32 / hf,
                    (b.x1 + 1) as f32 / wf,
                    (b.y1 + 1) as f32 / hf,
                ],
                centroid: (c.0 / wf, c.1 / hf),
            });
        }
        self.frame_motion = Some(fm);
    }

    /// Learns where motion recurs: each pixel's recent share of time moving
    /// without being part of a crossing thing.
    fn learn_habit(&mut self, w: usize, dt: f32) {
        for k in 0..self.n_blobs {
            if self.blob_crossing(k) {
                let b = self.blobs[k];
                for y in b.y0..=b.y1 {
                    self.mask[y * w + b.x0..=y * w + b.x1].fill(0);
                }
            }
        }
        let g = 1.0 - (-dt.min(HABIT_FRAME_MAX_MS) / HABIT_TAU_MS).exp();
        for (a, &m) in self.habit.iter_mut().zip(&self.mask) {
            *a += (f32::from(u8::from(m != 0)) - *a) * g;
        }
    }

    /// Restarts the background from a frame; each pixel's usual deviation
    /// is relearnt quickly from the next frames.
    fn reseed(&mut self, luma: &[u8]) {
        for (b, &v) in self.background.iter_mut().zip(luma) {
            *b = f32::from(v);
        }
        self.noise_slow = None;
        self.since_seed = 0;
        self.tracks = [None; MAX_TRACKS];
    }

    /// Fits the tone curve (background level → frame level) and the
    /// relative scale.
    fn fit_tone(&mut self, luma: &[u8]) {
        self.joint.fill(0);
        let mut sum = [0f64; BG_BINS];
        let mut count = [0u32; BG_BINS];
        let mut total = 0u64;
        for (&b, &v) in self.background.iter().zip(luma) {
            let b = b.clamp(0.0, 255.0);
            let k = b as usize / BG_BIN;
            self.joint[k * F_BINS + usize::from(v) / F_BIN] += 1;
            sum[k] += f64::from(b);
            count[k] += 1;
            total += u64::from(v);
        }
        let min_count = (luma.len() / 200).max(8) as u32;
        let mut knots = [(0f32, 0f32); BG_BINS];
        let mut weight = [0f32; BG_BINS];
        let mut nk = 0;
        for k in 0..BG_BINS {
            let c = count[k];
            if c < min_count {
                continue;
            }
            // Interquartile mean of the frame levels in this band.
            let (q1, q3) = (c as f32 * 0.25, c as f32 * 0.75);
            let (mut cum, mut acc) = (0f32, 0f32);
            for (j, &m) in self.joint[k * F_BINS..(k + 1) * F_BINS].iter().enumerate() {
                if m == 0 {
                    continue;
                }
                let (a, b) = (cum, cum + m as f32);
                cum = b;
                let overlap = b.min(q3) - a.max(q1);
                if overlap > 0.0 {
                    acc += overlap * ((j * F_BIN) as f32 + (F_BIN as f32 - 1.0) / 2.0);
                }
                if cum >= q3 {
                    break;
                }
            }
            knots[nk] = ((sum[k] / f64::from(c)) as f32, acc / (q3 - q1));
            weight[nk] = c as f32;
            nk += 1;
        }
        // A band of few pixels that a thing in view covers largely (a
        // bright figure over the darkest band) is pooled with its
        // neighbours instead of lifting every level above it.
        monotonic(&mut knots[..nk], &weight[..nk]);
        let knots = &knots[..nk];
        let mut prev = 0f32;
        for v in 0..256 {
            let x = v as f32;
            let y = match knots {
                [] => x,
                [(x0, y0), ..] if x <= *x0 => y0 * x / x0.max(1.0),
                [.., (xl, yl)] if x >= *xl => yl * x / xl.max(1.0),
                _ => {
                    let j = knots.partition_point(|(xk, _)| *xk <= x).clamp(1, nk - 1);
                    let ((xa, ya), (xb, yb)) = (knots[j - 1], knots[j]);
                    ya + (yb - ya) * (x - xa) / (xb - xa).max(1e-3)
                }
            };
            // Monotonic, within the frame's range.
            prev = y.clamp(0.0, 255.0).max(prev);
            self.tone[v] = prev;
        }
        self.tone[256] = self.tone[255];
        let mean = (total as f64 / luma.len().max(1) as f64) as f32;
        for v in 0..256 {
            self.scale[v] = mean / self.tone[v].max(mean / 4.0).max(4.0);
        }
    }

    /// Expected frame level and relative scale for a background level.
    fn tone_at(&self, b: f32) -> (f32, f32) {
        let b = b.clamp(0.0, 255.0);
        let k = b as usize;
        let t = self.tone[k] + (self.tone[k + 1] - self.tone[k]) * (b - k as f32);
        (t, self.scale[k.min(255)])
    }

    /// The frame's noise: 1.4826 times the median absolute difference.
    fn noise(&mut self) -> f32 {
        self.noise_hist.fill(0);
        for d in &self.diff {
            let k = (d.abs() * NOISE_STEP) as usize;
            self.noise_hist[k.min(NOISE_BINS - 1)] += 1;
        }
        let half = self.diff.len().div_ceil(2) as u32;
        let mut cum = 0;
        for (k, &c) in self.noise_hist.iter().enumerate() {
            cum += c;
            if cum >= half {
                return 1.4826 * (k as f32 + 0.5) / NOISE_STEP;
            }
        }
        1.4826 * NOISE_BINS as f32 / NOISE_STEP
    }

    /// The background's minimum and maximum within `SWAY_RADIUS` of pixel
    /// `i` (only asked for the few pixels above the bar).
    fn near_range(&self, w: usize, h: usize, i: usize) -> (f32, f32) {
        let r = SWAY_RADIUS;
        let (x, y) = (i % w, i / w);
        let (mut lo, mut hi) = (f32::MAX, f32::MIN);
        for yy in y.saturating_sub(r)..(y + r + 1).min(h) {
            let row = &self.background[yy * w..(yy + 1) * w];
            for &v in &row[x.saturating_sub(r)..(x + r + 1).min(w)] {
                lo = lo.min(v);
                hi = hi.max(v);
            }
        }
        (lo, hi)
    }

    /// Moving pixels (candidates with at least two candidate
    /// 4-neighbours) joined into 8-connected regions, regions within
    /// `GROUP_GAP` of each other joined too; keeps the largest of at least a
    /// third of `on_area` of the frame.
    fn find_blobs(&mut self, w: usize, h: usize) {
        let c = &self.candidate;
        for y in 0..h {
            for x in 0..w {
                let i = y * w + x;
                let n = usize::from(x > 0 && c[i - 1])
                    + usize::from(x + 1 < w && c[i + 1])
                    + usize::from(y > 0 && c[i - w])
                    + usize::from(y + 1 < h && c[i + w]);
                self.mask[i] = u8::from(c[i] && n >= 2);
            }
        }
        // Smaller regions may only continue something already followed (a
        // figure breaks up where it passes things of its own brightness).
        let min_count = (self.cfg.on_area * (w * h) as f32 / 3.0).ceil().max(3.0) as u32;
        self.n_blobs = 0;
        for start in 0..w * h {
            if self.mask[start] != 1 {
                continue;
            }
            self.mask[start] = 2;
            self.stack.clear();
            self.stack.push(start as u32);
            let mut b = Blob {
                x0: w,
                y0: h,
                ..Blob::default()
            };
            while let Some(i) = self.stack.pop() {
                let i = i as usize;
                let (x, y) = (i % w, i / w);
                b.count += 1;
                b.habitual += u32::from(self.habit[i] > HABIT_LEVEL);
                b.sx += x as f32;
                b.sy += y as f32;
                b.x0 = b.x0.min(x);
                b.x1 = b.x1.max(x);
                b.y0 = b.y0.min(y);
                b.y1 = b.y1.max(y);
                for yy in y.saturating_sub(1)..(y + 2).min(h) {
                    for xx in x.saturating_sub(1)..(x + 2).min(w) {
                        let j = yy * w + xx;
                        if self.mask[j] == 1 {
                            // Each pixel is pushed once: the stack never
                            // outgrows its capacity.
                            self.mask[j] = 2;
                            self.stack.push(j as u32);
                        }
                    }
                }
            }
            if b.count < 3 {
                continue;
            }
            if self.n_blobs < MAX_BLOBS {
                self.blobs[self.n_blobs] = b;
                self.n_blobs += 1;
            } else if let Some(k) = (0..MAX_BLOBS).min_by_key(|&k| self.blobs[k].count)
                && self.blobs[k].count < b.count
            {
                self.blobs[k] = b;
            }
        }
        // Pieces within a few pixels of each other are one thing: a figure,
        // or a crown whose inside changes only in places as it swings.
        let mut k = 0;
        while k < self.n_blobs {
            let a = self.blobs[k];
            let g = GROUP_GAP;
            let near = (k + 1..self.n_blobs).find(|&j| {
                let b = &self.blobs[j];
                b.x0 <= a.x1 + g && a.x0 <= b.x1 + g && b.y0 <= a.y1 + g && a.y0 <= b.y1 + g
            });
            match near {
                Some(j) => {
                    let b = self.blobs[j];
                    let m = &mut self.blobs[k];
                    m.count += b.count;
                    m.habitual += b.habitual;
                    m.sx += b.sx;
                    m.sy += b.sy;
                    m.x0 = m.x0.min(b.x0);
                    m.x1 = m.x1.max(b.x1);
                    m.y0 = m.y0.min(b.y0);
                    m.y1 = m.y1.max(b.y1);
                    self.n_blobs -= 1;
                    self.blobs[j] = self.blobs[self.n_blobs];
                    // The grown box may now reach pieces already passed.
                    k = 0;
                }
                None => k += 1,
            }
        }
        let mut kept = 0;
        for k in 0..self.n_blobs {
            if self.blobs[k].count >= min_count {
                self.blobs[kept] = self.blobs[k];
                kept += 1;
            }
        }
        self.n_blobs = kept;
        self.blobs[..self.n_blobs].sort_unstable_by_key(|b| std::cmp::Reverse(b.count));
    }

    /// Follows this frame's moving regions from the previous frames. A
    /// region continues the nearest track whose predicted place it is within
    /// reach of (about one body length of travel between frames); regions
    /// too small to start a track only continue one seen crossing or one
    /// moving steadily where it was expected. A track crosses once it is
    /// clear of its home by more than its own largest size. Returns the
    /// start of the earliest crossing track seen in this frame and the
    /// features of the largest.
    fn follow(&mut self, t_ms: i64, w: usize, h: usize) -> Option<(i64, MotionFeatures)> {
        let hangover = i64::from(self.cfg.hangover_ms);
        for t in self.tracks.iter_mut() {
            if let Some(tr) = t {
                tr.seen_before = tr.seen;
                tr.seen = false;
                if t_ms - tr.last_ms > hangover {
                    *t = None;
                }
            }
        }
        let n = (w * h) as f32;
        let new_count = (self.cfg.on_area * n).ceil().max(2.0) as u32;
        self.blob_track = [None; MAX_BLOBS];
        // Every region a track may continue, nearest pairs first: a swinging
        // crown beside an animal does not take the animal's track because it
        // is the larger and was looked at first.
        let mut pairs = [(0f32, 0usize, 0usize); MAX_BLOBS * MAX_TRACKS];
        let mut np = 0;
        for k in 0..self.n_blobs {
            let b = self.blobs[k];
            let c = b.centroid();
            let s = b.size();
            for (j, t) in self.tracks.iter().enumerate() {
                let Some(tr) = t else { continue };
                let p = (tr.pos.0 + tr.vel.0, tr.pos.1 + tr.vel.1);
                let (dx, dy) = ((c.0 - p.0).abs(), (c.1 - p.1).abs());
                // Boxes (the track's largest) overlap after one body length.
                let reach_x = s.0.max(tr.extent.0) + 0.5 * (s.0 + tr.extent.0) + 1.0;
                let reach_y = s.1.max(tr.extent.1) + 0.5 * (s.1 + tr.extent.1) + 1.0;
                // A small region only continues something seen crossing, or
                // something moving steadily that is where it was expected.
                let steady = tr.frames >= 2
                    && dx <= 0.5 * tr.extent.0 + 1.0
                    && dy <= 0.5 * tr.extent.1 + 1.0;
                if b.count < new_count && !tr.travelled && !steady {
                    continue;
                }
                if dx <= reach_x && dy <= reach_y {
                    pairs[np] = (dx * dx + dy * dy, k, j);
                    np += 1;
                }
            }
        }
        let pairs = &mut pairs[..np];
        pairs.sort_unstable_by(|a, b| a.0.total_cmp(&b.0).then((a.1, a.2).cmp(&(b.1, b.2))));
        let mut continues = [None; MAX_BLOBS];
        let mut taken = [false; MAX_TRACKS];
        for &(_, k, j) in pairs.iter() {
            if continues[k].is_none() && !taken[j] {
                continues[k] = Some(j);
                taken[j] = true;
            }
        }
        for (k, &track) in continues.iter().enumerate().take(self.n_blobs) {
            let b = self.blobs[k];
            let c = b.centroid();
            let s = b.size();
            let feat = blob_features(&b, w, h);
            match track {
                Some(j) => {
                    self.blob_track[k] = Some(j);
                    if let Some(tr) = self.tracks[j].as_mut() {
                        tr.vel = (c.0 - tr.pos.0, c.1 - tr.pos.1);
                        tr.path += tr.vel.0.hypot(tr.vel.1);
                        tr.pos = c;
                        tr.extent = (tr.extent.0.max(s.0), tr.extent.1.max(s.1));
                        tr.frames += 1;
                        tr.last_ms = t_ms;
                        tr.seen = true;
                        let h = &mut tr.home;
                        if tr.frames <= HOME_FRAMES {
                            *h = (h.0.min(b.x0), h.1.max(b.x1), h.2.min(b.y0), h.3.max(b.y1));
                        } else {
                            // Away in consecutive frames, not in frames
                            // between which it was lost.
                            let run = if tr.seen_before { tr.away } else { 0 };
                            tr.away = if tr.left_home(c, s) { run + 1 } else { 0 };
                            // Arriving somewhere motion does not recur.
                            tr.travelled |= tr.away >= AWAY_FRAMES && !b.in_habitual_place();
                        }
                        if feat.max_area > tr.best.max_area {
                            tr.best.max_area = feat.max_area;
                            tr.best.centroid = feat.centroid;
                        }
                        tr.best.max_height = tr.best.max_height.max(feat.max_height);
                    }
                }
                None if b.count < new_count => {}
                None => {
                    let track = Track {
                        first_ms: t_ms,
                        last_ms: t_ms,
                        frames: 1,
                        pos: c,
                        vel: (0.0, 0.0),
                        extent: s,
                        home: (b.x0, b.x1, b.y0, b.y1),
                        travelled: false,
                        origin: c,
                        path: 0.0,
                        away: 0,
                        seen: true,
                        seen_before: false,
                        best: feat,
                    };
                    // A free slot, else the track seen longest ago.
                    let slot = self.tracks.iter().position(Option::is_none).or_else(|| {
                        (0..MAX_TRACKS)
                            .filter(|&j| self.tracks[j].is_some_and(|t| !t.seen))
                            .min_by_key(|&j| self.tracks[j].map_or(i64::MIN, |t| t.last_ms))
                    });
                    if let Some(j) = slot {
                        self.tracks[j] = Some(track);
                        self.blob_track[k] = Some(j);
                    }
                }
            }
        }
        let mut out: Option<(i64, MotionFeatures)> = None;
        for tr in self.tracks.iter().flatten() {
            if !(tr.seen && tr.crossing(self.cfg.min_frames)) {
                continue;
            }
            let first = tr.first_ms.max(t_ms - MAX_BACKDATE_MS);
            out = Some(match out {
                None => (first, tr.best),
                Some((start, f)) => (
                    start.min(first),
                    if tr.best.max_area > f.max_area {
                        tr.best
                    } else {
                        f
                    },
                ),
            });
        }
        out
    }

    /// Opens, extends or closes the activation with this frame's motion
    /// (the start of the moving track, already confirmed, and features).
    fn advance(&mut self, t_ms: i64, motion: Option<(i64, MotionFeatures)>) {
        match (self.open.as_mut(), motion) {
            (None, Some((start_ms, feat))) => {
                self.open = Some(Open {
                    start_ms,
                    last_ms: t_ms,
                    frames: self.cfg.min_frames,
                    best: feat,
                });
            }
            (None, None) => {}
            (Some(o), Some((_, feat))) => {
                o.last_ms = t_ms;
                o.frames += 1;
                if feat.max_area > o.best.max_area {
                    o.best.max_area = feat.max_area;
                    o.best.centroid = feat.centroid;
                }
                o.best.max_height = o.best.max_height.max(feat.max_height);
            }
            (Some(o), None) => {
                if t_ms - o.last_ms > i64::from(self.cfg.hangover_ms) {
                    self.close();
                }
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

    /// The camera is back after being off: the next frame restarts the
    /// background, as after a light change.
    pub fn restart(&mut self) {
        self.restart = true;
    }

    /// Closes whatever is open (end of input, or the camera going away).
    pub fn finish(&mut self) {
        self.close();
    }

    /// Activations completed so far.
    pub fn take(&mut self) -> Vec<Activation> {
        std::mem::take(&mut self.out)
    }

    /// No activation can start or extend before this time (a moving thing
    /// still being followed may yet start one where it first appeared).
    pub fn safe_ms(&self) -> i64 {
        let floor = self.processed_ms.saturating_sub(MAX_BACKDATE_MS);
        let followed = self
            .tracks
            .iter()
            .flatten()
            .map(|t| t.first_ms.max(floor))
            .min();
        let base = match &self.open {
            Some(o) => o.start_ms,
            None => self.processed_ms,
        };
        followed.map_or(base, |f| f.min(base))
    }
}

/// Makes the knots' levels non-decreasing, as near to them as can be
/// (weighted least squares, pooling adjacent violators): each run of
/// knots out of order takes the weighted mean of its levels.
fn monotonic(knots: &mut [(f32, f32)], weight: &[f32]) {
    // Runs of pooled knots: (first knot, total weight, mean level).
    let mut runs = [(0usize, 0f32, 0f32); BG_BINS];
    let mut n = 0;
    for (i, (&(_, y), &w)) in knots.iter().zip(weight).enumerate().take(BG_BINS) {
        runs[n] = (i, w, y);
        n += 1;
        while n > 1 && runs[n - 2].2 > runs[n - 1].2 {
            let (b, a) = (runs[n - 1], runs[n - 2]);
            let total = a.1 + b.1;
            let mean = if total > 0.0 {
                (a.1 * a.2 + b.1 * b.2) / total
            } else {
                0.5 * (a.2 + b.2)
            };
            runs[n - 2] = (a.0, total, mean);
            n -= 1;
        }
    }
    for r in 0..n {
        let end = if r + 1 < n {
            runs[r + 1].0
        } else {
            knots.len()
        };
        for k in &mut knots[runs[r].0..end] {
            k.1 = runs[r].2;
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
            exposure: None,
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

    /// A small deterministic generator (splitmix64).
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        }
        fn unit(&mut self) -> f32 {
            (self.next() >> 40) as f32 / (1u64 << 24) as f32
        }
        fn gauss(&mut self) -> f32 {
            let (u, v) = (self.unit().max(1e-7), self.unit());
            (-2.0 * u.ln()).sqrt() * (2.0 * std::f32::consts::PI * v).cos()
        }
    }

    fn value_noise(w: usize, h: usize, cell: usize, rng: &mut Rng) -> Vec<f32> {
        let (gw, gh) = (w / cell + 2, h / cell + 2);
        let grid: Vec<f32> = (0..gw * gh).map(|_| rng.unit() * 2.0 - 1.0).collect();
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

    /// Something crossing the view at constant speed: a rectangle, fully
    /// in view from `start_s` to `end_s`, `level` grey by day and `ir` at night.
    #[derive(Clone, Copy)]
    struct Crossing {
        start_s: f32,
        end_s: f32,
        row: usize,
        size: (usize, usize),
        level: f32,
        ir: f32,
    }

    /// Exposure at a time: (gain, gamma).
    type Light = fn(f32) -> (f32, f32);
    /// A level at a time.
    type Level = fn(f32) -> f32;

    /// Leaves: a patch (x, y, w, h) sliding sideways by `amp` pixels at
    /// `hz` from `from_s` on.
    #[derive(Clone, Copy)]
    struct Sway {
        patch: (usize, usize, usize, usize),
        amp: f32,
        hz: f32,
        from_s: f32,
    }

    /// A bush or tree crown, a dark textured ellipse (cx, cy, rx, ry) that
    /// swings as a whole by up to `amp` pixels in gusts (`gust_s` long,
    /// every `every_s` from the start of the scene).
    #[derive(Clone, Copy)]
    struct Bush {
        crown: (f32, f32, f32, f32),
        amp: f32,
        hz: f32,
        gust_s: f32,
        every_s: f32,
    }

    impl Bush {
        fn offset(&self, t: f32) -> f32 {
            let phase = t % self.every_s;
            if phase >= self.gust_s {
                return 0.0;
            }
            // The gust builds up and dies away.
            let env = (std::f32::consts::PI * phase / self.gust_s).sin();
            self.amp * env * (2.0 * std::f32::consts::PI * self.hz * phase).sin()
        }
    }

    /// A generated field view: textured ground and sky, a patch of leaves,
    /// sensor noise, light, and whatever is configured to happen.
    struct Scene {
        w: usize,
        h: usize,
        day: Vec<f32>,
        night: Vec<f32>,
        sway: Option<Sway>,
        bush: Option<Bush>,
        crossings: Vec<Crossing>,
        light: Light,
        /// IR night mode at a time.
        is_night: fn(f32) -> bool,
        noise: f32,
        /// IR noise at a time.
        night_noise: Level,
        rng: Rng,
    }

    impl Scene {
        fn new(w: usize, h: usize, seed: u64) -> Scene {
            let mut rng = Rng(seed);
            let coarse = value_noise(w, h, (w / 6).max(2), &mut rng);
            let fine = value_noise(w, h, 2, &mut rng);
            let horizon = h * 3 / 10;
            let day = (0..w * h)
                .map(|i| match i / w < horizon {
                    true => 200.0 + 10.0 * coarse[i],
                    false => 100.0 + 25.0 * coarse[i] + 18.0 * fine[i],
                })
                .collect();
            // IR: grey, low contrast, the sky dark, the ground's texture
            // not the daylight one (vegetation reflects infrared).
            let ir = value_noise(w, h, 3, &mut rng);
            let night = (0..w * h)
                .map(|i| match i / w < horizon {
                    true => 50.0 + 3.0 * coarse[i],
                    false => 95.0 - 15.0 * coarse[i] + 12.0 * ir[i],
                })
                .collect();
            Scene {
                w,
                h,
                day,
                night,
                sway: None,
                bush: None,
                crossings: Vec::new(),
                light: |_| (1.0, 1.0),
                is_night: |_| false,
                noise: 1.5,
                night_noise: |_| 7.0,
                rng,
            }
        }

        /// Adds a patch of high-contrast leaves that sways from `from_s` on.
        fn leaves(mut self, amp: f32, hz: f32, from_s: f32) -> Scene {
            let (w, h) = (self.w, self.h);
            let patch = (w / 8, h * 3 / 5, w / 4, h / 4);
            let fine = value_noise(w, h, 2, &mut self.rng);
            for y in patch.1..patch.1 + patch.3 {
                for x in 0..w {
                    self.day[y * w + x] = 110.0 + 40.0 * fine[y * w + x];
                    self.night[y * w + x] = 130.0 + 12.0 * fine[y * w + x];
                }
            }
            self.sway = Some(Sway {
                patch,
                amp,
                hz,
                from_s,
            });
            self
        }

        fn frame(&mut self, t: f32) -> Vec<u8> {
            let (w, h) = (self.w, self.h);
            let night = (self.is_night)(t);
            let view = if night { &self.night } else { &self.day };
            let mut px = view.clone();
            if let Some(sw) = self.sway
                && t >= sw.from_s
            {
                let (x0, y0, pw, ph) = sw.patch;
                let s = sw.amp * (2.0 * std::f32::consts::PI * sw.hz * t).sin();
                for y in y0..y0 + ph {
                    for x in x0..x0 + pw {
                        let sx = (x as f32 + s).clamp(0.0, (w - 1) as f32);
                        let (a, fr) = (sx as usize, sx.fract());
                        let b = (a + 1).min(w - 1);
                        px[y * w + x] = view[y * w + a] * (1.0 - fr) + view[y * w + b] * fr;
                    }
                }
            }
            if let Some(b) = self.bush {
                let (cx, cy, rx, ry) = b.crown;
                let s = b.offset(t);
                for y in 0..h {
                    for x in 0..w {
                        let (u, v) = ((x as f32 - cx - s) / rx, (y as f32 - cy) / ry);
                        if u * u + v * v <= 1.0 {
                            // The crown's own texture moves with it.
                            let k = ((u * 3.0).floor() as i32 + 3 * (v * 3.0).floor() as i32)
                                .rem_euclid(5);
                            px[y * w + x] = if night { 70.0 } else { 45.0 } + 9.0 * k as f32;
                        }
                    }
                }
            }
            for c in &self.crossings {
                if t < c.start_s || t > c.end_s {
                    continue;
                }
                let u = (t - c.start_s) / (c.end_s - c.start_s);
                let x0 = (u * (w - c.size.0) as f32) as usize;
                for y in c.row..(c.row + c.size.1).min(h) {
                    for x in x0..x0 + c.size.0 {
                        px[y * w + x] = if night { c.ir } else { c.level };
                    }
                }
            }
            let (gain, gamma) = (self.light)(t);
            let sigma = if night {
                (self.night_noise)(t)
            } else {
                self.noise
            };
            px.iter()
                .map(|&v| {
                    let v = 255.0 * (gain * v / 255.0).max(0.0).powf(gamma);
                    (v + sigma * self.rng.gauss()).round().clamp(0.0, 255.0) as u8
                })
                .collect()
        }

        /// Feeds `secs` seconds at `fps` to a new trigger, calling `each`
        /// after every frame; the trigger.
        fn feed(
            &mut self,
            fps: f32,
            secs: f32,
            mut each: impl FnMut(&MotionTrigger),
        ) -> MotionTrigger {
            let mut m = MotionTrigger::new(&MotionConfig::default());
            for k in 0..(secs * fps) as usize {
                let t = k as f32 / fps;
                let f = GrayFrame {
                    t_ms: (t * 1000.0).round() as i64,
                    width: self.w as u32,
                    height: self.h as u32,
                    luma: self.frame(t),
                    exposure: None,
                };
                assert!(m.push(&f));
                each(&m);
            }
            m
        }

        /// Feeds `secs` seconds at `fps`; the activations and light changes.
        fn run(mut self, fps: f32, secs: f32) -> (Vec<Activation>, u64) {
            let mut m = self.feed(fps, secs, |_| {});
            m.finish();
            (m.take(), m.light_changes())
        }

        /// Feeds `secs` seconds at `fps`; each frame's [`FrameMotion`].
        fn motions(mut self, fps: f32, secs: f32) -> Vec<FrameMotion> {
            let mut out = Vec::new();
            self.feed(fps, secs, |m| out.extend(m.frame_motion().cloned()));
            out
        }
    }

    /// An animal-sized dark (IR: bright) blob crossing in 8 s from `start_s`.
    fn animal(w: usize, h: usize, start_s: f32) -> Crossing {
        Crossing {
            start_s,
            end_s: start_s + 8.0,
            row: h / 2,
            size: (w * 6 / 80, h * 4 / 60),
            level: 35.0,
            ir: 140.0,
        }
    }

    /// Exactly one activation, starting at the first frame showing the
    /// crossing and lasting until about its end.
    fn assert_crossing(acts: &[Activation], c: &Crossing, fps: f32, what: &str) {
        assert_eq!(acts.len(), 1, "{what}: {acts:?}");
        let period = 1000.0 / fps;
        let first = (c.start_s * fps).ceil() / fps * 1000.0;
        let a = &acts[0];
        assert!(
            (a.start_ms as f32 - first).abs() < 1.0,
            "{what}: starts at {} ms, the crossing at {first} ms",
            a.start_ms
        );
        assert!(
            a.end_ms as f32 >= c.end_s * 1000.0 - 2.0 * period,
            "{what}: ends at {} ms, the crossing at {} s",
            a.end_ms,
            c.end_s
        );
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

    /// Exposure steps at 20 s and back at 40 s; an animal crosses at 45 s.
    fn exposure_scene(light: fn(f32) -> (f32, f32)) -> (Vec<Activation>, Crossing) {
        let mut s = Scene::new(80, 60, 3);
        s.light = light;
        let c = animal(80, 60, 45.0);
        s.crossings.push(c);
        (s.run(2.0, 60.0).0, c)
    }

    #[test]
    fn exposure_jumps_do_not_fire() {
        let steps: [(&str, Light); 5] = [
            ("brighter", |t| {
                (if (20.0..40.0).contains(&t) { 1.6 } else { 1.0 }, 1.0)
            }),
            ("darker", |t| {
                (if (20.0..40.0).contains(&t) { 0.5 } else { 1.0 }, 1.0)
            }),
            ("gamma 0.6", |t| {
                (1.0, if (20.0..40.0).contains(&t) { 0.6 } else { 1.0 })
            }),
            ("gamma 1.7", |t| {
                (1.0, if (20.0..40.0).contains(&t) { 1.7 } else { 1.0 })
            }),
            ("clipped", |t| match (20.0..40.0).contains(&t) {
                true => (2.2, 1.5),
                false => (1.0, 1.0),
            }),
        ];
        for (what, light) in steps {
            let (acts, c) = exposure_scene(light);
            assert_crossing(&acts, &c, 2.0, what);
        }
    }

    #[test]
    fn swaying_vegetation_does_not_fire() {
        for fps in [1.0, 2.0, 5.0] {
            for hz in [0.5, 1.3, 2.0] {
                let (acts, light) = Scene::new(80, 60, 5).leaves(2.0, hz, 0.0).run(fps, 600.0);
                assert!(acts.is_empty(), "{fps} fps, {hz} Hz: {acts:?}");
                assert_eq!(light, 0, "{fps} fps, {hz} Hz");
            }
        }
    }

    #[test]
    fn the_camera_features_see_a_crossing_and_not_vegetation_or_light() {
        for fps in [1.0, 2.0, 5.0] {
            // Leaves and a bush swinging in gusts, an exposure step at 20 s.
            let mut s = windy_bush(21, 6.0, 0.9);
            s.light = |t| (if t >= 20.0 { 1.5 } else { 1.0 }, 1.0);
            let motions = s.motions(fps, 120.0);
            assert_eq!(motions.len(), (120.0 * fps) as usize);
            let moving: Vec<&FrameMotion> =
                motions.iter().filter(|m| !m.things.is_empty()).collect();
            assert!(moving.is_empty(), "{fps} fps: {moving:?}");
            // An animal passing below the crown while it swings, through
            // swinging leaves: seen at its place, in the frames of its
            // crossing only (from the frame where it has cleared the place
            // it appeared at).
            let mut s = windy_bush(15, 6.0, 0.7);
            let c = animal(80, 60, 61.0);
            s.crossings.push(c);
            let moving: Vec<FrameMotion> = s
                .motions(fps, 90.0)
                .into_iter()
                .filter(|m| !m.things.is_empty())
                .collect();
            assert!(
                moving.iter().all(|m| (61_000..=70_000).contains(&m.t_ms)),
                "{fps} fps: {moving:?}"
            );
            // Mostly the animal itself (the crown can take over its track
            // for a frame where it passes close below it).
            let y = (c.row as f32 + c.size.1 as f32 / 2.0) / 60.0;
            let animal = moving
                .iter()
                .flat_map(|m| &m.things)
                .filter(|t| (t.centroid.1 - y).abs() < 0.05 && t.area > 0.003 && t.area < 0.02)
                .count();
            assert!(animal as f32 >= 3.0 * fps, "{fps} fps: {moving:?}");
        }
    }

    #[test]
    fn a_gust_that_starts_swaying_vegetation_does_not_fire() {
        for fps in [1.0, 2.0, 5.0] {
            let (acts, _) = Scene::new(80, 60, 6).leaves(1.5, 1.3, 60.0).run(fps, 180.0);
            assert!(acts.is_empty(), "{fps} fps: {acts:?}");
        }
    }

    #[test]
    fn a_crossing_among_swaying_vegetation_is_detected() {
        for fps in [1.0, 2.0, 5.0] {
            let mut s = Scene::new(80, 60, 7).leaves(2.0, 1.3, 0.0);
            // Along the row of the leaves, through them.
            let mut c = animal(80, 60, 120.0);
            c.row = 60 * 3 / 5 + 4;
            s.crossings.push(c);
            let (acts, _) = s.run(fps, 180.0);
            assert_crossing(&acts, &c, fps, &format!("{fps} fps"));
        }
    }

    #[test]
    fn noisy_ir_frames_do_not_fire_and_a_crossing_at_night_is_detected() {
        let noises: [(&str, Level); 4] = [
            ("4", |_| 4.0),
            ("8", |_| 8.0),
            ("12", |_| 12.0),
            ("rising from 3 to 14 in a minute", |t| {
                3.0 + 11.0 * (t / 60.0).min(1.0)
            }),
        ];
        for (noise, level) in noises {
            let mut s = Scene::new(80, 60, 8);
            s.is_night = |_| true;
            s.night_noise = level;
            let (acts, light) = s.run(2.0, 300.0);
            assert!(acts.is_empty(), "noise {noise}: {acts:?}");
            assert_eq!(light, 0, "noise {noise}");
        }
        for fps in [1.0, 2.0, 5.0] {
            let mut s = Scene::new(80, 60, 9).leaves(1.5, 1.0, 0.0);
            s.is_night = |_| true;
            let c = animal(80, 60, 100.0);
            s.crossings.push(c);
            let (acts, _) = s.run(fps, 150.0);
            assert_crossing(&acts, &c, fps, &format!("night, {fps} fps"));
        }
    }

    #[test]
    fn day_night_switches_are_light_changes() {
        for fps in [1.0, 2.0, 5.0] {
            let mut s = Scene::new(80, 60, 10).leaves(1.5, 1.0, 0.0);
            s.is_night = |t| (60.0..120.0).contains(&t);
            let c = animal(80, 60, 90.0);
            s.crossings.push(c);
            let (acts, light_changes) = s.run(fps, 180.0);
            assert_crossing(&acts, &c, fps, &format!("{fps} fps"));
            assert!(light_changes >= 2, "{fps} fps: {light_changes}");
        }
    }

    #[test]
    fn a_slow_crossing_is_detected() {
        // A body length every 6 s: each pixel of the animal is covered for
        // several seconds, which must not count as motion that recurs.
        for fps in [1.0, 2.0, 5.0] {
            let mut s = Scene::new(80, 60, 13);
            let mut c = animal(80, 60, 30.0);
            c.end_s = 100.0;
            s.crossings.push(c);
            let (acts, _) = s.run(fps, 120.0);
            assert_found(&acts, &c, fps, 10.0, &format!("{fps} fps"));
        }
    }

    /// Frames at 2 fps of three pieces of foliage in a row (the crowns of a
    /// gale seen small) that move in place a quarter of the time and, every
    /// 20 s from `chains_from_s`, one after the other from left to right,
    /// which a tracker alone takes for something crossing; with an animal
    /// crossing along the same row at `animal_s`.
    fn hopping_foliage(chains_from_s: f32, animal_s: f32, secs: f32) -> Vec<Activation> {
        let (w, fps) = (80usize, 2.0f32);
        let spots = [14usize, 26, 38];
        let mut rng = Rng(5);
        let mut m = MotionTrigger::new(&MotionConfig::default());
        for i in 0..(secs * fps) as i64 {
            let t = i as f32 / fps;
            let mut luma = textured(80, 60, 0);
            let mut paint = |x0: usize, x1: usize, level: u8| {
                for y in 10..14 {
                    luma[y * w + x0..y * w + x1].fill(level);
                }
            };
            let phase = (i % 40) as usize;
            let chain = t >= chains_from_s && phase < 6;
            for (k, &x) in spots.iter().enumerate() {
                let on = if chain {
                    phase / 2 == k
                } else {
                    rng.unit() < 0.25
                };
                if on {
                    paint(x, x + 6, 40);
                }
            }
            if (animal_s..animal_s + 8.0).contains(&t) {
                let x = ((t - animal_s) / 8.0 * 74.0) as usize;
                paint(x, x + 6, 200);
            }
            assert!(m.push(&frame(i * 500, luma)));
        }
        m.finish();
        m.take()
    }

    #[test]
    fn foliage_moving_where_it_always_moves_is_not_crossing() {
        // Once the places are learnt (the first minutes), only the animal.
        let acts = hopping_foliage(60.0, 400.0, 600.0);
        let late: Vec<_> = acts.iter().filter(|a| a.start_ms > 120_000).collect();
        assert_eq!(late.len(), 1, "{acts:?}");
        assert!(
            (400_000..402_000).contains(&late[0].start_ms),
            "the animal: {acts:?}"
        );
    }

    #[test]
    fn a_path_crossed_again_and_again_stays_open() {
        for fps in [1.0, 2.0, 5.0] {
            let mut s = Scene::new(80, 60, 17);
            let passes: Vec<Crossing> = (1..20).map(|k| animal(80, 60, 30.0 * k as f32)).collect();
            s.crossings.extend(passes.iter().copied());
            let (acts, _) = s.run(fps, 600.0);
            assert_eq!(acts.len(), passes.len(), "{fps} fps: {acts:?}");
            for (a, c) in acts.iter().zip(&passes) {
                assert_crossing(std::slice::from_ref(a), c, fps, &format!("{fps} fps"));
            }
        }
    }

    #[test]
    fn a_frame_after_a_gap_does_not_make_its_motion_habitual() {
        let mut m = MotionTrigger::new(&MotionConfig::default());
        for i in 0..20 {
            assert!(m.push(&frame(i * 500, textured(80, 60, 0))));
        }
        // Ten minutes without frames, then something where nothing moved.
        let mut luma = textured(80, 60, 0);
        for y in 10..16 {
            luma[y * 80 + 30..y * 80 + 38].fill(30);
        }
        assert!(m.push(&frame(610_000, luma)));
        let moved: Vec<f32> = (10..16).map(|y| m.habit[y * 80 + 33]).collect();
        assert!(moved.iter().all(|&v| v > 0.0), "{moved:?}");
        assert!(moved.iter().all(|&v| v <= HABIT_LEVEL), "{moved:?}");
    }

    #[test]
    fn a_person_walking_across_is_detected() {
        for fps in [1.0, 2.0, 5.0] {
            let mut s = Scene::new(80, 60, 11).leaves(1.5, 1.3, 0.0);
            let c = Crossing {
                start_s: 30.0,
                end_s: 40.0,
                row: 25,
                size: (6, 22),
                level: 60.0,
                ir: 120.0,
            };
            s.crossings.push(c);
            let (acts, _) = s.run(fps, 60.0);
            assert_crossing(&acts, &c, fps, &format!("{fps} fps"));
        }
    }

    #[test]
    fn a_tone_knot_out_of_order_is_pooled_with_its_neighbours_by_weight() {
        // The darkest band lifted by a figure (few pixels) must not lift
        // the levels above it: it is pooled with the next band.
        let mut k = [(10.0, 80.0), (20.0, 20.0), (30.0, 30.0), (40.0, 40.0)];
        monotonic(&mut k, &[10.0, 100.0, 100.0, 100.0]);
        let pooled = (10.0 * 80.0 + 100.0 * 20.0) / 110.0;
        let want = [pooled, pooled, 30.0, 40.0];
        for (got, want) in k.iter().zip(want) {
            assert!((got.1 - want).abs() < 1e-4, "{k:?}");
        }
        // Knots in order stay as they are.
        let mut k = [(10.0, 12.0), (20.0, 25.0), (30.0, 31.0)];
        monotonic(&mut k, &[1.0, 1.0, 1.0]);
        assert_eq!(k, [(10.0, 12.0), (20.0, 25.0), (30.0, 31.0)]);
    }

    #[test]
    fn a_large_bright_figure_leaves_no_halo() {
        // A person in light clothes near the camera, a third of the view's
        // height, walking across in 4 s: the shading removal must not
        // spread its difference over its surroundings (a halo that doubles
        // the region and lifts the frame's noise until the frame looks
        // like a change of light).
        for fps in [1.0, 2.0, 5.0] {
            let mut s = Scene::new(80, 60, 21);
            let c = Crossing {
                start_s: 30.0,
                end_s: 34.0,
                row: 20,
                size: (10, 35),
                level: 245.0,
                ir: 250.0,
            };
            s.crossings.push(c);
            let (acts, light) = s.run(fps, 50.0);
            assert_eq!(light, 0, "{fps} fps: no change of light");
            assert_crossing(&acts, &c, fps, &format!("{fps} fps"));
            let Features::Motion(m) = acts[0].features else {
                panic!("{fps} fps: not motion features");
            };
            let figure = (c.size.0 * c.size.1) as f32 / (80.0 * 60.0);
            assert!(
                m.max_area < 1.3 * figure,
                "{fps} fps: moving area {} for a figure of {figure}",
                m.max_area
            );
        }
    }

    #[test]
    fn an_animal_that_walks_in_and_stops_is_found() {
        // A deer steps into view from the left at 2 fps, walks half its
        // length a frame for four frames, then stands grazing: it ends
        // about a body length and a half from where it appeared.
        let (w, h) = (80usize, 60usize);
        let mut m = MotionTrigger::new(&MotionConfig::default());
        let mut rng = Rng(9);
        for i in 0..120i64 {
            let t = i as f32 / 2.0;
            let mut px = textured(w as u32, h as u32, 0);
            if t >= 30.0 {
                let steps = ((t - 30.0) * 2.0).min(4.0) as i32;
                let x0 = -16 + 8 * (steps + 1);
                for y in 30..38 {
                    for x in x0.max(0)..(x0 + 16).min(w as i32) {
                        px[y * w + x as usize] = 200;
                    }
                }
            }
            for v in px.iter_mut() {
                *v = (f32::from(*v) + 1.5 * rng.gauss())
                    .round()
                    .clamp(0.0, 255.0) as u8;
            }
            assert!(m.push(&frame(i * 500, px)));
        }
        m.finish();
        let acts = m.take();
        assert_eq!(acts.len(), 1, "{acts:?}");
        assert!(
            (30_000..=31_000).contains(&acts[0].start_ms),
            "from its first step: {acts:?}"
        );
    }

    /// A large crown swinging up to `amp` pixels in gusts every 20 s.
    fn windy_bush(seed: u64, amp: f32, hz: f32) -> Scene {
        let mut s = Scene::new(80, 60, seed).leaves(1.5, 1.3, 0.0);
        s.bush = Some(Bush {
            crown: (22.0, 20.0, 8.0, 6.0),
            amp,
            hz,
            gust_s: 8.0,
            every_s: 20.0,
        });
        s
    }

    #[test]
    fn a_bush_swinging_several_pixels_in_gusts_does_not_fire() {
        // Far beyond the ±2 px that texture may shift in place: the whole
        // crown swings about its rest position, by day and at night.
        for fps in [1.0, 2.0, 5.0] {
            for amp in [4.0, 6.0, 9.0] {
                for hz in [0.4, 0.9] {
                    let (acts, _) = windy_bush(13, amp, hz).run(fps, 240.0);
                    assert!(acts.is_empty(), "{fps} fps, {amp} px, {hz} Hz: {acts:?}");
                }
            }
            let mut s = windy_bush(14, 6.0, 0.7);
            s.is_night = |_| true;
            let (acts, _) = s.run(fps, 240.0);
            assert!(acts.is_empty(), "night, {fps} fps: {acts:?}");
        }
    }

    /// Activations only during the crossing, the first starting within
    /// `late_s` of it and the last lasting until about its end (a figure
    /// that touches a swinging bush's own motion is one region with it for a
    /// while, which may split or delay its activation).
    fn assert_found(acts: &[Activation], c: &Crossing, fps: f32, late_s: f32, what: &str) {
        assert!(!acts.is_empty(), "{what}: not found");
        let (start, end) = (c.start_s * 1000.0, c.end_s * 1000.0);
        for a in acts {
            assert!(
                a.start_ms as f32 >= start - 1.0 && (a.end_ms as f32) <= end + 2000.0,
                "{what}: {a:?} outside the crossing"
            );
        }
        assert!(
            (acts[0].start_ms as f32) <= start + late_s * 1000.0,
            "{what}: {acts:?}"
        );
        let last = acts.iter().map(|a| a.end_ms).max().unwrap_or(0);
        assert!(last as f32 >= end - 2000.0 / fps, "{what}: {acts:?}");
    }

    #[test]
    fn a_crossing_during_gusts_is_detected() {
        for fps in [1.0, 2.0, 5.0] {
            // An animal passing below the crown while it swings, through
            // swinging leaves.
            let mut s = windy_bush(15, 6.0, 0.7);
            let c = animal(80, 60, 61.0);
            s.crossings.push(c);
            let (acts, _) = s.run(fps, 90.0);
            assert_found(&acts, &c, fps, 1.0, &format!("{fps} fps"));
        }
    }

    #[test]
    fn a_frame_delivered_twice_adds_no_evidence() {
        // A camera read faster than its frame rate hands the same frame
        // (same time) again: a blob seen in one frame only must not count
        // as two moving frames.
        let base = textured(80, 60, 0);
        let mut m = MotionTrigger::new(&MotionConfig::default());
        for i in 0..40i64 {
            let mut px = base.clone();
            if i == 20 {
                for y in 30..36 {
                    for x in 30..38 {
                        px[y * 80 + x] = 20;
                    }
                }
            }
            let f = frame(i * 1000, px);
            assert!(m.push(&f));
            assert!(m.push(&f));
        }
        m.finish();
        assert!(m.take().is_empty());
    }

    #[test]
    fn other_frame_sizes_work() {
        for (w, h) in [(64, 48), (160, 120)] {
            let mut s = Scene::new(w, h, 12).leaves(2.0, 1.3, 0.0);
            s.light = |t| (if t > 20.0 { 0.6 } else { 1.0 }, 1.0);
            let c = animal(w, h, 40.0);
            s.crossings.push(c);
            let (acts, _) = s.run(2.0, 60.0);
            assert_crossing(&acts, &c, 2.0, &format!("{w}x{h}"));
        }
    }

    #[test]
    fn odd_frames_do_not_panic() {
        let mut m = MotionTrigger::new(&MotionConfig::default());
        let mut t = 0;
        for (w, h, v) in [(1, 1, 0), (3, 7, 255), (3, 7, 0), (3, 7, 255), (80, 60, 0)] {
            for _ in 0..5 {
                t += 500;
                let luma = vec![v; w * h];
                let f = GrayFrame {
                    t_ms: t,
                    width: w as u32,
                    height: h as u32,
                    luma,
                    exposure: None,
                };
                assert!(m.push(&f));
            }
        }
        for v in [255, 0, 128, 255] {
            t += 500;
            assert!(m.push(&frame(t, vec![v; 80 * 60])));
        }
        m.finish();
        assert!(m.take().is_empty());
        assert!(!m.push(&GrayFrame {
            t_ms: t + 1,
            width: 0,
            height: 7,
            luma: Vec::new(),
            exposure: None,
        }));
    }

    #[test]
    fn malformed_frames_are_refused() {
        let mut m = MotionTrigger::new(&MotionConfig::default());
        assert!(!m.push(&GrayFrame {
            t_ms: 0,
            width: 10,
            height: 10,
            luma: vec![0; 5],
            exposure: None,
        }));
        assert!(m.push(&GrayFrame {
            t_ms: 10,
            width: 2,
            height: 2,
            luma: vec![0; 4],
            exposure: None,
        }));
        assert!(!m.push(&GrayFrame {
            t_ms: 5,
            width: 2,
            height: 2,
            luma: vec![0; 4],
            exposure: None,
        }));
    }
}
