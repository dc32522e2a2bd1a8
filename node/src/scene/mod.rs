//! Reading scene directories (see `docs/scenes.md`): metadata, audio, climate
//! and camera files. Each reader names the file, the place in it and what was
//! expected when the content is malformed; nothing here panics on file
//! content.

pub mod climate;
pub mod meta;
pub mod wav;
pub mod y4m;

use std::path::{Path, PathBuf};

pub use climate::read_climate_csv;
pub use meta::SceneMeta;
pub use wav::WavAudio;
pub use y4m::Y4mReader;

/// Where in a file something went wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A line (1-based) and, where known, a column name.
    Line { line: u64, column: Option<String> },
    /// A byte offset from the start of the file.
    Offset(u64),
    /// The file as a whole.
    File,
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Location::Line {
                line,
                column: Some(c),
            } => write!(f, "line {line}, column `{c}`"),
            Location::Line { line, column: None } => write!(f, "line {line}"),
            Location::Offset(o) => write!(f, "byte offset {o}"),
            Location::File => f.write_str("file"),
        }
    }
}

/// A scene file that could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SceneError {
    /// The file exists but its content is not what the format requires.
    #[error("{}: {at}: {problem}", path.display())]
    Malformed {
        /// The file.
        path: PathBuf,
        /// Where in it.
        at: Location,
        /// What was expected and what was found.
        problem: String,
    },
    /// The file could not be read at all.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A required file is missing.
    #[error("{}: missing (a scene directory needs at least scene.toml)", path.display())]
    Missing {
        /// The file.
        path: PathBuf,
    },
}

impl SceneError {
    pub(crate) fn malformed(path: &Path, at: Location, problem: impl Into<String>) -> Self {
        SceneError::Malformed {
            path: path.to_path_buf(),
            at,
            problem: problem.into(),
        }
    }

    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        SceneError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// A scene directory, checked: metadata read, every present file validated.
#[derive(Debug, Clone)]
pub struct Scene {
    /// The directory.
    pub dir: PathBuf,
    /// `scene.toml`.
    pub meta: SceneMeta,
    /// `audio.wav`, if present (validated).
    pub audio: Option<PathBuf>,
    /// `climate.csv`, if present (validated).
    pub climate: Option<PathBuf>,
    /// `camera.y4m`, if present (validated).
    pub camera: Option<PathBuf>,
    /// Length of the longest modality, milliseconds.
    pub duration_ms: i64,
}

impl Scene {
    /// Opens a scene directory and validates every file in it, so that a
    /// malformed file is reported before the node starts, not halfway.
    pub fn open(dir: &Path) -> Result<Scene, SceneError> {
        let meta_path = dir.join("scene.toml");
        if !meta_path.is_file() {
            return Err(SceneError::Missing { path: meta_path });
        }
        let meta = SceneMeta::read(&meta_path)?;
        let present = |name: &str| {
            let p = dir.join(name);
            p.is_file().then_some(p)
        };
        let audio = present("audio.wav");
        let climate = present("climate.csv");
        let camera = present("camera.y4m");
        let mut duration_ms = 0i64;
        if let Some(p) = &audio {
            let info = wav::validate(p)?;
            duration_ms = duration_ms.max(info.duration_ms());
        }
        if let Some(p) = &climate {
            let rows = read_climate_csv(p)?;
            if let Some(last) = rows.last() {
                duration_ms = duration_ms.max((last.t_s * 1000.0).round() as i64);
            }
        }
        if let Some(p) = &camera {
            let info = y4m::validate(p)?;
            duration_ms = duration_ms.max(info.duration_ms());
        }
        Ok(Scene {
            dir: dir.to_path_buf(),
            meta,
            audio,
            climate,
            camera,
            duration_ms,
        })
    }
}
