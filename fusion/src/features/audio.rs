//! Audio features of an event: log-mel levels relative to the band noise
//! floor before the event, their spread in time, the modulation of the
//! loudness envelope, and a few spectral statistics.

use std::collections::VecDeque;

use ndarray::{Array1, Array2};
use realfft::RealFftPlanner;

use super::logmel::{LogMel, MEL_BANDS, MelFrame};
use super::stats::{mean, percentile, std_dev};

/// Length of the audio feature vector.
pub const AUDIO_DIM: usize = 3 * MEL_BANDS + 5 + 9;
/// How much audio history is kept: the longest event (`merge.max_event_ms`,
/// 3 minutes by default), the floor before it and the minute or so the
/// detector waits after it (until no heat rise could start before it).
const HORIZON_MS: i64 = 420_000;
/// The noise floor is taken from this long before the event.
const FLOOR_WINDOW_MS: i64 = 60_000;
/// Modulation bands of the loudness envelope, Hz.
const MOD_BANDS_HZ: [(f32, f32); 5] = [
    (0.5, 2.0),
    (2.0, 4.0),
    (4.0, 8.0),
    (8.0, 16.0),
    (16.0, 32.0),
];
/// A frame is active when its loudness is this far above the floor, dB.
const ACTIVE_DB: f32 = 6.0;

/// Recent log-mel frames.
pub struct AudioHistory {
    logmel: Option<LogMel>,
    frames: VecDeque<MelFrame>,
}

impl Default for AudioHistory {
    fn default() -> Self {
        AudioHistory::new()
    }
}

impl AudioHistory {
    /// Empty history.
    pub fn new() -> Self {
        AudioHistory {
            logmel: None,
            frames: VecDeque::new(),
        }
    }

    /// Feeds mono samples at `rate` Hz starting at `start_ms`.
    pub fn push(&mut self, start_ms: i64, rate: u32, samples: &[f32]) {
        if self
            .logmel
            .as_ref()
            .is_none_or(|l| l.rate() != rate.max(4000))
        {
            self.logmel = Some(LogMel::new(rate));
        }
        let frames = &mut self.frames;
        if let Some(lm) = self.logmel.as_mut() {
            lm.push(start_ms, samples, |f| {
                if frames.back().is_none_or(|b| f.t_ms > b.t_ms) {
                    frames.push_back(f);
                }
            });
        }
        if let Some(last) = self.frames.back().map(|f| f.t_ms) {
            while self
                .frames
                .front()
                .is_some_and(|f| f.t_ms < last - HORIZON_MS)
            {
                self.frames.pop_front();
            }
        }
    }

    /// Frames kept.
    pub fn len(&self) -> usize {
        self.frames.len()
    }

    /// True when no frame is kept.
    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    fn range(&self, from_ms: i64, to_ms: i64) -> impl Iterator<Item = &MelFrame> {
        let start = self.frames.partition_point(|f| f.t_ms < from_ms);
        self.frames
            .range(start..)
            .take_while(move |f| f.t_ms < to_ms)
    }

    /// Features of `[start_ms, end_ms)`, or `None` when less than a quarter
    /// of it (or fewer than 4 frames) was heard.
    pub fn features(&self, start_ms: i64, end_ms: i64) -> Option<Vec<f32>> {
        let frame_ms = self.logmel.as_ref().map_or(32.0, |l| l.frame_ms());
        let ev: Vec<&MelFrame> = self.range(start_ms, end_ms.max(start_ms + 1)).collect();
        let span_frames = ((end_ms - start_ms).max(1) as f64 / frame_ms).ceil();
        if ev.len() < 4 || (ev.len() as f64) < span_frames * 0.25 {
            return None;
        }
        let before: Vec<&MelFrame> = self
            .range(start_ms - FLOOR_WINDOW_MS, start_ms - 1000)
            .collect();
        let floor_src: &[&MelFrame] = if before.len() >= 50 { &before } else { &ev };
        let levels = |frames: &[&MelFrame]| {
            Array2::from_shape_fn((frames.len(), MEL_BANDS), |(i, b)| frames[i].mel_db[b])
        };
        // Each band's floor: the 20th percentile of its level before the event.
        let floor: Array1<f32> = levels(floor_src)
            .columns()
            .into_iter()
            .map(|c| percentile(&mut c.to_vec(), 0.2))
            .collect();
        // Each band's excess over its floor during the event, frames x bands.
        let excess = levels(&ev) - &floor;
        let mut out = Vec::with_capacity(AUDIO_DIM);
        let mut p90 = Vec::with_capacity(MEL_BANDS);
        let mut sd = Vec::with_capacity(MEL_BANDS);
        for band in excess.columns() {
            let mut col = band.to_vec();
            out.push(mean(&col));
            sd.push(std_dev(&col));
            p90.push(percentile(&mut col, 0.9));
        }
        out.extend(p90);
        out.extend(sd);
        // Loudness envelope: total power over the floor's total power, dB.
        let power = |db: &[f32]| db.iter().map(|v| 10f32.powf(v / 10.0)).sum::<f32>();
        let floor_db = 10.0 * power(&floor.to_vec()).max(1e-12).log10();
        let env: Vec<f32> = ev
            .iter()
            .map(|f| (10.0 * power(&f.mel_db).max(1e-12).log10() - floor_db).max(0.0))
            .collect();
        out.extend(modulation(&env, 1000.0 / frame_ms as f32));
        let flat: Vec<f32> = ev.iter().map(|f| f.flatness).collect();
        let cent: Vec<f32> = ev.iter().map(|f| f.centroid_hz / 1000.0).collect();
        let peak: Vec<f32> = ev.iter().map(|f| f.peak_db / 10.0).collect();
        let dcent: Vec<f32> = cent.windows(2).map(|w| (w[1] - w[0]).abs()).collect();
        let active = env.iter().filter(|&&e| e > ACTIVE_DB).count() as f32 / env.len() as f32;
        let mut env_sorted = env.clone();
        out.extend([
            mean(&flat),
            std_dev(&flat),
            mean(&cent),
            std_dev(&cent),
            mean(&dcent),
            mean(&peak),
            active,
            ((end_ms - start_ms).max(100) as f32 / 1000.0).log2(),
            percentile(&mut env_sorted, 0.95) / 10.0,
        ]);
        debug_assert_eq!(out.len(), AUDIO_DIM);
        Some(
            out.into_iter()
                .map(|v| if v.is_finite() { v } else { 0.0 })
                .collect(),
        )
    }
}

/// Share of the envelope's (mean-removed) power in each modulation band.
fn modulation(env: &[f32], fps: f32) -> [f32; 5] {
    let mut out = [0f32; 5];
    if env.len() < 8 {
        return out;
    }
    let n = env.len().next_power_of_two();
    let m = mean(env);
    let mut input: Vec<f32> = env.iter().map(|v| v - m).collect();
    input.resize(n, 0.0);
    let fft = RealFftPlanner::<f32>::new().plan_fft_forward(n);
    let mut spec = fft.make_output_vec();
    if fft.process(&mut input, &mut spec).is_err() {
        return out;
    }
    let hz_per_bin = fps / n as f32;
    let mut total = 0.0f32;
    for (k, c) in spec.iter().enumerate().skip(1) {
        let hz = k as f32 * hz_per_bin;
        let p = c.norm_sqr();
        total += p;
        if let Some(b) = MOD_BANDS_HZ
            .iter()
            .position(|&(lo, hi)| hz >= lo && hz < hi)
        {
            out[b] += p;
        }
    }
    if total > 0.0 {
        for v in &mut out {
            *v /= total;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn noise(seed: &mut u32, amp: f32) -> f32 {
        *seed ^= *seed << 13;
        *seed ^= *seed >> 17;
        *seed ^= *seed << 5;
        (*seed as f32 / u32::MAX as f32 - 0.5) * amp
    }

    #[test]
    fn a_call_over_noise_stands_above_the_floor_in_its_band() {
        let rate = 16_000;
        let mut h = AudioHistory::new();
        let mut s = 7u32;
        // 70 s of quiet noise, then 3 s of a 4 kHz call pulsing at 5 Hz.
        for sec in 0..73i64 {
            let buf: Vec<f32> = (0..rate)
                .map(|i| {
                    let t = i as f32 / rate as f32;
                    let call = if sec >= 70 && (t * 5.0).fract() < 0.5 {
                        0.3 * (2.0 * std::f32::consts::PI * 4000.0 * t).sin()
                    } else {
                        0.0
                    };
                    noise(&mut s, 0.01) + call
                })
                .collect();
            h.push(sec * 1000, rate, &buf);
        }
        let f = h.features(70_000, 73_000).unwrap_or_default();
        assert_eq!(f.len(), AUDIO_DIM);
        let means = &f[..MEL_BANDS];
        let best = (0..MEL_BANDS)
            .max_by(|&a, &b| means[a].total_cmp(&means[b]))
            .unwrap_or(0);
        assert!(best > MEL_BANDS * 2 / 3, "loudest band {best}");
        assert!(means[best] > 20.0, "{}", means[best]);
        // The 5 Hz pulsing lands in the 4..8 Hz modulation band.
        let m = &f[3 * MEL_BANDS..3 * MEL_BANDS + 5];
        let top = (0..5).max_by(|&a, &b| m[a].total_cmp(&m[b])).unwrap_or(0);
        assert_eq!(top, 2, "modulation {m:?}");
        // Before the call, nothing stands out (noise sits a few dB above
        // its 20th percentile), and the lowest band did not move.
        let q = h.features(60_000, 63_000).unwrap_or_default();
        assert!(q[..MEL_BANDS].iter().all(|v| v.abs() < 6.0), "{q:?}");
        assert!(
            (means[0] - q[0]).abs() < 2.0,
            "low band moved: {} vs {}",
            means[0],
            q[0]
        );
    }

    #[test]
    fn too_little_audio_gives_none() {
        let mut h = AudioHistory::new();
        h.push(0, 16_000, &[0.1; 1600]);
        assert_eq!(h.features(0, 10_000), None);
        assert_eq!(h.features(50_000, 60_000), None);
    }
}
