//! The time floor: the earliest time the clock can truly read. It is the
//! latest of the build time and every event time the node has stored,
//! persisted in `<data_dir>/time/floor` (decimal ms since the epoch,
//! replaced atomically and fsynced), so it survives a reboot with a reset
//! clock.

use std::path::{Path, PathBuf};

use uplink::store::durable::{create_dir_durably, replace_atomically};

/// Why the floor could not be read or kept.
#[derive(Debug, thiserror::Error)]
pub enum FloorError {
    /// The file or its directory could not be read or written.
    #[error("time floor {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What failed.
        source: std::io::Error,
    },
    /// The new floor could not be written in place.
    #[error("time floor: {0}")]
    Write(#[from] uplink::store::StoreError),
    /// The file holds something else than a time.
    #[error("time floor {path}: not a time in ms ({text:?})")]
    Malformed {
        /// The file.
        path: PathBuf,
        /// Its first bytes.
        text: String,
    },
}

/// The persisted floor.
#[derive(Debug)]
pub struct TimeFloor {
    path: PathBuf,
    floor_ms: i64,
    persisted_ms: Option<i64>,
    durable: bool,
}

/// The file, under the data directory.
pub fn path(data_dir: &Path) -> PathBuf {
    data_dir.join("time").join("floor")
}

impl TimeFloor {
    /// Reads the floor under `data_dir`, never below `build_ms`. A missing
    /// file is a first start; a malformed one is an error (the caller logs
    /// it and goes on from the build time: the file is rewritten at the
    /// next stored event).
    pub fn open(data_dir: &Path, build_ms: i64) -> Result<TimeFloor, FloorError> {
        let path = path(data_dir);
        let persisted = match std::fs::read_to_string(&path) {
            Ok(text) => Some(
                text.trim()
                    .parse::<i64>()
                    .map_err(|_| FloorError::Malformed {
                        path: path.clone(),
                        text: text.chars().take(40).collect(),
                    })?,
            ),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(source) => return Err(FloorError::Io { path, source }),
        };
        Ok(TimeFloor {
            floor_ms: persisted.unwrap_or(i64::MIN).max(build_ms),
            persisted_ms: persisted,
            path,
            durable: true,
        })
    }

    /// A floor that is not persisted (a malformed file, or tests).
    pub fn in_memory(data_dir: &Path, floor_ms: i64) -> TimeFloor {
        TimeFloor {
            path: path(data_dir),
            floor_ms,
            persisted_ms: None,
            durable: false,
        }
    }

    /// The directory the floor was read from (`<data_dir>/time`), `None`
    /// for a floor made with [`TimeFloor::in_memory`].
    pub fn dir(&self) -> Option<&Path> {
        self.durable.then(|| self.path.parent()).flatten()
    }

    /// The floor, ms since the epoch.
    pub fn get(&self) -> i64 {
        self.floor_ms
    }

    /// Raises the floor to `t_ms` (an event time just stored) and persists
    /// it when it rose. A lower `t_ms` changes nothing and writes nothing.
    pub fn raise(&mut self, t_ms: i64) -> Result<(), FloorError> {
        self.floor_ms = self.floor_ms.max(t_ms);
        if self.persisted_ms.is_some_and(|p| p >= self.floor_ms) {
            return Ok(());
        }
        self.persist()
    }

    /// Sets the floor to `t_ms`, lower or not, and persists it: for a time
    /// the node must believe over its own records (the technician's, when
    /// events were stamped by a clock that ran ahead).
    pub fn reset(&mut self, t_ms: i64) -> Result<(), FloorError> {
        self.floor_ms = t_ms;
        self.persist()
    }

    fn persist(&mut self) -> Result<(), FloorError> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| FloorError::Io { path, source }
        };
        if let Some(dir) = self.path.parent() {
            create_dir_durably(dir).map_err(io(dir))?;
        }
        replace_atomically(&self.path, self.floor_ms.to_string().as_bytes())?;
        self.persisted_ms = Some(self.floor_ms);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_floor_survives_a_restart_and_never_goes_down() {
        let dir = tempfile::tempdir().unwrap();
        let mut f = TimeFloor::open(dir.path(), 1_000).unwrap();
        assert_eq!(f.get(), 1_000);
        f.raise(5_000).unwrap();
        f.raise(4_000).unwrap();
        assert_eq!(f.get(), 5_000);
        let f = TimeFloor::open(dir.path(), 1_000).unwrap();
        assert_eq!(f.get(), 5_000, "persisted");
        let mut f = TimeFloor::open(dir.path(), 9_000).unwrap();
        assert_eq!(f.get(), 9_000, "never below the build time");
        f.reset(2_000).unwrap();
        let f = TimeFloor::open(dir.path(), 1_000).unwrap();
        assert_eq!(f.get(), 2_000, "a reset is persisted");
    }

    #[test]
    fn a_malformed_floor_file_is_an_error_not_a_zero() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("time")).unwrap();
        std::fs::write(path(dir.path()), b"\x00garbage").unwrap();
        let e = TimeFloor::open(dir.path(), 1_000).unwrap_err();
        assert!(matches!(e, FloorError::Malformed { .. }), "{e}");
    }
}
