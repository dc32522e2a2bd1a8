//! The Iridium SBD link: an AT-command driver for a 9603 modem (RockBLOCK)
//! on a serial port, and the credit budget that rations it.
//!
//! Layout:
//! - [`at`]: the AT layer (commands, final result codes, timeouts, binary
//!   transfers with checksums);
//! - [`modem`]: the modem's commands and every status code they return;
//! - [`link`]: [`SbdLink`], one packed MO message sent with retries, backoff,
//!   MT reads and power cycles;
//! - [`budget`]: [`CreditBudget`], credits per day and month, persisted;
//! - [`quarantine`]: [`Quarantine`], the items whose messages the gateway
//!   refused for good, counted and persisted; past a limit they no longer go
//!   by satellite;
//! - [`power`]: [`ModemPower`], the modem's power switch at the hardware edge;
//! - [`serial`]: opening the serial port with tokio-serial.
//!
//! Packing records into a message is `messages::pack`; downlink commands are
//! `messages::command`.

pub mod at;
pub mod budget;
pub mod link;
pub mod modem;
pub mod power;
pub mod quarantine;
pub mod serial;

pub use budget::{BudgetError, BudgetLimits, CreditBudget, credits_for, session_credits};
pub use link::{
    MoOutcome, MtMessage, SbdError, SbdLink, SbdLinkConfig, SendReport, SystemClock, WallClock,
};
pub use modem::{
    MoClass, ModemError, ModemTimeouts, RefusalCause, SbdModem, SessionResult, classify_mo,
    refusal_cause,
};
pub use power::{ModemPower, PowerError, ReportOnly};
pub use quarantine::{Quarantine, QuarantineError};
pub use serial::SerialError;
pub use serial::{SerialStream, open_serial};
