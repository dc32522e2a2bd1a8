//! The audio trigger: short-time spectra in log-spaced bands, a per-band
//! model of what is not an event ([`crate::band_noise`]: floor, wind share,
//! usual spread), spectral-flux onsets, and activations with hysteresis.
//!
//! Each band's *margin* is how far its smoothed level stands above its floor
//! once the part that wind explains and the band's usual fluctuation are
//! taken off. Steady sound (a running machine's hum, constant rain or wind)
//! becomes floor within a minute; gusts teach the bands they reach to expect
//! them, without deafening the others; calls, speech, knocks and a change
//! in a machine's sound stand out in the bands where they are.
//!
//! The largest margin opens an activation at `on_db`. A sound that starts
//! abruptly (a call, a word, a knock) also opens one at the lower
//! `onset_on_db`: an onset is a frame whose spectral flux (the summed rise of
//! the band levels over one frame length, beyond a noise slack, dB) exceeds
//! its own running mean by `onset_k` running deviations. The flux statistics
//! adapt like the floor, so rain's constant patter raises the bar instead of
//! firing it. An activation's features come only from the bands above
//! `off_db`.
//!
//! A gap in the stream (the microphone stopped by the duty cycle, or out
//! and reopened) ends whatever activation was open, and the first
//! [`RESTART_SETTLE_MS`] after it only restart the framing, the level
//! smoothing and the flux history: a device's start-up transient teaches
//! the noise model nothing and opens nothing, and the flux is never taken
//! across the gap, so the sound after a gap is not an onset because it
//! differs from the sound before it.

use std::sync::Arc;

use realfft::{RealFftPlanner, RealToComplex};

use crate::activation::{Activation, AudioFeatures, Features};
use crate::band_noise::{BandNoise, WARMUP_S};
use crate::config::AudioTriggerConfig;
use crate::{AudioChunk, Modality};

/// Coarse bands for the features: low, mid, high.
const COARSE_EDGES_HZ: [f32; 4] = [80.0, 300.0, 2000.0, f32::MAX];
/// Analysis bands are log-spaced from here, at least this many bins wide.
const LOWEST_HZ: f32 = 80.0;
const BANDS: usize = 16;
const MIN_BINS: usize = 8;
/// Weight of the newest frame in the smoothed band level.
const LEVEL_SMOOTHING: f32 = 0.3;
/// Time constant of the flux statistics (running mean and deviation), s.
const FLUX_TAU_S: f32 = 4.0;
/// A band's rise counts towards the flux only beyond this many times its own
/// running mean absolute rise (how much it wobbles frame to frame in noise).
const FLUX_BAND_SLACK: f32 = 2.5;
/// A flux below this is never an onset, dB.
const FLUX_MIN_DB: f32 = 6.0;
/// A margin of at least `onset_on_db` held this long also opens an
/// activation, s: a machine's fault that develops over seconds has no onset
/// but does not go away.
const SUSTAIN_S: f32 = 1.5;
/// An onset lets an activation open at `onset_on_db` for this long after it,
/// ms: the smoothed level needs a few frames to climb.
const ONSET_WINDOW_MS: i64 = 150;
/// After a gap in the stream, this long of audio only restarts the
/// analysis, ms: a MEMS microphone starts within tens of milliseconds and a
/// USB audio device's first buffers may hold its start-up transient.
pub const RESTART_SETTLE_MS: i64 = 250;
/// A chunk starting this far from where the previous one ended is a gap, ms.
const GAP_MS: f64 = 50.0;

/// Log-spaced analysis bands over `bins` FFT bins: `(first bin, end bin)`.
fn analysis_bands(rate: u32, n: usize) -> Vec<(usize, usize)> {
    let bins = n / 2 + 1;
    let hz_per_bin = rate as f32 / n as f32;
    let first = ((LOWEST_HZ / hz_per_bin).ceil() as usize).max(1);
    let ratio = (bins as f32 / first as f32).powf(1.0 / BANDS as f32);
    let mut out = Vec::new();
    let mut lo = first;
    let mut edge = first as f32;
    while lo < bins {
        edge *= ratio;
        let hi = (edge.round() as usize).max(lo + MIN_BINS).min(bins);
        if bins - hi < MIN_BINS {
            out.push((lo, bins));
            break;
        }
        out.push((lo, hi));
        lo = hi;
    }
    out
}

struct Open {
    start_ms: i64,
    last_above_ms: i64,
    confirmed: bool,
    peak_snr: f32,
    // Energy-weighted accumulators.
    energy: f64,
    hz_sum: f64,
    band: [f64; 3],
    flat_sum: f64,
    frames: u32,
    // Envelope peak counting.
    env_prev: f32,
    env_rising: bool,
    peaks: u32,
}

/// The audio trigger for one stream.
pub struct AudioTrigger {
    cfg: AudioTriggerConfig,
    rate: u32,
    n: usize,
    hop: usize,
    fft: Arc<dyn RealToComplex<f32>>,
    window: Vec<f32>,
    buf: Vec<f32>,
    /// Time of `buf[0]`, ms (fractional).
    buf_start_ms: f64,
    scratch_in: Vec<f32>,
    spectrum: Vec<realfft::num_complex::Complex<f32>>,
    fft_scratch: Vec<realfft::num_complex::Complex<f32>>,
    bands: Vec<(usize, usize)>,
    /// Coarse band (low/mid/high) of each analysis band.
    coarse: Vec<usize>,
    /// Smoothed band level, dB.
    level_db: Vec<f32>,
    /// Band power of the current frame.
    power: Vec<f64>,
    /// Each band's excess beyond floor, wind and spread, dB.
    margin_db: Vec<f32>,
    noise: BandNoise,
    /// Unsmoothed band levels of the previous two frames, dB (the flux
    /// compares a frame with the one a whole frame length before it, which
    /// does not overlap it).
    prev_db: [Vec<f32>; 2],
    /// Running mean absolute rise of each band, dB.
    wobble_db: Vec<f32>,
    /// Running mean and mean absolute deviation of the spectral flux, dB.
    flux_mean: f32,
    flux_dev: f32,
    onsets_seen: u64,
    last_onset_ms: Option<i64>,
    initialised: bool,
    open: Option<Open>,
    /// Start time of the last analysed frame.
    processed_ms: i64,
    /// Since when the margin has stayed at `onset_on_db` or more, ms.
    sustained_since_ms: Option<i64>,
    /// Where the stream started, ms.
    stream_start_ms: i64,
    out: Vec<Activation>,
    frames_seen: u64,
    /// Where the last chunk ended, ms.
    stream_end_ms: Option<f64>,
    /// After a gap: frames before this time only restart the analysis, and
    /// the frames since the gap (the flux needs two).
    settle_until_ms: Option<i64>,
    frames_since_gap: u64,
    /// Gaps seen in the stream.
    gaps: u64,
    /// Activations confirmed.
    confirmed: u64,
}

impl AudioTrigger {
    /// A trigger for audio at `rate` Hz.
    pub fn new(cfg: &AudioTriggerConfig, rate: u32) -> Self {
        let rate = rate.max(1000);
        let want = (cfg.frame_ms / 1000.0 * rate as f32) as usize;
        let n = want.next_power_of_two().clamp(64, 8192);
        let hop = n / 2;
        let fft = RealFftPlanner::<f32>::new().plan_fft_forward(n);
        let window = (0..n)
            .map(|i| 0.5 - 0.5 * (2.0 * std::f32::consts::PI * i as f32 / n as f32).cos())
            .collect();
        let bands = analysis_bands(rate, n);
        let centres: Vec<f32> = bands
            .iter()
            .map(|&(lo, hi)| (lo + hi) as f32 / 2.0 * rate as f32 / n as f32)
            .collect();
        let coarse = bands
            .iter()
            .map(|&(lo, hi)| {
                let hz = (lo + hi) as f32 / 2.0 * rate as f32 / n as f32;
                (0..3).find(|&b| hz < COARSE_EDGES_HZ[b + 1]).unwrap_or(2)
            })
            .collect();
        AudioTrigger {
            cfg: cfg.clone(),
            rate,
            n,
            hop,
            scratch_in: vec![0.0; n],
            spectrum: fft.make_output_vec(),
            fft_scratch: fft.make_scratch_vec(),
            fft,
            window,
            buf: Vec::with_capacity(n * 4),
            buf_start_ms: 0.0,
            level_db: vec![0.0; bands.len()],
            power: vec![0.0; bands.len()],
            margin_db: vec![0.0; bands.len()],
            noise: BandNoise::new(&centres),
            prev_db: [vec![0.0; bands.len()], vec![0.0; bands.len()]],
            wobble_db: vec![0.0; bands.len()],
            flux_mean: 0.0,
            flux_dev: FLUX_MIN_DB / 4.0,
            onsets_seen: 0,
            last_onset_ms: None,
            coarse,
            bands,
            initialised: false,
            open: None,
            processed_ms: i64::MIN,
            stream_start_ms: 0,
            sustained_since_ms: None,
            out: Vec::new(),
            frames_seen: 0,
            stream_end_ms: None,
            settle_until_ms: None,
            frames_since_gap: 0,
            gaps: 0,
            confirmed: 0,
        }
    }

    /// Gaps seen in the stream.
    pub fn gaps(&self) -> u64 {
        self.gaps
    }

    /// Activations confirmed so far (each counted when it has lasted
    /// `min_duration_ms`, while it is still open).
    pub fn confirmed(&self) -> u64 {
        self.confirmed
    }

    /// Feeds a chunk (at the trigger's rate; others are ignored by the detector).
    pub fn push(&mut self, chunk: &AudioChunk) {
        let ms_per_sample = 1000.0 / self.rate as f64;
        let gap = self
            .stream_end_ms
            .is_some_and(|end| (chunk.start_ms as f64 - end).abs() > GAP_MS);
        self.stream_end_ms =
            Some(chunk.start_ms as f64 + chunk.samples.len() as f64 * ms_per_sample);
        if gap && self.frames_seen > 0 {
            // What was open ends where the sound was last heard.
            self.close();
            self.gaps += 1;
            self.settle_until_ms = Some(chunk.start_ms + RESTART_SETTLE_MS);
            self.frames_since_gap = 0;
            self.sustained_since_ms = None;
            self.last_onset_ms = None;
        }
        let expected = self.buf_start_ms + self.buf.len() as f64 * ms_per_sample;
        if self.buf.is_empty() || (chunk.start_ms as f64 - expected).abs() > 50.0 {
            // First chunk, or a gap in the stream: restart framing at the chunk.
            self.buf.clear();
            self.buf_start_ms = chunk.start_ms as f64;
            if self.frames_seen == 0 {
                self.stream_start_ms = chunk.start_ms;
            }
        }
        self.buf.extend(
            chunk
                .samples
                .iter()
                .map(|s| if s.is_finite() { *s } else { 0.0 }),
        );
        let mut pos = 0;
        while pos + self.n <= self.buf.len() {
            let t = self.buf_start_ms + pos as f64 * ms_per_sample;
            self.frame(pos, t as i64);
            pos += self.hop;
        }
        self.buf.drain(..pos);
        self.buf_start_ms += pos as f64 * ms_per_sample;
    }

    fn frame(&mut self, pos: usize, t_ms: i64) {
        for (i, x) in self.scratch_in.iter_mut().enumerate() {
            *x = self.buf[pos + i] * self.window[i];
        }
        if self
            .fft
            .process_with_scratch(
                &mut self.scratch_in,
                &mut self.spectrum,
                &mut self.fft_scratch,
            )
            .is_err()
        {
            return;
        }
        self.frames_seen += 1;
        let hop_s = self.hop as f32 / self.rate as f32;
        let mut flux = 0f32;
        // Frames since a gap (1 for the first), while settling after one:
        // the flux compares a frame with one two frames back, so it needs
        // two frames after the gap; the smoothing restarts at the first.
        let after_gap = self.settle_until_ms.map(|_| self.frames_since_gap + 1);
        let no_flux = after_gap.is_some_and(|k| k <= 2);
        for (b, &(lo, hi)) in self.bands.iter().enumerate() {
            let p: f64 = self.spectrum[lo..hi]
                .iter()
                .map(|c| f64::from(c.norm_sqr()))
                .sum::<f64>()
                + 1e-12;
            self.power[b] = p;
            let l = 10.0 * p.log10() as f32;
            if self.frames_seen > 2 && !no_flux {
                let rise = l - self.prev_db[1][b];
                flux += (rise - FLUX_BAND_SLACK * self.wobble_db[b]).max(0.0);
                let a = (hop_s / FLUX_TAU_S).max(1.0 / self.frames_seen as f32);
                self.wobble_db[b] += a * (rise.abs().min(20.0) - self.wobble_db[b]);
            }
            self.prev_db[1][b] = self.prev_db[0][b];
            self.prev_db[0][b] = l;
            // Smoothing over a few frames steadies noise-only bands.
            self.level_db[b] = if self.initialised && after_gap != Some(1) {
                self.level_db[b] + (l - self.level_db[b]) * LEVEL_SMOOTHING
            } else {
                l
            };
        }
        if let Some(until) = self.settle_until_ms {
            self.frames_since_gap += 1;
            if t_ms < until || self.frames_since_gap <= 2 {
                // Settling after a gap: levels and flux history only.
                self.processed_ms = t_ms;
                return;
            }
            self.settle_until_ms = None;
        }
        let event_age_s = self
            .open
            .as_ref()
            .filter(|o| o.confirmed)
            .map(|o| (t_ms - o.start_ms) as f32 / 1000.0);
        self.noise.update(
            &self.level_db,
            hop_s,
            self.cfg.floor_rise_db_per_s,
            event_age_s,
            &mut self.margin_db,
        );
        let mut level = 0f32;
        let mut excess_band = [0f64; 3];
        let (mut best_k, mut best_x) = (0usize, 0f64);
        let (mut log_sum, mut lin_sum, mut nx) = (0f64, 0f64, 0u32);
        for (b, &(lo, hi)) in self.bands.iter().enumerate() {
            let margin = self.margin_db[b];
            level = level.max(margin);
            if margin < self.cfg.off_db {
                continue;
            }
            // Only the bands where the excess is describe the sound: their
            // power beyond what floor, wind and spread account for.
            let p = self.power[b];
            let floor_p = p / 10f64.powf(f64::from(margin) / 10.0);
            excess_band[self.coarse[b]] += (p - floor_p).max(0.0);
            let floor_bin = floor_p / (hi - lo) as f64;
            for k in lo..hi {
                let x = f64::from(self.spectrum[k].norm_sqr());
                let excess = x - floor_bin;
                if excess > best_x {
                    best_x = excess;
                    best_k = k;
                }
                log_sum += (x + 1e-12).ln();
                lin_sum += x;
                nx += 1;
            }
        }
        if self.frames_seen > 2 && self.onset(flux, hop_s) {
            self.last_onset_ms = Some(t_ms);
        }
        let onset = self
            .last_onset_ms
            .is_some_and(|o| t_ms - o <= ONSET_WINDOW_MS);
        self.initialised = true;
        let flatness = if nx > 1 && lin_sum > 0.0 {
            let n = f64::from(nx);
            ((log_sum / n).exp() / (lin_sum / n)).min(1.0) as f32
        } else {
            1.0
        };
        self.processed_ms = t_ms;
        let frame_end = t_ms + (self.n as i64 * 1000) / i64::from(self.rate);
        let hz = best_k as f32 * self.rate as f32 / self.n as f32;
        let min_dur = i64::from(self.cfg.min_duration_ms);
        let warming_up = (t_ms - self.stream_start_ms) as f32 / 1000.0 < WARMUP_S;
        if level >= self.cfg.onset_on_db {
            self.sustained_since_ms.get_or_insert(t_ms);
        } else {
            self.sustained_since_ms = None;
        }
        let sustained = self
            .sustained_since_ms
            .filter(|&s| (t_ms - s) as f32 / 1000.0 >= SUSTAIN_S);
        let hang = i64::from(self.cfg.hangover_ms);
        match self.open.as_mut() {
            None if !warming_up
                && (level >= self.cfg.on_db
                    || (onset && level >= self.cfg.onset_on_db)
                    || sustained.is_some()) =>
            {
                self.open = Some(Open {
                    start_ms: sustained.unwrap_or(t_ms),
                    last_above_ms: frame_end,
                    confirmed: false,
                    peak_snr: level,
                    energy: 0.0,
                    hz_sum: 0.0,
                    band: [0.0; 3],
                    flat_sum: 0.0,
                    frames: 0,
                    env_prev: level,
                    env_rising: true,
                    peaks: 0,
                });
            }
            None => {}
            Some(o) => {
                if level >= self.cfg.off_db {
                    o.last_above_ms = frame_end;
                } else if !o.confirmed {
                    // Too short to count: drop the candidate.
                    self.open = None;
                    return;
                }
            }
        }
        let Some(o) = self.open.as_mut() else { return };
        if level >= self.cfg.off_db {
            let e: f64 = excess_band.iter().sum();
            o.energy += e;
            o.hz_sum += e * f64::from(hz);
            for (acc, x) in o.band.iter_mut().zip(excess_band) {
                *acc += x;
            }
            o.flat_sum += f64::from(flatness);
            o.frames += 1;
            o.peak_snr = o.peak_snr.max(level);
        }
        // Envelope peaks: a rise followed by a fall of at least 4 dB.
        if o.env_rising && level < o.env_prev - 4.0 {
            o.peaks += 1;
            o.env_rising = false;
            o.env_prev = level;
        } else if !o.env_rising && level > o.env_prev + 4.0 {
            o.env_rising = true;
            o.env_prev = level;
        } else if (o.env_rising && level > o.env_prev) || (!o.env_rising && level < o.env_prev) {
            o.env_prev = level;
        }
        let newly = !o.confirmed && o.last_above_ms - o.start_ms >= min_dur;
        o.confirmed |= newly;
        let ended = o.confirmed && frame_end - o.last_above_ms > hang;
        if newly {
            self.confirmed += 1;
        }
        if ended {
            self.close();
        }
    }

    /// Whether a frame with this spectral flux is an onset; updates the
    /// running statistics with frames that are not (an onset must not raise
    /// the bar for the next syllable).
    fn onset(&mut self, flux: f32, hop_s: f32) -> bool {
        // Learn the statistics first: no onset before a time constant of flux.
        let learned = (self.frames_seen as f32) * hop_s >= FLUX_TAU_S;
        let threshold = (self.flux_mean + self.cfg.onset_k * self.flux_dev).max(FLUX_MIN_DB);
        let onset = learned && flux > threshold;
        if onset {
            self.onsets_seen += 1;
        } else {
            // A plain average while learning, then exponential forgetting.
            let a = (hop_s / FLUX_TAU_S).max(1.0 / self.frames_seen.max(1) as f32);
            self.flux_mean += a * (flux - self.flux_mean);
            self.flux_dev += a * ((flux - self.flux_mean).abs() - self.flux_dev);
        }
        onset
    }

    fn close(&mut self) {
        let Some(o) = self.open.take() else { return };
        if !o.confirmed {
            return;
        }
        let e = o.energy.max(1e-12);
        let dur_s = ((o.last_above_ms - o.start_ms).max(1) as f32) / 1000.0;
        let features = AudioFeatures {
            peak_snr_db: o.peak_snr,
            peak_hz: (o.hz_sum / e) as f32,
            band_share: std::array::from_fn(|b| (o.band[b] / e) as f32),
            flatness: (o.flat_sum / f64::from(o.frames.max(1))) as f32,
            modulation_hz: o.peaks as f32 / dur_s,
        };
        let score = ((o.peak_snr - self.cfg.off_db) / 30.0).clamp(0.05, 1.0);
        self.out.push(Activation {
            modality: Modality::Audio,
            start_ms: o.start_ms,
            end_ms: o.last_above_ms,
            score,
            features: Features::Audio(features),
        });
    }

    /// Closes whatever is open (end of input).
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

    /// Frames analysed.
    pub fn frames(&self) -> u64 {
        self.frames_seen
    }

    /// The per-band noise model.
    pub fn noise(&self) -> &BandNoise {
        &self.noise
    }

    /// Smoothed band levels of the last frame, dB.
    pub fn levels_db(&self) -> &[f32] {
        &self.level_db
    }

    /// Each band's margin in the last frame: its excess beyond floor, wind
    /// share and usual spread, dB.
    pub fn margins_db(&self) -> &[f32] {
        &self.margin_db
    }

    /// Frames whose band levels rose in the shape of wind.
    pub fn windy_frames(&self) -> u64 {
        self.noise.windy_frames()
    }

    /// Onsets found so far (spectral-flux peaks above the adaptive threshold).
    pub fn onsets(&self) -> u64 {
        self.onsets_seen
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    fn noise(rng: &mut rand_chacha::ChaCha8Rng, n: usize, amp: f32) -> Vec<f32> {
        (0..n)
            .map(|_| (rng.random::<f32>() - 0.5) * 2.0 * amp)
            .collect()
    }

    fn run(samples: &[f32]) -> Vec<Activation> {
        run_with(&AudioTriggerConfig::default(), samples).0
    }

    /// Feeds 16 kHz `samples` in 500 ms chunks; the activations and the
    /// number of onsets.
    pub(super) fn run_with(cfg: &AudioTriggerConfig, samples: &[f32]) -> (Vec<Activation>, u64) {
        let mut t = AudioTrigger::new(cfg, 16_000);
        for (i, c) in samples.chunks(8000).enumerate() {
            t.push(&AudioChunk {
                start_ms: i as i64 * 500,
                sample_rate: 16_000,
                samples: c.to_vec(),
            });
        }
        t.finish();
        let onsets = t.onsets();
        (t.take(), onsets)
    }

    #[test]
    fn a_chirp_over_noise_triggers_with_its_frequency() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let mut x = noise(&mut rng, 16_000 * 20, 0.01);
        // 0.4 s chirp 3.0 -> 3.6 kHz at t = 15 s.
        let mut phase = 0f32;
        for i in 0..6400 {
            let f = 3000.0 + 600.0 * i as f32 / 6400.0;
            phase += 2.0 * std::f32::consts::PI * f / 16_000.0;
            x[240_000 + i] += 0.2 * phase.sin();
        }
        let acts = run(&x);
        assert_eq!(acts.len(), 1, "{acts:?}");
        let a = &acts[0];
        assert!(
            (14_900..=15_100).contains(&a.start_ms) && a.end_ms < 16_000,
            "{a:?}"
        );
        let Features::Audio(f) = a.features else {
            panic!()
        };
        assert!((2900.0..3700.0).contains(&f.peak_hz), "{f:?}");
        assert!(f.band_share[2] > 0.8 && f.flatness < 0.3, "{f:?}");
    }

    #[test]
    fn steady_sound_becomes_the_floor() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(2);
        let n = 16_000 * 120;
        let x: Vec<f32> = (0..n)
            .map(|i| {
                0.1 * (2.0 * std::f32::consts::PI * 50.0 * i as f32 / 16_000.0).sin()
                    + (rng.random::<f32>() - 0.5) * 0.02
            })
            .collect();
        let acts = run(&x);
        // The hum is there from the first frame: it is the floor, nothing triggers.
        assert!(acts.is_empty(), "{acts:?}");
    }

    /// Noise, a gap (the microphone stopped), then the same place again
    /// starting with a device's start-up thump, and a chirp 5 s later.
    fn gap_scene(thump: bool) -> (AudioTrigger, Vec<f32>, Vec<f32>) {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        let mut t = AudioTrigger::new(&AudioTriggerConfig::default(), 16_000);
        let push = |t: &mut AudioTrigger, start_ms: i64, x: &[f32]| {
            for (i, c) in x.chunks(8000).enumerate() {
                t.push(&AudioChunk {
                    start_ms: start_ms + i as i64 * 500,
                    sample_rate: 16_000,
                    samples: c.to_vec(),
                });
            }
        };
        push(&mut t, 0, &noise(&mut rng, 16_000 * 20, 0.01));
        let before = t.noise.floors().to_vec();
        let mut after = noise(&mut rng, 16_000 * 10, 0.01);
        if thump {
            // 100 ms: a step decaying with a ring, at -6 dBFS.
            for (i, x) in after.iter_mut().take(1600).enumerate() {
                let s = i as f32 / 16_000.0;
                *x += 0.5
                    * (-s * 40.0).exp()
                    * (1.0 + (2.0 * std::f32::consts::PI * 900.0 * s).sin());
            }
        }
        let mut phase = 0f32;
        for i in 0..6400 {
            let f = 3000.0 + 600.0 * i as f32 / 6400.0;
            phase += 2.0 * std::f32::consts::PI * f / 16_000.0;
            after[80_000 + i] += 0.2 * phase.sin();
        }
        // Listening again 20 s later.
        push(&mut t, 40_000, &after[..16_000 * 4]);
        let settled = t.noise.floors().to_vec();
        push(&mut t, 44_000, &after[16_000 * 4..]);
        t.finish();
        (t, before, settled)
    }

    #[test]
    fn a_gap_is_no_onset_and_the_restart_teaches_the_floors_nothing() {
        let (mut t, before, settled) = gap_scene(true);
        assert_eq!(t.gaps(), 1);
        let acts = t.take();
        // Only the chirp at 45 s: neither the restart nor its thump.
        assert_eq!(acts.len(), 1, "{acts:?}");
        assert!(
            (44_900..=45_100).contains(&acts[0].start_ms),
            "{:?}",
            acts[0]
        );
        for (b, (x, y)) in before.iter().zip(&settled).enumerate() {
            assert!(
                (x - y).abs() < 1.5,
                "band {b}: floor {x} dB before, {y} dB after"
            );
        }
        // The same thump inside a stream is a sound like any other.
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(6);
        let mut x = noise(&mut rng, 16_000 * 20, 0.01);
        for (i, v) in x[16_000 * 15..].iter_mut().take(1600).enumerate() {
            let s = i as f32 / 16_000.0;
            *v += 0.5 * (-s * 40.0).exp() * (1.0 + (2.0 * std::f32::consts::PI * 900.0 * s).sin());
        }
        let acts = run(&x);
        assert_eq!(acts.len(), 1, "{acts:?}");
    }

    #[test]
    fn nan_samples_and_gaps_do_not_panic() {
        let mut t = AudioTrigger::new(&AudioTriggerConfig::default(), 16_000);
        t.push(&AudioChunk {
            start_ms: 0,
            sample_rate: 16_000,
            samples: vec![f32::NAN; 4000],
        });
        t.push(&AudioChunk {
            start_ms: 10_000,
            sample_rate: 16_000,
            samples: vec![f32::INFINITY; 4000],
        });
        t.push(&AudioChunk {
            start_ms: 5_000,
            sample_rate: 16_000,
            samples: vec![],
        });
        t.finish();
    }
}

#[cfg(test)]
mod onset_tests {
    use super::tests::run_with as run;
    use super::*;
    use rand::{Rng, SeedableRng};

    /// 20 s of white noise with a 2-4 kHz band of partials (a broadband
    /// call) of total amplitude `amp` from 10 s to 11 s, reaching full
    /// amplitude after `fade_ms`.
    fn scene(amp: f32, fade_ms: u32) -> Vec<f32> {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let fade = (fade_ms as usize * 16).max(1);
        let partials: Vec<(f32, f32)> = (0..41)
            .map(|p| (2000.0 + 50.0 * p as f32, p as f32 * 2.4))
            .collect();
        let per = amp / (partials.len() as f32).sqrt();
        (0..16_000 * 20)
            .map(|i| {
                let noise = (rng.random::<f32>() - 0.5) * 0.02;
                let k = i as isize - 160_000;
                let call = if (0..16_000).contains(&k) {
                    let g = (k as f32 / fade as f32).min(1.0);
                    let t = i as f32 / 16_000.0;
                    g * per
                        * partials
                            .iter()
                            .map(|&(f, ph)| (2.0 * std::f32::consts::PI * f * t + ph).sin())
                            .sum::<f32>()
                } else {
                    0.0
                };
                noise + call
            })
            .collect()
    }

    /// Between the onset level (7 dB) and the energy level (10 dB): only
    /// its abrupt start can open an activation.
    const MODERATE: f32 = 0.007;

    #[test]
    fn an_abrupt_call_opens_at_the_onset_level() {
        let (acts, _) = run(&AudioTriggerConfig::default(), &scene(MODERATE, 0));
        assert_eq!(acts.len(), 1, "{acts:?}");
        assert!((9_900..=10_100).contains(&acts[0].start_ms), "{acts:?}");
        // Energy alone does not reach on_db: without onsets nothing opens.
        let energy_only = AudioTriggerConfig {
            onset_on_db: AudioTriggerConfig::default().on_db,
            ..AudioTriggerConfig::default()
        };
        let (acts, _) = run(&energy_only, &scene(MODERATE, 0));
        assert!(acts.is_empty(), "{acts:?}");
    }

    #[test]
    fn the_same_sound_swelling_slowly_has_no_onset_and_does_not_open() {
        let (acts, _) = run(&AudioTriggerConfig::default(), &scene(MODERATE, 3000));
        assert!(acts.is_empty(), "{acts:?}");
    }

    #[test]
    fn steady_noise_gives_few_onsets() {
        let (acts, onsets) = run(&AudioTriggerConfig::default(), &scene(0.0, 0));
        assert!(acts.is_empty(), "{acts:?}");
        // 20 s of white noise: the adaptive threshold keeps chance onsets rare.
        assert!(onsets <= 6, "{onsets} onsets in 20 s of noise");
    }
}

#[cfg(test)]
mod wind_tests {
    use super::tests::run_with;
    use super::*;
    use rand::{Rng, SeedableRng};

    const RATE: f32 = 16_000.0;

    /// `seconds` of gusty wind: low-passed noise (most energy below a few
    /// hundred Hz) whose level follows a gust every ~15-25 s lasting 4-8 s,
    /// 20 dB above the lulls, each gust spilling a broadband hiss; over a
    /// faint white floor.
    fn wind(seconds: usize, seed: u64) -> Vec<f32> {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let n = seconds * RATE as usize;
        let mut gusts = Vec::new();
        let mut t = 3.0f32;
        while t < seconds as f32 {
            let len = rng.random_range(4.0..8.0);
            gusts.push((t, len));
            t += len + rng.random_range(10.0..18.0);
        }
        let (mut lp1, mut lp2) = (0f32, 0f32);
        let a = 1.0 - (-2.0 * std::f32::consts::PI * 150.0 / RATE).exp();
        (0..n)
            .map(|i| {
                let t = i as f32 / RATE;
                let g = gusts
                    .iter()
                    .find(|(s, l)| t >= *s && t < s + l)
                    .map_or(0.0, |(s, l)| (std::f32::consts::PI * (t - s) / l).sin());
                let gain = 10f32.powf((20.0 * g - 20.0) / 20.0);
                let w: f32 = rng.random::<f32>() - 0.5;
                lp1 += a * (w - lp1);
                lp2 += a * (lp1 - lp2);
                let hiss = (rng.random::<f32>() - 0.5) * 0.02 * g * g;
                let floor = (rng.random::<f32>() - 0.5) * 0.002;
                2.0 * gain * lp2 + hiss + floor
            })
            .collect()
    }

    /// Adds a 0.5 s call (a 3.0 -> 3.8 kHz sweep) of amplitude `amp` at `at_s`.
    fn call(x: &mut [f32], at_s: f32, amp: f32) {
        let s0 = (at_s * RATE) as usize;
        let mut ph = 0f32;
        for i in 0..8_000 {
            let f = 3000.0 + 800.0 * i as f32 / 8_000.0;
            ph += 2.0 * std::f32::consts::PI * f / RATE;
            let env = (std::f32::consts::PI * i as f32 / 8_000.0).sin();
            if let Some(v) = x.get_mut(s0 + i) {
                *v += amp * env * ph.sin();
            }
        }
    }

    #[test]
    fn gusts_stop_triggering_once_learned() {
        let x = wind(300, 11);
        let (acts, _) = run_with(&AudioTriggerConfig::default(), &x);
        let late: Vec<_> = acts.iter().filter(|a| a.start_ms > 60_000).collect();
        assert!(
            late.len() <= 1,
            "{} activations after the first minute: {late:?}",
            late.len()
        );
    }

    #[test]
    fn calls_during_gusty_wind_are_found() {
        let mut x = wind(300, 12);
        let times: Vec<f32> = (0..9).map(|k| 40.0 + 29.0 * k as f32).collect();
        for &t in &times {
            call(&mut x, t, 0.02);
        }
        let (acts, _) = run_with(&AudioTriggerConfig::default(), &x);
        let found = times
            .iter()
            .filter(|&&t| {
                let ms = (t * 1000.0) as i64;
                acts.iter()
                    .any(|a| a.start_ms <= ms + 600 && a.end_ms >= ms - 100)
            })
            .count();
        assert!(
            found >= 8,
            "{found} of {} calls found: {acts:?}",
            times.len()
        );
        let stray = acts
            .iter()
            .filter(|a| {
                a.start_ms > 60_000
                    && !times
                        .iter()
                        .any(|&t| (a.start_ms - (t * 1000.0) as i64).abs() < 2_000)
            })
            .count();
        assert!(stray <= 1, "{stray} activations away from the calls");
    }
}
