//! What is installed: the committed model's slot, the model on trial, the
//! settings version and the last result. Persisted atomically as TOML.

use std::path::Path;

use models::bundle::Kind;
use serde::{Deserialize, Serialize};

/// A model in a slot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlotModel {
    /// `a` or `b`.
    pub slot: String,
    /// The bundle version.
    pub version: u64,
}

/// The result of an offer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outcome {
    /// When, ms since the epoch.
    pub t_ms: i64,
    /// `model` or `settings`.
    pub kind: String,
    /// The bundle's name.
    pub name: String,
    /// The bundle's version (0 when it could not be read).
    pub version: u64,
    /// `installed`, `on_trial`, `refused`, `deferred` or `rolled_back`.
    pub result: String,
    /// Why (a refusal's code and message, the power policy's reason).
    pub reason: String,
}

/// The install state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct InstallState {
    /// The committed model; `None` = the configured `[fusion] model`.
    pub active: Option<SlotModel>,
    /// A model on trial, not yet committed.
    pub trial: Option<SlotModel>,
    /// The installed settings version (0 = none).
    pub settings_version: u64,
    /// The installed settings bundle's name (`None` in a state written
    /// before it was recorded: read as `settings`, the name `field-tools
    /// bundle pack` gives).
    pub settings_name: Option<String>,
    /// The last result.
    pub last: Option<Outcome>,
}

/// Why the state cannot be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// I/O.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Not an install state.
    #[error("{}: {problem}", path.display())]
    Parse {
        /// The file.
        path: std::path::PathBuf,
        /// What is wrong.
        problem: String,
    },
    /// The durable write failed.
    #[error(transparent)]
    Store(#[from] uplink::StoreError),
}

impl InstallState {
    /// Reads `path`; a missing file is the empty state.
    pub fn load(path: &Path) -> Result<InstallState, StateError> {
        match std::fs::read_to_string(path) {
            Ok(text) => toml::from_str(&text).map_err(|e| StateError::Parse {
                path: path.to_path_buf(),
                problem: e.to_string(),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(InstallState::default()),
            Err(source) => Err(StateError::Io {
                path: path.to_path_buf(),
                source,
            }),
        }
    }

    /// Replaces `path` atomically.
    pub fn save(&self, path: &Path) -> Result<(), StateError> {
        let text = toml::to_string(self).map_err(|e| StateError::Parse {
            path: path.to_path_buf(),
            problem: e.to_string(),
        })?;
        uplink::store::durable::replace_atomically(path, text.as_bytes())?;
        Ok(())
    }

    /// The versions this state says are installed, as (kind, name,
    /// version): the committed model (under `model_name`, the family the
    /// node runs) and the installed settings. A model on trial is not
    /// installed. Part of the rollback floor, with the trust state's.
    pub fn installed(&self, model_name: &str) -> Vec<(Kind, String, u64)> {
        let mut v = Vec::new();
        if let Some(a) = &self.active {
            v.push((Kind::Model, model_name.to_string(), a.version));
        }
        if self.settings_version > 0 {
            let name = self.settings_name.as_deref().unwrap_or("settings");
            v.push((Kind::Settings, name.to_string(), self.settings_version));
        }
        v
    }

    /// The slot a new model goes to: the one not committed.
    pub fn free_slot(&self) -> &'static str {
        match self.active.as_ref().map(|a| a.slot.as_str()) {
            Some("a") => "b",
            _ => "a",
        }
    }
}
