//! The field tools: what a technician or a researcher runs on a laptop to
//! read a node's events and judge them, and what an operator runs to sign
//! updates for it. Builds on any OS: it depends on the message crate, the
//! store and the model crate, not on the node's hardware stack.
//!
//! - [`events`]: reading the events of a node's data directory (a pulled SD
//!   card) without modifying it, as JSON lines or CSV;
//! - [`link`]: `field-tools link`, talking to a running node over its Unix
//!   socket or a serial port (the field link);
//! - [`pki`]: the deployment's certificate authority and the v3
//!   certificates of nodes, researchers, operators and the broker;
//! - [`pull`]: the researcher's MQTT subscriber (persistent session,
//!   de-duplication, JSON lines or CSV);
//! - [`score`]: event-level scoring of stored events against a scene's
//!   `labels.csv`;
//! - [`update`]: signed updates: keys, trust roots, packing, signing,
//!   verifying and inspecting model and settings bundles.

pub mod bridge;
pub mod broker_args;
pub mod events;
pub mod link;
mod newfile;
pub mod pki;
pub mod pull;
pub mod score;
pub mod update;
