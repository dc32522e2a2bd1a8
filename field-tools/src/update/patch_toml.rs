//! The settings patch as the operator writes it: TOML in the node's
//! configuration units (fractions 0..1, class names), converted to and from
//! [`SettingsPatch`] (permille, [`EventClass`]).
//!
//! ```toml
//! thresholds = { wildlife = 0.6, machinery_anomaly = 0.7 }
//! exclude = ["background"]
//! camera_interval_ms = 1000
//! burst_min_soc = 0.25
//! ```
//!
//! Every key is optional; an unknown key is an error.

use std::collections::BTreeMap;

use messages::EventClass;
use models::bundle::{PatchError, SettingsPatch};
use serde::{Deserialize, Serialize};

/// A settings patch in configuration units.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PatchToml {
    /// `[fusion] thresholds`: class name → fraction 0..1.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub thresholds: BTreeMap<String, f64>,
    /// `[fusion] exclude`: class names (replaces the list).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exclude: Option<Vec<String>>,
    /// `[power.policy] camera_interval_ms`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub camera_interval_ms: Option<u32>,
    /// `[power.policy] camera_interval_saver_ms`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub camera_interval_saver_ms: Option<u32>,
    /// `[power.policy] climate_interval_ms`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub climate_interval_ms: Option<u32>,
    /// `[power.policy] climate_interval_critical_ms`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub climate_interval_critical_ms: Option<u32>,
    /// `[power.policy] saver_below_soc`, fraction.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub saver_below_soc: Option<f64>,
    /// `[power.policy] critical_below_soc`, fraction.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub critical_below_soc: Option<f64>,
    /// `[power.policy] burst_min_soc`, fraction.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub burst_min_soc: Option<f64>,
    /// `[power.policy] uplink_min_soc`, fraction.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uplink_min_soc: Option<f64>,
    /// `[power.policy] update_min_soc`, fraction.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update_min_soc: Option<f64>,
}

/// Why a patch file was refused.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum PatchTomlError {
    /// Not TOML, an unknown key or a wrong type.
    #[error("settings patch: {0}")]
    Parse(String),
    /// A class name the node does not know.
    #[error("settings patch: {field}: unknown class `{name}` (known: {known})")]
    Class {
        /// Where.
        field: String,
        /// The name given.
        name: String,
        /// The known names.
        known: String,
    },
    /// A fraction outside 0..1.
    #[error("settings patch: {field} = {value} is not a fraction between 0 and 1")]
    Fraction {
        /// Where.
        field: String,
        /// The value given.
        value: f64,
    },
    /// The converted patch fails its own range checks.
    #[error(transparent)]
    Patch(#[from] PatchError),
}

fn class(field: &str, name: &str) -> Result<EventClass, PatchTomlError> {
    EventClass::parse(name).ok_or_else(|| PatchTomlError::Class {
        field: field.to_string(),
        name: name.to_string(),
        known: EventClass::ALL.map(EventClass::as_str).join(", "),
    })
}

/// Converts a fraction to permille; notes a value that is not a whole
/// number of permille (it is rounded).
fn permille(field: &str, x: f64, notes: &mut Vec<String>) -> Result<u16, PatchTomlError> {
    if !x.is_finite() || !(0.0..=1.0).contains(&x) {
        return Err(PatchTomlError::Fraction {
            field: field.to_string(),
            value: x,
        });
    }
    let scaled = x * 1000.0;
    let p = scaled.round();
    if (scaled - p).abs() > 1e-6 {
        notes.push(format!(
            "{field} = {x} rounded to {} (the patch carries permille)",
            p / 1000.0
        ));
    }
    Ok(p as u16)
}

impl PatchToml {
    /// Parses a patch file's text.
    pub fn from_toml(text: &str) -> Result<PatchToml, PatchTomlError> {
        toml::from_str(text).map_err(|e| PatchTomlError::Parse(e.message().to_string()))
    }

    /// The patch in wire units, checked with [`SettingsPatch::check`], and
    /// notes on values that were rounded.
    pub fn to_patch(&self) -> Result<(SettingsPatch, Vec<String>), PatchTomlError> {
        let mut notes = Vec::new();
        let mut thresholds = Vec::with_capacity(self.thresholds.len());
        for (name, x) in &self.thresholds {
            let field = format!("thresholds.{name}");
            thresholds.push((class(&field, name)?, permille(&field, *x, &mut notes)?));
        }
        // Wire order, so the same patch always packs to the same bytes.
        thresholds.sort_by_key(|(c, _)| *c);
        let exclude = match &self.exclude {
            None => None,
            Some(names) => Some(
                names
                    .iter()
                    .enumerate()
                    .map(|(i, n)| class(&format!("exclude[{i}]"), n))
                    .collect::<Result<Vec<_>, _>>()?,
            ),
        };
        let mut soc = |field: &str, v: Option<f64>| -> Result<Option<u16>, PatchTomlError> {
            v.map(|x| permille(field, x, &mut notes)).transpose()
        };
        let patch = SettingsPatch {
            thresholds,
            exclude,
            camera_interval_ms: self.camera_interval_ms,
            camera_interval_saver_ms: self.camera_interval_saver_ms,
            climate_interval_ms: self.climate_interval_ms,
            climate_interval_critical_ms: self.climate_interval_critical_ms,
            saver_below_soc: soc("saver_below_soc", self.saver_below_soc)?,
            critical_below_soc: soc("critical_below_soc", self.critical_below_soc)?,
            burst_min_soc: soc("burst_min_soc", self.burst_min_soc)?,
            uplink_min_soc: soc("uplink_min_soc", self.uplink_min_soc)?,
            update_min_soc: soc("update_min_soc", self.update_min_soc)?,
        };
        patch.check()?;
        Ok((patch, notes))
    }

    /// A wire patch in configuration units (for display).
    pub fn from_patch(p: &SettingsPatch) -> PatchToml {
        let frac = |v: u16| f64::from(v) / 1000.0;
        PatchToml {
            thresholds: p
                .thresholds
                .iter()
                .map(|(c, v)| (c.as_str().to_string(), frac(*v)))
                .collect(),
            exclude: p
                .exclude
                .as_ref()
                .map(|v| v.iter().map(|c| c.as_str().to_string()).collect()),
            camera_interval_ms: p.camera_interval_ms,
            camera_interval_saver_ms: p.camera_interval_saver_ms,
            climate_interval_ms: p.climate_interval_ms,
            climate_interval_critical_ms: p.climate_interval_critical_ms,
            saver_below_soc: p.saver_below_soc.map(frac),
            critical_below_soc: p.critical_below_soc.map(frac),
            burst_min_soc: p.burst_min_soc.map(frac),
            uplink_min_soc: p.uplink_min_soc.map(frac),
            update_min_soc: p.update_min_soc.map(frac),
        }
    }

    /// Whether nothing is set.
    pub fn is_empty(&self) -> bool {
        *self == PatchToml::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FULL: &str = r#"
        thresholds = { wildlife = 0.6, machinery_anomaly = 0.7, human_activity = 0.55 }
        exclude = ["background"]
        camera_interval_ms = 1000
        camera_interval_saver_ms = 4000
        climate_interval_ms = 20000
        climate_interval_critical_ms = 120000
        saver_below_soc = 0.45
        critical_below_soc = 0.2
        burst_min_soc = 0.25
        uplink_min_soc = 0.35
        update_min_soc = 0.5
    "#;

    #[test]
    fn converts_units_and_round_trips() {
        let t = PatchToml::from_toml(FULL).unwrap();
        let (p, notes) = t.to_patch().unwrap();
        assert!(notes.is_empty(), "{notes:?}");
        assert_eq!(
            p.thresholds,
            vec![
                (EventClass::Wildlife, 600),
                (EventClass::MachineryAnomaly, 700),
                (EventClass::HumanActivity, 550),
            ]
        );
        assert_eq!(p.exclude, Some(vec![EventClass::Background]));
        assert_eq!(p.camera_interval_ms, Some(1000));
        assert_eq!(p.climate_interval_critical_ms, Some(120_000));
        assert_eq!(p.saver_below_soc, Some(450));
        assert_eq!(p.critical_below_soc, Some(200));
        assert_eq!(p.update_min_soc, Some(500));
        assert_eq!(PatchToml::from_patch(&p), t);
        // The display form parses back to the same patch.
        let again = PatchToml::from_toml(&toml::to_string(&t).unwrap()).unwrap();
        assert_eq!(again.to_patch().unwrap().0, p);
    }

    #[test]
    fn refuses_what_the_node_would_not_take() {
        let cases: [(&str, &str); 7] = [
            ("camera_interval = 5", "unknown field"),
            ("thresholds = { wolf = 0.5 }", "unknown class `wolf`"),
            ("exclude = [\"nothing\"]", "exclude[0]"),
            ("thresholds = { wildlife = 60 }", "not a fraction"),
            ("burst_min_soc = -0.1", "not a fraction"),
            ("camera_interval_ms = 10", "between 50 ms and 1 h"),
            ("camera_interval_ms = -10", "settings patch"),
        ];
        for (text, want) in cases {
            let got = PatchToml::from_toml(text).and_then(|t| t.to_patch().map(|_| ()));
            let msg = got.expect_err(text).to_string();
            assert!(msg.contains(want), "{text}: {msg}");
        }
    }

    #[test]
    fn notes_rounding() {
        let t = PatchToml::from_toml("uplink_min_soc = 0.3333").unwrap();
        let (p, notes) = t.to_patch().unwrap();
        assert_eq!(p.uplink_min_soc, Some(333));
        assert_eq!(notes.len(), 1);
        assert!(PatchToml::default().is_empty());
        assert!(!t.is_empty());
    }
}
