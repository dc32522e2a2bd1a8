//! Downlink commands: what the ground may ask a node to do, and their two
//! encodings: compact binary for Iridium SBD mobile-terminated messages (at
//! most 270 bytes) and JSON for the MQTT `cmd` topic. Anything that does not
//! parse, or names a command this build does not know, is a typed error; the
//! node then checks [`Command::name`] against its configured allow-list
//! before acting.
//!
//! Binary (MT): `[MT_COMMAND_VERSION] [opcode: u8] [arguments]`, one command
//! per message. JSON: `{"cmd":"<name>", <arguments>}`. Opcodes and names are
//! part of the wire format (`docs/wire-format.md`): only ever append.
//!
//! The JSON functions need the `json` feature (it adds `serde_json`), so the
//! crate's default build stays serde + postcard + thiserror.

/// First byte of a binary command, version 1. Chosen apart from the record
/// kind bytes and [`crate::pack::PACK_VERSION`].
pub const MT_COMMAND_VERSION: u8 = 0x43;

/// The largest Iridium SBD mobile-terminated message, bytes.
pub const SBD_MT_MAX: usize = 270;

/// A downlink command. New commands are appended with the next opcode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Command {
    /// Make and send a status report now.
    SendStatus,
    /// Send everything in the outbox now (on whatever link the scheduler allows).
    FlushOutbox,
}

impl Command {
    /// Every command this build knows, in opcode order.
    pub const ALL: [Command; 2] = [Command::SendStatus, Command::FlushOutbox];

    /// The stable name: the JSON `cmd` value and the allow-list entry.
    pub fn name(self) -> &'static str {
        match self {
            Command::SendStatus => "send_status",
            Command::FlushOutbox => "flush_outbox",
        }
    }

    /// The binary opcode (byte 1 of an MT command).
    pub fn opcode(self) -> u8 {
        match self {
            Command::SendStatus => 1,
            Command::FlushOutbox => 2,
        }
    }

    /// The command with this stable name, if this build knows it.
    pub fn from_name(name: &str) -> Option<Command> {
        Command::ALL.into_iter().find(|c| c.name() == name)
    }

    /// True when `allowed` (the configured allow-list of names) contains this
    /// command's name.
    pub fn is_allowed<S: AsRef<str>>(self, allowed: &[S]) -> bool {
        allowed.iter().any(|a| a.as_ref() == self.name())
    }

    /// The binary form for an SBD MT message.
    pub fn encode_mt(self) -> Vec<u8> {
        vec![MT_COMMAND_VERSION, self.opcode()]
    }

    /// The JSON form for the MQTT `cmd` topic, e.g. `{"cmd":"send_status"}`.
    #[cfg(feature = "json")]
    pub fn to_json(self) -> String {
        serde_json::json!({ "cmd": self.name() }).to_string()
    }
}

impl std::fmt::Display for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Why bytes are not a command this build can act on.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CommandError {
    /// No bytes.
    #[error("empty command")]
    Empty,
    /// Longer than an MT message can be.
    #[error("command of {len} bytes is longer than an MT message ({SBD_MT_MAX})")]
    TooLong {
        /// Its length.
        len: usize,
    },
    /// The first byte is not [`MT_COMMAND_VERSION`].
    #[error("unsupported command version byte {found:#04x} (expected {MT_COMMAND_VERSION:#04x})")]
    UnsupportedVersion {
        /// The byte found.
        found: u8,
    },
    /// The version byte without an opcode.
    #[error("command has no opcode")]
    MissingOpcode,
    /// An opcode this build does not know.
    #[error("unknown command opcode {opcode}")]
    UnknownOpcode {
        /// The opcode.
        opcode: u8,
    },
    /// Bytes after a complete command.
    #[error("{count} unexpected bytes after command {name}")]
    Trailing {
        /// The command's name.
        name: &'static str,
        /// How many bytes were left.
        count: usize,
    },
    /// Not JSON, or not a JSON object.
    #[error("command is not a JSON object: {0}")]
    Json(String),
    /// A JSON object without a string `cmd`.
    #[error("JSON command has no string \"cmd\" field")]
    MissingName,
    /// A `cmd` name this build does not know.
    #[error("unknown command {name:?}")]
    UnknownName {
        /// The name, cut to 64 characters.
        name: String,
    },
    /// A JSON field the command does not take.
    #[error("command {name} takes no field {field:?}")]
    UnexpectedField {
        /// The command's name.
        name: &'static str,
        /// The field, cut to 64 characters.
        field: String,
    },
}

/// Parses a binary command from an SBD MT message.
pub fn parse_mt(bytes: &[u8]) -> Result<Command, CommandError> {
    if bytes.len() > SBD_MT_MAX {
        return Err(CommandError::TooLong { len: bytes.len() });
    }
    let (&version, rest) = bytes.split_first().ok_or(CommandError::Empty)?;
    if version != MT_COMMAND_VERSION {
        return Err(CommandError::UnsupportedVersion { found: version });
    }
    let (&opcode, args) = rest.split_first().ok_or(CommandError::MissingOpcode)?;
    let cmd = Command::ALL
        .into_iter()
        .find(|c| c.opcode() == opcode)
        .ok_or(CommandError::UnknownOpcode { opcode })?;
    // Neither command of version 1 takes arguments.
    if !args.is_empty() {
        return Err(CommandError::Trailing {
            name: cmd.name(),
            count: args.len(),
        });
    }
    Ok(cmd)
}

#[cfg(feature = "json")]
fn cut(s: &str) -> String {
    s.chars().take(64).collect()
}

/// Parses a JSON command from the MQTT `cmd` topic, e.g. `{"cmd":"flush_outbox"}`.
#[cfg(feature = "json")]
pub fn parse_json(bytes: &[u8]) -> Result<Command, CommandError> {
    if bytes.is_empty() {
        return Err(CommandError::Empty);
    }
    let value: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| CommandError::Json(e.to_string()))?;
    let obj = value
        .as_object()
        .ok_or_else(|| CommandError::Json("not an object".into()))?;
    let name = obj
        .get("cmd")
        .and_then(|v| v.as_str())
        .ok_or(CommandError::MissingName)?;
    let cmd =
        Command::from_name(name).ok_or_else(|| CommandError::UnknownName { name: cut(name) })?;
    if let Some(field) = obj.keys().find(|k| k.as_str() != "cmd") {
        return Err(CommandError::UnexpectedField {
            name: cmd.name(),
            field: cut(field),
        });
    }
    Ok(cmd)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_round_trips_and_names_are_unique() {
        for c in Command::ALL {
            let b = c.encode_mt();
            assert!(b.len() <= SBD_MT_MAX);
            assert_eq!(parse_mt(&b), Ok(c));
            assert_eq!(Command::from_name(c.name()), Some(c));
        }
        let mut names: Vec<_> = Command::ALL.iter().map(|c| c.name()).collect();
        names.dedup();
        assert_eq!(names.len(), Command::ALL.len());
        assert_eq!(parse_mt(&[MT_COMMAND_VERSION, 1]), Ok(Command::SendStatus));
        assert_eq!(parse_mt(&[MT_COMMAND_VERSION, 2]), Ok(Command::FlushOutbox));
    }

    #[test]
    fn binary_errors_are_typed() {
        assert_eq!(parse_mt(&[]), Err(CommandError::Empty));
        assert_eq!(
            parse_mt(&[MT_COMMAND_VERSION]),
            Err(CommandError::MissingOpcode)
        );
        assert_eq!(
            parse_mt(&[1, 1]),
            Err(CommandError::UnsupportedVersion { found: 1 })
        );
        assert_eq!(
            parse_mt(&[MT_COMMAND_VERSION, 0]),
            Err(CommandError::UnknownOpcode { opcode: 0 })
        );
        assert_eq!(
            parse_mt(&[MT_COMMAND_VERSION, 200]),
            Err(CommandError::UnknownOpcode { opcode: 200 })
        );
        assert_eq!(
            parse_mt(&[MT_COMMAND_VERSION, 1, 0]),
            Err(CommandError::Trailing {
                name: "send_status",
                count: 1
            })
        );
        assert_eq!(
            parse_mt(&[MT_COMMAND_VERSION; 271]),
            Err(CommandError::TooLong { len: 271 })
        );
    }

    #[test]
    fn allow_list() {
        let allowed = ["send_status".to_string()];
        assert!(Command::SendStatus.is_allowed(&allowed));
        assert!(!Command::FlushOutbox.is_allowed(&allowed));
        assert!(!Command::SendStatus.is_allowed::<&str>(&[]));
    }

    #[test]
    fn fuzz_binary_garbage_never_panics_and_only_known_commands_parse() {
        // MESSAGES_FUZZ_ITERS raises the count for a long run.
        let n: u64 = std::env::var("MESSAGES_FUZZ_ITERS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(300)
            * 30;
        let mut x: u64 = 0xDEAD_BEEF_CAFE_F00D;
        for _ in 0..n {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let len = (x % 8) as usize;
            let bytes: Vec<u8> = (0..len).map(|i| (x >> (i * 8)) as u8).collect();
            if let Ok(c) = parse_mt(&bytes) {
                assert_eq!(c.encode_mt(), bytes, "only canonical encodings parse");
            }
        }
    }

    #[cfg(feature = "json")]
    #[test]
    fn json_round_trips_and_rejects_the_unknown() {
        for c in Command::ALL {
            assert_eq!(parse_json(c.to_json().as_bytes()), Ok(c));
        }
        assert_eq!(
            parse_json(br#"{"cmd":"send_status"}"#),
            Ok(Command::SendStatus)
        );
        assert_eq!(
            parse_json(b" { \"cmd\" : \"flush_outbox\" } "),
            Ok(Command::FlushOutbox)
        );
        assert_eq!(parse_json(b""), Err(CommandError::Empty));
        assert!(matches!(parse_json(b"{"), Err(CommandError::Json(_))));
        assert!(matches!(parse_json(b"[1]"), Err(CommandError::Json(_))));
        assert_eq!(parse_json(br#"{"cmd":3}"#), Err(CommandError::MissingName));
        assert_eq!(parse_json(br#"{}"#), Err(CommandError::MissingName));
        assert_eq!(
            parse_json(br#"{"cmd":"reboot"}"#),
            Err(CommandError::UnknownName {
                name: "reboot".into()
            })
        );
        assert_eq!(
            parse_json(br#"{"cmd":"send_status","now":true}"#),
            Err(CommandError::UnexpectedField {
                name: "send_status",
                field: "now".into()
            })
        );
    }

    #[cfg(feature = "json")]
    #[test]
    fn fuzz_json_garbage_never_panics() {
        let seeds: [&[u8]; 4] = [
            br#"{"cmd":"send_status"}"#,
            br#"{"cmd":"flush_outbox"}"#,
            b"{}",
            b"[]",
        ];
        let mut x: u64 = 0x1234_5678_9ABC_DEF1;
        for i in 0..3000 {
            let mut b = seeds[i % seeds.len()].to_vec();
            for _ in 0..3 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                if b.is_empty() {
                    break;
                }
                let at = (x % b.len() as u64) as usize;
                match x % 3 {
                    0 => b[at] ^= 1 << ((x >> 8) % 8),
                    1 => b.truncate(at),
                    _ => b.insert(at, (x >> 16) as u8),
                }
            }
            if let Ok(c) = parse_json(&b) {
                assert!(Command::ALL.contains(&c));
            }
        }
    }
}
