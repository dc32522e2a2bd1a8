//! The power policy: from a [`PowerReading`] to a [`PowerMode`] (with
//! hysteresis, so the node does not flap at a threshold, and a minimum dwell
//! in every mode), from the mode to a [`Decision`] for each costly [`Step`]
//! and a cadence for each sensor, and, at its lowest, whether the node
//! should halt and sleep until the RTC wakes it ([`SleepCall`]).
//!
//! Rules on time: every reading carries its time (`t_ms`, the node's
//! clock). A mode once entered is kept at least `min_dwell_ms`, except that
//! the first reading sets the mode at once and a reading after new
//! thresholds ([`PowerPolicy::set_config`]) is judged by them at once. The
//! sleep call comes after `min_dwell_ms` in the current mode, below
//! `sleep_below_soc` with the panel under `sleep_solar_below_w`, and never
//! inside a listening window ([`PowerPolicy::set_listening`]) unless the
//! charge is below the windows' survival threshold; after a wake from such
//! a sleep ([`PowerPolicy::resumed_from_sleep`]) the node sleeps again
//! after its dwell until the charge is `hysteresis_soc` above
//! `sleep_below_soc` (or the sun is out, or a window holds it awake).
//!
//! Duty-cycling while awake: in critical mode the microphone listens
//! `critical_audio_listen_s` of every `critical_audio_cycle_s`
//! ([`AudioDuty`]); in the modes listed in `camera_on_demand` (saver by
//! default) the camera is off unless audio activity or the wake line asks
//! for it, for `camera_hold_s` after the last request
//! ([`PowerStatus::camera_hold_ms`]).

use serde::{Deserialize, Serialize};

use crate::PowerReading;
use crate::listen::Listening;

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
    /// A mode, once entered, is kept at least this long, milliseconds of
    /// the node's clock; the sleep call also waits this long in critical
    /// mode.
    pub min_dwell_ms: u64,
    /// Below this state of charge (with the panel under
    /// `sleep_solar_below_w`, and outside the listening windows), the node
    /// halts and sleeps until the RTC wakes it, in any mode. `None`: the
    /// node never sleeps.
    pub sleep_below_soc: Option<f64>,
    /// The sleep call comes only while the panel gives less than this, W.
    pub sleep_solar_below_w: f64,
    /// In critical mode the microphone listens this many seconds of every
    /// `critical_audio_cycle_s` (equal values: it listens all the time).
    pub critical_audio_listen_s: u64,
    /// The length of one listening cycle in critical mode, seconds.
    pub critical_audio_cycle_s: u64,
    /// The modes (`normal`, `saver`) in which the camera is off unless
    /// audio activity or the wake line asks for it; in the others it runs
    /// at its mode's cadence. Critical mode has no camera at all.
    pub camera_on_demand: Vec<PowerMode>,
    /// On demand, the camera stays on this long after the last request, s.
    pub camera_hold_s: u64,
}

/// The default `sleep_below_soc`: unless the battery is nearly full, the
/// node sleeps whenever the panel does not cover its draw, outside the
/// listening windows; this keeps a 100 Wh node alive a week without sun
/// (`docs/energy.md`, the simulation's trade-off table).
pub const DEFAULT_SLEEP_BELOW_SOC: f64 = 0.95;

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
            min_dwell_ms: 300_000,
            sleep_below_soc: Some(DEFAULT_SLEEP_BELOW_SOC),
            sleep_solar_below_w: 3.0,
            critical_audio_listen_s: 20,
            critical_audio_cycle_s: 60,
            camera_on_demand: vec![PowerMode::Saver],
            camera_hold_s: 30,
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
        if !(0..=86_400_000).contains(&self.min_dwell_ms) {
            errs.push((
                "min_dwell_ms".into(),
                "must be between 0 and one day".into(),
            ));
        }
        if let Some(v) = self.sleep_below_soc
            && !frac(v)
        {
            errs.push((
                "sleep_below_soc".into(),
                "must be a state of charge between 0 and 1".into(),
            ));
        }
        if !(0.0..=1000.0).contains(&self.sleep_solar_below_w) {
            errs.push((
                "sleep_solar_below_w".into(),
                "must be between 0 and 1000 W".into(),
            ));
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
        if !(2..=3600).contains(&self.critical_audio_cycle_s) {
            errs.push((
                "critical_audio_cycle_s".into(),
                "must be between 2 s and one hour".into(),
            ));
        }
        if self.critical_audio_listen_s == 0
            || self.critical_audio_listen_s > self.critical_audio_cycle_s
        {
            errs.push((
                "critical_audio_listen_s".into(),
                "must be at least 1 s and at most critical_audio_cycle_s".into(),
            ));
        }
        if self.camera_on_demand.contains(&PowerMode::Critical) {
            errs.push((
                "camera_on_demand".into(),
                "may list normal and saver only (the camera is off in critical mode)".into(),
            ));
        }
        if !(1..=3600).contains(&self.camera_hold_s) {
            errs.push((
                "camera_hold_s".into(),
                "must be between 1 s and one hour".into(),
            ));
        }
        errs
    }
}

/// The microphone's duty cycle: it listens the first `listen_ms` of every
/// `cycle_ms` of the node's clock (cycles start at multiples of `cycle_ms`
/// from the clock's zero, so every run and every replay cuts them alike),
/// and its capture is stopped for the rest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AudioDuty {
    /// Listening time per cycle, ms (at least 1, at most `cycle_ms`).
    pub listen_ms: u64,
    /// Cycle length, ms (at least 1).
    pub cycle_ms: u64,
}

impl AudioDuty {
    fn phase(&self, t_ms: i64) -> i64 {
        t_ms.rem_euclid(self.cycle_ms.max(1) as i64)
    }

    /// Whether the microphone listens at `t_ms`.
    pub fn listening_at(&self, t_ms: i64) -> bool {
        self.phase(t_ms) < self.listen_ms as i64
    }

    /// The end of the listening window that holds `t_ms` (`None` when
    /// `t_ms` is outside one).
    pub fn window_end(&self, t_ms: i64) -> Option<i64> {
        let phase = self.phase(t_ms);
        (phase < self.listen_ms as i64).then(|| t_ms - phase + self.listen_ms as i64)
    }

    /// The start of the next listening window after `t_ms` (`t_ms` itself
    /// when a window starts then).
    pub fn next_start(&self, t_ms: i64) -> i64 {
        let phase = self.phase(t_ms);
        if phase == 0 {
            t_ms
        } else {
            t_ms - phase + self.cycle_ms.max(1) as i64
        }
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
    /// Set when the node should flush, schedule its RTC wake and halt.
    pub sleep: Option<SleepCall>,
    /// The microphone's duty cycle; `None`: it listens all the time.
    pub audio_duty: Option<AudioDuty>,
    /// Set when the camera is on demand: it stays off unless audio activity
    /// or the wake line asks for it, and stays on this long (ms) after the
    /// last request. `None`: it runs at `camera_interval_ms` (if any).
    pub camera_hold_ms: Option<u64>,
}

/// Why the policy asks the node to sleep. The codes are part of the wire
/// format (status record v6): never reorder, only append.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SleepReason {
    /// The charge below `sleep_below_soc` and below `critical_below_soc`,
    /// no sun, outside the listening windows (or below their survival
    /// threshold).
    LowBattery,
    /// The charge below `sleep_below_soc` but at or above
    /// `critical_below_soc`, no sun, outside the listening windows: a sleep
    /// that saves the charge for the hours without sun, not one forced by
    /// an empty battery.
    EnergySaving,
}

impl SleepReason {
    /// Stable lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            SleepReason::LowBattery => "low_battery",
            SleepReason::EnergySaving => "energy_saving",
        }
    }
}

/// The policy's call to sleep, with the reading it was made on.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SleepCall {
    /// Why.
    pub reason: SleepReason,
    /// The state of charge it was made at, 0..1.
    pub soc: f64,
    /// The panel's output it was made at, W.
    pub solar_w: f64,
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
    /// When the current mode was entered (the first reading's time for the
    /// first mode); `None` before the first reading.
    since_ms: Option<i64>,
    /// New thresholds arrived: the next reading may change the mode at once.
    fresh_config: bool,
    /// The node woke from a sleep the policy called: the sleep condition
    /// holds until the charge is `hysteresis_soc` above `sleep_below_soc`.
    resumed_low: bool,
    /// Listening windows: no sleep call inside one above survival.
    listening: Option<Listening>,
}

impl PowerPolicy {
    /// A policy whose first reading sets the mode (normal until then).
    pub fn new(cfg: PolicyConfig) -> Self {
        PowerPolicy {
            cfg,
            mode: PowerMode::Normal,
            since_ms: None,
            fresh_config: false,
            resumed_low: false,
            listening: None,
        }
    }

    /// Sets the listening windows (`[power.sleep] listening`): inside one,
    /// with the charge at or above its survival threshold, the policy makes
    /// no sleep call.
    pub fn set_listening(&mut self, listening: Option<Listening>) {
        self.listening = listening.filter(|l| !l.windows.is_empty());
    }

    /// Whether a listening window holds the node awake at `t_ms` with `soc`.
    pub fn listening_holds(&self, t_ms: i64, soc: f64) -> bool {
        self.listening
            .as_ref()
            .is_some_and(|l| l.holds_awake(t_ms, soc))
    }

    /// Tells the policy the node has just woken from a sleep it called for
    /// a low battery: the sleep condition then has its hysteresis (it holds
    /// until the charge is `hysteresis_soc` above `sleep_below_soc`).
    pub fn resumed_from_sleep(&mut self) {
        self.resumed_low = true;
    }

    /// The current mode.
    pub fn mode(&self) -> PowerMode {
        self.mode
    }

    /// Replaces the thresholds and cadences; the mode stays until the next
    /// [`PowerPolicy::update`] judges the reading by the new ones.
    pub fn set_config(&mut self, cfg: PolicyConfig) {
        self.cfg = cfg;
        self.fresh_config = true;
    }

    /// True once the current mode has lasted `min_dwell_ms` at `t_ms`.
    fn dwelt(&self, t_ms: i64) -> bool {
        let dwell = i64::try_from(self.cfg.min_dwell_ms).unwrap_or(i64::MAX);
        self.since_ms
            .is_none_or(|since| t_ms.saturating_sub(since) >= dwell)
    }

    /// Updates the mode from a reading and returns what is allowed now.
    pub fn update(&mut self, reading: PowerReading) -> PowerStatus {
        let c = &self.cfg;
        let soc = reading.soc;
        let h = c.hysteresis_soc;
        let t = reading.t_ms;
        let wanted = match self.mode {
            PowerMode::Normal if soc < c.critical_below_soc => PowerMode::Critical,
            PowerMode::Normal if soc < c.saver_below_soc => PowerMode::Saver,
            PowerMode::Saver if soc < c.critical_below_soc => PowerMode::Critical,
            PowerMode::Saver if soc >= c.saver_below_soc + h => PowerMode::Normal,
            PowerMode::Critical if soc >= c.saver_below_soc + h => PowerMode::Normal,
            PowerMode::Critical if soc >= c.critical_below_soc + h => PowerMode::Saver,
            m => m,
        };
        if wanted != self.mode && (self.since_ms.is_none() || self.fresh_config || self.dwelt(t)) {
            self.mode = wanted;
            self.since_ms = Some(t);
        }
        if self.since_ms.is_none() {
            self.since_ms = Some(t);
        }
        self.fresh_config = false;
        let sleep = self.sleep_call(&reading);
        let c = &self.cfg;
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
            sleep,
            audio_duty: (self.mode == PowerMode::Critical
                && c.critical_audio_listen_s < c.critical_audio_cycle_s)
                .then(|| AudioDuty {
                    listen_ms: c.critical_audio_listen_s.max(1) * 1000,
                    cycle_ms: c.critical_audio_cycle_s.max(1) * 1000,
                }),
            camera_hold_ms: (self.mode != PowerMode::Critical
                && c.camera_on_demand.contains(&self.mode))
            .then(|| c.camera_hold_s * 1000),
        }
    }

    /// The sleep condition (see the module's rules), updating its
    /// hysteresis.
    fn sleep_call(&mut self, reading: &PowerReading) -> Option<SleepCall> {
        let below = self.cfg.sleep_below_soc?;
        let soc = reading.soc;
        if self.resumed_low && soc >= below + self.cfg.hysteresis_soc {
            self.resumed_low = false;
        }
        let threshold = if self.resumed_low {
            below + self.cfg.hysteresis_soc
        } else {
            below
        };
        let low = soc < threshold && reading.solar_w < self.cfg.sleep_solar_below_w;
        let held = self.listening_holds(reading.t_ms, soc);
        let reason = if soc < self.cfg.critical_below_soc {
            SleepReason::LowBattery
        } else {
            SleepReason::EnergySaving
        };
        (low && !held && self.dwelt(reading.t_ms)).then_some(SleepCall {
            reason,
            soc,
            solar_w: reading.solar_w,
        })
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

    /// The default thresholds without a minimum dwell.
    fn no_dwell() -> PolicyConfig {
        PolicyConfig {
            min_dwell_ms: 0,
            ..PolicyConfig::default()
        }
    }

    fn at_time(soc: f64, solar_w: f64, t_ms: i64) -> PowerReading {
        PowerReading {
            t_ms,
            soc,
            solar_w,
            load_w: 3.0,
            battery_mv: None,
        }
    }

    #[test]
    fn modes_follow_the_charge_with_hysteresis() {
        let mut p = PowerPolicy::new(no_dwell());
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
        let mut p = PowerPolicy::new(no_dwell());
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
        let mut p = PowerPolicy::new(no_dwell());
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
    fn a_mode_is_kept_for_its_minimum_dwell() {
        let mut p = PowerPolicy::new(PolicyConfig::default()); // 300 s dwell
        // The first reading sets the mode at once.
        assert_eq!(p.update(at_time(0.10, 0.0, 0)).mode, PowerMode::Critical);
        // Charged well above every threshold, but the dwell is not over.
        assert_eq!(
            p.update(at_time(0.9, 5.0, 299_999)).mode,
            PowerMode::Critical
        );
        assert_eq!(p.update(at_time(0.9, 5.0, 300_000)).mode, PowerMode::Normal);
        // Down again: normal was entered at 300 s, so it holds until 600 s.
        assert_eq!(p.update(at_time(0.3, 0.0, 310_000)).mode, PowerMode::Normal);
        assert_eq!(p.update(at_time(0.3, 0.0, 600_000)).mode, PowerMode::Saver);
        // New thresholds are judged at once, whatever the dwell.
        p.set_config(PolicyConfig {
            saver_below_soc: 0.2,
            critical_below_soc: 0.1,
            ..PolicyConfig::default()
        });
        assert_eq!(p.update(at_time(0.3, 0.0, 610_000)).mode, PowerMode::Normal);
    }

    fn sleepy() -> PolicyConfig {
        PolicyConfig {
            min_dwell_ms: 60_000,
            sleep_below_soc: Some(0.10),
            ..PolicyConfig::default()
        }
    }

    #[test]
    fn sleep_is_called_in_critical_mode_after_the_dwell_without_sun() {
        let mut p = PowerPolicy::new(sleepy());
        let s = p.update(at_time(0.08, 0.0, 0));
        assert_eq!(s.mode, PowerMode::Critical);
        assert_eq!(s.sleep, None, "not before a minimum dwell awake");
        assert_eq!(p.update(at_time(0.08, 0.0, 59_999)).sleep, None);
        let s = p.update(at_time(0.08, 0.0, 60_000));
        let call = s.sleep.expect("sleep after the dwell");
        assert_eq!(call.reason, SleepReason::LowBattery);
        assert!((call.soc - 0.08).abs() < 1e-9);
        // The sun is out: charging beats sleeping.
        assert_eq!(p.update(at_time(0.08, 5.0, 70_000)).sleep, None);
        // Above the sleep threshold, still critical: no sleep.
        assert_eq!(p.update(at_time(0.12, 0.0, 80_000)).sleep, None);
        // With the default threshold (nearly full), a sleep at a charge
        // above the critical one saves energy: it is not a low battery.
        let mut p = PowerPolicy::new(PolicyConfig {
            min_dwell_ms: 0,
            sleep_below_soc: Some(DEFAULT_SLEEP_BELOW_SOC),
            ..PolicyConfig::default()
        });
        let call = p.update(at_time(0.60, 0.0, 0)).sleep;
        assert_eq!(call.map(|c| c.reason), Some(SleepReason::EnergySaving));
        let call = p.update(at_time(0.10, 0.0, 1_000)).sleep;
        assert_eq!(call.map(|c| c.reason), Some(SleepReason::LowBattery));
        // Without the key the node never sleeps.
        let mut p = PowerPolicy::new(PolicyConfig {
            sleep_below_soc: None,
            ..PolicyConfig::default()
        });
        p.update(at_time(0.01, 0.0, 0));
        assert_eq!(p.update(at_time(0.01, 0.0, 86_400_000)).sleep, None);
    }

    #[test]
    fn no_sleep_inside_a_listening_window_above_survival() {
        use crate::ListeningWindow;
        // 2026-06-01T00:00:00Z; windows 05:00-06:00 local at UTC + 0.
        const DAY0: i64 = 1_780_272_000_000;
        let h = |x: f64| DAY0 + (x * 3_600_000.0) as i64;
        let mut p = PowerPolicy::new(sleepy());
        p.set_listening(Some(Listening {
            windows: vec![ListeningWindow {
                start_h: 5.0,
                end_h: 6.0,
            }],
            utc_offset_h: 0.0,
            survival_below_soc: 0.05,
        }));
        p.update(at_time(0.08, 0.0, h(4.0)));
        assert!(p.update(at_time(0.08, 0.0, h(4.9))).sleep.is_some());
        assert!(p.update(at_time(0.08, 0.0, h(5.0))).sleep.is_none());
        assert!(p.update(at_time(0.06, 0.0, h(5.9))).sleep.is_none());
        // Below survival the window does not hold.
        let call = p.update(at_time(0.04, 0.0, h(5.95))).sleep;
        assert_eq!(call.map(|c| c.reason), Some(SleepReason::LowBattery));
        assert!(p.update(at_time(0.06, 0.0, h(6.0))).sleep.is_some());
        // Without windows the same reading at 05:30 sleeps.
        p.set_listening(None);
        assert!(p.update(at_time(0.08, 0.0, h(5.5))).sleep.is_some());
    }

    #[test]
    fn the_sleep_call_comes_in_any_mode_below_its_threshold() {
        let mut p = PowerPolicy::new(PolicyConfig {
            min_dwell_ms: 0,
            sleep_below_soc: Some(0.6),
            ..PolicyConfig::default()
        });
        let s = p.update(at_time(0.55, 0.0, 0));
        assert_eq!(s.mode, PowerMode::Normal);
        assert!(s.sleep.is_some());
        assert!(p.update(at_time(0.65, 0.0, 1)).sleep.is_none());
    }

    #[test]
    fn after_a_wake_the_sleep_condition_has_hysteresis() {
        let mut p = PowerPolicy::new(sleepy());
        p.resumed_from_sleep();
        p.update(at_time(0.12, 0.0, 0));
        // 12 % is above the 10 % threshold but not 5 points above it.
        assert!(p.update(at_time(0.12, 0.0, 60_000)).sleep.is_some());
        // 16 % clears the hysteresis; from then on 10 % is the threshold.
        assert!(p.update(at_time(0.16, 0.0, 70_000)).sleep.is_none());
        assert!(p.update(at_time(0.12, 0.0, 80_000)).sleep.is_none());
        assert!(p.update(at_time(0.09, 0.0, 90_000)).sleep.is_some());
    }

    #[test]
    fn audio_is_duty_cycled_in_critical_mode_only() {
        let mut p = PowerPolicy::new(no_dwell());
        assert_eq!(p.update(at(0.8)).audio_duty, None);
        assert_eq!(p.update(at(0.3)).audio_duty, None);
        let duty = p
            .update(at(0.05))
            .audio_duty
            .expect("duty in critical mode");
        assert_eq!(
            duty,
            AudioDuty {
                listen_ms: 20_000,
                cycle_ms: 60_000
            }
        );
        // Listening equal to the cycle is listening all the time.
        p.set_config(PolicyConfig {
            critical_audio_listen_s: 60,
            ..no_dwell()
        });
        assert_eq!(p.update(at(0.05)).audio_duty, None);
    }

    #[test]
    fn the_duty_cycle_cuts_the_clock_into_windows() {
        let d = AudioDuty {
            listen_ms: 20_000,
            cycle_ms: 60_000,
        };
        assert!(d.listening_at(0) && d.listening_at(19_999));
        assert!(!d.listening_at(20_000) && !d.listening_at(59_999));
        assert!(d.listening_at(60_000) && d.listening_at(-45_000));
        assert!(!d.listening_at(-30_000));
        assert_eq!(d.window_end(5_000), Some(20_000));
        assert_eq!(d.window_end(65_000), Some(80_000));
        assert_eq!(d.window_end(25_000), None);
        assert_eq!(d.next_start(25_000), 60_000);
        assert_eq!(d.next_start(60_000), 60_000);
        assert_eq!(d.next_start(-30_000), 0);
        // Over a long stretch the share listened is listen / cycle.
        let listened = (0..3_600_000)
            .step_by(100)
            .filter(|&t| d.listening_at(t))
            .count();
        assert_eq!(listened, 12_000);
    }

    #[test]
    fn the_camera_is_on_demand_in_the_listed_modes() {
        let mut p = PowerPolicy::new(no_dwell());
        let s = p.update(at(0.8));
        assert_eq!((s.camera_interval_ms, s.camera_hold_ms), (Some(500), None));
        let s = p.update(at(0.3));
        assert_eq!(
            (s.camera_interval_ms, s.camera_hold_ms),
            (Some(2_000), Some(30_000))
        );
        let s = p.update(at(0.05));
        assert_eq!((s.camera_interval_ms, s.camera_hold_ms), (None, None));
        p.set_config(PolicyConfig {
            camera_on_demand: vec![PowerMode::Normal, PowerMode::Saver],
            camera_hold_s: 90,
            ..no_dwell()
        });
        assert_eq!(p.update(at(0.8)).camera_hold_ms, Some(90_000));
        p.set_config(PolicyConfig {
            camera_on_demand: vec![],
            ..no_dwell()
        });
        assert_eq!(p.update(at(0.3)).camera_hold_ms, None);
    }

    #[test]
    fn duty_cycle_keys_are_validated() {
        let keys = |cfg: PolicyConfig| -> Vec<String> {
            cfg.validate().into_iter().map(|(k, _)| k).collect()
        };
        assert!(keys(PolicyConfig::default()).is_empty());
        assert_eq!(
            keys(PolicyConfig {
                critical_audio_listen_s: 61,
                camera_on_demand: vec![PowerMode::Critical],
                camera_hold_s: 0,
                ..Default::default()
            }),
            [
                "critical_audio_listen_s",
                "camera_on_demand",
                "camera_hold_s"
            ]
        );
        assert_eq!(
            keys(PolicyConfig {
                critical_audio_listen_s: 0,
                critical_audio_cycle_s: 1,
                ..Default::default()
            }),
            ["critical_audio_cycle_s", "critical_audio_listen_s"]
        );
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
        let cfg = PolicyConfig {
            min_dwell_ms: 86_400_001,
            sleep_below_soc: Some(1.2),
            sleep_solar_below_w: -1.0,
            ..Default::default()
        };
        let keys: Vec<_> = cfg.validate().into_iter().map(|(k, _)| k).collect();
        assert_eq!(
            keys,
            ["min_dwell_ms", "sleep_below_soc", "sleep_solar_below_w"]
        );
    }
}
