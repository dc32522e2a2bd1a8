//! Power for the field node: what the supply can give (a battery charged by a
//! solar panel, simulated here; real monitors plug in behind [`PowerSource`]),
//! and the policy that decides, before each costly step, whether the node may
//! take it and at what cadence.
//!
//! Layout:
//! - [`source`]: the [`PowerSource`] trait and [`SimulatedSupply`] (battery + solar + loads);
//! - [`policy`]: [`PowerPolicy`], its modes with hysteresis, and the [`Step`]s it rules on.

pub mod policy;
pub mod source;

pub use policy::{Decision, PolicyConfig, PowerMode, PowerPolicy, PowerStatus, Step};
pub use source::{
    EnergyUse, LoadConfig, PowerReading, PowerSource, SimulatedSupply, SimulationConfig,
};
