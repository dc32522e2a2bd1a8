//! `[fieldlink]`: where the node listens for `field-tools link`.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// `[fieldlink]`. The link runs only when it names a socket or a serial
/// device (both may be set).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct FieldLinkConfig {
    /// A Unix socket to listen on (one session per connection).
    pub socket: Option<PathBuf>,
    /// A serial device to serve (the Pi's UART, USB gadget serial, a
    /// USB-serial adapter): one session at a time.
    pub serial: Option<PathBuf>,
    /// The serial device's speed, baud (8N1, no flow control).
    pub baud: u32,
    /// Reads (status, events, configuration, time) need an authenticated
    /// session. This node does not serve authentication yet, so with
    /// `true` only Hello and Ping are answered.
    pub reads_need_auth: bool,
    /// The configuration file the node was started with, for `ConfigShow`
    /// (set by the command line, not a key of the file).
    #[serde(skip)]
    pub config_file: Option<PathBuf>,
}

impl Default for FieldLinkConfig {
    fn default() -> Self {
        FieldLinkConfig {
            socket: None,
            serial: None,
            baud: 115_200,
            reads_need_auth: false,
            config_file: None,
        }
    }
}

/// Speeds a Linux UART or USB-serial adapter takes.
const BAUDS: [u32; 10] = [
    9_600, 19_200, 38_400, 57_600, 115_200, 230_400, 460_800, 921_600, 1_000_000, 3_000_000,
];

impl FieldLinkConfig {
    /// True when the link has somewhere to listen.
    pub fn enabled(&self) -> bool {
        self.socket.is_some() || self.serial.is_some()
    }

    /// Problems, as (key under `fieldlink`, message).
    pub fn validate(&self) -> Vec<(String, String)> {
        let mut e = Vec::new();
        if !BAUDS.contains(&self.baud) {
            e.push(("baud".into(), format!("must be one of {BAUDS:?}")));
        }
        for (key, path) in [("socket", &self.socket), ("serial", &self.serial)] {
            if path.as_ref().is_some_and(|p| p.as_os_str().is_empty()) {
                e.push((
                    key.into(),
                    "must not be empty (leave the key out instead)".into(),
                ));
            }
        }
        // sun_path holds 108 bytes with its terminating NUL.
        if self
            .socket
            .as_ref()
            .is_some_and(|p| p.as_os_str().len() > 107)
        {
            e.push(("socket".into(), "must be at most 107 bytes long".into()));
        }
        e
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_off() {
        let c = FieldLinkConfig::default();
        assert!(c.validate().is_empty());
        assert!(!c.enabled());
    }

    #[test]
    fn odd_speeds_and_empty_paths_are_refused() {
        let c = FieldLinkConfig {
            baud: 12_345,
            socket: Some(PathBuf::new()),
            ..Default::default()
        };
        let keys: Vec<String> = c.validate().into_iter().map(|(k, _)| k).collect();
        assert_eq!(keys, ["baud", "socket"]);
    }
}
