//! The BME280 climate sensor on I2C, through the `bme280` crate.
//!
//! [`Bme280Climate::open`] checks the chip id (0x60; a BMP280, 0x58, has no
//! humidity and is refused) and configures oversampling and the IIR filter.
//! Each [`ClimateSensor::read`] takes one forced-mode measurement, so the
//! sensor sleeps between readings.
//!
//! Faults: a failed attempt (bus error, NACK, invalid reading) is retried at
//! once, up to `retries` times. When every attempt fails the sensor is
//! degraded and `read` returns [`SensorError::Unavailable`] without touching
//! the bus until `reprobe_ms` has passed; the re-probe re-initialises the
//! chip (chip id, calibration, configuration) before measuring.
//!
//! No invalid reading is passed on: the crate clamps compensated values to
//! its limits, so a temperature or pressure exactly at a limit (or not
//! finite) is rejected, and so is a measurement the chip skipped (raw value
//! 0x80000 / 0x8000, checked by re-reading the data registers): after a
//! brown-out or stray soft reset the chip has lost its oversampling
//! configuration and measures nothing, so an invalid reading also triggers a
//! re-initialisation. Humidity at exactly 0 or 100 % is accepted: saturated
//! air legitimately reads 100 % (the crate clamps the sensor's tolerance).
//!
//! Health errors are counted per attempt by cause (`nack`, `bus`, `chip_id`,
//! `driver`, `invalid_reading`), plus `init` for each failed
//! (re-)initialisation. The driver owns the bus through a shared handle so
//! that this module can still read the chip id and the raw data registers.

use std::sync::{Arc, Mutex, PoisonError};

use bme280::i2c::BME280;
use bme280::{Configuration, IIRFilter, Oversampling};
use embedded_hal::delay::DelayNs;
use embedded_hal::i2c::{ErrorKind, ErrorType, I2c, Operation};
use fusion::ClimateSample;
use serde::{Deserialize, Serialize};

use super::health::HealthHandle;
use super::{ClimateSensor, SensorError};

const SENSOR: &str = "climate";
const REG_CHIP_ID: u8 = 0xD0;
const REG_DATA: u8 = 0xF7;
const BME280_ID: u8 = 0x60;
const BMP280_ID: u8 = 0x58;

/// `[climate.bme280]`: how the BME280 is configured and watched.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Bme280Settings {
    /// Temperature oversampling: 1, 2, 4, 8 or 16.
    pub oversampling_temperature: u8,
    /// Pressure oversampling: 1, 2, 4, 8 or 16.
    pub oversampling_pressure: u8,
    /// Humidity oversampling: 1, 2, 4, 8 or 16.
    pub oversampling_humidity: u8,
    /// IIR filter coefficient: 0 (off), 2, 4, 8 or 16.
    pub iir_filter: u8,
    /// Immediate retries of a failed reading (so `retries + 1` attempts).
    pub retries: u32,
    /// After a failed reading, the bus is left alone this long, ms.
    pub reprobe_ms: u64,
}

impl Default for Bme280Settings {
    fn default() -> Self {
        Bme280Settings {
            oversampling_temperature: 1,
            oversampling_pressure: 1,
            oversampling_humidity: 1,
            iir_filter: 0,
            retries: 3,
            reprobe_ms: 60_000,
        }
    }
}

fn oversampling(n: u8) -> Option<Oversampling> {
    Some(match n {
        1 => Oversampling::Oversampling1X,
        2 => Oversampling::Oversampling2X,
        4 => Oversampling::Oversampling4X,
        8 => Oversampling::Oversampling8X,
        16 => Oversampling::Oversampling16X,
        _ => return None,
    })
}

fn iir_filter(n: u8) -> Option<IIRFilter> {
    Some(match n {
        0 => IIRFilter::Off,
        2 => IIRFilter::Coefficient2,
        4 => IIRFilter::Coefficient4,
        8 => IIRFilter::Coefficient8,
        16 => IIRFilter::Coefficient16,
        _ => return None,
    })
}

impl Bme280Settings {
    /// Problems, as (key under `climate.bme280`, message).
    pub fn validate(&self) -> Vec<(String, String)> {
        let mut e = Vec::new();
        for (k, v) in [
            ("oversampling_temperature", self.oversampling_temperature),
            ("oversampling_pressure", self.oversampling_pressure),
            ("oversampling_humidity", self.oversampling_humidity),
        ] {
            if oversampling(v).is_none() {
                e.push((k.into(), "must be 1, 2, 4, 8 or 16".into()));
            }
        }
        if iir_filter(self.iir_filter).is_none() {
            e.push(("iir_filter".into(), "must be 0 (off), 2, 4, 8 or 16".into()));
        }
        if self.retries > 10 {
            e.push(("retries".into(), "must be at most 10".into()));
        }
        if !(100..=86_400_000).contains(&self.reprobe_ms) {
            e.push((
                "reprobe_ms".into(),
                "must be between 100 ms and one day".into(),
            ));
        }
        e
    }

    /// The driver's configuration; `None` if a value is out of range.
    fn configuration(&self) -> Option<Configuration> {
        Some(
            Configuration::default()
                .with_temperature_oversampling(oversampling(self.oversampling_temperature)?)
                .with_pressure_oversampling(oversampling(self.oversampling_pressure)?)
                .with_humidity_oversampling(oversampling(self.oversampling_humidity)?)
                .with_iir_filter(iir_filter(self.iir_filter)?),
        )
    }
}

/// The bus, shared between the driver (which owns its I2C) and this module's
/// own register reads (chip id, skipped-measurement check).
struct SharedBus<I2C>(Arc<Mutex<I2C>>);

impl<I2C: I2c> SharedBus<I2C> {
    fn with<R>(&self, f: impl FnOnce(&mut I2C) -> R) -> R {
        f(&mut self.0.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

impl<I2C: I2c> ErrorType for SharedBus<I2C> {
    type Error = I2C::Error;
}

impl<I2C: I2c> I2c for SharedBus<I2C> {
    fn transaction(&mut self, address: u8, ops: &mut [Operation<'_>]) -> Result<(), I2C::Error> {
        self.with(|i2c| i2c.transaction(address, ops))
    }
}

/// Why one attempt failed.
#[derive(Debug)]
enum Failure {
    Nack,
    Bus(ErrorKind),
    ChipId(u8),
    Invalid(&'static str),
    Driver(&'static str),
}

impl Failure {
    fn from_bus<E: embedded_hal::i2c::Error>(e: E) -> Failure {
        match e.kind() {
            ErrorKind::NoAcknowledge(_) => Failure::Nack,
            k => Failure::Bus(k),
        }
    }

    fn from_driver<E: embedded_hal::i2c::Error>(e: bme280::Error<E>) -> Failure {
        match e {
            bme280::Error::Bus(e) => Failure::from_bus(e),
            bme280::Error::UnsupportedChip => Failure::Driver("unsupported chip id"),
            bme280::Error::NoCalibrationData => Failure::Driver("no calibration data"),
            bme280::Error::InvalidData | bme280::Error::CompensationFailed => {
                Failure::Invalid("compensation failed")
            }
            bme280::Error::Delay => Failure::Driver("delay failed"),
        }
    }

    /// The health error kind.
    fn kind(&self) -> &'static str {
        match self {
            Failure::Nack => "nack",
            Failure::Bus(_) => "bus",
            Failure::ChipId(_) => "chip_id",
            Failure::Driver(_) => "driver",
            Failure::Invalid(_) => "invalid_reading",
        }
    }

    fn describe(&self, address: u8) -> String {
        match self {
            Failure::Nack => format!("no acknowledge from {address:#04x}"),
            Failure::Bus(k) => format!("I2C bus error at {address:#04x} ({k})"),
            Failure::ChipId(id) => format!("unexpected chip id {id:#04x} at {address:#04x}"),
            Failure::Invalid(what) => format!("invalid reading: {what}"),
            Failure::Driver(what) => format!("BME280 driver: {what}"),
        }
    }
}

/// A BME280 on I2C, read in forced mode.
pub struct Bme280Climate<I2C, D> {
    bus: SharedBus<I2C>,
    driver: BME280<SharedBus<I2C>>,
    delay: D,
    address: u8,
    settings: Bme280Settings,
    config: Configuration,
    health: HealthHandle,
    needs_init: bool,
    /// While failing: the time of the next re-probe, and why.
    outage: Option<(i64, String)>,
}

impl<I2C: I2c, D: DelayNs> Bme280Climate<I2C, D> {
    /// Checks the chip at `address` and configures it. A missing device, a
    /// chip that is not a BME280, invalid settings or an initialisation that
    /// keeps failing make the sensor absent (also recorded in `health`).
    pub fn open(
        i2c: I2C,
        address: u8,
        settings: Bme280Settings,
        delay: D,
        health: HealthHandle,
    ) -> Result<Self, SensorError> {
        let absent = |reason: String| {
            health.set_absent(reason.clone());
            SensorError::Absent {
                sensor: SENSOR,
                reason,
            }
        };
        let problems = settings.validate();
        let config = match settings.configuration() {
            Some(c) if problems.is_empty() => c,
            _ => {
                let bad: Vec<String> = problems
                    .into_iter()
                    .map(|(k, m)| format!("{k} {m}"))
                    .collect();
                return Err(absent(format!("invalid settings: {}", bad.join("; "))));
            }
        };
        let bus = SharedBus(Arc::new(Mutex::new(i2c)));
        let driver = BME280::new(SharedBus(Arc::clone(&bus.0)), address);
        let mut s = Bme280Climate {
            bus,
            driver,
            delay,
            address,
            settings,
            config,
            health: health.clone(),
            needs_init: true,
            outage: None,
        };
        let mut last = Failure::Nack;
        for _ in 0..=s.settings.retries {
            match s.init() {
                Ok(()) => {
                    tracing::info!(
                        sensor = SENSOR,
                        address = format_args!("{address:#04x}"),
                        "BME280 ready"
                    );
                    health.set_ok();
                    return Ok(s);
                }
                Err(f) => {
                    health.count(f.kind());
                    let fatal = matches!(f, Failure::ChipId(_) | Failure::Driver(_));
                    last = f;
                    if fatal {
                        break;
                    }
                }
            }
        }
        Err(absent(match last {
            Failure::Nack => format!("no device answers at {address:#04x} on the bus"),
            Failure::ChipId(BMP280_ID) => format!(
                "a BMP280 (chip id 0x58) answers at {address:#04x}: it has no humidity sensor, a BME280 (0x60) is needed"
            ),
            Failure::ChipId(id) => {
                format!("chip id {id:#04x} at {address:#04x} is not a BME280 (0x60)")
            }
            f => format!("cannot initialise the BME280: {}", f.describe(address)),
        }))
    }

    /// Chip id, then the driver's init (soft reset, calibration,
    /// configuration). A failure is counted as `init` (its cause is counted
    /// by the caller).
    fn init(&mut self) -> Result<(), Failure> {
        let mut id = [0u8; 1];
        let address = self.address;
        let result = match self
            .bus
            .with(|i2c| i2c.write_read(address, &[REG_CHIP_ID], &mut id))
        {
            Err(e) => Err(Failure::from_bus(e)),
            Ok(()) if id[0] != BME280_ID => Err(Failure::ChipId(id[0])),
            Ok(()) => self
                .driver
                .init_with_config(&mut self.delay, self.config)
                .map_err(Failure::from_driver),
        };
        if result.is_err() {
            self.health.count("init");
        }
        self.needs_init = result.is_err();
        result
    }

    /// One measurement, initialising first if needed, checked.
    fn attempt(&mut self) -> Result<(f32, f32, f32), Failure> {
        if self.needs_init {
            self.init()?;
        }
        let m = self
            .driver
            .measure(&mut self.delay)
            .map_err(Failure::from_driver)?;
        let mut raw = [0u8; 8];
        let address = self.address;
        self.bus
            .with(|i2c| i2c.write_read(address, &[REG_DATA], &mut raw))
            .map_err(Failure::from_bus)?;
        let adc_p = (u32::from(raw[0]) << 12) | (u32::from(raw[1]) << 4) | (u32::from(raw[2]) >> 4);
        let adc_t = (u32::from(raw[3]) << 12) | (u32::from(raw[4]) << 4) | (u32::from(raw[5]) >> 4);
        let adc_h = u16::from_be_bytes([raw[6], raw[7]]);
        let (t, p, h) = (m.temperature, m.pressure, m.humidity);
        if adc_t == 0x80000 || adc_p == 0x80000 || adc_h == 0x8000 {
            return Err(Failure::Invalid("measurement skipped (configuration lost)"));
        }
        if !t.is_finite() || t <= -40.0 || t >= 85.0 {
            return Err(Failure::Invalid("temperature outside -40..85 °C"));
        }
        if !p.is_finite() || p <= 30_000.0 || p >= 110_000.0 {
            return Err(Failure::Invalid("pressure outside 300..1100 hPa"));
        }
        if !h.is_finite() || !(0.0..=100.0).contains(&h) {
            return Err(Failure::Invalid("humidity outside 0..100 %"));
        }
        Ok((t, p, h))
    }
}

impl<I2C, D> ClimateSensor for Bme280Climate<I2C, D>
where
    I2C: I2c + Send + 'static,
    D: DelayNs + Send + 'static,
{
    fn read(&mut self, t_ms: i64) -> Result<Option<ClimateSample>, SensorError> {
        let unavailable = |reason: &str| SensorError::Unavailable {
            sensor: SENSOR,
            reason: reason.to_string(),
        };
        if let Some((reprobe_at, reason)) = &self.outage {
            if t_ms < *reprobe_at {
                return Err(unavailable(reason));
            }
            tracing::info!(
                sensor = SENSOR,
                address = format_args!("{:#04x}", self.address),
                t_ms,
                "re-probing the BME280"
            );
        }
        let attempts = self.settings.retries.saturating_add(1);
        let mut last = Failure::Nack;
        for attempt in 1..=attempts {
            match self.attempt() {
                Ok((t, p, h)) => {
                    self.outage = None;
                    self.health.set_ok();
                    return Ok(Some(ClimateSample {
                        t_ms,
                        temperature_c: t,
                        humidity_pct: h,
                        pressure_hpa: p / 100.0,
                    }));
                }
                Err(f) => {
                    self.health.count(f.kind());
                    if matches!(f, Failure::Invalid(_)) {
                        self.needs_init = true; // the chip may have lost its configuration
                    }
                    tracing::debug!(
                        sensor = SENSOR,
                        attempt,
                        attempts,
                        kind = f.kind(),
                        error = %f.describe(self.address),
                        "BME280 attempt failed"
                    );
                    last = f;
                }
            }
        }
        let reason = format!("{} x{attempts}", last.describe(self.address));
        let reprobe_ms = i64::try_from(self.settings.reprobe_ms).unwrap_or(i64::MAX);
        tracing::warn!(
            sensor = SENSOR,
            address = format_args!("{:#04x}", self.address),
            t_ms,
            attempts,
            reprobe_ms,
            reason = %reason,
            "BME280 reading failed; the bus is left alone until the re-probe"
        );
        self.needs_init = true;
        self.health.set_degraded(reason.clone());
        let err = unavailable(&reason);
        self.outage = Some((t_ms.saturating_add(reprobe_ms), reason));
        Err(err)
    }

    fn blocking(&self) -> bool {
        true
    }
}
