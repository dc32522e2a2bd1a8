//! `audio.wav`: 16-bit integer or 32-bit float PCM, any channel count and
//! rate, streamed in chunks, averaged to mono and resampled (rubato's FFT
//! resampler) to the pipeline's rate.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufReader, Seek};
use std::path::{Path, PathBuf};

use rubato::{FftFixedIn, Resampler};

use super::{Location, SceneError};

/// What a WAV file holds, from its header.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WavInfo {
    /// Samples per second per channel.
    pub sample_rate: u32,
    /// Channels.
    pub channels: u16,
    /// Frames (samples per channel) declared in the data chunk.
    pub frames: u64,
    /// Byte offset of the first sample.
    pub data_offset: u64,
    /// Bytes per frame.
    pub block_align: u64,
}

impl WavInfo {
    /// Length in milliseconds.
    pub fn duration_ms(&self) -> i64 {
        (self.frames as i64 * 1000) / i64::from(self.sample_rate.max(1))
    }
}

#[derive(Debug, Clone, Copy)]
enum Format {
    I16,
    F32,
}

fn open(path: &Path) -> Result<(hound::WavReader<BufReader<File>>, Format, WavInfo), SceneError> {
    let file = File::open(path).map_err(|e| SceneError::io(path, e))?;
    let file_len = file.metadata().map_err(|e| SceneError::io(path, e))?.len();
    let reader = hound::WavReader::new(BufReader::new(file)).map_err(|e| {
        SceneError::malformed(
            path,
            Location::Offset(0),
            format!("expected a RIFF/WAVE PCM header: {e}"),
        )
    })?;
    let spec = reader.spec();
    let format = match (spec.sample_format, spec.bits_per_sample) {
        (hound::SampleFormat::Int, 16) => Format::I16,
        (hound::SampleFormat::Float, 32) => Format::F32,
        (f, b) => {
            return Err(SceneError::malformed(
                path,
                Location::Offset(20),
                format!("expected 16-bit integer or 32-bit float samples, found {b}-bit {f:?}"),
            ));
        }
    };
    if spec.channels == 0 || !(1000..=384_000).contains(&spec.sample_rate) {
        return Err(SceneError::malformed(
            path,
            Location::Offset(22),
            format!(
                "expected 1 or more channels at 1000..=384000 Hz, found {} channels at {} Hz",
                spec.channels, spec.sample_rate
            ),
        ));
    }
    let frames = u64::from(reader.duration());
    let block_align = u64::from(spec.channels) * u64::from(spec.bits_per_sample / 8);
    // hound leaves its reader at the first sample: that is the data offset.
    let mut inner = reader.into_inner();
    let data_offset = inner
        .stream_position()
        .map_err(|e| SceneError::io(path, e))?;
    let info = WavInfo {
        sample_rate: spec.sample_rate,
        channels: spec.channels,
        frames,
        data_offset,
        block_align,
    };
    let needed = data_offset + frames * block_align;
    if file_len < needed {
        let whole = (file_len.saturating_sub(data_offset)) / block_align.max(1);
        return Err(SceneError::malformed(
            path,
            Location::Offset(file_len),
            format!(
                "the data chunk declares {frames} frames ({needed} bytes in all) but the file ends after {whole} frames: truncated"
            ),
        ));
    }
    // Reopen: hound needs to read the header again to stream samples.
    let file = File::open(path).map_err(|e| SceneError::io(path, e))?;
    let reader = hound::WavReader::new(BufReader::new(file))
        .map_err(|e| SceneError::malformed(path, Location::Offset(0), e.to_string()))?;
    Ok((reader, format, info))
}

/// Reads `n` frames of `ch` interleaved samples and averages each frame.
/// On failure: the frame where it happened, and the error (`None` = end of data).
fn downmix<S>(
    mut it: impl Iterator<Item = hound::Result<S>>,
    n: usize,
    ch: usize,
    to_f32: impl Fn(S) -> f32,
) -> Result<Vec<f32>, (usize, Option<hound::Error>)> {
    let scale = 1.0 / ch as f32;
    let mut mono = Vec::with_capacity(n);
    for f in 0..n {
        let mut acc = 0f32;
        for _ in 0..ch {
            match it.next() {
                Some(Ok(s)) => acc += to_f32(s),
                Some(Err(e)) => return Err((f, Some(e))),
                None => return Err((f, None)),
            }
        }
        mono.push(acc * scale);
    }
    Ok(mono)
}

/// Checks the header and that the file holds every frame it declares.
pub fn validate(path: &Path) -> Result<WavInfo, SceneError> {
    open(path).map(|(_, _, info)| info)
}

/// A WAV file streamed as mono audio at a target rate.
pub struct WavAudio {
    path: PathBuf,
    reader: hound::WavReader<BufReader<File>>,
    format: Format,
    info: WavInfo,
    target_rate: u32,
    resampler: Option<FftFixedIn<f32>>,
    /// Mono input waiting for a full resampler chunk.
    pending_in: Vec<f32>,
    /// Output ready to hand out.
    out: VecDeque<f32>,
    /// Resampler delay still to discard, in output frames.
    skip_out: usize,
    frames_read: u64,
    /// Output frames handed out or queued so far.
    produced: u64,
    /// Output frames the whole file converts to.
    expected_out: u64,
    flushed: bool,
}

impl std::fmt::Debug for WavAudio {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WavAudio")
            .field("path", &self.path)
            .field("info", &self.info)
            .finish()
    }
}

const RESAMPLER_CHUNK: usize = 1024;

impl WavAudio {
    /// Opens `path` to be read as mono at `target_rate` Hz.
    pub fn open(path: &Path, target_rate: u32) -> Result<WavAudio, SceneError> {
        let (reader, format, info) = open(path)?;
        let resampler = if info.sample_rate == target_rate {
            None
        } else {
            Some(
                FftFixedIn::<f32>::new(
                    info.sample_rate as usize,
                    target_rate as usize,
                    RESAMPLER_CHUNK,
                    2,
                    1,
                )
                .map_err(|e| {
                    SceneError::malformed(
                        path,
                        Location::Offset(24),
                        format!(
                            "cannot resample {} Hz to {target_rate} Hz: {e}",
                            info.sample_rate
                        ),
                    )
                })?,
            )
        };
        let skip_out = resampler.as_ref().map_or(0, |r| r.output_delay());
        let expected_out = (u128::from(info.frames) * u128::from(target_rate)
            / u128::from(info.sample_rate)) as u64;
        Ok(WavAudio {
            path: path.to_path_buf(),
            reader,
            format,
            info,
            target_rate,
            resampler,
            pending_in: Vec::new(),
            out: VecDeque::new(),
            skip_out,
            frames_read: 0,
            produced: 0,
            expected_out,
            flushed: false,
        })
    }

    /// The file's header information.
    pub fn info(&self) -> WavInfo {
        self.info
    }

    /// The rate of the samples handed out.
    pub fn sample_rate(&self) -> u32 {
        self.target_rate
    }

    /// Reads up to `n` frames of the file, averaged to mono.
    fn read_mono(&mut self, n: usize) -> Result<Vec<f32>, SceneError> {
        let ch = usize::from(self.info.channels);
        let remaining = (self.info.frames - self.frames_read) as usize;
        let n = n.min(remaining);
        let result = match self.format {
            Format::I16 => downmix(self.reader.samples::<i16>(), n, ch, |s| {
                f32::from(s) / 32768.0
            }),
            // A non-finite float is a recorder fault: read it as silence.
            Format::F32 => downmix(self.reader.samples::<f32>(), n, ch, |s| {
                if s.is_finite() { s } else { 0.0 }
            }),
        };
        let mono = result.map_err(|(frame, err)| {
            let at =
                self.info.data_offset + (self.frames_read + frame as u64) * self.info.block_align;
            let problem = match err {
                Some(e) => format!("expected a sample: {e}"),
                None => "expected a sample, but the data ends here".to_string(),
            };
            SceneError::malformed(&self.path, Location::Offset(at), problem)
        })?;
        self.frames_read += n as u64;
        Ok(mono)
    }

    fn push_out(&mut self, samples: &[f32]) {
        let mut s = samples;
        let skip = self.skip_out.min(s.len());
        self.skip_out -= skip;
        s = &s[skip..];
        let room = self.expected_out.saturating_sub(self.produced) as usize;
        let s = &s[..s.len().min(room)];
        self.produced += s.len() as u64;
        self.out.extend(s.iter().copied());
    }

    /// The next `n` mono samples at the target rate; fewer at the end of the
    /// file, `None` once everything was handed out.
    pub fn next_chunk(&mut self, n: usize) -> Result<Option<Vec<f32>>, SceneError> {
        while self.out.len() < n && !self.flushed {
            match self.resampler.as_mut() {
                None => {
                    let mono = self.read_mono(n - self.out.len())?;
                    if mono.is_empty() {
                        self.flushed = true;
                    }
                    self.push_out(&mono);
                }
                Some(_) => self.resample_some()?,
            }
        }
        if self.out.is_empty() {
            return Ok(None);
        }
        let take = n.min(self.out.len());
        Ok(Some(self.out.drain(..take).collect()))
    }

    fn resample_some(&mut self) -> Result<(), SceneError> {
        let Some(rs) = self.resampler.as_mut() else {
            return Ok(());
        };
        let need = rs.input_frames_next();
        let want = need - self.pending_in.len();
        let more = self.read_mono(want)?;
        self.pending_in.extend_from_slice(&more);
        let Some(rs) = self.resampler.as_mut() else {
            return Ok(());
        };
        let result = if self.pending_in.len() == need {
            let r = rs.process(&[&self.pending_in[..]], None);
            self.pending_in.clear();
            r
        } else {
            // End of file: push the rest, then zeros until the delay line is empty.
            let r = if self.pending_in.is_empty() {
                rs.process_partial::<&[f32]>(None, None)
            } else {
                rs.process_partial(Some(&[&self.pending_in[..]]), None)
            };
            self.pending_in.clear();
            r
        };
        let out = result.map_err(|e| {
            SceneError::malformed(
                &self.path,
                Location::File,
                format!("resampling failed: {e}"),
            )
        })?;
        let (before, skip_before) = (self.produced, self.skip_out);
        if let Some(ch) = out.first() {
            self.push_out(ch);
        }
        let at_end = self.frames_read >= self.info.frames;
        let stalled = self.produced == before && self.skip_out == skip_before;
        if at_end && (self.produced >= self.expected_out || stalled) {
            self.flushed = true;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_wav(
        path: &Path,
        rate: u32,
        channels: u16,
        float: bool,
        frames: usize,
        f: impl Fn(usize, u16) -> f32,
    ) {
        let spec = hound::WavSpec {
            channels,
            sample_rate: rate,
            bits_per_sample: if float { 32 } else { 16 },
            sample_format: if float {
                hound::SampleFormat::Float
            } else {
                hound::SampleFormat::Int
            },
        };
        let mut w = hound::WavWriter::create(path, spec).unwrap();
        for i in 0..frames {
            for c in 0..channels {
                let v = f(i, c);
                if float {
                    w.write_sample(v).unwrap();
                } else {
                    w.write_sample((v * 32767.0) as i16).unwrap();
                }
            }
        }
        w.finalize().unwrap();
    }

    fn read_all(a: &mut WavAudio) -> Vec<f32> {
        let mut all = Vec::new();
        while let Some(c) = a.next_chunk(700).unwrap() {
            all.extend(c);
        }
        all
    }

    /// Frequency of a tone from its zero crossings.
    fn tone_hz(x: &[f32], rate: u32) -> f64 {
        let x = &x[x.len() / 10..x.len() * 9 / 10];
        let crossings = x.windows(2).filter(|w| w[0] < 0.0 && w[1] >= 0.0).count();
        crossings as f64 * f64::from(rate) / x.len() as f64
    }

    #[test]
    fn stereo_16_bit_is_averaged_to_mono() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.wav");
        write_wav(&p, 16000, 2, false, 1000, |i, c| {
            if c == 0 { 0.5 } else { (i % 2) as f32 * 0.5 }
        });
        let mut a = WavAudio::open(&p, 16000).unwrap();
        let all = read_all(&mut a);
        assert_eq!(all.len(), 1000);
        assert!(
            (all[0] - 0.25).abs() < 1e-3 && (all[1] - 0.5).abs() < 1e-3,
            "{:?}",
            &all[..2]
        );
    }

    #[test]
    fn resampling_keeps_length_and_tone_frequency() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.wav");
        let rate = 44100;
        let frames = rate as usize * 2;
        write_wav(&p, rate, 1, true, frames, |i, _| {
            (2.0 * std::f32::consts::PI * 1000.0 * i as f32 / rate as f32).sin() * 0.5
        });
        let mut a = WavAudio::open(&p, 16000).unwrap();
        let all = read_all(&mut a);
        assert_eq!(all.len(), 32000);
        let hz = tone_hz(&all, 16000);
        assert!((hz - 1000.0).abs() < 5.0, "tone at {hz} Hz");
        // No delay: the tone starts at the start (first crossing within 1 ms).
        assert!(all[..16].iter().any(|v| v.abs() > 0.05), "{:?}", &all[..16]);
    }

    #[test]
    fn truncated_file_names_offset() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.wav");
        write_wav(&p, 16000, 1, false, 16000, |_, _| 0.1);
        let bytes = std::fs::read(&p).unwrap();
        std::fs::write(&p, &bytes[..bytes.len() - 1001]).unwrap();
        let e = validate(&p).unwrap_err().to_string();
        assert!(
            e.contains("a.wav") && e.contains("truncated") && e.contains("byte offset"),
            "{e}"
        );
    }

    #[test]
    fn malformed_headers_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.wav");
        std::fs::write(&p, b"RIFF\x10\0\0\0WAVEjunk").unwrap();
        let e = validate(&p).unwrap_err().to_string();
        assert!(e.contains("a.wav") && e.contains("offset"), "{e}");
        std::fs::write(&p, b"").unwrap();
        assert!(validate(&p).is_err());
        // 8-bit audio is not supported.
        let spec = hound::WavSpec {
            channels: 1,
            sample_rate: 8000,
            bits_per_sample: 8,
            sample_format: hound::SampleFormat::Int,
        };
        let mut w = hound::WavWriter::create(&p, spec).unwrap();
        w.write_sample(3i8).unwrap();
        w.finalize().unwrap();
        let e = validate(&p).unwrap_err().to_string();
        assert!(e.contains("expected 16-bit integer or 32-bit float"), "{e}");
    }
}
