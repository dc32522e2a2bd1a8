//! `fieldgen`: a second, independent family of generated scenes.
//!
//! A scene is planned once from a seed ([`plan`]): its formats, its weather
//! (wind with gusts, rain showers, clouds, the sun's course), its steady
//! background (insect chorus, distant road and aircraft, a humming machine)
//! and its labelled events (wildlife calls, people talking and walking, a
//! machine that starts to sound wrong and heat up). The writers then stream
//! each modality from the plan:
//!
//! - [`audio`] mixes the sources ([`ambience`], [`wildlife`], [`human`],
//!   [`machine`]) block by block into `audio.wav`;
//! - [`camera`] renders `camera.y4m` frame by frame (light, auto-exposure,
//!   IR night frames, swaying vegetation, [`figures`] crossing the view);
//! - [`climate`] writes `climate.csv` (diurnal curve, sun on the enclosure,
//!   machine heat);
//! - [`files`] writes `scene.toml` and `labels.csv`.
//!
//! The same seed and options always give the same bytes. The synthesis is
//! built from [`signal`] primitives and slow [`track`] curves.

pub mod ambience;
pub mod audio;
pub mod camera;
pub mod climate;
pub mod figures;
pub mod files;
pub mod human;
pub mod machine;
pub mod plan;
pub mod signal;
pub mod sky;
pub mod track;
pub mod wildlife;

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

pub use plan::{AudioFormat, CameraFormat, Label, Plan};

/// The generator version written to `scene.toml`.
pub const VERSION: u32 = 1;

/// Longest scene accepted, seconds (one week).
pub const MAX_DURATION_S: f64 = 7.0 * 86_400.0;

/// The dominant field condition of a scene.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Condition {
    /// Little wind, no machine hum.
    Calm,
    /// Strong gusty wind throughout.
    Windy,
    /// A machine humming all the time, hardly any wind.
    Hum,
    /// Long rain.
    Rain,
    /// Night: IR camera frames, night temperatures, frogs and insects.
    Night,
    /// The seed picks; mixtures allowed.
    Random,
}

impl Condition {
    /// Every condition, in the order of the command line's list.
    pub const ALL: [Condition; 6] = [
        Condition::Calm,
        Condition::Windy,
        Condition::Hum,
        Condition::Rain,
        Condition::Night,
        Condition::Random,
    ];

    /// The name on the command line and in `scene.toml`.
    pub fn name(self) -> &'static str {
        match self {
            Condition::Calm => "calm",
            Condition::Windy => "windy",
            Condition::Hum => "hum",
            Condition::Rain => "rain",
            Condition::Night => "night",
            Condition::Random => "random",
        }
    }
}

impl fmt::Display for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Condition {
    type Err = FieldgenError;
    fn from_str(s: &str) -> Result<Condition, FieldgenError> {
        Condition::ALL
            .into_iter()
            .find(|c| c.name() == s)
            .ok_or_else(|| {
                FieldgenError::Option(format!(
                    "unknown condition {s:?} (calm, windy, hum, rain, night, random)"
                ))
            })
    }
}

/// What to generate. `None` fields are chosen by the seed.
#[derive(Debug, Clone)]
pub struct Options {
    /// The seed: the same seed and options give the same bytes.
    pub seed: u64,
    /// Length of the scene, seconds.
    pub duration_s: f64,
    /// Dominant condition.
    pub condition: Condition,
    /// No labelled class events (background episodes still happen).
    pub background_only: bool,
    /// Audio sampling rate, Hz.
    pub audio_rate: Option<u32>,
    /// Audio channels (1 or 2).
    pub channels: Option<u16>,
    /// Camera frame size (width, height).
    pub camera_size: Option<(u32, u32)>,
    /// Camera frames per second.
    pub camera_fps: Option<u32>,
    /// Write `audio.wav`.
    pub audio: bool,
    /// Write `camera.y4m`.
    pub camera: bool,
    /// Write `climate.csv`.
    pub climate: bool,
    /// Scene start, RFC 3339.
    pub start: Option<String>,
    /// Each daylight frame's header says the exposure its auto-exposure
    /// chose (`XEXPOSURE`), as a camera that reports it would.
    pub report_exposure: bool,
}

impl Options {
    /// Defaults: 600 s, random condition, every modality, formats by seed.
    pub fn new(seed: u64) -> Options {
        Options {
            seed,
            duration_s: 600.0,
            condition: Condition::Random,
            background_only: false,
            audio_rate: None,
            channels: None,
            camera_size: None,
            camera_fps: None,
            audio: true,
            camera: true,
            climate: true,
            start: None,
            report_exposure: false,
        }
    }
}

/// Parses a frame size written `WxH`.
pub fn parse_size(s: &str) -> Result<(u32, u32), FieldgenError> {
    let bad = || FieldgenError::Option(format!("camera size {s:?} is not WxH, e.g. 160x120"));
    let (w, h) = s.split_once(['x', 'X']).ok_or_else(bad)?;
    Ok((
        w.trim().parse().map_err(|_| bad())?,
        h.trim().parse().map_err(|_| bad())?,
    ))
}

/// Why a scene could not be generated.
#[derive(Debug, thiserror::Error)]
pub enum FieldgenError {
    /// An option is out of range or malformed.
    #[error("bad option: {0}")]
    Option(String),
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// Writing the WAV file failed.
    #[error("{path}: {source}")]
    Wav {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: hound::Error,
    },
}

impl FieldgenError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> FieldgenError {
        FieldgenError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// What was written.
#[derive(Debug, Clone)]
pub struct Summary {
    /// The plan the files were written from.
    pub plan: Plan,
    /// The files written, in order.
    pub files: Vec<PathBuf>,
}

/// Plans the scene and writes every file into `out` (created if missing).
pub fn generate(opts: &Options, out: &Path) -> Result<Summary, FieldgenError> {
    let plan = Plan::new(opts)?;
    std::fs::create_dir_all(out).map_err(|e| FieldgenError::io(out, e))?;
    let mut files = Vec::new();
    let toml = out.join("scene.toml");
    files::write_scene_toml(&plan, &toml)?;
    files.push(toml);
    let labels = out.join("labels.csv");
    files::write_labels(&plan, &labels)?;
    files.push(labels);
    for (name, wanted) in [
        ("audio.wav", plan.audio.is_some()),
        ("camera.y4m", plan.camera.is_some()),
        ("climate.csv", plan.climate_step.is_some()),
    ] {
        let p = out.join(name);
        if !wanted {
            // A stale file from an earlier run would stand for a sensor
            // this scene does not have.
            match std::fs::remove_file(&p) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(FieldgenError::io(&p, e)),
            }
        }
    }
    if let Some(fmt) = plan.audio {
        let p = out.join("audio.wav");
        audio::write_wav(&plan, fmt, &p)?;
        files.push(p);
    }
    if let Some(fmt) = plan.camera {
        let p = out.join("camera.y4m");
        camera::write_y4m(&plan, fmt, opts.report_exposure, &p)?;
        files.push(p);
    }
    if let Some(step) = plan.climate_step {
        let p = out.join("climate.csv");
        climate::write_csv(&plan, step, &p)?;
        files.push(p);
    }
    Ok(Summary { plan, files })
}
