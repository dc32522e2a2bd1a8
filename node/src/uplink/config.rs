//! The `[uplink]` configuration: whether the node forwards its outbox at
//! all, how often it reports its status, which downlink commands it obeys,
//! the MQTT link (`[uplink.mqtt]`) and the link scheduler
//! (`[uplink.scheduler]`). The outbox policy itself is `[outbox]`.

use messages::Command;
use serde::{Deserialize, Serialize};
use uplink::mqtt::MqttConfig;
use uplink::scheduler::SchedulerConfig;

/// `[uplink]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct UplinkConfig {
    /// Forward the outbox (and append status records to it). Off by
    /// default, so a node without a broker keeps everything in its store.
    pub enabled: bool,
    /// How often a status record is appended to the outbox, ms of the
    /// node's clock (scene time in a replay).
    pub status_interval_ms: u64,
    /// Downlink commands the node obeys, by name (`send_status`,
    /// `flush_outbox`); anything else is rejected and logged.
    pub allowed_commands: Vec<String>,
    /// A scheduler round runs at least this often (real time), ms; it also
    /// runs whenever an item is stored or a link changes.
    pub round_interval_ms: u64,
    /// Expired items are removed from the outbox this often (real time), ms.
    pub expire_interval_ms: u64,
    /// With `exit_at_end`: once the scene has ended, how long the node
    /// keeps forwarding until its outbox is empty before it exits anyway
    /// (real time), ms. `0` exits at once.
    pub drain_timeout_ms: u64,
    /// `[uplink.mqtt]`: the MQTT link; absent = no MQTT. `node_id` defaults
    /// to `[node] id`.
    pub mqtt: Option<MqttConfig>,
    /// `[uplink.scheduler]`: which link carries what, and when.
    pub scheduler: SchedulerConfig,
}

impl Default for UplinkConfig {
    fn default() -> Self {
        UplinkConfig {
            enabled: false,
            status_interval_ms: 3_600_000,
            allowed_commands: vec![
                Command::SendStatus.name().to_string(),
                Command::FlushOutbox.name().to_string(),
            ],
            round_interval_ms: 5_000,
            expire_interval_ms: 600_000,
            drain_timeout_ms: 30_000,
            mqtt: None,
            scheduler: SchedulerConfig::default(),
        }
    }
}

impl UplinkConfig {
    /// The MQTT configuration with `node_id` filled from the node's id when
    /// it is left empty.
    pub fn mqtt_for(&self, node_id: &str) -> Option<MqttConfig> {
        self.mqtt.clone().map(|mut m| {
            if m.node_id.is_empty() {
                m.node_id = node_id.to_string();
            }
            m
        })
    }

    /// Range checks, as `(key path relative to `[uplink]`, problem)`.
    pub fn validate(&self, node_id: &str) -> Vec<(String, String)> {
        let mut errs = Vec::new();
        let mut bad = |k: &str, why: &str| errs.push((k.to_string(), why.to_string()));
        if !(1_000..=86_400_000).contains(&self.status_interval_ms) {
            bad("status_interval_ms", "must be between 1 s and one day");
        }
        if !(10..=3_600_000).contains(&self.round_interval_ms) {
            bad("round_interval_ms", "must be between 10 ms and one hour");
        }
        if !(1_000..=86_400_000).contains(&self.expire_interval_ms) {
            bad("expire_interval_ms", "must be between 1 s and one day");
        }
        if self.drain_timeout_ms > 86_400_000 {
            bad("drain_timeout_ms", "must be at most one day");
        }
        for name in &self.allowed_commands {
            if Command::from_name(name).is_none() {
                let known: Vec<&str> = Command::ALL.iter().map(|c| c.name()).collect();
                errs.push((
                    "allowed_commands".to_string(),
                    format!("unknown command {name:?} (known: {})", known.join(", ")),
                ));
            }
        }
        if let Some(m) = self.mqtt_for(node_id)
            && let Err(e) = m.validate()
        {
            errs.push(("mqtt".to_string(), e.to_string()));
        }
        errs.extend(
            self.scheduler
                .validate()
                .into_iter()
                .map(|(k, m)| (format!("scheduler.{k}"), m)),
        );
        if self.enabled && self.mqtt.is_none() {
            errs.push((
                "enabled".to_string(),
                "the uplink is enabled but no link is configured ([uplink.mqtt])".to_string(),
            ));
        }
        errs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_disabled() {
        let c = UplinkConfig::default();
        assert!(!c.enabled);
        assert!(c.validate("n1").is_empty());
    }

    #[test]
    fn enabled_without_a_link_is_an_error() {
        let c = UplinkConfig {
            enabled: true,
            ..UplinkConfig::default()
        };
        let keys: Vec<String> = c.validate("n1").into_iter().map(|(k, _)| k).collect();
        assert_eq!(keys, ["enabled"]);
    }

    #[test]
    fn unknown_commands_and_bad_mqtt_are_reported() {
        let c = UplinkConfig {
            allowed_commands: vec!["reboot".into()],
            mqtt: Some(MqttConfig::default()),
            ..UplinkConfig::default()
        };
        let keys: Vec<String> = c.validate("n1").into_iter().map(|(k, _)| k).collect();
        assert_eq!(keys, ["allowed_commands", "mqtt"]);
    }

    #[test]
    fn mqtt_node_id_defaults_to_the_node() {
        let c = UplinkConfig {
            mqtt: Some(MqttConfig {
                plain_tcp: true,
                ..MqttConfig::default()
            }),
            ..UplinkConfig::default()
        };
        assert_eq!(c.mqtt_for("n1").map(|m| m.node_id), Some("n1".into()));
        assert!(c.validate("n1").is_empty());
    }
}
