//! Streaming conversion of a capture device's interleaved samples to the
//! pipeline's mono rate: channels averaged, then resampled with rubato's
//! FFT resampler (the same one the scene reader uses), the resampler's delay
//! removed so that output sample n is input time n / out_rate.

use std::collections::VecDeque;

use rubato::{FftFixedIn, Resampler};

/// Why a converter cannot be built.
#[derive(Debug, thiserror::Error)]
#[error("cannot convert {channels} channel(s) at {in_rate} Hz to mono at {out_rate} Hz: {reason}")]
pub struct ConvertError {
    channels: u16,
    in_rate: u32,
    out_rate: u32,
    reason: String,
}

const CHUNK: usize = 1024;

/// Interleaved samples in, mono samples at the pipeline rate out.
pub struct MonoConverter {
    channels: usize,
    resampler: Option<FftFixedIn<f32>>,
    pending: Vec<f32>,
    out: VecDeque<f32>,
    skip: usize,
    /// A frame split across two pushes (a callback's slice may end mid-frame).
    partial: Vec<f32>,
}

impl std::fmt::Debug for MonoConverter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MonoConverter")
            .field("channels", &self.channels)
            .field("resampling", &self.resampler.is_some())
            .finish()
    }
}

impl MonoConverter {
    /// A converter from `channels` at `in_rate` to mono at `out_rate`.
    pub fn new(channels: u16, in_rate: u32, out_rate: u32) -> Result<Self, ConvertError> {
        let err = |reason: String| ConvertError {
            channels,
            in_rate,
            out_rate,
            reason,
        };
        if channels == 0 || in_rate == 0 || out_rate == 0 {
            return Err(err("zero channels or rate".into()));
        }
        let resampler = if in_rate == out_rate {
            None
        } else {
            Some(
                FftFixedIn::<f32>::new(in_rate as usize, out_rate as usize, CHUNK, 2, 1)
                    .map_err(|e| err(e.to_string()))?,
            )
        };
        let skip = resampler.as_ref().map_or(0, |r| r.output_delay());
        Ok(MonoConverter {
            channels: usize::from(channels),
            resampler,
            pending: Vec::with_capacity(CHUNK),
            out: VecDeque::new(),
            skip,
            partial: Vec::new(),
        })
    }

    /// Adds interleaved samples (any length; a trailing partial frame is
    /// kept for the next call).
    pub fn push(&mut self, interleaved: &[f32]) {
        let mut data = interleaved;
        if !self.partial.is_empty() {
            let need = self.channels - self.partial.len();
            let take = need.min(data.len());
            self.partial.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.partial.len() == self.channels {
                let frame = std::mem::take(&mut self.partial);
                self.push_mono(mean(&frame));
            }
        }
        let whole = data.len() / self.channels * self.channels;
        for frame in data[..whole].chunks_exact(self.channels) {
            self.push_mono(mean(frame));
        }
        self.partial.extend_from_slice(&data[whole..]);
    }

    fn push_mono(&mut self, x: f32) {
        let x = if x.is_finite() { x } else { 0.0 };
        let Some(rs) = self.resampler.as_mut() else {
            self.out.push_back(x);
            return;
        };
        self.pending.push(x);
        if self.pending.len() < rs.input_frames_next() {
            return;
        }
        // The input is exactly the size asked for, so process cannot fail
        // on sizes; any other failure leaves this block out (counted as lost
        // by the caller's sample clock, never a panic).
        if let Ok(out) = rs.process(&[&self.pending[..]], None)
            && let Some(ch) = out.first()
        {
            let skip = self.skip.min(ch.len());
            self.skip -= skip;
            self.out.extend(ch[skip..].iter().copied());
        }
        self.pending.clear();
    }

    /// Mono samples ready.
    pub fn ready(&self) -> usize {
        self.out.len()
    }

    /// Takes `n` mono samples if that many are ready.
    pub fn take(&mut self, n: usize) -> Option<Vec<f32>> {
        (self.out.len() >= n).then(|| self.out.drain(..n).collect())
    }
}

fn mean(frame: &[f32]) -> f32 {
    frame.iter().sum::<f32>() / frame.len() as f32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(rate: u32, hz: f32, n: usize, channels: usize) -> Vec<f32> {
        (0..n)
            .flat_map(|i| {
                let x = 0.5 * (2.0 * std::f32::consts::PI * hz * i as f32 / rate as f32).sin();
                std::iter::repeat_n(x, channels)
            })
            .collect()
    }

    /// Frequency from upward zero crossings.
    pub(crate) fn tone_hz(x: &[f32], rate: u32) -> f64 {
        let ups = x.windows(2).filter(|w| w[0] < 0.0 && w[1] >= 0.0).count();
        ups as f64 * f64::from(rate) / x.len() as f64
    }

    #[test]
    fn stereo_48k_becomes_mono_16k_with_the_same_tone() {
        let mut c = MonoConverter::new(2, 48_000, 16_000).unwrap();
        let input = tone(48_000, 440.0, 48_000, 2);
        // In odd-sized pieces, splitting frames.
        for piece in input.chunks(777) {
            c.push(piece);
        }
        let n = c.ready();
        assert!(n > 15_000 && n <= 16_000, "{n} samples for one second");
        let out = c.take(n).unwrap();
        let hz = tone_hz(&out[1000..], 16_000);
        assert!((hz - 440.0).abs() < 3.0, "{hz} Hz");
    }

    #[test]
    fn same_rate_mono_passes_through_exactly() {
        let mut c = MonoConverter::new(1, 16_000, 16_000).unwrap();
        c.push(&[0.1, -0.2, 0.3]);
        assert_eq!(c.take(4), None);
        assert_eq!(c.take(3), Some(vec![0.1, -0.2, 0.3]));
    }

    #[test]
    fn channels_are_averaged_and_nan_is_silence() {
        let mut c = MonoConverter::new(2, 8_000, 8_000).unwrap();
        c.push(&[1.0, 0.0, f32::NAN, 0.5, 0.25]);
        c.push(&[0.75]);
        assert_eq!(c.take(3), Some(vec![0.5, 0.0, 0.5]));
    }

    #[test]
    fn zero_rate_is_an_error() {
        assert!(MonoConverter::new(1, 0, 16_000).is_err());
        assert!(MonoConverter::new(0, 16_000, 16_000).is_err());
    }
}
