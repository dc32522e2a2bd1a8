//! The light the camera sees, kept for the climate: the frames' mean
//! brightness in 10 s bins over the last two hours.
//!
//! The sun coming out from behind a cloud brightens the view within
//! seconds and warms the enclosure over the minutes after (a first-order
//! lag of a few minutes, warming fastest right after the sun came out), so
//! a fast rise of the enclosure's temperature that began once the view had
//! brightened is the sun and not a machine, and no evidence of what is
//! heard or seen meanwhile. [`LightHistory::brightening`] measures that:
//! the light held for half a minute from the rise's start at the latest,
//! against the dimmest the view was in the quarter of an hour before.
//!
//! A camera with auto-exposure brings its frames' brightness back within
//! seconds when the light changes. When it reports the exposure it chose
//! ([`GrayFrame::exposure`]), a frame's brightness is taken at one fixed
//! exposure (the first the history saw): its mean luma times the exposure
//! ratio to the power 1/2.2 (the luma's usual gamma), so the brightening
//! means the same with and without auto-exposure. A camera that hides
//! light changes and reports no exposure shows no brightening, and the
//! rise stays an event.

use std::collections::VecDeque;

use crate::GrayFrame;

/// Width of a bin, ms.
const BIN_MS: i64 = 10_000;
/// History kept behind the latest frame, ms: a heat rise is judged once it
/// has closed, which can be many minutes after it started. A rise still
/// warming faster than the climate trigger's off rate after an hour and
/// three quarters (some 16 °C at the default) would find its quarter hour
/// before gone, and stay an event.
const KEEP_MS: i64 = 7_200_000;
/// The dimmest minute is looked for this far before the rise starts, ms...
const LOOKBACK_MS: i64 = 900_000;
/// ...up to this long before it.
const LOOKBACK_END_MS: i64 = 30_000;
/// Bins in a minute: the dimmest is the darkest minute, not a passing
/// shadow (the enclosure lags the sun by minutes, so a shadow of a few
/// seconds warms nothing when it goes).
const DIM_BINS: usize = 6;
/// The light at the rise: the highest held for half a minute (three bins
/// in a row) beginning from this long before its start up to its start
/// (the foot of the rise, where the heat began)...
const NOW_FROM_MS: i64 = 60_000;
/// ...and ending no later than this long after it.
const NOW_TO_MS: i64 = 30_000;
/// Bins in that half minute.
const NOW_BINS: usize = 3;
/// Brightness below this (0..255) counts as this: a dark view (night, a
/// covered lens) does not turn noise into large ratios.
const DARK: f64 = 8.0;
/// The gamma of luma: the light at the sensor goes as luma to this power.
const GAMMA: f64 = 2.2;

#[derive(Clone, Copy, Debug)]
struct Bin {
    index: i64,
    sum: f64,
    n: u32,
}

impl Bin {
    fn mean(&self) -> f64 {
        self.sum / f64::from(self.n.max(1))
    }
}

/// The view's mean brightness over the last two hours.
#[derive(Debug, Default)]
pub struct LightHistory {
    bins: VecDeque<Bin>,
    /// The exposure brightness is referred to: the first one reported.
    reference_exposure: Option<f64>,
    /// The latest exposure reported, for frames that come without one.
    last_exposure: Option<f64>,
}

impl LightHistory {
    /// No history.
    pub fn new() -> Self {
        LightHistory::default()
    }

    /// Feeds a frame; an empty frame or one older than the last is ignored.
    pub fn push(&mut self, f: &GrayFrame) {
        if f.luma.is_empty() {
            return;
        }
        let index = f.t_ms.div_euclid(BIN_MS);
        if self.bins.back().is_some_and(|b| index < b.index) {
            return;
        }
        let luma = f.luma.iter().map(|&v| u64::from(v)).sum::<u64>() as f64 / f.luma.len() as f64;
        let mean = luma * self.exposure_gain(f.exposure);
        match self.bins.back_mut() {
            Some(b) if b.index == index => {
                b.sum += mean;
                b.n += 1;
            }
            _ => self.bins.push_back(Bin {
                index,
                sum: mean,
                n: 1,
            }),
        }
        let oldest = f.t_ms.saturating_sub(KEEP_MS).div_euclid(BIN_MS);
        while self.bins.front().is_some_and(|b| b.index < oldest) {
            self.bins.pop_front();
        }
    }

    /// What a frame's mean luma is multiplied by to refer it to the
    /// reference exposure: 1 without exposures; a frame exposed half as
    /// long as the reference saw twice the light, which its luma shows
    /// only to the power 1/[`GAMMA`].
    fn exposure_gain(&mut self, exposure: Option<f32>) -> f64 {
        let reported = exposure
            .map(f64::from)
            .filter(|e| e.is_finite() && *e > 0.0);
        if reported.is_some() {
            self.last_exposure = reported;
        }
        let Some(e) = self.last_exposure else {
            return 1.0;
        };
        let reference = *self.reference_exposure.get_or_insert(e);
        (reference / e).powf(1.0 / GAMMA)
    }

    /// How much the view had brightened when a rise started at `t_ms`: the
    /// highest light it held for half a minute beginning between a minute
    /// before the start and the start, over the dimmest minute (six bins in
    /// a row) in the quarter of an hour before (both at least [`DARK`]). `None` without a minute of frames
    /// before and frames around the start (no camera, or the camera off or
    /// on demand).
    pub fn brightening(&self, t_ms: i64) -> Option<f32> {
        let before: Vec<&Bin> = self
            .bins_in(
                t_ms.saturating_sub(LOOKBACK_MS),
                t_ms.saturating_sub(LOOKBACK_END_MS),
            )
            .collect();
        let dimmest = before
            .windows(DIM_BINS)
            .filter(|w| w[DIM_BINS - 1].index - w[0].index == DIM_BINS as i64 - 1)
            .map(|w| w.iter().map(|b| b.mean()).sum::<f64>() / DIM_BINS as f64)
            .min_by(f64::total_cmp)?;
        let around: Vec<&Bin> = self
            .bins_in(
                t_ms.saturating_sub(NOW_FROM_MS),
                t_ms.saturating_add(NOW_TO_MS),
            )
            .collect();
        // The light held for half a minute from the rise's start at the
        // latest: the highest of the dimmest bin of every run of three
        // (fewer where frames are missing) that begins no later than the
        // bin of the start. A flash of a few seconds is no sun, and light
        // that came after the heat began did not cause it (the enclosure
        // warms fastest right after the sun comes out).
        let start_bin = t_ms.div_euclid(BIN_MS);
        let now = (0..around.len())
            .filter(|&i| around[i].index <= start_bin)
            .filter_map(|i| {
                around[i..]
                    .iter()
                    .take(NOW_BINS)
                    .take_while(|b| b.index - around[i].index < NOW_BINS as i64)
                    .map(|b| b.mean())
                    .min_by(f64::total_cmp)
            })
            .max_by(f64::total_cmp)?;
        Some((now.max(DARK) / dimmest.max(DARK)) as f32)
    }

    /// Bins whose span lies within `[from_ms, to_ms)`.
    fn bins_in(&self, from_ms: i64, to_ms: i64) -> impl Iterator<Item = &Bin> {
        let (first, last) = (from_ms.div_euclid(BIN_MS), to_ms.div_euclid(BIN_MS));
        self.bins
            .iter()
            .filter(move |b| b.index >= first && b.index < last)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(t_ms: i64, v: u8) -> GrayFrame {
        GrayFrame {
            t_ms,
            width: 4,
            height: 4,
            luma: vec![v; 16],
            exposure: None,
        }
    }

    /// Frames every 500 ms from `from_s` to `to_s` at brightness `v(t_s)`.
    fn feed(h: &mut LightHistory, from_s: i64, to_s: i64, v: impl Fn(i64) -> u8) {
        for t in (from_s * 1000..to_s * 1000).step_by(500) {
            h.push(&frame(t, v(t / 1000)));
        }
    }

    #[test]
    fn sun_coming_out_is_a_brightening() {
        let mut h = LightHistory::new();
        // Under a cloud until 1000 s, then the sun.
        feed(&mut h, 0, 1400, |t| if t < 1000 { 80 } else { 120 });
        let r = h.brightening(1_150_000).unwrap();
        assert!((r - 1.5).abs() < 1e-3, "{r}");
        // Steady light: no brightening.
        assert!((h.brightening(900_000).unwrap() - 1.0).abs() < 1e-3);
    }

    #[test]
    fn auto_exposure_hides_the_sun_unless_the_camera_reports_its_exposure() {
        // Auto-exposure keeps the frames at 100 while the sun, out at
        // 1000 s, doubles the light: the camera halves its exposure.
        let feed = |report: bool| {
            let mut h = LightHistory::new();
            for t in (0..1_400_000).step_by(500) {
                let exposure = if t < 1_000_000 { 20_000.0 } else { 10_000.0 };
                h.push(&GrayFrame {
                    exposure: report.then_some(exposure),
                    ..frame(t, 100)
                });
            }
            h
        };
        let hidden = feed(false).brightening(1_150_000).unwrap();
        assert!((hidden - 1.0).abs() < 1e-3, "{hidden}");
        // Reported: twice the light, as a fixed exposure's luma shows it.
        let seen = feed(true).brightening(1_150_000).unwrap();
        assert!((seen - 2f32.powf(1.0 / 2.2)).abs() < 1e-3, "{seen}");
        // A frame without an exposure among reported ones keeps the last.
        let mut h = feed(true);
        h.push(&frame(1_400_000, 100));
        assert!(h.bins.back().is_some_and(|b| b.mean() > 130.0));
        // Nonsense exposures are ignored.
        let mut h = LightHistory::new();
        for e in [0.0, -1.0, f32::NAN, f32::INFINITY] {
            h.push(&GrayFrame {
                exposure: Some(e),
                ..frame(0, 100)
            });
        }
        assert_eq!(h.reference_exposure, None);
        assert!((h.bins[0].mean() - 100.0).abs() < 1e-9);
    }

    #[test]
    fn the_sun_out_shortly_before_the_rise_counts_in_full() {
        let mut h = LightHistory::new();
        // The sun comes out 10 s before the rise is found: the light then
        // holds for half a minute at 1.18 times the cloud's.
        feed(&mut h, 0, 1400, |t| if t < 1140 { 100 } else { 118 });
        let r = h.brightening(1_150_000).unwrap();
        assert!((r - 1.18).abs() < 1e-3, "{r}");
        // Light that came 20 s after the heat began did not cause it.
        let mut h = LightHistory::new();
        feed(&mut h, 0, 1400, |t| if t < 1170 { 100 } else { 130 });
        assert!((h.brightening(1_150_000).unwrap() - 1.0).abs() < 1e-3);
        // A flash of 10 s at the rise is not light held.
        let mut h = LightHistory::new();
        feed(&mut h, 0, 1400, |t| {
            if (1140..1150).contains(&t) { 250 } else { 100 }
        });
        assert!((h.brightening(1_150_000).unwrap() - 1.0).abs() < 1e-3);
    }

    #[test]
    fn a_passing_shadow_is_not_the_dimmest_minute() {
        let mut h = LightHistory::new();
        // 20 s of shadow at 500 s in a steady light.
        feed(&mut h, 0, 1400, |t| {
            if (500..520).contains(&t) { 40 } else { 100 }
        });
        let r = h.brightening(1_000_000).unwrap();
        // The darkest minute holds the shadow: 100 over (40 * 2 + 100 * 4) / 6.
        assert!((r - 1.25).abs() < 1e-3, "{r}");
        // A minute-long cloud counts in full.
        let mut h = LightHistory::new();
        feed(&mut h, 0, 1400, |t| {
            if (500..560).contains(&t) { 40 } else { 100 }
        });
        assert!((h.brightening(1_000_000).unwrap() - 2.5).abs() < 1e-3);
    }

    #[test]
    fn dimming_is_not_a_brightening() {
        let mut h = LightHistory::new();
        feed(&mut h, 0, 1400, |t| if t < 1000 { 120 } else { 80 });
        assert!(h.brightening(1_150_000).unwrap() <= 1.0);
    }

    #[test]
    fn no_frames_no_verdict() {
        let mut h = LightHistory::new();
        assert_eq!(h.brightening(1_000_000), None);
        // Frames only after the rise: nothing to compare with.
        feed(&mut h, 990, 1100, |_| 100);
        assert_eq!(h.brightening(1_000_000), None);
        // Frames only long before: nothing at the rise.
        let mut h = LightHistory::new();
        feed(&mut h, 0, 300, |_| 100);
        assert_eq!(h.brightening(1_000_000), None);
        // A frame every 20 s (a camera on demand): no minute of frames.
        let mut h = LightHistory::new();
        for t in (0..1_100_000).step_by(20_000) {
            h.push(&frame(t, 100));
        }
        assert_eq!(h.brightening(1_000_000), None);
    }

    #[test]
    fn darkness_is_floored() {
        let mut h = LightHistory::new();
        // Night (black frames) then an IR illuminator at 30.
        feed(&mut h, 0, 1400, |t| if t < 1000 { 0 } else { 30 });
        let r = h.brightening(1_150_000).unwrap();
        assert!((r - 30.0 / 8.0).abs() < 1e-3, "{r}");
    }

    #[test]
    fn times_at_the_ends_of_the_range_do_not_overflow() {
        let mut h = LightHistory::new();
        h.push(&frame(i64::MIN, 100));
        h.push(&frame(i64::MIN + 1, 100));
        assert_eq!(h.brightening(i64::MIN), None);
        let top = i64::MAX - 1_000_000;
        for k in 0..2_000 {
            h.push(&frame(top + k * 500, 100));
        }
        assert_eq!(h.brightening(i64::MAX), Some(1.0));
        assert_eq!(h.brightening(0), None);
    }

    #[test]
    fn old_bins_are_dropped_and_late_frames_ignored() {
        let mut h = LightHistory::new();
        feed(&mut h, 0, 8000, |_| 100);
        assert!(h.bins.len() as i64 <= KEEP_MS / BIN_MS + 1);
        let n = h.bins.len();
        h.push(&frame(1_000, 250));
        h.push(&GrayFrame {
            t_ms: 9_000_000,
            width: 0,
            height: 0,
            luma: Vec::new(),
            exposure: None,
        });
        assert_eq!(h.bins.len(), n);
        // The first 800 s are gone.
        assert_eq!(h.brightening(500_000), None);
        assert!(h.brightening(1_000_000).is_some());
    }
}
