//! The payload of a settings bundle: a small patch of what may change in
//! the field without a visit. Every field is optional; what is absent stays
//! as configured. It is small enough that a whole signed bundle fits in one
//! Iridium mobile-terminated message.
//!
//! Fractions are in permille. The node checks a patch like its
//! configuration before applying it.

use messages::EventClass;
use serde::{Deserialize, Serialize};

/// Longest settings bundle that travels in one Iridium MT message, bytes.
pub const SBD_MT_MAX: usize = 270;

/// A settings patch.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SettingsPatch {
    /// Per-class confidence thresholds (`[fusion] thresholds`), permille.
    pub thresholds: Vec<(EventClass, u16)>,
    /// Classes never stored (`[fusion] exclude`); replaces the list.
    pub exclude: Option<Vec<EventClass>>,
    /// `[power.policy] camera_interval_ms`.
    pub camera_interval_ms: Option<u32>,
    /// `[power.policy] camera_interval_saver_ms`.
    pub camera_interval_saver_ms: Option<u32>,
    /// `[power.policy] climate_interval_ms`.
    pub climate_interval_ms: Option<u32>,
    /// `[power.policy] climate_interval_critical_ms`.
    pub climate_interval_critical_ms: Option<u32>,
    /// `[power.policy] saver_below_soc`, permille.
    pub saver_below_soc: Option<u16>,
    /// `[power.policy] critical_below_soc`, permille.
    pub critical_below_soc: Option<u16>,
    /// `[power.policy] burst_min_soc`, permille.
    pub burst_min_soc: Option<u16>,
    /// `[power.policy] uplink_min_soc`, permille.
    pub uplink_min_soc: Option<u16>,
    /// `[power.policy] update_min_soc`, permille.
    pub update_min_soc: Option<u16>,
}

/// Why a settings payload was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PatchError {
    /// Not a patch.
    #[error("settings patch does not decode ({0})")]
    Decode(String),
    /// A value out of range.
    #[error("settings patch: {field} {problem}")]
    Invalid {
        /// The field.
        field: &'static str,
        /// What is wrong.
        problem: String,
    },
}

impl SettingsPatch {
    /// The canonical bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        postcard::to_allocvec(self).unwrap_or_default()
    }

    /// Decodes and checks the ranges a patch can check alone (the node
    /// checks the result against the rest of its configuration).
    pub fn from_bytes(bytes: &[u8]) -> Result<SettingsPatch, PatchError> {
        let p: SettingsPatch =
            postcard::from_bytes(bytes).map_err(|e| PatchError::Decode(e.to_string()))?;
        if p.to_bytes() != bytes {
            return Err(PatchError::Decode("not in canonical form".into()));
        }
        p.check()?;
        Ok(p)
    }

    /// Range checks.
    pub fn check(&self) -> Result<(), PatchError> {
        let bad = |field, problem: &str| {
            Err(PatchError::Invalid {
                field,
                problem: problem.into(),
            })
        };
        let mut seen = Vec::new();
        for (class, t) in &self.thresholds {
            if *t > 1000 {
                return bad("thresholds", "must be at most 1000 permille");
            }
            if seen.contains(class) {
                return bad("thresholds", "names a class twice");
            }
            seen.push(*class);
        }
        for (field, v) in [
            ("camera_interval_ms", self.camera_interval_ms),
            ("camera_interval_saver_ms", self.camera_interval_saver_ms),
            ("climate_interval_ms", self.climate_interval_ms),
            (
                "climate_interval_critical_ms",
                self.climate_interval_critical_ms,
            ),
        ] {
            if v.is_some_and(|v| !(50..=3_600_000).contains(&v)) {
                return bad(field, "must be between 50 ms and 1 h");
            }
        }
        for (field, v) in [
            ("saver_below_soc", self.saver_below_soc),
            ("critical_below_soc", self.critical_below_soc),
            ("burst_min_soc", self.burst_min_soc),
            ("uplink_min_soc", self.uplink_min_soc),
            ("update_min_soc", self.update_min_soc),
        ] {
            if v.is_some_and(|v| v > 1000) {
                return bad(field, "must be at most 1000 permille");
            }
        }
        Ok(())
    }
}
