//! The `[uplink]` configuration: whether the node forwards its outbox at
//! all, how often it reports its status, which downlink commands it obeys,
//! the MQTT link (`[uplink.mqtt]`), the Iridium SBD modem (`[uplink.sbd]`)
//! and the link scheduler (`[uplink.scheduler]`). The outbox policy itself
//! is `[outbox]`.

use std::path::PathBuf;
use std::time::Duration;

use messages::Command;
use serde::{Deserialize, Serialize};
use uplink::mqtt::MqttConfig;
use uplink::sbd::{BudgetLimits, ModemTimeouts, SbdLinkConfig};
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
    /// `[uplink.sbd]`: the Iridium SBD modem; absent = no modem.
    pub sbd: Option<SbdConfig>,
    /// `[uplink.scheduler]`: which link carries what, and when.
    pub scheduler: SchedulerConfig,
    /// `[uplink.window]`: upload windows of a switched cellular modem.
    pub window: super::window::WindowConfig,
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
            sbd: None,
            scheduler: SchedulerConfig::default(),
            window: super::window::WindowConfig::default(),
        }
    }
}

/// `[uplink.sbd]`: the Iridium SBD modem on a serial port, how its link
/// retries, and the credit budget (kept in `<data_dir>/sbd-budget`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SbdConfig {
    /// The modem's serial device.
    pub port: PathBuf,
    /// Its baud rate (19200 for a RockBLOCK 9603).
    pub baud: u32,
    /// Timeout of ordinary AT commands, ms.
    pub command_timeout_ms: u64,
    /// Timeout of a satellite session (`AT+SBDIX`), ms.
    pub session_timeout_ms: u64,
    /// Wait after the first failed session, doubled after each, ms.
    pub backoff_min_ms: u64,
    /// Longest wait between sessions, ms.
    pub backoff_max_ms: u64,
    /// A message is retried for this long, then left for a later round, ms.
    pub give_up_after_ms: u64,
    /// Credits per UTC day for non-urgent traffic.
    pub credits_per_day: u32,
    /// Credits per UTC month for non-urgent traffic.
    pub credits_per_month: u32,
    /// A modem that cannot be opened or initialised, or stopped answering,
    /// is tried again this often (real time), ms.
    pub reopen_interval_ms: u64,
    /// Messages refused for good by the gateway (MO status 12 or 14)
    /// that may carry an item before it is quarantined: kept in the outbox,
    /// no longer sent by satellite (MQTT may still carry it). After the
    /// first refusal the item goes alone. Counts are kept in
    /// `<data_dir>/sbd-refusals`.
    pub max_permanent_failures: u32,
    /// With a switched modem (`[power.loads.satellite]`): how long it stays
    /// on after a request for the next one, before it is switched off, ms.
    pub power_hold_ms: u64,
}

impl Default for SbdConfig {
    fn default() -> Self {
        let link = SbdLinkConfig::default();
        let limits = BudgetLimits::default();
        SbdConfig {
            port: PathBuf::from("/dev/ttyUSB0"),
            baud: 19_200,
            command_timeout_ms: ms(link.timeouts.command),
            session_timeout_ms: ms(link.timeouts.session),
            backoff_min_ms: ms(link.backoff_min),
            backoff_max_ms: ms(link.backoff_max),
            give_up_after_ms: ms(link.give_up_after),
            credits_per_day: limits.per_day,
            credits_per_month: limits.per_month,
            reopen_interval_ms: 180_000,
            max_permanent_failures: 3,
            power_hold_ms: 30_000,
        }
    }
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl SbdConfig {
    /// The driver's retry settings (the others at the driver's defaults).
    pub fn link(&self) -> SbdLinkConfig {
        SbdLinkConfig {
            timeouts: ModemTimeouts {
                command: Duration::from_millis(self.command_timeout_ms),
                session: Duration::from_millis(self.session_timeout_ms),
            },
            backoff_min: Duration::from_millis(self.backoff_min_ms),
            backoff_max: Duration::from_millis(self.backoff_max_ms),
            give_up_after: Duration::from_millis(self.give_up_after_ms),
            ..SbdLinkConfig::default()
        }
    }

    /// The credit budget's limits.
    pub fn limits(&self) -> BudgetLimits {
        BudgetLimits {
            per_day: self.credits_per_day,
            per_month: self.credits_per_month,
        }
    }

    /// Range checks, as `(key, problem)`.
    pub fn validate(&self) -> Vec<(String, String)> {
        let mut errs = Vec::new();
        let mut bad = |k: &str, why: &str| errs.push((k.to_string(), why.to_string()));
        if self.port.as_os_str().is_empty() {
            bad("port", "must name the modem's serial device");
        }
        if !(1_200..=921_600).contains(&self.baud) {
            bad("baud", "must be between 1200 and 921600");
        }
        if !(100..=60_000).contains(&self.command_timeout_ms) {
            bad("command_timeout_ms", "must be between 100 ms and 1 minute");
        }
        if !(1_000..=600_000).contains(&self.session_timeout_ms) {
            bad("session_timeout_ms", "must be between 1 s and 10 minutes");
        }
        if self.backoff_min_ms == 0 || self.backoff_min_ms > self.backoff_max_ms {
            bad(
                "backoff_min_ms",
                "must be above 0 and at most backoff_max_ms",
            );
        }
        if self.backoff_max_ms > 3_600_000 {
            bad("backoff_max_ms", "must be at most one hour");
        }
        if !(1_000..=86_400_000).contains(&self.give_up_after_ms) {
            bad("give_up_after_ms", "must be between 1 s and one day");
        }
        if self.credits_per_day > self.credits_per_month {
            bad("credits_per_day", "must be at most credits_per_month");
        }
        if !(100..=86_400_000).contains(&self.reopen_interval_ms) {
            bad("reopen_interval_ms", "must be between 100 ms and one day");
        }
        if !(1..=100).contains(&self.max_permanent_failures) {
            bad("max_permanent_failures", "must be between 1 and 100");
        }
        if !(100..=3_600_000).contains(&self.power_hold_ms) {
            bad("power_hold_ms", "must be between 100 ms and one hour");
        }
        errs
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
        if let Some(sbd) = &self.sbd {
            errs.extend(
                sbd.validate()
                    .into_iter()
                    .map(|(k, m)| (format!("sbd.{k}"), m)),
            );
        }
        errs.extend(
            self.scheduler
                .validate()
                .into_iter()
                .map(|(k, m)| (format!("scheduler.{k}"), m)),
        );
        errs.extend(
            self.window
                .validate()
                .into_iter()
                .map(|(k, m)| (format!("window.{k}"), m)),
        );
        if self.enabled && self.mqtt.is_none() && self.sbd.is_none() {
            errs.push((
                "enabled".to_string(),
                "the uplink is enabled but no link is configured ([uplink.mqtt], [uplink.sbd])"
                    .to_string(),
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
    fn sbd_defaults_are_valid_and_bad_values_are_reported() {
        let c = UplinkConfig {
            enabled: true,
            sbd: Some(SbdConfig::default()),
            ..UplinkConfig::default()
        };
        assert!(c.validate("n1").is_empty());
        assert_eq!(
            c.sbd.as_ref().map(|s| s.link()),
            Some(SbdLinkConfig::default())
        );
        let c = UplinkConfig {
            sbd: Some(SbdConfig {
                baud: 0,
                backoff_min_ms: 200_000,
                credits_per_day: 1_000,
                max_permanent_failures: 0,
                ..SbdConfig::default()
            }),
            ..UplinkConfig::default()
        };
        let keys: Vec<String> = c.validate("n1").into_iter().map(|(k, _)| k).collect();
        assert_eq!(
            keys,
            [
                "sbd.baud",
                "sbd.backoff_min_ms",
                "sbd.credits_per_day",
                "sbd.max_permanent_failures"
            ]
        );
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
