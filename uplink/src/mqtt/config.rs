//! The `[mqtt]` configuration: where the broker is, who the node is, which
//! TLS files prove it, and how the link paces itself. [`MqttConfig::validate`]
//! turns every mistake into a [`ConfigError`] before anything connects.

use std::path::PathBuf;
use std::time::Duration;

use messages::{EventJson, EventRecord};
use serde::{Deserialize, Serialize};

/// The PEM files of mutual TLS.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct TlsFiles {
    /// The CA certificate(s) that signed the broker's certificate.
    pub ca: PathBuf,
    /// The node's own certificate (chain), whose common name is its identity.
    pub cert: PathBuf,
    /// The node's private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

/// How the caller encodes a record into a message payload.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum PayloadFormat {
    /// The versioned binary record of `docs/wire-format.md` (compact; the default).
    #[default]
    Binary,
    /// The JSON view ([`EventJson`]), for brokers and dashboards that want text.
    Json,
}

impl PayloadFormat {
    /// Encodes an event in this format. Both formats carry the event id.
    pub fn encode_event(self, record: &EventRecord) -> Vec<u8> {
        match self {
            PayloadFormat::Binary => messages::encode_event(record),
            PayloadFormat::Json => match serde_json::to_vec(&EventJson::from(record)) {
                Ok(bytes) => bytes,
                // EventJson holds only strings and numbers; serde_json fails on
                // nothing but non-string map keys and I/O, neither of which exists here.
                Err(_) => unreachable!("EventJson always serialises"),
            },
        }
    }
}

/// The MQTT link's configuration (`[mqtt]`). Every field has a default; a
/// usable configuration names at least `host`, `node_id` and `tls` (or says
/// `plain_tcp = true`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct MqttConfig {
    /// Broker host name or IP address. With TLS it must match the broker
    /// certificate's subject alternative names.
    pub host: String,
    /// Broker port (8883 is MQTT over TLS).
    pub port: u16,
    /// The node's identifier: the middle of every topic. With mutual TLS the
    /// broker's ACL usually ties it to the certificate's common name.
    pub node_id: String,
    /// First level of every topic.
    pub prefix: String,
    /// MQTT client id; the node id when absent.
    pub client_id: Option<String>,
    /// Mutual TLS files. Required unless `plain_tcp = true`.
    pub tls: Option<TlsFiles>,
    /// Connect without TLS. Only for a broker on a trusted local network;
    /// must be said explicitly, never a fallback.
    pub plain_tcp: bool,
    /// MQTT keep-alive, seconds (5..=3600).
    pub keepalive_s: u64,
    /// TCP + TLS + CONNACK timeout, seconds.
    pub connect_timeout_s: u64,
    /// First reconnect delay, milliseconds; doubles per failed attempt, with jitter.
    pub reconnect_min_ms: u64,
    /// Longest reconnect delay, milliseconds.
    pub reconnect_max_ms: u64,
    /// Messages handed to the broker and not yet acknowledged (PUBACK), at most (1..=1000).
    pub max_in_flight: u16,
    /// How the node encodes records (used by the caller; the link sends bytes).
    pub payload: PayloadFormat,
}

impl Default for MqttConfig {
    fn default() -> Self {
        MqttConfig {
            host: "localhost".into(),
            port: 8883,
            node_id: String::new(),
            prefix: "field".into(),
            client_id: None,
            tls: None,
            plain_tcp: false,
            keepalive_s: 60,
            connect_timeout_s: 20,
            reconnect_min_ms: 1_000,
            reconnect_max_ms: 300_000,
            max_in_flight: 256,
            payload: PayloadFormat::Binary,
        }
    }
}

/// A configuration the link refuses to start with.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    /// Neither TLS files nor an explicit `plain_tcp = true`.
    #[error(
        "mqtt: no [mqtt.tls] files (ca, cert, key); set plain_tcp = true to connect without TLS"
    )]
    NoTls,
    /// Both TLS files and `plain_tcp = true`.
    #[error("mqtt: both [mqtt.tls] and plain_tcp = true; choose one")]
    TlsAndPlain,
    /// An empty field that must be set.
    #[error("mqtt: {0} is empty")]
    Empty(&'static str),
    /// A topic level with `/`, `+`, `#` or NUL in it.
    #[error("mqtt: {field} {value:?} must not contain '/', '+', '#' or NUL")]
    BadTopicLevel {
        /// Which field.
        field: &'static str,
        /// Its value.
        value: String,
    },
    /// A number out of its range.
    #[error("mqtt: {field} = {value} is outside {range}")]
    OutOfRange {
        /// Which field.
        field: &'static str,
        /// Its value.
        value: u64,
        /// The accepted range.
        range: &'static str,
    },
}

fn check_level(field: &'static str, value: &str) -> Result<(), ConfigError> {
    if value.is_empty() {
        return Err(ConfigError::Empty(field));
    }
    if value.contains(['/', '+', '#', '\0']) {
        return Err(ConfigError::BadTopicLevel {
            field,
            value: value.to_string(),
        });
    }
    Ok(())
}

fn check_range(
    field: &'static str,
    value: u64,
    range: std::ops::RangeInclusive<u64>,
    text: &'static str,
) -> Result<(), ConfigError> {
    if range.contains(&value) {
        Ok(())
    } else {
        Err(ConfigError::OutOfRange {
            field,
            value,
            range: text,
        })
    }
}

impl MqttConfig {
    /// Checks everything that can be checked without touching the files or the network.
    pub fn validate(&self) -> Result<(), ConfigError> {
        match (&self.tls, self.plain_tcp) {
            (None, false) => return Err(ConfigError::NoTls),
            (Some(_), true) => return Err(ConfigError::TlsAndPlain),
            _ => {}
        }
        if self.host.is_empty() {
            return Err(ConfigError::Empty("host"));
        }
        check_level("node_id", &self.node_id)?;
        check_level("prefix", &self.prefix)?;
        if self.client_id.as_deref() == Some("") {
            return Err(ConfigError::Empty("client_id"));
        }
        check_range("port", self.port.into(), 1..=65535, "1..=65535")?;
        check_range("keepalive_s", self.keepalive_s, 5..=3600, "5..=3600")?;
        check_range(
            "connect_timeout_s",
            self.connect_timeout_s,
            1..=600,
            "1..=600",
        )?;
        check_range(
            "reconnect_min_ms",
            self.reconnect_min_ms,
            10..=3_600_000,
            "10..=3600000",
        )?;
        check_range(
            "reconnect_max_ms",
            self.reconnect_max_ms,
            self.reconnect_min_ms..=3_600_000,
            "reconnect_min_ms..=3600000",
        )?;
        check_range(
            "max_in_flight",
            self.max_in_flight.into(),
            1..=1000,
            "1..=1000",
        )?;
        Ok(())
    }

    /// The client id sent to the broker.
    pub fn client_id(&self) -> &str {
        self.client_id.as_deref().unwrap_or(&self.node_id)
    }

    /// The node's topics.
    pub fn topics(&self) -> Topics {
        Topics::new(&self.prefix, &self.node_id)
    }

    /// Keep-alive as a duration.
    pub fn keepalive(&self) -> Duration {
        Duration::from_secs(self.keepalive_s)
    }
}

/// The topics of one node: `<prefix>/<node_id>/{events,status,state,cmd,update,update/status}`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Topics {
    /// Event records (QoS 1).
    pub events: String,
    /// Status records (QoS 1).
    pub status: String,
    /// Retained `online` / `offline` (the last will).
    pub state: String,
    /// Downlink commands, subscribed at QoS 1.
    pub cmd: String,
    /// Signed update bundles, announced then sent in chunks (subscribed at
    /// QoS 1).
    pub update: String,
    /// The node's progress reports on an update transfer.
    pub update_status: String,
}

impl Topics {
    /// The topics of `node_id` under `prefix`.
    pub fn new(prefix: &str, node_id: &str) -> Topics {
        let t = |leaf: &str| format!("{prefix}/{node_id}/{leaf}");
        Topics {
            events: t("events"),
            status: t("status"),
            state: t("state"),
            cmd: t("cmd"),
            update: t("update"),
            update_status: t("update/status"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tls() -> Option<TlsFiles> {
        Some(TlsFiles {
            ca: "ca.pem".into(),
            cert: "node.pem".into(),
            key: "node.key".into(),
        })
    }

    fn good() -> MqttConfig {
        MqttConfig {
            node_id: "node-07".into(),
            tls: tls(),
            ..MqttConfig::default()
        }
    }

    #[test]
    fn a_config_with_tls_files_is_valid() {
        assert_eq!(good().validate(), Ok(()));
    }

    #[test]
    fn missing_tls_is_an_error_unless_plain_tcp_is_explicit() {
        let mut c = good();
        c.tls = None;
        assert_eq!(c.validate(), Err(ConfigError::NoTls));
        c.plain_tcp = true;
        assert_eq!(c.validate(), Ok(()));
        c.tls = tls();
        assert_eq!(c.validate(), Err(ConfigError::TlsAndPlain));
    }

    #[test]
    fn topic_levels_must_be_single_levels() {
        for bad in ["a/b", "a+", "#", ""] {
            let mut c = good();
            c.node_id = bad.into();
            assert!(c.validate().is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn ranges_are_checked() {
        let mut c = good();
        c.max_in_flight = 0;
        assert!(matches!(
            c.validate(),
            Err(ConfigError::OutOfRange {
                field: "max_in_flight",
                ..
            })
        ));
        let mut c = good();
        c.reconnect_max_ms = c.reconnect_min_ms - 1;
        assert!(c.validate().is_err());
    }

    #[test]
    fn toml_defaults_and_unknown_keys() {
        let c: MqttConfig = toml::from_str(
            r#"
            host = "broker.example"
            node_id = "n1"
            payload = "json"
            [tls]
            ca = "/etc/fieldnode/ca.pem"
            cert = "/etc/fieldnode/n1.pem"
            key = "/etc/fieldnode/n1.key"
            "#,
        )
        .expect("valid toml");
        assert_eq!(c.port, 8883);
        assert_eq!(c.payload, PayloadFormat::Json);
        assert_eq!(c.client_id(), "n1");
        assert_eq!(c.validate(), Ok(()));
        assert!(toml::from_str::<MqttConfig>("hots = \"x\"").is_err());
    }

    #[test]
    fn topics_follow_the_prefix_and_node() {
        let t = Topics::new("field", "n1");
        assert_eq!(t.events, "field/n1/events");
        assert_eq!(t.status, "field/n1/status");
        assert_eq!(t.state, "field/n1/state");
        assert_eq!(t.cmd, "field/n1/cmd");
    }
}
