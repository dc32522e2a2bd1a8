//! Simulated sensors that replay a scene's files (see `docs/scenes.md`),
//! paced by the injected clock like real devices. With [`Passes`] a replay
//! loops: pass k starts at the scene's start plus k periods (the scene's
//! length), so a short scene stands for a long stretch of field time.

use std::path::Path;
use std::sync::Arc;

use fusion::{AudioChunk, ClimateSample, GrayFrame};

use super::downscale::downscale_luma;
use super::{Camera, ClimateSensor, Microphone, SensorError};
use crate::clock::Clock;
use crate::scene::climate::ClimateRow;
use crate::scene::y4m::{Y4mInfo, Y4mReader};
use crate::scene::{SceneError, WavAudio, read_climate_csv};

/// How many times a replay runs, back to back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Passes {
    /// Passes in all (at least 1).
    pub count: u32,
    /// Time from the start of one pass to the next, ms (the scene's length).
    pub period_ms: i64,
}

impl Passes {
    /// A single pass.
    pub const ONCE: Passes = Passes {
        count: 1,
        period_ms: 1,
    };

    /// The pass that covers `t_ms` for a replay starting at `base_ms`
    /// (the last pass for any later time).
    fn at(&self, base_ms: i64, t_ms: i64) -> u32 {
        let k = (t_ms - base_ms).max(0) / self.period_ms.max(1);
        k.min(i64::from(self.count.max(1) - 1)) as u32
    }

    /// Where pass `k` starts.
    fn start(&self, base_ms: i64, k: u32) -> i64 {
        base_ms + i64::from(k) * self.period_ms.max(1)
    }
}

/// `audio.wav` as a microphone.
pub struct ReplayMicrophone {
    audio: WavAudio,
    path: std::path::PathBuf,
    rate: u32,
    clock: Arc<dyn Clock>,
    base_ms: i64,
    passes: Passes,
    pass: u32,
    start_ms: i64,
    chunk: usize,
    delivered: u64,
    /// Paused: the file's audio up to the next call's time is skipped.
    paused: bool,
    /// Samples skipped while paused (never delivered).
    skipped: u64,
}

impl ReplayMicrophone {
    /// Replays `path` as mono at `rate` Hz in chunks of `chunk_ms`, with the
    /// first sample at `start_ms`.
    pub fn open(
        path: &Path,
        rate: u32,
        chunk_ms: u32,
        start_ms: i64,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, SceneError> {
        let audio = WavAudio::open(path, rate)?;
        let chunk = (u64::from(rate) * u64::from(chunk_ms) / 1000).max(1) as usize;
        Ok(ReplayMicrophone {
            audio,
            path: path.to_path_buf(),
            rate,
            clock,
            base_ms: start_ms,
            passes: Passes::ONCE,
            pass: 0,
            start_ms,
            chunk,
            delivered: 0,
            paused: false,
            skipped: 0,
        })
    }

    /// Samples of the file skipped while the microphone was paused.
    pub fn skipped(&self) -> u64 {
        self.skipped
    }

    /// Skips the file's audio up to `t_ms` (what a stopped device never
    /// recorded); `false` when the replay ends first.
    fn skip_to(&mut self, t_ms: i64) -> Result<bool, SceneError> {
        loop {
            let rate = u64::from(self.audio.sample_rate());
            let want = (t_ms - self.start_ms).max(0) as u64 * rate / 1000;
            if self.delivered >= want {
                return Ok(true);
            }
            let n = (want - self.delivered).min(self.chunk as u64 * 16) as usize;
            match self.audio.next_chunk(n)? {
                Some(s) => {
                    self.delivered += s.len() as u64;
                    self.skipped += s.len() as u64;
                }
                None => {
                    if !self.next_pass()? {
                        return Ok(false);
                    }
                }
            }
        }
    }

    /// Replays the file `passes.count` times.
    pub fn looping(mut self, passes: Passes) -> Self {
        self.passes = passes;
        self
    }

    /// The file again, for the next pass; false after the last.
    fn next_pass(&mut self) -> Result<bool, SceneError> {
        if self.pass + 1 >= self.passes.count {
            return Ok(false);
        }
        self.audio = WavAudio::open(&self.path, self.rate)?;
        self.pass += 1;
        self.start_ms = self.passes.start(self.base_ms, self.pass);
        self.delivered = 0;
        Ok(true)
    }
}

impl Microphone for ReplayMicrophone {
    async fn next_chunk(&mut self) -> Result<Option<AudioChunk>, SensorError> {
        if self.paused {
            self.paused = false;
            if !self.skip_to(self.clock.now_ms())? {
                return Ok(None);
            }
        }
        let samples = loop {
            if let Some(samples) = self.audio.next_chunk(self.chunk)? {
                break samples;
            }
            if !self.next_pass()? {
                return Ok(None);
            }
        };
        let rate = u64::from(self.audio.sample_rate());
        let start_ms = self.start_ms + (self.delivered * 1000 / rate) as i64;
        self.delivered += samples.len() as u64;
        let end_ms = self.start_ms + (self.delivered * 1000 / rate) as i64;
        // A real microphone hands over a chunk once its last sample is recorded.
        self.clock.sleep_until(end_ms).await;
        Ok(Some(AudioChunk {
            start_ms,
            sample_rate: self.audio.sample_rate(),
            samples,
        }))
    }

    fn pause(&mut self) {
        self.paused = true;
    }
}

/// `camera.y4m` as a camera: a capture at time t returns the video frame
/// showing time t, reduced to the analysis size.
pub struct ReplayCamera {
    reader: Y4mReader,
    info: Y4mInfo,
    path: std::path::PathBuf,
    base_ms: i64,
    passes: Passes,
    pass: u32,
    start_ms: i64,
    max_w: u32,
    max_h: u32,
    last: Option<GrayFrame>,
    next_index: u64,
    ended: bool,
}

impl ReplayCamera {
    /// Opens `path`, with frame 0 at `start_ms`.
    pub fn open(path: &Path, start_ms: i64, max_w: u32, max_h: u32) -> Result<Self, SceneError> {
        let reader = Y4mReader::open(path)?;
        let info = reader.info();
        Ok(ReplayCamera {
            reader,
            info,
            path: path.to_path_buf(),
            base_ms: start_ms,
            passes: Passes::ONCE,
            pass: 0,
            start_ms,
            max_w,
            max_h,
            last: None,
            next_index: 0,
            ended: false,
        })
    }

    /// Replays the video `passes.count` times.
    pub fn looping(mut self, passes: Passes) -> Self {
        self.passes = passes;
        self
    }

    /// Opens the video again when `t_ms` falls in a later pass.
    fn follow_pass(&mut self, t_ms: i64) -> Result<(), SceneError> {
        let pass = self.passes.at(self.base_ms, t_ms);
        if pass <= self.pass {
            return Ok(());
        }
        self.reader = Y4mReader::open(&self.path)?;
        self.pass = pass;
        self.start_ms = self.passes.start(self.base_ms, pass);
        self.last = None;
        self.next_index = 0;
        self.ended = false;
        Ok(())
    }

    fn index_at(&self, t_ms: i64) -> u64 {
        let rel = (t_ms - self.start_ms).max(0) as u128;
        (rel * u128::from(self.info.fps_num) / (1000 * u128::from(self.info.fps_den.max(1)))) as u64
    }
}

impl Camera for ReplayCamera {
    fn capture(&mut self, t_ms: i64) -> Result<Option<GrayFrame>, SensorError> {
        self.follow_pass(t_ms)?;
        let want = self.index_at(t_ms);
        if want < self.next_index {
            // The frame for this time was read already (a capture faster than
            // the video's frame rate): the camera still shows it.
            return Ok(self.last.clone());
        }
        if self.ended {
            return Ok(None);
        }
        while self.next_index < want {
            if self.reader.next_frame(false)?.is_none() {
                self.ended = true;
                return Ok(None);
            }
            self.next_index += 1;
        }
        let Some(frame) = self.reader.next_frame(true)? else {
            self.ended = true;
            return Ok(None);
        };
        self.next_index += 1;
        let exposure = frame.exposure;
        let luma = frame.luma.unwrap_or_default();
        let (w, h, px) = downscale_luma(
            &luma,
            self.info.width,
            self.info.height,
            self.max_w,
            self.max_h,
        );
        let frame = GrayFrame {
            t_ms: self.start_ms + self.info.frame_time_ms(frame.index),
            width: w,
            height: h,
            luma: px,
            exposure,
        };
        self.last = Some(frame.clone());
        Ok(Some(frame))
    }

    /// A file has nothing to close: frames of the time it was off are
    /// never asked for.
    fn standby(&mut self) {}
}

/// `climate.csv` as a climate sensor: a reading at time t returns the latest
/// row at or before t.
pub struct ReplayClimate {
    rows: Vec<ClimateRow>,
    passes: Passes,
    start_ms: i64,
    /// After the last row plus this, the sensor has ended.
    tail_ms: i64,
}

impl ReplayClimate {
    /// Opens `path`, with t = 0 at `start_ms`.
    pub fn open(path: &Path, start_ms: i64) -> Result<Self, SceneError> {
        let rows = read_climate_csv(path)?;
        let tail_ms = match rows.as_slice() {
            [.., a, b] => (((b.t_s - a.t_s) * 1000.0) as i64).max(1),
            _ => 10_000,
        };
        Ok(ReplayClimate {
            rows,
            passes: Passes::ONCE,
            start_ms,
            tail_ms,
        })
    }

    /// Replays the readings `passes.count` times.
    pub fn looping(mut self, passes: Passes) -> Self {
        self.passes = passes;
        self
    }

    fn row_time(&self, r: &ClimateRow) -> i64 {
        self.start_ms + (r.t_s * 1000.0).round() as i64
    }
}

impl ClimateSensor for ReplayClimate {
    fn read(&mut self, t_ms: i64) -> Result<Option<ClimateSample>, SensorError> {
        let Some(last) = self.rows.last() else {
            return Ok(None);
        };
        // The same rows in every pass, shifted by the pass's start.
        let pass = self.passes.at(self.start_ms, t_ms);
        let local_ms = t_ms - (self.passes.start(self.start_ms, pass) - self.start_ms);
        if local_ms >= self.row_time(last) + self.tail_ms {
            return Ok(None);
        }
        let n = self.rows.partition_point(|r| self.row_time(r) <= local_ms);
        // Before the first row, the first row is the best reading there is.
        let r = self.rows[n.saturating_sub(1)];
        Ok(Some(ClimateSample {
            t_ms,
            temperature_c: r.temperature_c,
            humidity_pct: r.humidity_pct,
            pressure_hpa: r.pressure_hpa,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ReplayClock;

    /// 10 s of 16 kHz mono whose sample i is i / 16000 (its own time, s).
    fn ramp_wav(path: &Path) {
        let spec = hound::WavSpec {
            channels: 1,
            sample_rate: 16_000,
            bits_per_sample: 32,
            sample_format: hound::SampleFormat::Float,
        };
        let mut w = hound::WavWriter::create(path, spec).unwrap();
        for i in 0..160_000 {
            w.write_sample(i as f32 / 16_000.0).unwrap();
        }
        w.finalize().unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn a_paused_replay_skips_what_a_stopped_microphone_never_recorded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.wav");
        ramp_wav(&path);
        let clock: Arc<dyn Clock> = Arc::new(ReplayClock::new(0, 1.0));
        let mut mic = ReplayMicrophone::open(&path, 16_000, 500, 0, clock.clone()).unwrap();
        let first = mic.next_chunk().await.unwrap().unwrap();
        assert_eq!((first.start_ms, clock.now_ms()), (0, 500));
        mic.pause();
        clock.sleep_until(4_000).await;
        let next = mic.next_chunk().await.unwrap().unwrap();
        // The chunk after the stop starts at the time of the call, with the
        // file's own samples of that time: nothing dropped from a delivered
        // stretch, nothing made up.
        assert_eq!(next.start_ms, 4_000);
        assert!((next.samples[0] - 4.0).abs() < 1e-4, "{}", next.samples[0]);
        assert_eq!(clock.now_ms(), 4_500);
        assert_eq!(mic.skipped(), 3_500 * 16);
        // Stopped past the end: the stream ends.
        mic.pause();
        clock.sleep_until(12_000).await;
        assert!(mic.next_chunk().await.unwrap().is_none());
    }

    #[test]
    fn a_replayed_frame_carries_the_exposure_its_header_says() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("camera.y4m");
        let mut v = b"YUV4MPEG2 W4 H2 F1:1 Cmono\n".to_vec();
        for header in ["FRAME XEXPOSURE=1250.5", "FRAME"] {
            v.extend_from_slice(header.as_bytes());
            v.extend_from_slice(b"\n");
            v.extend_from_slice(&[90u8; 8]);
        }
        std::fs::write(&path, v).unwrap();
        let mut cam = ReplayCamera::open(&path, 0, 80, 60).unwrap();
        let a = cam.capture(0).unwrap().unwrap();
        assert_eq!((a.exposure, a.luma.len()), (Some(1250.5), 8));
        let b = cam.capture(1000).unwrap().unwrap();
        assert_eq!(b.exposure, None);
    }
}
