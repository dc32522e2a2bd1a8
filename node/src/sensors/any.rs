//! One type per modality over every driver of it (replayed or real), so the
//! event loop is wired once whatever the sensors are.

use fusion::{AudioChunk, ClimateSample, GrayFrame};

use super::alsa_mic::AlsaMicrophone;
use super::bme280::Bme280Climate;
use super::pipe_camera::PipeCamera;
use super::replay::{ReplayCamera, ReplayClimate, ReplayMicrophone};
use super::v4l_camera::V4lCamera;
use super::{Camera, ClimateSensor, Microphone, SensorError};

/// A microphone: a replayed scene or an ALSA device.
pub enum AnyMicrophone {
    /// `audio.wav` of a scene.
    Replay(Box<ReplayMicrophone>),
    /// A capture device.
    Alsa(Box<AlsaMicrophone>),
}

impl Microphone for AnyMicrophone {
    async fn next_chunk(&mut self) -> Result<Option<AudioChunk>, SensorError> {
        match self {
            AnyMicrophone::Replay(m) => m.next_chunk().await,
            AnyMicrophone::Alsa(m) => m.next_chunk().await,
        }
    }

    fn pause(&mut self) {
        match self {
            AnyMicrophone::Replay(m) => m.pause(),
            AnyMicrophone::Alsa(m) => m.pause(),
        }
    }
}

/// A camera: a replayed scene, a UVC device, or a CSI camera's pipe.
pub enum AnyCamera {
    /// `camera.y4m` of a scene.
    Replay(Box<ReplayCamera>),
    /// A V4L2 (UVC) device.
    V4l(Box<V4lCamera>),
    /// Frames piped from a command such as `rpicam-vid`.
    Pipe(Box<PipeCamera>),
}

impl Camera for AnyCamera {
    fn capture(&mut self, t_ms: i64) -> Result<Option<GrayFrame>, SensorError> {
        match self {
            AnyCamera::Replay(c) => c.capture(t_ms),
            AnyCamera::V4l(c) => c.capture(t_ms),
            AnyCamera::Pipe(c) => c.capture(t_ms),
        }
    }

    fn blocking(&self) -> bool {
        match self {
            AnyCamera::Replay(c) => c.blocking(),
            AnyCamera::V4l(c) => c.blocking(),
            AnyCamera::Pipe(c) => c.blocking(),
        }
    }

    fn standby(&mut self) {
        match self {
            AnyCamera::Replay(c) => c.standby(),
            AnyCamera::V4l(c) => c.standby(),
            AnyCamera::Pipe(c) => c.standby(),
        }
    }
}

/// The BME280 on a Linux I2C bus.
pub type LinuxBme280 = Bme280Climate<linux_embedded_hal::I2cdev, linux_embedded_hal::Delay>;

/// A climate sensor: a replayed scene or a BME280.
pub enum AnyClimate {
    /// `climate.csv` of a scene.
    Replay(ReplayClimate),
    /// A BME280 on I2C.
    Bme280(Box<LinuxBme280>),
}

impl ClimateSensor for AnyClimate {
    fn read(&mut self, t_ms: i64) -> Result<Option<ClimateSample>, SensorError> {
        match self {
            AnyClimate::Replay(c) => c.read(t_ms),
            AnyClimate::Bme280(c) => c.read(t_ms),
        }
    }

    fn blocking(&self) -> bool {
        match self {
            AnyClimate::Replay(c) => c.blocking(),
            AnyClimate::Bme280(c) => c.blocking(),
        }
    }
}
