//! Real power readings from Linux sysfs: a battery behind a fuel-gauge
//! driver (as UPS HATs expose it, `/sys/class/power_supply/<name>/`), the
//! external supply's `online` flag, and the Raspberry Pi 5's own health
//! (undervoltage from the `rpi_volt` hwmon, SoC temperature from
//! `thermal_zone0`), behind [`PowerSource`] as [`SysfsSupply`].
//!
//! Every file is read under a root directory ([`SysfsConfig::root`], `/` on
//! the node, a fake tree in the tests), at every reading, so a driver that
//! loads late is found when it appears.
//!
//! Files read in the battery's directory (units as the kernel's
//! `sysfs-class-power` ABI gives them):
//! - `present`: `0` counts as a missing battery;
//! - `capacity`: state of charge, percent (the fuel gauge's own figure);
//! - `voltage_now`: terminal voltage, µV;
//! - `current_now`: current, µA; its sign differs between drivers, so
//!   [`SysfsConfig::current_positive`] says which way is positive, and
//!   `status` (`Charging`, `Discharging`, `Full`, `Not charging`) is checked
//!   against it: when the two disagree by more than
//!   [`GaugeConfig::rest_current_a`], the direction of `status` is taken and
//!   the supply is [`SupplyHealth::Degraded`] saying so;
//! - `power_now`: power, µW, taken as a magnitude in the current's
//!   direction (otherwise power is voltage × current).
//!
//! What the fields of [`PowerReading`] mean for this source:
//! - `soc`: `capacity` / 100 when the driver has `capacity`; without it, a
//!   [`BatteryGauge`] on `voltage_now` and `current_now`; while no battery
//!   has ever been found, [`SysfsConfig::assumed_soc`];
//! - `battery_mv`: `voltage_now` / 1000; `None` until it was read once;
//! - `load_w`: while the battery discharges, the power out of it. That is
//!   the node's whole draw only when nothing else feeds it: with the
//!   external supply online it carries an unknown share and this is a lower
//!   bound. While the battery charges or rests on external power, sysfs
//!   has no meter on the load: it is then the last draw measured from the
//!   battery alone (or [`SysfsConfig::assumed_load_w`] before any), an
//!   estimate;
//! - `solar_w`: the charge input, whatever feeds the HAT (a panel through
//!   its controller, a USB-C charger): while the battery charges, the power
//!   into it plus the load estimate; at rest on external power, the load
//!   estimate; otherwise 0. Sysfs does not measure the input: this is
//!   derived, and 0 while the battery discharges even if an external supply
//!   carries part of the load;
//! - the [`EnergyUse`] the node reports is not used: the battery's own
//!   figures already contain it.
//!
//! Missing or unreadable files are health states, as in
//! [`crate::monitor`]: a missing battery directory (or `present` = 0) gives
//! [`SupplyHealth::Absent`] and the assumed state of charge while no battery
//! was ever read, [`SupplyHealth::Degraded`] afterwards; a file that cannot
//! be read or parsed gives `Degraded` naming the file, and the reading
//! carries on from that file's last good value. A file the driver does not
//! have at all is not a fault.
//!
//! The board's health ([`BoardHealth`]) is read at each reading as well and
//! logged when it changes (undervoltage appearing or clearing, the
//! temperature moving by [`TEMP_LOG_STEP_C`] or crossing [`SOC_HOT_C`]).

use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::gauge::{BatteryGauge, GaugeConfig};
use crate::source::{EnergyUse, PowerReading, PowerSource, SupplyHealth};

/// Where the power supply class lives under the root.
const POWER_SUPPLY_DIR: &str = "sys/class/power_supply";
/// Where the hwmon class lives under the root.
const HWMON_DIR: &str = "sys/class/hwmon";
/// The SoC's thermal zone under the root (millidegrees Celsius).
const SOC_THERMAL: &str = "sys/class/thermal/thermal_zone0/temp";
/// The name of the Pi 5's supply-voltage hwmon.
const RPI_VOLT: &str = "rpi_volt";

/// The SoC temperature is logged again once it moved this far, °C.
pub const TEMP_LOG_STEP_C: f32 = 5.0;
/// Above this the Pi 5's firmware starts to throttle the CPU, °C; crossing
/// it is logged as a warning.
pub const SOC_HOT_C: f32 = 80.0;

/// What can go wrong reading sysfs.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SysfsError {
    /// The configured entry (or its directory) does not exist.
    #[error("{} is missing", path.display())]
    Missing {
        /// The path looked for.
        path: PathBuf,
    },
    /// No entry of type `Battery` in the power supply class.
    #[error("no power_supply entry of type Battery in {}", dir.display())]
    NoBattery {
        /// The class directory searched.
        dir: PathBuf,
    },
    /// The battery's `present` file says it is not there.
    #[error("{} says the battery is not present", path.display())]
    NotPresent {
        /// The `present` file.
        path: PathBuf,
    },
    /// The file exists but reading it failed (a driver returns an I/O error
    /// when its chip does not answer).
    #[error("cannot read {}: {reason}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS's reason.
        reason: String,
    },
    /// The file's content is not what the ABI says.
    #[error("cannot parse {} ({text:?})", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// What it held, trimmed.
        text: String,
    },
}

/// Which way the driver's `current_now` is positive.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CurrentSign {
    /// Positive while the battery charges (the kernel ABI's convention).
    #[default]
    Charging,
    /// Positive while the battery discharges (many fuel-gauge drivers).
    Discharging,
}

impl CurrentSign {
    /// `raw_ua` as amperes into the battery.
    pub fn into_battery_a(self, raw_ua: i64) -> f64 {
        let a = raw_ua as f64 / 1e6;
        match self {
            CurrentSign::Charging => a,
            CurrentSign::Discharging => -a,
        }
    }
}

/// `[power.sysfs]`: where the battery and the external supply are.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SysfsConfig {
    /// The directory `sys/class/...` is read under.
    pub root: PathBuf,
    /// The battery's entry in `sys/class/power_supply` (e.g. `BAT0`); when
    /// unset, the first entry (by name) whose `type` is `Battery`.
    pub battery: Option<String>,
    /// Which way `current_now` is positive.
    pub current_positive: CurrentSign,
    /// The external supply's entry (`type` `Mains` or `USB`), whose
    /// `online` says whether it feeds the node.
    pub external: Option<String>,
    /// `[power.sysfs.gauge]`: used when the driver has no `capacity`.
    pub gauge: GaugeConfig,
    /// The state of charge assumed while no battery has been found, 0..=1.
    pub assumed_soc: f64,
    /// The node's draw assumed while the battery charges, until a discharge
    /// has been measured, W.
    pub assumed_load_w: f64,
}

impl Default for SysfsConfig {
    fn default() -> Self {
        SysfsConfig {
            root: PathBuf::from("/"),
            battery: None,
            current_positive: CurrentSign::Charging,
            external: None,
            gauge: li_ion_1s_gauge(),
            assumed_soc: 0.3,
            assumed_load_w: 3.0,
        }
    }
}

/// One 18650 Li-ion cell (3.0 Ah), the usual pack of a fuel-gauge UPS HAT.
fn li_ion_1s_gauge() -> GaugeConfig {
    GaugeConfig {
        capacity_ah: 3.0,
        ocv_mv: vec![
            3_000, 3_450, 3_550, 3_620, 3_680, 3_730, 3_790, 3_870, 3_960, 4_060, 4_200,
        ],
        ..GaugeConfig::default()
    }
}

impl SysfsConfig {
    /// Problems with the settings, as (key, message).
    pub fn validate(&self) -> Vec<(String, String)> {
        let mut e: Vec<(String, String)> = Vec::new();
        if self.root.as_os_str().is_empty() {
            e.push((
                "root".into(),
                "must name a directory (`/` on the node)".into(),
            ));
        }
        for (key, name) in [("battery", &self.battery), ("external", &self.external)] {
            if name
                .as_deref()
                .is_some_and(|n| n.is_empty() || n.contains('/') || n == "." || n == "..")
            {
                e.push((
                    key.into(),
                    "must be an entry name in /sys/class/power_supply".into(),
                ));
            }
        }
        e.extend(
            self.gauge
                .validate()
                .into_iter()
                .map(|(k, m)| (format!("gauge.{k}"), m)),
        );
        if !(0.0..=1.0).contains(&self.assumed_soc) {
            e.push(("assumed_soc".into(), "must be between 0 and 1".into()));
        }
        if !(0.0..=1000.0).contains(&self.assumed_load_w) {
            e.push(("assumed_load_w".into(), "must be between 0 and 1000".into()));
        }
        e
    }
}

/// The board's own health, as the Pi 5 reports it.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct BoardHealth {
    /// The firmware's undervoltage alarm (`rpi_volt`'s `in0_lcrit_alarm`);
    /// `None` when there is no such hwmon or it cannot be read.
    pub undervoltage: Option<bool>,
    /// The SoC temperature (`thermal_zone0`), °C; `None` when unreadable.
    pub soc_temp_c: Option<f32>,
}

/// Reads the board's health under `root`.
pub fn read_board(root: &Path) -> BoardHealth {
    BoardHealth {
        undervoltage: read_undervoltage(root),
        soc_temp_c: read_soc_temp(root),
    }
}

fn read_undervoltage(root: &Path) -> Option<bool> {
    let dir = find_hwmon(root, RPI_VOLT)?;
    let flag: u8 = read_value(&dir.join("in0_lcrit_alarm")).ok()??;
    Some(flag != 0)
}

/// The SoC's thermal zone under `root` (millidegrees Celsius).
pub fn soc_thermal_zone(root: &Path) -> PathBuf {
    root.join(SOC_THERMAL)
}

fn read_soc_temp(root: &Path) -> Option<f32> {
    let milli: i64 = read_value(&soc_thermal_zone(root)).ok()??;
    Some(milli as f32 / 1000.0)
}

/// The hwmon directory whose `name` is `name`.
fn find_hwmon(root: &Path, name: &str) -> Option<PathBuf> {
    sorted_entries(&root.join(HWMON_DIR))
        .into_iter()
        .find(|dir| read_text(&dir.join("name")).ok().flatten().as_deref() == Some(name))
}

/// The entries of `dir`, by name; none when it cannot be listed.
fn sorted_entries(dir: &Path) -> Vec<PathBuf> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut v: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
    v.sort();
    v
}

/// A file's trimmed content; `None` when the file does not exist.
fn read_text(path: &Path) -> Result<Option<String>, SysfsError> {
    match std::fs::read_to_string(path) {
        Ok(s) => Ok(Some(s.trim().to_string())),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(SysfsError::Read {
            path: path.to_path_buf(),
            reason: e.to_string(),
        }),
    }
}

/// A file's value; `None` when the file does not exist.
fn read_value<T: FromStr>(path: &Path) -> Result<Option<T>, SysfsError> {
    let Some(text) = read_text(path)? else {
        return Ok(None);
    };
    text.parse().map(Some).map_err(|_| SysfsError::Parse {
        path: path.to_path_buf(),
        text,
    })
}

/// The battery's charging state as `status` gives it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Status {
    Charging,
    Discharging,
    Full,
    NotCharging,
}

impl Status {
    /// `None` for `Unknown` or anything else.
    fn parse(s: &str) -> Option<Status> {
        match s {
            "Charging" => Some(Status::Charging),
            "Discharging" => Some(Status::Discharging),
            "Full" => Some(Status::Full),
            "Not charging" => Some(Status::NotCharging),
            _ => None,
        }
    }

    /// Full and not charging both mean something else feeds the node.
    fn on_external(self) -> bool {
        matches!(self, Status::Charging | Status::Full | Status::NotCharging)
    }
}

/// One file's value at this reading.
enum Got<T> {
    /// Read and parsed.
    Read(T),
    /// The driver has no such file.
    NotProvided,
    /// Reading or parsing failed (the problem is recorded).
    Failed,
}

impl<T: Copy> Got<T> {
    fn fresh(&self) -> Option<T> {
        match self {
            Got::Read(v) => Some(*v),
            _ => None,
        }
    }
}

/// The last good value of each battery file the reading is built from (the
/// state of charge carries on from the last reading itself).
#[derive(Clone, Copy, Debug, Default)]
struct LastGood {
    mv: Option<f64>,
    amps: Option<f64>,
    power_w: Option<f64>,
}

/// The supply as sysfs shows it.
pub struct SysfsSupply {
    cfg: SysfsConfig,
    gauge: BatteryGauge,
    last: Option<PowerReading>,
    good: LastGood,
    found_battery: bool,
    load_estimate_w: f64,
    health: SupplyHealth,
    board: BoardHealth,
    board_log: BoardLog,
    external_online: Option<bool>,
    failures: u64,
}

impl SysfsSupply {
    /// A supply reading under `cfg.root`; nothing is read before the first
    /// [`PowerSource::read`].
    pub fn new(cfg: SysfsConfig) -> SysfsSupply {
        SysfsSupply {
            gauge: BatteryGauge::new(cfg.gauge.clone()),
            load_estimate_w: cfg.assumed_load_w,
            cfg,
            last: None,
            good: LastGood::default(),
            found_battery: false,
            health: SupplyHealth::Ok,
            board: BoardHealth::default(),
            board_log: BoardLog::default(),
            external_online: None,
            failures: 0,
        }
    }

    /// The board's health at the last reading.
    pub fn board(&self) -> BoardHealth {
        self.board
    }

    /// Whether the external supply was online at the last reading (`None`
    /// when none is configured or its `online` could not be read).
    pub fn external_online(&self) -> Option<bool> {
        self.external_online
    }

    /// Readings that had a problem since start.
    pub fn failures(&self) -> u64 {
        self.failures
    }

    /// The battery's directory, as configured or found.
    pub fn battery_dir(&self) -> Result<PathBuf, SysfsError> {
        let class = self.cfg.root.join(POWER_SUPPLY_DIR);
        let dir = match &self.cfg.battery {
            Some(name) => class.join(name),
            None => sorted_entries(&class)
                .into_iter()
                .find(|d| read_text(&d.join("type")).ok().flatten().as_deref() == Some("Battery"))
                .ok_or(SysfsError::NoBattery { dir: class })?,
        };
        if !dir.is_dir() {
            return Err(SysfsError::Missing { path: dir });
        }
        let present = dir.join("present");
        match read_value::<u8>(&present)? {
            Some(0) => Err(SysfsError::NotPresent { path: present }),
            _ => Ok(dir),
        }
    }

    fn read_external(&mut self, problems: &mut Vec<String>) {
        let Some(name) = &self.cfg.external else {
            return;
        };
        let path = self
            .cfg
            .root
            .join(POWER_SUPPLY_DIR)
            .join(name)
            .join("online");
        let now = match read_value::<u8>(&path) {
            Ok(Some(v)) => Some(v != 0),
            Ok(None) => {
                problems.push(SysfsError::Missing { path }.to_string());
                None
            }
            Err(e) => {
                problems.push(e.to_string());
                None
            }
        };
        if now != self.external_online {
            tracing::info!(supply = %name, online = ?now, "external supply changed");
        }
        self.external_online = now;
    }

    /// Reads one numeric file of the battery, recording a failure.
    fn file<T: FromStr>(dir: &Path, file: &str, problems: &mut Vec<String>) -> Got<T> {
        match read_value(&dir.join(file)) {
            Ok(Some(v)) => Got::Read(v),
            Ok(None) => Got::NotProvided,
            Err(e) => {
                problems.push(e.to_string());
                Got::Failed
            }
        }
    }

    /// The battery's files, or why there is no battery.
    fn read_battery(&mut self, problems: &mut Vec<String>) -> Option<BatteryFiles> {
        let dir = match self.battery_dir() {
            Ok(d) => d,
            Err(e) => {
                problems.push(e.to_string());
                return None;
            }
        };
        self.found_battery = true;
        let status = match read_text(&dir.join("status")) {
            Ok(s) => s.as_deref().and_then(Status::parse),
            Err(e) => {
                problems.push(e.to_string());
                None
            }
        };
        Some(BatteryFiles {
            capacity: Self::file(&dir, "capacity", problems),
            voltage_uv: Self::file(&dir, "voltage_now", problems),
            current_ua: Self::file(&dir, "current_now", problems),
            power_uw: Self::file(&dir, "power_now", problems),
            status,
        })
    }

    /// Current into the battery, amperes, checked against `status`.
    fn battery_amps(&self, files: &BatteryFiles, problems: &mut Vec<String>) -> Option<f64> {
        let raw = files.current_ua.fresh()?;
        let amps = self.cfg.current_positive.into_battery_a(raw);
        let rest = self.cfg.gauge.rest_current_a;
        let flipped = match files.status {
            Some(Status::Charging) if amps < -rest => amps.abs(),
            Some(Status::Discharging) if amps > rest => -amps.abs(),
            _ => return Some(amps),
        };
        problems.push(format!(
            "current_now {raw} µA disagrees with status {:?} under current_positive = {:?}; \
             taking the direction of status",
            files.status, self.cfg.current_positive
        ));
        Some(flipped)
    }

    /// Power into the battery, watts (negative while it discharges).
    fn battery_w(&self, mv: Option<f64>, amps: Option<f64>, power_w: Option<f64>) -> Option<f64> {
        let amps = amps?;
        match power_w {
            Some(w) => Some(w.abs().copysign(amps)),
            None => mv.map(|mv| mv / 1000.0 * amps),
        }
    }

    /// The state of charge from this reading's files.
    fn soc(&mut self, t_ms: i64, files: &BatteryFiles, mv: Option<f64>, amps: f64) -> f64 {
        match files.capacity {
            Got::Read(pct) => (pct as f64 / 100.0).clamp(0.0, 1.0),
            Got::Failed => self.carried_soc(t_ms, amps),
            Got::NotProvided => match files.voltage_uv.fresh().and(mv) {
                Some(mv) => self.gauge.update(t_ms, mv, amps),
                None => self.carried_soc(t_ms, amps),
            },
        }
    }

    /// The state of charge when this reading gives none: the gauge's count
    /// when it runs, else the last reading's, else the assumed one.
    fn carried_soc(&mut self, t_ms: i64, amps: f64) -> f64 {
        self.gauge
            .count(t_ms, amps)
            .or(self.last.map(|r| r.soc))
            .unwrap_or(self.cfg.assumed_soc)
    }

    fn note_board(&mut self) {
        self.board = read_board(&self.cfg.root);
        self.board_log.note(&self.board);
    }
}

/// What the battery's files gave at one reading.
struct BatteryFiles {
    capacity: Got<i64>,
    voltage_uv: Got<i64>,
    current_ua: Got<i64>,
    power_uw: Got<i64>,
    status: Option<Status>,
}

/// (charge input, load) in watts from the power into the battery
/// (`battery_w`, negative while it discharges). See the module's doc.
fn split_power(
    battery_w: Option<f64>,
    rest_w: f64,
    on_external: bool,
    load_estimate_w: f64,
) -> (f64, f64) {
    match battery_w {
        Some(w) if w > rest_w => (w + load_estimate_w, load_estimate_w),
        Some(w) if w < -rest_w => (0.0, -w),
        _ if on_external => (
            load_estimate_w + battery_w.unwrap_or(0.0).max(0.0),
            load_estimate_w,
        ),
        Some(w) => (0.0, (-w).max(0.0)),
        None => (0.0, load_estimate_w),
    }
}

impl PowerSource for SysfsSupply {
    fn read(&mut self, t_ms: i64, _used: EnergyUse) -> PowerReading {
        let mut problems = Vec::new();
        self.note_board();
        self.read_external(&mut problems);
        let files = self.read_battery(&mut problems);
        let reading = match &files {
            Some(f) => self.with_battery(t_ms, f, &mut problems),
            None => self.without_battery(t_ms),
        };
        if !problems.is_empty() {
            self.failures += 1;
        }
        self.health = if problems.is_empty() {
            SupplyHealth::Ok
        } else if self.found_battery {
            SupplyHealth::Degraded(problems.join("; "))
        } else {
            SupplyHealth::Absent(problems.join("; "))
        };
        self.last = Some(reading);
        reading
    }

    fn health(&self) -> SupplyHealth {
        self.health.clone()
    }
}

impl SysfsSupply {
    fn with_battery(
        &mut self,
        t_ms: i64,
        files: &BatteryFiles,
        problems: &mut Vec<String>,
    ) -> PowerReading {
        let fresh_amps = self.battery_amps(files, problems);
        let good = LastGood {
            mv: files
                .voltage_uv
                .fresh()
                .map(|uv| uv as f64 / 1000.0)
                .or(self.good.mv),
            amps: match files.current_ua {
                Got::NotProvided => None,
                _ => fresh_amps.or(self.good.amps),
            },
            power_w: match files.power_uw {
                Got::NotProvided => None,
                _ => files
                    .power_uw
                    .fresh()
                    .map(|uw| uw as f64 / 1e6)
                    .or(self.good.power_w),
            },
        };
        self.good = good;
        let amps = good.amps.unwrap_or(0.0);
        let soc = self.soc(t_ms, files, good.mv, amps);
        let on_external =
            self.external_online == Some(true) || files.status.is_some_and(Status::on_external);
        let battery_w = self.battery_w(good.mv, good.amps, good.power_w);
        let rest_w = self.cfg.gauge.rest_current_a * good.mv.unwrap_or(0.0) / 1000.0;
        let (solar_w, load_w) = split_power(battery_w, rest_w, on_external, self.load_estimate_w);
        if battery_w.is_some_and(|w| w < -rest_w) && self.external_online != Some(true) {
            // The battery alone carries the node: this is its draw.
            self.load_estimate_w = load_w;
        }
        PowerReading {
            t_ms,
            soc,
            solar_w,
            load_w,
            battery_mv: good
                .mv
                .map(|v| v.round().clamp(0.0, f64::from(u32::MAX)) as u32),
        }
    }

    fn without_battery(&mut self, t_ms: i64) -> PowerReading {
        // Keep counting with the last current known, as the monitors do.
        let soc = self.carried_soc(t_ms, self.good.amps.unwrap_or(0.0));
        let (solar_w, load_w) = match self.external_online {
            Some(true) => (self.load_estimate_w, self.load_estimate_w),
            _ => (0.0, self.load_estimate_w),
        };
        PowerReading {
            t_ms,
            soc,
            solar_w,
            load_w,
            battery_mv: self.last.and_then(|r| r.battery_mv),
        }
    }
}

/// What of the board's health was last logged.
#[derive(Default)]
struct BoardLog {
    seen: bool,
    undervoltage: Option<bool>,
    temp_c: Option<f32>,
}

impl BoardLog {
    /// Logs what changed since the last line.
    fn note(&mut self, now: &BoardHealth) {
        if !self.seen || now.undervoltage != self.undervoltage {
            log_undervoltage(now.undervoltage);
            self.undervoltage = now.undervoltage;
        }
        if !self.seen || temp_moved(self.temp_c, now.soc_temp_c) {
            log_temp(self.temp_c, now.soc_temp_c);
            self.temp_c = now.soc_temp_c;
        }
        self.seen = true;
    }
}

fn log_undervoltage(now: Option<bool>) {
    match now {
        Some(true) => tracing::warn!(
            undervoltage = true,
            "board undervoltage: the Pi's supply sags below its limit"
        ),
        Some(false) => tracing::info!(undervoltage = false, "board supply voltage ok"),
        None => tracing::info!("board undervoltage flag not available (no rpi_volt hwmon)"),
    }
}

fn log_temp(was: Option<f32>, now: Option<f32>) {
    let was_c = was.map(tenths);
    match now {
        Some(t) if t >= SOC_HOT_C => {
            tracing::warn!(
                soc_temp_c = tenths(t),
                ?was_c,
                "SoC hot: the firmware throttles"
            )
        }
        Some(t) => tracing::info!(soc_temp_c = tenths(t), ?was_c, "SoC temperature"),
        None => tracing::info!(?was_c, "SoC temperature not available"),
    }
}

/// `c` to a tenth of a degree, as a number that logs as such.
fn tenths(c: f32) -> f64 {
    (f64::from(c) * 10.0).round() / 10.0
}

/// Whether the temperature moved enough since `was` to log it again.
fn temp_moved(was: Option<f32>, now: Option<f32>) -> bool {
    match (was, now) {
        (Some(a), Some(b)) => {
            (a - b).abs() >= TEMP_LOG_STEP_C || (a >= SOC_HOT_C) != (b >= SOC_HOT_C)
        }
        (None, None) => false,
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn power_splits_into_input_and_load() {
        // Charging at 2 W with a 3 W load estimate: 5 W come in.
        assert_eq!(split_power(Some(2.0), 0.1, true, 3.0), (5.0, 3.0));
        // Discharging at 4 W: that is the load, nothing comes in.
        assert_eq!(split_power(Some(-4.0), 0.1, false, 3.0), (0.0, 4.0));
        // At rest on external power: the input carries the estimate.
        assert_eq!(split_power(Some(0.0), 0.1, true, 3.0), (3.0, 3.0));
        // At rest on the battery alone: a tiny draw.
        assert_eq!(split_power(Some(-0.05), 0.1, false, 3.0), (0.0, 0.05));
        // No current known: the estimate, no input.
        assert_eq!(split_power(None, 0.1, false, 3.0), (0.0, 3.0));
    }

    #[test]
    fn temperature_is_logged_again_after_a_step_or_crossing_hot() {
        assert!(!temp_moved(Some(50.0), Some(54.9)));
        assert!(temp_moved(Some(50.0), Some(55.0)));
        assert!(temp_moved(Some(78.0), Some(80.5)));
        assert!(temp_moved(None, Some(40.0)));
        assert!(temp_moved(Some(40.0), None));
        assert!(!temp_moved(None, None));
    }

    #[test]
    fn bad_settings_are_named() {
        let cfg = SysfsConfig {
            battery: Some("../BAT0".into()),
            external: Some(String::new()),
            assumed_soc: 2.0,
            gauge: GaugeConfig {
                capacity_ah: 0.0,
                ..li_ion_1s_gauge()
            },
            ..SysfsConfig::default()
        };
        let keys: Vec<String> = cfg.validate().into_iter().map(|(k, _)| k).collect();
        assert_eq!(
            keys,
            ["battery", "external", "gauge.capacity_ah", "assumed_soc"]
        );
        assert!(SysfsConfig::default().validate().is_empty());
    }
}
