//! Store-and-forward for the field node. Today: the durable event store that
//! is the node's only outbox. The MQTT and Iridium SBD links, which drain it,
//! arrive with the uplink issue.
//!
//! Layout:
//! - [`mqtt`]: the MQTT link (mutual TLS, QoS 1 confirmed per PUBACK, last will, downlink);
//! - [`outbox`]: the outbox policy (priorities, time to live, disk budget);
//! - [`sbd`]: the Iridium SBD link (AT modem driver, retries, power cycles, credit budget);
//! - [`scheduler`]: the link scheduler's decision per round (MQTT, satellite, wait, skip), pure;
//! - [`store`]: [`EventStore`], its invariants, ids and quarantine, and the outbox operations.

pub mod mqtt;
pub mod outbox;
pub mod sbd;
pub mod scheduler;
pub mod store;

pub use store::{EventStore, OpenReport, StoreConfig, StoreError};
