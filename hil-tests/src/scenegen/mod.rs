//! The scene generator: writes scene directories (`docs/scenes.md`) from a
//! preset, a seed and field conditions, with labelled events. The same spec
//! always gives the same bytes.
//!
//! - [`plan`]: the schedule of events and background episodes;
//! - [`sounds`]: wind, rain, bird song, barks, a machine and its fault, speech, footsteps;
//! - [`camera`]: the view and what crosses it;
//! - [`climate`]: temperature, humidity, pressure;
//! - [`conditions`]: field conditions ([`Condition`]) and the [`conditions::Field`]
//!   a seed draws for them;
//! - [`weather`]: gusty wind, rain, distant traffic and aircraft, clouds over the sun;
//! - [`chorus`]: insect and frog choruses;
//! - [`hum`]: mains hum;
//! - [`mic`]: channels, input gain, clipping;
//! - [`view`]: camera noise, auto-exposure, infrared, swaying vegetation, light changes;
//! - [`enclosure`]: sun, shade, a machine's heat and cold nights on the climate sensor;
//! - [`dsp`]: seeded random streams, filters, oscillators.
//!
//! With [`Condition::None`] (the default) a scene is exactly the preset's:
//! none of the condition modules run and no random stream of theirs is drawn.

pub mod camera;
pub mod chorus;
pub mod climate;
pub mod conditions;
pub mod dsp;
pub mod enclosure;
pub mod hum;
pub mod mic;
pub mod plan;
pub mod sounds;
pub mod view;
pub mod weather;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::str::FromStr;

pub use conditions::Condition;
use conditions::{Field, FieldSpec, Formats};
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
    /// Field conditions.
    pub condition: Condition,
    /// Audio channels, 1 or 2.
    pub channels: u16,
    /// Leave out the labelled events (wildlife, human activity, machinery
    /// anomalies): only background, and background episodes.
    pub background_only: bool,
    /// With [`Condition::Random`], the seed draws the sample rate, channels,
    /// frame size and frame rate in place of the fields above.
    pub draw_formats: bool,
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
            condition: Condition::None,
            channels: 1,
            background_only: false,
            draw_formats: true,
        }
    }

    /// Sets the condition and the start that suits it: 22:30 UTC for
    /// `night`, an hour drawn from the seed for `random`, unchanged
    /// otherwise. Set `start` afterwards to choose another.
    pub fn with_condition(mut self, condition: Condition) -> Self {
        self.condition = condition;
        match condition {
            Condition::Night => self.start = "2026-06-01T22:30:00Z".into(),
            Condition::Random => self.start = conditions::random_start(self.seed),
            _ => {}
        }
        self
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
    /// The spec the files were written in (a random scene's drawn formats).
    pub spec: SceneSpec,
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

/// What a scene is made from: the spec (with the formats a random scene
/// draws), the schedule with what the conditions add, and the conditions.
#[derive(Debug, Clone)]
pub struct Scene {
    /// The spec the files are written in.
    pub spec: SceneSpec,
    /// Start hour, UTC.
    pub hour: f32,
    /// Everything scheduled, labelled, in time order.
    pub plan: Vec<Happening>,
    /// The field conditions (`None` for [`Condition::None`]).
    pub field: Option<Field>,
}

/// Checks `spec` and works out the scene it describes.
pub fn prepare(spec: &SceneSpec) -> Result<Scene, GenError> {
    let mut spec = spec.clone();
    if spec.condition == Condition::Random && spec.draw_formats {
        let f = Formats::draw(spec.seed);
        spec.audio_rate = f.audio_rate;
        spec.channels = f.channels;
        spec.camera_w = f.camera_w;
        spec.camera_h = f.camera_h;
        spec.camera_fps = f.camera_fps;
    }
    check(&spec)?;
    let hour = start_hour(&spec.start)?;
    let mut plan = plan::schedule(spec.preset, spec.seed, spec.duration_s);
    let field = (spec.condition != Condition::None).then(|| {
        Field::draw(
            &FieldSpec {
                condition: spec.condition,
                seed: spec.seed,
                duration_s: spec.duration_s,
                audio_rate: spec.audio_rate,
                channels: spec.channels,
                start_hour: hour,
                preset_machine: spec.preset.has_machine(),
            },
            &plan,
        )
    });
    if let Some(f) = &field {
        plan.extend(f.extra.iter().cloned());
        plan.sort_by(|a, b| a.start_s.total_cmp(&b.start_s));
    }
    if spec.background_only {
        plan.retain(|p| p.kind.class() == "background");
    }
    Ok(Scene {
        spec,
        hour,
        plan,
        field,
    })
}

fn check(spec: &SceneSpec) -> Result<(), GenError> {
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
    if !(1..=2).contains(&spec.channels) {
        return Err(GenError::Spec("audio channels must be 1 or 2".into()));
    }
    Ok(())
}

/// Writes the scene described by `spec` into `out_dir` (created if needed).
pub fn generate(spec: &SceneSpec, out_dir: &Path) -> Result<SceneSummary, GenError> {
    let scene = prepare(spec)?;
    let (spec, plan, field, hour) = (&scene.spec, &scene.plan, scene.field.as_ref(), scene.hour);
    std::fs::create_dir_all(out_dir).map_err(io(out_dir))?;
    write_meta(spec, out_dir)?;
    if spec.audio {
        write_audio(spec, plan, field, out_dir)?;
    } else {
        remove_if_exists(&out_dir.join("audio.wav"))?;
    }
    if spec.camera {
        write_camera(spec, plan, field, out_dir, hour)?;
    } else {
        remove_if_exists(&out_dir.join("camera.y4m"))?;
    }
    if spec.climate {
        write_climate(spec, plan, field, out_dir, hour)?;
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
        spec: spec.clone(),
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
    // The node's scene.toml has no key for the condition: it goes in the
    // name and the description.
    let (name_tail, desc_tail) = match spec.condition {
        Condition::None => (String::new(), String::new()),
        c => (
            format!("-{}", c.as_str()),
            format!(", condition {}", c.as_str()),
        ),
    };
    let only = if spec.background_only {
        ", background only"
    } else {
        ""
    };
    let text = format!(
        "start = \"{}\"\nname = \"{}-{}{}\"\ndescription = \"generated by scenegen: preset {}, seed {}, {} s{}{}\"\n\n[generator]\npreset = \"{}\"\nseed = {}\nversion = {}\n",
        spec.start,
        spec.preset.as_str(),
        spec.seed,
        name_tail,
        spec.preset.as_str(),
        spec.seed,
        spec.duration_s,
        desc_tail,
        only,
        spec.preset.as_str(),
        spec.seed,
        GENERATOR_VERSION
    );
    std::fs::write(&path, text).map_err(io(&path))
}

/// Renders the whole soundtrack of a scene without field conditions (mono).
pub fn render_audio(spec: &SceneSpec, plan: &[Happening]) -> Vec<f32> {
    let mut buf = render_sources(spec, plan, None);
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

/// Renders the soundtrack of a scene under `field` (or of a stereo scene
/// without conditions): one buffer per channel, as written.
pub fn render_channels(
    spec: &SceneSpec,
    plan: &[Happening],
    field: Option<&Field>,
) -> Vec<Vec<f32>> {
    let channels = usize::from(spec.channels.clamp(1, 2));
    let coherent = render_sources(spec, plan, field);
    let mut out = vec![Vec::with_capacity(coherent.len()); channels];
    let mic = field.map_or_else(|| mic::Mic::plain(spec.channels), |f| f.mic.clone());
    let _ = mix_into(spec, &coherent, &mic, field, |block| {
        for (i, v) in block.iter().enumerate() {
            out[i % channels].push(*v);
        }
        Ok::<(), std::convert::Infallible>(())
    });
    out
}

fn mix_into<E>(
    spec: &SceneSpec,
    coherent: &[f32],
    mic: &mic::Mic,
    field: Option<&Field>,
    sink: impl FnMut(&[f32]) -> Result<(), E>,
) -> Result<(), E> {
    mic::mix(
        coherent,
        spec.audio_rate as f32,
        mic,
        field.map(|f| &f.wind),
        spec.seed,
        sink,
    )
}

/// Every source that reaches both microphones alike, summed, before the
/// input stage: the preset's sounds and, under `field`, the conditions'
/// (all but the wind, which [`mic::mix`] adds per channel).
fn render_sources(spec: &SceneSpec, plan: &[Happening], field: Option<&Field>) -> Vec<f32> {
    let rate = spec.audio_rate as f32;
    let mut buf = vec![0f32; (spec.duration_s * rate) as usize];
    if field.is_none() {
        // The preset's light wind; under field conditions the field's wind
        // takes its place, with the same gusts.
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
    }
    let machine = if spec.preset.has_machine() {
        Some(sounds::Machine::new(
            &mut dsp::stream(spec.seed, "machine"),
            -38.0,
        ))
    } else {
        field
            .and_then(|f| f.machine_db)
            .map(|db| sounds::Machine::new(&mut dsp::stream(spec.seed, "field-machine"), db))
    };
    if let Some(m) = &machine {
        let mut rng = dsp::stream(spec.seed, "machine-noise");
        if field.is_some() {
            m.render_fast(&mut buf, rate, &mut rng);
        } else {
            m.render(&mut buf, rate, &mut rng);
        }
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
            Kind::Rainfall {
                level_db,
                drops_per_s,
            } => weather::rain(
                &mut buf,
                rate,
                &mut rng,
                p.start_s,
                p.end_s,
                level_db,
                drops_per_s,
            ),
            Kind::Aircraft { level_db } => {
                weather::aircraft(&mut buf, rate, &mut rng, p.start_s, p.end_s, level_db)
            }
            _ => {}
        }
    }
    if let Some(f) = field {
        if let Some(c) = &f.insects {
            c.render(&mut buf, rate);
        }
        if let Some(c) = &f.frogs {
            c.render(&mut buf, rate);
        }
        if let Some(t) = &f.traffic {
            t.render(
                &mut buf,
                rate,
                &mut dsp::stream(spec.seed, "field-traffic-noise"),
            );
        }
        if let Some(h) = &f.mains {
            h.render(&mut buf, rate);
        }
    }
    buf
}

fn write_audio(
    spec: &SceneSpec,
    plan: &[Happening],
    field: Option<&Field>,
    dir: &Path,
) -> Result<(), GenError> {
    let path = dir.join("audio.wav");
    let ws = hound::WavSpec {
        channels: spec.channels,
        sample_rate: spec.audio_rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let wav = |source| GenError::Wav {
        path: path.clone(),
        source,
    };
    let mut w = hound::WavWriter::create(&path, ws).map_err(wav)?;
    if field.is_none() && spec.channels == 1 {
        for v in render_audio(spec, plan) {
            w.write_sample((v * 32767.0).round() as i16).map_err(wav)?;
        }
    } else {
        let coherent = render_sources(spec, plan, field);
        let mic = field.map_or_else(|| mic::Mic::plain(spec.channels), |f| f.mic.clone());
        mix_into(spec, &coherent, &mic, field, |block| {
            for v in block {
                w.write_sample((v * 32767.0).round() as i16)?;
            }
            Ok(())
        })
        .map_err(wav)?;
    }
    w.finalize().map_err(wav)
}

fn write_camera(
    spec: &SceneSpec,
    plan: &[Happening],
    field: Option<&Field>,
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
    if let Some(f) = field {
        cam.set_conditions(|w, h, horizon| {
            view::FieldView::new(
                f.view.clone(),
                Some(f.wind.clone()),
                f.sky.clone(),
                w,
                h,
                horizon,
                &mut dsp::stream(spec.seed, "field-camera"),
            )
        });
    }
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
    field: Option<&Field>,
    dir: &Path,
    hour: f32,
) -> Result<(), GenError> {
    let path = dir.join("climate.csv");
    let mut text = String::from("t_s,temperature_c,humidity_pct,pressure_hpa\n");
    let mut readings = climate::readings(
        spec.seed,
        plan,
        spec.duration_s,
        spec.climate_period_s,
        hour,
    );
    if let Some(f) = field {
        f.enclosure.apply(&mut readings, &f.sky, hour);
    }
    for r in readings {
        text.push_str(&format!(
            "{:.1},{:.2},{:.1},{:.2}\n",
            r.t_s, r.temperature_c, r.humidity_pct, r.pressure_hpa
        ));
    }
    std::fs::write(&path, text).map_err(io(&path))
}

#[cfg(test)]
mod tests;
