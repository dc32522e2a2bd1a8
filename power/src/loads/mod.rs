//! Switched loads: the node's power-hungry parts (sensor power, the camera,
//! the accelerator HAT's supply, the cellular modem, the satellite modem)
//! each sit behind a load switch whose
//! enable input is a GPIO output, and an external wake or trigger line (a PIR
//! sensor, for example) is a GPIO input.
//!
//! Layout:
//! - [`config`]: `[power.loads]`, one [`LoadLine`] per load (GPIO, polarity,
//!   settle time, draw), checked by [`LoadsConfig::validate`];
//! - [`LoadSwitch`] and [`InputLine`] (here): the hardware edge, one call
//!   per line change or read;
//! - [`bank`]: [`SwitchedLoads`], which switches loads through a
//!   [`LoadSwitch`], waits each load's settle time after switching it on
//!   (on tokio's clock, so paused in tests) and counts, per load, the
//!   switch-ons, the failures, the time on and its energy (time on × the
//!   configured draw);
//! - [`rppal`]: [`GpioSwitch`] and [`GpioInput`] on the Raspberry Pi's GPIO
//!   through the `rppal` crate;
//! - [`fake`]: [`FakeSwitch`] and [`FakeInput`], which record or replay line
//!   levels with their times, for tests and for the simulated hardware;
//! - [`debounce`]: [`Debouncer`], which turns the readings of an input line
//!   into debounced edges.
//!
//! A line that cannot be driven is a counted, logged failure, never a panic:
//! the node carries on with the load in whatever state its switch left it.

pub mod bank;
pub mod config;
pub mod debounce;
pub mod fake;
pub mod rppal;

use serde::{Deserialize, Serialize};

pub use bank::{LoadStats, LoadsReport, SwitchedLoads};
pub use config::{InputLineConfig, LoadLine, LoadsConfig, Pull};
pub use debounce::Debouncer;
pub use fake::{FakeInput, FakeSwitch, Switching};
pub use rppal::{GpioInput, GpioSwitch};

/// A load the node can switch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Load {
    /// Power of the sensors on the bus (climate sensor, microphone preamp).
    Sensors,
    /// The camera.
    Camera,
    /// The accelerator HAT's supply.
    Accelerator,
    /// The cellular modem (MQTT rides on it).
    Modem,
    /// The satellite (Iridium SBD) modem.
    Satellite,
}

impl Load {
    /// Every load, in the order the node powers them up at start.
    pub const ALL: [Load; 5] = [
        Load::Sensors,
        Load::Camera,
        Load::Accelerator,
        Load::Modem,
        Load::Satellite,
    ];

    /// The load's name in the configuration and in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Load::Sensors => "sensors",
            Load::Camera => "camera",
            Load::Accelerator => "accelerator",
            Load::Modem => "modem",
            Load::Satellite => "satellite",
        }
    }
}

impl std::fmt::Display for Load {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a line could not be driven or read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LoadError {
    /// The GPIO peripheral cannot be opened (not a Raspberry Pi, no
    /// permission on `/dev/gpiomem*`).
    #[error("GPIO unavailable: {0}")]
    Unavailable(String),
    /// One GPIO cannot be claimed (not on this board, already in use).
    #[error("GPIO {pin}: {reason}")]
    Pin {
        /// The BCM GPIO number.
        pin: u8,
        /// Why.
        reason: String,
    },
    /// The switch has no line for this load.
    #[error("no line configured for the {0} load")]
    NotConfigured(Load),
    /// Driving the line failed.
    #[error("switching the {load} load failed: {reason}")]
    Switch {
        /// The load.
        load: Load,
        /// Why.
        reason: String,
    },
}

impl LoadError {
    /// A short, stable name for logs and counters.
    pub fn kind(&self) -> &'static str {
        match self {
            LoadError::Unavailable(_) => "unavailable",
            LoadError::Pin { .. } => "pin",
            LoadError::NotConfigured(_) => "not_configured",
            LoadError::Switch { .. } => "switch",
        }
    }
}

/// The hardware edge of the load switches: drives each load's enable line.
/// The polarity of the line (active high or low) is the implementation's
/// business; callers say on or off.
pub trait LoadSwitch: Send {
    /// A short name for logs and reports (`gpio`, `simulated`).
    fn name(&self) -> &'static str;

    /// Switches `load` on or off. Setting the level it already has is
    /// harmless.
    fn set(&mut self, load: Load, on: bool) -> Result<(), LoadError>;
}

/// The hardware edge of an input line (a wake or trigger line such as a PIR
/// sensor's output).
pub trait InputLine: Send {
    /// Whether the line is asserted now (its polarity applied).
    fn is_active(&mut self) -> Result<bool, LoadError>;
}

/// A switch for when the GPIO cannot be opened: every change fails with the
/// reason, so each attempt is counted and reported as a failure.
#[derive(Debug, Clone)]
pub struct UnavailableSwitch(pub LoadError);

impl LoadSwitch for UnavailableSwitch {
    fn name(&self) -> &'static str {
        "unavailable"
    }

    fn set(&mut self, _load: Load, _on: bool) -> Result<(), LoadError> {
        Err(self.0.clone())
    }
}
