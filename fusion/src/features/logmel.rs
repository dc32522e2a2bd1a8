//! Log-mel spectrogram frames from mono audio, streamed.
//!
//! Frames are `n` samples long (the power of two nearest 32 ms) with no
//! overlap, Hann-windowed; each gives [`MEL_BANDS`] log-mel powers in dB plus
//! three per-frame scalars (spectral flatness, centroid, peakiness). The FFT is
//! `realfft` (a thin real-input wrapper over `rustfft`).

use std::sync::Arc;

use realfft::num_complex::Complex;
use realfft::{RealFftPlanner, RealToComplex};

/// Mel bands per frame.
pub const MEL_BANDS: usize = 32;
/// Lowest band edge, Hz.
const FMIN_HZ: f32 = 60.0;
/// Highest band edge, Hz. The bands are the same at every sample rate, so
/// a feature means one frequency range whatever the microphone's rate; at
/// rates below about 15.2 kHz the bands above Nyquist see no bins and stay
/// at the power floor, as silence would.
const FMAX_HZ: f32 = 7600.0;
/// Power floor before the logarithm (-120 dB re full scale).
const POWER_EPS: f32 = 1e-12;

/// One analysed frame.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MelFrame {
    /// Start time of the frame, ms since the Unix epoch.
    pub t_ms: i64,
    /// Log-mel power, dB re full scale.
    pub mel_db: [f32; MEL_BANDS],
    /// Geometric over arithmetic mean of the power spectrum, 0..1 (1 = noise).
    pub flatness: f32,
    /// Power-weighted mean frequency, Hz.
    pub centroid_hz: f32,
    /// Strongest bin over the mean bin power, dB (tonal sounds are high).
    pub peak_db: f32,
}

fn hz_to_mel(hz: f32) -> f32 {
    2595.0 * (1.0 + hz / 700.0).log10()
}

fn mel_to_hz(mel: f32) -> f32 {
    700.0 * (10f32.powf(mel / 2595.0) - 1.0)
}

/// Triangular mel filters from [`FMIN_HZ`] to [`FMAX_HZ`]: for each band,
/// `(first bin, weights)`; no weights for a band that starts above Nyquist.
fn mel_filters(rate: u32, n: usize) -> Vec<(usize, Vec<f32>)> {
    let bins = n / 2 + 1;
    let hz_per_bin = rate as f32 / n as f32;
    let (mlo, mhi) = (hz_to_mel(FMIN_HZ), hz_to_mel(FMAX_HZ));
    let edges: Vec<f32> = (0..MEL_BANDS + 2)
        .map(|i| mel_to_hz(mlo + (mhi - mlo) * i as f32 / (MEL_BANDS + 1) as f32) / hz_per_bin)
        .collect();
    (0..MEL_BANDS)
        .map(|b| {
            let (lo, mid, hi) = (edges[b], edges[b + 1], edges[b + 2]);
            if lo >= (bins - 1) as f32 {
                return (0, Vec::new());
            }
            let first = (lo.floor() as usize).min(bins - 1);
            let last = (hi.ceil() as usize).min(bins - 1);
            let mut w: Vec<f32> = (first..=last)
                .map(|k| {
                    let k = k as f32;
                    if k <= mid {
                        ((k - lo) / (mid - lo).max(1e-6)).max(0.0)
                    } else {
                        ((hi - k) / (hi - mid).max(1e-6)).max(0.0)
                    }
                })
                .collect();
            // A band narrower than a bin still sees its nearest bin.
            if w.iter().all(|&x| x <= 0.0) {
                let near = (mid.round() as usize).clamp(first, last);
                w[near - first] = 1.0;
            }
            (first, w)
        })
        .collect()
}

/// Streaming log-mel analysis at one sample rate.
pub struct LogMel {
    rate: u32,
    n: usize,
    fft: Arc<dyn RealToComplex<f32>>,
    window: Vec<f32>,
    filters: Vec<(usize, Vec<f32>)>,
    buf: Vec<f32>,
    /// Time of `buf[0]`, ms (fractional), if any samples are buffered.
    buf_start_ms: Option<f64>,
    input: Vec<f32>,
    spectrum: Vec<Complex<f32>>,
    scratch: Vec<Complex<f32>>,
    power: Vec<f32>,
}

impl LogMel {
    /// An analyser for audio at `rate` Hz (at least 4 kHz).
    pub fn new(rate: u32) -> Self {
        let rate = rate.max(4000);
        let n = ((rate as f32 * 0.032) as usize)
            .next_power_of_two()
            .clamp(128, 4096);
        let fft = RealFftPlanner::<f32>::new().plan_fft_forward(n);
        let window = (0..n)
            .map(|i| 0.5 - 0.5 * (2.0 * std::f32::consts::PI * i as f32 / n as f32).cos())
            .collect();
        LogMel {
            rate,
            n,
            input: vec![0.0; n],
            spectrum: fft.make_output_vec(),
            scratch: fft.make_scratch_vec(),
            power: vec![0.0; n / 2 + 1],
            filters: mel_filters(rate, n),
            fft,
            window,
            buf: Vec::with_capacity(2 * n),
            buf_start_ms: None,
        }
    }

    /// Sample rate this analyser expects.
    pub fn rate(&self) -> u32 {
        self.rate
    }

    /// Frame length in milliseconds.
    pub fn frame_ms(&self) -> f64 {
        self.n as f64 * 1000.0 / self.rate as f64
    }

    /// Feeds samples starting at `start_ms`; calls `out` for every complete
    /// frame. A gap or overlap in time restarts the framing.
    pub fn push(&mut self, start_ms: i64, samples: &[f32], mut out: impl FnMut(MelFrame)) {
        let ms_per_sample = 1000.0 / self.rate as f64;
        let expected = self
            .buf_start_ms
            .map(|t| t + self.buf.len() as f64 * ms_per_sample);
        if expected.is_none_or(|e| (e - start_ms as f64).abs() > 2.0 * ms_per_sample + 1.0) {
            self.buf.clear();
            self.buf_start_ms = Some(start_ms as f64);
        }
        for &s in samples {
            self.buf.push(if s.is_finite() { s } else { 0.0 });
            if self.buf.len() == self.n {
                let t = self.buf_start_ms.unwrap_or(start_ms as f64);
                out(self.frame(t.round() as i64));
                self.buf.clear();
                self.buf_start_ms = Some(t + self.n as f64 * ms_per_sample);
            }
        }
    }

    fn frame(&mut self, t_ms: i64) -> MelFrame {
        for ((x, &s), &w) in self.input.iter_mut().zip(&self.buf).zip(&self.window) {
            *x = s * w;
        }
        // Lengths come from the planner, so the transform cannot fail.
        let _ =
            self.fft
                .process_with_scratch(&mut self.input, &mut self.spectrum, &mut self.scratch);
        let norm = 4.0 / (self.n as f32 * self.n as f32);
        let mut sum = 0.0f64;
        let mut log_sum = 0.0f64;
        let mut weighted = 0.0f64;
        let mut peak = 0.0f32;
        let hz_per_bin = self.rate as f32 / self.n as f32;
        for (k, (p, c)) in self.power.iter_mut().zip(&self.spectrum).enumerate() {
            *p = c.norm_sqr() * norm;
            if k > 0 {
                sum += f64::from(*p);
                log_sum += f64::from(p.max(POWER_EPS)).ln();
                weighted += f64::from(*p) * f64::from(k as f32 * hz_per_bin);
                peak = peak.max(*p);
            }
        }
        let bins = (self.power.len() - 1) as f64;
        let mean = (sum / bins).max(f64::from(POWER_EPS));
        let flatness = ((log_sum / bins).exp() / mean).clamp(0.0, 1.0) as f32;
        let centroid_hz = if sum > 0.0 {
            (weighted / sum) as f32
        } else {
            0.0
        };
        let peak_db = 10.0 * (f64::from(peak.max(POWER_EPS)) / mean).log10() as f32;
        let mut mel_db = [0f32; MEL_BANDS];
        for (m, (first, w)) in mel_db.iter_mut().zip(&self.filters) {
            let e: f32 = w
                .iter()
                .zip(&self.power[*first..])
                .map(|(a, b)| a * b)
                .sum();
            *m = 10.0 * e.max(POWER_EPS).log10();
        }
        MelFrame {
            t_ms,
            mel_db,
            flatness,
            centroid_hz,
            peak_db,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(rate: u32, hz: f32, amp: f32, n: usize) -> Vec<f32> {
        (0..n)
            .map(|i| amp * (2.0 * std::f32::consts::PI * hz * i as f32 / rate as f32).sin())
            .collect()
    }

    fn frames(rate: u32, samples: &[f32]) -> Vec<MelFrame> {
        let mut lm = LogMel::new(rate);
        let mut out = Vec::new();
        lm.push(0, samples, |f| out.push(f));
        out
    }

    #[test]
    fn a_tone_lights_the_band_that_contains_it() {
        for hz in [200.0f32, 1000.0, 3000.0, 6000.0] {
            let f = frames(16_000, &tone(16_000, hz, 0.5, 16_000));
            assert_eq!(f.len(), 31);
            let m = &f[10];
            let best = (0..MEL_BANDS)
                .max_by(|&a, &b| m.mel_db[a].total_cmp(&m.mel_db[b]))
                .unwrap_or(0);
            let mel = hz_to_mel(hz);
            let (lo, hi) = (hz_to_mel(FMIN_HZ), hz_to_mel(FMAX_HZ));
            let expect = ((mel - lo) / (hi - lo) * (MEL_BANDS + 1) as f32 - 1.0).round() as i64;
            assert!(
                (best as i64 - expect).abs() <= 1,
                "{hz} Hz: band {best}, expected about {expect}"
            );
            assert!(
                (m.centroid_hz - hz).abs() < hz * 0.1 + 50.0,
                "{}",
                m.centroid_hz
            );
            assert!(m.flatness < 0.05, "tone flatness {}", m.flatness);
            assert!(m.peak_db > 20.0);
            // A 0.5-amplitude sine has power 0.125: about -9 dB in its band.
            assert!((m.mel_db[best] + 9.0).abs() < 4.0, "{}", m.mel_db[best]);
        }
    }

    #[test]
    fn a_band_means_the_same_frequencies_at_every_sample_rate() {
        let loudest = |m: &MelFrame| {
            (0..MEL_BANDS)
                .max_by(|&a, &b| m.mel_db[a].total_cmp(&m.mel_db[b]))
                .unwrap_or(0)
        };
        for hz in [300.0f32, 1500.0, 3500.0] {
            let at16 = loudest(&frames(16_000, &tone(16_000, hz, 0.5, 16_000))[10]);
            for rate in [8_000u32, 11_025, 22_050, 48_000] {
                let m = frames(rate, &tone(rate, hz, 0.5, rate as usize))[10];
                assert_eq!(loudest(&m), at16, "{hz} Hz at {rate} Hz");
            }
        }
        // At 8 kHz the bands above Nyquist hear nothing: they sit at the
        // power floor whatever the input, like silence at any rate.
        let m = frames(8_000, &tone(8_000, 3000.0, 0.5, 8_000))[10];
        let above = (0..MEL_BANDS)
            .filter(|&b| {
                mel_to_hz(
                    hz_to_mel(FMIN_HZ)
                        + (hz_to_mel(FMAX_HZ) - hz_to_mel(FMIN_HZ)) * b as f32
                            / (MEL_BANDS + 1) as f32,
                ) >= 4_000.0
            })
            .collect::<Vec<_>>();
        assert!(above.len() >= 6, "{above:?}");
        assert!(
            above.iter().all(|&b| m.mel_db[b] <= -119.0),
            "{:?}",
            m.mel_db
        );
    }

    #[test]
    fn noise_is_flat_and_silence_is_finite() {
        let mut x: u32 = 12345;
        let noise: Vec<f32> = (0..16_000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                (x as f32 / u32::MAX as f32 - 0.5) * 0.2
            })
            .collect();
        let f = frames(16_000, &noise);
        assert!(f[5].flatness > 0.4, "noise flatness {}", f[5].flatness);
        let s = frames(16_000, &vec![0.0; 4096]);
        assert!(s.iter().all(|m| m.mel_db.iter().all(|v| v.is_finite())));
        let nan = frames(16_000, &vec![f32::NAN; 4096]);
        assert!(nan.iter().all(|m| m.mel_db.iter().all(|v| v.is_finite())));
    }

    #[test]
    fn frames_are_stamped_and_a_gap_restarts_them() {
        let mut lm = LogMel::new(16_000);
        let mut out = Vec::new();
        lm.push(1_000, &vec![0.1; 800], |f| out.push(f.t_ms));
        lm.push(1_050, &vec![0.1; 800], |f| out.push(f.t_ms));
        assert_eq!(out, vec![1_000, 1_032, 1_064]);
        // A gap: the partial frame is dropped and framing restarts.
        out.clear();
        lm.push(5_000, &vec![0.1; 512], |f| out.push(f.t_ms));
        assert_eq!(out, vec![5_000]);
        for rate in [8_000, 22_050, 44_100, 48_000] {
            let f = frames(rate, &tone(rate, 1000.0, 0.3, rate as usize));
            assert!(!f.is_empty(), "{rate}");
        }
    }
}
