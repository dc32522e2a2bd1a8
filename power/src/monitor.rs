//! Real power readings: INA226 current monitors on I2C, one on the battery
//! and optionally one on the solar input, and the [`PowerSource`] they make
//! together with a [`BatteryGauge`].
//!
//! The chip is driven by the `ina226` crate over any embedded-hal 1.0
//! `I2c` (`linux-embedded-hal`'s `I2cdev` on the node, a register emulator in
//! the tests). At open the monitor checks the manufacturer id (a wrong or
//! missing chip is refused, not misread), programs the calibration for the
//! shunt and the expected current, and sets averaging and conversion times.
//!
//! A monitor that stops answering is a health state, as a sensor's is: the
//! supply keeps its last reading (its state of charge keeps counting with
//! the last current), says [`SupplyHealth::Degraded`] with the reason, and
//! recovers at the next good sample. A battery monitor that never answered
//! gives [`SupplyHealth::Absent`] and the assumed state of charge of the
//! configuration, so the policy still decides something.

use embedded_hal::i2c::{ErrorKind, I2c};
use ina226::{AVG, Config, INA226, MODE, VBUSCT, VSHCT};
use serde::{Deserialize, Serialize};

use crate::gauge::{BatteryGauge, GaugeConfig};
use crate::source::{EnergyUse, PowerReading, PowerSource, SupplyHealth};

/// Texas Instruments' id in the manufacturer id register (0xFE): "TI".
pub const TI_MANUFACTURER_ID: u16 = 0x5449;

/// What can go wrong with a monitor.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MonitorError {
    /// The bus transaction failed (no acknowledge, bus error, ...).
    #[error("I2C {0:?}")]
    Bus(ErrorKind),
    /// Something answered, but not an INA226.
    #[error(
        "manufacturer id {found:#06x} at {address:#04x}, not Texas Instruments' {TI_MANUFACTURER_ID:#06x}"
    )]
    WrongChip {
        /// The address.
        address: u8,
        /// The id read.
        found: u16,
    },
    /// The chip has no calibration (it was reset behind the driver's back).
    #[error("not calibrated")]
    NotCalibrated,
}

/// One monitor's wiring.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct MonitorConfig {
    /// 7-bit I2C address (0x40..=0x4F).
    pub address: u8,
    /// Shunt resistor, ohms.
    pub shunt_ohms: f64,
    /// Largest current expected through the shunt, amperes (sets the
    /// resolution: this over 2^15 per step).
    pub max_current_a: f64,
}

impl Default for MonitorConfig {
    fn default() -> Self {
        MonitorConfig {
            address: 0x40,
            shunt_ohms: 0.01,
            max_current_a: 8.0,
        }
    }
}

impl MonitorConfig {
    /// Problems with the settings, as (key, message).
    pub fn validate(&self) -> Vec<(String, String)> {
        let mut e = Vec::new();
        if !(0x40..=0x4F).contains(&self.address) {
            e.push(("address".into(), "must be 0x40 to 0x4F (64 to 79)".into()));
        }
        if !(self.shunt_ohms > 0.0 && self.shunt_ohms <= 10.0) {
            e.push(("shunt_ohms".into(), "must be above 0 and at most 10".into()));
        }
        // The shunt's full scale is 81.92 mV; the calibration register must fit 16 bits.
        let cal = 0.00512 / (self.max_current_a / 32_768.0 * self.shunt_ohms);
        if !(self.max_current_a > 0.0 && cal >= 1.0 && cal <= f64::from(u16::MAX)) {
            e.push((
                "max_current_a".into(),
                "must be above 0 and give a calibration that fits the chip (see docs/hardware.md)"
                    .into(),
            ));
        }
        e
    }
}

/// One reading of a monitor.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sample {
    /// Bus voltage, millivolts.
    pub bus_mv: f64,
    /// Current through the shunt, amperes (positive into the battery, or
    /// from the panel).
    pub current_a: f64,
}

/// A monitor the supply can sample.
pub trait Monitor: Send {
    /// One reading.
    fn sample(&mut self) -> Result<Sample, MonitorError>;
}

/// An INA226 on `I2C`.
pub struct Ina226Monitor<I2C> {
    chip: INA226<I2C>,
    cfg: MonitorConfig,
}

impl<I2C: I2c> Ina226Monitor<I2C> {
    /// Checks the chip, calibrates it for `cfg` and starts continuous
    /// conversions (16 samples averaged, 1.1 ms per conversion).
    pub fn open(i2c: I2C, cfg: MonitorConfig) -> Result<Self, MonitorError> {
        let mut chip = INA226::new(i2c, cfg.address);
        let found = chip.manufacturer_id().map_err(bus)?;
        if found != TI_MANUFACTURER_ID {
            return Err(MonitorError::WrongChip {
                address: cfg.address,
                found,
            });
        }
        let mut m = Ina226Monitor { chip, cfg };
        m.setup()?;
        Ok(m)
    }

    fn setup(&mut self) -> Result<(), MonitorError> {
        self.chip
            .set_configuration(&Config {
                avg: AVG::_16,
                vbusct: VBUSCT::_1100us,
                vshct: VSHCT::_1100us,
                mode: MODE::ShuntBusVoltageContinuous,
            })
            .map_err(bus)?;
        self.chip
            .callibrate(self.cfg.shunt_ohms, self.cfg.max_current_a)
            .map_err(bus)
    }
}

fn bus<E: embedded_hal::i2c::Error>(e: E) -> MonitorError {
    MonitorError::Bus(e.kind())
}

impl<I2C: I2c + Send> Monitor for Ina226Monitor<I2C> {
    fn sample(&mut self) -> Result<Sample, MonitorError> {
        // A chip reset by a brown-out reads 0 in its calibration register
        // and 0 A whatever flows: calibrate it again before trusting it.
        if self.chip.callibration().map_err(bus)? == 0 {
            self.setup()?;
            if self.chip.callibration().map_err(bus)? == 0 {
                return Err(MonitorError::NotCalibrated);
            }
        }
        let bus_mv = self.chip.bus_voltage_millivolts().map_err(bus)?;
        let current_a = self
            .chip
            .current_amps()
            .map_err(bus)?
            .ok_or(MonitorError::NotCalibrated)?;
        Ok(Sample { bus_mv, current_a })
    }
}

/// `[power.monitor]`: the monitors' wiring and the battery behind them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct MonitoredConfig {
    /// The I2C bus device.
    pub i2c_bus: String,
    /// `[power.monitor.battery]`
    pub battery: MonitorConfig,
    /// `[power.monitor.solar]`, when the panel has its own monitor.
    pub solar: Option<MonitorConfig>,
    /// `[power.monitor.gauge]`
    pub gauge: GaugeConfig,
    /// The state of charge assumed while the battery monitor has never
    /// answered, 0..=1.
    pub assumed_soc: f64,
}

impl Default for MonitoredConfig {
    fn default() -> Self {
        MonitoredConfig {
            i2c_bus: "/dev/i2c-1".into(),
            battery: MonitorConfig::default(),
            solar: None,
            gauge: GaugeConfig::default(),
            assumed_soc: 0.3,
        }
    }
}

impl MonitoredConfig {
    /// Problems with the settings, as (key, message).
    pub fn validate(&self) -> Vec<(String, String)> {
        let mut e: Vec<(String, String)> = Vec::new();
        let prefixed = |p: &str, v: Vec<(String, String)>| {
            v.into_iter()
                .map(move |(k, m)| (format!("{p}.{k}"), m))
                .collect::<Vec<_>>()
        };
        if self.i2c_bus.is_empty() {
            e.push(("i2c_bus".into(), "must name the I2C bus device".into()));
        }
        e.extend(prefixed("battery", self.battery.validate()));
        if let Some(s) = &self.solar {
            e.extend(prefixed("solar", s.validate()));
            if s.address == self.battery.address {
                e.push((
                    "solar.address".into(),
                    "must differ from battery.address".into(),
                ));
            }
        }
        e.extend(prefixed("gauge", self.gauge.validate()));
        if !(0.0..=1.0).contains(&self.assumed_soc) {
            e.push(("assumed_soc".into(), "must be between 0 and 1".into()));
        }
        e
    }
}

/// The supply as the monitors measure it.
pub struct MonitoredSupply {
    battery: Result<Box<dyn Monitor>, MonitorError>,
    solar: Option<Result<Box<dyn Monitor>, MonitorError>>,
    gauge: BatteryGauge,
    assumed_soc: f64,
    last: Option<PowerReading>,
    last_battery: Option<Sample>,
    health: SupplyHealth,
    failures: u64,
}

impl MonitoredSupply {
    /// A supply from the monitors as they opened (an error stands for a
    /// monitor that is missing).
    pub fn new(
        battery: Result<Box<dyn Monitor>, MonitorError>,
        solar: Option<Result<Box<dyn Monitor>, MonitorError>>,
        gauge: GaugeConfig,
        assumed_soc: f64,
    ) -> MonitoredSupply {
        MonitoredSupply {
            battery,
            solar,
            gauge: BatteryGauge::new(gauge),
            assumed_soc,
            last: None,
            last_battery: None,
            health: SupplyHealth::Ok,
            failures: 0,
        }
    }

    /// Failed samples since start.
    pub fn failures(&self) -> u64 {
        self.failures
    }

    fn battery_sample(&mut self) -> Result<Sample, MonitorError> {
        match &mut self.battery {
            Ok(m) => m.sample(),
            Err(e) => Err(e.clone()),
        }
    }

    fn solar_w(&mut self) -> Result<f64, MonitorError> {
        match &mut self.solar {
            None => Ok(0.0),
            Some(Err(e)) => Err(e.clone()),
            Some(Ok(m)) => m
                .sample()
                .map(|s| (s.bus_mv / 1000.0 * s.current_a).max(0.0)),
        }
    }
}

impl PowerSource for MonitoredSupply {
    fn read(&mut self, t_ms: i64, _used: EnergyUse) -> PowerReading {
        let battery = self.battery_sample();
        let solar = self.solar_w();
        let mut problems = Vec::new();
        let (battery_mv, amps) = match battery {
            Ok(s) => {
                self.last_battery = Some(s);
                (Some(s.bus_mv), s.current_a)
            }
            Err(e) => {
                self.failures += 1;
                problems.push(format!("battery monitor: {e}"));
                match self.last_battery {
                    // Keep counting with the last current known.
                    Some(s) => (None, s.current_a),
                    None => (None, 0.0),
                }
            }
        };
        let solar_w = match solar {
            Ok(w) => w,
            Err(e) => {
                self.failures += 1;
                problems.push(format!("solar monitor: {e}"));
                self.last.as_ref().map_or(0.0, |r| r.solar_w)
            }
        };
        let soc = match battery_mv {
            Some(mv) => self.gauge.update(t_ms, mv, amps),
            None => self.gauge.count(t_ms, amps).unwrap_or(self.assumed_soc),
        };
        let mv = battery_mv.or(self.last_battery.map(|s| s.bus_mv));
        // What the node draws: what comes in from the panel, less what
        // goes into the battery (plus what comes out of it).
        let battery_w = mv.map_or(0.0, |mv| mv / 1000.0 * amps);
        let load_w = (solar_w - battery_w).max(0.0);
        self.health = if problems.is_empty() {
            SupplyHealth::Ok
        } else if self.last_battery.is_none() {
            SupplyHealth::Absent(problems.join("; "))
        } else {
            SupplyHealth::Degraded(problems.join("; "))
        };
        let reading = PowerReading {
            t_ms,
            soc,
            solar_w,
            load_w,
            battery_mv: mv.map(|v| v.round().clamp(0.0, f64::from(u32::MAX)) as u32),
        };
        self.last = Some(reading);
        reading
    }

    fn health(&self) -> SupplyHealth {
        self.health.clone()
    }
}
