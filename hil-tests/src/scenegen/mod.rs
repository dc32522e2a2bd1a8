//! The scene generator: writes scene directories (`docs/scenes.md`) from a
//! preset and a seed, with labelled events. The same spec always gives the
//! same bytes.
//!
//! - [`plan`]: the schedule of events and background episodes;
//! - [`sounds`]: wind, rain, bird song, barks, a machine and its fault, speech, footsteps;
//! - [`camera`]: the view and what crosses it;
//! - [`climate`]: temperature, humidity, pressure;
//! - [`dsp`]: seeded random streams and filters.

pub mod camera;
pub mod climate;
pub mod dsp;
pub mod plan;
pub mod sounds;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use plan::{Happening, Kind};

/// Version of the generator's output; bump when the same seed would give different scenes.
pub const GENERATOR_VERSION: u32 = 1;

/// What a scene contains.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preset {
    /// 120 s: one wildlife, one human activity and one machinery anomaly event, and a cloud shadow.
    Demo,
    /// Wildlife events and background.
    Wildlife,
    /// A machine running, with anomalies, and background.
    Machinery,
    /// Human activity events and background.
    Human,
    /// Background only: wind, gusts, cloud shadows, rain. A detector must stay quiet.
    Background,
    /// All classes, random order, with a machine running.
    Mixed,
}

impl Preset {
    /// Stable name.
    pub fn as_str(self) -> &'static str {
        match self {
            Preset::Demo => "demo",
            Preset::Wildlife => "wildlife",
            Preset::Machinery => "machinery",
            Preset::Human => "human",
            Preset::Background => "background",
            Preset::Mixed => "mixed",
        }
    }

    fn has_machine(self) -> bool {
        matches!(self, Preset::Demo | Preset::Machinery | Preset::Mixed)
    }
}

impl FromStr for Preset {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        [
            Preset::Demo,
            Preset::Wildlife,
            Preset::Machinery,
            Preset::Human,
            Preset::Background,
            Preset::Mixed,
        ]
        .into_iter()
        .find(|p| p.as_str() == s)
        .ok_or_else(|| {
            format!("unknown preset `{s}` (demo, wildlife, machinery, human, background, mixed)")
        })
    }
}

/// Everything that determines a scene.
#[derive(Debug, Clone, PartialEq)]
pub struct SceneSpec {
    /// Preset.
    pub preset: Preset,
    /// Seed.
    pub seed: u64,
    /// Length, seconds.
    pub duration_s: f32,
    /// Audio sample rate, Hz.
    pub audio_rate: u32,
    /// Frame width, pixels.
    pub camera_w: u32,
    /// Frame height, pixels.
    pub camera_h: u32,
    /// Frames per second.
    pub camera_fps: u32,
    /// Seconds between climate readings.
    pub climate_period_s: f32,
    /// Write `audio.wav`.
    pub audio: bool,
    /// Write `camera.y4m`.
    pub camera: bool,
    /// Write `climate.csv`.
    pub climate: bool,
    /// Scene start, RFC 3339.
    pub start: String,
}

impl SceneSpec {
    /// The defaults for a preset: 120 s for the demo, 600 s otherwise.
    pub fn new(preset: Preset, seed: u64) -> Self {
        SceneSpec {
            preset,
            seed,
            duration_s: if preset == Preset::Demo { 120.0 } else { 600.0 },
            audio_rate: 16_000,
            camera_w: 80,
            camera_h: 60,
            camera_fps: 2,
            climate_period_s: 10.0,
            audio: true,
            camera: true,
            climate: true,
            start: "2026-06-01T07:30:00Z".into(),
        }
    }
}

/// A label as written to `labels.csv`.
#[derive(Debug, Clone, PartialEq)]
pub struct Label {
    /// Start, s.
    pub start_s: f32,
    /// End, s.
    pub end_s: f32,
    /// Class name.
    pub class: &'static str,
}

/// What was written.
#[derive(Debug, Clone, PartialEq)]
pub struct SceneSummary {
    /// The directory.
    pub dir: PathBuf,
    /// The labels.
    pub labels: Vec<Label>,
}

/// Why a scene could not be written.
#[derive(Debug, thiserror::Error)]
pub enum GenError {
    /// A bad spec.
    #[error("invalid scene spec: {0}")]
    Spec(String),
    /// Writing failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The WAV writer failed.
    #[error("{}: {source}", path.display())]
    Wav {
        /// The file.
        path: PathBuf,
        /// Why.
        source: hound::Error,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> GenError + '_ {
    move |source| GenError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn start_hour(start: &str) -> Result<f32, GenError> {
    let t = time::OffsetDateTime::parse(start, &time::format_description::well_known::Rfc3339)
        .map_err(|e| GenError::Spec(format!("start {start:?} is not RFC 3339: {e}")))?
        .to_offset(time::UtcOffset::UTC);
    Ok(f32::from(t.hour()) + f32::from(t.minute()) / 60.0 + f32::from(t.second()) / 3600.0)
}

/// Writes the scene described by `spec` into `out_dir` (created if needed).
pub fn generate(spec: &SceneSpec, out_dir: &Path) -> Result<SceneSummary, GenError> {
    if !(10.0..=86_400.0).contains(&spec.duration_s) {
        return Err(GenError::Spec(
            "duration must be between 10 s and 24 h".into(),
        ));
    }
    if !(8_000..=96_000).contains(&spec.audio_rate)
        || spec.camera_fps == 0
        || spec.camera_w < 16
        || spec.camera_h < 12
    {
        return Err(GenError::Spec(
            "audio rate 8000..96000 Hz, camera at least 16x12 at 1 fps or more".into(),
        ));
    }
    if spec.climate_period_s < 1.0 {
        return Err(GenError::Spec("climate period must be at least 1 s".into()));
    }
    let hour = start_hour(&spec.start)?;
    std::fs::create_dir_all(out_dir).map_err(io(out_dir))?;
    let plan = plan::schedule(spec.preset, spec.seed, spec.duration_s);
    write_meta(spec, out_dir)?;
    if spec.audio {
        write_audio(spec, &plan, out_dir)?;
    } else {
        remove_if_exists(&out_dir.join("audio.wav"))?;
    }
    if spec.camera {
        write_camera(spec, &plan, out_dir, hour)?;
    } else {
        remove_if_exists(&out_dir.join("camera.y4m"))?;
    }
    if spec.climate {
        write_climate(spec, &plan, out_dir, hour)?;
    } else {
        remove_if_exists(&out_dir.join("climate.csv"))?;
    }
    let labels: Vec<Label> = plan
        .iter()
        .map(|p| Label {
            start_s: p.start_s,
            end_s: p.end_s,
            class: p.kind.class(),
        })
        .collect();
    let path = out_dir.join("labels.csv");
    let mut text = String::from("start_s,end_s,class\n");
    for l in &labels {
        text.push_str(&format!("{:.2},{:.2},{}\n", l.start_s, l.end_s, l.class));
    }
    std::fs::write(&path, text).map_err(io(&path))?;
    Ok(SceneSummary {
        dir: out_dir.to_path_buf(),
        labels,
    })
}

fn remove_if_exists(p: &Path) -> Result<(), GenError> {
    match std::fs::remove_file(p) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io(p)(e)),
        _ => Ok(()),
    }
}

fn write_meta(spec: &SceneSpec, dir: &Path) -> Result<(), GenError> {
    let path = dir.join("scene.toml");
    let text = format!(
        "start = \"{}\"\nname = \"{}-{}\"\ndescription = \"generated by scenegen: preset {}, seed {}, {} s\"\n\n[generator]\npreset = \"{}\"\nseed = {}\nversion = {}\n",
        spec.start,
        spec.preset.as_str(),
        spec.seed,
        spec.preset.as_str(),
        spec.seed,
        spec.duration_s,
        spec.preset.as_str(),
        spec.seed,
        GENERATOR_VERSION
    );
    std::fs::write(&path, text).map_err(io(&path))
}

/// Renders the whole soundtrack.
pub fn render_audio(spec: &SceneSpec, plan: &[Happening]) -> Vec<f32> {
    let rate = spec.audio_rate as f32;
    let mut buf = vec![0f32; (spec.duration_s * rate) as usize];
    let gusts: Vec<(f32, f32)> = plan
        .iter()
        .filter(|p| p.kind == Kind::Gust)
        .map(|p| (p.start_s, p.end_s))
        .collect();
    sounds::wind(
        &mut buf,
        rate,
        &mut dsp::stream(spec.seed, "wind"),
        -52.0,
        &gusts,
    );
    let machine = spec
        .preset
        .has_machine()
        .then(|| sounds::Machine::new(&mut dsp::stream(spec.seed, "machine"), -38.0));
    if let Some(m) = &machine {
        m.render(&mut buf, rate, &mut dsp::stream(spec.seed, "machine-noise"));
    }
    for p in plan {
        let mut rng = dsp::stream(p.seed, "sound");
        match p.kind {
            Kind::Wildlife {
                birdsong,
                calls: true,
                level_db,
                ..
            } => {
                if birdsong {
                    sounds::birdsong(&mut buf, rate, &mut rng, p.start_s, p.end_s, level_db);
                } else {
                    sounds::barks(&mut buf, rate, &mut rng, p.start_s, p.end_s, level_db);
                }
            }
            Kind::MachineryAnomaly {
                impact_hz,
                resonance_hz,
                rise_db,
                ..
            } => {
                if let Some(m) = &machine {
                    m.fault(
                        &mut buf,
                        rate,
                        &mut rng,
                        p.start_s,
                        p.end_s,
                        impact_hz,
                        resonance_hz,
                        rise_db,
                    );
                }
            }
            Kind::HumanActivity {
                speech,
                walking,
                level_db,
            } => {
                if speech {
                    sounds::speech(&mut buf, rate, &mut rng, p.start_s, p.end_s, level_db);
                }
                if walking {
                    sounds::footsteps(
                        &mut buf,
                        rate,
                        &mut rng,
                        p.start_s,
                        p.end_s,
                        level_db - 12.0,
                    );
                }
            }
            Kind::Rain => sounds::rain(&mut buf, rate, &mut rng, p.start_s, p.end_s, -44.0),
            _ => {}
        }
    }
    // Remove DC and keep clear of clipping with a soft limiter.
    let mean = buf.iter().map(|v| f64::from(*v)).sum::<f64>() / buf.len().max(1) as f64;
    for v in &mut buf {
        let x = *v - mean as f32;
        *v = if x.abs() > 0.8 {
            x.signum() * (0.8 + 0.19 * ((x.abs() - 0.8) / 0.19).tanh())
        } else {
            x
        };
    }
    buf
}

fn write_audio(spec: &SceneSpec, plan: &[Happening], dir: &Path) -> Result<(), GenError> {
    let path = dir.join("audio.wav");
    let buf = render_audio(spec, plan);
    let ws = hound::WavSpec {
        channels: 1,
        sample_rate: spec.audio_rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let wav = |source| GenError::Wav {
        path: path.clone(),
        source,
    };
    let mut w = hound::WavWriter::create(&path, ws).map_err(wav)?;
    for v in buf {
        w.write_sample((v * 32767.0).round() as i16).map_err(wav)?;
    }
    w.finalize().map_err(wav)
}

fn write_camera(
    spec: &SceneSpec,
    plan: &[Happening],
    dir: &Path,
    hour: f32,
) -> Result<(), GenError> {
    let path = dir.join("camera.y4m");
    let file = std::fs::File::create(&path).map_err(io(&path))?;
    let mut out = std::io::BufWriter::new(file);
    writeln!(
        out,
        "YUV4MPEG2 W{} H{} F{}:1 Ip A1:1 Cmono",
        spec.camera_w, spec.camera_h, spec.camera_fps
    )
    .map_err(io(&path))?;
    let mut cam = camera::Camera::new(
        spec.camera_w as usize,
        spec.camera_h as usize,
        spec.seed,
        plan,
        hour,
    );
    let frames = (spec.duration_s * spec.camera_fps as f32) as u64;
    for i in 0..frames {
        let luma = cam.frame(i as f32 / spec.camera_fps as f32);
        out.write_all(b"FRAME\n").map_err(io(&path))?;
        out.write_all(&luma).map_err(io(&path))?;
    }
    out.flush().map_err(io(&path))
}

fn write_climate(
    spec: &SceneSpec,
    plan: &[Happening],
    dir: &Path,
    hour: f32,
) -> Result<(), GenError> {
    let path = dir.join("climate.csv");
    let mut text = String::from("t_s,temperature_c,humidity_pct,pressure_hpa\n");
    for r in climate::readings(
        spec.seed,
        plan,
        spec.duration_s,
        spec.climate_period_s,
        hour,
    ) {
        text.push_str(&format!(
            "{:.1},{:.2},{:.1},{:.2}\n",
            r.t_s, r.temperature_c, r.humidity_pct, r.pressure_hpa
        ));
    }
    std::fs::write(&path, text).map_err(io(&path))
}

#[cfg(test)]
mod tests;
