//! The battery and solar monitors (`power::Ina226Monitor`, the `ina226`
//! driver) on a register-level INA226 emulator (`hil_tests::ina226_emu`):
//! readings within the datasheet's accuracy, checked against values worked
//! out from the datasheet's formulas here; bus errors; a missing or wrong
//! chip; a brown-out that clears the calibration; and the supply's state of
//! charge counted from the measured current.

use hil_tests::ina226_emu::{Fault, Ina226Emu, MANUFACTURER_ID};
use power::{
    EnergyUse, GaugeConfig, Ina226Monitor, Monitor, MonitorConfig, MonitorError, MonitoredSupply,
    PowerSource, SupplyHealth,
};

const BATTERY: MonitorConfig = MonitorConfig {
    address: 0x40,
    shunt_ohms: 0.01,
    max_current_a: 8.0,
};

/// The datasheet's worst case for the chip: gain error 0.1 %, shunt offset
/// 2.5 µV (one shunt step), bus offset 1.25 mV (one bus step); plus one
/// current step of rounding.
fn current_tolerance(amps: f64, cfg: &MonitorConfig) -> f64 {
    let lsb = cfg.max_current_a / 32_768.0;
    amps.abs() * 0.001 + 2.5e-6 / cfg.shunt_ohms + lsb
}

fn monitor(emu: &Ina226Emu, cfg: MonitorConfig) -> Ina226Monitor<Ina226Emu> {
    Ina226Monitor::open(emu.clone(), cfg).expect("open the monitor")
}

#[test]
fn readings_are_within_the_datasheet_accuracy() {
    let emu = Ina226Emu::new(0x40);
    let mut m = monitor(&emu, BATTERY.clone());
    // Continuous shunt and bus conversions, 16 averaged (datasheet table 6:
    // mode 111, AVG 010, 1.1 ms each: 0x4527 with the fixed bit 14).
    assert_eq!(emu.config(), 0x4527);
    // The calibration the datasheet's equation 1 gives: 0.00512 / (Current_LSB × R).
    let lsb: f64 = 8.0 / 32_768.0;
    let cal = (0.00512 / (lsb * 0.01)).floor() as u16;
    assert_eq!(emu.raw().3, cal);
    for (amps, mv) in [
        (2.5, 13_200.0),
        (-1.25, 12_950.0),
        (0.0, 13_040.0),
        (7.9, 14_400.0),
        (-0.0123, 12_000.0),
    ] {
        emu.set_current(amps, 0.01);
        emu.set_bus_mv(mv);
        let s = m.sample().expect("sample");
        // Equation 3: Current = Shunt × CAL / 2048, in Current_LSB.
        let shunt_raw = (amps * 0.01 / 2.5e-6).round() as i64;
        let expected = (shunt_raw * i64::from(cal) / 2048) as f64 * lsb;
        assert!(
            (s.current_a - expected).abs() < 1e-9,
            "{amps} A: read {} want {expected}",
            s.current_a
        );
        assert!(
            (s.current_a - amps).abs() <= current_tolerance(amps, &BATTERY),
            "{amps} A: read {}",
            s.current_a
        );
        assert!(
            (s.bus_mv - mv).abs() <= mv * 0.001 + 1.25,
            "{mv} mV: read {}",
            s.bus_mv
        );
    }
}

#[test]
fn a_bus_error_is_an_error_and_the_next_sample_recovers() {
    let emu = Ina226Emu::new(0x40);
    let mut m = monitor(&emu, BATTERY.clone());
    emu.set_current(1.0, 0.01);
    emu.set_bus_mv(13_000.0);
    emu.inject(Fault::Bus);
    assert!(matches!(m.sample(), Err(MonitorError::Bus(_))));
    emu.inject(Fault::Nack);
    assert!(matches!(m.sample(), Err(MonitorError::Bus(_))));
    let s = m.sample().expect("recovers");
    assert!((s.current_a - 1.0).abs() <= current_tolerance(1.0, &BATTERY));
}

#[test]
fn a_missing_or_wrong_chip_is_refused_at_open() {
    // Nothing at 0x41.
    let emu = Ina226Emu::new(0x40);
    let cfg = MonitorConfig {
        address: 0x41,
        ..BATTERY.clone()
    };
    assert!(matches!(
        Ina226Monitor::open(emu.clone(), cfg),
        Err(MonitorError::Bus(_))
    ));
    // Unplugged.
    emu.set_unplugged(true);
    assert!(matches!(
        Ina226Monitor::open(emu.clone(), BATTERY.clone()),
        Err(MonitorError::Bus(_))
    ));
    // Something else answers at the address.
    emu.set_unplugged(false);
    emu.set_manufacturer_id(0x1234);
    match Ina226Monitor::open(emu.clone(), BATTERY.clone()) {
        Err(MonitorError::WrongChip { address, found }) => {
            assert_eq!((address, found), (0x40, 0x1234));
        }
        Err(e) => panic!("wrong error: {e}"),
        Ok(_) => panic!("a chip that is not an INA226 was accepted"),
    }
    emu.set_manufacturer_id(MANUFACTURER_ID);
    assert!(Ina226Monitor::open(emu, BATTERY.clone()).is_ok());
}

#[test]
fn a_brown_out_that_clears_the_calibration_is_repaired_before_a_reading() {
    let emu = Ina226Emu::new(0x40);
    let mut m = monitor(&emu, BATTERY.clone());
    emu.set_current(3.0, 0.01);
    emu.set_bus_mv(13_100.0);
    emu.brown_out();
    // Without the calibration the chip reads 0 A whatever flows.
    assert_eq!(emu.raw().2, 0);
    let s = m.sample().expect("sample");
    assert!(
        (s.current_a - 3.0).abs() <= current_tolerance(3.0, &BATTERY),
        "{}",
        s.current_a
    );
    assert_eq!(emu.config(), 0x4527);
}

fn supply(battery: &Ina226Emu, solar: &Ina226Emu) -> MonitoredSupply {
    let b: Box<dyn Monitor> = Box::new(monitor(battery, BATTERY.clone()));
    let s: Box<dyn Monitor> = Box::new(monitor(
        solar,
        MonitorConfig {
            address: 0x41,
            ..BATTERY.clone()
        },
    ));
    MonitoredSupply::new(Ok(b), Some(Ok(s)), GaugeConfig::default(), 0.3)
}

#[test]
fn the_supply_counts_charge_and_reports_what_the_node_draws() {
    let battery = Ina226Emu::new(0x40);
    let solar = Ina226Emu::new(0x41);
    let mut s = supply(&battery, &solar);
    // At rest at 50 % (13.04 V on the default LiFePO4 curve), no sun.
    battery.set_bus_mv(13_040.0);
    battery.set_current(0.0, 0.01);
    solar.set_bus_mv(0.0);
    let r = s.read(0, EnergyUse::default());
    assert_eq!(s.health(), SupplyHealth::Ok);
    assert!((r.soc - 0.5).abs() < 0.01, "{}", r.soc);
    // Night: the node draws 3 W from the battery (0.234 A at 12.8 V) for 10 h.
    battery.set_bus_mv(12_800.0);
    battery.set_current(-0.234, 0.01);
    let mut t = 0;
    let mut r = r;
    for _ in 0..60 {
        t += 600_000;
        r = s.read(t, EnergyUse::default());
    }
    // 2.34 Ah of 7.8: 30 % gone, within the chip's current accuracy.
    assert!((r.soc - 0.2).abs() < 0.005, "{}", r.soc);
    assert!((r.load_w - 3.0).abs() < 0.01, "{}", r.load_w);
    assert_eq!(r.solar_w, 0.0);
    assert_eq!(r.battery_mv, Some(12_800));
    // Day: the panel gives 20 W at 18 V, 17 W of it into the battery.
    solar.set_bus_mv(18_000.0);
    solar.set_current(20.0 / 18.0, 0.01);
    battery.set_bus_mv(13_300.0);
    battery.set_current(17.0 / 13.3, 0.01);
    let r = s.read(t + 600_000, EnergyUse::default());
    assert!((r.solar_w - 20.0).abs() < 0.05, "{}", r.solar_w);
    assert!((r.load_w - 3.0).abs() < 0.05, "{}", r.load_w);
    assert!(r.external_supply());
}

#[test]
fn a_failing_monitor_degrades_the_supply_and_a_missing_one_is_absent() {
    let battery = Ina226Emu::new(0x40);
    let solar = Ina226Emu::new(0x41);
    let mut s = supply(&battery, &solar);
    battery.set_bus_mv(13_040.0);
    let first = s.read(0, EnergyUse::default());
    battery.set_unplugged(true);
    let r = s.read(600_000, EnergyUse::default());
    match s.health() {
        SupplyHealth::Degraded(why) => assert!(why.contains("battery monitor"), "{why}"),
        other => panic!("{other:?}"),
    }
    // The last good reading carries on.
    assert!((r.soc - first.soc).abs() < 1e-6);
    assert_eq!(r.battery_mv, first.battery_mv);
    battery.set_unplugged(false);
    s.read(1_200_000, EnergyUse::default());
    assert_eq!(s.health(), SupplyHealth::Ok);
    assert_eq!(s.failures(), 1);

    // A battery monitor that never opened: the assumed state of charge.
    let gone = Ina226Emu::new(0x40);
    gone.set_unplugged(true);
    let b = Ina226Monitor::open(gone, BATTERY.clone()).map(|m| Box::new(m) as Box<dyn Monitor>);
    let mut s = MonitoredSupply::new(b, None, GaugeConfig::default(), 0.3);
    let r = s.read(0, EnergyUse::default());
    assert_eq!(r.soc, 0.3);
    assert_eq!(r.battery_mv, None);
    assert_eq!(s.health().as_str(), "absent");
}
