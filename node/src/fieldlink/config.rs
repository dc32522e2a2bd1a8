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
    /// session.
    pub reads_need_auth: bool,
    /// The technicians' Ed25519 public keys the link trusts: each 64 hex
    /// digits, or a public key file's line as `field-tools keys` writes it
    /// (`fieldnode-ed25519-public <64 hex>`). Empty: nobody can
    /// authenticate, and control requests are refused.
    pub technician_keys: Vec<String>,
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
            technician_keys: Vec::new(),
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
        for (i, k) in self.technician_keys.iter().enumerate() {
            if let Err(why) = parse_technician_key(k) {
                e.push((format!("technician_keys[{i}]"), format!("`{k}`: {why}")));
            }
        }
        e
    }

    /// The trusted keys' bytes (keys that do not parse are left out: the
    /// configuration was validated before).
    pub fn trusted_keys(&self) -> Vec<[u8; 32]> {
        self.technician_keys
            .iter()
            .filter_map(|k| parse_technician_key(k).ok())
            .collect()
    }
}

const PUBLIC_TAG: &str = "fieldnode-ed25519-public";

/// A technician key as configured: 64 hex digits, or a public key file's
/// line; it must be a valid Ed25519 public key.
pub fn parse_technician_key(text: &str) -> Result<[u8; 32], String> {
    let text = text.trim();
    let line = if text.starts_with(PUBLIC_TAG) {
        text.to_string()
    } else {
        if text.len() != 64 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(format!(
                "must be an Ed25519 public key as 64 hex digits (or `{PUBLIC_TAG} <64 hex>`), not {} characters",
                text.len()
            ));
        }
        format!("{PUBLIC_TAG} {text}")
    };
    models::bundle::keys::public_from_text(&line)
        .map(|k| k.to_bytes())
        .map_err(|e| e.to_string())
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

    #[test]
    fn technician_keys_are_checked_and_named() {
        let good = models::bundle::keys::generate([3; 32]).verifying_key();
        let hex: String = good.as_bytes().iter().map(|b| format!("{b:02x}")).collect();
        let c = FieldLinkConfig {
            technician_keys: vec![
                hex.clone(),
                "abcd".into(),
                format!("{hex}zz"),
                "zz".repeat(32),
                models::bundle::keys::public_to_text(&good),
            ],
            ..Default::default()
        };
        let errors = c.validate();
        let keys: Vec<&str> = errors.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            [
                "technician_keys[1]",
                "technician_keys[2]",
                "technician_keys[3]"
            ]
        );
        assert!(errors[0].1.contains("`abcd`"), "{errors:?}");
        assert_eq!(c.trusted_keys(), vec![good.to_bytes(), good.to_bytes()]);
    }
}
