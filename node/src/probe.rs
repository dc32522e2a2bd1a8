//! `fieldnode probe`: what hardware is there, and one sample from each, for
//! a technician's first check in the field. Read-only: it changes no
//! configuration and writes nothing to the data directory.

use std::path::{Path, PathBuf};
use std::time::Duration;

use cpal::traits::{DeviceTrait, HostTrait};
use embedded_hal::i2c::I2c;
use serde::Serialize;

use crate::config::Config;
use crate::sensors::health::HealthHandle;

/// Everything found.
#[derive(Debug, Default, Serialize)]
pub struct ProbeReport {
    /// Audio capture devices.
    pub audio: Vec<AudioInput>,
    /// BME280 (or other chips) answering on the I2C buses.
    pub i2c: Vec<I2cFinding>,
    /// V4L2 video devices.
    pub video: Vec<VideoDevice>,
    /// Problems that stopped a part of the probe.
    pub problems: Vec<String>,
}

/// One audio input.
#[derive(Debug, Serialize)]
pub struct AudioInput {
    /// cpal device id (usable as `audio.device.name`).
    pub id: String,
    /// Human-readable name.
    pub name: String,
    /// Default channels, rate and sample format.
    pub default_config: Option<String>,
    /// Whether it is the system default input.
    pub is_default: bool,
}

/// One address answering on an I2C bus.
#[derive(Debug, Serialize)]
pub struct I2cFinding {
    /// `/dev/i2c-N`.
    pub bus: PathBuf,
    /// 7-bit address.
    pub address: u8,
    /// Chip id register 0xD0 (0x60 = BME280, 0x58 = BMP280).
    pub chip_id: Option<u8>,
    /// One reading, if it is a BME280.
    pub reading: Option<String>,
    /// Why no reading.
    pub error: Option<String>,
}

/// One V4L2 device.
#[derive(Debug, Serialize)]
pub struct VideoDevice {
    /// `/dev/videoN`.
    pub path: PathBuf,
    /// Card and driver, formats offered.
    pub description: String,
    /// One frame, reduced to the analysis size, summarised.
    pub frame: Option<String>,
    /// Why no frame.
    pub error: Option<String>,
}

/// Lists the audio inputs of the ALSA host.
fn audio_inputs(problems: &mut Vec<String>) -> Vec<AudioInput> {
    let host = match cpal::host_from_id(cpal::HostId::Alsa) {
        Ok(h) => h,
        Err(e) => {
            problems.push(format!("audio: ALSA host unavailable: {e}"));
            return Vec::new();
        }
    };
    let default_id = host
        .default_input_device()
        .and_then(|d| d.id().ok())
        .map(|i| i.to_string());
    let devices = match host.input_devices() {
        Ok(d) => d,
        Err(e) => {
            problems.push(format!("audio: cannot list inputs: {e}"));
            return Vec::new();
        }
    };
    devices
        .filter_map(|d| {
            let id = d.id().ok()?.to_string();
            let name = d
                .description()
                .map(|x| x.name().to_string())
                .unwrap_or_default();
            let default_config = d.default_input_config().ok().map(|c| {
                format!(
                    "{} ch, {} Hz, {}",
                    c.channels(),
                    c.sample_rate(),
                    c.sample_format()
                )
            });
            Some(AudioInput {
                is_default: default_id.as_deref() == Some(id.as_str()),
                id,
                name,
                default_config,
            })
        })
        .collect()
}

/// Reads the chip id at 0x76 and 0x77 of every `/dev/i2c-*`, and one
/// reading from each BME280.
fn i2c_scan(dev: &Path, cfg: &Config) -> Vec<I2cFinding> {
    let mut buses: Vec<PathBuf> = std::fs::read_dir(dev)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.path())
                .filter(|p| {
                    p.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.starts_with("i2c-"))
                })
                .collect()
        })
        .unwrap_or_default();
    buses.sort();
    let mut found = Vec::new();
    for bus in buses {
        for address in [0x76u8, 0x77] {
            let mut i2c = match linux_embedded_hal::I2cdev::new(&bus) {
                Ok(i) => i,
                Err(e) => {
                    found.push(I2cFinding {
                        bus: bus.clone(),
                        address,
                        chip_id: None,
                        reading: None,
                        error: Some(format!("cannot open the bus: {e}")),
                    });
                    break;
                }
            };
            let mut id = [0u8; 1];
            if i2c.write_read(address, &[0xD0], &mut id).is_err() {
                continue; // nothing answers there
            }
            let mut f = I2cFinding {
                bus: bus.clone(),
                address,
                chip_id: Some(id[0]),
                reading: None,
                error: None,
            };
            match crate::sensors::bme280::Bme280Climate::open(
                i2c,
                address,
                cfg.climate.bme280.clone(),
                linux_embedded_hal::Delay,
                HealthHandle::detached("climate"),
            ) {
                Ok(mut s) => match crate::sensors::ClimateSensor::read(&mut s, 0) {
                    Ok(Some(r)) => {
                        f.reading = Some(format!(
                            "{:.2} °C, {:.1} %RH, {:.2} hPa",
                            r.temperature_c, r.humidity_pct, r.pressure_hpa
                        ))
                    }
                    Ok(None) => f.error = Some("no reading".into()),
                    Err(e) => f.error = Some(e.to_string()),
                },
                Err(e) => f.error = Some(e.to_string()),
            }
            found.push(f);
        }
    }
    found
}

/// Probes everything; `dev` is normally `/dev`.
pub fn probe(cfg: &Config, dev: &Path) -> ProbeReport {
    let mut report = ProbeReport::default();
    report.audio = audio_inputs(&mut report.problems);
    report.i2c = i2c_scan(dev, cfg);
    report.video = crate::hardware::probe_video(cfg, dev);
    report
}

/// One second of the configured microphone: its RMS level in dBFS, or why not.
pub fn audio_sample(cfg: &Config) -> Result<String, String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    rt.block_on(async {
        let clock = std::sync::Arc::new(crate::clock::SystemClock);
        let mut mic = crate::sensors::alsa_mic::AlsaMicrophone::open(
            cfg.audio.device.clone(),
            cfg.audio.sample_rate_hz,
            250,
            clock,
            HealthHandle::detached("audio"),
        )
        .map_err(|e| e.to_string())?;
        let mut samples = Vec::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
        while samples.len() < cfg.audio.sample_rate_hz as usize {
            let next =
                tokio::time::timeout_at(deadline, crate::sensors::Microphone::next_chunk(&mut mic))
                    .await
                    .map_err(|_| "no audio within 3 s".to_string())?;
            match next {
                Ok(Some(c)) => samples.extend(c.samples),
                Ok(None) => break,
                Err(e) => return Err(e.to_string()),
            }
        }
        let rms = (samples.iter().map(|x| x * x).sum::<f32>() / samples.len().max(1) as f32).sqrt();
        Ok(format!(
            "{} samples, level {:.1} dBFS",
            samples.len(),
            20.0 * rms.max(1e-9).log10()
        ))
    })
}
