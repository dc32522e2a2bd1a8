//! Simulated sensors that replay a scene's files (see `docs/scenes.md`),
//! paced by the injected clock like real devices.

use std::path::Path;
use std::sync::Arc;

use fusion::{AudioChunk, ClimateSample, GrayFrame};

use super::downscale::downscale_luma;
use super::{Camera, ClimateSensor, Microphone, SensorError};
use crate::clock::Clock;
use crate::scene::climate::ClimateRow;
use crate::scene::y4m::{Y4mInfo, Y4mReader};
use crate::scene::{SceneError, WavAudio, read_climate_csv};

/// `audio.wav` as a microphone.
pub struct ReplayMicrophone {
    audio: WavAudio,
    clock: Arc<dyn Clock>,
    start_ms: i64,
    chunk: usize,
    delivered: u64,
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
            clock,
            start_ms,
            chunk,
            delivered: 0,
        })
    }
}

impl Microphone for ReplayMicrophone {
    async fn next_chunk(&mut self) -> Result<Option<AudioChunk>, SensorError> {
        let Some(samples) = self.audio.next_chunk(self.chunk)? else {
            return Ok(None);
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
}

/// `camera.y4m` as a camera: a capture at time t returns the video frame
/// showing time t, reduced to the analysis size.
pub struct ReplayCamera {
    reader: Y4mReader,
    info: Y4mInfo,
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
            start_ms,
            max_w,
            max_h,
            last: None,
            next_index: 0,
            ended: false,
        })
    }

    fn index_at(&self, t_ms: i64) -> u64 {
        let rel = (t_ms - self.start_ms).max(0) as u128;
        (rel * u128::from(self.info.fps_num) / (1000 * u128::from(self.info.fps_den.max(1)))) as u64
    }
}

impl Camera for ReplayCamera {
    fn capture(&mut self, t_ms: i64) -> Result<Option<GrayFrame>, SensorError> {
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
        };
        self.last = Some(frame.clone());
        Ok(Some(frame))
    }
}

/// `climate.csv` as a climate sensor: a reading at time t returns the latest
/// row at or before t.
pub struct ReplayClimate {
    rows: Vec<ClimateRow>,
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
            start_ms,
            tail_ms,
        })
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
        if t_ms >= self.row_time(last) + self.tail_ms {
            return Ok(None);
        }
        let n = self.rows.partition_point(|r| self.row_time(r) <= t_ms);
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
