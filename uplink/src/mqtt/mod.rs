//! The MQTT link of the uplink: QoS 1 publishing over mutual TLS with
//! delivery confirmed per message by its PUBACK, a retained online/offline
//! state (the last will) and the downlink command topic. Independent of the
//! store: the caller keeps the outbox and decides what to send.
//!
//! - [`config`]: [`MqttConfig`] (`[mqtt]`), its validation and [`Topics`];
//! - [`tls`]: the CA, certificate and key files into a rustls configuration;
//! - [`certcheck`]: what `check-config` finds wrong with those files before
//!   the link runs (X.509 version, validity, key, CA, CN);
//! - [`link`]: [`MqttLink`], the task that owns rumqttc's event loop, and [`LinkEvent`];
//! - [`tracker`]: packet id → message id correlation;
//! - [`backoff`]: jittered exponential reconnect delays.

pub mod backoff;
pub mod certcheck;
pub mod config;
pub mod link;
pub mod tls;
pub mod tracker;

pub use config::{ConfigError, MqttConfig, PayloadFormat, TlsFiles, Topics};
pub use link::{
    Kind, LinkClosed, LinkError, LinkEvent, MqttLink, OutgoingMessage, STATE_OFFLINE, STATE_ONLINE,
    StartError,
};
pub use tls::TlsError;
