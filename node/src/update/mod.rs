//! Signed updates on the node: the trust state, the A/B model slots with
//! their install state, the install pipeline (verify, power gate, stage,
//! self-test, trial, commit or roll back) and the task that takes bundles
//! from the drop folder.
//!
//! Files under `<data_dir>/update/`:
//! - `trust.bin`: the trusted root, the installed versions and the time
//!   floor ([`models::bundle::TrustState`]); made from `[update] root` on
//!   first use;
//! - `state.toml`: the committed model slot, the model on trial, the
//!   installed settings and the last result ([`state::InstallState`]);
//! - `slots/a/`, `slots/b/`: a model file and its manifest each;
//! - `settings.bin`: the installed settings bundle's patch;
//! - `refused/`: refusals made by `fieldnode update apply`, which runs
//!   beside the node, for the node to record and report.
//!
//! Every file is replaced atomically (temporary file, fsync, rename, fsync
//! of the directory), so a power cut leaves the old or the new state.
//! Bundles arrive in `<data_dir>/incoming/` (`*.fnb`): copied there,
//! queued by `fieldnode update apply`, received by satellite (settings),
//! over MQTT in pieces ([`receive`]) or pushed over the field link
//! ([`handoff`]).

pub mod commands;
pub mod config;
pub mod handoff;
pub mod install;
pub mod live;
pub mod receive;
pub mod report;
pub mod state;
pub mod task;
pub mod trust;

pub use config::UpdateConfig;
pub use install::{Installer, Offer};
pub use state::{InstallState, Outcome};
