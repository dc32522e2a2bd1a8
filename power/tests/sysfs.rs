//! `power::sysfs` on fake sysfs trees in temporary directories.

use std::fs;
use std::path::{Path, PathBuf};

use power::sysfs::read_board;
use power::{
    BoardHealth, CurrentSign, EnergyUse, PowerReading, PowerSource, SupplyHealth, SysfsConfig,
    SysfsSupply,
};
use tempfile::TempDir;

/// A fake `/` with a power supply class.
struct Tree {
    dir: TempDir,
}

impl Tree {
    fn new() -> Tree {
        let dir = tempfile::tempdir().expect("temp dir");
        fs::create_dir_all(dir.path().join("sys/class/power_supply")).expect("class dir");
        Tree { dir }
    }

    fn root(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }

    fn supply_dir(&self, name: &str) -> PathBuf {
        self.dir.path().join("sys/class/power_supply").join(name)
    }

    /// Writes `files` (name, content) into the supply entry `name`.
    fn supply(&self, name: &str, files: &[(&str, &str)]) {
        let d = self.supply_dir(name);
        fs::create_dir_all(&d).expect("supply dir");
        for (f, v) in files {
            write(&d.join(f), v);
        }
    }

    fn remove(&self, name: &str, file: &str) {
        fs::remove_file(self.supply_dir(name).join(file)).expect("remove");
    }

    fn config(&self, battery: Option<&str>, sign: CurrentSign) -> SysfsConfig {
        SysfsConfig {
            root: self.root(),
            battery: battery.map(String::from),
            current_positive: sign,
            ..SysfsConfig::default()
        }
    }
}

fn write(path: &Path, v: &str) {
    if let Some(p) = path.parent() {
        fs::create_dir_all(p).expect("parent");
    }
    fs::write(path, format!("{v}\n")).expect("write");
}

fn read(s: &mut SysfsSupply, t_ms: i64) -> PowerReading {
    s.read(t_ms, EnergyUse::default())
}

fn close(a: f64, b: f64, what: &str) {
    assert!((a - b).abs() < 1e-6, "{what}: {a} vs {b}");
}

/// A 1-cell battery at 3.8 V, 78 %, with `current_now` = `raw_ua`.
fn fuel_gauge_battery(t: &Tree, status: &str, raw_ua: i64) {
    t.supply(
        "BAT0",
        &[
            ("type", "Battery"),
            ("present", "1"),
            ("capacity", "78"),
            ("voltage_now", "3800000"),
            ("current_now", &raw_ua.to_string()),
            ("status", status),
        ],
    );
}

#[test]
fn a_discharging_battery_with_either_sign_convention() {
    for (sign, raw) in [
        (CurrentSign::Charging, -500_000),
        (CurrentSign::Discharging, 500_000),
    ] {
        let t = Tree::new();
        fuel_gauge_battery(&t, "Discharging", raw);
        let mut s = SysfsSupply::new(t.config(Some("BAT0"), sign));
        let r = read(&mut s, 1_000);
        assert_eq!(s.health(), SupplyHealth::Ok, "{sign:?}");
        close(r.soc, 0.78, "soc from capacity");
        assert_eq!(r.battery_mv, Some(3_800));
        // 3.8 V x 0.5 A out of the battery is the load; nothing comes in.
        close(r.load_w, 1.9, "load");
        close(r.solar_w, 0.0, "input");
        assert!(!r.external_supply());
    }
}

#[test]
fn a_charging_battery_with_either_sign_convention() {
    for (sign, raw) in [
        (CurrentSign::Charging, 1_000_000),
        (CurrentSign::Discharging, -1_000_000),
    ] {
        let t = Tree::new();
        // First on the battery alone: 0.5 A out sets the load estimate (1.9 W).
        fuel_gauge_battery(&t, "Discharging", -raw / 2);
        let mut s = SysfsSupply::new(t.config(None, sign));
        read(&mut s, 0);
        fuel_gauge_battery(&t, "Charging", raw);
        let r = read(&mut s, 10_000);
        assert_eq!(s.health(), SupplyHealth::Ok, "{sign:?}");
        // 3.8 W into the battery plus the 1.9 W the node draws.
        close(r.load_w, 1.9, "load estimate");
        close(r.solar_w, 5.7, "input");
        assert!(r.external_supply());
    }
}

#[test]
fn power_now_is_taken_in_the_current_direction() {
    let t = Tree::new();
    fuel_gauge_battery(&t, "Discharging", 500_000);
    t.supply("BAT0", &[("power_now", "2000000")]);
    let mut s = SysfsSupply::new(t.config(Some("BAT0"), CurrentSign::Discharging));
    let r = read(&mut s, 0);
    close(r.load_w, 2.0, "load from power_now");
}

#[test]
fn a_current_against_the_status_is_flagged_and_the_status_wins() {
    // Configured "charging positive", but the driver counts discharge positive.
    for (status, raw, load_w, solar_w) in [
        ("Discharging", 500_000, 1.9, 0.0),
        // 3.8 W into the battery plus the assumed 3 W load.
        ("Charging", -1_000_000, 3.0, 6.8),
    ] {
        let t = Tree::new();
        fuel_gauge_battery(&t, status, raw);
        let mut s = SysfsSupply::new(t.config(Some("BAT0"), CurrentSign::Charging));
        let r = read(&mut s, 0);
        match s.health() {
            SupplyHealth::Degraded(why) => assert!(why.contains("current_positive"), "{why}"),
            h => panic!("{status}: expected degraded, got {h:?}"),
        }
        close(r.load_w, load_w, "load in the direction of status");
        close(r.solar_w, solar_w, "input in the direction of status");
    }
}

#[test]
fn without_capacity_the_gauge_follows_voltage_and_current() {
    let t = Tree::new();
    // 3.73 V at rest is 50 % on the default 1-cell curve.
    t.supply(
        "BAT0",
        &[
            ("type", "Battery"),
            ("voltage_now", "3730000"),
            ("current_now", "0"),
            ("status", "Not charging"),
        ],
    );
    let mut s = SysfsSupply::new(t.config(Some("BAT0"), CurrentSign::Discharging));
    let r = read(&mut s, 0);
    close(r.soc, 0.5, "soc from the rest voltage");
    // One hour at 0.3 A out of 3 Ah: 10 % less, whatever the sagging voltage says.
    t.supply(
        "BAT0",
        &[
            ("voltage_now", "3600000"),
            ("current_now", "300000"),
            ("status", "Discharging"),
        ],
    );
    let r = read(&mut s, 3_600_000);
    assert_eq!(s.health(), SupplyHealth::Ok);
    close(r.soc, 0.4, "soc counted");
    assert_eq!(r.battery_mv, Some(3_600));
}

#[test]
fn a_missing_battery_is_absent_with_the_assumed_charge() {
    let t = Tree::new();
    t.supply("AC", &[("type", "Mains"), ("online", "1")]);
    let cfg = SysfsConfig {
        assumed_soc: 0.42,
        ..t.config(Some("BAT0"), CurrentSign::Charging)
    };
    let mut s = SysfsSupply::new(cfg);
    let r = read(&mut s, 0);
    close(r.soc, 0.42, "assumed soc");
    assert_eq!(r.battery_mv, None);
    match s.health() {
        SupplyHealth::Absent(why) => assert!(why.contains("BAT0"), "{why}"),
        h => panic!("expected absent, got {h:?}"),
    }
    // Without a name, no entry of type Battery: absent too.
    let mut s = SysfsSupply::new(t.config(None, CurrentSign::Charging));
    read(&mut s, 0);
    match s.health() {
        SupplyHealth::Absent(why) => assert!(why.contains("type Battery"), "{why}"),
        h => panic!("expected absent, got {h:?}"),
    }
}

#[test]
fn a_battery_not_present_is_absent() {
    let t = Tree::new();
    fuel_gauge_battery(&t, "Discharging", -500_000);
    t.supply("BAT0", &[("present", "0")]);
    let mut s = SysfsSupply::new(t.config(Some("BAT0"), CurrentSign::Charging));
    let r = read(&mut s, 0);
    assert!(
        matches!(s.health(), SupplyHealth::Absent(_)),
        "{:?}",
        s.health()
    );
    close(r.soc, SysfsConfig::default().assumed_soc, "assumed soc");
}

#[test]
fn the_battery_is_found_by_type_when_not_named() {
    let t = Tree::new();
    t.supply("AC", &[("type", "Mains"), ("online", "1")]);
    t.supply("axp20x-usb", &[("type", "USB"), ("online", "0")]);
    t.supply(
        "max1704x",
        &[
            ("type", "Battery"),
            ("capacity", "64"),
            ("voltage_now", "3900000"),
        ],
    );
    let mut s = SysfsSupply::new(t.config(None, CurrentSign::Charging));
    let r = read(&mut s, 0);
    assert_eq!(s.health(), SupplyHealth::Ok);
    close(r.soc, 0.64, "soc of the battery found");
}

#[test]
fn a_garbage_capacity_degrades_naming_the_file_and_carries_on() {
    let t = Tree::new();
    fuel_gauge_battery(&t, "Discharging", -500_000);
    let mut s = SysfsSupply::new(t.config(Some("BAT0"), CurrentSign::Charging));
    read(&mut s, 0);
    t.supply("BAT0", &[("capacity", "n/a"), ("voltage_now", "3700000")]);
    let r = read(&mut s, 10_000);
    match s.health() {
        SupplyHealth::Degraded(why) => {
            assert!(why.contains("BAT0/capacity"), "{why}");
            assert!(why.contains("n/a"), "{why}");
        }
        h => panic!("expected degraded, got {h:?}"),
    }
    close(r.soc, 0.78, "soc carried on from the last good reading");
    // The files that did read still count.
    assert_eq!(r.battery_mv, Some(3_700));
    // Good again: ok, the new figure.
    t.supply("BAT0", &[("capacity", "77")]);
    let r = read(&mut s, 20_000);
    assert_eq!(s.health(), SupplyHealth::Ok);
    close(r.soc, 0.77, "soc");
}

#[test]
fn a_battery_that_goes_missing_degrades_and_carries_on() {
    let t = Tree::new();
    fuel_gauge_battery(&t, "Discharging", -500_000);
    let mut s = SysfsSupply::new(t.config(Some("BAT0"), CurrentSign::Charging));
    read(&mut s, 0);
    fs::remove_dir_all(t.supply_dir("BAT0")).expect("remove battery");
    let r = read(&mut s, 10_000);
    assert!(
        matches!(s.health(), SupplyHealth::Degraded(_)),
        "{:?}",
        s.health()
    );
    close(r.soc, 0.78, "soc carried on");
    assert_eq!(r.battery_mv, Some(3_800));
}

#[test]
fn the_external_supply_online_flag_is_read() {
    let t = Tree::new();
    fuel_gauge_battery(&t, "Full", 0);
    t.supply("AC", &[("type", "Mains"), ("online", "1")]);
    let cfg = SysfsConfig {
        external: Some("AC".into()),
        assumed_load_w: 4.0,
        ..t.config(Some("BAT0"), CurrentSign::Charging)
    };
    let mut s = SysfsSupply::new(cfg);
    let r = read(&mut s, 0);
    assert_eq!(s.external_online(), Some(true));
    // At rest on external power: the input carries the (assumed) load.
    close(r.load_w, 4.0, "load");
    close(r.solar_w, 4.0, "input");
    t.supply("AC", &[("online", "0")]);
    read(&mut s, 10_000);
    assert_eq!(s.external_online(), Some(false));
    // A configured external supply that is missing is a degraded reading.
    t.remove("AC", "online");
    read(&mut s, 20_000);
    assert_eq!(s.external_online(), None);
    match s.health() {
        SupplyHealth::Degraded(why) => assert!(why.contains("AC/online"), "{why}"),
        h => panic!("expected degraded, got {h:?}"),
    }
}

#[test]
fn undervoltage_and_temperature_are_read() {
    let t = Tree::new();
    let root = t.root();
    write(&root.join("sys/class/hwmon/hwmon0/name"), "cpu_thermal");
    write(&root.join("sys/class/hwmon/hwmon0/in0_lcrit_alarm"), "0");
    write(&root.join("sys/class/hwmon/hwmon1/name"), "rpi_volt");
    write(&root.join("sys/class/hwmon/hwmon1/in0_lcrit_alarm"), "1");
    write(&root.join("sys/class/thermal/thermal_zone0/temp"), "61250");
    let b = read_board(&root);
    assert_eq!(
        b,
        BoardHealth {
            undervoltage: Some(true),
            soc_temp_c: Some(61.25),
        }
    );
    write(&root.join("sys/class/hwmon/hwmon1/in0_lcrit_alarm"), "0");
    assert_eq!(read_board(&root).undervoltage, Some(false));
    // The supply reads them at each reading.
    fuel_gauge_battery(&t, "Discharging", -500_000);
    let mut s = SysfsSupply::new(t.config(Some("BAT0"), CurrentSign::Charging));
    read(&mut s, 0);
    assert_eq!(s.board().undervoltage, Some(false));
    assert_eq!(s.board().soc_temp_c, Some(61.25));
}

#[test]
fn missing_hwmon_and_thermal_zone_give_none() {
    let t = Tree::new();
    let root = t.root();
    assert_eq!(read_board(&root), BoardHealth::default());
    // An hwmon that is not rpi_volt does not count.
    write(&root.join("sys/class/hwmon/hwmon0/name"), "cpu_thermal");
    write(&root.join("sys/class/hwmon/hwmon0/in0_lcrit_alarm"), "1");
    write(
        &root.join("sys/class/thermal/thermal_zone0/temp"),
        "garbage",
    );
    assert_eq!(read_board(&root), BoardHealth::default());
}
