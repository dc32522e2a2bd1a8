//! The field node daemon as a library: configuration, the sensors behind
//! small traits (real devices and scene replay), the power-aware event loop,
//! and the wiring from sensors to the durable event store.
//!
//! Layout:
//! - [`config`]: the TOML configuration and its whole-file validation;
//! - [`scene`]: readers for scene directories (`docs/scenes.md`);
//! - [`sensors`]: the [`sensors::Microphone`], [`sensors::Camera`] and
//!   [`sensors::ClimateSensor`] traits, and their scene replays;
//! - [`clock`]: the injected [`clock::Clock`] (scene time or system time);
//! - [`timekeeping`]: the system clock judged against a persisted floor, the
//!   kernel's NTP status and other time references (hardware mode);
//! - [`tasks`]: the long-lived tasks (one per sensor, power, detection, store);
//! - [`shutdown`]: the signal every task receives;
//! - [`service`]: systemd readiness, status, stopping and the progress watchdog;
//! - [`model`]: opening the fusion model (or falling back to the triggers);
//! - [`loads`]: switched loads in a run: the loads on for the run, and the
//!   accelerator's supply around bursts;
//! - [`sleep`]: deep sleep on the power policy's call (RTC wake alarm,
//!   sleep record, the [`sleep::halt::Halt`] edge) and how a start began;
//! - [`update`]: signed model and settings updates (trust state, A/B slots, install);
//! - [`uplink`]: forwarding the outbox over MQTT, status records, downlink commands;
//! - [`logring`]: the recent log lines kept in memory for the field link;
//! - [`fieldlink`]: serving `field-tools link` on a Unix socket or a serial device;
//! - [`energy_sim`]: `fieldnode simulate-energy`, the endurance simulation
//!   with the configuration's power tables, and its SVG plots;
//! - [`node`]: wiring the tasks for a run and its [`node::RunSummary`];
//! - [`cli`]: the `fieldnode` command line.

pub mod cli;
pub mod clock;
pub mod config;
pub mod energy_sim;
pub mod fieldlink;
pub mod hardware;
pub mod loads;
pub mod logring;
pub mod metrics;
pub mod model;
pub mod node;
pub mod probe;
pub mod scene;
pub mod sensors;
pub mod service;
pub mod shutdown;
pub mod sleep;
pub mod tasks;
pub mod timekeeping;
pub mod update;
pub mod uplink;

pub use config::{Config, Speed};
pub use node::{NodeError, RunSummary, run_scene};
