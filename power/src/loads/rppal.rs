//! The load switches and input lines on the Raspberry Pi's GPIO, through the
//! `rppal` crate (which drives the Pi 5's RP1 through `/dev/gpiomem0`, and
//! older boards' BCM GPIO through `/dev/gpiomem`).
//!
//! [`GpioSwitch::open`] claims every configured load's pin as an output at
//! its *off* level at once (low when active-high, high when active-low), so
//! opening never powers anything. The pins are not reset when the switch
//! is dropped: they keep driving their last level, and the node switches
//! every load off before it exits. An enable line still needs a pull
//! resistor to its off level on the board, which holds the load off while
//! the Pi boots and whenever no program drives the pin.
//!
//! The user running the node needs access to the GPIO device (on Raspberry
//! Pi OS, membership of the `gpio` group). This code builds on any Linux
//! target; off a Raspberry Pi, [`GpioSwitch::open`] fails with
//! [`LoadError::Unavailable`].

use std::collections::BTreeMap;

use ::rppal::gpio::{Gpio, InputPin, Level, OutputPin};

use super::{InputLine, InputLineConfig, Load, LoadError, LoadSwitch, LoadsConfig, Pull};

struct Output {
    pin: OutputPin,
    active_low: bool,
}

/// The configured loads' enable lines on the GPIO.
pub struct GpioSwitch {
    outputs: BTreeMap<Load, Output>,
}

fn open_gpio() -> Result<Gpio, LoadError> {
    Gpio::new().map_err(|e| LoadError::Unavailable(e.to_string()))
}

fn pin_error(pin: u8, e: ::rppal::gpio::Error) -> LoadError {
    LoadError::Pin {
        pin,
        reason: e.to_string(),
    }
}

impl GpioSwitch {
    /// Claims the pin of every load in `cfg` as an output at its off level.
    pub fn open(cfg: &LoadsConfig) -> Result<GpioSwitch, LoadError> {
        let gpio = open_gpio()?;
        let mut outputs = BTreeMap::new();
        for (load, line) in cfg.lines() {
            let pin = gpio.get(line.pin).map_err(|e| pin_error(line.pin, e))?;
            let mut pin = if line.active_low {
                pin.into_output_high()
            } else {
                pin.into_output_low()
            };
            pin.set_reset_on_drop(false);
            tracing::info!(
                load = load.as_str(),
                pin = line.pin,
                active_low = line.active_low,
                "load switch line claimed, off"
            );
            outputs.insert(
                load,
                Output {
                    pin,
                    active_low: line.active_low,
                },
            );
        }
        Ok(GpioSwitch { outputs })
    }
}

impl LoadSwitch for GpioSwitch {
    fn name(&self) -> &'static str {
        "gpio"
    }

    fn set(&mut self, load: Load, on: bool) -> Result<(), LoadError> {
        let out = self
            .outputs
            .get_mut(&load)
            .ok_or(LoadError::NotConfigured(load))?;
        let level = if on != out.active_low {
            Level::High
        } else {
            Level::Low
        };
        out.pin.write(level);
        Ok(())
    }
}

/// An input line on the GPIO (a PIR sensor's output, a wake signal).
pub struct GpioInput {
    pin: InputPin,
    active_low: bool,
}

impl GpioInput {
    /// Claims the line's pin as an input with its pull resistor.
    pub fn open(cfg: &InputLineConfig) -> Result<GpioInput, LoadError> {
        let pin = open_gpio()?
            .get(cfg.pin)
            .map_err(|e| pin_error(cfg.pin, e))?;
        let pin = match cfg.pull {
            Pull::None => pin.into_input(),
            Pull::Up => pin.into_input_pullup(),
            Pull::Down => pin.into_input_pulldown(),
        };
        Ok(GpioInput {
            pin,
            active_low: cfg.active_low,
        })
    }
}

impl InputLine for GpioInput {
    fn is_active(&mut self) -> Result<bool, LoadError> {
        Ok(self.pin.is_high() != self.active_low)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// This machine is not a Raspberry Pi: opening the GPIO is a typed
    /// error, not a panic. (On a Pi the same call claims the pins.)
    #[test]
    fn opening_without_a_raspberry_pi_gpio_is_an_error() {
        if std::path::Path::new("/dev/gpiomem0").exists()
            || std::path::Path::new("/dev/gpiomem").exists()
        {
            return;
        }
        let cfg = LoadsConfig {
            camera: Some(crate::loads::LoadLine {
                pin: 5,
                active_low: false,
                settle_ms: 100,
                draw_mw: 1.0,
            }),
            ..LoadsConfig::default()
        };
        match GpioSwitch::open(&cfg) {
            Err(LoadError::Unavailable(_)) => {}
            Err(e) => panic!("{e}"),
            Ok(_) => panic!("opened a GPIO that is not there"),
        }
    }
}
