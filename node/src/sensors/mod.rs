//! The hardware edge: small traits for each sensor, so that the event loop
//! runs the same against real devices and against a replayed scene.
//!
//! - [`Microphone`]: a continuous stream of mono chunks at the pipeline rate;
//! - [`Camera`]: a frame captured on demand, at the cadence the power policy allows;
//! - [`ClimateSensor`]: a reading taken on demand.
//!
//! A sensor that ends (the scene is over) returns `Ok(None)`; a sensor that
//! fails returns a [`SensorError`], and the event loop carries on without it.

pub mod downscale;
pub mod replay;

use std::future::Future;

use fusion::{AudioChunk, ClimateSample, GrayFrame};

/// A sensor failure.
#[derive(Debug, thiserror::Error)]
pub enum SensorError {
    /// The data source (a scene file) is malformed.
    #[error(transparent)]
    Scene(#[from] crate::scene::SceneError),
}

/// A microphone.
pub trait Microphone: Send + 'static {
    /// The next chunk, delivered when its last sample has been "recorded"
    /// by the clock; `None` when the stream has ended.
    fn next_chunk(
        &mut self,
    ) -> impl Future<Output = Result<Option<AudioChunk>, SensorError>> + Send;
}

/// A camera.
pub trait Camera: Send + 'static {
    /// Captures a frame now (`t_ms` is the clock's time); `None` when the
    /// camera has nothing more to give (end of a replayed scene).
    fn capture(&mut self, t_ms: i64) -> Result<Option<GrayFrame>, SensorError>;
}

/// A climate sensor.
pub trait ClimateSensor: Send + 'static {
    /// Takes a reading now (`t_ms` is the clock's time); `None` when there
    /// are no more readings (end of a replayed scene).
    fn read(&mut self, t_ms: i64) -> Result<Option<ClimateSample>, SensorError>;
}
