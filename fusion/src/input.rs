//! What the sensor tasks feed to the detector.

/// One of the node's sensing modalities.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Modality {
    /// The microphone.
    Audio,
    /// The camera.
    Camera,
    /// The climate sensor (temperature, humidity, pressure).
    Climate,
}

impl Modality {
    /// All modalities.
    pub const ALL: [Modality; 3] = [Modality::Audio, Modality::Camera, Modality::Climate];

    /// Stable lower-case name used in logs and configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            Modality::Audio => "audio",
            Modality::Camera => "camera",
            Modality::Climate => "climate",
        }
    }
}

/// Contiguous mono audio at the pipeline's sample rate.
#[derive(Clone, Debug, PartialEq)]
pub struct AudioChunk {
    /// Time of the first sample, milliseconds since the Unix epoch (UTC).
    pub start_ms: i64,
    /// Samples per second.
    pub sample_rate: u32,
    /// Mono samples, full scale = ±1.0.
    pub samples: Vec<f32>,
}

impl AudioChunk {
    /// Time just after the last sample, in milliseconds.
    pub fn end_ms(&self) -> i64 {
        if self.sample_rate == 0 {
            return self.start_ms;
        }
        self.start_ms + (self.samples.len() as i64 * 1000) / i64::from(self.sample_rate)
    }
}

/// A small grayscale image (row-major, one byte of luma per pixel).
#[derive(Clone, Debug, PartialEq)]
pub struct GrayFrame {
    /// Capture time, milliseconds since the Unix epoch (UTC).
    pub t_ms: i64,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// `width * height` luma values.
    pub luma: Vec<u8>,
    /// The exposure the camera chose for this frame, when it reports one:
    /// exposure time times gain, in any unit the camera keeps the same from
    /// frame to frame. With auto-exposure the luma hardly follows the light;
    /// luma and exposure together do.
    pub exposure: Option<f32>,
}

/// One reading of the climate sensor.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ClimateSample {
    /// Reading time, milliseconds since the Unix epoch (UTC).
    pub t_ms: i64,
    /// Air temperature, °C.
    pub temperature_c: f32,
    /// Relative humidity, %.
    pub humidity_pct: f32,
    /// Air pressure, hPa.
    pub pressure_hpa: f32,
}
