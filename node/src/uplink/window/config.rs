//! `[uplink.window]`: when the switched cellular modem is powered for an
//! upload window, and for how long.

use messages::Priority;
use serde::{Deserialize, Serialize};
use uplink::outbox::priority_name;

/// `[uplink.window]`; used only with a switched modem
/// (`[power.loads.modem]`) and `[uplink.mqtt]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WindowConfig {
    /// An item at or above this priority waiting opens a window.
    #[serde(with = "priority_name")]
    pub min_priority: Priority,
    /// An item that has waited this long opens a window, ms.
    pub max_age_ms: u64,
    /// A window lasts at most this long from the modem's switch-on, ms.
    pub max_window_ms: u64,
    /// Least time from one window's close to the next one's opening, ms.
    pub min_gap_ms: u64,
    /// The modem's network interface.
    pub interface: String,
    /// How long after the modem has settled the interface may take to be
    /// up with a route, ms; past it the window fails and closes.
    pub interface_timeout_ms: u64,
}

impl Default for WindowConfig {
    fn default() -> Self {
        WindowConfig {
            min_priority: Priority::High,
            max_age_ms: 21_600_000,
            max_window_ms: 600_000,
            min_gap_ms: 900_000,
            interface: "wwan0".into(),
            interface_timeout_ms: 90_000,
        }
    }
}

impl WindowConfig {
    /// Range checks, as `(key, problem)`.
    pub fn validate(&self) -> Vec<(String, String)> {
        let mut errs = Vec::new();
        let mut bad = |k: &str, why: &str| errs.push((k.to_string(), why.to_string()));
        if !(1_000..=604_800_000).contains(&self.max_age_ms) {
            bad("max_age_ms", "must be between 1 s and one week");
        }
        if !(10_000..=86_400_000).contains(&self.max_window_ms) {
            bad("max_window_ms", "must be between 10 s and one day");
        }
        if self.min_gap_ms > 86_400_000 {
            bad("min_gap_ms", "must be at most one day");
        }
        let name_ok = !self.interface.is_empty()
            && self.interface.len() < 16
            && !self.interface.contains(['/', ' '])
            && self.interface != "."
            && self.interface != "..";
        if !name_ok {
            bad(
                "interface",
                "must be a network interface name (1 to 15 characters, no '/' or space)",
            );
        }
        if !(1_000..=3_600_000).contains(&self.interface_timeout_ms) {
            bad("interface_timeout_ms", "must be between 1 s and one hour");
        }
        errs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_bad_values_are_named() {
        assert!(WindowConfig::default().validate().is_empty());
        let c = WindowConfig {
            max_window_ms: 0,
            interface: "../etc".into(),
            interface_timeout_ms: 0,
            ..WindowConfig::default()
        };
        let keys: Vec<String> = c.validate().into_iter().map(|(k, _)| k).collect();
        assert_eq!(keys, ["max_window_ms", "interface", "interface_timeout_ms"]);
        let parsed: WindowConfig =
            toml::from_str("min_priority = \"urgent\"\ninterface = \"ppp0\"").unwrap();
        assert_eq!(parsed.min_priority, Priority::Urgent);
        assert_eq!(parsed.interface, "ppp0");
    }
}
