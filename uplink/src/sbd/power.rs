//! Power control of the modem: the edge where a modem that stopped answering
//! is switched off and on again. A real implementation toggles the
//! RockBLOCK's sleep/enable pin through a GPIO; [`ReportOnly`] is for nodes
//! without that wire (it only logs, and the link then reports the modem).

/// Why a power cycle could not be done.
#[derive(Debug, thiserror::Error)]
pub enum PowerError {
    /// This node cannot switch the modem.
    #[error("modem power cannot be switched on this node")]
    Unsupported,
    /// The switch failed.
    #[error("modem power switch failed: {0}")]
    Failed(String),
}

/// Something that can switch the modem off and on.
pub trait ModemPower: Send {
    /// Switches the modem off, then on. Returns once it is powered again;
    /// the caller waits for it to boot.
    fn power_cycle(&mut self) -> Result<(), PowerError>;
}

/// No power switch: every request is logged and refused.
#[derive(Debug, Default, Clone, Copy)]
pub struct ReportOnly;

impl ModemPower for ReportOnly {
    fn power_cycle(&mut self) -> Result<(), PowerError> {
        tracing::warn!("modem needs a power cycle but this node has no power switch for it");
        Err(PowerError::Unsupported)
    }
}

impl<F: FnMut() -> Result<(), PowerError> + Send> ModemPower for F {
    fn power_cycle(&mut self) -> Result<(), PowerError> {
        self()
    }
}
