//! The power policy: from a [`PowerReading`] to a [`PowerMode`] (with
//! hysteresis, so the node does not flap at a threshold), and from the mode to
//! a [`Decision`] for each costly [`Step`] and a cadence for each sensor.

use serde::{Deserialize, Serialize};

use crate::PowerReading;

/// How much the node may spend.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PowerMode {
    /// Plenty of energy: every step at its normal cadence.
    Normal,
    /// Battery getting low: slower camera, no uplink below its own threshold.
    Saver,
    /// Battery nearly empty: microphone and climate only, no bursts, no uplink.
    Critical,
}

impl PowerMode {
    /// Stable lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            PowerMode::Normal => "normal",
            PowerMode::Saver => "saver",
            PowerMode::Critical => "critical",
        }
    }
}

/// A costly step the event loop asks about before taking it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Capturing a camera frame.
    CameraFrame,
    /// Waking the accelerator for a burst of inference.
    InferenceBurst,
    /// Opening an uplink session.
    Uplink,
    /// Installing a model or settings update.
    Install,
}

impl Step {
    /// Stable lower-case name, for logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Step::CameraFrame => "camera_frame",
            Step::InferenceBurst => "inference_burst",
            Step::Uplink => "uplink",
            Step::Install => "install",
        }
    }
}

/// The policy's answer for one step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Go ahead.
    Allow,
    /// Skip it, and why.
    Deny(String),
}

impl Decision {
    /// True for [`Decision::Allow`].
    pub fn allowed(&self) -> bool {
        matches!(self, Decision::Allow)
    }
}

/// Thresholds and cadences of the policy.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PolicyConfig {
    /// Enter saver mode below this state of charge.
    pub saver_below_soc: f64,
    /// Enter critical mode below this state of charge.
    pub critical_below_soc: f64,
    /// A mode is left only once the charge is this much above its threshold.
    pub hysteresis_soc: f64,
    /// Camera frame interval in normal mode, milliseconds.
    pub camera_interval_ms: u64,
    /// Camera frame interval in saver mode, milliseconds.
    pub camera_interval_saver_ms: u64,
    /// Climate reading interval in normal and saver modes, milliseconds.
    pub climate_interval_ms: u64,
    /// Climate reading interval in critical mode, milliseconds.
    pub climate_interval_critical_ms: u64,
    /// No inference burst below this state of charge.
    pub burst_min_soc: f64,
    /// No uplink session below this state of charge.
    pub uplink_min_soc: f64,
    /// No update is installed below this state of charge, nor outside
    /// normal mode.
    pub update_min_soc: f64,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        PolicyConfig {
            saver_below_soc: 0.40,
            critical_below_soc: 0.15,
            hysteresis_soc: 0.05,
            camera_interval_ms: 500,
            camera_interval_saver_ms: 2_000,
            climate_interval_ms: 10_000,
            climate_interval_critical_ms: 60_000,
            burst_min_soc: 0.20,
            uplink_min_soc: 0.30,
            update_min_soc: 0.50,
        }
    }
}

impl PolicyConfig {
    /// Range checks, as `(key path relative to this table, problem)`.
    pub fn validate(&self) -> Vec<(String, String)> {
        let mut errs = Vec::new();
        let frac = |v: f64| (0.0..=1.0).contains(&v);
        for (v, k) in [
            (self.saver_below_soc, "saver_below_soc"),
            (self.critical_below_soc, "critical_below_soc"),
            (self.burst_min_soc, "burst_min_soc"),
            (self.uplink_min_soc, "uplink_min_soc"),
            (self.update_min_soc, "update_min_soc"),
        ] {
            if !frac(v) {
                errs.push((
                    k.to_string(),
                    "must be a state of charge between 0 and 1".to_string(),
                ));
            }
        }
        if !(0.0..=0.5).contains(&self.hysteresis_soc) {
            errs.push(("hysteresis_soc".into(), "must be between 0 and 0.5".into()));
        }
        if self.critical_below_soc > self.saver_below_soc {
            errs.push((
                "critical_below_soc".into(),
                "must not be above saver_below_soc".into(),
            ));
        }
        for (v, k) in [
            (self.camera_interval_ms, "camera_interval_ms"),
            (self.camera_interval_saver_ms, "camera_interval_saver_ms"),
            (self.climate_interval_ms, "climate_interval_ms"),
            (
                self.climate_interval_critical_ms,
                "climate_interval_critical_ms",
            ),
        ] {
            if !(50..=3_600_000).contains(&v) {
                errs.push((
                    k.to_string(),
                    "must be between 50 ms and one hour".to_string(),
                ));
            }
        }
        errs
    }
}

/// What the policy currently allows; the event loop publishes it to every task.
#[derive(Clone, Debug, PartialEq)]
pub struct PowerStatus {
    /// The mode.
    pub mode: PowerMode,
    /// The reading it was decided on.
    pub reading: PowerReading,
    /// Camera frame interval, or `None` when the camera must stay off.
    pub camera_interval_ms: Option<u64>,
    /// Climate reading interval.
    pub climate_interval_ms: u64,
    /// Whether inference bursts may run, and why not.
    pub burst: Decision,
    /// Whether uplink sessions may run, and why not.
    pub uplink: Decision,
    /// Whether an update may be installed, and why not.
    pub install: Decision,
}

impl PowerStatus {
    /// The decision for one step.
    pub fn decide(&self, step: Step) -> Decision {
        match step {
            Step::CameraFrame => match self.camera_interval_ms {
                Some(_) => Decision::Allow,
                None => Decision::Deny(format!(
                    "camera off in {} mode (battery {:.0}%)",
                    self.mode.as_str(),
                    self.reading.soc * 100.0
                )),
            },
            Step::InferenceBurst => self.burst.clone(),
            Step::Uplink => self.uplink.clone(),
            Step::Install => self.install.clone(),
        }
    }
}

/// The policy, with its current mode.
#[derive(Debug, Clone)]
pub struct PowerPolicy {
    cfg: PolicyConfig,
    mode: PowerMode,
}

impl PowerPolicy {
    /// A policy starting in normal mode.
    pub fn new(cfg: PolicyConfig) -> Self {
        PowerPolicy {
            cfg,
            mode: PowerMode::Normal,
        }
    }

    /// The current mode.
    pub fn mode(&self) -> PowerMode {
        self.mode
    }

    /// Replaces the thresholds and cadences; the mode stays until the next
    /// [`PowerPolicy::update`] judges the reading by the new ones.
    pub fn set_config(&mut self, cfg: PolicyConfig) {
        self.cfg = cfg;
    }

    /// Updates the mode from a reading and returns what is allowed now.
    pub fn update(&mut self, reading: PowerReading) -> PowerStatus {
        let c = &self.cfg;
        let soc = reading.soc;
        let h = c.hysteresis_soc;
        self.mode = match self.mode {
            PowerMode::Normal if soc < c.critical_below_soc => PowerMode::Critical,
            PowerMode::Normal if soc < c.saver_below_soc => PowerMode::Saver,
            PowerMode::Saver if soc < c.critical_below_soc => PowerMode::Critical,
            PowerMode::Saver if soc >= c.saver_below_soc + h => PowerMode::Normal,
            PowerMode::Critical if soc >= c.saver_below_soc + h => PowerMode::Normal,
            PowerMode::Critical if soc >= c.critical_below_soc + h => PowerMode::Saver,
            m => m,
        };
        let pct = soc * 100.0;
        let gate = |min: f64, what: &str| {
            if self.mode == PowerMode::Critical {
                Decision::Deny(format!("no {what} in critical mode (battery {pct:.0}%)"))
            } else if soc < min {
                Decision::Deny(format!(
                    "battery {pct:.0}% is below the {what} minimum of {:.0}%",
                    min * 100.0
                ))
            } else {
                Decision::Allow
            }
        };
        PowerStatus {
            mode: self.mode,
            reading,
            camera_interval_ms: match self.mode {
                PowerMode::Normal => Some(c.camera_interval_ms),
                PowerMode::Saver => Some(c.camera_interval_saver_ms),
                PowerMode::Critical => None,
            },
            climate_interval_ms: match self.mode {
                PowerMode::Critical => c.climate_interval_critical_ms,
                _ => c.climate_interval_ms,
            },
            burst: gate(c.burst_min_soc, "inference burst"),
            uplink: gate(c.uplink_min_soc, "uplink"),
            install: match self.mode {
                PowerMode::Normal => gate(c.update_min_soc, "install"),
                m => Decision::Deny(format!(
                    "install deferred in {} mode (battery {:.0}%)",
                    m.as_str(),
                    soc * 100.0
                )),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(soc: f64) -> PowerReading {
        PowerReading {
            t_ms: 0,
            soc,
            solar_w: 0.0,
            load_w: 3.0,
            battery_mv: None,
        }
    }

    #[test]
    fn modes_follow_the_charge_with_hysteresis() {
        let mut p = PowerPolicy::new(PolicyConfig::default());
        assert_eq!(p.update(at(0.8)).mode, PowerMode::Normal);
        assert_eq!(p.update(at(0.39)).mode, PowerMode::Saver);
        // Just above the threshold is not enough to leave saver mode.
        assert_eq!(p.update(at(0.42)).mode, PowerMode::Saver);
        assert_eq!(p.update(at(0.46)).mode, PowerMode::Normal);
        assert_eq!(p.update(at(0.10)).mode, PowerMode::Critical);
        assert_eq!(p.update(at(0.17)).mode, PowerMode::Critical);
        assert_eq!(p.update(at(0.21)).mode, PowerMode::Saver);
    }

    #[test]
    fn costly_steps_are_denied_with_a_reason() {
        let mut p = PowerPolicy::new(PolicyConfig::default());
        let s = p.update(at(0.25));
        assert_eq!(s.decide(Step::InferenceBurst), Decision::Allow);
        match s.decide(Step::Uplink) {
            Decision::Deny(why) => assert!(why.contains("25%"), "{why}"),
            Decision::Allow => panic!("uplink allowed at 25%"),
        }
        assert_eq!(s.camera_interval_ms, Some(2_000));
        let s = p.update(at(0.05));
        assert!(!s.decide(Step::CameraFrame).allowed());
        assert!(!s.decide(Step::InferenceBurst).allowed());
        assert_eq!(s.climate_interval_ms, 60_000);
    }

    #[test]
    fn new_thresholds_and_cadences_apply_from_the_next_reading() {
        let mut p = PowerPolicy::new(PolicyConfig::default());
        let s = p.update(at(0.8));
        assert_eq!(s.camera_interval_ms, Some(500));
        assert!(s.decide(Step::Install).allowed());
        p.set_config(PolicyConfig {
            camera_interval_ms: 7_000,
            update_min_soc: 0.9,
            ..PolicyConfig::default()
        });
        assert_eq!(p.mode(), PowerMode::Normal);
        let s = p.update(at(0.8));
        assert_eq!(s.camera_interval_ms, Some(7_000));
        assert!(!s.decide(Step::Install).allowed());
        // A mode threshold moved above the charge changes the mode.
        p.set_config(PolicyConfig {
            saver_below_soc: 0.85,
            ..PolicyConfig::default()
        });
        assert_eq!(p.update(at(0.8)).mode, PowerMode::Saver);
    }

    #[test]
    fn installs_wait_for_normal_mode_and_enough_charge() {
        let mut p = PowerPolicy::new(PolicyConfig::default());
        assert!(p.update(at(0.8)).decide(Step::Install).allowed());
        match p.update(at(0.45)).decide(Step::Install) {
            Decision::Deny(why) => assert!(why.contains("45%"), "{why}"),
            Decision::Allow => panic!("install allowed at 45%"),
        }
        match p.update(at(0.3)).decide(Step::Install) {
            Decision::Deny(why) => assert!(why.contains("saver"), "{why}"),
            Decision::Allow => panic!("install allowed in saver mode"),
        }
    }

    #[test]
    fn validation_names_keys() {
        let cfg = PolicyConfig {
            critical_below_soc: 0.5,
            camera_interval_ms: 1,
            ..Default::default()
        };
        let keys: Vec<_> = cfg.validate().into_iter().map(|(k, _)| k).collect();
        assert_eq!(keys, ["critical_below_soc", "camera_interval_ms"]);
    }
}
