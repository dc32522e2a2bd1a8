//! The hardware edge: small traits for each sensor, so that the event loop
//! runs the same against real devices and against a replayed scene.
//!
//! - [`Microphone`]: a continuous stream of mono chunks at the pipeline rate,
//!   whose capture can be stopped (the power policy's duty cycle);
//! - [`Camera`]: a frame captured on demand, at the cadence the power policy allows;
//! - [`ClimateSensor`]: a reading taken on demand.
//!
//! A sensor that ends (the scene is over) returns `Ok(None)`. A sensor that
//! fails returns a [`SensorError`]: a transient one ([`SensorError::is_transient`])
//! means "nothing this time, still trying" (the modality is marked
//! unavailable meanwhile and the driver's [`health::HealthHandle`] says why);
//! any other ends that sensor, and the event loop carries on without it.
//!
//! Drivers that block (I2C transfers, V4L2 dequeues) say so with
//! `blocking()`, and the event loop calls them on tokio's blocking pool.

pub mod alsa_mic;
pub mod any;
pub mod audio_convert;
pub mod bme280;
pub mod downscale;
pub mod frames;
pub mod health;
pub mod pipe_camera;
pub mod replay;
pub mod v4l_camera;

use std::future::Future;

use fusion::{AudioChunk, ClimateSample, GrayFrame};

/// A sensor failure.
#[derive(Debug, thiserror::Error)]
pub enum SensorError {
    /// The data source (a scene file) is malformed.
    #[error(transparent)]
    Scene(#[from] crate::scene::SceneError),
    /// The device is not delivering now (bus error, stalled stream, corrupt
    /// frame...); the driver retries and recovers on its own.
    #[error("{sensor}: {reason}")]
    Unavailable {
        /// Which sensor.
        sensor: &'static str,
        /// Why, for the log.
        reason: String,
    },
    /// The device cannot be used at all (not found, wrong chip, unsupported
    /// format): the sensor is absent for this run.
    #[error("{sensor}: {reason}")]
    Absent {
        /// Which sensor.
        sensor: &'static str,
        /// Why.
        reason: String,
    },
}

impl SensorError {
    /// Whether the sensor may deliver again later (the task keeps asking).
    pub fn is_transient(&self) -> bool {
        matches!(self, SensorError::Unavailable { .. })
    }
}

/// A microphone.
pub trait Microphone: Send + 'static {
    /// The next chunk, delivered when its last sample has been "recorded"
    /// by the clock; `None` when the stream has ended.
    fn next_chunk(
        &mut self,
    ) -> impl Future<Output = Result<Option<AudioChunk>, SensorError>> + Send;

    /// Stops capturing until the next [`Microphone::next_chunk`]: the
    /// device's stream is closed (no callbacks, no conversion, and a USB
    /// device stops streaming), and nothing it would have recorded
    /// meanwhile is ever delivered. The next chunk starts at the time of
    /// that call or later.
    fn pause(&mut self);
}

/// A camera.
pub trait Camera: Send + 'static {
    /// Captures a frame now (`t_ms` is the clock's time); `None` when the
    /// camera has nothing more to give (end of a replayed scene).
    fn capture(&mut self, t_ms: i64) -> Result<Option<GrayFrame>, SensorError>;

    /// Whether `capture` blocks the thread (a device); replayed scenes don't.
    fn blocking(&self) -> bool {
        false
    }

    /// Closes the device (stops its stream or its command) before its power
    /// is switched off; the next `capture` opens it again.
    fn standby(&mut self);
}

/// A climate sensor.
pub trait ClimateSensor: Send + 'static {
    /// Takes a reading now (`t_ms` is the clock's time); `None` when there
    /// are no more readings (end of a replayed scene).
    fn read(&mut self, t_ms: i64) -> Result<Option<ClimateSample>, SensorError>;

    /// Whether `read` blocks the thread (a bus transfer); replayed scenes don't.
    fn blocking(&self) -> bool {
        false
    }
}
