//! Store-and-forward for the field node. Today: the durable event store that
//! is the node's only outbox. The MQTT and Iridium SBD links, which drain it,
//! arrive with the uplink issue.
//!
//! Layout:
//! - [`mqtt`]: the MQTT link (mutual TLS, QoS 1 confirmed per PUBACK, last will, downlink);
//! - [`store`]: [`EventStore`], its invariants, ids and quarantine.

pub mod mqtt;
pub mod store;

pub use store::{EventStore, OpenReport, StoreConfig, StoreError};
