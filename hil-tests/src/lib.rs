//! System tests on simulated hardware, with fault injection, and the scene
//! generator they run on.
//!
//! - [`scenegen`]: writes scene directories from a preset and a seed;
//! - [`fieldgen`]: a second, independently built family of generated scenes
//!   (seed and condition), for evaluating across generator families;
//! - [`mosquitto`]: a real Mosquitto broker with mutual TLS, an ACL and
//!   persistence on a free loopback port, for the MQTT tests;
//! - [`gpsd`]: a real gpsd reading NMEA sentences from a pty, for GNSS time;
//! - [`sbd_emu`]: an Iridium SBD modem emulator on a pty, with fault injection;
//! - [`bme280_emu`], [`ina226_emu`]: register-level I2C chips (the climate
//!   sensor, the battery and solar current monitors) under the real drivers;
//! - [`linkshaper`]: a serial line emulator on two pty pairs that carries
//!   bytes at a real baud rate and counts them (the field-link benchmark);
//! - `tests/`: the system tests (crash safety under SIGKILL, detection on
//!   generated scenes);
//! - binaries: `scenegen`, and `hil-fieldnode`, the `fieldnode` program built
//!   for the system tests; `linkbench`, the field link's rate at 115200 and
//!   921600 baud (`docs/performance.md`).

pub mod bme280_emu;
pub mod fieldgen;
pub mod gpsd;
pub mod ina226_emu;
pub mod linkshaper;
pub mod mosquitto;
pub mod powerfs;
pub mod sbd_emu;
pub mod scenegen;
