//! The node's configuration: TOML, every key optional with a documented
//! default (`docs/configuration.md`), checked as a whole so that
//! `fieldnode check-config` reports every error with its key path.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize};

/// The whole configuration.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Config {
    /// `[node]`
    pub node: NodeConfig,
    /// `[scene]`: the simulated hardware.
    pub scene: SceneConfig,
    /// `[audio]`
    pub audio: AudioConfig,
    /// `[camera]`
    pub camera: CameraConfig,
    /// `[climate]`
    pub climate: ClimateConfig,
    /// `[detector]`: trigger thresholds and event merging.
    pub detector: fusion::DetectorConfig,
    /// `[fusion]`: the fusion model and how its answers become classes.
    pub fusion: fusion::FusionConfig,
    /// `[power]`
    pub power: PowerConfig,
    /// `[store]`
    pub store: uplink::StoreConfig,
    /// `[outbox]`: priorities, time to live and budget of the outbox.
    pub outbox: uplink::outbox::OutboxConfig,
    /// `[uplink]`: forwarding the outbox (MQTT), status records, commands.
    pub uplink: crate::uplink::UplinkConfig,
    /// `[log]`
    pub log: LogConfig,
    /// `[update]`: signed model and settings updates.
    pub update: crate::update::UpdateConfig,
    /// `[fieldlink]`: the technician's link (Unix socket, serial device).
    pub fieldlink: crate::fieldlink::FieldLinkConfig,
    /// `[metrics]`: the optional Prometheus endpoint.
    pub metrics: crate::metrics::MetricsConfig,
    /// `[time]`: time sources beside the system clock (hardware mode).
    pub time: TimeConfig,
}

/// `[time]`
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TimeConfig {
    /// `[time.gpsd]`: GNSS time from gpsd (off unless an address is set).
    pub gpsd: crate::timekeeping::gpsd::GpsdConfig,
}

/// `[node]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct NodeConfig {
    /// The node's identifier, written into every event record.
    pub id: String,
    /// Where the node keeps its store; relative paths are relative to the working directory.
    pub data_dir: PathBuf,
    /// Where sensor data comes from: `scene` (simulated hardware replaying
    /// `[scene]`) or `hardware` (the devices in `[audio.device]`,
    /// `[camera.device]` and `[climate]`).
    pub sensors: SensorSource,
    /// How often a status line (sensor health, power) is logged, ms.
    pub status_interval_ms: u64,
}

impl Default for NodeConfig {
    fn default() -> Self {
        NodeConfig {
            id: "demo-node".into(),
            data_dir: PathBuf::from("var"),
            sensors: SensorSource::Scene,
            status_interval_ms: 60_000,
        }
    }
}

/// Where sensor data comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SensorSource {
    /// A scene replayed as simulated hardware.
    Scene,
    /// The real devices.
    Hardware,
}

/// Replay speed of the simulated hardware.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Speed {
    /// Times real time (1.0 = real time).
    Factor(f64),
    /// As fast as the pipeline runs.
    Max,
}

impl Default for Speed {
    fn default() -> Self {
        Speed::Factor(1.0)
    }
}

impl FromStr for Speed {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s.eq_ignore_ascii_case("max") {
            return Ok(Speed::Max);
        }
        match s.parse::<f64>() {
            Ok(x) if x.is_finite() && x > 0.0 && x <= 1e6 => Ok(Speed::Factor(x)),
            _ => Err(format!(
                "expected a positive speed factor (e.g. 1, 10) or `max`, found `{s}`"
            )),
        }
    }
}

impl Serialize for Speed {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Speed::Factor(x) => s.serialize_f64(*x),
            Speed::Max => s.serialize_str("max"),
        }
    }
}

impl<'de> Deserialize<'de> for Speed {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Repr {
            Num(f64),
            Str(String),
        }
        match Repr::deserialize(d)? {
            Repr::Num(x) => x.to_string().parse().map_err(serde::de::Error::custom),
            Repr::Str(s) => s.parse().map_err(serde::de::Error::custom),
        }
    }
}

/// `[scene]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SceneConfig {
    /// The scene directory to replay (see `docs/scenes.md`).
    pub dir: PathBuf,
    /// Replay speed: a factor of real time, or `"max"`.
    pub speed: Speed,
    /// Stop when the scene ends, once everything pending is stored.
    pub exit_at_end: bool,
    /// Times the scene is replayed back to back, each pass starting where
    /// the previous one ended in time (long runs from a short scene).
    pub loops: u32,
}

impl Default for SceneConfig {
    fn default() -> Self {
        SceneConfig {
            dir: PathBuf::from("scenes/demo"),
            speed: Speed::Factor(1.0),
            exit_at_end: false,
            loops: 1,
        }
    }
}

/// `[audio]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AudioConfig {
    /// Use the microphone.
    pub enabled: bool,
    /// The pipeline's mono sample rate, Hz.
    pub sample_rate_hz: u32,
    /// Audio is handed to the detector in chunks of this length, ms.
    pub chunk_ms: u32,
    /// `[audio.device]`: the capture device (hardware only).
    pub device: crate::sensors::alsa_mic::MicSettings,
}

impl Default for AudioConfig {
    fn default() -> Self {
        AudioConfig {
            enabled: true,
            sample_rate_hz: 16_000,
            chunk_ms: 500,
            device: Default::default(),
        }
    }
}

/// `[camera]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CameraConfig {
    /// Use the camera.
    pub enabled: bool,
    /// Frames are reduced (box filter, integer factor) to at most this width, pixels.
    pub analysis_width: u32,
    /// ... and at most this height, pixels.
    pub analysis_height: u32,
    /// `[camera.device]`: the camera (hardware only).
    pub device: crate::sensors::v4l_camera::CameraDeviceSettings,
}

impl Default for CameraConfig {
    fn default() -> Self {
        CameraConfig {
            enabled: true,
            analysis_width: 80,
            analysis_height: 60,
            device: Default::default(),
        }
    }
}

/// `[climate]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ClimateConfig {
    /// Use the climate sensor.
    pub enabled: bool,
    /// The I2C bus of the BME280 (hardware only).
    pub i2c_bus: PathBuf,
    /// Its 7-bit address: 0x76 (SDO to GND) or 0x77 (SDO to VDDIO).
    pub address: u8,
    /// `[climate.bme280]`: oversampling, retries, re-probing.
    pub bme280: crate::sensors::bme280::Bme280Settings,
}

impl Default for ClimateConfig {
    fn default() -> Self {
        ClimateConfig {
            enabled: true,
            i2c_bus: PathBuf::from("/dev/i2c-1"),
            address: 0x76,
            bme280: Default::default(),
        }
    }
}

/// `[power]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PowerConfig {
    /// How often the supply is read and the policy updated, ms.
    pub interval_ms: u64,
    /// `[power.policy]`
    pub policy: power::PolicyConfig,
    /// `[power.simulation]`: the simulated battery and solar panel.
    pub simulation: power::SimulationConfig,
    /// Where readings come from: `simulated` (`[power.simulation]`),
    /// `monitor` (INA226 current monitors, `[power.monitor]`) or `sysfs`
    /// (a fuel-gauge battery in `/sys/class/power_supply`, `[power.sysfs]`).
    pub source: PowerSourceKind,
    /// `[power.monitor]`: the monitors' wiring and the battery.
    pub monitor: power::MonitoredConfig,
    /// `[power.sysfs]`: the battery and external supply in sysfs.
    pub sysfs: power::SysfsConfig,
    /// `[power.loads]`: loads behind GPIO load switches (none by default).
    /// On hardware the GPIO drives them; in a scene replay they are
    /// simulated (switched and counted, nothing driven).
    pub loads: power::LoadsConfig,
    /// `[power.sleep]`: how long a deep sleep lasts and how a wake is told
    /// from a cold boot, and the listening windows. The node sleeps only
    /// when `[power.policy] sleep_below_soc` is set.
    pub sleep: power::SleepConfig,
    /// `[power.costs]`: what each costed action spends, for the energy
    /// ledger and the endurance simulation (`docs/energy.md`).
    pub costs: power::EnergyCosts,
}

/// `power.source`
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PowerSourceKind {
    /// The simulated battery and solar panel.
    Simulated,
    /// INA226 monitors on I2C.
    Monitor,
    /// A battery (UPS HAT fuel gauge) and the board's health from sysfs.
    Sysfs,
}

impl Default for PowerConfig {
    fn default() -> Self {
        PowerConfig {
            interval_ms: 10_000,
            policy: power::PolicyConfig::default(),
            simulation: power::SimulationConfig::default(),
            source: PowerSourceKind::Simulated,
            monitor: power::MonitoredConfig::default(),
            sysfs: power::SysfsConfig::default(),
            loads: power::LoadsConfig::default(),
            sleep: power::SleepConfig::default(),
            costs: power::EnergyCosts::default(),
        }
    }
}

/// `[log]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct LogConfig {
    /// `error`, `warn`, `info`, `debug` or `trace`, or a tracing filter such as `info,fusion=debug`.
    pub level: String,
    /// `text` or `json`.
    pub format: String,
    /// Warnings and errors each call site may write per window; beyond
    /// that they are counted and summarised (`logflood`).
    pub repeat_lines: u32,
    /// The window, and the period of the summary lines, s.
    pub repeat_window_s: u64,
}

impl Default for LogConfig {
    fn default() -> Self {
        let flood = logflood::FloodLimit::default();
        LogConfig {
            level: "info".into(),
            format: "text".into(),
            repeat_lines: flood.lines,
            repeat_window_s: flood.window.as_secs(),
        }
    }
}

impl LogConfig {
    /// The flood limit these settings describe.
    pub fn flood_limit(&self) -> logflood::FloodLimit {
        logflood::FloodLimit {
            lines: self.repeat_lines,
            window: std::time::Duration::from_secs(self.repeat_window_s),
            ..logflood::FloodLimit::default()
        }
    }
}

/// One problem in a configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// Dotted key path, such as `power.policy.saver_below_soc`; empty for the file as a whole.
    pub key: String,
    /// What is wrong.
    pub message: String,
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.key.is_empty() {
            write!(f, "{}", self.message)
        } else {
            write!(f, "{}: {}", self.key, self.message)
        }
    }
}

/// Every problem found in a configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{} configuration error(s):\n{}", .0.len(), .0.iter().map(|e| format!("  {e}")).collect::<Vec<_>>().join("\n"))]
pub struct ConfigErrors(pub Vec<ConfigError>);

fn err(key: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError {
        key: key.into(),
        message: message.into(),
    }
}

fn section<T: DeserializeOwned + Default>(
    table: &mut toml::Table,
    name: &str,
    errors: &mut Vec<ConfigError>,
) -> T {
    let Some(value) = table.remove(name) else {
        return T::default();
    };
    if !value.is_table() {
        errors.push(err(
            name,
            format!("expected a table `[{name}]`, found a {}", value.type_str()),
        ));
        return T::default();
    }
    let mut unknown = Vec::new();
    let result: Result<T, _> = {
        let mut record = |p: serde_ignored::Path| unknown.push(p.to_string());
        let de = serde_ignored::Deserializer::new(value, &mut record);
        serde_path_to_error::deserialize(de)
    };
    for u in unknown {
        // serde_ignored writes an optional table's level as `?`.
        let u = u.replace("?.", "");
        errors.push(err(format!("{name}.{u}"), "unknown key"));
    }
    match result {
        Ok(v) => v,
        Err(e) => {
            let path = e.path().to_string();
            let key = if path == "." || path.is_empty() {
                name.to_string()
            } else {
                format!("{name}.{path}")
            };
            errors.push(err(key, e.into_inner().message().to_string()));
            T::default()
        }
    }
}

impl Config {
    /// Parses and checks a configuration; on failure returns every error found.
    pub fn from_toml_str(text: &str) -> Result<Config, ConfigErrors> {
        let mut table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
            let line = e
                .span()
                .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1);
            let msg = e.message().to_string();
            ConfigErrors(vec![err(
                "",
                match line {
                    Some(l) => format!("line {l}: {msg}"),
                    None => msg,
                },
            )])
        })?;
        let mut errors = Vec::new();
        let cfg = Config {
            node: section(&mut table, "node", &mut errors),
            scene: section(&mut table, "scene", &mut errors),
            audio: section(&mut table, "audio", &mut errors),
            camera: section(&mut table, "camera", &mut errors),
            climate: section(&mut table, "climate", &mut errors),
            detector: section(&mut table, "detector", &mut errors),
            fusion: section(&mut table, "fusion", &mut errors),
            power: section(&mut table, "power", &mut errors),
            store: section(&mut table, "store", &mut errors),
            outbox: section(&mut table, "outbox", &mut errors),
            uplink: section(&mut table, "uplink", &mut errors),
            log: section(&mut table, "log", &mut errors),
            update: section(&mut table, "update", &mut errors),
            fieldlink: section(&mut table, "fieldlink", &mut errors),
            metrics: section(&mut table, "metrics", &mut errors),
            time: section(&mut table, "time", &mut errors),
        };
        for key in table.keys() {
            errors.push(err(key.clone(), "unknown key"));
        }
        errors.extend(cfg.validate().0);
        if errors.is_empty() {
            Ok(cfg)
        } else {
            Err(ConfigErrors(errors))
        }
    }

    /// Reads and checks a configuration file.
    pub fn from_file(path: &Path) -> Result<Config, ConfigErrors> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigErrors(vec![err(
                "",
                format!("cannot read {}: {e}", path.display()),
            )])
        })?;
        Config::from_toml_str(&text)
    }

    /// Range and consistency checks.
    pub fn validate(&self) -> ConfigErrors {
        let mut e = Vec::new();
        let id = &self.node.id;
        if id.is_empty()
            || id.len() > 32
            || !id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            e.push(err(
                "node.id",
                "must be 1 to 32 characters of ASCII letters, digits, `-` or `_`",
            ));
        }
        if !(1_000..=86_400_000).contains(&self.node.status_interval_ms) {
            e.push(err(
                "node.status_interval_ms",
                "must be between 1 s and one day",
            ));
        }
        if self.node.data_dir.as_os_str().is_empty() {
            e.push(err("node.data_dir", "must not be empty"));
        }
        if !(4_000..=96_000).contains(&self.audio.sample_rate_hz) {
            e.push(err(
                "audio.sample_rate_hz",
                "must be between 4000 and 96000 Hz",
            ));
        }
        if !(20..=10_000).contains(&self.audio.chunk_ms) {
            e.push(err("audio.chunk_ms", "must be between 20 and 10000 ms"));
        }
        for (v, k) in [
            (self.camera.analysis_width, "camera.analysis_width"),
            (self.camera.analysis_height, "camera.analysis_height"),
        ] {
            if !(8..=640).contains(&v) {
                e.push(err(k, "must be between 8 and 640 pixels"));
            }
        }
        if !(100..=3_600_000).contains(&self.power.interval_ms) {
            e.push(err(
                "power.interval_ms",
                "must be between 100 ms and one hour",
            ));
        }
        if self.store.cache_capacity_bytes < 64 * 1024 || self.store.cache_capacity_bytes > 1 << 30
        {
            e.push(err(
                "store.cache_capacity_bytes",
                "must be between 64 KiB and 1 GiB",
            ));
        }
        if tracing_subscriber::EnvFilter::try_new(&self.log.level).is_err() {
            e.push(err(
                "log.level",
                "must be a level (error, warn, info, debug, trace) or a tracing filter",
            ));
        }
        if !matches!(self.log.format.as_str(), "text" | "json") {
            e.push(err("log.format", "must be `text` or `json`"));
        }
        if !(1..=1_000_000).contains(&self.scene.loops) {
            e.push(err("scene.loops", "must be between 1 and 1000000"));
        }
        if !(1..=10_000).contains(&self.log.repeat_lines) {
            e.push(err("log.repeat_lines", "must be between 1 and 10000"));
        }
        if !(1..=86_400).contains(&self.log.repeat_window_s) {
            e.push(err(
                "log.repeat_window_s",
                "must be between 1 s and one day",
            ));
        }
        fn prefixed(
            prefix: &'static str,
            errs: Vec<(String, String)>,
        ) -> impl Iterator<Item = ConfigError> {
            errs.into_iter()
                .map(move |(k, m)| err(format!("{prefix}.{k}"), m))
        }
        e.extend(prefixed("audio.device", self.audio.device.validate()));
        if !matches!(self.climate.address, 0x76 | 0x77) {
            e.push(err(
                "climate.address",
                "must be 0x76 or 0x77 (the BME280's two addresses)",
            ));
        }
        e.extend(prefixed("climate.bme280", self.climate.bme280.validate()));
        e.extend(prefixed("camera.device", self.camera.device.validate()));
        e.extend(prefixed("detector", self.detector.validate()));
        e.extend(prefixed("fusion", self.fusion.validate()));
        e.extend(prefixed("power.policy", self.power.policy.validate()));
        e.extend(prefixed("update", self.update.validate()));
        e.extend(prefixed("fieldlink", self.fieldlink.validate()));
        e.extend(prefixed("outbox", self.outbox.validate()));
        e.extend(prefixed("uplink", self.uplink.validate(&self.node.id)));
        e.extend(prefixed(
            "power.simulation",
            self.power.simulation.validate(),
        ));
        e.extend(prefixed("power.monitor", self.power.monitor.validate()));
        e.extend(prefixed("power.sysfs", self.power.sysfs.validate()));
        // The wake line shares the GPIO numbers with the loads; its own
        // range is checked with `[power.sleep]`.
        let wake_line: Vec<(&str, &power::loads::InputLineConfig)> = self
            .power
            .sleep
            .wake_line
            .iter()
            .filter(|l| power::loads::config::USABLE_PINS.contains(&l.pin))
            .map(|l| ("sleep.wake_line", l))
            .collect();
        let (sleep_line, loads): (Vec<_>, Vec<_>) = self
            .power
            .loads
            .validate_with_inputs(&wake_line)
            .into_iter()
            .partition(|(k, _)| k.starts_with("sleep."));
        e.extend(prefixed("power.loads", loads));
        e.extend(prefixed("power", sleep_line));
        e.extend(prefixed("power.sleep", self.power.sleep.validate()));
        if let Some(l) = &self.power.sleep.wake_line {
            e.extend(prefixed("power.sleep.wake_line", l.validate_timing()));
        }
        e.extend(prefixed("power.costs", self.power.costs.validate()));
        e.extend(prefixed("time.gpsd", self.time.gpsd.validate()));
        ConfigErrors(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(text: &str) -> Vec<String> {
        match Config::from_toml_str(text) {
            Ok(_) => vec![],
            Err(ConfigErrors(v)) => v.into_iter().map(|e| e.key).collect(),
        }
    }

    #[test]
    fn empty_file_is_the_default() {
        assert_eq!(Config::from_toml_str("").unwrap(), Config::default());
    }

    #[test]
    fn duty_cycle_keys_have_defaults_and_are_checked() {
        let c = Config::from_toml_str("[power.sleep.wake_line]\npin = 22\n").unwrap();
        let l = c
            .power
            .sleep
            .wake_line
            .as_ref()
            .map(|l| (l.poll_ms, l.debounce_ms));
        assert_eq!(l, Some((50, 100)));
        assert_eq!(c.power.policy.camera_on_demand, [power::PowerMode::Saver]);
        let c = Config::from_toml_str(
            "[power.policy]\ncamera_on_demand = [\"normal\", \"saver\"]\ncamera_hold_s = 90\n",
        )
        .unwrap();
        assert_eq!(
            c.power.policy.camera_on_demand,
            [power::PowerMode::Normal, power::PowerMode::Saver]
        );
        let e = Config::from_toml_str(
            "[power.policy]\ncritical_audio_listen_s = 90\ncamera_on_demand = [\"critical\"]\n\
             camera_hold_s = 0\n[power.sleep.wake_line]\npin = 22\npoll_ms = 1\n",
        )
        .unwrap_err();
        let keys: Vec<String> = e.0.into_iter().map(|e| e.key).collect();
        assert_eq!(
            keys,
            [
                "power.policy.critical_audio_listen_s",
                "power.policy.camera_on_demand",
                "power.policy.camera_hold_s",
                "power.sleep.wake_line.poll_ms"
            ]
        );
    }

    #[test]
    fn deep_sleep_keys_are_checked_and_the_wake_line_shares_the_gpio() {
        let c = Config::from_toml_str(
            "[power.policy]\nsleep_below_soc = 0.1\n[power.sleep]\nreport_utc_h = 12.5\n\
             [power.sleep.wake_line]\npin = 22\nactive_low = true\n",
        )
        .unwrap();
        assert_eq!(c.power.policy.sleep_below_soc, Some(0.1));
        assert_eq!(c.power.sleep.wake_line.as_ref().map(|l| l.pin), Some(22));
        let c = Config::from_toml_str(
            "[power.sleep]\nsurvival_below_soc = 0.1\n\
             listening = [{ start_h = 4.5, end_h = 6.0 }]\n\
             [power.costs]\nboot_j = 90.0\n",
        )
        .unwrap();
        assert_eq!(c.power.sleep.listening.len(), 1);
        assert_eq!(c.power.sleep.listening[0].start_h, 4.5);
        assert_eq!(c.power.costs.boot_j, 90.0);
        let e = Config::from_toml_str(
            "[power.sleep]\nlistening = [{ start_h = 5.0, end_h = 7.0 }, { start_h = 6.0, end_h = 8.0 }]\n\
             [power.costs]\nhalted_w = -1.0\n",
        )
        .unwrap_err();
        let keys: Vec<_> = e.0.iter().map(|x| x.key.as_str()).collect();
        assert_eq!(keys, ["power.sleep.listening[1]", "power.costs.halted_w"]);
        let e = Config::from_toml_str(
            "[power.policy]\nsleep_below_soc = 1.5\nmin_dwell_ms = 999999999\n\
             [power.sleep]\nmax_sleep_s = 1\n[power.sleep.wake_line]\npin = 17\n\
             [power.loads.accelerator]\npin = 17\ndraw_mw = 1\n",
        )
        .unwrap_err();
        let mut keys: Vec<_> = e.0.iter().map(|e| e.key.as_str()).collect();
        keys.sort();
        assert_eq!(
            keys,
            [
                "power.policy.min_dwell_ms",
                "power.policy.sleep_below_soc",
                "power.sleep.max_sleep_s",
                "power.sleep.min_sleep_s",
                "power.sleep.wake_line.pin",
            ]
        );
    }

    #[test]
    fn the_example_configuration_is_valid() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/fieldnode.toml");
        let cfg = Config::from_file(&path).unwrap_or_else(|e| panic!("{e}"));
        // It documents the defaults: every value in it is the default.
        assert_eq!(cfg, Config::default());
    }

    #[test]
    fn every_error_is_reported_with_its_key_path() {
        let text = r#"
            colour = "red"
            [node]
            id = "bad id!"
            nmae = "x"
            [audio]
            sample_rate_hz = "fast"
            [power.policy]
            saver_below_soc = 1.5
            frobnicate = true
            [scene]
            speed = "warp"
            [audio.device]
            stall = 5
            [camera.device]
            colour = true
            source = "usb"
            [climate]
            address = 0x50
        "#;
        let mut got = keys(text);
        got.sort();
        assert_eq!(
            got,
            [
                "audio.device.stall",
                "audio.sample_rate_hz",
                "camera.device.colour",
                "camera.device.source",
                "climate.address",
                "colour",
                "node.id",
                "node.nmae",
                "power.policy.frobnicate",
                "power.policy.saver_below_soc",
                "scene.speed"
            ]
        );
    }

    #[test]
    fn switched_loads_are_read_and_checked() {
        let c = Config::from_toml_str(
            "[power.loads.accelerator]\npin = 17\nsettle_ms = 200\ndraw_mw = 2500\n\
             [power.loads.camera]\npin = 27\nactive_low = true\ndraw_mw = 1100\n",
        )
        .unwrap();
        let a = c.power.loads.accelerator.as_ref().unwrap();
        assert_eq!((a.pin, a.active_low, a.settle_ms), (17, false, 200));
        let cam = c.power.loads.camera.as_ref().unwrap();
        assert_eq!((cam.pin, cam.active_low, cam.settle_ms), (27, true, 100));
        assert!(c.power.loads.modem.is_none());

        let mut got = keys(
            "[power.loads.accelerator]\npin = 17\nsettle_ms = 999999\ndraw_mw = 2500\n\
             [power.loads.modem]\npin = 17\ndraw_mw = 500\n\
             [power.loads.camera]\npin = 3\ndraw_mw = -1\n\
             [power.loads.sensors]\npin = 5\ndraw_mw = 1\nvolts = 5\n\
             [power.loads.heater]\npin = 6\n",
        );
        got.sort();
        assert_eq!(
            got,
            [
                "power.loads.accelerator.settle_ms",
                "power.loads.camera.draw_mw",
                "power.loads.camera.pin",
                "power.loads.heater",
                "power.loads.modem.pin",
                "power.loads.sensors.volts",
            ]
        );
        // The draw is required: the table is named, the message names the key.
        let e = Config::from_toml_str("[power.loads.modem]\npin = 22\n").unwrap_err();
        assert_eq!(e.0.len(), 1);
        assert_eq!(e.0[0].key, "power.loads.modem");
        assert!(e.0[0].message.contains("draw_mw"), "{}", e.0[0].message);
    }

    #[test]
    fn syntax_errors_name_the_line() {
        let e = Config::from_toml_str("[node]\nid = \n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 2"), "{e}");
    }

    #[test]
    fn speed_accepts_numbers_and_max() {
        let c = Config::from_toml_str("[scene]\nspeed = \"max\"").unwrap();
        assert_eq!(c.scene.speed, Speed::Max);
        let c = Config::from_toml_str("[scene]\nspeed = 20").unwrap();
        assert_eq!(c.scene.speed, Speed::Factor(20.0));
        assert!(Config::from_toml_str("[scene]\nspeed = -1").is_err());
        assert!("0".parse::<Speed>().is_err());
    }
}
