//! The ground bridge: receives RockBLOCK's web callback for each Iridium SBD
//! message, rejects what it cannot authenticate or decode, and publishes the
//! records to the MQTT broker on the node's own topics, so that researchers
//! see one stream whatever the link (`docs/ground-bridge.md`).
//!
//! - [`callback`]: the callback's form fields, parsed and checked;
//! - [`auth`]: the JWT (RS256 with RockBLOCK's key, or HS256) and its claims;
//! - [`nodes`]: the nodes file, IMEI → node id;
//! - [`records`]: payload → records → the node's MQTT messages;
//! - [`recent`]: deliveries published lately (RockBLOCK retries);
//! - [`publisher`]: the task that owns rumqttc's event loop, batches confirmed by PUBACK;
//! - [`server`]: the HTTP routes and what each outcome answers;
//! - [`run`]: start-up from the command line's options.

pub mod auth;
pub mod callback;
pub mod cli;
pub mod nodes;
pub mod publisher;
pub mod recent;
pub mod records;
pub mod run;
pub mod server;

pub use auth::{AuthError, Verifier};
pub use callback::{Callback, CallbackError};
pub use nodes::{Nodes, NodesError};
pub use publisher::{Publish, PublishError, Publisher, PublisherOptions};
pub use run::{Auth, RunConfig, RunError, run};
pub use server::{BridgeOptions, serve};
