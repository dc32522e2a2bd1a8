//! `[power.loads]`: which GPIO switches which load, and what each load costs.
//! Every load is optional; with none configured the node switches nothing.

use serde::{Deserialize, Serialize};

use super::Load;

/// The longest settle time accepted, ms.
pub const MAX_SETTLE_MS: u64 = 60_000;
/// The largest draw accepted for one load, mW.
pub const MAX_DRAW_MW: f64 = 50_000.0;
/// BCM GPIOs a load or input may use: 0 and 1 are the HAT ID EEPROM's bus,
/// 2 and 3 the I2C bus of the climate sensor and the power monitors.
pub const USABLE_PINS: std::ops::RangeInclusive<u8> = 4..=27;

fn default_settle_ms() -> u64 {
    100
}

/// One load's switch line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoadLine {
    /// The BCM GPIO number of the load switch's enable input (4 to 27).
    pub pin: u8,
    /// The switch is on when the line is low.
    #[serde(default)]
    pub active_low: bool,
    /// After switching on, wait this long before using the load, ms.
    #[serde(default = "default_settle_ms")]
    pub settle_ms: u64,
    /// The load's draw while on, milliwatts (its energy is time on × draw).
    pub draw_mw: f64,
}

/// Pull resistor of an input line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Pull {
    /// None (the line is driven or has an external resistor).
    #[default]
    None,
    /// To 3.3 V.
    Up,
    /// To ground.
    Down,
}

/// An input line (a PIR sensor's output, an external wake signal).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InputLineConfig {
    /// The BCM GPIO number (4 to 27).
    pub pin: u8,
    /// The line is asserted when low.
    #[serde(default)]
    pub active_low: bool,
    /// The SoC's pull resistor on the line.
    #[serde(default)]
    pub pull: Pull,
    /// While the node runs, the line is read this often, ms.
    #[serde(default = "default_poll_ms")]
    pub poll_ms: u64,
    /// A level counts once it has read the same this long, ms.
    #[serde(default = "default_debounce_ms")]
    pub debounce_ms: u64,
}

fn default_poll_ms() -> u64 {
    50
}

fn default_debounce_ms() -> u64 {
    100
}

impl InputLineConfig {
    /// Problems with the read timing, as (key, message); the pin is checked
    /// with the other GPIOs ([`LoadsConfig::validate_with_inputs`]).
    pub fn validate_timing(&self) -> Vec<(String, String)> {
        let mut e = Vec::new();
        if !(10..=5_000).contains(&self.poll_ms) {
            e.push(("poll_ms".into(), "must be between 10 and 5000 ms".into()));
        }
        if self.debounce_ms > 10_000 {
            e.push(("debounce_ms".into(), "must be at most 10000 ms".into()));
        }
        e
    }
}

/// `[power.loads]`: one optional table per load.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct LoadsConfig {
    /// `[power.loads.sensors]`: power of the sensors.
    pub sensors: Option<LoadLine>,
    /// `[power.loads.camera]`: the camera.
    pub camera: Option<LoadLine>,
    /// `[power.loads.accelerator]`: the accelerator HAT's supply.
    pub accelerator: Option<LoadLine>,
    /// `[power.loads.modem]`: the cellular modem.
    pub modem: Option<LoadLine>,
    /// `[power.loads.satellite]`: the satellite (Iridium SBD) modem.
    pub satellite: Option<LoadLine>,
}

impl LoadsConfig {
    /// The line of `load`, if configured.
    pub fn get(&self, load: Load) -> Option<&LoadLine> {
        match load {
            Load::Sensors => self.sensors.as_ref(),
            Load::Camera => self.camera.as_ref(),
            Load::Accelerator => self.accelerator.as_ref(),
            Load::Modem => self.modem.as_ref(),
            Load::Satellite => self.satellite.as_ref(),
        }
    }

    /// The configured loads, in [`Load::ALL`] order.
    pub fn lines(&self) -> impl Iterator<Item = (Load, &LoadLine)> {
        Load::ALL
            .into_iter()
            .filter_map(|l| self.get(l).map(|line| (l, line)))
    }

    /// True when no load is configured.
    pub fn is_empty(&self) -> bool {
        self.lines().next().is_none()
    }

    /// Problems with the settings, as (key, message); `inputs` are other
    /// GPIO inputs (key, pin) whose pins must not collide with the loads'.
    pub fn validate(&self) -> Vec<(String, String)> {
        self.validate_with_inputs(&[])
    }

    /// [`validate`](Self::validate), with input lines (key, their settings)
    /// that share the GPIO numbers.
    pub fn validate_with_inputs(
        &self,
        inputs: &[(&str, &InputLineConfig)],
    ) -> Vec<(String, String)> {
        let mut e = Vec::new();
        let mut taken: Vec<(u8, String)> = Vec::new();
        let mut claim = |key: String, pin: u8, e: &mut Vec<(String, String)>| {
            if !USABLE_PINS.contains(&pin) {
                e.push((
                    format!("{key}.pin"),
                    "must be a BCM GPIO number from 4 to 27 (0 and 1 are the HAT ID EEPROM's, 2 and 3 the I2C bus of the climate sensor and the power monitors)".into(),
                ));
            } else if let Some((_, other)) = taken.iter().find(|(p, _)| *p == pin) {
                e.push((
                    format!("{key}.pin"),
                    format!("GPIO {pin} is already {other}'s"),
                ));
            } else {
                taken.push((pin, key));
            }
        };
        for (load, line) in self.lines() {
            let key = load.as_str().to_string();
            claim(key.clone(), line.pin, &mut e);
            if line.settle_ms > MAX_SETTLE_MS {
                e.push((
                    format!("{key}.settle_ms"),
                    format!("must be at most {MAX_SETTLE_MS} ms"),
                ));
            }
            if !(line.draw_mw.is_finite() && (0.0..=MAX_DRAW_MW).contains(&line.draw_mw)) {
                e.push((
                    format!("{key}.draw_mw"),
                    format!("must be between 0 and {MAX_DRAW_MW} mW"),
                ));
            }
        }
        for (key, input) in inputs {
            claim((*key).to_string(), input.pin, &mut e);
        }
        e
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(pin: u8) -> LoadLine {
        LoadLine {
            pin,
            active_low: false,
            settle_ms: 100,
            draw_mw: 1000.0,
        }
    }

    fn keys(cfg: &LoadsConfig) -> Vec<String> {
        cfg.validate().into_iter().map(|(k, _)| k).collect()
    }

    #[test]
    fn no_loads_is_valid_and_empty() {
        let cfg = LoadsConfig::default();
        assert!(cfg.is_empty());
        assert!(cfg.validate().is_empty());
    }

    #[test]
    fn pins_must_be_unique_usable_and_settle_and_draw_bounded() {
        let cfg = LoadsConfig {
            sensors: Some(line(5)),
            camera: Some(line(5)),
            accelerator: Some(LoadLine {
                settle_ms: MAX_SETTLE_MS + 1,
                ..line(2)
            }),
            modem: Some(LoadLine {
                draw_mw: f64::NAN,
                ..line(28)
            }),
            satellite: Some(line(6)),
        };
        assert_eq!(
            keys(&cfg),
            [
                "camera.pin",
                "accelerator.pin",
                "accelerator.settle_ms",
                "modem.pin",
                "modem.draw_mw"
            ]
        );
        let msg = &cfg.validate()[0].1;
        assert!(msg.contains("sensors"), "{msg}");
        let ok = LoadsConfig {
            accelerator: Some(LoadLine {
                settle_ms: MAX_SETTLE_MS,
                draw_mw: 0.0,
                ..line(27)
            }),
            camera: Some(line(4)),
            ..LoadsConfig::default()
        };
        assert!(ok.validate().is_empty(), "{:?}", ok.validate());
        assert_eq!(
            ok.lines().map(|(l, _)| l).collect::<Vec<_>>(),
            [Load::Camera, Load::Accelerator]
        );
    }

    #[test]
    fn an_input_line_has_read_timing_defaults_and_bounds() {
        let l = InputLineConfig {
            pin: 22,
            active_low: false,
            pull: Pull::None,
            poll_ms: default_poll_ms(),
            debounce_ms: default_debounce_ms(),
        };
        assert_eq!((l.poll_ms, l.debounce_ms), (50, 100));
        assert!(l.validate_timing().is_empty());
        let l = InputLineConfig {
            poll_ms: 5,
            debounce_ms: 10_001,
            ..l
        };
        let keys: Vec<_> = l.validate_timing().into_iter().map(|(k, _)| k).collect();
        assert_eq!(keys, ["poll_ms", "debounce_ms"]);
    }

    #[test]
    fn an_input_may_not_share_a_loads_pin() {
        let cfg = LoadsConfig {
            camera: Some(line(17)),
            ..LoadsConfig::default()
        };
        let pir = InputLineConfig {
            pin: 17,
            active_low: false,
            pull: Pull::Down,
            poll_ms: 50,
            debounce_ms: 100,
        };
        let e = cfg.validate_with_inputs(&[("wake", &pir)]);
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].0, "wake.pin");
        assert!(e[0].1.contains("camera"), "{}", e[0].1);
    }
}
