//! The node's BME280 driver (`node::sensors::bme280`, on the real `bme280`
//! crate) against the register-level emulator (`hil_tests::bme280_emu`):
//! compensation checked against the datasheet's double-precision formulas,
//! forced mode, absent devices, retries, outages and re-probing, brown-outs.

use embedded_hal::delay::DelayNs;
use hil_tests::bme280_emu::{BMP280_CHIP_ID, Bme280Emu, Fault};
use node::sensors::bme280::{Bme280Climate, Bme280Settings};
use node::sensors::health::{Health, HealthHandle};
use node::sensors::{ClimateSensor, SensorError};

/// A delay that does not wait (the emulator converts instantly).
struct NoDelay;

impl DelayNs for NoDelay {
    fn delay_ns(&mut self, _ns: u32) {}
}

type Sensor = Bme280Climate<Bme280Emu, NoDelay>;

/// A reading's values (the sample type lives in `fusion`, not a dependency here).
#[derive(Debug)]
struct Reading {
    temperature_c: f32,
    pressure_hpa: f32,
    humidity_pct: f32,
}

fn open_with(
    emu: &Bme280Emu,
    settings: Bme280Settings,
) -> (Result<Sensor, SensorError>, HealthHandle) {
    let health = HealthHandle::detached("climate");
    let s = Bme280Climate::open(emu.clone(), 0x76, settings, NoDelay, health.clone());
    (s, health)
}

fn open(emu: &Bme280Emu) -> (Sensor, HealthHandle) {
    let (s, h) = open_with(emu, Bme280Settings::default());
    (s.unwrap_or_else(|e| panic!("open failed: {e}")), h)
}

// The datasheet's compensation formulas in double precision (BME280
// datasheet section 8.1), with the example trimming parameters written out
// here rather than taken from the emulator.
const T1: f64 = 27504.0;
const T2: f64 = 26435.0;
const T3: f64 = -1000.0;
const P: [f64; 9] = [
    36477.0, -10685.0, 3024.0, 2855.0, 140.0, -7.0, 15500.0, -14600.0, 6000.0,
];
const H1: f64 = 75.0;
const H2: f64 = 362.0;
const H3: f64 = 0.0;
const H4: f64 = 324.0;
const H5: f64 = 50.0;
const H6: f64 = 30.0;

/// Temperature in °C and `t_fine`.
fn compensate_t(adc_t: u32) -> (f64, i32) {
    let adc = f64::from(adc_t);
    let var1 = (adc / 16384.0 - T1 / 1024.0) * T2;
    let var2 = (adc / 131072.0 - T1 / 8192.0) * (adc / 131072.0 - T1 / 8192.0) * T3;
    ((var1 + var2) / 5120.0, (var1 + var2) as i32)
}

/// Pressure in Pa.
fn compensate_p(adc_p: u32, t_fine: i32) -> f64 {
    let [p1, p2, p3, p4, p5, p6, p7, p8, p9] = P;
    let mut var1 = f64::from(t_fine) / 2.0 - 64000.0;
    let mut var2 = var1 * var1 * p6 / 32768.0;
    var2 += var1 * p5 * 2.0;
    var2 = var2 / 4.0 + p4 * 65536.0;
    var1 = (p3 * var1 * var1 / 524288.0 + p2 * var1) / 524288.0;
    var1 = (1.0 + var1 / 32768.0) * p1;
    assert!(var1 != 0.0);
    let mut p = 1048576.0 - f64::from(adc_p);
    p = (p - var2 / 4096.0) * 6250.0 / var1;
    var1 = p9 * p * p / 2147483648.0;
    var2 = p * p8 / 32768.0;
    p + (var1 + var2 + p7) / 16.0
}

/// Relative humidity in %.
fn compensate_h(adc_h: u16, t_fine: i32) -> f64 {
    let mut h = f64::from(t_fine) - 76800.0;
    h = (f64::from(adc_h) - (H4 * 64.0 + H5 / 16384.0 * h))
        * (H2 / 65536.0 * (1.0 + H6 / 67108864.0 * h * (1.0 + H3 / 67108864.0 * h)));
    h *= 1.0 - H1 * h / 524288.0;
    h.clamp(0.0, 100.0)
}

/// Checks a reading against the double-precision formulas. The driver
/// computes in f32 (24-bit mantissa, ~6e-8 relative): its results differ by
/// < 1e-6 °C, ~1e-4 hPa (the f32 step near 1000 hPa is 6e-5) and < 1e-5 %RH,
/// so 0.001 °C, 0.005 hPa and 0.005 %RH leave a wide margin while catching a
/// raw value off by a few counts (one count of adc_P is ~0.2 Pa, of adc_T
/// ~0.3 m°C) or any wrong calibration byte.
fn assert_matches(adc: (u32, u32, u16), s: &Reading) {
    let (t, t_fine) = compensate_t(adc.0);
    let p_hpa = compensate_p(adc.1, t_fine) / 100.0;
    let h = compensate_h(adc.2, t_fine);
    let msg = format!("raw {adc:?}: got {s:?}, expected {t} °C, {p_hpa} hPa, {h} %");
    assert!((f64::from(s.temperature_c) - t).abs() < 0.001, "{msg}");
    assert!((f64::from(s.pressure_hpa) - p_hpa).abs() < 0.005, "{msg}");
    assert!((f64::from(s.humidity_pct) - h).abs() < 0.005, "{msg}");
}

fn unavailable_reason<T: std::fmt::Debug>(r: Result<Option<T>, SensorError>) -> String {
    match r {
        Err(SensorError::Unavailable { sensor, reason }) => {
            assert_eq!(sensor, "climate");
            reason
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }
}

fn absent_reason(r: Result<Sensor, SensorError>) -> String {
    match r {
        Err(SensorError::Absent { sensor, reason }) => {
            assert_eq!(sensor, "climate");
            reason
        }
        Err(e) => panic!("expected Absent, got {e:?}"),
        Ok(_) => panic!("expected Absent, the sensor opened"),
    }
}

fn sample(s: &mut Sensor, t_ms: i64) -> Reading {
    match s.read(t_ms) {
        Ok(Some(x)) => {
            assert_eq!(x.t_ms, t_ms);
            Reading {
                temperature_c: x.temperature_c,
                pressure_hpa: x.pressure_hpa,
                humidity_pct: x.humidity_pct,
            }
        }
        other => panic!("expected a reading at {t_ms}, got {other:?}"),
    }
}

#[test]
fn compensation_matches_the_datasheet_formulas() {
    // The datasheet's worked example first: 25.08 °C, 100653.27 Pa.
    let (t, t_fine) = compensate_t(519_888);
    assert!(
        (t - 25.08).abs() < 0.005 && t_fine == 128_422,
        "{t} {t_fine}"
    );
    assert!((compensate_p(415_148, t_fine) - 100_653.27).abs() < 0.05);

    let emu = Bme280Emu::new(0x76);
    let (mut s, health) = open(&emu);
    let example = sample(&mut s, 0);
    assert!((example.temperature_c - 25.08).abs() < 0.01, "{example:?}");
    assert!((example.pressure_hpa - 1006.53).abs() < 0.05, "{example:?}");
    for (i, adc) in [
        (519_888, 415_148, 30_000),
        // Low bits set, so that a lost xlsb nibble shows.
        (430_007, 380_003, 22_001), // -3 °C, 1021 hPa, 8 %
        (600_013, 460_011, 38_005), // 50 °C, 965 hPa, 98 %
        (470_011, 360_007, 27_003), // 9 °C, 1086 hPa, 34 %
        (540_009, 520_005, 25_007), // 30 °C, ~830 hPa (mountain)
    ]
    .into_iter()
    .enumerate()
    {
        emu.set_adc(adc.0, adc.1, adc.2);
        let x = sample(&mut s, 1000 * i as i64);
        assert_matches(adc, &x);
    }
    assert!(health.is_ok());
    assert!(health.snapshot().errors.is_empty());
}

#[test]
fn saturated_humidity_reads_100_percent() {
    let emu = Bme280Emu::new(0x76);
    emu.set_adc(519_888, 415_148, 60_000); // compensates to > 100 %
    let (mut s, health) = open(&emu);
    let x = sample(&mut s, 0);
    assert_eq!(x.humidity_pct, 100.0);
    assert_matches((519_888, 415_148, 60_000), &x);
    assert_eq!(health.errors("invalid_reading"), 0);
}

#[test]
fn sensor_sleeps_between_readings_with_the_configured_oversampling() {
    let emu = Bme280Emu::new(0x77);
    let settings = Bme280Settings {
        oversampling_temperature: 2,
        oversampling_pressure: 16,
        oversampling_humidity: 4,
        iir_filter: 4,
        ..Bme280Settings::default()
    };
    let health = HealthHandle::detached("climate");
    let mut s = Bme280Climate::open(emu.clone(), 0x77, settings, NoDelay, health.clone())
        .unwrap_or_else(|e| panic!("{e}"));
    // osrs_h 4x = 011; osrs_t 2x = 010, osrs_p 16x = 101, mode sleep; filter 4 = 010.
    let configured = (0b011, (0b010 << 5) | (0b101 << 2), 0b010 << 2);
    assert_eq!(emu.control(), configured);
    assert_eq!(emu.mode(), 0);
    assert_eq!(emu.conversions(), 0);
    for i in 1..=3u64 {
        let x = sample(&mut s, i as i64 * 10_000);
        assert_matches((519_888, 415_148, 30_000), &x);
        assert_eq!(emu.conversions(), i, "one forced conversion per reading");
        assert_eq!(emu.mode(), 0, "asleep after reading {i}");
        assert_eq!(emu.control(), configured);
    }
    assert_eq!(emu.soft_resets(), 1, "only the reset of the initialisation");
}

#[test]
fn a_bmp280_is_absent() {
    let emu = Bme280Emu::new(0x76);
    emu.set_chip_id(BMP280_CHIP_ID);
    let (r, health) = open_with(&emu, Bme280Settings::default());
    let reason = absent_reason(r);
    assert!(
        reason.contains("BMP280") && reason.contains("humidity"),
        "{reason}"
    );
    assert_eq!(health.health(), Health::Absent { reason });
    assert_eq!(emu.transactions(), 1, "a wrong chip is not retried");
    assert_eq!(emu.soft_resets(), 0, "the driver never got the bus");
}

#[test]
fn an_unknown_chip_is_absent() {
    let emu = Bme280Emu::new(0x76);
    emu.set_chip_id(0x61);
    let reason = absent_reason(open_with(&emu, Bme280Settings::default()).0);
    assert!(
        reason.contains("0x61") && reason.contains("not a BME280"),
        "{reason}"
    );
}

#[test]
fn no_device_is_absent() {
    let emu = Bme280Emu::new(0x76);
    emu.set_unplugged(true);
    let (r, health) = open_with(&emu, Bme280Settings::default());
    let reason = absent_reason(r);
    assert_eq!(reason, "no device answers at 0x76 on the bus");
    assert_eq!(emu.transactions(), 4, "1 try + 3 retries");
    assert_eq!(health.errors("nack"), 4);
    assert!(matches!(health.health(), Health::Absent { .. }));

    // Nothing at the configured address either (the chip sits at 0x77).
    let emu = Bme280Emu::new(0x77);
    let reason = absent_reason(open_with(&emu, Bme280Settings::default()).0);
    assert_eq!(reason, "no device answers at 0x76 on the bus");
}

#[test]
fn invalid_settings_are_refused_without_touching_the_bus() {
    let emu = Bme280Emu::new(0x76);
    let settings = Bme280Settings {
        oversampling_pressure: 3,
        ..Bme280Settings::default()
    };
    let reason = absent_reason(open_with(&emu, settings).0);
    assert!(reason.contains("oversampling_pressure"), "{reason}");
    assert_eq!(emu.transactions(), 0);
}

#[test]
fn settings_defaults_validation_and_unknown_keys() {
    let d = Bme280Settings::default();
    assert_eq!(
        (
            d.oversampling_temperature,
            d.oversampling_pressure,
            d.oversampling_humidity
        ),
        (1, 1, 1)
    );
    assert_eq!((d.iir_filter, d.retries, d.reprobe_ms), (0, 3, 60_000));
    assert!(d.validate().is_empty());
    let s: Bme280Settings = toml::from_str("oversampling_humidity = 16\niir_filter = 5").unwrap();
    assert_eq!(s.oversampling_humidity, 16);
    assert_eq!(s.retries, 3);
    let keys: Vec<String> = s.validate().into_iter().map(|(k, _)| k).collect();
    assert_eq!(keys, ["iir_filter"]);
    let bad = Bme280Settings {
        oversampling_temperature: 0,
        oversampling_humidity: 32,
        ..d
    };
    let keys: Vec<String> = bad.validate().into_iter().map(|(k, _)| k).collect();
    assert_eq!(keys, ["oversampling_temperature", "oversampling_humidity"]);
    // Unknown keys are reported by the configuration loader, with their path.
    let errors = node::config::Config::from_toml_str("[climate.bme280]\nretry = 2\n")
        .expect_err("an unknown key is an error");
    assert_eq!(errors.0[0].key, "climate.bme280.retry");
}

#[test]
fn transient_faults_at_open_are_retried() {
    let emu = Bme280Emu::new(0x76);
    emu.inject(Fault::Nack, 2);
    emu.inject(Fault::Bus, 1);
    let (mut s, health) = open(&emu);
    assert_eq!((health.errors("nack"), health.errors("bus")), (2, 1));
    assert!(health.is_ok());
    assert_matches((519_888, 415_148, 30_000), &sample(&mut s, 0));
}

#[test]
fn faults_within_the_retries_are_transparent() {
    let emu = Bme280Emu::new(0x76);
    let (mut s, health) = open(&emu);
    emu.inject(Fault::Nack, 2);
    emu.inject(Fault::ArbitrationLoss, 1); // 3 faults = retries: the 4th attempt works
    let before = emu.conversions();
    assert_matches((519_888, 415_148, 30_000), &sample(&mut s, 0));
    assert_eq!(emu.pending_faults(), 0);
    assert_eq!(emu.conversions(), before + 1);
    assert_eq!((health.errors("nack"), health.errors("bus")), (2, 1));
    assert!(health.is_ok());
    assert_eq!(health.snapshot().outages, 0);
    assert_eq!(emu.mode(), 0);
}

#[test]
fn bus_errors_beyond_the_retries_degrade_the_sensor() {
    let emu = Bme280Emu::new(0x76);
    let (mut s, health) = open(&emu);
    emu.inject(Fault::Bus, 4);
    let reason = unavailable_reason(s.read(0));
    assert!(
        reason.contains("I2C bus error") && reason.ends_with("x4"),
        "{reason}"
    );
    assert_eq!(health.errors("bus"), 4);
    assert_eq!(health.health(), Health::Degraded { reason });
    assert_eq!(health.snapshot().outages, 1);
    // The faults are gone, but the bus is left alone until reprobe_ms.
    let n = emu.transactions();
    assert!(s.read(59_999).is_err());
    assert_eq!(emu.transactions(), n);
    assert_matches((519_888, 415_148, 30_000), &sample(&mut s, 60_000));
    assert!(health.is_ok());
}

#[test]
fn an_unplugged_sensor_is_reprobed_and_recovers() {
    let emu = Bme280Emu::new(0x76);
    let (mut s, health) = open(&emu);
    sample(&mut s, 0);
    emu.set_unplugged(true);
    let reason = unavailable_reason(s.read(1_000));
    assert_eq!(reason, "no acknowledge from 0x76 x4");
    assert_eq!(health.errors("nack"), 4);
    assert_eq!(health.snapshot().outages, 1);

    // Waiting for the re-probe: Unavailable at once, no bus traffic.
    let n = emu.transactions();
    for t in [1_001, 2_000, 30_000, 60_999] {
        assert_eq!(unavailable_reason(s.read(t)), reason);
    }
    assert_eq!(emu.transactions(), n);

    // Re-probe while still unplugged: one chip-id read per attempt, then wait again.
    assert!(s.read(61_000).is_err());
    assert_eq!(emu.transactions(), n + 4);
    assert_eq!(health.errors("init"), 4);
    assert!(s.read(120_999).is_err());
    assert_eq!(emu.transactions(), n + 4);

    // Plugged back in and, behind our back, power-cycled.
    emu.set_unplugged(false);
    emu.brown_out();
    let resets = emu.soft_resets();
    emu.set_adc(600_000, 460_000, 38_000);
    assert_matches((600_000, 460_000, 38_000), &sample(&mut s, 121_000));
    assert_eq!(
        emu.soft_resets(),
        resets + 1,
        "re-initialised at the re-probe"
    );
    assert_eq!(emu.control(), (0b001, (0b001 << 5) | (0b001 << 2), 0));
    assert!(health.is_ok());
    assert_eq!(health.snapshot().outages, 1);
    assert_eq!(health.errors("invalid_reading"), 0);
}

#[test]
fn a_brown_out_is_rejected_and_the_sensor_reinitialised() {
    let emu = Bme280Emu::new(0x76);
    let (mut s, health) = open(&emu);
    sample(&mut s, 0);
    let (resets, conversions) = (emu.soft_resets(), emu.conversions());
    // The configuration is lost: the next conversion skips every channel,
    // whose compensated values (26.5 °C, 820 hPa, 66.5 %) look plausible.
    emu.brown_out();
    emu.set_adc(430_000, 380_000, 22_000);
    let x = sample(&mut s, 10_000);
    assert_matches((430_000, 380_000, 22_000), &x);
    assert_eq!(health.errors("invalid_reading"), 1);
    assert_eq!(emu.conversions(), conversions + 2, "skipped, then measured");
    assert_eq!(emu.soft_resets(), resets + 1, "re-initialised");
    assert_eq!(emu.control(), (0b001, (0b001 << 5) | (0b001 << 2), 0));
    assert!(health.is_ok());
}

#[test]
fn a_brown_out_without_retries_gives_no_reading_then_recovers() {
    let emu = Bme280Emu::new(0x76);
    let settings = Bme280Settings {
        retries: 0,
        reprobe_ms: 5_000,
        ..Bme280Settings::default()
    };
    let (s, health) = open_with(&emu, settings);
    let mut s = s.unwrap_or_else(|e| panic!("{e}"));
    sample(&mut s, 0);
    emu.brown_out();
    let reason = unavailable_reason(s.read(1_000));
    assert!(reason.contains("skipped"), "{reason}");
    assert_eq!(health.errors("invalid_reading"), 1);
    assert!(!health.is_ok());
    assert!(s.read(5_999).is_err());
    assert_matches((519_888, 415_148, 30_000), &sample(&mut s, 6_000));
    assert!(health.is_ok());
    assert_eq!(health.snapshot().outages, 1);
}

#[test]
fn out_of_range_readings_are_never_passed_on() {
    let emu = Bme280Emu::new(0x76);
    let (mut s, health) = open(&emu);
    // 187 °C by the formula: the crate clamps it to its 85 °C limit.
    emu.set_adc(0xF_FFF0, 415_148, 30_000);
    let reason = unavailable_reason(s.read(0));
    assert!(reason.contains("temperature"), "{reason}");
    assert_eq!(health.errors("invalid_reading"), 4);
    assert_eq!(emu.soft_resets(), 1 + 3, "re-initialised before each retry");
    // Pressure below 300 hPa (raw near full scale) is rejected too.
    emu.set_adc(519_888, 0xF_FF00, 30_000);
    assert!(unavailable_reason(s.read(60_000)).contains("pressure"));
    emu.set_adc(519_888, 415_148, 30_000);
    assert_matches((519_888, 415_148, 30_000), &sample(&mut s, 120_000));
}
