//! Where power readings come from.
//!
//! [`SimulatedSupply`] integrates a battery's state of charge over time from a
//! solar input (a clear-sky half sine between sunrise and sunset, reduced by
//! cloud cover) and the node's loads (a constant base draw plus the energy of
//! each costly step, reported by the event loop as [`EnergyUse`]). Its
//! battery voltage comes from the rest-voltage curve of a 12.8 V LiFePO4
//! pack (4 cells) plus the drop or rise across its internal resistance.

use serde::{Deserialize, Serialize};

/// One reading of the supply.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PowerReading {
    /// When, milliseconds since the Unix epoch (UTC).
    pub t_ms: i64,
    /// Battery state of charge, 0..=1.
    pub soc: f64,
    /// Solar input, watts.
    pub solar_w: f64,
    /// Average load since the previous reading, watts.
    pub load_w: f64,
    /// Battery terminal voltage, millivolts, when the source measures it.
    pub battery_mv: Option<u32>,
}

impl PowerReading {
    /// True when the node runs on an external supply: the charge input
    /// (`solar_w`: what the charge controller delivers, from the panel or
    /// a technician's charger on the same input) exceeds the load, so the
    /// battery charges rather than discharges. The reading has no separate
    /// charger signal; this is the narrowest sign of one it carries, and
    /// an install on it spends no battery charge.
    pub fn external_supply(&self) -> bool {
        self.solar_w.is_finite() && self.load_w.is_finite() && self.solar_w > self.load_w
    }
}

/// Energy spent by costly steps since the previous reading.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct EnergyUse {
    /// Camera frames captured.
    pub camera_frames: u64,
    /// Climate readings taken.
    pub climate_readings: u64,
    /// Seconds of audio captured.
    pub audio_seconds: f64,
    /// Inference bursts run.
    pub bursts: u64,
    /// Uplink sessions opened.
    pub uplink_sessions: u64,
    /// Updates staged and self-tested (or settings installed).
    pub installs: u64,
}

/// A source of power readings. Real monitors (an INA219 on the battery, the
/// Pi's PMIC) implement this too.
pub trait PowerSource: Send {
    /// Accounts for `used` and returns the supply's state at `t_ms`.
    /// Times before the previous reading are treated as no time passing.
    fn read(&mut self, t_ms: i64, used: EnergyUse) -> PowerReading;

    /// Whether the last reading was measured (a simulation always is).
    fn health(&self) -> SupplyHealth {
        SupplyHealth::Ok
    }
}

/// Whether the supply's readings are measured.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SupplyHealth {
    /// Every monitor answered.
    Ok,
    /// A monitor failed; the reading carries on from the last good one.
    Degraded(String),
    /// The battery monitor never answered; the state of charge is assumed.
    Absent(String),
}

impl SupplyHealth {
    /// `ok`, `degraded` or `absent`.
    pub fn as_str(&self) -> &'static str {
        match self {
            SupplyHealth::Ok => "ok",
            SupplyHealth::Degraded(_) => "degraded",
            SupplyHealth::Absent(_) => "absent",
        }
    }
}

/// Energy cost of the node's loads.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct LoadConfig {
    /// Constant draw of the board when idle, watts (a Pi 5 idles near 3 W).
    pub base_w: f64,
    /// Energy per camera frame, joules.
    pub camera_frame_j: f64,
    /// Energy per climate reading, joules.
    pub climate_reading_j: f64,
    /// Extra power while capturing audio, watts.
    pub audio_w: f64,
    /// Energy per inference burst, joules (wake, run, release).
    pub burst_j: f64,
    /// Energy per uplink session, joules (an Iridium session is ~1.5 W for ~30 s).
    pub uplink_session_j: f64,
    /// Energy per install, joules: writing the model to flash, loading it on
    /// the accelerator and running its self-test.
    pub install_j: f64,
}

impl Default for LoadConfig {
    fn default() -> Self {
        LoadConfig {
            base_w: 3.0,
            camera_frame_j: 0.4,
            climate_reading_j: 0.001,
            audio_w: 0.15,
            burst_j: 6.0,
            uplink_session_j: 45.0,
            install_j: 8.0,
        }
    }
}

/// The simulated battery and solar panel.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SimulationConfig {
    /// Usable battery capacity, watt-hours.
    pub battery_wh: f64,
    /// State of charge at start, 0..=1.
    pub initial_soc: f64,
    /// Panel output at solar noon under a clear sky, watts.
    pub solar_peak_w: f64,
    /// Local solar time of sunrise, hours (0..24).
    pub sunrise_h: f64,
    /// Local solar time of sunset, hours (0..24), after sunrise.
    pub sunset_h: f64,
    /// Offset of local solar time from UTC, hours (east positive).
    pub utc_offset_h: f64,
    /// Share of the clear-sky output lost to clouds, 0..=1.
    pub cloud_cover: f64,
    /// Internal resistance of the battery pack, ohms (the voltage sags by
    /// the net discharge current times this, and rises while charging).
    pub internal_ohm: f64,
    /// Loads.
    pub loads: LoadConfig,
}

impl Default for SimulationConfig {
    fn default() -> Self {
        SimulationConfig {
            battery_wh: 120.0,
            initial_soc: 0.8,
            solar_peak_w: 20.0,
            sunrise_h: 6.0,
            sunset_h: 20.0,
            utc_offset_h: 0.0,
            cloud_cover: 0.3,
            internal_ohm: 0.05,
            loads: LoadConfig::default(),
        }
    }
}

impl SimulationConfig {
    /// Range checks, as `(key path relative to this table, problem)`.
    pub fn validate(&self) -> Vec<(String, String)> {
        let mut errs = Vec::new();
        let mut check = |ok: bool, key: &str, msg: &str| {
            if !ok {
                errs.push((key.to_string(), msg.to_string()));
            }
        };
        check(
            self.battery_wh > 0.0 && self.battery_wh.is_finite(),
            "battery_wh",
            "must be a positive number of watt-hours",
        );
        check(
            (0.0..=1.0).contains(&self.initial_soc),
            "initial_soc",
            "must be between 0 and 1",
        );
        check(
            self.solar_peak_w >= 0.0 && self.solar_peak_w.is_finite(),
            "solar_peak_w",
            "must be zero or more watts",
        );
        check(
            (0.0..24.0).contains(&self.sunrise_h),
            "sunrise_h",
            "must be an hour in 0..24",
        );
        check(
            (0.0..=24.0).contains(&self.sunset_h) && self.sunset_h > self.sunrise_h,
            "sunset_h",
            "must be an hour in 0..=24 after sunrise_h",
        );
        check(
            (-12.0..=14.0).contains(&self.utc_offset_h),
            "utc_offset_h",
            "must be between -12 and 14 hours",
        );
        check(
            (0.0..=1.0).contains(&self.cloud_cover),
            "cloud_cover",
            "must be between 0 and 1",
        );
        check(
            (0.0..=1.0).contains(&self.internal_ohm),
            "internal_ohm",
            "must be between 0 and 1 ohm",
        );
        let l = &self.loads;
        for (v, k) in [
            (l.base_w, "loads.base_w"),
            (l.camera_frame_j, "loads.camera_frame_j"),
            (l.climate_reading_j, "loads.climate_reading_j"),
            (l.audio_w, "loads.audio_w"),
            (l.burst_j, "loads.burst_j"),
            (l.uplink_session_j, "loads.uplink_session_j"),
            (l.install_j, "loads.install_j"),
        ] {
            check(v >= 0.0 && v.is_finite(), k, "must be zero or more");
        }
        errs
    }
}

/// Rest voltage of a 4-cell LiFePO4 pack by state of charge, millivolts
/// (typical cell curve times four: flat between 20 % and 90 %).
const LIFEPO4_4S_REST_MV: [(f64, f64); 11] = [
    (0.0, 10_000.0),
    (0.1, 12_000.0),
    (0.2, 12_800.0),
    (0.3, 12_900.0),
    (0.4, 13_000.0),
    (0.5, 13_050.0),
    (0.6, 13_100.0),
    (0.7, 13_200.0),
    (0.8, 13_300.0),
    (0.9, 13_400.0),
    (1.0, 13_600.0),
];

/// The pack's rest voltage at `soc`, millivolts (linear between points).
pub fn rest_voltage_mv(soc: f64) -> f64 {
    let soc = soc.clamp(0.0, 1.0);
    let i = LIFEPO4_4S_REST_MV
        .iter()
        .position(|&(s, _)| s >= soc)
        .unwrap_or(LIFEPO4_4S_REST_MV.len() - 1);
    if i == 0 {
        return LIFEPO4_4S_REST_MV[0].1;
    }
    let ((s0, v0), (s1, v1)) = (LIFEPO4_4S_REST_MV[i - 1], LIFEPO4_4S_REST_MV[i]);
    v0 + (v1 - v0) * (soc - s0) / (s1 - s0)
}

/// A battery charged by a solar panel, integrated in time.
#[derive(Debug)]
pub struct SimulatedSupply {
    cfg: SimulationConfig,
    soc: f64,
    last_ms: Option<i64>,
}

impl SimulatedSupply {
    /// A supply at `cfg.initial_soc`.
    pub fn new(cfg: SimulationConfig) -> Self {
        let soc = cfg.initial_soc.clamp(0.0, 1.0);
        SimulatedSupply {
            cfg,
            soc,
            last_ms: None,
        }
    }

    /// Solar input at `t_ms`, watts.
    pub fn solar_w(&self, t_ms: i64) -> f64 {
        let day_ms = 86_400_000i64;
        let local_ms = t_ms + (self.cfg.utc_offset_h * 3_600_000.0) as i64;
        let hour = local_ms.rem_euclid(day_ms) as f64 / 3_600_000.0;
        let (rise, set) = (self.cfg.sunrise_h, self.cfg.sunset_h);
        if hour <= rise || hour >= set || set <= rise {
            return 0.0;
        }
        let phase = (hour - rise) / (set - rise) * std::f64::consts::PI;
        self.cfg.solar_peak_w * phase.sin() * (1.0 - self.cfg.cloud_cover)
    }
}

impl PowerSource for SimulatedSupply {
    fn read(&mut self, t_ms: i64, used: EnergyUse) -> PowerReading {
        let l = &self.cfg.loads;
        let dt_s = match self.last_ms {
            Some(prev) if t_ms > prev => (t_ms - prev) as f64 / 1000.0,
            _ => 0.0,
        };
        if self.last_ms.is_none_or(|p| t_ms > p) {
            self.last_ms = Some(t_ms);
        }
        let step_j = used.camera_frames as f64 * l.camera_frame_j
            + used.climate_readings as f64 * l.climate_reading_j
            + used.audio_seconds * l.audio_w
            + used.bursts as f64 * l.burst_j
            + used.uplink_sessions as f64 * l.uplink_session_j
            + used.installs as f64 * l.install_j;
        let load_j = l.base_w * dt_s + step_j;
        // Midpoint solar estimate over the interval.
        let mid = t_ms - (dt_s * 500.0) as i64;
        let solar_w = self.solar_w(mid);
        let capacity_j = self.cfg.battery_wh * 3600.0;
        self.soc = (self.soc + (solar_w * dt_s - load_j) / capacity_j).clamp(0.0, 1.0);
        let load_w = if dt_s > 0.0 { load_j / dt_s } else { l.base_w };
        let rest_mv = rest_voltage_mv(self.soc);
        // Net current into the pack (negative while discharging), amperes.
        let amps = (solar_w - load_w) / (rest_mv / 1000.0);
        let mv = rest_mv + amps * self.cfg.internal_ohm * 1000.0;
        PowerReading {
            t_ms,
            soc: self.soc,
            solar_w,
            load_w,
            battery_mv: Some(mv.round().clamp(0.0, f64::from(u16::MAX)) as u32),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOON: i64 = 1_780_000_000_000 - 1_780_000_000_000 % 86_400_000 + 13 * 3_600_000;

    #[test]
    fn external_supply_is_a_charge_input_above_the_load() {
        let r = |solar_w, load_w| PowerReading {
            t_ms: 0,
            soc: 0.3,
            solar_w,
            load_w,
            battery_mv: None,
        };
        assert!(r(20.0, 3.0).external_supply());
        assert!(!r(3.0, 3.0).external_supply());
        assert!(!r(0.0, 3.0).external_supply());
        assert!(!r(f64::NAN, 3.0).external_supply());
    }

    #[test]
    fn no_sun_at_night_and_most_at_midday() {
        let s = SimulatedSupply::new(SimulationConfig::default());
        let midnight = NOON - 13 * 3_600_000;
        assert_eq!(s.solar_w(midnight), 0.0);
        assert!(s.solar_w(NOON) > s.solar_w(NOON - 5 * 3_600_000));
        assert!(s.solar_w(NOON) > 0.0);
    }

    #[test]
    fn battery_drains_at_night_by_the_base_load() {
        let cfg = SimulationConfig {
            battery_wh: 10.0,
            initial_soc: 1.0,
            ..Default::default()
        };
        let mut s = SimulatedSupply::new(cfg);
        let midnight = NOON - 13 * 3_600_000;
        s.read(midnight, EnergyUse::default());
        let r = s.read(midnight + 3_600_000, EnergyUse::default());
        // 3 W for one hour out of 10 Wh.
        assert!((r.soc - 0.7).abs() < 1e-9, "soc {}", r.soc);
        let r2 = s.read(
            midnight + 3_600_000,
            EnergyUse {
                bursts: 600,
                ..Default::default()
            },
        );
        // 600 bursts of 6 J = 1 Wh.
        assert!((r2.soc - 0.6).abs() < 1e-9, "soc {}", r2.soc);
        let r3 = s.read(
            midnight + 3_600_000,
            EnergyUse {
                installs: 450,
                ..Default::default()
            },
        );
        // 450 installs of 8 J = 1 Wh.
        assert!((r3.soc - 0.5).abs() < 1e-9, "soc {}", r3.soc);
    }

    #[test]
    fn voltage_follows_the_lifepo4_curve_sags_under_load_and_rises_charging() {
        assert_eq!(rest_voltage_mv(0.0), 10_000.0);
        assert_eq!(rest_voltage_mv(1.0), 13_600.0);
        assert_eq!(rest_voltage_mv(0.45), 13_025.0);
        let mut prev = 0.0;
        for i in 0..=100 {
            let v = rest_voltage_mv(f64::from(i) / 100.0);
            assert!(v >= prev, "not monotonic at {i} %");
            prev = v;
        }
        // Night: 3 W from a 13.3 V pack through 50 mOhm sags about 11 mV.
        let mut s = SimulatedSupply::new(SimulationConfig::default());
        let night = NOON - 13 * 3_600_000;
        s.read(night, EnergyUse::default());
        let r = s.read(night + 60_000, EnergyUse::default());
        let rest = rest_voltage_mv(r.soc);
        let mv = f64::from(r.battery_mv.unwrap_or(0));
        assert!(mv < rest && rest - mv < 20.0, "{mv} vs rest {rest}");
        // Noon: 14 W of sun against 3 W of load charges: above rest.
        s.read(NOON, EnergyUse::default());
        let r = s.read(NOON + 60_000, EnergyUse::default());
        assert!(f64::from(r.battery_mv.unwrap_or(0)) > rest_voltage_mv(r.soc));
    }

    #[test]
    fn time_going_backwards_costs_nothing() {
        let mut s = SimulatedSupply::new(SimulationConfig::default());
        let a = s.read(NOON, EnergyUse::default());
        let b = s.read(NOON - 60_000, EnergyUse::default());
        assert_eq!(a.soc, b.soc);
    }

    #[test]
    fn validation_names_keys() {
        let cfg = SimulationConfig {
            initial_soc: 1.5,
            sunset_h: 3.0,
            ..Default::default()
        };
        let keys: Vec<_> = cfg.validate().into_iter().map(|(k, _)| k).collect();
        assert_eq!(keys, ["initial_soc", "sunset_h"]);
    }
}
