//! Time the node can vouch for, on real hardware.
//!
//! A Pi 5 whose RTC battery is flat and which has no network boots with a
//! wrong clock. [`GuardedClock`] is the clock that stamps events in hardware
//! mode. It reads the system clock and judges it against:
//!
//! - a **floor** ([`floor::TimeFloor`]): the build time and the latest event
//!   time the node ever stored, kept durably in `<data_dir>/time/floor`. A
//!   system clock earlier than the floor is untrusted: the node then counts
//!   time from the floor on the monotonic clock, so that stored event times
//!   never go backwards, across reboots included;
//! - the kernel's NTP synchronisation status ([`kernel`], `adjtimex`);
//! - a time reference offered by another source (the technician's field
//!   link, Iridium network time), which wins over an unsynchronised system
//!   clock that disagrees with it by more than the reference's uncertainty;
//!   GNSS time comes from gpsd ([`gpsd`]); the board's RTC ([`rtc`]) stands
//!   in for a system clock judged untrusted when it reads above the floor.
//!
//! Every step of the system clock (it moved by more than
//! [`guarded::STEP_MS`] against the monotonic clock) is logged and counted,
//! and the times it handed out while untrusted are remembered with the
//! correction that trusted time brought, so what was stamped in that span
//! can be re-stamped. [`ClockReport`] is what the run summary and the
//! status record carry.

pub mod corrections;
pub mod floor;
pub mod gpsd;
pub mod guarded;
pub mod kernel;
pub mod rtc;

pub use floor::TimeFloor;
pub use guarded::{ClockReport, GuardedClock, SystemSources, TimeSources};
