//! Power for the field node: what the supply can give (a battery charged by a
//! solar panel, simulated, measured by current monitors or read from sysfs,
//! behind [`PowerSource`]), and the policy that decides, before each costly
//! step, whether the node may take it and at what cadence.
//!
//! Layout:
//! - [`source`]: the [`PowerSource`] trait and [`SimulatedSupply`] (battery + solar + loads);
//! - [`policy`]: [`PowerPolicy`], its modes with hysteresis, and the [`Step`]s it rules on;
//! - [`monitor`]: real readings from INA226 current monitors on I2C
//!   ([`MonitoredSupply`]), with [`gauge`]'s state of charge from volts and amps;
//! - [`sysfs`]: real readings from Linux sysfs ([`SysfsSupply`]): a fuel-gauge
//!   battery in `/sys/class/power_supply` (UPS HATs) and the Pi 5's
//!   undervoltage flag and SoC temperature ([`BoardHealth`]);
//! - [`sleep`]: `[power.sleep]` and when a sleep the policy calls should end
//!   ([`plan_wake`]: solar recovery, a cap, a daily report, a listening window);
//! - [`ledger`]: `[power.costs]` and the [`EnergyLedger`] of what each
//!   costed action spent, per consumer;
//! - [`endurance`]: the endurance simulation, the real policy on a
//!   simulated clock, battery, panel, weather and event rate;
//! - [`listen`]: listening windows in local solar time, when the node stays
//!   awake whatever its mode;
//! - [`loads`]: switched loads (the camera, the accelerator HAT, a modem,
//!   sensor power) behind GPIO load switches, with settle times and their
//!   energy ([`SwitchedLoads`]), and GPIO input lines, on `rppal` or a fake.

pub mod endurance;
pub mod gauge;
pub mod ledger;
pub mod listen;
pub mod loads;
pub mod monitor;
pub mod policy;
pub mod sleep;
pub mod source;
pub mod sysfs;

pub use gauge::{BatteryGauge, GaugeConfig};
pub use ledger::{Actions, Consumer, EnergyCosts, EnergyLedger, LedgerCheck};
pub use listen::{Listening, ListeningWindow};
pub use loads::{Load, LoadError, LoadsConfig, LoadsReport, SwitchedLoads};
pub use monitor::{
    Ina226Monitor, Monitor, MonitorConfig, MonitorError, MonitoredConfig, MonitoredSupply, Sample,
};
pub use policy::{
    AudioDuty, Decision, PolicyConfig, PowerMode, PowerPolicy, PowerStatus, SleepCall, SleepReason,
    Step,
};
pub use sleep::{SleepConfig, WakeBound, WakePlan, plan_wake};
pub use source::{
    EnergyUse, LoadConfig, PowerReading, PowerSource, SimulatedSupply, SimulationConfig,
    SupplyHealth,
};
pub use sysfs::{BoardHealth, CurrentSign, SysfsConfig, SysfsError, SysfsSupply};
